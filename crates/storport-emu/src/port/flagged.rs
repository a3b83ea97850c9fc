//! `SRB_FUNCTION_EXECUTE_SCSI` requests whose `SrbFlags` direction bits are
//! chosen apart from their buffer ([`Port::execute_flagged`]).
//!
//! [`DataDirection`](super::DataDirection) always flags a buffer with the
//! direction it was built for. Windows also sends requests whose flags say
//! something else:
//!
//! - Both `SRB_FLAGS_DATA_IN` and `SRB_FLAGS_DATA_OUT`:
//!   `SRB_FLAGS_UNSPECIFIED_DIRECTION` is defined in srb.h as
//!   `(SRB_FLAGS_DATA_IN | SRB_FLAGS_DATA_OUT)`, and the "SCSI_REQUEST_BLOCK
//!   structure (srb.h)" page says of it: "Defined for backward compatibility
//!   with the ASPI/CAM SCSI interfaces, this flag indicates that the transfer
//!   direction could be either of the preceding because both of the
//!   preceding flags are set. If this flag is set, a miniport driver should
//!   determine the transfer direction by examining the data phase for the
//!   target on the SCSI bus." The "SCSI_PASS_THROUGH structure
//!   (ntddscsi.h)" page gives `DataIn` the value `SCSI_IOCTL_DATA_UNSPECIFIED`
//!   among its three (no data, or a direction the caller does not know), and
//!   says the values of `DataIn` "correspond to the
//!   SCSI_IOCTL_DATA_IN, SCSI_IOCTL_DATA_OUT, and SCSI_IOCTL_DATA_UNSPECIFIED
//!   flags assigned to SrbFlags member of SCSI_REQUEST_BLOCK": a pass-through
//!   request with `SCSI_IOCTL_DATA_UNSPECIFIED` arrives with both flags and
//!   a buffer the caller filled, which a data-in command fills in turn.
//! - A buffer flagged with the other direction than its command moves data
//!   in, or with neither flag (`SRB_FLAGS_NO_DATA_TRANSFER`, which the same
//!   page says means "no data transfer with this request") while
//!   `DataTransferLength` and `DataBuffer` describe a buffer: a caller's
//!   mistake the miniport must survive.
//!
//! The port checks the completion of such a request as it checks any other
//! (completed once, never pending, `DataTransferLength` no larger than the
//! buffer, nothing written past it; rules `DoubleCompletion`,
//! `StatusPending`, `TransferLength`), whatever the flags.
//!
//! [`Port::execute_flagged`]: super::Port::execute_flagged

use storport_sys::srb_flags;

use super::SrbResult;

/// The direction bits of a flagged request's `SrbFlags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlagDirection {
    /// `SRB_FLAGS_NO_DATA_TRANSFER`: neither bit.
    NoData,
    /// `SRB_FLAGS_DATA_IN` alone.
    In,
    /// `SRB_FLAGS_DATA_OUT` alone.
    Out,
    /// `SRB_FLAGS_UNSPECIFIED_DIRECTION`: both bits.
    Unspecified,
}

impl FlagDirection {
    /// Every form, in a fixed order.
    pub const ALL: [Self; 4] = [Self::NoData, Self::In, Self::Out, Self::Unspecified];

    /// The `SRB_FLAGS_*` bits.
    #[must_use]
    pub const fn bits(self) -> u32 {
        match self {
            Self::NoData => srb_flags::NO_DATA_TRANSFER,
            Self::In => srb_flags::DATA_IN,
            Self::Out => srb_flags::DATA_OUT,
            Self::Unspecified => srb_flags::DATA_IN | srb_flags::DATA_OUT,
        }
    }

    /// The `srb.h` name of the bits.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::NoData => "SRB_FLAGS_NO_DATA_TRANSFER",
            Self::In => "SRB_FLAGS_DATA_IN",
            Self::Out => "SRB_FLAGS_DATA_OUT",
            Self::Unspecified => "SRB_FLAGS_UNSPECIFIED_DIRECTION",
        }
    }
}

/// How a flagged request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlaggedResult {
    /// Status, sense and `DataTransferLength` as for any request; its `data`
    /// is the first `DataTransferLength` bytes of the buffer as the miniport
    /// left it (at most the buffer), whatever the flags.
    pub result: SrbResult,
    /// The whole buffer as the miniport left it: its initial bytes where the
    /// miniport wrote nothing. Empty when the request was not completed (the
    /// port timed it out and the miniport may still hold the buffer).
    pub buffer: Vec<u8>,
}
