//! Checked access to memory the driver names.
//!
//! A pointer that comes from driver code is never dereferenced directly:
//! the kernel itself would take a fault on a bad one, and the emulator must
//! report that instead of dying. Reads and writes are checked copies
//! ([`crate::machine::probe`]): a copy that faults on an unmapped (or, for
//! writes, read-only) address fails instead of raising a signal, with the
//! answer `process_vm_readv` / `process_vm_writev` on this very process
//! would give and without their system call (those are the fallback before
//! the machine's signal handlers are installed). A read or write that covers the varying byte
//! of a racing data-out buffer counts as one access of it
//! ([`crate::machine::watch`]).

/// Reads `len` bytes at `address`, or `None` if any of them is not readable.
#[must_use]
pub fn read(address: usize, len: usize) -> Option<Vec<u8>> {
    crate::machine::watch::checked_access(address, len, || read_unwatched(address, len))
}

/// [`read`] without the racing-buffer watch.
fn read_unwatched(address: usize, len: usize) -> Option<Vec<u8>> {
    if len == 0 {
        return Some(Vec::new());
    }
    if address == 0 {
        return None;
    }
    let mut out = vec![0_u8; len];
    if let Some(done) = crate::machine::probe::copy_in(address, &mut out) {
        return done.then_some(out);
    }
    let local = libc::iovec {
        iov_base: out.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    // SAFETY: `local` describes `out`, which this function owns and which is
    // `len` bytes long; the remote range is only read by the kernel, which
    // checks it and reports EFAULT instead of faulting.
    let done = unsafe { libc::process_vm_readv(pid, &raw const local, 1, &raw const remote, 1, 0) };
    (usize::try_from(done).ok() == Some(len)).then_some(out)
}

/// Writes `bytes` at `address`; false if any byte is not writable.
#[must_use]
pub fn write(address: usize, bytes: &[u8]) -> bool {
    crate::machine::watch::checked_access(address, bytes.len(), || write_unwatched(address, bytes))
}

/// [`write`] without the racing-buffer watch.
fn write_unwatched(address: usize, bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return true;
    }
    if address == 0 {
        return false;
    }
    // SAFETY: the range is memory the driver named to be written (its own,
    // or a buffer the port lent it, which no Rust reference covers while the
    // driver holds it): the write `process_vm_writev` below would make.
    if let Some(done) = unsafe { crate::machine::probe::copy_out(address, bytes) } {
        return done;
    }
    let local = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let done =
        // SAFETY: `local` describes `bytes`, which the kernel only reads; the
        // remote range is checked by the kernel, which reports EFAULT for memory
        // that is not mapped writable instead of faulting.
        unsafe { libc::process_vm_writev(pid, &raw const local, 1, &raw const remote, 1, 0) };
    usize::try_from(done).ok() == Some(bytes.len())
}

/// Reads a little-endian `u32` at `address`.
#[must_use]
pub fn read_u32(address: usize) -> Option<u32> {
    read(address, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads a little-endian `u64` at `address`.
#[must_use]
pub fn read_u64(address: usize) -> Option<u64> {
    read(address, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

/// Reads a NUL-terminated byte string of at most `max` bytes (without the NUL).
#[must_use]
pub fn read_cstr(address: usize, max: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = address;
    while out.len() < max {
        // Never cross a page boundary in one read, so a string that ends just
        // before an unmapped page is still read.
        let to_page_end = 4096 - (at % 4096);
        let chunk = read(at, to_page_end.min(max - out.len()))?;
        if let Some(nul) = chunk.iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..nul]);
            return Some(out);
        }
        out.extend_from_slice(&chunk);
        at += chunk.len();
    }
    Some(out)
}

/// Reads a NUL-terminated UTF-16 string of at most `max` units.
#[must_use]
pub fn read_wstr(address: usize, max: usize) -> Option<Vec<u16>> {
    let mut out = Vec::new();
    let mut at = address;
    while out.len() < max {
        let unit = read(at, 2)?;
        let unit = u16::from_le_bytes([unit[0], unit[1]]);
        if unit == 0 {
            break;
        }
        out.push(unit);
        at += 2;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_own_memory_and_refuses_bad_addresses() {
        let mut buffer = *b"hello\0world";
        let address = buffer.as_mut_ptr() as usize;
        assert_eq!(read_cstr(address, 64).as_deref(), Some(&b"hello"[..]));
        assert!(write(address, b"HE"));
        assert_eq!(&buffer[..5], b"HEllo");
        assert_eq!(read(0, 4), None);
        assert_eq!(read(8, 4), None);
        assert!(!write(16, b"x"));
        let text: &'static [u8] = b"const";
        assert!(
            !write(text.as_ptr() as usize, b"x"),
            "read-only memory must refuse writes"
        );
    }
}
