//! Proof that the tenant keeps iocsync's ownership marker (DESIGN principle 1).
//!
//! iocsync recognises its indicators by `createdBy` *and* the marker `iocsync:{owner_tag}` in
//! `externalId` (or a description suffix). A tenant that silently drops the marker would make
//! every indicator iocsync creates look foreign on the next run: never deleted, never renewed,
//! and imported again as a duplicate key it may no longer touch. So before a run writes anything
//! it needs proof that the marker survives:
//!
//! 1. the listing already holds an indicator made by this app that carries the marker in the
//!    configured field (the common case, no extra call); or else
//! 2. a canary: one harmless indicator (a FileSha256 of the text `iocsync-canary`, action Audit,
//!    expiring in an hour) is submitted with the marker, read back by id and deleted. `iocsync
//!    check` always runs it; `sync` and `adopt` run it only when the listing proves nothing and
//!    the plan has something to import.
//!
//! When the canary comes back without the marker, `sync` (and `adopt --yes`) write nothing and
//! fail (exit 1) naming the fallback, `[sync] marker_field = "description"`. Nothing is cached in
//! the state database: the first successful write leaves marked indicators in the tenant, which
//! prove it on every later run.

use anyhow::Context as _;
use chrono::Utc;
use iocsync_core::marker::{Marker, MarkerField};
use iocsync_defender::{Action, DefenderClient, ImportItem, Indicator};
use serde::Serialize;

/// Type of the canary indicator.
pub const CANARY_TYPE: &str = "FileSha256";
/// Value of the canary indicator: SHA-256 of the ASCII text `iocsync-canary` (no file has it).
pub const CANARY_VALUE: &str = "dcea6dcc2a6dd834095d790bbe515cddf8e091311506833d7466e603c8ddfc83";
/// Action of the canary indicator: Audit (alerts only, never blocks).
pub const CANARY_ACTION: &str = "Audit";

/// The note of a dry run that would import into a tenant where no marked row proves the marker.
pub const UNPROVEN_NOTE: &str = "no indicator of this app carries the ownership marker yet: before it imports, \
     `sync` creates, reads back and deletes one canary indicator, and writes nothing if the marker is lost \
     (`iocsync check` runs the same canary)";

/// What the canary showed (`iocsync check --output json`: the `canary` key).
#[derive(Debug, Clone, Serialize)]
pub struct CanaryResult {
    /// True when the marker came back intact.
    pub ok: bool,
    /// `externalId` or `description`.
    pub marker_field: String,
    /// The marker sent: `iocsync:{owner_tag}` (or the description suffix).
    pub marker: String,
    /// `indicatorType` of the canary.
    #[serde(rename = "type")]
    pub kind: String,
    /// `indicatorValue` of the canary.
    pub value: String,
    /// Defender id of the canary, when it was created.
    pub id: Option<String>,
    /// True when the canary was deleted again.
    pub deleted: bool,
    /// What was seen, in words.
    pub detail: String,
}

/// How a run knows the marker survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerProof {
    /// The listing holds an indicator of this app carrying the marker.
    Listing,
    /// A canary created, read back and deleted just now.
    Canary,
}

/// True for a listed indicator that is this app's canary (left behind by an interrupted check):
/// it is neither desired nor to be deleted by a plan; it expires by itself within the hour.
pub fn is_own_canary(i: &Indicator, client_id: &str) -> bool {
    i.indicator_type == CANARY_TYPE
        && i.indicator_value.eq_ignore_ascii_case(CANARY_VALUE)
        && i.action.as_str() == CANARY_ACTION
        && i.created_by.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(client_id))
}

/// True when `listed` holds an indicator made by `client_id` that carries `marker` in its field.
pub fn proven_by_listing(listed: &[Indicator], client_id: &str, marker: &Marker) -> bool {
    listed.iter().any(|i| {
        i.created_by.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(client_id))
            && marker.carried_by(i.external_id.as_deref(), i.description.as_deref())
    })
}

/// The error a run gives when the marker does not survive: names the fallback key.
pub fn not_kept_message(result: &CanaryResult) -> String {
    match result.marker_field.as_str() {
        "externalId" => format!(
            "Defender did not keep iocsync's ownership marker: {}. iocsync would lose track of the \
             indicators it creates, so it writes nothing. Set `[sync] marker_field = \"description\"` to \
             carry the marker as a description suffix instead (`iocsync check` runs the same canary)",
            result.detail
        ),
        _ => format!(
            "Defender did not keep iocsync's ownership marker: {}. iocsync would lose track of the \
             indicators it creates, so it writes nothing; check `[sync] marker_field` and `owner_tag`, \
             and run `iocsync check`",
            result.detail
        ),
    }
}

/// Makes sure the tenant keeps the marker before a run writes: by the listing, or by a canary.
/// Fails (without writing anything else) when the canary comes back without it.
pub async fn ensure(
    client: &DefenderClient,
    client_id: &str,
    marker: &Marker,
    listed: &[Indicator],
) -> anyhow::Result<MarkerProof> {
    if proven_by_listing(listed, client_id, marker) {
        return Ok(MarkerProof::Listing);
    }
    tracing::info!(
        marker_field = marker.field.as_str(),
        "no indicator of this app carries the ownership marker yet: checking with a canary"
    );
    let result = canary(client, client_id, marker, listed).await?;
    if !result.ok {
        anyhow::bail!("{}", not_kept_message(&result));
    }
    Ok(MarkerProof::Canary)
}

/// Creates the canary with the marker, reads it back by id, checks the marker and deletes it.
/// `Err` only when the canary could not be created or read at all (API errors, or the canary
/// key held by another creator); a marker that did not survive is `Ok` with `ok: false`.
pub async fn canary(
    client: &DefenderClient,
    client_id: &str,
    marker: &Marker,
    listed: &[Indicator],
) -> anyhow::Result<CanaryResult> {
    if let Some(other) = listed.iter().find(|i| {
        i.indicator_type == CANARY_TYPE
            && i.indicator_value.eq_ignore_ascii_case(CANARY_VALUE)
            && i.action.as_str() == CANARY_ACTION
            && !is_own_canary(i, client_id)
    }) {
        anyhow::bail!(
            "cannot check the ownership marker: the canary indicator ({CANARY_TYPE} {CANARY_VALUE}, {CANARY_ACTION}) \
             is held by another creator ({}, id {}); iocsync never updates other creators' indicators",
            other.created_by.as_deref().unwrap_or("unknown"),
            other.id
        );
    }
    let (external_id, description) = match marker.field {
        MarkerField::ExternalId => (Some(marker.external_id()), CANARY_DESCRIPTION.to_owned()),
        MarkerField::Description => (None, format!("{CANARY_DESCRIPTION}{}", marker.description_suffix())),
    };
    let shown_marker = match marker.field {
        MarkerField::ExternalId => marker.external_id(),
        MarkerField::Description => marker.description_suffix().trim_start().to_owned(),
    };
    let item = ImportItem {
        indicator_value: CANARY_VALUE.to_owned(),
        indicator_type: CANARY_TYPE.to_owned(),
        action: Action::Audit,
        title: "iocsync canary (deleted right away)".to_owned(),
        description,
        severity: Some("Informational".to_owned()),
        expiration_time: Some(iocsync_core::policy::trunc_secs(Utc::now() + chrono::Duration::hours(1))),
        generate_alert: Some(true),
        external_id,
        ..ImportItem::default()
    };
    let created = client.submit(&item).await.context("creating the canary indicator")?;
    let id = created.id.clone();
    // GET by id is undocumented (spec §3 E2, used by production integrations); when it finds
    // nothing or fails, the documented listing is the fallback.
    let read = match client.get(&id).await {
        Ok(Some(r)) => Ok(Some(r)),
        Ok(None) | Err(_) => client
            .list_all()
            .await
            .map(|rows| rows.into_iter().find(|r| r.id == id))
            .context("reading the canary indicator back"),
    };
    let deleted = match client.delete(&id).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(id = %id, "could not delete the canary indicator (it expires within the hour): {e}");
            false
        }
    };
    let read = read?;
    let (ok, detail) = match &read {
        None => {
            (false, format!("the canary indicator {id} could not be read back (not found by id nor listed)"))
        }
        Some(r) => {
            let ok = marker.carried_by(r.external_id.as_deref(), r.description.as_deref());
            let detail = match (ok, marker.field) {
                (true, f) => format!("a canary indicator kept the marker `{shown_marker}` in {f}"),
                (false, MarkerField::ExternalId) => format!(
                    "a canary indicator sent with externalId `{shown_marker}` came back with externalId {}",
                    r.external_id.as_deref().map_or_else(|| "null".to_owned(), |e| format!("`{e}`"))
                ),
                (false, MarkerField::Description) => format!(
                    "a canary indicator sent with the description suffix `{shown_marker}` came back without it"
                ),
            };
            (ok, detail)
        }
    };
    Ok(CanaryResult {
        ok,
        marker_field: marker.field.as_str().to_owned(),
        marker: shown_marker,
        kind: CANARY_TYPE.to_owned(),
        value: CANARY_VALUE.to_owned(),
        id: Some(id),
        deleted,
        detail,
    })
}

/// Description of the canary (before any description marker).
const CANARY_DESCRIPTION: &str =
    "iocsync checks that Defender keeps its ownership marker; this indicator is deleted right away";
