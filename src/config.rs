//! The adapter's configuration: which registry values vstor reads, their
//! defaults and limits, and how a bad value is reported.
//!
//! This module is pure: it sees registry values through [`Source`], so the
//! rules are unit-tested on the host. The miniport implements [`Source`] over
//! Storport's registry buffer, looking in the adapter scope
//! (`Parameters\Device<N>`) first and in the global scope
//! (`Parameters\Device`) second.
//!
//! A value of the wrong type, out of range, too long or not ASCII is reported
//! once (through the `report` callback, which the miniport sends to
//! `DbgPrint`) and replaced by its default; the adapter still starts. Only a
//! configuration that cannot be honoured as a whole is rejected
//! ([`ConfigError`]), which fails find-adapter with `SP_RETURN_BAD_CONFIG`.

use core::ffi::CStr;
use core::fmt;

use storport::print::{AsciiText, Dec};

use crate::scsi::Plain;

/// Largest number of disks one adapter exposes.
pub const MAX_DISKS: usize = 16;
/// Default number of disks.
pub const DEFAULT_DISK_COUNT: u32 = 1;
/// Default size of each disk, in MiB.
pub const DEFAULT_DISK_SIZE_MIB: u32 = 64;
/// Smallest disk, in MiB.
pub const MIN_DISK_SIZE_MIB: u32 = 1;
/// Largest single disk, in MiB (64 GiB of nonpaged pool).
pub const MAX_DISK_SIZE_MIB: u32 = 64 * 1024;
/// Largest total of all disks of one adapter, in MiB.
pub const MAX_TOTAL_SIZE_MIB: u64 = 256 * 1024;
/// Default sector size in bytes.
pub const DEFAULT_SECTOR_SIZE: u32 = 512;
/// Default vendor identification (INQUIRY bytes 8..16).
pub const DEFAULT_VENDOR_ID: &str = "VSTOR";
/// Default product identification (INQUIRY bytes 16..32).
pub const DEFAULT_PRODUCT_ID: &str = "RAM DISK";
/// Default product revision (INQUIRY bytes 32..36).
pub const DEFAULT_PRODUCT_REVISION: &str = "0001";
/// Default serial number prefix; the disk index follows it.
pub const DEFAULT_SERIAL_PREFIX: &str = "VST";
/// Longest serial number prefix accepted (the unit serial number page holds
/// the prefix, the adapter and the disk index).
pub const MAX_SERIAL_PREFIX: usize = 16;

/// The registry value names vstor reads.
pub mod names {
    use core::ffi::CStr;
    /// `DiskCount` (DWORD, 1–16).
    pub const DISK_COUNT: &CStr = c"DiskCount";
    /// `DiskSizeMiB` (DWORD).
    pub const DISK_SIZE_MIB: &CStr = c"DiskSizeMiB";
    /// `DiskSizesMiB` (`REG_MULTI_SZ`, one decimal size per disk).
    pub const DISK_SIZES_MIB: &CStr = c"DiskSizesMiB";
    /// `SectorSize` (DWORD, 512 or 4096).
    pub const SECTOR_SIZE: &CStr = c"SectorSize";
    /// `ReadOnly` (DWORD, 0 or 1).
    pub const READ_ONLY: &CStr = c"ReadOnly";
    /// `VendorId` (`REG_SZ`, up to 8 ASCII characters).
    pub const VENDOR_ID: &CStr = c"VendorId";
    /// `ProductId` (`REG_SZ`, up to 16).
    pub const PRODUCT_ID: &CStr = c"ProductId";
    /// `ProductRevision` (`REG_SZ`, up to 4).
    pub const PRODUCT_REVISION: &CStr = c"ProductRevision";
    /// `SerialPrefix` (`REG_SZ`, ASCII).
    pub const SERIAL_PREFIX: &CStr = c"SerialPrefix";
    /// `TargetPorts` (DWORD, 1–8): buses through which every disk is reachable.
    pub const TARGET_PORTS: &CStr = c"TargetPorts";
    /// `StartCount` (DWORD, written back: +1 each start).
    pub const START_COUNT: &CStr = c"StartCount";
    /// `EffectiveConfig` (`REG_SZ`, written back: the configuration in force).
    pub const EFFECTIVE_CONFIG: &CStr = c"EffectiveConfig";
}

/// The kind of registry value a setting is read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `REG_DWORD`.
    Dword,
    /// `REG_SZ` (read as ANSI).
    String,
    /// `REG_MULTI_SZ` (read as ANSI; strings separated by NUL).
    MultiString,
}

/// What a registry lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// No value of that name in either scope.
    Missing,
    /// A DWORD.
    Dword(u32),
    /// String bytes (ANSI, without the terminating NUL).
    String(&'a [u8]),
    /// Multi-string bytes: strings separated by single NULs, without the
    /// final terminators.
    MultiString(&'a [u8]),
    /// A value exists but could not be read as the kind asked for (wrong
    /// type, or longer than the registry buffer allows).
    Unreadable,
}

/// Where the configuration comes from.
pub trait Source {
    /// Looks `name` up as `kind` and hands the result to `f`.
    fn lookup<R>(&mut self, name: &CStr, kind: Kind, f: impl FnOnce(Lookup<'_>) -> R) -> R;

    /// Where the latest [`Source::lookup`] found its value; `None` when it
    /// found none or the source does not tell.
    fn last_origin(&self) -> Option<Origin> {
        None
    }
}

/// The scope a value was found in; the adapter scope is the more specific.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// `Parameters\Device`, shared by every adapter.
    Global,
    /// `Parameters\Device<N>`, this adapter's own.
    Adapter,
}

/// A short ASCII string held inline (no allocation in the kernel).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ascii<const N: usize> {
    bytes: [u8; N],
    len: u8,
}

impl<const N: usize> Ascii<N> {
    /// `text` if it is printable ASCII of at most `N` bytes.
    #[must_use]
    pub fn new(text: &[u8]) -> Option<Self> {
        if text.len() > N || !text.iter().all(|&byte| (0x20..0x7F).contains(&byte)) {
            return None;
        }
        let mut bytes = [b' '; N];
        bytes.get_mut(..text.len())?.copy_from_slice(text);
        Some(Self {
            bytes,
            len: u8::try_from(text.len()).ok()?,
        })
    }

    /// The string's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The string, space padded to `N` bytes (the form INQUIRY uses).
    #[must_use]
    pub const fn padded(&self) -> &[u8; N] {
        &self.bytes
    }

    fn from_default(text: &str) -> Self {
        Self::new(text.as_bytes()).unwrap_or(Self {
            bytes: [b' '; N],
            len: 0,
        })
    }
}

impl<const N: usize> fmt::Display for Ascii<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Printable ASCII only, by construction.
        AsciiText(self.as_bytes()).fmt(f)
    }
}

impl<const N: usize> fmt::Debug for Ascii<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// The configuration in force for one adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Number of disks (LUNs), 1..=16.
    pub disk_count: u32,
    /// Size of each disk in MiB; entries past `disk_count` are unused.
    pub disk_size_mib: [u32; MAX_DISKS],
    /// Logical block size in bytes: 512 or 4096.
    pub sector_size: u32,
    /// Whether the disks reject writes.
    pub read_only: bool,
    /// INQUIRY vendor identification.
    pub vendor_id: Ascii<8>,
    /// INQUIRY product identification.
    pub product_id: Ascii<16>,
    /// INQUIRY product revision level.
    pub product_revision: Ascii<4>,
    /// Prefix of each disk's serial number.
    pub serial_prefix: Ascii<MAX_SERIAL_PREFIX>,
    /// Target ports, 1..=8: the adapter has this many buses and every disk is on each, as
    /// one logical unit reachable through several ports (each its own `I_T` nexus: unit
    /// attentions and reservations are kept per port). More than 1 makes Windows see each
    /// disk once per bus unless MPIO claims them.
    pub target_ports: u8,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            disk_count: DEFAULT_DISK_COUNT,
            disk_size_mib: [DEFAULT_DISK_SIZE_MIB; MAX_DISKS],
            sector_size: DEFAULT_SECTOR_SIZE,
            read_only: false,
            vendor_id: Ascii::from_default(DEFAULT_VENDOR_ID),
            product_id: Ascii::from_default(DEFAULT_PRODUCT_ID),
            product_revision: Ascii::from_default(DEFAULT_PRODUCT_REVISION),
            serial_prefix: Ascii::from_default(DEFAULT_SERIAL_PREFIX),
            target_ports: 1,
        }
    }
}

/// A registry value vstor could not use; it was replaced by its default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadValue {
    /// The value's name.
    pub name: &'static CStr,
    /// What was wrong with it.
    pub problem: Problem,
    /// What vstor expected, as a phrase ("a DWORD from 1 to 16").
    pub expected: &'static str,
    /// The default used instead, as text.
    pub default: &'static str,
}

/// What was wrong with a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Present but not readable as the expected type.
    WrongType,
    /// A number outside the accepted range.
    OutOfRange(u32),
    /// A string longer than allowed.
    TooLong(usize),
    /// A string with a byte outside printable ASCII.
    NotAscii,
    /// A multi-string entry that is not a decimal number in range (its
    /// zero-based index).
    BadEntry(usize),
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("vstor: registry value ")?;
        // Registry value names are ASCII.
        AsciiText(self.name.to_bytes()).fmt(f)?;
        f.write_str(" ")?;
        match self.problem {
            Problem::WrongType => write!(f, "has the wrong type")?,
            Problem::OutOfRange(value) => write!(f, "= {} is out of range", Dec(value.into()))?,
            Problem::TooLong(length) => {
                write!(f, "is {} characters long, too long", Dec(length as u64))?;
            }
            Problem::NotAscii => write!(f, "contains a character that is not printable ASCII")?,
            Problem::BadEntry(index) => {
                write!(f, "entry {} is not a valid size", Dec(index as u64))?;
            }
        }
        write!(
            f,
            "; expected {}; using the default {}.",
            Plain(self.expected),
            Plain(self.default)
        )
    }
}

/// A configuration that cannot be honoured as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `DiskCount` and the number of `DiskSizesMiB` entries disagree.
    CountMismatch {
        /// `DiskCount` as set.
        disk_count: u32,
        /// Entries in `DiskSizesMiB`.
        sizes: u32,
    },
    /// The disks together need more memory than one adapter may take.
    TooLarge {
        /// Total requested, in MiB.
        total_mib: u64,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::CountMismatch { disk_count, sizes } => write!(
                f,
                "vstor: DiskCount is {} but DiskSizesMiB lists {} sizes; set one size per disk \
                 or remove one of the two values. The adapter does not start.",
                Dec(disk_count.into()),
                Dec(sizes.into())
            ),
            Self::TooLarge { total_mib } => write!(
                f,
                "vstor: the disks need {} MiB in all, more than the {} MiB one adapter may use; \
                 lower DiskCount or the disk sizes. The adapter does not start.",
                Dec(total_mib),
                Dec(MAX_TOTAL_SIZE_MIB)
            ),
        }
    }
}

impl Config {
    /// Reads the whole configuration from `source`, reporting each bad value
    /// once through `report` and using its default instead.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the values, each valid, cannot be honoured
    /// together; find-adapter then returns `SP_RETURN_BAD_CONFIG`.
    pub fn load(
        source: &mut impl Source,
        report: &mut impl FnMut(&BadValue),
    ) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        let explicit_count = read_dword(
            source,
            report,
            names::DISK_COUNT,
            1..=u32::try_from(MAX_DISKS).unwrap_or(16),
            "a DWORD from 1 to 16",
            "1",
        );
        let count_origin = source.last_origin();
        if let Some(count) = explicit_count {
            config.disk_count = count;
        }
        if let Some(size) = read_dword(
            source,
            report,
            names::DISK_SIZE_MIB,
            MIN_DISK_SIZE_MIB..=MAX_DISK_SIZE_MIB,
            "a DWORD from 1 to 65536 (MiB)",
            "64",
        ) {
            config.disk_size_mib = [size; MAX_DISKS];
        }
        if let Some((sizes, count)) = read_sizes(source, report) {
            let sizes_origin = source.last_origin();
            // Of two disagreeing values the one in the more specific scope
            // wins (an adapter's own `DiskSizesMiB` over the INF's global
            // `DiskCount`); in the same scope they contradict each other.
            let sizes_win = match explicit_count {
                Some(disk_count) if disk_count != count => {
                    if sizes_origin == count_origin {
                        return Err(ConfigError::CountMismatch {
                            disk_count,
                            sizes: count,
                        });
                    }
                    sizes_origin > count_origin
                }
                _ => true,
            };
            if sizes_win {
                config.disk_count = count;
                config.disk_size_mib = sizes;
            }
        }
        config.load_runtime(source, report);
        if let Some(size) = read_dword(
            source,
            report,
            names::SECTOR_SIZE,
            512..=4096,
            "512 or 4096",
            "512",
        ) {
            if size == 512 || size == 4096 {
                config.sector_size = size;
            } else {
                report(&BadValue {
                    name: names::SECTOR_SIZE,
                    problem: Problem::OutOfRange(size),
                    expected: "512 or 4096",
                    default: "512",
                });
            }
        }
        config.load_identity(source, report);
        if let Some(ports) = read_dword(
            source,
            report,
            names::TARGET_PORTS,
            1..=u32::from(crate::scsi::MAX_PORTS),
            "a DWORD from 1 to 8",
            "1",
        ) {
            config.target_ports = u8::try_from(ports).unwrap_or(1);
        }
        let total_mib = config
            .sizes_mib()
            .iter()
            .map(|&size| u64::from(size))
            .sum::<u64>();
        if total_mib > MAX_TOTAL_SIZE_MIB {
            return Err(ConfigError::TooLarge { total_mib });
        }
        Ok(config)
    }

    /// The INQUIRY strings and the serial number prefix.
    fn load_identity(&mut self, source: &mut impl Source, report: &mut impl FnMut(&BadValue)) {
        if let Some(id) = read_ascii(source, report, names::VENDOR_ID, "up to 8 ASCII characters") {
            self.vendor_id = id;
        }
        if let Some(id) = read_ascii(
            source,
            report,
            names::PRODUCT_ID,
            "up to 16 ASCII characters",
        ) {
            self.product_id = id;
        }
        if let Some(id) = read_ascii(
            source,
            report,
            names::PRODUCT_REVISION,
            "up to 4 ASCII characters",
        ) {
            self.product_revision = id;
        }
        if let Some(prefix) = read_ascii(
            source,
            report,
            names::SERIAL_PREFIX,
            "up to 16 ASCII characters",
        ) {
            self.serial_prefix = prefix;
        }
    }

    /// Re-reads the settings that may change while the adapter runs
    /// (`ReadOnly`), as `ScsiSetRunningConfig` asks.
    pub fn load_runtime(&mut self, source: &mut impl Source, report: &mut impl FnMut(&BadValue)) {
        self.read_only = false;
        if let Some(value) = read_dword(source, report, names::READ_ONLY, 0..=1, "0 or 1", "0") {
            self.read_only = value == 1;
        }
    }

    /// The sizes of the configured disks, in MiB.
    #[must_use]
    pub fn sizes_mib(&self) -> &[u32] {
        let count = usize::try_from(self.disk_count)
            .unwrap_or(MAX_DISKS)
            .min(MAX_DISKS);
        self.disk_size_mib.get(..count).unwrap_or(&[])
    }

    /// Writes the configuration as the one-line text stored in
    /// `EffectiveConfig`.
    ///
    /// # Errors
    ///
    /// Whatever `out` returns.
    pub fn write_effective(&self, out: &mut impl fmt::Write) -> fmt::Result {
        write!(
            out,
            "DiskCount={};DiskSizesMiB=",
            Dec(self.disk_count.into())
        )?;
        for (index, size) in self.sizes_mib().iter().enumerate() {
            if index > 0 {
                out.write_str(",")?;
            }
            write!(out, "{}", Dec(u64::from(*size)))?;
        }
        write!(
            out,
            ";SectorSize={};ReadOnly={};VendorId={};ProductId={};ProductRevision={};SerialPrefix={};\
             TargetPorts={}",
            Dec(self.sector_size.into()),
            Dec(u8::from(self.read_only).into()),
            self.vendor_id,
            self.product_id,
            self.product_revision,
            self.serial_prefix,
            Dec(self.target_ports.into()),
        )
    }
}

fn read_dword(
    source: &mut impl Source,
    report: &mut impl FnMut(&BadValue),
    name: &'static CStr,
    range: core::ops::RangeInclusive<u32>,
    expected: &'static str,
    default: &'static str,
) -> Option<u32> {
    let problem = match source.lookup(name, Kind::Dword, |found| match found {
        Lookup::Missing => Err(None),
        Lookup::Dword(value) if range.contains(&value) => Ok(value),
        Lookup::Dword(value) => Err(Some(Problem::OutOfRange(value))),
        _ => Err(Some(Problem::WrongType)),
    }) {
        Ok(value) => return Some(value),
        Err(problem) => problem?,
    };
    report(&BadValue {
        name,
        problem,
        expected,
        default,
    });
    None
}

fn read_ascii<const N: usize>(
    source: &mut impl Source,
    report: &mut impl FnMut(&BadValue),
    name: &'static CStr,
    expected: &'static str,
) -> Option<Ascii<N>> {
    read_text(source, report, name, N, expected).and_then(|text| Ascii::new(text.as_bytes()))
}

/// [`read_ascii`] for every length at once: one copy of the lookup in the driver image
/// instead of one per string length.
fn read_text(
    source: &mut impl Source,
    report: &mut impl FnMut(&BadValue),
    name: &'static CStr,
    max: usize,
    expected: &'static str,
) -> Option<Ascii<MAX_SERIAL_PREFIX>> {
    let result = source.lookup(name, Kind::String, |found| match found {
        Lookup::Missing => Err(None),
        Lookup::String(text) if text.len() > max => Err(Some(Problem::TooLong(text.len()))),
        Lookup::String(text) => Ascii::new(text).ok_or(Some(Problem::NotAscii)),
        _ => Err(Some(Problem::WrongType)),
    });
    let problem = match result {
        Ok(value) => return Some(value),
        Err(problem) => problem?,
    };
    let default = match max {
        8 => DEFAULT_VENDOR_ID,
        4 => DEFAULT_PRODUCT_REVISION,
        _ if name == names::SERIAL_PREFIX => DEFAULT_SERIAL_PREFIX,
        _ => DEFAULT_PRODUCT_ID,
    };
    report(&BadValue {
        name,
        problem,
        expected,
        default,
    });
    None
}

/// `DiskSizesMiB`: one decimal size per disk.
fn read_sizes(
    source: &mut impl Source,
    report: &mut impl FnMut(&BadValue),
) -> Option<([u32; MAX_DISKS], u32)> {
    let result = source.lookup(names::DISK_SIZES_MIB, Kind::MultiString, |found| {
        let Lookup::MultiString(bytes) = found else {
            return match found {
                Lookup::Missing => Err(None),
                _ => Err(Some(Problem::WrongType)),
            };
        };
        let mut sizes = [DEFAULT_DISK_SIZE_MIB; MAX_DISKS];
        let mut count = 0_usize;
        for (index, entry) in bytes.split(|&byte| byte == 0).enumerate() {
            let size = parse_decimal(entry)
                .filter(|size| (MIN_DISK_SIZE_MIB..=MAX_DISK_SIZE_MIB).contains(size))
                .ok_or(Some(Problem::BadEntry(index)))?;
            let slot = sizes.get_mut(index).ok_or_else(|| {
                Some(Problem::OutOfRange(
                    u32::try_from(index + 1).unwrap_or(u32::MAX),
                ))
            })?;
            *slot = size;
            count = index + 1;
        }
        if count == 0 {
            return Err(Some(Problem::BadEntry(0)));
        }
        Ok((sizes, u32::try_from(count).unwrap_or(u32::MAX)))
    });
    let problem = match result {
        Ok(value) => return Some(value),
        Err(problem) => problem?,
    };
    report(&BadValue {
        name: names::DISK_SIZES_MIB,
        problem,
        expected: "1 to 16 decimal sizes from 1 to 65536 (MiB), one per disk",
        default: "DiskCount disks of DiskSizeMiB each",
    });
    None
}

fn parse_decimal(text: &[u8]) -> Option<u32> {
    let text = text.trim_ascii();
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0_u32, |value, &byte| {
        let digit = u32::from(byte.checked_sub(b'0').filter(|digit| *digit <= 9)?);
        value.checked_mul(10)?.checked_add(digit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    /// A registry stand-in for the pure rules: name → value, already
    /// resolved across scopes.
    #[derive(Default)]
    struct Values(Vec<(&'static str, Stored)>);

    enum Stored {
        Dword(u32),
        Sz(&'static [u8]),
        MultiSz(&'static [u8]),
    }

    impl Source for Values {
        fn lookup<R>(&mut self, name: &CStr, kind: Kind, f: impl FnOnce(Lookup<'_>) -> R) -> R {
            let name = name.to_str().expect("ASCII name");
            let Some((_, stored)) = self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))
            else {
                return f(Lookup::Missing);
            };
            f(match (stored, kind) {
                (Stored::Dword(value), Kind::Dword) => Lookup::Dword(*value),
                (Stored::Sz(text), Kind::String) => Lookup::String(text),
                (Stored::MultiSz(text), Kind::MultiString) => Lookup::MultiString(text),
                _ => Lookup::Unreadable,
            })
        }
    }

    fn load(values: Vec<(&'static str, Stored)>) -> (Result<Config, ConfigError>, Vec<String>) {
        let mut reports = Vec::new();
        let config = Config::load(&mut Values(values), &mut |bad: &BadValue| {
            reports.push(bad.to_string());
        });
        (config, reports)
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let (config, reports) = load(Vec::new());
        let config = config.expect("valid");
        assert!(reports.is_empty());
        assert_eq!(config.sizes_mib(), &[64]);
        assert_eq!(config.sector_size, 512);
        assert!(!config.read_only);
        assert_eq!(config.vendor_id.padded(), b"VSTOR   ");
        assert_eq!(config.product_id.padded(), b"RAM DISK        ");
        assert_eq!(config.product_revision.padded(), b"0001");
        assert_eq!(config.serial_prefix.as_bytes(), b"VST");
    }

    #[test]
    fn good_values_are_used() {
        let (config, reports) = load(vec![
            ("DiskCount", Stored::Dword(3)),
            ("DiskSizeMiB", Stored::Dword(8)),
            ("SectorSize", Stored::Dword(4096)),
            ("ReadOnly", Stored::Dword(1)),
            ("VendorId", Stored::Sz(b"ACME")),
            ("ProductId", Stored::Sz(b"SIXTEEN CHARS OK")),
            ("ProductRevision", Stored::Sz(b"9.1")),
            ("SerialPrefix", Stored::Sz(b"SN-")),
        ]);
        let config = config.expect("valid");
        assert!(reports.is_empty(), "{reports:?}");
        assert_eq!(config.sizes_mib(), &[8, 8, 8]);
        assert_eq!(config.sector_size, 4096);
        assert!(config.read_only);
        assert_eq!(config.vendor_id.padded(), b"ACME    ");
        assert_eq!(config.product_id.padded(), b"SIXTEEN CHARS OK");
        assert_eq!(config.product_revision.padded(), b"9.1 ");
        assert_eq!(config.serial_prefix.as_bytes(), b"SN-");
    }

    #[test]
    fn per_disk_sizes_come_from_the_multi_string() {
        let (config, reports) = load(vec![("DiskSizesMiB", Stored::MultiSz(b"16\x0032\x00 4 "))]);
        assert!(reports.is_empty(), "{reports:?}");
        assert_eq!(config.expect("valid").sizes_mib(), &[16, 32, 4]);
    }

    #[test]
    fn bad_values_are_reported_once_and_replaced_by_defaults() {
        let cases: Vec<(&'static str, Stored, &str)> = vec![
            (
                "DiskCount",
                Stored::Dword(17),
                "vstor: registry value DiskCount = 17 is out of range; expected a DWORD from \
                 1 to 16; using the default 1.",
            ),
            (
                "DiskCount",
                Stored::Sz(b"2"),
                "vstor: registry value DiskCount has the wrong type; expected a DWORD from 1 to \
                 16; using the default 1.",
            ),
            (
                "DiskSizeMiB",
                Stored::Dword(0),
                "vstor: registry value DiskSizeMiB = 0 is out of range; expected a DWORD from 1 \
                 to 65536 (MiB); using the default 64.",
            ),
            (
                "SectorSize",
                Stored::Dword(1024),
                "vstor: registry value SectorSize = 1024 is out of range; expected 512 or 4096; \
                 using the default 512.",
            ),
            (
                "ReadOnly",
                Stored::Dword(2),
                "vstor: registry value ReadOnly = 2 is out of range; expected 0 or 1; using the \
                 default 0.",
            ),
            (
                "VendorId",
                Stored::Sz(b"NINE CHRS"),
                "vstor: registry value VendorId is 9 characters long, too long; expected up to 8 \
                 ASCII characters; using the default VSTOR.",
            ),
            (
                "ProductId",
                Stored::Sz(b"caf\xe9"),
                "vstor: registry value ProductId contains a character that is not printable \
                 ASCII; expected up to 16 ASCII characters; using the default RAM DISK.",
            ),
            (
                "ProductRevision",
                Stored::Dword(1),
                "vstor: registry value ProductRevision has the wrong type; expected up to 4 ASCII \
                 characters; using the default 0001.",
            ),
            (
                "SerialPrefix",
                Stored::Sz(b"SEVENTEEN-CHARS-X"),
                "vstor: registry value SerialPrefix is 17 characters long, too long; expected up \
                 to 16 ASCII characters; using the default VST.",
            ),
            (
                "DiskSizesMiB",
                Stored::MultiSz(b"16\x00big"),
                "vstor: registry value DiskSizesMiB entry 1 is not a valid size; expected 1 to 16 \
                 decimal sizes from 1 to 65536 (MiB), one per disk; using the default DiskCount \
                 disks of DiskSizeMiB each.",
            ),
        ];
        for (name, stored, message) in cases {
            let (config, reports) = load(vec![(name, stored)]);
            assert_eq!(reports, vec![message.to_owned()], "{name}");
            assert_eq!(
                config.expect("a bad value still starts"),
                Config::default(),
                "{name}"
            );
        }
    }

    #[test]
    fn conflicting_count_and_sizes_are_a_bad_config() {
        let (config, _) = load(vec![
            ("DiskCount", Stored::Dword(2)),
            ("DiskSizesMiB", Stored::MultiSz(b"1\x002\x003")),
        ]);
        let error = config.expect_err("conflict");
        assert_eq!(
            error,
            ConfigError::CountMismatch {
                disk_count: 2,
                sizes: 3
            }
        );
        assert!(
            error
                .to_string()
                .contains("DiskCount is 2 but DiskSizesMiB lists 3 sizes")
        );
    }

    /// Two scopes: the adapter's values are looked up first.
    struct Scoped {
        adapter: Values,
        global: Values,
        last: Option<Origin>,
    }

    impl Source for Scoped {
        fn lookup<R>(&mut self, name: &CStr, kind: Kind, f: impl FnOnce(Lookup<'_>) -> R) -> R {
            let in_adapter = self
                .adapter
                .lookup(name, kind, |found| found != Lookup::Missing);
            let (origin, values) = if in_adapter {
                (Origin::Adapter, &mut self.adapter)
            } else {
                (Origin::Global, &mut self.global)
            };
            let (found, result) =
                values.lookup(name, kind, |found| (found != Lookup::Missing, f(found)));
            self.last = found.then_some(origin);
            result
        }

        fn last_origin(&self) -> Option<Origin> {
            self.last
        }
    }

    #[test]
    fn the_more_specific_scope_settles_count_against_sizes() {
        let mut scoped = Scoped {
            adapter: Values(vec![("DiskSizesMiB", Stored::MultiSz(b"1\x002\x003"))]),
            global: Values(vec![("DiskCount", Stored::Dword(1))]),
            last: None,
        };
        let config = Config::load(&mut scoped, &mut |_| {}).expect("the adapter's sizes win");
        assert_eq!(config.sizes_mib(), &[1, 2, 3]);

        let mut scoped = Scoped {
            adapter: Values(vec![("DiskCount", Stored::Dword(2))]),
            global: Values(vec![("DiskSizesMiB", Stored::MultiSz(b"1\x002\x003"))]),
            last: None,
        };
        let config = Config::load(&mut scoped, &mut |_| {}).expect("the adapter's count wins");
        assert_eq!(config.sizes_mib(), &[64, 64]);

        let mut scoped = Scoped {
            adapter: Values(vec![
                ("DiskCount", Stored::Dword(2)),
                ("DiskSizesMiB", Stored::MultiSz(b"1\x002\x003")),
            ]),
            global: Values::default(),
            last: None,
        };
        assert_eq!(
            Config::load(&mut scoped, &mut |_| {}),
            Err(ConfigError::CountMismatch {
                disk_count: 2,
                sizes: 3
            })
        );
    }

    #[test]
    fn too_much_memory_is_a_bad_config() {
        let (config, _) = load(vec![
            ("DiskCount", Stored::Dword(16)),
            ("DiskSizeMiB", Stored::Dword(65536)),
        ]);
        assert_eq!(
            config,
            Err(ConfigError::TooLarge {
                total_mib: 16 * 65536
            })
        );
    }

    #[test]
    fn runtime_reload_changes_only_read_only() {
        let mut config = load(vec![("DiskCount", Stored::Dword(2))])
            .0
            .expect("valid");
        let before = config;
        config.load_runtime(
            &mut Values(vec![("ReadOnly", Stored::Dword(1))]),
            &mut |_| {},
        );
        assert!(config.read_only);
        config.read_only = false;
        assert_eq!(config, before);
    }

    #[test]
    fn effective_config_text_names_every_setting() {
        let config = load(vec![("DiskSizesMiB", Stored::MultiSz(b"16\x0032"))])
            .0
            .expect("valid");
        let mut text = String::new();
        config.write_effective(&mut text).expect("fmt");
        assert_eq!(
            text,
            "DiskCount=2;DiskSizesMiB=16,32;SectorSize=512;ReadOnly=0;VendorId=VSTOR;\
             ProductId=RAM DISK;ProductRevision=0001;SerialPrefix=VST;TargetPorts=1"
        );
    }

    #[test]
    fn decimal_parsing_rejects_garbage_and_overflow() {
        assert_eq!(parse_decimal(b" 42 "), Some(42));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"4x"), None);
        assert_eq!(parse_decimal(b"99999999999"), None);
    }
}
