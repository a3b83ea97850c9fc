//! `storemu serve` over NBD on the real vstor.sys: the fixed newstyle
//! handshake and options, the block commands (each through the miniport),
//! and hostile input. Numbers are written out from the NBD protocol
//! description (`doc/proto.md`), not taken from the server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[expect(dead_code, reason = "each test binary uses part of the shared harness")]
mod port_support;
#[expect(dead_code, reason = "each test binary uses part of the shared harness")]
mod serve_support;

use serve_support::Served;

mod nbd_client;

use nbd_client::*;

#[test]
fn options_list_info_and_refusals() {
    let served = Served::start(&["DiskCount=dword:2"], &["nbd"]);
    let mut client = Client::connect(served.nbd());
    client.send_option(OPT_LIST, &[]);
    let mut names = Vec::new();
    loop {
        let reply = client.reply();
        match reply.kind {
            REP_SERVER => names.push(String::from_utf8(reply.data[4..].to_vec()).unwrap()),
            REP_ACK => break,
            other => panic!("OPT_LIST reply {other:#x}"),
        }
    }
    assert_eq!(names, ["lun0", "lun1"]);
    client.send_option(OPT_LIST, b"x");
    assert_eq!(client.reply().kind, REP_ERR_INVALID);
    client.send_option(OPT_INFO, &Client::info_request("lun9", &[]));
    assert_eq!(client.reply().kind, REP_ERR_UNKNOWN);
    client.send_option(OPT_INFO, &[0, 0, 0, 200, b'l']);
    assert_eq!(
        client.reply().kind,
        REP_ERR_INVALID,
        "name length past the data"
    );
    for unsupported in [OPT_STARTTLS, OPT_STRUCTURED_REPLY, 0x4242] {
        client.send_option(unsupported, &[]);
        let reply = client.reply();
        assert_eq!((reply.option, reply.kind), (unsupported, REP_ERR_UNSUP));
    }
    client.send_option(OPT_INFO, &Client::info_request("lun1", &[1]));
    let mut saw_name = false;
    loop {
        let reply = client.reply();
        match reply.kind {
            REP_INFO if reply.data[..2] == [0, 1] => {
                assert_eq!(&reply.data[2..], b"lun1");
                saw_name = true;
            }
            REP_INFO => {}
            REP_ACK => break,
            other => panic!("OPT_INFO reply {other:#x}"),
        }
    }
    assert!(saw_name, "NBD_INFO_NAME answers the request for it");
    let (size, flags, [minimum, preferred, maximum]) = client.go("lun1");
    assert_eq!(size, DISK_BYTES);
    // HAS_FLAGS, SEND_FLUSH, SEND_FUA, SEND_TRIM, SEND_WRITE_ZEROES; not READ_ONLY.
    assert_eq!(flags & 0b110_1111, 0b110_1101, "flags {flags:#x}");
    assert_eq!(minimum, 512);
    assert!(preferred >= minimum && maximum >= preferred && maximum >= 1 << 20);
    assert_eq!(client.command(CMD_FLUSH, 0, 0, 0), 0);
    client.request(CMD_DISC, 0, 1, 0, 0, &[]);
    assert!(client.closed(), "NBD_CMD_DISC closes the connection");

    let mut aborting = Client::connect(served.nbd());
    aborting.send_option(OPT_ABORT, &[]);
    assert_eq!(aborting.reply().kind, REP_ACK);
    assert!(aborting.closed());

    // The old-style choice: NBD_OPT_EXPORT_NAME, 10 bytes with NO_ZEROES.
    let mut old = Client::connect(served.nbd());
    old.send_option(OPT_EXPORT_NAME, b"lun0");
    let mut reply = [0_u8; 10];
    old.stream.read_exact(&mut reply).unwrap();
    assert_eq!(
        u64::from_be_bytes(reply[..8].try_into().unwrap()),
        DISK_BYTES
    );
    assert_eq!(old.read(0, 512).map(|d| d.len()), Ok(512));
    drop(old);
    served.stop_clean();
}

#[test]
fn data_round_trips_through_the_miniport_and_errors_map_to_errno() {
    let served = Served::start(&["DiskCount=dword:2"], &["nbd"]);
    let mut lun0 = Client::connect(served.nbd());
    lun0.go("lun0");
    let mut lun1 = Client::connect(served.nbd());
    lun1.go("lun1");
    // 3 MiB + 1 block: more than the adapter's 1 MiB maximum transfer, so split.
    let big = pattern((3 << 20) + 512, 3);
    assert_eq!(lun0.write(512 * 7, &big, 0), 0);
    assert_eq!(lun1.write(512 * 7, &pattern(4096, 9), FLAG_FUA), 0);
    assert_eq!(
        lun0.read(512 * 7, u32::try_from(big.len()).unwrap()),
        Ok(big.clone())
    );
    assert_eq!(
        lun1.read(512 * 7, 4096),
        Ok(pattern(4096, 9)),
        "LUNs keep their own data"
    );
    assert_eq!(lun0.command(CMD_FLUSH, 0, 0, 0), 0);
    // A second connection to the same export sees the data (CAN_MULTI_CONN).
    let mut again = Client::connect(served.nbd());
    again.go("lun0");
    assert_eq!(again.read(512 * 7, 4096), Ok(big[..4096].to_vec()));
    // The last block, then past the end.
    assert_eq!(lun0.write(DISK_BYTES - 512, &pattern(512, 1), 0), 0);
    assert_eq!(lun0.read(DISK_BYTES - 512, 512), Ok(pattern(512, 1)));
    assert_eq!(lun0.read(DISK_BYTES - 512, 1024), Err(EINVAL));
    assert_eq!(lun0.write(DISK_BYTES, &pattern(512, 1), 0), ENOSPC);
    assert_eq!(lun0.read(u64::MAX - 511, 512), Err(EINVAL), "no overflow");
    assert_eq!(lun0.write(100, &pattern(512, 1), 0), EINVAL, "unaligned");
    // An unknown command gets EINVAL and the connection goes on.
    assert_eq!(lun0.command(0x77, 0, 0, 0), EINVAL);
    assert_eq!(lun0.read(512 * 7, 512), Ok(big[..512].to_vec()));
    served.stop_clean();
}

#[test]
fn trim_and_write_zeroes_read_back_zeroes() {
    let served = Served::start(&[], &["nbd"]);
    let mut client = Client::connect(served.nbd());
    client.go("lun0");
    let data = pattern(64 * 1024, 5);
    assert_eq!(client.write(1 << 20, &data, 0), 0);
    assert_eq!(client.write(2 << 20, &data, 0), 0);
    // Trim 16 KiB in the middle: whole blocks, so they read back as zeroes (LBPRZ).
    assert_eq!(client.command(CMD_TRIM, 0, (1 << 20) + 8192, 16384), 0);
    let back = client.read(1 << 20, 64 * 1024).unwrap();
    assert_eq!(&back[..8192], &data[..8192]);
    assert!(back[8192..8192 + 16384].iter().all(|&b| b == 0));
    assert_eq!(&back[8192 + 16384..], &data[8192 + 16384..]);
    // WRITE_ZEROES with FUA, over 4 MiB (split) including the written range.
    assert_eq!(
        client.command(CMD_WRITE_ZEROES, FLAG_FUA, 2 << 20, 4 << 20),
        0
    );
    let back = client.read(2 << 20, 64 * 1024).unwrap();
    assert!(back.iter().all(|&b| b == 0));
    assert_eq!(client.command(CMD_TRIM, 0, DISK_BYTES, 512), ENOSPC);
    assert_eq!(
        client.command(CMD_WRITE_ZEROES, 0, DISK_BYTES - 512, 1024),
        ENOSPC
    );
    served.stop_clean();
}

#[test]
fn read_only_disk_refuses_writes_with_eperm() {
    let served = Served::start(&["ReadOnly=dword:1"], &["nbd"]);
    let mut client = Client::connect(served.nbd());
    let (_, flags, _) = client.go("lun0");
    assert_eq!(flags & 2, 2, "NBD_FLAG_READ_ONLY");
    assert_eq!(client.write(0, &pattern(512, 1), 0), EPERM);
    assert_eq!(client.command(CMD_WRITE_ZEROES, 0, 0, 512), EPERM);
    assert_eq!(client.read(0, 512).map(|d| d.len()), Ok(512));
    served.stop_clean();
}

#[test]
fn hostile_input_closes_the_connection_and_the_server_goes_on() {
    let served = Served::start(&[], &["nbd"]);
    let address = served.nbd();

    let mut wrong_magic = Client::connect(address);
    wrong_magic.stream.write_all(&[0xEE; 16]).unwrap();
    assert!(wrong_magic.closed(), "a wrong option magic closes");

    let mut huge_option = Client::connect(address);
    let mut header = IHAVEOPT.to_be_bytes().to_vec();
    header.extend_from_slice(&OPT_GO.to_be_bytes());
    header.extend_from_slice(&0xFFFF_FFF0_u32.to_be_bytes());
    huge_option.stream.write_all(&header).unwrap();
    assert_eq!(huge_option.reply().kind, REP_ERR_TOO_BIG);
    assert!(huge_option.closed(), "an oversized option closes");

    let mut unknown_flags = TcpStream::connect(address).unwrap();
    let mut hello = [0_u8; 18];
    unknown_flags.read_exact(&mut hello).unwrap();
    unknown_flags
        .write_all(&0x8000_0001_u32.to_be_bytes())
        .unwrap();
    let mut rest = Vec::new();
    let _ = unknown_flags.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "unknown client flags close without a reply"
    );

    let mut bad_request = Client::connect(address);
    bad_request.go("lun0");
    bad_request.stream.write_all(&[0x11; 28]).unwrap();
    assert!(bad_request.closed(), "a wrong request magic closes");

    let mut huge_write = Client::connect(address);
    huge_write.go("lun0");
    huge_write.request(CMD_WRITE, 0, 1, 0, 0xFFFF_FE00, &[]);
    assert!(
        huge_write.closed(),
        "a write beyond the maximum payload closes"
    );

    let mut huge_read = Client::connect(address);
    huge_read.go("lun0");
    assert_eq!(
        huge_read.read(0, 0xFFFF_FE00),
        Err(EINVAL),
        "and a huge read is refused"
    );

    // Early closes: mid-greeting, mid-option, mid-request, mid-payload.
    drop(TcpStream::connect(address).unwrap());
    let mut partial = Client::connect(address);
    partial
        .stream
        .write_all(&IHAVEOPT.to_be_bytes()[..5])
        .unwrap();
    drop(partial);
    let mut partial = Client::connect(address);
    partial.go("lun0");
    partial
        .stream
        .write_all(&0x2560_9513_u32.to_be_bytes())
        .unwrap();
    drop(partial);
    let mut partial = Client::connect(address);
    partial.go("lun0");
    partial.request(CMD_WRITE, 0, 1, 0, 1 << 20, &[1; 4096]);
    drop(partial);

    // The server still serves.
    let mut client = Client::connect(address);
    client.go("lun0");
    assert_eq!(client.write(0, &pattern(1024, 2), 0), 0);
    assert_eq!(client.read(0, 1024), Ok(pattern(1024, 2)));
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

/// Sends `garbage`, half-closes, and drains what the server says until it closes.
fn throw(mut stream: TcpStream, garbage: &[u8]) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(garbage);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = Vec::new();
    let _ = stream.read_to_end(&mut sink);
}

#[test]
fn random_bytes_in_every_phase_never_stop_the_server() {
    let served = Served::start(&[], &["nbd"]);
    let mut noise = Noise(0x5EED_1234_ABCD_0001);
    for round in 0..48_u64 {
        let length = usize::try_from(noise.next() % 512).unwrap();
        let mut garbage = noise.bytes(length);
        match round % 4 {
            // Right after the greeting.
            0 => throw(TcpStream::connect(served.nbd()).unwrap(), &garbage),
            // Valid flags, then options with the right magic and random fields.
            1 | 2 => {
                let client = Client::connect(served.nbd());
                let mut option = IHAVEOPT.to_be_bytes().to_vec();
                option.extend_from_slice(&u32::try_from(noise.next() % 12).unwrap().to_be_bytes());
                option.extend_from_slice(&u32::try_from(garbage.len()).unwrap().to_be_bytes());
                option.append(&mut garbage);
                throw(client.stream.try_clone().unwrap(), &option);
                drop(client);
            }
            // Transmission phase: requests with the right magic and random fields.
            _ => {
                let mut client = Client::connect(served.nbd());
                client.go("lun0");
                let mut request = 0x2560_9513_u32.to_be_bytes().to_vec();
                request.extend_from_slice(&noise.bytes(24));
                request.append(&mut garbage);
                throw(client.stream.try_clone().unwrap(), &request);
            }
        }
    }
    let mut client = Client::connect(served.nbd());
    client.go("lun0");
    assert_eq!(client.write(4096, &pattern(512, 4), 0), 0);
    assert_eq!(client.read(4096, 512), Ok(pattern(512, 4)));
    served.stop_clean();
}

#[test]
fn pipelined_requests_are_all_answered_by_cookie() {
    let served = Served::start(&[], &["nbd"]);
    let mut client = Client::connect(served.nbd());
    client.go("lun0");
    // 16 writes sent back to back, then 16 reads; replies may come in any order.
    for block in 0..16_u64 {
        let data = pattern(4096, u8::try_from(block).unwrap());
        client.request(CMD_WRITE, 0, 100 + block, block * 4096, 4096, &data);
    }
    let mut cookies: Vec<u64> = (0..16)
        .map(|_| {
            let mut header = [0_u8; 16];
            client.stream.read_exact(&mut header).unwrap();
            assert_eq!(&header[4..8], &[0, 0, 0, 0], "write succeeded");
            u64::from_be_bytes(header[8..16].try_into().unwrap())
        })
        .collect();
    cookies.sort_unstable();
    assert_eq!(cookies, (100..116).collect::<Vec<_>>());
    for block in 0..16_u64 {
        client.request(CMD_READ, 0, 200 + block, block * 4096, 4096, &[]);
    }
    let mut seen = 0_u32;
    for _ in 0..16 {
        let mut header = [0_u8; 16];
        client.stream.read_exact(&mut header).unwrap();
        let cookie = u64::from_be_bytes(header[8..16].try_into().unwrap());
        let mut data = vec![0; 4096];
        client.stream.read_exact(&mut data).unwrap();
        let block = cookie - 200;
        assert_eq!(
            data,
            pattern(4096, u8::try_from(block).unwrap()),
            "block {block}"
        );
        seen |= 1 << block;
    }
    assert_eq!(seen, 0xFFFF, "every read answered once");
    // DISC after pipelined requests: each is answered before the close.
    client.request(CMD_FLUSH, 0, 300, 0, 0, &[]);
    client.request(CMD_DISC, 0, 301, 0, 0, &[]);
    assert_eq!(client.simple_reply(300, 0).0, 0);
    assert!(client.closed());
    served.stop_clean();
}

/// Reads the reply headers and data of `expected` (cookie → read length)
/// in whatever order they come; returns cookie → (error, data).
fn replies_by_cookie(
    client: &mut Client,
    expected: &std::collections::HashMap<u64, usize>,
) -> std::collections::HashMap<u64, (u32, Vec<u8>)> {
    let mut seen = std::collections::HashMap::new();
    while seen.len() < expected.len() {
        let mut header = [0_u8; 16];
        client.stream.read_exact(&mut header).unwrap();
        assert_eq!(&header[..4], &0x6744_6698_u32.to_be_bytes());
        let error = u32::from_be_bytes(header[4..8].try_into().unwrap());
        let cookie = u64::from_be_bytes(header[8..16].try_into().unwrap());
        let length = *expected.get(&cookie).expect("a cookie that was sent");
        let mut data = vec![0; if error == 0 { length } else { 0 }];
        client.stream.read_exact(&mut data).unwrap();
        assert!(
            seen.insert(cookie, (error, data)).is_none(),
            "cookie {cookie} answered twice"
        );
    }
    seen
}

#[test]
fn large_and_small_pipelined_requests_move_the_right_bytes() {
    let served = Served::start(&[], &["nbd"]);
    let mut client = Client::connect(served.nbd());
    client.go("lun0");
    // Large requests go to helper threads while small ones run on the
    // connection's thread; replies to both are mixed on the socket.
    let sizes: [usize; 6] = [1 << 20, 4096, 256 << 10, 512, 1 << 20, 64 << 10];
    let mut offset = 0_u64;
    let mut layout = Vec::new();
    for (index, &size) in sizes.iter().enumerate() {
        layout.push((offset, size, u8::try_from(index).unwrap() + 1));
        offset += size as u64 + (1 << 20);
    }
    let mut writes = std::collections::HashMap::new();
    for (index, &(at, size, seed)) in layout.iter().enumerate() {
        let cookie = 1000 + index as u64;
        let data = pattern(size, seed);
        client.request(
            CMD_WRITE,
            0,
            cookie,
            at,
            u32::try_from(size).unwrap(),
            &data,
        );
        writes.insert(cookie, 0);
    }
    for (cookie, (error, _)) in replies_by_cookie(&mut client, &writes) {
        assert_eq!(error, 0, "write {cookie}");
    }
    let mut reads = std::collections::HashMap::new();
    for round in 0..2_u64 {
        for (index, &(at, size, _)) in layout.iter().enumerate() {
            let cookie = 2000 + round * 100 + index as u64;
            client.request(CMD_READ, 0, cookie, at, u32::try_from(size).unwrap(), &[]);
            reads.insert(cookie, size);
        }
    }
    let answered = replies_by_cookie(&mut client, &reads);
    for (cookie, (error, data)) in answered {
        let (_, size, seed) = layout[usize::try_from(cookie % 100).unwrap()];
        assert_eq!(error, 0, "read {cookie}");
        assert_eq!(data.len(), size);
        assert!(
            data == pattern(size, seed),
            "read {cookie} returned other bytes"
        );
    }
    // A large read of never-written blocks, then DISC: answered before the close.
    client.request(CMD_READ, 0, 3000, 40 << 20, 1 << 20, &[]);
    client.request(CMD_DISC, 0, 3001, 0, 0, &[]);
    let (error, data) = client.simple_reply(3000, 1 << 20);
    assert_eq!(error, 0);
    assert!(data.iter().all(|&b| b == 0));
    assert!(client.closed());
    served.stop_clean();
}

/// User plus system processor time of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of the line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn a_connection_that_goes_quiet_costs_no_processor_time() {
    let served = Served::start(&[], &["nbd"]);
    let mut client = Client::connect(served.nbd());
    client.go("lun0");
    // Requests back to back: the server looks for the next one before it
    // sleeps.
    for block in 0..500_u64 {
        assert!(client.read((block % 64) * 4096, 4096).is_ok());
    }
    // Then silence on an open connection: the server sleeps (no more than a
    // few ticks of the accept loop's polling in half a second).
    std::thread::sleep(Duration::from_millis(100));
    let before = cpu_ticks(served.pid());
    std::thread::sleep(Duration::from_millis(500));
    let used = cpu_ticks(served.pid()) - before;
    assert!(
        used <= 5,
        "{used} ticks of processor time while the client was quiet"
    );
    // The connection still works.
    assert_eq!(client.write(0, &pattern(4096, 9), 0), 0);
    assert_eq!(client.read(0, 4096), Ok(pattern(4096, 9)));
    served.stop_clean();
}
