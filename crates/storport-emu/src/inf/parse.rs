//! INF syntax: sections, entries, quoting, comments, continuation and
//! `%strkey%` substitution.
//!
//! Sources: "General Syntax Rules for INF Files" and "INF Strings Section"
//! (Microsoft's device installation docs). Rules implemented:
//!
//! - `[Name]` starts a section; names are case-insensitive; sections with the
//!   same name are merged in file order. Only a comment may follow `]`.
//! - An entry is `key = value, value, ...` or `value, value, ...`; only an `=`
//!   before the first unquoted `,` makes a key. Values are separated by
//!   commas and may be empty (`a,,c`). Whitespace around unquoted text is
//!   dropped; text inside `"..."` is kept as is, and `""` inside it is one `"`.
//! - `;` starts a comment, except inside a quoted string or a `%strkey%`.
//! - A `\` as the last character of a line (before any comment and trailing
//!   blanks, outside quotes) joins the next line to this one; only that last
//!   backslash is removed, so `Dir\\` continues with `Dir\`.
//! - `%strkey%` is replaced by the value of `strkey` in the `[Strings]`
//!   section (case-insensitive), in quoted and unquoted text alike; `%%` is a
//!   literal `%`. A number not defined there is a DIRID: 10 `\SystemRoot`,
//!   11 `\SystemRoot\System32`, 12 `\SystemRoot\System32\drivers`,
//!   13 `\SystemRoot\System32\DriverStore\FileRepository\storemu.inf_amd64`
//!   (the NT paths Windows records in a service's `ImagePath`; the driver
//!   store folder name is the emulator's stand-in).
//! - `[Strings]` values are literal: outer quotes removed, `""` → `"`,
//!   `%%` → `%`, no substitution. The emulated locale is en-US (0x0409):
//!   `[Strings.0409]`, then `[Strings.0009]`, then another `[Strings.xx09]`,
//!   then `[Strings]` is used, as "INF Strings Section" describes.
//! - Text is UTF-8, or UTF-16LE or UTF-16BE with a byte order mark or, without
//!   one, told apart by where the NUL byte of the first character falls
//!   (Windows INFs are often UTF-16LE); bytes that are not UTF-8 are read as
//!   ISO-8859-1.
//!
//! Sections are indexed by case-folded name once, while parsing, and
//! `[Strings]` keys are hashed, so parsing and every lookup take time linear
//! in the size of the file.
//!
//! Decisions: a quoted string must close on its line (the error names the
//! line); a `%strkey%` that is neither in `[Strings]` nor a known DIRID is an
//! error, as is a `%` without its closing `%`. Parsing never panics.

use std::collections::HashMap;

/// One entry of a section: `key = values` or just `values`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The line the entry starts on (1-based).
    pub line: usize,
    /// The text before `=`, substituted, if the entry has one.
    pub key: Option<String>,
    /// The comma-separated values, substituted, quotes removed.
    pub values: Vec<String>,
}

impl Entry {
    /// The key (if any) followed by the values: the fields of an entry such
    /// as an add-registry line, which has no key.
    #[must_use]
    pub fn fields(&self) -> Vec<&str> {
        self.key
            .iter()
            .chain(self.values.iter())
            .map(String::as_str)
            .collect()
    }

    /// The value at `index`, or `""` when the entry has fewer values.
    #[must_use]
    pub fn value(&self, index: usize) -> &str {
        self.values.get(index).map_or("", String::as_str)
    }
}

/// A section: its name as first written and its entries in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// The name between the brackets.
    pub name: String,
    /// The line of the first header with this name.
    pub line: usize,
    /// The entries.
    pub entries: Vec<Entry>,
}

impl Section {
    /// Entries whose key is `key` (case-insensitive).
    pub fn entries_with_key<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| {
            e.key
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case(key))
        })
    }

    /// The first entry whose key is `key` (case-insensitive).
    #[must_use]
    pub fn entry<'a>(&'a self, key: &'a str) -> Option<&'a Entry> {
        self.entries_with_key(key).next()
    }
}

/// What is wrong at a line of an INF file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// `[` without `]`.
    #[error("the section header has no closing `]`; expected `[SectionName]`")]
    UnclosedSection,
    /// `[]`.
    #[error("the section name is empty; expected `[SectionName]`")]
    EmptySectionName,
    /// Text after `]`.
    #[error("`{0}` follows the section header; expected nothing but a comment after `]`")]
    TextAfterSection(String),
    /// An entry before any section header.
    #[error(
        "an entry appears before the first section header; expected a `[SectionName]` line first"
    )]
    EntryOutsideSection,
    /// `"` without its closing `"`.
    #[error("a quoted string is not closed; expected a closing `\"` before the end of the line")]
    UnclosedQuote,
    /// `%` without its closing `%`.
    #[error("`%{0}` has no closing `%`; expected `%strkey%`, or `%%` for a literal percent sign")]
    UnclosedStrKey(String),
    /// `%strkey%` not defined.
    #[error(
        "`%{0}%` is not defined in the [Strings] section and is not a known DIRID (10, 11, 12, 13); expected a key defined there, or `%%` for a literal percent sign"
    )]
    UndefinedStrKey(String),
    /// A `[Strings]` line without `=`.
    #[error("this [Strings] line has no `=`; expected `strkey = \"value\"`")]
    StringWithoutKey,
}

/// An INF syntax error, with the line it is on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("INF line {line}: {kind}")]
pub struct ParseError {
    /// The line (1-based).
    pub line: usize,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

/// A piece of a field before substitution.
#[derive(Clone, Debug)]
enum Seg {
    Text { text: String, quoted: bool },
    StrKey(String),
}

type RawField = Vec<Seg>;

#[derive(Clone, Debug)]
struct RawEntry {
    line: usize,
    key: Option<RawField>,
    values: Vec<RawField>,
}

#[derive(Clone, Debug)]
struct RawSection {
    name: String,
    line: usize,
    entries: Vec<RawEntry>,
}

/// Finds where a comment starts on a physical line (outside quotes and
/// `%strkey%` tokens), and whether its quotes are balanced.
fn comment_start(line: &[char]) -> Result<usize, ParseErrorKind> {
    let mut i = 0;
    let mut quoted = false;
    while i < line.len() {
        match line[i] {
            '"' => quoted = !quoted,
            ';' if !quoted => return Ok(i),
            '%' if !quoted => {
                if let Some(close) = line[i + 1..].iter().position(|&c| c == '%') {
                    i += close + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    if quoted {
        Err(ParseErrorKind::UnclosedQuote)
    } else {
        Ok(line.len())
    }
}

/// Joins continued physical lines into logical lines: (first line, text).
fn logical_lines(text: &str) -> Result<Vec<(usize, Vec<char>)>, ParseError> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, Vec<char>)> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let chars: Vec<char> = raw.chars().collect();
        let end = comment_start(&chars).map_err(|kind| ParseError { line: number, kind })?;
        let mut content = &chars[..end];
        while content.last().is_some_and(|c| c.is_whitespace()) {
            content = &content[..content.len() - 1];
        }
        let continues = content.last() == Some(&'\\');
        if continues {
            content = &content[..content.len() - 1];
        }
        let (first, mut joined) = pending.take().unwrap_or((number, Vec::new()));
        joined.extend_from_slice(content);
        if continues {
            pending = Some((first, joined));
        } else {
            out.push((first, joined));
        }
    }
    out.extend(pending);
    Ok(out)
}

fn push_text(field: &mut RawField, c: char, quoted: bool) {
    if let Some(Seg::Text { text, quoted: q }) = field.last_mut()
        && *q == quoted
    {
        text.push(c);
        return;
    }
    field.push(Seg::Text {
        text: c.to_string(),
        quoted,
    });
}

/// Drops whitespace outside quotes at both ends of a field.
fn trim_field(mut field: RawField) -> RawField {
    if let Some(Seg::Text {
        text,
        quoted: false,
    }) = field.first_mut()
    {
        *text = text.trim_start().to_owned();
    }
    if let Some(Seg::Text {
        text,
        quoted: false,
    }) = field.last_mut()
    {
        *text = text.trim_end().to_owned();
    }
    field
}

/// Splits a logical entry line into key and fields. In `[Strings]` sections
/// (`literal_percent`) a `%` is plain text (`%%` still means `%`).
fn tokenize(line: &[char], literal_percent: bool) -> Result<RawEntry, ParseErrorKind> {
    let mut key: Option<RawField> = None;
    let mut fields: Vec<RawField> = Vec::new();
    let mut field: RawField = Vec::new();
    let mut quoted = false;
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        match c {
            '"' if quoted && line.get(i + 1) == Some(&'"') => {
                push_text(&mut field, '"', true);
                i += 1;
            }
            '"' => quoted = !quoted,
            '%' if line.get(i + 1) == Some(&'%') => {
                push_text(&mut field, '%', quoted);
                i += 1;
            }
            '%' if literal_percent => push_text(&mut field, '%', quoted),
            '%' => {
                let rest = &line[i + 1..];
                let Some(close) = rest.iter().position(|&c| c == '%') else {
                    return Err(ParseErrorKind::UnclosedStrKey(rest.iter().collect()));
                };
                field.push(Seg::StrKey(rest[..close].iter().collect()));
                i += close + 1;
            }
            '=' if !quoted && key.is_none() && fields.is_empty() => {
                key = Some(trim_field(std::mem::take(&mut field)));
                if line[i + 1..].iter().all(|c| c.is_whitespace()) {
                    return Ok(RawEntry {
                        line: 0,
                        key,
                        values: Vec::new(),
                    });
                }
            }
            ',' if !quoted => fields.push(trim_field(std::mem::take(&mut field))),
            c => push_text(&mut field, c, quoted),
        }
        i += 1;
    }
    if quoted {
        return Err(ParseErrorKind::UnclosedQuote);
    }
    fields.push(trim_field(field));
    Ok(RawEntry {
        line: 0,
        key,
        values: fields,
    })
}

fn is_strings_section(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "strings" || lower.starts_with("strings.")
}

/// The key a section name is looked up by: section names compare
/// case-insensitively in ASCII.
fn section_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Reads the file into raw sections (merged by name), with the index of
/// each folded name.
fn raw_sections(text: &str) -> Result<(Vec<RawSection>, HashMap<String, usize>), ParseError> {
    let mut sections: Vec<RawSection> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut current: Option<usize> = None;
    for (line, chars) in logical_lines(text)? {
        let fail = |kind| ParseError { line, kind };
        let trimmed: String = chars.iter().collect::<String>().trim().to_owned();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(header) = trimmed.strip_prefix('[') {
            let (name, after) = header
                .split_once(']')
                .ok_or_else(|| fail(ParseErrorKind::UnclosedSection))?;
            let name = name.trim();
            if name.is_empty() {
                return Err(fail(ParseErrorKind::EmptySectionName));
            }
            if !after.trim().is_empty() {
                return Err(fail(ParseErrorKind::TextAfterSection(
                    after.trim().to_owned(),
                )));
            }
            let next = sections.len();
            let slot = *index.entry(section_key(name)).or_insert(next);
            if slot == next {
                sections.push(RawSection {
                    name: name.to_owned(),
                    line,
                    entries: Vec::new(),
                });
            }
            current = Some(slot);
            continue;
        }
        let index = current.ok_or_else(|| fail(ParseErrorKind::EntryOutsideSection))?;
        let section = &mut sections[index];
        let mut entry = tokenize(&chars, is_strings_section(&section.name)).map_err(fail)?;
        entry.line = line;
        section.entries.push(entry);
    }
    Ok((sections, index))
}

/// Renders a `[Strings]` field literally.
fn literal(field: &RawField) -> String {
    field
        .iter()
        .map(|seg| match seg {
            Seg::Text { text, .. } => text.clone(),
            Seg::StrKey(name) => format!("%{name}%"),
        })
        .collect()
}

/// Picks the `[Strings]` section for locale 0x0409 as "INF Strings Section"
/// describes: exact language, then neutral sublanguage, then the language
/// family, then the undecorated section.
fn pick_strings(sections: &[RawSection]) -> Option<&RawSection> {
    let decorated = |pred: &dyn Fn(u32) -> bool| {
        sections.iter().find(|s| {
            s.name
                .to_ascii_lowercase()
                .strip_prefix("strings.")
                .and_then(|id| u32::from_str_radix(id.trim_start_matches("0x"), 16).ok())
                .is_some_and(pred)
        })
    };
    decorated(&|id| id == 0x0409)
        .or_else(|| decorated(&|id| id == 0x0009))
        .or_else(|| decorated(&|id| id & 0x3FF == 0x09))
        .or_else(|| {
            sections
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case("strings"))
        })
}

/// `DIRIDs` the emulator knows, as NT paths.
fn dirid(number: &str) -> Option<&'static str> {
    match number.parse::<u32>().ok()? {
        10 => Some("\\SystemRoot"),
        11 => Some("\\SystemRoot\\System32"),
        12 => Some("\\SystemRoot\\System32\\drivers"),
        13 => Some("\\SystemRoot\\System32\\DriverStore\\FileRepository\\storemu.inf_amd64"),
        _ => None,
    }
}

/// The text of UTF-16 INF bytes, or `None` when they are not UTF-16: a
/// byte order mark (`FF FE` little-endian, `FE FF` big-endian) decides, and
/// without one a NUL in the first two bytes does. A trailing odd byte and
/// unpaired surrogates become U+FFFD, as other undecodable text does.
fn decode_utf16(bytes: &[u8]) -> Option<String> {
    let (little_endian, body) = match bytes {
        [0xFF, 0xFE, rest @ ..] => (true, rest),
        [0xFE, 0xFF, rest @ ..] => (false, rest),
        [first, 0, ..] if *first != 0 => (true, bytes),
        [0, second, ..] if *second != 0 => (false, bytes),
        _ => return None,
    };
    let units = body.chunks(2).map(|pair| match (pair, little_endian) {
        ([low, high], true) => u16::from_le_bytes([*low, *high]),
        ([high, low], false) => u16::from_be_bytes([*high, *low]),
        _ => 0xFFFD,
    });
    Some(
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect(),
    )
}

/// A parsed INF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inf {
    sections: Vec<Section>,
    /// Section positions by [`section_key`], built once while parsing.
    index: HashMap<String, usize>,
    strings: HashMap<String, String>,
}

impl Inf {
    /// Parses INF text. Never panics, whatever the input.
    ///
    /// # Errors
    ///
    /// [`ParseError`] with the line number and what was expected.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let (raw, index) = raw_sections(text)?;
        let mut strings = HashMap::new();
        if let Some(section) = pick_strings(&raw) {
            for entry in &section.entries {
                let key = entry.key.as_ref().ok_or(ParseError {
                    line: entry.line,
                    kind: ParseErrorKind::StringWithoutKey,
                })?;
                let value: Vec<String> = entry.values.iter().map(literal).collect();
                strings
                    .entry(literal(key).to_lowercase())
                    .or_insert_with(|| value.join(","));
            }
        }
        let substitute = |field: &RawField, line: usize| -> Result<String, ParseError> {
            let mut out = String::new();
            for seg in field {
                match seg {
                    Seg::Text { text, .. } => out.push_str(text),
                    Seg::StrKey(name) => {
                        let value = strings
                            .get(&name.to_lowercase())
                            .map(String::as_str)
                            .or_else(|| dirid(name))
                            .ok_or_else(|| ParseError {
                                line,
                                kind: ParseErrorKind::UndefinedStrKey(name.clone()),
                            })?;
                        out.push_str(value);
                    }
                }
            }
            Ok(out)
        };
        let mut sections = Vec::with_capacity(raw.len());
        for section in &raw {
            let strings_section = is_strings_section(&section.name);
            let mut entries = Vec::with_capacity(section.entries.len());
            for e in &section.entries {
                let render = |f: &RawField| {
                    if strings_section {
                        Ok(literal(f))
                    } else {
                        substitute(f, e.line)
                    }
                };
                entries.push(Entry {
                    line: e.line,
                    key: e.key.as_ref().map(render).transpose()?,
                    values: e.values.iter().map(render).collect::<Result<_, _>>()?,
                });
            }
            sections.push(Section {
                name: section.name.clone(),
                line: section.line,
                entries,
            });
        }
        Ok(Self {
            sections,
            index,
            strings,
        })
    }

    /// Parses an INF file's bytes: UTF-16LE or UTF-16BE (with a byte order
    /// mark, or without one when a NUL byte opens the file: INF text holds
    /// no NUL, so `X 00` starts UTF-16LE and `00 X` UTF-16BE), UTF-8 (with
    /// or without a byte order mark), or else ISO-8859-1.
    ///
    /// # Errors
    ///
    /// [`ParseError`] as for [`parse`](Self::parse).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ParseError> {
        if let Some(text) = decode_utf16(bytes) {
            return Self::parse(&text);
        }
        let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
        std::str::from_utf8(bytes).map_or_else(
            |_| Self::parse(&bytes.iter().map(|&b| char::from(b)).collect::<String>()),
            Self::parse,
        )
    }

    /// The section named `name` (case-insensitive).
    #[must_use]
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.index
            .get(&section_key(name))
            .map(|&i| &self.sections[i])
    }

    /// All sections in the order their names first appear.
    #[must_use]
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The value of `%key%` from the chosen `[Strings]` section.
    #[must_use]
    pub fn string(&self, key: &str) -> Option<&str> {
        self.strings.get(&key.to_lowercase()).map(String::as_str)
    }
}
