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

use super::{Collector, LineOut, ParseOptions, Parsed, Sink, Step, Steps, Tally, strip_bom};
use std::io::BufRead;

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

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads `reader` line by line with the same rules as [`lines`] (BOM dropped, `\n` or `\r\n`
/// ends a line, no phantom line after a final newline, non-UTF-8 line is `Err(bytes)`) and hands
/// each line to `f`; returns the number of lines. Holds at most one line beyond the reader's
/// buffer: a line inside the buffer is handed over in place, only a line that straddles two
/// reads is copied.
pub(crate) fn for_each_line<R: BufRead>(
    reader: R,
    f: impl FnMut(u64, Result<&str, &[u8]>),
) -> std::io::Result<u64> {
    for_each_line_from(reader, 0, f)
}

/// [`for_each_line`] for a part of a document that starts after line `start` (numbers continue
/// from there; only the part starting the document, `start == 0`, drops a BOM). Returns the
/// number of the last line.
fn for_each_line_from<R: BufRead>(
    mut reader: R,
    start: u64,
    mut f: impl FnMut(u64, Result<&str, &[u8]>),
) -> std::io::Result<u64> {
    let mut n = start;
    let mut carry: Vec<u8> = Vec::new();
    // One line: the BOM dropped from the first, a final `\r` from every one.
    fn emit(f: &mut impl FnMut(u64, Result<&str, &[u8]>), n: u64, raw: &[u8]) {
        let raw = if n == 1 { raw.strip_prefix(BOM).unwrap_or(raw) } else { raw };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        f(n, std::str::from_utf8(raw).map_err(|_| raw));
    }
    loop {
        let buf = super::fill(&mut reader)?;
        if buf.is_empty() {
            // A last line without a newline; a document that is only a BOM has no line.
            let only_bom = n == 0 && start == 0 && carry == BOM;
            if !carry.is_empty() && !only_bom {
                n += 1;
                emit(&mut f, n, &carry);
            }
            return Ok(n);
        }
        let mut used = 0;
        // The line that straddled the previous read ends in this one.
        if !carry.is_empty()
            && let Some(i) = memchr::memchr(b'\n', buf)
        {
            n += 1;
            carry.extend_from_slice(&buf[..i]);
            emit(&mut f, n, &carry);
            carry.clear();
            used = i + 1;
        }
        // The whole lines held in the buffer: checked as UTF-8 once (a line ends at a `\n`, which
        // is never inside a multi-byte character, so each line of valid text is valid text),
        // line by line only when that fails.
        if carry.is_empty()
            && let Some(last) = memchr::memrchr(b'\n', &buf[used..])
        {
            let whole = &buf[used..used + last];
            if let Ok(text) = std::str::from_utf8(whole) {
                let mut start = 0;
                for end in memchr::memchr_iter(b'\n', whole).chain(std::iter::once(whole.len())) {
                    n += 1;
                    let line = &text[start..end];
                    let line = if n == 1 { line.strip_prefix('\u{feff}').unwrap_or(line) } else { line };
                    f(n, Ok(line.strip_suffix('\r').unwrap_or(line)));
                    start = end + 1;
                }
            } else {
                for raw in whole.split(|&b| b == b'\n') {
                    n += 1;
                    emit(&mut f, n, raw);
                }
            }
            used += last + 1;
        }
        carry.extend_from_slice(&buf[used..]);
        let len = buf.len();
        reader.consume(len);
    }
}

/// Drop a whole-line comment, or a trailing one that follows whitespace; returns the trimmed rest.
pub(crate) fn strip_comment(line: &str) -> &str {
    let t = line.trim();
    if is_comment_start(t) {
        return "";
    }
    // A comment starts at a `#`, `;` or `/` (all ASCII, so at a character boundary) that
    // follows whitespace: only those bytes are looked at.
    for i in memchr::memchr3_iter(b'#', b';', b'/', t.as_bytes()) {
        if i > 0 && is_comment_start(&t[i..]) && t[..i].chars().next_back().is_some_and(char::is_whitespace) {
            return t[..i].trim_end();
        }
    }
    t
}

fn is_comment_start(s: &str) -> bool {
    s.starts_with('#') || s.starts_with(';') || s.starts_with("//")
}

/// Whether a field is a URL (keeps its commas and semicolons).
fn looks_like_url(field: &str) -> bool {
    // Each form holds a `:` (`[://]` holds `://`), and most fields none.
    memchr::memchr(b':', field.as_bytes()).is_some() && (field.contains("://") || field.contains("[:]//"))
}

/// The first whitespace-separated field of `t` (`t.split_whitespace().next()`, or `""`).
fn first_field(t: &str) -> &str {
    let b = t.as_bytes();
    // ASCII up to the first ASCII whitespace, not starting with it: that is the field. Anything
    // else (non-ASCII, which may be Unicode whitespace; leading whitespace) takes `split_whitespace`.
    match b.iter().position(|&c| c >= 0x80 || matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')) {
        None => t,
        Some(i) if i > 0 && b[i] < 0x80 => &t[..i],
        Some(_) => t.split_whitespace().next().unwrap_or(""),
    }
}

/// The value of one (comment-free) text line.
pub(crate) fn line_value(t: &str) -> &str {
    let field = first_field(t);
    let field = if looks_like_url(field) {
        field
    } else {
        memchr::memchr2(b',', b';', field.as_bytes()).map_or(field, |i| &field[..i])
    };
    field.trim_matches(|c| c == '"' || c == '\'' || c == '`')
}

/// A table row: back-ticked cells are values (rejected when invalid: the author marked them as
/// literals); in a row without back-ticks, cells that normalise are taken and the rest (headers,
/// `|---|` rules, prose) is ignored.
fn table_row<O: LineOut>(row: &str, line: u64, out: &mut O) {
    if row.contains('`') {
        for cell in row.split('`').skip(1).step_by(2) {
            if !cell.trim().is_empty() {
                out.value(cell, None, line);
            }
        }
        return;
    }
    for cell in row.split('|').map(str::trim).filter(|c| !c.is_empty()) {
        if let Ok((kind, value)) = crate::normalize::normalize(cell, out.hint(), out.refang()) {
            out.accept(crate::Ioc::new(kind, value, line));
        }
    }
}

/// Parse a text list. Never fails.
pub fn parse(input: &[u8], opts: &ParseOptions) -> Parsed {
    let mut out = Collector::new(opts);
    // Reading a slice cannot fail.
    let lines = for_each_line(input, |n, line| text_line(n, line, &mut out)).unwrap_or_default();
    out.finish(lines)
}

/// Parse a text list read line by line from `reader` into `sink`; only a read error fails.
pub fn parse_reader<R: BufRead, S: Sink + ?Sized>(
    reader: R,
    opts: &ParseOptions,
    sink: &mut S,
) -> std::io::Result<Tally> {
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => n,
    };
    if threads > 1 {
        return parse_parallel(reader, opts, sink, threads);
    }
    let mut out = Collector::with_sink(opts, sink);
    let lines = for_each_line(reader, |n, line| text_line(n, line, &mut out))?;
    Ok(out.finish_tally(lines).1)
}

/// A parallel parse reads the body in chunks of about this many bytes (whole lines).
const CHUNK: usize = 256 * 1024;

/// Chunks handed out and not yet applied, at most: bounds the memory a parallel parse adds.
const IN_FLIGHT: u64 = 4;

/// Reads whole lines into a chunk of about [`CHUNK`] bytes, starting with `rest` (the partial
/// line the previous chunk ended with); returns the chunk, the new rest, and whether the end
/// was reached (then the chunk holds everything left and the rest is empty).
fn read_chunk<R: BufRead>(reader: &mut R, rest: Vec<u8>) -> std::io::Result<(Vec<u8>, Vec<u8>, bool)> {
    let mut chunk = rest;
    loop {
        let buf = super::fill(reader)?;
        if buf.is_empty() {
            return Ok((chunk, Vec::new(), true));
        }
        chunk.extend_from_slice(buf);
        let len = buf.len();
        reader.consume(len);
        if chunk.len() >= CHUNK
            && let Some(i) = memchr::memrchr(b'\n', &chunk)
        {
            let rest = chunk[i + 1..].to_vec();
            chunk.truncate(i + 1);
            return Ok((chunk, rest, false));
        }
    }
}

/// Parse a text body on `threads` worker threads: this thread reads chunks of whole lines and
/// hands them out; the workers split and normalise their lines into [`Step`]s; this thread
/// applies the steps chunk by chunk in document order, so duplicates, line numbers and the
/// order of values are exactly those of the sequential parse. A body of one chunk is parsed
/// here, without threads.
fn parse_parallel<R: BufRead, S: Sink + ?Sized>(
    mut reader: R,
    opts: &ParseOptions,
    sink: &mut S,
    threads: usize,
) -> std::io::Result<Tally> {
    use std::sync::{Mutex, mpsc};
    let mut out = Collector::with_sink(opts, sink);
    let (first, rest, eof) = read_chunk(&mut reader, Vec::new())?;
    if eof {
        let lines = for_each_line(first.as_slice(), |n, line| text_line(n, line, &mut out))?;
        return Ok(out.finish_tally(lines).1);
    }
    let (work_tx, work_rx) = mpsc::channel::<(u64, u64, Vec<u8>)>();
    let work_rx = Mutex::new(work_rx);
    let (done_tx, done_rx) = mpsc::channel::<(u64, Vec<Step>, u64)>();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (done_tx, work_rx) = (done_tx.clone(), &work_rx);
            scope.spawn(move || {
                loop {
                    let job = match work_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((seq, start, chunk)) = job else { return };
                    let mut steps = Steps::new(opts);
                    let last =
                        for_each_line_from(chunk.as_slice(), start, |n, line| text_line(n, line, &mut steps))
                            .unwrap_or(start);
                    if done_tx.send((seq, steps.steps, last - start)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut ready = std::collections::BTreeMap::new();
        let (mut sent, mut applied, mut start, mut lines) = (0u64, 0u64, 0u64, 0u64);
        // Waits for one result and applies every result that is next in document order.
        let mut apply_next = |applied: &mut u64, lines: &mut u64| -> std::io::Result<()> {
            let (seq, steps, n) =
                done_rx.recv().map_err(|_| std::io::Error::other("a parser thread stopped"))?;
            ready.insert(seq, (steps, n));
            while let Some((steps, n)) = ready.remove(applied) {
                steps.into_iter().for_each(|s| out.apply(s));
                *lines += n;
                *applied += 1;
            }
            Ok(())
        };
        let (mut chunk, mut rest, mut eof) = (first, rest, false);
        let result = loop {
            let newlines = memchr::memchr_iter(b'\n', &chunk).count() as u64;
            if !chunk.is_empty() {
                if work_tx.send((sent, start, chunk)).is_err() {
                    break Err(std::io::Error::other("a parser thread stopped"));
                }
                sent += 1;
            }
            start += newlines;
            if eof {
                break Ok(());
            }
            while sent - applied >= IN_FLIGHT {
                apply_next(&mut applied, &mut lines)?;
            }
            match read_chunk(&mut reader, std::mem::take(&mut rest)) {
                Ok((c, r, e)) => (chunk, rest, eof) = (c, r, e),
                Err(e) => break Err(e),
            }
        };
        // Closing the queue stops the workers once it is empty (also on an error).
        drop(work_tx);
        result?;
        while applied < sent {
            apply_next(&mut applied, &mut lines)?;
        }
        Ok(out.finish_tally(lines).1)
    })
}

/// A non-empty run of printable ASCII with no whitespace and none of the bytes the line rules
/// act on (comment starts, field separators, quotes, table rules, `/`): its own value.
#[cfg(test)]
fn is_plain_token(t: &str) -> bool {
    !t.is_empty() && plain_prefix(t).is_none()
}

/// Where the first byte of `t` that cannot be part of a plain token is (`None`: nowhere, so a
/// non-empty `t` is a plain token; see [`is_plain_token`]).
fn plain_prefix(t: &str) -> Option<usize> {
    t.bytes().position(|b| !PLAIN[usize::from(b)])
}

/// The bytes of a plain token (see [`is_plain_token`]), as a table: one lookup a byte.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x21;
    while b < 0x7f {
        table[b] = !matches!(b as u8, b'#' | b';' | b',' | b'"' | b'\'' | b'`' | b'|' | b'/');
        b += 1;
    }
    table
};

/// One line of a text list.
fn text_line<O: LineOut>(n: u64, line: Result<&str, &[u8]>, out: &mut O) {
    let line = match line {
        Ok(l) => l,
        Err(bytes) => {
            let lossy = String::from_utf8_lossy(bytes);
            out.reject(crate::Reason::InvalidValue, &lossy, n, Some("line is not valid UTF-8".into()));
            return;
        }
    };
    let trimmed = line.trim();
    // Fast path: a line that is one plain ASCII token (an address, a host, a hash) is its own
    // value: no comment, field, quote or table rule can apply to it.
    // Same for a plain token followed by a space or tab (`IP<TAB>score`, `HASH  name`): the value
    // is the first field whatever follows, and a comment can only start after whitespace.
    // One scan finds both: the first byte that is not part of a plain token.
    match plain_prefix(trimmed) {
        None if !trimmed.is_empty() => {
            out.value(trimmed, None, n);
            return;
        }
        Some(i) if i > 0 && matches!(trimmed.as_bytes()[i], b' ' | b'\t') => {
            out.value(&trimmed[..i], None, n);
            return;
        }
        _ => {}
    }
    if trimmed.starts_with('|') {
        table_row(trimmed, n, out);
        return;
    }
    let t = strip_comment(trimmed);
    if t.is_empty() {
        return;
    }
    let value = line_value(t);
    if value.is_empty() {
        out.reject(crate::Reason::InvalidValue, t, n, Some("no value on the line".into()));
        return;
    }
    out.value(value, None, n);
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
    fn a_plain_token_is_what_the_line_rules_make_of_it() {
        for l in [
            "8.8.8.8",
            "evil.com",
            "d41d8cd98f00b204e9800998ecf8427e",
            "1.2.3.4:80",
            "[::1]",
            "a.b-c_d",
            "x",
            "1.2.3.4,5",
            "a;b",
            "#x",
            "a#b",
            "//x",
            "a/b",
            "\"q\"",
            "'q'",
            "`q`",
            "|a|",
            "a b",
            "a\tb",
            "é.com",
            "a\u{a0}b",
            "http://x.com/a,b",
            "1.2.3.4\t8",
            "1.2.3.4 # c",
            "h ;c",
            "a\u{a0}b c",
            "x\u{2003}y z",
            "1.2.3.4,5 x",
            "a b\tc",
        ] {
            let general = line_value(strip_comment(l.trim()));
            if is_plain_token(l) {
                assert_eq!(general, l, "{l:?}");
            }
            if let Some(i) = l.find([' ', '\t'])
                && is_plain_token(&l[..i])
            {
                assert_eq!(general, &l[..i], "{l:?}");
            }
        }
        assert!(is_plain_token("8.8.8.8") && is_plain_token("evil.com"));
        assert!(!is_plain_token("a\u{a0}b"), "non-ASCII (Unicode whitespace) takes the general path");
        for b in 0..=255u8 {
            let want = b > b' ' && b < 0x7f && !b"#;,\"'`|/".contains(&b);
            assert_eq!(PLAIN[usize::from(b)], want, "byte {b:#x}");
        }
    }

    /// `for_each_line` over a reader that hands out `chunk` bytes at a time.
    fn streamed(input: &[u8], chunk: usize) -> Vec<(u64, Result<String, Vec<u8>>)> {
        let reader = std::io::BufReader::with_capacity(chunk, input);
        let mut v = Vec::new();
        let n =
            for_each_line(reader, |n, l| v.push((n, l.map(str::to_owned).map_err(<[u8]>::to_vec)))).unwrap();
        assert_eq!(n, v.len() as u64);
        v
    }

    #[test]
    fn streamed_lines_match_the_slice_lines_at_every_buffer_size() {
        let docs: [&[u8]; 9] = [
            b"a\r\nb\n\nc",
            b"a\n",
            b"",
            b"\n",
            b"\xEF\xBB\xBF",
            b"\xEF\xBB\xBF\n",
            b"\xEF\xBB\xBFa\nb\r\n",
            b"ok\n\xff\xfe bad\r\nlast line without newline",
            b"long line 0123456789 0123456789\r\n\r\n\r\nx",
        ];
        for doc in docs {
            let want: Vec<_> =
                lines(doc).map(|(n, l)| (n, l.map(str::to_owned).map_err(<[u8]>::to_vec))).collect();
            for chunk in [1, 2, 3, 5, 8, 64, 8192] {
                assert_eq!(streamed(doc, chunk), want, "{doc:?} read {chunk} bytes at a time");
            }
        }
    }

    #[test]
    fn reader_parse_equals_slice_parse() {
        let doc =
            b"8.8.8.8\n10.0.0.1\nevil.com\nevil.com\nhttp://x.com/a^b\nhttp://x.com/a%5eb\n| `1.1.1.1` |\n";
        let opts = ParseOptions::new(super::super::Format::Text, chrono::Utc::now());
        let whole = parse(doc, &opts);
        let mut streamed = Parsed::default();
        let tally =
            parse_reader(std::io::BufReader::with_capacity(4, &doc[..]), &opts, &mut streamed).unwrap();
        streamed.lines = tally.lines;
        streamed.duplicates = tally.duplicates;
        streamed.canonical_merges = tally.canonical_merges;
        assert_eq!(streamed, whole);
        assert_eq!((whole.lines, whole.iocs.len(), whole.duplicates, whole.canonical_merges), (7, 4, 2, 1));
    }

    #[test]
    fn first_field_is_the_first_whitespace_separated_field() {
        for t in [
            "",
            " ",
            "a",
            "a b",
            " a b",
            "a\tb",
            "a\u{0b}b",
            "a\u{0c}b",
            "a\rb",
            "a\nb",
            "a\u{a0}b c",
            "\u{a0}a b",
            "é b",
            "aé\u{2003}b",
            "1.2.3.4\t8",
            "http://x.com/a b",
            "\u{2003}",
            "x\u{85}y z",
        ] {
            assert_eq!(first_field(t), t.split_whitespace().next().unwrap_or(""), "{t:?}");
        }
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
