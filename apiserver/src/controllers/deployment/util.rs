//! The Deployment controller's arithmetic, as Kubernetes' `deployment/util` has it: the
//! pod template hash, the annotations a ReplicaSet carries for its Deployment, surge and
//! unavailability from ints or percentages, the orders ReplicaSets are taken in, and the
//! Deployment's conditions. Pure functions, tested here.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Annotations of the Deployment that are not copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];
/// `revision-history` is kept under this many characters, dropping the oldest first.
const MAX_REVISION_HISTORY_CHARS: usize = 2000;
/// Kubernetes reads this value of `progressDeadlineSeconds` and `revisionHistoryLimit`
/// as "none".
const NO_LIMIT: i32 = i32::MAX;

const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The `pod-template-hash` of a template: FNV-32a over the template's canonical JSON
/// (keys sorted) and, once there were collisions, their count; the decimal value written
/// in the alphabet Kubernetes uses for names that must not spell words.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let value = serde_json::to_value(template).unwrap_or(Value::Null);
    let mut text = String::new();
    canonical(&value, &mut text);
    let mut hash = fnv32a(0x811c_9dc5, text.as_bytes());
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(c as u32).to_le_bytes());
        hash = fnv32a(hash, &bytes);
    }
    hash.to_string()
        .bytes()
        .map(|b| SAFE_ALPHABET[b as usize % SAFE_ALPHABET.len()] as char)
        .collect()
}

fn fnv32a(mut hash: u32, bytes: &[u8]) -> u32 {
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<_> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Whether two templates are the same but for the `pod-template-hash` label; absent and
/// empty fields compare equal, as Kubernetes' semantic equality has it.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(HASH_LABEL);
        }
        let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
        prune(&mut v);
        v
    };
    strip(a) == strip(b)
}

fn prune(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.values_mut().for_each(prune);
            m.retain(|_, x| !empty(x));
        }
        Value::Array(a) => a.iter_mut().for_each(prune),
        _ => {}
    }
}

fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_actual(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The ReplicaSet's revision; 0 when it has none (or one that is not a number).
pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(rs, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

pub fn is_rolling_update(d: &Deployment) -> bool {
    strategy_type(d) != "Recreate"
}

pub fn strategy_type(d: &Deployment) -> &str {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

/// An int, or a percentage of `total` rounded up or down.
pub fn scaled_value(v: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    match v {
        None => 0,
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => {
            let percent: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let scaled = percent * i64::from(total);
            let value = if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            };
            value as i32
        }
    }
}

/// `(maxSurge, maxUnavailable)` for `desired` replicas: surge rounded up, unavailability
/// rounded down, and never both zero (one may then be unavailable), as Kubernetes'
/// `ResolveFenceposts`.
pub fn resolve_fenceposts(d: &Deployment, desired: i32) -> (i32, i32) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge = scaled_value(ru.and_then(|r| r.max_surge.as_ref()), desired, true);
    let unavailable = scaled_value(ru.and_then(|r| r.max_unavailable.as_ref()), desired, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    resolve_fenceposts(d, replicas(d)).0
}

pub fn max_unavailable(d: &Deployment) -> i32 {
    let desired = replicas(d);
    if !is_rolling_update(d) || desired == 0 {
        return 0;
    }
    resolve_fenceposts(d, desired).1.min(desired)
}

pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some_and(|s| s != NO_LIMIT)
}

pub fn revision_history_limit(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .filter(|l| *l != NO_LIMIT)
}

/// Sets `desired-replicas` and `max-replicas`; whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if a.get(k) != Some(&v) {
            a.insert(k.to_string(), v);
            changed = true;
        }
    }
    changed
}

pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(rs, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(rs, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// Copies the Deployment's annotations to its new ReplicaSet and raises the ReplicaSet's
/// revision to `new_revision`, keeping the revisions it had in `revision-history` (a
/// template used again); for a ReplicaSet about to be made, its replica annotations too.
/// Whether anything changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = false;
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if NOT_COPIED.contains(&k.as_str()) || a.get(k) == Some(v) {
            continue;
        }
        a.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = a.get(REVISION).cloned();
    let old_revision: i64 = match old.as_deref() {
        None | Some("") => 0,
        Some(r) => match r.parse() {
            Ok(r) => r,
            Err(_) => return changed,
        },
    };
    if old_revision < new_revision {
        a.insert(REVISION.to_string(), new_revision.to_string());
        changed = true;
        if let Some(old) = old.filter(|o| !o.is_empty()) {
            let history = a.get(REVISION_HISTORY).cloned().unwrap_or_default();
            let value = if history.is_empty() {
                old
            } else {
                let mut revisions: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                let mut start = 0;
                while total > MAX_REVISION_HISTORY_CHARS && start < revisions.len() {
                    total -= revisions[start].len() + 1;
                    start += 1;
                }
                revisions.drain(..start);
                revisions.push(&old);
                revisions.join(",")
            };
            a.insert(REVISION_HISTORY.to_string(), value);
        }
    }
    if !exists && set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)) {
        changed = true;
    }
    changed
}

fn created(rs: &ReplicaSet) -> Option<jiff::Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Oldest first; the name breaks ties.
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    created(a)
        .cmp(&created(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Largest first; among equals the newer first (scaling up).
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(b, a))
}

/// Largest first; among equals the older first (scaling down).
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(a, b))
}

/// Lowest revision first; creation breaks ties.
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    revision(a)
        .cmp(&revision(b))
        .then_with(|| by_creation(a, b))
}

/// Kubernetes' `getReplicaSetFraction`: how many replicas `rs` gains (or loses) when the
/// Deployment is scaled to its new size, in proportion to what it had of the old one.
pub fn replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    if replicas(d) == 0 {
        return -rs_replicas(rs);
    }
    let deployment_replicas = replicas(d) + max_surge(d);
    let annotated = annotation(rs, MAX_REPLICAS)
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or_else(|| {
            d.status
                .as_ref()
                .and_then(|s| s.replicas)
                .unwrap_or_default()
        });
    if annotated == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(deployment_replicas) / f64::from(annotated);
    size.round() as i32 - rs_replicas(rs)
}

/// Kubernetes' `GetProportion`: the share of `to_add` for `rs`, never beyond what is
/// left of it.
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

pub fn now() -> Time {
    Time(jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).unwrap_or_default())
}

pub fn condition(type_: &str, status: &str, reason: &str, message: String) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_update_time: Some(now()),
        last_transition_time: Some(now()),
    }
}

pub fn get_condition<'a>(
    status: Option<&'a DeploymentStatus>,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

pub fn reason(c: Option<&DeploymentCondition>) -> Option<&str> {
    c.and_then(|c| c.reason.as_deref())
}

/// Kubernetes' `SetDeploymentCondition`: nothing when status and reason are unchanged;
/// the transition time kept while the status is.
pub fn set_condition(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = get_condition(Some(status), &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(status, &c.type_);
    status.conditions.get_or_insert_with(Vec::new).push(c);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = status.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn deployment(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn surge_rounds_up_and_unavailability_down() {
        let d = deployment(3, pct("25%"), pct("25%"));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (1, 0));
        let d = deployment(10, pct("25%"), pct("25%"));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (3, 2));
        // Never both zero.
        let d = deployment(3, IntOrString::Int(0), pct("10%"));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (0, 1));
        // No more unavailable than there are replicas.
        let d = deployment(2, IntOrString::Int(0), IntOrString::Int(5));
        assert_eq!(max_unavailable(&d), 2);
    }

    #[test]
    fn hashes_are_stable_safe_and_change_with_collisions() {
        let t = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let h = compute_hash(&t, None);
        assert_eq!(h, compute_hash(&t.clone(), None));
        assert!(h.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{h}");
        assert_ne!(h, compute_hash(&t, Some(1)));
        let mut other = t.clone();
        other
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert("v".into(), "2".into());
        assert_ne!(h, compute_hash(&other, None));
        // Equal but for the hash label, and for an empty map against none.
        let mut labelled = t.clone();
        labelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(HASH_LABEL.into(), h);
        labelled.metadata.as_mut().unwrap().annotations = Some(BTreeMap::new());
        assert!(equal_ignore_hash(&t, &labelled));
        assert!(!equal_ignore_hash(&t, &other));
    }

    #[test]
    fn a_reused_template_keeps_its_old_revisions() {
        let mut d = deployment(3, pct("25%"), pct("25%"));
        d.metadata.annotations = Some(BTreeMap::from([
            ("kubernetes.io/change-cause".to_string(), "v2".to_string()),
            (REVISION.to_string(), "9".to_string()),
        ]));
        let mut rs = ReplicaSet::default();
        assert!(set_new_rs_annotations(&d, &mut rs, 1, false));
        assert_eq!(annotation(&rs, REVISION), Some("1"));
        assert_eq!(annotation(&rs, "kubernetes.io/change-cause"), Some("v2"));
        assert_eq!(annotation(&rs, DESIRED_REPLICAS), Some("3"));
        assert_eq!(annotation(&rs, MAX_REPLICAS), Some("4"));
        assert_eq!(annotation(&rs, REVISION_HISTORY), None);
        assert!(!set_new_rs_annotations(&d, &mut rs, 1, true));
        assert!(set_new_rs_annotations(&d, &mut rs, 3, true));
        assert!(set_new_rs_annotations(&d, &mut rs, 5, true));
        assert_eq!(annotation(&rs, REVISION), Some("5"));
        assert_eq!(annotation(&rs, REVISION_HISTORY), Some("1,3"));
    }

    #[test]
    fn proportions_follow_the_max_replicas_annotation() {
        // 10 replicas (max 13) scaled to 20 (max 25): an RS of 6 gets 6 * 25 / 13 = 12.
        let d = deployment(20, pct("25%"), pct("25%"));
        let mut rs = ReplicaSet {
            spec: Some(k8s_openapi::api::apps::v1::ReplicaSetSpec {
                replicas: Some(6),
                ..Default::default()
            }),
            ..Default::default()
        };
        set_replicas_annotations(&mut rs, 10, 13);
        assert_eq!(replica_set_fraction(&rs, &d), 6);
        assert_eq!(proportion(&rs, &d, 12, 0), 6);
        assert_eq!(proportion(&rs, &d, 12, 10), 2);
        let zero = deployment(0, pct("25%"), pct("25%"));
        assert_eq!(proportion(&rs, &zero, -8, 0), -6);
    }

    #[test]
    fn conditions_keep_their_transition_time() {
        let mut status = DeploymentStatus::default();
        let mut first = condition("Progressing", "True", "A", "a".into());
        first.last_transition_time = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        set_condition(&mut status, first);
        set_condition(
            &mut status,
            condition("Progressing", "True", "B", "b".into()),
        );
        let c = get_condition(Some(&status), "Progressing").unwrap();
        assert_eq!(reason(Some(c)), Some("B"));
        assert_eq!(
            c.last_transition_time,
            Some(Time(jiff::Timestamp::UNIX_EPOCH))
        );
        set_condition(
            &mut status,
            condition("Progressing", "False", "C", "c".into()),
        );
        let c = get_condition(Some(&status), "Progressing").unwrap();
        assert_ne!(
            c.last_transition_time,
            Some(Time(jiff::Timestamp::UNIX_EPOCH))
        );
        assert_eq!(status.conditions.as_ref().unwrap().len(), 1);
    }
}
