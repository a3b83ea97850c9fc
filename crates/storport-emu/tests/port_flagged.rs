//! `Port::execute_flagged` on the cross-built broken-miniport fixture: the
//! direction bits reach the miniport as chosen, the buffer holds the initial
//! bytes and comes back as the miniport left it, and the completion is
//! checked whatever the flags.

use storport_emu::port::{DataDirection, FlagDirection, Port, Rule, SrbResult};
use storport_sys::srb_status;

mod broken_port;
mod port_support;

use broken_port::{rw10, started};

fn read_block(port: &Port, lba: u32) -> SrbResult {
    port.execute((0, 0, 0), &rw10(0x28, lba, 1), &DataDirection::In(512))
        .expect("READ(10)")
}

#[test]
fn direction_bits_are_the_srb_h_values() {
    // srb.h: SRB_FLAGS_DATA_IN 0x40, SRB_FLAGS_DATA_OUT 0x80,
    // SRB_FLAGS_NO_DATA_TRANSFER 0, SRB_FLAGS_UNSPECIFIED_DIRECTION both.
    let bits: Vec<u32> = FlagDirection::ALL.iter().map(|f| f.bits()).collect();
    assert_eq!(bits, vec![0x00, 0x40, 0x80, 0xC0]);
}

#[test]
fn the_buffer_carries_the_initial_bytes_in_and_comes_back_as_left() {
    let port = started("none");
    // The fixture moves data whatever the flags say: every form reaches it
    // with DataBuffer and DataTransferLength set.
    for (lba, flags) in (1_u32..).zip(FlagDirection::ALL) {
        let payload: Vec<u8> = (0..512_u32)
            .map(|i| (i * 3 + lba).to_le_bytes()[0])
            .collect();
        let written = port
            .execute_flagged((0, 0, 0), &rw10(0x2A, lba, 1), flags, payload.clone())
            .expect("WRITE(10)");
        assert_eq!(written.result.status(), srb_status::SUCCESS, "{flags:?}");
        assert_eq!(written.result.transferred, 512, "{flags:?}");
        assert_eq!(
            written.buffer, payload,
            "{flags:?}: the miniport only read it"
        );
        assert_eq!(
            read_block(&port, lba).data,
            payload,
            "{flags:?}: on the disk"
        );

        // A longer buffer: the miniport fills 512 bytes, the rest keeps its
        // initial bytes, and `data` is the transferred part.
        let read = port
            .execute_flagged((0, 0, 0), &rw10(0x28, lba, 1), flags, vec![0xEE; 600])
            .expect("READ(10)");
        assert_eq!(read.result.status(), srb_status::SUCCESS, "{flags:?}");
        assert_eq!(read.result.transferred, 512, "{flags:?}");
        assert_eq!(read.result.data, payload, "{flags:?}");
        assert_eq!(&read.buffer[..512], &payload[..], "{flags:?}");
        assert_eq!(read.buffer[512..], [0xEE; 88], "{flags:?}");
    }
    // No buffer: DataBuffer is NULL and DataTransferLength 0.
    let empty = port
        .execute_flagged((0, 0, 0), &[0; 6], FlagDirection::Unspecified, Vec::new())
        .expect("TEST UNIT READY");
    assert_eq!(
        (empty.result.status(), empty.result.transferred),
        (srb_status::SUCCESS, 0)
    );
    assert_eq!(empty.buffer, Vec::<u8>::new());
    port.remove().expect("remove");
    port.unload();
    assert_eq!(port.findings(), vec![]);
}

#[test]
fn the_completion_is_checked_whatever_the_flags() {
    // `transfer-too-long` grows DataTransferLength past the buffer when
    // SRB_FLAGS_DATA_IN is set: the flags reach the miniport as chosen, and
    // the port's TransferLength check runs for every form.
    let port = started("transfer-too-long");
    assert_eq!(port.findings(), vec![], "nothing before the requests");
    for flags in FlagDirection::ALL {
        let before = port.findings().len();
        let inquiry = port
            .execute_flagged((0, 0, 0), &[0x12, 0, 0, 0, 36, 0], flags, vec![0; 36])
            .expect("INQUIRY");
        assert_eq!(inquiry.result.status(), srb_status::SUCCESS, "{flags:?}");
        let new: Vec<Rule> = port.findings()[before..].iter().map(|f| f.rule).collect();
        let data_in = matches!(flags, FlagDirection::In | FlagDirection::Unspecified);
        let expected = if data_in {
            vec![Rule::TransferLength]
        } else {
            vec![]
        };
        assert_eq!(new, expected, "{flags:?}");
    }
}
