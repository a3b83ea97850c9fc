//! Whole-driver SRBs: random function, CDB, data direction and length, path,
//! target and LUN, sent to the real `vstor.sys` running under storemu.
//!
//! One port is created per process and reused (find-adapter allocates the
//! disks once). After every input the port must have no finding and no bug
//! check: a double completion, a write past the data buffer, a completion
//! with more bytes than supplied, a pool allocation in HwStartIo or a fault
//! all end the run as a crash.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use storport_emu::port::{DataDirection, Port};
use storport_emu::registry::RegValue;
use vstor_fuzz::Bytes;

fn port() -> &'static Port {
    static PORT: OnceLock<Port> = OnceLock::new();
    PORT.get_or_init(|| {
        let (mut registry, service) = vstor_fuzz::inf_registry();
        let key = format!("Services\\{service}\\Parameters\\Device");
        registry.set_value(&key, "DiskCount", RegValue::dword(2));
        registry.set_value(&key, "DiskSizesMiB", RegValue::multi_sz(&["1", "2"]));
        let port = vstor_fuzz::port(&vstor_fuzz::image_bytes(), &service);
        port.set_registry(registry);
        port.driver_entry().expect("DriverEntry succeeds");
        port.start().expect("the adapter starts");
        port
    })
}

fuzz_target!(|data: &[u8]| {
    let port = port();
    let mut input = Bytes::new(data);
    let mut requests = 0;
    while !input.is_empty() && requests < 32 {
        requests += 1;
        let control = input.u8();
        let function = if control & 0x80 == 0 { 0 } else { input.u8() };
        let lun = input.u8() % 4;
        let path = if control & 0x40 == 0 {
            0
        } else {
            input.u8() % 3
        };
        let target = if control & 0x20 == 0 {
            0
        } else {
            input.u8() % 3
        };
        let cdb_len = usize::from(input.u8() % 17);
        let cdb = input.take(cdb_len).to_vec();
        let len = usize::from(input.u16() % 16384);
        let direction = match control & 3 {
            1 => DataDirection::In(len),
            2 => {
                let mut out = input.take(len).to_vec();
                out.resize(len, 0x5A);
                DataDirection::Out(out)
            }
            _ => DataDirection::None,
        };
        let result = port
            .submit((path, target, lun), function, &cdb, &direction)
            .unwrap_or_else(|error| panic!("SRB function {function:#x} CDB {cdb:02x?}: {error}"));
        assert_ne!(result.srb_status, 0, "the SRB completed: {result:?}");
        let findings = port.findings();
        assert!(
            findings.is_empty() && !port.bugchecked(),
            "function {function:#x} CDB {cdb:02x?} to {path}:{target}:{lun}: {findings:#?}"
        );
    }
});
