//! The workload kinds (`apps/v1` Deployments, ReplicaSets, StatefulSets, DaemonSets and
//! ControllerRevisions, `core/v1` ReplicationControllers, `batch/v1` Jobs) and the
//! configuration kinds (ConfigMaps and Secrets), checked as Kubernetes' validation checks
//! them: a selector that selects the template's own labels, counts that are not negative,
//! a valid pod template with a restart policy the kind allows, and the fields an update
//! may not change.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec, ReplicationController, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Errors, FieldError, NameRule, child, object_meta, pod_spec};
use crate::selector;

const IMMUTABLE: &str = "field is immutable";
/// ConfigMaps and Secrets hold at most 1 MiB.
const MAX_DATA_BYTES: usize = 1024 * 1024;

fn meta(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, errs: &mut Errors) {
    object_meta(m, true, NameRule::Dns1123Subdomain, "metadata", errs);
}

/// Go's `%#v` of a label map, as Kubernetes shows it in messages.
fn go_map(m: &BTreeMap<String, String>) -> String {
    let body: Vec<String> = m.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
    format!("map[string]string{{{}}}", body.join(", "))
}

fn non_negative(errs: &mut Errors, field: &str, value: Option<i32>) {
    if let Some(v) = value {
        errs.non_negative(field, i64::from(v));
    }
}

/// A structured selector that must be given, not empty, well formed, and match the labels
/// of the template at `spec.template`.
fn selector_and_template(
    sel: Option<&LabelSelector>,
    template: Option<&PodTemplateSpec>,
    restart_policies: &[&str],
    errs: &mut Errors,
) {
    let labels = template
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    match sel {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(s) => match selector::LabelSelector::from_label_selector(s) {
            Err(e) => errs.push(FieldError::invalid_shown("spec.selector", "", e.to_string())),
            Ok(parsed) if parsed.is_empty() => errs.push(FieldError::invalid_shown(
                "spec.selector",
                "v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}",
                "empty selector is invalid for deployment",
            )),
            Ok(parsed) if template.is_some() && !parsed.matches(&labels) => {
                errs.push(FieldError::invalid_shown(
                    "spec.template.metadata.labels",
                    go_map(&labels),
                    "`selector` does not match template `labels`",
                ))
            }
            Ok(_) => {}
        },
    }
    if let Some(t) = template {
        template_spec(t, restart_policies, errs);
    }
}

fn template_spec(t: &PodTemplateSpec, restart_policies: &[&str], errs: &mut Errors) {
    if let Some(m) = &t.metadata
        && let Some(labels) = &m.labels
    {
        super::label_map(labels, "spec.template.metadata.labels", errs);
    }
    let empty = Default::default();
    let spec = t.spec.as_ref().unwrap_or(&empty);
    pod_spec(spec, "spec.template.spec", errs);
    let policy = spec.restart_policy.as_deref().unwrap_or_default();
    if !policy.is_empty() && !restart_policies.contains(&policy) {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            restart_policies,
        ));
    }
    if spec.active_deadline_seconds.is_some() && restart_policies == ALWAYS {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
}

const ALWAYS: &[&str] = &["Always"];

/// A percentage (`25%`) or a non-negative count.
fn int_or_percent(errs: &mut Errors, field: &str, v: Option<&IntOrString>) -> Option<bool> {
    match v? {
        IntOrString::Int(n) => {
            errs.non_negative(field, i64::from(*n));
            Some(*n == 0)
        }
        IntOrString::String(s) => match s.strip_suffix('%').and_then(|n| n.parse::<u32>().ok()) {
            Some(n) if n <= 100 => Some(n == 0),
            Some(_) => {
                errs.push(FieldError::invalid(
                    field,
                    s,
                    "must not be greater than 100%",
                ));
                None
            }
            None => {
                errs.push(FieldError::invalid(
                        field,
                        s,
                        "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                    ));
                None
            }
        },
    }
}

pub fn validate_deployment(d: &Deployment) -> Vec<FieldError> {
    let mut errs = Errors::default();
    meta(&d.metadata, &mut errs);
    let empty = Default::default();
    let spec = d.spec.as_ref().unwrap_or(&empty);
    non_negative(&mut errs, "spec.replicas", spec.replicas);
    non_negative(&mut errs, "spec.minReadySeconds", spec.min_ready_seconds);
    non_negative(
        &mut errs,
        "spec.revisionHistoryLimit",
        spec.revision_history_limit,
    );
    if let Some(p) = spec.progress_deadline_seconds {
        errs.non_negative("spec.progressDeadlineSeconds", i64::from(p));
        if p <= spec.min_ready_seconds.unwrap_or(0) {
            errs.push(FieldError::invalid_number(
                "spec.progressDeadlineSeconds",
                i64::from(p),
                "must be greater than minReadySeconds",
            ));
        }
    }
    selector_and_template(
        Some(&spec.selector),
        Some(&spec.template),
        ALWAYS,
        &mut errs,
    );
    if let Some(s) = &spec.strategy {
        let ty = s.type_.as_deref().unwrap_or_default();
        errs.one_of("spec.strategy.type", ty, &["Recreate", "RollingUpdate"]);
        match (ty, &s.rolling_update) {
            ("Recreate", Some(_)) => errs.push(FieldError::forbidden(
                "spec.strategy.rollingUpdate",
                "may not be specified when strategy `type` is 'Recreate'",
            )),
            ("RollingUpdate", Some(ru)) => {
                let unavailable_zero = int_or_percent(
                    &mut errs,
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    ru.max_unavailable.as_ref(),
                );
                let surge_zero = int_or_percent(
                    &mut errs,
                    "spec.strategy.rollingUpdate.maxSurge",
                    ru.max_surge.as_ref(),
                );
                if unavailable_zero == Some(true) && surge_zero == Some(true) {
                    let shown = match &ru.max_unavailable {
                        Some(IntOrString::String(s)) => s.clone(),
                        _ => "0".to_string(),
                    };
                    errs.push(FieldError::invalid(
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        &shown,
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
            }
            _ => {}
        }
    }
    errs.0
}

pub fn validate_deployment_update(old: &Deployment, new: &Deployment) -> Vec<FieldError> {
    let mut errs = validate_deployment(new);
    let sel = |d: &Deployment| d.spec.as_ref().map(|s| s.selector.clone());
    if sel(old) != sel(new) {
        errs.push(FieldError::invalid_shown(
            "spec.selector",
            "v1.LabelSelector",
            IMMUTABLE,
        ));
    }
    errs
}

pub fn validate_replica_set(rs: &ReplicaSet) -> Vec<FieldError> {
    let mut errs = Errors::default();
    meta(&rs.metadata, &mut errs);
    let empty = Default::default();
    let spec = rs.spec.as_ref().unwrap_or(&empty);
    non_negative(&mut errs, "spec.replicas", spec.replicas);
    non_negative(&mut errs, "spec.minReadySeconds", spec.min_ready_seconds);
    selector_and_template(
        Some(&spec.selector),
        spec.template.as_ref(),
        ALWAYS,
        &mut errs,
    );
    errs.0
}

pub fn validate_replica_set_update(old: &ReplicaSet, new: &ReplicaSet) -> Vec<FieldError> {
    let mut errs = validate_replica_set(new);
    let sel = |r: &ReplicaSet| r.spec.as_ref().map(|s| s.selector.clone());
    if sel(old) != sel(new) {
        errs.push(FieldError::invalid_shown(
            "spec.selector",
            "v1.LabelSelector",
            IMMUTABLE,
        ));
    }
    errs
}

pub fn validate_replication_controller(rc: &ReplicationController) -> Vec<FieldError> {
    let mut errs = Errors::default();
    meta(&rc.metadata, &mut errs);
    let empty = Default::default();
    let spec = rc.spec.as_ref().unwrap_or(&empty);
    non_negative(&mut errs, "spec.replicas", spec.replicas);
    non_negative(&mut errs, "spec.minReadySeconds", spec.min_ready_seconds);
    let selector = spec.selector.clone().unwrap_or_default();
    if selector.is_empty() {
        errs.push(FieldError::required("spec.selector", ""));
    } else {
        super::label_map(&selector, "spec.selector", &mut errs);
    }
    match &spec.template {
        None => errs.push(FieldError::required("spec.template", "")),
        Some(t) => {
            let labels = t
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            if !selector.is_empty() && !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                errs.push(FieldError::invalid_shown(
                    "spec.template.metadata.labels",
                    go_map(&labels),
                    "`selector` does not match template `labels`",
                ));
            }
            template_spec(t, ALWAYS, &mut errs);
        }
    }
    errs.0
}

pub fn validate_stateful_set(s: &StatefulSet) -> Vec<FieldError> {
    let mut errs = Errors::default();
    meta(&s.metadata, &mut errs);
    let empty = Default::default();
    let spec = s.spec.as_ref().unwrap_or(&empty);
    non_negative(&mut errs, "spec.replicas", spec.replicas);
    non_negative(&mut errs, "spec.minReadySeconds", spec.min_ready_seconds);
    if let Some(p) = spec.pod_management_policy.as_deref() {
        errs.one_of("spec.podManagementPolicy", p, &["OrderedReady", "Parallel"]);
    }
    if let Some(u) = &spec.update_strategy {
        let ty = u.type_.as_deref().unwrap_or_default();
        errs.one_of(
            "spec.updateStrategy.type",
            ty,
            &["OnDelete", "RollingUpdate"],
        );
        if let Some(ru) = &u.rolling_update {
            non_negative(
                &mut errs,
                "spec.updateStrategy.rollingUpdate.partition",
                ru.partition,
            );
        }
    }
    if spec
        .volume_claim_templates
        .as_ref()
        .is_some_and(|v| !v.is_empty())
    {
        errs.push(FieldError::forbidden(
            "spec.volumeClaimTemplates",
            "persistent volumes are not supported by this cluster: leave volumeClaimTemplates out and use emptyDir or hostPath volumes",
        ));
    }
    selector_and_template(
        Some(&spec.selector),
        Some(&spec.template),
        ALWAYS,
        &mut errs,
    );
    errs.0
}

/// Besides what [`validate_stateful_set`] checks, only `replicas`, `ordinals`,
/// `template`, `updateStrategy`, `persistentVolumeClaimRetentionPolicy`,
/// `minReadySeconds` and `revisionHistoryLimit` may change, as in Kubernetes.
pub fn validate_stateful_set_update(old: &StatefulSet, new: &StatefulSet) -> Vec<FieldError> {
    let mut errs = validate_stateful_set(new);
    let frozen = |s: &StatefulSet| {
        s.spec.clone().map(|mut spec| {
            spec.replicas = None;
            spec.ordinals = None;
            spec.template = Default::default();
            spec.update_strategy = None;
            spec.persistent_volume_claim_retention_policy = None;
            spec.min_ready_seconds = None;
            spec.revision_history_limit = None;
            spec
        })
    };
    if frozen(old) != frozen(new) {
        errs.push(FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
    errs
}

pub fn validate_daemon_set(ds: &DaemonSet) -> Vec<FieldError> {
    let mut errs = Errors::default();
    meta(&ds.metadata, &mut errs);
    let empty = Default::default();
    let spec = ds.spec.as_ref().unwrap_or(&empty);
    non_negative(&mut errs, "spec.minReadySeconds", spec.min_ready_seconds);
    non_negative(
        &mut errs,
        "spec.revisionHistoryLimit",
        spec.revision_history_limit,
    );
    if let Some(u) = &spec.update_strategy {
        let ty = u.type_.as_deref().unwrap_or_default();
        errs.one_of(
            "spec.updateStrategy.type",
            ty,
            &["OnDelete", "RollingUpdate"],
        );
        if let Some(ru) = &u.rolling_update {
            let unavailable_zero = int_or_percent(
                &mut errs,
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
                ru.max_unavailable.as_ref(),
            );
            let surge_zero = int_or_percent(
                &mut errs,
                "spec.updateStrategy.rollingUpdate.maxSurge",
                ru.max_surge.as_ref(),
            );
            if unavailable_zero == Some(true) && surge_zero != Some(false) {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate.maxUnavailable",
                    "0",
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
        }
    }
    selector_and_template(
        Some(&spec.selector),
        Some(&spec.template),
        ALWAYS,
        &mut errs,
    );
    errs.0
}

pub fn validate_daemon_set_update(old: &DaemonSet, new: &DaemonSet) -> Vec<FieldError> {
    let mut errs = validate_daemon_set(new);
    let sel = |d: &DaemonSet| d.spec.as_ref().map(|s| s.selector.clone());
    if sel(old) != sel(new) {
        errs.push(FieldError::invalid_shown(
            "spec.selector",
            "v1.LabelSelector",
            IMMUTABLE,
        ));
    }
    errs
}

pub fn validate_job(job: &Job) -> Vec<FieldError> {
    let mut errs = Errors::default();
    meta(&job.metadata, &mut errs);
    let empty = Default::default();
    let spec = job.spec.as_ref().unwrap_or(&empty);
    non_negative(&mut errs, "spec.parallelism", spec.parallelism);
    non_negative(&mut errs, "spec.completions", spec.completions);
    non_negative(&mut errs, "spec.backoffLimit", spec.backoff_limit);
    non_negative(
        &mut errs,
        "spec.ttlSecondsAfterFinished",
        spec.ttl_seconds_after_finished,
    );
    if let Some(d) = spec.active_deadline_seconds
        && d <= 0
    {
        errs.push(FieldError::invalid_number(
            "spec.activeDeadlineSeconds",
            d,
            "must be greater than 0",
        ));
    }
    if let Some(mode) = spec.completion_mode.as_deref() {
        errs.one_of("spec.completionMode", mode, &["Indexed", "NonIndexed"]);
        if mode == "Indexed" && spec.completions.is_none() {
            errs.push(FieldError::required(
                "spec.completions",
                "when completion mode is Indexed",
            ));
        }
    }
    selector_and_template(
        spec.selector.as_ref(),
        Some(&spec.template),
        &["OnFailure", "Never"],
        &mut errs,
    );
    let policy = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or_default();
    if policy.is_empty() {
        errs.push(FieldError::required("spec.template.spec.restartPolicy", ""));
    }
    errs.0
}

/// Besides what [`validate_job`] checks: the selector, the template (unless the Job is
/// suspended) and the completion mode are immutable; completions may change only
/// together with parallelism in an Indexed Job.
pub fn validate_job_update(old: &Job, new: &Job) -> Vec<FieldError> {
    let mut errs = validate_job(new);
    let (Some(o), Some(n)) = (&old.spec, &new.spec) else {
        return errs;
    };
    if o.selector != n.selector {
        errs.push(FieldError::invalid_shown(
            "spec.selector",
            "v1.LabelSelector",
            IMMUTABLE,
        ));
    }
    if o.template != n.template && n.suspend != Some(true) {
        errs.push(FieldError::invalid_shown(
            "spec.template",
            "core.PodTemplateSpec",
            IMMUTABLE,
        ));
    }
    if o.completion_mode != n.completion_mode {
        errs.push(FieldError::invalid(
            "spec.completionMode",
            n.completion_mode.as_deref().unwrap_or_default(),
            IMMUTABLE,
        ));
    }
    let indexed = n.completion_mode.as_deref() == Some("Indexed");
    if o.completions != n.completions && !(indexed && n.completions == n.parallelism) {
        errs.push(FieldError::invalid_number(
            "spec.completions",
            i64::from(n.completions.unwrap_or(0)),
            IMMUTABLE,
        ));
    }
    errs
}

pub fn validate_controller_revision(r: &ControllerRevision) -> Vec<FieldError> {
    let mut errs = Errors::default();
    meta(&r.metadata, &mut errs);
    errs.non_negative("revision", r.revision);
    errs.0
}

/// Keys of ConfigMaps and Secrets: letters, digits, `-`, `_` and `.`, at most 253, not
/// `.` or `..` nor starting with `..`.
fn data_keys<'a>(keys: impl Iterator<Item = &'a String>, path: &str, errs: &mut Errors) {
    for k in keys {
        let field = format!("{path}[{k}]");
        let mut msgs = Vec::new();
        if k.is_empty() || k.len() > 253 {
            msgs.push("must be no more than 253 characters".to_string());
        }
        if !k
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            msgs.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".to_string());
        }
        if k == "." {
            msgs.push("must not be '.'".to_string());
        } else if k == ".." {
            msgs.push("must not be '..'".to_string());
        } else if k.starts_with("..") {
            msgs.push("must not start with '..'".to_string());
        }
        errs.invalid_each(&field, k, msgs);
    }
}

pub fn validate_config_map(cm: &ConfigMap) -> Vec<FieldError> {
    let mut errs = Errors::default();
    meta(&cm.metadata, &mut errs);
    let data = cm.data.clone().unwrap_or_default();
    let binary = cm.binary_data.clone().unwrap_or_default();
    data_keys(data.keys(), "data", &mut errs);
    data_keys(binary.keys(), "binaryData", &mut errs);
    for k in data.keys().filter(|k| binary.contains_key(*k)) {
        errs.push(FieldError::invalid(
            format!("data[{k}]"),
            k,
            "duplicate of key present in binaryData",
        ));
    }
    let size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
        + binary
            .iter()
            .map(|(k, v)| k.len() + v.0.len())
            .sum::<usize>();
    if size > MAX_DATA_BYTES {
        errs.push(FieldError::too_long("", MAX_DATA_BYTES));
    }
    errs.0
}

pub fn validate_config_map_update(old: &ConfigMap, new: &ConfigMap) -> Vec<FieldError> {
    let mut errs = validate_config_map(new);
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(FieldError::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        if old.data != new.data {
            errs.push(FieldError::forbidden(
                "data",
                "field is immutable when `immutable` is set",
            ));
        }
        if old.binary_data != new.binary_data {
            errs.push(FieldError::forbidden(
                "binaryData",
                "field is immutable when `immutable` is set",
            ));
        }
    }
    errs
}

pub fn validate_secret(s: &Secret) -> Vec<FieldError> {
    let mut errs = Errors::default();
    meta(&s.metadata, &mut errs);
    let data = s.data.clone().unwrap_or_default();
    data_keys(data.keys(), "data", &mut errs);
    let size: usize = data.iter().map(|(k, v)| k.len() + v.0.len()).sum();
    if size > MAX_DATA_BYTES {
        errs.push(FieldError::too_long("data", MAX_DATA_BYTES));
    }
    let required = |key: &str| -> Option<FieldError> {
        (!data.contains_key(key)).then(|| FieldError::required(child("data", key), ""))
    };
    match s.type_.as_deref().unwrap_or("Opaque") {
        "kubernetes.io/service-account-token" => {
            let annotations = s.metadata.annotations.clone().unwrap_or_default();
            if !annotations.contains_key("kubernetes.io/service-account.name") {
                errs.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" => errs.0.extend(required(".dockercfg")),
        "kubernetes.io/dockerconfigjson" => errs.0.extend(required(".dockerconfigjson")),
        "kubernetes.io/basic-auth" => {}
        "kubernetes.io/ssh-auth" => errs.0.extend(required("ssh-privatekey")),
        "kubernetes.io/tls" => {
            errs.0.extend(required("tls.crt"));
            errs.0.extend(required("tls.key"));
        }
        _ => {}
    }
    errs.0
}

pub fn validate_secret_update(old: &Secret, new: &Secret) -> Vec<FieldError> {
    let mut errs = validate_secret(new);
    if old.type_ != new.type_ {
        errs.push(FieldError::invalid(
            "type",
            new.type_.as_deref().unwrap_or_default(),
            IMMUTABLE,
        ));
    }
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(FieldError::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        if old.data != new.data {
            errs.push(FieldError::forbidden(
                "data",
                "field is immutable when `immutable` is set",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(v: serde_json::Value) -> Deployment {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let d = deployment(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": -1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "other"}},
                                  "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x", "imagePullPolicy": "Never", "terminationMessagePolicy": "File"}]}}}
        }));
        let errs: Vec<String> = validate_deployment(&d)
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert!(
            errs.iter().any(
                |e| e == "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
            ),
            "{errs:?}"
        );
        assert!(errs.iter().any(|e| e == "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"), "{errs:?}");
        assert!(
            errs.iter()
                .any(|e| e
                    .starts_with("spec.template.spec.restartPolicy: Unsupported value: \"Never\"")),
            "{errs:?}"
        );
    }

    #[test]
    fn config_keys() {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "c", "namespace": "default"},
            "data": {"good.key": "1", "bad/key": "2", "..x": "3"}
        }))
        .unwrap();
        let errs = validate_config_map(&cm);
        assert_eq!(errs.len(), 2, "{errs:?}");
    }

    #[test]
    fn immutable_secret() {
        let old: Secret = serde_json::from_value(json!({
            "metadata": {"name": "s", "namespace": "default"}, "immutable": true,
            "type": "Opaque", "data": {"a": "eA=="}
        }))
        .unwrap();
        let mut new = old.clone();
        new.data = None;
        assert!(
            validate_secret_update(&old, &new)
                .iter()
                .any(|e| e.field == "data")
        );
    }

    #[test]
    fn statefulset_claims_refused() {
        let s: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "serviceName": "db",
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x", "imagePullPolicy": "Never", "terminationMessagePolicy": "File"}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}
        }))
        .unwrap();
        let errs = validate_stateful_set(&s);
        assert!(
            errs.iter().any(|e| e.field == "spec.volumeClaimTemplates"),
            "{errs:?}"
        );
    }
}
