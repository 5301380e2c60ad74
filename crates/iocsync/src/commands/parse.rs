//! `iocsync parse`: parse one feed and show what would be accepted and rejected.

use crate::cli::ParseArgs;
use crate::fetch::{self, FetchOptions, NoProgress, Source};
use crate::output;
use anyhow::{Context, bail};
use iocsync_ioc::formats::Column;
use iocsync_ioc::{
    Format, IndicatorType, Ioc, ParseOptions, Reason, Rejection, Sink, StreamError, Tally, TypeHint,
};
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

/// The result of `iocsync parse`: the counts of DESIGN.md's JSON shape, and what the text output
/// lists. JSON output prints every indicator as it is parsed (see [`output::ParseJson`]) and its
/// counts from here at the end.
#[derive(Debug)]
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
    /// The first `show` accepted values (text output; JSON output streams all of them).
    pub indicators: Vec<ParsedIndicator>,
    /// Of `duplicates`: URLs merged only by the canonical URL form (percent-encoding, default
    /// port); text output only, not a JSON key.
    pub canonical_merges: u64,
    /// A few rejected values per reason, for the text output.
    pub examples: BTreeMap<Reason, Vec<Rejection>>,
    /// How many accepted values the text output lists.
    pub show: usize,
}

/// Counts what the parser hands over, keeps the few values the text output shows, and streams
/// every accepted value to the JSON output: memory is the parser's duplicate set, not the feed.
#[derive(Debug)]
struct ReportSink {
    source: String,
    format: Format,
    accepted: [u64; IndicatorType::ALL.len()],
    rejected: BTreeMap<Reason, u64>,
    examples: BTreeMap<Reason, Vec<Rejection>>,
    first: Vec<ParsedIndicator>,
    show: usize,
    json: Option<output::ParseJson>,
}

impl ReportSink {
    fn new(source: String, show: usize, json: bool) -> Self {
        ReportSink {
            source,
            format: Format::Auto,
            accepted: [0; IndicatorType::ALL.len()],
            rejected: BTreeMap::new(),
            examples: BTreeMap::new(),
            first: Vec::new(),
            show: if json { 0 } else { show },
            json: json.then(output::ParseJson::new),
        }
    }

    /// The report, with the parser's counts.
    fn report(&mut self, tally: Tally, show: usize) -> ParseReport {
        let accepted = IndicatorType::ALL
            .iter()
            .zip(self.accepted)
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| (t.as_str().to_owned(), n))
            .collect();
        let rejected = self.rejected.iter().map(|(r, n)| (r.code().to_owned(), *n)).collect();
        ParseReport {
            source: self.source.clone(),
            format: self.format,
            lines: tally.lines,
            accepted,
            rejected,
            duplicates: tally.duplicates,
            indicators: std::mem::take(&mut self.first),
            canonical_merges: tally.canonical_merges,
            examples: std::mem::take(&mut self.examples),
            show,
        }
    }
}

impl Sink for ReportSink {
    fn begin(&mut self, format: Format) {
        self.format = format;
        if let Some(json) = &mut self.json {
            json.begin(&self.source, format);
        }
    }

    fn accept(&mut self, ioc: Ioc) {
        if let Some(i) = IndicatorType::ALL.iter().position(|t| *t == ioc.kind) {
            self.accepted[i] += 1;
        }
        if let Some(json) = &mut self.json {
            json.indicator(ioc.kind, &ioc.value, ioc.line);
        } else if self.first.len() < self.show {
            self.first.push(ParsedIndicator {
                kind: ioc.kind.as_str().to_owned(),
                value: ioc.value,
                line: ioc.line,
            });
        }
    }

    fn reject(&mut self, r: Rejection) {
        *self.rejected.entry(r.reason).or_insert(0) += 1;
        let list = self.examples.entry(r.reason).or_default();
        if list.len() < 3 {
            list.push(r);
        }
    }
}

/// Parses the `--column` flag: an integer is an index, anything else a header name.
pub fn column_arg(s: &str) -> Column {
    s.parse::<usize>().map(Column::Index).unwrap_or_else(|_| Column::Name(s.to_owned()))
}

/// Runs `iocsync parse`. A local line-format file is read line by line; a URL is downloaded
/// (under the size cap) and then parsed the same way; a MISP feed event by event. With `json`,
/// the JSON document is printed as the parse goes, and a failure after it started closes it
/// with an `error` key (the error returned is then [`output::Reported`]).
pub async fn run(args: &ParseArgs, json: bool) -> anyhow::Result<ParseReport> {
    let format: Format = args.format.parse()?;
    let mut opts = ParseOptions::new(format, chrono::Utc::now());
    opts.column = args.column.as_deref().map(column_arg);
    opts.type_column = args.type_column.as_deref().map(column_arg);
    opts.type_hint = args.type_hint.as_deref().map(str::parse::<TypeHint>).transpose()?;
    opts.refang = !args.no_refang;
    // Worker threads for a large text body: none unless `IOCSYNC_PARSE_THREADS` asks (`0`: one
    // per core); the benchmark compares the two (BENCHMARKS.md).
    if let Some(n) = std::env::var("IOCSYNC_PARSE_THREADS").ok().and_then(|v| v.trim().parse().ok()) {
        opts.threads = n;
    }

    let source = Source::parse(&args.source, Path::new("."))?;
    let fetch_opts = FetchOptions::default();
    // A MISP feed: a directory, a `manifest.json` (file or URL), or a URL ending in `/` with
    // `--format misp`; its events are fetched and parsed one by one.
    let is_misp_feed = matches!(&source, Source::Path(p) if p.is_dir())
        || (matches!(format, Format::Misp | Format::Auto) && args.source.ends_with("manifest.json"))
        || (format == Format::Misp && args.source.ends_with('/'));
    // Printed and reported with secret-looking query values redacted.
    let shown = source.to_string();
    let mut sink = ReportSink::new(shown.clone(), args.show, json);
    let result = if is_misp_feed {
        misp_feed(&source, &shown, &opts, &fetch_opts, &mut sink).await
    } else if let Source::Path(path) = &source {
        // Blocking reads and parsing, off the async threads; the sink comes back either way.
        let path = path.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let r = stream_file(&path, &opts, &fetch_opts, &mut sink);
            (sink, r)
        })
        .await;
        match joined {
            Ok((s, r)) => {
                sink = s;
                r
            }
            Err(e) => bail!("the parser task failed: {e}"),
        }
    } else {
        let http = fetch::http_client(&fetch_opts)?;
        match fetch::fetch(&http, &source, None, &fetch_opts, &NoProgress).await {
            Ok(fetch::Fetched::Body { bytes, .. }) => {
                iocsync_ioc::parse_stream(bytes.as_slice(), &opts, &mut sink)
                    .map(|(_, tally)| tally)
                    .map_err(anyhow::Error::from)
            }
            Ok(fetch::Fetched::NotModified) => {
                Err(anyhow::anyhow!("the server answered 304 Not Modified to an unconditional request"))
            }
            Err(e) => Err(e.into()),
        }
    };
    match result {
        Ok(tally) => {
            let report = sink.report(tally, args.show);
            if let Some(json) = &mut sink.json {
                json.finish(&report);
            }
            Ok(report)
        }
        Err(e) => match &mut sink.json {
            Some(json) if json.started() => {
                json.fail(&e);
                Err(output::Reported.into())
            }
            _ => Err(e),
        },
    }
}

/// Streams one local file through the parser into `sink`.
fn stream_file(
    path: &Path,
    opts: &ParseOptions,
    fetch_opts: &FetchOptions,
    sink: &mut ReportSink,
) -> anyhow::Result<Tally> {
    let reader = fetch::open_stream(path, fetch_opts)?;
    match iocsync_ioc::parse_stream(reader, opts, sink) {
        Ok((_, tally)) => Ok(tally),
        Err(StreamError::Io(e)) => {
            // The cap and gzip errors travel inside the `io::Error`: give them back as they are.
            match e.into_inner().map(|inner| inner.downcast::<fetch::FetchError>()) {
                Some(Ok(fetch_error)) => Err((*fetch_error).into()),
                Some(Err(other)) => Err(anyhow::anyhow!("cannot read {}: {other}", path.display())),
                None => Err(anyhow::anyhow!("cannot read {}", path.display())),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Fetches a MISP feed's events and parses them one by one into `sink` (values repeated across
/// events are duplicates).
async fn misp_feed(
    source: &Source,
    shown: &str,
    opts: &ParseOptions,
    fetch_opts: &FetchOptions,
    sink: &mut ReportSink,
) -> anyhow::Result<Tally> {
    let http = fetch::http_client(fetch_opts)?;
    let feed = fetch::fetch_misp_feed(&http, source, &BTreeMap::new(), fetch_opts, &NoProgress)
        .await
        .with_context(|| format!("reading MISP feed {shown}"))?;
    let mut opts = opts.clone();
    opts.format = Format::Misp;
    let mut tally = Tally::default();
    let mut seen = std::collections::HashSet::new();
    sink.begin(Format::Misp);
    for (_, body) in feed.events {
        let p = iocsync_ioc::parse(&body.1, &opts)?;
        tally.lines += p.lines;
        tally.duplicates += p.duplicates;
        tally.canonical_merges += p.canonical_merges;
        for r in p.rejections {
            sink.reject(r);
        }
        for ioc in p.iocs {
            if seen.insert((ioc.kind, ioc.value.clone())) {
                sink.accept(ioc);
            } else {
                tally.duplicates += 1;
            }
        }
    }
    Ok(tally)
}
