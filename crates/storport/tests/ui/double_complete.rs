//! After completion the port owns the SRB (double completion is bug check
//! 0xF1/0x2004): a second `complete` must not compile.
use storport::{Srb, SrbStatus};

fn finish(srb: Srb<'_>) {
    srb.complete(SrbStatus::SUCCESS);
    srb.complete(SrbStatus::ERROR);
}

fn main() {
    let _: fn(Srb<'_>) = finish;
}
