//! Storport requires `HwAdapterControl` of every miniport; one with nothing
//! to stop or re-read answers with `answer_without_state`.
use storport::{
    AdapterControl, ControlStatus, FindAdapterContext, FindAdapterError, Miniport, SrbStatus, StartIoRequest,
};

struct Driver;

impl Miniport for Driver {
    type Adapter = ();

    fn find_adapter(_: &mut FindAdapterContext<'_>) -> Result<(), FindAdapterError> {
        Ok(())
    }

    fn start_io((): &(), request: StartIoRequest<'_>) {
        request.complete(SrbStatus::SUCCESS);
    }

    fn reset_bus((): &(), _: u8) -> bool {
        true
    }

    fn adapter_control((): &(), control: AdapterControl<'_>) -> ControlStatus {
        control.answer_without_state()
    }
}

fn main() {
    let _ = core::mem::size_of::<Driver>();
}
