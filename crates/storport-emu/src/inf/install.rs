//! Installing a driver from its INF into the emulated registry, the way
//! `SetupAPI` and the service control manager would leave it.
//!
//! The path through the INF (sources: the "INF Manufacturer Section", "INF
//! Models Section", "INF `DDInstall` Section", "INF `DDInstall.Services`
//! Section", "INF `AddService` Directive", "INF `AddReg` Directive" and "INF
//! `DelReg` Directive" pages of Microsoft's device installation docs):
//!
//! 1. `[Manufacturer]`: `%Mfg% = Models[, TargetOSVersion...]`. With
//!    decorations the emulated platform (x64, Windows 10.0 build 26100)
//!    picks the best match among `NT` and `NTamd64[.major[.minor[.product
//!    [.suite[.build]]]]]` (an architecture beats none, then the higher
//!    version) and reads `[Models.Decoration]`; without decorations it reads
//!    `[Models]`.
//! 2. The models section: `description = install-section, hw-id[,
//!    compatible-id...]`. The chosen entry is the first one of the first
//!    manufacturer, or the first whose hardware or compatible id equals
//!    [`InstallOptions::hardware_id`] (case-insensitive).
//! 3. `[install-section.NTamd64]`, else `[install-section.NT]`, else
//!    `[install-section]` is the `DDInstall` section; `<that name>.Services`
//!    holds `AddService = name, flags, service-install-section[,
//!    event-log-install-section[, type[, event-name]]]`. The service flagged
//!    `SPSVCINST_ASSOCSERVICE` (0x2) is the device's function driver.
//! 4. The service-install section writes `Services\<name>`: `ServiceType` →
//!    `Type`, `StartType` → `Start`, `ErrorControl` → `ErrorControl` (`REG_DWORD`),
//!    `ServiceBinary` → `ImagePath` (`REG_EXPAND_SZ`), `LoadOrderGroup` →
//!    `Group`, `DisplayName`, `Description` (`REG_SZ`), `Dependencies` →
//!    `DependOnService` / `DependOnGroup` (`+group`) (`REG_MULTI_SZ`),
//!    `StartName` → `ObjectName`. The first four are required. Then its
//!    `AddReg` and `DelReg` sections run with HKR = `Services\<name>`.
//! 5. Add-registry lines `root, [subkey], [value-name], [flags], [value...]`:
//!    HKR is the section's key; `HKLM, System\CurrentControlSet\...` maps to
//!    the model's root; other roots are outside the model and are listed in
//!    [`Installed::notes`]. Flags (`FLG_ADDREG_*`): the type is the high word
//!    (0 `REG_SZ`, 0x0001 `REG_MULTI_SZ`, 0x0002 `REG_EXPAND_SZ`) unless
//!    BINVALUETYPE (0x1) is set, when the high word is the `REG_*` number
//!    (0 → `REG_BINARY`, 0x0001 → `REG_DWORD`, 0x0002 → `REG_NONE`, any other n →
//!    type n, e.g. 0x000B0001 `REG_QWORD`); NOCLOBBER 0x2, DELVAL 0x4, APPEND
//!    0x8, KEYONLY 0x10 / `KEYONLY_COMMON` 0x2000, OVERWRITEONLY 0x20 are
//!    honoured; 64BITKEY 0x1000 / 32BITKEY 0x4000 change nothing on the
//!    emulated x64 registry. A numeric value is decimal or 0x hex; binary
//!    data is one hex byte per field.
//!
//! Decisions where the pages leave room: a line with no value name and no
//! value creates the key only; a string value without a value field is the
//! empty string, a DWORD without one is 0; a DWORD given as several fields
//! must be exactly 4 hex bytes; a QWORD (0x000B0001) is one number field or
//! exactly 8 hex bytes; empty strings in a multi-string list are skipped
//! (`REG_MULTI_SZ` cannot hold them). The `DDInstall` section's own `AddReg` goes
//! to the driver key `Control\Class\{ClassGuid}\0000`, `DDInstall.HW`'s to
//! `Enum\<HWID>\0000\Device Parameters`; `Include`/`Needs` are not followed
//! (noted). The event-log section writes under
//! `Services\EventLog\<type>\<event-name>`.

use std::fmt;

use super::parse::{Entry, Inf, Section};
use crate::registry::{RegType, RegValue, Registry, parse_number};

/// The emulated platform for decorated section names.
const ARCH: &str = "amd64";
/// The emulated Windows version (major, minor, build).
const OS_VERSION: (u64, u64, u64) = (10, 0, 26100);
/// `SPSVCINST_ASSOCSERVICE`: the `AddService` entry of the function driver.
const SPSVCINST_ASSOCSERVICE: u32 = 0x2;

const FLG_ADDREG_BINVALUETYPE: u32 = 0x1;
const FLG_ADDREG_NOCLOBBER: u32 = 0x2;
const FLG_ADDREG_DELVAL: u32 = 0x4;
const FLG_ADDREG_APPEND: u32 = 0x8;
const FLG_ADDREG_KEYONLY: u32 = 0x10;
const FLG_ADDREG_OVERWRITEONLY: u32 = 0x20;
const FLG_ADDREG_64BITKEY: u32 = 0x1000;
const FLG_ADDREG_KEYONLY_COMMON: u32 = 0x2000;
const FLG_ADDREG_32BITKEY: u32 = 0x4000;
const KNOWN_LOW_FLAGS: u32 = FLG_ADDREG_BINVALUETYPE
    | FLG_ADDREG_NOCLOBBER
    | FLG_ADDREG_DELVAL
    | FLG_ADDREG_APPEND
    | FLG_ADDREG_KEYONLY
    | FLG_ADDREG_OVERWRITEONLY
    | FLG_ADDREG_64BITKEY
    | FLG_ADDREG_KEYONLY_COMMON
    | FLG_ADDREG_32BITKEY;

/// What to install.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstallOptions {
    /// The hardware id to install for (`root\vstor`); `None` takes the first
    /// model of the first manufacturer.
    pub hardware_id: Option<String>,
}

/// What an installation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    /// The function driver's service (the `Services` subkey Storport uses).
    pub service: String,
    /// Every service the INF added, in order.
    pub services: Vec<String>,
    /// The hardware id of the chosen model entry.
    pub hardware_id: String,
    /// The models section read (with its decoration).
    pub models_section: String,
    /// The `DDInstall` section used (with its decoration).
    pub install_section: String,
    /// Things the INF asks for that the model does not cover, as sentences.
    pub notes: Vec<String>,
}

/// Where in the INF a problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct At {
    /// The section.
    pub section: String,
    /// The line (1-based); 0 when the problem is the section as a whole.
    pub line: usize,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "[{}]", self.section)
        } else {
            write!(f, "INF line {} in [{}]", self.line, self.section)
        }
    }
}

/// Why the INF cannot be installed. Nothing is partially rolled back: the
/// caller discards the registry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    /// No `[Manufacturer]` entries.
    #[error(
        "the INF has no [Manufacturer] section with an entry; expected `%Mfg% = Models[,NTamd64]`, so there is nothing to install"
    )]
    NoManufacturer,
    /// A referenced section does not exist.
    #[error(
        "{at} refers to section [{name}], which the INF does not have; expected that section to exist"
    )]
    MissingSection {
        /// The missing name.
        name: String,
        /// Where it is referenced.
        at: At,
    },
    /// No decoration of a manufacturer entry fits the emulated platform.
    #[error(
        "{at}: none of the target decorations `{decorations}` fits x64 Windows 10.0; expected one such as `NTamd64` or `NTamd64.10.0`"
    )]
    NoPlatformMatch {
        /// The decorations listed.
        decorations: String,
        /// The manufacturer entry.
        at: At,
    },
    /// No model entry has the hardware id asked for.
    #[error("no model entry in the INF has hardware id `{id}`; the INF offers: {offered}")]
    HardwareIdNotFound {
        /// The id asked for.
        id: String,
        /// The ids the INF lists.
        offered: String,
    },
    /// The models sections have no entries.
    #[error(
        "the INF's models sections have no entries; expected `description = install-section, hardware-id`"
    )]
    NoModels,
    /// The install section has no `AddService` entry.
    #[error(
        "[{section}] has no `AddService` entry with a service name; expected `AddService = name, 0x00000002, service-install-section`, so no driver would be loaded"
    )]
    NoService {
        /// The `.Services` section looked at.
        section: String,
    },
    /// A required directive is missing.
    #[error(
        "[{section}] has no `{directive}` entry; expected `{directive} = ...`, which every service-install section needs"
    )]
    MissingDirective {
        /// The service-install section.
        section: String,
        /// The directive.
        directive: &'static str,
    },
    /// A malformed line.
    #[error("{at}: {problem}")]
    BadLine {
        /// Where.
        at: At,
        /// What is wrong, with the expected form.
        problem: String,
    },
    /// The INF names its sections so often that installing it would visit
    /// more lines than its size allows.
    #[error(
        "{at}: installing the INF would visit more than {limit} lines, although it has {lines} (a section named again and again is visited each time); expected each add-registry, del-registry and service-install section to be named a few times, so the installation stopped here"
    )]
    TooMuchWork {
        /// Where the budget ran out.
        at: At,
        /// The budget: 8 visits per line of the INF plus 1,000,000.
        limit: u64,
        /// The lines of the INF.
        lines: u64,
    },
}

/// Lines visited beyond the INF's own, whatever the INF: room for sections
/// named several times.
const WORK_ALLOWANCE: u64 = 1_000_000;
/// Visits allowed per line of the INF.
const WORK_PER_LINE: u64 = 8;

/// The notes of an installation and what is left of its work budget: each
/// line visited (an add-registry or del-registry line, a directive, a
/// service-install line looked through, a string appended to a
/// `REG_MULTI_SZ`) costs one. A section named many times is visited each
/// time, so without a budget a small INF could ask for quadratic work; with
/// it, installing takes time linear in the size of the INF.
struct Work {
    notes: Vec<String>,
    left: u64,
    limit: u64,
    lines: u64,
}

impl Work {
    fn for_inf(inf: &Inf) -> Self {
        let lines: u64 = inf
            .sections()
            .iter()
            .map(|s| u64::try_from(s.entries.len()).unwrap_or(u64::MAX))
            .fold(0, u64::saturating_add);
        let limit = lines
            .saturating_mul(WORK_PER_LINE)
            .saturating_add(WORK_ALLOWANCE);
        Self {
            notes: Vec::new(),
            left: limit,
            limit,
            lines,
        }
    }

    /// Takes `visits` from the budget, or fails naming where it ran out.
    fn charge(
        &mut self,
        visits: usize,
        section: &Section,
        line: usize,
    ) -> Result<(), InstallError> {
        let visits = u64::try_from(visits).unwrap_or(u64::MAX);
        match self.left.checked_sub(visits) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(InstallError::TooMuchWork {
                at: At {
                    section: section.name.clone(),
                    line,
                },
                limit: self.limit,
                lines: self.lines,
            }),
        }
    }
}

fn bad(section: &Section, entry: &Entry, problem: String) -> InstallError {
    InstallError::BadLine {
        at: At {
            section: section.name.clone(),
            line: entry.line,
        },
        problem,
    }
}

fn require<'a>(
    inf: &'a Inf,
    name: &str,
    section: &str,
    line: usize,
) -> Result<&'a Section, InstallError> {
    inf.section(name)
        .ok_or_else(|| InstallError::MissingSection {
            name: name.to_owned(),
            at: At {
                section: section.to_owned(),
                line,
            },
        })
}

fn join_path(base: &str, sub: &str) -> String {
    match (base.is_empty(), sub.is_empty()) {
        (_, true) => base.to_owned(),
        (true, false) => sub.to_owned(),
        (false, false) => format!("{base}\\{sub}"),
    }
}

/// How well a `[Manufacturer]` decoration fits the emulated platform:
/// `None` if it does not apply, else a rank (higher is better).
fn decoration_rank(decoration: &str) -> Option<(bool, u64, u64, u64)> {
    let lower = decoration.to_ascii_lowercase();
    let rest = lower.strip_prefix("nt")?;
    let mut parts = rest.split('.');
    let arch = parts.next().unwrap_or("");
    if !(arch.is_empty() || arch == ARCH) {
        return None;
    }
    let mut number = |default: u64| -> Option<u64> {
        match parts.next() {
            None | Some("") => Some(default),
            Some(p) => parse_number(p),
        }
    };
    let major = number(0)?;
    let minor = number(0)?;
    let _product = number(0)?;
    let _suite = number(0)?;
    let build = number(0)?;
    let (os_major, os_minor, os_build) = OS_VERSION;
    if (major, minor, build) > (os_major, os_minor, os_build) {
        return None;
    }
    Some((!arch.is_empty(), major, minor, build))
}

/// The models sections to read, one per `[Manufacturer]` entry.
fn models_sections(inf: &Inf) -> Result<Vec<(String, At)>, InstallError> {
    let manufacturer = inf
        .section("Manufacturer")
        .ok_or(InstallError::NoManufacturer)?;
    if manufacturer.entries.is_empty() {
        return Err(InstallError::NoManufacturer);
    }
    let mut out = Vec::new();
    for entry in &manufacturer.entries {
        let at = At {
            section: manufacturer.name.clone(),
            line: entry.line,
        };
        // `%Mfg% = Models, deco...` or just `Models`.
        let (base, decorations): (&str, Vec<&str>) = match &entry.key {
            Some(_) => (
                entry.value(0),
                entry.values.iter().skip(1).map(String::as_str).collect(),
            ),
            None => (entry.value(0), Vec::new()),
        };
        let decorations: Vec<&str> = decorations.into_iter().filter(|d| !d.is_empty()).collect();
        if decorations.is_empty() {
            out.push((base.to_owned(), at));
            continue;
        }
        let best = decorations
            .iter()
            .filter_map(|d| decoration_rank(d).map(|r| (r, *d)))
            .max_by_key(|(r, _)| *r)
            .ok_or_else(|| InstallError::NoPlatformMatch {
                decorations: decorations.join(","),
                at: at.clone(),
            })?;
        out.push((format!("{base}.{}", best.1), at));
    }
    Ok(out)
}

/// Writes one add-registry section.
fn add_reg(
    inf: &Inf,
    name: &str,
    hkr: &str,
    from: &At,
    registry: &mut Registry,
    work: &mut Work,
) -> Result<(), InstallError> {
    let section = require(inf, name, &from.section, from.line)?;
    for entry in &section.entries {
        work.charge(1, section, entry.line)?;
        let fields = entry.fields();
        let field = |i: usize| fields.get(i).copied().unwrap_or("");
        let Some(key) = resolve_root(section, entry, field(0), field(1), hkr, work)? else {
            continue;
        };
        let value_name = field(2);
        let flags = match field(3) {
            "" => 0,
            text => parse_number(text)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad(section, entry, format!("the flags `{text}` are not a number; expected FLG_ADDREG_* bits as 0x hex or decimal")))?,
        };
        let low = flags & 0xFFFF;
        if low & !KNOWN_LOW_FLAGS != 0 {
            return Err(bad(
                section,
                entry,
                format!(
                    "the flags {flags:#010x} contain bits {:#x} that are not FLG_ADDREG_* values; expected a type in the high word and BINVALUETYPE 0x1, NOCLOBBER 0x2, DELVAL 0x4, APPEND 0x8, KEYONLY 0x10, OVERWRITEONLY 0x20, 64BITKEY 0x1000, KEYONLY_COMMON 0x2000 or 32BITKEY 0x4000",
                    low & !KNOWN_LOW_FLAGS
                ),
            ));
        }
        let data: Vec<&str> = fields.iter().skip(4).copied().collect();
        if low & FLG_ADDREG_DELVAL != 0 {
            if value_name.is_empty() {
                registry.delete_key(&key);
            } else {
                registry.delete_value(&key, value_name);
            }
            continue;
        }
        registry.create_key(&key);
        let key_only = low & (FLG_ADDREG_KEYONLY | FLG_ADDREG_KEYONLY_COMMON) != 0;
        if key_only
            || (value_name.is_empty() && fields.len() <= 4 && data.iter().all(|d| d.is_empty()))
        {
            continue;
        }
        let exists = registry.value(&key, value_name).is_some();
        if (low & FLG_ADDREG_NOCLOBBER != 0 && exists)
            || (low & FLG_ADDREG_OVERWRITEONLY != 0 && !exists)
        {
            continue;
        }
        let mut value = addreg_value(flags, &data).map_err(|p| bad(section, entry, p))?;
        if low & FLG_ADDREG_APPEND != 0 {
            if value.reg_type() != RegType::MULTI_SZ {
                return Err(bad(section, entry, "FLG_ADDREG_APPEND (0x8) is only valid with FLG_ADDREG_TYPE_MULTI_SZ (0x00010000); expected flags 0x00010008".to_owned()));
            }
            let mut list = registry
                .value(&key, value_name)
                .and_then(RegValue::multi_sz_list)
                .unwrap_or_default();
            let added = value.multi_sz_list().unwrap_or_default();
            work.charge(list.len().saturating_add(added.len()), section, entry.line)?;
            let mut present: std::collections::HashSet<String> =
                list.iter().map(|e| e.to_ascii_lowercase()).collect();
            for s in added {
                if present.insert(s.to_ascii_lowercase()) {
                    list.push(s);
                }
            }
            value = RegValue::multi_sz(&list);
        }
        registry.set_value(&key, value_name, value);
    }
    Ok(())
}

/// Maps `root, subkey` to a model path; `None` (with a note) for roots
/// outside the model.
fn resolve_root(
    section: &Section,
    entry: &Entry,
    root: &str,
    subkey: &str,
    hkr: &str,
    work: &mut Work,
) -> Result<Option<String>, InstallError> {
    const CCS: &str = "system\\currentcontrolset";
    match root.to_ascii_uppercase().as_str() {
        "HKR" => Ok(Some(join_path(hkr, subkey))),
        "HKLM" | "HKEY_LOCAL_MACHINE" => {
            let trimmed = subkey.trim_start_matches('\\');
            let lower = trimmed.to_ascii_lowercase();
            if lower == CCS {
                return Ok(Some(String::new()));
            }
            if lower.starts_with(CCS) && trimmed.as_bytes().get(CCS.len()) == Some(&b'\\') {
                return Ok(Some(trimmed[CCS.len() + 1..].to_owned()));
            }
            work.notes.push(format!("INF line {} in [{}] writes HKLM\\{subkey}, which is outside the emulated HKLM\\SYSTEM\\CurrentControlSet; the line was skipped.", entry.line, section.name));
            Ok(None)
        }
        "HKCR" | "HKCU" | "HKU" => {
            work.notes.push(format!("INF line {} in [{}] writes {root}\\{subkey}, which is outside the emulated HKLM\\SYSTEM\\CurrentControlSet; the line was skipped.", entry.line, section.name));
            Ok(None)
        }
        _ => Err(bad(
            section,
            entry,
            format!("`{root}` is not a registry root; expected HKR, HKLM, HKCR, HKCU or HKU"),
        )),
    }
}

fn parse_u32(text: &str) -> Option<u32> {
    parse_number(text).and_then(|n| u32::try_from(n).ok())
}

/// Hex bytes, one per field (an optional `0x` prefix is accepted).
fn hex_bytes(data: &[&str]) -> Result<Vec<u8>, String> {
    data.iter()
        .map(|field| {
            let digits = field.trim_start_matches("0x").trim_start_matches("0X");
            (!digits.is_empty() && digits.len() <= 2)
                .then(|| u8::from_str_radix(digits, 16).ok())
                .flatten()
                .ok_or_else(|| format!("`{field}` is not a byte; expected binary data as hex bytes separated by commas, such as 0a,1b,ff"))
        })
        .collect()
}

/// The value an add-registry line stores.
fn addreg_value(flags: u32, data: &[&str]) -> Result<RegValue, String> {
    let high = flags >> 16;
    let first = data.first().copied().unwrap_or("");
    if flags & FLG_ADDREG_BINVALUETYPE == 0 {
        return match high {
            0 => Ok(RegValue::sz(first)),
            2 => Ok(RegValue::expand_sz(first)),
            1 => Ok(RegValue::multi_sz(
                &data.iter().filter(|s| !s.is_empty()).collect::<Vec<_>>(),
            )),
            _ => Err(format!(
                "the flags {flags:#010x} name no string type; expected 0x00000000 (REG_SZ), 0x00010000 (REG_MULTI_SZ) or 0x00020000 (REG_EXPAND_SZ), or BINVALUETYPE 0x1 with a REG_* number in the high word"
            )),
        };
    }
    match high {
        1 if data.len() <= 1 => match first {
            "" => Ok(RegValue::dword(0)),
            text => parse_u32(text)
                .map(RegValue::dword)
                .ok_or_else(|| format!("`{text}` is not a DWORD; expected a decimal or 0x-prefixed hex number up to 4294967295")),
        },
        1 => {
            let bytes = hex_bytes(data)?;
            if bytes.len() == 4 {
                Ok(RegValue::from_raw(RegType::DWORD, bytes))
            } else {
                Err(format!("a DWORD given as bytes has {} of them; expected exactly 4", bytes.len()))
            }
        }
        11 if data.len() == 1 => parse_number(first)
            .map(RegValue::qword)
            .ok_or_else(|| format!("`{first}` is not a QWORD; expected a decimal or 0x-prefixed hex number, or 8 hex bytes")),
        11 => {
            let bytes = hex_bytes(data)?;
            if bytes.len() == 8 {
                Ok(RegValue::from_raw(RegType::QWORD, bytes))
            } else {
                Err(format!("a QWORD given as bytes has {} of them; expected exactly 8", bytes.len()))
            }
        }
        0 => Ok(RegValue::binary(&hex_bytes(data)?)),
        2 => Ok(RegValue::from_raw(RegType::NONE, hex_bytes(data)?)),
        n => Ok(RegValue::from_raw(RegType(n), hex_bytes(data)?)),
    }
}

/// Runs one del-registry section.
fn del_reg(
    inf: &Inf,
    name: &str,
    hkr: &str,
    from: &At,
    registry: &mut Registry,
    work: &mut Work,
) -> Result<(), InstallError> {
    let section = require(inf, name, &from.section, from.line)?;
    for entry in &section.entries {
        work.charge(1, section, entry.line)?;
        let fields = entry.fields();
        let field = |i: usize| fields.get(i).copied().unwrap_or("");
        let Some(key) = resolve_root(section, entry, field(0), field(1), hkr, work)? else {
            continue;
        };
        if field(2).is_empty() {
            registry.delete_key(&key);
        } else {
            registry.delete_value(&key, field(2));
        }
    }
    Ok(())
}

/// Runs every `AddReg`/`DelReg` directive of `section` with HKR = `hkr`, and
/// notes the other directives listed in `ignored`.
fn registry_directives(
    inf: &Inf,
    section: &Section,
    hkr: &str,
    registry: &mut Registry,
    work: &mut Work,
) -> Result<(), InstallError> {
    for entry in &section.entries {
        work.charge(1, section, entry.line)?;
        let at = At {
            section: section.name.clone(),
            line: entry.line,
        };
        match entry.key.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("addreg") => {
                for name in entry.values.iter().filter(|v| !v.is_empty()) {
                    add_reg(inf, name, hkr, &at, registry, work)?;
                }
            }
            Some("delreg") => {
                for name in entry.values.iter().filter(|v| !v.is_empty()) {
                    del_reg(inf, name, hkr, &at, registry, work)?;
                }
            }
            Some(d @ ("include" | "needs" | "bitreg")) => work.notes.push(format!(
                "{at} has a `{d}` directive, which the emulator does not follow."
            )),
            _ => {}
        }
    }
    Ok(())
}

/// Writes one service from its service-install section.
fn install_service(
    inf: &Inf,
    name: &str,
    section_name: &str,
    from: &At,
    registry: &mut Registry,
    work: &mut Work,
) -> Result<(), InstallError> {
    let section = require(inf, section_name, &from.section, from.line)?;
    // Ten directives are looked up below, each through the whole section.
    work.charge(
        section.entries.len().saturating_mul(10),
        section,
        section.line,
    )?;
    let key = format!("Services\\{name}");
    let dword = |directive: &'static str,
                 value_name: &str,
                 registry: &mut Registry|
     -> Result<(), InstallError> {
        let entry = section
            .entry(directive)
            .ok_or_else(|| InstallError::MissingDirective {
                section: section.name.clone(),
                directive,
            })?;
        let n = parse_u32(entry.value(0)).ok_or_else(|| bad(section, entry, format!("`{}` is not a number; expected `{directive} = ` a decimal or 0x-prefixed hex number", entry.value(0))))?;
        registry.set_value(&key, value_name, RegValue::dword(n));
        Ok(())
    };
    registry.create_key(&key);
    dword("ServiceType", "Type", registry)?;
    dword("StartType", "Start", registry)?;
    dword("ErrorControl", "ErrorControl", registry)?;
    let binary = section
        .entry("ServiceBinary")
        .ok_or_else(|| InstallError::MissingDirective {
            section: section.name.clone(),
            directive: "ServiceBinary",
        })?;
    registry.set_value(&key, "ImagePath", RegValue::expand_sz(binary.value(0)));
    for (directive, value_name) in [
        ("DisplayName", "DisplayName"),
        ("Description", "Description"),
        ("LoadOrderGroup", "Group"),
        ("StartName", "ObjectName"),
    ] {
        if let Some(entry) = section.entry(directive) {
            registry.set_value(&key, value_name, RegValue::sz(entry.value(0)));
        }
    }
    if let Some(entry) = section.entry("Dependencies") {
        let items = entry.values.iter().filter(|v| !v.is_empty());
        let (groups, services): (Vec<&String>, Vec<&String>) =
            items.partition(|v| v.starts_with('+'));
        let groups: Vec<&str> = groups.iter().map(|g| &g[1..]).collect();
        if !services.is_empty() {
            registry.set_value(&key, "DependOnService", RegValue::multi_sz(&services));
        }
        if !groups.is_empty() {
            registry.set_value(&key, "DependOnGroup", RegValue::multi_sz(&groups));
        }
    }
    registry_directives(inf, section, &key, registry, work)
}

/// Finds the decorated `DDInstall` section name.
fn ddinstall_name(inf: &Inf, base: &str, from: &At) -> Result<String, InstallError> {
    [
        format!("{base}.NT{ARCH}"),
        format!("{base}.NT"),
        base.to_owned(),
    ]
    .into_iter()
    .find_map(|n| inf.section(&n).map(|s| s.name.clone()))
    .ok_or_else(|| InstallError::MissingSection {
        name: base.to_owned(),
        at: from.clone(),
    })
}

/// The chosen model entry: its models section, the entry, its hardware id.
fn choose_model<'a>(
    inf: &'a Inf,
    options: &InstallOptions,
) -> Result<(String, &'a Entry, String), InstallError> {
    let mut offered = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (models_name, at) in models_sections(inf)? {
        // A models section named by several manufacturer entries is read once.
        if !seen.insert(models_name.to_ascii_lowercase()) {
            continue;
        }
        let models = require(inf, &models_name, &at.section, at.line)?;
        for entry in &models.entries {
            let ids: Vec<&str> = entry
                .values
                .iter()
                .skip(1)
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect();
            let Some(&hwid) = ids.first() else { continue };
            offered.push(hwid.to_owned());
            let wanted = options.hardware_id.as_deref();
            if wanted.is_none_or(|w| ids.iter().any(|id| id.eq_ignore_ascii_case(w))) {
                return Ok((models.name.clone(), entry, hwid.to_owned()));
            }
        }
    }
    let offered = if offered.is_empty() {
        "no hardware ids".to_owned()
    } else {
        offered.join(", ")
    };
    Err(options
        .hardware_id
        .as_ref()
        .map_or(InstallError::NoModels, |id| {
            InstallError::HardwareIdNotFound {
                id: id.clone(),
                offered,
            }
        }))
}

/// Runs every `AddService` of `[<install_section>.Services]`; returns all
/// services and the function driver's.
fn add_services(
    inf: &Inf,
    install_section: &str,
    registry: &mut Registry,
    work: &mut Work,
) -> Result<(Vec<String>, String), InstallError> {
    let services_name = format!("{install_section}.Services");
    let services_section = inf
        .section(&services_name)
        .ok_or_else(|| InstallError::NoService {
            section: services_name.clone(),
        })?;
    let mut services = Vec::new();
    let mut associated = None;
    for entry in services_section.entries_with_key("AddService") {
        let name = entry.value(0);
        if name.is_empty() {
            continue;
        }
        let at = At {
            section: services_section.name.clone(),
            line: entry.line,
        };
        let flags = match entry.value(1) {
            "" => 0,
            text => parse_u32(text).ok_or_else(|| bad(services_section, entry, format!("the AddService flags `{text}` are not a number; expected SPSVCINST_* bits such as 0x00000002")))?,
        };
        install_service(inf, name, entry.value(2), &at, registry, work)?;
        let event_log = entry.value(3);
        if !event_log.is_empty() {
            let log_type = match entry.value(4) {
                "" => "System",
                t => t,
            };
            let event_name = match entry.value(5) {
                "" => name,
                n => n,
            };
            let hkr = format!("Services\\EventLog\\{log_type}\\{event_name}");
            registry.create_key(&hkr);
            let section = require(inf, event_log, &at.section, at.line)?;
            registry_directives(inf, section, &hkr, registry, work)?;
        }
        if flags & SPSVCINST_ASSOCSERVICE != 0 && associated.is_none() {
            associated = Some(name.to_owned());
        }
        services.push(name.to_owned());
    }
    let service = if let Some(s) = associated {
        s
    } else {
        let first = services
            .first()
            .cloned()
            .ok_or_else(|| InstallError::NoService {
                section: services_section.name.clone(),
            })?;
        work.notes.push(format!("No AddService entry in [{}] has the SPSVCINST_ASSOCSERVICE flag (0x2); `{first}` is taken as the device's driver.", services_section.name));
        first
    };
    Ok((services, service))
}

/// Writes the device instance key, the driver key and the hardware key, so
/// the model looks like an installed device.
fn device_keys(
    inf: &Inf,
    install_section: &str,
    from: &At,
    hardware_id: &str,
    service: &str,
    registry: &mut Registry,
    work: &mut Work,
) -> Result<(), InstallError> {
    let instance = format!("Enum\\{}\\0000", hardware_id.to_ascii_uppercase());
    registry.set_value(&instance, "HardwareID", RegValue::multi_sz(&[hardware_id]));
    registry.set_value(&instance, "Service", RegValue::sz(service));
    let version = inf.section("Version");
    let class_guid = version
        .and_then(|v| v.entry("ClassGuid"))
        .map(|e| e.value(0).to_owned());
    if let Some(guid) = &class_guid {
        registry.set_value(&instance, "ClassGUID", RegValue::sz(guid));
    }
    if let Some(class) = version.and_then(|v| v.entry("Class")) {
        registry.set_value(&instance, "Class", RegValue::sz(class.value(0)));
    }
    let ddinstall = require(inf, install_section, &from.section, from.line)?;
    let driver_key = format!(
        "Control\\Class\\{}\\0000",
        class_guid
            .as_deref()
            .unwrap_or("{00000000-0000-0000-0000-000000000000}")
    );
    registry_directives(inf, ddinstall, &driver_key, registry, work)?;
    if let Some(hw) = inf.section(&format!("{install_section}.HW")) {
        let hkr = format!("{instance}\\Device Parameters");
        registry_directives(inf, hw, &hkr, registry, work)?;
    }
    Ok(())
}

/// Installs the driver an INF describes into `registry`.
///
/// # Errors
///
/// [`InstallError`] naming the section, line and expected form of the first
/// problem; the registry may then hold part of the installation.
pub fn install(
    inf: &Inf,
    registry: &mut Registry,
    options: &InstallOptions,
) -> Result<Installed, InstallError> {
    let mut work = Work::for_inf(inf);
    let (models_section, model, hardware_id) = choose_model(inf, options)?;
    let model_at = At {
        section: models_section.clone(),
        line: model.line,
    };
    let install_section = ddinstall_name(inf, model.value(0), &model_at)?;
    let (services, service) = add_services(inf, &install_section, registry, &mut work)?;
    device_keys(
        inf,
        &install_section,
        &model_at,
        &hardware_id,
        &service,
        registry,
        &mut work,
    )?;
    Ok(Installed {
        service,
        services,
        hardware_id,
        models_section,
        install_section,
        notes: work.notes,
    })
}

/// The service name Windows would use for a driver image without an INF:
/// the file name without its extension (`vstor.sys` → `vstor`).
#[must_use]
pub fn service_name_for_image(path: &std::path::Path) -> String {
    path.file_stem()
        .map_or_else(|| "driver".to_owned(), |s| s.to_string_lossy().into_owned())
}

/// Installs `service` without an INF: a kernel driver service (Type 1,
/// Start 3, `ErrorControl` 1, `ImagePath` `\SystemRoot\System32\drivers\<service>.sys`)
/// with an empty `Parameters\Device` key.
pub fn install_default(service: &str, registry: &mut Registry) {
    let key = format!("Services\\{service}");
    registry.set_value(&key, "Type", RegValue::dword(1));
    registry.set_value(&key, "Start", RegValue::dword(3));
    registry.set_value(&key, "ErrorControl", RegValue::dword(1));
    registry.set_value(
        &key,
        "ImagePath",
        RegValue::expand_sz(&format!("\\SystemRoot\\System32\\drivers\\{service}.sys")),
    );
    registry.create_key(&format!("{key}\\Parameters\\Device"));
}
