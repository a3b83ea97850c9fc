//! `storemu serve` over iSCSI on the real vstor.sys: login and key
//! negotiation, discovery, SCSI commands with Data-In, immediate data, R2T
//! and Data-Out, sense and residuals, NOP, task management, two sessions,
//! and hostile input. PDU layouts are written out from RFC 7143 §11, not
//! taken from the target.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[expect(dead_code, reason = "each test binary uses part of the shared harness")]
mod port_support;
#[expect(dead_code, reason = "each test binary uses part of the shared harness")]
mod serve_support;

use serve_support::Served;

mod iscsi_client;

use iscsi_client::*;

#[test]
fn discovery_lists_the_target_and_login_negotiates_every_key() {
    let served = Served::start(&["DiskCount=dword:2"], &["iscsi"]);
    let mut discovery = Connection::connect(served.iscsi());
    let response = discovery.login_once(&[
        ("InitiatorName", INITIATOR),
        ("SessionType", "Discovery"),
        ("AuthMethod", "None"),
    ]);
    assert_eq!(&response.bhs[36..38], &[0, 0]);
    let mut text = Pdu::new(TEXT | 0x40, 0x80);
    text.set(16, 77);
    text.set(20, 0xFFFF_FFFF);
    text.set(24, discovery.cmd_sn);
    text.data = keys(&[("SendTargets", "All")]);
    discovery.send(&mut text);
    let reply = discovery.receive();
    assert_eq!(reply.opcode(), TEXT_RESPONSE);
    let answer = parse_keys(&reply.data);
    assert_eq!(value(&answer, "TargetName"), Some(served.target.as_str()));
    assert_eq!(
        value(&answer, "TargetAddress"),
        Some(format!("{},1", served.iscsi()).as_str())
    );
    discovery.logout();

    let mut normal = Connection::connect(served.iscsi());
    let answered = normal.login(
        &served.target,
        &[
            ("HeaderDigest", "CRC32C,None"),
            ("DataDigest", "None"),
            ("MaxRecvDataSegmentLength", "8192"),
            ("MaxBurstLength", "65536"),
            ("FirstBurstLength", "16384"),
            ("ImmediateData", "Yes"),
            ("InitialR2T", "No"),
            ("MaxConnections", "4"),
            ("ErrorRecoveryLevel", "2"),
            ("MaxOutstandingR2T", "8"),
            ("DataPDUInOrder", "Yes"),
            ("DataSequenceInOrder", "Yes"),
            ("DefaultTime2Wait", "0"),
            ("DefaultTime2Retain", "20"),
            ("IFMarker", "No"),
            ("X-com.example.unknown", "1"),
        ],
    );
    let expect = [
        ("HeaderDigest", "None"),
        ("DataDigest", "None"),
        ("MaxBurstLength", "65536"),
        ("FirstBurstLength", "16384"),
        ("ImmediateData", "Yes"),
        ("InitialR2T", "Yes"),
        ("MaxConnections", "1"),
        ("ErrorRecoveryLevel", "0"),
        ("MaxOutstandingR2T", "1"),
        ("DataPDUInOrder", "Yes"),
        ("DataSequenceInOrder", "Yes"),
        ("DefaultTime2Wait", "2"),
        ("DefaultTime2Retain", "0"),
        ("IFMarker", "No"),
        ("X-com.example.unknown", "NotUnderstood"),
        ("TargetPortalGroupTag", "1"),
    ];
    for (key, wanted) in expect {
        assert_eq!(value(&answered, key), Some(wanted), "{key} in {answered:?}");
    }
    assert!(value(&answered, "MaxRecvDataSegmentLength").is_some());
    assert_eq!(
        value(&answered, "InitiatorName"),
        None,
        "declarations get no answer"
    );
    normal.logout();

    let mut wrong = Connection::connect(served.iscsi());
    let response = wrong.login_once(&[
        ("InitiatorName", INITIATOR),
        ("TargetName", "iqn.2026-11.test:nobody"),
    ]);
    assert_eq!(&response.bhs[36..38], &[0x02, 0x03], "target not found");
    assert!(wrong.closed());
    let mut chap = Connection::connect(served.iscsi());
    let response = chap.login_once(&[
        ("InitiatorName", INITIATOR),
        ("TargetName", &served.target),
        ("AuthMethod", "CHAP"),
    ]);
    assert_eq!(
        &response.bhs[36..38],
        &[0x02, 0x01],
        "authentication failure"
    );
    let mut nameless = Connection::connect(served.iscsi());
    let response = nameless.login_once(&[("TargetName", &served.target)]);
    assert_eq!(
        &response.bhs[36..38],
        &[0x02, 0x07],
        "missing InitiatorName"
    );
    served.stop_clean();
}

#[test]
fn commands_move_data_through_the_miniport_with_r2t_sense_and_residuals() {
    let served = Served::start(&["DiskCount=dword:2"], &["iscsi"]);
    let mut c = Connection::connect(served.iscsi());
    c.login(
        &served.target,
        &[
            ("MaxRecvDataSegmentLength", "8192"),
            ("MaxBurstLength", "65536"),
            ("FirstBurstLength", "16384"),
            ("ImmediateData", "Yes"),
        ],
    );
    // INQUIRY: status piggybacked on Data-In, residual underflow (255 asked, 96 or so given).
    let (status, data, last) = c.read(0, &[0x12, 0, 0, 0, 255, 0], 255);
    assert_eq!(status, 0);
    assert_eq!(&data[8..13], b"VSTOR");
    assert_eq!(last.opcode(), DATA_IN);
    assert_eq!(last.bhs[1] & 0x02, 0x02, "underflow flag");
    assert_eq!(last.u32(44) as usize, 255 - data.len());
    // REPORT LUNS from the miniport: two LUNs.
    let (status, data, _) = c.read(0, &[0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!(status, 0);
    assert_eq!(u32::from_be_bytes(data[..4].try_into().unwrap()), 16);
    // 192 KiB: 16 KiB immediate, then three 64 KiB R2T bursts (the last one short).
    let payload = pattern(192 * 1024, 7);
    let (status, response, r2ts) = c.write(1, &rw10(0x2A, 64, 384), &payload, 16384);
    assert_eq!(status, 0);
    assert_eq!(r2ts, 3);
    assert_eq!(response.u32(36), r2ts, "ExpDataSN counts the R2Ts");
    // Read it back: Data-In in 8 KiB PDUs (the initiator's MaxRecvDataSegmentLength).
    let (status, data, _) = c.read(1, &rw10(0x28, 64, 384), 192 * 1024);
    assert_eq!(status, 0);
    assert_eq!(data, payload);
    // LUN 0 did not get LUN 1's data.
    let (_, other, _) = c.read(0, &rw10(0x28, 64, 1), 512);
    assert_ne!(other, payload[..512]);
    // Past the end: CHECK CONDITION, ILLEGAL REQUEST, LBA OUT OF RANGE, in the response.
    let (status, _, response) = c.read(0, &rw10(0x28, 131_071, 2), 1024);
    assert_eq!((status, response.opcode()), (2, SCSI_RESPONSE));
    let sense = &response.data[2..];
    assert_eq!(
        usize::from(u16::from_be_bytes([response.data[0], response.data[1]])),
        sense.len()
    );
    assert_eq!((sense[2] & 0x0F, sense[12], sense[13]), (0x05, 0x21, 0x00));
    // A LUN the miniport does not have: LOGICAL UNIT NOT SUPPORTED.
    let (status, _, response) = c.read(9, &[0, 0, 0, 0, 0, 0], 0);
    assert_eq!(status, 2);
    assert_eq!((response.data[4] & 0x0F, response.data[14]), (0x05, 0x25));
    // Expected length shorter than the read: overflow, only what fits is sent.
    let (status, data, last) = c.read(1, &rw10(0x28, 64, 2), 512);
    assert_eq!(status, 0);
    assert_eq!(data, payload[..512]);
    assert_eq!((last.bhs[1] & 0x04, last.u32(44)), (0x04, 512), "overflow");
    // NOP-Out ping: echoed.
    let mut nop = Pdu::new(NOP_OUT | 0x40, 0x80);
    nop.set(16, 4242);
    nop.set(20, 0xFFFF_FFFF);
    nop.set(24, c.cmd_sn);
    nop.data = b"ping".to_vec();
    c.send(&mut nop);
    let pong = c.receive();
    assert_eq!(
        (pong.opcode(), pong.u32(16), pong.data.as_slice()),
        (NOP_IN, 4242, &b"ping"[..])
    );
    c.logout();
    served.stop_clean();
}

/// Reads blocks 8.. after a reset: a UNIT ATTENTION (POWER ON, RESET, OR BUS
/// DEVICE RESET OCCURRED) may come first, once; then the data.
fn read_after_reset(c: &mut Connection, length: u16) -> Vec<u8> {
    let cdb = rw10(0x28, 8, length / 512);
    let (status, data, response) = c.read(0, &cdb, u32::from(length));
    if status == 0 {
        return data;
    }
    assert_eq!(status, 2);
    assert_eq!((response.data[4] & 0x0F, response.data[14]), (0x06, 0x29));
    let (status, data, _) = c.read(0, &cdb, u32::from(length));
    assert_eq!(status, 0);
    data
}

#[test]
fn task_management_and_two_sessions() {
    let served = Served::start(&[], &["iscsi"]);
    let mut a = Connection::connect(served.iscsi());
    a.login(&served.target, &[]);
    let mut b = Connection::connect(served.iscsi());
    b.login(&served.target, &[]);
    let data = pattern(4096, 3);
    assert_eq!(a.write(0, &rw10(0x2A, 8, 8), &data, 4096).0, 0);
    let (status, seen, _) = b.read(0, &rw10(0x28, 8, 8), 4096);
    assert_eq!(status, 0);
    assert_eq!(seen, data, "the second session sees the first one's write");
    assert_eq!(
        a.tmf(5, 0, 0xFFFF_FFFF),
        0,
        "LOGICAL UNIT RESET: function complete"
    );
    assert_eq!(
        a.tmf(1, 0, 0x7777),
        1,
        "ABORT TASK of a finished task: does not exist"
    );
    assert_eq!(a.tmf(3, 0, 0xFFFF_FFFF), 5, "CLEAR ACA: not supported");
    assert_eq!(
        b.tmf(6, 0, 0xFFFF_FFFF),
        0,
        "TARGET WARM RESET through HwResetBus"
    );
    // Both sessions go on after the resets, and the data is still there.
    assert_eq!(read_after_reset(&mut a, 4096), data);
    a.logout();
    assert_eq!(read_after_reset(&mut b, 4096), data);
    b.logout();
    served.stop_clean();
}

#[test]
fn hostile_input_ends_the_connection_and_the_target_goes_on() {
    let served = Served::start(&[], &["iscsi"]);
    let address = served.iscsi();

    // A SCSI command before login: login rejected, connection closed.
    let mut early = Connection::connect(address);
    let mut pdu = Pdu::new(SCSI_COMMAND, 0x80);
    pdu.bhs[32] = 0x12;
    early.send(&mut pdu);
    let reply = early.receive();
    assert_eq!(reply.opcode(), LOGIN_RESPONSE);
    assert_eq!(reply.bhs[36], 0x02, "initiator error class");
    assert!(early.closed());

    // A data segment length beyond what the target declared: closed, nothing allocated.
    let mut huge = Connection::connect(address);
    huge.login(&served.target, &[]);
    let mut pdu = huge.command(0, &rw10(0x2A, 0, 1), 0x20, 512);
    pdu.bhs[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
    huge.stream.write_all(&pdu.bhs).unwrap();
    assert!(huge.closed());

    // An unknown opcode after login: Reject, then closed.
    let mut unknown = Connection::connect(address);
    unknown.login(&served.target, &[]);
    let mut pdu = Pdu::new(0x1C, 0x80);
    unknown.send(&mut pdu);
    assert_eq!(unknown.receive().opcode(), REJECT);
    assert!(unknown.closed());

    // Data-Out that no R2T asked for: Reject, closed.
    let mut stray = Connection::connect(address);
    stray.login(&served.target, &[]);
    let mut pdu = Pdu::new(DATA_OUT, 0x80);
    pdu.data = vec![0; 512];
    stray.send(&mut pdu);
    assert_eq!(stray.receive().opcode(), REJECT);
    assert!(stray.closed());

    // Data-Out at the wrong offset for its R2T: closed.
    let mut offset = Connection::connect(address);
    offset.login(&served.target, &[("ImmediateData", "No")]);
    let mut pdu = offset.command(0, &rw10(0x2A, 0, 2), 0x20, 1024);
    offset.send(&mut pdu);
    let r2t = offset.receive();
    assert_eq!(r2t.opcode(), R2T);
    let mut out = Pdu::new(DATA_OUT, 0x80);
    out.set(16, pdu.u32(16));
    out.set(20, r2t.u32(20));
    out.set(40, 512);
    out.data = vec![1; 512];
    offset.send(&mut out);
    assert_eq!(offset.receive().opcode(), REJECT);
    assert!(offset.closed());

    // An expected transfer length of 4 GiB: refused without allocating it.
    let mut greedy = Connection::connect(address);
    greedy.login(&served.target, &[]);
    let (status, _, response) = greedy.read(0, &rw10(0x28, 0, 1), 0xFFFF_FFFF);
    assert_eq!(
        (status, response.opcode(), response.bhs[2]),
        (0, SCSI_RESPONSE, 1)
    );

    // Early closes: mid-header and mid-data.
    let mut partial = Connection::connect(address);
    partial
        .stream
        .write_all(&[LOGIN | 0x40, 0x87, 0, 0])
        .unwrap();
    drop(partial);
    let mut partial = Connection::connect(address);
    partial.login(&served.target, &[("ImmediateData", "No")]);
    let mut pdu = partial.command(0, &rw10(0x2A, 0, 8), 0x20, 4096);
    partial.send(&mut pdu);
    assert_eq!(partial.receive().opcode(), R2T);
    drop(partial);

    // The target still serves.
    let mut c = Connection::connect(address);
    c.login(&served.target, &[]);
    let data = pattern(1024, 9);
    assert_eq!(c.write(0, &rw10(0x2A, 2, 2), &data, 1024).0, 0);
    assert_eq!(c.read(0, &rw10(0x28, 2, 2), 1024).1, data);
    c.logout();
    served.stop_clean();
}

/// A small deterministic generator for the garbage below (xorshift64).
struct Noise(u64);

impl Noise {
    const fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, length: usize) -> Vec<u8> {
        (0..length).map(|_| self.next().to_le_bytes()[0]).collect()
    }
}

/// Sends `garbage`, half-closes, and drains what the target says until it closes.
fn throw(stream: &mut TcpStream, garbage: &[u8]) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(garbage);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = Vec::new();
    let _ = stream.read_to_end(&mut sink);
}

#[test]
fn random_pdus_before_and_after_login_never_stop_the_target() {
    let served = Served::start(&[], &["iscsi"]);
    let mut noise = Noise(0xC0FF_EE00_1234_5678);
    for round in 0..48_u64 {
        // A header with a valid opcode most of the time and a small data
        // segment length, so the target reads it and acts on the fields.
        let mut pdu = noise.bytes(48);
        let opcodes = [
            NOP_OUT,
            SCSI_COMMAND,
            TMF,
            LOGIN,
            TEXT,
            DATA_OUT,
            LOGOUT,
            0x10,
            0x3F,
        ];
        pdu[0] = opcodes[usize::try_from(noise.next() % 9).unwrap()] | (pdu[0] & 0x40);
        pdu[4] = 0;
        let length = noise.next() % 600;
        pdu[5..8].copy_from_slice(&u32::try_from(length).unwrap().to_be_bytes()[1..]);
        let padded = usize::try_from(length.div_ceil(4) * 4).unwrap();
        pdu.extend(noise.bytes(padded));
        let tail = usize::try_from(noise.next() % 64).unwrap();
        pdu.extend(noise.bytes(tail));
        let mut c = Connection::connect(served.iscsi());
        if round % 2 == 1 {
            c.login(&served.target, &[]);
        }
        throw(&mut c.stream, &pdu);
    }
    let mut c = Connection::connect(served.iscsi());
    c.login(&served.target, &[]);
    let data = pattern(512, 5);
    assert_eq!(c.write(0, &rw10(0x2A, 30, 1), &data, 512).0, 0);
    assert_eq!(c.read(0, &rw10(0x28, 30, 1), 512).1, data);
    c.logout();
    served.stop_clean();
}

/// The SCSI status of a command without data, and the (key, ASC, ASCQ) of its sense.
fn no_data(c: &mut Connection, cdb: &[u8]) -> (u8, Option<(u8, u8, u8)>) {
    let (status, _, response) = c.read(0, cdb, 0);
    let sense = (status == 2).then(|| {
        (
            response.data[4] & 0x0F,
            response.data[14],
            response.data[15],
        )
    });
    (status, sense)
}

#[test]
fn sessions_on_ports_of_their_own_keep_reservations_and_unit_attentions_apart() {
    const TUR: [u8; 6] = [0; 6];
    const RESERVE: [u8; 6] = [0x16, 0, 0, 0, 0, 0];
    let served = Served::start(&["TargetPorts=dword:2"], &["iscsi"]);
    let mut a = Connection::connect(served.iscsi());
    a.login(&served.target, &[]);
    let mut b = Connection::connect(served.iscsi());
    b.login(&served.target, &[]);
    // One logical unit behind both ports: b reads what a wrote.
    let data = pattern(4096, 9);
    assert_eq!(a.write(0, &rw10(0x2A, 8, 8), &data, 4096).0, 0);
    let (status, seen, _) = b.read(0, &rw10(0x28, 8, 8), 4096);
    assert_eq!((status, seen), (0, data));
    // RESERVE(6) through a's port: b's commands conflict.
    assert_eq!(no_data(&mut a, &RESERVE), (0, None));
    assert_eq!(no_data(&mut b, &TUR), (0x18, None), "RESERVATION CONFLICT");
    // A LOGICAL UNIT RESET through b ends the reservation and is reported once on each
    // session: BUS DEVICE RESET FUNCTION OCCURRED.
    assert_eq!(b.tmf(5, 0, 0xFFFF_FFFF), 0);
    for c in [&mut a, &mut b] {
        assert_eq!(no_data(c, &TUR), (2, Some((6, 0x29, 3))));
        assert_eq!(no_data(c, &TUR), (0, None));
    }
    // a reserves again and logs out: the target resets a's port, which ends the
    // reservation made through it, so b goes on.
    assert_eq!(no_data(&mut a, &RESERVE), (0, None));
    assert_eq!(no_data(&mut b, &TUR), (0x18, None));
    a.logout();
    assert_eq!(no_data(&mut b, &TUR), (0, None), "released by a's logout");
    assert_eq!(no_data(&mut b, &RESERVE), (0, None));
    b.logout();
    served.stop_clean();
}
