//! Registry buffer bookkeeping for one miniport instance, as a state machine.
//!
//! Sources:
//! - "`StorPortAllocateRegistryBuffer` function (storport.h)", Remarks: "Each
//!   instantiation of a miniport driver can only have one registry buffer
//!   allocated at a time"; a second allocation fails and returns NULL.
//!   `Length` in is the size wanted, out the size allocated.
//! - "`StorPortFreeRegistryBuffer` function", Remarks: frees the buffer
//!   `StorPortAllocateRegistryBuffer` returned; afterwards allocation
//!   succeeds again.
//!
//! Decisions: the allocated size equals the size asked for (zero included);
//! buffers are identified by their address, which the port model chooses.
//! Freeing anything but the outstanding buffer is classified:
//! an address freed before and not handed out again is a double free, any
//! other address is foreign while a buffer is outstanding and "not allocated"
//! while none is. A buffer still outstanding at unload is a leak.

/// A registry buffer handed to the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistryBuffer {
    /// The address the driver received.
    pub address: u64,
    /// The allocated length in bytes (returned through `Length`).
    pub length: u32,
}

/// Why `StorPortAllocateRegistryBuffer` returns NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocateError {
    /// A registry buffer is already outstanding for this miniport instance.
    #[error("a registry buffer ({:#x}, {} bytes) is already allocated; only one may be allocated at a time, so this allocation returns NULL", .0.address, .0.length)]
    AlreadyAllocated(RegistryBuffer),
}

/// Why a free (or a use) of a registry buffer address is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FreeError {
    /// No registry buffer is allocated and the address was never one.
    #[error("address {0:#x} is not a registry buffer: none is allocated")]
    NotAllocated(u64),
    /// A registry buffer is outstanding, but at another address.
    #[error("address {address:#x} is not the registry buffer; the allocated one is at {:#x}", .outstanding.address)]
    Foreign {
        /// The address given.
        address: u64,
        /// The buffer that is allocated.
        outstanding: RegistryBuffer,
    },
    /// The address was a registry buffer that has already been freed.
    #[error("registry buffer {0:#x} was already freed")]
    DoubleFree(u64),
}

/// The registry buffer still allocated when the instance goes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("registry buffer {:#x} ({} bytes) was never freed", .0.address, .0.length)]
pub struct LeakedBuffer(pub RegistryBuffer);

/// The registry buffer state of one miniport instance.
#[derive(Clone, Debug, Default)]
pub struct RegistryBuffers {
    outstanding: Option<RegistryBuffer>,
    freed: Vec<u64>,
}

impl RegistryBuffers {
    /// No buffer allocated.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// `StorPortAllocateRegistryBuffer`: records a buffer of `length` bytes at
    /// `address` (which the port model has reserved) and returns it.
    ///
    /// # Errors
    ///
    /// [`AllocateError::AlreadyAllocated`] while another buffer is outstanding;
    /// the driver gets NULL and the port model releases `address`.
    pub fn allocate(&mut self, length: u32, address: u64) -> Result<RegistryBuffer, AllocateError> {
        if let Some(buffer) = self.outstanding {
            return Err(AllocateError::AlreadyAllocated(buffer));
        }
        let buffer = RegistryBuffer { address, length };
        self.freed.retain(|&a| a != address);
        self.outstanding = Some(buffer);
        Ok(buffer)
    }

    /// Whether `address` is the outstanding registry buffer, classified like
    /// [`free`](Self::free) when it is not. The port model calls this before a
    /// read or write uses the driver's `Buffer`.
    ///
    /// # Errors
    ///
    /// The [`FreeError`] that freeing `address` would report.
    pub fn buffer_at(&self, address: u64) -> Result<RegistryBuffer, FreeError> {
        match self.outstanding {
            Some(buffer) if buffer.address == address => Ok(buffer),
            _ if self.freed.contains(&address) => Err(FreeError::DoubleFree(address)),
            Some(outstanding) => Err(FreeError::Foreign {
                address,
                outstanding,
            }),
            None => Err(FreeError::NotAllocated(address)),
        }
    }

    /// `StorPortFreeRegistryBuffer`: frees the outstanding buffer.
    ///
    /// # Errors
    ///
    /// [`FreeError`] when `address` is not the outstanding buffer; the state is
    /// unchanged then.
    pub fn free(&mut self, address: u64) -> Result<RegistryBuffer, FreeError> {
        let buffer = self.buffer_at(address)?;
        self.outstanding = None;
        self.freed.push(address);
        Ok(buffer)
    }

    /// The buffer currently allocated, if any.
    #[must_use]
    pub const fn outstanding(&self) -> Option<RegistryBuffer> {
        self.outstanding
    }

    /// The leak check at unload.
    ///
    /// # Errors
    ///
    /// [`LeakedBuffer`] when a buffer is still allocated.
    pub fn leak_check(&self) -> Result<(), LeakedBuffer> {
        self.outstanding.map_or(Ok(()), |b| Err(LeakedBuffer(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_allocation_fails_while_one_is_outstanding() {
        let mut bufs = RegistryBuffers::new();
        let first = bufs.allocate(64, 0x1000).unwrap();
        assert_eq!(
            first,
            RegistryBuffer {
                address: 0x1000,
                length: 64
            }
        );
        assert_eq!(
            bufs.allocate(32, 0x2000),
            Err(AllocateError::AlreadyAllocated(first))
        );
        assert_eq!(bufs.outstanding(), Some(first));
    }

    #[test]
    fn free_then_allocate_works() {
        let mut bufs = RegistryBuffers::new();
        bufs.allocate(64, 0x1000).unwrap();
        assert_eq!(bufs.free(0x1000).map(|b| b.length), Ok(64));
        assert_eq!(bufs.outstanding(), None);
        assert_eq!(bufs.allocate(8, 0x3000).map(|b| b.address), Ok(0x3000));
        assert!(bufs.leak_check().is_err());
        bufs.free(0x3000).unwrap();
        assert_eq!(bufs.leak_check(), Ok(()));
    }

    #[test]
    fn double_free_is_reported_and_changes_nothing() {
        let mut bufs = RegistryBuffers::new();
        bufs.allocate(64, 0x1000).unwrap();
        bufs.free(0x1000).unwrap();
        assert_eq!(bufs.free(0x1000), Err(FreeError::DoubleFree(0x1000)));
        // Also while a new buffer is outstanding elsewhere.
        bufs.allocate(64, 0x2000).unwrap();
        assert_eq!(bufs.free(0x1000), Err(FreeError::DoubleFree(0x1000)));
        assert_eq!(bufs.outstanding().map(|b| b.address), Some(0x2000));
    }

    #[test]
    fn reused_address_is_not_a_double_free() {
        let mut bufs = RegistryBuffers::new();
        bufs.allocate(64, 0x1000).unwrap();
        bufs.free(0x1000).unwrap();
        bufs.allocate(64, 0x1000).unwrap();
        assert!(bufs.free(0x1000).is_ok());
    }

    #[test]
    fn foreign_and_unallocated_frees() {
        let mut bufs = RegistryBuffers::new();
        assert_eq!(bufs.free(0x5000), Err(FreeError::NotAllocated(0x5000)));
        let b = bufs.allocate(64, 0x1000).unwrap();
        assert_eq!(
            bufs.free(0x5000),
            Err(FreeError::Foreign {
                address: 0x5000,
                outstanding: b
            })
        );
        assert_eq!(bufs.buffer_at(0x1000), Ok(b));
        assert_eq!(bufs.leak_check(), Err(LeakedBuffer(b)));
    }

    #[test]
    fn errors_are_sentences() {
        let b = RegistryBuffer {
            address: 0x10,
            length: 4,
        };
        assert_eq!(
            AllocateError::AlreadyAllocated(b).to_string(),
            "a registry buffer (0x10, 4 bytes) is already allocated; only one may be allocated at a time, so this allocation returns NULL"
        );
        assert_eq!(
            LeakedBuffer(b).to_string(),
            "registry buffer 0x10 (4 bytes) was never freed"
        );
    }
}
