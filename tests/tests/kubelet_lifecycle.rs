//! Container lifecycles on real Docker: restart policies with Kubernetes' restart counts
//! and back-off, probes, graceful deletion.

use std::time::{Duration, Instant};

use minik8s_api::k8s_openapi::api::core::v1::Pod;
use minik8s_client::{DeleteParams, LogParams};
use minik8s_tests::kubelet::{
    BUSYBOX, TestNode, condition, container_status, phase, restart_count, waiting_reason,
};
use serde_json::json;

const T: Duration = Duration::from_secs(60);

fn pod(name: &str, policy: &str, script: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name},
        "spec": {"restartPolicy": policy, "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "state", "emptyDir": {}}],
            "containers": [{"name": "c", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
                "volumeMounts": [{"name": "state", "mountPath": "/state"}]}]}
    })
}

fn terminated(pod: &Pod) -> (i32, String) {
    let t = container_status(pod, "c")
        .and_then(|s| s.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .expect("terminated");
    (t.exit_code, t.reason.clone().unwrap_or_default())
}

/// Exits 1 the first time, 0 after.
const FAIL_ONCE: &str = "if [ -f /state/ran ]; then echo second run; exit 0; fi; touch /state/ran; echo first run; exit 1";

#[tokio::test]
async fn restart_policies_follow_kubernetes() {
    let node = TestNode::start().await.unwrap();
    node.create_pod(pod("always", "Always", "echo run; sleep 0.3; exit 1"))
        .await
        .unwrap();
    node.create_pod(pod("always-ok", "Always", "sleep 0.3; exit 0"))
        .await
        .unwrap();
    node.create_pod(pod("on-failure", "OnFailure", FAIL_ONCE))
        .await
        .unwrap();
    node.create_pod(pod("never", "Never", "exit 3"))
        .await
        .unwrap();
    node.create_pod(pod("never-ok", "Never", "exit 0"))
        .await
        .unwrap();

    // Always: restarted even after success, back-off in between, the pod stays Running.
    let always = node
        .wait_pod("always", "restarted twice", T, |p| {
            restart_count(p, "c") >= 2
        })
        .await
        .unwrap();
    assert_eq!(phase(&always), "Running");
    let crash_loop = node
        .wait_pod("always", "in CrashLoopBackOff", T, |p| {
            waiting_reason(p, "c") == Some("CrashLoopBackOff")
        })
        .await
        .unwrap();
    let s = container_status(&crash_loop, "c").unwrap();
    let last = s.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    assert_eq!(phase(&crash_loop), "Running");
    let events = node.events("always").await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("BackOff: Back-off restarting failed container c")),
        "{events:#?}"
    );
    // The log of the run before.
    let previous = node
        .pods()
        .logs(
            "always",
            &LogParams {
                container: Some("c".into()),
                previous: true,
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(previous, "run\n");
    node.wait_pod("always-ok", "restarted", T, |p| restart_count(p, "c") >= 1)
        .await
        .unwrap();

    // OnFailure: the failure is restarted, the success is final.
    let on_failure = node
        .wait_pod("on-failure", "Succeeded", T, |p| phase(p) == "Succeeded")
        .await
        .unwrap();
    assert_eq!(restart_count(&on_failure, "c"), 1);
    assert_eq!(terminated(&on_failure), (0, "Completed".into()));
    assert_eq!(condition(&on_failure, "Ready"), Some("False"));

    // Never: no restart; the exit code decides the phase.
    let never = node
        .wait_pod("never", "Failed", T, |p| phase(p) == "Failed")
        .await
        .unwrap();
    assert_eq!(restart_count(&never, "c"), 0);
    assert_eq!(terminated(&never), (3, "Error".into()));
    let never_ok = node
        .wait_pod("never-ok", "Succeeded", T, |p| phase(p) == "Succeeded")
        .await
        .unwrap();
    assert_eq!(restart_count(&never_ok, "c"), 0);

    // A finished pod keeps its (stopped) containers for logs, but not its pause container.
    let uid = never.metadata.uid.clone().unwrap();
    let containers = node.containers(Some(&uid)).await.unwrap();
    assert!(
        containers
            .iter()
            .all(|c| c.state != minik8s_kubelet::runtime::ContainerState::Running)
    );
    assert_eq!(node.logs("on-failure", "c").await.unwrap(), "second run\n");
}

#[tokio::test]
async fn a_failing_liveness_probe_restarts_the_container() {
    let node = TestNode::start().await.unwrap();
    node.create_pod(json!({
        "metadata": {"name": "live"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "c", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; exec sleep 3600"],
            "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]},
                              "periodSeconds": 1, "failureThreshold": 1, "timeoutSeconds": 2}}]}
    }))
    .await
    .unwrap();
    let first = node
        .wait_pod("live", "restarted", T, |p| restart_count(p, "c") >= 1)
        .await
        .unwrap();
    let second = node
        .wait_pod("live", "restarted again", T, |p| restart_count(p, "c") >= 2)
        .await
        .unwrap();
    assert!(restart_count(&second, "c") > restart_count(&first, "c"));
    let events = node.events("live").await.unwrap();
    let unhealthy = events
        .iter()
        .position(|e| e.starts_with("Unhealthy: Liveness probe failed:"))
        .unwrap_or_else(|| panic!("{events:#?}"));
    let killing = events
        .iter()
        .position(|e| e == "Killing: Container c failed liveness probe, will be restarted")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert!(unhealthy < killing, "{events:#?}");
}

#[tokio::test]
async fn an_http_readiness_probe_toggles_ready() {
    let node = TestNode::start().await.unwrap();
    node.create_pod(json!({
        "metadata": {"name": "ready"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "web", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "mkdir -p /www; exec httpd -f -p 8080 -h /www"],
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"},
                               "periodSeconds": 1, "failureThreshold": 1}}]}
    }))
    .await
    .unwrap();
    let running = node
        .wait_pod("ready", "running", T, |p| {
            container_status(p, "web")
                .and_then(|s| s.state.as_ref())
                .is_some_and(|s| s.running.is_some())
        })
        .await
        .unwrap();
    assert_eq!(condition(&running, "Ready"), Some("False"));
    let id = container_status(&running, "web")
        .unwrap()
        .container_id
        .clone()
        .unwrap()
        .trim_start_matches("docker://")
        .to_string();
    let exec = |cmd: &'static str| {
        let docker = node.docker.clone();
        let id = id.clone();
        async move {
            use minik8s_kubelet::runtime::ContainerRuntime;
            let command = vec!["sh".to_string(), "-c".to_string(), cmd.to_string()];
            let out = docker
                .exec(&id, &command, Duration::from_secs(10))
                .await
                .unwrap();
            assert_eq!(out.exit_code, 0, "{}", out.output);
        }
    };
    exec("echo ok > /www/ready").await;
    let ready = node.wait_ready("ready").await.unwrap();
    assert_eq!(condition(&ready, "ContainersReady"), Some("True"));
    assert!(container_status(&ready, "web").unwrap().ready);
    exec("rm /www/ready").await;
    let unready = node
        .wait_pod("ready", "not ready", T, |p| {
            condition(p, "Ready") == Some("False")
        })
        .await
        .unwrap();
    assert_eq!(phase(&unready), "Running");
    assert_eq!(
        restart_count(&unready, "web"),
        0,
        "readiness never restarts"
    );
    exec("echo ok > /www/ready").await;
    node.wait_ready("ready").await.unwrap();
    let events = node.events("ready").await.unwrap();
    assert!(
        events.iter().any(|e| e.starts_with(
            "Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 404"
        )),
        "{events:#?}"
    );
}

#[tokio::test]
async fn deleting_a_pod_stops_every_container_within_the_grace_period() {
    let node = TestNode::start().await.unwrap();
    node.create_pod(json!({
        "metadata": {"name": "bye"},
        "spec": {"terminationGracePeriodSeconds": 3, "containers": [
            {"name": "polite", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
             "command": ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.1; done"]},
            {"name": "stubborn", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
             "command": ["sleep", "3600"]}
        ]}
    }))
    .await
    .unwrap();
    let pod = node.wait_ready("bye").await.unwrap();
    let uid = pod.metadata.uid.clone().unwrap();
    assert_eq!(node.containers(Some(&uid)).await.unwrap().len(), 3);
    let started = Instant::now();
    let deleted = node
        .pods()
        .delete("bye", &DeleteParams::default())
        .await
        .unwrap();
    // A bound pod is deleted gracefully: the kubelet finishes it.
    assert!(!deleted.is_gone());
    node.wait_gone("bye", Duration::from_secs(20))
        .await
        .unwrap();
    let took = started.elapsed();
    // `sleep` as PID 1 ignores SIGTERM: it is killed when the 3 s are up.
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(took < Duration::from_secs(12), "{took:?}");
    assert!(node.containers(Some(&uid)).await.unwrap().is_empty());
    let events = node.events("bye").await.unwrap();
    for c in ["polite", "stubborn"] {
        let wanted = format!("Killing: Stopping container {c}");
        assert!(events.contains(&wanted), "{events:#?}");
    }
}

#[tokio::test]
async fn an_oom_killed_container_is_reported_as_such() {
    let node = TestNode::start().await.unwrap();
    node.create_pod(json!({
        "metadata": {"name": "hungry"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "c", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            // `tail` keeps everything it reads: far more than the limit.
            "command": ["sh", "-c", "head -c 200m /dev/zero | tail > /dev/null"],
            "resources": {"limits": {"memory": "20Mi"}}}]}
    }))
    .await
    .unwrap();
    let pod = node
        .wait_pod("hungry", "Failed", T, |p| phase(p) == "Failed")
        .await
        .unwrap();
    assert_eq!(terminated(&pod), (137, "OOMKilled".into()));
}

#[tokio::test]
async fn a_command_that_cannot_start_goes_into_crash_loop_back_off() {
    let node = TestNode::start().await.unwrap();
    node.create_pod(json!({
        "metadata": {"name": "missing"},
        "spec": {"containers": [{"name": "c", "image": BUSYBOX,
                                  "imagePullPolicy": "IfNotPresent",
                                  "command": ["/no/such/program"]}]}
    }))
    .await
    .unwrap();
    let pod = node
        .wait_pod("missing", "in CrashLoopBackOff", T, |p| {
            waiting_reason(p, "c") == Some("CrashLoopBackOff") && restart_count(p, "c") >= 1
        })
        .await
        .unwrap();
    let last = container_status(&pod, "c")
        .unwrap()
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .unwrap();
    assert_eq!(last.reason.as_deref(), Some("StartError"));
    assert_eq!(last.exit_code, 127);
    assert!(last.message.unwrap().contains("/no/such/program"));
}

/// `kubectl get events` lists by name: the scheduler's and the kubelet's events are named
/// `<pod>.<hex nanoseconds>` alike, so name order is the order they happened.
#[tokio::test]
async fn events_of_the_scheduler_and_the_kubelet_list_in_the_order_they_happened() {
    let node = TestNode::start().await.unwrap();
    // Not bound here: the scheduler binds it and records `Scheduled` first.
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "ordered"},
        "spec": {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"]}]}
    }))
    .unwrap();
    node.pods().create(&pod).await.unwrap();
    node.wait_ready("ordered").await.unwrap();
    let events: minik8s_client::Api<minik8s_api::k8s_openapi::api::core::v1::Event> =
        minik8s_client::Api::namespaced(node.client.clone(), "default");
    let want = ["Scheduled", "Pulled", "Created", "Started"];
    let reasons = minik8s_tests::wait_for("the pod's start events", T, || async {
        let list = events
            .list(&minik8s_client::ListParams::default().fields("involvedObject.name=ordered"))
            .await
            .ok()?;
        let reasons: Vec<String> = list.items.into_iter().filter_map(|e| e.reason).collect();
        want.iter()
            .all(|w| reasons.iter().any(|r| r == w))
            .then_some(reasons)
    })
    .await
    .unwrap();
    // As listed (by name), not re-sorted here.
    let positions: Vec<usize> = want
        .iter()
        .map(|w| reasons.iter().position(|r| r == w).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|p| p[0] < p[1]),
        "events listed out of order: {reasons:?}"
    );
}
