//! A raw status byte becomes a completion status only if it is not pending.
use storport::{Srb, SrbStatus};

fn finish(srb: Srb<'_>, raw: u8) {
    srb.complete(SrbStatus::from_raw(raw).unwrap_or(SrbStatus::INTERNAL_ERROR));
}

fn main() {
    let _: fn(Srb<'_>, u8) = finish;
    assert_eq!(SrbStatus::from_raw(0), None);
}
