//! `iocsync emulator`: serves on the given loopback address, prints what it accepts, keeps its
//! state in a file across restarts, serves advanced hunting over events from a JSONL file, and
//! refuses a non-loopback address or a bad events file.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `iocsync emulator` and returns it once it printed its banner, with the banner.
fn start(args: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("iocsync"))
        .arg("emulator")
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("ctrl-c") {
            break;
        }
    }
    (child, banner)
}

fn stop(child: std::process::Child) -> Option<i32> {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    out.status.code()
}

async fn token(base: &str, client: &str, secret: &str) -> reqwest::Response {
    iocsync_defender::tls::http_client_builder()
        .unwrap()
        .build()
        .unwrap()
        .post(format!("{base}/{}/oauth2/v2.0/token", iocsync_emulator::DEFAULT_TENANT_ID))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", secret),
            ("scope", "https://api.securitycenter.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_emulator_command_serves_prints_its_credentials_and_keeps_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("emu.json");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let base = format!("http://{listen}");
    let args =
        ["--listen", &listen, "--state", state.to_str().unwrap(), "--client", "app-1:pw-1:Ti.ReadWrite.All"];

    let (child, banner) = start(&args);
    assert!(banner.contains(&base), "{banner}");
    assert!(
        banner.contains("app-1") && banner.contains("pw-1"),
        "the banner names the accepted client: {banner}"
    );
    let r = token(&base, "app-1", "pw-1").await;
    assert_eq!(r.status(), 200);
    let access: serde_json::Value = r.json().await.unwrap();
    let bearer = access["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token(&base, "app-1", "wrong").await.status(), 401);
    let http = iocsync_defender::tls::http_client_builder().unwrap().build().unwrap();
    let body = serde_json::json!({ "Indicators": [{
        "indicatorValue": "45.11.22.33", "indicatorType": "IpAddress", "action": "Block",
        "title": "t", "description": "d", "severity": "High"
    }]});
    let r = http
        .post(format!("{base}/api/indicators/import"))
        .bearer_auth(&bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(stop(child), Some(0), "SIGTERM stops the emulator cleanly");
    assert!(state.exists(), "state saved on shutdown");

    // Restarted on the same state file, it still holds the indicator.
    let (child, _) = start(&args);
    let bearer =
        token(&base, "app-1", "pw-1").await.json::<serde_json::Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
    let list: serde_json::Value = http
        .get(format!("{base}/api/indicators"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let values: Vec<&str> =
        list["value"].as_array().unwrap().iter().filter_map(|i| i["indicatorValue"].as_str()).collect();
    assert_eq!(values, ["45.11.22.33"]);
    assert_eq!(stop(child), Some(0));
}

#[test]
fn the_emulator_command_refuses_a_non_loopback_address() {
    let out = Command::new(assert_cmd::cargo::cargo_bin!("iocsync"))
        .args(["emulator", "--listen", "0.0.0.0:0"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("loopback"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_emulator_command_serves_hunting_over_a_jsonl_file() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        "{\"Table\": \"DeviceNetworkEvents\", \"Timestamp\": \"-2d\", \"DeviceId\": \"d1\", \"RemoteIP\": \"198.51.100.7\"}\n\
         {\"Table\": \"DeviceNetworkEvents\", \"Timestamp\": \"-1d\", \"DeviceId\": \"d2\", \"RemoteIP\": \"198.51.100.7\"}\n",
    )
    .unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let (child, banner) = start(&["--listen", &listen, "--hunting-events", events.to_str().unwrap()]);
    assert!(banner.contains("advanced hunting: 2 events"), "{banner}");
    let bearer = token(&base, iocsync_emulator::DEFAULT_CLIENT_ID, iocsync_emulator::DEFAULT_CLIENT_SECRET)
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r: serde_json::Value = iocsync_defender::tls::http_client_builder().unwrap().build().unwrap()
        .post(format!("{base}/api/advancedqueries/run"))
        .bearer_auth(&bearer)
        .json(&serde_json::json!({"Query": "DeviceNetworkEvents | where Timestamp > ago(7d) | summarize dcount(DeviceId) by RemoteIP"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["Results"], serde_json::json!([{"RemoteIP": "198.51.100.7", "dcount_DeviceId": 2}]));
    assert_eq!(stop(child), Some(0));

    std::fs::write(&events, "{\"Table\": \"DeviceNetworkEvents\", \"Timestamp\": \"-1d\"}\nnot json\n")
        .unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin!("iocsync"))
        .args(["emulator", "--listen", "127.0.0.1:0", "--hunting-events", events.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("events.jsonl"), "{err}");
}
