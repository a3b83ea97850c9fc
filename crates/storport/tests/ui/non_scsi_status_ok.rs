//! A POWER request and a reset are answered with a status alone.
use storport::{Addressee, DevicePowerState, OtherSrb, PowerSrb, SrbFunction, SrbStatus};

fn power(srb: PowerSrb<'_>) {
    let status = match (srb.device_power_state(), srb.addressee()) {
        (DevicePowerState::Other(_), _) => SrbStatus::INVALID_REQUEST,
        (_, Addressee::Adapter | Addressee::Unit { .. }) => SrbStatus::SUCCESS,
        _ => SrbStatus::ERROR,
    };
    srb.complete(status);
}

fn other(srb: OtherSrb<'_>) {
    let status = match (srb.function(), srb.addressee()) {
        (SrbFunction::ResetBus, Some(Addressee::Bus { .. })) => SrbStatus::SUCCESS,
        _ => SrbStatus::INVALID_REQUEST,
    };
    srb.complete(status);
}

fn main() {
    let _: fn(PowerSrb<'_>) = power;
    let _: fn(OtherSrb<'_>) = other;
}
