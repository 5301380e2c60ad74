//! Configuration: the TOML file read as raw (`raw`), then validated into `Config`, with every
//! problem reported at once with its key path (cargo-deny style).

mod console;
pub mod raw;
mod starter;

pub use starter::STARTER_CONFIG;

pub use console::{ConsoleAuth, ConsoleSettings, DEFAULT_CONSOLE_LISTEN, Role};
use iocsync_core::marker::{Marker, MarkerField};
use iocsync_core::model::{Action, Severity};
use iocsync_core::policy::FeedPolicy;
use iocsync_ioc::formats::Column;
use iocsync_ioc::{Format, IndicatorType, TypeHint};
use raw::{RawAllowlist, RawConfig, RawFeed, RawPolicy, RawTenant, Unknown};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One thing wrong with the configuration, at a key path such as `feeds[2].max_age`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: a dotted key path.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// The configuration could not be used; lists every problem found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {cause} (create one with `iocsync init`)", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (not a `source`: the message already says it once).
        cause: std::io::Error,
    },
    /// Not valid TOML, or a value of the wrong type.
    #[error("config file {path} is not valid: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// Valid TOML, but the values do not make a usable configuration.
    #[error("config file {path} has {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

/// Which Microsoft cloud a tenant lives in (sets authority, API host and scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudName {
    /// Commercial (worldwide).
    Commercial,
    /// US Government Community Cloud.
    Gcc,
    /// GCC High.
    GccHigh,
    /// Department of Defense.
    Dod,
}

/// Where a tenant's credential comes from. Secrets themselves are read only when needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSpec {
    /// Client secret in an environment variable.
    SecretEnv(String),
    /// Client secret in a file that only its owner may read.
    SecretFile(PathBuf),
    /// Client secret passed by systemd (`LoadCredential=NAME:...`): the file NAME in
    /// `$CREDENTIALS_DIRECTORY`, read at run time.
    SecretCredential(String),
    /// Certificate credential: private key PEM file plus the certificate PEM or its thumbprint.
    Certificate {
        /// PEM private key (PKCS#8 or PKCS#1), owner-readable only.
        key_file: PathBuf,
        /// PEM certificate, to compute the thumbprints.
        cert_file: Option<PathBuf>,
        /// Thumbprint hex when no certificate file is given: SHA-256 (64 hex, PS256) or SHA-1
        /// (40 hex, RS256).
        thumbprint: Option<String>,
        /// Assertion signature: PS256 with `x5t#S256` (default) or RS256 with `x5t`.
        algorithm: iocsync_defender::AssertionAlgorithm,
    },
    /// The embedded emulator's built-in credentials.
    Emulator,
}

/// One Defender tenant to keep in sync.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Name used in reports, metrics and `--tenant` (`default` for a `[defender]` block).
    pub name: String,
    /// Entra tenant id.
    pub tenant_id: String,
    /// App registration (client) id: `createdBy` of the indicators iocsync owns.
    pub client_id: String,
    /// Where the credential comes from.
    pub credential: CredentialSpec,
    /// Cloud.
    pub cloud: CloudName,
    /// API base override.
    pub api_base: Option<String>,
    /// Token authority override.
    pub authority: Option<String>,
    /// Token scope override.
    pub scope: Option<String>,
    /// Run against the embedded emulator instead of a real tenant.
    pub emulator: bool,
    /// Divides pacing windows and retry delays (tests and benchmarks against an emulator started
    /// with the same `--time-scale`); 1 for a real tenant.
    pub time_scale: f64,
    /// Names of the feeds this tenant takes (all when `None`).
    pub feeds: Option<BTreeSet<String>>,
    /// Extra allowlist entries for this tenant.
    pub allowlist: AllowlistSpec,
    /// Policy defaults for this tenant, over the global `[defaults]`.
    pub defaults: PolicySpec,
}

/// `[sync]` settings.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Owner tag of the marker `iocsync:{owner_tag}` written on every indicator; with the client
    /// id, the ownership test (DESIGN principle 1). Never sent as `application`.
    pub owner_tag: String,
    /// Where the marker goes: `externalId` (default) or a description suffix.
    pub marker_field: MarkerField,
    /// Tenant indicator cap (15,000).
    pub capacity: usize,
    /// Room left free for analysts' manual indicators.
    pub headroom: usize,
    /// The delete brake.
    pub max_delete_fraction: f64,
    /// Renew an indicator whose expiry is this close.
    pub renew_before_days: u32,
    /// State database path.
    pub state: PathBuf,
    /// Largest feed body accepted.
    pub max_feed_bytes: u64,
    /// Total timeout for one feed download.
    pub feed_timeout: Duration,
    /// A feed whose accepted count shrinks by more than this fraction falls back to its last good copy.
    pub max_shrink_fraction: f64,
    /// A feed whose rejects exceed this fraction falls back to its last good copy.
    pub max_reject_fraction: f64,
    /// The rolling window over which the brake counts deletes, replaces and expiry cuts.
    pub brake_window: Duration,
    /// A feed's smaller size becomes its baseline once it held this long.
    pub accept_shrink_after: AcceptShrinkAfter,
    /// Journal rows older than this are pruned (default 400 days).
    pub journal_retention: Duration,
    /// With approval on, the daemon's scheduled runs plan instead of applying: the plan waits in
    /// the state database until an approver applies or rejects it (off by default).
    pub approval: bool,
    /// With four eyes on (it needs `approval`), an approver may not apply a plan they made or one
    /// that pushes manual-list values they added or deletes ones they removed, nor confirm an undo
    /// they requested (off by default).
    pub four_eyes: bool,
}

/// `accept_shrink_after = "3 runs, 24h"`: both must have passed before a shrunken feed's new
/// size is accepted as its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptShrinkAfter {
    /// Consecutive runs that saw the smaller size.
    pub runs: u32,
    /// Time since the smaller size was first seen.
    pub after: Duration,
}

impl Default for AcceptShrinkAfter {
    fn default() -> Self {
        AcceptShrinkAfter { runs: 3, after: Duration::from_secs(24 * 3600) }
    }
}

impl std::str::FromStr for AcceptShrinkAfter {
    type Err = String;

    /// Parses `"3 runs, 24h"` (either part alone is accepted, the other keeps its default).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = AcceptShrinkAfter::default();
        let mut seen = false;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            seen = true;
            if let Some(n) = part.strip_suffix("runs").or_else(|| part.strip_suffix("run")) {
                out.runs = n.trim().parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    format!("`{part}`: the number of runs must be a whole number of at least 1")
                })?;
            } else {
                out.after = humantime::parse_duration(part)
                    .map_err(|e| format!("`{part}`: {e} (write e.g. \"3 runs, 24h\")"))?;
            }
        }
        if seen { Ok(out) } else { Err("empty: write e.g. \"3 runs, 24h\"".to_owned()) }
    }
}

/// Indicator policy values; `None` means "inherit".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicySpec {
    /// Action.
    pub action: Option<Action>,
    /// Severity.
    pub severity: Option<Severity>,
    /// Generate an alert.
    pub generate_alert: Option<bool>,
    /// Title template.
    pub title: Option<String>,
    /// Description template.
    pub description: Option<String>,
    /// Recommended actions.
    pub recommended_actions: Option<String>,
    /// Device groups.
    pub rbac_groups: Option<Vec<String>>,
    /// Category.
    pub category: Option<String>,
    /// MITRE techniques.
    pub mitre_techniques: Option<Vec<String>>,
    /// Educate URL (Warn/Block on network indicators).
    pub educate_url: Option<String>,
    /// `application` template, shown to end users in block notifications (unset by default).
    pub application: Option<String>,
    /// Expiry in days.
    pub expire_days: Option<u32>,
}

impl PolicySpec {
    /// `self` over `under`: each value set here wins.
    pub fn over(&self, under: &PolicySpec) -> PolicySpec {
        PolicySpec {
            action: self.action.or(under.action),
            severity: self.severity.or(under.severity),
            generate_alert: self.generate_alert.or(under.generate_alert),
            title: self.title.clone().or_else(|| under.title.clone()),
            description: self.description.clone().or_else(|| under.description.clone()),
            recommended_actions: self
                .recommended_actions
                .clone()
                .or_else(|| under.recommended_actions.clone()),
            rbac_groups: self.rbac_groups.clone().or_else(|| under.rbac_groups.clone()),
            category: self.category.clone().or_else(|| under.category.clone()),
            mitre_techniques: self.mitre_techniques.clone().or_else(|| under.mitre_techniques.clone()),
            educate_url: self.educate_url.clone().or_else(|| under.educate_url.clone()),
            application: self.application.clone().or_else(|| under.application.clone()),
            expire_days: self.expire_days.or(under.expire_days),
        }
    }

    /// The built-in defaults of DESIGN.md.
    pub fn builtin() -> PolicySpec {
        PolicySpec {
            action: Some(Action::Block),
            severity: Some(Severity::High),
            generate_alert: Some(true),
            title: Some("{feed}: {value}".to_owned()),
            description: Some("Imported by iocsync from {feed}".to_owned()),
            recommended_actions: None,
            rbac_groups: Some(Vec::new()),
            category: None,
            mitre_techniques: Some(Vec::new()),
            educate_url: None,
            application: None,
            expire_days: Some(30),
        }
    }
}

/// One feed.
#[derive(Debug, Clone)]
pub struct Feed {
    /// Unique name.
    pub name: String,
    /// URL or path as written (resolved by `fetch::Source::parse`).
    pub source: String,
    /// Format.
    pub format: Format,
    /// CSV value column.
    pub column: Option<Column>,
    /// CSV type column.
    pub type_column: Option<Column>,
    /// Keep only these types.
    pub types: Option<BTreeSet<IndicatorType>>,
    /// Forced type of every value.
    pub type_hint: Option<TypeHint>,
    /// Higher wins when two feeds carry the same value.
    pub priority: i32,
    /// How long the last good copy may stand in.
    pub max_age: Duration,
    /// Undo defanging.
    pub refang: bool,
    /// Policy overrides of this feed.
    pub policy: PolicySpec,
    /// HTTP authentication for a URL source (TAXII servers, private MISP feeds).
    pub auth: Option<FeedAuth>,
    /// Honour the rows' own action, severity, alert, device groups and expiry (off by default).
    pub row_policy: bool,
    /// With `row_policy`, the actions a row may choose besides the feed's own.
    pub row_actions: Vec<Action>,
}

/// The `source` of the analysts' manual list: its values come from the state database.
pub const MANUAL_SOURCE: &str = "manual";

impl Feed {
    /// Whether this is the analysts' manual list (`source = "manual"`): never fetched, its values
    /// are the active rows of the state database, and each value may carry its own action (within
    /// `row_actions`), expiry and comment.
    pub fn is_manual(&self) -> bool {
        self.source == MANUAL_SOURCE
    }
}

/// How a feed URL authenticates. Secrets come from environment variables, read at fetch time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedAuth {
    /// `Authorization: Bearer <token>`; the token is in this environment variable.
    Bearer {
        /// Environment variable holding the token.
        token_env: String,
    },
    /// HTTP basic auth; the password is in this environment variable.
    Basic {
        /// User name.
        username: String,
        /// Environment variable holding the password.
        password_env: String,
    },
}

/// Allowlist sources.
#[derive(Debug, Clone, Default)]
pub struct AllowlistSpec {
    /// Literal values (domains, IPs, CIDRs, URLs, hashes).
    pub values: Vec<String>,
    /// Text lists or MISP warninglist JSON files (resolved against the config directory).
    pub files: Vec<PathBuf>,
    /// Include the built-in Microsoft/resolver/private list.
    pub builtin: bool,
}

/// When the daemon runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// A cron expression.
    Cron(String),
    /// A fixed interval.
    Every(Duration),
}

/// `[daemon]` settings.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// Schedule.
    pub schedule: Schedule,
    /// Random delay added to each run, to spread load.
    pub jitter: Duration,
    /// Metrics and health listen address.
    pub listen: std::net::SocketAddr,
    /// Time zone of a cron `schedule` (UTC by default).
    pub tz: chrono_tz::Tz,
    /// `/readyz` fails for a tenant whose last success is older than this (default: twice the
    /// interval, or twice the gap between two cron occurrences).
    pub max_staleness: Duration,
}

/// Which advanced-hunting API the impact check calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuntingBackend {
    /// Graph `POST /v1.0/security/runHuntingQuery` (`ThreatHunting.Read.All`): the default, since
    /// MC1220762 retires the MDE API.
    Graph,
    /// MDE `POST /api/advancedqueries/run` (`AdvancedQuery.Read.All`).
    Mde,
}

/// `[impact]`: before blocking a value, ask the tenant's own telemetry who uses it (spec §13.13).
#[derive(Debug, Clone)]
pub struct ImpactSettings {
    /// Off by default.
    pub enabled: bool,
    /// Days of telemetry asked (1 to 30: advanced hunting keeps 30 days).
    pub lookback_days: u32,
    /// A value seen on this many devices or more gets `on_hit`.
    pub hold_devices: usize,
    /// What a hit does: hold, audit or report.
    pub on_hit: iocsync_core::impact::OnHit,
    /// What a value whose check could not run does: proceed or wait.
    pub on_unknown: iocsync_core::impact::OnUnknown,
    /// How long an answer is reused before the value is asked again.
    pub cache_for: Duration,
    /// The hunting API.
    pub backend: HuntingBackend,
    /// Graph's base URL (`None`: the cloud's; the emulator's URL with `emulator = true`).
    pub graph_base: Option<String>,
    /// Most queries per tenant and run (the hunting window is 45 a minute).
    pub max_queries: u32,
    /// Longest query text, in characters ([UNCERTAIN]: no documented limit).
    pub max_query_chars: usize,
    /// Longest the check may take in one run; the values left follow `on_unknown`.
    pub max_duration: Duration,
}

impl Default for ImpactSettings {
    fn default() -> Self {
        ImpactSettings {
            enabled: false,
            lookback_days: 30,
            hold_devices: 5,
            on_hit: iocsync_core::impact::OnHit::Hold,
            on_unknown: iocsync_core::impact::OnUnknown::Proceed,
            cache_for: Duration::from_secs(24 * 3600),
            backend: HuntingBackend::Graph,
            graph_base: None,
            max_queries: 200,
            max_query_chars: 8_000,
            max_duration: Duration::from_secs(15 * 60),
        }
    }
}

/// `[hits]`: count, per owned indicator, the events where Defender acted on it (spec §13.13).
#[derive(Debug, Clone)]
pub struct HitsSettings {
    /// Off by default; uses `[impact]`'s `backend` and `graph_base`.
    pub enabled: bool,
    /// How long after its last hit a value ranks above silent ones under the cap.
    pub boost_for: Duration,
    /// How far back the first count looks (later counts start where the previous one ended).
    pub first_lookback: Duration,
}

impl Default for HitsSettings {
    fn default() -> Self {
        HitsSettings {
            enabled: false,
            boost_for: Duration::from_secs(30 * 86_400),
            first_lookback: Duration::from_secs(86_400),
        }
    }
}

/// Where the state database goes when `sync.state` is not set: beside the config when a
/// database is already there (the old default keeps working); else `$STATE_DIRECTORY`
/// (systemd's `StateDirectory=`), `$XDG_STATE_HOME/iocsync`, then the platform's state folder:
/// `%ProgramData%\iocsync` on Windows, `/var/lib/iocsync` for root, `~/.local/state/iocsync`
/// for other users. Never beside the config otherwise: that folder is read-only in every
/// documented deployment.
pub fn default_state_path(
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    root: bool,
) -> PathBuf {
    const FILE: &str = "iocsync.db";
    let legacy = base_dir.join(FILE);
    if legacy.exists() {
        return legacy;
    }
    let var = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from).filter(|p| p.is_absolute());
    // systemd passes several directories colon-separated when StateDirectory= names several.
    let systemd = env("STATE_DIRECTORY")
        .and_then(|v| v.to_str().and_then(|s| s.split(':').next()).map(PathBuf::from))
        .filter(|p| p.is_absolute());
    if let Some(dir) = systemd {
        return dir.join(FILE);
    }
    if let Some(dir) = var("XDG_STATE_HOME") {
        return dir.join("iocsync").join(FILE);
    }
    if cfg!(windows) {
        if let Some(dir) = var("ProgramData") {
            return dir.join("iocsync").join(FILE);
        }
    } else if root {
        return PathBuf::from("/var/lib/iocsync").join(FILE);
    } else if let Some(home) = var("HOME") {
        return home.join(".local/state/iocsync").join(FILE);
    }
    legacy
}

/// Whether the process runs as root (Unix); the owner of `/proc/self` is the effective user.
fn running_as_root() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if let Ok(meta) = std::fs::metadata("/proc/self") {
            return meta.uid() == 0;
        }
        std::env::var("USER").is_ok_and(|u| u == "root")
    }
    #[cfg(not(unix))]
    false
}

/// Default `[daemon] listen`: loopback, port 8944. Not 9464 (the OpenTelemetry Prometheus
/// exporter's); the Prometheus exporter range 9100-9999 is fully allocated, so iocsync sits
/// beside its emulator's 8943.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8944";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Directory relative paths are resolved against.
    pub base_dir: PathBuf,
    /// Tenants (one for a `[defender]` block).
    pub tenants: Vec<Tenant>,
    /// `[sync]`.
    pub sync: SyncSettings,
    /// `[defaults]` over the built-in defaults.
    pub defaults: PolicySpec,
    /// Feeds, in file order.
    pub feeds: Vec<Feed>,
    /// Global allowlist.
    pub allowlist: AllowlistSpec,
    /// Daemon settings.
    pub daemon: DaemonSettings,
    /// `[impact]` settings.
    pub impact: ImpactSettings,
    /// `[hits]` settings.
    pub hits: HitsSettings,
    /// `[console]` settings.
    pub console: ConsoleSettings,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|cause| ConfigError::Read { path: path.to_owned(), cause })?;
        Config::from_toml(&text, path)
    }

    /// Validates config text as if read from `path` (used for relative paths and messages).
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            // The message and position only: the default rendering quotes the source line, which
            // could hold a secret someone pasted by mistake.
            message: match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: {}", e.message())
                }
                None => e.message().to_owned(),
            },
        })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base_dir = if base_dir.as_os_str().is_empty() { PathBuf::from(".") } else { base_dir };
        let mut v = Validator { problems: Vec::new(), base_dir };
        let config = v.config(raw, path);
        if v.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid { path: path.to_owned(), problems: v.problems })
        }
    }

    /// The tenants selected by `--tenant` (all when `None`); an unknown name is an error.
    pub fn select_tenants(&self, name: Option<&str>) -> Result<Vec<&Tenant>, String> {
        match name {
            None => Ok(self.tenants.iter().collect()),
            Some(n) => match self.tenants.iter().find(|t| t.name == n) {
                Some(t) => Ok(vec![t]),
                None => Err(format!(
                    "no tenant named `{n}` in the config (tenants: {})",
                    self.tenants.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
                )),
            },
        }
    }

    /// The one tenant a single-tenant command (list, purge, adopt) works on: the named one, or
    /// the only one configured (several without `--tenant` is an error, never a silent pick).
    pub fn one_tenant(&self, name: Option<&str>) -> anyhow::Result<&Tenant> {
        let selected = self.select_tenants(name).map_err(anyhow::Error::msg)?;
        match selected.as_slice() {
            [one] => Ok(one),
            [] => anyhow::bail!("no tenant configured"),
            many => anyhow::bail!(
                "several tenants are configured ({}): pass --tenant NAME to choose one",
                many.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// The ownership marker iocsync writes (`[sync] owner_tag` in `[sync] marker_field`).
    pub fn marker(&self) -> Marker {
        Marker::new(self.sync.marker_field, self.sync.owner_tag.clone())
    }

    /// Whether iocsync owns a listed indicator in `tenant` (DESIGN principle 1).
    pub fn owns(&self, tenant: &Tenant, i: &iocsync_defender::Indicator) -> bool {
        i.is_owned_by(&tenant.client_id, &self.sync.owner_tag)
    }

    /// The feeds a tenant takes, in config order.
    pub fn feeds_for<'a>(&'a self, tenant: &'a Tenant) -> impl Iterator<Item = &'a Feed> + 'a {
        self.feeds.iter().filter(move |f| tenant.feeds.as_ref().is_none_or(|set| set.contains(&f.name)))
    }

    /// The analysts' manual list (`[[feeds]] source = "manual"`), when one is configured.
    pub fn manual_feed(&self) -> Option<&Feed> {
        self.feeds.iter().find(|f| f.is_manual())
    }

    /// The resolved policy of one feed for one tenant: feed over tenant defaults over `[defaults]`.
    pub fn feed_policy(&self, tenant: &Tenant, feed: &Feed) -> FeedPolicy {
        let p = feed.policy.over(&tenant.defaults.over(&self.defaults));
        let builtin = PolicySpec::builtin();
        let p = p.over(&builtin);
        FeedPolicy {
            feed: feed.name.clone(),
            action: p.action.unwrap_or(Action::Block),
            severity: p.severity.unwrap_or(Severity::High),
            generate_alert: p.generate_alert.unwrap_or(true),
            title: p.title.unwrap_or_default(),
            description: p.description.unwrap_or_default(),
            recommended_actions: p.recommended_actions,
            rbac_groups: p.rbac_groups.unwrap_or_default(),
            category: p.category,
            mitre_techniques: p.mitre_techniques.unwrap_or_default(),
            educate_url: p.educate_url,
            application: p.application.filter(|a| !a.trim().is_empty()),
            marker: Some(self.marker()),
            expire_days: p.expire_days.unwrap_or(30),
            priority: feed.priority,
            // A manual value's own action, expiry and comment are the analyst's choice.
            row_policy: feed.row_policy || feed.is_manual(),
            row_actions: feed.row_actions.clone(),
        }
    }

    /// Resolves a path from the config against the config file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        resolve(&self.base_dir, p)
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_owned() } else { base.join(p) }
}

/// Collects problems while turning raw values into validated ones.
struct Validator {
    problems: Vec<Problem>,
    base_dir: PathBuf,
}

impl Validator {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { key: key.into(), message: message.into() });
    }

    fn unknown(&mut self, prefix: &str, unknown: &Unknown, known: &[&str]) {
        for key in unknown.keys() {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            let hint = closest(key, known).map(|k| format!(" (did you mean `{k}`?)")).unwrap_or_default();
            self.problem(path, format!("unknown key{hint}"));
        }
    }

    fn config(&mut self, raw: RawConfig, path: &Path) -> Config {
        self.unknown(
            "",
            &raw.unknown,
            &[
                "defender",
                "tenants",
                "sync",
                "defaults",
                "feeds",
                "allowlist",
                "daemon",
                "impact",
                "hits",
                "console",
            ],
        );
        let raw_sync = raw.sync.unwrap_or_default();
        // DESIGN.md shows expire_days under [sync]: it is the fallback of [defaults].expire_days.
        let sync_expire = raw_sync.expire_days;
        let sync = self.sync(raw_sync);
        let mut defaults = self.policy("defaults", &raw.defaults.unwrap_or_default(), true);
        if defaults.expire_days.is_none()
            && let Some(d) = sync_expire
        {
            let probe = RawPolicy { expire_days: Some(d), ..RawPolicy::default() };
            defaults.expire_days = self.policy("sync", &probe, false).expire_days;
        }
        let feeds = self.feeds(raw.feeds.unwrap_or_default());
        let allowlist = self.allowlist("allowlist", raw.allowlist.unwrap_or_default(), true);
        let daemon = self.daemon(raw.daemon.unwrap_or_default());
        let impact = self.impact(raw.impact.unwrap_or_default());
        let hits = self.hits(&raw.hits.unwrap_or_default());
        let console = self.console(raw.console.unwrap_or_default());
        let feed_names: BTreeSet<String> = feeds.iter().map(|f| f.name.clone()).collect();
        let renew = sync.renew_before_days;
        let check_expiry = |v: &mut Validator, key: String, days: u32| {
            if days <= renew {
                v.problem(
                    key,
                    format!("{days} days is not longer than sync.renew_before_days ({renew}): every run would renew every indicator"),
                );
            }
        };
        let mut tenants: Vec<Tenant> = Vec::new();
        match (raw.defender, raw.tenants) {
            (Some(_), Some(_)) => {
                self.problem("tenants", "use either one [defender] block or [[tenants]] blocks, not both");
            }
            (Some(d), None) => {
                if let Some(t) = self.tenant("defender", d, &feed_names, false) {
                    tenants.push(t);
                }
            }
            (None, Some(list)) => {
                if list.is_empty() {
                    self.problem("tenants", "no tenant configured");
                }
                for (i, t) in list.into_iter().enumerate() {
                    if let Some(t) = self.tenant(&format!("tenants[{i}]"), t, &feed_names, true) {
                        if tenants.iter().any(|o: &Tenant| o.name == t.name) {
                            self.problem(format!("tenants[{i}].name"), format!("duplicate tenant name `{}`", t.name));
                        }
                        tenants.push(t);
                    }
                }
            }
            (None, None) => self.problem(
                "defender",
                "missing: add a [defender] block with tenant_id, client_id and client_secret (or `emulator = true` to try iocsync locally)",
            ),
        }
        // `application` is shown to end users in block notifications: never the owner tag.
        let tag = sync.owner_tag.clone();
        let mut specs: Vec<(String, &PolicySpec)> = vec![("defaults.application".to_owned(), &defaults)];
        specs.extend(
            tenants.iter().map(|t| (format!("tenants.{}.defaults.application", t.name), &t.defaults)),
        );
        specs.extend(feeds.iter().enumerate().map(|(i, f)| (format!("feeds[{i}].application"), &f.policy)));
        let bad: Vec<String> = specs
            .into_iter()
            .filter(|(_, p)| p.application.as_deref().is_some_and(|a| a.trim() == tag))
            .map(|(k, _)| k)
            .collect();
        for key in bad {
            self.problem(
                key,
                format!(
                    "must not be the owner tag `{tag}`: Defender shows `application` to end users in block \
                     notifications; iocsync marks its indicators in `[sync] marker_field` instead"
                ),
            );
        }
        // The effective expiry of every feed, for every tenant, must outlast the renewal window.
        for t in &tenants {
            for (i, f) in feeds.iter().enumerate() {
                if t.feeds.as_ref().is_some_and(|set| !set.contains(&f.name)) {
                    continue;
                }
                let days =
                    f.policy.over(&t.defaults.over(&defaults)).over(&PolicySpec::builtin()).expire_days;
                let key = if t.defaults.expire_days.is_some() && f.policy.expire_days.is_none() {
                    format!("tenants.{}.defaults.expire_days", t.name)
                } else {
                    format!("feeds[{i}].expire_days")
                };
                check_expiry(self, key, days.unwrap_or(30));
            }
        }
        // Two blocks for the same tenant and app would each own, and delete, the other's indicators.
        for (i, a) in tenants.iter().enumerate() {
            for b in &tenants[..i] {
                if a.tenant_id.eq_ignore_ascii_case(&b.tenant_id)
                    && a.client_id.eq_ignore_ascii_case(&b.client_id)
                    && a.api_base == b.api_base
                    && !a.emulator
                {
                    self.problem(
                        format!("tenants.{}", a.name),
                        format!(
                            "same tenant_id and client_id as tenant `{}`: both would own (and delete) each other's indicators; merge them into one block",
                            b.name
                        ),
                    );
                }
            }
        }
        Config {
            path: path.to_owned(),
            base_dir: self.base_dir.clone(),
            tenants,
            sync,
            defaults,
            feeds,
            allowlist,
            daemon,
            impact,
            hits,
            console,
        }
    }

    fn hits(&mut self, raw: &raw::RawHits) -> HitsSettings {
        self.unknown("hits", &raw.unknown, &["enabled", "boost_for", "first_lookback"]);
        let d = HitsSettings::default();
        let first_lookback =
            self.duration("hits.first_lookback", raw.first_lookback.as_deref(), d.first_lookback);
        if first_lookback > Duration::from_secs(30 * 86_400) {
            self.problem("hits.first_lookback", "advanced hunting keeps 30 days: use at most \"30d\"");
        }
        HitsSettings {
            enabled: raw.enabled.unwrap_or(false),
            boost_for: self.duration("hits.boost_for", raw.boost_for.as_deref(), d.boost_for),
            first_lookback: first_lookback.min(Duration::from_secs(30 * 86_400)),
        }
    }

    fn impact(&mut self, raw: raw::RawImpact) -> ImpactSettings {
        use iocsync_core::impact::{OnHit, OnUnknown};
        self.unknown(
            "impact",
            &raw.unknown,
            &[
                "enabled",
                "lookback_days",
                "hold_devices",
                "on_hit",
                "on_unknown",
                "cache_for",
                "backend",
                "graph_base",
                "max_queries",
                "max_query_chars",
                "max_duration",
            ],
        );
        let d = ImpactSettings::default();
        let int = |v: &mut Self,
                   key: &str,
                   got: Option<i64>,
                   range: std::ops::RangeInclusive<i64>,
                   default: i64| match got {
            None => default,
            Some(n) if range.contains(&n) => n,
            Some(n) => {
                v.problem(
                    format!("impact.{key}"),
                    format!("{n} is outside {}..={}", range.start(), range.end()),
                );
                default
            }
        };
        let lookback_days = int(self, "lookback_days", raw.lookback_days, 1..=30, 30);
        let hold_devices = int(self, "hold_devices", raw.hold_devices, 1..=1_000_000, 5);
        let max_queries = int(self, "max_queries", raw.max_queries, 1..=1_500, 200);
        let max_query_chars = int(self, "max_query_chars", raw.max_query_chars, 500..=100_000, 8_000);
        let on_hit = match raw.on_hit.as_deref() {
            None | Some("hold") => OnHit::Hold,
            Some("audit") => OnHit::Audit,
            Some("report") => OnHit::Report,
            Some(o) => {
                self.problem("impact.on_hit", format!("`{o}` is not one of hold, audit, report"));
                OnHit::Hold
            }
        };
        let on_unknown = match raw.on_unknown.as_deref() {
            None | Some("proceed") => OnUnknown::Proceed,
            Some("wait") => OnUnknown::Wait,
            Some(o) => {
                self.problem("impact.on_unknown", format!("`{o}` is not one of proceed, wait"));
                OnUnknown::Proceed
            }
        };
        let backend = match raw.backend.as_deref() {
            None | Some("graph") => HuntingBackend::Graph,
            Some("mde") => HuntingBackend::Mde,
            Some(o) => {
                self.problem("impact.backend", format!("`{o}` is not one of graph, mde"));
                HuntingBackend::Graph
            }
        };
        if let Some(g) = &raw.graph_base
            && let Err(e) = iocsync_defender::parse_secure_url(g, "impact.graph_base")
        {
            self.problem("impact.graph_base", e.to_string());
        }
        ImpactSettings {
            enabled: raw.enabled.unwrap_or(false),
            lookback_days: u32::try_from(lookback_days).unwrap_or(30),
            hold_devices: usize::try_from(hold_devices).unwrap_or(5),
            on_hit,
            on_unknown,
            cache_for: self.duration("impact.cache_for", raw.cache_for.as_deref(), d.cache_for),
            backend,
            graph_base: raw.graph_base,
            max_queries: u32::try_from(max_queries).unwrap_or(200),
            max_query_chars: usize::try_from(max_query_chars).unwrap_or(8_000),
            max_duration: self.duration("impact.max_duration", raw.max_duration.as_deref(), d.max_duration),
        }
    }

    fn tenant(
        &mut self,
        key: &str,
        raw: RawTenant,
        feed_names: &BTreeSet<String>,
        named: bool,
    ) -> Option<Tenant> {
        self.unknown(
            key,
            &raw.unknown,
            &[
                "name",
                "tenant_id",
                "client_id",
                "client_secret",
                "client_certificate",
                "cloud",
                "api_base",
                "authority",
                "scope",
                "emulator",
                "time_scale",
                "feeds",
                "allowlist",
                "defaults",
            ],
        );
        let emulator = raw.emulator.unwrap_or(false);
        let name = match (raw.name, named) {
            (Some(n), _) if !n.trim().is_empty() => n,
            (_, true) => {
                self.problem(format!("{key}.name"), "missing: each [[tenants]] block needs a unique name");
                String::from("?")
            }
            (_, false) => String::from("default"),
        };
        let tenant_id = match raw.tenant_id {
            Some(t) => {
                if !is_guid(&t) && !t.contains('.') && !emulator {
                    self.problem(
                        format!("{key}.tenant_id"),
                        "not a tenant id: expected a GUID or a domain like contoso.onmicrosoft.com",
                    );
                }
                t
            }
            None if emulator => iocsync_emulator::DEFAULT_TENANT_ID.to_owned(),
            None => {
                self.problem(format!("{key}.tenant_id"), "missing: the Entra tenant id (a GUID)");
                String::new()
            }
        };
        let client_id = match raw.client_id {
            Some(c) => {
                if !is_guid(&c) && !emulator {
                    self.problem(format!("{key}.client_id"), "not a GUID: the app registration's client id");
                }
                c
            }
            None if emulator => iocsync_emulator::DEFAULT_CLIENT_ID.to_owned(),
            None => {
                self.problem(
                    format!("{key}.client_id"),
                    "missing: the app registration's client id (a GUID)",
                );
                String::new()
            }
        };
        let credential = match (raw.client_secret, raw.client_certificate) {
            (Some(_), Some(_)) => {
                self.problem(
                    format!("{key}.client_secret"),
                    "give either client_secret or client_certificate, not both",
                );
                CredentialSpec::Emulator
            }
            (Some(value), None) => {
                let s: raw::RawSecret = match value {
                    toml::Value::Table(t) => toml::Value::Table(t).try_into().unwrap_or_default(),
                    _ => raw::RawSecret::default(),
                };
                self.unknown(&format!("{key}.client_secret"), &s.unknown, &["env", "file", "credential"]);
                match (s.env, s.file, s.credential) {
                    (Some(e), None, None) if !e.is_empty() => CredentialSpec::SecretEnv(e),
                    (None, Some(f), None) => {
                        CredentialSpec::SecretFile(resolve(&self.base_dir, Path::new(&f)))
                    }
                    (None, None, Some(c)) if !c.is_empty() && !c.contains(['/', '\\']) && c != ".." => {
                        CredentialSpec::SecretCredential(c)
                    }
                    _ => {
                        self.problem(
                            format!("{key}.client_secret"),
                            "write { env = \"VAR\" }, { file = \"/path\" } or { credential = \"NAME\" } (systemd LoadCredential=): secrets are never written in the config itself",
                        );
                        CredentialSpec::Emulator
                    }
                }
            }
            (None, Some(c)) => {
                self.unknown(
                    &format!("{key}.client_certificate"),
                    &c.unknown,
                    &["key_file", "cert_file", "thumbprint", "algorithm"],
                );
                let algorithm =
                    match c.algorithm.as_deref().map(str::parse::<iocsync_defender::AssertionAlgorithm>) {
                        None => iocsync_defender::AssertionAlgorithm::default(),
                        Some(Ok(a)) => a,
                        Some(Err(_)) => {
                            self.problem(
                                format!("{key}.client_certificate.algorithm"),
                                "expected \"PS256\" (the default, x5t#S256) or \"RS256\" (x5t, SHA-1)",
                            );
                            iocsync_defender::AssertionAlgorithm::default()
                        }
                    };
                match c.key_file {
                    Some(k) => {
                        let hex_len = |n: usize| {
                            c.thumbprint
                                .as_ref()
                                .is_some_and(|t| t.len() == n && t.chars().all(|c| c.is_ascii_hexdigit()))
                        };
                        if c.cert_file.is_none() && c.thumbprint.is_none() {
                            self.problem(
                                format!("{key}.client_certificate"),
                                "give cert_file (PEM certificate) or thumbprint (SHA-256 hex) with key_file",
                            );
                        } else if c.thumbprint.is_some() && !hex_len(40) && !hex_len(64) {
                            self.problem(
                                format!("{key}.client_certificate.thumbprint"),
                                "expected the certificate's SHA-256 (64 hex characters) or SHA-1 (40) thumbprint",
                            );
                        } else if c.cert_file.is_none()
                            && algorithm == iocsync_defender::AssertionAlgorithm::Ps256
                            && hex_len(40)
                        {
                            self.problem(
                                format!("{key}.client_certificate.thumbprint"),
                                "PS256 assertions (the default) carry the SHA-256 thumbprint (x5t#S256): give cert_file \
                                 or the 64-hex SHA-256 thumbprint, or set algorithm = \"RS256\" to keep this SHA-1 one",
                            );
                        } else if c.cert_file.is_none()
                            && algorithm == iocsync_defender::AssertionAlgorithm::Rs256
                            && hex_len(64)
                        {
                            self.problem(
                                format!("{key}.client_certificate.thumbprint"),
                                "RS256 assertions carry the SHA-1 thumbprint (x5t): give cert_file or the 40-hex SHA-1 thumbprint",
                            );
                        }
                        CredentialSpec::Certificate {
                            key_file: resolve(&self.base_dir, Path::new(&k)),
                            cert_file: c.cert_file.map(|f| resolve(&self.base_dir, Path::new(&f))),
                            thumbprint: c.thumbprint,
                            algorithm,
                        }
                    }
                    None => {
                        self.problem(
                            format!("{key}.client_certificate.key_file"),
                            "missing: the PEM private key file",
                        );
                        CredentialSpec::Emulator
                    }
                }
            }
            (None, None) if emulator => CredentialSpec::Emulator,
            (None, None) => {
                self.problem(
                    format!("{key}.client_secret"),
                    "missing: client_secret = { env = \"IOCSYNC_CLIENT_SECRET\" } (or { file = ... }, or client_certificate)",
                );
                CredentialSpec::Emulator
            }
        };
        let cloud = match raw.cloud.as_deref().unwrap_or("commercial") {
            "commercial" => CloudName::Commercial,
            "gcc" => CloudName::Gcc,
            "gcc-high" => CloudName::GccHigh,
            "dod" => CloudName::Dod,
            other => {
                self.problem(
                    format!("{key}.cloud"),
                    format!("unknown cloud `{other}`: expected commercial, gcc, gcc-high or dod"),
                );
                CloudName::Commercial
            }
        };
        for (k, v) in [("api_base", &raw.api_base), ("authority", &raw.authority)] {
            if let Some(v) = v {
                self.check_base_url(&format!("{key}.{k}"), v);
            }
        }
        let time_scale = match raw.time_scale {
            None => 1.0,
            Some(s) if !(s.is_finite() && (1.0..=10_000.0).contains(&s)) => {
                self.problem(format!("{key}.time_scale"), "must be a number from 1 to 10000");
                1.0
            }
            Some(s) => {
                let loopback = raw
                    .api_base
                    .as_deref()
                    .and_then(|u| url::Url::parse(u).ok())
                    .is_some_and(|u| crate::fetch::is_loopback(&u));
                if s > 1.0 && !emulator && !loopback {
                    self.problem(
                        format!("{key}.time_scale"),
                        "only for the emulator (emulator = true or a loopback api_base): a real tenant enforces the documented limits",
                    );
                }
                s
            }
        };
        let feeds = raw.feeds.map(|list| {
            for (i, f) in list.iter().enumerate() {
                if !feed_names.contains(f) {
                    self.problem(format!("{key}.feeds[{i}]"), format!("no [[feeds]] block is named `{f}`"));
                }
            }
            list.into_iter().collect()
        });
        let allowlist =
            raw.allowlist.map(|a| self.allowlist(&format!("{key}.allowlist"), a, false)).unwrap_or_default();
        let defaults =
            raw.defaults.map(|d| self.policy(&format!("{key}.defaults"), &d, true)).unwrap_or_default();
        Some(Tenant {
            name,
            tenant_id,
            client_id,
            credential,
            cloud,
            api_base: raw.api_base,
            authority: raw.authority,
            scope: raw.scope,
            emulator,
            time_scale,
            feeds,
            allowlist,
            defaults,
        })
    }

    fn check_base_url(&mut self, key: &str, v: &str) {
        match url::Url::parse(v) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(u) if u.scheme() == "http" && crate::fetch::is_loopback(&u) => {}
            Ok(_) => self.problem(key, "must be an https:// URL (http:// only for loopback test servers)"),
            Err(e) => self.problem(key, format!("not a URL: {e}")),
        }
    }

    fn sync(&mut self, raw: raw::RawSync) -> SyncSettings {
        self.unknown(
            "sync",
            &raw.unknown,
            &[
                "owner_tag",
                "marker_field",
                "capacity",
                "headroom",
                "max_delete_fraction",
                "expire_days",
                "renew_before_days",
                "state",
                "max_feed_bytes",
                "feed_timeout",
                "max_shrink_fraction",
                "max_reject_fraction",
                "brake_window",
                "accept_shrink_after",
                "journal_retention",
                "approval",
                "four_eyes",
            ],
        );
        let owner_tag = raw.owner_tag.unwrap_or_else(|| "iocsync".to_owned());
        if owner_tag.trim().is_empty() {
            self.problem("sync.owner_tag", "must not be empty: it marks the indicators iocsync owns");
        }
        let marker_field = match raw.marker_field.as_deref().map(str::parse::<MarkerField>) {
            None => MarkerField::ExternalId,
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                self.problem("sync.marker_field", e);
                MarkerField::ExternalId
            }
        };
        let capacity = self.count("sync.capacity", raw.capacity, 15_000, 1, 15_000);
        let headroom = self.count("sync.headroom", raw.headroom, 500, 0, 15_000);
        if headroom >= capacity {
            self.problem("sync.headroom", format!("must be below capacity ({capacity})"));
        }
        let max_delete_fraction = self.fraction("sync.max_delete_fraction", raw.max_delete_fraction, 0.25);
        let renew_before_days =
            self.count("sync.renew_before_days", raw.renew_before_days, 10, 0, 3650) as u32;
        let max_feed_bytes =
            self.count("sync.max_feed_bytes", raw.max_feed_bytes, 64 << 20, 1024, 4 << 30) as u64;
        let feed_timeout =
            self.duration("sync.feed_timeout", raw.feed_timeout.as_deref(), Duration::from_secs(120));
        let max_shrink_fraction = self.fraction("sync.max_shrink_fraction", raw.max_shrink_fraction, 0.5);
        let max_reject_fraction = self.fraction("sync.max_reject_fraction", raw.max_reject_fraction, 0.5);
        let state = match raw.state.as_deref() {
            Some(p) => resolve(&self.base_dir, Path::new(p)),
            None => default_state_path(&self.base_dir, &|k| std::env::var_os(k), running_as_root()),
        };
        let brake_window =
            self.duration("sync.brake_window", raw.brake_window.as_deref(), Duration::from_secs(24 * 3600));
        let accept_shrink_after =
            match raw.accept_shrink_after.as_deref().map(str::parse::<AcceptShrinkAfter>) {
                None => AcceptShrinkAfter::default(),
                Some(Ok(a)) => a,
                Some(Err(e)) => {
                    self.problem("sync.accept_shrink_after", e);
                    AcceptShrinkAfter::default()
                }
            };
        let journal_retention = self.duration(
            "sync.journal_retention",
            raw.journal_retention.as_deref(),
            Duration::from_secs(crate::state::JOURNAL_RETENTION_DAYS * 24 * 3600),
        );
        if raw.four_eyes == Some(true) && raw.approval != Some(true) {
            self.problem(
                "sync.four_eyes",
                "needs approval = true: without approval, Sync now and the schedule push manual values with no approver",
            );
        }
        SyncSettings {
            approval: raw.approval.unwrap_or(false),
            four_eyes: raw.four_eyes.unwrap_or(false),
            journal_retention,
            owner_tag,
            marker_field,
            capacity,
            headroom,
            max_delete_fraction,
            renew_before_days,
            state,
            max_feed_bytes,
            feed_timeout,
            max_shrink_fraction,
            max_reject_fraction,
            brake_window,
            accept_shrink_after,
        }
    }

    fn count(&mut self, key: &str, v: Option<i64>, default: i64, min: i64, max: i64) -> usize {
        match v {
            None => default as usize,
            Some(n) if (min..=max).contains(&n) => n as usize,
            Some(n) => {
                self.problem(key, format!("{n} is out of range: expected {min} to {max}"));
                default as usize
            }
        }
    }

    fn fraction(&mut self, key: &str, v: Option<f64>, default: f64) -> f64 {
        match v {
            None => default,
            Some(f) if (0.0..=1.0).contains(&f) => f,
            Some(f) => {
                self.problem(key, format!("{f} is not a fraction between 0 and 1"));
                default
            }
        }
    }

    fn duration(&mut self, key: &str, v: Option<&str>, default: Duration) -> Duration {
        match v {
            None => default,
            Some(s) => match humantime::parse_duration(s) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => {
                    self.problem(key, "must be longer than zero");
                    default
                }
                Err(e) => {
                    self.problem(key, format!("`{s}` is not a duration like \"48h\" or \"30m\": {e}"));
                    default
                }
            },
        }
    }

    fn policy(&mut self, key: &str, raw: &RawPolicy, report_unknown: bool) -> PolicySpec {
        if report_unknown {
            self.unknown(key, &raw.unknown, POLICY_KEYS);
        }
        let action = raw.action.as_deref().and_then(|a| match a.parse::<Action>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(
                    format!("{key}.action"),
                    format!(
                        "unknown action `{a}`: expected Allowed, Audit, Warn, Block or BlockAndRemediate"
                    ),
                );
                None
            }
        });
        let severity = raw.severity.as_deref().and_then(|s| match s.parse::<Severity>() {
            Ok(s) => Some(s),
            Err(_) => {
                self.problem(
                    format!("{key}.severity"),
                    format!("unknown severity `{s}`: expected Informational, Low, Medium or High"),
                );
                None
            }
        });
        if action == Some(Action::Audit) && raw.generate_alert == Some(false) {
            self.problem(
                format!("{key}.generate_alert"),
                "Defender requires generate_alert = true with action = \"Audit\"",
            );
        }
        for (k, t) in
            [("title", &raw.title), ("description", &raw.description), ("application", &raw.application)]
        {
            if let Some(t) = t {
                if k == "application" {
                    if let Some(bad) = unknown_placeholder(t) {
                        self.problem(
                            format!("{key}.{k}"),
                            format!("unknown placeholder `{{{bad}}}`: use {{feed}}, {{value}} or {{type}}"),
                        );
                    }
                    continue;
                }
                if let Some(bad) = unknown_placeholder(t) {
                    self.problem(
                        format!("{key}.{k}"),
                        format!("unknown placeholder `{{{bad}}}`: use {{feed}}, {{value}} or {{type}}"),
                    );
                }
                if t.trim().is_empty() {
                    self.problem(format!("{key}.{k}"), "must not be empty: Defender requires it");
                }
            }
        }
        if let Some(u) = &raw.educate_url
            && url::Url::parse(u).map(|u| u.scheme() != "https" && u.scheme() != "http").unwrap_or(true)
        {
            self.problem(format!("{key}.educate_url"), "must be an http(s) URL");
        }
        let expire_days = raw.expire_days.map(|d| {
            if (1..=3650).contains(&d) {
                d as u32
            } else {
                self.problem(
                    format!("{key}.expire_days"),
                    format!("{d} is out of range: expected 1 to 3650"),
                );
                30
            }
        });
        PolicySpec {
            action,
            severity,
            generate_alert: raw.generate_alert,
            title: raw.title.clone(),
            description: raw.description.clone(),
            recommended_actions: raw.recommended_actions.clone(),
            rbac_groups: raw.rbac_groups.clone(),
            category: raw.category.clone(),
            mitre_techniques: raw.mitre_techniques.clone(),
            educate_url: raw.educate_url.clone(),
            application: raw.application.clone(),
            expire_days,
        }
    }

    fn feeds(&mut self, raw: Vec<RawFeed>) -> Vec<Feed> {
        let mut out: Vec<Feed> = Vec::new();
        for (i, f) in raw.into_iter().enumerate() {
            let key = format!("feeds[{i}]");
            let known: Vec<&str> = FEED_KEYS.iter().chain(POLICY_KEYS).copied().collect();
            self.unknown(&key, &f.policy.unknown, &known);
            if f.enabled == Some(false) {
                continue;
            }
            let name = match f.name {
                Some(n) if is_feed_name(&n) => n,
                Some(n) => {
                    self.problem(
                        format!("{key}.name"),
                        format!("`{n}` is not a good feed name: use letters, digits, `-`, `_` or `.`"),
                    );
                    n
                }
                None => {
                    self.problem(format!("{key}.name"), "missing: each feed needs a unique name");
                    format!("feed{i}")
                }
            };
            if out.iter().any(|o| o.name == name) {
                self.problem(format!("{key}.name"), format!("duplicate feed name `{name}`"));
            }
            let source = match f.source {
                // The manual list is read from the state database: never parsed as a URL or path.
                Some(s) if s == MANUAL_SOURCE => {
                    if out.iter().any(Feed::is_manual) {
                        self.problem(
                            format!("{key}.source"),
                            "a second manual list: at most one [[feeds]] block may have source = \"manual\"",
                        );
                    }
                    if f.format.is_some() || f.column.is_some() || f.type_column.is_some() {
                        self.problem(
                            format!("{key}.format"),
                            "the manual list has no format, column or type_column: its values come from the state database",
                        );
                    }
                    s
                }
                Some(s) => {
                    // The same rule the fetcher applies (https, or http to loopback only).
                    if let Err(e) = crate::fetch::Source::parse(&s, &self.base_dir) {
                        self.problem(format!("{key}.source"), e.to_string());
                    }
                    s
                }
                None => {
                    self.problem(format!("{key}.source"), "missing: a URL or a file path");
                    String::new()
                }
            };
            let format = match f.format.as_deref().unwrap_or("auto").parse::<Format>() {
                Ok(fm) => fm,
                Err(_) => {
                    self.problem(
                        format!("{key}.format"),
                        "unknown format: expected auto, text, csv, hosts, stix, misp, taxii or defender-csv",
                    );
                    Format::Auto
                }
            };
            let column = f.column.as_ref().and_then(|c| self.column(&format!("{key}.column"), c));
            let type_column =
                f.type_column.as_ref().and_then(|c| self.column(&format!("{key}.type_column"), c));
            if (column.is_some() || type_column.is_some()) && !matches!(format, Format::Csv | Format::Auto) {
                self.problem(
                    format!("{key}.column"),
                    "column and type_column apply to format = \"csv\" only",
                );
            }
            let types = f.types.map(|list| {
                let mut set = BTreeSet::new();
                for (j, t) in list.iter().enumerate() {
                    match t.parse::<IndicatorType>() {
                        Ok(t) => {
                            set.insert(t);
                        }
                        Err(e) => self.problem(format!("{key}.types[{j}]"), e.to_string()),
                    }
                }
                set
            });
            let type_hint = f.type_hint.as_deref().and_then(|t| match t.parse::<TypeHint>() {
                Ok(h) => Some(h),
                Err(e) => {
                    self.problem(format!("{key}.type"), e.to_string());
                    None
                }
            });
            let priority = match f.priority {
                None => 0,
                Some(p) if (-1_000_000..=1_000_000).contains(&p) => p as i32,
                Some(p) => {
                    self.problem(format!("{key}.priority"), format!("{p} is out of range (±1,000,000)"));
                    0
                }
            };
            let max_age = self.duration(
                &format!("{key}.max_age"),
                f.max_age.as_deref(),
                Duration::from_secs(48 * 3600),
            );
            let policy = self.policy(&key, &f.policy, false);
            let row_policy = f.row_policy.unwrap_or(false);
            let mut row_actions = Vec::new();
            for (j, a) in f.row_actions.iter().flatten().enumerate() {
                match a.parse::<Action>() {
                    Ok(a) if !row_actions.contains(&a) => row_actions.push(a),
                    Ok(_) => {}
                    Err(e) => self.problem(format!("{key}.row_actions[{j}]"), e.to_string()),
                }
            }
            if !row_actions.is_empty() && !row_policy && source != MANUAL_SOURCE {
                self.problem(
                    format!("{key}.row_actions"),
                    "row_actions applies only with row_policy = true (rows never choose their action otherwise)",
                );
            }
            let auth = f.auth.as_ref().and_then(|a| self.feed_auth(&format!("{key}.auth"), a));
            if auth.is_some() && !source.contains("://") {
                self.problem(format!("{key}.auth"), "auth applies to URL sources only");
            }
            out.push(Feed {
                name,
                source,
                format,
                column,
                type_column,
                types,
                type_hint,
                priority,
                max_age,
                refang: f.refang.unwrap_or(true),
                policy,
                auth,
                row_policy,
                row_actions,
            });
        }
        out
    }

    fn feed_auth(&mut self, key: &str, v: &toml::Value) -> Option<FeedAuth> {
        let toml::Value::Table(t) = v else {
            self.problem(
                key,
                "write { bearer_env = \"VAR\" } or { username = \"u\", password_env = \"VAR\" }",
            );
            return None;
        };
        let get = |k: &str| t.get(k).and_then(toml::Value::as_str).map(str::to_owned);
        for k in t.keys() {
            if !["bearer_env", "username", "password_env"].contains(&k.as_str()) {
                self.problem(
                    format!("{key}.{k}"),
                    "unknown key (secrets are never written in the config: name an environment variable)",
                );
            }
        }
        match (get("bearer_env"), get("username"), get("password_env")) {
            (Some(token_env), None, None) => Some(FeedAuth::Bearer { token_env }),
            (None, Some(username), Some(password_env)) => Some(FeedAuth::Basic { username, password_env }),
            _ => {
                self.problem(
                    key,
                    "write { bearer_env = \"VAR\" } or { username = \"u\", password_env = \"VAR\" }",
                );
                None
            }
        }
    }

    fn column(&mut self, key: &str, v: &toml::Value) -> Option<Column> {
        match v {
            toml::Value::String(s) if !s.is_empty() => Some(Column::Name(s.clone())),
            toml::Value::Integer(i) if *i >= 0 => Some(Column::Index(*i as usize)),
            _ => {
                self.problem(key, "expected a header name (string) or a 0-based index (integer)");
                None
            }
        }
    }

    fn allowlist(&mut self, key: &str, raw: RawAllowlist, global: bool) -> AllowlistSpec {
        self.unknown(key, &raw.unknown, &["values", "files", "builtin"]);
        if !global && raw.builtin.is_some() {
            self.problem(format!("{key}.builtin"), "set builtin in the global [allowlist] only");
        }
        AllowlistSpec {
            values: raw.values.unwrap_or_default(),
            files: raw
                .files
                .unwrap_or_default()
                .into_iter()
                .map(|f| resolve(&self.base_dir, Path::new(&f)))
                .collect(),
            builtin: raw.builtin.unwrap_or(true),
        }
    }

    fn daemon(&mut self, raw: raw::RawDaemon) -> DaemonSettings {
        self.unknown(
            "daemon",
            &raw.unknown,
            &["schedule", "interval", "jitter", "listen", "tz", "max_staleness"],
        );
        let schedule = match (raw.schedule, raw.interval) {
            (Some(_), Some(_)) => {
                self.problem("daemon.schedule", "give either schedule (cron) or interval, not both");
                Schedule::Every(Duration::from_secs(6 * 3600))
            }
            (Some(cron), None) => {
                if let Err(e) = crate::daemon::parse_cron(&cron) {
                    self.problem("daemon.schedule", format!("`{cron}` is not a cron expression: {e}"));
                }
                Schedule::Cron(cron)
            }
            (None, Some(i)) => {
                Schedule::Every(self.duration("daemon.interval", Some(&i), Duration::from_secs(6 * 3600)))
            }
            (None, None) => Schedule::Every(Duration::from_secs(6 * 3600)),
        };
        let jitter = match raw.jitter.as_deref() {
            Some("0") | Some("0s") => Duration::ZERO,
            j => self.duration("daemon.jitter", j, Duration::from_secs(60)),
        };
        let listen = match raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN).parse() {
            Ok(a) => a,
            Err(e) => {
                self.problem("daemon.listen", format!("not an address like {DEFAULT_LISTEN}: {e}"));
                std::net::SocketAddr::from(([127, 0, 0, 1], 8944))
            }
        };
        let tz = match raw.tz.as_deref().map(str::parse::<chrono_tz::Tz>) {
            None => chrono_tz::Tz::UTC,
            Some(Ok(tz)) => tz,
            Some(Err(_)) => {
                let given = raw.tz.as_deref().unwrap_or_default();
                self.problem(
                    "daemon.tz",
                    format!("`{given}` is not an IANA time zone name like \"Europe/Rome\" or \"UTC\""),
                );
                chrono_tz::Tz::UTC
            }
        };
        let period = crate::daemon::schedule_period(&schedule, tz);
        let max_staleness =
            self.duration("daemon.max_staleness", raw.max_staleness.as_deref(), period.saturating_mul(2));
        DaemonSettings { schedule, jitter, listen, tz, max_staleness }
    }
}

/// Keys of a `[[feeds]]` block besides the policy keys.
const FEED_KEYS: &[&str] = &[
    "name",
    "source",
    "format",
    "column",
    "type_column",
    "types",
    "type",
    "priority",
    "max_age",
    "refang",
    "enabled",
    "auth",
    "row_policy",
    "row_actions",
];

/// Indicator policy keys, in `[defaults]`, tenant `defaults` and each feed.
const POLICY_KEYS: &[&str] = &[
    "application",
    "action",
    "severity",
    "generate_alert",
    "title",
    "description",
    "recommended_actions",
    "rbac_groups",
    "category",
    "mitre_techniques",
    "educate_url",
    "expire_days",
];

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12].iter().zip(&parts).all(|(n, p)| p.len() == *n)
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_feed_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn unknown_placeholder(t: &str) -> Option<String> {
    let mut rest = t;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let end = after.find('}')?;
        let name = &after[..end];
        if !matches!(name, "feed" | "value" | "type") {
            return Some(name.to_owned());
        }
        rest = &after[end + 1..];
    }
    None
}

/// The known key closest to a misspelt one (edit distance ≤ 2).
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known.iter().map(|k| (edit_distance(key, k), *k)).filter(|(d, _)| *d <= 2).min().map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("/etc/iocsync/iocsync.toml"))
    }

    #[test]
    fn starter_config_is_valid() {
        let c = load(STARTER_CONFIG).unwrap();
        assert_eq!(c.tenants.len(), 1);
        assert!(!c.feeds.is_empty());
        // It states the schedule's time zone, and the default port is not OpenTelemetry's 9464.
        assert!(STARTER_CONFIG.contains("tz = \"UTC\""));
        assert_eq!(c.daemon.tz, chrono_tz::Tz::UTC);
        assert_eq!(c.daemon.listen.to_string(), DEFAULT_LISTEN);
        assert_ne!(c.daemon.listen.port(), 9464);
        assert_eq!(c.daemon.max_staleness, std::time::Duration::from_secs(12 * 3600), "2 x the 6h interval");
    }

    #[test]
    fn the_state_database_defaults_to_the_platform_state_folder() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("etc");
        std::fs::create_dir_all(&base).unwrap();
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| std::ffi::OsString::from(v))
        };
        let all: &[(&str, &str)] = &[
            ("STATE_DIRECTORY", "/var/lib/iocsync:/var/lib/other"),
            ("XDG_STATE_HOME", "/home/u/.state"),
            ("HOME", "/home/u"),
            ("ProgramData", "C:\\ProgramData"),
        ];
        let p = |e: &dyn Fn(&str) -> Option<std::ffi::OsString>, root| default_state_path(&base, e, root);
        assert_eq!(p(&env(all), false), PathBuf::from("/var/lib/iocsync/iocsync.db"));
        assert_eq!(p(&env(&all[1..]), false), PathBuf::from("/home/u/.state/iocsync/iocsync.db"));
        if cfg!(unix) {
            assert_eq!(p(&env(&all[2..]), true), PathBuf::from("/var/lib/iocsync/iocsync.db"));
            assert_eq!(p(&env(&all[2..]), false), PathBuf::from("/home/u/.local/state/iocsync/iocsync.db"));
        }
        // A relative XDG_STATE_HOME is ignored (the spec says so).
        assert_eq!(
            p(&env(&[("XDG_STATE_HOME", "rel"), ("HOME", "/h")]), false),
            PathBuf::from("/h/.local/state/iocsync/iocsync.db")
        );
        // The old default keeps working when a database is already beside the config.
        std::fs::write(base.join("iocsync.db"), b"").unwrap();
        assert_eq!(p(&env(all), true), base.join("iocsync.db"));
        // `state` in the config wins over all of this.
        let c = load("[defender]\nemulator = true\n[sync]\nstate = \"/srv/x.db\"\n").unwrap();
        assert_eq!(c.sync.state, PathBuf::from("/srv/x.db"));
    }

    #[test]
    fn daemon_time_zone_and_staleness() {
        let c =
            load("[defender]\nemulator = true\n[daemon]\nschedule = \"0 */2 * * *\"\ntz = \"Europe/Rome\"\n")
                .unwrap();
        assert_eq!(c.daemon.tz, chrono_tz::Europe::Rome);
        assert_eq!(c.daemon.max_staleness, std::time::Duration::from_secs(4 * 3600));
        let err =
            load("[defender]\nemulator = true\n[daemon]\ntz = \"Mars/Olympus\"\nmax_staleness = \"soon\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("daemon.tz") && err.contains("Mars/Olympus"), "{err}");
        assert!(err.contains("daemon.max_staleness"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key_path() {
        let err = load(
            r#"
            [defender]
            tenant_id = "nope"
            client_id = "also-nope"
            client_secret = { env = "X" }
            clud = "gcc"
            [sync]
            max_delete_fraction = 1.5
            [[feeds]]
            name = "a"
            source = "http://example.com/list.txt"
            max_age = "forever"
            action = "Nuke"
            [[feeds]]
            name = "a"
            source = "feed.txt"
            "#,
        )
        .unwrap_err();
        let ConfigError::Invalid { problems, .. } = err else { panic!("expected Invalid, got {err}") };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for k in [
            "defender.tenant_id",
            "defender.client_id",
            "defender.clud",
            "sync.max_delete_fraction",
            "feeds[0].source",
            "feeds[0].max_age",
            "feeds[0].action",
            "feeds[1].name",
        ] {
            assert!(keys.contains(&k), "missing problem for {k}: {keys:?}");
        }
        let typo = problems.iter().find(|p| p.key == "defender.clud").unwrap();
        assert!(typo.message.contains("cloud"), "{}", typo.message);
    }

    #[test]
    fn journal_retention_defaults_to_400_days_and_is_checked() {
        let c = load("[defender]\nemulator = true\n").unwrap();
        assert_eq!(c.sync.journal_retention, Duration::from_secs(400 * 24 * 3600));
        let c = load("[defender]\nemulator = true\n[sync]\njournal_retention = \"90d\"\n").unwrap();
        assert_eq!(c.sync.journal_retention, Duration::from_secs(90 * 24 * 3600));
        let err = load("[defender]\nemulator = true\n[sync]\njournal_retention = \"a year\"\n").unwrap_err();
        let ConfigError::Invalid { problems, .. } = err else { panic!("expected Invalid, got {err}") };
        assert!(problems.iter().any(|p| p.key == "sync.journal_retention"), "{problems:?}");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let c = load(
            "[defender]\nemulator = true\n[sync]\nstate = \"state/x.db\"\n[allowlist]\nfiles = [\"allow.txt\"]\n",
        )
        .unwrap();
        assert_eq!(c.sync.state, PathBuf::from("/etc/iocsync/state/x.db"));
        assert_eq!(c.allowlist.files, vec![PathBuf::from("/etc/iocsync/allow.txt")]);
    }

    #[test]
    fn feed_policy_layers_feed_over_tenant_over_defaults() {
        let c = load(
            r#"
            [[tenants]]
            name = "a"
            emulator = true
            defaults = { severity = "Low" }
            [[tenants]]
            name = "b"
            emulator = true
            [defaults]
            action = "Audit"
            severity = "Medium"
            expire_days = 14
            [[feeds]]
            name = "f"
            source = "f.txt"
            title = "custom {value}"
            "#,
        )
        .unwrap();
        let a = c.feed_policy(&c.tenants[0], &c.feeds[0]);
        let b = c.feed_policy(&c.tenants[1], &c.feeds[0]);
        assert_eq!(a.severity, Severity::Low);
        assert_eq!(b.severity, Severity::Medium);
        assert_eq!(a.action, Action::Audit);
        assert_eq!(a.expire_days, 14);
        assert_eq!(a.title, "custom {value}");
        assert_eq!(a.description, "Imported by iocsync from {feed}");
    }

    #[test]
    fn secrets_cannot_be_written_inline() {
        let err = load("[defender]\ntenant_id = \"00000000-0000-0000-0000-000000000000\"\nclient_id = \"00000000-0000-0000-0000-000000000000\"\nclient_secret = { value = \"hunter2\" }\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("client_secret"), "{text}");
        assert!(!text.contains("hunter2"), "the secret leaked into the error: {text}");
    }

    #[test]
    fn an_inline_secret_is_refused_without_being_echoed() {
        for text in [
            "[defender]\nemulator = true\nclient_secret = \"hunter2-inline\"\n",
            "[defender]\nemulator = true\nclient_secret = hunter2-inline\n",
        ] {
            let err = load(text).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "the secret leaked into the error: {err}");
        }
    }

    #[test]
    fn sync_expire_days_is_the_fallback_of_defaults() {
        let c = load("[defender]\nemulator = true\n[sync]\nexpire_days = 20\n[[feeds]]\nname = \"f\"\nsource = \"f.txt\"\n")
            .unwrap();
        assert_eq!(c.feed_policy(&c.tenants[0], &c.feeds[0]).expire_days, 20);
    }

    #[test]
    fn two_blocks_for_the_same_tenant_and_app_are_refused() {
        let t = "tenant_id = \"00000000-0000-0000-0000-00000000000a\"\nclient_id = \"00000000-0000-0000-0000-00000000000b\"\nclient_secret = { env = \"X\" }\n";
        let err = load(&format!("[[tenants]]\nname = \"a\"\n{t}[[tenants]]\nname = \"b\"\n{t}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("tenants.b") && err.contains("each other"), "{err}");
    }

    #[test]
    fn a_tenant_expiry_inside_the_renewal_window_is_refused() {
        let err = load(
            "[[tenants]]\nname = \"a\"\nemulator = true\ndefaults = { expire_days = 5 }\n[[feeds]]\nname = \"f\"\nsource = \"f.txt\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tenants.a.defaults.expire_days"), "{err}");
    }

    #[test]
    fn marker_field_and_application() {
        const HEAD: &str = "[defender]\nemulator = true\n[[feeds]]\nname = \"a\"\nsource = \"a.txt\"\n";
        let c = load(HEAD).unwrap();
        assert_eq!(c.sync.marker_field, MarkerField::ExternalId);
        let p = c.feed_policy(&c.tenants[0], &c.feeds[0]);
        assert_eq!(p.application, None, "unset by default");
        assert_eq!(p.marker, Some(Marker::new(MarkerField::ExternalId, "iocsync")));

        let c = load(&format!(
            "[sync]\nmarker_field = \"description\"\nowner_tag = \"team\"\n[defaults]\napplication = \"Blocked: {{type}}\"\n{HEAD}application = \"Feed a: {{value}}\"\n"
        ))
        .unwrap();
        let p = c.feed_policy(&c.tenants[0], &c.feeds[0]);
        assert_eq!(p.application.as_deref(), Some("Feed a: {value}"), "the feed wins over [defaults]");
        assert_eq!(p.marker, Some(Marker::new(MarkerField::Description, "team")));

        let err = load(&format!(
            "[sync]\nmarker_field = \"application\"\n[defaults]\napplication = \"{{nope}}\"\n{HEAD}application = \"iocsync\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("sync.marker_field: unknown marker field `application`"), "{err}");
        assert!(err.contains("defaults.application: unknown placeholder `{nope}`"), "{err}");
        assert!(err.contains("feeds[0].application: must not be the owner tag `iocsync`"), "{err}");
    }
}
