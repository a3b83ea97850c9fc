//! `SharedBytes` takes only storage that owns its words: a `&'static`
//! slice could be shared by a second `SharedBytes`, whose own lock would
//! not keep the two apart.
use core::sync::atomic::AtomicU64;
use storport::SharedBytes;

static WORDS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

fn main() {
    let _first = SharedBytes::new(&WORDS[..]);
}
