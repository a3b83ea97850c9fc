//! An SRB handle lives for its start-io call: it cannot be kept for later
//! (completion from elsewhere would need the port's ownership rules).
use std::sync::Mutex;

use storport::Srb;

static LATER: Mutex<Vec<Srb<'static>>> = Mutex::new(Vec::new());

fn keep(srb: Srb<'_>) {
    LATER.lock().unwrap().push(srb);
}

fn main() {
    let _: fn(Srb<'_>) = keep;
}
