//! `iocsync purge`: delete every indicator iocsync owns (and nothing else).

use crate::cli::PurgeArgs;
use crate::config::Config;
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
        let ids: Vec<String> = listed.into_iter().filter(|i| config.owns(tenant, i)).map(|i| i.id).collect();
        let mut report =
            PurgeReport { tenant: tenant.name.clone(), dry_run: !args.yes, deleted: 0, failed: 0 };
        if !args.yes {
            report.deleted = ids.len() as u64;
            return anyhow::Ok(report);
        }
        for chunk in ids.chunks(DELETE_BATCH) {
            match conn.client.batch_delete(chunk).await {
                Ok(_) => report.deleted += chunk.len() as u64,
                Err(e) => {
                    tracing::error!("batch delete failed: {e}");
                    report.failed += chunk.len() as u64;
                }
            }
        }
        Ok(report)
    }
    .await;
    conn.close().await;
    result
}
