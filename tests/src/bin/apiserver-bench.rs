//! `apiserver-bench`: measures the API server on each store and prints a table.
//!
//! The server runs as its own process (the `apiserver` binary next to this one), so its
//! memory is measured alone. Beside each API figure stands the store's own figure from the
//! same run (the embedded store's or etcd's, without HTTP and the registry), because
//! absolute times on a shared machine are noise and ratios are not.
//!
//!     cargo build --release -p minik8s-cmd -p minik8s-tests --bins
//!     target/release/apiserver-bench [--store embedded|etcd|both] [--out FILE]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use futures::StreamExt;
use minik8s_storage::Store;
use minik8s_storage::embedded::EmbeddedStore;
use minik8s_storage::etcd::EtcdStore;
use minik8s_tests::bench::{free_port, percentile_ms, sibling_binary};
use minik8s_tests::etcd::EtcdProcess;
use minik8s_tests::proc;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
struct Args {
    /// Which store(s) to measure.
    #[arg(long, default_value = "both")]
    store: String,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/bench/apiserver.json")]
    out: PathBuf,
    /// Seconds each GET measurement runs.
    #[arg(long, default_value_t = 5)]
    get_seconds: u64,
}

/// Latency samples of one measurement.
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
        json!({"name": self.name, "count": self.lat.len(), "per_second": self.rate(),
               "p50_ms": self.pct(0.5), "p99_ms": self.pct(0.99)})
    }
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.36",
            "command": ["sleep", "3600"], "ports": [{"containerPort": 8080}],
            "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}]}})
}

/// How long the API server's idle CPU is measured, before the load and after it.
const IDLE_WINDOW: Duration = Duration::from_secs(5);

struct ApiProcess {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl ApiProcess {
    fn start(datastore: Option<&str>) -> anyhow::Result<ApiProcess> {
        let bin = sibling_binary("apiserver")?;
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let mut cmd = Command::new(bin);
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(ep) = datastore {
            cmd.arg("--datastore-endpoint").arg(format!("etcd://{ep}"));
        }
        Ok(ApiProcess {
            child: cmd.spawn()?,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        })
    }

    fn rss_mib(&self) -> f64 {
        proc::mem_mib(self.child.id(), "VmRSS")
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The API server's CPU, in percent of a core, over a few seconds with no requests.
async fn idle_cpu(api: &ApiProcess) -> anyhow::Result<f64> {
    proc::idle_cpu_percent(api.child.id(), IDLE_WINDOW).await
}

async fn wait_ready(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("apiserver at {url} did not become ready")
}

/// Runs `total` operations over `clients` concurrent workers.
async fn run_ops<F, Fut>(name: &str, clients: usize, total: usize, op: F) -> anyhow::Result<Samples>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in (c..total).step_by(clients) {
                let t = Instant::now();
                op(i).await?;
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

/// Runs `op` from `clients` workers for `secs` seconds.
async fn run_for<F, Fut>(name: &str, clients: usize, secs: u64, op: F) -> anyhow::Result<Samples>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < end {
                let t = Instant::now();
                op().await?;
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

async fn expect(resp: reqwest::Response, code: u16) -> anyhow::Result<reqwest::Response> {
    if resp.status().as_u16() != code {
        bail!(
            "expected {code}, got {}: {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    Ok(resp)
}

/// The store on its own: creates and gets straight through the `Store` trait.
async fn store_baseline(store: Arc<dyn Store>, label: &str) -> anyhow::Result<Vec<Samples>> {
    let body = serde_json::to_vec(&pod("x"))?;
    let mut out = Vec::new();
    for clients in [1, 32] {
        let (s, b) = (store.clone(), body.clone());
        out.push(
            run_ops(
                &format!("{label} store create c={clients}"),
                clients,
                if clients == 1 { 300 } else { 2000 },
                move |i| {
                    let (s, b) = (s.clone(), b.clone());
                    async move {
                        s.create(&format!("/bench/{clients}/{i}"), b).await?;
                        Ok(())
                    }
                },
            )
            .await?,
        );
    }
    let s = store.clone();
    out.push(
        run_for(&format!("{label} store get c=1"), 1, 2, move || {
            let s = s.clone();
            async move {
                s.get("/bench/1/0").await?;
                Ok(())
            }
        })
        .await?,
    );
    Ok(out)
}

async fn bench_api(
    label: &str,
    api: &ApiProcess,
    get_seconds: u64,
) -> anyhow::Result<(Vec<Samples>, Value)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    wait_ready(&http, &api.url).await?;
    let cpu_idle = idle_cpu(api).await?;
    let rss_idle = api.rss_mib();
    let base = format!("{}/api/v1/namespaces/default/pods", api.url);
    let mut out = Vec::new();

    // 300 + 700 creates leave exactly 1000 pods for LIST and memory.
    for (clients, total, tag) in [(1usize, 300usize, "a"), (32, 700, "b")] {
        let (h, u) = (http.clone(), base.clone());
        out.push(
            run_ops(
                &format!("{label} CREATE c={clients}"),
                clients,
                total,
                move |i| {
                    let (h, u) = (h.clone(), u.clone());
                    async move {
                        expect(
                            h.post(&u).json(&pod(&format!("{tag}{i}"))).send().await?,
                            201,
                        )
                        .await?;
                        Ok(())
                    }
                },
            )
            .await?,
        );
    }
    let (h, u) = (http.clone(), base.clone());
    let list = run_ops(&format!("{label} LIST 1000 pods"), 1, 20, move |_| {
        let (h, u) = (h.clone(), u.clone());
        async move {
            let v: Value = h
                .get(format!("{u}?limit=1000"))
                .send()
                .await?
                .json()
                .await?;
            if v["items"].as_array().map_or(0, Vec::len) < 1000 {
                bail!("LIST returned fewer than 1000 pods");
            }
            Ok(())
        }
    })
    .await?;
    out.push(list);
    let rss_1000 = api.rss_mib();
    // The scheduler writes PodScheduled=False onto these pods (there is no node) while
    // they are updated here: a stale read gets 409 Conflict, and like any real client the
    // benchmark reads again and retries. How many it needed is reported.
    let conflicts = Arc::new(AtomicUsize::new(0));
    for (clients, total, tag) in [(1usize, 300usize, "a"), (32, 700, "b")] {
        let (h, u, c) = (http.clone(), base.clone(), conflicts.clone());
        out.push(
            run_ops(
                &format!("{label} UPDATE c={clients}"),
                clients,
                total,
                move |i| {
                    let (h, u, c) = (h.clone(), u.clone(), c.clone());
                    async move {
                        let url = format!("{u}/{tag}{i}");
                        loop {
                            let mut p: Value =
                                expect(h.get(&url).send().await?, 200).await?.json().await?;
                            p["metadata"]["labels"]["round"] = json!("1");
                            let resp = h.put(&url).json(&p).send().await?;
                            if resp.status() == reqwest::StatusCode::CONFLICT {
                                c.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            expect(resp, 200).await?;
                            return Ok(());
                        }
                    }
                },
            )
            .await?,
        );
    }

    for clients in [1usize, 16] {
        let (h, u) = (http.clone(), format!("{base}/a0"));
        out.push(
            run_for(
                &format!("{label} GET c={clients}"),
                clients,
                get_seconds,
                move || {
                    let (h, u) = (h.clone(), u.clone());
                    async move {
                        expect(h.get(&u).send().await?, 200).await?.bytes().await?;
                        Ok(())
                    }
                },
            )
            .await?,
        );
    }

    out.push(watch_delivery(label, &http, &base).await?);
    let cpu_1000 = idle_cpu(api).await?;
    let extra = json!({"rss_idle_mib": rss_idle, "rss_1000_pods_mib": rss_1000,
        "update_conflicts_retried": conflicts.load(Ordering::Relaxed),
        "idle_cpu_percent_of_core": cpu_idle, "idle_cpu_1000_pods_percent_of_core": cpu_1000});
    Ok((out, extra))
}

/// 100 watchers; each write's delivery time to every watcher, from the moment the write
/// was sent.
async fn watch_delivery(
    label: &str,
    http: &reqwest::Client,
    base: &str,
) -> anyhow::Result<Samples> {
    const WATCHERS: usize = 100;
    const WRITES: usize = 100;
    let target = format!("{base}/a1");
    let current: Value = http.get(&target).send().await?.json().await?;
    let rv = current["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let sent: Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>> = Arc::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let resp = http
            .get(format!(
                "{base}?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3Da1"
            ))
            .send()
            .await?;
        let tx = tx.clone();
        watchers.push(tokio::spawn(async move {
            let mut stream = resp.bytes_stream();
            let mut buf = Vec::new();
            while let Some(Ok(chunk)) = stream.next().await {
                buf.extend_from_slice(&chunk);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let at = Instant::now();
                    if let Ok(ev) = serde_json::from_slice::<Value>(&line)
                        && let Some(label) = ev["object"]["metadata"]["labels"]["w"].as_str()
                    {
                        let _ = tx.send((label.to_string(), at));
                    }
                }
            }
        }));
    }
    drop(tx);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    for i in 0..WRITES {
        sent.lock().unwrap().insert(i.to_string(), Instant::now());
        let patch = json!({"metadata": {"labels": {"w": i.to_string()}}});
        expect(
            http.patch(&target)
                .header("content-type", "application/merge-patch+json")
                .body(patch.to_string())
                .send()
                .await?,
            200,
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut lat = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while lat.len() < WATCHERS * WRITES {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((label, at))) => {
                if let Some(t) = sent.lock().unwrap().get(&label) {
                    lat.push(at.saturating_duration_since(*t));
                }
            }
            _ => bail!(
                "watch delivery: {} of {} events arrived",
                lat.len(),
                WATCHERS * WRITES
            ),
        }
    }
    for w in watchers {
        w.abort();
    }
    Ok(Samples {
        name: format!("{label} WATCH delivery x{WATCHERS}"),
        lat,
        elapsed: start.elapsed(),
    })
}

fn print_table(rows: &[Samples], extras: &[(String, Value)]) {
    println!(
        "{:<36} {:>8} {:>10} {:>9} {:>9}",
        "measurement", "count", "per sec", "p50 ms", "p99 ms"
    );
    for s in rows {
        println!(
            "{:<36} {:>8} {:>10.0} {:>9.2} {:>9.2}",
            s.name,
            s.lat.len(),
            s.rate(),
            s.pct(0.5),
            s.pct(0.99)
        );
    }
    for (label, v) in extras {
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        println!(
            "{label}: apiserver RSS idle {:.1} MiB, with 1000 pods {:.1} MiB; idle CPU {:.2} % of a core, with 1000 pods {:.2} %; UPDATE conflicts retried: {}",
            f("rss_idle_mib"),
            f("rss_1000_pods_mib"),
            f("idle_cpu_percent_of_core"),
            f("idle_cpu_1000_pods_percent_of_core"),
            v["update_conflicts_retried"]
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut rows = Vec::new();
    let mut extras = Vec::new();
    if matches!(args.store.as_str(), "embedded" | "both") {
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.path().join("b.redb"))?);
        rows.extend(store_baseline(store, "embedded").await?);
        let api = ApiProcess::start(None)?;
        let (r, e) = bench_api("embedded", &api, args.get_seconds).await?;
        rows.extend(r);
        extras.push(("embedded".to_string(), e));
    }
    if matches!(args.store.as_str(), "etcd" | "both") {
        let etcd = EtcdProcess::start()?;
        let store: Arc<dyn Store> = Arc::new(EtcdStore::connect(&[etcd.endpoint()]).await?);
        rows.extend(store_baseline(store, "etcd").await?);
        let etcd2 = EtcdProcess::start()?;
        let api = ApiProcess::start(Some(&etcd2.endpoint()))?;
        let (r, e) = bench_api("etcd", &api, args.get_seconds).await?;
        rows.extend(r);
        extras.push(("etcd".to_string(), e));
    }
    print_table(&rows, &extras);
    let doc = json!({
        "results": rows.iter().map(Samples::json).collect::<Vec<_>>(),
        "memory": extras.iter().map(|(l, v)| json!({"store": l, "rss": v})).collect::<Vec<_>>(),
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&doc)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
