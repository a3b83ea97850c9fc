//! Bad input never panics or hangs storemu, on the real `vstor.sys`: every
//! truncation, bit flips over the headers and the data the loader reads,
//! and targeted corruptions (absurd relocation blocks, a relocation type the
//! loader does not apply, an import from an unknown module, section data past
//! the end of the file, a huge section count). Each is refused with a
//! sentence naming the problem, and `storemu run` turns it into a load error
//! (exit status 2) naming the file; so does an INF with a syntax error.
//!
//! The synthetic images of `crates/storport-emu/tests/machine_loader.rs`
//! cover each loader rule in isolation; this file runs the same defences on
//! the image that ships.

mod common;

use std::path::Path;

use object::LittleEndian as LE;
use object::pe::{IMAGE_DIRECTORY_ENTRY_BASERELOC, IMAGE_DIRECTORY_ENTRY_IMPORT};
use object::read::pe::{ImageNtHeaders, PeFile64};
use storport_emu::cli::{self, RunArgs};
use storport_emu::machine::loader::{self, LoadError};
use storport_emu::port::exports;

/// Where things are in the real image, found with the `object` crate.
struct Layout {
    /// File offset of `NumberOfSections`.
    number_of_sections: usize,
    /// File offset of the first section header.
    section_headers: usize,
    /// File offset of the first base relocation block.
    relocations: usize,
    /// File offset of the first import descriptor's `Name` RVA field.
    first_import_name: usize,
    /// File offset of the first imported module's name.
    first_import_module: usize,
}

/// The file offset of `rva`.
fn offset_of(file: &PeFile64<'_>, rva: u32) -> usize {
    let (offset, _) = file
        .section_table()
        .pe_file_range_at(rva)
        .expect("the RVA is inside a section's file data");
    offset as usize
}

fn layout(bytes: &[u8]) -> Layout {
    let file = PeFile64::parse(bytes).expect("vstor.sys parses");
    let dos = u32::from_le_bytes(bytes[0x3C..0x40].try_into().expect("e_lfanew")) as usize;
    let headers = file.nt_headers();
    let optional_size = usize::from(headers.file_header().size_of_optional_header.get(LE));
    let directory = |index: usize| {
        file.data_directory(index)
            .unwrap_or_else(|| panic!("vstor.sys has data directory {index}"))
            .virtual_address
            .get(LE)
    };
    let import = offset_of(&file, directory(IMAGE_DIRECTORY_ENTRY_IMPORT));
    let module_rva = u32::from_le_bytes(bytes[import + 12..import + 16].try_into().expect("Name"));
    Layout {
        number_of_sections: dos + 4 + 2,
        section_headers: dos + 4 + 20 + optional_size,
        relocations: offset_of(&file, directory(IMAGE_DIRECTORY_ENTRY_BASERELOC)),
        first_import_name: import + 12,
        first_import_module: offset_of(&file, module_rva),
    }
}

fn load(bytes: &[u8]) -> Result<loader::LoadedImage, LoadError> {
    loader::load_named("vstor.sys", bytes, &exports::resolve, false)
}

/// The error loading `bytes` ends in; a load is a test failure.
fn refused(bytes: &[u8], what: &str) -> LoadError {
    match load(bytes) {
        Ok(_) => panic!("{what}: the corrupted image loaded"),
        Err(error) => error,
    }
}

/// An error a user can act on: a sentence naming the problem.
fn assert_sentence(error: &LoadError, names: &[&str], what: &str) {
    let text = error.to_string();
    assert!(
        text.len() > 20 && names.iter().any(|name| text.contains(name)),
        "{what}: the error names the problem ({names:?}): {text}"
    );
}

#[test]
fn the_real_image_loads_and_its_layout_is_found() {
    let bytes = common::image_bytes();
    load(&bytes).expect("vstor.sys loads");
    let layout = layout(&bytes);
    let module = &bytes[layout.first_import_module..];
    let module = &module[..module.iter().position(|&b| b == 0).expect("terminated")];
    let module = String::from_utf8_lossy(module).to_ascii_lowercase();
    assert!(
        ["storport.sys", "ntoskrnl.exe", "hal.dll"].contains(&module.as_str()),
        "the first import descriptor names a kernel module: {module}"
    );
    let block = u32::from_le_bytes(
        bytes[layout.relocations + 4..layout.relocations + 8]
            .try_into()
            .expect("SizeOfBlock"),
    );
    assert!(
        block >= 8 && block % 4 == 0,
        "the first relocation block is well formed: {block}"
    );
}

#[test]
fn every_truncation_of_the_real_image_is_refused_with_a_reason() {
    let bytes = common::image_bytes();
    // Bytes past the last section's data (a signature, say) are not read.
    let file = PeFile64::parse(&*bytes).expect("vstor.sys parses");
    let sections_end = file
        .section_table()
        .iter()
        .map(|section| {
            section.pointer_to_raw_data.get(LE) as usize + section.size_of_raw_data.get(LE) as usize
        })
        .max()
        .expect("sections");
    for len in (0..sections_end).step_by(61) {
        let error = refused(&bytes[..len], &format!("a {len}-byte prefix of vstor.sys"));
        assert_sentence(
            &error,
            &["not a well-formed PE file", "past the end", "outside"],
            &format!("{len}-byte prefix"),
        );
    }
}

#[test]
fn bit_flips_in_the_real_images_headers_relocations_and_imports_never_panic() {
    let bytes = common::image_bytes();
    let layout = layout(&bytes);
    let regions = [
        (0_usize, 0x400_usize),
        (layout.relocations, 0x80),
        (layout.first_import_name - 12, 0x60),
        (layout.first_import_module, 0x20),
    ];
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut loaded, mut refused) = (0, 0);
    for round in 0..4000_u64 {
        let mut corrupt = bytes.clone();
        let (start, len) = regions[usize::try_from(round % 4).expect("small")];
        for _ in 0..=next() % 3 {
            let at = start
                + usize::try_from(next() % u64::try_from(len).expect("small")).expect("small");
            if at < corrupt.len() {
                corrupt[at] ^= 1 << (next() % 8);
            }
        }
        match load(&corrupt) {
            Ok(_) => loaded += 1,
            Err(error) => {
                assert!(
                    error.to_string().len() > 20,
                    "round {round}: an error sentence: {error}"
                );
                refused += 1;
            }
        }
    }
    println!("bit flips in vstor.sys: {loaded} loaded, {refused} refused, none panicked");
    assert!(refused > 0, "some corruptions are refused");
}

#[test]
fn absurd_relocation_blocks_are_refused() {
    let bytes = common::image_bytes();
    let layout = layout(&bytes);
    let at = layout.relocations;
    for size in [0x7FFF_FFFF_u32, 3, 0xFFFF_FFFC] {
        let mut corrupt = bytes.clone();
        corrupt[at + 4..at + 8].copy_from_slice(&size.to_le_bytes());
        let error = refused(&corrupt, &format!("SizeOfBlock {size:#x}"));
        assert_sentence(
            &error,
            &["reloc", "not a well-formed PE file"],
            &format!("SizeOfBlock {size:#x}"),
        );
    }
    // The first entry as IMAGE_REL_BASED_HIGHLOW (3), which x64 images never use.
    let mut corrupt = bytes.clone();
    let entry = u16::from_le_bytes([corrupt[at + 8], corrupt[at + 9]]);
    corrupt[at + 8..at + 10].copy_from_slice(&((3 << 12) | (entry & 0x0FFF)).to_le_bytes());
    let error = refused(&corrupt, "a HIGHLOW relocation is refused");
    assert!(
        matches!(error, LoadError::UnsupportedRelocation { kind: 3, .. }),
        "{error}"
    );
    // A block whose page lies far outside the image.
    let mut corrupt = bytes;
    corrupt[at..at + 4].copy_from_slice(&0x7FFF_0000_u32.to_le_bytes());
    let error = refused(&corrupt, "a relocation outside the image is refused");
    assert_sentence(&error, &["outside the image", "past"], "relocation page");
}

#[test]
fn an_import_from_an_unknown_module_is_named() {
    let bytes = common::image_bytes();
    let layout = layout(&bytes);
    let mut corrupt = bytes;
    let name = &mut corrupt[layout.first_import_module..];
    let len = name
        .iter()
        .position(|&b| b == 0)
        .expect("a terminated name");
    name[..len].fill(b'q');
    let error = refused(&corrupt, "an unknown module is refused");
    assert!(matches!(error, LoadError::MissingImports { .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains(&"q".repeat(len)), "names the module: {text}");
    // The module name's RVA pointing outside the image.
    let mut corrupt = common::image_bytes();
    corrupt[layout.first_import_name..layout.first_import_name + 4]
        .copy_from_slice(&0x7FFF_FFF0_u32.to_le_bytes());
    let error = refused(&corrupt, "a module name outside the image is refused");
    assert!(error.to_string().len() > 20, "{error}");
}

#[test]
fn section_data_past_the_end_and_a_huge_section_count_are_refused() {
    let bytes = common::image_bytes();
    let layout = layout(&bytes);
    // PointerToRawData of the first section beyond the file.
    let mut corrupt = bytes.clone();
    let raw = layout.section_headers + 20;
    corrupt[raw..raw + 4].copy_from_slice(&0x7FFF_0000_u32.to_le_bytes());
    let error = refused(&corrupt, "section data past the file is refused");
    assert_sentence(
        &error,
        &["past the end", "not a well-formed PE file"],
        "PointerToRawData",
    );
    let mut corrupt = bytes;
    let count = layout.number_of_sections;
    corrupt[count..count + 2].copy_from_slice(&0xFFFF_u16.to_le_bytes());
    let error = refused(&corrupt, "65535 sections are refused");
    assert_sentence(
        &error,
        &["not a well-formed PE file", "section"],
        "NumberOfSections",
    );
}

fn run_args(driver: &Path, inf: &Path) -> RunArgs {
    RunArgs {
        driver: driver.to_owned(),
        inf: Some(inf.to_owned()),
        set: Vec::new(),
        json: true,
        allow_missing: false,
        watchdog_ms: cli::DEFAULT_WATCHDOG_MS,
        srb_timeout_ms: cli::DEFAULT_SRB_TIMEOUT_MS,
        storport_lock_irql: storport_emu::port::locks::StorPortLockIrql::Strict,
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vstor-reliability-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir.join(name)
}

#[test]
fn storemu_run_reports_a_truncated_image_as_a_load_error_naming_the_file() {
    let bytes = common::image_bytes();
    let truncated = scratch("truncated.sys");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("written");
    let inf = common::root().join("inf").join("vstor.inf");
    let report = cli::run(&run_args(&truncated, &inf), &[]);
    assert_eq!(report.outcome, "load-error");
    assert_eq!(report.exit_status(), cli::EXIT_LOAD_ERROR);
    let message = report.load_error.expect("a message");
    assert!(
        message.contains("truncated.sys") && message.contains("cannot be loaded"),
        "{message}"
    );
    let _ = std::fs::remove_file(truncated);
}

#[test]
fn storemu_run_reports_an_inf_syntax_error_with_its_line() {
    let inf = scratch("broken.inf");
    std::fs::write(
        &inf,
        "[Version]\nSignature=\"$WINDOWS NT$\"\n[Strings\nA=\"b\"\n",
    )
    .expect("written");
    let report = cli::run(&run_args(&common::readable_sys_path(), &inf), &[]);
    assert_eq!(report.outcome, "load-error");
    let message = report.load_error.expect("a message");
    assert!(
        message.contains("broken.inf")
            && message.contains("line 3")
            && message.contains("no closing `]`"),
        "{message}"
    );
    let _ = std::fs::remove_file(inf);
}
