//! Read into plain values and store those.
use storport::registry::Scope;
use storport::{AdapterControl, ControlStatus, FindAdapterContext, FindAdapterError, Miniport, SrbStatus, StartIoRequest};

struct Driver;

struct Adapter {
    disk_count: u32,
}

impl Miniport for Driver {
    type Adapter = Adapter;

    fn find_adapter(context: &mut FindAdapterContext<'_>) -> Result<Adapter, FindAdapterError> {
        let mut settings = context
            .registry()
            .open(64)
            .map_err(|_| FindAdapterError::Error)?;
        let disk_count = settings
            .read_dword(Scope::Global, c"DiskCount")
            .unwrap_or(1);
        Ok(Adapter { disk_count })
    }

    fn start_io(adapter: &Adapter, request: StartIoRequest<'_>) {
        let status = if adapter.disk_count == 0 {
            SrbStatus::NO_DEVICE
        } else {
            SrbStatus::SUCCESS
        };
        request.complete(status);
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
