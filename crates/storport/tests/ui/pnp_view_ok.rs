//! A PNP request is answered from its action and addressee, with a status
//! alone.
use storport::{Addressee, PnpAction, PnpSrb, SrbStatus};

fn answer(srb: PnpSrb<'_>) {
    let status = match (srb.action(), srb.addressee()) {
        (PnpAction::Other(_), Addressee::Unit { .. }) => SrbStatus::INVALID_REQUEST,
        _ => SrbStatus::SUCCESS,
    };
    srb.complete(status);
}

fn main() {
    let _: fn(PnpSrb<'_>) = answer;
}
