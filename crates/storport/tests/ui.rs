//! Compile-time guarantees of the safe layer: each misuse in `tests/ui`
//! must fail to compile with the error recorded in its `.stderr`, and its
//! `_ok` twin — the same program used correctly — must compile and run.
//!
//! The `.stderr` files are rustc's messages, which change between
//! toolchains: regenerate them with `TRYBUILD=overwrite cargo test -p
//! storport --test ui` on the workspace's `rust-version` and review the diff.

#[test]
fn misuse_does_not_compile() {
    let cases = trybuild::TestCases::new();
    for name in MISUSES {
        cases.compile_fail(format!("tests/ui/{name}.rs"));
    }
}

#[test]
fn correct_use_compiles() {
    let cases = trybuild::TestCases::new();
    for name in MISUSES {
        cases.pass(format!("tests/ui/{name}_ok.rs"));
    }
}

const MISUSES: &[&str] = &[
    "double_open",
    "use_after_free",
    "escape_into_adapter",
    "escape_from_callback",
    "send_to_thread",
    "registry_in_start_io",
    "registry_in_stop",
    "token_construction",
    "str_name",
    "double_complete",
    "srb_escape",
    "pending_status",
    "missing_adapter_control",
    "pnp_view",
    "non_scsi_status",
    "view_double_complete",
    "shared_bytes_static",
    "lock_guard_send",
    "lock_guard_unused",
];
