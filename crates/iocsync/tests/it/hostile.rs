//! Hostile input: a 2 GiB streamed feed, 1 MiB lines, binary garbage through every format,
//! 100,000-deep JSON, a 100,000-object STIX bundle, and a feed full of values that must never be
//! blocked. Each goes through the real binary (`parse` or `sync`) where practical, else through
//! the library; none may panic, hang, overflow the stack, grow memory past the cap, or delete.

use crate::chaos::SplitMix;
use crate::harness::{Env, EnvOptions, public_ips, text_feed};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use iocsync_ioc::{Format, ParseOptions};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

const MIB: u64 = 1 << 20;
const FORMATS: [&str; 8] = ["auto", "text", "csv", "hosts", "stix", "misp", "taxii", "defender-csv"];

/// Runs `iocsync --output json parse FILE ARGS...` in `dir` (blocking; no config needed).
fn parse_cli(dir: &Path, file: &str, args: &[&str]) -> (Output, Option<serde_json::Value>) {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("iocsync"));
    cmd.args(["--output", "json", "parse", file]).args(args);
    cmd.env_remove("RUST_LOG").env("NO_COLOR", "1").current_dir(dir).stdin(Stdio::null());
    crate::harness::isolate_state(&mut cmd, dir);
    let out = cmd.output().expect("iocsync runs");
    let json = serde_json::from_slice(&out.stdout).ok();
    (out, json)
}

/// Asserts a clean outcome: exit 0 with a parse report, or exit 1 with an error document
/// (never a panic, which exits 101, nor a signal such as a stack overflow's SIGSEGV/SIGABRT).
fn assert_clean(out: &Output, json: Option<&serde_json::Value>, label: &str) -> i32 {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("{label}: killed by a signal ({:?}); stderr: {stderr}", out.status));
    assert!(!stderr.contains("panicked"), "{label}: panicked: {stderr}");
    let json = json
        .unwrap_or_else(|| panic!("{label}: stdout is not one JSON document; exit {code}; stderr: {stderr}"));
    match code {
        0 => assert!(json.get("accepted").is_some() && json.get("rejected").is_some(), "{label}: {json}"),
        1 => assert!(json["error"].as_str().is_some_and(|m| !m.is_empty()), "{label}: {json}"),
        other => panic!("{label}: exit {other}; stderr: {stderr}"),
    }
    code
}

fn sum(v: &serde_json::Value) -> u64 {
    v.as_object().map_or(0, |o| o.values().filter_map(serde_json::Value::as_u64).sum())
}

// ------------------------------------------------------------------ a 2 GiB streamed feed

/// What the streaming server saw.
#[derive(Default)]
struct Streamed {
    /// 0: the small good feed; 1: the 2 GiB stream, chunked; 2: the same with `Content-Length`.
    mode: AtomicU8,
    /// Bytes handed to the HTTP server for the stream.
    sent: AtomicU64,
    /// The stream was dropped (finished or the client hung up).
    dropped: AtomicBool,
}

/// Marks the stream dropped when hyper drops it.
struct DropFlag(Arc<Streamed>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::SeqCst);
    }
}

async fn stream_handler(State(st): State<Arc<Streamed>>) -> Response {
    let mode = st.mode.load(Ordering::SeqCst);
    if mode == 0 {
        return ([(header::CONTENT_TYPE, "text/plain")], text_feed(&public_ips(50, 70_000))).into_response();
    }
    // 64 KiB of valid feed lines, repeated up to 2 GiB, generated lazily (nothing buffered).
    let mut chunk = String::with_capacity(64 * 1024 + 32);
    let mut i = 0usize;
    while chunk.len() < 64 * 1024 {
        chunk.push_str(&format!("46.{}.{}.{}\n", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff));
        i += 1;
    }
    let chunk = Bytes::from(chunk);
    let total: u64 = 2 << 30;
    st.sent.store(0, Ordering::SeqCst);
    st.dropped.store(false, Ordering::SeqCst);
    let flag = DropFlag(st);
    let stream = futures::stream::unfold((0u64, flag), move |(done, flag)| {
        let chunk = chunk.clone();
        async move {
            if done >= total {
                return None;
            }
            flag.0.sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            let next = done + chunk.len() as u64;
            Some((Ok::<_, std::io::Error>(chunk), (next, flag)))
        }
    });
    let mut resp = ([(header::CONTENT_TYPE, "text/plain")], Body::from_stream(stream)).into_response();
    if mode == 2 {
        resp.headers_mut().insert(header::CONTENT_LENGTH, header::HeaderValue::from(total));
    }
    resp
}

/// Peak resident memory (VmHWM) of a live process, in bytes.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs `sync --output json` while sampling the child's peak RSS (bounded: 60 s, then killed).
async fn sync_sampling_rss(env: &Env) -> (Output, serde_json::Value, u64) {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("iocsync"));
    cmd.arg("--config").arg(env.path("iocsync.toml")).args(["--output", "json", "sync"]);
    cmd.env("IOCSYNC_TEST_SECRET", crate::harness::SECRET).current_dir(env.dir.path());
    crate::harness::isolate_state(&mut cmd, env.dir.path());
    sampling_rss(cmd).await
}

/// Runs `cmd` (an `--output json` command) while sampling its peak RSS (bounded: 60 s, then
/// killed); returns its output, its JSON document and the peak.
async fn sampling_rss(mut cmd: Command) -> (Output, serde_json::Value, u64) {
    cmd.env_remove("RUST_LOG").env("NO_COLOR", "1");
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    // Drain stdout and stderr while sampling, so a long streamed document or a long log never
    // blocks the child on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).map(|_| buf)
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut buf).map(|_| buf)
    });
    let mut peak = 0u64;
    let mut finished = false;
    for _ in 0..6_000 {
        if let Some(hwm) = vm_hwm(pid) {
            peak = peak.max(hwm);
        }
        if child.try_wait().unwrap().is_some() {
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if !finished {
        let _ = child.kill();
    }
    let mut out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    out.stdout = reader.join().unwrap().unwrap();
    out.stderr = err_reader.join().unwrap().unwrap();
    assert!(finished, "the command did not finish within 60 s");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    assert!(peak > 0, "VmHWM was never sampled");
    (out, report, peak)
}

/// `values`, one a line, over and over until the text holds at least `bytes` bytes.
fn repeated(values: &[String], bytes: u64) -> String {
    let mut text = String::with_capacity(bytes as usize + 64);
    while (text.len() as u64) < bytes {
        for v in values {
            text.push_str(v);
            text.push('\n');
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parse_memory_is_bound_by_the_distinct_values_not_the_file() {
    // 48 MiB of text holding 1,000 distinct public addresses: `parse` reads it line by line and
    // keeps only the distinct values, so its peak RSS stays far below the file's size (the
    // whole-document parser it replaced held the 48 MiB body, then every value twice).
    let dir = tempfile::tempdir().unwrap();
    let distinct = public_ips(1_000, 11);
    let text = repeated(&distinct, 48 * MIB);
    std::fs::write(dir.path().join("big.txt"), &text).unwrap();
    let lines = text.lines().count() as u64;
    drop(text);
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("iocsync"));
    cmd.args(["--output", "json", "parse", "big.txt", "--format", "text"]).current_dir(dir.path());
    let (out, json, peak) = sampling_rss(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json["lines"], lines);
    assert_eq!(json["accepted"]["IpAddress"], 1_000);
    assert_eq!(json["duplicates"], lines - 1_000);
    assert!(peak < 32 * MIB, "peak RSS {} MiB while parsing a 48 MiB feed of 1,000 values", peak / MIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_memory_is_bound_by_the_distinct_values_not_the_file() {
    // The same 48 MiB text feed of 1,000 distinct public addresses, served over HTTP to `sync`:
    // the download goes to a private temporary file, is parsed line by line from it and copied
    // into the state database without being held whole, and the second run (same body) knows
    // it unchanged by its SHA-256 instead of loading the cached copy. The whole-body code held
    // the download, the cached copy next to it and SQLite's copies of the blob: 226 and 225 MiB
    // peak (debug build); now the peak is that of a sync of the same values in a small feed.
    let env = Env::start(EnvOptions::default()).await;
    let distinct = public_ips(1_000, 11);
    let text = repeated(&distinct, 48 * MIB);
    let big = Bytes::from(text.into_bytes());
    let small = Bytes::from(text_feed(&distinct).into_bytes());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/big.txt", get(move || std::future::ready(big.clone())))
        .route("/small.txt", get(move || std::future::ready(small.clone())));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = |file: &str| {
        env.config(&format!(
            "[sync]\nstate = \"state/iocsync.db\"\n\
             [[feeds]]\nname = \"big\"\nsource = \"http://{addr}/{file}\"\nformat = \"text\"\n"
        ));
    };
    config("big.txt");
    let mut peaks = Vec::new();
    // Runs 1 and 2: the 48 MiB body, new then unchanged; run 3: the same values in one small
    // copy, for the fixed cost of a sync (the binary, the runtime, the plan).
    for run in [1, 2, 3] {
        if run == 3 {
            config("small.txt");
        }
        let (out, report, peak) = sync_sampling_rss(&env).await;
        assert_eq!(out.status.code(), Some(0), "run {run}: {report}");
        assert_eq!(report["feeds"][0]["status"], "ok", "run {run}: {report}");
        assert_eq!(report["feeds"][0]["accepted"], 1_000, "run {run}: {report}");
        assert_eq!(report["feeds"][0]["rejected"], 0, "run {run}: {report}");
        assert_eq!(env.owned().len(), 1_000, "run {run}");
        peaks.push(peak / MIB);
    }
    let [first, second, fixed] = peaks[..] else { unreachable!() };
    assert!(
        first < 44 && second < 44 && first <= fixed + 6 && second <= fixed + 6,
        "peak RSS {first} MiB (first run) and {second} MiB (unchanged second run) syncing a 48 MiB \
         feed of 1,000 values, against {fixed} MiB for the same values in a 14 KiB feed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2_gib_streamed_feed_is_cut_at_the_cap_without_memory_growth_and_deletes_nothing() {
    let env = Env::start(EnvOptions::default()).await;
    let st = Arc::new(Streamed::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/feed.txt", get(stream_handler)).with_state(st.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let cap = 4 * MIB;
    env.config(&format!(
        "[sync]\nstate = \"state/iocsync.db\"\nmax_feed_bytes = {cap}\n\
         [[feeds]]\nname = \"big\"\nsource = \"http://{addr}/feed.txt\"\nformat = \"text\"\n"
    ));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(env.owned().len(), 50);

    st.mode.store(1, Ordering::SeqCst);
    env.emu.clear_calls();
    let (out, report, peak) = sync_sampling_rss(&env).await;
    assert_eq!(out.status.code(), Some(3), "a fallback is a partial run: {report}");
    assert_eq!(report["feeds"][0]["status"], "last-good", "{report}");
    assert_eq!(report["counts"]["delete"], 0, "{report}");
    assert_eq!(env.write_calls(), 0, "{report}");
    assert_eq!(env.owned().len(), 50, "nothing deleted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("4194304") || stderr.to_lowercase().contains("larger"),
        "the size cap is named: {stderr}"
    );

    // The client hung up soon after the cap: the server stopped long before 2 GiB.
    for _ in 0..1_000 {
        if st.dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(st.dropped.load(Ordering::SeqCst), "the stream was never dropped: the client did not hang up");
    let sent = st.sent.load(Ordering::SeqCst);
    assert!(sent > cap, "the client must read up to the cap before refusing ({sent} bytes sent)");
    assert!(sent < cap + 32 * MIB, "{sent} bytes sent for a {cap}-byte cap: the client kept reading");
    assert!(peak < 128 * MIB, "peak RSS {} MiB while refusing a 2 GiB feed", peak / MIB);

    // Declared up front (`Content-Length: 2 GiB`): refused on the header, same fallback.
    st.mode.store(2, Ordering::SeqCst);
    let (out, report, peak) = sync_sampling_rss(&env).await;
    assert_eq!(out.status.code(), Some(3), "{report}");
    assert_eq!(report["feeds"][0]["status"], "last-good", "{report}");
    assert_eq!(env.write_calls(), 0, "{report}");
    assert_eq!(env.owned().len(), 50, "nothing deleted");
    for _ in 0..1_000 {
        if st.dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let declared_sent = st.sent.load(Ordering::SeqCst);
    assert!(declared_sent < cap + 32 * MIB, "{declared_sent} bytes sent although 2 GiB was declared");
    assert!(peak < 128 * MIB, "peak RSS {} MiB", peak / MIB);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gzip_bomb_is_cut_at_the_cap_and_deletes_nothing() {
    use std::io::Write;
    let env = Env::start(EnvOptions::default()).await;
    env.write("feed.txt", &text_feed(&public_ips(40, 75_000)));
    env.config(
        "[sync]\nstate = \"state/iocsync.db\"\nmax_feed_bytes = 4194304\n\
         [[feeds]]\nname = \"bomb\"\nsource = \"feed.txt\"\nformat = \"text\"\n",
    );
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    assert_eq!(env.owned().len(), 40);

    // One gzip member of 1 MiB of one feed line, repeated 1,024 times: 1 GiB inflated from a
    // ~1 MiB file, under the cap (multi-member gzip is valid and decoded as one stream).
    let lines = "47.1.2.3\n".repeat(MIB as usize / 9);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(lines.as_bytes()).unwrap();
    let member = enc.finish().unwrap();
    let bomb: Vec<u8> = member.iter().copied().cycle().take(member.len() * 1_024).collect();
    assert!((bomb.len() as u64) < 4 * MIB, "the compressed file itself is under the cap");
    std::fs::write(env.path("feed.txt"), &bomb).unwrap();

    env.emu.clear_calls();
    let (out, report, peak) = sync_sampling_rss(&env).await;
    assert_eq!(out.status.code(), Some(3), "{report}");
    assert_eq!(report["feeds"][0]["status"], "last-good", "{report}");
    assert_eq!(report["counts"]["delete"], 0, "{report}");
    assert_eq!(env.write_calls(), 0);
    assert_eq!(env.owned().len(), 40);
    assert!(peak < 128 * MIB, "peak RSS {} MiB while refusing a 1 GiB gzip bomb", peak / MIB);
}

// ------------------------------------------------------------------ 1 MiB lines

#[test]
fn lines_of_one_mib_are_rejected_and_do_not_hide_their_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let long_ip_like = "4".repeat(MIB as usize);
    let long_url =
        format!("https://{}.example.com/{}", "a".repeat(MIB as usize / 2), "p".repeat(MIB as usize / 2));
    let text = format!("45.10.0.1\n{long_ip_like}\n45.10.0.2\n{long_url}\nevil-neighbour.com\n");
    std::fs::write(dir.path().join("long.txt"), &text).unwrap();
    let (out, json) = parse_cli(dir.path(), "long.txt", &["--format", "text"]);
    assert_eq!(assert_clean(&out, json.as_ref(), "text 1 MiB"), 0);
    let json = json.unwrap();
    assert_eq!(json["accepted"]["IpAddress"], 2, "{}", json["accepted"]);
    assert_eq!(json["accepted"]["DomainName"], 1, "{}", json["accepted"]);
    assert_eq!(sum(&json["rejected"]), 2, "{}", json["rejected"]);
    assert_eq!(json["lines"], 5);

    let csv = format!(
        "indicator,comment\n45.10.0.3,ok\n{long_ip_like},x\n\"{long_url}\",\"{}\"\n45.10.0.4,\"{}\"\n",
        "c".repeat(MIB as usize),
        "q".repeat(MIB as usize)
    );
    std::fs::write(dir.path().join("long.csv"), &csv).unwrap();
    let (out, json) = parse_cli(dir.path(), "long.csv", &["--format", "csv", "--column", "indicator"]);
    assert_eq!(assert_clean(&out, json.as_ref(), "csv 1 MiB"), 0);
    let json = json.unwrap();
    assert_eq!(json["accepted"]["IpAddress"], 2, "{json:?}");
    assert_eq!(sum(&json["rejected"]), 2, "{}", json["rejected"]);

    // An unterminated quote swallows the rest of the file: a clean result either way.
    let open_quote = format!("indicator\n45.10.0.5\n\"{}\n45.10.0.6\n", "z".repeat(MIB as usize));
    std::fs::write(dir.path().join("quote.csv"), &open_quote).unwrap();
    let (out, json) = parse_cli(dir.path(), "quote.csv", &["--format", "csv", "--column", "indicator"]);
    if assert_clean(&out, json.as_ref(), "csv open quote") == 0 {
        assert_eq!(json.unwrap()["accepted"]["IpAddress"], 1, "the row before the quote is kept");
    }
}

// ------------------------------------------------------------------ binary garbage

/// Garbage documents: random bytes, NULs, invalid UTF-8, and random bytes that open like JSON
/// or CSV. Each carries one valid line so that a parser that gives up early is noticed.
fn garbage(seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = SplitMix(seed);
    let mut random = |n: usize| (0..n).map(|_| rng.next() as u8).collect::<Vec<u8>>();
    let valid = b"\n45.77.1.2\n".to_vec();
    let mut docs = Vec::new();
    let mut r = random(128 * 1024);
    r.extend_from_slice(&valid);
    r.extend(random(1024));
    docs.push(("random".to_owned(), r));
    let mut nul = vec![0u8; 64 * 1024];
    nul.extend_from_slice(&valid);
    nul.extend(vec![0u8; 1024]);
    docs.push(("nul".to_owned(), nul));
    let bad_utf8: &[&[u8]] = &[
        b"\xc3\x28\n",
        b"\xff\xfe\xfd\n",
        b"\xe2\x82\n",
        b"\xf0\x28\x8c\x28\n",
        b"\xed\xa0\x80.com\n",
        b"evil\xc0\xaf.com\n",
        b"http://\xf8\x88\x80\x80\x80/x\n",
        b"45.1.2.\xff\n",
    ];
    let mut u = Vec::new();
    for _ in 0..200 {
        for s in bad_utf8 {
            u.extend_from_slice(s);
        }
    }
    u.extend_from_slice(&valid);
    docs.push(("invalid-utf8".to_owned(), u));
    for open in [
        &b"{\"objects\":["[..],
        b"[{\"type\":\"indicator\",\"pattern\":\"[",
        b"{\"Event\":{\"Attribute\":[{\"value\":\"",
    ] {
        let mut j = open.to_vec();
        j.extend(random(16 * 1024));
        j.extend_from_slice(&valid);
        docs.push((format!("json-ish {}", String::from_utf8_lossy(&open[..2])), j));
    }
    let mut c = b"indicator,type,action\n".to_vec();
    for _ in 0..500 {
        let mut row = random(40);
        for b in &mut row {
            if *b % 7 == 0 {
                *b = b'"';
            } else if *b % 5 == 0 {
                *b = b',';
            }
        }
        c.extend(row);
        c.push(b'\n');
    }
    c.extend_from_slice(b"45.77.1.2,IpAddress,Block\n");
    c.extend_from_slice(&valid);
    docs.push(("csv-ish".to_owned(), c));
    docs
}

#[test]
fn binary_garbage_through_every_format_gives_a_result_or_a_clean_error() {
    // Library: many seeds, every format. Accepted values must be clean text.
    let now = chrono::Utc::now();
    let mut ok = 0;
    for seed in 0..12 {
        for (name, doc) in garbage(seed) {
            for f in FORMATS {
                let format: Format = f.parse().unwrap();
                match iocsync_ioc::parse(&doc, &ParseOptions::new(format, now)) {
                    Ok(p) => {
                        ok += 1;
                        for ioc in &p.iocs {
                            assert!(
                                !ioc.value.is_empty()
                                    && !ioc.value.chars().any(|c| c.is_control() || c == '\u{fffd}'),
                                "{f}/{name}/{seed}: accepted a dirty value {:?}",
                                ioc.value
                            );
                        }
                        if matches!(format, Format::Text) {
                            assert!(
                                p.iocs.iter().any(|i| i.value == "45.77.1.2"),
                                "{f}/{name}/{seed}: the valid line inside the garbage was lost"
                            );
                        }
                    }
                    Err(e) => assert!(!e.to_string().is_empty()),
                }
            }
        }
    }
    assert!(ok > 0);

    // The real binary: one document of each kind, every format.
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, doc)) in garbage(99).into_iter().enumerate() {
        let file = format!("garbage{i}.bin");
        std::fs::write(dir.path().join(&file), &doc).unwrap();
        for f in FORMATS {
            let (out, json) = parse_cli(dir.path(), &file, &["--format", f]);
            let code = assert_clean(&out, json.as_ref(), &format!("{name} as {f}"));
            if f == "text" {
                assert_eq!(code, 0);
                assert!(
                    json.unwrap()["accepted"]["IpAddress"].as_u64() >= Some(1),
                    "{name}: lost the valid line"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_feed_turned_to_garbage_falls_back_and_deletes_nothing() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(60, 80_000);
    env.write("feed.txt", &text_feed(&ips));
    env.config(
        "[sync]\nstate = \"state/iocsync.db\"\n[[feeds]]\nname = \"g\"\nsource = \"feed.txt\"\nformat = \"text\"\n",
    );
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    assert_eq!(env.owned().len(), 60);
    let (_, doc) = garbage(7).into_iter().next().unwrap();
    std::fs::write(env.path("feed.txt"), doc).unwrap();
    env.emu.clear_calls();
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["feeds"][0]["status"], "last-good", "{report}");
    assert_eq!(report["counts"]["delete"], 0, "{report}");
    assert_eq!(env.write_calls(), 0);
    assert_eq!(env.owned().len(), 60);
}

// ------------------------------------------------------------------ deep JSON

#[test]
fn json_nested_100000_deep_is_a_clean_error_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let depth = 100_000;
    let arrays = "[".repeat(depth);
    let objects = "{\"a\":".repeat(depth);
    let closed = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let in_event =
        format!("{{\"Event\":{{\"Attribute\":[{{\"value\":{}{}}}]}}}}", "[".repeat(depth), "]".repeat(depth));
    for (name, doc) in
        [("arrays", &arrays), ("objects", &objects), ("closed", &closed), ("in-event", &in_event)]
    {
        let file = format!("{name}.json");
        std::fs::write(dir.path().join(&file), doc).unwrap();
        for f in ["stix", "misp", "taxii"] {
            let (out, json) = parse_cli(dir.path(), &file, &["--format", f]);
            let code = assert_clean(&out, json.as_ref(), &format!("{name} as {f}"));
            assert_eq!(code, 1, "{name} as {f}: a 100,000-deep document is not a valid {f} document");
        }
        let (out, json) = parse_cli(dir.path(), &file, &["--format", "auto"]);
        assert_clean(&out, json.as_ref(), &format!("{name} as auto"));
    }

    // Deep nesting inside a STIX pattern (the hand-written pattern parser) is a per-object reject.
    let pattern = format!("{}[ipv4-addr:value = '45.1.2.3']{}", "(".repeat(depth), ")".repeat(depth));
    let bundle = serde_json::json!({"type": "bundle", "id": "bundle--1", "objects": [
        {"type": "indicator", "pattern": pattern, "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z"},
        {"type": "indicator", "pattern": "[ipv4-addr:value = '45.1.2.4']", "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z"}
    ]});
    std::fs::write(dir.path().join("pattern.json"), bundle.to_string()).unwrap();
    let (out, json) = parse_cli(dir.path(), "pattern.json", &["--format", "stix"]);
    assert_eq!(assert_clean(&out, json.as_ref(), "deep pattern"), 0);
    let json = json.unwrap();
    assert_eq!(json["accepted"]["IpAddress"], 1, "{json}");
    assert_eq!(sum(&json["rejected"]), 1, "{}", json["rejected"]);
}

// ------------------------------------------------------------------ a huge STIX bundle

#[test]
fn a_stix_bundle_with_100000_objects_parses_and_counts_right() {
    let dir = tempfile::tempdir().unwrap();
    let good = public_ips(99_000, 200_000);
    let mut objects: Vec<serde_json::Value> = good
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            serde_json::json!({
                "type": "indicator", "spec_version": "2.1", "id": format!("indicator--{i:08}-0000-4000-8000-000000000000"),
                "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
                "pattern": format!("[ipv4-addr:value = '{ip}']"), "pattern_type": "stix",
                "valid_from": "2024-01-01T00:00:00Z"
            })
        })
        .collect();
    // 1,000 private addresses: rejected with their reason, counted, not accepted.
    for i in 0..1_000u32 {
        objects.push(serde_json::json!({
            "type": "indicator", "pattern": format!("[ipv4-addr:value = '10.9.{}.{}']", i / 250, i % 250 + 1),
            "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z"
        }));
    }
    let bundle = serde_json::json!({"type": "bundle", "id": "bundle--big", "objects": objects});
    std::fs::write(dir.path().join("big.json"), bundle.to_string()).unwrap();
    let (out, json) = parse_cli(dir.path(), "big.json", &["--format", "stix"]);
    assert_eq!(assert_clean(&out, json.as_ref(), "100k bundle"), 0);
    let json = json.unwrap();
    assert_eq!(json["lines"], 100_000);
    assert_eq!(json["accepted"]["IpAddress"], 99_000);
    assert_eq!(json["rejected"]["private-address"], 1_000, "{}", json["rejected"]);
    assert_eq!(json["indicators"].as_array().map(Vec::len), Some(99_000));
    assert_eq!(json["indicators"][98_999]["value"], good[98_999].as_str());
}

// ------------------------------------------------------------------ values that must never be blocked

#[tokio::test(flavor = "multi_thread")]
async fn microsoft_resolvers_the_users_allowlist_and_private_addresses_never_reach_the_tenant() {
    let env = Env::start(EnvOptions::default()).await;
    let good = public_ips(5, 90_000);
    let dangerous = [
        "microsoft.com",
        "login.microsoftonline.com",
        "www.office.com/x",
        "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "8.8.8.8",
        "partner-example.com",
        "cdn.partner-example.com",
        "https://portal.partner-example.com/login",
    ];
    let private = ["10.0.0.1", "192.168.1.1"];
    let mut lines: Vec<String> = good.clone();
    lines.extend(dangerous.iter().map(|s| (*s).to_owned()));
    lines.extend(private.iter().map(|s| (*s).to_owned()));
    env.write("feed.txt", &text_feed(&lines));
    env.config(
        "[sync]\nstate = \"state/iocsync.db\"\n[allowlist]\nvalues = [\"partner-example.com\"]\n\
         [[feeds]]\nname = \"mixed\"\nsource = \"feed.txt\"\nformat = \"text\"\n",
    );
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["skipped"]["allowlisted"], dangerous.len() as u64, "{report}");
    assert_eq!(report["skipped"]["private-address"], private.len() as u64, "{report}");
    assert_eq!(report["counts"]["create"], good.len() as u64, "{report}");
    let values: Vec<String> =
        env.emu.indicators().into_iter().map(|i| i.indicator_value.to_ascii_lowercase()).collect();
    for bad in ["microsoft", "office.com", "8.8.8.8", "partner-example", "10.0.0.1", "192.168."] {
        assert!(!values.iter().any(|v| v.contains(bad)), "{bad} reached the tenant: {values:?}");
    }
    let mut sorted = values.clone();
    sorted.sort();
    let mut want = good.clone();
    want.sort();
    assert_eq!(sorted, want, "only the public, non-allowlisted values are pushed");
    // `plan` names the same reasons.
    let (_, plan) = env.run_json(&["plan"]).await;
    assert_eq!(plan["skipped"]["allowlisted"], dangerous.len() as u64, "{plan}");
}

// ------------------------------------------------------------------ feeds that never finish

async fn stalling_handler() -> Response {
    // Headers and one line, then nothing ever again (a slowloris feed).
    let first = futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"45.200.0.1\n")) });
    let stream = futures::StreamExt::chain(first, futures::stream::pending());
    ([(header::CONTENT_TYPE, "text/plain")], Body::from_stream(stream)).into_response()
}

#[tokio::test(flavor = "multi_thread")]
async fn feeds_that_stall_or_never_answer_time_out_and_delete_nothing() {
    let env = Env::start(EnvOptions::default()).await;
    // A server that stalls mid-body, and a socket that accepts and never answers at all.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stall = listener.local_addr().unwrap();
    let app = Router::new().route("/feed.txt", get(stalling_handler));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mute = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mute_addr = mute.local_addr().unwrap();
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    tokio::spawn({
        let held = held.clone();
        async move {
            while let Ok((sock, _)) = mute.accept().await {
                held.lock().unwrap().push(sock);
            }
        }
    });
    let good = public_ips(30, 95_000);
    env.write("stall.txt", &text_feed(&good[..15]));
    env.write("mute.txt", &text_feed(&good[15..]));
    let cfg = |a: &str, b: &str| {
        format!(
            "[sync]\nstate = \"state/iocsync.db\"\nfeed_timeout = \"2s\"\n\
             [[feeds]]\nname = \"stall\"\nsource = \"{a}\"\nformat = \"text\"\n\
             [[feeds]]\nname = \"mute\"\nsource = \"{b}\"\nformat = \"text\"\n"
        )
    };
    env.config(&cfg("stall.txt", "mute.txt"));
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    assert_eq!(env.owned().len(), 30);

    // Same feed names, now served by the hostile endpoints: a new source starts clean, so each
    // fails, and the previous source's copy still protects its values.
    env.config(&cfg(&format!("http://{stall}/feed.txt"), &format!("http://{mute_addr}/feed.txt")));
    env.emu.clear_calls();
    let (out, report, _) = sync_sampling_rss(&env).await;
    assert_eq!(out.status.code(), Some(3), "{report}");
    assert_eq!(report["feeds"][0]["status"], "failed", "{report}");
    assert_eq!(report["feeds"][1]["status"], "failed", "{report}");
    assert_eq!(report["counts"]["delete"], 0, "{report}");
    assert_eq!(env.write_calls(), 0);
    assert_eq!(env.owned().len(), 30);
    assert!(!held.lock().unwrap().is_empty(), "the mute server was never contacted");
}

/// Other spellings of values that must never be blocked: case, trailing dots, defanging, ports,
/// userinfo, IPv4-mapped IPv6, numeric IPv4 forms, /32 CIDRs, long IPv6 forms.
const EVASIVE: &[&str] = &[
    "MICROSOFT.COM",
    "microsoft.com.",
    "microsoft[.]com",
    "hxxps://login.microsoftonline[.]com/x",
    "https://login.microsoftonline.com:443/common",
    "https://evil@microsoft.com/",
    "https://microsoft.com@evil.example/",
    "http://8.8.8.8/dns",
    "8.8.8.8:53",
    "::ffff:8.8.8.8",
    "::ffff:10.0.0.1",
    "::ffff:a00:1",
    "134744072",
    "010.0.0.1",
    "0x0a000001",
    "10.0.0.1/32",
    "8.8.8.8/32",
    "fd00::1",
    "2001:4860:4860::8888",
    "2001:4860:4860:0000:0000:0000:0000:8888",
    "http://[::1]/",
    "http://127.0.0.1:8080/x",
    "http://10.0.0.1/x",
    "http://0x7f000001/",
    "http://2130706433/",
    "www.office.com./x",
    "WWW.OFFICE.COM/x",
    "login.microsoftonline.com%2eevil.example",
];

#[tokio::test(flavor = "multi_thread")]
async fn evasive_spellings_of_allowlisted_and_private_values_never_reach_the_tenant() {
    let env = Env::start(EnvOptions::default()).await;
    let mut lines: Vec<String> = EVASIVE.iter().map(|s| (*s).to_owned()).collect();
    lines.push("evil-control.com".to_owned());
    env.write("feed.txt", &text_feed(&lines));
    env.config(
        "[sync]\nstate = \"state/iocsync.db\"\nmax_reject_fraction = 1.0\n\
         [[feeds]]\nname = \"evasive\"\nsource = \"feed.txt\"\nformat = \"text\"\n",
    );
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    let pushed: Vec<String> = env.owned().into_iter().map(|i| i.indicator_value).collect();
    assert_eq!(pushed, vec!["evil-control.com".to_owned()], "{report}");
}
