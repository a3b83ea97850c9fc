//! Read on the callback's thread, send the value.
use storport::registry::{Registry, Scope};

fn read_here(registry: &mut Registry) {
    let Ok(mut buffer) = registry.open(16) else {
        return;
    };
    let count = buffer.read_dword(Scope::Global, c"DiskCount").unwrap_or(1);
    std::thread::scope(|scope| {
        scope.spawn(move || count + 1);
    });
}

fn main() {
    let _: fn(&mut Registry) = read_here;
}
