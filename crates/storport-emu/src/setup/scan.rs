//! The bus scan and LUN probe `storemu run` performs.
//!
//! It works the way Storport and the disk class driver would: INQUIRY to every bus/target/LUN within the
//! adapter's declared maxima (REPORT LUNS where LUN 0 supports it), then
//! INQUIRY, TEST UNIT READY and READ CAPACITY(16) (falling back to (10)) on
//! every LUN found, a write/read-back of a pattern on disks that accept
//! writes, and SYNCHRONIZE CACHE. With `--racing-buffers`, disks that
//! report UNMAP support also get UNMAP with racing parameter lists
//! ([`crate::port::unmap_race`]).
//!
//! A SCSI error from the miniport is a result recorded in the LUN's report,
//! not a finding.

use serde::Serialize;
use storport_sys::srb_status;

use crate::port::{DataDirection, Port, PortError, SrbResult};

/// Most LUNs per target the scan visits without REPORT LUNS.
const MAX_SCANNED_LUNS: u8 = 8;
/// Most LUNs taken from a REPORT LUNS answer.
const MAX_REPORTED_LUNS: usize = 256;

/// A LUN the scan found: bus, target, LUN and its standard INQUIRY data.
pub type FoundLun = (u8, u8, u8, Vec<u8>);

/// What the probe learned about one logical unit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LunReport {
    /// Bus (`PathId`).
    pub bus: u8,
    /// Target id.
    pub target: u8,
    /// LUN.
    pub lun: u8,
    /// Peripheral device type (0 = direct-access block device).
    pub device_type: u8,
    /// INQUIRY vendor identification.
    pub vendor: String,
    /// INQUIRY product identification.
    pub product: String,
    /// INQUIRY product revision.
    pub revision: String,
    /// Logical block length in bytes (0 when READ CAPACITY failed).
    pub block_size: u32,
    /// Number of logical blocks (0 when READ CAPACITY failed).
    pub blocks: u64,
    /// TEST UNIT READY succeeded.
    pub ready: bool,
    /// The disk took a write, and the pattern read back equal.
    pub write_verified: bool,
    /// SCSI results that were not GOOD, as sentences.
    pub notes: Vec<String>,
}

fn ascii(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '.'
            }
        })
        .collect::<String>()
        .trim_end()
        .to_owned()
}

const fn good(result: &SrbResult) -> bool {
    result.status() == srb_status::SUCCESS
        || (result.status() == srb_status::DATA_OVERRUN && result.transferred > 0)
}

fn describe(command: &str, result: &SrbResult) -> String {
    let sense = if result.sense.len() >= 14 {
        format!(
            ", sense key {:#x} ASC {:#04x} ASCQ {:#04x}",
            result.sense[2] & 0x0F,
            result.sense[12],
            result.sense[13]
        )
    } else {
        String::new()
    };
    format!(
        "{command} ended with SRB status {:#04x}, SCSI status {:#04x}{sense}",
        result.srb_status, result.scsi_status
    )
}

fn inquiry(port: &Port, address: (u8, u8, u8)) -> Result<Option<Vec<u8>>, PortError> {
    let result = port.execute(address, &[0x12, 0, 0, 0, 96, 0], &DataDirection::In(96))?;
    if !good(&result) || result.data.len() < 36 {
        return Ok(None);
    }
    // Peripheral qualifier 0: a device is connected at this LUN.
    Ok((result.data[0] >> 5 == 0).then_some(result.data))
}

fn report_luns(port: &Port, address: (u8, u8, u8)) -> Result<Option<Vec<u8>>, PortError> {
    let length: u32 = 16 + 8 * 256;
    let mut cdb = [0_u8; 12];
    cdb[0] = 0xA0;
    cdb[6..10].copy_from_slice(&length.to_be_bytes());
    let result = port.execute(address, &cdb, &DataDirection::In(length as usize))?;
    if !good(&result) || result.data.len() < 8 {
        return Ok(None);
    }
    let list_bytes = u32::from_be_bytes([
        result.data[0],
        result.data[1],
        result.data[2],
        result.data[3],
    ]) as usize;
    let luns = result.data[8..]
        .chunks_exact(8)
        .take((list_bytes / 8).min(MAX_REPORTED_LUNS))
        // Peripheral (flat space 0) addressing: LUN in byte 1.
        .filter(|entry| entry[0] & 0xC0 == 0)
        .map(|entry| entry[1])
        .collect();
    Ok(Some(luns))
}

/// Finds every LUN, as Storport's bus enumeration does.
///
/// # Errors
///
/// When the driver bug-checks.
pub fn scan(
    port: &Port,
    buses: u8,
    targets: u8,
    luns_per_target: u8,
) -> Result<Vec<FoundLun>, PortError> {
    let mut found = Vec::new();
    for bus in 0..buses {
        for target in 0..targets {
            let Some(lun0) = inquiry(port, (bus, target, 0))? else {
                continue;
            };
            let reported = report_luns(port, (bus, target, 0))?;
            let others: Vec<u8> = reported.map_or_else(
                || (1..luns_per_target.min(MAX_SCANNED_LUNS)).collect(),
                |list| {
                    list.into_iter()
                        .filter(|&lun| lun != 0 && lun < luns_per_target.max(1))
                        .collect()
                },
            );
            found.push((bus, target, 0, lun0));
            for lun in others {
                if let Some(data) = inquiry(port, (bus, target, lun))? {
                    found.push((bus, target, lun, data));
                }
            }
        }
    }
    Ok(found)
}

fn read_capacity(
    port: &Port,
    address: (u8, u8, u8),
    report: &mut LunReport,
) -> Result<(), PortError> {
    let mut cdb16 = [0_u8; 16];
    cdb16[0] = 0x9E;
    cdb16[1] = 0x10;
    cdb16[13] = 32;
    let result = port.execute(address, &cdb16, &DataDirection::In(32))?;
    if good(&result) && result.data.len() >= 12 {
        let d = &result.data;
        report.blocks =
            u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]).saturating_add(1);
        report.block_size = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
        return Ok(());
    }
    report.notes.push(describe("READ CAPACITY(16)", &result));
    let result = port.execute(
        address,
        &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &DataDirection::In(8),
    )?;
    if good(&result) && result.data.len() >= 8 {
        let d = &result.data;
        report.blocks = u64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]])) + 1;
        report.block_size = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
    } else {
        report.notes.push(describe("READ CAPACITY(10)", &result));
    }
    Ok(())
}

fn rw10(opcode: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let mut cdb = [0_u8; 10];
    cdb[0] = opcode;
    cdb[2..6].copy_from_slice(&lba.to_be_bytes());
    cdb[7..9].copy_from_slice(&blocks.to_be_bytes());
    cdb
}

/// Writes a pattern to the last block, reads it back, and restores the block.
fn write_read_back(
    port: &Port,
    address: (u8, u8, u8),
    report: &mut LunReport,
) -> Result<Option<String>, PortError> {
    let Ok(lba) = u32::try_from(report.blocks.saturating_sub(1)) else {
        return Ok(None);
    };
    let size = report.block_size as usize;
    if size == 0 || size > 64 * 1024 {
        return Ok(None);
    }
    let original = port.execute(address, &rw10(0x28, lba, 1), &DataDirection::In(size))?;
    if !good(&original) {
        report.notes.push(describe("READ(10)", &original));
        return Ok(None);
    }
    let pattern: Vec<u8> = (0..size)
        .map(|i| u8::try_from(i % 251).unwrap_or(0) ^ 0xA5 ^ address.2)
        .collect();
    let written = port.execute(
        address,
        &rw10(0x2A, lba, 1),
        &DataDirection::Out(pattern.clone()),
    )?;
    if !good(&written) {
        report.notes.push(describe("WRITE(10)", &written));
        return Ok(None);
    }
    let back = port.execute(address, &rw10(0x28, lba, 1), &DataDirection::In(size))?;
    let _ = port.execute(
        address,
        &rw10(0x2A, lba, 1),
        &DataDirection::Out(original.data),
    )?;
    if back.data == pattern {
        report.write_verified = true;
        Ok(None)
    } else {
        Ok(Some(format!(
            "LUN {}:{}:{} accepted a write of block {lba} but read back different data.",
            address.0, address.1, address.2
        )))
    }
}

/// Threads that write and read back at once in [`concurrent_check`].
const CONCURRENT_THREADS: u8 = 4;
/// Write/read rounds per thread.
const CONCURRENT_ROUNDS: u8 = 8;

/// One thread of [`concurrent_check`]: rounds of write and read-back of
/// block `lba`, which only this thread touches; the block is restored.
fn concurrent_worker(
    port: &Port,
    address: (u8, u8, u8),
    lba: u32,
    thread: u8,
    size: usize,
) -> Result<Option<String>, PortError> {
    let original = port.execute(address, &rw10(0x28, lba, 1), &DataDirection::In(size))?;
    let mut mismatch = None;
    for round in 0..CONCURRENT_ROUNDS {
        let pattern = vec![thread.wrapping_mul(37) ^ round ^ 0x5A; size];
        let written = port.execute(
            address,
            &rw10(0x2A, lba, 1),
            &DataDirection::Out(pattern.clone()),
        )?;
        let back = port.execute(address, &rw10(0x28, lba, 1), &DataDirection::In(size))?;
        if good(&written) && good(&back) && back.data != pattern {
            mismatch = Some(format!(
                "LUN {}:{}:{} returned other data for block {lba} than thread {thread} wrote while {CONCURRENT_THREADS} threads did I/O at once.",
                address.0, address.1, address.2
            ));
            break;
        }
    }
    let _ = port.execute(
        address,
        &rw10(0x2A, lba, 1),
        &DataDirection::Out(original.data),
    )?;
    Ok(mismatch)
}

/// Storport calls a virtual miniport's `HwStartIo` on several processors at
/// once: each of [`CONCURRENT_THREADS`] threads writes its own block and
/// reads it back, at the same time; the blocks are restored afterwards.
fn concurrent_check(
    port: &Port,
    address: (u8, u8, u8),
    report: &LunReport,
) -> Result<Option<String>, PortError> {
    let size = report.block_size as usize;
    let threads = u64::from(CONCURRENT_THREADS);
    if report.blocks < threads + 2 {
        return Ok(None);
    }
    let Ok(first) = u32::try_from(report.blocks - 1 - threads) else {
        return Ok(None);
    };
    port.log(format!(
        "concurrent I/O: {CONCURRENT_THREADS} threads write and read back blocks {first}..{} of LUN {}:{}:{}",
        first + u32::from(CONCURRENT_THREADS) - 1,
        address.0,
        address.1,
        address.2
    ));
    let results: Vec<Result<Option<String>, PortError>> = std::thread::scope(|scope| {
        // Spawn every worker before joining any, so they run at once.
        let mut workers = Vec::new();
        for thread in 0..CONCURRENT_THREADS {
            workers.push(scope.spawn(move || {
                concurrent_worker(port, address, first + u32::from(thread), thread, size)
            }));
        }
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| Ok(Some("a concurrent I/O thread panicked".to_owned())))
            })
            .collect()
    });
    let mut first_mismatch = None;
    for result in results {
        if let Some(message) = result? {
            first_mismatch.get_or_insert(message);
        }
    }
    Ok(first_mismatch)
}

/// Probes one LUN found by [`scan`]; returns the report and, when data did
/// not read back as written, a sentence saying so.
///
/// # Errors
///
/// When the driver bug-checks.
pub fn probe(
    port: &Port,
    (bus, target, lun, inquiry_data): &FoundLun,
) -> Result<(LunReport, Option<String>), PortError> {
    let address = (*bus, *target, *lun);
    let mut report = LunReport {
        bus: *bus,
        target: *target,
        lun: *lun,
        device_type: inquiry_data[0] & 0x1F,
        vendor: ascii(&inquiry_data[8..16]),
        product: ascii(&inquiry_data[16..32]),
        revision: ascii(&inquiry_data[32..36]),
        ..LunReport::default()
    };
    let again = port.execute(address, &[0x12, 0, 0, 0, 36, 0], &DataDirection::In(36))?;
    if !good(&again) {
        report.notes.push(describe("INQUIRY", &again));
    }
    let tur = port.execute(address, &[0, 0, 0, 0, 0, 0], &DataDirection::None)?;
    report.ready = good(&tur);
    if !report.ready {
        report.notes.push(describe("TEST UNIT READY", &tur));
    }
    let mut mismatch = None;
    if report.device_type == 0 {
        read_capacity(port, address, &mut report)?;
        if report.blocks > 0 {
            mismatch = write_read_back(port, address, &mut report)?;
        }
        if mismatch.is_none() && report.write_verified {
            mismatch = concurrent_check(port, address, &report)?;
        }
        if port.options().racing_buffers.is_some() && report.blocks > 0 {
            port.racing_unmap(address)?;
        }
        let flush = port.execute(
            address,
            &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &DataDirection::None,
        )?;
        if !good(&flush) {
            report.notes.push(describe("SYNCHRONIZE CACHE(10)", &flush));
        }
    }
    Ok((report, mismatch))
}
