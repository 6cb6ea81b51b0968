//! A kubelet killed with SIGKILL and started again adopts its containers by their labels:
//! nothing is recreated, restart counts are kept, pods deleted meanwhile are cleaned up.

use std::collections::BTreeSet;
use std::time::Duration;

use minik8s_client::DeleteParams;
use minik8s_kubelet::labels;
use minik8s_tests::kubelet::{BUSYBOX, TestNode, restart_count};
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
