//! Safe Storport layer for virtual miniports.
#![no_std]

#[cfg(target_os = "windows")]
mod rt;
