//! UTF-16 INFs, as Windows tools often write them: little-endian and
//! big-endian, with and without a byte order mark, parse to the same INF as
//! their UTF-8 text.

use storport_emu::inf::Inf;

const TEXT: &str = "[Version]\r\nSignature = \"$WINDOWS NT$\"\r\n[S]\r\nA = \"Grüße\", %K%\r\n[Strings]\r\nK = \"v\"\r\n";

fn utf16(text: &str, little_endian: bool, bom: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    let units = bom
        .then_some(0xFEFF_u16)
        .into_iter()
        .chain(text.encode_utf16());
    for unit in units {
        bytes.extend_from_slice(&if little_endian {
            unit.to_le_bytes()
        } else {
            unit.to_be_bytes()
        });
    }
    bytes
}

#[test]
fn every_utf16_form_parses_as_the_utf8_text() {
    let expected = Inf::parse(TEXT).expect("UTF-8 parses");
    assert_eq!(
        expected.section("S").unwrap().entry("A").unwrap().values,
        ["Grüße", "v"]
    );
    for (little_endian, bom) in [(true, true), (true, false), (false, true), (false, false)] {
        let bytes = utf16(TEXT, little_endian, bom);
        let parsed = Inf::from_bytes(&bytes)
            .unwrap_or_else(|e| panic!("UTF-16 little_endian={little_endian} bom={bom}: {e}"));
        assert_eq!(parsed, expected, "little_endian={little_endian} bom={bom}");
    }
}

#[test]
fn an_odd_trailing_byte_becomes_a_replacement_character() {
    let mut bytes = utf16("[S]\nA = x", true, false);
    bytes.push(b'y');
    let inf = Inf::from_bytes(&bytes).expect("parses");
    assert_eq!(
        inf.section("S").unwrap().entry("A").unwrap().values,
        ["x\u{FFFD}"]
    );
}
