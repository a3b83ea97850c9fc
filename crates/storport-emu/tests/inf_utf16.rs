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

#[test]
fn vstor_inf_installs_the_same_from_utf16le_without_a_byte_order_mark() {
    use storport_emu::inf::{InstallOptions, install};
    use storport_emu::registry::Registry;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../inf/vstor.inf");
    let text = std::fs::read_to_string(path).expect("inf/vstor.inf reads");
    let installed = |inf: &Inf| {
        let mut registry = Registry::new();
        let installed = install(inf, &mut registry, &InstallOptions::default()).expect("installs");
        (installed, registry.to_string())
    };
    let utf8 = Inf::from_bytes(text.as_bytes()).expect("UTF-8 parses");
    let utf16 = Inf::from_bytes(&utf16(&text, true, false)).expect("UTF-16LE parses");
    assert_eq!(utf16, utf8);
    let (from_utf8, registry_utf8) = installed(&utf8);
    let (from_utf16, registry_utf16) = installed(&utf16);
    assert_eq!(from_utf16, from_utf8);
    assert_eq!(from_utf16.service, "vstor");
    assert_eq!(registry_utf16, registry_utf8);
    assert!(
        registry_utf16.contains("\"DiskCount\" = REG_DWORD"),
        "{registry_utf16}"
    );
}

#[test]
fn inf_lint_passes_vstor_inf_in_every_utf16_form() {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../inf/vstor.inf");
    let text = std::fs::read_to_string(source).expect("inf/vstor.inf reads");
    for (little_endian, bom) in [(true, false), (false, false), (false, true)] {
        let path = std::env::temp_dir().join(format!(
            "storemu-utf16-{}-{little_endian}-{bom}.inf",
            std::process::id()
        ));
        std::fs::write(&path, utf16(&text, little_endian, bom)).expect("temporary INF");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_storemu"))
            .arg("inf-lint")
            .arg(&path)
            .output()
            .expect("storemu runs");
        std::fs::remove_file(&path).expect("temporary INF removed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "little_endian={little_endian} bom={bom}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.trim_end().ends_with(": passes all 17 INF rules"),
            "{stdout}"
        );
    }
}
