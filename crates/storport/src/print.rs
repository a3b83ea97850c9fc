//! `DbgPrint` with Rust formatting, without allocation.

use core::fmt::{self, Write};

/// Longest line [`debug_print!`](crate::debug_print) sends, in bytes, NUL
/// included; longer output is cut (the kernel's own `DbgPrint` limit is 512).
pub const LINE_BYTES: usize = 512;

/// Formats `args` into a stack buffer of [`LINE_BYTES`] and sends it with
/// `DbgPrint("%s", line)`. Output past the buffer is cut short, and a NUL in
/// the output ends the line early (it ends the C string).
///
/// `DbgPrint` may be called at any IRQL up to DIRQL, so this may be called
/// from every callback.
pub fn debug_print(args: fmt::Arguments<'_>) {
    let mut line = Line {
        bytes: [0; LINE_BYTES],
        used: 0,
    };
    // A formatting error only means a `Display` impl failed; print what came
    // before it.
    let _ = line.write_fmt(args);
    let end = line.used.min(LINE_BYTES - 1);
    line.bytes[end] = 0;
    // SAFETY: the format is a NUL-terminated "%s" and the argument a
    // NUL-terminated byte string that outlives the call.
    let _status =
        unsafe { storport_sys::DbgPrint(c"%s".as_ptr().cast::<u8>(), line.bytes.as_ptr()) };
}

/// `print!` for kernel code: formats with `core::fmt` into a fixed stack
/// buffer and sends it through `DbgPrint`. Add `\n` yourself.
///
/// ```no_run
/// storport::debug_print!("vstor: {} disks of {} MiB\n", 2, 64);
/// ```
#[macro_export]
macro_rules! debug_print {
    ($($arg:tt)*) => {
        $crate::print::debug_print(::core::format_args!($($arg)*))
    };
}

/// An unsigned number in decimal, for `{}` in kernel messages.
///
/// `core`'s own integer `Display` goes through `Formatter::pad_integral`,
/// which honours fill, width, sign and precision and, with the per-type
/// impls, takes about 1.2 KB of a driver image. Messages need none of that:
/// this writes the digits with one `write_str`. No crate does just this
/// without bringing its own formatting framework, so it is written here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dec(pub u64);

/// An unsigned number in decimal with leading zeros to at least `width`
/// digits (`{:04}` without `pad_integral`; see [`Dec`]). Widths above 20
/// count as 20.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZeroPadded(pub u64, pub usize);

/// An unsigned number as `0x` and at least two lowercase hexadecimal digits
/// (`{:#04x}` without `pad_integral`; see [`Dec`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hex(pub u64);

/// Bytes meant to be ASCII (registry value names, INQUIRY strings), written
/// as they are with one `write_str`; a byte outside ASCII is written as `?`.
///
/// Writing them as `char`s instead goes through `Write::write_char`'s UTF-8
/// encoder once per writer type, and `core::str::from_utf8` brings in the
/// full UTF-8 validator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsciiText<'a>(pub &'a [u8]);

impl fmt::Display for AsciiText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, ascii) in self.0.split(|byte| !byte.is_ascii()).enumerate() {
            if index > 0 {
                f.write_str("?")?;
            }
            // SAFETY: `split` left out every byte that is not ASCII, and
            // ASCII bytes are valid UTF-8 one by one.
            let text = unsafe { core::str::from_utf8_unchecked(ascii) };
            f.write_str(text)?;
        }
        Ok(())
    }
}

/// Every ASCII character, each at its own code.
const ASCII: &str = {
    const BYTES: [u8; 128] = {
        let mut bytes = [0_u8; 128];
        let mut code = 0;
        while code < bytes.len() {
            #[expect(clippy::cast_possible_truncation, reason = "codes stay below 128")]
            {
                bytes[code] = code as u8;
            }
            code += 1;
        }
        bytes
    };
    match core::str::from_utf8(&BYTES) {
        Ok(text) => text,
        Err(_) => panic!("ASCII is valid UTF-8"),
    }
};

/// `c` as a string of one byte when it is ASCII, else `"?"`.
///
/// For `fmt::Write::write_char` in writers of kernel messages. The trait's
/// default encodes UTF-8, and every writer used through `dyn Write` keeps
/// its own copy of that in the image.
#[must_use]
pub fn ascii_str(c: char) -> &'static str {
    let code = c as usize;
    ASCII.get(code..=code).unwrap_or("?")
}

/// Digits of `value` in `radix` (10 or 16), at least `width` of them.
/// Out of line: the three number types share one copy in the image.
#[inline(never)]
fn digits(value: u64, radix: u64, width: usize, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // u64::MAX has 20 decimal digits.
    let mut buffer = [b'0'; 20];
    let mut start = buffer.len();
    let mut rest = value;
    while rest > 0 && start > 0 {
        start -= 1;
        #[expect(
            clippy::cast_possible_truncation,
            reason = "a remainder below 16 fits any integer type"
        )]
        let digit = (rest % radix) as usize;
        buffer[start] = DIGITS[digit];
        rest /= radix;
    }
    let start = start.min(buffer.len().saturating_sub(width.max(1)));
    let ascii = &buffer[start..];
    // SAFETY: `buffer` only ever holds bytes from `DIGITS` and its initial
    // b'0's, all ASCII, so every slice of it is valid UTF-8.
    let text = unsafe { core::str::from_utf8_unchecked(ascii) };
    f.write_str(text)
}

impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        digits(self.0, 10, 1, f)
    }
}

impl fmt::Display for ZeroPadded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        digits(self.0, 10, self.1, f)
    }
}

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        digits(self.0, 16, 2, f)
    }
}

/// A line being formatted; keeps the last byte for the NUL.
struct Line {
    bytes: [u8; LINE_BYTES],
    used: usize,
}

impl Write for Line {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let room = LINE_BYTES - 1 - self.used;
        let taken = text.len().min(room);
        self.bytes[self.used..self.used + taken].copy_from_slice(&text.as_bytes()[..taken]);
        self.used += taken;
        Ok(())
    }

    fn write_char(&mut self, c: char) -> fmt::Result {
        self.write_str(ascii_str(c))
    }
}

#[cfg(test)]
mod tests {
    use core::fmt::Write;
    use std::format;
    use std::string::ToString;

    use super::{AsciiText, Dec, Hex, LINE_BYTES, Line, ZeroPadded, ascii_str};

    #[test]
    fn numbers_print_as_core_prints_them() {
        for value in [0, 1, 9, 10, 255, 4096, 65535, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(Dec(value).to_string(), format!("{value}"));
            assert_eq!(ZeroPadded(value, 4).to_string(), format!("{value:04}"));
            assert_eq!(Hex(value).to_string(), format!("{value:#04x}"));
        }
        assert_eq!(ZeroPadded(7, 0).to_string(), "7");
        assert_eq!(ZeroPadded(7, 99).to_string(), "00000000000000000007");
    }

    #[test]
    fn ascii_text_is_written_as_it_is_and_other_bytes_as_question_marks() {
        assert_eq!(AsciiText(b"DiskCount").to_string(), "DiskCount");
        assert_eq!(AsciiText(b"").to_string(), "");
        assert_eq!(AsciiText(b"a\xffb\x80").to_string(), "a?b?");
        assert_eq!(AsciiText(b"\xc3\xa9").to_string(), "??");
    }

    #[test]
    fn ascii_str_gives_each_ascii_character_and_question_marks_for_the_rest() {
        for code in 0_u8..128 {
            assert_eq!(ascii_str(char::from(code)), char::from(code).to_string());
        }
        assert_eq!(ascii_str('é'), "?");
        assert_eq!(ascii_str('\u{10FFFF}'), "?");
    }

    #[test]
    fn long_output_is_cut_and_leaves_room_for_the_nul() {
        let mut line = Line {
            bytes: [0; LINE_BYTES],
            used: 0,
        };
        for _ in 0..100 {
            write!(line, "0123456789").unwrap();
        }
        assert_eq!(line.used, LINE_BYTES - 1);
        assert_eq!(&line.bytes[..10], b"0123456789");
    }
}
