//! Storport requires `HwAdapterControl` of every miniport, so the trait
//! method has no default: a miniport without it does not compile.
use storport::{FindAdapterContext, FindAdapterError, Miniport, SrbStatus, StartIoRequest};

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
}

fn main() {
    let _ = core::mem::size_of::<Driver>();
}
