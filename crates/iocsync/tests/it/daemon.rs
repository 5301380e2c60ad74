//! `iocsync daemon` and several tenants: scheduled runs, /healthz and /metrics, SIGTERM after
//! the batch in flight, one failing tenant not stopping the others.

use crate::harness::{CLIENT_ID, Env, EnvOptions, SECRET, public_ips, text_feed};
use iocsync_emulator::{EndpointFamily, Fault, FaultRule, Trigger};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub(crate) fn spawn_daemon(env: &Env) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin!("iocsync"))
        .arg("--config")
        .arg(env.path("iocsync.toml"))
        .arg("daemon")
        .env("IOCSYNC_TEST_SECRET", SECRET)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("daemon starts")
}

pub(crate) fn sigterm(child: &Child) {
    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill -TERM failed");
}

/// Waits (bounded) for the child to exit and returns its code.
pub(crate) async fn wait_exit(mut child: Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("daemon did not exit within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `url` until `ok(body)` holds (bounded).
async fn poll(url: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> String {
    let http = iocsync_defender::tls::http_client_builder().unwrap().build().unwrap();
    let start = Instant::now();
    loop {
        if let Ok(r) = http.get(url).send().await
            && let Ok(body) = r.text().await
            && ok(&body)
        {
            return body;
        }
        assert!(start.elapsed() < limit, "{url} never satisfied the condition within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Parses `/metrics` with a real exposition-format parser and checks the naming rules: counters
/// end in `_total`, every sample belongs to a declared family, `iocsync_build_info` is there.
fn check_exposition(text: &str) {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the exposition parses");
    assert!(!scrape.samples.is_empty());
    let mut names = std::collections::BTreeSet::new();
    for sample in &scrape.samples {
        names.insert(sample.metric.clone());
        assert!(sample.metric.starts_with("iocsync_"), "{}", sample.metric);
        let declared = scrape.docs.contains_key(&sample.metric);
        assert!(declared, "{} has no HELP", sample.metric);
        match &sample.value {
            prometheus_parse::Value::Counter(_) => {
                assert!(sample.metric.ends_with("_total"), "counter {} lacks _total", sample.metric);
            }
            prometheus_parse::Value::Gauge(_) => {
                assert!(!sample.metric.ends_with("_total"), "gauge {} ends in _total", sample.metric);
            }
            other => panic!("{}: unexpected type {other:?}", sample.metric),
        }
    }
    for want in ["iocsync_build_info", "iocsync_runs_total", "iocsync_last_success_timestamp_seconds"] {
        assert!(names.contains(want), "{want} missing from {names:?}");
    }
    let build = scrape.samples.iter().find(|s| s.metric == "iocsync_build_info").unwrap();
    assert_eq!(build.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    // promtool's naming lint too, where Debian's `prometheus` package is installed.
    if let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let said =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_runs_once_at_start_and_readyz_names_a_stale_tenant() {
    const OTHER_APP: &str = "99999999-9999-4999-8999-999999999999";
    let env = Env::start(EnvOptions::default()).await;
    let base = env.emu.base_url();
    let tenant = env.emu.tenant_id().to_owned();
    let port = free_port();
    env.write("a.txt", &text_feed(&public_ips(5, 50_000)));
    // An hourly cron in Rome: without the run at start nothing would happen during this test.
    env.write(
        "iocsync.toml",
        &format!(
            "[[tenants]]\nname = \"good\"\ntenant_id = \"{tenant}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = {{ env = \"IOCSYNC_TEST_SECRET\" }}\napi_base = \"{base}\"\nauthority = \"{base}\"\n\n\
             [[tenants]]\nname = \"bad\"\ntenant_id = \"{tenant}\"\nclient_id = \"{OTHER_APP}\"\nclient_secret = {{ env = \"IOCSYNC_TEST_SECRET\" }}\napi_base = \"{base}\"\nauthority = \"{base}\"\n\n\
             [sync]\nstate = \"state/iocsync.db\"\n[daemon]\nschedule = \"0 * * * *\"\ntz = \"Europe/Rome\"\nmax_staleness = \"1ms\"\njitter = \"0s\"\nlisten = \"127.0.0.1:{port}\"\n\
             [[feeds]]\nname = \"a\"\nsource = \"a.txt\"\nformat = \"text\"\n"
        ),
    );
    let child = spawn_daemon(&env);
    let body = poll(&format!("http://127.0.0.1:{port}/readyz"), Duration::from_secs(40), |b| {
        b.contains("last run failed")
    })
    .await;
    assert_eq!(env.owned().len(), 5, "the run at start synced the good tenant");
    let resp = iocsync_defender::tls::http_client_builder()
        .unwrap()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let bad = v["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == "bad").unwrap();
    assert_eq!(bad["ready"], false, "{v}");
    assert!(bad["reason"].as_str().unwrap().contains("AADSTS"), "{v}");
    assert!(!body.contains(SECRET));
    // Liveness stays 200: the process serves even though a tenant fails.
    let health = iocsync_defender::tls::http_client_builder()
        .unwrap()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    sigterm(&child);
    assert_eq!(wait_exit(child, Duration::from_secs(20)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_runs_on_its_interval_serves_metrics_and_stops_on_sigterm() {
    let env = Env::start(EnvOptions::default()).await;
    let port = free_port();
    env.write("a.txt", &text_feed(&public_ips(25, 20_000)));
    env.config(&format!(
        "[sync]\nstate = \"state/iocsync.db\"\n[daemon]\ninterval = \"1s\"\njitter = \"0s\"\nlisten = \"127.0.0.1:{port}\"\n[[feeds]]\nname = \"a\"\nsource = \"a.txt\"\nformat = \"text\"\n"
    ));
    let child = spawn_daemon(&env);
    let health = poll(&format!("http://127.0.0.1:{port}/healthz"), Duration::from_secs(40), |b| {
        serde_json::from_str::<serde_json::Value>(b)
            .ok()
            .and_then(|v| v["runs"].as_u64())
            .is_some_and(|runs| runs >= 4)
    })
    .await;
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert!(health["last_run_age_seconds"].as_i64().is_some_and(|a| (0..60).contains(&a)), "{health}");
    // At least 3 finished runs (the 4th has started); every run lists the tenant once.
    assert!(env.calls_of(EndpointFamily::List) >= 3);
    assert_eq!(env.owned().len(), 25);
    assert_eq!(env.calls_of(EndpointFamily::Import), 1, "later runs have nothing to write");

    let http = iocsync_defender::tls::http_client_builder().unwrap().build().unwrap();
    let metrics =
        http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap().text().await.unwrap();
    for line in [
        "iocsync_indicators_owned{tenant=\"default\"} 25",
        "iocsync_capacity_limit{tenant=\"default\"} 15000",
        "iocsync_capacity_used{tenant=\"default\"} 25",
        "iocsync_capacity_free{tenant=\"default\"} 14975",
        "iocsync_last_run_success{tenant=\"default\"} 1",
        "iocsync_items_total{tenant=\"default\",result=\"created\"} 25",
        "iocsync_items_total{tenant=\"default\",result=\"failed\"} 0",
        "iocsync_api_calls_total{tenant=\"default\",endpoint=\"import\",status=\"200\"} 1",
        "iocsync_feed_accepted{tenant=\"default\",feed=\"a\"} 25",
        "iocsync_feed_status{tenant=\"default\",feed=\"a\",status=\"ok\"} 1",
        "iocsync_feed_status{tenant=\"default\",feed=\"a\",status=\"stale\"} 0",
        "iocsync_indicators_owned_by_type{tenant=\"default\",type=\"IpAddress\",action=\"Block\"} 25",
        "iocsync_feed_age_seconds{tenant=\"default\",feed=\"a\"}",
        "iocsync_api_throttled_total{tenant=\"default\",endpoint=\"import\"} 0",
        "iocsync_brake_held{tenant=\"default\"} 0",
        "iocsync_tenant_failures_total{tenant=\"default\"} 0",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
    check_exposition(&metrics);
    let ready = iocsync_defender::tls::http_client_builder()
        .unwrap()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
    // The container HEALTHCHECK command finds the daemon from the config.
    let out = env.run(&["healthcheck"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("HTTP 200"));

    sigterm(&child);
    assert_eq!(wait_exit(child, Duration::from_secs(20)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_in_the_middle_of_a_run_exits_0_after_the_batch_in_flight() {
    let env = Env::start(EnvOptions::default()).await;
    env.emu.inject(FaultRule::new(
        Some(EndpointFamily::Import),
        Fault::Delay(Duration::from_millis(700)),
        Trigger::Always,
    ));
    let port = free_port();
    env.write("a.txt", &text_feed(&public_ips(2_000, 30_000)));
    env.config(&format!(
        "[sync]\nstate = \"state/iocsync.db\"\n[daemon]\ninterval = \"1s\"\njitter = \"0s\"\nlisten = \"127.0.0.1:{port}\"\n[[feeds]]\nname = \"a\"\nsource = \"a.txt\"\nformat = \"text\"\n"
    ));
    let child = spawn_daemon(&env);
    let start = Instant::now();
    while env.owned().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(40), "the first batch never landed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sigterm(&child);
    assert_eq!(wait_exit(child, Duration::from_secs(20)).await, Some(0));
    let out = env.run(&["healthcheck"]).await;
    assert_eq!(out.status.code(), Some(1), "nothing serves any more");
    let owned = env.owned().len();
    assert_eq!(owned % 500, 0, "only whole batches land: {owned}");
    assert!(owned < 2_000, "the run stopped early ({owned} of 2000)");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_with_a_wrong_secret_does_not_stop_the_other() {
    // Another app registration of the same tenant, whose secret is wrong.
    const OTHER_APP: &str = "99999999-9999-4999-8999-999999999999";
    let env = Env::start(EnvOptions::default()).await;
    let base = env.emu.base_url();
    let tenant = env.emu.tenant_id().to_owned();
    env.write("a.txt", &text_feed(&public_ips(12, 40_000)));
    let tenants = format!(
        "[[tenants]]\nname = \"good\"\ntenant_id = \"{tenant}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = {{ env = \"IOCSYNC_TEST_SECRET\" }}\napi_base = \"{base}\"\nauthority = \"{base}\"\n\n\
         [[tenants]]\nname = \"bad\"\ntenant_id = \"{tenant}\"\nclient_id = \"{OTHER_APP}\"\nclient_secret = {{ env = \"IOCSYNC_WRONG_SECRET\" }}\napi_base = \"{base}\"\nauthority = \"{base}\"\n\n\
         [sync]\nstate = \"state/iocsync.db\"\n[[feeds]]\nname = \"a\"\nsource = \"a.txt\"\nformat = \"text\"\n"
    );
    env.write("iocsync.toml", &tenants);
    let out =
        env.run_with(&["--output", "json", "sync"], &[("IOCSYNC_WRONG_SECRET", "not-the-secret")]).await;
    assert_eq!(out.status.code(), Some(1), "the worst tenant decides the exit code");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let good = v["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == "good").unwrap();
    let bad = v["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == "bad").unwrap();
    assert_eq!(good["counts"]["create"], 12, "{v}");
    assert!(good.get("error").is_none());
    assert!(bad["error"].as_str().unwrap().contains("AADSTS"), "{bad}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("not-the-secret"));
    assert_eq!(env.owned().len(), 12);

    // The daemon's metrics show the failing tenant.
    let port = free_port();
    env.write(
        "iocsync.toml",
        &format!("{tenants}[daemon]\ninterval = \"1s\"\njitter = \"0s\"\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let child = Command::new(assert_cmd::cargo::cargo_bin!("iocsync"))
        .arg("--config")
        .arg(env.path("iocsync.toml"))
        .arg("daemon")
        .env("IOCSYNC_TEST_SECRET", SECRET)
        .env("IOCSYNC_WRONG_SECRET", "not-the-secret")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let metrics = poll(&format!("http://127.0.0.1:{port}/metrics"), Duration::from_secs(30), |b| {
        b.contains("iocsync_last_run_success{tenant=\"bad\"}")
    })
    .await;
    assert!(metrics.contains("iocsync_last_run_success{tenant=\"bad\"} 0"), "{metrics}");
    assert!(metrics.contains("iocsync_last_run_success{tenant=\"good\"} 1"), "{metrics}");
    check_exposition(&metrics);
    sigterm(&child);
    assert_eq!(wait_exit(child, Duration::from_secs(20)).await, Some(0));
}
