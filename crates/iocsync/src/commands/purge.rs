//! `iocsync purge`: delete every indicator iocsync owns (and nothing else).

use crate::cli::PurgeArgs;
use crate::config::Config;
use crate::engine::journal::{JournalSink, reason};
use iocsync_core::batch::DELETE_BATCH;
use serde::Serialize;

/// What purge did (or would do without `--yes`).
#[derive(Debug, Serialize)]
pub struct PurgeReport {
    /// Tenant name.
    pub tenant: String,
    /// True without `--yes`: nothing was deleted.
    pub dry_run: bool,
    /// Owned indicators deleted (or that would be).
    pub deleted: u64,
    /// Owned indicators whose delete call failed.
    pub failed: u64,
}

/// Deletes the owned indicators of the first selected tenant, in batches of 500.
pub async fn run(config: &Config, args: &PurgeArgs) -> anyhow::Result<PurgeReport> {
    let tenant = config.one_tenant(args.tenant.tenant.as_deref())?;
    let conn = crate::connect::connect(config, tenant).await?;
    let result = async {
        let listed = conn.client.list_all().await?;
        let owned: std::collections::HashMap<String, &iocsync_defender::Indicator> =
            listed.iter().filter(|i| config.owns(tenant, i)).map(|i| (i.id.clone(), i)).collect();
        let mut ids: Vec<String> = owned.keys().cloned().collect();
        ids.sort_by(|a, b| iocsync_core::plan::id_cmp(a, b));
        let mut report =
            PurgeReport { tenant: tenant.name.clone(), dry_run: !args.yes, deleted: 0, failed: 0 };
        if !args.yes {
            report.deleted = ids.len() as u64;
            return anyhow::Ok(report);
        }
        // Journaled as a run of its own (reason `purge`): `undo --run ID` can bring them back.
        let journal = JournalSink::begin(config, &tenant.name)?;
        for chunk in ids.chunks(DELETE_BATCH) {
            match conn.client.batch_delete(chunk).await {
                Ok(out) => {
                    report.deleted += chunk.len() as u64;
                    let rows: Vec<_> =
                        out.deleted.iter().filter_map(|id| owned.get(id)).map(|i| (*i, None, None)).collect();
                    journal.listed("delete", reason::PURGE, &rows);
                }
                Err(e) => {
                    tracing::error!("batch delete failed: {e}");
                    report.failed += chunk.len() as u64;
                }
            }
        }
        let exit = if report.failed > 0 { crate::Exit::Partial } else { crate::Exit::Ok };
        journal.finish(if report.failed > 0 { "partial" } else { "ok" }, exit, &report);
        Ok(report)
    }
    .await;
    conn.close().await;
    result
}
