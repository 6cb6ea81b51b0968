//! The cluster DNS server's throughput and latency, against Debian's dnsmasq answering
//! the same names from a hosts file in the same run.
//!
//! `dns-bench [--services 1000] [--endpoints 5] [--seconds 10] [--out FILE]` starts an
//! API server, this binary's `serve` mode (the kubelet's DNS server, nothing else) as a
//! process of its own, and creates the services (one in five headless, the others with a
//! cluster IP) with an EndpointSlice each. It writes the same names into a hosts file and
//! `srv-host` lines for dnsmasq, checks that both servers answer a sample alike, and runs
//! `dnsperf` for `--seconds` against each over a query file that mixes service A, SRV and
//! pod names. It prints queries per second and latency percentiles (from dnsperf's
//! per-query lines) and the server's resident memory.
//!
//! `dns-bench serve --server URL --port P` only serves DNS on 127.0.0.1:P from the API
//! server at URL (also used by the memory test in `tests/tests/dns.rs`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use minik8s_api::k8s_openapi::api::core::v1::Service;
use minik8s_client::{Api, Client, Config, ListParams};
use minik8s_tests::apiserver::{Backend, TestApiServer};
use minik8s_tests::bench::free_port;
use minik8s_tests::dns::{Dnsmasq, dig, endpoint_ip, populate};
use serde_json::json;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[arg(long, default_value_t = 1000)]
    services: usize,
    #[arg(long, default_value_t = 5)]
    endpoints: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value = "target/bench/dns.json")]
    out: String,
}

#[derive(Subcommand)]
enum Mode {
    /// Serve DNS from an API server until killed.
    Serve {
        #[arg(long)]
        server: String,
        #[arg(long)]
        port: u16,
    },
}

const NS: &str = "bench";
const HEADLESS_EVERY: usize = 5;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match args.mode {
        Some(Mode::Serve { ref server, port }) => rt.block_on(serve(server, port)),
        None => rt.block_on(bench(&args)),
    }
}

async fn serve(server: &str, port: u16) -> anyhow::Result<()> {
    let client = Client::new(Config::new(server.parse()?))?;
    let config = minik8s_kubelet::dns::DnsConfig {
        cluster_domain: "cluster.local".into(),
        listen: vec![SocketAddr::from(([127, 0, 0, 1], port))],
        upstreams: vec![],
    };
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    minik8s_kubelet::dns::serve(client, config, stopped).await?;
    Ok(())
}

struct Result {
    name: &'static str,
    qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    lost: u64,
    completed: u64,
}

async fn bench(args: &Args) -> anyhow::Result<()> {
    let api = TestApiServer::start(Backend::Embedded).await?;
    let client = Client::new(Config::new(api.url.parse()?))?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut server = Command::new(std::env::current_exe()?)
        .args(["serve", "--server", &api.url, "--port", &port.to_string()])
        .spawn()
        .context("starting the DNS server")?;
    let pid = server.id();
    let outcome = async {
        let (n, eps) = (args.services, args.endpoints);
        populate(&client, NS, n, eps, HEADLESS_EVERY).await?;
        let services = Api::<Service>::namespaced(client.clone(), NS)
            .list(&ListParams::default())
            .await?;
        let ips: BTreeMap<String, String> = services
            .items
            .iter()
            .filter_map(|s| {
                Some((
                    s.metadata.name.clone()?,
                    s.spec.as_ref()?.cluster_ip.clone()?,
                ))
            })
            .collect();
        let (hosts, srv, queries) = names(n, eps, &ips);
        let query_file = dir.path().join("queries");
        std::fs::write(&query_file, queries.join("\n") + "\n")?;
        let dnsmasq = Dnsmasq::start(dir.path(), &hosts, &srv, free_port()?)?;

        // Both answer the last service alike before anything is measured.
        let last = format!("_http._tcp.svc-{}.{NS}.svc.cluster.local", n - 1);
        minik8s_tests::wait_for(
            "the DNS server to know every service",
            Duration::from_secs(60),
            || async {
                let d = dig(port, &[&last, "SRV"]).ok()?;
                (!d.answers.is_empty()).then_some(())
            },
        )
        .await?;
        for q in queries.iter().step_by(97) {
            let mut words = q.split_whitespace();
            let (name, t) = (
                words.next().unwrap_or_default(),
                words.next().unwrap_or("A"),
            );
            let ours = dig(port, &[name, t])?;
            let theirs = dig(dnsmasq.port, &[name, t])?;
            let strip = |v: Vec<String>| -> Vec<String> {
                v.into_iter()
                    .map(|d| d.split(' ').skip(2).collect::<Vec<_>>().join(" "))
                    .collect()
            };
            let (a, b) = if t == "SRV" {
                (strip(ours.data()), strip(theirs.data()))
            } else {
                (ours.data(), theirs.data())
            };
            if a != b {
                bail!("{name} {t}: ours {a:?}, dnsmasq {b:?}");
            }
        }
        let rss = minik8s_tests::proc::mem_mib(pid, "VmRSS");
        let ours = dnsperf("minik8s", port, &query_file, args.seconds)?;
        let theirs = dnsperf("dnsmasq", dnsmasq.port, &query_file, args.seconds)?;
        let rss_after = minik8s_tests::proc::mem_mib(pid, "VmRSS");
        println!(
            "{} services ({} headless), {} endpoints, {} names in the query mix; {}s per server",
            n,
            n.div_ceil(HEADLESS_EVERY),
            n * eps,
            queries.len(),
            args.seconds
        );
        println!(
            "{:<10} {:>10} {:>9} {:>9} {:>8}",
            "server", "qps", "p50 ms", "p99 ms", "lost"
        );
        for r in [&ours, &theirs] {
            println!(
                "{:<10} {:>10.0} {:>9.3} {:>9.3} {:>8}",
                r.name, r.qps, r.p50_ms, r.p99_ms, r.lost
            );
        }
        println!("DNS server RSS: {rss:.1} MiB before the load, {rss_after:.1} MiB after");
        let results: Vec<_> = [&ours, &theirs]
            .iter()
            .map(|r| {
                json!({"server": r.name, "qps": r.qps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
                    "lost": r.lost, "completed": r.completed})
            })
            .collect();
        let json = json!({
            "services": n, "endpoints": n * eps, "queries_in_mix": queries.len(),
            "seconds": args.seconds, "results": results,
            "rss_mib": rss, "rss_after_mib": rss_after,
        });
        if let Some(parent) = std::path::Path::new(&args.out).parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&args.out, serde_json::to_string_pretty(&json)?)?;
        anyhow::Ok(())
    }
    .await;
    let _ = server.kill();
    let _ = server.wait();
    outcome
}

/// The hosts file, the `srv-host` values and the query lines for the same names.
fn names(
    n: usize,
    eps: usize,
    ips: &BTreeMap<String, String>,
) -> (String, Vec<String>, Vec<String>) {
    let mut hosts = String::new();
    let mut srv = Vec::new();
    let mut queries = Vec::new();
    for i in 0..n {
        let svc = format!("svc-{i}");
        let fqdn = format!("{svc}.{NS}.svc.cluster.local");
        let srv_name = format!("_http._tcp.{fqdn}");
        if i % HEADLESS_EVERY == 0 {
            for e in 0..eps {
                let ip = endpoint_ip(i, e, eps);
                let host = format!("{svc}-{e}.{fqdn}");
                hosts.push_str(&format!("{ip} {fqdn}\n{ip} {host}\n"));
                srv.push(format!("{srv_name},{host},8080"));
            }
        } else {
            let ip = &ips[&svc];
            hosts.push_str(&format!("{ip} {fqdn}\n"));
            srv.push(format!("{srv_name},{fqdn},80"));
        }
        let pod_ip = endpoint_ip(i, 0, eps);
        let pod = format!("{}.{NS}.pod.cluster.local", pod_ip.replace('.', "-"));
        hosts.push_str(&format!("{pod_ip} {pod}\n"));
        queries.push(format!("{fqdn} A"));
        queries.push(format!("{srv_name} SRV"));
        queries.push(format!("{pod} A"));
    }
    (hosts, srv, queries)
}

/// Runs dnsperf against 127.0.0.1:`port`, reading each query's latency from its
/// verbose lines.
fn dnsperf(
    name: &'static str,
    port: u16,
    queries: &std::path::Path,
    seconds: u64,
) -> anyhow::Result<Result> {
    let mut child = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-d"])
        .arg(queries)
        .args(["-l", &seconds.to_string(), "-c", "4", "-q", "200", "-v"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("running dnsperf (Debian's dnsperf; deploy/install-deps.sh)")?;
    let stdout = child.stdout.take().context("dnsperf's output")?;
    let mut latencies: Vec<Duration> = Vec::new();
    let (mut qps, mut lost, mut completed) = (0.0, 0u64, 0u64);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("> ") {
            // "> NOERROR name type 0.000123"
            if let Some(secs) = rest
                .split_whitespace()
                .last()
                .and_then(|s| s.parse::<f64>().ok())
            {
                latencies.push(Duration::from_secs_f64(secs));
            }
        } else if let Some(v) = t.strip_prefix("Queries per second:") {
            qps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("Queries lost:") {
            lost = v
                .split_whitespace()
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("Queries completed:") {
            completed = v
                .split_whitespace()
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
        }
    }
    let status = child.wait()?;
    if !status.success() || completed == 0 {
        bail!("dnsperf against {name} failed ({status}, {completed} completed)");
    }
    Ok(Result {
        name,
        qps,
        p50_ms: minik8s_tests::bench::percentile_ms(&latencies, 0.5),
        p99_ms: minik8s_tests::bench::percentile_ms(&latencies, 0.99),
        lost,
        completed,
    })
}
