//! The login phase (RFC 7143 §6.3, §11.12, §11.13): security negotiation
//! with `AuthMethod` None, then operational negotiation, then full feature
//! phase.
//!
//! A Login Response carries at most [`login_segment_limit`] bytes of text:
//! the initiator's declared `MaxRecvDataSegmentLength`, and never more than
//! its 8,192-byte default (RFC 7143 §13.12) while login runs, the
//! conservative reading for a declaration made during login. A longer answer
//! is split: each piece but the last goes out with the C (continue) bit and
//! the T (transit) bit clear, as RFC 7143 §11.13 requires of the C bit, and the
//! initiator fetches the next piece with an empty Login Request. An answer
//! longer than [`text::MAX_TEXT_BYTES`], or one that would need more Login
//! Responses than the login may still take, is refused with a login error
//! (Initiator Error) instead.

use std::net::TcpStream;

use super::pdu::{Pdu, op};
use super::text::{self, Negotiated, Params, Stage};
use super::{CMD_WINDOW, Ended, Target};

/// Login status class and detail (RFC 7143 §11.13.5).
pub mod status {
    /// Initiator error (miscellaneous).
    pub const INITIATOR_ERROR: u16 = 0x0200;
    /// Authentication failure.
    pub const AUTHENTICATION_FAILED: u16 = 0x0201;
    /// Target not found.
    pub const NOT_FOUND: u16 = 0x0203;
    /// Unsupported version.
    pub const UNSUPPORTED_VERSION: u16 = 0x0205;
    /// Missing parameter.
    pub const MISSING_PARAMETER: u16 = 0x0207;
    /// Session does not exist.
    pub const SESSION_DOES_NOT_EXIST: u16 = 0x020A;
    /// Invalid request during login.
    pub const INVALID_DURING_LOGIN: u16 = 0x020B;
}

/// Stage numbers in `CSG` / `NSG`.
const SECURITY: u8 = 0;
const OPERATIONAL: u8 = 1;
const FULL_FEATURE: u8 = 3;
/// Login requests one connection may send.
const MAX_LOGIN_PDUS: usize = 64;
/// `MaxRecvDataSegmentLength` until the initiator declares one (RFC 7143 §13.12).
pub const DEFAULT_MAX_RECV_DATA_SEGMENT: u32 = 8192;

/// The most text bytes one Login Response may carry under `params`.
#[must_use]
pub fn login_segment_limit(params: &Params) -> usize {
    params
        .initiator_max_recv
        .clamp(512, DEFAULT_MAX_RECV_DATA_SEGMENT) as usize
}

/// A connection that completed login.
#[derive(Debug)]
pub struct LoggedIn {
    /// Negotiated parameters.
    pub params: Params,
    /// The next `StatSN`.
    pub stat_sn: u32,
    /// The next expected `CmdSN`.
    pub exp_cmd_sn: u32,
}

#[expect(
    clippy::too_many_arguments,
    reason = "the Login Response fields the login phase varies"
)]
fn respond(
    stream: &mut TcpStream,
    request: &Pdu,
    flags: u8,
    tsih: u16,
    stat_sn: u32,
    cmd_sn: u32,
    login_status: u16,
    data: Vec<u8>,
) -> Result<(), Ended> {
    let mut response = Pdu::new(op::LOGIN_RESPONSE);
    response.bhs[1] = flags;
    response.bhs[2] = 0; // Version-max
    response.bhs[3] = 0; // Version-active
    response.bhs[8..14].copy_from_slice(&request.bhs[8..14]);
    response.bhs[14..16].copy_from_slice(&tsih.to_be_bytes());
    response.set_u32(16, request.itt());
    response.set_u32(24, stat_sn);
    response.set_u32(28, cmd_sn);
    response.set_u32(32, cmd_sn.wrapping_add(CMD_WINDOW - 1));
    response.bhs[36..38].copy_from_slice(&login_status.to_be_bytes());
    response.data = data;
    response
        .write(stream)
        .map_err(|e| Ended::ProtocolError(format!("the login response cannot be sent: {e}")))
}

fn fail(
    stream: &mut TcpStream,
    request: &Pdu,
    stat_sn: u32,
    login_status: u16,
    why: String,
) -> Ended {
    let _ = respond(
        stream,
        request,
        0,
        0,
        stat_sn,
        request.u32_at(24),
        login_status,
        Vec::new(),
    );
    Ended::LoginFailed(why)
}

/// What the login has settled so far.
#[derive(Default)]
struct State {
    params: Params,
    sent_portal_tag: bool,
    declared_max_recv: bool,
}

impl State {
    /// Negotiates the keys of a complete login text; the answer, or the
    /// login failure (sent to the initiator).
    fn negotiate(
        &mut self,
        target: &Target,
        stream: &mut TcpStream,
        request: &Pdu,
        stat_sn: u32,
        keys: &[(String, Option<String>)],
        csg: u8,
    ) -> Result<Vec<u8>, Ended> {
        let stage = if csg == SECURITY {
            Stage::Security
        } else {
            Stage::Operational
        };
        let Negotiated {
            mut answer,
            auth_refused,
            malformed,
        } = text::negotiate(keys, &mut self.params, stage);
        if auth_refused {
            return Err(fail(
                stream,
                request,
                stat_sn,
                status::AUTHENTICATION_FAILED,
                "the initiator offered no AuthMethod this target supports (None)".to_owned(),
            ));
        }
        if malformed {
            return Err(fail(
                stream,
                request,
                stat_sn,
                status::INITIATOR_ERROR,
                "a login key is malformed".to_owned(),
            ));
        }
        if self.params.initiator_name.is_none() {
            return Err(fail(
                stream,
                request,
                stat_sn,
                status::MISSING_PARAMETER,
                "the login carries no InitiatorName".to_owned(),
            ));
        }
        if !self.params.discovery {
            match &self.params.target_name {
                None => {
                    return Err(fail(
                        stream,
                        request,
                        stat_sn,
                        status::MISSING_PARAMETER,
                        "a normal session's login carries no TargetName".to_owned(),
                    ));
                }
                Some(name) if *name != target.name => {
                    return Err(fail(
                        stream,
                        request,
                        stat_sn,
                        status::NOT_FOUND,
                        format!(
                            "the target {name} does not exist here; this is {}",
                            target.name
                        ),
                    ));
                }
                Some(_) => {}
            }
            if !self.sent_portal_tag {
                text::push(&mut answer, "TargetPortalGroupTag", "1");
                self.sent_portal_tag = true;
            }
        }
        if csg == OPERATIONAL && !self.declared_max_recv {
            text::push(
                &mut answer,
                "MaxRecvDataSegmentLength",
                &text::TARGET_MAX_RECV_DATA_SEGMENT.to_string(),
            );
            self.declared_max_recv = true;
        }
        Ok(answer)
    }
}

#[expect(
    clippy::too_many_lines,
    reason = "the login checks in the order RFC 7143 §6.3 lists them"
)]
/// Runs the login phase on a new connection; `tsih` is the handle the
/// session gets.
///
/// # Errors
///
/// How the connection ended when login did not complete.
pub fn login(target: &Target, stream: &mut TcpStream, tsih: u16) -> Result<LoggedIn, Ended> {
    let mut state = State::default();
    let mut stat_sn: Option<u32> = None;
    let mut pending_text: Vec<u8> = Vec::new();
    // The rest of an answer split over several Login Responses.
    let mut continued: Vec<u8> = Vec::new();
    for round in 0..MAX_LOGIN_PDUS {
        let request = match Pdu::read(stream, text::MAX_TEXT_BYTES) {
            Ok(pdu) => pdu,
            Err(super::pdu::PduError::Closed) => return Err(Ended::Closed),
            Err(e) => return Err(Ended::ProtocolError(e.to_string())),
        };
        let current_stat_sn = *stat_sn.get_or_insert_with(|| request.u32_at(28));
        if request.opcode() != op::LOGIN {
            return Err(fail(
                stream,
                &request,
                current_stat_sn,
                status::INVALID_DURING_LOGIN,
                format!(
                    "opcode {:#04x} arrived before login completed",
                    request.opcode()
                ),
            ));
        }
        if request.bhs[3] > 0 {
            return Err(fail(
                stream,
                &request,
                current_stat_sn,
                status::UNSUPPORTED_VERSION,
                format!(
                    "the initiator needs iSCSI version {} or later",
                    request.bhs[3]
                ),
            ));
        }
        if request.bhs[14..16] != [0, 0] {
            return Err(fail(
                stream,
                &request,
                current_stat_sn,
                status::SESSION_DOES_NOT_EXIST,
                "the login names an existing session (TSIH); one connection per session".to_owned(),
            ));
        }
        let transit = request.bhs[1] & 0x80 != 0;
        let more = request.bhs[1] & 0x40 != 0;
        let csg = (request.bhs[1] >> 2) & 3;
        let nsg = request.bhs[1] & 3;
        if (transit && more)
            || csg == 2
            || csg == FULL_FEATURE
            || (transit && (nsg == 2 || nsg <= csg))
        {
            return Err(fail(
                stream,
                &request,
                current_stat_sn,
                status::INITIATOR_ERROR,
                format!(
                    "the login flags {:#04x} are not a valid stage transition",
                    request.bhs[1]
                ),
            ));
        }
        if !continued.is_empty() && (more || !request.data.is_empty()) {
            return Err(fail(
                stream,
                &request,
                current_stat_sn,
                status::INITIATOR_ERROR,
                format!(
                    "the initiator sent {} bytes of login text (C bit {}) where an empty Login Request was due for the rest of a continued Login Response",
                    request.data.len(),
                    u8::from(more)
                ),
            ));
        }
        if pending_text.len() + request.data.len() > text::MAX_TEXT_BYTES {
            return Err(fail(
                stream,
                &request,
                current_stat_sn,
                status::INITIATOR_ERROR,
                "the login text is longer than this target accepts".to_owned(),
            ));
        }
        pending_text.extend_from_slice(&request.data);
        let cmd_sn = request.u32_at(24);
        if more {
            // Ask for the rest of the text (C set, no transit).
            respond(
                stream,
                &request,
                csg << 2,
                0,
                current_stat_sn,
                cmd_sn,
                0,
                Vec::new(),
            )?;
            stat_sn = Some(current_stat_sn.wrapping_add(1));
            continue;
        }
        let answer = if continued.is_empty() {
            let keys = text::parse(&pending_text);
            pending_text.clear();
            state.negotiate(target, stream, &request, current_stat_sn, &keys, csg)?
        } else {
            std::mem::take(&mut continued)
        };
        let limit = login_segment_limit(&state.params);
        if answer.len() > limit {
            let pieces = answer.len().div_ceil(limit);
            if answer.len() > text::MAX_TEXT_BYTES || round + pieces > MAX_LOGIN_PDUS {
                return Err(fail(
                    stream,
                    &request,
                    current_stat_sn,
                    status::INITIATOR_ERROR,
                    format!(
                        "the login answer of {} bytes needs {pieces} Login Responses of at most {limit} bytes (MaxRecvDataSegmentLength), more than this login may take; the login is refused",
                        answer.len()
                    ),
                ));
            }
            let mut piece = answer;
            continued = piece.split_off(limit);
            // C set, T clear: the initiator asks for the rest with an empty request.
            respond(
                stream,
                &request,
                0x40 | csg << 2,
                0,
                current_stat_sn,
                cmd_sn,
                0,
                piece,
            )?;
            stat_sn = Some(current_stat_sn.wrapping_add(1));
            continue;
        }
        let finishing = transit && nsg == FULL_FEATURE;
        let flags = if transit {
            0x80 | csg << 2 | nsg
        } else {
            csg << 2
        };
        respond(
            stream,
            &request,
            flags,
            if finishing { tsih } else { 0 },
            current_stat_sn,
            cmd_sn,
            0,
            answer,
        )?;
        stat_sn = Some(current_stat_sn.wrapping_add(1));
        if finishing {
            return Ok(LoggedIn {
                params: state.params,
                stat_sn: current_stat_sn.wrapping_add(1),
                exp_cmd_sn: cmd_sn,
            });
        }
    }
    Err(Ended::ProtocolError(format!(
        "login did not complete in {MAX_LOGIN_PDUS} requests"
    )))
}
