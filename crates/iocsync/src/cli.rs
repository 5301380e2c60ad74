//! Command-line interface: the commands, flags and global options of DESIGN.md.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Examples and the exit codes, shown by `iocsync --help`.
const AFTER_LONG_HELP: &str = "\
Examples:
  iocsync init                               write a commented starter iocsync.toml
  iocsync check                              validate the config, get a token, show the capacity
  iocsync parse feed.csv --format csv --column dst_ip
  iocsync plan --detailed-exitcode           preview; exit 2 when changes are pending
  iocsync sync                               apply the feeds to the tenant
  iocsync --output json sync | jq .counts    one JSON document on stdout
  iocsync --log-format json daemon           scheduled runs, /metrics, /healthz, /readyz
  iocsync man --dir /usr/local/share/man/man1

Exit codes:
  0  success (plan: no changes pending)
  1  error: config, credentials, API, usage
  2  changes pending (plan --detailed-exitcode)
  3  partial: some items failed, or a feed fell back to its last good copy
  4  refused by the delete brake (see --force)";

/// Keep Microsoft Defender for Endpoint custom indicators in sync with threat-intelligence feeds.
#[derive(Debug, Parser)]
#[command(
    name = "iocsync",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_long_help = AFTER_LONG_HELP
)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Configuration file.
    #[arg(long, global = true, default_value = "iocsync.toml", env = "IOCSYNC_CONFIG")]
    pub config: PathBuf,
    /// Output format: human-readable text, or exactly one JSON document on stdout.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// More log detail on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less output: only warnings and errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also write timestamped log lines to this file (created with mode 0600).
    #[arg(long, global = true)]
    pub log_file: Option<PathBuf>,
    /// Log line format on stderr and in the log file: text for people, or one JSON object a line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Timestamped lines (colour on a terminal unless NO_COLOR; journald priorities under systemd).
    Text,
    /// One JSON object a line: timestamp, level, tenant, run_id, message and fields.
    Json,
}

/// Feed formats `parse --format` takes (the config's `format` names).
fn format_values() -> clap::builder::PossibleValuesParser {
    use clap::builder::PossibleValue as V;
    clap::builder::PossibleValuesParser::new([
        V::new("auto").help("sniff the format"),
        V::new("text").alias("txt").help("one value a line"),
        V::new("csv"),
        V::new("hosts"),
        V::new("stix").help("STIX 2.1 bundle"),
        V::new("misp").help("MISP event JSON or a MISP feed directory"),
        V::new("taxii").help("TAXII 2.1 collection"),
        V::new("defender-csv").alias("defender_csv").help("Defender's indicator CSV"),
    ])
}

/// Indicator types `parse --type` takes: short names and Defender's names (any case).
fn type_values() -> clap::builder::PossibleValuesParser {
    use clap::builder::PossibleValue as V;
    clap::builder::PossibleValuesParser::new([
        V::new("ip").aliases(["ipv4", "ipv6", "ip-src", "ip-dst", "ipv4-addr", "ipv6-addr"]),
        V::new("domain").aliases(["hostname", "fqdn", "domain-name"]),
        V::new("url").alias("uri"),
        V::new("md5"),
        V::new("sha1").alias("sha-1"),
        V::new("sha256").alias("sha-256"),
        V::new("cert").aliases(["certificate", "thumbprint", "x509-fingerprint-sha1"]),
        V::new("hash").alias("filehash").help("MD5, SHA-1 or SHA-256 by length"),
        V::new("IpAddress"),
        V::new("DomainName"),
        V::new("FileMd5"),
        V::new("FileSha1"),
        V::new("FileSha256"),
        V::new("CertificateThumbprint"),
    ])
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Tables and sentences for people.
    Text,
    /// One JSON document on stdout, for machines.
    Json,
    /// A review text for a pull request (`plan`); other commands print text.
    Markdown,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch the feeds, plan, and apply the changes to the tenant (the main job).
    Sync(SyncArgs),
    /// Same as `sync --dry-run`; with --detailed-exitcode, exit 2 when changes are pending.
    Plan(PlanArgs),
    /// Parse one feed file or URL and show the accepted and rejected values.
    Parse(ParseArgs),
    /// Validate the config, get a token, reach the API and show the capacity.
    Check(TenantArgs),
    /// Inventory of the tenant's indicators (owned ones; --all: every one).
    List(ListArgs),
    /// Delete every indicator iocsync owns in the tenant.
    Purge(PurgeArgs),
    /// Take over indicators made by an older tool (same app id, other or no owner tag).
    Adopt(AdoptArgs),
    /// Past runs from the state database; with --run ID --changes, that run's journal of changes.
    History(HistoryArgs),
    /// Why a value is (or is not) in the tenant: feeds, policy, allowlist, capacity, rejects, changes.
    Explain(ExplainArgs),
    /// Revert one run's journaled changes (shows the plan unless --yes).
    Undo(UndoArgs),
    /// Run sync on a schedule; serve metrics and health over HTTP, and the analyst console.
    Daemon,
    /// Manage the analyst console's local users.
    #[command(subcommand)]
    Console(ConsoleCommand),
    /// Probe a running daemon's /healthz (exit 0 when it answers 200): a container HEALTHCHECK.
    Healthcheck(HealthcheckArgs),
    /// Serve the local Defender emulator (loopback only).
    Emulator(EmulatorArgs),
    /// Write a commented starter config.
    Init(InitArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout, or write one page per command into a directory.
    Man(ManArgs),
}

/// `iocsync console ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConsoleCommand {
    /// Add a user to the console's users file (or change their role and password); prompts for
    /// the password.
    AddUser(AddUserArgs),
    /// Remove a user from the console's users file (their sessions end at the next request).
    RemoveUser {
        /// User name.
        name: String,
    },
}

/// `iocsync console add-user`.
#[derive(Debug, Clone, Args)]
pub struct AddUserArgs {
    /// User name (shown in the journal and the audit log).
    pub name: String,
    /// What the user may do: viewer (read), analyst (+ manual list, sync now, undo requests),
    /// approver (+ approve plans and undos).
    #[arg(long, value_parser = ["viewer", "analyst", "approver"])]
    pub role: String,
    /// Read the password from the first line of standard input instead of prompting
    /// (for provisioning scripts).
    #[arg(long)]
    pub password_stdin: bool,
}

/// `iocsync healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// URL to probe (default: /healthz on the config's `[daemon] listen`).
    #[arg(long)]
    pub url: Option<String>,
}

/// `iocsync man`.
#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// Write iocsync.1 and iocsync-COMMAND.1 for every command into this directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Tenant selection, shared by the commands that talk to Defender.
#[derive(Debug, Clone, Args, Default)]
pub struct TenantArgs {
    /// Only this tenant (the `name` of a `[[tenants]]` block).
    #[arg(long)]
    pub tenant: Option<String>,
}

/// `iocsync sync`.
#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    /// Plan and report, but make no write call.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply even when the plan would delete more than `max_delete_fraction` of the owned indicators.
    #[arg(long)]
    pub force: bool,
    /// Apply exactly this saved plan (`plan --out FILE`), refused if the rows it touches drifted.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Refuse a saved plan older than this (e.g. 24h, 90m).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub max_plan_age: std::time::Duration,
    /// Tenant selection.
    #[command(flatten)]
    pub tenant: TenantArgs,
}

/// `iocsync plan`.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Exit 2 when changes are pending (0 when none).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Save the exact change set, with its content hash, to this file (for `sync --plan`).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Tenant selection.
    #[command(flatten)]
    pub tenant: TenantArgs,
}

/// `iocsync parse`.
#[derive(Debug, Clone, Args)]
pub struct ParseArgs {
    /// Feed file, MISP feed directory, or URL.
    pub source: String,
    /// Format (auto sniffs).
    #[arg(long, default_value = "auto", value_parser = format_values(), ignore_case = true)]
    pub format: String,
    /// CSV value column: header name or 0-based index.
    #[arg(long)]
    pub column: Option<String>,
    /// CSV column naming each row's type.
    #[arg(long)]
    pub type_column: Option<String>,
    /// Force the type of every value.
    #[arg(long = "type", value_parser = type_values(), ignore_case = true)]
    pub type_hint: Option<String>,
    /// Do not undo defanging (`hxxp`, `[.]`).
    #[arg(long)]
    pub no_refang: bool,
    /// How many accepted values to list in text output (JSON lists all).
    #[arg(long, default_value_t = 10)]
    pub show: usize,
}

/// `iocsync list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Every indicator in the tenant, not only the owned ones.
    #[arg(long)]
    pub all: bool,
    /// Only values held under several actions or by several creators.
    #[arg(long)]
    pub duplicates: bool,
    /// Add what Defender did with each indicator (from `[hits]` counts in the state database),
    /// most hit first.
    #[arg(long)]
    pub hits: bool,
    /// Tenant selection.
    #[command(flatten)]
    pub tenant: TenantArgs,
}

/// `iocsync purge`.
#[derive(Debug, Clone, Args)]
pub struct PurgeArgs {
    /// Really delete (without it, purge only shows what it would delete).
    #[arg(long)]
    pub yes: bool,
    /// Tenant selection.
    #[command(flatten)]
    pub tenant: TenantArgs,
}

/// `iocsync adopt`.
#[derive(Debug, Clone, Args)]
pub struct AdoptArgs {
    /// The `createdBy` (app id or UPN) of the indicators to take over.
    #[arg(long)]
    pub created_by: String,
    /// Only indicators whose title starts with this.
    #[arg(long)]
    pub title_prefix: Option<String>,
    /// Really adopt (without it, adopt only shows what it would take over).
    #[arg(long)]
    pub yes: bool,
    /// Tenant selection.
    #[command(flatten)]
    pub tenant: TenantArgs,
}

/// `iocsync history`.
#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// How many runs to show, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Only this run.
    #[arg(long)]
    pub run: Option<i64>,
    /// With --run: list the run's journal of changes.
    #[arg(long, requires = "run")]
    pub changes: bool,
    /// Stream the journal (oldest first) as JSON lines or CSV, for a SIEM.
    #[arg(long, value_enum, conflicts_with_all = ["run", "changes"])]
    pub export: Option<ExportFormat>,
    /// With --export: only changes at or after this time (RFC 3339, or an age such as 7d).
    #[arg(long, requires = "export")]
    pub since: Option<String>,
    /// Tenant selection.
    #[command(flatten)]
    pub tenant: TenantArgs,
}

/// Journal export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header row; `before`, `after` and `feeds` hold JSON.
    Csv,
}

/// `iocsync explain`.
#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// The value, in any spelling (defanged, upper-case, ...): it is normalised first.
    pub value: String,
    /// Answer from the config, the feeds' last copies and the state only: no API call.
    #[arg(long)]
    pub offline: bool,
    /// Tenant selection.
    #[command(flatten)]
    pub tenant: TenantArgs,
}

/// `iocsync undo`.
#[derive(Debug, Clone, Args)]
pub struct UndoArgs {
    /// The run to revert (see `iocsync history`).
    #[arg(long)]
    pub run: i64,
    /// Really apply (without it, undo only shows what it would do).
    #[arg(long)]
    pub yes: bool,
    /// Apply even past the delete brake.
    #[arg(long)]
    pub force: bool,
    /// Tenant selection (must be the run's tenant).
    #[command(flatten)]
    pub tenant: TenantArgs,
}

/// `iocsync emulator`.
#[derive(Debug, Clone, Args)]
pub struct EmulatorArgs {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:8943")]
    pub listen: SocketAddr,
    /// Keep the emulator's indicators in this JSON file across restarts.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Tenant id the token endpoint accepts.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Accepted client, as ID:SECRET[:ROLE] (ROLE: Ti.ReadWrite or Ti.ReadWrite.All); repeatable.
    #[arg(long = "client")]
    pub clients: Vec<String>,
    /// Rows per list page before `@odata.nextLink` (at most 10,000).
    #[arg(long, default_value_t = 10_000)]
    pub page_size: usize,
    /// Divide the rate-limit windows by this (60: a minute lasts a second).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Seed the advanced-hunting tables from this JSONL file (one event per line, e.g.
    /// {"Table": "DeviceNetworkEvents", "Timestamp": "-2d", "DeviceId": "d1", "RemoteIP": "198.51.100.7"};
    /// Timestamp is RFC 3339 or relative to now: -3d, -12h, -30m).
    #[arg(long, value_name = "FILE")]
    pub hunting_events: Option<PathBuf>,
}

/// `iocsync init`.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}
