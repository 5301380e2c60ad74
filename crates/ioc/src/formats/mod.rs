//! Feed formats: bytes in, accepted `Ioc`s and `Rejection`s out.
//!
//! Every parser is total: any input yields a `Parsed` (possibly all rejections) or a
//! `FormatError` for a document that is not of the format at all; none panics.

use crate::normalize::{normalize_spelled, truncate};
use crate::{IndicatorType, Ioc, Reason, Rejection, TypeHint};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Read as _;

pub mod csv;
pub mod defender_csv;
pub mod hosts;
pub mod misp;
pub mod stix;
pub mod text;

/// A feed format name as written in the config (`format = "csv"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Sniff: JSON (STIX vs MISP), hosts, CSV with a header, else text.
    Auto,
    /// One value per line.
    Text,
    /// Comma-separated values with a header row or a column index.
    Csv,
    /// `0.0.0.0 name` hosts file.
    Hosts,
    /// STIX 2.0/2.1 bundle.
    Stix,
    /// MISP event JSON (or REST `response` wrapper).
    Misp,
    /// TAXII 2.1 collection (fetched by the app; objects parsed as STIX).
    Taxii,
    /// The Defender portal's CSV import/export columns.
    DefenderCsv,
}

/// A CSV column, by header name or 0-based index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Column {
    /// Header name (matched case-insensitively, after trimming and dropping a leading `#`).
    Name(String),
    /// 0-based index.
    Index(usize),
}

/// How to parse one feed.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Format to parse as; `Auto` sniffs.
    pub format: Format,
    /// CSV: the value column.
    pub column: Option<Column>,
    /// CSV: a column naming each row's type.
    pub type_column: Option<Column>,
    /// Forced type for every value (`--type`, or a certificate feed).
    pub type_hint: Option<TypeHint>,
    /// Undo defanging (on by default).
    pub refang: bool,
    /// "Now", for STIX `valid_until` in the past.
    pub now: DateTime<Utc>,
    /// Worker threads for a streamed text body larger than one 256 KiB chunk ([`parse_stream`]):
    /// `1` (the default) = none, parse on the calling thread; `0` = one per core; `n` = n.
    /// Results are the same; on the shared 2-core benchmark machine threads paid in some runs
    /// and lost in others (BENCHMARKS.md), hence the default.
    pub threads: usize,
}

impl ParseOptions {
    /// Defaults for `format`: no column, no forced type, refang on.
    pub fn new(format: Format, now: DateTime<Utc>) -> Self {
        ParseOptions {
            format,
            column: None,
            type_column: None,
            type_hint: None,
            refang: true,
            now,
            threads: 1,
        }
    }
}

/// The result of parsing one feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Lines (text-like formats) or objects (JSON formats) read.
    pub lines: u64,
    /// Accepted values in source order, first occurrence only.
    pub iocs: Vec<Ioc>,
    /// Rejected values in source order (duplicates are counted, not listed).
    pub rejections: Vec<Rejection>,
    /// Values that repeated an earlier accepted (type, value) in the same feed.
    pub duplicates: u64,
    /// Of `duplicates`: URLs that are duplicates only through the canonical URL form (their
    /// percent-encoding or default port differed from every earlier spelling of that URL, e.g.
    /// `http://x.com/a%5eb` after `http://x.com/a^b`). Reported by `parse`; not a JSON key.
    pub canonical_merges: u64,
}

/// The document is not of the requested format at all (not a per-value problem).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// JSON that does not parse, or is not a STIX bundle / MISP event.
    #[error("not a valid {format} document: {detail}")]
    Malformed {
        /// Format name.
        format: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A CSV column that is not in the header.
    #[error("column {0} is not in the CSV header (columns: {1})")]
    MissingColumn(String, String),
    /// The format needs IO the pure parser cannot do (MISP feed directory, TAXII).
    #[error("{0}")]
    NeedsFetch(String),
    /// A format name that is not one of the config names.
    #[error("unknown format `{0}`: expected auto, text, csv, hosts, stix, misp, taxii or defender-csv")]
    UnknownFormat(String),
}

impl Format {
    /// The config name, e.g. `"defender-csv"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Text => "text",
            Format::Csv => "csv",
            Format::Hosts => "hosts",
            Format::Stix => "stix",
            Format::Misp => "misp",
            Format::Taxii => "taxii",
            Format::DefenderCsv => "defender-csv",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Format {
    type Err = FormatError;
    /// Parses the config names (`auto`, `text`, `csv`, `hosts`, `stix`, `misp`, `taxii`, `defender-csv`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Format::Auto,
            "text" | "txt" => Format::Text,
            "csv" => Format::Csv,
            "hosts" => Format::Hosts,
            "stix" => Format::Stix,
            "misp" => Format::Misp,
            "taxii" => Format::Taxii,
            "defender-csv" | "defender_csv" => Format::DefenderCsv,
            other => return Err(FormatError::UnknownFormat(other.to_owned())),
        })
    }
}

/// Parse one feed document: bytes in, accepted values and rejections out.
///
/// `Format::Auto` sniffs the format first (see [`sniff`]). Never panics; a document that is not
/// of the format at all (bad JSON, missing CSV column) is a `FormatError`.
pub fn parse(input: &[u8], opts: &ParseOptions) -> Result<Parsed, FormatError> {
    let format = match opts.format {
        Format::Auto => sniff(input),
        f => f,
    };
    match format {
        Format::Auto | Format::Text => Ok(text::parse(input, opts)),
        Format::Csv => csv::parse(input, opts),
        Format::Hosts => Ok(hosts::parse(input, opts)),
        Format::Stix => stix::parse(input, opts),
        Format::Taxii => stix::parse_taxii(input, opts),
        Format::Misp => misp::parse(input, opts),
        Format::DefenderCsv => defender_csv::parse(input, opts),
    }
}

/// A streamed parse that failed: the document is not of its format, or reading it failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The document is not of the format (see [`FormatError`]).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Reading the document failed (the caller's reader error, e.g. a size cap).
    #[error("cannot read the feed: {0}")]
    Io(#[from] std::io::Error),
}

/// How many lines [`sniff`] looks at to tell a line format (hosts, CSV, text).
const SNIFF_LINES: usize = 200;

/// Parse a document read from `reader` into `sink`; returns the format used (after sniffing) and
/// the counts. Line formats (text, hosts) are parsed line by line as they are read, so memory
/// holds one line and the parser's duplicate set, never the document (`Auto` reads only the
/// first 200 lines ahead to sniff). The other formats need the whole document (CSV rows may
/// span lines; JSON) and read it into memory first: the caller caps the reader.
pub fn parse_stream<R: std::io::BufRead, S: Sink + ?Sized>(
    mut reader: R,
    opts: &ParseOptions,
    sink: &mut S,
) -> Result<(Format, Tally), StreamError> {
    let mut head = Vec::new();
    let format = match opts.format {
        Format::Auto => {
            read_head(&mut reader, &mut head)?;
            if matches!(strip_bom(&head).iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'[')) {
                reader.read_to_end(&mut head)?;
            }
            sniff(&head)
        }
        f => f,
    };
    sink.begin(format);
    let tally = match format {
        Format::Auto | Format::Text => text::parse_reader((&head[..]).chain(reader), opts, sink)?,
        Format::Hosts => hosts::parse_reader((&head[..]).chain(reader), opts, sink)?,
        _ => {
            reader.read_to_end(&mut head)?;
            let mut whole = opts.clone();
            whole.format = format;
            let parsed = parse(&head, &whole)?;
            drop(head);
            let tally = Tally {
                lines: parsed.lines,
                duplicates: parsed.duplicates,
                canonical_merges: parsed.canonical_merges,
            };
            parsed.iocs.into_iter().for_each(|i| sink.accept(i));
            parsed.rejections.into_iter().for_each(|r| sink.reject(r));
            tally
        }
    };
    Ok((format, tally))
}

/// `fill_buf`, retried when interrupted; an empty buffer is the end of the input.
pub(crate) fn fill<R: std::io::BufRead + ?Sized>(reader: &mut R) -> std::io::Result<&[u8]> {
    loop {
        match reader.fill_buf() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
            Ok(_) => break,
        }
    }
    // Borrowed again (returning the first borrow from the loop is refused): a buffered reader
    // hands back what it holds, or at the end asks its source once more, which answers 0 again.
    reader.fill_buf()
}

/// Reads into `head` until it holds more than [`SNIFF_LINES`] complete lines, or the end.
fn read_head<R: std::io::BufRead>(reader: &mut R, head: &mut Vec<u8>) -> std::io::Result<()> {
    let mut newlines = 0usize;
    loop {
        let buf = fill(reader)?;
        if buf.is_empty() {
            return Ok(());
        }
        newlines += memchr::memchr_iter(b'\n', buf).count();
        head.extend_from_slice(buf);
        let len = buf.len();
        reader.consume(len);
        if newlines > SNIFF_LINES {
            return Ok(());
        }
    }
}

/// Guess the format of a document: JSON (MISP event, STIX bundle or object, TAXII envelope),
/// hosts file (most data lines start with a sink-hole address), CSV with a header naming a known
/// column (or the Defender portal columns), else text.
pub fn sniff(input: &[u8]) -> Format {
    let body = strip_bom(input);
    let first = body.iter().position(|b| !b.is_ascii_whitespace()).map(|i| body[i]);
    if matches!(first, Some(b'{' | b'[')) {
        if let Some(f) = sniff_json(body) {
            return f;
        }
        if first == Some(b'{') {
            // Broken JSON: report it as a malformed STIX document rather than junk text values.
            return Format::Stix;
        }
    }
    sniff_lines(body)
}

fn sniff_json(body: &[u8]) -> Option<Format> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let probe = match &value {
        serde_json::Value::Array(items) => items.first()?,
        other => other,
    };
    let obj = probe.as_object()?;
    if obj.contains_key("Event") || obj.contains_key("response") || obj.contains_key("Attribute") {
        return Some(Format::Misp);
    }
    if obj.get("type").and_then(|t| t.as_str()).is_some() {
        return Some(Format::Stix);
    }
    if obj.contains_key("objects") || obj.contains_key("more") {
        return Some(Format::Taxii);
    }
    None
}

fn sniff_lines(body: &[u8]) -> Format {
    let mut data = 0usize;
    let mut hosts = 0usize;
    let mut last_comment: Option<&str> = None;
    let mut first_data: Option<&str> = None;
    for (_, line) in text::lines(body).take(SNIFF_LINES) {
        let Ok(line) = line else { continue };
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(c) = t.strip_prefix('#') {
            if first_data.is_none() {
                last_comment = Some(c);
            }
            continue;
        }
        if first_data.is_none() {
            first_data = Some(t);
        }
        data += 1;
        let mut fields = t.split_whitespace();
        let ip = fields.next().unwrap_or("");
        if matches!(ip, "0.0.0.0" | "127.0.0.1" | "::1" | "::" | "::0") && fields.next().is_some() {
            hosts += 1;
        }
    }
    if data > 0 && hosts * 2 > data {
        return Format::Hosts;
    }
    for candidate in [first_data, last_comment].into_iter().flatten() {
        let fields = csv::split_header_line(candidate);
        if fields.len() >= 2 {
            let lower: Vec<String> = fields.iter().map(|f| f.to_ascii_lowercase()).collect();
            if lower.iter().any(|f| f == "indicatorvalue") && lower.iter().any(|f| f == "indicatortype") {
                return Format::DefenderCsv;
            }
            if lower.iter().any(|f| csv::KNOWN_COLUMNS.contains(&f.as_str())) {
                return Format::Csv;
            }
        }
    }
    Format::Text
}

/// Drop a leading UTF-8 byte order mark.
pub(crate) fn strip_bom(input: &[u8]) -> &[u8] {
    input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input)
}

/// Where a parser puts what it finds, value by value: [`Parsed`] keeps everything; a streaming
/// consumer (`iocsync parse`) counts or prints each value and drops it, so its memory is bound by
/// the distinct accepted values (the parser's duplicate set), not by the document.
pub trait Sink {
    /// Called once before any value with the format the document is parsed as (after sniffing).
    fn begin(&mut self, _format: Format) {}
    /// One accepted value: the first occurrence of its (type, value) in this feed.
    fn accept(&mut self, ioc: Ioc);
    /// One rejected value.
    fn reject(&mut self, rejection: Rejection);
}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn begin(&mut self, format: Format) {
        (**self).begin(format);
    }
    fn accept(&mut self, ioc: Ioc) {
        (**self).accept(ioc);
    }
    fn reject(&mut self, rejection: Rejection) {
        (**self).reject(rejection);
    }
}

impl Sink for Parsed {
    fn accept(&mut self, ioc: Ioc) {
        self.iocs.push(ioc);
    }
    fn reject(&mut self, rejection: Rejection) {
        self.rejections.push(rejection);
    }
}

/// The counts of a parse besides its values (what [`Parsed`] holds besides its two lists).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Lines (text-like formats) or objects (JSON formats) read.
    pub lines: u64,
    /// Values that repeated an earlier accepted (type, value) in the same feed.
    pub duplicates: u64,
    /// Of `duplicates`: URLs merged only by the canonical URL form (see [`Parsed`]).
    pub canonical_merges: u64,
}

/// Rejection values are cut to this many bytes.
const MAX_REJECTED_VALUE: usize = 256;

/// Accumulates accepted values (first occurrence only) and rejections for one feed into a
/// [`Sink`]; the duplicate set is a compact [`Seen`](crate::seen::Seen).
#[derive(Debug)]
pub(crate) struct Collector<S: Sink = Parsed> {
    sink: S,
    seen: crate::seen::Seen,
    duplicates: u64,
    canonical_merges: u64,
    pub(crate) refang: bool,
    pub(crate) hint: Option<TypeHint>,
}

impl Collector<Parsed> {
    /// A collector into a [`Parsed`], using the options' refang flag and forced type.
    pub(crate) fn new(opts: &ParseOptions) -> Self {
        Collector::with_sink(opts, Parsed::default())
    }

    /// The result, with `lines` lines (or objects) read.
    pub(crate) fn finish(self, lines: u64) -> Parsed {
        let (mut parsed, tally) = self.finish_tally(lines);
        parsed.lines = tally.lines;
        parsed.duplicates = tally.duplicates;
        parsed.canonical_merges = tally.canonical_merges;
        parsed
    }
}

impl<S: Sink> Collector<S> {
    /// A collector into `sink`, using the options' refang flag and forced type.
    pub(crate) fn with_sink(opts: &ParseOptions, sink: S) -> Self {
        Collector {
            sink,
            seen: crate::seen::Seen::default(),
            duplicates: 0,
            canonical_merges: 0,
            refang: opts.refang,
            hint: opts.type_hint,
        }
    }

    /// Normalise `raw` with `hint` (or the forced type) and record it as accepted or rejected.
    pub(crate) fn value(&mut self, raw: &str, hint: Option<TypeHint>, line: u64) {
        self.value_with(raw, hint, line, None, None);
    }

    /// Like [`Collector::value`], carrying a validity limit and source attributes.
    pub(crate) fn value_with(
        &mut self,
        raw: &str,
        hint: Option<TypeHint>,
        line: u64,
        valid_until: Option<DateTime<Utc>>,
        attrs: Option<Box<crate::SourceAttrs>>,
    ) {
        match normalize_spelled(raw, hint.or(self.hint), self.refang) {
            Ok(n) => {
                let ioc = Ioc { kind: n.kind, value: n.value, line, valid_until, attrs };
                match n.v4 {
                    Some(ip) => self.accept_v4(ioc, ip),
                    None => self.accept_spelled(ioc, n.spelling),
                }
            }
            Err((reason, detail)) => self.reject(reason, raw, line, detail),
        }
    }

    /// Record an accepted value unless the same (type, value) was accepted before.
    pub(crate) fn accept(&mut self, ioc: Ioc) {
        self.accept_spelled(ioc, None);
    }

    /// [`Collector::accept`] for a URL the feed spelled as `spelling` (`None`: as its value): a
    /// duplicate with a spelling never seen before is a canonical merge.
    ///
    /// A URL spelled as its canonical form is remembered by a flag on its entry, not a second
    /// copy: a spelling equal to some canonical form `c` can only be a spelling of `c` itself
    /// (canonicalisation is idempotent), so "`c` was seen as a spelling" is that flag.
    fn accept_spelled(&mut self, ioc: Ioc, spelling: Option<String>) {
        let (entry, new) = self.seen.insert(crate::seen::kind_tag(ioc.kind), Some(ioc.kind), &ioc.value);
        let spelling_new = if ioc.kind != IndicatorType::Url {
            false
        } else {
            match spelling {
                None => self.seen.mark(entry),
                Some(s) => self.seen.insert(crate::seen::SPELLING, None, &s).1,
            }
        };
        self.accepted(ioc, new, spelling_new);
    }

    /// [`Collector::accept`] for an IPv4 address the fast path parsed (`ip` is `ioc.value`): its
    /// key, without parsing the value again.
    fn accept_v4(&mut self, ioc: Ioc, ip: std::net::Ipv4Addr) {
        if ioc.kind == IndicatorType::IpAddress {
            let new = self.seen.insert_v4(ip);
            self.accepted(ioc, new, false);
        } else {
            self.accept_spelled(ioc, None);
        }
    }

    /// Hands a `new` value to the sink, or counts a duplicate (and a canonical merge when its
    /// spelling was new).
    fn accepted(&mut self, ioc: Ioc, new: bool, spelling_new: bool) {
        if new {
            self.sink.accept(ioc);
        } else {
            self.duplicates += 1;
            if spelling_new {
                self.canonical_merges += 1;
            }
        }
    }

    /// Record a rejection (the raw value and the detail are truncated).
    pub(crate) fn reject(&mut self, reason: Reason, raw: &str, line: u64, detail: Option<String>) {
        self.sink.reject(rejection(reason, raw, line, detail));
    }

    /// Apply one step normalised elsewhere, exactly as if its line had been parsed here.
    pub(crate) fn apply(&mut self, step: Step) {
        match step {
            Step::Accept(ioc, spelling) => self.accept_spelled(ioc, spelling),
            Step::AcceptV4(ioc, ip) => self.accept_v4(ioc, ip),
            Step::Reject(r) => self.sink.reject(r),
        }
    }

    /// The sink and the counts, with `lines` lines (or objects) read.
    pub(crate) fn finish_tally(self, lines: u64) -> (S, Tally) {
        let tally = Tally { lines, duplicates: self.duplicates, canonical_merges: self.canonical_merges };
        (self.sink, tally)
    }
}

/// What the per-line rules of a line format call: the [`Collector`] itself, or, in a parallel
/// parse, a [`Steps`] buffer that the collector applies later, in document order.
pub(crate) trait LineOut {
    /// The forced type, if any.
    fn hint(&self) -> Option<TypeHint>;
    /// Whether refanging is on.
    fn refang(&self) -> bool;
    /// Normalise `raw` and record it as accepted or rejected.
    fn value(&mut self, raw: &str, hint: Option<TypeHint>, line: u64);
    /// Record an accepted value.
    fn accept(&mut self, ioc: Ioc);
    /// Record a rejection.
    fn reject(&mut self, reason: Reason, raw: &str, line: u64, detail: Option<String>);
}

impl<S: Sink> LineOut for Collector<S> {
    fn hint(&self) -> Option<TypeHint> {
        self.hint
    }
    fn refang(&self) -> bool {
        self.refang
    }
    fn value(&mut self, raw: &str, hint: Option<TypeHint>, line: u64) {
        Collector::value(self, raw, hint, line);
    }
    fn accept(&mut self, ioc: Ioc) {
        Collector::accept(self, ioc);
    }
    fn reject(&mut self, reason: Reason, raw: &str, line: u64, detail: Option<String>) {
        Collector::reject(self, reason, raw, line, detail);
    }
}

/// One outcome of a line, normalised but not yet checked for duplicates.
#[derive(Debug)]
pub(crate) enum Step {
    /// An accepted value and the feed's own spelling of a URL (see `Collector::accept_spelled`).
    Accept(Ioc, Option<String>),
    /// An accepted IPv4 address the fast path parsed, and the address (see `Collector::accept_v4`).
    AcceptV4(Ioc, std::net::Ipv4Addr),
    /// A rejection, already truncated.
    Reject(Rejection),
}

/// The outcomes of a run of lines, normalised on a worker thread.
#[derive(Debug)]
pub(crate) struct Steps {
    pub(crate) steps: Vec<Step>,
    refang: bool,
    hint: Option<TypeHint>,
}

impl Steps {
    /// An empty buffer using the options' refang flag and forced type.
    pub(crate) fn new(opts: &ParseOptions) -> Self {
        Steps { steps: Vec::new(), refang: opts.refang, hint: opts.type_hint }
    }
}

impl LineOut for Steps {
    fn hint(&self) -> Option<TypeHint> {
        self.hint
    }
    fn refang(&self) -> bool {
        self.refang
    }
    fn value(&mut self, raw: &str, hint: Option<TypeHint>, line: u64) {
        self.steps.push(match normalize_spelled(raw, hint.or(self.hint), self.refang) {
            Ok(n) => match n.v4 {
                Some(ip) => Step::AcceptV4(Ioc::new(n.kind, n.value, line), ip),
                None => Step::Accept(Ioc::new(n.kind, n.value, line), n.spelling),
            },
            Err((reason, detail)) => Step::Reject(rejection(reason, raw, line, detail)),
        });
    }
    fn accept(&mut self, ioc: Ioc) {
        self.steps.push(Step::Accept(ioc, None));
    }
    fn reject(&mut self, reason: Reason, raw: &str, line: u64, detail: Option<String>) {
        self.steps.push(Step::Reject(rejection(reason, raw, line, detail)));
    }
}

/// A rejection with the raw value and the detail truncated.
fn rejection(reason: Reason, raw: &str, line: u64, detail: Option<String>) -> Rejection {
    let value = truncate(raw.trim(), MAX_REJECTED_VALUE).to_owned();
    let detail = detail.map(|d| {
        if d.len() > 2 * MAX_REJECTED_VALUE { truncate(&d, 2 * MAX_REJECTED_VALUE).to_owned() } else { d }
    });
    Rejection { reason, value, line, detail }
}
