//! `iocsync sync` and `plan` driven against the emulator: the "must show" list.

use crate::harness::{CLIENT_ID, Env, EnvOptions, SECRET, all_files, public_ips, text_feed};
use iocsync_emulator::{EndpointFamily, Role, SeedIndicator};

const BASE: &str = "[sync]\nstate = \"state/iocsync.db\"\nheadroom = 500\n";

fn feed_block(name: &str, file: &str, extra: &str) -> String {
    format!("[[feeds]]\nname = \"{name}\"\nsource = \"{file}\"\nformat = \"text\"\n{extra}\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn first_sync_creates_everything_in_batches_and_second_sync_writes_nothing() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(1_234, 0);
    env.write("ips.txt", &text_feed(&ips));
    env.config(&format!("{BASE}{}", feed_block("ips", "ips.txt", "")));

    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["create"], 1_234);
    let owned = env.owned();
    assert_eq!(owned.len(), 1_234);
    assert!(owned.iter().all(|i| i.expiration_time.is_some()), "every indicator expires");
    assert!(owned.iter().all(|i| i.external_id.as_deref() == Some("iocsync:iocsync")), "the marker");
    assert!(owned.iter().all(|i| i.application.is_none()), "nothing shown to end users by default");
    // ceil(1234 / 500) = 3 import calls, no deletes.
    assert_eq!(env.calls_of(EndpointFamily::Import), 3);
    assert_eq!(report["api_calls"]["import"], 3);
    assert_eq!(env.calls_of(EndpointFamily::BatchDelete), 0);

    env.emu.clear_calls();
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["unchanged"], 1_234);
    assert_eq!(env.write_calls(), 0, "a run with nothing to change makes no write call");
}

#[tokio::test(flavor = "multi_thread")]
async fn removal_severity_action_and_renewal_are_reconciled() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(40, 1000);
    env.write("a.txt", &text_feed(&ips));
    env.config(&format!("{BASE}{}", feed_block("a", "a.txt", "severity = \"High\"")));
    let (code, _) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0);
    let before = env.owned();
    let id_of = |v: &str, list: &[iocsync_emulator::wire::Indicator]| {
        list.iter().find(|i| i.indicator_value == v).map(|i| i.id.clone())
    };

    // A value removed from the feed is deleted (1 of 40: under the brake).
    env.write("a.txt", &text_feed(&ips[1..]));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["delete"], 1);
    assert!(id_of(&ips[0], &env.owned()).is_none());

    // A changed severity is updated in place: same id, new severity.
    env.config(&format!("{BASE}{}", feed_block("a", "a.txt", "severity = \"Low\"")));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["update"], 39);
    let after = env.owned();
    assert_eq!(id_of(&ips[5], &after), id_of(&ips[5], &before));
    assert!(after.iter().all(|i| i.severity == "Low"));

    // A changed action is replaced: the old indicator is gone, a new id carries the new action.
    env.config(&format!("{BASE}{}", feed_block("a", "a.txt", "severity = \"Low\"\naction = \"Audit\"")));
    let (code, report) = env.run_json(&["sync", "--force"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["replace"], 39);
    let replaced = env.owned();
    assert_eq!(replaced.len(), 39);
    assert!(replaced.iter().all(|i| i.action == "Audit" && i.generate_alert));
    assert_ne!(id_of(&ips[5], &replaced), id_of(&ips[5], &after));

    // Expiry: first shorten it to 5 days (an update: the desired expiry is earlier). With a 4-day
    // renewal window, 5 days left is outside it: unchanged. A 6-day window (and a 30-day expiry)
    // puts them inside: renewed.
    let cfg = |expire: u32, renew: u32| {
        format!(
            "[sync]\nstate = \"state/iocsync.db\"\nrenew_before_days = {renew}\n{}",
            feed_block(
                "a",
                "a.txt",
                &format!("severity = \"Low\"\naction = \"Audit\"\nexpire_days = {expire}")
            )
        )
    };
    env.config(&cfg(5, 4));
    // Cutting every expiry by 25 days would expire them all without a delete: the brake counts
    // expiry cuts (the replace above already used the window's budget), so they wait.
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 4, "{report}");
    assert_eq!(report["counts"]["update"], 0, "{report}");
    assert!(report["brake"].as_str().unwrap().contains("holds 39"), "{report}");
    let (_, report) = env.run_json(&["sync", "--force"]).await;
    assert_eq!(report["counts"]["update"], 39, "{report}");
    let (_, report) = env.run_json(&["sync"]).await;
    assert_eq!(report["counts"]["renew"], 0, "{report}");
    assert_eq!(report["counts"]["unchanged"], 39);
    env.config(&cfg(30, 6));
    let (_, report) = env.run_json(&["sync"]).await;
    assert_eq!(report["counts"]["renew"], 39, "{report}");
    let renewed = env.owned();
    let min_exp = renewed.iter().filter_map(|i| i.expiration_time.clone()).min().unwrap();
    let in_29_days = (chrono::Utc::now() + chrono::Duration::days(29)).to_rfc3339();
    assert!(min_exp > in_29_days, "renewed expiry {min_exp} should be ~30 days out");
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_indicators_are_never_modified_or_deleted() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(10, 2000);
    // The portal holds ips[0] with the same action, and ips[1] under another action.
    let same = env.emu.seed(SeedIndicator::portal("IpAddress", &ips[0], "Block", "analyst@contoso.com"));
    let other = env.emu.seed(SeedIndicator::portal("IpAddress", &ips[1], "Allowed", "analyst@contoso.com"));
    // Another app holds an unrelated value; iocsync must not delete it although no feed has it.
    let app = env.emu.seed(SeedIndicator::app(
        "DomainName",
        "evil-example.com",
        "Block",
        "9f9f9f9f-0000-4000-8000-000000000000",
        "misp2defender",
    ));
    // Same client id but another owner tag (an older script on the same app): not owned either.
    let same_app =
        env.emu.seed(SeedIndicator::app("IpAddress", &ips[2], "Block", CLIENT_ID, "legacy-script"));
    let snapshot = |id: &str| env.emu.indicators().into_iter().find(|i| i.id == id).expect("still there");
    let before: Vec<_> = [&same, &other, &app, &same_app].iter().map(|id| snapshot(id)).collect();

    env.write("a.txt", &text_feed(&ips));
    env.config(&format!("{BASE}{}", feed_block("a", "a.txt", "")));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["skipped"]["foreign-indicator"], 2, "{report}");
    assert_eq!(report["counts"]["create"], 8);
    assert_eq!(report["capacity"]["foreign"], 4);

    // Replace the feed by one other value and force: still no foreign indicator is touched.
    env.write("a.txt", &text_feed(&["45.200.200.200".to_owned()]));
    env.config(&format!("{BASE}max_shrink_fraction = 0.95\n{}", feed_block("a", "a.txt", "")));
    let (_, report) = env.run_json(&["sync", "--force"]).await;
    assert_eq!(report["counts"]["delete"], 8, "{report}");
    assert_eq!(report["counts"]["create"], 1, "{report}");
    let after: Vec<_> = [&same, &other, &app, &same_app].iter().map(|id| snapshot(id)).collect();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.last_update_time, a.last_update_time, "foreign indicator {} was modified", b.id);
        assert_eq!(b.last_updated_by, a.last_updated_by);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_with_only_ti_readwrite_refuses_to_write() {
    // Hole 8: blind to other creators' indicators, an import could overwrite an analyst's own.
    let env = Env::start(EnvOptions { role: Role::ReadWrite, ..EnvOptions::default() }).await;
    let analyst =
        env.emu.seed(SeedIndicator::portal("IpAddress", "45.99.99.99", "Block", "analyst@contoso.com"));
    let before = env.emu.indicators().into_iter().find(|i| i.id == analyst).unwrap();
    let mut ips = public_ips(20, 3000);
    ips.push("45.99.99.99".to_owned());
    env.write("a.txt", &text_feed(&ips));
    env.config(&format!("{BASE}{}", feed_block("a", "a.txt", "")));
    env.emu.clear_calls();
    let out = env.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Ti.ReadWrite.All") && err.contains("permission"), "{err}");
    assert_eq!(env.write_calls(), 0, "no write without seeing foreign indicators");
    let after = env.emu.indicators().into_iter().find(|i| i.id == analyst).unwrap();
    assert_eq!(before.last_update_time, after.last_update_time);
    assert_eq!(env.emu.indicators().len(), 1);
    // The plan still works, and says what such an app cannot see.
    let out = env.run(&["plan"]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("note:") && text.contains("Ti.ReadWrite.All"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_brake_holds_the_excess_of_a_60_percent_delete_until_forced() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(100, 4000);
    env.write("a.txt", &text_feed(&ips));
    // Let the feed shrink by 60% without the feed-health check standing in first.
    let config = format!("{BASE}max_shrink_fraction = 0.9\n{}", feed_block("a", "a.txt", ""));
    env.config(&config);
    assert_eq!(env.run_json(&["sync"]).await.0, 0);

    // 60 leave the feed and 5 new ones arrive: 25 deletes go (25% of 100), 35 wait; the creates
    // still apply.
    let mut next: Vec<String> = ips[60..].to_vec();
    next.extend(public_ips(5, 4500));
    env.write("a.txt", &text_feed(&next));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 4, "{report}");
    assert!(report["brake"].as_str().unwrap().contains("--force"), "{report}");
    assert_eq!(report["counts"]["delete"], 25, "{report}");
    assert_eq!(report["counts"]["create"], 5, "{report}");
    assert_eq!(env.owned().len(), 80);
    // The next run, inside the window, has no budget left: nothing more is deleted.
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 4, "{report}");
    assert_eq!(report["counts"]["delete"], 0, "{report}");
    assert_eq!(env.owned().len(), 80);

    let (code, report) = env.run_json(&["sync", "--force"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(env.owned().len(), 45);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_feed_losing_a_fifth_every_run_cannot_drain_the_tenant() {
    // Hole 3: each run under the brake's fraction, but the runs add up within the window.
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(100, 4100);
    env.write("a.txt", &text_feed(&ips));
    env.config(&format!("{BASE}max_shrink_fraction = 0.9\n{}", feed_block("a", "a.txt", "")));
    assert_eq!(env.run_json(&["sync"]).await.0, 0);
    let mut left = ips.clone();
    let mut codes = Vec::new();
    for _ in 0..5 {
        let keep = left.len() * 4 / 5;
        left.truncate(keep);
        env.write("a.txt", &text_feed(&left));
        codes.push(env.run_json(&["sync"]).await.0);
    }
    assert_eq!(left.len(), 32);
    assert_eq!(
        env.owned().len(),
        75,
        "at most 25% of the largest owned count in the window; exits {codes:?}"
    );
    // Run 1 deletes 20 of the 25 the window allows; run 2 the 5 left, and holds the rest.
    assert_eq!(codes, [0, 4, 4, 4, 4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_free_room_is_used_next_to_14000_foreign_indicators() {
    let env = Env::start(EnvOptions::default()).await;
    env.emu.seed_many(
        public_ips(14_000, 100_000)
            .iter()
            .map(|ip| SeedIndicator::portal("IpAddress", ip, "Block", "analyst@contoso.com")),
    );
    let ips = public_ips(1_000, 5000);
    env.write("a.txt", &text_feed(&ips));
    env.config(&format!(
        "[sync]\nstate = \"state/iocsync.db\"\ncapacity = 15000\nheadroom = 500\n{}",
        feed_block("a", "a.txt", "")
    ));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["create"], 500);
    assert_eq!(report["skipped"]["over-capacity"], 500);
    assert_eq!(report["capacity"]["foreign"], 14_000);
    assert_eq!(report["capacity"]["owned_after"], 500);
    assert_eq!(env.owned().len(), 500);
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_and_dry_run_make_no_write_call() {
    let env = Env::start(EnvOptions::default()).await;
    env.write("a.txt", &text_feed(&public_ips(30, 6000)));
    env.config(&format!("{BASE}{}", feed_block("a", "a.txt", "")));
    let (code, report) = env.run_json(&["plan", "--detailed-exitcode"]).await;
    assert_eq!(code, 2, "{report}");
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["counts"]["create"], 30);
    // The text plan names what would change: the first values, then how many more.
    let out = env.run(&["plan"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("create:") && text.contains("… and 25 more"), "{text}");
    assert!(text.contains(&public_ips(30, 6000)[0]), "{text}");
    let (code, report) = env.run_json(&["sync", "--dry-run"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["create"], 30);
    assert_eq!(env.write_calls(), 0);
    assert!(env.owned().is_empty());
    env.run_json(&["sync"]).await;
    let (code, _) = env.run_json(&["plan", "--detailed-exitcode"]).await;
    assert_eq!(code, 0, "nothing pending after a sync");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_json_report_has_the_design_keys() {
    let env = Env::start(EnvOptions::default()).await;
    env.write("a.txt", &text_feed(&["45.1.2.3".to_owned(), "10.0.0.1".to_owned()]));
    env.config(&format!("{BASE}{}", feed_block("a", "a.txt", "")));
    let (_, report) = env.run_json(&["sync"]).await;
    let obj = report.as_object().unwrap();
    for k in [
        "tenant",
        "dry_run",
        "counts",
        "skipped",
        "capacity",
        "feeds",
        "api_calls",
        "throttled",
        "failed",
        "brake",
    ] {
        assert!(obj.contains_key(k), "missing key {k}: {report}");
    }
    for k in ["create", "update", "renew", "replace", "delete", "unchanged"] {
        assert!(report["counts"].get(k).is_some(), "counts.{k}");
    }
    for k in ["limit", "foreign", "owned_before", "owned_after"] {
        assert!(report["capacity"].get(k).is_some(), "capacity.{k}");
    }
    for k in ["token", "list", "import", "batch_delete"] {
        assert!(report["api_calls"].get(k).is_some(), "api_calls.{k}");
    }
    let feed = &report["feeds"][0];
    for k in ["name", "status", "accepted", "rejected"] {
        assert!(feed.get(k).is_some(), "feeds[].{k}");
    }
    assert_eq!(report["skipped"]["private-address"], 1);
    assert!(report["brake"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn values_outside_a_feeds_types_are_reported_not_silently_dropped() {
    let env = Env::start(EnvOptions::default()).await;
    env.write(
        "a.txt",
        &text_feed(&["45.1.2.3".to_owned(), "evil-example.com".to_owned(), "45.1.2.4".to_owned()]),
    );
    env.config(&format!("{BASE}{}", feed_block("a", "a.txt", "types = [\"IpAddress\"]")));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["create"], 2);
    assert_eq!(report["skipped"]["unsupported-type"], 1, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secret_appears_nowhere() {
    let env = Env::start(EnvOptions::default()).await;
    env.write("a.txt", &text_feed(&public_ips(5, 7000)));
    env.config(&format!("{BASE}{}", feed_block("a", "a.txt", "")));
    let log = env.path("run.log");
    let log_arg = log.to_str().unwrap().to_owned();
    let mut outputs = Vec::new();
    for args in [
        vec!["-vv", "--log-file", &log_arg, "sync"],
        vec!["--output", "json", "sync"],
        vec!["check"],
        vec!["history"],
    ] {
        let out = env.run(&args).await;
        outputs.push(out.stdout);
        outputs.push(out.stderr);
    }
    // A wrong secret must not echo the one given either.
    let out = env.run_with(&["-vv", "sync"], &[("IOCSYNC_TEST_SECRET", "Wrong-Secret-Value-0000")]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Wrong-Secret-Value"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Wrong-Secret-Value"));
    for o in &outputs {
        assert!(
            !String::from_utf8_lossy(o).contains(SECRET),
            "secret in output: {}",
            String::from_utf8_lossy(o)
        );
    }
    let log_text = std::fs::read_to_string(&log).unwrap();
    let first = log_text.lines().next().expect("the log file has lines");
    assert!(
        first.len() > 20 && first.as_bytes()[4] == b'-' && first.as_bytes()[10] == b'T',
        "log lines start with a timestamp: {first}"
    );
    assert!(!log_text.contains('\u{1b}'), "no colour codes in the log file");
    for (path, bytes) in all_files(env.dir.path()) {
        if path.ends_with("iocsync.toml") {
            continue;
        }
        let hay = String::from_utf8_lossy(&bytes);
        assert!(!hay.contains(SECRET), "secret found in {}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn permanent_rejects_are_remembered_and_resent_only_when_the_metadata_changes() {
    let behaviour = iocsync_emulator::Behaviour {
        known_device_groups: Some(vec!["Servers".to_owned()]),
        ..Default::default()
    };
    let env = Env::start(EnvOptions { behaviour, ..EnvOptions::default() }).await;
    let ips = public_ips(3, 8000);
    env.write("a.txt", &text_feed(&ips));
    env.write("b.txt", &text_feed(&public_ips(2, 8100)));
    let cfg = |groups: &str| {
        format!(
            "{BASE}{}{}",
            feed_block("a", "a.txt", &format!("rbac_groups = [\"{groups}\"]")),
            feed_block("b", "b.txt", "rbac_groups = [\"Servers\"]")
        )
    };
    env.config(&cfg("Laptops"));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 3, "refused items make a partial run: {report}");
    assert_eq!(report["failed"].as_array().unwrap().len(), 3, "{report}");
    assert_eq!(report["failed"][0]["type"], "IpAddress");
    assert_eq!(env.owned().len(), 2);

    env.emu.clear_calls();
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["skipped"]["rejected-by-defender"], 3, "{report}");
    assert_eq!(env.write_calls(), 0, "remembered rejects are not resent");

    env.config(&cfg("Servers"));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["create"], 3, "changed metadata is sent again: {report}");
    assert_eq!(env.owned().len(), 5);
    // Accepted now, they are no longer remembered as rejects.
    let state = iocsync::state::StateStore::open(&env.path("state/iocsync.db")).unwrap();
    assert!(state.reject_records("default").unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_credential_works_and_its_key_file_must_be_private() {
    use base64::Engine as _;
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../emulator/tests/it/fixtures");
    let key = std::fs::read_to_string(format!("{fixtures}/test_client_key.pem")).unwrap();
    let public = std::fs::read_to_string(format!("{fixtures}/test_client_pub.pem")).unwrap();
    let cert = std::fs::read_to_string(format!("{fixtures}/test_client_cert.pem")).unwrap();
    let thumbs = iocsync_defender::certificate_thumbprints(&cert).unwrap();
    let b64 = |h: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hex_bytes(h));
    let app = "3c3c3c3c-4444-4555-8666-777777777777";
    let config = iocsync_emulator::EmulatorConfig {
        clients: vec![
            iocsync_emulator::ClientCredential::with_certificate(
                app,
                &public,
                Some(&b64(&thumbs.sha1)),
                Role::ReadWriteAll,
                "iocsync-cert",
            )
            .with_x5t_s256(&b64(&thumbs.sha256)),
        ],
        ..iocsync_emulator::EmulatorConfig::default()
    };
    let emu = iocsync_emulator::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("key.pem");
    std::fs::write(&key_path, key).unwrap();
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("a.txt"), text_feed(&public_ips(3, 8200))).unwrap();
    let base = emu.base_url();
    let write_config = |certificate: &str| {
        std::fs::write(
            dir.path().join("iocsync.toml"),
            format!(
                "[defender]\ntenant_id = \"{}\"\nclient_id = \"{app}\"\nclient_certificate = {{ key_file = \"key.pem\", {certificate} }}\napi_base = \"{base}\"\nauthority = \"{base}\"\n{BASE}{}",
                emu.tenant_id(),
                feed_block("a", "a.txt", "")
            ),
        )
        .unwrap();
    };
    // Off the runtime's worker threads, which serve the emulator.
    let run = || {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("iocsync"));
        cmd.arg("--config").arg(dir.path().join("iocsync.toml")).args(["--output", "json", "sync"]);
        crate::harness::isolate_state(&mut cmd, dir.path());
        tokio::task::block_in_place(move || cmd.output().unwrap())
    };
    // The default (PS256, x5t#S256) from the certificate file.
    write_config("cert_file = \"cert.pem\"");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = run();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stdout).contains("chmod 600"));
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = run();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["counts"]["create"], 3);
    assert_eq!(emu.indicators().iter().filter(|i| i.created_by == app).count(), 3);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("PRIVATE KEY"));

    // A SHA-1 thumbprint alone cannot make a PS256 assertion: the config error names both ways out.
    write_config(&format!("thumbprint = \"{}\"", thumbs.sha1));
    let out = run();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("cert_file") && text.contains("RS256"), "{text}");
    // RS256 is a switch: with the SHA-1 thumbprint it signs in and the run writes nothing new.
    write_config(&format!("thumbprint = \"{}\", algorithm = \"RS256\"", thumbs.sha1));
    let out = run();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["counts"]["unchanged"], 3, "{report}");
    // A SHA-256 thumbprint works with the default too.
    write_config(&format!("thumbprint = \"{}\"", thumbs.sha256.to_uppercase()));
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
}
