//! `csv`: comma-separated values with a header row or a 0-based column index.
//!
//! - `#` lines are comments (banner, `# END ...` footer). With the column given by name, the first
//!   row is the header when it names the column; otherwise the last `#` comment line before the
//!   first row is tried as the header (abuse.ch style `# "first_seen_utc","dst_ip",...`).
//! - With the column given by index, a first row whose cell is a plain word (letters, `_`, `-`,
//!   space) is taken as a header and skipped.
//! - With no column, the first known value column (see [`KNOWN_COLUMNS`]) of the header is used,
//!   else column 0.
//! - Quoted fields with commas and newlines are handled by the `csv` crate (`flexible`, trimmed).
//!   Each row's line number is the line it starts on.
//! - `type_column` names each row's type (`ip`, `domain`, `url`, `md5`, `sha1`, `sha256`, `cert`,
//!   or a Defender `indicatorType` name); other names are `unsupported-type`.

use super::{Collector, Column, FormatError, ParseOptions, Parsed, strip_bom};
use crate::{Reason, TypeHint};
use ::csv::ByteRecord;
use std::borrow::Cow;

/// Header names recognised as value columns, in the order they are preferred.
pub const KNOWN_COLUMNS: &[&str] = &[
    "indicator",
    "ioc",
    "ioc_value",
    "value",
    "url",
    "domain",
    "hostname",
    "host",
    "fqdn",
    "dst_ip",
    "ip",
    "ip_address",
    "ipaddress",
    "sha256_hash",
    "sha256",
    "sha1_hash",
    "sha1",
    "md5_hash",
    "md5",
    "hash",
];

/// Normalise a header cell: trim, drop a leading `#` and quotes, lower-case.
pub(crate) fn norm_header(s: &str) -> String {
    s.trim().trim_start_matches('#').trim().trim_matches('"').trim().to_ascii_lowercase()
}

/// Split one header-like line (e.g. a commented header) into normalised cells.
pub(crate) fn split_header_line(line: &str) -> Vec<String> {
    let mut rdr = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(line.trim().trim_start_matches('#').trim().as_bytes());
    let mut rec = ByteRecord::new();
    match rdr.read_byte_record(&mut rec) {
        Ok(true) => rec.iter().map(|f| norm_header(&String::from_utf8_lossy(f))).collect(),
        _ => Vec::new(),
    }
}

/// Streams the records of a CSV body with the line each starts on; `#` lines are skipped.
///
/// Line numbers are computed from the record's byte offset (the `csv` crate's own line counter
/// is off by one after CRLF and counts from before skipped comment lines).
pub(crate) struct Rows<'a> {
    reader: ::csv::Reader<&'a [u8]>,
    body: &'a [u8],
    /// Byte offset and 1-based line of the last computed position (offsets only grow).
    at: (usize, u64),
    done: bool,
}

impl std::fmt::Debug for Rows<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows").field("done", &self.done).finish()
    }
}

impl<'a> Rows<'a> {
    /// A row reader over `body` (BOM already stripped).
    pub(crate) fn new(body: &'a [u8]) -> Self {
        let reader = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .comment(Some(b'#'))
            .trim(::csv::Trim::All)
            .from_reader(body);
        Rows { reader, body, at: (0, 1), done: false }
    }

    /// The next non-empty record and its 1-based starting line.
    pub(crate) fn next_row(&mut self) -> Option<(u64, ByteRecord)> {
        while !self.done {
            let mut rec = ByteRecord::new();
            match self.reader.read_byte_record(&mut rec) {
                Ok(true) => {
                    if rec.iter().all(<[u8]>::is_empty) {
                        continue;
                    }
                    let offset = rec.position().map_or(0, ::csv::Position::byte);
                    let line = self.line_at(usize::try_from(offset).unwrap_or(usize::MAX));
                    return Some((line, rec));
                }
                Ok(false) | Err(_) => self.done = true,
            }
        }
        None
    }
}

impl Rows<'_> {
    /// The line of the first record byte at or after `offset`, skipping line ends and `#` lines.
    fn line_at(&mut self, offset: usize) -> u64 {
        let body = self.body;
        let mut pos = offset.min(body.len());
        loop {
            match body.get(pos) {
                Some(b'\r' | b'\n') => pos += 1,
                Some(b'#') => match body[pos..].iter().position(|&b| b == b'\n') {
                    Some(nl) => pos += nl + 1,
                    None => pos = body.len(),
                },
                _ => break,
            }
        }
        let (from, line) = self.at;
        let (from, line) = if pos >= from { (from, line) } else { (0, 1) };
        let line = line + body[from..pos].iter().filter(|&&b| b == b'\n').count() as u64;
        self.at = (pos, line);
        line
    }
}

/// A cell as text (lossy for non-UTF-8 bytes, which then fail validation).
pub(crate) fn cell(rec: &ByteRecord, i: usize) -> Option<Cow<'_, str>> {
    rec.get(i).map(String::from_utf8_lossy)
}

/// Physical line count of a body (a final line without newline counts).
pub(crate) fn count_lines(body: &[u8]) -> u64 {
    let n = body.iter().filter(|&&b| b == b'\n').count() as u64;
    n + u64::from(body.last().is_some_and(|&b| b != b'\n'))
}

/// The last `#` comment line before the first data line, if any.
pub(crate) fn commented_header(body: &[u8]) -> Option<Vec<String>> {
    let mut last = None;
    for (_, line) in super::text::lines(body) {
        let Ok(line) = line else { break };
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        match t.strip_prefix('#') {
            Some(c) => last = Some(c),
            None => break,
        }
    }
    last.map(split_header_line).filter(|h| h.len() >= 2)
}

/// The resolved layout of a CSV feed.
#[derive(Debug)]
struct Layout {
    value: usize,
    kind: Option<usize>,
    /// The first row is the header and must be skipped.
    skip_first: bool,
}

fn find(header: &[String], name: &str) -> Option<usize> {
    let want = norm_header(name);
    header.iter().position(|h| *h == want)
}

fn looks_like_header_word(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic() || matches!(c, '_' | '-' | ' '))
}

fn resolve(first: Option<&ByteRecord>, body: &[u8], opts: &ParseOptions) -> Result<Layout, FormatError> {
    let first_header: Vec<String> = first
        .map(|r| r.iter().map(|f| norm_header(&String::from_utf8_lossy(f))).collect())
        .unwrap_or_default();
    let comment_header = commented_header(body);
    // Which header (if any) is in force, and whether it is the first row.
    let pick = |name: &str| -> Option<(Vec<String>, bool)> {
        if find(&first_header, name).is_some() {
            Some((first_header.clone(), true))
        } else {
            comment_header.as_ref().filter(|h| find(h, name).is_some()).map(|h| (h.clone(), false))
        }
    };
    let columns_list = |h: &[String]| crate::normalize::truncate(&h.join(", "), 512).to_owned();
    let (value, header, skip_first) = match &opts.column {
        Some(Column::Name(name)) => match pick(name) {
            Some((h, skip)) => (find(&h, name).unwrap_or(0), Some(h), skip),
            None => return Err(FormatError::MissingColumn(name.clone(), columns_list(&first_header))),
        },
        Some(Column::Index(i)) => {
            let skip = first
                .and_then(|r| r.get(*i))
                .is_some_and(|c| looks_like_header_word(&String::from_utf8_lossy(c)));
            (*i, skip.then(|| first_header.clone()), skip)
        }
        None => {
            let known = KNOWN_COLUMNS.iter().find_map(|k| pick(k).map(|(h, skip)| (k, h, skip)));
            match known {
                Some((k, h, skip)) => (find(&h, k).unwrap_or(0), Some(h), skip),
                None => {
                    let skip = first
                        .and_then(|r| r.get(0))
                        .is_some_and(|c| looks_like_header_word(&String::from_utf8_lossy(c)));
                    (0, None, skip)
                }
            }
        }
    };
    let missing = |name: &String| FormatError::MissingColumn(name.clone(), columns_list(&first_header));
    let (kind, kind_in_first) = match &opts.type_column {
        None => (None, false),
        Some(Column::Index(i)) => (Some(*i), false),
        // The type column must be in the header that holds the value column, if there is one.
        Some(Column::Name(name)) => match &header {
            Some(h) => (Some(find(h, name).ok_or_else(|| missing(name))?), skip_first),
            None => match find(&first_header, name) {
                Some(i) => (Some(i), true),
                None => {
                    let i =
                        comment_header.as_deref().and_then(|h| find(h, name)).ok_or_else(|| missing(name))?;
                    (Some(i), false)
                }
            },
        },
    };
    let skip_first = skip_first || kind_in_first;
    Ok(Layout { value, kind, skip_first })
}

/// Parse a CSV feed. Fails only when a named column is not in the header.
pub fn parse(input: &[u8], opts: &ParseOptions) -> Result<Parsed, FormatError> {
    let body = strip_bom(input);
    let mut rows = Rows::new(body);
    let first = rows.next_row();
    let layout = resolve(first.as_ref().map(|(_, r)| r), body, opts)?;
    let mut out = Collector::new(opts);
    let handle = |line: u64, rec: &ByteRecord, out: &mut Collector| {
        let Some(raw) = cell(rec, layout.value) else {
            let detail = format!("row has {} fields; column {} is missing", rec.len(), layout.value);
            let joined = String::from_utf8_lossy(rec.as_slice()).into_owned();
            out.reject(Reason::InvalidValue, &joined, line, Some(detail));
            return;
        };
        if raw.trim().is_empty() {
            out.reject(Reason::InvalidValue, "", line, Some("empty value cell".into()));
            return;
        }
        let hint = match layout.kind {
            None => None,
            Some(k) => {
                let t = cell(rec, k).unwrap_or_default();
                match t.parse::<TypeHint>() {
                    Ok(h) => Some(h),
                    Err(e) => {
                        out.reject(Reason::UnsupportedType, &raw, line, Some(e.to_string()));
                        return;
                    }
                }
            }
        };
        out.value(&raw, hint, line);
    };
    if let Some((line, rec)) = &first
        && !layout.skip_first
    {
        handle(*line, rec, &mut out);
    }
    while let Some((line, rec)) = rows.next_row() {
        handle(line, &rec, &mut out);
    }
    Ok(out.finish(count_lines(body)))
}
