//! A node for end-to-end tests on real Docker: an in-process API server (with its
//! scheduler and pod CIDR allocator) and a kubelet, in-process or as a child process.
//!
//! Tests run in parallel, in several processes, on one Docker, which refuses bridge
//! networks with overlapping subnets: each node gets a cluster CIDR `10.X.0.0/16` of its
//! own, claimed with a file that names the claiming process. Everything a node created in
//! Docker (containers labelled with its name, its network) is removed when it is dropped.
//!
//! A node may instead run on a [`PrivateDockerd`] of its own ([`TestNode::on_private_dockerd`]),
//! which a test may stop and start again, and further nodes may join the first one's API
//! server, each on its own private daemon ([`TestNode::join`]): several nodes on one
//! machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use minik8s_api::k8s_openapi::api::core::v1::Pod;
use minik8s_apiserver::controllers::ControllerConfig;
use minik8s_apiserver::services::ServiceRanges;
use minik8s_client::{Api, Client, Config, ListParams, LogParams};
use minik8s_kubelet::KubeletConfig;
use minik8s_kubelet::labels;
use minik8s_kubelet::runtime::{ContainerInfo, ContainerRuntime, ContainerState, DockerRuntime};
use serde_json::{Value, json};

use crate::apiserver::{Backend, TestApiServer};
pub use crate::binaries::{cmd_binary, kubelet_binary};
use crate::dockerd::PrivateDockerd;

/// The test image built by `deploy/images.sh`.
pub const BUSYBOX: &str = "minik8s/busybox:latest";

/// The repository's root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the repository")
        .to_path_buf()
}

/// Builds the pause and test images once per test run (the script itself skips what
/// exists and locks against other processes): each run starts with them there, also
/// after they were removed.
pub fn ensure_images() -> anyhow::Result<()> {
    let stamp = std::env::temp_dir()
        .join("minik8s-test-stamps")
        .join("images");
    crate::once::once_per_run(&stamp, || {
        let output = Command::new(repo_root().join("deploy/images.sh"))
            .output()
            .context("running deploy/images.sh")?;
        if !output.status.success() {
            bail!(
                "deploy/images.sh failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    })
}

fn docker(args: &[&str]) -> Option<String> {
    let out = Command::new("docker")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The second octets X of the 10.X.0.0/16 ranges Docker networks already use.
fn octets_in_use() -> Vec<u8> {
    let ids = docker(&["network", "ls", "-q"]).unwrap_or_default();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut args = vec![
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ];
    args.extend(ids);
    docker(&args)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|subnet| {
            let mut parts = subnet.split('.');
            (parts.next() == Some("10"))
                .then(|| parts.next()?.parse().ok())
                .flatten()
        })
        .collect()
}

/// A cluster CIDR `10.X.0.0/16` no other test process uses.
pub struct CidrClaim {
    pub octet: u8,
    path: PathBuf,
}

impl CidrClaim {
    pub fn acquire() -> anyhow::Result<CidrClaim> {
        let dir = std::env::temp_dir().join("minik8s-test-cidrs");
        std::fs::create_dir_all(&dir)?;
        let used = octets_in_use();
        for octet in 100u8..250 {
            if used.contains(&octet) {
                continue;
            }
            let path = dir.join(octet.to_string());
            // A claim of a process that is gone is stale: so are its routes and rules.
            if let Ok(pid) = std::fs::read_to_string(&path)
                && !Path::new("/proc").join(pid.trim()).exists()
            {
                remove_host_network_leftovers(&format!("10.{octet}.0.0/16"));
                let _ = std::fs::remove_file(&path);
            }
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    use std::io::Write;
                    write!(file, "{}", std::process::id())?;
                    let claim = CidrClaim { octet, path };
                    // Whatever a kubelet of an earlier claim added after its cleanup.
                    remove_host_network_leftovers(&claim.cluster_cidr());
                    return Ok(claim);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
        }
        bail!("no free 10.X.0.0/16 range for a test cluster")
    }

    pub fn cluster_cidr(&self) -> String {
        format!("10.{}.0.0/16", self.octet)
    }

    /// The claim's service cluster IPs, `10.251.X.0/24`: iptables is machine-wide, so the
    /// proxy rules of test clusters running side by side must never match one another's
    /// addresses (outside every cluster CIDR, the private daemons' `10.250` bridges and
    /// Kubernetes' default `10.96.0.0/16`).
    pub fn service_cidr(&self) -> String {
        format!("10.251.{}.0/24", self.octet)
    }

    /// The claim's node ports: ten of its own, from 30000 up.
    /// The `kube-dns` service's address in the claim's service range, `10.251.X.10`: what
    /// the API server makes it and the kubelets' `--cluster-dns`.
    pub fn cluster_dns(&self) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::new(10, 251, self.octet, 10)
    }

    pub fn node_ports(&self) -> (u16, u16) {
        let first = 30000 + (u16::from(self.octet) - 100) * 10;
        (first, first + 9)
    }
}

impl Drop for CidrClaim {
    fn drop(&mut self) {
        remove_host_network_leftovers(&self.cluster_cidr());
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes the routes and iptables rules kubelets made for the cluster `cidr` (they
/// leave them when they stop, for the pods' sake); the kubelet's chains and the jumps to
/// them stay, shared with other clusters on this machine.
pub fn remove_host_network_leftovers(cidr: &str) {
    use minik8s_kubelet::network::{ROUTE_PROTO, cluster_rules};
    let Ok(cluster) = cidr.parse() else { return };
    let run = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    for rule in cluster_rules(cluster)
        .into_iter()
        .chain(minik8s_kubelet::network::superseded_rules(cluster))
    {
        let mut args = vec!["-w", "5", "-t", rule.table, "-D", rule.chain];
        args.extend(rule.args.iter().map(String::as_str));
        // Kubelets racing each other may have added a rule twice.
        for _ in 0..5 {
            if run("iptables", &args).is_none() {
                break;
            }
        }
    }
    // Masquerading rules of bridges that are gone (a test adds Docker's for its private
    // daemons' bridges, and may have been killed before it removed them).
    let prefix = format!(
        "-A POSTROUTING -s {}.",
        cidr.rsplitn(3, '.').last().unwrap_or(cidr)
    );
    let nat = run("iptables", &["-w", "5", "-t", "nat", "-S", "POSTROUTING"]).unwrap_or_default();
    for line in nat
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.ends_with("-j MASQUERADE"))
    {
        let bridge = line.split_whitespace().skip_while(|w| *w != "-o").nth(1);
        if bridge.is_some_and(|b| !Path::new("/sys/class/net").join(b).exists()) {
            let mut args = vec!["-w", "5", "-t", "nat", "-D"];
            args.extend(line.split_whitespace().skip(1));
            let _ = run("iptables", &args);
        }
    }
    let routes = run(
        "ip",
        &[
            "-4",
            "-o",
            "route",
            "show",
            "root",
            cidr,
            "proto",
            ROUTE_PROTO,
        ],
    )
    .unwrap_or_default();
    for dst in routes.lines().filter_map(|l| l.split_whitespace().next()) {
        let _ = run("ip", &["route", "del", dst, "proto", ROUTE_PROTO]);
    }
}

/// Removes a node's proxy rules from the host's nat table (a kubelet leaves them when it
/// stops, for the pods' sake).
pub fn remove_proxy_rules(node: &str) {
    use minik8s_kubelet::proxy::{Names, removal_input, rules::parse_save};
    let Some(save) = iptables_save_nat() else {
        return;
    };
    if let Some(input) = removal_input(&parse_save(&Names::new(node), &save)) {
        iptables_restore(&input);
    }
}

/// Removes a node's proxy rules when dropped, also when the test fails: for kubelets
/// that are not a [`TestNode`]'s (`minik8s up`).
pub struct ProxyRulesGuard(pub String);

impl Drop for ProxyRulesGuard {
    fn drop(&mut self) {
        remove_proxy_rules(&self.0);
    }
}

fn iptables_save_nat() -> Option<String> {
    let out = Command::new("iptables-save")
        .args(["-t", "nat"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn iptables_restore(input: &str) {
    use std::io::Write;
    let Ok(mut child) = Command::new("iptables-restore")
        .args(["--noflush", "-w", "5"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return;
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let _ = child.wait();
}

/// Removes what a node left in Docker (its containers and its network), and its proxy
/// rules.
pub fn remove_docker_leftovers(node: &str) {
    remove_proxy_rules(node);
    let filter = format!("label={}={node}", labels::NODE);
    if let Some(ids) = docker(&["ps", "-aq", "--filter", &filter]) {
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids);
            let _ = docker(&args);
        }
    }
    let _ = docker(&["network", "rm", &minik8s_kubelet::network_name(node)]);
}

/// Removes what test nodes of processes that are gone (killed before their guards ran)
/// left in Docker. Test node names are `kl-{pid}-{n}`.
pub fn sweep_dead_test_nodes() {
    sweep_test_nodes(false);
}

/// [`sweep_dead_test_nodes`], and with `own_pid` also the `kl-` nodes named after this
/// process's pid: before this process names its first node, those are an earlier
/// process's that had the same pid (pids wrap around) and was killed.
fn sweep_test_nodes(own_pid: bool) {
    let own = std::process::id().to_string();
    let gone = |pid: &str| !Path::new("/proc").join(pid).exists();
    let gone_kl = |pid: &str| (own_pid && pid == own) || gone(pid);
    let format = format!("{{{{.Label \"{}\"}}}}", labels::NODE);
    let from_containers = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={}", labels::NODE),
        "--format",
        &format,
    ])
    .unwrap_or_default();
    let from_networks = docker(&[
        "network",
        "ls",
        "--filter",
        "name=minik8s-kl-",
        "--format",
        "{{.Name}}",
    ])
    .unwrap_or_default();
    let nodes: std::collections::BTreeSet<String> = from_containers
        .lines()
        .map(str::to_string)
        .chain(
            from_networks
                .lines()
                .filter_map(|n| n.strip_prefix("minik8s-").map(str::to_string)),
        )
        .collect();
    for node in nodes {
        let Some(pid) = node
            .strip_prefix("kl-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if gone_kl(pid) {
            remove_docker_leftovers(&node);
        }
    }
    // Proxy rules of test nodes whose process is gone, found by their jumps' comments:
    // `kl-{pid}-{n}`, and the `minik8s up` tests' `idle-up-{pid}` and `up-term-{pid}`.
    let save = iptables_save_nat().unwrap_or_default();
    for node in minik8s_kubelet::proxy::nodes_with_rules(&save) {
        let (pid, gone): (_, &dyn Fn(&str) -> bool) = match node.strip_prefix("kl-") {
            Some(rest) => (rest.split('-').next(), &gone_kl),
            None => (
                node.strip_prefix("idle-up-")
                    .or_else(|| node.strip_prefix("up-term-")),
                &gone,
            ),
        };
        if let Some(pid) = pid
            && !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && gone(pid)
        {
            remove_proxy_rules(&node);
        }
    }
}

enum Running {
    InProcess {
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<minik8s_kubelet::Result<()>>,
    },
    Process(Child),
}

/// An API server and one kubelet node on Docker.
pub struct TestNode {
    /// Shared by the nodes that joined this one.
    pub api: Arc<TestApiServer>,
    pub client: Client,
    pub node: String,
    pub root: tempfile::TempDir,
    pub docker: DockerRuntime,
    kubelet: Option<Running>,
    /// The node's own Docker daemon, if it is not on the system's. Dropped after the
    /// kubelet is stopped.
    pub dockerd: Option<PrivateDockerd>,
    claim: Arc<CidrClaim>,
}

static NODES: AtomicUsize = AtomicUsize::new(0);

impl TestNode {
    /// Starts the API server, and a kubelet in this process.
    pub async fn start() -> anyhow::Result<TestNode> {
        let mut node = TestNode::without_kubelet().await?;
        node.start_kubelet()?;
        Ok(node)
    }

    /// Starts the API server only; start a kubelet with [`TestNode::start_kubelet`] or
    /// [`TestNode::start_kubelet_process`].
    pub async fn without_kubelet() -> anyhow::Result<TestNode> {
        ensure_images()?;
        sweep_before_first_node();
        let docker = DockerRuntime::connect(None).await.context(
            "connecting to Docker (is dockerd running? deploy/install-deps.sh starts it)",
        )?;
        let claim = CidrClaim::acquire()?;
        let cidr = claim.cluster_cidr().parse()?;
        let service_cidr = claim.service_cidr().parse()?;
        let api = TestApiServer::start_with(Backend::Embedded, None, |c| {
            let mut controllers = c
                .controllers
                .clone()
                .unwrap_or_else(ControllerConfig::default);
            controllers.cluster_cidr = cidr;
            c.controllers = Some(controllers);
            c.service_ranges = ServiceRanges {
                cluster_ips: service_cidr,
                node_ports: claim.node_ports(),
            };
        })
        .await?;
        let client = Client::new(Config::new(api.url.parse()?))?;
        let node = next_node_name();
        Ok(TestNode {
            api: Arc::new(api),
            client,
            node,
            root: tempfile::tempdir()?,
            docker,
            kubelet: None,
            dockerd: None,
            claim: Arc::new(claim),
        })
    }

    /// Starts the API server and a private Docker daemon for the node, without a kubelet:
    /// a node whose Docker a test may stop and start.
    pub async fn on_private_dockerd() -> anyhow::Result<TestNode> {
        let mut node = TestNode::without_kubelet().await?;
        let dockerd = PrivateDockerd::start().await?;
        node.docker = connect(&dockerd).await?;
        node.dockerd = Some(dockerd);
        Ok(node)
    }

    /// Another node of this node's cluster, on a private Docker daemon of its own; no
    /// kubelet yet.
    pub async fn join(&self) -> anyhow::Result<TestNode> {
        let dockerd = PrivateDockerd::start().await?;
        Ok(TestNode {
            api: self.api.clone(),
            client: self.client.clone(),
            node: next_node_name(),
            root: tempfile::tempdir()?,
            docker: connect(&dockerd).await?,
            kubelet: None,
            dockerd: Some(dockerd),
            claim: self.claim.clone(),
        })
    }

    /// The kubelet settings of tests: short intervals, a 1 s back-off base, a free port.
    pub fn config(&self) -> anyhow::Result<KubeletConfig> {
        let mut config = KubeletConfig::new(Config::new(self.api.url.parse()?), &self.node);
        config.root_dir = self.root.path().join("kubelet");
        config.port = 0;
        config.heartbeat_interval = Duration::from_secs(2);
        config.resync_interval = Duration::from_secs(2);
        config.backoff_base = Duration::from_secs(1);
        config.backoff_max = Duration::from_secs(10);
        config.pod_cidr_timeout = Duration::from_secs(60);
        config.image_pull_timeout = Duration::from_secs(30);
        config.docker_socket = self.dockerd.as_ref().map(PrivateDockerd::host);
        config.cluster_dns = Some(self.claim.cluster_dns());
        Ok(config)
    }

    pub fn start_kubelet(&mut self) -> anyhow::Result<()> {
        self.stop_kubelet();
        let config = self.config()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(minik8s_kubelet::run(config, async move {
            let _ = stopped.await;
        }));
        self.kubelet = Some(Running::InProcess { stop, task });
        Ok(())
    }

    /// Runs the kubelet binary as a child process with the test settings.
    pub fn start_kubelet_process(&mut self) -> anyhow::Result<()> {
        let binary = kubelet_binary()?;
        self.start_kubelet_binary(&binary)
    }

    /// Runs this kubelet binary (a benchmark's release build, say) as a child process
    /// with the test settings.
    pub fn start_kubelet_binary(&mut self, binary: &Path) -> anyhow::Result<()> {
        self.stop_kubelet();
        let config = self.config()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("kubelet.log"))?;
        let child = Command::new(binary)
            .args(["--server", &self.api.url, "--node-name", &self.node])
            .arg("--root-dir")
            .arg(&config.root_dir)
            .args(["--port", "0", "--heartbeat-interval", "2s"])
            .args(["--resync-interval", "2s", "--backoff-base", "1s"])
            .args(["--backoff-max", "10s", "--pod-cidr-timeout", "60s"])
            .arg("--cluster-dns")
            .arg(self.claim.cluster_dns().to_string())
            .args(
                config
                    .docker_socket
                    .iter()
                    .flat_map(|s| ["--docker-socket", s.as_str()]),
            )
            .env_remove("DOCKER_HOST")
            .env_remove("KUBECONFIG")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the kubelet binary")?;
        self.kubelet = Some(Running::Process(child));
        Ok(())
    }

    /// What the kubelet child process logged.
    pub fn process_log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("kubelet.log")).unwrap_or_default()
    }

    /// Kills the kubelet child process with SIGKILL: nothing of it gets to clean up.
    pub fn kill_kubelet_process(&mut self) -> anyhow::Result<()> {
        match self.kubelet.take() {
            Some(Running::Process(mut child)) => {
                child.kill()?;
                child.wait()?;
                Ok(())
            }
            other => {
                self.kubelet = other;
                bail!("the kubelet is not a child process")
            }
        }
    }

    /// The kubelet child process's pid, if it runs as one.
    pub fn kubelet_pid(&self) -> Option<u32> {
        match &self.kubelet {
            Some(Running::Process(child)) => Some(child.id()),
            _ => None,
        }
    }

    /// Whether the kubelet still runs (has not returned, crashed or exited).
    pub fn kubelet_running(&mut self) -> bool {
        match &mut self.kubelet {
            Some(Running::InProcess { task, .. }) => !task.is_finished(),
            Some(Running::Process(child)) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the kubelet, leaving its containers running.
    pub fn stop_kubelet(&mut self) {
        match self.kubelet.take() {
            Some(Running::InProcess { stop, task }) => {
                let _ = stop.send(());
                task.abort();
            }
            Some(Running::Process(mut child)) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            None => {}
        }
    }

    /// X of this node's cluster CIDR 10.X.0.0/16.
    pub fn node_octet(&self) -> u8 {
        self.claim.octet
    }

    /// This cluster's CIDR, `10.X.0.0/16`.
    pub fn cluster_cidr(&self) -> String {
        self.claim.cluster_cidr()
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates a pod in `default`, bound to this node.
    pub async fn create_pod(&self, mut pod: Value) -> anyhow::Result<Pod> {
        pod["apiVersion"] = json!("v1");
        pod["kind"] = json!("Pod");
        pod["spec"]["nodeName"] = json!(self.node);
        let pod: Pod = serde_json::from_value(pod)?;
        Ok(self.pods().create(&pod).await?)
    }

    /// Waits until the pod satisfies `check`; the error shows the pod as last seen.
    pub async fn wait_pod(
        &self,
        name: &str,
        what: &str,
        deadline: Duration,
        check: impl Fn(&Pod) -> bool,
    ) -> anyhow::Result<Pod> {
        let api = self.pods();
        let end = tokio::time::Instant::now() + deadline;
        let mut last = None;
        loop {
            if let Ok(Some(pod)) = api.get_opt(name).await {
                if check(&pod) {
                    return Ok(pod);
                }
                last = Some(pod);
            }
            if tokio::time::Instant::now() >= end {
                bail!(
                    "timed out after {deadline:?} waiting for pod {name} to be {what}; last seen: {}",
                    serde_json::to_string_pretty(&last.map(|p| p.status)).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the pod to run with every container ready.
    pub async fn wait_ready(&self, name: &str) -> anyhow::Result<Pod> {
        self.wait_pod(name, "ready", Duration::from_secs(60), |p| {
            condition(p, "Ready") == Some("True")
        })
        .await
    }

    /// Waits until the pod object is gone.
    pub async fn wait_gone(&self, name: &str, deadline: Duration) -> anyhow::Result<()> {
        let api = self.pods();
        crate::wait_for(&format!("pod {name} to be gone"), deadline, || async {
            matches!(api.get_opt(name).await, Ok(None)).then_some(())
        })
        .await
    }

    /// The pod's log, through the API server (which asks this kubelet).
    pub async fn logs(&self, name: &str, container: &str) -> anyhow::Result<String> {
        let params = LogParams {
            container: Some(container.to_string()),
            ..LogParams::default()
        };
        Ok(self.pods().logs(name, &params).await?)
    }

    /// Waits until the container's log contains `text`.
    pub async fn wait_log(
        &self,
        name: &str,
        container: &str,
        text: &str,
    ) -> anyhow::Result<String> {
        let end = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.logs(name, container).await.unwrap_or_default();
            if log.contains(text) {
                return Ok(log);
            }
            if tokio::time::Instant::now() >= end {
                bail!("the log of {name}/{container} never showed {text:?}; it is:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// This node's containers in Docker, of one pod or all.
    pub async fn containers(&self, pod_uid: Option<&str>) -> anyhow::Result<Vec<ContainerInfo>> {
        let selector = match pod_uid {
            Some(uid) => labels::pod_selector(&self.node, uid),
            None => labels::node_selector(&self.node),
        };
        Ok(self.docker.list_containers(&selector).await?)
    }

    /// The id of the pod's running app container `name`, once there is one.
    pub async fn running_container(&self, pod: &Pod, name: &str) -> anyhow::Result<String> {
        let uid = pod.metadata.uid.clone().context("the pod has a uid")?;
        crate::wait_for(
            &format!("container {name} running"),
            Duration::from_secs(60),
            || async {
                self.containers(Some(&uid))
                    .await
                    .ok()?
                    .into_iter()
                    .filter(|c| c.state == ContainerState::Running)
                    .find(|c| {
                        labels::ContainerKey::from_labels(&c.labels)
                            .is_some_and(|k| k.role == labels::Role::App && k.container == name)
                    })
                    .map(|c| c.id)
            },
        )
        .await
    }

    /// Events about a pod, oldest first, as `reason: message`.
    pub async fn events(&self, pod: &str) -> anyhow::Result<Vec<String>> {
        let api: Api<minik8s_api::k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.client.clone(), "default");
        let list = api
            .list(&ListParams::default().fields(&format!("involvedObject.name={pod}")))
            .await?;
        let mut events = list.items;
        events.sort_by(|a, b| a.first_timestamp.cmp(&b.first_timestamp));
        Ok(events
            .into_iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.reason.unwrap_or_default(),
                    e.message.unwrap_or_default()
                )
            })
            .collect())
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.stop_kubelet();
        // A private daemon takes everything with it when it is dropped; the proxy's rules
        // are the host's.
        if self.dockerd.is_none() {
            remove_docker_leftovers(&self.node);
        } else {
            remove_proxy_rules(&self.node);
        }
    }
}

/// Test node names are `kl-{pid}-{n}`: unique, and a sweep knows the owning process.
fn next_node_name() -> String {
    sweep_before_first_node();
    format!(
        "kl-{}-{}",
        std::process::id(),
        NODES.fetch_add(1, Ordering::SeqCst)
    )
}

/// Once per process, before its first node name: removes what killed test processes
/// left, also one that had this pid, so no name handed out here has leftovers in Docker
/// (and their networks free their ranges before a [`CidrClaim`]).
fn sweep_before_first_node() {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| sweep_test_nodes(true));
}

async fn connect(dockerd: &PrivateDockerd) -> anyhow::Result<DockerRuntime> {
    DockerRuntime::connect(Some(&dockerd.host()))
        .await
        .context("connecting to the private Docker daemon")
}

/// A pod condition's status.
pub fn condition<'a>(pod: &'a Pod, kind: &str) -> Option<&'a str> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.as_str())
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The status of one container (app or init).
pub fn container_status<'a>(
    pod: &'a Pod,
    name: &str,
) -> Option<&'a minik8s_api::k8s_openapi::api::core::v1::ContainerStatus> {
    let s = pod.status.as_ref()?;
    s.container_statuses
        .iter()
        .flatten()
        .chain(s.init_container_statuses.iter().flatten())
        .find(|c| c.name == name)
}

pub fn restart_count(pod: &Pod, name: &str) -> i32 {
    container_status(pod, name).map_or(0, |c| c.restart_count)
}

pub fn waiting_reason<'a>(pod: &'a Pod, name: &str) -> Option<&'a str> {
    container_status(pod, name)?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .as_deref()
}
