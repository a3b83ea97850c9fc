//! INF syntax: sections, quoting, comments, continuation, substitution, and
//! errors with line numbers. Plus: no input makes the parser panic.

use proptest::prelude::*;
use storport_emu::inf::{Inf, ParseError, ParseErrorKind};

fn parse(text: &str) -> Inf {
    Inf::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> ParseError {
    Inf::parse(text).unwrap_err()
}

#[test]
fn sections_entries_and_values() {
    let inf = parse(
        "[Version]\nSignature = \"$WINDOWS NT$\"\nClass=SCSIAdapter\n\n[Sec]\nA = 1, two ,, \"four\"\nHKR, , Name, 0x10001, 5\n",
    );
    let version = inf.section("version").unwrap();
    assert_eq!(version.name, "Version");
    assert_eq!(version.entry("SIGNATURE").unwrap().values, ["$WINDOWS NT$"]);
    let sec = inf.section("SEC").unwrap();
    let a = sec.entry("a").unwrap();
    assert_eq!(a.line, 6);
    assert_eq!(a.values, ["1", "two", "", "four"]);
    let line = &sec.entries[1];
    assert_eq!(line.key, None);
    assert_eq!(line.values, ["HKR", "", "Name", "0x10001", "5"]);
    assert_eq!(line.fields(), ["HKR", "", "Name", "0x10001", "5"]);
}

#[test]
fn key_only_when_equals_precedes_first_comma() {
    let inf = parse("[S]\nHKR,,X,,a=b\nK = \nL=v=w\n");
    let s = inf.section("S").unwrap();
    assert_eq!(s.entries[0].key, None);
    assert_eq!(s.entries[0].values[4], "a=b");
    assert_eq!(s.entries[1].key.as_deref(), Some("K"));
    assert!(s.entries[1].values.is_empty());
    assert_eq!(s.entries[2].values, ["v=w"]);
}

#[test]
fn comments_are_not_inside_quotes_or_strkeys() {
    let inf = parse(
        "; header comment\n[S] ; after header\nA = \"x;y\" ; comment\nB = %k;1% ; c\n[Strings]\n\"k;1\" = \"v\"\n",
    );
    let s = inf.section("S").unwrap();
    assert_eq!(s.entry("A").unwrap().values, ["x;y"]);
    assert_eq!(s.entry("B").unwrap().values, ["v"]);
}

#[test]
fn quotes_keep_whitespace_and_double_quote_escapes() {
    let inf =
        parse("[S]\nA = \"  padded  \"\nB = \"say \"\"hi\"\"\"\nC = \"a,b\", c\nD = x \"y\" z\n");
    let s = inf.section("S").unwrap();
    assert_eq!(s.entry("A").unwrap().values, ["  padded  "]);
    assert_eq!(s.entry("B").unwrap().values, ["say \"hi\""]);
    assert_eq!(s.entry("C").unwrap().values, ["a,b", "c"]);
    assert_eq!(s.entry("D").unwrap().values, ["x y z"]);
}

#[test]
fn line_continuation() {
    let inf = parse(
        "[S]\nA = one, \\\n  two ; comment\nCopyFiles = \"SomeDirectory\\\"\\ ; c\n,SomeFile\nP = Dir\\\\\n,F\nB = last\n",
    );
    let s = inf.section("S").unwrap();
    let a = s.entry("A").unwrap();
    assert_eq!(a.values, ["one", "two"]);
    assert_eq!(a.line, 2);
    assert_eq!(
        s.entry("CopyFiles").unwrap().values,
        ["SomeDirectory\\", "SomeFile"]
    );
    assert_eq!(s.entry("P").unwrap().values, ["Dir\\", "F"]);
    assert_eq!(s.entry("B").unwrap().line, 8);
}

#[test]
fn strkey_substitution_is_case_insensitive_with_percent_escape() {
    let inf = parse(
        "[S]\nA = %Name%, \"%NAME% disk\", %%SystemRoot%%\\x, \"%%literal%%\"\nB = %12%\\vstor.sys\n[Strings]\nname = \"Virtual\"\n",
    );
    let s = inf.section("S").unwrap();
    assert_eq!(
        s.entry("A").unwrap().values,
        ["Virtual", "Virtual disk", "%SystemRoot%\\x", "%literal%"]
    );
    assert_eq!(
        s.entry("B").unwrap().values,
        ["\\SystemRoot\\System32\\drivers\\vstor.sys"]
    );
    assert_eq!(inf.string("NAME"), Some("Virtual"));
}

#[test]
fn strings_values_are_literal() {
    let inf = parse(
        "[Strings]\nA = \"50% off\"\nB = \"\"\"quoted\"\"\"\nC = 100%% sure\nD = plain text  \n",
    );
    assert_eq!(inf.string("a"), Some("50% off"));
    assert_eq!(inf.string("b"), Some("\"quoted\""));
    assert_eq!(inf.string("c"), Some("100% sure"));
    assert_eq!(inf.string("d"), Some("plain text"));
}

#[test]
fn localized_strings_prefer_en_us() {
    let inf = parse(
        "[S]\nA=%X%\n[Strings]\nX=neutral\n[Strings.0407]\nX=deutsch\n[Strings.0409]\nX=english\n",
    );
    assert_eq!(
        inf.section("S").unwrap().entry("A").unwrap().values,
        ["english"]
    );
    let inf = parse("[S]\nA=%X%\n[Strings]\nX=neutral\n[Strings.0407]\nX=deutsch\n");
    assert_eq!(
        inf.section("S").unwrap().entry("A").unwrap().values,
        ["neutral"]
    );
    let inf = parse("[S]\nA=%X%\n[Strings]\nX=neutral\n[Strings.0809]\nX=british\n");
    assert_eq!(
        inf.section("S").unwrap().entry("A").unwrap().values,
        ["british"]
    );
}

#[test]
fn same_named_sections_merge() {
    let inf = parse("[S]\nA=1\n[T]\nX=0\n[s]\nB=2\n");
    let s = inf.section("S").unwrap();
    assert_eq!(s.entries.len(), 2);
    assert_eq!(s.entry("B").unwrap().line, 6);
    assert_eq!(inf.sections().len(), 2);
}

#[test]
fn encodings() {
    let text = "[S]\r\nA = \"é\"\r\n";
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let inf = Inf::from_bytes(&utf16).unwrap();
    assert_eq!(inf.section("S").unwrap().entry("A").unwrap().values, ["é"]);
    let mut utf8 = vec![0xEF, 0xBB, 0xBF];
    utf8.extend_from_slice(text.as_bytes());
    let inf = Inf::from_bytes(&utf8).unwrap();
    assert_eq!(inf.section("S").unwrap().entry("A").unwrap().values, ["é"]);
    let inf = Inf::from_bytes(b"[S]\nA = \"\xE9\"\n").unwrap();
    assert_eq!(inf.section("S").unwrap().entry("A").unwrap().values, ["é"]);
}

#[test]
fn errors_carry_line_and_expectation() {
    let e = err("[S]\nA = 1\n[Broken\n");
    assert_eq!(e.line, 3);
    assert_eq!(e.kind, ParseErrorKind::UnclosedSection);
    assert_eq!(
        e.to_string(),
        "INF line 3: the section header has no closing `]`; expected `[SectionName]`"
    );
    assert_eq!(err("[ ]\n").kind, ParseErrorKind::EmptySectionName);
    assert_eq!(
        err("[S] x\n").kind,
        ParseErrorKind::TextAfterSection("x".to_owned())
    );
    assert_eq!(err("A = 1\n").kind, ParseErrorKind::EntryOutsideSection);
    let e = err("[S]\n\nA = \"open\n");
    assert_eq!((e.line, e.kind), (3, ParseErrorKind::UnclosedQuote));
    let e = err("[S]\nA = 50%\n");
    assert_eq!(e.kind, ParseErrorKind::UnclosedStrKey(String::new()));
    let e = err("[S]\nA = 1\nB = %Nope%\n");
    assert_eq!(e.line, 3);
    assert_eq!(
        e.to_string(),
        "INF line 3: `%Nope%` is not defined in the [Strings] section and is not a known DIRID (10, 11, 12, 13); expected a key defined there, or `%%` for a literal percent sign"
    );
    assert_eq!(
        err("[Strings]\njust text\n").kind,
        ParseErrorKind::StringWithoutKey
    );
}

#[test]
fn empty_and_comment_only_files_parse() {
    assert!(parse("").sections().is_empty());
    assert!(parse("; only\n\n   \n").sections().is_empty());
}

proptest! {
    #[test]
    fn parse_never_panics(text in ".{0,400}") {
        let _ = Inf::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_inf_like_text(
        text in proptest::collection::vec(
            prop_oneof![
                Just("["), Just("]"), Just("\""), Just("%"), Just(";"), Just("\\"),
                Just(","), Just("="), Just("\n"), Just("\r\n"), Just(" "), Just("Strings"),
                Just("Strings.0409"), Just("a"), Just("é"), Just("12"), Just("HKR"),
            ],
            0..80,
        )
    ) {
        let _ = Inf::parse(&text.concat());
    }

    #[test]
    fn from_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Inf::from_bytes(&bytes);
    }
}
