//! Completing with SRB_STATUS_PENDING is SDV's StorPortStatusPending
//! violation: there is no such completion status.
use storport::{Srb, SrbStatus};

fn finish(srb: Srb<'_>) {
    srb.complete(SrbStatus::PENDING);
}

fn main() {
    let _: fn(Srb<'_>) = finish;
}
