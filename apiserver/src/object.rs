//! Small accessors over objects held as JSON values. The registry keeps objects as
//! `serde_json::Value` so one code path serves every resource; the typed view lives in
//! the strategies.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// `metadata`, created if missing (or not an object).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let map = obj.as_object_mut().expect("object");
    let entry = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().expect("metadata object")
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj)?.get(field)?.as_str()
}

pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

pub fn namespace(obj: &Value) -> &str {
    meta_str(obj, "namespace").unwrap_or("")
}

pub fn labels(obj: &Value) -> BTreeMap<String, String> {
    string_map(meta(obj).and_then(|m| m.get("labels")))
}

pub fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

pub fn set_resource_version(obj: &mut Value, rv: i64) {
    meta_mut(obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
}

/// The value at a dotted path such as `spec.nodeName`.
pub fn path<'a>(obj: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(obj, |v, part| v.get(part))
}

/// A field's value as field selectors see it: strings as they are, booleans and numbers
/// printed, missing fields as the empty string.
pub fn path_string(obj: &Value, dotted: &str) -> String {
    match path(obj, dotted) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// Kubernetes' RFC 3339 timestamps have whole seconds.
pub fn now_rfc3339() -> String {
    format_time(jiff::Timestamp::now())
}

pub fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

/// Removes the fields the store never keeps: `resourceVersion` comes from the store's
/// revision when the object is read.
pub fn strip_for_storage(obj: &mut Value) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("selfLink");
    }
}

/// Paths of fields present in `input` but absent from `normalized` (the same object after
/// a round trip through its typed form): the fields the server does not know.
pub fn unknown_fields(input: &Value, normalized: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_unknown(input, normalized, "", &mut out);
    out
}

fn walk_unknown(input: &Value, normalized: &Value, prefix: &str, out: &mut Vec<String>) {
    match (input, normalized) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match b.get(k) {
                    Some(nv) => walk_unknown(v, nv, &p, out),
                    None if v.is_null() => {}
                    // Typed objects drop empty optional collections; they are not unknown.
                    None if is_empty_collection(v) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (v, nv)) in a.iter().zip(b.iter()).enumerate() {
                walk_unknown(v, nv, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty_collection(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_found_with_their_paths() {
        let input = json!({"spec": {"containers": [{"name": "a", "imagee": "x"}], "foo": 1},
                           "metadata": {"name": "p", "labels": {}}});
        let normalized = json!({"spec": {"containers": [{"name": "a"}]},
                                "metadata": {"name": "p"}});
        assert_eq!(
            unknown_fields(&input, &normalized),
            vec!["spec.containers[0].imagee", "spec.foo"]
        );
    }

    #[test]
    fn path_string_reads_nested_fields() {
        let pod = json!({"spec": {"nodeName": "n1", "hostNetwork": true}});
        assert_eq!(path_string(&pod, "spec.nodeName"), "n1");
        assert_eq!(path_string(&pod, "spec.hostNetwork"), "true");
        assert_eq!(path_string(&pod, "status.phase"), "");
    }
}
