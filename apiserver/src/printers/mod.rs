//! Server-side `Table` output: the columns and values kubectl shows for each resource,
//! computed the way Kubernetes' printers compute them.

use minik8s_api::duration::human_duration;
use minik8s_api::resource::ResourceInfo;
use minik8s_api::{Table, TableColumnDefinition as Col, TableRow};
use serde_json::{Value, json};

use crate::object;

mod services;
mod workloads;

fn name_column() -> Col {
    Col::new(
        "Name",
        "string",
        "name",
        0,
        "Name must be unique within a namespace.",
    )
}

/// Age of an RFC 3339 timestamp, `<unknown>` when missing.
pub fn age(ts: Option<&str>, now: jiff::Timestamp) -> String {
    match ts.and_then(object::parse_time) {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".to_string(),
    }
}

fn columns(resource: &ResourceInfo) -> Vec<Col> {
    let name = name_column();
    let age = Col::new(
        "Age",
        "string",
        "",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    match resource.plural {
        "services" => services::service_columns(age),
        "endpoints" => services::endpoints_columns(age),
        "endpointslices" => services::endpoint_slice_columns(age),
        "configmaps" => workloads::config_map_columns(age),
        "secrets" => workloads::secret_columns(age),
        "replicationcontrollers" => workloads::replica_columns(age, workloads::RC_SELECTOR),
        "replicasets" => workloads::replica_columns(age, workloads::RS_SELECTOR),
        "deployments" => workloads::deployment_columns(age),
        "statefulsets" => workloads::stateful_set_columns(age),
        "daemonsets" => workloads::daemon_set_columns(age),
        "jobs" => workloads::job_columns(age),
        "controllerrevisions" => workloads::controller_revision_columns(age),
        "pods" => vec![
            name,
            Col::new(
                "Ready",
                "string",
                "",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            Col::new(
                "Status",
                "string",
                "",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            Col::new(
                "Restarts",
                "string",
                "",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age,
            Col::new(
                "IP",
                "string",
                "",
                1,
                "IP address allocated to the pod. Routable at least within the cluster.",
            ),
            Col::new(
                "Node",
                "string",
                "",
                1,
                "Name of the node the pod is assigned to.",
            ),
            Col::new(
                "Nominated Node",
                "string",
                "",
                1,
                "Name of the node the pod is nominated to run on.",
            ),
            Col::new(
                "Readiness Gates",
                "string",
                "",
                1,
                "Readiness gates of the pod.",
            ),
        ],
        "nodes" => vec![
            name,
            Col::new("Status", "string", "", 0, "The status of the node"),
            Col::new("Roles", "string", "", 0, "The roles of the node"),
            age,
            Col::new(
                "Version",
                "string",
                "",
                0,
                "Kubelet Version reported by the node.",
            ),
            Col::new(
                "Internal-IP",
                "string",
                "",
                1,
                "List of internal IPs in the node.",
            ),
            Col::new(
                "External-IP",
                "string",
                "",
                1,
                "List of external IPs in the node.",
            ),
            Col::new(
                "OS-Image",
                "string",
                "",
                1,
                "OS Image reported by the node.",
            ),
            Col::new(
                "Kernel-Version",
                "string",
                "",
                1,
                "Kernel Version reported by the node.",
            ),
            Col::new(
                "Container-Runtime",
                "string",
                "",
                1,
                "Container Runtime Version reported by the node.",
            ),
        ],
        "namespaces" => vec![
            name,
            Col::new("Status", "string", "", 0, "The status of the namespace"),
            age,
        ],
        "tasksets" => vec![
            name,
            Col::new(
                "Phase",
                "string",
                "",
                0,
                "Pending, Running, Succeeded or Failed.",
            ),
            Col::new(
                "Roles",
                "string",
                "",
                0,
                "Succeeded pods of each role, of its replicas.",
            ),
            Col::new(
                "Retries",
                "string",
                "",
                0,
                "Pods created again after they failed.",
            ),
            age,
            Col::new(
                "Message",
                "string",
                "",
                1,
                "Why the TaskSet is in its phase.",
            ),
        ],
        "events" => vec![
            Col::new(
                "Last Seen",
                "string",
                "",
                0,
                "Time when last event occurred",
            ),
            Col::new(
                "Type",
                "string",
                "",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future.",
            ),
            Col::new(
                "Reason",
                "string",
                "",
                0,
                "A short, machine understandable string that gives the reason for this event being generated.",
            ),
            Col::new("Object", "string", "", 0, "The object this Event is about."),
            Col::new(
                "Subobject",
                "string",
                "",
                1,
                "The subobject this Event is about.",
            ),
            Col::new(
                "Source",
                "string",
                "",
                1,
                "The component reporting this event.",
            ),
            Col::new(
                "Message",
                "string",
                "",
                0,
                "A human-readable description of the status of this operation.",
            ),
            Col::new(
                "First Seen",
                "string",
                "",
                1,
                "The time at which the event was first recorded.",
            ),
            Col::new(
                "Count",
                "string",
                "",
                1,
                "The number of times this event has occurred.",
            ),
            Col::new("Name", "string", "name", 1, "Name of the event."),
        ],
        _ => vec![name, age],
    }
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s
    }
}

fn pod_cells(pod: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let p = PodSummary::of(pod, now);
    let gates = pod["spec"]["readinessGates"]
        .as_array()
        .map(|g| g.len())
        .unwrap_or(0);
    let gates = if gates == 0 {
        "<none>".to_string()
    } else {
        let conds = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ready = pod["spec"]["readinessGates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| {
                conds
                    .iter()
                    .any(|c| c["type"] == g["conditionType"] && c["status"] == "True")
            })
            .count();
        format!("{ready}/{gates}")
    };
    vec![
        json!(object::name(pod)),
        json!(format!("{}/{}", p.ready, p.total)),
        json!(p.status),
        json!(p.restarts),
        json!(age(object::meta_str(pod, "creationTimestamp"), now)),
        json!(or_none(object::path_string(pod, "status.podIP"))),
        json!(or_none(object::path_string(pod, "spec.nodeName"))),
        json!(or_none(object::path_string(
            pod,
            "status.nominatedNodeName"
        ))),
        json!(gates),
    ]
}

/// The READY, STATUS and RESTARTS of a pod as kubectl shows them.
pub struct PodSummary {
    pub ready: usize,
    pub total: usize,
    pub status: String,
    pub restarts: String,
}

impl PodSummary {
    pub fn of(pod: &Value, now: jiff::Timestamp) -> PodSummary {
        let status = &pod["status"];
        let empty = Vec::new();
        let arr = |v: &Value| v.as_array().cloned().unwrap_or_else(|| empty.clone());
        let init_specs = arr(&pod["spec"]["initContainers"]);
        let total = arr(&pod["spec"]["containers"]).len();
        let mut reason = status["phase"].as_str().unwrap_or("").to_string();
        if let Some(r) = status["reason"].as_str().filter(|r| !r.is_empty()) {
            reason = r.to_string();
        }
        let mut restarts: i64 = 0;
        let mut last_restart: Option<jiff::Timestamp> = None;
        let mut note_restart = |cs: &Value| {
            if let Some(t) = cs["lastState"]["terminated"]["finishedAt"]
                .as_str()
                .and_then(object::parse_time)
            {
                last_restart = Some(last_restart.map_or(t, |l: jiff::Timestamp| l.max(t)));
            }
        };
        let mut initializing = false;
        for (i, cs) in arr(&status["initContainerStatuses"]).iter().enumerate() {
            restarts += cs["restartCount"].as_i64().unwrap_or(0);
            note_restart(cs);
            let term = &cs["state"]["terminated"];
            let wait = &cs["state"]["waiting"];
            if term.is_object() && term["exitCode"].as_i64() == Some(0) {
                continue;
            }
            initializing = true;
            if term.is_object() {
                reason = match term["reason"].as_str().filter(|r| !r.is_empty()) {
                    Some(r) => format!("Init:{r}"),
                    None => match term["signal"].as_i64().filter(|s| *s != 0) {
                        Some(s) => format!("Init:Signal:{s}"),
                        None => format!("Init:ExitCode:{}", term["exitCode"].as_i64().unwrap_or(0)),
                    },
                };
            } else if let Some(r) = wait["reason"]
                .as_str()
                .filter(|r| !r.is_empty() && *r != "PodInitializing")
            {
                reason = format!("Init:{r}");
            } else {
                reason = format!("Init:{i}/{}", init_specs.len());
            }
            break;
        }
        let initialized = arr(&status["conditions"])
            .iter()
            .any(|c| c["type"] == "Initialized" && c["status"] == "True");
        let mut ready = 0;
        if !initializing || initialized {
            let mut has_running = false;
            for cs in arr(&status["containerStatuses"]).iter().rev() {
                restarts += cs["restartCount"].as_i64().unwrap_or(0);
                note_restart(cs);
                let term = &cs["state"]["terminated"];
                let wait = &cs["state"]["waiting"];
                if let Some(r) = wait["reason"].as_str().filter(|r| !r.is_empty()) {
                    reason = r.to_string();
                } else if let Some(r) = term["reason"].as_str().filter(|r| !r.is_empty()) {
                    reason = r.to_string();
                } else if term.is_object() {
                    reason = match term["signal"].as_i64().filter(|s| *s != 0) {
                        Some(s) => format!("Signal:{s}"),
                        None => format!("ExitCode:{}", term["exitCode"].as_i64().unwrap_or(0)),
                    };
                } else if cs["ready"] == true && cs["state"]["running"].is_object() {
                    has_running = true;
                    ready += 1;
                }
            }
            if reason == "Completed" && has_running {
                let pod_ready = arr(&status["conditions"])
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
            }
        }
        if object::meta(pod).is_some_and(|m| m.contains_key("deletionTimestamp")) {
            reason = if status["reason"] == "NodeLost" {
                "Unknown".to_string()
            } else {
                "Terminating".to_string()
            };
        }
        let restarts = match last_restart {
            Some(t) => format!(
                "{restarts} ({} ago)",
                human_duration(now.as_second() - t.as_second())
            ),
            None => restarts.to_string(),
        };
        PodSummary {
            ready,
            total,
            status: reason,
            restarts,
        }
    }
}

fn node_cells(node: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let conds = node["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut status = match conds.iter().find(|c| c["type"] == "Ready") {
        Some(c) if c["status"] == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if node["spec"]["unschedulable"] == true {
        status.push_str(",SchedulingDisabled");
    }
    let roles: Vec<String> = object::labels(node)
        .keys()
        .filter_map(|k| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_string)
        })
        .filter(|r| !r.is_empty())
        .collect();
    let addr = |t: &str| {
        node["status"]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["type"] == t)
            .filter_map(|a| a["address"].as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    let info = |f: &str| object::path_string(node, &format!("status.nodeInfo.{f}"));
    vec![
        json!(object::name(node)),
        json!(status),
        json!(or_none(roles.join(","))),
        json!(age(object::meta_str(node, "creationTimestamp"), now)),
        json!(info("kubeletVersion")),
        json!(or_none(addr("InternalIP"))),
        json!(or_none(addr("ExternalIP"))),
        json!(or_none(info("osImage"))),
        json!(or_none(info("kernelVersion"))),
        json!(or_none(info("containerRuntimeVersion"))),
    ]
}

fn event_cells(ev: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let first = ev["firstTimestamp"]
        .as_str()
        .or_else(|| ev["eventTime"].as_str())
        .or_else(|| object::meta_str(ev, "creationTimestamp"));
    let last = ev["lastTimestamp"]
        .as_str()
        .or_else(|| ev["series"]["lastObservedTime"].as_str())
        .or(first);
    let inv = &ev["involvedObject"];
    let obj = format!(
        "{}/{}",
        inv["kind"].as_str().unwrap_or("").to_ascii_lowercase(),
        inv["name"].as_str().unwrap_or("")
    );
    let source = {
        let c = object::path_string(ev, "source.component");
        let h = object::path_string(ev, "source.host");
        let c = if c.is_empty() {
            object::path_string(ev, "reportingComponent")
        } else {
            c
        };
        if h.is_empty() { c } else { format!("{c}, {h}") }
    };
    vec![
        json!(age(last, now)),
        json!(ev["type"].as_str().unwrap_or("")),
        json!(ev["reason"].as_str().unwrap_or("")),
        json!(obj),
        json!(object::path_string(ev, "involvedObject.fieldPath")),
        json!(source),
        json!(ev["message"].as_str().unwrap_or("").trim()),
        json!(age(first, now)),
        json!(ev["count"].as_i64().unwrap_or(1).to_string()),
        json!(object::name(ev)),
    ]
}

fn taskset_cells(ts: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let roles: Vec<String> = ts["spec"]["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|role| {
            let name = role["name"].as_str().unwrap_or("");
            let succeeded = ts["status"]["roles"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["name"] == name)
                .and_then(|r| r["succeeded"].as_i64())
                .unwrap_or(0);
            format!(
                "{name}:{succeeded}/{}",
                role["replicas"].as_i64().unwrap_or(0)
            )
        })
        .collect();
    let retries: i64 = ts["status"]["retries"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_i64).sum())
        .unwrap_or(0);
    let phase = match object::path_string(ts, "status.phase") {
        p if p.is_empty() => "Pending".to_string(),
        p => p,
    };
    vec![
        json!(object::name(ts)),
        json!(phase),
        json!(roles.join(",")),
        json!(retries.to_string()),
        json!(age(object::meta_str(ts, "creationTimestamp"), now)),
        json!(or_none(object::path_string(ts, "status.message"))),
    ]
}

fn cells(resource: &ResourceInfo, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    match resource.plural {
        "pods" => pod_cells(obj, now),
        "nodes" => node_cells(obj, now),
        "events" => event_cells(obj, now),
        "namespaces" => vec![
            json!(object::name(obj)),
            json!(object::path_string(obj, "status.phase")),
            json!(age(object::meta_str(obj, "creationTimestamp"), now)),
        ],
        "tasksets" => taskset_cells(obj, now),
        "services" => services::service_cells(obj, now),
        "endpoints" => services::endpoints_cells(obj, now),
        "endpointslices" => services::endpoint_slice_cells(obj, now),
        "configmaps" => workloads::config_map_cells(obj, now),
        "secrets" => workloads::secret_cells(obj, now),
        "replicationcontrollers" => workloads::replication_controller_cells(obj, now),
        "replicasets" => workloads::replica_set_cells(obj, now),
        "deployments" => workloads::deployment_cells(obj, now),
        "statefulsets" => workloads::stateful_set_cells(obj, now),
        "daemonsets" => workloads::daemon_set_cells(obj, now),
        "jobs" => workloads::job_cells(obj, now),
        "controllerrevisions" => workloads::controller_revision_cells(obj, now),
        _ => vec![
            json!(object::name(obj)),
            json!(age(object::meta_str(obj, "creationTimestamp"), now)),
        ],
    }
}

/// What each row carries besides its cells (`?includeObject=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> IncludeObject {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

fn row(
    resource: &ResourceInfo,
    obj: &Value,
    include: IncludeObject,
    now: jiff::Timestamp,
) -> TableRow {
    let object = match include {
        IncludeObject::None => None,
        IncludeObject::Object => Some(obj.clone()),
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        })),
    };
    TableRow {
        cells: cells(resource, obj, now),
        object,
    }
}

pub fn table(
    resource: &ResourceInfo,
    objects: &[Value],
    include: IncludeObject,
    no_headers: bool,
) -> Table {
    let now = jiff::Timestamp::now();
    let mut t = Table::new(if no_headers {
        Vec::new()
    } else {
        columns(resource)
    });
    t.rows = objects
        .iter()
        .map(|o| row(resource, o, include, now))
        .collect();
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_with(status: Value) -> Value {
        json!({"metadata": {"name": "p", "creationTimestamp": "2020-01-01T00:00:00Z"},
               "spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i"}]},
               "status": status})
    }

    #[test]
    fn pod_status_column() {
        let now = jiff::Timestamp::now();
        let cases = [
            (json!({"phase": "Pending"}), "Pending"),
            (
                json!({"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": {"running": {}}}]}),
                "Init:0/1",
            ),
            (
                json!({"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": {"terminated": {"exitCode": 0}}}],
                    "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
                "ContainerCreating",
            ),
            (
                json!({"phase": "Running", "initContainerStatuses": [{"name": "i", "state": {"terminated": {"exitCode": 0}}}],
                    "containerStatuses": [{"name": "a", "ready": true, "state": {"running": {}}}]}),
                "Running",
            ),
            (
                json!({"phase": "Succeeded", "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
                "Completed",
            ),
            (
                json!({"phase": "Failed", "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
                "Error",
            ),
            (
                json!({"phase": "Running", "containerStatuses": [{"name": "a", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
                "CrashLoopBackOff",
            ),
        ];
        for (status, want) in cases {
            assert_eq!(
                PodSummary::of(&pod_with(status.clone()), now).status,
                want,
                "{status}"
            );
        }
        let mut p = pod_with(json!({"phase": "Running"}));
        p["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
        assert_eq!(PodSummary::of(&p, now).status, "Terminating");
    }

    #[test]
    fn restarts_show_when_last_restart_happened() {
        let now: jiff::Timestamp = "2020-01-01T00:10:00Z".parse().unwrap();
        let p = pod_with(
            json!({"phase": "Running", "containerStatuses": [{"name": "a", "restartCount": 5,
            "ready": true, "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2020-01-01T00:05:00Z"}}}]}),
        );
        let s = PodSummary::of(&p, now);
        assert_eq!(s.restarts, "5 (5m ago)");
        assert_eq!((s.ready, s.total), (1, 1));
    }
}
