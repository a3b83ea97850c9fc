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
}

#[cfg(test)]
mod tests {
    use core::fmt::Write;

    use super::{LINE_BYTES, Line};

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
