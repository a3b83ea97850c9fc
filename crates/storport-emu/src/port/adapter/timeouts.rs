//! Timeouts: the SRB completion timeout, the miniport's timer, and the
//! bus reset Storport issues for a request not completed in time.

use std::time::Duration;

use crate::port::context::Routine;
use crate::port::model::DISPATCH_LEVEL;
use crate::port::state::lock;

use super::{Phase, Port, PortError, bool_result};

impl Port {
    /// `TimeOutValue` of the SRBs the port builds.
    pub(super) fn srb_timeout_seconds(&self) -> u32 {
        u32::try_from(self.options.srb_timeout.as_secs())
            .unwrap_or(u32::MAX)
            .max(1)
    }

    pub(super) fn fire_timer(&self) -> Result<(), PortError> {
        let timer = lock(&self.shared.timer).take();
        if let Some(timer) = timer {
            std::thread::sleep(Duration::from_micros(timer.micros.min(100_000)));
            let _ = self.call(
                Routine::Timer,
                DISPATCH_LEVEL,
                timer.routine,
                &[self.extension()],
            )?;
        }
        Ok(())
    }

    /// HwResetBus(PathId) at DISPATCH_LEVEL; returns its BOOLEAN.
    ///
    /// # Errors
    ///
    /// When no adapter is started or the driver bug-checks.
    pub fn reset_bus(&self, path_id: u8) -> Result<bool, PortError> {
        self.require(&[Phase::Started])?;
        let reset = self
            .init_data()
            .and_then(|i| i.HwResetBus)
            .map_or(0, |f| f as *const () as usize);
        self.log(format!("HwResetBus({path_id}) (DISPATCH_LEVEL)"));
        Ok(bool_result(self.call(
            Routine::ResetBus,
            DISPATCH_LEVEL,
            reset,
            &[self.extension(), u64::from(path_id)],
        )?))
    }
}
