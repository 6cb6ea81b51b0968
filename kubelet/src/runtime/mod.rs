//! The container runtime behind one trait: [`DockerRuntime`] for real, [`FakeRuntime`]
//! (in memory, recording every call) for fast tests of the pod worker's decisions.
//!
//! The trait speaks of containers, images and one bridge network in plain terms; how a
//! pod maps onto them is the pod worker's business.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use ipnet::Ipv4Net;
use jiff::Timestamp;
use tokio::io::AsyncWrite;

mod cache;
mod docker;
mod fake;

pub use cache::CachedRuntime;
pub use docker::DockerRuntime;
pub use fake::{FakeRuntime, RuntimeCall};

pub type RuntimeResult<T> = std::result::Result<T, RuntimeError>;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("{0} already exists")]
    Conflict(String),
    /// The fixed address a container asked for is attached to something else.
    #[error("{0}: address already in use")]
    AddressInUse(String),
    #[error("{0}")]
    Pull(String),
    #[error("{op} took longer than {after:?}")]
    Timeout { op: String, after: Duration },
    #[error("{op}: {message}")]
    Failed { op: String, message: String },
}

impl RuntimeError {
    pub(crate) fn failed(op: impl Into<String>, message: impl ToString) -> RuntimeError {
        RuntimeError::Failed {
            op: op.into(),
            message: message.to_string(),
        }
    }
}

/// What runs the containers, and its version (`docker`, `20.10.24`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeVersion {
    pub name: String,
    pub version: String,
}

impl RuntimeVersion {
    /// `docker://20.10.24`, as in a node's `nodeInfo.containerRuntimeVersion`.
    pub fn uri(&self) -> String {
        format!("{}://{}", self.name, self.version)
    }
}

/// A bridge network with a fixed subnet, whose first address is the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    pub name: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub labels: BTreeMap<String, String>,
}

/// A network as the runtime has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkInfo {
    pub name: String,
    /// Its IPv4 subnets.
    pub subnets: Vec<Ipv4Net>,
    pub labels: BTreeMap<String, String>,
    /// The names of the containers attached to it: running ones (a stopped container is
    /// attached to nothing).
    pub containers: Vec<String>,
}

/// Which network namespace a container gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// Its own, attached to the named bridge network.
    Network(String),
    /// That of another container (by id): how a pod's containers share the pause
    /// container's.
    Container(String),
    /// The host's (`hostNetwork` pods).
    Host,
}

/// Which IPC (or PID) namespace a container gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SharedNamespace {
    /// Its own, not shareable.
    #[default]
    Private,
    /// Its own, which others may join.
    Shareable,
    /// That of another container (by id).
    Container(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

/// A published port: `host_ip:host_port` on the host to `container_port` inside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMapping {
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub host_port: u16,
    pub host_ip: Option<String>,
}

/// Cgroup settings, in Docker's units.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// Bytes.
    pub memory_limit: Option<i64>,
    /// Microseconds of CPU time per `cpu_period`.
    pub cpu_quota: Option<i64>,
    /// Microseconds.
    pub cpu_period: Option<i64>,
    /// Relative weight; 1024 is one CPU's worth.
    pub cpu_shares: Option<i64>,
}

/// Everything needed to create one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerConfig {
    /// The Docker name; unique.
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// Replaces the image's entrypoint (Kubernetes' `command`).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's cmd (Kubernetes' `args`).
    pub cmd: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// Only for a container with its own network namespace.
    pub hostname: Option<String>,
    pub network: NetworkMode,
    /// Its address on the bridge network of [`NetworkMode::Network`]; the runtime picks
    /// one when `None`.
    pub ip: Option<Ipv4Addr>,
    pub ipc: SharedNamespace,
    pub pid: SharedNamespace,
    pub mounts: Vec<BindMount>,
    pub ports: Vec<PortMapping>,
    pub resources: Resources,
    /// `uid` or `uid:gid`.
    pub user: Option<String>,
    pub privileged: bool,
    pub tty: bool,
    pub stdin: bool,
    /// Stdin closes when the first attached client detaches (`stdinOnce`).
    pub stdin_once: bool,
}

impl ContainerConfig {
    /// A container of `image` with nothing else set.
    pub fn new(name: impl Into<String>, image: impl Into<String>, network: NetworkMode) -> Self {
        ContainerConfig {
            name: name.into(),
            image: image.into(),
            labels: BTreeMap::new(),
            entrypoint: None,
            cmd: None,
            env: Vec::new(),
            working_dir: None,
            hostname: None,
            network,
            ip: None,
            ipc: SharedNamespace::Private,
            pid: SharedNamespace::Private,
            mounts: Vec::new(),
            ports: Vec::new(),
            resources: Resources::default(),
            user: None,
            privileged: false,
            tty: false,
            stdin: false,
            stdin_once: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, never started.
    Created,
    Running,
    /// Ran and stopped.
    Exited,
    /// Paused, restarting, being removed, or dead: the kubelet starts none of these
    /// itself, so it treats them like a stopped container.
    Other,
}

/// A container as the runtime reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The image as it was asked for.
    pub image: String,
    /// The image's id (`sha256:...`).
    pub image_id: String,
    pub state: ContainerState,
    pub exit_code: i64,
    pub oom_killed: bool,
    /// Why the runtime could not run it, if it could not.
    pub error: Option<String>,
    pub created_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Its address on its bridge network, for a container with its own network.
    pub ip: Option<IpAddr>,
    /// Its cgroup limits, as applied.
    pub resources: Resources,
}

/// A container as a list shows it: which one, and its state, without the details an
/// inspect gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSummary {
    pub id: String,
    /// The Docker name, without Docker's leading `/`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub state: ContainerState,
}

/// What one command run in a container gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i64,
    /// Stdout and stderr, interleaved as written.
    pub output: String,
}

/// A command to run attached, as `kubectl exec` runs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecSpec {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// A terminal: output comes as stdout only.
    pub tty: bool,
}

/// Which stream output came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecStream {
    Stdout,
    Stderr,
}

/// A command running attached: its output until it ends, and its input (shut down to
/// close the command's stdin). [`ContainerRuntime::exec_exit_code`] tells how it ended.
pub struct ExecSession {
    /// The runtime's id of this exec, for resizing and the exit code.
    pub id: String,
    pub output: BoxStream<'static, RuntimeResult<(ExecStream, Bytes)>>,
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    /// Only the last lines.
    pub tail_lines: Option<u64>,
    pub timestamps: bool,
    /// Only what was written after this.
    pub since: Option<Timestamp>,
}

/// The container events that change what an inspect shows, the only ones the kubelet
/// asks for: running a probe's command (`exec_create`, `exec_start`, `exec_die`) changes
/// nothing of the container.
pub const STATE_EVENTS: &[&str] = &[
    "create", "start", "restart", "die", "oom", "pause", "unpause", "destroy",
];

/// Something happened to a container: one of [`STATE_EVENTS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeEvent {
    pub container_id: String,
    pub action: String,
    pub labels: BTreeMap<String, String>,
}

/// A container runtime: what the kubelet needs of Docker.
#[async_trait::async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    async fn version(&self) -> RuntimeResult<RuntimeVersion>;

    /// Creates the network if it does not exist. One that exists with another subnet is
    /// replaced if nothing is attached to it, and an error otherwise.
    async fn ensure_network(&self, network: &NetworkConfig) -> RuntimeResult<()>;

    /// Every network, with its subnets and the containers attached to it.
    async fn list_networks(&self) -> RuntimeResult<Vec<NetworkInfo>>;

    /// Removes a network with nothing attached; removing one that is gone is not an error.
    async fn remove_network(&self, name: &str) -> RuntimeResult<()>;

    /// The IPv4 addresses attached to the network: those of every running container on
    /// it, the kubelet's or not.
    async fn network_addresses(&self, network: &str) -> RuntimeResult<Vec<Ipv4Addr>>;

    /// The image's id if the image is present.
    async fn image_id(&self, image: &str) -> RuntimeResult<Option<String>>;

    /// Pulls the image; [`RuntimeError::Pull`] when it cannot.
    async fn pull_image(&self, image: &str) -> RuntimeResult<()>;

    /// Creates a container and returns its id.
    async fn create_container(&self, config: &ContainerConfig) -> RuntimeResult<String>;

    async fn start_container(&self, id: &str) -> RuntimeResult<()>;

    /// Sends SIGTERM, waits up to `grace`, then sends SIGKILL. Returns once it stopped;
    /// stopping a stopped container is not an error.
    async fn stop_container(&self, id: &str, grace: Duration) -> RuntimeResult<()>;

    /// Removes a stopped or running container (killing it), and its anonymous volumes.
    /// Removing one that is gone is not an error.
    async fn remove_container(&self, id: &str) -> RuntimeResult<()>;

    /// `None` when there is no such container.
    async fn inspect_container(&self, id: &str) -> RuntimeResult<Option<ContainerInfo>>;

    /// Every container, running or not, that has all of these labels.
    async fn list_containers(
        &self,
        labels: &[(String, String)],
    ) -> RuntimeResult<Vec<ContainerInfo>>;

    /// The same containers as [`ContainerRuntime::list_containers`], as one list shows
    /// them: one call, no inspect of each.
    async fn list_summaries(
        &self,
        labels: &[(String, String)],
    ) -> RuntimeResult<Vec<ContainerSummary>>;

    /// Every container, running or not, that has the label `key`, whatever its value.
    async fn list_with_label(&self, key: &str) -> RuntimeResult<Vec<ContainerSummary>>;

    /// The container's output: stdout and stderr as written.
    async fn container_logs(
        &self,
        id: &str,
        options: &LogOptions,
    ) -> RuntimeResult<BoxStream<'static, RuntimeResult<Bytes>>>;

    /// Runs a command in a running container; [`RuntimeError::Timeout`] if it does not
    /// finish within `timeout`.
    async fn exec(
        &self,
        id: &str,
        command: &[String],
        timeout: Duration,
    ) -> RuntimeResult<ExecOutput>;

    /// Starts a command in a running container with its streams attached.
    async fn exec_attached(&self, id: &str, spec: &ExecSpec) -> RuntimeResult<ExecSession>;

    /// Resizes the terminal of an exec started with `tty`.
    async fn resize_exec(&self, exec_id: &str, width: u16, height: u16) -> RuntimeResult<()>;

    /// Attaches to the streams of a running container's own process (`command` of the
    /// spec unused); the session's id is the container's.
    async fn attach(&self, id: &str, spec: &ExecSpec) -> RuntimeResult<ExecSession>;

    /// Resizes the terminal of a container created with `tty`.
    async fn resize_container(&self, id: &str, width: u16, height: u16) -> RuntimeResult<()>;

    /// The exit code of an exec, once its command ended.
    async fn exec_exit_code(&self, exec_id: &str) -> RuntimeResult<Option<i64>>;

    /// Events ([`STATE_EVENTS`]) of the containers that have all of these labels, from
    /// now on.
    fn events(
        &self,
        labels: &[(String, String)],
    ) -> BoxStream<'static, RuntimeResult<RuntimeEvent>>;
}
