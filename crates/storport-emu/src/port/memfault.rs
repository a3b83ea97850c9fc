//! What a memory fault in a driver call means for the pool.
//!
//! The machine reports a fault with its data address once the call gate has
//! recovered; here, in normal context, the port looks that address up:
//!
//! - on a special-pool guard page next to a live block: an overrun
//!   ([`Rule::SpecialPoolOverrun`], bug check 0xD6, or 0xCD when the faulting
//!   instruction is not in a driver image but in a kernel routine the driver
//!   called);
//! - on a quarantined (freed) block: a use after free
//!   ([`Rule::SpecialPoolUseAfterFree`], 0xD5, or 0xCC from a kernel routine);
//! - at `NULL + offset` with `offset` below the size of an allocation that
//!   returned NULL: that result used unchecked ([`Rule::NullCheck`]).
//!
//! Anything else stays the fault it was.

use std::sync::TryLockError;
use std::time::{Duration, Instant};

use super::cpu::CallFault;
use super::physmem::FailureCause;
use super::pool::{PoolHit, PoolHitKind, tag_text};
use super::rules::Rule;
use super::state::Shared;
use crate::machine::Exception;

/// `DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION`.
pub const DRIVER_BEYOND_END: u32 = 0xD6;
/// `PAGE_FAULT_BEYOND_END_OF_ALLOCATION`.
pub const SYSTEM_BEYOND_END: u32 = 0xCD;
/// `DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL`.
pub const DRIVER_FREED: u32 = 0xD5;
/// `PAGE_FAULT_IN_FREED_SPECIAL_POOL`.
pub const SYSTEM_FREED: u32 = 0xCC;
/// `SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION`.
pub const SPECIAL_POOL_CORRUPTION: u32 = 0xC1;
/// Longest the classification waits for the pool lock.
const POOL_LOCK_WAIT: Duration = Duration::from_millis(100);

/// `fault` (from `exception`) as the pool sees it, or unchanged.
#[must_use]
pub fn refine(shared: &Shared, exception: &Exception, fault: CallFault) -> CallFault {
    let Some(address) = exception.fault_address else {
        return fault;
    };
    // Another thread may hold the pool lock for a moment. No export faults
    // while holding it, but should one ever do, the gate skipped its frames
    // and the lock stays held: wait a bounded time, never for ever.
    let deadline = Instant::now() + POOL_LOCK_WAIT;
    let pool = loop {
        match shared.pool.try_lock() {
            Ok(pool) => break pool,
            Err(TryLockError::Poisoned(poisoned)) => break poisoned.into_inner(),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_micros(100));
            }
            Err(TryLockError::WouldBlock) => return fault,
        }
    };
    let hit = pool.classify(address);
    let failure = pool.failures().covering(address).cloned();
    drop(pool);
    if let Some(hit) = hit {
        return special_pool_fault(exception, address, &hit);
    }
    let Some(failure) = failure else {
        return fault;
    };
    let why = match failure.cause {
        FailureCause::Exhausted => "the physical memory model had not enough pool left",
        FailureCause::Injected => "the fault plan failed it",
        FailureCause::Host => "the host could not provide the memory",
    };
    let message = format!(
        "{} The address is NULL + {address:#x}, inside the {} bytes that {} with tag '{}' in {} asked for and did not get ({why}): the driver used the NULL result without checking it.",
        fault.message,
        failure.size_bytes,
        failure.export,
        tag_text(failure.tag),
        failure.routine,
    );
    CallFault {
        rule: Rule::NullCheck,
        message,
        ..fault
    }
}

fn special_pool_fault(exception: &Exception, address: usize, hit: &PoolHit) -> CallFault {
    let in_driver = exception.location.is_some();
    let who = exception.location.as_ref().map_or_else(
        || {
            format!(
                "A kernel routine (at {:#x}) called by the driver",
                exception.pc
            )
        },
        |location| format!("Driver code at {location}"),
    );
    let access = if exception.write { "wrote" } else { "read" };
    let block = &hit.block;
    let what = format!(
        "the {}-byte pool block at {:#x} with tag '{}' allocated in {}",
        block.size_bytes,
        hit.block_address,
        tag_text(block.tag),
        block.routine
    );
    let (rule, code, place) = match hit.kind {
        PoolHitKind::BeyondEnd => (
            Rule::SpecialPoolOverrun,
            if in_driver {
                DRIVER_BEYOND_END
            } else {
                SYSTEM_BEYOND_END
            },
            format!(
                "offset {:#x} of {what}, past its end; the special pool's guard page stopped it",
                address.wrapping_sub(hit.block_address)
            ),
        ),
        PoolHitKind::BeforeStart => (
            Rule::SpecialPoolOverrun,
            if in_driver {
                DRIVER_BEYOND_END
            } else {
                SYSTEM_BEYOND_END
            },
            format!(
                "{} byte(s) before the start of {what}; the special pool's guard page stopped it",
                hit.block_address.saturating_sub(address)
            ),
        ),
        PoolHitKind::Freed => (
            Rule::SpecialPoolUseAfterFree,
            if in_driver {
                DRIVER_FREED
            } else {
                SYSTEM_FREED
            },
            format!(
                "offset {:#x} of {what}, which was already freed",
                address.wrapping_sub(hit.block_address)
            ),
        ),
    };
    CallFault {
        rule,
        bugcheck: Some(code),
        params: vec![
            address as u64,
            u64::from(exception.write),
            exception.pc as u64,
            0,
        ],
        message: format!("{who} {access} {address:#x}, {place}."),
        reported: false,
        fault_address: Some(address as u64),
        registers: exception.registers.gpr.to_vec(),
    }
}
