//! Every view is completed at most once: `complete` consumes a PNP view as
//! it does a SCSI one.
use storport::{PnpSrb, SrbStatus};

fn finish(srb: PnpSrb<'_>) {
    srb.complete(SrbStatus::SUCCESS);
    srb.complete(SrbStatus::ERROR);
}

fn main() {
    let _: fn(PnpSrb<'_>) = finish;
}
