//! The Job controller, after Kubernetes' (v1.33): runs a Job's pods to completion.
//!
//! Pods are made from the template (`generateName: <job>-`) with the
//! `batch.kubernetes.io/job-tracking` finalizer. A finished pod is counted as Kubernetes'
//! tracking with finalizers counts it: its uid is first written to
//! `status.uncountedTerminatedPods`, then its finalizer is removed, then the uid moves into
//! `succeeded` or `failed`. A pod without the finalizer is never counted again, so a
//! restart between any two steps neither loses nor doubles a count, and a finished pod
//! cannot disappear before it is counted.
//!
//! At most `parallelism` pods run, never more than the completions that remain. Failed
//! pods are replaced after a back-off (10 s doubling, at most 6 min, reset by a success),
//! until more than `backoffLimit` pods failed (or, with `restartPolicy: OnFailure`, the
//! running pods' containers restarted that often); `activeDeadlineSeconds` bounds the
//! time since `startTime`. The end is written in two steps as in Kubernetes: first
//! `SuccessCriteriaMet` or `FailureTarget` (the remaining pods are deleted), then, once
//! every pod is counted and none is terminating, `Complete` or `Failed`. A suspended Job
//! has its active pods deleted. A finished Job with `ttlSecondsAfterFinished` is deleted
//! (foreground) that long after it finished, as the TTL-after-finished controller does.
//!
//! The back-off is computed from the pods that are still there (their finish times), not
//! remembered, so it survives a restart of the API server.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use minik8s_api::defaults::JOB_UID_LABEL;
use minik8s_api::resource::{JOBS, PODS};
use serde_json::{Value, json};

use super::events;
use super::owned::{self, controller_uid, deleting, pod_phase};
use crate::error::{ApiError, Result};
use crate::object;
use crate::patch::PatchType;
use crate::registry::{DeleteParams, FieldValidation, Filter, ListParams, Preconditions, Registry};
use crate::strategy::Part;

/// Held by a Job's pods until the controller has counted them.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// An Indexed Job's pod's index, as an annotation and a label.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
const COMPONENT: &str = "job-controller";

/// Pod failure back-off: 10 s, doubled per failure since the last success, at most 6 min.
const BACKOFF_BASE_SECS: i64 = 10;
const BACKOFF_MAX_SECS: i64 = 360;
/// Pods created or deleted in one pass, at most.
const MAX_POD_CHANGES: usize = 500;
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

pub async fn reconcile(registry: &Registry) -> Result<()> {
    let jobs = owned::list_all(registry, &JOBS).await?;
    let sweep = sweep_due(registry);
    if jobs.is_empty() && !sweep {
        return Ok(());
    }
    // Pods of the namespaces that hold Jobs; now and then, every Job's pod anywhere, for
    // pods whose Job went while they still held the finalizer.
    let namespaces: BTreeSet<&str> = jobs.iter().map(object::namespace).collect();
    let mut pods = Vec::new();
    for ns in &namespaces {
        let in_ns = Filter::new(&PODS, Some(ns.to_string()), None, None)?;
        pods.extend(
            registry
                .list(&PODS, &in_ns, &ListParams::default())
                .await?
                .0,
        );
    }
    if sweep {
        let labelled = Filter::new(&PODS, None, Some(JOB_UID_LABEL), None)?;
        let (all, _, _) = registry
            .list(&PODS, &labelled, &ListParams::default())
            .await?;
        pods.extend(
            all.into_iter()
                .filter(|p| !namespaces.contains(object::namespace(p))),
        );
    }
    let mut by_owner: HashMap<String, Vec<Value>> = HashMap::new();
    for pod in pods {
        if let Some(uid) = controller_uid(&pod) {
            by_owner.entry(uid.to_string()).or_default().push(pod);
        }
    }
    let now = jiff::Timestamp::now();
    for job in &jobs {
        let pods = by_owner.remove(uid(job)).unwrap_or_default();
        if let Err(e) = sync(registry, job, pods, now).await {
            tracing::warn!(job = object::name(job), error = %e, "job");
        }
    }
    // Pods whose Job is gone keep nothing from going: their finalizer is dropped.
    for pod in by_owner.into_values().flatten() {
        let job_owned = owned::controller_of(&pod).is_some_and(|o| o["kind"] == "Job");
        if job_owned && has_finalizer(&pod) {
            remove_finalizer(registry, &pod).await?;
        }
    }
    Ok(())
}

/// Whether this registry's sweep of every Job pod is due (every 30 s).
fn sweep_due(registry: &Registry) -> bool {
    static LAST: std::sync::Mutex<Option<HashMap<usize, std::time::Instant>>> =
        std::sync::Mutex::new(None);
    let key = std::ptr::from_ref(registry) as usize;
    let now = std::time::Instant::now();
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let map = last.get_or_insert_with(HashMap::new);
    match map.get(&key) {
        Some(t) if now.duration_since(*t) < SWEEP_EVERY => false,
        _ => {
            map.insert(key, now);
            true
        }
    }
}

/// What one pass decided about the end of a Job.
#[derive(Clone, Debug, PartialEq)]
struct Finish {
    /// `Complete`, `Failed`, or the interim `SuccessCriteriaMet` / `FailureTarget`.
    type_: &'static str,
    reason: String,
    message: String,
}

impl Finish {
    fn failure(reason: &str, message: &str) -> Finish {
        Finish {
            type_: "FailureTarget",
            reason: reason.to_string(),
            message: message.to_string(),
        }
    }

    fn success() -> Finish {
        Finish {
            type_: "SuccessCriteriaMet",
            reason: "CompletionsReached".to_string(),
            message: "Reached expected number of succeeded pods".to_string(),
        }
    }

    /// The terminal condition an interim one leads to.
    fn terminal(&self) -> Finish {
        let type_ = match self.type_ {
            "SuccessCriteriaMet" | "Complete" => "Complete",
            _ => "Failed",
        };
        Finish {
            type_,
            ..self.clone()
        }
    }

    fn is_failure(&self) -> bool {
        matches!(self.type_, "FailureTarget" | "Failed")
    }

    fn is_interim(&self) -> bool {
        matches!(self.type_, "SuccessCriteriaMet" | "FailureTarget")
    }
}

fn decode_job(job: &Value) -> Result<Job> {
    serde_json::from_value(job.clone())
        .map_err(|e| ApiError::Internal(format!("stored Job does not decode: {e}")))
}

fn condition<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// `Complete` or `Failed`: nothing more to do but the TTL.
pub fn finished(status: &JobStatus) -> Option<&JobCondition> {
    condition(status, "Complete").or_else(|| condition(status, "Failed"))
}

fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Time,
) -> JobCondition {
    JobCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_probe_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Sets a condition as Kubernetes' `ensureJobConditionStatus` does: a change of status,
/// reason or message replaces it; a `False` condition that is not there is not added.
fn ensure_condition(
    status: &mut JobStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: &Time,
) -> bool {
    let list = status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = list.iter_mut().find(|c| c.type_ == type_) {
        if c.status != value
            || c.reason.as_deref() != Some(reason)
            || c.message.as_deref() != Some(message)
        {
            *c = new_condition(type_, value, reason, message, now.clone());
            return true;
        }
        return false;
    }
    if value != "False" {
        list.push(new_condition(type_, value, reason, message, now.clone()));
        return true;
    }
    false
}

fn has_finalizer(pod: &Value) -> bool {
    pod["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == TRACKING_FINALIZER))
}

fn uid(obj: &Value) -> &str {
    object::meta_str(obj, "uid").unwrap_or("")
}

/// Counts as failed: `Failed`, or being deleted without having succeeded (a pod deleted
/// before it could finish, as Kubernetes counts it with the default replacement policy).
fn pod_failed(pod: &Value) -> bool {
    match pod_phase(pod) {
        "Failed" => true,
        "Succeeded" => false,
        _ => deleting(pod),
    }
}

/// Being deleted and not finished.
fn pod_terminating(pod: &Value) -> bool {
    deleting(pod) && !matches!(pod_phase(pod), "Succeeded" | "Failed")
}

/// When a pod finished: its containers' last finish, or when it stopped being ready, or
/// when it was deleted, or (never expected) when it was made.
fn finish_time(pod: &Value) -> jiff::Timestamp {
    let statuses = pod["status"]["containerStatuses"].as_array();
    let from_containers = statuses.and_then(|list| {
        list.iter()
            .map(|c| {
                c["state"]["terminated"]["finishedAt"]
                    .as_str()
                    .and_then(object::parse_time)
            })
            .collect::<Option<Vec<_>>>()
            .and_then(|times| times.into_iter().max())
    });
    let ready_false = || {
        pod["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready" && c["status"] == "False")?["lastTransitionTime"]
            .as_str()
            .and_then(object::parse_time)
    };
    from_containers
        .or_else(ready_false)
        .or_else(|| object::meta_str(pod, "deletionTimestamp").and_then(object::parse_time))
        .or_else(|| object::meta_str(pod, "creationTimestamp").and_then(object::parse_time))
        .unwrap_or_default()
}

/// Seconds still to wait before replacing a failed pod, from the failures since the last
/// success among `pods`.
fn backoff_remaining(pods: &[Value], now: jiff::Timestamp) -> i64 {
    let last_success = pods
        .iter()
        .filter(|p| pod_phase(p) == "Succeeded")
        .map(finish_time)
        .max();
    let failures: Vec<jiff::Timestamp> = pods
        .iter()
        .filter(|p| pod_failed(p))
        .map(finish_time)
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let Some(last) = failures.iter().max() else {
        return 0;
    };
    backoff_for(failures.len(), now.as_second() - last.as_second())
}

fn backoff_for(failures: usize, elapsed: i64) -> i64 {
    let mut backoff = BACKOFF_BASE_SECS;
    for _ in 1..failures {
        backoff *= 2;
        if backoff >= BACKOFF_MAX_SECS {
            backoff = BACKOFF_MAX_SECS;
            break;
        }
    }
    (backoff - elapsed).max(0)
}

/// With `restartPolicy: OnFailure`, the container restarts of running and pending pods
/// reach the back-off limit (any restart, for a limit of 0).
fn past_backoff_on_failure(job: &Job, pods: &[Value]) -> bool {
    let spec = job.spec.as_ref();
    let policy = spec
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref());
    if policy != Some("OnFailure") {
        return false;
    }
    let restarts: i64 = pods
        .iter()
        .filter(|p| matches!(pod_phase(p), "Running" | "Pending"))
        .flat_map(|p| {
            let s = &p["status"];
            let init = s["initContainerStatuses"].as_array().into_iter().flatten();
            init.chain(s["containerStatuses"].as_array().into_iter().flatten())
        })
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum();
    let limit = i64::from(spec.and_then(|s| s.backoff_limit).unwrap_or(6));
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

fn time_of(c: &JobCondition) -> Option<jiff::Timestamp> {
    c.last_transition_time.as_ref().map(|t| t.0)
}

fn suspended(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.suspend) == Some(true)
}

fn indexed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}

/// The index of an Indexed Job's pod, if it carries a valid one.
fn pod_index(pod: &Value, completions: i32) -> Option<i32> {
    pod["metadata"]["annotations"][COMPLETION_INDEX]
        .as_str()?
        .parse()
        .ok()
        .filter(|i| (0..completions).contains(i))
}

/// `0-2,4,6-7` from a set of indexes.
fn format_intervals(indexes: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last = iter.next().unwrap_or(last);
        }
        out.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
    }
    out.join(",")
}

fn parse_intervals(s: &str) -> BTreeSet<i32> {
    let mut set = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
            set.extend(a..=b);
        }
    }
    set
}

/// One pass over one Job.
async fn sync(
    registry: &Registry,
    job_value: &Value,
    pods: Vec<Value>,
    now: jiff::Timestamp,
) -> Result<()> {
    let job = decode_job(job_value)?;
    let old_status = job.status.clone().unwrap_or_default();
    if deleting(job_value) {
        // Being deleted (foreground, its pods first): nothing holds its pods back.
        for pod in pods.iter().filter(|p| has_finalizer(p)) {
            remove_finalizer(registry, pod).await?;
        }
        return Ok(());
    }
    if let Some(done) = finished(&old_status) {
        for pod in pods.iter().filter(|p| has_finalizer(p)) {
            remove_finalizer(registry, pod).await?;
        }
        return expire(registry, &job, job_value, done, now).await;
    }

    let spec = job.spec.clone().unwrap_or_default();
    let now_time = Time(now);
    let mut status = old_status.clone();
    let uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let uncounted_succeeded: HashSet<String> = uncounted
        .succeeded
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let uncounted_failed: HashSet<String> = uncounted
        .failed
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let is_uncounted =
        |p: &Value| uncounted_succeeded.contains(uid(p)) || uncounted_failed.contains(uid(p));
    // Finished pods not counted anywhere yet: they still hold the finalizer.
    let new_succeeded: Vec<&Value> = pods
        .iter()
        .filter(|p| has_finalizer(p) && !is_uncounted(p) && pod_phase(p) == "Succeeded")
        .collect();
    let new_failed: Vec<&Value> = pods
        .iter()
        .filter(|p| has_finalizer(p) && !is_uncounted(p) && pod_failed(p))
        .collect();
    let mut active_pods: Vec<&Value> = pods.iter().filter(|p| owned::pod_active(p)).collect();
    let mut succeeded = status.succeeded.unwrap_or(0)
        + new_succeeded.len() as i32
        + uncounted_succeeded.len() as i32;
    let failed =
        status.failed.unwrap_or(0) + new_failed.len() as i32 + uncounted_failed.len() as i32;
    let mut ready = active_pods.iter().filter(|p| owned::pod_ready(p)).count() as i32;
    let mut terminating = pods.iter().filter(|p| pod_terminating(p)).count() as i32;
    if status.start_time.is_none() && !suspended(&job) {
        status.start_time = Some(now_time.clone());
    }

    // Indexed: what counts is the set of indexes that succeeded.
    let completions = spec.completions;
    let mut succeeded_indexes = BTreeSet::new();
    if indexed(&job) {
        let n = completions.unwrap_or(0);
        succeeded_indexes = parse_intervals(status.completed_indexes.as_deref().unwrap_or(""));
        succeeded_indexes.retain(|i| (0..n).contains(i));
        for p in pods.iter().filter(|p| pod_phase(p) == "Succeeded") {
            if let Some(i) = pod_index(p, n)
                && (has_finalizer(p) || uncounted_succeeded.contains(uid(p)))
            {
                succeeded_indexes.insert(i);
            }
        }
        succeeded = succeeded_indexes.len() as i32;
    }

    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let mut finish = if let Some(c) = condition(&status, "FailureTarget") {
        Some(Finish {
            type_: "Failed",
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
        })
    } else if let Some(c) = condition(&status, "SuccessCriteriaMet") {
        Some(Finish {
            type_: "Complete",
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
        })
    } else if failed > backoff_limit || past_backoff_on_failure(&job, &pods) {
        Some(Finish::failure(
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ))
    } else if past_deadline(&job, &status, now) {
        Some(Finish::failure(
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ))
    } else {
        None
    };

    let mut active = active_pods.len() as i32;
    if finish.as_ref().is_some_and(Finish::is_failure) {
        // Failing: what still runs is stopped.
        let (deleted, deleted_ready) = delete_pods(registry, job_value, &active_pods).await?;
        active -= deleted;
        ready -= deleted_ready;
        terminating += deleted;
        if deleted as usize != active_pods.len() {
            finish = None;
        }
    } else if finish.is_none() {
        let ctx = Manage {
            registry,
            job_value,
            job: &job,
            pods: &pods,
            now,
        };
        let (a, r, t) = ctx
            .manage(&mut active_pods, succeeded, &succeeded_indexes)
            .await?;
        active = a;
        ready -= r;
        terminating += t;
        let complete = match completions {
            None => succeeded > 0 && active == 0,
            Some(c) => succeeded >= c && active == 0,
        };
        if complete {
            finish = Some(Finish::success());
        } else if suspended(&job) {
            if ensure_condition(
                &mut status,
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
                &now_time,
            ) {
                events::record(
                    registry,
                    job_value,
                    "Job",
                    "Normal",
                    "Suspended",
                    "Job suspended",
                    COMPONENT,
                )
                .await;
            }
        } else if ensure_condition(
            &mut status,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
            &now_time,
        ) {
            events::record(
                registry,
                job_value,
                "Job",
                "Normal",
                "Resumed",
                "Job resumed",
                COMPONENT,
            )
            .await;
            // The deadline counts the time the Job is continuously active.
            status.start_time = Some(now_time.clone());
        }
    }

    status.active = Some(active).filter(|a| *a > 0);
    status.ready = Some(ready.max(0));
    status.terminating = Some(terminating.max(0));
    if indexed(&job) {
        status.completed_indexes = Some(format_intervals(&succeeded_indexes));
    }

    // Which pods are counted now, and which lose their finalizer.
    let mut to_uncount_succeeded: Vec<String> = uncounted.succeeded.clone().unwrap_or_default();
    let mut to_uncount_failed: Vec<String> = uncounted.failed.clone().unwrap_or_default();
    let mut release: Vec<&Value> = Vec::new();
    for pod in pods.iter().filter(|p| has_finalizer(p)) {
        let failed_pod = pod_failed(pod);
        let succeeded_pod = pod_phase(pod) == "Succeeded";
        if !(deleting(pod) || finish.is_some() || succeeded_pod || failed_pod) {
            continue;
        }
        release.push(pod);
        let id = uid(pod).to_string();
        if is_uncounted(pod) {
            continue;
        }
        if succeeded_pod {
            to_uncount_succeeded.push(id);
        } else if failed_pod || finish.as_ref().is_some_and(Finish::is_failure) {
            to_uncount_failed.push(id);
        }
    }
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: Some(to_uncount_succeeded).filter(|v| !v.is_empty()),
        failed: Some(to_uncount_failed).filter(|v| !v.is_empty()),
    });
    // The interim condition is written before any finalizer goes.
    if let Some(f) = finish.clone().filter(Finish::is_interim) {
        if condition(&status, f.type_).is_none() {
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(new_condition(
                    f.type_,
                    "True",
                    &f.reason,
                    &f.message,
                    now_time.clone(),
                ));
        }
        finish = Some(f.terminal());
    }

    // 1. Record who is about to be counted.
    let Some(mut current) = write(registry, job_value, &status).await? else {
        return Ok(());
    };
    // 2. Release them.
    let mut still_held: HashSet<String> = pods
        .iter()
        .filter(|p| has_finalizer(p))
        .map(|p| uid(p).to_string())
        .collect();
    for pod in release {
        if remove_finalizer(registry, pod).await? {
            still_held.remove(uid(pod));
        }
    }
    // 3. Count those released (or gone).
    let u = status
        .uncounted_terminated_pods
        .get_or_insert_with(Default::default);
    let (mut s_list, mut f_list) = (
        u.succeeded.take().unwrap_or_default(),
        u.failed.take().unwrap_or_default(),
    );
    let before = (s_list.len(), f_list.len());
    s_list.retain(|id| still_held.contains(id));
    f_list.retain(|id| still_held.contains(id));
    if !indexed(&job) {
        status.succeeded = Some(status.succeeded.unwrap_or(0) + (before.0 - s_list.len()) as i32);
    } else {
        status.succeeded = Some(succeeded);
    }
    status.failed = Some(status.failed.unwrap_or(0) + (before.1 - f_list.len()) as i32);
    status.succeeded = status.succeeded.filter(|n| *n > 0);
    status.failed = status.failed.filter(|n| *n > 0);
    let all_counted = s_list.is_empty() && f_list.is_empty();
    u.succeeded = Some(s_list).filter(|v| !v.is_empty());
    u.failed = Some(f_list).filter(|v| !v.is_empty());
    // 4. The end, once nothing is left to count or to stop.
    let mut ended = None;
    if let Some(f) = finish
        && all_counted
        && status.terminating.unwrap_or(0) == 0
    {
        ensure_condition(
            &mut status,
            f.type_,
            "True",
            &f.reason,
            &f.message,
            &now_time,
        );
        if f.type_ == "Complete" {
            status.completion_time = Some(now_time.clone());
        }
        ended = Some(f);
    }
    current = match write(registry, &current, &status).await? {
        Some(c) => c,
        None => return Ok(()),
    };
    if let Some(f) = ended {
        if f.type_ == "Complete" {
            if completions.is_some_and(|c| status.succeeded.unwrap_or(0) > c) {
                events::record(
                    registry,
                    &current,
                    "Job",
                    "Warning",
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached",
                    COMPONENT,
                )
                .await;
            }
            events::record(
                registry,
                &current,
                "Job",
                "Normal",
                "Completed",
                "Job completed",
                COMPONENT,
            )
            .await;
        } else {
            events::record(
                registry, &current, "Job", "Warning", &f.reason, &f.message, COMPONENT,
            )
            .await;
        }
    }
    Ok(())
}

/// Active longer than `activeDeadlineSeconds` since `startTime` (not while suspended).
fn past_deadline(job: &Job, status: &JobStatus, now: jiff::Timestamp) -> bool {
    let deadline = job.spec.as_ref().and_then(|s| s.active_deadline_seconds);
    match (deadline, &status.start_time) {
        (Some(d), Some(start)) if !suspended(job) => now.as_second() - start.0.as_second() >= d,
        _ => false,
    }
}

/// Deletes a finished Job `ttlSecondsAfterFinished` after it finished.
async fn expire(
    registry: &Registry,
    job: &Job,
    job_value: &Value,
    done: &JobCondition,
    now: jiff::Timestamp,
) -> Result<()> {
    let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return Ok(());
    };
    let Some(at) = time_of(done) else {
        return Ok(());
    };
    if now.as_second() < at.as_second() + i64::from(ttl) {
        return Ok(());
    }
    let params = DeleteParams {
        propagation_policy: Some("Foreground".to_string()),
        preconditions: Some(Preconditions {
            uid: Some(uid(job_value).to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match registry
        .delete(
            &JOBS,
            Some(object::namespace(job_value)),
            object::name(job_value),
            &params,
        )
        .await
    {
        Ok(_) | Err(ApiError::NotFound { .. } | ApiError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `status` if it differs; the Job as written, or `None` if it changed meanwhile.
async fn write(registry: &Registry, current: &Value, status: &JobStatus) -> Result<Option<Value>> {
    let status_value = serde_json::to_value(status)
        .map_err(|e| ApiError::Internal(format!("encoding a Job status: {e}")))?;
    let old = current.get("status").cloned().unwrap_or_else(|| json!({}));
    if old == status_value {
        return Ok(Some(current.clone()));
    }
    let mut obj = current.clone();
    obj["status"] = status_value;
    match registry
        .update(
            &JOBS,
            Some(object::namespace(current)),
            object::name(current),
            obj,
            Part::Status,
            FieldValidation::Ignore,
        )
        .await
    {
        Ok(w) => Ok(Some(w.object)),
        Err(ApiError::Conflict { .. } | ApiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes the tracking finalizer (the whole list once it is the last, as Kubernetes
/// leaves out an empty one); false if the pod could not be changed (gone counts as done).
async fn remove_finalizer(registry: &Registry, pod: &Value) -> Result<bool> {
    let (ns, name) = (object::namespace(pod), object::name(pod));
    for _ in 0..3 {
        let current = match registry.get(&PODS, Some(ns), name).await {
            Ok(p) if uid(&p) == uid(pod) => p,
            Ok(_) | Err(ApiError::NotFound { .. }) => return Ok(true),
            Err(e) => return Err(e),
        };
        let rest: Vec<&Value> = current["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| *f != TRACKING_FINALIZER)
            .collect();
        let patch = json!({"metadata": {
            "resourceVersion": object::meta_str(&current, "resourceVersion"),
            "finalizers": if rest.is_empty() { Value::Null } else { json!(rest) },
        }});
        match registry
            .patch(
                &PODS,
                Some(ns),
                name,
                PatchType::Merge,
                &patch,
                Part::Main,
                FieldValidation::Ignore,
            )
            .await
        {
            Ok(_) | Err(ApiError::NotFound { .. }) => return Ok(true),
            Err(ApiError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Deletes `pods`, recording each; how many were deleted, and how many of them were ready.
async fn delete_pods(registry: &Registry, job: &Value, pods: &[&Value]) -> Result<(i32, i32)> {
    let (mut deleted, mut ready) = (0, 0);
    for pod in pods.iter().take(MAX_POD_CHANGES) {
        owned::delete_exact(registry, &PODS, pod).await?;
        deleted += 1;
        if owned::pod_ready(pod) {
            ready += 1;
        }
        let msg = format!("Deleted pod: {}", object::name(pod));
        events::record(
            registry,
            job,
            "Job",
            "Normal",
            "SuccessfulDelete",
            &msg,
            COMPONENT,
        )
        .await;
    }
    Ok((deleted, ready))
}

/// What `manageJob` needs: the Job and all its pods.
struct Manage<'a> {
    registry: &'a Registry,
    job_value: &'a Value,
    job: &'a Job,
    pods: &'a [Value],
    now: jiff::Timestamp,
}

impl Manage<'_> {
    /// Creates or deletes pods towards the wanted number of active ones; returns the
    /// active count after, and the ready and terminating pods this pass deleted.
    async fn manage(
        &self,
        active_pods: &mut Vec<&Value>,
        succeeded: i32,
        succeeded_indexes: &BTreeSet<i32>,
    ) -> Result<(i32, i32, i32)> {
        let spec = self.job.spec.clone().unwrap_or_default();
        let active = active_pods.len() as i32;
        if suspended(self.job) {
            let (deleted, ready) = delete_pods(self.registry, self.job_value, active_pods).await?;
            return Ok((active - deleted, ready, deleted));
        }
        let parallelism = spec.parallelism.unwrap_or(1).max(0);
        let want = match spec.completions {
            None if succeeded > 0 => active,
            None => parallelism,
            Some(c) => (c - succeeded).clamp(0, parallelism),
        };
        // Surplus pods go, the least advanced first; for an Indexed Job also pods of
        // indexes that are done, and duplicates of an index.
        let mut surplus: Vec<&Value> = Vec::new();
        if indexed(self.job) {
            let n = spec.completions.unwrap_or(0);
            let mut seen = BTreeSet::new();
            active_pods.sort_by_key(|p| std::cmp::Reverse(removal_rank(p)));
            for p in active_pods.iter() {
                match pod_index(p, n) {
                    Some(i) if !succeeded_indexes.contains(&i) && seen.insert(i) => {}
                    _ => surplus.push(p),
                }
            }
        }
        let rest = active - surplus.len() as i32;
        if rest > want {
            let mut keep: Vec<&Value> = active_pods
                .iter()
                .copied()
                .filter(|p| !surplus.iter().any(|s| uid(s) == uid(p)))
                .collect();
            keep.sort_by_key(|p| removal_rank(p));
            surplus.extend(keep.into_iter().take((rest - want) as usize));
        }
        if !surplus.is_empty() {
            let (deleted, ready) = delete_pods(self.registry, self.job_value, &surplus).await?;
            return Ok((active - deleted, ready, deleted));
        }
        if active >= want {
            return Ok((active, 0, 0));
        }
        if backoff_remaining(self.pods, self.now) > 0 {
            return Ok((active, 0, 0));
        }
        let mut indexes: Vec<Option<i32>> = Vec::new();
        let count = ((want - active) as usize).min(MAX_POD_CHANGES);
        if indexed(self.job) {
            let n = spec.completions.unwrap_or(0);
            let busy: BTreeSet<i32> = active_pods.iter().filter_map(|p| pod_index(p, n)).collect();
            indexes.extend(
                (0..n)
                    .filter(|i| !succeeded_indexes.contains(i) && !busy.contains(i))
                    .take(count)
                    .map(Some),
            );
        } else {
            indexes.resize(count, None);
        }
        let mut created = 0;
        for index in indexes {
            let pod = self.pod_for(index);
            match owned::create_pod(self.registry, pod).await {
                Ok(Some(p)) => {
                    created += 1;
                    let msg = format!("Created pod: {}", object::name(&p));
                    events::record(
                        self.registry,
                        self.job_value,
                        "Job",
                        "Normal",
                        "SuccessfulCreate",
                        &msg,
                        COMPONENT,
                    )
                    .await;
                }
                Ok(None) => {}
                Err(e) => {
                    let msg = format!("Error creating: {e}");
                    events::record(
                        self.registry,
                        self.job_value,
                        "Job",
                        "Warning",
                        "FailedCreate",
                        &msg,
                        COMPONENT,
                    )
                    .await;
                    return Err(e);
                }
            }
        }
        Ok((active + created, 0, 0))
    }

    /// A pod of the Job; an Indexed Job's carries its index (annotation, label,
    /// `JOB_COMPLETION_INDEX`, hostname `<job>-<index>`).
    fn pod_for(&self, index: Option<i32>) -> Value {
        let template = self
            .job_value
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let name = object::name(self.job_value);
        let mut extra = BTreeMap::new();
        if let Some(i) = index {
            extra.insert(COMPLETION_INDEX.to_string(), i.to_string());
        }
        let mut pod = owned::pod_from_template(self.job_value, &template, None, &extra);
        pod["metadata"]["finalizers"] = json!([TRACKING_FINALIZER]);
        if let Some(i) = index {
            pod["metadata"]["generateName"] = json!(format!("{name}-{i}-"));
            pod["metadata"]["annotations"][COMPLETION_INDEX] = json!(i.to_string());
            let spec = &mut pod["spec"];
            if spec
                .get("hostname")
                .is_none_or(|h| h.as_str().is_none_or(str::is_empty))
            {
                spec["hostname"] = json!(format!("{name}-{i}"));
            }
            let env = json!({"name": INDEX_ENV, "valueFrom": {"fieldRef": {
                "fieldPath": format!("metadata.annotations['{COMPLETION_INDEX}']")}}});
            for list in ["initContainers", "containers"] {
                if let Some(containers) = spec[list].as_array_mut() {
                    for c in containers {
                        match c["env"].as_array_mut() {
                            Some(e) => e.push(env.clone()),
                            None => c["env"] = json!([env.clone()]),
                        }
                    }
                }
            }
        }
        pod
    }
}

/// Order of removal, first removed first: unscheduled, pending, not ready, then the
/// newest.
fn removal_rank(pod: &Value) -> (bool, bool, bool, std::cmp::Reverse<String>) {
    (
        pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty()),
        pod_phase(pod) == "Running",
        owned::pod_ready(pod),
        std::cmp::Reverse(
            object::meta_str(pod, "creationTimestamp")
                .unwrap_or("")
                .to_string(),
        ),
    )
}

#[cfg(test)]
mod tests;
