//! Decide the status first, then complete once.
use storport::{Addressee, PnpSrb, SrbStatus};

fn finish(srb: PnpSrb<'_>) {
    let status = if srb.addressee() == Addressee::Adapter {
        SrbStatus::SUCCESS
    } else {
        SrbStatus::INVALID_REQUEST
    };
    srb.complete(status);
}

fn main() {
    let _: fn(PnpSrb<'_>) = finish;
}
