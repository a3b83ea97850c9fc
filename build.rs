//! Build configuration of the driver package.
//!
//! For the Windows target the image is linked as a WDM kernel driver; on the
//! host nothing special happens (the library is unit-tested there, and the
//! binary only explains how to build the driver).
//!
//! Two paths reach the Windows target. On Linux (`tools/build-driver.sh`)
//! lld-link gets the arguments below. On a Windows host with the WDK and the
//! `wdk` feature, `wdk_build::configure_wdk_binary_build` first checks the
//! static C runtime, adds the WDK library folders and sets the
//! `driver_model__driver_type` cfg from `package.metadata.wdk`; its own link
//! arguments are for `cdylib` drivers only, so this `bin` image still gets
//! the same arguments, plus the map file the WDK flow packages. Every
//! argument goes out as `cargo::rustc-link-arg-bins`, the kind that fits a
//! `bin` target (a `cdylib` kind on a `bin` is what rust-lang/cargo#9562
//! warns about).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(all(windows, feature = "wdk"))]
    if let Err(error) = wdk_build::configure_wdk_binary_build() {
        // A build script reports through its exit status; the message says
        // which WDK setting is missing.
        eprintln!("vstor: wdk-build could not configure the driver build: {error:?}");
        std::process::exit(1);
    }
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "windows" {
        for arg in [
            "/DRIVER:WDM",
            "/SUBSYSTEM:NATIVE,10.00",
            "/ENTRY:DriverEntry",
            "/NODEFAULTLIB",
            "/RELEASE",
            "/OPT:REF,ICF",
            "/MERGE:.edata=.rdata",
            // From upstream's driver samples: a kernel-mode image, and no
            // side-by-side manifest (a driver has none). lld-link 22 accepts
            // both.
            "/KERNEL",
            "/MANIFEST:NO",
        ] {
            println!("cargo::rustc-link-arg-bins={arg}");
        }
        // Not passed: /INTEGRITYCHECK. It sets FORCE_INTEGRITY, which makes
        // the loader refuse the image unless code integrity verifies its
        // signature even where signature enforcement is relaxed for
        // development (an attached kernel debugger, `bcdedit /set
        // nointegritychecks`). x64 Windows already requires a signature for
        // every driver in normal operation, so the flag adds no protection
        // there and only stops the unsigned image both build paths produce
        // from being tried; `cargo make sign` signs a copy afterwards.
        if cfg!(feature = "wdk") {
            // As wdk-build does for cdylib drivers and upstream's samples:
            // a map file with exports; no LNK4257 ("object file was not
            // compiled for kernel mode"), which every rustc object raises
            // under link.exe with /KERNEL; no LNK4216 ("exported entry
            // point DriverEntry").
            for arg in ["/MAP", "/MAPINFO:EXPORTS", "/IGNORE:4257", "/IGNORE:4216"] {
                println!("cargo::rustc-link-arg-bins={arg}");
            }
        }
    }
}
