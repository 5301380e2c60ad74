//! Advanced hunting (spec §13.13): the MDE `POST /api/advancedqueries/run` endpoint and Graph
//! `POST /v1.0/security/runHuntingQuery`, over an event table seeded from JSONL or from code.
//!
//! Each API has its own permission (`AdvancedQuery.Read.All` on the WindowsDefenderATP resource,
//! `ThreatHunting.Read.All` on Graph), its own rate window (45 per minute, 1,500 per hour), a row cap,
//! and a CPU-quota error that tests switch on.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};

use crate::kql::{self, Event};

/// Rows returned per query at most (documented: 100,000).
pub const MAX_RESULT_ROWS: usize = 100_000;
/// Longest query text accepted, in characters ([UNCERTAIN]: no documented limit; a client batching
/// values must stay well under it).
pub const MAX_QUERY_CHARS: usize = 100_000;
/// Audience of Graph tokens.
pub const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
/// The text of the CPU-quota error ([UNCERTAIN]: wording; the status is 429 on both APIs).
pub const CPU_QUOTA_MESSAGE: &str = "Query execution was throttled: the tenant has exceeded its allocated CPU resources for advanced hunting. Try again later.";

/// Which hunting API a call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum HuntingApi {
    /// MDE `POST /api/advancedqueries/run` (`AdvancedQuery.Read.All`).
    Mde,
    /// Graph `POST /v1.0/security/runHuntingQuery` (`ThreatHunting.Read.All`).
    Graph,
}

impl HuntingApi {
    /// The application permission the API requires.
    pub fn role(self) -> &'static str {
        match self {
            HuntingApi::Mde => "AdvancedQuery.Read.All",
            HuntingApi::Graph => "ThreatHunting.Read.All",
        }
    }
}

/// Which clients hold which hunting permission.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HuntingGrants {
    /// Every registered client holds both permissions (the default).
    #[default]
    All,
    /// Only these (client id, API) pairs.
    Only(Vec<(String, HuntingApi)>),
}

impl HuntingGrants {
    /// Whether `client_id` may call `api`.
    pub fn allows(&self, client_id: &str, api: HuntingApi) -> bool {
        match self {
            HuntingGrants::All => true,
            HuntingGrants::Only(v) => v.iter().any(|(c, a)| c == client_id && *a == api),
        }
    }

    /// The hunting roles a token for `audience` carries: Graph roles on Graph tokens, the MDE role on
    /// Defender tokens.
    pub(crate) fn roles_for(&self, client_id: &str, audience: &str) -> Vec<&'static str> {
        let api = if audience == GRAPH_AUDIENCE { HuntingApi::Graph } else { HuntingApi::Mde };
        if self.allows(client_id, api) { vec![api.role()] } else { Vec::new() }
    }
}

/// Hunting set-up of an emulator.
#[derive(Debug, Clone, Default)]
pub struct HuntingConfig {
    /// Events present at start.
    pub events: Vec<Event>,
    /// Who may query.
    pub grants: HuntingGrants,
}

/// Parses JSONL events (`{"Table": "DeviceNetworkEvents", "Timestamp": "2026-11-30T10:00:00Z",
/// "DeviceId": "d1", "RemoteIP": "198.51.100.7"}`, one per line). `Timestamp` is RFC 3339, or relative to
/// `now` as `-3d`, `-12h`, `-30m`. `Thumbprint` is accepted for `SignerHash` in
/// `DeviceFileCertificateInfo`. Errors name the line.
pub fn parse_events_jsonl(text: &str, now: DateTime<Utc>) -> Result<Vec<Event>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Value::Object(mut obj) =
            serde_json::from_str::<Value>(line).map_err(|e| format!("line {n}: not a JSON object: {e}"))?
        else {
            return Err(format!("line {n}: not a JSON object"));
        };
        let Some(Value::String(table)) = obj.remove("Table") else {
            return Err(format!("line {n}: \"Table\" (a string) is required"));
        };
        let Some(columns) = kql::columns_of(&table) else {
            let known: Vec<&str> = kql::TABLES.iter().map(|(t, _)| *t).collect();
            return Err(format!("line {n}: unknown table {table:?}; known: {}", known.join(", ")));
        };
        let timestamp = match obj.remove("Timestamp") {
            Some(Value::String(t)) => parse_time(&t, now).ok_or_else(|| {
                format!("line {n}: Timestamp {t:?} is neither RFC 3339 nor relative (-3d, -12h, -30m)")
            })?,
            _ => return Err(format!("line {n}: \"Timestamp\" (a string) is required")),
        };
        if table == "DeviceFileCertificateInfo"
            && let Some(t) = obj.remove("Thumbprint")
        {
            obj.entry("SignerHash").or_insert(t);
        }
        if let Some(bad) = obj.keys().find(|k| !columns.contains(&k.as_str())) {
            return Err(format!(
                "line {n}: table {table} has no column {bad:?}; it has: {}",
                columns.join(", ")
            ));
        }
        out.push(Event { table, timestamp, columns: obj });
    }
    Ok(out)
}

fn parse_time(s: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let rel = s.strip_prefix('-')?;
    let (num, unit) = rel.split_at(rel.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok()?;
    let span = match unit {
        "d" => Duration::try_days(n)?,
        "h" => Duration::try_hours(n)?,
        "m" => Duration::try_minutes(n)?,
        "s" => Duration::try_seconds(n)?,
        _ => return None,
    };
    now.checked_sub_signed(span)
}

/// The emulator's hunting state: events, grants, the query log and the quota switch.
#[derive(Debug, Default)]
pub(crate) struct Hunting {
    pub events: Mutex<Vec<Event>>,
    pub grants: Mutex<HuntingGrants>,
    /// Every query text received (accepted or not), oldest first.
    pub queries: Mutex<Vec<String>>,
    /// The next N queries fail with the CPU-quota error.
    pub quota_failures: Mutex<u32>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Outcome of one hunting call, before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum HuntingOutcome {
    /// 200 with this JSON body.
    Ok(Value),
    /// An error: status, code, message.
    Err(u16, &'static str, String),
}

impl Hunting {
    pub(crate) fn new(config: HuntingConfig) -> Self {
        Self {
            events: Mutex::new(config.events),
            grants: Mutex::new(config.grants),
            queries: Mutex::default(),
            quota_failures: Mutex::default(),
        }
    }

    /// Runs the query in `body` for `api`. Authentication and rate limits are checked by the caller.
    pub(crate) fn run(&self, api: HuntingApi, body: &[u8], now: DateTime<Utc>) -> HuntingOutcome {
        let parsed: Option<Map<String, Value>> = serde_json::from_slice(body).ok();
        let query = parsed.as_ref().and_then(|m| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("query"))
                .and_then(|(_, v)| v.as_str())
                .map(str::to_owned)
        });
        let Some(query) = query.filter(|q| !q.trim().is_empty()) else {
            return HuntingOutcome::Err(
                400,
                "BadRequest",
                "The request body must hold a non-empty 'Query' string.".into(),
            );
        };
        lock(&self.queries).push(query.clone());
        if query.chars().count() > MAX_QUERY_CHARS {
            return HuntingOutcome::Err(
                400,
                "BadRequest",
                format!("The query is longer than the {MAX_QUERY_CHARS} characters allowed."),
            );
        }
        {
            let mut q = lock(&self.quota_failures);
            if *q > 0 {
                *q -= 1;
                return HuntingOutcome::Err(429, "TooManyRequests", CPU_QUOTA_MESSAGE.into());
            }
        }
        let events = lock(&self.events);
        match kql::run(&query, &events, now, MAX_RESULT_ROWS) {
            Ok(r) => HuntingOutcome::Ok(match api {
                HuntingApi::Mde => json!({
                    "Stats": {"ExecutionTime": 0.01, "resource_usage": {"cache": {"memory": {"hits": 0, "misses": 0, "total": 0}}}},
                    "Schema": r.schema.iter().map(|(n, t)| json!({"Name": n, "Type": t})).collect::<Vec<_>>(),
                    "Results": r.rows,
                }),
                HuntingApi::Graph => json!({
                    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.security.huntingQueryResults",
                    "schema": r.schema.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>(),
                    "results": r.rows,
                }),
            }),
            Err(e) => HuntingOutcome::Err(400, "BadRequest", e.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn jsonl_events_parse_with_absolute_and_relative_times() {
        let text = r#"
# comment
{"Table": "DeviceNetworkEvents", "Timestamp": "2026-11-30T10:00:00Z", "DeviceId": "d1", "RemoteIP": "198.51.100.7"}
{"Table": "DeviceFileCertificateInfo", "Timestamp": "-2d", "DeviceId": "d2", "Thumbprint": "aa"}
"#;
        let ev = parse_events_jsonl(text, now()).unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1].timestamp, now() - Duration::days(2));
        assert_eq!(ev[1].columns["SignerHash"], "aa");
    }

    #[test]
    fn bad_jsonl_names_the_line() {
        for (text, want) in [
            ("{\"Table\": \"X\", \"Timestamp\": \"-1d\"}", "line 1: unknown table"),
            ("\n{\"Table\": \"DeviceEvents\"}", "line 2: \"Timestamp\""),
            ("{\"Table\": \"DeviceEvents\", \"Timestamp\": \"yesterday\"}", "line 1: Timestamp"),
            ("{\"Table\": \"DeviceEvents\", \"Timestamp\": \"-1d\", \"Bogus\": 1}", "no column \"Bogus\""),
            ("[1]", "line 1: not a JSON object"),
        ] {
            let e = parse_events_jsonl(text, now()).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn both_apis_answer_in_their_own_shape_and_quota_errors_count_down() {
        let h = Hunting::new(HuntingConfig {
            events: parse_events_jsonl(
                r#"{"Table": "DeviceNetworkEvents", "Timestamp": "-1d", "DeviceId": "d1", "RemoteIP": "198.51.100.7"}"#,
                now(),
            )
            .unwrap(),
            grants: HuntingGrants::All,
        });
        let body = br#"{"Query": "DeviceNetworkEvents | summarize count() by RemoteIP"}"#;
        let HuntingOutcome::Ok(mde) = h.run(HuntingApi::Mde, body, now()) else { panic!() };
        assert_eq!(mde["Results"][0]["count_"], 1);
        assert_eq!(mde["Schema"][0]["Name"], "RemoteIP");
        let HuntingOutcome::Ok(graph) = h.run(HuntingApi::Graph, body, now()) else { panic!() };
        assert_eq!(graph["results"][0]["RemoteIP"], "198.51.100.7");
        assert_eq!(graph["schema"][1]["type"], "Int64");
        *h.quota_failures.lock().unwrap() = 1;
        assert!(matches!(h.run(HuntingApi::Graph, body, now()), HuntingOutcome::Err(429, ..)));
        assert!(matches!(h.run(HuntingApi::Graph, body, now()), HuntingOutcome::Ok(_)));
        assert!(matches!(h.run(HuntingApi::Mde, b"{}", now()), HuntingOutcome::Err(400, ..)));
        assert_eq!(h.queries.lock().unwrap().len(), 4, "the empty body carries no query to log");
    }
}
