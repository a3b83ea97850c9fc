//! The real `vstor.sys` answering `ScsiQuerySupportedControlTypes` with
//! the list of the oldest Storport that runs a virtual miniport (Windows 8,
//! 13 entries) and of the newest (30): it marks the same types in both and
//! writes nothing past either list.

mod common;

use common::Adapter;
use storport_emu::port::PortOptions;
use storport_emu::port::adapter::{MAX_CONTROL_TYPE, SMALLEST_MAX_CONTROL_TYPE};

/// `ScsiQuerySupportedControlTypes`, `ScsiStopAdapter`,
/// `ScsiRestartAdapter`, `ScsiSetBootConfig`, `ScsiSetRunningConfig`
/// (written out from storport.h).
const SUPPORTED: [u32; 4] = [0, 1, 2, 4];
const SET_BOOT_CONFIG: u32 = 3;

fn supported_with(max_control_type: u32) {
    let adapter = Adapter::start_with(
        PortOptions {
            max_control_type,
            ..PortOptions::default()
        },
        &[],
    );
    for control_type in SUPPORTED {
        assert!(
            adapter.port.supports_control(control_type),
            "type {control_type} of {max_control_type}"
        );
    }
    assert!(!adapter.port.supports_control(SET_BOOT_CONFIG));
    assert!(
        (SET_BOOT_CONFIG + 1..max_control_type)
            .filter(|&control_type| control_type != 4)
            .all(|control_type| !adapter.port.supports_control(control_type)),
        "nothing else of {max_control_type}"
    );
    assert_eq!(adapter.port.set_running_config(), Ok(0));
    adapter.finish_clean();
}

#[test]
fn the_smallest_list_gets_the_same_types_and_nothing_past_it() {
    supported_with(SMALLEST_MAX_CONTROL_TYPE);
}

#[test]
fn the_newest_list_gets_the_same_types() {
    assert_eq!(MAX_CONTROL_TYPE, 30);
    supported_with(MAX_CONTROL_TYPE);
}
