//! The semantics of `StorPortRegistryRead` and `StorPortRegistryWrite` as
//! pure functions over safe types. The port model turns the driver's raw
//! pointers into slices and lengths and calls these.
//!
//! Rules and their sources (Microsoft's DDI reference pages):
//!
//! - Key: "`StorPortRegistryRead` function (storport.h)", parameter `Global`:
//!   nonzero reads `Parameters\Device` (values for all adapters); zero reads
//!   `Parameters\Device(d)` where (d) is the decimal port number of the
//!   adapter. There is no fallback from `Device<N>` to `Device`: a value that
//!   exists only under `Device` is missing for a `Global == 0` read.
//!   "`StorPortRegistryWrite` function (storport.h)", parameter `Global`: the
//!   same choice for writes. Both sit under the service key,
//!   `Services\<service>\Parameters`.
//! - Return protocol: "`StorPortRegistryRead`", Return value and Remarks: TRUE
//!   when the data was converted and copied; FALSE with a nonzero
//!   `BufferLength` means the buffer was too small and `BufferLength` is the
//!   size needed; FALSE with `BufferLength` zero means another error.
//!   On success `BufferLength` is the number of bytes written ("Pointer to a
//!   ULONG that contains the size, in bytes, of the registry data returned").
//! - Conversion: "`StorPortRegistryRead`": data is "converted into ASCII";
//!   "`StorPortRegistryWrite`": data is converted "from ASCII to Unicode".
//!   The emulated ANSI code page is ISO-8859-1 (code page 28591): byte `b`
//!   is U+00`b`, and a UTF-16 code unit above U+00FF becomes `?`, the default
//!   character `RtlUnicodeToMultiByteN` substitutes for unmappable characters.
//!   The conversion goes one UTF-16 code unit at a time, as it does for
//!   single-byte code pages, so a character outside the BMP (a surrogate
//!   pair) becomes `??`. Windows uses the system's ANSI code page, usually
//!   1252, which differs from ISO-8859-1 only at 0x80–0x9F.
//! - The buffer: "`StorPortRegistryRead`", Remarks: the buffer comes from
//!   `StorPortAllocateRegistryBuffer`. A length beyond that allocation is an
//!   error here (FALSE, 0), never a read or write past the buffer.
//!
//! Decisions where the pages say nothing (each is tested):
//!
//! - Supported `Type` values: `MINIPORT_REG_SZ` (1), `REG_EXPAND_SZ` (2),
//!   `MINIPORT_REG_BINARY` (3), `MINIPORT_REG_DWORD` (4),
//!   `MINIPORT_REG_MULTI_SZ` (7), `REG_QWORD` (11). Any other type fails
//!   (FALSE, 0).
//! - A read's `Type` must match the stored type, except that the two string
//!   types (1 and 2) accept each other; `REG_EXPAND_SZ` data is not expanded.
//!   Asking for a DWORD of a `REG_SZ` value fails (FALSE, 0).
//! - Read output: strings are ANSI with a NUL terminator; `REG_MULTI_SZ` is
//!   each string NUL-terminated followed by one more NUL, and an empty list is
//!   a single NUL; DWORD, QWORD and BINARY data are the stored bytes.
//! - Write input: a string is the ANSI bytes up to the first NUL within
//!   `BufferLength` (or all of them) and is stored as `REG_SZ`/`REG_EXPAND_SZ`
//!   UTF-16 with a terminator. A multi-string is NUL-separated ANSI strings
//!   ending at an empty string or at `BufferLength`. A DWORD needs
//!   `BufferLength` ≥ 4 and stores the first 4 bytes, a QWORD needs ≥ 8 and
//!   stores the first 8; BINARY stores `BufferLength` bytes (zero allowed).
//!   The `Device`/`Device<N>` key is created when missing.
//! - The value name is the driver's NUL-terminated ANSI string; the bytes up
//!   to the first NUL are decoded as ISO-8859-1. The empty name is the key's
//!   default value.

use super::tree::Registry;
use super::value::{RegType, RegValue};

/// Which adapter a registry call comes from and which key it addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryScope {
    /// The miniport's service name (the `Services` subkey).
    pub service: String,
    /// The adapter's port number, the `<N>` of `Device<N>`.
    pub adapter_number: u32,
}

impl RegistryScope {
    /// A scope for `service`'s adapter with port number `adapter_number`.
    #[must_use]
    pub fn new(service: &str, adapter_number: u32) -> Self {
        Self {
            service: service.to_owned(),
            adapter_number,
        }
    }

    /// The key a call with this `Global` argument addresses:
    /// `Services\<service>\Parameters\Device` when `global != 0`, else
    /// `Services\<service>\Parameters\Device<N>`.
    #[must_use]
    pub fn device_key(&self, global: u32) -> String {
        if global == 0 {
            format!(
                "Services\\{}\\Parameters\\Device{}",
                self.service, self.adapter_number
            )
        } else {
            format!("Services\\{}\\Parameters\\Device", self.service)
        }
    }
}

/// Why a registry call failed with `*BufferLength = 0` (read) or FALSE (write).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryCallError {
    /// The value does not exist under the addressed key.
    #[error("the value `{name}` does not exist under `{key}`")]
    ValueMissing {
        /// The addressed key.
        key: String,
        /// The value name.
        name: String,
    },
    /// The requested type is not one Storport's registry calls handle here.
    #[error(
        "type {requested} is not supported by the registry calls; expected MINIPORT_REG_SZ (1), REG_EXPAND_SZ (2), MINIPORT_REG_BINARY (3), MINIPORT_REG_DWORD (4), MINIPORT_REG_MULTI_SZ (7) or REG_QWORD (11)"
    )]
    UnsupportedType {
        /// The `Type` argument.
        requested: u32,
    },
    /// The stored value has another type than the one asked for.
    #[error("the value `{name}` is {stored}, but the call asked for {requested}")]
    TypeMismatch {
        /// The value name.
        name: String,
        /// The type asked for.
        requested: RegType,
        /// The stored type.
        stored: RegType,
    },
    /// `BufferLength` is larger than the registry buffer the driver allocated.
    #[error("BufferLength {length} is larger than the {capacity}-byte registry buffer")]
    LengthBeyondBuffer {
        /// The `BufferLength` argument.
        length: u32,
        /// The allocated size of the buffer.
        capacity: usize,
    },
    /// A DWORD or QWORD write with fewer bytes than the type holds.
    #[error("a {reg_type} write needs at least {needed} bytes, but BufferLength is {length}")]
    DataTooShort {
        /// The type written.
        reg_type: RegType,
        /// The bytes the type needs.
        needed: u32,
        /// The `BufferLength` argument.
        length: u32,
    },
}

/// The outcome of a `StorPortRegistryRead` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// TRUE; `*BufferLength` = `written`, the bytes stored in the buffer.
    Read {
        /// Bytes written to the start of the buffer.
        written: u32,
    },
    /// FALSE; `*BufferLength` = `needed` (nonzero): the buffer is too small.
    TooSmall {
        /// Bytes the data needs.
        needed: u32,
    },
    /// FALSE; `*BufferLength` = 0: another error.
    Failed(RegistryCallError),
}

impl ReadOutcome {
    /// The BOOLEAN result and the value to store in `*BufferLength`.
    #[must_use]
    pub const fn returned(&self) -> (bool, u32) {
        match self {
            Self::Read { written } => (true, *written),
            Self::TooSmall { needed } => (false, *needed),
            Self::Failed(_) => (false, 0),
        }
    }
}

/// Decodes an ANSI (ISO-8859-1) name: the bytes up to the first NUL.
#[must_use]
pub fn ansi_name(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| char::from(b))
        .collect()
}

/// UTF-16 code unit to ANSI byte: U+0000–U+00FF map to themselves, everything
/// else (including each half of a surrogate pair) to `?`.
fn unit_to_ansi(unit: u16) -> u8 {
    u8::try_from(unit).unwrap_or(b'?')
}

/// ANSI bytes to UTF-16 code units (ISO-8859-1 is the first 256 code points).
fn ansi_to_units(bytes: &[u8]) -> Vec<u16> {
    bytes.iter().map(|&b| u16::from(b)).collect()
}

/// The bytes a read of `value` as `requested` produces.
fn read_data(name: &str, value: &RegValue, requested: u32) -> Result<Vec<u8>, RegistryCallError> {
    let requested_type = RegType(requested);
    let stored = value.reg_type();
    let mismatch = || RegistryCallError::TypeMismatch {
        name: name.to_owned(),
        requested: requested_type,
        stored,
    };
    match requested_type {
        RegType::SZ | RegType::EXPAND_SZ => {
            let units = value.string_utf16().ok_or_else(mismatch)?;
            Ok(units.into_iter().map(unit_to_ansi).chain([0]).collect())
        }
        RegType::MULTI_SZ => {
            let list = value.multi_sz_utf16_list().ok_or_else(mismatch)?;
            let mut out: Vec<u8> = list
                .iter()
                .flat_map(|s| s.iter().copied().map(unit_to_ansi).chain([0]))
                .collect();
            out.push(0);
            if list.is_empty() {
                out.truncate(1);
            }
            Ok(out)
        }
        RegType::DWORD | RegType::QWORD | RegType::BINARY => {
            if stored == requested_type {
                Ok(value.data().to_vec())
            } else {
                Err(mismatch())
            }
        }
        _ => Err(RegistryCallError::UnsupportedType { requested }),
    }
}

/// Checks `BufferLength` against the allocated registry buffer.
fn checked_length(buffer_len: usize, length: u32) -> Result<usize, RegistryCallError> {
    usize::try_from(length)
        .ok()
        .filter(|&l| l <= buffer_len)
        .ok_or(RegistryCallError::LengthBeyondBuffer {
            length,
            capacity: buffer_len,
        })
}

/// `StorPortRegistryRead(ext, ValueName, Global, Type, Buffer, &BufferLength)`.
///
/// `value_name` is the driver's ANSI name (read up to its NUL), `buffer` the
/// whole registry buffer the driver allocated and `buffer_length` the
/// `BufferLength` it passed in. On [`ReadOutcome::Read`] the data is at the
/// start of `buffer`; otherwise `buffer` is untouched.
#[must_use]
pub fn registry_read(
    registry: &Registry,
    scope: &RegistryScope,
    value_name: &[u8],
    global: u32,
    reg_type: u32,
    buffer: &mut [u8],
    buffer_length: u32,
) -> ReadOutcome {
    let name = ansi_name(value_name);
    let key = scope.device_key(global);
    let Some(value) = registry.value(&key, &name) else {
        return ReadOutcome::Failed(RegistryCallError::ValueMissing { key, name });
    };
    let data = match read_data(&name, value, reg_type) {
        Ok(data) => data,
        Err(e) => return ReadOutcome::Failed(e),
    };
    let capacity = match checked_length(buffer.len(), buffer_length) {
        Ok(c) => c,
        Err(e) => return ReadOutcome::Failed(e),
    };
    let Ok(needed) = u32::try_from(data.len()) else {
        return ReadOutcome::TooSmall { needed: u32::MAX };
    };
    if data.len() > capacity {
        return ReadOutcome::TooSmall { needed };
    }
    buffer[..data.len()].copy_from_slice(&data);
    ReadOutcome::Read { written: needed }
}

/// The value a write of `data` as `reg_type` stores.
fn written_value(reg_type: u32, data: &[u8]) -> Result<RegValue, RegistryCallError> {
    let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let fixed = |rt: RegType, needed: usize| {
        data.get(..needed)
            .map(|bytes| RegValue::from_raw(rt, bytes.to_vec()))
            .ok_or_else(|| RegistryCallError::DataTooShort {
                reg_type: rt,
                needed: u32::try_from(needed).unwrap_or(u32::MAX),
                length,
            })
    };
    let text = || {
        let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
        ansi_to_units(&data[..end])
    };
    match RegType(reg_type) {
        RegType::SZ => Ok(RegValue::sz_utf16(&text())),
        RegType::EXPAND_SZ => {
            let units = text();
            let value = RegValue::sz_utf16(&units);
            Ok(RegValue::from_raw(
                RegType::EXPAND_SZ,
                value.data().to_vec(),
            ))
        }
        RegType::MULTI_SZ => {
            let list: Vec<Vec<u16>> = data
                .split(|&b| b == 0)
                .take_while(|s| !s.is_empty())
                .map(ansi_to_units)
                .collect();
            Ok(RegValue::multi_sz_utf16(&list))
        }
        RegType::DWORD => fixed(RegType::DWORD, 4),
        RegType::QWORD => fixed(RegType::QWORD, 8),
        RegType::BINARY => Ok(RegValue::binary(data)),
        _ => Err(RegistryCallError::UnsupportedType {
            requested: reg_type,
        }),
    }
}

/// `StorPortRegistryWrite(ext, ValueName, Global, Type, Buffer, BufferLength)`.
///
/// `buffer` is the whole registry buffer the driver allocated, `buffer_length`
/// the `BufferLength` it passed. `Ok` is TRUE, `Err` is FALSE.
///
/// # Errors
///
/// [`RegistryCallError::LengthBeyondBuffer`], [`RegistryCallError::UnsupportedType`]
/// and [`RegistryCallError::DataTooShort`], as described in the module docs;
/// the registry is unchanged then.
pub fn registry_write(
    registry: &mut Registry,
    scope: &RegistryScope,
    value_name: &[u8],
    global: u32,
    reg_type: u32,
    buffer: &[u8],
    buffer_length: u32,
) -> Result<(), RegistryCallError> {
    let length = checked_length(buffer.len(), buffer_length)?;
    let value = written_value(reg_type, &buffer[..length])?;
    registry.set_value(&scope.device_key(global), &ansi_name(value_name), value);
    Ok(())
}
