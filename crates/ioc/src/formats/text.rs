//! `text`: one value per line.
//!
//! Rules: `#`, `;` and `//` start a comment (whole line, or trailing after whitespace); the value
//! is the first whitespace-separated field, cut at the first `,` or `;` unless it is a URL (so
//! `HASH;comment` and `IP,score` work and URLs keep their commas); surrounding quotes or backticks
//! are dropped. CRLF, a UTF-8 BOM, a missing final newline, blank and whitespace-only lines are
//! tolerated; a line that is not UTF-8 is rejected `invalid-value`.
//!
//! Table rows (lines starting with `|`, as in AsciiDoc/Markdown IoC appendices) yield their
//! back-ticked cells when they have any (the other cells are prose: file names, dates, detection
//! names); a row without back-ticks yields the cells that are valid values and ignores the rest
//! (headers, `|---|` and `|===` rules, prose). Prose lines outside tables are treated like any
//! line, so they usually end up rejected `invalid-value`.

use super::{Collector, ParseOptions, Parsed, strip_bom};

/// Iterate the lines of `input` with their 1-based numbers: BOM dropped, `\n` or `\r\n` ends a
/// line, no phantom empty line after a final newline; a non-UTF-8 line is `Err(bytes)`.
pub(crate) fn lines(input: &[u8]) -> impl Iterator<Item = (u64, Result<&str, &[u8]>)> {
    let body = strip_bom(input);
    let empty = body.is_empty();
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    body.split(|&b| b == b'\n').enumerate().filter(move |_| !empty).map(|(i, raw)| {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        (i as u64 + 1, std::str::from_utf8(raw).map_err(|_| raw))
    })
}

/// Drop a whole-line comment, or a trailing one that follows whitespace; returns the trimmed rest.
pub(crate) fn strip_comment(line: &str) -> &str {
    let t = line.trim();
    if is_comment_start(t) {
        return "";
    }
    let mut prev_ws = false;
    for (i, c) in t.char_indices() {
        if prev_ws && is_comment_start(&t[i..]) {
            return t[..i].trim_end();
        }
        prev_ws = c.is_whitespace();
    }
    t
}

fn is_comment_start(s: &str) -> bool {
    s.starts_with('#') || s.starts_with(';') || s.starts_with("//")
}

/// Whether a field is a URL (keeps its commas and semicolons).
fn looks_like_url(field: &str) -> bool {
    field.contains("://") || field.contains("[://]") || field.contains("[:]//")
}

/// The value of one (comment-free) text line.
pub(crate) fn line_value(t: &str) -> &str {
    let field = t.split_whitespace().next().unwrap_or("");
    let field = if looks_like_url(field) { field } else { field.split([',', ';']).next().unwrap_or(field) };
    field.trim_matches(|c| c == '"' || c == '\'' || c == '`')
}

/// A table row: back-ticked cells are values (rejected when invalid: the author marked them as
/// literals); in a row without back-ticks, cells that normalise are taken and the rest (headers,
/// `|---|` rules, prose) is ignored.
fn table_row(row: &str, line: u64, out: &mut Collector) {
    if row.contains('`') {
        for cell in row.split('`').skip(1).step_by(2) {
            if !cell.trim().is_empty() {
                out.value(cell, None, line);
            }
        }
        return;
    }
    for cell in row.split('|').map(str::trim).filter(|c| !c.is_empty()) {
        if let Ok((kind, value)) = crate::normalize::normalize(cell, out.hint, out.refang) {
            out.accept(crate::Ioc::new(kind, value, line));
        }
    }
}

/// Parse a text list. Never fails.
pub fn parse(input: &[u8], opts: &ParseOptions) -> Parsed {
    let mut out = Collector::new(opts);
    let mut count = 0;
    for (n, line) in lines(input) {
        count = n;
        let line = match line {
            Ok(l) => l,
            Err(bytes) => {
                let lossy = String::from_utf8_lossy(bytes);
                out.reject(crate::Reason::InvalidValue, &lossy, n, Some("line is not valid UTF-8".into()));
                continue;
            }
        };
        let trimmed = line.trim();
        if trimmed.starts_with('|') {
            table_row(trimmed, n, &mut out);
            continue;
        }
        let t = strip_comment(trimmed);
        if t.is_empty() {
            continue;
        }
        let value = line_value(t);
        if value.is_empty() {
            out.reject(crate::Reason::InvalidValue, t, n, Some("no value on the line".into()));
            continue;
        }
        out.value(value, None, n);
    }
    out.finish(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_numbers_and_endings() {
        let v: Vec<_> = lines(b"a\r\nb\n\nc").map(|(n, l)| (n, l.unwrap())).collect();
        assert_eq!(v, vec![(1, "a"), (2, "b"), (3, ""), (4, "c")]);
        assert_eq!(lines(b"a\n").count(), 1);
        assert_eq!(lines(b"").count(), 0);
        assert_eq!(lines(b"\xEF\xBB\xBFa").next().unwrap().1.unwrap(), "a");
    }

    #[test]
    fn comments_and_fields() {
        assert_eq!(strip_comment("  # x"), "");
        assert_eq!(strip_comment("1.2.3.4 # c"), "1.2.3.4");
        assert_eq!(strip_comment("a.com ; c"), "a.com");
        assert_eq!(strip_comment("http://a.com/#x"), "http://a.com/#x");
        assert_eq!(line_value("abc;comment"), "abc");
        assert_eq!(line_value("1.2.3.4,5"), "1.2.3.4");
        assert_eq!(line_value("1.2.3.4\t5"), "1.2.3.4");
        assert_eq!(line_value("http://a.com/x,y;z"), "http://a.com/x,y;z");
    }
}
