//! Shared by the `serve_*` tests: a `storemu serve` process on the real
//! `vstor.sys`, listening on loopback ports the system picks, stopped with
//! SIGTERM so every test also checks the clean shutdown and its findings.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use crate::port_support::{driver_image, root};

/// How long the server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_mins(1);
/// How long the server may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The vstor.sys image, built when missing or stale.
pub fn vstor() -> PathBuf {
    driver_image(
        "vstor",
        "target/vstor",
        "",
        &[
            "src",
            "crates/storport/src",
            "crates/storport-sys/src",
            "inf",
        ],
    )
}

/// A running `storemu serve`.
pub struct Served {
    child: Option<Child>,
    lines: Receiver<String>,
    /// Every stdout line read so far.
    pub output: Vec<String>,
    /// The NBD address, when served.
    pub nbd: Option<SocketAddr>,
    /// The iSCSI address, when served.
    pub iscsi: Option<SocketAddr>,
    /// The iSCSI target name.
    pub target: String,
}

impl Served {
    /// Starts `storemu serve` on vstor.sys with its INF, the `--set` values
    /// and the front ends named (`nbd`, `iscsi`) on loopback port 0.
    pub fn start(sets: &[&str], front_ends: &[&str]) -> Self {
        Self::start_with(sets, front_ends, &[])
    }

    /// As [`Self::start`], with more `storemu serve` options.
    pub fn start_with(sets: &[&str], front_ends: &[&str], options: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_storemu"));
        command
            .arg("serve")
            .arg(vstor())
            .arg("--inf")
            .arg(root().join("inf/vstor.inf"))
            .args(options);
        for set in sets {
            command.arg("--set").arg(set);
        }
        for front_end in ["nbd", "iscsi"] {
            if front_ends.contains(&front_end) {
                command.arg(format!("--{front_end}")).arg("127.0.0.1:0");
            } else {
                command.arg(format!("--no-{front_end}"));
            }
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("storemu serve starts");
        let stdout = child.stdout.take().expect("stdout pipe");
        let (send, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut served = Self {
            child: Some(child),
            lines,
            output: Vec::new(),
            nbd: None,
            iscsi: None,
            target: String::new(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while served.nbd.is_none() == front_ends.contains(&"nbd")
            || served.iscsi.is_none() == front_ends.contains(&"iscsi")
        {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match served.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(error) => panic!(
                    "storemu serve did not start listening ({error:?}); output so far: {:?}",
                    served.output
                ),
            };
            if let Some(address) = line.strip_prefix("listening nbd ") {
                served.nbd = Some(address.parse().expect("NBD address"));
            }
            if let Some(rest) = line.strip_prefix("listening iscsi ") {
                let mut words = rest.split_whitespace();
                served.iscsi = Some(
                    words
                        .next()
                        .unwrap_or_default()
                        .parse()
                        .expect("iSCSI address"),
                );
                words
                    .nth(1)
                    .unwrap_or_default()
                    .clone_into(&mut served.target);
            }
            served.output.push(line);
        }
        served
    }

    /// The NBD address.
    pub const fn nbd(&self) -> SocketAddr {
        self.nbd.expect("NBD is served")
    }

    /// The iSCSI address.
    pub const fn iscsi(&self) -> SocketAddr {
        self.iscsi.expect("iSCSI is served")
    }

    /// The server's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM, waits for the exit, and returns the exit code and
    /// every output line.
    pub fn stop(mut self) -> (Option<i32>, Vec<String>) {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {}", child.id());
        let deadline = Instant::now() + STOP_TIMEOUT;
        let code = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("storemu serve did not stop within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.output.push(line);
        }
        (code, std::mem::take(&mut self.output))
    }

    /// Stops the server and asserts a clean shutdown with no findings.
    pub fn stop_clean(self) {
        let (code, output) = self.stop();
        assert!(
            output.iter().any(|l| l == "outcome: 0 finding(s)"),
            "the run ends without findings: {output:#?}"
        );
        assert_eq!(code, Some(0), "{output:#?}");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
