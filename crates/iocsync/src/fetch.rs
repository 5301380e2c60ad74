//! Getting one feed's bytes: from a file or an HTTPS URL, with conditional GET, a size cap
//! enforced while streaming, timeouts and gzip; and MISP feeds (`manifest.json` + events),
//! fetching only the events that changed.
//!
//! Plain `http://` is accepted only for loopback hosts (the emulator, tests): feeds decide what
//! gets blocked on every endpoint, so they must not be open to tampering on the way.
//! Error messages never contain credentials: URLs are shown through [`redact_url`].

use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use url::{Host, Url};

/// Default size cap of one feed: 64 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// How many MISP event files are downloaded at once.
const MISP_CONCURRENCY: usize = 4;

/// Where a feed comes from. `Debug` and `Display` redact URL credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum Source {
    /// A local file (or, for MISP feeds, a directory holding `manifest.json`).
    Path(PathBuf),
    /// An `https` URL, or `http` to a loopback host.
    Url(Url),
}

impl Source {
    /// Parses a config `source` value: a URL (`https://`, loopback `http://`, `file://`) or a
    /// path, relative paths being resolved against `base_dir` (the config file's directory).
    pub fn parse(s: &str, base_dir: &Path) -> Result<Source, FetchError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(FetchError::InvalidSource {
                origin: String::new(),
                detail: "the source is empty; give a file path or an https:// URL".into(),
            });
        }
        if s.contains("://") {
            let url = Url::parse(s).map_err(|e| FetchError::InvalidSource {
                origin: redact_str(s),
                detail: format!("not a valid URL: {e}"),
            })?;
            if url.scheme() == "file" {
                let path = url.to_file_path().map_err(|()| FetchError::InvalidSource {
                    origin: redact_url(&url),
                    detail: "a file:// URL must hold an absolute local path".into(),
                })?;
                return Ok(Source::Path(path));
            }
            check_url(&url)?;
            return Ok(Source::Url(url));
        }
        let path = Path::new(s);
        Ok(Source::Path(if path.is_absolute() { path.to_path_buf() } else { base_dir.join(path) }))
    }

    /// Whether this is a local path.
    pub fn is_path(&self) -> bool {
        matches!(self, Source::Path(_))
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Path(p) => f.debug_tuple("Path").field(p).finish(),
            Source::Url(u) => f.debug_tuple("Url").field(&redact_url(u)).finish(),
        }
    }
}

/// Shows the path, or the URL with credentials and secret-looking query values redacted.
impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Path(p) => write!(f, "{}", p.display()),
            Source::Url(u) => f.write_str(&redact_url(u)),
        }
    }
}

/// Refuses every scheme but `https`, and `http` to anything but a loopback host.
pub fn check_url(url: &Url) -> Result<(), FetchError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(FetchError::InsecureUrl { url: redact_url(url) }),
        other => Err(FetchError::InvalidSource {
            origin: redact_url(url),
            detail: format!("unsupported scheme {other:?}; use an https:// URL or a file path"),
        }),
    }
}

/// True for `127.x.y.z`, `::1` (also IPv4-mapped) and `localhost`: the only hosts plain
/// `http://` is accepted for (the emulator, test servers).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Query parameter names whose values are treated as secrets wherever a URL is shown or stored.
const SECRET_PARAMS: &[&str] = &["key", "auth", "sig", "code", "pass", "pwd"];

/// Parts of a query parameter name that mark its value as a secret (`apikey`, `X-Amz-Signature`,
/// `X-Amz-Security-Token`, `access_token`, `client_secret`, `password`, `X-Goog-Credential`...).
const SECRET_PARTS: &[&str] =
    &["key", "token", "secret", "passw", "signature", "credential", "auth", "session", "sig"];

/// Whether the value of query parameter `name` is treated as a secret.
pub fn is_secret_param(name: &str) -> bool {
    let k = name.to_ascii_lowercase();
    SECRET_PARAMS.contains(&k.as_str()) || SECRET_PARTS.iter().any(|p| k.contains(p))
}

/// The URL as text with the user-info and secret-looking query values replaced by `***`.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    if !u.username().is_empty() || u.password().is_some() {
        // Cannot fail for URLs that already had user-info (they have a host).
        let _ = u.set_password(None);
        let _ = u.set_username("***");
    }
    if u.query_pairs().any(|(k, _)| is_secret_param(&k)) {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_param(&k) { "***".to_owned() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// Redacts a string that may or may not parse as a URL (best effort: drops any user-info).
pub fn redact_source(s: &str) -> String {
    redact_str(s)
}

fn redact_str(s: &str) -> String {
    if let Ok(u) = Url::parse(s) {
        return redact_url(&u);
    }
    match (s.find("://"), s.rfind('@')) {
        (Some(i), Some(at)) if at > i => format!("{}***{}", &s[..i + 3], &s[at..]),
        _ => s.to_owned(),
    }
}

/// HTTP cache validators of a fetched body, sent back on the next fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// `ETag` response header (sent as `If-None-Match`).
    pub etag: Option<String>,
    /// `Last-Modified` response header (sent as `If-Modified-Since`).
    pub last_modified: Option<String>,
}

impl Validators {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// Limits of one fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Size cap in bytes, on the transferred and on the decompressed body.
    pub max_bytes: u64,
    /// TCP + TLS connect timeout (applied by [`http_client`]).
    pub connect_timeout: Duration,
    /// Total time for one request including its body.
    pub total_timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_bytes: DEFAULT_MAX_BYTES,
            connect_timeout: Duration::from_secs(15),
            total_timeout: Duration::from_secs(120),
        }
    }
}

/// The result of a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The server answered 304: the cached copy is current.
    NotModified,
    /// A body (decompressed) and its validators.
    Body {
        /// The bytes.
        bytes: Vec<u8>,
        /// `ETag` / `Last-Modified` to send next time (empty for files).
        validators: Validators,
    },
}

/// A body kept in a private temporary file rather than in memory (see [`fetch_to_file`]).
#[derive(Debug)]
pub struct Download {
    /// The body (decompressed), positioned at its start. An unnamed file (mode 0600): it is
    /// gone when dropped.
    pub file: std::fs::File,
    /// Its size in bytes.
    pub len: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// Whether it starts like an HTML page ([`iocsync_core::looks_like_html`] of its head).
    pub looks_like_html: bool,
    /// Whether it holds only ASCII white space.
    pub blank: bool,
}

/// The result of [`fetch_to_file`].
#[derive(Debug)]
pub enum FetchedFile {
    /// The server answered 304: the cached copy is current.
    NotModified,
    /// A body (decompressed, in a temporary file) and its validators.
    Body {
        /// The body.
        download: Download,
        /// `ETag` / `Last-Modified` to send next time (empty for files).
        validators: Validators,
    },
}

/// Why a fetch failed. Never contains credentials.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The source string is not usable.
    #[error("invalid feed source {origin:?}: {detail}")]
    InvalidSource {
        /// The (redacted) source.
        origin: String,
        /// What is wrong and what to do.
        detail: String,
    },
    /// Plain http to a non-loopback host.
    #[error(
        "refusing plain http for {url}: feeds must be fetched over https (http:// is allowed only for localhost/127.0.0.1/::1)"
    )]
    InsecureUrl {
        /// The (redacted) URL.
        url: String,
    },
    /// A non-2xx (and non-304) HTTP status.
    #[error("{url} answered HTTP {status}{}", status_hint(*status))]
    Status {
        /// The (redacted) URL.
        url: String,
        /// The status.
        status: StatusCode,
    },
    /// The body (transferred or decompressed) is larger than the cap.
    #[error(
        "{origin} is larger than the {limit}-byte limit; raise `sync.max_feed_bytes` if it is legitimate"
    )]
    TooLarge {
        /// The (redacted) source.
        origin: String,
        /// The cap.
        limit: u64,
    },
    /// The request took longer than the total timeout.
    #[error("{origin} did not finish within {}s; raise `sync.feed_timeout` if the source is just slow", after.as_secs_f64())]
    Timeout {
        /// The (redacted) source.
        origin: String,
        /// The timeout.
        after: Duration,
    },
    /// Connection, TLS or protocol failure.
    #[error("cannot fetch {url}: {detail}")]
    Network {
        /// The (redacted) URL.
        url: String,
        /// What failed (never includes the URL itself).
        detail: String,
        /// Whether a retry may help (connect/reset/timeout rather than a protocol violation).
        transient: bool,
    },
    /// A local file could not be read.
    #[error("cannot read {}: {detail}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        detail: String,
        /// Whether it may work later (interrupted, would block) rather than a missing file.
        transient: bool,
    },
    /// Data starting with the gzip magic that does not decompress.
    #[error("{origin} looks gzip-compressed but does not decompress: {detail}")]
    Gzip {
        /// The (redacted) source.
        origin: String,
        /// The decoder's message.
        detail: String,
    },
    /// A TAXII server answer that is not a usable envelope, or paging that does not end.
    #[error("{origin} is not a usable TAXII 2.1 collection: {detail}")]
    Taxii {
        /// The (redacted) source.
        origin: String,
        /// What was wrong.
        detail: String,
    },
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("cannot build the HTTP client for feeds: {0}")]
    Client(String),
    /// A MISP feed `manifest.json` that is not a map of event uuids.
    #[error("{origin} is not a MISP feed manifest: {detail}")]
    Manifest {
        /// The (redacted) source.
        origin: String,
        /// What was wrong.
        detail: String,
    },
}

/// What an operator should check for a failing HTTP status.
fn status_hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 | 403 => " (access refused: check the feed's URL, key or licence)",
        404 | 410 => " (not found: check the feed's URL)",
        429 => " (rate-limited by the feed server: fetch it less often)",
        500..=599 => " (server error: usually temporary)",
        _ => "",
    }
}

impl FetchError {
    /// Whether the failure is transient (network, timeout, 5xx, 408, 429) and a later attempt may work.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::REQUEST_TIMEOUT
                    || *status == StatusCode::TOO_MANY_REQUESTS
            }
            FetchError::Timeout { .. } => true,
            FetchError::Network { transient, .. } | FetchError::Io { transient, .. } => *transient,
            FetchError::InvalidSource { .. }
            | FetchError::InsecureUrl { .. }
            | FetchError::TooLarge { .. }
            | FetchError::Gzip { .. }
            | FetchError::Client(_)
            | FetchError::Taxii { .. }
            | FetchError::Manifest { .. } => false,
        }
    }
}

/// Receives download progress (the app shows a progress bar on a TTY).
pub trait FetchObserver: Send + Sync {
    /// `done` bytes of `feed` received so far, out of `total` when the size is known.
    fn progress(&self, feed: &str, done: u64, total: Option<u64>);
    /// The download of `feed` ended (successfully or not).
    fn finished(&self, _feed: &str) {}
}

/// A [`FetchObserver`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl FetchObserver for NoProgress {
    fn progress(&self, _feed: &str, _done: u64, _total: Option<u64>) {}
}

/// How many redirects one feed request follows before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// Environment variable (tests only) naming one loopback port whose server is treated as a
/// *public* host, so that redirect rules for public feeds can be exercised with two local
/// servers. It can only add restrictions: a "public" origin may redirect to fewer places.
pub const TEST_PUBLIC_PORT_VAR: &str = "IOCSYNC_TEST_PUBLIC_PORT";

fn test_public_port() -> Option<u16> {
    std::env::var(TEST_PUBLIC_PORT_VAR).ok().and_then(|v| v.trim().parse().ok())
}

/// Whether `addr` is a public (globally routable) address: not loopback, private, link-local
/// (cloud metadata at 169.254.169.254), CGNAT, ULA, multicast, reserved or documentation.
pub fn is_public_addr(addr: std::net::SocketAddr, test_port: Option<u16>) -> bool {
    if addr.ip().is_loopback() && test_port.is_some_and(|p| p == addr.port()) {
        return true;
    }
    iocsync_ioc::normalize::ip_class(addr.ip()).is_none()
}

/// A redirect or address refused by the fetcher's rules (kept in the error chain so the
/// failure is reported as permanent, not as a network hiccup).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// Redirect and address checks shared by the redirect policy and the DNS resolver of one client.
#[derive(Debug, Default)]
struct Guard {
    test_port: Option<u16>,
    /// Host name -> whether all its addresses were public when last resolved.
    resolved: std::sync::Mutex<std::collections::HashMap<String, bool>>,
    /// Host names a public feed redirected to: they must resolve to public addresses only.
    restricted: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Guard {
    /// Whether `url` points at a public host. A name not resolved yet counts as public (the
    /// stricter choice).
    fn url_is_public(&self, url: &Url) -> bool {
        let port = url.port_or_known_default().unwrap_or(0);
        match url.host() {
            Some(Host::Ipv4(ip)) => is_public_addr((ip, port).into(), self.test_port),
            Some(Host::Ipv6(ip)) => is_public_addr((ip, port).into(), self.test_port),
            Some(Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => false,
            Some(Host::Domain(d)) => {
                let resolved = self.resolved.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                resolved.get(&d.to_ascii_lowercase()).copied().unwrap_or(true)
            }
            None => false,
        }
    }

    /// Decides one redirect hop of the chain `previous` (first: the feed's URL) to `to`.
    fn check_redirect(&self, previous: &[Url], to: &Url) -> Result<(), String> {
        let Some(from) = previous.last() else { return Ok(()) };
        redirect_verdict(from, to)?;
        if previous.iter().any(|u| self.url_is_public(u)) {
            let port = to.port_or_known_default().unwrap_or(0);
            let private = |ip: std::net::IpAddr| !is_public_addr((ip, port).into(), self.test_port);
            match to.host() {
                Some(Host::Ipv4(ip)) if private(ip.into()) => return Err(public_to_private(to)),
                Some(Host::Ipv6(ip)) if private(ip.into()) => return Err(public_to_private(to)),
                Some(Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                    return Err(public_to_private(to));
                }
                Some(Host::Domain(d)) => {
                    let mut r = self.restricted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    r.insert(d.to_ascii_lowercase());
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Whether reqwest may send requests through a proxy (it reads these variables).
fn proxy_configured() -> bool {
    ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
}

fn public_to_private(to: &Url) -> String {
    format!(
        "a public feed may not redirect to {}: it is a loopback, private, link-local or metadata address",
        redact_url(to)
    )
}

/// The scheme rules of one redirect hop: only http(s); `https` -> `http` never, except from a
/// loopback host to a loopback host; plain `http` only to loopback hosts.
pub fn redirect_verdict(from: &Url, to: &Url) -> Result<(), String> {
    match to.scheme() {
        "https" => Ok(()),
        "http" if from.scheme() == "https" && !(is_loopback(from) && is_loopback(to)) => Err(format!(
            "refusing a redirect from https to plain http ({}): feeds must stay on https",
            redact_url(to)
        )),
        "http" if is_loopback(to) => Ok(()),
        "http" => Err(FetchError::InsecureUrl { url: redact_url(to) }.to_string()),
        other => Err(format!("refusing a redirect to the {other:?} scheme ({})", redact_url(to))),
    }
}

/// The DNS resolver of feed clients: the system resolver, remembering which names resolve to
/// public addresses, and refusing non-public addresses for names a public feed redirected to.
#[derive(Debug)]
struct GuardedResolver(std::sync::Arc<Guard>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        let host = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            // Resolved addresses carry port 0: the test switch never applies to names.
            let all_public = addrs.iter().all(|a| is_public_addr(*a, None));
            let mut resolved = guard.resolved.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            resolved.insert(host.clone(), all_public);
            drop(resolved);
            let restricted =
                guard.restricted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&host);
            if restricted && !all_public {
                return Err(Box::new(Refused(format!(
                    "a public feed may not redirect to {host}: it resolves to a loopback, private, link-local or metadata address"
                ))) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Builds the HTTP client for feeds: connect timeout, gzip, a user agent, no `Referer`, and a
/// redirect policy: at most [`MAX_REDIRECTS`] hops, the scheme rules of [`redirect_verdict`],
/// and no hop from a public host to a loopback, private, link-local or metadata address (IP
/// literals are checked in the policy, names when they are resolved).
pub fn http_client(opts: &FetchOptions) -> Result<reqwest::Client, FetchError> {
    http_client_with_headers(opts, reqwest::header::HeaderMap::new())
}

/// [`http_client`] that also sends `headers` on every request (a feed's `Authorization`, marked
/// sensitive so it is never logged; reqwest drops it on a redirect to another host).
pub fn http_client_with_headers(
    opts: &FetchOptions,
    headers: reqwest::header::HeaderMap,
) -> Result<reqwest::Client, FetchError> {
    let guard = std::sync::Arc::new(Guard { test_port: test_public_port(), ..Guard::default() });
    let policy_guard = guard.clone();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            let msg = format!("too many redirects (more than {MAX_REDIRECTS})");
            attempt.error(Refused(msg))
        } else if let Err(e) = policy_guard.check_redirect(attempt.previous(), attempt.url()) {
            attempt.error(Refused(e))
        } else {
            attempt.follow()
        }
    });
    iocsync_defender::tls::http_client_builder()
        .map_err(|e| FetchError::Client(format!("cannot set up TLS: {e}")))?
        .default_headers(headers)
        .user_agent(concat!("iocsync/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(opts.connect_timeout)
        .redirect(policy)
        .referer(false)
        .dns_resolver(std::sync::Arc::new(GuardedResolver(guard)))
        .gzip(true)
        .build()
        .map_err(|e| FetchError::Client(error_chain(&e.without_url())))
}

/// Fetches one feed. Sends `validators` as a conditional GET (URLs only); enforces the size
/// cap while streaming; decompresses a gzip body (magic `1f 8b`) under the same cap.
pub async fn fetch(
    http: &reqwest::Client,
    source: &Source,
    validators: Option<&Validators>,
    opts: &FetchOptions,
    observer: &dyn FetchObserver,
) -> Result<Fetched, FetchError> {
    let label = source.to_string();
    // The total timeout covers files too (a FIFO or a hung network mount must not hang a run).
    let work = async {
        match source {
            Source::Path(path) => read_file(path, &label, opts, observer)
                .await
                .map(|bytes| Fetched::Body { bytes, validators: Validators::default() }),
            Source::Url(url) => get(http, url, validators, None, opts, observer).await.map(|(f, _)| f),
        }
    };
    let result = within_total_timeout(work, &label, opts, observer).await;
    match result? {
        Fetched::Body { bytes, validators } if bytes.starts_with(&GZIP_MAGIC) => {
            let cap = opts.max_bytes;
            let bytes = off_the_runtime(source, move || maybe_gunzip(bytes, &label, cap)).await?;
            Ok(Fetched::Body { bytes, validators })
        }
        other => Ok(other),
    }
}

/// Runs `work` under the total timeout, then tells `observer` the download of `label` ended.
async fn within_total_timeout<T>(
    work: impl std::future::Future<Output = Result<T, FetchError>>,
    label: &str,
    opts: &FetchOptions,
    observer: &dyn FetchObserver,
) -> Result<T, FetchError> {
    let result = tokio::time::timeout(opts.total_timeout, work)
        .await
        .unwrap_or_else(|_| Err(FetchError::Timeout { origin: label.to_owned(), after: opts.total_timeout }));
    observer.finished(label);
    result
}

/// The first two bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// [`fetch`] into a private temporary file in `dir` instead of memory: the same conditional
/// GET, redirect rules, size cap (on the transfer and on the decompressed body), gzip and
/// timeout, but the body is written as it arrives, decompressed file to file, and described
/// (size, SHA-256, HTML head, blank) by reading it back, so memory holds a buffer, not the body.
pub async fn fetch_to_file(
    http: &reqwest::Client,
    source: &Source,
    validators: Option<&Validators>,
    opts: &FetchOptions,
    observer: &dyn FetchObserver,
    dir: &Path,
) -> Result<FetchedFile, FetchError> {
    use std::io::Write as _;
    let label = source.to_string();
    let mut file = temp_file(dir)?;
    let work = async {
        match source {
            Source::Path(path) => copy_file(path, &label, opts, observer, &mut file, dir)
                .await
                .map(|()| Some(Validators::default())),
            Source::Url(url) => {
                let mut write =
                    |chunk: &[u8], _: Option<u64>| file.write_all(chunk).map_err(|e| temp_error(dir, &e));
                get_streaming(http, url, validators, None, opts, observer, &mut write).await.map(|(v, _)| v)
            }
        }
    };
    let result = within_total_timeout(work, &label, opts, observer).await;
    let Some(validators) = result? else { return Ok(FetchedFile::NotModified) };
    let (dir, cap) = (dir.to_path_buf(), opts.max_bytes);
    let download = off_the_runtime(source, move || finish_download(file, &dir, &label, cap)).await?;
    Ok(FetchedFile::Body { download, validators })
}

/// Runs `work` (decompressing, hashing: slow up to the cap) on the blocking pool, off the async
/// worker threads; a task that died is a decompression error of `source`.
async fn off_the_runtime<T: Send + 'static>(
    source: &Source,
    work: impl FnOnce() -> Result<T, FetchError> + Send + 'static,
) -> Result<T, FetchError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| FetchError::Gzip {
        origin: source.to_string(),
        detail: format!("decompression task failed: {e}"),
    })?
}

/// A private (0600), unnamed temporary file in `dir`: removed when dropped, even on a crash.
pub fn temp_file(dir: &Path) -> Result<std::fs::File, FetchError> {
    tempfile::tempfile_in(dir).map_err(|e| temp_error(dir, &e))
}

fn temp_error(dir: &Path, e: &std::io::Error) -> FetchError {
    FetchError::Io {
        path: dir.to_path_buf(),
        detail: format!("cannot write a temporary copy of the feed there: {e}"),
        transient: false,
    }
}

/// Copies a local feed file into `out` under the size cap.
async fn copy_file(
    path: &Path,
    label: &str,
    opts: &FetchOptions,
    observer: &dyn FetchObserver,
    out: &mut std::fs::File,
    dir: &Path,
) -> Result<(), FetchError> {
    use std::io::Write as _;
    let io_err = |e: std::io::Error| file_error(path, &e);
    let meta = tokio::fs::metadata(path).await.map_err(io_err)?;
    check_file(path, &meta, label, opts)?;
    let file = tokio::fs::File::open(path).await.map_err(io_err)?;
    // The file may grow between metadata and read: read at most cap + 1 bytes.
    let mut file = file.take(opts.max_bytes.saturating_add(1));
    let mut buf = vec![0u8; 256 * 1024];
    let mut done: u64 = 0;
    loop {
        let n = file.read(&mut buf).await.map_err(io_err)?;
        if n == 0 {
            break;
        }
        done += n as u64;
        if done > opts.max_bytes {
            return Err(FetchError::TooLarge { origin: label.to_owned(), limit: opts.max_bytes });
        }
        out.write_all(&buf[..n]).map_err(|e| temp_error(dir, &e))?;
    }
    observer.progress(label, done, Some(meta.len()));
    Ok(())
}

/// Decompresses a downloaded file that starts with the gzip magic (into another temporary
/// file, under the cap), then reads the body back once for its size and SHA-256 and once more
/// for its head. Blocking.
fn finish_download(
    mut file: std::fs::File,
    dir: &Path,
    label: &str,
    cap: u64,
) -> Result<Download, FetchError> {
    use sha2::Digest as _;
    use std::io::{Seek as _, Write as _};
    let tmp = |e: std::io::Error| temp_error(dir, &e);
    file.rewind().map_err(tmp)?;
    let mut magic = Vec::with_capacity(2);
    (&file).take(2).read_to_end(&mut magic).map_err(tmp)?;
    file.rewind().map_err(tmp)?;
    if magic == GZIP_MAGIC {
        let mut out = temp_file(dir)?;
        let gz = |e: std::io::Error| FetchError::Gzip { origin: label.to_owned(), detail: e.to_string() };
        let mut decoder =
            flate2::read::MultiGzDecoder::new(std::io::BufReader::new(&file)).take(cap.saturating_add(1));
        let mut buf = vec![0u8; 256 * 1024];
        let mut done: u64 = 0;
        loop {
            let n = decoder.read(&mut buf).map_err(gz)?;
            if n == 0 {
                break;
            }
            done += n as u64;
            if done > cap {
                return Err(FetchError::TooLarge { origin: label.to_owned(), limit: cap });
            }
            out.write_all(&buf[..n]).map_err(tmp)?;
        }
        drop(decoder);
        file = out;
        file.rewind().map_err(tmp)?;
    }
    let mut hasher = sha2::Sha256::new();
    let mut len: u64 = 0;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(tmp)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    file.rewind().map_err(tmp)?;
    let (looks_like_html, blank) = scan_head(&file).map_err(tmp)?;
    file.rewind().map_err(tmp)?;
    Ok(Download { file, len, sha256: hex::encode(hasher.finalize()), looks_like_html, blank })
}

/// Whether a body read from `file` (at its start) looks like an HTML page, and whether it is
/// only white space: the answers of [`iocsync_core::looks_like_html`] and of an all-white-space
/// test on the whole body, reading only the BOM, the leading white space and 1 KiB.
fn scan_head(file: &std::fs::File) -> std::io::Result<(bool, bool)> {
    use std::io::BufRead as _;
    let mut r = std::io::BufReader::new(file);
    let mut head = Vec::with_capacity(1024);
    (&mut r).take(3).read_to_end(&mut head)?;
    let bom = head == b"\xEF\xBB\xBF";
    if bom {
        head.clear();
    }
    let lead = head.iter().take_while(|b| b.is_ascii_whitespace()).count();
    head.drain(..lead);
    while head.is_empty() {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        let len = buf.len();
        r.consume(n);
        if n < len {
            break;
        }
    }
    let more = 1024u64.saturating_sub(head.len() as u64);
    (&mut r).take(more).read_to_end(&mut head)?;
    // The leading space keeps a second BOM from being taken for the first one.
    let mut probe = Vec::with_capacity(head.len() + 1);
    probe.push(b' ');
    probe.extend_from_slice(&head);
    Ok((iocsync_core::looks_like_html(&probe), !bom && head.is_empty()))
}

/// One GET with the size cap enforced while streaming; returns the response headers too.
async fn get(
    http: &reqwest::Client,
    url: &Url,
    validators: Option<&Validators>,
    accept: Option<&str>,
    opts: &FetchOptions,
    observer: &dyn FetchObserver,
) -> Result<(Fetched, reqwest::header::HeaderMap), FetchError> {
    let cap = usize::try_from(opts.max_bytes).unwrap_or(usize::MAX);
    let mut buf = Vec::new();
    let mut keep = |chunk: &[u8], total: Option<u64>| {
        if buf.is_empty() {
            buf.reserve(total.map_or(0, |n| n as usize).min(cap));
        }
        buf.extend_from_slice(chunk);
        Ok(())
    };
    let (got, headers) = get_streaming(http, url, validators, accept, opts, observer, &mut keep).await?;
    let fetched = match got {
        None => Fetched::NotModified,
        Some(validators) => Fetched::Body { bytes: buf, validators },
    };
    Ok((fetched, headers))
}

/// Where [`get_streaming`] hands each chunk of the body (with the announced total size).
type ChunkOut<'a> = dyn FnMut(&[u8], Option<u64>) -> Result<(), FetchError> + Send + 'a;

/// One GET with the size cap enforced while streaming: every chunk of the body goes to `out`.
/// Returns the validators (`None` for a 304) and the response headers.
async fn get_streaming(
    http: &reqwest::Client,
    url: &Url,
    validators: Option<&Validators>,
    accept: Option<&str>,
    opts: &FetchOptions,
    observer: &dyn FetchObserver,
    out: &mut ChunkOut<'_>,
) -> Result<(Option<Validators>, reqwest::header::HeaderMap), FetchError> {
    check_url(url)?;
    let shown = redact_url(url);
    let mut req = http.get(url.clone()).timeout(opts.total_timeout);
    if let Some(accept) = accept {
        req = req.header(reqwest::header::ACCEPT, accept);
    }
    if let Some(v) = validators {
        if let Some(etag) = &v.etag {
            req = req.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &v.last_modified {
            req = req.header(IF_MODIFIED_SINCE, lm);
        }
    }
    let mut resp = req.send().await.map_err(|e| net_error(&shown, e, opts))?;
    // Defence in depth if the caller's client follows redirects without our policy, or a
    // pooled connection skipped the resolver: a redirected public feed must have landed on a
    // public address.
    check_url(resp.url())?;
    // Behind a proxy the connection goes to the proxy, whose address says nothing about the
    // feed's host: the proxy resolves names then, and only the policy's checks apply.
    if resp.url() != url && !proxy_configured() {
        let test_port = test_public_port();
        let origin_public = Guard { test_port, ..Guard::default() }.url_is_public(url);
        if origin_public && resp.remote_addr().is_some_and(|a| !is_public_addr(a, test_port)) {
            return Err(FetchError::Network {
                url: shown,
                detail: format!("redirect refused: {}", public_to_private(resp.url())),
                transient: false,
            });
        }
    }
    let status = resp.status();
    if status == StatusCode::NOT_MODIFIED {
        return Ok((None, resp.headers().clone()));
    }
    if !status.is_success() {
        return Err(FetchError::Status { url: shown, status });
    }
    let header = |name| {
        resp.headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let got = Validators { etag: header(ETAG), last_modified: header(LAST_MODIFIED) };
    let total = resp.content_length();
    let too_large = || FetchError::TooLarge { origin: shown.clone(), limit: opts.max_bytes };
    if total.is_some_and(|n| n > opts.max_bytes) {
        return Err(too_large());
    }
    let mut done: u64 = 0;
    while let Some(chunk) = resp.chunk().await.map_err(|e| net_error(&shown, e, opts))? {
        if done.saturating_add(chunk.len() as u64) > opts.max_bytes {
            return Err(too_large());
        }
        out(&chunk, total)?;
        done += chunk.len() as u64;
        observer.progress(&shown, done, total);
    }
    Ok((Some(got), resp.headers().clone()))
}

async fn read_file(
    path: &Path,
    label: &str,
    opts: &FetchOptions,
    observer: &dyn FetchObserver,
) -> Result<Vec<u8>, FetchError> {
    let io_err = |e: std::io::Error| file_error(path, &e);
    let meta = tokio::fs::metadata(path).await.map_err(io_err)?;
    check_file(path, &meta, label, opts)?;
    let file = tokio::fs::File::open(path).await.map_err(io_err)?;
    let mut buf = Vec::with_capacity(meta.len() as usize);
    // The file may grow between metadata and read: read at most cap + 1 bytes.
    file.take(opts.max_bytes.saturating_add(1)).read_to_end(&mut buf).await.map_err(io_err)?;
    if buf.len() as u64 > opts.max_bytes {
        return Err(FetchError::TooLarge { origin: label.to_owned(), limit: opts.max_bytes });
    }
    observer.progress(label, buf.len() as u64, Some(meta.len()));
    Ok(buf)
}

/// A local file read error.
fn file_error(path: &Path, e: &std::io::Error) -> FetchError {
    FetchError::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
        transient: matches!(e.kind(), std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock),
    }
}

/// Refuses a directory and a file larger than the cap, before reading it.
fn check_file(
    path: &Path,
    meta: &std::fs::Metadata,
    label: &str,
    opts: &FetchOptions,
) -> Result<(), FetchError> {
    if meta.is_dir() {
        return Err(FetchError::Io {
            path: path.to_path_buf(),
            detail: "is a directory (only MISP feeds, format = \"misp\", can be directories)".into(),
            transient: false,
        });
    }
    if meta.len() > opts.max_bytes {
        return Err(FetchError::TooLarge { origin: label.to_owned(), limit: opts.max_bytes });
    }
    Ok(())
}

/// Opens a local feed file for reading as a stream, for `iocsync parse`: the same size cap as
/// [`fetch`] (on the file and on its gunzipped content, enforced while reading), gzip decoded on
/// the fly, and nothing held beyond a 256 KiB buffer. Blocking: call it off the async threads.
pub fn open_stream(path: &Path, opts: &FetchOptions) -> Result<Box<dyn std::io::BufRead + Send>, FetchError> {
    use std::io::BufRead as _;
    const BUFFER: usize = 256 * 1024;
    let label = path.display().to_string();
    let io_err = |e: std::io::Error| file_error(path, &e);
    let meta = std::fs::metadata(path).map_err(io_err)?;
    check_file(path, &meta, &label, opts)?;
    let file = std::fs::File::open(path).map_err(io_err)?;
    let mut raw = std::io::BufReader::with_capacity(BUFFER, Capped::new(file, opts.max_bytes, label.clone()));
    let head = raw.fill_buf().map_err(io_err)?;
    if head.starts_with(&GZIP_MAGIC) {
        let gunzip = flate2::bufread::MultiGzDecoder::new(raw);
        let gunzip = GzipErrors { inner: gunzip, origin: label.clone() };
        let capped = Capped::new(gunzip, opts.max_bytes, label);
        return Ok(Box::new(std::io::BufReader::with_capacity(BUFFER, capped)));
    }
    Ok(Box::new(raw))
}

/// A reader that fails with [`FetchError::TooLarge`] (inside the `io::Error`) once more than
/// `limit` bytes came through.
#[derive(Debug)]
struct Capped<R> {
    inner: R,
    limit: u64,
    read: u64,
    origin: String,
}

impl<R> Capped<R> {
    fn new(inner: R, limit: u64, origin: String) -> Self {
        Capped { inner, limit, read: 0, origin }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read = self.read.saturating_add(n as u64);
        if self.read > self.limit {
            return Err(std::io::Error::other(FetchError::TooLarge {
                origin: self.origin.clone(),
                limit: self.limit,
            }));
        }
        Ok(n)
    }
}

/// Turns a gzip decoder's errors into [`FetchError::Gzip`] (inside the `io::Error`).
struct GzipErrors<R> {
    inner: R,
    origin: String,
}

impl<R> fmt::Debug for GzipErrors<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GzipErrors").field("origin", &self.origin).finish()
    }
}

impl<R: Read> Read for GzipErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if e.get_ref().is_some_and(|i| i.is::<FetchError>()) {
                e
            } else {
                std::io::Error::other(FetchError::Gzip { origin: self.origin.clone(), detail: e.to_string() })
            }
        })
    }
}

/// Decompresses `data` if it starts with the gzip magic, capping the decompressed size.
fn maybe_gunzip(data: Vec<u8>, label: &str, cap: u64) -> Result<Vec<u8>, FetchError> {
    if !data.starts_with(&GZIP_MAGIC) {
        return Ok(data);
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data.as_slice())
        .take(cap.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| FetchError::Gzip { origin: label.to_owned(), detail: e.to_string() })?;
    if out.len() as u64 > cap {
        return Err(FetchError::TooLarge { origin: label.to_owned(), limit: cap });
    }
    Ok(out)
}

fn net_error(shown: &str, e: reqwest::Error, opts: &FetchOptions) -> FetchError {
    if e.is_timeout() {
        return FetchError::Timeout { origin: shown.to_owned(), after: opts.total_timeout };
    }
    let refused = {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        let mut found = false;
        while let Some(c) = cur {
            found |= c.is::<Refused>();
            cur = c.source();
        }
        found
    };
    let redirect = e.is_redirect() || refused;
    let transient = !redirect && (e.is_connect() || e.is_request() || e.is_body() || e.is_decode());
    let chain = error_chain(&e.without_url());
    let detail = if redirect { format!("redirect refused: {chain}") } else { chain };
    FetchError::Network { url: shown.to_owned(), detail, transient }
}

/// `error: cause: cause`, for errors whose Display hides the underlying reason.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let msg = c.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = c.source();
    }
    s
}

// ---- MISP feeds -------------------------------------------------------------------------------

/// The events of a MISP feed after a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MispFeedFetch {
    /// Every event listed in the manifest: uuid -> (manifest timestamp, event JSON), fresh or cached.
    pub events: BTreeMap<String, (i64, Vec<u8>)>,
    /// How many event files were downloaded (the rest came from the cache).
    pub fetched: usize,
    /// Size of `manifest.json`.
    pub manifest_bytes: u64,
}

impl MispFeedFetch {
    /// Total size of the event bodies.
    pub fn bytes(&self) -> u64 {
        self.events.values().map(|(_, b)| b.len() as u64).sum()
    }
}

/// Parses a MISP feed `manifest.json`: `{uuid: {"timestamp": "1700000000", ...}, ...}` into
/// uuid -> timestamp. Uuids must be hex and dashes (they become file names).
pub fn parse_misp_manifest(bytes: &[u8], label: &str) -> Result<BTreeMap<String, i64>, FetchError> {
    let bad = |detail: String| FetchError::Manifest { origin: label.to_owned(), detail };
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let map = doc.as_object().ok_or_else(|| bad("expected a JSON object keyed by event uuid".into()))?;
    let mut out = BTreeMap::new();
    for (uuid, entry) in map {
        let valid_uuid =
            !uuid.is_empty() && uuid.len() <= 64 && uuid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if !valid_uuid {
            return Err(bad(format!("event key {uuid:?} is not a uuid")));
        }
        let ts = match entry.get("timestamp") {
            Some(serde_json::Value::String(s)) => s.trim().parse::<i64>().ok(),
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            _ => None,
        }
        .ok_or_else(|| bad(format!("event {uuid} has no integer \"timestamp\"")))?;
        out.insert(uuid.clone(), ts);
    }
    Ok(out)
}

/// Where the files of a MISP feed live.
enum MispBase {
    Dir(PathBuf),
    Url(Url),
}

impl MispBase {
    fn new(source: &Source) -> Result<MispBase, FetchError> {
        match source {
            Source::Path(p) if p.file_name().is_some_and(|n| n == "manifest.json") => {
                Ok(MispBase::Dir(p.parent().map(Path::to_path_buf).unwrap_or_default()))
            }
            Source::Path(p) => Ok(MispBase::Dir(p.clone())),
            Source::Url(u) => {
                let mut base = u.clone();
                base.set_query(None);
                base.set_fragment(None);
                let path = base.path().to_owned();
                let dir = match path.strip_suffix("manifest.json") {
                    Some(d) => d.to_owned(),
                    None if path.ends_with('/') => path,
                    None => format!("{path}/"),
                };
                base.set_path(&dir);
                Ok(MispBase::Url(base))
            }
        }
    }

    fn source_of(&self, file: &str) -> Result<Source, FetchError> {
        match self {
            MispBase::Dir(d) => Ok(Source::Path(d.join(file))),
            MispBase::Url(u) => u.join(file).map(Source::Url).map_err(|e| FetchError::InvalidSource {
                origin: redact_url(u),
                detail: format!("cannot build the URL of {file}: {e}"),
            }),
        }
    }
}

/// Fetches a MISP feed (a directory or base URL holding `manifest.json`): reads the manifest,
/// downloads only the events whose manifest timestamp differs from `cached`, and returns every
/// current event. The size cap applies to each file and to the total.
pub async fn fetch_misp_feed(
    http: &reqwest::Client,
    source: &Source,
    cached: &BTreeMap<String, (i64, Vec<u8>)>,
    opts: &FetchOptions,
    observer: &dyn FetchObserver,
) -> Result<MispFeedFetch, FetchError> {
    let label = source.to_string();
    let result = misp_feed_inner(http, source, cached, opts, observer, &label).await;
    observer.finished(&label);
    result
}

async fn misp_feed_inner(
    http: &reqwest::Client,
    source: &Source,
    cached: &BTreeMap<String, (i64, Vec<u8>)>,
    opts: &FetchOptions,
    observer: &dyn FetchObserver,
    label: &str,
) -> Result<MispFeedFetch, FetchError> {
    // Progress is reported for the feed as a whole (bytes over all files), not per file.
    let base = MispBase::new(source)?;
    let manifest_src = base.source_of("manifest.json")?;
    let manifest = match fetch(http, &manifest_src, None, opts, &NoProgress).await? {
        Fetched::Body { bytes, .. } => bytes,
        Fetched::NotModified => {
            return Err(FetchError::Manifest {
                origin: manifest_src.to_string(),
                detail: "answered 304 to an unconditional request".into(),
            });
        }
    };
    let listed = parse_misp_manifest(&manifest, &manifest_src.to_string())?;

    let mut events = BTreeMap::new();
    let mut wanted = Vec::new();
    for (uuid, ts) in &listed {
        match cached.get(uuid) {
            Some((cached_ts, body)) if cached_ts == ts => {
                events.insert(uuid.clone(), (*ts, body.clone()));
            }
            _ => wanted.push((uuid.clone(), *ts, base.source_of(&format!("{uuid}.json"))?)),
        }
    }
    let fetched = wanted.len();
    let mut downloads = futures::stream::iter(wanted)
        .map(|(uuid, ts, src)| async move {
            let r = fetch(http, &src, None, opts, &NoProgress).await;
            (uuid, ts, src, r)
        })
        .buffer_unordered(MISP_CONCURRENCY);
    let mut total: u64 = events.values().map(|(_, b)| b.len() as u64).sum();
    observer.progress(label, total, None);
    while let Some((uuid, ts, src, r)) = downloads.next().await {
        let body = match r? {
            Fetched::Body { bytes, .. } => bytes,
            Fetched::NotModified => {
                return Err(FetchError::Manifest {
                    origin: src.to_string(),
                    detail: "answered 304 to an unconditional request".into(),
                });
            }
        };
        total = total.saturating_add(body.len() as u64);
        if total > opts.max_bytes {
            return Err(FetchError::TooLarge { origin: label.to_owned(), limit: opts.max_bytes });
        }
        observer.progress(label, total, None);
        events.insert(uuid, (ts, body));
    }
    Ok(MispFeedFetch { events, fetched, manifest_bytes: manifest.len() as u64 })
}

// ---- TAXII 2.1 collections -------------------------------------------------------------------

/// Media type of TAXII 2.1 requests and responses.
pub const TAXII_MEDIA_TYPE: &str = "application/taxii+json;version=2.1";

/// Response header naming the newest `date_added` of the returned objects.
const TAXII_DATE_ADDED_LAST: &str = "x-taxii-date-added-last";

/// Upper bound on pages of one TAXII fetch (a server whose paging never ends is an error).
const TAXII_MAX_PAGES: usize = 10_000;

/// The objects of a TAXII collection added after a cursor, over every page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaxiiFetch {
    /// STIX objects in server order.
    pub objects: Vec<serde_json::Value>,
    /// Pages read.
    pub pages: usize,
    /// Newest `X-TAXII-Date-Added-Last` seen: the `added_after` of the next run.
    pub added_last: Option<String>,
    /// Bytes received over all pages.
    pub bytes: u64,
}

#[derive(serde::Deserialize)]
struct Envelope {
    #[serde(default)]
    objects: Vec<serde_json::Value>,
    #[serde(default)]
    more: bool,
    #[serde(default)]
    next: Option<serde_json::Value>,
}

/// Reads a TAXII 2.1 collection's objects endpoint (`.../collections/{id}/objects/`) page by
/// page (`next`, or `added_after` when the server gives no `next`), from `added_after` on. The
/// size cap applies to the total over all pages, the total timeout to the whole walk.
pub async fn fetch_taxii(
    http: &reqwest::Client,
    source: &Source,
    added_after: Option<&str>,
    opts: &FetchOptions,
    observer: &dyn FetchObserver,
) -> Result<TaxiiFetch, FetchError> {
    let label = source.to_string();
    let Source::Url(url) = source else {
        return Err(FetchError::InvalidSource {
            origin: label,
            detail: "a TAXII collection is an https URL ending in /collections/{id}/objects/".into(),
        });
    };
    within_total_timeout(taxii_pages(http, url, added_after, opts, observer, &label), &label, opts, observer)
        .await
}

async fn taxii_pages(
    http: &reqwest::Client,
    url: &Url,
    added_after: Option<&str>,
    opts: &FetchOptions,
    observer: &dyn FetchObserver,
    label: &str,
) -> Result<TaxiiFetch, FetchError> {
    let bad = |detail: String| FetchError::Taxii { origin: label.to_owned(), detail };
    let mut out = TaxiiFetch::default();
    let mut after = added_after.map(str::to_owned);
    let mut next: Option<String> = None;
    loop {
        let mut page_url = url.clone();
        let mut extra = Vec::new();
        if let Some(a) = &after {
            extra.push(("added_after", a.as_str()));
        }
        if let Some(n) = &next {
            extra.push(("next", n.as_str()));
        }
        if !extra.is_empty() {
            page_url.query_pairs_mut().extend_pairs(extra);
        }
        let page_opts = FetchOptions { max_bytes: opts.max_bytes.saturating_sub(out.bytes), ..opts.clone() };
        let (fetched, headers) = get(http, &page_url, None, Some(TAXII_MEDIA_TYPE), &page_opts, &NoProgress)
            .await
            .map_err(|e| match e {
                FetchError::TooLarge { .. } => {
                    FetchError::TooLarge { origin: label.to_owned(), limit: opts.max_bytes }
                }
                other => other,
            })?;
        let Fetched::Body { bytes, .. } = fetched else {
            return Err(bad("answered 304 to an unconditional request".into()));
        };
        out.pages += 1;
        out.bytes += bytes.len() as u64;
        observer.progress(label, out.bytes, None);
        // An empty body is an empty page (some servers answer 204-like 200s).
        let env: Envelope = if bytes.iter().all(u8::is_ascii_whitespace) {
            Envelope { objects: Vec::new(), more: false, next: None }
        } else {
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("page {}: {e}", out.pages)))?
        };
        let got_objects = !env.objects.is_empty();
        out.objects.extend(env.objects);
        let last = headers.get(TAXII_DATE_ADDED_LAST).and_then(|v| v.to_str().ok()).map(str::to_owned);
        if let Some(last) = &last
            && out.added_last.as_ref().is_none_or(|cur| later(last, cur))
        {
            out.added_last = Some(last.clone());
        }
        if !env.more {
            return Ok(out);
        }
        if out.pages >= TAXII_MAX_PAGES {
            return Err(bad(format!("more than {TAXII_MAX_PAGES} pages")));
        }
        let next_token = match env.next {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        match next_token {
            Some(token) if next.as_ref() != Some(&token) => next = Some(token),
            Some(_) => return Err(bad("the server repeated the same `next` token".into())),
            // No `next`: page by moving `added_after` to the newest object seen.
            None => match last {
                Some(last) if got_objects && after.as_ref() != Some(&last) => after = Some(last),
                _ => return Err(bad(
                    "`more` is true but there is neither a `next` token nor a newer X-TAXII-Date-Added-Last"
                        .into(),
                )),
            },
        }
    }
}

/// Whether timestamp `a` is later than `b` (RFC 3339; falls back to text order).
fn later(a: &str, b: &str) -> bool {
    match (chrono::DateTime::parse_from_rfc3339(a), chrono::DateTime::parse_from_rfc3339(b)) {
        (Ok(a), Ok(b)) => a > b,
        _ => a > b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_parse_paths_and_urls() {
        let base = Path::new("/etc/iocsync");
        assert_eq!(
            Source::parse("feeds/a.txt", base).unwrap(),
            Source::Path(PathBuf::from("/etc/iocsync/feeds/a.txt"))
        );
        assert_eq!(Source::parse("/x/a.txt", base).unwrap(), Source::Path(PathBuf::from("/x/a.txt")));
        assert_eq!(Source::parse("file:///x/a.txt", base).unwrap(), Source::Path(PathBuf::from("/x/a.txt")));
        assert!(matches!(Source::parse("https://e.com/a", base).unwrap(), Source::Url(_)));
        for ok in ["http://127.0.0.1:8080/a", "http://localhost/a", "http://[::1]/a", "http://127.9.9.9/"] {
            assert!(Source::parse(ok, base).is_ok(), "{ok}");
        }
        for bad in ["http://example.com/a", "http://10.0.0.1/a", "http://localhost.evil.com/"] {
            let err = Source::parse(bad, base).unwrap_err();
            assert!(matches!(err, FetchError::InsecureUrl { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("https"), "{err}");
        }
        assert!(matches!(
            Source::parse("ftp://e.com/a", base).unwrap_err(),
            FetchError::InvalidSource { .. }
        ));
        assert!(Source::parse("  ", base).is_err());
    }

    #[test]
    fn redaction_hides_userinfo_and_keys() {
        let u = Url::parse("https://alice:hunter2@e.com/feed?auth-key=s3cr3t&limit=5").unwrap();
        let shown = redact_url(&u);
        assert!(!shown.contains("alice") && !shown.contains("hunter2") && !shown.contains("s3cr3t"));
        assert!(shown.contains("limit=5") && shown.contains("e.com/feed"), "{shown}");
        let err = Source::parse("http://bob:pw123@example.com/x", Path::new("/")).unwrap_err();
        assert!(!err.to_string().contains("pw123"), "{err}");
        assert!(!redact_str("ht!tp://bob:pw@x").contains("pw@"));
    }

    #[test]
    fn presigned_and_key_like_query_values_are_redacted() {
        let u = Url::parse(
            "https://b.s3.amazonaws.com/f.csv?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA1&X-Amz-Signature=abc123sig&X-Amz-Security-Token=tok9&limit=7",
        )
        .unwrap();
        let shown = redact_url(&u);
        for secret in ["AKIA1", "abc123sig", "tok9"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("X-Amz-Algorithm=AWS4") && shown.contains("limit=7"), "{shown}");
        for (k, secret) in [
            ("sig", true),
            ("token", true),
            ("apikey", true),
            ("api_key", true),
            ("client_secret", true),
            ("password", true),
            ("access_token", true),
            ("page", false),
            ("format", false),
            ("since", false),
        ] {
            assert_eq!(is_secret_param(k), secret, "{k}");
        }
        let azure =
            Url::parse("https://a.blob.core.windows.net/c/f?sv=2022&se=2030&sig=AzUrE%2Bsig").unwrap();
        assert!(!redact_url(&azure).contains("AzUrE"), "{}", redact_url(&azure));
    }

    #[test]
    fn redirect_scheme_rules() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(redirect_verdict(&u("https://a.example/x"), &u("https://b.example/y")).is_ok());
        // https -> http: never, not even to a loopback host...
        let err = redirect_verdict(&u("https://a.example/x"), &u("http://127.0.0.1/y")).unwrap_err();
        assert!(err.contains("https to plain http"), "{err}");
        assert!(redirect_verdict(&u("https://a.example/x"), &u("http://b.example/y")).is_err());
        // ...except from loopback to loopback.
        assert!(redirect_verdict(&u("https://127.0.0.1:8443/x"), &u("http://localhost:8080/y")).is_ok());
        assert!(redirect_verdict(&u("http://127.0.0.1/x"), &u("http://127.0.0.1:81/y")).is_ok());
        assert!(redirect_verdict(&u("http://127.0.0.1/x"), &u("http://192.0.2.1/y")).is_err());
        assert!(redirect_verdict(&u("https://a.example/x"), &u("file:///etc/passwd")).is_err());
    }

    #[test]
    fn a_public_origin_never_redirects_to_a_private_or_metadata_address() {
        let u = |s: &str| Url::parse(s).unwrap();
        let g = Guard::default();
        let public = [u("https://45.1.2.3/feed")];
        for to in [
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.5/x",
            "https://192.168.1.1/x",
            "https://100.100.100.200/x",
            "https://[fd00:ec2::254]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://localhost/x",
        ] {
            let err = g.check_redirect(&public, &u(to)).unwrap_err();
            assert!(err.contains("may not redirect"), "{to}: {err}");
        }
        assert!(g.check_redirect(&public, &u("https://45.9.9.9/x")).is_ok());
        // A name is left to the resolver, which is told to insist on public addresses.
        assert!(g.check_redirect(&public, &u("https://cdn.example/x")).is_ok());
        assert!(g.restricted.lock().unwrap().contains("cdn.example"));
        // A private origin (an intranet feed server) may redirect inside the network.
        let private = [u("https://10.1.1.1/feed")];
        assert!(g.check_redirect(&private, &u("https://10.1.1.2/x")).is_ok());
        // The test switch makes one loopback port public, and only that one.
        let t = Guard { test_port: Some(4444), ..Guard::default() };
        assert!(t.url_is_public(&u("http://127.0.0.1:4444/")));
        assert!(!t.url_is_public(&u("http://127.0.0.1:4445/")));
        assert!(t.check_redirect(&[u("http://127.0.0.1:4444/")], &u("http://127.0.0.1:4445/")).is_err());
    }

    #[test]
    fn gunzip_caps_decompressed_size() {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&vec![b'a'; 100_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(maybe_gunzip(gz.clone(), "x", 100_000).unwrap().len(), 100_000);
        assert!(matches!(maybe_gunzip(gz, "x", 99_999), Err(FetchError::TooLarge { .. })));
        assert!(matches!(maybe_gunzip(vec![0x1f, 0x8b, 0, 1, 2], "x", 10), Err(FetchError::Gzip { .. })));
        assert_eq!(maybe_gunzip(b"plain".to_vec(), "x", 10).unwrap(), b"plain");
    }

    #[test]
    fn manifest_parsing() {
        let m = parse_misp_manifest(br#"{"ab-12":{"timestamp":"17"},"cd":{"timestamp":5}}"#, "m").unwrap();
        assert_eq!(m.get("ab-12"), Some(&17));
        assert_eq!(m.get("cd"), Some(&5));
        for bad in [&b"[]"[..], b"{\"../etc\":{\"timestamp\":\"1\"}}", b"{\"ab\":{}}", b"nope"] {
            assert!(matches!(parse_misp_manifest(bad, "m"), Err(FetchError::Manifest { .. })));
        }
    }

    #[test]
    fn transient_classification() {
        let s = |c: u16| FetchError::Status { url: "u".into(), status: StatusCode::from_u16(c).unwrap() };
        assert!(s(503).is_transient() && s(429).is_transient());
        assert!(!s(404).is_transient() && !s(403).is_transient());
        assert!(!FetchError::InsecureUrl { url: "u".into() }.is_transient());
    }

    #[test]
    fn misp_base_urls() {
        let b = |s: &str| match MispBase::new(&Source::Url(Url::parse(s).unwrap())).unwrap() {
            MispBase::Url(u) => u.join("x.json").unwrap().to_string(),
            MispBase::Dir(_) => unreachable!(),
        };
        assert_eq!(b("https://e.com/feed/manifest.json"), "https://e.com/feed/x.json");
        assert_eq!(b("https://e.com/feed/"), "https://e.com/feed/x.json");
        assert_eq!(b("https://e.com/feed"), "https://e.com/feed/x.json");
    }
}
