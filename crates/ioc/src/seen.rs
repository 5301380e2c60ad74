//! The set of values one feed has accepted so far, kept compactly: it is what bounds a streamed
//! parse's memory, so it holds each distinct value once, in a compact key form.
//!
//! Accepted IPs and hashes (a key under its own kind's tag, [`kind_tag`]) live in one table per
//! kind of fixed-size keys: an IPv4 address as a `u32`, an IPv6 address as a `u128`, a hash as its
//! raw bytes (half its hex length). Hashing and comparing such a key touches no other memory, and
//! growing the table re-hashes the keys in place, which is what makes the most common feed lines
//! (an address, a hash) cheap. Every other key (domains, URLs, URL spellings, and any value whose
//! compact form does not apply) is one tag byte (the indicator type, or [`SPELLING`]) then the
//! value: the same compact forms for an IP or a hash under another tag, anything else as its UTF-8
//! bytes, in one byte arena; that table holds only `u32` entry numbers, and an entry's key is
//! `arena[ends[i - 1]..ends[i]]`. One flag per arena entry records that a URL was seen spelled
//! exactly as its canonical form, so the common case costs no second copy (see `Collector`).

use crate::IndicatorType;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use std::hash::{BuildHasher, Hash};
use std::net::Ipv6Addr;
use std::str::FromStr;

/// Tag of a URL spelling (a feed's own spelling that differs from its canonical form).
pub(crate) const SPELLING: u8 = 0x40;

/// Tag bit of a value stored as text although its type has a compact form (never expected: a
/// normalised IP or hash always has one; kept so two key forms can never collide).
const RAW: u8 = 0x80;

/// The entry number [`Seen::insert`] gives a key held in a fixed-size table: such a key has no
/// flag (only URLs are marked, and a URL is never a fixed-size key).
pub(crate) const FIXED: usize = usize::MAX;

/// The key tag of an indicator type in the duplicate set.
pub(crate) fn kind_tag(kind: IndicatorType) -> u8 {
    match kind {
        IndicatorType::FileSha1 => 1,
        IndicatorType::FileSha256 => 2,
        IndicatorType::FileMd5 => 3,
        IndicatorType::CertificateThumbprint => 4,
        IndicatorType::IpAddress => 5,
        IndicatorType::DomainName => 6,
        IndicatorType::Url => 7,
    }
}

/// The fixed-size keys of accepted IPs and hashes, one table per kind (see the module docs).
#[derive(Debug, Default)]
struct Fixed {
    v4: HashTable<u32>,
    v6: HashTable<u128>,
    md5: HashTable<[u8; 16]>,
    sha1: HashTable<[u8; 20]>,
    sha256: HashTable<[u8; 32]>,
    thumbprint: HashTable<[u8; 20]>,
}

impl Fixed {
    /// Inserts the fixed-size key of `value` (of type `kind`); `None` when the value has no such
    /// key (not a normalised IP or lower-case hex hash of the kind's length), else whether it is new.
    fn insert(
        &mut self,
        hasher: &foldhash::fast::RandomState,
        kind: IndicatorType,
        value: &str,
    ) -> Option<bool> {
        let b = value.as_bytes();
        match kind {
            IndicatorType::IpAddress => {
                if let Some(v4) = crate::normalize::parse_v4(b) {
                    return Some(insert_key(&mut self.v4, hasher, u32::from(v4)));
                }
                let v6 = Ipv6Addr::from_str(value).ok()?;
                Some(insert_key(&mut self.v6, hasher, u128::from(v6)))
            }
            IndicatorType::FileMd5 => Some(insert_key(&mut self.md5, hasher, hex_key(b)?)),
            IndicatorType::FileSha1 => Some(insert_key(&mut self.sha1, hasher, hex_key(b)?)),
            IndicatorType::FileSha256 => Some(insert_key(&mut self.sha256, hasher, hex_key(b)?)),
            IndicatorType::CertificateThumbprint => {
                Some(insert_key(&mut self.thumbprint, hasher, hex_key(b)?))
            }
            IndicatorType::DomainName | IndicatorType::Url => None,
        }
    }

    /// Number of keys held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.v4.len()
            + self.v6.len()
            + self.md5.len()
            + self.sha1.len()
            + self.sha256.len()
            + self.thumbprint.len()
    }

    /// Bytes of the keys held, counted as the arena would hold them (one tag byte, then the key).
    #[cfg(test)]
    fn key_bytes(&self) -> usize {
        5 * self.v4.len()
            + 17 * (self.v6.len() + self.md5.len())
            + 21 * (self.sha1.len() + self.thumbprint.len())
            + 33 * self.sha256.len()
    }
}

/// Inserts `key` into `table`; true when it was not there.
fn insert_key<K: Hash + Eq + Copy>(
    table: &mut HashTable<K>,
    hasher: &foldhash::fast::RandomState,
    key: K,
) -> bool {
    let hash = hasher.hash_one(key);
    match table.entry(hash, |k| *k == key, |k| hasher.hash_one(*k)) {
        Entry::Occupied(_) => false,
        Entry::Vacant(v) => {
            v.insert(key);
            true
        }
    }
}

/// The bytes of exactly `2 * N` lower-case hex digits (the normalised form of a hash).
fn hex_key<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, p) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = (lower_hex(p[0])? << 4) | lower_hex(p[1])?;
    }
    Some(out)
}

/// The value of one lower-case hex digit.
fn lower_hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// A compact set of (tag, value) keys with one flag per arena key.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// Accepted IPs and hashes under their own kind's tag.
    fixed: Fixed,
    arena: Vec<u8>,
    /// End offset in `arena` of each entry's key.
    ends: Vec<usize>,
    /// Per entry: a URL seen spelled as its canonical form.
    flags: Vec<bool>,
    table: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    /// Scratch buffer for the key being looked up.
    key: Vec<u8>,
}

impl Seen {
    /// Inserts the key of `value` under `tag`; returns its entry number ([`FIXED`] for a key held
    /// in a fixed-size table) and whether it is new.
    pub(crate) fn insert(&mut self, tag: u8, kind: Option<IndicatorType>, value: &str) -> (usize, bool) {
        if let Some(k) = kind
            && tag == kind_tag(k)
            && let Some(new) = self.fixed.insert(&self.hasher, k, value)
        {
            return (FIXED, new);
        }
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        encode(tag, kind, value, &mut key);
        let hash = self.hasher.hash_one(key.as_slice());
        let (arena, ends, hasher) = (&self.arena, &self.ends, &self.hasher);
        let span = |i: u32| {
            let i = i as usize;
            let start = if i == 0 { 0 } else { ends[i - 1] };
            &arena[start..ends[i]]
        };
        // One probe: the entry is found, or the slot for it is reserved.
        let entry = self.table.entry(hash, |&i| span(i) == key.as_slice(), |&i| hasher.hash_one(span(i)));
        let found = match entry {
            Entry::Occupied(o) => Some(*o.get() as usize),
            Entry::Vacant(v) => {
                // More than 4 billion distinct values cannot come from one capped document;
                // saturate rather than wrap if it ever did (a wrong count, never a panic).
                v.insert(u32::try_from(self.ends.len()).unwrap_or(u32::MAX));
                None
            }
        };
        let result = match found {
            Some(i) => (i, false),
            None => {
                self.arena.extend_from_slice(&key);
                self.ends.push(self.arena.len());
                self.flags.push(false);
                (self.ends.len() - 1, true)
            }
        };
        self.key = key;
        result
    }

    /// [`Seen::insert`] of an accepted IPv4 address (under its kind's tag), already parsed;
    /// true when it is new.
    pub(crate) fn insert_v4(&mut self, ip: std::net::Ipv4Addr) -> bool {
        insert_key(&mut self.fixed.v4, &self.hasher, u32::from(ip))
    }

    /// Sets entry `i`'s flag; true when it was not set before.
    pub(crate) fn mark(&mut self, i: usize) -> bool {
        match self.flags.get_mut(i) {
            Some(f) => !std::mem::replace(f, true),
            None => false,
        }
    }

    /// Number of distinct keys.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ends.len() + self.fixed.len()
    }

    /// Bytes of the keys held, the fixed-size ones counted as the arena would hold them (a tag
    /// byte, then the key): for tests of the compact form.
    #[cfg(test)]
    pub(crate) fn arena_len(&self) -> usize {
        self.arena.len() + self.fixed.key_bytes()
    }
}

/// Appends the compact key of `value` (of type `kind`, if any) under `tag` to `out`.
fn encode(tag: u8, kind: Option<IndicatorType>, value: &str, out: &mut Vec<u8>) {
    match kind {
        Some(IndicatorType::IpAddress) => {
            if let Some(v4) = crate::normalize::parse_v4(value.as_bytes()) {
                out.push(tag);
                out.extend_from_slice(&v4.octets());
                return;
            }
            if let Ok(v6) = Ipv6Addr::from_str(value) {
                out.push(tag);
                out.extend_from_slice(&v6.octets());
                return;
            }
        }
        Some(k) if k.is_file_hash() || k == IndicatorType::CertificateThumbprint => {
            let b = value.as_bytes();
            if b.len().is_multiple_of(2) && b.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
            {
                out.push(tag);
                out.extend(b.chunks_exact(2).map(|p| (nibble(p[0]) << 4) | nibble(p[1])));
                return;
            }
        }
        _ => {
            out.push(tag);
            out.extend_from_slice(value.as_bytes());
            return;
        }
    }
    out.push(tag | RAW);
    out.extend_from_slice(value.as_bytes());
}

/// The value of one lower-case hex digit (checked by the caller).
fn nibble(c: u8) -> u8 {
    if c.is_ascii_digit() { c - b'0' } else { c - b'a' + 10 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Option<IndicatorType> = Some(IndicatorType::IpAddress);
    const SHA: Option<IndicatorType> = Some(IndicatorType::FileSha256);

    #[test]
    fn finds_what_it_holds_and_only_that() {
        let mut s = Seen::default();
        assert_eq!(s.insert(1, IP, "8.8.8.8"), (0, true));
        assert_eq!(s.insert(1, IP, "8.8.4.4"), (1, true));
        assert_eq!(s.insert(1, IP, "8.8.8.8"), (0, false));
        // Same text, other tag: another key.
        assert_eq!(s.insert(2, None, "8.8.8.8"), (2, true));
        assert_eq!(s.insert(1, IP, "2606:4700:0:0:0:0:0:1111"), (3, true));
        assert_eq!(s.insert(1, IP, "2606:4700::1111"), (3, false), "one address, one key");
        assert_eq!(s.len(), 4);
        for i in 0..10_000u32 {
            let (_, new) = s.insert(6, None, &format!("d{i}.example.com"));
            assert!(new);
        }
        for i in 0..10_000u32 {
            assert!(!s.insert(6, None, &format!("d{i}.example.com")).1);
        }
        assert_eq!(s.len(), 10_004);
    }

    #[test]
    fn keys_are_compact() {
        let mut s = Seen::default();
        s.insert(1, IP, "203.0.113.200");
        assert_eq!(s.arena_len(), 1 + 4, "IPv4 as 4 bytes");
        s.insert(2, SHA, &"ab".repeat(32));
        assert_eq!(s.arena_len(), 5 + 1 + 32, "SHA-256 as 32 bytes");
        // Not a normalised hash (upper case): kept as text under the RAW tag, never confused.
        let (_, new) = s.insert(2, SHA, &"AB".repeat(32));
        assert!(new);
        assert_eq!(s.arena_len(), 38 + 1 + 64);
    }

    #[test]
    fn flags_are_per_entry() {
        let mut s = Seen::default();
        let (a, _) = s.insert(6, None, "http://a.com/");
        let (b, _) = s.insert(6, None, "http://b.com/");
        assert!(s.mark(a));
        assert!(!s.mark(a));
        assert!(s.mark(b));
        assert!(!s.mark(99), "an unknown entry is never reported as new");
    }
}
