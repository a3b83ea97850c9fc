//! INF checks that run without the WDK: the parts of `InfVerif`'s verdict on a
//! root-enumerated Storport miniport's INF that can be decided from the text.
//!
//! Each [`LintRule`] names the Microsoft page its requirement comes from
//! ([`LintRule::source`]). `InfVerif` itself (`infverif /v /w`, as the
//! windows-drivers-rs cargo-make flow runs it) stays the authority on Windows;
//! these rules catch the same mistakes on a machine without it.
//!
//! Decisions:
//! - The checks read the parsed INF ([`Inf`]), so values are seen after
//!   `%strkey%` substitution. A `%12%` or `%13%` DIRID has then become an NT
//!   path starting with `\SystemRoot`; such a path counts as DIRID-relative,
//!   every other rooted path as absolute.
//! - Install sections are found from `[Manufacturer]` through the `NTamd64`
//!   models sections; services from every `AddService` entry in the file.

use std::collections::HashMap;
use std::fmt;

use super::{Entry, Inf, Section};

/// A check over an INF file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LintRule {
    /// `[Version]` has `Signature = "$WINDOWS NT$"`.
    Signature,
    /// `[Version]` names a `Provider`.
    Provider,
    /// `[Version]` has `PnpLockdown = 1`.
    PnpLockdown,
    /// `[Version]` has `DriverVer = mm/dd/yyyy,w.x.y.z` with a real date and
    /// four version parts of at most 65535.
    DriverVer,
    /// `[Version]` names a catalog file: a plain `.cat` file name.
    CatalogFile,
    /// `Class` and `ClassGuid` are present, well formed and belong together.
    ClassGuid,
    /// A Storport miniport installs in the `SCSIAdapter` setup class.
    ScsiAdapterClass,
    /// `[DestinationDirs]` exists, has a `DefaultDestDir`, and every entry
    /// names a DIRID Windows defines.
    DestinationDirs,
    /// Files are copied to the driver store (DIRID 13).
    DriverStoreDestination,
    /// Every `[Manufacturer]` entry is decorated for `NTamd64` and its
    /// decorated models section exists.
    Ntamd64Models,
    /// Each device install section has a `.Services` section whose
    /// `AddService` sets `SPSVCINST_ASSOCSERVICE` (0x2).
    AssociatedService,
    /// A service-install section has `ServiceType = 1` (kernel driver).
    ServiceType,
    /// A service-install section has a `StartType` from 0 to 4.
    StartType,
    /// A service-install section has an `ErrorControl` from 0 to 3.
    ErrorControl,
    /// A service-install section has a `ServiceBinary` under DIRID 12 or 13.
    ServiceBinary,
    /// No value is an absolute path (drive letter, UNC, or a rooted path
    /// that is not a DIRID).
    NoAbsolutePaths,
    /// Every `NTamd64` models decoration names at least the build the
    /// package needs: the DIRIDs it uses and, when the image is given, the
    /// routines it imports (see [`super::min_build`]).
    MinimumBuild,
}

impl LintRule {
    /// Every rule, in the order [`lint`] checks them.
    pub const ALL: [Self; 17] = [
        Self::Signature,
        Self::Provider,
        Self::PnpLockdown,
        Self::DriverVer,
        Self::CatalogFile,
        Self::ClassGuid,
        Self::ScsiAdapterClass,
        Self::DestinationDirs,
        Self::DriverStoreDestination,
        Self::Ntamd64Models,
        Self::AssociatedService,
        Self::ServiceType,
        Self::StartType,
        Self::ErrorControl,
        Self::ServiceBinary,
        Self::NoAbsolutePaths,
        Self::MinimumBuild,
    ];

    /// The rule's name, as findings print it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Signature => "Signature",
            Self::Provider => "Provider",
            Self::PnpLockdown => "PnpLockdown",
            Self::DriverVer => "DriverVer",
            Self::CatalogFile => "CatalogFile",
            Self::ClassGuid => "ClassGuid",
            Self::ScsiAdapterClass => "ScsiAdapterClass",
            Self::DestinationDirs => "DestinationDirs",
            Self::DriverStoreDestination => "DriverStoreDestination",
            Self::Ntamd64Models => "Ntamd64Models",
            Self::AssociatedService => "AssociatedService",
            Self::ServiceType => "ServiceType",
            Self::StartType => "StartType",
            Self::ErrorControl => "ErrorControl",
            Self::ServiceBinary => "ServiceBinary",
            Self::NoAbsolutePaths => "NoAbsolutePaths",
            Self::MinimumBuild => "MinimumBuild",
        }
    }

    /// The Microsoft documentation page (by title) the requirement comes from.
    #[must_use]
    pub const fn source(self) -> &'static str {
        match self {
            Self::Signature | Self::Provider => "INF Version Section",
            Self::PnpLockdown => {
                "INF Version Section (PnpLockdown); InfVerif /w checks it for Windows Drivers"
            }
            Self::DriverVer => "INF DriverVer Directive",
            Self::CatalogFile => "INF Version Section (CatalogFile); Inf2Cat",
            Self::ClassGuid => {
                "INF Version Section; System-Defined Device Setup Classes Available to Vendors"
            }
            Self::ScsiAdapterClass => {
                "System-Defined Device Setup Classes Available to Vendors (SCSIAdapter)"
            }
            Self::DestinationDirs => "INF DestinationDirs Section; Using Dirids",
            Self::DriverStoreDestination => "Run From Driver Store; Driver package isolation",
            Self::Ntamd64Models => "INF Manufacturer Section; INF Models Section",
            Self::AssociatedService | Self::ServiceType | Self::StartType | Self::ErrorControl => {
                "INF AddService Directive"
            }
            Self::ServiceBinary => "INF AddService Directive; Run From Driver Store",
            Self::NoAbsolutePaths => "Driver package isolation; Using Dirids",
            Self::MinimumBuild => {
                "INF Manufacturer Section (TargetOSVersion BuildNumber); Using Dirids (13: Windows 10, version 1709); ExAllocatePool2 function (wdm.h), MmGetPhysicalMemoryRangesEx2 function (ntddk.h): Windows 10, version 2004"
            }
        }
    }

    /// The rule by name (case-insensitive).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|rule| rule.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for LintRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One broken rule, where it is broken, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LintFinding {
    /// The rule.
    pub rule: LintRule,
    /// The INF line (1-based) of the offending entry or section, when there
    /// is one; `None` when something is missing altogether.
    pub line: Option<usize>,
    /// A sentence naming the value found and the form expected.
    pub message: String,
}

impl fmt::Display for LintFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} (line {line}): {}", self.rule, self.message),
            None => write!(f, "{}: {}", self.rule, self.message),
        }
    }
}

/// `SCSIAdapter`, the setup class of SCSI and RAID host adapters, and the
/// GUIDs of the system-defined classes a storage INF might name instead.
const SCSI_ADAPTER_CLASS: &str = "SCSIAdapter";
const KNOWN_CLASSES: [(&str, &str); 6] = [
    ("SCSIAdapter", "{4d36e97b-e325-11ce-bfc1-08002be10318}"),
    ("DiskDrive", "{4d36e967-e325-11ce-bfc1-08002be10318}"),
    ("HDC", "{4d36e96a-e325-11ce-bfc1-08002be10318}"),
    ("System", "{4d36e97d-e325-11ce-bfc1-08002be10318}"),
    ("Net", "{4d36e972-e325-11ce-bfc1-08002be10318}"),
    ("Volume", "{71a27cdd-812a-11d0-bec7-08002be2092f}"),
];

/// DIRIDs defined by "Using Dirids", besides the shell-folder range
/// 16384 + CSIDL and the printer range 66000–66004.
const KNOWN_DIRIDS: [u32; 19] = [
    1, 10, 11, 12, 13, 17, 18, 20, 21, 23, 24, 25, 30, 50, 51, 52, 53, 54, 55,
];

fn is_known_dirid(n: u32) -> bool {
    KNOWN_DIRIDS.contains(&n) || (16384..=16447).contains(&n) || (66000..=66004).contains(&n)
}

/// The prefix the parser gives `%10%`..`%13%` (NT paths under `\SystemRoot`).
const DIRID_PATH_PREFIX: &str = "\\SystemRoot";
/// `%12%` and `%13%` as the parser expands them.
const DRIVERS_DIR: &str = "\\SystemRoot\\System32\\drivers\\";
const DRIVER_STORE_DIR: &str = "\\SystemRoot\\System32\\DriverStore\\FileRepository\\";

/// `SPSVCINST_ASSOCSERVICE`: the service is the device's function driver.
const SPSVCINST_ASSOCSERVICE: u32 = 0x2;

/// Checks `inf` against every [`LintRule`] and returns the findings, in rule
/// order; an empty list means the INF passes.
#[must_use]
pub fn lint(inf: &Inf) -> Vec<LintFinding> {
    lint_with_imports(inf, &[])
}

/// [`lint`], with the names of the routines the driver image imports (see
/// [`super::min_build::image_imports`]) also weighed by
/// [`LintRule::MinimumBuild`].
#[must_use]
pub fn lint_with_imports(inf: &Inf, imports: &[String]) -> Vec<LintFinding> {
    let mut out = Findings(Vec::new());
    let version = inf.section("Version");
    check_version(version, &mut out);
    check_class(version, &mut out);
    check_destination_dirs(inf, &mut out);
    let installs = check_models(inf, &mut out);
    check_associated_service(inf, &installs, &mut out);
    check_services(inf, &mut out);
    check_absolute_paths(inf, &mut out);
    check_minimum_build(inf, imports, &mut out);
    let mut findings = out.0;
    findings.sort_by_key(|f| f.rule);
    findings
}

/// Parses INF bytes (see [`Inf::from_bytes`]) and lints them.
///
/// # Errors
///
/// The [`ParseError`](super::ParseError) when the bytes are not INF syntax.
pub fn lint_bytes(bytes: &[u8]) -> Result<Vec<LintFinding>, super::ParseError> {
    Inf::from_bytes(bytes).map(|inf| lint(&inf))
}

/// Why an INF file could not be linted.
#[derive(Debug, thiserror::Error)]
pub enum LintFileError {
    /// The file could not be read, or is larger than
    /// [`MAX_INF_BYTES`](crate::files::MAX_INF_BYTES).
    #[error("{0}; nothing was checked.")]
    Read(#[from] crate::files::ReadError),
    /// The file is not INF syntax.
    #[error("{path} is not a readable INF file: {source}")]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// Where and what.
        source: super::ParseError,
    },
    /// The driver image's imports could not be read.
    #[error(transparent)]
    Image(#[from] super::min_build::ImageError),
}

/// Reads the INF file at `path` and lints it (`storemu inf-lint`).
///
/// # Errors
///
/// [`LintFileError`] when the file cannot be read or parsed.
pub fn lint_file(path: &std::path::Path) -> Result<Vec<LintFinding>, LintFileError> {
    let bytes = crate::files::read(path, crate::files::FileKind::Inf)?;
    lint_bytes(&bytes).map_err(|source| LintFileError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Reads the INF file at `inf` and lints it, weighing the imports of the
/// driver image at `image` when one is given (`storemu inf-lint --image`).
///
/// # Errors
///
/// [`LintFileError`] when a file cannot be read or parsed.
pub fn lint_file_with_image(
    inf: &std::path::Path,
    image: Option<&std::path::Path>,
) -> Result<Vec<LintFinding>, LintFileError> {
    let imports = match image {
        Some(image) => super::min_build::image_imports(image)?,
        None => Vec::new(),
    };
    let bytes = crate::files::read(inf, crate::files::FileKind::Inf)?;
    let parsed = Inf::from_bytes(&bytes).map_err(|source| LintFileError::Parse {
        path: inf.to_owned(),
        source,
    })?;
    Ok(lint_with_imports(&parsed, &imports))
}

struct Findings(Vec<LintFinding>);

impl Findings {
    fn push(&mut self, rule: LintRule, line: Option<usize>, message: String) {
        self.0.push(LintFinding {
            rule,
            line,
            message,
        });
    }
}

/// The first value of `key` in `section`, with the entry's line.
fn value_of<'a>(section: Option<&'a Section>, key: &str) -> Option<(&'a str, usize)> {
    let entry = find_entry(section?, key)?;
    Some((entry.value(0).trim(), entry.line))
}

/// The first entry of `section` whose key is `key` (case-insensitive).
fn find_entry<'a>(section: &'a Section, key: &str) -> Option<&'a Entry> {
    section.entries.iter().find(|e| {
        e.key
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case(key))
    })
}

fn check_version(version: Option<&Section>, out: &mut Findings) {
    let at = version.map(|s| s.line);
    match value_of(version, "Signature") {
        Some((value, _))
            if value.eq_ignore_ascii_case("$WINDOWS NT$")
                || value.eq_ignore_ascii_case("$Chicago$") => {}
        Some((value, line)) => out.push(
            LintRule::Signature,
            Some(line),
            format!("Signature is `{value}`; expected \"$WINDOWS NT$\"."),
        ),
        None => out.push(
            LintRule::Signature,
            at,
            "[Version] has no Signature; expected Signature = \"$WINDOWS NT$\".".to_owned(),
        ),
    }
    match value_of(version, "Provider") {
        Some((value, _)) if !value.is_empty() => {}
        found => out.push(
            LintRule::Provider,
            found.map_or(at, |(_, line)| Some(line)),
            "[Version] names no Provider; expected Provider = %ProviderName% with a non-empty string."
                .to_owned(),
        ),
    }
    match value_of(version, "PnpLockdown") {
        Some(("1", _)) => {}
        Some((value, line)) => out.push(
            LintRule::PnpLockdown,
            Some(line),
            format!("PnpLockdown is `{value}`; expected PnpLockdown = 1."),
        ),
        None => out.push(
            LintRule::PnpLockdown,
            at,
            "[Version] has no PnpLockdown; expected PnpLockdown = 1 so the driver files are protected from tampering.".to_owned(),
        ),
    }
    match version.and_then(|s| find_entry(s, "DriverVer")) {
        Some(entry) => {
            if let Err(problem) = check_driver_ver(entry) {
                out.push(LintRule::DriverVer, Some(entry.line), problem);
            }
        }
        None => out.push(
            LintRule::DriverVer,
            at,
            "[Version] has no DriverVer; expected DriverVer = mm/dd/yyyy,w.x.y.z.".to_owned(),
        ),
    }
    let catalog = version.and_then(|s| {
        s.entries
            .iter()
            .find(|e| e.key.as_deref().is_some_and(is_catalog_key))
    });
    match catalog {
        Some(entry) => {
            let name = entry.value(0).trim();
            let plain = !name.is_empty()
                && !name.contains(['\\', '/', ':'])
                && name.to_ascii_lowercase().ends_with(".cat")
                && name.len() > 4;
            if !plain {
                out.push(
                    LintRule::CatalogFile,
                    Some(entry.line),
                    format!(
                        "CatalogFile is `{name}`; expected a file name ending in .cat, without a directory (for example vstor.cat)."
                    ),
                );
            }
        }
        None => out.push(
            LintRule::CatalogFile,
            at,
            "[Version] has no CatalogFile; expected CatalogFile = <name>.cat, the catalog Inf2Cat creates and signtool signs.".to_owned(),
        ),
    }
}

/// `CatalogFile` or a platform-decorated `CatalogFile.NTamd64`.
fn is_catalog_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower == "catalogfile" || lower == "catalogfile.nt" || lower == "catalogfile.ntamd64"
}

/// `mm/dd/yyyy,w.x.y.z`: a real date and four version parts ≤ 65535.
fn check_driver_ver(entry: &Entry) -> Result<(), String> {
    let date = entry.value(0).trim();
    let version = entry.value(1).trim();
    let whole = entry.values.join(",");
    let bad_date = || {
        format!(
            "DriverVer date `{date}` (in `{whole}`) is not a real mm/dd/yyyy date; expected for example 11/25/2026."
        )
    };
    let parts: Vec<&str> = date.split('/').collect();
    let [month, day, year] = parts.as_slice() else {
        return Err(bad_date());
    };
    let number = |text: &str, digits: std::ops::RangeInclusive<usize>| {
        if digits.contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) {
            text.parse::<u32>().ok()
        } else {
            None
        }
    };
    let (Some(month), Some(day), Some(year)) = (
        number(month, 1..=2),
        number(day, 1..=2),
        number(year, 4..=4),
    ) else {
        return Err(bad_date());
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad_date()),
    };
    if day == 0 || day > days || year < 1980 {
        return Err(bad_date());
    }
    let fields: Vec<&str> = version.split('.').collect();
    let well_formed = fields.len() == 4
        && fields
            .iter()
            .all(|f| number(f, 1..=5).is_some_and(|n| n <= 0xFFFF));
    if !well_formed || entry.values.len() > 2 {
        return Err(format!(
            "DriverVer version `{version}` (in `{whole}`) is not w.x.y.z; expected four numbers from 0 to 65535, for example 11/25/2026,0.1.0.0."
        ));
    }
    Ok(())
}

fn check_class(version: Option<&Section>, out: &mut Findings) {
    let at = version.map(|s| s.line);
    let class = value_of(version, "Class");
    let guid = value_of(version, "ClassGuid");
    let (Some((class, class_line)), Some((guid, guid_line))) = (class, guid) else {
        out.push(
            LintRule::ClassGuid,
            at,
            "[Version] lacks Class or ClassGuid; expected both, for example Class = SCSIAdapter and ClassGuid = {4d36e97b-e325-11ce-bfc1-08002be10318}.".to_owned(),
        );
        return;
    };
    if is_guid(guid) {
        let by_name = KNOWN_CLASSES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(class));
        let by_guid = KNOWN_CLASSES
            .iter()
            .find(|(_, known)| known.eq_ignore_ascii_case(guid));
        match (by_name, by_guid) {
            (Some((name, known)), _) if !known.eq_ignore_ascii_case(guid) => out.push(
                LintRule::ClassGuid,
                Some(guid_line),
                format!("ClassGuid `{guid}` does not belong to Class {name}; expected {known}."),
            ),
            (None, Some((name, _))) => out.push(
                LintRule::ClassGuid,
                Some(class_line),
                format!("Class `{class}` does not match ClassGuid {guid}, which is the {name} class; expected Class = {name}."),
            ),
            _ => {}
        }
    } else {
        out.push(
            LintRule::ClassGuid,
            Some(guid_line),
            format!("ClassGuid `{guid}` is not a GUID; expected the form {{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}}."),
        );
    }
    if !class.eq_ignore_ascii_case(SCSI_ADAPTER_CLASS) {
        out.push(
            LintRule::ScsiAdapterClass,
            Some(class_line),
            format!("Class is `{class}`; a Storport miniport is a SCSI adapter, expected Class = SCSIAdapter."),
        );
    }
}

/// `{8-4-4-4-12}` hexadecimal digits.
fn is_guid(text: &str) -> bool {
    let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) else {
        return false;
    };
    let groups: Vec<&str> = inner.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn parse_number(text: &str) -> Option<u32> {
    let text = text.trim();
    text.strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .map_or_else(
            || text.parse().ok(),
            |hex| u32::from_str_radix(hex, 16).ok(),
        )
}

fn check_destination_dirs(inf: &Inf, out: &mut Findings) {
    let Some(dirs) = inf.section("DestinationDirs") else {
        out.push(
            LintRule::DestinationDirs,
            None,
            "the INF has no [DestinationDirs] section; expected one with DefaultDestDir = 13."
                .to_owned(),
        );
        return;
    };
    if find_entry(dirs, "DefaultDestDir").is_none() {
        out.push(
            LintRule::DestinationDirs,
            Some(dirs.line),
            "[DestinationDirs] has no DefaultDestDir; expected DefaultDestDir = 13.".to_owned(),
        );
    }
    for entry in &dirs.entries {
        let name = entry.key.as_deref().unwrap_or("");
        let dirid = entry.value(0).trim();
        match parse_number(dirid) {
            Some(n) if is_known_dirid(n) => {
                if n != 13 {
                    out.push(
                        LintRule::DriverStoreDestination,
                        Some(entry.line),
                        format!("{name} copies to DIRID {n}; a PnpLockdown driver package runs from the driver store, expected DIRID 13."),
                    );
                }
            }
            _ => out.push(
                LintRule::DestinationDirs,
                Some(entry.line),
                format!("{name} names DIRID `{dirid}`, which Windows does not define; expected a DIRID such as 13 (the driver store)."),
            ),
        }
    }
}

/// Checks the `[Manufacturer]` → models chain and returns the install
/// section names it leads to.
fn check_models(inf: &Inf, out: &mut Findings) -> Vec<(String, usize)> {
    let mut installs = Vec::new();
    let Some(manufacturer) = inf.section("Manufacturer") else {
        out.push(
            LintRule::Ntamd64Models,
            None,
            "the INF has no [Manufacturer] section; expected %Mfg% = models, NTamd64.".to_owned(),
        );
        return installs;
    };
    if manufacturer.entries.is_empty() {
        out.push(
            LintRule::Ntamd64Models,
            Some(manufacturer.line),
            "[Manufacturer] is empty; expected %Mfg% = models, NTamd64.".to_owned(),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for entry in &manufacturer.entries {
        let models = entry.value(0).trim();
        let decorations = ntamd64_decorations(entry);
        if decorations.is_empty() {
            out.push(
                LintRule::Ntamd64Models,
                Some(entry.line),
                format!("[Manufacturer] entry for `{models}` has no NTamd64 decoration; expected `{models}, NTamd64`."),
            );
            continue;
        }
        for decoration in decorations {
            let name = format!("{models}.{decoration}");
            match inf.section(&name) {
                // A models section named again adds no install section.
                Some(_) if !seen.insert(name.to_ascii_lowercase()) => {}
                Some(section) => installs.extend(
                    section
                        .entries
                        .iter()
                        .map(|e| (e.value(0).trim().to_owned(), e.line)),
                ),
                None => out.push(
                    LintRule::Ntamd64Models,
                    Some(entry.line),
                    format!("[Manufacturer] names models `{models}` for {decoration}, but there is no [{name}] section; expected it to list the devices."),
                ),
            }
        }
    }
    installs
}

fn check_associated_service(inf: &Inf, installs: &[(String, usize)], out: &mut Findings) {
    // Each `.Services` section is looked through once, however many models
    // name its install section.
    let mut answers: HashMap<String, bool> = HashMap::new();
    for (install, line) in installs {
        let name = format!("{install}.Services");
        let associated = *answers.entry(name.to_ascii_lowercase()).or_insert_with(|| {
            inf.section(&name).is_some_and(|section| {
                section.entries_with_key("AddService").any(|e| {
                    parse_number(e.value(1)).is_some_and(|f| f & SPSVCINST_ASSOCSERVICE != 0)
                })
            })
        });
        if !associated {
            out.push(
                LintRule::AssociatedService,
                Some(*line),
                format!("install section `{install}` has no [{name}] AddService with flag 0x2 (SPSVCINST_ASSOCSERVICE); expected AddService = <service>, 0x00000002, <service-install-section>."),
            );
        }
    }
}

fn check_services(inf: &Inf, out: &mut Findings) {
    let add_services = inf
        .sections()
        .iter()
        .flat_map(|s| s.entries_with_key("AddService"));
    // The findings of each service-install section, found once however many
    // AddService entries name it.
    let mut checked: HashMap<String, Vec<LintFinding>> = HashMap::new();
    for add in add_services {
        let service = add.value(0).trim();
        let section_name = add.value(2).trim();
        let Some(section) = inf.section(section_name) else {
            out.push(
                LintRule::ServiceBinary,
                Some(add.line),
                format!("AddService for `{service}` names service-install section `{section_name}`, which does not exist; expected a section with ServiceType, StartType, ErrorControl and ServiceBinary."),
            );
            continue;
        };
        let findings = checked
            .entry(section_name.to_ascii_lowercase())
            .or_insert_with(|| {
                let mut found = Findings(Vec::new());
                check_service_section(section, section_name, &mut found);
                found.0
            });
        out.0.extend(findings.iter().cloned());
    }
}

/// The checks of one service-install section.
fn check_service_section(section: &Section, section_name: &str, out: &mut Findings) {
    let number = |key: &str| value_of(Some(section), key).map(|(v, l)| (v, parse_number(v), l));
    let missing = |key: &str, expected: &str| {
        format!("[{section_name}] has no {key}; expected {key} = {expected}.")
    };
    match number("ServiceType") {
            Some((_, Some(1), _)) => {}
            Some((text, _, line)) => out.push(
                LintRule::ServiceType,
                Some(line),
                format!("ServiceType is `{text}`; a kernel-mode driver expects ServiceType = 1 (SERVICE_KERNEL_DRIVER)."),
            ),
            None => out.push(LintRule::ServiceType, Some(section.line), missing("ServiceType", "1")),
        }
    match number("StartType") {
            Some((_, Some(0..=4), _)) => {}
            Some((text, _, line)) => out.push(
                LintRule::StartType,
                Some(line),
                format!("StartType is `{text}`; expected 0 (boot), 1 (system), 2 (auto), 3 (demand) or 4 (disabled)."),
            ),
            None => out.push(LintRule::StartType, Some(section.line), missing("StartType", "3")),
        }
    match number("ErrorControl") {
            Some((_, Some(0..=3), _)) => {}
            Some((text, _, line)) => out.push(
                LintRule::ErrorControl,
                Some(line),
                format!("ErrorControl is `{text}`; expected 0 (ignore), 1 (normal), 2 (severe) or 3 (critical)."),
            ),
            None => out.push(LintRule::ErrorControl, Some(section.line), missing("ErrorControl", "1")),
        }
    match value_of(Some(section), "ServiceBinary") {
            Some((path, _)) if is_driver_binary_path(path) => {}
            Some((path, line)) => out.push(
                LintRule::ServiceBinary,
                Some(line),
                format!("ServiceBinary is `{path}`; expected a file directly under %13% (the driver store) or %12% (drivers), for example %13%\\vstor.sys."),
            ),
            None => out.push(
                LintRule::ServiceBinary,
                Some(section.line),
                missing("ServiceBinary", "%13%\\<driver>.sys"),
            ),
        }
}

/// A file directly in `%12%` (`\SystemRoot\System32\drivers`) or in
/// `%13%` (the package's folder under `...\DriverStore\FileRepository`).
fn is_driver_binary_path(path: &str) -> bool {
    let rest_after = |dir: &str| {
        path.get(..dir.len())
            .filter(|head| head.eq_ignore_ascii_case(dir))
            .and_then(|_| path.get(dir.len()..))
    };
    let file_name = |name: &str| !name.is_empty() && !name.contains(['\\', '/']);
    if let Some(rest) = rest_after(DRIVERS_DIR) {
        return file_name(rest);
    }
    rest_after(DRIVER_STORE_DIR)
        .and_then(|rest| rest.split_once('\\'))
        .is_some_and(|(folder, name)| !folder.is_empty() && file_name(name))
}

/// Whether `value` contains a drive-letter path, a UNC path, or is rooted
/// somewhere other than a DIRID expansion.
fn absolute_path(value: &str) -> Option<&'static str> {
    let trimmed = value.trim();
    let bytes = trimmed.as_bytes();
    let drive = bytes.windows(3).enumerate().any(|(i, w)| {
        w[0].is_ascii_alphabetic()
            && w[1] == b':'
            && (w[2] == b'\\' || w[2] == b'/')
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
    });
    if drive {
        return Some("a drive-letter path");
    }
    if trimmed.starts_with("\\\\") || trimmed.starts_with("//") {
        return Some("a UNC path");
    }
    let dirid = trimmed
        .get(..DIRID_PATH_PREFIX.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(DIRID_PATH_PREFIX))
        && matches!(bytes.get(DIRID_PATH_PREFIX.len()), None | Some(b'\\'));
    if (trimmed.starts_with('\\') || trimmed.starts_with('/')) && !dirid {
        return Some("a rooted path");
    }
    None
}

fn check_absolute_paths(inf: &Inf, out: &mut Findings) {
    for section in inf.sections() {
        let lower = section.name.to_ascii_lowercase();
        if lower == "strings" || lower.starts_with("strings.") {
            continue;
        }
        for entry in &section.entries {
            for field in entry.fields() {
                if let Some(kind) = absolute_path(field) {
                    out.push(
                        LintRule::NoAbsolutePaths,
                        Some(entry.line),
                        format!("[{}] value `{field}` is {kind}; expected a path relative to a DIRID such as %13%.", section.name),
                    );
                }
            }
        }
    }
}

/// The DIRIDs `inf` uses that need a minimum build: `[DestinationDirs]`
/// entries and values under the expanded `%13%`.
fn dirid_requirements(inf: &Inf) -> Vec<super::min_build::Requirement> {
    let mut dirids: Vec<u32> = Vec::new();
    if let Some(dirs) = inf.section("DestinationDirs") {
        dirids.extend(dirs.entries.iter().filter_map(|e| parse_number(e.value(0))));
    }
    let store = inf.sections().iter().any(|section| {
        let lower = section.name.to_ascii_lowercase();
        !(lower == "strings" || lower.starts_with("strings."))
            && section.entries.iter().any(|entry| {
                entry.fields().iter().any(|field| {
                    field
                        .trim()
                        .get(..DRIVER_STORE_DIR.len())
                        .is_some_and(|head| head.eq_ignore_ascii_case(DRIVER_STORE_DIR))
                })
            })
    });
    if store {
        dirids.push(13);
    }
    dirids.sort_unstable();
    dirids.dedup();
    dirids
        .into_iter()
        .filter_map(super::min_build::dirid_requirement)
        .collect()
}

fn check_minimum_build(inf: &Inf, imports: &[String], out: &mut Findings) {
    use super::min_build::{decoration_min_build, import_requirements};
    let mut needs = dirid_requirements(inf);
    needs.extend(import_requirements(imports));
    let Some(needed) = needs.iter().map(|r| r.build).max() else {
        return;
    };
    let Some(manufacturer) = inf.section("Manufacturer") else {
        return;
    };
    for entry in &manufacturer.entries {
        let models = entry.value(0).trim();
        let decorations = ntamd64_decorations(entry);
        // An unreadable version counts as admitting every build.
        let Some(admitted) = decorations
            .iter()
            .map(|d| decoration_min_build(d).unwrap_or(0))
            .min()
        else {
            continue;
        };
        if admitted >= needed {
            continue;
        }
        let unmet: Vec<String> = needs
            .iter()
            .filter(|r| r.build > admitted)
            .map(|r| format!("{} needs build {}", r.what, r.build))
            .collect();
        let from = if admitted == 0 {
            "every build".to_owned()
        } else {
            format!("builds from {admitted} on")
        };
        out.push(
            LintRule::MinimumBuild,
            Some(entry.line),
            format!(
                "[Manufacturer] entry for `{models}` is decorated `{}`, which lets Windows {from} install the driver, but {}; expected `{models}, NTamd64.10.0...{needed}` (and a [{models}.NTamd64.10.0...{needed}] section).",
                decorations.join(", "),
                unmet.join(" and ")
            ),
        );
    }
}

/// The `NTamd64` target decorations of a `[Manufacturer]` entry (the
/// values after the models section name), trimmed.
fn ntamd64_decorations(entry: &Entry) -> Vec<&str> {
    entry
        .values
        .iter()
        .skip(1)
        .map(|d| d.trim())
        .filter(|d| d.to_ascii_lowercase().starts_with("ntamd64"))
        .collect()
}
