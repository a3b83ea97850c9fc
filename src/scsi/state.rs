//! The part of a disk's state that every command checks before it runs, in one atomic word:
//! write protection, the reservation (SPC-2 or persistent) and the unit attentions pending
//! for each target port.
//!
//! One word, so that a plain READ or WRITE ([`super::Disk::plain_request`]) learns with one
//! load that none of them applies to it. Each change is one atomic read-modify-write of the
//! word, so a request sees every part as of one moment.
//!
//! | bits   | part |
//! |--------|------|
//! | 0      | write protection ([`super::Disk::set_read_only`]) |
//! | 16..32 | the reservation word: 0 = none, else TYPE << 8 \| (holder port + 1) ([`super::persistent`]) |
//! | 32..64 | unit attentions, 4 bits per port (`port % MAX_PORTS`): 0 = none, else the ASCQ of ASC 29h plus one |

use core::sync::atomic::{AtomicU64, Ordering};

use super::nexus::MAX_PORTS;

/// Write protection.
const READ_ONLY: u64 = 1;
/// Where the reservation word starts.
const RESERVATION_SHIFT: u32 = 16;
/// The reservation word's bits.
const RESERVATION: u64 = 0xFFFF << RESERVATION_SHIFT;
/// Where the unit attentions start.
const ATTENTION_SHIFT: u32 = 32;
/// Bits of one port's unit attention.
const ATTENTION_BITS: u32 = 4;
/// The largest ASCQ a unit attention can carry (its value plus one fills the port's bits).
pub const MAX_ATTENTION_ASCQ: u8 = (1 << ATTENTION_BITS) - 2;
const _: () = assert!(MAX_PORTS as u32 * ATTENTION_BITS <= 64 - ATTENTION_SHIFT);

/// Ports a unit attention is established on.
#[derive(Clone, Copy, Debug)]
pub enum Ports {
    /// Every port.
    All,
    /// Port `n` (`n % MAX_PORTS`).
    One(u8),
}

impl Ports {
    /// The unit attention bits of these ports.
    const fn mask(self) -> u64 {
        match self {
            Self::All => u64::MAX << ATTENTION_SHIFT,
            Self::One(port) => 0xF << port_shift(port),
        }
    }
}

/// The bit position of `port`'s unit attention.
const fn port_shift(port: u8) -> u32 {
    ATTENTION_SHIFT + (port % MAX_PORTS) as u32 * ATTENTION_BITS
}

/// The word (see the module documentation).
#[derive(Debug)]
pub struct StateWord(AtomicU64);

impl StateWord {
    /// Write protection as given, no reservation, no unit attention.
    pub const fn new(read_only: bool) -> Self {
        Self(AtomicU64::new(if read_only { READ_ONLY } else { 0 }))
    }

    /// Replaces the bits of `mask` with `value`'s, as one step.
    fn update(&self, mask: u64, value: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some((now & !mask) | (value & mask))
            });
    }

    /// Whether nothing in the word concerns a plain READ (`write` false) or WRITE: no
    /// reservation, no unit attention on any port, and for a WRITE no write protection.
    #[inline]
    pub fn is_clear_for(&self, write: bool) -> bool {
        let ignored = if write { 0 } else { READ_ONLY };
        self.0.load(Ordering::Acquire) & !ignored == 0
    }

    /// Whether the disk rejects writes.
    pub fn read_only(&self) -> bool {
        self.0.load(Ordering::Relaxed) & READ_ONLY != 0
    }

    /// Turns write protection on or off.
    pub fn set_read_only(&self, read_only: bool) {
        if read_only {
            self.0.fetch_or(READ_ONLY, Ordering::AcqRel);
        } else {
            self.0.fetch_and(!READ_ONLY, Ordering::AcqRel);
        }
    }

    /// The reservation word.
    pub fn reservation(&self) -> u16 {
        // Masked and shifted down: 16 bits, kept whole by the conversion.
        ((self.0.load(Ordering::Acquire) & RESERVATION) >> RESERVATION_SHIFT) as u16
    }

    /// Sets the reservation word.
    pub fn set_reservation(&self, word: u16) {
        self.update(RESERVATION, u64::from(word) << RESERVATION_SHIFT);
    }

    /// Sets the reservation word to `new` if it is `current`, as one step: `Ok(current)`, or
    /// `Err` with the word found.
    pub fn exchange_reservation(&self, current: u16, new: u16) -> Result<u16, u16> {
        let current_bits = u64::from(current) << RESERVATION_SHIFT;
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now & RESERVATION == current_bits)
                    .then(|| (now & !RESERVATION) | (u64::from(new) << RESERVATION_SHIFT))
            })
            .map(|_| current)
            .map_err(|now| ((now & RESERVATION) >> RESERVATION_SHIFT) as u16)
    }

    /// Establishes the unit attention 29h/`ascq` on `ports`, replacing any other pending
    /// there. `ascq` is at most [`MAX_ATTENTION_ASCQ`] (the callers' constants are checked
    /// at compile time); a larger one is cut to its low bits.
    pub fn raise_attention(&self, ports: Ports, ascq: u8) {
        let value = (u64::from(ascq.wrapping_add(1) & 0xF) * 0x1111_1111_u64) << ATTENTION_SHIFT;
        self.update(ports.mask(), value);
    }

    /// Whether a unit attention is pending for `port`.
    pub fn attention_pending(&self, port: u8) -> bool {
        self.0.load(Ordering::Acquire) & Ports::One(port).mask() != 0
    }

    /// Takes the unit attention pending for `port`: its ASCQ, or `None` if none was.
    pub fn take_attention(&self, port: u8) -> Option<u8> {
        let mask = Ports::One(port).mask();
        let taken = self.0.fetch_and(!mask, Ordering::AcqRel) & mask;
        // Four bits once shifted down: the truncation keeps them all.
        #[expect(clippy::cast_possible_truncation, reason = "four bits")]
        let value = (taken >> port_shift(port)) as u8;
        value.checked_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each part of the word changes alone: write protection, the reservation and each
    /// port's unit attention leave the others as they were.
    #[test]
    fn the_parts_of_the_word_change_apart() {
        let word = StateWord::new(true);
        assert!(word.read_only());
        assert!(
            word.is_clear_for(false),
            "write protection does not concern a READ"
        );
        assert!(!word.is_clear_for(true));
        word.set_reservation(0xFF08);
        assert_eq!(word.exchange_reservation(0, 0x0101), Err(0xFF08));
        assert_eq!(word.exchange_reservation(0xFF08, 0x0307), Ok(0xFF08));
        assert_eq!(word.reservation(), 0x0307);
        assert!(!word.is_clear_for(false));
        word.raise_attention(Ports::One(7), MAX_ATTENTION_ASCQ);
        word.raise_attention(Ports::One(MAX_PORTS), 2);
        assert!(word.attention_pending(7) && word.attention_pending(0));
        assert!((1..7).all(|port| !word.attention_pending(port)));
        assert_eq!(word.take_attention(7), Some(MAX_ATTENTION_ASCQ));
        assert_eq!(word.take_attention(7), None);
        word.set_reservation(0);
        word.set_read_only(false);
        assert_eq!(word.take_attention(0), Some(2));
        assert!(word.is_clear_for(true));
        word.raise_attention(Ports::All, 3);
        assert!((0..MAX_PORTS).all(|port| word.take_attention(port) == Some(3)));
        assert!(word.is_clear_for(true) && !word.read_only() && word.reservation() == 0);
    }
}
