//! A capability is received, by reference, from the layer.
use storport::FindAdapterContext;
use storport::registry::Registry;

fn borrow<'c>(context: &'c mut FindAdapterContext<'_>) -> &'c mut Registry {
    context.registry()
}

fn main() {
    let _ = borrow;
}
