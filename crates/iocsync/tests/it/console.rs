//! The analyst console: HTTP-level tests of sign-in, sessions, CSRF, roles and the proxy
//! header (in-process, with a hand-moved clock), and the real-browser tests (`browser`).

use crate::harness::{Env, EnvOptions, SECRET};
use iocsync::config::{Config, Role};
use iocsync::console::users::UsersFile;
use iocsync::console::{Console, ManualClock};
use std::net::SocketAddr;
use std::sync::Arc;

mod browser;
mod webdriver;

/// The password every test user gets.
pub const PASSWORD: &str = "correct horse battery staple";

/// A console served in-process on 127.0.0.1:0 over an emulator tenant.
pub struct ConsoleEnv {
    pub env: Env,
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub console: Arc<Console>,
    _task: tokio::task::JoinHandle<()>,
}

/// Writes the config: the emulator tenant (secret from a file, so in-process syncs need no
/// environment variable), the state database, `rest`, and the console section `console`.
pub fn write_config(env: &Env, rest: &str, console: &str) {
    let base = env.emu.base_url();
    env.write("secret.txt", SECRET);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(env.path("secret.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let text = format!(
        "[defender]\ntenant_id = \"{tenant}\"\nclient_id = \"{id}\"\nclient_secret = {{ file = \"secret.txt\" }}\napi_base = \"{base}\"\nauthority = \"{base}\"\n\n[sync]\nstate = \"state.db\"\n{rest}\n\n[console]\nenabled = true\nlisten = \"127.0.0.1:0\"\nusers_file = \"users.toml\"\n{console}\n",
        tenant = env.emu.tenant_id(),
        id = crate::harness::CLIENT_ID,
    );
    env.write("iocsync.toml", &text);
}

/// The users alice (analyst), vera (viewer) and paul (approver), all with [`PASSWORD`].
pub fn write_users(env: &Env) {
    let mut f = UsersFile::default();
    f.upsert("alice", Role::Analyst, PASSWORD).unwrap();
    f.upsert("vera", Role::Viewer, PASSWORD).unwrap();
    f.upsert("paul", Role::Approver, PASSWORD).unwrap();
    f.save(&env.path("users.toml")).unwrap();
}

/// The feeds most console tests use: the manual list, and a small text feed.
pub const FEEDS: &str = r#"
[allowlist]
values = ["contoso.com"]

[[feeds]]
name = "analysts"
source = "manual"
priority = 100
row_actions = ["Block", "Audit"]

[[feeds]]
name = "small"
source = "small.txt"
format = "text"
"#;

impl ConsoleEnv {
    /// Starts the emulator, writes config and users, and serves the console.
    pub async fn start(rest: &str, console: &str) -> ConsoleEnv {
        ConsoleEnv::start_with(rest, console, std::time::Duration::from_secs(20)).await
    }

    /// [`ConsoleEnv::start`] with pages waiting `foreground` for engine work.
    pub async fn start_with(rest: &str, console: &str, foreground: std::time::Duration) -> ConsoleEnv {
        let env = Env::start(EnvOptions::default()).await;
        // Eight values, so removing one manual value stays under the delete brake.
        env.write("small.txt", &crate::harness::text_feed(&crate::harness::public_ips(8, 0)));
        write_config(&env, rest, console);
        write_users(&env);
        let config = Config::load(&env.path("iocsync.toml")).expect("config is valid");
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let console =
            Console::new(config, clock.clone()).expect("console starts").with_foreground(foreground);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(iocsync::daemon::serve_with(
            listener,
            console.router(),
            iocsync::daemon::ListenerLimits::default(),
            None,
        ));
        ConsoleEnv { env, addr, clock, console, _task: task }
    }

    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A tiny browser: keeps cookies, follows no redirect (the tests look at them).
pub struct Client {
    http: reqwest::Client,
    cookies: std::collections::BTreeMap<String, String>,
    extra: Vec<(String, String)>,
}

/// One answer.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    /// The CSRF token of the first form on the page.
    pub fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("the page has a form with a CSRF token");
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    /// The `Location` header.
    pub fn location(&self) -> String {
        self.headers.get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
    }
}

impl Client {
    pub fn new() -> Client {
        let http = iocsync_defender::tls::http_client_builder()
            .unwrap()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Client { http, cookies: Default::default(), extra: Vec::new() }
    }

    /// Sends `header: value` with every request (the proxy tests).
    pub fn with_header(mut self, name: &str, value: &str) -> Client {
        self.extra.push((name.to_owned(), value.to_owned()));
        self
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let mut req = req.header("cookie", self.cookie_header());
        for (k, v) in &self.extra {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req.send().await.expect("the console answers");
        for c in resp.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (kv, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        Answer { status, headers, body }
    }

    pub async fn get(&mut self, url: &str) -> Answer {
        let req = self.http.get(url);
        self.send(req).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Answer {
        let req = self.http.post(url).form(form);
        self.send(req).await
    }

    /// Signs in through the form; returns the answer to the POST.
    pub async fn login(&mut self, c: &ConsoleEnv, user: &str, password: &str) -> Answer {
        let page = self.get(&c.url("/login")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = page.csrf();
        self.post(&c.url("/login"), &[("user", user), ("password", password), ("csrf", &csrf), ("next", "/")])
            .await
    }

    /// The session cookie, when signed in.
    pub fn session(&self) -> Option<String> {
        self.cookies.get("iocsync_session").cloned()
    }

    /// Replaces the cookies (an attacker replaying a stolen one).
    pub fn set_session(&mut self, token: &str) {
        self.cookies.insert("iocsync_session".to_owned(), token.to_owned());
    }
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_wrong_passwords_are_refused() {
    let c = ConsoleEnv::start(FEEDS, "").await;
    let mut b = Client::new();
    let first = b.get(&c.url("/")).await;
    assert_eq!(first.status, 303, "not signed in: sent to the sign-in page");
    assert!(first.location().starts_with("/login?next="), "{}", first.location());
    let wrong = b.login(&c, "alice", "not the password at all").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Wrong user name or password"), "{}", wrong.body);
    let nobody = b.login(&c, "mallory", PASSWORD).await;
    assert_eq!(nobody.status, 401, "an unknown user gets the same answer");
    assert!(b.session().is_none());
    let ok = b.login(&c, "alice", PASSWORD).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let set =
        ok.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
    let session = set.iter().find(|c| c.starts_with("iocsync_session=")).expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(!session.contains("Secure"), "no TLS here: a Secure cookie would never come back");
    let home = b.get(&c.url("/")).await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("alice"), "the page names the user");
    let csp = home.headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(home.headers.get("cache-control").unwrap(), "no-store");
    // The sign-in form itself carries a CSRF token bound to its cookie.
    let mut other = Client::new();
    let forged = other
        .post(
            &c.url("/login"),
            &[("user", "alice"), ("password", PASSWORD), ("csrf", "forged"), ("next", "/")],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(other.session().is_none());
}

#[tokio::test]
async fn failed_sign_ins_are_rate_limited_per_user_and_address_until_the_window_passes() {
    let c = ConsoleEnv::start(FEEDS, "login_attempts = 3\nlogin_window = \"10m\"").await;
    let mut b = Client::new();
    for _ in 0..3 {
        assert_eq!(b.login(&c, "alice", "wrong wrong wrong").await.status, 401);
    }
    let locked = b.login(&c, "alice", PASSWORD).await;
    assert_eq!(locked.status, 429, "locked out even with the right password: {}", locked.body);
    assert!(locked.headers.get("retry-after").is_some());
    assert!(locked.body.contains("try again in"), "{}", locked.body);
    // The address is locked too: guessing another user's password from it is refused.
    assert_eq!(b.login(&c, "paul", PASSWORD).await.status, 429);
    c.clock.advance(std::time::Duration::from_secs(11 * 60));
    assert_eq!(b.login(&c, "alice", PASSWORD).await.status, 303, "the window passed");
}

#[tokio::test]
async fn sessions_expire_when_idle_and_logout_kills_them_on_the_server() {
    let c = ConsoleEnv::start(FEEDS, "session_idle = \"30m\"\nsession_max = \"8h\"").await;
    let mut b = Client::new();
    assert_eq!(b.login(&c, "alice", PASSWORD).await.status, 303);
    c.clock.advance(std::time::Duration::from_secs(29 * 60));
    assert_eq!(b.get(&c.url("/")).await.status, 200, "29 minutes idle: still signed in");
    let page = b.get(&c.url("/manual")).await;
    let csrf = page.csrf();
    c.clock.advance(std::time::Duration::from_secs(31 * 60));
    let expired = b.get(&c.url("/")).await;
    assert_eq!(expired.status, 303, "31 minutes idle: signed out");
    let post = b.post(&c.url("/manual/add"), &[("values", "evil.example.net"), ("csrf", &csrf)]).await;
    assert_eq!(post.status, 401, "a form from the expired session is refused: {}", post.body);
    // Logout: the old cookie is worthless even if someone kept a copy.
    assert_eq!(b.login(&c, "alice", PASSWORD).await.status, 303);
    let stolen = b.session().unwrap();
    let csrf = b.get(&c.url("/")).await.csrf();
    assert_eq!(b.post(&c.url("/logout"), &[("csrf", &csrf)]).await.status, 303);
    assert!(b.session().is_none(), "the browser's cookie is cleared");
    let mut thief = Client::new();
    thief.set_session(&stolen);
    assert_eq!(thief.get(&c.url("/")).await.status, 303, "the server forgot the session");
}

#[tokio::test]
async fn state_changing_requests_need_the_csrf_token_and_the_role() {
    let c = ConsoleEnv::start(FEEDS, "").await;
    let mut alice = Client::new();
    assert_eq!(alice.login(&c, "alice", PASSWORD).await.status, 303);
    let no_token =
        alice.post(&c.url("/manual/add"), &[("values", "evil.example.net"), ("comment", "x")]).await;
    assert_eq!(no_token.status, 403, "{}", no_token.body);
    assert!(no_token.body.contains("security token"), "{}", no_token.body);
    let wrong = alice.post(&c.url("/manual/add"), &[("values", "evil.example.net"), ("csrf", "0000")]).await;
    assert_eq!(wrong.status, 403);
    let sync = alice.post(&c.url("/sync-now"), &[]).await;
    assert_eq!(sync.status, 403, "Sync now needs the token too");
    let mut vera = Client::new();
    assert_eq!(vera.login(&c, "vera", PASSWORD).await.status, 303);
    let page = vera.get(&c.url("/manual")).await;
    assert!(!page.body.contains("id=\"add-button\""), "a viewer gets no add form");
    let csrf = page.csrf();
    let denied = vera.post(&c.url("/manual/add"), &[("values", "evil.example.net"), ("csrf", &csrf)]).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(denied.body.contains("analyst"), "{}", denied.body);
    let approve = vera.post(&c.url("/approvals/1/approve"), &[("csrf", &csrf)]).await;
    assert_eq!(approve.status, 403);
    let values = iocsync::engine::manual::list(&c.console.store, chrono::Utc::now()).unwrap();
    assert!(values.is_empty(), "nothing was stored: {values:?}");
}

#[tokio::test]
async fn the_proxy_header_is_trusted_only_from_the_proxy_addresses() {
    let proxy = "auth = \"proxy\"\nproxy_addresses = [\"10.20.30.40\"]\nproxy_user_header = \"X-Forwarded-Email\"\nproxy_roles = { \"alice@contoso.com\" = \"analyst\" }";
    let c = ConsoleEnv::start(FEEDS, proxy).await;
    let mut spoof = Client::new().with_header("X-Forwarded-Email", "alice@contoso.com");
    let refused = spoof.get(&c.url("/")).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("127.0.0.1") && refused.body.contains("proxy_addresses"),
        "{}",
        refused.body
    );
    assert!(spoof.session().is_none());

    let trusted = "auth = \"proxy\"\nproxy_addresses = [\"127.0.0.0/8\"]\nproxy_roles = { \"alice@contoso.com\" = \"analyst\" }";
    let c = ConsoleEnv::start(FEEDS, trusted).await;
    let mut via_proxy = Client::new().with_header("X-Forwarded-Email", "alice@contoso.com");
    let home = via_proxy.get(&c.url("/")).await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains("alice@contoso.com · analyst"), "{}", home.body);
    let mut nameless = Client::new();
    assert_eq!(nameless.get(&c.url("/")).await.status, 401, "from the proxy but no user named");
    let mut bob = Client::new().with_header("X-Forwarded-Email", "bob@contoso.com");
    let page = bob.get(&c.url("/manual")).await;
    assert!(page.body.contains("bob@contoso.com · viewer"), "an unlisted user gets the default role");
    // A session cookie of alice does not carry over to a request naming bob.
    let mut switch = Client::new().with_header("X-Forwarded-Email", "bob@contoso.com");
    switch.set_session(&via_proxy.session().unwrap());
    let page = switch.get(&c.url("/")).await;
    assert!(page.body.contains("bob@contoso.com · viewer"), "{}", page.body);
}

#[tokio::test]
async fn the_console_serves_tls_with_secure_cookies() {
    let env = Env::start(EnvOptions::default()).await;
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures");
    let cert = fixtures.join("console_tls_cert.pem");
    let key = fixtures.join("console_tls_key.pem");
    write_config(&env, FEEDS, &format!("tls_cert = \"{}\"\ntls_key = \"{}\"", cert.display(), key.display()));
    write_users(&env);
    let config = Config::load(&env.path("iocsync.toml")).unwrap();
    let acceptor = iocsync::console::tls::acceptor(&cert, &key).expect("the fixture loads");
    let console = Console::new(config, Arc::new(iocsync::console::SystemClock)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(iocsync::daemon::serve_with(listener, console.router(), Default::default(), Some(acceptor)));
    // A client that trusts only the fixture certificate.
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from_pem_file(&cert).unwrap()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.expect("TLS handshake with the console");
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    stream.write_all(b"GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let cookie = answer.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap();
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    // Plain HTTP on the TLS port gets no page.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET /login HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(15), plain.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("Sign in"));
}

#[tokio::test]
async fn add_user_hashes_the_password_and_the_config_must_name_a_proxy() {
    let env = Env::start(EnvOptions::default()).await;
    write_config(&env, FEEDS, "");
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("iocsync"));
    cmd.arg("--config").arg(env.path("iocsync.toml")).args([
        "console",
        "add-user",
        "zoe",
        "--role",
        "approver",
        "--password-stdin",
    ]);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("added user zoe"));
    let text = std::fs::read_to_string(env.path("users.toml")).unwrap();
    assert!(text.contains("zoe") && text.contains("$argon2id$") && !text.contains(PASSWORD), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(env.path("users.toml")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the users file is private: {mode:o}");
    }
    let users = UsersFile::load(&env.path("users.toml")).unwrap();
    assert_eq!(users.verify("zoe", PASSWORD).map(|u| u.role), Some(Role::Approver));
    let bad = Config::from_toml(
        "[defender]\nemulator = true\n[console]\nenabled = true\nauth = \"proxy\"\nrole = \"x\"\n",
        std::path::Path::new("/tmp/iocsync.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("console.proxy_addresses") && bad.contains("console.role"), "{bad}");
}

#[tokio::test]
async fn the_daemon_serves_the_console_when_enabled_and_names_it_in_its_json() {
    let env = Env::start(EnvOptions::default()).await;
    env.write("small.txt", &crate::harness::text_feed(&crate::harness::public_ips(3, 0)));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    write_config(&env, &format!("[daemon]\ninterval = \"6h\"\nlisten = \"127.0.0.1:0\"\n{FEEDS}"), "");
    let text = std::fs::read_to_string(env.path("iocsync.toml")).unwrap();
    std::fs::write(
        env.path("iocsync.toml"),
        text.replace(
            "listen = \"127.0.0.1:0\"\nusers_file",
            &format!("listen = \"127.0.0.1:{port}\"\nusers_file"),
        ),
    )
    .unwrap();
    write_users(&env);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("iocsync"))
        .arg("--config")
        .arg(env.path("iocsync.toml"))
        .args(["--output", "json", "daemon"])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let doc: serde_json::Value = tokio::task::spawn_blocking(move || {
        serde_json::Deserializer::from_reader(stdout)
            .into_iter::<serde_json::Value>()
            .next()
            .unwrap()
            .unwrap()
    })
    .await
    .unwrap();
    let url = doc["console"].as_str().unwrap_or_else(|| panic!("{doc}")).to_owned();
    assert_eq!(url, format!("http://127.0.0.1:{port}/"));
    let mut b = Client::new();
    let login = b.get(&format!("{url}login")).await;
    assert_eq!(login.status, 200);
    assert!(login.body.contains("name=\"password\""));
    let home = b.get(&url).await;
    assert_eq!(home.status, 303, "signed out: sent to /login");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn an_analyst_requests_an_undo_and_only_an_approver_confirms_it_with_the_audit_naming_both() {
    let c = ConsoleEnv::start(FEEDS, "").await;
    let mut alice = Client::new();
    assert_eq!(alice.login(&c, "alice", PASSWORD).await.status, 303);
    let csrf = alice.get(&c.url("/")).await.csrf();
    let synced = alice.post(&c.url("/sync-now"), &[("csrf", &csrf)]).await;
    assert_eq!(synced.status, 200, "{}", synced.body);
    assert!(synced.body.contains("8 created"), "{}", synced.body);
    assert_eq!(c.env.owned().len(), 8);
    let run = iocsync::engine::lock(&c.console.store).runs(None, 1).unwrap().remove(0);
    let page = alice.get(&c.url(&format!("/runs/{}", run.id))).await;
    assert!(page.body.contains("id=\"request-undo\""), "an analyst may ask");
    let asked = alice.post(&c.url(&format!("/runs/{}/undo", run.id)), &[("csrf", &csrf)]).await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert_eq!(c.env.owned().len(), 8, "asking writes nothing");
    let request = iocsync::engine::approval::pending_undos(&c.console.store).unwrap().remove(0);
    assert_eq!(request.requested_by, "alice");
    let denied = alice.post(&c.url(&format!("/undo/{}/confirm", request.id)), &[("csrf", &csrf)]).await;
    assert_eq!(denied.status, 403, "an analyst cannot confirm: {}", denied.body);
    assert_eq!(c.env.owned().len(), 8);
    let mut paul = Client::new();
    assert_eq!(paul.login(&c, "paul", PASSWORD).await.status, 303);
    let approvals = paul.get(&c.url("/approvals")).await;
    assert!(approvals.body.contains(&format!("id=\"undo-{}\"", request.id)), "{}", approvals.body);
    let csrf = approvals.csrf();
    // Undoing the first run deletes all 8: the engine's brake refuses it, console or not.
    let braked = paul.post(&c.url(&format!("/undo/{}/confirm", request.id)), &[("csrf", &csrf)]).await;
    assert_eq!(braked.status, 409, "{}", braked.body);
    assert!(braked.body.contains("brake"), "{}", braked.body);
    assert_eq!(c.env.owned().len(), 8, "nothing was written");
    // A run that added one manual value is undone: 1 delete of 9 is within the brake.
    let csrf = alice.get(&c.url("/manual")).await.csrf();
    let added = alice
        .post(
            &c.url("/manual/add"),
            &[
                ("values", "evil-undo-test.top"),
                ("comment", "t"),
                ("action", ""),
                ("expires", ""),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert!(added.body.contains("1 accepted, 0 refused"), "{}", added.body);
    assert_eq!(alice.post(&c.url("/sync-now"), &[("csrf", &csrf)]).await.status, 200);
    assert_eq!(c.env.owned().len(), 9);
    let second = iocsync::engine::lock(&c.console.store).runs(None, 1).unwrap().remove(0);
    assert_eq!(
        alice.post(&c.url(&format!("/runs/{}/undo", second.id)), &[("csrf", &csrf)]).await.status,
        200
    );
    let request = iocsync::engine::approval::pending_undos(&c.console.store).unwrap().remove(0);
    let csrf = paul.get(&c.url("/approvals")).await.csrf();
    let done = paul.post(&c.url(&format!("/undo/{}/confirm", request.id)), &[("csrf", &csrf)]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let held = c.env.owned();
    assert_eq!(held.len(), 8, "the second run's create was reverted");
    assert!(held.iter().all(|i| i.indicator_value != "evil-undo-test.top"));
    let audit = paul.get(&c.url("/audit")).await;
    for (who, what) in
        [("alice", "sync-now"), ("alice", "undo-request"), ("paul", "undo-confirm"), ("paul", "login")]
    {
        assert!(
            audit.body.contains(&format!("<td>{who}</td><td><code>{what}</code>")),
            "{who} {what} in the audit page: {}",
            audit.body
        );
    }
    assert!(!audit.body.contains(PASSWORD) && !audit.body.contains(SECRET));
}

#[tokio::test]
async fn a_sync_now_slower_than_the_page_completes_in_the_background_with_its_audit_row() {
    let c = ConsoleEnv::start_with(FEEDS, "", std::time::Duration::from_millis(200)).await;
    c.env.emu.inject(iocsync_emulator::FaultRule::new(
        Some(iocsync_emulator::EndpointFamily::Import),
        iocsync_emulator::Fault::Delay(std::time::Duration::from_millis(1500)),
        iocsync_emulator::Trigger::Always,
    ));
    let mut alice = Client::new();
    assert_eq!(alice.login(&c, "alice", PASSWORD).await.status, 303);
    let csrf = alice.get(&c.url("/")).await.csrf();
    let page = alice.post(&c.url("/sync-now"), &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 202, "{}", page.body);
    assert!(page.body.contains("still running in the background"), "{}", page.body);
    // The browser is gone; the run is not: it finishes, is recorded, and audited.
    drop(alice);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let runs = iocsync::engine::lock(&c.console.store).runs(None, 1).unwrap();
        if runs.first().is_some_and(|r| r.finished_at.is_some()) {
            assert_eq!(runs[0].status, "ok");
            assert_eq!(runs[0].actor.as_deref(), Some("alice"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the run never finished: {runs:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(c.env.owned().len(), 8);
    let audit = iocsync::engine::audit::audit_log(&c.console.store, 10).unwrap();
    assert!(audit.iter().any(|a| a.user == "alice" && a.action == "sync-now"), "{audit:?}");
}

#[tokio::test]
async fn sign_in_refuses_open_redirects_long_names_and_a_reset_password_ends_sessions() {
    let c = ConsoleEnv::start(FEEDS, "").await;
    for next in [
        "//evil.example/",
        "/\t/evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "/\n/evil.example",
    ] {
        let mut b = Client::new();
        let page = b.get(&c.url("/login")).await;
        let csrf = page.csrf();
        let ok = b
            .post(
                &c.url("/login"),
                &[("user", "alice"), ("password", PASSWORD), ("csrf", &csrf), ("next", next)],
            )
            .await;
        assert_eq!(ok.status, 303);
        assert_eq!(ok.location(), "/", "next = {next:?}");
    }
    let mut b = Client::new();
    let ok = b.login(&c, "alice", PASSWORD).await;
    assert_eq!(ok.location(), "/");
    let csrf = b.get(&c.url("/login")).await.csrf();
    let long = "a".repeat(10_000);
    let refused =
        b.post(&c.url("/login"), &[("user", &long), ("password", "x"), ("csrf", &csrf), ("next", "/")]).await;
    assert_eq!(refused.status, 400);
    assert_eq!(c.console.limiter.keys(), 0, "a refused name is not even counted");
    // A password reset (add-user on an existing user) ends the sessions of the old password.
    assert_eq!(b.get(&c.url("/")).await.status, 200);
    let mut users = UsersFile::load(&c.env.path("users.toml")).unwrap();
    users.upsert("alice", Role::Analyst, "a brand new long password").unwrap();
    users.save(&c.env.path("users.toml")).unwrap();
    let after = b.get(&c.url("/")).await;
    assert_eq!(after.status, 401, "{}", after.body);
    assert!(after.body.contains("password of this user was changed"), "{}", after.body);
    assert_eq!(b.get(&c.url("/")).await.status, 303, "the session is gone");
}

#[tokio::test]
async fn a_user_header_sent_twice_is_refused_even_from_the_proxy() {
    let trusted = "auth = \"proxy\"\nproxy_addresses = [\"127.0.0.1\"]\nproxy_roles = { \"alice@contoso.com\" = \"approver\" }";
    let c = ConsoleEnv::start(FEEDS, trusted).await;
    let mut twice = Client::new()
        .with_header("X-Forwarded-Email", "mallory@contoso.com")
        .with_header("X-Forwarded-Email", "alice@contoso.com");
    let page = twice.get(&c.url("/")).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(twice.session().is_none());
}

#[tokio::test]
async fn online_lookups_are_limited_per_user_and_fall_back_to_offline() {
    let c = ConsoleEnv::start(FEEDS, "").await;
    let mut vera = Client::new();
    assert_eq!(vera.login(&c, "vera", PASSWORD).await.status, 303);
    let calls = || c.env.calls_of(iocsync_emulator::EndpointFamily::List);
    let before = calls();
    let first = vera.get(&c.url("/lookup?value=45.0.0.1&online=1")).await;
    assert_eq!(first.status, 200);
    assert!(!first.body.contains("answered offline"), "{}", first.body);
    let after_first = calls();
    assert!(after_first > before, "the first online lookup asked Defender");
    let second = vera.get(&c.url("/lookup?value=45.0.0.1&online=1")).await;
    assert!(second.body.contains("answered offline"), "{}", second.body);
    assert_eq!(calls(), after_first, "the second did not");
    c.clock.advance(iocsync::console::ONLINE_LOOKUP_EVERY);
    let third = vera.get(&c.url("/lookup?value=45.0.0.1&online=1")).await;
    assert!(!third.body.contains("answered offline"));
    assert!(calls() > after_first);
}

#[tokio::test]
async fn with_four_eyes_an_approver_cannot_confirm_their_own_undo_request() {
    let c = ConsoleEnv::start(&format!("approval = true\nfour_eyes = true\n{FEEDS}"), "").await;
    let mut users = UsersFile::load(&c.env.path("users.toml")).unwrap();
    users.upsert("quinn", Role::Approver, PASSWORD).unwrap();
    users.save(&c.env.path("users.toml")).unwrap();
    // Runs made outside the console (the CLI's `sync`): first the feed's 8 values, then one manual
    // value, so undoing the second run is 1 delete of 9, within the brake.
    let config = Config::load(&c.env.path("iocsync.toml")).unwrap();
    let cli_sync = || async {
        let req = iocsync::engine::SyncRequest::default();
        let o = iocsync::engine::sync_all(&config, None, &req).await.unwrap();
        assert!(o[0].error.is_none(), "{:?}", o[0].error);
    };
    cli_sync().await;
    let mut paul = Client::new();
    assert_eq!(paul.login(&c, "paul", PASSWORD).await.status, 303);
    let csrf = paul.get(&c.url("/manual")).await.csrf();
    let form =
        [("values", "four-eyes.top"), ("comment", "t"), ("action", ""), ("expires", ""), ("csrf", &csrf)];
    assert!(paul.post(&c.url("/manual/add"), &form).await.body.contains("1 accepted, 0 refused"));
    cli_sync().await;
    assert_eq!(c.env.owned().len(), 9);
    let run = iocsync::engine::lock(&c.console.store).runs(None, 1).unwrap().remove(0);
    assert_eq!(paul.post(&c.url(&format!("/runs/{}/undo", run.id)), &[("csrf", &csrf)]).await.status, 200);
    let request = iocsync::engine::approval::pending_undos(&c.console.store).unwrap().remove(0);
    let own = paul.post(&c.url(&format!("/undo/{}/confirm", request.id)), &[("csrf", &csrf)]).await;
    assert_eq!(own.status, 409, "{}", own.body);
    assert!(own.body.contains("another approver must confirm it"), "{}", own.body);
    assert_eq!(c.env.owned().len(), 9, "nothing was written");
    let audit = paul.get(&c.url("/audit")).await;
    assert!(audit.body.contains("<td>paul</td><td><code>undo-confirm-refused</code>"), "{}", audit.body);
    let mut quinn = Client::new();
    assert_eq!(quinn.login(&c, "quinn", PASSWORD).await.status, 303);
    let csrf = quinn.get(&c.url("/approvals")).await.csrf();
    let done = quinn.post(&c.url(&format!("/undo/{}/confirm", request.id)), &[("csrf", &csrf)]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(c.env.owned().len(), 8, "the run's create was reverted");
}

#[tokio::test]
async fn a_users_file_that_does_not_read_refuses_requests_without_saying_why_and_keeps_the_session() {
    let c = ConsoleEnv::start(FEEDS, "").await;
    let mut alice = Client::new();
    assert_eq!(alice.login(&c, "alice", PASSWORD).await.status, 303);
    assert_eq!(alice.get(&c.url("/")).await.status, 200);
    let good = std::fs::read(c.env.path("users.toml")).unwrap();
    c.env.write("users.toml", "[[users]]\nname = \"alice\"\nrole = \"nope\"\npassword_hash = 3\n");
    let refused = alice.get(&c.url("/manual")).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.body.contains("cannot read its users file"), "{}", refused.body);
    let path = c.env.path("users.toml");
    assert!(
        !refused.body.contains(path.to_str().unwrap()) && !refused.body.contains("nope"),
        "{}",
        refused.body
    );
    // A sign-in meanwhile gets a generic 500 too.
    let signing_in = Client::new().login(&c, "alice", PASSWORD).await;
    assert_eq!(signing_in.status, 500, "{}", signing_in.body);
    assert!(signing_in.body.contains("cannot read its users file") && !signing_in.body.contains("nope"));
    std::fs::write(c.env.path("users.toml"), &good).unwrap();
    assert_eq!(alice.get(&c.url("/manual")).await.status, 200, "the session survives a repaired file");
    // Signing out works during an outage too, and forgets the session on the server.
    c.env.write("users.toml", "not toml [");
    let mut copy = Client::new();
    copy.set_session(&alice.session().unwrap());
    let out = copy.post(&c.url("/logout"), &[]).await;
    assert_eq!((out.status, out.location().as_str()), (303, "/login"));
    assert_eq!(alice.get(&c.url("/manual")).await.status, 303, "that session is gone");
}

#[tokio::test]
async fn behind_a_tls_proxy_secure_cookies_marks_every_cookie_secure() {
    let c = ConsoleEnv::start(FEEDS, "secure_cookies = true\n").await;
    let mut b = Client::new();
    let page = b.get(&c.url("/login")).await;
    let ok = b.login(&c, "alice", PASSWORD).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let cookies: Vec<String> = [&page, &ok]
        .iter()
        .flat_map(|a| a.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()))
        .collect();
    assert!(cookies.iter().any(|c| c.starts_with("iocsync_session=")), "{cookies:?}");
    assert!(cookies.iter().all(|c| c.contains("; Secure") && c.contains("HttpOnly")), "{cookies:?}");
    // Turning it off while the console serves TLS itself is a config error.
    write_config(&c.env, FEEDS, "secure_cookies = false\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n");
    let err = Config::load(&c.env.path("iocsync.toml")).unwrap_err().to_string();
    assert!(err.contains("console.secure_cookies"), "{err}");
}
