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
//! `DbgPrint`) and passed over: a bad value of the adapter's own is replaced
//! by the global value when that one is good, and otherwise by the default;
//! the adapter still starts. Only a configuration that cannot be honoured as
//! a whole is rejected ([`ConfigError`]), which fails find-adapter with
//! `SP_RETURN_BAD_CONFIG`.

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
/// Largest total of all disks of one adapter, in MiB: the cap that holds
/// whatever the machine, and the only one when the kernel does not report
/// its physical memory.
pub const MAX_TOTAL_SIZE_MIB: u64 = 256 * 1024;
/// One adapter's disks may take at most physical memory divided by this:
/// half of it.
///
/// The disks live in nonpaged pool, which stays resident: Windows can never
/// page it out or reclaim it under memory pressure, and nothing in the
/// kernel stops one driver's nonpaged pool from taking most of the machine.
/// Half leaves Windows and its applications at least as much memory as the
/// disks hold, on a small machine and on a large one alike (a fixed reserve
/// would be too much for the one or too little for the other). Microsoft
/// documents no such limit for a RAM disk; this is vstor's choice.
pub const PHYSICAL_MEMORY_DIVISOR: u64 = 2;
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
    /// Looks `name` up as `kind` in `scope` alone and hands the result to
    /// `f`, once ([`Lookup::Missing`] when the scope has no value of that
    /// name). `f` is a trait object so that the registry code exists once in
    /// the driver image, not once per setting type.
    fn lookup(&mut self, scope: Origin, name: &CStr, kind: Kind, f: &mut dyn FnMut(Lookup<'_>));
}

/// A registry scope; the adapter scope is the more specific.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// `Parameters\Device`, shared by every adapter.
    Global,
    /// `Parameters\Device<N>`, this adapter's own; `N` is the adapter's
    /// Storport port number, not an index of vstor's adapters.
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
    /// The scope the value is in.
    pub scope: Origin,
    /// Whether the global value (`true`) or the default replaces it.
    pub replaced_by_global: bool,
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
        f.write_str(match self.scope {
            Origin::Adapter => " of this adapter (Parameters\\Device<N>) ",
            Origin::Global => " ",
        })?;
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
        write!(f, "; expected {}; using ", Plain(self.expected))?;
        if self.replaced_by_global {
            f.write_str("the value all adapters share (Parameters\\Device).")
        } else {
            write!(f, "the default {}.", Plain(self.default))
        }
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
    /// The disks together need more than their share of this machine's
    /// physical memory ([`PHYSICAL_MEMORY_DIVISOR`]).
    MoreThanMemory {
        /// Total requested, in MiB.
        total_mib: u64,
        /// The most the disks may take here, in MiB.
        limit_mib: u64,
        /// The machine's physical memory, in MiB.
        physical_mib: u64,
    },
}

impl ConfigError {
    /// What is wrong and how to put it right, as one clause each, without
    /// saying what vstor does about it (that depends on the start).
    fn problem(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::CountMismatch { disk_count, sizes } => write!(
                f,
                "DiskCount is {} but DiskSizesMiB lists {} sizes; set one size per disk or \
                 remove one of the two values",
                Dec(disk_count.into()),
                Dec(sizes.into())
            ),
            Self::TooLarge { total_mib } => write!(
                f,
                "the disks need {} MiB in all, more than the {} MiB one adapter may use; lower \
                 DiskCount or the disk sizes",
                Dec(total_mib),
                Dec(MAX_TOTAL_SIZE_MIB)
            ),
            Self::MoreThanMemory {
                total_mib,
                limit_mib,
                physical_mib,
            } => write!(
                f,
                "the disks need {} MiB in all, more than the {} MiB one adapter may take: half \
                 of the {} MiB of physical memory, since disks in nonpaged pool are never paged \
                 out; lower DiskCount or the disk sizes",
                Dec(total_mib),
                Dec(limit_mib),
                Dec(physical_mib)
            ),
        }
    }

    /// The error as a clause for other messages: what is wrong and how to
    /// put it right.
    #[must_use]
    pub const fn problem_text(&self) -> impl fmt::Display + '_ {
        ProblemText(self)
    }
}

/// [`ConfigError::problem_text`].
struct ProblemText<'a>(&'a ConfigError);

impl fmt::Display for ProblemText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.problem(f)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("vstor: ")?;
        self.problem(f)?;
        f.write_str(". The adapter does not start.")
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
        if let Some((count, _)) = explicit_count {
            config.disk_count = count;
        }
        if let Some((size, _)) = read_dword(
            source,
            report,
            names::DISK_SIZE_MIB,
            MIN_DISK_SIZE_MIB..=MAX_DISK_SIZE_MIB,
            "a DWORD from 1 to 65536 (MiB)",
            "64",
        ) {
            config.disk_size_mib = [size; MAX_DISKS];
        }
        if let Some(((sizes, count), sizes_origin)) = read_sizes(source, report) {
            // Of two disagreeing values the one in the more specific scope
            // wins (an adapter's own `DiskSizesMiB` over the INF's global
            // `DiskCount`); in the same scope they contradict each other.
            let sizes_win = match explicit_count {
                Some((disk_count, count_origin)) if disk_count != count => {
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
        if let Some((size, _)) = read_setting(
            source,
            report,
            Setting {
                name: names::SECTOR_SIZE,
                kind: Kind::Dword,
                expected: "512 or 4096",
                default: "512",
            },
            |found| match found {
                Lookup::Dword(size @ (512 | 4096)) => Ok(size),
                found => Err(dword_problem(found)),
            },
        ) {
            config.sector_size = size;
        }
        config.load_identity(source, report);
        if let Some((ports, _)) = read_dword(
            source,
            report,
            names::TARGET_PORTS,
            1..=u32::from(crate::scsi::MAX_PORTS),
            "a DWORD from 1 to 8",
            "1",
        ) {
            config.target_ports = u8::try_from(ports).unwrap_or(1);
        }
        let total_mib = config.total_mib();
        if total_mib > MAX_TOTAL_SIZE_MIB {
            return Err(ConfigError::TooLarge { total_mib });
        }
        Ok(config)
    }

    /// The size of all disks together, in MiB.
    #[must_use]
    pub fn total_mib(&self) -> u64 {
        self.sizes_mib().iter().map(|&size| u64::from(size)).sum()
    }

    /// The most the disks may take on a machine with `physical_bytes` of
    /// physical memory, in MiB ([`PHYSICAL_MEMORY_DIVISOR`]).
    #[must_use]
    pub const fn memory_limit_mib(physical_bytes: u64) -> u64 {
        (physical_bytes / PHYSICAL_MEMORY_DIVISOR) >> 20
    }

    /// Checks the disks against their share of `physical_bytes` of physical
    /// memory.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MoreThanMemory`] when they need more; find-adapter
    /// then returns `SP_RETURN_BAD_CONFIG`.
    pub fn check_physical_memory(&self, physical_bytes: u64) -> Result<(), ConfigError> {
        let total_mib = self.total_mib();
        let limit_mib = Self::memory_limit_mib(physical_bytes);
        if total_mib > limit_mib {
            return Err(ConfigError::MoreThanMemory {
                total_mib,
                limit_mib,
                physical_mib: physical_bytes >> 20,
            });
        }
        Ok(())
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
        if let Some((value, _)) = read_dword(source, report, names::READ_ONLY, 0..=1, "0 or 1", "0")
        {
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

    /// The settings that shape the disks — their number, sizes, block size,
    /// identity and target ports, which cannot change while an adapter keeps
    /// its disks and their data — on which `self` and `other` differ.
    /// `ReadOnly` is not one of them: it may change at any time.
    #[must_use]
    pub fn layout_changes(&self, other: &Self) -> LayoutChanges {
        let mut changes = LayoutChanges::default();
        let settings: [(&'static str, bool); LAYOUT_SETTINGS] = [
            ("DiskCount", self.disk_count != other.disk_count),
            (
                "DiskSizeMiB or DiskSizesMiB",
                self.disk_count == other.disk_count && self.sizes_mib() != other.sizes_mib(),
            ),
            ("SectorSize", self.sector_size != other.sector_size),
            (
                "VendorId, ProductId or ProductRevision",
                self.vendor_id != other.vendor_id
                    || self.product_id != other.product_id
                    || self.product_revision != other.product_revision,
            ),
            ("SerialPrefix", self.serial_prefix != other.serial_prefix),
            ("TargetPorts", self.target_ports != other.target_ports),
        ];
        for (name, differs) in settings {
            if let Some(slot) = changes.names.get_mut(changes.count)
                && differs
            {
                *slot = name;
                changes.count += 1;
            }
        }
        changes
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

/// The names of the settings that shape the disks on which two
/// configurations differ ([`Config::layout_changes`]), in the order
/// `EffectiveConfig` lists them; shown joined with ", ".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayoutChanges {
    names: [&'static str; LAYOUT_SETTINGS],
    count: usize,
}

/// How many settings shape the disks.
const LAYOUT_SETTINGS: usize = 6;

impl LayoutChanges {
    /// Whether the two configurations shape the same disks.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The names that differ.
    #[must_use]
    pub fn names(&self) -> &[&'static str] {
        self.names.get(..self.count).unwrap_or(&[])
    }
}

impl fmt::Display for LayoutChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, name) in self.names().iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

/// What a setting is called and what replaces a bad value of it.
#[derive(Clone, Copy)]
struct Setting {
    name: &'static CStr,
    kind: Kind,
    expected: &'static str,
    default: &'static str,
}

/// The value of `setting` in force and its scope: the adapter's own when
/// `parse` accepts it, else the global one when `parse` accepts that, else
/// `None` (the default applies). Each bad value passed over is reported
/// once, saying what replaces it; `parse` gives `Err(None)` for a missing
/// value and `Err(Some(problem))` for a bad one.
fn read_setting<T>(
    source: &mut impl Source,
    report: &mut impl FnMut(&BadValue),
    setting: Setting,
    mut parse: impl FnMut(Lookup<'_>) -> Result<T, Option<Problem>>,
) -> Option<(T, Origin)> {
    let mut passed_over = None;
    for scope in [Origin::Adapter, Origin::Global] {
        let mut parsed = Err(None);
        source.lookup(scope, setting.name, setting.kind, &mut |found| {
            parsed = parse(found);
        });
        let problem = match parsed {
            Ok(value) => {
                report_bad(report, setting, passed_over, true);
                return Some((value, scope));
            }
            Err(problem) => problem,
        };
        if scope == Origin::Adapter {
            passed_over = problem.map(|problem| (problem, scope));
        } else {
            report_bad(report, setting, passed_over, false);
            report_bad(
                report,
                setting,
                problem.map(|problem| (problem, scope)),
                false,
            );
        }
    }
    None
}

/// Reports `bad` (a problem and the scope it is in), if any. Out of line:
/// one copy for every setting type.
#[inline(never)]
fn report_bad(
    report: &mut impl FnMut(&BadValue),
    setting: Setting,
    bad: Option<(Problem, Origin)>,
    replaced_by_global: bool,
) {
    if let Some((problem, scope)) = bad {
        report(&BadValue {
            name: setting.name,
            scope,
            replaced_by_global,
            problem,
            expected: setting.expected,
            default: setting.default,
        });
    }
}

/// The problem with a DWORD lookup `parse` did not accept.
const fn dword_problem(found: Lookup<'_>) -> Option<Problem> {
    match found {
        Lookup::Missing => None,
        Lookup::Dword(value) => Some(Problem::OutOfRange(value)),
        _ => Some(Problem::WrongType),
    }
}

fn read_dword(
    source: &mut impl Source,
    report: &mut impl FnMut(&BadValue),
    name: &'static CStr,
    range: core::ops::RangeInclusive<u32>,
    expected: &'static str,
    default: &'static str,
) -> Option<(u32, Origin)> {
    read_setting(
        source,
        report,
        Setting {
            name,
            kind: Kind::Dword,
            expected,
            default,
        },
        |found| match found {
            Lookup::Dword(value) if range.contains(&value) => Ok(value),
            found => Err(dword_problem(found)),
        },
    )
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
    let default = match max {
        8 => DEFAULT_VENDOR_ID,
        4 => DEFAULT_PRODUCT_REVISION,
        _ if name == names::SERIAL_PREFIX => DEFAULT_SERIAL_PREFIX,
        _ => DEFAULT_PRODUCT_ID,
    };
    let setting = Setting {
        name,
        kind: Kind::String,
        expected,
        default,
    };
    read_setting(source, report, setting, |found| match found {
        Lookup::Missing => Err(None),
        Lookup::String(text) if text.len() > max => Err(Some(Problem::TooLong(text.len()))),
        Lookup::String(text) => Ascii::new(text).ok_or(Some(Problem::NotAscii)),
        _ => Err(Some(Problem::WrongType)),
    })
    .map(|(text, _)| text)
}

/// `DiskSizesMiB`: one decimal size per disk, with the number of disks.
fn read_sizes(
    source: &mut impl Source,
    report: &mut impl FnMut(&BadValue),
) -> Option<(([u32; MAX_DISKS], u32), Origin)> {
    let setting = Setting {
        name: names::DISK_SIZES_MIB,
        kind: Kind::MultiString,
        expected: "1 to 16 decimal sizes from 1 to 65536 (MiB), one per disk",
        default: "DiskCount disks of DiskSizeMiB each",
    };
    read_setting(source, report, setting, |found| {
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
    })
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

    /// One registry scope for the pure rules: name → value.
    #[derive(Default)]
    struct Values(Vec<(&'static str, Stored)>);

    enum Stored {
        Dword(u32),
        Sz(&'static [u8]),
        MultiSz(&'static [u8]),
    }

    impl Values {
        fn find(&self, name: &CStr, kind: Kind, f: &mut dyn FnMut(Lookup<'_>)) {
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
            });
        }
    }

    fn load(values: Vec<(&'static str, Stored)>) -> (Result<Config, ConfigError>, Vec<String>) {
        let mut reports = Vec::new();
        let mut source = Scoped {
            adapter: Values::default(),
            global: Values(values),
        };
        let config = Config::load(&mut source, &mut |bad: &BadValue| {
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

    /// Two scopes.
    struct Scoped {
        adapter: Values,
        global: Values,
    }

    impl Source for Scoped {
        fn lookup(
            &mut self,
            scope: Origin,
            name: &CStr,
            kind: Kind,
            f: &mut dyn FnMut(Lookup<'_>),
        ) {
            match scope {
                Origin::Adapter => self.adapter.find(name, kind, f),
                Origin::Global => self.global.find(name, kind, f),
            }
        }
    }

    fn load_scoped(
        adapter: Vec<(&'static str, Stored)>,
        global: Vec<(&'static str, Stored)>,
    ) -> (Config, Vec<String>) {
        let mut reports = Vec::new();
        let mut scoped = Scoped {
            adapter: Values(adapter),
            global: Values(global),
        };
        let config = Config::load(&mut scoped, &mut |bad: &BadValue| {
            reports.push(bad.to_string());
        })
        .expect("valid");
        (config, reports)
    }

    #[test]
    fn a_bad_value_of_the_adapter_gives_way_to_a_good_global_one() {
        let (config, reports) = load_scoped(
            vec![
                ("DiskCount", Stored::Dword(99)),
                ("VendorId", Stored::Dword(7)),
            ],
            vec![
                ("DiskCount", Stored::Dword(3)),
                ("VendorId", Stored::Sz(b"GLOBAL")),
            ],
        );
        assert_eq!(config.disk_count, 3);
        assert_eq!(config.vendor_id.as_bytes(), b"GLOBAL");
        assert_eq!(
            reports,
            [
                "vstor: registry value DiskCount of this adapter (Parameters\\Device<N>) = 99 is out \
                 of range; expected a DWORD from 1 to 16; using the value all adapters share \
                 (Parameters\\Device).",
                "vstor: registry value VendorId of this adapter (Parameters\\Device<N>) has the wrong \
                 type; expected up to 8 ASCII characters; using the value all adapters share \
                 (Parameters\\Device).",
            ]
        );
    }

    #[test]
    fn bad_values_in_both_scopes_are_each_reported_and_the_default_applies() {
        let (config, reports) = load_scoped(
            vec![("SectorSize", Stored::Dword(1024))],
            vec![("SectorSize", Stored::Sz(b"4096"))],
        );
        assert_eq!(config.sector_size, 512);
        assert_eq!(
            reports,
            [
                "vstor: registry value SectorSize of this adapter (Parameters\\Device<N>) = 1024 is \
                 out of range; expected 512 or 4096; using the default 512.",
                "vstor: registry value SectorSize has the wrong type; expected 512 or 4096; using \
                 the default 512.",
            ]
        );
    }

    #[test]
    fn a_good_value_of_the_adapter_is_used_without_reading_a_bad_global_one() {
        let (config, reports) = load_scoped(
            vec![("ReadOnly", Stored::Dword(1))],
            vec![("ReadOnly", Stored::Dword(5))],
        );
        assert!(config.read_only);
        assert!(reports.is_empty(), "{reports:?}");
    }

    #[test]
    fn a_bad_value_of_the_adapter_with_no_global_one_gives_the_default() {
        let (config, reports) = load_scoped(vec![("TargetPorts", Stored::Dword(0))], Vec::new());
        assert_eq!(config.target_ports, 1);
        assert_eq!(
            reports,
            [
                "vstor: registry value TargetPorts of this adapter (Parameters\\Device<N>) = 0 is out \
              of range; expected a DWORD from 1 to 8; using the default 1."
            ]
        );
    }

    #[test]
    fn the_more_specific_scope_settles_count_against_sizes() {
        let mut scoped = Scoped {
            adapter: Values(vec![("DiskSizesMiB", Stored::MultiSz(b"1\x002\x003"))]),
            global: Values(vec![("DiskCount", Stored::Dword(1))]),
        };
        let config = Config::load(&mut scoped, &mut |_| {}).expect("the adapter's sizes win");
        assert_eq!(config.sizes_mib(), &[1, 2, 3]);

        let mut scoped = Scoped {
            adapter: Values(vec![("DiskCount", Stored::Dword(2))]),
            global: Values(vec![("DiskSizesMiB", Stored::MultiSz(b"1\x002\x003"))]),
        };
        let config = Config::load(&mut scoped, &mut |_| {}).expect("the adapter's count wins");
        assert_eq!(config.sizes_mib(), &[64, 64]);

        let mut scoped = Scoped {
            adapter: Values(vec![
                ("DiskCount", Stored::Dword(2)),
                ("DiskSizesMiB", Stored::MultiSz(b"1\x002\x003")),
            ]),
            global: Values::default(),
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
    fn disks_may_take_half_of_physical_memory() {
        let (config, _) = load(vec![
            ("DiskCount", Stored::Dword(2)),
            ("DiskSizeMiB", Stored::Dword(512)),
        ]);
        let config = config.expect("valid");
        assert_eq!(config.total_mib(), 1024);
        assert_eq!(Config::memory_limit_mib(2048 << 20), 1024);
        assert_eq!(config.check_physical_memory(2048 << 20), Ok(()));
        assert_eq!(
            config.check_physical_memory((2048 << 20) - 2),
            Err(ConfigError::MoreThanMemory {
                total_mib: 1024,
                limit_mib: 1023,
                physical_mib: 2047
            })
        );
        assert_eq!(
            ConfigError::MoreThanMemory {
                total_mib: 1024,
                limit_mib: 1023,
                physical_mib: 2047
            }
            .to_string(),
            "vstor: the disks need 1024 MiB in all, more than the 1023 MiB one adapter may take: \
             half of the 2047 MiB of physical memory, since disks in nonpaged pool are never \
             paged out; lower DiskCount or the disk sizes. The adapter does not start."
        );
    }

    #[test]
    fn runtime_reload_changes_only_read_only() {
        let mut config = load(vec![("DiskCount", Stored::Dword(2))])
            .0
            .expect("valid");
        let before = config;
        let mut source = Scoped {
            adapter: Values(vec![("ReadOnly", Stored::Dword(1))]),
            global: Values::default(),
        };
        config.load_runtime(&mut source, &mut |_| {});
        assert!(config.read_only);
        config.read_only = false;
        assert_eq!(config, before);
    }

    #[test]
    fn layout_changes_name_the_settings_that_reshape_the_disks() {
        let base = load(vec![("DiskCount", Stored::Dword(2))])
            .0
            .expect("valid");
        let names = |other: &Config| base.layout_changes(other).to_string();
        assert!(base.layout_changes(&base).is_empty());
        let mut read_only = base;
        read_only.read_only = true;
        assert!(
            base.layout_changes(&read_only).is_empty(),
            "ReadOnly may change"
        );
        let mut count = base;
        count.disk_count = 3;
        assert_eq!(names(&count), "DiskCount");
        let mut sizes = base;
        sizes.disk_size_mib[1] = 128;
        assert_eq!(names(&sizes), "DiskSizeMiB or DiskSizesMiB");
        let mut unused = base;
        unused.disk_size_mib[5] = 128;
        assert!(
            base.layout_changes(&unused).is_empty(),
            "sizes past DiskCount are no disk's"
        );
        let mut several = base;
        several.sector_size = 4096;
        several.product_id = Ascii::new(b"OTHER").expect("ASCII");
        several.serial_prefix = Ascii::new(b"S").expect("ASCII");
        several.target_ports = 2;
        assert_eq!(
            names(&several),
            "SectorSize, VendorId, ProductId or ProductRevision, SerialPrefix, TargetPorts"
        );
        assert_eq!(base.layout_changes(&several).names().len(), 4);
    }

    #[test]
    fn a_config_error_reads_as_a_clause_and_as_a_message() {
        let error = ConfigError::CountMismatch {
            disk_count: 2,
            sizes: 3,
        };
        assert_eq!(
            error.problem_text().to_string(),
            "DiskCount is 2 but DiskSizesMiB lists 3 sizes; set one size per disk or remove one \
             of the two values"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "vstor: {}. The adapter does not start.",
                error.problem_text()
            )
        );
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
