//! Every file storemu reads from a path the user gives: the driver image and
//! the INF, each read through a bounded reader with a cap of its own.
//!
//! The cap is enforced on the bytes read, not on the size the file system
//! reports: a device such as `/dev/zero` or a FIFO reports size 0 and never
//! ends. At most `cap + 1` bytes are read, so memory stays bounded whatever
//! the path names. A regular file whose reported size is already over the
//! cap is refused before anything is read, with that size in the message.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest driver image storemu reads (64 MiB). Storport miniports are tens
/// or hundreds of KiB; the loader's own limit on `SizeOfImage` is larger,
/// since a mapped image may be larger than its file.
pub const MAX_DRIVER_IMAGE_BYTES: u64 = 64 << 20;

/// Largest INF file storemu reads (16 MiB). Microsoft documents no limit;
/// the largest INFs Windows ships are a few MiB, and a 16 MiB INF already
/// holds hundreds of thousands of registry lines.
pub const MAX_INF_BYTES: u64 = 16 << 20;

/// Which file is read, for the messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A driver image (`.sys`), capped at [`MAX_DRIVER_IMAGE_BYTES`].
    DriverImage,
    /// An INF file, capped at [`MAX_INF_BYTES`].
    Inf,
}

impl FileKind {
    /// The most bytes storemu reads from a file of this kind.
    #[must_use]
    pub const fn cap(self) -> u64 {
        match self {
            Self::DriverImage => MAX_DRIVER_IMAGE_BYTES,
            Self::Inf => MAX_INF_BYTES,
        }
    }

    /// The file's kind with an indefinite article: "a driver image", "an INF file".
    #[must_use]
    pub const fn article(self) -> &'static str {
        match self {
            Self::DriverImage => "a driver image",
            Self::Inf => "an INF file",
        }
    }

    /// The file's kind in a sentence: "the driver image", "the INF file".
    #[must_use]
    pub const fn noun(self) -> &'static str {
        match self {
            Self::DriverImage => "the driver image",
            Self::Inf => "the INF file",
        }
    }
}

/// How large a refused file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// The size the file system reports for a regular file.
    Exactly(u64),
    /// More bytes than this could be read (a device, a pipe, or a file that
    /// grew while it was read).
    MoreThan(u64),
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exactly(n) => write!(f, "{n} bytes"),
            Self::MoreThan(n) => write!(f, "more than {n} bytes"),
        }
    }
}

/// Why a file could not be read. The messages name the file and, for a
/// file that is too large, its size and the cap; the caller adds what
/// happens next.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The system refused to open or read the file.
    #[error(
        "cannot read {} {} ({source}); expected a readable file at that path",
        kind.noun(),
        path.display()
    )]
    Io {
        /// Which file.
        kind: FileKind,
        /// The path given.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file holds more than its kind's cap.
    #[error("{}", too_large_message(*kind, path, *size, *cap))]
    TooLarge {
        /// Which file.
        kind: FileKind,
        /// The path given.
        path: PathBuf,
        /// Its size, or how much more than the cap was seen.
        size: Size,
        /// The cap.
        cap: u64,
    },
}

fn too_large_message(kind: FileKind, path: &Path, size: Size, cap: u64) -> String {
    let (noun, article) = (kind.noun(), kind.article());
    let mib = cap >> 20;
    let path = path.display();
    match size {
        Size::Exactly(n) => format!(
            "{noun} {path} is {n} bytes, more than the {cap} bytes ({mib} MiB) storemu reads from {article}; expected {article} of at most that size"
        ),
        Size::MoreThan(_) => format!(
            "{noun} {path} holds more than {cap} bytes ({mib} MiB), the most storemu reads from {article} (it is not a regular file, or it grew while being read); expected {article} of at most that size"
        ),
    }
}

/// Reads the whole file at `path`, at most `kind.cap()` bytes.
///
/// # Errors
///
/// [`ReadError::Io`] when the file cannot be opened or read;
/// [`ReadError::TooLarge`] when it holds more than the cap.
pub fn read(path: &Path, kind: FileKind) -> Result<Vec<u8>, ReadError> {
    read_capped(path, kind, kind.cap())
}

/// [`read`] with an explicit cap (tests use a small one).
///
/// # Errors
///
/// As [`read`].
pub fn read_capped(path: &Path, kind: FileKind, cap: u64) -> Result<Vec<u8>, ReadError> {
    let io = |source| ReadError::Io {
        kind,
        path: path.to_owned(),
        source,
    };
    let too_large = |size| ReadError::TooLarge {
        kind,
        path: path.to_owned(),
        size,
        cap,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    if let Ok(metadata) = file.metadata()
        && metadata.is_file()
        && metadata.len() > cap
    {
        return Err(too_large(Size::Exactly(metadata.len())));
    }
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > cap) {
        return Err(too_large(Size::MoreThan(cap)));
    }
    Ok(bytes)
}
