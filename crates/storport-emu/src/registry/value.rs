//! Registry values as Windows stores them: a type number and raw bytes.
//!
//! Sources: "Registry value types" (Win32 docs) for the type numbers and
//! encodings: `REG_SZ`/`REG_EXPAND_SZ` data is UTF-16LE including the NUL
//! terminator, `REG_MULTI_SZ` is a sequence of NUL-terminated UTF-16LE
//! strings followed by one more NUL, `REG_DWORD` is 4 bytes little-endian,
//! `REG_QWORD` 8 bytes little-endian, `REG_BINARY` raw bytes.

use std::fmt;

/// A registry value type number (`REG_*`). Any number can be stored, as in
/// Windows; the associated constants name the ones the emulator interprets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegType(pub u32);

impl RegType {
    /// `REG_NONE`.
    pub const NONE: Self = Self(0);
    /// `REG_SZ`.
    pub const SZ: Self = Self(1);
    /// `REG_EXPAND_SZ`.
    pub const EXPAND_SZ: Self = Self(2);
    /// `REG_BINARY`.
    pub const BINARY: Self = Self(3);
    /// `REG_DWORD`.
    pub const DWORD: Self = Self(4);
    /// `REG_MULTI_SZ`.
    pub const MULTI_SZ: Self = Self(7);
    /// `REG_QWORD`.
    pub const QWORD: Self = Self(11);

    /// The `REG_*` name of this type, or `None` for a number without one here.
    #[must_use]
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "REG_NONE",
            1 => "REG_SZ",
            2 => "REG_EXPAND_SZ",
            3 => "REG_BINARY",
            4 => "REG_DWORD",
            5 => "REG_DWORD_BIG_ENDIAN",
            6 => "REG_LINK",
            7 => "REG_MULTI_SZ",
            8 => "REG_RESOURCE_LIST",
            9 => "REG_FULL_RESOURCE_DESCRIPTOR",
            10 => "REG_RESOURCE_REQUIREMENTS_LIST",
            11 => "REG_QWORD",
            _ => return None,
        })
    }

    /// Whether data of this type is a single UTF-16 string (`REG_SZ`, `REG_EXPAND_SZ`).
    #[must_use]
    pub const fn is_string(self) -> bool {
        matches!(self.0, 1 | 2)
    }
}

impl fmt::Display for RegType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "REG_TYPE_{:#x}", self.0),
        }
    }
}

/// One registry value: its type and its bytes, exactly as `RegQueryValueEx`
/// would return them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegValue {
    reg_type: RegType,
    data: Vec<u8>,
}

/// Encodes UTF-16 code units as little-endian bytes.
fn utf16_bytes(units: impl IntoIterator<Item = u16>) -> Vec<u8> {
    units.into_iter().flat_map(u16::to_le_bytes).collect()
}

impl RegValue {
    /// A value with any type number and any bytes (as `ZwSetValueKey` allows).
    #[must_use]
    pub const fn from_raw(reg_type: RegType, data: Vec<u8>) -> Self {
        Self { reg_type, data }
    }

    /// `REG_SZ` from UTF-16 code units (without terminator); the stored data
    /// gets the UTF-16 NUL terminator Windows keeps.
    #[must_use]
    pub fn sz_utf16(units: &[u16]) -> Self {
        Self::from_raw(RegType::SZ, utf16_bytes(units.iter().copied().chain([0])))
    }

    /// `REG_SZ` from a Rust string.
    #[must_use]
    pub fn sz(text: &str) -> Self {
        Self::sz_utf16(&text.encode_utf16().collect::<Vec<_>>())
    }

    /// `REG_EXPAND_SZ` from a Rust string (stored unexpanded, NUL-terminated).
    #[must_use]
    pub fn expand_sz(text: &str) -> Self {
        Self::from_raw(
            RegType::EXPAND_SZ,
            utf16_bytes(text.encode_utf16().chain([0])),
        )
    }

    /// `REG_MULTI_SZ` from UTF-16 strings: each string NUL-terminated, then one
    /// more NUL. An empty list is stored as a single NUL (2 bytes).
    #[must_use]
    pub fn multi_sz_utf16(strings: &[Vec<u16>]) -> Self {
        let units = strings
            .iter()
            .flat_map(|s| s.iter().copied().chain([0]))
            .chain([0]);
        Self::from_raw(RegType::MULTI_SZ, utf16_bytes(units))
    }

    /// `REG_MULTI_SZ` from Rust strings.
    #[must_use]
    pub fn multi_sz<S: AsRef<str>>(strings: &[S]) -> Self {
        let strings: Vec<Vec<u16>> = strings
            .iter()
            .map(|s| s.as_ref().encode_utf16().collect())
            .collect();
        Self::multi_sz_utf16(&strings)
    }

    /// `REG_DWORD`: 4 bytes little-endian.
    #[must_use]
    pub fn dword(value: u32) -> Self {
        Self::from_raw(RegType::DWORD, value.to_le_bytes().to_vec())
    }

    /// `REG_QWORD`: 8 bytes little-endian.
    #[must_use]
    pub fn qword(value: u64) -> Self {
        Self::from_raw(RegType::QWORD, value.to_le_bytes().to_vec())
    }

    /// `REG_BINARY`: the bytes as given.
    #[must_use]
    pub fn binary(data: &[u8]) -> Self {
        Self::from_raw(RegType::BINARY, data.to_vec())
    }

    /// The type number.
    #[must_use]
    pub const fn reg_type(&self) -> RegType {
        self.reg_type
    }

    /// The stored bytes.
    #[must_use]
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The data as UTF-16 code units (a trailing odd byte is dropped, as a
    /// UTF-16 reader of the data would).
    fn units(&self) -> impl Iterator<Item = u16> + '_ {
        self.data
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
    }

    /// For `REG_SZ`/`REG_EXPAND_SZ`: the code units up to the first NUL (or the
    /// end of the data when it has no terminator). `None` for other types.
    #[must_use]
    pub fn string_utf16(&self) -> Option<Vec<u16>> {
        self.reg_type
            .is_string()
            .then(|| self.units().take_while(|&u| u != 0).collect())
    }

    /// For `REG_SZ`/`REG_EXPAND_SZ`: the string (unpaired surrogates replaced).
    #[must_use]
    pub fn string(&self) -> Option<String> {
        self.string_utf16().map(|u| String::from_utf16_lossy(&u))
    }

    /// For `REG_MULTI_SZ`: the strings, split at each NUL and ending at the
    /// first empty string (the final NUL) or at the end of the data.
    #[must_use]
    pub fn multi_sz_utf16_list(&self) -> Option<Vec<Vec<u16>>> {
        if self.reg_type != RegType::MULTI_SZ {
            return None;
        }
        let units: Vec<u16> = self.units().collect();
        let mut list = Vec::new();
        for piece in units.split(|&u| u == 0) {
            if piece.is_empty() {
                break;
            }
            list.push(piece.to_vec());
        }
        Some(list)
    }

    /// For `REG_MULTI_SZ`: the strings (unpaired surrogates replaced).
    #[must_use]
    pub fn multi_sz_list(&self) -> Option<Vec<String>> {
        self.multi_sz_utf16_list()
            .map(|l| l.iter().map(|s| String::from_utf16_lossy(s)).collect())
    }

    /// For a 4-byte `REG_DWORD`: the number.
    #[must_use]
    pub fn as_dword(&self) -> Option<u32> {
        if self.reg_type != RegType::DWORD {
            return None;
        }
        <[u8; 4]>::try_from(self.data.as_slice())
            .ok()
            .map(u32::from_le_bytes)
    }

    /// For an 8-byte `REG_QWORD`: the number.
    #[must_use]
    pub fn as_qword(&self) -> Option<u64> {
        if self.reg_type != RegType::QWORD {
            return None;
        }
        <[u8; 8]>::try_from(self.data.as_slice())
            .ok()
            .map(u64::from_le_bytes)
    }
}

/// Writes `text` in double quotes, escaping `"` and control characters so the
/// dump stays on one line.
fn write_quoted(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in text.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

impl fmt::Display for RegValue {
    /// One line: the type name, then the data in a readable form
    /// (`REG_DWORD 0x0000000e (14)`, `REG_SZ "text"`, `REG_BINARY 0a 1b`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reg_type)?;
        if let Some(text) = self.string() {
            f.write_str(" ")?;
            return write_quoted(f, &text);
        }
        if let Some(list) = self.multi_sz_list() {
            f.write_str(" [")?;
            for (i, s) in list.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_quoted(f, s)?;
            }
            return f.write_str("]");
        }
        if let Some(n) = self.as_dword() {
            return write!(f, " {n:#010x} ({n})");
        }
        if let Some(n) = self.as_qword() {
            return write!(f, " {n:#018x} ({n})");
        }
        if self.data.is_empty() {
            return f.write_str(" (no data)");
        }
        for byte in &self.data {
            write!(f, " {byte:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sz_bytes_include_utf16_terminator() {
        assert_eq!(RegValue::sz("Ab").data(), &[b'A', 0, b'b', 0, 0, 0]);
        assert_eq!(RegValue::sz("").data(), &[0, 0]);
        assert_eq!(RegValue::sz("Ab").reg_type(), RegType(1));
    }

    #[test]
    fn multi_sz_bytes_have_final_nul() {
        assert_eq!(
            RegValue::multi_sz(&["a", "b"]).data(),
            &[b'a', 0, 0, 0, b'b', 0, 0, 0, 0, 0]
        );
        assert_eq!(RegValue::multi_sz::<&str>(&[]).data(), &[0, 0]);
        assert_eq!(RegValue::multi_sz(&["a", "b"]).reg_type(), RegType(7));
    }

    #[test]
    fn numbers_are_little_endian() {
        assert_eq!(RegValue::dword(0x0102_0304).data(), &[4, 3, 2, 1]);
        assert_eq!(RegValue::dword(1).reg_type(), RegType(4));
        assert_eq!(
            RegValue::qword(0x0102_0304_0506_0708).data(),
            &[8, 7, 6, 5, 4, 3, 2, 1]
        );
        assert_eq!(RegValue::qword(1).reg_type(), RegType(11));
        assert_eq!(RegValue::binary(&[9, 8]).reg_type(), RegType(3));
        assert_eq!(RegValue::expand_sz("x").reg_type(), RegType(2));
    }

    #[test]
    fn decoders_round_trip_and_reject_other_types() {
        assert_eq!(RegValue::sz("héllo").string().as_deref(), Some("héllo"));
        assert_eq!(RegValue::dword(7).string(), None);
        assert_eq!(
            RegValue::multi_sz(&["x", "yz"]).multi_sz_list(),
            Some(vec!["x".to_owned(), "yz".to_owned()])
        );
        assert_eq!(RegValue::dword(7).as_dword(), Some(7));
        assert_eq!(RegValue::binary(&[7, 0, 0, 0]).as_dword(), None);
        assert_eq!(RegValue::qword(u64::MAX).as_qword(), Some(u64::MAX));
        // A string stored without a terminator still reads to its end.
        let raw = RegValue::from_raw(RegType::SZ, vec![b'h', 0, b'i', 0]);
        assert_eq!(raw.string().as_deref(), Some("hi"));
    }

    #[test]
    fn display_is_one_readable_line() {
        assert_eq!(RegValue::dword(14).to_string(), "REG_DWORD 0x0000000e (14)");
        assert_eq!(RegValue::sz("a\"b").to_string(), "REG_SZ \"a\\\"b\"");
        assert_eq!(
            RegValue::multi_sz(&["a", "b"]).to_string(),
            "REG_MULTI_SZ [\"a\", \"b\"]"
        );
        assert_eq!(
            RegValue::binary(&[0x0a, 0x1b]).to_string(),
            "REG_BINARY 0a 1b"
        );
        assert_eq!(
            RegValue::from_raw(RegType(0x38), vec![1]).to_string(),
            "REG_TYPE_0x38 01"
        );
    }
}
