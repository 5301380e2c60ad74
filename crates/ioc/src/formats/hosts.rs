//! `hosts`: `0.0.0.0 name [name...]` lines (also `127.0.0.1`, `::1`, `::`).
//!
//! Every name after the address is a domain indicator. Local names (`localhost`,
//! `localhost.localdomain`, `broadcasthost`, `local`, `ip6-*`) are ignored, not rejected. A line
//! without a leading address is read as a list of names (plain domain lists are often served as
//! "hosts" feeds); a line with an address but no name is rejected `invalid-value`.

use super::text::{for_each_line, strip_comment};
use super::{Collector, ParseOptions, Parsed, Sink, Tally};
use crate::{IndicatorType, Reason, TypeHint};
use std::io::BufRead;
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
    // Reading a slice cannot fail.
    let lines = for_each_line(input, |n, line| hosts_line(n, line, hint, &mut out)).unwrap_or_default();
    out.finish(lines)
}

/// Parse a hosts file read line by line from `reader` into `sink`; only a read error fails.
pub fn parse_reader<R: BufRead, S: Sink + ?Sized>(
    reader: R,
    opts: &ParseOptions,
    sink: &mut S,
) -> std::io::Result<Tally> {
    let mut out = Collector::with_sink(opts, sink);
    let hint = Some(opts.type_hint.unwrap_or(TypeHint::Exact(IndicatorType::DomainName)));
    let lines = for_each_line(reader, |n, line| hosts_line(n, line, hint, &mut out))?;
    Ok(out.finish_tally(lines).1)
}

/// One line of a hosts file.
fn hosts_line<S: Sink>(n: u64, line: Result<&str, &[u8]>, hint: Option<TypeHint>, out: &mut Collector<S>) {
    let line = match line {
        Ok(l) => l,
        Err(bytes) => {
            let lossy = String::from_utf8_lossy(bytes);
            out.reject(Reason::InvalidValue, &lossy, n, Some("line is not valid UTF-8".into()));
            return;
        }
    };
    let t = strip_comment(line);
    if t.is_empty() {
        return;
    }
    let mut fields = t.split_whitespace().peekable();
    let Some(&first) = fields.peek() else { return };
    if first.parse::<IpAddr>().is_ok() {
        fields.next();
        if fields.peek().is_none() {
            out.reject(Reason::InvalidValue, t, n, Some("hosts line with an address but no name".into()));
            return;
        }
    }
    for name in fields {
        if !is_local_name(name) {
            out.value(name, hint, n);
        }
    }
}
