//! Liveness, readiness and startup probes. One task per probe of a running container
//! runs it every `periodSeconds` and keeps the container's results, which the pod worker
//! reads: readiness makes the container ready, a failed liveness or startup probe makes the
//! worker restart it. A changed result wakes the worker.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, HTTPGetAction, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::events::{Recorder, WARNING, pod_reference};
use crate::runtime::ContainerRuntime;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    fn name(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// What the probes of one container found so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeResults {
    /// The readiness probe's verdict (false until it first succeeds).
    pub ready: bool,
    /// The startup probe succeeded.
    pub started: bool,
    /// The liveness probe failed `failureThreshold` times in a row: why.
    pub liveness_failed: Option<String>,
    /// The startup probe failed `failureThreshold` times in a row: why.
    pub startup_failed: Option<String>,
}

type Shared = Arc<Mutex<HashMap<String, ProbeResults>>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, HashMap<String, ProbeResults>> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The probes of one pod's containers.
pub struct Prober {
    runtime: Arc<dyn ContainerRuntime>,
    recorder: Recorder,
    wake: Arc<Notify>,
    results: Shared,
    tasks: HashMap<String, Vec<JoinHandle<()>>>,
}

/// Where a probe goes.
#[derive(Clone)]
struct Target {
    runtime: Arc<dyn ContainerRuntime>,
    container_id: String,
    pod_ip: Option<IpAddr>,
    container: Container,
}

impl Prober {
    pub fn new(runtime: Arc<dyn ContainerRuntime>, recorder: Recorder, wake: Arc<Notify>) -> Self {
        Prober {
            runtime,
            recorder,
            wake,
            results: Arc::default(),
            tasks: HashMap::new(),
        }
    }

    /// The container's results, with what holds without a probe: no readiness probe
    /// means ready, no startup probe means started.
    pub fn results(&self, container_id: &str, container: &Container) -> ProbeResults {
        let mut r = lock(&self.results)
            .get(container_id)
            .cloned()
            .unwrap_or_default();
        if container.startup_probe.is_none() {
            r.started = true;
        }
        if container.readiness_probe.is_none() {
            r.ready = r.started;
        } else {
            r.ready = r.ready && r.started;
        }
        r
    }

    /// Starts the probes of a running container if they are not running yet.
    pub fn ensure(
        &mut self,
        pod: &Pod,
        container: &Container,
        container_id: &str,
        started_at: Option<Timestamp>,
        pod_ip: Option<IpAddr>,
    ) {
        if self.tasks.contains_key(container_id) {
            return;
        }
        let target = Target {
            runtime: self.runtime.clone(),
            container_id: container_id.to_string(),
            pod_ip,
            container: container.clone(),
        };
        let mut tasks = Vec::new();
        for (kind, probe) in [
            (ProbeKind::Startup, &container.startup_probe),
            (ProbeKind::Liveness, &container.liveness_probe),
            (ProbeKind::Readiness, &container.readiness_probe),
        ] {
            let Some(probe) = probe.clone() else { continue };
            let worker = ProbeWorker {
                kind,
                probe,
                target: target.clone(),
                results: self.results.clone(),
                wake: self.wake.clone(),
                recorder: self.recorder.clone(),
                reference: pod_reference(
                    pod,
                    Some(format!("spec.containers{{{}}}", container.name)),
                ),
                started_at,
                has_startup_probe: container.startup_probe.is_some(),
            };
            tasks.push(tokio::spawn(worker.run()));
        }
        lock(&self.results)
            .entry(container_id.to_string())
            .or_default();
        self.tasks.insert(container_id.to_string(), tasks);
    }

    /// Stops the probes of every container not in `running`, and forgets their results.
    pub fn retain(&mut self, running: &HashSet<String>) {
        self.tasks.retain(|id, tasks| {
            let keep = running.contains(id);
            if !keep {
                tasks.iter().for_each(JoinHandle::abort);
            }
            keep
        });
        lock(&self.results).retain(|id, _| running.contains(id));
    }

    pub fn stop_all(&mut self) {
        self.retain(&HashSet::new());
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop_all();
    }
}

struct ProbeWorker {
    kind: ProbeKind,
    probe: Probe,
    target: Target,
    results: Shared,
    wake: Arc<Notify>,
    recorder: Recorder,
    reference: k8s_openapi::api::core::v1::ObjectReference,
    started_at: Option<Timestamp>,
    has_startup_probe: bool,
}

fn seconds(value: Option<i32>, default: i32, min: i32) -> Duration {
    Duration::from_secs(u64::try_from(value.unwrap_or(default).max(min)).unwrap_or(0))
}

impl ProbeWorker {
    fn started(&self) -> bool {
        !self.has_startup_probe
            || lock(&self.results)
                .get(&self.target.container_id)
                .is_some_and(|r| r.started)
    }

    /// Applies `change` to this container's results and wakes the worker if that changed
    /// anything.
    fn update(&self, change: impl FnOnce(&mut ProbeResults)) {
        let changed = {
            let mut all = lock(&self.results);
            let r = all.entry(self.target.container_id.clone()).or_default();
            let before = r.clone();
            change(r);
            *r != before
        };
        if changed {
            self.wake.notify_one();
        }
    }

    async fn run(self) {
        let p = &self.probe;
        let delay = seconds(p.initial_delay_seconds, 0, 0);
        let period = seconds(p.period_seconds, 10, 1);
        let timeout = seconds(p.timeout_seconds, 1, 1);
        let success_threshold = p.success_threshold.unwrap_or(1).max(1);
        let failure_threshold = p.failure_threshold.unwrap_or(3).max(1);
        // The initial delay counts from the container's start.
        let since_start = self
            .started_at
            .map(|t| Timestamp::now().duration_since(t))
            .and_then(|d| Duration::try_from(d).ok())
            .unwrap_or_default();
        tokio::time::sleep(delay.saturating_sub(since_start)).await;
        let (mut successes, mut failures) = (0, 0);
        loop {
            // Liveness and readiness wait for the startup probe.
            if self.kind == ProbeKind::Startup || self.started() {
                match run_probe(&self.probe, &self.target, timeout).await {
                    Ok(()) => {
                        successes += 1;
                        failures = 0;
                    }
                    Err(message) => {
                        failures += 1;
                        successes = 0;
                        self.recorder.event(
                            self.reference.clone(),
                            WARNING,
                            "Unhealthy",
                            &format!("{} probe failed: {message}", self.kind.name()),
                        );
                        if failures >= failure_threshold {
                            match self.kind {
                                ProbeKind::Liveness => {
                                    self.update(|r| r.liveness_failed = Some(message));
                                    return;
                                }
                                ProbeKind::Startup => {
                                    self.update(|r| r.startup_failed = Some(message));
                                    return;
                                }
                                ProbeKind::Readiness => self.update(|r| r.ready = false),
                            }
                        }
                    }
                }
                if successes >= success_threshold {
                    match self.kind {
                        ProbeKind::Readiness => self.update(|r| r.ready = true),
                        ProbeKind::Startup => {
                            self.update(|r| r.started = true);
                            return;
                        }
                        ProbeKind::Liveness => {}
                    }
                }
            }
            tokio::time::sleep(period).await;
        }
    }
}

/// Runs the probe once: `Ok` on success, the reason otherwise.
async fn run_probe(probe: &Probe, target: &Target, timeout: Duration) -> Result<(), String> {
    if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        return match target
            .runtime
            .exec(&target.container_id, &command, timeout)
            .await
        {
            Ok(out) if out.exit_code == 0 => Ok(()),
            Ok(out) => {
                let output = out.output.trim();
                Err(if output.is_empty() {
                    format!("command {command:?} exited with {}", out.exit_code)
                } else {
                    output.to_string()
                })
            }
            Err(crate::runtime::RuntimeError::Timeout { .. }) => Err(format!(
                "command {command:?} timed out after {}",
                crate::backoff::go_duration(timeout)
            )),
            Err(e) => Err(e.to_string()),
        };
    }
    if let Some(http) = &probe.http_get {
        return http_probe(http, target, timeout).await;
    }
    if let Some(tcp) = &probe.tcp_socket {
        let host = tcp
            .host
            .as_deref()
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .or(target.pod_ip.map(|ip| ip.to_string()))
            .ok_or("the pod has no IP address yet")?;
        let port = resolve_port(&tcp.port, &target.container)?;
        let address = format!("{host}:{port}");
        return match tokio::time::timeout(timeout, TcpStream::connect(&address)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {address}: {e}")),
            Err(_) => Err(format!("dial tcp {address}: i/o timeout")),
        };
    }
    Err("the probe has no handler this kubelet supports (exec, httpGet, tcpSocket)".into())
}

/// A port by number, or by the name of one of the container's ports.
fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("the container has no port named {name:?}"))
        }
    }
}

async fn http_probe(
    http: &HTTPGetAction,
    target: &Target,
    timeout: Duration,
) -> Result<(), String> {
    if http
        .scheme
        .as_deref()
        .is_some_and(|s| !s.eq_ignore_ascii_case("HTTP"))
    {
        return Err("only HTTP probes are supported, not HTTPS".into());
    }
    let host = http
        .host
        .as_deref()
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .or(target.pod_ip.map(|ip| ip.to_string()))
        .ok_or("the pod has no IP address yet")?;
    let port = resolve_port(&http.port, &target.container)?;
    let mut path = http.path.clone().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let host_header = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{host}:{port}"),
    };
    let url = format!("http://{host_header}{path}");
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    let has = |name: &str| {
        http.http_headers
            .iter()
            .flatten()
            .any(|h| h.name.eq_ignore_ascii_case(name))
    };
    let defaults = [
        ("Host", host_header.clone()),
        ("User-Agent", "kube-probe/1.33".to_string()),
        ("Accept", "*/*".to_string()),
    ];
    for (name, value) in defaults {
        if !has(name) {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    for h in http.http_headers.iter().flatten() {
        request.push_str(&format!("{}: {}\r\n", h.name, h.value));
    }
    request.push_str("Connection: close\r\n\r\n");
    let exchange = async {
        let address: SocketAddr = match host.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| format!("Get {url:?}: {e}"))?
                .next()
                .ok_or_else(|| format!("Get {url:?}: no address for {host}"))?,
        };
        let mut stream = TcpStream::connect(address)
            .await
            .map_err(|e| format!("Get {url:?}: dial tcp {address}: {e}"))?;
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("Get {url:?}: {e}"))?;
        // The status line is all a probe needs.
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.contains(&b'\n') && head.len() < 8192 {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("Get {url:?}: {e}"))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("Get {url:?}: malformed HTTP response"))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{ContainerConfig, FakeRuntime, NetworkMode};
    use serde_json::json;
    use tokio::net::TcpListener;

    fn container(value: serde_json::Value) -> Container {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn ports_by_number_or_name() {
        let c = container(json!({"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}));
        assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert!(resolve_port(&IntOrString::String("grpc".into()), &c).is_err());
    }

    async fn http_server(code: u16) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let reply = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
            s.write_all(reply.as_bytes()).await.unwrap();
            request.lines().map(str::to_string).collect()
        });
        (port, task)
    }

    fn target(runtime: Arc<dyn ContainerRuntime>, c: Container) -> Target {
        Target {
            runtime,
            container_id: "id".into(),
            pod_ip: Some("127.0.0.1".parse().unwrap()),
            container: c,
        }
    }

    #[tokio::test]
    async fn http_probes_send_path_and_headers_and_judge_the_status() {
        let (port, server) = http_server(204).await;
        let probe: Probe = serde_json::from_value(json!({"httpGet": {
            "path": "healthz", "port": port,
            "httpHeaders": [{"name": "X-Check", "value": "yes"}]}}))
        .unwrap();
        let rt: Arc<dyn ContainerRuntime> = Arc::new(FakeRuntime::new());
        let t = target(rt.clone(), Container::default());
        assert_eq!(run_probe(&probe, &t, Duration::from_secs(2)).await, Ok(()));
        let request = server.await.unwrap();
        assert_eq!(request[0], "GET /healthz HTTP/1.1");
        assert!(request.iter().any(|l| l == "X-Check: yes"));
        assert!(request.iter().any(|l| l == "User-Agent: kube-probe/1.33"));

        let (port, _server) = http_server(503).await;
        let probe: Probe =
            serde_json::from_value(json!({"httpGet": {"path": "/", "port": port}})).unwrap();
        assert_eq!(
            run_probe(&probe, &t, Duration::from_secs(2)).await,
            Err("HTTP probe failed with statuscode: 503".into())
        );
    }

    #[tokio::test]
    async fn tcp_and_exec_probes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let fake = FakeRuntime::new();
        fake.add_image("img");
        let id = fake
            .create_container(&ContainerConfig::new(
                "c",
                "img",
                NetworkMode::Network("n".into()),
            ))
            .await
            .unwrap();
        fake.start_container(&id).await.unwrap();
        fake.set_exec_result(&["false"], 1, "");
        fake.set_exec_result(&["check"], 2, "not yet\n");
        let rt: Arc<dyn ContainerRuntime> = Arc::new(fake);
        let mut t = target(rt, Container::default());
        t.container_id = id;
        let tcp: Probe = serde_json::from_value(json!({"tcpSocket": {"port": port}})).unwrap();
        assert_eq!(run_probe(&tcp, &t, Duration::from_secs(1)).await, Ok(()));
        drop(listener);
        assert!(run_probe(&tcp, &t, Duration::from_secs(1)).await.is_err());
        let exec = |cmd: &str| -> Probe {
            serde_json::from_value(json!({"exec": {"command": [cmd]}})).unwrap()
        };
        assert_eq!(
            run_probe(&exec("true"), &t, Duration::from_secs(1)).await,
            Ok(())
        );
        assert_eq!(
            run_probe(&exec("false"), &t, Duration::from_secs(1)).await,
            Err("command [\"false\"] exited with 1".into())
        );
        assert_eq!(
            run_probe(&exec("check"), &t, Duration::from_secs(1)).await,
            Err("not yet".into())
        );
    }
}
