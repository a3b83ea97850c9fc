//! `vstor-abi-check`: compares what storport-sys declares (struct sizes,
//! field offsets, constant values, import prototypes) with what bindgen
//! generates from a WDK's `km/storport.h` (with the kit's `shared` and `um`
//! headers), on any host with libclang.
//!
//! Usage: `vstor-abi-check [--wdk DIR] [--sdk DIR] [--allow-missing]`;
//! `--sdk` adds the `shared` and `um` headers of a separate Windows SDK (as
//! the SDK's `NuGet` package lays them out) to the kit's own. Without `--wdk`, the
//! `WDKContentRoot` environment variable names the kit. `DIR` is laid out as
//! the WDK and its `NuGet` package lay it out: `DIR/Include/<version>/km`.
//! Prints one line per difference, then a summary; exits 1 on any
//! difference, 2 when the check cannot run, 0 otherwise. An item storport-sys
//! declares that the headers do not is a difference too, unless
//! `--allow-missing` is given (for partial header sets, such as the tests').

mod declared;
mod generated;
mod shim;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use generated::Generated;

fn main() -> ExitCode {
    match run() {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(message) => {
            eprintln!("vstor-abi-check: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<usize, String> {
    let mut args = std::env::args().skip(1);
    let mut wdk: Option<PathBuf> = None;
    let mut sdk: Option<PathBuf> = None;
    let mut allow_missing = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--wdk" => {
                wdk = Some(
                    args.next()
                        .ok_or(
                            "--wdk needs a directory (the WDK content root); nothing was checked.",
                        )?
                        .into(),
                );
            }
            "--sdk" => {
                sdk = Some(
                    args.next()
                        .ok_or("--sdk needs a directory (the Windows SDK content root); nothing was checked.")?
                        .into(),
                );
            }
            "--allow-missing" => allow_missing = true,
            other => {
                return Err(format!(
                    "unknown argument `{other}`: the options are `--wdk DIR` (the WDK content root), `--sdk DIR` (the Windows SDK content root) and `--allow-missing`; nothing was checked."
                ));
            }
        }
    }
    let wdk = match wdk {
        Some(dir) => dir,
        None => std::env::var_os("WDKContentRoot").map(PathBuf::from).ok_or(
            "no WDK given: pass `--wdk DIR` or set WDKContentRoot to the WDK content root (the directory that holds Include/<version>/km); nothing was checked.",
        )?,
    };
    let mut kit = shim::Kit::find(&wdk)?;
    if let Some(sdk) = sdk {
        kit.add_sdk(&sdk)?;
    }
    println!(
        "checking storport-sys against {}",
        kit.km.join("storport.h").display()
    );
    let shimmed = shim::build(&kit, &wrapper())?;
    let mut builder = bindgen::Builder::default()
        .header(shimmed.header.to_string_lossy())
        .clang_args([
            "-target",
            "x86_64-pc-windows-msvc",
            "-fms-extensions",
            "-fms-compatibility",
            "-fms-compatibility-version=19.30",
        ])
        .clang_args([
            "-D_AMD64_",
            "-D_WIN64",
            "-DAMD64",
            "-D_KERNEL_MODE",
            // NTDDI_WIN10_VB (Windows 10 version 2004, build 19041): the
            // minimum the INF targets, and the first to declare
            // ExAllocatePool2 (wdm.h guards it with this version).
            "-DNTDDI_VERSION=0x0A000008",
            "-D_WIN32_WINNT=0x0A00",
            // The kit's headers draw dozens of warnings from clang
            // (Microsoft intrinsics, #pragma pack in included files) that
            // say nothing about the layout; errors still stop the check.
            "-w",
        ])
        .clang_arg(format!("-I{}", shimmed.include.display()))
        .clang_args(resource_dir().map(|dir| format!("-isystem{}", dir.display())))
        .layout_tests(true)
        .generate_comments(false)
        .allowlist_var("vstor_abi_.*")
        .allowlist_type("vstor_abi_.*")
        .prepend_enum_name(false);
    for s in declared::structs() {
        builder = builder.allowlist_type(format!("_?{}", s.name));
    }
    for (name, _) in declared::prototypes() {
        builder = builder.allowlist_function(*name);
    }
    let bindings = builder
        .generate()
        .map_err(|e| {
            format!(
                "bindgen could not parse {} ({e}); nothing was compared.",
                kit.km.join("storport.h").display()
            )
        })?
        .to_string();
    if let Some(path) = std::env::var_os("VSTOR_ABI_CHECK_DUMP") {
        let _ = std::fs::write(path, &bindings);
    }
    let generated = generated::parse(&bindings);
    Ok(compare(&generated, allow_missing))
}

/// Compares a storport-sys field that stands for C bit fields: every bit
/// field must live in one bindgen unit at the field's offset, of the field's
/// size, and cover the bits storport-sys's mask gives it. Returns the number
/// of items compared.
fn compare_bits(
    g: &Generated,
    c_name: &str,
    b: &declared::Bitfield,
    offset: usize,
    report: &mut impl FnMut(String, bool),
) -> usize {
    let mut compared = 0;
    let mut unit: Option<String> = None;
    for (name, mask) in &b.bits {
        let Some((member, bit, width)) = g.bits.get(&(c_name.to_owned(), (*name).to_owned()))
        else {
            report(
                format!(
                    "missing: bit field {}.{name} is not declared by the headers",
                    b.ty
                ),
                true,
            );
            continue;
        };
        compared += 1;
        let header_mask = ((1_u128 << width) - 1) << bit;
        if header_mask != u128::from(*mask) {
            report(
                format!(
                    "bits: {}.{name} is mask {header_mask:#x} in the headers, {mask:#x} of {} in storport-sys",
                    b.ty, b.field
                ),
                false,
            );
        }
        match &unit {
            Some(u) if u != member => report(
                format!(
                    "bits: {}.{name} is in a different storage unit from the bit fields before it in the headers, all in {} in storport-sys",
                    b.ty, b.field
                ),
                false,
            ),
            Some(_) => {}
            None => unit = Some(member.clone()),
        }
    }
    let Some(unit) = unit else {
        return compared;
    };
    let unit_offset = g.member_offset_by_name(c_name, &unit);
    let unit_size = g.member_type(c_name, &unit).and_then(|t| g.width(t));
    compared += 1;
    if unit_offset != Some(offset) || unit_size != Some(b.size) {
        report(
            format!(
                "offset: {}.{}'s bit fields are {} bytes at {} in the headers, {} bytes at {offset:#x} in storport-sys",
                b.ty,
                b.field,
                unit_size.map_or_else(|| "?".to_owned(), |n| n.to_string()),
                unit_offset.map_or_else(|| "?".to_owned(), |o| format!("{o:#x}")),
                b.size
            ),
            false,
        );
    }
    compared
}

/// clang's own headers (`intrin.h`, `stddef.h`, ...) for Debian's libclang,
/// which lives outside the LLVM tree and so does not find them itself:
/// the newest `/usr/lib/llvm-N/lib/clang/V/include`.
fn resource_dir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("llvm-"))
        })
        .filter_map(|e| std::fs::read_dir(e.path().join("lib/clang")).ok())
        .flat_map(|versions| {
            versions
                .filter_map(Result::ok)
                .map(|v| v.path().join("include"))
        })
        .filter(|p| p.join("stddef.h").is_file())
        .collect();
    found.sort();
    found.pop()
}

/// The header bindgen parses: ntddk.h (when the kit has it) and storport.h,
/// as a miniport includes them, then one enumerator per constant, so that
/// clang evaluates macros bindgen cannot (casts such as `((NTSTATUS)0xC0000017L)`)
/// and enumerators of the headers' enums.
fn wrapper() -> String {
    let mut text = String::from(
        "#if __has_include(<ntddk.h>)\n#include <ntddk.h>\n#endif\n#include <storport.h>\n",
    );
    for c in declared::consts() {
        let expr = c.c_name;
        // Macros (upper case) may be absent: guarded, so that an absent one is
        // reported rather than stopping the parse. Enumerators (mixed case, as
        // `Internal`) cannot be tested with #ifdef.
        let guarded = !expr.chars().any(|ch| ch.is_ascii_lowercase());
        if guarded {
            let _ = writeln!(text, "#ifdef {expr}");
        }
        let _ = writeln!(
            text,
            "enum vstor_abi_{name} {{ vstor_abi_{name} = (int)({expr}) }};",
            name = c.name
        );
        if guarded {
            text.push_str("#endif\n");
        }
    }
    text
}

#[expect(
    clippy::too_many_lines,
    reason = "one loop per kind of item, each short"
)]
fn compare(g: &Generated, allow_missing: bool) -> usize {
    let (mut differences, mut missing, mut compared) = (0_usize, 0_usize, 0_usize);
    let mut report = |line: String, is_missing: bool| {
        println!("{line}");
        if is_missing {
            missing += 1;
        } else {
            differences += 1;
        }
    };
    let bitfields = declared::bitfields();
    for s in declared::structs() {
        let c_name = g.resolve(s.name).to_owned();
        let Some(&size) = g.sizes.get(&c_name) else {
            report(
                format!("missing: struct {} is not declared by the headers", s.name),
                true,
            );
            continue;
        };
        compared += 1;
        if size != s.size {
            report(
                format!(
                    "size: {} is {} bytes in the headers, {} in storport-sys",
                    s.name, size, s.size
                ),
                false,
            );
        }
        for (field, offset) in &s.fields {
            match g.field_offset(&c_name, field) {
                Some(o) if o == *offset => compared += 1,
                Some(o) => {
                    compared += 1;
                    report(
                        format!(
                            "offset: {}.{} is at {o:#x} in the headers, {offset:#x} in storport-sys",
                            s.name, field
                        ),
                        false,
                    );
                }
                None => match bitfields
                    .iter()
                    .find(|b| b.ty == s.name && b.field == *field)
                {
                    Some(b) => compared += compare_bits(g, &c_name, b, *offset, &mut report),
                    None => report(
                        format!(
                            "missing: field {}.{} is not declared by the headers",
                            s.name, field
                        ),
                        true,
                    ),
                },
            }
        }
    }
    for c in declared::consts() {
        let key = format!("vstor_abi_{}", c.name);
        match g.consts.get(&key) {
            Some(v) => {
                compared += 1;
                // Compared at storport-sys's width: the enumerator is an int.
                let mask = if c.bits >= 127 {
                    -1
                } else {
                    (1_i128 << c.bits) - 1
                };
                if v & mask != c.value & mask {
                    report(
                        format!(
                            "constant: {} is {v:#x} in the headers, {:#x} in storport-sys",
                            c.c_name, c.value
                        ),
                        false,
                    );
                }
            }
            None => report(
                format!(
                    "missing: constant {} is not defined by the headers",
                    c.c_name
                ),
                true,
            ),
        }
    }
    for (name, params) in declared::prototypes() {
        let Some((c_params, _)) = g.functions.get(*name) else {
            report(
                format!("missing: routine {name} is not declared by the headers"),
                true,
            );
            continue;
        };
        compared += 1;
        if c_params.len() != params.len() {
            report(
                format!(
                    "prototype: {name} takes {} parameters in the headers, {} in storport-sys",
                    c_params.len(),
                    params.len()
                ),
                false,
            );
            continue;
        }
        for (i, (c, w)) in c_params.iter().zip(params.iter()).enumerate() {
            if let Some(cw) = g.width(c)
                && cw != *w
            {
                report(
                    format!(
                        "prototype: parameter {} of {name} is {cw} bytes wide in the headers, {w} in storport-sys",
                        i + 1
                    ),
                    false,
                );
            }
        }
    }
    println!(
        "{differences} differences, {missing} items not found in the headers, {compared} items compared"
    );
    if allow_missing {
        differences
    } else {
        differences + missing
    }
}
