//! What the workload controllers share: owner references, pods made from a template,
//! which pods count as active or ready, and writes that tolerate losing a race (the next
//! round looks again).

use std::collections::BTreeMap;

use minik8s_api::resource::{PODS, ResourceInfo};
use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::object;
use crate::patch::PatchType;
use crate::registry::{DeleteParams, FieldValidation, Filter, ListParams, Registry};
use crate::strategy::Part;

/// Every object of `resource`, in every namespace.
pub async fn list_all(registry: &Registry, resource: &'static ResourceInfo) -> Result<Vec<Value>> {
    let all = Filter::new(resource, None, None, None)?;
    let (items, _, _) = registry
        .list(resource, &all, &ListParams::default())
        .await?;
    Ok(items)
}

/// The owner reference a controller puts on what it makes: `controller: true` and
/// `blockOwnerDeletion: true`, as Kubernetes' controllers set them.
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": object::name(owner),
        "uid": object::meta_str(owner, "uid").unwrap_or(""),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The owner reference with `controller: true`, if any.
pub fn controller_of(obj: &Value) -> Option<&Value> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["controller"] == true)
}

/// The uid of the controlling owner, if any.
pub fn controller_uid(obj: &Value) -> Option<&str> {
    controller_of(obj).and_then(|o| o["uid"].as_str())
}

/// Marked for deletion.
pub fn deleting(obj: &Value) -> bool {
    object::meta(obj).is_some_and(|m| m.contains_key("deletionTimestamp"))
}

pub fn pod_phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("")
}

/// Not finished and not being deleted: what counts towards a controller's replicas.
pub fn pod_active(pod: &Value) -> bool {
    !deleting(pod) && !matches!(pod_phase(pod), "Succeeded" | "Failed")
}

/// The pod's `Ready` condition is true.
pub fn pod_ready(pod: &Value) -> bool {
    ready_condition(pod).is_some_and(|c| c["status"] == "True")
}

fn ready_condition(pod: &Value) -> Option<&Value> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
}

/// Ready for at least `min_ready_seconds` at `now`.
pub fn pod_available(pod: &Value, min_ready_seconds: i64, now: jiff::Timestamp) -> bool {
    if !pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    ready_condition(pod)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(object::parse_time)
        .is_some_and(|t| now.as_second() - t.as_second() >= min_ready_seconds)
}

/// A pod made from `template` (a `PodTemplateSpec` as JSON) for `owner`: the template's
/// labels and annotations plus `extra_labels`, the owner's controller reference, and
/// either a fixed `name` or a `generateName` of `<owner name>-`.
pub fn pod_from_template(
    owner: &Value,
    template: &Value,
    name: Option<&str>,
    extra_labels: &BTreeMap<String, String>,
) -> Value {
    let mut labels = object::string_map(template["metadata"].get("labels"));
    labels.extend(extra_labels.clone());
    let annotations = object::string_map(template["metadata"].get("annotations"));
    let mut metadata = json!({
        "namespace": object::namespace(owner),
        "labels": labels,
        "ownerReferences": [controller_ref(owner)],
    });
    if !annotations.is_empty() {
        metadata["annotations"] = json!(annotations);
    }
    match name {
        Some(n) => metadata["name"] = json!(n),
        None => metadata["generateName"] = json!(format!("{}-", object::name(owner))),
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

/// Creates a pod; `None` when one of that name exists already.
pub async fn create_pod(registry: &Registry, pod: Value) -> Result<Option<Value>> {
    let ns = object::namespace(&pod).to_string();
    match registry
        .create(&PODS, Some(&ns), pod, FieldValidation::Ignore)
        .await
    {
        Ok(w) => Ok(Some(w.object)),
        Err(ApiError::AlreadyExists { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes `obj` if it is still the object of that uid; gone already is fine.
pub async fn delete_exact(
    registry: &Registry,
    resource: &'static ResourceInfo,
    obj: &Value,
) -> Result<()> {
    if deleting(obj) {
        return Ok(());
    }
    let params = DeleteParams {
        preconditions: Some(crate::registry::Preconditions {
            uid: object::meta_str(obj, "uid").map(str::to_string),
            resource_version: None,
        }),
        ..Default::default()
    };
    let ns = Some(object::namespace(obj)).filter(|n| !n.is_empty());
    match registry
        .delete(resource, ns, object::name(obj), &params)
        .await
    {
        Ok(_) | Err(ApiError::NotFound { .. } | ApiError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `status` if `obj` is still the version read; false if it changed or went (the
/// next round starts over from what is stored).
pub async fn write_status(
    registry: &Registry,
    resource: &'static ResourceInfo,
    obj: &Value,
    status: &Value,
) -> Result<bool> {
    if obj.get("status") == Some(status) {
        return Ok(true);
    }
    // A merge patch keeps what it does not name: a count that dropped to zero (and so
    // left out, as Kubernetes omits it) is removed by naming it null.
    let mut new_status = status.clone();
    if let (Some(old), Some(new)) = (obj["status"].as_object(), new_status.as_object_mut()) {
        for k in old.keys() {
            new.entry(k.clone()).or_insert(Value::Null);
        }
    }
    let patch = json!({
        "metadata": {"resourceVersion": object::meta_str(obj, "resourceVersion")},
        "status": new_status,
    });
    let ns = Some(object::namespace(obj)).filter(|n| !n.is_empty());
    match registry
        .patch(
            resource,
            ns,
            object::name(obj),
            PatchType::Merge,
            &patch,
            Part::Status,
            FieldValidation::Ignore,
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(ApiError::Conflict { .. } | ApiError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates `obj` (its namespace from its metadata); one made meanwhile is fine.
pub async fn create_if_absent(
    registry: &Registry,
    resource: &'static ResourceInfo,
    obj: Value,
) -> Result<()> {
    let ns = Some(object::namespace(&obj).to_string()).filter(|n| !n.is_empty());
    match registry
        .create(resource, ns.as_deref(), obj, FieldValidation::Ignore)
        .await
    {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Replaces the stored object with `obj` (which carries the resourceVersion read); a
/// conflict is left to the next round.
pub async fn replace(
    registry: &Registry,
    resource: &'static ResourceInfo,
    obj: Value,
) -> Result<()> {
    let ns = Some(object::namespace(&obj).to_string()).filter(|n| !n.is_empty());
    let name = object::name(&obj).to_string();
    match registry
        .update(
            resource,
            ns.as_deref(),
            &name,
            obj,
            Part::Main,
            FieldValidation::Ignore,
        )
        .await
    {
        Ok(_) | Err(ApiError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `desired`, or replaces the stored object when one of `fields` differs.
pub async fn ensure(
    registry: &Registry,
    resource: &'static ResourceInfo,
    desired: Value,
    fields: &[&str],
) -> Result<()> {
    let ns = Some(object::namespace(&desired).to_string()).filter(|n| !n.is_empty());
    match registry
        .get(resource, ns.as_deref(), object::name(&desired))
        .await
    {
        Err(ApiError::NotFound { .. }) => create_if_absent(registry, resource, desired).await,
        Err(e) => Err(e),
        Ok(current) => {
            if fields.iter().all(|f| current.get(*f) == desired.get(*f)) {
                return Ok(());
            }
            let mut next = desired;
            next["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
            replace(registry, resource, next).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_from_templates_carry_their_owner() {
        let owner = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "ns1", "uid": "u1"}});
        let template = json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "x"}]}});
        let extra = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let pod = pod_from_template(&owner, &template, None, &extra);
        assert_eq!(pod["metadata"]["generateName"], "web-abc-");
        assert_eq!(pod["metadata"]["namespace"], "ns1");
        assert_eq!(pod["metadata"]["labels"], json!({"app": "web", "k": "v"}));
        assert_eq!(controller_uid(&pod), Some("u1"));
        assert_eq!(controller_of(&pod).unwrap()["kind"], "ReplicaSet");
        let named = pod_from_template(&owner, &template, Some("web-0"), &BTreeMap::new());
        assert_eq!(named["metadata"]["name"], "web-0");
        assert!(named["metadata"].get("generateName").is_none());
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let now = jiff::Timestamp::now();
        let since = object::format_time(now - jiff::SignedDuration::from_secs(5));
        let pod = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": since}]}});
        assert!(pod_ready(&pod) && pod_active(&pod));
        assert!(pod_available(&pod, 3, now));
        assert!(!pod_available(&pod, 10, now));
    }
}
