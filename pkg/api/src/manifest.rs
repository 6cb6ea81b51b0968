//! Reading manifest files: YAML or JSON, several documents per file, `kind: List`
//! expanded to its items, and errors that point at the line and column of the file where
//! the problem is.
//!
//! Hostile input is bounded: alias expansion (the "billion laughs") is capped by
//! serde_yaml's repetition limit and by a budget on the size of the expanded value,
//! nesting by the deserializers' recursion limits, and deep flow nesting (`[[[[`, `{a: {a:`)
//! is refused before the YAML parser sees it, because its cost grows with the product of
//! depth and length.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Visitor};
use serde_json::{Map, Value};

/// One object read from a manifest file.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// 1-based index of the document in the file; the items of a `List` share it.
    pub document: usize,
    /// 1-based line of the file where the document starts.
    pub line: usize,
    /// The object, with a non-empty string `apiVersion` and `kind`.
    pub value: Value,
}

impl Manifest {
    pub fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    /// `metadata.name`, if set.
    pub fn name(&self) -> Option<&str> {
        self.value["metadata"]["name"].as_str()
    }

    /// `metadata.namespace`, if set.
    pub fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"].as_str()
    }
}

/// Why a manifest file could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// The name the file was given by, such as `pod.yaml` or `STDIN`.
    pub file: String,
    /// 1-based index of the document in the file.
    pub document: usize,
    /// 1-based line in the file: where the problem is, or where the document starts when
    /// the problem is the document as a whole.
    pub line: usize,
    /// 1-based column in the file, when the problem has a precise position.
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error parsing {}: document {}", self.file, self.document)?;
        if let Some(column) = self.column {
            write!(f, ", line {}, column {column}", self.line)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Deeper flow nesting than this is refused before parsing. Nothing real comes close, and
/// the deserializer refuses anything past 128 levels in any case.
const MAX_FLOW_DEPTH: usize = 64;

/// Reads every object in a manifest file. `file` names the file in errors (`STDIN` for
/// standard input). Text whose first non-blank character is `{` or `[` is read as a
/// stream of JSON values, anything else as YAML documents separated by `---`. Empty
/// documents are skipped, a `List` (or a typed list such as `PodList`) is replaced by
/// its items, and every object must have a non-empty string `apiVersion` and `kind`.
pub fn parse_manifests(file: &str, text: &str) -> Result<Vec<Manifest>, ManifestError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let fail = |e: DocError| ManifestError {
        file: file.to_string(),
        document: e.document,
        line: e.line,
        column: e.column,
        message: e.message,
    };
    let documents = if text.trim_start().starts_with(['{', '[']) {
        json_documents(text)
    } else {
        yaml_documents(text)
    }
    .map_err(fail)?;
    let mut out = Vec::new();
    for (document, line, value) in documents {
        expand(document, line, value, "", &mut out).map_err(|message| {
            fail(DocError {
                document,
                line,
                column: None,
                message,
            })
        })?;
    }
    Ok(out)
}

/// Converts a manifest into a typed object, such as a `Pod`.
pub fn to_typed<T: DeserializeOwned>(m: &Manifest) -> Result<T, String> {
    T::deserialize(&m.value).map_err(|e| format!("document {}: {e}", m.document))
}

struct DocError {
    document: usize,
    line: usize,
    column: Option<usize>,
    message: String,
}

/// Checks one document and appends it, or its items when it is a list.
fn expand(
    document: usize,
    line: usize,
    mut value: Value,
    context: &str,
    out: &mut Vec<Manifest>,
) -> Result<(), String> {
    check_object(&value).map_err(|m| format!("{context}{m}"))?;
    let kind = value["kind"].as_str().unwrap_or_default().to_string();
    let is_list = kind == "List" || (kind.ends_with("List") && value["items"].is_array());
    if !is_list {
        out.push(Manifest {
            document,
            line,
            value,
        });
        return Ok(());
    }
    let items = match value.get_mut("items").map(Value::take) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(format!("{context}'items' of a {kind} must be a list")),
    };
    let api_version = value["apiVersion"].clone();
    // Items of a typed list, as the API returns them, carry neither kind nor apiVersion.
    let item_kind = (kind != "List").then(|| kind.trim_end_matches("List").to_string());
    for (i, mut item) in items.into_iter().enumerate() {
        if let (Some(item_kind), Some(obj)) = (&item_kind, item.as_object_mut()) {
            obj.entry("kind")
                .or_insert_with(|| Value::String(item_kind.clone()));
            obj.entry("apiVersion")
                .or_insert_with(|| api_version.clone());
        }
        expand(document, line, item, &format!("{context}items[{i}]: "), out)?;
    }
    Ok(())
}

fn check_object(value: &Value) -> Result<(), String> {
    let Some(obj) = value.as_object() else {
        return Err(format!(
            "expected an object with apiVersion and kind, found {}",
            type_name(value)
        ));
    };
    let mut problems = Vec::new();
    for field in ["apiVersion", "kind"] {
        match obj.get(field) {
            None | Some(Value::Null) => problems.push(format!("missing '{field}'")),
            Some(Value::String(s)) if s.is_empty() => problems.push(format!("empty '{field}'")),
            Some(Value::String(_)) => {}
            Some(other) => problems.push(format!(
                "'{field}' must be a string, found {}",
                type_name(other)
            )),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(", "))
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// 1-based line of a byte offset, counting forward from a previous answer so that a
/// whole file costs one pass.
struct LineCounter<'a> {
    text: &'a str,
    offset: usize,
    line: usize,
}

impl LineCounter<'_> {
    fn line_at(&mut self, offset: usize) -> usize {
        if offset < self.offset {
            self.offset = 0;
            self.line = 1;
        }
        self.line += self.text.as_bytes()[self.offset..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.offset = offset;
        self.line
    }
}

type Documents = Vec<(usize, usize, Value)>;

fn json_documents(text: &str) -> Result<Documents, DocError> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut lines = LineCounter {
        text,
        offset: 0,
        line: 1,
    };
    let mut out = Vec::new();
    loop {
        let at = stream.byte_offset();
        let rest = &text[at..];
        let start = at + (rest.len() - rest.trim_start().len());
        if start >= text.len() {
            return Ok(out);
        }
        let document = out.len() + 1;
        let line = lines.line_at(start);
        match stream.next() {
            None => return Ok(out),
            Some(Ok(value)) => {
                if !value.is_null() {
                    out.push((document, line, value));
                }
            }
            Some(Err(e)) => {
                let message = e.to_string();
                let (line, column, message) = if e.line() == 0 {
                    (line, None, message)
                } else {
                    let suffix = format!(" at line {} column {}", e.line(), e.column());
                    let message = message.strip_suffix(&suffix).unwrap_or(&message);
                    (e.line(), Some(e.column().max(1)), message.to_string())
                };
                return Err(DocError {
                    document,
                    line,
                    column,
                    message,
                });
            }
        }
    }
}

/// A YAML document's text as cut out of the file.
struct Segment<'a> {
    text: &'a str,
    /// Line of the file where `text` begins.
    first_line: usize,
    /// Line reported as the document's start: its `---`, or its first content line.
    start_line: usize,
    /// Holds something besides comments, blank lines and markers.
    has_content: bool,
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.starts_with(marker) && matches!(line.as_bytes().get(3), None | Some(b' ' | b'\t' | b'\r'))
}

fn has_content(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// Cuts a YAML stream into documents. A document begins at a `---` line, or at the first
/// content line after the start of the file or a `...` line; `---` and `...` count only
/// at the start of a line, where YAML reserves them. Comments and directives before a
/// `---` stay with the document that follows.
fn split_yaml<'t>(text: &'t str) -> Vec<Segment<'t>> {
    struct Open {
        start: usize,
        first_line: usize,
        start_line: Option<usize>,
        explicit: bool,
        has_content: bool,
    }
    let fresh = |start, first_line| Open {
        start,
        first_line,
        start_line: None,
        explicit: false,
        has_content: false,
    };
    let mut segments = Vec::new();
    let close = |open: &Open, end: usize, segments: &mut Vec<Segment<'t>>| {
        if open.explicit || open.has_content {
            segments.push(Segment {
                text: &text[open.start..end],
                first_line: open.first_line,
                start_line: open.start_line.unwrap_or(open.first_line),
                has_content: open.has_content,
            });
        }
    };
    let mut open = fresh(0, 1);
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let number = i + 1;
        let line_start = offset;
        offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        if is_marker(body, "---") {
            if open.explicit || open.has_content {
                close(&open, line_start, &mut segments);
                open = fresh(line_start, number);
            }
            open.explicit = true;
            open.start_line = Some(number);
            open.has_content = has_content(&body[3..]);
        } else if is_marker(body, "...") {
            close(&open, offset, &mut segments);
            open = fresh(offset, number + 1);
        } else if !open.has_content
            && (open.explicit || !body.starts_with('%'))
            && has_content(body)
        {
            open.has_content = true;
            open.start_line.get_or_insert(number);
        }
    }
    close(&open, text.len(), &mut segments);
    segments
}

fn yaml_documents(text: &str) -> Result<Documents, DocError> {
    let mut out = Vec::new();
    for (i, segment) in split_yaml(text).into_iter().enumerate() {
        let document = i + 1;
        if !segment.has_content {
            continue;
        }
        if let Some((line, column)) = flow_too_deep(segment.text, MAX_FLOW_DEPTH) {
            return Err(DocError {
                document,
                line: segment.first_line + line,
                column: Some(column),
                message: format!(
                    "flow collections ([ ] and {{ }}) are nested more than {MAX_FLOW_DEPTH} levels deep"
                ),
            });
        }
        let budget = Budget {
            remaining: Cell::new(EXPANSION_ALLOWANCE + EXPANSION_FACTOR * segment.text.len()),
        };
        let de = serde_yaml::Deserializer::from_str(segment.text);
        match ValueSeed(&budget).deserialize(de) {
            Ok(Value::Null) => {}
            Ok(value) => out.push((document, segment.start_line, value)),
            Err(e) => {
                let (line, column, message) = locate_yaml_error(&e, segment.first_line);
                return Err(DocError {
                    document,
                    line: line.unwrap_or(segment.start_line),
                    column,
                    message,
                });
            }
        }
    }
    Ok(out)
}

/// The error's line and column in the file, and its message without serde_yaml's own
/// positions, which count from the start of the document's text.
fn locate_yaml_error(
    e: &serde_yaml::Error,
    first_line: usize,
) -> (Option<usize>, Option<usize>, String) {
    let message = e.to_string();
    let Some(loc) = e.location() else {
        return (None, None, message);
    };
    let shift = first_line - 1;
    let mut out = String::with_capacity(message.len());
    let mut rest = message.as_str();
    let mut stripped = false;
    const AT: &str = " at line ";
    while let Some(idx) = rest.find(AT) {
        let after = &rest[idx + AT.len()..];
        let parsed = parse_line_column(after);
        let Some((mark_line, mark_column, len)) = parsed else {
            out.push_str(&rest[..idx + AT.len()]);
            rest = after;
            continue;
        };
        out.push_str(&rest[..idx]);
        if !stripped && mark_line == loc.line() && mark_column == loc.column() {
            // The problem's own position: reported in the error's fields instead.
            stripped = true;
        } else {
            out.push_str(&format!("{AT}{} column {mark_column}", mark_line + shift));
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    (Some(loc.line() + shift), Some(loc.column()), out)
}

/// Reads `L column C` at the start of `s`: (L, C, length read).
fn parse_line_column(s: &str) -> Option<(usize, usize, usize)> {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let n = digits(s);
    let rest = s[n..].strip_prefix(" column ")?;
    let m = digits(rest);
    if n == 0 || m == 0 {
        return None;
    }
    let line = s[..n].parse().ok()?;
    let column = rest[..m].parse().ok()?;
    Some((line, column, n + " column ".len() + m))
}

/// Finds where flow collections first nest deeper than `limit`: the 0-based line in
/// `text` and the 1-based column. It follows YAML's tokens closely enough to skip what
/// is not structure — comments, quoted scalars, block scalars, and plain scalars in block
/// context — so brackets inside strings do not count.
fn flow_too_deep(text: &str, limit: usize) -> Option<(usize, usize)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    struct BlockScalar {
        /// Least indentation of a content line.
        min_indent: usize,
        /// The indentation of its content, once known.
        indent: Option<usize>,
    }
    let mut depth = 0usize;
    let mut quote = Quote::None;
    let mut block: Option<BlockScalar> = None;
    // Inside a plain scalar within a flow collection; such scalars may span lines.
    let mut flow_plain = false;
    let is_blank = |c: Option<&u8>| matches!(c, None | Some(b' ' | b'\t'));
    let is_flow_indicator = |c: Option<&u8>| matches!(c, Some(b',' | b'[' | b']' | b'{' | b'}'));

    for (number, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw).as_bytes();
        let indent = line.iter().take_while(|&&c| c == b' ').count();
        if let Some(b) = &mut block {
            if line[indent..].iter().all(|c| c.is_ascii_whitespace()) {
                continue;
            }
            if indent >= b.indent.unwrap_or(b.min_indent) {
                b.indent.get_or_insert(indent);
                continue;
            }
            block = None;
        }
        if quote == Quote::None && depth == 0 && line.first() == Some(&b'%') {
            continue;
        }
        let mut i = 0;
        let mut token_start = true;
        // A quoted scalar or a flow collection just ended: a ':' right after it is a
        // value indicator even without a following space.
        let mut json_key = false;
        // Column of the node that a block scalar on this line would belong to.
        let mut node_column: Option<usize> = None;
        if is_marker(raw, "---") || is_marker(raw, "...") {
            i = 3;
        }
        while i < line.len() {
            let c = line[i];
            let next = line.get(i + 1);
            match quote {
                Quote::Double => {
                    match c {
                        b'\\' => i += 1,
                        b'"' => {
                            quote = Quote::None;
                            json_key = true;
                        }
                        _ => {}
                    }
                    i += 1;
                    continue;
                }
                Quote::Single => {
                    if c == b'\'' {
                        if next == Some(&b'\'') {
                            i += 1;
                        } else {
                            quote = Quote::None;
                            json_key = true;
                        }
                    }
                    i += 1;
                    continue;
                }
                Quote::None => {}
            }
            if c == b' ' || c == b'\t' {
                token_start = true;
                i += 1;
                continue;
            }
            if c == b'#' && token_start {
                flow_plain = false;
                break;
            }
            if depth > 0 {
                let was_json_key = std::mem::take(&mut json_key);
                match c {
                    b'[' | b'{' => {
                        depth += 1;
                        if depth > limit {
                            return Some((number, i + 1));
                        }
                        flow_plain = false;
                        token_start = true;
                    }
                    b']' | b'}' => {
                        depth -= 1;
                        flow_plain = false;
                        token_start = depth > 0;
                        json_key = true;
                    }
                    b',' => {
                        flow_plain = false;
                        token_start = true;
                    }
                    b':' if was_json_key || is_blank(next) || is_flow_indicator(next) => {
                        flow_plain = false;
                        token_start = true;
                    }
                    b'"' | b'\'' if token_start && !flow_plain => {
                        quote = if c == b'"' {
                            Quote::Double
                        } else {
                            Quote::Single
                        };
                    }
                    _ => {
                        if token_start {
                            flow_plain = true;
                        }
                        token_start = false;
                    }
                }
                i += 1;
                continue;
            }
            // Block context.
            let was_json_key = std::mem::take(&mut json_key);
            if c == b':' && (is_blank(next) || was_json_key) {
                token_start = true;
                i += 1;
                continue;
            }
            if !token_start {
                i += 1;
                continue;
            }
            match c {
                b'-' | b'?' if is_blank(next) => {
                    node_column = Some(i);
                    i += 1;
                }
                b'[' | b'{' => {
                    depth = 1;
                    if depth > limit {
                        return Some((number, i + 1));
                    }
                    flow_plain = false;
                    i += 1;
                }
                b'"' | b'\'' => {
                    node_column = Some(i);
                    quote = if c == b'"' {
                        Quote::Double
                    } else {
                        Quote::Single
                    };
                    token_start = false;
                    i += 1;
                }
                b'|' | b'>' => {
                    let parent = node_column;
                    let explicit = line[i + 1..]
                        .iter()
                        .take_while(|c| !c.is_ascii_whitespace())
                        .find(|c| c.is_ascii_digit())
                        .map(|d| usize::from(d - b'0'));
                    let min_indent = parent.map_or(1, |p| p + 1);
                    block = Some(BlockScalar {
                        min_indent,
                        indent: explicit.map(|d| parent.unwrap_or(0) + d),
                    });
                    break;
                }
                b'&' | b'!' | b'*' => {
                    while i < line.len() && !is_blank(line.get(i)) {
                        i += 1;
                    }
                }
                _ => {
                    // A plain scalar: runs to ": ", " #" or the end of the line.
                    node_column = Some(i);
                    while i < line.len() {
                        if line[i] == b':' && is_blank(line.get(i + 1)) {
                            break;
                        }
                        if is_blank(line.get(i)) && line.get(i + 1) == Some(&b'#') {
                            break;
                        }
                        i += 1;
                    }
                    token_start = false;
                }
            }
        }
    }
    None
}

/// Expanded values may be this much larger than their text (plus a fixed allowance)
/// before the document is refused: enough for any honest use of anchors.
const EXPANSION_FACTOR: usize = 8;
const EXPANSION_ALLOWANCE: usize = 1 << 20;

struct Budget {
    remaining: Cell<usize>,
}

impl Budget {
    fn spend<E: de::Error>(&self, amount: usize) -> Result<(), E> {
        let left = self.remaining.get();
        if amount > left {
            return Err(E::custom(
                "document is too large once its aliases are expanded",
            ));
        }
        self.remaining.set(left - amount);
        Ok(())
    }
}

/// Builds a JSON value straight from the YAML events, charging every node to the budget,
/// turning scalar keys into strings, applying `<<` merge keys and refusing duplicate keys.
#[derive(Clone, Copy)]
struct ValueSeed<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.0.spend(1)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.0.spend(1)?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.0.spend(1)?;
        Ok(Value::from(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        // Beyond 64 bits JSON numbers are floats, as they are in Kubernetes' YAML reader.
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => self.visit_f64(v as f64),
        }
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => self.visit_f64(v as f64),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.0.spend(1)?;
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{v} is not a number JSON can represent")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.0.spend(1 + v.len())?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.0.spend(1 + v.len())?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.0.spend(1)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.0.spend(1)?;
        let mut out = Map::new();
        let mut merges = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed {
            budget: self.0,
            seen: &out,
        })? {
            let value = map.next_value_seed(self)?;
            if key == "<<" {
                merges.push(value);
            } else {
                out.insert(key, value);
            }
        }
        // Keys written in the mapping win over merged ones, and earlier merged mappings
        // over later ones.
        for merge in merges {
            let sources = match merge {
                Value::Array(items) => items,
                other => vec![other],
            };
            for source in sources {
                let Value::Object(source) = source else {
                    return Err(de::Error::custom(
                        "a merge key '<<' takes a mapping or a list of mappings",
                    ));
                };
                for (k, v) in source {
                    out.entry(k).or_insert(v);
                }
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        // A value with a custom tag (`!thing value`): the tag is dropped, as Kubernetes'
        // YAML reader drops it.
        use de::VariantAccess;
        let (_, variant) = data.variant::<de::IgnoredAny>()?;
        variant.newtype_variant_seed(self)
    }
}

/// Reads a mapping key as a string, refusing repeats of keys already in the mapping.
struct KeySeed<'b> {
    budget: &'b Budget,
    seen: &'b Map<String, Value>,
}

impl KeySeed<'_> {
    fn accept<E: de::Error>(&self, key: String) -> Result<String, E> {
        self.budget.spend(1 + key.len())?;
        if self.seen.contains_key(&key) {
            return Err(E::custom(format!("duplicate key {key:?}")));
        }
        Ok(key)
    }
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean as a mapping key")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        self.accept(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        self.accept(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        self.accept(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        self.accept(v.to_string())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        self.accept(v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        self.accept("null".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, Instant};

    fn parse(text: &str) -> Vec<Manifest> {
        parse_manifests("test.yaml", text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(text: &str) -> ManifestError {
        match parse_manifests("pod.yaml", text) {
            Ok(m) => panic!("expected an error, got {m:?}"),
            Err(e) => e,
        }
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: nginx\n";

    #[test]
    fn single_yaml_document() {
        let m = parse(POD);
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].document, m[0].line), (1, 1));
        assert_eq!(m[0].kind(), "Pod");
        assert_eq!(m[0].api_version(), "v1");
        assert_eq!(m[0].name(), Some("web"));
        assert_eq!(m[0].namespace(), None);
        assert_eq!(m[0].value["spec"]["containers"][0]["image"], "nginx");
    }

    #[test]
    fn several_documents_with_their_lines() {
        let text = "# leading comment\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\n# only a comment\n---\n\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n...\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].document, m[0].line, m[0].name()), (1, 2, Some("a")));
        // Empty documents keep their numbers, so numbers match what the user counts.
        assert_eq!((m[1].document, m[1].line, m[1].name()), (4, 9, Some("b")));
    }

    #[test]
    fn documents_without_leading_marker_and_after_end_marker() {
        let text = "\n\napiVersion: v1\nkind: A\n...\napiVersion: v1\nkind: B\n--- # trailing\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].document, m[0].line, m[0].kind()), (1, 3, "A"));
        assert_eq!((m[1].document, m[1].line, m[1].kind()), (2, 6, "B"));
    }

    #[test]
    fn marker_lines_are_only_markers_at_line_start() {
        let text = "apiVersion: v1\nkind: ConfigMap\ndata:\n  script: |\n    echo ---\n    ---not-a-marker\n  x: \"--- inside\"\n";
        let m = parse(text);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].value["data"]["script"], "echo ---\n---not-a-marker\n");
    }

    #[test]
    fn empty_input_has_no_objects() {
        assert!(parse("").is_empty());
        assert!(parse("\n# nothing\n---\n---\n").is_empty());
        assert!(parse("---\n~\n").is_empty());
        assert!(parse("  \n").is_empty());
    }

    #[test]
    fn directives_stay_with_their_document() {
        let m = parse("%YAML 1.2\n---\napiVersion: v1\nkind: A\n");
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].document, m[0].line), (1, 2));
    }

    #[test]
    fn yaml_errors_have_file_positions() {
        // The second document is broken on its own third line, line 7 of the file.
        let text =
            "apiVersion: v1\nkind: Pod\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: x: y\n";
        let e = parse_err(text);
        assert_eq!((e.document, e.line, e.column), (2, 7, Some(10)));
        assert_eq!(e.message, "mapping values are not allowed in this context");
        assert_eq!(
            e.to_string(),
            "error parsing pod.yaml: document 2, line 7, column 10: mapping values are not allowed in this context"
        );
    }

    #[test]
    fn yaml_error_context_positions_are_shifted_too() {
        let text = "apiVersion: v1\nkind: A\n---\napiVersion: v1\nkind: B\ndata: [1, 2\n---\napiVersion: v1\nkind: C\n";
        let e = parse_err(text);
        assert_eq!(e.document, 2);
        assert_eq!(e.line, 7);
        assert_eq!(
            e.message,
            "did not find expected ',' or ']', while parsing a flow sequence at line 6 column 7"
        );
    }

    #[test]
    fn bad_indentation_is_reported_where_it_is() {
        let text = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n   image: b\n";
        let e = parse_err(text);
        assert_eq!((e.document, e.line), (1, 6));
        assert!(e.column.is_some());
    }

    #[test]
    fn documents_must_have_api_version_and_kind() {
        let e = parse_err("apiVersion: v1\nmetadata: {name: x}\n");
        assert_eq!(
            e.to_string(),
            "error parsing pod.yaml: document 1: missing 'kind'"
        );
        let e = parse_err("apiVersion: v1\nkind: Pod\n---\n\n\nmetadata: {}\n");
        assert_eq!((e.document, e.line, e.column), (2, 3, None));
        assert_eq!(e.message, "missing 'apiVersion', missing 'kind'");
        let e = parse_err("apiVersion: v1\nkind: 3\n");
        assert_eq!(e.message, "'kind' must be a string, found a number");
        let e = parse_err("apiVersion: ''\nkind: Pod\n");
        assert_eq!(e.message, "empty 'apiVersion'");
        let e = parse_err("- a\n- b\n");
        assert_eq!(
            e.to_string(),
            "error parsing pod.yaml: document 1: expected an object with apiVersion and kind, found a list"
        );
        let e = parse_err("just a string\n");
        assert!(e.message.ends_with("found a string"));
    }

    #[test]
    fn lists_expand_to_their_items() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: first}\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: b}\n";
        let m = parse(text);
        let names: Vec<_> = m
            .iter()
            .map(|m| (m.document, m.line, m.kind(), m.name().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                (1, 1, "Namespace", "first"),
                (2, 4, "Namespace", "a"),
                (2, 4, "Pod", "b")
            ]
        );
        assert!(parse("apiVersion: v1\nkind: List\nitems: []\n").is_empty());
        assert!(parse("apiVersion: v1\nkind: List\n").is_empty());
        let e = parse_err(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: A\n- apiVersion: v1\n",
        );
        assert_eq!(e.message, "items[1]: missing 'kind'");
        let e = parse_err("apiVersion: v1\nkind: List\nitems: 3\n");
        assert_eq!(e.message, "'items' of a List must be a list");
    }

    #[test]
    fn typed_lists_fill_in_item_kinds() {
        let m = parse(
            r#"{"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [{"metadata": {"name": "a"}}]}"#,
        );
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].kind(), m[0].api_version(), m[0].name()),
            ("Pod", "v1", Some("a"))
        );
    }

    #[test]
    fn json_documents_and_errors() {
        let text = "{\"apiVersion\": \"v1\", \"kind\": \"A\"}\n\n  {\"apiVersion\": \"v1\",\n \"kind\": \"B\"}";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!((m[1].document, m[1].line, m[1].kind()), (2, 3, "B"));

        let e = parse_err(
            "{\"apiVersion\": \"v1\", \"kind\": \"A\"}\n{\"apiVersion\": \"v1\",\n  \"kind\" \"B\"}\n",
        );
        assert_eq!((e.document, e.line, e.column), (2, 3, Some(10)));
        assert_eq!(
            e.to_string(),
            "error parsing pod.yaml: document 2, line 3, column 10: expected `:`"
        );
        let e = parse_err("{\"kind\": \"A\"}");
        assert_eq!(e.message, "missing 'apiVersion'");
        let e = parse_err("[1, 2]");
        assert!(e.message.ends_with("found a list"));
    }

    #[test]
    fn yaml_scalars_become_json() {
        let text = "apiVersion: v1\nkind: ConfigMap\ndata:\n  1: one\n  true: yes\n  null: x\n  f: 1.5\n  big: 123456789012345678901234567890\n  tagged: !custom {a: 1}\n  s: !!str 42\n";
        let m = parse(text);
        let data = &m[0].value["data"];
        assert_eq!(data["1"], "one");
        assert_eq!(data["true"], "yes");
        assert_eq!(data["null"], "x");
        assert_eq!(data["f"], 1.5);
        assert!(data["big"].is_f64());
        assert_eq!(data["tagged"], json!({"a": 1}));
        assert_eq!(data["s"], "42");
        let e = parse_err("apiVersion: v1\nkind: A\nx: .nan\n");
        assert!(
            e.message.contains("not a number JSON can represent"),
            "{}",
            e.message
        );
        let e = parse_err("apiVersion: v1\nkind: A\n? [a]\n: b\n");
        assert!(
            e.message.contains("invalid type: sequence"),
            "{}",
            e.message
        );
    }

    #[test]
    fn duplicate_keys_are_refused_where_they_are() {
        let e = parse_err("apiVersion: v1\nkind: A\nmetadata:\n  name: a\n  name: b\n");
        assert_eq!((e.line, e.column), (5, Some(3)));
        assert_eq!(e.message, "metadata: duplicate key \"name\"");
    }

    #[test]
    fn anchors_and_merge_keys() {
        let text = "apiVersion: v1\nkind: A\nbase: &base {x: 1, y: 2}\nother: &o {z: 3}\nmerged:\n  <<: [*base, *o]\n  y: 20\nalias: *base\n";
        let m = parse(text);
        assert_eq!(m[0].value["merged"], json!({"x": 1, "y": 20, "z": 3}));
        assert_eq!(m[0].value["alias"], json!({"x": 1, "y": 2}));
        let e = parse_err("apiVersion: v1\nkind: A\nm:\n  <<: 3\n");
        assert!(e.message.contains("merge key"), "{}", e.message);
    }

    fn assert_fast_error(text: &str) -> ManifestError {
        let start = Instant::now();
        let result = parse_manifests("bomb.yaml", text);
        let took = start.elapsed();
        assert!(took < Duration::from_millis(500), "took {took:?}");
        result.expect_err("hostile input must be refused")
    }

    #[test]
    fn billion_laughs_fails_fast() {
        let mut text = String::from(
            "apiVersion: v1\nkind: ConfigMap\na0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            let refs = [prev.as_str(); 10].join(",");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let e = assert_fast_error(&text);
        assert_eq!(e.document, 1);
    }

    #[test]
    fn large_scalar_aliased_many_times_fails_on_the_budget() {
        let big = "x".repeat(200_000);
        let mut text = format!("apiVersion: v1\nkind: A\nb: &b \"{big}\"\nc: &c [");
        text.push_str(&vec!["*b"; 60].join(","));
        text.push_str("]\nd: [");
        text.push_str(&vec!["*c"; 60].join(","));
        text.push_str("]\n");
        let e = assert_fast_error(&text);
        assert!(
            e.message
                .contains("too large once its aliases are expanded"),
            "{}",
            e.message
        );
    }

    #[test]
    fn deep_nesting_fails_fast() {
        let e = assert_fast_error(&format!(
            "apiVersion: v1\nkind: A\nx: {}",
            "[".repeat(100_000)
        ));
        assert_eq!(
            (e.document, e.line, e.column),
            (1, 3, Some(4 + MAX_FLOW_DEPTH))
        );
        assert!(
            e.message.contains("nested more than 64 levels deep"),
            "{}",
            e.message
        );
        assert_fast_error(&format!("x: {}", "{a: ".repeat(100_000)));
        assert_fast_error(&format!("x: {}", "[a: ".repeat(100_000)));
        assert_fast_error(&format!(
            "- {}1{}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        ));
        // JSON goes through serde_json, whose recursion limit stops it.
        let e = assert_fast_error(&"[".repeat(100_000));
        assert!(
            e.message.contains("recursion limit exceeded"),
            "{}",
            e.message
        );
        let e = assert_fast_error(&format!("{}{}", "{\"a\":".repeat(100_000), "1"));
        assert!(
            e.message.contains("recursion limit exceeded"),
            "{}",
            e.message
        );
        // Deep block nesting is bounded by the deserializer's recursion limit.
        let mut block = String::new();
        for i in 0..1000 {
            block.push_str(&" ".repeat(i));
            block.push_str("a:\n");
        }
        let e = assert_fast_error(&block);
        assert!(
            e.message.contains("recursion limit exceeded"),
            "{}",
            e.message
        );
    }

    #[test]
    fn brackets_in_strings_do_not_count_as_nesting() {
        let many = "[{".repeat(200);
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\ndata:\n  block: |\n    {many}\n    \"unbalanced\n  folded: >-\n    {many}\n  quoted: \"{many}\"\n  single: '{many} it''s'\n  plain: a{many}\n  # comment {many}\n  json: {{\"k\": \"{many}\", \"l\": ['{many}']}}\n"
        );
        let m = parse(&text);
        assert_eq!(m[0].value["data"]["quoted"], many.as_str());
        assert_eq!(m[0].value["data"]["json"]["l"][0], many.as_str());
        assert_eq!(m[0].value["data"]["plain"], format!("a{many}"));
        // Real nesting that stays under the limit is fine.
        let nested = format!(
            "apiVersion: v1\nkind: A\nx: {}1{}\n",
            "[".repeat(60),
            "]".repeat(60)
        );
        assert_eq!(parse(&nested).len(), 1);
    }

    #[test]
    fn flow_depth_scanner_follows_tokens() {
        assert_eq!(flow_too_deep("a: [[[", 2), Some((0, 6)));
        assert_eq!(flow_too_deep("a: \"[[[\"", 2), None);
        assert_eq!(flow_too_deep("a: '[[[''[['", 2), None);
        assert_eq!(flow_too_deep("a: b[[[", 2), None);
        assert_eq!(flow_too_deep("a: |\n  [[[\nb: [[[", 2), Some((2, 6)));
        assert_eq!(flow_too_deep("- a: |2\n    [[[\n     [[[\n", 2), None);
        assert_eq!(flow_too_deep("- a: |2\n    [[[\nb: [[[", 2), Some((2, 6)));
        assert_eq!(flow_too_deep("a: [b, \"]]\", [[", 2), Some((0, 15)));
        assert_eq!(flow_too_deep("a: [\"k\":\"]]\", [[", 2), Some((0, 16)));
        // A quote inside a plain scalar that continues onto the next line starts nothing.
        assert_eq!(flow_too_deep("a: [b\n\"[[", 2), Some((1, 3)));
        assert_eq!(flow_too_deep("a: [ # ]]]\n [[", 2), Some((1, 3)));
        assert_eq!(flow_too_deep("a: \"x\n[[[\"\nb: [", 2), None);
    }

    #[test]
    fn typed_conversion() {
        use k8s_openapi::api::core::v1::Pod;
        let m = parse(POD);
        let pod: Pod = to_typed(&m[0]).unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("web"));
        assert_eq!(
            pod.spec.unwrap().containers[0].image.as_deref(),
            Some("nginx")
        );
        let bad = parse("apiVersion: v1\nkind: Pod\nspec: 3\n");
        let err = to_typed::<Pod>(&bad[0]).unwrap_err();
        assert!(err.starts_with("document 1: invalid type"), "{err}");
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        assert_eq!(parse("\u{feff}apiVersion: v1\nkind: A\n").len(), 1);
    }
}
