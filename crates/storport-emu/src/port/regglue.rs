//! The port's side of Storport's registry API.
//!
//! Raw driver pointers become calls on the registry model
//! ([`crate::registry`]): one [`RegistryBuffers`] state machine per miniport
//! instance, buffers allocated from pool the port tracks, and
//! [`registry_read`] / [`registry_write`] over the buffer's bytes.
//!
//! A buffer still allocated when the routine that must release it returns
//! (find-adapter, SetRunningConfig) or at HwFreeAdapterResources is a leak:
//! Storport allows one buffer per instance at a time, so a buffer kept past
//! the routine blocks every later registry access of the adapter.

use crate::registry::{
    FreeError, ReadOutcome, Registry, RegistryBuffer, RegistryBuffers, RegistryCallError,
    RegistryScope, registry_read, registry_write,
};

use super::pool::Pool;

/// Pool tag of registry buffers (`'SpRg'`).
const REGISTRY_BUFFER_TAG: u32 = u32::from_le_bytes(*b"SpRg");

/// The registry as the port sees it, plus the instance's registry buffer.
#[derive(Debug)]
pub struct RegistryPort {
    /// The emulated registry (root `HKLM\SYSTEM\CurrentControlSet`).
    pub registry: Registry,
    /// Service and adapter number the calls address.
    pub scope: RegistryScope,
    buffers: RegistryBuffers,
    pool: Pool,
}

impl Default for RegistryPort {
    fn default() -> Self {
        Self::new(Registry::new(), "miniport")
    }
}

impl RegistryPort {
    /// The port's view of `registry` for adapter 0 of `service`.
    #[must_use]
    pub fn new(registry: Registry, service: &str) -> Self {
        Self {
            registry,
            scope: RegistryScope::new(service, 0),
            buffers: RegistryBuffers::new(),
            pool: Pool::default(),
        }
    }

    /// `Services\<service>`.
    #[must_use]
    pub fn service_key(&self) -> String {
        format!("Services\\{}", self.scope.service)
    }

    /// `StorPortAllocateRegistryBuffer`: `Some((address, length))`, or `None`
    /// while a buffer is already allocated.
    pub fn allocate(&mut self, wanted: u32) -> Option<(usize, u32)> {
        if self.buffers.outstanding().is_some() {
            return None;
        }
        let address = self
            .pool
            .allocate(wanted as usize, REGISTRY_BUFFER_TAG, true, "registry")?;
        if let Ok(buffer) = self.buffers.allocate(wanted, address as u64) {
            Some((address, buffer.length))
        } else {
            let _ = self.pool.free(address);
            None
        }
    }

    /// `StorPortFreeRegistryBuffer`.
    ///
    /// # Errors
    ///
    /// The model's [`FreeError`] when `address` is not the live buffer.
    pub fn free(&mut self, address: usize) -> Result<(), FreeError> {
        self.buffers.free(address as u64)?;
        let _ = self.pool.free(address);
        Ok(())
    }

    /// The live buffer, if any, as `(address, length)`.
    #[must_use]
    pub fn buffer(&self) -> Option<(usize, u32)> {
        self.buffers
            .outstanding()
            .map(|b| (b.address as usize, b.length))
    }

    fn live(&self, address: usize) -> Result<RegistryBuffer, FreeError> {
        self.buffers.buffer_at(address as u64)
    }

    /// `StorPortRegistryRead` into the buffer at `address`.
    ///
    /// # Errors
    ///
    /// [`FreeError`] when `address` is not the live registry buffer.
    pub fn read(
        &self,
        address: usize,
        name: &[u8],
        global: u32,
        reg_type: u32,
        length: u32,
    ) -> Result<ReadOutcome, FreeError> {
        let buffer = self.live(address)?;
        let bytes =
            // SAFETY: the live registry buffer is a pool block of
            // `buffer.length` bytes this port allocated and still owns.
            unsafe { std::slice::from_raw_parts_mut(address as *mut u8, buffer.length as usize) };
        Ok(registry_read(
            &self.registry,
            &self.scope,
            name,
            global,
            reg_type,
            bytes,
            length,
        ))
    }

    /// `StorPortRegistryWrite` from the buffer at `address`.
    ///
    /// # Errors
    ///
    /// `Err(Err(FreeError))` when `address` is not the live registry buffer,
    /// `Err(Ok(RegistryCallError))` when the model refuses the write.
    pub fn write(
        &mut self,
        address: usize,
        name: &[u8],
        global: u32,
        reg_type: u32,
        length: u32,
    ) -> Result<(), Result<RegistryCallError, FreeError>> {
        let buffer = self.live(address).map_err(Err)?;
        let bytes =
            // SAFETY: as in `read`: a live pool block of `buffer.length` bytes.
            unsafe { std::slice::from_raw_parts(address as *const u8, buffer.length as usize) };
        registry_write(
            &mut self.registry,
            &self.scope,
            name,
            global,
            reg_type,
            bytes,
            length,
        )
        .map_err(Ok)
    }
}
