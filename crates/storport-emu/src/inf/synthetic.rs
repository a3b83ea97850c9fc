//! Generated INF files for measuring how INF handling scales: a complete
//! Storport miniport INF whose service adds `lines` registry values.
//!
//! The values all go to one key and are spread over add-registry sections of
//! [`LINES_PER_SECTION`] lines, each named by its own `AddReg` directive, so
//! the parser meets many section headers, the installer many sections and
//! many values in one key, and the lint every line.

use std::fmt::Write as _;

/// Add-registry lines per generated section.
pub const LINES_PER_SECTION: usize = 100;

/// An INF that installs service `bench` with `lines` `REG_DWORD` values.
///
/// The values go under `Services\bench\Parameters\Bench`, named `Value0`,
/// `Value1`, ... The first line of each section takes its name from `[Strings]`.
#[must_use]
pub fn addreg_inf(lines: usize) -> String {
    let sections = lines.div_ceil(LINES_PER_SECTION);
    let mut text = String::with_capacity(lines * 56 + sections * 40 + 2048);
    text.push_str(
        "[Version]\n\
         Signature   = \"$WINDOWS NT$\"\n\
         Class       = SCSIAdapter\n\
         ClassGuid   = {4d36e97b-e325-11ce-bfc1-08002be10318}\n\
         Provider    = %Provider%\n\
         DriverVer   = 11/25/2026,0.1.0.0\n\
         CatalogFile = bench.cat\n\
         PnpLockdown = 1\n\
         \n\
         [DestinationDirs]\n\
         DefaultDestDir = 13\n\
         \n\
         [Manufacturer]\n\
         %Provider% = bench, NTamd64.10.0...19041\n\
         \n\
         [bench.NTamd64.10.0...19041]\n\
         %Provider% = bench_Install, root\\bench\n\
         \n\
         [bench_Install]\n\
         \n\
         [bench_Install.Services]\n\
         AddService = bench, 0x00000002, bench_Service\n\
         \n\
         [bench_Service]\n\
         ServiceType   = 1\n\
         StartType     = 3\n\
         ErrorControl  = 1\n\
         ServiceBinary = %13%\\bench.sys\n",
    );
    for section in 0..sections {
        let _ = writeln!(text, "AddReg        = bench_Values{section}");
    }
    for section in 0..sections {
        let _ = writeln!(text, "\n[bench_Values{section}]");
        let first = section * LINES_PER_SECTION;
        for value in first..lines.min(first + LINES_PER_SECTION) {
            if value == first {
                let _ = writeln!(
                    text,
                    "HKR, \"Parameters\\Bench\", \"%ValuePrefix%{value}\", 0x00010001, {value}"
                );
            } else {
                let _ = writeln!(
                    text,
                    "HKR, \"Parameters\\Bench\", \"Value{value}\", 0x00010001, {value}"
                );
            }
        }
    }
    text.push_str("\n[Strings]\nProvider = \"bench\"\nValuePrefix = \"Value\"\n");
    text
}
