//! `taskset-bench`: hosts discovery at the size of a real job — a 50-pod TaskSet on one
//! node — and prints a table.
//!
//! * Start: from the POST of the TaskSet until every member's hosts file (the kubelet's
//!   per-pod file, read on the host) lists all 50 members with their addresses; beside it,
//!   from the same run, the time until all 50 pods have an address and until all 50 run,
//!   as the API server reports them. A sample of the files is also read inside its
//!   container (`docker exec cat /etc/hosts`).
//! * Retry: a member's container is killed; it exits non-zero, the TaskSet controller
//!   creates the pod again, and the kubelet gives it a new address. Measured from the
//!   moment the new address is in the API (a watch on the pods) — and from the moment the
//!   new pause container started, when the address came to exist — until the last of the
//!   other 49 members' files has it, the files polled every few milliseconds.
//!
//! The API server (with its controllers) runs in this process; the kubelet runs as its own
//! process (the `kubelet` binary next to this one), or in this process with `--in-process`.
//!
//!     cargo build --release -p minik8s-cmd -p minik8s-tests --bins
//!     target/release/taskset-bench [--workers 49] [--kills 20] [--poll-ms 5] [--out FILE]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use minik8s_api::k8s_openapi::api::core::v1::Pod;
use minik8s_client::{Api, ListParams, WatcherEvent, watcher};
use minik8s_kubelet::hosts::HOSTS_FILE;
use minik8s_kubelet::labels::{ContainerKey, Role};
use minik8s_kubelet::pod::spec::pod_dir;
use minik8s_kubelet::runtime::{ContainerRuntime, ContainerState};
use minik8s_tests::bench::sibling_binary;
use minik8s_tests::kubelet::{BUSYBOX, TestNode};
use serde_json::{Value, json};

const TASKSET: &str = "bench";
const NAMESPACE: &str = "default";

#[derive(Parser, Debug)]
struct Args {
    /// Replicas of the `worker` role; the `ps` role has one more member.
    #[arg(long, default_value_t = 49)]
    workers: u32,
    /// Members killed one after another, each retried by the TaskSet.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// How often the hosts files are read while a change is awaited.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
    /// Run the kubelet in this process instead of as its own.
    #[arg(long)]
    in_process: bool,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/bench/taskset.json")]
    out: PathBuf,
}

// ---------------------------------------------------------------------------------------
// The pods, as the API server reports them

/// One pod as the watch last showed it, and when it first showed what matters here.
#[derive(Clone, Debug)]
struct Seen {
    uid: String,
    ip: Option<String>,
    /// When this uid was first seen with an address.
    ip_at: Option<Instant>,
    /// When this uid was first seen running every container.
    running_at: Option<Instant>,
}

/// By pod name.
type Pods = Arc<Mutex<HashMap<String, Seen>>>;

fn all_running(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    let want = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    let statuses = status.container_statuses.as_deref().unwrap_or_default();
    status.phase.as_deref() == Some("Running")
        && want > 0
        && statuses.len() == want
        && statuses
            .iter()
            .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
}

fn observe(pods: &Pods, pod: &Pod, at: Instant) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
    let mut pods = pods.lock().unwrap();
    let seen = pods
        .entry(name)
        .and_modify(|s| {
            if s.uid != uid {
                *s = Seen {
                    uid: uid.clone(),
                    ip: None,
                    ip_at: None,
                    running_at: None,
                };
            }
        })
        .or_insert_with(|| Seen {
            uid: uid.clone(),
            ip: None,
            ip_at: None,
            running_at: None,
        });
    if ip.is_some() && seen.ip_at.is_none() {
        seen.ip_at = Some(at);
    }
    seen.ip = ip;
    if all_running(pod) && seen.running_at.is_none() {
        seen.running_at = Some(at);
    }
}

/// Follows the namespace's pods into `pods`, stamping each event as it arrives.
fn watch_pods(node: &TestNode) -> Pods {
    let pods: Pods = Arc::default();
    let api: Api<Pod> = Api::namespaced(node.client.clone(), NAMESPACE);
    let tracked = pods.clone();
    tokio::spawn(async move {
        let mut events = watcher(api, ListParams::default()).boxed();
        while let Some(event) = events.next().await {
            let at = Instant::now();
            match event {
                Ok(WatcherEvent::Restarted(list)) => {
                    for pod in &list {
                        observe(&tracked, pod, at);
                    }
                }
                Ok(WatcherEvent::Applied(pod)) => observe(&tracked, &pod, at),
                Ok(WatcherEvent::Deleted(pod)) => {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let mut pods = tracked.lock().unwrap();
                    if pods.get(&name).map(|s| &s.uid) == pod.metadata.uid.as_ref() {
                        pods.remove(&name);
                    }
                }
                Err(e) => eprintln!("watching the pods: {e}"),
            }
        }
    });
    pods
}

/// Waits until `check` holds for the tracked pods.
async fn wait_pods<T>(
    pods: &Pods,
    what: &str,
    deadline: Duration,
    check: impl Fn(&HashMap<String, Seen>) -> Option<T>,
) -> anyhow::Result<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check(&pods.lock().unwrap()) {
            return Ok(v);
        }
        if Instant::now() >= end {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The hosts files

/// A member of the TaskSet: its pod's name and its hostname.
#[derive(Clone, Debug)]
struct Member {
    pod: String,
    host: String,
}

fn members(workers: u32) -> Vec<Member> {
    let role = |role: &str, i: u32| Member {
        pod: format!("{TASKSET}-{role}-{i}"),
        host: format!("{role}-{i}"),
    };
    std::iter::once(role("ps", 0))
        .chain((0..workers).map(|i| role("worker", i)))
        .collect()
}

/// The member lines of a hosts file: hostname → address.
fn member_ips(hosts: &str) -> BTreeMap<String, String> {
    let suffix = format!(".{TASKSET}");
    hosts
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let ip = words.next()?;
            let host = words.next()?;
            let full = words.next()?;
            (full.strip_suffix(&suffix) == Some(host)).then(|| (host.to_string(), ip.to_string()))
        })
        .collect()
}

/// Reads each file every `every` until `done` says yes to its content (a missing file is
/// not done); returns when each became done, and its content then. Runs on a thread of
/// its own, so that the runtime's workers are not held up.
async fn poll_files(
    files: Vec<PathBuf>,
    every: Duration,
    deadline: Duration,
    done: impl Fn(usize, &str) -> bool + Send + 'static,
) -> anyhow::Result<Vec<(Instant, String)>> {
    tokio::task::spawn_blocking(move || {
        let end = Instant::now() + deadline;
        let mut results: Vec<Option<(Instant, String)>> = vec![None; files.len()];
        let mut left: Vec<usize> = (0..files.len()).collect();
        while !left.is_empty() {
            left.retain(|&i| match std::fs::read_to_string(&files[i]) {
                Ok(content) if done(i, &content) => {
                    results[i] = Some((Instant::now(), content));
                    false
                }
                _ => true,
            });
            if left.is_empty() {
                break;
            }
            if Instant::now() >= end {
                bail!(
                    "{} of {} hosts files never got there within {deadline:?}, e.g. {}",
                    left.len(),
                    files.len(),
                    files[left[0]].display()
                );
            }
            std::thread::sleep(every);
        }
        Ok(results.into_iter().flatten().collect())
    })
    .await?
}

// ---------------------------------------------------------------------------------------
// Statistics

/// The `p` quantile (nearest rank) of signed milliseconds; 0 when empty.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// Milliseconds from `from` to `to`, negative when `to` came first.
fn signed_ms(from: Instant, to: Instant) -> f64 {
    match to.checked_duration_since(from) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -(from.duration_since(to).as_secs_f64() * 1000.0),
    }
}

struct Row {
    name: String,
    ms: Vec<f64>,
}

impl Row {
    fn new(name: &str, ms: Vec<f64>) -> Row {
        Row {
            name: name.to_string(),
            ms,
        }
    }
    fn json(&self) -> Value {
        json!({"name": self.name, "count": self.ms.len(),
               "p50_ms": percentile(&self.ms, 0.5), "p99_ms": percentile(&self.ms, 0.99),
               "max_ms": percentile(&self.ms, 1.0), "samples_ms": self.ms})
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<58} {:>5} {:>9} {:>9} {:>9}",
        "measurement", "count", "p50 ms", "p99 ms", "max ms"
    );
    for r in rows {
        println!(
            "{:<58} {:>5} {:>9.1} {:>9.1} {:>9.1}",
            r.name,
            r.ms.len(),
            percentile(&r.ms, 0.5),
            percentile(&r.ms, 0.99),
            percentile(&r.ms, 1.0)
        );
    }
}

// ---------------------------------------------------------------------------------------
// The run

fn taskset(workers: u32) -> Value {
    let template = json!({"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", "sleep 1d; exit 0"]}]}});
    json!({
        "apiVersion": "minik8s.io/v1alpha1", "kind": "TaskSet",
        "metadata": {"name": TASKSET},
        "spec": {"retryPolicy": {"retry": true, "maxRetryCount": 5}, "roles": [
            {"name": "ps", "replicas": 1, "template": template},
            {"name": "worker", "replicas": workers, "template": template},
        ]}
    })
}

struct Bench<'a> {
    node: &'a TestNode,
    pods: Pods,
    members: Vec<Member>,
    root_dir: PathBuf,
    poll: Duration,
}

impl Bench<'_> {
    fn hosts_file(&self, uid: &str) -> PathBuf {
        pod_dir(&self.root_dir, uid).join(HOSTS_FILE)
    }

    fn seen(&self, pod: &str) -> Option<Seen> {
        self.pods.lock().unwrap().get(pod).cloned()
    }

    /// Every member's current address, by hostname.
    fn api_ips(&self) -> anyhow::Result<BTreeMap<String, String>> {
        self.members
            .iter()
            .map(|m| {
                let ip = self.seen(&m.pod).and_then(|s| s.ip);
                Ok((
                    m.host.clone(),
                    ip.context(format!("{} has no address", m.pod))?,
                ))
            })
            .collect()
    }

    /// The running container of the pod, of the given role.
    async fn container(&self, uid: &str, role: Role) -> anyhow::Result<String> {
        let containers = self.node.containers(Some(uid)).await?;
        containers
            .into_iter()
            .filter(|c| c.state == ContainerState::Running)
            .find(|c| ContainerKey::from_labels(&c.labels).is_some_and(|k| k.role == role))
            .map(|c| c.id)
            .context(format!("pod {uid} has no running {role:?} container"))
    }

    /// When the pod's pause container started, on this process's clock.
    async fn sandbox_started(&self, uid: &str) -> anyhow::Result<Instant> {
        let id = self.container(uid, Role::Sandbox).await?;
        let info = self
            .node
            .docker
            .inspect_container(&id)
            .await?
            .context("the pause container is gone")?;
        let started = info.started_at.context("no start time")?.as_nanosecond();
        let (now_instant, now_system) = (Instant::now(), SystemTime::now());
        let now_ns = now_system
            .duration_since(SystemTime::UNIX_EPOCH)?
            .as_nanos() as i128;
        let ago = Duration::from_nanos(u64::try_from(now_ns - started).unwrap_or(0));
        Ok(now_instant - ago)
    }

    /// (a): from the POST until every file lists every member.
    async fn start(&self, workers: u32) -> anyhow::Result<Vec<Row>> {
        let n = self.members.len();
        let t0 = Instant::now();
        let r = reqwest::Client::new()
            .post(format!(
                "{}/apis/minik8s.io/v1alpha1/namespaces/{NAMESPACE}/tasksets",
                self.node.api.url
            ))
            .json(&taskset(workers))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("creating the TaskSet: {}", r.text().await?);
        }
        // The files are named by uid: wait for the pods to exist first (the controller
        // creates them at once).
        let uids = wait_pods(
            &self.pods,
            "the TaskSet's pods",
            Duration::from_secs(60),
            |p| {
                self.members
                    .iter()
                    .map(|m| p.get(&m.pod).map(|s| s.uid.clone()))
                    .collect::<Option<Vec<_>>>()
            },
        )
        .await?;
        let files: Vec<PathBuf> = uids.iter().map(|u| self.hosts_file(u)).collect();
        let hosts: Vec<String> = self.members.iter().map(|m| m.host.clone()).collect();
        let complete = poll_files(files, self.poll, Duration::from_secs(300), move |_, c| {
            let ips = member_ips(c);
            hosts.iter().all(|h| ips.contains_key(h))
        })
        .await?;
        let files_at = complete.iter().map(|(t, _)| *t).max().unwrap_or(t0);
        let (ips_at, running_at) = wait_pods(
            &self.pods,
            "every pod running",
            Duration::from_secs(300),
            |p| {
                let seen: Vec<&Seen> = self.members.iter().filter_map(|m| p.get(&m.pod)).collect();
                if seen.len() < n {
                    return None;
                }
                let ips = seen.iter().map(|s| s.ip_at).collect::<Option<Vec<_>>>()?;
                let running = seen
                    .iter()
                    .map(|s| s.running_at)
                    .collect::<Option<Vec<_>>>()?;
                Some((ips.into_iter().max()?, running.into_iter().max()?))
            },
        )
        .await?;
        // The files had the real addresses, as the API server has them now.
        let api = self.api_ips()?;
        for (m, (_, content)) in self.members.iter().zip(&complete) {
            if member_ips(content) != api {
                bail!("{}'s hosts file does not match the API:\n{content}", m.pod);
            }
        }
        // And containers see them at /etc/hosts.
        for i in [0, n / 2, n - 1] {
            let uid = &uids[i];
            let id = self.container(uid, Role::App).await?;
            let command = ["cat".to_string(), "/etc/hosts".to_string()];
            let out = self
                .node
                .docker
                .exec(&id, &command, Duration::from_secs(20))
                .await?;
            if out.exit_code != 0 || member_ips(&out.output) != api {
                bail!(
                    "/etc/hosts inside {} does not match the API:\n{}",
                    self.members[i].pod,
                    out.output
                );
            }
        }
        let since = |t: Instant| vec![signed_ms(t0, t)];
        Ok(vec![
            Row::new(
                &format!("create → all {n} pods have an IP (API)"),
                since(ips_at),
            ),
            Row::new(
                &format!("create → all {n} pods Running (API)"),
                since(running_at),
            ),
            Row::new(
                &format!("create → all {n} hosts files list all {n}"),
                since(files_at),
            ),
        ])
    }

    /// (b): one member killed and retried; what its peers' files do.
    async fn retry(&self, victim: usize) -> anyhow::Result<Retried> {
        let m = &self.members[victim];
        let old = self.seen(&m.pod).context("the victim is not known")?;
        let old_ip = old.ip.clone().context("the victim has no address")?;
        let peers: Vec<(PathBuf, String)> = self
            .members
            .iter()
            .filter(|p| p.pod != m.pod)
            .map(|p| {
                let seen = self.seen(&p.pod).context("a peer is not known")?;
                Ok((self.hosts_file(&seen.uid), p.pod.clone()))
            })
            .collect::<anyhow::Result<_>>()?;
        let app = self.container(&old.uid, Role::App).await?;
        let host = m.host.clone();
        let stale = old_ip.clone();
        let files = peers.iter().map(|(f, _)| f.clone()).collect();
        let poller = tokio::spawn(poll_files(
            files,
            self.poll,
            Duration::from_secs(120),
            move |_, c| member_ips(c).get(&host).is_some_and(|ip| *ip != stale),
        ));

        let killed_at = Instant::now();
        self.node
            .docker
            .docker()
            .kill_container(
                &app,
                None::<bollard::query_parameters::KillContainerOptions>,
            )
            .await
            .context("killing the member's container")?;
        let (new_uid, new_ip, api_at) = wait_pods(
            &self.pods,
            "the retried member's new address",
            Duration::from_secs(120),
            |p| {
                let s = p.get(&m.pod)?;
                (s.uid != old.uid)
                    .then(|| Some((s.uid.clone(), s.ip.clone()?, s.ip_at?)))
                    .flatten()
            },
        )
        .await?;
        let updated = poller.await??;
        for ((_, peer), (_, content)) in peers.iter().zip(&updated) {
            let ip = member_ips(content).get(&m.host).cloned();
            if ip.as_deref() != Some(new_ip.as_str()) {
                bail!(
                    "{peer}'s file has {ip:?} for {}, the API {new_ip}:\n{content}",
                    m.host
                );
            }
        }
        let last_file_at = updated.iter().map(|(t, _)| *t).max().unwrap_or(api_at);
        let sandbox_at = self.sandbox_started(&new_uid).await?;
        // Settled before the next one: the new member runs.
        wait_pods(
            &self.pods,
            "the retried member running",
            Duration::from_secs(120),
            |p| p.get(&m.pod).and_then(|s| s.running_at),
        )
        .await?;
        if new_ip == old_ip {
            bail!("{} was retried with its old address {old_ip}", m.pod);
        }
        Ok(Retried {
            kill_to_api: signed_ms(killed_at, api_at),
            kill_to_files: signed_ms(killed_at, last_file_at),
            api_to_files: signed_ms(api_at, last_file_at),
            sandbox_to_files: signed_ms(sandbox_at, last_file_at),
        })
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

struct Retried {
    kill_to_api: f64,
    kill_to_files: f64,
    api_to_files: f64,
    sandbox_to_files: f64,
}

async fn run(args: &Args, node: &mut TestNode) -> anyhow::Result<Value> {
    if args.in_process {
        node.start_kubelet()?;
    } else {
        node.start_kubelet_binary(&sibling_binary("kubelet")?)?;
    }
    let pods = watch_pods(node);
    let bench = Bench {
        node,
        pods,
        members: members(args.workers),
        root_dir: node.config()?.root_dir,
        poll: Duration::from_millis(args.poll_ms),
    };
    // The node is ready for pods once the scheduler can bind to it.
    minik8s_tests::wait_for("the node", Duration::from_secs(60), || async {
        let nodes: Api<minik8s_api::k8s_openapi::api::core::v1::Node> =
            Api::all(node.client.clone());
        let n = nodes.get_opt(&node.node).await.ok()??;
        let ready = n
            .status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let cidr = n.spec?.pod_cidr.is_some();
        (ready && cidr).then_some(())
    })
    .await?;
    let network = minik8s_kubelet::network_name(&node.node);
    minik8s_tests::wait_for("the pod network", Duration::from_secs(60), || async {
        node.docker
            .network_addresses(&network)
            .await
            .ok()
            .map(|_| ())
    })
    .await?;

    let mut rows = bench.start(args.workers).await?;
    let n = bench.members.len();
    println!("{n} members up; killing {} of them one by one", args.kills);
    let mut retried = Vec::new();
    // Spread over the workers, each killed once as long as there are enough of them.
    let workers = args.workers.max(1) as usize;
    let step = (5..).find(|s| gcd(*s, workers) == 1).unwrap_or(1);
    for k in 0..args.kills {
        let victim = 1 + (k * step) % workers;
        let r = bench.retry(victim).await?;
        println!(
            "  {}: API +{:.0} ms after the kill, last peer file {:+.1} ms from the API, \
             {:+.1} ms from the pause container's start",
            bench.members[victim].host, r.kill_to_api, r.api_to_files, r.sandbox_to_files
        );
        retried.push(r);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let peers = n - 1;
    let col = |f: fn(&Retried) -> f64| retried.iter().map(f).collect::<Vec<_>>();
    rows.extend([
        Row::new("kill → new IP in the API", col(|r| r.kill_to_api)),
        Row::new(
            &format!("kill → last of {peers} peer files has it"),
            col(|r| r.kill_to_files),
        ),
        Row::new(
            &format!("new IP in the API → last of {peers} peer files"),
            col(|r| r.api_to_files),
        ),
        Row::new(
            &format!("pause container started → last of {peers} peer files"),
            col(|r| r.sandbox_to_files),
        ),
    ]);
    print_table(&rows);
    Ok(json!({
        "members": n,
        "kills": args.kills,
        "poll_ms": args.poll_ms,
        "kubelet": if args.in_process { "in-process" } else { "process" },
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut node = TestNode::without_kubelet().await?;
    let result = run(&args, &mut node).await;
    if result.is_err() && !args.in_process {
        let log = node.process_log();
        let lines: Vec<&str> = log.lines().collect();
        eprintln!(
            "the kubelet's log ends with:\n{}",
            lines[lines.len().saturating_sub(30)..].join("\n")
        );
    }
    drop(node);
    let doc = result?;
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&doc)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
