//! Only the layer makes a registry capability, inside a PASSIVE_LEVEL
//! callback: code outside the crate cannot build one.
use storport::registry::Registry;

fn forge() -> Registry {
    Registry {
        device_extension: core::ptr::NonNull::dangling(),
    }
}

fn main() {
    let _ = forge;
}
