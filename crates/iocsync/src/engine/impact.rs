//! The impact check inside a run (`[impact]`, spec §13.13): which desired values are about to start
//! blocking, what the cache already knows about them, hunting queries for the rest (paced, capped,
//! and stopped at the first quota error), and the verdicts applied to the desired set before the
//! plan is made. The check is advice: no error here ever fails the sync.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use iocsync_core::impact::{self, Sighting, Verdict};
use iocsync_core::plan::match_value;
use iocsync_core::report::{ImpactSummary, ImpactValue};
use iocsync_core::{Action, Desired, Existing, Skip};
use iocsync_defender::{ClientConfig, DefenderClient};
use iocsync_ioc::{IndicatorType, Reason};

use crate::config::{Config, HuntingBackend, Tenant};
use crate::state::ImpactRecord;

/// The actions that stop a user or a file: the ones worth checking before they land.
fn blocks(a: Action) -> bool {
    matches!(a, Action::Block | Action::BlockAndRemediate | Action::Warn)
}

/// A client for the configured hunting API, and the path it posts queries to.
pub(crate) struct Hunter {
    client: DefenderClient,
    path: &'static [&'static str],
    /// True when `client` is a Graph client of its own (its call history is kept apart).
    own_client: bool,
}

impl Hunter {
    /// The MDE endpoint shares the Defender client (same token resource); Graph gets its own
    /// client, token and pacing, for the cloud's Graph host or `[impact] graph_base`.
    pub(crate) fn new(config: &Config, tenant: &Tenant, main: &DefenderClient) -> anyhow::Result<Hunter> {
        match config.impact.backend {
            HuntingBackend::Mde => Ok(Hunter {
                client: main.clone(),
                path: &["api", "advancedqueries", "run"],
                own_client: false,
            }),
            HuntingBackend::Graph => {
                let cloud = crate::connect::cloud(tenant.cloud);
                let base = config
                    .impact
                    .graph_base
                    .clone()
                    .or_else(|| tenant.emulator.then(|| main.api_base().to_owned()))
                    .unwrap_or_else(|| cloud.graph_base().to_owned());
                let base = base.trim_end_matches('/').to_owned();
                let mut cc = ClientConfig::new(
                    tenant.tenant_id.clone(),
                    tenant.client_id.clone(),
                    crate::connect::credential(&tenant.credential)?,
                    cloud,
                );
                cc.authority =
                    if tenant.emulator { Some(main.api_base().to_owned()) } else { tenant.authority.clone() };
                cc.scope = Some(format!("{base}/.default"));
                cc.api_base = Some(base);
                Ok(Hunter {
                    client: DefenderClient::new(cc)?,
                    path: &["v1.0", "security", "runHuntingQuery"],
                    own_client: true,
                })
            }
        }
    }
}

impl Hunter {
    /// The Graph client, whose call history is paced across runs under its own key (the MDE
    /// backend shares the Defender client and its history).
    pub(crate) fn own_client(&self) -> Option<&DefenderClient> {
        self.own_client.then_some(&self.client)
    }

    /// The key its call history is saved under: the app id, marked as Graph's.
    pub(crate) fn history_key(client_id: &str) -> String {
        format!("{client_id}#graph")
    }

    /// Runs one query; its rows.
    pub(crate) async fn query(
        &self,
        kql: &str,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, iocsync_defender::Error> {
        self.client.hunting_query(self.path, kql).await
    }
}

/// The check's outcome for one run: the desired set to plan with, skips, and the summary.
pub(crate) struct ImpactOutcome {
    pub desired: Vec<Desired>,
    pub skips: Vec<Skip>,
    pub summary: ImpactSummary,
    /// Answers to remember (new ones only).
    pub records: Vec<ImpactRecord>,
}

/// How far back cached answers are reused.
pub(crate) fn cache_since(config: &Config, now: DateTime<Utc>) -> DateTime<Utc> {
    now - chrono::Duration::from_std(config.impact.cache_for).unwrap_or(chrono::Duration::hours(24))
}

/// Runs the check for the desired values that would start blocking (no tenant row holds the
/// value with a blocking action yet), then applies the verdicts.
///
/// A held value that the tenant already holds under iocsync (as `Audit`, say) is downgraded
/// instead, so holding never deletes an indicator.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn check(
    config: &Config,
    tenant: &Tenant,
    cache: Vec<ImpactRecord>,
    hunter: Option<&Hunter>,
    desired: Vec<Desired>,
    existing: &[Existing],
    owned: &(dyn Fn(&Existing) -> bool + Sync),
    now: DateTime<Utc>,
    stop: &super::StopFlag,
) -> ImpactOutcome {
    let settings = &config.impact;
    // The tenant may hold a value in another spelling (compressed IPv6, a URL with `/`): every
    // comparison with its rows goes through the plan's match form.
    let mv = |k: IndicatorType, v: &str| (k, match_value(k, v));
    let blocking_now: BTreeSet<(IndicatorType, String)> = existing
        .iter()
        .filter(|e| e.action.is_some_and(blocks))
        .filter_map(|e| Some(mv(e.kind?, &e.value)))
        .collect();
    let ours: BTreeSet<(IndicatorType, String)> =
        existing.iter().filter(|e| owned(e)).filter_map(|e| Some(mv(e.kind?, &e.value))).collect();
    let candidates: BTreeSet<(IndicatorType, String)> = desired
        .iter()
        .filter(|d| blocks(d.action) && !blocking_now.contains(&mv(d.kind, &d.value)))
        .map(|d| (d.kind, d.value.clone()))
        .collect();

    let cached: BTreeMap<(IndicatorType, String), Sighting> = cache
        .into_iter()
        .filter_map(|r| {
            let kind = r.indicator_type.parse::<IndicatorType>().ok()?;
            // The cache keeps counts; device ids are not needed again.
            let devices = (0..r.devices).map(|i| format!("cached-{i}")).collect();
            Some(((kind, r.value), Sighting { devices, events: r.events, last_seen: r.last_seen }))
        })
        .filter(|(k, _)| candidates.contains(k))
        .collect();
    let to_ask: Vec<(IndicatorType, String)> =
        candidates.iter().filter(|k| !cached.contains_key(*k)).cloned().collect();

    let mut summary = ImpactSummary { cached: cached.len() as u64, ..ImpactSummary::default() };
    let mut known: BTreeMap<(IndicatorType, String), Sighting> = cached;
    let mut answered: BTreeSet<(IndicatorType, String)> = BTreeSet::new();
    let mut records = Vec::new();
    if !to_ask.is_empty() {
        let queries = impact::build_queries(&to_ask, settings.lookback_days, settings.max_query_chars);
        // A value is answered when every query that covers it came back.
        let mut failed: BTreeSet<(IndicatorType, String)> = BTreeSet::new();
        let mut fresh: BTreeMap<(IndicatorType, String), Sighting> = BTreeMap::new();
        let mut stopped: Option<String> = match hunter {
            None => Some("no hunting client".to_owned()),
            Some(_) => None,
        };
        let started = std::time::Instant::now();
        for q in &queries {
            if stopped.is_none() && summary.queries >= u64::from(settings.max_queries) {
                stopped = Some(format!("the run's budget of {} queries is spent", settings.max_queries));
            }
            // The check is advice: it never holds the run past its time budget or a stop request.
            if stopped.is_none() && stop.is_requested() {
                stopped = Some("the run was asked to stop".to_owned());
            }
            if stopped.is_none() && started.elapsed() >= settings.max_duration {
                stopped = Some(format!("the check's time budget ({:?}) is spent", settings.max_duration));
            }
            let (Some(h), None) = (hunter, &stopped) else {
                failed.extend(q.values.iter().cloned());
                continue;
            };
            summary.queries += 1;
            match h.query(&q.text).await {
                // A result at the row cap may be cut short: its zeros are not "no traffic".
                Ok(rows) if rows.len() >= impact::MAX_RESULT_ROWS => {
                    tracing::warn!(tenant = %tenant.name, rows = rows.len(), "impact check: a result hit the row cap; its values stay unknown");
                    failed.extend(q.values.iter().cloned());
                }
                Ok(rows) => impact::read_rows(q, &rows, &mut fresh),
                // A quota or rate answer (429), or a refused token or permission: no more asking
                // this run. Any other failure spoils only this batch (it is asked again next run).
                Err(e) if matches!(e.status(), Some(401 | 403 | 429)) => {
                    tracing::warn!(tenant = %tenant.name, "impact check stopped: {e}");
                    stopped = Some(e.to_string());
                    failed.extend(q.values.iter().cloned());
                }
                Err(e) => {
                    tracing::warn!(tenant = %tenant.name, "impact check: one query failed, its values stay unknown: {e}");
                    failed.extend(q.values.iter().cloned());
                }
            }
        }
        for k in &to_ask {
            if failed.contains(k) {
                continue;
            }
            answered.insert(k.clone());
            let s = fresh.remove(k).unwrap_or_default();
            records.push(ImpactRecord {
                indicator_type: k.0.to_string(),
                value: k.1.clone(),
                checked_at: now,
                devices: s.device_count() as u64,
                events: s.events,
                last_seen: s.last_seen,
            });
            known.insert(k.clone(), s);
        }
        if let Some(why) = stopped {
            let missing = to_ask.len() - answered.len();
            if missing > 0 {
                tracing::warn!(tenant = %tenant.name, missing, "impact check incomplete ({why}); these values follow on_unknown");
            }
        }
    }

    let mut skips = Vec::new();
    let mut out = Vec::with_capacity(desired.len());
    for mut d in desired {
        let key = (d.kind, d.value.clone());
        // Only a copy that would block is judged: an `Audit` or `Allowed` copy of the same value
        // (another feed's, or a row iocsync keeps) is left as it is.
        if !blocks(d.action) || !candidates.contains(&key) {
            out.push(d);
            continue;
        }
        let sighting = known.get(&key);
        if sighting.is_some() {
            summary.checked += 1;
        } else {
            summary.unknown += 1;
        }
        let mut v = impact::verdict(sighting, settings.hold_devices, settings.on_hit, settings.on_unknown);
        if matches!(v, Verdict::Hold | Verdict::Wait) && ours.contains(&mv(d.kind, &d.value)) {
            // Holding must never delete a row iocsync already keeps: keep it, without blocking.
            v = Verdict::Downgrade;
        }
        let hit = sighting.filter(|_| matches!(v, Verdict::Hold | Verdict::Downgrade | Verdict::Report));
        if let Some(s) = hit {
            let verdict = match v {
                Verdict::Hold => "hold",
                Verdict::Report => "report",
                _ => "audit",
            };
            summary.values.push(ImpactValue {
                kind: d.kind,
                value: d.value.clone(),
                verdict: verdict.to_owned(),
                devices: s.device_count() as u64,
                events: s.events,
                last_seen: s.last_seen.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            });
        }
        match v {
            Verdict::Proceed => out.push(d),
            Verdict::Report => {
                summary.reported += 1;
                out.push(d);
            }
            Verdict::Downgrade => {
                summary.downgraded += 1;
                d.action = Action::Audit;
                d.generate_alert = true;
                d.educate_url = None;
                out.push(d);
            }
            Verdict::Hold => {
                summary.held += 1;
                let s = sighting.cloned().unwrap_or_default();
                skips.push(Skip {
                    kind: Some(d.kind),
                    value: d.value,
                    reason: Reason::WouldBlockActive,
                    feed: None,
                    detail: Some(format!(
                        "seen on {} devices ({} events) in the last {} days",
                        s.device_count(),
                        s.events,
                        settings.lookback_days
                    )),
                });
            }
            Verdict::Wait => {
                skips.push(Skip {
                    kind: Some(d.kind),
                    value: d.value,
                    reason: Reason::ImpactUnknown,
                    feed: None,
                    detail: Some("the impact check did not complete; checked again next run".to_owned()),
                });
            }
        }
    }
    summary.values.sort_by(|a, b| (a.kind, &a.value).cmp(&(b.kind, &b.value)));
    ImpactOutcome { desired: out, skips, summary, records }
}
