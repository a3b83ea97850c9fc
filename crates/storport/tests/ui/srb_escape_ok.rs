//! Keep what the request said, complete the request now.
use std::sync::Mutex;

use storport::{Srb, SrbStatus};

static OPCODES: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn keep(srb: Srb<'_>) {
    OPCODES
        .lock()
        .unwrap()
        .push(srb.cdb().first().copied().unwrap_or(0));
    srb.complete(SrbStatus::SUCCESS);
}

fn main() {
    let _: fn(Srb<'_>) = keep;
}
