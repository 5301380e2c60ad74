//! Normalisation and validation of one value into the form Defender stores, or a reason code.
//!
//! Decisions (documented here because they are visible in reports):
//! - **Refang** (when on) applies to the whole value, repeated until nothing changes, so tools
//!   that defang every dot (`hxxps://evil[.]com/a[.]php`) are undone in the path too, and the
//!   result is stable (normalisation is idempotent). With refang off, values are taken literally.
//! - **IP addresses** are parsed strictly (std parser: no octal, hex or short forms, no leading
//!   zeros). `ip:port` and `[v6]:port` drop the port; `/32` and `/128` become the address; a wider
//!   CIDR is `cidr-not-supported`; IPv4-mapped IPv6 becomes IPv4; IPv6 prints in compressed form.
//! - **Domains** are trimmed, lower-cased, lose one trailing dot and an optional `:port`, go
//!   through IDNA UTS-46 to punycode, and must follow LDH rules where `_` is also allowed (real
//!   feeds carry `_dmarc`-style and random labels). Labels are 1..=63 bytes, the name at most 253.
//!   The top-level domain must be on the public suffix list (unknown TLDs such as `.local` or
//!   `.lan` are `invalid-value`) and the name must have a registrable domain: a bare public suffix
//!   (`com`, `co.uk`) is `public-suffix`. A leading `*.` wildcard is stripped (`*.evil.com` ->
//!   `evil.com`): a Defender domain indicator already covers every subdomain.
//!   **File names posing as domains** are `invalid-value` (see `file_name_like`): a registrable
//!   label (the label just left of the public suffix) holding `_` under an ICANN suffix
//!   (`report_2026.zip`: no registry sells such a name, so it cannot be a host), and a registrable
//!   label that is a common document/executable extension under a gTLD that is itself a file
//!   extension, `.zip` or `.mov` (`invoice.pdf.zip`, `x.doc.mov`).
//! - **URLs**: `http`/`https` only; scheme and host lower-cased; user info dropped (the host is
//!   what is contacted); fragment dropped. No `url`-crate re-parsing and no dot-segment removal
//!   (Defender matches by prefix): path and query keep their characters, but get **one canonical
//!   percent-encoding**, the one a browser sends (RFC 3986 §6.2.2), so two spellings of one URL
//!   are one indicator (see `canonical_tail`):
//!   - `%HH` of an unreserved character (`A-Za-z0-9-._~`) is decoded (`%7e` -> `~`);
//!   - every other `%HH` keeps its escape with upper-case hex digits (`%2f` -> `%2F`): reserved
//!     characters (`/?#[]@!$&'()*+,;=`) are never decoded or encoded, they stay as written;
//!   - what a browser encodes is encoded: controls, space, `"`, `<`, `>`, `^`, `` ` ``, `{`,
//!     `|`, `}`, DEL and non-ASCII (as UTF-8 bytes); a `%` that starts no `%HH` escape becomes
//!     `%25` (the only valid spelling of a literal `%`, and what keeps the form idempotent).
//!
//!   The explicit port is kept (leading zeros dropped) except the scheme's default port (`:80`
//!   for `http`, `:443` for `https`), which is dropped. **Empty path rule**: an empty path
//!   becomes `/` (`http://x.com` and `http://x.com?q` -> `http://x.com/`, `http://x.com/?q`),
//!   because that is the request a browser sends (`GET /`) and RFC 3986 §6.2.3 makes the two
//!   equivalent for http(s). So `http://x.com/a^b`, `http://x.com/a%5eb` and
//!   `HTTP://X.com:80/a%5Eb` are all `http://x.com/a%5Eb`. With refang on, a defang that only
//!   appears once unreserved escapes are decoded (`/h%78%78p://`) is refanged too, so spellings a
//!   browser sends alike stay alike.
//!
//!   A public-suffix host is `public-suffix` only for a URL with no path or query
//!   (`https://github.io/`); with a path the URL is narrow enough to push. A scheme-less
//!   `host/path` becomes `http://host/path`; `/path/only` is `invalid-value`. The host is checked
//!   like a domain or an IP (so a private IP host is `private-address`).
//! - **Truncated values** are `truncated-value`: any value ending in `…` (U+2026, what tools print
//!   when they cut a long value), a URL whose path or query ends in `...` (or `%E2%80%A6`) or in
//!   the middle of a run of percent-escapes (`/%E2%99%95%E2%`), and a host name ending in `...`.
//!   Blocking the stub would block more, or something else, than the publisher meant.
//! - **Hashes**: hex only, lower-cased; length decides MD5/SHA-1/SHA-256 unless a type is
//!   declared; a declared type with the wrong length is `invalid-value`.

use crate::{IndicatorType, Reason, TypeHint};
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A refused value: the reason code and an optional human detail.
pub type Refusal = (Reason, Option<String>);

/// Normalise `raw` into Defender's form, detecting the type unless `hint` forces one.
///
/// Returns the indicator type and normalised value, or the reason (and a detail) it is refused.
/// `refang` first undoes `hxxp`/`[.]`-style defanging (see [`crate::refang`]).
pub fn normalize(
    raw: &str,
    hint: Option<TypeHint>,
    refang: bool,
) -> Result<(IndicatorType, String), (Reason, Option<String>)> {
    normalize_spelled(raw, hint, refang).map(|n| (n.kind, n.value))
}

/// An accepted value, with the spelling a URL had before canonical percent-encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Normalized {
    /// Defender `indicatorType`.
    pub(crate) kind: IndicatorType,
    /// The normalised value.
    pub(crate) value: String,
    /// For a URL whose canonical form differs from the feed's own spelling (percent-encoding,
    /// default port): that spelling, normalised by every other rule. Lets a parser count values
    /// merged only by the canonical-URL rule.
    pub(crate) spelling: Option<String>,
    /// The address of an IPv4 value the fast path parsed, so the duplicate set need not parse
    /// the value again (`None` elsewhere: it does).
    pub(crate) v4: Option<Ipv4Addr>,
}

impl Normalized {
    /// A value that is not a URL.
    fn plain((kind, value): (IndicatorType, String)) -> Self {
        Normalized { kind, value, spelling: None, v4: None }
    }

    /// A URL, with the feed's own spelling when it differs.
    fn url(u: UrlForms) -> Self {
        Normalized { kind: IndicatorType::Url, value: u.canonical, spelling: u.spelling, v4: None }
    }
}

/// [`normalize`], also returning the feed's own URL spelling (see [`Normalized::spelling`]).
pub(crate) fn normalize_spelled(
    raw: &str,
    hint: Option<TypeHint>,
    refang: bool,
) -> Result<Normalized, Refusal> {
    if let Some(fast) = fast_path(raw.trim(), hint) {
        return fast;
    }
    let value = if refang { refang_fixpoint(raw.trim())? } else { Cow::Borrowed(raw.trim()) };
    let v = value.trim();
    if v.is_empty() {
        return Err(invalid("empty value"));
    }
    if v.ends_with('\u{2026}') {
        return Err(truncated("ends in `…`: the publisher cut the value short"));
    }
    match hint {
        Some(TypeHint::Hash) => normalize_hash(v, None).map(Normalized::plain),
        Some(TypeHint::Exact(t)) => match t {
            IndicatorType::FileMd5
            | IndicatorType::FileSha1
            | IndicatorType::FileSha256
            | IndicatorType::CertificateThumbprint => normalize_hash(v, Some(t)).map(Normalized::plain),
            IndicatorType::IpAddress => match parse_ip_like(v) {
                Some(r) => r.and_then(accept_ip).map(Normalized::plain),
                None => Err(invalid("not an IP address")),
            },
            IndicatorType::DomainName => {
                normalize_domain(v).map(|d| Normalized::plain((IndicatorType::DomainName, d)))
            }
            IndicatorType::Url => normalize_url(v, refang).map(Normalized::url),
        },
        None => detect(v, refang),
    }
}

/// The fast paths, for the two shapes most feed lines have (they give exactly what the general
/// path gives, which the tests check):
/// - a plain IPv4 dotted quad: parsed strictly, classified, and kept as written (a strict parse
///   admits only the canonical spelling, so no formatting is needed);
/// - an ASCII lower-case host name (`[a-z0-9-_.]`, no `xn--` label): no refang (nothing in it
///   can be a defang), no IDNA (it is its own ASCII form), straight to the label and
///   public-suffix checks.
///
/// `None` sends the value down the general path (any other shape, or a forced type that is
/// neither IP nor domain).
fn fast_path(v: &str, hint: Option<TypeHint>) -> Option<Result<Normalized, Refusal>> {
    let b = v.as_bytes();
    let (ip_ok, domain_ok) = match hint {
        None => (true, true),
        Some(TypeHint::Exact(IndicatorType::IpAddress)) => (true, false),
        Some(TypeHint::Exact(IndicatorType::DomainName)) => (false, true),
        Some(TypeHint::Hash) => (false, false),
        Some(_) => return None,
    };
    // A hash: hex holds no defang (no bracket, no `x`), so refang would leave it as it is.
    if matches!(hint, None | Some(TypeHint::Hash))
        && matches!(b.len(), 32 | 40 | 64)
        && b.iter().all(u8::is_ascii_hexdigit)
    {
        return Some(normalize_hex(v, None).map(Normalized::plain));
    }
    let dotted = |b: &[u8]| b.iter().all(|&c| c.is_ascii_digit() || c == b'.');
    // `parse_v4` accepts only digits and dots, so a value it refuses is sent down the general
    // path when it is made of those alone (it is then no domain either).
    let v4 = if ip_ok { parse_v4(b) } else { None };
    if ip_ok && v4.is_none() && (7..=15).contains(&b.len()) && dotted(b) {
        return None;
    }
    if let Some(ip) = v4 {
        return Some(match v4_class(ip) {
            None => Ok(Normalized {
                kind: IndicatorType::IpAddress,
                value: v.to_owned(),
                spelling: None,
                v4: Some(ip),
            }),
            Some(_) => accept_ip(IpAddr::V4(ip)).map(Normalized::plain),
        });
    }
    // A dot is required: a dot-less hex string may be a hash, which detection tries first.
    if domain_ok && b.contains(&b'.') && is_plain_host(b) && !dotted(b) {
        return Some(
            normalize_host_name(v, false).map(|d| Normalized::plain((IndicatorType::DomainName, d))),
        );
    }
    None
}

/// A strict dotted quad (what `Ipv4Addr::from_str` accepts: four decimal parts of 1 to 3
/// digits, each at most 255, no leading zero), without the general parser's machinery.
pub(crate) fn parse_v4(b: &[u8]) -> Option<Ipv4Addr> {
    if !(7..=15).contains(&b.len()) {
        return None;
    }
    // One pass: `n` is the part being read, `digits` its length so far.
    let mut octets = [0u8; 4];
    let (mut part, mut n, mut digits) = (0usize, 0u16, 0u8);
    for &c in b {
        if c == b'.' {
            if digits == 0 || part == 3 {
                return None;
            }
            octets[part] = u8::try_from(n).ok()?;
            (part, n, digits) = (part + 1, 0, 0);
            continue;
        }
        let d = c.wrapping_sub(b'0');
        // Not a digit, a fourth digit, or a digit after a leading zero.
        if d > 9 || digits == 3 || (digits == 1 && n == 0) {
            return None;
        }
        n = n * 10 + u16::from(d);
        digits += 1;
    }
    if digits == 0 || part != 3 {
        return None;
    }
    octets[3] = u8::try_from(n).ok()?;
    Some(Ipv4Addr::from(octets))
}

/// An ASCII lower-case host name IDNA leaves as it is: `[a-z0-9-_]` labels joined by single dots,
/// no empty label, no `xn--` (punycode is decoded and checked by IDNA), not longer than 253.
fn is_plain_host(b: &[u8]) -> bool {
    !b.is_empty()
        && b.len() <= 253
        && b[0] != b'.'
        && b[b.len() - 1] != b'.'
        && b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_' | b'.'))
        && !b.windows(2).any(|w| w == b"..")
        && !b.windows(4).any(|w| w == b"xn--")
}

/// Classify an address Defender must never receive: `PrivateAddress` for private, loopback,
/// link-local, CGNAT, multicast, unspecified, broadcast and ULA; `ReservedAddress` for other
/// reserved and documentation ranges (and IPv6 outside global unicast `2000::/3`); else `None`.
pub fn ip_class(ip: IpAddr) -> Option<Reason> {
    match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_class(v4),
            None => v6_class(v6),
        },
    }
}

/// The registrable domain (public suffix plus one label) of a normalised, lower-case name, or
/// `None` for a bare public suffix or an unknown TLD; used by the allowlist to group names.
pub fn registrable_domain(name: &str) -> Option<&str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let suffix = psl::suffix(name.as_bytes())?;
    if !suffix.is_known() {
        return None;
    }
    psl::domain_str(name)
}

/// True when `name` equals `parent` or is a subdomain of it (both normalised); how an allowlisted
/// domain protects its subdomains.
pub fn domain_within(name: &str, parent: &str) -> bool {
    if parent.is_empty() {
        return false;
    }
    name == parent
        || (name.len() > parent.len()
            && name.ends_with(parent)
            && name.as_bytes()[name.len() - parent.len() - 1] == b'.')
}

/// The host of a normalised URL (no port, IPv6 without brackets); lets the allowlist protect URLs
/// under an allowlisted domain or address.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(inner) = authority.strip_prefix('[') {
        return inner.split_once(']').map(|(h, _)| h);
    }
    Some(authority.split_once(':').map_or(authority, |(h, _)| h))
}

/// Refang until nothing changes (at most a few passes, so nested defangs like `[[.]]` are
/// resolved and the result is stable); deeper nesting is refused.
fn refang_fixpoint(raw: &str) -> Result<Cow<'_, str>, Refusal> {
    let mut cur = crate::refang::refang(raw);
    if let Cow::Borrowed(_) = cur {
        // Nothing changed, so another pass would change nothing either.
        return Ok(cur);
    }
    for _ in 0..4 {
        match crate::refang::refang(&cur) {
            Cow::Borrowed(_) => return Ok(cur),
            Cow::Owned(next) => cur = Cow::Owned(next),
        }
    }
    Err(invalid("defanging nested too deeply"))
}

/// Whether `s` is a URI scheme name (`[A-Za-z][A-Za-z0-9+.-]*`).
fn is_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// Split `scheme://rest` when the text before `://` is a scheme name.
fn split_scheme(v: &str) -> Option<(&str, &str)> {
    let i = v.find("://")?;
    is_scheme(&v[..i]).then(|| (&v[..i], &v[i + 3..]))
}

fn invalid(detail: impl Into<String>) -> Refusal {
    (Reason::InvalidValue, Some(detail.into()))
}

fn truncated(detail: impl Into<String>) -> Refusal {
    (Reason::TruncatedValue, Some(detail.into()))
}

/// Detect the type of an untyped value: hash by hex length, URL, IP, then domain.
fn detect(v: &str, refang: bool) -> Result<Normalized, Refusal> {
    if matches!(v.len(), 32 | 40 | 64) && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return normalize_hash(v, None).map(Normalized::plain);
    }
    if v.contains("://") {
        return normalize_url(v, refang).map(Normalized::url);
    }
    if let Some(r) = parse_ip_like(v) {
        return r.and_then(accept_ip).map(Normalized::plain);
    }
    if v.contains(['/', '?']) {
        return normalize_url(v, refang).map(Normalized::url);
    }
    normalize_domain(v).map(|d| Normalized::plain((IndicatorType::DomainName, d)))
}

fn accept_ip(ip: IpAddr) -> Result<(IndicatorType, String), Refusal> {
    let ip = canonical_ip(ip);
    match ip_class(ip) {
        Some(reason) => Err((reason, Some(format!("{ip} is in a {} range", reason_range(reason))))),
        None => Ok((IndicatorType::IpAddress, defender_ip_form(ip))),
    }
}

/// The form Defender documents for an `IpAddress` indicator: IPv4 dotted quad, IPv6 with all 8
/// groups (lower-case hex, no leading zeros, no `::`), e.g. `2001:4860:4860:0:0:0:0:8888`. A
/// compressed IPv6 value may be refused or may never match traffic (spec §13.6).
pub fn defender_ip_form(ip: IpAddr) -> String {
    // Written digit by digit: this runs for every IPv6 value and every IPv4 value off the fast
    // path, and the formatting machinery cost more than the rest of the check.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(39);
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if o >= 100 {
                    out.push(char::from(b'0' + o / 100));
                }
                if o >= 10 {
                    out.push(char::from(b'0' + o / 10 % 10));
                }
                out.push(char::from(b'0' + o % 10));
            }
        }
        IpAddr::V6(v6) => {
            for (i, g) in v6.segments().into_iter().enumerate() {
                if i > 0 {
                    out.push(':');
                }
                // Lower-case hex without leading zeros (`{:x}`).
                let mut shift = 12;
                while shift > 0 && (g >> shift) == 0 {
                    shift -= 4;
                }
                loop {
                    out.push(char::from(HEX[usize::from((g >> shift) & 0xf)]));
                    if shift == 0 {
                        break;
                    }
                    shift -= 4;
                }
            }
        }
    }
    out
}

fn reason_range(reason: Reason) -> &'static str {
    match reason {
        Reason::PrivateAddress => "private/non-routable",
        _ => "reserved or documentation",
    }
}

/// IPv4-mapped IPv6 becomes IPv4.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Parse a value shaped like an IP (`ip`, `ip:port`, `[v6]`, `[v6]:port`, `ip/len`).
/// `None` when it is not IP-shaped at all (so detection moves on); `Some(Err)` for an IP-shaped
/// value that is refused (wide CIDR, bad port, bad prefix).
fn parse_ip_like(v: &str) -> Option<Result<IpAddr, Refusal>> {
    if let Some(inner) = v.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        let ip = Ipv6Addr::from_str(host).ok()?;
        if after.is_empty() {
            return Some(Ok(IpAddr::V6(ip)));
        }
        let port = after.strip_prefix(':')?;
        return Some(check_port(port).map(|()| IpAddr::V6(ip)));
    }
    if let Some((addr, len)) = v.split_once('/') {
        let ip = IpAddr::from_str(addr).ok()?;
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let max = if ip.is_ipv4() { 32 } else { 128 };
        return Some(match len.parse::<u8>() {
            Ok(n) if n == max => Ok(ip),
            Ok(n) if n < max => Err((
                Reason::CidrNotSupported,
                Some(format!("CIDR /{n} is wider than one address; Defender takes single addresses")),
            )),
            _ => Err(invalid(format!("prefix length /{len} is out of range"))),
        });
    }
    if let Ok(ip) = IpAddr::from_str(v) {
        return Some(Ok(ip));
    }
    let (addr, port) = v.rsplit_once(':')?;
    let ip = Ipv4Addr::from_str(addr).ok()?;
    Some(check_port(port).map(|()| IpAddr::V4(ip)))
}

fn check_port(port: &str) -> Result<(), Refusal> {
    if !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && let Ok(p) = port.parse::<u32>()
        && p <= 65535
    {
        return Ok(());
    }
    Err(invalid(format!("invalid port `{}`", truncate(port, 16))))
}

fn v4_class(ip: Ipv4Addr) -> Option<Reason> {
    let o = ip.octets();
    let cgnat = o[0] == 100 && (o[1] & 0xc0) == 64;
    if ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || cgnat
    {
        return Some(Reason::PrivateAddress);
    }
    let reserved = o[0] == 0
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 192 && o[1] == 0 && o[2] == 2)
        || (o[0] == 192 && o[1] == 88 && o[2] == 99)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || (o[0] == 198 && o[1] == 51 && o[2] == 100)
        || (o[0] == 203 && o[1] == 0 && o[2] == 113)
        || o[0] >= 240;
    reserved.then_some(Reason::ReservedAddress)
}

fn v6_class(ip: Ipv6Addr) -> Option<Reason> {
    let s = ip.segments();
    if ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xff00) == 0xff00
    {
        return Some(Reason::PrivateAddress);
    }
    let documentation = (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] == 0x3fff && s[1] < 0x1000);
    let ietf_special = s[0] == 0x2001 && s[1] < 0x0200;
    let not_global_unicast = (s[0] & 0xe000) != 0x2000;
    (documentation || ietf_special || not_global_unicast).then_some(Reason::ReservedAddress)
}

fn normalize_hash(v: &str, declared: Option<IndicatorType>) -> Result<(IndicatorType, String), Refusal> {
    if !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("a hash must be hexadecimal"));
    }
    normalize_hex(v, declared)
}

/// [`normalize_hash`] for a value already known to be hexadecimal.
fn normalize_hex(v: &str, declared: Option<IndicatorType>) -> Result<(IndicatorType, String), Refusal> {
    let len = v.len();
    let kind = match declared {
        Some(t) => {
            let want = match t {
                IndicatorType::FileMd5 => 32,
                IndicatorType::FileSha256 => 64,
                _ => 40,
            };
            if len != want {
                return Err(invalid(format!("{t} needs {want} hex digits, got {len}")));
            }
            t
        }
        None => match len {
            32 => IndicatorType::FileMd5,
            40 => IndicatorType::FileSha1,
            64 => IndicatorType::FileSha256,
            _ => {
                return Err(invalid(format!(
                    "{len} hex digits is not an MD5 (32), SHA-1 (40) or SHA-256 (64) hash"
                )));
            }
        },
    };
    Ok((kind, v.to_ascii_lowercase()))
}

/// Normalise a domain name value (accepting `name:port` and a leading `*.`).
fn normalize_domain(v: &str) -> Result<String, Refusal> {
    let mut name = v;
    if let Some((host, port)) = name.rsplit_once(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && !host.contains(':')
    {
        check_port(port)?;
        name = host;
    }
    if let Some(rest) = name.strip_prefix("*.") {
        name = rest;
    }
    normalize_host_name(name, false)
}

/// Normalise a host name (no port, no wildcard): IDNA, LDH(+`_`), lengths, public suffix
/// (a bare public suffix is refused unless `allow_suffix`).
fn normalize_host_name(v: &str, allow_suffix: bool) -> Result<String, Refusal> {
    if v.ends_with("...") {
        return Err(truncated("the host name ends in `...`: the publisher cut the value short"));
    }
    let name = v.strip_suffix('.').unwrap_or(v);
    if name.is_empty() {
        return Err(invalid("empty domain name"));
    }
    if name.len() > 1024 {
        return Err(invalid("domain name longer than 253 characters"));
    }
    // IDNA only for what can change under it: non-ASCII, upper case, or `xn--` labels.
    let ascii = if is_plain_host(name.as_bytes()) {
        Cow::Borrowed(name)
    } else {
        idna::domain_to_ascii_cow(name.as_bytes(), idna::AsciiDenyList::URL)
            .map_err(|_| invalid("not a valid domain name (IDNA processing failed)"))?
    };
    if ascii.is_empty() || ascii.len() > 253 {
        return Err(invalid("a domain name must be 1 to 253 characters"));
    }
    let mut labels = 0usize;
    let mut all_numeric = true;
    let mut last = "";
    for label in ascii.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(invalid("each domain label must be 1 to 63 characters"));
        }
        if !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
            return Err(invalid("a domain name may only hold letters, digits, `-` and `_`"));
        }
        all_numeric &= label.bytes().all(|b| b.is_ascii_digit());
        labels += 1;
        last = label;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        let detail = if all_numeric && labels > 1 {
            "not a valid IPv4 address (strict dotted quad, no leading zeros)"
        } else {
            "the top-level domain is all digits"
        };
        return Err(invalid(detail));
    }
    let Some(suffix) = psl::suffix(ascii.as_bytes()) else {
        return Err(invalid("no public suffix"));
    };
    if !suffix.is_known() {
        return Err(invalid(format!("unknown top-level domain `.{last}`")));
    }
    let suffix_len = suffix.as_bytes().len();
    if suffix_len == ascii.len() {
        if !allow_suffix {
            return Err((
                Reason::PublicSuffix,
                Some(format!("`{ascii}` is a public suffix, not a registrable domain")),
            ));
        }
    } else {
        let registrable = ascii[..ascii.len() - suffix_len - 1].rsplit('.').next().unwrap_or_default();
        let suffix_str = &ascii[ascii.len() - suffix_len..];
        if let Some(detail) = file_name_like(registrable, suffix_str, suffix.typ()) {
            return Err(invalid(detail));
        }
    }
    Ok(ascii.into_owned())
}

/// Top-level domains that are also common file extensions (the 2023 Google gTLDs).
const FILE_EXTENSION_TLDS: [&str; 2] = ["zip", "mov"];

/// Common document, script, executable, shortcut, archive and media extensions: a registrable
/// label equal to one of these under a [`FILE_EXTENSION_TLDS`] gTLD reads as a file name.
const FILE_EXTENSIONS: [&str; 46] = [
    "pdf", "doc", "docx", "docm", "dot", "xls", "xlsx", "xlsm", "ppt", "pptx", "pptm", "rtf", "odt", "txt",
    "csv", "htm", "html", "svg", "one", "exe", "dll", "scr", "msi", "msix", "com", "bat", "cmd", "ps1", "js",
    "jse", "vbs", "vbe", "wsf", "hta", "lnk", "url", "jar", "apk", "iso", "img", "vhd", "rar", "7z", "gz",
    "jpg", "mp4",
];

/// Whether a registrable label and its public suffix read as a file name rather than a domain;
/// returns the refusal detail.
///
/// Two rules (the rest of `invoice.pdf.zip`-style confusion cannot be told from real hosts):
/// - **`_` in the registrable label under an ICANN suffix** (`report_2026.zip`,
///   `invoice_final.mov`, `nx_2026073083242.zip`): registries sell LDH names only, so no such
///   domain exists and the value is a file name (or junk). `_` stays allowed in subdomain labels
///   (`_dmarc.evil.com`, `a_b.pdf.lnk.dpdns.org`, whose registrable label is `lnk` because
///   `dpdns.org` is itself a public suffix) and in the registrable label under a private-section
///   suffix (`public-faq-start-helps_-trezr.typedream.app`): there the hosting service, not a
///   registry, hands out names and its DNS may well answer for them.
/// - **A file extension left of a file-extension gTLD**: under `.zip` or `.mov`
///   ([`FILE_EXTENSION_TLDS`]), a registrable label that is a common document or executable
///   extension ([`FILE_EXTENSIONS`]: `pdf`, `doc`, `exe`, `js`, `lnk`, ...) makes the name read as
///   a double-extension file name (`invoice.pdf.zip`, `x.doc.mov`, `pdf.zip`); a real `pdf.zip`
///   registration is possible but far less likely than a file name caught by an IoC extractor.
///   Other double extensions (`x.pdf.exe`, `a.doc.js`) need no rule: `.exe` and `.js` are not
///   top-level domains, so they are already `invalid-value` (unknown top-level domain).
fn file_name_like(registrable: &str, suffix: &str, typ: Option<psl::Type>) -> Option<String> {
    if registrable.contains('_') && typ == Some(psl::Type::Icann) {
        return Some(format!(
            "`{registrable}.{suffix}` is not a domain: a registered name cannot hold `_` (a file name?)"
        ));
    }
    if FILE_EXTENSION_TLDS.contains(&suffix) && FILE_EXTENSIONS.contains(&registrable) {
        return Some(format!("`.{registrable}.{suffix}` reads as a file name, not a domain"));
    }
    None
}

/// A normalised URL: its canonical form, and the feed's own spelling when that differs.
struct UrlForms {
    /// The canonical URL.
    canonical: String,
    /// The URL with every rule but the canonical percent-encoding and the default-port drop.
    spelling: Option<String>,
}

/// Normalise an `http`/`https` URL (or a scheme-less `host/path`), then, with `refang`, refang
/// the canonical form until it is stable (decoding `%78` may reveal a defang such as `hxxp:`).
fn normalize_url(v: &str, refang: bool) -> Result<UrlForms, Refusal> {
    let mut forms = url_once(v)?;
    if !refang {
        return Ok(forms);
    }
    for _ in 0..4 {
        match crate::refang::refang(&forms.canonical) {
            Cow::Borrowed(_) => return Ok(forms),
            Cow::Owned(next) => {
                let spelling = forms.spelling.take().unwrap_or(forms.canonical);
                forms = url_once(&next)?;
                if forms.canonical != spelling {
                    forms.spelling = Some(spelling);
                }
            }
        }
    }
    Err(invalid("defanging nested too deeply"))
}

/// One pass of URL normalisation (no refang).
fn url_once(v: &str) -> Result<UrlForms, Refusal> {
    let (scheme, rest) = match split_scheme(v) {
        Some((scheme, rest)) => {
            if scheme.eq_ignore_ascii_case("http") {
                ("http", rest)
            } else if scheme.eq_ignore_ascii_case("https") {
                ("https", rest)
            } else {
                return Err(invalid(format!("URL scheme `{}` is not http or https", truncate(scheme, 32))));
            }
        }
        None => {
            if v.starts_with('/') {
                return Err(invalid("a URL path with no host"));
            }
            if let Some((scheme, after)) = v.split_once(':')
                && is_scheme(scheme)
                && !after.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(invalid(format!("URL scheme `{}` is not http or https", truncate(scheme, 32))));
            }
            ("http", v)
        }
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let tail = &rest[end..];
    // The host is what is contacted: user info (`user:pass@`) is dropped.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if authority.is_empty() {
        return Err(invalid("URL has no host"));
    }
    let (host, port) = split_host_port(authority)?;
    let tail = tail.split_once('#').map_or(tail, |(t, _)| t);
    if ends_mid_escape(tail) {
        return Err(truncated("the URL ends in the middle of a percent-escape: the publisher cut it short"));
    }
    // A URL on a public-suffix host (`https://s3.us-east-1.amazonaws.com/bucket/file`) is precise
    // when it has a path or query; only the bare host URL would block a whole registry.
    let narrow = !matches!(tail, "" | "/");
    let host = url_host_normalize(host, narrow)?;
    let mut origin = String::with_capacity(v.len() + 8);
    origin.push_str(scheme);
    origin.push_str("://");
    origin.push_str(&host);
    let origin_len = origin.len();
    if let Some(p) = port {
        origin.push(':');
        origin.push_str(&p.to_string());
    }
    let default_port = matches!((scheme, port), ("http", Some(80)) | ("https", Some(443)));
    // Empty path rule: no path is the path `/` (what a browser requests).
    let slash = if tail.starts_with('/') { "" } else { "/" };

    let mut canonical = String::with_capacity(origin.len() + tail.len() + 8);
    canonical.push_str(if default_port { &origin[..origin_len] } else { &origin });
    canonical.push_str(slash);
    let path_start = canonical.len();
    canonical_tail(tail, &mut canonical);
    let canonical_path = &canonical[path_start..];
    if canonical_path.len() > 1 && (canonical_path.ends_with("...") || canonical_path.ends_with("%E2%80%A6"))
    {
        return Err(truncated("the URL ends in `...`: the publisher cut the value short"));
    }

    // The spelling is only built when it can differ (most URLs are already canonical).
    let literal_is_tail = tail.bytes().all(|b| b > b' ' && b < 0x7f);
    let spelling = if !default_port && literal_is_tail && canonical[path_start..] == *tail {
        None
    } else {
        let mut spelling = origin;
        spelling.push_str(slash);
        literal_tail(tail, &mut spelling);
        (spelling != canonical).then_some(spelling)
    };
    Ok(UrlForms { canonical, spelling })
}

fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), Refusal> {
    let (host, port) = if authority.starts_with('[') {
        match authority.find(']') {
            Some(i) => {
                let after = &authority[i + 1..];
                match after.strip_prefix(':') {
                    Some(p) => (&authority[..=i], Some(p)),
                    None if after.is_empty() => (authority, None),
                    None => return Err(invalid("unexpected text after `]` in URL host")),
                }
            }
            None => return Err(invalid("unclosed `[` in URL host")),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => {
            check_port(p)?;
            Some(p.parse::<u16>().map_err(|_| invalid("invalid port"))?)
        }
        None => None,
    };
    Ok((host, port))
}

/// Normalise a URL host: bracketed IPv6, IPv4, or a domain name; refused addresses keep their
/// reason (`private-address`, ...).
fn url_host_normalize(host: &str, allow_suffix: bool) -> Result<String, Refusal> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        let ip = Ipv6Addr::from_str(inner).map_err(|_| invalid("invalid IPv6 address in URL host"))?;
        // A URL host keeps the compressed form a browser sends (`[2001:db8::1]`).
        let (_, s) = accept_ip(IpAddr::V6(ip))?;
        return Ok(match s.parse::<Ipv6Addr>() {
            Ok(v6) => format!("[{v6}]"),
            Err(_) => s,
        });
    }
    if let Ok(ip) = Ipv4Addr::from_str(host) {
        return accept_ip(IpAddr::V4(ip)).map(|(_, s)| s);
    }
    normalize_host_name(host, allow_suffix)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_escape(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xf)]));
}

/// Append path and query as the feed spelled them, percent-encoding spaces, control and non-ASCII
/// bytes only (the spelling before the canonical percent-encoding; see [`Normalized::spelling`]).
fn literal_tail(tail: &str, out: &mut String) {
    for &b in tail.as_bytes() {
        if b <= b' ' || b >= 0x7f {
            push_escape(out, b);
        } else {
            out.push(char::from(b));
        }
    }
}

/// RFC 3986 unreserved characters: their escapes are decoded.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Bytes a browser percent-encodes in a path: controls, space, `"`, `<`, `>`, `^`, `` ` ``, `{`,
/// `|`, `}`, DEL and every non-ASCII byte.
fn browser_encodes(b: u8) -> bool {
    b <= b' ' || b >= 0x7f || matches!(b, b'"' | b'<' | b'>' | b'^' | b'`' | b'{' | b'|' | b'}')
}

/// Whether `tail` ends inside a run of percent-escapes: `%` or `%H` right after a complete `%HH`
/// (`…/%E2%99%95%E2%`), the mark of a URL cut at a fixed length. A lone `100%` is not.
fn ends_mid_escape(tail: &str) -> bool {
    let b = tail.as_bytes();
    let cut = match b {
        [.., b'%'] => 1,
        [.., b'%', h] if h.is_ascii_hexdigit() => 2,
        _ => return false,
    };
    matches!(b[..b.len() - cut], [.., b'%', h, l] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit())
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Append path and query in the one canonical percent-encoding (RFC 3986 §6.2.2, what a browser
/// sends): escapes of unreserved characters decoded, other escapes kept with upper-case hex,
/// the bytes of [`browser_encodes`] encoded, a `%` that starts no escape written `%25`, every other
/// character (reserved ones included) kept as written. Idempotent: its output is its own form.
fn canonical_tail(tail: &str, out: &mut String) {
    let b = tail.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            match (b.get(i + 1).copied().and_then(hex_value), b.get(i + 2).copied().and_then(hex_value)) {
                (Some(hi), Some(lo)) => {
                    let v = (hi << 4) | lo;
                    if is_unreserved(v) {
                        out.push(char::from(v));
                    } else {
                        push_escape(out, v);
                    }
                    i += 3;
                }
                _ => {
                    push_escape(out, b'%');
                    i += 1;
                }
            }
            continue;
        }
        if browser_encodes(c) {
            push_escape(out, c);
        } else {
            out.push(char::from(c));
        }
        i += 1;
    }
}

/// Cut `s` to at most `max` bytes on a char boundary (for details and rejection values).
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> (IndicatorType, String) {
        normalize(raw, None, true).unwrap_or_else(|e| panic!("{raw}: {e:?}"))
    }
    fn reason(raw: &str) -> Reason {
        normalize(raw, None, true).unwrap_err().0
    }

    #[test]
    fn ips() {
        assert_eq!(ok("8.8.8.8"), (IndicatorType::IpAddress, "8.8.8.8".into()));
        assert_eq!(ok("1.2.3.4:443").1, "1.2.3.4");
        assert_eq!(ok("8.8.8.8/32").1, "8.8.8.8");
        assert_eq!(ok("::ffff:8.8.4.4").1, "8.8.4.4");
        // IpAddress values go out with all 8 groups (the documented form, spec §13.6).
        assert_eq!(ok("2606:4700:0:0:0:0:0:1111").1, "2606:4700:0:0:0:0:0:1111");
        assert_eq!(ok("2606:4700::1111").1, "2606:4700:0:0:0:0:0:1111");
        assert_eq!(ok("[2606:4700::1111]:443").1, "2606:4700:0:0:0:0:0:1111");
        assert_eq!(ok("2606:4700::1111/128").1, "2606:4700:0:0:0:0:0:1111");
        assert_eq!(ok("2A03:2880:F10C:83::25DE").1, "2a03:2880:f10c:83:0:0:0:25de", "lower-case hex");
        assert_eq!(reason("10.0.0.0/8"), Reason::CidrNotSupported);
        assert_eq!(reason("10.1.2.3"), Reason::PrivateAddress);
        assert_eq!(reason("100.64.0.1"), Reason::PrivateAddress);
        assert_eq!(reason("255.255.255.255"), Reason::PrivateAddress);
        assert_eq!(reason("fd00::1"), Reason::PrivateAddress);
        assert_eq!(reason("fe80::1"), Reason::PrivateAddress);
        assert_eq!(reason("::"), Reason::PrivateAddress);
        assert_eq!(reason("192.0.2.1"), Reason::ReservedAddress);
        assert_eq!(reason("198.19.0.1"), Reason::ReservedAddress);
        assert_eq!(reason("240.0.0.1"), Reason::ReservedAddress);
        assert_eq!(reason("64:ff9b::808:808"), Reason::ReservedAddress);
        assert_eq!(reason("[2001:db8::1]:443"), Reason::ReservedAddress);
        assert_eq!(reason("1.2.3"), Reason::InvalidValue);
        assert_eq!(reason("010.1.1.1"), Reason::InvalidValue);
        assert_eq!(reason("1.2.3.4:99999"), Reason::InvalidValue);
        assert_eq!(reason("1.2.3.4/33"), Reason::InvalidValue);
    }

    #[test]
    fn domains() {
        assert_eq!(ok("Evil.COM."), (IndicatorType::DomainName, "evil.com".into()));
        assert_eq!(ok("bücher.de").1, "xn--bcher-kva.de");
        assert_eq!(ok("xn--bcher-kva.de").1, "xn--bcher-kva.de");
        assert_eq!(ok("_dmarc.evil.com").1, "_dmarc.evil.com");
        assert_eq!(ok("*.evil.com").1, "evil.com");
        assert_eq!(ok("evil.co.uk").1, "evil.co.uk");
        assert_eq!(reason("co.uk"), Reason::PublicSuffix);
        assert_eq!(reason("com"), Reason::PublicSuffix);
        assert_eq!(reason("printer.local"), Reason::InvalidValue);
        assert_eq!(reason("a..b.com"), Reason::InvalidValue);
        assert_eq!(reason(&format!("{}.com", "a".repeat(64))), Reason::InvalidValue);
        assert_eq!(registrable_domain("a.b.evil.co.uk"), Some("evil.co.uk"));
        assert_eq!(registrable_domain("co.uk"), None);
        assert!(domain_within("a.evil.com", "evil.com"));
        assert!(!domain_within("notevil.com", "evil.com"));
    }

    #[test]
    fn urls() {
        assert_eq!(ok("hxxps://evil[.]com/a?b=c"), (IndicatorType::Url, "https://evil.com/a?b=c".into()));
        assert_eq!(ok("HTTP://Evil.COM:8080/A/B?x=Y#frag").1, "http://evil.com:8080/A/B?x=Y");
        assert_eq!(ok("evil.com/path").1, "http://evil.com/path");
        assert_eq!(ok("evil.com/r?u=http://b.com/").1, "http://evil.com/r?u=http://b.com/");
        assert_eq!(ok("http://evil.com").1, "http://evil.com/");
        assert_eq!(ok("http://user:pw@evil.com/x").1, "http://evil.com/x");
        // :80 is http's default port (dropped); %41 is the unreserved `A` (decoded).
        assert_eq!(ok("http://[2606:4700::1111]:80/x").1, "http://[2606:4700::1111]/x");
        assert_eq!(ok("http://[2606:4700::1111]:8080/x").1, "http://[2606:4700::1111]:8080/x");
        assert_eq!(ok("http://evil.com/a b/%41").1, "http://evil.com/a%20b/A");
        assert_eq!(ok("hxxp://evil[.]com/a[.]php").1, "http://evil.com/a.php");
        assert_eq!(ok("evil[[.]]com").1, "evil.com");
        assert_eq!(normalize("http://evil.com/[.]x", None, false).unwrap().1, "http://evil.com/[.]x");
        assert_eq!(reason("/path/only"), Reason::InvalidValue);
        assert_eq!(reason("ftp://evil.com/x"), Reason::InvalidValue);
        let url = Some(TypeHint::Exact(IndicatorType::Url));
        assert_eq!(normalize("mailto:a@evil.com", url, true).unwrap_err().0, Reason::InvalidValue);
        assert_eq!(normalize("evil.com:8080/x", url, true).unwrap().1, "http://evil.com:8080/x");
        assert_eq!(reason("http://192.168.1.1/x"), Reason::PrivateAddress);
        assert_eq!(reason("http://co.uk/"), Reason::PublicSuffix);
        assert_eq!(reason("https://github.io"), Reason::PublicSuffix);
        assert_eq!(
            ok("https://s3.us-east-1.amazonaws.com/b/f.html").1,
            "https://s3.us-east-1.amazonaws.com/b/f.html"
        );
        assert_eq!(url_host("http://[2606:4700::1111]:80/x"), Some("2606:4700::1111"));
        assert_eq!(url_host("https://evil.com:8443/x"), Some("evil.com"));
    }

    /// The general path, without the fast paths: what they must agree with.
    fn general(raw: &str, hint: Option<TypeHint>) -> Result<(IndicatorType, String), Reason> {
        let v = refang_fixpoint(raw.trim()).map_err(|e| e.0)?;
        let v = v.trim();
        let r = match hint {
            Some(TypeHint::Exact(IndicatorType::IpAddress)) => match parse_ip_like(v) {
                Some(r) => r.and_then(accept_ip),
                None => Err(invalid("not an IP address")),
            },
            Some(TypeHint::Exact(IndicatorType::DomainName)) => {
                normalize_domain_idna(v).map(|d| (IndicatorType::DomainName, d))
            }
            Some(TypeHint::Hash) => normalize_hash(v, None),
            _ => detect(v, true).map(|n| (n.kind, n.value)),
        };
        r.map_err(|e| e.0)
    }

    /// [`normalize_domain`] always through IDNA.
    fn normalize_domain_idna(v: &str) -> Result<String, Refusal> {
        let ascii = idna::domain_to_ascii_cow(v.as_bytes(), idna::AsciiDenyList::URL)
            .map_err(|_| invalid("IDNA failed"))?;
        normalize_domain(&ascii)
    }

    #[test]
    fn defender_ip_form_is_what_the_formatting_machinery_writes() {
        let mut ips: Vec<IpAddr> = ["0.0.0.0", "255.255.255.255", "9.10.99.100", "1.2.3.4", "::", "::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        ips.extend(
            ["2001:db8::f:ff:fff:ffff", "2606:4700:0:0:0:0:0:1111", "ffff:1:10:100:1000:abcd:9:0"]
                .iter()
                .map(|s| s.parse::<IpAddr>().unwrap()),
        );
        let mut x: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;
        for _ in 0..2000 {
            x = x.wrapping_mul(0x2545_f491_4f6c_dd1d).wrapping_add(0x1405_7b7e_f767_814f);
            ips.push(IpAddr::V6(Ipv6Addr::from(x >> (x % 64))));
            ips.push(IpAddr::V4(Ipv4Addr::from((x >> 64) as u32 >> (x % 24))));
        }
        for ip in ips {
            let want = match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => {
                    v6.segments().iter().map(|g| format!("{g:x}")).collect::<Vec<_>>().join(":")
                }
            };
            assert_eq!(defender_ip_form(ip), want);
        }
    }

    #[test]
    fn fast_paths_agree_with_the_general_path() {
        let cases = [
            "8.8.8.8",
            "1.1.1.1",
            "10.0.0.1",
            "192.0.2.1",
            "255.255.255.255",
            "0.0.0.0",
            "1.2.3",
            "01.2.3.4",
            "1.2.3.4.5",
            "999.1.1.1",
            "evil.com",
            "a.evil.co.uk",
            "co.uk",
            "com",
            "x.local",
            "_dmarc.evil.com",
            "report_2026.zip",
            "invoice.pdf.zip",
            "a-.com",
            "-a.com",
            "ab--cd.com",
            "1abc.com",
            "123.com",
            "a.b.c.d.e.f.g.com",
            "xx.example.com",
            "d41d8cd98f00b204e9800998ecf8427e",
            "D41D8CD98F00B204E9800998ECF8427E",
            "2B42FD41A1C8AC12221857DD2DF93164A71B95D7",
            "0.1.2.3",
            "xyz",
        ];
        for raw in cases {
            for hint in [
                None,
                Some(TypeHint::Exact(IndicatorType::IpAddress)),
                Some(TypeHint::Exact(IndicatorType::DomainName)),
                Some(TypeHint::Hash),
            ] {
                let fast = normalize(raw, hint, true).map_err(|e| e.0);
                assert_eq!(fast, general(raw, hint), "{raw} {hint:?}");
            }
        }
        assert!(fast_path("8.8.8.8", None).is_some(), "the IPv4 fast path is taken");
        assert!(fast_path("evil.com", None).is_some(), "the host fast path is taken");
        assert!(fast_path("Evil.com", None).is_none(), "upper case goes through IDNA");
        assert!(fast_path("xn--bcher-kva.de", None).is_none(), "punycode goes through IDNA");
        assert!(
            matches!(fast_path("d41d8cd98f00b204e9800998ecf8427e", None), Some(Ok(n)) if n.kind == IndicatorType::FileMd5),
            "a hash takes the hash fast path, never the host one"
        );
    }

    proptest::proptest! {
        /// The strict IPv4 parser accepts exactly what the standard one accepts.
        #[test]
        fn parse_v4_agrees_with_std(s in "[0-9.]{0,16}", a in 0u16..300, b in 0u16..300, z in 0usize..3) {
            let quad = format!("{}{a}.{b}.{}.{}", "0".repeat(z), a.min(b), a.max(b));
            for v in [s.as_str(), quad.as_str()] {
                proptest::prop_assert_eq!(parse_v4(v.as_bytes()), Ipv4Addr::from_str(v).ok(), "{}", v);
            }
        }

        /// A plain host is its own IDNA form: skipping IDNA for it changes nothing.
        #[test]
        fn plain_hosts_are_their_own_idna_form(s in "[a-z0-9_.-]{1,40}") {
            if is_plain_host(s.as_bytes()) {
                let idna = idna::domain_to_ascii_cow(s.as_bytes(), idna::AsciiDenyList::URL);
                proptest::prop_assert_eq!(idna.map(|c| c.into_owned()).ok(), Some(s.clone()));
            }
            proptest::prop_assert_eq!(
                normalize(&s, None, true).map_err(|e| e.0),
                general(&s, None)
            );
        }
    }

    #[test]
    fn hashes() {
        let md5 = "D41D8CD98F00B204E9800998ECF8427E";
        assert_eq!(ok(md5), (IndicatorType::FileMd5, md5.to_ascii_lowercase()));
        assert_eq!(ok("E42a8cefD41D8CD98F00B204E9800998").0, IndicatorType::FileMd5);
        let sha1 = "2B42FD41A1C8AC12221857DD2DF93164A71B95D7";
        assert_eq!(ok(sha1).0, IndicatorType::FileSha1);
        let cert = Some(TypeHint::Exact(IndicatorType::CertificateThumbprint));
        assert_eq!(normalize(sha1, cert, true).unwrap().0, IndicatorType::CertificateThumbprint);
        let sha256 = Some(TypeHint::Exact(IndicatorType::FileSha256));
        assert_eq!(normalize(sha1, sha256, true).unwrap_err().0, Reason::InvalidValue);
        assert_eq!(normalize("xyz", Some(TypeHint::Hash), true).unwrap_err().0, Reason::InvalidValue);
    }
}
