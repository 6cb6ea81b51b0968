//! Strings written the way Go's `encoding/json` writes them, so that bytes we print or hash
//! are the bytes the Kubernetes tools produce: `<`, `>`, `&`, U+2028 and U+2029 as `\uXXXX`
//! (HTML-safe), `\b` `\f` `\n` `\r` `\t` short (Go 1.22 and later), other control
//! characters as `\u00XX`.

/// Appends `s` as a JSON string, quotes included.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` as a JSON string, quotes included.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_go_encoding_json() {
        assert_eq!(string("plain"), r#""plain""#);
        assert_eq!(string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(string("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(string("\u{1}\u{1f}"), r#""\u0001\u001f""#);
        assert_eq!(string("<a & b>"), r#""\u003ca \u0026 b\u003e""#);
        assert_eq!(string("\u{2028}\u{2029}"), r#""\u2028\u2029""#);
        assert_eq!(string("é ☃ \u{7f}"), "\"é ☃ \u{7f}\"");
    }
}
