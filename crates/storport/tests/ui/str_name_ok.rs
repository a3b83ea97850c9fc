//! A C string literal carries its terminator.
use storport::registry::{Registry, Scope};

fn read(registry: &mut Registry) {
    let Ok(mut buffer) = registry.open(16) else {
        return;
    };
    let _ = buffer.read_dword(Scope::Global, c"DiskCount");
}

fn main() {
    let _: fn(&mut Registry) = read;
}
