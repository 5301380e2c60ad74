//! Refanging: undo the defanging conventions threat reports use (`hxxp`, `[.]`, ...).
//!
//! Reports "defang" indicators so nobody clicks them: `hxxps://evil[.]com`. Refanging turns
//! them back into values Defender can match. Replacements (ASCII case-insensitive):
//!
//! | defanged | refanged |
//! |---|---|
//! | `hxxp`, `hXXps` (scheme position only) | `http`, `https` |
//! | `[.]`, `(.)`, `{.}`, `[dot]`, `(dot)`, `{dot}` | `.` |
//! | `[:]` | `:` |
//! | `[://]` | `://` |
//!
//! `hxxp` is only rewritten where a scheme can start (start of text or after a non-alphanumeric
//! character) and where it is followed by `:`, `s:` or a bracketed colon, so a path segment named
//! `hxxp` stays untouched.

use std::borrow::Cow;

/// Bracketed defangs and what they stand for (patterns are lower-case ASCII).
const BRACKETS: [(&[u8], &[u8]); 8] = [
    (b"[://]", b"://"),
    (b"[dot]", b"."),
    (b"(dot)", b"."),
    (b"{dot}", b"."),
    (b"[.]", b"."),
    (b"(.)", b"."),
    (b"{.}", b"."),
    (b"[:]", b":"),
];

/// Undo defanging in `s`; borrows when nothing changes (the common case on clean feeds).
pub fn refang(s: &str) -> Cow<'_, str> {
    let bytes = s.as_bytes();
    // Every defang holds a bracket or `xx` (`hxxp`): most values hold neither and are borrowed.
    let maybe = memchr::memchr3(b'[', b'(', b'{', bytes).is_some()
        || memchr::memchr2_iter(b'x', b'X', bytes).any(|i| matches!(bytes.get(i + 1), Some(b'x' | b'X')));
    if !maybe {
        return Cow::Borrowed(s);
    }
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut changed = false;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if let Some((pat, rep)) = BRACKETS
            .iter()
            .find(|(pat, _)| rest.len() >= pat.len() && rest[..pat.len()].eq_ignore_ascii_case(pat))
        {
            out.extend_from_slice(rep);
            i += pat.len();
            changed = true;
            continue;
        }
        if (rest[0] == b'h' || rest[0] == b'H') && is_hxxp_scheme(bytes, i) {
            out.extend_from_slice(b"http");
            i += 4;
            if bytes.get(i).is_some_and(|b| b.eq_ignore_ascii_case(&b's')) {
                out.push(b's');
                i += 1;
            }
            changed = true;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    if !changed {
        return Cow::Borrowed(s);
    }
    // Only ASCII sequences were replaced by ASCII, so UTF-8 validity is preserved.
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(_) => Cow::Borrowed(s),
    }
}

/// Whether `bytes[i..]` starts a defanged `hxxp` scheme at a scheme position.
fn is_hxxp_scheme(bytes: &[u8], i: usize) -> bool {
    let rest = &bytes[i..];
    if rest.len() < 5 || !rest[..4].eq_ignore_ascii_case(b"hxxp") {
        return false;
    }
    if i > 0 && bytes[i - 1].is_ascii_alphanumeric() {
        return false;
    }
    let after = if rest[4] == b's' || rest[4] == b'S' { &rest[5..] } else { &rest[4..] };
    after.first() == Some(&b':') || after.starts_with(b"[:") || after.starts_with(b"[://]")
}

#[cfg(test)]
mod tests {
    use super::refang;

    #[test]
    fn refangs_common_forms() {
        assert_eq!(refang("hxxps://evil[.]com/a?b=c"), "https://evil.com/a?b=c");
        assert_eq!(refang("hXXp[://]evil(.)com"), "http://evil.com");
        assert_eq!(refang("HXXPS[:]//a{.}b[dot]c"), "https://a.b.c");
        assert_eq!(refang("5.39.222[.]150"), "5.39.222.150");
        assert_eq!(refang("http://a.com/hxxp/x"), "http://a.com/hxxp/x");
        assert_eq!(refang("xhxxp://a"), "xhxxp://a");
    }

    #[test]
    fn borrows_when_clean() {
        assert!(matches!(refang("example.com"), std::borrow::Cow::Borrowed(_)));
        assert!(matches!(refang("box.example"), std::borrow::Cow::Borrowed(_)));
        assert!(matches!(refang("http://xx.example/x"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn keeps_non_ascii() {
        assert_eq!(refang("bücher[.]de"), "bücher.de");
    }
}
