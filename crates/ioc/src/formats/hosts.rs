//! `hosts`: `0.0.0.0 name [name...]` lines (also `127.0.0.1`, `::1`, `::`).
//!
//! Every name after the address is a domain indicator. Local names (`localhost`,
//! `localhost.localdomain`, `broadcasthost`, `local`, `ip6-*`) are ignored, not rejected. A line
//! without a leading address is read as a list of names (plain domain lists are often served as
//! "hosts" feeds); a line with an address but no name is rejected `invalid-value`.

use super::text::{lines, strip_comment};
use super::{Collector, ParseOptions, Parsed};
use crate::{IndicatorType, Reason, TypeHint};
use std::net::IpAddr;

/// Names every hosts file carries for the machine itself.
fn is_local_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    matches!(lower.as_str(), "localhost" | "localhost.localdomain" | "broadcasthost" | "local" | "0.0.0.0")
        || lower.starts_with("ip6-")
}

/// Parse a hosts file. Never fails.
pub fn parse(input: &[u8], opts: &ParseOptions) -> Parsed {
    let mut out = Collector::new(opts);
    let hint = Some(opts.type_hint.unwrap_or(TypeHint::Exact(IndicatorType::DomainName)));
    let mut count = 0;
    for (n, line) in lines(input) {
        count = n;
        let line = match line {
            Ok(l) => l,
            Err(bytes) => {
                let lossy = String::from_utf8_lossy(bytes);
                out.reject(Reason::InvalidValue, &lossy, n, Some("line is not valid UTF-8".into()));
                continue;
            }
        };
        let t = strip_comment(line);
        if t.is_empty() {
            continue;
        }
        let mut fields = t.split_whitespace().peekable();
        let Some(&first) = fields.peek() else { continue };
        if first.parse::<IpAddr>().is_ok() {
            fields.next();
            if fields.peek().is_none() {
                out.reject(Reason::InvalidValue, t, n, Some("hosts line with an address but no name".into()));
                continue;
            }
        }
        for name in fields {
            if !is_local_name(name) {
                out.value(name, hint, n);
            }
        }
    }
    out.finish(count)
}
