//! `kubectl describe node`, line for line as kubectl lays it out.

use std::collections::BTreeMap;

use serde_json::Value;

use super::writer::{
    Writer, annotations_multiline, events, labels_multiline, list, s, taints_multiline, v,
};
use minik8s_api::quantity::{Quantity, parse_quantity};

pub fn describe_node(
    node: &Value,
    lease: &Result<Value, minik8s_client::Error>,
    pods: &[Value],
    node_events: Option<&[Value]>,
    w: &mut Writer,
) {
    let meta = &node["metadata"];
    let spec = &node["spec"];
    let status = &node["status"];
    w.write(0, &format!("Name:\t{}\n", s(&meta["name"])));
    let roles = roles(&meta["labels"]);
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };
    w.write(0, &format!("Roles:\t{roles}\n"));
    labels_multiline(w, "Labels", &meta["labels"]);
    annotations_multiline(w, "Annotations", &meta["annotations"]);
    let created = w.time(&meta["creationTimestamp"]);
    w.write(0, &format!("CreationTimestamp:\t{created}\n"));
    taints_multiline(w, "Taints", &spec["taints"]);
    w.write(
        0,
        &format!(
            "Unschedulable:\t{}\n",
            spec["unschedulable"].as_bool().unwrap_or(false)
        ),
    );
    match lease {
        Ok(lease) => {
            let spec = &lease["spec"];
            let or_unset = |w: &Writer, key: &str| {
                if spec[key].is_null() {
                    "<unset>".to_string()
                } else {
                    w.time(&spec[key])
                }
            };
            let holder = spec["holderIdentity"].as_str().unwrap_or("<unset>");
            let (acquire, renew) = (or_unset(w, "acquireTime"), or_unset(w, "renewTime"));
            w.write(0, "Lease:\n");
            w.write(1, &format!("HolderIdentity:\t{holder}\n"));
            w.write(1, &format!("AcquireTime:\t{acquire}\n"));
            w.write(1, &format!("RenewTime:\t{renew}\n"));
        }
        // kubectl says why it could not show the lease.
        Err(e) => {
            let message = e
                .status()
                .and_then(|st| st.message.clone())
                .unwrap_or_else(|| e.to_string());
            w.write(0, &format!("Lease:\tFailed to get lease: {message}\n"));
        }
    }
    let conditions = list(&status["conditions"]);
    if !conditions.is_empty() {
        w.write(
            0,
            "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n",
        );
        w.write(
            1,
            "----\t------\t-----------------\t------------------\t------\t-------\n",
        );
        for c in conditions {
            let heartbeat = w.time(&c["lastHeartbeatTime"]);
            let transition = w.time(&c["lastTransitionTime"]);
            w.write(
                1,
                &format!(
                    "{} \t{} \t{heartbeat} \t{transition} \t{} \t{}\n",
                    s(&c["type"]),
                    v(&c["status"]),
                    s(&c["reason"]),
                    s(&c["message"])
                ),
            );
        }
    }
    w.write(0, "Addresses:\n");
    for a in list(&status["addresses"]) {
        w.write(1, &format!("{}:\t{}\n", s(&a["type"]), s(&a["address"])));
    }
    for (title, key) in [("Capacity", "capacity"), ("Allocatable", "allocatable")] {
        let resources = quantities(&status[key]);
        if !resources.is_empty() {
            w.write(0, &format!("{title}:\n"));
            for (name, q) in &resources {
                w.write(0, &format!("  {name}:\t{}\n", q.canonical()));
            }
        }
    }
    let info = &status["nodeInfo"];
    w.write(0, "System Info:\n");
    for (title, key) in [
        ("Machine ID", "machineID"),
        ("System UUID", "systemUUID"),
        ("Boot ID", "bootID"),
        ("Kernel Version", "kernelVersion"),
        ("OS Image", "osImage"),
        ("Operating System", "operatingSystem"),
        ("Architecture", "architecture"),
        ("Container Runtime Version", "containerRuntimeVersion"),
        ("Kubelet Version", "kubeletVersion"),
        ("Kube-Proxy Version", "kubeProxyVersion"),
    ] {
        w.write(0, &format!("  {title}:\t{}\n", s(&info[key])));
    }
    if !s(&spec["podCIDR"]).is_empty() {
        w.write(0, &format!("PodCIDR:\t{}\n", s(&spec["podCIDR"])));
    }
    let cidrs: Vec<&str> = list(&spec["podCIDRs"]).iter().map(s).collect();
    if !cidrs.is_empty() {
        w.write(0, &format!("PodCIDRs:\t{}\n", cidrs.join(",")));
    }
    if !s(&spec["providerID"]).is_empty() {
        w.write(0, &format!("ProviderID:\t{}\n", s(&spec["providerID"])));
    }
    node_resources(w, node, pods);
    if let Some(node_events) = node_events {
        events(w, node_events);
    }
}

/// The roles from `node-role.kubernetes.io/ROLE` and `kubernetes.io/role` labels.
fn roles(labels: &Value) -> Vec<String> {
    let mut roles: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, val)| {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                Some(role.to_string())
            } else if k == "kubernetes.io/role" {
                Some(s(val).to_string())
            } else {
                None
            }
        })
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

fn quantities(list: &Value) -> BTreeMap<String, Quantity> {
    list.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, val)| parse_quantity(s(val)).ok().map(|q| (k.clone(), q)))
        .collect()
}

/// A pod's requests and limits as the scheduler counts them: the sum over its
/// containers, or the largest init container's when that is more.
fn pod_requests_and_limits(
    pod: &Value,
) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let mut out = (BTreeMap::new(), BTreeMap::new());
    for (i, kind) in ["requests", "limits"].iter().enumerate() {
        let total: &mut BTreeMap<String, Quantity> = if i == 0 { &mut out.0 } else { &mut out.1 };
        for c in list(&pod["spec"]["containers"]) {
            for (name, q) in quantities(&c["resources"][kind]) {
                total.entry(name).or_default().add(&q);
            }
        }
        for c in list(&pod["spec"]["initContainers"]) {
            for (name, q) in quantities(&c["resources"][kind]) {
                let current = total.entry(name).or_default();
                if q.as_millis() > current.as_millis() {
                    *current = q;
                }
            }
        }
        for (name, q) in quantities(&pod["spec"]["overhead"]) {
            total.entry(name).or_default().add(&q);
        }
    }
    out
}

/// `int64(float64(part) / float64(whole) * 100)`, 0 when there is no whole.
fn percent(part: i128, whole: i128) -> i64 {
    if whole == 0 {
        return 0;
    }
    (part as f64 / whole as f64 * 100.0) as i64
}

fn node_resources(w: &mut Writer, node: &Value, pods: &[Value]) {
    let mut allocatable = quantities(&node["status"]["allocatable"]);
    if allocatable.is_empty() {
        allocatable = quantities(&node["status"]["capacity"]);
    }
    let alloc = |name: &str| allocatable.get(name).copied().unwrap_or_default();
    let (cpu, memory, storage) = (alloc("cpu"), alloc("memory"), alloc("ephemeral-storage"));
    let get = |m: &BTreeMap<String, Quantity>, name: &str| m.get(name).copied().unwrap_or_default();
    w.write(
        0,
        &format!("Non-terminated Pods:\t({} in total)\n", pods.len()),
    );
    w.write(
        1,
        "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n",
    );
    w.write(
        1,
        "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n",
    );
    let mut total_requests: BTreeMap<String, Quantity> = BTreeMap::new();
    let mut total_limits: BTreeMap<String, Quantity> = BTreeMap::new();
    for pod in pods {
        let (requests, limits) = pod_requests_and_limits(pod);
        let (cr, cl) = (get(&requests, "cpu"), get(&limits, "cpu"));
        let (mr, ml) = (get(&requests, "memory"), get(&limits, "memory"));
        let age = w.since(&pod["metadata"]["creationTimestamp"]);
        w.write(
            1,
            &format!(
                "{}\t{}\t\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{age}\n",
                s(&pod["metadata"]["namespace"]),
                s(&pod["metadata"]["name"]),
                cr.canonical(),
                percent(cr.as_millis(), cpu.as_millis()),
                cl.canonical(),
                percent(cl.as_millis(), cpu.as_millis()),
                mr.canonical(),
                percent(mr.as_value(), memory.as_value()),
                ml.canonical(),
                percent(ml.as_value(), memory.as_value()),
            ),
        );
        for (name, q) in requests {
            total_requests.entry(name).or_default().add(&q);
        }
        for (name, q) in limits {
            total_limits.entry(name).or_default().add(&q);
        }
    }
    w.write(
        0,
        "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n",
    );
    w.write(1, "Resource\tRequests\tLimits\n");
    w.write(1, "--------\t--------\t------\n");
    for (name, whole, milli) in [
        ("cpu", cpu, true),
        ("memory", memory, false),
        ("ephemeral-storage", storage, false),
    ] {
        let (r, l) = (get(&total_requests, name), get(&total_limits, name));
        let frac = |q: &Quantity| {
            if milli {
                percent(q.as_millis(), whole.as_millis())
            } else {
                percent(q.as_value(), whole.as_value())
            }
        };
        w.write(
            1,
            &format!(
                "{name}\t{} ({}%)\t{} ({}%)\n",
                r.canonical(),
                frac(&r),
                l.canonical(),
                frac(&l)
            ),
        );
    }
    let mut huge: Vec<&String> = allocatable
        .keys()
        .filter(|k| k.starts_with("hugepages-"))
        .collect();
    huge.sort();
    for name in huge {
        let whole = alloc(name);
        let (r, l) = (get(&total_requests, name), get(&total_limits, name));
        w.write(
            1,
            &format!(
                "{name}\t{} ({}%)\t{} ({}%)\n",
                r.canonical(),
                percent(r.as_value(), whole.as_value()),
                l.canonical(),
                percent(l.as_value(), whole.as_value())
            ),
        );
    }
    let standard = ["cpu", "memory", "ephemeral-storage", "pods"];
    let mut extended: Vec<&String> = allocatable
        .keys()
        .filter(|k| !standard.contains(&k.as_str()) && !k.starts_with("hugepages-"))
        .collect();
    extended.sort();
    for name in extended {
        w.write(
            1,
            &format!(
                "{name}\t{}\t{}\n",
                get(&total_requests, name).canonical(),
                get(&total_limits, name).canonical()
            ),
        );
    }
}
