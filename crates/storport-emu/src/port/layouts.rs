//! The layouts of the SRBs that are not SCSI requests.
//!
//! `SRB_FUNCTION_PNP` (`SCSI_PNP_REQUEST_BLOCK`), `SRB_FUNCTION_POWER`
//! (`SCSI_POWER_REQUEST_BLOCK`) and `SRB_FUNCTION_WMI`
//! (`SCSI_WMI_REQUEST_BLOCK`), member by member, with what each member is
//! to the miniport.
//!
//! Storport hands these requests to `HwStartIo` like any SRB, but they are
//! not `SCSI_REQUEST_BLOCK`s: offset 4 is `PnPSubFunction`, `SrbPowerFlags`
//! or `WMISubFunction` (not `ScsiStatus`), offset 8 is the PnP action or
//! the device power state, and the pages say "miniport drivers should
//! ignore" `DataBuffer`, `SenseInfoBuffer` and friends. The port builds
//! each request in its own layout:
//!
//! - members the miniport reads (the address, the action, the flags, the
//!   timeout, `SrbExtension` when it asked for one) hold the request;
//! - pointer members it must ignore, or that are reserved, hold a
//!   non-canonical **poison** address ([`poison`]) that names the layout and
//!   the member, so a dereference faults and the fault report says which
//!   member it was ([`poison_note`]);
//! - other members it must ignore, and reserved bytes, hold [`SENTINEL`]
//!   bytes;
//! - after completion every member the layout does not give the miniport to
//!   set is compared with what the port put there ([`changed_members`]);
//!   only `SrbStatus` (and for WMI `DataTransferLength`) may change.
//!
//! Sources: "`SCSI_PNP_REQUEST_BLOCK` structure (srb.h)",
//! "`SCSI_POWER_REQUEST_BLOCK` structure (srb.h)",
//! "`SCSI_WMI_REQUEST_BLOCK` structure (srb.h)" and the WDK's srb.h for the
//! x64 offsets (asserted in `storport_sys::layout`).
//!
//! # Where the pages disagree
//!
//! `STOR_DEVICE_CAPABILITIES_EX` "reports device capabilities to the
//! Storport driver in response to a capabilities query in an SRB with a
//! function of SRB_FUNCTION_PNP", which implies a buffer, while
//! `SCSI_PNP_REQUEST_BLOCK` says the miniport ignores `DataBuffer` and
//! `DataTransferLength`. The port takes the conservative reading by default
//! (both poisoned, as for every other action); [`Options::capabilities_buffer`]
//! (`storemu run --pnp-capabilities-buffer`) takes the other one: a
//! `StorQueryCapabilities` request carries a `STOR_DEVICE_CAPABILITIES_EX`
//! buffer (`Version` 1, `Size` 24) in `DataBuffer` / `DataTransferLength`
//! that the miniport may fill.

#![expect(
    clippy::doc_markdown,
    reason = "Storport's identifiers are written as Microsoft's documentation writes them"
)]

use std::fmt::Write as _;
use std::mem::offset_of;

use storport_sys::{
    SCSI_PNP_REQUEST_BLOCK as Pnp, SCSI_POWER_REQUEST_BLOCK as Power, SCSI_REQUEST_BLOCK,
    SCSI_WMI_REQUEST_BLOCK as Wmi, srb_function,
};

/// Bytes of every SRB layout on x64.
pub const SRB_BYTES: usize = storport_sys::layout::SPECIAL_REQUEST_BLOCK_SIZE;
/// The fill of members the miniport must ignore that are not pointers, and
/// of reserved bytes: a write of any other value shows.
pub const SENTINEL: u8 = 0xA5;
/// The top 16 bits of every poison address (non-canonical: bits 63..47
/// differ).
const POISON_TAG: u64 = 0xBAD5;

/// An SRB's bytes.
pub type SrbBytes = [u8; SRB_BYTES];

/// What a member is to the miniport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The port's input: the miniport reads it and leaves it as it is.
    In,
    /// The miniport sets it.
    Out,
    /// "Miniport drivers should ignore this member" (or it is reserved
    /// because of the request's flags): poisoned or filled.
    Ignore,
    /// Reserved for system use: poisoned or filled.
    Reserved,
}

/// Why a member's access depends on the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Always what [`Member::access`] says.
    Fixed,
    /// `PathId`, `TargetId`, `Lun`: ignored (PNP, POWER) or reserved (WMI)
    /// for an adapter request.
    Address,
    /// `SrbExtension`: the miniport's only with `SrbExtensionSize` above zero.
    Extension,
    /// PNP `SrbFlags`, `DataTransferLength`, `DataBuffer`: ignored, except for
    /// `StorQueryCapabilities` under [`Options::capabilities_buffer`].
    Capabilities,
}

/// One member of a layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// The member's name in srb.h.
    pub name: &'static str,
    /// Offset on x64.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// Whether it is a pointer (poisoned rather than filled).
    pub pointer: bool,
    /// What it is to the miniport in the plain case.
    pub access: Access,
    /// What changes that.
    pub role: Role,
}

/// One layout: the structure's name, its function and its members in order.
#[derive(Debug, PartialEq, Eq)]
pub struct Layout {
    /// `SCSI_PNP_REQUEST_BLOCK`, ...
    pub name: &'static str,
    /// `SRB_FUNCTION_*`.
    pub function: u8,
    /// `SRB_FUNCTION_PNP`, ...
    pub function_name: &'static str,
    /// Every member, in order, covering all [`SRB_BYTES`] bytes.
    pub members: &'static [Member],
}

macro_rules! member {
    ($ty:ty, $name:ident, $size:expr, $pointer:expr, $access:ident, $role:ident) => {
        Member {
            name: stringify!($name),
            offset: offset_of!($ty, $name),
            size: $size,
            pointer: $pointer,
            access: Access::$access,
            role: Role::$role,
        }
    };
}

/// `SCSI_PNP_REQUEST_BLOCK`.
pub static PNP: Layout = Layout {
    name: "SCSI_PNP_REQUEST_BLOCK",
    function: srb_function::PNP,
    function_name: "SRB_FUNCTION_PNP",
    members: &[
        member!(Pnp, Length, 2, false, In, Fixed),
        member!(Pnp, Function, 1, false, In, Fixed),
        member!(Pnp, SrbStatus, 1, false, Out, Fixed),
        member!(Pnp, PnPSubFunction, 1, false, Ignore, Fixed),
        member!(Pnp, PathId, 1, false, In, Address),
        member!(Pnp, TargetId, 1, false, In, Address),
        member!(Pnp, Lun, 1, false, In, Address),
        member!(Pnp, PnPAction, 4, false, In, Fixed),
        member!(Pnp, SrbFlags, 4, false, Ignore, Capabilities),
        member!(Pnp, DataTransferLength, 4, false, Ignore, Capabilities),
        member!(Pnp, TimeOutValue, 4, false, In, Fixed),
        member!(Pnp, DataBuffer, 8, true, Ignore, Capabilities),
        member!(Pnp, SenseInfoBuffer, 8, true, Ignore, Fixed),
        member!(Pnp, NextSrb, 8, true, Ignore, Fixed),
        member!(Pnp, OriginalRequest, 8, true, Ignore, Fixed),
        member!(Pnp, SrbExtension, 8, true, In, Extension),
        member!(Pnp, SrbPnPFlags, 4, false, In, Fixed),
        member!(Pnp, Reserved, 4, false, Reserved, Fixed),
        member!(Pnp, Reserved4, 16, false, Reserved, Fixed),
    ],
};

/// `SCSI_POWER_REQUEST_BLOCK`.
pub static POWER: Layout = Layout {
    name: "SCSI_POWER_REQUEST_BLOCK",
    function: srb_function::POWER,
    function_name: "SRB_FUNCTION_POWER",
    members: &[
        member!(Power, Length, 2, false, In, Fixed),
        member!(Power, Function, 1, false, In, Fixed),
        member!(Power, SrbStatus, 1, false, Out, Fixed),
        member!(Power, SrbPowerFlags, 1, false, In, Fixed),
        member!(Power, PathId, 1, false, In, Address),
        member!(Power, TargetId, 1, false, In, Address),
        member!(Power, Lun, 1, false, In, Address),
        member!(Power, DevicePowerState, 4, false, In, Fixed),
        member!(Power, SrbFlags, 4, false, Ignore, Fixed),
        member!(Power, DataTransferLength, 4, false, Ignore, Fixed),
        member!(Power, TimeOutValue, 4, false, In, Fixed),
        member!(Power, DataBuffer, 8, true, Ignore, Fixed),
        member!(Power, SenseInfoBuffer, 8, true, Ignore, Fixed),
        member!(Power, NextSrb, 8, true, Ignore, Fixed),
        member!(Power, OriginalRequest, 8, true, Ignore, Fixed),
        member!(Power, SrbExtension, 8, true, In, Extension),
        member!(Power, PowerAction, 4, false, In, Fixed),
        member!(Power, Reserved, 4, false, Reserved, Fixed),
        member!(Power, Reserved5, 16, false, Reserved, Fixed),
    ],
};

/// `SCSI_WMI_REQUEST_BLOCK`. `OriginalRequest` (the IRP) is not the
/// miniport's: the page gives it no use, so it is poisoned like a reserved
/// pointer.
pub static WMI: Layout = Layout {
    name: "SCSI_WMI_REQUEST_BLOCK",
    function: srb_function::WMI,
    function_name: "SRB_FUNCTION_WMI",
    members: &[
        member!(Wmi, Length, 2, false, In, Fixed),
        member!(Wmi, Function, 1, false, In, Fixed),
        member!(Wmi, SrbStatus, 1, false, Out, Fixed),
        member!(Wmi, WMISubFunction, 1, false, In, Fixed),
        member!(Wmi, PathId, 1, false, In, Address),
        member!(Wmi, TargetId, 1, false, In, Address),
        member!(Wmi, Lun, 1, false, In, Address),
        member!(Wmi, Reserved1, 1, false, Reserved, Fixed),
        member!(Wmi, WMIFlags, 1, false, In, Fixed),
        member!(Wmi, Reserved2, 2, false, Reserved, Fixed),
        member!(Wmi, SrbFlags, 4, false, In, Fixed),
        member!(Wmi, DataTransferLength, 4, false, Out, Fixed),
        member!(Wmi, TimeOutValue, 4, false, In, Fixed),
        member!(Wmi, DataBuffer, 8, true, In, Fixed),
        member!(Wmi, DataPath, 8, true, In, Fixed),
        member!(Wmi, Reserved3, 8, true, Reserved, Fixed),
        member!(Wmi, OriginalRequest, 8, true, Ignore, Fixed),
        member!(Wmi, SrbExtension, 8, true, In, Extension),
        member!(Wmi, Reserved4, 4, false, Reserved, Fixed),
        member!(Wmi, Reserved6, 4, false, Reserved, Fixed),
        member!(Wmi, Reserved5, 16, false, Reserved, Fixed),
    ],
};

/// The layout of `function`, if it has one of its own.
#[must_use]
pub fn layout_of(function: u8) -> Option<&'static Layout> {
    [&PNP, &POWER, &WMI]
        .into_iter()
        .find(|layout| layout.function == function)
}

/// How the port reads the pages where they leave room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `StorQueryCapabilities` carries a `STOR_DEVICE_CAPABILITIES_EX`
    /// buffer the miniport may fill (see the module documentation).
    pub capabilities_buffer: bool,
}

/// The facts about one request that decide each member's access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// The request is for the adapter (`SRB_*_FLAGS_ADAPTER_REQUEST`).
    pub adapter_request: bool,
    /// The miniport asked for an SRB extension.
    pub extension: bool,
    /// A `StorQueryCapabilities` request with a capabilities buffer.
    pub capabilities_buffer: bool,
}

impl Member {
    /// The member's access for a request.
    #[must_use]
    pub const fn access_in(&self, context: &Context) -> Access {
        match self.role {
            Role::Address if context.adapter_request => Access::Ignore,
            Role::Extension if !context.extension => Access::Ignore,
            Role::Capabilities if context.capabilities_buffer => {
                if self.offset == offset_of!(Pnp, DataTransferLength) {
                    Access::Out
                } else {
                    Access::In
                }
            }
            _ => self.access,
        }
    }

    /// The member's byte range.
    #[must_use]
    pub const fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.size
    }
}

/// The poison address for `member` of `layout`: non-canonical, so any
/// access through it faults; bits 47..32 name the function and bits 31..16
/// the member's offset ([`poison_member`] reads them back).
#[must_use]
pub const fn poison(layout: &Layout, member: &Member) -> u64 {
    (POISON_TAG << 48) | ((layout.function as u64) << 32) | ((member.offset as u64) << 16)
}

/// The layout and member whose poison `address` is (or lies within 64 KiB
/// above), if it is one.
#[must_use]
pub fn poison_member(address: u64) -> Option<(&'static Layout, &'static Member)> {
    if address >> 48 != POISON_TAG {
        return None;
    }
    let function = u8::try_from((address >> 32) & 0xFF).ok()?;
    let offset = usize::try_from((address >> 16) & 0xFFFF).ok()?;
    let layout = layout_of(function)?;
    let member = layout
        .members
        .iter()
        .find(|m| m.offset == offset && m.pointer)?;
    Some((layout, member))
}

/// The x86 names of the general-purpose registers, in their numbering.
const REGISTERS: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// A sentence naming the poisoned member behind a fault, when the faulting
/// address (if the processor reported one) or a register at the fault holds
/// a poison value; `None` otherwise.
#[must_use]
pub fn poison_note(fault_address: Option<u64>, registers: &[u64]) -> Option<String> {
    let (layout, member, place) = fault_address
        .and_then(|address| {
            poison_member(address)
                .map(|(l, m)| (l, m, format!("The faulting address {address:#x}")))
        })
        .or_else(|| {
            registers.iter().zip(REGISTERS).find_map(|(&value, name)| {
                poison_member(value).map(|(l, m)| (l, m, format!("Register {name} ({value:#x})")))
            })
        })?;
    let why = if member.access == Access::Reserved {
        "a member the page reserves"
    } else {
        "a member the page says miniport drivers should ignore"
    };
    Some(format!(
        "{place} is the poison value storemu put in {}.{} of an {} request, {why} (\"{} structure (srb.h)\"): the miniport dereferenced a pointer the request does not give it.",
        layout.name, member.name, layout.function_name, layout.name
    ))
}

/// The bytes of `srb` as the miniport sees them.
#[must_use]
pub fn srb_bytes(srb: &SCSI_REQUEST_BLOCK) -> SrbBytes {
    let mut bytes = [0_u8; SRB_BYTES];
    let mut put = |offset: usize, value: &[u8]| {
        bytes[offset..offset + value.len()].copy_from_slice(value);
    };
    put(
        offset_of!(SCSI_REQUEST_BLOCK, Length),
        &srb.Length.to_le_bytes(),
    );
    put(offset_of!(SCSI_REQUEST_BLOCK, Function), &[srb.Function]);
    put(offset_of!(SCSI_REQUEST_BLOCK, SrbStatus), &[srb.SrbStatus]);
    put(
        offset_of!(SCSI_REQUEST_BLOCK, ScsiStatus),
        &[srb.ScsiStatus],
    );
    put(offset_of!(SCSI_REQUEST_BLOCK, PathId), &[srb.PathId]);
    put(offset_of!(SCSI_REQUEST_BLOCK, TargetId), &[srb.TargetId]);
    put(offset_of!(SCSI_REQUEST_BLOCK, Lun), &[srb.Lun]);
    put(offset_of!(SCSI_REQUEST_BLOCK, QueueTag), &[srb.QueueTag]);
    put(
        offset_of!(SCSI_REQUEST_BLOCK, QueueAction),
        &[srb.QueueAction],
    );
    put(offset_of!(SCSI_REQUEST_BLOCK, CdbLength), &[srb.CdbLength]);
    put(
        offset_of!(SCSI_REQUEST_BLOCK, SenseInfoBufferLength),
        &[srb.SenseInfoBufferLength],
    );
    put(
        offset_of!(SCSI_REQUEST_BLOCK, SrbFlags),
        &srb.SrbFlags.to_le_bytes(),
    );
    put(
        offset_of!(SCSI_REQUEST_BLOCK, DataTransferLength),
        &srb.DataTransferLength.to_le_bytes(),
    );
    put(
        offset_of!(SCSI_REQUEST_BLOCK, TimeOutValue),
        &srb.TimeOutValue.to_le_bytes(),
    );
    put(
        offset_of!(SCSI_REQUEST_BLOCK, DataBuffer),
        &srb.DataBuffer.addr().to_le_bytes(),
    );
    put(
        offset_of!(SCSI_REQUEST_BLOCK, SenseInfoBuffer),
        &srb.SenseInfoBuffer.addr().to_le_bytes(),
    );
    put(
        offset_of!(SCSI_REQUEST_BLOCK, NextSrb),
        &srb.NextSrb.addr().to_le_bytes(),
    );
    put(
        offset_of!(SCSI_REQUEST_BLOCK, OriginalRequest),
        &srb.OriginalRequest.addr().to_le_bytes(),
    );
    put(
        offset_of!(SCSI_REQUEST_BLOCK, SrbExtension),
        &srb.SrbExtension.addr().to_le_bytes(),
    );
    put(
        offset_of!(SCSI_REQUEST_BLOCK, InternalStatus),
        &srb.InternalStatus.to_le_bytes(),
    );
    put(
        offset_of!(SCSI_REQUEST_BLOCK, Reserved),
        &srb.Reserved.to_le_bytes(),
    );
    put(offset_of!(SCSI_REQUEST_BLOCK, Cdb), &srb.Cdb);
    bytes
}

fn take<const N: usize>(bytes: &SrbBytes, offset: usize) -> [u8; N] {
    let mut out = [0_u8; N];
    out.copy_from_slice(&bytes[offset..offset + N]);
    out
}

fn pointer(bytes: &SrbBytes, offset: usize) -> *mut std::ffi::c_void {
    std::ptr::with_exposed_provenance_mut(usize::from_le_bytes(take(bytes, offset)))
}

/// Writes `bytes` into `srb`, member by member. Pointers come back as plain
/// addresses: the caller re-points the ones that lead to its own buffers.
pub fn set_srb_bytes(srb: &mut SCSI_REQUEST_BLOCK, bytes: &SrbBytes) {
    let byte = |offset: usize| bytes[offset];
    let u32_at = |offset: usize| u32::from_le_bytes(take(bytes, offset));
    srb.Length = u16::from_le_bytes(take(bytes, offset_of!(SCSI_REQUEST_BLOCK, Length)));
    srb.Function = byte(offset_of!(SCSI_REQUEST_BLOCK, Function));
    srb.SrbStatus = byte(offset_of!(SCSI_REQUEST_BLOCK, SrbStatus));
    srb.ScsiStatus = byte(offset_of!(SCSI_REQUEST_BLOCK, ScsiStatus));
    srb.PathId = byte(offset_of!(SCSI_REQUEST_BLOCK, PathId));
    srb.TargetId = byte(offset_of!(SCSI_REQUEST_BLOCK, TargetId));
    srb.Lun = byte(offset_of!(SCSI_REQUEST_BLOCK, Lun));
    srb.QueueTag = byte(offset_of!(SCSI_REQUEST_BLOCK, QueueTag));
    srb.QueueAction = byte(offset_of!(SCSI_REQUEST_BLOCK, QueueAction));
    srb.CdbLength = byte(offset_of!(SCSI_REQUEST_BLOCK, CdbLength));
    srb.SenseInfoBufferLength = byte(offset_of!(SCSI_REQUEST_BLOCK, SenseInfoBufferLength));
    srb.SrbFlags = u32_at(offset_of!(SCSI_REQUEST_BLOCK, SrbFlags));
    srb.DataTransferLength = u32_at(offset_of!(SCSI_REQUEST_BLOCK, DataTransferLength));
    srb.TimeOutValue = u32_at(offset_of!(SCSI_REQUEST_BLOCK, TimeOutValue));
    srb.DataBuffer = pointer(bytes, offset_of!(SCSI_REQUEST_BLOCK, DataBuffer));
    srb.SenseInfoBuffer = pointer(bytes, offset_of!(SCSI_REQUEST_BLOCK, SenseInfoBuffer));
    srb.NextSrb = pointer(bytes, offset_of!(SCSI_REQUEST_BLOCK, NextSrb)).cast();
    srb.OriginalRequest = pointer(bytes, offset_of!(SCSI_REQUEST_BLOCK, OriginalRequest));
    srb.SrbExtension = pointer(bytes, offset_of!(SCSI_REQUEST_BLOCK, SrbExtension));
    srb.InternalStatus = u32_at(offset_of!(SCSI_REQUEST_BLOCK, InternalStatus));
    srb.Reserved = u32_at(offset_of!(SCSI_REQUEST_BLOCK, Reserved));
    srb.Cdb = take(bytes, offset_of!(SCSI_REQUEST_BLOCK, Cdb));
}

/// Fills every member of `layout` that the miniport must ignore, or that is
/// reserved, in `bytes`: pointers with their poison, the rest with
/// [`SENTINEL`].
pub fn fill_unused(layout: &Layout, context: &Context, bytes: &mut SrbBytes) {
    for member in layout.members {
        if matches!(member.access_in(context), Access::Ignore | Access::Reserved) {
            let range = member.range();
            if member.pointer {
                bytes[range].copy_from_slice(&poison(layout, member).to_le_bytes());
            } else {
                bytes[range].fill(SENTINEL);
            }
        }
    }
}

/// A member the miniport changed although the layout does not give it to
/// set: the member, its value as the port put it and as the miniport left it
/// (little-endian bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The member.
    pub member: &'static Member,
    /// Its bytes before the request.
    pub before: Vec<u8>,
    /// Its bytes at completion.
    pub after: Vec<u8>,
}

impl Change {
    fn value(bytes: &[u8]) -> String {
        if bytes.len() <= 8 {
            let mut wide = [0_u8; 8];
            wide[..bytes.len()].copy_from_slice(bytes);
            format!("{:#x}", u64::from_le_bytes(wide))
        } else {
            bytes.iter().fold(String::new(), |mut text, b| {
                let _ = write!(text, "{b:02x}");
                text
            })
        }
    }

    /// `Name (offset 0x4: 0xa5 -> 0x0)`.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "{} (offset {:#x}: {} -> {})",
            self.member.name,
            self.member.offset,
            Self::value(&self.before),
            Self::value(&self.after)
        )
    }
}

/// The members of `layout` that differ between `before` and `after` and
/// that the miniport may not set in this request.
#[must_use]
pub fn changed_members(
    layout: &'static Layout,
    context: &Context,
    before: &SrbBytes,
    after: &SrbBytes,
) -> Vec<Change> {
    layout
        .members
        .iter()
        .filter(|member| member.access_in(context) != Access::Out)
        .filter(|member| before[member.range()] != after[member.range()])
        .map(|member| Change {
            member,
            before: before[member.range()].to_vec(),
            after: after[member.range()].to_vec(),
        })
        .collect()
}

/// `StorQueryCapabilities`, ... for a `STOR_PNP_ACTION`.
#[must_use]
pub const fn pnp_action_name(action: u32) -> &'static str {
    use storport_sys::stor_pnp_action as a;
    match action {
        a::START_DEVICE => "StorStartDevice",
        a::REMOVE_DEVICE => "StorRemoveDevice",
        a::STOP_DEVICE => "StorStopDevice",
        a::QUERY_CAPABILITIES => "StorQueryCapabilities",
        a::QUERY_RESOURCE_REQUIREMENTS => "StorQueryResourceRequirements",
        a::FILTER_RESOURCE_REQUIREMENTS => "StorFilterResourceRequirements",
        a::SURPRISE_REMOVAL => "StorSurpriseRemoval",
        _ => "an undefined STOR_PNP_ACTION",
    }
}

/// `StorPowerDeviceD0`, ... for a `STOR_DEVICE_POWER_STATE`.
#[must_use]
pub const fn power_state_name(state: u32) -> &'static str {
    use storport_sys::stor_device_power_state as s;
    match state {
        s::UNSPECIFIED => "StorPowerDeviceUnspecified",
        s::D0 => "StorPowerDeviceD0",
        s::D1 => "StorPowerDeviceD1",
        s::D2 => "StorPowerDeviceD2",
        s::D3 => "StorPowerDeviceD3",
        _ => "an undefined STOR_DEVICE_POWER_STATE",
    }
}

/// `StorPowerActionSleep`, ... for a `STOR_POWER_ACTION`.
#[must_use]
pub const fn power_action_name(action: u32) -> &'static str {
    use storport_sys::stor_power_action as a;
    match action {
        a::NONE => "StorPowerActionNone",
        a::RESERVED => "StorPowerActionReserved",
        a::SLEEP => "StorPowerActionSleep",
        a::HIBERNATE => "StorPowerActionHibernate",
        a::SHUTDOWN => "StorPowerActionShutdown",
        a::SHUTDOWN_RESET => "StorPowerActionShutdownReset",
        a::SHUTDOWN_OFF => "StorPowerActionShutdownOff",
        a::WARM_EJECT => "StorPowerActionWarmEject",
        _ => "an undefined STOR_POWER_ACTION",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_covers_the_srb_without_gaps_or_overlaps() {
        for layout in [&PNP, &POWER, &WMI] {
            let mut next = 0;
            for member in layout.members {
                assert_eq!(member.offset, next, "{}.{}", layout.name, member.name);
                next += member.size;
            }
            assert_eq!(next, SRB_BYTES, "{}", layout.name);
        }
    }

    #[test]
    fn poison_is_non_canonical_and_names_its_member() {
        for layout in [&PNP, &POWER, &WMI] {
            for member in layout.members.iter().filter(|m| m.pointer) {
                let value = poison(layout, member);
                let top = value >> 47;
                assert!(top != 0 && top != 0x1_FFFF, "{value:#x} is canonical");
                assert_eq!(poison_member(value), Some((layout, member)));
                assert_eq!(poison_member(value + 0x18), Some((layout, member)));
            }
        }
        assert_eq!(poison_member(0x7FFF_0000_1000), None);
        assert_eq!(
            poison_member(0xBAD5_0000_2500_0000),
            None,
            "no pointer at 0x2500"
        );
    }

    #[test]
    fn a_fault_through_a_poisoned_register_names_the_member() {
        let data_buffer = PNP.members.iter().find(|m| m.name == "DataBuffer").unwrap();
        let mut registers = [0_u64; 16];
        registers[1] = poison(&PNP, data_buffer);
        let note = poison_note(None, &registers).expect("a note");
        assert!(
            note.contains("Register rcx") && note.contains("SCSI_PNP_REQUEST_BLOCK.DataBuffer"),
            "{note}"
        );
        assert_eq!(poison_note(Some(0x10), &[0; 16]), None);
    }

    #[test]
    fn bytes_round_trip_through_the_srb() {
        let mut bytes = [0_u8; SRB_BYTES];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::try_from(i).unwrap_or(0) ^ 0x5C;
        }
        let mut slot =
            super::super::srb::build((0, 0, 0), 0, &[], &super::super::DataDirection::None, 0, 1);
        set_srb_bytes(&mut slot.srb, &bytes);
        assert_eq!(srb_bytes(&slot.srb), bytes);
    }

    #[test]
    fn only_members_not_given_to_the_miniport_count_as_changes() {
        let context = Context {
            adapter_request: false,
            extension: true,
            capabilities_buffer: false,
        };
        let before = [0_u8; SRB_BYTES];
        let mut after = before;
        after[3] = 1; // SrbStatus
        after[4] = 2; // PnPSubFunction
        after[0x10] = 3; // DataTransferLength
        let names: Vec<&str> = changed_members(&PNP, &context, &before, &after)
            .iter()
            .map(|c| c.member.name)
            .collect();
        assert_eq!(names, ["PnPSubFunction", "DataTransferLength"]);
        let wmi: Vec<&str> = changed_members(&WMI, &context, &before, &after)
            .iter()
            .map(|c| c.member.name)
            .collect();
        assert_eq!(wmi, ["WMISubFunction"], "WMI gives DataTransferLength");
    }
}
