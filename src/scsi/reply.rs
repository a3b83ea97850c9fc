//! Building responses straight into the caller's buffer, and reading CDB fields, without any
//! operation that can panic.

use super::{DataBuffer, LentBytes, Outcome, srb_status};

/// A response written directly into the data-in buffer, truncated to the allocation length
/// and the buffer's size. `len` keeps counting past the end so length fields come out right.
///
/// Its methods are kept out of line (`#[inline(never)]`): they are called from some eighty
/// places in the cold command handlers, and inlined they cost the driver image over 2 KB.
/// No READ or WRITE uses a `Reply`.
pub struct Reply<'a> {
    out: &'a mut [u8],
    limit: usize,
    len: usize,
}

impl<'a> Reply<'a> {
    /// A reply of at most `allocation_length` bytes into `out`.
    #[inline(never)]
    pub fn new(out: &'a mut [u8], allocation_length: usize) -> Self {
        let limit = out.len().min(allocation_length);
        Self { out, limit, len: 0 }
    }

    /// Appends one byte.
    #[inline(never)]
    pub fn byte(&mut self, v: u8) {
        if self.len < self.limit
            && let Some(slot) = self.out.get_mut(self.len)
        {
            *slot = v;
        }
        self.len = self.len.saturating_add(1);
    }

    /// Appends bytes: the part that fits, in one copy.
    #[inline(never)]
    pub fn bytes(&mut self, v: &[u8]) {
        let (start, end) = self.kept(v.len());
        if let (Some(to), Some(from)) = (self.out.get_mut(start..end), v.get(..end - start)) {
            to.copy_from_slice(from);
        }
        self.len = self.len.saturating_add(v.len());
    }

    /// Appends `n` zero bytes: the part that fits, in one fill.
    #[inline(never)]
    pub fn zeros(&mut self, n: usize) {
        let (start, end) = self.kept(n);
        if let Some(to) = self.out.get_mut(start..end) {
            to.fill(0);
        }
        self.len = self.len.saturating_add(n);
    }

    /// Where `n` bytes appended now land in the buffer: the range of them that is kept
    /// (empty once the reply reached its limit).
    const fn kept(&self, n: usize) -> (usize, usize) {
        let start = if self.len < self.limit {
            self.len
        } else {
            self.limit
        };
        let end = self.len.saturating_add(n);
        (start, if end < self.limit { end } else { self.limit })
    }

    /// Appends a big-endian 16-bit value.
    #[inline(never)]
    pub fn be16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }

    /// Appends a big-endian 32-bit value.
    #[inline(never)]
    pub fn be32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }

    /// Appends a big-endian 64-bit value.
    #[inline(never)]
    pub fn be64(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes());
    }

    /// Overwrites an already appended byte (length fields), if it was kept.
    #[inline(never)]
    pub fn patch(&mut self, at: usize, v: u8) {
        if at < self.limit
            && let Some(slot) = self.out.get_mut(at)
        {
            *slot = v;
        }
    }

    /// Overwrites an already appended big-endian 16-bit value.
    pub fn patch16(&mut self, at: usize, v: u16) {
        let [hi, lo] = v.to_be_bytes();
        self.patch(at, hi);
        self.patch(at.saturating_add(1), lo);
    }

    /// Full length of the response, kept or not.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// GOOD, with the bytes actually kept as the transfer length.
    #[inline(never)]
    pub fn finish(self) -> Outcome {
        Outcome::good(self.len.min(self.limit))
    }
}

/// A CDB copied into a fixed array; bytes past the real CDB read as zero.
#[derive(Clone, Copy, Debug)]
pub struct Cdb {
    bytes: [u8; 16],
}

impl Cdb {
    /// Copies up to 16 bytes of `cdb`. The CDB sizes SCSI defines (6, 10, 12 and 16 bytes)
    /// copy as fixed-size moves; a byte loop handles any other length.
    pub fn new(cdb: &[u8]) -> Self {
        let mut bytes = [0u8; 16];
        match cdb.len() {
            16.. => copy_prefix::<16>(&mut bytes, cdb),
            12 => copy_prefix::<12>(&mut bytes, cdb),
            10 => copy_prefix::<10>(&mut bytes, cdb),
            6 => copy_prefix::<6>(&mut bytes, cdb),
            _ => {
                for (dst, src) in bytes.iter_mut().zip(cdb) {
                    *dst = *src;
                }
            }
        }
        Self { bytes }
    }

    /// Byte `at` (zero past the end).
    pub fn u8(&self, at: usize) -> u8 {
        self.bytes.get(at).copied().unwrap_or(0)
    }

    /// Bit `bit` of byte `at`.
    pub fn bit(&self, at: usize, bit: u32) -> bool {
        (self.u8(at) >> bit) & 1 == 1
    }

    /// Big-endian 16-bit field at `at`.
    pub fn be16(&self, at: usize) -> u16 {
        u16::from_be_bytes([self.u8(at), self.u8(at + 1)])
    }

    /// Big-endian 32-bit field at `at`.
    pub fn be32(&self, at: usize) -> u32 {
        u32::from_be_bytes([
            self.u8(at),
            self.u8(at + 1),
            self.u8(at + 2),
            self.u8(at + 3),
        ])
    }

    /// Big-endian 64-bit field at `at`.
    pub fn be64(&self, at: usize) -> u64 {
        (u64::from(self.be32(at)) << 32) | u64::from(self.be32(at + 4))
    }
}

/// Copies the first `N` bytes of `from` (when it has them) to the start of `to`.
fn copy_prefix<const N: usize>(to: &mut [u8; 16], from: &[u8]) {
    if let (Some(to), Some(from)) = (to.first_chunk_mut::<N>(), from.first_chunk::<N>()) {
        *to = *from;
    }
}

/// Big-endian 16-bit value at `at` of a parameter list, if present.
pub fn param_be16(list: &[u8], at: usize) -> Option<u16> {
    let b = list.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

/// Big-endian 32-bit value at `at` of a parameter list, if present.
pub fn param_be32(list: &[u8], at: usize) -> Option<u32> {
    Some(
        (u32::from(param_be16(list, at)?) << 16) | u32::from(param_be16(list, at.checked_add(2)?)?),
    )
}

/// Big-endian 64-bit value at `at` of a parameter list, if present.
pub fn param_be64(list: &[u8], at: usize) -> Option<u64> {
    Some(
        (u64::from(param_be32(list, at)?) << 32) | u64::from(param_be32(list, at.checked_add(4)?)?),
    )
}

/// The data-in buffer of a command that returns data. `Err` is the outcome for a data-out
/// buffer given to it (the SRB's direction contradicts the CDB).
pub const fn data_in(data: DataBuffer<'_>) -> Result<&mut [u8], Outcome> {
    match data {
        DataBuffer::In(buf) | DataBuffer::Unspecified(buf) => Ok(buf),
        DataBuffer::None => Ok(&mut []),
        DataBuffer::Out(lent) if lent.is_empty() => Ok(&mut []),
        DataBuffer::Out(_) => Err(Outcome::srb(srb_status::INVALID_REQUEST)),
    }
}

/// The data-out buffer of a command that takes data, to copy from; see [`data_in`].
pub fn data_out(data: DataBuffer<'_>) -> Result<LentBytes<'_>, Outcome> {
    match data {
        DataBuffer::Out(lent) => Ok(lent),
        DataBuffer::Unspecified(buf) => Ok(LentBytes::from(&*buf)),
        DataBuffer::None | DataBuffer::In([]) => Ok(LentBytes::empty()),
        DataBuffer::In(_) => Err(Outcome::srb(srb_status::INVALID_REQUEST)),
    }
}

/// A byte offset as a sense field pointer (saturating; lists here are at most 64 KiB).
pub fn ptr(at: usize) -> u16 {
    u16::try_from(at).unwrap_or(u16::MAX)
}
