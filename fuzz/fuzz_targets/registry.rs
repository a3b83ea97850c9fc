//! Registry values of random type, size and bytes, in the global and the
//! adapter scope, fed to the real `vstor.sys`'s find-adapter (and to
//! `ScsiSetRunningConfig` after the start) under storemu.
//!
//! Every input must end with the adapter started, or not started with
//! SP_RETURN_ERROR (2) or SP_RETURN_BAD_CONFIG (3); never with a bug check,
//! a leak or any other finding. Pool allocations fail from the 40th on, so
//! a configuration asking for gigabytes of disk is refused instead of
//! exhausting the fuzzing machine's memory.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use storport_emu::port::{DataDirection, FaultSpec, PortError, Rule};
use storport_emu::registry::{RegType, RegValue, Registry};
use vstor_fuzz::Bytes;

const NAMES: [&str; 12] = [
    "DiskCount",
    "DiskSizeMiB",
    "DiskSizesMiB",
    "SectorSize",
    "ReadOnly",
    "VendorId",
    "ProductId",
    "ProductRevision",
    "SerialPrefix",
    "TargetPorts",
    "StartCount",
    "EffectiveConfig",
];

fn base() -> &'static (Vec<u8>, Registry, String) {
    static BASE: OnceLock<(Vec<u8>, Registry, String)> = OnceLock::new();
    BASE.get_or_init(|| {
        let (mut registry, service) = vstor_fuzz::inf_registry();
        // Small disks unless the input says otherwise: the INF's 64 MiB
        // would meet the allocation cap on every input.
        registry.set_value(
            &format!("Services\\{service}\\Parameters\\Device"),
            "DiskSizeMiB",
            RegValue::dword(1),
        );
        (vstor_fuzz::image_bytes(), registry, service)
    })
}

fn value(input: &mut Bytes<'_>) -> (String, RegValue) {
    let selector = input.u8();
    let name = NAMES[usize::from(selector) % NAMES.len()].to_owned();
    let reg_type = match input.u8() % 10 {
        0 => RegType::SZ,
        1 | 2 => RegType::DWORD,
        3 => RegType::MULTI_SZ,
        4 => RegType::BINARY,
        5 => RegType::QWORD,
        6 => RegType::EXPAND_SZ,
        7 => RegType::NONE,
        _ => RegType(u32::from(input.u8())),
    };
    let len = usize::from(input.u16() % 600);
    (name, RegValue::from_raw(reg_type, input.take(len).to_vec()))
}

fuzz_target!(|data: &[u8]| {
    let (image, registry, service) = base();
    let mut input = Bytes::new(data);
    let port = vstor_fuzz::port(image, service);
    port.set_registry(registry.clone());
    let global = format!("Services\\{service}\\Parameters\\Device");
    let adapter = port.registry().scope.device_key(0);
    for _ in 0..input.u8() % 10 {
        let scope = if input.u8() & 1 == 0 {
            &global
        } else {
            &adapter
        };
        let (name, value) = value(&mut input);
        port.registry().registry.set_value(scope, &name, value);
    }
    port.inject_faults(vec![FaultSpec {
        call: "ExAllocatePool2",
        nth: 40,
        onward: true,
    }]);
    port.driver_entry().expect("DriverEntry succeeds");
    let started = port.start();
    match started {
        Ok(()) => {
            let inquiry = port
                .execute((0, 0, 0), &[0x12, 0, 0, 0, 96, 0], &DataDirection::In(96))
                .expect("INQUIRY completes");
            assert_eq!(inquiry.status(), 1, "INQUIRY succeeds: {inquiry:?}");
            for _ in 0..input.u8() % 4 {
                let scope = if input.u8() & 1 == 0 {
                    &global
                } else {
                    &adapter
                };
                let (name, value) = value(&mut input);
                port.registry().registry.set_value(scope, &name, value);
            }
            assert_eq!(port.set_running_config(), Ok(0), "ScsiSetRunningConfig");
            assert_eq!(port.stop(), Ok(0), "ScsiStopAdapter");
            port.remove().expect("HwFreeAdapterResources");
        }
        Err(PortError::FindAdapterFailed(2 | 3)) => {}
        Err(error) => panic!(
            "the adapter neither started nor failed with SP_RETURN_ERROR/BAD_CONFIG: {error}\n{:#?}",
            port.findings()
        ),
    }
    port.unload();
    let findings: Vec<_> = port
        .findings()
        .into_iter()
        .filter(|finding| started.is_ok() || finding.rule != Rule::AdapterStartFailed)
        .collect();
    assert!(
        findings.is_empty() && !port.bugchecked(),
        "findings: {findings:#?}\ndebug output: {:#?}",
        port.dbgprint()
    );
});
