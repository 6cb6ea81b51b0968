//! `pod-bench`: measures the kubelet on real Docker and prints a table.
//!
//! The API server and the kubelet run as their own processes (the `apiserver` and
//! `kubelet` binaries next to this one), so the kubelet's memory and CPU are its own.
//! Pod start latency stands beside a baseline from the same run: raw Docker, through its
//! API, creating and starting the same pause and app containers a pod is made of.
//!
//!     cargo build --release -p minik8s-cmd -p minik8s-tests --bins
//!     target/release/pod-bench [--pods 50] [--concurrency 8] [--idle-pods 100] [--out FILE]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListNetworksOptions, RemoveContainerOptions,
};
use clap::Parser;
use futures::StreamExt;
use minik8s_tests::bench::{free_port, percentile_ms, sibling_binary};
use minik8s_tests::kubelet::{BUSYBOX, ensure_images, remove_docker_leftovers};
use minik8s_tests::proc::{self, CpuWindow};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const NODE: &str = "bench-node";
/// The API server's default cluster CIDR (its binary has no flag for it).
const CLUSTER_CIDR: (u32, u8) = (0x0AF4_0000, 16);
/// Label of the baseline's containers, so that they can be found and removed.
const RAW_LABEL: &str = "io.minik8s.bench";
const RAW_VALUE: &str = "pod-bench";

#[derive(Parser, Debug)]
struct Args {
    /// Pods per start-latency measurement.
    #[arg(long, default_value_t = 50)]
    pods: usize,
    /// Pods started at a time in the concurrent measurement.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Running pods (each with a 10 s exec liveness probe) for the memory and idle CPU
    /// measurement.
    #[arg(long, default_value_t = 100)]
    idle_pods: usize,
    /// Give the idle pods no probes (to separate the probes' cost from the rest).
    #[arg(long)]
    no_probes: bool,
    /// Seconds over which idle CPU is measured.
    #[arg(long, default_value_t = 30)]
    idle_seconds: u64,
    /// Bind pods to the node in the pod itself (spec.nodeName) instead of through the
    /// API server's scheduler.
    #[arg(long)]
    bind_directly: bool,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/bench/pods.json")]
    out: PathBuf,
}

/// Start latencies of one measurement.
struct Samples {
    name: String,
    lat: Vec<Duration>,
    elapsed: Duration,
}

impl Samples {
    fn pct(&self, p: f64) -> f64 {
        percentile_ms(&self.lat, p)
    }
    fn rate(&self) -> f64 {
        self.lat.len() as f64 / self.elapsed.as_secs_f64()
    }
    fn json(&self) -> Value {
        json!({"name": self.name, "count": self.lat.len(), "pods_per_second": self.rate(),
               "p50_ms": self.pct(0.5), "p99_ms": self.pct(0.99)})
    }
}

// ---------------------------------------------------------------------------------------
// Processes

/// The Docker daemon's pid, if it runs here.
fn dockerd_pid() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (comm.trim() == "dockerd").then_some(pid)
    })
}

/// The API server and the kubelet, and everything they and the baseline made in Docker;
/// all of it is stopped and removed when dropped, on success or on error.
struct Cluster {
    apiserver: Child,
    kubelet: Option<Child>,
    url: String,
    pod_cidr: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn log_tail(&self, file: &str) -> String {
        let log = std::fs::read_to_string(self.dir.path().join(file)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn kubelet_pid(&self) -> u32 {
        self.kubelet.as_ref().map_or(0, Child::id)
    }

    fn stop_kubelet(&mut self) {
        if let Some(mut child) = self.kubelet.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_kubelet();
        remove_docker_leftovers(NODE);
        remove_raw_containers_cli();
        let _ = self.apiserver.kill();
        let _ = self.apiserver.wait();
    }
}

fn remove_raw_containers_cli() {
    let filter = format!("label={RAW_LABEL}={RAW_VALUE}");
    let Ok(out) = Command::new("docker")
        .args(["ps", "-aq", "--filter", &filter])
        .output()
    else {
        return;
    };
    let ids = String::from_utf8_lossy(&out.stdout).into_owned();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v"])
            .args(ids)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------------------
// Networks

fn parse_cidr(cidr: &str) -> Option<(u32, u8)> {
    let (addr, len) = cidr.split_once('/')?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    (len <= 32).then_some((u32::from(addr), len))
}

fn overlaps(a: (u32, u8), b: (u32, u8)) -> bool {
    let len = a.1.min(b.1);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    a.0 & mask == b.0 & mask
}

/// A /24 of the cluster CIDR that no Docker network overlaps, and the networks that
/// overlap the cluster CIDR.
async fn free_pod_cidr(docker: &Docker) -> anyhow::Result<(String, Vec<String>)> {
    let networks = docker
        .list_networks(None::<ListNetworksOptions>)
        .await
        .context("listing Docker networks")?;
    let own = minik8s_kubelet::network_name(NODE);
    let mut taken = Vec::new();
    let mut overlapping = Vec::new();
    let mut reuse = None;
    for n in networks {
        let name = n.name.unwrap_or_default();
        for c in n.ipam.and_then(|i| i.config).unwrap_or_default() {
            if let Some(net) = c.subnet.as_deref().and_then(parse_cidr) {
                // The node's network of an earlier run, which Docker would not remove
                // (it can keep a stale endpoint): the kubelet reuses it as it is.
                if name == own && net.1 == 24 && overlaps(net, CLUSTER_CIDR) {
                    reuse = Some(format!("{}/24", std::net::Ipv4Addr::from(net.0)));
                    continue;
                }
                if overlaps(net, CLUSTER_CIDR) {
                    overlapping.push(format!("{name} {}", c.subnet.unwrap_or_default()));
                }
                taken.push(net);
            }
        }
    }
    if let Some(cidr) = reuse {
        return Ok((cidr, overlapping));
    }
    for third in 0..=255u32 {
        let candidate = (CLUSTER_CIDR.0 | (third << 8), 24);
        if !taken.iter().any(|t| overlaps(*t, candidate)) {
            let ip = std::net::Ipv4Addr::from(candidate.0);
            return Ok((format!("{ip}/24"), overlapping));
        }
    }
    bail!(
        "every /24 of the cluster CIDR 10.244.0.0/16 overlaps a Docker network: {}",
        overlapping.join(", ")
    )
}

// ---------------------------------------------------------------------------------------
// The API

async fn expect(resp: reqwest::Response, codes: &[u16]) -> anyhow::Result<Value> {
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    if !codes.contains(&status) {
        bail!("expected {codes:?}, got {status}: {body}");
    }
    Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn pod(name: &str, bind: bool, probe: bool) -> Value {
    let mut container = json!({"name": "app", "image": BUSYBOX,
        "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]});
    if probe {
        container["livenessProbe"] = json!({"exec": {"command": ["true"]},
            "periodSeconds": 10, "timeoutSeconds": 5});
    }
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "pod-bench"}},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 1}});
    if bind {
        pod["spec"]["nodeName"] = json!(NODE);
    }
    pod
}

/// Every container of the pod has started (its status is `running`).
fn all_running(pod: &Value) -> bool {
    let want = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    want > 0 && statuses.len() == want && statuses.iter().all(|s| s["state"]["running"].is_object())
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Instant>>>>;

/// Watches the pods of `default` and tells each waiter when its pod first shows every
/// container running.
async fn watch_started(http: &reqwest::Client, url: &str) -> anyhow::Result<Waiters> {
    let pods = format!("{url}/api/v1/namespaces/default/pods");
    let list = expect(http.get(&pods).send().await?, &[200]).await?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let resp = http
        .get(format!("{pods}?watch=true&resourceVersion={rv}"))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("watch: {}", resp.status());
    }
    let waiters: Waiters = Arc::default();
    let w = waiters.clone();
    tokio::spawn(async move {
        let mut stream = resp.bytes_stream();
        let mut buf = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let at = Instant::now();
                let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                let obj = &ev["object"];
                if all_running(obj)
                    && let Some(name) = obj["metadata"]["name"].as_str()
                    && let Some(tx) = w.lock().unwrap().remove(name)
                {
                    let _ = tx.send(at);
                }
            }
        }
    });
    Ok(waiters)
}

async fn wait_node_ready(http: &reqwest::Client, cluster: &Cluster) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        if let Ok(r) = http
            .get(format!("{}/api/v1/nodes/{NODE}", cluster.url))
            .send()
            .await
            && let Ok(node) = r.json::<Value>().await
            && node["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "node {NODE} did not become Ready; kubelet log:\n{}",
        cluster.log_tail("kubelet.log")
    )
}

/// How pods are created and seen started.
struct PodApi {
    http: reqwest::Client,
    url: String,
    waiters: Waiters,
    bind: bool,
}

/// Starts `total` pods, `concurrency` at a time; each latency runs from the POST until
/// the watch shows all its containers running.
async fn start_pods(
    name: &str,
    api: &PodApi,
    prefix: &str,
    total: usize,
    concurrency: usize,
    probe: bool,
) -> anyhow::Result<Samples> {
    let pods = format!("{}/api/v1/namespaces/default/pods", api.url);
    let bind = api.bind;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let (http, pods, waiters, prefix) = (
            api.http.clone(),
            pods.clone(),
            api.waiters.clone(),
            prefix.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in (c..total).step_by(concurrency) {
                let pod_name = format!("{prefix}-{i}");
                let (tx, rx) = oneshot::channel();
                waiters.lock().unwrap().insert(pod_name.clone(), tx);
                let t = Instant::now();
                expect(
                    http.post(&pods)
                        .json(&pod(&pod_name, bind, probe))
                        .send()
                        .await?,
                    &[201],
                )
                .await?;
                let at = tokio::time::timeout(Duration::from_secs(120), rx)
                    .await
                    .with_context(|| format!("pod {pod_name} did not start within 120 s"))??;
                lat.push(at.saturating_duration_since(t));
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    Ok(Samples {
        name: name.to_string(),
        lat,
        elapsed: start.elapsed(),
    })
}

/// Deletes every pod of `default` and waits until the kubelet removed them.
async fn delete_all_pods(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let pods = format!("{url}/api/v1/namespaces/default/pods");
    let list = expect(http.get(&pods).send().await?, &[200]).await?;
    let names: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    futures::stream::iter(names)
        .map(|n| {
            let (http, pods) = (http.clone(), pods.clone());
            async move {
                expect(
                    http.delete(format!("{pods}/{n}")).send().await?,
                    &[200, 202, 404],
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let end = Instant::now() + Duration::from_secs(180);
    loop {
        let list = expect(http.get(&pods).send().await?, &[200]).await?;
        let left = list["items"].as_array().map_or(0, Vec::len);
        if left == 0 {
            return Ok(());
        }
        if Instant::now() >= end {
            bail!("{left} pods were not deleted within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The baseline: raw Docker

async fn raw_pod(docker: &Docker, network: &str, name: &str) -> anyhow::Result<()> {
    let labels = HashMap::from([(RAW_LABEL.to_string(), RAW_VALUE.to_string())]);
    let pause = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(format!("{name}-pause")),
                ..CreateContainerOptions::default()
            }),
            ContainerCreateBody {
                image: Some(minik8s_kubelet::DEFAULT_PAUSE_IMAGE.to_string()),
                labels: Some(labels.clone()),
                host_config: Some(HostConfig {
                    network_mode: Some(network.to_string()),
                    ..HostConfig::default()
                }),
                ..ContainerCreateBody::default()
            },
        )
        .await
        .context("creating the pause container")?;
    docker
        .start_container(&pause.id, None)
        .await
        .context("starting the pause container")?;
    let app = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(format!("{name}-app")),
                ..CreateContainerOptions::default()
            }),
            ContainerCreateBody {
                image: Some(BUSYBOX.to_string()),
                cmd: Some(vec!["sleep".into(), "3600".into()]),
                labels: Some(labels),
                host_config: Some(HostConfig {
                    network_mode: Some(format!("container:{}", pause.id)),
                    ..HostConfig::default()
                }),
                ..ContainerCreateBody::default()
            },
        )
        .await
        .context("creating the app container")?;
    docker
        .start_container(&app.id, None)
        .await
        .context("starting the app container")?;
    Ok(())
}

async fn raw_docker(
    name: &str,
    docker: &Docker,
    network: &str,
    prefix: &str,
    total: usize,
    concurrency: usize,
) -> anyhow::Result<Samples> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let (docker, network, prefix) = (docker.clone(), network.to_string(), prefix.to_string());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in (c..total).step_by(concurrency) {
                let t = Instant::now();
                raw_pod(&docker, &network, &format!("{prefix}-{i}")).await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    Ok(Samples {
        name: name.to_string(),
        lat,
        elapsed: start.elapsed(),
    })
}

async fn remove_raw_containers(docker: &Docker) -> anyhow::Result<()> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{RAW_LABEL}={RAW_VALUE}")],
    )]);
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..ListContainersOptions::default()
        }))
        .await?;
    // Apps first: a pause container cannot go while a container shares its network.
    let mut ids: Vec<(bool, String)> = list
        .into_iter()
        .filter_map(|c| {
            let pause = c.names?.iter().any(|n| n.ends_with("-pause"));
            Some((pause, c.id?))
        })
        .collect();
    ids.sort();
    for group in [false, true] {
        futures::stream::iter(ids.iter().filter(|(p, _)| *p == group))
            .map(|(_, id)| async move {
                docker
                    .remove_container(
                        id,
                        Some(RemoveContainerOptions {
                            force: true,
                            v: true,
                            link: false,
                        }),
                    )
                    .await
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------

fn start_cluster(pod_cidr: &str) -> anyhow::Result<Cluster> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.path().join("apiserver.log"))?;
    let apiserver = Command::new(sibling_binary("apiserver")?)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the apiserver")?;
    Ok(Cluster {
        apiserver,
        kubelet: None,
        url,
        pod_cidr: pod_cidr.to_string(),
        dir,
    })
}

fn start_kubelet(cluster: &mut Cluster) -> anyhow::Result<()> {
    let log = std::fs::File::create(cluster.dir.path().join("kubelet.log"))?;
    let child = Command::new(sibling_binary("kubelet")?)
        .args(["--server", &cluster.url, "--node-name", NODE])
        .arg("--root-dir")
        .arg(cluster.dir.path().join("kubelet"))
        .args(["--port", "0"])
        .env_remove("KUBECONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the kubelet")?;
    cluster.kubelet = Some(child);
    Ok(())
}

async fn wait_api_ready(http: &reqwest::Client, cluster: &Cluster) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if let Ok(r) = http.get(format!("{}/readyz", cluster.url)).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "the apiserver did not become ready; its log:\n{}",
        cluster.log_tail("apiserver.log")
    )
}

struct Idle {
    pods: usize,
    rss_mib: f64,
    peak_rss_mib: f64,
    kubelet_cpu_pct: f64,
    dockerd_cpu_pct: Option<f64>,
    apiserver_cpu_pct: f64,
    seconds: f64,
}

impl Idle {
    fn json(&self) -> Value {
        json!({"pods": self.pods, "kubelet_rss_mib": self.rss_mib,
               "kubelet_peak_rss_mib": self.peak_rss_mib,
               "kubelet_cpu_percent_of_core": self.kubelet_cpu_pct,
               "dockerd_cpu_percent_of_core": self.dockerd_cpu_pct,
               "apiserver_cpu_percent_of_core": self.apiserver_cpu_pct,
               "seconds": self.seconds})
    }
}

/// CPU of the kubelet (and, for context, dockerd and the API server) over `secs` seconds
/// in which nothing is asked of them, and the kubelet's memory at the end.
async fn measure_idle(cluster: &Cluster, pods: usize, secs: u64) -> Idle {
    let kubelet = cluster.kubelet_pid();
    let dockerd = dockerd_pid();
    let window = CpuWindow::start(&[kubelet, cluster.apiserver.id(), dockerd.unwrap_or(0)]);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (pct, elapsed) = window.finish();
    Idle {
        pods,
        rss_mib: proc::mem_mib(kubelet, "VmRSS"),
        peak_rss_mib: proc::mem_mib(kubelet, "VmHWM"),
        kubelet_cpu_pct: pct[0].unwrap_or(0.0),
        dockerd_cpu_pct: dockerd.and(pct[2]),
        apiserver_cpu_pct: pct[1].unwrap_or(0.0),
        seconds: elapsed.as_secs_f64(),
    }
}

fn print_table(rows: &[Samples], ratios: &[(String, f64, f64)], idle: &[Idle]) {
    println!(
        "{:<40} {:>6} {:>10} {:>9} {:>9}",
        "pod start", "count", "pods/s", "p50 ms", "p99 ms"
    );
    for s in rows {
        println!(
            "{:<40} {:>6} {:>10.1} {:>9.1} {:>9.1}",
            s.name,
            s.lat.len(),
            s.rate(),
            s.pct(0.5),
            s.pct(0.99)
        );
    }
    for (label, p50, p99) in ratios {
        println!("ratio ours/raw Docker, {label}: p50 {p50:.2}x, p99 {p99:.2}x");
    }
    for i in idle {
        println!(
            "kubelet with {} pods: RSS {:.1} MiB (peak {:.1}), CPU {:.2}% of a core over {:.0} s \
             (dockerd {}, apiserver {:.2}%)",
            i.pods,
            i.rss_mib,
            i.peak_rss_mib,
            i.kubelet_cpu_pct,
            i.seconds,
            i.dockerd_cpu_pct
                .map_or("n/a".to_string(), |d| format!("{d:.2}%")),
            i.apiserver_cpu_pct
        );
    }
}

async fn run(args: &Args, cluster: &mut Cluster, docker: &Docker) -> anyhow::Result<Value> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    wait_api_ready(&http, cluster).await?;

    // The node is registered with its pod CIDR; the kubelet takes it over.
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
        "spec": {"podCIDR": cluster.pod_cidr, "podCIDRs": [cluster.pod_cidr]}});
    expect(
        http.post(format!("{}/api/v1/nodes", cluster.url))
            .json(&node)
            .send()
            .await?,
        &[201],
    )
    .await?;
    start_kubelet(cluster)?;
    wait_node_ready(&http, cluster).await?;
    let network = minik8s_kubelet::network_name(NODE);
    let end = Instant::now() + Duration::from_secs(30);
    while docker
        .inspect_network(
            &network,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .is_err()
    {
        if Instant::now() >= end {
            bail!(
                "the kubelet did not create network {network}; its log:\n{}",
                cluster.log_tail("kubelet.log")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_empty = measure_idle(cluster, 0, 10).await;
    let api = PodApi {
        waiters: watch_started(&http, &cluster.url).await?,
        http: http.clone(),
        url: cluster.url.clone(),
        bind: args.bind_directly,
    };

    let n = args.pods;
    let c = args.concurrency;
    let bind = args.bind_directly;
    let mut rows = Vec::new();
    let mut ratios = Vec::new();
    // `--pods 0` skips the start latency measurements.
    let start_runs = if n == 0 {
        vec![]
    } else {
        vec![(1usize, "seq"), (c, "conc")]
    };
    for (conc, tag) in start_runs {
        let raw = raw_docker(
            &format!("raw Docker, {n} pods c={conc}"),
            docker,
            &network,
            &format!("pb-raw-{tag}"),
            n,
            conc,
        )
        .await?;
        remove_raw_containers(docker).await?;
        let ours = start_pods(
            &format!("kubelet, {n} pods c={conc}"),
            &api,
            &format!("lat-{tag}"),
            n,
            conc,
            false,
        )
        .await?;
        delete_all_pods(&http, &cluster.url).await?;
        ratios.push((
            format!("c={conc}"),
            ours.pct(0.5) / raw.pct(0.5),
            ours.pct(0.99) / raw.pct(0.99),
        ));
        rows.push(raw);
        rows.push(ours);
    }

    let many = start_pods(
        &format!(
            "kubelet, {} pods{} c={c}",
            args.idle_pods,
            if args.no_probes { "" } else { " + probes" }
        ),
        &api,
        "idle",
        args.idle_pods,
        c,
        !args.no_probes,
    )
    .await?;
    rows.push(many);
    // Let the first probe round and the status updates it causes pass.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let idle_full = measure_idle(cluster, args.idle_pods, args.idle_seconds).await;
    let running = cluster.kubelet.as_mut().and_then(|k| k.try_wait().ok());
    if !matches!(running, Some(None)) {
        bail!(
            "the kubelet exited; its log:\n{}",
            cluster.log_tail("kubelet.log")
        );
    }
    delete_all_pods(&http, &cluster.url).await?;

    let idle = [idle_empty, idle_full];
    print_table(&rows, &ratios, &idle);
    Ok(json!({
        "bind": if bind { "spec.nodeName" } else { "scheduler" },
        "idle_probes": if args.no_probes { "none" } else { "exec every 10 s" },
        "pod_cidr": cluster.pod_cidr,
        "start": rows.iter().map(Samples::json).collect::<Vec<_>>(),
        "ratios": ratios.iter().map(|(l, p50, p99)|
            json!({"concurrency": l, "p50": p50, "p99": p99})).collect::<Vec<_>>(),
        "idle": idle.iter().map(Idle::json).collect::<Vec<_>>(),
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure_images()?;
    let docker = Docker::connect_with_socket_defaults()?
        .negotiate_version()
        .await
        .context("connecting to Docker")?;
    // What an earlier run of this bench may have left.
    remove_docker_leftovers(NODE);
    remove_raw_containers_cli();
    let (pod_cidr, overlapping) = free_pod_cidr(&docker).await?;
    if !overlapping.is_empty() {
        println!(
            "note: Docker networks overlap the cluster CIDR 10.244.0.0/16 ({}); \
             the node gets the free range {pod_cidr}",
            overlapping.join(", ")
        );
    }
    let mut cluster = start_cluster(&pod_cidr)?;
    let result = run(&args, &mut cluster, &docker).await;
    drop(cluster);
    let doc = result?;
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&doc)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
