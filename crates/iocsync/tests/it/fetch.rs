//! Feed fetching against a local HTTP server on 127.0.0.1:0, and feed loading with the
//! last-good fallback (module `feeds` below).

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use iocsync::fetch::{
    self, FetchError, FetchOptions, Fetched, NoProgress, Source, Validators, fetch_misp_feed,
};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

/// What the test server answers on one path.
#[derive(Clone)]
enum Route {
    /// A fixed answer; with `etag`, a matching `If-None-Match` gets a 304.
    Fixed { status: u16, headers: Vec<(&'static str, String)>, body: Vec<u8>, etag: Option<String> },
    /// 1 GiB of `a`, streamed without a Content-Length; counts the bytes handed to the socket.
    Endless(Arc<AtomicU64>),
    /// Never answers.
    Hang,
    /// A TAXII 2.1 objects endpoint over (date_added, object) pairs, 2 objects a page, paged
    /// with `next` (an offset), filtered by `added_after`.
    Taxii(Arc<Mutex<Vec<(String, serde_json::Value)>>>),
}

impl Route {
    fn ok(body: impl Into<Vec<u8>>) -> Route {
        Route::Fixed { status: 200, headers: vec![], body: body.into(), etag: None }
    }
    fn status(status: u16, body: &str) -> Route {
        Route::Fixed { status, headers: vec![], body: body.as_bytes().to_vec(), etag: None }
    }
}

/// A tiny scriptable HTTP server recording every request.
#[derive(Clone, Default)]
pub(crate) struct Server {
    routes: Arc<Mutex<HashMap<String, Route>>>,
    log: Arc<Mutex<Vec<(String, HeaderMap)>>>,
    base: Arc<Mutex<String>>,
}

impl Server {
    async fn start() -> Server {
        let srv = Server::default();
        let app = Router::new().fallback(handle).with_state(srv.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        *srv.base.lock().unwrap() = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        srv
    }
    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("{}{path}", self.base.lock().unwrap())).unwrap()
    }
    fn source(&self, path: &str) -> Source {
        Source::Url(self.url(path))
    }
    fn route(&self, path: &str, r: Route) {
        self.routes.lock().unwrap().insert(path.to_owned(), r);
    }
    fn requests(&self) -> Vec<(String, HeaderMap)> {
        self.log.lock().unwrap().clone()
    }
    fn clear_log(&self) {
        self.log.lock().unwrap().clear();
    }
}

async fn handle(State(srv): State<Server>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let logged = req.uri().path_and_query().map_or(path.clone(), |p| p.as_str().to_owned());
    srv.log.lock().unwrap().push((logged, req.headers().clone()));
    let route = srv.routes.lock().unwrap().get(&path).cloned();
    match route {
        None => (StatusCode::NOT_FOUND, "no such feed").into_response(),
        Some(Route::Hang) => std::future::pending().await,
        Some(Route::Taxii(objects)) => {
            let query: HashMap<String, String> =
                url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                    .into_owned()
                    .collect();
            let after = query.get("added_after").cloned().unwrap_or_default();
            let offset: usize = query.get("next").map_or(0, |n| n.parse().unwrap());
            let matching: Vec<(String, serde_json::Value)> =
                objects.lock().unwrap().iter().filter(|(added, _)| *added > after).cloned().collect();
            let page: Vec<_> = matching.iter().skip(offset).take(2).cloned().collect();
            let more = offset + page.len() < matching.len();
            let mut env = serde_json::json!({ "more": more, "objects": page.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>() });
            if more {
                env["next"] = serde_json::json!((offset + page.len()).to_string());
            }
            let mut resp = Response::new(Body::from(serde_json::to_vec(&env).unwrap()));
            resp.headers_mut().insert("content-type", fetch::TAXII_MEDIA_TYPE.parse().unwrap());
            if let Some((last, _)) = page.last() {
                resp.headers_mut().insert("x-taxii-date-added-last", last.parse().unwrap());
            }
            resp
        }
        Some(Route::Endless(counter)) => {
            let chunk = Bytes::from(vec![b'a'; 64 * 1024]);
            let stream = futures::stream::iter(0..16 * 1024).map(move |_| {
                counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                Ok::<_, std::io::Error>(chunk.clone())
            });
            Response::new(Body::from_stream(stream))
        }
        Some(Route::Fixed { status, headers, body, etag }) => {
            let inm = req.headers().get("if-none-match").and_then(|v| v.to_str().ok());
            if let (Some(etag), Some(inm)) = (&etag, inm)
                && etag == inm
            {
                return StatusCode::NOT_MODIFIED.into_response();
            }
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap();
            for (k, v) in headers {
                resp.headers_mut().insert(k, v.parse().unwrap());
            }
            if let Some(etag) = etag {
                resp.headers_mut().insert("etag", etag.parse().unwrap());
            }
            resp
        }
    }
}

fn opts() -> FetchOptions {
    FetchOptions { total_timeout: Duration::from_secs(20), ..FetchOptions::default() }
}

fn client() -> reqwest::Client {
    fetch::http_client(&opts()).unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn body_of(f: Fetched) -> (Vec<u8>, Validators) {
    match f {
        Fetched::Body { bytes, validators } => (bytes, validators),
        Fetched::NotModified => panic!("expected a body, got NotModified"),
    }
}

#[tokio::test]
async fn conditional_get_returns_not_modified() {
    let srv = Server::start().await;
    srv.route(
        "/feed.txt",
        Route::Fixed {
            status: 200,
            headers: vec![("last-modified", "Sat, 22 Aug 2026 10:00:00 GMT".into())],
            body: b"evil.xyz\n".to_vec(),
            etag: Some("\"v1\"".into()),
        },
    );
    let http = client();
    let src = srv.source("/feed.txt");
    let (bytes, v) = body_of(fetch::fetch(&http, &src, None, &opts(), &NoProgress).await.unwrap());
    assert_eq!(bytes, b"evil.xyz\n");
    assert_eq!(v.etag.as_deref(), Some("\"v1\""));
    assert_eq!(v.last_modified.as_deref(), Some("Sat, 22 Aug 2026 10:00:00 GMT"));
    let first = &srv.requests()[0].1;
    assert!(first.get("if-none-match").is_none());

    let again = fetch::fetch(&http, &src, Some(&v), &opts(), &NoProgress).await.unwrap();
    assert_eq!(again, Fetched::NotModified);
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2);
    let h = &reqs[1].1;
    assert_eq!(h.get("if-none-match").unwrap(), "\"v1\"");
    assert_eq!(h.get("if-modified-since").unwrap(), "Sat, 22 Aug 2026 10:00:00 GMT");
}

#[tokio::test]
async fn size_cap_cuts_a_streamed_body() {
    let srv = Server::start().await;
    let sent = Arc::new(AtomicU64::new(0));
    srv.route("/huge", Route::Endless(sent.clone()));
    let o = FetchOptions { max_bytes: 1024 * 1024, ..opts() };
    let err = fetch::fetch(&client(), &srv.source("/huge"), None, &o, &NoProgress).await.unwrap_err();
    assert!(matches!(err, FetchError::TooLarge { limit: 1_048_576, .. }), "{err}");
    assert!(err.to_string().contains("1048576"), "{err}");
    // The server had 1 GiB to send; the client stopped long before.
    let sent = sent.load(Ordering::SeqCst);
    assert!(sent < 64 * 1024 * 1024, "server produced {sent} bytes");
}

#[tokio::test]
async fn content_length_over_cap_is_refused() {
    let srv = Server::start().await;
    srv.route("/big", Route::ok(vec![b'1'; 5000]));
    let o = FetchOptions { max_bytes: 4999, ..opts() };
    let err = fetch::fetch(&client(), &srv.source("/big"), None, &o, &NoProgress).await.unwrap_err();
    assert!(matches!(err, FetchError::TooLarge { .. }), "{err}");
    let o = FetchOptions { max_bytes: 5000, ..opts() };
    let (bytes, _) =
        body_of(fetch::fetch(&client(), &srv.source("/big"), None, &o, &NoProgress).await.unwrap());
    assert_eq!(bytes.len(), 5000);
}

#[tokio::test]
async fn gzip_content_encoding_and_gzip_body() {
    let srv = Server::start().await;
    let plain = "1.2.3.4\n".repeat(1000);
    srv.route(
        "/enc",
        Route::Fixed {
            status: 200,
            headers: vec![("content-encoding", "gzip".into())],
            body: gzip(plain.as_bytes()),
            etag: None,
        },
    );
    srv.route("/feed.txt.gz", Route::ok(gzip(plain.as_bytes())));
    let http = client();
    let (bytes, _) =
        body_of(fetch::fetch(&http, &srv.source("/enc"), None, &opts(), &NoProgress).await.unwrap());
    assert_eq!(bytes, plain.as_bytes());
    let accept = srv.requests()[0].1.get("accept-encoding").unwrap().to_str().unwrap().to_owned();
    assert!(accept.contains("gzip"), "{accept}");
    let (bytes, _) =
        body_of(fetch::fetch(&http, &srv.source("/feed.txt.gz"), None, &opts(), &NoProgress).await.unwrap());
    assert_eq!(bytes, plain.as_bytes());

    // The decompressed size is capped too.
    let o = FetchOptions { max_bytes: 7999, ..opts() };
    let err = fetch::fetch(&http, &srv.source("/enc"), None, &o, &NoProgress).await.unwrap_err();
    assert!(matches!(err, FetchError::TooLarge { .. }), "{err}");
}

#[tokio::test]
async fn gzipped_file_is_decompressed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.txt.gz");
    std::fs::write(&path, gzip(b"evil.xyz\nbad.top\n")).unwrap();
    let src = Source::parse("feed.txt.gz", dir.path()).unwrap();
    let (bytes, v) = body_of(fetch::fetch(&client(), &src, None, &opts(), &NoProgress).await.unwrap());
    assert_eq!(bytes, b"evil.xyz\nbad.top\n");
    assert!(v.is_empty());
}

#[tokio::test]
async fn non_2xx_is_an_error_naming_the_status() {
    let srv = Server::start().await;
    srv.route("/down", Route::status(503, "maintenance"));
    let http = client();
    let err = fetch::fetch(&http, &srv.source("/down"), None, &opts(), &NoProgress).await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    assert!(err.is_transient());
    let err = fetch::fetch(&http, &srv.source("/missing"), None, &opts(), &NoProgress).await.unwrap_err();
    assert!(matches!(err, FetchError::Status { .. }) && err.to_string().contains("404"), "{err}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn plain_http_to_a_non_loopback_host_is_refused() {
    let err = Source::parse("http://feeds.example.org/list.txt", Path::new("/")).unwrap_err();
    assert!(err.to_string().contains("https"), "{err}");
    // Also when a URL source is built directly, before any connection is made.
    let src = Source::Url(Url::parse("http://192.0.2.1/list.txt").unwrap());
    let err = fetch::fetch(&client(), &src, None, &opts(), &NoProgress).await.unwrap_err();
    assert!(matches!(err, FetchError::InsecureUrl { .. }), "{err}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn redirect_to_plain_http_is_refused() {
    let srv = Server::start().await;
    srv.route(
        "/moved",
        Route::Fixed {
            status: 302,
            headers: vec![("location", "http://192.0.2.1/elsewhere".into())],
            body: vec![],
            etag: None,
        },
    );
    let err = fetch::fetch(&client(), &srv.source("/moved"), None, &opts(), &NoProgress).await.unwrap_err();
    assert!(err.to_string().contains("https"), "{err}");
}

#[tokio::test]
async fn credentials_in_urls_are_redacted() {
    let srv = Server::start().await;
    let mut url = srv.url("/private?auth-key=k3y-value&n=1");
    url.set_username("feeduser").unwrap();
    url.set_password(Some("hunter2-pass")).unwrap();
    let src = Source::parse(url.as_str(), Path::new("/")).unwrap();
    assert!(!src.to_string().contains("hunter2-pass"));
    assert!(!format!("{src:?}").contains("hunter2-pass"), "{src:?}");
    let err = fetch::fetch(&client(), &src, None, &opts(), &NoProgress).await.unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(msg.contains("404"), "{msg}");
    for secret in ["hunter2-pass", "feeduser", "k3y-value"] {
        assert!(!msg.contains(secret), "{secret} leaked: {msg}");
    }

    // A connection error too (a port nobody listens on).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let src =
        Source::parse(&format!("http://feeduser:hunter2-pass@127.0.0.1:{closed}/x"), Path::new("/")).unwrap();
    let err = fetch::fetch(&client(), &src, None, &opts(), &NoProgress).await.unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(matches!(err, FetchError::Network { transient: true, .. }), "{msg}");
    assert!(!msg.contains("hunter2-pass"), "{msg}");
}

#[tokio::test]
async fn file_over_the_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.txt");
    std::fs::write(&path, vec![b'x'; 2000]).unwrap();
    let o = FetchOptions { max_bytes: 1999, ..opts() };
    let err = fetch::fetch(&client(), &Source::Path(path.clone()), None, &o, &NoProgress).await.unwrap_err();
    assert!(matches!(err, FetchError::TooLarge { limit: 1999, .. }), "{err}");

    let err = fetch::fetch(&client(), &Source::Path(dir.path().join("nope.txt")), None, &opts(), &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Io { .. }) && err.to_string().contains("nope.txt"), "{err}");
}

#[tokio::test]
async fn total_timeout_applies() {
    let srv = Server::start().await;
    srv.route("/slow", Route::Hang);
    let o = FetchOptions { total_timeout: Duration::from_millis(300), ..opts() };
    let err = fetch::fetch(&client(), &srv.source("/slow"), None, &o, &NoProgress).await.unwrap_err();
    assert!(matches!(err, FetchError::Timeout { .. }), "{err}");
    assert!(err.is_transient());
}

/// Progress goes to the observer with a growing byte count.
#[tokio::test]
async fn observer_sees_progress() {
    #[derive(Default)]
    struct Rec(Mutex<Vec<u64>>);
    impl fetch::FetchObserver for Rec {
        fn progress(&self, _feed: &str, done: u64, _total: Option<u64>) {
            self.0.lock().unwrap().push(done);
        }
    }
    let srv = Server::start().await;
    srv.route("/f", Route::ok(vec![b'z'; 300_000]));
    let rec = Rec::default();
    fetch::fetch(&client(), &srv.source("/f"), None, &opts(), &rec).await.unwrap();
    let seen = rec.0.lock().unwrap().clone();
    assert_eq!(seen.last(), Some(&300_000));
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
}

pub(crate) fn misp_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/feeds/tweetfeed/misp"))
}

/// Serves the tweetfeed MISP feed under `/misp/`; returns the manifest as JSON for editing.
pub(crate) fn serve_misp(srv: &Server) -> serde_json::Value {
    let dir = misp_dir();
    let manifest = std::fs::read(dir.join("manifest.json")).unwrap();
    srv.route("/misp/manifest.json", Route::ok(manifest.clone()));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        srv.route(&format!("/misp/{name}"), Route::ok(std::fs::read(&path).unwrap()));
    }
    serde_json::from_slice(&manifest).unwrap()
}

#[tokio::test]
async fn misp_feed_directory_has_seven_events() {
    let got = fetch_misp_feed(&client(), &Source::Path(misp_dir()), &BTreeMap::new(), &opts(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(got.events.len(), 7);
    assert_eq!(got.fetched, 7);
    assert!(got.events.contains_key("06159a36-6012-5d68-bff5-7fac1110a2a6"));
    let (ts, body) = &got.events["06159a36-6012-5d68-bff5-7fac1110a2a6"];
    assert_eq!(*ts, 1_787_269_519);
    assert_eq!(body.len(), 38906);
}

#[tokio::test]
async fn misp_feed_over_http_fetches_only_changed_events() {
    let srv = Server::start().await;
    let mut manifest = serve_misp(&srv);
    let http = client();
    let src = srv.source("/misp/manifest.json");
    let first = fetch_misp_feed(&http, &src, &BTreeMap::new(), &opts(), &NoProgress).await.unwrap();
    assert_eq!((first.events.len(), first.fetched), (7, 7));
    assert_eq!(srv.requests().len(), 8);

    // Nothing changed: only the manifest is read.
    srv.clear_log();
    let same = fetch_misp_feed(&http, &src, &first.events, &opts(), &NoProgress).await.unwrap();
    assert_eq!(same.fetched, 0);
    assert_eq!(same.events, first.events);
    assert_eq!(srv.requests().len(), 1);

    // One event's timestamp changes: only that event is fetched again.
    let uuid = "b34e0bcb-0adc-500b-a611-1e801c6d0698";
    manifest[uuid]["timestamp"] = serde_json::json!("1787999999");
    srv.route("/misp/manifest.json", Route::ok(serde_json::to_vec(&manifest).unwrap()));
    srv.clear_log();
    let base = srv.source("/misp/");
    let second = fetch_misp_feed(&http, &base, &first.events, &opts(), &NoProgress).await.unwrap();
    assert_eq!(second.fetched, 1);
    assert_eq!(second.events.len(), 7);
    assert_eq!(second.events[uuid].0, 1_787_999_999);
    let paths: Vec<String> = srv.requests().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, vec!["/misp/manifest.json".to_owned(), format!("/misp/{uuid}.json")]);
}

#[tokio::test]
async fn misp_manifest_with_path_traversal_is_refused() {
    let srv = Server::start().await;
    srv.route("/m/manifest.json", Route::ok(r#"{"../../etc/passwd":{"timestamp":"1"}}"#));
    let err = fetch_misp_feed(&client(), &srv.source("/m/"), &BTreeMap::new(), &opts(), &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Manifest { .. }), "{err}");
}

/// `feeds::load_feed`: fresh, fallback, stale, failed, not-modified, MISP feeds.
mod feeds {
    use super::{Route, Server, client, misp_dir, opts, serve_misp};
    use chrono::{DateTime, Duration, TimeZone, Utc};
    use iocsync::feeds::{FeedSpec, FeedStatus, HealthRules, LoadedFeed, load_feed};
    use iocsync::fetch;
    use iocsync::fetch::{NoProgress, Source, Validators};
    use iocsync::state::{CachedFeed, StateStore};
    use iocsync_ioc::Format;
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::sync::Mutex;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 8, 22, 12, 0, 0).unwrap()
    }

    fn spec(name: &str, source: Source, format: Format) -> FeedSpec {
        FeedSpec {
            name: name.into(),
            source,
            format,
            column: None,
            type_column: None,
            type_hint: None,
            refang: true,
            max_age: Duration::hours(48),
            health: HealthRules::default(),
            accept_shrink: Default::default(),
        }
    }

    /// `n` distinct public domains starting at `from`.
    fn domains(from: usize, n: usize) -> String {
        (from..from + n).map(|i| format!("malware-{i}.xyz\n")).collect()
    }

    fn values(l: &LoadedFeed) -> BTreeSet<String> {
        l.parsed.as_ref().unwrap().iocs.iter().map(|i| i.value.clone()).collect()
    }

    fn store() -> Mutex<StateStore> {
        Mutex::new(StateStore::open_in_memory().unwrap())
    }

    async fn load(srv_spec: &FeedSpec, st: &Mutex<StateStore>, at: DateTime<Utc>) -> LoadedFeed {
        load_feed(&client(), st, srv_spec, &opts(), at, &NoProgress).await
    }

    #[tokio::test]
    async fn fresh_feed_is_saved_as_last_good() {
        let srv = Server::start().await;
        srv.route(
            "/f",
            Route::Fixed {
                status: 200,
                headers: vec![],
                body: domains(0, 100).into(),
                etag: Some("\"e1\"".into()),
            },
        );
        let st = store();
        let s = spec("f", srv.source("/f"), Format::Text);
        let l = load(&s, &st, now()).await;
        assert_eq!(l.status, FeedStatus::Fresh);
        assert_eq!(values(&l).len(), 100);
        assert_eq!(l.bytes, domains(0, 100).len() as u64);
        assert_eq!(l.fetched_at, Some(now()));
        let c = st.lock().unwrap().feed_cache("f").unwrap().unwrap();
        assert_eq!(c.body, domains(0, 100).into_bytes());
        assert_eq!(c.accepted, 100);
        assert_eq!(c.validators.etag.as_deref(), Some("\"e1\""));
        assert_eq!(c.good_at, now());
    }

    /// Broken answers: each falls back to the last good copy, which stays cached.
    #[tokio::test]
    async fn broken_feed_falls_back_to_last_good() {
        let html = "<!DOCTYPE html><html><head><title>Error</title></head><body>Sorry</body></html>\n";
        let cases = [
            ("http 500", Route::status(500, "oops")),
            ("html page", Route::ok(html)),
            ("empty body", Route::ok("")),
            ("90% shrink", Route::ok(domains(0, 10))),
            ("mostly rejects", Route::ok(format!("{}{}", domains(0, 100), "not a value!\n".repeat(200)))),
        ];
        for (what, broken) in cases {
            let srv = Server::start().await;
            srv.route("/f", Route::ok(domains(0, 100)));
            let st = store();
            let s = spec("f", srv.source("/f"), Format::Text);
            assert_eq!(load(&s, &st, now()).await.status, FeedStatus::Fresh, "{what}");

            srv.route("/f", broken);
            let later = now() + Duration::hours(6);
            let l = load(&s, &st, later).await;
            assert_eq!(l.status.as_str(), "fallback", "{what}: {:?}", l.status);
            assert!(!l.status.why().unwrap().is_empty(), "{what}");
            assert_eq!(values(&l), values_of_range(0, 100), "{what}: old values used");
            assert_eq!(l.fetched_at, Some(now()), "{what}");
            let c = st.lock().unwrap().feed_cache("f").unwrap().unwrap();
            assert_eq!(c.body, domains(0, 100).into_bytes(), "{what}: last good kept");
            assert_eq!(c.good_at, now(), "{what}: not refreshed by a broken copy");
        }
    }

    fn values_of_range(from: usize, n: usize) -> BTreeSet<String> {
        (from..from + n).map(|i| format!("malware-{i}.xyz")).collect()
    }

    #[tokio::test]
    async fn broken_feed_without_last_good_fails() {
        let cases = [
            ("http 500", Route::status(500, "oops")),
            ("html page", Route::ok("<html><body>Access denied</body></html>")),
            ("empty body", Route::ok("")),
        ];
        for (what, broken) in cases {
            let srv = Server::start().await;
            srv.route("/f", broken);
            let st = store();
            let l = load(&spec("f", srv.source("/f"), Format::Text), &st, now()).await;
            assert_eq!(l.status.as_str(), "failed", "{what}: {:?}", l.status);
            assert!(l.parsed.is_none(), "{what}");
            assert!(!l.status.contributes());
            assert!(st.lock().unwrap().feed_cache("f").unwrap().is_none(), "{what}");
        }
    }

    #[tokio::test]
    async fn a_changed_source_starts_clean_and_its_old_copy_protects() {
        let srv = Server::start().await;
        let fixed = |body: String| Route::Fixed {
            status: 200,
            headers: vec![],
            body: body.into(),
            etag: Some("\"v1\"".into()),
        };
        // Both answer 304 to the same ETag: an old source's validator sent to the new source
        // would make it serve the old content.
        srv.route("/old", fixed(domains(0, 10)));
        srv.route("/new", fixed(domains(100, 10)));
        let st = store();
        let l = load(&spec("f", srv.source("/old"), Format::Text), &st, now()).await;
        assert_eq!(l.status.as_str(), "fresh");
        let l = load(&spec("f", srv.source("/new"), Format::Text), &st, now()).await;
        assert_eq!(l.status.as_str(), "fresh", "{:?}", l.status);
        assert!(values(&l).contains("malware-100.xyz"));
        let reqs = srv.requests();
        assert!(reqs.last().unwrap().1.get("if-none-match").is_none(), "no validator of the old source");
        // A third source that fails: the copy from /new does not stand in, but protects.
        srv.route("/broken", Route::status(502, "bad gateway"));
        let l = load(&spec("f", srv.source("/broken"), Format::Text), &st, now()).await;
        assert_eq!(l.status.as_str(), "failed", "{:?}", l.status);
        assert!(l.parsed.is_none());
        assert_eq!(l.protects.len(), 10);
    }

    #[tokio::test]
    async fn last_good_older_than_max_age_is_stale() {
        let srv = Server::start().await;
        srv.route("/f", Route::status(502, "bad gateway"));
        let st = store();
        st.lock()
            .unwrap()
            .save_good_feed(&CachedFeed {
                feed: "f".into(),
                source: srv.source("/f").to_string(),
                body: domains(0, 5).into_bytes(),
                body_len: 0,
                body_sha256: None,
                validators: Validators::default(),
                fetched_at: now() - Duration::hours(72),
                good_at: now() - Duration::hours(72),
                bytes: 5,
                accepted: 5,
                rejected: 0,
            })
            .unwrap();
        let l = load(&spec("f", srv.source("/f"), Format::Text), &st, now()).await;
        assert_eq!(l.status.as_str(), "stale", "{:?}", l.status);
        assert!(l.parsed.is_none());
        assert_eq!(l.protects.len(), 5, "a stale copy's values are protected, not pushed");
        assert!(l.status.why().unwrap().contains("502"), "{:?}", l.status);
        // Younger than max_age: fallback instead.
        let l = load(&spec("f", srv.source("/f"), Format::Text), &st, now() - Duration::hours(30)).await;
        assert_eq!(l.status.as_str(), "fallback", "{:?}", l.status);
        assert_eq!(values(&l).len(), 5);
    }

    #[tokio::test]
    async fn not_modified_uses_the_cache() {
        let srv = Server::start().await;
        srv.route(
            "/f",
            Route::Fixed {
                status: 200,
                headers: vec![],
                body: domains(0, 20).into(),
                etag: Some("\"v7\"".into()),
            },
        );
        let st = store();
        let s = spec("f", srv.source("/f"), Format::Text);
        let first = load(&s, &st, now()).await;
        assert_eq!(first.status, FeedStatus::Fresh);
        let later = now() + Duration::hours(1);
        let second = load(&s, &st, later).await;
        assert_eq!(second.status, FeedStatus::NotModified);
        assert_eq!(values(&second), values(&first));
        let reqs = srv.requests();
        assert_eq!(reqs[1].1.get("if-none-match").unwrap(), "\"v7\"");
        assert_eq!(st.lock().unwrap().feed_cache("f").unwrap().unwrap().good_at, later);
    }

    #[tokio::test]
    async fn misp_feed_directory_loads_seven_events() {
        let st = store();
        let s = spec("tweetfeed", Source::Path(misp_dir()), Format::Misp);
        assert!(s.is_misp_feed());
        let l = load(&s, &st, now()).await;
        assert_eq!(l.status, FeedStatus::Fresh, "{:?}", l.status);
        assert_eq!(st.lock().unwrap().misp_events("tweetfeed").unwrap().len(), 7);
        let parsed = l.parsed.unwrap();
        assert!(parsed.iocs.len() > 1000, "{} values", parsed.iocs.len());
        // Second run: nothing changed.
        let again = load(&s, &st, now()).await;
        assert_eq!(again.status, FeedStatus::NotModified);
        assert_eq!(again.parsed.unwrap().iocs.len(), parsed.iocs.len());
    }

    #[tokio::test]
    async fn misp_feed_over_http_refetches_one_changed_event() {
        let srv = Server::start().await;
        let mut manifest = serve_misp(&srv);
        let st = store();
        let s = spec("tf", srv.source("/misp/"), Format::Misp);
        let first = load(&s, &st, now()).await;
        assert_eq!(first.status, FeedStatus::Fresh, "{:?}", first.status);

        let uuid = "ec185261-dda2-5256-bf1a-f93d913192fa";
        manifest[uuid]["timestamp"] = serde_json::json!("1787999999");
        srv.route("/misp/manifest.json", Route::ok(serde_json::to_vec(&manifest).unwrap()));
        srv.clear_log();
        let second = load(&s, &st, now()).await;
        assert_eq!(second.status, FeedStatus::Fresh, "{:?}", second.status);
        let paths: Vec<String> = srv.requests().into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, vec!["/misp/manifest.json".to_owned(), format!("/misp/{uuid}.json")]);
        assert_eq!(st.lock().unwrap().misp_events("tf").unwrap()[uuid].0, 1_787_999_999);

        // The feed goes down: the cached events stand in.
        srv.route("/misp/manifest.json", Route::status(500, "down"));
        let third = load(&s, &st, now() + Duration::hours(1)).await;
        assert_eq!(third.status.as_str(), "fallback", "{:?}", third.status);
        assert_eq!(third.parsed.unwrap().iocs.len(), first.parsed.unwrap().iocs.len());
    }

    fn shared(rel: &str) -> std::path::PathBuf {
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/feeds/")).join(rel)
    }

    /// A body that is not the format at all (FormatError) falls back too.
    #[tokio::test]
    async fn unparseable_download_falls_back() {
        let srv = Server::start().await;
        let stix = std::fs::read(shared("tweetfeed/stix/today.json")).unwrap();
        srv.route("/stix", Route::ok(stix));
        let st = store();
        let s = spec("stix", srv.source("/stix"), Format::Stix);
        let good = load(&s, &st, now()).await;
        assert_eq!(good.status, FeedStatus::Fresh, "{:?}", good.status);
        assert!(values(&good).len() > 50, "{}", values(&good).len());

        srv.route("/stix", Route::ok("{\"type\": \"bundle\", \"objects\": [ truncated"));
        let l = load(&s, &st, now()).await;
        assert_eq!(l.status.as_str(), "fallback", "{:?}", l.status);
        assert!(l.status.why().unwrap().contains("parse"), "{:?}", l.status);
        assert_eq!(values(&l), values(&good));
    }

    /// A real feed file through a path source: abuse.ch Feodo CSV, 750 rows, 728 unique IPs.
    #[tokio::test]
    async fn real_csv_file_loads_fresh() {
        let st = store();
        let mut s = spec("feodo", Source::Path(shared("abusech-feodotracker/ipblocklist.csv")), Format::Csv);
        s.column = Some(iocsync_ioc::formats::Column::Name("dst_ip".into()));
        let l = load(&s, &st, now()).await;
        assert_eq!(l.status, FeedStatus::Fresh, "{:?}", l.status);
        assert_eq!(values(&l).len(), 728);
        assert_eq!(l.bytes, 59710);
        let c = st.lock().unwrap().feed_cache("feodo").unwrap().unwrap();
        assert_eq!(c.accepted, 728);
        assert!(c.validators.is_empty());
    }

    /// A cache row of another kind of feed (MISP feed -> document) is no last good copy:
    /// the feed fails instead of "falling back" to nothing (which would delete its indicators).
    #[tokio::test]
    async fn cache_of_another_feed_kind_is_not_a_last_good_copy() {
        let st = store();
        let misp = spec("f", Source::Path(misp_dir()), Format::Misp);
        assert_eq!(load(&misp, &st, now()).await.status, FeedStatus::Fresh);
        let srv = Server::start().await;
        srv.route("/f", Route::status(500, "down"));
        let l = load(&spec("f", srv.source("/f"), Format::Text), &st, now()).await;
        assert_eq!(l.status.as_str(), "failed", "{:?}", l.status);
        assert!(l.parsed.is_none());
    }

    fn indicator(n: u32, domain: &str, modified: &str, revoked: bool) -> serde_json::Value {
        serde_json::json!({
            "type": "indicator",
            "spec_version": "2.1",
            "id": format!("indicator--00000000-0000-4000-8000-{n:012}"),
            "created": "2026-08-01T00:00:00.000Z",
            "modified": modified,
            "pattern": format!("[domain-name:value = '{domain}']"),
            "pattern_type": "stix",
            "valid_from": "2026-08-01T00:00:00Z",
            "revoked": revoked,
        })
    }

    /// A TAXII collection is paged, then read incrementally with `added_after`; a revoked
    /// new version replaces the old one.
    #[tokio::test]
    async fn taxii_collection_is_read_incrementally() {
        let srv = Server::start().await;
        let t0 = "2026-08-01T00:00:00.000Z";
        let objects: Vec<(String, serde_json::Value)> = (1..=5)
            .map(|i| {
                (format!("2026-08-01T00:00:0{i}.000Z"), indicator(i, &format!("malware-{i}.xyz"), t0, false))
            })
            .collect();
        let objects = Arc::new(Mutex::new(objects));
        let path = "/taxii2/api/collections/c1/objects/";
        srv.route(path, Route::Taxii(objects.clone()));
        let st = store();
        let s = spec("tx", srv.source(path), Format::Taxii);
        assert!(s.is_taxii_feed());

        let first = load(&s, &st, now()).await;
        assert_eq!(first.status, FeedStatus::Fresh, "{:?}", first.status);
        assert_eq!(values(&first), values_of_range(1, 5));
        let reqs = srv.requests();
        assert_eq!(reqs.len(), 3, "5 objects in pages of 2");
        assert_eq!(reqs[0].1.get("accept").unwrap(), fetch::TAXII_MEDIA_TYPE);
        assert!(reqs[2].0.ends_with("next=4"), "{}", reqs[2].0);
        let cursor = iocsync::feeds::taxii_cursor_key(&s);
        assert_eq!(st.lock().unwrap().cursor(&cursor).unwrap().as_deref(), Some("2026-08-01T00:00:05.000Z"));

        // Nothing new: one request with added_after, status not-modified.
        srv.clear_log();
        let second = load(&s, &st, now()).await;
        assert_eq!(second.status, FeedStatus::NotModified, "{:?}", second.status);
        assert_eq!(values(&second), values_of_range(1, 5));
        let reqs = srv.requests();
        assert_eq!(reqs.len(), 1);
        assert!(reqs[0].0.contains("added_after=2026-08-01T00%3A00%3A05.000Z"), "{}", reqs[0].0);

        // One new indicator and a revoked version of indicator 2.
        objects
            .lock()
            .unwrap()
            .push(("2026-08-02T00:00:01.000Z".into(), indicator(6, "malware-6.xyz", t0, false)));
        objects.lock().unwrap().push((
            "2026-08-02T00:00:02.000Z".into(),
            indicator(2, "malware-2.xyz", "2026-08-02T00:00:00.000Z", true),
        ));
        srv.clear_log();
        let third = load(&s, &st, now()).await;
        assert_eq!(third.status, FeedStatus::Fresh, "{:?}", third.status);
        let expected: BTreeSet<String> = [1, 3, 4, 5, 6].iter().map(|i| format!("malware-{i}.xyz")).collect();
        assert_eq!(values(&third), expected);
        assert_eq!(srv.requests().len(), 1);
        assert_eq!(st.lock().unwrap().cursor(&cursor).unwrap().as_deref(), Some("2026-08-02T00:00:02.000Z"));
    }

    /// A TAXII server whose paging never advances is an error, not a hang.
    #[tokio::test]
    async fn taxii_paging_that_repeats_is_refused() {
        let srv = Server::start().await;
        srv.route(
            "/c/objects/",
            Route::ok(
                r#"{"more": true, "next": "same", "objects": [{"type":"indicator","id":"indicator--x"}]}"#,
            ),
        );
        let err = fetch::fetch_taxii(&client(), &srv.source("/c/objects/"), None, &opts(), &NoProgress)
            .await
            .unwrap_err();
        assert!(matches!(err, iocsync::fetch::FetchError::Taxii { .. }), "{err}");
        assert!(err.to_string().contains("same `next`"), "{err}");
        assert_eq!(srv.requests().len(), 2);
    }
}

/// Redirect rules, `Referer` and URL redaction through the binary, with two local servers; one
/// is made "public" by the test-only switch `IOCSYNC_TEST_PUBLIC_PORT`.
mod redirects {
    use super::{Route, Server};

    fn port_of(srv: &Server) -> u16 {
        srv.url("/").port().unwrap()
    }

    fn redirect_to(location: String) -> Route {
        Route::Fixed { status: 302, headers: vec![("location", location)], body: vec![], etag: None }
    }

    /// `iocsync parse URL` with extra environment; returns (exit code, stdout, stderr).
    async fn parse(url: String, vars: Vec<(&'static str, String)>) -> (i32, String, String) {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("iocsync"));
        cmd.args(["parse", "--format", "text", &url]).env_remove("RUST_LOG").env("NO_COLOR", "1");
        cmd.env_remove(iocsync::fetch::TEST_PUBLIC_PORT_VAR);
        for proxy in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
            cmd.env_remove(proxy);
        }
        cmd.envs(vars);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_public_feed_never_redirects_to_a_loopback_address_by_ip_or_by_name() {
        let public = Server::start().await;
        let private = Server::start().await;
        private.route("/internal", Route::ok("45.0.0.1\n"));
        let p = port_of(&private);
        public.route("/by-ip", redirect_to(format!("http://127.0.0.1:{p}/internal")));
        public.route("/by-name", redirect_to(format!("http://localhost:{p}/internal")));
        let as_public = vec![(iocsync::fetch::TEST_PUBLIC_PORT_VAR, port_of(&public).to_string())];
        for path in ["/by-ip", "/by-name"] {
            let (code, out, err) = parse(public.url(path).to_string(), as_public.clone()).await;
            assert_eq!(code, 1, "{path}: the redirect must fail\n{out}\n{err}");
            assert!(err.contains("may not redirect"), "{path}: {err}");
        }
        assert!(private.requests().is_empty(), "the private server was reached: {:?}", private.requests());

        // The same two servers, neither public: loopback to loopback is followed.
        let (code, out, err) = parse(public.url("/by-ip").to_string(), vec![]).await;
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(out.contains("accepted: 1"), "{out}");
        assert_eq!(private.requests().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn no_referer_is_sent_and_the_redirect_hop_limit_holds() {
        let first = Server::start().await;
        let second = Server::start().await;
        second.route("/feed", Route::ok("45.0.0.2\n"));
        first.route("/start", redirect_to(second.url("/feed").to_string()));
        let (code, out, err) = parse(first.url("/start?apikey=R3FERER-KEY").to_string(), vec![]).await;
        assert_eq!(code, 0, "{out}\n{err}");
        let reqs = second.requests();
        assert_eq!(reqs.len(), 1);
        assert!(reqs[0].1.get("referer").is_none(), "Referer sent: {:?}", reqs[0].1);
        assert!(!format!("{out}{err}").contains("R3FERER-KEY"), "{out}{err}");

        // A loop of redirects stops after MAX_REDIRECTS hops.
        for i in 0..10 {
            first.route(&format!("/hop{i}"), redirect_to(first.url(&format!("/hop{}", i + 1)).to_string()));
        }
        first.clear_log();
        let (code, _, err) = parse(first.url("/hop0").to_string(), vec![]).await;
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("too many redirects"), "{err}");
        assert_eq!(first.requests().len(), iocsync::fetch::MAX_REDIRECTS + 1);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn feed_url_secrets_never_reach_output_logs_or_the_state_database() {
        use crate::harness::{Env, EnvOptions, all_files};
        let feed = Server::start().await;
        feed.route("/feed.txt", Route::ok("45.0.0.3\n45.0.0.4\n"));
        let env = Env::start(EnvOptions::default()).await;
        let url = feed.url(
            "/feed.txt?apikey=APIKEY-S3CRET&X-Amz-Signature=AMZSIG-S3CRET&sig=AZSIG-S3CRET&token=TOK-S3CRET&n=1",
        );
        env.config(&format!(
            "[sync]\nstate = \"state/iocsync.db\"\n[[feeds]]\nname = \"f\"\nsource = \"{url}\"\nformat = \"text\"\n"
        ));
        for args in [&["-v", "sync"][..], &["--output", "json", "sync"], &["-v", "plan"]] {
            let mut all = args.to_vec();
            let log = env.path("iocsync.log");
            let log = log.to_str().unwrap();
            all.splice(0..0, ["--log-file", log]);
            let out = env.run(&all).await;
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let text =
                format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            for s in ["APIKEY-S3CRET", "AMZSIG-S3CRET", "AZSIG-S3CRET", "TOK-S3CRET"] {
                assert!(!text.contains(s), "{s} printed: {text}");
            }
        }
        assert_eq!(env.owned().len(), 2);
        let files = all_files(env.dir.path());
        assert!(files.iter().any(|(p, _)| p.ends_with("iocsync.db")), "no state database");
        for (path, bytes) in files {
            if path.ends_with("iocsync.toml") {
                continue;
            }
            let text = String::from_utf8_lossy(&bytes);
            for s in ["APIKEY-S3CRET", "AMZSIG-S3CRET", "AZSIG-S3CRET", "TOK-S3CRET"] {
                assert!(!text.contains(s), "{s} stored in {}", path.display());
            }
        }
    }
}
