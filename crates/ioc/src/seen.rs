//! The set of values one feed has accepted so far, kept compactly: it is what bounds a streamed
//! parse's memory, so it holds each distinct value once, in one byte arena, in a compact key form.
//!
//! Key form: one tag byte (the indicator type, or [`SPELLING`]), then the value: an IPv4 address
//! as its 4 bytes and an IPv6 address as its 16, a hash as its raw bytes (half its hex length),
//! anything else as its UTF-8 bytes. The table holds only `u32` entry numbers; an entry's key is
//! `arena[ends[i - 1]..ends[i]]`. One flag per entry records that a URL was seen spelled exactly
//! as its canonical form, so the common case costs no second copy (see `Collector`).

use crate::IndicatorType;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use std::hash::BuildHasher;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// Tag of a URL spelling (a feed's own spelling that differs from its canonical form).
pub(crate) const SPELLING: u8 = 0x40;

/// Tag bit of a value stored as text although its type has a compact form (never expected: a
/// normalised IP or hash always has one; kept so two key forms can never collide).
const RAW: u8 = 0x80;

/// A compact set of (tag, value) keys with one flag per key.
#[derive(Debug, Default)]
pub(crate) struct Seen {
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
    /// Inserts the key of `value` under `tag`; returns its entry number and whether it is new.
    pub(crate) fn insert(&mut self, tag: u8, kind: Option<IndicatorType>, value: &str) -> (usize, bool) {
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
        self.ends.len()
    }

    /// Bytes held by the key arena (for tests of the compact form).
    #[cfg(test)]
    pub(crate) fn arena_len(&self) -> usize {
        self.arena.len()
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
