#![allow(clippy::print_stdout)]
//! Temporary: dump counts for a feed.
use iocsync_ioc::formats::{Column, Format, ParseOptions};
use std::collections::BTreeMap;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&args[1]).unwrap();
    let format: Format = args[2].parse().unwrap();
    let mut opts = ParseOptions::new(format, chrono::Utc::now());
    if let Some(c) = args.get(3) {
        opts.column = Some(c.parse::<usize>().map(Column::Index).unwrap_or(Column::Name(c.clone())));
    }
    let p = iocsync_ioc::parse(&bytes, &opts).unwrap();
    let mut acc: BTreeMap<String, u64> = BTreeMap::new();
    for i in &p.iocs {
        *acc.entry(i.kind.to_string()).or_default() += 1;
    }
    let mut rej: BTreeMap<String, u64> = BTreeMap::new();
    for r in &p.rejections {
        *rej.entry(r.reason.to_string()).or_default() += 1;
    }
    println!(
        "sniff={:?} lines={} dup={} accepted={:?} rejected={:?}",
        iocsync_ioc::formats::sniff(&bytes),
        p.lines,
        p.duplicates,
        acc,
        rej
    );
    if std::env::var("SHOW").is_ok() {
        for r in &p.rejections {
            println!("R {} {} {:?} {:?}", r.line, r.reason, r.value, r.detail);
        }
    }
}
