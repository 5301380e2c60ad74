//! The local state database (SQLite): last good feed copies, MISP event cache, cursors, run
//! history, provenance, permanent Defender rejects and the API call history used for pacing.
//!
//! It is a cache and a history, never trusted over the tenant (DESIGN principle 5): losing the
//! file costs re-downloads and history, never correctness. Secrets are never stored: no function
//! here takes one, and no column is meant for one.
//!
//! The schema evolves through [`MIGRATIONS`], applied in order under `PRAGMA user_version`; a
//! database written by a newer iocsync is refused rather than silently misread.

use crate::fetch::Validators;
use chrono::{DateTime, SecondsFormat, Utc};
use iocsync_core::feed_health::Baseline;
use iocsync_core::plan::BrakeEntry;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sha2::Digest as _;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Ordered schema migrations; entry `i` moves the schema from version `i` to `i + 1`.
/// Append only: never edit a migration that has shipped.
pub const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r"
CREATE TABLE feed_cache (
    feed          TEXT PRIMARY KEY NOT NULL,
    source        TEXT NOT NULL,
    body          BLOB NOT NULL,
    etag          TEXT,
    last_modified TEXT,
    fetched_at    TEXT NOT NULL,
    good_at       TEXT NOT NULL,
    bytes         INTEGER NOT NULL,
    accepted      INTEGER NOT NULL,
    rejected      INTEGER NOT NULL
);
CREATE TABLE misp_events (
    feed      TEXT NOT NULL,
    uuid      TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    body      BLOB NOT NULL,
    PRIMARY KEY (feed, uuid)
);
CREATE TABLE cursors (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL,
    exit_code   INTEGER,
    dry_run     INTEGER NOT NULL,
    report_json TEXT
);
CREATE INDEX runs_tenant ON runs (tenant, id);
CREATE TABLE provenance (
    tenant         TEXT NOT NULL,
    indicator_type TEXT NOT NULL,
    value          TEXT NOT NULL,
    action         TEXT NOT NULL,
    defender_id    TEXT,
    feeds_json     TEXT NOT NULL,
    first_seen     TEXT NOT NULL,
    last_pushed    TEXT NOT NULL,
    PRIMARY KEY (tenant, indicator_type, value, action)
);
CREATE TABLE rejects (
    tenant         TEXT NOT NULL,
    indicator_type TEXT NOT NULL,
    value          TEXT NOT NULL,
    action         TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    reason         TEXT NOT NULL,
    detail         TEXT,
    first_seen     TEXT NOT NULL,
    last_seen      TEXT NOT NULL,
    PRIMARY KEY (tenant, indicator_type, value, action)
);
CREATE TABLE api_calls (
    tenant    TEXT NOT NULL,
    client_id TEXT NOT NULL,
    family    TEXT NOT NULL,
    at_ms     INTEGER NOT NULL
);
CREATE INDEX api_calls_by_client ON api_calls (tenant, client_id, at_ms);
",
    // 2: the brake's memory across runs, and each feed's shrink baseline.
    r"
CREATE TABLE brake_ledger (
    tenant  TEXT NOT NULL,
    at      TEXT NOT NULL,
    counted INTEGER NOT NULL,
    owned   INTEGER NOT NULL
);
CREATE INDEX brake_ledger_by_tenant ON brake_ledger (tenant, at);
CREATE TABLE feed_baseline (
    feed         TEXT PRIMARY KEY NOT NULL,
    source       TEXT NOT NULL,
    accepted     INTEGER NOT NULL,
    shrink_runs  INTEGER NOT NULL,
    shrink_since TEXT
);
",
    // 3: updates sent, to notice one Defender does not keep (update-not-kept).
    r"
CREATE TABLE sent_updates (
    tenant         TEXT NOT NULL,
    indicator_type TEXT NOT NULL,
    value          TEXT NOT NULL,
    action         TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    times          INTEGER NOT NULL,
    last_sent      TEXT NOT NULL,
    PRIMARY KEY (tenant, indicator_type, value, action)
);
",
    // 4: the change journal: one row per write Defender confirmed (append-only; pruned by age
    // only), and which run an undo run reverted.
    r"
CREATE TABLE journal (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         INTEGER NOT NULL,
    at             TEXT NOT NULL,
    tenant         TEXT NOT NULL,
    kind           TEXT NOT NULL,
    indicator_id   TEXT,
    indicator_type TEXT NOT NULL,
    value          TEXT NOT NULL,
    action         TEXT NOT NULL,
    before_json    TEXT,
    after_json     TEXT,
    feeds_json     TEXT NOT NULL,
    reason         TEXT NOT NULL
);
CREATE INDEX journal_by_run ON journal (run_id, seq);
CREATE INDEX journal_by_time ON journal (at);
CREATE INDEX journal_by_value ON journal (tenant, indicator_type, value);
CREATE TRIGGER journal_append_only BEFORE UPDATE ON journal
BEGIN
    SELECT RAISE(ABORT, 'the journal is append-only');
END;
ALTER TABLE runs ADD COLUMN undo_of INTEGER;
CREATE TABLE journal_pending (
    run_id     INTEGER NOT NULL,
    tenant     TEXT NOT NULL,
    entry_json TEXT NOT NULL
);
CREATE INDEX journal_pending_by_tenant ON journal_pending (tenant, run_id);
",
    // 5: the impact check's answers per value, reused for `[impact] cache_for`.
    r"
CREATE TABLE impact_cache (
    tenant         TEXT NOT NULL,
    indicator_type TEXT NOT NULL,
    value          TEXT NOT NULL,
    checked_at     TEXT NOT NULL,
    devices        INTEGER NOT NULL,
    events         INTEGER NOT NULL,
    last_seen      TEXT,
    PRIMARY KEY (tenant, indicator_type, value)
);
",
    // 6: hits: the events where Defender acted on an owned indicator, and how far they were counted.
    r"
CREATE TABLE indicator_hits (
    tenant         TEXT NOT NULL,
    indicator_type TEXT NOT NULL,
    value          TEXT NOT NULL,
    hits           INTEGER NOT NULL,
    devices        TEXT NOT NULL,
    first_hit      TEXT,
    last_hit       TEXT,
    PRIMARY KEY (tenant, indicator_type, value)
);
CREATE TABLE hits_cursor (
    tenant     TEXT PRIMARY KEY NOT NULL,
    counted_to TEXT NOT NULL
);
",
    // 7: the analysts' console: the manual list (removals keep the row), who started each run
    // and made each journaled change, plans waiting for approval, undo requests and the audit log.
    r"
CREATE TABLE manual_values (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    feed           TEXT NOT NULL,
    indicator_type TEXT NOT NULL,
    value          TEXT NOT NULL,
    action         TEXT,
    expires_at     TEXT,
    comment        TEXT NOT NULL,
    added_by       TEXT NOT NULL,
    added_at       TEXT NOT NULL,
    removed_by     TEXT,
    removed_at     TEXT
);
CREATE INDEX manual_values_by_feed ON manual_values (feed, indicator_type, value);
ALTER TABLE journal ADD COLUMN actor TEXT;
ALTER TABLE runs ADD COLUMN actor TEXT;
CREATE TABLE pending_plans (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    created_by      TEXT,
    plan_json       TEXT NOT NULL,
    review_markdown TEXT NOT NULL,
    status          TEXT NOT NULL,
    decided_by      TEXT,
    decided_at      TEXT,
    result_json     TEXT
);
CREATE INDEX pending_plans_by_tenant ON pending_plans (tenant, status, id);
CREATE TABLE undo_requests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       INTEGER NOT NULL,
    tenant       TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    comment      TEXT NOT NULL,
    status       TEXT NOT NULL,
    decided_by   TEXT,
    decided_at   TEXT,
    result_json  TEXT
);
CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    user        TEXT NOT NULL,
    action      TEXT NOT NULL,
    detail_json TEXT NOT NULL
);
CREATE TRIGGER audit_append_only BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
",
    // 8: each feed's last good body moves to a table of its own, written and read through
    // incremental blob I/O (SQLite builds a whole record to update a row, and a zero blob that is
    // not a record's last column is filled in memory: in `feed_cache` both held the body whole),
    // and its SHA-256, so a download is compared with it without reading it (rows from before
    // stay NULL and count as changed once). `feed_cache.body` stays, always empty.
    r"
CREATE TABLE feed_body (
    feed TEXT PRIMARY KEY NOT NULL,
    body BLOB NOT NULL
);
INSERT INTO feed_body (feed, body) SELECT feed, body FROM feed_cache WHERE length(body) > 0;
UPDATE feed_cache SET body = x'';
ALTER TABLE feed_cache ADD COLUMN body_sha256 TEXT;
",
];

/// One change to append to the journal: a write Defender confirmed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JournalEntry {
    /// `create`, `update`, `renew` or `delete` (a replace is a delete and a create).
    pub kind: String,
    /// Defender indicator id (created, changed or deleted), when known.
    pub id: Option<String>,
    /// Defender `indicatorType`.
    #[serde(rename = "type")]
    pub indicator_type: String,
    /// Indicator value.
    pub value: String,
    /// Defender action.
    pub action: String,
    /// The tenant row before the change (wire field names); `None` for a create.
    pub before: Option<serde_json::Value>,
    /// The payload sent (wire field names); `None` for a delete.
    pub after: Option<serde_json::Value>,
    /// The feeds that caused the change (carry the value, or carried it before).
    pub feeds: Vec<String>,
    /// Why: new-in-feed, left-feed, metadata-changed, renewal, allowlisted, over-capacity,
    /// duplicate, undo, purge, adopt or manual.
    pub reason: String,
    /// Who started the run that made the change (a console user); `None` for the schedule or
    /// the CLI. Left out of the JSON when `None`, so saved plans keep their content hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// A stored journal row: the entry with its sequence number, run, time and tenant.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JournalRow {
    /// Sequence number (increasing, unique).
    pub seq: i64,
    /// The run that made the change.
    pub run: i64,
    /// When Defender confirmed it.
    pub at: DateTime<Utc>,
    /// Tenant name.
    pub tenant: String,
    /// The change.
    #[serde(flatten)]
    pub entry: JournalEntry,
}

/// Default `[sync] journal_retention`: journal rows older than this are pruned.
pub const JOURNAL_RETENTION_DAYS: u64 = 400;

/// What Defender did with one owned indicator, summed over every run that counted hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HitRecord {
    /// Defender `indicatorType` name.
    pub indicator_type: String,
    /// Normalised value.
    pub value: String,
    /// Events where Defender acted on it.
    pub hits: u64,
    /// Distinct devices (ids, at most [`MAX_HIT_DEVICES`] kept).
    pub devices: std::collections::BTreeSet<String>,
    /// First and latest such event.
    pub first_hit: Option<DateTime<Utc>>,
    /// Latest such event.
    pub last_hit: Option<DateTime<Utc>>,
}

/// Device ids kept per indicator (the count shown stops growing there).
pub const MAX_HIT_DEVICES: usize = 1_000;

/// One value's impact-check answer: what the tenant's telemetry showed when it was last asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImpactRecord {
    /// Defender `indicatorType` name.
    pub indicator_type: String,
    /// Normalised value.
    pub value: String,
    /// When the telemetry was asked.
    pub checked_at: DateTime<Utc>,
    /// Distinct devices seen.
    pub devices: u64,
    /// Events seen.
    pub events: u64,
    /// Latest event.
    pub last_seen: Option<DateTime<Utc>>,
}

/// One update iocsync sent, and on how many runs in a row it sent the same payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentUpdate {
    /// Defender `indicatorType` name.
    pub indicator_type: String,
    /// Normalised value.
    pub value: String,
    /// Defender action name.
    pub action: String,
    /// Fingerprint of the payload sent.
    pub fingerprint: String,
    /// Consecutive runs that sent this same payload.
    pub times: u32,
}

/// How long brake ledger rows are kept: far longer than any sensible `brake_window`.
pub const BRAKE_LEDGER_RETENTION: chrono::Duration = chrono::Duration::days(30);

/// How long API call history is kept: the longest pacing window (one hour) plus a margin.
pub const API_CALL_RETENTION_MS: i64 = 2 * 60 * 60 * 1000;

/// How long a writer waits for another process holding the database lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of the state database. Messages name the file and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database file could not be created, opened or secured.
    #[error("cannot open state database {}: {detail}", path.display())]
    Open {
        /// Database path.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The file was written by a newer iocsync whose schema this binary does not know.
    #[error(
        "state database {} has schema version {found}, but this iocsync only knows up to \
         version {known}; upgrade iocsync, or point `sync.state` at a new file",
        path.display()
    )]
    TooNew {
        /// Database path (`:memory:` for an in-memory database).
        path: PathBuf,
        /// Version found in the file.
        found: u32,
        /// Highest version this binary knows.
        known: u32,
    },
    /// A query failed (disk full, locked for longer than the busy timeout, corrupt file, ...).
    #[error("state database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// `finish_run` for a run id that was never begun.
    #[error("no run with id {0} in the state database")]
    NoSuchRun(i64),
    /// A stored value could not be decoded (e.g. a timestamp edited by hand).
    #[error("state database holds an unreadable value in {what}: {detail}")]
    Corrupt {
        /// Table and column.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// The last good copy of one feed and its HTTP validators. `Debug` shows the body's size only.
#[derive(Clone, PartialEq, Eq)]
pub struct CachedFeed {
    /// Feed name from the config.
    pub feed: String,
    /// Source it came from (path or redacted URL), for display only.
    pub source: String,
    /// The raw body (after decompression). Empty when the row was read without it
    /// ([`StateStore::feed_cache_head`]), and for a MISP feed's row.
    pub body: Vec<u8>,
    /// Size of the stored body (also when `body` was not read).
    pub body_len: u64,
    /// SHA-256 (hex) of the stored body; `None` for a row saved before it was kept.
    pub body_sha256: Option<String>,
    /// `ETag` / `Last-Modified` of that body, for the next conditional GET.
    pub validators: Validators,
    /// When the body was last fetched or confirmed by a 304.
    pub fetched_at: DateTime<Utc>,
    /// When the content was last judged good (fresh or confirmed unchanged); `max_age` counts from here.
    pub good_at: DateTime<Utc>,
    /// Body size in bytes.
    pub bytes: u64,
    /// Accepted values when it was parsed.
    pub accepted: u64,
    /// Rejected values when it was parsed.
    pub rejected: u64,
}

impl std::fmt::Debug for CachedFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedFeed")
            .field("feed", &self.feed)
            .field("source", &self.source)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .field("body_len", &self.body_len)
            .field("body_sha256", &self.body_sha256)
            .field("validators", &self.validators)
            .field("fetched_at", &self.fetched_at)
            .field("good_at", &self.good_at)
            .field("bytes", &self.bytes)
            .field("accepted", &self.accepted)
            .field("rejected", &self.rejected)
            .finish()
    }
}

/// One value of the analysts' manual list (`[[feeds]] source = "manual"`), as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ManualValue {
    /// Row id (what `remove` takes).
    pub id: i64,
    /// The manual feed's name.
    pub feed: String,
    /// Defender `indicatorType`.
    pub indicator_type: String,
    /// The normalised value.
    pub value: String,
    /// The action chosen for this value; `None`: the feed's action.
    pub action: Option<String>,
    /// When the value stops being pushed; `None`: the feed's `expire_days` (renewed).
    pub expires_at: Option<DateTime<Utc>>,
    /// The analyst's comment (sent as the indicator's description).
    pub comment: String,
    /// Who added it.
    pub added_by: String,
    /// When.
    pub added_at: DateTime<Utc>,
}

/// The manual-list values one user added and removed, as `(indicator type, value)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManualAuthorship {
    /// Values the user added that are still in the list.
    pub added: std::collections::BTreeSet<(String, String)>,
    /// Values the user removed.
    pub removed: std::collections::BTreeSet<(String, String)>,
}

/// A plan waiting for approval (`[sync] approval = true`), as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingPlanRow {
    /// Id.
    pub id: i64,
    /// Tenant name.
    pub tenant: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Who asked for it (a console user); `None` for the schedule.
    pub created_by: Option<String>,
    /// The saved plan (what `plan --out` writes).
    pub plan_json: String,
    /// The review text (`plan --output markdown`).
    pub review_markdown: String,
    /// pending, applied, rejected, superseded or failed.
    pub status: String,
    /// Who applied or rejected it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
    /// What applying it did (the run report or the refusal), as JSON.
    pub result_json: Option<String>,
}

/// A request to undo one run, made by an analyst and confirmed or rejected by an approver.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UndoRequest {
    /// Id.
    pub id: i64,
    /// The run to undo.
    pub run_id: i64,
    /// Its tenant.
    pub tenant: String,
    /// Who asked.
    pub requested_by: String,
    /// When.
    pub requested_at: DateTime<Utc>,
    /// Why (the analyst's words).
    pub comment: String,
    /// pending, done, failed or rejected.
    pub status: String,
    /// Who confirmed or rejected it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
    /// What the undo did (its report or the error).
    pub result: Option<serde_json::Value>,
}

/// One row of the console's audit log.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditRow {
    /// Sequence number (increasing).
    pub seq: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub user: String,
    /// What, e.g. `manual-add`, `approve`, `undo-request`.
    pub action: String,
    /// The details (values, ids, outcome).
    pub detail: serde_json::Value,
}

/// One row of the run history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    /// Run id (increasing).
    pub id: i64,
    /// Tenant name.
    pub tenant: String,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time; `None` while running or when the process died mid-run.
    pub finished_at: Option<DateTime<Utc>>,
    /// `running` until finished, then the caller's status (e.g. `ok`, `partial`, `error`).
    pub status: String,
    /// Process exit code; `None` while running.
    pub exit_code: Option<i32>,
    /// Whether it was a dry run (`plan`).
    pub dry_run: bool,
    /// The JSON report; `None` while running.
    pub report_json: Option<String>,
    /// Who started the run (a console user); `None` for the schedule or the CLI.
    pub actor: Option<String>,
}

/// The provenance `adopt` records: a known origin that is no feed, so the value is managed (and
/// deleted when no feed carries it) instead of protected as of unknown origin.
pub const ADOPTED_ORIGIN: &str = "(adopted)";

/// Which feeds carried one pushed indicator, and its Defender id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenanceRow {
    /// Defender `indicatorType` name.
    pub indicator_type: String,
    /// Normalised value.
    pub value: String,
    /// Defender action name.
    pub action: String,
    /// Defender indicator id, when known.
    pub defender_id: Option<String>,
    /// Names of the feeds that carried it.
    pub feeds: BTreeSet<String>,
    /// First time it was pushed (kept across [`StateStore::replace_provenance`] calls).
    pub first_seen: DateTime<Utc>,
    /// Last time it was created, updated or renewed.
    pub last_pushed: DateTime<Utc>,
}

/// A value Defender rejected permanently, so it is not resent until its metadata changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectRow {
    /// Defender `indicatorType` name.
    pub indicator_type: String,
    /// Normalised value.
    pub value: String,
    /// Defender action name.
    pub action: String,
    /// Fingerprint of the metadata that was sent; a different one means "try again".
    pub fingerprint: String,
    /// Reason code (e.g. `rejected-by-defender`).
    pub reason: String,
    /// Defender's message, if any.
    pub detail: Option<String>,
}

/// A stored [`RejectRow`] with when it was first and last rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectRecord {
    /// The reject.
    pub reject: RejectRow,
    /// First rejection (kept when the row is recorded again).
    pub first_seen: DateTime<Utc>,
    /// Latest rejection.
    pub last_seen: DateTime<Utc>,
}

/// The state database. Synchronous and fast; `Send` but not `Sync` (wrap in a `Mutex` to share).
#[derive(Debug)]
pub struct StateStore {
    conn: Connection,
    path: PathBuf,
}

impl StateStore {
    /// Opens (creating with mode 0600 on unix) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let open_err = |detail: String| StateError::Open { path: path.to_path_buf(), detail };
        create_private(path).map_err(|e| {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            match parent {
                Some(dir) if !dir.is_dir() => open_err(format!(
                    "{e}; the directory {} does not exist: create it or change `sync.state`",
                    dir.display()
                )),
                _ => open_err(e.to_string()),
            }
        })?;
        let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| open_err(e.to_string()))?;
        // WAL: readers (e.g. `iocsync history`) never block the daemon's writes.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(|e| {
            open_err(format!(
                "{e}: the file is damaged or not an iocsync state database; it is only a cache, so move \
                     it aside (e.g. `mv {p} {p}.broken`) and the next run rebuilds it from the tenant",
                p = path.display()
            ))
        })?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::debug!(path = %path.display(), mode, "state database is not in WAL mode");
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL;").map_err(|e| open_err(e.to_string()))?;
        let mut store = StateStore { conn, path: path.to_path_buf() };
        store.migrate()?;
        Ok(store)
    }

    /// Opens a fresh, migrated in-memory database (tests, `--dry-run` without a state file).
    pub fn open_in_memory() -> Result<Self, StateError> {
        let conn = Connection::open_in_memory()?;
        let mut store = StateStore { conn, path: PathBuf::from(":memory:") };
        store.migrate()?;
        Ok(store)
    }

    /// Applies the migrations above the file's `user_version`, all in one transaction.
    fn migrate(&mut self) -> Result<(), StateError> {
        let known = MIGRATIONS.len() as u32;
        // IMMEDIATE: two processes opening a new file at once do not both migrate it.
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > known {
            return Err(StateError::TooNew { path: self.path.clone(), found, known });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(sql)?;
            tracing::debug!(version = i + 1, "applied state database migration");
        }
        if found < known {
            tx.execute_batch(&format!("PRAGMA user_version = {known}"))?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Where temporary copies of feeds go: the database's directory (the system temp dir for
    /// an in-memory database).
    pub fn temp_dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(dir) if self.path != Path::new(":memory:") && !dir.as_os_str().is_empty() => {
                dir.to_path_buf()
            }
            _ if self.path != Path::new(":memory:") => PathBuf::from("."),
            _ => std::env::temp_dir(),
        }
    }

    /// The schema version (`PRAGMA user_version`) of the open database.
    pub fn schema_version(&self) -> Result<u32, StateError> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    // ---- feed cache -------------------------------------------------------------------------

    /// The last good copy of `feed`, if any, with its body.
    pub fn feed_cache(&self, feed: &str) -> Result<Option<CachedFeed>, StateError> {
        self.read_feed_cache(feed, true)
    }

    /// The last good copy of `feed` without its body (`body` is empty; `body_len` and
    /// `body_sha256` describe it): read the body with [`StateStore::copy_feed_body`].
    pub fn feed_cache_head(&self, feed: &str) -> Result<Option<CachedFeed>, StateError> {
        self.read_feed_cache(feed, false)
    }

    fn read_feed_cache(&self, feed: &str, with_body: bool) -> Result<Option<CachedFeed>, StateError> {
        let sql = format!(
            "SELECT c.source, {}, c.etag, c.last_modified, c.fetched_at, c.good_at, c.bytes, c.accepted,
                    c.rejected, coalesce(length(b.body), 0), c.body_sha256
             FROM feed_cache c LEFT JOIN feed_body b ON b.feed = c.feed WHERE c.feed = ?1",
            if with_body { "coalesce(b.body, x'')" } else { "x''" }
        );
        let row = self
            .conn
            .query_row(&sql, [feed], |r| {
                Ok((
                    (r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?),
                    (r.get::<_, Option<String>>(2)?, r.get::<_, Option<String>>(3)?),
                    (r.get::<_, String>(4)?, r.get::<_, String>(5)?),
                    (r.get::<_, i64>(6)?, r.get::<_, i64>(7)?, r.get::<_, i64>(8)?),
                    (r.get::<_, i64>(9)?, r.get::<_, Option<String>>(10)?),
                ))
            })
            .optional()?;
        let Some((
            (source, body),
            (etag, last_modified),
            (fetched_at, good_at),
            (bytes, accepted, rejected),
            (body_len, body_sha256),
        )) = row
        else {
            return Ok(None);
        };
        Ok(Some(CachedFeed {
            feed: feed.to_owned(),
            source,
            body,
            body_len: to_u64(body_len),
            body_sha256,
            validators: Validators { etag, last_modified },
            fetched_at: parse_ts("feed_cache.fetched_at", &fetched_at)?,
            good_at: parse_ts("feed_cache.good_at", &good_at)?,
            bytes: to_u64(bytes),
            accepted: to_u64(accepted),
            rejected: to_u64(rejected),
        }))
    }

    /// Stores `c` as the new last good copy of its feed (replacing the previous one), with the
    /// SHA-256 of its body (`c.body_len` and `c.body_sha256` are not read: they follow the body).
    pub fn save_good_feed(&self, c: &CachedFeed) -> Result<(), StateError> {
        let sha = hex::encode(sha2::Sha256::digest(&c.body));
        let tx = self.conn.unchecked_transaction()?;
        self.upsert_feed(c, &sha)?;
        if c.body.is_empty() {
            tx.execute("DELETE FROM feed_body WHERE feed = ?1", [&c.feed])?;
        } else {
            tx.execute(
                "INSERT INTO feed_body (feed, body) VALUES (?1, ?2)
                 ON CONFLICT (feed) DO UPDATE SET body = excluded.body",
                params![c.feed, c.body],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Stores `c` as the new last good copy of its feed with the `len` bytes read from `body`
    /// as its body (`c.body` is not read), whose SHA-256 is `sha256`. The body goes into the
    /// database through incremental blob I/O, never whole in memory; all or nothing.
    pub fn save_good_feed_from(
        &self,
        c: &CachedFeed,
        body: &mut dyn std::io::Read,
        len: u64,
        sha256: &str,
    ) -> Result<(), StateError> {
        let size = i64::try_from(len).map_err(|_| StateError::Corrupt {
            what: "feed_cache.body",
            detail: format!("a body of {len} bytes is too large to store"),
        })?;
        let tx = self.conn.unchecked_transaction()?;
        self.upsert_feed(c, sha256)?;
        // The zero blob is the record's last column: SQLite writes it without filling it in memory.
        tx.execute("DELETE FROM feed_body WHERE feed = ?1", [&c.feed])?;
        tx.execute("INSERT INTO feed_body (feed, body) VALUES (?1, zeroblob(?2))", params![c.feed, size])?;
        let rowid = tx.last_insert_rowid();
        let mut blob = tx.blob_open(rusqlite::MAIN_DB, "feed_body", "body", rowid, false)?;
        let copied = std::io::copy(&mut std::io::Read::take(body, len), &mut blob).map_err(|e| {
            StateError::Corrupt {
                what: "feed_cache.body",
                detail: format!("cannot copy the body into the database: {e}"),
            }
        })?;
        if copied != len {
            return Err(StateError::Corrupt {
                what: "feed_cache.body",
                detail: format!("the body ended after {copied} of {len} bytes"),
            });
        }
        blob.close()?;
        tx.commit()?;
        Ok(())
    }

    /// The upsert of a cache row (its body goes to `feed_body`).
    fn upsert_feed(&self, c: &CachedFeed, sha256: &str) -> Result<(), StateError> {
        self.conn.execute(
            "INSERT INTO feed_cache
                 (feed, source, body, etag, last_modified, fetched_at, good_at, bytes, accepted, rejected,
                  body_sha256)
             VALUES (?1, ?2, x'', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (feed) DO UPDATE SET
                 source = excluded.source, etag = excluded.etag,
                 last_modified = excluded.last_modified, fetched_at = excluded.fetched_at,
                 good_at = excluded.good_at, bytes = excluded.bytes, accepted = excluded.accepted,
                 rejected = excluded.rejected, body_sha256 = excluded.body_sha256",
            params![
                c.feed,
                c.source,
                c.validators.etag,
                c.validators.last_modified,
                fmt_ts(c.fetched_at),
                fmt_ts(c.good_at),
                to_i64(c.bytes),
                to_i64(c.accepted),
                to_i64(c.rejected),
                sha256,
            ],
        )?;
        Ok(())
    }

    /// Copies the stored body of `feed` into `out` through incremental blob I/O (never whole in
    /// memory); returns its size, or `None` without a cached copy.
    pub fn copy_feed_body(
        &self,
        feed: &str,
        out: &mut dyn std::io::Write,
    ) -> Result<Option<u64>, StateError> {
        let rowid: Option<i64> = self
            .conn
            .query_row(
                "SELECT b.rowid FROM feed_cache c JOIN feed_body b ON b.feed = c.feed WHERE c.feed = ?1",
                [feed],
                |r| r.get(0),
            )
            .optional()?;
        let Some(rowid) = rowid else { return Ok(None) };
        let mut blob = self.conn.blob_open(rusqlite::MAIN_DB, "feed_body", "body", rowid, true)?;
        let n = std::io::copy(&mut blob, out).map_err(|e| StateError::Corrupt {
            what: "feed_cache.body",
            detail: format!("cannot copy the cached body out: {e}"),
        })?;
        Ok(Some(n))
    }

    /// Marks the cached copy of `feed` as confirmed current at `at` (a 304, or an identical
    /// body): refreshes `fetched_at` and `good_at`. Returns whether a cached copy existed.
    pub fn touch_feed(&self, feed: &str, at: DateTime<Utc>) -> Result<bool, StateError> {
        let n = self.conn.execute(
            "UPDATE feed_cache SET fetched_at = ?2, good_at = ?2 WHERE feed = ?1",
            params![feed, fmt_ts(at)],
        )?;
        Ok(n > 0)
    }

    /// Replaces the stored validators of `feed` (a server may send a new `ETag` for the same body).
    pub fn set_feed_validators(&self, feed: &str, v: &Validators) -> Result<(), StateError> {
        self.conn.execute(
            "UPDATE feed_cache SET etag = ?2, last_modified = ?3 WHERE feed = ?1",
            params![feed, v.etag, v.last_modified],
        )?;
        Ok(())
    }

    // ---- feed baselines -----------------------------------------------------------------------

    /// The shrink baseline of `feed` and the source it belongs to, if recorded.
    pub fn feed_baseline(&self, feed: &str) -> Result<Option<(String, Baseline)>, StateError> {
        let row = self
            .conn
            .query_row(
                "SELECT source, accepted, shrink_runs, shrink_since FROM feed_baseline WHERE feed = ?1",
                [feed],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                },
            )
            .optional()?;
        let Some((source, accepted, runs, since)) = row else { return Ok(None) };
        let shrink_since = since.map(|t| parse_ts("feed_baseline.shrink_since", &t)).transpose()?;
        Ok(Some((
            source,
            Baseline {
                accepted: to_u64(accepted),
                shrink_runs: u32::try_from(runs).unwrap_or(u32::MAX),
                shrink_since,
            },
        )))
    }

    /// Stores the shrink baseline of `feed` (read from `source`).
    pub fn set_feed_baseline(&self, feed: &str, source: &str, b: &Baseline) -> Result<(), StateError> {
        self.conn.execute(
            "INSERT INTO feed_baseline (feed, source, accepted, shrink_runs, shrink_since)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (feed) DO UPDATE SET source = excluded.source, accepted = excluded.accepted,
                 shrink_runs = excluded.shrink_runs, shrink_since = excluded.shrink_since",
            params![feed, source, to_i64(b.accepted), i64::from(b.shrink_runs), b.shrink_since.map(fmt_ts)],
        )?;
        Ok(())
    }

    // ---- sent updates -------------------------------------------------------------------------

    /// The updates of `tenant` remembered from earlier runs.
    pub fn sent_updates(&self, tenant: &str) -> Result<Vec<SentUpdate>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT indicator_type, value, action, fingerprint, times FROM sent_updates WHERE tenant = ?1",
        )?;
        let rows = stmt.query_map([tenant], |r| {
            Ok(SentUpdate {
                indicator_type: r.get(0)?,
                value: r.get(1)?,
                action: r.get(2)?,
                fingerprint: r.get(3)?,
                times: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(u32::MAX),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every hit record of `tenant`.
    pub fn hit_records(&self, tenant: &str) -> Result<Vec<HitRecord>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT indicator_type, value, hits, devices, first_hit, last_hit FROM indicator_hits WHERE tenant = ?1
             ORDER BY indicator_type, value",
        )?;
        let rows = stmt.query_map([tenant], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (indicator_type, value, hits, devices, first, last) = row?;
            out.push(HitRecord {
                indicator_type,
                value,
                hits: u64::try_from(hits).unwrap_or(0),
                devices: serde_json::from_str(&devices).map_err(|e| StateError::Corrupt {
                    what: "indicator_hits.devices",
                    detail: e.to_string(),
                })?,
                first_hit: first.map(|t| parse_ts("indicator_hits.first_hit", &t)).transpose()?,
                last_hit: last.map(|t| parse_ts("indicator_hits.last_hit", &t)).transpose()?,
            });
        }
        Ok(out)
    }

    /// Until when hits of `tenant` were counted (`None`: never).
    pub fn hits_counted_to(&self, tenant: &str) -> Result<Option<DateTime<Utc>>, StateError> {
        let t: Option<String> = self
            .conn
            .query_row("SELECT counted_to FROM hits_cursor WHERE tenant = ?1", [tenant], |r| r.get(0))
            .optional()?;
        t.map(|t| parse_ts("hits_cursor.counted_to", &t)).transpose()
    }

    /// Adds newly counted hits to the records and moves the cursor to `counted_to`, in one
    /// transaction (a crash counts the window again, never twice).
    pub fn add_hits(
        &self,
        tenant: &str,
        new: &[HitRecord],
        counted_to: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let old: std::collections::BTreeMap<(String, String), HitRecord> = self
            .hit_records(tenant)?
            .into_iter()
            .map(|r| ((r.indicator_type.clone(), r.value.clone()), r))
            .collect();
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut put = tx.prepare(
                "INSERT OR REPLACE INTO indicator_hits (tenant, indicator_type, value, hits, devices, first_hit, last_hit)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for n in new {
                let mut r =
                    old.get(&(n.indicator_type.clone(), n.value.clone())).cloned().unwrap_or_else(|| {
                        HitRecord {
                            indicator_type: n.indicator_type.clone(),
                            value: n.value.clone(),
                            hits: 0,
                            devices: Default::default(),
                            first_hit: None,
                            last_hit: None,
                        }
                    });
                r.hits = r.hits.saturating_add(n.hits);
                for d in &n.devices {
                    if r.devices.len() >= MAX_HIT_DEVICES {
                        break;
                    }
                    r.devices.insert(d.clone());
                }
                r.first_hit = match (r.first_hit, n.first_hit.or(n.last_hit)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                r.last_hit = r.last_hit.max(n.last_hit);
                put.execute(params![
                    tenant,
                    r.indicator_type,
                    r.value,
                    i64::try_from(r.hits).unwrap_or(i64::MAX),
                    serde_json::to_string(&r.devices).unwrap_or_else(|_| "[]".to_owned()),
                    r.first_hit.map(fmt_ts),
                    r.last_hit.map(fmt_ts),
                ])?;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO hits_cursor (tenant, counted_to) VALUES (?1, ?2)",
            params![tenant, fmt_ts(counted_to)],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Impact-check answers of `tenant` asked at or after `since` (older ones are stale).
    pub fn impact_records(
        &self,
        tenant: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<ImpactRecord>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT indicator_type, value, checked_at, devices, events, last_seen
             FROM impact_cache WHERE tenant = ?1 AND checked_at >= ?2",
        )?;
        let rows = stmt.query_map(params![tenant, fmt_ts(since)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (indicator_type, value, checked, devices, events, last) = row?;
            out.push(ImpactRecord {
                indicator_type,
                value,
                checked_at: parse_ts("impact_cache.checked_at", &checked)?,
                devices: u64::try_from(devices).unwrap_or(0),
                events: u64::try_from(events).unwrap_or(0),
                last_seen: last.map(|t| parse_ts("impact_cache.last_seen", &t)).transpose()?,
            });
        }
        Ok(out)
    }

    /// Stores impact-check answers (replacing older answers for the same values) and drops the
    /// answers of `tenant` older than `stale_before`.
    pub fn save_impact_records(
        &self,
        tenant: &str,
        records: &[ImpactRecord],
        stale_before: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "DELETE FROM impact_cache WHERE tenant = ?1 AND checked_at < ?2",
            params![tenant, fmt_ts(stale_before)],
        )?;
        {
            let mut put = tx.prepare(
                "INSERT OR REPLACE INTO impact_cache
                     (tenant, indicator_type, value, checked_at, devices, events, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for r in records {
                put.execute(params![
                    tenant,
                    r.indicator_type,
                    r.value,
                    fmt_ts(r.checked_at),
                    i64::try_from(r.devices).unwrap_or(i64::MAX),
                    i64::try_from(r.events).unwrap_or(i64::MAX),
                    r.last_seen.map(fmt_ts),
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Replaces the remembered updates of `tenant`.
    pub fn replace_sent_updates(
        &self,
        tenant: &str,
        rows: &[SentUpdate],
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM sent_updates WHERE tenant = ?1", [tenant])?;
        {
            let mut put = tx.prepare(
                "INSERT OR REPLACE INTO sent_updates
                     (tenant, indicator_type, value, action, fingerprint, times, last_sent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for r in rows {
                put.execute(params![
                    tenant,
                    r.indicator_type,
                    r.value,
                    r.action,
                    r.fingerprint,
                    i64::from(r.times),
                    fmt_ts(now)
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    // ---- brake ledger -------------------------------------------------------------------------

    /// The brake ledger of `tenant` younger than `since` (oldest first).
    pub fn brake_ledger(&self, tenant: &str, since: DateTime<Utc>) -> Result<Vec<BrakeEntry>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT at, counted, owned FROM brake_ledger WHERE tenant = ?1 AND at > ?2 ORDER BY at",
        )?;
        let rows = stmt.query_map(params![tenant, fmt_ts(since)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (at, counted, owned) = row?;
            out.push(BrakeEntry {
                at: parse_ts("brake_ledger.at", &at)?,
                counted: usize::try_from(counted).unwrap_or(0),
                owned: usize::try_from(owned).unwrap_or(0),
            });
        }
        Ok(out)
    }

    /// Appends one applied run to the brake ledger of `tenant` and prunes rows older than
    /// [`BRAKE_LEDGER_RETENTION`].
    pub fn record_brake(&self, tenant: &str, e: &BrakeEntry) -> Result<(), StateError> {
        self.conn.execute(
            "INSERT INTO brake_ledger (tenant, at, counted, owned) VALUES (?1, ?2, ?3, ?4)",
            params![tenant, fmt_ts(e.at), e.counted as i64, e.owned as i64],
        )?;
        self.conn.execute(
            "DELETE FROM brake_ledger WHERE tenant = ?1 AND at < ?2",
            params![tenant, fmt_ts(e.at - BRAKE_LEDGER_RETENTION)],
        )?;
        Ok(())
    }

    // ---- MISP feed events ---------------------------------------------------------------------

    /// The cached events of a MISP feed: uuid -> (manifest timestamp, event JSON).
    pub fn misp_events(&self, feed: &str) -> Result<BTreeMap<String, (i64, Vec<u8>)>, StateError> {
        let mut stmt = self.conn.prepare("SELECT uuid, timestamp, body FROM misp_events WHERE feed = ?1")?;
        let rows = stmt.query_map([feed], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores (or replaces) one cached MISP event.
    pub fn save_misp_event(
        &self,
        feed: &str,
        uuid: &str,
        timestamp: i64,
        body: &[u8],
    ) -> Result<(), StateError> {
        self.conn.execute(
            "INSERT INTO misp_events (feed, uuid, timestamp, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (feed, uuid) DO UPDATE SET timestamp = excluded.timestamp, body = excluded.body",
            params![feed, uuid, timestamp, body],
        )?;
        Ok(())
    }

    /// Replaces the whole event set of a MISP feed in one transaction (events no longer in the
    /// manifest are dropped; unchanged ones are not rewritten).
    pub fn replace_misp_events(
        &self,
        feed: &str,
        events: &BTreeMap<String, (i64, Vec<u8>)>,
    ) -> Result<(), StateError> {
        let tx = self.conn.unchecked_transaction()?;
        let existing: BTreeMap<String, i64> = {
            let mut stmt = tx.prepare("SELECT uuid, timestamp FROM misp_events WHERE feed = ?1")?;
            let rows = stmt.query_map([feed], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        {
            let mut del = tx.prepare("DELETE FROM misp_events WHERE feed = ?1 AND uuid = ?2")?;
            for uuid in existing.keys().filter(|u| !events.contains_key(*u)) {
                del.execute(params![feed, uuid])?;
            }
            let mut put = tx.prepare(
                "INSERT INTO misp_events (feed, uuid, timestamp, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (feed, uuid) DO UPDATE SET timestamp = excluded.timestamp, body = excluded.body",
            )?;
            for (uuid, (ts, body)) in events {
                if existing.get(uuid) != Some(ts) {
                    put.execute(params![feed, uuid, ts, body])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    // ---- cursors ------------------------------------------------------------------------------

    /// A stored cursor (e.g. TAXII `added_after` for one collection).
    pub fn cursor(&self, key: &str) -> Result<Option<String>, StateError> {
        Ok(self.conn.query_row("SELECT value FROM cursors WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    /// Stores a cursor, replacing the previous value.
    pub fn set_cursor(&self, key: &str, value: &str) -> Result<(), StateError> {
        self.conn.execute(
            "INSERT INTO cursors (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    // ---- manual list --------------------------------------------------------------------------

    /// Stores manual values (already validated by the caller) in one transaction, so a paste is
    /// stored whole or not at all; returns their ids in order.
    pub fn add_manual(&self, values: &[ManualValue]) -> Result<Vec<i64>, StateError> {
        let tx = self.conn.unchecked_transaction()?;
        let mut ids = Vec::with_capacity(values.len());
        {
            let mut insert = tx.prepare(
                "INSERT INTO manual_values (feed, indicator_type, value, action, expires_at, comment, added_by, added_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for v in values {
                insert.execute(params![
                    v.feed,
                    v.indicator_type,
                    v.value,
                    v.action,
                    v.expires_at.map(fmt_ts),
                    v.comment,
                    v.added_by,
                    fmt_ts(v.added_at)
                ])?;
                ids.push(tx.last_insert_rowid());
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    /// The active manual values (not removed, not expired at `now`), of one feed or all, oldest first.
    pub fn manual_values(
        &self,
        feed: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<ManualValue>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, feed, indicator_type, value, action, expires_at, comment, added_by, added_at
             FROM manual_values
             WHERE removed_at IS NULL AND (?1 IS NULL OR feed = ?1) AND (expires_at IS NULL OR expires_at > ?2)
             ORDER BY id",
        )?;
        let mut rows = stmt.query(params![feed, fmt_ts(now)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let expires: Option<String> = r.get(5)?;
            let added: String = r.get(8)?;
            out.push(ManualValue {
                id: r.get(0)?,
                feed: r.get(1)?,
                indicator_type: r.get(2)?,
                value: r.get(3)?,
                action: r.get(4)?,
                expires_at: expires.map(|e| parse_ts("manual_values.expires_at", &e)).transpose()?,
                comment: r.get(6)?,
                added_by: r.get(7)?,
                added_at: parse_ts("manual_values.added_at", &added)?,
            });
        }
        Ok(out)
    }

    /// The `(indicator type, value)` pairs of manual list `feed` that `user` added and are still
    /// active, and those `user` ever removed (user names compared without case: a proxy may
    /// spell one user two ways). What `[sync] four_eyes` keeps `user` from approving.
    pub fn manual_authored_by(&self, feed: &str, user: &str) -> Result<ManualAuthorship, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT indicator_type, value, lower(added_by) = lower(?2) AND removed_at IS NULL,
                    IFNULL(lower(removed_by) = lower(?2), 0)
             FROM manual_values
             WHERE feed = ?1 AND (lower(added_by) = lower(?2) OR lower(removed_by) = lower(?2))",
        )?;
        let mut rows = stmt.query(params![feed, user])?;
        let mut out = ManualAuthorship::default();
        while let Some(r) = rows.next()? {
            let key: (String, String) = (r.get(0)?, r.get(1)?);
            if r.get::<_, bool>(2)? {
                out.added.insert(key.clone());
            }
            if r.get::<_, bool>(3)? {
                out.removed.insert(key);
            }
        }
        Ok(out)
    }

    /// Marks manual value `id` removed (the row stays: history); false when it was not active.
    pub fn remove_manual(&self, id: i64, user: &str, at: DateTime<Utc>) -> Result<bool, StateError> {
        let n = self.conn.execute(
            "UPDATE manual_values SET removed_by = ?2, removed_at = ?3 WHERE id = ?1 AND removed_at IS NULL",
            params![id, user, fmt_ts(at)],
        )?;
        Ok(n > 0)
    }

    // ---- approvals, undo requests, audit ----------------------------------------------------

    /// Stores a plan waiting for approval; older pending plans of the tenant become superseded.
    pub fn add_pending_plan(
        &self,
        tenant: &str,
        created_at: DateTime<Utc>,
        created_by: Option<&str>,
        plan_json: &str,
        review_markdown: &str,
    ) -> Result<i64, StateError> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "UPDATE pending_plans SET status = 'superseded', decided_at = ?2 WHERE tenant = ?1 AND status = 'pending'",
            params![tenant, fmt_ts(created_at)],
        )?;
        tx.execute(
            "INSERT INTO pending_plans (tenant, created_at, created_by, plan_json, review_markdown, status)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending')",
            params![tenant, fmt_ts(created_at), created_by, plan_json, review_markdown],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(id)
    }

    /// Marks the tenant's pending plans superseded (a newer run found nothing to change).
    pub fn supersede_pending_plans(&self, tenant: &str, at: DateTime<Utc>) -> Result<usize, StateError> {
        Ok(self.conn.execute(
            "UPDATE pending_plans SET status = 'superseded', decided_at = ?2 WHERE tenant = ?1 AND status = 'pending'",
            params![tenant, fmt_ts(at)],
        )?)
    }

    /// Plans by status (all when `None`), newest first, at most `limit`.
    pub fn pending_plans(
        &self,
        status: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PendingPlanRow>, StateError> {
        self.pending_plans_where(status, None, limit)
    }

    /// One plan by id.
    pub fn pending_plan(&self, id: i64) -> Result<Option<PendingPlanRow>, StateError> {
        Ok(self.pending_plans_where(None, Some(id), 1)?.into_iter().next())
    }

    fn pending_plans_where(
        &self,
        status: Option<&str>,
        id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<PendingPlanRow>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, tenant, created_at, created_by, plan_json, review_markdown, status, decided_by, decided_at,
                    result_json
             FROM pending_plans WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR id = ?2)
             ORDER BY id DESC LIMIT ?3",
        )?;
        let mut rows = stmt.query(params![status, id, i64::try_from(limit).unwrap_or(i64::MAX)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let created: String = r.get(2)?;
            let decided: Option<String> = r.get(8)?;
            out.push(PendingPlanRow {
                id: r.get(0)?,
                tenant: r.get(1)?,
                created_at: parse_ts("pending_plans.created_at", &created)?,
                created_by: r.get(3)?,
                plan_json: r.get(4)?,
                review_markdown: r.get(5)?,
                status: r.get(6)?,
                decided_by: r.get(7)?,
                decided_at: decided.map(|d| parse_ts("pending_plans.decided_at", &d)).transpose()?,
                result_json: r.get(9)?,
            });
        }
        Ok(out)
    }

    /// Records the decision on pending plan `id`; false when it was no longer pending.
    pub fn decide_pending_plan(
        &self,
        id: i64,
        status: &str,
        by: &str,
        at: DateTime<Utc>,
        result_json: Option<&str>,
    ) -> Result<bool, StateError> {
        let n = self.conn.execute(
            "UPDATE pending_plans SET status = ?2, decided_by = ?3, decided_at = ?4, result_json = ?5
             WHERE id = ?1 AND status = 'pending'",
            params![id, status, by, fmt_ts(at), result_json],
        )?;
        Ok(n > 0)
    }

    /// Stores a request to undo run `run_id` and returns its id.
    pub fn add_undo_request(
        &self,
        run_id: i64,
        tenant: &str,
        by: &str,
        at: DateTime<Utc>,
        comment: &str,
    ) -> Result<i64, StateError> {
        self.conn.execute(
            "INSERT INTO undo_requests (run_id, tenant, requested_by, requested_at, comment, status)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending')",
            params![run_id, tenant, by, fmt_ts(at), comment],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Undo requests by status (all when `None`), newest first.
    pub fn undo_requests(
        &self,
        status: Option<&str>,
        id: Option<i64>,
    ) -> Result<Vec<UndoRequest>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, run_id, tenant, requested_by, requested_at, comment, status, decided_by, decided_at, result_json
             FROM undo_requests WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR id = ?2) ORDER BY id DESC",
        )?;
        let mut rows = stmt.query(params![status, id])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let at: String = r.get(4)?;
            let decided: Option<String> = r.get(8)?;
            let result: Option<String> = r.get(9)?;
            out.push(UndoRequest {
                id: r.get(0)?,
                run_id: r.get(1)?,
                tenant: r.get(2)?,
                requested_by: r.get(3)?,
                requested_at: parse_ts("undo_requests.requested_at", &at)?,
                comment: r.get(5)?,
                status: r.get(6)?,
                decided_by: r.get(7)?,
                decided_at: decided.map(|d| parse_ts("undo_requests.decided_at", &d)).transpose()?,
                result: result.and_then(|j| serde_json::from_str(&j).ok()),
            });
        }
        Ok(out)
    }

    /// Records the decision on undo request `id`; false when it was no longer pending.
    pub fn decide_undo_request(
        &self,
        id: i64,
        status: &str,
        by: &str,
        at: DateTime<Utc>,
        result: Option<&serde_json::Value>,
    ) -> Result<bool, StateError> {
        let n = self.conn.execute(
            "UPDATE undo_requests SET status = ?2, decided_by = ?3, decided_at = ?4, result_json = ?5
             WHERE id = ?1 AND status = 'pending'",
            params![id, status, by, fmt_ts(at), result.map(serde_json::Value::to_string)],
        )?;
        Ok(n > 0)
    }

    /// Appends one row to the audit log.
    pub fn append_audit(
        &self,
        at: DateTime<Utc>,
        user: &str,
        action: &str,
        detail: &serde_json::Value,
    ) -> Result<i64, StateError> {
        self.conn.execute(
            "INSERT INTO audit (at, user, action, detail_json) VALUES (?1, ?2, ?3, ?4)",
            params![fmt_ts(at), user, action, detail.to_string()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The newest `limit` audit rows, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditRow>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, at, user, action, detail_json FROM audit ORDER BY seq DESC LIMIT ?1")?;
        let mut rows = stmt.query([i64::try_from(limit).unwrap_or(i64::MAX)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let at: String = r.get(1)?;
            let detail: String = r.get(4)?;
            out.push(AuditRow {
                seq: r.get(0)?,
                at: parse_ts("audit.at", &at)?,
                user: r.get(2)?,
                action: r.get(3)?,
                detail: serde_json::from_str(&detail)
                    .map_err(|e| StateError::Corrupt { what: "audit.detail_json", detail: e.to_string() })?,
            });
        }
        Ok(out)
    }

    // ---- runs ---------------------------------------------------------------------------------

    /// Records the start of a run (status `running`) and returns its id.
    pub fn begin_run(
        &self,
        tenant: &str,
        dry_run: bool,
        started_at: DateTime<Utc>,
    ) -> Result<i64, StateError> {
        self.conn.execute(
            "INSERT INTO runs (tenant, started_at, status, dry_run) VALUES (?1, ?2, 'running', ?3)",
            params![tenant, fmt_ts(started_at), dry_run],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records who started run `id` (a console user), shown by `history` and the console.
    pub fn set_run_actor(&self, id: i64, actor: &str) -> Result<(), StateError> {
        self.conn.execute("UPDATE runs SET actor = ?2 WHERE id = ?1", params![id, actor])?;
        Ok(())
    }

    /// Records the end of run `id` ([`StateError::NoSuchRun`] if it was never begun).
    pub fn finish_run(
        &self,
        id: i64,
        status: &str,
        exit_code: i32,
        report_json: &str,
        finished_at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let n = self.conn.execute(
            "UPDATE runs SET status = ?2, exit_code = ?3, report_json = ?4, finished_at = ?5 WHERE id = ?1",
            params![id, status, exit_code, report_json, fmt_ts(finished_at)],
        )?;
        if n == 0 {
            return Err(StateError::NoSuchRun(id));
        }
        Ok(())
    }

    /// The latest `limit` runs, newest first, optionally of one tenant only.
    pub fn runs(&self, tenant: Option<&str>, limit: usize) -> Result<Vec<RunRow>, StateError> {
        self.runs_where(tenant, i64::try_from(limit).unwrap_or(i64::MAX), None)
    }

    fn runs_where(
        &self,
        tenant: Option<&str>,
        limit: i64,
        id: Option<i64>,
    ) -> Result<Vec<RunRow>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, tenant, started_at, finished_at, status, exit_code, dry_run, report_json, actor
             FROM runs WHERE (?1 IS NULL OR tenant = ?1) AND (?3 IS NULL OR id = ?3) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![tenant, limit, id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<i32>>(5)?,
                r.get::<_, bool>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Option<String>>(8)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, tenant, started, finished, status, exit_code, dry_run, report_json, actor) = row?;
            out.push(RunRow {
                id,
                tenant,
                started_at: parse_ts("runs.started_at", &started)?,
                finished_at: finished.map(|f| parse_ts("runs.finished_at", &f)).transpose()?,
                status,
                exit_code,
                dry_run,
                report_json,
                actor,
            });
        }
        Ok(out)
    }

    /// One run by id.
    pub fn run(&self, id: i64) -> Result<Option<RunRow>, StateError> {
        Ok(self.runs_where(None, 1, Some(id))?.into_iter().next())
    }

    /// Records that run `id` reverted run `of` (an undo run).
    pub fn set_undo_of(&self, id: i64, of: i64) -> Result<(), StateError> {
        self.conn.execute("UPDATE runs SET undo_of = ?2 WHERE id = ?1", params![id, of])?;
        Ok(())
    }

    /// The run that run `id` reverted, when it was an undo run.
    pub fn undo_of(&self, id: i64) -> Result<Option<i64>, StateError> {
        Ok(self
            .conn
            .query_row("SELECT undo_of FROM runs WHERE id = ?1", [id], |r| r.get::<_, Option<i64>>(0))
            .optional()?
            .flatten())
    }

    /// The undo run that reverted run `id`, if any.
    pub fn undone_by(&self, id: i64) -> Result<Option<i64>, StateError> {
        Ok(self
            .conn
            .query_row("SELECT id FROM runs WHERE undo_of = ?1 ORDER BY id LIMIT 1", [id], |r| r.get(0))
            .optional()?)
    }

    /// Whether a later run of `tenant` than `id` exists.
    pub fn later_run_exists(&self, tenant: &str, id: i64) -> Result<bool, StateError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM runs WHERE tenant = ?1 AND id > ?2 LIMIT 1",
                params![tenant, id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    // ---- journal ------------------------------------------------------------------------------

    /// Records the changes a call is about to send (replacing the run's earlier intents): if the
    /// process dies before the answer is journaled, the next run finds out from the tenant which
    /// of them landed ([`StateStore::pending_journal`]).
    pub fn intend_journal(&self, run: i64, tenant: &str, entries: &[JournalEntry]) -> Result<(), StateError> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM journal_pending WHERE run_id = ?1", [run])?;
        {
            let mut put =
                tx.prepare("INSERT INTO journal_pending (run_id, tenant, entry_json) VALUES (?1, ?2, ?3)")?;
            for e in entries {
                let json = serde_json::to_string(e).map_err(|e| StateError::Corrupt {
                    what: "journal_pending.entry_json",
                    detail: e.to_string(),
                })?;
                put.execute(params![run, tenant, json])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The intents of runs of `tenant` other than `except` whose answer was never journaled (the
    /// process died mid-call), by run.
    pub fn pending_journal(
        &self,
        tenant: &str,
        except: Option<i64>,
    ) -> Result<BTreeMap<i64, Vec<JournalEntry>>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT run_id, entry_json FROM journal_pending WHERE tenant = ?1 AND (?2 IS NULL OR run_id != ?2)
             ORDER BY rowid",
        )?;
        let rows =
            stmt.query_map(params![tenant, except], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        let mut out: BTreeMap<i64, Vec<JournalEntry>> = BTreeMap::new();
        for row in rows {
            let (run, json) = row?;
            let e = serde_json::from_str(&json).map_err(|e| StateError::Corrupt {
                what: "journal_pending.entry_json",
                detail: e.to_string(),
            })?;
            out.entry(run).or_default().push(e);
        }
        Ok(out)
    }

    /// Journals what a dead run's last call really did (found in the tenant) and forgets its intents.
    pub fn settle_pending(
        &self,
        run: i64,
        tenant: &str,
        at: DateTime<Utc>,
        landed: &[JournalEntry],
    ) -> Result<(), StateError> {
        self.append_journal(run, tenant, at, landed)?;
        self.conn.execute("DELETE FROM journal_pending WHERE run_id = ?1", [run])?;
        Ok(())
    }

    /// Appends the changes one confirmed call made, and forgets the run's intents, in one
    /// transaction.
    pub fn append_journal(
        &self,
        run: i64,
        tenant: &str,
        at: DateTime<Utc>,
        entries: &[JournalEntry],
    ) -> Result<(), StateError> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM journal_pending WHERE run_id = ?1", [run])?;
        {
            let mut put = tx.prepare(
                "INSERT INTO journal (run_id, at, tenant, kind, indicator_id, indicator_type, value, action,
                                      before_json, after_json, feeds_json, reason, actor)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
                         COALESCE(?13, (SELECT actor FROM runs WHERE id = ?1)))",
            )?;
            for e in entries {
                let json = |v: &Option<serde_json::Value>| v.as_ref().map(serde_json::Value::to_string);
                let feeds = serde_json::Value::from(e.feeds.clone()).to_string();
                put.execute(params![
                    run,
                    fmt_ts(at),
                    tenant,
                    e.kind,
                    e.id,
                    e.indicator_type,
                    e.value,
                    e.action,
                    json(&e.before),
                    json(&e.after),
                    feeds,
                    e.reason,
                    e.actor,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// How many journal rows run `run` wrote.
    pub fn journal_count(&self, run: i64) -> Result<u64, StateError> {
        let n: i64 =
            self.conn.query_row("SELECT count(*) FROM journal WHERE run_id = ?1", [run], |r| r.get(0))?;
        Ok(to_u64(n))
    }

    /// The journal of one run, in the order the changes landed.
    pub fn journal_of_run(&self, run: i64) -> Result<Vec<JournalRow>, StateError> {
        let mut out = Vec::new();
        self.journal_query("run_id = ?1", params![run], |r| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }

    /// The journal of one value (any spelling Defender stores is compared case-insensitively),
    /// newest last.
    pub fn journal_of_value(
        &self,
        tenant: &str,
        indicator_type: &str,
        value: &str,
    ) -> Result<Vec<JournalRow>, StateError> {
        let mut out = Vec::new();
        self.journal_query(
            "tenant = ?1 AND indicator_type = ?2 AND lower(value) = lower(?3)",
            params![tenant, indicator_type, value],
            |r| {
                out.push(r);
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Journal rows of `tenant` made by runs after `run`.
    pub fn journal_after_run(&self, tenant: &str, run: i64) -> Result<Vec<JournalRow>, StateError> {
        let mut out = Vec::new();
        self.journal_query("tenant = ?1 AND run_id > ?2", params![tenant, run], |r| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }

    /// Streams the journal (oldest first) of one tenant or all, from `since` on, to `each`; an
    /// error from `each` (e.g. a closed pipe) stops the stream.
    pub fn journal_stream(
        &self,
        tenant: Option<&str>,
        since: Option<DateTime<Utc>>,
        each: impl FnMut(JournalRow) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        self.journal_query(
            "(?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR at >= ?2)",
            params![tenant, since.map(fmt_ts)],
            each,
        )
    }

    /// Deletes journal rows older than `before` (`[sync] journal_retention`); returns how many.
    pub fn prune_journal(&self, before: DateTime<Utc>) -> Result<usize, StateError> {
        Ok(self.conn.execute("DELETE FROM journal WHERE at < ?1", [fmt_ts(before)])?)
    }

    fn journal_query(
        &self,
        filter: &str,
        args: impl rusqlite::Params,
        mut each: impl FnMut(JournalRow) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT seq, run_id, at, tenant, kind, indicator_id, indicator_type, value, action,
                    before_json, after_json, feeds_json, reason, actor
             FROM journal WHERE {filter} ORDER BY seq"
        ))?;
        let mut rows = stmt.query(args)?;
        while let Some(r) = rows.next()? {
            let corrupt = |what: &'static str| {
                move |e: serde_json::Error| StateError::Corrupt { what, detail: e.to_string() }
            };
            let json = |s: Option<String>, what: &'static str| {
                s.map(|s| serde_json::from_str::<serde_json::Value>(&s).map_err(corrupt(what))).transpose()
            };
            let at: String = r.get(2)?;
            let feeds: String = r.get(11)?;
            each(JournalRow {
                seq: r.get(0)?,
                run: r.get(1)?,
                at: parse_ts("journal.at", &at)?,
                tenant: r.get(3)?,
                entry: JournalEntry {
                    kind: r.get(4)?,
                    id: r.get(5)?,
                    indicator_type: r.get(6)?,
                    value: r.get(7)?,
                    action: r.get(8)?,
                    before: json(r.get(9)?, "journal.before_json")?,
                    after: json(r.get(10)?, "journal.after_json")?,
                    feeds: serde_json::from_str(&feeds).map_err(corrupt("journal.feeds_json"))?,
                    reason: r.get(12)?,
                    actor: r.get(13)?,
                },
            })?;
        }
        Ok(())
    }

    // ---- provenance ---------------------------------------------------------------------------

    /// Which feeds carried each pushed indicator of `tenant`: (type, value) -> feed names
    /// (merged over actions).
    pub fn provenance(
        &self,
        tenant: &str,
    ) -> Result<BTreeMap<(String, String), BTreeSet<String>>, StateError> {
        let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for row in self.provenance_rows(tenant)? {
            out.entry((row.indicator_type, row.value)).or_default().extend(row.feeds);
        }
        Ok(out)
    }

    /// Every provenance row of `tenant`, ordered by type, value, action.
    pub fn provenance_rows(&self, tenant: &str) -> Result<Vec<ProvenanceRow>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT indicator_type, value, action, defender_id, feeds_json, first_seen, last_pushed
             FROM provenance WHERE tenant = ?1 ORDER BY indicator_type, value, action",
        )?;
        let rows = stmt.query_map([tenant], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (indicator_type, value, action, defender_id, feeds_json, first, last) = row?;
            let feeds = serde_json::from_str(&feeds_json)
                .map_err(|e| StateError::Corrupt { what: "provenance.feeds_json", detail: e.to_string() })?;
            out.push(ProvenanceRow {
                indicator_type,
                value,
                action,
                defender_id,
                feeds,
                first_seen: parse_ts("provenance.first_seen", &first)?,
                last_pushed: parse_ts("provenance.last_pushed", &last)?,
            });
        }
        Ok(out)
    }

    /// Replaces the provenance of `tenant` with `rows` in one transaction (after a successful
    /// apply). A row already present keeps its earlier `first_seen`.
    pub fn replace_provenance(&self, tenant: &str, rows: &[ProvenanceRow]) -> Result<(), StateError> {
        let tx = self.conn.unchecked_transaction()?;
        let first_seen: BTreeMap<(String, String, String), String> = {
            let mut stmt = tx.prepare(
                "SELECT indicator_type, value, action, first_seen FROM provenance WHERE tenant = ?1",
            )?;
            let rows = stmt.query_map([tenant], |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        tx.execute("DELETE FROM provenance WHERE tenant = ?1", [tenant])?;
        put_provenance(&tx, tenant, rows, |row| {
            let key = (row.indicator_type.clone(), row.value.clone(), row.action.clone());
            first_seen.get(&key).cloned().unwrap_or_else(|| fmt_ts(row.first_seen))
        })?;
        tx.commit()?;
        Ok(())
    }

    /// Adds or replaces the provenance of a few values, leaving the others as they are.
    pub fn upsert_provenance(&self, tenant: &str, rows: &[ProvenanceRow]) -> Result<(), StateError> {
        let tx = self.conn.unchecked_transaction()?;
        put_provenance(&tx, tenant, rows, |row| fmt_ts(row.first_seen))?;
        tx.commit()?;
        Ok(())
    }

    // ---- permanent rejects --------------------------------------------------------------------

    /// Every recorded permanent reject of `tenant`.
    pub fn rejects(&self, tenant: &str) -> Result<Vec<RejectRow>, StateError> {
        Ok(self.reject_records(tenant)?.into_iter().map(|r| r.reject).collect())
    }

    /// Every recorded permanent reject of `tenant`, with first and last rejection times.
    pub fn reject_records(&self, tenant: &str) -> Result<Vec<RejectRecord>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT indicator_type, value, action, fingerprint, reason, detail, first_seen, last_seen
             FROM rejects WHERE tenant = ?1 ORDER BY indicator_type, value, action",
        )?;
        let rows = stmt.query_map([tenant], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (indicator_type, value, action, fingerprint, reason, detail, first, last) = row?;
            out.push(RejectRecord {
                reject: RejectRow { indicator_type, value, action, fingerprint, reason, detail },
                first_seen: parse_ts("rejects.first_seen", &first)?,
                last_seen: parse_ts("rejects.last_seen", &last)?,
            });
        }
        Ok(out)
    }

    /// Records (or refreshes) a permanent reject seen at `at`; an existing row keeps its
    /// `first_seen` and takes the new fingerprint, reason, detail and `last_seen`.
    pub fn record_reject(&self, tenant: &str, r: &RejectRow, at: DateTime<Utc>) -> Result<(), StateError> {
        self.conn.execute(
            "INSERT INTO rejects
                 (tenant, indicator_type, value, action, fingerprint, reason, detail, first_seen, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (tenant, indicator_type, value, action) DO UPDATE SET
                 fingerprint = excluded.fingerprint, reason = excluded.reason,
                 detail = excluded.detail, last_seen = excluded.last_seen",
            params![
                tenant,
                r.indicator_type,
                r.value,
                r.action,
                r.fingerprint,
                r.reason,
                r.detail,
                fmt_ts(at),
                fmt_ts(at),
            ],
        )?;
        Ok(())
    }

    /// Forgets a reject (the value was accepted later, or left the feeds). Returns whether one existed.
    pub fn clear_reject(
        &self,
        tenant: &str,
        indicator_type: &str,
        value: &str,
        action: &str,
    ) -> Result<bool, StateError> {
        let n = self.conn.execute(
            "DELETE FROM rejects WHERE tenant = ?1 AND indicator_type = ?2 AND value = ?3 AND action = ?4",
            params![tenant, indicator_type, value, action],
        )?;
        Ok(n > 0)
    }

    // ---- API call history ---------------------------------------------------------------------

    /// The recorded API calls of one tenant and client: (family, epoch milliseconds), oldest first.
    pub fn load_api_calls(&self, tenant: &str, client_id: &str) -> Result<Vec<(String, i64)>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT family, at_ms FROM api_calls WHERE tenant = ?1 AND client_id = ?2 ORDER BY at_ms, rowid",
        )?;
        let rows = stmt.query_map(params![tenant, client_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Replaces the call history of one tenant and client with `calls` (the loaded history plus
    /// this run's calls), dropping every row older than [`API_CALL_RETENTION_MS`] before `now_ms`.
    pub fn save_api_calls(
        &self,
        tenant: &str,
        client_id: &str,
        calls: &[(String, i64)],
        now_ms: i64,
    ) -> Result<(), StateError> {
        let cutoff = now_ms.saturating_sub(API_CALL_RETENTION_MS);
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "DELETE FROM api_calls WHERE (tenant = ?1 AND client_id = ?2) OR at_ms < ?3",
            params![tenant, client_id, cutoff],
        )?;
        {
            let mut put = tx.prepare(
                "INSERT INTO api_calls (tenant, client_id, family, at_ms) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (family, at) in calls.iter().filter(|(_, at)| *at >= cutoff) {
                put.execute(params![tenant, client_id, family, at])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// Creates `path` with mode 0600 if it does not exist, and tightens an existing file to 0600.
#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let meta = file.metadata()?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "state database was group/world accessible; setting mode 0600");
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Non-unix: the file is created by SQLite with the platform's default ACL.
#[cfg(not(unix))]
fn create_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Timestamps are stored as RFC 3339 text (UTC, milliseconds) so the file reads well in `sqlite3`.
/// Writes provenance rows of `tenant` (a row already there gets the new feeds, id and last push,
/// and keeps its `first_seen`); `first` gives a new row's `first_seen`.
fn put_provenance(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    rows: &[ProvenanceRow],
    first: impl Fn(&ProvenanceRow) -> String,
) -> Result<(), StateError> {
    let mut put = tx.prepare(
        "INSERT INTO provenance
             (tenant, indicator_type, value, action, defender_id, feeds_json, first_seen, last_pushed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (tenant, indicator_type, value, action) DO UPDATE SET
             defender_id = excluded.defender_id, feeds_json = excluded.feeds_json,
             last_pushed = excluded.last_pushed",
    )?;
    for row in rows {
        let feeds = serde_json::to_string(&row.feeds)
            .map_err(|e| StateError::Corrupt { what: "provenance.feeds_json", detail: e.to_string() })?;
        put.execute(params![
            tenant,
            row.indicator_type,
            row.value,
            row.action,
            row.defender_id,
            feeds,
            first(row),
            fmt_ts(row.last_pushed),
        ])?;
    }
    Ok(())
}

fn fmt_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(what: &'static str, s: &str) -> Result<DateTime<Utc>, StateError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StateError::Corrupt { what, detail: format!("{s:?}: {e}") })
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_790_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn fresh_database_is_at_latest_version() {
        let s = StateStore::open_in_memory().unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as u32);
    }

    #[test]
    fn migration_8_moves_cached_bodies_out_of_the_feed_cache_row() {
        // A database at version 7 with a document feed's copy and a MISP feed's (empty) row.
        let conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..7] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch("PRAGMA user_version = 7").unwrap();
        for (feed, body) in [("doc", &b"45.0.0.1\n"[..]), ("misp", &b""[..])] {
            conn.execute(
                "INSERT INTO feed_cache (feed, source, body, fetched_at, good_at, bytes, accepted, rejected)
                 VALUES (?1, 'x', ?2, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 9, 1, 0)",
                params![feed, body],
            )
            .unwrap();
        }
        let mut s = StateStore { conn, path: PathBuf::from(":memory:") };
        s.migrate().unwrap();
        let doc = s.feed_cache("doc").unwrap().unwrap();
        assert_eq!((doc.body.as_slice(), doc.body_len, doc.body_sha256), (&b"45.0.0.1\n"[..], 9, None));
        let misp = s.feed_cache_head("misp").unwrap().unwrap();
        assert_eq!((misp.body_len, misp.body.len()), (0, 0));
        let left: i64 =
            s.conn.query_row("SELECT sum(length(body)) FROM feed_cache", [], |r| r.get(0)).unwrap();
        assert_eq!(left, 0, "feed_cache.body is left empty");
    }

    #[test]
    fn migrate_twice_is_a_no_op() {
        let mut s = StateStore::open_in_memory().unwrap();
        s.set_cursor("k", "v").unwrap();
        s.migrate().unwrap();
        assert_eq!(s.cursor("k").unwrap().as_deref(), Some("v"));
    }

    #[test]
    fn feed_cache_round_trip_and_touch() {
        let s = StateStore::open_in_memory().unwrap();
        assert!(s.feed_cache("f").unwrap().is_none());
        assert!(!s.touch_feed("f", t(0)).unwrap());
        let c = CachedFeed {
            feed: "f".into(),
            source: "https://example.com/x".into(),
            body: b"1.2.3.4\n".to_vec(),
            body_len: 8,
            body_sha256: Some(hex::encode(sha2::Sha256::digest(b"1.2.3.4\n"))),
            validators: Validators { etag: Some("\"abc\"".into()), last_modified: None },
            fetched_at: t(0),
            good_at: t(0),
            bytes: 8,
            accepted: 1,
            rejected: 0,
        };
        s.save_good_feed(&c).unwrap();
        assert_eq!(s.feed_cache("f").unwrap().as_ref(), Some(&c));
        assert!(s.touch_feed("f", t(60)).unwrap());
        let got = s.feed_cache("f").unwrap().unwrap();
        assert_eq!(got.good_at, t(60));
        assert_eq!(got.fetched_at, t(60));
        assert_eq!(got.body, c.body);
        // Without the body: its size and hash only.
        let head = s.feed_cache_head("f").unwrap().unwrap();
        assert!(head.body.is_empty());
        assert_eq!((head.body_len, head.body_sha256.as_ref()), (8, c.body_sha256.as_ref()));
    }

    #[test]
    fn feed_bodies_stream_in_and_out_through_blob_io() {
        let s = StateStore::open_in_memory().unwrap();
        let body: Vec<u8> =
            (0..300_000u32).flat_map(|i| format!("45.0.{}.{}\n", i % 250, i % 7).into_bytes()).collect();
        let sha = hex::encode(sha2::Sha256::digest(&body));
        let row = CachedFeed {
            feed: "f".into(),
            source: "https://example.com/x".into(),
            body: Vec::new(),
            body_len: 0,
            body_sha256: None,
            validators: Validators::default(),
            fetched_at: t(0),
            good_at: t(0),
            bytes: body.len() as u64,
            accepted: 1,
            rejected: 0,
        };
        s.save_good_feed_from(&row, &mut body.as_slice(), body.len() as u64, &sha).unwrap();
        let got = s.feed_cache("f").unwrap().unwrap();
        assert_eq!(got.body, body);
        assert_eq!((got.body_len, got.body_sha256.as_deref()), (body.len() as u64, Some(sha.as_str())));
        let mut out = Vec::new();
        assert_eq!(s.copy_feed_body("f", &mut out).unwrap(), Some(body.len() as u64));
        assert_eq!(out, body);
        assert_eq!(s.copy_feed_body("g", &mut out).unwrap(), None);
        // A body shorter than announced leaves the previous copy in place.
        assert!(s.save_good_feed_from(&row, &mut &b"1.2.3.4\n"[..], 100, "x").is_err());
        assert_eq!(s.feed_cache("f").unwrap().unwrap().body, body);
        // A row from before the hash column: no hash, so the next download counts as changed.
        s.conn.execute("UPDATE feed_cache SET body_sha256 = NULL", []).unwrap();
        assert_eq!(s.feed_cache_head("f").unwrap().unwrap().body_sha256, None);
    }

    #[test]
    fn misp_events_replace_drops_missing() {
        let s = StateStore::open_in_memory().unwrap();
        s.save_misp_event("m", "a", 1, b"A").unwrap();
        s.save_misp_event("m", "b", 1, b"B").unwrap();
        s.save_misp_event("other", "a", 9, b"X").unwrap();
        let mut next = BTreeMap::new();
        next.insert("b".to_owned(), (2, b"B2".to_vec()));
        next.insert("c".to_owned(), (1, b"C".to_vec()));
        s.replace_misp_events("m", &next).unwrap();
        assert_eq!(s.misp_events("m").unwrap(), next);
        assert_eq!(s.misp_events("other").unwrap().len(), 1);
    }

    #[test]
    fn api_calls_prune_old_rows_of_every_client() {
        let s = StateStore::open_in_memory().unwrap();
        let now = 10 * API_CALL_RETENTION_MS;
        s.save_api_calls("t", "other", &[("list".into(), now - API_CALL_RETENTION_MS)], now - 5).unwrap();
        let calls = vec![
            ("token".to_owned(), now - API_CALL_RETENTION_MS - 1),
            ("import".to_owned(), now - 1000),
            ("list".to_owned(), now),
        ];
        s.save_api_calls("t", "c", &calls, now + 10).unwrap();
        assert_eq!(s.load_api_calls("t", "c").unwrap(), calls[1..].to_vec());
        // The other client's row fell out of the window of this save and was pruned.
        assert!(s.load_api_calls("t", "other").unwrap().is_empty());
    }

    fn entry(value: &str) -> JournalEntry {
        JournalEntry {
            kind: "create".into(),
            id: Some("7".into()),
            indicator_type: "DomainName".into(),
            value: value.into(),
            action: "Block".into(),
            before: None,
            after: Some(serde_json::json!({"indicatorValue": value})),
            feeds: vec!["f".into()],
            reason: "new-in-feed".into(),
            actor: None,
        }
    }

    #[test]
    fn journal_is_append_only_and_pruned_by_age() {
        let s = StateStore::open_in_memory().unwrap();
        let run = s.begin_run("t", false, t(0)).unwrap();
        s.append_journal(run, "t", t(0), &[entry("old.example")]).unwrap();
        s.append_journal(run, "t", t(100), &[entry("new.example")]).unwrap();
        let rows = s.journal_of_run(run).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].entry, entry("new.example"));
        assert_eq!(s.journal_count(run).unwrap(), 2);
        assert!(s.conn.execute("UPDATE journal SET reason = 'manual'", []).is_err(), "rows are never edited");
        assert_eq!(s.prune_journal(t(50)).unwrap(), 1);
        let left = s.journal_of_run(run).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].entry.value, "new.example");
        assert_eq!(s.journal_of_value("t", "DomainName", "NEW.example").unwrap().len(), 1);
    }

    #[test]
    fn intents_stay_pending_until_the_answer_is_journaled_or_settled() {
        let s = StateStore::open_in_memory().unwrap();
        let dead = s.begin_run("t", false, t(0)).unwrap();
        s.intend_journal(dead, "t", &[entry("a.example"), entry("b.example")]).unwrap();
        let live = s.begin_run("t", false, t(10)).unwrap();
        s.intend_journal(live, "t", &[entry("c.example")]).unwrap();
        s.append_journal(live, "t", t(11), &[entry("c.example")]).unwrap();
        let pending = s.pending_journal("t", Some(live)).unwrap();
        assert_eq!(pending.keys().copied().collect::<Vec<_>>(), vec![dead]);
        assert_eq!(pending[&dead].len(), 2);
        assert!(s.pending_journal("other", None).unwrap().is_empty());
        s.settle_pending(dead, "t", t(20), &[entry("b.example")]).unwrap();
        assert!(s.pending_journal("t", None).unwrap().is_empty());
        assert_eq!(s.journal_of_run(dead).unwrap()[0].entry.value, "b.example");
    }

    #[test]
    fn corrupt_timestamp_is_an_error_not_a_panic() {
        let s = StateStore::open_in_memory().unwrap();
        s.begin_run("t", false, t(0)).unwrap();
        s.conn.execute("UPDATE runs SET started_at = 'yesterday'", []).unwrap();
        let err = s.runs(None, 10).unwrap_err();
        assert!(matches!(err, StateError::Corrupt { what: "runs.started_at", .. }), "{err}");
    }
}
