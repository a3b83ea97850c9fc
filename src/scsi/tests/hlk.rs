//! The expectations of the Windows HLK storage tests that the SCSI logic alone decides, one
//! test each, named after the HLK test it stands for (docs/windows.md has the checklist).
//!
//! Sources: the HLK test reference pages "SAS SSD SCSI Compliance Test (LOGO)", "Thin
//! Provisioning SCSI Compliance Test (LOGO)", "Read Capacity 16 Unit Test - SCSI Compliance
//! Test" and the assertions the SCSI Compliance Test logs (`scsicompliance.wtl`).

use super::{Kind, MemStore, assert_good, disk, run, run_in};
use crate::scsi::DataBuffer;
use crate::scsi::tests::cdb::{rw10, unmap, unmap_list};

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(d[at..at + 4].try_into().unwrap())
}

/// A VPD page of a fresh disk of `kind`, checked GOOD.
fn vpd(kind: Kind, page: u8) -> Vec<u8> {
    let disk = disk(kind);
    let store = MemStore::for_disk(&disk);
    let (o, d) = run_in(&disk, &store, &[0x12, 1, page, 0, 255, 0], 255);
    assert_eq!(o.scsi_status, 0, "INQUIRY VPD {page:02X}h of {kind:?}");
    assert_eq!(d[1], page);
    d
}

/// READ CAPACITY(16) parameter data of a fresh disk of `kind`, checked GOOD.
fn read_capacity_16(kind: Kind) -> Vec<u8> {
    let disk = disk(kind);
    let store = MemStore::for_disk(&disk);
    let mut cdb = [0_u8; 16];
    cdb[0] = 0x9E;
    cdb[1] = 0x10;
    cdb[13] = 32;
    let (o, d) = run_in(&disk, &store, &cdb, 32);
    assert_good(&o, 32);
    d
}

const KINDS: [Kind; 3] = [Kind::Rw, Kind::Ro, Kind::B4k];

/// SAS SSD SCSI Compliance Test (LOGO), INQUIRY page B0h: PAGE LENGTH 3Ch, MAXIMUM UNMAP
/// LBA COUNT > 0, MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT > 0.
#[test]
fn sas_ssd_scsi_compliance_test_block_limits_page() {
    for kind in KINDS {
        let d = vpd(kind, 0xB0);
        assert_eq!(be16(&d, 2), 0x3C, "{kind:?}");
        assert!(be32(&d, 20) > 0, "MAXIMUM UNMAP LBA COUNT of {kind:?}");
        assert!(
            be32(&d, 24) > 0,
            "MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT of {kind:?}"
        );
    }
}

/// SAS SSD SCSI Compliance Test (LOGO), INQUIRY page B1h: PAGE LENGTH 3Ch, MEDIUM ROTATION
/// RATE 1 (non-rotating).
#[test]
fn sas_ssd_scsi_compliance_test_block_device_characteristics_page() {
    for kind in KINDS {
        let d = vpd(kind, 0xB1);
        assert_eq!(be16(&d, 2), 0x3C, "{kind:?}");
        assert_eq!(be16(&d, 4), 1, "MEDIUM ROTATION RATE of {kind:?}");
    }
}

/// SAS SSD SCSI Compliance Test (LOGO), INQUIRY page B2h: PAGE LENGTH 4 when DP = 1 (and,
/// with no provisioning group descriptor, whenever DP = 0), LBPU = 1, PROVISIONING TYPE 0
/// or 1. vstor's is 1, resource provisioned: the memory is all allocated up front.
#[test]
fn sas_ssd_scsi_compliance_test_logical_block_provisioning_page() {
    for kind in KINDS {
        let d = vpd(kind, 0xB2);
        assert_eq!(
            d[5] & 0x01,
            0,
            "DP of {kind:?}: no provisioning group descriptor"
        );
        assert_eq!(be16(&d, 2), 4, "PAGE LENGTH of {kind:?}");
        assert_eq!(d[5] & 0x80, 0x80, "LBPU of {kind:?}");
        assert_eq!(
            d[6] & 0x07,
            1,
            "PROVISIONING TYPE of {kind:?}: resource provisioned"
        );
    }
}

/// SAS SSD SCSI Compliance Test (LOGO), READ CAPACITY (16): supported; LBPME and LBPRZ as
/// page B2h has them (LBPME set when B2h reports a way to unmap: LBPU, LBPWS or LBPWS10;
/// LBPRZ set when B2h's LBPRZ field says unmapped blocks read zero).
#[test]
fn sas_ssd_scsi_compliance_test_read_capacity_16_matches_page_b2h() {
    for kind in KINDS {
        let b2 = vpd(kind, 0xB2);
        let rc = read_capacity_16(kind);
        let lbpme = rc[14] & 0x80 != 0;
        let lbprz = rc[14] & 0x40 != 0;
        assert_eq!(lbpme, b2[5] & 0xE0 != 0, "LBPME of {kind:?}");
        assert_eq!(lbprz, (b2[5] >> 2) & 0x07 & 1 == 1, "LBPRZ of {kind:?}");
        assert!(lbpme && lbprz, "{kind:?} reports UNMAP with zeroed blocks");
    }
}

/// SAS SSD SCSI Compliance Test (LOGO), UNMAP (10): supported (GOOD), and with LBPRZ = 1
/// the unmapped blocks read back zero.
#[test]
fn sas_ssd_scsi_compliance_test_unmap_10() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let data = vec![0x5A; 8 * 512];
    assert_good(
        &run(&disk, &store, &rw10(0x2A, 0, 16, 8), DataBuffer::out(&data)),
        data.len(),
    );
    let list = unmap_list(&[(16, 8)]);
    let o = run(
        &disk,
        &store,
        &unmap(u16::try_from(list.len()).unwrap()),
        DataBuffer::out(&list),
    );
    assert_good(&o, list.len());
    let (o, back) = run_in(&disk, &store, &rw10(0x28, 0, 16, 8), 8 * 512);
    assert_good(&o, 8 * 512);
    assert!(back.iter().all(|&b| b == 0), "unmapped blocks read zero");
}

/// Thin Provisioning SCSI Compliance Test (LOGO), and with it the Thin Provisioning
/// Threshold and Resource Exhaustion and Thin Provisioning Performance tests, run on thin
/// provisioned LUNs (PROVISIONING TYPE 010b) with the Logical Block Provisioning log page
/// (0Ch) and a threshold. vstor's disks are resource provisioned: they report neither, so
/// these tests do not apply; this guards that the disk does not claim to be thin.
#[test]
fn thin_provisioning_scsi_compliance_test_does_not_apply() {
    for kind in KINDS {
        let b2 = vpd(kind, 0xB2);
        assert_ne!(b2[6] & 0x07, 0x02, "{kind:?} is not thin provisioned");
        assert_eq!(b2[4], 0, "THRESHOLD EXPONENT of {kind:?}: no threshold");
        let disk = disk(kind);
        let store = MemStore::for_disk(&disk);
        let (o, pages) = run_in(&disk, &store, &[0x4D, 0, 0x40, 0, 0, 0, 0, 0, 255, 0], 255);
        assert_eq!(o.scsi_status, 0);
        assert!(!pages[4..].contains(&0x0C), "no provisioning log page");
    }
}

/// Read Capacity 16 Unit Test - SCSI Compliance Test: READ CAPACITY (16) is supported and
/// agrees with READ CAPACITY (10) (which reports `FFFF_FFFFh` once the last LBA does not fit).
#[test]
fn read_capacity_16_unit_test_scsi_compliance() {
    for kind in [Kind::Rw, Kind::B4k, Kind::Huge] {
        let disk = disk(kind);
        let store = MemStore::for_disk(&disk);
        let (o, rc10) = run_in(&disk, &store, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
        assert_good(&o, 8);
        let rc16 = read_capacity_16(kind);
        let last = u64::from_be_bytes(rc16[0..8].try_into().unwrap());
        assert_eq!(last, disk.config().block_count - 1, "{kind:?}");
        assert_eq!(
            be32(&rc10, 0),
            u32::try_from(last).unwrap_or(u32::MAX),
            "{kind:?}"
        );
        assert_eq!(be32(&rc10, 4), be32(&rc16, 8), "block length of {kind:?}");
    }
}

/// SCSI Compliance Test, INQUIRY basic verification: with ALLOCATION LENGTH 255, GOOD and
/// at most 255 bytes; and INQUIRY with EVPD = 0 and a nonzero PAGE CODE is CHECK CONDITION.
#[test]
fn scsi_compliance_test_inquiry_basic_verification() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let (o, d) = run_in(&disk, &store, &[0x12, 0, 0, 0, 0xFF, 0], 0x1000);
    assert_eq!((o.srb_status, o.scsi_status), (0x01, 0x00));
    assert!(!d.is_empty() && d.len() <= 255, "{} bytes", d.len());
    assert_eq!(usize::from(d[4]) + 5, d.len(), "ADDITIONAL LENGTH");
    let (o, _) = run_in(&disk, &store, &[0x12, 0, 0xFF, 0, 0xFF, 0], 0x1000);
    assert_eq!(o.scsi_status, 0x02, "PAGE CODE without EVPD");
}
