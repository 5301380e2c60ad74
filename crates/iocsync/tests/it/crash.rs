//! Crash test: `iocsync sync` is SIGKILLed at seeded random points while it applies a plan (the
//! emulator slows every import and BatchDelete so the apply can be interrupted). After each kill
//! the next run (not killed) must open the state database, converge to the exact desired state
//! without duplicates and without touching foreign indicators, and the run after it must make no
//! write call. The desired set moves between trials (adds and removes), so deletes are
//! interrupted too.

use crate::chaos::{
    Key, SplitMix, assert_tenant, blocked_for, chaos_config, chaos_env, desired_keys, foreign, seed_foreign,
};
use crate::harness::{Env, SECRET, text_feed};
use iocsync_emulator::{EndpointFamily, Fault, FaultRule, Trigger};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TRIALS: usize = 20;
const SEED: u64 = 0x10c5_c0de;

fn slow_writes(env: &Env, ms: u64) {
    for family in [EndpointFamily::Import, EndpointFamily::BatchDelete] {
        env.emu.inject(FaultRule::new(
            Some(family),
            Fault::Delay(Duration::from_millis(ms)),
            Trigger::Always,
        ));
    }
}

fn sync_command(env: &Env) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("iocsync"));
    cmd.arg("--config").arg(env.path("iocsync.toml")).args(["--output", "json", "sync", "--force"]);
    cmd.env("IOCSYNC_TEST_SECRET", SECRET).env_remove("RUST_LOG").env("NO_COLOR", "1");
    crate::harness::isolate_state(&mut cmd, env.dir.path());
    cmd.current_dir(env.dir.path()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

/// The newest run id in the state database, if any.
fn newest_run(env: &Env) -> Option<i64> {
    let path = env.path("state/iocsync.db");
    if !path.exists() {
        return None;
    }
    let store = iocsync::state::StateStore::open(&path).unwrap();
    store.runs(None, 1).unwrap().first().map(|r| r.id)
}

/// (write, id) of every import and BatchDelete item the emulator applied (answered or not).
fn landed_writes(env: &Env) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for c in env.emu.calls() {
        let what = match c.family {
            EndpointFamily::Import => "import",
            EndpointFamily::BatchDelete => "delete",
            _ => continue,
        };
        if (200..300).contains(&c.status) {
            for id in c.written {
                *out.entry((what.to_owned(), id)).or_insert(0) += 1;
            }
        }
    }
    out
}

/// Waits (bounded, 10 s) until the emulator's call log has not grown for 400 ms: longer than
/// the slowest injected write delay (160 ms) plus its jitter, so no call is still in flight.
async fn settle(env: &Env) {
    let mut seen = env.emu.calls().len();
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let now = env.emu.calls().len();
        if now == seen {
            return;
        }
        seen = now;
    }
}

/// (write, id) of every journal row of one run.
fn journal_writes(env: &Env, run: i64) -> BTreeMap<(String, String), usize> {
    let store = iocsync::state::StateStore::open(&env.path("state/iocsync.db")).unwrap();
    let mut out = BTreeMap::new();
    for r in store.journal_of_run(run).unwrap() {
        let what = if r.entry.kind == "delete" { "delete" } else { "import" };
        *out.entry((what.to_owned(), r.entry.id.clone().unwrap_or_default())).or_insert(0) += 1;
    }
    out
}

/// The desired window of the pool for one trial: a moving [start, end) so every trial adds and removes.
fn window(rng: &mut SplitMix, pool: &[String]) -> Vec<String> {
    let start = rng.range(0, 700) as usize;
    let len = rng.range(500, 1_101) as usize;
    pool[start..(start + len).min(pool.len())].to_vec()
}

/// When a trial kills the run.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// This long after the spawn.
    After(Duration),
    /// This long after the emulator answered the k-th write call of the run.
    AfterWrites(usize, Duration),
}

/// What one trial observed.
#[derive(Debug, Default)]
struct Tally {
    /// The child was still running when it was killed.
    killed_running: usize,
    /// The killed run had made at least one write call and the recovery run still had work.
    killed_mid_apply: usize,
    /// The recovery run found deletes to complete.
    recovery_deleted: usize,
    /// The recovery run found replaces (action changes) to complete.
    recovery_replaced: usize,
    /// Runs left `running` in the history by a kill.
    left_running: usize,
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_seeded_random_points_is_completed_by_the_next_run() {
    let env = chaos_env().await;
    let pool = crate::harness::public_ips(1_800, 60_000);
    let blocked = seed_foreign(&env, &pool);
    let foreign_before = foreign(&env);
    // The desired set jumps by up to half between trials: the feed-health shrink guard (which
    // would keep the last good copy) is not the subject here.
    let config = |action: &str| {
        let base = chaos_config("feed.txt")
            .replace("headroom = 500\n", "headroom = 500\nmax_shrink_fraction = 1.0\n");
        format!("{base}action = \"{action}\"\n")
    };
    env.config(&config("Block"));
    let mut rng = SplitMix(SEED);

    // Calibrate: an uninterrupted run with the same slow writes, so the kill points cover the
    // whole apply on any machine (slow CI or fast laptop).
    let first = window(&mut rng, &pool);
    env.write("feed.txt", &text_feed(&first));
    slow_writes(&env, 120);
    let t0 = Instant::now();
    let status = tokio::task::spawn_blocking({
        let mut cmd = sync_command(&env);
        move || cmd.status().unwrap()
    })
    .await
    .unwrap();
    let full = t0.elapsed();
    assert_eq!(status.code(), Some(0), "calibration run failed");
    env.emu.clear_faults();
    assert_tenant(&env, &desired_keys(&first, &blocked), &foreign_before, "calibration");

    let mut tally = Tally::default();
    for trial in 0..TRIALS {
        let label = format!("trial {trial}");
        let values = window(&mut rng, &pool);
        // Every third trial flips the action: each kept value is replaced (delete the old
        // action, import the new one), so kills also land between the two halves of a replace.
        let action = if trial % 3 == 2 { "Audit" } else { "Block" };
        let desired: BTreeSet<Key> = desired_keys(&values, &blocked_for(&foreign_before, action))
            .into_iter()
            .map(|(t, v, _)| (t, v, action.to_owned()))
            .collect();
        env.config(&config(action));
        env.write("feed.txt", &text_feed(&values));
        env.emu.clear_calls();
        let delay = rng.range(80, 161);
        slow_writes(&env, delay);
        // Even trials: a seeded delay over the whole run (feeds, listing, apply, state save).
        // Odd trials: after the k-th answered write call plus a seeded part of one call, so the
        // kill lands inside the apply (between or during deletes and imports).
        let kill = if trial % 2 == 0 {
            Kill::After(full.mul_f64(rng.unit(0.05, 1.1)))
        } else {
            Kill::AfterWrites(rng.range(0, 3) as usize, Duration::from_millis(rng.range(0, delay + 40)))
        };

        let last_run_before = newest_run(&env);
        let mut child = sync_command(&env).spawn().unwrap();
        match kill {
            Kill::After(d) => tokio::time::sleep(d).await,
            Kill::AfterWrites(k, d) => {
                // Bounded: 20 s at most, or until the child ends on its own.
                for _ in 0..4_000 {
                    if env.write_calls() >= k || child.try_wait().unwrap().is_some() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                tokio::time::sleep(d).await;
            }
        }
        let running = child.try_wait().unwrap().is_none();
        // SIGKILL on unix: no destructor, no flush; the lock file and any SQLite transaction are abandoned.
        child.kill().unwrap();
        child.wait().unwrap();
        tally.killed_running += usize::from(running);
        // A write call in flight at the kill can still commit in the emulator (its slow answer
        // was delayed, not cancelled): wait until the call log stops growing before counting.
        settle(&env).await;
        let killed_writes = env.write_calls();
        let landed = landed_writes(&env);
        env.emu.clear_faults();

        // The state database must open after the kill (WAL recovery), and show the killed run.
        {
            let store = iocsync::state::StateStore::open(&env.path("state/iocsync.db"))
                .unwrap_or_else(|e| panic!("{label}: the state database does not open after SIGKILL: {e}"));
            let runs = store.runs(None, 1).unwrap();
            if running && runs.first().is_some_and(|r| r.status == "running") {
                assert!(runs[0].finished_at.is_none() && runs[0].exit_code.is_none());
                tally.left_running += 1;
            }
        }

        // The next run is not killed: it converges in one go.
        env.emu.clear_calls();
        let (code, report) = env.run_json(&["sync", "--force"]).await;
        assert_eq!(code, 0, "{label}: the run after a kill must succeed: {report}");
        // The killed run's journal shows exactly the writes that landed, the call in flight at
        // the kill included (the recovery run found it in the tenant before planning).
        let killed_run = {
            let store = iocsync::state::StateStore::open(&env.path("state/iocsync.db")).unwrap();
            let runs = store.runs(None, 2).unwrap();
            runs.get(1).map(|r| r.id).filter(|id| Some(*id) > last_run_before)
        };
        let journaled = killed_run.map(|id| journal_writes(&env, id)).unwrap_or_default();
        assert_eq!(journaled, landed, "{label}: the killed run's journal != the writes that landed");
        let work = ["create", "update", "renew", "replace", "delete"]
            .iter()
            .map(|k| report["counts"][k].as_u64().unwrap())
            .sum::<u64>();
        if running && killed_writes > 0 && work > 0 {
            tally.killed_mid_apply += 1;
        }
        tally.recovery_deleted += usize::from(report["counts"]["delete"].as_u64().unwrap() > 0);
        tally.recovery_replaced += usize::from(report["counts"]["replace"].as_u64().unwrap() > 0);
        assert_tenant(&env, &desired, &foreign_before, &label);
        {
            let store = iocsync::state::StateStore::open(&env.path("state/iocsync.db")).unwrap();
            assert_eq!(store.runs(None, 1).unwrap()[0].status, "ok", "{label}");
        }

        // And the run after that has nothing to do.
        env.emu.clear_calls();
        let (code, report) = env.run_json(&["sync"]).await;
        assert_eq!(code, 0, "{label}: {report}");
        assert_eq!(env.write_calls(), 0, "{label}: a converged tenant needs no write call: {report}");
        assert_eq!(report["counts"]["unchanged"], desired.len() as u64, "{label}: {report}");
    }
    // `history` shows each killed run (never finished, followed by another) as `partial` when some
    // of its writes are in the journal and `killed` when none are, next to the completed ones.
    let (code, history) = env.run_json(&["history", "--limit", "100"]).await;
    assert_eq!(code, 0, "{history}");
    let statuses: Vec<&str> =
        history["runs"].as_array().unwrap().iter().filter_map(|r| r["status"].as_str()).collect();
    let interrupted = statuses.iter().filter(|s| **s == "partial" || **s == "killed").count();
    assert_eq!(interrupted, tally.left_running, "{statuses:?}");
    assert!(statuses.contains(&"partial"), "a kill after a journaled batch shows `partial`: {statuses:?}");
    for r in history["runs"].as_array().unwrap() {
        let id = r["id"].as_i64().unwrap().to_string();
        let (_, ch) = env.run_json(&["history", "--run", &id, "--changes"]).await;
        let journaled = !ch["changes"].as_array().unwrap().is_empty();
        match r["status"].as_str().unwrap() {
            "partial" => assert!(journaled, "run {id} is partial: its journal shows what landed"),
            "killed" => assert!(!journaled, "run {id} is killed: nothing journaled"),
            _ => {}
        }
    }
    assert!(statuses.iter().filter(|s| **s == "ok").count() >= 2 * TRIALS, "{statuses:?}");
    // The seeded kill points really interrupted applies (not only runs that had finished or not
    // started writing), including interrupted deletes completed by the next run.
    assert!(tally.killed_running >= TRIALS / 2, "{tally:?}");
    assert!(tally.killed_mid_apply >= 3, "too few kills landed inside an apply: {tally:?}");
    assert!(tally.recovery_deleted >= 1, "no interrupted delete was completed: {tally:?}");
    assert!(tally.recovery_replaced >= 1, "no interrupted replace was completed: {tally:?}");
    // Every kill that landed after the run was recorded left it unfinished in the history.
    assert!(tally.left_running >= tally.killed_mid_apply, "{tally:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sync_while_one_is_applying_is_refused_and_the_lock_dies_with_its_holder() {
    let env = chaos_env().await;
    let pool = crate::harness::public_ips(900, 80_000);
    let blocked = seed_foreign(&env, &pool);
    let foreign_before = foreign(&env);
    env.config(&chaos_config("feed.txt"));
    env.write("feed.txt", &text_feed(&pool));
    slow_writes(&env, 700);

    let mut holder = sync_command(&env).spawn().unwrap();
    // Bounded wait (20 s) until the holder is applying (its first import is in flight or done).
    for _ in 0..2_000 {
        if env.emu.calls().iter().any(|c| c.family == EndpointFamily::List) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(holder.try_wait().unwrap().is_none(), "the first run ended before the second could start");
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 1, "{report}");
    let msg = report["error"].as_str().unwrap_or_default();
    assert!(msg.contains("another iocsync run holds"), "{report}");
    // A dry run takes no lock: `plan` still works while a sync applies.
    let (code, plan) = env.run_json(&["plan"]).await;
    assert_eq!(code, 0, "{plan}");

    // SIGKILL the holder: its OS lock goes with it, and the next run completes the apply.
    holder.kill().unwrap();
    holder.wait().unwrap();
    env.emu.clear_faults();
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "the lock must not outlive its holder: {report}");
    assert_tenant(&env, &desired_keys(&pool, &blocked), &foreign_before, "after the holder died");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_while_the_state_database_is_being_created_leaves_it_usable() {
    let env = chaos_env().await;
    let values = crate::harness::public_ips(300, 85_000);
    let blocked = seed_foreign(&env, &values);
    let foreign_before = foreign(&env);
    env.write("feed.txt", &text_feed(&values));
    let mut rng = SplitMix(SEED ^ 0xdb);
    for trial in 0..6 {
        // A fresh state database each trial, killed within its first ~150 ms (open, migrate, first writes).
        let state = format!("state{trial}/iocsync.db");
        env.config(&chaos_config("feed.txt").replace("state/iocsync.db", &state));
        let mut child = sync_command(&env).spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(rng.range(0, 150))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        let (code, report) = env.run_json(&["sync", "--force"]).await;
        assert_eq!(code, 0, "trial {trial}: {report}");
        assert!(iocsync::state::StateStore::open(&env.path(&state)).unwrap().schema_version().unwrap() > 0);
        assert_tenant(&env, &desired_keys(&values, &blocked), &foreign_before, &format!("trial {trial}"));
    }
}

/// State database images no SQLite can open: truncated, overwritten, header page smashed.
fn corrupt_images(good: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut smashed = good.to_vec();
    let end = 4096.min(smashed.len());
    for b in &mut smashed[100..end] {
        *b = 0xff;
    }
    vec![
        ("truncated", good[..good.len() / 2].to_vec()),
        ("garbage", vec![0x5a; 8192]),
        ("header-page-smashed", smashed),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_state_database_fails_the_run_cleanly_and_the_tenant_rebuilds_it() {
    let env = chaos_env().await;
    let values = crate::harness::public_ips(100, 86_000);
    let blocked = seed_foreign(&env, &values);
    let foreign_before = foreign(&env);
    env.write("feed.txt", &text_feed(&values));
    env.config(&chaos_config("feed.txt"));
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    let db = env.path("state/iocsync.db");
    let good = std::fs::read(&db).unwrap();
    for (name, bytes) in corrupt_images(&good) {
        std::fs::write(&db, &bytes).unwrap();
        // A torn WAL beside it must not make things worse.
        std::fs::write(env.path("state/iocsync.db-wal"), vec![0xa5; 4096]).unwrap();
        env.emu.clear_calls();
        let (code, report) = env.run_json(&["sync"]).await;
        assert_eq!(code, 1, "{name}: {report}");
        let msg = report["error"].as_str().unwrap_or_default();
        assert!(msg.contains("iocsync.db"), "{name}: the error names the file: {report}");
        assert_eq!(env.write_calls(), 0, "{name}: no write on a broken state database");
        assert!(!std::fs::read(&db).unwrap().is_empty(), "{name}: the broken file is left for inspection");
    }
    // The tenant is the source of truth: with the database moved aside, the next run rebuilds it
    // and finds nothing to change.
    std::fs::rename(&db, env.path("state/iocsync.db.broken")).unwrap();
    let _ = std::fs::remove_file(env.path("state/iocsync.db-wal"));
    let _ = std::fs::remove_file(env.path("state/iocsync.db-shm"));
    env.emu.clear_calls();
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(env.write_calls(), 0, "{report}");
    assert_tenant(&env, &desired_keys(&values, &blocked), &foreign_before, "rebuilt state");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_state_database_error_says_how_to_recover() {
    let env = chaos_env().await;
    env.write("feed.txt", &text_feed(&crate::harness::public_ips(10, 87_000)));
    env.config(&chaos_config("feed.txt"));
    std::fs::create_dir_all(env.path("state")).unwrap();
    std::fs::write(env.path("state/iocsync.db"), vec![0x5a; 8192]).unwrap();
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 1, "{report}");
    let msg = report["error"].as_str().unwrap_or_default().to_ascii_lowercase();
    assert!(
        ["move", "rename", "delete", "remove"].iter().any(|w| msg.contains(w)),
        "the error should tell the operator to move the damaged file aside: {msg}"
    );
}
