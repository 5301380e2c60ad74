//! `defender-csv`: the Defender portal's CSV import/export columns (spec §4.1).
//!
//! Header (case-insensitive): `indicatorType`, `indicatorValue`, `action`, `title`,
//! `description`, `expirationTime`, `severity`, `recommendedActions`, `rbacGroups`, `category`,
//! `mitretechniques`, `GenerateAlert`. Only the first two are required. Each row becomes an `Ioc`
//! of the row's type with the other cells in `attrs` (empty cells are `None`); policy validates the
//! action and severity names later. A bad `indicatorType` is `unsupported-type`; an unreadable
//! `expirationTime` or `GenerateAlert` rejects the row `invalid-value`.

use super::csv::{Rows, cell, count_lines, norm_header};
use super::{Collector, FormatError, ParseOptions, Parsed, strip_bom};
use crate::{Reason, SourceAttrs, TypeHint};
use chrono::{DateTime, NaiveDateTime, Utc};

/// Parse a portal CSV. Fails when the header lacks `indicatorType` or `indicatorValue`.
pub fn parse(input: &[u8], opts: &ParseOptions) -> Result<Parsed, FormatError> {
    let body = strip_bom(input);
    let mut rows = Rows::new(body);
    let Some((_, header)) = rows.next_row() else {
        return Ok(Collector::new(opts).finish(count_lines(body)));
    };
    let names: Vec<String> = header.iter().map(|f| norm_header(&String::from_utf8_lossy(f))).collect();
    let col = |n: &str| names.iter().position(|h| h == n);
    let (Some(ty_col), Some(val_col)) = (col("indicatortype"), col("indicatorvalue")) else {
        return Err(FormatError::MissingColumn("indicatorType/indicatorValue".into(), names.join(", ")));
    };
    let cols = [
        "action",
        "title",
        "description",
        "expirationtime",
        "severity",
        "recommendedactions",
        "rbacgroups",
        "category",
        "mitretechniques",
        "generatealert",
    ]
    .map(col);
    let mut out = Collector::new(opts);
    while let Some((line, rec)) = rows.next_row() {
        let value = cell(&rec, val_col).unwrap_or_default().into_owned();
        let get = |i: Option<usize>| -> Option<String> {
            i.and_then(|i| cell(&rec, i)).map(|c| c.trim().to_owned()).filter(|c| !c.is_empty())
        };
        let ty = get(Some(ty_col)).unwrap_or_default();
        let hint = match ty.parse::<TypeHint>() {
            Ok(h) => h,
            Err(e) => {
                out.reject(Reason::UnsupportedType, &value, line, Some(e.to_string()));
                continue;
            }
        };
        let [action, title, description, expiration, severity, recommended, rbac, category, mitre, alert] =
            cols.map(get);
        let expiration = match expiration.as_deref().map(parse_time) {
            None => None,
            Some(Some(t)) => Some(t),
            Some(None) => {
                let detail =
                    format!("expirationTime `{}` is not an ISO 8601 time", expiration.unwrap_or_default());
                out.reject(Reason::InvalidValue, &value, line, Some(detail));
                continue;
            }
        };
        let generate_alert = match alert.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => None,
            Some("true" | "1" | "yes") => Some(true),
            Some("false" | "0" | "no") => Some(false),
            Some(other) => {
                let detail = format!("GenerateAlert `{other}` is not True or False");
                out.reject(Reason::InvalidValue, &value, line, Some(detail));
                continue;
            }
        };
        let list = |s: Option<String>| -> Vec<String> {
            s.map(|s| s.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect())
                .unwrap_or_default()
        };
        let attrs = SourceAttrs {
            action,
            severity,
            title,
            description,
            expiration,
            recommended_actions: recommended,
            rbac_groups: list(rbac),
            category,
            mitre_techniques: list(mitre),
            generate_alert,
        };
        out.value_with(&value, Some(hint), line, None, Some(Box::new(attrs)));
    }
    Ok(out.finish(count_lines(body)))
}

/// RFC 3339 (`2026-01-31T00:00:00.0Z`), or a naive `YYYY-MM-DD[ T]HH:MM:SS[.f]` taken as UTC.
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|n| n.and_utc())
}
