//! `misp`: MISP event JSON (`{"Event": …}`), the REST wrapper `{"response": [{"Event": …}, …]}`,
//! or a list of events; plus [`parse_manifest`] for a MISP feed's `manifest.json`.
//!
//! Attributes of the event and of its objects (`Object[].Attribute[]`) are read when `to_ids` is
//! true (`true`, `1`, `"1"`, `"true"`). Attributes with `to_ids` false or absent, and deleted
//! ones, are skipped silently: MISP marks them as context, not as detection data, so they are
//! neither accepted nor rejected. Supported types: `ip-src`, `ip-dst`, `ip-src|port`,
//! `ip-dst|port`, `domain`, `hostname`, `hostname|port`, `domain|ip` (both parts), `url`, `md5`,
//! `sha1`, `sha256`, `filename|md5`, `filename|sha1`, `filename|sha256` (the hash part),
//! `x509-fingerprint-sha1`; any other type is `unsupported-type`. The line of a value is the
//! 1-based ordinal of its attribute in the document.

use super::{Collector, FormatError, ParseOptions, Parsed, strip_bom};
use crate::{IndicatorType, Reason, TypeHint};
use serde_json::Value;

/// One event listed by a MISP feed's `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Event UUID: the event file is `<uuid>.json` next to the manifest.
    pub uuid: String,
    /// Event title (`info`).
    pub info: String,
    /// Last change of the event (Unix seconds); lets the app refetch only changed events.
    pub timestamp: i64,
    /// Event date (`YYYY-MM-DD`), when given.
    pub date: Option<String>,
}

fn malformed(detail: impl Into<String>) -> FormatError {
    FormatError::Malformed { format: "misp", detail: detail.into() }
}

/// Read a MISP feed `manifest.json` (`{uuid: {info, timestamp, ...}}`), oldest event first
/// (ties by uuid).
pub fn parse_manifest(input: &[u8]) -> Result<Vec<ManifestEntry>, FormatError> {
    let v: Value = serde_json::from_slice(strip_bom(input)).map_err(|e| malformed(e.to_string()))?;
    let Value::Object(map) = v else {
        return Err(malformed("a MISP feed manifest is a JSON object keyed by event uuid"));
    };
    let mut out = Vec::with_capacity(map.len());
    for (uuid, entry) in map {
        let timestamp = match entry.get("timestamp") {
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            Some(Value::Number(n)) => n.as_i64(),
            _ => None,
        }
        .ok_or_else(|| malformed(format!("manifest entry {uuid} has no numeric `timestamp`")))?;
        let info = entry.get("info").and_then(Value::as_str).unwrap_or_default().to_owned();
        let date = entry.get("date").and_then(Value::as_str).map(str::to_owned);
        out.push(ManifestEntry { uuid, info, timestamp, date });
    }
    out.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then_with(|| a.uuid.cmp(&b.uuid)));
    Ok(out)
}

/// The events in a MISP document.
fn events(v: &Value) -> Result<Vec<&Value>, FormatError> {
    fn unwrap_event(item: &Value) -> &Value {
        item.get("Event").unwrap_or(item)
    }
    match v {
        Value::Array(items) => Ok(items.iter().map(unwrap_event).collect()),
        Value::Object(o) => {
            if let Some(e) = o.get("Event") {
                Ok(vec![e])
            } else if let Some(r) = o.get("response") {
                match r {
                    Value::Array(items) => Ok(items.iter().map(unwrap_event).collect()),
                    other => Ok(vec![unwrap_event(other)]),
                }
            } else if o.contains_key("Attribute") || o.contains_key("Object") {
                Ok(vec![v])
            } else {
                Err(malformed("expected {\"Event\": …}, {\"response\": […]} or a list of events"))
            }
        }
        _ => Err(malformed("expected a JSON object or list")),
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        Some(Value::String(s)) => matches!(s.trim(), "1" | "true" | "True" | "TRUE"),
        _ => false,
    }
}

/// Parse MISP events.
pub fn parse(input: &[u8], opts: &ParseOptions) -> Result<Parsed, FormatError> {
    let v: Value = serde_json::from_slice(strip_bom(input)).map_err(|e| malformed(e.to_string()))?;
    let mut out = Collector::new(opts);
    let mut n = 0u64;
    for event in events(&v)? {
        let direct = event.get("Attribute").and_then(Value::as_array).into_iter().flatten();
        let objects = event.get("Object").and_then(Value::as_array).into_iter().flatten();
        let nested = objects.flat_map(|o| o.get("Attribute").and_then(Value::as_array).into_iter().flatten());
        for attr in direct.chain(nested) {
            n += 1;
            attribute(attr, n, &mut out);
        }
    }
    Ok(out.finish(n))
}

fn attribute(attr: &Value, line: u64, out: &mut Collector) {
    if !attr.is_object() {
        out.reject(Reason::InvalidValue, "", line, Some("attribute is not a JSON object".into()));
        return;
    }
    if truthy(attr.get("deleted")) || !truthy(attr.get("to_ids")) {
        return;
    }
    let ty = attr.get("type").and_then(Value::as_str).unwrap_or("");
    let value = match attr.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(num)) => num.to_string(),
        _ => {
            out.reject(Reason::InvalidValue, "", line, Some(format!("`{ty}` attribute without a value")));
            return;
        }
    };
    let exact = |t| Some(TypeHint::Exact(t));
    let (first, second) = match value.split_once('|') {
        Some((a, b)) => (a, Some(b)),
        None => (value.as_str(), None),
    };
    let composite = |out: &mut Collector, hint, part: Option<&str>| match part {
        Some(p) => out.value(p, hint, line),
        None => {
            let detail = format!("`{ty}` value needs two `|` parts");
            out.reject(Reason::InvalidValue, &value, line, Some(detail));
        }
    };
    match ty {
        "ip-src" | "ip-dst" => out.value(&value, exact(IndicatorType::IpAddress), line),
        "ip-src|port" | "ip-dst|port" => out.value(first, exact(IndicatorType::IpAddress), line),
        "domain" | "hostname" => out.value(&value, exact(IndicatorType::DomainName), line),
        "hostname|port" => out.value(first, exact(IndicatorType::DomainName), line),
        "domain|ip" => {
            out.value(first, exact(IndicatorType::DomainName), line);
            composite(out, exact(IndicatorType::IpAddress), second);
        }
        "url" => out.value(&value, exact(IndicatorType::Url), line),
        "md5" => out.value(&value, exact(IndicatorType::FileMd5), line),
        "sha1" => out.value(&value, exact(IndicatorType::FileSha1), line),
        "sha256" => out.value(&value, exact(IndicatorType::FileSha256), line),
        "filename|md5" => composite(out, exact(IndicatorType::FileMd5), second),
        "filename|sha1" => composite(out, exact(IndicatorType::FileSha1), second),
        "filename|sha256" => composite(out, exact(IndicatorType::FileSha256), second),
        "x509-fingerprint-sha1" => out.value(&value, exact(IndicatorType::CertificateThumbprint), line),
        other => out.reject(
            Reason::UnsupportedType,
            &value,
            line,
            Some(format!(
                "MISP type `{}` has no Defender indicator type",
                crate::normalize::truncate(other, 64)
            )),
        ),
    }
}
