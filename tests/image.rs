//! Checks of the shipped `vstor.sys` image: the properties Windows' loader,
//! Driver Verifier and the HLK expect of a WDM kernel driver.
//!
//! The image is the one `cargo make build` puts in the package folder
//! (`target/vstor/vstor.sys`, or the path in `VSTOR_SYS`); `cargo make test`
//! builds it before running the tests.

use std::path::PathBuf;

use object::LittleEndian as LE;
use object::pe;
use object::read::pe::{ImageNtHeaders, PeFile64};

/// Modules a kernel driver may import from. Anything else (a user-mode DLL
/// such as kernel32.dll or vcruntime140.dll) cannot be resolved in kernel mode.
const KERNEL_MODULES: &[&str] = &["storport.sys", "ntoskrnl.exe", "hal.dll"];

/// Largest image accepted: a RAM-disk miniport has no reason to be bigger.
const MAX_IMAGE_BYTES: usize = 128 * 1024;

fn package_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("vstor")
}

fn sys_path() -> PathBuf {
    std::env::var_os("VSTOR_SYS").map_or_else(|| package_dir().join("vstor.sys"), PathBuf::from)
}

fn read_image() -> Vec<u8> {
    let path = sys_path();
    std::fs::read(&path).unwrap_or_else(|error| {
        panic!(
            "cannot read the driver image {}: {error}. Build it first with `cargo make build` \
             (`cargo make test` does this before running the tests).",
            path.display()
        )
    })
}

fn parse(image: &[u8]) -> PeFile64<'_> {
    PeFile64::parse(image).expect("vstor.sys is not a well-formed PE32+ image")
}

/// The PE checksum as `CheckSumMappedFile` / the loader compute it: a 16-bit
/// one's-complement-style sum of the file with the checksum field taken as
/// zero, plus the file length. Written here because no maintained crate
/// exposes it.
fn pe_checksum(image: &[u8], checksum_offset: usize) -> u32 {
    let mut sum: u64 = 0;
    for (index, chunk) in image.chunks(2).enumerate() {
        let offset = index * 2;
        if offset == checksum_offset || offset == checksum_offset + 2 {
            continue;
        }
        let word = u64::from(chunk[0]) | chunk.get(1).map_or(0, |&high| u64::from(high) << 8);
        sum += word;
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum = (sum & 0xFFFF) + (sum >> 16);
    u32::try_from(sum).expect("folded sum fits in 16 bits")
        + u32::try_from(image.len()).expect("image under 4 GiB")
}

fn checksum_field_offset(image: &[u8]) -> usize {
    let dos = pe::ImageDosHeader::parse(image).expect("DOS header");
    let nt_offset = usize::try_from(dos.nt_headers_offset()).expect("offset fits");
    // Signature (4) + IMAGE_FILE_HEADER (20) + OptionalHeader.CheckSum at 64.
    nt_offset + 4 + 20 + 64
}

#[test]
fn image_is_an_amd64_pe32_plus_native_driver() {
    let image = read_image();
    let file = parse(&image);
    let nt = file.nt_headers();
    assert_eq!(
        nt.file_header().machine.get(LE),
        pe::IMAGE_FILE_MACHINE_AMD64
    );
    let optional = nt.optional_header();
    assert_eq!(optional.magic.get(LE), pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC);
    assert_eq!(
        optional.subsystem.get(LE),
        pe::IMAGE_SUBSYSTEM_NATIVE,
        "a kernel driver's subsystem is NATIVE"
    );
}

#[test]
fn image_is_marked_wdm_driver_nx_and_relocatable() {
    let image = read_image();
    let file = parse(&image);
    let characteristics = file
        .nt_headers()
        .optional_header()
        .dll_characteristics
        .get(LE);
    for (flag, name) in [
        (
            pe::IMAGE_DLLCHARACTERISTICS_WDM_DRIVER,
            "WDM_DRIVER (link with /DRIVER:WDM)",
        ),
        (pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT, "NX_COMPAT"),
        (pe::IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE, "DYNAMIC_BASE"),
    ] {
        assert_ne!(
            characteristics.0 & flag.0,
            0,
            "DllCharacteristics {characteristics:#06x} lacks {name}"
        );
    }
}

#[test]
fn entry_point_is_driver_entry() {
    let image = read_image();
    let file = parse(&image);
    let entry_rva = file
        .nt_headers()
        .optional_header()
        .address_of_entry_point
        .get(LE);
    let pdb_path = sys_path().with_extension("pdb");
    let pdb_file = std::fs::File::open(&pdb_path).unwrap_or_else(|error| {
        panic!(
            "cannot open {}: {error}; the build writes it beside the .sys",
            pdb_path.display()
        )
    });
    let mut pdb = pdb::PDB::open(pdb_file).expect("vstor.pdb is a valid PDB");
    let address_map = pdb.address_map().expect("PDB address map");
    let symbols = pdb.global_symbols().expect("PDB global symbols");
    let mut iter = symbols.iter();
    let mut driver_entry_rva = None;
    while let Some(symbol) = pdb::FallibleIterator::next(&mut iter).expect("PDB symbol stream") {
        if let Ok(pdb::SymbolData::Public(public)) = symbol.parse()
            && public.name.to_string() == "DriverEntry"
        {
            driver_entry_rva = public.offset.to_rva(&address_map).map(|rva| rva.0);
        }
    }
    let driver_entry_rva = driver_entry_rva.expect("the PDB names a public DriverEntry");
    assert_eq!(
        entry_rva, driver_entry_rva,
        "AddressOfEntryPoint {entry_rva:#x} is not DriverEntry ({driver_entry_rva:#x})"
    );
}

#[test]
fn imports_come_only_from_kernel_modules() {
    let image = read_image();
    let file = parse(&image);
    let table = file
        .import_table()
        .expect("import directory readable")
        .expect("a driver imports from the kernel");
    let mut descriptors = table.descriptors().expect("import descriptors");
    let mut modules = Vec::new();
    while let Some(descriptor) = descriptors.next().expect("import descriptor") {
        let name = table
            .name(descriptor.name.get(LE))
            .expect("import module name");
        modules.push(String::from_utf8_lossy(name).into_owned());
    }
    assert!(!modules.is_empty(), "no import descriptors");
    for module in &modules {
        assert!(
            KERNEL_MODULES
                .iter()
                .any(|allowed| module.eq_ignore_ascii_case(allowed)),
            "vstor.sys imports from {module}, which is not a kernel module \
             (allowed: {KERNEL_MODULES:?})"
        );
    }
    assert!(
        modules
            .iter()
            .any(|module| module.eq_ignore_ascii_case("storport.sys"))
    );
}

#[test]
fn pe_checksum_is_correct() {
    let image = read_image();
    let file = parse(&image);
    let stored = file.nt_headers().optional_header().check_sum.get(LE);
    let computed = pe_checksum(&image, checksum_field_offset(&image));
    assert_ne!(stored, 0, "the PE checksum is not set (link with /RELEASE)");
    assert_eq!(
        stored, computed,
        "stored PE checksum {stored:#x}, computed {computed:#x}"
    );
}

#[test]
fn no_section_is_writable_and_executable() {
    let image = read_image();
    let file = parse(&image);
    for section in file.section_table().iter() {
        let flags = section.characteristics.get(LE);
        let name = String::from_utf8_lossy(section.raw_name());
        assert!(
            flags.0 & pe::IMAGE_SCN_MEM_WRITE.0 == 0 || flags.0 & pe::IMAGE_SCN_MEM_EXECUTE.0 == 0,
            "section {name} is both writable and executable ({flags:#x})"
        );
    }
}

#[test]
fn image_is_under_128_kib() {
    let image = read_image();
    let file = parse(&image);
    let size_of_image = file.nt_headers().optional_header().size_of_image.get(LE);
    assert!(
        image.len() < MAX_IMAGE_BYTES,
        "file is {} bytes",
        image.len()
    );
    assert!(
        usize::try_from(size_of_image).expect("fits") < MAX_IMAGE_BYTES,
        "SizeOfImage is {size_of_image} bytes"
    );
}

#[test]
fn package_holds_the_inf() {
    let inf = std::fs::read_to_string(package_dir().join("vstor.inf"))
        .expect("the package folder holds vstor.inf next to vstor.sys");
    assert!(
        inf.contains("root\\vstor"),
        "the INF installs the root\\vstor device"
    );
}

#[test]
fn checksum_algorithm_matches_a_known_vector() {
    // Two words 0x0201 and 0x0403, no checksum field in range: sum 0x0604
    // plus length 4.
    assert_eq!(pe_checksum(&[1, 2, 3, 4], 100), 0x0604 + 4);
    // Carry folding: 0xFFFF + 0x0001 folds to 0x0001, plus length 4.
    assert_eq!(pe_checksum(&[0xFF, 0xFF, 0x01, 0x00], 100), 0x0001 + 4);
}
