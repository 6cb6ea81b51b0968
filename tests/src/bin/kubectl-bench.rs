//! `kubectl-bench`: how long `kubectl get pods` takes with many pods, for our kubectl and
//! the system's real kubectl in the same run, wall time including process start; and
//! `kubectl version --client`, which measures start-up alone.
//!
//! The API server runs as its own process (the `apiserver` binary next to this one), and
//! so does our kubectl (the `kubectl` binary next to this one). The two kubectls take
//! turns, so that a slower or faster moment of the machine touches both alike.
//!
//!     cargo build --release -p minik8s-cmd -p minik8s-tests --bins
//!     target/release/kubectl-bench [--pods 1000] [--runs 30] [--out FILE]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use minik8s_api::resource::PODS;
use minik8s_client::{Client, Config, DynamicApi};
use minik8s_tests::bench::{free_port, percentile_ms, sibling_binary};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
struct Args {
    /// Pods to create before measuring.
    #[arg(long, default_value_t = 1000)]
    pods: usize,
    /// Measured runs of each command.
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// The real kubectl (default: the first `kubectl` on PATH outside any `target`).
    #[arg(long)]
    real_kubectl: Option<PathBuf>,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/bench/kubectl.json")]
    out: PathBuf,
}

/// Wall times of one command.
struct Timing {
    name: String,
    samples: Vec<Duration>,
}

impl Timing {
    fn new(name: &str) -> Timing {
        Timing {
            name: name.to_string(),
            samples: Vec::new(),
        }
    }

    fn pct(&self, p: f64) -> f64 {
        percentile_ms(&self.samples, p)
    }

    fn median(&self) -> f64 {
        self.pct(0.5)
    }

    fn json(&self) -> Value {
        json!({"name": self.name, "runs": self.samples.len(), "median_ms": self.median(),
               "p90_ms": self.pct(0.9), "min_ms": self.pct(0.0)})
    }
}

struct ApiProcess {
    child: Child,
    url: String,
}

impl ApiProcess {
    fn start(bin: &Path, data: &Path) -> anyhow::Result<ApiProcess> {
        let port = free_port()?;
        let child = Command::new(bin)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(ApiProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn real_kubectl() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|d| !d.components().any(|c| c.as_os_str() == "target"))
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .context("no kubectl on PATH to compare with; pass --real-kubectl")
}

async fn wait_ready(client: &Client) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        let ready = client
            .request_text(minik8s_client::Method::GET, "/readyz", None, None)
            .await;
        if ready.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the apiserver did not become ready")
}

fn pod(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("bench-{i:05}"), "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.36",
            "command": ["sleep", "3600"], "ports": [{"containerPort": 8080}],
            "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}]}})
}

/// A kubectl command line with its configuration.
struct Kubectl {
    bin: PathBuf,
    base: Vec<String>,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .args(&self.base)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        cmd
    }

    /// One timed run; stdout is read (and dropped) as a terminal or pipe would take it.
    fn time(&self, args: &[&str]) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let out = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()?;
        let elapsed = started.elapsed();
        if !out.status.success() {
            bail!(
                "{} {args:?} failed: {}",
                self.bin.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(elapsed)
    }

    fn output(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.command(args).output()?;
        if !out.status.success() {
            bail!(
                "{} {args:?} failed: {}",
                self.bin.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The table without the AGE column's values, which tick between runs.
fn without_ages(table: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| {
            let mut cells: Vec<&str> = l.split_whitespace().collect();
            if cells.len() >= 5 {
                cells.truncate(4);
            }
            cells.join(" ")
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let apiserver = sibling_binary("apiserver")?;
    let ours_bin = sibling_binary("kubectl")?;
    let real_bin = match &args.real_kubectl {
        Some(p) => p.clone(),
        None => real_kubectl()?,
    };
    let dir = tempfile::tempdir()?;
    let api = ApiProcess::start(&apiserver, &dir.path().join("data"))?;
    let client = Client::new(Config::new(api.url.parse()?))?;
    wait_ready(&client).await?;

    let started = Instant::now();
    let pods = DynamicApi::new(client.clone(), &PODS, Some("default".into()));
    let results: Vec<anyhow::Result<Value>> = futures::stream::iter(0..args.pods)
        .map(|i| {
            let pods = pods.clone();
            async move { Ok(pods.create(&pod(i)).await?) }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for r in results {
        r.context("creating the pods")?;
    }
    eprintln!(
        "created {} pods in {:.1}s",
        args.pods,
        started.elapsed().as_secs_f64()
    );

    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: bench\n  cluster:\n    server: {}\ncontexts:\n- name: bench\n  context:\n    cluster: bench\n    user: bench\n    namespace: default\ncurrent-context: bench\nusers:\n- name: bench\n  user: {{}}\n",
            api.url
        ),
    )?;
    let kubeconfig = kubeconfig.display().to_string();
    let ours = Kubectl {
        bin: ours_bin,
        base: vec!["--kubeconfig".into(), kubeconfig.clone()],
    };
    let real = Kubectl {
        bin: real_bin.clone(),
        base: vec![
            "--kubeconfig".into(),
            kubeconfig,
            "--cache-dir".into(),
            dir.path().join("cache").display().to_string(),
        ],
    };

    // Both print the same table (and the real kubectl fills its discovery cache).
    let ours_table = ours.output(&["get", "pods"])?;
    let real_table = real.output(&["get", "pods"])?;
    if ours_table.lines().count() != args.pods + 1 {
        bail!(
            "ours printed {} lines for {} pods",
            ours_table.lines().count(),
            args.pods
        );
    }
    if without_ages(&ours_table) != without_ages(&real_table) {
        bail!("our `get pods` differs from the real kubectl's");
    }

    let mut ours_get = Timing::new("ours: get pods");
    let mut real_get = Timing::new("real: get pods");
    let mut ours_version = Timing::new("ours: version --client");
    let mut real_version = Timing::new("real: version --client");
    for _ in 0..args.runs {
        ours_get.samples.push(ours.time(&["get", "pods"])?);
        real_get.samples.push(real.time(&["get", "pods"])?);
        ours_version
            .samples
            .push(ours.time(&["version", "--client"])?);
        real_version
            .samples
            .push(real.time(&["version", "--client"])?);
    }

    let speedup = real_get.median() / ours_get.median();
    println!(
        "kubectl get pods with {} pods, {} runs each (wall time including process start)\n",
        args.pods, args.runs
    );
    println!(
        "{:<26} {:>10} {:>10} {:>10}",
        "command", "median ms", "p90 ms", "min ms"
    );
    for t in [&ours_get, &real_get, &ours_version, &real_version] {
        println!(
            "{:<26} {:>10.1} {:>10.1} {:>10.1}",
            t.name,
            t.median(),
            t.pct(0.9),
            t.pct(0.0)
        );
    }
    println!("\nours is {speedup:.1}x faster than the real kubectl for get pods");
    let targets = [
        ("ours get pods median <= 150 ms", ours_get.median() <= 150.0),
        ("ours at least 3x faster", speedup >= 3.0),
        (
            "ours version --client median <= 10 ms",
            ours_version.median() <= 10.0,
        ),
    ];
    for (what, met) in targets {
        println!("{} {what}", if met { "met:    " } else { "MISSED: " });
    }

    let report = json!({
        "pods": args.pods,
        "runs": args.runs,
        "real_kubectl": real_bin.display().to_string(),
        "results": [ours_get.json(), real_get.json(), ours_version.json(), real_version.json()],
        "get_pods_speedup": speedup,
        "targets_met": targets.iter().all(|(_, met)| *met),
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
