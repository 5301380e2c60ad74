//! The impact check (`[impact]`), against the emulator's hunting tables: what
//! `iocsync_core::impact` builds is valid in the KQL subset, finds the seeded traffic, and no value,
//! however hostile, changes the query it sits in; and through the binary, a value in use on many
//! devices is held, downgraded or reported per config, the cache spares the resync any query, and
//! a quota error never stops the sync.

use std::collections::BTreeMap;

use chrono::Utc;
use iocsync_core::impact::{HuntQuery, Matcher, Sighting, build_queries, read_rows};
use iocsync_emulator::{HuntingEvent, parse_events_jsonl};
use iocsync_ioc::IndicatorType;
use serde_json::{Map, Value, json};

use crate::harness::{CLIENT_ID, Env, EnvOptions, SECRET, text_feed};
use iocsync_emulator::EndpointFamily;

async fn token(env: &Env) -> String {
    let url = format!("{}/{}/oauth2/v2.0/token", env.emu.base_url(), env.emu.tenant_id());
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("scope", "https://api.securitycenter.microsoft.com/.default"),
    ];
    let v: Value = iocsync_defender::tls::http_client_builder()
        .unwrap()
        .build()
        .unwrap()
        .post(url)
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

/// Runs every query on the MDE endpoint and folds the rows into sightings.
async fn run(env: &Env, queries: &[HuntQuery]) -> BTreeMap<(IndicatorType, String), Sighting> {
    let token = token(env).await;
    let http = iocsync_defender::tls::http_client_builder().unwrap().build().unwrap();
    let mut out = BTreeMap::new();
    for q in queries {
        let r = http
            .post(format!("{}/api/advancedqueries/run", env.emu.base_url()))
            .bearer_auth(&token)
            .json(&json!({"Query": q.text}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{}: {body}", q.text);
        let rows: Vec<Map<String, Value>> = serde_json::from_value(body["Results"].clone()).unwrap();
        read_rows(q, &rows, &mut out);
    }
    out
}

fn events(jsonl: &str) -> Vec<HuntingEvent> {
    parse_events_jsonl(jsonl, Utc::now()).unwrap()
}

#[tokio::test]
async fn queries_find_devices_for_every_type_and_ignore_old_traffic() {
    let env = Env::start(EnvOptions::default()).await;
    let mut jsonl = String::new();
    for d in 0..12 {
        jsonl.push_str(&format!(
            "{{\"Table\": \"DeviceNetworkEvents\", \"Timestamp\": \"-{}d\", \"DeviceId\": \"d{d}\", \"RemoteIP\": \"198.51.100.7\"}}\n",
            d + 1
        ));
    }
    jsonl.push_str(
        r#"{"Table": "DeviceNetworkEvents", "Timestamp": "-40d", "DeviceId": "old", "RemoteIP": "203.0.113.5"}
{"Table": "DeviceNetworkEvents", "Timestamp": "-1d", "DeviceId": "d1", "RemoteUrl": "https://login.evil.example/x"}
{"Table": "DeviceNetworkEvents", "Timestamp": "-1d", "DeviceId": "d1", "RemoteIP": "2001:db8::1"}
{"Table": "DeviceProcessEvents", "Timestamp": "-2h", "DeviceId": "p1", "SHA256": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
{"Table": "DeviceFileEvents", "Timestamp": "-2h", "DeviceId": "p1", "SHA256": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
{"Table": "DeviceFileEvents", "Timestamp": "-2h", "DeviceId": "p2", "SHA256": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
{"Table": "DeviceFileCertificateInfo", "Timestamp": "-2h", "DeviceId": "c1", "Thumbprint": "0123456789abcdef0123456789abcdef01234567"}
"#,
    );
    env.emu.add_hunting_events(events(&jsonl));
    let hash = "a".repeat(64);
    let asked = vec![
        (IndicatorType::IpAddress, "198.51.100.7".to_owned()),
        (IndicatorType::IpAddress, "203.0.113.5".to_owned()),
        (IndicatorType::IpAddress, "2001:db8:0:0:0:0:0:1".to_owned()),
        (IndicatorType::DomainName, "evil.example".to_owned()),
        (IndicatorType::FileSha256, hash.clone()),
        (IndicatorType::CertificateThumbprint, "0123456789abcdef0123456789abcdef01234567".to_owned()),
        (IndicatorType::Url, "https://quiet.example/".to_owned()),
    ];
    let queries = build_queries(&asked, 30, 8_000);
    let seen = run(&env, &queries).await;
    let devices = |k: IndicatorType, v: &str| seen.get(&(k, v.to_owned())).map_or(0, Sighting::device_count);
    assert_eq!(devices(IndicatorType::IpAddress, "198.51.100.7"), 12);
    assert_eq!(devices(IndicatorType::IpAddress, "203.0.113.5"), 0, "40 days is outside the 30-day lookback");
    assert_eq!(
        devices(IndicatorType::IpAddress, "2001:db8:0:0:0:0:0:1"),
        1,
        "telemetry holds the compressed form"
    );
    assert_eq!(
        devices(IndicatorType::DomainName, "evil.example"),
        1,
        "a subdomain's URL is traffic to the domain"
    );
    assert_eq!(devices(IndicatorType::FileSha256, &hash), 2, "p1 counted once across the two file tables");
    assert_eq!(devices(IndicatorType::CertificateThumbprint, "0123456789abcdef0123456789abcdef01234567"), 1);
    assert_eq!(devices(IndicatorType::Url, "https://quiet.example/"), 0);
    assert_eq!(env.emu.hunting_queries().len(), queries.len());
}

#[tokio::test]
async fn hostile_values_cannot_change_the_query() {
    let env = Env::start(EnvOptions::default()).await;
    let hostile = [
        "x\") | take 100000 //",
        "a\"b",
        "a'b",
        "back\\slash",
        "pipe|pipe",
        "line\nbreak",
        "\\\") or RemoteUrl has_any (\"",
    ];
    let mut jsonl = String::new();
    for (i, v) in hostile.iter().enumerate() {
        let row = json!({"Table": "DeviceNetworkEvents", "Timestamp": "-1d", "DeviceId": format!("h{i}"), "RemoteUrl": v});
        jsonl.push_str(&format!("{row}\n"));
    }
    // Traffic no hostile value should ever reach.
    for d in 0..5 {
        jsonl.push_str(&format!(
            "{{\"Table\": \"DeviceNetworkEvents\", \"Timestamp\": \"-1d\", \"DeviceId\": \"bystander{d}\", \"RemoteUrl\": \"https://bystander.example/\"}}\n"
        ));
    }
    env.emu.add_hunting_events(events(&jsonl));
    // One query per value, so a value that escaped its literal would show up as extra rows.
    for (i, v) in hostile.iter().enumerate() {
        let asked = vec![(IndicatorType::Url, (*v).to_owned())];
        let queries = build_queries(&asked, 30, 8_000);
        assert_eq!(queries.len(), 1);
        assert_eq!(queries[0].probe.matcher, Matcher::Term);
        let token = token(&env).await;
        let r = iocsync_defender::tls::http_client_builder()
            .unwrap()
            .build()
            .unwrap()
            .post(format!("{}/api/advancedqueries/run", env.emu.base_url()))
            .bearer_auth(&token)
            .json(&json!({"Query": queries[0].text}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{v:?} broke the query: {body}");
        let devices: Vec<&str> =
            body["Results"].as_array().unwrap().iter().filter_map(|r| r["DeviceId"].as_str()).collect();
        assert!(devices.iter().all(|d| !d.starts_with("bystander")), "{v:?} reached other rows: {devices:?}");
        assert!(devices.contains(&format!("h{i}").as_str()), "{v:?} found its own row: {devices:?}");
    }
}

/// A feed of two IPs: `busy` seen on 12 devices, `quiet` on one; plus the `[impact]` block.
fn busy_and_quiet(env: &Env, impact: &str) {
    let mut jsonl = String::new();
    for d in 0..12 {
        jsonl.push_str(&format!(
            "{{\"Table\": \"DeviceNetworkEvents\", \"Timestamp\": \"-{}h\", \"DeviceId\": \"d{d}\", \"RemoteIP\": \"45.1.1.1\"}}\n",
            d + 1
        ));
    }
    jsonl.push_str("{\"Table\": \"DeviceNetworkEvents\", \"Timestamp\": \"-1d\", \"DeviceId\": \"d1\", \"RemoteIP\": \"45.2.2.2\"}\n");
    env.emu.add_hunting_events(events(&jsonl));
    env.write("ips.txt", &text_feed(&["45.1.1.1".to_owned(), "45.2.2.2".to_owned()]));
    env.config(&format!(
        "[sync]\nstate = \"state/iocsync.db\"\nheadroom = 10\n\n[[feeds]]\nname = \"ips\"\nsource = \"ips.txt\"\nformat = \"text\"\n\n\
         [impact]\nenabled = true\ngraph_base = \"{}\"\n{impact}\n",
        env.emu.base_url()
    ));
}

fn action_of(env: &Env, value: &str) -> Option<String> {
    env.owned().into_iter().find(|i| i.indicator_value == value).map(|i| i.action)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_in_use_on_many_devices_is_held_and_a_quiet_one_goes_ahead() {
    let env = Env::start(EnvOptions::default()).await;
    busy_and_quiet(&env, "hold_devices = 5\non_hit = \"hold\"");
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(action_of(&env, "45.1.1.1"), None, "held: not pushed");
    assert_eq!(action_of(&env, "45.2.2.2").as_deref(), Some("Block"), "seen on 1 device: blocked");
    assert_eq!(report["skipped"]["would-block-active"], 1, "{report}");
    let impact = &report["impact"];
    assert_eq!((impact["checked"].as_u64(), impact["held"].as_u64()), (Some(2), Some(1)), "{impact}");
    assert_eq!(impact["values"][0]["value"], "45.1.1.1");
    assert_eq!(impact["values"][0]["devices"], 12);
    assert_eq!(impact["queries"], 1, "both IPs in one query");
    assert_eq!(env.calls_of(EndpointFamily::RunHuntingQuery), 1, "Graph is the default backend");
    // Graph's calls are remembered apart, so the next run paces with them (45/min, 1,500/h).
    {
        let store = iocsync::state::StateStore::open(&env.path("state/iocsync.db")).unwrap();
        let graph = store.load_api_calls("default", &format!("{CLIENT_ID}#graph")).unwrap();
        assert_eq!(graph.iter().filter(|(f, _)| f == "hunting").count(), 1, "{graph:?}");
    }

    // The resync asks nothing new: both answers come from the cache.
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(env.emu.hunting_queries().len(), 1, "no new query on the resync");
    assert_eq!(report["impact"]["queries"], 0);
    assert_eq!(report["impact"]["held"], 1, "still held, from the cache");
    assert_eq!(action_of(&env, "45.1.1.1"), None);

    // The text report names the held value with its device count.
    let out = env.run(&["plan"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("hold") && text.contains("45.1.1.1") && text.contains("12 devices"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_pushes_the_busy_value_as_audit_and_report_pushes_it_as_planned() {
    let env = Env::start(EnvOptions::default()).await;
    busy_and_quiet(&env, "on_hit = \"audit\"\nbackend = \"mde\"");
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(action_of(&env, "45.1.1.1").as_deref(), Some("Audit"));
    assert_eq!(action_of(&env, "45.2.2.2").as_deref(), Some("Block"));
    assert_eq!(report["impact"]["downgraded"], 1);
    assert_eq!(env.calls_of(EndpointFamily::AdvancedQueries), 1, "backend = mde");
    // Audit alerts show who would have been hit.
    let busy = env.owned().into_iter().find(|i| i.indicator_value == "45.1.1.1").unwrap();
    assert!(busy.generate_alert);

    let env = Env::start(EnvOptions::default()).await;
    busy_and_quiet(&env, "on_hit = \"report\"");
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(action_of(&env, "45.1.1.1").as_deref(), Some("Block"));
    assert_eq!(report["impact"]["reported"], 1);
    assert_eq!(report["impact"]["values"][0]["verdict"], "report");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quota_error_leaves_the_sync_intact() {
    let env = Env::start(EnvOptions::default()).await;
    busy_and_quiet(&env, "");
    env.emu.exhaust_hunting_quota(10);
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "a hunting quota error never fails the sync: {report}");
    assert_eq!(report["impact"]["unknown"], 2);
    assert_eq!(report["counts"]["create"], 2, "on_unknown = proceed (default): both pushed");
    assert_eq!(env.owned().len(), 2);

    let env = Env::start(EnvOptions::default()).await;
    busy_and_quiet(&env, "on_unknown = \"wait\"");
    env.emu.exhaust_hunting_quota(1);
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["skipped"]["impact-unknown"], 2, "{report}");
    assert!(env.owned().is_empty(), "on_unknown = wait: nothing pushed while unknown");
    // The quota is back: the next run checks and applies the verdicts.
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["impact"]["held"], 1);
    assert_eq!(action_of(&env, "45.2.2.2").as_deref(), Some("Block"));
}

#[tokio::test(flavor = "multi_thread")]
async fn holding_never_deletes_a_row_iocsync_already_keeps_and_existing_blocks_are_not_asked() {
    let env = Env::start(EnvOptions::default()).await;
    busy_and_quiet(&env, "");
    // First sync with the check off: both blocked.
    let cfg = std::fs::read_to_string(env.path("iocsync.toml")).unwrap();
    env.write("iocsync.toml", &cfg.replace("enabled = true", "enabled = false"));
    let (code, _) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0);
    assert_eq!(env.owned().len(), 2);
    // With the check on, values already blocking are not asked about and nothing changes.
    env.write("iocsync.toml", &cfg);
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert!(env.emu.hunting_queries().is_empty(), "already blocking: no query");
    assert_eq!(report["counts"]["delete"], 0);
    assert_eq!(env.owned().len(), 2);

    // A value iocsync keeps as Audit (an earlier on_hit = "audit") and now held stays Audit: holding
    // a value iocsync already holds must not delete it.
    let env = Env::start(EnvOptions::default()).await;
    busy_and_quiet(&env, "on_hit = \"audit\"");
    let (code, _) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0);
    assert_eq!(action_of(&env, "45.1.1.1").as_deref(), Some("Audit"));
    let cfg = std::fs::read_to_string(env.path("iocsync.toml")).unwrap();
    env.write("iocsync.toml", &cfg.replace("on_hit = \"audit\"", "on_hit = \"hold\""));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["delete"], 0, "{report}");
    assert_eq!(action_of(&env, "45.1.1.1").as_deref(), Some("Audit"), "kept, still not blocking");
}

/// Blocks of `[hits]` tests: a text feed of `values` (first line ranks highest), room for two.
fn hits_config(env: &Env, values: &[&str], hits: bool) {
    let owned: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
    env.write("ips.txt", &text_feed(&owned));
    env.config(&format!(
        "[sync]\nstate = \"state/iocsync.db\"\ncapacity = 3\nheadroom = 1\nmax_delete_fraction = 1.0\n\n\
         [[feeds]]\nname = \"ips\"\nsource = \"ips.txt\"\nformat = \"text\"\n\n\
         [impact]\ngraph_base = \"{}\"\n\n[hits]\nenabled = {hits}\n",
        env.emu.base_url()
    ));
}

fn blocked_events(value: &str, devices: usize) -> Vec<HuntingEvent> {
    let mut jsonl = String::new();
    for d in 0..devices {
        jsonl.push_str(&format!(
            "{{\"Table\": \"DeviceEvents\", \"Timestamp\": \"-2h\", \"DeviceId\": \"d{d}\", \"ActionType\": \"ExploitGuardNetworkProtectionBlocked\", \"RemoteIP\": \"{value}\"}}\n"
        ));
    }
    // Not a block: never counted.
    jsonl.push_str(&format!(
        "{{\"Table\": \"DeviceEvents\", \"Timestamp\": \"-2h\", \"DeviceId\": \"x\", \"ActionType\": \"ProcessCreated\", \"RemoteIP\": \"{value}\"}}\n"
    ));
    events(&jsonl)
}

#[tokio::test(flavor = "multi_thread")]
async fn hits_are_counted_once_listed_and_keep_a_hit_value_under_the_cap() {
    for hits in [false, true] {
        let env = Env::start(EnvOptions::default()).await;
        // Hits are counted from the first run that has them on (looking back first_lookback).
        hits_config(&env, &["45.2.2.2", "45.1.1.1"], false);
        let (code, report) = env.run_json(&["sync"]).await;
        assert_eq!(code, 0, "{report}");
        assert_eq!(env.owned().len(), 2);
        env.emu.add_hunting_events(blocked_events("45.1.1.1", 3));

        // A fresher value arrives; only two fit. Without hits the oldest line (45.1.1.1) goes.
        hits_config(&env, &["45.3.3.3", "45.2.2.2", "45.1.1.1"], hits);
        let (code, report) = env.run_json(&["sync"]).await;
        assert_eq!(code, 0, "{report}");
        let mut owned: Vec<String> = env.owned().into_iter().map(|i| i.indicator_value).collect();
        owned.sort();
        if !hits {
            assert_eq!(owned, ["45.2.2.2", "45.3.3.3"], "{report}");
            assert!(report["hits"].is_null());
            continue;
        }
        assert_eq!(
            owned,
            ["45.1.1.1", "45.3.3.3"],
            "the value Defender blocks on 3 devices keeps its slot: {report}"
        );
        assert_eq!(report["hits"]["events"], 3, "{report}");
        assert_eq!(report["hits"]["indicators_hit"], 1);
        assert_eq!(report["hits"]["queries"], 5, "one query per DeviceEvents column");
        let feed = &report["hits"]["feeds"][0];
        assert_eq!(
            (feed["name"].as_str(), feed["values_hit"].as_u64(), feed["hits"].as_u64()),
            (Some("ips"), Some(1), Some(3))
        );

        // Counted once: the next run starts where this one stopped.
        let (code, report) = env.run_json(&["sync"]).await;
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["hits"]["events"], 0, "{report}");
        let (code, list) = env.run_json(&["list", "--hits"]).await;
        assert_eq!(code, 0, "{list}");
        let first = &list["indicators"][0];
        assert_eq!(
            (first["value"].as_str(), first["hits"].as_u64(), first["hit_devices"].as_u64()),
            (Some("45.1.1.1"), Some(3), Some(3)),
            "{list}"
        );
        assert_eq!(list["indicators"][1]["hits"], 0);
        let out = env.run(&["list", "--hits"]).await;
        assert!(String::from_utf8_lossy(&out.stdout).contains("hits: 3 events on 3 devices"));
        // explain shows the hits and why the value ranks where it does, without an API call.
        let (code, ex) = env.run_json(&["explain", "45.1.1.1", "--offline"]).await;
        assert_eq!(code, 0, "{ex}");
        assert_eq!(
            (ex["hits"]["hits"].as_u64(), ex["hits"]["boosted"].as_bool()),
            (Some(3), Some(true)),
            "{ex}"
        );
        assert_eq!(ex["capacity"]["rank"], 1, "{ex}");
        assert!(ex["capacity"]["ranked_by"].as_str().unwrap().contains("recent hits"), "{ex}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_sync_of_15000_values_needs_few_queries_and_the_resync_none() {
    let env = Env::start(EnvOptions { capacity: 20_000, ..EnvOptions::default() }).await;
    let mut values = crate::harness::public_ips(10_000, 0);
    values.extend((0..5_000).map(|i| format!("host{i}.evil-example{}.com", i % 97)));
    env.write("mixed.txt", &text_feed(&values));
    env.config(&format!(
        "[sync]\nstate = \"state/iocsync.db\"\nheadroom = 0\n\n\
         [[feeds]]\nname = \"mixed\"\nsource = \"mixed.txt\"\nformat = \"text\"\n\n\
         [impact]\nenabled = true\ngraph_base = \"{}\"\n",
        env.emu.base_url()
    ));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["create"], 15_000);
    let first = report["impact"]["queries"].as_u64().unwrap();
    assert_eq!(report["impact"]["checked"], 15_000, "{}", report["impact"]);
    // The number README and BENCHMARKS.md quote; deterministic for these values and the default
    // 8,000-character budget, and within one minute's hunting window (45).
    assert_eq!(first, 39, "hunting queries for the first sync of 15,000 values");
    assert!(env.emu.hunting_queries().iter().all(|q| q.len() <= 8_000));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["impact"]["queries"], 0, "the resync asks nothing: the values already block");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_says_whether_the_hunting_api_answers_this_app() {
    let env = Env::start(EnvOptions::default()).await;
    busy_and_quiet(&env, "");
    let (code, report) = env.run_json(&["check"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["hunting"]["backend"], "graph");
    assert_eq!(report["hunting"]["ok"], true, "{report}");
    assert_eq!(report["hunting"]["usable"], serde_json::json!(["graph", "mde"]), "{report}");
    // Without ThreatHunting.Read.All the step fails and names the permission; check still passes
    // (the impact check is advice), and so does the sync.
    env.emu.set_hunting_grants(iocsync_emulator::HuntingGrants::Only(Vec::new()));
    let (code, report) = env.run_json(&["check"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["hunting"]["ok"], false);
    assert_eq!(report["hunting"]["usable"], serde_json::json!([]), "{report}");
    let out = env.run(&["check"]).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ThreatHunting.Read.All"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["impact"]["unknown"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_that_respells_a_value_never_turns_a_hold_into_a_delete() {
    // The tenant stores IPv6 compressed; iocsync sends all 8 groups. An owned Block row in the
    // tenant's spelling is "already blocking": not asked about, never held, never deleted.
    let behaviour =
        iocsync_emulator::Behaviour { normalize_values: true, ..iocsync_emulator::Behaviour::default() };
    let env = Env::start(EnvOptions { behaviour, ..EnvOptions::default() }).await;
    env.write("ips.txt", &text_feed(&["2a01:4f8::7".to_owned()]));
    let cfg = |enabled: bool| {
        format!(
            "[sync]\nstate = \"state/iocsync.db\"\nheadroom = 10\n\n[[feeds]]\nname = \"ips\"\nsource = \"ips.txt\"\nformat = \"text\"\n\n\
             [impact]\nenabled = {enabled}\ngraph_base = \"{}\"\non_unknown = \"wait\"\n",
            env.emu.base_url()
        )
    };
    env.config(&cfg(false));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(env.owned()[0].indicator_value, "2a01:4f8::7", "stored in the tenant's spelling");
    let mut jsonl = String::new();
    for d in 0..12 {
        jsonl.push_str(&format!(
            "{{\"Table\": \"DeviceNetworkEvents\", \"Timestamp\": \"-1h\", \"DeviceId\": \"d{d}\", \"RemoteIP\": \"2a01:4f8::7\"}}\n"
        ));
    }
    env.emu.add_hunting_events(events(&jsonl));
    env.config(&cfg(true));
    // Also with every query refused (on_unknown = wait would hold an unknown value).
    env.emu.exhaust_hunting_quota(5);
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["delete"], 0, "{report}");
    assert_eq!(env.owned().len(), 1);
    assert!(env.emu.hunting_queries().is_empty(), "already blocking in any spelling: not asked");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_copy_that_would_block_is_judged() {
    // Feed "watch" (higher priority) wants the busy value as Audit, feed "block" as Block. The
    // check judges only the Block copy: the Audit copy is pushed as it is.
    let env = Env::start(EnvOptions::default()).await;
    busy_and_quiet(&env, "");
    env.write("watch.txt", &text_feed(&["45.1.1.1".to_owned()]));
    let cfg = std::fs::read_to_string(env.path("iocsync.toml")).unwrap();
    env.write(
        "iocsync.toml",
        &cfg.replace(
            "[impact]",
            "[[feeds]]\nname = \"watch\"\nsource = \"watch.txt\"\nformat = \"text\"\naction = \"Audit\"\npriority = 10\n\n[impact]",
        ),
    );
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(action_of(&env, "45.1.1.1").as_deref(), Some("Audit"), "{report}");
    assert_eq!(action_of(&env, "45.2.2.2").as_deref(), Some("Block"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_check_stops_asking_when_its_time_budget_is_spent() {
    use iocsync_emulator::{Fault, FaultRule, Trigger};
    let env = Env::start(EnvOptions::default()).await;
    busy_and_quiet(&env, "max_duration = \"1s\"");
    // A domain adds a second query (RemoteUrl after RemoteIP); every answer takes 1.2 s.
    env.write(
        "ips.txt",
        &text_feed(&["45.1.1.1".to_owned(), "45.2.2.2".to_owned(), "slow-answers.xyz".to_owned()]),
    );
    env.emu.inject(FaultRule::new(
        Some(EndpointFamily::RunHuntingQuery),
        Fault::Delay(std::time::Duration::from_millis(1_200)),
        Trigger::Always,
    ));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["impact"]["queries"], 1, "{report}");
    assert_eq!(report["impact"]["unknown"], 1, "the domain's query was never sent: {report}");
    assert_eq!(report["impact"]["held"], 1, "the first answer still counts");
}
