//! Stop and restart run at DIRQL: they carry no registry capability, while
//! the PASSIVE_LEVEL running-config case does.
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
        match control {
            AdapterControl::Stop { registry } => {
                let _ = registry.open(16);
                ControlStatus::Success
            }
            _ => ControlStatus::Success,
        }
    }
}

fn main() {
    let _ = core::mem::size_of::<Driver>();
}
