//! Parse throughput on two real feeds, in lines per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iocsync_ioc::formats::{Column, Format, ParseOptions};
use std::hint::black_box;

fn feed(path: &str) -> Vec<u8> {
    let full = format!("{}{}", concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/feeds/"), path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("cannot read {full}: {e}"))
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    let now = chrono::Utc::now();

    let ipsum = feed("stamparm-ipsum/ipsum.txt");
    let text = ParseOptions::new(Format::Text, now);
    let lines = iocsync_ioc::parse(&ipsum, &text).map(|p| p.lines).unwrap_or(0);
    group.throughput(Throughput::Elements(lines));
    group.bench_function("ipsum_text", |b| b.iter(|| iocsync_ioc::parse(black_box(&ipsum), &text)));

    let urlhaus = feed("abusech-urlhaus/urlhaus.csv");
    let mut csv = ParseOptions::new(Format::Csv, now);
    csv.column = Some(Column::Name("url".into()));
    let lines = iocsync_ioc::parse(&urlhaus, &csv).map(|p| p.lines).unwrap_or(0);
    group.throughput(Throughput::Elements(lines));
    group.bench_function("urlhaus_csv", |b| b.iter(|| iocsync_ioc::parse(black_box(&urlhaus), &csv)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
