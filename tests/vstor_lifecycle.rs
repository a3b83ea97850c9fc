//! vstor across its life cycle on the real `vstor.sys` under the emulated
//! Storport port: what it writes back to the registry at each start, what
//! Stop / Restart keep, and what `ScsiSetRunningConfig` changes.

mod common;

use common::{
    Adapter, CONTROL_SUCCESS, Setting, WRITE_PROTECTED, assert_check_condition, assert_good, block,
    blocks, first_adapter, global, registry_with,
};
use storport_emu::port::DataDirection;
use storport_emu::registry::{RegType, RegValue};

fn small() -> Setting {
    global("DiskSizeMiB", RegValue::dword(1))
}

/// `StartCount` of the adapter's own key.
fn start_count(adapter: &Adapter) -> Option<RegValue> {
    adapter.value(&adapter.adapter_key(), "StartCount")
}

/// `EffectiveConfig` of the adapter's own key, as text.
fn effective_config(adapter: &Adapter) -> String {
    let value = adapter
        .value(&adapter.adapter_key(), "EffectiveConfig")
        .expect("EffectiveConfig is written at start");
    assert_eq!(value.reg_type(), RegType::SZ, "EffectiveConfig is a REG_SZ");
    value.string().expect("a string")
}

/// The WP bit of MODE SENSE(6)'s header (device-specific parameter, bit 7).
fn write_protect_bit(adapter: &Adapter, lun: u8) -> bool {
    let result = adapter.execute(lun, &[0x1A, 0x08, 0x3F, 0, 255, 0], &DataDirection::In(255));
    assert_good(&result, "MODE SENSE(6)");
    result.data[2] & 0x80 != 0
}

#[test]
fn start_count_counts_every_start_in_the_adapters_key() {
    let (registry, service) = registry_with(&[small()]);
    let mut registry = registry;
    for start in 1..=3_u32 {
        let adapter = Adapter::start_on(registry, &service);
        assert_eq!(
            start_count(&adapter),
            Some(RegValue::dword(start)),
            "StartCount after start {start}"
        );
        assert_eq!(
            adapter.value(&adapter.global_key(), "StartCount"),
            None,
            "StartCount is the adapter's, not written for every adapter"
        );
        assert!(
            adapter.dbgprint().contains(&format!(
                "vstor: adapter started (start {start}) with 1 disk(s)"
            )),
            "{:#?}",
            adapter.dbgprint()
        );
        adapter.finish_clean();
        registry = adapter.registry();
    }
}

#[test]
fn start_count_continues_from_the_stored_count() {
    let adapter = Adapter::start(&[small(), first_adapter("StartCount", RegValue::dword(41))]);
    assert_eq!(start_count(&adapter), Some(RegValue::dword(42)));
    adapter.finish_clean();
}

#[test]
fn set_running_config_is_not_a_start() {
    // ScsiSetRunningConfig runs at PASSIVE_LEVEL with the registry in
    // reach, after a start; it re-reads what may change at run time and is
    // not counted as a start. (Stop and Restart run at DIRQL, where a
    // registry write is refused and reported, which `finish_clean` checks.)
    let adapter = Adapter::start(&[small()]);
    assert_eq!(start_count(&adapter), Some(RegValue::dword(1)));
    for _ in 0..2 {
        assert_eq!(adapter.port.set_running_config(), Ok(CONTROL_SUCCESS));
    }
    assert_eq!(adapter.port.stop(), Ok(CONTROL_SUCCESS));
    assert_eq!(adapter.port.restart(), Ok(CONTROL_SUCCESS));
    assert_eq!(adapter.port.set_running_config(), Ok(CONTROL_SUCCESS));
    assert_eq!(start_count(&adapter), Some(RegValue::dword(1)));
    adapter.finish_clean();
}

#[test]
fn effective_config_names_the_configuration_in_force() {
    let adapter = Adapter::start(&[
        global("DiskCount", RegValue::dword(2)),
        global("DiskSizesMiB", RegValue::multi_sz(&["2", "1"])),
        global("SectorSize", RegValue::dword(4096)),
        global("VendorId", RegValue::sz("ACME")),
        global("ProductId", RegValue::sz("TEST DISK")),
        global("ProductRevision", RegValue::sz("7")),
        global("SerialPrefix", RegValue::sz("SN-")),
        global("TargetPorts", RegValue::dword(3)),
    ]);
    assert_eq!(
        effective_config(&adapter),
        "DiskCount=2;DiskSizesMiB=2,1;SectorSize=4096;ReadOnly=0;VendorId=ACME;\
         ProductId=TEST DISK;ProductRevision=7;SerialPrefix=SN-;TargetPorts=3"
    );
    assert_eq!(
        adapter.value(&adapter.global_key(), "EffectiveConfig"),
        None,
        "EffectiveConfig is written in the adapter scope only"
    );
    adapter.finish_clean();
}

#[test]
fn effective_config_shows_defaults_used_for_bad_values_and_overrides() {
    let adapter = Adapter::start(&[
        small(),
        global("VendorId", RegValue::sz("FAR TOO LONG")),
        global("SectorSize", RegValue::dword(1000)),
        first_adapter("ReadOnly", RegValue::dword(1)),
        first_adapter("DiskCount", RegValue::dword(3)),
    ]);
    assert_eq!(
        effective_config(&adapter),
        "DiskCount=3;DiskSizesMiB=1,1,1;SectorSize=512;ReadOnly=1;VendorId=VSTOR;\
         ProductId=RAM DISK;ProductRevision=0001;SerialPrefix=VST;TargetPorts=1"
    );
    adapter.finish_clean();
}

#[test]
fn effective_config_follows_the_registry_from_start_to_start() {
    let (registry, service) = registry_with(&[small()]);
    let first = Adapter::start_on(registry, &service);
    assert_eq!(
        effective_config(&first),
        "DiskCount=1;DiskSizesMiB=1;SectorSize=512;ReadOnly=0;VendorId=VSTOR;\
         ProductId=RAM DISK;ProductRevision=0001;SerialPrefix=VST;TargetPorts=1"
    );
    first.finish_clean();
    let mut registry = first.registry();
    registry.set_value(
        &format!("Services\\{service}\\Parameters\\Device"),
        "DiskCount",
        RegValue::dword(2),
    );
    let second = Adapter::start_on(registry, &service);
    assert_eq!(
        effective_config(&second),
        "DiskCount=2;DiskSizesMiB=1,1;SectorSize=512;ReadOnly=0;VendorId=VSTOR;\
         ProductId=RAM DISK;ProductRevision=0001;SerialPrefix=VST;TargetPorts=1"
    );
    assert_eq!(start_count(&second), Some(RegValue::dword(2)));
    second.finish_clean();
}

#[test]
fn data_written_before_stop_is_read_back_after_restart() {
    let adapter = Adapter::start(&[global("DiskCount", RegValue::dword(2)), small()]);
    let lbas: [u32; 4] = [0, 1, 1000, 2047];
    for lun in 0..2 {
        for &lba in &lbas {
            adapter.write_ok(lun, lba, block(512, lun, u64::from(lba), 1), 512);
        }
        adapter.write_ok(lun, 100, blocks(512, lun, 100, 8, 1), 512);
    }
    for cycle in 1..=2 {
        assert_eq!(adapter.port.stop(), Ok(CONTROL_SUCCESS), "ScsiStopAdapter");
        assert_eq!(
            adapter.port.restart(),
            Ok(CONTROL_SUCCESS),
            "ScsiRestartAdapter"
        );
        for lun in 0..2 {
            for &lba in &lbas {
                assert_eq!(
                    adapter.read_ok(lun, lba, 1, 512),
                    block(512, lun, u64::from(lba), 1),
                    "LUN {lun} LBA {lba} after stop/restart {cycle}"
                );
            }
            assert_eq!(
                adapter.read_ok(lun, 100, 8, 512),
                blocks(512, lun, 100, 8, 1),
                "LUN {lun} LBAs 100..108 after stop/restart {cycle}"
            );
            assert_eq!(
                adapter.read_ok(lun, 500, 1, 512),
                vec![0; 512],
                "an unwritten block is still zero"
            );
        }
    }
    // The adapter still takes writes after the restart.
    adapter.write_ok(0, 5, block(512, 0, 5, 2), 512);
    assert_eq!(adapter.read_ok(0, 5, 1, 512), block(512, 0, 5, 2));
    adapter.finish_clean();
}

#[test]
fn data_survives_a_bus_reset_which_the_next_command_learns_of() {
    let adapter = Adapter::start(&[small()]);
    adapter.write_ok(0, 9, block(512, 0, 9, 4), 512);
    assert_eq!(adapter.port.reset_bus(0), Ok(true));
    // The first command after the reset gets UNIT ATTENTION, SCSI BUS RESET OCCURRED
    // (29h/02h), once; INQUIRY neither reports nor clears it.
    assert_eq!(adapter.inquiry(0)[8..13], *b"VSTOR");
    assert_check_condition(
        &adapter.read10(0, 9, 1, 512),
        (0x06, 0x29, 0x02),
        "READ(10) after HwResetBus",
    );
    assert_eq!(adapter.read_ok(0, 9, 1, 512), block(512, 0, 9, 4));
    adapter.finish_clean();
}

#[test]
fn set_running_config_flips_write_protection() {
    let adapter = Adapter::start(&[global("DiskCount", RegValue::dword(2)), small()]);
    let global_key = adapter.global_key();
    for lun in 0..2 {
        adapter.write_ok(lun, 3, block(512, lun, 3, 1), 512);
        assert!(!write_protect_bit(&adapter, lun));
    }

    adapter.set_value(&global_key, "ReadOnly", RegValue::dword(1));
    assert_eq!(adapter.port.set_running_config(), Ok(CONTROL_SUCCESS));
    for lun in 0..2 {
        let write = adapter.write10(lun, 3, 1, block(512, lun, 3, 2));
        assert_check_condition(&write, WRITE_PROTECTED, "WRITE(10) after ReadOnly = 1");
        assert_eq!(
            adapter.read_ok(lun, 3, 1, 512),
            block(512, lun, 3, 1),
            "reads still work and the refused write changed nothing"
        );
        assert!(write_protect_bit(&adapter, lun), "MODE SENSE shows WP");
    }

    adapter.set_value(&global_key, "ReadOnly", RegValue::dword(0));
    assert_eq!(adapter.port.set_running_config(), Ok(CONTROL_SUCCESS));
    for lun in 0..2 {
        adapter.write_ok(lun, 3, block(512, lun, 3, 3), 512);
        assert_eq!(adapter.read_ok(lun, 3, 1, 512), block(512, lun, 3, 3));
        assert!(!write_protect_bit(&adapter, lun));
    }
    adapter.finish_clean();
}

#[test]
fn set_running_config_honours_the_adapter_override_and_reports_bad_values() {
    let adapter = Adapter::start(&[small()]);
    let adapter_key = adapter.adapter_key();
    adapter.set_value(&adapter_key, "ReadOnly", RegValue::dword(1));
    assert_eq!(adapter.port.set_running_config(), Ok(CONTROL_SUCCESS));
    let write = adapter.write10(0, 0, 1, block(512, 0, 0, 1));
    assert_check_condition(
        &write,
        WRITE_PROTECTED,
        "WRITE(10) after Device<N> ReadOnly = 1",
    );

    adapter.set_value(&adapter_key, "ReadOnly", RegValue::dword(5));
    assert_eq!(adapter.port.set_running_config(), Ok(CONTROL_SUCCESS));
    let reports: Vec<String> = adapter
        .dbgprint()
        .into_iter()
        .filter(|line| line.starts_with("vstor: registry value "))
        .collect();
    assert_eq!(
        reports,
        vec![
            "vstor: registry value ReadOnly of this adapter (Parameters\\Device<N>) = 5 is out \
             of range; expected 0 or 1; using the value all adapters share (Parameters\\Device)."
                .to_owned()
        ]
    );
    adapter.write_ok(0, 0, block(512, 0, 0, 2), 512);
    adapter.finish_clean();
}

#[test]
fn set_running_config_changes_only_what_may_change_at_run_time() {
    let adapter = Adapter::start(&[small()]);
    let global_key = adapter.global_key();
    adapter.set_value(&global_key, "DiskCount", RegValue::dword(4));
    adapter.set_value(&global_key, "VendorId", RegValue::sz("CHANGED"));
    assert_eq!(adapter.port.set_running_config(), Ok(CONTROL_SUCCESS));
    assert_eq!(adapter.report_luns(), vec![0]);
    assert_eq!(&adapter.inquiry(0)[8..16], b"VSTOR   ");
    assert_eq!(adapter.capacity(0), (2047, 512));
    adapter.finish_clean();
}

#[test]
fn the_disks_live_in_tagged_pool_from_start_to_removal() {
    let adapter = Adapter::start(&[
        global("DiskCount", RegValue::dword(2)),
        global("DiskSizesMiB", RegValue::multi_sz(&["1", "2"])),
    ]);
    let disk_bytes = adapter.pool_bytes(*b"vstD");
    assert!(
        disk_bytes >= 3 << 20,
        "3 MiB of disks in pool tagged vstD, found {disk_bytes} bytes"
    );
    assert!(
        !adapter.holds_registry_buffer(),
        "find-adapter released its registry buffer"
    );
    assert_eq!(adapter.port.stop(), Ok(CONTROL_SUCCESS));
    assert_eq!(adapter.port.restart(), Ok(CONTROL_SUCCESS));
    assert_eq!(
        adapter.pool_bytes(*b"vstD"),
        disk_bytes,
        "Stop/Restart keep the disks"
    );
    assert_eq!(adapter.port.set_running_config(), Ok(CONTROL_SUCCESS));
    assert!(
        !adapter.holds_registry_buffer(),
        "SetRunningConfig released its registry buffer"
    );
    assert_eq!(adapter.port.stop(), Ok(CONTROL_SUCCESS));
    adapter.port.remove().expect("HwFreeAdapterResources runs");
    assert_eq!(
        adapter.pool_blocks(),
        0,
        "HwFreeAdapterResources freed every pool block"
    );
    adapter.port.unload();
    assert_eq!(adapter.findings(), vec![]);
}

#[test]
fn two_adapters_keep_their_own_overrides_and_start_counts() {
    let (registry, service) = registry_with(&[
        small(),
        Setting {
            subkey: "Device1".to_owned(),
            name: "DiskCount",
            value: RegValue::dword(2),
        },
        Setting {
            subkey: "Device1".to_owned(),
            name: "VendorId",
            value: RegValue::sz("SECOND"),
        },
    ]);
    let first = Adapter::start_numbered(registry, &service, 0);
    assert_eq!(first.report_luns(), vec![0]);
    assert_eq!(&first.inquiry(0)[8..16], b"VSTOR   ");
    first.finish_clean();

    let second = Adapter::start_numbered(first.registry(), &service, 1);
    assert!(second.adapter_key().ends_with("\\Parameters\\Device1"));
    assert_eq!(second.report_luns(), vec![0, 1 << 48]);
    assert_eq!(&second.inquiry(1)[8..16], b"SECOND  ");
    assert_eq!(
        start_count(&second),
        Some(RegValue::dword(1)),
        "its own count"
    );
    assert_eq!(
        second.value(&first.adapter_key(), "StartCount"),
        Some(RegValue::dword(1)),
        "the first adapter's count is its own"
    );
    assert!(effective_config(&second).starts_with("DiskCount=2;DiskSizesMiB=1,1;"));
    second.finish_clean();
}
