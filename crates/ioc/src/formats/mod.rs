//! Feed formats: bytes in, accepted `Ioc`s and `Rejection`s out.
//!
//! Every parser is total: any input yields a `Parsed` (possibly all rejections) or a
//! `FormatError` for a document that is not of the format at all; none panics.

use crate::{Ioc, Rejection, TypeHint};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
}

impl ParseOptions {
    /// Defaults for `format`: no column, no forced type, refang on.
    pub fn new(format: Format, now: DateTime<Utc>) -> Self {
        ParseOptions { format, column: None, type_column: None, type_hint: None, refang: true, now }
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
}
