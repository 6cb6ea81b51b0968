//! A DaemonSet over nodes that each run a kubelet on a Docker daemon of their own, driven
//! with the real kubectl: one pod on every node, a node that joins gets one, a deleted
//! Node loses its pod, and a nodeSelector keeps pods to the nodes it names (the change of
//! template rolling over the pod that stays).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use minik8s_api::k8s_openapi::api::core::v1::{Node, Pod};
use minik8s_client::{Api, ListParams};
use minik8s_tests::kubelet::{BUSYBOX, TestNode, condition};
use minik8s_tests::{real_kubectl, wait_for};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);

fn kubectl(config: &PathBuf, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(real_kubectl())
        .args(args)
        .env("KUBECONFIG", config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn daemon_set() -> String {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                    "name": "agent", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", "touch /tmp/ready; exec sleep 3600"],
                    "readinessProbe": {"exec": {"command": ["test", "-e", "/tmp/ready"]},
                        "periodSeconds": 1},
                }]}
            }
        }
    })
    .to_string()
}

/// Node name → the agent pods on it, once every pod there is Ready and `check` holds.
async fn wait_pods(
    pods: &Api<Pod>,
    what: &str,
    check: impl Fn(&BTreeMap<String, Vec<Pod>>) -> bool,
) -> BTreeMap<String, Vec<Pod>> {
    wait_for(what, T, || async {
        let list = pods
            .list(&ListParams::default().labels("app=agent"))
            .await
            .ok()?
            .items;
        let mut by_node: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
        for pod in list {
            if pod.metadata.deletion_timestamp.is_some() || condition(&pod, "Ready") != Some("True")
            {
                return None;
            }
            let node = pod.spec.as_ref()?.node_name.clone()?;
            by_node.entry(node).or_default().push(pod);
        }
        check(&by_node).then_some(by_node)
    })
    .await
    .unwrap()
}

fn one_each(by_node: &BTreeMap<String, Vec<Pod>>, nodes: &BTreeSet<String>) -> bool {
    by_node.keys().cloned().collect::<BTreeSet<_>>() == *nodes
        && by_node.values().all(|p| p.len() == 1)
}

fn ds_status(config: &PathBuf) -> Value {
    let out = kubectl(config, &["get", "ds", "agent", "-o", "json"], None);
    serde_json::from_str::<Value>(&out).unwrap()["status"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pod_per_matching_node_as_nodes_come_and_go() {
    let first = TestNode::on_private_dockerd().await.unwrap();
    let second = first.join().await.unwrap();
    let third = first.join().await.unwrap();
    let mut nodes = vec![first, second, third];
    for node in &mut nodes {
        node.start_kubelet().unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let config = nodes[0].api.write_kubeconfig(dir.path()).unwrap();
    let pods = nodes[0].pods();
    let mut names: BTreeSet<String> = nodes.iter().map(|n| n.node.clone()).collect();

    kubectl(&config, &["apply", "-f", "-"], Some(&daemon_set()));
    let by_node = wait_pods(&pods, "a ready pod on each of three nodes", |p| {
        one_each(p, &names)
    })
    .await;
    // Pinned as Kubernetes pins them, named after the set, with the default tolerations.
    for (node, pods) in &by_node {
        let pod = &pods[0];
        assert!(pod.metadata.name.as_ref().unwrap().starts_with("agent-"));
        let spec = serde_json::to_value(pod.spec.as_ref().unwrap()).unwrap();
        assert_eq!(
            spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
            json!({"nodeSelectorTerms": [{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": [node]}]}]})
        );
        let keys: Vec<&str> = spec["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["key"].as_str())
            .collect();
        assert!(
            keys.contains(&"node.kubernetes.io/unschedulable"),
            "{keys:?}"
        );
        assert!(keys.contains(&"node.kubernetes.io/not-ready"), "{keys:?}");
    }
    let status = wait_for("the status to count three", T, || async {
        let s = ds_status(&config);
        (s["numberAvailable"] == 3).then_some(s)
    })
    .await
    .unwrap();
    assert_eq!(status["desiredNumberScheduled"], 3);
    assert_eq!(status["currentNumberScheduled"], 3);
    assert_eq!(status["numberReady"], 3);
    assert_eq!(status["updatedNumberScheduled"], 3);
    assert_eq!(status["numberMisscheduled"], 0);

    // A fourth node joins and gets a pod of its own.
    let mut fourth = nodes[0].join().await.unwrap();
    fourth.start_kubelet().unwrap();
    names.insert(fourth.node.clone());
    wait_pods(&pods, "a ready pod on the fourth node too", |p| {
        one_each(p, &names)
    })
    .await;

    // Its Node object deleted (the machine gone), its pod goes too.
    fourth.stop_kubelet();
    kubectl(&config, &["delete", "node", &fourth.node], None);
    names.remove(&fourth.node);
    wait_pods(&pods, "the fourth node's pod gone", |p| one_each(p, &names)).await;

    // A nodeSelector keeps the pods to the labelled node; the pod there is replaced by
    // one of the new template.
    let chosen = nodes[1].node.clone();
    kubectl(&config, &["label", "node", &chosen, "agent=yes"], None);
    let old_pod = by_node[&chosen][0].metadata.uid.clone();
    kubectl(
        &config,
        &[
            "patch",
            "ds",
            "agent",
            "-p",
            r#"{"spec":{"template":{"spec":{"nodeSelector":{"agent":"yes"}}}}}"#,
        ],
        None,
    );
    let only = BTreeSet::from([chosen.clone()]);
    let by_node = wait_pods(&pods, "a pod on the labelled node only", |p| {
        one_each(p, &only) && p[&chosen][0].metadata.uid != old_pod
    })
    .await;
    let pod = &by_node[&chosen][0];
    let status = wait_for("the status to count one", T, || async {
        let s = ds_status(&config);
        (s["desiredNumberScheduled"] == 1
            && s["numberAvailable"] == 1
            && s["numberMisscheduled"] == 0)
            .then_some(s)
    })
    .await
    .unwrap();
    assert_eq!(status["updatedNumberScheduled"], 1);
    // Two revisions; the pod carries the newer one's hash.
    let revisions: Value = serde_json::from_str(&kubectl(
        &config,
        &["get", "controllerrevisions", "-o", "json"],
        None,
    ))
    .unwrap();
    let newest = revisions["items"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|r| r["revision"].as_i64())
        .unwrap();
    assert_eq!(newest["revision"], 2);
    assert_eq!(
        pod.metadata.labels.as_ref().unwrap()["controller-revision-hash"],
        newest["metadata"]["labels"]["controller-revision-hash"]
            .as_str()
            .unwrap()
    );
    let node_api: Api<Node> = Api::all(nodes[0].client.clone());
    assert!(node_api.get_opt(&fourth.node).await.unwrap().is_none());
}
