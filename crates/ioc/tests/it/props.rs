//! Property tests: normalisation is idempotent, spellings of one URL that a browser sends alike
//! normalise to one value, and no parser panics on any input.

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
    let port = prop::option::of(prop_oneof![Just(80u32), Just(443), Just(8080), 0u32..70_000]);
    let path = "(/([a-zA-Z0-9._~%!$&'()*+,;=:@\\[\\] \"<>^`{|}é…-]|%[0-9a-fA-F]{2}){0,12}){0,3}";
    let query = prop::option::of("([a-zA-Z0-9=&%/:.?^{|}-]|%[0-9a-fA-F]{2}){0,16}");
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

/// One piece of a URL path or query, and how each of two spellings writes it.
#[derive(Debug, Clone)]
enum Piece {
    /// An unreserved character: literal, or `%HH` (either hex case).
    Unreserved(u8),
    /// A reserved character: always literal (encoding it changes the URL).
    Reserved(u8),
    /// A byte given as an escape in the source (`%2F`, `%25`): either hex case.
    Escaped(u8),
    /// A character a browser encodes (`^`, space, `"`, non-ASCII, ...): literal or its UTF-8
    /// bytes as escapes, either hex case.
    Encoded(char),
}

fn piece() -> impl Strategy<Value = Piece> {
    let unreserved = b"ABCXYZabcxyz0189-._~".to_vec();
    let reserved = b"/?[]@!$&'()*+,;=:".to_vec();
    prop_oneof![
        3 => prop::sample::select(unreserved).prop_map(Piece::Unreserved),
        1 => prop::sample::select(reserved).prop_map(Piece::Reserved),
        1 => prop::sample::select(b"/?#%[]@&=+ \"<>^".to_vec()).prop_map(Piece::Escaped),
        2 => prop::sample::select(vec!['^', '"', '<', '>', '`', '{', '|', '}', ' ', 'é', 'ı', '€', '😀', '\u{7f}'])
            .prop_map(Piece::Encoded),
    ]
}

/// Write `pieces` one way; `choice` bits decide literal or escaped, and the hex case.
fn spell(pieces: &[(Piece, u8, u8)], first: bool) -> String {
    fn escape(out: &mut String, b: u8, upper: bool) {
        if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    let mut out = String::new();
    for (i, (p, a, b)) in pieces.iter().enumerate() {
        let bits = if first { *a } else { *b };
        let (encode, upper) = (bits & 1 == 1, bits & 2 == 2);
        match p {
            Piece::Unreserved(c) if encode => escape(&mut out, *c, upper),
            Piece::Unreserved(c) | Piece::Reserved(c) => out.push(char::from(*c)),
            Piece::Escaped(c) => escape(&mut out, *c, upper),
            // A trailing space would be trimmed as whitespace around the value: keep it escaped.
            Piece::Encoded(c) if encode || (*c == ' ' && i + 1 == pieces.len()) => {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    escape(&mut out, byte, upper);
                }
            }
            Piece::Encoded(c) => out.push(*c),
        }
    }
    out
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

    /// Two spellings a browser sends alike (hex case, escaped or literal unreserved characters,
    /// characters a browser encodes given literally or escaped, default port present or absent,
    /// scheme and host case) normalise to one value, untyped or typed, refang off or on (with
    /// refang on a literal `{.}` is a defang by definition, so spellings with a literal brace are
    /// compared with refang off only).
    #[test]
    fn browser_equivalent_urls_are_one(
        https in any::<bool>(),
        host in prop::sample::select(vec!["evil.com", "EVIL.com", "a.b.evil.co.uk", "8.8.8.8", "[2606:4700::1111]"]),
        ports in (any::<bool>(), any::<bool>()),
        pieces in prop::collection::vec((piece(), 0u8..4, 0u8..4), 0..24),
    ) {
        let scheme = if https { "https" } else { "http" };
        let default = if https { ":443" } else { ":80" };
        let mut spellings = Vec::new();
        for (first, port) in [(true, ports.0), (false, ports.1)] {
            let tail = spell(&pieces, first);
            let sep = if tail.starts_with(['/', '?']) || tail.is_empty() { "" } else { "/" };
            let host = if first { host.to_owned() } else { host.to_ascii_uppercase() };
            let scheme = if first { scheme.to_owned() } else { scheme.to_ascii_uppercase() };
            spellings.push(format!("{scheme}://{host}{}{sep}{tail}", if port { default } else { "" }));
        }
        let braces = spellings.iter().any(|s| s.contains(['{', '}']));
        let with_port = format!("{scheme}://{}{default}", host.to_ascii_lowercase());
        for refang in [false, true] {
            if refang && braces {
                continue;
            }
            let a = normalize(&spellings[0], None, refang);
            let b = normalize(&spellings[1], None, refang);
            prop_assert_eq!(&a, &b, "{:?} vs {:?}, refang {}", spellings[0], spellings[1], refang);
            let url = Some(TypeHint::Exact(IndicatorType::Url));
            prop_assert_eq!(&normalize(&spellings[1], url, refang), &b);
            if let Ok((kind, value)) = a {
                prop_assert_eq!(kind, IndicatorType::Url);
                prop_assert!(!value.starts_with(&with_port), "default port dropped: {}", value);
                // The canonical form is its own canonical form (idempotent).
                prop_assert_eq!(normalize(&value, None, refang), Ok((kind, value.clone())));
                assert_idempotent(&value)?;
            }
        }
    }

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
