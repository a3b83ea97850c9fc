//! The port model's Rust API on a real cross-built image through the call
//! gate: concurrent requests from several threads, data integrity, and the
//! adapter-control sequence. Also the real `vstor.sys` with its INF through
//! `storemu run`: it must run clean and expose its disk.

use std::process::Command;

use storport_emu::port::DataDirection;
use storport_sys::srb_status;

mod broken_port;
mod port_support;

use port_support::{driver_image, root};

#[test]
fn concurrent_requests_through_the_gate_keep_their_data() {
    let port = broken_port::started("none");
    let rw10 = |opcode, lba| broken_port::rw10(opcode, lba, 1);
    std::thread::scope(|scope| {
        for thread in 0..4_u8 {
            let port = &port;
            scope.spawn(move || {
                for round in 0..25_u8 {
                    // Each thread owns blocks 4*thread .. 4*thread+3.
                    let lba = u32::from(thread) * 4 + u32::from(round % 4);
                    let pattern = vec![thread.wrapping_mul(31) ^ round; 512];
                    let written = port
                        .execute(
                            (0, 0, 0),
                            &rw10(0x2A, lba),
                            &DataDirection::Out(pattern.clone()),
                        )
                        .expect("WRITE(10)");
                    assert_eq!(written.status(), srb_status::SUCCESS);
                    let read = port
                        .execute((0, 0, 0), &rw10(0x28, lba), &DataDirection::In(512))
                        .expect("READ(10)");
                    assert_eq!(read.status(), srb_status::SUCCESS);
                    assert_eq!(read.transferred, 512);
                    assert_eq!(read.data, pattern, "thread {thread} round {round}");
                }
            });
        }
    });
    let missing = port
        .execute((0, 1, 0), &[0x12, 0, 0, 0, 36, 0], &DataDirection::In(36))
        .expect("INQUIRY");
    assert_eq!(
        missing.status(),
        srb_status::NO_DEVICE,
        "no device at target 1: a result, not a finding"
    );
    assert_eq!(port.set_running_config(), Ok(0));
    assert_eq!(port.stop(), Ok(0));
    assert_eq!(port.restart(), Ok(0));
    let after = port
        .execute((0, 0, 0), &rw10(0x28, 4), &DataDirection::In(512))
        .expect("READ(10) after restart");
    assert_eq!(after.data.len(), 512, "data survives Stop/Restart");
    assert_eq!(port.reset_bus(0), Ok(true));
    port.remove().expect("remove");
    port.unload();
    assert_eq!(port.findings(), vec![]);
    assert_eq!(
        port.dbgprint(),
        vec!["broken-miniport: break=none (mode 0), 8192-byte disk".to_owned()]
    );
}

#[test]
fn vstor_runs_clean_with_its_inf_and_exposes_a_disk() {
    let path = driver_image(
        "vstor",
        "target/vstor",
        "",
        &[
            "src",
            "crates/storport/src",
            "crates/storport-sys/src",
            "inf",
        ],
    );
    let output = Command::new(env!("CARGO_BIN_EXE_storemu"))
        .arg("run")
        .arg(&path)
        .arg("--inf")
        .arg(root().join("inf/vstor.inf"))
        .arg("--json")
        .output()
        .expect("storemu runs");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(json["outcome"], "clean", "{json}");
    assert_eq!(output.status.code(), Some(0));
    let luns = json["luns"].as_array().expect("luns");
    assert!(!luns.is_empty(), "vstor exposes at least one disk: {json}");
    assert!(
        luns.iter()
            .all(|lun| lun["block_size"].as_u64().unwrap_or(0) > 0
                && lun["blocks"].as_u64().unwrap_or(0) > 0)
    );
    assert!(
        luns.iter().all(|lun| lun["write_verified"] == true),
        "{json}"
    );
}
