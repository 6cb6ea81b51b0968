//! The three patch formats Kubernetes accepts: JSON merge patch (RFC 7386), strategic
//! merge patch (lists of named things merged by key), and JSON patch (RFC 6902).

use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Strategic,
    Json,
}

impl PatchType {
    /// The patch type of a request's `Content-Type`.
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/json-patch+json" => Some(PatchType::Json),
            _ => None,
        }
    }
}

/// Why a patch could not be applied.
#[derive(Debug, PartialEq, Eq)]
pub enum PatchError {
    /// The patch itself is malformed (400).
    Malformed(String),
    /// The patch is well formed but cannot be applied to this object (422).
    Inapplicable(String),
    /// The patch is too big, or would make the object too big (413).
    TooLarge(String),
}

/// Kubernetes' limit on the operations of one JSON patch.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;
/// What JSON patch `copy` operations may add in all: enough for any object we store.
const MAX_COPIED_BYTES: usize = 3 * 1024 * 1024;
/// Deeper results are refused before they are stored (decoding stops at 128 levels).
const MAX_DEPTH: usize = 100;

pub fn apply(kind: PatchType, target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let out = apply_unchecked(kind, target, patch)?;
    if depth(&out) > MAX_DEPTH {
        return Err(PatchError::Inapplicable(format!(
            "the patched object is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(out)
}

/// Nesting depth, without recursion (the value may be deep).
fn depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, d + 1))),
            Value::Object(m) => stack.extend(m.values().map(|c| (c, d + 1))),
            _ => {}
        }
    }
    max
}

fn apply_unchecked(kind: PatchType, target: &Value, patch: &Value) -> Result<Value, PatchError> {
    match kind {
        PatchType::Merge => {
            let mut out = target.clone();
            merge(&mut out, patch);
            Ok(out)
        }
        PatchType::Strategic => {
            let mut out = target.clone();
            strategic(&mut out, patch, "").map_err(PatchError::Inapplicable)?;
            Ok(out)
        }
        PatchType::Json => json_patch(target, patch),
    }
}

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The key that identifies list items for strategic merge, by field name, as in the
/// `patchMergeKey` tags of the core/v1 types we serve. Lists without one (container
/// statuses, taints, readiness gates, ...) are replaced whole, as in Kubernetes.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "containerStatuses"
        | "initContainerStatuses"
        | "ephemeralContainerStatuses"
        | "resourceClaims" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" | "addresses" => "type",
        "podIPs" | "hostIPs" | "hostAliases" => "ip",
        "ownerReferences" => "uid",
        _ => return None,
    })
}

/// Primitive lists that strategic merge treats as sets.
fn merges_as_set(field: &str) -> bool {
    field == "finalizers"
}

fn strategic(target: &mut Value, patch: &Value, field: &str) -> Result<(), String> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch.clone();
        if let Some(m) = replacement.as_object_mut() {
            m.remove("$patch");
        }
        *target = replacement;
        return Ok(());
    }
    if p.get("$patch").and_then(Value::as_str) == Some("delete") {
        *target = Value::Object(Map::new());
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let _ = field;
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" || k == "$patch" {
            continue;
        }
        if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(del)) = (t.get_mut(list), v) {
                items.retain(|i| !del.contains(i));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match v {
            Value::Array(items) => {
                let current = t.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                merge_list(current, items, k)?;
            }
            Value::Object(_) => {
                strategic(t.entry(k.clone()).or_insert(Value::Null), v, k)?;
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

fn merge_list(current: &mut Value, patch: &[Value], field: &str) -> Result<(), String> {
    if patch
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *current = Value::Array(
            patch
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .cloned()
                .collect(),
        );
        return Ok(());
    }
    if !current.is_array() {
        *current = Value::Array(Vec::new());
    }
    let cur = current.as_array_mut().expect("array");
    if merges_as_set(field) {
        for item in patch {
            if !cur.contains(item) {
                cur.push(item.clone());
            }
        }
        return Ok(());
    }
    let Some(mk) = merge_key(field) else {
        *cur = patch.to_vec();
        return Ok(());
    };
    for item in patch {
        // A Service's ports are keyed by `port`, a container's by `containerPort`.
        let mk = if mk == "containerPort" && item.get(mk).is_none() && item.get("port").is_some() {
            "port"
        } else {
            mk
        };
        let Some(key) = item.get(mk) else {
            return Err(format!(
                "map: {item} does not contain declared merge key: {mk}"
            ));
        };
        let pos = cur.iter().position(|c| c.get(mk) == Some(key));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                cur.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic(&mut cur[i], item, field)?,
            (None, false) => {
                let mut fresh = Value::Object(Map::new());
                strategic(&mut fresh, item, field)?;
                cur.push(fresh);
            }
        }
    }
    Ok(())
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch.as_array().ok_or_else(|| {
        PatchError::Malformed("a JSON patch must be an array of operations".to_string())
    })?;
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooLarge(format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    let mut doc = target.clone();
    let mut copied = 0usize;
    for op in ops {
        json_patch_op(&mut doc, op, &mut copied)?;
    }
    Ok(doc)
}

fn json_patch_op(doc: &mut Value, op: &Value, copied: &mut usize) -> Result<(), PatchError> {
    let malformed = |m: String| PatchError::Malformed(m);
    let name = op
        .get("op")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("JSON patch operation has no \"op\"".to_string()))?;
    let path = op
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("JSON patch operation has no \"path\"".to_string()))?;
    let value = || {
        op.get("value")
            .cloned()
            .ok_or_else(|| malformed(format!("JSON patch \"{name}\" at {path} has no \"value\"")))
    };
    let inapplicable = PatchError::Inapplicable;
    match name {
        "add" => add(doc, path, value()?).map_err(inapplicable)?,
        "remove" => {
            remove(doc, path).map_err(inapplicable)?;
        }
        "replace" => {
            remove(doc, path).map_err(inapplicable)?;
            add(doc, path, value()?).map_err(inapplicable)?;
        }
        "move" | "copy" => {
            let from = op
                .get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed(format!("JSON patch \"{name}\" has no \"from\"")))?;
            let v = if name == "move" {
                remove(doc, from).map_err(inapplicable)?
            } else {
                let v = doc.pointer(from).cloned().ok_or_else(|| {
                    PatchError::Inapplicable(format!("JSON patch: no value at {from}"))
                })?;
                // Copies could double the object with every operation.
                *copied += serde_json::to_vec(&v).map_or(0, |b| b.len());
                if *copied > MAX_COPIED_BYTES {
                    return Err(PatchError::TooLarge(
                        "JSON patch copies would make the object too large".to_string(),
                    ));
                }
                v
            };
            add(doc, path, v).map_err(inapplicable)?;
        }
        "test" => {
            if doc.pointer(path) != Some(&value()?) {
                return Err(PatchError::Inapplicable(format!(
                    "JSON patch test failed at {path}"
                )));
            }
        }
        other => {
            return Err(malformed(format!(
                "unknown JSON patch operation \"{other}\""
            )));
        }
    }
    Ok(())
}

fn split_pointer(path: &str) -> Result<(String, String), String> {
    let idx = path
        .rfind('/')
        .ok_or_else(|| format!("invalid JSON pointer \"{path}\""))?;
    let last = path[idx + 1..].replace("~1", "/").replace("~0", "~");
    Ok((path[..idx].to_string(), last))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    let p = doc
        .pointer_mut(&parent)
        .ok_or_else(|| format!("JSON patch: no parent at {path}"))?;
    match p {
        Value::Object(m) => {
            m.insert(last, value);
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= a.len())
                    .ok_or_else(|| format!("JSON patch: bad index in {path}"))?
            };
            a.insert(i, value);
        }
        _ => return Err(format!("JSON patch: cannot add at {path}")),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    let p = doc
        .pointer_mut(&parent)
        .ok_or_else(|| format!("JSON patch: no value at {path}"))?;
    match p {
        Value::Object(m) => m
            .remove(&last)
            .ok_or_else(|| format!("JSON patch: no value at {path}")),
        Value::Array(a) => {
            let i = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < a.len())
                .ok_or_else(|| format!("JSON patch: bad index in {path}"))?;
            Ok(a.remove(i))
        }
        _ => Err(format!("JSON patch: no value at {path}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_replaces_lists_and_deletes_nulls() {
        let t = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        let out = apply(
            PatchType::Merge,
            &t,
            &json!({"a": {"b": null, "d": 3}, "l": [3]}),
        )
        .unwrap();
        assert_eq!(out, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn strategic_patch_merges_named_lists() {
        let pod = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "PodScheduled", "status": "True"}
        ], "containerStatuses": [{"name": "a", "ready": false}]},
            "spec": {"taints": [{"key": "a"}, {"key": "b"}]}});
        let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "b", "ready": true}],
            "$setElementOrder/conditions": [{"type": "Ready"}]}, "spec": {"taints": [{"key": "b"}]}});
        let out = apply(PatchType::Strategic, &pod, &patch).unwrap();
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}])
        );
        assert_eq!(
            out["status"]["containerStatuses"].as_array().unwrap().len(),
            2
        );
    }

    #[test]
    fn service_ports_merge_by_port() {
        let svc = json!({"spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
            {"name": "m", "port": 9090, "protocol": "TCP"}
        ]}});
        let patch = json!({"spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 9090}],
            "ports": [{"port": 80, "targetPort": 9000}]}});
        let out = apply(PatchType::Strategic, &svc, &patch).unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([{"name": "http", "port": 80, "targetPort": 9000, "protocol": "TCP"},
                   {"name": "m", "port": 9090, "protocol": "TCP"}])
        );
    }

    #[test]
    fn strategic_patch_deletes_and_replaces() {
        let t = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]},
                       "metadata": {"finalizers": ["f1"]}});
        let patch = json!({"spec": {"containers": [{"name": "b", "$patch": "delete"}]},
                           "metadata": {"finalizers": ["f2"]}});
        let out = apply(PatchType::Strategic, &t, &patch).unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a", "image": "x"}])
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["f1", "f2"]));
        let err = apply(
            PatchType::Strategic,
            &t,
            &json!({"spec": {"containers": [{"image": "y"}]}}),
        );
        assert!(matches!(err, Err(PatchError::Inapplicable(m)) if m.contains("merge key")));
    }

    #[test]
    fn json_patch_operations() {
        let t = json!({"metadata": {"labels": {"a": "1"}}, "l": [1, 3]});
        let p = json!([
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "add", "path": "/l/1", "value": 2},
            {"op": "test", "path": "/l/2", "value": 3},
            {"op": "replace", "path": "/l/0", "value": 0}
        ]);
        let out = apply(PatchType::Json, &t, &p).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2"}}, "l": [0, 2, 3]})
        );
        assert!(
            apply(
                PatchType::Json,
                &t,
                &json!([{"op": "test", "path": "/l/0", "value": 9}])
            )
            .is_err()
        );
    }
}
