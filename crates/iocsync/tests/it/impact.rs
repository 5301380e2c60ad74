//! The impact check's queries against the emulator's KQL evaluator: what `iocsync_core::impact`
//! builds is valid in the hunting subset, finds the seeded traffic, and no value, however hostile,
//! changes the query it sits in.

use std::collections::BTreeMap;

use chrono::Utc;
use iocsync_core::impact::{HuntQuery, Matcher, Sighting, build_queries, read_rows};
use iocsync_emulator::{HuntingEvent, parse_events_jsonl};
use iocsync_ioc::IndicatorType;
use serde_json::{Map, Value, json};

use crate::harness::{CLIENT_ID, Env, EnvOptions, SECRET};

async fn token(env: &Env) -> String {
    let url = format!("{}/{}/oauth2/v2.0/token", env.emu.base_url(), env.emu.tenant_id());
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("scope", "https://api.securitycenter.microsoft.com/.default"),
    ];
    let v: Value = reqwest::Client::new().post(url).form(&form).send().await.unwrap().json().await.unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

/// Runs every query on the MDE endpoint and folds the rows into sightings.
async fn run(env: &Env, queries: &[HuntQuery]) -> BTreeMap<(IndicatorType, String), Sighting> {
    let token = token(env).await;
    let http = reqwest::Client::new();
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
        let r = reqwest::Client::new()
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
