//! A kubelet killed with SIGKILL and started again adopts its containers by their labels:
//! nothing is recreated, restart counts are kept, pods deleted meanwhile are cleaned up.
//! With the API server down, pods keep running and probes keep acting; the statuses catch
//! up when it is back.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use minik8s_api::k8s_openapi::api::core::v1::Node;
use minik8s_client::{Api, DeleteParams};
use minik8s_kubelet::labels::{self, ContainerKey, Role};
use minik8s_kubelet::runtime::{ContainerInfo, ContainerState};
use minik8s_tests::kubelet::{
    BUSYBOX, TestNode, condition, container_status, phase, restart_count,
};
use minik8s_tests::wait_for;
use serde_json::json;

const T: Duration = Duration::from_secs(60);

fn pod(name: &str, script: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "state", "emptyDir": {}}],
            "containers": [{"name": "c", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
                "volumeMounts": [{"name": "state", "mountPath": "/state"}]}]}
    })
}

#[tokio::test]
async fn a_restarted_kubelet_adopts_its_containers() {
    let mut node = TestNode::without_kubelet().await.unwrap();
    node.start_kubelet_process().unwrap();
    node.create_pod(pod("steady", "exec sleep 3600"))
        .await
        .unwrap();
    // Crashes once, then runs: restart count 1.
    node.create_pod(pod(
        "crashed-once",
        "if [ -f /state/ran ]; then exec sleep 3600; fi; touch /state/ran; exit 1",
    ))
    .await
    .unwrap();
    node.create_pod(pod("doomed", "exec sleep 3600"))
        .await
        .unwrap();
    let steady = node.wait_ready("steady").await.unwrap();
    // Ready alone could be its first, short-lived run: wait for the restarted one.
    let crashed = node
        .wait_pod("crashed-once", "restarted once and ready", T, |p| {
            restart_count(p, "c") == 1
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .await
        .unwrap();
    let doomed = node.wait_ready("doomed").await.unwrap();
    assert_eq!(restart_count(&crashed, "c"), 1);
    let before: BTreeSet<String> = node
        .containers(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.labels.get(labels::POD_UID) != doomed.metadata.uid.as_ref())
        .map(|c| c.id)
        .collect();

    node.kill_kubelet_process().unwrap();
    // Deleted for good while no kubelet runs.
    node.pods()
        .delete("doomed", &DeleteParams::immediate())
        .await
        .unwrap();
    let doomed_uid = doomed.metadata.uid.clone().unwrap();
    assert!(!node.containers(Some(&doomed_uid)).await.unwrap().is_empty());

    node.start_kubelet_process().unwrap();
    // The new kubelet removes the deleted pod's containers ...
    let end = tokio::time::Instant::now() + T;
    while !node.containers(Some(&doomed_uid)).await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < end,
            "the deleted pod's containers stayed; kubelet log:\n{}",
            node.process_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ... and leaves the others alone, through several resyncs and a heartbeat.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after: BTreeSet<String> = node
        .containers(None)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(before, after, "containers were recreated or removed");
    let crashed_now = node.wait_ready("crashed-once").await.unwrap();
    assert_eq!(restart_count(&crashed_now, "c"), 1, "restart count kept");
    let steady_now = node.wait_ready("steady").await.unwrap();
    assert_eq!(restart_count(&steady_now, "c"), 0);
    assert_eq!(
        steady_now.status.as_ref().unwrap().pod_ip,
        steady.status.as_ref().unwrap().pod_ip
    );
    // One pause container per pod, never two.
    let pauses = node
        .containers(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| {
            c.labels.get(labels::CONTAINER_TYPE).map(String::as_str) == Some(labels::TYPE_SANDBOX)
        })
        .count();
    assert_eq!(pauses, 2);
    // The node stayed registered and ready under the new kubelet.
    let log = node.process_log();
    assert!(log.contains("the node exists; taking it over"), "{log}");
}

fn key(c: &ContainerInfo) -> ContainerKey {
    ContainerKey::from_labels(&c.labels).expect("a kubelet container has its labels")
}

/// The pod's pause container and its attempts of the app container `c`, oldest first.
async fn pod_containers(node: &TestNode, uid: &str) -> (ContainerInfo, Vec<ContainerInfo>) {
    let mut all = node.containers(Some(uid)).await.unwrap();
    all.sort_by_key(|c| key(c).attempt);
    let (pause, app): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|c| key(c).role == Role::Sandbox);
    assert_eq!(pause.len(), 1, "one pause container: {pause:?}");
    (pause.into_iter().next().unwrap(), app)
}

fn node_ready(node: &Node) -> Option<(String, i64)> {
    let ready = node
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    let beat = ready.last_heartbeat_time.as_ref()?.0.as_second();
    Some((ready.status.clone(), beat))
}

#[tokio::test]
async fn with_the_api_server_down_pods_run_and_probes_act() {
    let mut node = TestNode::start().await.unwrap();
    node.create_pod(json!({
        "metadata": {"name": "probed"},
        "spec": {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "touch /tmp/healthy; exec sleep 3600"],
                "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]},
                    "periodSeconds": 1, "failureThreshold": 2}}]}
    }))
    .await
    .unwrap();
    node.create_pod(pod("plain", "exec sleep 3600"))
        .await
        .unwrap();
    let probed = node.wait_ready("probed").await.unwrap();
    let plain = node.wait_ready("plain").await.unwrap();
    let probed_uid = probed.metadata.uid.clone().unwrap();
    let plain_uid = plain.metadata.uid.clone().unwrap();
    let (probed_pause, probed_app) = pod_containers(&node, &probed_uid).await;
    let (plain_pause, plain_app) = pod_containers(&node, &plain_uid).await;
    assert_eq!((probed_app.len(), plain_app.len()), (1, 1));
    let first = probed_app[0].id.clone();

    api_of(&mut node).stop().await;
    assert!(
        node.pods().get("probed").await.is_err(),
        "the API server still answers"
    );
    let out = Command::new("docker")
        .args(["exec", &first, "rm", "/tmp/healthy"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The probe fails twice, the kubelet kills the container and starts attempt 1,
    // with nobody to tell.
    let restarted = wait_for(
        "the liveness probe to restart the container",
        Duration::from_secs(60),
        || async {
            let (_, app) = pod_containers(&node, &probed_uid).await;
            let [old, new] = app.as_slice() else {
                return None;
            };
            (old.id == first
                && old.state == ContainerState::Exited
                && key(new).attempt == 1
                && new.state == ContainerState::Running)
                .then(|| new.id.clone())
        },
    )
    .await
    .unwrap();
    // Everything else kept running, untouched, through resyncs that could not send
    // their statuses (the test kubelet resyncs every 2 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (uid, pause, app) in [
        (&probed_uid, &probed_pause, &restarted),
        (&plain_uid, &plain_pause, &plain_app[0].id),
    ] {
        let (pause_now, app_now) = pod_containers(&node, uid).await;
        assert_eq!(pause_now.id, pause.id, "the pause container was recreated");
        assert_eq!(pause_now.state, ContainerState::Running);
        let last = app_now.last().unwrap();
        assert_eq!(&last.id, app);
        assert_eq!(last.state, ContainerState::Running);
    }
    assert!(node.pods().get("probed").await.is_err());

    let back = jiff::Timestamp::now().as_second();
    api_of(&mut node).restart().await.unwrap();
    let probed_now = node
        .wait_pod("probed", "restarted once, running and ready", T, |p| {
            restart_count(p, "c") == 1
                && phase(p) == "Running"
                && condition(p, "Ready") == Some("True")
                && container_status(p, "c").and_then(|s| s.container_id.clone())
                    == Some(format!("docker://{restarted}"))
        })
        .await
        .unwrap();
    let last_state = container_status(&probed_now, "c")
        .and_then(|s| s.last_state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .cloned();
    assert_eq!(
        last_state.and_then(|t| t.container_id),
        Some(format!("docker://{first}")),
        "lastState is the killed attempt"
    );
    let plain_now = node.wait_ready("plain").await.unwrap();
    assert_eq!(restart_count(&plain_now, "c"), 0);
    assert_eq!(
        container_status(&plain_now, "c").and_then(|s| s.container_id.clone()),
        Some(format!("docker://{}", plain_app[0].id))
    );
    let nodes: Api<Node> = Api::all(node.client.clone());
    wait_for("the node to be Ready with a new heartbeat", T, || async {
        let n = nodes.get(&node.node).await.ok()?;
        node_ready(&n).filter(|(status, beat)| status == "True" && *beat >= back)
    })
    .await
    .unwrap();
    // The kubelet follows the new server's pods too.
    node.create_pod(pod("after", "exec sleep 3600"))
        .await
        .unwrap();
    node.wait_ready("after").await.unwrap();
    for (uid, pause) in [(&probed_uid, &probed_pause), (&plain_uid, &plain_pause)] {
        let (pause_now, _) = pod_containers(&node, uid).await;
        assert_eq!(pause_now.id, pause.id, "the pause container was recreated");
    }
}

/// The node's API server, to stop and restart: no other node shares it.
fn api_of(node: &mut TestNode) -> &mut minik8s_tests::apiserver::TestApiServer {
    std::sync::Arc::get_mut(&mut node.api).expect("no other node shares the API server")
}
