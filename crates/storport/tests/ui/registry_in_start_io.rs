//! Start-io runs at up to DISPATCH_LEVEL, where registry calls are illegal:
//! it is given no capability, and the shared adapter state cannot hold one
//! (the adapter must be `Sync`; the capability is not).
use storport::registry::{Registry, Scope};
use storport::{AdapterControl, ControlStatus, FindAdapterContext, FindAdapterError, Miniport, SrbStatus, StartIoRequest};

struct Driver;

struct Adapter {
    registry: &'static mut Registry,
}

impl Miniport for Driver {
    type Adapter = Adapter;

    fn find_adapter(_: &mut FindAdapterContext<'_>) -> Result<Adapter, FindAdapterError> {
        Err(FindAdapterError::NotFound)
    }

    fn start_io(adapter: &Adapter, request: StartIoRequest<'_>) {
        let registry: *const Registry = &*adapter.registry;
        let _ = (registry, Scope::Global);
        request.complete(SrbStatus::SUCCESS);
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
