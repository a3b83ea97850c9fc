//! A `SharedBytes` owns its words: no second one can reach them.
use core::sync::atomic::AtomicU64;
use storport::SharedBytes;

fn main() {
    let words: Box<[AtomicU64]> = (0..2).map(|_| AtomicU64::new(0)).collect();
    let first = SharedBytes::new(words);
    assert_eq!(first.len_bytes(), 16);
}
