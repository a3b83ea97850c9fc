//! The iSCSI target (RFC 7143 subset).
//!
//! One connection per session, `ErrorRecoveryLevel` 0, no digests,
//! `AuthMethod` None. One target name per adapter; its LUNs are the
//! miniport's logical units, and a miniport that puts each on several buses
//! gives each session a port of its own ([`ports`]). A connection runs [`login`], then either a discovery
//! session (Text `SendTargets`, Logout) or a normal session
//! ([`session`]: SCSI commands with Data-In, immediate data, R2T and
//! Data-Out, NOP, task management, Logout).
//!
//! Every CDB goes to the miniport as an `SRB_FUNCTION_EXECUTE_SCSI`
//! request; what the target adds is only the SRB-to-SCSI status mapping a
//! port driver does (an SRB status without SCSI status becomes the CHECK
//! CONDITION Storport's callers would see).
//!
//! Hostile input: data segments longer than the declared
//! `MaxRecvDataSegmentLength`, texts longer than [`text::MAX_TEXT_BYTES`],
//! transfers longer than [`MAX_TASK_BYTES`], PDUs out of place or with
//! unknown opcodes end in a Reject (where one can be sent) and a closed
//! connection.

pub mod login;
pub mod pdu;
pub mod ports;
pub mod session;
pub mod text;

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use super::backend::Backend;
use super::limits::Activity;

/// Largest data transfer of one SCSI task the target takes.
pub const MAX_TASK_BYTES: u32 = 32 << 20;
/// Commands the target accepts beyond `ExpCmdSN` (`MaxCmdSN` − `ExpCmdSN` + 1).
pub const CMD_WINDOW: u32 = 32;

/// The target one adapter is.
#[derive(Clone, Debug)]
pub struct Target {
    /// Its iSCSI name.
    pub name: String,
    /// The address initiators are told to use (`TargetAddress`); `None`: the
    /// local address of each connection.
    pub portal: Option<SocketAddr>,
    /// Its logical units, their target ports and the sessions on each port.
    pub ports: Arc<ports::Ports>,
}

impl Target {
    /// The target name of the adapter of the driver `service` (for example `vstor`).
    #[must_use]
    pub fn for_service(service: &str) -> Self {
        let clean: String = service
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        Self {
            name: format!("iqn.2026-11.org.storemu:{clean}"),
            portal: None,
            ports: Arc::default(),
        }
    }
}

/// How a connection ended.
#[derive(Debug)]
pub enum Ended {
    /// Logout, or the initiator closed the connection.
    Closed,
    /// The initiator broke the protocol; the connection was closed.
    ProtocolError(String),
    /// Login failed with a status sent to the initiator.
    LoginFailed(String),
}

/// Target Session Identifying Handles handed out so far.
static NEXT_TSIH: AtomicU16 = AtomicU16::new(1);

fn next_tsih() -> u16 {
    loop {
        let tsih = NEXT_TSIH.fetch_add(1, Ordering::Relaxed);
        if tsih != 0 {
            return tsih;
        }
    }
}

/// Serves one iSCSI connection until logout, close or a protocol error.
#[must_use]
pub fn serve_connection(
    backend: &Backend,
    target: &Target,
    stream: &mut TcpStream,
    activity: &Activity,
) -> Ended {
    let portal = target
        .portal
        .or_else(|| stream.local_addr().ok())
        .map_or_else(String::new, |a| a.to_string());
    let logged_in = match login::login(target, stream, next_tsih()) {
        Ok(logged_in) => logged_in,
        Err(ended) => return ended,
    };
    activity.established();
    session::Session::new(backend, target, &portal, logged_in, activity).run(stream)
}
