//! `iocsync history`: past runs from the state database.

use crate::cli::{ExportFormat, HistoryArgs};
use crate::config::Config;
use crate::state::JournalRow;
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One past run.
#[derive(Debug, Serialize)]
pub struct HistoryEntry {
    /// Run number.
    pub id: i64,
    /// Tenant name.
    pub tenant: String,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// End time, if it finished.
    pub finished_at: Option<String>,
    /// ok, partial, brake, error, dry-run, or running (never finished: killed).
    pub status: String,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// One-line summary of the counts.
    pub summary: String,
    /// The full report, when recorded.
    pub report: Option<serde_json::Value>,
    /// Who started the run (a console user); absent for the schedule or the CLI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// Reads the newest runs.
pub fn run(config: &Config, args: &HistoryArgs) -> anyhow::Result<Vec<HistoryEntry>> {
    if !config.sync.state.exists() {
        return Ok(Vec::new());
    }
    let store = crate::engine::open_store(config)?;
    let s = crate::engine::lock(&store);
    let rows = match args.run {
        Some(id) => s.run(id)?.into_iter().collect(),
        None => s.runs(args.tenant.tenant.as_deref(), args.limit)?,
    };
    Ok(rows
        .into_iter()
        .map(|mut r| {
            // A run that never finished (killed) but was followed by another is over: partial
            // when some of its writes landed (its journal shows which).
            if r.status == "running" && s.later_run_exists(&r.tenant, r.id).unwrap_or(false) {
                let landed = s.journal_count(r.id).is_ok_and(|n| n > 0);
                r.status = if landed { "partial" } else { "killed" }.to_owned();
            }
            let report: Option<serde_json::Value> =
                r.report_json.as_deref().and_then(|j| serde_json::from_str(j).ok());
            let summary = report
                .as_ref()
                .and_then(|rep| {
                    let c = rep.get("counts")?;
                    Some(format!(
                        "create {} update {} renew {} replace {} delete {} unchanged {}",
                        c["create"], c["update"], c["renew"], c["replace"], c["delete"], c["unchanged"]
                    ))
                })
                .unwrap_or_default();
            HistoryEntry {
                id: r.id,
                tenant: r.tenant,
                started_at: r.started_at.to_rfc3339(),
                finished_at: r.finished_at.map(|t| t.to_rfc3339()),
                status: r.status,
                exit_code: r.exit_code,
                summary,
                report,
                actor: r.actor,
            }
        })
        .collect())
}

/// One run and its journal of changes (`history --run ID --changes`).
#[derive(Debug, Serialize)]
pub struct RunChanges {
    /// The run.
    pub run: HistoryEntry,
    /// Its changes, in the order Defender confirmed them.
    pub changes: Vec<JournalRow>,
}

/// The journal of one run.
pub fn changes(config: &Config, args: &HistoryArgs) -> anyhow::Result<RunChanges> {
    let Some(id) = args.run else { anyhow::bail!("--changes needs --run ID") };
    let mut runs = run(config, args)?;
    let Some(entry) = runs.pop() else {
        anyhow::bail!("no run {id} in the state database {}", config.sync.state.display())
    };
    if args.tenant.tenant.as_deref().is_some_and(|t| t != entry.tenant) {
        anyhow::bail!(
            "run {id} belongs to tenant {}, not {}",
            entry.tenant,
            args.tenant.tenant.as_deref().unwrap_or("")
        );
    }
    let store = crate::engine::open_store(config)?;
    let changes = crate::engine::lock(&store).journal_of_run(id)?;
    Ok(RunChanges { run: entry, changes })
}

/// Parses `--since`: an RFC 3339 time, or an age such as `7d` or `12h` before `now`.
pub fn parse_since(s: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let age = humantime::parse_duration(s)
        .with_context(|| format!("--since {s:?}: expected an RFC 3339 time or an age such as 7d"))?;
    Ok(now - chrono::Duration::from_std(age).context("--since: age too large")?)
}

/// Streams the journal to stdout (through `output`), oldest first, row by row.
pub fn export(config: &Config, args: &HistoryArgs, format: ExportFormat) -> anyhow::Result<()> {
    let since = args.since.as_deref().map(|s| parse_since(s, Utc::now())).transpose()?;
    let mut out = crate::output::JournalExport::start(format);
    if !config.sync.state.exists() {
        return Ok(());
    }
    let store = crate::engine::open_store(config)?;
    crate::engine::lock(&store).journal_stream(args.tenant.tenant.as_deref(), since, |row| {
        out.row(&row);
        Ok(())
    })?;
    Ok(())
}
