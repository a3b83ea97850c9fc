//! The guard lives as long as the protected update.
#![deny(unused_must_use)]
use storport::RwSpinLock;

fn bump(lock: &RwSpinLock<u32>) {
    let mut value = lock.lock_exclusive();
    *value += 1;
}

fn main() {
    let _: fn(&RwSpinLock<u32>) = bump;
}
