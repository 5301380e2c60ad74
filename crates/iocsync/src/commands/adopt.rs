//! `iocsync adopt`: take over indicators made by an older tool.
//!
//! Defender keeps `createdBy` and the create-only `application` for an indicator's whole life,
//! and an import of the same type, value and action updates the existing row in place. So the
//! only way to own such an indicator is to delete it and create it again under iocsync's
//! identity, with the same action, metadata and expiry. Deletes go first (the import would
//! otherwise update the old row); any import failure is reported value by value. The new rows
//! carry iocsync's ownership marker (and no `application`: that text is shown to end users), and
//! nothing is deleted unless the tenant is known to keep the marker (see `engine::marker`).

use crate::cli::AdoptArgs;
use crate::config::Config;
use crate::engine::journal::{JournalSink, reason};
use anyhow::Context;
use iocsync_core::batch::{DELETE_BATCH, IMPORT_BATCH};
use iocsync_core::marker::MarkerField;
use iocsync_defender::ImportItem;
use serde::Serialize;

/// What adopt did (or would do without `--yes`).
#[derive(Debug, Serialize)]
pub struct AdoptReport {
    /// Tenant name.
    pub tenant: String,
    /// The creator whose indicators are taken over.
    pub created_by: String,
    /// True without `--yes`.
    pub dry_run: bool,
    /// Indicators re-created under iocsync's identity (or that would be).
    pub adopted: u64,
    /// Indicators that could not be re-created (listed in `failures`).
    pub failed: u64,
    /// `type value: reason` for each failure.
    pub failures: Vec<String>,
}

/// Adopts the matching indicators of the first selected tenant.
pub async fn run(config: &Config, args: &AdoptArgs) -> anyhow::Result<AdoptReport> {
    let tenant = config.one_tenant(args.tenant.tenant.as_deref())?;
    let marker = config.marker();
    let conn = crate::connect::connect(config, tenant).await?;
    let result = async {
        let listed = conn.client.list_all().await?;
        let candidates: Vec<_> = listed
            .iter()
            .filter(|i| i.created_by.as_deref() == Some(args.created_by.as_str()))
            .filter(|i| !config.owns(tenant, i))
            .filter(|i| match &args.title_prefix {
                Some(p) => i.title.as_deref().is_some_and(|t| t.starts_with(p.as_str())),
                None => true,
            })
            .cloned()
            .collect();
        let mut report = AdoptReport {
            tenant: tenant.name.clone(),
            created_by: args.created_by.clone(),
            dry_run: !args.yes,
            adopted: 0,
            failed: 0,
            failures: Vec::new(),
        };
        // Never delete what could not be created again: check each one first and leave the
        // others in place, reported.
        let now = chrono::Utc::now();
        let mut targets = Vec::new();
        for i in candidates {
            match recreatable(&i, now) {
                Ok(()) => targets.push(i),
                Err(why) => {
                    report.failed += 1;
                    report.failures.push(format!("{} {}: left in place: {why}", i.indicator_type, i.indicator_value));
                }
            }
        }
        if !args.yes {
            report.adopted = targets.len() as u64;
            return anyhow::Ok(report);
        }
        if !targets.is_empty() {
            crate::engine::marker::ensure(&conn.client, &tenant.client_id, &marker, &listed).await?;
        }
        let mut adopted = Vec::new();
        // Journaled as a run of its own (reason `adopt`): the old rows deleted, the new ones created.
        let journal = JournalSink::begin(config, &tenant.name)?;
        for (n, chunk) in targets.chunks(DELETE_BATCH.min(IMPORT_BATCH)).enumerate() {
            let ids: Vec<String> = chunk.iter().map(|i| i.id.clone()).collect();
            let out = match conn.client.batch_delete(&ids).await {
                Ok(out) => out,
                Err(e) => {
                    journal.finish("error", crate::Exit::Error, &report);
                    return Err(e.into());
                }
            };
            let gone: Vec<_> =
                chunk.iter().filter(|i| out.deleted.contains(&i.id)).map(|i| (i, None, None)).collect();
            journal.listed("delete", reason::ADOPT, &gone);
            let items: Vec<ImportItem> = chunk
                .iter()
                .map(|i| {
                    let action = i.action.current();
                    ImportItem {
                        indicator_value: i.indicator_value.clone(),
                        indicator_type: i.indicator_type.clone(),
                        action: action.clone(),
                        title: i.title.clone().unwrap_or_else(|| i.indicator_value.clone()),
                        description: {
                            let d = i.description.clone().unwrap_or_else(|| "Adopted by iocsync".to_owned());
                            match marker.field {
                                MarkerField::ExternalId => d,
                                MarkerField::Description => iocsync_core::marker::with_description_suffix(
                                    &d,
                                    &marker.tag,
                                    iocsync_core::policy::DESCRIPTION_MAX_CHARS,
                                ),
                            }
                        },
                        severity: i.severity.clone(),
                        expiration_time: i.expiration_time,
                        recommended_actions: i.recommended_actions.clone(),
                        // Audit (and a legacy Alert, now Audit) requires an alert.
                        generate_alert: if action == iocsync_defender::Action::Audit {
                            Some(true)
                        } else {
                            i.generate_alert
                        },
                        rbac_group_names: i.rbac_group_names.clone(),
                        mitre_techniques: i.mitre_techniques.clone(),
                        educate_url: i.educate_url.clone(),
                        external_id: (marker.field == MarkerField::ExternalId).then(|| marker.external_id()),
                        ..ImportItem::default()
                    }
                })
                .collect();
            match conn.client.import(&items).await {
                Ok(outcomes) => {
                    let created: Vec<_> = chunk
                        .iter()
                        .zip(items.iter().zip(&outcomes))
                        .filter(|(_, (_, o))| !o.is_failed)
                        .map(|(i, (item, o))| (i, serde_json::to_value(item).ok(), o.id.clone()))
                        .collect();
                    journal.listed("create", reason::ADOPT, &created);
                    for (item, o) in items.iter().zip(outcomes) {
                        if o.is_failed {
                            report.failed += 1;
                            report.failures.push(format!(
                                "{} {}: {}",
                                item.indicator_type,
                                item.indicator_value,
                                o.failure_reason.unwrap_or_default()
                            ));
                        } else {
                            report.adopted += 1;
                            adopted.push(crate::state::ProvenanceRow {
                                indicator_type: item.indicator_type.clone(),
                                value: item.indicator_value.clone(),
                                action: item.action.to_string(),
                                defender_id: o.id.clone(),
                                feeds: [crate::state::ADOPTED_ORIGIN.to_owned()].into(),
                                first_seen: now,
                                last_pushed: now,
                            });
                        }
                    }
                }
                Err(e) => {
                    // Stop: these were deleted and not re-created; say exactly which, and do not
                    // delete further batches.
                    for item in &items {
                        report.failed += 1;
                        report.failures.push(format!(
                            "{} {}: deleted but not re-created ({e}); run `iocsync sync` or re-create it by hand",
                            item.indicator_type, item.indicator_value
                        ));
                    }
                    let untouched = targets.len().saturating_sub((n + 1) * DELETE_BATCH.min(IMPORT_BATCH));
                    if untouched > 0 {
                        report.failures.push(format!("{untouched} more indicators were left untouched"));
                    }
                    break;
                }
            }
        }
        let exit = if report.failed > 0 { crate::Exit::Partial } else { crate::Exit::Ok };
        journal.finish(if report.failed > 0 { "partial" } else { "ok" }, exit, &report);
        // Adopted values are of known origin: managed from now on, not protected as unknown.
        if !adopted.is_empty() {
            let store = crate::engine::open_store(config)?;
            crate::engine::lock(&store)
                .upsert_provenance(&tenant.name, &adopted)
                .context("recording the adopted indicators in the state database")?;
        }
        Ok(report)
    }
    .await;
    conn.close().await;
    result
}

/// Whether an indicator can be created again exactly as it is (type, action for the type,
/// expiry in the future); adopt deletes only those.
fn recreatable(i: &iocsync_defender::Indicator, now: chrono::DateTime<chrono::Utc>) -> Result<(), String> {
    let kind = i
        .indicator_type
        .parse::<iocsync_ioc::IndicatorType>()
        .map_err(|_| format!("type {} cannot be created through the API", i.indicator_type))?;
    let action = iocsync_core::model::Action::from_tenant(i.action.current().as_str())
        .ok_or_else(|| format!("unknown action {}", i.action.as_str()))?;
    if !iocsync_core::model::action_allowed(kind, action) {
        return Err(format!("action {action} is not allowed for {kind} (it would be refused on re-create)"));
    }
    if i.expiration_time.is_some_and(|t| t <= now) {
        return Err("already expired".to_owned());
    }
    Ok(())
}
