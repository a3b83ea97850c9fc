//! A full (`> /dev/full`) or closed (`| head -1`) standard output ends
//! storemu with one line on standard error and exit status 74, never a
//! panic; `serve` still stops the adapter, runs the leak checks and reports
//! its findings on standard error.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

mod port_support;

use port_support::{fixture, root};

/// `EX_IOERR`: standard output could not be written.
const EXIT_OUTPUT_ERROR: i32 = 74;
/// How long a command may take to end on its own.
const END_TIMEOUT: Duration = Duration::from_mins(1);

/// Where the command's standard output goes.
enum Sink {
    /// `/dev/full`: every write fails with ENOSPC.
    Full,
    /// A pipe whose reading end is closed: every write fails with EPIPE.
    ClosedPipe,
}

impl Sink {
    fn stdio(&self) -> Stdio {
        match self {
            Self::Full => std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .expect("/dev/full opens")
                .into(),
            Self::ClosedPipe => {
                let (reader, writer) = std::io::pipe().expect("a pipe");
                drop(reader);
                writer.into()
            }
        }
    }

    const fn error(&self) -> &'static str {
        match self {
            Self::Full => "(No space left on device (os error 28))",
            Self::ClosedPipe => "(Broken pipe (os error 32))",
        }
    }
}

fn storemu() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_storemu"));
    command.current_dir(root()).stdin(Stdio::null());
    command
}

/// Waits for `child` to end on its own, and returns its status and stderr.
fn ended(mut child: Child) -> (ExitStatus, String) {
    let deadline = Instant::now() + END_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("waiting works") {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("stderr reads");
            }
            return (status, stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("storemu did not end within {END_TIMEOUT:?} of its output failing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `args` with standard output to `sink`; returns status and stderr.
fn run_to(sink: &Sink, args: &[&str]) -> (ExitStatus, String) {
    let child = storemu()
        .args(args)
        .stdout(sink.stdio())
        .stderr(Stdio::piped())
        .spawn()
        .expect("storemu starts");
    ended(child)
}

/// The one line a failed standard output writes, with what happens next.
fn failure_line(sink: &Sink, next: &str) -> String {
    format!(
        "storemu: standard output cannot be written {}: it is closed or full; {next}, and the exit status is 74.",
        sink.error()
    )
}

fn image() -> String {
    fixture("").display().to_string()
}

#[test]
fn rules_inf_lint_and_help_end_with_status_74() {
    for sink in [Sink::Full, Sink::ClosedPipe] {
        let (status, stderr) = run_to(&sink, &["rules"]);
        assert_eq!(status.code(), Some(EXIT_OUTPUT_ERROR), "{stderr}");
        assert_eq!(
            stderr,
            format!("{}\n", failure_line(&sink, "the rule table is lost"))
        );
        let (status, stderr) = run_to(&sink, &["inf-lint", "inf/vstor.inf"]);
        assert_eq!(status.code(), Some(EXIT_OUTPUT_ERROR), "{stderr}");
        assert_eq!(
            stderr,
            format!(
                "{}\n",
                failure_line(&sink, "the rest of the findings are lost")
            )
        );
        let (status, stderr) = run_to(&sink, &["--help"]);
        assert_eq!(status.code(), Some(EXIT_OUTPUT_ERROR), "{stderr}");
        assert_eq!(
            stderr,
            "storemu: standard output cannot be written: it is closed or full; the help is lost, and the exit status is 74.\n"
        );
    }
}

#[test]
fn run_ends_with_status_74_after_the_whole_run() {
    let image = image();
    for sink in [Sink::Full, Sink::ClosedPipe] {
        for json in [false, true] {
            let mut args = vec!["run", image.as_str()];
            if json {
                args.push("--json");
            }
            let (status, stderr) = run_to(&sink, &args);
            assert_eq!(status.code(), Some(EXIT_OUTPUT_ERROR), "{stderr}");
            assert_eq!(
                stderr,
                format!("{}\n", failure_line(&sink, "the report is lost"))
            );
        }
    }
}

/// The report `serve` writes on standard error once standard output is
/// gone: the adapter stopped and unloaded with the leak checks, no finding.
fn assert_serve_reported(stderr: &str, first_lost: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    let failure = lines
        .iter()
        .position(|l| l.starts_with("storemu: standard output cannot be written"))
        .unwrap_or_else(|| panic!("no failure line in:\n{stderr}"));
    assert!(
        lines[failure].ends_with("storemu stops serving, stops the adapter, runs the leak checks and reports the findings on standard error, and the exit status is 74."),
        "{stderr}"
    );
    assert_eq!(
        lines.get(failure + 1).copied(),
        Some(first_lost),
        "{stderr}"
    );
    assert!(lines.contains(&"stopping: closing connections"), "{stderr}");
    assert_eq!(
        lines.last().copied(),
        Some("outcome: 0 finding(s)"),
        "{stderr}"
    );
}

#[test]
fn serve_stops_at_once_when_stdout_is_gone_at_startup() {
    let image = image();
    for sink in [Sink::Full, Sink::ClosedPipe] {
        let (status, stderr) = run_to(
            &sink,
            &["serve", &image, "--nbd", "127.0.0.1:0", "--no-iscsi"],
        );
        assert_eq!(status.code(), Some(EXIT_OUTPUT_ERROR), "{stderr}");
        assert!(stderr.contains(sink.error()), "{stderr}");
        assert_serve_reported(
            &stderr,
            "export lun0 LUN 0:0:0 type 0 16 blocks of 512 bytes",
        );
    }
}

#[test]
fn serve_reports_on_stderr_when_stdout_closes_while_serving() {
    let mut child = storemu()
        .args(["serve", &image(), "--nbd", "127.0.0.1:0", "--no-iscsi"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("storemu serve starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout pipe"));
    let mut line = String::new();
    while !line.starts_with("listening nbd") {
        line.clear();
        let read = stdout.read_line(&mut line).expect("stdout reads");
        assert_ne!(read, 0, "storemu serve ended before listening");
    }
    drop(stdout);
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(term.success());
    let (status, stderr) = ended(child);
    assert_eq!(status.code(), Some(EXIT_OUTPUT_ERROR), "{stderr}");
    assert!(stderr.contains(Sink::ClosedPipe.error()), "{stderr}");
    assert_serve_reported(&stderr, "stopping: closing connections");
}
