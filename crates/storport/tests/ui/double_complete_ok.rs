//! Decide the status first, then complete once.
use storport::{Srb, SrbStatus};

fn finish(mut srb: Srb<'_>) {
    let status = if srb.cdb().is_empty() {
        SrbStatus::INVALID_REQUEST
    } else {
        SrbStatus::SUCCESS
    };
    srb.set_scsi_status(0);
    srb.complete(status);
}

fn main() {
    let _: fn(Srb<'_>) = finish;
}
