//! An acquire whose guard is dropped at once protects nothing: the guard is
//! `#[must_use]`.
#![deny(unused_must_use)]
use storport::RwSpinLock;

fn bump(lock: &RwSpinLock<u32>, value: &mut u32) {
    lock.lock_exclusive();
    *value += 1;
}

fn main() {
    let _: fn(&RwSpinLock<u32>, &mut u32) = bump;
}
