//! The engine side of the analysts' console (issue 15), through the library API against the
//! emulator: the manual list (preview, add, remove, expiry) going through the same policy,
//! allowlist, capacity and ownership path as any feed, and the actor on the journal.

use crate::harness::{CLIENT_ID, Env, EnvOptions, SECRET, write_private};
use chrono::{Duration, Utc};
use iocsync::config::Config;
use iocsync::engine::manual::{self, Verdict};
use iocsync::engine::{SyncRequest, lock, open_store, sync_all};
use std::sync::{Arc, Mutex};

/// The manual list block used by most tests.
const MANUAL: &str =
    "[[feeds]]\nname = \"analysts\"\nsource = \"manual\"\npriority = 10\nrow_actions = [\"Audit\"]\n";

/// Writes the config (the secret in a private file, so the library and the binary both read it)
/// and loads it.
fn setup(env: &Env, sync: &str, allow: &[&str], feeds: &str) -> Config {
    write_private(&env.path("secret"), SECRET);
    let base = env.emu.base_url();
    let allow: Vec<String> = allow.iter().map(|a| format!("\"{a}\"")).collect();
    let text = format!(
        "[defender]\ntenant_id = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = {{ file = \"secret\" }}\n\
         api_base = \"{base}\"\nauthority = \"{base}\"\n\n[sync]\nstate = \"state/iocsync.db\"\n{sync}\n\
         [allowlist]\nvalues = [{}]\n\n{feeds}",
        env.emu.tenant_id(),
        allow.join(", ")
    );
    env.write("iocsync.toml", &text);
    Config::load(&env.path("iocsync.toml")).expect("the test config is valid")
}

async fn sync_as(config: &Config, actor: Option<&str>) -> serde_json::Value {
    let req = SyncRequest { actor: actor.map(str::to_owned), ..SyncRequest::default() };
    let outcomes = sync_all(config, None, &req).await.expect("sync runs");
    let o = &outcomes[0];
    assert!(o.error.is_none(), "{:?}", o.error);
    serde_json::to_value(&o.report).unwrap()
}

fn store(config: &Config) -> Arc<Mutex<iocsync::state::StateStore>> {
    open_store(config).expect("the state database opens")
}

fn owned_values(env: &Env) -> Vec<String> {
    let mut v: Vec<String> = env.owned().into_iter().map(|i| i.indicator_value).collect();
    v.sort();
    v
}

fn refusal(v: &Verdict) -> Option<&str> {
    match v {
        Verdict::Refused { reason, .. } => Some(reason),
        Verdict::Accepted { .. } => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_of_three_values_accepts_one_and_refuses_the_allowlisted_and_the_private() {
    let env = Env::start(EnvOptions::default()).await;
    let config = setup(&env, "", &["good-corp.com"], MANUAL);
    let text = "evil-one.com\nwww.good-corp.com\n10.1.2.3\n";
    let p = manual::preview(&config, text, None).await.unwrap();
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(p[0].is_accepted(), "{p:#?}");
    assert_eq!(
        p[0].verdict,
        Verdict::Accepted {
            indicator_type: "DomainName".into(),
            value: "evil-one.com".into(),
            action: "Block".into(),
            note: None
        }
    );
    assert_eq!(refusal(&p[1].verdict), Some("allowlisted"), "{p:#?}");
    let Verdict::Refused { detail, .. } = &p[1].verdict else { unreachable!() };
    assert!(detail.contains("good-corp.com"), "the detail names the entry: {detail}");
    assert_eq!(refusal(&p[2].verdict), Some("private-address"), "{p:#?}");
    assert_eq!((p[0].line, p[1].line, p[2].line), (1, 2, 3));
    // Nothing was written: no state database, no manual value.
    assert!(!config.sync.state.exists() || manual::list(&store(&config), Utc::now()).unwrap().is_empty());
    // Builtin: a public suffix and a well-known domain are refused too.
    let p = manual::preview(&config, "co.uk\n", None).await.unwrap();
    assert_eq!(refusal(&p[0].verdict), Some("public-suffix"), "{p:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn defanged_input_is_normalised() {
    let env = Env::start(EnvOptions::default()).await;
    let config = setup(&env, "", &[], MANUAL);
    let p = manual::preview(&config, "  hxxp://evil[.]com/x  \n\n45.1.2[.]3\n", None).await.unwrap();
    assert_eq!(p.len(), 2, "blank lines get no verdict: {p:#?}");
    let Verdict::Accepted { indicator_type, value, .. } = &p[0].verdict else { panic!("{p:#?}") };
    assert_eq!((indicator_type.as_str(), value.as_str()), ("Url", "http://evil.com/x"));
    assert_eq!(p[0].input, "hxxp://evil[.]com/x");
    let Verdict::Accepted { value, .. } = &p[1].verdict else { panic!("{p:#?}") };
    assert_eq!(value, "45.1.2.3");
    assert_eq!(p[1].line, 3);
    // One value a line: the rest of a line is not read, and the preview says so.
    let p = manual::preview(&config, "first.com second.com\n# a comment\n", None).await.unwrap();
    let Verdict::Accepted { value, note, .. } = &p[0].verdict else { panic!("{p:#?}") };
    assert_eq!(value, "first.com");
    assert!(note.as_deref().unwrap_or("").contains("second.com"), "{note:?}");
    assert_eq!(refusal(&p[1].verdict), Some("invalid-value"), "{p:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn add_then_sync_pushes_with_the_marker_and_the_journal_names_the_actor_then_remove_deletes() {
    let env = Env::start(EnvOptions::default()).await;
    let config = setup(&env, "", &["good-corp.com"], MANUAL);
    let store = store(&config);
    let now = Utc::now();
    let p = manual::add(
        &config,
        &store,
        "evil-two.com\nwww.good-corp.com\n192.168.1.1\n",
        "seen in phishing",
        None,
        None,
        "alice",
        now,
    )
    .await
    .unwrap();
    assert_eq!(p.iter().filter(|x| x.is_accepted()).count(), 1, "{p:#?}");
    let listed = manual::list(&store, now).unwrap();
    assert_eq!(listed.len(), 1, "refused values are never stored: {listed:#?}");
    assert_eq!(listed[0].value, "evil-two.com");
    assert_eq!(listed[0].added_by, "alice");
    assert_eq!(listed[0].comment, "seen in phishing");
    // The same value again is not duplicated, and says so.
    let again = manual::add(&config, &store, "EVIL-TWO.com", "", None, None, "bob", now).await.unwrap();
    let Verdict::Accepted { note, .. } = &again[0].verdict else { panic!("{again:#?}") };
    assert!(note.as_deref().unwrap_or("").contains("already in the list"), "{note:?}");
    assert_eq!(manual::list(&store, now).unwrap().len(), 1);

    let report = sync_as(&config, Some("alice")).await;
    assert_eq!(report["counts"]["create"], 1, "{report}");
    let owned = env.owned();
    assert_eq!(owned.len(), 1);
    let i = &owned[0];
    assert_eq!(i.indicator_value, "evil-two.com");
    assert_eq!(i.external_id.as_deref(), Some("iocsync:iocsync"), "our marker: {i:?}");
    assert_eq!(i.description, "seen in phishing", "the comment is the description");
    let run = lock(&store).runs(None, 1).unwrap().remove(0);
    assert_eq!(run.actor.as_deref(), Some("alice"));
    let rows = lock(&store).journal_of_run(run.id).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].entry.actor.as_deref(), Some("alice"));
    assert_eq!(rows[0].entry.feeds, ["analysts"]);
    // `history --run ID --changes` shows it, in JSON and text.
    let (code, ch) = env.run_json(&["history", "--run", &run.id.to_string(), "--changes"]).await;
    assert_eq!(code, 0, "{ch}");
    assert_eq!(ch["changes"][0]["actor"], "alice", "{ch}");
    let out = env.run(&["history", "--run", &run.id.to_string(), "--changes"]).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("by alice"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // `explain` answers for a manual value like for any feed's, without fetching anything.
    let (code, ex) = env.run_json(&["explain", "evil-two.com", "--offline"]).await;
    assert_eq!(code, 0, "{ex}");
    assert_eq!(ex["feeds"][0]["feed"], "analysts", "{ex}");
    // `check` does not take the manual list for a file path.
    let out = env.run(&["check"]).await;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && !said.contains("does not exist"), "{said}");

    // Remove: the row stays as history, and the next run deletes the indicator (left-feed).
    assert!(manual::remove(&store, listed[0].id, "bob", Utc::now()).unwrap());
    assert!(!manual::remove(&store, listed[0].id, "bob", Utc::now()).unwrap(), "already removed");
    assert!(manual::list(&store, Utc::now()).unwrap().is_empty());
    // The brake still applies: deleting 1 of 1 owned is over max_delete_fraction 0.25.
    let report = sync_as(&config, None).await;
    assert!(report["brake"].is_string(), "{report}");
    assert_eq!(env.owned().len(), 1, "the brake held the delete");
    let config = setup(&env, "max_delete_fraction = 1.0\n", &["good-corp.com"], MANUAL);
    let report = sync_as(&config, None).await;
    assert_eq!(report["counts"]["delete"], 1, "{report}");
    assert!(env.owned().is_empty());
    let run = lock(&store).runs(None, 1).unwrap().remove(0);
    let rows = lock(&store).journal_of_run(run.id).unwrap();
    assert_eq!(rows[0].entry.reason, "left-feed");
    assert_eq!(rows[0].entry.actor, None, "a scheduled run has no actor");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_engine_still_applies_an_allowlist_that_grew_after_the_add() {
    let env = Env::start(EnvOptions::default()).await;
    let config = setup(&env, "", &[], MANUAL);
    let store = store(&config);
    let p = manual::add(
        &config,
        &store,
        "later-allowed.com\nstill-bad.com\n",
        "",
        None,
        None,
        "alice",
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(p.iter().all(manual::Preview::is_accepted), "{p:#?}");
    // The allowlist grows: the stored value stays, but the sync does not push it.
    let config = setup(&env, "", &["later-allowed.com"], MANUAL);
    let report = sync_as(&config, None).await;
    assert_eq!(owned_values(&env), ["still-bad.com"]);
    assert_eq!(report["skipped"]["allowlisted"], 1, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_action_outside_row_actions_is_refused_and_a_listed_one_is_applied() {
    let env = Env::start(EnvOptions::default()).await;
    let config = setup(&env, "", &[], MANUAL);
    let store = store(&config);
    let p = manual::add(&config, &store, "allow-me.com\n", "", Some("Allowed"), None, "alice", Utc::now())
        .await
        .unwrap();
    assert_eq!(refusal(&p[0].verdict), Some("action-not-allowed"), "{p:#?}");
    let p = manual::add(&config, &store, "nuke-me.com\n", "", Some("Nuke"), None, "alice", Utc::now())
        .await
        .unwrap();
    assert_eq!(refusal(&p[0].verdict), Some("action-not-allowed"), "an unknown action: {p:#?}");
    assert!(manual::list(&store, Utc::now()).unwrap().is_empty());
    let p = manual::add(&config, &store, "audit-me.com\n", "", Some("Audit"), None, "alice", Utc::now())
        .await
        .unwrap();
    let Verdict::Accepted { action, .. } = &p[0].verdict else { panic!("{p:#?}") };
    assert_eq!(action, "Audit");
    sync_as(&config, None).await;
    let owned = env.owned();
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].action.as_str(), "Audit");
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_rows_are_not_synced_and_the_expiry_is_pushed() {
    let env = Env::start(EnvOptions::default()).await;
    let config = setup(&env, "", &[], MANUAL);
    let store = store(&config);
    let now = Utc::now();
    // Added two hours ago, expired an hour ago.
    manual::add(
        &config,
        &store,
        "expired.com\n",
        "",
        None,
        Some(now - Duration::hours(1)),
        "alice",
        now - Duration::hours(2),
    )
    .await
    .unwrap();
    let until = now + Duration::days(3);
    manual::add(&config, &store, "short.com\n", "", None, Some(until), "alice", now).await.unwrap();
    assert_eq!(manual::list(&store, now).unwrap().len(), 1);
    sync_as(&config, None).await;
    let owned = env.owned();
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].indicator_value, "short.com");
    let exp = owned[0].expiration_time.as_deref().expect("an expiry");
    let exp = chrono::DateTime::parse_from_rfc3339(exp).unwrap().with_timezone(&Utc);
    assert!((exp - until).num_seconds().abs() <= 1, "the row's expiry caps the policy's: {exp} vs {until}");
    // An expiry in the past is refused at add time.
    assert!(
        manual::add(&config, &store, "x.com", "", None, Some(now - Duration::hours(1)), "a", now)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn capacity_still_applies_to_the_manual_list() {
    let env = Env::start(EnvOptions::default()).await;
    let config = setup(&env, "capacity = 3\nheadroom = 1\n", &[], MANUAL);
    let store = store(&config);
    let text: String = (0..5).map(|i| format!("cap-{i}.com\n")).collect();
    let p = manual::add(&config, &store, &text, "", None, None, "alice", Utc::now()).await.unwrap();
    assert!(p.iter().all(manual::Preview::is_accepted));
    let report = sync_as(&config, None).await;
    assert_eq!(env.owned().len(), 2, "capacity 3 minus headroom 1: {report}");
    assert_eq!(report["skipped"]["over-capacity"], 3, "{report}");
}

#[test]
fn at_most_one_manual_list_and_it_is_never_parsed_as_a_path() {
    let two = format!("[defender]\nemulator = true\n{MANUAL}[[feeds]]\nname = \"b\"\nsource = \"manual\"\n");
    let err =
        Config::from_toml(&two, std::path::Path::new("/nonexistent/iocsync.toml")).unwrap_err().to_string();
    assert!(err.contains("second manual list"), "{err}");
    let one = format!("[defender]\nemulator = true\n{MANUAL}");
    let c = Config::from_toml(&one, std::path::Path::new("/nonexistent/iocsync.toml")).unwrap();
    let f = c.manual_feed().expect("the manual list");
    assert_eq!((f.name.as_str(), f.priority), ("analysts", 10));
    assert!(!c.sync.approval, "approval is off by default");
}

// ---- part 2: approvals, undo requests, sync now, audit ------------------------------------------

use iocsync::engine::{approval, audit};

fn journal_actors(store: &Arc<Mutex<iocsync::state::StateStore>>, run: i64) -> Vec<Option<String>> {
    lock(store).journal_of_run(run).unwrap().into_iter().map(|r| r.entry.actor).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_plans_without_writing_then_the_approved_plan_is_applied_as_the_approver() {
    let env = Env::start(EnvOptions::default()).await;
    let config = setup(&env, "approval = true\n", &[], MANUAL);
    let store = store(&config);
    manual::add(&config, &store, "approve-me.com\n", "", None, None, "alice", Utc::now()).await.unwrap();
    let first = approval::plan_pending(&config, None, Utc::now()).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(env.write_calls(), 0, "planning writes nothing");
    assert!(env.owned().is_empty());
    let p = &first[0];
    assert_eq!(p.status, "pending");
    assert_eq!(p.plan.changes.len(), 1);
    assert_eq!(p.plan.changes[0].change.value, "approve-me.com");
    assert_eq!(p.plan.changes[0].change.kind, "create");
    assert!(p.review_markdown.contains("approve-me.com"), "{}", p.review_markdown);
    let json = serde_json::to_value(p).unwrap();
    assert_eq!(json["plan"]["changes"][0]["value"], "approve-me.com", "a page can list the items");

    // A second plan supersedes the first.
    let second = approval::plan_pending(&config, Some("bob"), Utc::now()).await.unwrap();
    assert_eq!(second.len(), 1);
    let pending = approval::pending(&store).unwrap();
    assert_eq!(pending.iter().map(|p| p.id).collect::<Vec<_>>(), [second[0].id]);
    assert_eq!(pending[0].created_by.as_deref(), Some("bob"));
    assert_eq!(approval::get(&store, first[0].id).unwrap().unwrap().status, "superseded");
    let err = approval::approve(&config, first[0].id, "carol").await.unwrap_err().to_string();
    assert!(err.contains("superseded"), "{err}");

    let out = approval::approve(&config, second[0].id, "carol").await.unwrap();
    assert_eq!((out.status.as_str(), out.exit), ("applied", Some(0)), "{out:?}");
    assert_eq!(owned_values(&env), ["approve-me.com"]);
    assert_eq!(journal_actors(&store, out.run_id.unwrap()), [Some("carol".to_owned())]);
    let decided = approval::get(&store, second[0].id).unwrap().unwrap();
    assert_eq!((decided.status.as_str(), decided.decided_by.as_deref()), ("applied", Some("carol")));
    assert!(approval::pending(&store).unwrap().is_empty());
    // Nothing left to change: the next scheduled plan makes no plan.
    assert!(approval::plan_pending(&config, None, Utc::now()).await.unwrap().is_empty());
    let log = audit::audit_log(&store, 10).unwrap();
    let actions: Vec<(&str, &str)> = log.iter().map(|r| (r.user.as_str(), r.action.as_str())).collect();
    assert!(
        actions.contains(&("carol", "plan-approve")) && actions.contains(&("alice", "manual-add")),
        "{actions:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_the_tenant_drifted_from_is_refused_and_writes_nothing() {
    let env = Env::start(EnvOptions::default()).await;
    let config = setup(&env, "approval = true\n", &[], MANUAL);
    let store = store(&config);
    manual::add(&config, &store, "drift-me.com\n", "", None, None, "alice", Utc::now()).await.unwrap();
    let plan = approval::plan_pending(&config, None, Utc::now()).await.unwrap().remove(0);
    // The tenant changes in between: another run creates the value.
    sync_as(&config, None).await;
    let before = env.emu.indicators();
    env.emu.clear_calls();
    let out = approval::approve(&config, plan.id, "carol").await.unwrap();
    assert_eq!(out.status, "failed", "{out:?}");
    assert!(out.error.as_deref().unwrap_or("").contains("drift-me.com"), "says what drifted: {out:?}");
    assert_eq!(env.write_calls(), 0, "nothing written");
    assert_eq!(env.emu.indicators(), before);
    let row = approval::get(&store, plan.id).unwrap().unwrap();
    assert_eq!(row.status, "failed");
    assert!(row.result.unwrap()["error"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_plan_writes_nothing_and_cannot_be_approved() {
    let env = Env::start(EnvOptions::default()).await;
    let config = setup(&env, "approval = true\n", &[], MANUAL);
    let store = store(&config);
    manual::add(&config, &store, "reject-me.com\n", "", None, None, "alice", Utc::now()).await.unwrap();
    let plan = approval::plan_pending(&config, None, Utc::now()).await.unwrap().remove(0);
    assert!(approval::reject(&store, plan.id, "carol", Utc::now()).unwrap());
    assert!(!approval::reject(&store, plan.id, "carol", Utc::now()).unwrap(), "already decided");
    assert!(approval::approve(&config, plan.id, "carol").await.is_err());
    assert_eq!(env.write_calls(), 0);
    assert!(env.owned().is_empty());
    let row = approval::get(&store, plan.id).unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.decided_by.as_deref()), ("rejected", Some("carol")));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undo_request_confirmed_by_an_approver_reverts_the_run() {
    let env = Env::start(EnvOptions::default()).await;
    let config = setup(&env, "max_delete_fraction = 1.0\n", &[], MANUAL);
    let store = store(&config);
    manual::add(&config, &store, "undo-a.com\nundo-b.com\n", "", None, None, "alice", Utc::now())
        .await
        .unwrap();
    sync_as(&config, Some("alice")).await;
    assert_eq!(env.owned().len(), 2);
    let run = lock(&store).runs(None, 1).unwrap().remove(0).id;
    let req = approval::request_undo(&store, run, "alice", "wrong values", Utc::now()).unwrap();
    assert!(
        approval::request_undo(&store, run, "alice", "again", Utc::now()).is_err(),
        "one pending request"
    );
    assert_eq!(approval::pending_undos(&store).unwrap().len(), 1);
    assert_eq!(env.owned().len(), 2, "a request alone changes nothing");

    let out = approval::confirm_undo(&config, req, "carol").await.unwrap();
    assert_eq!(out.status, "done", "{out:?}");
    assert!(env.owned().is_empty(), "the run's creates are deleted");
    assert_eq!(out.notes.len(), 2, "both values are still in the manual list: {:?}", out.notes);
    assert!(out.notes[0].contains("still in the manual list"), "{:?}", out.notes);
    let undo_run = out.report.as_ref().and_then(|r| r.undo_run).expect("an undo run");
    assert_eq!(journal_actors(&store, undo_run), [Some("carol".to_owned()), Some("carol".to_owned())]);
    assert!(approval::pending_undos(&store).unwrap().is_empty());
    assert!(approval::confirm_undo(&config, req, "carol").await.is_err(), "not pending any more");
    // A second request for another run, rejected: nothing happens.
    sync_as(&config, None).await;
    let run2 = lock(&store).runs(None, 1).unwrap().remove(0).id;
    let req2 = approval::request_undo(&store, run2, "alice", "", Utc::now()).unwrap();
    let calls = env.write_calls();
    assert!(approval::reject_undo(&store, req2, "carol", Utc::now()).unwrap());
    assert_eq!(env.write_calls(), calls);
    let all = approval::undo_requests(&store).unwrap();
    let statuses: Vec<&str> = all.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["rejected", "done"]);
    assert_eq!(all[1].decided_by.as_deref(), Some("carol"));
    let actions: Vec<String> = audit::audit_log(&store, 20).unwrap().into_iter().map(|r| r.action).collect();
    for a in ["undo-request", "undo-confirm", "undo-reject"] {
        assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_now_is_refused_while_the_run_lock_is_held_and_otherwise_syncs_or_plans() {
    let env = Env::start(EnvOptions::default()).await;
    let config = setup(&env, "", &[], MANUAL);
    let store = store(&config);
    manual::add(&config, &store, "now-me.com\n", "", None, None, "alice", Utc::now()).await.unwrap();
    {
        let _held = iocsync::daemon::RunLock::acquire(&config.sync.state).unwrap();
        let err = iocsync::daemon::sync_now(&config, "alice").await.unwrap_err().to_string();
        assert!(err.contains("a run is in progress"), "{err}");
        let err = approval::plan_pending(&config, None, Utc::now()).await.unwrap_err().to_string();
        assert!(err.contains("a run is in progress"), "{err}");
        assert_eq!(env.write_calls(), 0);
    }
    let done = iocsync::daemon::sync_now(&config, "alice").await.unwrap();
    let iocsync::daemon::SyncNow::Synced(outcomes) = done else { panic!("approval is off: {done:?}") };
    assert!(outcomes[0].error.is_none());
    assert_eq!(owned_values(&env), ["now-me.com"]);
    let run = lock(&store).runs(None, 1).unwrap().remove(0);
    assert_eq!(run.actor.as_deref(), Some("alice"));
    assert_eq!(journal_actors(&store, run.id), [Some("alice".to_owned())]);

    // With approval on, Sync now makes a plan instead.
    let config = setup(&env, "approval = true\n", &[], MANUAL);
    manual::add(&config, &store, "later-me.com\n", "", None, None, "alice", Utc::now()).await.unwrap();
    let calls = env.write_calls();
    let done = iocsync::daemon::sync_now(&config, "alice").await.unwrap();
    let iocsync::daemon::SyncNow::Planned(plans) = done else { panic!("approval is on: {done:?}") };
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].created_by.as_deref(), Some("alice"));
    assert_eq!(env.write_calls(), calls, "a plan writes nothing");
    let actions: Vec<String> = audit::audit_log(&store, 20).unwrap().into_iter().map(|r| r.action).collect();
    assert_eq!(actions.iter().filter(|a| *a == "sync-now").count(), 2, "{actions:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_approval_on_the_daemon_plans_instead_of_applying() {
    use crate::daemon::{free_port, sigterm, spawn_daemon, wait_exit};
    let env = Env::start(EnvOptions::default()).await;
    let daemon = format!("[daemon]\ninterval = \"1h\"\nlisten = \"127.0.0.1:{}\"\n\n", free_port());
    let config = setup(&env, &format!("approval = true\n\n{daemon}"), &[], MANUAL);
    let store = store(&config);
    manual::add(&config, &store, "scheduled.com\n", "", None, None, "alice", Utc::now()).await.unwrap();
    let child = spawn_daemon(&env);
    let start = std::time::Instant::now();
    let plans = loop {
        let p = approval::pending(&store).unwrap();
        if !p.is_empty() {
            break p;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "the daemon made no plan");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    sigterm(&child);
    wait_exit(child, std::time::Duration::from_secs(30)).await;
    assert_eq!(plans[0].created_by, None, "a scheduled plan");
    assert_eq!(plans[0].plan.changes[0].change.value, "scheduled.com");
    assert_eq!(env.write_calls(), 0, "the scheduled run planned, it did not apply");
    assert!(env.owned().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn four_eyes_refuses_self_approval_and_leaves_the_item_pending_for_another_approver() {
    let env = Env::start(EnvOptions::default()).await;
    let config = setup(&env, "approval = true\nfour_eyes = true\nmax_delete_fraction = 1.0\n", &[], MANUAL);
    assert!(config.sync.four_eyes);
    let store = store(&config);

    // A scheduled plan (made by nobody) holding a value alice added: alice may not apply it.
    manual::add(&config, &store, "alices-pick.com\n", "", None, None, "alice", Utc::now()).await.unwrap();
    let plan = approval::plan_pending(&config, None, Utc::now()).await.unwrap().remove(0);
    let err = approval::approve(&config, plan.id, "alice").await.unwrap_err().to_string();
    assert!(err.contains("four_eyes") && err.contains("(alices-pick.com)"), "{err}");
    assert_eq!(env.write_calls(), 0, "a refused approval writes nothing");
    assert_eq!(approval::get(&store, plan.id).unwrap().unwrap().status, "pending", "still pending");

    // A plan bob made (Sync now in approval mode): bob may not apply it, carol may.
    let plan = approval::plan_pending(&config, Some("bob"), Utc::now()).await.unwrap().remove(0);
    let err = approval::approve(&config, plan.id, "bob").await.unwrap_err().to_string();
    assert!(err.contains("bob made plan"), "{err}");
    assert_eq!(env.write_calls(), 0);
    let out = approval::approve(&config, plan.id, "carol").await.unwrap();
    assert_eq!(out.status, "applied", "{out:?}");
    assert_eq!(owned_values(&env), ["alices-pick.com"]);

    // An undo alice requested: alice may not confirm it, carol may.
    let run = out.run_id.unwrap();
    let req = approval::request_undo(&store, run, "alice", "", Utc::now()).unwrap();
    let err = approval::confirm_undo(&config, req, "alice").await.unwrap_err().to_string();
    assert!(err.contains("alice requested undo"), "{err}");
    assert_eq!(env.owned().len(), 1, "nothing undone");
    assert_eq!(approval::pending_undos(&store).unwrap().len(), 1, "still pending");
    let out = approval::confirm_undo(&config, req, "carol").await.unwrap();
    assert_eq!(out.status, "done", "{out:?}");
    assert!(env.owned().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn four_eyes_refuses_an_approver_who_removed_a_value_the_plan_deletes() {
    let env = Env::start(EnvOptions::default()).await;
    let config = setup(&env, "approval = true\nfour_eyes = true\nmax_delete_fraction = 1.0\n", &[], MANUAL);
    let store = store(&config);
    manual::add(&config, &store, "bobs-one.com\nbobs-two.com\n", "", None, None, "bob", Utc::now())
        .await
        .unwrap();
    let plan = approval::plan_pending(&config, None, Utc::now()).await.unwrap().remove(0);
    assert_eq!(approval::approve(&config, plan.id, "carol").await.unwrap().status, "applied");
    assert_eq!(owned_values(&env), ["bobs-one.com", "bobs-two.com"]);
    let id = manual::list(&store, Utc::now()).unwrap()[0].id;
    assert!(manual::remove(&store, id, "alice", Utc::now()).unwrap());
    let plan = approval::plan_pending(&config, None, Utc::now()).await.unwrap().remove(0);
    assert_eq!(plan.plan.changes[0].change.kind, "delete");
    let calls = env.write_calls();
    let err = approval::approve(&config, plan.id, "alice").await.unwrap_err().to_string();
    assert!(err.contains("added or removed (bobs-one.com)"), "{err}");
    assert_eq!(env.write_calls(), calls, "a refused approval writes nothing");
    // Bob added the value but did not remove it: deleting it is not his own change.
    assert_eq!(approval::approve(&config, plan.id, "bob").await.unwrap().status, "applied");
    assert_eq!(owned_values(&env), ["bobs-two.com"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_four_eyes_an_approver_may_apply_their_own_plan_and_confirm_their_own_undo() {
    let env = Env::start(EnvOptions::default()).await;
    let config = setup(&env, "approval = true\nmax_delete_fraction = 1.0\n", &[], MANUAL);
    assert!(!config.sync.four_eyes, "off by default");
    let store = store(&config);
    manual::add(&config, &store, "solo.com\n", "", None, None, "alice", Utc::now()).await.unwrap();
    let plan = approval::plan_pending(&config, Some("alice"), Utc::now()).await.unwrap().remove(0);
    let out = approval::approve(&config, plan.id, "alice").await.unwrap();
    assert_eq!(out.status, "applied", "{out:?}");
    let req = approval::request_undo(&store, out.run_id.unwrap(), "alice", "", Utc::now()).unwrap();
    assert_eq!(approval::confirm_undo(&config, req, "alice").await.unwrap().status, "done");
    assert!(env.owned().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn four_eyes_matches_the_tenants_spelling_and_user_names_without_case() {
    let mut opts = EnvOptions::default();
    opts.behaviour.normalize_values = true; // the tenant stores IPv6 compressed
    let env = Env::start(opts).await;
    let config = setup(&env, "approval = true\nfour_eyes = true\nmax_delete_fraction = 1.0\n", &[], MANUAL);
    let store = store(&config);
    manual::add(&config, &store, "2a0b:4342:1a31:410::66\nkept.com\n", "", None, None, "bob", Utc::now())
        .await
        .unwrap();
    let plan = approval::plan_pending(&config, None, Utc::now()).await.unwrap().remove(0);
    assert_eq!(approval::approve(&config, plan.id, "carol").await.unwrap().status, "applied");
    let listed = manual::list(&store, Utc::now()).unwrap();
    assert_eq!(listed[0].value, "2a0b:4342:1a31:410:0:0:0:66", "the list keeps Defender's documented form");
    assert!(
        owned_values(&env).contains(&"2a0b:4342:1a31:410::66".to_owned()),
        "the tenant spells it otherwise"
    );
    // ALICE (as a proxy may pass the name) removes it; the plan deletes the tenant's spelling.
    assert!(manual::remove(&store, listed[0].id, "ALICE", Utc::now()).unwrap());
    let plan = approval::plan_pending(&config, None, Utc::now()).await.unwrap().remove(0);
    assert_eq!(plan.plan.changes[0].change.value, "2a0b:4342:1a31:410::66");
    let err = approval::approve(&config, plan.id, "alice").await.unwrap_err().to_string();
    assert!(err.contains("four_eyes"), "{err}");
    let refusals: Vec<String> = audit::audit_log(&store, 10)
        .unwrap()
        .into_iter()
        .filter(|r| r.action == "plan-approve-refused")
        .map(|r| r.user)
        .collect();
    assert_eq!(refusals, ["alice"], "the refused attempt is audited");
    // A plan made by Alice is refused to alice too.
    let plan = approval::plan_pending(&config, Some("Alice"), Utc::now()).await.unwrap().remove(0);
    assert!(approval::approve(&config, plan.id, "alice").await.is_err());
    assert_eq!(approval::approve(&config, plan.id, "carol").await.unwrap().status, "applied");
    assert_eq!(owned_values(&env), ["kept.com"]);
}

#[test]
fn four_eyes_without_approval_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iocsync.toml");
    std::fs::write(
        &path,
        "[defender]\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret = { env = \"X\" }\n\n[sync]\nfour_eyes = true\n\n\
         [[feeds]]\nname = \"analysts\"\nsource = \"manual\"\n",
    )
    .unwrap();
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(err.contains("sync.four_eyes") && err.contains("needs approval = true"), "{err}");
}
