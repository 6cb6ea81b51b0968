//! `-o json|yaml|name|wide`: the output formats, written the way kubectl writes them.
//! JSON is Go's `json.MarshalIndent` with four spaces (keys sorted, `<`, `>` and `&`
//! escaped), YAML is go-yaml's (see [`crate::yaml`]), names are `kind/name`.

use minik8s_api::resource::ResourceInfo;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::resources::kind_prefix;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Wide,
    Json,
    Yaml,
    Name,
}

impl Format {
    pub fn parse(output: Option<&str>) -> Result<Format> {
        match output.unwrap_or("") {
            "" => Ok(Format::Table),
            "wide" => Ok(Format::Wide),
            "json" => Ok(Format::Json),
            "yaml" => Ok(Format::Yaml),
            "name" => Ok(Format::Name),
            other => Err(Error::msg(format!(
                "unable to match a printer suitable for the output format {other:?}, allowed formats are: json,name,wide,yaml"
            ))),
        }
    }

    pub fn is_table(self) -> bool {
        matches!(self, Format::Table | Format::Wide)
    }
}

/// The `List` kubectl prints around several objects.
pub fn list_of(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
}

/// Fills in the `apiVersion` and `kind` that list items come without.
pub fn with_type(mut object: Value, resource: &ResourceInfo) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| json!(resource.api_version()));
        map.entry("kind").or_insert_with(|| json!(resource.kind));
    }
    object
}

/// `pod/web`.
pub fn name_of(object: &Value, resource: &ResourceInfo) -> String {
    format!(
        "{}/{}",
        kind_prefix(resource),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// One object (or list) as JSON or YAML, ending with a newline.
pub fn render(value: &Value, format: Format) -> String {
    match format {
        Format::Yaml => crate::yaml::to_yaml(value),
        _ => to_json(value),
    }
}

/// Go's `json.MarshalIndent(v, "", "    ")` plus a newline.
pub fn to_json(value: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, value, 0);
    out.push('\n');
    out
}

fn write_json(out: &mut String, value: &Value, depth: usize) {
    let indent = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("    ");
        }
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() => out.push_str(&go_json_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => minik8s_api::gojson::write_string(out, s),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                write_json(out, item, depth + 1);
            }
            indent(out, depth);
            out.push(']');
        }
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Object(map) => {
            out.push('{');
            // serde_json's map is ordered by key, as Go orders map keys.
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                minik8s_api::gojson::write_string(out, key);
                out.push_str(": ");
                write_json(out, item, depth + 1);
            }
            indent(out, depth);
            out.push('}');
        }
    }
}

/// Go's JSON float: plain decimals, exponent form below 1e-6 and from 1e21.
fn go_json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let sci = format!("{f:e}");
        let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{}", exp.abs())
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_go_json() {
        let v = json!({"b": [1, {"x": "<none> & more"}], "a": {}, "c": [], "f": 0.5});
        assert_eq!(
            to_json(&v),
            "{\n    \"a\": {},\n    \"b\": [\n        1,\n        {\n            \"x\": \"\\u003cnone\\u003e \\u0026 more\"\n        }\n    ],\n    \"c\": [],\n    \"f\": 0.5\n}\n"
        );
        assert_eq!(go_json_float(1e21), "1e+21");
        assert_eq!(go_json_float(1.0), "1");
    }

    #[test]
    fn formats() {
        assert_eq!(Format::parse(Some("wide")).unwrap(), Format::Wide);
        let e = Format::parse(Some("xml")).unwrap_err().render();
        assert!(e.contains("output format \"xml\""), "{e}");
    }
}
