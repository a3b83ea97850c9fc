//! The NBD server.
//!
//! Fixed newstyle handshake, option haggling (`OPT_GO`, `OPT_INFO`,
//! `OPT_LIST`, `OPT_ABORT`, `OPT_EXPORT_NAME`), and the transmission phase
//! with simple replies (`READ`, `WRITE` with `FUA`, `FLUSH`, `TRIM`,
//! `WRITE_ZEROES`, `DISC`).
//!
//! Source: the NBD protocol description, `doc/proto.md` of the
//! `NetworkBlockDevice/nbd` repository. One export per disk LUN, named as
//! [`super::backend::Lun::name`]. Every command becomes SCSI SRBs through
//! [`Backend`].
//!
//! Hostile input: every length from the wire is checked against a cap
//! before anything is allocated; a malformed request, a wrong magic or an
//! oversized payload ends the connection.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Mutex, mpsc};

use super::backend::{Backend, BlockError, Lun};

/// `NBDMAGIC`.
pub const NBD_MAGIC: u64 = 0x4E42_444D_4147_4943;
/// `IHAVEOPT`: the option magic.
pub const OPTION_MAGIC: u64 = 0x4948_4156_454F_5054;
/// Magic of an option reply.
pub const REPLY_MAGIC: u64 = 0x0003_E889_0455_65A9;
/// Magic of a transmission request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Magic of a simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

/// Handshake flag `NBD_FLAG_FIXED_NEWSTYLE`.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1;
/// Handshake flag `NBD_FLAG_NO_ZEROES`.
pub const FLAG_NO_ZEROES: u16 = 2;
/// Client flag `NBD_FLAG_C_FIXED_NEWSTYLE`.
pub const CLIENT_FIXED_NEWSTYLE: u32 = 1;
/// Client flag `NBD_FLAG_C_NO_ZEROES`.
pub const CLIENT_NO_ZEROES: u32 = 2;

/// Options.
pub mod opt {
    /// `NBD_OPT_EXPORT_NAME`.
    pub const EXPORT_NAME: u32 = 1;
    /// `NBD_OPT_ABORT`.
    pub const ABORT: u32 = 2;
    /// `NBD_OPT_LIST`.
    pub const LIST: u32 = 3;
    /// `NBD_OPT_INFO`.
    pub const INFO: u32 = 6;
    /// `NBD_OPT_GO`.
    pub const GO: u32 = 7;
}

/// Option reply types.
pub mod rep {
    /// `NBD_REP_ACK`.
    pub const ACK: u32 = 1;
    /// `NBD_REP_SERVER`.
    pub const SERVER: u32 = 2;
    /// `NBD_REP_INFO`.
    pub const INFO: u32 = 3;
    /// `NBD_REP_ERR_UNSUP`.
    pub const ERR_UNSUP: u32 = 0x8000_0001;
    /// `NBD_REP_ERR_INVALID`.
    pub const ERR_INVALID: u32 = 0x8000_0003;
    /// `NBD_REP_ERR_UNKNOWN`.
    pub const ERR_UNKNOWN: u32 = 0x8000_0006;
    /// `NBD_REP_ERR_TOO_BIG`.
    pub const ERR_TOO_BIG: u32 = 0x8000_0009;
}

/// Information types of `NBD_REP_INFO`.
pub mod info {
    /// `NBD_INFO_EXPORT`.
    pub const EXPORT: u16 = 0;
    /// `NBD_INFO_NAME`.
    pub const NAME: u16 = 1;
    /// `NBD_INFO_DESCRIPTION`.
    pub const DESCRIPTION: u16 = 2;
    /// `NBD_INFO_BLOCK_SIZE`.
    pub const BLOCK_SIZE: u16 = 3;
}

/// Transmission flags.
pub mod tflag {
    /// `NBD_FLAG_HAS_FLAGS`.
    pub const HAS_FLAGS: u16 = 1;
    /// `NBD_FLAG_READ_ONLY`.
    pub const READ_ONLY: u16 = 1 << 1;
    /// `NBD_FLAG_SEND_FLUSH`.
    pub const SEND_FLUSH: u16 = 1 << 2;
    /// `NBD_FLAG_SEND_FUA`.
    pub const SEND_FUA: u16 = 1 << 3;
    /// `NBD_FLAG_SEND_TRIM`.
    pub const SEND_TRIM: u16 = 1 << 5;
    /// `NBD_FLAG_SEND_WRITE_ZEROES`.
    pub const SEND_WRITE_ZEROES: u16 = 1 << 6;
    /// `NBD_FLAG_CAN_MULTI_CONN`.
    pub const CAN_MULTI_CONN: u16 = 1 << 8;
}

/// Commands.
pub mod cmd {
    /// `NBD_CMD_READ`.
    pub const READ: u16 = 0;
    /// `NBD_CMD_WRITE`.
    pub const WRITE: u16 = 1;
    /// `NBD_CMD_DISC`.
    pub const DISC: u16 = 2;
    /// `NBD_CMD_FLUSH`.
    pub const FLUSH: u16 = 3;
    /// `NBD_CMD_TRIM`.
    pub const TRIM: u16 = 4;
    /// `NBD_CMD_WRITE_ZEROES`.
    pub const WRITE_ZEROES: u16 = 6;
    /// Command flag `NBD_CMD_FLAG_FUA`.
    pub const FLAG_FUA: u16 = 1;
    /// Command flag `NBD_CMD_FLAG_NO_HOLE`.
    pub const FLAG_NO_HOLE: u16 = 2;
}

/// Error values of a reply (`errno` numbers the protocol fixes).
pub mod errno {
    /// `EPERM`.
    pub const EPERM: u32 = 1;
    /// `EIO`.
    pub const EIO: u32 = 5;
    /// `EINVAL`.
    pub const EINVAL: u32 = 22;
    /// `ENOSPC`.
    pub const ENOSPC: u32 = 28;
    /// `ENOTSUP`.
    pub const ENOTSUP: u32 = 95;
    /// `ESHUTDOWN`.
    pub const ESHUTDOWN: u32 = 108;
}

/// Largest option payload accepted (export names are at most 4096 bytes).
pub const MAX_OPTION_BYTES: u32 = 8 * 1024;
/// Largest READ or WRITE payload (advertised as the maximum block size).
pub const MAX_PAYLOAD_BYTES: u32 = 32 << 20;
/// Options one connection may send before it must choose an export.
const MAX_OPTIONS: u32 = 256;

/// How a connection ended.
#[derive(Debug)]
pub enum Ended {
    /// The client aborted, disconnected or sent `NBD_CMD_DISC`.
    Closed,
    /// The client broke the protocol; the connection was closed.
    ProtocolError(String),
    /// The socket failed.
    Io(io::Error),
}

impl From<io::Error> for Ended {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            Self::Closed
        } else {
            Self::Io(error)
        }
    }
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}

fn read_exact_vec(r: &mut impl Read, length: u32) -> io::Result<Vec<u8>> {
    let mut data = vec![0; length as usize];
    r.read_exact(&mut data)?;
    Ok(data)
}

fn option_reply(w: &mut impl Write, option: u32, reply: u32, data: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(20 + data.len());
    out.extend_from_slice(&REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&option.to_be_bytes());
    out.extend_from_slice(&reply.to_be_bytes());
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(data);
    w.write_all(&out)
}

/// Transmission flags of an export.
#[must_use]
pub const fn transmission_flags(lun: &Lun) -> u16 {
    let mut flags = tflag::HAS_FLAGS
        | tflag::SEND_FLUSH
        | tflag::SEND_FUA
        | tflag::SEND_WRITE_ZEROES
        | tflag::CAN_MULTI_CONN;
    if lun.read_only {
        flags |= tflag::READ_ONLY;
    }
    if lun.max_unmap_blocks > 0 {
        flags |= tflag::SEND_TRIM;
    }
    flags
}

/// Serves one NBD connection until the client leaves or breaks the protocol.
///
/// # Errors
///
/// Never: how the connection ended is the [`Ended`] value.
pub fn serve_connection(backend: &Backend, stream: &mut TcpStream) -> Ended {
    match handshake(backend, stream) {
        Ok(Some(lun)) => match transmission(backend, &lun, stream) {
            Ok(()) => Ended::Closed,
            Err(ended) => ended,
        },
        Ok(None) => Ended::Closed,
        Err(ended) => ended,
    }
}

/// The export an `OPT_INFO`/`OPT_GO` names, with the information requests.
fn parse_info_request(data: &[u8]) -> Option<(String, Vec<u16>)> {
    let name_len = u32::from_be_bytes(data.get(0..4)?.try_into().ok()?) as usize;
    let name = data.get(4..4usize.checked_add(name_len)?)?;
    let rest = &data[4 + name_len..];
    let count = usize::from(u16::from_be_bytes(rest.get(0..2)?.try_into().ok()?));
    let requests = rest.get(2..)?;
    if requests.len() != count * 2 {
        return None;
    }
    let requests = requests
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    Some((String::from_utf8_lossy(name).into_owned(), requests))
}

fn export_for<'a>(backend: &'a Backend, name: &str) -> Option<&'a Lun> {
    // The default export (empty name) is the first disk.
    if name.is_empty() {
        backend
            .luns()
            .iter()
            .find(|l| l.device_type == 0 && l.block_size > 0)
    } else {
        backend.disk(name)
    }
}

fn info_reply(
    w: &mut impl Write,
    option: u32,
    backend: &Backend,
    lun: &Lun,
    requests: &[u16],
) -> io::Result<()> {
    let mut export = Vec::with_capacity(12);
    export.extend_from_slice(&info::EXPORT.to_be_bytes());
    export.extend_from_slice(&lun.size_bytes().to_be_bytes());
    export.extend_from_slice(&transmission_flags(lun).to_be_bytes());
    option_reply(w, option, rep::INFO, &export)?;
    // Block sizes are always sent: the disk cannot take less than a block.
    let preferred = lun.block_size.max(4096).min(backend.max_transfer_bytes());
    let mut sizes = Vec::with_capacity(14);
    sizes.extend_from_slice(&info::BLOCK_SIZE.to_be_bytes());
    sizes.extend_from_slice(&lun.block_size.to_be_bytes());
    sizes.extend_from_slice(&preferred.to_be_bytes());
    sizes.extend_from_slice(&MAX_PAYLOAD_BYTES.to_be_bytes());
    option_reply(w, option, rep::INFO, &sizes)?;
    if requests.contains(&info::NAME) {
        let mut name = info::NAME.to_be_bytes().to_vec();
        name.extend_from_slice(lun.name.as_bytes());
        option_reply(w, option, rep::INFO, &name)?;
    }
    if requests.contains(&info::DESCRIPTION) {
        let mut text = info::DESCRIPTION.to_be_bytes().to_vec();
        text.extend_from_slice(
            format!(
                "SCSI LUN {}:{}:{}",
                lun.address.0, lun.address.1, lun.address.2
            )
            .as_bytes(),
        );
        option_reply(w, option, rep::INFO, &text)?;
    }
    option_reply(w, option, rep::ACK, &[])
}

/// The handshake and option haggling; `Some(export)` when the client
/// entered the transmission phase.
fn handshake<S: Read + Write>(backend: &Backend, s: &mut S) -> Result<Option<Lun>, Ended> {
    let mut hello = Vec::with_capacity(18);
    hello.extend_from_slice(&NBD_MAGIC.to_be_bytes());
    hello.extend_from_slice(&OPTION_MAGIC.to_be_bytes());
    hello.extend_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    s.write_all(&hello)?;
    let client_flags = read_u32(s)?;
    if client_flags & !(CLIENT_FIXED_NEWSTYLE | CLIENT_NO_ZEROES) != 0 {
        return Err(Ended::ProtocolError(format!(
            "the client flags {client_flags:#x} name bits this server does not know"
        )));
    }
    let no_zeroes = client_flags & CLIENT_NO_ZEROES != 0;
    for _ in 0..MAX_OPTIONS {
        let magic = read_u64(s)?;
        if magic != OPTION_MAGIC {
            return Err(Ended::ProtocolError(format!(
                "the option magic {magic:#x} is not IHAVEOPT"
            )));
        }
        let option = read_u32(s)?;
        let length = read_u32(s)?;
        if length > MAX_OPTION_BYTES {
            let _ = option_reply(s, option, rep::ERR_TOO_BIG, b"option data too large");
            return Err(Ended::ProtocolError(format!(
                "option {option} carries {length} bytes, more than the {MAX_OPTION_BYTES} accepted"
            )));
        }
        let data = read_exact_vec(s, length)?;
        match option {
            opt::EXPORT_NAME => {
                let name = String::from_utf8_lossy(&data).into_owned();
                let Some(lun) = export_for(backend, &name) else {
                    // The protocol gives this option no error reply: close.
                    return Err(Ended::ProtocolError(format!(
                        "NBD_OPT_EXPORT_NAME names the unknown export {name:?}"
                    )));
                };
                let mut reply = Vec::with_capacity(134);
                reply.extend_from_slice(&lun.size_bytes().to_be_bytes());
                reply.extend_from_slice(&transmission_flags(lun).to_be_bytes());
                if !no_zeroes {
                    reply.extend_from_slice(&[0; 124]);
                }
                s.write_all(&reply)?;
                return Ok(Some(lun.clone()));
            }
            opt::ABORT => {
                let _ = option_reply(s, option, rep::ACK, &[]);
                return Ok(None);
            }
            opt::LIST => {
                if length != 0 {
                    option_reply(s, option, rep::ERR_INVALID, b"NBD_OPT_LIST takes no data")?;
                    continue;
                }
                for lun in backend
                    .luns()
                    .iter()
                    .filter(|l| l.device_type == 0 && l.block_size > 0)
                {
                    let mut entry = u32::try_from(lun.name.len())
                        .unwrap_or(0)
                        .to_be_bytes()
                        .to_vec();
                    entry.extend_from_slice(lun.name.as_bytes());
                    option_reply(s, option, rep::SERVER, &entry)?;
                }
                option_reply(s, option, rep::ACK, &[])?;
            }
            opt::INFO | opt::GO => {
                let Some((name, requests)) = parse_info_request(&data) else {
                    option_reply(
                        s,
                        option,
                        rep::ERR_INVALID,
                        b"malformed information request",
                    )?;
                    continue;
                };
                let Some(lun) = export_for(backend, &name) else {
                    option_reply(s, option, rep::ERR_UNKNOWN, b"no such export")?;
                    continue;
                };
                info_reply(s, option, backend, lun, &requests)?;
                if option == opt::GO {
                    return Ok(Some(lun.clone()));
                }
            }
            _ => option_reply(s, option, rep::ERR_UNSUP, b"option not supported")?,
        }
    }
    Err(Ended::ProtocolError(format!(
        "the client sent {MAX_OPTIONS} options without choosing an export"
    )))
}

const fn error_number(command: u16, error: &BlockError) -> u32 {
    match error {
        BlockError::OutOfRange { .. } if command == cmd::READ => errno::EINVAL,
        BlockError::OutOfRange { .. } => errno::ENOSPC,
        BlockError::Unaligned { .. } | BlockError::Sense { key: 0x05, .. } => errno::EINVAL,
        BlockError::ReadOnly | BlockError::Sense { key: 0x07, .. } => errno::EPERM,
        BlockError::Port(_) => errno::ESHUTDOWN,
        BlockError::Sense { .. } | BlockError::Status { .. } => errno::EIO,
    }
}

fn simple_reply(w: &mut impl Write, error: u32, cookie: u64, data: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(16 + data.len());
    out.extend_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&error.to_be_bytes());
    out.extend_from_slice(&cookie.to_be_bytes());
    out.extend_from_slice(data);
    w.write_all(&out)
}

/// One request of the transmission phase, read whole (with its payload).
struct Request {
    command: u16,
    flags: u16,
    cookie: u64,
    offset: u64,
    length: u32,
    /// WRITE payload.
    data: Vec<u8>,
    /// An error decided while reading (oversized read, unknown command).
    refused: Option<u32>,
}

/// Requests one connection runs at once (fio and qemu keep several in flight).
const WORKERS: usize = 4;
/// Requests read ahead of the workers.
const QUEUED: usize = 32;

/// Runs one request; returns the reply's error, its data, and whether the
/// adapter can no longer serve.
fn execute(backend: &Backend, lun: &Lun, request: &Request) -> (u32, Vec<u8>, Option<String>) {
    if let Some(error) = request.refused {
        return (error, Vec::new(), None);
    }
    let fua = request.flags & cmd::FLAG_FUA != 0;
    let (offset, length) = (request.offset, u64::from(request.length));
    let result = match request.command {
        cmd::READ => match backend.read(lun, offset, length) {
            Ok(data) => return (0, data, None),
            Err(e) => Err(e),
        },
        cmd::WRITE | cmd::WRITE_ZEROES if lun.read_only => Err(BlockError::ReadOnly),
        cmd::WRITE => backend.write(lun, offset, &request.data, fua),
        cmd::FLUSH => backend.flush(lun),
        cmd::TRIM => backend.trim(lun, offset, length),
        cmd::WRITE_ZEROES => backend
            .write_zeroes(lun, offset, length, request.flags & cmd::FLAG_NO_HOLE != 0)
            .and_then(|()| if fua { backend.flush(lun) } else { Ok(()) }),
        _ => return (errno::EINVAL, Vec::new(), None),
    };
    match result {
        Ok(()) => (0, Vec::new(), None),
        Err(error) => {
            let fatal = matches!(error, BlockError::Port(_))
                .then(|| format!("the adapter can no longer serve requests: {error}"));
            (error_number(request.command, &error), Vec::new(), fatal)
        }
    }
}

/// Reads requests until `NBD_CMD_DISC`, end of stream or a protocol error,
/// and hands them to the workers.
fn read_requests(stream: &mut TcpStream, queue: &mpsc::SyncSender<Request>) -> Result<(), Ended> {
    loop {
        let mut header = [0_u8; 28];
        stream.read_exact(&mut header)?;
        let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        if magic != REQUEST_MAGIC {
            return Err(Ended::ProtocolError(format!(
                "the request magic {magic:#x} is not NBD_REQUEST_MAGIC"
            )));
        }
        let mut request = Request {
            flags: u16::from_be_bytes([header[4], header[5]]),
            command: u16::from_be_bytes([header[6], header[7]]),
            cookie: u64::from_be_bytes(header[8..16].try_into().unwrap_or_default()),
            offset: u64::from_be_bytes(header[16..24].try_into().unwrap_or_default()),
            length: u32::from_be_bytes([header[24], header[25], header[26], header[27]]),
            data: Vec::new(),
            refused: None,
        };
        match request.command {
            cmd::DISC => return Ok(()),
            cmd::READ if request.length > MAX_PAYLOAD_BYTES => {
                request.refused = Some(errno::EINVAL);
            }
            cmd::WRITE => {
                if request.length > MAX_PAYLOAD_BYTES {
                    return Err(Ended::ProtocolError(format!(
                        "a write of {} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte maximum block size",
                        request.length
                    )));
                }
                request.data = read_exact_vec(stream, request.length)?;
            }
            cmd::READ | cmd::FLUSH | cmd::TRIM | cmd::WRITE_ZEROES => {}
            _ => request.refused = Some(errno::EINVAL),
        }
        if queue.send(request).is_err() {
            // Every worker stopped: the connection failed while replying.
            return Err(Ended::ProtocolError(
                "the connection failed while replying".to_owned(),
            ));
        }
    }
}

/// The transmission phase: one thread reads requests, [`WORKERS`] threads
/// run them and reply as each finishes (replies may come out of order; the
/// cookie matches them, as the protocol allows). On `NBD_CMD_DISC` every
/// request already read is finished and answered before the close.
fn transmission(backend: &Backend, lun: &Lun, stream: &mut TcpStream) -> Result<(), Ended> {
    let writer = Mutex::new(stream.try_clone()?);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let (queue, requests) = mpsc::sync_channel::<Request>(QUEUED);
    let requests = Mutex::new(requests);
    let read = std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                loop {
                    let next = super::lock(&requests).recv();
                    let Ok(request) = next else { return };
                    let (error, data, fatal) = execute(backend, lun, &request);
                    let written =
                        simple_reply(&mut *super::lock(&writer), error, request.cookie, &data);
                    if written.is_err() || fatal.is_some() {
                        if let Some(message) = fatal {
                            super::lock(&failure).get_or_insert(message);
                        }
                        // Wakes the reader: the connection is over.
                        let _ = super::lock(&writer).shutdown(Shutdown::Both);
                        return;
                    }
                }
            });
        }
        let read = read_requests(stream, &queue);
        drop(queue);
        read
    });
    let failed = super::lock(&failure).take();
    failed.map_or(read, |message| Err(Ended::ProtocolError(message)))
}
