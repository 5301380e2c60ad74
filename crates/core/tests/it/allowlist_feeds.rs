//! The allowlist on the four real MISP warninglists of `shared/feeds/misp-warninglists`.

use crate::feed;
use iocsync_core::Allowlist;
use iocsync_ioc::IndicatorType::*;

fn all_four() -> Allowlist {
    let mut a = Allowlist::new();
    for (file, n) in [
        ("rfc1918.list.json", 3),
        ("amazon-aws.list.json", 3847),
        ("tranco10k.list.json", 10_000),
        ("common-ioc-false-positive.list.json", 69),
    ] {
        let added = a.add_misp_warninglist(&feed(&format!("misp-warninglists/{file}"))).unwrap();
        assert_eq!(added, n, "{file}");
    }
    a
}

#[test]
fn rfc1918_cidrs() {
    let a = all_four();
    let m = a.matches(IpAddress, "10.0.0.1").unwrap();
    assert!(m.contains("10.0.0.0/8") && m.contains("RFC 1918"), "{m}");
    assert!(a.matches(IpAddress, "172.20.1.1").unwrap().contains("172.16.0.0/12"));
    assert!(a.matches(IpAddress, "192.168.255.255").is_some());
    assert!(a.matches(IpAddress, "11.0.0.1").is_none());
}

#[test]
fn aws_ranges_v4_v6_and_urls() {
    let a = all_four();
    let m = a.matches(IpAddress, "1.178.1.77").unwrap();
    assert!(m.contains("1.178.1.0/24") && m.contains("Amazon"), "{m}");
    assert!(a.matches(IpAddress, "52.31.255.254").unwrap().contains("52.0.0.0/11"));
    assert!(a.matches(IpAddress, "2001:3fc0:8ff::1").unwrap().contains("2001:3fc0:800::/40"));
    assert!(a.matches(Url, "http://1.178.1.77:8080/payload.bin").is_some());
    assert!(a.matches(IpAddress, "1.178.2.1").is_none());
}

#[test]
fn tranco_domains_subdomains_and_urls() {
    let a = all_four();
    assert!(a.matches(DomainName, "google.com").is_some());
    let m = a.matches(DomainName, "mail.google.com").unwrap();
    assert!(m.starts_with("google.com (warninglist: "), "{m}");
    assert!(a.matches(Url, "https://docs.google.com/document/d/x").is_some());
    assert!(a.matches(Url, "https://user@WWW.GOOGLE.COM:443/x").is_some());
    assert!(a.matches(DomainName, "google.com.evil.example").is_none());
    // Tranco lists hosting suffixes; their customers' subdomains are not protected.
    assert!(a.matches(DomainName, "duckdns.org").is_some());
    assert!(a.matches(DomainName, "c2.duckdns.org").is_none());
    assert!(a.matches(Url, "https://phish.github.io/login").is_none());
    assert!(a.matches(Url, "https://x.workers.dev/").is_none());
}

#[test]
fn common_false_positive_hashes() {
    let a = all_four();
    let empty_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert!(a.matches(FileSha256, empty_sha256).is_some());
    assert!(a.matches(FileSha256, &empty_sha256.to_uppercase()).is_some(), "case-insensitive");
    assert!(a.matches(FileMd5, "0f343b0931126a20f133d67c2b018a3b").is_some());
    assert!(a.matches(FileSha1, "125da188e26bd119ce8cad7eeb1fc2dfa147ad47").is_some());
    assert!(a.matches(FileSha1, "125da188e26bd119ce8cad7eeb1fc2dfa147ad48").is_none());
}

#[test]
fn builtin_plus_lists_filters_15000_values() {
    let mut a = Allowlist::builtin();
    a.add_misp_warninglist(&feed("misp-warninglists/tranco10k.list.json")).unwrap();
    a.add_misp_warninglist(&feed("misp-warninglists/amazon-aws.list.json")).unwrap();
    let values: Vec<(iocsync_ioc::IndicatorType, String)> = (0..15_000u32)
        .map(|i| match i % 3 {
            0 => (IpAddress, format!("{}.{}.{}.{}", 1 + i % 200, (i / 7) % 256, (i / 3) % 256, i % 256)),
            1 => (DomainName, format!("host{i}.example{}.com", i % 50)),
            _ => (Url, format!("https://sub{i}.google.com/p{i}")),
        })
        .collect();
    let hits = values.iter().filter(|(k, v)| a.matches(*k, v).is_some()).count();
    // Every google.com URL (5,000) matches; no generated domain does; some IPs fall in AWS.
    assert!(hits >= 5_000, "{hits}");
    assert!(hits < 10_000, "{hits}");
}

#[test]
fn builtin_user_lists_and_warninglists_refuse_both_ways_and_leave_customer_hosting_alone() {
    use chrono::{TimeZone, Utc};
    use iocsync_core::{FeedPolicy, apply_policy};
    use iocsync_ioc::{Ioc, Reason};

    let mut a = Allowlist::builtin();
    a.add_misp_warninglist(&feed("misp-warninglists/amazon-aws.list.json")).unwrap();
    assert!(a.add_text("https://files.partner.example/xyz/safe.exe\nsso.partner.example\n").is_empty());
    // (type, value, expected reason or None to keep, text the skip detail must hold)
    let cases = [
        (
            DomainName,
            "partner.example",
            Some(Reason::Allowlisted),
            "(allowlist file): a Defender domain indicator also blocks every subdomain",
        ),
        (
            Url,
            "https://files.partner.example/x",
            Some(Reason::Allowlisted),
            "would cover allowlisted https://files.partner.example/xyz/safe.exe (allowlist file)",
        ),
        (
            DomainName,
            "files.partner.example",
            Some(Reason::Allowlisted),
            "would cover allowlisted https://files.partner.example/xyz/safe.exe",
        ),
        (DomainName, "windows.net", Some(Reason::Allowlisted), "(built-in): a Defender domain indicator"),
        (
            DomainName,
            "apps.mil",
            Some(Reason::Allowlisted),
            "would cover allowlisted security.apps.mil (built-in)",
        ),
        (
            DomainName,
            "login.microsoftonline.com",
            Some(Reason::Allowlisted),
            "matched microsoftonline.com (built-in)",
        ),
        (
            DomainName,
            "ussus1eastprod.blob.core.windows.net",
            Some(Reason::Allowlisted),
            "matched ussus1eastprod.blob.core.windows.net (built-in)",
        ),
        (IpAddress, "1.178.1.77", Some(Reason::Allowlisted), "1.178.1.0/24 (warninglist: "),
        (Url, "https://s3.amazonaws.com/a", Some(Reason::PublicSuffix), "first path segment"),
        (DomainName, "contoso.sharepoint.com", None, ""),
        (DomainName, "evil.blob.core.windows.net", None, ""),
        (Url, "https://c2.azurewebsites.net/gate.php", None, ""),
        (Url, "https://s3.amazonaws.com/a/payload.bin", None, ""),
        (Url, "https://files.partner.example/other", None, ""),
    ];
    let iocs: Vec<Ioc> =
        cases.iter().enumerate().map(|(i, (k, v, _, _))| Ioc::new(*k, *v, i as u64 + 1)).collect();
    let now = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
    let (desired, rejected) = apply_policy(&FeedPolicy::new("mixed"), &iocs, now);
    assert!(rejected.is_empty(), "{rejected:?}");
    let (kept, skips) = a.filter(desired);
    for (_, value, reason, text) in &cases {
        let skip = skips.iter().find(|s| s.value == *value);
        match reason {
            Some(r) => {
                let s = skip.unwrap_or_else(|| panic!("{value} was kept"));
                let detail = s.detail.as_deref().unwrap_or("");
                assert!(s.reason == *r && detail.contains(text), "{value}: {s:?}");
            }
            None => assert!(skip.is_none() && kept.iter().any(|d| d.value == *value), "{value}: {skip:?}"),
        }
    }
}
