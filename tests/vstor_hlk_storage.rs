//! The Windows HLK storage tests' expectations that can be checked without Windows, run
//! against the real `vstor.sys` under the emulated Storport port, one test each, named after
//! the HLK test it stands for (docs/windows.md, "HLK tests that apply", has the checklist).
//!
//! Each sends what the HLK test sends through `SRB_FUNCTION_EXECUTE_SCSI`, as a pass-through
//! request reaches the miniport, and checks what the HLK test reference page says the test
//! checks; every run ends with no storemu finding.

mod common;

use common::{Adapter, assert_check_condition, assert_good, global, rw10};
use storport_emu::port::{DataDirection, SrbResult};
use storport_emu::registry::RegValue;

/// ILLEGAL REQUEST, INVALID FIELD IN CDB (SPC-4).
const INVALID_FIELD_IN_CDB: common::Sense = (0x05, 0x24, 0x00);

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(d[at..at + 4].try_into().expect("4 bytes"))
}

/// One disk of 4 MiB with `sector` byte blocks.
fn disk(sector: u32) -> Adapter {
    Adapter::start(&[
        global("DiskSizeMiB", RegValue::dword(4)),
        global("SectorSize", RegValue::dword(sector)),
    ])
}

/// READ CAPACITY(16) parameter data, checked GOOD.
fn read_capacity_16(adapter: &Adapter) -> Vec<u8> {
    let mut cdb = [0_u8; 16];
    cdb[0] = 0x9E;
    cdb[1] = 0x10;
    cdb[13] = 32;
    let result = adapter.execute(0, &cdb, &DataDirection::In(32));
    assert_good(&result, "READ CAPACITY(16)");
    assert_eq!(result.data.len(), 32, "READ CAPACITY(16) length");
    result.data
}

/// LOG SENSE of `page`/`subpage` with page control 01b (cumulative values).
fn log_sense(adapter: &Adapter, sp: bool, page: u8, subpage: u8) -> SrbResult {
    let cdb = [0x4D, u8::from(sp), 0x40 | page, subpage, 0, 0, 0, 1, 0, 0];
    adapter.execute(0, &cdb, &DataDirection::In(256))
}

/// SAS SSD SCSI Compliance Test (LOGO): INQUIRY pages B0h, B1h and B2h, READ CAPACITY (16)
/// against page B2h, and UNMAP (10), on 512-byte and 4096-byte disks.
#[test]
fn sas_ssd_scsi_compliance_test() {
    for sector in [512_u32, 4096] {
        let adapter = disk(sector);
        let what = format!("{sector}-byte blocks");

        let b0 = adapter.vpd(0, 0xB0);
        assert_eq!(be16(&b0, 2), 0x3C, "B0h PAGE LENGTH, {what}");
        assert!(be32(&b0, 20) > 0, "MAXIMUM UNMAP LBA COUNT, {what}");
        assert!(
            be32(&b0, 24) > 0,
            "MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT, {what}"
        );

        let b1 = adapter.vpd(0, 0xB1);
        assert_eq!(be16(&b1, 2), 0x3C, "B1h PAGE LENGTH, {what}");
        assert_eq!(be16(&b1, 4), 1, "MEDIUM ROTATION RATE, {what}");

        let b2 = adapter.vpd(0, 0xB2);
        assert_eq!(b2[5] & 0x01, 0, "DP, {what}");
        assert_eq!(be16(&b2, 2), 4, "B2h PAGE LENGTH, {what}");
        assert_eq!(b2[5] & 0x80, 0x80, "LBPU, {what}");
        assert_eq!(
            b2[6] & 0x07,
            1,
            "PROVISIONING TYPE (resource provisioned), {what}"
        );

        let rc = read_capacity_16(&adapter);
        assert_eq!(rc[14] & 0x80 != 0, b2[5] & 0xE0 != 0, "LBPME, {what}");
        assert_eq!(rc[14] & 0x40 != 0, (b2[5] >> 2) & 1 == 1, "LBPRZ, {what}");

        // UNMAP (10) of blocks just written: GOOD, and they read back zero (LBPRZ = 1).
        let block = usize::try_from(sector).expect("fits");
        adapter.write_ok(0, 8, vec![0xC3; 4 * block], block);
        let mut list = vec![0, 22, 0, 16, 0, 0, 0, 0];
        list.extend_from_slice(&8_u64.to_be_bytes());
        list.extend_from_slice(&4_u32.to_be_bytes());
        list.extend_from_slice(&[0; 4]);
        let cdb = [0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0];
        assert_good(
            &adapter.execute(0, &cdb, &DataDirection::Out(list)),
            "UNMAP(10)",
        );
        assert!(
            adapter.read_ok(0, 8, 4, block).iter().all(|&b| b == 0),
            "unmapped blocks read zero, {what}"
        );
        adapter.finish_clean();
    }
}

/// Thin Provisioning SCSI Compliance Test (LOGO) (and the Thin Provisioning Threshold and
/// Resource Exhaustion and Performance tests): they apply to thin provisioned LUNs, which
/// report PROVISIONING TYPE 010b and the Logical Block Provisioning log page (0Ch). vstor's
/// disks are resource provisioned and report neither, so the tests do not apply; GET LBA
/// STATUS still answers, with one "mapped or unknown" descriptor to the end of the disk.
#[test]
fn thin_provisioning_scsi_compliance_test_does_not_apply() {
    let adapter = disk(512);
    let b2 = adapter.vpd(0, 0xB2);
    assert_ne!(b2[6] & 0x07, 0x02, "PROVISIONING TYPE is not thin");
    let pages = log_sense(&adapter, false, 0x00, 0x00);
    assert_good(&pages, "LOG SENSE supported pages");
    assert!(!pages.data[4..].contains(&0x0C), "no provisioning log page");
    assert_check_condition(
        &log_sense(&adapter, false, 0x0C, 0x00),
        INVALID_FIELD_IN_CDB,
        "LOG SENSE page 0Ch",
    );

    let mut cdb = [0_u8; 16];
    cdb[0] = 0x9E;
    cdb[1] = 0x12;
    cdb[2..10].copy_from_slice(&100_u64.to_be_bytes());
    cdb[13] = 24;
    let status = adapter.execute(0, &cdb, &DataDirection::In(24));
    assert_good(&status, "GET LBA STATUS");
    assert_eq!(status.data.len(), 24);
    let blocks = 4 * 1024 * 1024 / 512;
    assert_eq!(
        u64::from_be_bytes(status.data[8..16].try_into().unwrap()),
        100
    );
    assert_eq!(
        be32(&status.data, 16),
        blocks - 100,
        "to the end of the disk"
    );
    assert_eq!(status.data[20] & 0x0F, 0, "mapped or unknown");
    adapter.finish_clean();
}

/// The log pages Windows reads (supported pages, temperature, informational exceptions),
/// as the SCSI Compliance Test checks an optional command a device reports: listed by
/// REPORT SUPPORTED OPERATION CODES, answered per SPC-4, SP refused.
#[test]
fn scsi_compliance_test_log_sense() {
    let adapter = disk(512);
    let rsoc = [0xA3, 0x0C, 0x01, 0x4D, 0, 0, 0, 0, 0, 64, 0, 0];
    let one = adapter.execute(0, &rsoc, &DataDirection::In(64));
    assert_good(&one, "REPORT SUPPORTED OPERATION CODES for LOG SENSE");
    assert_eq!(one.data[1] & 0x07, 0x03, "LOG SENSE is supported");
    assert_eq!(be16(&one.data, 2), 10, "LOG SENSE is a 10-byte CDB");

    let pages = log_sense(&adapter, false, 0x00, 0x00);
    assert_good(&pages, "supported log pages");
    assert_eq!(pages.data, [0x00, 0x00, 0x00, 0x03, 0x00, 0x0D, 0x2F]);
    let subpages = log_sense(&adapter, false, 0x00, 0xFF);
    assert_good(&subpages, "supported log pages and subpages");
    assert_eq!(subpages.data[..4], [0x40, 0xFF, 0x00, 0x08]);
    for page in [0x0D, 0x2F] {
        let result = log_sense(&adapter, false, page, 0x00);
        assert_good(&result, "LOG SENSE");
        let d = &result.data;
        assert_eq!(d[0], 0x80 | page, "DS = 1, SPF = 0, page {page:02X}h");
        assert_eq!(d[1], 0, "SUBPAGE CODE");
        assert_eq!(usize::from(be16(d, 2)) + 4, d.len(), "PAGE LENGTH");
        assert_eq!(d[6] & 0x03, 0x03, "FORMAT AND LINKING: binary format list");
    }
    assert_check_condition(
        &log_sense(&adapter, true, 0x0D, 0x00),
        INVALID_FIELD_IN_CDB,
        "LOG SENSE with SP = 1",
    );
    adapter.finish_clean();
}

/// Disk Stress (LOGO) and Disk Verification (LOGO): sequential and random verify (write,
/// read back, compare) in 32 KB transfers, the logo default, over two disks.
#[test]
fn disk_stress_and_disk_verification_sequential_and_random_verify() {
    const BLOCK: usize = 512;
    const TRANSFER: u16 = 64; // 32 KB
    let adapter = Adapter::start(&[
        global("DiskCount", RegValue::dword(2)),
        global("DiskSizeMiB", RegValue::dword(2)),
    ]);
    let last = u32::try_from(2 * 1024 * 1024 / BLOCK).unwrap() - u32::from(TRANSFER);
    let pattern = |lun: u8, lba: u32, pass: u8| -> Vec<u8> {
        (0..usize::from(TRANSFER) * BLOCK)
            .map(|i| {
                let v = u64::from(lba) * 7919 + i as u64 * 31 + u64::from(lun) * 131;
                u8::try_from((v + u64::from(pass) * 17) % 251).unwrap()
            })
            .collect()
    };
    // Sequential verify: the first 1 MiB of each disk.
    for lun in 0..2 {
        for lba in (0..2048).step_by(usize::from(TRANSFER)) {
            adapter.write_ok(lun, lba, pattern(lun, lba, 0), BLOCK);
        }
        for lba in (0..2048).step_by(usize::from(TRANSFER)) {
            assert_eq!(
                adapter.read_ok(lun, lba, TRANSFER, BLOCK),
                pattern(lun, lba, 0)
            );
        }
    }
    // Random verify: a fixed pseudo-random walk, each transfer read back at once.
    let mut seed = 0x2545_F491_u32;
    for step in 0..64_u8 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let lun = step % 2;
        let lba = seed % last;
        adapter.write_ok(lun, lba, pattern(lun, lba, step), BLOCK);
        assert_eq!(
            adapter.read_ok(lun, lba, TRANSFER, BLOCK),
            pattern(lun, lba, step),
            "random verify at LBA {lba} of LUN {lun}"
        );
    }
    adapter.finish_clean();
}

/// Flush Test: the flush commands (SYNCHRONIZE CACHE (10) and (16), WRITE (10) with FUA)
/// complete GOOD and the data written before them reads back. The power cut the HLK test
/// adds cannot be passed by a RAM disk and is not checked.
#[test]
fn flush_test_flush_commands_complete_and_keep_the_data() {
    const BLOCK: usize = 512;
    let adapter = disk(512);
    adapter.write_ok(0, 100, vec![0x3C; 8 * BLOCK], BLOCK);
    assert_good(
        &adapter.execute(0, &rw10(0x35, 0, 0), &DataDirection::None),
        "SYNCHRONIZE CACHE(10)",
    );
    let mut sync16 = [0_u8; 16];
    sync16[0] = 0x91;
    assert_good(
        &adapter.execute(0, &sync16, &DataDirection::None),
        "SYNCHRONIZE CACHE(16)",
    );
    let mut fua = rw10(0x2A, 108, 1);
    fua[1] = 0x08;
    assert_good(
        &adapter.execute(0, &fua, &DataDirection::Out(vec![0x4D; BLOCK])),
        "WRITE(10) FUA",
    );
    let mut expected = vec![0x3C; 8 * BLOCK];
    expected.extend_from_slice(&[0x4D; BLOCK]);
    assert_eq!(adapter.read_ok(0, 100, 9, BLOCK), expected);
    adapter.finish_clean();
}
