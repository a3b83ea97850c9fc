//! Several target ports on one disk: unit attentions after resets reach each port once, and
//! an SPC-2 reservation made through one port conflicts on the others.

use super::{Kind, MemStore, disk, luns};
use crate::scsi::{Autosense, DataBuffer, Disk, Outcome, Request, SenseData};

const TUR: [u8; 6] = [0x00, 0, 0, 0, 0, 0];
const INQUIRY: [u8; 6] = [0x12, 0, 0, 0, 36, 0];
const REPORT_LUNS: [u8; 12] = [0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0];
const REQUEST_SENSE: [u8; 6] = [0x03, 0, 0, 0, 18, 0];
const RESERVE: [u8; 6] = [0x16, 0, 0, 0, 0, 0];
const RELEASE: [u8; 6] = [0x17, 0, 0, 0, 0, 0];
const READ_ONE: [u8; 10] = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0];

/// Sends `cdb` through `port` with a data-in buffer of 512 bytes.
fn send(disk: &Disk, store: &MemStore, port: u8, cdb: &[u8]) -> Outcome {
    let mut buf = [0_u8; 512];
    let data = if cdb[0] == 0x00 || cdb[0] == 0x16 || cdb[0] == 0x17 {
        DataBuffer::None
    } else {
        DataBuffer::In(&mut buf)
    };
    disk.execute(
        store,
        Request {
            cdb,
            data,
            autosense: Autosense::Enabled,
            luns: &luns(),
            port,
        },
    )
}

fn is_good(o: &Outcome) -> bool {
    o.scsi_status == 0 && o.srb_status == 0x01
}

fn is_conflict(o: &Outcome) -> bool {
    (o.srb_status, o.scsi_status, o.sense, o.transferred) == (0x04, 0x18, None, 0)
}

/// The unit attention sense 29h/`ascq`, if that is what `o` reports.
fn attention(o: &Outcome) -> Option<u8> {
    match o.sense {
        Some(SenseData {
            key: 6,
            asc: 0x29,
            ascq,
            ..
        }) if o.scsi_status == 0x02 => Some(ascq),
        _ => None,
    }
}

#[test]
fn a_reservation_conflicts_on_other_ports_only() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    assert!(is_good(&send(&disk, &store, 0, &RESERVE)));
    assert_eq!(disk.reserved_by(), Some(0));
    assert!(
        is_good(&send(&disk, &store, 0, &RESERVE)),
        "again from the holder"
    );
    assert!(
        is_good(&send(&disk, &store, 0, &READ_ONE)),
        "the holder reads"
    );
    for cdb in [&TUR[..], &READ_ONE, &RESERVE, &[0x1A, 0, 0x3F, 0, 255, 0]] {
        assert!(
            is_conflict(&send(&disk, &store, 1, cdb)),
            "{cdb:02X?} from port 1"
        );
    }
    for cdb in [&INQUIRY[..], &REPORT_LUNS, &REQUEST_SENSE] {
        assert!(
            is_good(&send(&disk, &store, 1, cdb)),
            "{cdb:02X?} from port 1"
        );
    }
    // RELEASE from a port that does not hold it: GOOD, and nothing changes.
    assert!(is_good(&send(&disk, &store, 1, &RELEASE)));
    assert_eq!(disk.reserved_by(), Some(0));
    assert!(is_conflict(&send(&disk, &store, 2, &TUR)));
    assert!(is_good(&send(&disk, &store, 0, &RELEASE)));
    assert_eq!(disk.reserved_by(), None);
    assert!(is_good(&send(&disk, &store, 1, &RESERVE)));
    assert!(is_conflict(&send(&disk, &store, 0, &TUR)));
    assert_eq!(disk.reserved_by(), Some(1));
}

#[test]
fn a_logical_unit_reset_releases_and_tells_every_port_once() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    assert!(is_good(&send(&disk, &store, 0, &RESERVE)));
    disk.reset();
    assert_eq!(disk.reserved_by(), None);
    for port in 0..3 {
        // INQUIRY and REPORT LUNS neither report nor clear the unit attention.
        assert!(is_good(&send(&disk, &store, port, &INQUIRY)));
        assert!(is_good(&send(&disk, &store, port, &REPORT_LUNS)));
        assert_eq!(
            attention(&send(&disk, &store, port, &TUR)),
            Some(3),
            "port {port}"
        );
        assert!(
            is_good(&send(&disk, &store, port, &TUR)),
            "port {port}: once"
        );
    }
}

#[test]
fn a_port_reset_releases_only_its_own_reservation_and_tells_only_itself() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    assert!(is_good(&send(&disk, &store, 0, &RESERVE)));
    disk.reset_port(1);
    assert_eq!(disk.reserved_by(), Some(0), "port 1 did not hold it");
    assert_eq!(attention(&send(&disk, &store, 1, &TUR)), Some(2));
    assert!(is_conflict(&send(&disk, &store, 1, &TUR)));
    assert!(
        is_good(&send(&disk, &store, 0, &TUR)),
        "port 0 was not reset"
    );
    disk.reset_port(0);
    assert_eq!(disk.reserved_by(), None);
    assert_eq!(attention(&send(&disk, &store, 0, &READ_ONE)), Some(2));
    assert!(is_good(&send(&disk, &store, 1, &TUR)));
}

#[test]
fn request_sense_returns_the_unit_attention_once() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    disk.reset_port(4);
    let mut sense = [0_u8; 18];
    let o = disk.execute(
        &store,
        Request {
            cdb: &REQUEST_SENSE,
            data: DataBuffer::In(&mut sense),
            autosense: Autosense::Enabled,
            luns: &luns(),
            port: 4,
        },
    );
    assert_eq!(o, Outcome::good(18));
    assert_eq!((sense[2], sense[12], sense[13]), (6, 0x29, 2));
    assert!(is_good(&send(&disk, &store, 4, &TUR)));
    // A later reset replaces a pending unit attention rather than adding to it.
    disk.reset_port(5);
    disk.reset();
    assert_eq!(attention(&send(&disk, &store, 5, &TUR)), Some(3));
    assert!(is_good(&send(&disk, &store, 5, &TUR)));
}
