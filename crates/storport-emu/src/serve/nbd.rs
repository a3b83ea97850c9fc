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
//! oversized payload ends the connection. A WRITE payload is received in
//! pieces as it arrives: the memory it takes grows with the bytes received,
//! never with the length its header announces. Unknown command flags are
//! refused with `EINVAL`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::backend::{Backend, BlockError, Lun};
use super::limits::Activity;
use super::stages::Stages;

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
    /// The command flags this server understands; any other is refused
    /// with `EINVAL` (`NBD_CMD_FLAG_DF`, `REQ_ONE` and `FAST_ZERO` belong to
    /// extensions it does not negotiate).
    pub const KNOWN_FLAGS: u16 = FLAG_FUA | FLAG_NO_HOLE;
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
pub fn serve_connection(
    backend: &Backend,
    stream: &mut TcpStream,
    activity: &Activity,
    stage_times: bool,
) -> Ended {
    match handshake(backend, stream) {
        Ok(Some(lun)) => {
            activity.established();
            match transmission(backend, &lun, stream, activity, stage_times) {
                Ok(()) => Ended::Closed,
                Err(ended) => ended,
            }
        }
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

/// The 16-byte header of a simple reply.
fn reply_header(error: u32, cookie: u64) -> [u8; 16] {
    let mut header = [0_u8; 16];
    header[0..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    header[4..8].copy_from_slice(&error.to_be_bytes());
    header[8..16].copy_from_slice(&cookie.to_be_bytes());
    header
}

/// Bytes read from the socket at once (a burst of pipelined requests), and
/// reply bytes gathered before they are written.
const BUFFER_BYTES: usize = 256 * 1024;
/// Read data up to this size is copied into the reply buffer; larger data
/// is written from its own buffer, right after what is gathered.
const COPY_LIMIT: usize = 32 * 1024;
/// Bytes of a request header.
const REQUEST_BYTES: usize = 28;
/// READs and WRITEs of at least this many bytes run on a helper thread when
/// one is free: copying them takes long enough to be worth a thread switch,
/// and the connection thread meanwhile reads and runs the next requests.
const HEAVY_BYTES: u32 = 128 * 1024;
/// How long the connection thread looks for the client's next request
/// before it sleeps, when the client's last request came within that time.
/// A client on another processor then sends into a socket that is being
/// read instead of paying for waking this thread on every request, and its
/// own round trip is shorter by one wake-up. The thread yields the
/// processor at every look, so a client on the same processor runs; a
/// client that pauses longer costs one such wait, after which the thread
/// sleeps at once until requests come quickly again. The window must
/// outlast the client's own turnaround, which on an otherwise idle machine
/// includes waking the client's thread: measured with fio at iodepth 1
/// (4 KiB random reads, tools/bench-nbd.sh, two processors idle
/// otherwise), 50 µs was too short (the client's next request came later,
/// so every request paid for a wake-up: 10,700 requests per second,
/// 0.99 times nbdkit's), 120 µs gave 18,200 and 250 µs 22,200 (about twice
/// nbdkit's).
const SPIN: Duration = Duration::from_micros(200);
/// A yield that takes this long and switched to another thread means that
/// thread shares this processor: when it is the client, looking for its
/// requests only takes turns with it (a switch per look, a fifth fewer
/// requests per second at iodepth 32 than sleeping), so the connection
/// thread sleeps at once for the next [`SHARED_BLOCKING_READS`] reads. (A
/// long yield without a switch is the hypervisor's doing.)
const SHARED_YIELD: Duration = Duration::from_micros(5);
/// See [`SHARED_YIELD`].
const SHARED_BLOCKING_READS: u32 = 16;
/// Most helper threads per connection (fewer on machines with fewer
/// processors: one less than the processors available).
const MAX_HELPERS: usize = 3;

/// The replies of one connection, written by the connection thread and its
/// helpers (each reply whole: replies may go out in any order, the cookie
/// matches them). Small replies are gathered and written together.
struct Replies<'s> {
    stream: &'s TcpStream,
    output: Vec<u8>,
}

impl Replies<'_> {
    /// Writes the gathered replies.
    fn flush(&mut self) -> io::Result<()> {
        if !self.output.is_empty() {
            self.stream.write_all(&self.output)?;
            self.output.clear();
        }
        Ok(())
    }

    /// Adds a simple reply: gathered when small, written at once (with
    /// what is gathered) when its data is large.
    fn push(&mut self, error: u32, cookie: u64, data: &[u8]) -> io::Result<()> {
        let header = reply_header(error, cookie);
        if data.len() <= COPY_LIMIT {
            self.output.extend_from_slice(&header);
            self.output.extend_from_slice(data);
            if self.output.len() >= BUFFER_BYTES {
                self.flush()?;
            }
            return Ok(());
        }
        // What is gathered and the header go first, held back by the
        // kernel (MSG_MORE) until the data joins them: the reply leaves in
        // full segments, and the data's write starts with bytes queued,
        // which keeps TCP from taking the reply for an application-limited
        // burst (with BBR, that kept the congestion window below one 1 MiB
        // reply on loopback and halved the throughput).
        self.output.extend_from_slice(&header);
        send_more(self.stream, &self.output)?;
        self.output.clear();
        self.stream.write_all(data)
    }
}

/// Writes all of `bytes` with `MSG_MORE`: the kernel holds them back until
/// the next write (as `TCP_CORK` would for one write).
fn send_more(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    while !bytes.is_empty() {
        let flags = libc::MSG_MORE | libc::MSG_NOSIGNAL;
        // SAFETY: `fd` is the open socket `stream` owns, and the kernel only
        // reads `bytes.len()` bytes from the live slice `bytes`.
        let sent = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), flags) };
        match usize::try_from(sent) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n.min(bytes.len())..],
            Err(_) => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
    Ok(())
}

/// How many times the kernel switched from the calling thread to another
/// while it could run (`sched_yield` that gave the processor away counts).
fn involuntary_switches() -> i64 {
    // SAFETY: rusage is plain data for which all-zero bytes are valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage into the live local `usage`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &raw mut usage) };
    if rc == 0 { usage.ru_nivcsw } else { 0 }
}

/// Reads what `stream` has without waiting; `None` when it has nothing yet.
fn try_read(stream: &TcpStream, buffer: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: the descriptor is the open socket `stream` owns, and the
    // kernel writes at most `buffer.len()` bytes into the live, exclusively
    // borrowed `buffer`.
    let got = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if let Ok(got) = usize::try_from(got) {
        return Ok(Some(got));
    }
    let error = io::Error::last_os_error();
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
        _ => Err(error),
    }
}

/// The request side of the transmission phase: requests are read in
/// bursts into `input`, and the gathered replies are written before each
/// read of the socket (the client may wait for them before it sends more).
/// A burst of pipelined requests thus costs one read and one write.
struct Connection<'c, 's> {
    stream: &'s TcpStream,
    replies: &'c Mutex<Replies<'s>>,
    activity: &'c Activity,
    backend: &'c Backend,
    /// `--stage-times`: where each request's time goes (see [`Stages`]).
    stages: Option<Box<Stages>>,
    /// When the last read that got bytes returned (with `stages`).
    read_at: Option<Instant>,
    /// The read and the end of the operation of the request whose reply
    /// is gathered and not yet written (with `stages`).
    answered: Option<(Instant, Instant)>,
    input: Box<[u8]>,
    /// Unparsed bytes are `input[start..end]`.
    start: usize,
    end: usize,
    /// The last wait for the client was short: look for its next request
    /// for up to [`SPIN`] before sleeping.
    spin: bool,
    /// Reads that sleep at once, without looking first, because a yield
    /// while looking let another thread run on this processor.
    blocking_reads: u32,
    /// This thread's involuntary context switches when last counted.
    switches: i64,
}

impl<'c, 's> Connection<'c, 's> {
    fn new(
        stream: &'s TcpStream,
        replies: &'c Mutex<Replies<'s>>,
        activity: &'c Activity,
        backend: &'c Backend,
        stage_times: bool,
    ) -> Self {
        Self {
            stream,
            replies,
            activity,
            backend,
            stages: stage_times.then(|| {
                crate::port::timing::enable(true);
                Box::default()
            }),
            read_at: None,
            answered: None,
            input: vec![0; BUFFER_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            spin: false,
            blocking_reads: 0,
            switches: involuntary_switches(),
        }
    }

    /// Reads what the socket has into `input[end..]`: first without
    /// sleeping for up to [`SPIN`] when the client answered quickly last
    /// time, then blocking.
    fn read_some(&mut self) -> io::Result<usize> {
        let started = Instant::now();
        if self.spin {
            loop {
                if let Some(got) = try_read(self.stream, &mut self.input[self.end..])? {
                    self.received();
                    return Ok(got);
                }
                if started.elapsed() >= SPIN {
                    break;
                }
                // Lets the client run when it shares this processor.
                let yielded = Instant::now();
                std::thread::yield_now();
                if yielded.elapsed() >= SHARED_YIELD {
                    // A long yield: either the hypervisor or another thread
                    // took the processor. When another thread ran here,
                    // likely the client, sleeping hands it the processor
                    // without a switch per look.
                    let switches = involuntary_switches();
                    if switches != self.switches {
                        self.switches = switches;
                        self.blocking_reads = SHARED_BLOCKING_READS;
                        break;
                    }
                }
            }
        }
        let got = self.stream.read(&mut self.input[self.end..]);
        if matches!(got, Ok(n) if n > 0) {
            self.received();
        }
        if self.blocking_reads > 0 {
            self.blocking_reads -= 1;
            self.spin = false;
        } else {
            self.spin = started.elapsed() < SPIN;
        }
        got
    }

    /// Bytes arrived.
    fn received(&mut self) {
        self.activity.received();
        if self.stages.is_some() {
            self.read_at = Some(Instant::now());
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        super::lock(self.replies).flush()?;
        if let (Some(stages), Some((read, done))) = (self.stages.as_mut(), self.answered.take()) {
            let sent = Instant::now();
            stages.send.record(sent.saturating_duration_since(done));
            stages.total.record(sent.saturating_duration_since(read));
        }
        Ok(())
    }

    /// Runs a request on the connection thread (see [`answer`]), timing its
    /// stages with `--stage-times`.
    fn answer(&mut self, lun: &Lun, request: &Request, payload: Vec<u8>) -> Result<(), String> {
        let (backend, replies, activity) = (self.backend, self.replies, self.activity);
        let Some(stages) = self.stages.as_mut() else {
            return answer(backend, lun, replies, request, payload, false, activity);
        };
        let ready = Instant::now();
        let read = self.read_at.unwrap_or(ready);
        stages.receive.record(ready.saturating_duration_since(read));
        let _ = crate::port::timing::take();
        let answered = answer(backend, lun, replies, request, payload, false, activity);
        let done = Instant::now();
        stages.record_port(
            done.saturating_duration_since(ready),
            crate::port::timing::take(),
        );
        self.answered = Some((read, done));
        answered
    }

    /// Makes at least `n` (at most [`BUFFER_BYTES`]) unparsed bytes
    /// available, reading the socket when needed. `false` when the client
    /// closed the connection between requests.
    fn fill(&mut self, n: usize) -> io::Result<bool> {
        while self.end - self.start < n {
            if self.start > 0 {
                self.input.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            self.flush()?;
            let got = match self.read_some() {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if got == 0 {
                if self.end == self.start {
                    return Ok(false);
                }
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.end += got;
        }
        Ok(true)
    }

    /// The next `n` unparsed bytes (after [`Self::fill`] of at least `n`).
    fn take(&mut self, n: usize) -> &[u8] {
        let taken = &self.input[self.start..self.start + n];
        self.start += n;
        taken
    }

    /// A WRITE payload of `length` bytes, in a vector with room for the
    /// SRB's guard bytes (so the port takes it over without a copy).
    ///
    /// The payload is received as it arrives, never allocated from
    /// `length` alone: the first [`BUFFER_BYTES`] go through the input
    /// buffer, and the vector then grows by at most what it already holds
    /// (the bytes received) at each read. A client that announces 32 MiB
    /// and sends nothing costs no more than its input buffer.
    fn payload(&mut self, length: usize) -> io::Result<Vec<u8>> {
        let full = length + crate::port::srb::DATA_GUARD_BYTES;
        let mut data: Vec<u8> = Vec::new();
        loop {
            let buffered = (length - data.len()).min(self.end - self.start);
            if buffered > 0 {
                grow(&mut data, buffered, full);
                data.extend_from_slice(self.take(buffered));
            }
            if data.len() == length {
                break;
            }
            if data.len() < BUFFER_BYTES {
                // Through the buffer, read as requests are (looking before
                // sleeping): a payload often arrives right after its header.
                if !self.fill(1)? {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                continue;
            }
            // The rest of a large payload goes straight from the socket into
            // it, in pieces no larger than what it holds already.
            self.flush()?;
            let at = data.len();
            let piece = (length - at).min(at);
            grow(&mut data, piece, full);
            data.resize(at + piece, 0);
            let got = loop {
                match self.stream.read(&mut data[at..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other?,
                }
            };
            data.truncate(at + got);
            if got == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.activity.received();
        }
        let guard = full - data.len();
        grow(&mut data, guard, full);
        Ok(data)
    }
}

/// Makes room in `data` for `more` bytes: the capacity at least doubles (so
/// the copies stay linear) but never exceeds `full`.
fn grow(data: &mut Vec<u8>, more: usize, full: usize) {
    let needed = data.len() + more;
    if needed > data.capacity() {
        let target = (data.capacity() * 2).max(needed).min(full.max(needed));
        data.reserve_exact(target - data.len());
    }
}

impl Drop for Connection<'_, '_> {
    /// Logs the stage times (`--stage-times`) when the connection ends.
    fn drop(&mut self) {
        if let Some(stages) = &self.stages {
            crate::port::timing::enable(false);
            if stages.total.samples() > 0 {
                self.backend.port().log(stages.summary());
            }
        }
    }
}

/// One request of the transmission phase (its header).
struct Request {
    command: u16,
    flags: u16,
    cookie: u64,
    offset: u64,
    length: u32,
}

impl Request {
    fn parse(header: &[u8]) -> Result<Self, Ended> {
        let be32 = |at: usize| {
            u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let be64 = |at: usize| (u64::from(be32(at)) << 32) | u64::from(be32(at + 4));
        let magic = be32(0);
        if magic != REQUEST_MAGIC {
            return Err(Ended::ProtocolError(format!(
                "the request magic {magic:#x} is not NBD_REQUEST_MAGIC"
            )));
        }
        Ok(Self {
            flags: u16::from_be_bytes([header[4], header[5]]),
            command: u16::from_be_bytes([header[6], header[7]]),
            cookie: be64(8),
            offset: be64(16),
            length: be32(24),
        })
    }
}

/// Runs one request (with its WRITE payload); returns the reply's error,
/// its data, and whether the adapter can no longer serve.
fn execute(
    backend: &Backend,
    lun: &Lun,
    request: &Request,
    payload: Vec<u8>,
) -> (u32, Vec<u8>, Option<String>) {
    if request.flags & !cmd::KNOWN_FLAGS != 0 {
        return (errno::EINVAL, Vec::new(), None);
    }
    let fua = request.flags & cmd::FLAG_FUA != 0;
    let (offset, length) = (request.offset, u64::from(request.length));
    let result = match request.command {
        cmd::READ => match backend.read(lun, offset, length) {
            Ok(data) => return (0, data, None),
            Err(e) => Err(e),
        },
        cmd::WRITE | cmd::WRITE_ZEROES if lun.read_only => Err(BlockError::ReadOnly),
        cmd::WRITE => backend.write_owned(lun, offset, payload, fua),
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

/// Runs one request and sends its reply; `Err` with a message when the
/// connection must end (the reply could not be written, or the adapter can
/// no longer serve). Ends the [`Activity::begin`] of the request.
fn answer(
    backend: &Backend,
    lun: &Lun,
    replies: &Mutex<Replies<'_>>,
    request: &Request,
    payload: Vec<u8>,
    flush: bool,
    activity: &Activity,
) -> Result<(), String> {
    let (error, data, fatal) = execute(backend, lun, request, payload);
    let written = {
        let mut replies = super::lock(replies);
        // A fatal error's reply goes out before the connection ends.
        replies.push(error, request.cookie, &data).and_then(|()| {
            if flush || fatal.is_some() {
                replies.flush()
            } else {
                Ok(())
            }
        })
    };
    activity.end();
    if let Some(message) = fatal {
        return Err(message);
    }
    written.map_err(|e| format!("the connection failed while replying: {e}"))
}

/// A helper thread of a connection and the requests it is given.
struct Helper {
    jobs: mpsc::SyncSender<(Request, Vec<u8>)>,
    idle: Arc<AtomicBool>,
}

/// The transmission phase. The connection thread reads the requests and
/// runs them in the order they arrive; the replies to a burst of pipelined
/// requests go out together once the burst is answered. Large READs and
/// WRITEs go to a helper thread when one is free, so that copying them
/// overlaps with the next requests; replies may then come out of order
/// (the cookie matches them, as the protocol allows). On `NBD_CMD_DISC`
/// every request already read is answered before the close.
///
/// Small requests are not handed to other threads: the miniport's work per
/// request is small next to a thread switch.
fn transmission(
    backend: &Backend,
    lun: &Lun,
    stream: &TcpStream,
    activity: &Activity,
    stage_times: bool,
) -> Result<(), Ended> {
    let replies = Mutex::new(Replies {
        stream,
        output: Vec::with_capacity(BUFFER_BYTES + COPY_LIMIT + 16),
    });
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let most_helpers = std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .clamp(1, MAX_HELPERS);
    let fail = |message: String| {
        super::lock(&failure).get_or_insert(message);
        // Wakes the connection thread if it waits for the client.
        let _ = stream.shutdown(Shutdown::Both);
    };
    let read = std::thread::scope(|scope| {
        let mut connection = Connection::new(stream, &replies, activity, backend, stage_times);
        let mut helpers: Vec<Helper> = Vec::new();
        loop {
            if !connection.fill(REQUEST_BYTES)? {
                return Ok(());
            }
            let request = Request::parse(connection.take(REQUEST_BYTES))?;
            let mut payload = Vec::new();
            match request.command {
                cmd::DISC => return Ok(()),
                cmd::READ if request.length > MAX_PAYLOAD_BYTES => {
                    super::lock(&replies).push(errno::EINVAL, request.cookie, &[])?;
                    continue;
                }
                cmd::WRITE => {
                    if request.length > MAX_PAYLOAD_BYTES {
                        return Err(Ended::ProtocolError(format!(
                            "a write of {} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte maximum block size",
                            request.length
                        )));
                    }
                    payload = connection.payload(request.length as usize)?;
                }
                cmd::READ | cmd::FLUSH | cmd::TRIM | cmd::WRITE_ZEROES => {}
                _ => {
                    super::lock(&replies).push(errno::EINVAL, request.cookie, &[])?;
                    continue;
                }
            }
            // Running until `answer` replies: not idle, whatever the client does.
            activity.begin();
            let heavy =
                matches!(request.command, cmd::READ | cmd::WRITE) && request.length >= HEAVY_BYTES;
            if heavy {
                let free = helpers.iter().position(|h| h.idle.load(Ordering::Acquire));
                let free = free.or_else(|| {
                    (helpers.len() < most_helpers).then(|| {
                        helpers.push(spawn_helper(scope, backend, lun, &replies, &fail, activity));
                        helpers.len() - 1
                    })
                });
                if let Some(index) = free {
                    let helper = &helpers[index];
                    helper.idle.store(false, Ordering::Release);
                    if helper.jobs.send((request, payload)).is_err() {
                        activity.end();
                        // The helper stopped: the connection failed.
                        return Err(Ended::Closed);
                    }
                    continue;
                }
            }
            if let Err(message) = connection.answer(lun, &request, payload) {
                fail(message);
                return Err(Ended::Closed);
            }
        }
        // Leaving the scope closes the helpers' queues and waits for them:
        // every request handed to them is answered first.
    });
    let flushed = super::lock(&replies).flush();
    let failed = super::lock(&failure).take();
    if let Some(message) = failed {
        return Err(Ended::ProtocolError(message));
    }
    read?;
    flushed.map_err(Ended::from)
}

/// Starts a helper thread that answers the requests it is sent until the
/// queue closes.
fn spawn_helper<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    backend: &'env Backend,
    lun: &'env Lun,
    replies: &'env Mutex<Replies<'env>>,
    fail: &'env (impl Fn(String) + Sync),
    activity: &'env Activity,
) -> Helper {
    let (jobs, queue) = mpsc::sync_channel::<(Request, Vec<u8>)>(1);
    let idle = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&idle);
    scope.spawn(move || {
        for (request, payload) in queue {
            // Written at once: the connection thread may be waiting for the
            // client, which may be waiting for this reply.
            let answered = answer(backend, lun, replies, &request, payload, true, activity);
            done.store(true, Ordering::Release);
            if let Err(message) = answered {
                fail(message);
                return;
            }
        }
    });
    Helper { jobs, idle }
}
