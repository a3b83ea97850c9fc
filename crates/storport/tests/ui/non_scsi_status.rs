//! Only SCSI commands carry a SCSI status, sense and a transfer length: the
//! views of POWER requests and of the other functions (resets, flush,
//! shutdown, abort) complete with `SrbStatus` alone.
use storport::{OtherSrb, PowerSrb, SrbStatus};

fn power(mut srb: PowerSrb<'_>) {
    srb.set_scsi_status(0);
    srb.complete(SrbStatus::SUCCESS);
}

fn other(mut srb: OtherSrb<'_>) {
    srb.set_data_transfer_length(0);
    let _ = srb.cdb();
    srb.complete(SrbStatus::SUCCESS);
}

fn main() {
    let _: fn(PowerSrb<'_>) = power;
    let _: fn(OtherSrb<'_>) = other;
}
