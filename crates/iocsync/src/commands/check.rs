//! `iocsync check`: validate the config, get a token, list the tenant, show the capacity, and
//! prove with one canary indicator (created, read back, deleted) that Defender keeps iocsync's
//! ownership marker (see [`crate::engine::marker`]).

use crate::config::{Config, Tenant};
use serde::Serialize;

/// One step of the check and whether it passed.
#[derive(Debug, Serialize)]
pub struct Step {
    /// What was checked.
    pub what: String,
    /// Whether it passed.
    pub ok: bool,
}

/// Capacity of a tenant as seen now.
#[derive(Debug, Serialize)]
pub struct CapacityView {
    /// The cap (15,000).
    pub limit: u64,
    /// Indicators made by others (portal, other apps).
    pub foreign: u64,
    /// Indicators iocsync owns.
    pub owned: u64,
    /// Room kept free for analysts.
    pub headroom: u64,
    /// Room iocsync may still fill.
    pub free: u64,
}

/// What the access token says about the app: shown so a wrong scope (audience) or a missing
/// permission (roles) is visible before any call fails. Never the token itself.
#[derive(Debug, Default, Serialize)]
pub struct TokenView {
    /// The `aud` claim: the API the token is for.
    pub audience: Option<String>,
    /// The `roles` claim: the application permissions granted (`Ti.ReadWrite.All`, ...).
    pub roles: Option<Vec<String>>,
}

/// The check of one tenant.
#[derive(Debug, Serialize)]
pub struct TenantCheck {
    /// Tenant name.
    pub tenant: String,
    /// Steps in order.
    pub steps: Vec<Step>,
    /// The token's audience and roles, when a token was obtained.
    pub token: Option<TokenView>,
    /// Capacity, when the tenant could be listed.
    pub capacity: Option<CapacityView>,
    /// The ownership-marker canary, when it ran.
    pub canary: Option<crate::engine::marker::CanaryResult>,
    /// Advanced hunting, when `[impact]` or `[hits]` is on: whether one query went through.
    pub hunting: Option<HuntingView>,
    /// What failed.
    pub error: Option<String>,
}

/// Whether the configured advanced-hunting API answers this app (`[impact]`, `[hits]`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct HuntingView {
    /// The configured backend: `graph` or `mde`.
    pub backend: String,
    /// The permission it needs.
    pub permission: String,
    /// Whether a one-row query came back from the configured backend.
    pub ok: bool,
    /// The service's refusal, when it refused.
    pub detail: Option<String>,
    /// Each backend the app can use (`graph`: `ThreatHunting.Read.All`, `mde`:
    /// `AdvancedQuery.Read.All`), so switching `backend` is an informed choice.
    pub usable: Vec<String>,
}

/// Checks every selected tenant (the config was already validated by loading it).
pub async fn run(config: &Config, tenant: Option<&str>) -> anyhow::Result<Vec<TenantCheck>> {
    let tenants = config.select_tenants(tenant).map_err(anyhow::Error::msg)?;
    let mut out = Vec::new();
    for t in tenants {
        out.push(check_one(config, t).await);
    }
    Ok(out)
}

async fn check_one(config: &Config, tenant: &Tenant) -> TenantCheck {
    let mut c = TenantCheck {
        tenant: tenant.name.clone(),
        steps: vec![Step { what: format!("config {} is valid", config.path.display()), ok: true }],
        token: None,
        capacity: None,
        canary: None,
        hunting: None,
        error: None,
    };
    // What `sync` reads before it talks to Defender: the allowlists and the feed files.
    if let Err(e) = crate::engine::build_allowlist(&config.allowlist, &tenant.allowlist) {
        c.steps.push(Step { what: "read the allowlists".into(), ok: false });
        c.error = Some(format!("{e:#}"));
        return c;
    }
    c.steps.push(Step { what: "read the allowlists".into(), ok: true });
    for feed in config.feeds_for(tenant).filter(|f| !f.is_manual()) {
        match crate::fetch::Source::parse(&feed.source, &config.base_dir) {
            Ok(crate::fetch::Source::Path(p)) if !p.exists() => {
                c.steps.push(Step { what: format!("feed {}: {} exists", feed.name, p.display()), ok: false });
                c.error = Some(format!("feed {}: {} does not exist", feed.name, p.display()));
                return c;
            }
            Ok(_) => {}
            Err(e) => {
                c.steps.push(Step { what: format!("feed {}: source is usable", feed.name), ok: false });
                c.error = Some(format!("feed {}: {e}", feed.name));
                return c;
            }
        }
    }
    let conn = match crate::connect::connect(config, tenant).await {
        Ok(conn) => conn,
        Err(e) => {
            c.steps.push(Step { what: "read the credential and build the client".into(), ok: false });
            c.error = Some(format!("{e:#}"));
            return c;
        }
    };
    let result = async {
        conn.client.fetch_token().await.map_err(|e| {
            c.steps.push(Step { what: "get a token from Entra ID".into(), ok: false });
            anyhow::anyhow!("{e}")
        })?;
        c.steps.push(Step { what: "get a token from Entra ID".into(), ok: true });
        let mut token = TokenView::default();
        // The audience tells whether the scope fits the cloud and host (spec §13.4, §13.10).
        if let Ok(Some(aud)) = conn.client.token_audience().await {
            c.steps.push(Step { what: format!("the token's audience is {aud}"), ok: true });
            token.audience = Some(aud);
        }
        token.roles = conn.client.token_roles().await.ok().flatten();
        c.token = Some(token);
        // Submit, Import, Delete and BatchDelete document only Ti.ReadWrite.All (spec §13.3), and
        // without it foreign indicators are invisible (neither counted nor avoided).
        if let Ok(Some(roles)) = conn.client.token_roles().await {
            let all = roles.iter().any(|r| r == "Ti.ReadWrite.All");
            let what = if all {
                "the token carries the Ti.ReadWrite.All application permission".to_owned()
            } else {
                format!(
                    "the token carries the Ti.ReadWrite.All application permission (it has: {}): grant \
                     WindowsDefenderATP Ti.ReadWrite.All with admin consent",
                    if roles.is_empty() { "none".to_owned() } else { roles.join(", ") }
                )
            };
            c.steps.push(Step { what, ok: all });
            if !all {
                anyhow::bail!(
                    "the app lacks the WindowsDefenderATP application permission Ti.ReadWrite.All (token roles: {}): \
                     writing indicators requires it, and without it other creators' indicators are invisible",
                    if roles.is_empty() { "none".to_owned() } else { roles.join(", ") }
                );
            }
        }
        let all = conn.client.list_all().await.map_err(|e| {
            c.steps.push(Step { what: "list the tenant's indicators".into(), ok: false });
            anyhow::anyhow!("{e}")
        })?;
        c.steps
            .push(Step { what: format!("list the tenant's indicators ({} visible)", all.len()), ok: true });
        let owned = all.iter().filter(|i| config.owns(tenant, i)).count() as u64;
        let limit = config.sync.capacity as u64;
        let foreign = all.len() as u64 - owned;
        let headroom = config.sync.headroom as u64;
        c.capacity = Some(CapacityView {
            limit,
            foreign,
            owned,
            headroom,
            free: limit.saturating_sub(foreign).saturating_sub(headroom).saturating_sub(owned),
        });
        let marker = config.marker();
        let canary = crate::engine::marker::canary(&conn.client, &tenant.client_id, &marker, &all)
            .await
            .inspect_err(|_| {
                c.steps.push(Step { what: "create, read back and delete a canary indicator".into(), ok: false });
            })?;
        c.steps.push(Step {
            what: format!(
                "canary indicator ({} {}, {}) keeps the ownership marker in {}{}",
                canary.kind,
                canary.value,
                crate::engine::marker::CANARY_ACTION,
                canary.marker_field,
                if canary.deleted { "; deleted again" } else { "; NOT deleted (it expires within the hour)" }
            ),
            ok: canary.ok,
        });
        let failed = (!canary.ok).then(|| crate::engine::marker::not_kept_message(&canary));
        c.canary = Some(canary);
        // The impact check and hit counts are advice: a refusal here is a failed step, not an error.
        if config.impact.enabled || config.hits.enabled {
            let (backend, permission) = match config.impact.backend {
                crate::config::HuntingBackend::Graph => ("graph", "ThreatHunting.Read.All (Microsoft Graph)"),
                crate::config::HuntingBackend::Mde => ("mde", "AdvancedQuery.Read.All (WindowsDefenderATP)"),
            };
            let probe = |backend: crate::config::HuntingBackend| {
                let mut cfg = config.clone();
                cfg.impact.backend = backend;
                let conn = &conn;
                async move {
                    match crate::engine::Hunter::new(&cfg, tenant, &conn.client) {
                        Ok(h) => h.query("DeviceNetworkEvents | take 1").await.map(|_| ()).map_err(|e| {
                            if matches!(e.status(), Some(401 | 403)) {
                                format!("{e}; grant the application permission {permission} with admin consent")
                            } else {
                                e.to_string()
                            }
                        }),
                        Err(e) => Err(format!("{e:#}")),
                    }
                }
            };
            let answer = probe(config.impact.backend).await;
            // The other backend too, so `check` says which ones the app can use.
            let other = match config.impact.backend {
                crate::config::HuntingBackend::Graph => crate::config::HuntingBackend::Mde,
                crate::config::HuntingBackend::Mde => crate::config::HuntingBackend::Graph,
            };
            let other_ok = probe(other).await.is_ok();
            let name = |b: crate::config::HuntingBackend| match b {
                crate::config::HuntingBackend::Graph => "graph",
                crate::config::HuntingBackend::Mde => "mde",
            };
            let mut usable = Vec::new();
            if answer.is_ok() {
                usable.push(name(config.impact.backend).to_owned());
            }
            if other_ok {
                usable.push(name(other).to_owned());
            }
            usable.sort();
            c.steps.push(Step {
                what: format!(
                    "advanced hunting backends this app can use: {}",
                    if usable.is_empty() { "none".to_owned() } else { usable.join(", ") }
                ),
                ok: !usable.is_empty(),
            });
            c.steps.push(Step {
                what: match &answer {
                    Ok(()) => format!("advanced hunting answers through {backend} (needs {permission})"),
                    Err(e) => format!(
                        "advanced hunting through {backend} failed ({e}); until it answers, [impact] values \
                         follow on_unknown and [hits] counts nothing"
                    ),
                },
                ok: answer.is_ok(),
            });
            c.hunting = Some(HuntingView {
                backend: backend.to_owned(),
                permission: permission.to_owned(),
                ok: answer.is_ok(),
                detail: answer.err(),
                usable,
            });
        }
        if let Some(message) = failed {
            anyhow::bail!("{message}");
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        c.error = Some(format!("{e:#}"));
    }
    conn.close().await;
    c
}
