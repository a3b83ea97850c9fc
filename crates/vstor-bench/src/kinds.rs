//! The fixed SRBs the benchmarks send.

use storport_emu::port::srb::DataDirection;

use crate::driver::Request;

/// Block size of the benchmark disk (the INF's default `SectorSize`).
pub const BLOCK_BYTES: usize = 512;

/// One kind of request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// READ(10) of this many bytes at LBA 0.
    Read(usize),
    /// WRITE(10) of this many bytes at LBA 0.
    Write(usize),
    /// Standard INQUIRY, 96 bytes.
    Inquiry,
    /// TEST UNIT READY.
    TestUnitReady,
}

/// Every kind, in report order.
pub const ALL: [Kind; 8] = [
    Kind::Read(4 << 10),
    Kind::Read(64 << 10),
    Kind::Read(1 << 20),
    Kind::Write(4 << 10),
    Kind::Write(64 << 10),
    Kind::Write(1 << 20),
    Kind::Inquiry,
    Kind::TestUnitReady,
];

impl Kind {
    /// Command-line name, e.g. `read-64k`.
    #[must_use]
    pub fn name(self) -> String {
        match self {
            Self::Read(bytes) => format!("read-{}", size_name(bytes)),
            Self::Write(bytes) => format!("write-{}", size_name(bytes)),
            Self::Inquiry => "inquiry".to_owned(),
            Self::TestUnitReady => "test-unit-ready".to_owned(),
        }
    }

    /// Human label, e.g. `READ(10) 64 KiB`.
    #[must_use]
    pub fn label(self) -> String {
        match self {
            Self::Read(bytes) => format!("READ(10) {}", size_label(bytes)),
            Self::Write(bytes) => format!("WRITE(10) {}", size_label(bytes)),
            Self::Inquiry => "INQUIRY".to_owned(),
            Self::TestUnitReady => "TEST UNIT READY".to_owned(),
        }
    }

    /// The kind named `name` (see [`Self::name`]).
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Bytes moved by the data copy (0 without a data phase on the medium).
    #[must_use]
    pub const fn copy_bytes(self) -> usize {
        match self {
            Self::Read(bytes) | Self::Write(bytes) => bytes,
            Self::Inquiry | Self::TestUnitReady => 0,
        }
    }

    /// A request of this kind.
    #[must_use]
    pub fn request(self) -> Request {
        match self {
            Self::Read(bytes) => Request::new(&rw10(0x28, bytes), &DataDirection::In(bytes)),
            Self::Write(bytes) => {
                let data = (0..bytes)
                    .map(|i| u8::try_from(i % 251).unwrap_or(0))
                    .collect();
                Request::new(&rw10(0x2A, bytes), &DataDirection::Out(data))
            }
            Self::Inquiry => Request::new(&[0x12, 0, 0, 0, 96, 0], &DataDirection::In(96)),
            Self::TestUnitReady => Request::new(&[0; 6], &DataDirection::None),
        }
    }
}

/// READ(10) / WRITE(10) of `bytes` at LBA 0.
fn rw10(opcode: u8, bytes: usize) -> [u8; 10] {
    let blocks = u16::try_from(bytes / BLOCK_BYTES).unwrap_or(u16::MAX);
    let mut cdb = [0_u8; 10];
    cdb[0] = opcode;
    cdb[7..9].copy_from_slice(&blocks.to_be_bytes());
    cdb
}

fn size_name(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{}m", bytes >> 20)
    } else {
        format!("{}k", bytes >> 10)
    }
}

fn size_label(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}
