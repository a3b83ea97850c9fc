//! The printf subset of `DbgPrint`, `DbgPrintEx` and `StorPortDebugPrint`.
//!
//! Conversions: `%s %c %d %i %u %x %X %p`, the `l`, `ll`, `I64`, `I32`, `h`,
//! `z`/`I` length prefixes, `%S`/`%ws` (UTF-16 strings), `%wZ`
//! (`UNICODE_STRING`), widths and precisions (also `*`), the `-` and `0`
//! flags and `%%`. Windows is LLP64: `%d` and `%ld` are 32 bits, only
//! `ll`/`I64`/`z`/`I` and `%p` take 64.

use crate::port::mem;

/// Longest string argument read from driver memory.
const MAX_STRING_BYTES: usize = 4096;

/// Source of the variadic arguments, one 64-bit slot each.
pub trait ArgSource {
    /// The next argument slot.
    fn next_arg(&mut self) -> u64;
}

impl<I: Iterator<Item = u64>> ArgSource for I {
    fn next_arg(&mut self) -> u64 {
        self.next().unwrap_or(0)
    }
}

#[derive(Default)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "printf flags are independent booleans"
)]
struct Spec {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    hash: bool,
    width: Option<usize>,
    precision: Option<usize>,
    long64: bool,
    short: u8,
    wide: bool,
}

fn pad(out: &mut String, body: &str, spec: &Spec, numeric: bool) {
    let len = body.chars().count();
    let width = spec.width.unwrap_or(0);
    if len >= width {
        out.push_str(body);
    } else if spec.left {
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', width - len));
    } else if spec.zero && numeric && spec.precision.is_none() {
        // Zero padding goes after a sign or 0x prefix.
        let split = if body.starts_with("0x") || body.starts_with("0X") {
            2
        } else {
            usize::from(body.starts_with(['-', '+', ' ']))
        };
        out.push_str(&body[..split]);
        out.extend(std::iter::repeat_n('0', width - len));
        out.push_str(&body[split..]);
    } else {
        out.extend(std::iter::repeat_n(' ', width - len));
        out.push_str(body);
    }
}

fn read_ansi(address: u64, precision: Option<usize>) -> String {
    if address == 0 {
        return "(null)".to_owned();
    }
    let max = precision.unwrap_or(MAX_STRING_BYTES).min(MAX_STRING_BYTES);
    let Ok(address) = usize::try_from(address) else {
        return "(bad address)".to_owned();
    };
    mem::read_cstr(address, max).map_or_else(
        || format!("(bad address {address:#x})"),
        |bytes| bytes.iter().map(|&b| char::from(b)).collect(),
    )
}

fn read_wide(address: u64, precision: Option<usize>) -> String {
    if address == 0 {
        return "(null)".to_owned();
    }
    let max = precision.unwrap_or(MAX_STRING_BYTES).min(MAX_STRING_BYTES);
    let Ok(address) = usize::try_from(address) else {
        return "(bad address)".to_owned();
    };
    mem::read_wstr(address, max).map_or_else(
        || format!("(bad address {address:#x})"),
        |units| String::from_utf16_lossy(&units),
    )
}

fn read_unicode_string(address: u64) -> String {
    let Ok(address) = usize::try_from(address) else {
        return "(bad address)".to_owned();
    };
    if address == 0 {
        return "(null)".to_owned();
    }
    let Some(header) = mem::read(address, 16) else {
        return format!("(bad address {address:#x})");
    };
    let length = usize::from(u16::from_le_bytes([header[0], header[1]]));
    let buffer = u64::from_le_bytes(header[8..16].try_into().unwrap_or([0; 8]));
    let Ok(buffer) = usize::try_from(buffer) else {
        return "(bad address)".to_owned();
    };
    mem::read(buffer, length & !1).map_or_else(
        || format!("(bad address {buffer:#x})"),
        |bytes| {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|p| u16::from_le_bytes([p[0], p[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        },
    )
}

const fn integer(spec: &Spec, raw: u64, signed: bool) -> (bool, u64) {
    let bits = if spec.long64 {
        64
    } else if spec.short == 1 {
        16
    } else if spec.short == 2 {
        8
    } else {
        32
    };
    let masked = if bits == 64 {
        raw
    } else {
        raw & ((1_u64 << bits) - 1)
    };
    if signed {
        let shift = 64 - bits;
        let value = (masked.cast_signed() << shift) >> shift;
        (value < 0, value.unsigned_abs())
    } else {
        (false, masked)
    }
}

/// Formats `format` with arguments from `args`, as the kernel's `DbgPrint` would.
#[expect(
    clippy::too_many_lines,
    reason = "one printf state machine reads best in one place"
)]
pub fn format(format: &[u8], args: &mut impl ArgSource) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < format.len() {
        let c = format[i];
        i += 1;
        if c != b'%' {
            out.push(char::from(c));
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&flag) = format.get(i) {
            match flag {
                b'-' => spec.left = true,
                b'0' => spec.zero = true,
                b'+' => spec.plus = true,
                b' ' => spec.space = true,
                b'#' => spec.hash = true,
                _ => break,
            }
            i += 1;
        }
        if format.get(i) == Some(&b'*') {
            i += 1;
            let width = i64::from(((args.next_arg() & 0xFFFF_FFFF) as u32).cast_signed());
            if width < 0 {
                spec.left = true;
            }
            spec.width = usize::try_from(width.unsigned_abs()).ok();
        } else {
            let start = i;
            while format.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            spec.width = std::str::from_utf8(&format[start..i])
                .ok()
                .and_then(|s| s.parse().ok());
        }
        if format.get(i) == Some(&b'.') {
            i += 1;
            if format.get(i) == Some(&b'*') {
                i += 1;
                spec.precision =
                    usize::try_from(((args.next_arg() & 0xFFFF_FFFF) as u32).cast_signed()).ok();
            } else {
                let start = i;
                while format.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                spec.precision = Some(
                    std::str::from_utf8(&format[start..i])
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0),
                );
            }
        }
        // Length prefixes.
        loop {
            let rest = &format[i.min(format.len())..];
            if rest.starts_with(b"I64") {
                spec.long64 = true;
                i += 3;
            } else if rest.starts_with(b"I32") {
                i += 3;
            } else if rest.starts_with(b"ll") {
                spec.long64 = true;
                i += 2;
            } else if rest.starts_with(b"hh") {
                spec.short = 2;
                i += 2;
            } else if rest.first() == Some(&b'l') {
                i += 1;
            } else if rest.first() == Some(&b'h') {
                spec.short = 1;
                i += 1;
            } else if matches!(rest.first(), Some(b'z' | b'I' | b'j' | b't')) {
                spec.long64 = true;
                i += 1;
            } else if rest.first() == Some(&b'w') {
                spec.wide = true;
                i += 1;
            } else {
                break;
            }
        }
        let Some(&conversion) = format.get(i) else {
            out.push('%');
            break;
        };
        i += 1;
        match conversion {
            b'%' => out.push('%'),
            b'd' | b'i' => {
                let (negative, magnitude) = integer(&spec, args.next_arg(), true);
                let mut digits = magnitude.to_string();
                if let Some(p) = spec.precision {
                    while digits.len() < p {
                        digits.insert(0, '0');
                    }
                }
                let sign = if negative {
                    "-"
                } else if spec.plus {
                    "+"
                } else if spec.space {
                    " "
                } else {
                    ""
                };
                pad(&mut out, &format!("{sign}{digits}"), &spec, true);
            }
            b'u' | b'x' | b'X' | b'o' => {
                let (_, value) = integer(&spec, args.next_arg(), false);
                let mut digits = match conversion {
                    b'u' => value.to_string(),
                    b'x' => format!("{value:x}"),
                    b'X' => format!("{value:X}"),
                    _ => format!("{value:o}"),
                };
                if let Some(p) = spec.precision {
                    while digits.len() < p {
                        digits.insert(0, '0');
                    }
                }
                if spec.hash && value != 0 {
                    match conversion {
                        b'x' => digits.insert_str(0, "0x"),
                        b'X' => digits.insert_str(0, "0X"),
                        _ => {}
                    }
                }
                pad(&mut out, &digits, &spec, true);
            }
            b'p' => {
                let body = format!("{:016X}", args.next_arg());
                pad(&mut out, &body, &spec, false);
            }
            b'c' | b'C' => {
                let raw = args.next_arg();
                let ch = if conversion == b'C' || spec.wide {
                    char::from_u32((raw & 0xFFFF) as u32).unwrap_or('?')
                } else {
                    char::from((raw & 0xFF) as u8)
                };
                pad(&mut out, &ch.to_string(), &spec, false);
            }
            b's' | b'S' => {
                let address = args.next_arg();
                let body = if conversion == b'S' || spec.wide {
                    read_wide(address, spec.precision)
                } else {
                    read_ansi(address, spec.precision)
                };
                pad(&mut out, &body, &spec, false);
            }
            b'Z' => {
                let body = read_unicode_string(args.next_arg());
                pad(&mut out, &body, &spec, false);
            }
            other => {
                // Unknown conversion: print it as written, consuming nothing.
                out.push('%');
                out.push(char::from(other));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(f: &str, args: &[u64]) -> String {
        format(f.as_bytes(), &mut args.iter().copied())
    }

    #[test]
    fn integers_follow_llp64_widths() {
        assert_eq!(fmt("%d", &[0xFFFF_FFFF_0000_0005]), "5");
        assert_eq!(fmt("%d", &[0xFFFF_FFFF]), "-1");
        assert_eq!(fmt("%ld", &[0x1_0000_0001]), "1");
        assert_eq!(fmt("%lld", &[u64::MAX]), "-1");
        assert_eq!(fmt("%I64d", &[0x1_0000_0000]), "4294967296");
        assert_eq!(
            fmt("%u %lu %llu", &[u64::MAX, u64::MAX, u64::MAX]),
            "4294967295 4294967295 18446744073709551615"
        );
        assert_eq!(
            fmt(
                "%x %X %lx %llx %I64x",
                &[0xABCD, 0xABCD, 0x1_0000_00FF, 0x1_0000_00FF, 0x1_0000_00FF]
            ),
            "abcd ABCD ff 1000000ff 1000000ff"
        );
        assert_eq!(fmt("%i", &[7]), "7");
    }

    #[test]
    fn widths_flags_and_literals() {
        assert_eq!(fmt("[%5d]", &[42]), "[   42]");
        assert_eq!(fmt("[%-5d]", &[42]), "[42   ]");
        assert_eq!(fmt("[%05d]", &[42]), "[00042]");
        assert_eq!(fmt("[%05d]", &[(-42_i64).cast_unsigned()]), "[-0042]");
        assert_eq!(fmt("[%08x]", &[0xBEEF]), "[0000beef]");
        assert_eq!(fmt("[%*d]", &[4, 7]), "[   7]");
        assert_eq!(fmt("100%%", &[]), "100%");
        assert_eq!(fmt("%p", &[0x1234]), "0000000000001234");
        assert_eq!(fmt("%c%c", &[u64::from(b'o'), u64::from(b'k')]), "ok");
    }

    #[test]
    fn strings_are_read_from_memory_safely() {
        let text = b"disk\0";
        let wide: Vec<u16> = "wide\0".encode_utf16().collect();
        assert_eq!(fmt("[%s]", &[text.as_ptr() as u64]), "[disk]");
        assert_eq!(fmt("[%-6s]", &[text.as_ptr() as u64]), "[disk  ]");
        assert_eq!(fmt("[%6s]", &[text.as_ptr() as u64]), "[  disk]");
        assert_eq!(fmt("[%.2s]", &[text.as_ptr() as u64]), "[di]");
        assert_eq!(fmt("[%ws]", &[wide.as_ptr() as u64]), "[wide]");
        assert_eq!(fmt("[%s]", &[0]), "[(null)]");
        assert_eq!(fmt("[%s]", &[16]), "[(bad address 0x10)]");
    }
}
