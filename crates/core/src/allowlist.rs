//! The allowlist: values that must never be pushed (DESIGN principle 3), from the built-in
//! Microsoft/resolver/private-range list, the user's own values and files, and MISP warninglists.
//!
//! Matching rules:
//! - a domain entry protects itself, its subdomains and URLs on them, but never across a public
//!   suffix: `github.io` (a Public Suffix List entry, private section) protects `github.io` only,
//!   not `evil.github.io`, whose owner is someone else. Popular-site lists (Tranco) carry many
//!   such hosting suffixes (`duckdns.org`, `workers.dev`, `blob.core.windows.net` …);
//! - an IP or CIDR entry protects its addresses and URLs whose host is one of them;
//! - a hash entry protects that hash (case-insensitive), of any hash kind;
//! - a URL entry protects that URL and URLs it is a prefix of (scheme and host case-insensitive);
//! - a warninglist `string` entry matches a whole value, a `substring` entry any part of one
//!   (both case-insensitive).
//!
//! Lookups are hash probes: a label-by-label suffix walk for domains, one probe per prefix
//! length present for addresses; only `substring` and URL-prefix entries are scanned.

use crate::model::{Desired, Skip};
use crate::plan::match_value;
use iocsync_ioc::{IndicatorType, Reason};
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// Microsoft service domains Defender, Entra ID, Windows Update and Office depend on; blocking any
/// of them could cut devices off from their own protection. Each entry says why it is here.
const BUILTIN_DOMAINS: &[(&str, &str)] = &[
    (
        "microsoft.com",
        "Microsoft services incl. Defender cloud protection, SmartScreen, update.microsoft.com, PKI (www.microsoft.com/pkiops)",
    ),
    ("update.microsoft.com", "Windows Update catalogue (explicit: covered by microsoft.com)"),
    ("security.microsoft.com", "Defender portal (explicit: covered by microsoft.com)"),
    ("securitycenter.microsoft.com", "Defender for Endpoint API host iocsync itself calls"),
    ("microsoftonline.com", "Entra ID sign-in and the token endpoint iocsync itself uses"),
    ("microsoftonline-p.com", "Entra ID federation and legacy authentication"),
    ("microsoftonline.us", "Entra ID sign-in for GCC High / DoD"),
    ("microsoft.us", "Defender API and portal for US Government clouds"),
    ("msftauth.net", "Entra ID sign-in page assets"),
    ("msauth.net", "Entra ID / Microsoft account sign-in assets"),
    ("microsoftazuread-sso.com", "Entra ID seamless single sign-on"),
    (
        "windows.com",
        "Windows services incl. securitycenter.windows.com (Defender), activation, notifications",
    ),
    (
        "securitycenter.windows.com",
        "Defender for Endpoint portal and legacy API host (explicit: covered by windows.com)",
    ),
    ("windows.net", "Azure services: Defender sample upload storage, legacy Azure AD Graph"),
    ("windowsupdate.com", "Windows Update downloads and Microsoft CRL distribution"),
    (
        "msftconnecttest.com",
        "Windows network connectivity check; blocking it makes devices think they are offline",
    ),
    ("msftncsi.com", "legacy Windows network connectivity check"),
    ("msedge.net", "Microsoft edge network: Windows and Defender update delivery, telemetry"),
    ("msecnd.net", "Microsoft CDN used by Office and Defender downloads"),
    ("azureedge.net", "Azure CDN: Defender definition and platform updates"),
    ("azure.com", "Azure portal and management endpoints"),
    ("azure.net", "Azure services (Key Vault, monitoring endpoints)"),
    ("office.com", "Microsoft 365 apps and portal"),
    ("office.net", "Microsoft 365 CDN and service endpoints"),
    ("office365.com", "Exchange Online / Outlook endpoints"),
    ("outlook.com", "Exchange Online and Outlook"),
    ("sharepoint.com", "SharePoint Online and OneDrive for Business"),
    ("onmicrosoft.com", "tenant default domains (also Defender's windowsatpservice token scope)"),
    ("live.com", "Microsoft account sign-in and OneDrive"),
    ("bing.com", "Windows search and SmartScreen-related lookups"),
    ("aka.ms", "Microsoft short links used by the Defender portal, docs and error messages"),
    ("msocsp.com", "Microsoft OCSP responders for Microsoft-issued TLS certificates"),
    ("digicert.com", "OCSP/CRL hosts (ocsp.digicert.com, crl3.digicert.com) for Microsoft's TLS chains"),
];

/// Well-known public DNS resolvers: blocking one breaks name resolution for every device using it.
const BUILTIN_RESOLVERS: &[(&str, &str)] = &[
    ("8.8.8.8", "Google Public DNS"),
    ("8.8.4.4", "Google Public DNS"),
    ("2001:4860:4860::8888", "Google Public DNS"),
    ("2001:4860:4860::8844", "Google Public DNS"),
    ("1.1.1.1", "Cloudflare DNS"),
    ("1.0.0.1", "Cloudflare DNS"),
    ("2606:4700:4700::1111", "Cloudflare DNS"),
    ("2606:4700:4700::1001", "Cloudflare DNS"),
    ("9.9.9.9", "Quad9"),
    ("149.112.112.112", "Quad9"),
    ("2620:fe::fe", "Quad9"),
    ("2620:fe::9", "Quad9"),
    ("208.67.222.222", "OpenDNS"),
    ("208.67.220.220", "OpenDNS"),
    ("2620:119:35::35", "OpenDNS"),
    ("2620:119:53::53", "OpenDNS"),
];

/// Private and local ranges (the IoC parser rejects them too; this is the second line of defence).
const BUILTIN_RANGES: &[(&str, &str)] = &[
    ("10.0.0.0/8", "RFC 1918 private"),
    ("172.16.0.0/12", "RFC 1918 private"),
    ("192.168.0.0/16", "RFC 1918 private"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("::1/128", "loopback"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
];

/// Where an allowlist entry came from (shown in the report's detail).
type SourceId = u32;

/// A set of values never to push. Build it once per run; [`Allowlist::matches`] is cheap.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    sources: Vec<String>,
    source_ids: HashMap<String, SourceId>,
    domains: HashMap<String, SourceId>,
    v4: BTreeMap<u8, HashMap<u32, SourceId>>,
    v6: BTreeMap<u8, HashMap<u128, SourceId>>,
    hashes: HashMap<String, SourceId>,
    exact: HashMap<String, SourceId>,
    substrings: Vec<(String, SourceId)>,
    url_prefixes: Vec<(String, SourceId)>,
}

/// The parts of a MISP warninglist that matter here.
#[derive(Debug, Deserialize)]
struct Warninglist {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    list: Vec<String>,
}

impl Allowlist {
    /// An empty allowlist.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in list: Microsoft service domains, public DNS resolvers, private ranges.
    pub fn builtin() -> Self {
        let mut a = Self::new();
        for (d, _why) in BUILTIN_DOMAINS {
            a.insert_domain(d, "built-in");
        }
        for (ip, who) in BUILTIN_RESOLVERS {
            if let Ok(ip) = ip.parse::<IpAddr>() {
                a.insert_net(IpNet::from(ip), &format!("built-in: {who}"));
            }
        }
        for (net, what) in BUILTIN_RANGES {
            if let Ok(net) = net.parse::<IpNet>() {
                a.insert_net(net, &format!("built-in: {what}"));
            }
        }
        a
    }

    /// Number of entries of every kind.
    pub fn len(&self) -> usize {
        self.domains.len()
            + self.v4.values().map(HashMap::len).sum::<usize>()
            + self.v6.values().map(HashMap::len).sum::<usize>()
            + self.hashes.len()
            + self.exact.len()
            + self.substrings.len()
            + self.url_prefixes.len()
    }

    /// True when nothing is allowlisted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds one user value (config `allowlist.values`): a domain (`*.` and leading `.` allowed),
    /// an IP, a CIDR range, a file hash or an `http(s)` URL.
    pub fn add_value(&mut self, value: &str) -> Result<(), String> {
        self.add_value_from(value, "allowlist")
    }

    /// Like [`Allowlist::add_value`], naming the source shown when the entry matches.
    pub fn add_value_from(&mut self, value: &str, source: &str) -> Result<(), String> {
        let v = value.trim();
        if v.is_empty() {
            return Err("empty allowlist value".to_owned());
        }
        if let Some(p) = v.find("://") {
            let scheme = v[..p].to_ascii_lowercase();
            if scheme != "http" && scheme != "https" {
                return Err(format!("`{v}`: only http and https URLs can be allowlisted"));
            }
            let norm = match_value(IndicatorType::Url, v);
            let host = url_host(&norm).unwrap_or("");
            if host.is_empty() {
                return Err(format!("`{v}`: the URL has no host"));
            }
            let after_host = &norm[p + 3..].trim_start_matches(|c| c != '/' && c != '?' && c != '#');
            if after_host.is_empty() || *after_host == "/" {
                // A bare site URL means the whole host.
                let host = host.to_owned();
                return self.add_value_from(&host, source);
            }
            let id = self.source_id(source);
            self.url_prefixes.push((norm, id));
            return Ok(());
        }
        if v.contains('/') {
            let net = v.parse::<IpNet>().map_err(|e| format!("`{v}` is not a CIDR range: {e}"))?;
            self.insert_net(net, source);
            return Ok(());
        }
        if let Ok(ip) = v.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            self.insert_net(IpNet::from(ip), source);
            return Ok(());
        }
        if is_hash(v) {
            let id = self.source_id(source);
            self.hashes.insert(v.to_ascii_lowercase(), id);
            return Ok(());
        }
        let d = domain_entry(v).ok_or_else(|| {
            format!(
                "`{v}` is not a domain, IP address, CIDR range, file hash (MD5/SHA-1/SHA-256) or http(s) URL"
            )
        })?;
        self.insert_domain(&d, source);
        Ok(())
    }

    /// Adds a text list: one value per line, `#` comments (whole-line, or trailing after
    /// whitespace), blank lines ignored. Returns one message per line that could not be used.
    pub fn add_text(&mut self, text: &str) -> Vec<String> {
        self.add_text_from(text, "allowlist file")
    }

    /// Like [`Allowlist::add_text`], naming the source (e.g. the file name).
    pub fn add_text_from(&mut self, text: &str, source: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, line) in text.lines().enumerate() {
            let line = strip_comment(line).trim();
            if line.is_empty() {
                continue;
            }
            if let Err(e) = self.add_value_from(line, source) {
                problems.push(format!("{source} line {}: {e}", i + 1));
            }
        }
        problems
    }

    /// Adds a MISP warninglist (`list.json`) of type `cidr`, `hostname`, `string` or
    /// `substring`. Entries that are not valid for the list's type are ignored. Returns the
    /// number of entries added.
    pub fn add_misp_warninglist(&mut self, json: &[u8]) -> Result<usize, String> {
        let wl: Warninglist = serde_json::from_slice(json)
            .map_err(|e| format!("not a MISP warninglist (expected {{\"type\", \"list\", …}}): {e}"))?;
        let source = format!("warninglist: {}", wl.name.as_deref().unwrap_or("unnamed"));
        let id = self.source_id(&source);
        let mut added = 0;
        match wl.kind.as_str() {
            "cidr" => {
                for e in &wl.list {
                    let e = e.trim();
                    let net = e.parse::<IpNet>().ok().or_else(|| e.parse::<IpAddr>().ok().map(IpNet::from));
                    if let Some(net) = net {
                        self.insert_net(net, &source);
                        added += 1;
                    }
                }
            }
            "hostname" => {
                for e in &wl.list {
                    if let Some(d) = domain_entry(e) {
                        self.domains.insert(d, id);
                        added += 1;
                    }
                }
            }
            "string" => {
                for e in &wl.list {
                    let e = e.trim();
                    if !e.is_empty() {
                        self.exact.insert(e.to_lowercase(), id);
                        added += 1;
                    }
                }
            }
            "substring" => {
                for e in &wl.list {
                    let e = e.trim();
                    if !e.is_empty() {
                        self.substrings.push((e.to_lowercase(), id));
                        added += 1;
                    }
                }
            }
            other => {
                return Err(format!(
                    "MISP warninglist type `{other}` is not supported (supported: cidr, hostname, string, substring)"
                ));
            }
        }
        Ok(added)
    }

    /// Which entry protects `value` of type `kind`, as `"entry (source)"`, or `None`.
    pub fn matches(&self, kind: IndicatorType, value: &str) -> Option<String> {
        let v = value.trim();
        let hit = match kind {
            IndicatorType::IpAddress => v.parse::<IpAddr>().ok().and_then(|ip| self.ip_match(ip)),
            IndicatorType::DomainName => self.domain_match(&v.trim_end_matches('.').to_ascii_lowercase()),
            IndicatorType::Url => self.url_match(v),
            IndicatorType::FileSha1
            | IndicatorType::FileSha256
            | IndicatorType::FileMd5
            | IndicatorType::CertificateThumbprint => {
                let lower = v.to_ascii_lowercase();
                self.hashes.get(&lower).map(|id| (lower, *id))
            }
        };
        if let Some((entry, id)) = hit {
            return Some(format!("{entry} ({})", self.sources[id as usize]));
        }
        if self.exact.is_empty() && self.substrings.is_empty() {
            return None;
        }
        let lower = v.to_lowercase();
        if let Some(id) = self.exact.get(&lower) {
            return Some(format!("{lower} ({})", self.sources[*id as usize]));
        }
        self.substrings
            .iter()
            .find(|(s, _)| lower.contains(s.as_str()))
            .map(|(s, id)| format!("substring `{s}` ({})", self.sources[*id as usize]))
    }

    /// Splits `desired` into values to keep and `allowlisted` skips (detail: the matching entry).
    pub fn filter(&self, desired: Vec<Desired>) -> (Vec<Desired>, Vec<Skip>) {
        let mut keep = Vec::with_capacity(desired.len());
        let mut skips = Vec::new();
        for d in desired {
            match self.matches(d.kind, &d.value) {
                Some(m) => skips.push(Skip::of(&d, Reason::Allowlisted, format!("matched {m}"))),
                None => keep.push(d),
            }
        }
        (keep, skips)
    }

    fn source_id(&mut self, source: &str) -> SourceId {
        if let Some(id) = self.source_ids.get(source) {
            return *id;
        }
        let id = SourceId::try_from(self.sources.len()).unwrap_or(SourceId::MAX);
        self.sources.push(source.to_owned());
        self.source_ids.insert(source.to_owned(), id);
        id
    }

    fn insert_domain(&mut self, d: &str, source: &str) {
        let id = self.source_id(source);
        self.domains.insert(d.to_ascii_lowercase(), id);
    }

    fn insert_net(&mut self, net: IpNet, source: &str) {
        let id = self.source_id(source);
        match net.trunc() {
            IpNet::V4(n) => {
                self.v4.entry(n.prefix_len()).or_default().insert(u32::from(n.network()), id);
            }
            IpNet::V6(n) => {
                // An IPv4-mapped range is stored as the IPv4 range it is.
                if let Some(v4) = n.network().to_ipv4_mapped().filter(|_| n.prefix_len() >= 96) {
                    let len = n.prefix_len() - 96;
                    if let Ok(n4) = ipnet::Ipv4Net::new(v4, len) {
                        self.v4.entry(len).or_default().insert(u32::from(n4.trunc().network()), id);
                        return;
                    }
                }
                self.v6.entry(n.prefix_len()).or_default().insert(u128::from(n.network()), id);
            }
        }
    }

    fn ip_match(&self, ip: IpAddr) -> Option<(String, SourceId)> {
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                self.v4.iter().rev().find_map(|(len, nets)| {
                    let mask = if *len == 0 { 0 } else { u32::MAX << (32 - u32::from(*len)) };
                    let net = bits & mask;
                    nets.get(&net).map(|id| (format!("{}/{len}", std::net::Ipv4Addr::from(net)), *id))
                })
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                self.v6.iter().rev().find_map(|(len, nets)| {
                    let mask = if *len == 0 { 0 } else { u128::MAX << (128 - u32::from(*len)) };
                    let net = bits & mask;
                    nets.get(&net).map(|id| (format!("{}/{len}", std::net::Ipv6Addr::from(net)), *id))
                })
            }
        }
    }

    /// Suffix walk: the host itself, then each parent within the host's registrable domain.
    fn domain_match(&self, host: &str) -> Option<(String, SourceId)> {
        if host.is_empty() || self.domains.is_empty() {
            return None;
        }
        if let Some(id) = self.domains.get(host) {
            return Some((host.to_owned(), *id));
        }
        let mut rest = host;
        let mut registrable: Option<Option<&str>> = None;
        while let Some(p) = rest.find('.') {
            rest = &rest[p + 1..];
            if let Some(id) = self.domains.get(rest) {
                // Never reach across a public suffix: the entry must be the registrable domain
                // of the host or below it.
                let reg = *registrable.get_or_insert_with(|| psl::domain_str(host));
                if reg.is_some_and(|r| r.len() <= rest.len()) {
                    return Some((rest.to_owned(), *id));
                }
                return None;
            }
        }
        None
    }

    fn url_match(&self, url: &str) -> Option<(String, SourceId)> {
        let norm = match_value(IndicatorType::Url, url);
        if let Some((p, id)) = self.url_prefixes.iter().find(|(p, _)| norm.starts_with(p.as_str())) {
            return Some((p.clone(), *id));
        }
        let host = url_host(&norm)?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.ip_match(ip),
            Err(_) => self.domain_match(host.trim_end_matches('.')),
        }
    }
}

/// The host of an `scheme://[userinfo@]host[:port]/…` URL (IPv6 keeps its brackets), lower-case
/// if the input was normalised by [`match_value`].
fn url_host(url: &str) -> Option<&str> {
    let after = &url[url.find("://")? + 3..];
    let authority = &after[..after.find(['/', '?', '#']).unwrap_or(after.len())];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        return Some(&hostport[..=end]);
    }
    Some(hostport.split_once(':').map_or(hostport, |(h, _)| h))
}

fn is_hash(v: &str) -> bool {
    matches!(v.len(), 32 | 40 | 64) && v.bytes().all(|c| c.is_ascii_hexdigit())
}

/// A domain allowlist entry in ASCII (punycode) lower case, or `None` if it is not a domain.
fn domain_entry(v: &str) -> Option<String> {
    let v = v.trim().trim_start_matches("*.").trim_start_matches('.').trim_end_matches('.');
    if v.is_empty() {
        return None;
    }
    let ascii = if v.is_ascii() { v.to_ascii_lowercase() } else { idna::domain_to_ascii(v).ok()? };
    let ok = ascii.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    });
    (ok && ascii.len() <= 253 && ascii.bytes().any(|c| c.is_ascii_alphabetic())).then_some(ascii)
}

fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    let b = line.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if *c == b'#' && i > 0 && b[i - 1].is_ascii_whitespace() {
            return &line[..i];
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use IndicatorType::*;

    #[test]
    fn builtin_protects_microsoft_resolvers_and_private_ranges() {
        let a = Allowlist::builtin();
        assert!(a.matches(DomainName, "microsoft.com").is_some());
        assert!(a.matches(DomainName, "login.microsoftonline.com").unwrap().contains("microsoftonline.com"));
        assert!(a.matches(Url, "https://WWW.Microsoft.com/en-us/x").is_some());
        assert!(a.matches(DomainName, "notmicrosoft.com").is_none());
        assert!(a.matches(DomainName, "microsoft.com.evil.example").is_none());
        for ip in
            ["8.8.8.8", "1.0.0.1", "149.112.112.112", "2001:4860:4860::8888", "2001:4860:4860:0:0:0:0:8844"]
        {
            assert!(a.matches(IpAddress, ip).is_some(), "{ip}");
        }
        assert!(a.matches(IpAddress, "8.8.8.9").is_none());
        assert!(a.matches(IpAddress, "10.1.2.3").unwrap().contains("10.0.0.0/8"));
        assert!(a.matches(IpAddress, "172.31.255.255").is_some());
        assert!(a.matches(IpAddress, "172.32.0.1").is_none());
        assert!(a.matches(IpAddress, "::1").is_some());
        assert!(a.matches(IpAddress, "fd00::1").is_some());
        assert!(a.matches(Url, "http://192.168.1.1/admin").is_some());
        assert!(a.matches(Url, "http://[::1]:8080/").is_some());
        assert!(a.matches(IpAddress, "::ffff:10.0.0.1").is_some(), "IPv4-mapped");
    }

    #[test]
    fn domains_do_not_reach_across_public_suffixes() {
        let mut a = Allowlist::new();
        a.add_value("github.io").unwrap();
        a.add_value("windows.net").unwrap();
        assert!(a.matches(DomainName, "github.io").is_some());
        assert!(a.matches(DomainName, "evil.github.io").is_none(), "github.io is a public suffix");
        assert!(a.matches(DomainName, "evil.blob.core.windows.net").is_none());
        assert!(a.matches(DomainName, "login.windows.net").is_some());
    }

    #[test]
    fn add_value_kinds_and_errors() {
        let mut a = Allowlist::new();
        a.add_value("*.Contoso.com").unwrap();
        a.add_value("203.0.113.0/24").unwrap();
        a.add_value("198.51.100.7").unwrap();
        a.add_value("D41D8CD98F00B204E9800998ECF8427E").unwrap();
        a.add_value("https://files.example/safe/").unwrap();
        a.add_value("https://whole.example/").unwrap();
        a.add_value("bücher.example").unwrap();
        assert!(a.matches(DomainName, "www.contoso.com").is_some());
        assert!(a.matches(Url, "https://contoso.com/x").is_some());
        assert!(a.matches(IpAddress, "203.0.113.200").unwrap().contains("203.0.113.0/24"));
        assert!(a.matches(IpAddress, "198.51.100.7").is_some());
        assert!(a.matches(IpAddress, "198.51.100.8").is_none());
        assert!(a.matches(FileMd5, "d41d8cd98f00b204e9800998ecf8427e").is_some());
        assert!(a.matches(Url, "HTTPS://FILES.example/safe/x.exe").is_some());
        assert!(a.matches(Url, "https://files.example/other").is_none());
        assert!(a.matches(Url, "https://whole.example/any/path").is_some());
        assert!(a.matches(DomainName, "xn--bcher-kva.example").is_some());
        assert!(a.add_value("").is_err());
        assert!(a.add_value("ftp://x.example/").is_err());
        assert!(a.add_value("10.0.0.0/33").is_err());
        assert!(a.add_value("not a value").unwrap_err().contains("not a domain"));
    }

    #[test]
    fn add_text_reports_problems_with_line_numbers() {
        let mut a = Allowlist::new();
        let problems =
            a.add_text("\u{feff}# header\nexample.org # trailing\n\n  bad value  \nhttp://x.example/#frag\n");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("line 4"), "{problems:?}");
        assert!(a.matches(DomainName, "a.example.org").is_some());
        assert!(a.matches(Url, "http://x.example/#frag").is_some());
    }

    #[test]
    fn warninglist_string_substring_and_errors() {
        let mut a = Allowlist::new();
        let n = a
            .add_misp_warninglist(br#"{"name":"s","type":"substring","list":["googleusercontent"]}"#)
            .unwrap();
        assert_eq!(n, 1);
        assert!(a.matches(Url, "https://lh3.googleusercontent.com/x").unwrap().contains("warninglist: s"));
        a.add_misp_warninglist(br#"{"name":"x","type":"string","list":["Exact.Example"]}"#).unwrap();
        assert!(a.matches(DomainName, "exact.example").is_some());
        assert!(a.matches(DomainName, "sub.exact.example").is_none(), "string entries match whole values");
        assert!(a.add_misp_warninglist(br#"{"type":"regex","list":[]}"#).unwrap_err().contains("regex"));
        assert!(a.add_misp_warninglist(b"<html>").is_err());
    }

    #[test]
    fn filter_splits_and_explains() {
        let a = Allowlist::builtin();
        let d = vec![
            crate::testutil::desired(DomainName, "evil.example", crate::model::Action::Block),
            crate::testutil::desired(DomainName, "update.microsoft.com", crate::model::Action::Block),
        ];
        let (k, s) = a.filter(d);
        assert_eq!(k.len(), 1);
        assert_eq!(s[0].reason, Reason::Allowlisted);
        assert!(s[0].detail.as_deref().unwrap().contains("built-in"));
    }
}
