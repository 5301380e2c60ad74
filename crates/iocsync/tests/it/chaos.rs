//! Chaos tests: the real binary against an emulator that injects 429 storms, 5xx, dropped
//! connections (before and after the write is committed), token expiry in the middle of a run and
//! slow answers. After at most two runs the tenant must equal the desired state exactly (owned
//! (type, value, action) set == desired set), hold no duplicate, and every foreign indicator must
//! be byte-for-byte what it was; a following clean run makes no write call.
//!
//! The config sets `time_scale = 60` (pacing windows and backoff divided by 60) and the emulator
//! runs the documented limits scaled by 60, so backoff paths are exercised in seconds.

use crate::harness::{CLIENT_ID, Env, EnvOptions, public_ips, text_feed};
use iocsync_emulator::wire::Indicator;
use iocsync_emulator::{
    Behaviour, CallRecord, EndpointFamily, Fault, FaultRule, RateLimits, SeedIndicator, Trigger,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// (indicatorType, indicatorValue, action): the identity of an indicator in Defender.
pub(crate) type Key = (String, String, String);

/// The ownership marker iocsync writes as `externalId` (`iocsync:` + the default owner tag).
pub(crate) const OWNER_MARKER: &str = "iocsync:iocsync";
/// Another app registered in the tenant (not iocsync).
const OTHER_APP: &str = "9f9f9f9f-0000-4000-8000-000000000000";

/// The config below the `[defender]` keys: `time_scale` (still in `[defender]`), `[sync]`, one text feed.
/// The feed churns a tenth of its values every round, many rounds a minute: the brake (which
/// remembers a day of deletes) is released so that these tests judge convergence under faults;
/// the brake has its own tests in `sync.rs`.
pub(crate) fn chaos_config(feed_file: &str) -> String {
    format!(
        "time_scale = 60\n\n[sync]\nstate = \"state/iocsync.db\"\nheadroom = 500\nmax_delete_fraction = 1.0\n\n\
         [[feeds]]\nname = \"chaos\"\nsource = \"{feed_file}\"\nformat = \"text\"\n"
    )
}

/// An emulator with the documented rate limits on the same 60x time scale as the client.
pub(crate) async fn chaos_env() -> Env {
    let env = Env::start(EnvOptions::default()).await;
    env.emu.set_rate_limits(RateLimits::documented().scaled(60.0));
    env
}

/// Whether iocsync owns this indicator (its client id AND its marker in `externalId`).
pub(crate) fn is_owned(i: &Indicator) -> bool {
    i.created_by == CLIENT_ID && i.external_id.as_deref() == Some(OWNER_MARKER)
}

fn key_of(i: &Indicator) -> Key {
    (i.indicator_type.clone(), i.indicator_value.clone(), i.action.clone())
}

/// Seeds foreign indicators around `feed_values`: some hold a feed value under the same action
/// (iocsync must skip those values), some under another action, some unrelated values, and some
/// made by iocsync's own client id under another owner tag. Returns the feed values iocsync must
/// leave alone (same type, value and action held by someone else).
pub(crate) fn seed_foreign(env: &Env, feed_values: &[String]) -> BTreeSet<String> {
    assert!(feed_values.len() >= 40, "seed_foreign needs at least 40 feed values");
    let step = feed_values.len() / 40;
    let pick = |n: usize| feed_values[n * step].clone();
    let mut blocked_by_others = BTreeSet::new();
    for n in 0..4 {
        let v = pick(n);
        env.emu.seed(SeedIndicator::portal("IpAddress", &v, "Block", "analyst@contoso.com"));
        blocked_by_others.insert(v);
    }
    for n in 4..8 {
        env.emu.seed(SeedIndicator::portal("IpAddress", &pick(n), "Audit", "analyst@contoso.com"));
    }
    for n in 8..11 {
        let v = pick(n);
        env.emu.seed(SeedIndicator::app("IpAddress", &v, "Block", OTHER_APP, "misp2defender"));
        blocked_by_others.insert(v);
    }
    for n in 11..13 {
        let v = pick(n);
        env.emu.seed(SeedIndicator::app("IpAddress", &v, "Block", CLIENT_ID, "legacy-script"));
        blocked_by_others.insert(v);
    }
    env.emu.seed(SeedIndicator::app("DomainName", "evil-example.com", "Block", OTHER_APP, "misp2defender"));
    env.emu.seed(SeedIndicator::portal("Url", "https://bad.example.net/payload", "Warn", "soc@contoso.com"));
    for ip in public_ips(6, 900_000) {
        env.emu.seed(SeedIndicator::portal("IpAddress", &ip, "Block", "analyst@contoso.com"));
    }
    blocked_by_others
}

/// The IP values a foreign creator already holds under `action` (iocsync must leave them alone).
pub(crate) fn blocked_for(foreign: &[Indicator], action: &str) -> BTreeSet<String> {
    foreign
        .iter()
        .filter(|i| i.indicator_type == "IpAddress" && i.action == action)
        .map(|i| i.indicator_value.clone())
        .collect()
}

/// Every indicator iocsync does not own, sorted by id (for a full before/after comparison).
pub(crate) fn foreign(env: &Env) -> Vec<Indicator> {
    let mut v: Vec<Indicator> = env.emu.indicators().into_iter().filter(|i| !is_owned(i)).collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

/// The (type, value, action) set iocsync should own for a text feed of IPs with the default policy.
pub(crate) fn desired_keys(feed_values: &[String], blocked_by_others: &BTreeSet<String>) -> BTreeSet<Key> {
    feed_values
        .iter()
        .filter(|v| !blocked_by_others.contains(*v))
        .map(|v| ("IpAddress".to_owned(), v.clone(), "Block".to_owned()))
        .collect()
}

/// Asserts the exact end state: owned set == desired, no duplicate anywhere, foreign unchanged.
pub(crate) fn assert_tenant(env: &Env, desired: &BTreeSet<Key>, foreign_before: &[Indicator], label: &str) {
    let all = env.emu.indicators();
    let mut seen: BTreeMap<Key, usize> = BTreeMap::new();
    for i in &all {
        *seen.entry(key_of(i)).or_default() += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dups.is_empty(), "{label}: duplicate (type, value, action) in the tenant: {dups:?}");

    let owned: Vec<Key> = all.iter().filter(|i| is_owned(i)).map(key_of).collect();
    let owned_set: BTreeSet<Key> = owned.iter().cloned().collect();
    assert_eq!(owned.len(), owned_set.len(), "{label}: duplicate owned indicator");
    let missing: Vec<_> = desired.difference(&owned_set).take(5).collect();
    let extra: Vec<_> = owned_set.difference(desired).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{label}: owned set != desired ({} owned, {} desired); missing e.g. {missing:?}; extra e.g. {extra:?}",
        owned_set.len(),
        desired.len()
    );
    let after = foreign(env);
    assert_eq!(after.len(), foreign_before.len(), "{label}: the number of foreign indicators changed");
    for (b, a) in foreign_before.iter().zip(&after) {
        assert_eq!(b, a, "{label}: foreign indicator {} was touched", b.id);
    }
}

/// Runs `sync` (with `extra` args) until it exits 0, at most `max_runs` times.
/// Returns the number of runs and every report.
pub(crate) async fn converge(env: &Env, extra: &[&str], max_runs: usize) -> (usize, Vec<serde_json::Value>) {
    let mut reports = Vec::new();
    let mut args = vec!["sync"];
    args.extend_from_slice(extra);
    for run in 1..=max_runs {
        let (code, report) = env.run_json(&args).await;
        reports.push(report);
        if code == 0 {
            return (run, reports);
        }
        assert!(matches!(code, 1 | 3), "unexpected exit {code}: {}", reports[reports.len() - 1]);
    }
    panic!("not converged after {max_runs} runs; reports: {reports:#?}");
}

/// With every fault cleared, one more run changes nothing and makes no write call.
pub(crate) async fn assert_quiet(env: &Env, desired: usize, label: &str) {
    env.emu.clear_faults();
    env.emu.clear_calls();
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{label}: {report}");
    assert_eq!(report["counts"]["unchanged"], desired as u64, "{label}: {report}");
    assert_eq!(env.write_calls(), 0, "{label}: a converged tenant needs no write call: {report}");
}

/// A tiny seeded PRNG (SplitMix64): kill points and garbage are reproducible from a seed without a `rand`
/// dev-dependency on the app crate.
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi` (hi exclusive, hi > lo).
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
    /// Uniform in `[lo, hi)`.
    pub(crate) fn unit(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }
}

/// What one faulted phase produced.
struct Phase {
    runs: usize,
    reports: Vec<serde_json::Value>,
    calls: Vec<CallRecord>,
}

impl Phase {
    fn faulted(&self, family: EndpointFamily, f: impl Fn(Fault) -> bool) -> usize {
        self.calls.iter().filter(|c| c.family == family && c.fault.is_some_and(&f)).count()
    }
    fn status(&self, pred: impl Fn(u16) -> bool) -> usize {
        self.calls.iter().filter(|c| pred(c.status)).count()
    }
}

/// Writes the feed, injects `faults`, converges in at most two runs, checks the exact state,
/// then a clean run that must write nothing.
async fn phase(
    env: &Env,
    values: &[String],
    blocked: &BTreeSet<String>,
    foreign_before: &[Indicator],
    faults: &[FaultRule],
    label: &str,
) -> Phase {
    env.write("feed.txt", &text_feed(values));
    env.emu.clear_calls();
    for f in faults {
        env.emu.inject(*f);
    }
    let (runs, reports) = converge(env, &[], 2).await;
    let calls = env.emu.calls();
    env.emu.clear_faults();
    let desired = desired_keys(values, blocked);
    assert_tenant(env, &desired, foreign_before, label);
    assert_quiet(env, desired.len(), label).await;
    Phase { runs, reports, calls }
}

/// Phase 1 creates 1,200 (3 import batches); phase 2 removes 200 and adds 150 (BatchDelete + import).
async fn two_phases(env: &Env, p1: &[FaultRule], p2: &[FaultRule]) -> (Phase, Phase) {
    let first = public_ips(1_200, 30_000);
    let blocked = seed_foreign(env, &first);
    let foreign_before = foreign(env);
    env.config(&chaos_config("feed.txt"));
    let a = phase(env, &first, &blocked, &foreign_before, p1, "phase 1").await;
    let mut second: Vec<String> = first[200..].to_vec();
    second.extend(public_ips(150, 40_000));
    let b = phase(env, &second, &blocked, &foreign_before, p2, "phase 2").await;
    (a, b)
}

fn rule(family: Option<EndpointFamily>, fault: Fault, trigger: Trigger) -> FaultRule {
    FaultRule::new(family, fault, trigger)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_storm_is_waited_out_and_converges_exactly() {
    let env = chaos_env().await;
    // Besides the injected 429s, the emulator's own limiter allows only 2 imports per (scaled)
    // minute while the client paces to 30: the third import meets a real 429 with Retry-After.
    let mut limits = RateLimits::documented().scaled(60.0);
    limits.import.per_minute.limit = 2;
    env.emu.set_rate_limits(limits);
    let (a, b) = two_phases(
        &env,
        &[
            rule(Some(EndpointFamily::List), Fault::Status(429), Trigger::Nth(1)),
            rule(Some(EndpointFamily::Import), Fault::Status(429), Trigger::FirstN(2)),
        ],
        &[
            rule(Some(EndpointFamily::BatchDelete), Fault::Status(429), Trigger::FirstN(2)),
            rule(Some(EndpointFamily::Import), Fault::Status(429), Trigger::Nth(1)),
        ],
    )
    .await;
    assert_eq!(a.faulted(EndpointFamily::List, |f| f == Fault::Status(429)), 1);
    assert_eq!(a.faulted(EndpointFamily::Import, |f| f == Fault::Status(429)), 2);
    assert_eq!(b.faulted(EndpointFamily::BatchDelete, |f| f == Fault::Status(429)), 2);
    // 3 injected + at least one from the limiter in phase 1; every 429 is counted in the report.
    assert!(a.status(|s| s == 429) >= 4, "the limiter never throttled: {:?}", a.status(|s| s == 429));
    let throttled: u64 = a.reports.iter().map(|r| r["throttled"].as_u64().unwrap()).sum();
    assert_eq!(throttled as usize, a.status(|s| s == 429), "report.throttled counts every 429");
    // Honouring Retry-After is enough: no run has to be repeated.
    assert_eq!((a.runs, b.runs), (1, 1), "429s are retried within the run");
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_percent_5xx_on_every_endpoint_converges_exactly() {
    let env = chaos_env().await;
    let storm = [
        rule(None, Fault::Status(500), Trigger::Probability(0.1)),
        rule(None, Fault::Status(503), Trigger::Probability(0.1)),
        rule(Some(EndpointFamily::Token), Fault::Status(503), Trigger::Nth(1)),
    ];
    let mut p2 = storm.to_vec();
    p2.push(rule(Some(EndpointFamily::BatchDelete), Fault::Status(502), Trigger::Nth(1)));
    p2.push(rule(Some(EndpointFamily::Import), Fault::Status(504), Trigger::Nth(1)));
    let (a, b) = two_phases(&env, &storm, &p2).await;
    assert!(a.status(|s| s >= 500) >= 1, "phase 1 saw no 5xx");
    assert_eq!(a.faulted(EndpointFamily::Token, |f| f == Fault::Status(503)), 1);
    assert!(b.faulted(EndpointFamily::BatchDelete, |f| matches!(f, Fault::Status(_))) >= 1);
    assert!(b.faulted(EndpointFamily::Import, |f| matches!(f, Fault::Status(_))) >= 1);
    assert!(a.runs <= 2 && b.runs <= 2);

    // Six more rounds under the same 20 % storm, each removing 100 and adding 100 values, so the
    // storm meets a few dozen calls of every family, not a handful.
    let pool = public_ips(1_900, 30_000);
    let foreign_before = foreign(&env);
    let blocked = blocked_for(&foreign_before, "Block");
    let (mut calls, mut errors) = (0, 0);
    for round in 0..6 {
        let start = 300 + round * 100;
        let p =
            phase(&env, &pool[start..start + 1_000], &blocked, &foreign_before, &storm[..2], "round").await;
        assert!(p.runs <= 2, "round {round}: {} runs", p.runs);
        calls += p.calls.len();
        errors += p.status(|s| s >= 500);
    }
    assert!(
        errors * 100 >= calls * 8,
        "the storm was too weak to mean anything: {errors} 5xx in {calls} calls"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_connections_before_and_after_commit_converge_exactly() {
    let env = chaos_env().await;
    let p1 = [
        rule(Some(EndpointFamily::List), Fault::Malformed, Trigger::Nth(1)),
        rule(Some(EndpointFamily::Import), Fault::DropAfterCommit, Trigger::Nth(2)),
        rule(Some(EndpointFamily::Import), Fault::Drop, Trigger::Nth(3)),
        rule(None, Fault::Drop, Trigger::Probability(0.15)),
    ];
    let p2 = [
        rule(Some(EndpointFamily::BatchDelete), Fault::DropAfterCommit, Trigger::Nth(1)),
        rule(Some(EndpointFamily::Import), Fault::DropAfterCommit, Trigger::Nth(1)),
        rule(None, Fault::Drop, Trigger::Probability(0.15)),
    ];
    let (a, b) = two_phases(&env, &p1, &p2).await;
    assert_eq!(a.faulted(EndpointFamily::Import, |f| f == Fault::DropAfterCommit), 1);
    assert_eq!(a.faulted(EndpointFamily::List, |f| f == Fault::Malformed), 1);
    assert_eq!(b.faulted(EndpointFamily::BatchDelete, |f| f == Fault::DropAfterCommit), 1);
    assert_eq!(b.faulted(EndpointFamily::Import, |f| f == Fault::DropAfterCommit), 1);
    assert!(a.runs <= 2 && b.runs <= 2);
    // The delete committed before the reset: the retry finds the ids gone and does not fail.
    let last = &b.reports[b.reports.len() - 1];
    assert_eq!(last["failed"].as_array().map(Vec::len), Some(0), "{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_answers_complete_without_duplicates() {
    let env = chaos_env().await;
    let slow =
        |family, ms| rule(Some(family), Fault::Delay(Duration::from_millis(ms)), Trigger::Probability(0.5));
    let p = [
        rule(Some(EndpointFamily::List), Fault::Delay(Duration::from_millis(400)), Trigger::Nth(1)),
        rule(Some(EndpointFamily::Token), Fault::Delay(Duration::from_millis(300)), Trigger::Nth(1)),
        slow(EndpointFamily::Import, 250),
        slow(EndpointFamily::BatchDelete, 250),
    ];
    let (a, b) = two_phases(&env, &p, &p).await;
    assert_eq!(a.faulted(EndpointFamily::List, |f| matches!(f, Fault::Delay(_))), 1);
    assert_eq!(a.faulted(EndpointFamily::Token, |f| matches!(f, Fault::Delay(_))), 1);
    // A slow answer is not a failure: one run each, nothing retried.
    assert_eq!((a.runs, b.runs), (1, 1));
    assert_eq!(a.reports[0]["api_calls"]["import"], 3, "{}", a.reports[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_revoked_in_the_middle_of_a_run_is_refreshed_once_and_the_run_completes() {
    token_revoked_mid_run(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_revoked_mid_run_answered_by_a_bare_401_without_body_is_refreshed_too() {
    token_revoked_mid_run(true).await;
}

/// Revokes every token after the first import of a run; `bare_401`: the 401 has no JSON body.
async fn token_revoked_mid_run(bare_401: bool) {
    let env = chaos_env().await;
    env.emu.set_behaviour(Behaviour { unauthorized_empty_body: bare_401, ..Behaviour::default() });
    let values = public_ips(1_200, 50_000);
    let blocked = seed_foreign(&env, &values);
    let foreign_before = foreign(&env);
    env.config(&chaos_config("feed.txt"));
    env.write("feed.txt", &text_feed(&values));
    // Three import batches of ~0.4 s each: the revocation lands between the first and the others.
    env.emu.inject(rule(
        Some(EndpointFamily::Import),
        Fault::Delay(Duration::from_millis(400)),
        Trigger::Always,
    ));

    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("iocsync"));
    cmd.arg("--config").arg(env.path("iocsync.toml")).args(["--output", "json", "sync"]);
    cmd.env("IOCSYNC_TEST_SECRET", crate::harness::SECRET).env_remove("RUST_LOG").env("NO_COLOR", "1");
    crate::harness::isolate_state(&mut cmd, env.dir.path());
    cmd.current_dir(env.dir.path());
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();

    // Bounded wait (20 s) for the first import to be answered, then revoke every token.
    let mut revoked_at = None;
    for _ in 0..2_000 {
        if env.emu.calls().iter().any(|c| c.family == EndpointFamily::Import && c.status == 200) {
            env.emu.expire_tokens();
            revoked_at = Some(env.emu.calls().len());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let revoked_at = revoked_at.expect("the run made no import call within 20 s");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    assert_eq!(out.status.code(), Some(0), "{report}");
    let calls = env.emu.calls();
    let after = &calls[revoked_at..];
    assert!(
        after.iter().any(|c| c.family == EndpointFamily::Import && c.status == 401),
        "no call met the revoked token: {after:?}"
    );
    assert_eq!(after.iter().filter(|c| c.family == EndpointFamily::Token).count(), 1, "exactly one refresh");
    assert_eq!(report["api_calls"]["token"], 2, "{report}");
    let desired = desired_keys(&values, &blocked);
    assert_tenant(&env, &desired, &foreign_before, "token expiry");
    assert_quiet(&env, desired.len(), "token expiry").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mixed_storm_on_every_endpoint_including_the_token_converges_within_two_runs() {
    let env = chaos_env().await;
    let storm = [
        rule(Some(EndpointFamily::Token), Fault::Drop, Trigger::Nth(1)),
        rule(Some(EndpointFamily::Token), Fault::Malformed, Trigger::Nth(2)),
        rule(Some(EndpointFamily::Import), Fault::DropAfterCommit, Trigger::Probability(0.15)),
        rule(Some(EndpointFamily::BatchDelete), Fault::DropAfterCommit, Trigger::Probability(0.15)),
        rule(None, Fault::Status(500), Trigger::Probability(0.1)),
        rule(None, Fault::Drop, Trigger::Probability(0.1)),
        rule(None, Fault::Malformed, Trigger::Probability(0.1)),
        rule(None, Fault::Status(429), Trigger::Probability(0.05)),
    ];
    let (a, b) = two_phases(&env, &storm, &storm).await;
    assert_eq!(a.faulted(EndpointFamily::Token, |f| f == Fault::Drop), 1);
    assert_eq!(a.faulted(EndpointFamily::Token, |f| f == Fault::Malformed), 1);
    let faulted = |p: &Phase| p.calls.iter().filter(|c| c.fault.is_some()).count();
    assert!(faulted(&a) >= 3 && faulted(&b) >= 1, "the storm hardly blew: {} / {}", faulted(&a), faulted(&b));
    assert!(a.runs <= 2 && b.runs <= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_that_stays_down_fails_the_run_cleanly_and_the_next_run_converges() {
    let env = chaos_env().await;
    let values = public_ips(1_200, 55_000);
    let blocked = seed_foreign(&env, &values);
    let foreign_before = foreign(&env);
    env.config(&chaos_config("feed.txt"));
    env.write("feed.txt", &text_feed(&values));

    // The token endpoint is down: nothing is listed, nothing written, exit 1 with a message.
    env.emu.inject(rule(Some(EndpointFamily::Token), Fault::Status(503), Trigger::Always));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(env.write_calls(), 0);
    assert!(env.calls_of(EndpointFamily::Token) > 1, "the token request is retried");
    env.emu.clear_faults();

    // Every import answers 503: the run gives up after its retry budget and says so.
    env.emu.inject(rule(Some(EndpointFamily::Import), Fault::Status(503), Trigger::Always));
    let (code, report) = env.run_json(&["sync"]).await;
    assert!(matches!(code, 1 | 3), "exit {code}: {report}");
    let owned = env.emu.indicators().into_iter().filter(is_owned).count();
    assert_eq!(owned, 0, "every import answered 503: nothing was applied: {report}");
    assert_eq!(report["failed"].as_array().map(Vec::len), Some(values.len() - blocked.len()), "{report}");
    env.emu.clear_faults();

    let (runs, _) = converge(&env, &[], 1).await;
    assert_eq!(runs, 1);
    let desired = desired_keys(&values, &blocked);
    assert_tenant(&env, &desired, &foreign_before, "after the outage");
    assert_quiet(&env, desired.len(), "after the outage").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_second_list_page_is_retried_never_read_as_a_short_tenant() {
    let env = chaos_env().await;
    // 10,100 foreign rows push iocsync's own (newer ids) onto the second page of 10,000.
    env.emu.seed_many(
        public_ips(10_100, 300_000)
            .iter()
            .map(|ip| SeedIndicator::portal("IpAddress", ip, "Block", "analyst@contoso.com")),
    );
    let values = public_ips(300, 65_000);
    let blocked = seed_foreign(&env, &values);
    let foreign_before = foreign(&env);
    env.config(&chaos_config("feed.txt"));
    env.write("feed.txt", &text_feed(&values));
    let (runs, _) = converge(&env, &[], 1).await;
    assert_eq!(runs, 1);
    let desired = desired_keys(&values, &blocked);
    assert_tenant(&env, &desired, &foreign_before, "seeded");

    // The second page is dropped once, then comes back truncated once: both are retried.
    env.emu.clear_calls();
    env.emu.inject(rule(Some(EndpointFamily::List), Fault::Drop, Trigger::Nth(2)));
    env.emu.inject(rule(Some(EndpointFamily::List), Fault::Malformed, Trigger::Nth(3)));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(env.calls_of(EndpointFamily::List), 4, "page 1, page 2 (dropped), page 2 (malformed), page 2");
    assert_eq!(report["counts"]["unchanged"], desired.len() as u64, "{report}");
    assert_eq!(env.write_calls(), 0, "a short listing would have re-imported the owned rows: {report}");
    assert_tenant(&env, &desired, &foreign_before, "after the faulted listing");
}
