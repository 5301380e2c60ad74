//! `iocsync history`: past runs from the state database.

use crate::cli::HistoryArgs;
use crate::config::Config;
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
}

/// Reads the newest runs.
pub fn run(config: &Config, args: &HistoryArgs) -> anyhow::Result<Vec<HistoryEntry>> {
    if !config.sync.state.exists() {
        return Ok(Vec::new());
    }
    let store = crate::engine::open_store(config)?;
    let rows = crate::engine::lock(&store).runs(args.tenant.tenant.as_deref(), args.limit)?;
    Ok(rows
        .into_iter()
        .map(|r| {
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
            }
        })
        .collect())
}
