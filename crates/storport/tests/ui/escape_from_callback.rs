//! The buffer borrows the callback's capability: it cannot be handed out of
//! the callback with a longer lifetime.
use storport::FindAdapterContext;
use storport::registry::RegistryBuffer;

fn keep(context: &mut FindAdapterContext<'_>) -> Option<RegistryBuffer<'static>> {
    context.registry().open(64).ok()
}

fn main() {
    let _ = keep;
}
