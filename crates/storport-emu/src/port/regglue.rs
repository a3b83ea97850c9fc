//! The port's side of Storport's registry API.
//!
//! One registry buffer per miniport instance, and reads and writes of
//! `Parameters\Device` (global) or `Parameters\Device<N>` (this adapter)
//! under the service key.
//!
//! Sources: "StorPortAllocateRegistryBuffer", "StorPortFreeRegistryBuffer",
//! "StorPortRegistryRead", "StorPortRegistryWrite" (storport.h). Values are
//! stored as Windows stores them: strings in UTF-16, converted to ANSI on
//! read and from ANSI on write.

use std::collections::BTreeMap;

use super::pool::Pool;

/// Pool tag of registry buffers (`'SpRg'`).
const REGISTRY_BUFFER_TAG: u32 = u32::from_le_bytes(*b"SpRg");

/// Why a read returned FALSE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The buffer is too small; this many bytes are needed (`*BufferLength` out).
    TooSmall(u32),
    /// Any other failure (`*BufferLength` = 0): value missing, wrong type.
    Other,
}

/// Why a free was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// No buffer is allocated and this address was the one freed last.
    DoubleFree,
    /// The address is not the instance's registry buffer.
    Foreign,
}

/// A registry value: `REG_*` type and the bytes as Windows stores them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// `REG_*` type.
    pub reg_type: u32,
    /// Stored bytes (UTF-16LE with terminators for string types).
    pub data: Vec<u8>,
}

/// The registry as the port sees it, plus the instance's registry buffer.
#[derive(Debug, Default)]
pub struct RegistryPort {
    /// Values keyed by (upper-cased key path relative to the service key, upper-cased name).
    values: BTreeMap<(String, String), (String, String, Value)>,
    /// Service name (`Services\<service>`).
    pub service: String,
    /// Adapter number N of `Parameters\Device<N>`.
    pub adapter: u32,
    buffer: Option<(usize, u32)>,
    last_freed: Option<usize>,
    pool: Pool,
}

fn utf16_z(text: &[u8]) -> Vec<u8> {
    // ANSI here is the Windows-1252-compatible single-byte range; bytes map
    // to the code point of the same number.
    text.iter()
        .flat_map(|&b| u16::from(b).to_le_bytes())
        .chain([0, 0])
        .collect()
}

fn ansi_from_utf16(data: &[u8]) -> Vec<u8> {
    data.chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .map(|unit| u8::try_from(unit).unwrap_or(b'?'))
        .collect()
}

impl RegistryPort {
    /// The key path (relative to the service key) of a scope.
    #[must_use]
    pub fn scope_path(&self, global: bool) -> String {
        if global {
            "Parameters\\Device".to_owned()
        } else {
            format!("Parameters\\Device{}", self.adapter)
        }
    }

    /// Sets a value at `path` (relative to the service key).
    pub fn set(&mut self, path: &str, name: &str, value: Value) {
        self.values.insert(
            (path.to_uppercase(), name.to_uppercase()),
            (path.to_owned(), name.to_owned(), value),
        );
    }

    /// The value at `path` (relative to the service key).
    #[must_use]
    pub fn get(&self, path: &str, name: &str) -> Option<&Value> {
        self.values
            .get(&(path.to_uppercase(), name.to_uppercase()))
            .map(|(_, _, v)| v)
    }

    /// Every value as `(path, name, value)`.
    #[must_use]
    pub fn all(&self) -> Vec<(String, String, Value)> {
        self.values.values().cloned().collect()
    }

    /// `StorPortAllocateRegistryBuffer`: `Some((address, length))`, or `None`
    /// when a buffer is already allocated or `wanted` is 0.
    pub fn allocate(&mut self, wanted: u32) -> Option<(usize, u32)> {
        if self.buffer.is_some() || wanted == 0 {
            return None;
        }
        let address = self
            .pool
            .allocate(wanted as usize, REGISTRY_BUFFER_TAG, true, "registry")?;
        self.buffer = Some((address, wanted));
        Some((address, wanted))
    }

    /// `StorPortFreeRegistryBuffer`.
    ///
    /// # Errors
    ///
    /// [`FreeError`] when `address` is not the live buffer.
    pub fn free(&mut self, address: usize) -> Result<(), FreeError> {
        match self.buffer {
            Some((live, _)) if live == address => {
                let _ = self.pool.free(address);
                self.buffer = None;
                self.last_freed = Some(address);
                Ok(())
            }
            None if self.last_freed == Some(address) => Err(FreeError::DoubleFree),
            _ => Err(FreeError::Foreign),
        }
    }

    /// The live buffer, if any, as `(address, length)`.
    #[must_use]
    pub const fn buffer(&self) -> Option<(usize, u32)> {
        self.buffer
    }

    /// Whether `[address, address + len)` lies inside the live buffer.
    #[must_use]
    pub fn owns(&self, address: usize, len: u32) -> bool {
        self.buffer.is_some_and(|(start, size)| {
            address >= start && address.saturating_add(len as usize) <= start + size as usize
        })
    }

    /// `StorPortRegistryRead`: the bytes to copy into a buffer of `capacity`.
    ///
    /// # Errors
    ///
    /// [`ReadError::TooSmall`] with the size needed, or [`ReadError::Other`].
    pub fn read(
        &self,
        global: bool,
        name: &str,
        reg_type: u32,
        capacity: u32,
    ) -> Result<Vec<u8>, ReadError> {
        let value = self
            .get(&self.scope_path(global), name)
            .ok_or(ReadError::Other)?;
        if value.reg_type != reg_type {
            return Err(ReadError::Other);
        }
        let bytes = match reg_type {
            1 | 2 | 7 => ansi_from_utf16(&value.data),
            _ => value.data.clone(),
        };
        let needed = u32::try_from(bytes.len()).map_err(|_| ReadError::Other)?;
        if needed > capacity {
            return Err(ReadError::TooSmall(needed));
        }
        Ok(bytes)
    }

    /// `StorPortRegistryWrite`: stores `data` (ANSI for string types).
    pub fn write(&mut self, global: bool, name: &str, reg_type: u32, data: &[u8]) -> bool {
        let stored = match reg_type {
            1 | 2 => {
                let text = data.split(|&b| b == 0).next().unwrap_or_default();
                utf16_z(text)
            }
            7 => {
                let mut out = Vec::new();
                for part in data.split(|&b| b == 0).take_while(|part| !part.is_empty()) {
                    out.extend(utf16_z(part));
                }
                out.extend([0, 0]);
                out
            }
            _ => data.to_vec(),
        };
        let path = self.scope_path(global);
        self.set(
            &path,
            name,
            Value {
                reg_type,
                data: stored,
            },
        );
        true
    }
}
