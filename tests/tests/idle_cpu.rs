//! Idle costs nothing: every long-running process, asked for nothing, sleeps. Each test
//! starts the real binary, waits until it has settled (serving, node Ready, pods running),
//! then reads its CPU time from `/proc` over 10 s and fails above 3 % of one core. A
//! process that spins takes ~90 %, so the bound is far from both the idle figure (well
//! under 1 %) and noise.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use minik8s_api::k8s_openapi::api::core::v1::Node;
use minik8s_client::{Api, Client, Config};
use minik8s_tests::bench::free_port;
use minik8s_tests::etcd::EtcdProcess;
use minik8s_tests::kubelet::{
    BUSYBOX, CidrClaim, TestNode, cmd_binary, condition, ensure_images, phase,
    remove_docker_leftovers,
};
use minik8s_tests::proc::idle_cpu_percent;
use minik8s_tests::wait_for;
use serde_json::json;

const WINDOW: Duration = Duration::from_secs(10);
const LIMIT_PERCENT: f64 = 3.0;

/// Removes a node's containers and network when dropped, also when the test fails.
struct NodeLeftovers(String);

impl Drop for NodeLeftovers {
    fn drop(&mut self) {
        remove_docker_leftovers(&self.0);
    }
}

/// A child process killed (and reaped) when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(binary: &Path, args: &[&str], log: &Path) -> anyhow::Result<Process> {
    let log = std::fs::File::create(log)?;
    let child = Command::new(binary)
        .args(args)
        .env_remove("KUBECONFIG")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(Process(child))
}

async fn wait_healthy(url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let healthz = format!("{url}/healthz");
    wait_for(
        "the API server to answer /healthz",
        Duration::from_secs(60),
        || async {
            http.get(&healthz)
                .send()
                .await
                .ok()?
                .status()
                .is_success()
                .then_some(())
        },
    )
    .await
}

async fn wait_node_ready(client: &Client, node: &str) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for(
        &format!("node {node} to be Ready"),
        Duration::from_secs(90),
        || async {
            let n = nodes.get_opt(node).await.ok()??;
            let ready = n
                .status?
                .conditions?
                .into_iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(())
        },
    )
    .await
}

/// Fails with the measured figure and the process's log when it is over the bound.
async fn assert_idle(what: &str, pid: u32, log: &str) {
    let pct = idle_cpu_percent(pid, WINDOW).await.unwrap();
    println!("{what}: {pct:.2} % of a core over {WINDOW:?}");
    assert!(
        pct <= LIMIT_PERCENT,
        "{what} used {pct:.1} % of a core over {WINDOW:?} doing nothing (limit {LIMIT_PERCENT} %); its log:\n{log}"
    );
}

async fn apiserver_idles(datastore: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let data = dir.path().join("data");
    let mut args = vec!["--listen", &listen, "--data-dir", data.to_str().unwrap()];
    if let Some(endpoint) = datastore {
        args.extend(["--datastore-endpoint", endpoint]);
    }
    let log = dir.path().join("apiserver.log");
    let server = spawn(&cmd_binary("apiserver").unwrap(), &args, &log).unwrap();
    wait_healthy(&format!("http://{listen}")).await.unwrap();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert_idle("the API server", server.0.id(), &log).await;
}

#[tokio::test]
async fn the_api_server_on_the_embedded_store_sleeps_when_idle() {
    apiserver_idles(None).await;
}

#[tokio::test]
async fn the_api_server_on_etcd_sleeps_when_idle() {
    let etcd = EtcdProcess::start().unwrap();
    apiserver_idles(Some(&format!("etcd://{}", etcd.endpoint()))).await;
}

#[tokio::test]
async fn the_kubelet_sleeps_when_idle_with_no_pods_and_with_twenty() {
    let mut node = TestNode::without_kubelet().await.unwrap();
    node.start_kubelet_process().unwrap();
    wait_node_ready(&node.client, &node.node).await.unwrap();
    let pid = node.kubelet_pid().unwrap();
    assert_idle("the kubelet with no pods", pid, &node.process_log()).await;

    const PODS: usize = 20;
    for i in 0..PODS {
        node.create_pod(json!({
            "metadata": {"name": format!("idle-{i}")},
            "spec": {"terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": BUSYBOX,
                    "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}
        }))
        .await
        .unwrap();
    }
    for i in 0..PODS {
        node.wait_pod(
            &format!("idle-{i}"),
            "running and ready",
            Duration::from_secs(120),
            |p| phase(p) == "Running" && condition(p, "Ready") == Some("True"),
        )
        .await
        .unwrap();
    }
    assert_idle("the kubelet with 20 running pods", pid, &node.process_log()).await;
}

#[tokio::test]
async fn minik8s_up_sleeps_when_idle() {
    ensure_images().unwrap();
    let claim = CidrClaim::acquire().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = format!("idle-up-{}", std::process::id());
    remove_docker_leftovers(&node);
    let _leftovers = NodeLeftovers(node.clone());
    let listen = format!("127.0.0.1:{}", free_port().unwrap());
    let kubelet_port = free_port().unwrap().to_string();
    let kubeconfig = dir.path().join("kubeconfig");
    let data = dir.path().join("data");
    let cidr = claim.cluster_cidr();
    let log = dir.path().join("up.log");
    let up = spawn(
        &cmd_binary("minik8s").unwrap(),
        &[
            "up",
            "--listen",
            &listen,
            "--data-dir",
            data.to_str().unwrap(),
            "--node-name",
            &node,
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--kubelet-port",
            &kubelet_port,
            "--cluster-cidr",
            &cidr,
        ],
        &log,
    )
    .unwrap();
    let url = format!("http://{listen}");
    wait_healthy(&url).await.unwrap();
    let client = Client::new(Config::new(url.parse().unwrap())).unwrap();
    let ready = wait_node_ready(&client, &node).await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    ready.with_context(|| text.clone()).unwrap();
    assert_idle("minik8s up", up.0.id(), &text).await;
    drop(up);
}
