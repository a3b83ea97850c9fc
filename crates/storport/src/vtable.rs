//! The `extern "win64"` trampolines Storport calls, one set per [`Miniport`]
//! type, and the device-extension slot the adapter state lives in.
//!
//! Every trampoline trusts Storport's calling contract — the arguments are
//! the ones the documentation describes, and the callbacks of one adapter
//! run in the documented order — and turns it into the safe trait's types.

use core::ffi::{CStr, c_void};
use core::marker::PhantomData;
use core::mem::{MaybeUninit, align_of, offset_of, size_of};
use core::ptr::NonNull;

use storport_sys::{
    BOOLEAN, HW_INITIALIZATION_DATA, INTERFACE_TYPE_INTERNAL, PORT_CONFIGURATION_INFORMATION,
    PVOID, SCSI_REQUEST_BLOCK, SCSI_SUPPORTED_CONTROL_TYPE_LIST, SP_RETURN_ERROR, SP_RETURN_FOUND,
    STOR_FEATURE_VIRTUAL_MINIPORT, STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE, ULONG,
    adapter_control, srb_function,
};

use crate::miniport::{
    AdapterControl, ConfigInfo, ControlStatus, DeclaredConfig, FindAdapterContext, Miniport,
    SupportedControlTypes,
};
use crate::registry::Registry;
use crate::request::{Pending, StartIoRequest};
use crate::srb::{Srb, SrbStatus};

/// The device extension's first word ([`HEADER`] bytes, read and written
/// unaligned) before find-adapter succeeds and after the adapter is
/// dropped: NULL, no adapter. Storport fills a device extension with zeros
/// once, when it allocates it ("`HW_INITIALIZATION_DATA` structure
/// (storport.h)", `DeviceExtensionSize`), so a new extension reads as
/// empty. Once find-adapter has stored the adapter, the word holds the
/// adapter's address instead (inside the extension, which Storport neither
/// moves nor frees before the device goes), so each request finds the
/// adapter with one load, without working out the slot's alignment again.
const EMPTY: *mut c_void = core::ptr::null_mut();

/// Bytes of the extension's first word, in front of the slot.
const HEADER: usize = size_of::<usize>();

/// The device extension's contents after the first word: the adapter and
/// what it declared in the port configuration at its last start.
///
/// The extension lives from the device's creation to its removal, across
/// Plug and Play stops and starts: find-adapter may find a live adapter
/// here ([`Miniport::find_adapter_again`]).
#[repr(C)]
struct AdapterSlot<A> {
    declared: DeclaredConfig,
    adapter: MaybeUninit<A>,
}

/// A field of the structure at `base`, `offset` bytes in; no memory is
/// touched.
fn field<T, U>(base: NonNull<T>, offset: usize) -> NonNull<U> {
    base.cast::<u8>()
        .map_addr(|address| address.saturating_add(offset))
        .cast()
}

/// The extension's first word: [`EMPTY`], or the adapter's address.
const fn state_of(extension: NonNull<c_void>) -> NonNull<*mut c_void> {
    extension.cast()
}

/// The slot's `declared` field.
fn declared_of<A>(slot: NonNull<AdapterSlot<A>>) -> NonNull<DeclaredConfig> {
    field(slot, offset_of!(AdapterSlot<A>, declared))
}

/// The slot's `adapter` field.
fn adapter_of<A>(slot: NonNull<AdapterSlot<A>>) -> NonNull<A> {
    field(slot, offset_of!(AdapterSlot<A>, adapter))
}

/// The trampolines and init data for miniport `T`.
pub struct MiniportVTable<T: Miniport>(PhantomData<T>);

impl<T: Miniport> MiniportVTable<T> {
    /// Bytes of padding that align the slot in an extension of any
    /// alignment. Storport's extensions come from nonpaged pool (8-byte
    /// aligned at least), but counting on nothing costs a few bytes at most.
    const SLOT_PADDING: usize = align_of::<AdapterSlot<T::Adapter>>() - 1;

    /// `DeviceExtensionSize`: the first word and the slot, plus room to
    /// align the slot.
    const DEVICE_EXTENSION_SIZE: ULONG = {
        let bytes = HEADER + size_of::<AdapterSlot<T::Adapter>>() + Self::SLOT_PADDING;
        assert!(
            bytes <= u32::MAX as usize,
            "the adapter state does not fit a device extension"
        );
        #[expect(clippy::cast_possible_truncation, reason = "checked on the line above")]
        let size = bytes as ULONG;
        size
    };

    /// The `HW_INITIALIZATION_DATA` that registers `T` as a virtual miniport.
    pub const fn init_data() -> HW_INITIALIZATION_DATA {
        HW_INITIALIZATION_DATA {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "0xD0 bytes, pinned by storport-sys's layout checks"
            )]
            HwInitializationDataSize: size_of::<HW_INITIALIZATION_DATA>() as ULONG,
            AdapterInterfaceType: INTERFACE_TYPE_INTERNAL,
            HwInitialize: Some(Self::initialize),
            HwStartIo: Some(Self::start_io),
            HwInterrupt: None,
            HwFindAdapter: Some(Self::find_adapter),
            HwResetBus: Some(Self::reset_bus),
            HwDmaStarted: None,
            HwAdapterState: None,
            DeviceExtensionSize: Self::DEVICE_EXTENSION_SIZE,
            SpecificLuExtensionSize: 0,
            SrbExtensionSize: 0,
            NumberOfAccessRanges: 0,
            Reserved: core::ptr::null_mut(),
            MapBuffers: STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE,
            NeedPhysicalAddresses: 0,
            TaggedQueuing: 1,
            AutoRequestSense: 1,
            MultipleRequestPerLu: 1,
            ReceiveEvent: 0,
            VendorIdLength: 0,
            VendorId: core::ptr::null_mut(),
            PortVersionFlags: 0,
            DeviceIdLength: 0,
            DeviceId: core::ptr::null_mut(),
            HwAdapterControl: Some(Self::adapter_control),
            HwBuildIo: None,
            HwFreeAdapterResources: Some(Self::free_adapter_resources),
            HwProcessServiceRequest: None,
            HwCompleteServiceIrp: None,
            HwInitializeTracing: None,
            HwCleanupTracing: None,
            HwTracingEnabled: None,
            FeatureSupport: STOR_FEATURE_VIRTUAL_MINIPORT,
            SrbTypeFlags: 0,
            AddressTypeFlags: 0,
            Reserved1: 0,
            HwUnitControl: None,
        }
    }

    /// The slot inside the device extension, after the first word, aligned
    /// for the adapter.
    fn slot(extension: NonNull<c_void>) -> NonNull<AdapterSlot<T::Adapter>> {
        let align = align_of::<AdapterSlot<T::Adapter>>();
        let address = extension.as_ptr() as usize;
        let offset = address.saturating_add(HEADER).next_multiple_of(align) - address;
        // The offset is at most HEADER + SLOT_PADDING, which
        // DEVICE_EXTENSION_SIZE includes, so the slot stays inside the
        // extension.
        field(extension, offset)
    }

    /// The adapter, if find-adapter stored one.
    ///
    /// # Safety
    ///
    /// `extension` must be a device extension of this miniport (at least
    /// [`Self::DEVICE_EXTENSION_SIZE`] bytes)
    /// on which find-adapter has run, and free-adapter-resources must not
    /// run for it while the reference lives.
    #[inline]
    unsafe fn adapter<'a>(extension: NonNull<c_void>) -> Option<&'a T::Adapter> {
        // SAFETY: the first word is inside the extension, and find-adapter
        // wrote it before any other callback could run; unaligned, as the
        // extension's alignment is not relied on.
        let address = unsafe { state_of(extension).read_unaligned() };
        let adapter = NonNull::new(address)?;
        // SAFETY: a non-empty first word is written only by `find_first`,
        // after the adapter, as the address of that adapter, which lies
        // inside this extension and is aligned (the slot was aligned there).
        // The extension neither moves nor changes hands while it lives, and
        // this layer alone writes it, so the address still leads to the
        // adapter: the check of `slot`'s alignment and the marker are made
        // once, at find-adapter, not on each request. The adapter is
        // initialised; it is dropped only by free-adapter-resources (after
        // the word is reset to EMPTY), which the caller rules out for `'a`.
        Some(unsafe { adapter.cast::<T::Adapter>().as_ref() })
    }

    /// The adapter's address in `slot`: the first word's value while the
    /// adapter is there.
    fn live_address(slot: NonNull<AdapterSlot<T::Adapter>>) -> *mut c_void {
        adapter_of(slot).as_ptr().cast()
    }

    /// `HwFindAdapter` (virtual, seven arguments): builds the adapter, or,
    /// on an extension that still holds one, keeps it
    /// ([`Miniport::find_adapter_again`]).
    ///
    /// # Safety
    ///
    /// Storport's contract: `device_extension` is this adapter's extension
    /// of `DeviceExtensionSize` bytes, filled with zeros when it was
    /// allocated and written since only by this layer; `config_info` is
    /// valid and exclusive for the call, `argument_string` is NULL or
    /// NUL-terminated, and the call runs at `PASSIVE_LEVEL` with no other
    /// callback of the adapter running (before the first request of this
    /// start, and after the stop that ended any previous one).
    unsafe extern "win64" fn find_adapter(
        device_extension: PVOID,
        _hw_context: PVOID,
        _bus_information: PVOID,
        _lower_device: PVOID,
        argument_string: *mut i8,
        config_info: *mut PORT_CONFIGURATION_INFORMATION,
        _again: *mut BOOLEAN,
    ) -> ULONG {
        let (Some(extension), Some(mut config)) =
            (NonNull::new(device_extension), NonNull::new(config_info))
        else {
            return SP_RETURN_ERROR;
        };
        let slot = Self::slot(extension);
        // SAFETY: the first word lies inside the extension, which the port
        // gave this call; no other callback runs now.
        let state = unsafe { state_of(extension).read_unaligned() };
        // SAFETY: the port passes a valid ConfigInfo, exclusively, for the call.
        let raw_config = unsafe { config.as_mut() };
        force_virtual_config(raw_config);
        let argument_string = if argument_string.is_null() {
            None
        } else {
            // SAFETY: a non-NULL ArgumentString is NUL-terminated and lives
            // for the call.
            Some(unsafe { CStr::from_ptr(argument_string) })
        };
        // SAFETY: find-adapter runs at PASSIVE_LEVEL with this extension,
        // and `registry` is dropped before this call returns.
        let mut registry = unsafe { Registry::new(extension) };
        let mut context = FindAdapterContext {
            config: ConfigInfo { raw: raw_config },
            registry: &mut registry,
            argument_string,
        };
        let status = if state.is_null() {
            // SAFETY: EMPTY: the slot holds no adapter, and nothing else
            // runs for the adapter now.
            unsafe { Self::find_first(extension, slot, &mut context) }
        } else {
            // SAFETY: live: find-adapter stored the adapter and its
            // declaration, and nothing else runs for the adapter now.
            unsafe { Self::find_again(extension, slot, &mut context) }
        };
        // Frees a registry buffer a leaked guard left, before the port sees
        // the callback return.
        drop(registry);
        status
    }

    /// Find-adapter on an extension without an adapter: builds one.
    ///
    /// # Safety
    ///
    /// `slot` is the slot of `extension`, the extension find-adapter was
    /// given, holds no adapter, and nothing else uses either during the
    /// call.
    unsafe fn find_first(
        extension: NonNull<c_void>,
        slot: NonNull<AdapterSlot<T::Adapter>>,
        context: &mut FindAdapterContext<'_>,
    ) -> ULONG {
        // SAFETY: the caller gives this call the extension alone.
        unsafe { state_of(extension).write_unaligned(EMPTY) };
        let result = T::find_adapter(context);
        force_virtual_config(context.config.raw);
        match result {
            Ok(adapter) => {
                // SAFETY: as above; the slot is aligned for the adapter.
                unsafe { adapter_of(slot).write(adapter) };
                // SAFETY: as above.
                unsafe { declared_of(slot).write(DeclaredConfig::capture(context.config.raw)) };
                // SAFETY: as above; the adapter's address follows the writes
                // it stands for.
                unsafe { state_of(extension).write_unaligned(Self::live_address(slot)) };
                SP_RETURN_FOUND
            }
            Err(error) => error.to_raw(),
        }
    }

    /// Find-adapter on an extension that holds a live adapter: keeps it,
    /// gives it back its declared configuration and lets the miniport
    /// re-read what may change; drops it if the miniport fails the start.
    ///
    /// # Safety
    ///
    /// `slot` is the slot of `extension`, the extension find-adapter was
    /// given, which holds a live adapter, and nothing else uses either or
    /// the adapter during the call.
    unsafe fn find_again(
        extension: NonNull<c_void>,
        slot: NonNull<AdapterSlot<T::Adapter>>,
        context: &mut FindAdapterContext<'_>,
    ) -> ULONG {
        // SAFETY: the live address follows the write of the declaration.
        let declared = unsafe { declared_of(slot).read() };
        declared.apply(context.config.raw);
        force_virtual_config(context.config.raw);
        // SAFETY: live: the adapter is initialised; the caller rules out any
        // other use of it for the call.
        let adapter = unsafe { adapter_of(slot).as_mut() };
        let result = T::find_adapter_again(adapter, context);
        force_virtual_config(context.config.raw);
        match result {
            Ok(()) => {
                // SAFETY: the caller gives this call the slot alone.
                unsafe { declared_of(slot).write(DeclaredConfig::capture(context.config.raw)) };
                SP_RETURN_FOUND
            }
            Err(error) => {
                // SAFETY: as above.
                unsafe { state_of(extension).write_unaligned(EMPTY) };
                // SAFETY: the adapter was initialised (live) and `adapter`
                // is not used again; EMPTY keeps it from being dropped or
                // used again.
                unsafe { adapter_of(slot).drop_in_place() };
                error.to_raw()
            }
        }
    }

    /// `HwInitialize`.
    ///
    /// # Safety
    ///
    /// Storport's contract: called with the adapter's extension after
    /// find-adapter.
    unsafe extern "win64" fn initialize(device_extension: PVOID) -> BOOLEAN {
        let Some(extension) = NonNull::new(device_extension) else {
            return 0;
        };
        // SAFETY: the port calls this after find-adapter and not alongside
        // free-adapter-resources.
        unsafe { Self::adapter(extension) }.map_or(0, |adapter| T::initialize(adapter).into())
    }

    /// `HwStartIo`.
    ///
    /// # Safety
    ///
    /// Storport's contract: the adapter's extension after a successful
    /// start, and an SRB this call owns until it is completed, with buffers
    /// mapped as `MapBuffers` asked; neither pointer NULL.
    unsafe extern "win64" fn start_io(
        device_extension: PVOID,
        srb: *mut SCSI_REQUEST_BLOCK,
    ) -> BOOLEAN {
        // SAFETY: Storport calls `HwStartIo` with the extension it allocated
        // for the adapter and an SRB, neither NULL (the function's contract).
        let extension = unsafe { NonNull::new_unchecked(device_extension) };
        // SAFETY: as above.
        let srb = unsafe { NonNull::new_unchecked(srb) };
        // SAFETY: start-io runs only while the adapter is started.
        let Some(adapter) = (unsafe { Self::adapter(extension) }) else {
            Self::no_adapter(extension, srb);
            return 1;
        };
        // SAFETY: the port hands this call a live SRB of this adapter, with
        // system-mapped buffers; the request does not outlive the call.
        let pending = unsafe { Pending::new(extension, srb) };
        // SCSI commands, the requests that carry I/O, are told apart first
        // and go on without the other views' dispatch; those come through
        // `other_request`, out of line.
        if pending.function() == srb_function::EXECUTE_SCSI {
            // SAFETY: an EXECUTE_SCSI request is a SCSI_REQUEST_BLOCK, and
            // its data buffer is mapped (`Pending`'s invariant).
            T::start_io(adapter, StartIoRequest::Scsi(unsafe { Srb::new(pending) }));
        } else {
            Self::other_request(adapter, pending);
        }
        1
    }

    /// A request of another function than `SRB_FUNCTION_EXECUTE_SCSI`, in
    /// the view of its function.
    #[inline(never)]
    fn other_request(adapter: &T::Adapter, pending: Pending<'_>) {
        T::start_io(adapter, StartIoRequest::from_pending(pending));
    }

    /// Completes a request that came without a started adapter with
    /// `SRB_STATUS_NO_DEVICE`.
    #[cold]
    #[inline(never)]
    fn no_adapter(extension: NonNull<c_void>, srb: NonNull<SCSI_REQUEST_BLOCK>) {
        // SAFETY: as in `start_io`, whose arguments these are.
        unsafe { StartIoRequest::new(extension, srb) }.complete(SrbStatus::NO_DEVICE);
    }

    /// `HwResetBus`.
    ///
    /// # Safety
    ///
    /// Storport's contract: the adapter's extension after find-adapter.
    unsafe extern "win64" fn reset_bus(device_extension: PVOID, path_id: ULONG) -> BOOLEAN {
        let Some(extension) = NonNull::new(device_extension) else {
            return 0;
        };
        // PathId is a UCHAR in every SRB; the upper bits carry nothing.
        let path_id = (path_id & 0xFF) as u8;
        // SAFETY: reset-bus runs only while the adapter is started.
        unsafe { Self::adapter(extension) }
            .map_or(0, |adapter| T::reset_bus(adapter, path_id).into())
    }

    /// `HwAdapterControl`.
    ///
    /// # Safety
    ///
    /// Storport's contract: the adapter's extension after find-adapter;
    /// for `ScsiQuerySupportedControlTypes`, `parameters` is a
    /// `SCSI_SUPPORTED_CONTROL_TYPE_LIST` with `MaxControlType` entries; the
    /// query, boot-config and running-config types run at `PASSIVE_LEVEL`.
    unsafe extern "win64" fn adapter_control(
        device_extension: PVOID,
        control_type: ULONG,
        parameters: PVOID,
    ) -> ULONG {
        let unsuccessful = ControlStatus::Unsuccessful.to_raw();
        let Some(extension) = NonNull::new(device_extension) else {
            return unsuccessful;
        };
        // SAFETY: adapter control comes only after find-adapter, never
        // alongside free-adapter-resources.
        let Some(adapter) = (unsafe { Self::adapter(extension) }) else {
            return unsuccessful;
        };
        let passive = match control_type {
            adapter_control::QUERY_SUPPORTED_CONTROL_TYPES => {
                let Some(list) =
                    NonNull::new(parameters.cast::<SCSI_SUPPORTED_CONTROL_TYPE_LIST>())
                else {
                    return unsuccessful;
                };
                // SAFETY: for this type Parameters is the port's list.
                let max = unsafe {
                    field::<_, ULONG>(
                        list,
                        offset_of!(SCSI_SUPPORTED_CONTROL_TYPE_LIST, MaxControlType),
                    )
                    .read()
                };
                // SAFETY: the port's list holds MaxControlType one-byte
                // flags from SupportedTypeList on, exclusively ours for the
                // call.
                let flags = unsafe {
                    core::slice::from_raw_parts_mut(
                        SCSI_SUPPORTED_CONTROL_TYPE_LIST::supported_type_list(list.as_ptr()),
                        max as usize,
                    )
                };
                Passive::Query(SupportedControlTypes::new(flags))
            }
            adapter_control::SET_BOOT_CONFIG => Passive::SetBootConfig,
            adapter_control::SET_RUNNING_CONFIG => Passive::SetRunningConfig,
            // Stop and restart run at DIRQL, and the IRQL of a type this
            // layer does not know is unknown: no registry capability.
            adapter_control::STOP_ADAPTER => {
                return T::adapter_control(adapter, AdapterControl::Stop).to_raw();
            }
            adapter_control::RESTART_ADAPTER => {
                return T::adapter_control(adapter, AdapterControl::Restart).to_raw();
            }
            other => return T::adapter_control(adapter, AdapterControl::Other(other)).to_raw(),
        };
        // SAFETY: the query, boot-config and running-config types run at
        // PASSIVE_LEVEL (the caller's contract), and `registry` is dropped
        // before this call returns.
        let mut registry = unsafe { Registry::new(extension) };
        let control = match passive {
            Passive::Query(supported) => AdapterControl::QuerySupportedControlTypes {
                supported,
                registry: &mut registry,
            },
            Passive::SetBootConfig => AdapterControl::SetBootConfig {
                registry: &mut registry,
            },
            Passive::SetRunningConfig => AdapterControl::SetRunningConfig {
                registry: &mut registry,
            },
        };
        let status = T::adapter_control(adapter, control).to_raw();
        // Frees a registry buffer a leaked guard left, before the port sees
        // the callback return.
        drop(registry);
        status
    }

    /// `HwFreeAdapterResources`: drops the adapter.
    ///
    /// # Safety
    ///
    /// Storport's contract: the adapter's extension, once, with no other
    /// callback of the adapter running or to come.
    unsafe extern "win64" fn free_adapter_resources(device_extension: PVOID) {
        let Some(extension) = NonNull::new(device_extension) else {
            return;
        };
        let slot = Self::slot(extension);
        // SAFETY: the first word is inside the extension, and no other
        // callback of the adapter runs now.
        let state = unsafe { state_of(extension).read_unaligned() };
        if state.is_null() {
            return;
        }
        // SAFETY: as above.
        unsafe { state_of(extension).write_unaligned(EMPTY) };
        // SAFETY: the state was live, so the adapter is initialised; EMPTY
        // now keeps it from being dropped or used again.
        unsafe { adapter_of(slot).drop_in_place() };
    }
}

/// The adapter-control types that run at `PASSIVE_LEVEL`, which get the
/// registry capability.
enum Passive<'a> {
    /// `ScsiQuerySupportedControlTypes`, with the port's list.
    Query(SupportedControlTypes<'a>),
    /// `ScsiSetBootConfig`.
    SetBootConfig,
    /// `ScsiSetRunningConfig`.
    SetRunningConfig,
}

/// The configuration every virtual miniport of this layer declares:
/// `VirtualDevice` (SDV `StorPortVirtualDevice2`) and system-mapped data
/// buffers, which [`Srb`]'s slices rely on.
const fn force_virtual_config(config: &mut PORT_CONFIGURATION_INFORMATION) {
    config.VirtualDevice = 1;
    config.MapBuffers = STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE;
}

#[cfg(test)]
mod tests {
    use core::ffi::c_void;
    use core::ptr::NonNull;
    use std::vec;

    use super::MiniportVTable;
    use crate::{
        AdapterControl, ControlStatus, FindAdapterContext, FindAdapterError, Miniport, SrbStatus,
        StartIoRequest,
    };

    #[repr(align(64))]
    struct Wide(#[expect(dead_code, reason = "only its alignment matters")] u8);

    struct Driver;
    impl Miniport for Driver {
        type Adapter = Wide;
        fn find_adapter(_: &mut FindAdapterContext<'_>) -> Result<Wide, FindAdapterError> {
            Err(FindAdapterError::NotFound)
        }
        fn start_io(_: &Wide, request: StartIoRequest<'_>) {
            request.complete(SrbStatus::NO_DEVICE);
        }
        fn reset_bus(_: &Wide, _: u8) -> bool {
            true
        }

        fn adapter_control(_: &Wide, control: AdapterControl<'_>) -> ControlStatus {
            control.answer_without_state()
        }
    }

    #[test]
    fn an_over_aligned_adapter_fits_an_extension_of_any_alignment() {
        let size = MiniportVTable::<Driver>::DEVICE_EXTENSION_SIZE as usize;
        assert_eq!(size, 8 + 128 + 63);
        let mut backing = vec![0_u8; size + 128];
        for start in 0..64 {
            let extension = NonNull::new(backing[start..].as_mut_ptr().cast::<c_void>()).unwrap();
            let slot = MiniportVTable::<Driver>::slot(extension);
            assert_eq!(slot.as_ptr() as usize % 64, 0);
            assert!(slot.as_ptr() as usize >= extension.as_ptr() as usize + 8);
            let end = slot.as_ptr() as usize + 128;
            assert!(end <= extension.as_ptr() as usize + size);
        }
    }

    #[test]
    fn init_data_registers_a_virtual_miniport() {
        let data = MiniportVTable::<Driver>::init_data();
        assert_eq!(data.HwInitializationDataSize, 0xD0);
        assert_eq!(data.AdapterInterfaceType, 0);
        assert_eq!(data.FeatureSupport & 1, 1);
        assert_eq!(data.MapBuffers, 3);
        assert!(data.HwFindAdapter.is_some() && data.HwInitialize.is_some());
        assert!(data.HwStartIo.is_some() && data.HwResetBus.is_some());
        assert!(data.HwFreeAdapterResources.is_some());
        assert!(
            data.HwAdapterControl.is_some(),
            "Storport requires HwAdapterControl of every miniport"
        );
    }
}
