//! One started adapter (vstor or the C peer), and the direct request path
//! the benchmarks time and count.
//!
//! The adapter goes through storemu's normal life cycle (the image loaded
//! by storemu's loader, installed from `vstor.inf` into the emulated
//! registry, `DriverEntry`, `HwFindAdapter`, `HwInitialize` through the
//! call gate). Requests then skip the port's request engine: the benchmark
//! thread calls `HwStartIo` itself on a prebuilt SRB (storemu's
//! [`DirectCpu`] path), and `StorPortNotification` is bound to
//! [`notification`], which only counts completions. What is measured is
//! therefore the driver's own path from `HwStartIo` entry to its
//! completion call, without the port's per-request work (building the SRB
//! and its buffers, the call gate's stack switch and watchdog, completion
//! bookkeeping), which costs microseconds and is not vstor's.
//!
//! The kernel's spin-lock routines vstor imports are bound to the plain
//! interlocked ones of [`locks`], not to storemu's: storemu's keep a lock
//! table and check every call the way Driver Verifier does (the tests run
//! them), which costs microseconds per call and would be timed as vstor's.
//! Each stand-in does what the kernel's routine does on a free lock at
//! `DISPATCH_LEVEL`: one interlocked instruction on the lock word, and no
//! IRQL change (the call already runs at `DISPATCH_LEVEL`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use storport_emu::inf::{Inf, InstallOptions, install};
use storport_emu::machine::loader;
use storport_emu::port::cpu::{Cpu, DirectCpu, GateCpu};
use storport_emu::port::srb::{self, DataDirection, SrbSlot};
use storport_emu::port::{Port, PortOptions, exports};
use storport_emu::registry::{RegValue, Registry};

/// `StorPortNotification` type `RequestComplete`.
const REQUEST_COMPLETE: u64 = 0;
/// `DISPATCH_LEVEL`, the IRQL Storport calls a virtual `HwStartIo` at.
const DISPATCH_LEVEL: u8 = 2;

/// Completions seen by [`notification`].
static COMPLETIONS: AtomicU64 = AtomicU64::new(0);
/// The SRB of the last completion.
static LAST_COMPLETED: AtomicUsize = AtomicUsize::new(0);

/// The benchmark's `StorPortNotification`: counts `RequestComplete` calls
/// and ignores every other notification. The first three arguments of the
/// variadic routine arrive in RCX, RDX and R8 in the Windows x64
/// convention, so a fixed three-argument routine reads them as they are.
extern "win64" fn notification(kind: u64, _extension: u64, srb: u64) -> u64 {
    if kind & 0xFFFF_FFFF == REQUEST_COMPLETE {
        // A load and a store, not a locked read-modify-write: only the
        // benchmark thread sends requests, and a locked instruction here
        // would add the stub's own cost to every SRB timed.
        COMPLETIONS.store(COMPLETIONS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        #[expect(
            clippy::cast_possible_truncation,
            reason = "x86_64 only: addresses are 64 bits wide"
        )]
        LAST_COMPLETED.store(srb as usize, Ordering::Relaxed);
    }
    0
}

/// The least a `HwStartIo` can do: complete the SRB at once, calling the
/// notification routine through a pointer as a driver calls its import.
extern "win64" fn completing_stub(extension: u64, srb: u64) -> u64 {
    let notify: extern "win64" fn(u64, u64, u64) -> u64 = notification;
    std::hint::black_box(notify)(REQUEST_COMPLETE, extension, srb);
    1
}

/// Resolves the image's imports to storemu's exports, except
/// `StorPortNotification` (see [`notification`]) and the spin-lock routines
/// (see [`locks`]).
fn resolve(module: &str, name: &str) -> Option<usize> {
    if name == "StorPortNotification" {
        Some(notification as *const () as usize)
    } else {
        locks::lookup(name).or_else(|| exports::resolve(module, name))
    }
}

/// The benchmark's kernel spin-lock routines: an interlocked acquire and
/// release of the lock word, as `ntoskrnl.exe`'s are on x64 (a
/// `KSPIN_LOCK` is held while non-zero; an `EX_SPIN_LOCK` counts shared
/// holders, with bit 31 for an exclusive one). They spin while the lock is
/// taken, return `DISPATCH_LEVEL` as the old IRQL and restore nothing:
/// every call of the benchmark runs at `DISPATCH_LEVEL` on one thread.
mod locks {
    use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

    use super::DISPATCH_LEVEL;

    /// The exclusive-holder bit of an `EX_SPIN_LOCK`.
    const EXCLUSIVE: i32 = i32::MIN;

    /// The stand-in for the `ntoskrnl.exe` routine `name`, if it is one.
    pub fn lookup(name: &str) -> Option<usize> {
        Some(match name {
            "KeAcquireSpinLockRaiseToDpc" => ke_acquire as *const () as usize,
            "KeReleaseSpinLock" => ke_release as *const () as usize,
            "ExAcquireSpinLockShared" => ex_acquire_shared as *const () as usize,
            "ExReleaseSpinLockShared" => ex_release_shared as *const () as usize,
            "ExAcquireSpinLockExclusive" => ex_acquire_exclusive as *const () as usize,
            "ExReleaseSpinLockExclusive" => ex_release_exclusive as *const () as usize,
            _ => return None,
        })
    }

    // Each routine below is `unsafe`: its contract is the kernel routine's
    // of the same name. vstor calls it with the address of a lock it owns
    // (an aligned, live word that only these routines change while vstor
    // runs), which is what each `AtomicU64::from_ptr` / `AtomicI32::from_ptr`
    // needs.

    /// # Safety
    ///
    /// `lock` is a live, aligned `KSPIN_LOCK` (`KeAcquireSpinLockRaiseToDpc`).
    unsafe extern "win64" fn ke_acquire(lock: *mut u64) -> u64 {
        // SAFETY: the caller passes a live, aligned KSPIN_LOCK.
        let word = unsafe { AtomicU64::from_ptr(lock) };
        while word.swap(1, Ordering::Acquire) != 0 {
            std::hint::spin_loop();
        }
        u64::from(DISPATCH_LEVEL)
    }

    /// # Safety
    ///
    /// `lock` is a live, aligned `KSPIN_LOCK` this thread holds
    /// (`KeReleaseSpinLock`).
    unsafe extern "win64" fn ke_release(lock: *mut u64, _new_irql: u64) {
        // SAFETY: the caller passes a live, aligned KSPIN_LOCK.
        let word = unsafe { AtomicU64::from_ptr(lock) };
        word.store(0, Ordering::Release);
    }

    /// # Safety
    ///
    /// `lock` is a live, aligned `EX_SPIN_LOCK` (`ExAcquireSpinLockShared`).
    unsafe extern "win64" fn ex_acquire_shared(lock: *mut i32) -> u64 {
        // SAFETY: the caller passes a live, aligned EX_SPIN_LOCK.
        let word = unsafe { AtomicI32::from_ptr(lock) };
        let mut seen = word.load(Ordering::Relaxed);
        loop {
            if seen & EXCLUSIVE == 0 {
                match word.compare_exchange_weak(
                    seen,
                    seen + 1,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return u64::from(DISPATCH_LEVEL),
                    Err(now) => seen = now,
                }
            } else {
                std::hint::spin_loop();
                seen = word.load(Ordering::Relaxed);
            }
        }
    }

    /// # Safety
    ///
    /// `lock` is a live, aligned `EX_SPIN_LOCK` this thread holds shared
    /// (`ExReleaseSpinLockShared`).
    unsafe extern "win64" fn ex_release_shared(lock: *mut i32, _old_irql: u64) {
        // SAFETY: the caller passes a live, aligned EX_SPIN_LOCK.
        let word = unsafe { AtomicI32::from_ptr(lock) };
        word.fetch_sub(1, Ordering::Release);
    }

    /// # Safety
    ///
    /// `lock` is a live, aligned `EX_SPIN_LOCK` (`ExAcquireSpinLockExclusive`).
    unsafe extern "win64" fn ex_acquire_exclusive(lock: *mut i32) -> u64 {
        // SAFETY: the caller passes a live, aligned EX_SPIN_LOCK.
        let word = unsafe { AtomicI32::from_ptr(lock) };
        while word
            .compare_exchange_weak(0, EXCLUSIVE, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        u64::from(DISPATCH_LEVEL)
    }

    /// # Safety
    ///
    /// `lock` is a live, aligned `EX_SPIN_LOCK` this thread holds
    /// exclusively (`ExReleaseSpinLockExclusive`).
    unsafe extern "win64" fn ex_release_exclusive(lock: *mut i32, _old_irql: u64) {
        // SAFETY: the caller passes a live, aligned EX_SPIN_LOCK.
        let word = unsafe { AtomicI32::from_ptr(lock) };
        word.store(0, Ordering::Release);
    }
}

/// Where the image lies in memory.
#[derive(Clone, Copy, Debug)]
pub struct ImageRange {
    /// Load address.
    pub base: usize,
    /// Bytes mapped.
    pub size: usize,
}

/// A started adapter of vstor.sys or the C peer.
pub struct Bench {
    port: Port,
    /// Where the image is mapped.
    pub image: ImageRange,
    start_io: usize,
    extension: u64,
    /// How long `Port::start` took.
    pub start_time: Duration,
}

impl Bench {
    /// Loads `sys`, installs `inf` into a fresh registry with one disk of
    /// `disk_mib` MiB and starts the adapter.
    ///
    /// # Errors
    ///
    /// A sentence naming what failed.
    pub fn start(sys: &Path, inf: &Path, disk_mib: u32) -> Result<Self, String> {
        let bytes = std::fs::read(sys).map_err(|error| {
            format!(
                "cannot read the driver image {}: {error}; build it with `bash tools/build-driver.sh`.",
                sys.display()
            )
        })?;
        let inf_bytes = std::fs::read(inf)
            .map_err(|error| format!("cannot read the INF {}: {error}.", inf.display()))?;
        let inf = Inf::from_bytes(&inf_bytes)
            .map_err(|error| format!("the INF does not parse: {error}."))?;
        let mut registry = Registry::new();
        let installed = install(&inf, &mut registry, &InstallOptions::default())
            .map_err(|error| format!("the INF does not install: {error}."))?;
        let key = format!("Services\\{}\\Parameters\\Device", installed.service);
        registry.set_value(&key, "DiskCount", RegValue::dword(1));
        registry.set_value(&key, "DiskSizeMiB", RegValue::dword(disk_mib));
        let name = sys
            .file_name()
            .map_or_else(|| "driver.sys".into(), |name| name.to_string_lossy());
        let loaded = loader::load_named(&name, &bytes, &resolve, false)
            .map_err(|error| format!("{} does not load: {error}.", sys.display()))?;
        let image = ImageRange {
            base: loaded.base(),
            size: loaded.size(),
        };
        let entry = loaded
            .entry_point()
            .ok_or_else(|| format!("{} has no entry point.", sys.display()))?;
        let port = Port::new(
            entry,
            Arc::new(GateCpu::default()),
            PortOptions {
                service: installed.service,
                ..PortOptions::default()
            },
            Some(Box::new(loaded)),
        );
        port.set_registry(registry);
        port.driver_entry()
            .map_err(|error| format!("DriverEntry failed: {error}"))?;
        let begun = Instant::now();
        port.start().map_err(|error| {
            format!(
                "the adapter with a {disk_mib} MiB disk does not start: {error} (debug output: {:?})",
                port.dbgprint()
            )
        })?;
        let start_time = begun.elapsed();
        let init = port
            .init_data()
            .ok_or("the driver did not register with StorPortInitialize.")?;
        let start_io = init
            .HwStartIo
            .map(|f| f as *const () as usize)
            .ok_or("the driver registered no HwStartIo.")?;
        let extension = port.shared().device_extension.load(Ordering::Acquire) as u64;
        Ok(Self {
            port,
            image,
            start_io,
            extension,
            start_time,
        })
    }

    /// Stops, removes and unloads the adapter; the findings storemu made
    /// over the whole life cycle, as sentences.
    pub fn finish(self) -> Vec<String> {
        let _ = self.port.stop();
        let _ = self.port.remove();
        self.port.unload();
        self.port
            .findings()
            .into_iter()
            .map(|finding| finding.message)
            .collect()
    }

    /// Calls `HwStartIo` on `request`'s SRB once, after resetting the
    /// fields the driver writes.
    ///
    /// # Panics
    ///
    /// When the driver does not complete the SRB inside the call.
    #[inline]
    pub fn start_io(&self, request: &mut Request) {
        self.call_start_io(self.start_io, request);
    }

    /// As [`Bench::start_io`], but calls [`completing_stub`] instead of
    /// vstor's `HwStartIo`: the cost of the measurement path itself (the
    /// call, the field resets, the completion through the notification
    /// routine), which every SRB time includes.
    ///
    /// # Panics
    ///
    /// As [`Bench::start_io`].
    #[inline]
    pub fn start_stub(&self, request: &mut Request) {
        self.call_start_io(completing_stub as *const () as usize, request);
    }

    #[inline]
    fn call_start_io(&self, routine: usize, request: &mut Request) {
        let slot = &mut request.slot;
        slot.srb.SrbStatus = 0;
        slot.srb.ScsiStatus = 0;
        slot.srb.DataTransferLength = request.data_len;
        let srb_address = std::ptr::from_mut(&mut slot.srb) as usize;
        let before = COMPLETIONS.load(Ordering::Relaxed);
        // SAFETY: `routine` is the HwStartIo routine vstor registered with
        // StorPortInitialize or `completing_stub` (both take two integer
        // arguments: the device extension and the SRB); the extension is the
        // one storemu allocated for this started adapter, and the SRB with
        // its data and sense buffers lives in `request`, borrowed mutably for
        // the whole call. Both complete synchronously, so nothing refers to
        // the SRB after the call.
        let result = unsafe {
            DirectCpu.call(
                routine,
                &[self.extension, srb_address as u64],
                DISPATCH_LEVEL,
            )
        };
        assert!(result.is_ok(), "HwStartIo faulted");
        assert!(
            COMPLETIONS.load(Ordering::Relaxed) == before + 1
                && LAST_COMPLETED.load(Ordering::Relaxed) == srb_address,
            "HwStartIo returned without completing the SRB"
        );
    }
}

/// One SRB, reused for every call.
pub struct Request {
    slot: Box<SrbSlot>,
    data_len: u32,
}

impl Request {
    /// An `SRB_FUNCTION_EXECUTE_SCSI` request to LUN 0 with `cdb` and
    /// `direction`.
    #[must_use]
    pub fn new(cdb: &[u8], direction: &DataDirection) -> Self {
        let slot = srb::build(
            (0, 0, 0),
            storport_sys::srb_function::EXECUTE_SCSI,
            cdb,
            direction,
            0,
            10,
        );
        let data_len = slot.srb.DataTransferLength;
        Self { slot, data_len }
    }

    /// The SRB status and SCSI status of the last completion.
    #[must_use]
    pub fn status(&self) -> (u8, u8) {
        (self.slot.srb.SrbStatus, self.slot.srb.ScsiStatus)
    }
}
