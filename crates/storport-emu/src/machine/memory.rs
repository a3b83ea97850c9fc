//! Raw memory the machine owns (anonymous mappings) and checked access to
//! memory it does not own (driver pointers).
//!
//! Checked access goes through `process_vm_readv` / `process_vm_writev` on the
//! emulator's own process: the kernel validates the address range and page
//! protections and reports `EFAULT` instead of raising a signal, so an
//! emulated export can look at a pointer a driver handed it without trusting
//! it, and the CPU emulation can read instruction bytes from inside a signal
//! handler (both calls are plain system calls, hence async-signal-safe).

use std::io;

/// The size of a page on x86-64 Linux and on x64 Windows.
pub const PAGE_SIZE: usize = 0x1000;

/// A driver-supplied address range that could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the address range {addr:#x}..+{len:#x} is not {} in the emulated address space; the access was refused",
    if *.write { "writable" } else { "readable" }
)]
pub struct BadAddress {
    /// First address of the refused range.
    pub addr: usize,
    /// Length of the refused range in bytes.
    pub len: usize,
    /// Whether the refused access was a write.
    pub write: bool,
}

/// Copies as many bytes as possible from `addr` into `buf`, stopping at the
/// first byte that cannot be read. Returns the number of bytes copied.
///
/// Async-signal-safe: one `process_vm_readv` system call per attempt.
pub fn read_partial(addr: usize, buf: &mut [u8]) -> usize {
    let len = buf.len();
    super::watch::checked_access(addr, len, || read_unwatched(addr, buf))
}

/// [`read_partial`] without the racing-buffer watch.
fn read_unwatched(addr: usize, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        let local = libc::iovec {
            iov_base: rest.as_mut_ptr().cast(),
            iov_len: rest.len(),
        };
        let remote = libc::iovec {
            iov_base: addr.wrapping_add(done) as *mut libc::c_void,
            iov_len: rest.len(),
        };
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let n =
            // SAFETY: `local` describes `rest`, a live exclusive buffer; the remote
            // range is only read by the kernel, which checks it and fails with
            // EFAULT instead of touching an unmapped or unreadable page.
            unsafe { libc::process_vm_readv(pid, &raw const local, 1, &raw const remote, 1, 0) };
        match usize::try_from(n) {
            Ok(0) | Err(_) => break,
            Ok(n) => done += n,
        }
    }
    done
}

/// Copies `data` to `addr`, stopping at the first byte that cannot be
/// written. Returns the number of bytes copied.
fn write_partial(addr: usize, data: &[u8]) -> usize {
    super::watch::checked_access(addr, data.len(), || write_unwatched(addr, data))
}

/// [`write_partial`] without the racing-buffer watch.
fn write_unwatched(addr: usize, data: &[u8]) -> usize {
    let mut done = 0;
    while done < data.len() {
        let rest = &data[done..];
        let local = libc::iovec {
            iov_base: rest.as_ptr().cast_mut().cast(),
            iov_len: rest.len(),
        };
        let remote = libc::iovec {
            iov_base: addr.wrapping_add(done) as *mut libc::c_void,
            iov_len: rest.len(),
        };
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let n =
            // SAFETY: the kernel only reads `local` (a live buffer) and checks the
            // remote range, honouring page protections (no FOLL_FORCE), so a
            // read-only or unmapped destination fails with EFAULT.
            unsafe { libc::process_vm_writev(pid, &raw const local, 1, &raw const remote, 1, 0) };
        match usize::try_from(n) {
            Ok(0) | Err(_) => break,
            Ok(n) => done += n,
        }
    }
    done
}

/// Whether every byte of `addr..addr + len` can be read (an empty range is readable).
#[must_use]
pub fn is_readable(addr: usize, len: usize) -> bool {
    let mut buf = [0_u8; 256];
    let mut offset = 0;
    while offset < len {
        let chunk = (len - offset).min(buf.len());
        if read_partial(addr.wrapping_add(offset), &mut buf[..chunk]) != chunk {
            return false;
        }
        offset += chunk;
    }
    addr.checked_add(len).is_some()
}

/// Copies `buf.len()` bytes from the driver address `addr` into `buf`.
///
/// # Errors
///
/// [`BadAddress`] when any byte of the range cannot be read; `buf` may then
/// hold a partial copy.
pub fn read_bytes(addr: usize, buf: &mut [u8]) -> Result<(), BadAddress> {
    let bad = BadAddress {
        addr,
        len: buf.len(),
        write: false,
    };
    if addr.checked_add(buf.len()).is_none() || read_partial(addr, buf) != buf.len() {
        return Err(bad);
    }
    Ok(())
}

/// Copies `data` to the driver address `addr`.
///
/// # Errors
///
/// [`BadAddress`] when any byte of the range cannot be written (unmapped or
/// read-only); a prefix of the range may have been written.
pub fn write_bytes(addr: usize, data: &[u8]) -> Result<(), BadAddress> {
    let bad = BadAddress {
        addr,
        len: data.len(),
        write: true,
    };
    if addr.checked_add(data.len()).is_none() || write_partial(addr, data) != data.len() {
        return Err(bad);
    }
    Ok(())
}

/// Reads a little-endian `u32` from the driver address `addr`.
///
/// # Errors
///
/// [`BadAddress`] when the four bytes cannot be read.
pub fn read_u32(addr: usize) -> Result<u32, BadAddress> {
    let mut b = [0; 4];
    read_bytes(addr, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// Reads a little-endian `u64` from the driver address `addr`.
///
/// # Errors
///
/// [`BadAddress`] when the eight bytes cannot be read.
pub fn read_u64(addr: usize) -> Result<u64, BadAddress> {
    let mut b = [0; 8];
    read_bytes(addr, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Reads a NUL-terminated byte string of at most `max_len` bytes (NUL not
/// included) from the driver address `addr`.
///
/// # Errors
///
/// [`BadAddress`] when a byte before the terminator cannot be read, or when
/// no terminator appears within `max_len` bytes (the error then covers the
/// whole `max_len + 1` range).
pub fn read_c_string(addr: usize, max_len: usize) -> Result<Vec<u8>, BadAddress> {
    let mut out = Vec::new();
    let mut cursor = addr;
    while out.len() <= max_len {
        // Never ask for bytes past the next page boundary: the string may end
        // just before an unmapped page.
        let to_page_end = PAGE_SIZE - (cursor % PAGE_SIZE);
        let want = to_page_end.min(max_len + 1 - out.len()).min(256);
        let mut chunk = vec![0; want];
        let got = read_partial(cursor, &mut chunk);
        if let Some(nul) = chunk[..got].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..nul]);
            return Ok(out);
        }
        if got < want {
            return Err(BadAddress {
                addr,
                len: out.len() + got + 1,
                write: false,
            });
        }
        out.extend_from_slice(&chunk);
        cursor = cursor.wrapping_add(want);
    }
    Err(BadAddress {
        addr,
        len: max_len + 1,
        write: false,
    })
}

/// Page protection of a mapped range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Perms {
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub execute: bool,
}

impl Perms {
    /// Read and write, not executable.
    pub const READ_WRITE: Self = Self {
        read: true,
        write: true,
        execute: false,
    };
    /// Read and execute, not writable.
    pub const READ_EXECUTE: Self = Self {
        read: true,
        write: false,
        execute: true,
    };
    /// Read only.
    pub const READ: Self = Self {
        read: true,
        write: false,
        execute: false,
    };
    /// No access.
    pub const NONE: Self = Self {
        read: false,
        write: false,
        execute: false,
    };

    const fn prot(self) -> libc::c_int {
        let mut prot = libc::PROT_NONE;
        if self.read {
            prot |= libc::PROT_READ;
        }
        if self.write {
            prot |= libc::PROT_WRITE;
        }
        if self.execute {
            prot |= libc::PROT_EXEC;
        }
        prot
    }
}

impl std::fmt::Display for Perms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = if self.read { 'r' } else { '-' };
        let w = if self.write { 'w' } else { '-' };
        let x = if self.execute { 'x' } else { '-' };
        write!(f, "{r}{w}{x}")
    }
}

/// An anonymous private mapping, unmapped on drop.
///
/// # Invariants
///
/// `addr` is the page-aligned start of a live mapping of `len` bytes (a
/// multiple of [`PAGE_SIZE`], non-zero) created by `mmap` in [`Mapping::new`]
/// and unmapped only by `Drop`.
#[derive(Debug)]
pub struct Mapping {
    addr: usize,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes (rounded up to whole pages) of zeroed read-write memory.
    pub fn new(len: usize) -> io::Result<Self> {
        let len = len
            .max(1)
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "mapping size overflows"))?;
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing aliases nothing that exists.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // INVARIANT: `ptr` is a fresh page-aligned mapping of `len` bytes.
        Ok(Self {
            addr: ptr as usize,
            len,
        })
    }

    /// First address of the mapping.
    pub const fn addr(&self) -> usize {
        self.addr
    }

    /// Length of the mapping in bytes.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Copies `data` to `offset` inside the mapping; the range must still be
    /// writable (the caller applies protections only after filling it).
    pub fn write(&self, offset: usize, data: &[u8]) -> io::Result<()> {
        let end = offset.checked_add(data.len()).filter(|&e| e <= self.len);
        if end.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "write past the end of a mapping",
            ));
        }
        write_bytes(self.addr + offset, data)
            .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))
    }

    /// Sets the protection of the pages covering `offset..offset + len`.
    pub fn protect(&self, offset: usize, len: usize, perms: Perms) -> io::Result<()> {
        let end = offset.checked_add(len).filter(|&e| e <= self.len);
        if end.is_none() || !offset.is_multiple_of(PAGE_SIZE) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "protection range outside the mapping",
            ));
        }
        if len == 0 {
            return Ok(());
        }
        let rc =
            // SAFETY: the range lies inside this mapping (checked above), which no
            // Rust reference points into; changing its protection cannot
            // invalidate a reference.
            unsafe { libc::mprotect((self.addr + offset) as *mut libc::c_void, len, perms.prot()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Mapping {
    /// Gives the pages covering `offset..offset + len` back to the host
    /// (`MADV_DONTNEED`): they read as zero afterwards and use no memory
    /// until touched again. The range keeps its protection.
    pub fn discard(&self, offset: usize, len: usize) -> io::Result<()> {
        let end = offset.checked_add(len).filter(|&e| e <= self.len);
        if end.is_none() || !offset.is_multiple_of(PAGE_SIZE) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "discard range outside the mapping",
            ));
        }
        if len == 0 {
            return Ok(());
        }
        let rc =
            // SAFETY: the range lies inside this mapping (checked above), which no
            // Rust reference points into; dropping its contents cannot invalidate
            // a reference, and the pages stay mapped.
            unsafe { libc::madvise((self.addr + offset) as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the range is a live mapping this value
        // owns; nothing refers to it after drop.
        unsafe {
            libc::munmap(self.addr as *mut libc::c_void, self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_reads_and_writes_follow_page_protections() {
        let map = Mapping::new(2 * PAGE_SIZE).unwrap();
        map.write(PAGE_SIZE - 3, b"ab\0").unwrap();
        assert_eq!(
            read_c_string(map.addr() + PAGE_SIZE - 3, 16).unwrap(),
            b"ab"
        );
        map.protect(PAGE_SIZE, PAGE_SIZE, Perms::NONE).unwrap();
        assert!(is_readable(map.addr(), PAGE_SIZE));
        assert!(!is_readable(map.addr() + PAGE_SIZE - 1, 2));
        assert!(!is_readable(0, 1));
        map.write(PAGE_SIZE - 2, b"cd").unwrap();
        let err = read_c_string(map.addr() + PAGE_SIZE - 2, 16).unwrap_err();
        assert_eq!(err.addr, map.addr() + PAGE_SIZE - 2);
        map.protect(0, PAGE_SIZE, Perms::READ).unwrap();
        let err = write_bytes(map.addr(), b"x").unwrap_err();
        assert!(err.write);
        assert_eq!(
            read_u32(map.addr() + PAGE_SIZE - 4).unwrap(),
            u32::from_le_bytes([0, b'a', b'c', b'd'])
        );
        assert!(read_u64(0x10).is_err());
        assert!(!is_readable(0xFFFF_F780_0000_0000, 4));
    }

    #[test]
    fn c_string_without_terminator_is_refused() {
        let map = Mapping::new(PAGE_SIZE).unwrap();
        map.write(0, &[b'x'; 64]).unwrap();
        let err = read_c_string(map.addr(), 10).unwrap_err();
        assert_eq!(err.len, 11);
        assert!(err.to_string().contains("not readable"));
    }
}
