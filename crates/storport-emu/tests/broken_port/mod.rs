//! The broken-miniport fixture under the port's Rust API, for the test
//! files that drive it directly: loaded and started with one breakage, and
//! the CDB they send most.

use std::sync::Arc;

use storport_emu::machine::loader;
use storport_emu::port::cpu::GateCpu;
use storport_emu::port::{Port, PortOptions, exports};
use storport_emu::registry::RegValue;

use crate::port_support::fixture;

/// The fixture with `Break=<breakage>`, loaded and started.
pub fn started(breakage: &str) -> Port {
    let bytes = std::fs::read(fixture("")).expect("fixture image");
    let loaded = loader::load_named("broken-miniport.sys", &bytes, &exports::resolve, false)
        .expect("the fixture loads");
    let entry = loaded.entry_point().expect("entry point");
    let port = Port::new(
        entry,
        Arc::new(GateCpu::default()),
        PortOptions {
            service: "broken-miniport".to_owned(),
            ..PortOptions::default()
        },
        Some(Box::new(loaded)),
    );
    port.registry().registry.set_value(
        r"Services\broken-miniport\Parameters\Device",
        "Break",
        RegValue::sz(breakage),
    );
    port.driver_entry().expect("DriverEntry");
    port.start().expect("start");
    port
}

/// A READ(10) or WRITE(10) CDB of `blocks` blocks at `lba`.
pub fn rw10(opcode: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let mut cdb = [0_u8; 10];
    cdb[0] = opcode;
    cdb[2..6].copy_from_slice(&lba.to_be_bytes());
    cdb[7..9].copy_from_slice(&blocks.to_be_bytes());
    cdb
}
