//! Build configuration of the driver package.
//!
//! For the Windows target the image is linked as a WDM kernel driver by
//! lld-link; on the host nothing special happens (the library is unit-tested
//! there, and the binary only explains how to build the driver).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
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
        ] {
            println!("cargo::rustc-link-arg-bins={arg}");
        }
    }
}
