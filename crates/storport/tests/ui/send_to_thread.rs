//! Registry calls belong to the callback's thread at PASSIVE_LEVEL: the
//! buffer cannot be sent to another thread.
use storport::registry::{Registry, Scope};

fn read_elsewhere(registry: &mut Registry) {
    let Ok(mut buffer) = registry.open(16) else {
        return;
    };
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let _ = buffer.read_dword(Scope::Global, c"DiskCount");
        });
    });
}

fn main() {
    let _: fn(&mut Registry) = read_elsewhere;
}
