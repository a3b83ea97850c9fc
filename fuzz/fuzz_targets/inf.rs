//! The INF parser, installer and linter on arbitrary bytes: an error is
//! fine, a panic or a hang is not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storport_emu::inf::{Inf, InstallOptions, install, lint};
use storport_emu::registry::Registry;

fuzz_target!(|data: &[u8]| {
    let Ok(inf) = Inf::from_bytes(data) else {
        return;
    };
    let _ = lint::lint(&inf);
    let mut registry = Registry::new();
    let _ = install(&inf, &mut registry, &InstallOptions::default());
});
