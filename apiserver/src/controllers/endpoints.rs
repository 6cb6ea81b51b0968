//! The endpoints controller: for every service with a selector, the addresses of the pods
//! it selects — as `core/v1` Endpoints (what `kubectl get ep` and older clients read) and
//! as `discovery.k8s.io/v1` EndpointSlices (what a proxy reads), with Kubernetes' ready,
//! serving and terminating conditions, target references and ports resolved by number or
//! by container port name. Level-triggered: each pass computes what should be from the
//! services and pods and writes only what differs, so running it twice changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use minik8s_api::resource::{ENDPOINT_SLICES, ENDPOINTS, PODS, SERVICES};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, Result};
use crate::object;
use crate::registry::{DeleteParams, FieldValidation, Filter, ListParams, Registry};
use crate::strategy::Part;

/// Label and value that mark the slices this controller owns.
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Label naming a slice's service.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Endpoints with this annotation are leader-election records, not a service's.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
/// Endpoints per slice (Kubernetes' default `--max-endpoints-per-slice`).
pub const MAX_PER_SLICE: usize = 100;

/// One pod's place behind a service.
#[derive(Clone, Debug, PartialEq)]
struct Member {
    ip: String,
    ready: bool,
    serving: bool,
    terminating: bool,
    node: String,
    hostname: Option<String>,
    pod: Value,
}

/// A port of the service as resolved for one pod.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Port {
    name: String,
    port: i64,
    protocol: String,
}

pub async fn reconcile(registry: &Registry) -> Result<()> {
    let list = |r| async move {
        let all = Filter::new(r, None, None, None)?;
        registry
            .list(r, &all, &ListParams::default())
            .await
            .map(|(items, _, _)| items)
    };
    let services = list(&SERVICES).await?;
    let endpoints = list(&ENDPOINTS).await?;
    let slices = list(&ENDPOINT_SLICES).await?;
    // Pods only of the namespaces where a service selects some: a pass that has nothing to
    // select (most of a cluster's churn, when no service selects) decodes no pod.
    let selecting: BTreeSet<&str> = services
        .iter()
        .filter(|s| has_selector(s))
        .map(object::namespace)
        .collect();
    let mut pods = Vec::new();
    for ns in selecting {
        let in_ns = Filter::new(&PODS, Some(ns.to_string()), None, None)?;
        pods.extend(
            registry
                .list(&PODS, &in_ns, &ListParams::default())
                .await?
                .0,
        );
    }

    let mut pods_by_ns: HashMap<&str, Vec<&Value>> = HashMap::new();
    for p in &pods {
        pods_by_ns.entry(object::namespace(p)).or_default().push(p);
    }
    let key = |o: &Value| {
        (
            object::namespace(o).to_string(),
            object::name(o).to_string(),
        )
    };
    let mut endpoints_by_key: HashMap<(String, String), &Value> =
        endpoints.iter().map(|e| (key(e), e)).collect();
    let mut slices_by_service: HashMap<(String, String), Vec<&Value>> = HashMap::new();
    for s in &slices {
        if labels(s).get(MANAGED_BY).and_then(Value::as_str) != Some(CONTROLLER_NAME) {
            continue;
        }
        let service = labels(s)
            .get(SERVICE_NAME)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        slices_by_service
            .entry((object::namespace(s).to_string(), service))
            .or_default()
            .push(s);
    }

    for svc in &services {
        let k = key(svc);
        if !has_selector(svc) {
            // Not ours: its Endpoints are the user's (or the API server's, for
            // `kubernetes`); slices we made while it had a selector go.
            if let Some(old) = slices_by_service.remove(&k) {
                delete_all(registry, &ENDPOINT_SLICES, &old).await;
            }
            endpoints_by_key.remove(&k);
            continue;
        }
        let ns_pods = pods_by_ns
            .get(k.0.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let members = members(svc, ns_pods);
        let result = write_endpoints(registry, svc, &members, endpoints_by_key.remove(&k)).await;
        if let Err(e) = result {
            tracing::warn!(service = %format!("{}/{}", k.0, k.1), error = %e, "endpoints");
        }
        let old = slices_by_service.remove(&k).unwrap_or_default();
        if let Err(e) = write_slices(registry, svc, &members, old).await {
            tracing::warn!(service = %format!("{}/{}", k.0, k.1), error = %e, "endpoint slices");
        }
    }
    // Left over: Endpoints and slices of services that are gone.
    let orphans: Vec<&Value> = endpoints_by_key
        .into_values()
        .filter(|e| {
            object::path(e, "metadata.annotations")
                .and_then(|a| a.get(LEADER_ANNOTATION))
                .is_none()
        })
        .collect();
    delete_all(registry, &ENDPOINTS, &orphans).await;
    for (_, old) in slices_by_service {
        delete_all(registry, &ENDPOINT_SLICES, &old).await;
    }
    Ok(())
}

/// Whether the controller keeps the endpoints of `svc`: it selects pods and is not an
/// ExternalName.
fn has_selector(svc: &Value) -> bool {
    svc["spec"]["selector"]
        .as_object()
        .is_some_and(|s| !s.is_empty())
        && svc["spec"]["type"] != "ExternalName"
}

fn labels(obj: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    obj["metadata"]["labels"]
        .as_object()
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

fn selects(selector: &Map<String, Value>, pod: &Value) -> bool {
    let pod_labels = labels(pod);
    selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
}

fn condition(pod: &Value, kind: &str) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

/// The pods behind `svc`: selected, with an IP, not finished. A pod being deleted stays as
/// `terminating` (slices show it; Endpoints leave it out, as Kubernetes does).
fn members(svc: &Value, pods: &[&Value]) -> Vec<Member> {
    let Some(selector) = svc["spec"]["selector"].as_object() else {
        return Vec::new();
    };
    let publish_not_ready = svc["spec"]["publishNotReadyAddresses"] == json!(true);
    let svc_name = object::name(svc);
    let mut out: Vec<Member> = pods
        .iter()
        .filter(|p| selects(selector, p))
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .filter_map(|p| {
            let ip = p["status"]["podIP"].as_str().filter(|ip| !ip.is_empty())?;
            let terminating = object::meta(p).is_some_and(|m| m.contains_key("deletionTimestamp"));
            let ready = condition(p, "Ready");
            let hostname = p["spec"]["hostname"]
                .as_str()
                .filter(|h| !h.is_empty() && p["spec"]["subdomain"] == svc_name)
                .map(str::to_string);
            Some(Member {
                ip: ip.to_string(),
                ready: (ready || publish_not_ready) && !terminating,
                serving: ready || publish_not_ready,
                terminating,
                node: object::path_string(p, "spec.nodeName"),
                hostname,
                pod: (*p).clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        a.ip.cmp(&b.ip)
            .then_with(|| object::name(&a.pod).cmp(object::name(&b.pod)))
    });
    out
}

/// The service's ports as they land on `pod`: a target port by name is looked up among
/// the pod's container ports; a port the pod does not have is left out for that pod.
fn resolve_ports(svc: &Value, pod: &Value) -> Vec<Port> {
    let containers = pod["spec"]["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut ports: Vec<Port> = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            let protocol = sp["protocol"].as_str().unwrap_or("TCP").to_string();
            let number = match &sp["targetPort"] {
                Value::Number(n) => n.as_i64()?,
                Value::String(name) => containers
                    .iter()
                    .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                    .find(|cp| {
                        cp["name"] == *name && cp["protocol"].as_str().unwrap_or("TCP") == protocol
                    })?["containerPort"]
                    .as_i64()?,
                _ => sp["port"].as_i64()?,
            };
            Some(Port {
                name: sp["name"].as_str().unwrap_or("").to_string(),
                port: number,
                protocol,
            })
        })
        .collect();
    ports.sort();
    ports
}

fn target_ref(pod: &Value) -> Value {
    json!({
        "kind": "Pod",
        "namespace": object::namespace(pod),
        "name": object::name(pod),
        "uid": object::meta_str(pod, "uid").unwrap_or(""),
    })
}

/// Labels of what the controller writes for `svc`: the service's own, plus Kubernetes'
/// headless marker.
fn derived_labels(svc: &Value) -> Map<String, Value> {
    let mut out = labels(svc).clone();
    if svc["spec"]["clusterIP"] == "None" {
        out.insert("service.kubernetes.io/headless".into(), json!(""));
    }
    out
}

fn desired_endpoints(svc: &Value, members: &[Member]) -> Value {
    // Pods grouped by the ports they resolve to: one subset per group.
    let mut groups: BTreeMap<Vec<Port>, (Vec<Value>, Vec<Value>)> = BTreeMap::new();
    for m in members.iter().filter(|m| !m.terminating) {
        let ports = resolve_ports(svc, &m.pod);
        let mut address = json!({"ip": m.ip, "targetRef": target_ref(&m.pod)});
        if !m.node.is_empty() {
            address["nodeName"] = json!(m.node);
        }
        if let Some(h) = &m.hostname {
            address["hostname"] = json!(h);
        }
        let group = groups.entry(ports).or_default();
        if m.ready { &mut group.0 } else { &mut group.1 }.push(address);
    }
    let subsets: Vec<Value> = groups
        .into_iter()
        .map(|(ports, (ready, not_ready))| {
            let mut subset = Map::new();
            if !ready.is_empty() {
                subset.insert("addresses".into(), json!(ready));
            }
            if !not_ready.is_empty() {
                subset.insert("notReadyAddresses".into(), json!(not_ready));
            }
            let ports: Vec<Value> = ports
                .iter()
                .map(|p| {
                    let mut v = json!({"port": p.port, "protocol": p.protocol});
                    if !p.name.is_empty() {
                        v["name"] = json!(p.name);
                    }
                    v
                })
                .collect();
            if !ports.is_empty() {
                subset.insert("ports".into(), json!(ports));
            }
            Value::Object(subset)
        })
        .collect();
    let mut ep = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": object::name(svc), "namespace": object::namespace(svc)},
    });
    let labels = derived_labels(svc);
    if !labels.is_empty() {
        ep["metadata"]["labels"] = Value::Object(labels);
    }
    if !subsets.is_empty() {
        ep["subsets"] = json!(subsets);
    }
    ep
}

/// What of an object the controller sets, to compare the stored one with the desired.
fn owned_part(obj: &Value, fields: &[&str]) -> Value {
    let mut out = Map::new();
    for f in fields {
        if let Some(v) = obj.get(*f) {
            out.insert((*f).to_string(), v.clone());
        }
    }
    out.insert("labels".into(), obj["metadata"]["labels"].clone());
    Value::Object(out)
}

async fn write_endpoints(
    registry: &Registry,
    svc: &Value,
    members: &[Member],
    current: Option<&Value>,
) -> Result<()> {
    let desired = desired_endpoints(svc, members);
    let ns = object::namespace(svc);
    match current {
        None => match registry
            .create(&ENDPOINTS, Some(ns), desired, FieldValidation::Ignore)
            .await
        {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        },
        Some(cur) if owned_part(cur, &["subsets"]) == owned_part(&desired, &["subsets"]) => Ok(()),
        Some(cur) => {
            let mut next = desired;
            next["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
            match registry
                .update(
                    &ENDPOINTS,
                    Some(ns),
                    object::name(svc),
                    next,
                    Part::Main,
                    FieldValidation::Ignore,
                )
                .await
            {
                // Someone else wrote it meanwhile: the next pass looks again.
                Ok(_) | Err(ApiError::Conflict { .. }) | Err(ApiError::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }
    }
}

/// The slices `svc` should have: for each set of resolved ports, its endpoints in chunks
/// of at most [`MAX_PER_SLICE`]. Each is the slice's `endpoints` and `ports`.
fn desired_slices(svc: &Value, members: &[Member]) -> Vec<(Vec<Value>, Vec<Value>)> {
    let mut groups: BTreeMap<Vec<Port>, Vec<Value>> = BTreeMap::new();
    for m in members {
        let mut ep = json!({
            "addresses": [m.ip],
            "conditions": {"ready": m.ready, "serving": m.serving, "terminating": m.terminating},
            "targetRef": target_ref(&m.pod),
        });
        if !m.node.is_empty() {
            ep["nodeName"] = json!(m.node);
        }
        if let Some(h) = &m.hostname {
            ep["hostname"] = json!(h);
        }
        groups
            .entry(resolve_ports(svc, &m.pod))
            .or_default()
            .push(ep);
    }
    let mut out = Vec::new();
    for (ports, endpoints) in groups {
        let ports: Vec<Value> = ports
            .iter()
            .map(|p| json!({"name": p.name, "port": p.port, "protocol": p.protocol}))
            .collect();
        for chunk in endpoints.chunks(MAX_PER_SLICE) {
            out.push((chunk.to_vec(), ports.clone()));
        }
    }
    // A service that selects nothing still has one (empty) slice, as in Kubernetes, so
    // that readers can tell "no endpoints" from "not processed yet".
    if out.is_empty() {
        out.push((Vec::new(), Vec::new()));
    }
    out
}

async fn write_slices(
    registry: &Registry,
    svc: &Value,
    members: &[Member],
    mut current: Vec<&Value>,
) -> Result<()> {
    let ns = object::namespace(svc);
    let name = object::name(svc);
    let mut labels = derived_labels(svc);
    labels.insert(SERVICE_NAME.into(), json!(name));
    labels.insert(MANAGED_BY.into(), json!(CONTROLLER_NAME));
    let owner = json!([{
        "apiVersion": "v1", "kind": "Service", "name": name,
        "uid": object::meta_str(svc, "uid").unwrap_or(""),
        "controller": true, "blockOwnerDeletion": true,
    }]);
    current.sort_by_key(|s| object::name(s).to_string());
    let mut current = current.into_iter();
    for (endpoints, ports) in desired_slices(svc, members) {
        let mut slice = json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"namespace": ns, "labels": labels, "ownerReferences": owner},
            "addressType": "IPv4",
            "endpoints": endpoints,
        });
        if !ports.is_empty() {
            slice["ports"] = json!(ports);
        }
        match current.next() {
            None => {
                slice["metadata"]["generateName"] = json!(format!("{name}-"));
                registry
                    .create(&ENDPOINT_SLICES, Some(ns), slice, FieldValidation::Ignore)
                    .await?;
            }
            Some(cur) => {
                let fields = ["endpoints", "ports", "addressType"];
                if owned_part(cur, &fields) == owned_part(&slice, &fields)
                    && cur["metadata"]["ownerReferences"] == owner
                {
                    continue;
                }
                slice["metadata"]["name"] = json!(object::name(cur));
                slice["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
                match registry
                    .update(
                        &ENDPOINT_SLICES,
                        Some(ns),
                        object::name(cur),
                        slice,
                        Part::Main,
                        FieldValidation::Ignore,
                    )
                    .await
                {
                    Ok(_) | Err(ApiError::Conflict { .. }) | Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let extra: Vec<&Value> = current.collect();
    delete_all(registry, &ENDPOINT_SLICES, &extra).await;
    Ok(())
}

async fn delete_all(
    registry: &Registry,
    resource: &'static minik8s_api::resource::ResourceInfo,
    objects: &[&Value],
) {
    for obj in objects {
        let (ns, name) = (object::namespace(obj), object::name(obj));
        match registry
            .delete(resource, Some(ns), name, &DeleteParams::default())
            .await
        {
            Ok(_) | Err(ApiError::NotFound { .. }) | Err(ApiError::Conflict { .. }) => {}
            Err(e) => tracing::warn!(kind = resource.kind, %ns, %name, error = %e, "deleting"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool, labels: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"), "labels": labels},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "uid": "s1"}, "spec": spec})
    }

    #[test]
    fn ready_and_unready_pods_land_where_kubernetes_puts_them() {
        let s = svc(json!({"selector": {"app": "web"}, "clusterIP": "10.96.0.9",
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}));
        let pods = [
            pod("b", "10.0.0.2", false, json!({"app": "web"})),
            pod("a", "10.0.0.1", true, json!({"app": "web"})),
            pod("other", "10.0.0.3", true, json!({"app": "db"})),
        ];
        let refs: Vec<&Value> = pods.iter().collect();
        let m = members(&s, &refs);
        let ep = desired_endpoints(&s, &m);
        assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "10.0.0.1");
        assert_eq!(ep["subsets"][0]["addresses"][0]["targetRef"]["name"], "a");
        assert_eq!(ep["subsets"][0]["notReadyAddresses"][0]["ip"], "10.0.0.2");
        assert_eq!(
            ep["subsets"][0]["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        let slices = desired_slices(&s, &m);
        assert_eq!(slices.len(), 1);
        let (endpoints, ports) = &slices[0];
        assert_eq!(endpoints.len(), 2);
        assert_eq!(
            endpoints[1]["conditions"],
            json!({"ready": false, "serving": false, "terminating": false})
        );
        assert_eq!(
            ports,
            &vec![json!({"name": "http", "port": 8080, "protocol": "TCP"})]
        );
    }

    #[test]
    fn a_port_name_a_pod_lacks_leaves_that_port_out_and_a_terminating_pod_only_in_slices() {
        let s = svc(json!({"selector": {"app": "web"},
            "ports": [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]}));
        let mut p = pod("a", "10.0.0.1", true, json!({"app": "web"}));
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let m = members(&s, &[&p]);
        assert_eq!(desired_endpoints(&s, &m).get("subsets"), None);
        let slices = desired_slices(&s, &m);
        assert_eq!(
            slices[0].0[0]["conditions"],
            json!({"ready": false, "serving": true, "terminating": true})
        );
        assert_eq!(slices[0].1, Vec::<Value>::new());
    }

    #[test]
    fn slices_hold_at_most_a_hundred_endpoints() {
        let s = svc(
            json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}),
        );
        let pods: Vec<Value> = (0..250)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                    true,
                    json!({"app": "web"}),
                )
            })
            .collect();
        let refs: Vec<&Value> = pods.iter().collect();
        let sizes: Vec<usize> = desired_slices(&s, &members(&s, &refs))
            .iter()
            .map(|s| s.0.len())
            .collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        assert_eq!(desired_slices(&s, &[]), vec![(Vec::new(), Vec::new())]);
    }
}
