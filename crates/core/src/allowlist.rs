//! The allowlist: values that must never be pushed (DESIGN principle 5), from the built-in
//! Microsoft/resolver/private-range list, the user's own values and files, and MISP warninglists.
//!
//! The allowlist works both ways. A value is refused (`allowlisted`) when it falls **under** an
//! entry, and also when it would **cover** one, because of how Defender matches indicators:
//! - a domain indicator matches the domain, every subdomain and every URL on them, so a value
//!   `partner.com` covers an allowlisted `sso.partner.com`, and a domain value equal to (or a
//!   parent of) the host of an allowlisted URL covers that URL;
//! - an IP indicator matches URLs on that address, so it covers an allowlisted URL on it;
//! - a URL indicator is a prefix match (`http://a.com/x` also blocks `http://a.com/xyz/…`), so a
//!   URL value that is a prefix of an allowlisted URL covers it.
//!
//! The skip's detail names the entry and its origin: `built-in`, `allowlist value` (config
//! `values`), `allowlist file` (a text list) or `warninglist: NAME`.
//!
//! Matching rules (the "under" direction):
//! - a domain entry protects itself, its subdomains and URLs on them, but never across a public
//!   suffix: `github.io` (a Public Suffix List entry, private section) protects `github.io` only,
//!   not `evil.github.io`, whose owner is someone else. Popular-site lists (Tranco) carry many
//!   such hosting suffixes (`duckdns.org`, `workers.dev`, `blob.core.windows.net` …);
//! - a host-only entry (built-in: Microsoft's own apex of a namespace whose subdomains are its
//!   customers', like `sharepoint.com`, and its own named storage accounts) protects that host
//!   and URLs on it, not its subdomains;
//! - an IP or CIDR entry protects its addresses and URLs whose host is one of them;
//! - a hash entry protects that hash (case-insensitive), of any hash kind;
//! - a URL entry protects that URL and URLs it is a prefix of. URL comparisons ignore the scheme
//!   and case (a false refusal is safe, a missed one blocks what must not be blocked);
//! - a warninglist `string` entry matches a whole value, a `substring` entry any part of one
//!   (both case-insensitive).
//!
//! Shared hosting (`public-suffix`): a URL whose host is itself a public suffix (ICANN or private
//! section, e.g. `s3.us-east-1.amazonaws.com`, `s3.amazonaws.com`, `co.uk`), or one of the few
//! path-style object stores the list does not name by a rule of their own ([`PATH_STYLE_HOSTS`]:
//! `storage.googleapis.com`, `nyc3.digitaloceanspaces.com` …), holds
//! many owners' content, each under its own first path segment (the bucket). As a prefix,
//! `https://s3.us-east-1.amazonaws.com/a` would block every bucket whose name starts with `a`. Such
//! a URL must name its whole first path segment: the segment is non-empty and followed by `/` or
//! `?` (`https://s3.amazonaws.com/bucket/…`, `…/bucket?…`); anything shorter is skipped with
//! `public-suffix`. Hosts that are suffixes only through a wildcard rule (`*.compute-1.amazonaws.com`:
//! one machine each) are not path-style and are exempt; so are hosts *under* a suffix
//! (`bucket.s3.amazonaws.com`, `acct.blob.core.windows.net`, `x.github.io`): there the owner is
//! the host itself, and no prefix on it can reach another owner.
//!
//! Lookups are hash probes: a label-by-label suffix walk for domains, one probe per prefix
//! length present for addresses, one probe for "covers" (every entry's parent names are indexed);
//! only `substring` and URL-prefix entries are scanned.

use crate::model::{Desired, Skip};
use crate::plan::match_value;
use iocsync_ioc::{IndicatorType, Reason};
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

/// How far a built-in domain entry reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// The name and every subdomain of it (within its registrable domain): a namespace only
    /// Microsoft hands out names in.
    Subtree,
    /// This host only (and URLs on it): its subdomains, if any, belong to Microsoft's customers,
    /// or it is one of Microsoft's own named accounts on shared hosting.
    Host,
}
use Reach::{Host, Subtree};

/// Microsoft service hosts that Defender, Entra ID, Windows Update and Microsoft 365 depend on;
/// blocking any of them could cut devices off from their own protection. Only Microsoft's own
/// service hosts are here: a customer's subdomain on shared Microsoft hosting
/// (`contoso.sharepoint.com`, `x.azurewebsites.net`, `x.blob.core.windows.net`,
/// `x.database.windows.net`, `x.vault.azure.net`, `tenant.onmicrosoft.com` …) can host a C2 or a
/// phishing page and is a legitimate block, so no entry reaches it.
///
/// Sources (Microsoft's published endpoint lists, read 2026-12):
/// - Defender for Endpoint streamlined connectivity:
///   <https://learn.microsoft.com/en-us/defender-endpoint/streamlined-device-connectivity-urls-commercial>
///   and <https://learn.microsoft.com/en-us/defender-endpoint/configure-device-connectivity>
/// - Defender for Endpoint standard connectivity:
///   <https://learn.microsoft.com/en-us/defender-endpoint/standard-device-connectivity-urls-commercial>
///   and (US Government) <https://learn.microsoft.com/en-us/defender-endpoint/standard-device-connectivity-urls-gov>
/// - Defender for Endpoint for US Government customers (portal hosts, `security.apps.mil` for DoD):
///   <https://learn.microsoft.com/en-us/defender-endpoint/gov>
/// - Microsoft 365 URLs and IP address ranges (IDs below are its endpoint-set IDs):
///   <https://learn.microsoft.com/en-us/microsoft-365/enterprise/urls-and-ip-address-ranges>
///
/// Wildcards in those lists become `Subtree` entries only where every name under them is
/// Microsoft's; where the list says `*.blob.core.windows.net` (a private public suffix: every
/// storage account is a different owner) the entries are the storage accounts Microsoft names,
/// one `Host` entry each ([`BUILTIN_STORAGE_HOSTS`]).
const BUILTIN_DOMAINS: &[(&str, Reach, &str)] = &[
    // --- Defender for Endpoint and Defender Antivirus
    (
        "microsoft.com",
        Subtree,
        "Microsoft's own namespace (M365 ID 50 `*.microsoft.com`): Defender cloud protection, SmartScreen, updates, CRL/PKI",
    ),
    ("endpoint.security.microsoft.com", Subtree, "MDE streamlined: `*.endpoint.security.microsoft.com`"),
    (
        "security.microsoft.com",
        Subtree,
        "Defender portal and MDE network scanner (`*.security.microsoft.com`)",
    ),
    ("securitycenter.microsoft.com", Subtree, "Defender for Endpoint API host iocsync itself calls"),
    (
        "smartscreen.microsoft.com",
        Subtree,
        "MDE: `*.smartscreen.microsoft.com` (network protection, URL indicators)",
    ),
    ("smartscreen-prod.microsoft.com", Subtree, "MDE: `*.smartscreen-prod.microsoft.com`"),
    ("wd.microsoft.com", Subtree, "MDE MAPS: `*.wd.microsoft.com`, `unitedstates.x.cp.wd.microsoft.com`"),
    ("wdcp.microsoft.com", Subtree, "MDE MAPS: `*.wdcp.microsoft.com`"),
    ("events.data.microsoft.com", Subtree, "MDE EDR cyber data: `*.events.data.microsoft.com`"),
    ("update.microsoft.com", Subtree, "MDE MU/WU: `*.update.microsoft.com`"),
    ("delivery.mp.microsoft.com", Subtree, "MDE MU/WU: `*.delivery.mp.microsoft.com`"),
    ("definitionupdates.microsoft.com", Subtree, "MDE MU/WU: `definitionupdates.microsoft.com`"),
    ("go.microsoft.com", Subtree, "MDE MU/WU: `go.microsoft.com`"),
    ("crl.microsoft.com", Subtree, "MDE CRL: `crl.microsoft.com`"),
    ("graph.microsoft.com", Subtree, "M365 ID 56: `graph.microsoft.com`"),
    ("windowsupdate.com", Subtree, "MDE CRL/MU: `ctldl.windowsupdate.com`, `*.windowsupdate.com`"),
    (
        "windows.com",
        Subtree,
        "MDE WNS `*.wns.windows.com`, portal `*.securitycenter.windows.com`; Windows activation",
    ),
    ("securitycenter.windows.com", Subtree, "Defender for Endpoint portal and legacy API host"),
    (
        "microsoft.us",
        Subtree,
        "MDE US Government: `*.endpoint.security.microsoft.us`, `*.x.cp.wd.microsoft.us`",
    ),
    ("security.apps.mil", Subtree, "Defender portal for US Government DoD customers"),
    // --- Entra ID (sign-in, tokens, device registration)
    (
        "microsoftonline.com",
        Subtree,
        "M365 ID 56/59 `*.microsoftonline.com`; the token endpoint iocsync uses",
    ),
    ("microsoftonline-p.com", Subtree, "M365 ID 59 `*.microsoftonline-p.com`; MDE portal"),
    ("microsoftonline.us", Subtree, "Entra ID sign-in for GCC High / DoD"),
    ("msftauth.net", Subtree, "M365 ID 59 `*.msftauth.net` (sign-in page assets)"),
    ("msauth.net", Subtree, "M365 ID 59 `*.msauth.net`"),
    ("msftidentity.com", Subtree, "M365 ID 56 `*.msftidentity.com`"),
    ("msidentity.com", Subtree, "M365 ID 56 `*.msidentity.com`"),
    ("microsoftazuread-sso.com", Subtree, "M365 ID 56 `autologon.microsoftazuread-sso.com` (seamless SSO)"),
    ("login.windows.net", Subtree, "MDE and M365 ID 56: `login.windows.net`"),
    ("graph.windows.net", Subtree, "M365 ID 56: `graph.windows.net`"),
    ("enterpriseregistration.windows.net", Subtree, "MDE security management, M365 ID 59"),
    (
        "accounts.accesscontrol.windows.net",
        Host,
        "M365 ID 56 (other `accesscontrol.windows.net` names were customers')",
    ),
    ("live.com", Subtree, "MDE `login.live.com`; M365 ID 32/36/46 (`*.officeapps.live.com`)"),
    // --- Azure services Microsoft names (not the customer-hosting namespaces around them)
    ("management.azure.com", Subtree, "M365 ID 59: `management.azure.com`"),
    ("ods.opinsights.azure.com", Subtree, "MDE MMA: `*.ods.opinsights.azure.com`"),
    ("oms.opinsights.azure.com", Subtree, "MDE MMA: `*.oms.opinsights.azure.com`"),
    ("informationprotection.azure.com", Subtree, "M365 ID 73: `*.informationprotection.azure.com`"),
    (
        "mlccdnprod.azureedge.net",
        Host,
        "M365 ID 27 (`azureedge.net` itself is a public suffix: customers' CDN endpoints)",
    ),
    // --- Microsoft 365
    (
        "office.com",
        Subtree,
        "M365 ID 1 `outlook.office.com`, ID 46 `*.online.office.com`, ID 64; MDE `*ecs.office.com`",
    ),
    ("office.net", Subtree, "M365 ID 47 `*.cdn.office.net`, ID 50 `*.office.net`"),
    (
        "office365.com",
        Subtree,
        "M365 ID 1 `outlook.office365.com`, ID 2 `smtp.office365.com`, ID 71 `*.office365.com`",
    ),
    ("outlook.com", Subtree, "M365 ID 8 `*.outlook.com`, ID 9 `*.protection.outlook.com`"),
    (
        "sharepoint.com",
        Host,
        "SharePoint Online apex only: `<tenant>.sharepoint.com` (M365 ID 31) is the customer's",
    ),
    ("gr.global.aa-rt.sharepoint.com", Subtree, "M365 ID 39 `*.gr.global.aa-rt.sharepoint.com`"),
    (
        "sharepointonline.com",
        Subtree,
        "M365 ID 37 `*.sharepointonline.com`; MDE portal `static2.sharepointonline.com`",
    ),
    ("onmicrosoft.com", Host, "apex only: `<tenant>.onmicrosoft.com` names are customers' (M365 ID 154)"),
    ("cloud.microsoft", Subtree, "M365 ID 184 `*.cloud.microsoft`: Microsoft 365 apps (unified domain)"),
    ("static.microsoft", Subtree, "M365 ID 184 `*.static.microsoft`: static content, not customer generated"),
    ("aka.ms", Subtree, "M365 ID 17 `aka.ms`: short links of the Defender portal, docs and error messages"),
    ("msedge.net", Subtree, "M365 ID 26 `*.msedge.net`: Windows, Defender and Office delivery"),
    // --- Other dependencies of every Windows device
    (
        "msftconnecttest.com",
        Subtree,
        "Windows connectivity check: blocking it makes devices think they are offline",
    ),
    ("msftncsi.com", Subtree, "legacy Windows connectivity check"),
    ("bing.com", Subtree, "Windows search and SmartScreen-related lookups"),
    ("msocsp.com", Subtree, "Microsoft OCSP responders for Microsoft-issued TLS certificates"),
    (
        "digicert.com",
        Subtree,
        "OCSP/CRL hosts (ocsp.digicert.com, crl3.digicert.com) of Microsoft's TLS chains",
    ),
];

/// Storage accounts on `blob.core.windows.net` / `blob.core.usgovcloudapi.net` (both private public
/// suffixes: every other account belongs to someone else) that Microsoft names in the Defender
/// for Endpoint standard lists (commercial and US Government: malware sample submission, AutoIR
/// sample storage, onboarding packages) and Microsoft 365 (ID 16 `mlccdn`). `Host` entries.
const BUILTIN_STORAGE_HOSTS: &[&str] = &[
    "ussus1eastprod.blob.core.windows.net",
    "ussus2eastprod.blob.core.windows.net",
    "ussus3eastprod.blob.core.windows.net",
    "ussus4eastprod.blob.core.windows.net",
    "wsus1eastprod.blob.core.windows.net",
    "wsus2eastprod.blob.core.windows.net",
    "ussus1westprod.blob.core.windows.net",
    "ussus2westprod.blob.core.windows.net",
    "ussus3westprod.blob.core.windows.net",
    "ussus4westprod.blob.core.windows.net",
    "wsus1westprod.blob.core.windows.net",
    "wsus2westprod.blob.core.windows.net",
    "usseu1northprod.blob.core.windows.net",
    "wseu1northprod.blob.core.windows.net",
    "usseu1westprod.blob.core.windows.net",
    "wseu1westprod.blob.core.windows.net",
    "ussuk1southprod.blob.core.windows.net",
    "wsuk1southprod.blob.core.windows.net",
    "ussuk1westprod.blob.core.windows.net",
    "wsuk1westprod.blob.core.windows.net",
    "ussau1southeastprod.blob.core.windows.net",
    "ussau1eastprod.blob.core.windows.net",
    "automatedirstrprdcus.blob.core.windows.net",
    "automatedirstrprdeus.blob.core.windows.net",
    "automatedirstrprdcus3.blob.core.windows.net",
    "automatedirstrprdeus3.blob.core.windows.net",
    "automatedirstrprdneu.blob.core.windows.net",
    "automatedirstrprdweu.blob.core.windows.net",
    "automatedirstrprdneu3.blob.core.windows.net",
    "automatedirstrprdweu3.blob.core.windows.net",
    "automatedirstrprduks.blob.core.windows.net",
    "automatedirstrprdukw.blob.core.windows.net",
    "automatedirstrprdaue.blob.core.windows.net",
    "automatedirstrprdaus.blob.core.windows.net",
    "automatedirstrprdaen0a.blob.core.windows.net",
    "automatedirstrprdaec0a.blob.core.windows.net",
    "onboardingpackagescusprd.blob.core.windows.net",
    "mlccdn.blob.core.windows.net",
    "automatedirstrffusgt.blob.core.usgovcloudapi.net",
    "automatedirstrffusgv.blob.core.usgovcloudapi.net",
    "automatedirstrfmusmt.blob.core.usgovcloudapi.net",
    "automatedirstrfmusmv.blob.core.usgovcloudapi.net",
    "ussusg1virginiaff4.blob.core.usgovcloudapi.net",
    "ussusg2virginiaff4.blob.core.usgovcloudapi.net",
    "wsusg1virginiaff4.blob.core.usgovcloudapi.net",
    "ussusg1texasff4.blob.core.usgovcloudapi.net",
    "ussusg2texasff4.blob.core.usgovcloudapi.net",
    "wsusg1texasff4.blob.core.usgovcloudapi.net",
    "ussusg1virginiaff0.blob.core.usgovcloudapi.net",
    "ussusg2virginiaff0.blob.core.usgovcloudapi.net",
    "wsusg1virginiaff0.blob.core.usgovcloudapi.net",
    "ussusg1texasff0.blob.core.usgovcloudapi.net",
    "ussusg2texasff0.blob.core.usgovcloudapi.net",
    "wsusg1texasff0.blob.core.usgovcloudapi.net",
    "ussusd1centralff5.blob.core.usgovcloudapi.net",
    "ussusd2centralff5.blob.core.usgovcloudapi.net",
    "wsusd1centralff5.blob.core.usgovcloudapi.net",
    "ussusd1eastff5.blob.core.usgovcloudapi.net",
    "ussusd2eastff5.blob.core.usgovcloudapi.net",
    "wsusd1eastff5.blob.core.usgovcloudapi.net",
];

/// Path-style object stores the Public Suffix List does not name as a suffix by a rule of their
/// own, but whose first path segment is a different owner's bucket (or user); URLs on them follow
/// the shared-host rule. `*.NAME` stands for every host one label below `NAME` (the list makes
/// those suffixes through a wildcard rule, which alone exempts a host: see
/// `is_path_style_shared_host`).
pub const PATH_STYLE_HOSTS: &[&str] = &[
    "storage.googleapis.com",
    "raw.githubusercontent.com",
    "*.digitaloceanspaces.com",
    "*.linodeobjects.com",
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
    /// Domain entries protecting their subdomains too.
    domains: HashMap<String, SourceId>,
    /// Host-only entries.
    hosts: HashMap<String, SourceId>,
    v4: BTreeMap<u8, HashMap<u32, SourceId>>,
    v6: BTreeMap<u8, HashMap<u128, SourceId>>,
    hashes: HashMap<String, SourceId>,
    exact: HashMap<String, SourceId>,
    substrings: Vec<(String, SourceId)>,
    /// URL entries: (comparison key: lower-case, no scheme; the entry as given, normalised).
    url_prefixes: Vec<(String, String, SourceId)>,
    /// Names a domain (or IP) indicator would cover an entry through: every parent of a domain or
    /// host entry, and the host of a URL entry with its parents; each to one entry it covers.
    covered: HashMap<String, (String, SourceId)>,
}

/// An allowlist entry that a value meets, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The entry as stored: a domain, a range, a hash, a URL or a warninglist string.
    pub entry: String,
    /// Where the entry came from: `built-in…`, `allowlist value`, `allowlist file`, `warninglist: NAME`.
    pub source: String,
    /// False when the value falls under the entry; true when the value would cover the entry (a
    /// parent domain of an allowlisted host, a domain or IP for the host of an allowlisted URL, a
    /// shorter prefix of an allowlisted URL).
    pub covers: bool,
}

impl Hit {
    /// The skip detail for a value of type `kind`: `matched ENTRY (SOURCE)` when the value is
    /// under the entry, `would cover allowlisted ENTRY (SOURCE): why` when it covers it.
    pub fn detail(&self, kind: IndicatorType) -> String {
        if !self.covers {
            return format!("matched {} ({})", self.entry, self.source);
        }
        let why = match kind {
            IndicatorType::Url => "a Defender URL indicator also blocks every URL it is a prefix of",
            IndicatorType::IpAddress => "a Defender IP indicator also blocks URLs on that address",
            _ => "a Defender domain indicator also blocks every subdomain and every URL on them",
        };
        format!("would cover allowlisted {} ({}): {why}", self.entry, self.source)
    }
}

impl fmt::Display for Hit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.entry, self.source)?;
        if self.covers {
            f.write_str(", which the value would cover")?;
        }
        Ok(())
    }
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

    /// The built-in list: Microsoft service hosts, public DNS resolvers, private ranges.
    pub fn builtin() -> Self {
        let mut a = Self::new();
        for (d, reach, _why) in BUILTIN_DOMAINS {
            match reach {
                Subtree => a.insert_domain(d, "built-in"),
                Host => a.insert_host(d, "built-in"),
            }
        }
        for h in BUILTIN_STORAGE_HOSTS {
            a.insert_host(h, "built-in");
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
            + self.hosts.len()
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

    /// Adds one user value (config `allowlist.values`, shown as `allowlist value`): a domain (`*.`
    /// and leading `.` allowed), an IP, a CIDR range, a file hash or an `http(s)` URL.
    pub fn add_value(&mut self, value: &str) -> Result<(), String> {
        self.add_value_from(value, "allowlist value")
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
            let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_owned();
            match host.parse::<IpAddr>() {
                Ok(ip) => self.note_covered(ip.to_canonical().to_string(), &norm, id),
                Err(_) => {
                    self.note_covered(host.clone(), &norm, id);
                    self.note_parents(&host, &norm, id);
                }
            }
            self.url_prefixes.push((url_key(&norm), norm, id));
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

    /// Adds a text list (shown as `allowlist file`): one value per line, `#` comments (whole-line,
    /// or trailing after whitespace), blank lines ignored. Returns one message per line that could
    /// not be used.
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
                        self.insert_domain(&d, &source);
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

    /// Which entry `value` of type `kind` meets, as `"entry (source)"` (with `", which the value
    /// would cover"` appended when the value covers the entry), or `None`.
    pub fn matches(&self, kind: IndicatorType, value: &str) -> Option<String> {
        self.hit(kind, value).map(|h| h.to_string())
    }

    /// The entry `value` of type `kind` falls under or would cover, or `None`. An entry the value
    /// falls under is preferred.
    pub fn hit(&self, kind: IndicatorType, value: &str) -> Option<Hit> {
        let v = value.trim();
        let under = match kind {
            IndicatorType::IpAddress => v.parse::<IpAddr>().ok().and_then(|ip| self.ip_match(ip)),
            IndicatorType::DomainName => self.host_match(&v.trim_end_matches('.').to_ascii_lowercase()),
            IndicatorType::Url => self.url_match(v),
            IndicatorType::FileSha1
            | IndicatorType::FileSha256
            | IndicatorType::FileMd5
            | IndicatorType::CertificateThumbprint => {
                let lower = v.to_ascii_lowercase();
                self.hashes.get(&lower).map(|id| (lower, *id))
            }
        };
        if let Some((entry, id)) = under {
            return Some(self.hit_of(entry, id, false));
        }
        if !self.exact.is_empty() || !self.substrings.is_empty() {
            let lower = v.to_lowercase();
            if let Some(id) = self.exact.get(&lower) {
                return Some(self.hit_of(lower, *id, false));
            }
            if let Some((s, id)) = self.substrings.iter().find(|(s, _)| lower.contains(s.as_str())) {
                return Some(self.hit_of(format!("substring `{s}`"), *id, false));
            }
        }
        let covered = match kind {
            IndicatorType::IpAddress => {
                v.parse::<IpAddr>().ok().and_then(|ip| self.covered.get(&ip.to_canonical().to_string()))
            }
            IndicatorType::DomainName => {
                self.covered.get(v.trim_end_matches('.').to_ascii_lowercase().as_str())
            }
            IndicatorType::Url => {
                let key = url_key(&match_value(IndicatorType::Url, v));
                return self
                    .url_prefixes
                    .iter()
                    .find(|(p, _, _)| p.starts_with(key.as_str()))
                    .map(|(_, entry, id)| self.hit_of(entry.clone(), *id, true));
            }
            _ => None,
        };
        covered.map(|(entry, id)| self.hit_of(entry.clone(), *id, true))
    }

    /// Splits `desired` into values to keep and skips: `allowlisted` (the value is under an entry
    /// or would cover one; the detail names the entry and its origin), then `public-suffix` for a
    /// URL on shared hosting that does not name its whole first path segment (see the module
    /// documentation).
    pub fn filter(&self, desired: Vec<Desired>) -> (Vec<Desired>, Vec<Skip>) {
        let mut keep = Vec::with_capacity(desired.len());
        let mut skips = Vec::new();
        for d in desired {
            if let Some(hit) = self.hit(d.kind, &d.value) {
                skips.push(Skip::of(&d, Reason::Allowlisted, hit.detail(d.kind)));
            } else if let Some(why) =
                (d.kind == IndicatorType::Url).then(|| shared_host_refusal(&d.value)).flatten()
            {
                skips.push(Skip::of(&d, Reason::PublicSuffix, why));
            } else {
                keep.push(d);
            }
        }
        (keep, skips)
    }

    fn hit_of(&self, entry: String, id: SourceId, covers: bool) -> Hit {
        Hit { entry, source: self.sources[id as usize].clone(), covers }
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
        let d = d.to_ascii_lowercase();
        self.note_parents(&d, &d, id);
        self.domains.insert(d, id);
    }

    fn insert_host(&mut self, h: &str, source: &str) {
        let id = self.source_id(source);
        let h = h.to_ascii_lowercase();
        self.note_parents(&h, &h, id);
        self.hosts.insert(h, id);
    }

    /// Records that a domain indicator for any proper parent of `name` would cover `entry`.
    fn note_parents(&mut self, name: &str, entry: &str, id: SourceId) {
        let mut rest = name;
        while let Some(p) = rest.find('.') {
            rest = &rest[p + 1..];
            if !rest.contains('.') {
                break; // a bare top-level domain is never an indicator
            }
            self.note_covered(rest.to_owned(), entry, id);
        }
    }

    fn note_covered(&mut self, name: String, entry: &str, id: SourceId) {
        self.covered.entry(name).or_insert_with(|| (entry.to_owned(), id));
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

    /// A host-only entry equal to `host`, else the suffix walk over domain entries.
    fn host_match(&self, host: &str) -> Option<(String, SourceId)> {
        if let Some(id) = self.hosts.get(host) {
            return Some((host.to_owned(), *id));
        }
        self.domain_match(host)
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
        let key = url_key(&norm);
        if let Some((_, entry, id)) = self.url_prefixes.iter().find(|(p, _, _)| key.starts_with(p.as_str())) {
            return Some((entry.clone(), *id));
        }
        let host = url_host(&norm)?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.ip_match(ip),
            Err(_) => self.host_match(host.trim_end_matches('.')),
        }
    }
}

/// The form URL entries and values are compared in: lower-case, without the scheme (Defender's
/// network protection enforces some URL indicators on both schemes).
fn url_key(norm: &str) -> String {
    let rest = norm.split_once("://").map_or(norm, |(_, r)| r);
    rest.to_lowercase()
}

/// Why a URL on shared hosting must not be pushed as it is (`public-suffix`), or `None`: its host
/// is itself a public suffix (by a rule of the list, not only through a wildcard) or one of
/// [`PATH_STYLE_HOSTS`], and its path does not name the whole first segment (non-empty, followed
/// by `/` or `?`).
fn shared_host_refusal(url: &str) -> Option<String> {
    let norm = match_value(IndicatorType::Url, url);
    let host = url_host(&norm)?.trim_end_matches('.');
    if host.starts_with('[') || host.parse::<IpAddr>().is_ok() || !is_path_style_shared_host(host) {
        return None;
    }
    let after = &norm[norm.find("://")? + 3..];
    let path = &after[after.find(['/', '?', '#']).unwrap_or(after.len())..];
    let segment = path.strip_prefix('/').unwrap_or("");
    let end = segment.find(['/', '?', '#']).unwrap_or(segment.len());
    let (first, rest) = segment.split_at(end);
    if !first.is_empty() && (rest.starts_with('/') || rest.starts_with('?')) {
        return None;
    }
    let shown = if first.is_empty() { "BUCKET".to_owned() } else { format!("{first}…") };
    Some(format!(
        "`{host}` is shared hosting (a public suffix): the first path segment names the owner, so as a \
         Defender URL prefix `{norm}` would also block other owners' content (`/{shown}`); a URL on it must \
         name its whole first path segment (`/BUCKET/…`)"
    ))
}

/// True for a host whose first path segment is an owner: the host is itself a public suffix by a
/// rule of the list (a wildcard rule such as `*.compute-1.amazonaws.com` makes every name below it
/// a suffix, but those are single machines), or one of [`PATH_STYLE_HOSTS`].
fn is_path_style_shared_host(host: &str) -> bool {
    let parent = host.split_once('.').map_or("", |(_, p)| p);
    let listed = |p: &&str| p.strip_prefix("*.").map_or(*p == host, |under| under == parent);
    if PATH_STYLE_HOSTS.iter().any(listed) {
        return true;
    }
    let is_suffix = |name: &str| {
        psl::suffix(name.as_bytes()).is_some_and(|s| s.is_known() && s.as_bytes().len() == name.len())
    };
    if !is_suffix(host) {
        return false;
    }
    // A wildcard rule: any other label in the same place is a suffix too.
    parent.is_empty() || !is_suffix(&format!("iocsync-wildcard-probe.{parent}"))
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

    fn skips(a: &Allowlist, values: &[(IndicatorType, &str)]) -> Vec<Skip> {
        let d = values
            .iter()
            .map(|(k, v)| crate::testutil::desired(*k, v, crate::model::Action::Block))
            .collect();
        a.filter(d).1
    }

    #[test]
    fn a_parent_domain_of_an_allowlisted_host_is_refused() {
        let mut a = Allowlist::new();
        a.add_value("sso.partner.example").unwrap();
        // A Defender domain indicator also matches every subdomain: `partner.example` would block
        // the allowlisted `sso.partner.example`.
        assert!(a.matches(DomainName, "partner.example").is_some());
        assert!(a.matches(DomainName, "PARTNER.example.").is_some());
        assert!(a.matches(DomainName, "sso.partner.example").is_some());
        assert!(a.matches(DomainName, "login.sso.partner.example").is_some());
        assert!(a.matches(DomainName, "www.partner.example").is_none(), "a sibling covers nothing");
        assert!(a.matches(DomainName, "other.example").is_none());
        assert!(
            a.matches(Url, "https://partner.example/x").is_none(),
            "a URL on the parent host is narrower"
        );
    }

    #[test]
    fn a_url_prefix_of_an_allowlisted_url_is_refused() {
        let mut a = Allowlist::new();
        a.add_value("https://files.example/xyz/safe.exe").unwrap();
        // A Defender URL indicator is a prefix match: `http://files.example/x` covers `/xyz/…`.
        for v in [
            "https://files.example/x",
            "https://files.example/xyz/",
            "https://files.example/",
            "http://files.example/xy",
        ] {
            assert!(a.matches(Url, v).is_some(), "{v}");
        }
        assert!(a.matches(Url, "https://files.example/xyz/safe.exe.bak").is_some(), "under the entry");
        assert!(a.matches(Url, "https://files.example/other").is_none());
        assert!(a.matches(Url, "https://files.example/xyz/other.exe").is_none());
    }

    #[test]
    fn a_domain_or_ip_indicator_for_the_host_of_an_allowlisted_url_is_refused() {
        let mut a = Allowlist::new();
        a.add_value("https://sso.partner.example/login/").unwrap();
        a.add_value("http://203.0.113.5/safe/").unwrap();
        assert!(a.matches(DomainName, "sso.partner.example").is_some());
        assert!(a.matches(DomainName, "partner.example").is_some());
        assert!(a.matches(DomainName, "other.partner.example").is_none());
        assert!(a.matches(IpAddress, "203.0.113.5").is_some());
        assert!(a.matches(IpAddress, "203.0.113.6").is_none());
    }

    #[test]
    fn covering_skips_name_the_entry_and_its_origin() {
        let mut a = Allowlist::builtin();
        a.add_value("sso.partner.example").unwrap();
        a.add_text("https://files.example/xyz/safe.exe\n");
        let s = skips(
            &a,
            &[(DomainName, "partner.example"), (Url, "https://files.example/x"), (DomainName, "apps.mil")],
        );
        assert_eq!(s.len(), 3, "{s:?}");
        for (skip, entry, origin) in [
            (&s[0], "sso.partner.example", "allowlist value"),
            (&s[1], "https://files.example/xyz/safe.exe", "allowlist file"),
            (&s[2], "security.apps.mil", "built-in"),
        ] {
            assert_eq!(skip.reason, Reason::Allowlisted);
            let detail = skip.detail.as_deref().unwrap();
            assert!(
                detail.contains("would cover") && detail.contains(entry) && detail.contains(origin),
                "{detail}"
            );
        }
    }

    #[test]
    fn urls_on_path_style_shared_hosts_must_name_their_whole_first_segment() {
        let a = Allowlist::new();
        let bad = [
            "https://s3.us-east-1.amazonaws.com/a",
            "https://s3.amazonaws.com/my-bucket",
            "https://s3.amazonaws.com/",
            "https://s3.amazonaws.com/?list-type=2",
            "https://nyc3.digitaloceanspaces.com/b",
            "https://storage.googleapis.com/b",
        ];
        let good = [
            "https://s3.us-east-1.amazonaws.com/a/",
            "https://s3.amazonaws.com/my-bucket/payload.exe",
            "https://s3.amazonaws.com/my-bucket?list-type=2",
            "https://storage.googleapis.com/b/x.js",
            "https://evil-bucket.s3.amazonaws.com/a",
            "https://acct.blob.core.windows.net/c",
            "https://phish.github.io/l",
            "http://ec2-3-4-5-6.compute-1.amazonaws.com/gate.php",
            "https://evil.example/a",
        ];
        let mut values: Vec<(IndicatorType, &str)> = bad.iter().map(|v| (Url, *v)).collect();
        values.extend(good.iter().map(|v| (Url, *v)));
        let s = skips(&a, &values);
        let refused: Vec<&str> = s.iter().map(|s| s.value.as_str()).collect();
        assert_eq!(refused, bad, "{s:?}");
        for skip in &s {
            assert_eq!(skip.reason, Reason::PublicSuffix);
            let detail = skip.detail.as_deref().unwrap();
            assert!(detail.contains("first path segment"), "{detail}");
        }
    }

    #[test]
    fn builtin_domain_entries_are_not_public_suffixes_and_protect_what_they_claim() {
        let a = Allowlist::builtin();
        let entries = BUILTIN_DOMAINS.iter().map(|(d, reach, _)| (*d, *reach));
        for (d, reach) in entries.chain(BUILTIN_STORAGE_HOSTS.iter().map(|h| (*h, Host))) {
            let suffix = psl::suffix(d.as_bytes()).unwrap();
            assert!(suffix.is_known(), "`{d}`: unknown top-level domain");
            let is_suffix = suffix.as_bytes().len() == d.len();
            // Only a host-only entry may be a public suffix: it is meant for that very host.
            assert!(
                reach == Host || !is_suffix,
                "`{d}` is itself a public suffix: it protects nothing under it"
            );
            let hit = a.hit(DomainName, d).unwrap();
            assert!(!hit.covers && hit.entry == d && hit.source == "built-in", "{d}: {hit:?}");
            assert_eq!(a.hit(Url, &format!("https://{d}/x")).unwrap().entry, d);
            let probe = format!("iocsync-probe.{d}");
            let under = a.hit(DomainName, &probe).map(|h| h.entry);
            match reach {
                Subtree => assert_eq!(under.as_deref(), Some(d), "{probe}"),
                Host => {
                    assert_ne!(under.as_deref(), Some(d), "{probe}: a host-only entry reaches no subdomain");
                }
            }
            // Both ways: a domain indicator for the entry's parent would cover it.
            if let Some((_, parent)) = d.split_once('.').filter(|(_, p)| p.contains('.')) {
                assert!(a.hit(DomainName, parent).is_some(), "{parent} covers {d}");
            }
        }
    }

    /// Representative hosts from Microsoft's published lists (see the top of `BUILTIN_DOMAINS`).
    const MICROSOFT_SERVICE_HOSTS: &[&str] = &[
        // Defender for Endpoint, streamlined connectivity
        "edr-eus.endpoint.security.microsoft.com",
        "nav.smartscreen.microsoft.com",
        "unitedstates.smartscreen-prod.microsoft.com",
        "wdcp.microsoft.com",
        "unitedstates.x.cp.wd.microsoft.com",
        "winatp-gw-eus.microsoft.com",
        "us-v20.events.data.microsoft.com",
        "go.microsoft.com",
        "definitionupdates.microsoft.com",
        "fe3.delivery.mp.microsoft.com",
        "sls.update.microsoft.com",
        "ctldl.windowsupdate.com",
        "download.windowsupdate.com",
        "crl.microsoft.com",
        "www.microsoft.com",
        "login.microsoftonline.com",
        "login.windows.net",
        "login.live.com",
        "client.wns.windows.com",
        "securitycenter.windows.com",
        // Defender for Endpoint, standard list: MMA and Microsoft's own named storage accounts
        "0123abcd.ods.opinsights.azure.com",
        "0123abcd.oms.opinsights.azure.com",
        "ussus1eastprod.blob.core.windows.net",
        "wsuk1westprod.blob.core.windows.net",
        "automatedirstrprdweu3.blob.core.windows.net",
        "onboardingpackagescusprd.blob.core.windows.net",
        "ussusg1virginiaff4.blob.core.usgovcloudapi.net",
        // US Government
        "security.microsoft.us",
        "unitedstates4.x.cp.wd.microsoft.us",
        "login.microsoftonline.us",
        "security.apps.mil",
        // Microsoft 365
        "outlook.office365.com",
        "outlook.office.com",
        "smtp.office365.com",
        "contoso-com.mail.protection.outlook.com",
        "graph.microsoft.com",
        "www.office.com",
        "m365.cloud.microsoft",
        "res.static.microsoft",
        "res.cdn.office.net",
        "gr.global.aa-rt.sharepoint.com",
        "sharepoint.com",
        "static2.sharepointonline.com",
        "enterpriseregistration.windows.net",
        "graph.windows.net",
        "management.azure.com",
        "mlccdnprod.azureedge.net",
        "aadcdn.msftauth.net",
        "autologon.microsoftazuread-sso.com",
        "aka.ms",
        "www.msftconnecttest.com",
        "ocsp.digicert.com",
    ];

    #[test]
    fn builtin_protects_hosts_from_microsofts_published_endpoint_lists() {
        let a = Allowlist::builtin();
        for h in MICROSOFT_SERVICE_HOSTS {
            assert!(a.matches(DomainName, h).is_some(), "{h}");
            assert!(a.matches(Url, &format!("https://{h}/x")).is_some(), "{h}");
        }
    }

    #[test]
    fn builtin_does_not_shield_customer_subdomains_on_shared_microsoft_hosting() {
        let a = Allowlist::builtin();
        for h in [
            "contoso.sharepoint.com",
            "contoso-my.sharepoint.com",
            "c2.azurewebsites.net",
            "c2.scm.azurewebsites.net",
            "evil.blob.core.windows.net",
            "evil.z13.web.core.windows.net",
            "evil.file.core.windows.net",
            "evil.azureedge.net",
            "evil.cloudapp.net",
            "evil.eastus.cloudapp.azure.com",
            "evil.database.windows.net",
            "evil.servicebus.windows.net",
            "evil.vault.azure.net",
            "evil.azurefd.net",
            "evil.trafficmanager.net",
            "evil.onmicrosoft.com",
            "evil.vo.msecnd.net",
            "evil.azurestaticapps.net",
            "evil.azure-api.net",
            "evil.azurecr.io",
            "evil.blob.core.usgovcloudapi.net",
        ] {
            assert!(a.matches(DomainName, h).is_none(), "{h}: {:?}", a.matches(DomainName, h));
            assert!(a.matches(Url, &format!("https://{h}/c2")).is_none(), "{h}");
        }
    }

    #[test]
    fn builtin_refuses_parents_of_microsoft_service_hosts() {
        let a = Allowlist::builtin();
        for parent in ["apps.mil", "core.windows.net", "windows.net", "opinsights.azure.com", "azure.com"] {
            assert!(a.matches(DomainName, parent).is_some(), "{parent}");
        }
    }
}
