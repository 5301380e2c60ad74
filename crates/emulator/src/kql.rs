//! A small Kusto (KQL) evaluator for the advanced-hunting subset a client needs for impact checks and
//! hit counts (spec §13.13): one table, `where` filters, `summarize … by …`, `project`, `take`.
//!
//! It is a real tokenizer, parser and evaluator over the seeded event table, not a lookup keyed on query
//! strings: any query in the subset works, and anything outside it gets the service's syntax error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

/// The advanced-hunting tables the emulator knows, with their columns (a subset of the real schema).
pub const TABLES: &[(&str, &[&str])] = &[
    (
        "DeviceNetworkEvents",
        &[
            "Timestamp",
            "DeviceId",
            "DeviceName",
            "ActionType",
            "RemoteIP",
            "RemotePort",
            "RemoteUrl",
            "LocalIP",
            "Protocol",
            "InitiatingProcessFileName",
            "InitiatingProcessSHA256",
        ],
    ),
    (
        "DeviceFileEvents",
        &[
            "Timestamp",
            "DeviceId",
            "DeviceName",
            "ActionType",
            "FileName",
            "FolderPath",
            "SHA1",
            "SHA256",
            "MD5",
        ],
    ),
    (
        "DeviceProcessEvents",
        &[
            "Timestamp",
            "DeviceId",
            "DeviceName",
            "ActionType",
            "FileName",
            "FolderPath",
            "ProcessCommandLine",
            "SHA1",
            "SHA256",
            "MD5",
        ],
    ),
    (
        "DeviceEvents",
        &[
            "Timestamp",
            "DeviceId",
            "DeviceName",
            "ActionType",
            "FileName",
            "FolderPath",
            "SHA1",
            "SHA256",
            "MD5",
            "RemoteIP",
            "RemoteUrl",
            "AdditionalFields",
        ],
    ),
    (
        "DeviceFileCertificateInfo",
        &[
            "Timestamp",
            "DeviceId",
            "DeviceName",
            "SHA1",
            "IsSigned",
            "Signer",
            "SignerHash",
            "Issuer",
            "IssuerHash",
            "CertificateSerialNumber",
        ],
    ),
];

/// Columns of `table`, if the emulator knows it.
pub fn columns_of(table: &str) -> Option<&'static [&'static str]> {
    TABLES.iter().find(|(t, _)| *t == table).map(|(_, c)| *c)
}

/// One row of a hunting table.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Table name (`DeviceNetworkEvents`, …).
    pub table: String,
    /// `Timestamp` column.
    pub timestamp: DateTime<Utc>,
    /// The other columns.
    pub columns: Map<String, Value>,
}

impl Event {
    fn get(&self, column: &str) -> Scalar {
        if column == "Timestamp" {
            return Scalar::Time(self.timestamp);
        }
        match self.columns.get(column) {
            None | Some(Value::Null) => Scalar::Null,
            Some(Value::String(s)) => Scalar::Str(s.clone()),
            Some(Value::Number(n)) => n.as_i64().map_or(Scalar::Null, Scalar::Int),
            Some(Value::Bool(b)) => Scalar::Str(b.to_string()),
            Some(other) => Scalar::Str(other.to_string()),
        }
    }
}

/// A query the service refused, with the service's wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// The message returned in the error envelope.
    pub message: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn syntax(at: &Tok, col: usize) -> QueryError {
    QueryError { message: format!("Query could not be parsed at '{}' on line [1,{col}]", at.text()) }
}

fn unresolved(name: &str) -> QueryError {
    QueryError { message: format!("Failed to resolve scalar expression named '{name}'") }
}

// ------------------------------------------------------------------ tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Span(Duration, String),
    Sym(&'static str),
    End,
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Ident(s) => s.clone(),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Int(i) => i.to_string(),
            Tok::Span(_, raw) => raw.clone(),
            Tok::Sym(s) => (*s).to_owned(),
            Tok::End => "<end>".to_owned(),
        }
    }
}

const SYMBOLS: &[&str] =
    &["!in~", "in~", "!in", "==", "=~", "!=", ">=", "<=", "|", "(", ")", ",", ">", "<", "="];

fn tokenize(q: &str) -> Result<Vec<(Tok, usize)>, QueryError> {
    let chars: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '"' || c == '\'' || (c == '@' && matches!(chars.get(i + 1), Some('"' | '\''))) {
            let verbatim = c == '@';
            if verbatim {
                i += 1;
            }
            let quote = chars[i];
            i += 1;
            let mut s = String::new();
            loop {
                let Some(&ch) = chars.get(i) else {
                    return Err(QueryError {
                        message: format!("Query could not be parsed at '{quote}' on line [1,{col}]"),
                    });
                };
                i += 1;
                if ch == quote {
                    if verbatim && chars.get(i) == Some(&quote) {
                        s.push(quote);
                        i += 1;
                        continue;
                    }
                    break;
                }
                if ch == '\n' || ch == '\r' {
                    // A regular or verbatim string literal cannot span lines.
                    return Err(QueryError {
                        message: format!("Query could not be parsed at '{quote}' on line [1,{col}]"),
                    });
                }
                if ch == '\\' && !verbatim {
                    let Some(&esc) = chars.get(i) else { continue };
                    i += 1;
                    s.push(match esc {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        other => other,
                    });
                    continue;
                }
                s.push(ch);
            }
            out.push((Tok::Str(s), col));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let n: i64 = chars[start..i].iter().collect::<String>().parse().map_err(|_| QueryError {
                message: format!("Query could not be parsed at a number on line [1,{col}]"),
            })?;
            let unit_start = i;
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            let unit: String = chars[unit_start..i].iter().collect();
            let raw: String = chars[start..i].iter().collect();
            let span = match unit.as_str() {
                "" => {
                    out.push((Tok::Int(n), col));
                    continue;
                }
                "d" => Duration::try_days(n),
                "h" => Duration::try_hours(n),
                "m" => Duration::try_minutes(n),
                "s" => Duration::try_seconds(n),
                _ => None,
            };
            let Some(span) = span else {
                return Err(QueryError {
                    message: format!("Query could not be parsed at '{raw}' on line [1,{col}]"),
                });
            };
            out.push((Tok::Span(span, raw), col));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if word == "datetime" && chars.get(i) == Some(&'(') {
                // `datetime(2026-11-30T10:00:00Z)`: the literal's text runs to the closing parenthesis.
                let Some(close) = chars[i..].iter().position(|c| *c == ')') else {
                    return Err(QueryError {
                        message: format!("Query could not be parsed at 'datetime' on line [1,{col}]"),
                    });
                };
                let raw: String = chars[i + 1..i + close].iter().collect();
                let raw = raw.trim().trim_matches(|c| c == '"' || c == '\'').to_owned();
                out.push((Tok::Ident(word), col));
                out.push((Tok::Sym("("), i + 1));
                out.push((Tok::Str(raw), i + 2));
                out.push((Tok::Sym(")"), i + close + 1));
                i += close + 1;
                continue;
            }
            if word == "in" && chars.get(i) == Some(&'~') {
                i += 1;
                out.push((Tok::Sym("in~"), col));
            } else {
                out.push((Tok::Ident(word), col));
            }
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 4)].iter().collect();
        let Some(sym) = SYMBOLS.iter().find(|s| rest.starts_with(*s)) else {
            return Err(QueryError {
                message: format!("Query could not be parsed at '{c}' on line [1,{col}]"),
            });
        };
        i += sym.chars().count();
        out.push((Tok::Sym(sym), col));
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

// ------------------------------------------------------------------ syntax tree

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Int(i64),
    Time(DateTime<Utc>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    In,
    InCi,
    NotIn,
    NotInCi,
    HasAny,
    Has,
    Contains,
    Eq,
    EqCi,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp { column: String, op: Op, values: Vec<Literal> },
}

#[derive(Debug, Clone, PartialEq)]
enum AggFn {
    Count,
    DCount(String),
    Max(String),
    Min(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Agg {
    name: String,
    func: AggFn,
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    Where(Expr),
    Summarize { aggs: Vec<Agg>, by: Vec<String> },
    Project(Vec<String>),
    Take(usize),
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    now: DateTime<Utc>,
}

impl Parser {
    /// The token at `pos`; past the end, the final `End` token.
    fn at(&self) -> &(Tok, usize) {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn peek(&self) -> &Tok {
        &self.at().0
    }

    fn err(&self) -> QueryError {
        let (t, col) = self.at();
        syntax(t, *col)
    }

    /// Returns the current token and moves on (always by one, so a caller can step back exactly).
    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }

    fn sym(&mut self, s: &str) -> Result<(), QueryError> {
        if matches!(self.peek(), Tok::Sym(x) if *x == s) {
            self.next();
            Ok(())
        } else {
            Err(self.err())
        }
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Tok::Sym(x) if *x == s)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Ident(x) if x == w)
    }

    fn ident(&mut self) -> Result<String, QueryError> {
        match self.peek().clone() {
            Tok::Ident(s) => {
                self.next();
                Ok(s)
            }
            _ => Err(self.err()),
        }
    }

    fn query(&mut self) -> Result<(String, Vec<Stage>), QueryError> {
        let table = self.ident()?;
        let mut stages = Vec::new();
        while self.is_sym("|") {
            self.next();
            let word = self.ident()?;
            stages.push(match word.as_str() {
                "where" => Stage::Where(self.or_expr()?),
                "summarize" => self.summarize()?,
                "project" => Stage::Project(self.ident_list()?),
                "take" | "limit" => match self.next() {
                    Tok::Int(n) if n >= 0 => Stage::Take(usize::try_from(n).unwrap_or(usize::MAX)),
                    _ => {
                        self.pos -= 1;
                        return Err(self.err());
                    }
                },
                _ => {
                    self.pos -= 1;
                    return Err(self.err());
                }
            });
        }
        if *self.peek() != Tok::End {
            return Err(self.err());
        }
        Ok((table, stages))
    }

    fn ident_list(&mut self) -> Result<Vec<String>, QueryError> {
        let mut v = vec![self.ident()?];
        while self.is_sym(",") {
            self.next();
            v.push(self.ident()?);
        }
        Ok(v)
    }

    fn or_expr(&mut self) -> Result<Expr, QueryError> {
        let mut e = self.and_expr()?;
        while self.is_word("or") {
            self.next();
            e = Expr::Or(Box::new(e), Box::new(self.and_expr()?));
        }
        Ok(e)
    }

    fn and_expr(&mut self) -> Result<Expr, QueryError> {
        let mut e = self.atom()?;
        while self.is_word("and") {
            self.next();
            e = Expr::And(Box::new(e), Box::new(self.atom()?));
        }
        Ok(e)
    }

    fn atom(&mut self) -> Result<Expr, QueryError> {
        if self.is_sym("(") {
            self.next();
            let e = self.or_expr()?;
            self.sym(")")?;
            return Ok(e);
        }
        let column = self.ident()?;
        let op = match self.next() {
            Tok::Sym("in~") => Op::InCi,
            Tok::Sym("!in") => Op::NotIn,
            Tok::Sym("!in~") => Op::NotInCi,
            Tok::Sym("==") => Op::Eq,
            Tok::Sym("=~") => Op::EqCi,
            Tok::Sym("!=") => Op::Ne,
            Tok::Sym(">") => Op::Gt,
            Tok::Sym(">=") => Op::Ge,
            Tok::Sym("<") => Op::Lt,
            Tok::Sym("<=") => Op::Le,
            Tok::Ident(w) if w == "in" => Op::In,
            Tok::Ident(w) if w == "has_any" => Op::HasAny,
            Tok::Ident(w) if w == "has" => Op::Has,
            Tok::Ident(w) if w == "contains" => Op::Contains,
            _ => {
                self.pos -= 1;
                return Err(self.err());
            }
        };
        let values = if matches!(op, Op::In | Op::InCi | Op::NotIn | Op::NotInCi | Op::HasAny) {
            self.sym("(")?;
            let mut v = vec![self.literal()?];
            while self.is_sym(",") {
                self.next();
                v.push(self.literal()?);
            }
            self.sym(")")?;
            v
        } else {
            vec![self.literal()?]
        };
        Ok(Expr::Cmp { column, op, values })
    }

    fn literal(&mut self) -> Result<Literal, QueryError> {
        match self.next() {
            Tok::Str(s) => Ok(Literal::Str(s)),
            Tok::Int(i) => Ok(Literal::Int(i)),
            Tok::Ident(w) if w == "ago" => {
                self.sym("(")?;
                let Tok::Span(span, _) = self.next() else {
                    self.pos -= 1;
                    return Err(self.err());
                };
                self.sym(")")?;
                Ok(Literal::Time(self.now - span))
            }
            Tok::Ident(w) if w == "now" => {
                self.sym("(")?;
                self.sym(")")?;
                Ok(Literal::Time(self.now))
            }
            Tok::Ident(w) if w == "datetime" => {
                self.sym("(")?;
                let Tok::Str(raw) = self.next() else {
                    self.pos -= 1;
                    return Err(self.err());
                };
                self.sym(")")?;
                DateTime::parse_from_rfc3339(&raw)
                    .map(|t| Literal::Time(t.with_timezone(&Utc)))
                    .map_err(|_| QueryError { message: format!("Invalid datetime literal '{raw}'") })
            }
            _ => {
                self.pos -= 1;
                Err(self.err())
            }
        }
    }

    fn summarize(&mut self) -> Result<Stage, QueryError> {
        let mut aggs = vec![self.agg()?];
        while self.is_sym(",") {
            self.next();
            aggs.push(self.agg()?);
        }
        let by = if self.is_word("by") {
            self.next();
            self.ident_list()?
        } else {
            Vec::new()
        };
        Ok(Stage::Summarize { aggs, by })
    }

    fn agg(&mut self) -> Result<Agg, QueryError> {
        let first = self.ident()?;
        let (name, func_name) = if self.is_sym("=") {
            self.next();
            (Some(first), self.ident()?)
        } else {
            (None, first)
        };
        self.sym("(")?;
        let func = match func_name.as_str() {
            "count" => AggFn::Count,
            "dcount" => AggFn::DCount(self.ident()?),
            "max" => AggFn::Max(self.ident()?),
            "min" => AggFn::Min(self.ident()?),
            _ => {
                self.pos -= 2;
                return Err(self.err());
            }
        };
        self.sym(")")?;
        let default_name = match &func {
            AggFn::Count => "count_".to_owned(),
            AggFn::DCount(c) => format!("dcount_{c}"),
            AggFn::Max(c) => format!("max_{c}"),
            AggFn::Min(c) => format!("min_{c}"),
        };
        Ok(Agg { name: name.unwrap_or(default_name), func })
    }
}

// ------------------------------------------------------------------ evaluation

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Scalar {
    Null,
    Int(i64),
    Str(String),
    Time(DateTime<Utc>),
}

impl Scalar {
    fn to_json(&self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Int(i) => Value::from(*i),
            Scalar::Str(s) => Value::from(s.clone()),
            Scalar::Time(t) => Value::from(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Scalar::Int(_) => "Int64",
            Scalar::Time(_) => "DateTime",
            Scalar::Null | Scalar::Str(_) => "String",
        }
    }
}

fn literal_scalar(l: &Literal) -> Scalar {
    match l {
        Literal::Str(s) => Scalar::Str(s.clone()),
        Literal::Int(i) => Scalar::Int(*i),
        Literal::Time(t) => Scalar::Time(*t),
    }
}

/// KQL `has`: `needle` occurs in `hay` as whole terms (case-insensitive; bounded by non-alphanumerics).
fn has_term(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let hay = hay.to_lowercase();
    let needle = needle.to_lowercase();
    let is_word = |c: char| c.is_alphanumeric();
    let mut from = 0;
    while let Some(off) = hay[from..].find(&needle) {
        let start = from + off;
        let end = start + needle.len();
        let before_ok = hay[..start].chars().next_back().is_none_or(|c| !is_word(c))
            || needle.chars().next().is_some_and(|c| !is_word(c));
        let after_ok = hay[end..].chars().next().is_none_or(|c| !is_word(c))
            || needle.chars().next_back().is_some_and(|c| !is_word(c));
        if before_ok && after_ok {
            return true;
        }
        from = start + hay[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

fn compare(a: &Scalar, b: &Scalar) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Scalar::Int(x), Scalar::Int(y)) => Some(x.cmp(y)),
        (Scalar::Time(x), Scalar::Time(y)) => Some(x.cmp(y)),
        (Scalar::Str(x), Scalar::Str(y)) => Some(x.cmp(y)),
        (Scalar::Str(x), Scalar::Time(y)) => {
            DateTime::parse_from_rfc3339(x).ok().map(|t| t.with_timezone(&Utc).cmp(y))
        }
        _ => None,
    }
}

fn eval(e: &Expr, ev: &Event) -> bool {
    match e {
        Expr::And(a, b) => eval(a, ev) && eval(b, ev),
        Expr::Or(a, b) => eval(a, ev) || eval(b, ev),
        Expr::Cmp { column, op, values } => {
            // Kusto strings are never null: a missing string column reads as "".
            let v = match ev.get(column) {
                Scalar::Null => Scalar::Str(String::new()),
                v => v,
            };
            let lits: Vec<Scalar> = values.iter().map(literal_scalar).collect();
            let text = match &v {
                Scalar::Str(s) => Some(s.as_str()),
                _ => None,
            };
            let eq_ci = |l: &Scalar| match (&v, l) {
                (Scalar::Str(a), Scalar::Str(b)) => a.to_lowercase() == b.to_lowercase(),
                (a, b) => a == b,
            };
            match op {
                Op::In | Op::Eq => v != Scalar::Null && lits.contains(&v),
                Op::InCi | Op::EqCi => v != Scalar::Null && lits.iter().any(eq_ci),
                Op::NotIn | Op::Ne => !lits.contains(&v),
                Op::NotInCi => !lits.iter().any(eq_ci),
                Op::HasAny | Op::Has => {
                    text.is_some_and(|t| lits.iter().any(|l| matches!(l, Scalar::Str(n) if has_term(t, n))))
                }
                Op::Contains => text.is_some_and(|t| {
                    lits.iter()
                        .any(|l| matches!(l, Scalar::Str(n) if t.to_lowercase().contains(&n.to_lowercase())))
                }),
                Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                    lits.first().and_then(|l| compare(&v, l)).is_some_and(|o| {
                        use std::cmp::Ordering::{Greater, Less};
                        match op {
                            Op::Gt => o == Greater,
                            Op::Ge => o != Less,
                            Op::Lt => o == Less,
                            _ => o != Greater,
                        }
                    })
                }
            }
        }
    }
}

fn expr_columns<'a>(e: &'a Expr, out: &mut Vec<&'a str>) {
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => {
            expr_columns(a, out);
            expr_columns(b, out);
        }
        Expr::Cmp { column, .. } => out.push(column),
    }
}

/// A query's result: the column schema and the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// `(name, type)` of each column, in order (`String`, `Int64`, `DateTime`).
    pub schema: Vec<(String, &'static str)>,
    /// One JSON object per row.
    pub rows: Vec<Map<String, Value>>,
}

/// Runs `query` over `events` with `now` as the clock for `ago()`; at most `max_rows` rows come back.
pub fn run(
    query: &str,
    events: &[Event],
    now: DateTime<Utc>,
    max_rows: usize,
) -> Result<QueryResult, QueryError> {
    let mut p = Parser { toks: tokenize(query)?, pos: 0, now };
    let (table, stages) = p.query()?;
    let Some(table_cols) = columns_of(&table) else {
        return Err(QueryError {
            message: format!("Failed to resolve table or column expression named '{table}'"),
        });
    };
    // Columns in scope change after `summarize` and `project`.
    let mut scope: Vec<String> = table_cols.iter().map(|c| (*c).to_owned()).collect();
    let mut rows: Vec<Row> =
        events.iter().filter(|e| e.table == table).map(|e| Row::Event(e.clone())).collect();
    for stage in &stages {
        match stage {
            Stage::Where(expr) => {
                let mut cols = Vec::new();
                expr_columns(expr, &mut cols);
                if let Some(c) = cols.iter().find(|c| !scope.iter().any(|s| s == *c)) {
                    return Err(unresolved(c));
                }
                rows.retain(|r| r.matches(expr));
            }
            Stage::Take(n) => rows.truncate(*n),
            Stage::Project(cols) => {
                if let Some(c) = cols.iter().find(|c| !scope.contains(c)) {
                    return Err(unresolved(c));
                }
                rows = rows
                    .into_iter()
                    .map(|r| Row::Fields(cols.iter().map(|c| (c.clone(), r.get(c))).collect()))
                    .collect();
                scope.clone_from(cols);
            }
            Stage::Summarize { aggs, by } => {
                for c in by.iter().chain(aggs.iter().filter_map(|a| match &a.func {
                    AggFn::Count => None,
                    AggFn::DCount(c) | AggFn::Max(c) | AggFn::Min(c) => Some(c),
                })) {
                    if !scope.contains(c) {
                        return Err(unresolved(c));
                    }
                }
                let mut groups: BTreeMap<Vec<Scalar>, Vec<Row>> = BTreeMap::new();
                for r in rows {
                    groups.entry(by.iter().map(|c| r.get(c)).collect()).or_default().push(r);
                }
                rows = groups
                    .into_iter()
                    .map(|(key, members)| {
                        let mut fields: Vec<(String, Scalar)> = by.iter().cloned().zip(key).collect();
                        for a in aggs {
                            let value = match &a.func {
                                AggFn::Count => Scalar::Int(i64::try_from(members.len()).unwrap_or(i64::MAX)),
                                AggFn::DCount(c) => {
                                    let distinct: BTreeSet<Scalar> = members
                                        .iter()
                                        .map(|m| m.get(c))
                                        .filter(|s| *s != Scalar::Null)
                                        .collect();
                                    Scalar::Int(i64::try_from(distinct.len()).unwrap_or(i64::MAX))
                                }
                                AggFn::Max(c) => {
                                    members.iter().map(|m| m.get(c)).max().unwrap_or(Scalar::Null)
                                }
                                AggFn::Min(c) => members
                                    .iter()
                                    .map(|m| m.get(c))
                                    .filter(|s| *s != Scalar::Null)
                                    .min()
                                    .unwrap_or(Scalar::Null),
                            };
                            fields.push((a.name.clone(), value));
                        }
                        Row::Fields(fields)
                    })
                    .collect();
                scope = by.iter().cloned().chain(aggs.iter().map(|a| a.name.clone())).collect();
            }
        }
    }
    rows.truncate(max_rows);
    let schema: Vec<(String, &'static str)> = scope
        .iter()
        .map(|c| {
            let kind = rows
                .iter()
                .map(|r| r.get(c))
                .find(|s| *s != Scalar::Null)
                .map_or(if c == "Timestamp" { "DateTime" } else { "String" }, |s| s.kind());
            (c.clone(), kind)
        })
        .collect();
    let rows = rows
        .iter()
        .map(|r| scope.iter().map(|c| (c.clone(), r.get(c).to_json())).collect::<Map<String, Value>>())
        .collect();
    Ok(QueryResult { schema, rows })
}

#[derive(Debug, Clone)]
enum Row {
    Event(Event),
    Fields(Vec<(String, Scalar)>),
}

impl Row {
    fn get(&self, column: &str) -> Scalar {
        match self {
            Row::Event(e) => e.get(column),
            Row::Fields(f) => f.iter().find(|(n, _)| n == column).map_or(Scalar::Null, |(_, v)| v.clone()),
        }
    }

    fn matches(&self, e: &Expr) -> bool {
        match self {
            Row::Event(ev) => eval(e, ev),
            Row::Fields(f) => {
                // Evaluate over a synthetic event holding the projected columns.
                let mut columns = Map::new();
                let mut timestamp = DateTime::<Utc>::MIN_UTC;
                for (n, v) in f {
                    match v {
                        Scalar::Time(t) if n == "Timestamp" => timestamp = *t,
                        other => {
                            columns.insert(n.clone(), other.to_json());
                        }
                    }
                }
                eval(e, &Event { table: String::new(), timestamp, columns })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn ev(table: &str, days_ago: i64, device: &str, col: &str, value: &str) -> Event {
        let mut columns = Map::new();
        columns.insert("DeviceId".into(), Value::from(device));
        columns.insert(col.into(), Value::from(value));
        Event { table: table.into(), timestamp: now() - Duration::days(days_ago), columns }
    }

    fn sample() -> Vec<Event> {
        vec![
            ev("DeviceNetworkEvents", 1, "d1", "RemoteIP", "198.51.100.7"),
            ev("DeviceNetworkEvents", 2, "d2", "RemoteIP", "198.51.100.7"),
            ev("DeviceNetworkEvents", 3, "d2", "RemoteIP", "198.51.100.7"),
            ev("DeviceNetworkEvents", 40, "d3", "RemoteIP", "198.51.100.7"),
            ev("DeviceNetworkEvents", 1, "d1", "RemoteIP", "203.0.113.9"),
            ev("DeviceNetworkEvents", 1, "d1", "RemoteUrl", "https://Evil.example.com/path?q=1"),
            ev("DeviceFileEvents", 1, "d9", "SHA256", "ab".repeat(32).as_str()),
        ]
    }

    #[test]
    fn summarize_counts_devices_events_and_last_seen_in_the_window() {
        let q = "DeviceNetworkEvents | where Timestamp > ago(30d) | where RemoteIP in (\"198.51.100.7\", \"192.0.2.1\") \
                 | summarize Devices = dcount(DeviceId), Events = count(), LastSeen = max(Timestamp) by RemoteIP";
        let r = run(q, &sample(), now(), 100_000).unwrap();
        assert_eq!(
            r.schema,
            vec![
                ("RemoteIP".into(), "String"),
                ("Devices".into(), "Int64"),
                ("Events".into(), "Int64"),
                ("LastSeen".into(), "DateTime")
            ]
        );
        assert_eq!(r.rows.len(), 1);
        let row = &r.rows[0];
        assert_eq!(row["RemoteIP"], "198.51.100.7");
        assert_eq!(row["Devices"], 2, "d3's event is 40 days old");
        assert_eq!(row["Events"], 3);
        assert_eq!(row["LastSeen"], "2026-11-30T00:00:00.000000Z");
    }

    #[test]
    fn default_aggregate_names_follow_kusto() {
        let q = "DeviceNetworkEvents | summarize dcount(DeviceId), count() by RemoteIP";
        let r = run(q, &sample(), now(), 10).unwrap();
        let names: Vec<&str> = r.schema.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["RemoteIP", "dcount_DeviceId", "count_"]);
    }

    #[test]
    fn has_any_matches_whole_terms_case_insensitively() {
        let q = "DeviceNetworkEvents | where RemoteUrl has_any (\"evil.example.com\") | summarize count() by RemoteUrl";
        assert_eq!(run(q, &sample(), now(), 10).unwrap().rows.len(), 1);
        let q = "DeviceNetworkEvents | where RemoteUrl has_any (\"vil.example.com\") | summarize count() by RemoteUrl";
        assert_eq!(run(q, &sample(), now(), 10).unwrap().rows.len(), 0, "a partial term is not a match");
        assert!(has_term("https://evil.example.com/x", "EVIL.example.com"));
        assert!(!has_term("notevil.example.com", "evil.example.com"));
    }

    #[test]
    fn in_is_case_sensitive_and_in_tilde_is_not() {
        let hash = "AB".repeat(32);
        let q = format!("DeviceFileEvents | where SHA256 in (\"{hash}\") | project DeviceId");
        assert_eq!(run(&q, &sample(), now(), 10).unwrap().rows.len(), 0);
        let q = format!("DeviceFileEvents | where SHA256 in~ (\"{hash}\") | project DeviceId");
        let r = run(&q, &sample(), now(), 10).unwrap();
        assert_eq!(r.rows, vec![Map::from_iter([("DeviceId".to_owned(), Value::from("d9"))])]);
    }

    #[test]
    fn escapes_and_verbatim_strings_decode() {
        let events = vec![ev("DeviceNetworkEvents", 1, "d1", "RemoteUrl", "a\"b'c\\d|e")];
        for lit in [r#""a\"b'c\\d|e""#, r#"'a"b\'c\\d|e'"#, r#"@"a""b'c\d|e""#] {
            let q =
                format!("DeviceNetworkEvents | where RemoteUrl in ({lit}) | summarize count() by RemoteUrl");
            assert_eq!(run(&q, &events, now(), 10).unwrap().rows.len(), 1, "{lit}");
        }
    }

    #[test]
    fn anything_outside_the_subset_is_a_syntax_error() {
        for q in [
            "DeviceNetworkEvents | extend x = 1",
            "DeviceNetworkEvents | where RemoteIP in (\"1.2.3.4\"",
            "DeviceNetworkEvents | where RemoteIP in (\"1.2.3.4\")) | take 1",
            "DeviceNetworkEvents | where RemoteIP in (\"a\nb\")",
            "DeviceNetworkEvents | where RemoteIP == \"x\"; DeviceFileEvents",
            "DeviceNetworkEvents | summarize percentile(RemotePort, 50)",
            "DeviceNetworkEvents | where Timestamp > ago(30x)",
        ] {
            let e = run(q, &sample(), now(), 10).unwrap_err();
            assert!(e.message.starts_with("Query could not be parsed"), "{q}: {e}");
        }
    }

    #[test]
    fn unknown_tables_and_columns_are_named() {
        let e = run("EmailEvents | take 1", &sample(), now(), 10).unwrap_err();
        assert!(e.message.contains("'EmailEvents'"), "{e}");
        let e = run("DeviceNetworkEvents | where Bogus == \"x\"", &sample(), now(), 10).unwrap_err();
        assert_eq!(e.message, "Failed to resolve scalar expression named 'Bogus'");
        let e = run(
            "DeviceNetworkEvents | summarize count() by RemoteIP | where DeviceId == \"d1\"",
            &sample(),
            now(),
            10,
        )
        .unwrap_err();
        assert!(e.message.contains("'DeviceId'"), "columns leave scope after summarize: {e}");
    }

    #[test]
    fn datetime_literals_bound_a_window() {
        let q = "DeviceNetworkEvents | where Timestamp > datetime(2026-11-29T12:00:00Z) and Timestamp <= datetime(2026-11-30T12:00:00Z) | project DeviceId";
        let r = run(q, &sample(), now(), 10).unwrap();
        assert_eq!(r.rows.len(), 3, "only the events of 2026-11-30T00:00:00Z");
        assert!(
            run("DeviceNetworkEvents | where Timestamp > datetime(yesterday)", &sample(), now(), 10).is_err()
        );
    }

    #[test]
    fn a_missing_column_reads_as_the_empty_string() {
        let q = "DeviceNetworkEvents | where RemoteUrl != \"\" | project DeviceId";
        assert_eq!(run(q, &sample(), now(), 10).unwrap().rows.len(), 1, "only the event with a RemoteUrl");
    }

    #[test]
    fn rows_are_capped() {
        let r = run("DeviceNetworkEvents", &sample(), now(), 2).unwrap();
        assert_eq!(r.rows.len(), 2);
    }
}
