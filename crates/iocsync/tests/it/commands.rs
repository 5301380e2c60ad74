//! check, list, purge, adopt and history against the emulator.

use crate::harness::{CLIENT_ID, Env, EnvOptions, public_ips, text_feed};
use iocsync_emulator::SeedIndicator;

const CONFIG: &str =
    "[sync]\nstate = \"state/iocsync.db\"\n[[feeds]]\nname = \"a\"\nsource = \"a.txt\"\nformat = \"text\"\n";

async fn synced(n: usize) -> Env {
    let env = Env::start(EnvOptions::default()).await;
    env.write("a.txt", &text_feed(&public_ips(n, 50_000)));
    env.config(CONFIG);
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn check_shows_capacity_foreign_owned_and_free() {
    let env = synced(7).await;
    env.emu.seed(SeedIndicator::portal("DomainName", "manual.example.com", "Block", "analyst@contoso.com"));
    let (code, v) = env.run_json(&["check"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["capacity"]["limit"], 15_000);
    assert_eq!(v["capacity"]["foreign"], 1);
    assert_eq!(v["capacity"]["owned"], 7);
    assert_eq!(v["capacity"]["free"], 15_000 - 1 - 500 - 7);
    assert!(v["steps"].as_array().unwrap().iter().all(|s| s["ok"] == true), "{v}");
    // Issue #11: the canary result, the token's roles and audience, and capacity.
    assert_eq!(v["canary"]["ok"], true, "{v}");
    assert_eq!(v["canary"]["marker_field"], "externalId", "{v}");
    assert_eq!(v["canary"]["deleted"], true, "{v}");
    // The emulator grants its default client the hunting permission too (AdvancedQuery.Read.All).
    assert_eq!(v["token"]["roles"], serde_json::json!(["Ti.ReadWrite.All", "AdvancedQuery.Read.All"]), "{v}");
    let audience = v["token"]["audience"].as_str().unwrap();
    assert!(audience.starts_with("https://api.securitycenter.microsoft.com"), "{v}");
    assert_eq!(env.owned().len(), 7, "the canary is gone");

    let out = env.run(&["check"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("canary: marker kept"), "{text}");
    assert!(
        text.contains(&format!("token: audience {audience}, roles Ti.ReadWrite.All, AdvancedQuery.Read.All")),
        "{text}"
    );
    assert!(text.contains("capacity: limit 15000, foreign 1, owned 7, headroom 500, free 14492"), "{text}");
    assert!(!text.contains("eyJ"), "no token in the output: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_shows_owned_all_and_duplicates() {
    let env = synced(5).await;
    let ip = public_ips(1, 50_000)[0].clone();
    env.emu.seed(SeedIndicator::portal("IpAddress", &ip, "Allowed", "analyst@contoso.com"));
    env.emu.seed(SeedIndicator::portal("DomainName", "other.example.com", "Block", "analyst@contoso.com"));
    let (_, owned) = env.run_json(&["list"]).await;
    assert_eq!(owned["indicators"].as_array().unwrap().len(), 5);
    assert_eq!(owned["total"], 7);
    let (_, all) = env.run_json(&["list", "--all"]).await;
    assert_eq!(all["indicators"].as_array().unwrap().len(), 7);
    let (_, dups) = env.run_json(&["list", "--duplicates"]).await;
    let dups = dups["indicators"].as_array().unwrap();
    assert_eq!(dups.len(), 2, "{dups:?}");
    assert!(dups.iter().all(|d| d["value"] == ip.as_str()));
    assert!(dups.iter().any(|d| d["owned"] == true) && dups.iter().any(|d| d["owned"] == false));
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_deletes_only_owned_and_only_with_yes() {
    let env = synced(9).await;
    env.emu.seed(SeedIndicator::portal("DomainName", "keep.example.com", "Block", "analyst@contoso.com"));
    env.emu.seed(SeedIndicator::app("IpAddress", "45.77.77.77", "Block", CLIENT_ID, "other-tag"));
    let (code, v) = env.run_json(&["purge"]).await;
    assert_eq!(code, 0);
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["deleted"], 9);
    assert_eq!(env.owned().len(), 10, "nothing deleted without --yes");
    let (code, v) = env.run_json(&["purge", "--yes"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["deleted"], 9);
    let left = env.emu.indicators();
    assert_eq!(left.len(), 2, "the portal and other-tag indicators stay");
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_takes_over_an_older_tools_indicators_then_sync_manages_them() {
    let env = Env::start(EnvOptions::default()).await;
    let legacy = "0c0c0c0c-1111-4222-8333-444444444444";
    let ips = public_ips(6, 60_000);
    for ip in &ips {
        env.emu.seed(SeedIndicator::app("IpAddress", ip, "Block", legacy, "ps-script"));
    }
    env.emu.seed(SeedIndicator::portal(
        "DomainName",
        "not-theirs.example.com",
        "Block",
        "analyst@contoso.com",
    ));
    // A legacy AlertAndBlock on an IP would come back as BlockAndRemediate, which network
    // indicators refuse: adopt must leave it in place rather than delete it.
    env.emu.seed(SeedIndicator::app("IpAddress", "45.66.66.66", "AlertAndBlock", legacy, "ps-script"));
    env.write("a.txt", &text_feed(&ips[..5]));
    env.config(CONFIG);
    let (code, v) = env.run_json(&["adopt", "--created-by", legacy]).await;
    assert_eq!(code, 3, "the legacy one is reported, even in a dry run: {v}");
    assert_eq!((v["dry_run"].as_bool(), v["adopted"].as_u64()), (Some(true), Some(6)));
    assert_eq!(env.owned().len(), 0);
    let (code, v) = env.run_json(&["adopt", "--created-by", legacy, "--yes"]).await;
    assert_eq!(code, 3, "one indicator could not be adopted: {v}");
    assert_eq!(v["adopted"], 6);
    assert_eq!(v["failed"], 1);
    assert!(v["failures"][0].as_str().unwrap().contains("left in place"), "{v}");
    assert!(
        env.emu.indicators().iter().any(|i| i.indicator_value == "45.66.66.66" && i.created_by == legacy)
    );
    let owned = env.owned();
    assert_eq!(owned.len(), 6);
    assert!(
        owned.iter().all(|i| i.external_id.as_deref() == Some("iocsync:iocsync") && i.application.is_none())
    );
    // Now owned, the value no feed carries is deleted by the next sync (1 of 6: under the brake).
    let (code, v) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["counts"]["delete"], 1, "{v}");
    assert_eq!(
        env.emu.indicators().iter().filter(|i| i.created_by == legacy).count(),
        1,
        "only the legacy one stays"
    );
    assert!(env.emu.indicators().iter().any(|i| i.indicator_value == "not-theirs.example.com"));
}

#[tokio::test(flavor = "multi_thread")]
async fn history_lists_past_runs_newest_first() {
    let env = synced(3).await;
    env.run_json(&["plan"]).await;
    let (code, v) = env.run_json(&["history"]).await;
    assert_eq!(code, 0);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{v}");
    assert_eq!(runs[0]["status"], "dry-run");
    assert_eq!(runs[1]["status"], "ok");
    assert_eq!(runs[1]["report"]["counts"]["create"], 3);
    let out = env.run(&["history"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("create 3"), "{text}");
}
