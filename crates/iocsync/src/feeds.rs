//! Loading every configured feed with the last-good fallback of DESIGN principle 2: a feed that
//! fails to download, returns an error page, shrinks suddenly or parses to mostly rejects keeps
//! its last good content (up to `max_age`), and the run says so.
//!
//! [`load_feed`] never fails: every outcome is a [`FeedStatus`]. Feeds that end [`FeedStatus::Stale`]
//! or [`FeedStatus::Failed`] contribute no values, and the app protects their indicators from
//! deletion.

use crate::fetch::{self, Download, FetchError, FetchObserver, FetchOptions, FetchedFile, Source};
use crate::state::{CachedFeed, StateError, StateStore};
use chrono::{DateTime, Utc};
use iocsync_core::feed_health::{self, AcceptShrink, Baseline, FeedStats, Health};
use iocsync_ioc::formats::Column;
use iocsync_ioc::{Format, FormatError, IndicatorType, ParseOptions, Parsed, StreamError, TypeHint};
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

/// Re-exported: the thresholds a [`FeedSpec`] is judged by.
pub use iocsync_core::feed_health::HealthRules;

/// One configured feed: where it comes from, how to parse it and how to judge it.
#[derive(Debug, Clone)]
pub struct FeedSpec {
    /// Feed name (unique in the config; the cache key).
    pub name: String,
    /// Where it comes from.
    pub source: Source,
    /// Format (`Auto` sniffs). `Misp` over a directory or a URL ending in `/` or
    /// `manifest.json` is a MISP feed (manifest + events).
    pub format: Format,
    /// CSV value column.
    pub column: Option<Column>,
    /// CSV type column.
    pub type_column: Option<Column>,
    /// Forced type for every value.
    pub type_hint: Option<TypeHint>,
    /// Undo defanging.
    pub refang: bool,
    /// How long the last good copy may stand in for a broken feed.
    pub max_age: chrono::Duration,
    /// When a fresh copy is suspect (shrink, rejects).
    pub health: HealthRules,
    /// When a lasting shrink becomes the feed's new baseline.
    pub accept_shrink: AcceptShrink,
}

impl FeedSpec {
    /// The parser options for this feed at `now`.
    pub fn parse_options(&self, now: DateTime<Utc>) -> ParseOptions {
        let mut o = ParseOptions::new(self.format, now);
        o.column = self.column.clone();
        o.type_column = self.type_column.clone();
        o.type_hint = self.type_hint;
        o.refang = self.refang;
        o
    }

    /// Whether this is a TAXII 2.1 collection read incrementally (`format = "taxii"` over a URL).
    pub fn is_taxii_feed(&self) -> bool {
        self.format == Format::Taxii && matches!(self.source, Source::Url(_))
    }

    /// Whether this is a MISP feed (a `manifest.json` plus one file per event) rather than one document.
    pub fn is_misp_feed(&self) -> bool {
        if self.format != Format::Misp {
            return false;
        }
        match &self.source {
            Source::Path(p) => p.is_dir() || p.file_name().is_some_and(|n| n == "manifest.json"),
            Source::Url(u) => u.path().ends_with('/') || u.path().ends_with("/manifest.json"),
        }
    }
}

/// How a feed's content for this run was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedStatus {
    /// Downloaded, parsed and judged good; saved as the new last good copy.
    Fresh,
    /// The source said nothing changed (304, or no MISP event changed); the cached copy is used.
    NotModified,
    /// The fresh copy was unusable; the last good copy (younger than `max_age`) is used.
    Fallback {
        /// Why the fresh copy was not used.
        why: String,
    },
    /// Unusable, and the last good copy is older than `max_age`: contributes nothing.
    Stale {
        /// Why.
        why: String,
    },
    /// Unusable and no usable last good copy: contributes nothing.
    Failed {
        /// Why.
        why: String,
    },
}

impl FeedStatus {
    /// The JSON/report name: `fresh`, `not-modified`, `fallback`, `stale`, `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            FeedStatus::Fresh => "fresh",
            FeedStatus::NotModified => "not-modified",
            FeedStatus::Fallback { .. } => "fallback",
            FeedStatus::Stale { .. } => "stale",
            FeedStatus::Failed { .. } => "failed",
        }
    }

    /// The explanation, for the degraded statuses.
    pub fn why(&self) -> Option<&str> {
        match self {
            FeedStatus::Fresh | FeedStatus::NotModified => None,
            FeedStatus::Fallback { why } | FeedStatus::Stale { why } | FeedStatus::Failed { why } => {
                Some(why)
            }
        }
    }

    /// Whether the run used something other than the feed's current content (exit code 3).
    pub fn is_degraded(&self) -> bool {
        self.why().is_some()
    }

    /// The matching status of the run report (`iocsync_core::FeedStatus`).
    pub fn report_status(&self) -> iocsync_core::FeedStatus {
        match self {
            FeedStatus::Fresh => iocsync_core::FeedStatus::Ok,
            FeedStatus::NotModified => iocsync_core::FeedStatus::NotModified,
            FeedStatus::Fallback { .. } => iocsync_core::FeedStatus::LastGood,
            FeedStatus::Stale { .. } => iocsync_core::FeedStatus::Stale,
            FeedStatus::Failed { .. } => iocsync_core::FeedStatus::Failed,
        }
    }

    /// Whether this run read the feed's current content (fresh, or confirmed unchanged).
    pub fn is_fresh(&self) -> bool {
        matches!(self, FeedStatus::Fresh | FeedStatus::NotModified)
    }

    /// Whether the feed contributes values to this run (false for stale and failed: their
    /// indicators must be protected from deletion instead).
    pub fn contributes(&self) -> bool {
        !matches!(self, FeedStatus::Stale { .. } | FeedStatus::Failed { .. })
    }
}

impl std::fmt::Display for FeedStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.why() {
            Some(why) => write!(f, "{} ({why})", self.as_str()),
            None => f.write_str(self.as_str()),
        }
    }
}

/// One feed after loading.
#[derive(Debug, Clone)]
pub struct LoadedFeed {
    /// Feed name.
    pub name: String,
    /// How its content was obtained.
    pub status: FeedStatus,
    /// Parsed values; `None` when the status is stale or failed.
    pub parsed: Option<Parsed>,
    /// Size of the content used (0 when none).
    pub bytes: u64,
    /// When the content used was fetched (or last confirmed unchanged).
    pub fetched_at: Option<DateTime<Utc>>,
    /// For a feed that is not fresh: every (type, value) of its last good copy (also one that is
    /// too old, or from the source the config named before). None of them may be deleted.
    pub protects: Vec<(IndicatorType, String)>,
    /// A line for the report, e.g. that a lasting shrink became the new baseline.
    pub note: Option<String>,
}

impl LoadedFeed {
    fn new(
        spec: &FeedSpec,
        status: FeedStatus,
        parsed: Option<Parsed>,
        bytes: u64,
        at: Option<DateTime<Utc>>,
    ) -> Self {
        LoadedFeed {
            name: spec.name.clone(),
            status,
            parsed,
            bytes,
            fetched_at: at,
            protects: Vec::new(),
            note: None,
        }
    }
}

/// The values of a parsed copy, as the plan's protection wants them.
fn values_of(p: &Parsed) -> Vec<(IndicatorType, String)> {
    p.iocs.iter().map(|i| (i.kind, i.value.clone())).collect()
}

/// Splits a cached copy into the last good copy of this source, and a copy the config's
/// previous source left (which must neither answer a conditional GET nor stand in for the new
/// source, but still protects its values until the new source is good).
fn split_by_source(spec: &FeedSpec, cached: Option<CachedFeed>) -> (Option<CachedFeed>, Option<CachedFeed>) {
    match cached {
        Some(c) if c.source != spec.source.to_string() => {
            tracing::info!(feed = %spec.name, old = %c.source, new = %spec.source, "the feed's source changed: starting clean");
            (None, Some(c))
        }
        other => (other, None),
    }
}

/// Loads one feed: fetch (conditional), parse, judge, save or fall back. Never fails; problems
/// become the status. `store` is only locked for short synchronous calls, never across awaits.
pub async fn load_feed(
    http: &reqwest::Client,
    store: &Mutex<StateStore>,
    spec: &FeedSpec,
    opts: &FetchOptions,
    now: DateTime<Utc>,
    observer: &dyn FetchObserver,
) -> LoadedFeed {
    let loaded = if spec.is_misp_feed() {
        load_misp_feed(http, store, spec, opts, now, observer).await
    } else if spec.is_taxii_feed() {
        load_taxii(http, store, spec, opts, now, observer).await
    } else {
        load_document(http, store, spec, opts, now, observer).await
    };
    match &loaded.status {
        FeedStatus::Fresh | FeedStatus::NotModified => {
            tracing::info!(feed = %spec.name, status = loaded.status.as_str(), bytes = loaded.bytes, "feed loaded");
        }
        FeedStatus::Fallback { why } => {
            tracing::warn!(feed = %spec.name, %why, "feed unusable; using its last good copy");
        }
        FeedStatus::Stale { why } => {
            tracing::warn!(feed = %spec.name, %why, "feed unusable and its last good copy is too old; it contributes nothing");
        }
        FeedStatus::Failed { why } => {
            tracing::warn!(feed = %spec.name, %why, "feed unusable and no last good copy; it contributes nothing");
        }
    }
    loaded
}

/// A feed that could not even be asked (e.g. its credential is missing): failed, with the values
/// of its last good copy protected.
pub async fn unreachable(
    store: &Mutex<StateStore>,
    spec: &FeedSpec,
    why: String,
    now: DateTime<Utc>,
) -> LoadedFeed {
    let cached = with_store(store, |s| Ok((s.feed_cache_head(&spec.name)?, s.misp_events(&spec.name)?)));
    let last = match cached {
        Ok((Some(c), events)) if !events.is_empty() => Some(LastGood::Misp(c, events)),
        Ok((Some(c), _)) if c.body_len > 0 => Some(LastGood::Document(c)),
        _ => None,
    };
    let mut out = failed(spec, why);
    if let Some(last) = last {
        match last.parse(store, spec, now).await {
            Ok((parsed, _)) => out.protects = values_of(&parsed),
            Err(e) => tracing::warn!(feed = %spec.name, error = %e, "the last good copy no longer parses"),
        }
    }
    out
}

/// The feed as its last good copy stands, without a download (`explain` answers from it): that
/// copy parsed again, `fallback` when young enough, `stale` past `max_age`, `failed` without one.
pub async fn from_last_copy(store: &Mutex<StateStore>, spec: &FeedSpec, now: DateTime<Utc>) -> LoadedFeed {
    let cached = with_store(store, |s| Ok((s.feed_cache_head(&spec.name)?, s.misp_events(&spec.name)?)));
    let last = match cached {
        Ok((Some(c), events)) if !events.is_empty() => Some(LastGood::Misp(c, events)),
        Ok((Some(c), _)) if c.body_len > 0 => Some(LastGood::Document(c)),
        _ => None,
    };
    fall_back(store, spec, last, None, "read from the last good copy (no download)".to_owned(), now).await
}

/// Runs `f` on the locked store; a database error becomes a message. A poisoned lock still
/// yields the store: SQLite rolled back whatever the panicking holder left unfinished.
fn with_store<T>(
    store: &Mutex<StateStore>,
    f: impl FnOnce(&StateStore) -> Result<T, StateError>,
) -> Result<T, String> {
    let guard = store.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    f(&guard).map_err(|e| e.to_string())
}

/// Parses off the async threads (large feeds take a noticeable time); gives the body back.
async fn parse_blocking(body: Vec<u8>, opts: ParseOptions) -> (Vec<u8>, Result<Parsed, FormatError>) {
    let joined = tokio::task::spawn_blocking(move || {
        let r = iocsync_ioc::parse(&body, &opts);
        (body, r)
    })
    .await;
    match joined {
        Ok(x) => x,
        Err(e) => (
            Vec::new(),
            Err(FormatError::Malformed { format: "feed", detail: format!("parser task failed: {e}") }),
        ),
    }
}

/// Parses a body kept in a file, streaming (line formats are read line by line; the others are
/// read whole by the parser): the same [`Parsed`] as [`parse_blocking`] of its bytes. Off the
/// async threads; gives the file back.
async fn parse_file(
    mut file: std::fs::File,
    opts: ParseOptions,
) -> (Option<std::fs::File>, Result<Parsed, FormatError>) {
    let joined = tokio::task::spawn_blocking(move || {
        use std::io::Seek as _;
        let read_error = |e: std::io::Error| FormatError::Malformed {
            format: "feed",
            detail: format!("cannot read the feed: {e}"),
        };
        let r = file.rewind().map_err(read_error).and_then(|()| {
            let mut parsed = Parsed::default();
            let reader = std::io::BufReader::with_capacity(256 * 1024, &file);
            match iocsync_ioc::parse_stream(reader, &opts, &mut parsed) {
                Ok((_, tally)) => {
                    parsed.lines = tally.lines;
                    parsed.duplicates = tally.duplicates;
                    parsed.canonical_merges = tally.canonical_merges;
                    Ok(parsed)
                }
                Err(StreamError::Format(e)) => Err(e),
                Err(StreamError::Io(e)) => Err(read_error(e)),
            }
        });
        (file, r)
    })
    .await;
    match joined {
        Ok((file, r)) => (Some(file), r),
        Err(e) => {
            (None, Err(FormatError::Malformed { format: "feed", detail: format!("parser task failed: {e}") }))
        }
    }
}

/// Where a feed's temporary files go: next to the state database (the system temp dir for an
/// in-memory one).
fn temp_dir(store: &Mutex<StateStore>) -> std::path::PathBuf {
    store.lock().unwrap_or_else(std::sync::PoisonError::into_inner).temp_dir()
}

fn stats(body: &[u8], parsed: &Parsed) -> FeedStats {
    FeedStats {
        bytes: body.len() as u64,
        accepted: parsed.iocs.len() as u64,
        rejected: parsed.rejections.len() as u64,
        looks_like_html: feed_health::looks_like_html(body),
        empty: body.iter().all(u8::is_ascii_whitespace),
    }
}

async fn load_document(
    http: &reqwest::Client,
    store: &Mutex<StateStore>,
    spec: &FeedSpec,
    opts: &FetchOptions,
    now: DateTime<Utc>,
    observer: &dyn FetchObserver,
) -> LoadedFeed {
    // The row without its body: a download is compared with the body's SHA-256, and the body
    // is read (streaming) only when it must be parsed again.
    let cached = match with_store(store, |s| s.feed_cache_head(&spec.name)) {
        // A good document is never empty: an empty body is a MISP feed's row (the feed's
        // format changed in the config) and is no last good copy of this document.
        Ok(c) => c.filter(|c| c.body_len > 0),
        Err(e) => {
            tracing::warn!(feed = %spec.name, error = %e, "cannot read the feed cache; fetching without it");
            None
        }
    };
    let (cached, previous) = split_by_source(spec, cached);
    let validators = cached.as_ref().map(|c| &c.validators).filter(|v| !v.is_empty());
    let named = Named { name: &spec.name, inner: observer };
    let dir = temp_dir(store);
    let fetched = fetch::fetch_to_file(http, &spec.source, validators, opts, &named, &dir).await;

    let why = match fetched {
        Ok(FetchedFile::NotModified) => {
            let Some(c) = cached else {
                return failed(
                    spec,
                    "the server answered 304 Not Modified but there is no cached copy".into(),
                );
            };
            return match LastGood::Document(c).parse(store, spec, now).await {
                Ok((parsed, bytes)) => {
                    if let Err(e) = with_store(store, |s| s.touch_feed(&spec.name, now)) {
                        tracing::warn!(feed = %spec.name, error = %e, "cannot record the 304 in the state database");
                    }
                    LoadedFeed::new(spec, FeedStatus::NotModified, Some(parsed), bytes, Some(now))
                }
                Err(e) => failed(spec, format!("the cached copy no longer parses: {e}")),
            };
        }
        Ok(FetchedFile::Body { download, validators }) => {
            let Download { file, len, sha256, looks_like_html, blank } = download;
            let (file, parsed) = parse_file(file, spec.parse_options(now)).await;
            match (file, parsed) {
                (_, Err(e)) => format!("cannot parse the download: {e}"),
                (None, Ok(_)) => "the parser task lost the download".to_owned(),
                (Some(mut file), Ok(parsed)) => {
                    let current = FeedStats {
                        bytes: len,
                        accepted: parsed.iocs.len() as u64,
                        rejected: parsed.rejections.len() as u64,
                        looks_like_html,
                        empty: blank,
                    };
                    let body = (&mut file, len, sha256.as_str());
                    let accepted =
                        accept_if_healthy(store, spec, cached.as_ref(), false, parsed, current, now, |s| {
                            save_download(s, spec, cached.as_ref(), body, validators, &current, now)
                        });
                    match accepted {
                        Ok(loaded) => return loaded,
                        Err(why) => why,
                    }
                }
            }
        }
        Err(e) => fetch_reason(&e),
    };
    fall_back(store, spec, cached.map(LastGood::Document), previous.map(LastGood::Document), why, now).await
}

/// Saves a good download with its HTTP validators, copying the body from its file into the
/// database (or only refreshes the timestamps and validators when its SHA-256 is that of the
/// cached copy).
#[allow(clippy::too_many_arguments)]
fn save_download(
    s: &StateStore,
    spec: &FeedSpec,
    cached: Option<&CachedFeed>,
    (file, len, sha256): (&mut std::fs::File, u64, &str),
    validators: fetch::Validators,
    current: &FeedStats,
    now: DateTime<Utc>,
) -> Result<(), StateError> {
    use std::io::Seek as _;
    if cached.is_some_and(|c| c.body_len == len && c.body_sha256.as_deref() == Some(sha256)) {
        s.touch_feed(&spec.name, now)?;
        s.set_feed_validators(&spec.name, &validators)
    } else {
        file.rewind().map_err(|e| StateError::Corrupt {
            what: "feed_cache.body",
            detail: format!("cannot read the download back: {e}"),
        })?;
        let row = CachedFeed { validators, ..good_copy(spec, Vec::new(), current, now) };
        s.save_good_feed_from(&row, file, len, sha256)
    }
}

fn fetch_reason(e: &FetchError) -> String {
    if e.is_transient() { format!("{e} (transient)") } else { e.to_string() }
}

fn failed(spec: &FeedSpec, why: String) -> LoadedFeed {
    LoadedFeed::new(spec, FeedStatus::Failed { why }, None, 0, None)
}

/// The last good copy of a feed: one document, or a MISP feed's events.
enum LastGood {
    /// A document feed's cached body.
    Document(CachedFeed),
    /// A MISP feed's cache row and its events.
    Misp(CachedFeed, BTreeMap<String, (i64, Vec<u8>)>),
}

impl LastGood {
    fn row(&self) -> &CachedFeed {
        let (LastGood::Document(c) | LastGood::Misp(c, _)) = self;
        c
    }

    /// Parses the copy again (with today's parser) and gives its size. A row read without its
    /// body is streamed from the database through a temporary file, never read whole (the
    /// parser still reads a JSON or CSV document whole).
    async fn parse(
        self,
        store: &Mutex<StateStore>,
        spec: &FeedSpec,
        now: DateTime<Utc>,
    ) -> Result<(Parsed, u64), FormatError> {
        match self {
            LastGood::Document(c) if c.body.is_empty() && c.body_len > 0 => {
                let bytes = c.bytes;
                let file = spool_cached_body(store, &c.feed)
                    .map_err(|detail| FormatError::Malformed { format: "feed", detail })?;
                parse_file(file, spec.parse_options(now)).await.1.map(|p| (p, bytes))
            }
            LastGood::Document(c) => {
                let bytes = c.bytes;
                parse_blocking(c.body, spec.parse_options(now)).await.1.map(|p| (p, bytes))
            }
            LastGood::Misp(_, events) => {
                parse_events(events, spec.parse_options(now)).await.1.map(|(p, st)| (p, st.bytes))
            }
        }
    }
}

/// Copies the cached body of `feed` from the database into a private temporary file (the
/// store is locked for the copy only).
fn spool_cached_body(store: &Mutex<StateStore>, feed: &str) -> Result<std::fs::File, String> {
    let mut file = fetch::temp_file(&temp_dir(store)).map_err(|e| e.to_string())?;
    match with_store(store, |s| s.copy_feed_body(feed, &mut file))? {
        Some(_) => Ok(file),
        None => Err("the last good copy is no longer in the state database".to_owned()),
    }
}

/// The fresh copy is unusable: use the last good one if it is young enough. Whatever the
/// outcome, the values of the last good copy (or of the previous source's copy, when the source
/// changed and the new one was never good) are protected from deletion.
async fn fall_back(
    store: &Mutex<StateStore>,
    spec: &FeedSpec,
    last: Option<LastGood>,
    previous: Option<LastGood>,
    why: String,
    now: DateTime<Utc>,
) -> LoadedFeed {
    let Some(last) = last else {
        let Some(prev) = previous else {
            return failed(spec, format!("{why}; no last good copy"));
        };
        let old = prev.row().source.clone();
        let why =
            format!("{why}; no good copy from the new source yet (the copy from {old} protects its values)");
        let mut out = failed(spec, why);
        match prev.parse(store, spec, now).await {
            Ok((parsed, _)) => out.protects = values_of(&parsed),
            Err(e) => {
                tracing::warn!(feed = %spec.name, error = %e, "the previous source's copy no longer parses");
            }
        }
        return out;
    };
    let good_at = last.row().good_at;
    let age = now.signed_duration_since(good_at);
    let too_old = age > spec.max_age;
    match last.parse(store, spec, now).await {
        Ok((parsed, _)) if too_old => {
            let status = FeedStatus::Stale {
                why: format!(
                    "{why}; the last good copy is {} old, older than max_age {}: its values are kept, not renewed",
                    human(age),
                    human(spec.max_age)
                ),
            };
            let mut out = LoadedFeed::new(spec, status, None, 0, Some(good_at));
            out.protects = values_of(&parsed);
            out
        }
        Ok((parsed, bytes)) => {
            let status = FeedStatus::Fallback {
                why: format!("{why}; using the last good copy from {} ago", human(age)),
            };
            let protects = values_of(&parsed);
            let mut out = LoadedFeed::new(spec, status, Some(parsed), bytes, Some(good_at));
            out.protects = protects;
            out
        }
        Err(e) => failed(spec, format!("{why}; the last good copy no longer parses: {e}")),
    }
}

async fn load_misp_feed(
    http: &reqwest::Client,
    store: &Mutex<StateStore>,
    spec: &FeedSpec,
    opts: &FetchOptions,
    now: DateTime<Utc>,
    observer: &dyn FetchObserver,
) -> LoadedFeed {
    let read = with_store(store, |s| Ok((s.feed_cache_head(&spec.name)?, s.misp_events(&spec.name)?)));
    let (cached, cached_events) = match read {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(feed = %spec.name, error = %e, "cannot read the feed cache; fetching without it");
            (None, BTreeMap::new())
        }
    };
    // The cached events are the last good copy only together with their feed_cache row, and a
    // good MISP feed has at least one event (an eventless row is from a document feed).
    let (cached, cached_events) = if cached.is_some() && !cached_events.is_empty() {
        (cached, cached_events)
    } else {
        (None, BTreeMap::new())
    };
    let (cached, previous) = split_by_source(spec, cached);
    let (cached_events, previous) = match previous {
        Some(p) => (BTreeMap::new(), Some(LastGood::Misp(p, cached_events))),
        None => (cached_events, None),
    };
    let named = Named { name: &spec.name, inner: observer };
    let why = match fetch::fetch_misp_feed(http, &spec.source, &cached_events, opts, &named).await {
        Err(e) => fetch_reason(&e),
        Ok(got) => {
            let unchanged = cached.is_some() && got.fetched == 0 && got.events.len() == cached_events.len();
            let event_count = got.events.len();
            let (events, parsed) = parse_events(got.events, spec.parse_options(now)).await;
            match parsed {
                Err(e) => format!("cannot parse the download: {e}"),
                Ok((parsed, current)) => {
                    let accepted = accept_if_healthy(
                        store,
                        spec,
                        cached.as_ref(),
                        unchanged,
                        parsed,
                        current,
                        now,
                        |s| {
                            s.replace_misp_events(&spec.name, &events)?;
                            s.save_good_feed(&good_copy(spec, Vec::new(), &current, now))
                        },
                    );
                    match accepted {
                        Ok(loaded) => {
                            tracing::debug!(feed = %spec.name, events = event_count, downloaded = got.fetched, "MISP feed fetched");
                            return loaded;
                        }
                        Err(why) => why,
                    }
                }
            }
        }
    };
    // The cached events are the last good set.
    fall_back(store, spec, cached.map(|c| LastGood::Misp(c, cached_events)), previous, why, now).await
}

/// The cache row of a copy judged good now, without HTTP validators (MISP and TAXII re-fetch
/// by their own cursors; a document download sets its own).
fn good_copy(spec: &FeedSpec, body: Vec<u8>, current: &FeedStats, now: DateTime<Utc>) -> CachedFeed {
    CachedFeed {
        feed: spec.name.clone(),
        source: spec.source.to_string(),
        body_len: body.len() as u64,
        body_sha256: None,
        body,
        validators: fetch::Validators::default(),
        fetched_at: now,
        good_at: now,
        bytes: current.bytes,
        accepted: current.accepted,
        rejected: current.rejected,
    }
}

/// Judges a freshly loaded copy against the feed's baseline (kept across runs; DESIGN principle
/// 2). A good copy is saved with `save` (only touched when `unchanged`) and returned as loaded; a
/// suspect one yields why it was refused. The baseline (and the count of runs a shrink has held)
/// is stored either way.
#[allow(clippy::too_many_arguments)]
fn accept_if_healthy(
    store: &Mutex<StateStore>,
    spec: &FeedSpec,
    cached: Option<&CachedFeed>,
    unchanged: bool,
    parsed: Parsed,
    current: FeedStats,
    now: DateTime<Utc>,
    save: impl FnOnce(&StateStore) -> Result<(), StateError>,
) -> Result<LoadedFeed, String> {
    let mut note = None;
    if !unchanged {
        let source = spec.source.to_string();
        let stored = match with_store(store, |s| s.feed_baseline(&spec.name)) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(feed = %spec.name, error = %e, "cannot read the feed's baseline; judging against its last copy");
                None
            }
        };
        // A baseline of another source does not count (the feed starts clean); a database from
        // before baselines were kept starts from the last good copy.
        let baseline = match stored {
            Some((src, b)) if src == source => Some(b),
            Some(_) => None,
            None => cached.map(|c| Baseline { accepted: c.accepted, ..Baseline::default() }),
        };
        let judged = feed_health::judge_with_baseline(
            &current,
            baseline.as_ref(),
            &spec.health,
            &spec.accept_shrink,
            now,
        );
        if judged.baseline != baseline.unwrap_or_default()
            && let Err(e) = with_store(store, |s| s.set_feed_baseline(&spec.name, &source, &judged.baseline))
        {
            tracing::warn!(feed = %spec.name, error = %e, "cannot save the feed's baseline");
        }
        if let Health::Suspect(why) = judged.health {
            return Err(why);
        }
        if let Some(n) = &judged.note {
            tracing::warn!(feed = %spec.name, "{n}");
        }
        note = judged.note;
    }
    let saved =
        with_store(store, |s| if unchanged { s.touch_feed(&spec.name, now).map(drop) } else { save(s) });
    if let Err(e) = saved {
        tracing::warn!(feed = %spec.name, error = %e, "cannot save the feed's last good copy");
    }
    let status = if unchanged { FeedStatus::NotModified } else { FeedStatus::Fresh };
    let mut out = LoadedFeed::new(spec, status, Some(parsed), current.bytes, Some(now));
    out.note = note;
    Ok(out)
}

/// The state cursor holding a TAXII feed's `added_after` (per feed and collection URL).
pub fn taxii_cursor_key(spec: &FeedSpec) -> String {
    format!("taxii:{}:{}", spec.name, spec.source)
}

/// A TAXII collection: fetch only objects added after the stored cursor, merge them into the
/// last good copy (newer versions by `id` replace older ones, so revocations apply), judge the
/// result; the cursor advances only together with a good copy.
async fn load_taxii(
    http: &reqwest::Client,
    store: &Mutex<StateStore>,
    spec: &FeedSpec,
    opts: &FetchOptions,
    now: DateTime<Utc>,
    observer: &dyn FetchObserver,
) -> LoadedFeed {
    let key = taxii_cursor_key(spec);
    let (cached, cursor) = match with_store(store, |s| Ok((s.feed_cache(&spec.name)?, s.cursor(&key)?))) {
        Ok((c, k)) => (c.filter(|c| !c.body.is_empty()), k),
        Err(e) => {
            tracing::warn!(feed = %spec.name, error = %e, "cannot read the feed cache; fetching without it");
            (None, None)
        }
    };
    let (cached, previous) = split_by_source(spec, cached);
    // Without a last good copy to merge into, read the whole collection.
    let added_after = cursor.as_deref().filter(|_| cached.is_some());
    let named = Named { name: &spec.name, inner: observer };
    let why = match fetch::fetch_taxii(http, &spec.source, added_after, opts, &named).await {
        Err(e) => fetch_reason(&e),
        Ok(got) => {
            let base = cached.as_ref().filter(|_| added_after.is_some()).map(|c| c.body.as_slice());
            match merge_taxii(base, got.objects, now) {
                Err(e) => e,
                Ok((body, changed)) => {
                    let unchanged = base.is_some() && !changed;
                    let (body, parsed) = parse_blocking(body, spec.parse_options(now)).await;
                    match parsed {
                        Err(e) => format!("cannot parse the collection: {e}"),
                        Ok(parsed) => {
                            let current = stats(&body, &parsed);
                            let accepted = accept_if_healthy(
                                store,
                                spec,
                                cached.as_ref(),
                                unchanged,
                                parsed,
                                current,
                                now,
                                |s| s.save_good_feed(&good_copy(spec, body.clone(), &current, now)),
                            );
                            match accepted {
                                Ok(loaded) => {
                                    if let Some(last) = &got.added_last
                                        && let Err(e) = with_store(store, |s| s.set_cursor(&key, last))
                                    {
                                        tracing::warn!(feed = %spec.name, error = %e, "cannot save the TAXII cursor");
                                    }
                                    tracing::debug!(feed = %spec.name, pages = got.pages, "TAXII collection fetched");
                                    return loaded;
                                }
                                Err(why) => why,
                            }
                        }
                    }
                }
            }
        }
    };
    fall_back(store, spec, cached.map(LastGood::Document), previous.map(LastGood::Document), why, now).await
}

/// Merges TAXII objects into a stored envelope `{"objects": [...]}` by STIX `id`: a new
/// version (later or equal `modified`) replaces the stored one. Returns the merged envelope
/// and whether anything changed.
fn merge_taxii(
    base: Option<&[u8]>,
    new: Vec<serde_json::Value>,
    now: DateTime<Utc>,
) -> Result<(Vec<u8>, bool), String> {
    fn key(o: &serde_json::Value) -> String {
        match o.get("id").and_then(serde_json::Value::as_str) {
            Some(id) => id.to_owned(),
            None => format!("~{o}"),
        }
    }
    fn version(o: &serde_json::Value) -> Option<DateTime<chrono::FixedOffset>> {
        let t = o.get("modified").or_else(|| o.get("created"))?.as_str()?;
        DateTime::parse_from_rfc3339(t).ok()
    }
    let mut by_id: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    if let Some(base) = base {
        let doc: serde_json::Value = serde_json::from_slice(base)
            .map_err(|e| format!("the cached copy of the collection is unreadable: {e}"))?;
        for o in doc.get("objects").and_then(serde_json::Value::as_array).into_iter().flatten() {
            by_id.insert(key(o), o.clone());
        }
    }
    let mut changed = false;
    for o in new {
        let k = key(&o);
        let replace = match by_id.get(&k) {
            None => true,
            Some(old) => *old != o && version(&o) >= version(old),
        };
        if replace {
            by_id.insert(k, o);
            changed = true;
        }
    }
    // Revoked and expired objects leave the merged copy: kept, they would be rejected on every
    // parse and, as the collection ages, push the feed past the reject guard into staleness.
    let before = by_id.len();
    by_id.retain(|_, o| !is_dead_stix_object(o, now));
    changed |= by_id.len() != before;
    let objects: Vec<serde_json::Value> = by_id.into_values().collect();
    let body = serde_json::to_vec(&serde_json::json!({ "objects": objects }))
        .map_err(|e| format!("cannot store the collection: {e}"))?;
    Ok((body, changed))
}

/// A STIX object that can never yield a value again: `revoked`, or `valid_until` in the past.
fn is_dead_stix_object(o: &serde_json::Value, now: DateTime<Utc>) -> bool {
    let revoked = o.get("revoked").and_then(serde_json::Value::as_bool).unwrap_or(false);
    let expired = o
        .get("valid_until")
        .and_then(serde_json::Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t < now);
    revoked || expired
}

/// Parses every event of a MISP feed as one MISP document each and merges the results,
/// keeping the first occurrence of each (type, value) across events.
/// Gives the events back, like [`parse_blocking`].
async fn parse_events(
    events: BTreeMap<String, (i64, Vec<u8>)>,
    mut opts: ParseOptions,
) -> (BTreeMap<String, (i64, Vec<u8>)>, Result<(Parsed, FeedStats), FormatError>) {
    opts.format = Format::Misp;
    let joined = tokio::task::spawn_blocking(move || {
        let r = merge_events(&events, &opts);
        (events, r)
    })
    .await;
    joined.unwrap_or_else(|e| {
        let err = FormatError::Malformed { format: "misp", detail: format!("parser task failed: {e}") };
        (BTreeMap::new(), Err(err))
    })
}

fn merge_events(
    events: &BTreeMap<String, (i64, Vec<u8>)>,
    opts: &ParseOptions,
) -> Result<(Parsed, FeedStats), FormatError> {
    let mut out = Parsed::default();
    let mut seen = HashSet::new();
    let mut st = FeedStats { bytes: 0, accepted: 0, rejected: 0, looks_like_html: false, empty: true };
    for (uuid, (_, body)) in events {
        let one = iocsync_ioc::parse(body, opts)
            .map_err(|e| FormatError::Malformed { format: "misp", detail: format!("event {uuid}: {e}") })?;
        st.bytes += body.len() as u64;
        st.looks_like_html |= feed_health::looks_like_html(body);
        st.empty &= body.iter().all(u8::is_ascii_whitespace);
        out.lines += one.lines;
        out.duplicates += one.duplicates;
        for ioc in one.iocs {
            if seen.insert((ioc.kind, ioc.value.clone())) {
                out.iocs.push(ioc);
            } else {
                out.duplicates += 1;
            }
        }
        out.rejections.extend(one.rejections);
    }
    st.accepted = out.iocs.len() as u64;
    st.rejected = out.rejections.len() as u64;
    Ok((out, st))
}

/// Passes progress on under the feed's name instead of the source text.
struct Named<'a> {
    name: &'a str,
    inner: &'a dyn FetchObserver,
}

impl FetchObserver for Named<'_> {
    fn progress(&self, _feed: &str, done: u64, total: Option<u64>) {
        self.inner.progress(self.name, done, total);
    }
    fn finished(&self, _feed: &str) {
        self.inner.finished(self.name);
    }
}

/// A duration as `3d 4h`, `5h 10m`, `12m` or `30s`, for messages.
fn human(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, mins) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else if mins > 0 {
        format!("{mins}m")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_and_flags() {
        assert_eq!(FeedStatus::Fresh.as_str(), "fresh");
        assert_eq!(FeedStatus::NotModified.as_str(), "not-modified");
        let fb = FeedStatus::Fallback { why: "HTTP 500".into() };
        assert_eq!(fb.as_str(), "fallback");
        assert!(fb.is_degraded() && fb.contributes());
        assert_eq!(fb.to_string(), "fallback (HTTP 500)");
        let st = FeedStatus::Stale { why: "x".into() };
        assert_eq!(st.as_str(), "stale");
        assert!(!st.contributes());
        assert_eq!(FeedStatus::Failed { why: "x".into() }.as_str(), "failed");
        assert!(!FeedStatus::Fresh.is_degraded());
    }

    #[test]
    fn taxii_merge_replaces_by_id_and_version() {
        use serde_json::json;
        let now = DateTime::parse_from_rfc3339("2026-08-10T00:00:00Z").unwrap().with_timezone(&Utc);
        let a1 = json!({"id": "indicator--a", "modified": "2026-08-01T00:00:00Z", "pattern": "1"});
        let b1 = json!({"id": "indicator--b", "modified": "2026-08-01T00:00:00Z", "pattern": "2"});
        let (base, changed) = merge_taxii(None, vec![a1.clone(), b1.clone()], now).unwrap();
        assert!(changed);
        // Same objects again: unchanged.
        let (same, changed) = merge_taxii(Some(&base), vec![a1], now).unwrap();
        assert!(!changed);
        assert_eq!(same, base);
        // A newer version of a replaces it, and being revoked it leaves the copy; an older
        // version of b is ignored.
        let a2 = json!({"id": "indicator--a", "modified": "2026-08-02T00:00:00Z", "revoked": true});
        let b0 = json!({"id": "indicator--b", "modified": "2026-07-01T00:00:00Z", "pattern": "old"});
        let (merged, changed) = merge_taxii(Some(&base), vec![a2, b0], now).unwrap();
        assert!(changed);
        let doc: serde_json::Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(doc["objects"], json!([b1]));
        // An object whose valid_until passed leaves the copy too (hole 4: the merged cache must
        // not fill up with objects that can only be rejected).
        let c = json!({"id": "indicator--c", "modified": "2026-08-01T00:00:00Z", "valid_until": "2026-08-05T00:00:00Z"});
        let (merged, _) = merge_taxii(Some(&merged), vec![c], now).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(doc["objects"], json!([b1]));
        assert!(merge_taxii(Some(b"not json"), vec![], now).is_err());
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(chrono::Duration::hours(50)), "2d 2h");
        assert_eq!(human(chrono::Duration::minutes(61)), "1h 1m");
        assert_eq!(human(chrono::Duration::seconds(59)), "59s");
        assert_eq!(human(chrono::Duration::seconds(-5)), "0s");
    }
}
