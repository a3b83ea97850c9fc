//! Fault injection (`--fail`): the plan of import calls to fail, and what
//! was injected.

use crate::port::faults::{FaultPlan, FaultSpec, InjectedFault};
use crate::port::state::lock;

use super::Port;

impl Port {
    /// Installs a fault plan: the calls `specs` name will fail (see
    /// [`crate::port::faults`]). Call counts start again from zero.
    pub fn inject_faults(&self, specs: Vec<FaultSpec>) {
        for spec in &specs {
            self.log(format!("fault injection planned: {spec}"));
        }
        *lock(&self.shared.faults) = FaultPlan::new(specs);
    }

    /// How many calls of each fallible import the driver made so far
    /// (names never called are absent).
    #[must_use]
    pub fn fault_calls(&self) -> std::collections::BTreeMap<&'static str, u64> {
        lock(&self.shared.faults).calls()
    }

    /// The failures the fault plan injected so far, in order.
    #[must_use]
    pub fn injected_faults(&self) -> Vec<InjectedFault> {
        lock(&self.shared.faults).injected().to_vec()
    }
}
