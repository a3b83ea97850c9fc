//! vstor's registry configuration on the real `vstor.sys` under the emulated
//! Storport port: the INF's defaults, every value good, bad and missing, the
//! per-adapter override and the configurations that cannot start.
//!
//! Each test observes the configuration the way Windows would: through SCSI
//! (REPORT LUNS, INQUIRY, VPD pages, READ CAPACITY, WRITE), the driver's
//! `DbgPrint` output and what the port reports.

mod common;

use common::{
    Adapter, SP_RETURN_BAD_CONFIG, SRB_INVALID_LUN, Setting, WRITE_PROTECTED,
    assert_check_condition, assert_good, blocks, first_adapter, global, inf_registry,
    registry_with,
};
use storport_emu::port::{DataDirection, PortError, Rule};
use storport_emu::registry::RegValue;

/// `SRB_STATUS_NO_DEVICE`.
const SRB_NO_DEVICE: u8 = 0x08;

/// A one-MiB disk, so tests that are not about the size stay small.
fn small() -> Setting {
    global("DiskSizeMiB", RegValue::dword(1))
}

/// The debug lines that report a bad registry value.
fn reports(adapter: &Adapter) -> Vec<String> {
    adapter
        .dbgprint()
        .into_iter()
        .filter(|line| line.starts_with("vstor: registry value "))
        .collect()
}

/// REPORT LUNS entry of LUN `lun` (< 256) in peripheral device addressing.
const fn lun_entry(lun: u64) -> u64 {
    lun << 48
}

/// Vendor, product and revision of a standard INQUIRY reply.
fn identity(inquiry: &[u8]) -> (&[u8], &[u8], &[u8]) {
    (&inquiry[8..16], &inquiry[16..32], &inquiry[32..36])
}

#[test]
fn the_inf_defaults_give_one_64_mib_disk_with_vstor_identity() {
    let (registry, service) = inf_registry();
    let device = format!("Services\\{service}\\Parameters\\Device");
    assert_eq!(
        registry.value(&device, "DiskSizeMiB"),
        Some(&RegValue::dword(64)),
        "the INF installs its defaults in Parameters\\Device"
    );
    let adapter = Adapter::start_on(registry, &service);

    assert_eq!(adapter.report_luns(), vec![lun_entry(0)]);
    assert_eq!(
        adapter.capacity(0),
        (131_071, 512),
        "64 MiB of 512-byte blocks"
    );
    let inquiry = adapter.inquiry(0);
    assert_eq!(inquiry[0] & 0x1F, 0, "direct-access block device");
    assert_eq!(
        identity(&inquiry),
        (&b"VSTOR   "[..], &b"RAM DISK        "[..], &b"0001"[..])
    );
    let serial = adapter.serial(0);
    assert!(
        serial.starts_with("VST") && serial.len() > 3,
        "serial {serial:?} is the prefix VST followed by the disk's number"
    );
    let missing = adapter.execute(1, &[0x12, 0, 0, 0, 36, 0], &DataDirection::In(36));
    assert_eq!(missing.status(), SRB_INVALID_LUN, "only LUN 0 exists");
    assert_eq!(reports(&adapter), Vec::<String>::new());
    adapter.finish_clean();
}

#[test]
fn missing_values_take_the_built_in_defaults() {
    let (mut registry, service) = inf_registry();
    let device = format!("Services\\{service}\\Parameters\\Device");
    for name in [
        "DiskCount",
        "DiskSizeMiB",
        "SectorSize",
        "ReadOnly",
        "VendorId",
        "ProductId",
        "ProductRevision",
        "SerialPrefix",
        "TargetPorts",
    ] {
        assert!(registry.delete_value(&device, name), "{name} was installed");
    }
    assert_eq!(registry.values(&device).map(|v| v.len()), Some(0));
    let adapter = Adapter::start_on(registry, &service);
    assert_eq!(adapter.report_luns(), vec![lun_entry(0)]);
    assert_eq!(adapter.capacity(0), (131_071, 512));
    assert_eq!(
        identity(&adapter.inquiry(0)),
        (&b"VSTOR   "[..], &b"RAM DISK        "[..], &b"0001"[..])
    );
    assert!(adapter.serial(0).starts_with("VST"));
    assert_good(
        &adapter.write10(0, 0, 1, blocks(512, 0, 0, 1, 1)),
        "WRITE(10) on a writable disk",
    );
    assert_eq!(
        reports(&adapter),
        Vec::<String>::new(),
        "missing is not bad"
    );
    adapter.finish_clean();
}

#[test]
fn without_any_parameters_key_the_adapter_starts_with_the_defaults() {
    let (mut registry, service) = inf_registry();
    assert!(registry.delete_key(&format!("Services\\{service}\\Parameters")));
    let adapter = Adapter::start_on(registry, &service);
    assert_eq!(adapter.report_luns(), vec![lun_entry(0)]);
    assert_eq!(adapter.capacity(0), (131_071, 512));
    assert_eq!(reports(&adapter), Vec::<String>::new());
    adapter.finish_clean();
}

#[test]
fn disk_count_three_gives_luns_0_to_2_and_nothing_else() {
    let adapter = Adapter::start(&[global("DiskCount", RegValue::dword(3)), small()]);
    assert_eq!(
        adapter.report_luns(),
        vec![lun_entry(0), lun_entry(1), lun_entry(2)]
    );
    for lun in 0..3 {
        assert_eq!(adapter.inquiry(lun)[0] & 0x1F, 0, "LUN {lun}");
        assert_eq!(adapter.capacity(lun), (2047, 512), "LUN {lun}");
    }
    // vstor's documented choice (src/scsi/srb.rs): a missing LUN of the
    // existing target is SRB_STATUS_INVALID_LUN, a missing target is
    // SRB_STATUS_NO_DEVICE.
    let inquiry = [0x12, 0, 0, 0, 36, 0];
    let lun3 = adapter.execute(3, &inquiry, &DataDirection::In(36));
    assert_eq!(lun3.status(), SRB_INVALID_LUN);
    let target1 = adapter
        .port
        .execute((0, 1, 0), &inquiry, &DataDirection::In(36))
        .expect("INQUIRY to target 1");
    assert_eq!(target1.status(), SRB_NO_DEVICE);
    let config = adapter
        .port
        .config()
        .expect("find-adapter filled ConfigInfo");
    assert_eq!(config.MaximumNumberOfLogicalUnits, 3);
    assert_eq!(reports(&adapter), Vec::<String>::new());
    adapter.finish_clean();
}

#[test]
fn disk_size_mib_sets_every_disks_capacity() {
    let adapter = Adapter::start(&[
        global("DiskCount", RegValue::dword(2)),
        global("DiskSizeMiB", RegValue::dword(3)),
    ]);
    for lun in 0..2 {
        assert_eq!(adapter.capacity(lun), (3 * 2048 - 1, 512), "LUN {lun}");
    }
    adapter.finish_clean();
}

#[test]
fn disk_sizes_mib_without_disk_count_gives_each_disk_its_own_size() {
    // The INF sets DiskCount = 1; DiskSizesMiB alone must not meet it.
    let (mut registry, service) =
        registry_with(&[global("DiskSizesMiB", RegValue::multi_sz(&["1", "4", "2"]))]);
    assert!(registry.delete_value(
        &format!("Services\\{service}\\Parameters\\Device"),
        "DiskCount"
    ));
    let adapter = Adapter::start_on(registry, &service);
    assert_eq!(
        adapter.report_luns(),
        vec![lun_entry(0), lun_entry(1), lun_entry(2)],
        "DiskSizesMiB alone sets the number of disks"
    );
    assert_eq!(adapter.capacity(0), (2047, 512));
    assert_eq!(adapter.capacity(1), (8191, 512));
    assert_eq!(adapter.capacity(2), (4095, 512));
    assert_eq!(reports(&adapter), Vec::<String>::new());
    adapter.finish_clean();
}

#[test]
fn disk_sizes_mib_agreeing_with_disk_count_is_accepted() {
    let adapter = Adapter::start(&[
        global("DiskCount", RegValue::dword(2)),
        global("DiskSizesMiB", RegValue::multi_sz(&["2", "1"])),
    ]);
    assert_eq!(adapter.report_luns(), vec![lun_entry(0), lun_entry(1)]);
    assert_eq!(adapter.capacity(0), (4095, 512));
    assert_eq!(adapter.capacity(1), (2047, 512));
    assert_eq!(reports(&adapter), Vec::<String>::new());
    adapter.finish_clean();
}

#[test]
fn sector_size_4096_gives_4096_byte_blocks() {
    let adapter = Adapter::start(&[global("SectorSize", RegValue::dword(4096)), small()]);
    assert_eq!(adapter.capacity(0), (255, 4096));
    let data = blocks(4096, 0, 7, 2, 1);
    adapter.write_ok(0, 7, data.clone(), 4096);
    assert_eq!(adapter.read_ok(0, 7, 2, 4096), data);
    let past = adapter.read10(0, 256, 1, 4096);
    assert_check_condition(&past, common::LBA_OUT_OF_RANGE, "READ(10) at LBA 256");
    adapter.finish_clean();
}

#[test]
fn read_only_rejects_writes_with_write_protected() {
    let adapter = Adapter::start(&[
        global("ReadOnly", RegValue::dword(1)),
        global("DiskCount", RegValue::dword(2)),
        small(),
    ]);
    for lun in 0..2 {
        let write = adapter.write10(lun, 0, 1, blocks(512, lun, 0, 1, 1));
        assert_check_condition(&write, WRITE_PROTECTED, "WRITE(10) to a read-only disk");
        assert_eq!(
            adapter.read_ok(lun, 0, 1, 512),
            vec![0; 512],
            "the refused write left the medium alone"
        );
    }
    adapter.finish_clean();
}

#[test]
fn identity_strings_appear_in_inquiry_and_the_serial_number() {
    let adapter = Adapter::start(&[
        global("VendorId", RegValue::sz("ACME")),
        global("ProductId", RegValue::sz("SIXTEEN CHARS OK")),
        global("ProductRevision", RegValue::sz("9.1")),
        global("SerialPrefix", RegValue::sz("SN-")),
        global("DiskCount", RegValue::dword(2)),
        small(),
    ]);
    for lun in 0..2 {
        let inquiry = adapter.inquiry(lun);
        assert_eq!(
            identity(&inquiry),
            (&b"ACME    "[..], &b"SIXTEEN CHARS OK"[..], &b"9.1 "[..]),
            "LUN {lun}"
        );
        assert!(adapter.serial(lun).starts_with("SN-"), "LUN {lun}");
    }
    assert_ne!(
        adapter.serial(0),
        adapter.serial(1),
        "each disk has its own serial number"
    );
    assert_eq!(reports(&adapter), Vec::<String>::new());
    adapter.finish_clean();
}

#[test]
fn identity_strings_at_their_longest_are_accepted() {
    let adapter = Adapter::start(&[
        global("VendorId", RegValue::sz("EIGHTCHR")),
        global("ProductId", RegValue::sz("0123456789ABCDEF")),
        global("ProductRevision", RegValue::sz("ABCD")),
        global("SerialPrefix", RegValue::sz("PREFIX-16-CHARS!")),
        small(),
    ]);
    assert_eq!(
        identity(&adapter.inquiry(0)),
        (&b"EIGHTCHR"[..], &b"0123456789ABCDEF"[..], &b"ABCD"[..])
    );
    assert!(adapter.serial(0).starts_with("PREFIX-16-CHARS!"));
    assert_eq!(reports(&adapter), Vec::<String>::new());
    adapter.finish_clean();
}

/// What a bad value's default looks like from the outside.
#[derive(Clone, Copy, Debug)]
enum Fallback {
    OneLun,
    Blocks(u64, u32),
    Writable,
    Vendor,
    Product,
    Revision,
    SerialPrefix,
}

fn check_default(adapter: &Adapter, default: Fallback) {
    match default {
        Fallback::OneLun => assert_eq!(adapter.report_luns(), vec![lun_entry(0)]),
        Fallback::Blocks(last, size) => assert_eq!(adapter.capacity(0), (last, size)),
        Fallback::Writable => assert_good(
            &adapter.write10(0, 1, 1, blocks(512, 0, 1, 1, 9)),
            "WRITE(10) with ReadOnly at its default",
        ),
        Fallback::Vendor => assert_eq!(&adapter.inquiry(0)[8..16], b"VSTOR   "),
        Fallback::Product => assert_eq!(&adapter.inquiry(0)[16..32], b"RAM DISK        "),
        Fallback::Revision => assert_eq!(&adapter.inquiry(0)[32..36], b"0001"),
        Fallback::SerialPrefix => {
            let serial = adapter.serial(0);
            assert!(serial.starts_with("VST"), "serial {serial:?}");
        }
    }
}

/// One bad value: its name, the value, the report expected (after
/// "vstor: registry value ") and how its default shows.
type BadCase = (&'static str, RegValue, String, Fallback);

#[expect(clippy::too_many_lines, reason = "one row per bad value, in one table")]
fn bad_value_cases() -> Vec<BadCase> {
    let dword_range_1_16 = "expected a DWORD from 1 to 16; using the default 1.";
    let size_range = "expected a DWORD from 1 to 65536 (MiB); using the default 64.";
    let sizes = "expected 1 to 16 decimal sizes from 1 to 65536 (MiB), one per disk; using the \
                 default DiskCount disks of DiskSizeMiB each.";
    vec![
        (
            "DiskCount",
            RegValue::dword(17),
            format!("DiskCount = 17 is out of range; {dword_range_1_16}"),
            Fallback::OneLun,
        ),
        (
            "DiskCount",
            RegValue::dword(0),
            format!("DiskCount = 0 is out of range; {dword_range_1_16}"),
            Fallback::OneLun,
        ),
        (
            "DiskCount",
            RegValue::sz("2"),
            format!("DiskCount has the wrong type; {dword_range_1_16}"),
            Fallback::OneLun,
        ),
        (
            "DiskSizeMiB",
            RegValue::dword(0),
            format!("DiskSizeMiB = 0 is out of range; {size_range}"),
            Fallback::Blocks(131_071, 512),
        ),
        (
            "DiskSizeMiB",
            RegValue::dword(65_537),
            format!("DiskSizeMiB = 65537 is out of range; {size_range}"),
            Fallback::Blocks(131_071, 512),
        ),
        (
            "DiskSizeMiB",
            RegValue::binary(&[1, 0, 0, 0]),
            format!("DiskSizeMiB has the wrong type; {size_range}"),
            Fallback::Blocks(131_071, 512),
        ),
        (
            "SectorSize",
            RegValue::dword(1024),
            "SectorSize = 1024 is out of range; expected 512 or 4096; using the default 512."
                .to_owned(),
            Fallback::Blocks(2047, 512),
        ),
        (
            "SectorSize",
            RegValue::dword(0),
            "SectorSize = 0 is out of range; expected 512 or 4096; using the default 512."
                .to_owned(),
            Fallback::Blocks(2047, 512),
        ),
        (
            "ReadOnly",
            RegValue::dword(2),
            "ReadOnly = 2 is out of range; expected 0 or 1; using the default 0.".to_owned(),
            Fallback::Writable,
        ),
        (
            "ReadOnly",
            RegValue::sz("1"),
            "ReadOnly has the wrong type; expected 0 or 1; using the default 0.".to_owned(),
            Fallback::Writable,
        ),
        (
            "VendorId",
            RegValue::sz("NINE CHRS"),
            "VendorId is 9 characters long, too long; expected up to 8 ASCII characters; using \
             the default VSTOR."
                .to_owned(),
            Fallback::Vendor,
        ),
        (
            "VendorId",
            RegValue::sz("TAB\tX"),
            "VendorId contains a character that is not printable ASCII; expected up to 8 ASCII \
             characters; using the default VSTOR."
                .to_owned(),
            Fallback::Vendor,
        ),
        (
            "ProductId",
            RegValue::sz("caf\u{e9}"),
            "ProductId contains a character that is not printable ASCII; expected up to 16 \
             ASCII characters; using the default RAM DISK."
                .to_owned(),
            Fallback::Product,
        ),
        (
            "ProductId",
            RegValue::sz("SEVENTEEN CHARS!!"),
            "ProductId is 17 characters long, too long; expected up to 16 ASCII characters; \
             using the default RAM DISK."
                .to_owned(),
            Fallback::Product,
        ),
        (
            "ProductRevision",
            RegValue::dword(1),
            "ProductRevision has the wrong type; expected up to 4 ASCII characters; using the \
             default 0001."
                .to_owned(),
            Fallback::Revision,
        ),
        (
            "ProductRevision",
            RegValue::sz("12345"),
            "ProductRevision is 5 characters long, too long; expected up to 4 ASCII characters; \
             using the default 0001."
                .to_owned(),
            Fallback::Revision,
        ),
        (
            "SerialPrefix",
            RegValue::sz("SEVENTEEN-CHARS-X"),
            "SerialPrefix is 17 characters long, too long; expected up to 16 ASCII characters; \
             using the default VST."
                .to_owned(),
            Fallback::SerialPrefix,
        ),
        (
            "SerialPrefix",
            RegValue::sz("S\u{f8}N"),
            "SerialPrefix contains a character that is not printable ASCII; expected up to 16 \
             ASCII characters; using the default VST."
                .to_owned(),
            Fallback::SerialPrefix,
        ),
        (
            "DiskSizesMiB",
            RegValue::multi_sz(&["1", "big"]),
            format!("DiskSizesMiB entry 1 is not a valid size; {sizes}"),
            Fallback::OneLun,
        ),
        (
            "DiskSizesMiB",
            RegValue::multi_sz(&["0"]),
            format!("DiskSizesMiB entry 0 is not a valid size; {sizes}"),
            Fallback::Blocks(2047, 512),
        ),
        (
            "DiskSizesMiB",
            RegValue::sz("1"),
            format!("DiskSizesMiB has the wrong type; {sizes}"),
            Fallback::OneLun,
        ),
    ]
}

#[test]
fn a_bad_value_is_reported_once_and_replaced_by_its_default() {
    let cases = bad_value_cases();
    let mut failures = Vec::new();
    for (name, value, message, default) in cases {
        let mut settings = vec![global(name, value.clone())];
        if name != "DiskSizeMiB" {
            settings.push(small());
        }
        let (adapter, started) = Adapter::try_start(&settings);
        let expected = vec![format!("vstor: registry value {message}")];
        let got = reports(&adapter);
        if started.is_err() || got != expected {
            failures.push(format!(
                "{name} = {value:?}: started {started:?}\n  expected {expected:?}\n  got      {got:?}"
            ));
            let _ = adapter.finish();
            continue;
        }
        check_default(&adapter, default);
        adapter.finish_clean();
    }
    assert!(
        failures.is_empty(),
        "{} bad value(s) not reported as expected:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn several_bad_values_are_each_reported_once() {
    let adapter = Adapter::start(&[
        global("DiskCount", RegValue::dword(99)),
        global("VendorId", RegValue::sz("WAY TOO LONG")),
        global("ReadOnly", RegValue::dword(7)),
        small(),
    ]);
    let got = reports(&adapter);
    assert_eq!(got.len(), 3, "{got:#?}");
    for name in ["DiskCount", "VendorId", "ReadOnly"] {
        let prefix = format!("vstor: registry value {name} ");
        assert_eq!(
            got.iter().filter(|line| line.starts_with(&prefix)).count(),
            1,
            "{name} reported exactly once: {got:#?}"
        );
    }
    check_default(&adapter, Fallback::OneLun);
    check_default(&adapter, Fallback::Vendor);
    check_default(&adapter, Fallback::Writable);
    adapter.finish_clean();
}

#[test]
fn the_adapters_own_key_overrides_the_global_one() {
    let adapter = Adapter::start(&[
        global("DiskCount", RegValue::dword(1)),
        global("DiskSizeMiB", RegValue::dword(1)),
        global("VendorId", RegValue::sz("GLOBAL")),
        global("ProductId", RegValue::sz("GLOBAL PRODUCT")),
        first_adapter("DiskCount", RegValue::dword(2)),
        first_adapter("VendorId", RegValue::sz("ADAPTER0")),
        first_adapter("SectorSize", RegValue::dword(4096)),
    ]);
    assert!(
        adapter.adapter_key().ends_with("\\Parameters\\Device0"),
        "the emulator gives the first adapter port number 0: {}",
        adapter.adapter_key()
    );
    assert_eq!(adapter.report_luns(), vec![lun_entry(0), lun_entry(1)]);
    for lun in 0..2 {
        let inquiry = adapter.inquiry(lun);
        assert_eq!(&inquiry[8..16], b"ADAPTER0", "the override wins");
        assert_eq!(
            &inquiry[16..32],
            b"GLOBAL PRODUCT  ",
            "a value set only globally still applies"
        );
        assert_eq!(
            adapter.capacity(lun),
            (255, 4096),
            "global DiskSizeMiB with the adapter's SectorSize"
        );
    }
    assert_eq!(reports(&adapter), Vec::<String>::new());
    adapter.finish_clean();
}

#[test]
fn an_override_for_another_adapter_does_not_apply() {
    let adapter = Adapter::start(&[
        small(),
        Setting {
            subkey: "Device7".to_owned(),
            name: "DiskCount",
            value: RegValue::dword(4),
        },
    ]);
    assert_eq!(adapter.report_luns(), vec![lun_entry(0)]);
    adapter.finish_clean();
}

#[test]
fn a_bad_override_gives_way_to_the_global_value_or_else_the_default() {
    let of_adapter = "vstor: registry value DiskCount of this adapter (Parameters\\Device<N>)";
    let expected = "expected a DWORD from 1 to 16";
    let cases = [
        (
            "out of range over a good global value",
            RegValue::dword(2),
            RegValue::dword(40),
            vec![format!(
                "{of_adapter} = 40 is out of range; {expected}; using the value all adapters \
                 share (Parameters\\Device)."
            )],
            2,
        ),
        (
            "of the wrong type over a good global value",
            RegValue::dword(2),
            RegValue::sz("3"),
            vec![format!(
                "{of_adapter} has the wrong type; {expected}; using the value all adapters share \
                 (Parameters\\Device)."
            )],
            2,
        ),
        (
            "out of range over a bad global value",
            RegValue::dword(0),
            RegValue::dword(40),
            vec![
                format!("{of_adapter} = 40 is out of range; {expected}; using the default 1."),
                format!(
                    "vstor: registry value DiskCount = 0 is out of range; {expected}; using the \
                     default 1."
                ),
            ],
            1,
        ),
    ];
    for (case, global_value, override_value, messages, disks) in cases {
        let adapter = Adapter::start(&[
            global("DiskCount", global_value),
            small(),
            first_adapter("DiskCount", override_value),
        ]);
        assert_eq!(reports(&adapter), messages, "{case}");
        assert_eq!(
            adapter.report_luns(),
            (0..disks).map(lun_entry).collect::<Vec<_>>(),
            "{case}: the disks the messages promise"
        );
        adapter.finish_clean();
    }
}

/// Starts an adapter that must fail find-adapter with `SP_RETURN_BAD_CONFIG`
/// and returns its debug output.
fn assert_bad_config(settings: &[Setting]) -> Vec<String> {
    let (adapter, started) = Adapter::try_start(settings);
    assert_eq!(
        started,
        Err(PortError::FindAdapterFailed(SP_RETURN_BAD_CONFIG)),
        "find-adapter returns SP_RETURN_BAD_CONFIG; debug output {:#?}",
        adapter.dbgprint()
    );
    let inquiry = adapter
        .port
        .execute((0, 0, 0), &[0x12, 0, 0, 0, 36, 0], &DataDirection::In(36));
    assert_eq!(
        inquiry,
        Err(PortError::NotStarted),
        "no I/O reaches an adapter that did not start"
    );
    adapter.port.remove().expect("nothing to remove");
    adapter.port.unload();
    let findings = adapter.findings();
    assert_eq!(
        findings
            .iter()
            .map(|finding| (finding.rule, finding.params.clone()))
            .collect::<Vec<_>>(),
        vec![(
            Rule::AdapterStartFailed,
            vec![u64::from(SP_RETURN_BAD_CONFIG)]
        )],
        "the port reports the failed start, and nothing else (no registry buffer or pool \
         left behind): {findings:#?}"
    );
    adapter.dbgprint()
}

#[test]
fn disk_count_disagreeing_with_disk_sizes_mib_does_not_start() {
    let output = assert_bad_config(&[
        global("DiskCount", RegValue::dword(2)),
        global("DiskSizesMiB", RegValue::multi_sz(&["1", "1", "1"])),
    ]);
    assert!(
        output.contains(
            &"vstor: DiskCount is 2 but DiskSizesMiB lists 3 sizes; set one size per disk or \
              remove one of the two values. The adapter does not start."
                .to_owned()
        ),
        "{output:#?}"
    );
}

#[test]
fn a_disk_count_override_wins_over_global_sizes() {
    // The adapter's own DiskCount is more specific than the global
    // DiskSizesMiB: it gives the number of disks, each DiskSizeMiB big.
    let adapter = Adapter::start(&[
        global("DiskSizesMiB", RegValue::multi_sz(&["1", "1"])),
        first_adapter("DiskCount", RegValue::dword(3)),
        first_adapter("DiskSizeMiB", RegValue::dword(2)),
    ]);
    assert_eq!(
        adapter.report_luns(),
        vec![lun_entry(0), lun_entry(1), lun_entry(2)]
    );
    assert_eq!(adapter.capacity(2), (4095, 512));
    adapter.finish_clean();
}

#[test]
fn more_than_256_gib_in_all_does_not_start() {
    let output = assert_bad_config(&[
        global("DiskCount", RegValue::dword(5)),
        global("DiskSizeMiB", RegValue::dword(65_536)),
    ]);
    assert!(
        output.contains(
            &"vstor: the disks need 327680 MiB in all, more than the 262144 MiB one adapter may \
              use; lower DiskCount or the disk sizes. The adapter does not start."
                .to_owned()
        ),
        "{output:#?}"
    );
}

#[test]
fn disk_sizes_mib_in_the_adapters_key_overrides_the_infs_disk_count() {
    let adapter = Adapter::start(&[first_adapter(
        "DiskSizesMiB",
        RegValue::multi_sz(&["1", "2"]),
    )]);
    assert_eq!(adapter.report_luns(), vec![lun_entry(0), lun_entry(1)]);
    assert_eq!(adapter.capacity(1), (4095, 512));
    adapter.finish_clean();
}
