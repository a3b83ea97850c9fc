//! INF parsing, installation and lint take time linear in the INF: ten times
//! the add-registry lines may take at most [`MAX_RATIO`] times as long, a
//! ratio measured within this one test (no wall-clock threshold). Quadratic
//! handling takes about 100 times as long and fails; the test stops waiting
//! as soon as the larger INF has taken more than the allowed ratio.

use std::fmt::Write as _;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use storport_emu::inf::{
    Inf, InstallError, InstallOptions, install, lint::lint, synthetic::addreg_inf,
};
use storport_emu::registry::{RegValue, Registry};

/// Most the 100,000-line INF may take, in multiples of the 10,000-line one.
const MAX_RATIO: u32 = 30;

/// Parses, installs and lints `text`; checks the result so nothing is
/// optimised away and a broken installation does not pass as a fast one.
fn handle(text: &str, lines: usize) -> Duration {
    let start = Instant::now();
    let inf = Inf::parse(text).expect("the generated INF parses");
    let mut registry = Registry::new();
    let installed = install(&inf, &mut registry, &InstallOptions::default())
        .expect("the generated INF installs");
    let findings = lint(&inf);
    let elapsed = start.elapsed();
    assert_eq!(installed.service, "bench");
    assert!(findings.is_empty(), "{findings:?}");
    let key = "Services\\bench\\Parameters\\Bench";
    assert_eq!(registry.values(key).map(|v| v.len()), Some(lines));
    let last = u32::try_from(lines - 1).expect("fits");
    assert_eq!(
        registry.value(key, &format!("VALUE{last}")),
        Some(&RegValue::dword(last))
    );
    elapsed
}

#[test]
fn ten_times_the_addreg_lines_take_at_most_thirty_times_as_long() {
    let small_text = addreg_inf(10_000);
    let large_text = addreg_inf(100_000);
    // The fastest of three: a slow run is the machine, not the code.
    let small = (0..3)
        .map(|_| handle(&small_text, 10_000))
        .min()
        .expect("three runs");
    let allowed = small * MAX_RATIO;
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(handle(&large_text, 100_000));
    });
    match finished.recv_timeout(allowed) {
        Ok(large) => assert!(
            large <= allowed,
            "100,000 lines took {large:?}, more than {MAX_RATIO} times the {small:?} of 10,000 lines"
        ),
        Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => panic!(
            "100,000 lines took more than {allowed:?}, {MAX_RATIO} times the {small:?} of 10,000 lines: INF handling is not linear"
        ),
    }
}

#[test]
fn a_section_named_over_and_over_stops_the_installation() {
    // 20,000 references to one 1,000-line section would be 20,000,000 line
    // visits from an INF of about 21,000 lines.
    let base = addreg_inf(0);
    let names = vec!["Many"; 20_000].join(",");
    let mut text = base.replace(
        "ServiceBinary = %13%\\bench.sys\n",
        &format!("ServiceBinary = %13%\\bench.sys\nAddReg = {names}\n"),
    );
    text.push_str("[Many]\n");
    for i in 0..1_000 {
        writeln!(text, "HKR,,V{i},0x00010001,{i}").expect("a String takes text");
    }
    let inf = Inf::parse(&text).expect("parses");
    let error =
        install(&inf, &mut Registry::new(), &InstallOptions::default()).expect_err("too much work");
    let InstallError::TooMuchWork { at, limit, lines } = &error else {
        panic!("expected TooMuchWork, got {error}");
    };
    assert_eq!(at.section, "Many");
    assert_eq!(*limit, lines * 8 + 1_000_000);
    assert!(
        error.to_string().contains(&format!(
            "installing the INF would visit more than {limit} lines, although it has {lines}"
        )),
        "{error}"
    );
}
