//! A raw NBD client for the `serve_*` tests: numbers written out from the
//! NBD protocol description (`doc/proto.md`), not taken from the server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub const IHAVEOPT: u64 = 0x4948_4156_454F_5054;
pub const REPLY_MAGIC: u64 = 0x0003_E889_0455_65A9;
pub const OPT_EXPORT_NAME: u32 = 1;
pub const OPT_ABORT: u32 = 2;
pub const OPT_LIST: u32 = 3;
pub const OPT_STARTTLS: u32 = 5;
pub const OPT_INFO: u32 = 6;
pub const OPT_GO: u32 = 7;
pub const OPT_STRUCTURED_REPLY: u32 = 8;
pub const REP_ACK: u32 = 1;
pub const REP_SERVER: u32 = 2;
pub const REP_INFO: u32 = 3;
pub const REP_ERR_UNSUP: u32 = 0x8000_0001;
pub const REP_ERR_INVALID: u32 = 0x8000_0003;
pub const REP_ERR_UNKNOWN: u32 = 0x8000_0006;
pub const REP_ERR_TOO_BIG: u32 = 0x8000_0009;
pub const CMD_READ: u16 = 0;
pub const CMD_WRITE: u16 = 1;
pub const CMD_DISC: u16 = 2;
pub const CMD_FLUSH: u16 = 3;
pub const CMD_TRIM: u16 = 4;
pub const CMD_WRITE_ZEROES: u16 = 6;
pub const FLAG_FUA: u16 = 1;
pub const EPERM: u32 = 1;
pub const EINVAL: u32 = 22;
pub const ENOSPC: u32 = 28;
/// vstor's INF default disk: 64 MiB.
pub const DISK_BYTES: u64 = 64 << 20;

pub struct Client {
    pub stream: TcpStream,
}

pub struct OptionReply {
    pub option: u32,
    pub kind: u32,
    pub data: Vec<u8>,
}

impl Client {
    /// Connects and completes the greeting with `FIXED_NEWSTYLE | NO_ZEROES`.
    pub fn connect(address: SocketAddr) -> Self {
        let stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut client = Self { stream };
        let mut hello = [0_u8; 18];
        client.stream.read_exact(&mut hello).expect("greeting");
        assert_eq!(&hello[..8], b"NBDMAGIC");
        assert_eq!(
            u64::from_be_bytes(hello[8..16].try_into().unwrap()),
            IHAVEOPT
        );
        let flags = u16::from_be_bytes([hello[16], hello[17]]);
        assert_eq!(flags & 3, 3, "FIXED_NEWSTYLE and NO_ZEROES offered");
        client.stream.write_all(&3_u32.to_be_bytes()).unwrap();
        client
    }

    pub fn send_option(&mut self, option: u32, data: &[u8]) {
        let mut out = IHAVEOPT.to_be_bytes().to_vec();
        out.extend_from_slice(&option.to_be_bytes());
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        out.extend_from_slice(data);
        self.stream.write_all(&out).unwrap();
    }

    pub fn reply(&mut self) -> OptionReply {
        let mut header = [0_u8; 20];
        self.stream.read_exact(&mut header).expect("option reply");
        assert_eq!(
            u64::from_be_bytes(header[..8].try_into().unwrap()),
            REPLY_MAGIC
        );
        let length = u32::from_be_bytes(header[16..20].try_into().unwrap());
        assert!(length < 65536);
        let mut data = vec![0; length as usize];
        self.stream.read_exact(&mut data).unwrap();
        OptionReply {
            option: u32::from_be_bytes(header[8..12].try_into().unwrap()),
            kind: u32::from_be_bytes(header[12..16].try_into().unwrap()),
            data,
        }
    }

    pub fn info_request(name: &str, requests: &[u16]) -> Vec<u8> {
        let mut data = u32::try_from(name.len()).unwrap().to_be_bytes().to_vec();
        data.extend_from_slice(name.as_bytes());
        data.extend_from_slice(&u16::try_from(requests.len()).unwrap().to_be_bytes());
        for r in requests {
            data.extend_from_slice(&r.to_be_bytes());
        }
        data
    }

    /// `OPT_GO` on `name`; returns (size, transmission flags, block sizes).
    pub fn go(&mut self, name: &str) -> (u64, u16, [u32; 3]) {
        self.send_option(OPT_GO, &Self::info_request(name, &[3]));
        let mut export = None;
        let mut sizes = None;
        loop {
            let reply = self.reply();
            assert_eq!(reply.option, OPT_GO);
            match reply.kind {
                REP_INFO => match u16::from_be_bytes([reply.data[0], reply.data[1]]) {
                    0 => {
                        export = Some((
                            u64::from_be_bytes(reply.data[2..10].try_into().unwrap()),
                            u16::from_be_bytes([reply.data[10], reply.data[11]]),
                        ));
                    }
                    3 => {
                        let v =
                            |i: usize| u32::from_be_bytes(reply.data[i..i + 4].try_into().unwrap());
                        sizes = Some([v(2), v(6), v(10)]);
                    }
                    _ => {}
                },
                REP_ACK => break,
                other => panic!("OPT_GO {name}: reply type {other:#x}"),
            }
        }
        let (size, flags) = export.expect("NBD_INFO_EXPORT");
        (size, flags, sizes.expect("NBD_INFO_BLOCK_SIZE"))
    }

    pub fn request(
        &mut self,
        command: u16,
        flags: u16,
        cookie: u64,
        offset: u64,
        length: u32,
        data: &[u8],
    ) {
        let mut out = 0x2560_9513_u32.to_be_bytes().to_vec();
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&command.to_be_bytes());
        out.extend_from_slice(&cookie.to_be_bytes());
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(data);
        self.stream.write_all(&out).unwrap();
    }

    /// The error of the simple reply to `cookie`, and `read` bytes of data on success.
    pub fn simple_reply(&mut self, cookie: u64, read: usize) -> (u32, Vec<u8>) {
        let mut header = [0_u8; 16];
        self.stream.read_exact(&mut header).expect("simple reply");
        assert_eq!(
            u32::from_be_bytes(header[..4].try_into().unwrap()),
            0x6744_6698
        );
        assert_eq!(
            u64::from_be_bytes(header[8..16].try_into().unwrap()),
            cookie
        );
        let error = u32::from_be_bytes(header[4..8].try_into().unwrap());
        let mut data = vec![0; if error == 0 { read } else { 0 }];
        self.stream.read_exact(&mut data).unwrap();
        (error, data)
    }

    pub fn write(&mut self, offset: u64, data: &[u8], flags: u16) -> u32 {
        self.request(
            CMD_WRITE,
            flags,
            7,
            offset,
            u32::try_from(data.len()).unwrap(),
            data,
        );
        self.simple_reply(7, 0).0
    }

    pub fn read(&mut self, offset: u64, length: u32) -> Result<Vec<u8>, u32> {
        self.request(CMD_READ, 0, 9, offset, length, &[]);
        match self.simple_reply(9, length as usize) {
            (0, data) => Ok(data),
            (error, _) => Err(error),
        }
    }

    pub fn command(&mut self, command: u16, flags: u16, offset: u64, length: u32) -> u32 {
        self.request(command, flags, 11, offset, length, &[]);
        self.simple_reply(11, 0).0
    }

    /// Whether the server closed the connection (EOF or reset within the timeout).
    pub fn closed(&mut self) -> bool {
        let mut buffer = [0_u8; 64];
        loop {
            match self.stream.read(&mut buffer) {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    }
}

pub fn pattern(length: usize, seed: u8) -> Vec<u8> {
    (0..length)
        .map(|i| u8::try_from((i * 7 + usize::from(seed)) % 251).unwrap() ^ seed)
        .collect()
}
