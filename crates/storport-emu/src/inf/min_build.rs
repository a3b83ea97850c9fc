//! The minimum Windows build an INF's models decoration admits, and the
//! minimum build the driver package needs ([`LintRule::MinimumBuild`]).
//!
//! A `[Manufacturer]` decoration is `NTamd64[.major[.minor[.product[.suite
//! [.build]]]]]` ("INF Manufacturer Section"). Windows installs from the
//! best-matching decoration its version satisfies, so the lowest build among
//! an entry's `NTamd64` decorations is the oldest Windows that installs the
//! driver. Without a build number, `NTamd64.10.0` admits every Windows 10
//! (build 10240) and a bare `NTamd64` every x64 Windows.
//!
//! What the package needs comes from two tables: DIRIDs the INF uses
//! ([`DIRID_BUILDS`]) and, when the image is given, kernel routines it imports
//! ([`IMPORT_BUILDS`]), each with the first build its Microsoft page names.
//!
//! [`LintRule::MinimumBuild`]: super::lint::LintRule::MinimumBuild

/// The first build of Windows 10 (version 1507).
pub const WINDOWS_10_FIRST_BUILD: u32 = 10240;

/// Imported routines that older Windows builds do not export: (routine,
/// first build, the Microsoft page that says so). A driver that imports one
/// fails to load on an older build.
pub const IMPORT_BUILDS: [(&str, u32, &str); 3] = [
    (
        "ExAllocatePool2",
        19041,
        "ExAllocatePool2 function (wdm.h): Windows 10, version 2004",
    ),
    (
        "ExAllocatePool3",
        19041,
        "ExAllocatePool3 function (wdm.h): Windows 10, version 2004",
    ),
    (
        "MmGetPhysicalMemoryRangesEx2",
        19041,
        "MmGetPhysicalMemoryRangesEx2 function (ntddk.h): Windows 10, version 2004",
    ),
];

/// DIRIDs that older Windows builds do not define: (DIRID, first build, the
/// Microsoft page that says so).
pub const DIRID_BUILDS: [(u32, u32, &str); 1] = [(
    13,
    16299,
    "Using Dirids (13, the driver store: Windows 10, version 1709)",
)];

/// The oldest build a `[Manufacturer]` decoration admits, or `None` when it
/// is not an `NTamd64` decoration or its version parts are not numbers.
#[must_use]
pub fn decoration_min_build(decoration: &str) -> Option<u32> {
    let lower = decoration.trim().to_ascii_lowercase();
    let rest = lower.strip_prefix("ntamd64")?;
    if rest.is_empty() {
        return Some(0);
    }
    let rest = rest.strip_prefix('.')?;
    let mut parts = rest.split('.');
    let mut number = || -> Option<Option<u32>> {
        match parts.next() {
            None | Some("") => Some(None),
            Some(p) => p.trim().parse().ok().map(Some),
        }
    };
    let major = number()?;
    let _minor = number()?;
    let _product = number()?;
    let _suite = number()?;
    let build = number()?;
    Some(match (major, build) {
        (_, Some(build)) => build,
        (Some(major), None) if major >= 10 => WINDOWS_10_FIRST_BUILD,
        _ => 0,
    })
}

/// One thing the package uses that needs a minimum build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// What is used, as a message names it (`ExAllocatePool2 (imported by
    /// the image)`, `DIRID 13`).
    pub what: String,
    /// The first build that has it.
    pub build: u32,
}

/// The requirements of the imports named in `imports`, in table order.
#[must_use]
pub fn import_requirements(imports: &[String]) -> Vec<Requirement> {
    IMPORT_BUILDS
        .iter()
        .filter(|(name, _, _)| imports.iter().any(|i| i == name))
        .map(|&(name, build, _)| Requirement {
            what: format!("{name} (imported by the image)"),
            build,
        })
        .collect()
}

/// The requirement of DIRID `dirid`, if it has one.
#[must_use]
pub fn dirid_requirement(dirid: u32) -> Option<Requirement> {
    DIRID_BUILDS
        .iter()
        .find(|(n, _, _)| *n == dirid)
        .map(|&(n, build, _)| Requirement {
            what: format!("DIRID {n}"),
            build,
        })
}

/// Largest size of a driver image `storemu inf-lint --image` reads.
pub const MAX_IMAGE_BYTES: u64 = crate::files::MAX_DRIVER_IMAGE_BYTES;

/// Why the image's imports could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be read, or is larger than
    /// [`MAX_DRIVER_IMAGE_BYTES`](crate::files::MAX_DRIVER_IMAGE_BYTES).
    #[error("{0}; nothing was checked.")]
    Read(#[from] crate::files::ReadError),
    /// The file is not an x64 PE image with a readable import table.
    #[error(
        "{path} is not an x64 PE image with a readable import table ({message}); pass the .sys file the build produced"
    )]
    NotPe {
        /// The file.
        path: std::path::PathBuf,
        /// What the parser said.
        message: String,
    },
}

/// The names of the routines the x64 PE image at `path` imports (ordinal
/// imports are left out: the tables name routines).
///
/// # Errors
///
/// [`ImageError`] when the file cannot be read, is too large, or is not an
/// x64 PE image.
pub fn image_imports(path: &std::path::Path) -> Result<Vec<String>, ImageError> {
    use object::Object;
    let bytes = crate::files::read(path, crate::files::FileKind::DriverImage)?;
    let not_pe = |e: object::read::Error| ImageError::NotPe {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let image = object::read::pe::PeFile64::parse(bytes.as_slice()).map_err(not_pe)?;
    let mut names = Vec::new();
    for import in image.imports().map_err(not_pe)? {
        if let object::read::NameOrOrdinal::Name(name) = import.map_err(not_pe)?.name() {
            names.push(String::from_utf8_lossy(name).into_owned());
        }
    }
    Ok(names)
}
