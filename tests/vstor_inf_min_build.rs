//! `storemu inf-lint --image` (rule `MinimumBuild`): the shipped INF's models decoration covers
//! what the real `vstor.sys` imports, and an INF decorated for an older build
//! is flagged for exactly those imports.

mod common;

use storport_emu::inf::Inf;
use storport_emu::inf::lint::{LintRule, lint_file_with_image, lint_with_imports};
use storport_emu::inf::min_build::image_imports;

const VSTOR_INF: &str = include_str!("../inf/vstor.inf");

#[test]
fn vstor_inf_covers_the_imports_of_vstor_sys() {
    let imports = image_imports(&common::readable_sys_path()).unwrap_or_else(|e| panic!("{e}"));
    // The routines that set the minimum build (Windows 10, version 2004).
    for routine in ["ExAllocatePool2", "MmGetPhysicalMemoryRangesEx2"] {
        assert!(imports.iter().any(|i| i == routine), "{imports:?}");
    }
    let inf = Inf::parse(VSTOR_INF).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lint_with_imports(&inf, &imports), []);

    let older = VSTOR_INF.replace("NTamd64.10.0...19041", "NTamd64.10.0...16299");
    let inf = Inf::parse(&older).unwrap_or_else(|e| panic!("{e}"));
    let found = lint_with_imports(&inf, &imports);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].rule, LintRule::MinimumBuild);
    assert!(
        found[0].message.ends_with(
            "but ExAllocatePool2 (imported by the image) needs build 19041 and \
             MmGetPhysicalMemoryRangesEx2 (imported by the image) needs build 19041; \
             expected `vstor, NTamd64.10.0...19041` (and a [vstor.NTamd64.10.0...19041] section)."
        ),
        "{}",
        found[0].message
    );
}

/// What `storemu inf-lint inf/vstor.inf --image vstor.sys` runs.
#[test]
fn inf_lint_with_the_image_passes_the_shipped_inf() {
    let found = lint_file_with_image(
        &common::root().join("inf").join("vstor.inf"),
        Some(&common::readable_sys_path()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found, []);
}
