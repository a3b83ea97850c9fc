//! Shared pieces of the fuzz targets: a byte reader that never fails (an
//! exhausted input reads as zeros), the real `vstor.sys` loaded into
//! storemu with a registry installed from `inf/vstor.inf`, and storemu's
//! emulated kernel for the host build of vstor's RAM disk, whose locks are
//! the safe layer's kernel spin locks.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use storport_emu::inf::{Inf, InstallOptions, install};
use storport_emu::machine::loader;
use storport_emu::port::cpu::GateCpu;
use storport_emu::port::host::Kernel;
use storport_emu::port::{Port, PortOptions, exports};
use storport_emu::registry::Registry;

/// Reads fields from the fuzzer's bytes; past the end everything is zero.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    /// A reader over `data`.
    #[must_use]
    pub const fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether nothing is left.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// One byte.
    pub fn u8(&mut self) -> u8 {
        let Some((&first, rest)) = self.data.split_first() else {
            return 0;
        };
        self.data = rest;
        first
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// Up to `len` bytes (fewer when the input ends).
    pub fn take(&mut self, len: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        head
    }
}

/// The repository root (the fuzz crate's parent).
#[must_use]
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), PathBuf::from)
}

/// The image under test: `VSTOR_SYS`, or `target/vstor/vstor.sys`.
#[must_use]
pub fn sys_path() -> PathBuf {
    std::env::var_os("VSTOR_SYS").map_or_else(
        || root().join("target").join("vstor").join("vstor.sys"),
        PathBuf::from,
    )
}

/// The bytes of the image; a missing image stops the fuzzer with the fix.
#[must_use]
pub fn image_bytes() -> Vec<u8> {
    let path = sys_path();
    std::fs::read(&path).unwrap_or_else(|error| {
        eprintln!(
            "cannot read the driver image {}: {error}. Build it first with `cargo make build` \
             (the fuzz tasks do).",
            path.display()
        );
        std::process::exit(2)
    })
}

/// A registry with vstor installed from `inf/vstor.inf`, and its service.
#[must_use]
pub fn inf_registry() -> (Registry, String) {
    let path = root().join("inf").join("vstor.inf");
    let bytes = std::fs::read(&path).expect("inf/vstor.inf is readable");
    let inf = Inf::from_bytes(&bytes).expect("inf/vstor.inf parses");
    let mut registry = Registry::new();
    let installed =
        install(&inf, &mut registry, &InstallOptions::default()).expect("inf/vstor.inf installs");
    (registry, installed.service)
}

/// A fresh copy of `image` as a port for `service`, not yet entered.
#[must_use]
pub fn port(image: &[u8], service: &str) -> Port {
    let loaded =
        loader::load_named("vstor.sys", image, &exports::resolve, false).expect("vstor.sys loads");
    let entry = loaded.entry_point().expect("vstor.sys has an entry point");
    Port::new(
        entry,
        Arc::new(GateCpu::default()),
        PortOptions {
            service: service.to_owned(),
            ..PortOptions::default()
        },
        Some(Box::new(loaded)),
    )
}

/// Runs `f` as start-io at PASSIVE_LEVEL on this thread, an emulated
/// processor of a port instance of its own, with `storport`'s imports bound
/// to storemu's kernel: the host build of the RAM disk takes its kernel spin
/// locks there. Panics (a crash for the fuzzer) when storemu found a spin
/// lock misused.
pub fn on_emulated_processor<R>(f: impl FnOnce() -> R) -> R {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    let kernel = KERNEL.get_or_init(Kernel::new);
    let result = kernel.run(0, f);
    let findings = kernel.findings();
    assert!(
        findings.is_empty(),
        "the host RAM disk's locks: {findings:#?}"
    );
    result
}
