//! `[console]`: the analyst console the daemon serves (off unless `enabled = true`).

use super::Validator;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// `[console]` as written.
#[derive(Debug, Default, Deserialize)]
pub struct RawConsole {
    pub enabled: Option<bool>,
    pub listen: Option<String>,
    pub auth: Option<String>,
    pub users_file: Option<String>,
    pub proxy_addresses: Option<Vec<String>>,
    pub proxy_user_header: Option<String>,
    pub proxy_roles: Option<BTreeMap<String, String>>,
    pub proxy_default_role: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub session_idle: Option<String>,
    pub session_max: Option<String>,
    pub login_attempts: Option<i64>,
    pub login_window: Option<String>,
    pub secure_cookies: Option<bool>,
    #[serde(flatten)]
    pub unknown: super::raw::Unknown,
}

/// Default `[console] listen`: loopback, beside the daemon's 8944.
pub const DEFAULT_CONSOLE_LISTEN: &str = "127.0.0.1:8945";

/// What a console user may do; each role may do everything the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads every page.
    Viewer,
    /// Also adds and removes manual values, runs "Sync now" and requests undos.
    Analyst,
    /// Also approves or rejects pending plans and undo requests.
    Approver,
}

impl Role {
    /// The role's name as written in config and the users file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Approver => "approver",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "analyst" => Ok(Role::Analyst),
            "approver" => Ok(Role::Approver),
            other => Err(format!("`{other}` is not a role: use viewer, analyst or approver")),
        }
    }
}

/// How console users are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleAuth {
    /// Users in a file with argon2id hashes (`iocsync console add-user`).
    Local {
        /// The users file.
        users_file: PathBuf,
    },
    /// A reverse proxy (oauth2-proxy with Entra ID, ...) names the user in a header; only
    /// requests from `addresses` are trusted.
    Proxy {
        /// Proxy addresses (single IPs or CIDR ranges).
        addresses: Vec<ipnet::IpNet>,
        /// The header carrying the user name.
        user_header: String,
        /// Roles by user name.
        roles: BTreeMap<String, Role>,
        /// The role of a user not named in `roles`.
        default_role: Role,
    },
}

/// Validated `[console]` settings.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// Whether the daemon serves the console.
    pub enabled: bool,
    /// Listen address.
    pub listen: SocketAddr,
    /// Authentication.
    pub auth: ConsoleAuth,
    /// TLS certificate chain and private key (PEM), when the console terminates TLS itself.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// A session ends this long after login, used or not.
    pub session_max: Duration,
    /// Failed logins allowed per user and per client address within `login_window`.
    pub login_attempts: u32,
    /// The window failed logins are counted over.
    pub login_window: Duration,
    /// Whether cookies carry `Secure`: by default when the console serves TLS itself; set it
    /// when TLS ends at a reverse proxy in front of it.
    pub secure_cookies: bool,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 8945)),
            auth: ConsoleAuth::Local { users_file: PathBuf::from("console-users.toml") },
            tls: None,
            session_idle: Duration::from_secs(30 * 60),
            session_max: Duration::from_secs(12 * 3600),
            login_attempts: 5,
            login_window: Duration::from_secs(15 * 60),
            secure_cookies: false,
        }
    }
}

impl Validator {
    pub(super) fn console(&mut self, raw: RawConsole) -> ConsoleSettings {
        self.unknown(
            "console",
            &raw.unknown,
            &[
                "enabled",
                "listen",
                "auth",
                "users_file",
                "proxy_addresses",
                "proxy_user_header",
                "proxy_roles",
                "proxy_default_role",
                "tls_cert",
                "tls_key",
                "session_idle",
                "session_max",
                "login_attempts",
                "login_window",
                "secure_cookies",
            ],
        );
        let d = ConsoleSettings::default();
        let listen = match raw.listen.as_deref().unwrap_or(DEFAULT_CONSOLE_LISTEN).parse() {
            Ok(a) => a,
            Err(e) => {
                self.problem("console.listen", format!("not an address like {DEFAULT_CONSOLE_LISTEN}: {e}"));
                d.listen
            }
        };
        let users_file = super::resolve(
            &self.base_dir,
            std::path::Path::new(raw.users_file.as_deref().unwrap_or("console-users.toml")),
        );
        let role = |v: &mut Validator, key: &str, s: &str| match s.parse::<Role>() {
            Ok(r) => r,
            Err(e) => {
                v.problem(key, e);
                Role::Viewer
            }
        };
        let auth = match raw.auth.as_deref().unwrap_or("local") {
            "local" => ConsoleAuth::Local { users_file },
            "proxy" => {
                let mut addresses = Vec::new();
                for a in raw.proxy_addresses.clone().unwrap_or_default() {
                    let net =
                        a.parse::<ipnet::IpNet>().or_else(|_| a.parse::<IpAddr>().map(ipnet::IpNet::from));
                    match net {
                        Ok(n) => addresses.push(n),
                        Err(_) => self.problem(
                            "console.proxy_addresses",
                            format!("`{a}` is not an IP address or CIDR range like \"127.0.0.1\" or \"10.0.0.0/24\""),
                        ),
                    }
                }
                if raw.proxy_addresses.as_ref().is_none_or(Vec::is_empty) {
                    self.problem(
                        "console.proxy_addresses",
                        "auth = \"proxy\" trusts a user header only from the proxy: list its addresses, e.g. [\"127.0.0.1\"]",
                    );
                }
                let mut roles = BTreeMap::new();
                for (user, r) in raw.proxy_roles.clone().unwrap_or_default() {
                    let r = role(self, &format!("console.proxy_roles.{user}"), &r);
                    roles.insert(user, r);
                }
                let default_role = match raw.proxy_default_role.as_deref() {
                    None => Role::Viewer,
                    Some(r) => role(self, "console.proxy_default_role", r),
                };
                let user_header =
                    raw.proxy_user_header.clone().unwrap_or_else(|| "X-Forwarded-Email".to_owned());
                if axum::http::HeaderName::from_bytes(user_header.as_bytes()).is_err() {
                    self.problem(
                        "console.proxy_user_header",
                        format!("`{user_header}` is not an HTTP header name"),
                    );
                }
                ConsoleAuth::Proxy { addresses, user_header, roles, default_role }
            }
            other => {
                self.problem(
                    "console.auth",
                    format!("`{other}` is not an authentication mode: use \"local\" or \"proxy\""),
                );
                ConsoleAuth::Local { users_file }
            }
        };
        if !matches!(auth, ConsoleAuth::Proxy { .. })
            && (raw.proxy_addresses.is_some() || raw.proxy_roles.is_some() || raw.proxy_user_header.is_some())
        {
            self.problem("console.auth", "proxy_* keys are only read with auth = \"proxy\"");
        }
        let tls = match (raw.tls_cert, raw.tls_key) {
            (Some(c), Some(k)) => Some((
                super::resolve(&self.base_dir, std::path::Path::new(&c)),
                super::resolve(&self.base_dir, std::path::Path::new(&k)),
            )),
            (None, None) => None,
            _ => {
                self.problem("console.tls_cert", "give both tls_cert and tls_key (PEM files), or neither");
                None
            }
        };
        let session_idle = self.duration("console.session_idle", raw.session_idle.as_deref(), d.session_idle);
        let session_max = self.duration("console.session_max", raw.session_max.as_deref(), d.session_max);
        let login_window = self.duration("console.login_window", raw.login_window.as_deref(), d.login_window);
        let login_attempts = match raw.login_attempts {
            None => d.login_attempts,
            Some(n) if (1..=1000).contains(&n) => n as u32,
            Some(n) => {
                self.problem("console.login_attempts", format!("{n}: use 1 to 1000"));
                d.login_attempts
            }
        };
        if raw.secure_cookies == Some(false) && tls.is_some() {
            self.problem(
                "console.secure_cookies",
                "false with tls_cert: cookies sent over TLS must be Secure",
            );
        }
        ConsoleSettings {
            enabled: raw.enabled.unwrap_or(false),
            listen,
            auth,
            secure_cookies: raw.secure_cookies.unwrap_or(tls.is_some()),
            tls,
            session_idle,
            session_max,
            login_attempts,
            login_window,
        }
    }
}
