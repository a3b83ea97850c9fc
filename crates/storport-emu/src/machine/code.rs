//! Executable pages the machine generates: import trap stubs, and small
//! hand-assembled routines (tests use them to run exactly the instructions a
//! driver would, such as `mov cr8, rax`).

use std::io;

use super::images::{self, ImageRecord, Registration, Section};
use super::memory::{Mapping, Perms};

/// Machine code copied into fresh read+execute pages and registered with the
/// machine like a small image, so faults and timeouts inside it are reported
/// as driver code. Unmapped on drop.
#[derive(Debug)]
pub struct CodePage {
    // Field order: unregister before unmapping.
    registration: Registration,
    mapping: Mapping,
}

impl CodePage {
    /// Copies `code` into new pages, makes them read+execute (never writable)
    /// and registers them under `name`.
    ///
    /// # Errors
    ///
    /// The `mmap`/`mprotect` error when the pages cannot be created.
    pub fn new(name: &str, code: &[u8]) -> io::Result<Self> {
        let mapping = Mapping::new(code.len())?;
        mapping.write(0, code)?;
        mapping.protect(0, mapping.len(), Perms::READ_EXECUTE)?;
        let size = u32::try_from(mapping.len()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "code page larger than 4 GiB")
        })?;
        let registration = images::register(ImageRecord {
            name: name.to_owned(),
            base: mapping.addr(),
            size: mapping.len(),
            sections: vec![Section {
                name: ".text".to_owned(),
                rva: 0,
                size,
                perms: Perms::READ_EXECUTE,
            }],
            functions: Vec::new(),
        });
        Ok(Self {
            registration,
            mapping,
        })
    }

    /// Address of the first byte of the code.
    #[must_use]
    pub const fn addr(&self) -> usize {
        self.mapping.addr()
    }

    /// The name the page was registered under.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.registration.record().name
    }
}
