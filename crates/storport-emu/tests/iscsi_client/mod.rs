//! A raw iSCSI initiator for the `serve_*` tests: PDU layouts written out
//! from RFC 7143 §11, not taken from the target.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub const LOGIN: u8 = 0x03;
pub const LOGIN_RESPONSE: u8 = 0x23;
pub const TEXT: u8 = 0x04;
pub const TEXT_RESPONSE: u8 = 0x24;
pub const SCSI_COMMAND: u8 = 0x01;
pub const SCSI_RESPONSE: u8 = 0x21;
pub const DATA_IN: u8 = 0x25;
pub const DATA_OUT: u8 = 0x05;
pub const R2T: u8 = 0x31;
pub const NOP_OUT: u8 = 0x00;
pub const NOP_IN: u8 = 0x20;
pub const TMF: u8 = 0x02;
pub const TMF_RESPONSE: u8 = 0x22;
pub const LOGOUT: u8 = 0x06;
pub const LOGOUT_RESPONSE: u8 = 0x26;
pub const REJECT: u8 = 0x3F;
pub const INITIATOR: &str = "iqn.2026-11.test:initiator";

#[derive(Debug)]
pub struct Pdu {
    pub bhs: [u8; 48],
    pub data: Vec<u8>,
}

impl Pdu {
    pub const fn new(opcode: u8, flags: u8) -> Self {
        let mut bhs = [0_u8; 48];
        bhs[0] = opcode;
        bhs[1] = flags;
        Self {
            bhs,
            data: Vec::new(),
        }
    }
    pub const fn opcode(&self) -> u8 {
        self.bhs[0] & 0x3F
    }
    pub fn u32(&self, at: usize) -> u32 {
        u32::from_be_bytes(self.bhs[at..at + 4].try_into().unwrap())
    }
    pub fn set(&mut self, at: usize, value: u32) {
        self.bhs[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }
}

pub fn keys(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(format!("{k}={v}").as_bytes());
        out.push(0);
    }
    out
}

pub fn parse_keys(data: &[u8]) -> Vec<(String, String)> {
    data.split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let text = String::from_utf8_lossy(e);
            let (k, v) = text.split_once('=').expect("key=value");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

pub fn value<'a>(keys: &'a [(String, String)], key: &str) -> Option<&'a str> {
    keys.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

pub struct Connection {
    pub stream: TcpStream,
    pub itt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl Connection {
    pub fn connect(address: SocketAddr) -> Self {
        let stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Self {
            stream,
            itt: 1,
            cmd_sn: 1,
            exp_stat_sn: 0,
        }
    }

    pub fn send(&mut self, pdu: &mut Pdu) {
        let length = u32::try_from(pdu.data.len()).unwrap();
        pdu.bhs[5..8].copy_from_slice(&length.to_be_bytes()[1..]);
        let mut out = pdu.bhs.to_vec();
        out.extend_from_slice(&pdu.data);
        out.resize(out.len().div_ceil(4) * 4, 0);
        self.stream.write_all(&out).unwrap();
    }

    pub fn receive(&mut self) -> Pdu {
        let mut bhs = [0_u8; 48];
        self.stream.read_exact(&mut bhs).expect("a PDU");
        let length = usize::from(bhs[5]) << 16 | usize::from(bhs[6]) << 8 | usize::from(bhs[7]);
        assert!(length <= 1 << 20, "data segment {length}");
        let mut data = vec![0; length.div_ceil(4) * 4 + usize::from(bhs[4]) * 4];
        self.stream.read_exact(&mut data).unwrap();
        data.truncate(length);
        let pdu = Pdu { bhs, data };
        if matches!(
            pdu.opcode(),
            SCSI_RESPONSE
                | NOP_IN
                | TEXT_RESPONSE
                | LOGIN_RESPONSE
                | TMF_RESPONSE
                | LOGOUT_RESPONSE
        ) || (pdu.opcode() == DATA_IN && pdu.bhs[1] & 1 != 0)
        {
            self.exp_stat_sn = pdu.u32(24).wrapping_add(1);
        }
        pdu
    }

    pub fn closed(&mut self) -> bool {
        let mut buffer = [0_u8; 256];
        loop {
            match self.stream.read(&mut buffer) {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    }

    /// One login request from security to full feature phase; returns the response.
    pub fn login_once(&mut self, pairs: &[(&str, &str)]) -> Pdu {
        // T=1, CSG=1 (operational), NSG=3 (full feature).
        let mut pdu = Pdu::new(LOGIN | 0x40, 0x80 | 1 << 2 | 3);
        pdu.bhs[8..14].copy_from_slice(&[0x80, 0, 0, 0x12, 0x34, 0x56]);
        pdu.set(16, self.itt);
        pdu.set(24, self.cmd_sn);
        pdu.data = keys(pairs);
        self.send(&mut pdu);
        let response = self.receive();
        assert_eq!(response.opcode(), LOGIN_RESPONSE);
        response
    }

    /// A normal-session login to `target` with the given extra keys; returns the answered keys.
    pub fn login(&mut self, target: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut pairs = vec![
            ("InitiatorName", INITIATOR),
            ("SessionType", "Normal"),
            ("TargetName", target),
        ];
        pairs.extend_from_slice(extra);
        let response = self.login_once(&pairs);
        assert_eq!(
            u16::from_be_bytes([response.bhs[36], response.bhs[37]]),
            0,
            "login status"
        );
        assert_eq!(
            response.bhs[1] & 0x83,
            0x83,
            "transit to full feature phase"
        );
        assert_ne!(&response.bhs[14..16], &[0, 0], "TSIH assigned");
        parse_keys(&response.data)
    }

    pub const fn next_itt(&mut self) -> u32 {
        self.itt += 1;
        self.itt
    }

    /// A SCSI command PDU (not yet sent).
    pub fn command(&mut self, lun: u8, cdb: &[u8], flags: u8, expected: u32) -> Pdu {
        let mut pdu = Pdu::new(SCSI_COMMAND, 0x80 | flags | 1);
        pdu.bhs[9] = lun;
        let itt = self.next_itt();
        pdu.set(16, itt);
        pdu.set(20, expected);
        pdu.set(24, self.cmd_sn);
        self.cmd_sn += 1;
        pdu.set(28, self.exp_stat_sn);
        pdu.bhs[32..32 + cdb.len()].copy_from_slice(cdb);
        pdu
    }

    /// Runs a read; returns (status, data, response PDU or the final Data-In).
    pub fn read(&mut self, lun: u8, cdb: &[u8], expected: u32) -> (u8, Vec<u8>, Pdu) {
        let mut pdu = self.command(lun, cdb, 0x40, expected);
        self.send(&mut pdu);
        let mut data = Vec::new();
        let mut data_sn = 0;
        loop {
            let reply = self.receive();
            match reply.opcode() {
                DATA_IN => {
                    assert_eq!(reply.u32(16), pdu.u32(16));
                    assert_eq!(reply.u32(36), data_sn, "DataSN in order");
                    assert_eq!(reply.u32(40) as usize, data.len(), "buffer offset");
                    data_sn += 1;
                    data.extend_from_slice(&reply.data);
                    if reply.bhs[1] & 1 != 0 {
                        return (reply.bhs[3], data, reply);
                    }
                }
                SCSI_RESPONSE => return (reply.bhs[3], data, reply),
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    /// Runs a write with `immediate` bytes of immediate data and R2T for the rest.
    pub fn write(
        &mut self,
        lun: u8,
        cdb: &[u8],
        payload: &[u8],
        immediate: usize,
    ) -> (u8, Pdu, u32) {
        let mut pdu = self.command(lun, cdb, 0x20, u32::try_from(payload.len()).unwrap());
        pdu.data = payload[..immediate].to_vec();
        self.send(&mut pdu);
        let mut r2ts = 0;
        loop {
            let reply = self.receive();
            match reply.opcode() {
                R2T => {
                    assert_eq!(reply.u32(16), pdu.u32(16));
                    assert_eq!(reply.u32(36), r2ts, "R2TSN");
                    r2ts += 1;
                    let offset = reply.u32(40) as usize;
                    let length = reply.u32(44) as usize;
                    // Data-Out in 8 KiB PDUs (the target's MaxRecvDataSegmentLength is larger).
                    let mut sent = 0;
                    let mut data_sn = 0;
                    while sent < length {
                        let chunk = (length - sent).min(8192);
                        let last = sent + chunk == length;
                        let mut out = Pdu::new(DATA_OUT, if last { 0x80 } else { 0 });
                        out.bhs[9] = lun;
                        out.set(16, pdu.u32(16));
                        out.set(20, reply.u32(20));
                        out.set(28, self.exp_stat_sn);
                        out.set(36, data_sn);
                        out.set(40, u32::try_from(offset + sent).unwrap());
                        out.data = payload[offset + sent..offset + sent + chunk].to_vec();
                        self.send(&mut out);
                        sent += chunk;
                        data_sn += 1;
                    }
                }
                SCSI_RESPONSE => return (reply.bhs[3], reply, r2ts),
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    pub fn tmf(&mut self, function: u8, lun: u8, referenced: u32) -> u8 {
        let mut pdu = Pdu::new(TMF | 0x40, 0x80 | function);
        pdu.bhs[9] = lun;
        let itt = self.next_itt();
        pdu.set(16, itt);
        pdu.set(20, referenced);
        pdu.set(24, self.cmd_sn);
        pdu.set(28, self.exp_stat_sn);
        self.send(&mut pdu);
        let reply = self.receive();
        assert_eq!(reply.opcode(), TMF_RESPONSE);
        assert_eq!(reply.u32(16), itt);
        reply.bhs[2]
    }

    pub fn logout(&mut self) {
        let mut pdu = Pdu::new(LOGOUT | 0x40, 0x80);
        let itt = self.next_itt();
        pdu.set(16, itt);
        pdu.set(24, self.cmd_sn);
        pdu.set(28, self.exp_stat_sn);
        self.send(&mut pdu);
        let reply = self.receive();
        assert_eq!((reply.opcode(), reply.bhs[2]), (LOGOUT_RESPONSE, 0));
        assert!(self.closed(), "the target closes after logout");
    }
}

pub fn rw10(opcode: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let mut cdb = [0_u8; 10];
    cdb[0] = opcode;
    cdb[2..6].copy_from_slice(&lba.to_be_bytes());
    cdb[7..9].copy_from_slice(&blocks.to_be_bytes());
    cdb
}

pub fn pattern(length: usize, seed: u8) -> Vec<u8> {
    (0..length)
        .map(|i| u8::try_from((i * 13 + usize::from(seed)) % 253).unwrap() ^ seed)
        .collect()
}
