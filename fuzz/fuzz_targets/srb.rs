//! Whole-driver SRBs: random function, CDB, data direction and length, path,
//! target and LUN, sent to the real `vstor.sys` running under storemu.
//!
//! One port is created per process and reused (find-adapter allocates the
//! disks once). After every input the port must have no finding and no bug
//! check: a double completion, a write past the data buffer, a completion
//! with more bytes than supplied, a pool allocation in HwStartIo or a fault
//! all end the run as a crash.
//!
//! Every SRB also goes to a twin: the host build of `vstor::scsi` over the
//! same two disks. libFuzzer cannot see coverage inside the PE image, but it
//! sees the twin's, which steers it through the same SCSI logic; and the
//! driver must answer exactly as its own logic does on the host (SRB status,
//! SCSI status, bytes transferred, sense, and data except INQUIRY's, whose
//! identifiers the twin does not copy; for functions other than
//! `SRB_FUNCTION_EXECUTE_SCSI`, which complete by SRB status alone, the SRB
//! status), or the driver's SRB plumbing (the storport layer, the port's SRB
//! handling) changed the answer.
#![no_main]

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

use libfuzzer_sys::fuzz_target;
use storport_emu::port::{DataDirection, Port};
use storport_emu::registry::RegValue;
use vstor::ramdisk::RamDisk;
use vstor::scsi::srb::{self, Address, Unit};
use vstor::scsi::{Autosense, BlockSize, DataBuffer, Disk, DiskConfig, Identity, Limits, Outcome};
use vstor_fuzz::Bytes;

/// Sizes of the two disks, in MiB.
const DISK_MIB: [u64; 2] = [1, 2];

type Store = RamDisk<Box<[AtomicU64]>>;

/// The host build of the driver's SCSI logic over disks like the driver's.
struct Twin {
    units: Vec<(Disk, Store)>,
}

impl srb::Adapter for Twin {
    type Store = Store;

    fn units(&self) -> impl Iterator<Item = Unit<'_, Store>> {
        self.units
            .iter()
            .zip(0_u8..)
            .map(|((disk, store), lun)| Unit {
                address: Address {
                    path_id: 0,
                    target_id: 0,
                    lun,
                },
                disk,
                store,
            })
    }
}

fn twin() -> &'static Twin {
    static TWIN: OnceLock<Twin> = OnceLock::new();
    TWIN.get_or_init(|| Twin {
        units: DISK_MIB
            .iter()
            .zip(0_u64..)
            .map(|(&mib, lun)| {
                let disk = Disk::new(DiskConfig {
                    identity: Identity::new("VSTOR", "RAM DISK", "0001", &format!("VST{lun:04}"))
                        .expect("identity"),
                    block_size: BlockSize::from_bytes(512).expect("512"),
                    block_count: (mib << 20) / 512,
                    read_only: false,
                    naa_local_id: 0x0123_4567 + lun,
                    write_cache: false,
                    limits: Limits::DEFAULT,
                })
                .expect("a valid disk");
                let store = RamDisk::new(mib << 20, |words| {
                    Ok::<_, ()>((0..words).map(|_| AtomicU64::new(0)).collect::<Box<[_]>>())
                })
                .expect("memory");
                (disk, store)
            })
            .collect(),
    })
}

/// The twin's answer to one SRB, and the data it returned.
fn twin_answer(
    function: u8,
    address: (u8, u8, u8),
    cdb: &[u8],
    direction: &DataDirection,
) -> (Outcome, Vec<u8>) {
    let mut buffer = match direction {
        DataDirection::In(len) => vec![0_u8; *len],
        _ => Vec::new(),
    };
    let data = match direction {
        DataDirection::Out(bytes) if !bytes.is_empty() => DataBuffer::out(bytes),
        DataDirection::In(len) if *len > 0 => DataBuffer::In(&mut buffer),
        _ => DataBuffer::None,
    };
    let address = Address {
        path_id: address.0,
        target_id: address.1,
        lun: address.2,
    };
    // As the driver does: a SCSI command to the disk, any other function answered with a
    // status alone from the address members its page makes valid.
    let outcome = vstor_fuzz::on_emulated_processor(|| match srb::Control::for_function(function, address) {
        Some(request) => Outcome::srb(srb::control(twin(), request)),
        None => srb::execute(
            twin(),
            srb::Command {
                address,
                cdb,
                data,
                autosense: Autosense::Enabled,
            },
        ),
    });
    let returned = (outcome.transferred as usize).min(buffer.len());
    buffer.truncate(returned);
    (outcome, buffer)
}

fn port() -> &'static Port {
    static PORT: OnceLock<Port> = OnceLock::new();
    PORT.get_or_init(|| {
        let (mut registry, service) = vstor_fuzz::inf_registry();
        let key = format!("Services\\{service}\\Parameters\\Device");
        registry.set_value(&key, "DiskCount", RegValue::dword(2));
        let sizes = DISK_MIB.map(|mib| mib.to_string());
        registry.set_value(&key, "DiskSizesMiB", RegValue::multi_sz(&sizes));
        let port = vstor_fuzz::port(&vstor_fuzz::image_bytes(), &service);
        port.set_registry(registry);
        port.driver_entry().expect("DriverEntry succeeds");
        port.start().expect("the adapter starts");
        port
    })
}

fuzz_target!(|data: &[u8]| {
    let port = port();
    let mut input = Bytes::new(data);
    let mut requests = 0;
    while !input.is_empty() && requests < 32 {
        requests += 1;
        let control = input.u8();
        let function = if control & 0x80 == 0 { 0 } else { input.u8() };
        let lun = input.u8() % 4;
        let path = if control & 0x40 == 0 {
            0
        } else {
            input.u8() % 3
        };
        let target = if control & 0x20 == 0 {
            0
        } else {
            input.u8() % 3
        };
        let cdb_len = usize::from(input.u8() % 17);
        let cdb = input.take(cdb_len).to_vec();
        let len = usize::from(input.u16() % 16384);
        let direction = match control & 3 {
            1 => DataDirection::In(len),
            2 => {
                let mut out = input.take(len).to_vec();
                out.resize(len, 0x5A);
                DataDirection::Out(out)
            }
            _ => DataDirection::None,
        };
        let result = port
            .submit((path, target, lun), function, &cdb, &direction)
            .unwrap_or_else(|error| panic!("SRB function {function:#x} CDB {cdb:02x?}: {error}"));
        assert_ne!(result.srb_status, 0, "the SRB completed: {result:?}");
        let (expected, expected_data) =
            twin_answer(function, (path, target, lun), &cdb, &direction);
        let what = format!("function {function:#x} CDB {cdb:02x?} to {path}:{target}:{lun}");
        if function == 0 {
            assert_eq!(
                (result.srb_status, result.scsi_status, result.transferred),
                (
                    expected.srb_status,
                    expected.scsi_status,
                    expected.transferred
                ),
                "{what}: the driver's answer differs from its SCSI logic's on the host: {result:?} / {expected:?}"
            );
        } else {
            // Other functions are answered with SrbStatus alone: ScsiStatus and the
            // transfer length stay as the port set them.
            assert_eq!(
                result.srb_status, expected.srb_status,
                "{what}: the driver's answer differs from its SCSI logic's on the host: {result:?} / {expected:?}"
            );
        }
        if let Some(sense) = expected.sense {
            let fixed = sense.fixed();
            let compared = result.sense.len().min(fixed.len());
            assert_eq!(
                &result.sense[..compared],
                &fixed[..compared],
                "{what}: sense data"
            );
        }
        if function == 0 && cdb.first() != Some(&0x12) {
            assert_eq!(result.data, expected_data, "{what}: data");
        }
        let findings = port.findings();
        assert!(
            findings.is_empty() && !port.bugchecked(),
            "function {function:#x} CDB {cdb:02x?} to {path}:{target}:{lun}: {findings:#?}"
        );
    }
});
