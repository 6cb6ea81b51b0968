//! The scheduler: binds each pod that names no node to a Ready node that matches its
//! `nodeSelector` and has room for its requests, spreading pods by requested CPU.

use std::collections::{BTreeMap, HashMap};

use minik8s_api::quantity::parse_quantity;
use minik8s_api::resource::{NODES, PODS};
use serde_json::{Value, json};

use super::events;
use crate::error::{ApiError, Result};
use crate::object;
use crate::patch::PatchType;
use crate::registry::{FieldValidation, Filter, ListParams, Registry};
use crate::strategy::Part;

pub const SCHEDULER_NAME: &str = "default-scheduler";

/// Binds written at once (Kubernetes' scheduler binds asynchronously too).
const BIND_CONCURRENCY: usize = 64;

/// CPU in millicores, memory in bytes, and pod count: what a pod asks and a node offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_milli: i128,
    pub memory: i128,
    pub pods: i128,
}

fn quantity(v: &Value, key: &str, milli: bool) -> i128 {
    v.get(key)
        .and_then(Value::as_str)
        .and_then(|q| parse_quantity(q).ok())
        .map(|q| if milli { q.as_millis() } else { q.as_value() })
        .unwrap_or(0)
}

/// A pod's requests as Kubernetes counts them: the sum over app containers, or the
/// largest init container if that is more.
pub fn pod_requests(pod: &Value) -> Resources {
    let sum = |list: &Value| {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let r = &c["resources"]["requests"];
                (quantity(r, "cpu", true), quantity(r, "memory", false))
            })
            .collect::<Vec<_>>()
    };
    let apps = sum(&pod["spec"]["containers"]);
    let inits = sum(&pod["spec"]["initContainers"]);
    let cpu = apps.iter().map(|r| r.0).sum::<i128>();
    let mem = apps.iter().map(|r| r.1).sum::<i128>();
    Resources {
        cpu_milli: cpu.max(inits.iter().map(|r| r.0).max().unwrap_or(0)),
        memory: mem.max(inits.iter().map(|r| r.1).max().unwrap_or(0)),
        pods: 1,
    }
}

fn allocatable(node: &Value) -> Resources {
    let a = &node["status"]["allocatable"];
    Resources {
        cpu_milli: quantity(a, "cpu", true),
        memory: quantity(a, "memory", false),
        pods: quantity(a, "pods", false),
    }
}

fn is_ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn is_terminal(pod: &Value) -> bool {
    matches!(
        object::path_string(pod, "status.phase").as_str(),
        "Succeeded" | "Failed"
    )
}

/// Why a node cannot take a pod, in the scheduler's words; `None` if it can.
pub fn unfit_reason(pod: &Value, node: &Value, used: &Resources) -> Option<&'static str> {
    if !is_ready(node) {
        return Some("node(s) were not ready");
    }
    if node["spec"]["unschedulable"] == true {
        return Some("node(s) were unschedulable");
    }
    if object::path_string(node, "spec.podCIDR").is_empty() {
        return Some("node(s) had no pod CIDR yet");
    }
    let labels = object::labels(node);
    let selector: BTreeMap<String, String> = object::string_map(pod["spec"].get("nodeSelector"));
    if selector.iter().any(|(k, v)| labels.get(k) != Some(v)) {
        return Some("node(s) didn't match Pod's node affinity/selector");
    }
    let want = pod_requests(pod);
    let have = allocatable(node);
    if have.pods > 0 && used.pods + 1 > have.pods {
        return Some("Too many pods");
    }
    if want.cpu_milli > 0 && used.cpu_milli + want.cpu_milli > have.cpu_milli {
        return Some("Insufficient cpu");
    }
    if want.memory > 0 && used.memory + want.memory > have.memory {
        return Some("Insufficient memory");
    }
    None
}

pub async fn reconcile(registry: &Registry) -> Result<()> {
    let unscheduled = Filter::new(&PODS, None, None, Some("spec.nodeName="))?;
    let (mut pending, _, _) = registry
        .list(&PODS, &unscheduled, &ListParams::default())
        .await?;
    pending.retain(|p| {
        !is_terminal(p)
            && !object::meta(p).is_some_and(|m| m.contains_key("deletionTimestamp"))
            && matches!(
                p["spec"]["schedulerName"].as_str(),
                None | Some(SCHEDULER_NAME)
            )
    });
    if pending.is_empty() {
        return Ok(());
    }
    pending.sort_by(|a, b| {
        object::meta_str(a, "creationTimestamp").cmp(&object::meta_str(b, "creationTimestamp"))
    });
    let all_nodes = Filter::new(&NODES, None, None, None)?;
    let (nodes, _, _) = registry
        .list(&NODES, &all_nodes, &ListParams::default())
        .await?;
    // What the nodes run already: only worth a list of every pod when there are nodes.
    let pods = if nodes.is_empty() {
        Vec::new()
    } else {
        let all_pods = Filter::new(&PODS, None, None, None)?;
        registry
            .list(&PODS, &all_pods, &ListParams::default())
            .await?
            .0
    };
    let mut used: HashMap<String, Resources> = HashMap::new();
    for p in pods.iter().filter(|p| !is_terminal(p)) {
        let node = object::path_string(p, "spec.nodeName");
        if node.is_empty() {
            continue;
        }
        let r = pod_requests(p);
        let u = used.entry(node).or_default();
        u.cpu_milli += r.cpu_milli;
        u.memory += r.memory;
        u.pods += 1;
    }

    // Placement is decided one pod after another against the running tally, so that
    // pods spread; the writes that carry the decisions out then go concurrently, as
    // the store commits concurrent writes together. A bind that loses a race leaves the
    // tally one pod high until the next round recounts.
    let mut decisions = Vec::with_capacity(pending.len());
    for pod in &pending {
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        let mut best: Option<(&Value, i128)> = None;
        for node in &nodes {
            let u = used.get(object::name(node)).copied().unwrap_or_default();
            match unfit_reason(pod, node, &u) {
                Some(r) => *reasons.entry(r).or_default() += 1,
                None => {
                    // Least requested CPU share first, so pods spread over nodes.
                    let cap = allocatable(node).cpu_milli.max(1);
                    let score = (u.cpu_milli * 1000) / cap * 1000 + u.pods;
                    if best.is_none_or(|(_, s)| score < s) {
                        best = Some((node, score));
                    }
                }
            }
        }
        match best {
            Some((node, _)) => {
                let name = object::name(node).to_string();
                let r = pod_requests(pod);
                let u = used.entry(name.clone()).or_default();
                u.cpu_milli += r.cpu_milli;
                u.memory += r.memory;
                u.pods += 1;
                decisions.push((pod, Ok(name)));
            }
            None => decisions.push((pod, Err(reasons))),
        }
    }
    let total = nodes.len();
    for chunk in decisions.chunks(BIND_CONCURRENCY) {
        let results = futures::future::join_all(
            chunk
                .iter()
                .map(|(pod, decision)| carry_out(registry, pod, decision, total)),
        )
        .await;
        results.into_iter().collect::<Result<Vec<()>>>()?;
    }
    Ok(())
}

/// Binds `pod` to the node decided on, or says why no node fits.
async fn carry_out(
    registry: &Registry,
    pod: &Value,
    decision: &std::result::Result<String, BTreeMap<&str, usize>>,
    total: usize,
) -> Result<()> {
    match decision {
        Ok(node) => bind(registry, pod, node).await.map(|_| ()),
        Err(reasons) => unschedulable(registry, pod, total, reasons).await,
    }
}

/// Sets `spec.nodeName` if the pod is still the version we looked at.
async fn bind(registry: &Registry, pod: &Value, node: &str) -> Result<bool> {
    let ns = object::namespace(pod);
    let name = object::name(pod);
    let patch = json!({
        "metadata": {"resourceVersion": object::meta_str(pod, "resourceVersion")},
        "spec": {"nodeName": node},
    });
    let bound = match registry
        .patch(
            &PODS,
            Some(ns),
            name,
            PatchType::Merge,
            &patch,
            Part::Main,
            FieldValidation::Ignore,
        )
        .await
    {
        Ok(w) => w.object,
        // Changed, bound elsewhere or gone since we looked: the next round sees it.
        Err(ApiError::Conflict { .. } | ApiError::NotFound { .. } | ApiError::Invalid { .. }) => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    let condition = json!({"status": {"conditions": [{
        "type": "PodScheduled", "status": "True", "lastProbeTime": null,
        "lastTransitionTime": object::now_rfc3339(),
    }]}});
    if let Err(e) = registry
        .patch(
            &PODS,
            Some(ns),
            name,
            PatchType::Strategic,
            &condition,
            Part::Status,
            FieldValidation::Ignore,
        )
        .await
    {
        tracing::debug!(error = %e, "setting PodScheduled");
    }
    events::record(
        registry,
        &bound,
        "Pod",
        "Normal",
        "Scheduled",
        &format!("Successfully assigned {ns}/{name} to {node}"),
        SCHEDULER_NAME,
    )
    .await;
    Ok(true)
}

/// Kubernetes' message: `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) ...`.
fn unschedulable_message(total: usize, reasons: &BTreeMap<&str, usize>) -> String {
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    if parts.is_empty() {
        format!("0/{total} nodes are available.")
    } else {
        format!("0/{total} nodes are available: {}.", parts.join(", "))
    }
}

async fn unschedulable(
    registry: &Registry,
    pod: &Value,
    total: usize,
    reasons: &BTreeMap<&str, usize>,
) -> Result<()> {
    let message = unschedulable_message(total, reasons);
    let current = pod["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"));
    if current.is_some_and(|c| c["message"] == message.as_str()) {
        return Ok(());
    }
    let patch = json!({"status": {"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastProbeTime": null, "lastTransitionTime": object::now_rfc3339(),
    }]}});
    match registry
        .patch(
            &PODS,
            Some(object::namespace(pod)),
            object::name(pod),
            PatchType::Strategic,
            &patch,
            Part::Status,
            FieldValidation::Ignore,
        )
        .await
    {
        Ok(_) | Err(ApiError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    events::record(
        registry,
        pod,
        "Pod",
        "Warning",
        "FailedScheduling",
        &message,
        SCHEDULER_NAME,
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(cpu: &str, mem: &str, labels: Value) -> Value {
        json!({"metadata": {"name": "n", "labels": labels},
               "spec": {"podCIDR": "10.244.0.0/24"},
               "status": {"allocatable": {"cpu": cpu, "memory": mem, "pods": "110"},
                          "conditions": [{"type": "Ready", "status": "True"}]}})
    }

    fn pod(cpu: &str, mem: &str, selector: Value) -> Value {
        json!({"spec": {"nodeSelector": selector, "containers": [
            {"name": "a", "resources": {"requests": {"cpu": cpu, "memory": mem}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "3"}}}]}})
    }

    #[test]
    fn requests_count_the_largest_init_container() {
        let r = pod_requests(&pod("500m", "64Mi", json!({})));
        assert_eq!(r.cpu_milli, 3000);
        assert_eq!(r.memory, 64 * 1024 * 1024);
    }

    #[test]
    fn fit_checks_selector_readiness_and_room() {
        let n = node("4", "1Gi", json!({"disk": "ssd"}));
        let none = Resources::default();
        assert_eq!(
            unfit_reason(&pod("1", "64Mi", json!({"disk": "ssd"})), &n, &none),
            None
        );
        assert_eq!(
            unfit_reason(&pod("1", "64Mi", json!({"disk": "hdd"})), &n, &none),
            Some("node(s) didn't match Pod's node affinity/selector")
        );
        let busy = Resources {
            cpu_milli: 2000,
            memory: 0,
            pods: 3,
        };
        assert_eq!(
            unfit_reason(&pod("1", "64Mi", json!({})), &n, &busy),
            Some("Insufficient cpu")
        );
        assert_eq!(
            unfit_reason(&pod("100m", "2Gi", json!({})), &n, &none),
            Some("Insufficient memory")
        );
        let mut down = n.clone();
        down["status"]["conditions"][0]["status"] = json!("Unknown");
        assert_eq!(
            unfit_reason(&pod("1", "1", json!({})), &down, &none),
            Some("node(s) were not ready")
        );
    }

    #[test]
    fn message_reads_like_kubernetes() {
        let mut r = BTreeMap::new();
        r.insert("Insufficient cpu", 1);
        r.insert("node(s) were not ready", 2);
        assert_eq!(
            unschedulable_message(3, &r),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) were not ready."
        );
    }
}
