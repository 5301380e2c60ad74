//! The OData `$filter` subset of the list endpoint (spec §9, §12.15).
//!
//! Grammar: `expr := and ('or' and)*`, `and := unary ('and' unary)*`,
//! `unary := '(' expr ')' | field op literal | contains(field,'s') | startswith(field,'s')`.
//! Fields are the 13 documented ones (case-sensitive); anything else is an `ODataError`.

use chrono::{DateTime, Utc};

use crate::clock::parse_ts;
use crate::wire::Indicator;

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Cmp(Field, Op, Lit),
    Contains(Field, String),
    StartsWith(Field, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Time(DateTime<Utc>),
    Bool(bool),
    Num(i64),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Time,
    Bool,
    List,
}

/// The filterable properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Application,
    CreatedByDisplayName,
    ExpirationTime,
    GenerateAlert,
    Title,
    RbacGroupNames,
    RbacGroupIds,
    IndicatorValue,
    IndicatorType,
    CreationTimeDateTimeUtc,
    CreatedBy,
    Action,
    Severity,
}

impl Field {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "application" => Self::Application,
            "createdByDisplayName" => Self::CreatedByDisplayName,
            "expirationTime" => Self::ExpirationTime,
            "generateAlert" => Self::GenerateAlert,
            "title" => Self::Title,
            "rbacGroupNames" => Self::RbacGroupNames,
            "rbacGroupIds" => Self::RbacGroupIds,
            "indicatorValue" => Self::IndicatorValue,
            "indicatorType" => Self::IndicatorType,
            "creationTimeDateTimeUtc" => Self::CreationTimeDateTimeUtc,
            "createdBy" => Self::CreatedBy,
            "action" => Self::Action,
            "severity" => Self::Severity,
            _ => return None,
        })
    }

    fn kind(self) -> Kind {
        match self {
            Self::ExpirationTime | Self::CreationTimeDateTimeUtc => Kind::Time,
            Self::GenerateAlert => Kind::Bool,
            Self::RbacGroupNames | Self::RbacGroupIds => Kind::List,
            _ => Kind::Str,
        }
    }

    fn string(self, i: &Indicator) -> Option<&str> {
        match self {
            Self::Application => i.application.as_deref(),
            Self::CreatedByDisplayName => Some(&i.created_by_display_name),
            Self::Title => Some(&i.title),
            Self::IndicatorValue => Some(&i.indicator_value),
            Self::IndicatorType => Some(&i.indicator_type),
            Self::CreatedBy => Some(&i.created_by),
            Self::Action => Some(&i.action),
            Self::Severity => Some(&i.severity),
            Self::ExpirationTime => i.expiration_time.as_deref(),
            Self::CreationTimeDateTimeUtc => Some(&i.creation_time_date_time_utc),
            Self::GenerateAlert | Self::RbacGroupNames | Self::RbacGroupIds => None,
        }
    }

    fn list(self, i: &Indicator) -> Vec<String> {
        match self {
            Self::RbacGroupNames => i.rbac_group_names.clone(),
            Self::RbacGroupIds => i
                .rbac_group_ids
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    Comma,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '\'' => {
                let mut lit = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string literal".to_owned()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            lit.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            lit.push(*c);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(lit));
            }
            c if c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '+') => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-' | ':' | '.' | '+'))
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character '{other}'")),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

/// Maximum parenthesis nesting; deeper filters are refused instead of exhausting the stack.
const MAX_DEPTH: usize = 32;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s == kw)
    }
    fn expect(&mut self, t: &Tok, what: &str) -> Result<(), String> {
        match self.next() {
            Some(ref x) if x == t => Ok(()),
            _ => Err(format!("expected {what}")),
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn field(name: &str) -> Result<Field, String> {
        Field::parse(name).ok_or_else(|| format!("property '{name}' is not filterable (or does not exist)"))
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::LParen) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(format!("parentheses are nested deeper than {MAX_DEPTH} levels"));
                }
                let e = self.expr()?;
                self.expect(&Tok::RParen, "')'")?;
                self.depth -= 1;
                Ok(e)
            }
            Some(Tok::Ident(name)) if matches!(name.as_str(), "contains" | "startswith") => {
                self.expect(&Tok::LParen, &format!("'(' after {name}"))?;
                let field = match self.next() {
                    Some(Tok::Ident(f)) => Self::field(&f)?,
                    _ => return Err(format!("{name} needs a property as its first argument")),
                };
                if !matches!(field.kind(), Kind::Str | Kind::List) {
                    return Err(format!("{name} needs a string property"));
                }
                self.expect(&Tok::Comma, "','")?;
                let Some(Tok::Str(s)) = self.next() else {
                    return Err(format!("{name} needs a quoted string as its second argument"));
                };
                self.expect(&Tok::RParen, "')'")?;
                Ok(if name == "contains" { Expr::Contains(field, s) } else { Expr::StartsWith(field, s) })
            }
            Some(Tok::Ident(name)) => {
                let field = Self::field(&name)?;
                let op = match self.next() {
                    Some(Tok::Ident(op)) => match op.as_str() {
                        "eq" => Op::Eq,
                        "ne" => Op::Ne,
                        "gt" => Op::Gt,
                        "ge" => Op::Ge,
                        "lt" => Op::Lt,
                        "le" => Op::Le,
                        other => return Err(format!("operator '{other}' is not supported")),
                    },
                    _ => return Err(format!("expected an operator after '{name}'")),
                };
                let lit = match self.next() {
                    Some(Tok::Str(s)) => Lit::Str(s),
                    Some(Tok::Ident(s)) if s == "true" => Lit::Bool(true),
                    Some(Tok::Ident(s)) if s == "false" => Lit::Bool(false),
                    Some(Tok::Ident(s)) if s == "null" => Lit::Null,
                    Some(Tok::Ident(s)) => {
                        if let Ok(n) = s.parse::<i64>() {
                            Lit::Num(n)
                        } else if let Some(t) = s.contains('T').then(|| parse_ts(&s)).flatten() {
                            Lit::Time(t)
                        } else {
                            return Err(format!("'{s}' is not a valid literal"));
                        }
                    }
                    _ => return Err(format!("expected a value after '{name}'")),
                };
                check_types(field, op, &lit)?;
                Ok(Expr::Cmp(field, op, lit))
            }
            Some(t) => Err(format!("unexpected token {t:?}")),
            None => Err("unexpected end of filter".to_owned()),
        }
    }
}

fn check_types(field: Field, op: Op, lit: &Lit) -> Result<(), String> {
    let ordered = !matches!(op, Op::Eq | Op::Ne);
    let ok = match (field.kind(), lit) {
        (_, Lit::Null) => !ordered && field.kind() != Kind::List,
        (Kind::Str, Lit::Str(_)) => true,
        (Kind::Time, Lit::Time(_)) => true,
        (Kind::Bool, Lit::Bool(_)) => !ordered,
        (Kind::List, Lit::Str(_) | Lit::Num(_)) => !ordered,
        _ => false,
    };
    if ok { Ok(()) } else { Err(format!("{op:?} with {lit:?} is not valid for property {field:?}")) }
}

/// Parses a `$filter` value; the error text goes into the `ODataError` message.
pub(crate) fn parse(filter: &str) -> Result<Expr, String> {
    let toks = tokenize(filter)?;
    if toks.is_empty() {
        return Err("the filter is empty".to_owned());
    }
    let mut p = Parser { toks, pos: 0, depth: 0 };
    let e = p.expr()?;
    if let Some(t) = p.peek() {
        return Err(format!("unexpected {t:?} after a complete expression"));
    }
    Ok(e)
}

fn cmp<T: PartialOrd>(a: &T, op: Op, b: &T) -> bool {
    match op {
        Op::Eq => a == b,
        Op::Ne => a != b,
        Op::Gt => a > b,
        Op::Ge => a >= b,
        Op::Lt => a < b,
        Op::Le => a <= b,
    }
}

/// Evaluates a filter on one indicator (OData null semantics: ordered comparisons with null are false).
pub(crate) fn eval(e: &Expr, i: &Indicator) -> bool {
    match e {
        Expr::Or(a, b) => eval(a, i) || eval(b, i),
        Expr::And(a, b) => eval(a, i) && eval(b, i),
        Expr::Contains(f, s) => match f.kind() {
            Kind::List => f.list(i).iter().any(|x| x.contains(s.as_str())),
            _ => f.string(i).is_some_and(|v| v.contains(s.as_str())),
        },
        Expr::StartsWith(f, s) => match f.kind() {
            Kind::List => f.list(i).iter().any(|x| x.starts_with(s.as_str())),
            _ => f.string(i).is_some_and(|v| v.starts_with(s.as_str())),
        },
        Expr::Cmp(f, op, lit) => match (f.kind(), lit) {
            (Kind::Bool, Lit::Bool(b)) => cmp(&i.generate_alert, *op, b),
            (Kind::List, Lit::Str(s)) => (f.list(i).iter().any(|x| x == s)) == (*op == Op::Eq),
            (Kind::List, Lit::Num(n)) => (f.list(i).iter().any(|x| *x == n.to_string())) == (*op == Op::Eq),
            (_, Lit::Null) => f.string(i).is_none() == (*op == Op::Eq),
            (Kind::Time, Lit::Time(t)) => match f.string(i).and_then(parse_ts) {
                Some(v) => cmp(&v, *op, t),
                None => *op == Op::Ne,
            },
            (Kind::Str, Lit::Str(s)) => match f.string(i) {
                Some(v) => cmp(&v, *op, &s.as_str()),
                None => *op == Op::Ne,
            },
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_forms() {
        for f in [
            "action eq 'AlertAndBlock'",
            "expirationTime le 2025-01-01T00:00:00Z",
            "contains(title,'x') and indicatorType eq 'Url'",
            "(severity eq 'High' or severity ne 'Low') and generateAlert eq true",
            "startswith(indicatorValue,'http') or application eq null",
            "title eq 'it''s'",
            "creationTimeDateTimeUtc gt 2025-01-01T00:00:00.1234567Z",
            "rbacGroupNames eq 'Servers'",
        ] {
            parse(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
        assert_eq!(
            parse("title eq 'it''s'").unwrap(),
            Expr::Cmp(Field::Title, Op::Eq, Lit::Str("it's".into()))
        );
    }

    #[test]
    fn rejects_everything_else() {
        for f in [
            "",
            "id eq '1'",
            "Action eq 'Block'",
            "action in ('Block')",
            "action eq Block",
            "not action eq 'Block'",
            "action eq 'Block' and",
            "(action eq 'Block'",
            "title eq 'unterminated",
            "generateAlert gt true",
            "expirationTime le '2025-01-01'",
            "endswith(title,'x')",
            "contains(generateAlert,'x')",
            "action eq 'Block' xor title eq 'x'",
            &format!("{}action eq 'Block'{}", "(".repeat(100_000), ")".repeat(100_000)),
        ] {
            assert!(parse(f).is_err(), "{f} should be rejected");
        }
    }
}
