//! How INF handling scales: parses, installs and lints generated INFs with
//! 10,000, 100,000 and 1,000,000 add-registry lines and prints the seconds
//! each step took (`cargo make bench-inf`, or
//! `cargo run --release -p storport-emu --example inf_bench [LINES...]`).
//! Linear handling takes about ten times as long for ten times the lines.

use std::time::Instant;

use storport_emu::inf::{Inf, InstallOptions, install, lint::lint, synthetic::addreg_inf};
use storport_emu::registry::Registry;

fn main() {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse().unwrap_or_else(|_| {
                eprintln!("inf_bench: `{a}` is not a line count; expected a decimal number such as 100000.");
                std::process::exit(64);
            })
        })
        .collect();
    let counts = if counts.is_empty() {
        vec![10_000, 100_000, 1_000_000]
    } else {
        counts
    };
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "lines", "MiB", "parse s", "install s", "lint s", "total s"
    );
    for lines in counts {
        let text = addreg_inf(lines);
        let start = Instant::now();
        let inf = match Inf::parse(&text) {
            Ok(inf) => inf,
            Err(e) => {
                eprintln!("inf_bench: the generated INF does not parse: {e}");
                std::process::exit(1);
            }
        };
        let parsed = start.elapsed();
        let mut registry = Registry::new();
        if let Err(e) = install(&inf, &mut registry, &InstallOptions::default()) {
            eprintln!("inf_bench: the generated INF does not install: {e}");
            std::process::exit(1);
        }
        let installed = start.elapsed();
        let findings = lint(&inf);
        let linted = start.elapsed();
        if !findings.is_empty() {
            eprintln!(
                "inf_bench: the generated INF has {} lint finding(s)",
                findings.len()
            );
        }
        #[expect(clippy::cast_precision_loss, reason = "a size in MiB for people")]
        let mib = text.len() as f64 / f64::from(1u32 << 20);
        println!(
            "{lines:>10} {mib:>10.1} {:>10.3} {:>10.3} {:>10.3} {:>10.3}",
            parsed.as_secs_f64(),
            installed.saturating_sub(parsed).as_secs_f64(),
            linted.saturating_sub(installed).as_secs_f64(),
            linted.as_secs_f64()
        );
    }
}
