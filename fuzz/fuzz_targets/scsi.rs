//! The pure SCSI module (`vstor::scsi`) at the SRB level: a disk
//! configuration from the first bytes, then a sequence of SRBs (function,
//! LUN, CDB, data direction and length, data) against two RAM disks.
//!
//! Checked on every SRB: no panic; `transferred` never exceeds the buffer;
//! sense comes back exactly when `SRB_STATUS_AUTOSENSE_VALID` says so and
//! never with autosense off; a CHECK CONDITION with autosense carries
//! fixed-format current sense. (Data integrity is the tests' and the stress
//! run's job: here the fuzzer's own commands may rewrite any block.)
#![no_main]

use std::sync::atomic::AtomicU64;

use libfuzzer_sys::fuzz_target;
use vstor::ramdisk::RamDisk;
use vstor::scsi::srb::{self, Address, Unit};
use vstor::scsi::{
    Autosense, BlockSize, DataBuffer, Disk, DiskConfig, Identity, Limits, MAX_UNMAP_DESCRIPTORS,
    Outcome, scsi_status, srb_status,
};
use vstor_fuzz::Bytes;

type Store = RamDisk<Box<[AtomicU64]>>;

struct Adapter {
    units: Vec<(Disk, Store)>,
}

impl srb::Adapter for Adapter {
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

fn adapter(input: &mut Bytes<'_>) -> Option<Adapter> {
    let flags = input.u8();
    let block_size = if flags & 1 == 0 {
        BlockSize::from_bytes(512)?
    } else {
        BlockSize::from_bytes(4096)?
    };
    let blocks = 1 + u64::from(input.u8() % 64);
    let limits = if flags & 2 == 0 {
        Limits::DEFAULT
    } else {
        Limits {
            max_transfer_bytes: u32::from(input.u16()) << 4,
            max_unmap_bytes: u64::from(input.u16()) << 9,
            max_unmap_descriptors: u32::from(input.u8()) % (MAX_UNMAP_DESCRIPTORS + 1),
            max_write_same_bytes: u64::from(input.u16()) << 9,
        }
    };
    let mut units = Vec::new();
    for lun in 0..2_u8 {
        let identity =
            Identity::new("FUZZ", "SCSI MODULE", "0001", &format!("SERIAL{lun}")).ok()?;
        let disk = Disk::new(DiskConfig {
            identity,
            block_size,
            block_count: blocks,
            read_only: flags & 4 != 0 && lun == 1,
            naa_local_id: 0x1234 + u64::from(lun),
            write_cache: flags & 8 != 0,
            limits,
        })
        .ok()?;
        let bytes = blocks << block_size.shift();
        let store = RamDisk::new(bytes, |words| {
            Ok::<_, ()>((0..words).map(|_| AtomicU64::new(0)).collect::<Box<[_]>>())
        })
        .ok()?;
        units.push((disk, store));
    }
    Some(Adapter { units })
}

fuzz_target!(|data: &[u8]| {
    vstor_fuzz::on_emulated_processor(|| run(data));
});

fn run(data: &[u8]) {
    let mut input = Bytes::new(data);
    let Some(adapter) = adapter(&mut input) else {
        return;
    };
    let mut requests = 0;
    while !input.is_empty() && requests < 64 {
        requests += 1;
        let control = input.u8();
        // Mostly EXECUTE_SCSI; otherwise any function code.
        let function = if control & 0x80 == 0 { 0 } else { input.u8() };
        let lun = input.u8() % 4;
        let cdb_len = usize::from(input.u8() % 33);
        let cdb = input.take(cdb_len).to_vec();
        let len = usize::from(input.u16() % 8192);
        let autosense = if control & 0x40 == 0 {
            Autosense::Enabled
        } else {
            Autosense::Disabled
        };
        let mut buffer = vec![0_u8; len];
        let out_data: Vec<u8> = match control & 3 {
            2 => {
                let given = input.take(len);
                let mut out = given.to_vec();
                out.resize(len, 0xA5);
                out
            }
            _ => Vec::new(),
        };
        let data = match control & 3 {
            0 => DataBuffer::None,
            1 => DataBuffer::In(&mut buffer),
            2 => DataBuffer::out(&out_data),
            _ => DataBuffer::Unspecified(&mut buffer),
        };
        let address = Address {
            path_id: control >> 4 & 1,
            target_id: 0,
            lun,
        };
        let outcome = match srb::Control::for_function(function, address) {
            Some(request) => Outcome::srb(srb::control(&adapter, request)),
            None => srb::execute(
                &adapter,
                srb::Command {
                    address,
                    cdb: &cdb,
                    data,
                    autosense,
                },
            ),
        };
        let supplied = match control & 3 {
            0 => 0,
            _ => len,
        };
        assert!(
            outcome.transferred as usize <= supplied,
            "transferred {} of a {supplied}-byte buffer for CDB {cdb:02x?}",
            outcome.transferred
        );
        let sense_valid = outcome.srb_status & srb_status::AUTOSENSE_VALID != 0;
        assert_eq!(
            sense_valid,
            outcome.sense.is_some(),
            "AUTOSENSE_VALID matches the sense returned: {outcome:?}"
        );
        if outcome.scsi_status == scsi_status::CHECK_CONDITION && autosense == Autosense::Enabled {
            let sense = outcome
                .sense
                .expect("CHECK CONDITION with autosense carries sense");
            let fixed = sense.fixed();
            assert_eq!(
                fixed[0] & 0x7F,
                0x70,
                "fixed-format current sense: {fixed:02x?}"
            );
        }
        if autosense == Autosense::Disabled {
            assert!(
                outcome.sense.is_none(),
                "no sense without autosense: {outcome:?}"
            );
        }
    }
}
