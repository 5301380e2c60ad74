//! Benchmarks of the pure sync logic at tenant scale: planning 15,000 desired against 15,000
//! existing indicators, and allowlist filtering of 15,000 values against Tranco 10k + AWS ranges.

use chrono::{Duration, TimeZone, Utc};
use criterion::{BatchSize, Criterion, black_box, criterion_group, criterion_main};
use iocsync_core::{Allowlist, Existing, FeedPolicy, Owner, PlanSettings, Severity, apply_policy, plan};
use iocsync_ioc::{IndicatorType, Ioc};

fn feed(rel: &str) -> Vec<u8> {
    let path = format!("{}/../../../shared/feeds/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn value(i: usize) -> (IndicatorType, String) {
    match i % 4 {
        0 => (
            IndicatorType::IpAddress,
            format!("{}.{}.{}.{}", 11 + (i >> 16) % 200, (i >> 8) % 256, i % 256, 7),
        ),
        1 => (IndicatorType::DomainName, format!("host{i}.bad{}.example", i % 97)),
        2 => (IndicatorType::Url, format!("https://cdn{i}.example.net/p/{i}/x.exe")),
        _ => (IndicatorType::FileSha256, format!("{i:064x}")),
    }
}

fn iocs(range: std::ops::Range<usize>) -> Vec<Ioc> {
    range
        .map(|i| {
            let (k, v) = value(i);
            Ioc::new(k, v, i as u64 + 1)
        })
        .collect()
}

fn bench_plan(c: &mut Criterion) {
    let now = Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap();
    let owner = Owner { client_id: "app".into(), tag: "iocsync".into() };
    let policy = FeedPolicy::new("bench");
    let (desired, _) = apply_policy(&policy, &iocs(0..15_000), now);
    // Existing: half of the desired values (7,500..15,000) plus 7,500 that left the feed; every
    // tenth matching row has a different severity, every seventh is due for renewal.
    let (old, _) = apply_policy(&policy, &iocs(7_500..22_500), now - Duration::days(5));
    let existing: Vec<Existing> = old
        .iter()
        .enumerate()
        .map(|(n, d)| {
            let mut e = Existing::from_desired((n + 1).to_string(), d, &owner);
            if n % 10 == 0 {
                e.severity = Some(Severity::Low);
            }
            if n % 7 == 0 {
                e.expiration = Some(now + Duration::days(2));
            }
            e
        })
        .collect();
    let mut s = PlanSettings::new(owner, now);
    s.capacity = 30_000;
    s.headroom = 0;
    s.force = true;
    let p = plan(desired.clone(), &existing, &s);
    assert!(
        p.creates.len() == 7_500 && p.deletes.len() == 7_500 && !p.updates.is_empty() && !p.renews.is_empty()
    );
    c.bench_function("plan 15k desired vs 15k existing", |b| {
        b.iter_batched(
            || desired.clone(),
            |d| plan(black_box(d), black_box(&existing), &s),
            BatchSize::LargeInput,
        );
    });
    s.capacity = 15_000;
    s.headroom = 500;
    c.bench_function("plan 15k vs 15k, cap 15,000 - 500 headroom", |b| {
        b.iter_batched(
            || desired.clone(),
            |d| plan(black_box(d), black_box(&existing), &s),
            BatchSize::LargeInput,
        );
    });
    c.bench_function("apply_policy 15k values", |b| {
        let input = iocs(0..15_000);
        b.iter(|| apply_policy(&policy, black_box(&input), now));
    });
}

fn bench_allowlist(c: &mut Criterion) {
    let mut a = Allowlist::builtin();
    a.add_misp_warninglist(&feed("misp-warninglists/tranco10k.list.json")).unwrap();
    a.add_misp_warninglist(&feed("misp-warninglists/amazon-aws.list.json")).unwrap();
    let values: Vec<(IndicatorType, String)> = (0..15_000)
        .map(|i| match i % 5 {
            4 => (IndicatorType::Url, format!("https://sub{i}.google.com/p{i}")),
            _ => value(i),
        })
        .collect();
    c.bench_function("allowlist 15k values vs tranco10k + aws", |b| {
        b.iter(|| values.iter().filter(|(k, v)| a.matches(*k, v).is_some()).count());
    });
    c.bench_function("allowlist build: builtin + tranco10k + aws", |b| {
        let t = feed("misp-warninglists/tranco10k.list.json");
        let w = feed("misp-warninglists/amazon-aws.list.json");
        b.iter(|| {
            let mut a = Allowlist::builtin();
            a.add_misp_warninglist(&t).unwrap();
            a.add_misp_warninglist(&w).unwrap();
            a.len()
        });
    });
}

criterion_group!(benches, bench_plan, bench_allowlist);
criterion_main!(benches);
