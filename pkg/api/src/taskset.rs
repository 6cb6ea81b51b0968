//! `TaskSet` (`minik8s.io/v1alpha1`): a batch job made of roles, each a number of
//! replicas of one pod template. Every pod has a name, hostname and subdomain known before
//! the job is submitted — pod `{taskset}-{role}-{index}`, hostname `{role}-{index}`,
//! subdomain `{taskset}` — so its peers can reach it by name.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::names;
use crate::validation::{FieldError, NameRule, validate_object_meta, validate_pod_spec};

pub const GROUP: &str = "minik8s.io";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "minik8s.io/v1alpha1";
/// The group of the original pod-discovery design, accepted as another name for ours.
pub const ALIAS_GROUP: &str = "octopus.openi.pcl.cn";

/// The most replicas one role may have.
pub const MAX_REPLICAS: i32 = 10_000;

/// Labels the TaskSet controller puts on every pod it creates.
pub const LABEL_TASKSET: &str = "minik8s.io/taskset";
pub const LABEL_ROLE: &str = "minik8s.io/role";
pub const LABEL_INDEX: &str = "minik8s.io/index";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSet {
    #[serde(default = "api_version")]
    pub api_version: String,
    #[serde(default = "kind")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: TaskSetSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskSetStatus>,
}

fn api_version() -> String {
    API_VERSION.to_string()
}

fn kind() -> String {
    "TaskSet".to_string()
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSetSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    #[serde(default)]
    pub roles: Vec<Role>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Whether a failed pod is created again (same name and hostname, new uid and IP).
    #[serde(default)]
    pub retry: bool,
    /// How many times one pod may be retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry_count: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    pub name: String,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_policy: Option<CompletionPolicy>,
    #[serde(default)]
    pub template: PodTemplateSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionPolicy {
    /// The role succeeds once this many of its pods have succeeded (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_succeeded: Option<i32>,
    /// The role fails once this many of its pods have failed for good (default: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSetStatus {
    /// Pending, Running, Succeeded or Failed.
    #[serde(default)]
    pub phase: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleStatus>,
    /// Retries so far, per pod hostname (`role-index`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retries: BTreeMap<String, i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleStatus {
    pub name: String,
    /// Pending, Running, Succeeded or Failed.
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub pending: i32,
    #[serde(default)]
    pub running: i32,
    #[serde(default)]
    pub succeeded: i32,
    #[serde(default)]
    pub failed: i32,
}

impl k8s_openapi::Resource for TaskSet {
    const API_VERSION: &'static str = API_VERSION;
    const GROUP: &'static str = GROUP;
    const KIND: &'static str = "TaskSet";
    const VERSION: &'static str = VERSION;
    const URL_PATH_SEGMENT: &'static str = "tasksets";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for TaskSet {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl TaskSet {
    /// The name of the pod for `role`'s replica `index`.
    pub fn pod_name(&self, role: &str, index: i32) -> String {
        format!(
            "{}-{role}-{index}",
            self.metadata.name.as_deref().unwrap_or("")
        )
    }
}

/// The hostname of `role`'s replica `index`: what its peers call it.
pub fn hostname(role: &str, index: i32) -> String {
    format!("{role}-{index}")
}

impl CompletionPolicy {
    pub fn min_succeeded(&self, replicas: i32) -> i32 {
        self.min_succeeded.unwrap_or(replicas)
    }

    pub fn max_failed(&self) -> i32 {
        self.max_failed.unwrap_or(1)
    }
}

/// Validates a TaskSet: its name becomes every pod's subdomain and role names and indexes
/// become hostnames, so all must be DNS labels; templates are pod specs.
pub fn validate_taskset(ts: &TaskSet) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&ts.metadata, true, NameRule::Dns1123Label);
    let name = ts.metadata.name.as_deref().unwrap_or("");
    if ts.spec.roles.is_empty() {
        errs.push(FieldError::required(
            "spec.roles",
            "at least one role is required",
        ));
    }
    if let Some(rp) = &ts.spec.retry_policy
        && rp.max_retry_count.is_some_and(|c| c < 0)
    {
        errs.push(FieldError::invalid(
            "spec.retryPolicy.maxRetryCount",
            &rp.max_retry_count.unwrap_or(0).to_string(),
            "must be greater than or equal to 0",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, role) in ts.spec.roles.iter().enumerate() {
        let path = format!("spec.roles[{i}]");
        if role.name.is_empty() {
            errs.push(FieldError::required(format!("{path}.name"), ""));
        } else {
            for problem in names::is_dns1123_label(&role.name) {
                errs.push(FieldError::invalid(
                    format!("{path}.name"),
                    &role.name,
                    problem,
                ));
            }
            if !seen.insert(role.name.clone()) {
                errs.push(FieldError::duplicate(format!("{path}.name"), &role.name));
            }
        }
        if role.replicas < 0 || role.replicas > MAX_REPLICAS {
            errs.push(FieldError::invalid(
                format!("{path}.replicas"),
                &role.replicas.to_string(),
                format!("must be between 0 and {MAX_REPLICAS}"),
            ));
        } else if role.replicas > 0 && !role.name.is_empty() {
            // The longest hostname and pod name this role will produce.
            let host = hostname(&role.name, role.replicas - 1);
            for problem in names::is_dns1123_label(&host) {
                errs.push(FieldError::invalid(
                    format!("{path}.name"),
                    &role.name,
                    format!("hostname {host:?} of its last replica is not valid: {problem}"),
                ));
            }
            let pod = format!("{name}-{host}");
            for problem in names::is_dns1123_subdomain(&pod) {
                errs.push(FieldError::invalid(
                    format!("{path}.name"),
                    &role.name,
                    format!("pod name {pod:?} is not valid: {problem}"),
                ));
            }
        }
        if let Some(cp) = &role.completion_policy {
            for (field, v) in [
                ("minSucceeded", cp.min_succeeded),
                ("maxFailed", cp.max_failed),
            ] {
                if let Some(v) = v
                    && v < 0
                {
                    errs.push(FieldError::invalid(
                        format!("{path}.completionPolicy.{field}"),
                        &v.to_string(),
                        "must be greater than or equal to 0",
                    ));
                }
            }
            if let Some(m) = cp.min_succeeded
                && m > role.replicas
            {
                errs.push(FieldError::invalid(
                    format!("{path}.completionPolicy.minSucceeded"),
                    &m.to_string(),
                    "must not be greater than replicas",
                ));
            }
        }
        match &role.template.spec {
            Some(spec) => errs.extend(validate_pod_spec(spec, &format!("{path}.template.spec"))),
            None => errs.push(FieldError::required(format!("{path}.template.spec"), "")),
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn example() -> TaskSet {
        serde_json::from_value(json!({
            "apiVersion": "minik8s.io/v1alpha1", "kind": "TaskSet",
            "metadata": {"name": "demo", "namespace": "default"},
            "spec": {"retryPolicy": {"retry": true, "maxRetryCount": 1}, "roles": [
                {"name": "role1", "replicas": 1, "completionPolicy": {"minSucceeded": 1, "maxFailed": 1},
                 "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "w", "image": "busybox"}]}}},
                {"name": "role2", "replicas": 2,
                 "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "w", "image": "busybox"}]}}}
            ]}
        }))
        .unwrap()
    }

    #[test]
    fn names_follow_role_and_index() {
        let ts = example();
        assert_eq!(ts.pod_name("role2", 1), "demo-role2-1");
        assert_eq!(hostname("role2", 1), "role2-1");
        assert!(
            validate_taskset(&ts).is_empty(),
            "{:?}",
            validate_taskset(&ts)
        );
        let cp = ts.spec.roles[1]
            .completion_policy
            .clone()
            .unwrap_or_default();
        assert_eq!((cp.min_succeeded(2), cp.max_failed()), (2, 1));
    }

    #[test]
    fn every_bad_field_is_reported() {
        let mut ts = example();
        ts.metadata.name = Some("Demo.Set".into());
        ts.spec.roles[0].name = "Role_1".into();
        ts.spec.roles[1].name = "role1".into();
        ts.spec.roles[1].replicas = -1;
        ts.spec.roles[0].template.spec.as_mut().unwrap().containers[0].image = None;
        let fields: Vec<String> = validate_taskset(&ts).into_iter().map(|e| e.field).collect();
        for want in [
            "metadata.name",
            "spec.roles[0].name",
            "spec.roles[1].replicas",
            "spec.roles[0].template.spec.containers[0].image",
        ] {
            assert!(
                fields.iter().any(|f| f == want),
                "{want} missing from {fields:?}"
            );
        }
        let mut long = example();
        long.spec.roles[0].name = "r".repeat(62);
        long.spec.roles[0].replicas = 10;
        assert!(
            validate_taskset(&long)
                .iter()
                .any(|e| e.to_string().contains("hostname")),
            "a 64-character hostname must be refused"
        );
    }

    #[test]
    fn typed_round_trip_keeps_the_wire_shape() {
        let ts = example();
        let v = serde_json::to_value(&ts).unwrap();
        assert_eq!(v["spec"]["retryPolicy"]["maxRetryCount"], 1);
        assert_eq!(v["spec"]["roles"][0]["completionPolicy"]["minSucceeded"], 1);
        assert_eq!(serde_json::from_value::<TaskSet>(v).unwrap(), ts);
    }
}
