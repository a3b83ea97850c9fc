//! The running-config case (PASSIVE_LEVEL) reaches the registry.
use storport::registry::Scope;
use storport::{
    AdapterControl, ControlStatus, ControlType, FindAdapterContext, FindAdapterError, Miniport,
    SrbStatus, StartIoRequest,
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
            AdapterControl::QuerySupportedControlTypes { mut supported, .. } => {
                supported.set(ControlType::Stop);
                supported.set(ControlType::Restart);
                ControlStatus::Success
            }
            AdapterControl::SetRunningConfig { registry } => {
                if let Ok(mut buffer) = registry.open(16) {
                    let _ = buffer.read_dword(Scope::Adapter, c"ReadOnly");
                }
                ControlStatus::Success
            }
            _ => ControlStatus::Success,
        }
    }
}

fn main() {
    let _ = core::mem::size_of::<Driver>();
}
