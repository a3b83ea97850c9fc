//! vstor: a Storport virtual miniport exposing RAM-backed SCSI disks.
//!
//! The driver is written on the safe `storport` layer: [`Vstor`] implements
//! [`storport::Miniport`], and `DriverEntry` (in the binary) hands the
//! kernel's arguments to `storport::initialize::<Vstor>`. No `unsafe` code
//! lives in this library.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod config;
mod miniport;
pub mod ramdisk;
mod registry_source;
pub mod scsi;

pub use miniport::{Adapter, Vstor};

// The safe layer also supplies the kernel runtime (panic handler).
extern crate storport;
