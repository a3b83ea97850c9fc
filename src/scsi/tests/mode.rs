//! MODE SELECT changes WCE, and only WCE; MODE SENSE shows it; a rejected list changes nothing.

use super::table::{caching_page, select6, select10};
use super::{Kind, MemStore, assert_check, assert_good, disk, run, run_in};
use crate::scsi::asc::INVALID_FIELD_IN_PARAMETER_LIST;
use crate::scsi::sense_key::ILLEGAL_REQUEST;
use crate::scsi::{DataBuffer, Disk};

/// WCE as MODE SENSE(6) reports it for page control `pc`.
fn sensed_wce(disk: &Disk, store: &MemStore, pc: u8) -> bool {
    let (o, d) = run_in(disk, store, &[0x1A, 0x08, (pc << 6) | 0x08, 0, 255, 0], 255);
    assert_good(&o, 24);
    assert_eq!(d[4..6], [0x08, 0x12]);
    d[6] & 0x04 != 0
}

/// WCE as MODE SENSE(10) reports it.
fn sensed_wce_10(disk: &Disk, store: &MemStore) -> bool {
    let (o, d) = run_in(disk, store, &[0x5A, 0x08, 0x08, 0, 0, 0, 0, 0, 255, 0], 255);
    assert_good(&o, 28);
    d[10] & 0x04 != 0
}

#[test]
fn mode_select_6_toggles_wce_and_restores_it() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    assert!(!sensed_wce(&disk, &store, 0));
    // The way the HLK does it: MODE SENSE, flip WCE, MODE SELECT what came back.
    let (_, mut sensed) = run_in(&disk, &store, &[0x1A, 0, 0x08, 0, 255, 0], 255);
    sensed[0] = 0; // MODE DATA LENGTH is reserved in MODE SELECT
    sensed[12 + 2] |= 0x04;
    let o = run(
        &disk,
        &store,
        &[0x15, 0x10, 0, 0, sensed.len() as u8, 0],
        DataBuffer::out(&sensed),
    );
    assert_good(&o, sensed.len());
    assert!(disk.write_cache_enabled());
    assert!(sensed_wce(&disk, &store, 0));
    assert!(sensed_wce_10(&disk, &store));
    // Default values do not follow the current ones.
    assert!(!sensed_wce(&disk, &store, 2));
    // Restore.
    let list = select6(None, &[&caching_page(false)]);
    assert_good(
        &run(
            &disk,
            &store,
            &[0x15, 0x10, 0, 0, 24, 0],
            DataBuffer::out(&list),
        ),
        24,
    );
    assert!(!sensed_wce(&disk, &store, 0));
}

#[test]
fn mode_select_10_toggles_wce() {
    let disk = disk(Kind::B4k);
    let store = MemStore::for_disk(&disk);
    assert!(sensed_wce_10(&disk, &store));
    let descriptor = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0];
    let list = select10(true, Some(&descriptor), &[&caching_page(false)]);
    let cdb = [0x55, 0x10, 0, 0, 0, 0, 0, 0, list.len() as u8, 0];
    assert_good(
        &run(&disk, &store, &cdb, DataBuffer::out(&list)),
        list.len(),
    );
    assert!(!sensed_wce_10(&disk, &store));
    assert!(!disk.write_cache_enabled());
}

#[test]
fn a_rejected_list_changes_nothing() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    // A valid caching page asking for WCE, followed by an invalid control page: the whole
    // list is refused and WCE stays off.
    let control = [0x0A, 0x0A, 0x06, 0x10, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0];
    let list = select6(None, &[&caching_page(true), &control]);
    let o = run(
        &disk,
        &store,
        &[0x15, 0x10, 0, 0, list.len() as u8, 0],
        DataBuffer::out(&list),
    );
    assert_check(&o, ILLEGAL_REQUEST, INVALID_FIELD_IN_PARAMETER_LIST);
    assert!(!disk.write_cache_enabled());
    assert!(!sensed_wce(&disk, &store, 0));
}

#[test]
fn changeable_values_show_only_wce() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let (o, d) = run_in(&disk, &store, &[0x1A, 0, 0x7F, 0, 255, 0], 255);
    assert_good(&o, 56);
    // Block descriptor: nothing changeable.
    assert!(d[4..12].iter().all(|&b| b == 0));
    // Caching page: only WCE.
    assert_eq!(d[12..14], [0x08, 0x12]);
    assert_eq!(d[14], 0x04);
    assert!(d[15..32].iter().all(|&b| b == 0));
}
