//! `iocsync parse`: parse one feed and show what would be accepted and rejected.

use crate::cli::ParseArgs;
use crate::fetch::{self, FetchOptions, NoProgress, Source};
use anyhow::{Context, bail};
use iocsync_ioc::formats::Column;
use iocsync_ioc::{Format, Ioc, ParseOptions, Parsed, Reason, Rejection, TypeHint};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One accepted value as listed by `parse --output json`.
#[derive(Debug, Serialize)]
pub struct ParsedIndicator {
    /// Defender `indicatorType`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Normalised value.
    pub value: String,
    /// Line (or row, or object ordinal) in the source.
    pub line: u64,
}

/// The result of `iocsync parse`, in the JSON shape of DESIGN.md.
#[derive(Debug, Serialize)]
pub struct ParseReport {
    /// The file or URL as given.
    pub source: String,
    /// The format used (after sniffing).
    pub format: Format,
    /// Lines or objects read.
    pub lines: u64,
    /// Accepted values per `indicatorType`.
    pub accepted: BTreeMap<String, u64>,
    /// Rejected values per reason code.
    pub rejected: BTreeMap<String, u64>,
    /// Repeats of an earlier value in the same feed.
    pub duplicates: u64,
    /// Every accepted value.
    pub indicators: Vec<ParsedIndicator>,
    /// Of `duplicates`: URLs merged only by the canonical URL form (percent-encoding, default
    /// port); text output only, not a JSON key.
    #[serde(skip)]
    pub canonical_merges: u64,
    /// A few rejected values per reason, for the text output.
    #[serde(skip)]
    pub examples: BTreeMap<Reason, Vec<Rejection>>,
    /// How many accepted values the text output lists.
    #[serde(skip)]
    pub show: usize,
}

impl ParseReport {
    /// Builds the report from parser output.
    pub fn new(source: String, format: Format, parsed: Parsed, show: usize) -> ParseReport {
        let mut accepted = BTreeMap::new();
        for ioc in &parsed.iocs {
            *accepted.entry(ioc.kind.as_str().to_owned()).or_insert(0) += 1;
        }
        let mut rejected = BTreeMap::new();
        let mut examples: BTreeMap<Reason, Vec<Rejection>> = BTreeMap::new();
        for r in parsed.rejections {
            *rejected.entry(r.reason.code().to_owned()).or_insert(0) += 1;
            let list = examples.entry(r.reason).or_default();
            if list.len() < 3 {
                list.push(r);
            }
        }
        let indicators = parsed
            .iocs
            .into_iter()
            .map(|Ioc { kind, value, line, .. }| ParsedIndicator {
                kind: kind.as_str().to_owned(),
                value,
                line,
            })
            .collect();
        ParseReport {
            source,
            format,
            lines: parsed.lines,
            accepted,
            rejected,
            duplicates: parsed.duplicates,
            canonical_merges: parsed.canonical_merges,
            indicators,
            examples,
            show,
        }
    }
}

/// Parses the `--column` flag: an integer is an index, anything else a header name.
pub fn column_arg(s: &str) -> Column {
    s.parse::<usize>().map(Column::Index).unwrap_or_else(|_| Column::Name(s.to_owned()))
}

/// Runs `iocsync parse`.
pub async fn run(args: &ParseArgs) -> anyhow::Result<ParseReport> {
    let format: Format = args.format.parse()?;
    let mut opts = ParseOptions::new(format, chrono::Utc::now());
    opts.column = args.column.as_deref().map(column_arg);
    opts.type_column = args.type_column.as_deref().map(column_arg);
    opts.type_hint = args.type_hint.as_deref().map(str::parse::<TypeHint>).transpose()?;
    opts.refang = !args.no_refang;

    let source = Source::parse(&args.source, Path::new("."))?;
    let fetch_opts = FetchOptions::default();
    let http = fetch::http_client(&fetch_opts)?;
    // A MISP feed: a directory, a `manifest.json` (file or URL), or a URL ending in `/` with
    // `--format misp`; its events are fetched and parsed one by one.
    let is_misp_feed = matches!(&source, Source::Path(p) if p.is_dir())
        || (matches!(format, Format::Misp | Format::Auto) && args.source.ends_with("manifest.json"))
        || (format == Format::Misp && args.source.ends_with('/'));
    let (parsed, used_format) = if is_misp_feed {
        let feed = fetch::fetch_misp_feed(&http, &source, &BTreeMap::new(), &fetch_opts, &NoProgress)
            .await
            .with_context(|| format!("reading MISP feed {source}"))?;
        let mut all = Parsed::default();
        let mut opts = opts.clone();
        opts.format = Format::Misp;
        let mut seen = std::collections::HashSet::new();
        for (_, body) in feed.events {
            let p = iocsync_ioc::parse(&body.1, &opts)?;
            all.lines += p.lines;
            all.duplicates += p.duplicates;
            all.canonical_merges += p.canonical_merges;
            all.rejections.extend(p.rejections);
            for ioc in p.iocs {
                if seen.insert((ioc.kind, ioc.value.clone())) {
                    all.iocs.push(ioc);
                } else {
                    all.duplicates += 1;
                }
            }
        }
        (all, Format::Misp)
    } else {
        let body = match fetch::fetch(&http, &source, None, &fetch_opts, &NoProgress).await? {
            fetch::Fetched::Body { bytes, .. } => bytes,
            fetch::Fetched::NotModified => {
                bail!("the server answered 304 Not Modified to an unconditional request")
            }
        };
        let used = if format == Format::Auto { iocsync_ioc::formats::sniff(&body) } else { format };
        opts.format = used;
        (iocsync_ioc::parse(&body, &opts)?, used)
    };
    Ok(ParseReport::new(source.to_string(), used_format, parsed, args.show))
}
