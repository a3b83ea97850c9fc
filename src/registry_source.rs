//! The configuration's view of the registry: one Storport registry buffer,
//! grown on demand, reading the adapter scope (`Parameters\Device<N>`) or
//! the global one (`Parameters\Device`); and the write-back of
//! `StartCount` and `EffectiveConfig`.

use core::ffi::CStr;
use core::fmt;

use storport::debug_print;
use storport::registry::{AllocError, ReadError, Registry, RegistryBuffer, Scope};

use crate::config::{Config, Kind, Lookup, Origin, Source, names};

/// Registry buffer vstor opens first; reads that need more grow it.
const REGISTRY_BUFFER_BYTES: u32 = 64;
/// Largest registry buffer vstor grows to: a value needing more is
/// reported as unreadable.
const REGISTRY_BUFFER_MAX_BYTES: u32 = 4096;
/// Longest `EffectiveConfig` text, NUL excluded.
const EFFECTIVE_CONFIG_BYTES: usize = 384;

/// Why the registry is read, which decides what a failure means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Occasion {
    /// A start: every setting is read, `StartCount` and `EffectiveConfig`
    /// written.
    Start,
    /// `ScsiSetRunningConfig`: `ReadOnly` is read again.
    RunningConfig,
}

impl Occasion {
    /// What a setting read as missing from here on means, as a sentence.
    const fn without_registry(self) -> &'static str {
        match self {
            Self::Start => {
                "The registry is not read further at this start: the settings not read yet take \
                 their defaults, and StartCount and EffectiveConfig are not written."
            }
            Self::RunningConfig => "ReadOnly takes its default, 0, until it is read again.",
        }
    }
}

/// The configuration's view of the registry: one buffer, grown on demand.
pub struct RegistrySource<'r> {
    /// `None` when the port gave no buffer: every value then reads as
    /// missing, and the defaults apply.
    buffer: Option<RegistryBuffer<'r>>,
    occasion: Occasion,
}

impl<'r> RegistrySource<'r> {
    /// Opens a registry buffer on `registry` (defaults apply if the port
    /// gives none, and `DbgPrint` says so).
    pub fn open(registry: &'r mut Registry, occasion: Occasion) -> Self {
        let buffer = registry
            .open(REGISTRY_BUFFER_BYTES)
            .inspect_err(|error| {
                debug_print!("vstor: {error}. {}\n", occasion.without_registry());
            })
            .ok();
        Self { buffer, occasion }
    }

    /// Makes the buffer at least `needed` bytes long; `Err(Some)` when the
    /// port refuses (the buffer is gone then, and the caller says what that
    /// means), `Err(None)` when `needed` is beyond vstor's cap or there is no
    /// buffer.
    fn grow(&mut self, needed: u32) -> Result<(), Option<AllocError>> {
        if needed > REGISTRY_BUFFER_MAX_BYTES {
            return Err(None);
        }
        let buffer = self.buffer.take().ok_or(None)?;
        self.buffer = Some(buffer.grow(needed)?);
        Ok(())
    }

    /// Reads one value from one scope and hands it to `f`, or says why
    /// this read does not settle the lookup.
    fn attempt(
        &mut self,
        scope: Scope,
        name: &CStr,
        kind: Kind,
        f: &mut dyn FnMut(Lookup<'_>),
    ) -> Attempt {
        let Some(buffer) = self.buffer.as_mut() else {
            f(Lookup::Missing);
            return Attempt::Done;
        };
        let result = match kind {
            Kind::Dword => buffer.read_dword(scope, name).map(Lookup::Dword),
            Kind::String => buffer.read_string(scope, name).map(Lookup::String),
            Kind::MultiString => buffer
                .read_multi_string(scope, name)
                .map(|strings| Lookup::MultiString(strings.as_bytes())),
        };
        match result {
            Ok(lookup) => f(lookup),
            // Missing, or of another type: the API does not tell which.
            Err(ReadError::Failed) => return Attempt::NotHere,
            Err(ReadError::Malformed { .. }) => f(Lookup::Unreadable),
            Err(ReadError::BufferTooSmall { needed_bytes }) => {
                return Attempt::TooSmall(needed_bytes);
            }
        }
        Attempt::Done
    }

    /// Whether `name` exists in `scope` as a type other than `kind`.
    ///
    /// `StorPortRegistryRead` fails the same way for a missing value and for
    /// a value of another type, so a value that failed as `kind` is asked
    /// for as every other type: if one of those reads finds it, the value is
    /// there with the wrong type and must be reported, not taken as missing
    /// (and not silently passed over for the global value).
    fn exists_as_another_kind(&mut self, scope: Scope, name: &CStr, kind: Kind) -> bool {
        let Some(buffer) = self.buffer.as_mut() else {
            return false;
        };
        (kind != Kind::Dword && found(&buffer.read_dword(scope, name)))
            || (kind != Kind::String && found(&buffer.read_string(scope, name)))
            || (kind != Kind::MultiString && found(&buffer.read_multi_string(scope, name)))
            || found(&buffer.read_binary(scope, name))
            || found(&buffer.read_qword(scope, name))
    }

    /// The next `StartCount`: the adapter's stored count plus one; `None`
    /// without a registry buffer.
    pub fn next_start_count(&mut self) -> Option<u32> {
        let buffer = self.buffer.as_mut()?;
        Some(
            buffer
                .read_dword(Scope::Adapter, names::START_COUNT)
                .unwrap_or(0)
                .wrapping_add(1),
        )
    }

    /// Writes `StartCount` and `EffectiveConfig` in the adapter scope.
    pub fn write_back(&mut self, config: &Config, start_count: u32) {
        let mut text = Text::<EFFECTIVE_CONFIG_BYTES>::new();
        if config.write_effective(&mut text).is_err() {
            debug_print!(
                "vstor: the effective configuration is longer than {} bytes; EffectiveConfig is not written\n",
                storport::print::Dec(EFFECTIVE_CONFIG_BYTES as u64)
            );
        }
        // StartCount first: it fits any buffer, and growing the buffer for
        // EffectiveConfig may fail and leave no buffer at all.
        let Some(buffer) = self.buffer.as_mut() else {
            return;
        };
        if let Err(error) = buffer.write_dword(Scope::Adapter, names::START_COUNT, start_count) {
            debug_print!("vstor: StartCount: {error}; the adapter starts all the same.\n");
        }
        let needed = u32::try_from(text.as_bytes().len() + 1).unwrap_or(u32::MAX);
        if buffer.len_bytes() < needed
            && let Err(error) = self.grow(needed)
        {
            debug_print!(
                "vstor: no registry buffer large enough for EffectiveConfig; it is not written \
                 this start (StartCount is){}{}.\n",
                if error.is_some() { ": " } else { "" },
                Reason(error)
            );
            return;
        }
        let Some(buffer) = self.buffer.as_mut() else {
            return;
        };
        if text.is_complete()
            && let Err(error) =
                buffer.write_string(Scope::Adapter, names::EFFECTIVE_CONFIG, text.as_bytes())
        {
            debug_print!("vstor: EffectiveConfig: {error}; the adapter starts all the same.\n");
        }
    }
}

/// Why a buffer could not grow, if the port said: its error, or nothing.
struct Reason(Option<AllocError>);

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.map_or(Ok(()), |error| error.fmt(f))
    }
}

/// Whether a read found the value: anything but [`ReadError::Failed`]
/// (too small a buffer or an odd length still means it is there).
const fn found<T>(result: &Result<T, ReadError>) -> bool {
    !matches!(result, Err(ReadError::Failed))
}

/// How one scope answered a read.
enum Attempt {
    /// The lookup is settled; `f` ran.
    Done,
    /// The value could not be read in this scope.
    NotHere,
    /// The value needs a buffer of this many bytes.
    TooSmall(u32),
}

impl Source for RegistrySource<'_> {
    fn lookup(&mut self, origin: Origin, name: &CStr, kind: Kind, f: &mut dyn FnMut(Lookup<'_>)) {
        let scope = match origin {
            Origin::Adapter => Scope::Adapter,
            Origin::Global => Scope::Global,
        };
        let mut attempt = self.attempt(scope, name, kind, f);
        if let Attempt::TooSmall(needed_bytes) = attempt {
            attempt = match self.grow(needed_bytes) {
                Ok(()) => self.attempt(scope, name, kind, f),
                Err(Some(error)) => {
                    debug_print!("vstor: {error}. {}\n", self.occasion.without_registry());
                    // The buffer is gone: this value reads as missing, as
                    // every later one will.
                    f(Lookup::Missing);
                    return;
                }
                Err(None) => attempt,
            };
        }
        match attempt {
            Attempt::Done => {}
            Attempt::TooSmall(_) => f(Lookup::Unreadable),
            Attempt::NotHere if self.exists_as_another_kind(scope, name, kind) => {
                f(Lookup::Unreadable);
            }
            Attempt::NotHere => f(Lookup::Missing),
        }
    }
}

/// Text formatted into a fixed buffer (no allocation); remembers whether it
/// all fit.
pub struct Text<const N: usize> {
    bytes: [u8; N],
    used: usize,
    overflowed: bool,
}

impl<const N: usize> Text<N> {
    /// Empty text.
    pub const fn new() -> Self {
        Self {
            bytes: [0; N],
            used: 0,
            overflowed: false,
        }
    }

    /// The text written so far.
    pub fn as_bytes(&self) -> &[u8] {
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

    fn write_char(&mut self, c: char) -> fmt::Result {
        self.write_str(storport::print::ascii_str(c))
    }
}
