//! The indicator kinds Defender accepts, under their `indicatorType` wire names.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Defender `indicatorType` values that iocsync can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum IndicatorType {
    /// SHA-1 file hash (40 hex).
    FileSha1,
    /// SHA-256 file hash (64 hex).
    FileSha256,
    /// MD5 file hash (32 hex).
    FileMd5,
    /// SHA-1 thumbprint of a leaf certificate (40 hex).
    CertificateThumbprint,
    /// One public IPv4 or IPv6 address.
    IpAddress,
    /// A registrable domain name or a subdomain of one.
    DomainName,
    /// An `http`/`https` URL.
    Url,
}

impl IndicatorType {
    /// Every kind, in a stable order (used for reports).
    pub const ALL: [IndicatorType; 7] = [
        IndicatorType::FileSha1,
        IndicatorType::FileSha256,
        IndicatorType::FileMd5,
        IndicatorType::CertificateThumbprint,
        IndicatorType::IpAddress,
        IndicatorType::DomainName,
        IndicatorType::Url,
    ];

    /// The wire name, e.g. `"FileSha256"`.
    pub fn as_str(self) -> &'static str {
        match self {
            IndicatorType::FileSha1 => "FileSha1",
            IndicatorType::FileSha256 => "FileSha256",
            IndicatorType::FileMd5 => "FileMd5",
            IndicatorType::CertificateThumbprint => "CertificateThumbprint",
            IndicatorType::IpAddress => "IpAddress",
            IndicatorType::DomainName => "DomainName",
            IndicatorType::Url => "Url",
        }
    }

    /// True for the three file-hash kinds.
    pub fn is_file_hash(self) -> bool {
        matches!(self, IndicatorType::FileSha1 | IndicatorType::FileSha256 | IndicatorType::FileMd5)
    }

    /// True for IP, domain and URL (network) kinds.
    pub fn is_network(self) -> bool {
        matches!(self, IndicatorType::IpAddress | IndicatorType::DomainName | IndicatorType::Url)
    }
}

impl fmt::Display for IndicatorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown indicator type `{0}` (expected one of: ip, domain, url, md5, sha1, sha256, cert, or a Defender indicatorType name)"
)]
pub struct UnknownType(pub String);

impl FromStr for IndicatorType {
    type Err = UnknownType;
    /// Accepts the wire names (case-insensitive) and the short names of `TypeHint`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<TypeHint>()? {
            TypeHint::Exact(t) => Ok(t),
            TypeHint::Hash => Err(UnknownType(s.to_owned())),
        }
    }
}

/// What a feed (or a CSV type column, or `--type`) says a value is.
///
/// `Hash` means "some file hash, decide by length"; `Exact` forces one kind (a 40-hex value in a
/// feed declared `CertificateThumbprint` is a thumbprint, not a SHA-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TypeHint {
    /// Exactly this kind.
    Exact(IndicatorType),
    /// A file hash whose length decides MD5, SHA-1 or SHA-256.
    Hash,
}

impl FromStr for TypeHint {
    type Err = UnknownType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let t = match lower.as_str() {
            "filesha1" | "sha1" | "sha-1" => IndicatorType::FileSha1,
            "filesha256" | "sha256" | "sha-256" => IndicatorType::FileSha256,
            "filemd5" | "md5" => IndicatorType::FileMd5,
            "certificatethumbprint" | "cert" | "certificate" | "thumbprint" | "x509-fingerprint-sha1" => {
                IndicatorType::CertificateThumbprint
            }
            "ipaddress" | "ip" | "ipv4" | "ipv6" | "ip-src" | "ip-dst" | "ipv4-addr" | "ipv6-addr" => {
                IndicatorType::IpAddress
            }
            "domainname" | "domain" | "hostname" | "fqdn" | "domain-name" => IndicatorType::DomainName,
            "url" | "uri" => IndicatorType::Url,
            "hash" | "filehash" => return Ok(TypeHint::Hash),
            _ => return Err(UnknownType(s.to_owned())),
        };
        Ok(TypeHint::Exact(t))
    }
}
