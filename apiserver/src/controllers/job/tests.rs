//! The Job controller's helpers, and its passes over a real (embedded) store.

use super::*;

#[test]
fn backoff_doubles_to_six_minutes() {
    assert_eq!(backoff_for(1, 0), 10);
    assert_eq!(backoff_for(2, 5), 15);
    assert_eq!(backoff_for(3, 0), 40);
    assert_eq!(backoff_for(10, 0), 360);
    assert_eq!(backoff_for(1, 11), 0);
}

#[test]
fn a_success_resets_the_backoff() {
    let now = jiff::Timestamp::now();
    let at = |secs: i64| object::format_time(now - jiff::SignedDuration::from_secs(secs));
    let pod = |phase: &str, ago: i64| {
        json!({"status": {"phase": phase, "containerStatuses": [
            {"state": {"terminated": {"finishedAt": at(ago)}}}]}})
    };
    assert_eq!(backoff_remaining(&[pod("Failed", 2)], now), 8);
    // Two failures: 20 s after the last.
    assert_eq!(
        backoff_remaining(&[pod("Failed", 30), pod("Failed", 5)], now),
        15
    );
    // A success after the first failure resets the count.
    let pods = [pod("Failed", 30), pod("Succeeded", 20), pod("Failed", 5)];
    assert_eq!(backoff_remaining(&pods, now), 5);
    assert_eq!(
        backoff_remaining(&[pod("Failed", 30), pod("Succeeded", 20)], now),
        0
    );
}

#[test]
fn completed_indexes_are_intervals() {
    let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
    assert_eq!(format_intervals(&set), "0-2,4,6-7");
    assert_eq!(parse_intervals("0-2,4,6-7"), set);
    assert_eq!(format_intervals(&BTreeSet::new()), "");
}

#[test]
fn conditions_change_only_when_they_differ() {
    let now = Time(jiff::Timestamp::now());
    let mut s = JobStatus::default();
    assert!(!ensure_condition(
        &mut s,
        "Suspended",
        "False",
        "JobResumed",
        "Job resumed",
        &now
    ));
    assert!(ensure_condition(
        &mut s,
        "Suspended",
        "True",
        "JobSuspended",
        "Job suspended",
        &now
    ));
    assert!(!ensure_condition(
        &mut s,
        "Suspended",
        "True",
        "JobSuspended",
        "Job suspended",
        &now
    ));
    assert!(ensure_condition(
        &mut s,
        "Suspended",
        "False",
        "JobResumed",
        "Job resumed",
        &now
    ));
    assert_eq!(s.conditions.as_ref().unwrap().len(), 1);
}

mod with_a_store {
    use std::sync::Arc;

    use minik8s_storage::Store;
    use minik8s_storage::embedded::EmbeddedStore;

    use super::*;

    async fn registry(dir: &tempfile::TempDir) -> Registry {
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(&dir.path().join("s.redb")).unwrap());
        // `default` is made by the registry itself.
        Registry::new(store, 100).await.unwrap()
    }

    async fn create_job(r: &Registry, name: &str, spec: Value) -> Value {
        let mut spec = spec;
        spec["template"] = json!({"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}]}});
        let job = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec});
        r.create(&JOBS, Some("default"), job, FieldValidation::Ignore)
            .await
            .unwrap()
            .object
    }

    async fn job(r: &Registry, name: &str) -> Value {
        r.get(&JOBS, Some("default"), name).await.unwrap()
    }

    async fn pods(r: &Registry) -> Vec<Value> {
        let f = Filter::new(&PODS, Some("default".into()), None, None).unwrap();
        let mut pods = r.list(&PODS, &f, &ListParams::default()).await.unwrap().0;
        pods.sort_by_key(|p| object::name(p).to_string());
        pods
    }

    async fn patch(
        r: &Registry,
        res: &'static minik8s_api::resource::ResourceInfo,
        name: &str,
        body: Value,
        part: Part,
    ) {
        r.patch(
            res,
            Some("default"),
            name,
            PatchType::Merge,
            &body,
            part,
            FieldValidation::Ignore,
        )
        .await
        .unwrap();
    }

    fn names(pods: &[Value]) -> Vec<String> {
        pods.iter().map(|p| object::name(p).to_string()).collect()
    }

    /// A crash after any step of counting a pod neither loses nor doubles it.
    #[tokio::test]
    async fn each_pod_is_counted_once_whatever_step_a_restart_falls_on() {
        let dir = tempfile::tempdir().unwrap();
        let r = registry(&dir).await;
        create_job(&r, "count", json!({"completions": 2, "parallelism": 2})).await;
        reconcile(&r).await.unwrap();
        let made = pods(&r).await;
        assert_eq!(made.len(), 2);
        assert!(made.iter().all(has_finalizer));
        let (a, b) = (names(&made)[0].clone(), names(&made)[1].clone());
        let uid_a = uid(&made[0]).to_string();
        let uid_b = uid(&made[1]).to_string();

        // Stopped after writing `a` as uncounted, before its finalizer went.
        patch(
            &r,
            &PODS,
            &a,
            json!({"status": {"phase": "Succeeded"}}),
            Part::Status,
        )
        .await;
        patch(
            &r,
            &JOBS,
            "count",
            json!({"status": {"uncountedTerminatedPods": {"succeeded": [uid_a]}}}),
            Part::Status,
        )
        .await;
        reconcile(&r).await.unwrap();
        let j = job(&r, "count").await;
        assert_eq!(j["status"]["succeeded"], 1, "{j:#}");
        assert_eq!(j["status"]["uncountedTerminatedPods"], json!({}));
        assert!(!has_finalizer(
            &r.get(&PODS, Some("default"), &a).await.unwrap()
        ));

        // Stopped after removing `b`'s finalizer, before moving it into the count.
        patch(
            &r,
            &PODS,
            &b,
            json!({"status": {"phase": "Succeeded"}}),
            Part::Status,
        )
        .await;
        patch(
            &r,
            &JOBS,
            "count",
            json!({"status": {"uncountedTerminatedPods": {"succeeded": [uid_b]}}}),
            Part::Status,
        )
        .await;
        patch(
            &r,
            &PODS,
            &b,
            json!({"metadata": {"finalizers": null}}),
            Part::Main,
        )
        .await;
        for _ in 0..3 {
            reconcile(&r).await.unwrap();
        }
        let j = job(&r, "count").await;
        assert_eq!(j["status"]["succeeded"], 2, "{j:#}");
        assert!(finished(&serde_json::from_value(j["status"].clone()).unwrap()).is_some());
        assert_eq!(pods(&r).await.len(), 2, "no pod made after the end");
    }

    #[tokio::test]
    async fn a_suspended_job_runs_nothing_until_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let r = registry(&dir).await;
        create_job(
            &r,
            "later",
            json!({"suspend": true, "parallelism": 2, "completions": 4}),
        )
        .await;
        reconcile(&r).await.unwrap();
        assert!(pods(&r).await.is_empty());
        let j = job(&r, "later").await;
        let c = &j["status"]["conditions"][0];
        assert_eq!(
            (&c["type"], &c["status"], &c["reason"], &c["message"]),
            (
                &json!("Suspended"),
                &json!("True"),
                &json!("JobSuspended"),
                &json!("Job suspended")
            )
        );
        assert!(j["status"].get("startTime").is_none());

        patch(
            &r,
            &JOBS,
            "later",
            json!({"spec": {"suspend": false}}),
            Part::Main,
        )
        .await;
        reconcile(&r).await.unwrap();
        assert_eq!(pods(&r).await.len(), 2);
        let j = job(&r, "later").await;
        let c = &j["status"]["conditions"][0];
        assert_eq!(
            (&c["status"], &c["reason"]),
            (&json!("False"), &json!("JobResumed"))
        );
        assert!(j["status"]["startTime"].is_string());
        assert_eq!(j["status"]["active"], 2);

        // Suspended again: its pods go (unscheduled, at once), counted as failed.
        patch(
            &r,
            &JOBS,
            "later",
            json!({"spec": {"suspend": true}}),
            Part::Main,
        )
        .await;
        reconcile(&r).await.unwrap();
        reconcile(&r).await.unwrap();
        assert!(pods(&r).await.is_empty());
        let j = job(&r, "later").await;
        assert!(j["status"].get("active").is_none(), "{j:#}");
        assert_eq!(j["status"]["conditions"][0]["status"], "True");
    }

    #[tokio::test]
    async fn indexed_pods_carry_their_index_and_each_index_completes_once() {
        let dir = tempfile::tempdir().unwrap();
        let r = registry(&dir).await;
        create_job(
            &r,
            "ix",
            json!({"completionMode": "Indexed", "completions": 3, "parallelism": 2}),
        )
        .await;
        reconcile(&r).await.unwrap();
        let made = pods(&r).await;
        let index = |p: &Value| p["metadata"]["annotations"][COMPLETION_INDEX].clone();
        let mut indexes: Vec<Value> = made.iter().map(index).collect();
        indexes.sort_by_key(ToString::to_string);
        assert_eq!(indexes, [json!("0"), json!("1")]);
        let zero = made.iter().find(|p| index(p) == "0").unwrap();
        assert!(object::name(zero).starts_with("ix-0-"));
        assert_eq!(zero["metadata"]["labels"][COMPLETION_INDEX], "0");
        assert_eq!(zero["spec"]["hostname"], "ix-0");
        assert_eq!(
            zero["spec"]["containers"][0]["env"][0],
            json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                "apiVersion": "v1",
                "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}})
        );
        // Index 0 succeeds: index 2 starts, and 0 is recorded as complete.
        patch(
            &r,
            &PODS,
            object::name(zero),
            json!({"status": {"phase": "Succeeded"}}),
            Part::Status,
        )
        .await;
        reconcile(&r).await.unwrap();
        reconcile(&r).await.unwrap();
        let j = job(&r, "ix").await;
        assert_eq!(j["status"]["completedIndexes"], "0", "{j:#}");
        assert_eq!(j["status"]["succeeded"], 1);
        let mut active: Vec<Value> = pods(&r)
            .await
            .iter()
            .filter(|p| owned::pod_active(p))
            .map(index)
            .collect();
        active.sort_by_key(ToString::to_string);
        assert_eq!(active, [json!("1"), json!("2")]);
        for p in pods(&r).await.iter().filter(|p| owned::pod_active(p)) {
            patch(
                &r,
                &PODS,
                object::name(p),
                json!({"status": {"phase": "Succeeded"}}),
                Part::Status,
            )
            .await;
        }
        reconcile(&r).await.unwrap();
        let j = job(&r, "ix").await;
        assert_eq!(j["status"]["completedIndexes"], "0-2", "{j:#}");
        assert_eq!(j["status"]["succeeded"], 3);
        assert_eq!(condition_types(&j), ["SuccessCriteriaMet", "Complete"]);
        assert_eq!(pods(&r).await.len(), 3);
    }

    fn condition_types(j: &Value) -> Vec<&str> {
        j["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["type"].as_str())
            .collect()
    }
}
