//! YAML output as kubectl writes it. kubectl turns an object into JSON and then into YAML
//! with go-yaml, so its output has go-yaml's habits: keys in go-yaml's "natural" order,
//! sequences in a mapping not indented, strings that would read as something else (a
//! number, a boolean, a timestamp) double-quoted, strings YAML cannot take plain
//! single-quoted, multi-line strings as `|` blocks, and long strings folded at a space
//! past column 80. This emitter follows those rules for JSON values, so `-o yaml`
//! prints what the real kubectl prints for the same object.

use serde_json::{Map, Value};

mod scalar;

use scalar::{analyze, is_break, is_printable, resolves_to_non_string};
pub use scalar::{go_float_g, natural_cmp};

/// The column after which go-yaml folds long scalars at a space.
const BEST_WIDTH: usize = 80;
const INDENT: usize = 2;

/// A value as YAML, ending with a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
    };
    match value {
        Value::Object(map) if !map.is_empty() => e.mapping(map, 0, true),
        Value::Array(items) if !items.is_empty() => e.sequence(items, 0, true),
        scalar => e.inline(scalar, INDENT),
    }
    e.out.push('\n');
    e.out
}

struct Emitter {
    out: String,
    /// Characters written on the current line.
    column: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

impl Emitter {
    fn write(&mut self, s: &str) {
        match s.rfind('\n') {
            Some(i) => self.column = s[i + 1..].chars().count(),
            None => self.column += s.chars().count(),
        }
        self.out.push_str(s);
    }

    fn push(&mut self, c: char) {
        if c == '\n' {
            self.column = 0;
        } else {
            self.column += 1;
        }
        self.out.push(c);
    }

    /// A new line, indented to `indent`.
    fn newline(&mut self, indent: usize) {
        self.push('\n');
        for _ in 0..indent {
            self.push(' ');
        }
    }

    /// The entries of a non-empty mapping whose keys sit at `indent`. With `inline`,
    /// the first key goes where the cursor is (after `- `, or at the start of output).
    fn mapping(&mut self, map: &Map<String, Value>, indent: usize, inline: bool) {
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort_by(|a, b| natural_cmp(a, b));
        for (i, key) in keys.into_iter().enumerate() {
            if i > 0 || !inline {
                self.newline(indent);
            }
            self.string(key, indent + INDENT, true);
            self.push(':');
            match &map[key] {
                Value::Object(m) if !m.is_empty() => self.mapping(m, indent + INDENT, false),
                // A sequence in a mapping is not indented.
                Value::Array(items) if !items.is_empty() => self.sequence(items, indent, false),
                value => {
                    self.push(' ');
                    self.inline(value, indent + INDENT);
                }
            }
        }
    }

    /// The items of a non-empty sequence whose dashes sit at `indent`.
    fn sequence(&mut self, items: &[Value], indent: usize, inline: bool) {
        for (i, item) in items.iter().enumerate() {
            if i > 0 || !inline {
                self.newline(indent);
            }
            self.write("- ");
            match item {
                Value::Object(m) if !m.is_empty() => self.mapping(m, indent + INDENT, true),
                Value::Array(inner) if !inner.is_empty() => {
                    self.sequence(inner, indent + INDENT, true)
                }
                value => self.inline(value, indent + INDENT),
            }
        }
    }

    /// A scalar or an empty collection where the cursor is; `indent` is where folded
    /// lines and block lines go.
    fn inline(&mut self, value: &Value, indent: usize) {
        match value {
            Value::Null => self.write("null"),
            Value::Bool(b) => self.write(if *b { "true" } else { "false" }),
            Value::Number(n) => {
                let text = match n.as_f64() {
                    Some(f) if !n.is_i64() && !n.is_u64() => go_float_g(f),
                    _ => n.to_string(),
                };
                self.write(&text);
            }
            Value::String(s) => self.string(s, indent, false),
            Value::Array(_) => self.write("[]"),
            Value::Object(_) => self.write("{}"),
        }
    }

    /// A string in the style go-yaml picks; keys never fold.
    fn string(&mut self, s: &str, indent: usize, key: bool) {
        let a = analyze(s);
        let mut style = if s.contains('\n') {
            Style::Literal
        } else if resolves_to_non_string(s) {
            Style::Double
        } else {
            Style::Plain
        };
        if style == Style::Plain && (!a.block_plain_allowed || (s.is_empty() && key)) {
            style = Style::Single;
        }
        if style == Style::Single && !a.single_quoted_allowed {
            style = Style::Double;
        }
        if style == Style::Literal && (!a.block_allowed || key) {
            style = Style::Double;
        }
        let allow_breaks = !key;
        match style {
            Style::Plain => self.plain(s, indent, allow_breaks),
            Style::Single => self.single_quoted(s, indent, allow_breaks),
            Style::Double => self.double_quoted(s, indent, allow_breaks),
            Style::Literal => self.literal(s, indent),
        }
    }

    fn plain(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.newline(indent);
                } else {
                    self.push(c);
                }
                spaces = true;
            } else {
                self.push(c);
                spaces = false;
            }
        }
    }

    fn single_quoted(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        self.push('\'');
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i + 1 < chars.len()
                    && chars[i + 1] != ' '
                {
                    self.newline(indent);
                } else {
                    self.push(c);
                }
                spaces = true;
            } else {
                if c == '\'' {
                    self.push('\'');
                }
                self.push(c);
                spaces = false;
            }
        }
        self.push('\'');
    }

    fn double_quoted(&mut self, s: &str, indent: usize, allow_breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        self.push('"');
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{feff}' || is_break(c) || c == '"' || c == '\\' {
                self.push('\\');
                match c {
                    '\0' => self.push('0'),
                    '\u{7}' => self.push('a'),
                    '\u{8}' => self.push('b'),
                    '\t' => self.push('t'),
                    '\n' => self.push('n'),
                    '\u{b}' => self.push('v'),
                    '\u{c}' => self.push('f'),
                    '\r' => self.push('r'),
                    '\u{1b}' => self.push('e'),
                    '"' => self.push('"'),
                    '\\' => self.push('\\'),
                    '\u{85}' => self.push('N'),
                    '\u{a0}' => self.push('_'),
                    '\u{2028}' => self.push('L'),
                    '\u{2029}' => self.push('P'),
                    other => {
                        let v = other as u32;
                        let text = if v <= 0xff {
                            format!("x{v:02X}")
                        } else if v <= 0xffff {
                            format!("u{v:04X}")
                        } else {
                            format!("U{v:08X}")
                        };
                        self.write(&text);
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i + 1 < chars.len()
                {
                    self.newline(indent);
                    if chars[i + 1] == ' ' {
                        self.push('\\');
                    }
                } else {
                    self.push(c);
                }
                spaces = true;
            } else {
                self.push(c);
                spaces = false;
            }
        }
        self.push('"');
    }

    fn literal(&mut self, s: &str, indent: usize) {
        self.push('|');
        if s.starts_with([' ', '\n']) {
            self.write(&INDENT.to_string());
        }
        let trailing = s.len() - s.trim_end_matches('\n').len();
        if trailing == 0 {
            self.push('-');
        } else if trailing > 1 || s == "\n" {
            self.push('+');
        }
        let body = s.strip_suffix('\n').unwrap_or(s);
        for line in body.split('\n') {
            if line.is_empty() {
                self.push('\n');
            } else {
                self.newline(indent);
                self.write(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_print_like_kubectl() {
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "creationTimestamp": "2024-01-02T03:04:05Z",
                         "resourceVersion": "42", "labels": {"app": "web"}, "annotations": {}},
            "spec": {"containers": [{"name": "c", "image": "nginx", "args": ["--port", "80"],
                                     "ports": [{"containerPort": 80}]}],
                     "securityContext": {}, "tolerations": []},
            "status": {"phase": "Pending", "conditions": [{"status": "False", "lastProbeTime": null}]}
        });
        assert_eq!(
            to_yaml(&pod),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  annotations: {}\n  creationTimestamp: \"2024-01-02T03:04:05Z\"\n  labels:\n    app: web\n  name: web\n  resourceVersion: \"42\"\nspec:\n  containers:\n  - args:\n    - --port\n    - \"80\"\n    image: nginx\n    name: c\n    ports:\n    - containerPort: 80\n  securityContext: {}\n  tolerations: []\nstatus:\n  conditions:\n  - lastProbeTime: null\n    status: \"False\"\n  phase: Pending\n"
        );
    }

    #[test]
    fn quoting_follows_go_yaml() {
        let cases = [
            ("plain", "plain"),
            ("", "\"\""),
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("0.25", "\"0.25\""),
            ("1e3", "\"1e3\""),
            ("0x1F", "\"0x1F\""),
            ("08", "\"08\""),
            ("1:20", "\"1:20\""),
            ("2024-01-02", "\"2024-01-02\""),
            ("64Mi", "64Mi"),
            ("500m", "500m"),
            ("a: b", "'a: b'"),
            ("didn't", "didn't"),
            ("'q'", "'''q'''"),
            ("*star", "'*star'"),
            ("- x", "'- x'"),
            ("-x", "-x"),
            (" lead", "' lead'"),
            ("a #b", "'a #b'"),
            ("a#b", "a#b"),
            ("tab\there", "\"tab\\there\""),
            ("<none>", "<none>"),
            ("docker://abc", "docker://abc"),
            ("[x]", "'[x]'"),
            ("x: [y]", "'x: [y]'"),
        ];
        for (s, want) in cases {
            let got = to_yaml(&json!({ "k": s }));
            assert_eq!(got, format!("k: {want}\n"), "{s:?}");
        }
    }

    #[test]
    fn multi_line_strings_are_blocks() {
        assert_eq!(to_yaml(&json!({"k": "a\nb"})), "k: |-\n  a\n  b\n");
        assert_eq!(to_yaml(&json!({"k": "a\nb\n"})), "k: |\n  a\n  b\n");
        assert_eq!(to_yaml(&json!({"k": "a\n\nb"})), "k: |-\n  a\n\n  b\n");
        assert_eq!(
            to_yaml(&json!({"m": {"k": ["x\ny"]}})),
            "m:\n  k:\n  - |-\n    x\n    y\n"
        );
        // A trailing space before a line break cannot be a block.
        assert_eq!(to_yaml(&json!({"k": "a \nb"})), "k: \"a \\nb\"\n");
    }

    #[test]
    fn long_strings_fold_after_column_80() {
        let long = format!("{} bbb ccc", "a".repeat(90));
        assert_eq!(
            to_yaml(&json!({"meta": {"long": long}})),
            format!("meta:\n  long: {}\n    bbb ccc\n", "a".repeat(90))
        );
        let quoted = format!(
            "0/1 nodes are available: {} didn't match Pod's node affinity/selector.",
            "x".repeat(50)
        );
        let got = to_yaml(&json!({"message": format!("{quoted}: y")}));
        assert!(got.starts_with("message: '0/1 nodes"), "{got}");
        assert!(got.contains("didn''t"), "{got}");
        assert!(got.contains("\n  "), "{got}");
    }

    #[test]
    fn numbers_and_top_level_values() {
        assert_eq!(
            to_yaml(&json!({"num": 5, "f": 0.5, "big": 1e21, "n": 1})),
            "big: 1e+21\nf: 0.5\n\"n\": 1\nnum: 5\n"
        );
        assert_eq!(
            to_yaml(&json!(["a", ["b", "c"], {}])),
            "- a\n- - b\n  - c\n- {}\n"
        );
        assert_eq!(to_yaml(&json!("x")), "x\n");
    }
}
