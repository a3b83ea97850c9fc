//! The SRB-function level: addressing, every SRB function, REPORT LUNS through the adapter.

use super::{Kind, MemStore, config, disk};
use crate::scsi::srb::{Adapter, Address, Command, Control, Unit, control, execute, find, luns_of};
use crate::scsi::{Autosense, DataBuffer, Disk, Outcome, srb_status};

/// `SRB_FUNCTION_*` values (srb.h), written out for the tests.
pub mod function {
    pub const EXECUTE_SCSI: u8 = 0x00;
    pub const SHUTDOWN: u8 = 0x07;
    pub const FLUSH: u8 = 0x08;
    pub const ABORT_COMMAND: u8 = 0x10;
    pub const RESET_BUS: u8 = 0x12;
    pub const RESET_DEVICE: u8 = 0x13;
    pub const RESET_LOGICAL_UNIT: u8 = 0x20;
    pub const POWER: u8 = 0x24;
    pub const PNP: u8 = 0x25;
}

/// An SRB of any function, as the driver's start-io takes it apart: a SCSI command goes to
/// [`execute`]; any other function becomes a [`Control`] with the address members its page
/// makes valid (PNP and POWER here always for a unit), answered with a status alone.
pub fn start_io(
    adapter: &TestAdapter,
    function: u8,
    address: Address,
    cdb: &[u8],
    data: DataBuffer<'_>,
    autosense: Autosense,
) -> Outcome {
    let Some(request) = Control::for_function(function, address) else {
        return execute(
            adapter,
            Command {
                address,
                cdb,
                data,
                autosense,
            },
        );
    };
    Outcome::srb(control(adapter, request))
}

/// Target 0 with LUNs 0 and 2, target 3 with LUN 0, all on path 0.
pub struct TestAdapter {
    units: Vec<(Address, Disk, MemStore)>,
}

impl TestAdapter {
    pub fn new() -> Self {
        let units = [(0, 0), (0, 2), (3, 0)]
            .into_iter()
            .map(|(target_id, lun)| {
                let disk = disk(Kind::Rw);
                let store = MemStore::for_disk(&disk);
                (
                    Address {
                        path_id: 0,
                        target_id,
                        lun,
                    },
                    disk,
                    store,
                )
            })
            .collect();
        Self { units }
    }

    fn store(&self, target_id: u8, lun: u8) -> &MemStore {
        &self
            .units
            .iter()
            .find(|(a, _, _)| a.target_id == target_id && a.lun == lun)
            .unwrap()
            .2
    }
}

impl Adapter for TestAdapter {
    type Store = MemStore;

    fn units(&self) -> impl Iterator<Item = Unit<'_, MemStore>> {
        self.units.iter().map(|(address, disk, store)| Unit {
            address: *address,
            disk,
            store,
        })
    }
}

const fn at(path_id: u8, target_id: u8, lun: u8) -> Address {
    Address {
        path_id,
        target_id,
        lun,
    }
}

fn srb(function: u8, address: Address, cdb: &[u8], data: DataBuffer<'_>) -> Outcome {
    let adapter = TestAdapter::new();
    start_io(&adapter, function, address, cdb, data, Autosense::Enabled)
}

#[test]
fn missing_targets_and_luns_get_the_storport_statuses() {
    let adapter = TestAdapter::new();
    assert!(find(&adapter, at(0, 0, 2)).is_ok());
    assert_eq!(
        find(&adapter, at(0, 0, 1)).err(),
        Some(srb_status::INVALID_LUN)
    );
    assert_eq!(
        find(&adapter, at(0, 3, 2)).err(),
        Some(srb_status::INVALID_LUN)
    );
    assert_eq!(
        find(&adapter, at(0, 1, 0)).err(),
        Some(srb_status::NO_DEVICE)
    );
    assert_eq!(
        find(&adapter, at(1, 0, 0)).err(),
        Some(srb_status::NO_DEVICE)
    );

    let tur = [0u8; 6];
    // A device (target) reset names no LUN: any LUN of an existing target is the target.
    assert_eq!(
        srb(function::RESET_DEVICE, at(0, 0, 1), &tur, DataBuffer::None),
        Outcome::srb(srb_status::SUCCESS)
    );
    assert_eq!(
        srb(function::RESET_DEVICE, at(0, 7, 0), &tur, DataBuffer::None),
        Outcome::srb(srb_status::NO_DEVICE)
    );
    for function in [
        function::EXECUTE_SCSI,
        function::RESET_LOGICAL_UNIT,
        function::ABORT_COMMAND,
        function::FLUSH,
        function::SHUTDOWN,
        function::PNP,
        function::POWER,
    ] {
        assert_eq!(
            srb(function, at(0, 0, 1), &tur, DataBuffer::None),
            Outcome::srb(srb_status::INVALID_LUN),
            "function {function:#04X}"
        );
        assert_eq!(
            srb(function, at(0, 7, 0), &tur, DataBuffer::None),
            Outcome::srb(srb_status::NO_DEVICE),
            "function {function:#04X}"
        );
        assert_eq!(
            srb(function, at(0, 0, 2), &tur, DataBuffer::None),
            Outcome::srb(srb_status::SUCCESS),
            "function {function:#04X}"
        );
    }
}

#[test]
fn unsupported_functions_are_invalid_requests() {
    // IO_CONTROL, WMI, RECEIVE_EVENT, LOCK_QUEUE, anything else.
    for function in [
        0x01, 0x02, 0x03, 0x09, 0x0A, 0x11, 0x14, 0x15, 0x17, 0x18, 0x19, 0x21, 0x26, 0xFF,
    ] {
        assert_eq!(
            srb(function, at(0, 0, 0), &[0; 6], DataBuffer::None),
            Outcome::srb(srb_status::INVALID_REQUEST),
            "function {function:#04X}"
        );
    }
}

#[test]
fn pnp_and_power_for_the_adapter_need_no_unit() {
    let adapter = TestAdapter::new();
    for request in [Control::Pnp(None), Control::Power(None)] {
        assert_eq!(
            control(&adapter, request),
            srb_status::SUCCESS,
            "{request:?}"
        );
    }
    assert_eq!(
        control(&adapter, Control::Pnp(Some(at(0, 7, 0)))),
        srb_status::NO_DEVICE
    );
}

#[test]
fn reset_bus_succeeds_for_any_address() {
    assert_eq!(
        srb(function::RESET_BUS, at(9, 9, 9), &[], DataBuffer::None),
        Outcome::srb(srb_status::SUCCESS)
    );
}

#[test]
fn execute_scsi_reaches_the_addressed_unit_only() {
    let adapter = TestAdapter::new();
    let data = vec![0x42; 512];
    let write = [0x2A, 0, 0, 0, 0, 9, 0, 0, 1, 0];
    let o = start_io(
        &adapter,
        function::EXECUTE_SCSI,
        at(0, 0, 2),
        &write,
        DataBuffer::out(&data),
        Autosense::Enabled,
    );
    assert_eq!(o, Outcome::good(512));
    assert_eq!(adapter.store(0, 2).get(9 * 512, 512), data);
    assert!(
        adapter
            .store(0, 0)
            .get(9 * 512, 512)
            .iter()
            .all(|&b| b == 0)
    );
    assert!(
        adapter
            .store(3, 0)
            .get(9 * 512, 512)
            .iter()
            .all(|&b| b == 0)
    );
}

#[test]
fn report_luns_lists_the_target_s_luns() {
    let adapter = TestAdapter::new();
    let luns = luns_of(&adapter, at(0, 0, 0));
    assert_eq!(luns.iter().collect::<Vec<_>>(), [0, 2]);
    let mut buf = vec![0; 64];
    let o = start_io(
        &adapter,
        function::EXECUTE_SCSI,
        at(0, 0, 0),
        &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0],
        DataBuffer::In(&mut buf),
        Autosense::Enabled,
    );
    assert_eq!(o, Outcome::good(24));
    assert_eq!(buf[..4], [0, 0, 0, 16]);
    assert_eq!(buf[8..16], [0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(buf[16..24], [0, 2, 0, 0, 0, 0, 0, 0]);
    // Target 3 has only LUN 0.
    let mut buf = vec![0; 64];
    let o = start_io(
        &adapter,
        function::EXECUTE_SCSI,
        at(0, 3, 0),
        &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0],
        DataBuffer::In(&mut buf),
        Autosense::Enabled,
    );
    assert_eq!(o, Outcome::good(16));
    assert_eq!(buf[..4], [0, 0, 0, 8]);
}

#[test]
fn flush_and_shutdown_flush_the_unit_s_store() {
    let adapter = TestAdapter::new();
    for function in [function::FLUSH, function::SHUTDOWN] {
        let o = start_io(
            &adapter,
            function,
            at(0, 0, 2),
            &[],
            DataBuffer::None,
            Autosense::Enabled,
        );
        assert_eq!(o, Outcome::srb(srb_status::SUCCESS));
    }
    let flushes = |t, l| {
        adapter
            .store(t, l)
            .flushes
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(flushes(0, 2), 2);
    assert_eq!(flushes(0, 0), 0);
}

/// Sends one SRB to LUN 2 of `adapter` with autosense off.
fn run_on(adapter: &TestAdapter, function: u8, cdb: &[u8], data: DataBuffer<'_>) -> Outcome {
    start_io(
        adapter,
        function,
        at(0, 0, 2),
        cdb,
        data,
        Autosense::Disabled,
    )
}

#[test]
fn resets_drop_deferred_sense_and_leave_a_unit_attention() {
    // A CHECK CONDITION without autosense leaves sense for REQUEST SENSE; a LU reset, a
    // device reset and a bus reset each drop it and leave a unit attention instead, which
    // REQUEST SENSE reports once: 29h/03h after a LU or device reset, 29h/02h after a bus
    // reset.
    for (reset, ascq) in [
        (function::RESET_LOGICAL_UNIT, 3),
        (function::RESET_DEVICE, 3),
        (function::RESET_BUS, 2),
    ] {
        let adapter = TestAdapter::new();
        let run =
            |function, cdb: &[u8], data: DataBuffer<'_>| run_on(&adapter, function, cdb, data);
        let o = run(
            function::EXECUTE_SCSI,
            &[0x04, 0, 0, 0, 0, 0],
            DataBuffer::None,
        );
        assert_eq!((o.srb_status, o.scsi_status, o.sense), (0x04, 0x02, None));
        assert_eq!(
            run(reset, &[], DataBuffer::None),
            Outcome::srb(srb_status::SUCCESS)
        );
        for expected in [(6, 0x29, ascq), (0, 0, 0)] {
            let mut sense = [0xFFu8; 18];
            let o = run(
                function::EXECUTE_SCSI,
                &[0x03, 0, 0, 0, 18, 0],
                DataBuffer::In(&mut sense),
            );
            assert_eq!(o, Outcome::good(18));
            assert_eq!(
                (sense[2], sense[12], sense[13]),
                expected,
                "reset {reset:#04X}"
            );
        }
    }
}

#[test]
fn a_disk_is_shared_across_threads() {
    const fn sync<T: Sync>() {}
    sync::<Disk>();
    let disk = Disk::new(config(Kind::Rw)).unwrap();
    let store = MemStore::for_disk(&disk);
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let (disk, store) = (&disk, &store);
            s.spawn(move || {
                for i in 0..200u32 {
                    let lba = u32::from(t) * 256 + i % 256;
                    let data = vec![t ^ (i as u8); 512];
                    let l = lba.to_be_bytes();
                    let write = [0x2A, 0, l[0], l[1], l[2], l[3], 0, 0, 1, 0];
                    let o = super::run(disk, store, &write, DataBuffer::out(&data));
                    assert_eq!(o, Outcome::good(512));
                    let read = [0x28, 0, l[0], l[1], l[2], l[3], 0, 0, 1, 0];
                    let (o, back) = super::run_in(disk, store, &read, 512);
                    assert_eq!(o, Outcome::good(512));
                    assert_eq!(back, data);
                    // Toggle WCE from every thread at once.
                    let page = super::table::caching_page(i % 2 == 0);
                    let list = super::table::select6(None, &[&page]);
                    let o = super::run(
                        disk,
                        store,
                        &[0x15, 0x10, 0, 0, 24, 0],
                        DataBuffer::out(&list),
                    );
                    assert_eq!(o, Outcome::good(24));
                }
            });
        }
    });
}
