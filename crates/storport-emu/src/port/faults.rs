//! Fault injection: the N-th call of a fallible import fails.
//!
//! Driver Verifier's low-resources simulation fails allocations at random;
//! this plan fails exactly the calls it names, so a sweep can fail every
//! call site of a driver in turn and replay any one of them. Every fallible
//! export counts its calls per name over the port instance's whole life,
//! whether or not a plan names it, so a run without injection tells how many
//! call sites there are to sweep.
//!
//! | Call name | Fails as |
//! |---|---|
//! | `ExAllocatePool2`, `ExAllocatePoolWithTag`, `ExAllocatePool` | returns NULL |
//! | `StorPortAllocatePool`, `StorPortAllocateMdl` (`StorPortExtendedFunction`) | `STOR_STATUS_INSUFFICIENT_RESOURCES` |
//! | `StorPortAllocateRegistryBuffer` | returns NULL |
//! | `StorPortRegistryRead` | FALSE with `*BufferLength = 0` ("another error") |
//! | `StorPortRegistryWrite` | FALSE |

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Every call name a plan may name, as [`FaultSpec::call`] spells it.
pub const FALLIBLE_CALLS: [&str; 8] = [
    "ExAllocatePool2",
    "ExAllocatePoolWithTag",
    "ExAllocatePool",
    "StorPortAllocatePool",
    "StorPortAllocateMdl",
    "StorPortAllocateRegistryBuffer",
    "StorPortRegistryRead",
    "StorPortRegistryWrite",
];

/// One `CALL@N` (only the N-th call fails) or `CALL@N..` (the N-th and
/// every later call fail) of `--fail`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultSpec {
    /// The call name, one of [`FALLIBLE_CALLS`].
    pub call: &'static str,
    /// The first call that fails, counted from 1.
    pub nth: u64,
    /// Whether every call after the N-th fails too.
    pub onward: bool,
}

impl FaultSpec {
    /// Fails only call `nth` (from 1) of `call`.
    #[must_use]
    pub const fn once(call: &'static str, nth: u64) -> Self {
        Self {
            call,
            nth,
            onward: false,
        }
    }

    const fn covers(&self, count: u64) -> bool {
        if self.onward {
            count >= self.nth
        } else {
            count == self.nth
        }
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.call, self.nth)?;
        if self.onward {
            f.write_str("..")?;
        }
        Ok(())
    }
}

/// Why a `CALL@N` text is not a fault specification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FaultSpecError {
    /// No `@` between the call name and the count.
    #[error(
        "`{0}` is not of the form CALL@N or CALL@N.. (for example ExAllocatePool2@3); no fault is injected and nothing runs."
    )]
    Form(String),
    /// The name is not a fallible call storemu can fail.
    #[error(
        "`{0}` is not a call storemu can fail; expected one of {calls}; no fault is injected and nothing runs.",
        calls = FALLIBLE_CALLS.join(", ")
    )]
    UnknownCall(String),
    /// The count is not a whole number from 1.
    #[error(
        "`{0}` is not a call number; expected a whole number from 1 (the first call is 1); no fault is injected and nothing runs."
    )]
    Count(String),
}

impl FromStr for FaultSpec {
    type Err = FaultSpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, count) = text
            .split_once('@')
            .ok_or_else(|| FaultSpecError::Form(text.to_owned()))?;
        let call = FALLIBLE_CALLS
            .iter()
            .find(|known| known.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| FaultSpecError::UnknownCall(name.to_owned()))?;
        let count = count.trim();
        let (digits, onward) = count
            .strip_suffix("..")
            .map_or((count, false), |digits| (digits, true));
        let nth = digits
            .parse::<u64>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| FaultSpecError::Count(count.to_owned()))?;
        Ok(Self { call, nth, onward })
    }
}

/// One failure the plan injected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectedFault {
    /// The call name.
    pub call: &'static str,
    /// Which call of that name failed, from 1.
    pub nth: u64,
    /// The miniport routine that made the call.
    pub routine: String,
}

impl fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fault injection: call {} of {} (from {}) failed as planned",
            self.nth, self.call, self.routine
        )
    }
}

/// The calls to fail, the calls counted so far and the failures injected.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    specs: Vec<FaultSpec>,
    calls: BTreeMap<&'static str, u64>,
    injected: Vec<InjectedFault>,
}

impl FaultPlan {
    /// A plan failing the calls `specs` name; counts start at zero.
    #[must_use]
    pub fn new(specs: Vec<FaultSpec>) -> Self {
        Self {
            specs,
            ..Self::default()
        }
    }

    /// Counts one call of `call` from `routine`; `Some` when it must fail.
    pub fn on_call(&mut self, call: &'static str, routine: &str) -> Option<InjectedFault> {
        let count = self.calls.entry(call).or_insert(0);
        *count += 1;
        let count = *count;
        if !self
            .specs
            .iter()
            .any(|spec| spec.call == call && spec.covers(count))
        {
            return None;
        }
        let fault = InjectedFault {
            call,
            nth: count,
            routine: routine.to_owned(),
        };
        self.injected.push(fault.clone());
        Some(fault)
    }

    /// How many calls of each fallible name were made (names never called
    /// are absent).
    #[must_use]
    pub fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.calls.clone()
    }

    /// The failures injected so far, in order.
    #[must_use]
    pub fn injected(&self) -> &[InjectedFault] {
        &self.injected
    }

    /// The plan's specifications.
    #[must_use]
    pub fn specs(&self) -> &[FaultSpec] {
        &self.specs
    }
}

#[cfg(test)]
mod tests {
    use super::{FaultPlan, FaultSpec, FaultSpecError};

    #[test]
    fn specifications_parse_and_print_back() {
        let once: FaultSpec = "ExAllocatePool2@3".parse().expect("valid");
        assert_eq!(once, FaultSpec::once("ExAllocatePool2", 3));
        assert_eq!(once.to_string(), "ExAllocatePool2@3");
        let onward: FaultSpec = "storportregistryread@2..".parse().expect("valid");
        assert_eq!(
            (onward.call, onward.nth, onward.onward),
            ("StorPortRegistryRead", 2, true)
        );
        assert_eq!(onward.to_string(), "StorPortRegistryRead@2..");
    }

    #[test]
    fn malformed_specifications_are_refused_with_the_reason() {
        assert!(matches!(
            "ExAllocatePool2".parse::<FaultSpec>(),
            Err(FaultSpecError::Form(_))
        ));
        assert!(matches!(
            "KeBugCheckEx@1".parse::<FaultSpec>(),
            Err(FaultSpecError::UnknownCall(_))
        ));
        for count in ["0", "x", "", "-1", "1..2"] {
            let error = format!("ExAllocatePool2@{count}")
                .parse::<FaultSpec>()
                .expect_err("not a count");
            assert!(matches!(error, FaultSpecError::Count(_)), "{count}");
        }
        let message = "Nope@1"
            .parse::<FaultSpec>()
            .expect_err("unknown")
            .to_string();
        assert!(
            message.contains("StorPortRegistryWrite"),
            "lists the calls: {message}"
        );
    }

    #[test]
    fn the_plan_fails_exactly_the_named_calls_and_counts_all() {
        let mut plan = FaultPlan::new(vec![
            FaultSpec::once("ExAllocatePool2", 2),
            "StorPortRegistryRead@3..".parse().expect("valid"),
        ]);
        let pool: Vec<bool> = (0..4)
            .map(|_| plan.on_call("ExAllocatePool2", "HwFindAdapter").is_some())
            .collect();
        assert_eq!(pool, [false, true, false, false]);
        let reads: Vec<bool> = (0..5)
            .map(|_| {
                plan.on_call("StorPortRegistryRead", "HwFindAdapter")
                    .is_some()
            })
            .collect();
        assert_eq!(reads, [false, false, true, true, true]);
        assert!(plan.on_call("StorPortRegistryWrite", "x").is_none());
        assert_eq!(plan.calls()["ExAllocatePool2"], 4);
        assert_eq!(plan.calls()["StorPortRegistryRead"], 5);
        assert_eq!(plan.calls()["StorPortRegistryWrite"], 1);
        assert_eq!(plan.injected().len(), 4);
        assert_eq!(
            plan.injected()[0].to_string(),
            "fault injection: call 2 of ExAllocatePool2 (from HwFindAdapter) failed as planned"
        );
    }
}
