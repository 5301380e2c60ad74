//! Change control (issue 14): the journal of confirmed writes, saved plans applied exactly,
//! `explain`, and `undo`, driven through the binary against the emulator.

use crate::chaos::{SplitMix, chaos_config, chaos_env};
use crate::harness::{Env, EnvOptions, public_ips, text_feed};
use iocsync_emulator::{EndpointFamily, Fault, FaultRule, Trigger};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const BASE: &str = "[sync]\nstate = \"state/iocsync.db\"\nheadroom = 500\n";

fn feed(name: &str, file: &str, extra: &str) -> String {
    format!("[[feeds]]\nname = \"{name}\"\nsource = \"{file}\"\nformat = \"text\"\n{extra}\n")
}

/// The newest run id in `history`.
async fn last_run(env: &Env) -> i64 {
    let (code, h) = env.run_json(&["history", "--limit", "1"]).await;
    assert_eq!(code, 0, "{h}");
    h["runs"][0]["id"].as_i64().expect("a run id")
}

/// The whole journal, through `history --export jsonl`.
async fn journal(env: &Env) -> Vec<Value> {
    let out = env.run(&["history", "--export", "jsonl"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect()
}

/// (write, id) of every import and BatchDelete write the emulator answered with success: what the
/// client was told landed. (The marker canary, submitted and deleted one by one through other
/// endpoints to prove the tenant keeps the marker, is not a change to the tenant's indicators and
/// is not journaled.)
fn answered_writes(env: &Env) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for c in env.emu.calls() {
        let landed_and_told = (200..300).contains(&c.status)
            && !matches!(c.fault, Some(Fault::Drop | Fault::DropAfterCommit | Fault::Malformed));
        let what = match c.family {
            EndpointFamily::Import => "import",
            EndpointFamily::BatchDelete => "delete",
            _ => continue,
        };
        if landed_and_told {
            for id in c.written {
                *out.entry((what.to_owned(), id)).or_insert(0) += 1;
            }
        }
    }
    out
}

fn journal_writes(rows: &[Value]) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for r in rows {
        let what = if r["kind"] == "delete" { "delete" } else { "import" };
        let id = r["id"].as_str().expect("every journal row names its indicator id").to_owned();
        *out.entry((what.to_owned(), id)).or_insert(0) += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_journal_records_each_change_with_its_cause_and_exports_round_trip() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(40, 3_000);
    env.write("a.txt", &text_feed(&ips));
    env.config(&format!("{BASE}[allowlist]\nvalues = []\n{}", feed("a", "a.txt", "")));
    let out = env.run(&["sync"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first = last_run(&env).await;
    // Each journal line also goes to the log at INFO, with the run id.
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        log.lines().filter(|l| l.contains("journal") && l.contains(&format!("run={first}"))).count(),
        40,
        "{log}"
    );

    // One value leaves the feed, one is allowlisted, one is new; the rest change severity.
    let mut next: Vec<String> = ips[2..].to_vec();
    next.push(public_ips(1, 9_000)[0].clone());
    env.write("a.txt", &text_feed(&next));
    env.config(&format!(
        "{BASE}[allowlist]\nvalues = [\"{}\"]\n{}",
        ips[2],
        feed("a", "a.txt", "severity = \"Low\"")
    ));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    let second = last_run(&env).await;
    let (code, ch) = env.run_json(&["history", "--run", &second.to_string(), "--changes"]).await;
    assert_eq!(code, 0, "{ch}");
    assert_eq!(ch["run"]["id"], second);
    let rows = ch["changes"].as_array().unwrap();
    let reason_of = |v: &str| -> Vec<(String, String)> {
        rows.iter()
            .filter(|r| r["value"] == v)
            .map(|r| (r["kind"].as_str().unwrap().to_owned(), r["reason"].as_str().unwrap().to_owned()))
            .collect()
    };
    assert_eq!(reason_of(&ips[0]), [("delete".to_owned(), "left-feed".to_owned())]);
    assert_eq!(reason_of(&ips[2]), [("delete".to_owned(), "allowlisted".to_owned())]);
    assert_eq!(reason_of(&next[next.len() - 1]), [("create".to_owned(), "new-in-feed".to_owned())]);
    assert_eq!(reason_of(&ips[5]), [("update".to_owned(), "metadata-changed".to_owned())]);
    let upd = rows.iter().find(|r| r["value"] == ips[5].as_str()).unwrap();
    assert_eq!(upd["before"]["severity"], "High");
    assert_eq!(upd["after"]["severity"], "Low");
    assert_eq!(upd["feeds"], serde_json::json!(["a"]));
    let gone = rows.iter().find(|r| r["value"] == ips[0].as_str()).unwrap();
    assert_eq!(gone["feeds"], serde_json::json!(["a"]), "the feed that carried it");
    assert!(gone["before"]["id"].is_string() && gone["after"].is_null());
    // Everything the run changed and nothing else: 2 + 1 deletes, 1 create, 37 updates.
    assert_eq!(rows.len(), 41);

    // The export streams every row of both runs; JSON lines and CSV read back into the same rows.
    let all = journal(&env).await;
    assert_eq!(all.len(), 81);
    let from_history: Vec<&Value> = rows.iter().collect();
    let exported: Vec<&Value> = all.iter().filter(|r| r["run"] == second).collect();
    assert_eq!(exported, from_history);
    let csv = env.run(&["history", "--export", "csv"]).await;
    assert!(csv.status.success());
    let mut rdr = csv::Reader::from_reader(&csv.stdout[..]);
    let headers = rdr.headers().unwrap().clone();
    let mut n = 0;
    for (rec, json) in rdr.records().zip(&all) {
        let rec = rec.unwrap();
        let get = |k: &str| rec.get(headers.iter().position(|h| h == k).unwrap()).unwrap().to_owned();
        let parse = |s: String| if s.is_empty() { Value::Null } else { serde_json::from_str(&s).unwrap() };
        let back = serde_json::json!({
            "seq": get("seq").parse::<i64>().unwrap(), "run": get("run").parse::<i64>().unwrap(),
            "at": get("at"), "tenant": get("tenant"), "kind": get("kind"),
            "id": if get("id").is_empty() { Value::Null } else { Value::from(get("id")) },
            "type": get("type"), "value": get("value"), "action": get("action"), "reason": get("reason"),
            "feeds": parse(get("feeds")), "before": parse(get("before")), "after": parse(get("after")),
        });
        let mut want = json.clone();
        // The JSON time carries its own offset spelling; compare the instants.
        let t = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
        assert_eq!(t(&back["at"]), t(&want["at"]));
        want["at"] = back["at"].clone();
        assert_eq!(back, want);
        n += 1;
    }
    assert_eq!(n, 81, "one CSV record per row");
    // --since as an age: everything of the last hour.
    let out = env.run(&["history", "--export", "jsonl", "--since", "1h"]).await;
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 81);
    // --since in the future: nothing.
    let out = env.run(&["history", "--export", "jsonl", "--since", "2999-01-01T00:00:00Z"]).await;
    assert!(out.status.success() && out.stdout.is_empty());
}

/// Random plans applied with random failures: the journal equals, id for id, the writes the
/// emulator answered with success, and a run that stopped midway is `partial`.
#[tokio::test(flavor = "multi_thread")]
async fn journal_equals_the_answered_writes_under_random_failures() {
    let env = chaos_env().await;
    let pool = public_ips(1_600, 20_000);
    env.config(&chaos_config("feed.txt"));
    let mut rng = SplitMix(0x0c4a_46e1);
    let trials: usize =
        std::env::var("IOCSYNC_JOURNAL_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let mut stopped = 0;
    for trial in 0..trials {
        let start = rng.range(0, 600) as usize;
        let len = rng.range(300, 1_000) as usize;
        env.write("feed.txt", &text_feed(&pool[start..(start + len).min(pool.len())]));
        let nth = rng.range(1, 3) as u32;
        let rule = match rng.range(0, 6) {
            0 => None,
            1 => Some(FaultRule::new(Some(EndpointFamily::Import), Fault::Status(403), Trigger::Nth(nth))),
            2 => Some(FaultRule::new(Some(EndpointFamily::BatchDelete), Fault::Status(403), Trigger::Nth(1))),
            3 => Some(FaultRule::new(Some(EndpointFamily::Import), Fault::Drop, Trigger::Nth(nth))),
            4 => {
                Some(FaultRule::new(Some(EndpointFamily::Import), Fault::DropAfterCommit, Trigger::Nth(nth)))
            }
            _ => Some(FaultRule::new(Some(EndpointFamily::Import), Fault::Status(503), Trigger::FirstN(40))),
        };
        if let Some(r) = rule {
            env.emu.inject(r);
        }
        let out = env.run(&["--output", "json", "sync", "--force"]).await;
        let code = out.status.code().unwrap_or(-1);
        assert!(
            [0, 1, 3].contains(&code),
            "trial {trial}: exit {code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        env.emu.clear_faults();
        if code != 0 {
            stopped += 1;
        }
        let (j, a) = (journal_writes(&journal(&env).await), answered_writes(&env));
        let only_j: Vec<_> = j.iter().filter(|(k, n)| a.get(*k) != Some(*n)).take(5).collect();
        let only_a: Vec<_> = a.iter().filter(|(k, n)| j.get(*k) != Some(*n)).take(5).collect();
        assert!(
            only_j.is_empty() && only_a.is_empty(),
            "trial {trial} (exit {code}): journal {} rows, answered {}; journal only e.g. {only_j:?}; answered only e.g. {only_a:?}",
            j.values().sum::<usize>(),
            a.values().sum::<usize>()
        );
    }
    let (_, h) = env.run_json(&["history", "--limit", "100"]).await;
    let partial = h["runs"].as_array().unwrap().iter().filter(|r| r["status"] == "partial").count();
    assert!(
        stopped >= 1 && partial >= 1,
        "the seed must stop at least one run midway ({stopped} stopped, {partial} partial)"
    );
    assert!(!journal(&env).await.is_empty());
}

/// plan --out, nothing changes, sync --plan: exactly the planned writes land, even though the
/// feed changed in between (the plan is what was approved).
#[tokio::test(flavor = "multi_thread")]
async fn a_saved_plan_applies_exactly_its_change_set() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(30, 40_000);
    env.write("a.txt", &text_feed(&ips[..20]));
    env.config(&format!("{BASE}{}", feed("a", "a.txt", "")));
    let (code, _) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0);
    // Next: 2 leave, 10 arrive.
    env.write("a.txt", &text_feed(&ips[2..30]));
    let (code, report) = env.run_json(&["plan", "--out", "plan.json"]).await;
    assert_eq!(code, 0, "{report}");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(env.path("plan.json")).unwrap()).unwrap();
    assert_eq!(file["format"], "iocsync-plan/1");
    assert_eq!(file["counts"]["create"], 10);
    assert_eq!(file["counts"]["delete"], 2);
    assert_eq!(file["content_hash"].as_str().unwrap().len(), 64);
    assert_eq!(file["feeds"][0]["name"], "a");
    assert!(file["feeds"][0]["content_hash"].is_string() && file["config_hash"].is_string());
    let del = file["changes"].as_array().unwrap().iter().find(|c| c["kind"] == "delete").unwrap();
    assert!(del["before"]["id"].is_string(), "the tenant row it was planned against");
    let planned: BTreeSet<(String, String)> = file["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["kind"].as_str().unwrap().to_owned(), c["value"].as_str().unwrap().to_owned()))
        .collect();
    // The plan must not have written anything.
    assert_eq!(env.owned().len(), 20);

    // The feed moves on; the approved plan still applies as it was.
    env.write("a.txt", &text_feed(&ips[5..10]));
    env.emu.clear_calls();
    let (code, report) = env.run_json(&["sync", "--plan", "plan.json"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["create"], 10);
    assert_eq!(report["counts"]["delete"], 2);
    let written: usize = env
        .emu
        .calls()
        .iter()
        .filter(|c| matches!(c.family, EndpointFamily::Import | EndpointFamily::BatchDelete))
        .map(|c| c.written.len())
        .sum();
    assert_eq!(written, 12, "the call log shows only the planned items");
    let owned: BTreeSet<String> = env.owned().into_iter().map(|i| i.indicator_value).collect();
    assert_eq!(owned, ips[2..30].iter().cloned().collect::<BTreeSet<_>>());
    let run = last_run(&env).await;
    let (_, ch) = env.run_json(&["history", "--run", &run.to_string(), "--changes"]).await;
    let journaled: BTreeSet<(String, String)> = ch["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["kind"].as_str().unwrap().to_owned(), c["value"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(journaled, planned);

    // Applying it twice: its creates are in the tenant now, so it has drifted.
    let (code, out) = env.run_json(&["sync", "--plan", "plan.json"]).await;
    assert_eq!(code, 1, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_plan_is_refused_when_a_row_it_touches_changed_when_tampered_or_too_old() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(20, 50_000);
    env.write("a.txt", &text_feed(&ips));
    env.config(&format!("{BASE}{}", feed("a", "a.txt", "")));
    let (code, _) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0);
    env.write("a.txt", &text_feed(&ips[1..]));
    let (code, _) = env.run_json(&["plan", "--out", "plan.json"]).await;
    assert_eq!(code, 0);
    let text = std::fs::read_to_string(env.path("plan.json")).unwrap();

    // Tampered: one value changed, the hash left as it was.
    env.write("tampered.json", &text.replacen(&ips[0], "45.99.99.99", 1));
    let (code, out) = env.run_json(&["sync", "--plan", "tampered.json"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out["error"].as_str().unwrap().contains("content hash does not match"), "{out}");
    // Too old.
    let (code, out) = env.run_json(&["sync", "--plan", "plan.json", "--max-plan-age", "1ns"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out["error"].as_str().unwrap().contains("older than --max-plan-age"), "{out}");

    // The row the plan deletes changes (a later sync lowers every severity): refused, nothing written.
    env.config(&format!("{BASE}{}", feed("a", "a.txt", "severity = \"Low\"")));
    env.write("a.txt", &text_feed(&ips));
    let (code, _) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0);
    let before = env.emu.indicators();
    env.emu.clear_calls();
    let (code, out) = env.run_json(&["sync", "--plan", "plan.json"]).await;
    assert_eq!(code, 1, "{out}");
    let msg = out["error"].as_str().unwrap();
    assert!(msg.contains(&ips[0]) && msg.contains("severity"), "says what drifted: {msg}");
    assert_eq!(env.write_calls(), 0);
    assert_eq!(env.emu.indicators(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_markdown_is_a_review_text() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(12, 60_000);
    let mut lines = ips.clone();
    lines.push("10.0.0.1".into());
    env.write("a.txt", &text_feed(&lines));
    env.config(&format!("{BASE}{}", feed("a", "a.txt", "")));
    let out = env.run(&["--output", "markdown", "plan"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.contains("## iocsync plan for tenant `default`"), "{md}");
    assert!(md.contains("| create | 12 |"), "{md}");
    assert!(md.contains("| a | create | 12 |"), "per-feed changes: {md}");
    assert!(md.contains("### create: first 10 of 12"), "{md}");
    assert!(md.contains("- private-address: 1"), "skips by reason: {md}");
    assert!(md.contains("**Capacity:**") && md.contains("**Brake:**"), "{md}");
    assert_eq!(env.write_calls(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_a_value_in_the_tenant_with_a_foreign_row_in_any_spelling() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(10, 70_000);
    env.write("a.txt", &text_feed(&ips));
    env.config(&format!("{BASE}{}", feed("a", "a.txt", "severity = \"Medium\"\npriority = 7")));
    let (code, _) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0);
    env.emu.seed(iocsync_emulator::SeedIndicator::portal(
        "IpAddress",
        &ips[3],
        "Audit",
        "analyst@contoso.com",
    ));
    let ours = env.owned().into_iter().find(|i| i.indicator_value == ips[3]).unwrap();
    let defanged = ips[3].replace('.', "[.]");
    env.emu.clear_calls();
    let (code, r) = env.run_json(&["explain", &defanged]).await;
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["type"], "IpAddress");
    assert_eq!(r["value"], ips[3].as_str(), "normalised first");
    assert_eq!(r["feeds"][0]["feed"], "a");
    assert_eq!(r["feeds"][0]["action"], "Block");
    assert_eq!(r["feeds"][0]["severity"], "Medium");
    assert_eq!(r["feeds"][0]["priority"], 7);
    assert_eq!(r["feeds"][0]["line"], 5, "line 1 is the comment");
    assert!(r["allowlist"].is_null() && r["desired"] == true);
    assert_eq!(r["capacity"]["fits"], true);
    let rows = r["tenant_rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let mine = rows.iter().find(|t| t["ours"] == true).unwrap();
    assert_eq!(mine["id"], ours.id.as_str());
    let theirs = rows.iter().find(|t| t["ours"] == false).unwrap();
    assert_eq!(theirs["created_by"], "analyst@contoso.com");
    assert_eq!(r["journal"].as_array().unwrap().len(), 1);
    assert_eq!(r["journal"][0]["kind"], "create");
    assert_eq!(r["api_calls"], 1);
    assert_eq!(
        env.emu.calls().iter().filter(|c| c.family != EndpointFamily::Token).count(),
        1,
        "one API call"
    );
    assert_eq!(env.write_calls(), 0);
    // --offline: no call at all.
    env.emu.clear_calls();
    let (code, r) = env.run_json(&["explain", &ips[3], "--offline"]).await;
    assert_eq!(code, 0, "{r}");
    assert!(r["tenant_rows"].is_null());
    assert_eq!(r["api_calls"], 0);
    assert!(env.emu.calls().is_empty(), "{:?}", env.emu.calls());
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_an_allowlisted_an_over_capacity_and_a_rejected_value() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(40, 80_000);
    let mut lines = ips.clone();
    lines.push("10.1.2.3".into());
    env.write("a.txt", &text_feed(&lines));
    env.write("allow.txt", &format!("# partner\n{}\n", ips[0]));
    env.config(&format!(
        "[sync]\nstate = \"state/iocsync.db\"\ncapacity = 30\nheadroom = 5\n[allowlist]\nfiles = [\"allow.txt\"]\n{}",
        feed("a", "a.txt", "")
    ));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(env.owned().len(), 25);

    let (code, r) = env.run_json(&["explain", &ips[0]]).await;
    assert_eq!(code, 0, "{r}");
    let entry = r["allowlist"].as_str().expect("the allowlist entry");
    assert!(entry.contains(&ips[0]) && entry.contains("allow.txt"), "which entry, from which file: {entry}");
    assert_eq!(r["desired"], false);
    assert!(r["verdict"].as_str().unwrap().starts_with("not pushed: allowlisted"), "{r}");
    assert_eq!(r["tenant_rows"], serde_json::json!([]));

    let owned: BTreeSet<String> = env.owned().into_iter().map(|i| i.indicator_value).collect();
    let out = ips[1..].iter().find(|v| !owned.contains(*v)).expect("a value cut by the capacity");
    let (code, r) = env.run_json(&["explain", out]).await;
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["capacity"]["fits"], false, "{r}");
    assert_eq!(r["capacity"]["room"], 25);
    assert_eq!(r["capacity"]["of"], 39);
    assert!(r["capacity"]["rank"].as_u64().unwrap() > 25);
    assert!(r["verdict"].as_str().unwrap().contains("over capacity"), "{r}");
    let kept = ips[1..].iter().find(|v| owned.contains(*v)).unwrap();
    let (_, r) = env.run_json(&["explain", kept]).await;
    assert_eq!(r["capacity"]["fits"], true, "{r}");
    assert!(r["capacity"]["rank"].as_u64().unwrap() <= 25);

    let (code, r) = env.run_json(&["explain", "10.1.2.3", "--offline"]).await;
    assert_eq!(code, 0, "{r}");
    let rejects = r["rejects"].as_array().unwrap();
    assert!(rejects.iter().any(|x| x["source"] == "input" && x["reason"] == "private-address"), "{r}");
    let by_feed = rejects.iter().find(|x| x["source"] == "a").expect("the feed that carried it");
    assert_eq!(by_feed["reason"], "private-address");
    assert!(by_feed["last_seen"].is_string(), "when: {r}");
    assert!(r["verdict"].as_str().unwrap().contains("refused"), "{r}");
}

/// What undo must restore: every field of every indicator except ids and timestamps Defender sets.
fn tenant_state(env: &Env) -> Vec<Value> {
    let mut v: Vec<Value> = env
        .emu
        .indicators()
        .into_iter()
        .map(|i| {
            serde_json::json!([
                i.indicator_type,
                i.indicator_value,
                i.action,
                i.created_by,
                i.severity,
                i.title,
                i.description,
                i.expiration_time,
                i.external_id,
                i.generate_alert,
                i.rbac_group_names,
                i.application,
                i.recommended_actions,
                i.mitre_techniques,
                i.educate_url
            ])
        })
        .collect();
    v.sort_by_key(|x| x.to_string());
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn undo_of_a_run_creating_1200_and_deleting_300_restores_the_tenant_exactly() {
    let env = Env::start(EnvOptions::default()).await;
    env.emu.seed(iocsync_emulator::SeedIndicator::portal(
        "IpAddress",
        "45.1.1.1",
        "Block",
        "analyst@contoso.com",
    ));
    env.write("a.txt", &text_feed(&public_ips(300, 100_000)));
    env.config(&format!("{BASE}{}", feed("a", "a.txt", "")));
    let (code, _) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0);
    let before = tenant_state(&env);
    assert_eq!(before.len(), 301);

    env.write("a.txt", &text_feed(&public_ips(1_200, 200_000)));
    let (code, report) = env.run_json(&["sync", "--force"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        (report["counts"]["create"].as_u64(), report["counts"]["delete"].as_u64()),
        (Some(1_200), Some(300))
    );
    let run = last_run(&env).await.to_string();
    let changed = tenant_state(&env);

    // A dry run by default; the brake (1,200 deletes) refuses without --force.
    let (code, plan) = env.run_json(&["undo", "--run", &run]).await;
    assert_eq!(code, 4, "{plan}");
    assert!(plan["brake"].as_str().unwrap().contains("brake"), "{plan}");
    assert_eq!(plan["counts"]["delete"], 1_200);
    assert_eq!(plan["counts"]["create"], 300);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(tenant_state(&env), changed, "nothing written");
    let (code, plan) = env.run_json(&["undo", "--run", &run, "--force"]).await;
    assert_eq!(code, 0, "{plan}");
    assert_eq!(tenant_state(&env), changed, "still nothing written without --yes");

    let (code, done) = env.run_json(&["undo", "--run", &run, "--force", "--yes"]).await;
    assert_eq!(code, 0, "{done}");
    assert_eq!(tenant_state(&env), before, "the tenant set is back, field for field");
    let undo_run = done["undo_run"].as_i64().unwrap();
    let (_, ch) = env.run_json(&["history", "--run", &undo_run.to_string(), "--changes"]).await;
    let rows = ch["changes"].as_array().unwrap();
    assert_eq!(rows.len(), 1_500);
    assert!(rows.iter().all(|r| r["reason"] == "undo"));

    // Undoing the undo is refused, and so is undoing the same run twice.
    let (code, out) = env.run_json(&["undo", "--run", &undo_run.to_string(), "--yes", "--force"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out["error"].as_str().unwrap().contains("undoing an undo is refused"), "{out}");
    let (code, out) = env.run_json(&["undo", "--run", &run, "--yes", "--force"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out["error"].as_str().unwrap().contains("already undone"), "{out}");
    assert_eq!(tenant_state(&env), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn undo_skips_changes_a_later_run_superseded_and_values_allowlisted_since() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(55, 300_000);
    env.write("a.txt", &text_feed(&ips[..50]));
    let config = |sev: &str, allow: &str| {
        format!(
            "{BASE}[allowlist]\nvalues = [{allow}]\n{}",
            feed("a", "a.txt", &format!("severity = \"{sev}\""))
        )
    };
    env.config(&config("High", ""));
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    // Run 2: 0..5 leave, 50..55 arrive, the rest change severity.
    env.write("a.txt", &text_feed(&ips[5..55]));
    env.config(&config("Low", ""));
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    let run2 = last_run(&env).await;
    // Run 3 (later): 50 and 51 leave again, 0 comes back.
    let mut third: Vec<String> = ips[5..50].to_vec();
    third.extend_from_slice(&ips[52..55]);
    third.push(ips[0].clone());
    env.write("a.txt", &text_feed(&third));
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    // Since then, ips[1] (deleted by run 2) was allowlisted.
    env.config(&config("Low", &format!("\"{}\"", ips[1])));

    let (code, plan) = env.run_json(&["undo", "--run", &run2.to_string()]).await;
    assert_eq!(code, 0, "{plan}");
    let skipped: BTreeMap<String, String> = plan["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["value"].as_str().unwrap().to_owned(), s["why"].as_str().unwrap().to_owned()))
        .collect();
    let run3 = format!("superseded by run {}", run2 + 1);
    assert_eq!(skipped.get(&ips[0]), Some(&run3));
    assert_eq!(skipped.get(&ips[50]), Some(&run3));
    assert_eq!(skipped.get(&ips[51]), Some(&run3));
    assert!(skipped[&ips[1]].starts_with("allowlisted since"), "undo says so: {skipped:?}");
    assert_eq!(skipped.len(), 4);
    assert_eq!(plan["counts"], serde_json::json!({"create": 3, "delete": 3, "restore": 45}));

    let (code, done) = env.run_json(&["undo", "--run", &run2.to_string(), "--yes"]).await;
    assert_eq!(code, 0, "{done}");
    let owned: BTreeMap<String, String> =
        env.owned().into_iter().map(|i| (i.indicator_value, i.severity)).collect();
    let want: BTreeSet<String> =
        [0, 2, 3, 4].iter().map(|n| ips[*n].clone()).chain(ips[5..50].iter().cloned()).collect();
    assert_eq!(owned.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert!(ips[2..50].iter().all(|v| owned[v] == "High"), "restored fields");
    assert_eq!(owned[&ips[0]], "Low", "run 3's re-create is left as run 3 made it");
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_and_adopt_are_journaled_and_a_purge_can_be_undone() {
    let env = Env::start(EnvOptions::default()).await;
    env.write("a.txt", &text_feed(&public_ips(20, 400_000)));
    env.config(&format!("{BASE}{}", feed("a", "a.txt", "")));
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    let before = tenant_state(&env);
    // A run that changed nothing has nothing to undo, and no undo run is recorded.
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    let quiet = last_run(&env).await;
    let (code, out) = env.run_json(&["undo", "--run", &quiet.to_string(), "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["changes"], serde_json::json!([]));
    assert!(out["undo_run"].is_null());
    assert_eq!(last_run(&env).await, quiet);

    let (code, out) = env.run_json(&["purge", "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(env.owned().is_empty());
    let purge_run = last_run(&env).await;
    let (_, ch) = env.run_json(&["history", "--run", &purge_run.to_string(), "--changes"]).await;
    let rows = ch["changes"].as_array().unwrap();
    assert_eq!(rows.len(), 20);
    assert!(
        rows.iter()
            .all(|r| r["kind"] == "delete" && r["reason"] == "purge" && r["before"]["title"].is_string())
    );
    let (code, out) = env.run_json(&["undo", "--run", &purge_run.to_string(), "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(tenant_state(&env), before, "a purge taken back");

    // adopt: an older script's rows (this app, no marker) are deleted and re-created as iocsync's.
    let legacy = public_ips(3, 500_000);
    for v in &legacy {
        env.emu.seed(iocsync_emulator::SeedIndicator::app(
            "IpAddress",
            v,
            "Block",
            crate::harness::CLIENT_ID,
            "old-script",
        ));
    }
    let (code, out) = env.run_json(&["adopt", "--created-by", crate::harness::CLIENT_ID, "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    let adopt_run = last_run(&env).await;
    let (_, ch) = env.run_json(&["history", "--run", &adopt_run.to_string(), "--changes"]).await;
    let rows = ch["changes"].as_array().unwrap();
    assert_eq!(rows.iter().filter(|r| r["kind"] == "delete" && r["reason"] == "adopt").count(), 3);
    assert_eq!(rows.iter().filter(|r| r["kind"] == "create" && r["reason"] == "adopt").count(), 3);
    let created: BTreeSet<&str> =
        rows.iter().filter(|r| r["kind"] == "create").map(|r| r["id"].as_str().unwrap()).collect();
    let now_owned: BTreeSet<String> =
        env.owned().into_iter().filter(|i| legacy.contains(&i.indicator_value)).map(|i| i.id).collect();
    assert_eq!(created, now_owned.iter().map(String::as_str).collect());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_change_control_command_takes_tenant_in_a_multi_tenant_config() {
    let east = Env::start(EnvOptions::default()).await;
    let west = Env::start(EnvOptions::default()).await;
    let block = |name: &str, env: &Env| {
        let base = env.emu.base_url();
        format!(
            "[[tenants]]\nname = \"{name}\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = {{ env = \"IOCSYNC_TEST_SECRET\" }}\napi_base = \"{base}\"\nauthority = \"{base}\"\n\n",
            env.emu.tenant_id(),
            crate::harness::CLIENT_ID
        )
    };
    let ips = public_ips(12, 600_000);
    east.write("a.txt", &text_feed(&ips[..10]));
    let text = format!("{}{}{BASE}{}", block("east", &east), block("west", &west), feed("a", "a.txt", ""));
    east.write("iocsync.toml", &text);
    let (code, out) = east.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!((east.owned().len(), west.owned().len()), (10, 10));

    east.write("a.txt", &text_feed(&ips[2..12]));
    let (code, out) = east.run_json(&["plan", "--out", "p.json"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out["error"].as_str().unwrap().contains("--tenant"), "{out}");
    let (code, out) = east.run_json(&["plan", "--tenant", "west", "--out", "p.json"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = east.run_json(&["sync", "--plan", "p.json", "--tenant", "east"]).await;
    assert_eq!(code, 1, "{out}");
    let east_before = tenant_state(&east);
    let (code, out) = east.run_json(&["sync", "--plan", "p.json"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["tenant"], "west");
    assert_eq!(tenant_state(&east), east_before, "only the plan's tenant is touched");
    let west_values: BTreeSet<String> = west.owned().into_iter().map(|i| i.indicator_value).collect();
    assert_eq!(west_values, ips[2..12].iter().cloned().collect());

    let (_, h) = east.run_json(&["history", "--tenant", "west"]).await;
    let runs = h["runs"].as_array().unwrap();
    assert!(runs.iter().all(|r| r["tenant"] == "west") && runs.len() == 3, "{h}");
    let west_run = runs[0]["id"].as_i64().unwrap().to_string();
    let (code, _) = east.run_json(&["history", "--run", &west_run, "--changes", "--tenant", "east"]).await;
    assert_eq!(code, 1);
    let out = east.run(&["history", "--export", "jsonl", "--tenant", "west"]).await;
    let rows: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 10 + 4);
    assert!(rows.iter().all(|r| r["tenant"] == "west"));

    let (code, out) = east.run_json(&["explain", &ips[0]]).await;
    assert_eq!(code, 1, "{out}");
    let (code, out) = east.run_json(&["explain", &ips[0], "--tenant", "east"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["tenant"], "east");
    assert_eq!(out["tenant_rows"].as_array().unwrap().len(), 1, "still in east");
    let (code, out) = east.run_json(&["explain", &ips[0], "--tenant", "west"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["tenant_rows"], serde_json::json!([]), "gone from west");

    let (code, _) = east.run_json(&["undo", "--run", &west_run, "--tenant", "east"]).await;
    assert_eq!(code, 1);
    let (code, out) =
        east.run_json(&["undo", "--run", &west_run, "--tenant", "west", "--yes", "--force"]).await;
    assert_eq!(code, 0, "{out}");
    let west_values: BTreeSet<String> = west.owned().into_iter().map(|i| i.indicator_value).collect();
    assert_eq!(west_values, ips[..10].iter().cloned().collect());
}

/// The content hash of a plan document (what `plan --out` computes): SHA-256 of the canonical JSON
/// without `content_hash`. A forger can recompute it, so the apply must not trust the plan's claims.
fn reseal(doc: &mut Value) {
    use sha2::Digest as _;
    doc.as_object_mut().unwrap().remove("content_hash");
    let hash = hex::encode(sha2::Sha256::digest(doc.to_string().as_bytes()));
    doc["content_hash"] = Value::from(hash);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_plan_cannot_bypass_ownership_the_allowlist_or_the_brake() {
    let env = Env::start(EnvOptions::default()).await;
    let foreign_id = env.emu.seed(iocsync_emulator::SeedIndicator::portal(
        "IpAddress",
        "45.200.0.1",
        "Block",
        "analyst@contoso.com",
    ));
    let ips = public_ips(20, 700_000);
    env.write("a.txt", &text_feed(&ips));
    env.config(&format!("{BASE}{}", feed("a", "a.txt", "")));
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    env.write("a.txt", &text_feed(&ips[1..]));
    assert_eq!(env.run_json(&["plan", "--out", "plan.json"]).await.0, 0);
    let text = std::fs::read_to_string(env.path("plan.json")).unwrap();
    let before = tenant_state(&env);

    // A forged plan (hash recomputed) aiming its delete at an analyst's indicator.
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    let del = doc["changes"].as_array_mut().unwrap().iter_mut().find(|c| c["kind"] == "delete").unwrap();
    del["id"] = Value::from(foreign_id.clone());
    reseal(&mut doc);
    env.write("forged.json", &doc.to_string());
    let (code, out) = env.run_json(&["sync", "--plan", "forged.json"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out["error"].as_str().unwrap().contains("not iocsync's"), "{out}");
    assert_eq!(tenant_state(&env), before);

    // A create of a value allowlisted since the plan was made.
    env.write("a.txt", &text_feed(&public_ips(21, 700_000)));
    assert_eq!(env.run_json(&["plan", "--out", "grow.json"]).await.0, 0);
    let new_value = &public_ips(21, 700_000)[20];
    // A forged create of a private address (hash recomputed) is refused like a feed's would be.
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("grow.json")).unwrap()).unwrap();
    let create = doc["changes"].as_array_mut().unwrap().iter_mut().find(|c| c["kind"] == "create").unwrap();
    create["value"] = Value::from("10.0.0.5");
    create["desired"]["value"] = Value::from("10.0.0.5");
    reseal(&mut doc);
    env.write("private.json", &doc.to_string());
    let (code, out) = env.run_json(&["sync", "--plan", "private.json"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out["error"].as_str().unwrap().contains("refused as private-address"), "{out}");
    assert_eq!(tenant_state(&env), before);
    // A forged create without iocsync's ownership marker.
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("grow.json")).unwrap()).unwrap();
    let create = doc["changes"].as_array_mut().unwrap().iter_mut().find(|c| c["kind"] == "create").unwrap();
    create["desired"].as_object_mut().unwrap().remove("external_id");
    reseal(&mut doc);
    env.write("unmarked.json", &doc.to_string());
    let (code, out) = env.run_json(&["sync", "--plan", "unmarked.json"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out["error"].as_str().unwrap().contains("ownership marker"), "{out}");
    env.config(&format!("{BASE}[allowlist]\nvalues = [\"{new_value}\"]\n{}", feed("a", "a.txt", "")));
    let (code, out) = env.run_json(&["sync", "--plan", "grow.json"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out["error"].as_str().unwrap().contains("allowlisted since"), "{out}");
    assert_eq!(tenant_state(&env), before);

    // The brake judges a saved plan at apply time: planned under a config without a brake, a
    // plan deleting 15 of 20 waits (exit 4) once the brake is back...
    env.write("a.txt", &text_feed(&ips[15..]));
    let loose = "max_shrink_fraction = 0.9\nmax_delete_fraction = 1.0\n";
    env.config(&format!("{BASE}{loose}{}", feed("a", "a.txt", "")));
    let (code, out) = env.run_json(&["plan", "--out", "wipe.json"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["counts"]["delete"], 15);
    env.config(&format!("{BASE}max_shrink_fraction = 0.9\n{}", feed("a", "a.txt", "")));
    let (code, out) = env.run_json(&["sync", "--plan", "wipe.json"]).await;
    assert_eq!(code, 4, "{out}");
    assert!(out["brake"].as_str().unwrap().contains("15"), "{out}");
    assert_eq!(tenant_state(&env), before, "nothing applied");
    // ...even when the plan file claims it counts nothing for the brake.
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("wipe.json")).unwrap()).unwrap();
    doc["brake_counted"] = Value::from(0);
    reseal(&mut doc);
    env.write("wipe.json", &doc.to_string());
    let (code, out) = env.run_json(&["sync", "--plan", "wipe.json"]).await;
    assert_eq!(code, 4, "{out}");
    assert_eq!(tenant_state(&env), before, "nothing applied");
    // Other creators filled the tenant since: the plan's creates no longer fit.
    env.config(&format!(
        "[sync]\nstate = \"state/iocsync.db\"\ncapacity = 25\nheadroom = 2\n{}",
        feed("a", "a.txt", "")
    ));
    for ip in public_ips(3, 710_000) {
        env.emu.seed(iocsync_emulator::SeedIndicator::portal(
            "IpAddress",
            &ip,
            "Block",
            "analyst@contoso.com",
        ));
    }
    let (code, out) = env.run_json(&["sync", "--plan", "grow.json"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out["error"].as_str().unwrap().contains("over the capacity"), "{out}");
    assert_eq!(env.owned().len(), 20, "nothing created");
}

#[tokio::test(flavor = "multi_thread")]
async fn undo_refuses_to_overfill_the_tenant() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(20, 800_000);
    env.write("a.txt", &text_feed(&ips));
    env.config(&format!(
        "[sync]\nstate = \"state/iocsync.db\"\ncapacity = 25\nheadroom = 2\n{}",
        feed("a", "a.txt", "")
    ));
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    env.write("a.txt", &text_feed(&ips[5..]));
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    let run = last_run(&env).await.to_string();
    for ip in public_ips(6, 810_000) {
        env.emu.seed(iocsync_emulator::SeedIndicator::portal(
            "IpAddress",
            &ip,
            "Block",
            "analyst@contoso.com",
        ));
    }
    let before = tenant_state(&env);
    let (code, out) = env.run_json(&["undo", "--run", &run, "--yes", "--force"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out["error"].as_str().unwrap().contains("over the capacity"), "{out}");
    assert_eq!(tenant_state(&env), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn log_format_json_carries_each_journal_line_with_its_run_id() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(7, 900_000);
    env.write("a.txt", &text_feed(&ips));
    env.config(&format!("{BASE}{}", feed("a", "a.txt", "")));
    let out = env.run(&["--log-format", "json", "--output", "json", "sync"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is still the one report");
    assert_eq!(report["counts"]["create"], 7);
    let run = last_run(&env).await;
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    let journal: BTreeSet<String> = lines
        .iter()
        .filter(|l| l["message"] == "journal")
        .inspect(|l| {
            assert_eq!(l["level"], "info");
            assert_eq!(l["run"], run);
            assert_eq!(l["run_id"], run, "the run's span carries its id too");
            assert_eq!(l["tenant"], "default");
            assert_eq!(l["reason"], "new-in-feed");
            assert!(l["indicator_id"].as_str().is_some_and(|id| !id.is_empty()));
        })
        .map(|l| l["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(journal, ips.iter().cloned().collect());
    assert!(!String::from_utf8_lossy(&out.stderr).contains(crate::harness::SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_a_value_defender_refused_says_when_and_why() {
    let behaviour = iocsync_emulator::Behaviour {
        known_device_groups: Some(vec!["Servers".to_owned()]),
        ..Default::default()
    };
    let env = Env::start(EnvOptions { behaviour, ..EnvOptions::default() }).await;
    let ips = public_ips(2, 950_000);
    env.write("a.txt", &text_feed(&ips));
    env.config(&format!("{BASE}{}", feed("a", "a.txt", "rbac_groups = [\"Laptops\"]")));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 3, "{report}");
    let (code, r) = env.run_json(&["explain", &ips[1]]).await;
    assert_eq!(code, 0, "{r}");
    let d = r["rejects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["source"] == "defender")
        .expect("Defender's refusal");
    assert_eq!(d["reason"], "rejected-by-defender");
    assert!(d["detail"].as_str().is_some_and(|t| !t.is_empty()), "{r}");
    assert!(d["first_seen"].is_string() && d["last_seen"].is_string(), "when: {r}");
    assert!(r["verdict"].as_str().unwrap().starts_with("held back: Defender refused it"), "{r}");
    assert_eq!(r["tenant_rows"], serde_json::json!([]));
    assert_eq!(r["journal"], serde_json::json!([]), "a refused write is not journaled");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_action_change_applies_from_a_saved_plan_and_undoes_back() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(4, 990_000);
    let others = public_ips(16, 991_000);
    env.write("a.txt", &text_feed(&ips));
    env.write("b.txt", &text_feed(&others));
    let cfg = |action: &str| {
        format!("{BASE}{}{}", feed("a", "a.txt", &format!("action = \"{action}\"")), feed("b", "b.txt", ""))
    };
    env.config(&cfg("Block"));
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    let before = tenant_state(&env);
    env.config(&cfg("Audit"));
    let (code, out) = env.run_json(&["plan", "--out", "p.json"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["counts"]["replace"], 4);
    let (code, out) = env.run_json(&["sync", "--plan", "p.json"]).await;
    assert_eq!(code, 0, "{out}");
    let audit: BTreeSet<String> =
        env.owned().into_iter().filter(|i| i.action == "Audit").map(|i| i.indicator_value).collect();
    assert_eq!(audit, ips.iter().cloned().collect());
    let run = last_run(&env).await.to_string();
    let (_, ch) = env.run_json(&["history", "--run", &run, "--changes"]).await;
    let kinds: Vec<(&str, &str)> = ch["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["kind"].as_str().unwrap(), c["action"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == ("delete", "Block")).count(), 4, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == ("create", "Audit")).count(), 4, "{kinds:?}");
    // Replacing back counts against the brake like any replace (4 more in this window: held).
    let (code, out) = env.run_json(&["undo", "--run", &run, "--yes"]).await;
    assert_eq!(code, 4, "{out}");
    let (code, out) = env.run_json(&["undo", "--run", &run, "--yes", "--force"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(tenant_state(&env), before, "Block again, field for field");
}

/// Every answer to a run's import is lost after Defender committed it (the run fails): its journal
/// is empty, and `undo --yes` first finds the writes in the tenant, journals them, then reverts them.
#[tokio::test(flavor = "multi_thread")]
async fn writes_committed_but_never_answered_are_journaled_before_an_undo() {
    let env = chaos_env().await;
    env.config(&chaos_config("feed.txt"));
    let ips = public_ips(50, 960_000);
    env.write("feed.txt", &text_feed(&ips));
    env.emu.inject(FaultRule::new(Some(EndpointFamily::Import), Fault::DropAfterCommit, Trigger::FirstN(40)));
    let (code, out) = env.run_json(&["sync"]).await;
    assert_ne!(code, 0, "{out}");
    env.emu.clear_faults();
    assert_eq!(env.owned().len(), 50, "Defender committed every attempt");
    let run = last_run(&env).await.to_string();
    let (_, ch) = env.run_json(&["history", "--run", &run, "--changes"]).await;
    assert_eq!(ch["changes"], serde_json::json!([]), "no answer, no row yet");

    let (code, out) = env.run_json(&["undo", "--run", &run, "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["counts"]["delete"], 50, "{out}");
    assert!(env.owned().is_empty());
    let (_, ch) = env.run_json(&["history", "--run", &run, "--changes"]).await;
    let rows = ch["changes"].as_array().unwrap();
    assert_eq!(rows.len(), 50, "found in the tenant and journaled under the run that made them");
    assert!(rows.iter().all(|r| r["kind"] == "create" && r["id"].is_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_looks_up_a_url_with_a_quote_in_one_call() {
    let env = Env::start(EnvOptions::default()).await;
    let url = "http://evil-quote.example.com/it's/a?b='c'&d=1";
    env.write("u.txt", &text_feed(&[url.to_owned()]));
    env.config(&format!("{BASE}{}", feed("u", "u.txt", "")));
    let (code, out) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{out}");
    let owned: Vec<String> = env.owned().into_iter().map(|i| i.indicator_value).collect();
    assert_eq!(owned, [url.to_owned()], "{out}");
    env.emu.clear_calls();
    let (code, r) = env.run_json(&["explain", "hxxp://EVIL-QUOTE.example[.]com/it's/a?b='c'&d=1"]).await;
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["type"], "Url");
    assert_eq!(r["value"], url);
    let rows = r["tenant_rows"].as_array().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(rows.len(), 1, "{r}");
    assert_eq!(rows[0]["ours"], true);
    assert_eq!(env.emu.calls().iter().filter(|c| c.family != EndpointFamily::Token).count(), 1);
}
