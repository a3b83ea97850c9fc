//! The registry buffer must not be stored in the adapter state, which
//! outlives find-adapter and is shared with start-io.
use storport::registry::RegistryBuffer;
use storport::{AdapterControl, ControlStatus, FindAdapterContext, FindAdapterError, Miniport, SrbStatus, StartIoRequest};

struct Driver;

struct Adapter {
    settings: RegistryBuffer<'static>,
}

impl Miniport for Driver {
    type Adapter = Adapter;

    fn find_adapter(context: &mut FindAdapterContext<'_>) -> Result<Adapter, FindAdapterError> {
        let settings = context
            .registry()
            .open(64)
            .map_err(|_| FindAdapterError::Error)?;
        Ok(Adapter { settings })
    }

    fn start_io(_: &Adapter, request: StartIoRequest<'_>) {
        request.complete(SrbStatus::NO_DEVICE);
    }

    fn reset_bus(_: &Adapter, _: u8) -> bool {
        true
    }

    fn adapter_control(_: &Adapter, control: AdapterControl<'_>) -> ControlStatus {
        control.answer_without_state()
    }
}

fn main() {
    let _ = core::mem::size_of::<Driver>();
}
