//! `storemu serve --stage-times --log` on the real vstor.sys: when an NBD
//! connection ends, the log says how its requests' time divided into the
//! receive, port and send stages, and the port's time into its bridge,
//! call gate, driver and completion parts.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

#[expect(dead_code, reason = "each test binary uses part of the shared harness")]
mod port_support;
#[expect(dead_code, reason = "each test binary uses part of the shared harness")]
mod serve_support;

#[expect(dead_code, reason = "each test binary uses part of the shared client")]
mod nbd_client;

use nbd_client::Client;

#[test]
fn stage_times_are_logged_per_connection() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_storemu"))
        .arg("serve")
        .arg(serve_support::vstor())
        .arg("--inf")
        .arg(port_support::root().join("inf/vstor.inf"))
        .args([
            "--nbd",
            "127.0.0.1:0",
            "--no-iscsi",
            "--log",
            "--stage-times",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("storemu serve starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut stderr = child.stderr.take().expect("stderr");
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let address = loop {
        let mut line = String::new();
        assert_ne!(
            stdout.read_line(&mut line).expect("a line"),
            0,
            "serve exited"
        );
        if let Some(address) = line.trim().strip_prefix("listening nbd ") {
            break address.parse().expect("address");
        }
    };
    let mut client = Client::connect(address);
    client.go("");
    for n in 0..20 {
        assert_eq!(client.read(n * 4096, 4096).map(|d| d.len()), Ok(4096));
    }
    // The connection's thread logs as it ends, at the latest when SIGTERM
    // closes every connection.
    drop(client);
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
    let mut rest = String::new();
    let _ = stdout.read_to_string(&mut rest);
    assert_eq!(child.wait().expect("wait").code(), Some(0), "{rest}");
    let log = log.join().expect("stderr read");
    let line = log
        .lines()
        .find(|l| l.contains("NBD stage times over 20 requests"))
        .unwrap_or_else(|| panic!("no stage times in the log:\n{log}"));
    for stage in [
        "receive ",
        "port ",
        "bridge ",
        "gate ",
        "driver ",
        "completion ",
        "send ",
        "total ",
    ] {
        assert!(line.contains(stage), "{line}");
    }
    // The port's parts are measured, not left at zero: every HwStartIo call
    // runs through the gate into driver code, which takes some time.
    for stage in ["gate ", "driver "] {
        let figures = line
            .split(stage)
            .nth(1)
            .and_then(|rest| rest.split([',', ']']).next())
            .unwrap_or_else(|| panic!("no {stage}figures in {line}"));
        let (median, p99) = figures
            .split_once('/')
            .unwrap_or_else(|| panic!("{stage}figures {figures:?} are not median/p99"));
        let median: f64 = median.parse().expect("a median");
        let p99: f64 = p99.parse().expect("a 99th percentile");
        assert!(median >= 0.0 && p99 > 0.0, "{stage}in {line}");
    }
}
