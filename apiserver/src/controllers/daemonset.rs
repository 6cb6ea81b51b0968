//! The DaemonSet controller, after Kubernetes' `pkg/controller/daemon`: one pod on every
//! node that the template's `nodeSelector`, required node affinity and tolerations allow,
//! none elsewhere. A pod is pinned to its node as Kubernetes pins it (a required node
//! affinity on `metadata.name`) and also gets `spec.nodeName`, so the scheduler has
//! nothing to do for it. Pods get Kubernetes' default DaemonSet tolerations. A node that
//! stops matching loses its pod (a `NoSchedule` taint only keeps new pods away; a
//! `NoExecute` one evicts), and so does a node whose Node object is deleted (what the pod
//! garbage collector does in Kubernetes). A `RollingUpdate` replaces old pods with at
//! most `maxUnavailable` nodes short of an available pod; `OnDelete` waits for them to
//! be deleted. The template's revisions are ControllerRevisions, as for StatefulSets.

use std::collections::{BTreeMap, HashSet};

use minik8s_api::resource::{DAEMON_SETS, NODES, PODS};
use serde_json::{Value, json};

use super::events;
use super::history::{self, REVISION_HASH_LABEL};
use super::owned::{self, deleting, pod_available, pod_phase, pod_ready};
use super::statefulset::{adopt_orphans, by_controller, write_whole_status};
use crate::error::{ApiError, Result};
use crate::object;
use crate::registry::{DeleteParams, Preconditions, Registry};

const COMPONENT: &str = "daemonset-controller";

/// The tolerations Kubernetes gives every DaemonSet pod (`key`, `effect`).
const DEFAULT_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];
/// Added for pods on the host's network.
const NETWORK_UNAVAILABLE: (&str, &str) = ("node.kubernetes.io/network-unavailable", "NoSchedule");

pub async fn reconcile(registry: &Registry) -> Result<()> {
    let sets = owned::list_all(registry, &DAEMON_SETS).await?;
    if sets.is_empty() {
        return Ok(());
    }
    let nodes = owned::list_all(registry, &NODES).await?;
    let pods = owned::list_all(registry, &PODS).await?;
    let (by_owner, orphans) = by_controller(&pods);
    for ds in &sets {
        let uid = object::meta_str(ds, "uid").unwrap_or("");
        let mut mine: Vec<Value> = by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .map(|p| (*p).clone())
            .collect();
        let members: Vec<&Value> = orphans
            .iter()
            .copied()
            .filter(|p| target_node(p).is_some())
            .collect();
        let result = match adopt_orphans(registry, ds, &members).await {
            Ok(adopted) => {
                mine.extend(adopted);
                let refs: Vec<&Value> = mine.iter().collect();
                reconcile_one(registry, ds, &nodes, &refs).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(name = object::name(ds), error = %e, "daemonset controller");
        }
    }
    Ok(())
}

/// The node a daemon pod is meant for: its `nodeName`, or the node its required
/// affinity names (Kubernetes' `GetTargetNodeName`).
fn target_node(pod: &Value) -> Option<&str> {
    if let Some(n) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"]
        .as_array()?
        .iter()
        .flat_map(|t| t["matchFields"].as_array().into_iter().flatten())
        .find(|f| f["key"] == "metadata.name" && f["operator"] == "In")
        .and_then(|f| f["values"].as_array()?.first()?.as_str())
}

/// The template's pod with the default tolerations, as the node checks see it.
fn tolerations(template_spec: &Value) -> Vec<Value> {
    let mut all: Vec<Value> = template_spec["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut defaults = DEFAULT_TOLERATIONS.to_vec();
    if template_spec["hostNetwork"] == true {
        defaults.push(NETWORK_UNAVAILABLE);
    }
    for (key, effect) in defaults {
        let t = json!({"key": key, "operator": "Exists", "effect": effect});
        if !all.contains(&t) {
            all.push(t);
        }
    }
    all
}

fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let effect = toleration["effect"].as_str().unwrap_or("");
    if !effect.is_empty() && effect != taint["effect"].as_str().unwrap_or("") {
        return false;
    }
    let key = toleration["key"].as_str().unwrap_or("");
    let exists = toleration["operator"].as_str() == Some("Exists");
    if key.is_empty() {
        return exists;
    }
    if key != taint["key"].as_str().unwrap_or("") {
        return false;
    }
    exists || toleration["value"].as_str().unwrap_or("") == taint["value"].as_str().unwrap_or("")
}

/// A node selector requirement against the node's labels or (for `matchFields`) name.
fn requirement_matches(req: &Value, value: Option<&str>) -> bool {
    let values: Vec<&str> = req["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let number = |s: &str| s.parse::<i64>().ok();
    match req["operator"].as_str().unwrap_or("") {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => !value.is_some_and(|v| values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(bound)) = (
                value.and_then(number),
                values.first().and_then(|v| number(v)),
            ) else {
                return false;
            };
            if req["operator"] == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        _ => false,
    }
}

/// Whether the template's `nodeSelector` and required node affinity admit the node.
fn fits_affinity(spec: &Value, node: &Value) -> bool {
    let labels = object::labels(node);
    let selector = object::string_map(spec.get("nodeSelector"));
    if selector.iter().any(|(k, v)| labels.get(k) != Some(v)) {
        return false;
    }
    let required =
        &spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    let Some(terms) = required["nodeSelectorTerms"].as_array() else {
        return true;
    };
    let name = object::name(node);
    terms.iter().any(|term| {
        let exprs = term["matchExpressions"].as_array();
        let fields = term["matchFields"].as_array();
        if exprs.is_none_or(Vec::is_empty) && fields.is_none_or(Vec::is_empty) {
            return false;
        }
        exprs.into_iter().flatten().all(|r| {
            requirement_matches(
                r,
                r["key"]
                    .as_str()
                    .and_then(|k| labels.get(k))
                    .map(String::as_str),
            )
        }) && fields
            .into_iter()
            .flatten()
            .all(|r| requirement_matches(r, (r["key"] == "metadata.name").then_some(name)))
    })
}

/// Kubernetes' `NodeShouldRunDaemonPod`: whether a pod should be made for the node, and
/// whether one already there may stay.
pub fn should_run(ds: &Value, node: &Value) -> (bool, bool) {
    let spec = &ds["spec"]["template"]["spec"];
    if let Some(n) = spec["nodeName"].as_str().filter(|n| !n.is_empty())
        && n != object::name(node)
    {
        return (false, false);
    }
    if !fits_affinity(spec, node) {
        return (false, false);
    }
    let tolerations = tolerations(spec);
    let untolerated = |effects: &[&str]| {
        node["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| effects.contains(&t["effect"].as_str().unwrap_or("")))
            .any(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
    };
    if untolerated(&["NoSchedule", "NoExecute"]) {
        return (false, !untolerated(&["NoExecute"]));
    }
    (true, true)
}

fn created_at(pod: &Value) -> String {
    object::meta_str(pod, "creationTimestamp")
        .unwrap_or("")
        .to_string()
}

async fn reconcile_one(
    registry: &Registry,
    ds: &Value,
    nodes: &[Value],
    pods: &[&Value],
) -> Result<()> {
    let mut revisions = history::owned_by(registry, ds).await?;
    let mut collision_count = ds["status"]["collisionCount"].as_i64().unwrap_or(0);
    let update = history::update_revision(
        registry,
        ds,
        &mut revisions,
        &mut collision_count,
        ds["metadata"].get("annotations"),
    )
    .await?;
    let hash = update["metadata"]["labels"][REVISION_HASH_LABEL]
        .as_str()
        .unwrap_or("")
        .to_string();

    let mut by_node: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for &pod in pods {
        if let Some(node) = target_node(pod) {
            by_node.entry(node).or_default().push(pod.clone());
        }
    }
    for list in by_node.values_mut() {
        list.sort_by_key(created_at);
    }

    if !deleting(ds) {
        manage(registry, ds, nodes, &by_node, &hash).await?;
    }

    let status = status(
        ds,
        nodes,
        &by_node,
        &hash,
        collision_count,
        jiff::Timestamp::now(),
    );
    write_whole_status(registry, &DAEMON_SETS, ds, &status).await?;

    let mut live: HashSet<String> = HashSet::from([object::name(&update).to_string()]);
    for pod in pods {
        if let Some(h) = pod["metadata"]["labels"][REVISION_HASH_LABEL].as_str() {
            live.insert(history::revision_name(object::name(ds), h));
        }
    }
    let limit = ds["spec"]["revisionHistoryLimit"].as_i64().unwrap_or(10);
    history::truncate(registry, &revisions, &live, limit).await
}

/// Kubernetes' `manage` then `rollingUpdate`: pods made for nodes that lack one, removed
/// from nodes that should not have one (and from nodes that are gone), failed ones
/// replaced, then old ones replaced within `maxUnavailable`.
async fn manage(
    registry: &Registry,
    ds: &Value,
    nodes: &[Value],
    by_node: &BTreeMap<&str, Vec<Value>>,
    hash: &str,
) -> Result<()> {
    let mut doomed: Vec<&Value> = Vec::new();
    let mut wanting: Vec<&str> = Vec::new();
    let known: HashSet<&str> = nodes.iter().map(object::name).collect();
    for node in nodes {
        let name = object::name(node);
        let (run, keep) = should_run(ds, node);
        let pods = by_node.get(name).map(Vec::as_slice).unwrap_or_default();
        if run && pods.is_empty() {
            wanting.push(name);
        } else if keep {
            let mut running = Vec::new();
            for pod in pods.iter().filter(|p| !deleting(p)) {
                if matches!(pod_phase(pod), "Failed" | "Succeeded") {
                    if pod_phase(pod) == "Failed" {
                        let message = format!(
                            "Found failed daemon pod {}/{} on node {name}, will try to kill it",
                            object::namespace(pod),
                            object::name(pod)
                        );
                        events::record(
                            registry,
                            ds,
                            "DaemonSet",
                            "Warning",
                            "FailedDaemonPod",
                            &message,
                            COMPONENT,
                        )
                        .await;
                    }
                    doomed.push(pod);
                } else {
                    running.push(pod);
                }
            }
            // Without surge, one pod per node: the oldest stays.
            doomed.extend(running.into_iter().skip(1));
        } else {
            doomed.extend(pods.iter().filter(|p| !deleting(p)));
        }
    }
    for pod in by_node
        .iter()
        .filter(|(node, _)| !known.contains(*node))
        .flat_map(|(_, pods)| pods)
    {
        // Nobody is left to stop it: gone at once, as the pod garbage collector does.
        force_delete(registry, ds, pod).await?;
    }

    if ds["spec"]["updateStrategy"]["type"] != "OnDelete" {
        let already: HashSet<&str> = doomed.iter().map(|p| object::name(p)).collect();
        let roll = rolling_update(ds, nodes, by_node, hash, jiff::Timestamp::now());
        doomed.extend(
            roll.into_iter()
                .filter(|p| !already.contains(object::name(p))),
        );
    }

    for node in wanting {
        let pod = new_pod(ds, node, hash);
        let result = owned::create_pod(registry, pod).await;
        let (ty, reason, message) = match &result {
            Ok(Some(p)) => (
                "Normal",
                "SuccessfulCreate",
                format!("Created pod: {}", object::name(p)),
            ),
            Ok(None) => continue,
            Err(e) => ("Warning", "FailedCreate", format!("Error creating: {e}")),
        };
        events::record(registry, ds, "DaemonSet", ty, reason, &message, COMPONENT).await;
        result?;
    }
    for pod in doomed {
        delete(registry, ds, pod).await?;
    }
    Ok(())
}

/// The old pods to delete now: unavailable ones at once, available ones while fewer than
/// `maxUnavailable` nodes lack an available pod (Kubernetes' `rollingUpdate` without
/// surge).
fn rolling_update<'a>(
    ds: &Value,
    nodes: &[Value],
    by_node: &'a BTreeMap<&str, Vec<Value>>,
    hash: &str,
    now: jiff::Timestamp,
) -> Vec<&'a Value> {
    let min_ready = ds["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let desired: Vec<&str> = nodes
        .iter()
        .filter(|n| should_run(ds, n).0)
        .map(object::name)
        .collect();
    let max_unavailable = max_unavailable(ds, desired.len());
    let mut unavailable = 0;
    let (mut replace_now, mut candidates) = (Vec::new(), Vec::new());
    for node in desired {
        let pods: Vec<&Value> = by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter(|p| !deleting(p))
            .collect();
        let is_new = |p: &&Value| p["metadata"]["labels"][REVISION_HASH_LABEL] == hash;
        let new = pods.iter().find(|p| is_new(p));
        let old = pods.iter().find(|p| !is_new(p));
        match (new, old) {
            (None, None) | (Some(_), Some(_)) => unavailable += 1,
            (Some(new), None) => {
                if !pod_available(new, min_ready, now) {
                    unavailable += 1;
                }
            }
            (None, Some(old)) => {
                if !pod_available(old, min_ready, now) {
                    replace_now.push(*old);
                    unavailable += 1;
                } else if unavailable < max_unavailable {
                    candidates.push(*old);
                }
            }
        }
    }
    let room = max_unavailable
        .saturating_sub(unavailable)
        .min(candidates.len());
    replace_now.extend(candidates.into_iter().take(room));
    replace_now
}

/// `maxUnavailable` of `desired` nodes (a percentage rounds up); at least one when
/// `maxSurge` is zero too.
fn max_unavailable(ds: &Value, desired: usize) -> usize {
    let ru = &ds["spec"]["updateStrategy"]["rollingUpdate"];
    let scaled = |v: &Value| match v {
        Value::Number(n) => n.as_u64().unwrap_or(0) as usize,
        Value::String(s) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<usize>().ok())
            .map_or(0, |p| (p * desired).div_ceil(100)),
        _ => 0,
    };
    let unavailable = if ru["maxUnavailable"].is_null() {
        1
    } else {
        scaled(&ru["maxUnavailable"])
    };
    if unavailable == 0 && scaled(&ru["maxSurge"]) == 0 {
        1
    } else {
        unavailable
    }
}

/// The pod for `node`: the template, the revision's hash, the default tolerations, and the
/// node both as a required affinity on its name and as `nodeName`.
fn new_pod(ds: &Value, node: &str, hash: &str) -> Value {
    let labels = BTreeMap::from([(REVISION_HASH_LABEL.to_string(), hash.to_string())]);
    let template = &ds["spec"]["template"];
    let mut pod = owned::pod_from_template(ds, template, None, &labels);
    let spec = &mut pod["spec"];
    spec["tolerations"] = json!(tolerations(&template["spec"]));
    let pinned = json!({"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": [node]}]}]});
    if !spec["affinity"].is_object() {
        spec["affinity"] = json!({});
    }
    if !spec["affinity"]["nodeAffinity"].is_object() {
        spec["affinity"]["nodeAffinity"] = json!({});
    }
    spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = pinned;
    spec["nodeName"] = json!(node);
    pod
}

async fn delete(registry: &Registry, ds: &Value, pod: &Value) -> Result<()> {
    let result = owned::delete_exact(registry, &PODS, pod).await;
    record_delete(registry, ds, pod, &result).await;
    result
}

async fn force_delete(registry: &Registry, ds: &Value, pod: &Value) -> Result<()> {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: object::meta_str(pod, "uid").map(str::to_string),
            resource_version: None,
        }),
        ..Default::default()
    };
    let result = match registry
        .delete(
            &PODS,
            Some(object::namespace(pod)),
            object::name(pod),
            &params,
        )
        .await
    {
        Ok(_) | Err(ApiError::NotFound { .. } | ApiError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    };
    record_delete(registry, ds, pod, &result).await;
    result
}

async fn record_delete(registry: &Registry, ds: &Value, pod: &Value, result: &Result<()>) {
    let (ty, reason, message) = match result {
        Ok(()) => (
            "Normal",
            "SuccessfulDelete",
            format!("Deleted pod: {}", object::name(pod)),
        ),
        Err(e) => ("Warning", "FailedDelete", format!("Error deleting: {e}")),
    };
    events::record(registry, ds, "DaemonSet", ty, reason, &message, COMPONENT).await;
}

/// Kubernetes' `updateDaemonSetStatus`, counted per node from the oldest pod on it.
fn status(
    ds: &Value,
    nodes: &[Value],
    by_node: &BTreeMap<&str, Vec<Value>>,
    hash: &str,
    collision_count: i64,
    now: jiff::Timestamp,
) -> Value {
    let min_ready = ds["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let (mut desired, mut current, mut misscheduled) = (0, 0, 0);
    let (mut ready, mut available, mut updated) = (0, 0, 0);
    for node in nodes {
        let (run, _) = should_run(ds, node);
        let pods = by_node
            .get(object::name(node))
            .map(Vec::as_slice)
            .unwrap_or_default();
        if !run {
            if !pods.is_empty() {
                misscheduled += 1;
            }
            continue;
        }
        desired += 1;
        let Some(pod) = pods.first() else { continue };
        current += 1;
        if pod_ready(pod) {
            ready += 1;
            if pod_available(pod, min_ready, now) {
                available += 1;
            }
        }
        if pod["metadata"]["labels"][REVISION_HASH_LABEL] == hash {
            updated += 1;
        }
    }
    let mut status = json!({
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": desired,
        "numberReady": ready,
    });
    for (key, n) in [
        ("updatedNumberScheduled", updated),
        ("numberAvailable", available),
        ("numberUnavailable", desired - available),
        ("collisionCount", collision_count),
    ] {
        if n > 0 {
            status[key] = json!(n);
        }
    }
    if let Some(g) = ds["metadata"]["generation"].as_i64() {
        status["observedGeneration"] = json!(g);
    }
    if let Some(c) = ds["status"].get("conditions") {
        status["conditions"] = c.clone();
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(template_spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "ns", "uid": "u", "generation": 1},
            "spec": {"template": {"metadata": {"labels": {"app": "agent"}},
                "spec": template_spec}}})
    }

    fn node(name: &str, labels: Value, taints: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}})
    }

    #[test]
    fn selectors_affinity_and_taints_pick_the_nodes() {
        let plain = node("n1", json!({"disk": "ssd"}), json!([]));
        let any = ds(json!({"containers": []}));
        assert_eq!(should_run(&any, &plain), (true, true));
        let ssd = ds(json!({"nodeSelector": {"disk": "ssd"}}));
        assert_eq!(should_run(&ssd, &plain), (true, true));
        assert_eq!(
            should_run(&ssd, &node("n2", json!({}), json!([]))),
            (false, false)
        );
        let affinity = ds(json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["hdd"]}]}]}}}}));
        assert_eq!(should_run(&affinity, &plain), (true, true));
        assert_eq!(
            should_run(&affinity, &node("n3", json!({"disk": "hdd"}), json!([]))),
            (false, false)
        );

        let no_schedule = node(
            "n4",
            json!({}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        );
        assert_eq!(should_run(&any, &no_schedule), (false, true));
        let no_execute = node(
            "n5",
            json!({}),
            json!([{"key": "dedicated", "effect": "NoExecute"}]),
        );
        assert_eq!(should_run(&any, &no_execute), (false, false));
        let tolerant =
            ds(json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db"}]}));
        assert_eq!(should_run(&tolerant, &no_schedule), (true, true));
        // The default tolerations: an unschedulable or not-ready node still runs one.
        let cordoned = node(
            "n6",
            json!({}),
            json!([
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
        );
        assert_eq!(should_run(&any, &cordoned), (true, true));
    }

    #[test]
    fn pods_are_pinned_to_their_node() {
        let d = ds(json!({"containers": [], "hostNetwork": true,
            "tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}));
        let pod = new_pod(&d, "n1", "abc");
        assert_eq!(pod["metadata"]["generateName"], "agent-");
        assert_eq!(pod["metadata"]["labels"]["app"], "agent");
        assert_eq!(pod["metadata"]["labels"][REVISION_HASH_LABEL], "abc");
        assert_eq!(pod["spec"]["nodeName"], "n1");
        assert_eq!(target_node(&pod), Some("n1"));
        let mut unbound = pod.clone();
        unbound["spec"]["nodeName"] = Value::Null;
        assert_eq!(target_node(&unbound), Some("n1"));
        let tolerations = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(tolerations.len(), 7, "{tolerations:?}");
        assert!(
            tolerations
                .iter()
                .any(|t| t["key"] == "node.kubernetes.io/network-unavailable")
        );
    }

    fn pod(hash: &str, ready: bool) -> Value {
        json!({"metadata": {"labels": {REVISION_HASH_LABEL: hash}},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn a_rolling_update_keeps_within_max_unavailable() {
        let mut d = ds(json!({}));
        d["spec"]["updateStrategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}});
        let nodes: Vec<Value> = (1..=3)
            .map(|i| node(&format!("n{i}"), json!({}), json!([])))
            .collect();
        let now = jiff::Timestamp::now();
        let mut by_node = BTreeMap::from([
            ("n1", vec![pod("old", true)]),
            ("n2", vec![pod("old", true)]),
            ("n3", vec![pod("old", false)]),
        ]);
        // The unready old pod goes at once, and counts as none available: nothing else.
        let doomed = rolling_update(&d, &nodes, &by_node, "new", now);
        assert_eq!(doomed.len(), 1);
        assert_eq!(doomed[0]["status"]["conditions"][0]["status"], "False");
        by_node.insert("n3", vec![pod("new", true)]);
        assert_eq!(rolling_update(&d, &nodes, &by_node, "new", now).len(), 1);
        by_node.insert("n3", vec![pod("new", false)]);
        assert!(rolling_update(&d, &nodes, &by_node, "new", now).is_empty());
        d["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = json!("100%");
        assert_eq!(rolling_update(&d, &nodes, &by_node, "new", now).len(), 2);

        let s = status(&d, &nodes, &by_node, "new", 0, now);
        assert_eq!(s["desiredNumberScheduled"], 3);
        assert_eq!(s["currentNumberScheduled"], 3);
        assert_eq!(s["numberReady"], 2);
        assert_eq!(s["numberAvailable"], 2);
        assert_eq!(s["numberUnavailable"], 1);
        assert_eq!(s["updatedNumberScheduled"], 1);
        assert_eq!(s["numberMisscheduled"], 0);
    }
}
