//! The console in a real headless browser (Chromium + chromedriver from Debian's packages,
//! installed by `.ci/run`), driven over WebDriver by [`super::webdriver`]. Each page is screenshotted;
//! with `IOCSYNC_UPDATE_SCREENSHOTS=1` the pictures go to `docs/console/` (committed, shown in
//! the README), otherwise under the target directory.
//!
//! Without chromedriver the tests say so and pass, unless `IOCSYNC_REQUIRE_BROWSER=1` (CI sets
//! it), where a missing browser fails them.

use super::webdriver::Session;
use super::{ConsoleEnv, FEEDS, PASSWORD};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// chromedriver and the browser session; the driver process dies with it.
struct Browser {
    client: Session,
    driver: Child,
}

impl Drop for Browser {
    /// Kills chromedriver and the browser processes it started, also when the test failed
    /// before closing the session.
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        for pid in descendants(self.driver.id()) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Every process below `root` (children, their children, ...), from `/proc`.
#[cfg(target_os = "linux")]
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid ...": comm may hold spaces, so read after the last ')'.
        let ppid =
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.retain(|p| *p != root);
    found
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join(name)).find(|p| p.is_file())
}

/// Starts chromedriver on a free loopback port and opens a headless Chromium session; `None`
/// (the test is skipped) when neither is installed and the browser is not required.
async fn browser() -> Option<Browser> {
    let driver_bin =
        std::env::var_os("CHROMEDRIVER").map(PathBuf::from).or_else(|| find_on_path("chromedriver"));
    let chrome = std::env::var_os("CHROME_BIN")
        .map(PathBuf::from)
        .or_else(|| find_on_path("chromium"))
        .or_else(|| find_on_path("chromium-browser"))
        .or_else(|| find_on_path("google-chrome"));
    let (Some(driver_bin), Some(chrome)) = (driver_bin, chrome) else {
        assert!(
            std::env::var_os("IOCSYNC_REQUIRE_BROWSER").is_none(),
            "IOCSYNC_REQUIRE_BROWSER is set but chromedriver or chromium is missing: apt-get install chromium chromium-driver"
        );
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "SKIPPED: the console's browser tests need chromium and chromedriver (apt-get install chromium chromium-driver)"
            );
        }
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let driver = Command::new(driver_bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let options = serde_json::json!({
        "binary": chrome,
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900", "--force-device-scale-factor=1", "--lang=en-US"]
    });
    // chromedriver needs a moment to listen: ask until it answers (bounded, not a fixed sleep).
    let mut last = None;
    for _ in 0..100 {
        match Session::new(&url, options.clone()).await {
            Ok(client) => return Some(Browser { client, driver }),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on {url}: {last:?}");
}

/// Saves a screenshot of the current page as `name.png`.
async fn shot(b: &Browser, name: &str) {
    let png = b.client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let dir = if std::env::var_os("IOCSYNC_UPDATE_SCREENSHOTS").is_some() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/console")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn text_of(b: &Browser, css: &str) -> String {
    match b.client.find(css).await {
        Ok(el) => el.text().await.unwrap(),
        Err(e) => {
            let url = b.client.current_url().await.unwrap_or_default();
            let page = text_of_now(b).await;
            panic!("{css} is not on {url}: {e}\npage: {page}")
        }
    }
}

async fn text_of_now(b: &Browser) -> String {
    match b.client.find("main").await {
        Ok(m) => m.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn fill(b: &Browser, css: &str, text: &str) {
    let el = b.client.find(css).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

/// Clicks what `css` selects and, when the click leaves the page, waits for the next one.
async fn click(b: &Browser, css: &str) {
    let page = b.client.find("html").await.unwrap();
    b.client.find(css).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
    wait_for_next_page(&page).await;
}

/// Clicks what `css` selects, accepts the confirmation dialog it opens, and waits for the page
/// its form posts to.
async fn click_and_confirm(b: &Browser, css: &str) {
    let page = b.client.find("html").await.unwrap();
    b.client.find(css).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
    b.client.accept_alert().await.expect("a confirmation dialog");
    wait_for_next_page(&page).await;
}

/// Waits (bounded) until `old` is gone: the browser moved to another page.
async fn wait_for_next_page(old: &super::webdriver::Element<'_>) {
    for _ in 0..150 {
        if old.is_stale().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the page did not change within 15 s");
}

async fn sign_in(b: &Browser, c: &ConsoleEnv, user: &str) {
    b.client.goto(&c.url("/login")).await.unwrap();
    fill(b, "#user", user).await;
    fill(b, "#password", PASSWORD).await;
    click(b, "#signin").await;
    let who = text_of(b, "nav .user").await;
    assert!(who.starts_with(user), "signed in as {user}: {who}");
}

/// The value the analyst adds, defanged as analysts paste it, and its normalised form.
const PASTED: &str = "hxxps://login-micros0ft-verify[.]top/session?id=7";
const NORMALISED: &str = "https://login-micros0ft-verify.top/session?id=7";

#[tokio::test]
async fn an_analyst_adds_values_syncs_them_and_removes_one_in_a_real_browser() {
    let c = ConsoleEnv::start(FEEDS, "").await;
    let Some(b) = browser().await else { return };
    b.client.goto(&c.url("/login")).await.unwrap();
    shot(&b, "login").await;
    sign_in(&b, &c, "alice").await;

    // Three values: one accepted, one allowlisted, one private.
    b.client.goto(&c.url("/manual")).await.unwrap();
    fill(&b, "#values", &format!("{PASTED}\nwww.contoso.com\n10.1.2.3")).await;
    fill(&b, "#comment", "phishing kit seen in ticket 4711").await;
    click(&b, "#preview-button").await;
    let summary = text_of(&b, "#preview-summary").await;
    assert!(summary.starts_with("1 accepted, 2 refused") && summary.contains("nothing saved"), "{summary}");
    let table = text_of(&b, "#preview").await;
    assert!(table.contains(NORMALISED), "{table}");
    assert!(table.contains("allowlisted") && table.contains("private-address"), "{table}");
    shot(&b, "manual-preview").await;
    click(&b, "#add-button").await;
    let summary = text_of(&b, "#preview-summary").await;
    assert!(summary.contains("were added"), "{summary}");
    let list = text_of(&b, "#manual-values").await;
    assert!(list.contains(NORMALISED) && list.contains("alice"), "{list}");
    assert!(!list.contains("10.1.2.3") && !list.contains("contoso"), "refused values are not stored: {list}");
    shot(&b, "manual-list").await;

    // Sync now: the emulator holds the value with our marker; the journal names alice.
    b.client.goto(&c.url("/")).await.unwrap();
    click(&b, "#sync-now").await;
    let result = text_of(&b, "#sync-result").await;
    assert!(!result.is_empty());
    let held = c.env.owned();
    let page = text_of_now(&b).await;
    let ind = held
        .iter()
        .find(|i| i.indicator_value == NORMALISED)
        .unwrap_or_else(|| panic!("pushed: {held:?}\n{result}\n{page}"));
    assert!(ind.external_id.as_deref().is_some_and(|e| e.starts_with("iocsync:")), "our marker: {ind:?}");
    assert!(held.iter().all(|i| i.indicator_value != "10.1.2.3"));
    b.client.goto(&c.url("/")).await.unwrap();
    shot(&b, "overview").await;
    b.client.goto(&c.url("/runs")).await.unwrap();
    shot(&b, "runs").await;
    let last = iocsync::engine::lock(&c.console.store).runs(None, 1).unwrap().remove(0);
    b.client.goto(&c.url(&format!("/runs/{}?q=micros0ft", last.id))).await.unwrap();
    let journal = text_of(&b, "#journal").await;
    assert!(journal.contains(NORMALISED) && journal.contains("create"), "{journal}");
    let actor = text_of(&b, "#journal td.actor").await;
    assert_eq!(actor, "alice", "the journal names the user who ran it");
    shot(&b, "run-journal").await;
    b.client.goto(&c.url("/feeds")).await.unwrap();
    shot(&b, "feeds").await;
    let q: String = url::form_urlencoded::byte_serialize(PASTED.as_bytes()).collect();
    b.client.goto(&c.url(&format!("/lookup?value={q}"))).await.unwrap();
    let verdict = text_of(&b, "#verdict").await;
    assert!(verdict.contains("analysts"), "explain names the manual feed: {verdict}");
    shot(&b, "lookup").await;

    // Remove it: one click and the confirmation dialog; the next run deletes it.
    b.client.goto(&c.url("/manual")).await.unwrap();
    click_and_confirm(&b, "a.remove").await;
    text_of(&b, "#removed").await;
    assert!(b.client.current_url().await.unwrap().ends_with("/manual?removed=1"));
    assert!(!text_of(&b, "#manual-values").await.contains(NORMALISED));
    b.client.goto(&c.url("/")).await.unwrap();
    click(&b, "#sync-now").await;
    text_of(&b, "#sync-result").await;
    assert!(c.env.owned().iter().all(|i| i.indicator_value != NORMALISED), "the next run deleted it");

    b.client.goto(&c.url("/audit")).await.unwrap();
    let audit = text_of(&b, "#audit").await;
    assert!(
        audit.contains("manual-remove") && audit.contains("manual-add") && audit.contains("alice"),
        "{audit}"
    );
    shot(&b, "audit").await;

    // A viewer sees the list but gets no form.
    click(&b, "#logout").await;
    sign_in(&b, &c, "vera").await;
    b.client.goto(&c.url("/manual")).await.unwrap();
    text_of(&b, "#manual-values").await;
    assert!(!b.client.exists_now("#add-button").await.unwrap(), "no add form for a viewer");
    b.client.goto(&c.url("/")).await.unwrap();
    text_of(&b, ".card").await;
    assert!(!b.client.exists_now("#sync-now").await.unwrap(), "no Sync now for a viewer");
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn approval_mode_shows_the_pending_plan_and_an_approver_applies_it_in_a_real_browser() {
    let c = ConsoleEnv::start(&format!("approval = true\n{FEEDS}"), "").await;
    let Some(b) = browser().await else { return };
    sign_in(&b, &c, "paul").await;
    b.client.goto(&c.url("/manual")).await.unwrap();
    fill(&b, "#values", PASTED).await;
    click(&b, "#add-button").await;
    b.client.goto(&c.url("/")).await.unwrap();
    click(&b, "#sync-now").await;
    text_of(&b, "#sync-result").await;
    assert!(c.env.owned().is_empty(), "approval mode: a plan, not a write");
    b.client.goto(&c.url("/approvals")).await.unwrap();
    let plan = text_of(&b, ".plan").await;
    assert!(plan.contains(NORMALISED) && plan.contains("45.0.0.7"), "{plan}");
    shot(&b, "approvals").await;
    click_and_confirm(&b, ".plan button[id^=approve-]").await;
    let result = text_of(&b, "#approval-result").await;
    assert!(!result.is_empty());
    let held = c.env.owned();
    assert!(held.iter().any(|i| i.indicator_value == NORMALISED), "{held:?}");
    assert!(held.iter().any(|i| i.indicator_value == "45.0.0.7"), "{held:?}");
    b.client.goto(&c.url("/approvals")).await.unwrap();
    assert!(b.client.find("#no-plans").await.is_ok(), "nothing pending after the approval");
    b.client.close().await.unwrap();
}
