//! The node proxy's costs.
//!
//! `proxy-bench [sync|wrk|all] [services] [endpoints-per-service]`:
//!
//! * `sync` renders and applies the rules of `services` services (default 1000) with
//!   `endpoints-per-service` endpoints each (default 5) through the proxy library and a
//!   real `iptables-restore`, in a network namespace of its own (the host's table is not
//!   touched): the first full sync, then one endpoint changed at a time (p50/p99 of 100),
//!   and a full resync of everything. Baseline, same run: one `iptables-restore` of one
//!   empty chain — the floor of starting the program.
//! * `wrk` starts a test node with one busybox httpd pod behind a service and runs
//!   Debian's `wrk` from the host for 10 s against the pod's IP (the baseline) and against
//!   the cluster IP, and prints requests per second and latency of both.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use minik8s_api::k8s_openapi::api::core::v1::Service;
use minik8s_api::k8s_openapi::api::discovery::v1::EndpointSlice;
use minik8s_client::Api;
use minik8s_kubelet::proxy::{Applier, IptablesApplier, Proxy, rules};
use minik8s_tests::bench::percentile_ms;
use minik8s_tests::kubelet::{BUSYBOX, TestNode};
use serde_json::json;

/// A network namespace of the benchmark's own, deleted when dropped.
struct NetNs(String);

impl NetNs {
    fn new() -> anyhow::Result<NetNs> {
        let name = format!("mk8s-proxy-bench-{}", std::process::id());
        let status = Command::new("ip").args(["netns", "add", &name]).status()?;
        if !status.success() {
            bail!("ip netns add {name} failed (root is needed)");
        }
        Ok(NetNs(name))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn services(
    n: usize,
    eps: usize,
    generation: &BTreeMap<usize, u32>,
) -> (Vec<Service>, Vec<EndpointSlice>) {
    let mut svcs = Vec::with_capacity(n);
    let mut slices = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("svc-{i}");
        let ip = format!("10.96.{}.{}", i / 250, i % 250 + 1);
        svcs.push(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "bench"},
                "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
            }))
            .expect("a valid service"),
        );
        let g = generation.get(&i).copied().unwrap_or(0);
        let endpoints: Vec<_> = (0..eps)
            .map(|e| {
                // A changed endpoint moves to another address.
                let n = (i * eps + e) as u32 + if e == 0 { g * 100_000 } else { 0 };
                json!({"addresses": [format!("10.{}.{}.{}", 100 + n / 65536 % 100, n / 256 % 256, n % 256)],
                    "nodeName": "bench", "conditions": {"ready": true}})
            })
            .collect();
        slices.push(
            serde_json::from_value(json!({
                "metadata": {"name": format!("{name}-x"), "namespace": "bench",
                    "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
            }))
            .expect("a valid slice"),
        );
    }
    (svcs, slices)
}

async fn sync_bench(n: usize, eps: usize) -> anyhow::Result<()> {
    let ns = NetNs::new()?;
    let applier = Arc::new(IptablesApplier::with_prefix(&[
        "ip", "netns", "exec", &ns.0,
    ]));

    // Baseline: the cost of running iptables-restore at all.
    let mut floor = Vec::new();
    for i in 0..20 {
        let input = format!("*nat\n:MINIK8S-FLOOR-{} - [0:0]\nCOMMIT\n", i % 2);
        let t = Instant::now();
        applier.restore(&input).await.map_err(anyhow::Error::msg)?;
        floor.push(t.elapsed());
    }

    let mut generation = BTreeMap::new();
    let (svcs, slices) = services(n, eps, &generation);
    let mut proxy = Proxy::new(applier.clone(), "bench");
    let t = Instant::now();
    let ports = rules::service_ports(&svcs, &slices);
    let render = t.elapsed();
    let t = Instant::now();
    let report = proxy
        .sync(&ports, false)
        .await
        .map_err(anyhow::Error::msg)?;
    let first = t.elapsed();
    let save = applier.save().await.map_err(anyhow::Error::msg)?;
    let rules_in_table = save.lines().filter(|l| l.starts_with("-A ")).count();

    let mut changes = Vec::new();
    for round in 0..100 {
        let i = (round * 7919) % n;
        *generation.entry(i).or_insert(0) += 1;
        let (svcs, slices) = services(n, eps, &generation);
        // What the kubelet does on a change: recompute everything, write what differs.
        let t = Instant::now();
        let ports = rules::service_ports(&svcs, &slices);
        let r = proxy
            .sync(&ports, false)
            .await
            .map_err(anyhow::Error::msg)?;
        changes.push(t.elapsed());
        if r.full || r.chains_written == 0 {
            bail!("a one-endpoint change wrote {r:?}");
        }
    }
    let t = Instant::now();
    proxy.sync(&ports, true).await.map_err(anyhow::Error::msg)?;
    let resync = t.elapsed();

    println!(
        "rule sync: {n} services, {} endpoints, {} chains, {rules_in_table} rules in the table",
        n * eps,
        report.chains_written
    );
    println!(
        "  baseline: iptables-restore of one empty chain  p50={:.1} ms  p99={:.1} ms",
        percentile_ms(&floor, 0.5),
        percentile_ms(&floor, 0.99)
    );
    println!(
        "  render (objects -> service ports):             {:.1} ms",
        render.as_secs_f64() * 1e3
    );
    println!(
        "  first full sync (render + save + restore):     {:.1} ms  ({} KiB of input)",
        first.as_secs_f64() * 1e3,
        report.bytes / 1024
    );
    println!(
        "  one endpoint changed (render + restore):      p50={:.1} ms  p99={:.1} ms  max={:.1} ms",
        percentile_ms(&changes, 0.5),
        percentile_ms(&changes, 0.99),
        percentile_ms(&changes, 1.0)
    );
    println!(
        "  full resync of everything:                     {:.1} ms",
        resync.as_secs_f64() * 1e3
    );
    Ok(())
}

/// `wrk -t2 -c16 -d10s url`: requests per second and the latency line's mean.
fn wrk(url: &str) -> anyhow::Result<(f64, String)> {
    let out = Command::new("wrk")
        .args(["-t2", "-c16", "-d10s", "--latency", url])
        .output()
        .context("running wrk (deploy/install-deps.sh installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk {url}: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .context("wrk printed no Requests/sec")?;
    let latency = text
        .lines()
        .find(|l| l.trim_start().starts_with("Latency"))
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ");
    let p99 = text
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    Ok((
        rps,
        format!("latency avg/stdev/max/+-stdev {latency}; p99 {p99}"),
    ))
}

async fn wrk_bench() -> anyhow::Result<()> {
    let node = TestNode::start().await?;
    let script = "mkdir -p /www && echo hello > /www/index.html && httpd -f -p 8080 -h /www";
    node.create_pod(json!({"metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "web",
            "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", script]}]}}))
        .await?;
    let svc: Service = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": 8080}]}}))?;
    let svc = Api::<Service>::namespaced(node.client.clone(), "default")
        .create(&svc)
        .await?;
    let pod = node.wait_ready("web").await?;
    let pod_ip = pod
        .status
        .and_then(|s| s.pod_ip)
        .context("the pod has an IP")?;
    let cluster_ip = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .context("a cluster IP")?;
    let target = format!("{cluster_ip}:80");
    minik8s_tests::wait_for(
        "the cluster IP to answer",
        Duration::from_secs(60),
        || async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let connect = tokio::net::TcpStream::connect(&target);
            let mut stream = tokio::time::timeout(Duration::from_secs(2), connect)
                .await
                .ok()?
                .ok()?;
            stream
                .write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
                .await
                .ok()?;
            let mut answer = Vec::new();
            tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer))
                .await
                .ok()?
                .ok()?;
            answer.ends_with(b"hello\n").then_some(())
        },
    )
    .await?;
    let url = format!("http://{cluster_ip}/index.html");
    let (direct, direct_lat) = wrk(&format!("http://{pod_ip}:8080/index.html"))?;
    let (through, through_lat) = wrk(&url)?;
    let (direct2, _) = wrk(&format!("http://{pod_ip}:8080/index.html"))?;
    println!("HTTP from the host, wrk -t2 -c16 -d10s, busybox httpd:");
    println!("  pod IP directly (baseline): {direct:>9.0} req/s  {direct_lat}");
    println!("  cluster IP (DNAT):          {through:>9.0} req/s  {through_lat}");
    println!("  pod IP directly, again:     {direct2:>9.0} req/s");
    println!(
        "  cluster IP / direct:        {:.3}",
        through / direct.max(direct2).max(1.0)
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("all", String::as_str);
    let n = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let eps = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(5);
    if matches!(mode, "sync" | "all") {
        sync_bench(n, eps).await?;
    }
    if matches!(mode, "wrk" | "all") {
        wrk_bench().await?;
    }
    Ok(())
}
