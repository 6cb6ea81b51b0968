//! Defaulting as Kubernetes applies it before validation: fields a client left out get the
//! values Kubernetes gives them, so objects read back look as they would on a real
//! cluster and every consumer can rely on them being set.
//!
//! As in Kubernetes, an empty string or a zero number counts as unset where the field
//! has a default.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ClientIPConfig, Container, HTTPGetAction, LoadBalancerStatus, Namespace, NamespaceSpec,
    NamespaceStatus, Node, Pod, PodSpec, Probe, ResourceRequirements, Service, ServiceStatus,
    SessionAffinityConfig, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::quantity::parse_quantity;

mod workloads;
pub use workloads::*;

/// Mode of files projected from secrets, config maps and the downward API: 0644.
const DEFAULT_FILE_MODE: i32 = 0o644;

fn default_str(field: &mut Option<String>, value: &str) {
    if field.as_deref().unwrap_or_default().is_empty() {
        *field = Some(value.to_string());
    }
}

fn default_num(field: &mut Option<i32>, value: i32) {
    if field.unwrap_or(0) == 0 {
        *field = Some(value);
    }
}

/// Fills a pod's defaults: restart and DNS policies, grace period, scheduler, security
/// context, service links, and per container the pull policy, termination message, port
/// protocols, requests from limits, probe timings and HTTP probe paths; per volume the
/// hostPath type and file modes, and `emptyDir` for a volume with no source.
pub fn default_pod(pod: &mut Pod) {
    default_pod_spec(pod.spec.get_or_insert_with(Default::default));
}

/// Fills the defaults of a pod spec (a pod's, or a pod template's): see [`default_pod`].
pub fn default_pod_spec(spec: &mut PodSpec) {
    default_str(&mut spec.restart_policy, "Always");
    default_str(&mut spec.dns_policy, "ClusterFirst");
    default_str(&mut spec.scheduler_name, "default-scheduler");
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.security_context.get_or_insert_with(Default::default);
    spec.enable_service_links.get_or_insert(true);
    let host_network = spec.host_network == Some(true);
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        default_container(c, host_network);
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
}

/// The pull policy Kubernetes gives an image without one: `Always` for the `latest` tag
/// or no tag at all (which means `latest`), `IfNotPresent` for any other tag or a digest.
pub fn default_image_pull_policy(image: &str) -> &'static str {
    if image.is_empty() {
        return "IfNotPresent";
    }
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A ':' before the last '/' is a registry port, not a tag.
    let last = name.rsplit('/').next().unwrap_or(name);
    let latest = match last.split_once(':') {
        Some((_, tag)) => tag == "latest",
        None => digest.is_none(),
    };
    if latest { "Always" } else { "IfNotPresent" }
}

fn default_container(c: &mut Container, host_network: bool) {
    if c.image_pull_policy
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        let policy = default_image_pull_policy(c.image.as_deref().unwrap_or_default());
        c.image_pull_policy = Some(policy.to_string());
    }
    default_str(&mut c.termination_message_path, "/dev/termination-log");
    default_str(&mut c.termination_message_policy, "File");
    for port in c.ports.iter_mut().flatten() {
        default_str(&mut port.protocol, "TCP");
        // With the host's network the container's port is the host's port.
        if host_network && port.host_port.unwrap_or(0) == 0 {
            port.host_port = Some(port.container_port);
        }
    }
    for var in c.env.iter_mut().flatten() {
        if let Some(field_ref) = var.value_from.as_mut().and_then(|f| f.field_ref.as_mut()) {
            default_str(&mut field_ref.api_version, "v1");
        }
    }
    if let Some(ResourceRequirements {
        limits: Some(limits),
        requests,
        ..
    }) = &mut c.resources
    {
        let requests = requests.get_or_insert_with(BTreeMap::new);
        for (name, q) in limits.iter() {
            requests.entry(name.clone()).or_insert_with(|| q.clone());
        }
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    if let Some(lifecycle) = &mut c.lifecycle {
        for handler in [&mut lifecycle.post_start, &mut lifecycle.pre_stop]
            .into_iter()
            .flatten()
        {
            if let Some(http) = &mut handler.http_get {
                default_http_get(http);
            }
        }
    }
}

fn default_probe(p: &mut Probe) {
    default_num(&mut p.timeout_seconds, 1);
    default_num(&mut p.period_seconds, 10);
    default_num(&mut p.success_threshold, 1);
    default_num(&mut p.failure_threshold, 3);
    if let Some(http) = &mut p.http_get {
        default_http_get(http);
    }
}

fn default_http_get(h: &mut HTTPGetAction) {
    default_str(&mut h.path, "/");
    default_str(&mut h.scheme, "HTTP");
}

fn default_volume(v: &mut Volume) {
    let has_source = match serde_json::to_value(&*v) {
        Ok(serde_json::Value::Object(map)) => map.keys().any(|k| k != "name"),
        _ => true,
    };
    if !has_source {
        v.empty_dir = Some(Default::default());
    }
    if let Some(host_path) = &mut v.host_path {
        host_path.type_.get_or_insert_with(String::new);
    }
    if let Some(s) = &mut v.secret {
        s.default_mode.get_or_insert(DEFAULT_FILE_MODE);
    }
    if let Some(s) = &mut v.config_map {
        s.default_mode.get_or_insert(DEFAULT_FILE_MODE);
    }
    if let Some(s) = &mut v.downward_api {
        s.default_mode.get_or_insert(DEFAULT_FILE_MODE);
    }
    if let Some(s) = &mut v.projected {
        s.default_mode.get_or_insert(DEFAULT_FILE_MODE);
    }
}

/// Fills a namespace being created: the `kubernetes` finalizer, phase `Active`, and the
/// `kubernetes.io/metadata.name` label that lets selectors pick namespaces by name.
pub fn default_namespace(ns: &mut Namespace) {
    if let Some(name) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
        ns.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("kubernetes.io/metadata.name".to_string(), name);
    }
    let finalizers = ns
        .spec
        .get_or_insert_with(NamespaceSpec::default)
        .finalizers
        .get_or_insert_with(Vec::new);
    if !finalizers.iter().any(|f| f == "kubernetes") {
        finalizers.push("kubernetes".to_string());
    }
    let status = ns.status.get_or_insert_with(NamespaceStatus::default);
    default_str(&mut status.phase, "Active");
}

/// Session affinity by client IP lasts this long without traffic unless told otherwise:
/// three hours, as in Kubernetes.
const DEFAULT_AFFINITY_TIMEOUT: i32 = 10800;

/// Fills a service's defaults as Kubernetes' defaulting and its service registry do:
/// type `ClusterIP`, session affinity `None` (with a 3-hour timeout for `ClientIP`), port
/// protocols `TCP`, a target port equal to the port, `Cluster` traffic policies
/// (external only where the service is reachable from outside), one IPv4 family, and
/// `clusterIPs` that agree with `clusterIP`. The cluster IP and node ports themselves are
/// allocated by the API server.
pub fn default_service(svc: &mut Service) {
    let spec = svc.spec.get_or_insert_with(Default::default);
    default_str(&mut spec.type_, "ClusterIP");
    default_str(&mut spec.session_affinity, "None");
    if spec.session_affinity.as_deref() == Some("ClientIP") {
        let config = spec
            .session_affinity_config
            .get_or_insert_with(SessionAffinityConfig::default)
            .client_ip
            .get_or_insert_with(ClientIPConfig::default);
        config
            .timeout_seconds
            .get_or_insert(DEFAULT_AFFINITY_TIMEOUT);
    }
    for port in spec.ports.iter_mut().flatten() {
        default_str(&mut port.protocol, "TCP");
        let unset = match &port.target_port {
            None => true,
            Some(IntOrString::Int(n)) => *n == 0,
            Some(IntOrString::String(s)) => s.is_empty(),
        };
        if unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
    let ty = spec.type_.clone().unwrap_or_default();
    if ty == "ExternalName" {
        return;
    }
    default_str(&mut spec.internal_traffic_policy, "Cluster");
    let external = matches!(ty.as_str(), "NodePort" | "LoadBalancer")
        || spec.external_ips.as_ref().is_some_and(|i| !i.is_empty());
    if external {
        default_str(&mut spec.external_traffic_policy, "Cluster");
    }
    // clusterIP and clusterIPs[0] say the same; either may be the one given.
    let first = spec
        .cluster_ips
        .as_ref()
        .and_then(|ips| ips.first())
        .cloned();
    match (spec.cluster_ip.as_deref().unwrap_or_default(), first) {
        ("", Some(first)) => spec.cluster_ip = Some(first),
        (ip, None) if !ip.is_empty() => spec.cluster_ips = Some(vec![ip.to_string()]),
        _ => {}
    }
    if spec.ip_families.as_ref().is_none_or(Vec::is_empty) {
        spec.ip_families = Some(vec!["IPv4".to_string()]);
    }
    default_str(&mut spec.ip_family_policy, "SingleStack");
    let status = svc.status.get_or_insert_with(ServiceStatus::default);
    status
        .load_balancer
        .get_or_insert_with(LoadBalancerStatus::default);
}

/// Fills a node's defaults: allocatable equal to capacity when not given, and
/// `podCIDR` and `podCIDRs` kept in agreement.
pub fn default_node(node: &mut Node) {
    if let Some(spec) = &mut node.spec {
        let first = spec.pod_cidrs.as_ref().and_then(|c| c.first()).cloned();
        match (&spec.pod_cidr, first) {
            (Some(cidr), None) if !cidr.is_empty() => spec.pod_cidrs = Some(vec![cidr.clone()]),
            (None, Some(first)) => spec.pod_cidr = Some(first),
            _ => {}
        }
    }
    if let Some(status) = node.status.as_mut().filter(|s| s.allocatable.is_none()) {
        status.allocatable.clone_from(&status.capacity);
    }
}

/// A pod's quality-of-service class, by Kubernetes' rules over cpu and memory:
/// `Guaranteed` when every container has cpu and memory limits and requests equal to them,
/// `BestEffort` when no container asks for or is limited in either, `Burstable` otherwise.
/// A request left out counts as equal to its limit, as defaulting makes it.
pub fn pod_qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = &pod.spec else {
        return "BestEffort";
    };
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let res = c.resources.as_ref();
        let lim = res.and_then(|r| r.limits.as_ref());
        let req = res.and_then(|r| r.requests.as_ref());
        let positive = |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
            parse_quantity(&q.0)
                .ok()
                .map(|q| q.as_nanos())
                .filter(|&n| n > 0)
        };
        let mut limited = 0;
        for name in ["cpu", "memory"] {
            let limit = lim.and_then(|l| l.get(name));
            let request = req.and_then(|r| r.get(name)).or(limit);
            if let Some(n) = request.and_then(positive) {
                *requests.entry(name).or_default() += n;
            }
            if let Some(n) = limit.and_then(positive) {
                *limits.entry(name).or_default() += n;
                limited += 1;
            }
        }
        if limited < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        "BestEffort"
    } else if guaranteed && requests == limits {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::validate_pod;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn defaulted(spec: serde_json::Value) -> serde_json::Value {
        let mut p = pod(spec);
        default_pod(&mut p);
        serde_json::to_value(&p).unwrap()["spec"].clone()
    }

    #[test]
    fn pod_spec_defaults() {
        let spec = defaulted(json!({"containers": [{"name": "a", "image": "nginx"}]}));
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["enableServiceLinks"], true);
        assert!(spec.get("serviceAccountName").is_none());
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
    }

    #[test]
    fn explicit_values_are_kept() {
        let spec = defaulted(json!({
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "dnsPolicy": "Default",
            "enableServiceLinks": false,
            "containers": [{"name": "a", "image": "nginx", "imagePullPolicy": "Never",
                "terminationMessagePolicy": "FallbackToLogsOnError"}],
        }));
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["terminationGracePeriodSeconds"], 0);
        assert_eq!(spec["dnsPolicy"], "Default");
        assert_eq!(spec["enableServiceLinks"], false);
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(
            spec["containers"][0]["terminationMessagePolicy"],
            "FallbackToLogsOnError"
        );
        // Empty strings count as unset.
        let spec = defaulted(
            json!({"restartPolicy": "", "containers": [{"name": "a", "image": "x:1", "imagePullPolicy": ""}]}),
        );
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
    }

    #[test]
    fn image_pull_policies() {
        let cases = [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.25", "IfNotPresent"),
            ("docker.io/library/nginx", "Always"),
            ("localhost:5000/img", "Always"),
            ("localhost:5000/img:v1", "IfNotPresent"),
            ("localhost:5000/team/img:latest", "Always"),
            ("nginx@sha256:0123456789abcdef", "IfNotPresent"),
            ("localhost:5000/img@sha256:0123", "IfNotPresent"),
            ("nginx:latest@sha256:0123", "Always"),
            ("nginx:1.25@sha256:0123", "IfNotPresent"),
            ("", "IfNotPresent"),
        ];
        for (image, policy) in cases {
            assert_eq!(default_image_pull_policy(image), policy, "{image}");
        }
    }

    #[test]
    fn ports_env_and_resources() {
        let spec = defaulted(json!({"containers": [{
            "name": "a", "image": "x:1",
            "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
            "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, {"name": "V", "value": "1"}],
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "250m"}},
        }, {
            "name": "b", "image": "x:1", "resources": {"limits": {"memory": "64Mi"}},
        }, {
            "name": "c", "image": "x:1", "resources": {"requests": {"cpu": "1"}},
        }]}));
        let c = &spec["containers"];
        assert_eq!(c[0]["ports"][0]["protocol"], "TCP");
        assert!(c[0]["ports"][0].get("hostPort").is_none());
        assert_eq!(c[0]["ports"][1]["protocol"], "UDP");
        assert_eq!(c[0]["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert!(c[0]["env"][1].get("valueFrom").is_none());
        assert_eq!(
            c[0]["resources"]["requests"],
            json!({"cpu": "250m", "memory": "1Gi"})
        );
        assert_eq!(c[1]["resources"]["requests"], json!({"memory": "64Mi"}));
        assert_eq!(c[2]["resources"], json!({"requests": {"cpu": "1"}}));
    }

    #[test]
    fn host_network_publishes_container_ports() {
        let spec = defaulted(
            json!({"hostNetwork": true, "containers": [{"name": "a", "image": "x:1",
            "ports": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 81}]}]}),
        );
        assert_eq!(spec["containers"][0]["ports"][0]["hostPort"], 80);
        assert_eq!(spec["containers"][0]["ports"][1]["hostPort"], 81);
    }

    #[test]
    fn probes() {
        let spec = defaulted(json!({"containers": [{"name": "a", "image": "x:1",
            "livenessProbe": {"httpGet": {"port": 80}},
            "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5, "timeoutSeconds": 0},
            "startupProbe": {"exec": {"command": ["true"]}, "failureThreshold": 30, "initialDelaySeconds": 0},
            "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/stop"}}},
        }], "initContainers": [{"name": "i", "image": "x:1", "restartPolicy": "Always",
            "readinessProbe": {"httpGet": {"port": 80, "scheme": "HTTPS"}}}]}));
        let c = &spec["containers"][0];
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["readinessProbe"]["periodSeconds"], 5);
        assert_eq!(c["readinessProbe"]["timeoutSeconds"], 1);
        assert_eq!(c["startupProbe"]["failureThreshold"], 30);
        assert_eq!(c["startupProbe"]["initialDelaySeconds"], 0);
        assert_eq!(
            c["lifecycle"]["preStop"]["httpGet"],
            json!({"port": 80, "path": "/stop", "scheme": "HTTP"})
        );
        let init = &spec["initContainers"][0];
        assert_eq!(init["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
        assert_eq!(init["readinessProbe"]["httpGet"]["path"], "/");
        assert_eq!(init["imagePullPolicy"], "IfNotPresent");
    }

    #[test]
    fn volumes() {
        let spec = defaulted(
            json!({"containers": [{"name": "a", "image": "x"}], "volumes": [
                {"name": "h", "hostPath": {"path": "/h"}},
                {"name": "h2", "hostPath": {"path": "/h", "type": "Directory"}},
                {"name": "e", "emptyDir": {}},
                {"name": "bare"},
                {"name": "s", "secret": {"secretName": "s"}},
                {"name": "c", "configMap": {"name": "c", "defaultMode": 256}},
            ]}),
        );
        let v = &spec["volumes"];
        assert_eq!(v[0]["hostPath"], json!({"path": "/h", "type": ""}));
        assert_eq!(v[1]["hostPath"]["type"], "Directory");
        assert_eq!(v[2], json!({"name": "e", "emptyDir": {}}));
        assert_eq!(v[3], json!({"name": "bare", "emptyDir": {}}));
        assert_eq!(v[4]["secret"]["defaultMode"], 420);
        assert_eq!(v[5]["configMap"]["defaultMode"], 256);
    }

    #[test]
    fn defaulted_pods_validate() {
        let mut p = pod(json!({"containers": [{"name": "a", "image": "nginx",
            "ports": [{"containerPort": 80, "name": "http"}],
            "livenessProbe": {"httpGet": {"port": "http"}},
            "resources": {"limits": {"cpu": "1"}}}],
            "volumes": [{"name": "bare"}]}));
        default_pod(&mut p);
        assert_eq!(validate_pod(&p), vec![]);
        // Defaulting twice changes nothing.
        let once = p.clone();
        default_pod(&mut p);
        assert_eq!(p, once);
    }

    #[test]
    fn namespace_defaults() {
        let mut ns = Namespace {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("team".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        default_namespace(&mut ns);
        let v = serde_json::to_value(&ns).unwrap();
        assert_eq!(v["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(v["status"]["phase"], "Active");
        assert_eq!(
            v["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team"
        );
        ns.spec = Some(NamespaceSpec {
            finalizers: Some(vec!["example.com/x".into()]),
        });
        ns.status.as_mut().unwrap().phase = Some("Terminating".into());
        default_namespace(&mut ns);
        assert_eq!(
            ns.spec.unwrap().finalizers.unwrap(),
            ["example.com/x", "kubernetes"]
        );
        assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    }

    #[test]
    fn node_defaults() {
        let mut node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi"}},
        }))
        .unwrap();
        default_node(&mut node);
        let v = serde_json::to_value(&node).unwrap();
        assert_eq!(v["spec"]["podCIDRs"], json!(["10.244.1.0/24"]));
        assert_eq!(
            v["status"]["allocatable"],
            json!({"cpu": "4", "memory": "8Gi"})
        );
        let mut node: Node = serde_json::from_value(json!({"spec": {"podCIDRs": ["fd00::/64"]},
            "status": {"capacity": {"cpu": "4"}, "allocatable": {"cpu": "3"}}}))
        .unwrap();
        default_node(&mut node);
        assert_eq!(
            node.spec.as_ref().unwrap().pod_cidr.as_deref(),
            Some("fd00::/64")
        );
        assert_eq!(node.status.unwrap().allocatable.unwrap()["cpu"].0, "3");
    }

    #[test]
    fn qos_classes() {
        let qos =
            |containers: serde_json::Value| pod_qos_class(&pod(json!({"containers": containers})));
        assert_eq!(qos(json!([{"name": "a"}])), "BestEffort");
        assert_eq!(
            qos(json!([{"name": "a", "resources": {"limits": {"example.com/gpu": "1"}}}])),
            "BestEffort"
        );
        assert_eq!(
            qos(json!([{"name": "a", "resources": {"requests": {"cpu": "0"}}}])),
            "BestEffort"
        );
        assert_eq!(
            qos(
                json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1024Mi"}}}])
            ),
            "Guaranteed"
        );
        // Requests left out are taken from limits.
        assert_eq!(
            qos(json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}])),
            "Guaranteed"
        );
        assert_eq!(
            qos(
                json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}}])
            ),
            "Burstable"
        );
        assert_eq!(
            qos(json!([{"name": "a", "resources": {"limits": {"cpu": "1"}}}])),
            "Burstable"
        );
        assert_eq!(
            qos(json!([{"name": "a", "resources": {"requests": {"memory": "1Gi"}}}])),
            "Burstable"
        );
        // Every container must be guaranteed for the pod to be.
        assert_eq!(
            qos(json!([
                {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
                {"name": "b"},
            ])),
            "Burstable"
        );
        assert_eq!(
            qos(json!([
                {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}},
            ])),
            "Guaranteed"
        );
        let mut p = pod(
            json!({"containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1"}}}]}),
        );
        assert_eq!(pod_qos_class(&p), "Burstable");
        p.spec = None;
        assert_eq!(pod_qos_class(&p), "BestEffort");
    }
}
