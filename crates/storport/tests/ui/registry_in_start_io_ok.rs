//! Start-io uses what find-adapter read, not the registry.
use core::sync::atomic::{AtomicU32, Ordering};

use storport::registry::Scope;
use storport::{AdapterControl, ControlStatus, FindAdapterContext, FindAdapterError, Miniport, SrbStatus, StartIoRequest};

struct Driver;

struct Adapter {
    sector_size: AtomicU32,
}

impl Miniport for Driver {
    type Adapter = Adapter;

    fn find_adapter(context: &mut FindAdapterContext<'_>) -> Result<Adapter, FindAdapterError> {
        let mut buffer = context
            .registry()
            .open(16)
            .map_err(|_| FindAdapterError::Error)?;
        let sector_size = buffer
            .read_dword(Scope::Global, c"SectorSize")
            .unwrap_or(512);
        Ok(Adapter {
            sector_size: AtomicU32::new(sector_size),
        })
    }

    fn start_io(adapter: &Adapter, request: StartIoRequest<'_>) {
        let _ = adapter.sector_size.load(Ordering::Relaxed);
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
