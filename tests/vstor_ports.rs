//! `TargetPorts` on the real `vstor.sys`: every disk on every bus as one logical unit, with
//! reservations and unit attentions kept per port (`I_T` nexus).

mod common;

use common::{Adapter, assert_check_condition, assert_good, block, global, rw10};
use storport_emu::port::{DataDirection, SrbResult};
use storport_emu::registry::RegValue;

const TUR: [u8; 6] = [0; 6];
const RESERVE: [u8; 6] = [0x16, 0, 0, 0, 0, 0];
const RELEASE: [u8; 6] = [0x17, 0, 0, 0, 0, 0];
/// `SRB_FUNCTION_RESET_LOGICAL_UNIT` (srb.h).
const RESET_LOGICAL_UNIT: u8 = 0x20;
/// `SRB_STATUS_ERROR` and SCSI status RESERVATION CONFLICT, without sense.
const CONFLICT: (u8, u8) = (0x04, 0x18);

fn two_ports() -> Adapter {
    Adapter::start(&[
        global("DiskCount", RegValue::dword(2)),
        global("DiskSizeMiB", RegValue::dword(1)),
        global("TargetPorts", RegValue::dword(2)),
    ])
}

fn at(adapter: &Adapter, path: u8, lun: u8, cdb: &[u8], direction: &DataDirection) -> SrbResult {
    adapter
        .port
        .execute((path, 0, lun), cdb, direction)
        .unwrap_or_else(|error| panic!("CDB {cdb:02x?} to path {path} LUN {lun}: {error}"))
}

fn no_data(adapter: &Adapter, path: u8, lun: u8, cdb: &[u8]) -> SrbResult {
    at(adapter, path, lun, cdb, &DataDirection::None)
}

#[test]
fn every_disk_is_one_logical_unit_on_every_port() {
    let adapter = two_ports();
    let config = adapter.port.config().expect("started");
    assert_eq!(config.NumberOfBuses, 2, "one bus per target port");
    for lun in 0..2 {
        let data = block(512, lun, 7, 1);
        assert_good(
            &at(
                &adapter,
                0,
                lun,
                &rw10(0x2A, 7, 1),
                &DataDirection::Out(data.clone()),
            ),
            "WRITE(10) through port 0",
        );
        let read = at(&adapter, 1, lun, &rw10(0x28, 7, 1), &DataDirection::In(512));
        assert_good(&read, "READ(10) through port 1");
        assert_eq!(read.data, data, "LUN {lun}: port 1 reads what port 0 wrote");
        let designator = |path| {
            let page = at(
                &adapter,
                path,
                lun,
                &[0x12, 1, 0x83, 0, 255, 0],
                &DataDirection::In(255),
            );
            assert_good(&page, "INQUIRY page 83h");
            page.data
        };
        assert_eq!(
            designator(0),
            designator(1),
            "LUN {lun}: one identity on both ports"
        );
    }
    let missing = no_data(&adapter, 2, 0, &TUR);
    assert_eq!(missing.status(), 0x08, "no bus 2: SRB_STATUS_NO_DEVICE");
    adapter.finish_clean();
}

#[test]
fn a_reservation_through_one_port_conflicts_on_the_other_until_released() {
    let adapter = two_ports();
    assert_good(
        &no_data(&adapter, 0, 1, &RESERVE),
        "RESERVE(6) through port 0",
    );
    let conflict = no_data(&adapter, 1, 1, &TUR);
    assert_eq!(
        (conflict.srb_status, conflict.scsi_status),
        CONFLICT,
        "TUR through port 1"
    );
    assert!(
        conflict.sense.iter().all(|&b| b == 0),
        "no sense with RESERVATION CONFLICT"
    );
    assert_good(&no_data(&adapter, 1, 0, &TUR), "LUN 0 is not reserved");
    assert_good(&no_data(&adapter, 0, 1, &TUR), "the holder goes on");
    // RELEASE from the other port changes nothing; from the holder it releases.
    assert_good(
        &no_data(&adapter, 1, 1, &RELEASE),
        "RELEASE(6) through port 1",
    );
    let still = no_data(&adapter, 1, 1, &TUR);
    assert_eq!((still.srb_status, still.scsi_status), CONFLICT);
    assert_good(
        &no_data(&adapter, 0, 1, &RELEASE),
        "RELEASE(6) through port 0",
    );
    assert_good(&no_data(&adapter, 1, 1, &TUR), "released");
    adapter.finish_clean();
}

#[test]
fn a_bus_reset_releases_its_ports_reservation_and_tells_that_port_only() {
    let adapter = two_ports();
    assert_good(
        &no_data(&adapter, 0, 0, &RESERVE),
        "RESERVE(6) through port 0",
    );
    assert_eq!(adapter.port.reset_bus(1), Ok(true), "HwResetBus(1)");
    assert_check_condition(&no_data(&adapter, 1, 0, &TUR), (0x06, 0x29, 0x02), "port 1");
    let conflict = no_data(&adapter, 1, 0, &TUR);
    assert_eq!(
        (conflict.srb_status, conflict.scsi_status),
        CONFLICT,
        "port 0 still holds it"
    );
    assert_eq!(adapter.port.reset_bus(0), Ok(true), "HwResetBus(0)");
    assert_check_condition(&no_data(&adapter, 0, 0, &TUR), (0x06, 0x29, 0x02), "port 0");
    assert_good(
        &no_data(&adapter, 1, 0, &TUR),
        "released by the reset of port 0",
    );
    adapter.finish_clean();
}

#[test]
fn a_logical_unit_reset_through_one_port_is_reported_on_every_port() {
    let adapter = two_ports();
    assert_good(
        &no_data(&adapter, 1, 0, &RESERVE),
        "RESERVE(6) through port 1",
    );
    let reset = adapter
        .port
        .submit((1, 0, 0), RESET_LOGICAL_UNIT, &[], &DataDirection::None)
        .expect("RESET_LOGICAL_UNIT");
    assert_eq!(reset.status(), 0x01, "SRB_STATUS_SUCCESS");
    for path in [0, 1] {
        assert_check_condition(
            &no_data(&adapter, path, 0, &TUR),
            (0x06, 0x29, 0x03),
            "BUS DEVICE RESET FUNCTION OCCURRED",
        );
        assert_good(
            &no_data(&adapter, path, 0, &TUR),
            "reported once, reservation gone",
        );
    }
    assert_good(&no_data(&adapter, 0, 1, &TUR), "LUN 1 was not reset");
    adapter.finish_clean();
}
