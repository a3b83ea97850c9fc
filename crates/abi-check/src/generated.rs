//! What bindgen generates from the headers, read back from its Rust output:
//! sizes and field offsets from its layout tests, constants from `pub const`
//! items, prototypes from `extern` blocks, typedefs from `pub type` items.

use std::collections::HashMap;

/// The parts of bindgen's output the check compares.
#[derive(Default)]
pub struct Generated {
    /// Type name to size in bytes (from `size_of::<T>() - N` layout tests).
    pub sizes: HashMap<String, usize>,
    /// Type name to alignment in bytes.
    pub aligns: HashMap<String, usize>,
    /// Struct or union name to its fields (name, Rust type), in order.
    pub fields: HashMap<String, Vec<(String, String)>>,
    /// `(type, field)` to offset in bytes.
    pub offsets: HashMap<(String, String), usize>,
    /// Type alias to its target.
    pub aliases: HashMap<String, String>,
    /// Constant name to value.
    pub consts: HashMap<String, i128>,
    /// Function name to parameter types and return type (empty: none).
    pub functions: HashMap<String, (Vec<String>, String)>,
    /// `(type, bit field)` to the bindgen member holding it (`_bitfield_N`),
    /// the bit offset in that member and the width in bits, from the
    /// accessors bindgen writes (`self._bitfield_1.get_const::<9usize, 1u8>()`,
    /// or `.get(9usize, 1u8)` from older bindgen).
    pub bits: HashMap<(String, String), BitField>,
}

/// Where bindgen puts one C bit field: the member holding it
/// (`_bitfield_N`), the bit offset in that member and the width in bits.
pub type BitField = (String, u32, u32);

/// Parses bindgen's output: each item starts at a marker (`pub const `,
/// `pub type `, `pub fn `, a layout test's message) and ends at the next `;`.
#[must_use]
pub fn parse(text: &str) -> Generated {
    let mut out = Generated::default();
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for (at, _) in flat.match_indices("pub const ") {
        let item = item_at(&flat, at + "pub const ".len());
        if let Some((name, value)) = item
            .split_once(':')
            .and_then(|(n, r)| Some((n, r.split_once('=')?.1)))
            && let Some(v) = parse_int(value)
        {
            out.consts.insert(name.trim().to_owned(), v);
        }
    }
    for (at, _) in flat.match_indices("pub type ") {
        if let Some((name, target)) = item_at(&flat, at + "pub type ".len()).split_once('=') {
            out.aliases
                .insert(name.trim().to_owned(), target.trim().to_owned());
        }
    }
    for (at, _) in flat.match_indices("pub fn ") {
        let item = item_at(&flat, at + "pub fn ".len());
        if !item.contains('{') {
            parse_fn(item, &mut out.functions);
        }
    }
    for (at, _) in flat.match_indices("[\"Size of ") {
        if let Some((ty, n)) = size_test(item_at(&flat, at + "[\"Size of ".len()), "size_of::<") {
            out.sizes.insert(ty, n);
        }
    }
    for (at, _) in flat.match_indices("[\"Alignment of ") {
        if let Some((ty, n)) =
            size_test(item_at(&flat, at + "[\"Alignment of ".len()), "align_of::<")
        {
            out.aligns.insert(ty, n);
        }
    }
    for keyword in ["pub struct ", "pub union "] {
        for (at, _) in flat.match_indices(keyword) {
            let rest = &flat[at + keyword.len()..];
            let Some((name, body)) = rest.split_once('{') else {
                continue;
            };
            let name = name.trim();
            if name.contains(['<', '(', ';']) {
                continue;
            }
            let body = &body[..body.find('}').unwrap_or(body.len())];
            let fields = split_top(body)
                .into_iter()
                .filter_map(|f| {
                    let (n, t) = f.trim().strip_prefix("pub ")?.split_once(':')?;
                    Some((n.trim().to_owned(), t.trim().to_owned()))
                })
                .collect();
            out.fields.insert(name.to_owned(), fields);
        }
    }
    for (at, _) in flat.match_indices("(&self) -> ") {
        if let Some((key, value)) = bit_accessor(&flat, at) {
            out.bits.insert(key, value);
        }
    }
    for (at, _) in flat.match_indices("[\"Offset of field: ") {
        if let Some((ty, field, n)) = offset_test(item_at(&flat, at + "[\"Offset of field: ".len()))
        {
            out.offsets.insert((ty, field), n);
        }
    }
    out
}

/// A bit-field getter ending at `at` (`pub fn NAME` before it, the
/// `impl TYPE {` it belongs to before that): `((TYPE, NAME), (member, bit
/// offset, width))`.
fn bit_accessor(flat: &str, at: usize) -> Option<((String, String), BitField)> {
    let before = &flat[..at];
    let name = before.rsplit_once("pub fn ")?.1.trim();
    let impl_at = before.rfind("impl ")?;
    let ty = flat[impl_at + "impl ".len()..].split_once('{')?.0.trim();
    if ty.contains([' ', '<']) {
        return None;
    }
    let body = flat[at..].split_once('{')?.1;
    let body = &body[..body.find(';').unwrap_or(body.len())];
    let member_at = body.find("self._bitfield_")? + "self.".len();
    let member_len = body[member_at..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    let member = &body[member_at..member_at + member_len];
    let rest = &body[member_at + member_len..];
    let args = rest
        .strip_prefix(".get_const::<")
        .or_else(|| rest.strip_prefix(".get("))?;
    let (offset, width) = args.split_once(',')?;
    let offset = parse_int(offset)?.try_into().ok()?;
    let width = parse_int(width)?.try_into().ok()?;
    Some((
        (ty.to_owned(), name.to_owned()),
        (member.to_owned(), offset, width),
    ))
}

/// The text from `at` to the next `;` (excluded).
fn item_at(flat: &str, at: usize) -> &str {
    let rest = &flat[at..];
    &rest[..rest.find(';').unwrap_or(rest.len())]
}

fn parse_fn(item: &str, functions: &mut HashMap<String, (Vec<String>, String)>) {
    let Some((name, signature)) = item.split_once('(') else {
        return;
    };
    let Some(close) = signature.rfind(')') else {
        return;
    };
    let params = &signature[..close];
    let returns = signature[close + 1..].trim().trim_end_matches(';').trim();
    let returns = returns.strip_prefix("->").map_or("", str::trim).to_owned();
    let params = split_top(params)
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.split_once(':').map_or(p, |(_, t)| t).trim().to_owned())
        .collect();
    functions.insert(name.trim().to_owned(), (params, returns));
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
    Some((
        ty,
        parse_int(n.split("usize").next()?.trim())?
            .try_into()
            .ok()?,
    ))
}

/// `TYPE::FIELD"][::std::mem::offset_of!(TYPE, FIELD) - 8usize];`
fn offset_test(rest: &str) -> Option<(String, String, usize)> {
    let path = rest.split('"').next()?;
    let (ty, field) = path.rsplit_once("::")?;
    let n = rest.rsplit_once("- ")?.1;
    let n = parse_int(n.split("usize").next()?.trim())?
        .try_into()
        .ok()?;
    Some((ty.to_owned(), field.to_owned(), n))
}

/// Parses a Rust integer literal as bindgen writes it (decimal, optional sign).
#[must_use]
pub fn parse_int(s: &str) -> Option<i128> {
    let s = s.trim().replace('_', "");
    let (neg, digits) = s
        .strip_prefix('-')
        .map_or((false, s.as_str()), |d| (true, d));
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
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

    /// The offset of a field of `ty` by name, looking into anonymous unions
    /// and structs (bindgen's `__bindgen_anon_N` members, which have no
    /// layout test of their own: their offset follows from the member before
    /// them, its width and the anonymous type's alignment, as C lays it out).
    #[must_use]
    pub fn field_offset(&self, ty: &str, field: &str) -> Option<usize> {
        self.field_offset_depth(ty, field, 0)
    }

    fn field_offset_depth(&self, ty: &str, field: &str, depth: usize) -> Option<usize> {
        if let Some(&o) = self.offsets.get(&(ty.to_owned(), field.to_owned())) {
            return Some(o);
        }
        if depth > 8 {
            return None;
        }
        let fields = self.fields.get(ty)?;
        fields
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| n.starts_with("__bindgen_anon_"))
            .find_map(|(i, (_, anon_ty))| {
                let inner = self.field_offset_depth(anon_ty, field, depth + 1)?;
                Some(self.member_offset(ty, fields, i, depth)? + inner)
            })
    }

    /// The offset of the `i`th member of `ty`.
    fn member_offset(
        &self,
        ty: &str,
        fields: &[(String, String)],
        i: usize,
        depth: usize,
    ) -> Option<usize> {
        let (name, member_ty) = &fields[i];
        if let Some(&o) = self.offsets.get(&(ty.to_owned(), name.clone())) {
            return Some(o);
        }
        if i == 0 || depth > 8 {
            return (i == 0).then_some(0);
        }
        let (_, prev_ty) = &fields[i - 1];
        let end = self.member_offset(ty, fields, i - 1, depth + 1)? + self.width(prev_ty)?;
        let align = self.align(member_ty)?.max(1);
        Some(end.div_ceil(align) * align)
    }

    /// The offset of member `member` of `ty` (as bindgen names it, such as
    /// `_bitfield_1`), computed from the members before it when it has no
    /// layout test of its own.
    #[must_use]
    pub fn member_offset_by_name(&self, ty: &str, member: &str) -> Option<usize> {
        let fields = self.fields.get(ty)?;
        let i = fields.iter().position(|(n, _)| n == member)?;
        self.member_offset(ty, fields, i, 0)
    }

    /// The type of member `member` of `ty`.
    #[must_use]
    pub fn member_type(&self, ty: &str, member: &str) -> Option<&str> {
        self.fields
            .get(ty)?
            .iter()
            .find(|(n, _)| n == member)
            .map(|(_, t)| t.as_str())
    }

    /// The alignment in bytes of a Rust type as bindgen writes it, for an
    /// x64 Windows target. A bit-field unit is a byte array (alignment 1):
    /// bindgen places a zero-length `_bitfield_align_N` array of the C
    /// type before it when the C alignment is larger.
    fn align(&self, ty: &str) -> Option<usize> {
        let ty = ty.trim();
        if let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            return self.align(inner.rsplit_once(';')?.0);
        }
        if ty.starts_with("__BindgenBitfieldUnit<") {
            return Some(1);
        }
        if let Some(inner) = ty
            .strip_prefix("__IncompleteArrayField<")
            .and_then(|t| t.strip_suffix('>'))
        {
            return self.align(inner);
        }
        if let Some(&a) = self.aligns.get(self.resolve(ty)) {
            return Some(a);
        }
        // Pointers and primitives are aligned to their width.
        self.width(ty)
    }

    /// The width in bytes of a Rust type as bindgen writes it, for an x64
    /// (LLP64) Windows target; `None` when unknown.
    #[must_use]
    pub fn width(&self, ty: &str) -> Option<usize> {
        let ty = ty.trim();
        if ty.starts_with('*')
            || ty.starts_with("::std::option::Option<")
            || ty.starts_with("Option<")
        {
            return Some(8);
        }
        if let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            let (elem, count) = inner.rsplit_once(';')?;
            let count: usize = parse_int(count)?.try_into().ok()?;
            return Some(self.width(elem)? * count);
        }
        if ty.starts_with("__IncompleteArrayField<") {
            return Some(0);
        }
        if let Some(inner) = ty
            .strip_prefix("__BindgenBitfieldUnit<")
            .and_then(|t| t.strip_suffix('>'))
        {
            return self.width(inner);
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
