//! The PE loader, on images built byte by byte here: a well-formed driver
//! image with relocations, imports, exports and `.pdata`, and corrupted
//! variants of it.

#![expect(
    clippy::cast_possible_truncation,
    reason = "addresses are 64-bit on the only supported target"
)]

use std::time::Duration;

use storport_emu::machine::fault::STATUS_ACCESS_VIOLATION;
use storport_emu::machine::loader::{self, LoadError};
use storport_emu::machine::{Fault, Perms, gate, irql, read_u64, write_bytes};

const IMAGE_BASE: u64 = 0x1_4000_0000;
const SCN_CODE: u32 = 0x6000_0020; // CNT_CODE | MEM_EXECUTE | MEM_READ
const SCN_RDATA: u32 = 0x4000_0040; // CNT_INITIALIZED_DATA | MEM_READ
const SCN_DATA: u32 = 0xC000_0040; // ... | MEM_READ | MEM_WRITE

/// One section of a test image; section `i` is placed at RVA `0x1000 * (i + 1)`.
struct TestSection {
    name: &'static [u8],
    data: Vec<u8>,
    virtual_size: u32,
    characteristics: u32,
}

/// A PE32+ image under construction.
struct TestPe {
    machine: u16,
    magic: u16,
    entry_rva: u32,
    size_of_image: u32,
    section_alignment: u32,
    file_characteristics: u16,
    directories: [(u32, u32); 16],
    sections: Vec<TestSection>,
}

const FILE_ALIGN: usize = 0x200;

fn put(buf: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    if buf.len() < at + bytes.len() {
        buf.resize(at + bytes.len(), 0);
    }
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

impl TestPe {
    fn build(&self) -> Vec<u8> {
        let mut f = Vec::new();
        put(&mut f, 0, b"MZ");
        put(&mut f, 0x3C, &0x40_u32.to_le_bytes());
        put(&mut f, 0x40, b"PE\0\0");
        let coff = 0x44;
        put(&mut f, coff, &self.machine.to_le_bytes());
        put(
            &mut f,
            coff + 2,
            &(self.sections.len() as u16).to_le_bytes(),
        );
        put(&mut f, coff + 16, &0xF0_u16.to_le_bytes());
        put(&mut f, coff + 18, &self.file_characteristics.to_le_bytes());
        let opt = coff + 20;
        put(&mut f, opt, &self.magic.to_le_bytes());
        put(&mut f, opt + 16, &self.entry_rva.to_le_bytes());
        put(&mut f, opt + 24, &IMAGE_BASE.to_le_bytes());
        put(&mut f, opt + 32, &self.section_alignment.to_le_bytes());
        put(&mut f, opt + 36, &(FILE_ALIGN as u32).to_le_bytes());
        put(&mut f, opt + 40, &10_u16.to_le_bytes()); // OS version
        put(&mut f, opt + 48, &10_u16.to_le_bytes()); // subsystem version
        put(&mut f, opt + 56, &self.size_of_image.to_le_bytes());
        put(&mut f, opt + 60, &0x400_u32.to_le_bytes()); // SizeOfHeaders
        put(&mut f, opt + 68, &1_u16.to_le_bytes()); // IMAGE_SUBSYSTEM_NATIVE
        put(&mut f, opt + 70, &0x2160_u16.to_le_bytes()); // WDM_DRIVER | NX_COMPAT | DYNAMIC_BASE | HIGH_ENTROPY_VA
        put(&mut f, opt + 108, &16_u32.to_le_bytes());
        for (i, (rva, size)) in self.directories.iter().enumerate() {
            put(&mut f, opt + 112 + i * 8, &rva.to_le_bytes());
            put(&mut f, opt + 116 + i * 8, &size.to_le_bytes());
        }
        let table = opt + 0xF0;
        let mut raw = 0x400;
        for (i, s) in self.sections.iter().enumerate() {
            let h = table + i * 40;
            let mut name = [0_u8; 8];
            name[..s.name.len()].copy_from_slice(s.name);
            put(&mut f, h, &name);
            put(&mut f, h + 8, &s.virtual_size.to_le_bytes());
            put(&mut f, h + 12, &(0x1000 * (i as u32 + 1)).to_le_bytes());
            let raw_size = s.data.len().next_multiple_of(FILE_ALIGN);
            put(&mut f, h + 16, &(raw_size as u32).to_le_bytes());
            put(&mut f, h + 20, &(raw as u32).to_le_bytes());
            put(&mut f, h + 36, &s.characteristics.to_le_bytes());
            put(&mut f, raw, &s.data);
            f.resize(raw + raw_size, 0);
            raw += raw_size;
        }
        f
    }
}

// RVAs inside the standard image.
const ADD3: u32 = 0x1000;
const CALL_INIT: u32 = 0x1010;
const READ_POINTER: u32 = 0x1030;
const CALL_BUGCHECK: u32 = 0x1040;
const NULL_DEREF: u32 = 0x1060;
const IAT_STORPORT: u32 = 0x2180;
const IAT_NTOSKRNL: u32 = 0x21A0;

/// `sub rsp, 40; call [rip + iat]; add rsp, 40; ret` at `rva`.
fn call_through_iat(text: &mut Vec<u8>, rva: u32, iat: u32) {
    let at = (rva - 0x1000) as usize;
    let disp = iat.wrapping_sub(rva + 4 + 6);
    put(text, at, &[0x48, 0x83, 0xEC, 0x28, 0xFF, 0x15]);
    put(text, at + 6, &disp.to_le_bytes());
    put(text, at + 10, &[0x48, 0x83, 0xC4, 0x28, 0xC3]);
}

/// `.rdata`: imports from `STORPORT.SYS` and `ntoskrnl.exe`, and one export.
fn rdata() -> Vec<u8> {
    let mut rdata = Vec::new();
    let descriptor = |rdata: &mut Vec<u8>, at: usize, ilt: u32, name: u32, iat: u32| {
        put(rdata, at, &ilt.to_le_bytes());
        put(rdata, at + 12, &name.to_le_bytes());
        put(rdata, at + 16, &iat.to_le_bytes());
    };
    descriptor(&mut rdata, 0x00, 0x2100, 0x2200, IAT_STORPORT);
    descriptor(&mut rdata, 0x14, 0x2120, 0x2210, IAT_NTOSKRNL);
    let hint_names = [
        (0x2240_u32, &b"StorPortInitialize"[..]),
        (0x2260, b"StorPortNotification"),
        (0x2280, b"KeBugCheckEx"),
        (0x22A0, b"DbgPrint"),
    ];
    for (i, (rva, name)) in hint_names.iter().enumerate() {
        let at = (rva - 0x2000) as usize;
        put(&mut rdata, at + 2, name);
        put(&mut rdata, at + 2 + name.len(), &[0]);
        let slot = if i < 2 {
            0x100 + i * 8
        } else {
            0x120 + (i - 2) * 8
        };
        put(&mut rdata, slot, &u64::from(*rva).to_le_bytes());
        put(&mut rdata, slot + 0x80, &u64::from(*rva).to_le_bytes()); // IAT before binding
    }
    put(&mut rdata, 0x200, b"STORPORT.SYS\0");
    put(&mut rdata, 0x210, b"ntoskrnl.exe\0");
    // Export directory at 0x2400: one function, "Add3".
    let export = 0x400;
    put(&mut rdata, export + 12, &0x2480_u32.to_le_bytes()); // Name
    put(&mut rdata, export + 16, &1_u32.to_le_bytes()); // Base
    put(&mut rdata, export + 20, &1_u32.to_le_bytes()); // NumberOfFunctions
    put(&mut rdata, export + 24, &1_u32.to_le_bytes()); // NumberOfNames
    put(&mut rdata, export + 28, &0x2440_u32.to_le_bytes()); // AddressOfFunctions
    put(&mut rdata, export + 32, &0x2450_u32.to_le_bytes()); // AddressOfNames
    put(&mut rdata, export + 36, &0x2460_u32.to_le_bytes()); // AddressOfNameOrdinals
    put(&mut rdata, 0x440, &ADD3.to_le_bytes());
    put(&mut rdata, 0x450, &0x2490_u32.to_le_bytes());
    put(&mut rdata, 0x460, &0_u16.to_le_bytes());
    put(&mut rdata, 0x480, b"test.sys\0");
    put(&mut rdata, 0x490, b"Add3\0");

    rdata
}

/// A small driver image: `.text`, `.rdata` (imports from `STORPORT.SYS` and
/// `ntoskrnl.exe`, one export), `.data` (a pointer that needs relocating),
/// `.pdata` and `.reloc`.
fn standard() -> TestPe {
    let mut text = Vec::new();
    // add3: lea rax, [rcx + rdx]; add rax, r8; ret
    put(
        &mut text,
        0,
        &[0x48, 0x8D, 0x04, 0x11, 0x4C, 0x01, 0xC0, 0xC3],
    );
    call_through_iat(&mut text, CALL_INIT, IAT_STORPORT);
    // read_pointer: mov rax, [rip + (0x3000 - next)]; ret
    let disp = 0x3000_u32.wrapping_sub(READ_POINTER + 7);
    put(&mut text, 0x30, &[0x48, 0x8B, 0x05]);
    put(&mut text, 0x33, &disp.to_le_bytes());
    put(&mut text, 0x37, &[0xC3]);
    call_through_iat(&mut text, CALL_BUGCHECK, IAT_NTOSKRNL);
    // null_deref: xor eax, eax; mov rax, [rax]; ret
    put(&mut text, 0x60, &[0x31, 0xC0, 0x48, 0x8B, 0x00, 0xC3]);

    let rdata = rdata();
    let mut data = Vec::new();
    put(&mut data, 0, &(IMAGE_BASE + 0x3008).to_le_bytes());
    put(&mut data, 8, &0x1122_3344_5566_7788_u64.to_le_bytes());

    let mut pdata = Vec::new();
    for (i, (begin, end)) in [
        (ADD3, ADD3 + 8),
        (CALL_INIT, CALL_INIT + 15),
        (READ_POINTER, READ_POINTER + 8),
        (NULL_DEREF, NULL_DEREF + 6),
    ]
    .iter()
    .enumerate()
    {
        put(&mut pdata, i * 12, &begin.to_le_bytes());
        put(&mut pdata, i * 12 + 4, &end.to_le_bytes());
        put(&mut pdata, i * 12 + 8, &0x2600_u32.to_le_bytes());
    }

    // One block for page 0x3000: DIR64 at +0, then an ABSOLUTE pad entry.
    let mut reloc = Vec::new();
    put(&mut reloc, 0, &0x3000_u32.to_le_bytes());
    put(&mut reloc, 4, &12_u32.to_le_bytes());
    put(&mut reloc, 8, &(10_u16 << 12).to_le_bytes());
    put(&mut reloc, 10, &0_u16.to_le_bytes());

    let mut directories = [(0, 0); 16];
    directories[0] = (0x2400, 0xA0); // export
    directories[1] = (0x2000, 0x3C); // import
    directories[3] = (0x4000, pdata.len() as u32); // exception
    directories[5] = (0x5000, reloc.len() as u32); // base relocations
    directories[12] = (IAT_STORPORT, 0x40); // IAT
    let section = |name, data: Vec<u8>, characteristics| TestSection {
        name,
        virtual_size: data.len() as u32,
        data,
        characteristics,
    };
    TestPe {
        machine: 0x8664,
        magic: 0x20B,
        entry_rva: ADD3,
        size_of_image: 0x6000,
        section_alignment: 0x1000,
        file_characteristics: 0x22,
        directories,
        sections: vec![
            section(b".text", text, SCN_CODE),
            section(b".rdata", rdata, SCN_RDATA),
            section(b".data", data, SCN_DATA),
            section(b".pdata", pdata, SCN_RDATA),
            section(b".reloc", reloc, SCN_RDATA | 0x0200_0000),
        ],
    }
}

const extern "win64" fn emulated_initialize(a: u64, b: u64) -> u64 {
    a * 1000 + b
}

const extern "win64" fn emulated_nothing() -> u64 {
    0
}

/// Knows every import of the standard image, with case-sensitive lower-case DLL names.
fn resolve_all(dll: &str, function: &str) -> Option<usize> {
    match (dll, function) {
        ("storport.sys", "StorPortInitialize") => Some(emulated_initialize as *const () as usize),
        ("storport.sys", "StorPortNotification")
        | ("ntoskrnl.exe", "KeBugCheckEx" | "DbgPrint") => {
            Some(emulated_nothing as *const () as usize)
        }
        _ => None,
    }
}

fn call(target: usize, args: &[u64]) -> Result<u64, Fault> {
    // SAFETY: targets are functions of the test image, which only touch
    // their own image and call the emulated functions above.
    unsafe { gate::call(target, args, irql::PASSIVE_LEVEL, Duration::from_secs(10)) }
}

#[test]
fn loads_relocates_binds_and_protects_a_driver_image() {
    let image = loader::load_named("test.sys", &standard().build(), &resolve_all, false).unwrap();
    let base = image.base();
    assert_ne!(
        base as u64, IMAGE_BASE,
        "the image is mapped where the kernel chose, not at its ImageBase"
    );
    assert_eq!(image.size(), 0x6000);
    assert_eq!(image.name(), "test.sys");
    assert_eq!(image.entry_point(), Some(base + ADD3 as usize));
    let sections: Vec<_> = image
        .sections()
        .iter()
        .map(|s| (s.name.trim_end_matches('\0').to_owned(), s.rva, s.perms))
        .collect();
    assert_eq!(
        sections,
        [
            (".text".to_owned(), 0x1000, Perms::READ_EXECUTE),
            (".rdata".to_owned(), 0x2000, Perms::READ),
            (".data".to_owned(), 0x3000, Perms::READ_WRITE),
            (".pdata".to_owned(), 0x4000, Perms::READ),
            (".reloc".to_owned(), 0x5000, Perms::READ),
        ]
    );
    // Code runs, exports resolve, the relocated pointer points into this mapping.
    assert_eq!(image.export("Add3"), Some(base + ADD3 as usize));
    assert_eq!(image.export("Missing"), None);
    assert_eq!(call(image.export("Add3").unwrap(), &[1, 2, 3]).unwrap(), 6);
    assert_eq!(
        call(base + READ_POINTER as usize, &[]).unwrap(),
        base as u64 + 0x3008
    );
    assert_eq!(read_u64(base + 0x3008).unwrap(), 0x1122_3344_5566_7788);
    // The IAT in read-only .rdata was bound before protection.
    assert_eq!(call(base + CALL_INIT as usize, &[4, 2]).unwrap(), 4002);
    let bound = &image.imports()[0];
    assert_eq!(
        (
            bound.dll.as_str(),
            bound.function.as_str(),
            bound.iat_address
        ),
        (
            "STORPORT.SYS",
            "StorPortInitialize",
            base + IAT_STORPORT as usize
        )
    );
    assert_eq!(read_u64(bound.iat_address).unwrap(), bound.target as u64);
    assert!(image.imports().iter().all(|i| !i.trapped));
    assert_eq!(image.imports().len(), 4);
    // Protections: code and read-only data refuse writes, data accepts them.
    assert!(write_bytes(base + 0x1000, &[0xCC]).is_err());
    assert!(write_bytes(base + 0x2000, &[0]).is_err());
    assert!(write_bytes(base, &[0]).is_err(), "headers are read-only");
    write_bytes(base + 0x3010, &[1, 2, 3]).unwrap();
}

#[test]
fn pdata_names_the_function_of_a_fault() {
    let image = loader::load_named("pdata.sys", &standard().build(), &resolve_all, false).unwrap();
    let base = image.base();
    assert_eq!(image.functions().len(), 4);
    let loc = image.locate(base + ADD3 as usize + 3).unwrap();
    assert_eq!(
        loc.section.as_deref().map(|s| s.trim_end_matches('\0')),
        Some(".text")
    );
    assert_eq!(
        (loc.rva, loc.function.map(|f| (f.begin_rva, f.end_rva))),
        (ADD3 + 3, Some((ADD3, ADD3 + 8)))
    );
    assert_eq!(
        image.locate(base + 0x1020).unwrap().function,
        None,
        "between functions"
    );
    assert_eq!(image.locate(base + 0x6000), None);
    match call(base + NULL_DEREF as usize, &[]) {
        Err(Fault::Exception(e)) => {
            assert_eq!(e.code, STATUS_ACCESS_VIOLATION);
            let loc = e.location.unwrap();
            assert_eq!((loc.image.as_str(), loc.rva), ("pdata.sys", NULL_DEREF + 2));
            assert_eq!(loc.function.map(|f| f.begin_rva), Some(NULL_DEREF));
        }
        other => panic!("expected an access violation, got {other:?}"),
    }
}

#[test]
fn missing_imports_are_all_listed_with_lower_case_dll_names() {
    let only_init = |dll: &str, function: &str| {
        (dll == "storport.sys" && function == "StorPortInitialize")
            .then_some(emulated_initialize as *const () as usize)
    };
    let err = loader::load(&standard().build(), &only_init, false).unwrap_err();
    match &err {
        LoadError::MissingImports { missing, .. } => assert_eq!(
            missing,
            &[
                "storport.sys!StorPortNotification",
                "ntoskrnl.exe!KeBugCheckEx",
                "ntoskrnl.exe!DbgPrint"
            ]
        ),
        other => panic!("expected missing imports, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("3 function(s)") && message.contains("ntoskrnl.exe!DbgPrint"),
        "{message}"
    );
}

#[test]
fn missing_imports_can_be_bound_to_trap_stubs() {
    let only_init = |dll: &str, function: &str| {
        (dll == "storport.sys" && function == "StorPortInitialize")
            .then_some(emulated_initialize as *const () as usize)
    };
    let image = loader::load_named("traps.sys", &standard().build(), &only_init, true).unwrap();
    let trapped: Vec<_> = image
        .imports()
        .iter()
        .filter(|i| i.trapped)
        .map(|i| i.function.as_str())
        .collect();
    assert_eq!(
        trapped,
        ["StorPortNotification", "KeBugCheckEx", "DbgPrint"]
    );
    match call(image.base() + CALL_BUGCHECK as usize, &[0xF1]) {
        Err(Fault::UnboundImport(u)) => {
            assert_eq!(
                (u.dll.as_str(), u.function.as_str()),
                ("ntoskrnl.exe", "KeBugCheckEx")
            );
            assert_eq!(u.return_address, image.base() + CALL_BUGCHECK as usize + 10);
            let caller = u.caller.as_ref().unwrap();
            assert_eq!(
                (caller.image.as_str(), caller.rva),
                ("traps.sys", CALL_BUGCHECK + 10)
            );
            assert!(
                Fault::UnboundImport(u)
                    .to_string()
                    .contains("ntoskrnl.exe!KeBugCheckEx")
            );
        }
        other => panic!("expected an unbound import, got {other:?}"),
    }
    // The bound import still works after the trap.
    assert_eq!(
        call(image.base() + CALL_INIT as usize, &[1, 1]).unwrap(),
        1001
    );
}

fn load_err(pe: &TestPe) -> LoadError {
    loader::load(&pe.build(), &resolve_all, false).unwrap_err()
}

#[test]
fn refuses_other_architectures_and_formats() {
    let mut pe = standard();
    pe.machine = 0x014C;
    assert!(matches!(load_err(&pe), LoadError::NotAmd64(0x014C)));
    let mut pe = standard();
    pe.magic = 0x10B;
    assert!(matches!(load_err(&pe), LoadError::NotPe32Plus));
    assert!(matches!(
        loader::load(b"MZ", &resolve_all, false),
        Err(LoadError::Malformed(_))
    ));
    assert!(matches!(
        loader::load(&[], &resolve_all, false),
        Err(LoadError::Malformed(_))
    ));
}

#[test]
fn refuses_writable_executable_sections() {
    let mut pe = standard();
    pe.sections[0].characteristics |= 0x8000_0000;
    let err = load_err(&pe);
    assert!(
        matches!(&err, LoadError::WritableExecutable { name } if name.starts_with(".text")),
        "{err}"
    );
    assert!(err.to_string().contains("W+X"));
}

#[test]
fn refuses_relocations_other_than_dir64() {
    let mut pe = standard();
    put(
        &mut pe.sections[4].data,
        8,
        &((3_u16 << 12) | 0x10).to_le_bytes(),
    );
    assert!(matches!(
        load_err(&pe),
        LoadError::UnsupportedRelocation {
            kind: 3,
            rva: 0x3010
        }
    ));
    // A DIR64 target outside the image.
    let mut pe = standard();
    put(&mut pe.sections[4].data, 0, &0x5FF0_u32.to_le_bytes());
    put(
        &mut pe.sections[4].data,
        8,
        &((10_u16 << 12) | 0xFFC).to_le_bytes(),
    );
    let err = load_err(&pe);
    assert!(err.to_string().contains("outside the image"), "{err}");
    // A block size that is not a multiple of 4.
    let mut pe = standard();
    put(&mut pe.sections[4].data, 4, &11_u32.to_le_bytes());
    assert!(matches!(load_err(&pe), LoadError::Malformed(_)));
}

#[test]
fn refuses_sections_and_directories_outside_the_image() {
    let mut pe = standard();
    pe.sections[2].virtual_size = 0x4000;
    let err = load_err(&pe);
    assert!(
        err.to_string().contains("overlaps") || err.to_string().contains("past SizeOfImage"),
        "{err}"
    );
    let mut pe = standard();
    pe.sections[4].virtual_size = 0x2000;
    assert!(load_err(&pe).to_string().contains("past SizeOfImage"));
    let mut pe = standard();
    pe.directories[1] = (0x5F00, 0x200);
    assert!(load_err(&pe).to_string().contains("data directory 1"));
    let mut pe = standard();
    pe.size_of_image = 0xFFFF_F000;
    assert!(load_err(&pe).to_string().contains("SizeOfImage"));
    let mut pe = standard();
    pe.section_alignment = 0x200;
    assert!(load_err(&pe).to_string().contains("SectionAlignment"));
    let mut pe = standard();
    pe.entry_rva = 0x2000;
    assert!(load_err(&pe).to_string().contains("entry point"));
    // Section data past the end of the file.
    let bytes = standard().build();
    let err = loader::load(&bytes[..bytes.len() - 0x100], &resolve_all, false).unwrap_err();
    assert!(
        err.to_string().contains("past the end of the file")
            || matches!(err, LoadError::Malformed(_)),
        "{err}"
    );
    // A .pdata entry that ends past the image.
    let mut pe = standard();
    put(&mut pe.sections[3].data, 4, &0x9000_u32.to_le_bytes());
    assert!(load_err(&pe).to_string().contains(".pdata entry 0"));
}

#[test]
fn stripped_relocations_cannot_move() {
    let mut pe = standard();
    pe.directories[5] = (0, 0);
    pe.file_characteristics |= 1; // IMAGE_FILE_RELOCS_STRIPPED
    assert!(
        load_err(&pe)
            .to_string()
            .contains("relocations are stripped")
    );
}

#[test]
fn corrupted_images_never_panic() {
    let good = standard().build();
    for len in (0..good.len()).step_by(7) {
        assert!(
            loader::load(&good[..len], &resolve_all, true).is_err(),
            "a {len}-byte prefix loaded"
        );
    }
    // Deterministic xorshift byte flips over the headers and every section.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut bytes = good.clone();
        for _ in 0..=next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] ^= 1 << (next() % 8);
        }
        // Either outcome is fine; what matters is no panic and no crash.
        let _ = loader::load(&bytes, &resolve_all, next() % 2 == 0);
    }
}
