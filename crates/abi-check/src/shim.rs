//! A case-insensitive view of a kit's headers: the WDK assumes a
//! case-insensitive file system (`#include <NtDef.h>` for `ntdef.h`), so the
//! headers `storport.h` reaches are copied into a temporary directory under
//! lower-case names (sub-directories kept), with every `#include` name
//! lower-cased to match.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The include directories of one kit version.
pub struct Kit {
    /// `Include/<version>/km`.
    pub km: PathBuf,
    /// `km`, `km/crt`, `shared` and `um`, in search order.
    pub dirs: Vec<PathBuf>,
}

impl Kit {
    /// Finds the newest `Include/<version>` under `root` that has
    /// `km/storport.h` (or takes `root` itself when it has `km`).
    ///
    /// # Errors
    /// A sentence naming `root` when it holds no such kit.
    pub fn find(root: &Path) -> Result<Self, String> {
        let version_dir = if find_ci(&root.join("km"), "storport.h").is_some() {
            root.to_path_buf()
        } else {
            let include = find_ci(root, "include").ok_or_else(|| no_kit(root))?;
            let mut versions: Vec<PathBuf> = std::fs::read_dir(&include)
                .map_err(|e| {
                    format!(
                        "cannot list {} ({e}); nothing was checked.",
                        include.display()
                    )
                })?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| find_ci(&p.join("km"), "storport.h").is_some())
                .collect();
            versions.sort_by_key(|p| version_key(p));
            versions.pop().ok_or_else(|| no_kit(root))?
        };
        // `km/crt` holds the compiler headers the kernel headers include
        // (`excpt.h`, `vadefs.h`): the WDK ships them there, so no MSVC
        // install is needed.
        let km = find_ci(&version_dir, "km");
        let dirs = km
            .iter()
            .cloned()
            .chain(km.as_deref().and_then(|km| find_ci(km, "crt")))
            .chain(
                ["shared", "um"]
                    .iter()
                    .filter_map(|d| find_ci(&version_dir, d)),
            )
            .collect();
        Ok(Self {
            km: version_dir.join("km"),
            dirs,
        })
    }

    /// Adds the `shared` and `um` directories of a Windows SDK content root
    /// (the SDK's `NuGet` package keeps them apart from the WDK's): from
    /// `Include/<version>` with the kit's version, or `root` itself when it
    /// holds `um`.
    ///
    /// # Errors
    /// A sentence naming `root` when it holds neither.
    pub fn add_sdk(&mut self, root: &Path) -> Result<(), String> {
        let version = self
            .km
            .parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .unwrap_or("");
        let version_dir = if find_ci(root, "um").is_some() {
            Some(root.to_path_buf())
        } else {
            find_ci(root, "include").and_then(|include| find_ci(&include, version))
        };
        let version_dir = version_dir.ok_or_else(|| {
            format!(
                "{} holds neither um/ nor Include/{version}/: pass the Windows SDK content root of the kit's version (the `c` directory of the unpacked Microsoft.Windows.SDK.CPP package); nothing was checked.",
                root.display()
            )
        })?;
        self.dirs.extend(
            ["shared", "um"]
                .iter()
                .filter_map(|d| find_ci(&version_dir, d)),
        );
        Ok(())
    }
}

fn no_kit(root: &Path) -> String {
    format!(
        "{} holds no Include/<version>/km/storport.h: pass the WDK content root (WDKContentRoot, or the `c` directory of the unpacked NuGet package); nothing was checked.",
        root.display()
    )
}

fn version_key(p: &Path) -> Vec<u64> {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.split('.').map(|part| part.parse().unwrap_or(0)).collect())
        .unwrap_or_default()
}

/// The entry of `dir` whose name equals `name` ignoring ASCII case.
fn find_ci(dir: &Path, name: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .map(|e| e.path())
}

/// The shim: a header that includes storport.h, and the include directory.
pub struct Shim {
    /// The directory holding the lower-cased copies.
    pub include: PathBuf,
    /// The header bindgen parses (it includes storport.h).
    pub header: PathBuf,
}

impl Drop for Shim {
    fn drop(&mut self) {
        if let Some(parent) = self.include.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

/// Copies storport.h and every kit header it reaches (transitively) into a
/// temporary directory under lower-case names.
///
/// # Errors
/// A sentence naming the file that could not be read or written.
pub fn build(kit: &Kit, wrapper: &str) -> Result<Shim, String> {
    let root = std::env::temp_dir().join(format!("vstor-abi-check-{}", std::process::id()));
    let include = root.join("include");
    std::fs::create_dir_all(&include).map_err(|e| {
        format!(
            "cannot create {} ({e}); nothing was checked.",
            include.display()
        )
    })?;
    let shim = Shim {
        header: root.join("vstor-abi-check.h"),
        include,
    };
    std::fs::write(&shim.header, wrapper).map_err(|e| {
        format!(
            "cannot write {} ({e}); nothing was checked.",
            shim.header.display()
        )
    })?;
    let mut queue = vec!["storport.h".to_owned(), "ntddk.h".to_owned()];
    let mut seen: HashSet<String> = queue.iter().cloned().collect();
    while let Some(name) = queue.pop() {
        let Some(source) = resolve(kit, &name) else {
            continue;
        };
        let bytes = std::fs::read(&source).map_err(|e| {
            format!(
                "cannot read {} ({e}); nothing was checked.",
                source.display()
            )
        })?;
        let text = String::from_utf8_lossy(&bytes);
        let mut out = String::with_capacity(text.len());
        for line in text.lines() {
            if let Some((before, target, after)) = include_target(line) {
                let lower = target.to_ascii_lowercase().replace('\\', "/");
                if resolve(kit, &lower).is_some() {
                    if seen.insert(lower.clone()) {
                        queue.push(lower.clone());
                    }
                    out.push_str(before);
                    out.push_str(&lower);
                    out.push_str(after);
                    out.push('\n');
                    continue;
                }
            }
            out.push_str(line);
            out.push('\n');
        }
        let target = shim.include.join(&name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                format!(
                    "cannot create {} ({e}); nothing was checked.",
                    parent.display()
                )
            })?;
        }
        std::fs::write(&target, out).map_err(|e| {
            format!(
                "cannot write {} ({e}); nothing was checked.",
                target.display()
            )
        })?;
    }
    Ok(shim)
}

/// The kit header at relative path `name` (lower case, `/`-separated),
/// matching each component ignoring ASCII case, in the kit's search order.
/// Paths that climb (`..`) or are absolute are not resolved.
fn resolve(kit: &Kit, name: &str) -> Option<PathBuf> {
    if name.is_empty()
        || name.starts_with('/')
        || name.split('/').any(|c| c == ".." || c.is_empty())
    {
        return None;
    }
    kit.dirs.iter().find_map(|dir| {
        let mut path = dir.clone();
        for component in name.split('/') {
            path = find_ci(&path, component)?;
        }
        path.is_file().then_some(path)
    })
}

/// Splits `#include <name>` / `#include "name"` into (text before the name,
/// name, text after it).
fn include_target(line: &str) -> Option<(&str, &str, &str)> {
    let trimmed = line.trim_start();
    let rest = trimmed
        .strip_prefix('#')?
        .trim_start()
        .strip_prefix("include")?;
    let open = rest.find(['<', '"'])?;
    let close_char = if rest.as_bytes()[open] == b'<' {
        '>'
    } else {
        '"'
    };
    let name_start = line.len() - rest.len() + open + 1;
    let len = line[name_start..].find(close_char)?;
    Some((
        &line[..name_start],
        &line[name_start..name_start + len],
        &line[name_start + len..],
    ))
}
