//! Small hand-made inputs, one behaviour each.

use crate::{now, opts};
use chrono::Duration;
use iocsync_ioc::formats::{self, Column, Format, FormatError, misp, stix};
use iocsync_ioc::normalize::{ip_class, normalize, registrable_domain};
use iocsync_ioc::{IndicatorType, Reason, TypeHint};
use std::net::IpAddr;

fn parse(input: &str, format: Format) -> formats::Parsed {
    iocsync_ioc::parse(input.as_bytes(), &opts(format)).unwrap()
}

fn values(p: &formats::Parsed) -> Vec<(IndicatorType, &str, u64)> {
    p.iocs.iter().map(|i| (i.kind, i.value.as_str(), i.line)).collect()
}

fn norm(raw: &str) -> Result<(IndicatorType, String), Reason> {
    normalize(raw, None, true).map_err(|(r, _)| r)
}

fn ok(kind: IndicatorType, v: &str) -> Result<(IndicatorType, String), Reason> {
    Ok((kind, v.to_owned()))
}

// ---- text line handling ----

#[test]
fn crlf_lines() {
    let p = parse("8.8.8.8\r\nevil.com\r\n", Format::Text);
    assert_eq!(
        values(&p),
        vec![(IndicatorType::IpAddress, "8.8.8.8", 1), (IndicatorType::DomainName, "evil.com", 2)]
    );
    assert_eq!(p.lines, 2);
}

#[test]
fn utf8_bom() {
    let p = parse("\u{feff}8.8.8.8\n", Format::Text);
    assert_eq!(values(&p), vec![(IndicatorType::IpAddress, "8.8.8.8", 1)]);
    assert!(p.rejections.is_empty());
}

#[test]
fn no_final_newline() {
    let p = parse("# c\n8.8.8.8\n1.1.1.1", Format::Text);
    assert_eq!(values(&p).last(), Some(&(IndicatorType::IpAddress, "1.1.1.1", 3)));
    assert_eq!(p.lines, 3);
}

#[test]
fn whitespace_only_lines() {
    let p = parse("  \n\t\n \t \r\n8.8.8.8\n", Format::Text);
    assert_eq!(values(&p), vec![(IndicatorType::IpAddress, "8.8.8.8", 4)]);
    assert!(p.rejections.is_empty());
}

#[test]
fn comments_and_fields() {
    let input = "# header\n; also\n// too\n8.8.8.8 # trailing\n1.1.1.1,50\n\
                 d41d8cd98f00b204e9800998ecf8427e;comment\nhttp://evil.com/a,b;c\n9.9.9.9\t12\n";
    let p = parse(input, Format::Text);
    let v: Vec<&str> = p.iocs.iter().map(|i| i.value.as_str()).collect();
    assert_eq!(
        v,
        ["8.8.8.8", "1.1.1.1", "d41d8cd98f00b204e9800998ecf8427e", "http://evil.com/a,b;c", "9.9.9.9"]
    );
}

#[test]
fn table_rows() {
    let input =
        "| IP | Note |\n|---|---|\n| 8.8.8.8 | C2 server |\n| `evil[.]com` | `bad.exe` | 9.9.9.9 |\n|===\n";
    let p = parse(input, Format::Text);
    let v: Vec<_> = values(&p).into_iter().map(|(_, v, l)| (v, l)).collect();
    // Row 4 has back-ticks: only those cells count (9.9.9.9 is prose there), `bad.exe` is rejected.
    assert_eq!(v, vec![("8.8.8.8", 3), ("evil.com", 4)]);
    let r: Vec<_> = p.rejections.iter().map(|r| (r.value.as_str(), r.line)).collect();
    assert_eq!(r, vec![("bad.exe", 4)]);
}

#[test]
fn non_utf8_line_is_rejected_with_its_line() {
    let p = iocsync_ioc::parse(b"8.8.8.8\n\xff\xfe.com\n1.1.1.1\n", &opts(Format::Text)).unwrap();
    assert_eq!(p.iocs.len(), 2);
    assert_eq!(p.rejections.len(), 1);
    assert_eq!((p.rejections[0].reason, p.rejections[0].line), (Reason::InvalidValue, 2));
}

#[test]
fn duplicates_are_counted_once() {
    let p = parse("8.8.8.8\n8.8.8.8:53\n8.8.8.8/32\n::ffff:8.8.8.8\n", Format::Text);
    assert_eq!(p.iocs.len(), 1);
    assert_eq!(p.duplicates, 3);
}

// ---- normalisation ----

#[test]
fn ipv4_mapped_ipv6() {
    assert_eq!(norm("::ffff:8.8.4.4"), ok(IndicatorType::IpAddress, "8.8.4.4"));
    assert_eq!(norm("::ffff:10.0.0.1"), Err(Reason::PrivateAddress));
    assert_eq!(ip_class("::ffff:192.168.1.1".parse::<IpAddr>().unwrap()), Some(Reason::PrivateAddress));
}

#[test]
fn uppercase_and_mixed_case_hashes() {
    let md5 = "D41D8CD98F00B204E9800998ECF8427E";
    assert_eq!(norm(md5), ok(IndicatorType::FileMd5, "d41d8cd98f00b204e9800998ecf8427e"));
    assert_eq!(
        norm("E42a8cefd41D8CD98F00B204E9800998"),
        ok(IndicatorType::FileMd5, "e42a8cefd41d8cd98f00b204e9800998")
    );
    let sha256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
    assert_eq!(norm(sha256), ok(IndicatorType::FileSha256, &sha256.to_ascii_lowercase()));
    let sha1 = "2B42fd41A1C8AC12221857DD2DF93164A71B95D7";
    assert_eq!(norm(sha1), ok(IndicatorType::FileSha1, &sha1.to_ascii_lowercase()));
}

#[test]
fn declared_hash_types() {
    let sha1 = "2b42fd41a1c8ac12221857dd2df93164a71b95d7";
    let cert = Some(TypeHint::Exact(IndicatorType::CertificateThumbprint));
    assert_eq!(normalize(sha1, cert, true).unwrap().0, IndicatorType::CertificateThumbprint);
    let md5 = Some(TypeHint::Exact(IndicatorType::FileMd5));
    assert_eq!(normalize(sha1, md5, true).unwrap_err().0, Reason::InvalidValue);
    assert_eq!(normalize("abc", Some(TypeHint::Hash), true).unwrap_err().0, Reason::InvalidValue);
}

#[test]
fn idn_and_punycode_domains() {
    assert_eq!(norm("Bücher.DE"), ok(IndicatorType::DomainName, "xn--bcher-kva.de"));
    assert_eq!(norm("xn--bcher-kva.de"), ok(IndicatorType::DomainName, "xn--bcher-kva.de"));
    assert_eq!(norm("пример.рф"), ok(IndicatorType::DomainName, "xn--e1afmkfd.xn--p1ai"));
    assert_eq!(norm("http://asjdıoasdjsadsda.xyz").unwrap().1, "http://xn--asjdoasdjsadsda-blc.xyz/");
}

#[test]
fn underscore_labels() {
    assert_eq!(norm("_dmarc.evil.com"), ok(IndicatorType::DomainName, "_dmarc.evil.com"));
    assert_eq!(norm("my_host.evil.com"), ok(IndicatorType::DomainName, "my_host.evil.com"));
}

#[test]
fn public_suffixes() {
    assert_eq!(norm("co.uk"), Err(Reason::PublicSuffix));
    assert_eq!(norm("com."), Err(Reason::PublicSuffix));
    assert_eq!(norm("github.io"), Err(Reason::PublicSuffix));
    assert_eq!(norm("evil.co.uk"), ok(IndicatorType::DomainName, "evil.co.uk"));
    assert_eq!(registrable_domain("a.b.evil.co.uk"), Some("evil.co.uk"));
    assert_eq!(registrable_domain("co.uk"), None);
}

#[test]
fn wildcard_and_trailing_dot() {
    assert_eq!(norm("*.Evil.com."), ok(IndicatorType::DomainName, "evil.com"));
    assert_eq!(norm("*.co.uk"), Err(Reason::PublicSuffix));
}

#[test]
fn defanged_url() {
    assert_eq!(norm("hxxps://evil[.]com/a?b=c"), ok(IndicatorType::Url, "https://evil.com/a?b=c"));
    assert_eq!(norm("hXXp[://]evil(.)com/x"), ok(IndicatorType::Url, "http://evil.com/x"));
    // refang off: the value stays defanged and is refused.
    assert!(normalize("hxxps://evil[.]com/a", None, false).is_err());
}

#[test]
fn ip_with_port() {
    assert_eq!(norm("1.2.3.4:443"), ok(IndicatorType::IpAddress, "1.2.3.4"));
    assert_eq!(norm("[2606:4700::1111]:443"), ok(IndicatorType::IpAddress, "2606:4700:0:0:0:0:0:1111"));
    // 2001:db8::/32 is the IPv6 documentation range.
    assert_eq!(norm("[2001:db8::1]:443"), Err(Reason::ReservedAddress));
}

#[test]
fn cidr() {
    assert_eq!(norm("10.0.0.0/8"), Err(Reason::CidrNotSupported));
    assert_eq!(norm("8.8.8.0/24"), Err(Reason::CidrNotSupported));
    assert_eq!(norm("8.8.8.8/32"), ok(IndicatorType::IpAddress, "8.8.8.8"));
    assert_eq!(norm("2606:4700::1111/128"), ok(IndicatorType::IpAddress, "2606:4700:0:0:0:0:0:1111"));
}

#[test]
fn strict_ipv4() {
    assert_eq!(norm("1.2.3"), Err(Reason::InvalidValue));
    assert_eq!(norm("010.1.1.1"), Err(Reason::InvalidValue));
    assert_eq!(norm("256.1.1.1"), Err(Reason::InvalidValue));
    assert_eq!(norm("http://010.1.1.1/x"), Err(Reason::InvalidValue));
}

#[test]
fn reserved_and_private_ranges() {
    for ip in [
        "10.1.1.1",
        "172.16.0.1",
        "192.168.0.1",
        "127.0.0.1",
        "169.254.1.1",
        "100.64.0.1",
        "224.0.0.1",
        "0.0.0.0",
    ] {
        assert_eq!(norm(ip), Err(Reason::PrivateAddress), "{ip}");
    }
    for ip in [
        "0.1.2.3",
        "192.0.0.8",
        "192.0.2.1",
        "198.18.0.1",
        "198.51.100.7",
        "203.0.113.9",
        "240.0.0.1",
        "64:ff9b::1",
    ] {
        assert_eq!(norm(ip), Err(Reason::ReservedAddress), "{ip}");
    }
    for ip in ["fc00::1", "fe80::1", "ff02::1", "::1", "::"] {
        assert_eq!(norm(ip), Err(Reason::PrivateAddress), "{ip}");
    }
}

#[test]
fn urls() {
    assert_eq!(norm("/path/only"), Err(Reason::InvalidValue));
    assert_eq!(norm("evil.com/path?q=1#frag"), ok(IndicatorType::Url, "http://evil.com/path?q=1"));
    assert_eq!(
        norm("HTTPS://EVIL.com:8443/CaseKept"),
        ok(IndicatorType::Url, "https://evil.com:8443/CaseKept")
    );
    assert_eq!(norm("ftp://evil.com/x"), Err(Reason::InvalidValue));
    assert_eq!(norm("http://10.0.0.1/x"), Err(Reason::PrivateAddress));
    assert_eq!(norm("http://[fd00::1]/x"), Err(Reason::PrivateAddress));
    // `%7e` is the unreserved `~`: decoded by the canonical URL rule (it used to be kept as
    // written). Dot segments are still not removed.
    assert_eq!(norm("http://evil.com/%7e/../a"), ok(IndicatorType::Url, "http://evil.com/~/../a"));
}

// ---- value quality (issue #12): truncated values, file names, one canonical URL ----

fn detail(raw: &str) -> (Reason, String) {
    let (r, d) = normalize(raw, None, true).unwrap_err();
    (r, d.unwrap_or_default())
}

#[test]
fn truncated_values() {
    for raw in [
        "http://evil.com/downloads/setup…",
        "https://evil.com/a?q=1…",
        "evil.co…",
        "hxxp://evil[.]com/pa…",
        "http://evil.com/downloads/setup...",
        "http://evil.com/...",
        "http://evil.com/a?q=wait...",
        "http://evil.com/a%2E%2E%2E",
        "http://evil.com/setup%E2%80%A6",
        "http://evil.com/setup%e2%80%a6",
        "evil.co...",
        "http://evil.co.../x",
        "https://x.com/%E2%93%8A%E2%99%95%E2%",
        "https://x.com/%E2%93%8A%E2%99%95%E",
        "d41d8cd98f00b204e9800998ecf8…",
    ] {
        assert_eq!(norm(raw), Err(Reason::TruncatedValue), "{raw}");
    }
    // Typed values too (MISP `url`/`domain`, STIX patterns).
    let url = Some(TypeHint::Exact(IndicatorType::Url));
    assert_eq!(normalize("evil.com/x…", url, true).unwrap_err().0, Reason::TruncatedValue);
    let dom = Some(TypeHint::Exact(IndicatorType::DomainName));
    assert_eq!(normalize("evil.co…", dom, false).unwrap_err().0, Reason::TruncatedValue);
    assert!(detail("http://evil.com/a…").1.contains("cut"));
    // Not truncated: `…` inside a path, `..` segments, a lone `%` (encoded), a trailing dot.
    assert_eq!(norm("http://evil.com/…/x"), ok(IndicatorType::Url, "http://evil.com/%E2%80%A6/x"));
    assert_eq!(norm("http://evil.com/a/.."), ok(IndicatorType::Url, "http://evil.com/a/.."));
    assert_eq!(norm("http://evil.com/100%"), ok(IndicatorType::Url, "http://evil.com/100%25"));
    assert_eq!(norm("evil.com."), ok(IndicatorType::DomainName, "evil.com"));
    // The reason code is stable and listed.
    assert_eq!(Reason::TruncatedValue.code(), "truncated-value");
    assert!(Reason::ALL.contains(&Reason::TruncatedValue));
    assert_eq!(Reason::UpdateNotKept.code(), "update-not-kept");
    let p = parse("http://evil.com/a\nhttp://evil.com/b…\n", Format::Text);
    let r: Vec<_> = p.rejections.iter().map(|r| (r.reason, r.value.as_str(), r.line)).collect();
    assert_eq!(r, vec![(Reason::TruncatedValue, "http://evil.com/b…", 2)]);
}

#[test]
fn file_names_posing_as_domains() {
    // `_` in the registrable label under an ICANN suffix: no registry sells such a name.
    for raw in ["report_2026.zip", "invoice_final.mov", "nx_2026073083242.zip", "my_site.com", "a.b_c.co.uk"]
    {
        let (r, d) = detail(raw);
        assert_eq!(r, Reason::InvalidValue, "{raw}");
        assert!(d.contains("cannot hold `_`"), "{raw}: {d}");
    }
    assert_eq!(norm("http://report_2026.zip/x"), Err(Reason::InvalidValue));
    let dom = Some(TypeHint::Exact(IndicatorType::DomainName));
    assert_eq!(normalize("Report_2026.ZIP", dom, true).unwrap_err().0, Reason::InvalidValue);
    // `_` in a subdomain label is fine (`_dmarc`), and so is the registrable label under a
    // private-section suffix: psl puts `dpdns.org` and `typedream.app` in the private section, so
    // `a_b.pdf.lnk.dpdns.org` has the registrable label `lnk` and `_` only in subdomain labels.
    assert_eq!(registrable_domain("a_b.pdf.lnk.dpdns.org"), Some("lnk.dpdns.org"));
    assert_eq!(norm("a_b.pdf.lnk.dpdns.org"), ok(IndicatorType::DomainName, "a_b.pdf.lnk.dpdns.org"));
    assert_eq!(
        norm("public-faq-start-helps_-trezr.typedream.app"),
        ok(IndicatorType::DomainName, "public-faq-start-helps_-trezr.typedream.app")
    );
    assert_eq!(norm("_dmarc.evil.com"), ok(IndicatorType::DomainName, "_dmarc.evil.com"));
    assert_eq!(norm("my_host.evil.zip"), ok(IndicatorType::DomainName, "my_host.evil.zip"));
    // A document/executable extension left of a file-extension gTLD (`.zip`, `.mov`).
    for raw in ["something.pdf.zip", "x.doc.mov", "pdf.zip", "Invoice.DOCX.zip", "a.exe.mov", "b.lnk.zip"] {
        let (r, d) = detail(raw);
        assert_eq!(r, Reason::InvalidValue, "{raw}");
        assert!(d.contains("reads as a file name"), "{raw}: {d}");
    }
    assert_eq!(norm("https://x.pdf.zip/"), Err(Reason::InvalidValue));
    // Other double extensions are not on a real TLD at all.
    for raw in ["x.pdf.exe", "a.doc.js", "a.pdf.lnk"] {
        let (r, d) = detail(raw);
        assert_eq!(r, Reason::InvalidValue, "{raw}");
        assert!(d.contains("unknown top-level domain"), "{raw}: {d}");
    }
    // Real-looking .zip/.mov names, and extensions under other TLDs, stay domains.
    for raw in [
        "returns.zip",
        "c2.absolutely-not-a-virus.zip",
        "pdf.mov.evil.com",
        "docusign.pdf-adobe.us",
        "pdf.com",
    ] {
        assert_eq!(norm(raw).map(|(k, _)| k), Ok(IndicatorType::DomainName), "{raw}");
    }
}

#[test]
fn one_canonical_url() {
    let canonical = "http://x.com/a%5Eb";
    for raw in [
        "http://x.com/a^b",
        "http://x.com/a%5eb",
        "http://x.com/a%5Eb",
        "http://x.com:80/a%5Eb",
        "HTTP://X.COM:080/a%5eb",
        "http://x.com/%61%5Eb",
        "http://x.com/a%5Eb#frag",
    ] {
        assert_eq!(norm(raw), ok(IndicatorType::Url, canonical), "{raw}");
    }
    let cases = [
        // Unreserved escapes decoded (any hex case); reserved escapes kept, hex upper-cased.
        ("http://x.com/%41%2d%2E%5f%7E", "http://x.com/A-._~"),
        ("http://x.com/a%2fb%3F%23%26%3d", "http://x.com/a%2Fb%3F%23%26%3D"),
        // Reserved characters stay as written.
        (
            "http://x.com/a/b?c=d&e=f;g,h+i*j!k$l'm(n)o@p:q[r]",
            "http://x.com/a/b?c=d&e=f;g,h+i*j!k$l'm(n)o@p:q[r]",
        ),
        // What a browser encodes is encoded, in the path and in the query.
        ("http://x.com/ \"<>^`{|}", "http://x.com/%20%22%3C%3E%5E%60%7B%7C%7D"),
        ("http://x.com/?q={a|b}", "http://x.com/?q=%7Ba%7Cb%7D"),
        ("http://x.com/é", "http://x.com/%C3%A9"),
        ("http://x.com/%c3%a9", "http://x.com/%C3%A9"),
        ("http://x.com/\u{7f}", "http://x.com/%7F"),
        // A `%` that starts no escape is `%25`.
        ("http://x.com/100%zz", "http://x.com/100%25zz"),
        // (and decoding cannot create a new escape: `%%341` is `%25`, `4`, `1`).
        ("http://x.com/%%341", "http://x.com/%2541"),
        // Default ports dropped, other ports kept.
        ("https://x.com:443/a", "https://x.com/a"),
        ("https://x.com:80/a", "https://x.com:80/a"),
        ("http://x.com:443/a", "http://x.com:443/a"),
        ("http://1.2.3.4:80", "http://1.2.3.4/"),
        // Empty path rule: no path is `/`, with or without a query.
        ("http://x.com", "http://x.com/"),
        ("http://x.com:80", "http://x.com/"),
        ("http://x.com?a=1", "http://x.com/?a=1"),
        // A defang revealed only by decoding is refanged too (spellings stay alike).
        ("http://x.com/r?u=h%78%78p://y.com/", "http://x.com/r?u=http://y.com/"),
        ("http://x.com/r?u=hxxp://y.com/", "http://x.com/r?u=http://y.com/"),
    ];
    for (raw, want) in cases {
        assert_eq!(norm(raw), ok(IndicatorType::Url, want), "{raw}");
        assert_eq!(norm(want), ok(IndicatorType::Url, want), "{want} is its own canonical form");
    }
    // Refang off: values are taken literally, but still canonical.
    assert_eq!(normalize("http://x.com/h%78%78p:", None, false).unwrap().1, "http://x.com/hxxp:");
}

#[test]
fn canonical_merges_are_counted() {
    // Line 1 and 2 are one URL by every rule (a plain duplicate); 3 and 4 only by the canonical
    // percent-encoding, 5 only by the default port: 3 merges out of 4 duplicates. Line 6 repeats
    // the spelling of line 3: a duplicate, but not a new merge.
    let input = "http://x.com/a^b\nHTTP://X.com/a^b\nhttp://x.com/a%5eb\nhttp://x.com/a%5Eb\n\
                 http://x.com:80/a^b\nhttp://x.com/a%5eb\n8.8.8.8\n8.8.8.8:53\n";
    let p = parse(input, Format::Text);
    assert_eq!(
        values(&p),
        vec![(IndicatorType::Url, "http://x.com/a%5Eb", 1), (IndicatorType::IpAddress, "8.8.8.8", 7)]
    );
    assert_eq!((p.duplicates, p.canonical_merges), (6, 3));
    // In a MISP event too (typed values).
    let event = r#"{"Event":{"Attribute":[{"type":"url","value":"http://x.com/%7e","to_ids":true},
        {"type":"url","value":"http://x.com/~","to_ids":true}]}}"#;
    let p = parse(event, Format::Misp);
    assert_eq!((p.iocs.len(), p.duplicates, p.canonical_merges), (1, 1, 1));
}

// ---- STIX ----

fn stix_values(pattern: &str) -> Vec<(IndicatorType, String)> {
    stix::parse_pattern(pattern).unwrap().into_iter().map(|v| (v.kind, v.value)).collect()
}

#[test]
fn stix_or_between_observations() {
    let v = stix_values("[ipv4-addr:value = '8.8.8.8'] OR [domain-name:value = 'evil.com']");
    assert_eq!(
        v,
        vec![(IndicatorType::IpAddress, "8.8.8.8".into()), (IndicatorType::DomainName, "evil.com".into())]
    );
}

#[test]
fn stix_in_set() {
    let v = stix_values("[url:value IN ('http://a.com/x', 'http://b.com/it\\'s')]");
    assert_eq!(v.len(), 2);
    assert_eq!(v[1].1, "http://b.com/it's");
}

#[test]
fn stix_and_on_two_hashes_of_one_file() {
    let v = stix_values(
        "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e' AND file:hashes.'SHA-1' = '2b42fd41a1c8ac12221857dd2df93164a71b95d7']",
    );
    assert_eq!(
        v.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        vec![IndicatorType::FileMd5, IndicatorType::FileSha1]
    );
    assert!(stix::parse_pattern("[file:hashes.MD5 = 'a' AND file:name = 'x.exe']").is_err());
}

#[test]
fn stix_followedby_is_unsupported() {
    let err = stix::parse_pattern("[ipv4-addr:value = '8.8.8.8'] FOLLOWEDBY [ipv4-addr:value = '1.1.1.1']")
        .unwrap_err();
    assert!(err.0.contains("FOLLOWEDBY"), "{err}");
    let bundle = r#"{"type":"bundle","objects":[{"type":"indicator","pattern_type":"stix",
        "pattern":"[ipv4-addr:value = '8.8.8.8'] FOLLOWEDBY [ipv4-addr:value = '1.1.1.1']"},
        {"type":"indicator","pattern_type":"sigma","pattern":"title: x"}]}"#;
    let p = parse(bundle, Format::Stix);
    assert!(p.iocs.is_empty());
    let reasons: Vec<_> = p.rejections.iter().map(|r| (r.reason, r.line)).collect();
    assert_eq!(reasons, vec![(Reason::UnsupportedPattern, 1), (Reason::UnsupportedPattern, 2)]);
}

#[test]
fn stix_revoked_expired_and_future_validity() {
    let future = (now() + Duration::days(3)).to_rfc3339();
    let past = (now() - Duration::days(1)).to_rfc3339();
    let bundle = format!(
        r#"{{"type":"bundle","objects":[
        {{"type":"indicator","revoked":true,"pattern":"[ipv4-addr:value = '8.8.8.8']","pattern_type":"stix"}},
        {{"type":"indicator","valid_until":"{past}","pattern":"[ipv4-addr:value = '8.8.4.4']"}},
        {{"type":"indicator","valid_until":"{future}","pattern":"[domain-name:value = 'evil.com']"}},
        {{"type":"ipv4-addr","value":"9.9.9.9"}},
        {{"type":"file","hashes":{{"SHA-256":"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855","SSDEEP":"x"}}}},
        {{"type":"malware","name":"x"}}]}}"#
    );
    let p = parse(&bundle, Format::Stix);
    assert_eq!(p.lines, 6);
    let details: Vec<_> =
        p.rejections.iter().map(|r| (r.reason, r.line, r.detail.clone().unwrap())).collect();
    assert_eq!(details.len(), 2);
    assert_eq!((details[0].0, details[0].1), (Reason::InvalidValue, 1));
    assert!(details[0].2.contains("revoked"));
    assert_eq!((details[1].0, details[1].1), (Reason::InvalidValue, 2));
    assert!(details[1].2.contains("expired"));
    let v = values(&p);
    assert_eq!(v[0], (IndicatorType::DomainName, "evil.com", 3));
    assert_eq!(p.iocs[0].valid_until, Some(now() + Duration::days(3)));
    assert_eq!(v[1], (IndicatorType::IpAddress, "9.9.9.9", 4));
    assert_eq!(v[2].0, IndicatorType::FileSha256);
    assert_eq!(v.len(), 3);
}

#[test]
fn stix_single_object_list_and_taxii() {
    let one = r#"{"type":"indicator","pattern":"[url:value = 'http://evil.com/x']"}"#;
    assert_eq!(parse(one, Format::Stix).iocs.len(), 1);
    assert_eq!(parse(&format!("[{one},{one}]"), Format::Stix).duplicates, 1);
    let envelope = format!(r#"{{"more":false,"objects":[{one}]}}"#);
    assert_eq!(formats::sniff(envelope.as_bytes()), Format::Taxii);
    assert_eq!(parse(&envelope, Format::Taxii).iocs.len(), 1);
    assert_eq!(parse(&envelope, Format::Auto).iocs.len(), 1);
    assert_eq!(parse("{}", Format::Taxii).iocs.len(), 0);
    assert!(matches!(
        iocsync_ioc::parse(b"{\"type\":", &opts(Format::Stix)),
        Err(FormatError::Malformed { format: "stix", .. })
    ));
}

// ---- MISP ----

const MISP_EVENT: &str = concat!(r#"{"Event":"#, misp_body!(), "}");

macro_rules! misp_body {
    () => {
        r#"{"uuid":"u1","Attribute":[
  {"type":"domain|ip","value":"evil.com|8.8.8.8","to_ids":true},
  {"type":"filename|sha256","value":"x.exe|E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855","to_ids":"1"},
  {"type":"ip-dst","value":"1.1.1.1","to_ids":false},
  {"type":"ip-dst|port","value":"9.9.9.9|443","to_ids":1},
  {"type":"email-src","value":"a@evil.com","to_ids":true},
  {"type":"url","value":"hxxp://evil[.]com/x","to_ids":true,"deleted":true}],
  "Object":[{"name":"file","Attribute":[{"type":"md5","value":"D41D8CD98F00B204E9800998ECF8427E","to_ids":true}]}]}"#
    };
}
use misp_body;

#[test]
fn misp_composite_types_and_to_ids() {
    let p = parse(MISP_EVENT, Format::Misp);
    assert_eq!(p.lines, 7);
    let v = values(&p);
    assert_eq!(
        v,
        vec![
            (IndicatorType::DomainName, "evil.com", 1),
            (IndicatorType::IpAddress, "8.8.8.8", 1),
            (
                IndicatorType::FileSha256,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                2
            ),
            (IndicatorType::IpAddress, "9.9.9.9", 4),
            (IndicatorType::FileMd5, "d41d8cd98f00b204e9800998ecf8427e", 7),
        ]
    );
    // to_ids false (1.1.1.1) and deleted attributes are skipped: neither accepted nor rejected.
    assert!(!p.iocs.iter().any(|i| i.value == "1.1.1.1"));
    assert!(!p.rejections.iter().any(|r| r.value.contains("1.1.1.1")));
    let r: Vec<_> = p.rejections.iter().map(|r| (r.reason, r.line)).collect();
    assert_eq!(r, vec![(Reason::UnsupportedType, 5)]);
}

#[test]
fn misp_rest_wrapper_and_list() {
    let event = misp_body!();
    let rest = format!(r#"{{"response":[{{"Event":{event}}},{{"Event":{event}}}]}}"#);
    let p = parse(&rest, Format::Misp);
    assert_eq!((p.iocs.len(), p.duplicates), (5, 5));
    assert_eq!(formats::sniff(rest.as_bytes()), Format::Misp);
    let list = format!("[{MISP_EVENT}]");
    assert_eq!(parse(&list, Format::Misp).iocs.len(), 5);
    assert!(iocsync_ioc::parse(b"{\"x\":1}", &opts(Format::Misp)).is_err());
}

#[test]
fn misp_manifest() {
    let m = br#"{"b":{"info":"B","timestamp":"20"},"a":{"info":"A","timestamp":10,"date":"2026-01-01"}}"#;
    let e = misp::parse_manifest(m).unwrap();
    assert_eq!(
        e.iter().map(|e| (e.uuid.as_str(), e.timestamp)).collect::<Vec<_>>(),
        vec![("a", 10), ("b", 20)]
    );
    assert_eq!(e[0].date.as_deref(), Some("2026-01-01"));
    assert!(misp::parse_manifest(br#"{"a":{"info":"A"}}"#).is_err());
    assert!(misp::parse_manifest(b"[]").is_err());
}

// ---- CSV, hosts, defender-csv, sniffing ----

#[test]
fn csv_commented_header_quotes_and_footer() {
    let input = "# banner\n# \"first_seen\",\"dst_ip\",\"note\"\n\"2021\",\"8.8.8.8\",\"a, b\"\n\
                 \"2021\",\"1.1.1.1\",\"multi\nline\"\n\"2021\",\"9.9.9.9\",\"x\"\n# END 3 entries";
    let mut o = opts(Format::Csv);
    o.column = Some(Column::Name("dst_ip".into()));
    let p = iocsync_ioc::parse(input.as_bytes(), &o).unwrap();
    let v: Vec<_> = values(&p).into_iter().map(|(_, v, l)| (v, l)).collect();
    assert_eq!(v, vec![("8.8.8.8", 3), ("1.1.1.1", 4), ("9.9.9.9", 6)]);
    assert_eq!(p.lines, 7);
}

#[test]
fn csv_type_column_and_missing_column() {
    let input =
        "value,kind\n8.8.8.8,ip\nevil.com,domain\nfoo,email\nD41D8CD98F00B204E9800998ECF8427E,md5\n8.8.4.4\n";
    let mut o = opts(Format::Csv);
    o.column = Some(Column::Name("Value".into()));
    o.type_column = Some(Column::Name("kind".into()));
    let p = iocsync_ioc::parse(input.as_bytes(), &o).unwrap();
    assert_eq!(p.iocs.len(), 3);
    let r: Vec<_> = p.rejections.iter().map(|r| (r.reason, r.line)).collect();
    // `foo,email`: unsupported-type; `8.8.4.4` with no type cell: the empty type is unknown too.
    assert_eq!(r, vec![(Reason::UnsupportedType, 4), (Reason::UnsupportedType, 6)]);
    o.column = Some(Column::Name("nope".into()));
    assert!(matches!(iocsync_ioc::parse(input.as_bytes(), &o), Err(FormatError::MissingColumn(..))));
}

#[test]
fn csv_value_by_index_type_by_name() {
    let mut o = opts(Format::Csv);
    o.column = Some(Column::Index(1));
    o.type_column = Some(Column::Name("kind".into()));
    let p =
        iocsync_ioc::parse(b"kind,value\nip,8.8.8.8\nsha1,2B42FD41A1C8AC12221857DD2DF93164A71B95D7\n", &o)
            .unwrap();
    assert_eq!(
        values(&p).iter().map(|(k, _, l)| (*k, *l)).collect::<Vec<_>>(),
        vec![(IndicatorType::IpAddress, 2), (IndicatorType::FileSha1, 3)]
    );
    assert!(p.rejections.is_empty());
}

#[test]
fn csv_short_row() {
    let mut o = opts(Format::Csv);
    o.column = Some(Column::Index(1));
    let p = iocsync_ioc::parse(b"1,8.8.8.8\n2\n", &o).unwrap();
    assert_eq!(p.iocs.len(), 1);
    assert_eq!((p.rejections[0].reason, p.rejections[0].line), (Reason::InvalidValue, 2));
}

#[test]
fn hosts_file() {
    let input = "127.0.0.1 localhost localhost.localdomain\n::1 ip6-localhost ip6-loopback\n\
                 255.255.255.255 broadcasthost\n0.0.0.0 evil.com Bad.Example.org # comment\n\
                 0.0.0.0\nplain.evil.net\n";
    let p = parse(input, Format::Hosts);
    let v: Vec<_> = values(&p).into_iter().map(|(_, v, l)| (v, l)).collect();
    assert_eq!(v, vec![("evil.com", 4), ("bad.example.org", 4), ("plain.evil.net", 6)]);
    let r: Vec<_> = p.rejections.iter().map(|r| (r.reason, r.line)).collect();
    assert_eq!(r, vec![(Reason::InvalidValue, 5)]);
}

#[test]
fn defender_csv() {
    let input = "IndicatorType,IndicatorValue,ExpirationTime,Action,Severity,Title,Description,\
                 RecommendedActions,RbacGroups,Category,MitreTechniques,GenerateAlert\n\
                 FileSha256,E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855,\
                 2026-09-01T00:00:00.0Z,Block,High,t1,d1,,\"g1, g2\",Malware,\"T1071,T1566.001\",True\n\
                 DomainName,evil.com,,Audit,,,,,,,,False\nWebCategory,x,,,,,,,,,,\n\
                 IpAddress,8.8.8.8,yesterday,Block,,,,,,,,\n";
    assert_eq!(formats::sniff(input.as_bytes()), Format::DefenderCsv);
    let p = parse(input, Format::DefenderCsv);
    assert_eq!(p.iocs.len(), 2);
    let a = p.iocs[0].attrs.as_deref().unwrap();
    assert_eq!(a.action.as_deref(), Some("Block"));
    assert_eq!(a.rbac_groups, vec!["g1", "g2"]);
    assert_eq!(a.mitre_techniques, vec!["T1071", "T1566.001"]);
    assert_eq!(a.generate_alert, Some(true));
    assert_eq!(a.expiration.unwrap().to_rfc3339(), "2026-09-01T00:00:00+00:00");
    assert_eq!(p.iocs[1].attrs.as_deref().unwrap().generate_alert, Some(false));
    let r: Vec<_> = p.rejections.iter().map(|r| (r.reason, r.line)).collect();
    assert_eq!(r, vec![(Reason::UnsupportedType, 4), (Reason::InvalidValue, 5)]);
}

#[test]
fn sniffing() {
    assert_eq!(formats::sniff(b"8.8.8.8\nevil.com\n"), Format::Text);
    assert_eq!(formats::sniff(b"0.0.0.0 a.com\n0.0.0.0 b.com\n"), Format::Hosts);
    assert_eq!(formats::sniff(b"id,url,status\n1,http://a.com/,x\n"), Format::Csv);
    assert_eq!(formats::sniff(b"{\"Event\":{}}"), Format::Misp);
    assert_eq!(formats::sniff(b"{\"type\":\"bundle\",\"objects\":[]}"), Format::Stix);
    assert_eq!(formats::sniff(b""), Format::Text);
    assert_eq!("defender-csv".parse::<Format>().unwrap(), Format::DefenderCsv);
    assert!("yaml".parse::<Format>().is_err());
}

#[test]
fn forced_type() {
    let mut o = opts(Format::Text);
    o.type_hint = Some(TypeHint::Exact(IndicatorType::CertificateThumbprint));
    let p = iocsync_ioc::parse(b"2B42FD41A1C8AC12221857DD2DF93164A71B95D7\n8.8.8.8\n", &o).unwrap();
    assert_eq!(p.iocs[0].kind, IndicatorType::CertificateThumbprint);
    assert_eq!(p.rejections[0].reason, Reason::InvalidValue);
}

#[test]
fn huge_line_is_fine() {
    let mut input = "a".repeat(1 << 20);
    input.push_str("\n8.8.8.8\n");
    let p = parse(&input, Format::Text);
    assert_eq!(p.iocs.len(), 1);
    assert_eq!(p.rejections.len(), 1);
    assert!(p.rejections[0].value.len() <= 256);
}

#[test]
fn every_reason_code_is_in_the_readme_table() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    for r in Reason::ALL {
        assert!(
            readme.contains(&format!("| `{}` |", r.code())),
            "README's reason table lacks `{}`",
            r.code()
        );
    }
}
