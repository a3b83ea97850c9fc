//! What bindgen generates from the headers, read back from its Rust output:
//! sizes and field offsets from its layout tests, constants from `pub const`
//! items, prototypes from `extern` blocks, typedefs from `pub type` items.

use std::collections::HashMap;

/// The parts of bindgen's output the check compares.
#[derive(Default)]
pub struct Generated {
    /// Type name to size in bytes (from `size_of::<T>() - N` layout tests).
    pub sizes: HashMap<String, usize>,
    /// `(type, field)` to offset in bytes.
    pub offsets: HashMap<(String, String), usize>,
    /// `(type, field)` to the field's Rust type.
    pub field_types: HashMap<(String, String), String>,
    /// Type alias to its target.
    pub aliases: HashMap<String, String>,
    /// Constant name to value.
    pub consts: HashMap<String, i128>,
    /// Function name to parameter types and return type (empty: none).
    pub functions: HashMap<String, (Vec<String>, String)>,
}

/// Parses bindgen's output (formatted or not, one item per line after
/// normalizing whitespace).
#[must_use]
pub fn parse(text: &str) -> Generated {
    let mut out = Generated::default();
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut current_struct: Option<String> = None;
    for item in split_items(&flat) {
        let item = item.trim();
        if let Some(rest) = item.strip_prefix("pub const ") {
            if let Some((name, value)) = rest.split_once(':').and_then(|(n, r)| Some((n, r.split_once('=')?.1))) {
                if let Some(v) = parse_int(value.trim().trim_end_matches(';')) {
                    out.consts.insert(name.trim().to_owned(), v);
                }
            }
        } else if let Some(rest) = item.strip_prefix("pub type ") {
            if let Some((name, target)) = rest.split_once('=') {
                out.aliases.insert(name.trim().to_owned(), target.trim().trim_end_matches(';').trim().to_owned());
            }
        } else if let Some(rest) = item.strip_prefix("pub fn ") {
            parse_fn(rest, &mut out.functions);
        } else if let Some(rest) = item.strip_prefix("[\"Size of ") {
            if let Some((ty, n)) = size_test(rest, "size_of::<") {
                out.sizes.insert(ty, n);
            }
        } else if let Some(rest) = item.strip_prefix("[\"Offset of field: ") {
            if let Some((ty, field, n)) = offset_test(rest) {
                out.offsets.insert((ty, field), n);
            }
        }
        if let Some(at) = item.find("pub struct ").or_else(|| item.find("pub union ")) {
            let rest = &item[at..];
            let name = rest.split_whitespace().nth(2).unwrap_or("");
            let name = name.split(['{', '<']).next().unwrap_or("");
            current_struct = Some(name.to_owned());
            if let Some(body) = rest.split_once('{').map(|(_, b)| b) {
                parse_fields(name, body, &mut out.field_types);
            }
        } else if let (Some(s), Some(rest)) = (&current_struct, item.strip_prefix("pub ")) {
            // Fields that split_items separated from their struct head.
            parse_fields(s, rest, &mut out.field_types);
        }
    }
    out
}

/// Splits at `;` and `{`/`}` boundaries that end items, keeping struct heads
/// together with their first field.
fn split_items(flat: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut start = 0;
    let bytes = flat.as_bytes();
    let mut angle = 0_i32;
    let mut paren = 0_i32;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'<' => angle += 1,
            b'>' if i > 0 && bytes[i - 1] != b'-' => angle -= 1,
            b'(' => paren += 1,
            b')' => paren -= 1,
            b';' | b'}' | b',' if angle <= 0 && paren <= 0 => {
                items.push(&flat[start..=i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&flat[start..]);
    items
}

fn parse_fields(ty: &str, body: &str, fields: &mut HashMap<(String, String), String>) {
    let body = body.trim().trim_start_matches("pub ").trim();
    if let Some((name, rest)) = body.split_once(':') {
        let name = name.trim();
        if name.chars().all(|c| c.is_alphanumeric() || c == '_') && !name.is_empty() {
            let field_ty = rest.trim().trim_end_matches([',', '}']).trim();
            fields.insert((ty.to_owned(), name.to_owned()), field_ty.to_owned());
        }
    }
}

fn parse_fn(rest: &str, functions: &mut HashMap<String, (Vec<String>, String)>) {
    let Some((name, rest)) = rest.split_once('(') else { return };
    let Some(close) = rest.rfind(')') else { return };
    let params = &rest[..close];
    let ret = rest[close + 1..].trim().trim_end_matches(';').trim();
    let ret = ret.strip_prefix("->").map_or("", str::trim).to_owned();
    let params = split_top(params)
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.split_once(':').map_or(p, |(_, t)| t).trim().to_owned())
        .collect();
    functions.insert(name.trim().to_owned(), (params, ret));
}

/// Splits at commas outside `<>` and `()`.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0_i32, 0);
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'<' | b'(' => depth += 1,
            b'>' if i > 0 && bytes[i - 1] != b'-' => depth -= 1,
            b')' => depth -= 1,
            b',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// `TYPE"][::std::mem::size_of::<TYPE>() - 8usize];`
fn size_test(rest: &str, marker: &str) -> Option<(String, usize)> {
    let ty = rest.split('"').next()?.to_owned();
    let after = rest.split_once(marker)?.1;
    let n = after.split_once("- ")?.1;
    Some((ty, parse_int(n.split("usize").next()?.trim())?.try_into().ok()?))
}

/// `TYPE::FIELD"][::std::mem::offset_of!(TYPE, FIELD) - 8usize];`
fn offset_test(rest: &str) -> Option<(String, String, usize)> {
    let path = rest.split('"').next()?;
    let (ty, field) = path.rsplit_once("::")?;
    let n = rest.rsplit_once("- ")?.1;
    let n = parse_int(n.split("usize").next()?.trim())?.try_into().ok()?;
    Some((ty.to_owned(), field.to_owned(), n))
}

/// Parses a Rust integer literal as bindgen writes it (decimal, optional sign).
#[must_use]
pub fn parse_int(s: &str) -> Option<i128> {
    let s = s.trim().replace('_', "");
    let (neg, digits) = s.strip_prefix('-').map_or((false, s.as_str()), |d| (true, d));
    let digits = digits.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c.is_ascii_digit() && false);
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    let v: i128 = digits.get(..end)?.parse().ok()?;
    Some(if neg { -v } else { v })
}

impl Generated {
    /// Follows `pub type` aliases to the final type name.
    #[must_use]
    pub fn resolve<'a>(&'a self, mut name: &'a str) -> &'a str {
        for _ in 0..32 {
            match self.aliases.get(name) {
                Some(target) => name = target,
                None => break,
            }
        }
        name
    }

    /// The width in bytes of a Rust type as bindgen writes it, for an x64
    /// (LLP64) Windows target; `None` when unknown.
    #[must_use]
    pub fn width(&self, ty: &str) -> Option<usize> {
        let ty = ty.trim();
        if ty.starts_with('*') || ty.starts_with("::std::option::Option<") || ty.starts_with("Option<") {
            return Some(8);
        }
        let last = ty.rsplit("::").next().unwrap_or(ty);
        let prim = match last {
            "u8" | "i8" | "c_char" | "c_uchar" | "c_schar" | "bool" => Some(1),
            "u16" | "i16" | "c_short" | "c_ushort" => Some(2),
            "u32" | "i32" | "f32" | "c_int" | "c_uint" | "c_long" | "c_ulong" => Some(4),
            "u64" | "i64" | "f64" | "usize" | "isize" | "c_longlong" | "c_ulonglong" => Some(8),
            _ => None,
        };
        if prim.is_some() {
            return prim;
        }
        let resolved = self.resolve(ty);
        if resolved != ty {
            return self.width(resolved);
        }
        self.sizes.get(resolved).copied()
    }
}
