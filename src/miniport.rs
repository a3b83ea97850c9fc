//! The vstor adapter: its state and its Storport callbacks, written on the
//! safe `storport` layer (no `unsafe` here).
//!
//! Find-adapter reads the configuration through the registry capability
//! (adapter scope `Parameters\Device<N>` first, then the global
//! `Parameters\Device`), and writes `StartCount` and `EffectiveConfig` back
//! in the adapter scope. The disks are not served yet: every request
//! completes with `SRB_STATUS_NO_DEVICE`.

use core::ffi::CStr;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use storport::registry::{ReadError, Registry, RegistryBuffer, Scope};
use storport::{
    AdapterControl, ControlStatus, ControlType, FindAdapterContext, FindAdapterError, Miniport,
    Srb, SrbStatus, debug_print,
};

use crate::config::{BadValue, Config, Kind, Lookup, Source, names};

/// Largest transfer vstor accepts in one SRB, in bytes.
const MAX_TRANSFER_BYTES: u32 = 1024 * 1024;
/// Page size the physical-break count is expressed in.
const PAGE_BYTES: u32 = 4096;
/// Registry buffer vstor opens first; reads that need more grow it.
const REGISTRY_BUFFER_BYTES: u32 = 64;
/// Largest registry buffer vstor grows to: a value needing more is
/// reported as unreadable.
const REGISTRY_BUFFER_MAX_BYTES: u32 = 4096;
/// Longest `EffectiveConfig` text, NUL excluded.
const EFFECTIVE_CONFIG_BYTES: usize = 384;

/// The vstor miniport (registered with [`storport::initialize`]).
#[derive(Debug)]
pub struct Vstor;

/// One vstor adapter's state, shared by concurrent start-io calls (the
/// run-time setting is an atomic; the rest does not change after
/// find-adapter).
#[derive(Debug)]
pub struct Adapter {
    /// The configuration read at start.
    config: Config,
    /// `ReadOnly`, re-read by `ScsiSetRunningConfig`.
    read_only: AtomicBool,
    /// `StartCount` as written back at this start.
    start_count: AtomicU32,
}

impl Adapter {
    /// The configuration read at start.
    #[must_use]
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// Whether the disks currently reject writes.
    #[must_use]
    pub fn read_only(&self) -> bool {
        self.read_only.load(Ordering::Relaxed)
    }

    /// How many times this adapter has started, as written to `StartCount`.
    #[must_use]
    pub fn start_count(&self) -> u32 {
        self.start_count.load(Ordering::Relaxed)
    }
}

impl Miniport for Vstor {
    type Adapter = Adapter;
    const HAS_ADAPTER_CONTROL: bool = true;

    fn find_adapter(context: &mut FindAdapterContext<'_>) -> Result<Adapter, FindAdapterError> {
        context
            .config()
            .set_maximum_transfer_length(MAX_TRANSFER_BYTES)
            .set_number_of_physical_breaks(MAX_TRANSFER_BYTES / PAGE_BYTES + 1)
            .set_alignment_mask(0)
            .set_number_of_buses(1)
            .set_maximum_number_of_targets(1)
            .set_maximum_number_of_logical_units(1)
            .set_scatter_gather(true)
            .set_caches_data(false);
        let mut source = RegistrySource::open(context.registry());
        let config = Config::load(&mut source, &mut report_bad_value).map_err(|error| {
            debug_print!("vstor: {error}; the adapter does not start\n");
            FindAdapterError::BadConfig
        })?;
        let start_count = source.next_start_count();
        source.write_back(&config, start_count);
        Ok(Adapter {
            read_only: AtomicBool::new(config.read_only),
            start_count: AtomicU32::new(start_count),
            config,
        })
    }

    fn start_io(_adapter: &Adapter, srb: Srb<'_>) {
        srb.complete(SrbStatus::NO_DEVICE);
    }

    fn reset_bus(_adapter: &Adapter, _path_id: u8) -> bool {
        true
    }

    fn adapter_control(adapter: &Adapter, control: AdapterControl<'_>) -> ControlStatus {
        match control {
            AdapterControl::QuerySupportedControlTypes { mut supported, .. } => {
                for control_type in [
                    ControlType::QuerySupportedControlTypes,
                    ControlType::Stop,
                    ControlType::Restart,
                    ControlType::SetRunningConfig,
                ] {
                    supported.set(control_type);
                }
                ControlStatus::Success
            }
            // The disks live in pool that outlives a stop: nothing to do.
            AdapterControl::Stop | AdapterControl::Restart => ControlStatus::Success,
            AdapterControl::SetRunningConfig { registry } => {
                let mut config = adapter.config;
                config.load_runtime(&mut RegistrySource::open(registry), &mut report_bad_value);
                adapter.read_only.store(config.read_only, Ordering::Relaxed);
                ControlStatus::Success
            }
            _ => ControlStatus::Unsuccessful,
        }
    }
}

fn report_bad_value(bad: &BadValue) {
    debug_print!("{bad}\n");
}

/// The configuration's view of the registry: one buffer, grown on demand,
/// looking in the adapter scope before the global one.
struct RegistrySource<'r> {
    /// `None` when the port gave no buffer: every value then reads as
    /// missing, and the defaults apply.
    buffer: Option<RegistryBuffer<'r>>,
}

impl<'r> RegistrySource<'r> {
    fn open(registry: &'r mut Registry) -> Self {
        let buffer = registry
            .open(REGISTRY_BUFFER_BYTES)
            .inspect_err(|error| debug_print!("vstor: {error}\n"))
            .ok();
        Self { buffer }
    }

    /// Makes the buffer at least `needed` bytes long; `false` when the port
    /// refuses (the buffer is gone then) or `needed` is beyond vstor's cap.
    fn grow(&mut self, needed: u32) -> bool {
        if needed > REGISTRY_BUFFER_MAX_BYTES {
            return false;
        }
        let Some(buffer) = self.buffer.take() else {
            return false;
        };
        match buffer.grow(needed) {
            Ok(grown) => {
                self.buffer = Some(grown);
                true
            }
            Err(error) => {
                debug_print!("vstor: {error}\n");
                false
            }
        }
    }

    /// Reads one value from one scope and hands it to `f`, or gives `f`
    /// back when this scope does not settle the lookup.
    fn attempt<R, F: FnOnce(Lookup<'_>) -> R>(
        &mut self,
        scope: Scope,
        name: &CStr,
        kind: Kind,
        f: F,
    ) -> Attempt<R, F> {
        let Some(buffer) = self.buffer.as_mut() else {
            return Attempt::Done(f(Lookup::Missing));
        };
        let result = match kind {
            Kind::Dword => buffer.read_dword(scope, name).map(Lookup::Dword),
            Kind::String => buffer.read_string(scope, name).map(Lookup::String),
            Kind::MultiString => buffer
                .read_multi_string(scope, name)
                .map(|strings| Lookup::MultiString(strings.as_bytes())),
        };
        match result {
            Ok(lookup) => Attempt::Done(f(lookup)),
            // Missing here, or of another type: the API does not tell which,
            // so the next scope is asked.
            Err(ReadError::Failed) => Attempt::NotHere(f),
            Err(ReadError::Malformed { .. }) => Attempt::Done(f(Lookup::Unreadable)),
            Err(ReadError::BufferTooSmall { needed_bytes }) => Attempt::TooSmall(needed_bytes, f),
        }
    }

    /// The next `StartCount`: the adapter's stored count plus one.
    fn next_start_count(&mut self) -> u32 {
        let Some(buffer) = self.buffer.as_mut() else {
            return 1;
        };
        buffer
            .read_dword(Scope::Adapter, names::START_COUNT)
            .unwrap_or(0)
            .wrapping_add(1)
    }

    /// Writes `StartCount` and `EffectiveConfig` in the adapter scope.
    fn write_back(&mut self, config: &Config, start_count: u32) {
        let mut text = Text::<EFFECTIVE_CONFIG_BYTES>::new();
        if config.write_effective(&mut text).is_err() {
            debug_print!(
                "vstor: the effective configuration is longer than {EFFECTIVE_CONFIG_BYTES} bytes; EffectiveConfig is not written\n"
            );
        }
        let needed = u32::try_from(text.as_bytes().len() + 1).unwrap_or(u32::MAX);
        if self
            .buffer
            .as_ref()
            .is_some_and(|buffer| buffer.len_bytes() < needed)
        {
            self.grow(needed);
        }
        let Some(buffer) = self.buffer.as_mut() else {
            return;
        };
        if let Err(error) = buffer.write_dword(Scope::Adapter, names::START_COUNT, start_count) {
            debug_print!("vstor: StartCount: {error}\n");
        }
        if text.is_complete()
            && let Err(error) =
                buffer.write_string(Scope::Adapter, names::EFFECTIVE_CONFIG, text.as_bytes())
        {
            debug_print!("vstor: EffectiveConfig: {error}\n");
        }
    }
}

/// How one scope answered a lookup.
enum Attempt<R, F> {
    /// The lookup is settled; `f` ran.
    Done(R),
    /// The value could not be read in this scope.
    NotHere(F),
    /// The value needs a buffer of this many bytes.
    TooSmall(u32, F),
}

impl Source for RegistrySource<'_> {
    fn lookup<R>(&mut self, name: &CStr, kind: Kind, f: impl FnOnce(Lookup<'_>) -> R) -> R {
        let mut f = f;
        for scope in [Scope::Adapter, Scope::Global] {
            f = match self.attempt(scope, name, kind, f) {
                Attempt::Done(result) => return result,
                Attempt::NotHere(f) => f,
                Attempt::TooSmall(needed_bytes, f) => {
                    if !self.grow(needed_bytes) {
                        return f(Lookup::Unreadable);
                    }
                    match self.attempt(scope, name, kind, f) {
                        Attempt::Done(result) => return result,
                        Attempt::NotHere(f) => f,
                        Attempt::TooSmall(_, f) => return f(Lookup::Unreadable),
                    }
                }
            };
        }
        f(Lookup::Missing)
    }
}

/// Text formatted into a fixed buffer; remembers whether it all fit.
struct Text<const N: usize> {
    bytes: [u8; N],
    used: usize,
    overflowed: bool,
}

impl<const N: usize> Text<N> {
    const fn new() -> Self {
        Self {
            bytes: [0; N],
            used: 0,
            overflowed: false,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.used).unwrap_or(&[])
    }

    const fn is_complete(&self) -> bool {
        !self.overflowed
    }
}

impl<const N: usize> fmt::Write for Text<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.used + text.len();
        let Some(room) = self.bytes.get_mut(self.used..end) else {
            self.overflowed = true;
            return Err(fmt::Error);
        };
        room.copy_from_slice(text.as_bytes());
        self.used = end;
        Ok(())
    }
}
