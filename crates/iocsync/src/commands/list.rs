//! `iocsync list`: inventory of the tenant's indicators.

use crate::cli::ListArgs;
use crate::config::Config;
use serde::Serialize;
use std::collections::BTreeMap;

/// One indicator as listed.
#[derive(Debug, Serialize)]
pub struct ListedIndicator {
    /// Defender id.
    pub id: String,
    /// `indicatorType`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Value.
    pub value: String,
    /// Action.
    pub action: String,
    /// Creator (app id or UPN).
    pub created_by: Option<String>,
    /// `application` (the text end users see in block notifications).
    pub application: Option<String>,
    /// `externalId` (where iocsync's ownership marker lives).
    pub external_id: Option<String>,
    /// Whether iocsync owns it.
    pub owned: bool,
    /// Expiry (RFC 3339), or none.
    pub expiration: Option<String>,
    /// With `--hits`: events where Defender acted on it, since hits were first counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hits: Option<u64>,
    /// With `--hits`: distinct devices of those events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hit_devices: Option<u64>,
    /// With `--hits`: the latest such event (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_hit: Option<String>,
}

/// The listing of one tenant.
#[derive(Debug, Serialize)]
pub struct ListReport {
    /// Tenant name.
    pub tenant: String,
    /// Indicators visible in the tenant.
    pub total: usize,
    /// The ones shown (owned, all, or duplicates), sorted by type, value, action.
    pub indicators: Vec<ListedIndicator>,
}

/// Lists the first selected tenant.
pub async fn run(config: &Config, args: &ListArgs) -> anyhow::Result<ListReport> {
    let tenant = config.one_tenant(args.tenant.tenant.as_deref())?;
    let conn = crate::connect::connect(config, tenant).await?;
    let listed = conn.client.list_all().await;
    conn.close().await;
    let listed = listed?;
    let total = listed.len();
    let mut rows: Vec<ListedIndicator> = listed
        .into_iter()
        .map(|i| {
            let owned = config.owns(tenant, &i);
            ListedIndicator {
                id: i.id,
                kind: i.indicator_type,
                value: i.indicator_value,
                action: i.action.as_str().to_owned(),
                created_by: i.created_by,
                application: i.application,
                external_id: i.external_id,
                owned,
                expiration: i.expiration_time.map(|t| t.to_rfc3339()),
                hits: None,
                hit_devices: None,
                last_hit: None,
            }
        })
        .collect();
    if args.duplicates {
        rows = duplicates(rows);
    } else if !args.all {
        rows.retain(|r| r.owned);
    }
    rows.sort_by(|a, b| {
        (&a.kind, a.value.to_ascii_lowercase(), &a.action).cmp(&(
            &b.kind,
            b.value.to_ascii_lowercase(),
            &b.action,
        ))
    });
    if args.hits {
        let store = crate::engine::open_store(config)?;
        let records = crate::engine::lock(&store).hit_records(&tenant.name)?;
        let by_value: BTreeMap<(String, String), &crate::state::HitRecord> =
            records.iter().map(|r| ((r.indicator_type.clone(), r.value.to_ascii_lowercase()), r)).collect();
        for row in &mut rows {
            let r = by_value.get(&(row.kind.clone(), row.value.to_ascii_lowercase()));
            row.hits = Some(r.map_or(0, |r| r.hits));
            row.hit_devices = Some(r.map_or(0, |r| r.devices.len() as u64));
            row.last_hit = r.and_then(|r| r.last_hit).map(|t| t.to_rfc3339());
        }
        // Most hit first; the order above breaks ties.
        rows.sort_by_key(|r| std::cmp::Reverse(r.hits));
    }
    Ok(ListReport { tenant: tenant.name.clone(), total, indicators: rows })
}

/// Keeps the values held under several actions or by several creators.
fn duplicates(rows: Vec<ListedIndicator>) -> Vec<ListedIndicator> {
    let mut groups: BTreeMap<(String, String), Vec<ListedIndicator>> = BTreeMap::new();
    for r in rows {
        groups.entry((r.kind.clone(), r.value.to_ascii_lowercase())).or_default().push(r);
    }
    groups.into_values().filter(|g| g.len() > 1).flatten().collect()
}
