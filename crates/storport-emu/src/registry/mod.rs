//! The emulated registry: an in-memory key tree rooted at
//! `HKLM\SYSTEM\CurrentControlSet`, values stored as Windows stores them,
//! the semantics of Storport's four registry calls, and the `--set` option.
//!
//! - [`Registry`], [`RegValue`], [`RegType`]: the tree and its values.
//! - [`registry_read`], [`registry_write`], [`RegistryScope`]:
//!   `StorPortRegistryRead` / `StorPortRegistryWrite` over safe slices.
//! - [`RegistryBuffers`]: `StorPortAllocateRegistryBuffer` /
//!   `StorPortFreeRegistryBuffer` bookkeeping for one miniport instance.
//! - [`parse_set`], [`apply`]: `--set [SUBKEY\]NAME=TYPE:VALUE`.
//!
//! Nothing here touches driver memory; the port model converts raw pointers
//! into slices before calling in.

mod buffers;
mod set;
mod storport;
mod tree;
mod value;

pub use buffers::{AllocateError, FreeError, LeakedBuffer, RegistryBuffer, RegistryBuffers};
pub(crate) use set::parse_number;
pub use set::{SetError, SetProblem, SetSpec, apply, parse_set};
pub use storport::{
    ReadOutcome, RegistryCallError, RegistryScope, ansi_name, registry_read, registry_write,
};
pub use tree::Registry;
pub use value::{RegType, RegValue};
