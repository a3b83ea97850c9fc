//! LOG SENSE (SPC-4): the pages, the parameter pointer, the allocation length, and what is
//! refused (SP, PPC, threshold values, unknown pages and subpages, a pointer past the last
//! parameter).

use super::{Kind, MemStore, assert_check, assert_good, disk, run, run_in};
use crate::scsi::asc::{INVALID_COMMAND_OPERATION_CODE, INVALID_FIELD_IN_CDB};
use crate::scsi::sense_key::ILLEGAL_REQUEST;
use crate::scsi::{DataBuffer, FieldPointer, Outcome, SenseDetail};

/// LOG SENSE with page control `pc`, page, subpage, parameter pointer and allocation length.
fn log_sense(pc: u8, page: u8, subpage: u8, pointer: u16, alloc: u16) -> [u8; 10] {
    let p = pointer.to_be_bytes();
    let a = alloc.to_be_bytes();
    [
        0x4D,
        0,
        (pc << 6) | page,
        subpage,
        0,
        p[0],
        p[1],
        a[0],
        a[1],
        0,
    ]
}

/// Cumulative values (PC 01b), pointer 0, the whole page.
fn page(page: u8, subpage: u8) -> (Outcome, Vec<u8>) {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    run_in(&disk, &store, &log_sense(1, page, subpage, 0, 1024), 1024)
}

/// INVALID FIELD IN CDB at `byte` (and `bit`).
#[track_caller]
fn assert_invalid_at(cdb: &[u8], byte: u16, bit: Option<u8>) {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let (o, _) = run_in(&disk, &store, cdb, 255);
    assert_check(&o, ILLEGAL_REQUEST, INVALID_FIELD_IN_CDB);
    assert_eq!(
        o.sense.unwrap().detail,
        SenseDetail::Field(FieldPointer {
            in_cdb: true,
            byte,
            bit
        }),
        "field pointer of {cdb:02X?}"
    );
}

#[test]
fn supported_pages_list_the_three_pages() {
    let (o, d) = page(0x00, 0x00);
    assert_good(&o, 7);
    assert_eq!(d, [0x00, 0x00, 0x00, 0x03, 0x00, 0x0D, 0x2F]);
}

#[test]
fn supported_pages_and_subpages_list_every_pair() {
    let (o, d) = page(0x00, 0xFF);
    assert_good(&o, 12);
    // SPF = 1, subpage FFh, then (page, subpage) pairs in ascending order.
    assert_eq!(
        d,
        [
            0x40, 0xFF, 0x00, 0x08, 0x00, 0x00, 0x00, 0xFF, 0x0D, 0x00, 0x2F, 0x00
        ]
    );
}

#[test]
fn temperature_page_reports_no_sensor() {
    let (o, d) = page(0x0D, 0x00);
    assert_good(&o, 16);
    assert_eq!(
        d,
        [
            0x8D, 0x00, 0x00, 0x0C, // DS = 1, page 0Dh, length 12
            0x00, 0x00, 0x23, 0x02, 0x00, 0xFF, // TEMPERATURE: not available
            0x00, 0x01, 0x23, 0x02, 0x00, 0xFF, // REFERENCE TEMPERATURE: none
        ]
    );
}

#[test]
fn informational_exceptions_page_reports_no_exception() {
    let (o, d) = page(0x2F, 0x00);
    assert_good(&o, 11);
    assert_eq!(
        d,
        [
            0xAF, 0x00, 0x00, 0x07, 0x00, 0x00, 0x23, 0x03, 0x00, 0x00, 0xFF
        ]
    );
}

#[test]
fn default_cumulative_values_are_the_cumulative_ones() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    for (p, s) in [(0x00, 0x00), (0x00, 0xFF), (0x0D, 0x00), (0x2F, 0x00)] {
        let (o1, cumulative) = run_in(&disk, &store, &log_sense(1, p, s, 0, 255), 255);
        let (o3, default) = run_in(&disk, &store, &log_sense(3, p, s, 0, 255), 255);
        assert_eq!(o1, o3, "page {p:02X}h/{s:02X}h");
        assert_eq!(cumulative, default, "page {p:02X}h/{s:02X}h");
    }
}

#[test]
fn parameter_pointer_skips_lower_codes_and_refuses_past_the_last() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let (o, d) = run_in(&disk, &store, &log_sense(1, 0x0D, 0, 1, 255), 255);
    assert_good(&o, 10);
    // PAGE LENGTH counts only the parameters returned (SPC-4).
    assert_eq!(d, [0x8D, 0, 0, 6, 0x00, 0x01, 0x23, 0x02, 0x00, 0xFF]);
    assert_invalid_at(&log_sense(1, 0x0D, 0, 2, 255), 5, None);
    assert_invalid_at(&log_sense(1, 0x2F, 0, 1, 255), 5, None);
    assert_invalid_at(&log_sense(1, 0x00, 0, 1, 255), 5, None);
    assert_invalid_at(&log_sense(1, 0x00, 0xFF, 0xFFFF, 255), 5, None);
}

#[test]
fn allocation_length_truncates_and_keeps_the_page_length() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let (o, d) = run_in(&disk, &store, &log_sense(1, 0x0D, 0, 0, 4), 255);
    assert_good(&o, 4);
    assert_eq!(d, [0x8D, 0, 0, 0x0C]);
    // Allocation length 0 is not an error and moves nothing.
    let (o, _) = run_in(&disk, &store, &log_sense(1, 0x0D, 0, 0, 0), 255);
    assert_good(&o, 0);
    // A data buffer shorter than the allocation length: what fits, GOOD.
    let (o, d) = run_in(&disk, &store, &log_sense(1, 0x00, 0xFF, 0, 255), 5);
    assert_good(&o, 5);
    assert_eq!(d, [0x40, 0xFF, 0x00, 0x08, 0x00]);
}

#[test]
fn saving_and_threshold_values_are_refused() {
    // SP = 1: no log parameter is saved.
    let mut cdb = log_sense(1, 0x0D, 0, 0, 255);
    cdb[1] = 0x01;
    assert_invalid_at(&cdb, 1, Some(0));
    // PPC (obsolete in SPC-4).
    cdb[1] = 0x02;
    assert_invalid_at(&cdb, 1, Some(1));
    // PC 00b and 10b: threshold values, current and default.
    assert_invalid_at(&log_sense(0, 0x0D, 0, 0, 255), 2, Some(7));
    assert_invalid_at(&log_sense(2, 0x2F, 0, 0, 255), 2, Some(7));
}

#[test]
fn unknown_pages_and_subpages_are_refused() {
    // Logical block provisioning (0Ch) is a thin provisioned unit's page.
    assert_invalid_at(&log_sense(1, 0x0C, 0, 0, 255), 2, Some(5));
    assert_invalid_at(&log_sense(1, 0x3F, 0, 0, 255), 2, Some(5));
    assert_invalid_at(&log_sense(1, 0x0D, 0xFF, 0, 255), 3, None);
    assert_invalid_at(&log_sense(1, 0x2F, 0x01, 0, 255), 3, None);
    assert_invalid_at(&log_sense(1, 0x00, 0x01, 0, 255), 3, None);
}

#[test]
fn log_sense_with_a_data_out_buffer_is_an_invalid_request() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let o = run(
        &disk,
        &store,
        &log_sense(1, 0x00, 0, 0, 16),
        DataBuffer::out(&[0; 16]),
    );
    assert_eq!(o, Outcome::srb(0x06));
}

#[test]
fn log_select_is_not_implemented() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let o = run(
        &disk,
        &store,
        &[0x4C, 0x02, 0x40, 0, 0, 0, 0, 0, 0, 0],
        DataBuffer::None,
    );
    assert_check(&o, ILLEGAL_REQUEST, INVALID_COMMAND_OPERATION_CODE);
}

/// LOG SENSE runs whatever persistent reservation another `I_T` nexus holds (SPC-4: allowed
/// under every reservation type).
#[test]
fn log_sense_through_another_ports_reservation() {
    use crate::scsi::{Autosense, Request};
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let send = |port: u8, cdb: &[u8], list: &[u8]| {
        let mut buf = [0_u8; 64];
        let data = if list.is_empty() {
            DataBuffer::In(&mut buf)
        } else {
            DataBuffer::out(list)
        };
        disk.execute(
            &store,
            Request {
                cdb,
                data,
                autosense: Autosense::Enabled,
                luns: &super::luns(),
                port,
            },
        )
    };
    let mut key = [0_u8; 24];
    key[8..16].copy_from_slice(&7_u64.to_be_bytes());
    // REGISTER key 7 on port 0, then RESERVE exclusive access (type 3) with it.
    let good = |o: Outcome| assert_eq!((o.srb_status, o.scsi_status), (0x01, 0x00), "{o:?}");
    good(send(0, &[0x5F, 0, 0, 0, 0, 0, 0, 0, 24, 0], &key));
    let mut reserve = [0_u8; 24];
    reserve[..8].copy_from_slice(&7_u64.to_be_bytes());
    good(send(0, &[0x5F, 1, 3, 0, 0, 0, 0, 0, 24, 0], &reserve));
    let cdb = log_sense(1, 0x00, 0, 0, 64);
    assert_good(&send(1, &cdb, &[]), 7);
    // A READ from port 1 conflicts, so the reservation is in force.
    let read = send(1, &super::cdb::rw10(0x28, 0, 0, 1), &[]);
    assert_eq!(
        read.scsi_status, 0x18,
        "READ under another port's reservation"
    );
}
