//! `storemu serve` on the real vstor.sys under hostile clients: idle and
//! stalled connections beyond the connection limit, handshake and idle
//! timeouts, WRITE headers whose payload never comes, login answers longer
//! than the initiator's `MaxRecvDataSegmentLength`, writes whose data ends
//! inside a block (iSCSI residuals and NBD), unknown NBD command flags, and
//! task management for a LUN that does not exist.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[expect(dead_code, reason = "each test binary uses part of the shared harness")]
mod port_support;
mod serve_support;

#[expect(
    dead_code,
    reason = "each test binary uses part of the shared initiator"
)]
mod iscsi_client;
#[expect(dead_code, reason = "each test binary uses part of the shared client")]
mod nbd_client;

use iscsi_client::{Connection, INITIATOR, LOGIN, LOGIN_RESPONSE, Pdu, parse_keys, pattern, rw10};
use nbd_client::{CMD_READ, CMD_WRITE, Client, EINVAL, FLAG_FUA};
use serve_support::Served;

/// Whether the server closes `stream` (end of stream) within its read
/// timeout; whatever it sends first (a greeting) is read and dropped.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut buffer = [0_u8; 512];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A TCP connection that sends nothing.
fn idle(address: SocketAddr) -> TcpStream {
    TcpStream::connect(address).expect("connect")
}

/// An NBD client in the transmission phase on the default export.
fn nbd_client(address: SocketAddr) -> Client {
    let mut client = Client::connect(address);
    client.go("");
    client
}

#[test]
fn idle_connections_beyond_the_limit_never_lock_out_a_new_client() {
    // Timeouts far longer than the test: only the limit's eviction can serve.
    let served = Served::start_with(
        &[],
        &["nbd", "iscsi"],
        &[
            "--max-connections",
            "4",
            "--handshake-timeout",
            "600",
            "--idle-timeout",
            "600",
        ],
    );
    let mut silent = Vec::new();
    for _ in 0..12 {
        silent.push(idle(served.nbd()));
        silent.push(idle(served.iscsi()));
    }
    // Clients past the handshake that went quiet, and a stalled WRITE payload.
    let mut quiet = nbd_client(served.nbd());
    quiet.request(CMD_WRITE, 0, 1, 0, 1 << 20, &[0; 1000]);
    let mut logged_in = Connection::connect(served.iscsi());
    logged_in.login(&served.target, &[]);
    for _ in 0..6 {
        silent.push(idle(served.nbd()));
        silent.push(idle(served.iscsi()));
    }
    // Well-behaved clients are served.
    let mut client = nbd_client(served.nbd());
    let data = pattern(4096, 5);
    assert_eq!(client.write(8192, &data, 0), 0);
    assert_eq!(client.read(8192, 4096), Ok(data.clone()));
    let mut initiator = Connection::connect(served.iscsi());
    initiator.login(&served.target, &[]);
    let (status, seen, _) = initiator.read(0, &rw10(0x28, 16, 8), 4096);
    assert_eq!(
        (status, seen),
        (0, data),
        "the iSCSI client sees the NBD write"
    );
    initiator.logout();
    // The oldest idle connections made room: the server closed them.
    assert!(
        closed_by_server(&mut silent[0]),
        "the first NBD connection was closed"
    );
    assert!(
        closed_by_server(&mut silent[1]),
        "the first iSCSI connection was closed"
    );
    drop(client);
    served.stop_clean();
}

#[test]
fn handshakes_and_idle_connections_time_out() {
    let served = Served::start_with(
        &[],
        &["nbd", "iscsi"],
        &["--handshake-timeout", "1", "--idle-timeout", "1"],
    );
    // No handshake at all, and a handshake that never chooses an export.
    let mut silent_nbd = idle(served.nbd());
    let mut haggling = Client::connect(served.nbd());
    let mut silent_iscsi = idle(served.iscsi());
    // Past the handshake, a client that goes quiet is closed too.
    let mut quiet = nbd_client(served.nbd());
    assert_eq!(quiet.read(0, 512).map(|d| d.len()), Ok(512));
    let mut quiet_iscsi = Connection::connect(served.iscsi());
    quiet_iscsi.login(&served.target, &[]);
    assert!(closed_by_server(&mut silent_nbd));
    assert!(closed_by_server(&mut haggling.stream));
    assert!(closed_by_server(&mut silent_iscsi));
    assert!(closed_by_server(&mut quiet.stream));
    assert!(closed_by_server(&mut quiet_iscsi.stream));
    served.stop_clean();
}

/// `VmRSS` of process `pid`, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn write_headers_without_payload_allocate_nothing() {
    const CONNECTIONS: usize = 16;
    let served = Served::start(&[], &["nbd"]);
    let mut warm = nbd_client(served.nbd());
    assert_eq!(warm.read(0, 4096).map(|d| d.len()), Ok(4096));
    let before = resident_kib(served.pid());
    let mut pending = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut client = nbd_client(served.nbd());
        // A READ and, in the same segment, a WRITE announcing 32 MiB that
        // never come: the READ's reply goes out once the server waits for
        // the WRITE's payload.
        let mut burst = Vec::new();
        for (command, cookie, length) in [(CMD_READ, 1_u64, 512_u32), (CMD_WRITE, 2, 32 << 20)] {
            burst.extend_from_slice(&0x2560_9513_u32.to_be_bytes());
            burst.extend_from_slice(&0_u16.to_be_bytes());
            burst.extend_from_slice(&command.to_be_bytes());
            burst.extend_from_slice(&cookie.to_be_bytes());
            burst.extend_from_slice(&0_u64.to_be_bytes());
            burst.extend_from_slice(&length.to_be_bytes());
        }
        client.stream.write_all(&burst).expect("send");
        assert_eq!(client.simple_reply(1, 512).0, 0);
        pending.push(client);
    }
    let after = resident_kib(served.pid());
    let grown = after.saturating_sub(before);
    // Each header announced 32 MiB; together they cost less than one.
    assert!(
        grown < 32 * 1024,
        "resident memory grew by {grown} KiB for {CONNECTIONS} pending WRITE headers ({before} -> {after} KiB)"
    );
    // The server still serves, and a payload that does arrive is written.
    let data = pattern(1 << 20, 9);
    assert_eq!(warm.write(1 << 20, &data, FLAG_FUA), 0);
    assert_eq!(warm.read(1 << 20, 1 << 20), Ok(data));
    drop(pending);
    served.stop_clean();
}

#[test]
fn nbd_writes_that_end_inside_a_block_and_unknown_flags_are_refused() {
    let served = Served::start(&[], &["nbd"]);
    let mut client = nbd_client(served.nbd());
    let before = pattern(2048, 3);
    assert_eq!(client.write(0, &before, 0), 0);
    // 700 bytes (a block and part of one), and a block at a byte offset.
    assert_eq!(client.write(0, &[0xEE; 700], 0), EINVAL);
    assert_eq!(client.write(100, &[0xEE; 512], 0), EINVAL);
    // Unknown flags: NBD_CMD_FLAG_FAST_ZERO (not negotiated) and bit 15.
    assert_eq!(client.write(0, &[0xEE; 512], 1 << 4), EINVAL);
    client.request(CMD_READ, 1 << 15, 3, 0, 512, &[]);
    assert_eq!(client.simple_reply(3, 0).0, EINVAL);
    // Nothing was written, and the connection goes on.
    assert_eq!(client.read(0, 2048), Ok(before));
    served.stop_clean();
}

/// The sense key, ASC and ASCQ of a SCSI Response's sense data.
fn sense(response: &Pdu) -> (u8, u8, u8) {
    let sense = &response.data[2..];
    (sense[2] & 0x0F, sense[12], sense[13])
}

/// `opcode` (WRITE 10, 12 or 16) of `blocks` blocks at `lba`.
fn write_cdb(opcode: u8, lba: u32, blocks: u16) -> Vec<u8> {
    match opcode {
        0x2A => rw10(0x2A, lba, blocks).to_vec(),
        0xAA => {
            let mut cdb = vec![0xAA, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            cdb[2..6].copy_from_slice(&lba.to_be_bytes());
            cdb[6..10].copy_from_slice(&u32::from(blocks).to_be_bytes());
            cdb
        }
        _ => {
            let mut cdb = vec![0x8A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            cdb[2..10].copy_from_slice(&u64::from(lba).to_be_bytes());
            cdb[10..14].copy_from_slice(&u32::from(blocks).to_be_bytes());
            cdb
        }
    }
}

#[test]
fn iscsi_writes_shorter_than_their_cdb_write_whole_blocks_or_nothing() {
    let served = Served::start(&[], &["iscsi"]);
    let mut c = Connection::connect(served.iscsi());
    c.login(&served.target, &[]);
    for (n, opcode) in [0x2A_u8, 0xAA, 0x8A].into_iter().enumerate() {
        let lba = 200 + 10 * u32::try_from(n).unwrap();
        let old = pattern(1024, 1);
        assert_eq!(c.write(0, &rw10(0x2A, lba, 2), &old, 1024).0, 0);
        // One block, 200 bytes expected and sent: CHECK CONDITION, ILLEGAL
        // REQUEST, INVALID FIELD IN COMMAND INFORMATION UNIT, with the
        // overflow residual; nothing written.
        let (status, response, _) = c.write(0, &write_cdb(opcode, lba, 1), &[0xEE; 200], 200);
        assert_eq!(status, 2, "opcode {opcode:#x}: 200 of 512 bytes");
        assert_eq!(sense(&response), (0x05, 0x0E, 0x03), "opcode {opcode:#x}");
        assert_eq!(
            (response.bhs[1] & 0x06, response.u32(44)),
            (0x04, 312),
            "opcode {opcode:#x}: overflow residual"
        );
        // Two blocks, a block and a half sent: refused the same way.
        let (status, response, _) = c.write(0, &write_cdb(opcode, lba, 2), &[0xEE; 768], 768);
        assert_eq!(status, 2, "opcode {opcode:#x}: 768 of 1024 bytes");
        assert_eq!(sense(&response), (0x05, 0x0E, 0x03), "opcode {opcode:#x}");
        let (status, data, _) = c.read(0, &rw10(0x28, lba, 2), 1024);
        assert_eq!(
            (status, data),
            (0, old.clone()),
            "opcode {opcode:#x}: nothing written"
        );
        // Two blocks, one whole block sent: GOOD, that block written.
        let new = pattern(512, 2);
        let (status, response, _) = c.write(0, &write_cdb(opcode, lba, 2), &new, 512);
        assert_eq!(status, 0, "opcode {opcode:#x}: one of two blocks");
        assert_eq!((response.bhs[1] & 0x06, response.u32(44)), (0x04, 512));
        let (status, data, _) = c.read(0, &rw10(0x28, lba, 2), 1024);
        assert_eq!(status, 0);
        assert_eq!(
            data[..512],
            new[..],
            "opcode {opcode:#x}: first block written"
        );
        assert_eq!(
            data[512..],
            old[512..],
            "opcode {opcode:#x}: second block kept"
        );
    }
    c.logout();
    served.stop_clean();
}

#[test]
fn logical_unit_reset_of_a_missing_lun_says_it_does_not_exist() {
    let served = Served::start(&[], &["iscsi"]);
    let mut c = Connection::connect(served.iscsi());
    c.login(&served.target, &[]);
    assert_eq!(c.tmf(5, 9, 0xFFFF_FFFF), 2, "LOGICAL UNIT RESET of LUN 9");
    assert_eq!(c.tmf(5, 0, 0xFFFF_FFFF), 0, "LOGICAL UNIT RESET of LUN 0");
    c.logout();
    served.stop_clean();
}

/// A Login Request (CSG 1) with `flags` and `data`.
fn login_request(c: &mut Connection, flags: u8, data: Vec<u8>) -> Pdu {
    let mut pdu = Pdu::new(LOGIN | 0x40, flags);
    pdu.bhs[8..14].copy_from_slice(&[0x80, 0, 0, 0x12, 0x34, 0x57]);
    pdu.set(16, c.itt);
    pdu.set(24, c.cmd_sn);
    pdu.set(28, c.exp_stat_sn);
    pdu.data = data;
    c.send(&mut pdu);
    let response = c.receive();
    assert_eq!(response.opcode(), LOGIN_RESPONSE);
    response
}

/// A login text with `unknown` keys the target does not know.
fn long_login(target: &str, unknown: usize, extra: &str) -> Vec<u8> {
    let mut text =
        format!("InitiatorName={INITIATOR}\0SessionType=Normal\0TargetName={target}\0{extra}")
            .into_bytes();
    for n in 0..unknown {
        text.extend_from_slice(format!("UnknownKey{n}=1\0").as_bytes());
    }
    text
}

/// Logs in with `text`, following continued Login Responses with empty
/// requests; returns the answer text and the largest data segment seen.
fn login_continued(c: &mut Connection, text: Vec<u8>) -> (Vec<u8>, usize) {
    // T=1, CSG=1, NSG=3.
    let mut response = login_request(c, 0x80 | 1 << 2 | 3, text);
    let mut answer = Vec::new();
    let mut largest = 0;
    loop {
        assert_eq!(
            u16::from_be_bytes([response.bhs[36], response.bhs[37]]),
            0,
            "login status"
        );
        largest = largest.max(response.data.len());
        answer.extend_from_slice(&response.data);
        if response.bhs[1] & 0x40 == 0 {
            break;
        }
        assert_eq!(response.bhs[1] & 0x80, 0, "no transit while continued");
        response = login_request(c, 0x80 | 1 << 2 | 3, Vec::new());
    }
    assert_eq!(
        response.bhs[1] & 0x83,
        0x83,
        "transit to full feature phase"
    );
    (answer, largest)
}

#[test]
fn login_answers_respect_the_initiators_max_recv_data_segment_length() {
    let served = Served::start(&[], &["iscsi"]);
    // No declaration: the 8,192-byte default; 2,000 keys answered NotUnderstood.
    let mut c = Connection::connect(served.iscsi());
    let (answer, largest) = login_continued(&mut c, long_login(&served.target, 2000, ""));
    assert!(largest <= 8192, "a Login Response carried {largest} bytes");
    let keys = parse_keys(&answer);
    assert_eq!(
        keys.iter()
            .filter(|(k, v)| k.starts_with("UnknownKey") && v == "NotUnderstood")
            .count(),
        2000
    );
    let (status, _, _) = c.read(0, &rw10(0x28, 0, 1), 512);
    assert_eq!(status, 0, "the session works after the continued login");
    c.logout();
    // A declared 4,096 bytes.
    let mut c = Connection::connect(served.iscsi());
    let (_, largest) = login_continued(
        &mut c,
        long_login(&served.target, 2000, "MaxRecvDataSegmentLength=4096\0"),
    );
    assert!(largest <= 4096, "a Login Response carried {largest} bytes");
    c.logout();
    // 512 bytes: more pieces than a login may take; refused with a login error.
    let mut c = Connection::connect(served.iscsi());
    let response = login_request(
        &mut c,
        0x80 | 1 << 2 | 3,
        long_login(&served.target, 2000, "MaxRecvDataSegmentLength=512\0"),
    );
    assert_eq!(
        u16::from_be_bytes([response.bhs[36], response.bhs[37]]),
        0x0200,
        "Initiator Error"
    );
    assert!(response.data.len() <= 512);
    // Text where an empty request was due: refused too.
    let mut c = Connection::connect(served.iscsi());
    let response = login_request(
        &mut c,
        0x80 | 1 << 2 | 3,
        long_login(&served.target, 2000, ""),
    );
    assert_eq!(response.bhs[1] & 0xC0, 0x40, "continued");
    let response = login_request(
        &mut c,
        0x80 | 1 << 2 | 3,
        b"MaxBurstLength=65536\0".to_vec(),
    );
    assert_eq!(
        u16::from_be_bytes([response.bhs[36], response.bhs[37]]),
        0x0200,
        "Initiator Error"
    );
    served.stop_clean();
}
