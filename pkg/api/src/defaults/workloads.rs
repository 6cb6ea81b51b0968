//! Defaults of the workload kinds and of ConfigMaps and Secrets, as Kubernetes' `apps/v1`,
//! `batch/v1` and `core/v1` defaulting gives them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetUpdateStrategy, Deployment, DeploymentStrategy, ReplicaSet,
    RollingUpdateDaemonSet, RollingUpdateDeployment, RollingUpdateStatefulSetStrategy, StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PodTemplateSpec, ReplicationController, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{default_pod_spec, default_str};

/// Labels the Job controller selects its pods by; `JOB_UID_LABEL` also stands in the
/// generated selector.
pub const JOB_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
const LEGACY_JOB_UID_LABEL: &str = "controller-uid";
const LEGACY_JOB_NAME_LABEL: &str = "job-name";

/// These counts are pointers in Kubernetes' types: only an absent one is defaulted, so a
/// deliberate 0 (scaled to zero, no history kept) stays.
fn default_unset(field: &mut Option<i32>, value: i32) {
    field.get_or_insert(value);
}

fn default_template(template: &mut PodTemplateSpec) {
    default_pod_spec(template.spec.get_or_insert_with(Default::default));
}

fn quarter() -> IntOrString {
    IntOrString::String("25%".to_string())
}

/// Replicas 1; RollingUpdate with 25% surge and 25% unavailable; ten old ReplicaSets
/// kept; a 600 s progress deadline; the pod template's defaults.
pub fn default_deployment(d: &mut Deployment) {
    let spec = d.spec.get_or_insert_with(Default::default);
    default_unset(&mut spec.replicas, 1);
    default_unset(&mut spec.revision_history_limit, 10);
    default_unset(&mut spec.progress_deadline_seconds, 600);
    let strategy = spec
        .strategy
        .get_or_insert_with(DeploymentStrategy::default);
    default_str(&mut strategy.type_, "RollingUpdate");
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        ru.max_unavailable.get_or_insert_with(quarter);
        ru.max_surge.get_or_insert_with(quarter);
    }
    default_template(&mut spec.template);
}

/// Replicas 1 and the pod template's defaults.
pub fn default_replica_set(rs: &mut ReplicaSet) {
    let spec = rs.spec.get_or_insert_with(Default::default);
    default_unset(&mut spec.replicas, 1);
    if let Some(t) = &mut spec.template {
        default_template(t);
    }
}

/// Replicas 1; the selector, and the controller's own labels, taken from the template's
/// labels when not given (as `core/v1` does); the pod template's defaults.
pub fn default_replication_controller(rc: &mut ReplicationController) {
    let spec = rc.spec.get_or_insert_with(Default::default);
    default_unset(&mut spec.replicas, 1);
    if let Some(t) = &mut spec.template {
        let labels = t
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        if spec.selector.as_ref().is_none_or(BTreeMap::is_empty) && !labels.is_empty() {
            spec.selector = Some(labels.clone());
        }
        if rc.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) && !labels.is_empty() {
            rc.metadata.labels = Some(labels);
        }
        default_template(t);
    }
}

/// Replicas 1; `OrderedReady`; RollingUpdate from partition 0; ten revisions kept; PVCs
/// retained; the pod template's defaults.
pub fn default_stateful_set(s: &mut StatefulSet) {
    let spec = s.spec.get_or_insert_with(Default::default);
    default_unset(&mut spec.replicas, 1);
    default_unset(&mut spec.revision_history_limit, 10);
    default_str(&mut spec.pod_management_policy, "OrderedReady");
    let strategy = spec
        .update_strategy
        .get_or_insert_with(StatefulSetUpdateStrategy::default);
    default_str(&mut strategy.type_, "RollingUpdate");
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateStatefulSetStrategy::default);
        default_unset(&mut ru.partition, 0);
    }
    let retention = spec
        .persistent_volume_claim_retention_policy
        .get_or_insert_with(StatefulSetPersistentVolumeClaimRetentionPolicy::default);
    default_str(&mut retention.when_deleted, "Retain");
    default_str(&mut retention.when_scaled, "Retain");
    default_template(&mut spec.template);
}

/// RollingUpdate with one unavailable and no surge; ten revisions kept; the pod
/// template's defaults.
pub fn default_daemon_set(ds: &mut DaemonSet) {
    let spec = ds.spec.get_or_insert_with(Default::default);
    default_unset(&mut spec.revision_history_limit, 10);
    let strategy = spec
        .update_strategy
        .get_or_insert_with(DaemonSetUpdateStrategy::default);
    default_str(&mut strategy.type_, "RollingUpdate");
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDaemonSet::default);
        ru.max_unavailable.get_or_insert(IntOrString::Int(1));
        ru.max_surge.get_or_insert(IntOrString::Int(0));
    }
    default_template(&mut spec.template);
}

/// Completions and parallelism 1 when neither is given (parallelism 1 alone otherwise);
/// back-off limit 6; `NonIndexed`; not suspended; pods replaced once terminating or
/// failed; the pod template's defaults.
pub fn default_job(job: &mut Job) {
    let spec = job.spec.get_or_insert_with(Default::default);
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    spec.backoff_limit.get_or_insert(6);
    default_str(&mut spec.completion_mode, "NonIndexed");
    spec.suspend.get_or_insert(false);
    default_str(&mut spec.pod_replacement_policy, "TerminatingOrFailed");
    spec.manual_selector.get_or_insert(false);
    default_template(&mut spec.template);
}

/// A new Job's selector and pod labels, unless `manualSelector` is set: the pods carry
/// the Job's uid and name (under both the current and the legacy label keys), and the
/// selector matches the uid, as Kubernetes' Job strategy does on create.
pub fn select_job_pods(job: &mut Job) {
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let spec = job.spec.get_or_insert_with(Default::default);
    if spec.manual_selector == Some(true) {
        return;
    }
    spec.selector = Some(LabelSelector {
        match_labels: Some(BTreeMap::from([(JOB_UID_LABEL.to_string(), uid.clone())])),
        ..Default::default()
    });
    let labels = spec
        .template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new);
    for (k, v) in [
        (LEGACY_JOB_UID_LABEL, &uid),
        (JOB_UID_LABEL, &uid),
        (LEGACY_JOB_NAME_LABEL, &name),
        (JOB_NAME_LABEL, &name),
    ] {
        labels.insert(k.to_string(), v.clone());
    }
}

/// Type `Opaque`; `stringData` (write-only) merged into `data`, overriding it.
pub fn default_secret(secret: &mut Secret) {
    default_str(&mut secret.type_, "Opaque");
    if let Some(strings) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in strings {
            data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_defaults() {
        let mut d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
        }))
        .unwrap();
        default_deployment(&mut d);
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["spec"]["replicas"], 1);
        assert_eq!(v["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(v["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(
            v["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        );
        assert_eq!(v["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let mut r: Deployment = serde_json::from_value(json!({
            "spec": {"strategy": {"type": "Recreate"}, "template": {}}
        }))
        .unwrap();
        default_deployment(&mut r);
        assert!(r.spec.unwrap().strategy.unwrap().rolling_update.is_none());
        let mut zero: ReplicaSet =
            serde_json::from_value(json!({"spec": {"replicas": 0, "selector": {}}})).unwrap();
        default_replica_set(&mut zero);
        assert_eq!(zero.spec.unwrap().replicas, Some(0), "scaled to zero stays");
    }

    #[test]
    fn job_defaults_and_selector() {
        let mut j: Job = serde_json::from_value(json!({
            "metadata": {"name": "pi", "uid": "u-1"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}
        }))
        .unwrap();
        default_job(&mut j);
        select_job_pods(&mut j);
        let v = serde_json::to_value(&j).unwrap();
        assert_eq!(v["spec"]["completions"], 1);
        assert_eq!(v["spec"]["parallelism"], 1);
        assert_eq!(v["spec"]["backoffLimit"], 6);
        assert_eq!(v["spec"]["selector"]["matchLabels"][JOB_UID_LABEL], "u-1");
        assert_eq!(
            v["spec"]["template"]["metadata"]["labels"]["job-name"],
            "pi"
        );
        let mut p: Job =
            serde_json::from_value(json!({"spec": {"parallelism": 3, "template": {}}})).unwrap();
        default_job(&mut p);
        assert!(p.spec.unwrap().completions.is_none());
    }

    #[test]
    fn rc_selector_from_template() {
        let mut rc: ReplicationController = serde_json::from_value(json!({
            "spec": {"template": {"metadata": {"labels": {"app": "redis"}}, "spec": {"containers": []}}}
        }))
        .unwrap();
        default_replication_controller(&mut rc);
        assert_eq!(
            rc.spec.as_ref().unwrap().selector.as_ref().unwrap()["app"],
            "redis"
        );
        assert_eq!(rc.metadata.labels.unwrap()["app"], "redis");
    }

    #[test]
    fn secret_string_data_merges() {
        let mut s: Secret = serde_json::from_value(json!({
            "data": {"a": "eA=="}, "stringData": {"a": "y", "b": "z"}
        }))
        .unwrap();
        default_secret(&mut s);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["type"], "Opaque");
        assert_eq!(v["data"], json!({"a": "eQ==", "b": "eg=="}));
        assert!(v.get("stringData").is_none());
    }
}
