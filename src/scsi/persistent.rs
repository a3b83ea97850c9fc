//! Persistent reservations (SPC-4): PERSISTENT RESERVE IN and OUT, per target port.
//!
//! Each target port stands for one `I_T` nexus (see the `nexus` module), which registers a
//! reservation key and may hold the reservation. Supported: REGISTER, REGISTER AND IGNORE
//! EXISTING KEY, RESERVE, RELEASE, CLEAR, PREEMPT and PREEMPT AND ABORT (nothing is ever
//! outstanding to abort) for the six reservation types, scope logical unit; READ KEYS, READ
//! RESERVATION, REPORT CAPABILITIES and READ FULL STATUS. Not supported: REGISTER AND MOVE,
//! `SPEC_I_PT`, `ALL_TG_PT` and APTPL (the reservation lives in RAM like the data): INVALID FIELD.
//! Reservation-holder rules: the nexus that reserved, or for the all-registrants types every
//! registered nexus. Unregistering the holder releases a reservation of the other types.
//!
//! Access while another nexus holds the reservation ([`Disk::persistent_conflict`]): commands
//! that change nothing (INQUIRY, REPORT LUNS, REQUEST SENSE, TEST UNIT READY, READ CAPACITY,
//! REPORT SUPPORTED OPERATION CODES, the PERSISTENT RESERVE commands) always run; reads run
//! under the write-exclusive types; registrants have full access under the registrants-only
//! and all-registrants types; everything else ends in RESERVATION CONFLICT.

use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use super::disk::{Disk, Handled, op};
use super::nexus::{MAX_PORTS, conflict};
use super::opcodes::{in_set, opcode_set};
use super::reply::{Cdb, Reply, data_in, data_out, param_be64};
use super::sense::{SenseData, asc};
use super::state::StateWord;
use super::{BlockStore, DataBuffer, Outcome};

/// PARAMETER LIST LENGTH of the basic PERSISTENT RESERVE OUT parameter list (SPC-4).
const PARAMETER_LIST_LENGTH: u32 = 24;
const PARAMETER_LIST_BYTES: usize = PARAMETER_LIST_LENGTH as usize;

/// Reservation types (SPC-4 table "Persistent reservation type codes").
const WRITE_EXCLUSIVE: u8 = 1;
const EXCLUSIVE_ACCESS: u8 = 3;
const WRITE_EXCLUSIVE_REGISTRANTS_ONLY: u8 = 5;
const EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: u8 = 6;
const WRITE_EXCLUSIVE_ALL_REGISTRANTS: u8 = 7;
const EXCLUSIVE_ACCESS_ALL_REGISTRANTS: u8 = 8;

/// The PERSISTENT RESERVATION TYPE MASK of REPORT CAPABILITIES: every type above.
const TYPE_MASK: u16 = 0xEA01;

/// Commands that run whatever reservation another `I_T` nexus holds.
const HARMLESS: [u64; 4] = opcode_set(&[
    op::INQUIRY,
    op::REPORT_LUNS,
    op::REQUEST_SENSE,
    op::TEST_UNIT_READY,
    op::READ_CAPACITY_10,
    op::SERVICE_ACTION_IN_16,
    op::MAINTENANCE_IN,
    op::PERSISTENT_RESERVE_IN,
    op::PERSISTENT_RESERVE_OUT,
    op::LOG_SENSE,
]);

/// Commands that only read: they run under the write-exclusive types.
const READS: [u64; 4] = opcode_set(&[
    op::READ_6,
    op::READ_10,
    op::READ_12,
    op::READ_16,
    op::VERIFY_10,
    op::VERIFY_12,
    op::VERIFY_16,
    op::PRE_FETCH_10,
    op::PRE_FETCH_16,
    op::MODE_SENSE_6,
    op::MODE_SENSE_10,
    op::READ_DEFECT_DATA_10,
    op::READ_DEFECT_DATA_12,
]);

/// One disk's persistent reservation state: registrations and keys here, the reservation in
/// the disk's state word ([`super::state`]). PERSISTENT RESERVE IN and OUT read and change
/// them as one step under the logical unit's lock ([`BlockStore::with_unit_lock`]: in the
/// driver a kernel spin lock, exclusive, since these commands are rare); the checks every
/// command makes read the reservation and `registered` without it.
#[derive(Debug)]
pub struct Persistent {
    /// PRGENERATION.
    generation: AtomicU32,
    /// Registered ports, a bit each.
    registered: AtomicU8,
    /// Each port's reservation key.
    keys: [AtomicU64; MAX_PORTS as usize],
}

/// A checked PERSISTENT RESERVE OUT request: service action, TYPE, RESERVATION KEY,
/// SERVICE ACTION RESERVATION KEY and the port it came through.
#[derive(Clone, Copy)]
struct ReserveOut {
    action: u8,
    kind: u8,
    key: u64,
    new_key: u64,
    port: u8,
}

/// The TYPE byte of an SPC-2 reservation (RESERVE(6)) in the reservation word: the logical
/// unit's one reservation, persistent or SPC-2, 0 = none, else TYPE << 8 | (holder port + 1)
/// ([`StateWord::reservation`]). One word, so the check every command makes is one load.
pub const SPC2: u8 = 0xFF;

/// The persistent reservation in reservation word `word`: its type and holding port
/// (meaningless for all-registrants types); `None` with no reservation or an SPC-2 one.
const fn persistent_of(word: u16) -> Option<(u8, u8)> {
    let [holder, kind] = word.to_le_bytes();
    if kind == 0 || kind == SPC2 {
        None
    } else {
        Some((kind, holder.wrapping_sub(1)))
    }
}

/// The reservation word of a reservation of type `kind` ([`SPC2`] for RESERVE(6)) held by
/// port `holder`.
pub(super) const fn reservation_word(kind: u8, holder: u8) -> u16 {
    u16::from_le_bytes([holder % MAX_PORTS + 1, kind])
}

/// Whether reservation word `word` is an SPC-2 reservation (RESERVE(6)).
pub(super) const fn is_spc2(word: u16) -> bool {
    let [_, kind] = word.to_le_bytes();
    kind == SPC2
}

const fn bit(port: u8) -> u8 {
    1 << (port % MAX_PORTS)
}

const fn is_all_registrants(kind: u8) -> bool {
    kind == WRITE_EXCLUSIVE_ALL_REGISTRANTS || kind == EXCLUSIVE_ACCESS_ALL_REGISTRANTS
}

impl Persistent {
    /// No registration, no reservation, generation 0.
    pub const fn new() -> Self {
        Self {
            generation: AtomicU32::new(0),
            registered: AtomicU8::new(0),
            keys: [const { AtomicU64::new(0) }; MAX_PORTS as usize],
        }
    }

    fn key(&self, port: u8) -> u64 {
        self.keys[usize::from(port % MAX_PORTS)].load(Ordering::Relaxed)
    }

    fn is_registered(&self, port: u8) -> bool {
        self.registered.load(Ordering::Acquire) & bit(port) != 0
    }

    /// Whether `port` holds the reservation of `kind` held by `holder`.
    fn holds(&self, kind: u8, holder: u8, port: u8) -> bool {
        if is_all_registrants(kind) {
            self.is_registered(port)
        } else {
            holder == port % MAX_PORTS
        }
    }

    /// Removes the registration of `port`; a reservation it held alone goes with it.
    fn unregister(&self, port: u8, state: &StateWord) {
        self.registered.fetch_and(!bit(port), Ordering::AcqRel);
        if let Some((kind, holder)) = persistent_of(state.reservation()) {
            let released = if is_all_registrants(kind) {
                self.registered.load(Ordering::Acquire) == 0
            } else {
                holder == port % MAX_PORTS
            };
            if released {
                state.set_reservation(0);
            }
        }
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }
}

impl Disk {
    /// RESERVATION CONFLICT when a persistent reservation held by another `I_T` nexus bars
    /// `opcode` from `port` (rules in the module documentation).
    #[inline(never)] // reached only while a persistent reservation exists
    pub(crate) fn persistent_conflict(&self, opcode: u8, port: u8) -> Option<Outcome> {
        let pr = &self.persistent;
        let (kind, holder) = persistent_of(self.state.reservation())?;
        let registrants_have_access = kind >= WRITE_EXCLUSIVE_REGISTRANTS_ONLY;
        if pr.holds(kind, holder, port) || (registrants_have_access && pr.is_registered(port)) {
            return None;
        }
        let harmless = in_set(&HARMLESS, opcode);
        let read = in_set(&READS, opcode);
        let write_exclusive = matches!(
            kind,
            WRITE_EXCLUSIVE | WRITE_EXCLUSIVE_REGISTRANTS_ONLY | WRITE_EXCLUSIVE_ALL_REGISTRANTS
        );
        if harmless || (read && write_exclusive) {
            None
        } else {
            Some(conflict())
        }
    }

    /// PERSISTENT RESERVE IN (SPC-4): READ KEYS, READ RESERVATION, REPORT CAPABILITIES,
    /// READ FULL STATUS; other service actions are INVALID FIELD IN CDB.
    #[inline(never)]
    pub(crate) fn persistent_reserve_in<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        cdb: &Cdb,
        data: DataBuffer<'_>,
    ) -> Handled {
        let action = cdb.u8(1) & 0x1F;
        if action > 3 {
            return Err(SenseData::invalid_cdb_field(1, Some(4)));
        }
        let buf = match data_in(data) {
            Ok(buf) => buf,
            Err(outcome) => return Ok(outcome),
        };
        let allocation = usize::from(cdb.be16(7));
        store.with_unit_lock(&mut || Ok(self.read_reservations(action, buf, allocation)))
    }

    /// The parameter data of PERSISTENT RESERVE IN service action `action` (0 to 3), with
    /// the unit lock held.
    fn read_reservations(&self, action: u8, buf: &mut [u8], allocation: usize) -> Outcome {
        let pr = &self.persistent;
        let mut reply = Reply::new(buf, allocation);
        if action == 2 {
            // REPORT CAPABILITIES: LENGTH 8; TMV = 1, ALLOW COMMANDS 000b; the type mask.
            reply.bytes(&[0, 8, 0, 0x80]);
            reply.be16(TYPE_MASK);
            reply.zeros(2);
            return reply.finish();
        }
        let registered = pr.registered.load(Ordering::Acquire);
        let reservation = persistent_of(self.state.reservation());
        let count = registered.count_ones();
        let additional = match action {
            0 => 8 * count,
            1 => 16 * u32::from(reservation.is_some()),
            _ => 48 * count,
        };
        reply.be32(pr.generation.load(Ordering::Relaxed));
        reply.be32(additional);
        if action == 1 {
            if let Some((kind, holder)) = reservation {
                // READ RESERVATION: the holder's key (0 for all-registrants types), SCOPE 0.
                let key = if is_all_registrants(kind) {
                    0
                } else {
                    pr.key(holder)
                };
                let mut d = [0_u8; 16];
                d[..8].copy_from_slice(&key.to_be_bytes());
                d[13] = kind;
                reply.bytes(&d);
            }
            return reply.finish();
        }
        for port in 0..MAX_PORTS {
            if registered & bit(port) == 0 {
                continue;
            }
            let key = pr.key(port).to_be_bytes();
            if action == 0 {
                reply.bytes(&key);
                continue;
            }
            // READ FULL STATUS: the key, R_HOLDER and the reservation's SCOPE/TYPE, the
            // RELATIVE TARGET PORT IDENTIFIER, and a 24-byte TransportID that says only "no
            // specific protocol" (0Fh): the port is all vstor knows of the initiator.
            let held = reservation.filter(|&(kind, holder)| pr.holds(kind, holder, port));
            let mut d = [0_u8; 48];
            d[..8].copy_from_slice(&key);
            d[12] = u8::from(held.is_some());
            d[13] = held.map_or(0, |(kind, _)| kind);
            d[19] = port + 1;
            d[23] = 24;
            d[24] = 0x0F;
            reply.bytes(&d);
        }
        reply.finish()
    }

    /// PERSISTENT RESERVE OUT (SPC-4), basic parameter list of 24 bytes, copied once into a
    /// local buffer and decided on from the copy.
    #[inline(never)]
    pub(crate) fn persistent_reserve_out<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        cdb: &Cdb,
        data: DataBuffer<'_>,
        port: u8,
    ) -> Handled {
        let action = cdb.u8(1) & 0x1F;
        let scope_type = cdb.u8(2);
        let kind = scope_type & 0x0F;
        if action > 6 {
            // REGISTER AND MOVE and the reserved service actions.
            return Err(SenseData::invalid_cdb_field(1, Some(4)));
        }
        if cdb.be32(5) != PARAMETER_LIST_LENGTH {
            return Err(SenseData::illegal(asc::PARAMETER_LIST_LENGTH_ERROR));
        }
        let lent = match data_out(data) {
            Ok(lent) => lent,
            Err(outcome) => return Ok(outcome),
        };
        // The list is copied once and decided on from the copy: the whole 24 bytes, or what
        // the buffer holds of them (the fields used end at byte 20).
        let mut copy = [0u8; PARAMETER_LIST_BYTES];
        let held = lent.len().min(PARAMETER_LIST_BYTES);
        let list = copy.get_mut(..held).unwrap_or(&mut []);
        if !lent.copy_to(0, list) {
            return Ok(Outcome::data_overrun(0));
        }
        let list = &*list;
        let (Some(key), Some(new_key), Some(&flags)) =
            (param_be64(list, 0), param_be64(list, 8), list.get(20))
        else {
            return Ok(Outcome::data_overrun(0));
        };
        if flags & 0x0D != 0 {
            // SPEC_I_PT, ALL_TG_PT, APTPL are not supported.
            return Err(SenseData::invalid_parameter(20, None));
        }
        let reserving = matches!(action, 1 | 2 | 4 | 5);
        if reserving
            && (scope_type >> 4 != 0
                || !matches!(
                    kind,
                    WRITE_EXCLUSIVE
                        | EXCLUSIVE_ACCESS
                        | WRITE_EXCLUSIVE_REGISTRANTS_ONLY
                        | EXCLUSIVE_ACCESS_REGISTRANTS_ONLY
                        | WRITE_EXCLUSIVE_ALL_REGISTRANTS
                        | EXCLUSIVE_ACCESS_ALL_REGISTRANTS
                ))
        {
            return Err(SenseData::invalid_cdb_field(2, None));
        }
        let request = ReserveOut {
            action,
            kind,
            key,
            new_key,
            port,
        };
        store.with_unit_lock(&mut || self.change_reservations(request))
    }

    /// PERSISTENT RESERVE OUT's change, checked and made with the unit lock held.
    fn change_reservations(&self, request: ReserveOut) -> Handled {
        let ReserveOut {
            action,
            kind,
            key,
            new_key,
            port,
        } = request;
        let pr = &self.persistent;
        if is_spc2(self.state.reservation()) {
            // SPC-4: PERSISTENT RESERVE OUT meets an SPC-2 reservation with a conflict.
            return Ok(conflict());
        }
        let registered = pr.is_registered(port);
        let slot = &pr.keys[usize::from(port % MAX_PORTS)];
        if action == 0 || action == 6 {
            // REGISTER (with the key checked) and REGISTER AND IGNORE EXISTING KEY.
            let expected = if registered { pr.key(port) } else { 0 };
            if action == 0 && key != expected {
                return Ok(conflict());
            }
            if new_key == 0 {
                if registered {
                    pr.unregister(port, &self.state);
                    pr.bump();
                }
            } else {
                slot.store(new_key, Ordering::Relaxed);
                pr.registered.fetch_or(bit(port), Ordering::AcqRel);
                pr.bump();
            }
            return Ok(Outcome::good(0));
        }
        if !registered || key != pr.key(port) {
            return Ok(conflict());
        }
        let reservation = persistent_of(self.state.reservation());
        match action {
            1 => match reservation {
                None => self.state.set_reservation(reservation_word(kind, port)),
                Some((held, holder)) if held == kind && pr.holds(held, holder, port) => {}
                Some(_) => return Ok(conflict()),
            },
            2 => {
                if let Some((held, holder)) = reservation
                    && pr.holds(held, holder, port)
                {
                    if held != kind {
                        return Err(SenseData::illegal(asc::INVALID_RELEASE_OF_PR));
                    }
                    self.state.set_reservation(0);
                }
            }
            3 => {
                pr.registered.store(0, Ordering::Release);
                self.state.set_reservation(0);
                pr.bump();
            }
            _ => return self.preempt(port, kind, new_key, reservation),
        }
        Ok(Outcome::good(0))
    }

    /// PREEMPT / PREEMPT AND ABORT, with the lock held: removes the registrations with
    /// `victim` and, when the reservation holder's key is `victim` (or, for all-registrants
    /// types, `victim` is 0), takes over the reservation with type `kind`.
    fn preempt(&self, port: u8, kind: u8, victim: u64, reservation: Option<(u8, u8)>) -> Handled {
        let pr = &self.persistent;
        let holder_key = reservation.map(|(held, holder)| {
            if is_all_registrants(held) {
                0
            } else {
                pr.key(holder)
            }
        });
        let takes_reservation = holder_key == Some(victim);
        if victim == 0 && !takes_reservation {
            return Err(SenseData::invalid_parameter(8, None));
        }
        let registered = pr.registered.load(Ordering::Acquire);
        let mut removed = false;
        for other in 0..MAX_PORTS {
            // Every other registration when taking over an all-registrants reservation with
            // key 0; otherwise those with the victim's key. The preemptor keeps its own.
            let matches = victim == 0 || pr.key(other) == victim;
            if other != port % MAX_PORTS && registered & bit(other) != 0 && matches {
                pr.registered.fetch_and(!bit(other), Ordering::AcqRel);
                removed = true;
            }
        }
        if !removed && !takes_reservation {
            return Ok(conflict());
        }
        if takes_reservation {
            self.state.set_reservation(reservation_word(kind, port));
        }
        pr.bump();
        Ok(Outcome::good(0))
    }
}
