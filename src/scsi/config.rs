//! What a disk is: identity strings, geometry, limits. Checked once in [`Disk::new`].
//!
//! [`Disk::new`]: super::Disk::new

use core::fmt;

use storport::print::{Dec, Hex};

/// Logical block size. Logical and physical blocks are the same size.
///
/// Each variant's discriminant is its [`BlockSize::shift`], so the shift of every READ and
/// WRITE is one load (measured: two instructions less per request than a match).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum BlockSize {
    /// 512-byte blocks.
    Bytes512 = 9,
    /// 4096-byte blocks.
    Bytes4096 = 12,
}

impl BlockSize {
    /// The size in bytes.
    #[must_use]
    pub const fn bytes(self) -> u32 {
        match self {
            Self::Bytes512 => 512,
            Self::Bytes4096 => 4096,
        }
    }

    /// The size as a power of two.
    #[must_use]
    pub const fn shift(self) -> u32 {
        self as u32
    }

    /// The block size for `bytes`, if it is 512 or 4096.
    #[must_use]
    pub const fn from_bytes(bytes: u32) -> Option<Self> {
        match bytes {
            512 => Some(Self::Bytes512),
            4096 => Some(Self::Bytes4096),
            _ => None,
        }
    }
}

/// Longest serial number accepted (VPD page 80h and the T10 designator of page 83h).
pub const SERIAL_MAX_LEN: usize = 32;

/// The strings INQUIRY reports, stored space-padded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    vendor: [u8; 8],
    product: [u8; 16],
    revision: [u8; 4],
    serial: [u8; SERIAL_MAX_LEN],
    serial_len: u8,
}

/// Copies printable ASCII `value` into a space-padded field.
fn padded<const N: usize>(field: &'static str, bytes: &[u8]) -> Result<[u8; N], ConfigError> {
    if bytes.len() > N {
        return Err(ConfigError::TooLong {
            field,
            len: bytes.len(),
            max: N,
        });
    }
    if !bytes.iter().all(|b| (0x20..=0x7E).contains(b)) {
        return Err(ConfigError::NotPrintableAscii { field });
    }
    let mut out = [b' '; N];
    for (dst, src) in out.iter_mut().zip(bytes) {
        *dst = *src;
    }
    Ok(out)
}

impl Identity {
    /// Checks and stores the identity strings.
    ///
    /// # Errors
    ///
    /// [`ConfigError::TooLong`] when `vendor` exceeds 8 bytes, `product` 16, `revision` 4 or
    /// `serial` 32; [`ConfigError::NotPrintableAscii`] when any holds a byte outside 20h–7Eh
    /// (SPC-4); [`ConfigError::EmptySerial`] when `serial` is empty or all spaces.
    pub fn new(
        vendor: impl AsRef<[u8]>,
        product: impl AsRef<[u8]>,
        revision: impl AsRef<[u8]>,
        serial: impl AsRef<[u8]>,
    ) -> Result<Self, ConfigError> {
        let serial = serial.as_ref();
        let serial_field = padded::<SERIAL_MAX_LEN>("serial number", serial)?;
        if serial.iter().all(|&byte| byte == b' ') {
            return Err(ConfigError::EmptySerial);
        }
        Ok(Self {
            vendor: padded("vendor identification", vendor.as_ref())?,
            product: padded("product identification", product.as_ref())?,
            revision: padded("product revision level", revision.as_ref())?,
            serial: serial_field,
            serial_len: u8::try_from(serial.len()).unwrap_or(0),
        })
    }

    /// T10 VENDOR IDENTIFICATION, space-padded.
    #[must_use]
    pub const fn vendor(&self) -> &[u8; 8] {
        &self.vendor
    }

    /// PRODUCT IDENTIFICATION, space-padded.
    #[must_use]
    pub const fn product(&self) -> &[u8; 16] {
        &self.product
    }

    /// PRODUCT REVISION LEVEL, space-padded.
    #[must_use]
    pub const fn revision(&self) -> &[u8; 4] {
        &self.revision
    }

    /// PRODUCT SERIAL NUMBER, unpadded.
    #[must_use]
    pub fn serial(&self) -> &[u8] {
        self.serial
            .get(..usize::from(self.serial_len))
            .unwrap_or(&[])
    }
}

/// Per-request limits, reported in the Block Limits VPD page (B0h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest READ/WRITE/VERIFY data transfer in bytes: the adapter's `MaximumTransferLength`.
    pub max_transfer_bytes: u32,
    /// Largest total range one UNMAP may name, in bytes.
    pub max_unmap_bytes: u64,
    /// Most block descriptors one UNMAP may carry.
    pub max_unmap_descriptors: u32,
    /// Largest range one WRITE SAME may cover, in bytes.
    pub max_write_same_bytes: u64,
}

impl Limits {
    /// 1 MiB transfers; UNMAP and WRITE SAME up to 64 MiB (each zeroes RAM in `HwStartIo` at
    /// `DISPATCH_LEVEL`, which must stay short) and [`MAX_UNMAP_DESCRIPTORS`] descriptors.
    ///
    /// [`MAX_UNMAP_DESCRIPTORS`]: super::MAX_UNMAP_DESCRIPTORS
    pub const DEFAULT: Self = Self {
        max_transfer_bytes: 1 << 20,
        max_unmap_bytes: 64 << 20,
        max_unmap_descriptors: super::MAX_UNMAP_DESCRIPTORS,
        max_write_same_bytes: 64 << 20,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Everything [`Disk::new`] needs.
///
/// [`Disk::new`]: super::Disk::new
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskConfig {
    /// INQUIRY strings and serial number.
    pub identity: Identity,
    /// Logical block size.
    pub block_size: BlockSize,
    /// Number of logical blocks (capacity = `block_count * block_size`).
    pub block_count: u64,
    /// Writes end in DATA PROTECT, WRITE PROTECTED; MODE SENSE reports WP. Initial value:
    /// [`Disk::set_read_only`] changes it at run time.
    ///
    /// [`Disk::set_read_only`]: super::Disk::set_read_only
    pub read_only: bool,
    /// 60-bit value of the NAA 3 (locally assigned) designator in VPD page 83h. Must be unique
    /// per disk on the system: Windows identifies disks by it.
    pub naa_local_id: u64,
    /// Write cache (WCE) at start and the caching page's default value.
    pub write_cache: bool,
    /// Request limits.
    pub limits: Limits,
}

/// Why a [`DiskConfig`] or [`Identity`] was refused. `Display` gives a full sentence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// An identity string is longer than its INQUIRY field.
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The field's size.
        max: usize,
    },
    /// An identity string holds a byte outside printable ASCII.
    NotPrintableAscii {
        /// Which field.
        field: &'static str,
    },
    /// The serial number is empty.
    EmptySerial,
    /// `block_count` is zero.
    NoBlocks,
    /// `block_count * block_size` does not fit 64 bits.
    CapacityTooLarge {
        /// The block count asked for.
        block_count: u64,
    },
    /// `naa_local_id` needs more than 60 bits.
    DesignatorTooWide {
        /// The value asked for.
        naa_local_id: u64,
    },
    /// A limit is smaller than one block (or zero descriptors).
    LimitTooSmall {
        /// Which limit.
        limit: &'static str,
    },
    /// A limit is larger than the disk can honour.
    LimitTooLarge {
        /// Which limit.
        limit: &'static str,
        /// The value asked for.
        value: u64,
        /// The largest the disk accepts.
        max: u64,
    },
}

/// Text written as it is. `{}` of a `&str` goes through `Formatter::pad`, which counts
/// characters for width and precision and brings that code into the driver image; these
/// messages use neither.
pub struct Plain<'a>(pub &'a str);

impl fmt::Display for Plain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { field, len, max } => write!(
                f,
                "The {} is {} bytes long, but INQUIRY holds at most {}; the disk is not created.",
                Plain(field),
                Dec(*len as u64),
                Dec(*max as u64)
            ),
            Self::NotPrintableAscii { field } => write!(
                f,
                "The {} contains a character outside printable ASCII (20h to 7Eh), which \
                 SCSI requires; the disk is not created.",
                Plain(field)
            ),
            Self::EmptySerial => f.write_str(
                "The serial number is empty, but a disk needs one of 1 to 32 printable ASCII \
                 characters; the disk is not created.",
            ),
            Self::NoBlocks => {
                f.write_str("The disk has 0 blocks, but needs at least 1; it is not created.")
            }
            Self::CapacityTooLarge { block_count } => write!(
                f,
                "{} blocks do not fit a 64-bit byte capacity; the disk is not created.",
                Dec(*block_count)
            ),
            Self::DesignatorTooWide { naa_local_id } => write!(
                f,
                "The NAA designator value {} needs more than 60 bits; the disk is not created.",
                Hex(*naa_local_id)
            ),
            Self::LimitTooSmall { limit } => write!(
                f,
                "The {} limit is smaller than one block; the disk is not created.",
                Plain(limit)
            ),
            Self::LimitTooLarge { limit, value, max } => write!(
                f,
                "The {} limit is {}, but the disk accepts at most {}; the disk is not created.",
                Plain(limit),
                Dec(*value),
                Dec(*max)
            ),
        }
    }
}

impl DiskConfig {
    /// Checks geometry and limits (the identity is checked when built).
    ///
    /// # Errors
    ///
    /// See [`ConfigError`].
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if self.block_count == 0 {
            return Err(ConfigError::NoBlocks);
        }
        if self
            .block_count
            .checked_mul(self.block_size.bytes() as u64)
            .is_none()
        {
            return Err(ConfigError::CapacityTooLarge {
                block_count: self.block_count,
            });
        }
        if self.naa_local_id >> 60 != 0 {
            return Err(ConfigError::DesignatorTooWide {
                naa_local_id: self.naa_local_id,
            });
        }
        let bs = self.block_size.bytes();
        if self.limits.max_transfer_bytes < bs {
            return Err(ConfigError::LimitTooSmall {
                limit: "maximum transfer",
            });
        }
        if self.limits.max_unmap_bytes < bs as u64 {
            return Err(ConfigError::LimitTooSmall {
                limit: "maximum unmap",
            });
        }
        if self.limits.max_write_same_bytes < bs as u64 {
            return Err(ConfigError::LimitTooSmall {
                limit: "maximum write same",
            });
        }
        if self.limits.max_unmap_descriptors == 0 {
            return Err(ConfigError::LimitTooSmall {
                limit: "maximum unmap descriptor count",
            });
        }
        // UNMAP copies its descriptors into a buffer of this many (see `io`).
        if self.limits.max_unmap_descriptors > super::MAX_UNMAP_DESCRIPTORS {
            return Err(ConfigError::LimitTooLarge {
                limit: "maximum unmap descriptor count",
                value: self.limits.max_unmap_descriptors as u64,
                max: super::MAX_UNMAP_DESCRIPTORS as u64,
            });
        }
        Ok(())
    }
}
