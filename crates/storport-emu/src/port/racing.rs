//! Requests whose data-out buffer changes while the miniport handles them.
//!
//! Storport hands a miniport the data-out buffer of the request as it is:
//! for a pass-through request (`IOCTL_SCSI_PASS_THROUGH_DIRECT`) that is the
//! caller's own memory, which another thread of the caller may rewrite at
//! any time. A miniport that reads a parameter list twice (checks the
//! descriptors, then reads them again to act) can decide on one version and
//! act on another; SDV's DoubleFetch rule names the same mistake for user
//! buffers. storemu's own buffers never change, so [`Port::execute_racing`]
//! makes one that does: the two versions of the buffer differ in one byte,
//! and the machine ([`crate::machine::watch`]) gives each access of that byte
//! the version a [`RacingSchedule`] names.
//!
//! Emulated exports that copy the buffer on the driver's behalf are accesses
//! too: `memcpy`, `memmove` and `RtlCopyMemory` run host code, whose reads
//! fault and are single-stepped like the driver's own; `StorPortMoveMemory`
//! reads through the checked helpers, and one call is one access. Because the
//! versions differ in one byte, every copy, torn or not, equals one version.
//!
//! Copied data (a WRITE's payload) is not checked: a copy of a buffer that
//! changes is torn whatever the miniport does. [`super::unmap_race`] judges
//! the one outcome that can be checked from outside.

use super::adapter::{Port, PortError};
use super::context::Routine;
use super::rules::Rule;
use super::srb::{DATA_GUARD_BYTES, DataDirection, GUARD_FILL, SrbResult};
use crate::machine::watch::RacingBuffer;
pub use crate::machine::watch::Schedule as RacingSchedule;

/// A data-out buffer in two versions that differ in exactly one byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RacingDataOut {
    first: Vec<u8>,
    varying: usize,
    second: u8,
}

impl RacingDataOut {
    /// The buffer `first`, which changes into `second` and back.
    ///
    /// # Errors
    ///
    /// A sentence saying why, when the versions differ in length or not in
    /// exactly one byte.
    pub fn new(first: Vec<u8>, second: &[u8]) -> Result<Self, String> {
        if first.len() != second.len() {
            return Err(format!(
                "the two versions of a racing buffer are {} and {} bytes long; give two versions of the same length.",
                first.len(),
                second.len()
            ));
        }
        let differing: Vec<usize> = (0..first.len())
            .filter(|&i| first[i] != second[i])
            .collect();
        let [varying] = differing[..] else {
            return Err(format!(
                "the two versions of a racing buffer differ in {} bytes; give versions that differ in exactly one byte, so that every copy of the buffer equals one of them.",
                differing.len()
            ));
        };
        Ok(Self {
            second: second[varying],
            varying,
            first,
        })
    }

    /// The first version.
    #[must_use]
    pub fn first(&self) -> &[u8] {
        &self.first
    }

    /// The second version.
    #[must_use]
    pub fn second(&self) -> Vec<u8> {
        let mut second = self.first.clone();
        second[self.varying] = self.second;
        second
    }

    /// The offset of the byte the versions differ in.
    #[must_use]
    pub const fn varying(&self) -> usize {
        self.varying
    }
}

/// How a racing request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RacingResult {
    /// The request's result (no data: the direction is data-out).
    pub result: SrbResult,
    /// How many times the varying byte was read or written while the
    /// miniport had the request.
    pub accesses: u32,
}

impl Port {
    /// Sends one `SRB_FUNCTION_EXECUTE_SCSI` data-out request to (bus,
    /// target, lun) whose buffer changes while the miniport handles it:
    /// access *n* of the varying byte sees the version `schedule` gives *n*.
    /// Writes past the buffer are reported as for any request.
    ///
    /// # Errors
    ///
    /// When no adapter is started, the driver bug-checks, or the buffer
    /// cannot be set up ([`PortError::RequestSetup`]).
    pub fn execute_racing(
        &self,
        address: (u8, u8, u8),
        cdb: &[u8],
        data: &RacingDataOut,
        schedule: RacingSchedule,
    ) -> Result<RacingResult, PortError> {
        let len = data.first.len();
        let (mut slot, init) =
            self.build_execute(address, cdb, &DataDirection::Out(data.first.clone()))?;
        let mut contents = data.first.clone();
        contents.resize(len + DATA_GUARD_BYTES, GUARD_FILL);
        let setup = |error: std::io::Error| PortError::RequestSetup(error.to_string());
        let buffer = RacingBuffer::new(
            &contents,
            data.varying,
            [data.first[data.varying], data.second],
        )
        .map_err(setup)?;
        // The slot's own buffer stays behind, untouched: the miniport gets
        // the racing one.
        slot.srb.DataBuffer = buffer.address() as *mut core::ffi::c_void;
        let armed = buffer.arm(schedule).map_err(setup)?;
        let result = self.run_slot(slot, cdb, None, &init);
        let accesses = armed.accesses();
        drop(armed);
        let result = result?;
        let after = buffer.contents().map_err(setup)?;
        if after[len..].iter().any(|&b| b != GUARD_FILL) {
            self.shared().violation(
                Rule::TransferLength,
                Routine::StartIo,
                vec![buffer.address() as u64, len as u64],
                format!(
                    "The miniport wrote past the end of the {len}-byte data buffer of a request with CDB opcode {:#04x}.",
                    cdb.first().copied().unwrap_or(0)
                ),
            );
        }
        if result.srb_status == 0 {
            // Not completed (the port timed it out): the miniport may still
            // hold the buffer, so it stays mapped.
            std::mem::forget(buffer);
        }
        Ok(RacingResult { result, accesses })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_must_differ_in_exactly_one_byte() {
        let data = RacingDataOut::new(vec![1, 2, 3], &[1, 9, 3]).unwrap();
        assert_eq!((data.varying(), data.second()), (1, vec![1, 9, 3]));
        assert_eq!(data.first(), &[1, 2, 3]);
        let same = RacingDataOut::new(vec![1, 2], &[1, 2]).unwrap_err();
        assert!(same.contains("differ in 0 bytes"), "{same}");
        let two = RacingDataOut::new(vec![1, 2], &[3, 4]).unwrap_err();
        assert!(two.contains("differ in 2 bytes"), "{two}");
        let length = RacingDataOut::new(vec![1], &[1, 2]).unwrap_err();
        assert!(length.contains("1 and 2 bytes long"), "{length}");
    }
}
