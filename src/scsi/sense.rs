//! Sense data (SPC-4): what a CHECK CONDITION tells the initiator, in fixed (70h) or
//! descriptor (72h) format.

/// Sense keys (SPC-4).
pub mod sense_key {
    /// NO SENSE.
    pub const NO_SENSE: u8 = 0x0;
    /// ILLEGAL REQUEST.
    pub const ILLEGAL_REQUEST: u8 = 0x5;
    /// UNIT ATTENTION.
    pub const UNIT_ATTENTION: u8 = 0x6;
    /// DATA PROTECT.
    pub const DATA_PROTECT: u8 = 0x7;
    /// MISCOMPARE.
    pub const MISCOMPARE: u8 = 0xE;
}

/// Additional sense code and qualifier pairs (SPC-4 annex D) used by the disk.
pub mod asc {
    /// NO ADDITIONAL SENSE INFORMATION.
    pub const NO_ADDITIONAL_SENSE: (u8, u8) = (0x00, 0x00);
    /// PARAMETER LIST LENGTH ERROR.
    pub const PARAMETER_LIST_LENGTH_ERROR: (u8, u8) = (0x1A, 0x00);
    /// MISCOMPARE DURING VERIFY OPERATION.
    pub const MISCOMPARE_DURING_VERIFY: (u8, u8) = (0x1D, 0x00);
    /// INVALID COMMAND OPERATION CODE.
    pub const INVALID_COMMAND_OPERATION_CODE: (u8, u8) = (0x20, 0x00);
    /// LOGICAL BLOCK ADDRESS OUT OF RANGE.
    pub const LBA_OUT_OF_RANGE: (u8, u8) = (0x21, 0x00);
    /// INVALID FIELD IN CDB.
    pub const INVALID_FIELD_IN_CDB: (u8, u8) = (0x24, 0x00);
    /// INVALID FIELD IN PARAMETER LIST.
    pub const INVALID_FIELD_IN_PARAMETER_LIST: (u8, u8) = (0x26, 0x00);
    /// INVALID RELEASE OF PERSISTENT RESERVATION.
    pub const INVALID_RELEASE_OF_PR: (u8, u8) = (0x26, 0x04);
    /// WRITE PROTECTED.
    pub const WRITE_PROTECTED: (u8, u8) = (0x27, 0x00);
    /// SCSI BUS RESET OCCURRED: a reset of the target port the command came through.
    pub const BUS_RESET_OCCURRED: (u8, u8) = (0x29, 0x02);
    /// BUS DEVICE RESET FUNCTION OCCURRED: a logical unit or target reset.
    pub const BUS_DEVICE_RESET_FUNCTION_OCCURRED: (u8, u8) = (0x29, 0x03);
    /// SAVING PARAMETERS NOT SUPPORTED.
    pub const SAVING_PARAMETERS_NOT_SUPPORTED: (u8, u8) = (0x39, 0x00);
}

/// The field in error for ILLEGAL REQUEST (sense-key specific bytes, SPC-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldPointer {
    /// `true`: the byte is in the CDB (C/D = 1); `false`: in the parameter list.
    pub in_cdb: bool,
    /// Byte offset of the field.
    pub byte: u16,
    /// Most significant bit of the field within that byte, when known (BPV = 1).
    pub bit: Option<u8>,
}

/// Extra detail carried by a sense.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenseDetail {
    /// Nothing beyond key and code.
    None,
    /// Sense-key specific field pointer (SKSV = 1).
    Field(FieldPointer),
    /// INFORMATION field (VALID = 1), e.g. the miscompare offset of VERIFY.
    Information(u32),
}

/// One sense: key, additional sense code and qualifier, and optional detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenseData {
    /// Sense key (4 bits).
    pub key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
    /// Field pointer or information.
    pub detail: SenseDetail,
}

impl SenseData {
    /// Length of fixed-format sense data as built here (additional sense length 10).
    pub const FIXED_LEN: usize = 18;
    /// Length of descriptor-format sense data with a sense-key specific descriptor.
    pub const DESCRIPTOR_MAX_LEN: usize = 20;

    /// A sense with no detail.
    #[must_use]
    pub const fn new(key: u8, code: (u8, u8)) -> Self {
        Self {
            key,
            asc: code.0,
            ascq: code.1,
            detail: SenseDetail::None,
        }
    }

    /// NO SENSE, NO ADDITIONAL SENSE INFORMATION: what REQUEST SENSE reports when nothing is
    /// pending.
    #[must_use]
    pub const fn no_sense() -> Self {
        Self::new(sense_key::NO_SENSE, asc::NO_ADDITIONAL_SENSE)
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN CDB, pointing at `byte` (and `bit`, if given).
    #[must_use]
    pub const fn invalid_cdb_field(byte: u16, bit: Option<u8>) -> Self {
        Self::new(sense_key::ILLEGAL_REQUEST, asc::INVALID_FIELD_IN_CDB).with_field(FieldPointer {
            in_cdb: true,
            byte,
            bit,
        })
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST, pointing at `byte` (and `bit`).
    #[must_use]
    pub const fn invalid_parameter(byte: u16, bit: Option<u8>) -> Self {
        Self::new(
            sense_key::ILLEGAL_REQUEST,
            asc::INVALID_FIELD_IN_PARAMETER_LIST,
        )
        .with_field(FieldPointer {
            in_cdb: false,
            byte,
            bit,
        })
    }

    /// ILLEGAL REQUEST with `code` and no pointer.
    #[must_use]
    pub const fn illegal(code: (u8, u8)) -> Self {
        Self::new(sense_key::ILLEGAL_REQUEST, code)
    }

    /// The same sense with a field pointer.
    #[must_use]
    pub const fn with_field(self, field: FieldPointer) -> Self {
        Self {
            detail: SenseDetail::Field(field),
            ..self
        }
    }

    const fn sense_key_specific(&self) -> [u8; 3] {
        match self.detail {
            SenseDetail::Field(f) => {
                let mut b0 = 0x80; // SKSV
                if f.in_cdb {
                    b0 |= 0x40;
                }
                if let Some(bit) = f.bit {
                    b0 |= 0x08 | (bit & 0x07);
                }
                let [hi, lo] = f.byte.to_be_bytes();
                [b0, hi, lo]
            }
            SenseDetail::None | SenseDetail::Information(_) => [0; 3],
        }
    }

    /// Fixed-format sense data (SPC-4), response code 70h (current error).
    #[must_use]
    pub const fn fixed(&self) -> [u8; Self::FIXED_LEN] {
        let mut s = [0u8; Self::FIXED_LEN];
        s[0] = 0x70;
        s[2] = self.key & 0x0F;
        if let SenseDetail::Information(info) = self.detail {
            s[0] |= 0x80; // VALID
            let b = info.to_be_bytes();
            s[3] = b[0];
            s[4] = b[1];
            s[5] = b[2];
            s[6] = b[3];
        }
        s[7] = 10; // additional sense length: bytes 8..18
        s[12] = self.asc;
        s[13] = self.ascq;
        let sks = self.sense_key_specific();
        s[15] = sks[0];
        s[16] = sks[1];
        s[17] = sks[2];
        s
    }

    /// Descriptor-format sense data (SPC-4), response code 72h, and its length: the
    /// 8-byte header plus an information descriptor (12 bytes) or a sense-key specific
    /// descriptor (8 bytes) when there is detail.
    #[must_use]
    pub const fn descriptor(&self) -> ([u8; Self::DESCRIPTOR_MAX_LEN], usize) {
        let mut s = [0u8; Self::DESCRIPTOR_MAX_LEN];
        s[0] = 0x72;
        s[1] = self.key & 0x0F;
        s[2] = self.asc;
        s[3] = self.ascq;
        let len = match self.detail {
            SenseDetail::None => 8,
            SenseDetail::Field(_) => {
                let sks = self.sense_key_specific();
                s[8] = 0x02; // sense key specific descriptor
                s[9] = 0x06;
                s[12] = sks[0];
                s[13] = sks[1];
                s[14] = sks[2];
                16
            }
            SenseDetail::Information(info) => {
                let b = info.to_be_bytes();
                s[8] = 0x00; // information descriptor
                s[9] = 0x0A;
                s[10] = 0x80; // VALID
                s[16] = b[0];
                s[17] = b[1];
                s[18] = b[2];
                s[19] = b[3];
                20
            }
        };
        #[expect(
            clippy::cast_possible_truncation,
            reason = "len is at most 20, so len - 8 fits a byte"
        )]
        {
            s[7] = (len - 8) as u8;
        }
        (s, len)
    }

    /// Copies fixed-format sense into `out` (an SRB sense buffer), truncated to its length;
    /// returns the number of bytes written.
    pub fn write_fixed(&self, out: &mut [u8]) -> usize {
        let fixed = self.fixed();
        let n = out.len().min(fixed.len());
        for (dst, src) in out.iter_mut().zip(fixed.iter()) {
            *dst = *src;
        }
        n
    }

    /// Packs the sense into 64 bits for the deferred-sense atomic (bit 63 = present).
    pub(crate) fn pack(&self) -> u64 {
        let (kind, payload): (u64, u64) = match self.detail {
            SenseDetail::None => (0, 0),
            SenseDetail::Field(f) => {
                let bit = f.bit.map_or(0, |b| 0x10 | u64::from(b & 7));
                (1, u64::from(f.in_cdb) << 21 | bit << 16 | u64::from(f.byte))
            }
            SenseDetail::Information(i) => (2, u64::from(i)),
        };
        1 << 63
            | u64::from(self.key & 0x0F) << 56
            | u64::from(self.asc) << 48
            | u64::from(self.ascq) << 40
            | kind << 34
            | payload
    }

    /// Inverse of [`Self::pack`]; `None` when the present bit is clear.
    pub(crate) const fn unpack(v: u64) -> Option<Self> {
        if v >> 63 == 0 {
            return None;
        }
        let detail = match (v >> 34) & 3 {
            1 => SenseDetail::Field(FieldPointer {
                in_cdb: (v >> 21) & 1 == 1,
                byte: (v & 0xFFFF) as u16,
                bit: if (v >> 20) & 1 == 1 {
                    Some(((v >> 16) & 7) as u8)
                } else {
                    None
                },
            }),
            2 => SenseDetail::Information((v & 0xFFFF_FFFF) as u32),
            _ => SenseDetail::None,
        };
        Some(Self {
            key: ((v >> 56) & 0x0F) as u8,
            asc: ((v >> 48) & 0xFF) as u8,
            ascq: ((v >> 40) & 0xFF) as u8,
            detail,
        })
    }
}
