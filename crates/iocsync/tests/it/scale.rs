//! An MSSP's fleet in one process (issue 13): N tenants (default 200), each its own emulator with
//! its own store and rate limits, M indicators each (default 2,000); first sync, then resync.
//! Ignored by default (heavy); BENCHMARKS.md "Many tenants" has the numbers and the command:
//!   cargo test --release -p iocsync --test it -- --ignored --nocapture scale::
//! `IOCSYNC_SCALE_TENANTS` and `IOCSYNC_SCALE_INDICATORS` change the size.

use crate::harness::{CLIENT_ID, SECRET, public_ips, text_feed};
use iocsync_emulator::{ClientCredential, EmulatorConfig, EndpointFamily, Role};
use std::time::{Duration, Instant};

fn size(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Peak resident memory (VmHWM) of a live process, in bytes.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Runs `sync` with the config in `dir`; returns the report, the wall time and the peak RSS.
async fn sync(dir: &std::path::Path) -> (serde_json::Value, Duration, u64) {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("iocsync"));
    cmd.arg("--config").arg(dir.join("iocsync.toml")).args(["-q", "--output", "json", "sync"]);
    cmd.env("IOCSYNC_TEST_SECRET", SECRET).env_remove("RUST_LOG").env("NO_COLOR", "1");
    crate::harness::isolate_state(&mut cmd, dir);
    // Files, not pipes: a report of many tenants is larger than a pipe's buffer, and nobody
    // reads the pipe before the child exits.
    let (out_path, err_path) = (dir.join("sync.out"), dir.join("sync.err"));
    cmd.stdout(std::fs::File::create(&out_path).unwrap()).stderr(std::fs::File::create(&err_path).unwrap());
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = vm_hwm(pid).unwrap_or(0).max(peak);
        assert!(started.elapsed() < Duration::from_secs(1800), "sync did not finish within 30 min");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = started.elapsed();
    let stdout = std::fs::read(&out_path).unwrap();
    let report = serde_json::from_slice(&stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}", std::fs::read_to_string(&err_path).unwrap_or_default())
    });
    (report, wall, peak)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "heavy: run with --release --ignored (BENCHMARKS.md)"]
#[allow(clippy::print_stdout)] // the measurement is this test's output
async fn many_tenants_in_one_process() {
    let tenants = size("IOCSYNC_SCALE_TENANTS", 200);
    let indicators = size("IOCSYNC_SCALE_INDICATORS", 2_000);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feed.txt"), text_feed(&public_ips(indicators, 80_000))).unwrap();
    let mut emus = Vec::new();
    let mut config = String::from(
        "[sync]\nstate = \"state/iocsync.db\"\n[[feeds]]\nname = \"f\"\nsource = \"feed.txt\"\nformat = \"text\"\n",
    );
    for i in 0..tenants {
        let emu = iocsync_emulator::start(EmulatorConfig {
            clients: vec![ClientCredential::with_secret(
                CLIENT_ID,
                SECRET,
                Role::ReadWriteAll,
                "iocsync-scale",
            )],
            ..EmulatorConfig::default()
        })
        .await
        .unwrap();
        let base = emu.base_url();
        config.push_str(&format!(
            "[[tenants]]\nname = \"t{i:03}\"\ntenant_id = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = {{ env = \"IOCSYNC_TEST_SECRET\" }}\napi_base = \"{base}\"\nauthority = \"{base}\"\n",
            emu.tenant_id()
        ));
        emus.push(emu);
    }
    std::fs::write(dir.path().join("iocsync.toml"), config).unwrap();

    let mut lines = Vec::new();
    for (pass, expect_create) in [("first sync", indicators), ("resync", 0)] {
        let before: Vec<usize> = emus.iter().map(|e| e.calls().len()).collect();
        let (report, wall, peak) = sync(dir.path()).await;
        let reports = report["tenants"].as_array().expect("one report per tenant");
        assert_eq!(reports.len(), tenants);
        let mut throttled = 0;
        for r in reports {
            assert!(r.get("error").is_none(), "{r}");
            assert_eq!(r["counts"]["create"], expect_create, "{r}");
            throttled += r["throttled"].as_u64().unwrap();
        }
        let calls: Vec<usize> = emus.iter().zip(&before).map(|(e, b)| e.calls().len() - b).collect();
        let (min, max) = (calls.iter().min().unwrap(), calls.iter().max().unwrap());
        let imports: usize = emus
            .iter()
            .map(|e| e.calls().iter().filter(|c| c.family == EndpointFamily::Import).count())
            .sum();
        lines.push(format!(
            "{pass}: {tenants} tenants x {indicators} indicators: wall {:.1} s, peak RSS {:.0} MiB, calls per tenant {min}..{max}, 429s {throttled}, import calls so far {imports}",
            wall.as_secs_f64(),
            peak as f64 / (1024.0 * 1024.0)
        ));
        assert_eq!(throttled, 0, "no tenant may be throttled");
    }
    for e in &emus {
        assert_eq!(e.indicators().len(), indicators);
    }
    for l in lines {
        println!("{l}");
    }
}
