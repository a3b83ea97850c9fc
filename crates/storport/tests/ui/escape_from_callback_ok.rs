//! A helper may return the buffer for as long as it borrows the context.
use storport::FindAdapterContext;
use storport::registry::RegistryBuffer;

fn open<'c>(context: &'c mut FindAdapterContext<'_>) -> Option<RegistryBuffer<'c>> {
    context.registry().open(64).ok()
}

fn main() {
    let _ = open;
}
