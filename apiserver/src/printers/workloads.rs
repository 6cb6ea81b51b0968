//! Table rows for config maps, secrets and the workload kinds (replication controllers,
//! deployments, replica sets, stateful sets, daemon sets, controller revisions, jobs),
//! with the columns and values of Kubernetes' printers.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use minik8s_api::TableColumnDefinition as Col;
use minik8s_api::duration::human_duration;
use minik8s_api::selector::LabelSelector;
use serde_json::{Value, json};

use super::{age, name_column};
use crate::object;

const CONTAINERS: &str = "Names of each container in the template.";
const IMAGES: &str = "Images referenced by each container in the template.";

fn int(name: &str, description: &str) -> Col {
    Col::new(name, "integer", "", 0, description)
}

fn string(name: &str, description: &str) -> Col {
    Col::new(name, "string", "", 0, description)
}

fn wide(name: &str, description: &str) -> Col {
    Col::new(name, "string", "", 1, description)
}

pub(super) fn config_map_columns(age: Col) -> Vec<Col> {
    vec![
        name_column(),
        string(
            "Data",
            "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.",
        ),
        age,
    ]
}

pub(super) fn secret_columns(age: Col) -> Vec<Col> {
    vec![
        name_column(),
        string(
            "Type",
            "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
        ),
        string(
            "Data",
            "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4",
        ),
        age,
    ]
}

/// Replication controllers and replica sets share their columns.
pub(super) fn replica_columns(age: Col, selector: &str) -> Vec<Col> {
    vec![
        name_column(),
        int(
            "Desired",
            "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1.",
        ),
        int(
            "Current",
            "Replicas is the most recently observed number of replicas.",
        ),
        int("Ready", "The number of ready replicas for this controller."),
        age,
        wide("Containers", CONTAINERS),
        wide("Images", IMAGES),
        wide("Selector", selector),
    ]
}

pub(super) const RC_SELECTOR: &str = "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
pub(super) const RS_SELECTOR: &str = "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

pub(super) fn deployment_columns(age: Col) -> Vec<Col> {
    vec![
        name_column(),
        string("Ready", "Number of the pod with ready state"),
        string(
            "Up-to-date",
            "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
        ),
        string(
            "Available",
            "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
        ),
        age,
        wide("Containers", CONTAINERS),
        wide("Images", IMAGES),
        wide(
            "Selector",
            "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
        ),
    ]
}

pub(super) fn stateful_set_columns(age: Col) -> Vec<Col> {
    vec![
        name_column(),
        string("Ready", "Number of the pod with ready state"),
        age,
        wide("Containers", CONTAINERS),
        wide("Images", IMAGES),
    ]
}

pub(super) fn daemon_set_columns(age: Col) -> Vec<Col> {
    vec![
        name_column(),
        int(
            "Desired",
            "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
        ),
        int(
            "Current",
            "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
        ),
        int(
            "Ready",
            "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
        ),
        int(
            "Up-to-date",
            "The total number of nodes that are running updated daemon pod",
        ),
        int(
            "Available",
            "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
        ),
        string(
            "Node Selector",
            "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/",
        ),
        age,
        wide("Containers", CONTAINERS),
        wide("Images", IMAGES),
        wide(
            "Selector",
            "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        ),
    ]
}

pub(super) fn job_columns(age: Col) -> Vec<Col> {
    vec![
        name_column(),
        string("Status", "Status of the job."),
        string(
            "Completions",
            "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.",
        ),
        string("Duration", "Time required to complete the job."),
        age,
        wide("Containers", CONTAINERS),
        wide("Images", IMAGES),
        wide(
            "Selector",
            "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        ),
    ]
}

pub(super) fn controller_revision_columns(age: Col) -> Vec<Col> {
    vec![
        name_column(),
        string("Controller", "Controller of the object"),
        string(
            "Revision",
            "Revision indicates the revision of the state represented by Data.",
        ),
        age,
    ]
}

fn created(obj: &Value, now: jiff::Timestamp) -> Value {
    json!(age(object::meta_str(obj, "creationTimestamp"), now))
}

fn count(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn entries(v: &Value) -> i64 {
    v.as_object().map_or(0, |m| m.len() as i64)
}

/// `a,b` and `img-a,img-b`: the containers of a pod template on one line.
fn containers(template: &Value) -> (String, String) {
    let list = template["spec"]["containers"].as_array();
    let field = |f: &str| {
        list.into_iter()
            .flatten()
            .map(|c| c[f].as_str().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(",")
    };
    (field("name"), field("image"))
}

/// A label map as `a=1,b=2` (sorted by key), or `<none>`.
fn format_labels(v: &Value) -> String {
    let labels: BTreeMap<String, String> = object::string_map(Some(v));
    if labels.is_empty() {
        return "<none>".to_string();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A structured selector as a selector string (`app=web,tier in (a,b)`); `None` when it
/// cannot be read. An absent selector selects nothing and prints as nothing.
fn selector_string(v: &Value) -> Option<String> {
    if v.is_null() {
        return Some(String::new());
    }
    let selector: metav1::LabelSelector = serde_json::from_value(v.clone()).ok()?;
    LabelSelector::from_label_selector(&selector)
        .ok()
        .map(|s| s.to_string())
}

/// Kubernetes' `FormatLabelSelector`: `<none>` for an empty selector, `<error>` for a
/// bad one.
fn format_selector(v: &Value) -> String {
    match selector_string(v) {
        None => "<error>".to_string(),
        Some(s) if s.is_empty() => "<none>".to_string(),
        Some(s) => s,
    }
}

pub(super) fn config_map_cells(cm: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        json!(object::name(cm)),
        json!(entries(&cm["data"]) + entries(&cm["binaryData"])),
        created(cm, now),
    ]
}

pub(super) fn secret_cells(secret: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        json!(object::name(secret)),
        json!(secret["type"].as_str().unwrap_or("")),
        json!(entries(&secret["data"])),
        created(secret, now),
    ]
}

pub(super) fn replication_controller_cells(rc: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let (names, images) = containers(&rc["spec"]["template"]);
    vec![
        json!(object::name(rc)),
        json!(count(&rc["spec"]["replicas"])),
        json!(count(&rc["status"]["replicas"])),
        json!(count(&rc["status"]["readyReplicas"])),
        created(rc, now),
        json!(names),
        json!(images),
        json!(format_labels(&rc["spec"]["selector"])),
    ]
}

pub(super) fn replica_set_cells(rs: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let (names, images) = containers(&rs["spec"]["template"]);
    vec![
        json!(object::name(rs)),
        json!(count(&rs["spec"]["replicas"])),
        json!(count(&rs["status"]["replicas"])),
        json!(count(&rs["status"]["readyReplicas"])),
        created(rs, now),
        json!(names),
        json!(images),
        json!(format_selector(&rs["spec"]["selector"])),
    ]
}

pub(super) fn deployment_cells(d: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let (names, images) = containers(&d["spec"]["template"]);
    // printDeployment uses the selector's string as is, `<invalid>` when it is bad.
    let selector = selector_string(&d["spec"]["selector"]).unwrap_or_else(|| "<invalid>".into());
    vec![
        json!(object::name(d)),
        json!(format!(
            "{}/{}",
            count(&d["status"]["readyReplicas"]),
            count(&d["spec"]["replicas"])
        )),
        json!(count(&d["status"]["updatedReplicas"])),
        json!(count(&d["status"]["availableReplicas"])),
        created(d, now),
        json!(names),
        json!(images),
        json!(selector),
    ]
}

pub(super) fn stateful_set_cells(sts: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let (names, images) = containers(&sts["spec"]["template"]);
    vec![
        json!(object::name(sts)),
        json!(format!(
            "{}/{}",
            count(&sts["status"]["readyReplicas"]),
            count(&sts["spec"]["replicas"])
        )),
        created(sts, now),
        json!(names),
        json!(images),
    ]
}

pub(super) fn daemon_set_cells(ds: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let status = &ds["status"];
    let (names, images) = containers(&ds["spec"]["template"]);
    vec![
        json!(object::name(ds)),
        json!(count(&status["desiredNumberScheduled"])),
        json!(count(&status["currentNumberScheduled"])),
        json!(count(&status["numberReady"])),
        json!(count(&status["updatedNumberScheduled"])),
        json!(count(&status["numberAvailable"])),
        json!(format_labels(
            &ds["spec"]["template"]["spec"]["nodeSelector"]
        )),
        created(ds, now),
        json!(names),
        json!(images),
        json!(format_selector(&ds["spec"]["selector"])),
    ]
}

/// The STATUS of a job, in the order printJob checks its conditions.
fn job_status(job: &Value) -> &'static str {
    let is = |kind: &str| {
        job["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == kind)
            .is_some_and(|c| c["status"] == "True")
    };
    let deleting = object::meta(job).is_some_and(|m| m.contains_key("deletionTimestamp"));
    if is("Complete") {
        "Complete"
    } else if is("Failed") {
        "Failed"
    } else if deleting {
        "Terminating"
    } else if is("Suspended") {
        "Suspended"
    } else if is("FailureTarget") {
        "FailureTarget"
    } else if is("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

pub(super) fn job_cells(job: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let spec = &job["spec"];
    let succeeded = count(&job["status"]["succeeded"]);
    let completions = match spec["completions"].as_i64() {
        Some(n) => format!("{succeeded}/{n}"),
        None => match count(&spec["parallelism"]) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let time = |f: &str| job["status"][f].as_str().and_then(object::parse_time);
    let duration = match (time("startTime"), time("completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now.as_second() - start.as_second()),
        (Some(start), Some(end)) => human_duration(end.as_second() - start.as_second()),
    };
    let (names, images) = containers(&spec["template"]);
    vec![
        json!(object::name(job)),
        json!(job_status(job)),
        json!(completions),
        json!(duration),
        created(job, now),
        json!(names),
        json!(images),
        json!(format_selector(&spec["selector"])),
    ]
}

pub(super) fn controller_revision_cells(cr: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let controller = object::meta(cr)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|r| r["controller"] == true)
        .map_or("<none>".to_string(), |r| {
            let kind = r["kind"].as_str().unwrap_or("");
            // The group of `apps/v1`; none for `v1`.
            let group = r["apiVersion"]
                .as_str()
                .and_then(|v| v.rsplit_once('/'))
                .map_or("", |(g, _)| g);
            let kind = if group.is_empty() {
                kind.to_string()
            } else {
                format!("{kind}.{group}")
            };
            format!(
                "{}/{}",
                kind.to_ascii_lowercase(),
                r["name"].as_str().unwrap_or("")
            )
        });
    vec![
        json!(object::name(cr)),
        json!(controller),
        json!(count(&cr["revision"])),
        created(cr, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2024-05-01T10:10:00Z".parse().unwrap()
    }

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default", "creationTimestamp": "2024-05-01T10:00:00Z"})
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}},
               "spec": {"containers": [{"name": "app", "image": "nginx:1.25"},
                                       {"name": "side", "image": "busybox"}]}})
    }

    #[test]
    fn deployment_row() {
        let d = json!({"metadata": meta("web"),
            "spec": {"replicas": 3, "template": template(),
                     "selector": {"matchLabels": {"app": "web"},
                                  "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]},
                                                       {"key": "canary", "operator": "DoesNotExist"}]}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 1}});
        assert_eq!(
            deployment_cells(&d, now()),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(1),
                json!("10m"),
                json!("app,side"),
                json!("nginx:1.25,busybox"),
                json!("app=web,!canary,tier in (be,fe)")
            ]
        );
        assert_eq!(deployment_columns(name_column()).len(), 8);
    }

    #[test]
    fn replica_rows_and_selectors() {
        let rs = json!({"metadata": meta("web-1"), "spec": {"replicas": 2, "template": template(),
            "selector": {}}, "status": {"replicas": 2}});
        let cells = replica_set_cells(&rs, now());
        assert_eq!(&cells[1..4], &[json!(2), json!(2), json!(0)]);
        assert_eq!(cells[7], json!("<none>"));
        let rc = json!({"metadata": meta("old"), "spec": {"replicas": 1, "selector": {"b": "2", "a": "1"},
            "template": template()}, "status": {"replicas": 1, "readyReplicas": 1}});
        assert_eq!(
            replication_controller_cells(&rc, now())[7],
            json!("a=1,b=2")
        );
        let bad = json!({"matchExpressions": [{"key": "x", "operator": "Bogus"}]});
        assert_eq!(format_selector(&bad), "<error>");
    }

    #[test]
    fn daemon_set_and_stateful_set_rows() {
        let ds = json!({"metadata": meta("agent"), "spec": {"template": {"spec": {"containers": [],
            "nodeSelector": {"kubernetes.io/os": "linux"}}}, "selector": {"matchLabels": {"app": "agent"}}},
            "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                       "updatedNumberScheduled": 2, "numberAvailable": 1}});
        let cells = daemon_set_cells(&ds, now());
        assert_eq!(
            &cells[1..7],
            &[
                json!(2),
                json!(2),
                json!(1),
                json!(2),
                json!(1),
                json!("kubernetes.io/os=linux")
            ]
        );
        assert_eq!(cells[10], json!("app=agent"));
        let sts = json!({"metadata": meta("db"), "spec": {"replicas": 3, "template": template()},
                         "status": {"readyReplicas": 1}});
        assert_eq!(stateful_set_cells(&sts, now())[1], json!("1/3"));
    }

    #[test]
    fn job_status_completions_and_duration() {
        let job = |spec: Value, status: Value| json!({"metadata": meta("j"), "spec": spec, "status": status});
        let running = job(
            json!({"completions": 3, "parallelism": 1}),
            json!({"succeeded": 1, "startTime": "2024-05-01T10:05:00Z"}),
        );
        let cells = job_cells(&running, now());
        assert_eq!(&cells[1..4], &[json!("Running"), json!("1/3"), json!("5m")]);
        let done = job(
            json!({"parallelism": 1}),
            json!({"succeeded": 1, "startTime": "2024-05-01T10:00:00Z",
                   "completionTime": "2024-05-01T10:00:42Z",
                   "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                  {"type": "Complete", "status": "True"}]}),
        );
        assert_eq!(
            &job_cells(&done, now())[1..4],
            &[json!("Complete"), json!("1/1"), json!("42s")]
        );
        let parallel = job(json!({"parallelism": 4}), json!({}));
        assert_eq!(
            &job_cells(&parallel, now())[1..4],
            &[json!("Running"), json!("0/1 of 4"), json!("")]
        );
        let suspended = job(
            json!({"completions": 1, "suspend": true}),
            json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
        );
        assert_eq!(job_cells(&suspended, now())[1], json!("Suspended"));
        let failed = job(
            json!({"completions": 1}),
            json!({"conditions": [{"type": "FailureTarget", "status": "True"},
                                  {"type": "Failed", "status": "True"}]}),
        );
        assert_eq!(job_cells(&failed, now())[1], json!("Failed"));
    }

    #[test]
    fn config_secret_and_revision_rows() {
        let cm = json!({"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(config_map_cells(&cm, now())[1], json!(3));
        let secret = json!({"metadata": meta("s"), "type": "Opaque", "data": {"a": "MQ=="}});
        assert_eq!(
            secret_cells(&secret, now()),
            vec![json!("s"), json!("Opaque"), json!(1), json!("10m")]
        );
        let mut m = meta("web-6d4b");
        m["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                                       "uid": "u", "controller": true}]);
        let cr = json!({"metadata": m, "revision": 2});
        assert_eq!(
            controller_revision_cells(&cr, now()),
            vec![
                json!("web-6d4b"),
                json!("statefulset.apps/web"),
                json!(2),
                json!("10m")
            ]
        );
        let orphan = json!({"metadata": meta("x"), "revision": 1});
        assert_eq!(
            controller_revision_cells(&orphan, now())[1],
            json!("<none>")
        );
    }
}
