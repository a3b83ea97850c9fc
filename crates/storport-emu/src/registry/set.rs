//! The `--set [SUBKEY\]NAME=TYPE:VALUE` option: parsing and applying.
//!
//! `SUBKEY` is relative to `Services\<service>\Parameters` and defaults to
//! `Device`; a spec that starts with `\` (`\BusType=dword:14`) addresses
//! `Parameters` itself. `TYPE` is one of:
//!
//! - `dword`: a decimal number or a `0x`-prefixed hex number up to 4294967295;
//! - `qword`: the same up to 18446744073709551615;
//! - `sz`: the rest of the spec, verbatim (it may contain `=`, `:` or `;`);
//! - `multi_sz`: strings separated by `;`; an empty VALUE is the empty list,
//!   an empty string inside the list is an error (`REG_MULTI_SZ` cannot hold
//!   one: it would end the list);
//! - `binary`: hex digit pairs, optionally separated by spaces or colons
//!   (`0a1b2c`, `0a 1b 2c`, `0a:1b:2c`); an empty VALUE is zero bytes.

use std::fmt;

use super::tree::Registry;
use super::value::RegValue;

/// The expected form, for error messages.
const FORM: &str =
    "expected [SUBKEY\\]NAME=TYPE:VALUE with TYPE one of dword, qword, sz, multi_sz, binary";

/// A parsed `--set` option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetSpec {
    /// The key below `Parameters` (`Device` by default, empty for `Parameters`).
    pub subkey: String,
    /// The value name.
    pub name: String,
    /// The value to store.
    pub value: RegValue,
}

/// What is wrong with a `--set` option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetProblem {
    /// No `=` between the name and `TYPE:VALUE`.
    MissingEquals,
    /// The value name is empty.
    EmptyName,
    /// The subkey has an empty component (`A\\B`).
    EmptySubkeyComponent,
    /// No `:` between the type and the value.
    MissingColon,
    /// The type is not one of the five.
    UnknownType(String),
    /// The value does not parse as the type.
    BadValue {
        /// The type given.
        reg_type: &'static str,
        /// The offending text.
        text: String,
        /// What the type accepts.
        expected: &'static str,
    },
}

/// A `--set` option that cannot be used, with the option's text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct SetError {
    /// The option as given.
    pub spec: String,
    /// What is wrong with it.
    pub problem: SetProblem,
}

impl fmt::Display for SetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`--set {}`: ", self.spec)?;
        match &self.problem {
            SetProblem::MissingEquals => write!(f, "there is no `=` after the value name; {FORM}."),
            SetProblem::EmptyName => write!(f, "the value name before `=` is empty; {FORM}."),
            SetProblem::EmptySubkeyComponent => {
                write!(
                    f,
                    "the subkey has an empty part between backslashes; {FORM}."
                )
            }
            SetProblem::MissingColon => {
                write!(f, "there is no `:` between the type and the value; {FORM}.")
            }
            SetProblem::UnknownType(t) => write!(f, "`{t}` is not a value type; {FORM}."),
            SetProblem::BadValue {
                reg_type,
                text,
                expected,
            } => write!(f, "`{text}` is not a {reg_type}; expected {expected}."),
        }
    }
}

const DWORD_FORM: &str = "a decimal or 0x-prefixed hex number up to 4294967295";
const QWORD_FORM: &str = "a decimal or 0x-prefixed hex number up to 18446744073709551615";
const BINARY_FORM: &str =
    "pairs of hex digits, optionally separated by spaces or colons, such as 0a1b2c or 0a:1b:2c";
const MULTI_SZ_FORM: &str = "non-empty strings separated by `;`";

/// Parses a decimal or `0x`-prefixed hex number.
pub fn parse_number(text: &str) -> Option<u64> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u64::from_str_radix(hex, 16).ok()
        }
        None if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => t.parse().ok(),
        _ => None,
    }
}

/// Parses hex digit pairs with optional space or colon separators.
fn parse_hex_bytes(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b' ' | b'\t' | b':'))
        .collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            if s.bytes().all(|b| b.is_ascii_hexdigit()) {
                u8::from_str_radix(s, 16).ok()
            } else {
                None
            }
        })
        .collect()
}

/// Parses `[SUBKEY\]NAME=TYPE:VALUE`.
///
/// # Errors
///
/// [`SetError`] naming the bad part and the expected form.
pub fn parse_set(spec: &str) -> Result<SetSpec, SetError> {
    let fail = |problem| SetError {
        spec: spec.to_owned(),
        problem,
    };
    let (path, typed) = spec
        .split_once('=')
        .ok_or_else(|| fail(SetProblem::MissingEquals))?;
    let (subkey, name) = match path.rsplit_once('\\') {
        Some((sub, name)) => (sub.strip_prefix('\\').unwrap_or(sub), name),
        None => ("Device", path),
    };
    if name.is_empty() {
        return Err(fail(SetProblem::EmptyName));
    }
    if !subkey.is_empty() && subkey.split('\\').any(str::is_empty) {
        return Err(fail(SetProblem::EmptySubkeyComponent));
    }
    let (type_name, text) = typed
        .split_once(':')
        .ok_or_else(|| fail(SetProblem::MissingColon))?;
    let bad = |reg_type, expected| {
        fail(SetProblem::BadValue {
            reg_type,
            text: text.to_owned(),
            expected,
        })
    };
    let value = match type_name.to_ascii_lowercase().as_str() {
        "dword" => parse_number(text)
            .and_then(|n| u32::try_from(n).ok())
            .map(RegValue::dword)
            .ok_or_else(|| bad("dword", DWORD_FORM))?,
        "qword" => parse_number(text)
            .map(RegValue::qword)
            .ok_or_else(|| bad("qword", QWORD_FORM))?,
        "sz" => RegValue::sz(text),
        "multi_sz" => {
            let list: Vec<&str> = if text.is_empty() {
                Vec::new()
            } else {
                text.split(';').collect()
            };
            if list.iter().any(|s| s.is_empty()) {
                return Err(bad("multi_sz", MULTI_SZ_FORM));
            }
            RegValue::multi_sz(&list)
        }
        "binary" => parse_hex_bytes(text)
            .map(|b| RegValue::binary(&b))
            .ok_or_else(|| bad("binary", BINARY_FORM))?,
        _ => return Err(fail(SetProblem::UnknownType(type_name.to_owned()))),
    };
    Ok(SetSpec {
        subkey: subkey.to_owned(),
        name: name.to_owned(),
        value,
    })
}

impl SetSpec {
    /// The key the value goes to for `service`.
    #[must_use]
    pub fn key_path(&self, service: &str) -> String {
        if self.subkey.is_empty() {
            format!("Services\\{service}\\Parameters")
        } else {
            format!("Services\\{service}\\Parameters\\{}", self.subkey)
        }
    }
}

/// Applies a parsed `--set` to `service`'s keys, creating the key if needed.
pub fn apply(spec: &SetSpec, registry: &mut Registry, service: &str) {
    registry.set_value(&spec.key_path(service), &spec.name, spec.value.clone());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegType;

    fn ok(spec: &str) -> SetSpec {
        parse_set(spec).unwrap()
    }

    fn err(spec: &str) -> String {
        parse_set(spec).unwrap_err().to_string()
    }

    #[test]
    fn default_subkey_is_device() {
        let s = ok("DiskCount=dword:2");
        assert_eq!(
            (s.subkey.as_str(), s.name.as_str()),
            ("Device", "DiskCount")
        );
        assert_eq!(s.value, RegValue::dword(2));
        assert_eq!(s.key_path("vstor"), "Services\\vstor\\Parameters\\Device");
    }

    #[test]
    fn explicit_subkeys() {
        let s = ok("Device1\\DiskSizeMb=dword:0x40");
        assert_eq!(s.subkey, "Device1");
        assert_eq!(s.value, RegValue::dword(64));
        let s = ok("A\\B\\C=sz:x");
        assert_eq!((s.subkey.as_str(), s.name.as_str()), ("A\\B", "C"));
        let s = ok("\\BusType=dword:14");
        assert_eq!(s.subkey, "");
        assert_eq!(s.key_path("vstor"), "Services\\vstor\\Parameters");
    }

    #[test]
    fn every_type_parses() {
        assert_eq!(
            ok("Q=qword:18446744073709551615").value,
            RegValue::qword(u64::MAX)
        );
        assert_eq!(ok("Q=QWORD:0x10").value, RegValue::qword(16));
        assert_eq!(ok("S=sz:a=b:c;d").value, RegValue::sz("a=b:c;d"));
        assert_eq!(ok("S=sz:").value, RegValue::sz(""));
        assert_eq!(ok("M=multi_sz:a;b").value, RegValue::multi_sz(&["a", "b"]));
        assert_eq!(ok("M=multi_sz:").value, RegValue::multi_sz::<&str>(&[]));
        assert_eq!(
            ok("B=binary:0a1B2c").value,
            RegValue::binary(&[0x0a, 0x1b, 0x2c])
        );
        assert_eq!(
            ok("B=binary:0a 1b:2c").value,
            RegValue::binary(&[0x0a, 0x1b, 0x2c])
        );
        assert_eq!(ok("B=binary:").value.reg_type(), RegType::BINARY);
        assert_eq!(ok("D=dword:4294967295").value, RegValue::dword(u32::MAX));
    }

    #[test]
    fn errors_name_the_bad_part_and_the_form() {
        assert_eq!(
            err("DiskCount=dword:x"),
            "`--set DiskCount=dword:x`: `x` is not a dword; expected a decimal or 0x-prefixed hex number up to 4294967295."
        );
        assert!(err("D=dword:4294967296").contains("`4294967296` is not a dword"));
        assert!(err("D=dword:-1").contains("`-1` is not a dword"));
        assert!(err("D=dword:0x").contains("`0x` is not a dword"));
        assert!(err("Q=qword:18446744073709551616").contains("is not a qword"));
        assert!(
            err("B=binary:0a1").contains("`0a1` is not a binary; expected pairs of hex digits")
        );
        assert!(err("B=binary:zz").contains("`zz` is not a binary"));
        assert!(err("M=multi_sz:a;;b").contains("`a;;b` is not a multi_sz"));
        assert_eq!(
            err("DiskCount"),
            "`--set DiskCount`: there is no `=` after the value name; expected [SUBKEY\\]NAME=TYPE:VALUE with TYPE one of dword, qword, sz, multi_sz, binary."
        );
        assert!(err("=dword:1").contains("the value name before `=` is empty"));
        assert!(err("Device\\=dword:1").contains("the value name before `=` is empty"));
        assert!(err("A\\\\B=dword:1").contains("empty part between backslashes"));
        assert!(err("X=dword").contains("no `:` between the type and the value"));
        assert!(
            err("X=float:1")
                .contains("`float` is not a value type; expected [SUBKEY\\]NAME=TYPE:VALUE")
        );
    }

    #[test]
    fn apply_writes_under_parameters() {
        let mut reg = Registry::new();
        apply(&ok("DiskCount=dword:3"), &mut reg, "vstor");
        apply(&ok("Device0\\DiskCount=dword:4"), &mut reg, "vstor");
        assert_eq!(
            reg.value("Services\\vstor\\Parameters\\Device", "DiskCount"),
            Some(&RegValue::dword(3))
        );
        assert_eq!(
            reg.value("Services\\vstor\\Parameters\\Device0", "diskcount"),
            Some(&RegValue::dword(4))
        );
    }
}
