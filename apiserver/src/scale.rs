//! The `/scale` subresource: an `autoscaling/v1` `Scale` that shows a workload's
//! `spec.replicas`, `status.replicas` and selector, and changes only `spec.replicas`.
//! The `Scale` carries its parent's `resourceVersion`, so a stale one is a conflict, as
//! in Kubernetes.

use minik8s_api::resource::ResourceInfo;
use minik8s_api::validation::FieldError;
use serde_json::{Value, json};

use crate::controllers::replicaset;
use crate::error::{ApiError, Result};
use crate::object;
use crate::patch::{self, PatchType};
use crate::registry::{FieldValidation, Registry};
use crate::strategy::Part;

/// What errors about a `Scale` name.
static SCALE: ResourceInfo = ResourceInfo {
    group: "autoscaling",
    version: "v1",
    kind: "Scale",
    plural: "scale",
    singular: "scale",
    short_names: &[],
    namespaced: true,
    has_status: false,
    has_scale: false,
    categories: &[],
};

/// Tries of a patch whose parent changed between reading and writing it.
const PATCH_RETRIES: usize = 5;

/// The `Scale` of `obj`, a workload of `resource`.
pub fn scale_of(resource: &ResourceInfo, obj: &Value) -> Value {
    let mut meta = json!({"name": object::name(obj)});
    for key in ["namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = object::meta(obj).and_then(|m| m.get(key)) {
            meta[key] = v.clone();
        }
    }
    // Zero replicas and an empty selector are left out, as Kubernetes' `omitempty` does.
    let mut spec = json!({});
    if let Some(n) = obj["spec"]["replicas"].as_i64().filter(|n| *n != 0) {
        spec["replicas"] = json!(n);
    }
    let mut status = json!({"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0)});
    if let Some(s) = replicaset::selector(resource, obj).filter(|s| !s.is_empty()) {
        status["selector"] = json!(s.to_string());
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": spec,
        "status": status,
    })
}

pub async fn get(
    registry: &Registry,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
) -> Result<Value> {
    Ok(scale_of(
        resource,
        &registry.get(resource, namespace, name).await?,
    ))
}

/// `PUT .../scale`: sets `spec.replicas` from `scale`, on the parent's version the
/// `Scale` names (any version when it names none).
pub async fn update(
    registry: &Registry,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    scale: &Value,
) -> Result<Value> {
    match scale.get("kind").and_then(Value::as_str) {
        None | Some("" | "Scale") => {}
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "the kind in the data ({other}) does not match the expected kind (Scale)"
            )));
        }
    }
    match object::meta_str(scale, "name") {
        None | Some("") => {}
        Some(n) if n == name => {}
        Some(n) => {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
    }
    let replicas = match &scale["spec"]["replicas"] {
        Value::Null => 0,
        v => v.as_i64().ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Scale in version \"v1\" cannot be handled as a Scale: spec.replicas: {v} is not an integer"
            ))
        })?,
    };
    if replicas < 0 {
        return Err(ApiError::Invalid {
            resource: &SCALE,
            name: name.to_string(),
            causes: vec![FieldError::invalid_number(
                "spec.replicas",
                replicas,
                "must be greater than or equal to 0",
            )],
        });
    }
    let mut patch = json!({"spec": {"replicas": replicas}});
    if let Some(rv) = object::meta_str(scale, "resourceVersion").filter(|rv| !rv.is_empty()) {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    let written = registry
        .patch(
            resource,
            namespace,
            name,
            PatchType::Merge,
            &patch,
            Part::Main,
            FieldValidation::Ignore,
        )
        .await?;
    Ok(scale_of(resource, &written.object))
}

/// `PATCH .../scale`: the patch applies to the current `Scale`, and the result is written
/// as by `PUT` — with the version the patch names, if it names one; otherwise with the
/// version read, trying again if the parent changed meanwhile.
pub async fn patch(
    registry: &Registry,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    patch_type: PatchType,
    body: &Value,
) -> Result<Value> {
    for _ in 0..PATCH_RETRIES {
        let current = get(registry, resource, namespace, name).await?;
        let patched = patch::apply(patch_type, &current, body).map_err(|e| match e {
            patch::PatchError::Malformed(m) => ApiError::BadRequest(m),
            patch::PatchError::Inapplicable(m) => ApiError::Unprocessable(m),
            patch::PatchError::TooLarge(m) => ApiError::TooLargeObject(m),
        })?;
        let named_version = object::meta_str(&patched, "resourceVersion")
            != object::meta_str(&current, "resourceVersion");
        match update(registry, resource, namespace, name, &patched).await {
            Err(ApiError::Conflict { .. }) if !named_version => continue,
            other => return other,
        }
    }
    Err(ApiError::conflict(resource, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use minik8s_api::resource::{DEPLOYMENTS, REPLICATION_CONTROLLERS};

    #[test]
    fn scale_shows_replicas_and_the_selector_as_a_string() {
        let d = json!({"metadata": {"name": "web", "namespace": "ns", "uid": "u",
                "resourceVersion": "7", "labels": {"x": "y"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}},
            "status": {"replicas": 2}});
        assert_eq!(
            scale_of(&DEPLOYMENTS, &d),
            json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": "web", "namespace": "ns", "uid": "u", "resourceVersion": "7"},
                "spec": {"replicas": 3},
                "status": {"replicas": 2, "selector": "app=web,tier notin (db)"}})
        );
        let rc = json!({"metadata": {"name": "redis"},
            "spec": {"replicas": 0, "selector": {"role": "master", "app": "redis"}}});
        let s = scale_of(&REPLICATION_CONTROLLERS, &rc);
        assert_eq!(s["status"]["selector"], "app=redis,role=master");
        assert_eq!(s["spec"], json!({}));
        assert_eq!(s["status"]["replicas"], 0);
    }
}
