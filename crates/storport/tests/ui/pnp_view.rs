//! A PNP request is a `SCSI_PNP_REQUEST_BLOCK`: offset 4 is `PnPSubFunction`,
//! not `ScsiStatus`, and the page tells the miniport to ignore its data
//! buffer and transfer length. Its view offers none of them.
use storport::{PnpSrb, SrbStatus};

fn answer(mut srb: PnpSrb<'_>) {
    srb.set_scsi_status(0);
    srb.set_data_transfer_length(0);
    let _ = srb.data_out();
    let _ = srb.sense_mut();
    srb.complete(SrbStatus::SUCCESS);
}

fn main() {
    let _: fn(PnpSrb<'_>) = answer;
}
