//! The `storemu` command.
fn main() {}
