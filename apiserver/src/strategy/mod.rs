//! What differs between resources: how an object is decoded, defaulted and validated, what
//! a spec or a status update may change, and which fields selectors can use. Everything
//! else (storage, versions, watches) is the registry's, shared by all resources.

use k8s_openapi::api::core::v1::{Endpoints, Event, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use minik8s_api::defaults;
use minik8s_api::resource::{self, ResourceInfo};
use minik8s_api::taskset::{self, TaskSet};
use minik8s_api::validation::{self, FieldError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::object;

mod workloads;

/// Which part of an object an update may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The object itself: everything but `status`.
    Main,
    /// The `/status` subresource: only `status` (and labels/annotations).
    Status,
}

pub trait Strategy: Send + Sync + 'static {
    fn info(&self) -> &'static ResourceInfo;

    /// The object after a round trip through its typed form: unknown fields dropped,
    /// malformed values refused with `400`.
    fn normalize(&self, obj: Value) -> Result<Value>;

    /// Defaults and validates a new object whose metadata the registry has filled in.
    fn prepare_create(&self, obj: Value) -> Result<Value>;

    /// Merges `new` onto `old` for `part` and validates the result.
    fn prepare_update(&self, old: &Value, new: Value, part: Part) -> Result<Value>;

    /// Field selector labels supported besides `metadata.name` and `metadata.namespace`.
    fn selectable_fields(&self) -> &'static [&'static str] {
        &[]
    }

    /// The value of a selectable field as field selectors compare it.
    fn field_value(&self, obj: &Value, field: &str) -> String {
        object::path_string(obj, field)
    }

    /// Whether deleting this object waits for its node (pods bound to a node).
    fn graceful_delete_seconds(&self, _obj: &Value, _requested: Option<i64>) -> Option<i64> {
        None
    }
}

const COMMON_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// Every field selector label of a resource.
pub fn field_names(strategy: &dyn Strategy) -> impl Iterator<Item = &'static str> {
    COMMON_FIELDS
        .iter()
        .chain(strategy.selectable_fields())
        .copied()
}

/// The value of `field` for field selectors; `None` if the resource does not support it.
pub fn field(strategy: &dyn Strategy, obj: &Value, field: &str) -> Option<String> {
    field_names(strategy)
        .any(|f| f == field)
        .then(|| strategy.field_value(obj, field))
}

fn decode<K: DeserializeOwned>(info: &ResourceInfo, obj: Value) -> Result<K> {
    serde_json::from_value(obj).map_err(|e| {
        ApiError::BadRequest(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            info.kind, info.version, info.kind
        ))
    })
}

fn encode<K: Serialize>(obj: &K) -> Result<Value> {
    serde_json::to_value(obj).map_err(|e| ApiError::Internal(format!("encoding object: {e}")))
}

fn check(info: &'static ResourceInfo, obj: &Value, causes: Vec<FieldError>) -> Result<()> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid {
            resource: info,
            name: object::name(obj).to_string(),
            causes,
        })
    }
}

/// Keeps `status` from `old` (a main update) or everything but `status` and the labels
/// and annotations from `old` (a status update), as Kubernetes' update strategies do.
fn merge_parts(old: &Value, mut new: Value, part: Part) -> Value {
    match part {
        Part::Main => {
            if let Some(obj) = new.as_object_mut() {
                match old.get("status") {
                    Some(s) => obj.insert("status".into(), s.clone()),
                    None => obj.remove("status"),
                };
            }
            new
        }
        Part::Status => {
            let mut merged = old.clone();
            if let Some(s) = new.get("status") {
                merged["status"] = s.clone();
            }
            let new_meta = object::meta_mut(&mut new).clone();
            let meta = object::meta_mut(&mut merged);
            for k in ["labels", "annotations", "resourceVersion"] {
                match new_meta.get(k) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
            merged
        }
    }
}

pub struct PodStrategy;

impl Strategy for PodStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &resource::PODS
    }

    fn normalize(&self, obj: Value) -> Result<Value> {
        encode(&decode::<Pod>(self.info(), obj)?)
    }

    fn prepare_create(&self, obj: Value) -> Result<Value> {
        let mut pod: Pod = decode(self.info(), obj)?;
        defaults::default_pod(&mut pod);
        let qos = defaults::pod_qos_class(&pod);
        pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Pending".into()),
            qos_class: Some(qos.to_string()),
            ..Default::default()
        });
        let v = encode(&pod)?;
        check(self.info(), &v, validation::validate_pod(&pod))?;
        Ok(v)
    }

    fn prepare_update(&self, old: &Value, new: Value, part: Part) -> Result<Value> {
        let merged = merge_parts(old, new, part);
        let old_pod: Pod = decode(self.info(), old.clone())?;
        let mut pod: Pod = decode(self.info(), merged)?;
        if part == Part::Main {
            defaults::default_pod(&mut pod);
        }
        let v = encode(&pod)?;
        check(
            self.info(),
            &v,
            validation::validate_pod_update(&old_pod, &pod),
        )?;
        Ok(v)
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &[
            "spec.nodeName",
            // Not in Kubernetes: lets a kubelet watch just the hosts-discovery groups
            // (pods sharing a subdomain) that its own pods belong to.
            "spec.subdomain",
            "spec.hostname",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ]
    }

    fn graceful_delete_seconds(&self, obj: &Value, requested: Option<i64>) -> Option<i64> {
        // Only a kubelet can stop a pod's containers: a pod no node has taken goes at once.
        if object::path_string(obj, "spec.nodeName").is_empty() {
            return None;
        }
        let phase = object::path_string(obj, "status.phase");
        if phase == "Succeeded" || phase == "Failed" {
            return None;
        }
        let grace = requested.unwrap_or_else(|| {
            object::path(obj, "spec.terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30)
        });
        (grace > 0).then_some(grace)
    }
}

pub struct NodeStrategy;

impl Strategy for NodeStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &resource::NODES
    }

    fn normalize(&self, obj: Value) -> Result<Value> {
        encode(&decode::<Node>(self.info(), obj)?)
    }

    fn prepare_create(&self, obj: Value) -> Result<Value> {
        let node: Node = decode(self.info(), obj)?;
        let v = encode(&node)?;
        check(self.info(), &v, validation::validate_node(&node))?;
        Ok(v)
    }

    fn prepare_update(&self, old: &Value, new: Value, part: Part) -> Result<Value> {
        let node: Node = decode(self.info(), merge_parts(old, new, part))?;
        let v = encode(&node)?;
        let mut causes = validation::validate_node(&node);
        // A node's pod range is its kubelet's bridge: set once, then fixed.
        let was = object::path_string(old, "spec.podCIDR");
        let now = object::path_string(&v, "spec.podCIDR");
        if !was.is_empty() && now != was {
            causes.push(FieldError::forbidden(
                "spec.podCIDR",
                "node updates may not change podCIDR except from \"\" to valid",
            ));
        }
        check(self.info(), &v, causes)?;
        Ok(v)
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["spec.unschedulable"]
    }

    fn field_value(&self, obj: &Value, field: &str) -> String {
        match (field, object::path(obj, field)) {
            ("spec.unschedulable", Some(Value::Bool(true))) => "true".to_string(),
            ("spec.unschedulable", _) => "false".to_string(),
            _ => object::path_string(obj, field),
        }
    }
}

pub struct NamespaceStrategy;

impl Strategy for NamespaceStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &resource::NAMESPACES
    }

    fn normalize(&self, obj: Value) -> Result<Value> {
        encode(&decode::<Namespace>(self.info(), obj)?)
    }

    fn prepare_create(&self, obj: Value) -> Result<Value> {
        let mut ns: Namespace = decode(self.info(), obj)?;
        ns.status = None;
        defaults::default_namespace(&mut ns);
        let v = encode(&ns)?;
        check(self.info(), &v, validation::validate_namespace(&ns))?;
        Ok(v)
    }

    fn prepare_update(&self, old: &Value, new: Value, part: Part) -> Result<Value> {
        let mut merged = merge_parts(old, new, part);
        if part == Part::Main {
            // spec.finalizers belong to the finalize subresource.
            if let Some(spec) = old.get("spec") {
                merged["spec"] = spec.clone();
            }
        }
        let ns: Namespace = decode(self.info(), merged)?;
        let v = encode(&ns)?;
        check(self.info(), &v, validation::validate_namespace(&ns))?;
        Ok(v)
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["status.phase"]
    }
}

pub struct EventStrategy;

impl Strategy for EventStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &resource::EVENTS
    }

    fn normalize(&self, obj: Value) -> Result<Value> {
        encode(&decode::<Event>(self.info(), obj)?)
    }

    fn prepare_create(&self, obj: Value) -> Result<Value> {
        let ev: Event = decode(self.info(), obj)?;
        let v = encode(&ev)?;
        check(self.info(), &v, validation::validate_event(&ev))?;
        Ok(v)
    }

    fn prepare_update(&self, _old: &Value, new: Value, _part: Part) -> Result<Value> {
        self.prepare_create(new)
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]
    }

    fn field_value(&self, obj: &Value, field: &str) -> String {
        match field {
            "source" => object::path_string(obj, "source.component"),
            _ => object::path_string(obj, field),
        }
    }
}

/// The strategy for a resource we serve.
pub fn for_resource(info: &ResourceInfo) -> &'static dyn Strategy {
    match info.plural {
        "pods" => &PodStrategy,
        "nodes" => &NodeStrategy,
        "namespaces" => &NamespaceStrategy,
        "tasksets" => &TaskSetStrategy,
        "services" => &ServiceStrategy,
        "endpoints" => &EndpointsStrategy,
        "endpointslices" => &EndpointSliceStrategy,
        "configmaps" => &workloads::CONFIG_MAPS,
        "secrets" => &workloads::SECRETS,
        "replicationcontrollers" => &workloads::REPLICATION_CONTROLLERS,
        "deployments" => &workloads::DEPLOYMENTS,
        "replicasets" => &workloads::REPLICA_SETS,
        "statefulsets" => &workloads::STATEFUL_SETS,
        "daemonsets" => &workloads::DAEMON_SETS,
        "controllerrevisions" => &workloads::CONTROLLER_REVISIONS,
        "jobs" => &workloads::JOBS,
        _ => &EventStrategy,
    }
}

pub struct TaskSetStrategy;

impl Strategy for TaskSetStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &resource::TASKSETS
    }

    fn normalize(&self, obj: Value) -> Result<Value> {
        encode(&decode::<TaskSet>(self.info(), obj)?)
    }

    fn prepare_create(&self, obj: Value) -> Result<Value> {
        let mut ts: TaskSet = decode(self.info(), obj)?;
        ts.status = None;
        let v = encode(&ts)?;
        check(self.info(), &v, taskset::validate_taskset(&ts))?;
        Ok(v)
    }

    fn prepare_update(&self, old: &Value, new: Value, part: Part) -> Result<Value> {
        let ts: TaskSet = decode(self.info(), merge_parts(old, new, part))?;
        let v = encode(&ts)?;
        check(self.info(), &v, taskset::validate_taskset(&ts))?;
        Ok(v)
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["status.phase"]
    }
}

pub struct ServiceStrategy;

impl Strategy for ServiceStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &resource::SERVICES
    }

    fn normalize(&self, obj: Value) -> Result<Value> {
        encode(&decode::<Service>(self.info(), obj)?)
    }

    fn prepare_create(&self, obj: Value) -> Result<Value> {
        let mut svc: Service = decode(self.info(), obj)?;
        defaults::default_service(&mut svc);
        let v = encode(&svc)?;
        check(self.info(), &v, validation::validate_service(&svc))?;
        Ok(v)
    }

    fn prepare_update(&self, old: &Value, new: Value, part: Part) -> Result<Value> {
        let old_svc: Service = decode(self.info(), old.clone())?;
        let mut svc: Service = decode(self.info(), merge_parts(old, new, part))?;
        if part == Part::Main {
            keep_allocated(&old_svc, &mut svc);
            defaults::default_service(&mut svc);
        }
        let v = encode(&svc)?;
        check(
            self.info(),
            &v,
            validation::validate_service_update(&old_svc, &svc),
        )?;
        Ok(v)
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["spec.clusterIP", "spec.type"]
    }
}

/// What an update left out of a service's allocated fields is kept, and what its new type
/// no longer allows goes, before validation — as Kubernetes' service registry does, so
/// that an `apply` or a `PUT` without `clusterIP` or `nodePort` is not a change of them,
/// and a NodePort service turned ClusterIP loses its node ports.
fn keep_allocated(old: &Service, new: &mut Service) {
    let (Some(o), Some(n)) = (&old.spec, &mut new.spec) else {
        return;
    };
    let ty = |t: &Option<String>| t.clone().unwrap_or_else(|| "ClusterIP".into());
    let (old_ty, new_ty) = (ty(&o.type_), ty(&n.type_));
    let has_ip =
        |t: &str, ip: &Option<String>| t != "ExternalName" && ip.as_deref() != Some("None");
    if has_ip(&old_ty, &o.cluster_ip)
        && has_ip(&new_ty, &n.cluster_ip)
        && n.cluster_ip.as_deref().unwrap_or_default().is_empty()
        && n.cluster_ips.as_ref().is_none_or(Vec::is_empty)
    {
        n.cluster_ip.clone_from(&o.cluster_ip);
        n.cluster_ips.clone_from(&o.cluster_ips);
    }
    let node_ports = |t: &str| t == "NodePort" || t == "LoadBalancer";
    // Reachable from outside no more: the external traffic policy it had goes with it.
    if node_ports(&old_ty)
        && !node_ports(&new_ty)
        && n.external_ips.as_ref().is_none_or(Vec::is_empty)
        && n.external_traffic_policy == o.external_traffic_policy
    {
        n.external_traffic_policy = None;
    }
    for port in n.ports.iter_mut().flatten() {
        let old_port = o.ports.iter().flatten().find(|p| {
            p.port == port.port
                && p.protocol.as_deref().unwrap_or("TCP")
                    == port.protocol.as_deref().unwrap_or("TCP")
        });
        let old_np = old_port.and_then(|p| p.node_port).filter(|n| *n != 0);
        match (node_ports(&old_ty), node_ports(&new_ty)) {
            (true, true) if port.node_port.unwrap_or(0) == 0 => port.node_port = old_np,
            // Left over from the old type (not chosen anew): dropped.
            (true, false) if port.node_port == old_np => port.node_port = None,
            _ => {}
        }
    }
}

pub struct EndpointsStrategy;

impl Strategy for EndpointsStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &resource::ENDPOINTS
    }

    fn normalize(&self, obj: Value) -> Result<Value> {
        encode(&decode::<Endpoints>(self.info(), obj)?)
    }

    fn prepare_create(&self, obj: Value) -> Result<Value> {
        let ep: Endpoints = decode(self.info(), obj)?;
        let v = encode(&ep)?;
        check(self.info(), &v, validation::validate_endpoints(&ep))?;
        Ok(v)
    }

    fn prepare_update(&self, old: &Value, new: Value, part: Part) -> Result<Value> {
        let ep: Endpoints = decode(self.info(), merge_parts(old, new, part))?;
        let v = encode(&ep)?;
        check(self.info(), &v, validation::validate_endpoints(&ep))?;
        Ok(v)
    }
}

pub struct EndpointSliceStrategy;

impl Strategy for EndpointSliceStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &resource::ENDPOINT_SLICES
    }

    fn normalize(&self, obj: Value) -> Result<Value> {
        encode(&decode::<EndpointSlice>(self.info(), obj)?)
    }

    fn prepare_create(&self, obj: Value) -> Result<Value> {
        let slice: EndpointSlice = decode(self.info(), obj)?;
        let v = encode(&slice)?;
        check(self.info(), &v, validation::validate_endpoint_slice(&slice))?;
        Ok(v)
    }

    fn prepare_update(&self, old: &Value, new: Value, part: Part) -> Result<Value> {
        let slice: EndpointSlice = decode(self.info(), merge_parts(old, new, part))?;
        let v = encode(&slice)?;
        check(self.info(), &v, validation::validate_endpoint_slice(&slice))?;
        Ok(v)
    }
}
