//! Use, then free.
use storport::registry::{Registry, Scope};

fn read_then_free(registry: &mut Registry) {
    let Ok(mut buffer) = registry.open(16) else {
        return;
    };
    let _ = buffer.read_dword(Scope::Global, c"DiskCount");
    drop(buffer);
}

fn main() {
    let _: fn(&mut Registry) = read_then_free;
}
