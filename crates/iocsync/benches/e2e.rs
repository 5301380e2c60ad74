//! End-to-end benchmark: a 15,000-indicator sync against the local emulator with the documented
//! rate limits (time-scaled), next to the "classic" one-POST-per-indicator script under the same
//! limits. Prints a table of API calls per endpoint and wall times (medians), then the ratios.
//!
//! Run: `cargo bench -p iocsync --bench e2e` (release profile). Knobs (environment):
//! - `IOCSYNC_BENCH_SCALE` (default 600): the emulator's rate-limit windows and both clients'
//!   pacing are divided by it (600: a "minute" lasts 0.1 s, an "hour" 6 s).
//! - `IOCSYNC_BENCH_N` (default 15000): indicators in the feed.
//! - `IOCSYNC_BENCH_RUNS` (default 5): runs of the iocsync side (first sync + resync each).
//! - `IOCSYNC_BENCH_CLASSIC_RUNS` (default 3; 0 skips): runs of the classic side (first + resync).
//!
//! The classic side paces itself to the scaled 100/min and 1,500/h windows of `POST
//! /api/indicators` (a sliding window, the best any one-at-a-time script can do) and, should a 429
//! still arrive, sleeps `Retry-After / scale`. Both sides use one token and run in this process
//! on loopback against their own fresh emulator; everything stops by itself.

#![allow(clippy::print_stdout)]

use anyhow::{Context, bail};
use iocsync::config::Config;
use iocsync::engine::{SyncRequest, sync_all};
use iocsync_emulator::{ClientCredential, Emulator, EmulatorConfig, EndpointFamily, RateLimits, Role};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

const CLIENT_ID: &str = "5c0ffee0-1b2c-4d3e-8f40-5a6b7c8d9e0f";
const SECRET: &str = "bench-only-secret-never-printed-4b9e";
const SCOPE: &str = "https://api.securitycenter.microsoft.com/.default";

/// Benchmark settings read from the environment.
#[derive(Debug, Clone, Copy)]
struct Settings {
    scale: f64,
    n: usize,
    runs: usize,
    classic_runs: usize,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
            match std::env::var(name) {
                Ok(v) => v.trim().parse().map_err(|_| anyhow::anyhow!("{name}={v:?} is not a valid number")),
                Err(_) => Ok(default),
            }
        }
        let s = Settings {
            scale: var("IOCSYNC_BENCH_SCALE", 600.0)?,
            n: var("IOCSYNC_BENCH_N", 15_000)?,
            runs: var("IOCSYNC_BENCH_RUNS", 5)?,
            classic_runs: var("IOCSYNC_BENCH_CLASSIC_RUNS", 3)?,
        };
        if !(1.0..=10_000.0).contains(&s.scale) {
            bail!("IOCSYNC_BENCH_SCALE must be from 1 to 10000 (iocsync's time_scale range)");
        }
        if s.n == 0 || s.n > 15_000 {
            bail!("IOCSYNC_BENCH_N must be from 1 to 15000 (the tenant cap)");
        }
        if s.runs == 0 {
            bail!("IOCSYNC_BENCH_RUNS must be at least 1");
        }
        Ok(s)
    }
}

/// One measured sync: wall time, the emulator's call log counted per family, and 429s.
#[derive(Debug, Clone, Default)]
struct Sample {
    wall: Duration,
    calls: BTreeMap<&'static str, usize>,
    throttled: usize,
    /// Time the classic client spent sleeping in its pacer (zero for iocsync: not observable).
    paced: Duration,
}

impl Sample {
    fn total_calls(&self) -> usize {
        self.calls.values().sum()
    }
}

fn family_name(f: EndpointFamily) -> &'static str {
    match f {
        EndpointFamily::Token => "token",
        EndpointFamily::List => "list",
        EndpointFamily::Get => "get",
        EndpointFamily::Submit => "submit",
        EndpointFamily::Import => "import",
        EndpointFamily::Delete => "delete",
        EndpointFamily::BatchDelete => "batch_delete",
        EndpointFamily::AdvancedQueries => "advanced_queries",
        EndpointFamily::RunHuntingQuery => "run_hunting_query",
        EndpointFamily::Other => "other",
    }
}

/// Counts the emulator's call log per endpoint family, and the 429 answers.
fn count_calls(emu: &Emulator) -> (BTreeMap<&'static str, usize>, usize) {
    let mut calls = BTreeMap::new();
    let mut throttled = 0;
    for c in emu.calls() {
        *calls.entry(family_name(c.family)).or_insert(0) += 1;
        throttled += usize::from(c.throttled);
    }
    (calls, throttled)
}

/// A cheap deterministic 64-bit mix (splitmix64), so hashes look random but are reproducible.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `n` distinct public values, a quarter each of IPv4, domain, URL and SHA-256, with their
/// Defender `indicatorType` (what the classic script must send; iocsync detects it).
fn values(n: usize) -> Vec<(&'static str, String)> {
    (0..n)
        .map(|i| match i % 4 {
            0 => ("IpAddress", format!("45.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, (i & 0xff).max(1))),
            1 => ("DomainName", format!("c2-{i}.evil{}.com", i % 97)),
            2 => ("Url", format!("https://dl{i}.payload{}.net/p/{i}.exe", i % 89)),
            _ => {
                let k = i as u64;
                (
                    "FileSha256",
                    format!("{:016x}{:016x}{:016x}{:016x}", mix(k), mix(k + 1), mix(k + 2), mix(k + 3)),
                )
            }
        })
        .collect()
}

fn emulator_config(scale: f64) -> EmulatorConfig {
    EmulatorConfig {
        clients: vec![ClientCredential::with_secret(CLIENT_ID, SECRET, Role::ReadWriteAll, "iocsync-bench")],
        capacity: 15_000,
        rate_limits: RateLimits::documented().scaled(scale),
        ..EmulatorConfig::default()
    }
}

/// Writes the feed, the secret file (mode 600) and the config into `dir`; returns the config.
fn write_iocsync_setup(
    dir: &Path,
    emu: &Emulator,
    vals: &[(&'static str, String)],
    scale: f64,
) -> anyhow::Result<Config> {
    let mut feed = String::from("# iocsync e2e benchmark feed\n");
    for (_, v) in vals {
        feed.push_str(v);
        feed.push('\n');
    }
    std::fs::write(dir.join("feed.txt"), feed)?;
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
    }
    let base = emu.base_url();
    let text = format!(
        r#"[defender]
tenant_id = "{tenant}"
client_id = "{CLIENT_ID}"
client_secret = {{ file = "secret" }}
api_base = "{base}"
authority = "{base}"
time_scale = {scale:?}

[sync]
state = "iocsync.db"
capacity = 15000
headroom = 0

[defaults]
action = "Block"
severity = "High"

[[feeds]]
name = "bench"
source = "feed.txt"
format = "text"
"#,
        tenant = emu.tenant_id(),
    );
    let path = dir.join("iocsync.toml");
    std::fs::write(&path, &text)?;
    Config::from_toml(&text, &path).map_err(|e| anyhow::anyhow!("bench config is invalid: {e}"))
}

/// One sync through the real engine; checks it succeeded and made the expected changes.
async fn iocsync_sync(config: &Config, emu: &Emulator, expect_creates: usize) -> anyhow::Result<Sample> {
    emu.clear_calls();
    let start = Instant::now();
    let outcomes = sync_all(config, None, &SyncRequest::default()).await?;
    let wall = start.elapsed();
    let o = outcomes.first().context("sync_all returned no tenant")?;
    if let Some(e) = &o.error {
        bail!("iocsync sync failed: {e}");
    }
    let r = &o.report;
    if r.counts.create != expect_creates
        || !r.failed.is_empty()
        || r.capacity.owned_after != r.counts.create + r.counts.unchanged
    {
        bail!(
            "unexpected sync result: {} created (expected {expect_creates}), {} unchanged, {} failed, skipped {:?}",
            r.counts.create,
            r.counts.unchanged,
            r.failed.len(),
            r.skipped
        );
    }
    let (calls, throttled) = count_calls(emu);
    let writes: usize =
        ["submit", "import", "delete", "batch_delete"].iter().filter_map(|k| calls.get(k)).sum();
    if expect_creates == 0 && (o.has_changes() || writes > 0) {
        bail!("a resync with an unchanged feed planned changes or made {writes} write calls");
    }
    Ok(Sample { wall, calls, throttled, paced: Duration::ZERO })
}

/// The iocsync side: `runs` x (fresh emulator, first sync of `n`, resync with no change).
async fn iocsync_side(
    s: Settings,
    vals: &[(&'static str, String)],
) -> anyhow::Result<(Vec<Sample>, Vec<Sample>)> {
    let (mut first, mut resync) = (Vec::new(), Vec::new());
    for _ in 0..s.runs {
        let emu = iocsync_emulator::start(emulator_config(s.scale)).await?;
        let dir = tempfile::tempdir()?;
        let config = write_iocsync_setup(dir.path(), &emu, vals, s.scale)?;
        first.push(iocsync_sync(&config, &emu, vals.len()).await?);
        let held = emu.indicators().iter().filter(|i| i.created_by == CLIENT_ID).count();
        if held != vals.len() {
            bail!("after the first sync the emulator holds {held} indicators, expected {}", vals.len());
        }
        resync.push(iocsync_sync(&config, &emu, 0).await?);
        emu.shutdown().await;
    }
    Ok((first, resync))
}

/// A sliding-window pacer for one endpoint: at most `limit` calls in any `length`, per window.
#[derive(Debug)]
struct Pacer {
    windows: Vec<(usize, Duration)>,
    sent: VecDeque<Instant>,
}

impl Pacer {
    fn documented_submit(scale: f64) -> Pacer {
        Pacer {
            windows: vec![
                (100, Duration::from_secs(60).div_f64(scale)),
                (1500, Duration::from_secs(3600).div_f64(scale)),
            ],
            sent: VecDeque::new(),
        }
    }

    /// How long to wait before the next call may go.
    fn wait(&mut self, now: Instant) -> Duration {
        let longest = self.windows.iter().map(|w| w.1).max().unwrap_or_default();
        while self.sent.front().is_some_and(|t| now.duration_since(*t) >= longest) {
            self.sent.pop_front();
        }
        let mut wait = Duration::ZERO;
        for &(limit, length) in &self.windows {
            let in_window: Vec<&Instant> =
                self.sent.iter().filter(|t| now.duration_since(**t) < length).collect();
            if in_window.len() >= limit {
                let frees_at = *in_window[in_window.len() - limit] + length;
                wait = wait.max(frees_at.saturating_duration_since(now));
            }
        }
        wait
    }

    /// Records a call, stamped when its answer arrived (never earlier than the server saw it).
    fn record(&mut self, at: Instant) {
        self.sent.push_back(at);
    }
}

/// The classic script: one token, then one `POST /api/indicators` per value, paced.
async fn classic_sync(
    http: &reqwest::Client,
    emu: &Emulator,
    vals: &[(&'static str, String)],
    scale: f64,
    pacer: &mut Pacer,
) -> anyhow::Result<Sample> {
    emu.clear_calls();
    let base = emu.base_url();
    let start = Instant::now();
    let mut paced = Duration::ZERO;
    let token: serde_json::Value = http
        .post(format!("{base}/{}/oauth2/v2.0/token", emu.tenant_id()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("scope", SCOPE),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let bearer =
        format!("Bearer {}", token["access_token"].as_str().context("no access_token in the token answer")?);
    let expiry =
        (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (kind, value) in vals {
        let body = serde_json::json!({
            "indicatorValue": value,
            "indicatorType": kind,
            "action": "Block",
            "severity": "High",
            "title": format!("classic: {value}"),
            "description": "Imported one at a time by the classic script",
            "expirationTime": expiry,
            "generateAlert": true,
            "rbacGroupNames": [],
        });
        loop {
            let wait = pacer.wait(Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
                paced += wait;
            }
            let resp = http
                .post(format!("{base}/api/indicators"))
                .header(reqwest::header::AUTHORIZATION, &bearer)
                .json(&body)
                .send()
                .await?;
            pacer.record(Instant::now());
            let status = resp.status();
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                let secs: f64 = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(1.0);
                let wait = Duration::from_secs_f64(secs / scale);
                tokio::time::sleep(wait).await;
                paced += wait;
                continue;
            }
            if !status.is_success() {
                bail!(
                    "classic POST of {value} failed with {status}: {}",
                    resp.text().await.unwrap_or_default()
                );
            }
            break;
        }
    }
    let wall = start.elapsed();
    let (calls, throttled) = count_calls(emu);
    Ok(Sample { wall, calls, throttled, paced })
}

/// The classic side: `runs` x (fresh emulator, POST every value, then POST every value again).
async fn classic_side(
    s: Settings,
    vals: &[(&'static str, String)],
) -> anyhow::Result<(Vec<Sample>, Vec<Sample>)> {
    let http = iocsync_defender::tls::http_client_builder()?.build()?;
    let (mut first, mut resync) = (Vec::new(), Vec::new());
    for _ in 0..s.classic_runs {
        let emu = iocsync_emulator::start(emulator_config(s.scale)).await?;
        // One pacer per script process: the resync runs right after, as a cron job would.
        let mut pacer = Pacer::documented_submit(s.scale);
        first.push(classic_sync(&http, &emu, vals, s.scale, &mut pacer).await?);
        let held = emu.indicators().len();
        if held != vals.len() {
            bail!("after the classic run the emulator holds {held} indicators, expected {}", vals.len());
        }
        resync.push(classic_sync(&http, &emu, vals, s.scale, &mut pacer).await?);
        emu.shutdown().await;
    }
    Ok((first, resync))
}

/// The median sample by wall time (the lower middle for an even count); calls are the same in every run.
fn median(samples: &[Sample]) -> Option<Sample> {
    let mut v = samples.to_vec();
    v.sort_by_key(|s| s.wall);
    v.get((v.len().max(1) - 1) / 2).cloned()
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

fn row(label: &str, samples: &[Sample]) {
    let Some(m) = median(samples) else { return };
    let min = samples.iter().map(|s| s.wall).min().unwrap_or_default();
    let max = samples.iter().map(|s| s.wall).max().unwrap_or_default();
    let c = |k: &str| m.calls.get(k).copied().unwrap_or(0);
    println!(
        "| {label:<26} | {:>4} | {:>5} | {:>6} | {:>6} | {:>5} | {:>6} | {:>3} | {:>8} | {:>8} | {:>8} | {:>8} | {:>3} |",
        c("token"),
        c("list"),
        c("submit"),
        c("import"),
        c("batch_delete"),
        m.total_calls(),
        m.throttled,
        secs(m.wall),
        secs(min),
        secs(max),
        secs(m.paced),
        samples.len(),
    );
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 { format!("{:.1}x", a / b) } else { "n/a".into() }
}

/// When call `j` (0-based) of a one-at-a-time script can go at the earliest under the documented
/// `POST /api/indicators` limits (100/min, 1,500/h, fresh windows, zero request time).
fn submit_floor(j: usize) -> Duration {
    Duration::from_secs((j / 1500) as u64 * 3600 + ((j % 1500) / 100) as u64 * 60)
}

fn human(d: Duration) -> String {
    let t = d.as_secs_f64();
    if t >= 3600.0 {
        format!("{:.2} h", t / 3600.0)
    } else if t >= 60.0 {
        format!("{:.1} min", t / 60.0)
    } else {
        format!("{t:.2} s")
    }
}

async fn run(s: Settings) -> anyhow::Result<()> {
    let vals = values(s.n);
    println!(
        "iocsync e2e bench: {} indicators, documented rate limits scaled by {} (a 'minute' = {:.3} s, an 'hour' = {:.1} s)",
        s.n,
        s.scale,
        60.0 / s.scale,
        3600.0 / s.scale
    );
    let (i_first, i_resync) = iocsync_side(s, &vals).await?;
    let (c_first, c_resync) =
        if s.classic_runs > 0 { classic_side(s, &vals).await? } else { (Vec::new(), Vec::new()) };

    println!();
    println!(
        "| side                       | tok  | list  | submit | import | bdel  | calls  | 429 | median s | min s    | max s    | paced s  | runs |"
    );
    println!(
        "|----------------------------|------|-------|--------|--------|-------|--------|-----|----------|----------|----------|----------|-----|"
    );
    row("iocsync first sync", &i_first);
    row("iocsync resync (no change)", &i_resync);
    row("classic first sync", &c_first);
    row("classic resync (no change)", &c_resync);
    println!();
    if let (Some(i1), Some(i2)) = (median(&i_first), median(&i_resync)) {
        println!(
            "BENCH e2e scale={} n={} iocsync_first_s={:.3} iocsync_first_calls={} iocsync_resync_s={:.3} iocsync_resync_calls={}",
            s.scale,
            s.n,
            i1.wall.as_secs_f64(),
            i1.total_calls(),
            i2.wall.as_secs_f64(),
            i2.total_calls()
        );
        if let (Some(c1), Some(c2)) = (median(&c_first), median(&c_resync)) {
            println!(
                "BENCH e2e classic_first_s={:.3} classic_first_calls={} classic_resync_s={:.3} classic_resync_calls={}",
                c1.wall.as_secs_f64(),
                c1.total_calls(),
                c2.wall.as_secs_f64(),
                c2.total_calls()
            );
            println!();
            println!("Ratios (classic / iocsync, medians of this run):");
            println!(
                "  first sync: API calls {} ({} vs {}), wall time {} ({} s vs {} s)",
                ratio(c1.total_calls() as f64, i1.total_calls() as f64),
                c1.total_calls(),
                i1.total_calls(),
                ratio(c1.wall.as_secs_f64(), i1.wall.as_secs_f64()),
                secs(c1.wall),
                secs(i1.wall)
            );
            println!(
                "  resync:     API calls {} ({} vs {}), wall time {} ({} s vs {} s)",
                ratio(c2.total_calls() as f64, i2.total_calls() as f64),
                c2.total_calls(),
                i2.total_calls(),
                ratio(c2.wall.as_secs_f64(), i2.wall.as_secs_f64()),
                secs(c2.wall),
                secs(i2.wall)
            );
            println!(
                "  write calls, first sync: {} single POSTs vs {} imports",
                c1.calls.get("submit").copied().unwrap_or(0),
                i1.calls.get("import").copied().unwrap_or(0)
            );
            println!();
            println!("Unscaled equivalents of the classic side (documented limits, scale 1):");
            let n = s.n;
            for (label, sample, floor) in [
                ("first sync", &c1, submit_floor(n - 1)),
                ("resync    ", &c2, submit_floor(2 * n - 1).saturating_sub(submit_floor(n - 1))),
            ] {
                println!(
                    "  {label}: measured wall x {} = {} (pacing waits {:.0}% of wall); floor of the limits = {}",
                    s.scale,
                    human(sample.wall.mul_f64(s.scale)),
                    100.0 * sample.paced.as_secs_f64() / sample.wall.as_secs_f64().max(f64::EPSILON),
                    human(floor)
                );
            }
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(settings))
}
