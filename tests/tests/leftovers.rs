//! What one cluster leaves for the next, on real Docker: a kubelet given the pod CIDR of a
//! stopped node removes that node's idle network and starts; one whose range running pods
//! hold stops and says what holds it and how to clean up; `minik8s reset` removes
//! everything MiniK8s made; `minik8s up` stops on SIGTERM.
//!
//! Every test runs on a private Docker daemon of its own, so that removing networks and
//! containers disturbs no other test. `minik8s reset` also removes routes and iptables
//! chains, which are the host's and shared by every kubelet of the machine: the tests run
//! it inside a network namespace of their own (`ip netns exec`), where the same kubelet
//! code that makes the chains and routes on a node made them first.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use minik8s_api::k8s_openapi::api::core::v1::Node;
use minik8s_client::{Api, Client, Config, DeleteParams};
use minik8s_kubelet::network::{Host, HostGateway, ROUTE_PROTO};
use minik8s_kubelet::runtime::ContainerRuntime;
use minik8s_kubelet::{Error, labels, network_name};
use minik8s_tests::bench::free_port;
use minik8s_tests::dockerd::PrivateDockerd;
use minik8s_tests::kubelet::{BUSYBOX, CidrClaim, TestNode, cmd_binary, phase};
use minik8s_tests::wait_for;
use serde_json::json;

/// The node's pod CIDR, once the API server assigned it.
async fn pod_cidr(node: &TestNode, name: &str) -> anyhow::Result<String> {
    let nodes: Api<Node> = Api::all(node.client.clone());
    wait_for(
        &format!("node {name}'s pod CIDR"),
        Duration::from_secs(60),
        || async {
            nodes
                .get_opt(name)
                .await
                .ok()??
                .spec?
                .pod_cidr
                .filter(|c| !c.is_empty())
        },
    )
    .await
}

/// The subnets of a network on the node's Docker, if it exists.
async fn network_subnets(node: &TestNode, name: &str) -> Option<Vec<String>> {
    let networks = node.docker.list_networks().await.ok()?;
    let network = networks.into_iter().find(|n| n.name == name)?;
    Some(network.subnets.iter().map(ToString::to_string).collect())
}

/// Runs node A's kubelet with one pod, `web`, then stops the kubelet and removes the
/// node from the API server (as a new cluster would not know it), so that the next node
/// is given A's range. Returns A's name and pod CIDR.
async fn leave_node_behind(
    node: &mut TestNode,
    command: &[&str],
    restart: &str,
) -> anyhow::Result<(String, String)> {
    node.start_kubelet()?;
    let a = node.node.clone();
    let cidr = pod_cidr(node, &a).await?;
    node.create_pod(json!({
        "metadata": {"name": "web"},
        "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": BUSYBOX,
                "imagePullPolicy": "IfNotPresent", "command": command}]}
    }))
    .await?;
    if restart == "Never" {
        node.wait_pod("web", "Succeeded", Duration::from_secs(60), |p| {
            phase(p) == "Succeeded"
        })
        .await?;
    } else {
        node.wait_ready("web").await?;
    }
    node.stop_kubelet();
    let nodes: Api<Node> = Api::all(node.client.clone());
    nodes.delete(&a, &DeleteParams::default()).await?;
    node.node = format!("{a}-b");
    Ok((a, cidr))
}

#[tokio::test]
async fn a_stopped_nodes_idle_network_gives_way_to_the_next_node() {
    let mut node = TestNode::on_private_dockerd().await.unwrap();
    let (a, cidr) = leave_node_behind(&mut node, &["true"], "Never")
        .await
        .unwrap();
    let stopped = node
        .docker
        .list_summaries(&labels::node_selector(&a))
        .await
        .unwrap();
    assert!(
        !stopped.is_empty(),
        "node {a}'s finished pod left containers"
    );
    assert_eq!(
        network_subnets(&node, &network_name(&a)).await,
        Some(vec![cidr.clone()])
    );

    let b = node.node.clone();
    node.start_kubelet().unwrap();
    assert_eq!(pod_cidr(&node, &b).await.unwrap(), cidr, "B gets A's range");
    wait_for(
        "node B's network in A's range",
        Duration::from_secs(60),
        || async {
            (network_subnets(&node, &network_name(&b)).await == Some(vec![cidr.clone()]))
                .then_some(())
        },
    )
    .await
    .unwrap();
    assert!(node.kubelet_running(), "node B's kubelet runs");
    assert_eq!(network_subnets(&node, &network_name(&a)).await, None);
    let left = node
        .docker
        .list_summaries(&labels::node_selector(&a))
        .await
        .unwrap();
    assert!(left.is_empty(), "A's stopped containers are gone: {left:?}");

    // And B runs pods in the range.
    node.create_pod(json!({
        "metadata": {"name": "next"},
        "spec": {"containers": [{"name": "app", "image": BUSYBOX,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "3600"]}]}
    }))
    .await
    .unwrap();
    let pod = node.wait_ready("next").await.unwrap();
    let ip = pod.status.and_then(|s| s.pod_ip).unwrap();
    let range: minik8s_kubelet::network::Ipv4Net = cidr.parse().unwrap();
    assert!(range.contains(&ip.parse::<std::net::Ipv4Addr>().unwrap()));
}

#[tokio::test]
async fn running_pods_in_the_range_stop_the_kubelet_until_minik8s_reset() {
    let mut node = TestNode::on_private_dockerd().await.unwrap();
    let (a, cidr) = leave_node_behind(&mut node, &["sleep", "3600"], "Always")
        .await
        .unwrap();
    let running: Vec<String> = node
        .docker
        .list_summaries(&labels::node_selector(&a))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    let pause = running
        .iter()
        .find(|n| n.starts_with("k8s_POD_web_"))
        .cloned()
        .expect("web's pause container");

    let config = node.config().unwrap();
    let error = tokio::time::timeout(
        Duration::from_secs(60),
        minik8s_kubelet::run(config, std::future::pending()),
    )
    .await
    .expect("the kubelet stops at once")
    .expect_err("the kubelet cannot make its network");
    let Error::PodCidrInUse(held) = &error else {
        panic!("not the error expected: {error}");
    };
    assert_eq!(held.network, network_name(&a));
    assert_eq!(held.owner, a);
    assert_eq!(held.subnet, cidr);
    // Only the pause container is attached to the network; the app shares its namespace.
    assert_eq!(held.containers, std::slice::from_ref(&pause));
    let host = node.dockerd.as_ref().unwrap().host();
    let reset = format!("minik8s reset --docker-host {host}");
    assert_eq!(held.reset, reset);
    let message = error.to_string();
    for part in [network_name(&a), pause.clone(), format!("`{reset}`")] {
        assert!(message.contains(&part), "{part:?} is not in: {message}");
    }
    // Nothing of A was touched.
    let still: Vec<String> = node
        .docker
        .list_summaries(&labels::node_selector(&a))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(still, running);

    // The command the message gives clears the way (run in a network namespace of its
    // own, so that it takes no other test's iptables chains).
    let ns = NetNs::new().unwrap();
    let out = ns.minik8s(&["reset", "--docker-host", &host]).unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("removed container {pause}")),
        "{}",
        text(&out)
    );
    node.start_kubelet().unwrap();
    let b = node.node.clone();
    wait_for("node B's network", Duration::from_secs(60), || async {
        (network_subnets(&node, &network_name(&b)).await == Some(vec![cidr.clone()])).then_some(())
    })
    .await
    .unwrap();
    assert!(node.kubelet_running());
}

#[tokio::test]
async fn minik8s_reset_removes_a_clusters_leftovers_and_then_finds_nothing() {
    let mut node = TestNode::on_private_dockerd().await.unwrap();
    node.start_kubelet().unwrap();
    let name = node.node.clone();
    let cidr: minik8s_kubelet::network::Ipv4Net =
        pod_cidr(&node, &name).await.unwrap().parse().unwrap();
    node.create_pod(json!({
        "metadata": {"name": "web"},
        "spec": {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": BUSYBOX,
                "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}
    }))
    .await
    .unwrap();
    node.wait_ready("web").await.unwrap();
    // As a cluster is left: the kubelet stopped, its pods running.
    node.stop_kubelet();
    let containers = node.containers(None).await.unwrap();
    assert_eq!(containers.len(), 2, "web's pause and app containers");

    // The host side, in a namespace of its own, made by the kubelet's own code: the
    // chains, the jumps to them, and a route to another node's pods.
    let ns = NetNs::new().unwrap();
    // A link to the other node: a veth pair, both ends in the namespace.
    for args in [
        &["link", "add", "mk0", "type", "veth", "peer", "name", "mk1"][..],
        &["addr", "add", "198.51.100.1/24", "dev", "mk0"],
        &["link", "set", "mk0", "up"],
        &["link", "set", "mk1", "up"],
    ] {
        ns.run("ip", args).unwrap();
    }
    let cluster = minik8s_kubelet::network::default_cluster_cidr(cidr);
    let gateway = HostGateway::new(
        std::sync::Arc::new(NsHost(ns.0.clone())),
        &name,
        Some("198.51.100.1".parse().unwrap()),
        cidr,
        cluster,
    );
    gateway.ensure_rules().await.unwrap();
    // The next /24 of the cluster: another node's.
    let other_cidr = format!(
        "{}/24",
        std::net::Ipv4Addr::from(u32::from(cidr.network()) + 256)
    );
    let other: Node = serde_json::from_value(json!({
        "metadata": {"name": "other"},
        "spec": {"podCIDR": other_cidr},
        "status": {"addresses": [{"type": "InternalIP", "address": "198.51.100.2"}]}
    }))
    .unwrap();
    gateway
        .sync_routes(&BTreeMap::from([("other".to_string(), other)]))
        .await
        .unwrap();
    let routes = ns
        .run("ip", &["-4", "-o", "route", "show", "proto", ROUTE_PROTO])
        .unwrap();
    assert!(routes.starts_with(&other_cidr), "{routes}");
    assert!(
        ns.iptables("filter")
            .unwrap()
            .contains("-N MINIK8S-FORWARD")
    );
    assert!(
        ns.iptables("nat")
            .unwrap()
            .contains("-A POSTROUTING -j MINIK8S-POSTROUTING")
    );
    let data = node.root.path().join("data");
    std::fs::create_dir_all(data.join("store")).unwrap();

    let host = node.dockerd.as_ref().unwrap().host();
    let data_dir = data.to_str().unwrap();
    let args = [
        "reset",
        "--docker-host",
        &host,
        "--data",
        "--data-dir",
        data_dir,
    ];
    let out = ns.minik8s(&args).unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    for c in &containers {
        assert!(
            said.contains(&format!("removed container {}", c.name)),
            "{said}"
        );
    }
    for line in [
        format!(
            "removed network {} ({cidr}, node {name})",
            network_name(&name)
        ),
        format!("removed route {other_cidr} via 198.51.100.2"),
        "removed iptables jump filter FORWARD -> MINIK8S-FORWARD".to_string(),
        "removed iptables jump nat POSTROUTING -> MINIK8S-POSTROUTING".to_string(),
        "removed iptables chain filter MINIK8S-FORWARD".to_string(),
        "removed iptables chain nat MINIK8S-POSTROUTING".to_string(),
        format!("removed data directory {data_dir}"),
    ] {
        assert!(said.contains(&line), "{line:?} is not in:\n{said}");
    }

    // All gone.
    assert!(
        node.docker
            .list_with_label(labels::NODE)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(network_subnets(&node, &network_name(&name)).await, None);
    assert_eq!(
        ns.run("ip", &["-4", "-o", "route", "show", "proto", ROUTE_PROTO])
            .unwrap(),
        ""
    );
    for table in ["filter", "nat"] {
        let rules = ns.iptables(table).unwrap();
        assert!(!rules.contains("MINIK8S"), "{rules}");
    }
    assert!(!data.exists());

    // A second run has nothing to do.
    let again = ns.minik8s(&args).unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        "nothing to remove: no MiniK8s container, network, route or iptables chain is left\n"
    );
}

#[tokio::test]
async fn minik8s_up_stops_on_sigterm() {
    let claim = CidrClaim::acquire().unwrap();
    let dockerd = PrivateDockerd::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port().unwrap());
    let node = format!("up-term-{}", std::process::id());
    let _rules = minik8s_tests::kubelet::ProxyRulesGuard(node.clone());
    let log = dir.path().join("up.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut up = Command::new(cmd_binary("minik8s").unwrap())
        .args(["up", "--listen", &listen, "--node-name", &node])
        .args(["--kubelet-port", &free_port().unwrap().to_string()])
        .args(["--cluster-cidr", &claim.cluster_cidr()])
        .args(["--docker-host", &dockerd.host()])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--kubeconfig")
        .arg(dir.path().join("kubeconfig"))
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let client = Client::new(Config::new(format!("http://{listen}").parse().unwrap())).unwrap();
    let nodes: Api<Node> = Api::all(client);
    let ready = wait_for("the node Ready", Duration::from_secs(60), || async {
        let n = nodes.get_opt(&node).await.ok()??;
        n.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(())
    })
    .await;
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    if let Err(e) = ready {
        let _ = up.kill();
        let _ = up.wait();
        panic!("{e}\n{}", said());
    }

    let term = Command::new("kill")
        .args(["-TERM", &up.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exited = wait_for("minik8s up to exit", Duration::from_secs(20), || {
        let status = up.try_wait().ok().flatten();
        async move { status }
    })
    .await;
    let status = match exited {
        Ok(status) => status,
        Err(e) => {
            let _ = up.kill();
            let _ = up.wait();
            panic!("{e}\n{}", said());
        }
    };
    assert!(status.success(), "{status}\n{}", said());
    assert!(said().contains("kubelet stopped"), "{}", said());
    assert!(
        std::net::TcpStream::connect(&listen).is_err(),
        "the API server is shut down"
    );
}

/// The process's output and errors, for messages.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

static NAMESPACES: AtomicUsize = AtomicUsize::new(0);

/// A network namespace of the test's own; deleted when dropped.
struct NetNs(String);

impl NetNs {
    fn new() -> anyhow::Result<NetNs> {
        let name = format!(
            "mk8s-t-{}-{}",
            std::process::id(),
            NAMESPACES.fetch_add(1, Ordering::SeqCst)
        );
        let status = Command::new("ip").args(["netns", "add", &name]).status()?;
        anyhow::ensure!(status.success(), "ip netns add {name} failed");
        Ok(NetNs(name))
    }

    /// Runs a program in the namespace; its stdout, or an error with its output.
    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let out = self.output(Path::new(program), args)?;
        anyhow::ensure!(out.status.success(), "{program} {args:?}: {}", text(&out));
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn output(&self, program: &Path, args: &[&str]) -> anyhow::Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .arg(program)
            .args(args)
            .env("RUST_LOG", "warn")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {} in {}", program.display(), self.0))
    }

    fn minik8s(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.output(&cmd_binary("minik8s")?, args)
    }

    fn iptables(&self, table: &str) -> anyhow::Result<String> {
        self.run("iptables", &["-w", "5", "-t", table, "-S"])
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The kubelet's commands, run in a network namespace.
struct NsHost(String);

#[async_trait::async_trait]
impl Host for NsHost {
    async fn run(&self, program: &str, args: &[String]) -> Result<String, String> {
        let out = tokio::process::Command::new("ip")
            .args(["netns", "exec", &self.0, program])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}
