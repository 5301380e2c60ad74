//! The impact check's pure half (spec §13.13): which advanced-hunting table and column shows traffic
//! to, or execution of, each indicator type; KQL built only from validated values and quoted so no
//! value can change the query; batching within a length budget; and reading the rows back into
//! per-value sightings and a verdict.
//!
//! Every query has the same shape, one `(value, device)` row per pair:
//! `T | where Timestamp > ago(Nd) | where C in~ (…) | summarize Events = count(), LastSeen = max(Timestamp) by C, DeviceId`.
//! Grouping by device (not `dcount`) makes the device count exact across the two tables that show a
//! file hash, and for URL terms that match many different `RemoteUrl` strings.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use iocsync_ioc::IndicatorType;
use serde_json::{Map, Value};

/// Rows one hunting query returns at most (documented: 100,000); a result this long may be cut
/// short, so its values are not judged from it.
pub const MAX_RESULT_ROWS: usize = 100_000;

/// How a probe compares values with the column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Matcher {
    /// `in~`: the column equals the value, ignoring case (hashes, IPs).
    Exact,
    /// `has_any`: the value occurs as whole terms in the column (domains and URLs in `RemoteUrl`).
    Term,
}

/// One table and column that shows activity for an indicator type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Probe {
    /// Advanced-hunting table.
    pub table: &'static str,
    /// Column holding the value.
    pub column: &'static str,
    /// How the value is compared.
    pub matcher: Matcher,
}

const fn probe(table: &'static str, column: &'static str, matcher: Matcher) -> Probe {
    Probe { table, column, matcher }
}

const IP: &[Probe] = &[probe("DeviceNetworkEvents", "RemoteIP", Matcher::Exact)];
/// IPv4 as a whole term, so one literal also finds the IPv4-mapped IPv6 spelling
/// (`::ffff:a.b.c.d`) telemetry uses for some IPv4 traffic.
const IP4: &[Probe] = &[probe("DeviceNetworkEvents", "RemoteIP", Matcher::Term)];
const WEB: &[Probe] = &[probe("DeviceNetworkEvents", "RemoteUrl", Matcher::Term)];
const SHA256: &[Probe] = &[
    probe("DeviceFileEvents", "SHA256", Matcher::Exact),
    probe("DeviceProcessEvents", "SHA256", Matcher::Exact),
];
const SHA1: &[Probe] = &[
    probe("DeviceFileEvents", "SHA1", Matcher::Exact),
    probe("DeviceProcessEvents", "SHA1", Matcher::Exact),
];
const MD5: &[Probe] =
    &[probe("DeviceFileEvents", "MD5", Matcher::Exact), probe("DeviceProcessEvents", "MD5", Matcher::Exact)];
/// The signer certificate's SHA-1 (its thumbprint) is `SignerHash` in `DeviceFileCertificateInfo`.
const CERT: &[Probe] = &[probe("DeviceFileCertificateInfo", "SignerHash", Matcher::Exact)];

/// Where activity for `value` of `kind` shows up.
pub fn probes_for_value(kind: IndicatorType, value: &str) -> &'static [Probe] {
    if kind == IndicatorType::IpAddress && value.parse::<std::net::Ipv4Addr>().is_ok() {
        return IP4;
    }
    probes_for(kind)
}

/// Where activity for `kind` shows up.
pub fn probes_for(kind: IndicatorType) -> &'static [Probe] {
    match kind {
        IndicatorType::IpAddress => IP,
        IndicatorType::DomainName | IndicatorType::Url => WEB,
        IndicatorType::FileSha256 => SHA256,
        IndicatorType::FileSha1 => SHA1,
        IndicatorType::FileMd5 => MD5,
        IndicatorType::CertificateThumbprint => CERT,
    }
}

/// A KQL string literal holding exactly `value`: double-quoted, with `\` and `"` escaped and
/// control characters written as escapes, so no value can end the literal or start a new line.
pub fn kql_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The spellings a value may have in telemetry: itself, and for IPv6 also the compressed form
/// (Defender's indicator form is all 8 groups; the network tables may hold either).
fn spellings(kind: IndicatorType, value: &str) -> Vec<String> {
    let mut v = vec![value.to_owned()];
    if kind == IndicatorType::IpAddress
        && let Ok(ip) = value.parse::<std::net::Ipv6Addr>()
    {
        let compressed = ip.to_string();
        if compressed != value {
            v.push(compressed);
        }
    }
    v
}

/// One hunting query and the values it asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HuntQuery {
    /// Where it looks.
    pub probe: Probe,
    /// The indicator values it covers (as iocsync holds them).
    pub values: Vec<(IndicatorType, String)>,
    /// The KQL text.
    pub text: String,
}

fn query_text(probe: Probe, literals: &[String], lookback_days: u32) -> String {
    let op = match probe.matcher {
        Matcher::Exact => "in~",
        Matcher::Term => "has_any",
    };
    format!(
        "{table} | where Timestamp > ago({lookback_days}d) | where {col} {op} ({list}) \
         | summarize Events = count(), LastSeen = max(Timestamp) by {col}, DeviceId",
        table = probe.table,
        col = probe.column,
        list = literals.join(", "),
    )
}

/// The queries that cover `values` over the last `lookback_days`, each at most `max_chars` long
/// (a single value longer than the budget still gets its own query). Same input, same output.
pub fn build_queries(
    values: &[(IndicatorType, String)],
    lookback_days: u32,
    max_chars: usize,
) -> Vec<HuntQuery> {
    let mut by_probe: BTreeMap<Probe, BTreeSet<(IndicatorType, String)>> = BTreeMap::new();
    for (kind, value) in values {
        for p in probes_for_value(*kind, value) {
            by_probe.entry(*p).or_default().insert((*kind, value.clone()));
        }
    }
    let mut out = Vec::new();
    for (probe, vals) in by_probe {
        let empty = query_text(probe, &[], lookback_days).len();
        let mut batch: Vec<(IndicatorType, String)> = Vec::new();
        let mut literals: Vec<String> = Vec::new();
        let mut len = empty;
        for (kind, value) in vals {
            let lits: Vec<String> = spellings(kind, &value).iter().map(|s| kql_string(s)).collect();
            let add: usize = lits.iter().map(|l| l.len() + 2).sum();
            if !batch.is_empty() && len + add > max_chars {
                out.push(HuntQuery {
                    probe,
                    values: std::mem::take(&mut batch),
                    text: query_text(probe, &literals, lookback_days),
                });
                literals.clear();
                len = empty;
            }
            batch.push((kind, value));
            literals.extend(lits);
            len += add;
        }
        if !batch.is_empty() {
            out.push(HuntQuery { probe, values: batch, text: query_text(probe, &literals, lookback_days) });
        }
    }
    out
}

/// KQL `has`: `needle` occurs in `hay` as whole terms, ignoring case.
pub fn has_term(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let hay = hay.to_lowercase();
    let needle = needle.to_lowercase();
    let word = |c: char| c.is_alphanumeric();
    let mut from = 0;
    while let Some(off) = hay[from..].find(&needle) {
        let start = from + off;
        let end = start + needle.len();
        let before = hay[..start].chars().next_back().is_none_or(|c| !word(c));
        let after = hay[end..].chars().next().is_none_or(|c| !word(c));
        if before && after {
            return true;
        }
        from = start + hay[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// What the tenant's telemetry shows for one value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sighting {
    /// Distinct devices.
    pub devices: BTreeSet<String>,
    /// Events.
    pub events: u64,
    /// Latest event.
    pub last_seen: Option<DateTime<Utc>>,
}

impl Sighting {
    /// Distinct devices seen.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    fn add(&mut self, device: &str, events: u64, last: Option<DateTime<Utc>>) {
        self.devices.insert(device.to_owned());
        self.events += events;
        self.last_seen = self.last_seen.max(last);
    }
}

fn cell_str<'a>(row: &'a Map<String, Value>, col: &str) -> Option<&'a str> {
    row.get(col).and_then(Value::as_str)
}

/// Adds the rows of one query's result to `into`, keyed by `(type, value)`. Rows that match no asked
/// value (the service's own normalisation, or a term inside a longer URL) are matched the way the
/// query did: equality ignoring case, or whole terms.
pub fn read_rows(
    query: &HuntQuery,
    rows: &[Map<String, Value>],
    into: &mut BTreeMap<(IndicatorType, String), Sighting>,
) {
    for row in rows {
        let (Some(cell), Some(device)) = (cell_str(row, query.probe.column), cell_str(row, "DeviceId"))
        else {
            continue;
        };
        let events = row.get("Events").and_then(Value::as_u64).unwrap_or(1);
        let last = cell_str(row, "LastSeen")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        for (kind, value) in &query.values {
            let hit = match query.probe.matcher {
                Matcher::Exact => spellings(*kind, value).iter().any(|s| s.eq_ignore_ascii_case(cell)),
                Matcher::Term => has_term(cell, value),
            };
            if hit {
                into.entry((*kind, value.clone())).or_default().add(device, events, last);
            }
        }
    }
}

/// What to do with a value seen on at least `hold_devices` devices (config `on_hit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnHit {
    /// Not pushed; skipped as `would-block-active` and listed for a human.
    #[default]
    Hold,
    /// Pushed as `Audit` instead of blocking.
    Audit,
    /// Pushed as planned; the plan shows the hits.
    Report,
}

/// What to do with a value whose check could not run (config `on_unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnUnknown {
    /// Pushed as planned (the check is advice; a quota error never stops the sync).
    #[default]
    Proceed,
    /// Not pushed this run; skipped as `impact-unknown` and checked again next run.
    Wait,
}

/// The impact check's decision for one value about to be created with a blocking action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Seen on fewer devices than the threshold: pushed as planned.
    Proceed,
    /// Held (`would-block-active`).
    Hold,
    /// Pushed as `Audit`.
    Downgrade,
    /// Pushed as planned, hits reported.
    Report,
    /// Unknown and held this run (`impact-unknown`).
    Wait,
}

/// The verdict for a value: `sighting` is `None` when its check did not complete.
pub fn verdict(
    sighting: Option<&Sighting>,
    hold_devices: usize,
    on_hit: OnHit,
    on_unknown: OnUnknown,
) -> Verdict {
    match sighting {
        None => match on_unknown {
            OnUnknown::Proceed => Verdict::Proceed,
            OnUnknown::Wait => Verdict::Wait,
        },
        Some(s) if s.device_count() >= hold_devices.max(1) => match on_hit {
            OnHit::Hold => Verdict::Hold,
            OnHit::Audit => Verdict::Downgrade,
            OnHit::Report => Verdict::Report,
        },
        Some(_) => Verdict::Proceed,
    }
}

/// The `DeviceEvents` action types that record Defender acting on a custom indicator
/// ([UNCERTAIN]: Microsoft documents these for network protection and SmartScreen; which of them
/// a custom *file* or *certificate* indicator produces is not documented, so those are counted
/// from `AntivirusDetection` and `SmartScreenAppWarning` and may under-count).
pub const HIT_ACTION_TYPES: &[&str] = &[
    "ExploitGuardNetworkProtectionBlocked",
    "ExploitGuardNetworkProtectionAudited",
    "SmartScreenUrlWarning",
    "SmartScreenAppWarning",
    "AntivirusDetection",
];

/// The hit queries of one run: one per column of `DeviceEvents` that can name an indicator's value
/// (`RemoteIP`, `RemoteUrl`, `SHA256`, `SHA1`, `MD5`), over the events in (`since`, `until`], summarised per
/// (value, device). They carry no indicator value, so their length does not grow with the tenant.
pub fn hit_queries(since: DateTime<Utc>, until: DateTime<Utc>) -> Vec<(&'static str, String)> {
    let types: Vec<String> = HIT_ACTION_TYPES.iter().map(|t| kql_string(t)).collect();
    let since = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let until = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    ["RemoteIP", "RemoteUrl", "SHA256", "SHA1", "MD5"]
        .into_iter()
        .map(|col| {
            (
                col,
                format!(
                    "DeviceEvents | where Timestamp > datetime({since}) and Timestamp <= datetime({until}) \
                     | where ActionType in ({types}) | where {col} != \"\" | summarize Events = count(), LastSeen = max(Timestamp) by {col}, DeviceId",
                    types = types.join(", ")
                ),
            )
        })
        .collect()
}

/// The host of a URL-ish string (`https://a.b/c`, `a.b:443/x`, `a.b`), lower-cased.
fn host_of(s: &str) -> Option<String> {
    let rest = s.split_once("://").map_or(s, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next()?;
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if host.starts_with('[') { host } else { host.split(':').next()? };
    (!host.is_empty()).then(|| host.trim_end_matches('.').to_ascii_lowercase())
}

/// Folds the rows of the hit query on `column` into per-indicator sightings for the `owned`
/// values. `RemoteUrl` rows count for an owned URL they equal (ignoring a trailing slash and
/// case) and for every owned domain that is their host or a parent of it.
pub fn read_hit_rows(
    column: &str,
    rows: &[Map<String, Value>],
    owned: &BTreeSet<(IndicatorType, String)>,
    into: &mut BTreeMap<(IndicatorType, String), Sighting>,
) {
    let kinds: &[IndicatorType] = match column {
        "RemoteIP" => &[IndicatorType::IpAddress],
        "SHA256" => &[IndicatorType::FileSha256],
        // DeviceEvents.SHA1 is a file's hash, never a signer certificate's: certificate
        // indicators are not counted (UNCERTAIN which event records them).
        "SHA1" => &[IndicatorType::FileSha1],
        "MD5" => &[IndicatorType::FileMd5],
        _ => &[],
    };
    for row in rows {
        let (Some(cell), Some(device)) = (cell_str(row, column), cell_str(row, "DeviceId")) else {
            continue;
        };
        let events = row.get("Events").and_then(Value::as_u64).unwrap_or(1);
        let last = cell_str(row, "LastSeen")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let mut keys: Vec<(IndicatorType, String)> = Vec::new();
        if column == "RemoteUrl" {
            let url = cell.trim_end_matches('/').to_ascii_lowercase();
            keys.extend(
                owned
                    .range((IndicatorType::Url, String::new())..)
                    .take_while(|(k, _)| *k == IndicatorType::Url)
                    .filter(|(_, v)| v.trim_end_matches('/').eq_ignore_ascii_case(&url))
                    .cloned(),
            );
            if let Some(host) = host_of(cell) {
                let mut h = host.as_str();
                loop {
                    let k = (IndicatorType::DomainName, h.to_owned());
                    if owned.contains(&k) {
                        keys.push(k);
                    }
                    match h.split_once('.') {
                        Some((_, parent)) if parent.contains('.') => h = parent,
                        _ => break,
                    }
                }
            }
        } else {
            for kind in kinds {
                let mut candidates = vec![cell.to_ascii_lowercase()];
                if *kind == IndicatorType::IpAddress
                    && let Ok(ip) = cell.parse::<std::net::Ipv6Addr>()
                {
                    // iocsync holds IPv6 in the 8-group form; `::ffff:a.b.c.d` is IPv4 traffic.
                    let g = ip.segments().iter().map(|s| format!("{s:x}")).collect::<Vec<_>>().join(":");
                    candidates.push(g);
                    if let Some(v4) = ip.to_ipv4_mapped() {
                        candidates.push(v4.to_string());
                    }
                }
                for c in candidates {
                    let k = (*kind, c);
                    if owned.contains(&k) {
                        keys.push(k);
                    }
                }
            }
        }
        for k in keys {
            into.entry(k).or_default().add(device, events, last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> (IndicatorType, String) {
        let kind = if s.parse::<std::net::IpAddr>().is_ok() {
            IndicatorType::IpAddress
        } else if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
            IndicatorType::FileSha256
        } else {
            IndicatorType::DomainName
        };
        (kind, s.to_owned())
    }

    #[test]
    fn queries_group_by_table_and_column_and_hashes_ask_both_file_tables() {
        let h = "a".repeat(64);
        let q = build_queries(&[t("198.51.100.7"), t(&h), t("evil.example")], 30, 10_000);
        let shapes: Vec<(&str, &str, usize)> =
            q.iter().map(|q| (q.probe.table, q.probe.column, q.values.len())).collect();
        assert_eq!(
            shapes,
            [
                ("DeviceFileEvents", "SHA256", 1),
                ("DeviceNetworkEvents", "RemoteIP", 1),
                ("DeviceNetworkEvents", "RemoteUrl", 1),
                ("DeviceProcessEvents", "SHA256", 1)
            ]
        );
        assert_eq!(
            q[1].text,
            "DeviceNetworkEvents | where Timestamp > ago(30d) | where RemoteIP has_any (\"198.51.100.7\") \
             | summarize Events = count(), LastSeen = max(Timestamp) by RemoteIP, DeviceId"
        );
        assert!(q[2].text.contains("RemoteUrl has_any (\"evil.example\")"), "{}", q[2].text);
    }

    #[test]
    fn batches_stay_within_the_length_budget_and_cover_every_value_once() {
        let values: Vec<_> = (0..500).map(|i| t(&format!("198.51.{}.{}", i / 250, i % 250))).collect();
        let q = build_queries(&values, 30, 2_000);
        assert!(q.len() > 1);
        assert!(q.iter().all(|q| q.text.len() <= 2_000), "every query within the budget");
        let covered: usize = q.iter().map(|q| q.values.len()).sum();
        assert_eq!(covered, 500);
        assert_eq!(build_queries(&values, 30, 2_000), q, "same input, same output");
    }

    #[test]
    fn ipv6_is_asked_in_both_spellings_and_read_back_from_either() {
        let v = (IndicatorType::IpAddress, "2001:db8:0:0:0:0:0:1".to_owned());
        let q = build_queries(std::slice::from_ref(&v), 7, 10_000);
        assert!(q[0].text.contains("\"2001:db8:0:0:0:0:0:1\", \"2001:db8::1\""), "{}", q[0].text);
        let row: Map<String, Value> = serde_json::from_value(serde_json::json!(
            {"RemoteIP": "2001:db8::1", "DeviceId": "d1", "Events": 3, "LastSeen": "2026-11-30T00:00:00Z"}
        ))
        .unwrap();
        let mut out = BTreeMap::new();
        read_rows(&q[0], &[row], &mut out);
        assert_eq!(out[&v].events, 3);
    }

    #[test]
    fn ipv4_is_a_whole_term_so_the_mapped_spelling_counts_and_a_longer_address_does_not() {
        let v = (IndicatorType::IpAddress, "45.1.2.3".to_owned());
        let q = &build_queries(std::slice::from_ref(&v), 30, 10_000)[0];
        assert!(q.text.contains("RemoteIP has_any (\"45.1.2.3\")"), "{}", q.text);
        let rows: Vec<Map<String, Value>> =
            [("::ffff:45.1.2.3", "d1"), ("45.1.2.33", "d2"), ("145.1.2.3", "d3"), ("45.1.2.3", "d4")]
                .iter()
                .map(|(ip, d)| {
                    serde_json::from_value(serde_json::json!({"RemoteIP": ip, "DeviceId": d})).unwrap()
                })
                .collect();
        let mut out = BTreeMap::new();
        read_rows(q, &rows, &mut out);
        assert_eq!(out[&v].devices, ["d1".to_owned(), "d4".to_owned()].into());
    }

    #[test]
    fn devices_are_counted_once_across_tables_and_urls() {
        let v = t("evil.example");
        let q = &build_queries(std::slice::from_ref(&v), 30, 10_000)[0];
        let rows: Vec<Map<String, Value>> = [
            ("https://evil.example/a", "d1"),
            ("http://cdn.evil.example/b", "d1"),
            ("https://evil.example/c", "d2"),
            ("https://notevil.example/", "d3"),
        ]
        .iter()
        .map(|(u, d)| {
            serde_json::from_value(serde_json::json!({"RemoteUrl": u, "DeviceId": d, "Events": 1})).unwrap()
        })
        .collect();
        let mut out = BTreeMap::new();
        read_rows(q, &rows, &mut out);
        assert_eq!(out[&v].device_count(), 2, "d3 visited notevil.example, which is another domain");
        assert_eq!(out[&v].events, 3);
    }

    #[test]
    fn verdicts_follow_the_threshold_and_the_settings() {
        let mut s = Sighting::default();
        for d in 0..12 {
            s.add(&format!("d{d}"), 1, None);
        }
        let one = Sighting { devices: ["d1".to_owned()].into(), events: 1, last_seen: None };
        assert_eq!(verdict(Some(&s), 5, OnHit::Hold, OnUnknown::Proceed), Verdict::Hold);
        assert_eq!(verdict(Some(&s), 5, OnHit::Audit, OnUnknown::Proceed), Verdict::Downgrade);
        assert_eq!(verdict(Some(&s), 5, OnHit::Report, OnUnknown::Proceed), Verdict::Report);
        assert_eq!(verdict(Some(&one), 5, OnHit::Hold, OnUnknown::Proceed), Verdict::Proceed);
        assert_eq!(verdict(None, 5, OnHit::Hold, OnUnknown::Proceed), Verdict::Proceed);
        assert_eq!(verdict(None, 5, OnHit::Hold, OnUnknown::Wait), Verdict::Wait);
    }

    #[test]
    fn hostile_values_stay_inside_their_literal() {
        for v in ["a\"b", "a'b", "a\\b", "a|b", "a\nb", "\") | take 1 //", "x\\\"", "\u{7}"] {
            let lit = kql_string(v);
            assert!(lit.starts_with('"') && lit.ends_with('"'));
            let inner = &lit[1..lit.len() - 1];
            assert!(!inner.contains('\n') && !inner.contains('\r'), "{lit}");
            // Every quote inside is escaped: an odd run of backslashes precedes it.
            for (i, _) in inner.match_indices('"') {
                let run = inner[..i].chars().rev().take_while(|c| *c == '\\').count();
                assert_eq!(run % 2, 1, "unescaped quote in {lit}");
            }
        }
    }

    #[test]
    fn hit_rows_map_to_owned_domains_urls_and_ip_spellings() {
        let owned: BTreeSet<(IndicatorType, String)> = [
            (IndicatorType::DomainName, "evil.example".to_owned()),
            (IndicatorType::Url, "https://bad.example/payload".to_owned()),
            (IndicatorType::IpAddress, "2001:db8:0:0:0:0:0:1".to_owned()),
            (IndicatorType::FileSha256, "a".repeat(64)),
        ]
        .into();
        let row = |col: &str, v: &str, d: &str| -> Map<String, Value> {
            serde_json::from_value(serde_json::json!({col: v, "DeviceId": d, "Events": 2})).unwrap()
        };
        let mut out = BTreeMap::new();
        read_hit_rows(
            "RemoteUrl",
            &[
                row("RemoteUrl", "https://cdn.evil.example:443/x", "d1"),
                row("RemoteUrl", "https://bad.example/payload/", "d2"),
                row("RemoteUrl", "https://notevil.example/", "d3"),
            ],
            &owned,
            &mut out,
        );
        read_hit_rows("RemoteIP", &[row("RemoteIP", "2001:db8::1", "d4")], &owned, &mut out);
        read_hit_rows("SHA256", &[row("SHA256", &"A".repeat(64), "d5")], &owned, &mut out);
        let got: Vec<(&str, usize, u64)> =
            out.iter().map(|((_, v), s)| (v.as_str(), s.device_count(), s.events)).collect();
        let h = "a".repeat(64);
        assert_eq!(
            got,
            [
                (h.as_str(), 1, 2),
                ("2001:db8:0:0:0:0:0:1", 1, 2),
                ("evil.example", 1, 2),
                ("https://bad.example/payload", 1, 2)
            ]
        );
        assert_eq!(hit_queries(Utc::now(), Utc::now()).len(), 5);
    }

    proptest! {
        #[test]
        fn every_value_is_asked_exactly_once_per_probe(raw in proptest::collection::vec("[a-z]{1,12}\\.[a-z]{2,4}", 1..80), budget in 300usize..3_000) {
            let values: Vec<_> = raw.iter().map(|s| (IndicatorType::DomainName, s.clone())).collect();
            let distinct: BTreeSet<_> = values.iter().cloned().collect();
            let q = build_queries(&values, 30, budget);
            let asked: Vec<_> = q.iter().flat_map(|q| q.values.iter().cloned()).collect();
            prop_assert_eq!(asked.len(), distinct.len());
            prop_assert_eq!(asked.into_iter().collect::<BTreeSet<_>>(), distinct);
            for q in &q {
                prop_assert!(q.text.len() <= budget || q.values.len() == 1);
            }
        }
    }
}
