//! Full feature phase of one session (RFC 7143 §11).
//!
//! SCSI commands with Data-In, immediate data, R2T and Data-Out; NOP; task management; Text
//! (`SendTargets`); Logout. Commands run one at a time in `CmdSN` order;
//! PDUs that arrive while the target waits for a command's Data-Out are
//! queued (a bounded number) and handled after it.

use std::collections::VecDeque;
use std::net::TcpStream;

use storport_sys::{srb_function, srb_status};

use super::super::backend::{Backend, SCSI_CHECK_CONDITION, SCSI_GOOD, sense_triple};
use super::super::limits::Activity;
use super::login::LoggedIn;
use super::pdu::{Pdu, PduError, op, reject, sn_lt};
use super::text::{self, Params, Stage};
use super::{CMD_WINDOW, Ended, MAX_TASK_BYTES, Target};
use crate::port::{DataDirection, PortError, SrbResult};

/// PDUs held while a command waits for its Data-Out.
const MAX_QUEUED: usize = 2 * CMD_WINDOW as usize;
/// The reserved tag value.
const NO_TAG: u32 = 0xFFFF_FFFF;
/// SCSI status BUSY.
const SCSI_BUSY: u8 = 0x08;
/// SCSI status TASK ABORTED.
const SCSI_TASK_ABORTED: u8 = 0x40;
/// iSCSI response "Target Failure".
const TARGET_FAILURE: u8 = 0x01;

/// Task management functions and responses (RFC 7143 §11.5, §11.6).
mod tmf {
    pub const ABORT_TASK: u8 = 1;
    pub const LOGICAL_UNIT_RESET: u8 = 5;
    pub const TARGET_WARM_RESET: u8 = 6;
    pub const TARGET_COLD_RESET: u8 = 7;
    pub const COMPLETE: u8 = 0;
    pub const TASK_DOES_NOT_EXIST: u8 = 1;
    pub const LUN_DOES_NOT_EXIST: u8 = 2;
    pub const NOT_SUPPORTED: u8 = 5;
    pub const REJECTED: u8 = 255;
}

/// How a SCSI command ended, as the initiator sees it.
struct Outcome {
    response: u8,
    status: u8,
    sense: Vec<u8>,
    data: Vec<u8>,
}

/// One normal or discovery session on its connection.
pub struct Session<'a> {
    backend: &'a Backend,
    target: &'a Target,
    portal: &'a str,
    params: Params,
    stat_sn: u32,
    exp_cmd_sn: u32,
    queue: VecDeque<Pdu>,
    next_ttt: u32,
    /// Every LUN is at bus 0, target 0: iSCSI LUN n is the miniport's LUN n.
    direct_luns: bool,
    /// The target port (index into the layout's buses) of this session; `None` for a
    /// discovery session and once given back.
    port: Option<usize>,
    /// What the listener sees of this connection (PDUs received, commands running).
    activity: &'a Activity,
}

fn protocol_error(message: impl Into<String>) -> Ended {
    Ended::ProtocolError(message.into())
}

fn io_error(error: &std::io::Error) -> Ended {
    protocol_error(format!("the connection failed: {error}"))
}

/// Bytes a READ/WRITE-type CDB itself asks to move, when its length is in the CDB.
fn cdb_transfer_bytes(cdb: &[u8], block_size: u32) -> Option<u64> {
    let be = |range: std::ops::Range<usize>| -> u64 {
        cdb.get(range).map_or(0, |b| {
            b.iter().fold(0_u64, |acc, &x| acc << 8 | u64::from(x))
        })
    };
    let block = u64::from(block_size);
    let blocks = match *cdb.first()? {
        // READ(6)/WRITE(6): 0 means 256 blocks.
        0x08 | 0x0A => match cdb.get(4)? {
            0 => 256,
            &n => u64::from(n),
        },
        0x28 | 0x2A | 0x2E => be(7..9),
        0xA8 | 0xAA | 0xAE => be(6..10),
        0x88 | 0x8A | 0x8E => be(10..14),
        // COMPARE AND WRITE: verify and write data.
        0x89 => 2 * u64::from(*cdb.get(13)?),
        // VERIFY with BYTCHK 01b (01b: the blocks; 11b: one block).
        0x2F | 0xAF | 0x8F => {
            let count = match cdb[0] {
                0x2F => be(7..9),
                0xAF => be(6..10),
                _ => be(10..14),
            };
            match (cdb.get(1)? >> 1) & 3 {
                0 => 0,
                3 => u64::from(count > 0),
                _ => count,
            }
        }
        // WRITE SAME: one block, none with NDOB.
        0x41 | 0x93 => u64::from(cdb.get(1)? & 0x01 == 0),
        _ => return None,
    };
    Some(blocks * block)
}

/// A WRITE (10/12/16) or WRITE AND VERIFY CDB moving only `blocks` blocks.
fn shorten_write(cdb: &[u8], blocks: usize) -> Option<Vec<u8>> {
    let mut shorter = cdb.to_vec();
    match *cdb.first()? {
        0x2A | 0x2E => shorter
            .get_mut(7..9)?
            .copy_from_slice(&u16::try_from(blocks).ok()?.to_be_bytes()),
        0xAA | 0xAE => shorter
            .get_mut(6..10)?
            .copy_from_slice(&u32::try_from(blocks).ok()?.to_be_bytes()),
        0x8A | 0x8E => shorter
            .get_mut(10..14)?
            .copy_from_slice(&u32::try_from(blocks).ok()?.to_be_bytes()),
        _ => return None,
    }
    Some(shorter)
}

/// Where a READ/WRITE CDB keeps its LBA and transfer length.
#[derive(Clone)]
struct LbaFields {
    lba: std::ops::Range<usize>,
    count: std::ops::Range<usize>,
}

impl LbaFields {
    fn read_lba(&self, cdb: &[u8]) -> u64 {
        cdb[self.lba.clone()]
            .iter()
            .fold(0, |acc, &b| acc << 8 | u64::from(b))
    }

    fn with(&self, cdb: &[u8], lba: u64, count: u64) -> Vec<u8> {
        let mut piece = cdb.to_vec();
        let lba_bytes = lba.to_be_bytes();
        let lba_width = self.lba.len();
        piece[self.lba.clone()].copy_from_slice(&lba_bytes[8 - lba_width..]);
        let count_bytes = count.to_be_bytes();
        let count_width = self.count.len();
        piece[self.count.clone()].copy_from_slice(&count_bytes[8 - count_width..]);
        piece
    }
}

/// The LBA and length fields of READ/WRITE (10/12/16), the commands the
/// disk class driver splits at the adapter's maximum transfer length.
const fn lba_fields(cdb: &[u8]) -> Option<LbaFields> {
    let Some(&opcode) = cdb.first() else {
        return None;
    };
    match opcode {
        0x28 | 0x2A if cdb.len() >= 10 => Some(LbaFields {
            lba: 2..6,
            count: 7..9,
        }),
        0xA8 | 0xAA if cdb.len() >= 12 => Some(LbaFields {
            lba: 2..6,
            count: 6..10,
        }),
        0x88 | 0x8A if cdb.len() >= 16 => Some(LbaFields {
            lba: 2..10,
            count: 10..14,
        }),
        _ => None,
    }
}

/// The data phase a command defines.
enum Direction {
    In,
    Out,
}

/// The data direction of the block commands whose direction this target
/// must know to frame a mismatched task (READ flagged as a write, ...).
const fn cdb_direction(opcode: u8) -> Option<Direction> {
    match opcode {
        0x08 | 0x28 | 0xA8 | 0x88 => Some(Direction::In),
        0x0A | 0x2A | 0xAA | 0x8A | 0x2E | 0xAE | 0x8E | 0x41 | 0x93 | 0x89 => Some(Direction::Out),
        _ => None,
    }
}

/// Fixed-format sense data (SPC-4 §4.5.3) with `key`, `asc` and `ascq`.
fn fixed_sense(key: u8, asc: u8, ascq: u8) -> Vec<u8> {
    let mut sense = vec![0_u8; 18];
    sense[0] = 0x70;
    sense[2] = key;
    sense[7] = 10;
    sense[12] = asc;
    sense[13] = ascq;
    sense
}

/// The length of a CDB from its group code (SPC-4 §4.2.5.1).
const fn cdb_length(opcode: u8) -> usize {
    match opcode >> 5 {
        0 => 6,
        1 | 2 => 10,
        5 => 12,
        _ => 16,
    }
}

impl<'a> Session<'a> {
    /// A session after login.
    #[must_use]
    pub fn new(
        backend: &'a Backend,
        target: &'a Target,
        portal: &'a str,
        login: LoggedIn,
        activity: &'a Activity,
    ) -> Self {
        let direct_luns = backend
            .luns()
            .iter()
            .all(|l| l.address.0 == 0 && l.address.1 == 0);
        let port = (!login.params.discovery).then(|| target.ports.acquire(backend));
        Self {
            backend,
            target,
            portal,
            params: login.params,
            stat_sn: login.stat_sn,
            exp_cmd_sn: login.exp_cmd_sn,
            queue: VecDeque::new(),
            next_ttt: 1,
            direct_luns,
            port,
            activity,
        }
    }

    const fn max_cmd_sn(&self) -> u32 {
        self.exp_cmd_sn.wrapping_add(CMD_WINDOW - 1)
    }

    /// Fills `StatSN` (advancing it when `advance`), `ExpCmdSN` and `MaxCmdSN`.
    fn sequence(&mut self, pdu: &mut Pdu, advance: bool) {
        pdu.set_u32(24, self.stat_sn);
        if advance {
            self.stat_sn = self.stat_sn.wrapping_add(1);
        }
        pdu.set_u32(28, self.exp_cmd_sn);
        pdu.set_u32(32, self.max_cmd_sn());
    }

    fn send(stream: &mut TcpStream, pdu: &mut Pdu) -> Result<(), Ended> {
        pdu.write(stream).map_err(|e| io_error(&e))
    }

    fn reject(&mut self, stream: &mut TcpStream, rejected: &Pdu, reason: u8) -> Result<(), Ended> {
        let mut pdu = Pdu::new(op::REJECT);
        pdu.bhs[2] = reason;
        pdu.set_u32(16, NO_TAG);
        self.sequence(&mut pdu, true);
        pdu.data = rejected.bhs.to_vec();
        Self::send(stream, &mut pdu)
    }

    fn next_pdu(&mut self, stream: &mut TcpStream) -> Result<Pdu, Ended> {
        if let Some(pdu) = self.queue.pop_front() {
            return Ok(pdu);
        }
        self.read(stream)
    }

    fn read(&self, stream: &mut TcpStream) -> Result<Pdu, Ended> {
        match Pdu::read(stream, text::TARGET_MAX_RECV_DATA_SEGMENT as usize) {
            Ok(pdu) => {
                self.activity.received();
                Ok(pdu)
            }
            Err(PduError::Closed) => Err(Ended::Closed),
            Err(e) => Err(protocol_error(e.to_string())),
        }
    }

    /// Accepts the `CmdSN` of a non-immediate command; `false`: outside the
    /// window, so the PDU is dropped (RFC 7143 §3.2.2.1).
    const fn accept_cmd_sn(&mut self, pdu: &Pdu) -> bool {
        if pdu.immediate() {
            return true;
        }
        let cmd_sn = pdu.u32_at(24);
        if sn_lt(cmd_sn, self.exp_cmd_sn) || sn_lt(self.max_cmd_sn(), cmd_sn) {
            return false;
        }
        self.exp_cmd_sn = cmd_sn.wrapping_add(1);
        true
    }

    /// Serves the session until logout, close or a protocol error.
    pub fn run(mut self, stream: &mut TcpStream) -> Ended {
        loop {
            let pdu = match self.next_pdu(stream) {
                Ok(pdu) => pdu,
                Err(ended) => return ended,
            };
            match self.dispatch(stream, &pdu) {
                Ok(true) => {}
                Ok(false) => return Ended::Closed,
                Err(ended) => return ended,
            }
        }
    }

    /// Handles one PDU; `Ok(false)` ends the session cleanly.
    fn dispatch(&mut self, stream: &mut TcpStream, pdu: &Pdu) -> Result<bool, Ended> {
        let opcode = pdu.opcode();
        let discovery = self.params.discovery;
        match opcode {
            op::NOP_OUT => self.nop(stream, pdu).map(|()| true),
            op::TEXT => self.text(stream, pdu).map(|()| true),
            op::LOGOUT => self.logout(stream, pdu).map(|()| false),
            op::SCSI_COMMAND if !discovery => self.scsi_command(stream, pdu).map(|()| true),
            op::TASK_MANAGEMENT if !discovery => self.task_management(stream, pdu),
            op::SNACK => {
                // ErrorRecoveryLevel 0: SNACK is not supported.
                self.reject(stream, pdu, reject::COMMAND_NOT_SUPPORTED)?;
                Ok(true)
            }
            op::DATA_OUT => {
                let _ = self.reject(stream, pdu, reject::PROTOCOL_ERROR);
                Err(protocol_error(format!(
                    "Data-Out for task {:#x} arrived without an outstanding R2T",
                    pdu.itt()
                )))
            }
            _ => {
                let _ = self.reject(stream, pdu, reject::PROTOCOL_ERROR);
                Err(protocol_error(format!(
                    "opcode {opcode:#04x} is not valid in {} session's full feature phase",
                    if discovery { "a discovery" } else { "a normal" }
                )))
            }
        }
    }

    fn nop(&mut self, stream: &mut TcpStream, pdu: &Pdu) -> Result<(), Ended> {
        if !self.accept_cmd_sn(pdu) {
            return Ok(());
        }
        if pdu.itt() == NO_TAG {
            // A ping answer or a no-reply NOP-Out.
            return Ok(());
        }
        let mut reply = Pdu::new(op::NOP_IN);
        reply.bhs[8..16].copy_from_slice(&pdu.bhs[8..16]);
        reply.set_u32(16, pdu.itt());
        reply.set_u32(20, NO_TAG);
        self.sequence(&mut reply, true);
        let echo = pdu.data.len().min(self.params.initiator_max_recv as usize);
        reply.data = pdu.data[..echo].to_vec();
        Self::send(stream, &mut reply)
    }

    fn text(&mut self, stream: &mut TcpStream, pdu: &Pdu) -> Result<(), Ended> {
        if !self.accept_cmd_sn(pdu) {
            return Ok(());
        }
        if pdu.bhs[1] & 0x40 != 0 {
            let _ = self.reject(stream, pdu, reject::PROTOCOL_ERROR);
            return Err(protocol_error(
                "continued Text requests are not supported by this target",
            ));
        }
        let keys = text::parse(&pdu.data);
        let mut answer = Vec::new();
        for (key, value) in &keys {
            if key == "SendTargets" {
                let wanted = value.as_deref().unwrap_or("");
                if wanted == "All" || wanted.is_empty() || wanted == self.target.name {
                    text::push(&mut answer, "TargetName", &self.target.name);
                    text::push(&mut answer, "TargetAddress", &format!("{},1", self.portal));
                }
            }
        }
        let others: Vec<_> = keys
            .into_iter()
            .filter(|(k, _)| k != "SendTargets")
            .collect();
        answer.extend(text::negotiate(&others, &mut self.params, Stage::FullFeature).answer);
        let mut reply = Pdu::new(op::TEXT_RESPONSE);
        reply.set_u32(16, pdu.itt());
        reply.set_u32(20, NO_TAG);
        self.sequence(&mut reply, true);
        if answer.len() > self.params.initiator_max_recv as usize {
            return Err(protocol_error(
                "the Text response does not fit the initiator's MaxRecvDataSegmentLength",
            ));
        }
        reply.data = answer;
        Self::send(stream, &mut reply)
    }

    /// Gives the session's port back (see [`super::ports`]): before the Logout Response,
    /// so the initiator's next login finds the port reset.
    fn release_port(&mut self) {
        if let Some(port) = self.port.take() {
            self.target.ports.release(self.backend, port);
        }
    }

    fn logout(&mut self, stream: &mut TcpStream, pdu: &Pdu) -> Result<(), Ended> {
        let _ = self.accept_cmd_sn(pdu);
        self.release_port();
        let reason = pdu.bhs[1] & 0x7F;
        let mut reply = Pdu::new(op::LOGOUT_RESPONSE);
        // Reason 2 (remove the connection for recovery) needs ErrorRecoveryLevel 2.
        reply.bhs[2] = if reason == 2 { 2 } else { 0 };
        reply.set_u32(16, pdu.itt());
        self.sequence(&mut reply, true);
        Self::send(stream, &mut reply)
    }

    /// The miniport address of the 8-byte LUN field, when it names one.
    fn address(&self, field: [u8; 8]) -> Option<(u8, u8, u8)> {
        let number: u16 = match field[0] >> 6 {
            // Peripheral device addressing: bus 0 only.
            0 if field[0].trailing_zeros() >= 6 => u16::from(field[1]),
            // Flat space addressing.
            1 => u16::from(field[0] & 0x3F) << 8 | u16::from(field[1]),
            _ => return None,
        };
        if self.direct_luns {
            u8::try_from(number).ok().map(|lun| (0, 0, lun))
        } else {
            self.target
                .ports
                .layout(self.backend)
                .address(usize::from(number), self.port.unwrap_or(0))
        }
    }

    fn block_size(&self, address: (u8, u8, u8)) -> u32 {
        self.backend
            .luns()
            .iter()
            .find(|l| l.address == address)
            .map_or(0, |l| l.block_size)
    }

    /// Collects `expected` bytes of write data: immediate data, then R2T and Data-Out.
    fn collect_data_out(
        &mut self,
        stream: &mut TcpStream,
        command: &Pdu,
        expected: u32,
        r2t_count: &mut u32,
    ) -> Result<Vec<u8>, Ended> {
        let mut data = command.data.clone();
        if data.len() > expected as usize
            || (!data.is_empty() && !self.params.immediate_data)
            || data.len() > self.params.first_burst as usize
        {
            let _ = self.reject(stream, command, reject::PROTOCOL_ERROR);
            return Err(protocol_error(format!(
                "task {:#x} carries {} bytes of immediate data; {expected} expected, first burst {}",
                command.itt(),
                data.len(),
                self.params.first_burst
            )));
        }
        // The buffer grows with the Data-Out that arrives, never from the
        // expected length alone.
        while data.len() < expected as usize {
            let offset = u32::try_from(data.len()).unwrap_or(u32::MAX);
            let desired = (expected - offset).min(self.params.max_burst);
            let ttt = self.next_ttt;
            self.next_ttt = self.next_ttt.wrapping_add(1).max(1);
            let mut r2t = Pdu::new(op::R2T);
            r2t.bhs[8..16].copy_from_slice(&command.bhs[8..16]);
            r2t.set_u32(16, command.itt());
            r2t.set_u32(20, ttt);
            self.sequence(&mut r2t, false);
            r2t.set_u32(36, *r2t_count);
            r2t.set_u32(40, offset);
            r2t.set_u32(44, desired);
            Self::send(stream, &mut r2t)?;
            *r2t_count += 1;
            let end = offset as usize + desired as usize;
            let mut data_sn = 0_u32;
            loop {
                let pdu = self.read(stream)?;
                if pdu.opcode() != op::DATA_OUT {
                    if self.queue.len() >= MAX_QUEUED {
                        return Err(protocol_error(format!(
                            "more than {MAX_QUEUED} PDUs arrived while task {:#x} waited for its Data-Out",
                            command.itt()
                        )));
                    }
                    self.queue.push_back(pdu);
                    continue;
                }
                let buffer_offset = pdu.u32_at(40) as usize;
                if pdu.itt() != command.itt()
                    || pdu.u32_at(20) != ttt
                    || buffer_offset != data.len()
                    || data.len() + pdu.data.len() > end
                    || pdu.u32_at(36) != data_sn
                {
                    let _ = self.reject(stream, &pdu, reject::PROTOCOL_ERROR);
                    return Err(protocol_error(format!(
                        "Data-Out (task {:#x}, TTT {:#x}, DataSN {}, offset {buffer_offset}, {} bytes) does not continue R2T {ttt:#x} of task {:#x} at offset {} (DataSN {data_sn}, burst end {end})",
                        pdu.itt(),
                        pdu.u32_at(20),
                        pdu.u32_at(36),
                        pdu.data.len(),
                        command.itt(),
                        data.len()
                    )));
                }
                data.extend_from_slice(&pdu.data);
                data_sn = data_sn.wrapping_add(1);
                if pdu.is_final() {
                    if data.len() != end {
                        let _ = self.reject(stream, &pdu, reject::PROTOCOL_ERROR);
                        return Err(protocol_error(format!(
                            "the Data-Out sequence of task {:#x} ended at offset {} before the burst end {end}",
                            command.itt(),
                            data.len()
                        )));
                    }
                    break;
                }
            }
        }
        Ok(data)
    }

    /// REQUEST SENSE to the miniport, as Storport issues it when a CHECK
    /// CONDITION comes without autosense data.
    fn request_sense(&self, address: (u8, u8, u8)) -> Result<Vec<u8>, PortError> {
        let result =
            self.backend
                .execute(address, &[0x03, 0, 0, 0, 252, 0], &DataDirection::In(252))?;
        Ok(if super::super::backend::succeeded(&result) {
            result.data
        } else {
            Vec::new()
        })
    }

    /// Maps an SRB result to what the initiator sees, as a port driver would.
    fn outcome(
        &self,
        address: (u8, u8, u8),
        result: SrbResult,
        sent: Option<usize>,
    ) -> Result<Outcome, PortError> {
        let fixed = fixed_sense;
        let check = |sense: Vec<u8>| Outcome {
            response: 0,
            status: SCSI_CHECK_CONDITION,
            sense,
            data: Vec::new(),
        };
        let good = |data: Vec<u8>| Outcome {
            response: 0,
            status: SCSI_GOOD,
            sense: Vec::new(),
            data,
        };
        Ok(match result.status() {
            // A data-out SRB the miniport did not take whole: the initiator
            // sent less than the command transfers (FCP-4 b: INVALID FIELD
            // IN COMMAND INFORMATION UNIT, nothing written).
            srb_status::DATA_OVERRUN
                if result.scsi_status == SCSI_GOOD
                    && sent.is_some_and(|n| (result.transferred as usize) < n || n == 0) =>
            {
                check(fixed(0x05, 0x0E, 0x03))
            }
            srb_status::SUCCESS => good(result.data),
            srb_status::DATA_OVERRUN if result.scsi_status == SCSI_GOOD => good(result.data),
            _ if result.scsi_status == SCSI_CHECK_CONDITION => {
                let sense = if sense_triple(&result.sense).is_some() {
                    result.sense
                } else {
                    self.request_sense(address)?
                };
                Outcome {
                    data: result.data,
                    ..check(sense)
                }
            }
            srb_status::ERROR if result.scsi_status != SCSI_GOOD => Outcome {
                response: 0,
                status: result.scsi_status,
                sense: Vec::new(),
                data: result.data,
            },
            srb_status::BUSY => Outcome {
                response: 0,
                status: SCSI_BUSY,
                sense: Vec::new(),
                data: Vec::new(),
            },
            srb_status::ABORTED | srb_status::BUS_RESET => Outcome {
                response: 0,
                status: SCSI_TASK_ABORTED,
                sense: Vec::new(),
                data: Vec::new(),
            },
            // LOGICAL UNIT NOT SUPPORTED.
            srb_status::INVALID_LUN
            | srb_status::NO_DEVICE
            | srb_status::SELECTION_TIMEOUT
            | srb_status::INVALID_TARGET_ID
            | srb_status::INVALID_PATH_ID => check(fixed(0x05, 0x25, 0x00)),
            // INVALID COMMAND OPERATION CODE.
            srb_status::INVALID_REQUEST | srb_status::BAD_FUNCTION => {
                check(fixed(0x05, 0x20, 0x00))
            }
            _ => Outcome {
                response: TARGET_FAILURE,
                status: 0,
                sense: Vec::new(),
                data: Vec::new(),
            },
        })
    }

    fn scsi_command(&mut self, stream: &mut TcpStream, pdu: &Pdu) -> Result<(), Ended> {
        if !self.accept_cmd_sn(pdu) {
            return Ok(());
        }
        let reads = pdu.bhs[1] & 0x40 != 0;
        let writes = pdu.bhs[1] & 0x20 != 0;
        let expected = pdu.u32_at(20);
        let mut cdb = pdu.bhs[32..48].to_vec();
        // An Extended CDB AHS (type 1) carries the bytes after the 16th.
        if pdu.ahs.len() >= 4 && pdu.ahs[2] == 1 {
            let length = usize::from(u16::from_be_bytes([pdu.ahs[0], pdu.ahs[1]]));
            let extra = length.saturating_sub(1).min(pdu.ahs.len() - 4);
            cdb.extend_from_slice(&pdu.ahs[4..4 + extra]);
        } else {
            cdb.truncate(cdb_length(cdb[0]));
        }
        if expected > MAX_TASK_BYTES || (reads && writes) || (!writes && !pdu.data.is_empty()) {
            return self.respond_failure(stream, pdu, expected);
        }
        let mut r2t_count = 0;
        let out_data = if writes {
            Some(self.collect_data_out(stream, pdu, expected, &mut r2t_count)?)
        } else {
            None
        };
        // All data is in: running until answered, not idle.
        let activity = self.activity;
        let _running = activity.running();
        let Some(address) = self.address(pdu.lun_field()) else {
            let mut sense = vec![0_u8; 18];
            sense[0] = 0x70;
            sense[2] = 0x05;
            sense[7] = 10;
            sense[12] = 0x25;
            let outcome = Outcome {
                response: 0,
                status: SCSI_CHECK_CONDITION,
                sense,
                data: Vec::new(),
            };
            return self.respond(stream, pdu, expected, None, outcome, r2t_count);
        };
        let needed = cdb_transfer_bytes(&cdb, self.block_size(address));
        // The SRB's direction is the command's (SAM: the CDB defines the
        // data phase); the task attribute bits only frame the transfer.
        let read_buffer = || {
            // The miniport gets the buffer the CDB asks for (within the
            // cap); the initiator gets what fits its expected length.
            let wanted = needed
                .map_or_else(|| u64::from(expected), |n| n.max(u64::from(expected)))
                .min(u64::from(MAX_TASK_BYTES));
            DataDirection::In(usize::try_from(wanted).unwrap_or(0))
        };
        let direction = match (cdb_direction(cdb[0]), out_data) {
            (Some(Direction::In), _) => read_buffer(),
            (Some(Direction::Out), None) => DataDirection::Out(Vec::new()),
            (_, Some(mut data)) => {
                // Data beyond what the CDB transfers is residual, not payload.
                if let Some(wanted) = needed.and_then(|n| usize::try_from(n).ok()) {
                    data.truncate(wanted);
                    let block = self.block_size(address) as usize;
                    if data.len() < wanted && block > 0 {
                        if !data.len().is_multiple_of(block) {
                            // Part of a block arrived: a block device
                            // cannot write it, and GOOD would report bytes
                            // written that were not. FCP-4 (b): CHECK
                            // CONDITION, nothing written.
                            let outcome = Outcome {
                                response: 0,
                                status: SCSI_CHECK_CONDITION,
                                sense: fixed_sense(0x05, 0x0E, 0x03),
                                data: Vec::new(),
                            };
                            return self.respond(stream, pdu, expected, needed, outcome, r2t_count);
                        }
                        // Whole blocks arrived: FCP-4 (a), the command runs
                        // for those blocks (none when none was sent).
                        if let Some(shorter) = shorten_write(&cdb, data.len() / block) {
                            cdb = shorter;
                        }
                    }
                }
                DataDirection::Out(data)
            }
            (None, None) if reads => read_buffer(),
            (None, None) => DataDirection::None,
        };
        let direction = match direction {
            DataDirection::In(0) => DataDirection::None,
            other => other,
        };
        let sent = match &direction {
            DataDirection::Out(data) => Some(data.len()),
            _ => None,
        };
        let result = self.execute_split(address, &cdb, &direction);
        let outcome = match result.and_then(|r| self.outcome(address, r, sent)) {
            Ok(outcome) => outcome,
            Err(error) => {
                self.respond_failure(stream, pdu, expected)?;
                return Err(protocol_error(format!(
                    "the adapter can no longer serve requests: {error}"
                )));
            }
        };
        self.respond(stream, pdu, expected, needed, outcome, r2t_count)
    }

    /// Sends the command as the disk class driver would: READ and WRITE
    /// (10/12/16) larger than the adapter's `MaximumTransferLength` go to
    /// the miniport as consecutive pieces; the first piece that does not
    /// succeed ends the command with its status.
    fn execute_split(
        &self,
        address: (u8, u8, u8),
        cdb: &[u8],
        direction: &DataDirection,
    ) -> Result<SrbResult, PortError> {
        let block = u64::from(self.block_size(address));
        let max_blocks = u64::from(self.backend.max_transfer_bytes()) / block.max(1);
        let (Some(needed), Some(field)) = (cdb_transfer_bytes(cdb, 512), lba_fields(cdb)) else {
            return self.backend.execute(address, cdb, direction);
        };
        let blocks = needed / 512;
        let buffer_blocks = match direction {
            DataDirection::In(n) => *n as u64 / block.max(1),
            DataDirection::Out(data) => data.len() as u64 / block.max(1),
            DataDirection::None => 0,
        };
        if block == 0 || max_blocks == 0 || blocks <= max_blocks || buffer_blocks < blocks {
            return self.backend.execute(address, cdb, direction);
        }
        let lba = field.read_lba(cdb);
        let capacity = self
            .backend
            .luns()
            .iter()
            .find(|l| l.address == address)
            .map_or(0, |l| l.blocks);
        if lba.checked_add(blocks).is_none_or(|end| end > capacity) {
            // Out of range: the miniport rejects the whole command.
            return self.backend.execute(address, cdb, direction);
        }
        let mut data = Vec::new();
        let mut done = 0;
        let mut last = None;
        while done < blocks {
            let count = max_blocks.min(blocks - done);
            let piece = field.with(cdb, lba + done, count);
            let bytes = usize::try_from(count * block).unwrap_or(0);
            let start = usize::try_from(done * block).unwrap_or(0);
            let part = match direction {
                DataDirection::Out(all) => DataDirection::Out(all[start..start + bytes].to_vec()),
                _ => DataDirection::In(bytes),
            };
            let result = self.backend.execute(address, &piece, &part)?;
            if result.status() != srb_status::SUCCESS {
                return Ok(result);
            }
            data.extend_from_slice(&result.data);
            done += count;
            last = Some(result);
        }
        Ok(last.map_or_else(
            || SrbResult {
                srb_status: srb_status::SUCCESS,
                scsi_status: SCSI_GOOD,
                sense: Vec::new(),
                data: Vec::new(),
                transferred: 0,
            },
            |r| SrbResult {
                transferred: u32::try_from(data.len()).unwrap_or(u32::MAX),
                data,
                ..r
            },
        ))
    }

    fn respond_failure(
        &mut self,
        stream: &mut TcpStream,
        pdu: &Pdu,
        expected: u32,
    ) -> Result<(), Ended> {
        let outcome = Outcome {
            response: TARGET_FAILURE,
            status: 0,
            sense: Vec::new(),
            data: Vec::new(),
        };
        self.respond(stream, pdu, expected, None, outcome, 0)
    }

    /// Sends Data-In (status piggybacked when GOOD) and/or the SCSI Response.
    fn respond(
        &mut self,
        stream: &mut TcpStream,
        pdu: &Pdu,
        expected: u32,
        needed: Option<u64>,
        outcome: Outcome,
        r2t_count: u32,
    ) -> Result<(), Ended> {
        let reads = pdu.bhs[1] & 0x40 != 0;
        let writes = pdu.bhs[1] & 0x20 != 0;
        let mut data = if reads { outcome.data } else { Vec::new() };
        // What the command moved (or would have), against what the initiator expected.
        let moved = if writes {
            needed.unwrap_or_else(|| u64::from(expected))
        } else if outcome.response == 0 {
            needed.map_or(data.len() as u64, |n| {
                if outcome.status == SCSI_GOOD {
                    n.max(data.len() as u64)
                } else {
                    data.len() as u64
                }
            })
        } else {
            0
        };
        let expected64 = u64::from(expected);
        let (residual_flag, residual) = match moved.cmp(&expected64) {
            std::cmp::Ordering::Greater => (0x04_u8, moved - expected64),
            std::cmp::Ordering::Less => (0x02_u8, expected64 - moved),
            std::cmp::Ordering::Equal => (0, 0),
        };
        let residual = u32::try_from(residual).unwrap_or(u32::MAX);
        data.truncate(expected as usize);
        let mut pdus_sent = 0_u32;
        let piggyback = outcome.response == 0 && outcome.status == SCSI_GOOD && !data.is_empty();
        if !data.is_empty() {
            let segment = self.params.initiator_max_recv.max(512) as usize;
            let burst = self.params.max_burst.max(512) as usize;
            let mut offset = 0;
            while offset < data.len() {
                let burst_end = (offset / burst + 1) * burst;
                let stop = (offset + segment).min(data.len()).min(burst_end);
                let last = stop == data.len();
                let mut data_in = Pdu::new(op::DATA_IN);
                data_in.bhs[1] = if last || stop == burst_end { 0x80 } else { 0 };
                data_in.set_u32(16, pdu.itt());
                data_in.set_u32(20, NO_TAG);
                if last && piggyback {
                    data_in.bhs[1] |= 0x01 | residual_flag;
                    data_in.bhs[3] = SCSI_GOOD;
                    self.sequence(&mut data_in, true);
                    data_in.set_u32(44, residual);
                } else {
                    self.sequence(&mut data_in, false);
                    data_in.set_u32(24, 0);
                }
                data_in.set_u32(36, pdus_sent);
                data_in.set_u32(40, u32::try_from(offset).unwrap_or(0));
                data_in.data = data[offset..stop].to_vec();
                Self::send(stream, &mut data_in)?;
                pdus_sent += 1;
                offset = stop;
            }
            if piggyback {
                return Ok(());
            }
        }
        let mut response = Pdu::new(op::SCSI_RESPONSE);
        response.bhs[1] = 0x80
            | if outcome.response == 0 {
                residual_flag
            } else {
                0
            };
        response.bhs[2] = outcome.response;
        response.bhs[3] = outcome.status;
        response.set_u32(16, pdu.itt());
        self.sequence(&mut response, true);
        response.set_u32(36, pdus_sent + r2t_count);
        if outcome.response == 0 {
            response.set_u32(44, residual);
        }
        if !outcome.sense.is_empty() {
            let length = u16::try_from(outcome.sense.len()).unwrap_or(0);
            response.data = length.to_be_bytes().to_vec();
            response.data.extend_from_slice(&outcome.sense);
        }
        Self::send(stream, &mut response)
    }

    /// Task management; `Ok(false)` after a cold reset, which ends the connection.
    fn task_management(&mut self, stream: &mut TcpStream, pdu: &Pdu) -> Result<bool, Ended> {
        if !self.accept_cmd_sn(pdu) {
            return Ok(true);
        }
        let activity = self.activity;
        let _running = activity.running();
        let function = pdu.bhs[1] & 0x7F;
        let address = self.address(pdu.lun_field());
        let response = match function {
            tmf::ABORT_TASK => {
                let referenced = pdu.u32_at(20);
                let queued = self
                    .queue
                    .iter()
                    .position(|p| p.opcode() == op::SCSI_COMMAND && p.itt() == referenced);
                match (address, queued) {
                    (None, _) => tmf::LUN_DOES_NOT_EXIST,
                    (Some(address), Some(index)) => {
                        self.queue.remove(index);
                        self.submit(address, srb_function::ABORT_COMMAND)?;
                        tmf::COMPLETE
                    }
                    (Some(address), None) => {
                        // Already completed (commands run in order): the
                        // miniport is still told, as Storport would.
                        self.submit(address, srb_function::ABORT_COMMAND)?;
                        tmf::TASK_DOES_NOT_EXIST
                    }
                }
            }
            tmf::LOGICAL_UNIT_RESET => match address {
                // The field may decode to an address the miniport has no
                // logical unit at: that LUN does not exist either.
                None => tmf::LUN_DOES_NOT_EXIST,
                Some(address) if !self.backend.luns().iter().any(|l| l.address == address) => {
                    tmf::LUN_DOES_NOT_EXIST
                }
                Some(address) => {
                    let lun = pdu.lun_field();
                    self.queue
                        .retain(|p| p.opcode() != op::SCSI_COMMAND || p.lun_field() != lun);
                    let result = self.submit(address, srb_function::RESET_LOGICAL_UNIT)?;
                    if result.status() == srb_status::SUCCESS {
                        tmf::COMPLETE
                    } else {
                        tmf::REJECTED
                    }
                }
            },
            tmf::TARGET_WARM_RESET | tmf::TARGET_COLD_RESET => {
                self.queue.retain(|p| p.opcode() != op::SCSI_COMMAND);
                let mut buses: Vec<u8> = self.backend.luns().iter().map(|l| l.address.0).collect();
                buses.sort_unstable();
                buses.dedup();
                let mut reset = true;
                for bus in buses {
                    reset &= self
                        .backend
                        .port()
                        .reset_bus(bus)
                        .map_err(|e| protocol_error(format!("HwResetBus failed: {e}")))?;
                }
                if reset { tmf::COMPLETE } else { tmf::REJECTED }
            }
            _ => tmf::NOT_SUPPORTED,
        };
        let mut reply = Pdu::new(op::TASK_MANAGEMENT_RESPONSE);
        reply.bhs[2] = response;
        reply.set_u32(16, pdu.itt());
        self.sequence(&mut reply, true);
        Self::send(stream, &mut reply)?;
        Ok(!(function == tmf::TARGET_COLD_RESET && response == tmf::COMPLETE))
    }

    fn submit(&self, address: (u8, u8, u8), function: u8) -> Result<SrbResult, Ended> {
        self.backend
            .port()
            .submit(address, function, &[], &DataDirection::None)
            .map_err(|e| protocol_error(format!("the adapter can no longer serve requests: {e}")))
    }
}

impl Drop for Session<'_> {
    /// A connection that ends without Logout (`I_T` nexus loss) gives its port back too.
    fn drop(&mut self) {
        self.release_port();
    }
}

#[cfg(test)]
mod tests {
    use super::{cdb_length, cdb_transfer_bytes, lba_fields, shorten_write};

    #[test]
    fn transfer_lengths_come_from_the_cdb() {
        // READ(10) of 3 blocks, WRITE(16) of 0x10000 blocks, READ(6) of "0" = 256.
        assert_eq!(
            cdb_transfer_bytes(&[0x28, 0, 0, 0, 0, 9, 0, 0, 3, 0], 512),
            Some(1536)
        );
        let mut write16 = [0_u8; 16];
        write16[0] = 0x8A;
        write16[11] = 1;
        assert_eq!(cdb_transfer_bytes(&write16, 4096), Some(0x10000 * 4096));
        assert_eq!(
            cdb_transfer_bytes(&[0x08, 0, 0, 0, 0, 0], 512),
            Some(256 * 512)
        );
        // VERIFY(10) without BYTCHK moves nothing; WRITE SAME one block; INQUIRY unknown.
        assert_eq!(
            cdb_transfer_bytes(&[0x2F, 0, 0, 0, 0, 0, 0, 0, 8, 0], 512),
            Some(0)
        );
        assert_eq!(
            cdb_transfer_bytes(&[0x41, 0, 0, 0, 0, 0, 0, 0, 8, 0], 512),
            Some(512)
        );
        assert_eq!(cdb_transfer_bytes(&[0x12, 0, 0, 0, 36, 0], 512), None);
        assert_eq!(
            cdb_transfer_bytes(&[0x28, 0], 512),
            Some(0),
            "short CDB reads as zero"
        );
    }

    #[test]
    fn cdb_lengths_follow_the_group_code() {
        assert_eq!(
            [0x00, 0x28, 0x5A, 0x88, 0xA0, 0xC0].map(cdb_length),
            [6, 10, 10, 16, 12, 16]
        );
    }

    #[test]
    fn pieces_and_shortened_writes_keep_the_other_fields() {
        let cdb = [0x2A, 0x08, 0, 0, 0x10, 0, 0x07, 0, 200, 0x55];
        let field = lba_fields(&cdb).expect("WRITE(10)");
        assert_eq!(field.read_lba(&cdb), 0x1000);
        assert_eq!(
            field.with(&cdb, 0x1002, 100),
            [0x2A, 0x08, 0, 0, 0x10, 0x02, 0x07, 0, 100, 0x55]
        );
        assert_eq!(
            shorten_write(&cdb, 1),
            Some(vec![0x2A, 0x08, 0, 0, 0x10, 0, 0x07, 0, 1, 0x55])
        );
        assert_eq!(shorten_write(&cdb, 70_000), None, "does not fit WRITE(10)");
        assert!(lba_fields(&[0x28, 0, 0]).is_none(), "too short");
        assert!(lba_fields(&[0x12, 0, 0, 0, 36, 0]).is_none());
    }
}
