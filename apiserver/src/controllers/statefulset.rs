//! The StatefulSet controller, after Kubernetes' `pkg/controller/statefulset`: pods
//! `<set>-<ordinal>` with stable names and hostnames, made from the revision of the
//! template they belong to. With `OrderedReady` each pod is created only once every pod
//! before it is Running and Ready, at most one is unhealthy at a time, and scale-down
//! removes the highest ordinal first, one at a time; `Parallel` creates and deletes at
//! once. A `RollingUpdate` replaces pods from the highest ordinal down to the partition,
//! one at a time, each only once the one before is healthy again; `OnDelete` leaves that
//! to whoever deletes the pods.
//!
//! Every round reads the pods and revisions from the store, so what it sees includes
//! what the round before did.

use std::collections::{BTreeMap, HashMap, HashSet};

use minik8s_api::resource::{DAEMON_SETS, PODS, ResourceInfo, STATEFUL_SETS};
use serde_json::{Value, json};

use super::events;
use super::history::{self, REVISION_HASH_LABEL};
use super::owned::{self, controller_uid, deleting, pod_available, pod_phase, pod_ready};
use crate::error::{ApiError, Result};
use crate::object;
use crate::patch::PatchType;
use crate::registry::{FieldValidation, Registry};
use crate::strategy::Part;

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
const COMPONENT: &str = "statefulset-controller";

pub async fn reconcile(registry: &Registry) -> Result<()> {
    let sets = owned::list_all(registry, &STATEFUL_SETS).await?;
    if sets.is_empty() {
        return Ok(());
    }
    let pods = owned::list_all(registry, &PODS).await?;
    let (by_owner, orphans) = by_controller(&pods);
    for set in &sets {
        let uid = object::meta_str(set, "uid").unwrap_or("");
        let mut mine: Vec<Value> = by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .map(|p| (*p).clone())
            .collect();
        let name = object::name(set);
        let members: Vec<&Value> = orphans
            .iter()
            .copied()
            .filter(|p| ordinal(name, object::name(p)).is_some())
            .collect();
        let adopted = adopt_orphans(registry, set, &members).await;
        let result = match adopted {
            Ok(adopted) => {
                mine.extend(adopted);
                let refs: Vec<&Value> = mine.iter().collect();
                reconcile_one(registry, set, &refs).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(name, error = %e, "statefulset controller");
        }
    }
    Ok(())
}

/// Pods by the uid of their controller, and the pods without one that are not going.
pub(super) fn by_controller(pods: &[Value]) -> (HashMap<&str, Vec<&Value>>, Vec<&Value>) {
    let mut by_owner: HashMap<&str, Vec<&Value>> = HashMap::new();
    let mut orphans = Vec::new();
    for pod in pods {
        match controller_uid(pod) {
            Some(uid) => by_owner.entry(uid).or_default().push(pod),
            None if !deleting(pod) => orphans.push(pod),
            None => {}
        }
    }
    (by_owner, orphans)
}

/// Takes the orphans (those that could be members) of the owner's namespace that its
/// selector matches, adding its controller reference as Kubernetes' `ClaimPods` does; a pod that
/// changed since it was read is left for the next round.
pub(super) async fn adopt_orphans(
    registry: &Registry,
    owner: &Value,
    orphans: &[&Value],
) -> Result<Vec<Value>> {
    if deleting(owner) {
        return Ok(Vec::new());
    }
    let resource = if owner["kind"] == "DaemonSet" {
        &DAEMON_SETS
    } else {
        &STATEFUL_SETS
    };
    let Some(selector) = super::replicaset::selector(resource, owner) else {
        return Ok(Vec::new());
    };
    let ns = object::namespace(owner);
    let mut adopted = Vec::new();
    for pod in orphans
        .iter()
        .filter(|p| object::namespace(p) == ns && selector.matches(&object::labels(p)))
    {
        let mut refs = pod["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        refs.push(owned::controller_ref(owner));
        let patch = json!({"metadata": {
            "resourceVersion": object::meta_str(pod, "resourceVersion"),
            "ownerReferences": refs,
        }});
        match registry
            .patch(
                &PODS,
                Some(ns),
                object::name(pod),
                PatchType::Merge,
                &patch,
                Part::Main,
                FieldValidation::Ignore,
            )
            .await
        {
            Ok(w) => adopted.push(w.object),
            Err(ApiError::Conflict { .. } | ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(adopted)
}

/// The ordinal of a pod named `<set>-<ordinal>`.
pub fn ordinal(set_name: &str, pod_name: &str) -> Option<i64> {
    let rest = pod_name.strip_prefix(set_name)?.strip_prefix('-')?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

fn running_and_ready(pod: &Value) -> bool {
    pod_phase(pod) == "Running" && pod_ready(pod)
}

fn running_and_available(pod: &Value, min_ready: i64, now: jiff::Timestamp) -> bool {
    pod_phase(pod) == "Running" && pod_available(pod, min_ready, now)
}

fn finished(pod: &Value) -> bool {
    matches!(pod_phase(pod), "Failed" | "Succeeded")
}

fn revision_of(pod: &Value) -> &str {
    pod["metadata"]["labels"][REVISION_HASH_LABEL]
        .as_str()
        .unwrap_or("")
}

/// What the spec asks for, read once.
struct Spec {
    replicas: i64,
    start: i64,
    monotonic: bool,
    on_delete: bool,
    partition: i64,
    min_ready: i64,
    history_limit: i64,
}

impl Spec {
    fn of(set: &Value) -> Spec {
        let s = &set["spec"];
        let strategy = &s["updateStrategy"];
        Spec {
            replicas: s["replicas"].as_i64().unwrap_or(1).max(0),
            start: s["ordinals"]["start"].as_i64().unwrap_or(0).max(0),
            monotonic: s["podManagementPolicy"].as_str() != Some("Parallel"),
            on_delete: strategy["type"].as_str() == Some("OnDelete"),
            partition: strategy["rollingUpdate"]["partition"]
                .as_i64()
                .unwrap_or(0)
                .max(0),
            min_ready: s["minReadySeconds"].as_i64().unwrap_or(0),
            history_limit: s["revisionHistoryLimit"].as_i64().unwrap_or(10),
        }
    }
}

async fn reconcile_one(registry: &Registry, set: &Value, pods: &[&Value]) -> Result<()> {
    let name = object::name(set);
    let spec = Spec::of(set);
    let mut revisions = history::owned_by(registry, set).await?;
    let mut collision_count = set["status"]["collisionCount"].as_i64().unwrap_or(0);
    let update_rev =
        history::update_revision(registry, set, &mut revisions, &mut collision_count, None).await?;
    let current_rev = set["status"]["currentRevision"]
        .as_str()
        .and_then(|c| revisions.iter().find(|r| object::name(r) == c))
        .cloned()
        .unwrap_or_else(|| update_rev.clone());
    let revs = Revs {
        current_set: history::apply(set, &current_rev),
        update_set: history::apply(set, &update_rev),
        current: object::name(&current_rev).to_string(),
        update: object::name(&update_rev).to_string(),
    };

    // Members in range by ordinal; the rest condemned, highest first.
    let end = spec.start + spec.replicas;
    let mut members: BTreeMap<i64, Value> = BTreeMap::new();
    let mut condemned: Vec<(i64, Value)> = Vec::new();
    for &pod in pods {
        let Some(ord) = ordinal(name, object::name(pod)) else {
            continue;
        };
        if (spec.start..end).contains(&ord) {
            members.insert(ord, pod.clone());
        } else {
            condemned.push((ord, pod.clone()));
        }
    }
    condemned.sort_by_key(|(ord, _)| std::cmp::Reverse(*ord));

    if !deleting(set) {
        manage(registry, set, &spec, &revs, &mut members, &mut condemned).await?;
    }

    let now = jiff::Timestamp::now();
    let mut all: Vec<&Value> = members.values().collect();
    all.extend(condemned.iter().map(|(_, p)| p));
    let status = status(set, &spec, &revs, &all, collision_count, now);
    write_whole_status(registry, &STATEFUL_SETS, set, &status).await?;

    let mut live: HashSet<String> = all.iter().map(|p| revision_of(p).to_string()).collect();
    live.insert(revs.current);
    live.insert(revs.update);
    history::truncate(registry, &revisions, &live, spec.history_limit).await
}

/// The set at its current and its update revision, and those revisions' names.
struct Revs {
    current_set: Value,
    update_set: Value,
    current: String,
    update: String,
}

/// One pass of Kubernetes' `updateStatefulSet`: make the members exist and be healthy,
/// then remove the condemned, then roll. Stops where `OrderedReady` must wait.
async fn manage(
    registry: &Registry,
    set: &Value,
    spec: &Spec,
    revs: &Revs,
    members: &mut BTreeMap<i64, Value>,
    condemned: &mut [(i64, Value)],
) -> Result<()> {
    let now = jiff::Timestamp::now();
    let healthy = |p: &Value| {
        !deleting(p) && running_and_ready(p) && running_and_available(p, spec.min_ready, now)
    };
    // The first unhealthy pod, members first, then the condemned from the highest.
    let first_unhealthy: Option<String> = members
        .values()
        .chain(condemned.iter().map(|(_, p)| p))
        .find(|p| !healthy(p))
        .map(|p| object::name(p).to_string());

    for ord in spec.start..spec.start + spec.replicas {
        match members.get(&ord) {
            None => {
                let pod = new_pod(set, spec, revs, ord);
                if let Some(created) = create(registry, set, pod).await? {
                    members.insert(ord, created);
                }
                if spec.monotonic {
                    return Ok(());
                }
            }
            Some(pod) if finished(pod) => {
                // Deleted now, made again once it is gone.
                if !deleting(pod) {
                    delete(registry, set, pod).await?;
                }
                if spec.monotonic {
                    return Ok(());
                }
            }
            Some(pod) if spec.monotonic && !healthy(pod) => return Ok(()),
            Some(_) => {}
        }
    }

    for (_, pod) in condemned.iter() {
        if deleting(pod) {
            if spec.monotonic {
                return Ok(());
            }
            continue;
        }
        if spec.monotonic && !healthy(pod) && first_unhealthy.as_deref() != Some(object::name(pod))
        {
            return Ok(());
        }
        delete(registry, set, pod).await?;
        if spec.monotonic {
            return Ok(());
        }
    }

    if spec.on_delete {
        return Ok(());
    }
    // Highest ordinal first, one at a time, waiting for each to be healthy again.
    for (&ord, pod) in members.iter().rev() {
        if ord < spec.start + spec.partition {
            break;
        }
        if revision_of(pod) != revs.update && !deleting(pod) {
            return delete(registry, set, pod).await;
        }
        if !healthy(pod) {
            return Ok(());
        }
    }
    Ok(())
}

/// The pod of ordinal `ord`: from the current revision below the partition (or while a
/// rolling update has not reached it), from the update revision otherwise.
fn new_pod(set: &Value, spec: &Spec, revs: &Revs, ord: i64) -> Value {
    let current_replicas = set["status"]["currentReplicas"].as_i64().unwrap_or(0);
    let strategy = &set["spec"]["updateStrategy"];
    let use_current = strategy["type"] == "RollingUpdate"
        && if strategy["rollingUpdate"].is_object() {
            ord < spec.start + spec.partition
        } else {
            ord < spec.start + current_replicas
        };
    let (from, revision) = if use_current {
        (&revs.current_set, &revs.current)
    } else {
        (&revs.update_set, &revs.update)
    };
    let name = format!("{}-{ord}", object::name(set));
    let labels = BTreeMap::from([
        (POD_NAME_LABEL.to_string(), name.clone()),
        (POD_INDEX_LABEL.to_string(), ord.to_string()),
        (REVISION_HASH_LABEL.to_string(), revision.clone()),
    ]);
    let mut pod = owned::pod_from_template(set, &from["spec"]["template"], Some(&name), &labels);
    pod["spec"]["hostname"] = json!(name);
    if let Some(service) = set["spec"]["serviceName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        pod["spec"]["subdomain"] = json!(service);
    }
    pod
}

async fn create(registry: &Registry, set: &Value, pod: Value) -> Result<Option<Value>> {
    let pod_name = object::name(&pod).to_string();
    let result = owned::create_pod(registry, pod).await;
    let set_name = object::name(set);
    let (ty, reason, message) = match &result {
        Ok(_) => (
            "Normal",
            "SuccessfulCreate",
            format!("create Pod {pod_name} in StatefulSet {set_name} successful"),
        ),
        Err(e) => (
            "Warning",
            "FailedCreate",
            format!("create Pod {pod_name} in StatefulSet {set_name} failed error: {e}"),
        ),
    };
    events::record(
        registry,
        set,
        "StatefulSet",
        ty,
        reason,
        &message,
        COMPONENT,
    )
    .await;
    result
}

async fn delete(registry: &Registry, set: &Value, pod: &Value) -> Result<()> {
    let result = owned::delete_exact(registry, &PODS, pod).await;
    let (pod_name, set_name) = (object::name(pod), object::name(set));
    let (ty, reason, message) = match &result {
        Ok(()) => (
            "Normal",
            "SuccessfulDelete",
            format!("delete Pod {pod_name} in StatefulSet {set_name} successful"),
        ),
        Err(e) => (
            "Warning",
            "FailedDelete",
            format!("delete Pod {pod_name} in StatefulSet {set_name} failed error: {e}"),
        ),
    };
    events::record(
        registry,
        set,
        "StatefulSet",
        ty,
        reason,
        &message,
        COMPONENT,
    )
    .await;
    result
}

/// Kubernetes' `computeReplicaStatus` plus the revisions; a finished rolling update makes
/// the update revision current.
fn status(
    set: &Value,
    spec: &Spec,
    revs: &Revs,
    pods: &[&Value],
    collision_count: i64,
    now: jiff::Timestamp,
) -> Value {
    let (mut replicas, mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0, 0);
    for pod in pods {
        replicas += 1;
        if running_and_ready(pod) {
            ready += 1;
            if running_and_available(pod, spec.min_ready, now) {
                available += 1;
            }
        }
        if !deleting(pod) {
            if revision_of(pod) == revs.current {
                current += 1;
            }
            if revision_of(pod) == revs.update {
                updated += 1;
            }
        }
    }
    let mut current_revision = revs.current.as_str();
    if !spec.on_delete && updated == replicas && ready == replicas {
        current = updated;
        current_revision = &revs.update;
    }
    let mut status = json!({
        "replicas": replicas,
        "availableReplicas": available,
        "currentRevision": current_revision,
        "updateRevision": revs.update,
        "collisionCount": collision_count,
    });
    for (key, n) in [
        ("readyReplicas", ready),
        ("currentReplicas", current),
        ("updatedReplicas", updated),
    ] {
        if n > 0 {
            status[key] = json!(n);
        }
    }
    if let Some(g) = set["metadata"]["generation"].as_i64() {
        status["observedGeneration"] = json!(g);
    }
    if let Some(c) = set["status"].get("conditions") {
        status["conditions"] = c.clone();
    }
    status
}

/// Writes `status` as the whole status: fields it leaves out are removed, not kept from
/// before (a merge patch alone would keep a count that dropped to zero).
pub(super) async fn write_whole_status(
    registry: &Registry,
    resource: &'static ResourceInfo,
    obj: &Value,
    status: &Value,
) -> Result<bool> {
    if obj.get("status") == Some(status) {
        return Ok(true);
    }
    let mut patch = status.clone();
    if let (Some(old), Some(new)) = (obj["status"].as_object(), patch.as_object_mut()) {
        for key in old.keys() {
            new.entry(key.clone()).or_insert(Value::Null);
        }
    }
    owned::write_status(registry, resource, obj, &patch).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_parse_from_names() {
        assert_eq!(ordinal("web", "web-0"), Some(0));
        assert_eq!(ordinal("web", "web-12"), Some(12));
        assert_eq!(ordinal("web", "web-x"), None);
        assert_eq!(ordinal("web", "web-"), None);
        assert_eq!(ordinal("web", "webby-1"), None);
        assert_eq!(ordinal("web", "web-1-2"), None);
    }

    fn set() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u", "generation": 2},
            "spec": {"replicas": 3, "serviceName": "svc", "podManagementPolicy": "OrderedReady",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "new"}]}}}})
    }

    fn revs(set: &Value) -> Revs {
        let mut old = set.clone();
        old["spec"]["template"]["spec"]["containers"][0]["image"] = json!("old");
        Revs {
            current_set: old,
            update_set: set.clone(),
            current: "web-old".into(),
            update: "web-new".into(),
        }
    }

    #[test]
    fn pods_have_identity_and_the_partition_picks_their_revision() {
        let set = set();
        let (spec, revs) = (Spec::of(&set), revs(&set));
        let below = new_pod(&set, &spec, &revs, 0);
        assert_eq!(below["metadata"]["name"], "web-0");
        assert_eq!(below["spec"]["hostname"], "web-0");
        assert_eq!(below["spec"]["subdomain"], "svc");
        assert_eq!(below["metadata"]["labels"][POD_NAME_LABEL], "web-0");
        assert_eq!(below["metadata"]["labels"][POD_INDEX_LABEL], "0");
        assert_eq!(below["metadata"]["labels"]["app"], "web");
        assert_eq!(below["metadata"]["labels"][REVISION_HASH_LABEL], "web-old");
        assert_eq!(below["spec"]["containers"][0]["image"], "old");
        let above = new_pod(&set, &spec, &revs, 2);
        assert_eq!(above["metadata"]["labels"][REVISION_HASH_LABEL], "web-new");
        assert_eq!(above["spec"]["containers"][0]["image"], "new");
    }

    #[test]
    fn status_counts_and_completes_a_rollout() {
        let set = set();
        let (spec, revs) = (Spec::of(&set), revs(&set));
        let pod = |rev: &str, ready: &str| {
            json!({"metadata": {"labels": {REVISION_HASH_LABEL: rev}},
                "status": {"phase": "Running",
                    "conditions": [{"type": "Ready", "status": ready}]}})
        };
        let pods = [pod("web-old", "True"), pod("web-new", "False")];
        let refs: Vec<&Value> = pods.iter().collect();
        let s = status(&set, &spec, &revs, &refs, 0, jiff::Timestamp::now());
        assert_eq!(s["replicas"], 2);
        assert_eq!(s["readyReplicas"], 1);
        assert_eq!(s["availableReplicas"], 1);
        assert_eq!(s["currentReplicas"], 1);
        assert_eq!(s["updatedReplicas"], 1);
        assert_eq!(s["currentRevision"], "web-old");
        assert_eq!(s["updateRevision"], "web-new");
        assert_eq!(s["observedGeneration"], 2);
        let pods = [pod("web-new", "True"), pod("web-new", "True")];
        let refs: Vec<&Value> = pods.iter().collect();
        let s = status(&set, &spec, &revs, &refs, 0, jiff::Timestamp::now());
        assert_eq!(s["currentRevision"], "web-new");
        assert_eq!(s["currentReplicas"], 2);
    }
}
