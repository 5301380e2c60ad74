//! Property tests: normalisation is idempotent, and no parser panics on any input.

use crate::opts;
use iocsync_ioc::formats::{Column, Format, misp, stix};
use iocsync_ioc::normalize::normalize;
use iocsync_ioc::{IndicatorType, TypeHint};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

/// For an accepted value: normalising the output again (untyped and typed) gives the same.
fn assert_idempotent(raw: &str) -> Result<(), TestCaseError> {
    if let Ok((kind, value)) = normalize(raw, None, true) {
        prop_assert!(!value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic()), "{:?}", value);
        prop_assert_eq!(normalize(&value, None, true), Ok((kind, value.clone())), "untyped, from {:?}", raw);
        prop_assert_eq!(normalize(&value, Some(TypeHint::Exact(kind)), true), Ok((kind, value.clone())));
        prop_assert_eq!(normalize(&value, None, false), Ok((kind, value)));
    }
    Ok(())
}

fn domain() -> impl Strategy<Value = String> {
    let label = "[a-zA-Z0-9_][a-zA-Z0-9_-]{0,12}|xn--[a-z0-9]{2,8}|[äöüßéıя]{1,4}[a-z]{0,3}";
    let tld = prop::sample::select(vec![
        "com",
        "net",
        "org",
        "co.uk",
        "de",
        "xyz",
        "github.io",
        "рф",
        "onion",
        "local",
    ]);
    (prop::collection::vec(label, 1..4), tld, prop::bool::ANY, prop::bool::ANY).prop_map(
        |(labels, tld, star, dot)| {
            format!(
                "{}{}.{}{}",
                if star { "*." } else { "" },
                labels.join("."),
                tld,
                if dot { "." } else { "" }
            )
        },
    )
}

fn url() -> impl Strategy<Value = String> {
    let scheme =
        prop::sample::select(vec!["http://", "https://", "HTTP://", "hxxps://", "hXXp[://]", "", "ftp://"]);
    let host = prop_oneof![
        domain(),
        any::<u32>().prop_map(|n| Ipv4Addr::from(n).to_string()),
        any::<u128>().prop_map(|n| format!("[{}]", Ipv6Addr::from(n)))
    ];
    let port = prop::option::of(0u32..70_000);
    let path = "(/[a-zA-Z0-9._~%!$&'()*+,;=:@\\[\\] -]{0,12}){0,3}";
    let query = prop::option::of("[a-zA-Z0-9=&%/:.?-]{0,16}");
    let frag = prop::option::of("[a-z]{0,5}");
    (scheme, host, port, path, query, frag).prop_map(|(s, h, p, path, q, f)| {
        let mut u = format!("{s}{h}");
        if let Some(p) = p {
            u.push_str(&format!(":{p}"));
        }
        u.push_str(&path);
        if let Some(q) = q {
            u.push('?');
            u.push_str(&q);
        }
        if let Some(f) = f {
            u.push('#');
            u.push_str(&f);
        }
        u
    })
}

fn ip() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u32>().prop_map(|n| Ipv4Addr::from(n).to_string()),
        any::<u128>().prop_map(|n| Ipv6Addr::from(n).to_string()),
        any::<u32>().prop_map(|n| Ipv4Addr::from(n).to_ipv6_mapped().to_string()),
        (any::<u32>(), 0u32..40).prop_map(|(n, l)| format!("{}/{l}", Ipv4Addr::from(n))),
        (any::<u32>(), 0u32..70_000).prop_map(|(n, p)| format!("{}:{p}", Ipv4Addr::from(n))),
        (any::<u128>(), 0u32..70_000).prop_map(|(n, p)| format!("[{}]:{p}", Ipv6Addr::from(n))),
    ]
}

fn hash() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9a-fA-F]{32}", "[0-9a-fA-F]{40}", "[0-9a-fA-F]{64}", "[0-9a-fA-F]{1,70}"]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn idempotent_domains(d in domain()) { assert_idempotent(&d)?; }

    #[test]
    fn idempotent_urls(u in url()) { assert_idempotent(&u)?; }

    #[test]
    fn idempotent_ips(i in ip()) { assert_idempotent(&i)?; }

    #[test]
    fn idempotent_hashes(h in hash()) { assert_idempotent(&h)?; }

    #[test]
    fn idempotent_arbitrary(s in ".{0,64}") { assert_idempotent(&s)?; }

    #[test]
    fn idempotent_feedish(s in "[a-fA-F0-9.:/\\[\\]()hxps_*@?#%-]{0,40}") { assert_idempotent(&s)?; }

    #[test]
    fn forced_types_never_panic(s in ".{0,64}", t in prop::sample::select(IndicatorType::ALL.to_vec())) {
        if let Ok((kind, _)) = normalize(&s, Some(TypeHint::Exact(t)), true) {
            prop_assert_eq!(kind, t);
        }
    }

    #[test]
    fn no_parser_panics(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        for f in [Format::Auto, Format::Text, Format::Csv, Format::Hosts, Format::Stix, Format::Misp,
                  Format::Taxii, Format::DefenderCsv] {
            let mut o = opts(f);
            if let Ok(p) = iocsync_ioc::parse(&bytes, &o) {
                // Accepted values are always non-empty printable ASCII (punycode, percent-encoding).
                prop_assert!(p.iocs.iter().all(|i| !i.value.is_empty() && i.value.bytes().all(|b| b.is_ascii_graphic())));
            }
            o.column = Some(Column::Index(1));
            o.type_column = Some(Column::Index(0));
            let _ = iocsync_ioc::parse(&bytes, &o);
        }
        let _ = misp::parse_manifest(&bytes);
        let _ = iocsync_ioc::formats::sniff(&bytes);
        prop_assert!(true);
    }

    #[test]
    fn no_parser_panics_on_lines(s in "([0-9a-z.,;:#/\"'`| \\[\\]\t-]{0,30}(\r?\n)){0,20}") {
        for f in [Format::Auto, Format::Text, Format::Csv, Format::Hosts, Format::DefenderCsv] {
            let p = iocsync_ioc::parse(s.as_bytes(), &opts(f));
            if let Ok(p) = p {
                // Every value is accepted, rejected or counted as a duplicate at most once per line.
                prop_assert!(p.iocs.iter().all(|i| i.line >= 1 && i.line <= p.lines));
            }
        }
    }

    #[test]
    fn no_pattern_parser_panics(s in "([\\[\\]()',=]|AND|OR|IN|FOLLOWEDBY|WITHIN|NOT| |ipv4-addr:value|file:hashes\\.|'SHA-256'|'[a-z0-9.\\\\]{0,8}'){0,24}") {
        if let Ok(values) = stix::parse_pattern(&s) {
            prop_assert!(!values.is_empty());
        }
    }

    #[test]
    fn no_json_parser_panics(attrs in prop::collection::vec(("[a-z|0-9-]{0,12}", ".{0,20}", any::<bool>()), 0..8)) {
        let list: Vec<String> = attrs.iter().map(|(t, v, ids)| {
            format!(r#"{{"type":{},"value":{},"to_ids":{ids},"pattern":{}}}"#,
                serde_json_string(t), serde_json_string(v), serde_json_string(v))
        }).collect();
        let misp_doc = format!(r#"{{"Event":{{"Attribute":[{}]}}}}"#, list.join(","));
        prop_assert!(iocsync_ioc::parse(misp_doc.as_bytes(), &opts(Format::Misp)).is_ok());
        let stix_doc = format!(r#"{{"type":"bundle","objects":[{}]}}"#, list.join(","));
        prop_assert!(iocsync_ioc::parse(stix_doc.as_bytes(), &opts(Format::Stix)).is_ok());
    }
}

/// Minimal JSON string encoder for generated text.
fn serde_json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
fn deep_json_is_an_error_not_a_crash() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for f in [Format::Stix, Format::Misp, Format::Taxii, Format::Auto] {
        let r = iocsync_ioc::parse(deep.as_bytes(), &opts(f));
        assert!(r.is_err() || r.unwrap().iocs.is_empty());
    }
}
