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

/// PERSISTENT RESERVE OUT through `port`: service `action`, reservation `kind`, with the
/// RESERVATION KEY and SERVICE ACTION RESERVATION KEY of the parameter list.
fn prout(
    disk: &Disk,
    store: &MemStore,
    port: u8,
    action: u8,
    kind: u8,
    keys: (u64, u64),
) -> Outcome {
    let mut list = [0_u8; 24];
    list[..8].copy_from_slice(&keys.0.to_be_bytes());
    list[8..16].copy_from_slice(&keys.1.to_be_bytes());
    disk.execute(
        store,
        Request {
            cdb: &[0x5F, action, kind, 0, 0, 0, 0, 0, 24, 0],
            data: DataBuffer::out(&list),
            autosense: Autosense::Enabled,
            luns: &luns(),
            port,
        },
    )
}

/// PERSISTENT RESERVE IN service `action` through port 0: the data returned.
fn prin(disk: &Disk, store: &MemStore, action: u8) -> Vec<u8> {
    let mut buf = vec![0_u8; 512];
    let o = disk.execute(
        store,
        Request {
            cdb: &[0x5E, action, 0, 0, 0, 0, 0, 2, 0, 0],
            data: DataBuffer::In(&mut buf),
            autosense: Autosense::Enabled,
            luns: &luns(),
            port: 0,
        },
    );
    assert!(is_good(&o), "PR IN {action}: {o:?}");
    buf.truncate(o.transferred as usize);
    buf
}

const WRITE_ONE: [u8; 10] = [0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0];

/// A write through `port` (512 zero bytes).
fn write(disk: &Disk, store: &MemStore, port: u8) -> Outcome {
    disk.execute(
        store,
        Request {
            cdb: &WRITE_ONE,
            data: DataBuffer::out(&[0; 512]),
            autosense: Autosense::Enabled,
            luns: &luns(),
            port,
        },
    )
}

#[test]
fn registration_keys_generation_and_read_keys() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    assert_eq!(prin(&disk, &store, 0), [0; 8], "generation 0, no keys");
    assert!(is_good(&prout(&disk, &store, 0, 0, 0, (0, 0xA1))));
    assert!(
        is_good(&prout(&disk, &store, 2, 6, 0, (0x99, 0xB2))),
        "REGISTER AND IGNORE"
    );
    // REGISTER with the wrong current key conflicts and changes nothing.
    assert!(is_conflict(&prout(&disk, &store, 0, 0, 0, (0x77, 0xC3))));
    let keys = prin(&disk, &store, 0);
    assert_eq!(
        keys[..8],
        [0, 0, 0, 2, 0, 0, 0, 16],
        "generation 2, two keys"
    );
    assert_eq!(keys[8..16], 0xA1_u64.to_be_bytes());
    assert_eq!(keys[16..24], 0xB2_u64.to_be_bytes());
    // Unregister port 0 (new key 0 with the right current key).
    assert!(is_good(&prout(&disk, &store, 0, 0, 0, (0xA1, 0))));
    assert_eq!(
        prin(&disk, &store, 0)[4..],
        [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0xB2]
    );
}

#[test]
fn each_reservation_type_grants_what_spc4_says() {
    // (type, registered port 1 reads, writes; unregistered port 2 reads, writes)
    for (kind, reg, unreg) in [
        (1, (true, false), (true, false)),
        (3, (false, false), (false, false)),
        (5, (true, true), (true, false)),
        (6, (true, true), (false, false)),
        (7, (true, true), (true, false)),
        (8, (true, true), (false, false)),
    ] {
        let disk = disk(Kind::Rw);
        let store = MemStore::for_disk(&disk);
        assert!(is_good(&prout(&disk, &store, 0, 0, 0, (0, 10))));
        assert!(is_good(&prout(&disk, &store, 1, 0, 0, (0, 11))));
        assert!(
            is_good(&prout(&disk, &store, 0, 1, kind, (10, 0))),
            "type {kind}"
        );
        let reservation = prin(&disk, &store, 1);
        let holder_key = if kind >= 7 { 0 } else { 10 };
        assert_eq!(
            reservation[8..16],
            u64::to_be_bytes(holder_key),
            "type {kind}"
        );
        assert_eq!(reservation[21], kind);
        assert!(is_good(&send(&disk, &store, 0, &READ_ONE)));
        assert!(is_good(&write(&disk, &store, 0)));
        for (port, (reads, writes)) in [(1, reg), (2, unreg)] {
            let read = send(&disk, &store, port, &READ_ONE);
            assert_eq!(is_good(&read), reads, "type {kind} port {port} read");
            assert_eq!(is_conflict(&read), !reads, "type {kind} port {port} read");
            let written = write(&disk, &store, port);
            assert_eq!(is_good(&written), writes, "type {kind} port {port} write");
            // Always allowed, whoever asks.
            assert!(is_good(&send(&disk, &store, port, &TUR)));
            assert!(is_good(&send(&disk, &store, port, &INQUIRY)));
        }
        // Releasing with another type is an error; with the right one it works.
        let wrong = prout(&disk, &store, 0, 2, if kind == 1 { 3 } else { 1 }, (10, 0));
        assert_eq!(
            wrong.sense.map(|s| (s.key, s.asc, s.ascq)),
            Some((5, 0x26, 4)),
            "type {kind}"
        );
        assert!(is_good(&prout(&disk, &store, 0, 2, kind, (10, 0))));
        assert!(is_good(&write(&disk, &store, 2)), "type {kind}: released");
    }
}

#[test]
fn unregistering_the_holder_ends_only_a_reservation_that_is_not_shared() {
    for (kind, shared) in [(1, false), (6, false), (7, true), (8, true)] {
        let disk = disk(Kind::Rw);
        let store = MemStore::for_disk(&disk);
        assert!(is_good(&prout(&disk, &store, 0, 0, 0, (0, 10))));
        assert!(is_good(&prout(&disk, &store, 1, 0, 0, (0, 11))));
        assert!(is_good(&prout(&disk, &store, 0, 1, kind, (10, 0))));
        assert!(is_good(&prout(&disk, &store, 0, 0, 0, (10, 0))));
        let reserved = prin(&disk, &store, 1)[7] != 0;
        assert_eq!(reserved, shared, "type {kind}");
        if shared {
            assert!(
                is_good(&prout(&disk, &store, 1, 2, kind, (11, 0))),
                "the other holder"
            );
            assert_eq!(prin(&disk, &store, 1)[7], 0);
        }
    }
}

#[test]
fn preempt_and_clear() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    assert!(is_good(&prout(&disk, &store, 0, 0, 0, (0, 10))));
    assert!(is_good(&prout(&disk, &store, 1, 0, 0, (0, 11))));
    assert!(is_good(&prout(&disk, &store, 0, 1, 3, (10, 0))));
    assert!(is_conflict(&write(&disk, &store, 1)));
    // Port 1 preempts the holder (key 10): port 0 loses its registration, port 1 holds a
    // new WRITE EXCLUSIVE reservation.
    assert!(is_good(&prout(&disk, &store, 1, 4, 1, (11, 10))));
    let reservation = prin(&disk, &store, 1);
    assert_eq!(
        (reservation[8..16].to_vec(), reservation[21]),
        (11_u64.to_be_bytes().to_vec(), 1)
    );
    assert_eq!(prin(&disk, &store, 0)[4..8], [0, 0, 0, 8], "one key left");
    assert!(is_conflict(&write(&disk, &store, 0)));
    assert!(
        is_good(&send(&disk, &store, 0, &READ_ONE)),
        "WRITE EXCLUSIVE lets reads by"
    );
    // Preempting a key nobody has conflicts.
    assert!(is_conflict(&prout(&disk, &store, 1, 4, 1, (11, 0x55))));
    // CLEAR needs a registered key, then ends everything.
    assert!(is_conflict(&prout(&disk, &store, 0, 3, 0, (10, 0))));
    assert!(is_good(&prout(&disk, &store, 1, 3, 0, (11, 0))));
    assert_eq!(prin(&disk, &store, 0)[4..8], [0; 4]);
    assert_eq!(prin(&disk, &store, 1)[4..8], [0; 4]);
    assert!(is_good(&write(&disk, &store, 0)));
}

#[test]
fn read_full_status_names_keys_holders_and_ports() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    assert!(is_good(&prout(&disk, &store, 1, 0, 0, (0, 0x11))));
    assert!(is_good(&prout(&disk, &store, 3, 0, 0, (0, 0x33))));
    assert!(is_good(&prout(&disk, &store, 3, 1, 1, (0x33, 0))));
    let status = prin(&disk, &store, 3);
    assert_eq!(status[4..8], [0, 0, 0, 96], "two descriptors of 48 bytes");
    let (first, second) = (&status[8..56], &status[56..104]);
    assert_eq!(first[..8], 0x11_u64.to_be_bytes());
    assert_eq!(
        (first[12], first[13], first[19]),
        (0, 0, 2),
        "not the holder; port 1 + 1"
    );
    assert_eq!(second[..8], 0x33_u64.to_be_bytes());
    assert_eq!(
        (second[12], second[13], second[19]),
        (1, 1, 4),
        "holder, type 1, port 3 + 1"
    );
    assert_eq!(
        (second[23], second[24]),
        (24, 0x0F),
        "a 24-byte TransportID"
    );
    // RESERVE(6) while a persistent reservation exists: RESERVATION CONFLICT.
    assert!(is_conflict(&send(&disk, &store, 3, &RESERVE)));
}
