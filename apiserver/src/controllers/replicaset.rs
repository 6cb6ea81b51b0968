//! The ReplicaSet and ReplicationController controller (one implementation, as in
//! Kubernetes, where the RC manager wraps the ReplicaSet manager): keeps `spec.replicas`
//! active pods that match the selector, adopting matching orphans and releasing owned pods
//! that stopped matching, and reports replicas, ready and available pods in the status.
//!
//! Kubernetes' controller reads pods from an informer's cache, which lags its own writes,
//! so it keeps "expectations" to avoid creating a pod twice. Here every round lists pods
//! from the store itself, and the round's creations and deletions have been acknowledged
//! by the store before the next round starts: what a round sees includes everything the
//! previous one did, and there is nothing to expect.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use futures::future::join_all;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use minik8s_api::resource::{PODS, REPLICA_SETS, REPLICATION_CONTROLLERS, ResourceInfo};
use minik8s_api::selector::LabelSelector;
use serde_json::{Value, json};

use super::events;
use super::owned::{
    self, controller_ref, controller_uid, deleting, pod_active, pod_available, pod_phase, pod_ready,
};
use crate::error::{ApiError, Result};
use crate::object;
use crate::patch::PatchType;
use crate::registry::{FieldValidation, Registry};
use crate::strategy::Part;

/// The most pods created or deleted for one controller in one round (Kubernetes'
/// `BurstReplicas`); the next round goes on.
pub const BURST_REPLICAS: usize = 500;

/// The annotation that makes a pod cheaper or dearer to delete on scale-down.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The condition type reported when pods cannot be created or deleted.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// What differs between the two kinds.
struct Kind {
    resource: &'static ResourceInfo,
    component: &'static str,
}

const REPLICA_SET: Kind = Kind {
    resource: &REPLICA_SETS,
    component: "replicaset-controller",
};

const REPLICATION_CONTROLLER: Kind = Kind {
    resource: &REPLICATION_CONTROLLERS,
    component: "replication-controller",
};

pub async fn reconcile(registry: &Registry) -> Result<()> {
    let sets = owned::list_all(registry, &REPLICA_SETS).await?;
    let rcs = owned::list_all(registry, &REPLICATION_CONTROLLERS).await?;
    if sets.is_empty() && rcs.is_empty() {
        return Ok(());
    }
    let pods = owned::list_all(registry, &PODS).await?;
    let mut by_namespace: HashMap<&str, Vec<&Value>> = HashMap::new();
    for pod in pods.iter().filter(|p| pod_active(p)) {
        by_namespace
            .entry(object::namespace(pod))
            .or_default()
            .push(pod);
    }
    for (kind, owners) in [(&REPLICA_SET, &sets), (&REPLICATION_CONTROLLER, &rcs)] {
        for owner in owners {
            let ns_pods = by_namespace
                .get(object::namespace(owner))
                .map(Vec::as_slice)
                .unwrap_or_default();
            if let Err(e) = reconcile_one(registry, kind, owner, ns_pods).await {
                tracing::warn!(
                    kind = kind.resource.kind,
                    name = object::name(owner),
                    error = %e,
                    "replica controller"
                );
            }
        }
    }
    Ok(())
}

/// The selector of a ReplicaSet (`spec.selector`, a `LabelSelector`) or of a
/// ReplicationController (`spec.selector`, a plain map). `None` selects nothing, as
/// Kubernetes reads an absent or unparsable selector.
pub fn selector(resource: &ResourceInfo, obj: &Value) -> Option<LabelSelector> {
    let raw = obj["spec"].get("selector").filter(|s| !s.is_null())?;
    let structured: metav1::LabelSelector = if resource.kind == "ReplicationController" {
        let labels = object::string_map(Some(raw));
        if labels.is_empty() {
            return None;
        }
        metav1::LabelSelector {
            match_labels: Some(labels),
            match_expressions: None,
        }
    } else {
        serde_json::from_value(raw.clone()).ok()?
    };
    LabelSelector::from_label_selector(&structured).ok()
}

fn replicas(owner: &Value) -> usize {
    owner["spec"]["replicas"]
        .as_i64()
        .unwrap_or(1)
        .try_into()
        .unwrap_or(0)
}

async fn reconcile_one(
    registry: &Registry,
    kind: &Kind,
    owner: &Value,
    ns_pods: &[&Value],
) -> Result<()> {
    let uid = object::meta_str(owner, "uid").unwrap_or("");
    let owner_deleting = deleting(owner);
    let selector = selector(kind.resource, owner);
    let matches = |pod: &Value| {
        selector
            .as_ref()
            .is_some_and(|s| s.matches(&object::labels(pod)))
    };

    // Claim: ours that match, orphans that match (adopted); ours that no longer match are
    // released. Pods another controller owns are never touched.
    let mut mine: Vec<Value> = Vec::new();
    for &pod in ns_pods {
        match controller_uid(pod) {
            Some(u) if u == uid => {
                if matches(pod) {
                    mine.push(pod.clone());
                } else if !owner_deleting {
                    release(registry, pod, uid).await?;
                }
            }
            Some(_) => {}
            None if matches(pod) && !owner_deleting && !deleting(pod) => {
                if let Some(adopted) = adopt(registry, owner, pod).await? {
                    mine.push(adopted);
                }
            }
            None => {}
        }
    }

    let want = replicas(owner);
    let mut failure = None;
    if !owner_deleting {
        if mine.len() < want {
            let n = (want - mine.len()).min(BURST_REPLICAS);
            let (created, err) = create_pods(registry, kind, owner, n).await;
            mine.extend(created);
            failure = err.map(|e| ("FailedCreate", e.to_string()));
        } else if mine.len() > want {
            let n = (mine.len() - want).min(BURST_REPLICAS);
            let doomed = pods_to_delete(&mut mine, n, jiff::Timestamp::now());
            let err = delete_pods(registry, kind, owner, &doomed).await;
            failure = err.map(|e| ("FailedDelete", e.to_string()));
        }
    }

    let status = status(owner, &mine, failure, jiff::Timestamp::now());
    owned::write_status(registry, kind.resource, owner, &status).await?;
    Ok(())
}

/// Takes an orphan: our controller reference added to its owners, if the pod is still the
/// version we looked at (so still an orphan, and the same pod).
async fn adopt(registry: &Registry, owner: &Value, pod: &Value) -> Result<Option<Value>> {
    let mut refs = pod["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    refs.push(controller_ref(owner));
    patch_owners(registry, pod, json!(refs)).await
}

/// Lets go of a pod that no longer matches: our reference removed, the others kept.
async fn release(registry: &Registry, pod: &Value, uid: &str) -> Result<()> {
    let refs: Vec<Value> = pod["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["uid"] != uid)
        .cloned()
        .collect();
    let refs = if refs.is_empty() {
        Value::Null
    } else {
        json!(refs)
    };
    patch_owners(registry, pod, refs).await.map(|_| ())
}

async fn patch_owners(registry: &Registry, pod: &Value, refs: Value) -> Result<Option<Value>> {
    let patch = json!({"metadata": {
        "resourceVersion": object::meta_str(pod, "resourceVersion"),
        "ownerReferences": refs,
    }});
    match registry
        .patch(
            &PODS,
            Some(object::namespace(pod)),
            object::name(pod),
            PatchType::Merge,
            &patch,
            Part::Main,
            FieldValidation::Ignore,
        )
        .await
    {
        Ok(w) => Ok(Some(w.object)),
        // Changed or gone since we looked: the next round looks again.
        Err(ApiError::Conflict { .. } | ApiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates `n` pods from the template in batches of 1, 2, 4, ... (Kubernetes' slow start):
/// the pods of a batch are created at once, and a batch with a failure ends the round, so
/// a template the API refuses costs one request, not `n`. Returns the pods made and the
/// first error.
async fn create_pods(
    registry: &Registry,
    kind: &Kind,
    owner: &Value,
    n: usize,
) -> (Vec<Value>, Option<ApiError>) {
    let template = &owner["spec"]["template"];
    let no_labels = BTreeMap::new();
    let mut created = Vec::with_capacity(n);
    let (mut batch, mut attempted) = (1, 0);
    while attempted < n {
        let size = batch.min(n - attempted);
        attempted += size;
        let results = join_all((0..size).map(|_| async {
            let pod = owned::pod_from_template(owner, template, None, &no_labels);
            let result = owned::create_pod(registry, pod).await;
            let (event_type, reason, message) = match &result {
                Ok(Some(p)) => (
                    "Normal",
                    "SuccessfulCreate",
                    format!("Created pod: {}", object::name(p)),
                ),
                Ok(None) => return result,
                Err(e) => ("Warning", "FailedCreate", format!("Error creating: {e}")),
            };
            let kind_name = kind.resource.kind;
            events::record(
                registry,
                owner,
                kind_name,
                event_type,
                reason,
                &message,
                kind.component,
            )
            .await;
            result
        }))
        .await;
        let mut first_error = None;
        for r in results {
            match r {
                Ok(Some(pod)) => created.push(pod),
                // A generated name taken already: this round makes one pod fewer.
                Ok(None) => {}
                // Nothing can be created in a namespace being deleted; Kubernetes does
                // not report that as a failure.
                Err(ApiError::Forbidden(m)) if m.contains("because it is being terminated") => {
                    return (created, None);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if first_error.is_some() {
            return (created, first_error);
        }
        batch *= 2;
    }
    (created, None)
}

/// Deletes `doomed` at once; the first error, if any.
async fn delete_pods(
    registry: &Registry,
    kind: &Kind,
    owner: &Value,
    doomed: &[Value],
) -> Option<ApiError> {
    let results = join_all(doomed.iter().map(|pod| async move {
        let result = owned::delete_exact(registry, &PODS, pod).await;
        let (event_type, reason, message) = match &result {
            Ok(()) => (
                "Normal",
                "SuccessfulDelete",
                format!("Deleted pod: {}", object::name(pod)),
            ),
            Err(e) => ("Warning", "FailedDelete", format!("Error deleting: {e}")),
        };
        events::record(
            registry,
            owner,
            kind.resource.kind,
            event_type,
            reason,
            &message,
            kind.component,
        )
        .await;
        result
    }))
    .await;
    results.into_iter().find_map(Result::err)
}

/// Removes from `pods` the `n` to delete, chosen as Kubernetes' `ActivePodsWithRanks`
/// orders them, least valuable first; returns them.
fn pods_to_delete(pods: &mut Vec<Value>, n: usize, now: jiff::Timestamp) -> Vec<Value> {
    // Pods on a node that runs more of this controller's pods go first.
    let mut on_node: HashMap<String, usize> = HashMap::new();
    for p in pods.iter() {
        *on_node.entry(node_name(p).to_string()).or_default() += 1;
    }
    let mut ranked: Vec<(usize, Value)> = pods
        .drain(..)
        .map(|p| (on_node[node_name(&p)], p))
        .collect();
    ranked.sort_by(|(ra, a), (rb, b)| compare_for_deletion(a, *ra, b, *rb, now));
    let kept = ranked.split_off(n.min(ranked.len()));
    pods.extend(kept.into_iter().map(|(_, p)| p));
    ranked.into_iter().map(|(_, p)| p).collect()
}

fn node_name(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or("")
}

fn phase_ordinal(pod: &Value) -> u8 {
    match pod_phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Value) -> i64 {
    pod["metadata"]["annotations"][POD_DELETION_COST]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn ready_since(pod: &Value) -> Option<jiff::Timestamp> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")?["lastTransitionTime"]
        .as_str()
        .and_then(object::parse_time)
}

fn created_at(pod: &Value) -> Option<jiff::Timestamp> {
    object::meta_str(pod, "creationTimestamp").and_then(object::parse_time)
}

fn max_restarts(pod: &Value) -> i64 {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["restartCount"].as_i64())
        .max()
        .unwrap_or(0)
}

/// Kubernetes' logarithmic scale-down: times whose ages are within the same power of two
/// (in nanoseconds) count as equal.
fn log_rank(t: jiff::Timestamp, now: jiff::Timestamp) -> i64 {
    let age = now.duration_since(t).as_nanos();
    if age > 0 {
        (age as f64).log2() as i64
    } else {
        -1
    }
}

/// Newer (or unknown) first, comparing ages on the logarithmic scale, then by uid.
fn newer_first(
    a: Option<jiff::Timestamp>,
    b: Option<jiff::Timestamp>,
    (pa, pb): (&Value, &Value),
    now: jiff::Timestamp,
) -> Ordering {
    match (a, b) {
        (x, y) if x == y => Ordering::Equal,
        (None, _) => Ordering::Less,
        (_, None) => Ordering::Greater,
        (Some(x), Some(y)) => match log_rank(x, now).cmp(&log_rank(y, now)) {
            Ordering::Equal => object::meta_str(pa, "uid").cmp(&object::meta_str(pb, "uid")),
            other => other,
        },
    }
}

/// Kubernetes' `ActivePodsWithRanks.Less`: unassigned before assigned; Pending, Unknown,
/// Running; not ready before ready; lower deletion cost first; more pods of the same
/// controller on its node first; ready for less time first; more restarts first; newer
/// first.
fn compare_for_deletion(
    a: &Value,
    rank_a: usize,
    b: &Value,
    rank_b: usize,
    now: jiff::Timestamp,
) -> Ordering {
    let (na, nb) = (node_name(a), node_name(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return nb.is_empty().cmp(&na.is_empty());
    }
    let by_phase = phase_ordinal(a).cmp(&phase_ordinal(b));
    if by_phase != Ordering::Equal {
        return by_phase;
    }
    let (ready_a, ready_b) = (pod_ready(a), pod_ready(b));
    if ready_a != ready_b {
        return ready_a.cmp(&ready_b);
    }
    let by_cost = deletion_cost(a).cmp(&deletion_cost(b));
    if by_cost != Ordering::Equal {
        return by_cost;
    }
    if rank_a != rank_b {
        return rank_b.cmp(&rank_a);
    }
    if ready_a && ready_b {
        let by_ready = newer_first(ready_since(a), ready_since(b), (a, b), now);
        if by_ready != Ordering::Equal {
            return by_ready;
        }
    }
    let by_restarts = max_restarts(b).cmp(&max_restarts(a));
    if by_restarts != Ordering::Equal {
        return by_restarts;
    }
    newer_first(created_at(a), created_at(b), (a, b), now)
}

/// The status Kubernetes computes: counts over the controller's active pods, the
/// generation seen, and `ReplicaFailure` while creating or deleting pods fails. Counts of
/// zero are left out, as Kubernetes' `omitempty` leaves them out.
fn status(
    owner: &Value,
    pods: &[Value],
    failure: Option<(&str, String)>,
    now: jiff::Timestamp,
) -> Value {
    let template_labels = object::string_map(owner["spec"]["template"]["metadata"].get("labels"));
    let min_ready = owner["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let fully_labeled = pods
        .iter()
        .filter(|p| {
            let labels = object::labels(p);
            template_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let ready = pods.iter().filter(|p| pod_ready(p)).count();
    let available = pods
        .iter()
        .filter(|p| pod_available(p, min_ready, now))
        .count();

    let mut status = json!({"replicas": pods.len()});
    for (key, n) in [
        ("fullyLabeledReplicas", fully_labeled),
        ("readyReplicas", ready),
        ("availableReplicas", available),
    ] {
        if n > 0 {
            status[key] = json!(n);
        }
    }
    if let Some(g) = owner["metadata"]["generation"].as_i64().filter(|g| *g > 0) {
        status["observedGeneration"] = json!(g);
    }
    let old: Vec<Value> = owner["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let had_failure = old.iter().any(|c| c["type"] == REPLICA_FAILURE);
    let mut conditions: Vec<Value> = match failure {
        // A failure already reported stays as it was first written.
        Some(_) if had_failure => old,
        Some((reason, message)) => {
            let mut c = old;
            c.push(json!({
                "type": REPLICA_FAILURE,
                "status": "True",
                "lastTransitionTime": object::format_time(now),
                "reason": reason,
                "message": message,
            }));
            c
        }
        None => old
            .into_iter()
            .filter(|c| c["type"] != REPLICA_FAILURE)
            .collect(),
    };
    conditions.retain(|c| !c.is_null());
    if !conditions.is_empty() {
        status["conditions"] = json!(conditions);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs_ago: i64, now: jiff::Timestamp) -> String {
        object::format_time(now - jiff::SignedDuration::from_secs(secs_ago))
    }

    fn pod(
        name: &str,
        node: &str,
        phase: &str,
        ready_ago: Option<i64>,
        now: jiff::Timestamp,
    ) -> Value {
        let mut conditions = vec![];
        if let Some(ago) = ready_ago {
            conditions.push(json!({"type": "Ready", "status": "True",
                "lastTransitionTime": at(ago, now)}));
        }
        json!({"metadata": {"name": name, "uid": name, "labels": {"app": "web"},
                            "creationTimestamp": at(1000, now)},
               "spec": {"nodeName": node},
               "status": {"phase": phase, "conditions": conditions}})
    }

    fn names(pods: &[Value]) -> Vec<&str> {
        pods.iter().map(object::name).collect()
    }

    #[test]
    fn scale_down_takes_the_least_valuable_first() {
        let now = jiff::Timestamp::now();
        let mut pods = vec![
            pod("running-ready-long", "n1", "Running", Some(5000), now),
            pod("running-ready-new", "n2", "Running", Some(2), now),
            pod("unassigned", "", "Pending", None, now),
            pod("pending", "n3", "Pending", None, now),
            pod("running-not-ready", "n4", "Running", None, now),
            pod("unknown", "n5", "Unknown", None, now),
        ];
        let doomed = pods_to_delete(&mut pods, 5, now);
        assert_eq!(
            names(&doomed),
            [
                "unassigned",
                "pending",
                "unknown",
                "running-not-ready",
                "running-ready-new"
            ]
        );
        assert_eq!(names(&pods), ["running-ready-long"]);
    }

    #[test]
    fn restarts_then_age_break_ties() {
        let now = jiff::Timestamp::now();
        let mut crashy = pod("crashy", "n1", "Running", None, now);
        crashy["status"]["containerStatuses"] = json!([{"restartCount": 4}]);
        let mut young = pod("young", "n2", "Running", None, now);
        young["metadata"]["creationTimestamp"] = json!(at(1, now));
        let old = pod("old", "n3", "Running", None, now);
        let mut pods = vec![old, young, crashy];
        assert_eq!(
            names(&pods_to_delete(&mut pods, 3, now)),
            ["crashy", "young", "old"]
        );
    }

    #[test]
    fn doubled_up_pods_go_first() {
        let now = jiff::Timestamp::now();
        let mut pods = vec![
            pod("alone", "n1", "Running", None, now),
            pod("shared-a", "n2", "Running", None, now),
            pod("shared-b", "n2", "Running", None, now),
        ];
        let doomed = pods_to_delete(&mut pods, 1, now);
        assert!(names(&doomed)[0].starts_with("shared"), "{doomed:?}");
    }

    #[test]
    fn selectors_of_both_kinds() {
        let rs = json!({"spec": {"selector": {"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}}});
        let s = selector(&REPLICA_SETS, &rs).unwrap();
        assert_eq!(s.to_string(), "app=web,tier in (a,b)");
        let rc = json!({"spec": {"selector": {"app": "redis", "role": "master"}}});
        let s = selector(&REPLICATION_CONTROLLERS, &rc).unwrap();
        assert!(s.matches(&BTreeMap::from([
            ("app".to_string(), "redis".to_string()),
            ("role".to_string(), "master".to_string()),
            ("x".to_string(), "y".to_string()),
        ])));
        assert!(!s.matches(&BTreeMap::from([("app".to_string(), "redis".to_string())])));
        assert!(selector(&REPLICATION_CONTROLLERS, &json!({"spec": {}})).is_none());
    }

    #[test]
    fn status_counts_and_reports_failures() {
        let now = jiff::Timestamp::now();
        let owner = json!({"metadata": {"generation": 3},
            "spec": {"minReadySeconds": 10, "template": {"metadata": {"labels": {"app": "web", "v": "1"}}}}});
        let mut labelled = pod("a", "n1", "Running", Some(60), now);
        labelled["metadata"]["labels"]["v"] = json!("1");
        let pods = vec![
            labelled,
            pod("b", "n1", "Running", Some(2), now),
            pod("c", "", "Pending", None, now),
        ];
        let s = status(&owner, &pods, None, now);
        assert_eq!(
            s,
            json!({"replicas": 3, "fullyLabeledReplicas": 1, "readyReplicas": 2,
                   "availableReplicas": 1, "observedGeneration": 3})
        );
        let failed = status(&owner, &[], Some(("FailedCreate", "quota".into())), now);
        assert_eq!(failed["conditions"][0]["type"], REPLICA_FAILURE);
        assert_eq!(failed["conditions"][0]["reason"], "FailedCreate");
        assert_eq!(failed["replicas"], 0);
        let mut owner2 = owner.clone();
        owner2["status"] = failed;
        assert!(status(&owner2, &[], None, now).get("conditions").is_none());
    }
}
