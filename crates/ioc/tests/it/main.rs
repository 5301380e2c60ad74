//! Integration tests of iocsync-ioc: the real feed files, unit cases, property tests.

mod feeds;
mod props;
mod units;

use chrono::{DateTime, TimeZone, Utc};
use iocsync_ioc::formats::{Format, ParseOptions, Parsed};
use std::collections::BTreeMap;

/// Read a file of the shared feed corpus (`shared/feeds/` beside the repository checkout).
pub fn feed(path: &str) -> Vec<u8> {
    let full = format!("{}{}", concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/feeds/"), path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("cannot read feed file {full}: {e}"))
}

/// A fixed "now" so STIX validity checks do not depend on the clock.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 8, 22, 12, 0, 0).unwrap()
}

/// Options for `format` with defaults and the fixed clock.
pub fn opts(format: Format) -> ParseOptions {
    ParseOptions::new(format, now())
}

/// Accepted counts per Defender type and rejected counts per reason code.
pub fn summary(p: &Parsed) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let mut acc = BTreeMap::new();
    for i in &p.iocs {
        *acc.entry(i.kind.to_string()).or_insert(0) += 1;
    }
    let mut rej = BTreeMap::new();
    for r in &p.rejections {
        *rej.entry(r.reason.code().to_owned()).or_insert(0) += 1;
    }
    (acc, rej)
}

/// Assert lines, accepted per type, rejected per reason and duplicates of a parse result.
#[track_caller]
pub fn check(p: &Parsed, lines: u64, accepted: &[(&str, u64)], rejected: &[(&str, u64)], duplicates: u64) {
    let (acc, rej) = summary(p);
    let want_acc: BTreeMap<String, u64> = accepted.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    let want_rej: BTreeMap<String, u64> = rejected.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    assert_eq!(acc, want_acc, "accepted per type");
    assert_eq!(rej, want_rej, "rejected per reason");
    assert_eq!(p.duplicates, duplicates, "duplicates");
    assert_eq!(p.lines, lines, "lines");
}
