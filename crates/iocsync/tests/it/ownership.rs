//! Ownership (DESIGN principle 1) through the binary: the `externalId` marker, nothing shown to
//! end users, legacy rows tagged in `application`, look-alike rows, the canary of `check`, and
//! the refusal (or the description fallback) on a tenant that drops `externalId`.

use crate::harness::{CLIENT_ID, Env, EnvOptions, public_ips, text_feed};
use iocsync_emulator::{Behaviour, EndpointFamily, Role, SeedIndicator};

const BASE: &str = "[sync]\nstate = \"state/iocsync.db\"\n";
const MARKER: &str = "iocsync:iocsync";
const OTHER_APP: &str = "7a7a7a7a-0000-4000-8000-000000000000";

fn feed(name: &str, file: &str, extra: &str) -> String {
    format!("[[feeds]]\nname = \"{name}\"\nsource = \"{file}\"\nformat = \"text\"\n{extra}\n")
}

fn with(behaviour: Behaviour) -> EnvOptions {
    EnvOptions { behaviour, ..EnvOptions::default() }
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_marks_rows_in_external_id_and_never_shows_users_the_owner_tag() {
    let env = Env::start(with(Behaviour { notification_log: true, ..Behaviour::default() })).await;
    let plain = public_ips(6, 70_000);
    let shown = public_ips(4, 71_000);
    env.write("a.txt", &text_feed(&plain));
    env.write("b.txt", &text_feed(&shown));
    env.config(&format!(
        "{BASE}{}{}",
        feed("a", "a.txt", ""),
        feed("b", "b.txt", "application = \"Blocked by Contoso security ({type})\"")
    ));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["create"], 10);
    let owned = env.owned();
    assert_eq!(owned.len(), 10, "the canary is gone: {owned:?}");
    assert!(owned.iter().all(|i| i.external_id.as_deref() == Some(MARKER)), "{owned:?}");
    for i in &owned {
        let want = shown.contains(&i.indicator_value).then_some("Blocked by Contoso security (IpAddress)");
        assert_eq!(i.application.as_deref(), want, "{}", i.indicator_value);
    }
    // What end users see in block notifications: the feed's text, never the owner tag.
    let log = env.emu.notifications();
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(log.iter().all(|n| !n.shown.contains("iocsync")), "{log:?}");
    // The first write run proved the marker with one canary (submit, get, delete).
    assert_eq!(env.calls_of(EndpointFamily::Submit), 1);
    assert_eq!(env.calls_of(EndpointFamily::Delete), 1);

    // The next runs are proven by the listing: no canary, and nothing to write.
    env.emu.clear_calls();
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["counts"]["unchanged"], 10);
    assert_eq!(env.write_calls(), 0);
    assert_eq!(env.calls_of(EndpointFamily::Get), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_rows_tagged_in_application_are_still_owned() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(8, 72_000);
    // Made by an earlier iocsync: the owner tag in `application`, no marker (one with another
    // correlation id in externalId).
    for (n, ip) in ips.iter().enumerate() {
        let mut seed = SeedIndicator::app("IpAddress", ip, "Block", CLIENT_ID, "iocsync");
        if n == 1 {
            seed.external_id = Some("feedx:ip".into());
        }
        env.emu.seed(seed);
    }
    let before = env.emu.indicators();
    env.write("a.txt", &text_feed(&ips[1..]));
    env.config(&format!("{BASE}{}", feed("a", "a.txt", "")));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["capacity"]["owned_before"], 8, "{report}");
    assert_eq!(report["capacity"]["foreign"], 0, "{report}");
    // The one no feed carries is ours, but of unknown provenance (this state database never saw
    // it pushed): it is kept, not renewed, and expires by itself (DESIGN principle 2).
    assert_eq!(report["counts"]["delete"], 0, "{report}");
    assert_eq!(report["counts"]["update"], 7, "new title and description: {report}");
    assert_eq!(report["counts"]["create"], 0, "{report}");
    let after = env.emu.indicators();
    assert_eq!(after.len(), 8);
    for i in after.iter().filter(|i| i.indicator_value != ips[0]) {
        let old = before.iter().find(|b| b.indicator_value == i.indicator_value).unwrap();
        assert_eq!(i.id, old.id, "updated in place");
        assert_eq!(i.external_id.as_deref(), Some(MARKER), "the update moves it to the marker");
        // Defender ignores `application` on update: a legacy row keeps its text until it goes.
        assert_eq!(i.application.as_deref(), Some("iocsync"));
    }
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!((code, report["counts"]["unchanged"].as_u64()), (0, Some(8)), "{report}");
    // Once ours in this state database, a value that leaves the feed is deleted.
    env.write("a.txt", &text_feed(&ips[2..]));
    let (code, report) = env.run_json(&["sync", "--force"]).await;
    assert_eq!((code, report["counts"]["delete"].as_u64()), (0, Some(1)), "{report}");
    assert!(!env.emu.indicators().iter().any(|i| i.indicator_value == ips[1]));
}

#[tokio::test(flavor = "multi_thread")]
async fn look_alike_rows_are_not_ours() {
    let env = Env::start(EnvOptions::default()).await;
    let ips = public_ips(7, 73_000);
    // Our marker under another creator: in the feed, and not in the feed.
    let mut theirs_in = SeedIndicator::app("IpAddress", &ips[0], "Block", OTHER_APP, "other-tool");
    theirs_in.external_id = Some(MARKER.into());
    let mut theirs_out = SeedIndicator::app("IpAddress", &ips[5], "Block", OTHER_APP, "other-tool");
    theirs_out.external_id = Some(MARKER.into());
    // Our creator but no marker at all (another tool sharing the app registration).
    let mut bare_in = SeedIndicator::app("IpAddress", &ips[1], "Block", CLIENT_ID, "x");
    bare_in.application = None;
    let mut bare_out = SeedIndicator::app("IpAddress", &ips[6], "Block", CLIENT_ID, "x");
    bare_out.application = None;
    env.emu.seed_many([theirs_in, theirs_out, bare_in, bare_out]);
    let before = env.emu.indicators();
    env.write("a.txt", &text_feed(&ips[..5]));
    env.config(&format!("{BASE}{}", feed("a", "a.txt", "")));
    let (code, report) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["skipped"]["foreign-indicator"], 2, "{report}");
    assert_eq!(report["counts"]["create"], 3, "{report}");
    assert_eq!(report["counts"]["delete"], 0, "{report}");
    assert_eq!(report["capacity"]["foreign"], 4, "{report}");
    let after = env.emu.indicators();
    for b in &before {
        let a = after.iter().find(|a| a.id == b.id).expect("never deleted");
        assert_eq!(a, b, "never touched");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_creates_reads_back_and_deletes_a_canary() {
    let env = Env::start(EnvOptions::default()).await;
    env.write("a.txt", &text_feed(&public_ips(3, 74_000)));
    env.config(&format!("{BASE}{}", feed("a", "a.txt", "")));
    let (code, v) = env.run_json(&["check"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["canary"]["ok"], true, "{v}");
    assert_eq!(v["canary"]["marker_field"], "externalId");
    assert_eq!(v["canary"]["marker"], MARKER);
    assert_eq!(v["canary"]["type"], "FileSha256");
    assert_eq!(v["canary"]["deleted"], true);
    assert!(v["steps"].as_array().unwrap().iter().all(|s| s["ok"] == true), "{v}");
    let steps = v["steps"].to_string();
    assert!(steps.contains("Ti.ReadWrite.All") && steps.contains("canary"), "{steps}");
    assert!(env.emu.indicators().is_empty(), "the canary is deleted");
    let out = env.run(&["check"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("canary: marker kept"), "{text}");

    // A tenant that drops externalId: check says so and names the fallback.
    env.emu.set_behaviour(Behaviour { drop_external_id: true, ..Behaviour::default() });
    let (code, v) = env.run_json(&["check"]).await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["canary"]["ok"], false, "{v}");
    assert!(v["canary"]["detail"].as_str().unwrap().contains("externalId null"), "{v}");
    assert!(v["error"].as_str().unwrap().contains("marker_field = \"description\""), "{v}");
    assert!(env.emu.indicators().is_empty(), "the canary is deleted even then");
    let out = env.run(&["check"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("MARKER LOST") && text.contains("marker_field = \"description\""), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_names_ti_readwrite_all_when_the_app_lacks_it() {
    let env = Env::start(EnvOptions { role: Role::ReadWrite, ..EnvOptions::default() }).await;
    env.write("a.txt", &text_feed(&public_ips(1, 75_000)));
    env.config(&format!("{BASE}{}", feed("a", "a.txt", "")));
    let (code, v) = env.run_json(&["check"]).await;
    assert_eq!(code, 1, "{v}");
    assert!(v["error"].as_str().unwrap().contains("Ti.ReadWrite.All"), "{v}");
    assert_eq!(env.calls_of(EndpointFamily::Submit), 0, "no canary without the permission");
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_refuses_to_write_when_the_tenant_drops_external_id_and_the_description_marker_works() {
    let env = Env::start(with(Behaviour { drop_external_id: true, ..Behaviour::default() })).await;
    let ips = public_ips(8, 76_000);
    env.write("a.txt", &text_feed(&ips));
    env.config(&format!("{BASE}{}", feed("a", "a.txt", "")));
    let (code, v) = env.run_json(&["sync"]).await;
    assert_eq!(code, 1, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("marker_field = \"description\""), "{error}");
    assert!(env.emu.indicators().is_empty(), "nothing written, the canary deleted");
    assert_eq!(env.calls_of(EndpointFamily::Import), 0);
    let out = env.run(&["sync"]).await;
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("marker_field = \"description\""), "{text}");
    // `plan` writes nothing, so it needs no proof.
    let (code, v) = env.run_json(&["plan"]).await;
    assert_eq!((code, v["counts"]["create"].as_u64()), (0, Some(8)), "{v}");
    let text = String::from_utf8_lossy(&env.run(&["plan"]).await.stdout).into_owned();
    assert!(text.contains("note:") && text.contains("canary"), "plan says a canary comes first: {text}");
    assert!(env.emu.indicators().is_empty());

    // The fallback: the marker as a description suffix.
    let cfg = |file: &str| {
        format!(
            "[sync]\nstate = \"state/iocsync.db\"\nmarker_field = \"description\"\n{}",
            feed("a", file, "")
        )
    };
    env.config(&cfg("a.txt"));
    let (code, v) = env.run_json(&["sync"]).await;
    assert_eq!(code, 0, "{v}");
    let owned = env.owned();
    assert_eq!(owned.len(), 8);
    assert!(owned.iter().all(|i| i.external_id.is_none() && i.application.is_none()), "{owned:?}");
    assert!(
        owned.iter().all(|i| i.description == "Imported by iocsync from a [iocsync:iocsync]"),
        "{owned:?}"
    );
    env.emu.clear_calls();
    let (code, v) = env.run_json(&["sync"]).await;
    assert_eq!((code, v["counts"]["unchanged"].as_u64()), (0, Some(8)), "{v}");
    assert_eq!(env.write_calls(), 0);
    // Still ours: a value that leaves the feed is deleted.
    env.write("b.txt", &text_feed(&ips[1..]));
    env.config(&cfg("b.txt"));
    let (code, v) = env.run_json(&["sync"]).await;
    assert_eq!((code, v["counts"]["delete"].as_u64()), (0, Some(1)), "{v}");
    assert_eq!(env.owned().len(), 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn application_set_to_the_owner_tag_is_a_config_error() {
    let env = Env::start(EnvOptions::default()).await;
    env.write("a.txt", &text_feed(&public_ips(1, 77_000)));
    env.config(&format!("{BASE}[defaults]\napplication = \"iocsync\"\n{}", feed("a", "a.txt", "")));
    let out = env.run(&["check"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("defaults.application") && err.contains("owner tag"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_canary_is_read_back_from_the_listing_when_get_by_id_finds_nothing() {
    use iocsync_emulator::{Fault, FaultRule, Trigger};
    let env = Env::start(EnvOptions::default()).await;
    env.emu.inject(FaultRule::new(Some(EndpointFamily::Get), Fault::Status(404), Trigger::Always));
    env.write("a.txt", &text_feed(&public_ips(3, 78_000)));
    env.config(&format!("{BASE}{}", feed("a", "a.txt", "")));
    let (code, v) = env.run_json(&["check"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["canary"]["ok"], true, "{v}");
    assert!(env.emu.indicators().is_empty(), "the canary is deleted");
}
