//! vstor: a Storport virtual miniport exposing RAM-backed SCSI disks.
#![cfg_attr(not(test), no_std)]

pub mod config;
mod miniport;
pub mod scsi;

pub use miniport::driver_entry;

// The safe layer also supplies the kernel runtime (panic handler).
extern crate storport;
