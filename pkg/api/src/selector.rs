//! Label selectors (`app=web,tier in (a,b),!canary`) and field selectors
//! (`spec.nodeName=n1,status.phase!=Running`) with Kubernetes' syntax and semantics.
//!
//! Parse errors name the problem and the 0-based byte position in the selector where it
//! was found.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;

use crate::names;

/// A selector that could not be parsed or built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(String);

/// How a label requirement compares a label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `key=value`
    Equals,
    /// `key==value`, the same as `=`.
    DoubleEquals,
    /// `key!=value`; also true when the label is absent.
    NotEquals,
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)`; also true when the label is absent.
    NotIn,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>5`: the label is an integer greater than the value.
    GreaterThan,
    /// `key<5`: the label is an integer less than the value.
    LessThan,
}

/// One term of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and without duplicates for `in`/`notin`; one value for the comparisons;
    /// empty for the existence checks.
    values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement, checking the key, the values and their number as Kubernetes
    /// does.
    pub fn new(
        key: &str,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Requirement, SelectorError> {
        check_key(key)?;
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(SelectorError(
                    "for 'in', 'notin' operators, values set can't be empty".to_string(),
                ));
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                return Err(SelectorError(
                    "exact-match compatibility requires one single value".to_string(),
                ));
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(SelectorError(
                    "values set must be empty for exists and does not exist".to_string(),
                ));
            }
            Operator::GreaterThan | Operator::LessThan if values.len() != 1 => {
                return Err(SelectorError(
                    "for 'Gt', 'Lt' operators, exactly one value is required".to_string(),
                ));
            }
            _ => {}
        }
        for v in &values {
            check_value(key, operator, v)?;
        }
        let values = match operator {
            Operator::In | Operator::NotIn => values
                .into_iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            _ => values,
        };
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a set of labels satisfies this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => {
                value.is_some_and(|v| self.values.contains(v))
            }
            Operator::NotEquals | Operator::NotIn => {
                !value.is_some_and(|v| self.values.contains(v))
            }
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), Some(want)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

fn check_key(key: &str) -> Result<(), SelectorError> {
    let errs = names::validate_qualified_name(key);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(SelectorError(format!(
            "invalid label key {key:?}: {}",
            errs.join("; ")
        )))
    }
}

fn check_value(key: &str, operator: Operator, value: &str) -> Result<(), SelectorError> {
    let errs = names::is_valid_label_value(value);
    if !errs.is_empty() {
        return Err(SelectorError(format!(
            "invalid label value {value:?} for key {key:?}: {}",
            errs.join("; ")
        )));
    }
    if matches!(operator, Operator::GreaterThan | Operator::LessThan)
        && value.parse::<i64>().is_err()
    {
        return Err(SelectorError(format!(
            "for 'Gt', 'Lt' operators, the value must be an integer, not {value:?}"
        )));
    }
    Ok(())
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            Operator::Exists => return f.write_str(&self.key),
            Operator::DoesNotExist => return write!(f, "!{}", self.key),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
        };
        let values = self.values.join(",");
        match self.operator {
            Operator::In | Operator::NotIn => write!(f, "{}{op}({values})", self.key),
            _ => write!(f, "{}{op}{values}", self.key),
        }
    }
}

/// A label selector: requirements that must all hold. The empty selector matches every
/// object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches everything.
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// Parses the `labelSelector` query syntax: comma-separated requirements of the forms
    /// `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>1`, `k<1`.
    pub fn parse(selector: &str) -> Result<LabelSelector, SelectorError> {
        let tokens = lex(selector);
        let mut parser = Parser { tokens, pos: 0 };
        let mut requirements = parser.parse()?;
        // Canonical order, as Kubernetes keeps it, so equal selectors print the same.
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Converts the structured selector of object specs (`matchLabels` and
    /// `matchExpressions` with `In`, `NotIn`, `Exists`, `DoesNotExist`). An empty one
    /// matches everything. Kubernetes reads an absent selector as matching nothing; that
    /// case is the caller's, as there is no selector to pass.
    pub fn from_label_selector(
        selector: &metav1::LabelSelector,
    ) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::new(k, Operator::Equals, vec![v.clone()])?);
        }
        for expr in selector.match_expressions.iter().flatten() {
            let operator = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError(format!(
                        "{other:?} is not a valid label selector operator"
                    )));
                }
            };
            requirements.push(Requirement::new(
                &expr.key,
                operator,
                expr.values.clone().unwrap_or_default(),
            )?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Whether every requirement holds for these labels.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True for the selector that matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for LabelSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LabelSelector::parse(s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Greater,
    Less,
    Bang,
    Open,
    Close,
    Comma,
    End,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    pos: usize,
}

impl Token {
    /// How the token reads in an error message.
    fn found(&self) -> String {
        let lit = match &self.tok {
            Tok::Ident(s) => s.as_str(),
            Tok::In => "in",
            Tok::NotIn => "notin",
            Tok::Equals => "=",
            Tok::DoubleEquals => "==",
            Tok::NotEquals => "!=",
            Tok::Greater => ">",
            Tok::Less => "<",
            Tok::Bang => "!",
            Tok::Open => "(",
            Tok::Close => ")",
            Tok::Comma => ",",
            Tok::End => return "end of string".to_string(),
        };
        format!("'{lit}'")
    }

    /// Where operators are not expected, `in` and `notin` are ordinary words: a label may
    /// be called `in`.
    fn as_value(&self) -> Tok {
        match &self.tok {
            Tok::In => Tok::Ident("in".to_string()),
            Tok::NotIn => Tok::Ident("notin".to_string()),
            t => t.clone(),
        }
    }
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn lex(input: &str) -> Vec<Token> {
    let b = input.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        let pos = i;
        if i >= b.len() {
            tokens.push(Token { tok: Tok::End, pos });
            return tokens;
        }
        let next = b.get(i + 1).copied();
        let (tok, len) = match (b[i], next) {
            (b'!', Some(b'=')) => (Tok::NotEquals, 2),
            (b'=', Some(b'=')) => (Tok::DoubleEquals, 2),
            (b'=', _) => (Tok::Equals, 1),
            (b'!', _) => (Tok::Bang, 1),
            (b'(', _) => (Tok::Open, 1),
            (b')', _) => (Tok::Close, 1),
            (b',', _) => (Tok::Comma, 1),
            (b'>', _) => (Tok::Greater, 1),
            (b'<', _) => (Tok::Less, 1),
            _ => {
                let mut j = i;
                while j < b.len() && !is_space(b[j]) && !is_special(b[j]) {
                    j += 1;
                }
                // Cut at ASCII bytes only, so the slice stays on character boundaries.
                let word = &input[i..j];
                let tok = match word {
                    "in" => Tok::In,
                    "notin" => Tok::NotIn,
                    _ => Tok::Ident(word.to_string()),
                };
                (tok, j - i)
            }
        };
        tokens.push(Token { tok, pos });
        i += len;
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

fn err_at(message: String, pos: usize) -> SelectorError {
    SelectorError(format!("{message} at position {pos}"))
}

fn requirement_err(message: String, pos: usize) -> SelectorError {
    err_at(format!("unable to parse requirement: {message}"), pos)
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let t = self.peek().clone();
            match t.as_value() {
                Tok::Ident(_) | Tok::Bang => {
                    requirements.push(self.parse_requirement()?);
                    let after = self.next();
                    match after.tok {
                        Tok::End => return Ok(requirements),
                        Tok::Comma => {
                            let n = self.peek();
                            if !matches!(n.as_value(), Tok::Ident(_) | Tok::Bang) {
                                return Err(err_at(
                                    format!("found {}, expected: identifier after ','", n.found()),
                                    n.pos,
                                ));
                            }
                        }
                        _ => {
                            return Err(err_at(
                                format!(
                                    "found {}, expected: ',' or 'end of string'",
                                    after.found()
                                ),
                                after.pos,
                            ));
                        }
                    }
                }
                Tok::End => return Ok(requirements),
                _ => {
                    return Err(err_at(
                        format!(
                            "found {}, expected: !, identifier, or 'end of string'",
                            t.found()
                        ),
                        t.pos,
                    ));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, SelectorError> {
        let mut t = self.next();
        let negated = t.tok == Tok::Bang;
        if negated {
            t = self.next();
        }
        let Tok::Ident(key) = t.as_value() else {
            return Err(requirement_err(
                format!("found {}, expected: identifier", t.found()),
                t.pos,
            ));
        };
        check_key(&key).map_err(|e| requirement_err(e.0, t.pos))?;
        if negated {
            return Ok(Requirement {
                key,
                operator: Operator::DoesNotExist,
                values: Vec::new(),
            });
        }
        if matches!(self.peek().tok, Tok::End | Tok::Comma) {
            return Ok(Requirement {
                key,
                operator: Operator::Exists,
                values: Vec::new(),
            });
        }
        let op_token = self.next();
        let operator = match op_token.tok {
            Tok::In => Operator::In,
            Tok::NotIn => Operator::NotIn,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::NotEquals => Operator::NotEquals,
            Tok::Greater => Operator::GreaterThan,
            Tok::Less => Operator::LessThan,
            _ => {
                return Err(requirement_err(
                    format!(
                        "found {}, expected: in, notin, =, ==, !=, gt, lt",
                        op_token.found()
                    ),
                    op_token.pos,
                ));
            }
        };
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_set()?,
            _ => vec![self.parse_exact_value()?],
        };
        // Positions of the values are lost by now, so value errors point at the operator.
        for v in &values {
            check_value(&key, operator, v).map_err(|e| requirement_err(e.0, op_token.pos))?;
        }
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }

    /// `(a,b,c)`, where empty entries stand for the empty value, as Kubernetes reads them.
    fn parse_set(&mut self) -> Result<Vec<String>, SelectorError> {
        let open = self.next();
        if open.tok != Tok::Open {
            return Err(requirement_err(
                format!("found {}, expected: '('", open.found()),
                open.pos,
            ));
        }
        let mut values = BTreeSet::new();
        let first = self.peek().clone();
        match first.as_value() {
            Tok::Close => {
                self.next();
                values.insert(String::new());
                return Ok(values.into_iter().collect());
            }
            Tok::Ident(_) | Tok::Comma => {}
            _ => {
                return Err(requirement_err(
                    format!("found {}, expected: ',', ')' or identifier", first.found()),
                    first.pos,
                ));
            }
        }
        loop {
            let t = self.next();
            match t.as_value() {
                Tok::Ident(v) => {
                    values.insert(v);
                    let n = self.peek();
                    match n.tok {
                        Tok::Comma => {}
                        Tok::Close => break,
                        _ => {
                            return Err(requirement_err(
                                format!("found {}, expected: ',' or ')'", n.found()),
                                n.pos,
                            ));
                        }
                    }
                }
                Tok::Comma => {
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    match self.peek().tok {
                        Tok::Close => {
                            values.insert(String::new());
                            break;
                        }
                        Tok::Comma => {
                            values.insert(String::new());
                        }
                        _ => {}
                    }
                }
                _ => {
                    return Err(requirement_err(
                        format!("found {}, expected: ',', or identifier", t.found()),
                        t.pos,
                    ));
                }
            }
        }
        let close = self.next();
        if close.tok != Tok::Close {
            return Err(requirement_err(
                format!("found {}, expected: ')'", close.found()),
                close.pos,
            ));
        }
        Ok(values.into_iter().collect())
    }

    fn parse_exact_value(&mut self) -> Result<String, SelectorError> {
        if matches!(self.peek().tok, Tok::End | Tok::Comma) {
            return Ok(String::new());
        }
        let t = self.next();
        match t.as_value() {
            Tok::Ident(v) => Ok(v),
            _ => Err(requirement_err(
                format!("found {}, expected: identifier", t.found()),
                t.pos,
            )),
        }
    }
}

/// One `field=value` or `field!=value` term.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    value: String,
    negated: bool,
}

impl fmt::Display for FieldTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.negated { "!=" } else { "=" };
        write!(f, "{}{op}{}", self.field, escape_field_value(&self.value))
    }
}

/// A field selector: `field=value` and `field!=value` terms that must all hold. The empty
/// selector matches every object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// The selector that matches everything.
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    /// Parses the `fieldSelector` query syntax: comma-separated `f=v`, `f==v`, `f!=v`.
    /// In values, `\,` `\=` `\!` and `\\` stand for the character itself.
    pub fn parse(selector: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = Vec::new();
        for (start, part) in split_field_terms(selector) {
            if part.trim().is_empty() {
                continue;
            }
            let Some((op_at, op)) = find_field_operator(part) else {
                return Err(err_at(
                    format!(
                        "invalid field selector: can't understand '{part}' (expected field=value, field==value or field!=value)"
                    ),
                    start,
                ));
            };
            let field = part[..op_at].trim();
            if field.is_empty() {
                return Err(err_at(
                    format!("invalid field selector: missing field name in '{part}'"),
                    start,
                ));
            }
            let value_start = op_at + op.len();
            let value = unescape_field_value(&part[value_start..], start + value_start)?;
            terms.push(FieldTerm {
                field: field.to_string(),
                value,
                negated: op == "!=",
            });
        }
        terms.sort_by_key(|t| t.to_string());
        Ok(FieldSelector { terms })
    }

    /// Whether the object satisfies every term. `get` returns the object's value for a
    /// field, or None when the field is not supported; a term on an unsupported field
    /// never matches, so reject those up front with [`FieldSelector::fields`].
    pub fn matches(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|t| match get(&t.field) {
            Some(v) => (v == t.value) != t.negated,
            None => false,
        })
    }

    /// The fields the selector names, in order, possibly repeated.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|t| t.field.as_str())
    }

    /// The value `field` must equal, if the selector pins it with `=`: lets a server
    /// narrow a list, for example to the pods of one node.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| !t.negated && t.field == field)
            .map(|t| t.value.as_str())
    }

    /// True for the selector that matches everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for FieldSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldSelector::parse(s)
    }
}

/// Splits at commas that are not escaped, keeping each part's byte offset.
fn split_field_terms(s: &str) -> Vec<(usize, &str)> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            parts.push((start, &s[start..i]));
            start = i + 1;
        }
    }
    parts.push((start, &s[start..]));
    parts
}

/// The leftmost operator; `!=` and `==` win over `=` where they start at the same place.
fn find_field_operator(term: &str) -> Option<(usize, &'static str)> {
    (0..term.len()).find_map(|i| {
        let rest = &term.as_bytes()[i..];
        ["!=", "==", "="]
            .into_iter()
            .find(|op| rest.starts_with(op.as_bytes()))
            .map(|op| (i, op))
    })
}

fn unescape_field_value(raw: &str, offset: usize) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e @ ('\\' | ',' | '=' | '!'))) => out.push(e),
                Some((_, e)) => {
                    return Err(err_at(
                        format!("invalid field selector: invalid escape sequence '\\{e}'"),
                        offset + i,
                    ));
                }
                None => {
                    return Err(err_at(
                        "invalid field selector: invalid escape sequence '\\' at the end of a value"
                            .to_string(),
                        offset + i,
                    ));
                }
            },
            '=' | ',' => {
                return Err(err_at(
                    format!("invalid field selector: unescaped character '{c}' in value"),
                    offset + i,
                ));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Escapes a value for a field selector, the inverse of the parser's unescaping.
pub fn escape_field_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn empty_selector_matches_everything() {
        for s in ["", "   ", "\t\n"] {
            let s = sel(s);
            assert!(s.is_empty());
            assert!(s.matches(&labels(&[])));
            assert!(s.matches(&labels(&[("a", "b")])));
            assert_eq!(s.to_string(), "");
        }
    }

    #[test]
    fn equality_requirements() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(sel("app=web").matches(&l));
        assert!(sel("app==web").matches(&l));
        assert!(!sel("app=db").matches(&l));
        assert!(sel("app!=db").matches(&l));
        assert!(!sel("app!=web").matches(&l));
        // `!=` holds when the label is absent, `=` does not.
        assert!(sel("zone!=a").matches(&l));
        assert!(!sel("zone=a").matches(&l));
        assert!(sel("app=web,tier=front").matches(&l));
        assert!(!sel("app=web,tier=back").matches(&l));
        // `k=` selects the empty value.
        assert!(sel("e=").matches(&labels(&[("e", "")])));
        assert!(!sel("e=").matches(&labels(&[])));
    }

    #[test]
    fn set_requirements() {
        let l = labels(&[("env", "prod")]);
        assert!(sel("env in (prod, staging)").matches(&l));
        assert!(!sel("env in (dev)").matches(&l));
        assert!(sel("env notin (dev,qa)").matches(&l));
        assert!(!sel("env notin (prod)").matches(&l));
        assert!(sel("zone notin (a)").matches(&l));
        assert!(!sel("zone in (a)").matches(&l));
        assert!(sel("env").matches(&l));
        assert!(!sel("zone").matches(&l));
        assert!(sel("!zone").matches(&l));
        assert!(!sel("!env").matches(&l));
        assert!(sel("env in (,prod)").matches(&l));
        assert_eq!(sel("x in ()").requirements()[0].values(), &[""]);
        assert_eq!(
            sel("x in (a,,b)").requirements()[0].values(),
            &["", "a", "b"]
        );
        assert_eq!(sel("x in (b,a,b)").requirements()[0].values(), &["a", "b"]);
    }

    #[test]
    fn numeric_comparisons() {
        let l = labels(&[("gen", "5"), ("name", "x")]);
        assert!(sel("gen>4").matches(&l));
        assert!(!sel("gen>5").matches(&l));
        assert!(sel("gen<6").matches(&l));
        assert!(!sel("name<6").matches(&l));
        assert!(!sel("missing>1").matches(&l));
        assert!(LabelSelector::parse("gen>x").is_err());
    }

    #[test]
    fn keywords_are_identifiers_where_values_are_expected() {
        let s = sel("in=notin");
        assert!(s.matches(&labels(&[("in", "notin")])));
        assert!(sel("a in (in,notin)").matches(&labels(&[("a", "notin")])));
    }

    #[test]
    fn whitespace_is_tolerated() {
        let s = sel("  app = web ,  env  in  ( a ,b ) , ! canary ");
        assert_eq!(s.to_string(), "app=web,!canary,env in (a,b)");
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        let s = sel("z=1,a in (y,x),!b,c,d!=2,e==3,f notin (q),g>1,h<9");
        assert_eq!(
            s.to_string(),
            "a in (x,y),!b,c,d!=2,e==3,f notin (q),g>1,h<9,z=1"
        );
        assert_eq!(sel(&s.to_string()), s);
    }

    #[test]
    fn qualified_keys() {
        let l = labels(&[("example.com/team", "a")]);
        assert!(sel("example.com/team=a").matches(&l));
        assert!(sel("app.kubernetes.io/name").matches(&labels(&[("app.kubernetes.io/name", "")])));
    }

    #[test]
    fn parse_errors_say_what_and_where() {
        let cases = [
            (
                "x in y",
                "unable to parse requirement: found 'y', expected: '(' at position 5",
            ),
            (
                "x in in",
                "unable to parse requirement: found 'in', expected: '(' at position 5",
            ),
            (
                "a=b,",
                "found end of string, expected: identifier after ',' at position 4",
            ),
            (
                "a=b c",
                "found 'c', expected: ',' or 'end of string' at position 4",
            ),
            (
                ",a",
                "found ',', expected: !, identifier, or 'end of string' at position 0",
            ),
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt at position 2",
            ),
            (
                "a in (b",
                "unable to parse requirement: found end of string, expected: ',' or ')' at position 7",
            ),
            (
                "a in (=)",
                "unable to parse requirement: found '=', expected: ',', ')' or identifier at position 6",
            ),
            (
                "a==(",
                "unable to parse requirement: found '(', expected: identifier at position 3",
            ),
            (
                "!",
                "unable to parse requirement: found end of string, expected: identifier at position 1",
            ),
            (
                "!a=b",
                "found '=', expected: ',' or 'end of string' at position 2",
            ),
        ];
        for (input, want) in cases {
            let err = LabelSelector::parse(input).unwrap_err().to_string();
            assert_eq!(err, want, "{input}");
        }
    }

    #[test]
    fn keys_and_values_are_validated() {
        let err = LabelSelector::parse("a,Bad Key").unwrap_err().to_string();
        assert!(
            err.starts_with("unable to parse requirement: found 'Key'"),
            "{err}"
        );
        let err = LabelSelector::parse("-bad=x").unwrap_err().to_string();
        assert!(
            err.starts_with(
                "unable to parse requirement: invalid label key \"-bad\": name part must consist"
            ),
            "{err}"
        );
        assert!(err.ends_with("at position 0"), "{err}");
        let err = LabelSelector::parse("ok=-bad").unwrap_err().to_string();
        assert!(
            err.contains("invalid label value \"-bad\" for key \"ok\""),
            "{err}"
        );
        let long = format!("k={}", "v".repeat(64));
        assert!(
            LabelSelector::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("must be no more than 63 characters")
        );
        let err = LabelSelector::parse("a in (x,-y)").unwrap_err().to_string();
        assert!(err.contains("invalid label value \"-y\""), "{err}");
    }

    #[test]
    fn structured_selectors() {
        let ls = metav1::LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                metav1::LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "In".into(),
                    values: Some(vec!["prod".into(), "qa".into()]),
                },
                metav1::LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
                metav1::LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "Exists".into(),
                    values: None,
                },
                metav1::LabelSelectorRequirement {
                    key: "zone".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["b".into()]),
                },
            ]),
        };
        let s = LabelSelector::from_label_selector(&ls).unwrap();
        assert_eq!(
            s.to_string(),
            "app=web,!canary,env in (prod,qa),tier,zone notin (b)"
        );
        assert!(s.matches(&labels(&[("app", "web"), ("env", "qa"), ("tier", "x")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "qa")])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("env", "qa"),
            ("tier", "x"),
            ("canary", "1")
        ])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("env", "qa"),
            ("tier", "x"),
            ("zone", "b")
        ])));

        assert!(
            LabelSelector::from_label_selector(&metav1::LabelSelector::default())
                .unwrap()
                .is_empty()
        );

        let bad = |op: &str, values: Option<Vec<String>>| {
            LabelSelector::from_label_selector(&metav1::LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![metav1::LabelSelectorRequirement {
                    key: "k".into(),
                    operator: op.into(),
                    values,
                }]),
            })
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            bad("Gt", None),
            "\"Gt\" is not a valid label selector operator"
        );
        assert_eq!(
            bad("In", None),
            "for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            bad("Exists", Some(vec!["x".into()])),
            "values set must be empty for exists and does not exist"
        );
        let bad_label = LabelSelector::from_label_selector(&metav1::LabelSelector {
            match_labels: Some(labels(&[("app", "not valid")])),
            match_expressions: None,
        });
        assert!(
            bad_label
                .unwrap_err()
                .to_string()
                .contains("invalid label value")
        );
    }

    fn fsel(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn pod_fields(field: &str) -> Option<String> {
        match field {
            "metadata.name" => Some("web-1".into()),
            "spec.nodeName" => Some("node-a".into()),
            "status.phase" => Some("Running".into()),
            "metadata.namespace" => Some("a,b=c".into()),
            _ => None,
        }
    }

    #[test]
    fn field_selectors_match() {
        assert!(fsel("").matches(&pod_fields));
        assert!(fsel("").is_empty());
        assert!(fsel("spec.nodeName=node-a").matches(&pod_fields));
        assert!(fsel("spec.nodeName==node-a").matches(&pod_fields));
        assert!(!fsel("spec.nodeName=node-b").matches(&pod_fields));
        assert!(fsel("status.phase!=Pending").matches(&pod_fields));
        assert!(!fsel("status.phase!=Running").matches(&pod_fields));
        assert!(fsel("metadata.name=web-1,status.phase=Running").matches(&pod_fields));
        assert!(!fsel("metadata.name=web-1,status.phase=Failed").matches(&pod_fields));
        // Unsupported fields never match, whatever the operator.
        assert!(!fsel("foo=bar").matches(&pod_fields));
        assert!(!fsel("foo!=bar").matches(&pod_fields));
        // Empty value, and escaped specials.
        assert!(!fsel("spec.nodeName=").matches(&pod_fields));
        assert!(fsel("metadata.namespace=a\\,b\\=c").matches(&pod_fields));
        assert!(fsel("a=b,,c=d,").fields().eq(["a", "c"]));
    }

    #[test]
    fn field_selector_accessors_and_display() {
        let s = fsel("status.phase!=Failed,spec.nodeName=n1, foo =x\\,y\\!");
        assert_eq!(
            s.fields().collect::<Vec<_>>(),
            ["foo", "spec.nodeName", "status.phase"]
        );
        assert_eq!(
            s.to_string(),
            "foo=x\\,y!,spec.nodeName=n1,status.phase!=Failed"
        );
        assert_eq!(fsel(&s.to_string()), s);
        assert_eq!(s.requires_exact_match("spec.nodeName"), Some("n1"));
        assert_eq!(s.requires_exact_match("status.phase"), None);
        assert_eq!(escape_field_value("a\\b,c=d"), "a\\\\b\\,c\\=d");
        assert_eq!(fsel("a=x\\\\").requires_exact_match("a"), Some("x\\"));
    }

    #[test]
    fn field_selector_errors() {
        let cases = [
            (
                "foo",
                "invalid field selector: can't understand 'foo' (expected field=value, field==value or field!=value) at position 0",
            ),
            (
                "a=b,bar",
                "invalid field selector: can't understand 'bar' (expected field=value, field==value or field!=value) at position 4",
            ),
            (
                "=x",
                "invalid field selector: missing field name in '=x' at position 0",
            ),
            (
                "a=b=c",
                "invalid field selector: unescaped character '=' in value at position 3",
            ),
            (
                "a=b\\x",
                "invalid field selector: invalid escape sequence '\\x' at position 3",
            ),
            (
                "a=b\\",
                "invalid field selector: invalid escape sequence '\\' at the end of a value at position 3",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                FieldSelector::parse(input).unwrap_err().to_string(),
                want,
                "{input}"
            );
        }
    }
}
