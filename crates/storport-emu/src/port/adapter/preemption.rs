//! Preemption of a `HwStartIo` call (`--seed`): running a call that may be
//! parked, the DISPATCH_LEVEL request that preempts it, and the report of
//! a preempted lock holder.

use crate::machine::preempt::{Preempted, Preemption};
use crate::port::context::{self, Routine};
use crate::port::cpu::Preemptive;
use crate::port::locks::{self};
use crate::port::model::DISPATCH_LEVEL;
use crate::port::rules::Rule;
use crate::port::schedule::Companion;
use crate::port::srb::{self};

use super::{Port, PortError, code_location, data_in_length};

impl Port {
    /// [`Self::call`], taking part in the preemption model as `how` says.
    pub(super) fn call_preemptive(
        &self,
        routine: Routine,
        irql: u8,
        target: usize,
        args: &[u64],
        how: Preemptive<'_>,
    ) -> Result<u64, PortError> {
        let acquired_since = locks::mark();
        let result = {
            let _frame = context::enter(&self.shared, routine, irql);
            // SAFETY: `target` is a routine the miniport registered for
            // `routine`, and `args` are the arguments its documented
            // prototype takes, pointing at memory the port keeps alive.
            unsafe { self.cpu.call_preemptive(target, args, irql, how) }
        };
        if result.is_ok() {
            locks::check_returned(&self.shared, routine, acquired_since);
        }
        self.shared.flush_debug_output();
        let rax = result.map_err(|fault| self.fault(routine, fault))?;
        self.run_dpcs()?;
        Ok(rax)
    }

    /// Runs the request that preempts the HwStartIo call `preemption`
    /// plans for, once that call is parked: at DISPATCH_LEVEL, on the
    /// parked call's processor (see [`crate::port::schedule`]).
    pub(super) fn preempt(
        &self,
        preemption: &Preemption,
        companion: &Companion,
    ) -> Result<(), PortError> {
        let Some(at) = preemption.wait_parked() else {
            return Ok(());
        };
        let _resume = ResumeOnDrop(preemption);
        let init = self.init_data().ok_or(PortError::NotRegistered)?;
        let _ = crate::machine::kpcr::set_processor_number(at.processor);
        self.log(format!(
            "HwStartIo preempted at IRQL {} on processor {} at {}; {} runs at DISPATCH_LEVEL on that processor",
            at.irql,
            at.processor,
            code_location(at.pc),
            companion.describe()
        ));
        let slot = srb::build(
            companion.address,
            storport_sys::srb_function::EXECUTE_SCSI,
            &companion.cdb,
            &companion.direction,
            init.SrbExtensionSize,
            self.srb_timeout_seconds(),
        );
        let how = Preemptive::Preempting {
            soft: self.options.dpc_watchdog,
            preemption,
        };
        let data_in = data_in_length(&companion.direction);
        self.run_slot_as(slot, &companion.cdb, data_in, &init, DISPATCH_LEVEL, how)
            .map(|_| ())
    }

    /// Reports a DISPATCH_LEVEL call that finished only after the call it
    /// preempted on its processor was let go on.
    pub(super) fn report_preempted_spin(&self, at: Preempted, spinning_pc: usize) -> PortError {
        let limit_ms = u64::try_from(self.options.dpc_watchdog.as_millis()).unwrap_or(u64::MAX);
        let message = format!(
            "HwStartIo at DISPATCH_LEVEL on processor {processor} was still running after {limit_ms} ms, at {spinning}, \
             while HwStartIo preempted at IRQL {irql} on the same processor at {preempted} was parked; \
             it finished only after the port let the preempted call go on, so it was waiting for something the preempted call held. \
             On Windows the preempted call never gets the processor back: the processor hangs and the DPC watchdog \
             bug-checks (0x133). Data that HwStartIo shares must be guarded by a lock that raises IRQL to DISPATCH_LEVEL \
             (KeAcquireSpinLockRaiseToDpc, KeAcquireInStackQueuedSpinLock, ExAcquireSpinLockExclusive, StorPortAcquireSpinLock).",
            processor = at.processor,
            spinning = code_location(spinning_pc),
            irql = at.irql,
            preempted = code_location(at.pc),
        );
        self.shared.violation(
            Rule::PreemptedLockHolder,
            Routine::StartIo,
            vec![limit_ms, limit_ms, u64::from(at.processor)],
            message.clone(),
        );
        PortError::BugCheck(message)
    }
}

/// Lets a parked call go on however the preempting side ends.
struct ResumeOnDrop<'a>(&'a Preemption);

impl Drop for ResumeOnDrop<'_> {
    fn drop(&mut self) {
        self.0.resume();
    }
}
