//! The `storemu serve` subcommand.
//!
//! `storemu serve DRIVER.sys [--inf FILE.inf] [--set ...] [--nbd ADDR:PORT]
//! [--iscsi ADDR:PORT] [--max-connections N] [--handshake-timeout SECONDS]
//! [--idle-timeout SECONDS]` starts the adapter as `storemu run` does, prints
//! one `listening` line per front end and one `export` line per LUN, then
//! serves until SIGINT or SIGTERM. Then it closes every connection, stops
//! and removes the adapter, unloads the driver (leak checks) and prints the
//! findings. Exit status as `storemu run`: 0 clean, 1 findings, 2 the
//! driver could not be started, 64 usage error, 74 standard output could
//! not be written. When standard output is closed or full, `serve` says so
//! on standard error, stops serving (at once when that happens before it
//! waits for a signal), still stops and unloads the adapter with the leak
//! checks, and writes the rest of its report on standard error.
//!
//! Each listener serves at most `--max-connections` (default 64)
//! connections; at the limit a new connection takes the place of the one
//! idle the longest. A connection that has not logged in (NBD option
//! haggling, iSCSI login) within `--handshake-timeout` (default 10 s), or
//! that receives nothing and runs no request for `--idle-timeout` (default
//! 300 s; 0 never), is closed. See [`super::limits`]. `--stage-times` logs
//! where the NBD requests' time went ([`super::stages`]) as each connection
//! ends.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};

use super::limits::{self, Limits};
use super::{Adapter, DEFAULT_NBD, ServeConfig, Server};
use crate::setup::output::{Report, warn};
use crate::setup::{EXIT_CLEAN, EXIT_FINDINGS, EXIT_LOAD_ERROR, EXIT_USAGE, parse_sets};

/// The grammar of `storemu serve`.
#[must_use]
pub fn definition() -> Command {
    crate::setup::adapter_args(
        Command::new("serve")
            .about("Start DRIVER's adapter and serve its disks over NBD and iSCSI until SIGINT/SIGTERM"),
    )
    .arg(
        Arg::new("nbd")
            .long("nbd")
            .value_name("ADDR:PORT")
            .value_parser(value_parser!(SocketAddr))
            .help("NBD listen address (default 127.0.0.1:10809; port 0 picks a free one)"),
    )
    .arg(
        Arg::new("iscsi")
            .long("iscsi")
            .value_name("ADDR:PORT")
            .value_parser(value_parser!(SocketAddr))
            .help("iSCSI listen address (default 127.0.0.1:3260; port 0 picks a free one)"),
    )
    .arg(
        Arg::new("no-nbd")
            .long("no-nbd")
            .action(ArgAction::SetTrue)
            .help("Do not serve NBD"),
    )
    .arg(
        Arg::new("no-iscsi")
            .long("no-iscsi")
            .action(ArgAction::SetTrue)
            .help("Do not serve iSCSI"),
    )
    .arg(
        Arg::new("max-connections")
            .long("max-connections")
            .value_name("N")
            .value_parser(value_parser!(u32).range(1..=65_536))
            .help(format!(
                "Connections each listener serves at once; at the limit a new one replaces the longest-idle one (default {})",
                limits::DEFAULT_MAX_CONNECTIONS
            )),
    )
    .arg(
        Arg::new("handshake-timeout")
            .long("handshake-timeout")
            .value_name("SECONDS")
            .value_parser(seconds)
            .help(format!(
                "Close a connection that has not completed the NBD handshake or iSCSI login this long after it was accepted (default {})",
                limits::DEFAULT_HANDSHAKE_TIMEOUT.as_secs()
            )),
    )
    .arg(
        Arg::new("idle-timeout")
            .long("idle-timeout")
            .value_name("SECONDS")
            .value_parser(seconds)
            .help(format!(
                "Close a connection that receives nothing and runs no request this long; 0: never (default {})",
                limits::DEFAULT_IDLE_TIMEOUT.as_secs()
            )),
    )
    .arg(
        Arg::new("stage-times")
            .long("stage-times")
            .action(ArgAction::SetTrue)
            .help("Log, when an NBD connection ends, the median and 99th percentile of each stage of its requests (receive, port, send, total); needs --log to be seen"),
    )
    .arg(
        Arg::new("log")
            .long("log")
            .action(ArgAction::SetTrue)
            .help("Print the port's log (life cycle, DbgPrint, connections closed on protocol errors) on stderr as it happens"),
    )
}

/// A number of seconds (decimals allowed, at most a day).
fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds; give one such as 10 or 0.5"))?;
    if !(0.0..=86_400.0).contains(&value) {
        return Err(format!(
            "{text} seconds is outside 0 to 86400 (one day); give a value in that range"
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

/// The connection limits the options name.
fn limits(matches: &ArgMatches) -> Result<Limits, String> {
    let defaults = Limits::default();
    let handshake = matches
        .get_one::<Duration>("handshake-timeout")
        .copied()
        .unwrap_or(defaults.handshake_timeout);
    if handshake.is_zero() {
        return Err(
            "--handshake-timeout 0 would close every connection at once; give a positive number of seconds. Nothing was served."
                .to_owned(),
        );
    }
    Ok(Limits {
        max_connections: matches
            .get_one::<u32>("max-connections")
            .map_or(defaults.max_connections, |&n| n as usize),
        handshake_timeout: handshake,
        idle_timeout: matches
            .get_one::<Duration>("idle-timeout")
            .copied()
            .map_or(defaults.idle_timeout, |t| (!t.is_zero()).then_some(t)),
    })
}

fn address(matches: &ArgMatches, name: &str, default: &str) -> Option<SocketAddr> {
    if matches.get_flag(&format!("no-{name}")) {
        return None;
    }
    matches
        .get_one::<SocketAddr>(name)
        .copied()
        .or_else(|| default.parse().ok())
}

/// Runs `storemu serve`.
#[must_use]
pub fn main(matches: &ArgMatches) -> ExitCode {
    let args = crate::setup::run_args(matches);
    let sets = match parse_sets(&args.set) {
        Ok(sets) => sets,
        Err(message) => {
            warn(&format!("storemu: {message}"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let limits = match limits(matches) {
        Ok(limits) => limits,
        Err(message) => {
            warn(&format!("storemu: {message}"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let config = ServeConfig {
        nbd: address(matches, "nbd", DEFAULT_NBD),
        iscsi: address(matches, "iscsi", super::DEFAULT_ISCSI),
        service: crate::inf::service_name_for_image(&args.driver),
        limits,
        stage_times: matches.get_flag("stage-times"),
    };
    // Catch the signals before any thread exists, so none is lost.
    let (signalled, stop) = mpsc::channel::<()>();
    if let Err(error) = ctrlc::set_handler(move || {
        let _ = signalled.send(());
    }) {
        warn(&format!(
            "storemu: the SIGINT/SIGTERM handler cannot be installed ({error}); nothing was served."
        ));
        return ExitCode::from(EXIT_LOAD_ERROR);
    }
    let adapter = match Adapter::start(&args, &sets, matches.get_flag("log")) {
        Ok(adapter) => adapter,
        Err(message) => {
            warn(&format!("storemu: {message}"));
            return ExitCode::from(EXIT_LOAD_ERROR);
        }
    };
    let mut out = Report::diverting(
        "storemu stops serving, stops the adapter, runs the leak checks and reports the findings on standard error",
    );
    let backend = adapter.backend();
    for lun in backend.luns() {
        out.line(&format!(
            "export {} LUN {}:{}:{} type {} {} blocks of {} bytes{}",
            lun.name,
            lun.address.0,
            lun.address.1,
            lun.address.2,
            lun.device_type,
            lun.blocks,
            lun.block_size,
            if lun.read_only { " read-only" } else { "" }
        ));
    }
    let server = match Server::start(&backend, &config) {
        Ok(server) => server,
        Err(error) => {
            warn(&format!(
                "storemu: cannot listen on the requested address ({error}); the adapter is stopped and nothing was served."
            ));
            let _ = adapter.finish();
            return ExitCode::from(out.status(EXIT_LOAD_ERROR));
        }
    };
    if let Some(address) = server.nbd_address() {
        out.line(&format!("listening nbd {address}"));
    }
    if let Some(address) = server.iscsi_address() {
        out.line(&format!(
            "listening iscsi {address} target {}",
            super::iscsi::Target::for_service(&config.service).name
        ));
    }
    // Every line is flushed as it is written (stdout is a pipe for scripts
    // and tests). A standard output already gone ends the serving now.
    if !out.failed() {
        let _ = stop.recv();
    }
    out.line("stopping: closing connections");
    let panics = server.shutdown();
    let findings = adapter.finish();
    for finding in &findings {
        out.line(&format!("!! {finding}"));
    }
    if panics > 0 {
        out.line(&format!(
            "!! {panics} connection thread(s) panicked: a front-end bug, see stderr"
        ));
    }
    out.line(&format!("outcome: {} finding(s)", findings.len()));
    ExitCode::from(out.status(if findings.is_empty() && panics == 0 {
        EXIT_CLEAN
    } else {
        EXIT_FINDINGS
    }))
}
