//! `kubectl apply -f`: creates what is missing and brings what exists in line with the
//! file. Like kubectl's client-side apply, the applied file is kept in the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation, so that a field removed
//! from the file is removed from the object; the change is sent as a JSON merge patch
//! holding only what differs, and nothing is sent when nothing differs.

use minik8s_api::resource::ResourceInfo;
use minik8s_client::{Patch, PostParams};
use serde_json::{Map, Value, json};

use crate::create::{WriteArgs, api_for, for_each_object, report};
use crate::error::{Error, Result};
use crate::manifests::SourcedObject;
use crate::output::Format;
use crate::resources::kind_prefix;
use crate::session::{Io, Session};

pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub type ApplyArgs = WriteArgs;

pub async fn run(args: ApplyArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    for_each_object(&args, "apply", session, io, apply_one).await
}

async fn apply_one(
    object: &SourcedObject,
    params: &PostParams,
    format: Option<Format>,
    session: &mut Session,
    io: &mut Io<'_>,
) -> Result<()> {
    let resource = object.resource()?;
    let api = api_for(object, resource, session)?;
    let name = object.name();
    let source = |action: &'static str| {
        let source_name = object.source.clone();
        move |error| Error::FromSource {
            action,
            source_name,
            error,
        }
    };
    if name.is_empty() {
        return Err(Error::msg(format!(
            "error when retrieving current configuration of:\nResource: {:?}, Name: \"\", Namespace: {:?}\nfrom server for: {:?}: resource name may not be empty",
            resource.plural,
            api.namespace().unwrap_or_default(),
            object.source
        )));
    }
    let desired = desired_object(&object.manifest.value, resource, api.namespace());
    let Some(live) = api
        .get_opt(name)
        .await
        .map_err(source("retrieving current configuration of"))?
    else {
        let created = api
            .create_with(&desired, params)
            .await
            .map_err(source("creating"))?;
        return report(&created, resource, "created", format, io);
    };
    let previous = live["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .and_then(|s| serde_json::from_str::<Value>(s).ok());
    if previous.is_none() {
        writeln!(
            io.err,
            "Warning: resource {}/{name} is missing the {LAST_APPLIED} annotation which is required by kubectl apply. kubectl apply should only be used on resources created declaratively by either kubectl create --save-config or kubectl apply. The missing annotation will be patched automatically.",
            resource.plural
        )?;
    }
    let Some(patch) = merge_patch(previous.as_ref(), &desired, &live) else {
        return report(&live, resource, "unchanged", format, io);
    };
    let patched = api
        .patch_with(name, &Patch::Merge(patch), params)
        .await
        .map_err(source("patching"))?;
    let changed = patched["metadata"]["resourceVersion"] != live["metadata"]["resourceVersion"];
    let operation = if changed { "configured" } else { "unchanged" };
    if format.is_none() {
        writeln!(io.out, "{}/{name} {operation}", kind_prefix(resource))?;
        return Ok(());
    }
    report(&patched, resource, operation, format, io)
}

/// The object as applied: the file's object, in its namespace, carrying itself (without
/// this annotation) in the last-applied annotation, as kubectl writes it.
fn desired_object(manifest: &Value, resource: &ResourceInfo, namespace: Option<&str>) -> Value {
    let mut applied = manifest.clone();
    let meta = applied
        .as_object_mut()
        .map(|o| o.entry("metadata").or_insert_with(|| json!({})));
    if let Some(Value::Object(meta)) = meta {
        if resource.namespaced
            && let Some(ns) = namespace
        {
            meta.insert("namespace".into(), json!(ns));
        }
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Value::Object(a) = annotations {
            a.remove(LAST_APPLIED);
        } else {
            *annotations = json!({});
        }
    }
    let mut text = serde_json::to_string(&applied).unwrap_or_default();
    text.push('\n');
    let mut desired = applied;
    desired["metadata"]["annotations"][LAST_APPLIED] = Value::String(text);
    desired
}

/// The JSON merge patch that makes `live` what `desired` says, and removes the fields
/// that `previous` (the last applied file) had and `desired` no longer has. `None` when
/// nothing would change.
pub fn merge_patch(previous: Option<&Value>, desired: &Value, live: &Value) -> Option<Value> {
    let (Value::Object(desired), Value::Object(live)) = (desired, live) else {
        return (!contains(live, desired)).then(|| desired.clone());
    };
    let empty = Map::new();
    let previous = previous.and_then(Value::as_object).unwrap_or(&empty);
    let mut patch = Map::new();
    for (key, want) in desired {
        if want.is_null() {
            if live.get(key).is_some_and(|v| !v.is_null()) {
                patch.insert(key.clone(), Value::Null);
            }
            continue;
        }
        match (want, live.get(key)) {
            (Value::Object(_), Some(have @ Value::Object(_))) => {
                if let Some(p) = merge_patch(previous.get(key), want, have) {
                    patch.insert(key.clone(), p);
                }
            }
            (_, Some(have)) if contains(have, want) => {}
            _ => {
                patch.insert(key.clone(), strip_nulls(want));
            }
        }
    }
    for key in previous.keys() {
        if !desired.contains_key(key) && live.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

/// True if everything `want` says is already in `have`: equal scalars, objects whose
/// fields are contained, lists of the same length whose items are contained (the server
/// adds defaults to list items, such as a container's `imagePullPolicy`).
fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| wv.is_null() || h.get(k).is_some_and(|hv| contains(hv, wv))),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(hv, wv)| contains(hv, wv))
        }
        (Value::Number(h), Value::Number(w)) => h.as_f64() == w.as_f64(),
        (h, w) => h == w,
    }
}

/// A merge patch cannot set a field to null; nulls in the file mean "not set".
fn strip_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minik8s_api::resource::PODS;

    fn live_pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web", "namespace": "default", "uid": "u", "resourceVersion": "5",
                            "labels": {"app": "web", "extra": "x"}},
               "spec": {"containers": [{"name": "c", "image": "nginx:1", "imagePullPolicy": "IfNotPresent"}],
                        "restartPolicy": "Always"},
               "status": {"phase": "Pending"}})
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let file = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}});
        let desired = desired_object(&file, &PODS, Some("default"));
        let mut live = live_pod();
        live["metadata"]["annotations"] = desired["metadata"]["annotations"].clone();
        let previous: Value = serde_json::from_str(
            desired["metadata"]["annotations"][LAST_APPLIED]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(merge_patch(Some(&previous), &desired, &live), None);
    }

    #[test]
    fn changes_and_removals_are_patched() {
        let previous = json!({"metadata": {"labels": {"app": "web", "old": "1"}}});
        let desired = json!({"metadata": {"name": "web", "labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}});
        let mut live = live_pod();
        live["metadata"]["labels"]["old"] = json!("1");
        let patch = merge_patch(Some(&previous), &desired, &live).unwrap();
        assert_eq!(
            patch,
            json!({"metadata": {"labels": {"old": null}},
                   "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}})
        );
    }

    #[test]
    fn last_applied_is_the_file_with_its_namespace() {
        let file = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ap"},
                          "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        let desired = desired_object(&file, &PODS, Some("default"));
        assert_eq!(
            desired["metadata"]["annotations"][LAST_APPLIED],
            "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"annotations\":{},\"name\":\"ap\",\"namespace\":\"default\"},\"spec\":{\"containers\":[{\"image\":\"nginx\",\"name\":\"c\"}]}}\n"
        );
    }
}
