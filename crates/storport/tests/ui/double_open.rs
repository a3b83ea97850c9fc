//! Storport allows one registry buffer per adapter at a time: a second
//! `open` while the first guard lives must not compile.
use storport::registry::{Registry, Scope};

fn read_two(registry: &mut Registry) {
    let Ok(mut first) = registry.open(16) else {
        return;
    };
    let Ok(mut second) = registry.open(16) else {
        return;
    };
    let _ = first.read_dword(Scope::Global, c"DiskCount");
    let _ = second.read_dword(Scope::Global, c"SectorSize");
}

fn main() {
    let _: fn(&mut Registry) = read_two;
}
