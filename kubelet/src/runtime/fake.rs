//! An in-memory runtime that records every call, for tests of the pod worker. Containers
//! never run anything: a test decides when one exits, and what a command run in one
//! answers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use jiff::Timestamp;
use tokio::io::AsyncReadExt;
use tokio::sync::broadcast;

use super::{
    ContainerConfig, ContainerInfo, ContainerRuntime, ContainerState, ContainerSummary, ExecOutput,
    ExecSession, ExecSpec, ExecStream, LogOptions, NetworkConfig, NetworkInfo, NetworkMode,
    RuntimeError, RuntimeEvent, RuntimeResult, RuntimeVersion,
};

/// One call made to the fake, with what identifies its target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeCall {
    EnsureNetwork(String),
    RemoveNetwork(String),
    PullImage(String),
    /// The container's Docker name.
    Create(String),
    Start(String),
    Stop(String, Duration),
    Remove(String),
    Exec(String, Vec<String>),
    /// An exec's terminal resized to width, height.
    ResizeExec(String, u16, u16),
    /// Attached to a container's own streams.
    Attach(String),
    /// A container's terminal resized to width, height.
    ResizeContainer(String, u16, u16),
}

#[derive(Default)]
struct State {
    containers: BTreeMap<String, (ContainerInfo, ContainerConfig)>,
    images: HashMap<String, String>,
    pullable: HashSet<String>,
    networks: HashMap<String, NetworkConfig>,
    calls: Vec<RuntimeCall>,
    exec_results: HashMap<Vec<String>, ExecOutput>,
    exec_exit_codes: HashMap<String, i64>,
    logs: HashMap<String, String>,
    next_id: u64,
    next_ip: u8,
    /// Exit code of a stopped container.
    stop_exit_code: i64,
    /// Programs that cannot start.
    missing_programs: HashSet<String>,
    /// Addresses taken behind the kubelet's back: not listed, but refused at start.
    unseen_addresses: HashSet<Ipv4Addr>,
    /// Lists (of either kind) and inspects asked for: what a cache in front saves.
    lists: usize,
    inspects: usize,
}

/// The fake runtime. Clones share one state.
#[derive(Clone)]
pub struct FakeRuntime {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<RuntimeEvent>,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        FakeRuntime::new()
    }
}

impl FakeRuntime {
    pub fn new() -> FakeRuntime {
        let (events, _) = broadcast::channel(256);
        let state = State {
            stop_exit_code: 137,
            next_ip: 2,
            ..State::default()
        };
        FakeRuntime {
            state: Arc::new(Mutex::new(state)),
            events,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes an image present.
    pub fn add_image(&self, image: &str) {
        let mut s = self.lock();
        let id = format!("sha256:{:064x}", s.images.len() + 1);
        s.images.insert(image.into(), id);
    }

    /// Lets a later pull of `image` succeed.
    pub fn allow_pull(&self, image: &str) {
        self.lock().pullable.insert(image.into());
    }

    /// What a command run by `exec` or `exec_attached` answers (anything else exits 0).
    pub fn set_exec_result(&self, command: &[&str], exit_code: i64, output: &str) {
        self.lock().exec_results.insert(
            command.iter().map(|s| s.to_string()).collect(),
            ExecOutput {
                exit_code,
                output: output.into(),
            },
        );
    }

    pub fn set_logs(&self, id: &str, text: &str) {
        self.lock().logs.insert(id.into(), text.into());
    }

    /// Makes containers whose command is `program` fail to start, as Docker does when
    /// the program does not exist: left `created`, with an error and exit code 127.
    pub fn missing_program(&self, program: &str) {
        self.lock().missing_programs.insert(program.into());
    }

    /// Makes an address taken as if by something else just after the kubelet looked:
    /// `network_addresses` does not list it, but a container asking for it cannot start.
    pub fn take_address_unseen(&self, ip: Ipv4Addr) {
        self.lock().unseen_addresses.insert(ip);
    }

    /// The exit code containers get when stopped (137, SIGKILL, unless changed).
    pub fn set_stop_exit_code(&self, code: i64) {
        self.lock().stop_exit_code = code;
    }

    pub fn calls(&self) -> Vec<RuntimeCall> {
        self.lock().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// How many lists and inspects were asked for so far.
    pub fn reads(&self) -> (usize, usize) {
        let s = self.lock();
        (s.lists, s.inspects)
    }

    /// Every container, oldest first.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        let s = self.lock();
        let mut all: Vec<_> = s.containers.values().map(|(i, _)| i.clone()).collect();
        all.sort_by_key(|c| c.id.clone());
        all
    }

    pub fn config(&self, id: &str) -> Option<ContainerConfig> {
        self.lock().containers.get(id).map(|(_, c)| c.clone())
    }

    /// The container of this Docker name.
    pub fn by_name(&self, name: &str) -> Option<ContainerInfo> {
        self.containers().into_iter().find(|c| c.name == name)
    }

    pub fn network(&self, name: &str) -> Option<NetworkConfig> {
        self.lock().networks.get(name).cloned()
    }

    /// Makes a running container exit, as if its process ended at `at`.
    pub fn exit(&self, id: &str, exit_code: i64, at: Timestamp) {
        let labels = {
            let mut s = self.lock();
            let Some((info, _)) = s.containers.get_mut(id) else {
                return;
            };
            info.state = ContainerState::Exited;
            info.exit_code = exit_code;
            info.finished_at = Some(at);
            info.labels.clone()
        };
        self.emit(id, "die", labels);
    }

    /// Makes a container look killed for using too much memory.
    pub fn oom_kill(&self, id: &str, at: Timestamp) {
        if let Some((info, _)) = self.lock().containers.get_mut(id) {
            info.oom_killed = true;
        }
        self.exit(id, 137, at);
    }

    /// Moves a container's start (and end) back in time.
    pub fn set_times(&self, id: &str, started: Option<Timestamp>, finished: Option<Timestamp>) {
        if let Some((info, _)) = self.lock().containers.get_mut(id) {
            info.started_at = started;
            info.finished_at = finished;
        }
    }

    fn emit(&self, id: &str, action: &str, labels: BTreeMap<String, String>) {
        let _ = self.events.send(RuntimeEvent {
            container_id: id.into(),
            action: action.into(),
            labels,
        });
    }
}

fn matches(info: &ContainerInfo, labels: &[(String, String)]) -> bool {
    labels
        .iter()
        .all(|(k, v)| info.labels.get(k).is_some_and(|have| have == v))
}

#[async_trait::async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn version(&self) -> RuntimeResult<RuntimeVersion> {
        Ok(RuntimeVersion {
            name: "fake".into(),
            version: "0.0.0".into(),
        })
    }

    async fn ensure_network(&self, network: &NetworkConfig) -> RuntimeResult<()> {
        let mut s = self.lock();
        s.calls
            .push(RuntimeCall::EnsureNetwork(network.name.clone()));
        // Docker refuses a subnet that overlaps another network's.
        let overlaps = s.networks.values().any(|other| {
            other.name != network.name
                && (other.subnet.contains(&network.subnet.network())
                    || network.subnet.contains(&other.subnet.network()))
        });
        if overlaps {
            return Err(RuntimeError::failed(
                format!("creating network {}", network.name),
                "Pool overlaps with other one on this address space",
            ));
        }
        s.networks.insert(network.name.clone(), network.clone());
        Ok(())
    }

    async fn list_networks(&self) -> RuntimeResult<Vec<NetworkInfo>> {
        let s = self.lock();
        let mut networks: Vec<NetworkInfo> = s
            .networks
            .values()
            .map(|n| NetworkInfo {
                name: n.name.clone(),
                subnets: vec![n.subnet],
                labels: n.labels.clone(),
                containers: s
                    .containers
                    .values()
                    .filter(|(i, c)| {
                        i.state == ContainerState::Running
                            && c.network == NetworkMode::Network(n.name.clone())
                    })
                    .map(|(i, _)| i.name.clone())
                    .collect(),
            })
            .collect();
        networks.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(networks)
    }

    async fn remove_network(&self, name: &str) -> RuntimeResult<()> {
        let mut s = self.lock();
        s.calls.push(RuntimeCall::RemoveNetwork(name.into()));
        let active = s.containers.values().any(|(i, c)| {
            i.state == ContainerState::Running && c.network == NetworkMode::Network(name.into())
        });
        if active {
            return Err(RuntimeError::failed(
                format!("removing network {name}"),
                "it has active endpoints",
            ));
        }
        s.networks.remove(name);
        Ok(())
    }

    async fn network_addresses(&self, network: &str) -> RuntimeResult<Vec<Ipv4Addr>> {
        let s = self.lock();
        Ok(s.containers
            .values()
            .filter(|(i, c)| {
                i.state == ContainerState::Running
                    && c.network == NetworkMode::Network(network.to_string())
            })
            .filter_map(|(i, _)| match i.ip {
                Some(IpAddr::V4(ip)) => Some(ip),
                _ => None,
            })
            .collect())
    }

    async fn image_id(&self, image: &str) -> RuntimeResult<Option<String>> {
        Ok(self.lock().images.get(image).cloned())
    }

    async fn pull_image(&self, image: &str) -> RuntimeResult<()> {
        let allowed = {
            let mut s = self.lock();
            s.calls.push(RuntimeCall::PullImage(image.into()));
            s.pullable.contains(image)
        };
        if allowed {
            self.add_image(image);
            Ok(())
        } else {
            Err(RuntimeError::Pull(format!(
                "pull access denied for {image}, repository does not exist"
            )))
        }
    }

    async fn create_container(&self, config: &ContainerConfig) -> RuntimeResult<String> {
        let mut s = self.lock();
        s.calls.push(RuntimeCall::Create(config.name.clone()));
        if s.containers.values().any(|(i, _)| i.name == config.name) {
            return Err(RuntimeError::Conflict(format!("container {}", config.name)));
        }
        let Some(image_id) = s.images.get(&config.image).cloned() else {
            return Err(RuntimeError::failed(
                "creating the container",
                format!("No such image: {}", config.image),
            ));
        };
        s.next_id += 1;
        let id = format!("{:012x}{:052x}", s.next_id, 0);
        let info = ContainerInfo {
            id: id.clone(),
            name: config.name.clone(),
            labels: config.labels.clone(),
            image: config.image.clone(),
            image_id,
            state: ContainerState::Created,
            exit_code: 0,
            oom_killed: false,
            error: None,
            created_at: Some(Timestamp::now()),
            started_at: None,
            finished_at: None,
            ip: None,
            resources: config.resources.clone(),
        };
        s.containers.insert(id.clone(), (info, config.clone()));
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> RuntimeResult<()> {
        let labels = {
            let mut s = self.lock();
            s.calls.push(RuntimeCall::Start(id.into()));
            let next_ip = Ipv4Addr::new(10, 0, 0, s.next_ip);
            let missing = s.missing_programs.clone();
            let attached: HashSet<Ipv4Addr> = s
                .containers
                .values()
                .filter(|(i, _)| i.state == ContainerState::Running)
                .filter_map(|(i, _)| match i.ip {
                    Some(IpAddr::V4(ip)) => Some(ip),
                    _ => None,
                })
                .chain(s.unseen_addresses.iter().copied())
                .collect();
            let is_missing = |p: &str| missing.contains(p);
            let Some((info, config)) = s.containers.get_mut(id) else {
                return Err(RuntimeError::NotFound(id.into()));
            };
            let program = config
                .entrypoint
                .as_ref()
                .and_then(|e| e.first())
                .cloned()
                .unwrap_or_default();
            if is_missing(&program) {
                info.exit_code = 127;
                info.error = Some(format!("exec: \"{program}\": executable file not found"));
                return Err(RuntimeError::failed(
                    "starting the container",
                    info.error.clone().unwrap_or_default(),
                ));
            }
            let own_network = matches!(config.network, NetworkMode::Network(_));
            if own_network && config.ip.is_some_and(|ip| attached.contains(&ip)) {
                return Err(RuntimeError::AddressInUse(format!(
                    "starting container {id}"
                )));
            }
            info.state = ContainerState::Running;
            info.started_at = Some(Timestamp::now());
            info.finished_at = None;
            info.exit_code = 0;
            let fixed = config.ip;
            if own_network {
                info.ip = Some(IpAddr::V4(fixed.unwrap_or(next_ip)));
            }
            let labels = info.labels.clone();
            if own_network && fixed.is_none() {
                s.next_ip = s.next_ip.wrapping_add(1);
            }
            labels
        };
        self.emit(id, "start", labels);
        Ok(())
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> RuntimeResult<()> {
        let code = {
            let mut s = self.lock();
            s.calls.push(RuntimeCall::Stop(id.into(), grace));
            match s.containers.get(id) {
                None => return Err(RuntimeError::NotFound(id.into())),
                Some((info, _)) if info.state != ContainerState::Running => return Ok(()),
                Some(_) => s.stop_exit_code,
            }
        };
        self.exit(id, code, Timestamp::now());
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> RuntimeResult<()> {
        let mut s = self.lock();
        s.calls.push(RuntimeCall::Remove(id.into()));
        s.containers.remove(id);
        Ok(())
    }

    async fn inspect_container(&self, id: &str) -> RuntimeResult<Option<ContainerInfo>> {
        let mut s = self.lock();
        s.inspects += 1;
        Ok(s.containers.get(id).map(|(i, _)| i.clone()))
    }

    async fn list_containers(
        &self,
        labels: &[(String, String)],
    ) -> RuntimeResult<Vec<ContainerInfo>> {
        self.lock().lists += 1;
        Ok(self
            .containers()
            .into_iter()
            .filter(|c| matches(c, labels))
            .collect())
    }

    async fn list_summaries(
        &self,
        labels: &[(String, String)],
    ) -> RuntimeResult<Vec<ContainerSummary>> {
        self.lock().lists += 1;
        Ok(self
            .containers()
            .into_iter()
            .filter(|c| matches(c, labels))
            .map(|c| ContainerSummary {
                id: c.id,
                name: c.name,
                labels: c.labels,
                state: c.state,
            })
            .collect())
    }

    async fn list_with_label(&self, key: &str) -> RuntimeResult<Vec<ContainerSummary>> {
        self.lock().lists += 1;
        Ok(self
            .containers()
            .into_iter()
            .filter(|c| c.labels.contains_key(key))
            .map(|c| ContainerSummary {
                id: c.id,
                name: c.name,
                labels: c.labels,
                state: c.state,
            })
            .collect())
    }

    async fn container_logs(
        &self,
        id: &str,
        _options: &LogOptions,
    ) -> RuntimeResult<BoxStream<'static, RuntimeResult<Bytes>>> {
        let s = self.lock();
        if !s.containers.contains_key(id) {
            return Err(RuntimeError::NotFound(id.into()));
        }
        let text = s.logs.get(id).cloned().unwrap_or_default();
        Ok(stream::iter([Ok(Bytes::from(text))]).boxed())
    }

    async fn exec(
        &self,
        id: &str,
        command: &[String],
        _timeout: Duration,
    ) -> RuntimeResult<ExecOutput> {
        let mut s = self.lock();
        s.calls.push(RuntimeCall::Exec(id.into(), command.to_vec()));
        match s.containers.get(id) {
            Some((info, _)) if info.state == ContainerState::Running => {}
            _ => return Err(RuntimeError::NotFound(id.into())),
        }
        Ok(s.exec_results.get(command).cloned().unwrap_or(ExecOutput {
            exit_code: 0,
            output: String::new(),
        }))
    }

    /// Writes what [`FakeRuntime::set_exec_result`] says to stdout and then, like `cat`,
    /// echoes its stdin until that is closed.
    async fn exec_attached(&self, id: &str, spec: &ExecSpec) -> RuntimeResult<ExecSession> {
        let result = {
            let mut s = self.lock();
            s.calls
                .push(RuntimeCall::Exec(id.into(), spec.command.clone()));
            match s.containers.get(id) {
                Some((info, _)) if info.state == ContainerState::Running => {}
                _ => return Err(RuntimeError::NotFound(id.into())),
            }
            s.next_id += 1;
            let exec_id = format!("exec-{}", s.next_id);
            let result = s
                .exec_results
                .get(&spec.command)
                .cloned()
                .unwrap_or(ExecOutput {
                    exit_code: 0,
                    output: String::new(),
                });
            s.exec_exit_codes.insert(exec_id.clone(), result.exit_code);
            (exec_id, result.output)
        };
        let (exec_id, output) = result;
        let (input, echo) = tokio::io::duplex(64 * 1024);
        let first = stream::iter(
            (!output.is_empty()).then(|| Ok((ExecStream::Stdout, Bytes::from(output)))),
        );
        let echo = stream::unfold(spec.stdin.then_some(echo), |reader| async move {
            let mut reader = reader?;
            let mut buf = vec![0u8; 8192];
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok((ExecStream::Stdout, Bytes::from(buf))), Some(reader)))
                }
            }
        });
        Ok(ExecSession {
            id: exec_id,
            output: first.chain(echo).boxed(),
            input: Box::pin(input),
        })
    }

    /// A container's process echoes its stdin to its stdout, as `cat` does.
    async fn attach(&self, id: &str, spec: &ExecSpec) -> RuntimeResult<ExecSession> {
        {
            let mut s = self.lock();
            s.calls.push(RuntimeCall::Attach(id.into()));
            match s.containers.get(id) {
                Some((info, _)) if info.state == ContainerState::Running => {}
                _ => return Err(RuntimeError::NotFound(id.into())),
            }
        }
        let (input, echo) = tokio::io::duplex(64 * 1024);
        let echo = stream::unfold(spec.stdin.then_some(echo), |reader| async move {
            let mut reader = reader?;
            let mut buf = vec![0u8; 8192];
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok((ExecStream::Stdout, Bytes::from(buf))), Some(reader)))
                }
            }
        });
        Ok(ExecSession {
            id: id.to_string(),
            output: echo.boxed(),
            input: Box::pin(input),
        })
    }

    async fn resize_container(&self, id: &str, width: u16, height: u16) -> RuntimeResult<()> {
        self.lock()
            .calls
            .push(RuntimeCall::ResizeContainer(id.into(), width, height));
        Ok(())
    }

    async fn resize_exec(&self, exec_id: &str, width: u16, height: u16) -> RuntimeResult<()> {
        self.lock()
            .calls
            .push(RuntimeCall::ResizeExec(exec_id.into(), width, height));
        Ok(())
    }

    async fn exec_exit_code(&self, exec_id: &str) -> RuntimeResult<Option<i64>> {
        Ok(self.lock().exec_exit_codes.get(exec_id).copied())
    }

    fn events(
        &self,
        labels: &[(String, String)],
    ) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
        let labels = labels.to_vec();
        let receiver = self.events.subscribe();
        stream::unfold(receiver, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(event) => return Some((event, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .filter(move |event| {
            let keep = labels
                .iter()
                .all(|(k, v)| event.labels.get(k).is_some_and(|have| have == v));
            futures::future::ready(keep)
        })
        .map(Ok)
        .boxed()
    }
}
