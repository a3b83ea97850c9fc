//! The pieces: sense formats, deferred sense, configuration checks, LUN sets.

use super::{Kind, MemStore, config, disk, run_in};
use crate::scsi::{
    Autosense, BlockSize, ConfigError, DataBuffer, Disk, FieldPointer, Identity, LunSet, Request,
    SenseData, SenseDetail, asc, sense_key,
};

#[test]
fn fixed_sense_layout() {
    let s = SenseData::invalid_cdb_field(0x0102, Some(5)).fixed();
    assert_eq!(
        s,
        [
            0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0xCD, 0x01, 0x02
        ]
    );
    let s = SenseData::invalid_parameter(7, None).fixed();
    assert_eq!(s[12..18], [0x26, 0, 0, 0x80, 0, 7]);
    let s = SenseData::new(sense_key::DATA_PROTECT, asc::WRITE_PROTECTED).fixed();
    assert_eq!((s[2], s[12], s[13], s[15]), (0x07, 0x27, 0, 0));
}

#[test]
fn descriptor_sense_layout() {
    let (s, n) = SenseData::invalid_cdb_field(4, Some(1)).descriptor();
    assert_eq!(
        s[..n],
        [
            0x72, 0x05, 0x24, 0, 0, 0, 0, 8, 0x02, 0x06, 0, 0, 0xC9, 0, 4, 0
        ]
    );
    let sense = SenseData {
        detail: SenseDetail::Information(0x0102_0304),
        ..SenseData::new(sense_key::MISCOMPARE, asc::MISCOMPARE_DURING_VERIFY)
    };
    let (s, n) = sense.descriptor();
    assert_eq!(
        s[..n],
        [
            0x72, 0x0E, 0x1D, 0, 0, 0, 0, 12, 0x00, 0x0A, 0x80, 0, 0, 0, 0, 0, 1, 2, 3, 4
        ]
    );
}

#[test]
fn write_fixed_truncates_to_the_sense_buffer() {
    let sense = SenseData::illegal(asc::LBA_OUT_OF_RANGE);
    let mut small = [0u8; 14];
    assert_eq!(sense.write_fixed(&mut small), 14);
    assert_eq!((small[0], small[2], small[12]), (0x70, 5, 0x21));
    let mut big = [0xFFu8; 32];
    assert_eq!(sense.write_fixed(&mut big), 18);
    assert_eq!(big[18], 0xFF);
}

#[test]
fn pack_round_trips_every_detail() {
    let details = [
        SenseDetail::None,
        SenseDetail::Information(u32::MAX),
        SenseDetail::Field(FieldPointer {
            in_cdb: true,
            byte: u16::MAX,
            bit: Some(7),
        }),
        SenseDetail::Field(FieldPointer {
            in_cdb: false,
            byte: 0,
            bit: None,
        }),
    ];
    for detail in details {
        for (key, code) in [(0x0F, (0xFF, 0xFF)), (0, (0, 0)), (5, (0x24, 0))] {
            let s = SenseData {
                detail,
                ..SenseData::new(key, code)
            };
            assert_eq!(SenseData::unpack(s.pack()), Some(s));
        }
    }
    assert_eq!(SenseData::unpack(0), None);
}

#[test]
fn sense_waits_for_request_sense_when_autosense_is_off() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let o = disk.execute(
        &store,
        Request {
            cdb: &[0x28, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 1, 0],
            data: DataBuffer::None,
            autosense: Autosense::Disabled,
            luns: &LunSet::new(),
            port: 0,
        },
    );
    assert_eq!((o.srb_status, o.scsi_status, o.sense), (0x04, 0x02, None));
    // Descriptor format this time.
    let (o, d) = run_in(&disk, &store, &[0x03, 1, 0, 0, 252, 0], 252);
    assert_eq!(o.transferred, 8);
    assert_eq!(d, [0x72, 0x05, 0x21, 0, 0, 0, 0, 0]);
    // Reported once, then cleared.
    let (_, d) = run_in(&disk, &store, &[0x03, 0, 0, 0, 18, 0], 18);
    assert_eq!((d[2], d[12]), (0, 0));

    // A field pointer survives the deferral.
    let o = disk.execute(
        &store,
        Request {
            cdb: &[0x12, 0, 0x80, 0, 36, 0],
            data: DataBuffer::None,
            autosense: Autosense::Disabled,
            luns: &LunSet::new(),
            port: 0,
        },
    );
    assert_eq!(o.srb_status, 0x04);
    let (_, d) = run_in(&disk, &store, &[0x03, 0, 0, 0, 18, 0], 18);
    assert_eq!(d[12..18], [0x24, 0, 0, 0xC0, 0, 2]);
}

#[test]
fn identity_strings_are_checked_and_padded() {
    let id = Identity::new("ACME", "Disk", "1", "X").unwrap();
    assert_eq!(id.vendor(), b"ACME    ");
    assert_eq!(id.product(), b"Disk            ");
    assert_eq!(id.revision(), b"1   ");
    assert_eq!(id.serial(), b"X");
    let max = Identity::new("12345678", "1234567890123456", "1234", "S".repeat(32)).unwrap();
    assert_eq!(max.serial().len(), 32);

    let cases = [
        (
            Identity::new("123456789", "p", "r", "s"),
            "vendor identification",
        ),
        (
            Identity::new("v", "12345678901234567", "r", "s"),
            "product identification",
        ),
        (
            Identity::new("v", "p", "12345", "s"),
            "product revision level",
        ),
        (
            Identity::new("v", "p", "r", "S".repeat(33)),
            "serial number",
        ),
    ];
    for (result, field) in cases {
        match result {
            Err(e @ ConfigError::TooLong { field: f, .. }) => {
                assert_eq!(f, field);
                let text = e.to_string();
                assert!(
                    text.contains(field) && text.ends_with("the disk is not created."),
                    "{text}"
                );
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    assert_eq!(
        Identity::new("v\u{e9}", "p", "r", "s"),
        Err(ConfigError::NotPrintableAscii {
            field: "vendor identification"
        })
    );
    assert_eq!(
        Identity::new("v", "p\n", "r", "s"),
        Err(ConfigError::NotPrintableAscii {
            field: "product identification"
        })
    );
    assert_eq!(
        Identity::new("v", "p", "r", ""),
        Err(ConfigError::EmptySerial)
    );
    assert_eq!(
        Identity::new("v", "p", "r", "   "),
        Err(ConfigError::EmptySerial)
    );
}

#[test]
fn geometry_and_limits_are_checked() {
    let good = config(Kind::Rw);
    assert!(Disk::new(good).is_ok());
    let mut c = good;
    c.block_count = 0;
    assert_eq!(Disk::new(c).err(), Some(ConfigError::NoBlocks));
    let mut c = good;
    c.block_count = u64::MAX / 256;
    assert_eq!(
        Disk::new(c).err(),
        Some(ConfigError::CapacityTooLarge {
            block_count: u64::MAX / 256
        })
    );
    let mut c = good;
    c.naa_local_id = 1 << 60;
    assert!(matches!(
        Disk::new(c).err(),
        Some(ConfigError::DesignatorTooWide { .. })
    ));
    let mut c = good;
    c.block_size = BlockSize::Bytes4096;
    c.limits.max_transfer_bytes = 2048;
    assert!(matches!(
        Disk::new(c).err(),
        Some(ConfigError::LimitTooSmall { .. })
    ));
    for tweak in [
        |c: &mut crate::scsi::DiskConfig| c.limits.max_unmap_bytes = 0,
        |c: &mut crate::scsi::DiskConfig| c.limits.max_write_same_bytes = 511,
        |c: &mut crate::scsi::DiskConfig| c.limits.max_unmap_descriptors = 0,
    ] {
        let mut c = good;
        tweak(&mut c);
        let e = Disk::new(c).unwrap_err();
        assert!(matches!(e, ConfigError::LimitTooSmall { .. }));
        assert!(e.to_string().ends_with("the disk is not created."), "{e}");
    }
    // UNMAP copies its list into a buffer of MAX_UNMAP_DESCRIPTORS descriptors.
    let mut c = good;
    c.limits.max_unmap_descriptors = crate::scsi::MAX_UNMAP_DESCRIPTORS + 1;
    let e = Disk::new(c).unwrap_err();
    assert_eq!(
        e,
        ConfigError::LimitTooLarge {
            limit: "maximum unmap descriptor count",
            value: 65,
            max: 64
        }
    );
    assert_eq!(
        e.to_string(),
        "The maximum unmap descriptor count limit is 65, but the disk accepts at most 64; the \
         disk is not created."
    );
    c.limits.max_unmap_descriptors = crate::scsi::MAX_UNMAP_DESCRIPTORS;
    assert!(Disk::new(c).is_ok());
    assert_eq!(BlockSize::from_bytes(512), Some(BlockSize::Bytes512));
    assert_eq!(BlockSize::from_bytes(4096), Some(BlockSize::Bytes4096));
    assert_eq!(BlockSize::from_bytes(1024), None);
}

#[test]
fn lun_sets_are_ascending() {
    let mut set = LunSet::new();
    assert!(set.is_empty());
    for lun in [255, 0, 64, 63, 7, 64] {
        set.insert(lun);
    }
    assert_eq!(set.len(), 5);
    assert_eq!(set.iter().collect::<Vec<_>>(), [0, 7, 63, 64, 255]);
    assert!(set.contains(63) && !set.contains(62));
}

#[test]
fn write_protection_follows_set_read_only() {
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let data = [0x11u8; 512];
    let write = [0x2A, 0, 0, 0, 0, 1, 0, 0, 1, 0];
    assert!(!disk.is_read_only());
    assert_eq!(
        super::run(&disk, &store, &write, DataBuffer::out(&data)),
        crate::scsi::Outcome::good(512)
    );
    disk.set_read_only(true);
    let o = super::run(&disk, &store, &write, DataBuffer::out(&data));
    super::assert_check(&o, sense_key::DATA_PROTECT, asc::WRITE_PROTECTED);
    let (_, d) = run_in(&disk, &store, &[0x1A, 0x08, 0x08, 0, 255, 0], 255);
    assert_eq!(d[2] & 0x80, 0x80, "WP in MODE SENSE");
    disk.set_read_only(false);
    let (_, d) = run_in(&disk, &store, &[0x1A, 0x08, 0x08, 0, 255, 0], 255);
    assert_eq!(d[2] & 0x80, 0);
}

/// REPORT SUPPORTED OPERATION CODES lists exactly the implemented commands, and asking for
/// each one alone returns its operation code, CDB size and usage data of that size.
#[test]
fn supported_operation_codes_match_the_dispatcher() {
    use super::{Kind, MemStore, disk, run_in};
    let disk = disk(Kind::Rw);
    let store = MemStore::for_disk(&disk);
    let (o, all) = run_in(
        &disk,
        &store,
        &[0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0],
        4096,
    );
    assert_eq!(o.scsi_status, 0);
    let n = u32::from_be_bytes(all[..4].try_into().unwrap()) as usize / 8;
    let listed: Vec<&[u8]> = all[4..4 + 8 * n].chunks(8).collect();
    let mut codes: Vec<u8> = listed.iter().map(|d| d[0]).collect();
    codes.dedup();
    assert_eq!(codes, crate::scsi::op::ALL, "listed operation codes");
    for d in listed {
        let (code, servactv, size) = (d[0], d[5] & 1 == 1, d[7]);
        let options = if servactv { 2 } else { 1 };
        let cdb = [0xA3, 0x0C, options, code, 0, d[3], 0, 0, 1, 0, 0, 0];
        let (o, one) = run_in(&disk, &store, &cdb, 256);
        assert_eq!(o.scsi_status, 0, "{code:#04X}");
        assert_eq!(one[1] & 7, 3, "{code:#04X} supported");
        assert_eq!(u16::from_be_bytes([one[2], one[3]]), u16::from(size));
        assert_eq!(one.len(), 4 + usize::from(size), "{code:#04X} usage data");
        assert_eq!(one[4], code);
        assert_eq!(*one.last().unwrap(), 0, "{code:#04X} CONTROL byte");
        if servactv {
            assert_eq!(one[5] & 0x1F, 0x1F, "{code:#04X} service action field");
        }
        // A command without service actions asked for with 010b, and the reverse, is refused.
        let cdb = [0xA3, 0x0C, 3 - options, code, 0, d[3], 0, 0, 1, 0, 0, 0];
        assert_eq!(
            run_in(&disk, &store, &cdb, 256).0.scsi_status,
            2,
            "{code:#04X}"
        );
    }
}

#[test]
fn the_implemented_set_matches_the_command_table() {
    use crate::scsi::opcodes::{COMMANDS, is_implemented};
    for opcode in 0..=u8::MAX {
        assert_eq!(
            is_implemented(opcode),
            COMMANDS.iter().any(|c| c[0] == opcode),
            "opcode {opcode:#04x}"
        );
    }
}
