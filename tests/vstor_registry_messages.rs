//! What vstor says when Storport's registry routines fail: the layer's
//! error names what failed, and vstor's own line says what happens next at
//! that moment (a start, or `ScsiSetRunningConfig`), since only the driver
//! knows its policy.

mod common;

use common::{Adapter, global, registry_with};
use storport_emu::port::FaultSpec;
use storport_emu::registry::RegValue;

/// An adapter of `settings` whose registry-buffer allocations fail as
/// `faults` say, started.
fn start_failing(settings: &[common::Setting], faults: Vec<FaultSpec>) -> Adapter {
    let (registry, service) = registry_with(settings);
    let adapter = Adapter::unentered(registry, &service);
    adapter.port.inject_faults(faults);
    adapter.port.driver_entry().expect("DriverEntry");
    adapter.port.start().expect("the adapter starts");
    adapter
}

const STARTED: &str = "vstor: adapter started (start 1) with 1 disk(s)";

#[test]
fn no_registry_buffer_at_a_start_means_every_default() {
    let adapter = start_failing(
        &[global("DiskCount", RegValue::dword(2))],
        vec![FaultSpec::once("StorPortAllocateRegistryBuffer", 1)],
    );
    assert_eq!(
        adapter.dbgprint(),
        vec![
            "vstor: Storport could not allocate a registry buffer of 64 bytes. The registry is \
             not read further at this start: the settings not read yet take their defaults, and \
             StartCount and EffectiveConfig are not written."
                .to_owned(),
            STARTED.to_owned(),
        ]
    );
    assert_eq!(adapter.report_luns().len(), 1, "DiskCount's default");
    assert_eq!(adapter.value(&adapter.adapter_key(), "StartCount"), None);
    adapter.finish_clean();
}

#[test]
fn a_buffer_that_cannot_grow_ends_the_reading() {
    // VendorId (read after the disk settings) needs a larger buffer than
    // the first one; growing it fails, so VendorId and every later setting
    // take their defaults.
    let adapter = start_failing(
        &[global("VendorId", RegValue::sz(&"V".repeat(100)))],
        vec![FaultSpec::once("StorPortAllocateRegistryBuffer", 2)],
    );
    assert_eq!(
        adapter.dbgprint(),
        vec![
            "vstor: Storport could not allocate a registry buffer of 101 bytes. The registry is \
             not read further at this start: the settings not read yet take their defaults, and \
             StartCount and EffectiveConfig are not written."
                .to_owned(),
            STARTED.to_owned(),
        ]
    );
    assert_eq!(&adapter.inquiry(0)[8..16], b"VSTOR   ");
    assert_eq!(adapter.value(&adapter.adapter_key(), "StartCount"), None);
    adapter.finish_clean();
}

#[test]
fn effective_config_without_a_buffer_large_enough_is_left_out() {
    let adapter = start_failing(
        &[],
        vec![FaultSpec::once("StorPortAllocateRegistryBuffer", 2)],
    );
    assert_eq!(
        adapter.dbgprint(),
        vec![
            "vstor: no registry buffer large enough for EffectiveConfig; it is not written this \
             start (StartCount is): Storport could not allocate a registry buffer of 140 bytes."
                .to_owned(),
            STARTED.to_owned(),
        ]
    );
    assert_eq!(
        adapter.value(&adapter.adapter_key(), "StartCount"),
        Some(RegValue::dword(1))
    );
    adapter.finish_clean();
}

#[test]
fn no_registry_buffer_for_the_running_configuration_means_writable_disks() {
    let adapter = start_failing(
        &[global("ReadOnly", RegValue::dword(1))],
        // The start opens one buffer and grows it for EffectiveConfig; the
        // running configuration's is the third.
        vec![FaultSpec::once("StorPortAllocateRegistryBuffer", 3)],
    );
    assert_eq!(adapter.port.set_running_config(), Ok(0));
    assert_eq!(
        adapter.dbgprint(),
        vec![
            STARTED.to_owned(),
            "vstor: Storport could not allocate a registry buffer of 64 bytes. ReadOnly takes \
             its default, 0, until it is read again."
                .to_owned(),
        ]
    );
    adapter.write_ok(0, 0, vec![0x5A; 512], 512);
    adapter.finish_clean();
}
