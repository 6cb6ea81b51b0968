//! The TaskSet controller: creates each role's pods under names known in advance, creates
//! a failed pod again (same name and hostname, new uid and IP) while the retry policy
//! allows, sets the TaskSet's phase from its roles' completion policies, and deletes the
//! pods of TaskSets that are gone.

use std::collections::{BTreeMap, HashMap, HashSet};

use minik8s_api::resource::{PODS, TASKSETS};
use minik8s_api::taskset::{
    self, LABEL_INDEX, LABEL_ROLE, LABEL_TASKSET, Role, RoleStatus, TaskSet, TaskSetStatus,
};
use serde_json::{Value, json};

use super::events;
use crate::error::{ApiError, Result};
use crate::object;
use crate::patch::PatchType;
use crate::registry::{DeleteParams, FieldValidation, Filter, ListParams, Registry};
use crate::strategy::Part;

/// Retries of one pod when the policy says `retry: true` without a count.
pub const DEFAULT_MAX_RETRIES: i32 = 3;

const COMPONENT: &str = "taskset-controller";

pub async fn reconcile(registry: &Registry) -> Result<()> {
    let all = Filter::new(&TASKSETS, None, None, None)?;
    let (tasksets, _, _) = registry
        .list(&TASKSETS, &all, &ListParams::default())
        .await?;
    let owned = Filter::new(&PODS, None, Some(LABEL_TASKSET), None)?;
    let (pods, _, _) = registry.list(&PODS, &owned, &ListParams::default()).await?;

    let mut by_owner: HashMap<String, Vec<Value>> = HashMap::new();
    for pod in pods {
        if let Some(uid) = owner_uid(&pod) {
            by_owner.entry(uid).or_default().push(pod);
        }
    }
    let mut live = HashSet::new();
    for ts in &tasksets {
        let uid = object::meta_str(ts, "uid").unwrap_or("").to_string();
        live.insert(uid.clone());
        let pods = by_owner.remove(&uid).unwrap_or_default();
        if let Err(e) = reconcile_one(registry, ts, pods).await {
            tracing::warn!(taskset = object::name(ts), error = %e, "taskset");
        }
    }
    // What is left belongs to TaskSets that no longer exist.
    for (_, pods) in by_owner {
        for pod in pods {
            delete_pod(registry, &pod).await?;
        }
    }
    Ok(())
}

fn owner_uid(pod: &Value) -> Option<String> {
    pod["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["kind"] == "TaskSet" && o["controller"] == true)
        .and_then(|o| o["uid"].as_str())
        .map(str::to_string)
}

fn phase(pod: &Value) -> String {
    object::path_string(pod, "status.phase")
}

fn deleting(obj: &Value) -> bool {
    object::meta(obj).is_some_and(|m| m.contains_key("deletionTimestamp"))
}

async fn delete_pod(registry: &Registry, pod: &Value) -> Result<()> {
    if deleting(pod) {
        return Ok(());
    }
    match registry
        .delete(
            &PODS,
            Some(object::namespace(pod)),
            object::name(pod),
            &DeleteParams::default(),
        )
        .await
    {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The pod for `role`'s replica `index`.
pub fn pod_for(ts: &TaskSet, role: &Role, index: i32) -> Value {
    let ts_name = ts.metadata.name.as_deref().unwrap_or("");
    let template = &role.template;
    let mut labels: BTreeMap<String, String> = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(LABEL_TASKSET.into(), ts_name.into());
    labels.insert(LABEL_ROLE.into(), role.name.clone());
    labels.insert(LABEL_INDEX.into(), index.to_string());
    let annotations = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    let mut spec = serde_json::to_value(template.spec.clone().unwrap_or_default())
        .unwrap_or_else(|_| json!({}));
    spec["hostname"] = json!(taskset::hostname(&role.name, index));
    spec["subdomain"] = json!(ts_name);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": ts.pod_name(&role.name, index),
            "namespace": ts.metadata.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": taskset::API_VERSION,
                "kind": "TaskSet",
                "name": ts_name,
                "uid": ts.metadata.uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
    })
}

async fn reconcile_one(registry: &Registry, ts_value: &Value, pods: Vec<Value>) -> Result<()> {
    if deleting(ts_value) {
        return Ok(());
    }
    let ts: TaskSet = serde_json::from_value(ts_value.clone())
        .map_err(|e| ApiError::Internal(format!("stored TaskSet does not decode: {e}")))?;
    let ns = ts.metadata.namespace.clone().unwrap_or_default();
    let old_status = ts.status.clone().unwrap_or_default();
    let mut status = old_status.clone();
    let finished = matches!(status.phase.as_str(), "Succeeded" | "Failed");
    let retry = ts.spec.retry_policy.as_ref().filter(|r| r.retry);
    let max_retries = retry.map_or(0, |r| r.max_retry_count.unwrap_or(DEFAULT_MAX_RETRIES));
    let by_name: HashMap<String, Value> = pods
        .into_iter()
        .map(|p| (object::name(&p).to_string(), p))
        .collect();

    let mut roles = Vec::new();
    for role in &ts.spec.roles {
        let mut rs = RoleStatus {
            name: role.name.clone(),
            replicas: role.replicas,
            ..Default::default()
        };
        for index in 0..role.replicas {
            let host = taskset::hostname(&role.name, index);
            let name = ts.pod_name(&role.name, index);
            let pod = by_name.get(&name);
            let retries = status.retries.get(&host).copied().unwrap_or(0);
            match pod.map(phase).as_deref() {
                Some("Succeeded") => rs.succeeded += 1,
                Some("Failed") if !finished && retries < max_retries && retry.is_some() => {
                    // Created again under the same name: count the retry first, so a
                    // crash between the two steps cannot retry more than allowed.
                    status.retries.insert(host.clone(), retries + 1);
                    if !write_status(registry, ts_value, &status).await? {
                        return Ok(());
                    }
                    let old_uid = pod
                        .and_then(|p| object::meta_str(p, "uid"))
                        .map(str::to_string);
                    let params = DeleteParams {
                        grace_period_seconds: Some(0),
                        preconditions: Some(crate::registry::Preconditions {
                            uid: old_uid,
                            resource_version: None,
                        }),
                        ..Default::default()
                    };
                    match registry.delete(&PODS, Some(&ns), &name, &params).await {
                        Ok(_) | Err(ApiError::NotFound { .. }) => {}
                        // Replaced already: the next round looks again.
                        Err(ApiError::Conflict { .. }) => return Ok(()),
                        Err(e) => return Err(e),
                    }
                    events::record(
                        registry,
                        ts_value,
                        "TaskSet",
                        "Normal",
                        "Retrying",
                        &format!(
                            "Pod {name} failed; creating it again (retry {} of {max_retries})",
                            retries + 1
                        ),
                        COMPONENT,
                    )
                    .await;
                    create_pod(registry, &ts, role, index, &ns).await?;
                    rs.pending += 1;
                }
                Some("Failed") => rs.failed += 1,
                Some("Running") => rs.running += 1,
                Some(_) => rs.pending += 1,
                None => {
                    if !finished {
                        create_pod(registry, &ts, role, index, &ns).await?;
                        status.start_time.get_or_insert_with(object::now_rfc3339);
                    }
                    rs.pending += 1;
                }
            }
        }
        let policy = role.completion_policy.clone().unwrap_or_default();
        rs.phase = if rs.failed >= policy.max_failed().max(1) {
            "Failed"
        } else if rs.succeeded >= policy.min_succeeded(role.replicas) {
            "Succeeded"
        } else if rs.running > 0 || rs.succeeded > 0 {
            "Running"
        } else {
            "Pending"
        }
        .to_string();
        roles.push(rs);
    }

    if !finished {
        let failed = roles.iter().find(|r| r.phase == "Failed");
        let (phase, message) = if let Some(r) = failed {
            (
                "Failed",
                format!("role {} failed: {} of its pods failed", r.name, r.failed),
            )
        } else if roles.iter().all(|r| r.phase == "Succeeded") {
            ("Succeeded", "every role succeeded".to_string())
        } else if roles.iter().any(|r| r.phase != "Pending") {
            ("Running", String::new())
        } else {
            ("Pending", String::new())
        };
        if phase != status.phase {
            if matches!(phase, "Succeeded" | "Failed") {
                status.completion_time = Some(object::now_rfc3339());
                // The job is over: what still runs is stopped.
                for pod in by_name
                    .values()
                    .filter(|p| !matches!(phase_of(p), "Succeeded" | "Failed"))
                {
                    delete_pod(registry, pod).await?;
                }
                let kind = if phase == "Failed" {
                    "Warning"
                } else {
                    "Normal"
                };
                events::record(
                    registry, ts_value, "TaskSet", kind, phase, &message, COMPONENT,
                )
                .await;
            }
            status.phase = phase.to_string();
            status.message = message;
        }
    }
    status.roles = roles;
    if status != old_status {
        write_status(registry, ts_value, &status).await?;
    }
    Ok(())
}

fn phase_of(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("")
}

async fn create_pod(
    registry: &Registry,
    ts: &TaskSet,
    role: &Role,
    index: i32,
    ns: &str,
) -> Result<()> {
    match registry
        .create(
            &PODS,
            Some(ns),
            pod_for(ts, role, index),
            FieldValidation::Ignore,
        )
        .await
    {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes the status if the TaskSet is still the version we read; false if it changed
/// (the next round starts over from what is stored).
async fn write_status(registry: &Registry, ts: &Value, status: &TaskSetStatus) -> Result<bool> {
    let patch = json!({
        "metadata": {"resourceVersion": object::meta_str(ts, "resourceVersion")},
        "status": status,
    });
    match registry
        .patch(
            &TASKSETS,
            Some(object::namespace(ts)),
            object::name(ts),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_carry_names_known_in_advance() {
        let ts: TaskSet = serde_json::from_value(json!({
            "metadata": {"name": "demo", "namespace": "ml", "uid": "u1"},
            "spec": {"roles": [{"name": "ps", "replicas": 2, "template": {
                "metadata": {"labels": {"app": "train"}},
                "spec": {"containers": [{"name": "w", "image": "busybox"}]}}}]}
        }))
        .unwrap();
        let pod = pod_for(&ts, &ts.spec.roles[0], 1);
        assert_eq!(pod["metadata"]["name"], "demo-ps-1");
        assert_eq!(pod["spec"]["hostname"], "ps-1");
        assert_eq!(pod["spec"]["subdomain"], "demo");
        assert_eq!(pod["metadata"]["labels"]["app"], "train");
        assert_eq!(pod["metadata"]["labels"][LABEL_ROLE], "ps");
        assert_eq!(pod["metadata"]["labels"][LABEL_INDEX], "1");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(owner_uid(&pod).as_deref(), Some("u1"));
    }
}
