//! What start-io is handed: a [`StartIoRequest`], one typed view per SRB
//! function, decided before any other member of the SRB is read.
//!
//! Storport passes every request to `HwStartIo` as a `PSCSI_REQUEST_BLOCK`,
//! but only `SRB_FUNCTION_EXECUTE_SCSI` requests have that layout's meaning
//! throughout. `SRB_FUNCTION_PNP`, `SRB_FUNCTION_POWER` and
//! `SRB_FUNCTION_WMI` come in layouts of their own
//! ("`SCSI_PNP_REQUEST_BLOCK` structure (srb.h)",
//! "`SCSI_POWER_REQUEST_BLOCK` structure (srb.h)",
//! "`SCSI_WMI_REQUEST_BLOCK` structure (srb.h)"), where offset 4 is not
//! `ScsiStatus` and most pointers are to be ignored; the other functions
//! (resets, flush, shutdown, abort, I/O control) give the miniport only the
//! members their row of the `Function` table of "`SCSI_REQUEST_BLOCK`
//! structure (srb.h)" names. The trampoline reads `Function` (at offset 2
//! in every layout) and nothing else, then wraps the request in the view of
//! that function: [`Srb`] for SCSI commands, [`PnpSrb`], [`PowerSrb`],
//! [`WmiSrb`] and [`OtherSrb`] for the rest. Each view reads only the
//! members its layout gives the miniport, and can complete the request only
//! with what the layout lets the miniport set — for everything but SCSI
//! commands, `SrbStatus` alone. So a PNP request has no `ScsiStatus` to set
//! and no data buffer to read:
//!
//! ```compile_fail,E0599
//! use storport::{PnpSrb, SrbStatus};
//! fn answer(mut srb: PnpSrb<'_>) {
//!     srb.set_scsi_status(0);
//!     srb.complete(SrbStatus::SUCCESS);
//! }
//! ```
//!
//! ```
//! use storport::{Addressee, PnpSrb, SrbStatus};
//! fn answer(srb: PnpSrb<'_>) {
//!     let status = match srb.addressee() {
//!         Addressee::Adapter | Addressee::Unit { lun: 0, .. } => SrbStatus::SUCCESS,
//!         _ => SrbStatus::INVALID_LUN,
//!     };
//!     srb.complete(status);
//! }
//! ```
//!
//! Every view is completed at most once: `complete` consumes it, and a view
//! dropped without completion completes its request with
//! [`SrbStatus::INTERNAL_ERROR`] (see [`Srb`]).

use core::ffi::c_void;
use core::marker::PhantomData;
use core::mem::offset_of;
use core::ptr::NonNull;

use storport_sys::{
    SCSI_PNP_REQUEST_BLOCK, SCSI_POWER_REQUEST_BLOCK, SCSI_REQUEST_BLOCK, SCSI_WMI_REQUEST_BLOCK,
    notification, srb_function,
};

use crate::nonscsi::{OtherSrb, PnpSrb, PowerSrb, WmiSrb};
use crate::srb::{Srb, SrbFunction, SrbStatus};

// `Function` and `SrbStatus` sit at the same offsets in every layout, which
// is what lets the trampoline read the one and every view write the other
// before (or without) knowing more.
const _: () = {
    let function = offset_of!(SCSI_REQUEST_BLOCK, Function);
    let status = offset_of!(SCSI_REQUEST_BLOCK, SrbStatus);
    assert!(offset_of!(SCSI_PNP_REQUEST_BLOCK, Function) == function);
    assert!(offset_of!(SCSI_POWER_REQUEST_BLOCK, Function) == function);
    assert!(offset_of!(SCSI_WMI_REQUEST_BLOCK, Function) == function);
    assert!(offset_of!(SCSI_PNP_REQUEST_BLOCK, SrbStatus) == status);
    assert!(offset_of!(SCSI_POWER_REQUEST_BLOCK, SrbStatus) == status);
    assert!(offset_of!(SCSI_WMI_REQUEST_BLOCK, SrbStatus) == status);
};

/// The structures an SRB can be read as: all 0x58 bytes on x64, 8-byte
/// aligned, and made of integers, byte arrays and raw pointers only, so any
/// bytes are a valid value of each.
/// (The module is private, so no type outside this crate can claim it.)
pub trait Layout {}
impl Layout for SCSI_REQUEST_BLOCK {}
impl Layout for SCSI_PNP_REQUEST_BLOCK {}
impl Layout for SCSI_POWER_REQUEST_BLOCK {}
impl Layout for SCSI_WMI_REQUEST_BLOCK {}

const _: () = {
    use core::mem::{align_of, size_of};
    let size = size_of::<SCSI_REQUEST_BLOCK>();
    let align = align_of::<SCSI_REQUEST_BLOCK>();
    assert!(size_of::<SCSI_PNP_REQUEST_BLOCK>() == size);
    assert!(size_of::<SCSI_POWER_REQUEST_BLOCK>() == size);
    assert!(size_of::<SCSI_WMI_REQUEST_BLOCK>() == size);
    assert!(align_of::<SCSI_PNP_REQUEST_BLOCK>() == align);
    assert!(align_of::<SCSI_POWER_REQUEST_BLOCK>() == align);
    assert!(align_of::<SCSI_WMI_REQUEST_BLOCK>() == align);
};

/// A request of one start-io call that is not completed yet: what every
/// view reads its layout through and completes with.
///
/// # Invariants
///
/// `request` is the SRB Storport passed to the start-io call this value
/// lives in (`'a` ends with it), not yet completed, with its data buffer
/// mapped to a system address, and `device_extension` that call's
/// extension. Completion ([`Pending::finish`]) happens at most
/// once: only a view's consuming `complete` or its `Drop` calls it.
pub struct Pending<'a> {
    device_extension: NonNull<c_void>,
    request: NonNull<SCSI_REQUEST_BLOCK>,
    _call: PhantomData<&'a mut SCSI_REQUEST_BLOCK>,
}

impl Pending<'_> {
    /// The SRB of one start-io call.
    ///
    /// # Safety
    ///
    /// `srb` must be the SRB Storport passed to the running start-io call
    /// with `device_extension`, not completed yet, with its data buffer
    /// mapped to a system address; the value must not outlive the call.
    pub(crate) const unsafe fn new(
        device_extension: NonNull<c_void>,
        srb: NonNull<SCSI_REQUEST_BLOCK>,
    ) -> Self {
        // INVARIANT: the caller's promise.
        Self {
            device_extension,
            request: srb,
            _call: PhantomData,
        }
    }

    /// The SRB as layout `L`. Views read only the members their layout
    /// gives the miniport; a reference reads nothing by itself.
    pub(crate) const fn layout<L: Layout>(&self) -> &L {
        // SAFETY: the SRB is live and this call's (the invariant), 0x58
        // bytes and 8-byte aligned, which every `Layout` is, and any bytes
        // are a valid `L`; the shared borrow of `self` keeps it unaliased by
        // `layout_mut`.
        unsafe { self.request.cast::<L>().as_ref() }
    }

    /// The SRB as layout `L`, to set the members the layout gives the
    /// miniport.
    pub(crate) const fn layout_mut<L: Layout>(&mut self) -> &mut L {
        // SAFETY: as in `layout`, and `&mut self` makes this the only view.
        unsafe { self.request.cast::<L>().as_mut() }
    }

    /// `Function`, at offset 2 in every layout.
    pub(crate) const fn function(&self) -> u8 {
        self.layout::<SCSI_REQUEST_BLOCK>().Function
    }

    /// Sets `SrbStatus` (offset 3 in every layout) and completes the request
    /// (`StorPortNotification(RequestComplete)`). Only a view's consuming
    /// `complete` and its `Drop` call this, so it runs once per request.
    pub(crate) fn finish(&mut self, status: SrbStatus) {
        self.layout_mut::<SCSI_REQUEST_BLOCK>().SrbStatus = status.to_raw();
        // SAFETY: the SRB is this start-io call's and not yet completed (the
        // invariant); the callers above make this the only completion.
        unsafe {
            storport_sys::StorPortNotification(
                notification::REQUEST_COMPLETE,
                self.device_extension.as_ptr(),
                self.request.as_ptr().cast::<c_void>(),
            );
        }
    }

    /// Completes a request its view dropped, with `SRB_STATUS_INTERNAL_ERROR`,
    /// and says so through `DbgPrint`.
    pub(crate) fn abandon(&mut self) {
        crate::debug_print!(
            "storport: an SRB (function {}) was dropped without completion; completing it \
             with SRB_STATUS_INTERNAL_ERROR\n",
            crate::print::Hex(u64::from(self.function()))
        );
        self.finish(SrbStatus::INTERNAL_ERROR);
    }
}

/// Who a request is for, as far as its layout says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Addressee {
    /// The adapter itself (`SRB_*_FLAGS_ADAPTER_REQUEST`, or a function that
    /// names no unit): `PathId`, `TargetId` and `Lun` are not part of it.
    Adapter,
    /// A bus: only `PathId` is valid (`SRB_FUNCTION_RESET_BUS`).
    Bus {
        /// `PathId`.
        path_id: u8,
    },
    /// A target: `PathId` and `TargetId` are valid, `Lun` is not
    /// (`SRB_FUNCTION_RESET_DEVICE`).
    Target {
        /// `PathId`.
        path_id: u8,
        /// `TargetId`.
        target_id: u8,
    },
    /// One logical unit.
    Unit {
        /// `PathId`.
        path_id: u8,
        /// `TargetId`.
        target_id: u8,
        /// `Lun`.
        lun: u8,
    },
}

/// One request handed to start-io, by function.
///
/// The layer reads the SRB's `Function` and nothing else before it picks
/// the view, so each view reads only the members its layout
/// (`SCSI_REQUEST_BLOCK`, `SCSI_PNP_REQUEST_BLOCK`,
/// `SCSI_POWER_REQUEST_BLOCK`, `SCSI_WMI_REQUEST_BLOCK`) gives the miniport
/// and sets only those it lets the miniport set: `ScsiStatus`, sense and
/// the transfer length exist only on [`Srb`]. Complete the request through
/// its view; [`StartIoRequest::complete`] completes any of them with a
/// status alone.
#[derive(Debug)]
#[must_use = "a request must be completed; dropping it completes it with SRB_STATUS_INTERNAL_ERROR"]
pub enum StartIoRequest<'a> {
    /// `SRB_FUNCTION_EXECUTE_SCSI`: a CDB, data, sense and status.
    Scsi(Srb<'a>),
    /// `SRB_FUNCTION_PNP` (`SCSI_PNP_REQUEST_BLOCK`).
    Pnp(PnpSrb<'a>),
    /// `SRB_FUNCTION_POWER` (`SCSI_POWER_REQUEST_BLOCK`).
    Power(PowerSrb<'a>),
    /// `SRB_FUNCTION_WMI` (`SCSI_WMI_REQUEST_BLOCK`).
    Wmi(WmiSrb<'a>),
    /// Any other function: resets, flush, shutdown, abort, I/O control and
    /// functions this layer does not know.
    Other(OtherSrb<'a>),
}

impl StartIoRequest<'_> {
    /// Wraps the SRB of one start-io call in the view of its function,
    /// reading `Function` only.
    ///
    /// # Safety
    ///
    /// `srb` must be the SRB Storport passed to the running start-io call
    /// with `device_extension`, not completed yet, with a data buffer mapped
    /// to a system address; the value must not outlive the call.
    pub(crate) const unsafe fn new(
        device_extension: NonNull<c_void>,
        srb: NonNull<SCSI_REQUEST_BLOCK>,
    ) -> Self {
        // SAFETY: the caller's promise, passed on.
        Self::from_pending(unsafe { Pending::new(device_extension, srb) })
    }

    /// Wraps a pending request in the view of its function, reading
    /// `Function` only.
    pub(crate) const fn from_pending(pending: Pending<'_>) -> StartIoRequest<'_> {
        match pending.function() {
            // SAFETY: an EXECUTE_SCSI request is a SCSI_REQUEST_BLOCK, and
            // its data buffer is mapped (`Pending`'s invariant).
            srb_function::EXECUTE_SCSI => StartIoRequest::Scsi(unsafe { Srb::new(pending) }),
            srb_function::PNP => StartIoRequest::Pnp(PnpSrb::new(pending)),
            srb_function::POWER => StartIoRequest::Power(PowerSrb::new(pending)),
            srb_function::WMI => StartIoRequest::Wmi(WmiSrb::new(pending)),
            _ => StartIoRequest::Other(OtherSrb::new(pending)),
        }
    }

    /// The request's function.
    #[must_use]
    pub const fn function(&self) -> SrbFunction {
        match self {
            Self::Scsi(_) => SrbFunction::ExecuteScsi,
            Self::Pnp(_) => SrbFunction::Pnp,
            Self::Power(_) => SrbFunction::Power,
            Self::Wmi(_) => SrbFunction::Wmi,
            Self::Other(srb) => srb.function(),
        }
    }

    /// Completes the request with `status` alone, whatever its function
    /// (for a SCSI command `ScsiStatus` and the transfer length stay as the
    /// request arrived).
    pub fn complete(self, status: SrbStatus) {
        match self {
            Self::Scsi(srb) => srb.complete(status),
            Self::Pnp(srb) => srb.complete(status),
            Self::Power(srb) => srb.complete(status),
            Self::Wmi(srb) => srb.complete(status),
            Self::Other(srb) => srb.complete(status),
        }
    }
}
