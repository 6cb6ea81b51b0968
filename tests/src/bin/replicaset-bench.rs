//! `replicaset-bench`: how fast the ReplicaSet controller and the scheduler turn one
//! ReplicaSet of 1000 replicas into 1000 bound pods, with no kubelet (the pods stay
//! Pending once bound), and beside it, from the same run on the same server, a client
//! creating 1000 pods directly, 20 at a time.
//!
//! The API server runs as its own process (the `apiserver` binary next to this one) on
//! the embedded store. 100 Node objects are registered as a kubelet would (Ready, with
//! capacity and heartbeats), so the scheduler has somewhere to put the pods. Times come
//! from a watch on the namespace's pods: from the POST until the 1000th pod is seen, and
//! until the 1000th has `spec.nodeName`.
//!
//!     cargo build --release -p minik8s-cmd -p minik8s-tests --bins
//!     target/release/replicaset-bench [--replicas 1000] [--nodes 100] [--out FILE]

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use minik8s_tests::bench::{free_port, sibling_binary};
use serde_json::{Value, json};
use tokio::sync::watch;

#[derive(Parser, Debug)]
struct Args {
    /// Replicas of the ReplicaSet, and pods the direct client creates.
    #[arg(long, default_value_t = 1000)]
    replicas: usize,
    /// Node objects registered (no kubelets run).
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Concurrent requests of the direct client.
    #[arg(long, default_value_t = 20)]
    clients: usize,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/bench/replicaset.json")]
    out: PathBuf,
}

/// The targets: all pods made within this, and all bound within `BIND_TARGET`.
const CREATE_TARGET: Duration = Duration::from_secs(2);
const BIND_TARGET: Duration = Duration::from_secs(3);
/// Longest any phase may take before the run is called failed.
const DEADLINE: Duration = Duration::from_secs(120);

struct ApiProcess {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl ApiProcess {
    fn start() -> anyhow::Result<ApiProcess> {
        let bin = sibling_binary("apiserver")?;
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let child = Command::new(bin)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        Ok(ApiProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        })
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        ct: &str,
        body: &Value,
    ) -> anyhow::Result<Value> {
        let r = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .header("content-type", ct)
            .body(serde_json::to_vec(body)?)
            .send()
            .await?;
        let code = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !code.is_success() {
            bail!("{method} {path}: {code} {v}");
        }
        Ok(v)
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(reqwest::Method::POST, path, "application/json", body)
            .await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self.http.get(format!("{}{path}", self.url)).send().await?;
        Ok(r.error_for_status()?.json().await?)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.url)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("apiserver at {} did not become ready", self.url)
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// What a kubelet reports: Ready, room for 110 pods, 32 CPUs and 128 GiB, a fresh
/// heartbeat.
fn node_status() -> Value {
    let t = now();
    let room = json!({"cpu": "32", "memory": "128Gi", "pods": "110"});
    json!({"status": {
        "capacity": room, "allocatable": room,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastHeartbeatTime": t, "lastTransitionTime": t}],
    }})
}

async fn heartbeat(api: &Api, name: &str) -> anyhow::Result<()> {
    api.send(
        reqwest::Method::PATCH,
        &format!("/api/v1/nodes/{name}/status"),
        "application/strategic-merge-patch+json",
        &node_status(),
    )
    .await
    .map(|_| ())
}

/// Registers `n` nodes and waits until each has a pod CIDR (the scheduler's condition).
async fn register_nodes(api: &Arc<Api>, n: usize) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = (0..n).map(|i| format!("bench-node-{i:03}")).collect();
    futures::stream::iter(names.clone())
        .map(|name| {
            let api = api.clone();
            async move {
                api.post(
                    "/api/v1/nodes",
                    &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name,
                        "labels": {"kubernetes.io/hostname": name}}}),
                )
                .await?;
                heartbeat(&api, &name).await
            }
        })
        .buffer_unordered(20)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    let end = Instant::now() + DEADLINE;
    loop {
        let list = api.get("/api/v1/nodes").await?;
        let with_cidr = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["spec"]["podCIDR"].is_string())
            .count();
        if with_cidr >= n {
            return Ok(names);
        }
        if Instant::now() > end {
            bail!("only {with_cidr} of {n} nodes got a pod CIDR");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// When the pods of one namespace reached `want`, and when `want` of them were bound.
struct Progress {
    created: Option<Instant>,
    bound: Option<Instant>,
}

/// Follows the namespace's pods from the version `rv` on, until `want` are bound.
async fn follow(
    api: Arc<Api>,
    ns: String,
    rv: String,
    want: usize,
    tx: watch::Sender<Progress>,
) -> anyhow::Result<()> {
    let resp = api
        .http
        .get(format!(
            "{}/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={rv}",
            api.url
        ))
        .send()
        .await?
        .error_for_status()?;
    let mut seen = HashSet::new();
    let mut bound = HashSet::new();
    let mut body = resp.bytes_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk?);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let ev: Value = serde_json::from_slice(&line)?;
            let at = Instant::now();
            let pod = &ev["object"];
            let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
            if ev["type"] == "DELETED" {
                continue;
            }
            seen.insert(name.clone());
            if pod["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
            {
                bound.insert(name);
            }
            tx.send_modify(|p| {
                if p.created.is_none() && seen.len() >= want {
                    p.created = Some(at);
                }
                if p.bound.is_none() && bound.len() >= want {
                    p.bound = Some(at);
                }
            });
            if bound.len() >= want {
                return Ok(());
            }
        }
    }
    bail!("the watch of {ns}'s pods ended early")
}

/// One run's figures.
struct Run {
    name: &'static str,
    created: Duration,
    bound: Duration,
}

/// Creates namespace `ns`, starts the watch, runs `go`, and times the pods' arrival.
async fn measure<F, Fut>(
    api: &Arc<Api>,
    ns: &str,
    want: usize,
    name: &'static str,
    go: F,
) -> anyhow::Result<Run>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    api.post(
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .await?;
    let list = api.get(&format!("/api/v1/namespaces/{ns}/pods")).await?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .context("list resourceVersion")?
        .to_string();
    let (tx, mut rx) = watch::channel(Progress {
        created: None,
        bound: None,
    });
    let watcher = tokio::spawn(follow(api.clone(), ns.to_string(), rv, want, tx));
    let start = Instant::now();
    go().await?;
    let done = tokio::time::timeout(DEADLINE, rx.wait_for(|p| p.bound.is_some())).await;
    let progress = match done {
        Ok(Ok(p)) => Progress {
            created: p.created,
            bound: p.bound,
        },
        _ => {
            watcher.abort();
            bail!("{name}: the pods were not all bound within {DEADLINE:?}");
        }
    };
    watcher.await??;
    Ok(Run {
        name,
        created: progress.created.unwrap_or(start) - start,
        bound: progress.bound.unwrap_or(start) - start,
    })
}

fn pod_template() -> Value {
    json!({"containers": [{"name": "app", "image": "minik8s/busybox:latest",
        "command": ["sleep", "3600"],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]})
}

async fn direct_pods(api: Arc<Api>, ns: &str, n: usize, clients: usize) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (api, next, ns) = (api.clone(), next.clone(), ns.to_string());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                api.post(
                    &format!("/api/v1/namespaces/{ns}/pods"),
                    &json!({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": format!("direct-{i}"), "labels": {"app": "direct"}},
                        "spec": pod_template()}),
                )
                .await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = ApiProcess::start()?;
    let api = Arc::new(Api {
        http: reqwest::Client::builder().no_proxy().build()?,
        url: server.url.clone(),
    });
    api.wait_ready().await?;
    let nodes = register_nodes(&api, args.nodes).await?;
    // Heartbeats keep the nodes Ready for as long as the run takes.
    let beating = {
        let api = api.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                for n in &nodes {
                    let _ = heartbeat(&api, n).await;
                }
            }
        })
    };

    let n = args.replicas;
    let direct = measure(&api, "direct", n, "client, 20 at a time", || {
        direct_pods(api.clone(), "direct", n, args.clients)
    })
    .await?;
    let rs = measure(&api, "bench", n, "ReplicaSet", || async {
        api.post(
            "/apis/apps/v1/namespaces/bench/replicasets",
            &json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "web"},
                "spec": {"replicas": n, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_template()}}}),
        )
        .await
        .map(|_| ())
    })
    .await?;
    beating.abort();
    let status = api
        .get("/apis/apps/v1/namespaces/bench/replicasets/web")
        .await?;

    println!(
        "{n} pods on {} nodes (embedded store, no kubelet)\n",
        args.nodes
    );
    println!(
        "{:<24} {:>14} {:>14} {:>12}",
        "pods made by", "all exist ms", "all bound ms", "pods/s made"
    );
    for r in [&direct, &rs] {
        println!(
            "{:<24} {:>14.0} {:>14.0} {:>12.0}",
            r.name,
            ms(r.created),
            ms(r.bound),
            n as f64 / r.created.as_secs_f64()
        );
    }
    let met = rs.created <= CREATE_TARGET && rs.bound <= BIND_TARGET;
    println!(
        "\ntargets: all made <= {} ms, all bound <= {} ms: {}",
        CREATE_TARGET.as_millis(),
        BIND_TARGET.as_millis(),
        if met { "met" } else { "MISSED" }
    );
    println!("ReplicaSet status: {}", status["status"]);

    let results: Vec<Value> = [&direct, &rs]
        .iter()
        .map(
            |r| json!({"name": r.name, "all_exist_ms": ms(r.created), "all_bound_ms": ms(r.bound)}),
        )
        .collect();
    let doc = json!({
        "replicas": n,
        "nodes": args.nodes,
        "results": results,
        "targets": {"create_ms": ms(CREATE_TARGET), "bind_ms": ms(BIND_TARGET), "met": met},
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&doc)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
