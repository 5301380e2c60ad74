//! `stix`: STIX 2.0/2.1 bundles (also a bare list of objects or a single object), and `taxii`
//! envelopes (`{"objects": [...], "more", "next"}`) whose objects are parsed the same way.
//!
//! Indicators with `pattern_type` `stix` (or none, STIX 2.0) are read through a small pattern
//! parser ([`parse_pattern`]) supporting this subset: observations `[...]` joined by `OR`;
//! comparisons `=` or `IN (...)` on `ipv4-addr:value`, `ipv6-addr:value`, `domain-name:value`,
//! `url:value`, `file:hashes.MD5|'SHA-1'|'SHA-256'` (any case, quoted or not) and
//! `x509-certificate:hashes.'SHA-1'`; `OR` inside an observation; `AND` inside an observation
//! only between hashes of the same object (each hash is yielded). Everything else (other
//! operators, `NOT`, other paths, `AND`/`FOLLOWEDBY` between observations, qualifiers such as
//! `WITHIN`) is `unsupported-pattern`, as is any other `pattern_type`.
//!
//! A `revoked` indicator and one whose `valid_until` is not after `opts.now` are dropped and
//! recorded as `invalid-value` rejections whose detail says "revoked" / "expired" (no new reason
//! code: they are values the feed itself withdrew). A future `valid_until` sets `Ioc::valid_until`.
//! Bare cyber-observables (`ipv4-addr`, `ipv6-addr`, `domain-name`, `url`, `file` and
//! `x509-certificate` hashes) count as indicators too. Other object types are ignored. The line of
//! a value is the 1-based ordinal of its object.

use super::{Collector, FormatError, ParseOptions, Parsed, strip_bom};
use crate::{IndicatorType, Reason, TypeHint};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// One value named by a STIX pattern, with the type its object path implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternValue {
    /// The type implied by the object path (e.g. `file:hashes.MD5` -> `FileMd5`).
    pub kind: IndicatorType,
    /// The literal as written in the pattern (unescaped, not yet normalised).
    pub value: String,
}

/// A pattern outside the supported subset, or not a valid pattern; the text says which part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(pub String);

fn perr<T>(msg: impl Into<String>) -> Result<T, PatternError> {
    Err(PatternError(msg.into()))
}

/// At most 64 bytes of a pattern fragment in an error message.
fn short(s: &str) -> &str {
    crate::normalize::truncate(s, 64)
}

/// Maximum nesting of parentheses in a pattern (deeper input is refused, never overflows).
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    LBracket,
    RBracket,
    LParen,
    RParen,
    Comma,
    Op(&'static str),
    Str(String),
    Word(String),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, PatternError> {
    let mut toks = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '[' | ']' | '(' | ')' | ',' => {
                chars.next();
                toks.push(match c {
                    '[' => Tok::LBracket,
                    ']' => Tok::RBracket,
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    _ => Tok::Comma,
                });
            }
            '=' => {
                chars.next();
                toks.push(Tok::Op("="));
            }
            '!' | '<' | '>' => {
                chars.next();
                let eq = chars.peek().is_some_and(|&(_, n)| n == '=');
                if eq {
                    chars.next();
                }
                toks.push(Tok::Op(match (c, eq) {
                    ('!', true) => "!=",
                    ('<', true) => "<=",
                    ('>', true) => ">=",
                    ('<', false) => "<",
                    ('>', false) => ">",
                    _ => return perr(format!("unexpected `!` at offset {i}")),
                }));
            }
            '\'' => {
                chars.next();
                let mut lit = String::new();
                let mut closed = false;
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next() {
                            Some((_, e @ ('\'' | '\\'))) => lit.push(e),
                            _ => return perr("invalid escape in string literal (only \\' and \\\\)"),
                        },
                        '\'' => {
                            closed = true;
                            break;
                        }
                        c => lit.push(c),
                    }
                }
                if !closed {
                    return perr("unterminated string literal");
                }
                toks.push(Tok::Str(lit));
            }
            c if c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '*' | '+') => {
                let mut w = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '*' | '+') {
                        w.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                toks.push(Tok::Word(w));
            }
            c => return perr(format!("unexpected character `{c}` at offset {i}")),
        }
    }
    Ok(toks)
}

/// A comparison-expression tree inside one observation.
#[derive(Debug)]
enum CExpr {
    Leaf { object: String, kind: IndicatorType, values: Vec<String> },
    And(Vec<CExpr>),
    Or(Vec<CExpr>),
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

fn is_kw(t: Option<&Tok>, kw: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn enter(&mut self) -> Result<(), PatternError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return perr("pattern nests too deeply");
        }
        Ok(())
    }

    /// obs_or := obs_and ('OR' obs_and)*
    fn obs_or(&mut self) -> Result<Vec<PatternValue>, PatternError> {
        let mut out = self.obs_and()?;
        while is_kw(self.peek(), "OR") {
            self.pos += 1;
            out.extend(self.obs_and()?);
        }
        Ok(out)
    }

    /// obs_and := obs_unit; `AND` or `FOLLOWEDBY` between observations is unsupported.
    fn obs_and(&mut self) -> Result<Vec<PatternValue>, PatternError> {
        let out = self.obs_unit()?;
        for kw in ["WITHIN", "REPEATS", "START", "STOP"] {
            if is_kw(self.peek(), kw) {
                return perr(format!("qualifier {kw} is not supported"));
            }
        }
        if is_kw(self.peek(), "AND") {
            return perr("AND between observations is not supported (only OR)");
        }
        if is_kw(self.peek(), "FOLLOWEDBY") {
            return perr("FOLLOWEDBY is not supported");
        }
        Ok(out)
    }

    /// obs_unit := '[' comp_or ']' | '(' obs_or ')'
    fn obs_unit(&mut self) -> Result<Vec<PatternValue>, PatternError> {
        match self.next() {
            Some(Tok::LBracket) => {
                self.enter()?;
                let expr = self.comp_or()?;
                if self.next() != Some(Tok::RBracket) {
                    return perr("expected `]` to close the observation");
                }
                self.depth -= 1;
                let mut out = Vec::new();
                flatten(expr, &mut out)?;
                Ok(out)
            }
            Some(Tok::LParen) => {
                self.enter()?;
                let out = self.obs_or()?;
                if self.next() != Some(Tok::RParen) {
                    return perr("expected `)`");
                }
                self.depth -= 1;
                Ok(out)
            }
            _ => perr("expected `[` to open an observation"),
        }
    }

    /// comp_or := comp_and ('OR' comp_and)*
    fn comp_or(&mut self) -> Result<CExpr, PatternError> {
        let mut parts = vec![self.comp_and()?];
        while is_kw(self.peek(), "OR") {
            self.pos += 1;
            parts.push(self.comp_and()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { CExpr::Or(parts) })
    }

    /// comp_and := comp_unit ('AND' comp_unit)*
    fn comp_and(&mut self) -> Result<CExpr, PatternError> {
        let mut parts = vec![self.comp_unit()?];
        while is_kw(self.peek(), "AND") {
            self.pos += 1;
            parts.push(self.comp_unit()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { CExpr::And(parts) })
    }

    /// comp_unit := '(' comp_or ')' | path op literal
    fn comp_unit(&mut self) -> Result<CExpr, PatternError> {
        match self.next() {
            Some(Tok::LParen) => {
                self.enter()?;
                let e = self.comp_or()?;
                if self.next() != Some(Tok::RParen) {
                    return perr("expected `)`");
                }
                self.depth -= 1;
                Ok(e)
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("NOT") => perr("NOT is not supported"),
            Some(Tok::Word(w)) => {
                let mut path = w;
                if path.ends_with('.') {
                    match self.next() {
                        Some(Tok::Str(s)) => path.push_str(&s),
                        _ => return perr(format!("incomplete object path `{}`", short(&path))),
                    }
                }
                let (object, kind) = map_path(&path)?;
                let values = match self.next() {
                    Some(Tok::Op("=")) => vec![self.literal()?],
                    Some(Tok::Word(w)) if w.eq_ignore_ascii_case("IN") => self.set()?,
                    Some(Tok::Op(op)) => {
                        return perr(format!("operator `{op}` is not supported (only = and IN)"));
                    }
                    Some(Tok::Word(w)) => {
                        return perr(format!("operator `{}` is not supported (only = and IN)", short(&w)));
                    }
                    _ => return perr("expected a comparison operator"),
                };
                Ok(CExpr::Leaf { object, kind, values })
            }
            _ => perr("expected an object path"),
        }
    }

    fn literal(&mut self) -> Result<String, PatternError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(s),
            _ => perr("expected a string literal (other literal types are not supported)"),
        }
    }

    /// set := '(' literal (',' literal)* ')'
    fn set(&mut self) -> Result<Vec<String>, PatternError> {
        if self.next() != Some(Tok::LParen) {
            return perr("expected `(` after IN");
        }
        let mut out = vec![self.literal()?];
        loop {
            match self.next() {
                Some(Tok::Comma) => out.push(self.literal()?),
                Some(Tok::RParen) => return Ok(out),
                _ => return perr("expected `,` or `)` in IN set"),
            }
        }
    }
}

/// Map an object path to the indicator type it names.
fn map_path(path: &str) -> Result<(String, IndicatorType), PatternError> {
    let Some((object, prop)) = path.split_once(':') else {
        return perr(format!("`{}` is not an object path", short(path)));
    };
    let object = object.to_ascii_lowercase();
    let kind = match (object.as_str(), prop) {
        ("ipv4-addr" | "ipv6-addr", "value") => Some(IndicatorType::IpAddress),
        ("domain-name", "value") => Some(IndicatorType::DomainName),
        ("url", "value") => Some(IndicatorType::Url),
        ("file" | "x509-certificate", p) => p.strip_prefix("hashes.").and_then(|h| {
            let h = h.trim_matches('"').to_ascii_uppercase();
            match (object.as_str(), h.as_str()) {
                ("file", "MD5") => Some(IndicatorType::FileMd5),
                ("file", "SHA-1" | "SHA1") => Some(IndicatorType::FileSha1),
                ("file", "SHA-256" | "SHA256") => Some(IndicatorType::FileSha256),
                ("x509-certificate", "SHA-1" | "SHA1") => Some(IndicatorType::CertificateThumbprint),
                _ => None,
            }
        }),
        _ => None,
    };
    match kind {
        Some(k) => Ok((object, k)),
        None => perr(format!("object path `{}` is not supported", short(path))),
    }
}

/// Values of a comparison tree: OR is a union; AND only between hashes of one object.
fn flatten(expr: CExpr, out: &mut Vec<PatternValue>) -> Result<(), PatternError> {
    match expr {
        CExpr::Leaf { kind, values, .. } => {
            out.extend(values.into_iter().map(|value| PatternValue { kind, value }));
            Ok(())
        }
        CExpr::Or(parts) => parts.into_iter().try_for_each(|p| flatten(p, out)),
        CExpr::And(parts) => {
            let mut object: Option<String> = None;
            for p in &parts {
                match p {
                    CExpr::Leaf { object: o, kind, .. }
                        if kind.is_file_hash() || *kind == IndicatorType::CertificateThumbprint =>
                    {
                        if object.get_or_insert_with(|| o.clone()) != o {
                            return perr("AND across different objects is not supported");
                        }
                    }
                    _ => return perr("AND is only supported between hashes of one file or certificate"),
                }
            }
            parts.into_iter().try_for_each(|p| flatten(p, out))
        }
    }
}

/// Parse a STIX pattern into the values it names, or say why it is outside the subset.
pub fn parse_pattern(pattern: &str) -> Result<Vec<PatternValue>, PatternError> {
    let toks = tokenize(pattern)?;
    let mut p = Parser { toks, pos: 0, depth: 0 };
    let out = p.obs_or()?;
    if p.pos < p.toks.len() {
        return perr("unexpected text after the pattern");
    }
    Ok(out)
}

fn malformed(format: &'static str, detail: impl Into<String>) -> FormatError {
    FormatError::Malformed { format, detail: detail.into() }
}

/// Parse a STIX bundle, list of objects or single object.
pub fn parse(input: &[u8], opts: &ParseOptions) -> Result<Parsed, FormatError> {
    let v: Value = serde_json::from_slice(strip_bom(input)).map_err(|e| malformed("stix", e.to_string()))?;
    let objects: &[Value] = match &v {
        Value::Array(items) => items,
        Value::Object(o) => match o.get("objects") {
            Some(Value::Array(items)) => items,
            Some(_) => return Err(malformed("stix", "`objects` is not a list")),
            None if o.get("type").is_some_and(Value::is_string) => std::slice::from_ref(&v),
            None => return Err(malformed("stix", "expected a bundle, a list of objects or one STIX object")),
        },
        _ => return Err(malformed("stix", "expected a JSON object or list")),
    };
    Ok(parse_objects(objects, opts))
}

/// Parse a TAXII 2.1 envelope (`{"objects": [...], "more", "next"}`); an empty envelope `{}` has
/// no objects. A STIX bundle is accepted too.
pub fn parse_taxii(input: &[u8], opts: &ParseOptions) -> Result<Parsed, FormatError> {
    let v: Value = serde_json::from_slice(strip_bom(input)).map_err(|e| malformed("taxii", e.to_string()))?;
    let Value::Object(o) = &v else {
        return Err(malformed("taxii", "expected a TAXII envelope object"));
    };
    match o.get("objects") {
        Some(Value::Array(items)) => Ok(parse_objects(items, opts)),
        None => Ok(parse_objects(&[], opts)),
        Some(_) => Err(malformed("taxii", "`objects` is not a list")),
    }
}

fn parse_objects(objects: &[Value], opts: &ParseOptions) -> Parsed {
    let mut out = Collector::new(opts);
    for (i, obj) in objects.iter().enumerate() {
        let line = i as u64 + 1;
        let Some(ty) = obj.get("type").and_then(Value::as_str) else {
            out.reject(Reason::InvalidValue, "", line, Some("object without a `type`".into()));
            continue;
        };
        match ty {
            "indicator" => indicator(obj, line, opts.now, &mut out),
            "ipv4-addr" | "ipv6-addr" | "domain-name" | "url" => {
                let kind = match ty {
                    "domain-name" => IndicatorType::DomainName,
                    "url" => IndicatorType::Url,
                    _ => IndicatorType::IpAddress,
                };
                match obj.get("value").and_then(Value::as_str) {
                    Some(v) => out.value(v, Some(TypeHint::Exact(kind)), line),
                    None => {
                        let detail = Some("observable without `value`".to_owned());
                        out.reject(Reason::InvalidValue, ty, line, detail);
                    }
                }
            }
            "file" | "x509-certificate" => {
                if let Some(Value::Object(hashes)) = obj.get("hashes") {
                    for (alg, value) in hashes {
                        let Some(value) = value.as_str() else { continue };
                        if let Ok((_, kind)) = map_path(&format!("{ty}:hashes.{alg}")) {
                            out.value(value, Some(TypeHint::Exact(kind)), line);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out.finish(objects.len() as u64)
}

fn indicator(obj: &Value, line: u64, now: DateTime<Utc>, out: &mut Collector) {
    let pattern = obj.get("pattern").and_then(Value::as_str);
    let shown = pattern.unwrap_or("");
    if obj.get("revoked").and_then(Value::as_bool) == Some(true) {
        out.reject(Reason::InvalidValue, shown, line, Some("revoked indicator".into()));
        return;
    }
    let mut valid_until = None;
    if let Some(vu) = obj.get("valid_until") {
        let parsed = vu.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok());
        match parsed {
            Some(t) if t.with_timezone(&Utc) <= now => {
                let detail = format!("expired: valid_until {t} is not after now");
                out.reject(Reason::InvalidValue, shown, line, Some(detail));
                return;
            }
            Some(t) => valid_until = Some(t.with_timezone(&Utc)),
            None => {
                out.reject(
                    Reason::InvalidValue,
                    shown,
                    line,
                    Some("valid_until is not an RFC 3339 time".into()),
                );
                return;
            }
        }
    }
    if let Some(pt) = obj.get("pattern_type") {
        let pt = pt.as_str().unwrap_or("");
        if !pt.eq_ignore_ascii_case("stix") {
            let detail = format!("pattern_type `{pt}` is not supported (only stix)");
            out.reject(Reason::UnsupportedPattern, shown, line, Some(detail));
            return;
        }
    }
    let Some(pattern) = pattern else {
        out.reject(Reason::InvalidValue, "", line, Some("indicator without a pattern".into()));
        return;
    };
    match parse_pattern(pattern) {
        Ok(values) => {
            for v in values {
                out.value_with(&v.value, Some(TypeHint::Exact(v.kind)), line, valid_until, None);
            }
        }
        Err(e) => out.reject(Reason::UnsupportedPattern, pattern, line, Some(e.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(p: &str) -> Vec<(IndicatorType, String)> {
        parse_pattern(p).unwrap().into_iter().map(|v| (v.kind, v.value)).collect()
    }

    #[test]
    fn subset() {
        assert_eq!(
            kinds("[ipv4-addr:value = '1.2.3.4']"),
            vec![(IndicatorType::IpAddress, "1.2.3.4".into())]
        );
        assert_eq!(kinds("[file:hashes.'SHA-256' = 'ab']")[0].0, IndicatorType::FileSha256);
        assert_eq!(kinds("[file:hashes.md5 = 'ab']")[0].0, IndicatorType::FileMd5);
        assert_eq!(
            kinds("[x509-certificate:hashes.'SHA-1' = 'ab']")[0].0,
            IndicatorType::CertificateThumbprint
        );
        assert_eq!(kinds("[url:value = 'it\\'s\\\\']")[0].1, "it's\\");
        assert_eq!(kinds("[domain-name:value IN ('a.com', 'b.com')]").len(), 2);
        assert_eq!(kinds("[domain-name:value = 'a.com'] OR ([url:value = 'http://b.com/'])").len(), 2);
        assert_eq!(kinds("[file:hashes.MD5 = 'a' AND file:hashes.'SHA-1' = 'b']").len(), 2);
    }

    #[test]
    fn unsupported() {
        for p in [
            "[a:value = 'x']",
            "[ipv4-addr:value != '1.2.3.4']",
            "[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [ipv4-addr:value = '1.2.3.5']",
            "[ipv4-addr:value = '1.2.3.4'] AND [ipv4-addr:value = '1.2.3.5']",
            "[ipv4-addr:value = '1.2.3.4'] WITHIN 5 SECONDS",
            "[ipv4-addr:value = '1.2.3.4' AND domain-name:value = 'a.com']",
            "[file:name = 'x']",
            "[ipv4-addr:value = '1.2.3.4'",
            "[url:value = 'unterminated]",
            "[ipv4-addr:value MATCHES '^1']",
            "",
            &"(".repeat(10_000),
        ] {
            assert!(parse_pattern(p).is_err(), "{p}");
        }
    }
}
