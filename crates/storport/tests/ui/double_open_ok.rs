//! One buffer, then another after the first is dropped.
use storport::registry::{Registry, Scope};

fn read_two(registry: &mut Registry) {
    if let Ok(mut first) = registry.open(16) {
        let _ = first.read_dword(Scope::Global, c"DiskCount");
    }
    let Ok(mut second) = registry.open(16) else {
        return;
    };
    let _ = second.read_dword(Scope::Global, c"SectorSize");
}

fn main() {
    let _: fn(&mut Registry) = read_two;
}
