//! The iSCSI PDU reader and text-key parser of `storemu serve` on arbitrary
//! bytes: PDUs are read one after another until the input ends or one is
//! refused; each read PDU must write back to bytes that read as the same
//! PDU, and its data segment goes through the key=value parser. No panic,
//! no unbounded allocation (the data segment is capped as the target caps it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use storport_emu::serve::iscsi::{pdu::Pdu, text};

/// The largest data segment read, as the target's MaxRecvDataSegmentLength.
const MAX_DATA: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut input = std::io::Cursor::new(data);
    for _ in 0..16 {
        let Ok(pdu) = Pdu::read(&mut input, MAX_DATA) else {
            return;
        };
        let mut copy = pdu.clone();
        let mut bytes = Vec::new();
        copy.write(&mut bytes).expect("writing to memory succeeds");
        let again = Pdu::read(&mut std::io::Cursor::new(&bytes), MAX_DATA)
            .expect("a written PDU reads back");
        assert_eq!(again, pdu, "a PDU survives write and read");
        let _ = text::parse(&pdu.data);
        let _ = (
            pdu.opcode(),
            pdu.immediate(),
            pdu.is_final(),
            pdu.itt(),
            pdu.lun_field(),
        );
    }
});
