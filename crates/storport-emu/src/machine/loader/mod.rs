//! The image loader for PE32+ AMD64 kernel images (`.sys`).
//!
//! It maps an image into the process the way the Windows loader does: headers and sections copied to a
//! fresh mapping at an address of the kernel's choosing, DIR64 base
//! relocations applied, imports bound by name into the import address table,
//! then per-section page protections (never writable and executable, and
//! only after the IAT, which may sit in read-only `.rdata`, is written).
//!
//! Input is untrusted: every offset, size and count is checked against the
//! file and the image, and anything out of place ends in a [`LoadError`]
//! that says what and where.

mod trap;

#[cfg(test)]
mod tests;

use std::io;

use object::LittleEndian as LE;
use object::pe;
use object::read::pe::{
    ExportTable, ExportTarget, ImageNtHeaders, ImageOptionalHeader, Import, ImportTable, PeFile64,
    RelocationBlockIterator,
};

use super::fault::{CodeLocation, FunctionRange};
use super::images::{self, ImageRecord, Registration, Section};
use super::memory::{Mapping, PAGE_SIZE, Perms};
use trap::TrapStubs;

/// Largest `SizeOfImage` the loader accepts (driver images are far smaller).
pub const MAX_IMAGE_SIZE: u32 = 256 << 20;
/// Most imports the loader binds.
const MAX_IMPORTS: usize = 1 << 16;

/// Why an image could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file is not a well-formed PE image.
    #[error("the image is not a well-formed PE file: {0}; nothing was loaded")]
    Malformed(String),
    /// The file is a PE32 (32-bit) image.
    #[error(
        "the image is a 32-bit PE32 image; only PE32+ images for x64 (optional header magic 0x20b) can be loaded"
    )]
    NotPe32Plus,
    /// The file targets another processor.
    #[error(
        "the image is built for machine type {0:#06x}; only AMD64 images (0x8664) can be loaded"
    )]
    NotAmd64(u16),
    /// A base relocation of a type x64 images do not use.
    #[error(
        "base relocation type {kind} at RVA {rva:#x} is not supported (only IMAGE_REL_BASED_DIR64 (10) and padding (0) are); the image was not loaded"
    )]
    UnsupportedRelocation {
        /// The relocation type.
        kind: u16,
        /// The RVA it applies to.
        rva: u32,
    },
    /// A section is both writable and executable.
    #[error(
        "section {name:?} is both writable and executable; the loader never maps memory W+X, so the image was not loaded"
    )]
    WritableExecutable {
        /// The section name.
        name: String,
    },
    /// Imports the resolver does not know, with missing imports not allowed.
    #[error(
        "{image} imports {} function(s) the emulator does not implement: {}; the image was not loaded (allow missing imports to bind them to trap stubs)",
        .missing.len(),
        .missing.join(", ")
    )]
    MissingImports {
        /// The image name.
        image: String,
        /// Every missing import as `dll!function` (`dll!#ordinal` for imports by ordinal).
        missing: Vec<String>,
    },
    /// The operating system refused memory for the image.
    #[error("mapping the image into memory failed: {0}")]
    Map(#[from] io::Error),
}

fn malformed(msg: impl Into<String>) -> LoadError {
    LoadError::Malformed(msg.into())
}

/// One bound import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportBinding {
    /// The DLL name as the image spells it.
    pub dll: String,
    /// The function name (`#N` for an import by ordinal).
    pub function: String,
    /// Address of the IAT slot.
    pub iat_address: usize,
    /// Address written into the slot.
    pub target: usize,
    /// Whether `target` is a trap stub (the import was missing).
    pub trapped: bool,
}

/// A mapped, relocated, bound and protected image. Unregistered and
/// unmapped on drop: no code of it may still be running or referenced.
#[derive(Debug)]
pub struct LoadedImage {
    // Drop order matters: unregister, then the trap stubs, then the memory.
    registration: Registration,
    #[expect(
        dead_code,
        reason = "owned for its lifetime only: IAT slots point into the stubs"
    )]
    traps: Option<TrapStubs>,
    mapping: Mapping,
    entry_point: Option<usize>,
    exports: Vec<(String, u32)>,
    imports: Vec<ImportBinding>,
}

impl LoadedImage {
    /// The image name given at load time.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.registration.record().name
    }

    /// Address the image is mapped at.
    #[must_use]
    pub const fn base(&self) -> usize {
        self.mapping.addr()
    }

    /// `SizeOfImage` rounded up to whole pages.
    #[must_use]
    pub const fn size(&self) -> usize {
        self.mapping.len()
    }

    /// Address of the entry point (`DriverEntry`), if the image has one.
    #[must_use]
    pub const fn entry_point(&self) -> Option<usize> {
        self.entry_point
    }

    /// The sections with their applied protections, in address order.
    #[must_use]
    pub fn sections(&self) -> &[Section] {
        &self.registration.record().sections
    }

    /// The `.pdata` function ranges, sorted by start.
    #[must_use]
    pub fn functions(&self) -> &[FunctionRange] {
        &self.registration.record().functions
    }

    /// Names the section and `.pdata` function holding `addr`.
    #[must_use]
    pub fn locate(&self, addr: usize) -> Option<CodeLocation> {
        self.registration.record().locate(addr)
    }

    /// Address of the export `name`, if the image exports it (forwarders are not resolved).
    #[must_use]
    pub fn export(&self, name: &str) -> Option<usize> {
        self.exports
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, rva)| self.base() + rva as usize)
    }

    /// Every import with the address it was bound to.
    #[must_use]
    pub fn imports(&self) -> &[ImportBinding] {
        &self.imports
    }
}

/// Loads `image` under the name `"driver"`; see [`load_named`].
///
/// # Errors
///
/// See [`load_named`].
pub fn load(
    image: &[u8],
    resolve: &dyn Fn(&str, &str) -> Option<usize>,
    allow_missing: bool,
) -> Result<LoadedImage, LoadError> {
    load_named("driver", image, resolve, allow_missing)
}

/// Loads `image` and registers it under `name` for fault reports.
///
/// `resolve(dll, function)` returns the address of the emulated export for
/// an import, or `None`; `dll` is passed in ASCII lower case (DLL names
/// compare case-insensitively on Windows). Imports by ordinal are passed as
/// `#N`. When some imports are unknown the load fails with every one of them
/// listed, unless `allow_missing` is set: then each is bound to a trap stub
/// that ends the driver call with [`super::Fault::UnboundImport`] when called.
///
/// # Errors
///
/// [`LoadError`] when the image is malformed, not PE32+ AMD64, uses an
/// unsupported relocation type, has a writable and executable section, has
/// unresolved imports (without `allow_missing`), or cannot be mapped.
pub fn load_named(
    name: &str,
    image: &[u8],
    resolve: &dyn Fn(&str, &str) -> Option<usize>,
    allow_missing: bool,
) -> Result<LoadedImage, LoadError> {
    match object::read::pe::optional_header_magic(image) {
        Ok(pe::IMAGE_NT_OPTIONAL_HDR32_MAGIC) => return Err(LoadError::NotPe32Plus),
        Ok(_) => {}
        Err(e) => return Err(malformed(format!("the headers cannot be parsed ({e})"))),
    }
    let file = PeFile64::parse(image)
        .map_err(|e| malformed(format!("the headers cannot be parsed ({e})")))?;
    let nt = file.nt_headers();
    let machine = nt.file_header().machine.get(LE).0;
    if machine != pe::IMAGE_FILE_MACHINE_AMD64.0 {
        return Err(LoadError::NotAmd64(machine));
    }
    let opt = nt.optional_header();
    let layout = Layout::check(&file, image.len())?;
    let headers = opt.size_of_headers() as usize;
    let mut buf = layout.image_buffer(image, headers);

    let mapping = Mapping::new(buf.len())?;
    let base = mapping.addr();
    let directory = |index| layout.directory(&file, index);
    relocate(&file, &layout, &mut buf, base)?;

    let pending = match directory(pe::IMAGE_DIRECTORY_ENTRY_IMPORT)? {
        Some((rva, _)) => read_imports(&buf, rva, layout.size_of_image)?,
        None => Vec::new(),
    };
    let (imports, traps) = bind_imports(name, &mut buf, base, pending, resolve, allow_missing)?;

    let exports = match directory(pe::IMAGE_DIRECTORY_ENTRY_EXPORT)? {
        Some((rva, size)) => read_exports(
            &buf[rva as usize..(rva + size) as usize],
            rva,
            layout.size_of_image,
        )?,
        None => Vec::new(),
    };
    let functions = match directory(pe::IMAGE_DIRECTORY_ENTRY_EXCEPTION)? {
        Some((rva, size)) => read_pdata(
            &buf[rva as usize..(rva + size) as usize],
            layout.size_of_image,
        )?,
        None => Vec::new(),
    };

    let entry_rva = opt.address_of_entry_point();
    let entry_point = if entry_rva == 0 {
        None
    } else if layout
        .sections
        .iter()
        .any(|s| s.perms.execute && entry_rva >= s.rva && entry_rva - s.rva < s.mem_size)
    {
        Some(base + entry_rva as usize)
    } else {
        return Err(malformed(format!(
            "the entry point RVA {entry_rva:#x} is not inside an executable section"
        )));
    };

    // Everything is written: copy, then protect.
    mapping.write(0, &buf)?;
    protect(&mapping, &layout, headers)?;

    let sections = layout
        .sections
        .iter()
        .map(|s| Section {
            name: s.name.clone(),
            rva: s.rva,
            size: s.mem_size,
            perms: s.perms,
        })
        .collect();
    let registration = images::register(ImageRecord {
        name: name.to_owned(),
        base,
        size: mapping.len(),
        sections,
        functions,
    });
    Ok(LoadedImage {
        registration,
        traps,
        mapping,
        entry_point,
        exports,
        imports,
    })
}

/// Applies the final page protections: headers read-only, each section as
/// its flags say, gaps inaccessible.
fn protect(mapping: &Mapping, layout: &Layout, headers: usize) -> io::Result<()> {
    mapping.protect(0, mapping.len(), Perms::NONE)?;
    mapping.protect(
        0,
        headers.next_multiple_of(PAGE_SIZE).min(mapping.len()),
        Perms::READ,
    )?;
    for s in &layout.sections {
        let len = (s.mem_size as usize)
            .next_multiple_of(PAGE_SIZE)
            .min(mapping.len() - s.rva as usize);
        mapping.protect(s.rva as usize, len, s.perms)?;
    }
    Ok(())
}

/// Resolves every import and writes the IAT slots in `buf`.
fn bind_imports(
    name: &str,
    buf: &mut [u8],
    base: usize,
    pending: Vec<PendingImport>,
    resolve: &dyn Fn(&str, &str) -> Option<usize>,
    allow_missing: bool,
) -> Result<(Vec<ImportBinding>, Option<TrapStubs>), LoadError> {
    let mut targets = Vec::with_capacity(pending.len());
    let mut missing = Vec::new();
    for p in &pending {
        let target = resolve(&p.dll.to_ascii_lowercase(), &p.function);
        if target.is_none() {
            missing.push((p.dll.to_ascii_lowercase(), p.function.clone()));
        }
        targets.push(target);
    }
    let traps = if missing.is_empty() {
        None
    } else if allow_missing {
        Some(TrapStubs::new(name, missing)?)
    } else {
        return Err(LoadError::MissingImports {
            image: name.to_owned(),
            missing: missing.iter().map(|(d, f)| format!("{d}!{f}")).collect(),
        });
    };
    let mut imports = Vec::with_capacity(pending.len());
    let mut trap_index = 0;
    for (p, target) in pending.into_iter().zip(targets) {
        let (target, trapped) = match (target, &traps) {
            (Some(t), _) => (t, false),
            (None, Some(traps)) => {
                trap_index += 1;
                (traps.entry(trap_index - 1), true)
            }
            (None, None) => unreachable_missing()?,
        };
        let slot = p.iat_rva as usize;
        buf[slot..slot + 8].copy_from_slice(&(target as u64).to_le_bytes());
        imports.push(ImportBinding {
            dll: p.dll,
            function: p.function,
            iat_address: base + slot,
            target,
            trapped,
        });
    }
    Ok((imports, traps))
}

fn unreachable_missing() -> Result<(usize, bool), LoadError> {
    Err(malformed("an import was left unbound"))
}

/// A section as the loader will map it.
struct SectionLayout {
    name: String,
    rva: u32,
    mem_size: u32,
    raw_offset: u32,
    raw_size: u32,
    perms: Perms,
}

/// The checked geometry of an image.
struct Layout {
    size_of_image: u32,
    sections: Vec<SectionLayout>,
}

impl Layout {
    /// The RVA and size of data directory `index`, if present and inside the image.
    fn directory(
        &self,
        file: &PeFile64<'_>,
        index: usize,
    ) -> Result<Option<(u32, u32)>, LoadError> {
        let Some(dir) = file.data_directory(index) else {
            return Ok(None);
        };
        let (rva, size) = (dir.virtual_address.get(LE), dir.size.get(LE));
        if rva == 0 || size == 0 {
            return Ok(None);
        }
        if u64::from(rva) + u64::from(size) > u64::from(self.size_of_image) {
            return Err(malformed(format!(
                "data directory {index} ({rva:#x}..+{size:#x}) extends past SizeOfImage {:#x}",
                self.size_of_image
            )));
        }
        Ok(Some((rva, size)))
    }

    /// The image as it will be mapped: headers and section contents at their
    /// RVAs, zeros elsewhere. Offsets were checked by [`Layout::check`].
    fn image_buffer(&self, image: &[u8], headers: usize) -> Vec<u8> {
        let mut buf = vec![0_u8; self.size_of_image as usize];
        buf[..headers].copy_from_slice(&image[..headers]);
        for s in &self.sections {
            let copy = s.raw_size.min(s.mem_size) as usize;
            let from = s.raw_offset as usize;
            buf[s.rva as usize..s.rva as usize + copy].copy_from_slice(&image[from..from + copy]);
        }
        buf
    }

    fn check(file: &PeFile64<'_>, file_len: usize) -> Result<Self, LoadError> {
        let opt = file.nt_headers().optional_header();
        let size_of_image = opt.size_of_image();
        if size_of_image == 0 || size_of_image > MAX_IMAGE_SIZE {
            return Err(malformed(format!(
                "SizeOfImage {size_of_image:#x} is outside 1..={MAX_IMAGE_SIZE:#x} bytes"
            )));
        }
        let alignment = opt.section_alignment();
        if alignment == 0 || !(alignment as usize).is_multiple_of(PAGE_SIZE) {
            return Err(malformed(format!(
                "SectionAlignment {alignment:#x} is not a multiple of the 4096-byte page, so sections cannot get their own protections"
            )));
        }
        let headers = opt.size_of_headers();
        if headers == 0 || headers > size_of_image || headers as usize > file_len {
            return Err(malformed(format!(
                "SizeOfHeaders {headers:#x} is zero or larger than the image ({size_of_image:#x}) or the file ({file_len:#x})"
            )));
        }
        let mut sections = Vec::new();
        let mut next_free = (headers as usize).next_multiple_of(PAGE_SIZE) as u64;
        for header in file.section_table().iter() {
            let raw_name = header.raw_name();
            let name = String::from_utf8_lossy(raw_name).into_owned();
            let rva = header.virtual_address.get(LE);
            let virtual_size = header.virtual_size.get(LE);
            let raw_size = header.size_of_raw_data.get(LE);
            let raw_offset = header.pointer_to_raw_data.get(LE);
            let flags = header.characteristics.get(LE).0;
            let mem_size = if virtual_size == 0 {
                raw_size
            } else {
                virtual_size
            };
            if !(rva as usize).is_multiple_of(PAGE_SIZE) {
                return Err(malformed(format!(
                    "section {name:?} starts at RVA {rva:#x}, which is not page-aligned"
                )));
            }
            if u64::from(rva) < next_free {
                return Err(malformed(format!(
                    "section {name:?} at RVA {rva:#x} overlaps the headers or the previous section (sections must be in ascending order)"
                )));
            }
            let end = u64::from(rva) + u64::from(mem_size);
            if end > u64::from(size_of_image) {
                return Err(malformed(format!(
                    "section {name:?} ({rva:#x}..{end:#x}) extends past SizeOfImage {size_of_image:#x}"
                )));
            }
            // The header's whole raw range must be in the file, as the
            // Windows loader requires, even where only part of it is copied.
            if raw_size > 0 && u64::from(raw_offset) + u64::from(raw_size) > file_len as u64 {
                return Err(malformed(format!(
                    "the data of section {name:?} (file offset {raw_offset:#x}, {raw_size:#x} bytes) lies past the end of the file ({file_len:#x} bytes)"
                )));
            }
            let perms = Perms {
                // x64 page tables have no read permission bit: every mapped
                // kernel page is readable.
                read: true,
                write: flags & pe::IMAGE_SCN_MEM_WRITE.0 != 0,
                execute: flags & pe::IMAGE_SCN_MEM_EXECUTE.0 != 0,
            };
            if perms.write && perms.execute {
                return Err(LoadError::WritableExecutable { name });
            }
            next_free = end.next_multiple_of(PAGE_SIZE as u64);
            sections.push(SectionLayout {
                name,
                rva,
                mem_size,
                raw_offset,
                raw_size,
                perms,
            });
        }
        Ok(Self {
            size_of_image,
            sections,
        })
    }
}

/// Applies the base relocations for a mapping at `base`.
fn relocate(
    file: &PeFile64<'_>,
    layout: &Layout,
    buf: &mut [u8],
    base: usize,
) -> Result<(), LoadError> {
    let nt = file.nt_headers();
    let image_base = nt.optional_header().image_base();
    let delta = (base as u64).wrapping_sub(image_base);
    match layout.directory(file, pe::IMAGE_DIRECTORY_ENTRY_BASERELOC)? {
        Some((rva, size)) => {
            let relocs = buf[rva as usize..(rva + size) as usize].to_vec();
            apply_relocations(buf, &relocs, delta)
        }
        None if delta != 0
            && nt.file_header().characteristics.get(LE).0 & pe::IMAGE_FILE_RELOCS_STRIPPED.0
                != 0 =>
        {
            Err(malformed(format!(
                "relocations are stripped, so the image can only run at its ImageBase {image_base:#x}, which is not available"
            )))
        }
        None => Ok(()),
    }
}

fn apply_relocations(buf: &mut [u8], relocs: &[u8], delta: u64) -> Result<(), LoadError> {
    let mut blocks = RelocationBlockIterator::new(relocs);
    while let Some(block) = blocks
        .next()
        .map_err(|e| malformed(format!("the base relocation table is corrupt ({e})")))?
    {
        for reloc in block {
            let rva = reloc.virtual_address;
            match reloc.typ {
                pe::IMAGE_REL_BASED_ABSOLUTE => {}
                pe::IMAGE_REL_BASED_DIR64 => {
                    let at = rva as usize;
                    let slot = buf
                        .get_mut(at..at.saturating_add(8))
                        .filter(|s| s.len() == 8)
                        .ok_or_else(|| {
                            malformed(format!(
                                "a DIR64 relocation targets RVA {rva:#x}, outside the image"
                            ))
                        })?;
                    let mut value = [0; 8];
                    value.copy_from_slice(slot);
                    let value = u64::from_le_bytes(value).wrapping_add(delta);
                    slot.copy_from_slice(&value.to_le_bytes());
                }
                other => return Err(LoadError::UnsupportedRelocation { kind: other.0, rva }),
            }
        }
    }
    Ok(())
}

/// An import found in the image, not yet bound.
struct PendingImport {
    dll: String,
    function: String,
    iat_rva: u32,
}

fn read_imports(
    buf: &[u8],
    import_rva: u32,
    size_of_image: u32,
) -> Result<Vec<PendingImport>, LoadError> {
    let bad = |what: &str, e: object::read::Error| {
        malformed(format!("the import table is corrupt: {what} ({e})"))
    };
    let table = ImportTable::new(buf, 0, import_rva);
    let mut descriptors = table.descriptors().map_err(|e| bad("descriptors", e))?;
    let mut out = Vec::new();
    while let Some(desc) = descriptors.next().map_err(|e| bad("descriptor", e))? {
        let dll = table
            .name(desc.name.get(LE))
            .map_err(|e| bad("DLL name", e))?;
        let dll = String::from_utf8_lossy(dll).into_owned();
        let first_thunk = desc.first_thunk.get(LE);
        let original = desc.original_first_thunk.get(LE);
        let lookup = if original == 0 { first_thunk } else { original };
        let mut thunks = table.thunks(lookup).map_err(|e| bad("lookup table", e))?;
        let mut index: u32 = 0;
        while let Some(thunk) = thunks
            .next::<pe::ImageNtHeaders64>()
            .map_err(|e| bad("lookup entry", e))?
        {
            let function = match table
                .import::<pe::ImageNtHeaders64>(thunk)
                .map_err(|e| bad("import name", e))?
            {
                Import::Name(_, name) => String::from_utf8_lossy(name).into_owned(),
                Import::Ordinal(ordinal) => format!("#{ordinal}"),
            };
            let iat_rva = index
                .checked_mul(8)
                .and_then(|o| first_thunk.checked_add(o))
                .filter(|&r| u64::from(r) + 8 <= u64::from(size_of_image))
                .ok_or_else(|| {
                    malformed(format!(
                        "the IAT slot for {dll}!{function} lies outside the image"
                    ))
                })?;
            out.push(PendingImport {
                dll: dll.clone(),
                function,
                iat_rva,
            });
            if out.len() > MAX_IMPORTS {
                return Err(malformed(format!(
                    "the import table lists more than {MAX_IMPORTS} imports"
                )));
            }
            index += 1;
        }
    }
    Ok(out)
}

fn read_exports(dir: &[u8], rva: u32, size_of_image: u32) -> Result<Vec<(String, u32)>, LoadError> {
    let bad = |e: object::read::Error| malformed(format!("the export table is corrupt ({e})"));
    let table = ExportTable::parse(dir, rva).map_err(bad)?;
    let mut out = Vec::new();
    for export in table.exports().map_err(bad)? {
        if let (Some(name), ExportTarget::Address(address)) = (export.name, export.target) {
            if address >= size_of_image {
                return Err(malformed(format!(
                    "export {} points outside the image ({address:#x})",
                    String::from_utf8_lossy(name)
                )));
            }
            out.push((String::from_utf8_lossy(name).into_owned(), address));
        }
    }
    Ok(out)
}

fn read_pdata(data: &[u8], size_of_image: u32) -> Result<Vec<FunctionRange>, LoadError> {
    let mut functions = Vec::with_capacity(data.len() / 12);
    for (i, entry) in data.chunks_exact(12).enumerate() {
        let word =
            |k: usize| u32::from_le_bytes([entry[k], entry[k + 1], entry[k + 2], entry[k + 3]]);
        let f = FunctionRange {
            begin_rva: word(0),
            end_rva: word(4),
            unwind_rva: word(8),
        };
        if f.begin_rva == 0 && f.end_rva == 0 {
            continue;
        }
        if f.begin_rva >= f.end_rva || f.end_rva > size_of_image {
            return Err(malformed(format!(
                ".pdata entry {i} ({:#x}..{:#x}) is empty or extends past SizeOfImage {size_of_image:#x}",
                f.begin_rva, f.end_rva
            )));
        }
        functions.push(f);
    }
    functions.sort_by_key(|f| f.begin_rva);
    Ok(functions)
}
