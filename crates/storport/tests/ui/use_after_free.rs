//! Dropping the guard frees the buffer: using it afterwards must not compile.
use storport::registry::{Registry, Scope};

fn read_freed(registry: &mut Registry) {
    let Ok(mut buffer) = registry.open(16) else {
        return;
    };
    drop(buffer);
    let _ = buffer.read_dword(Scope::Global, c"DiskCount");
}

fn main() {
    let _: fn(&mut Registry) = read_freed;
}
