//! The verifier rules the port checks, each with a stable name and the
//! place in Microsoft's contract it comes from, and the findings they raise.

use serde::Serialize;

/// `SCSI_VERIFIER_DETECTED_VIOLATION`, raised by Storport's verifier.
const SCSI_VERIFIER: u32 = 0xF1;
/// `DRIVER_VERIFIER_DETECTED_VIOLATION`.
const DRIVER_VERIFIER: u32 = 0xC4;
/// `BAD_POOL_CALLER`.
const BAD_POOL_CALLER: u32 = 0xC2;
/// `DPC_WATCHDOG_VIOLATION`.
const DPC_WATCHDOG_VIOLATION: u32 = 0x133;

/// One rule of the port's verifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Rule {
    /// `StorPortStallExecution` / `KeStallExecutionProcessor` asked for more than 0.1 s.
    StallTooLong,
    /// An SRB was completed a second time.
    DoubleCompletion,
    /// A registry routine was called above PASSIVE_LEVEL.
    RegistryIrql,
    /// An SRB was completed with `SRB_STATUS_PENDING`.
    StatusPending,
    /// HwFindAdapter left `ConfigInfo->VirtualDevice` FALSE.
    VirtualDevice,
    /// HwFindAdapter left `MaximumTransferLength` or `NumberOfPhysicalBreaks` unset.
    FindAdapterLimits,
    /// A pool allocation, stall or wait inside HwStartIo.
    NoWaitInStartIo,
    /// The registry buffer was freed while none was allocated.
    RegistryBufferDoubleFree,
    /// A pointer that is not the instance's registry buffer was freed as one.
    RegistryBufferForeign,
    /// A registry buffer was still allocated when the adapter was removed.
    RegistryBufferLeak,
    /// ScsiQuerySupportedControlTypes wrote past `SupportedTypeList[MaxControlType-1]`.
    SupportedTypeListOverrun,
    /// Pool still allocated when the driver was unloaded.
    PoolLeak,
    /// A pool free of an address the pool never handed out (or handed out and freed).
    BadPoolFree,
    /// `StorPortInitialize` was given an `HwInitializationDataSize` it does not know.
    InitDataRevision,
    /// `StorPortInitialize` was given init data that lacks a required callback or
    /// names another interface type than `Internal` for a virtual miniport.
    InitDataInvalid,
    /// The miniport completed an SRB with a `DataTransferLength` above the one it was given,
    /// or wrote past the data buffer.
    TransferLength,
    /// An SRB was not completed within its timeout.
    SrbTimeout,
    /// A completion named an SRB the port never gave the miniport.
    ForeignSrb,
    /// HwFindAdapter, HwInitialize or an adapter-control request reported failure.
    AdapterStartFailed,
    /// The driver called `KeBugCheckEx`.
    KeBugCheck,
    /// Driver code faulted (access violation, illegal instruction, stack overflow).
    DriverFault,
    /// Driver code did not return within the watchdog's limit.
    DriverHang,
    /// An import that storemu does not implement was called (`--allow-missing`).
    MissingImport,
    /// Data written to a disk did not read back equal.
    DataIntegrity,
    /// A callback returned at another IRQL than it was called at.
    IrqlNotRestored,
    /// A DISPATCH_LEVEL call waited for something a call it preempted on its
    /// processor held.
    PreemptedLockHolder,
    /// An access hit the special pool's guard page next to a live block.
    SpecialPoolOverrun,
    /// An access hit a special-pool block after it was freed.
    SpecialPoolUseAfterFree,
    /// Bytes next to a special-pool block changed while it was live (found on free).
    SpecialPoolCorruption,
    /// Driver code used the NULL result of a failed pool allocation.
    NullCheck,
    /// The outcome of a request whose data-out buffer changed while the
    /// miniport ran is one no consistent snapshot of the buffer produces.
    DataOutSnapshot,
    /// The miniport changed a member of a PNP, POWER or WMI SRB that the
    /// request's own layout does not give it to set.
    NonScsiSrbWrite,
    /// A block written before a PnP or power step read back different after it.
    LifecycleDataLoss,
    /// HwFindAdapter, run again on the adapter's device extension, left pool
    /// the extension led to unreachable from it while still allocated.
    LiveStateOverwritten,
    /// A spin lock was released that the releasing processor does not hold
    /// (free, held by another processor, or held through another routine family).
    SpinLockNotHeld,
    /// A spin lock was released at an IRQL its release routine does not allow.
    SpinLockReleaseIrql,
    /// A release restored another IRQL than the one its acquire found.
    SpinLockOldIrql,
    /// A processor asked for a spin lock it already holds.
    SpinLockRecursive,
    /// A callback returned while holding a spin lock it acquired.
    SpinLockHeldOnReturn,
    /// A spin lock was acquired at an IRQL its acquire routine does not allow.
    SpinLockAcquireIrql,
}

/// One row of [`RULES`]: rule, stable name, source, bug check (code, first parameter).
pub type RuleRow = (Rule, &'static str, &'static str, Option<(u32, u64)>);

/// What every rule is called, where it comes from and which bug check, if
/// any, Windows raises for it. One row per rule; the CLI prints this table.
pub const RULES: &[RuleRow] = &[
    (
        Rule::StallTooLong,
        "StallTooLong",
        "Driver Verifier, bug check 0xF1 parameter 0x2001 (stall longer than 0.1 s)",
        Some((SCSI_VERIFIER, 0x2001)),
    ),
    (
        Rule::DoubleCompletion,
        "DoubleCompletion",
        "Driver Verifier, bug check 0xF1 parameter 0x2004 (request completed twice)",
        Some((SCSI_VERIFIER, 0x2004)),
    ),
    (
        Rule::RegistryIrql,
        "StorPortIrql",
        "SDV rule StorPortIrql; StorPortRegistryRead/Write, StorPortAllocate/FreeRegistryBuffer: IRQL PASSIVE_LEVEL",
        None,
    ),
    (
        Rule::StatusPending,
        "StorPortStatusPending",
        "SDV rule StorPortStatusPending (a request is never completed with SRB_STATUS_PENDING)",
        None,
    ),
    (
        Rule::VirtualDevice,
        "StorPortVirtualDevice2",
        "SDV rule StorPortVirtualDevice2 (virtual HwFindAdapter sets ConfigInfo->VirtualDevice = TRUE)",
        None,
    ),
    (
        Rule::FindAdapterLimits,
        "StorPortFindAdapter",
        "SDV rule StorPortFindAdapter (HwFindAdapter sets MaximumTransferLength and NumberOfPhysicalBreaks)",
        None,
    ),
    (
        Rule::NoWaitInStartIo,
        "SpNoWait",
        "SDV rules SpNoWait / StorPortStartIo and this project's rule for HwStartIo: no wait, stall or pool allocation (HW_STARTIO allows StorPortAllocatePool in virtual miniports; storemu is stricter)",
        None,
    ),
    (
        Rule::RegistryBufferDoubleFree,
        "RegistryBufferDoubleFree",
        "StorPortFreeRegistryBuffer: frees the buffer StorPortAllocateRegistryBuffer returned, once",
        None,
    ),
    (
        Rule::RegistryBufferForeign,
        "RegistryBufferForeign",
        "StorPortFreeRegistryBuffer / StorPortRegistryRead: the buffer must come from StorPortAllocateRegistryBuffer",
        None,
    ),
    (
        Rule::RegistryBufferLeak,
        "RegistryBufferLeak",
        "StorPortAllocateRegistryBuffer: one buffer per instance, freed with StorPortFreeRegistryBuffer (checked when HwFindAdapter fails, after ScsiSetRunningConfig and at HwFreeAdapterResources)",
        None,
    ),
    (
        Rule::SupportedTypeListOverrun,
        "SupportedTypeListOverrun",
        "SCSI_SUPPORTED_CONTROL_TYPE_LIST: the list has MaxControlType entries",
        None,
    ),
    (
        Rule::PoolLeak,
        "PoolLeak",
        "Driver Verifier, bug check 0xC4 parameter 0x62 (driver unloaded without freeing its pool)",
        Some((DRIVER_VERIFIER, 0x62)),
    ),
    (
        Rule::BadPoolFree,
        "BadPoolFree",
        "Bug check 0xC2 BAD_POOL_CALLER (free of memory the pool does not own)",
        Some((BAD_POOL_CALLER, 0x46)),
    ),
    (
        Rule::InitDataRevision,
        "InitDataRevision",
        "StorPortInitialize returns STATUS_REVISION_MISMATCH for an unknown HW_INITIALIZATION_DATA version",
        None,
    ),
    (
        Rule::InitDataInvalid,
        "InitDataInvalid",
        "HW_INITIALIZATION_DATA: virtual miniports use Internal and set HwInitialize, HwStartIo, HwFindAdapter, HwResetBus, HwFreeAdapterResources; HW_ADAPTER_CONTROL, Remarks: HwStorAdapterControl is a required function",
        None,
    ),
    (
        Rule::TransferLength,
        "TransferLength",
        "SCSI_REQUEST_BLOCK.DataTransferLength: on completion at most the length the port supplied",
        None,
    ),
    (
        Rule::SrbTimeout,
        "SrbTimeout",
        "SCSI_REQUEST_BLOCK.TimeOutValue: the port resets the bus when a request outlives its timeout (HW_RESET_BUS: the miniport completes the bus's SRBs in HwStorResetBus)",
        None,
    ),
    (
        Rule::ForeignSrb,
        "ForeignSrb",
        "StorPortNotification(RequestComplete): only requests the port started may be completed",
        None,
    ),
    (
        Rule::AdapterStartFailed,
        "AdapterStartFailed",
        "HwFindAdapter returns SP_RETURN_FOUND and HwInitialize TRUE for a working adapter",
        None,
    ),
    (
        Rule::KeBugCheck,
        "KeBugCheckEx",
        "The driver called KeBugCheckEx",
        None,
    ),
    (
        Rule::DriverFault,
        "DriverFault",
        "Bug check 0x7E / 0x1E style fault in driver code",
        None,
    ),
    (
        Rule::DriverHang,
        "DriverHang",
        "Watchdog: a callback did not return",
        None,
    ),
    (
        Rule::MissingImport,
        "MissingImport",
        "An import storemu does not implement was called",
        None,
    ),
    (
        Rule::DataIntegrity,
        "DataIntegrity",
        "storemu's probe: a block written with WRITE(10) and completed with SUCCESS reads back as written",
        None,
    ),
    (
        Rule::IrqlNotRestored,
        "IrqlNotRestored",
        "Kernel routine contract: a callback returns at the IRQL it was called at (a raise without a lower, a spin lock not released)",
        None,
    ),
    (
        Rule::PreemptedLockHolder,
        "PreemptedLockHolder",
        "HW_STARTIO: Storport calls a virtual miniport's HwStorStartIo at any IRQL <= DISPATCH_LEVEL, without an internal spin lock; Introduction to Spin Locks / KeAcquireSpinLock: a spin lock holder runs at DISPATCH_LEVEL so that it cannot be preempted on its processor. A DISPATCH_LEVEL call that waits for what a call it preempted on the same processor holds never ends: bug check 0x133 DPC_WATCHDOG_VIOLATION, parameter 0 (a single DPC exceeded its time allotment). Seen under storemu run --seed: the preempted call is let go on after --dpc-watchdog-ms, and the waiting call finishing only then is the finding",
        Some((DPC_WATCHDOG_VIOLATION, 0)),
    ),
    (
        Rule::SpecialPoolOverrun,
        "SpecialPoolOverrun",
        "Driver Verifier Special Pool (Verify End): bug check 0xD6 DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION when driver code touches the guard page after its block, 0xCD PAGE_FAULT_BEYOND_END_OF_ALLOCATION when a kernel routine does it for the driver (parameters: address, 0 read / 1 write, faulting instruction, 0); the page before a block is inaccessible too and reported the same way (the documentation names no other code for it)",
        None,
    ),
    (
        Rule::SpecialPoolUseAfterFree,
        "SpecialPoolUseAfterFree",
        "Driver Verifier Special Pool: bug check 0xD5 DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL when driver code touches a freed block, 0xCC PAGE_FAULT_IN_FREED_SPECIAL_POOL when a kernel routine does it for the driver (parameters: address, 0 read / 1 write, faulting instruction, 0)",
        None,
    ),
    (
        Rule::SpecialPoolCorruption,
        "SpecialPoolCorruption",
        "Driver Verifier Special Pool: bug check 0xC1 SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION on free when the pattern before the block (parameter 4 = 0x23) or after its end (0x24) changed",
        None,
    ),
    (
        Rule::NullCheck,
        "NullCheck",
        "SDV rule NullCheck (storport): a NULL value is not dereferenced; ExAllocatePool2 / StorPortAllocatePool return NULL when the pool has not enough memory, so a fault at NULL + offset inside a failed allocation's size is that allocation's result used unchecked (the bug check stays the fault's own)",
        None,
    ),
    (
        Rule::DataOutSnapshot,
        "DataOutSnapshot",
        "SDV rule DoubleFetch (wdm): copy caller data once and do not read it again (a data-out buffer may be the caller's own pages, IOCTL_SCSI_PASS_THROUGH_DIRECT); SBC-3 UNMAP parameter list: the outcome (status, what changed on the medium) of a list that changes while the miniport runs is one a consistent snapshot of it produces (storemu run --racing-buffers; SBC is silent on partial effects of a refused UNMAP: storemu requires none, --racing-partial-unmap allows them)",
        None,
    ),
    (
        Rule::NonScsiSrbWrite,
        "NonScsiSrbWrite",
        "SCSI_PNP_REQUEST_BLOCK / SCSI_POWER_REQUEST_BLOCK / SCSI_WMI_REQUEST_BLOCK structure (srb.h): an SRB_FUNCTION_PNP, _POWER or _WMI request has its own layout; the miniport sets SrbStatus (WMI: also DataTransferLength and the DataBuffer contents), and the members the pages say \"miniport drivers should ignore\" (PnPSubFunction, SrbFlags, DataTransferLength, DataBuffer, SenseInfoBuffer, NextSrb, OriginalRequest) or call reserved are not its to write; offset 4 is PnPSubFunction / SrbPowerFlags / WMISubFunction, not ScsiStatus",
        None,
    ),
    (
        Rule::LifecycleDataLoss,
        "LifecycleDataLoss",
        "SCSI_ADAPTER_CONTROL_TYPE: ScsiStopAdapter (\"the miniport driver should not free its resources\") and ScsiRestartAdapter (\"its device extension and logical unit extensions ... are intact\"), SCSI_POWER_REQUEST_BLOCK, Handling SRB_FUNCTION_PNP: a D3/D0 cycle, a cancelled removal or a PnP stop/start keeps the adapter's memory, so a block written and completed with SUCCESS before the step reads back as written after it. For a virtual miniport across IRP_MN_STOP_DEVICE / IRP_MN_START_DEVICE the pages are silent: storemu runs HwFindAdapter and HwInitialize again on the same, intact device extension (--pnp-start restart: ScsiRestartAdapter instead)",
        None,
    ),
    (
        Rule::LiveStateOverwritten,
        "LiveStateOverwritten",
        "The pages are silent on what a virtual miniport's HwFindAdapter finds in its device extension when Storport starts the adapter again after IRP_MN_STOP_DEVICE; storemu's reading is the conservative one, the same extension with its contents intact (--pnp-start restart: ScsiRestartAdapter instead). HwFindAdapter must then not drop live adapter state: pool the extension led to before the call and still allocated after it must stay reachable from it",
        None,
    ),
    (
        Rule::SpinLockNotHeld,
        "SpinLockNotHeld",
        "Driver Verifier, bug check 0xC4 parameter 0x1007 (a resource released before it was acquired), 0x1004 (released by another thread than the one that acquired it), 0x1009 (released through a routine of another lock type; KeAcquireInStackQueuedSpinLock: a lock is used as either a queued or an ordinary spin lock); SDV rule StorPortSpinLock (release of a lock not acquired); ExReleaseSpinLockShared: the caller must own the lock",
        Some((DRIVER_VERIFIER, 0x1007)),
    ),
    (
        Rule::SpinLockReleaseIrql,
        "SpinLockReleaseIrql",
        "Driver Verifier, bug check 0xC4 parameter 0x32 (KeReleaseSpinLock at an IRQL other than DISPATCH_LEVEL) and 0x41 (KeReleaseSpinLockFromDpcLevel below DISPATCH_LEVEL); KeReleaseInStackQueuedSpinLock and ExReleaseSpinLockShared/Exclusive: IRQL = DISPATCH_LEVEL, their FromDpcLevel forms IRQL >= DISPATCH_LEVEL. StorPortReleaseSpinLock: its page gives no IRQL; storemu requires the level the acquire raised to (DISPATCH_LEVEL, DIRQL for InterruptLock) unless --storport-lock-irql unchecked",
        Some((DRIVER_VERIFIER, 0x32)),
    ),
    (
        Rule::SpinLockOldIrql,
        "SpinLockOldIrql",
        "DDI compliance rule IrqlKeReleaseSpinLock, bug check 0xC4 parameter 0x20015 (the IRQL a release restores is the one its acquire returned); ExReleaseSpinLockShared: OldIrql is the value ExAcquireSpinLockShared returned; Calling Support Routines That Use Spin Locks: a lock acquired by raising is not released with a FromDpcLevel routine",
        Some((DRIVER_VERIFIER, 0x0002_0015)),
    ),
    (
        Rule::SpinLockRecursive,
        "SpinLockRecursive",
        "Driver Verifier, bug check 0xC4 parameter 0x1000 (self-deadlock: a thread acquires a lock it holds), bug check 0xF SPIN_LOCK_ALREADY_OWNED; DDI compliance rule SpinLock; ExAcquireSpinLockShared: recursive acquisition deadlocks and is not allowed; StorPortAcquireSpinLock: a lock already held must not be acquired",
        Some((DRIVER_VERIFIER, 0x1000)),
    ),
    (
        Rule::SpinLockHeldOnReturn,
        "SpinLockHeldOnReturn",
        "DDI compliance rules SpinLock, bug check 0xC4 parameter 0x40009, and QueuedSpinLockRelease, 0x40007 (every spin lock is released before the routine ends); SDV rule StorPortSpinLock (no Storport lock held at the end of a routine)",
        Some((DRIVER_VERIFIER, 0x0004_0009)),
    ),
    (
        Rule::SpinLockAcquireIrql,
        "SpinLockAcquireIrql",
        "Driver Verifier, bug check 0xC4 parameter 0x42 (KeAcquireSpinLock above DISPATCH_LEVEL) and 0x40 (KeAcquireSpinLockAtDpcLevel below DISPATCH_LEVEL); KeAcquireInStackQueuedSpinLock and ExAcquireSpinLockShared/Exclusive: IRQL <= DISPATCH_LEVEL, their AtDpcLevel forms IRQL >= DISPATCH_LEVEL. StorPortAcquireSpinLock: its page gives no IRQL; storemu applies KeAcquireInStackQueuedSpinLock's to DpcLock and StartIoLock (STOR_LOCK_HANDLE holds a KLOCK_QUEUE_HANDLE) and DIRQL to InterruptLock unless --storport-lock-irql unchecked",
        Some((DRIVER_VERIFIER, 0x42)),
    ),
];

impl Rule {
    fn row(self) -> &'static RuleRow {
        RULES.iter().find(|row| row.0 == self).unwrap_or(&RULES[0])
    }

    /// The rule's stable name (what `--json` prints as `"rule"`).
    #[must_use]
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// Where the rule comes from.
    #[must_use]
    pub fn source(self) -> &'static str {
        self.row().2
    }

    /// The bug check code and first parameter Windows raises, if it raises one.
    #[must_use]
    pub fn bugcheck(self) -> Option<(u32, u64)> {
        self.row().3
    }
}

/// One violation the port observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Which rule.
    pub rule: Rule,
    /// The bug check code, when the violation is (or causes) one.
    pub bugcheck: Option<u32>,
    /// Bug check parameters, or the values that identify the violation.
    pub params: Vec<u64>,
    /// The miniport routine (or port phase) that was running.
    pub routine: String,
    /// A complete sentence describing what happened.
    pub message: String,
}

impl Finding {
    /// A finding for `rule` with the rule's own bug check, if it has one.
    #[must_use]
    pub fn new(rule: Rule, routine: &str, params: Vec<u64>, message: String) -> Self {
        let (bugcheck, params) = match rule.bugcheck() {
            Some((code, first)) => {
                let mut all = vec![first];
                all.extend(params);
                (Some(code), all)
            }
            None => (None, params),
        };
        Self {
            rule,
            bugcheck,
            params,
            routine: routine.to_owned(),
            message,
        }
    }

    /// A finding that is a bug check with explicit code and parameters.
    #[must_use]
    pub fn bugcheck(
        rule: Rule,
        code: u32,
        params: Vec<u64>,
        routine: &str,
        message: String,
    ) -> Self {
        Self {
            rule,
            bugcheck: Some(code),
            params,
            routine: routine.to_owned(),
            message,
        }
    }

    /// The JSON form of the command contract.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "rule": self.rule.name(),
            "source": self.rule.source(),
            "bugcheck": self.bugcheck.map(|code| format!("0x{code:X}")),
            "params": self.params.iter().map(|p| format!("0x{p:X}")).collect::<Vec<_>>(),
            "routine": self.routine,
            "message": self.message,
        })
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}]", self.rule.name())?;
        if let Some(code) = self.bugcheck {
            write!(f, " bug check 0x{code:X}")?;
            let params: Vec<String> = self.params.iter().map(|p| format!("0x{p:X}")).collect();
            write!(f, " ({})", params.join(", "))?;
        }
        write!(f, " in {}: {}", self.routine, self.message)
    }
}
