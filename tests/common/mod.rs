//! Shared harness of the integration tests that run the real `vstor.sys`
//! under the emulated Storport port (`storport_emu::port`).
//!
//! The image is the one `cargo make build` puts in the package folder
//! (`target/vstor/vstor.sys`, or the path in `VSTOR_SYS`); `cargo make test`
//! builds it before running the tests. A missing image fails the test with
//! a message saying how to build it.
//!
//! Every adapter is installed from `inf/vstor.inf` into an emulated registry,
//! as `storemu run --inf` does, then loaded, started and driven through
//! [`Port`]. The SCSI and SRB numbers below are written out from SPC-4,
//! SBC-3 and srb.h rather than taken from the driver, so a test compares the
//! driver against the standards and not against itself.

// Each test binary compiles this module and uses part of it.
#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

use std::path::PathBuf;
use std::sync::Arc;

use storport_emu::cli;
use storport_emu::inf::{Inf, InstallOptions, install};
use storport_emu::machine::loader;
use storport_emu::port::cpu::GateCpu;
use storport_emu::port::{
    DataDirection, Finding, PoolConfig, Port, PortError, PortOptions, SrbResult, exports,
};
use storport_emu::registry::{RegValue, Registry};

/// `SRB_STATUS_SUCCESS`.
pub const SRB_SUCCESS: u8 = 0x01;
/// `SRB_STATUS_ERROR`.
pub const SRB_ERROR: u8 = 0x04;
/// `SRB_STATUS_INVALID_LUN`.
pub const SRB_INVALID_LUN: u8 = 0x20;
/// `SRB_STATUS_AUTOSENSE_VALID`.
pub const SRB_AUTOSENSE_VALID: u8 = 0x80;
/// SCSI status GOOD.
pub const SCSI_GOOD: u8 = 0x00;
/// SCSI status CHECK CONDITION.
pub const SCSI_CHECK_CONDITION: u8 = 0x02;

/// `ScsiAdapterControlSuccess`.
pub const CONTROL_SUCCESS: u32 = 0;
/// `SP_RETURN_BAD_CONFIG`.
pub const SP_RETURN_BAD_CONFIG: u32 = 3;

/// Sense key, additional sense code and qualifier of a CHECK CONDITION.
pub type Sense = (u8, u8, u8);
/// ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE.
pub const LBA_OUT_OF_RANGE: Sense = (0x05, 0x21, 0x00);
/// DATA PROTECT, WRITE PROTECTED.
pub const WRITE_PROTECTED: Sense = (0x07, 0x27, 0x00);

/// The workspace root (the `vstor` package directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The driver image under test: `VSTOR_SYS`, or `target/vstor/vstor.sys`.
pub fn sys_path() -> PathBuf {
    std::env::var_os("VSTOR_SYS").map_or_else(
        || root().join("target").join("vstor").join("vstor.sys"),
        PathBuf::from,
    )
}

/// The bytes of the driver image.
pub fn image_bytes() -> Vec<u8> {
    let path = sys_path();
    std::fs::read(&path).unwrap_or_else(|error| missing_image(&path, &error))
}

/// The driver image's path, after checking that it can be read.
pub fn readable_sys_path() -> PathBuf {
    let path = sys_path();
    if let Err(error) = std::fs::File::open(&path) {
        missing_image(&path, &error);
    }
    path
}

fn missing_image(path: &std::path::Path, error: &std::io::Error) -> ! {
    panic!(
        "cannot read the driver image {}: {error}. Build it first with `cargo make build` \
         or `bash tools/build-driver.sh` (`cargo make test` does this before running the \
         tests).",
        path.display()
    )
}

/// A registry with vstor installed from `inf/vstor.inf`, and its service name.
pub fn inf_registry() -> (Registry, String) {
    let path = root().join("inf").join("vstor.inf");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let inf = Inf::from_bytes(&bytes).expect("inf/vstor.inf parses");
    let mut registry = Registry::new();
    let installed =
        install(&inf, &mut registry, &InstallOptions::default()).expect("inf/vstor.inf installs");
    (registry, installed.service)
}

/// A value to store before the adapter starts: the key below
/// `Services\<service>\Parameters` (`Device` or `Device<N>`), name and value.
#[derive(Clone, Debug)]
pub struct Setting {
    /// Key below `Parameters`.
    pub subkey: String,
    /// Value name.
    pub name: &'static str,
    /// The value.
    pub value: RegValue,
}

/// A value for every adapter (`Parameters\Device`).
pub fn global(name: &'static str, value: RegValue) -> Setting {
    Setting {
        subkey: "Device".to_owned(),
        name,
        value,
    }
}

/// A value in the first adapter's own key (`Parameters\Device<N>`, with the
/// N the emulator gives the first adapter).
pub fn first_adapter(name: &'static str, value: RegValue) -> Setting {
    Setting {
        subkey: format!("Device{}", first_adapter_number()),
        name,
        value,
    }
}

/// The port number the emulator gives the first adapter (the `<N>` of
/// `Device<N>`), as the port's registry scope says.
pub fn first_adapter_number() -> u32 {
    let (registry, service) = inf_registry();
    let port = bare_port(&service, PortOptions::default().adapter_number);
    port.set_registry(registry);
    port.registry().scope.adapter_number
}

/// A port for adapter `adapter_number` on a freshly loaded copy of the
/// image, not yet entered.
fn bare_port(service: &str, adapter_number: u32) -> Port {
    port_with(PortOptions {
        service: service.to_owned(),
        adapter_number,
        // Every vstor test runs with Driver Verifier's special pool.
        pool: PoolConfig::special_pool(),
        ..PortOptions::default()
    })
}

/// A port with `options` for a freshly loaded `vstor.sys`.
pub fn port_with(options: PortOptions) -> Port {
    let bytes = image_bytes();
    let loaded = loader::load_named("vstor.sys", &bytes, &exports::resolve, false)
        .unwrap_or_else(|error| panic!("{} does not load: {error}", sys_path().display()));
    let entry = loaded.entry_point().expect("vstor.sys has an entry point");
    Port::new(
        entry,
        Arc::new(GateCpu::default()),
        options,
        Some(Box::new(loaded)),
    )
}

/// The INF's registry with `settings` applied.
pub fn registry_with(settings: &[Setting]) -> (Registry, String) {
    let (mut registry, service) = inf_registry();
    for setting in settings {
        registry.set_value(
            &format!("Services\\{service}\\Parameters\\{}", setting.subkey),
            setting.name,
            setting.value.clone(),
        );
    }
    (registry, service)
}

/// One vstor adapter under the emulated port.
pub struct Adapter {
    /// The port driving it.
    pub port: Port,
    /// Its service name.
    pub service: String,
}

impl Adapter {
    /// Loads the image with `registry` and runs `DriverEntry`.
    pub fn load(registry: Registry, service: &str) -> Self {
        Self::load_numbered(registry, service, PortOptions::default().adapter_number)
    }

    /// Loads the image as adapter `adapter_number` (the `<N>` of
    /// `Device<N>`) with `registry` and runs `DriverEntry`.
    pub fn load_numbered(registry: Registry, service: &str, adapter_number: u32) -> Self {
        let port = bare_port(service, adapter_number);
        port.set_registry(registry);
        port.driver_entry().expect("DriverEntry succeeds");
        Self {
            port,
            service: service.to_owned(),
        }
    }

    /// Loads the image with `registry` without running `DriverEntry` (to
    /// install a fault plan or other port state first).
    pub fn unentered(registry: Registry, service: &str) -> Self {
        let port = bare_port(service, PortOptions::default().adapter_number);
        port.set_registry(registry);
        Self {
            port,
            service: service.to_owned(),
        }
    }

    /// Loads and starts an adapter on `registry`.
    pub fn start_on(registry: Registry, service: &str) -> Self {
        Self::start_numbered(registry, service, PortOptions::default().adapter_number)
    }

    /// Loads and starts adapter `adapter_number` on `registry`.
    pub fn start_numbered(registry: Registry, service: &str, adapter_number: u32) -> Self {
        let adapter = Self::load_numbered(registry, service, adapter_number);
        if let Err(error) = adapter.port.start() {
            panic!(
                "the adapter does not start: {error}\ndebug output: {:#?}\nfindings: {:#?}",
                adapter.port.dbgprint(),
                adapter.port.findings()
            );
        }
        adapter
    }

    /// Loads and starts an adapter installed from the INF with `settings`,
    /// on a port with `options` (its service name is the INF's).
    pub fn start_with(mut options: PortOptions, settings: &[Setting]) -> Self {
        let (registry, service) = registry_with(settings);
        options.service.clone_from(&service);
        let port = port_with(options);
        port.set_registry(registry);
        port.driver_entry().expect("DriverEntry succeeds");
        port.start().expect("the adapter starts");
        Self { port, service }
    }

    /// Loads and starts an adapter installed from the INF with `settings`.
    pub fn start(settings: &[Setting]) -> Self {
        let (registry, service) = registry_with(settings);
        Self::start_on(registry, &service)
    }

    /// Loads an adapter with `settings` and tries to start it.
    pub fn try_start(settings: &[Setting]) -> (Self, Result<(), PortError>) {
        let (registry, service) = registry_with(settings);
        let adapter = Self::load(registry, &service);
        let started = adapter.port.start();
        (adapter, started)
    }

    /// `Services\<service>\Parameters\Device`.
    pub fn global_key(&self) -> String {
        format!("Services\\{}\\Parameters\\Device", self.service)
    }

    /// `Services\<service>\Parameters\Device<N>` of this adapter.
    pub fn adapter_key(&self) -> String {
        self.port.registry().scope.device_key(0)
    }

    /// A value of the emulated registry.
    pub fn value(&self, key: &str, name: &str) -> Option<RegValue> {
        self.port.registry().registry.value(key, name).cloned()
    }

    /// Sets a value of the emulated registry.
    pub fn set_value(&self, key: &str, name: &str, value: RegValue) {
        self.port.registry().registry.set_value(key, name, value);
    }

    /// A copy of the emulated registry (to start the next adapter on).
    pub fn registry(&self) -> Registry {
        self.port.registry().registry.clone()
    }

    /// Bytes of live pool the driver holds under `tag`.
    pub fn pool_bytes(&self, tag: [u8; 4]) -> usize {
        let tag = u32::from_le_bytes(tag);
        self.port
            .shared()
            .pool
            .lock()
            .expect("pool lock")
            .live()
            .iter()
            .filter(|(_, block)| block.tag == tag)
            .map(|(_, block)| block.size_bytes)
            .sum()
    }

    /// Number of live pool blocks the driver holds, any tag.
    pub fn pool_blocks(&self) -> usize {
        self.port
            .shared()
            .pool
            .lock()
            .expect("pool lock")
            .live()
            .len()
    }

    /// Whether the adapter holds a Storport registry buffer now.
    pub fn holds_registry_buffer(&self) -> bool {
        self.port.registry().buffer().is_some()
    }

    /// The debug output lines so far.
    pub fn dbgprint(&self) -> Vec<String> {
        self.port.dbgprint()
    }

    /// The findings so far.
    pub fn findings(&self) -> Vec<Finding> {
        self.port.findings()
    }

    /// Sends one `SRB_FUNCTION_EXECUTE_SCSI` SRB to path 0, target 0, `lun`.
    pub fn execute(&self, lun: u8, cdb: &[u8], direction: &DataDirection) -> SrbResult {
        self.port
            .execute((0, 0, lun), cdb, direction)
            .unwrap_or_else(|error| panic!("CDB {cdb:02x?} to LUN {lun}: {error}"))
    }

    /// Standard INQUIRY data (96 bytes asked for), checked for success.
    pub fn inquiry(&self, lun: u8) -> Vec<u8> {
        let result = self.execute(lun, &[0x12, 0, 0, 0, 96, 0], &DataDirection::In(96));
        assert_good(&result, "INQUIRY");
        result.data
    }

    /// A VPD page, checked for success.
    pub fn vpd(&self, lun: u8, page: u8) -> Vec<u8> {
        let result = self.execute(lun, &[0x12, 1, page, 0, 255, 0], &DataDirection::In(255));
        assert_good(&result, "INQUIRY (VPD)");
        assert_eq!(result.data.get(1), Some(&page), "VPD page code");
        result.data
    }

    /// The unit serial number (VPD page 80h) as text.
    pub fn serial(&self, lun: u8) -> String {
        let page = self.vpd(lun, 0x80);
        let length = usize::from(u16::from_be_bytes([page[2], page[3]]));
        String::from_utf8(page[4..4 + length].to_vec()).expect("the serial number is ASCII")
    }

    /// READ CAPACITY(16): (last LBA, block length in bytes).
    pub fn capacity(&self, lun: u8) -> (u64, u32) {
        let mut cdb = [0_u8; 16];
        cdb[0] = 0x9E;
        cdb[1] = 0x10;
        cdb[13] = 32;
        let result = self.execute(lun, &cdb, &DataDirection::In(32));
        assert_good(&result, "READ CAPACITY(16)");
        let data = &result.data;
        assert!(data.len() >= 12, "READ CAPACITY(16) returned {data:02x?}");
        (
            u64::from_be_bytes(data[0..8].try_into().expect("8 bytes")),
            u32::from_be_bytes(data[8..12].try_into().expect("4 bytes")),
        )
    }

    /// REPORT LUNS (select report 0): the LUNs listed, in order.
    pub fn report_luns(&self) -> Vec<u64> {
        let cdb = [0xA0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0];
        let result = self.execute(0, &cdb, &DataDirection::In(1024));
        assert_good(&result, "REPORT LUNS");
        let data = &result.data;
        let list_bytes = u32::from_be_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
        assert_eq!(list_bytes % 8, 0, "LUN LIST LENGTH is a multiple of 8");
        data[8..8 + list_bytes]
            .chunks_exact(8)
            .map(|entry| u64::from_be_bytes(entry.try_into().expect("8 bytes")))
            .collect()
    }

    /// WRITE(10) of `data` at `lba`; `blocks` is the transfer length.
    pub fn write10(&self, lun: u8, lba: u32, blocks: u16, data: Vec<u8>) -> SrbResult {
        self.execute(lun, &rw10(0x2A, lba, blocks), &DataDirection::Out(data))
    }

    /// READ(10) of `blocks` blocks of `block_bytes` at `lba`.
    pub fn read10(&self, lun: u8, lba: u32, blocks: u16, block_bytes: usize) -> SrbResult {
        self.execute(
            lun,
            &rw10(0x28, lba, blocks),
            &DataDirection::In(usize::from(blocks) * block_bytes),
        )
    }

    /// Reads `blocks` blocks at `lba`, checked for success and length.
    pub fn read_ok(&self, lun: u8, lba: u32, blocks: u16, block_bytes: usize) -> Vec<u8> {
        let result = self.read10(lun, lba, blocks, block_bytes);
        assert_good(&result, "READ(10)");
        assert_eq!(
            result.data.len(),
            usize::from(blocks) * block_bytes,
            "READ(10) of {blocks} block(s) at LBA {lba} of LUN {lun}"
        );
        result.data
    }

    /// Writes `data` at `lba`, checked for success.
    pub fn write_ok(&self, lun: u8, lba: u32, data: Vec<u8>, block_bytes: usize) {
        let blocks = u16::try_from(data.len() / block_bytes).expect("transfer fits WRITE(10)");
        let result = self.write10(lun, lba, blocks, data);
        assert_good(&result, "WRITE(10)");
    }

    /// Stops and removes the adapter (`ScsiStopAdapter`, `HwFreeAdapterResources`,
    /// registry-buffer check)
    /// and unloads the driver (pool-leak check); returns the findings of the
    /// whole run.
    pub fn finish(&self) -> Vec<Finding> {
        assert_eq!(
            self.port.stop(),
            Ok(CONTROL_SUCCESS),
            "ScsiStopAdapter before removal"
        );
        self.port.remove().expect("HwFreeAdapterResources runs");
        self.port.unload();
        self.port.findings()
    }

    /// [`Self::finish`], asserting that the run left no finding.
    pub fn finish_clean(&self) {
        let findings = self.finish();
        assert!(
            findings.is_empty(),
            "storemu reported findings: {findings:#?}\ndebug output: {:#?}",
            self.dbgprint()
        );
    }
}

/// A READ(10)/WRITE(10) CDB.
pub fn rw10(opcode: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let mut cdb = [0_u8; 10];
    cdb[0] = opcode;
    cdb[2..6].copy_from_slice(&lba.to_be_bytes());
    cdb[7..9].copy_from_slice(&blocks.to_be_bytes());
    cdb
}

/// Asserts `SRB_STATUS_SUCCESS` with SCSI status GOOD.
pub fn assert_good(result: &SrbResult, what: &str) {
    assert_eq!(
        (result.status(), result.scsi_status),
        (SRB_SUCCESS, SCSI_GOOD),
        "{what}: SRB status {:#04x}, SCSI status {:#04x}, sense {:02x?}",
        result.srb_status,
        result.scsi_status,
        result.sense
    );
}

/// Asserts a CHECK CONDITION with valid autosense carrying `expected`.
pub fn assert_check_condition(result: &SrbResult, expected: Sense, what: &str) {
    assert_eq!(
        result.srb_status,
        SRB_ERROR | SRB_AUTOSENSE_VALID,
        "{what}: SRB status (sense {:02x?})",
        result.sense
    );
    assert_eq!(
        result.scsi_status, SCSI_CHECK_CONDITION,
        "{what}: SCSI status"
    );
    assert!(
        result.sense.len() >= 14,
        "{what}: sense too short: {:02x?}",
        result.sense
    );
    assert!(
        (0x70..=0x71).contains(&(result.sense[0] & 0x7F)),
        "{what}: fixed-format sense expected: {:02x?}",
        result.sense
    );
    assert_eq!(
        (result.sense[2] & 0x0F, result.sense[12], result.sense[13]),
        expected,
        "{what}: sense key/ASC/ASCQ"
    );
}

/// A block whose every 16-byte row names `lun`, `lba` and `generation`, so a
/// block read back from the wrong disk, place or time is recognised.
pub fn block(block_bytes: usize, lun: u8, lba: u64, generation: u32) -> Vec<u8> {
    let mut row = [0_u8; 16];
    row[0] = lun;
    row[1] = 0xB5;
    row[2..10].copy_from_slice(&lba.to_le_bytes());
    row[10..14].copy_from_slice(&generation.to_le_bytes());
    row[14] = 0x5A;
    let mut out = Vec::with_capacity(block_bytes);
    for index in 0..block_bytes / 16 {
        row[15] = u8::try_from(index & 0xFF).expect("masked");
        out.extend_from_slice(&row);
    }
    out
}

/// `count` consecutive blocks starting at `lba`, all of `generation`.
pub fn blocks(block_bytes: usize, lun: u8, lba: u64, count: u64, generation: u32) -> Vec<u8> {
    (lba..lba + count)
        .flat_map(|at| block(block_bytes, lun, at, generation))
        .collect()
}

/// `storemu run` of `vstor.sys` with its INF and two 2 MiB disks under special pool, with what
/// `args` adds (a seed, a lock reading; its driver, INF, values, JSON and pool are replaced):
/// asserts that the image loads, the run is clean and both disks verified a write. `what`
/// names the run in failures.
pub fn assert_two_disks_run_clean(mut args: cli::RunArgs, what: &str) -> cli::RunReport {
    args.driver = readable_sys_path();
    args.inf = Some(root().join("inf").join("vstor.inf"));
    args.set = vec![
        "DiskCount=dword:2".to_owned(),
        "DiskSizeMiB=dword:2".to_owned(),
    ];
    args.json = true;
    args.pool = PoolConfig::special_pool();
    let sets = cli::parse_sets(&args.set).expect("the --set values parse");
    let report = cli::run(&args, &sets);
    assert_eq!(report.load_error, None, "{what}: vstor.sys loads");
    assert_eq!(report.outcome, "clean", "{what}: {:#?}", report.findings);
    assert_eq!(report.luns.len(), 2, "{what}");
    assert!(
        report.luns.iter().all(|lun| lun.write_verified),
        "{what}: every disk verified a write"
    );
    report
}
