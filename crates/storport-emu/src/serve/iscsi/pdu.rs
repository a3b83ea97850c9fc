//! iSCSI PDUs (RFC 7143 §11).
//!
//! The 48-byte basic header segment, additional header segments and the
//! padded data segment, read with every length checked before anything is
//! allocated, and the data segment received in pieces as it arrives (its
//! memory grows with the bytes received, not with `DataSegmentLength`).
//! Digests are never negotiated, so no PDU carries one.

use std::io::{self, Read, Write};

/// Bytes of the basic header segment.
pub const BHS_BYTES: usize = 48;

/// Initiator opcodes.
pub mod op {
    /// NOP-Out.
    pub const NOP_OUT: u8 = 0x00;
    /// SCSI Command.
    pub const SCSI_COMMAND: u8 = 0x01;
    /// SCSI Task Management Function Request.
    pub const TASK_MANAGEMENT: u8 = 0x02;
    /// Login Request.
    pub const LOGIN: u8 = 0x03;
    /// Text Request.
    pub const TEXT: u8 = 0x04;
    /// SCSI Data-Out.
    pub const DATA_OUT: u8 = 0x05;
    /// Logout Request.
    pub const LOGOUT: u8 = 0x06;
    /// SNACK Request.
    pub const SNACK: u8 = 0x10;
    /// NOP-In.
    pub const NOP_IN: u8 = 0x20;
    /// SCSI Response.
    pub const SCSI_RESPONSE: u8 = 0x21;
    /// Task Management Function Response.
    pub const TASK_MANAGEMENT_RESPONSE: u8 = 0x22;
    /// Login Response.
    pub const LOGIN_RESPONSE: u8 = 0x23;
    /// Text Response.
    pub const TEXT_RESPONSE: u8 = 0x24;
    /// SCSI Data-In.
    pub const DATA_IN: u8 = 0x25;
    /// Logout Response.
    pub const LOGOUT_RESPONSE: u8 = 0x26;
    /// Ready To Transfer.
    pub const R2T: u8 = 0x31;
    /// Reject.
    pub const REJECT: u8 = 0x3F;
}

/// Reject reasons (RFC 7143 §11.17.1).
pub mod reject {
    /// Command not supported.
    pub const COMMAND_NOT_SUPPORTED: u8 = 0x05;
    /// Protocol error.
    pub const PROTOCOL_ERROR: u8 = 0x04;
    /// Invalid PDU field.
    pub const INVALID_PDU_FIELD: u8 = 0x09;
}

/// One PDU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pdu {
    /// The basic header segment.
    pub bhs: [u8; BHS_BYTES],
    /// Additional header segments (`TotalAHSLength` × 4 bytes).
    pub ahs: Vec<u8>,
    /// The data segment, without padding.
    pub data: Vec<u8>,
}

/// Why a PDU could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PduError {
    /// The peer closed the connection.
    #[error("the initiator closed the connection")]
    Closed,
    /// The data segment is longer than this side accepts.
    #[error(
        "the PDU's data segment of {length} bytes exceeds the {limit} bytes this target accepts"
    )]
    TooLong {
        /// `DataSegmentLength`.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// The socket failed.
    #[error("the connection failed: {0}")]
    Io(io::Error),
}

impl From<io::Error> for PduError {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            Self::Closed
        } else {
            Self::Io(error)
        }
    }
}

/// The first piece of a data segment read before it is known to arrive.
const FIRST_PIECE: usize = 4096;

const fn padded(length: usize) -> usize {
    length.div_ceil(4) * 4
}

impl Pdu {
    /// A PDU with `opcode` and the final bit in byte 1.
    #[must_use]
    pub const fn new(opcode: u8) -> Self {
        let mut bhs = [0_u8; BHS_BYTES];
        bhs[0] = opcode & 0x3F;
        bhs[1] = 0x80;
        Self {
            bhs,
            ahs: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Reads one PDU whose data segment is at most `max_data` bytes.
    ///
    /// # Errors
    ///
    /// End of stream, an oversized data segment, or a socket error.
    pub fn read(r: &mut impl Read, max_data: usize) -> Result<Self, PduError> {
        let mut bhs = [0_u8; BHS_BYTES];
        r.read_exact(&mut bhs)?;
        // TotalAHSLength is one byte of 4-byte words: at most 1020 bytes.
        let ahs_length = usize::from(bhs[4]) * 4;
        let length = usize::from(bhs[5]) << 16 | usize::from(bhs[6]) << 8 | usize::from(bhs[7]);
        if length > max_data {
            return Err(PduError::TooLong {
                length,
                limit: max_data,
            });
        }
        let mut ahs = vec![0_u8; ahs_length];
        r.read_exact(&mut ahs)?;
        let total = padded(length);
        let mut data = Vec::new();
        while data.len() < total {
            // At most what has arrived so far (and one small first piece).
            let at = data.len();
            let piece = (total - at).min(at.max(FIRST_PIECE));
            data.resize(at + piece, 0);
            r.read_exact(&mut data[at..])?;
        }
        data.truncate(length);
        Ok(Self { bhs, ahs, data })
    }

    /// Writes the PDU, setting `DataSegmentLength` and padding the data.
    ///
    /// # Errors
    ///
    /// A socket error.
    pub fn write(&mut self, w: &mut impl Write) -> io::Result<()> {
        let length = self.data.len().min(0x00FF_FFFF);
        self.bhs[4] = u8::try_from(self.ahs.len() / 4).unwrap_or(0);
        self.bhs[5..8].copy_from_slice(&u32::try_from(length).unwrap_or(0).to_be_bytes()[1..]);
        let mut out = Vec::with_capacity(BHS_BYTES + self.ahs.len() + padded(length));
        out.extend_from_slice(&self.bhs);
        out.extend_from_slice(&self.ahs);
        out.extend_from_slice(&self.data[..length]);
        out.resize(out.len() + padded(length) - length, 0);
        w.write_all(&out)
    }

    /// The opcode.
    #[must_use]
    pub const fn opcode(&self) -> u8 {
        self.bhs[0] & 0x3F
    }

    /// The immediate-delivery bit.
    #[must_use]
    pub const fn immediate(&self) -> bool {
        self.bhs[0] & 0x40 != 0
    }

    /// The final bit.
    #[must_use]
    pub const fn is_final(&self) -> bool {
        self.bhs[1] & 0x80 != 0
    }

    /// A big-endian 32-bit field at `at`.
    #[must_use]
    pub const fn u32_at(&self, at: usize) -> u32 {
        u32::from_be_bytes([
            self.bhs[at],
            self.bhs[at + 1],
            self.bhs[at + 2],
            self.bhs[at + 3],
        ])
    }

    /// Stores a big-endian 32-bit field at `at`.
    pub fn set_u32(&mut self, at: usize, value: u32) {
        self.bhs[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }

    /// Initiator Task Tag.
    #[must_use]
    pub const fn itt(&self) -> u32 {
        self.u32_at(16)
    }

    /// The 8-byte LUN field.
    #[must_use]
    pub fn lun_field(&self) -> [u8; 8] {
        let mut lun = [0_u8; 8];
        lun.copy_from_slice(&self.bhs[8..16]);
        lun
    }
}

/// `CmdSN` comparison in serial number arithmetic (RFC 1982, 32 bits).
#[must_use]
pub const fn sn_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

#[cfg(test)]
mod tests {
    use super::{Pdu, PduError, sn_lt};

    #[test]
    fn oversized_segments_are_refused_before_allocation() {
        let mut header = [0_u8; 48];
        header[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
        let error = Pdu::read(&mut &header[..], 8192).expect_err("too long");
        assert!(matches!(
            error,
            PduError::TooLong {
                length: 0xFF_FFFF,
                limit: 8192
            }
        ));
    }

    /// A reader that has `available` bytes and remembers the largest
    /// buffer it was asked to fill.
    struct Trickle {
        available: usize,
        largest: usize,
    }

    impl std::io::Read for Trickle {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            self.largest = self.largest.max(buffer.len());
            let n = buffer.len().min(self.available);
            buffer[..n].fill(0);
            self.available -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_segment_that_does_not_come_is_not_allocated() {
        // A header announcing 16 MiB, then 10,000 bytes and the end.
        let mut header = [0_u8; 48];
        header[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFC]);
        let mut wire = std::io::Read::chain(
            &header[..],
            Trickle {
                available: 10_000,
                largest: 0,
            },
        );
        let error = Pdu::read(&mut wire, 1 << 24).expect_err("truncated");
        assert!(matches!(error, PduError::Closed), "{error:?}");
        let largest = wire.into_inner().1.largest;
        assert!(
            largest <= 2 * 10_000 + 4096,
            "a read buffer of {largest} bytes for 10,000 bytes received"
        );
    }

    #[test]
    fn padding_and_ahs_are_read_and_written() {
        let mut pdu = Pdu::new(0x25);
        pdu.data = vec![1, 2, 3, 4, 5];
        let mut wire = Vec::new();
        pdu.write(&mut wire).unwrap();
        assert_eq!(wire.len(), 48 + 8, "five bytes padded to eight");
        assert_eq!(&wire[5..8], &[0, 0, 5]);
        let back = Pdu::read(&mut wire.as_slice(), 8).unwrap();
        assert_eq!(back.data, [1, 2, 3, 4, 5]);
        let mut with_ahs = wire.clone();
        with_ahs[4] = 1;
        with_ahs.splice(48..48, [0, 4, 1, 0]);
        let back = Pdu::read(&mut with_ahs.as_slice(), 8).unwrap();
        assert_eq!((back.ahs.len(), back.data.len()), (4, 5));
        let truncated = &wire[..50];
        assert!(matches!(
            Pdu::read(&mut &truncated[..], 8),
            Err(PduError::Closed)
        ));
    }

    #[test]
    fn serial_numbers_wrap() {
        assert!(sn_lt(1, 2));
        assert!(sn_lt(0xFFFF_FFFF, 0));
        assert!(!sn_lt(5, 5));
        assert!(sn_lt(0, 0x7FFF_FFFF));
        assert!(!sn_lt(0x7FFF_FFFF, 0));
    }
}
