//! `StorPortRegistryRead` / `StorPortRegistryWrite` semantics: every edge case
//! of the documented return protocol and the conversion rules.

use storport_emu::registry::{
    ReadOutcome, RegType, RegValue, Registry, RegistryCallError, RegistryScope, registry_read,
    registry_write,
};

const SZ: u32 = 1;
const BINARY: u32 = 3;
const DWORD: u32 = 4;
const MULTI_SZ: u32 = 7;
const QWORD: u32 = 11;
const GLOBAL: u32 = 1;
const ADAPTER: u32 = 0;

const DEVICE: &str = "Services\\vstor\\Parameters\\Device";
const DEVICE2: &str = "Services\\vstor\\Parameters\\Device2";

fn scope() -> RegistryScope {
    RegistryScope::new("vstor", 2)
}

fn registry() -> Registry {
    let mut reg = Registry::new();
    reg.set_value(DEVICE, "DiskCount", RegValue::dword(4));
    reg.set_value(DEVICE, "Name", RegValue::sz("vdisk"));
    reg.set_value(DEVICE, "Empty", RegValue::sz(""));
    reg.set_value(DEVICE, "List", RegValue::multi_sz(&["ab", "c"]));
    reg.set_value(DEVICE, "NoList", RegValue::multi_sz::<&str>(&[]));
    reg.set_value(DEVICE, "Blob", RegValue::binary(&[1, 2, 3]));
    reg.set_value(DEVICE, "Big", RegValue::qword(0x1122_3344_5566_7788));
    reg.set_value(DEVICE, "Path", RegValue::expand_sz("%SystemRoot%"));
    reg
}

/// Reads with a registry buffer of `capacity` bytes (pre-filled with 0xEE)
/// and `BufferLength` = `length`; returns the outcome and the buffer.
fn read(
    reg: &Registry,
    name: &[u8],
    global: u32,
    ty: u32,
    capacity: usize,
    length: u32,
) -> (ReadOutcome, Vec<u8>) {
    let mut buf = vec![0xEE; capacity];
    let outcome = registry_read(reg, &scope(), name, global, ty, &mut buf, length);
    (outcome, buf)
}

#[test]
fn scope_keys_follow_global() {
    assert_eq!(scope().device_key(1), DEVICE);
    assert_eq!(scope().device_key(0xFFFF_FFFF), DEVICE);
    assert_eq!(scope().device_key(0), DEVICE2);
}

#[test]
fn dword_read_exact_fit() {
    let (outcome, buf) = read(&registry(), b"DiskCount\0", GLOBAL, DWORD, 4, 4);
    assert_eq!(outcome, ReadOutcome::Read { written: 4 });
    assert_eq!(outcome.returned(), (true, 4));
    assert_eq!(buf, [4, 0, 0, 0]);
}

#[test]
fn too_small_reports_needed_length_and_leaves_buffer() {
    let (outcome, buf) = read(&registry(), b"DiskCount", GLOBAL, DWORD, 16, 3);
    assert_eq!(outcome, ReadOutcome::TooSmall { needed: 4 });
    assert_eq!(outcome.returned(), (false, 4));
    assert!(buf.iter().all(|&b| b == 0xEE));
    // "vdisk" + NUL needs 6 bytes.
    let (outcome, _) = read(&registry(), b"Name", GLOBAL, SZ, 16, 5);
    assert_eq!(outcome.returned(), (false, 6));
}

#[test]
fn zero_length_buffer_reports_needed_length() {
    let (outcome, _) = read(&registry(), b"Name", GLOBAL, SZ, 0, 0);
    assert_eq!(outcome.returned(), (false, 6));
    let (outcome, _) = read(&registry(), b"List", GLOBAL, MULTI_SZ, 64, 0);
    assert_eq!(outcome.returned(), (false, 6));
}

#[test]
fn length_beyond_allocated_buffer_fails_with_zero() {
    let (outcome, buf) = read(&registry(), b"DiskCount", GLOBAL, DWORD, 4, 5);
    assert_eq!(outcome.returned(), (false, 0));
    assert!(matches!(
        outcome,
        ReadOutcome::Failed(RegistryCallError::LengthBeyondBuffer {
            length: 5,
            capacity: 4
        })
    ));
    assert!(buf.iter().all(|&b| b == 0xEE));
}

#[test]
fn missing_value_fails_with_zero() {
    let (outcome, _) = read(&registry(), b"Nope", GLOBAL, DWORD, 16, 16);
    assert_eq!(outcome.returned(), (false, 0));
    let ReadOutcome::Failed(e) = outcome else {
        panic!("expected a failure, got {outcome:?}")
    };
    assert_eq!(
        e.to_string(),
        "the value `Nope` does not exist under `Services\\vstor\\Parameters\\Device`"
    );
}

#[test]
fn wrong_type_fails_with_zero() {
    let reg = registry();
    for (name, ty) in [
        (&b"Name"[..], DWORD),
        (b"DiskCount", SZ),
        (b"DiskCount", BINARY),
        (b"DiskCount", QWORD),
        (b"Blob", DWORD),
        (b"List", SZ),
        (b"Name", MULTI_SZ),
        (b"Big", DWORD),
    ] {
        let (outcome, _) = read(&reg, name, GLOBAL, ty, 64, 64);
        assert_eq!(outcome.returned(), (false, 0), "{name:?} as {ty}");
        assert!(matches!(
            outcome,
            ReadOutcome::Failed(RegistryCallError::TypeMismatch { .. })
        ));
    }
    let (outcome, _) = read(&reg, b"DiskCount", GLOBAL, 5, 64, 64);
    assert_eq!(
        outcome,
        ReadOutcome::Failed(RegistryCallError::UnsupportedType { requested: 5 })
    );
}

#[test]
fn string_reads_are_ansi_with_terminator() {
    let (outcome, buf) = read(&registry(), b"Name", GLOBAL, SZ, 8, 8);
    assert_eq!(outcome.returned(), (true, 6));
    assert_eq!(&buf[..6], b"vdisk\0");
    assert_eq!(buf[6], 0xEE);
    // Empty string: just the terminator.
    let (outcome, buf) = read(&registry(), b"Empty", GLOBAL, SZ, 4, 4);
    assert_eq!(outcome.returned(), (true, 1));
    assert_eq!(buf[0], 0);
    // REG_EXPAND_SZ reads as a string, unexpanded; exact fit.
    let (outcome, buf) = read(&registry(), b"Path", GLOBAL, SZ, 13, 13);
    assert_eq!(outcome.returned(), (true, 13));
    assert_eq!(&buf, b"%SystemRoot%\0");
}

#[test]
fn non_latin1_characters_become_question_marks() {
    let mut reg = Registry::new();
    // é is U+00E9 (ISO-8859-1 0xE9); 中 has no ANSI form; 😀 is a surrogate pair.
    reg.set_value(DEVICE, "Intl", RegValue::sz("é中😀!"));
    let (outcome, buf) = read(&reg, b"Intl", GLOBAL, SZ, 16, 16);
    assert_eq!(outcome.returned(), (true, 6));
    assert_eq!(&buf[..6], &[0xE9, b'?', b'?', b'?', b'!', 0]);
}

#[test]
fn multi_sz_reads() {
    let (outcome, buf) = read(&registry(), b"List", GLOBAL, MULTI_SZ, 6, 6);
    assert_eq!(outcome.returned(), (true, 6));
    assert_eq!(&buf, b"ab\0c\0\0");
    let (outcome, _) = read(&registry(), b"List", GLOBAL, MULTI_SZ, 6, 5);
    assert_eq!(outcome.returned(), (false, 6));
    // Empty list: a single NUL.
    let (outcome, buf) = read(&registry(), b"NoList", GLOBAL, MULTI_SZ, 4, 4);
    assert_eq!(outcome.returned(), (true, 1));
    assert_eq!(buf[0], 0);
}

#[test]
fn binary_and_qword_reads_are_raw() {
    let (outcome, buf) = read(&registry(), b"Blob", GLOBAL, BINARY, 3, 3);
    assert_eq!(outcome.returned(), (true, 3));
    assert_eq!(buf, [1, 2, 3]);
    let (outcome, buf) = read(&registry(), b"Big", GLOBAL, QWORD, 8, 8);
    assert_eq!(outcome.returned(), (true, 8));
    assert_eq!(buf, 0x1122_3344_5566_7788_u64.to_le_bytes());
}

#[test]
fn value_names_are_case_insensitive_and_end_at_nul() {
    let (outcome, _) = read(&registry(), b"diskCOUNT\0garbage", GLOBAL, DWORD, 4, 4);
    assert_eq!(outcome.returned(), (true, 4));
}

#[test]
fn adapter_scope_reads_device_n_without_fallback() {
    let mut reg = registry();
    reg.set_value(DEVICE2, "DiskCount", RegValue::dword(9));
    let (outcome, buf) = read(&reg, b"DiskCount", ADAPTER, DWORD, 4, 4);
    assert_eq!(outcome.returned(), (true, 4));
    assert_eq!(buf, [9, 0, 0, 0]);
    let (_, buf) = read(&reg, b"DiskCount", GLOBAL, DWORD, 4, 4);
    assert_eq!(buf, [4, 0, 0, 0]);
    // Only under Device: an adapter-scope read does not see it.
    let (outcome, _) = read(&reg, b"Name", ADAPTER, SZ, 16, 16);
    assert_eq!(outcome.returned(), (false, 0));
}

fn write(
    reg: &mut Registry,
    name: &[u8],
    global: u32,
    ty: u32,
    data: &[u8],
    length: u32,
) -> Result<(), RegistryCallError> {
    registry_write(reg, &scope(), name, global, ty, data, length)
}

#[test]
fn writes_convert_ansi_to_utf16_and_round_trip() {
    let mut reg = Registry::new();
    let mut buf = *b"hello\0junk";
    write(&mut reg, b"Greeting\0", ADAPTER, SZ, &buf, 10).unwrap();
    assert_eq!(
        reg.raw(DEVICE2, "Greeting"),
        Some((
            RegType::SZ,
            &[b'h', 0, b'e', 0, b'l', 0, b'l', 0, b'o', 0, 0, 0][..]
        ))
    );
    buf.fill(0);
    let out = registry_read(&reg, &scope(), b"Greeting", ADAPTER, SZ, &mut buf, 10);
    assert_eq!(out.returned(), (true, 6));
    assert_eq!(&buf[..6], b"hello\0");
    // Without a NUL the whole BufferLength is the string; Latin-1 survives.
    write(&mut reg, b"Latin", GLOBAL, SZ, &[b'c', 0xE9, b'x'], 2).unwrap();
    assert_eq!(reg.value(DEVICE, "Latin"), Some(&RegValue::sz("cé")));
    let mut back = [0u8; 3];
    let out = registry_read(&reg, &scope(), b"Latin", GLOBAL, SZ, &mut back, 3);
    assert_eq!(out.returned(), (true, 3));
    assert_eq!(back, [b'c', 0xE9, 0]);
}

#[test]
fn write_empty_string_and_multi_sz() {
    let mut reg = Registry::new();
    write(&mut reg, b"E", GLOBAL, SZ, &[], 0).unwrap();
    assert_eq!(reg.raw(DEVICE, "E"), Some((RegType::SZ, &[0u8, 0][..])));
    write(&mut reg, b"M", GLOBAL, MULTI_SZ, b"ab\0c\0\0zz", 8).unwrap();
    assert_eq!(
        reg.value(DEVICE, "M"),
        Some(&RegValue::multi_sz(&["ab", "c"]))
    );
    write(&mut reg, b"M2", GLOBAL, MULTI_SZ, b"x\0y", 3).unwrap();
    assert_eq!(
        reg.value(DEVICE, "M2"),
        Some(&RegValue::multi_sz(&["x", "y"]))
    );
    write(&mut reg, b"M3", GLOBAL, MULTI_SZ, b"\0", 1).unwrap();
    assert_eq!(
        reg.value(DEVICE, "M3"),
        Some(&RegValue::multi_sz::<&str>(&[]))
    );
    let mut buf = [0xEE; 8];
    let out = registry_read(&reg, &scope(), b"M", GLOBAL, MULTI_SZ, &mut buf, 8);
    assert_eq!(out.returned(), (true, 6));
    assert_eq!(&buf[..6], b"ab\0c\0\0");
}

#[test]
fn dword_qword_binary_writes() {
    let mut reg = Registry::new();
    write(&mut reg, b"D", GLOBAL, DWORD, &[1, 2, 3, 4, 5], 5).unwrap();
    assert_eq!(reg.value(DEVICE, "D"), Some(&RegValue::dword(0x0403_0201)));
    assert_eq!(
        write(&mut reg, b"D3", GLOBAL, DWORD, &[1, 2, 3, 4], 3),
        Err(RegistryCallError::DataTooShort {
            reg_type: RegType::DWORD,
            needed: 4,
            length: 3
        })
    );
    assert!(reg.value(DEVICE, "D3").is_none());
    write(&mut reg, b"Q", GLOBAL, QWORD, &7u64.to_le_bytes(), 8).unwrap();
    assert_eq!(reg.value(DEVICE, "Q"), Some(&RegValue::qword(7)));
    assert!(write(&mut reg, b"Q2", GLOBAL, QWORD, &[0; 8], 7).is_err());
    write(&mut reg, b"B", GLOBAL, BINARY, &[9, 8, 7], 2).unwrap();
    assert_eq!(reg.value(DEVICE, "B"), Some(&RegValue::binary(&[9, 8])));
    write(&mut reg, b"B0", GLOBAL, BINARY, &[9], 0).unwrap();
    assert_eq!(reg.raw(DEVICE, "B0"), Some((RegType::BINARY, &[][..])));
}

#[test]
fn write_failures_leave_registry_unchanged() {
    let mut reg = Registry::new();
    assert_eq!(
        write(&mut reg, b"X", GLOBAL, DWORD, &[0; 4], 5),
        Err(RegistryCallError::LengthBeyondBuffer {
            length: 5,
            capacity: 4
        })
    );
    assert_eq!(
        write(&mut reg, b"X", GLOBAL, 6, &[0; 4], 4),
        Err(RegistryCallError::UnsupportedType { requested: 6 })
    );
    assert!(!reg.key_exists(DEVICE));
}

#[test]
fn write_creates_the_device_keys() {
    let mut reg = Registry::new();
    write(&mut reg, b"A", ADAPTER, DWORD, &[1, 0, 0, 0], 4).unwrap();
    write(&mut reg, b"A", GLOBAL, DWORD, &[2, 0, 0, 0], 4).unwrap();
    assert_eq!(
        reg.subkeys("Services\\vstor\\Parameters"),
        Some(vec!["Device".to_owned(), "Device2".to_owned()])
    );
    assert_eq!(reg.value(DEVICE2, "A"), Some(&RegValue::dword(1)));
    assert_eq!(reg.value(DEVICE, "A"), Some(&RegValue::dword(2)));
}

mod protocol {
    use super::{registry, scope};
    use proptest::prelude::*;
    use storport_emu::registry::{ReadOutcome, Registry, parse_set, registry_read, registry_write};

    const NAMES: &[&[u8]] = &[
        b"DiskCount",
        b"Name",
        b"Empty",
        b"List",
        b"NoList",
        b"Blob",
        b"Big",
        b"Path",
        b"Nope",
    ];

    proptest! {
        /// Whatever the arguments: TRUE only with the data within the given
        /// length, FALSE + n only when n exceeds it, nothing written otherwise.
        #[test]
        fn read_follows_the_return_protocol(
            name in 0..NAMES.len(),
            global in prop_oneof![Just(0u32), Just(1u32), any::<u32>()],
            ty in prop_oneof![0u32..12, any::<u32>()],
            capacity in 0usize..40,
            length in prop_oneof![0u32..48, any::<u32>()],
        ) {
            let reg = registry();
            let mut buf = vec![0xEE; capacity];
            let outcome = registry_read(&reg, &scope(), NAMES[name], global, ty, &mut buf, length);
            match outcome {
                ReadOutcome::Read { written } => {
                    prop_assert!(written <= length);
                    prop_assert!(written as usize <= capacity);
                    prop_assert!(buf[written as usize..].iter().all(|&b| b == 0xEE));
                }
                ReadOutcome::TooSmall { needed } => {
                    prop_assert!(needed > length);
                    prop_assert!(buf.iter().all(|&b| b == 0xEE));
                }
                ReadOutcome::Failed(_) => prop_assert!(buf.iter().all(|&b| b == 0xEE)),
            }
        }

        /// Every write that succeeds reads back with the same type.
        #[test]
        fn writes_read_back(
            ty in prop_oneof![Just(1u32), Just(3), Just(4), Just(7), Just(11), any::<u32>()],
            data in proptest::collection::vec(any::<u8>(), 0..32),
            global in 0u32..2,
        ) {
            let mut reg = Registry::new();
            let len = u32::try_from(data.len()).unwrap();
            if registry_write(&mut reg, &scope(), b"V", global, ty, &data, len).is_ok() {
                let mut buf = vec![0; 128];
                let outcome = registry_read(&reg, &scope(), b"V", global, ty, &mut buf, 128);
                prop_assert!(matches!(outcome, ReadOutcome::Read { .. }), "{:?}", outcome);
            }
        }

        #[test]
        fn parse_set_never_panics(spec in ".{0,60}") {
            let _ = parse_set(&spec);
        }
    }
}
