//! The analyst console the daemon serves on `[console] listen`: server-rendered pages (maud),
//! local or proxy authentication, server-side sessions, a CSRF token in every form. Every
//! action goes through the same engine functions as the CLI: validation, the allowlist,
//! ownership, the brake and capacity are the engine's, never the page's.

mod auth;
mod pages;
mod routes;
pub mod session;
pub mod tls;
pub mod users;

use crate::config::{Config, ConsoleAuth, Role};
use crate::state::StateStore;
use chrono::{DateTime, Utc};
use session::{LoginLimiter, Sessions};
use std::sync::{Arc, Mutex};

/// One online lookup (one Defender API call) per user this often.
pub const ONLINE_LOOKUP_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The console's clock: the system's in the daemon, a hand-moved one in tests (session expiry).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: DateTime<Utc>) -> ManualClock {
        ManualClock(Mutex::new(at))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        let mut t = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *t += chrono::Duration::from_std(by).unwrap_or_default();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The signed-in user of one request.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// User name (journaled with every action).
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// The CSRF token their forms must carry.
    pub csrf: String,
}

/// Everything the console's handlers share.
#[derive(Debug)]
pub struct Console {
    /// The validated config (the same one the daemon syncs with).
    pub config: Config,
    /// The state database.
    pub store: Arc<Mutex<StateStore>>,
    /// Time, for sessions and the login limiter.
    pub clock: Arc<dyn Clock>,
    /// Live sessions.
    pub sessions: Sessions,
    /// Failed logins.
    pub limiter: LoginLimiter,
    /// The daemon's view of its runs (next run), when served by the daemon.
    pub daemon: Option<Arc<Mutex<crate::daemon::DaemonState>>>,
    /// Whether cookies get `Secure` (`[console] secure_cookies`: TLS here or at a proxy).
    pub secure_cookies: bool,
    /// Password checks running at once (argon2id is memory-hard: a flood must not run many).
    pub verifying: tokio::sync::Semaphore,
    /// When each user last asked Defender from the lookup page.
    pub online_lookups: Mutex<std::collections::HashMap<String, DateTime<Utc>>>,
    /// How long a page waits for engine work (Sync now, an approval, an undo) before saying it
    /// goes on in the background; below the listener's request timeout.
    pub foreground: std::time::Duration,
}

impl Console {
    /// The console of `config`, with its own handle on the state database.
    pub fn new(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<Console>> {
        let store = crate::engine::open_store(&config)?;
        let c = &config.console;
        Ok(Arc::new(Console {
            sessions: Sessions::new(c.session_idle, c.session_max),
            limiter: LoginLimiter::new(c.login_attempts, c.login_window),
            secure_cookies: c.secure_cookies,
            verifying: tokio::sync::Semaphore::new(2),
            online_lookups: Mutex::new(std::collections::HashMap::new()),
            foreground: std::time::Duration::from_secs(20),
            store,
            clock,
            daemon: None,
            config,
        }))
    }

    /// Attaches the daemon's run state (for "next run" on the overview).
    pub fn with_daemon(mut self: Arc<Self>, d: Arc<Mutex<crate::daemon::DaemonState>>) -> Arc<Self> {
        if let Some(c) = Arc::get_mut(&mut self) {
            c.daemon = Some(d);
        }
        self
    }

    /// Sets how long pages wait for engine work (tests use a short one).
    pub fn with_foreground(mut self: Arc<Self>, d: std::time::Duration) -> Arc<Self> {
        if let Some(c) = Arc::get_mut(&mut self) {
            c.foreground = d;
        }
        self
    }

    /// Whether `user` may make an online lookup now (and records it when so).
    pub fn online_lookup_allowed(&self, user: &str) -> bool {
        let now = self.clock.now();
        let every = chrono::Duration::from_std(ONLINE_LOOKUP_EVERY).unwrap_or_default();
        let mut last = self.online_lookups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.get(user).is_some_and(|t| now - *t < every) {
            return false;
        }
        last.insert(user.to_owned(), now);
        true
    }

    /// Whether users sign in through a reverse proxy.
    pub fn proxied(&self) -> bool {
        matches!(self.config.console.auth, ConsoleAuth::Proxy { .. })
    }

    /// The console's routes, with authentication, CSRF checks and security headers.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        routes::router(self.clone())
    }
}

/// Starts serving the console of `config` (the daemon calls this when `[console] enabled`).
/// Returns the bound address and the server task.
pub async fn start(
    config: &Config,
    daemon: Arc<Mutex<crate::daemon::DaemonState>>,
) -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    use anyhow::Context as _;
    let console = Console::new(config.clone(), Arc::new(SystemClock))?.with_daemon(daemon);
    let tls = match &config.console.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key)?),
        None => None,
    };
    if let ConsoleAuth::Local { users_file } = &config.console.auth
        && users::UsersFile::load(users_file)?.users.is_empty()
    {
        tracing::warn!(
            file = %users_file.display(),
            "the console has no users yet: add one with `iocsync console add-user NAME --role approver`"
        );
    }
    if !config.console.listen.ip().is_loopback() && tls.is_none() && !console.proxied() {
        tracing::warn!(
            listen = %config.console.listen,
            "the console listens beyond loopback without TLS: set tls_cert/tls_key or put it behind a proxy"
        );
    }
    let listener = tokio::net::TcpListener::bind(config.console.listen)
        .await
        .with_context(|| format!("console: listening on {}", config.console.listen))?;
    let addr = listener.local_addr()?;
    let app = console.router();
    let task =
        tokio::spawn(crate::daemon::serve_with(listener, app, crate::daemon::ListenerLimits::default(), tls));
    tracing::info!(%addr, "analyst console serving");
    Ok((addr, task))
}
