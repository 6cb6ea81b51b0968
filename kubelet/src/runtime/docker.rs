//! [`ContainerRuntime`] on Docker's Engine API, through bollard. The API version is
//! negotiated down to the daemon's (Debian's Docker 20.10 speaks 1.41).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum,
    ContainerSummaryStateEnum, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig,
    Mount, MountType, NetworkCreateRequest, NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, CreateImageOptions, EventsOptions,
    ListContainersOptions, ListNetworksOptions, LogsOptions, RemoveContainerOptions,
    ResizeContainerTTYOptions, StopContainerOptions,
};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use jiff::Timestamp;

use super::{
    ContainerConfig, ContainerInfo, ContainerRuntime, ContainerState, ContainerSummary, ExecOutput,
    ExecSession, ExecSpec, ExecStream, LogOptions, NetworkConfig, NetworkInfo, NetworkMode,
    Resources, RuntimeError, RuntimeEvent, RuntimeResult, RuntimeVersion, STATE_EVENTS,
    SharedNamespace,
};

/// Seconds bollard waits for the daemon's answer to an ordinary request.
const REQUEST_TIMEOUT: u64 = 120;

/// Docker, through its socket.
#[derive(Clone, Debug)]
pub struct DockerRuntime {
    docker: Docker,
}

impl DockerRuntime {
    /// Connects to the socket (Docker's default when `None`) and agrees on an API version.
    pub async fn connect(socket: Option<&str>) -> RuntimeResult<DockerRuntime> {
        let docker = match socket {
            Some(path) => {
                Docker::connect_with_socket(path, REQUEST_TIMEOUT, bollard::API_DEFAULT_VERSION)
            }
            None => Docker::connect_with_socket_defaults(),
        }
        .map_err(|e| RuntimeError::failed("connecting to Docker", e))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| RuntimeError::failed("negotiating the Docker API version", e))?;
        Ok(DockerRuntime { docker })
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Docker's list of every container (running or not) with all of these labels.
    async fn list_labelled(
        &self,
        labels: &[(String, String)],
    ) -> RuntimeResult<Vec<bollard::models::ContainerSummary>> {
        self.list_filtered(label_filters(labels)).await
    }

    async fn list_filtered(
        &self,
        filters: HashMap<String, Vec<String>>,
    ) -> RuntimeResult<Vec<bollard::models::ContainerSummary>> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..ListContainersOptions::default()
        };
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(|e| failed("listing containers", e))
    }
}

fn summary(s: bollard::models::ContainerSummary) -> Option<ContainerSummary> {
    Some(ContainerSummary {
        id: s.id?,
        name: s
            .names
            .unwrap_or_default()
            .first()
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        labels: to_btree(s.labels),
        state: match s.state {
            Some(ContainerSummaryStateEnum::CREATED) => ContainerState::Created,
            Some(ContainerSummaryStateEnum::RUNNING) => ContainerState::Running,
            Some(ContainerSummaryStateEnum::EXITED) => ContainerState::Exited,
            _ => ContainerState::Other,
        },
    })
}

fn status_code(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Docker's answer when a container's fixed address is attached to something else
/// (libnetwork's `ErrIPAlreadyAllocated`). A host port in use says "bind: address already
/// in use" instead, in lower case: that is not this.
fn address_in_use(e: &BollardError) -> bool {
    match e {
        BollardError::DockerResponseServerError { message, .. } => {
            let message = message.trim();
            message == "Address already in use" || message.ends_with(": Address already in use")
        }
        _ => false,
    }
}

fn failed(op: impl Into<String>, e: BollardError) -> RuntimeError {
    let message = match e {
        BollardError::DockerResponseServerError { message, .. } => message,
        other => other.to_string(),
    };
    RuntimeError::failed(op, message)
}

/// Docker writes `0001-01-01T00:00:00Z` for "never".
fn parse_time(value: Option<&str>) -> Option<Timestamp> {
    let value = value?;
    if value.is_empty() || value.starts_with("0001-") {
        return None;
    }
    value.parse().ok()
}

fn to_btree(map: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    map.unwrap_or_default().into_iter().collect()
}

fn container_info(inspect: ContainerInspectResponse) -> ContainerInfo {
    let state = inspect.state.unwrap_or_default();
    let config = inspect.config.unwrap_or_default();
    let host = inspect.host_config.unwrap_or_default();
    let ip = inspect
        .network_settings
        .and_then(|n| n.networks)
        .into_iter()
        .flat_map(|networks| networks.into_values())
        .filter_map(|endpoint| endpoint.ip_address)
        .find_map(|ip| ip.parse::<IpAddr>().ok());
    let status = match state.status {
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::EXITED) => ContainerState::Exited,
        _ if state.running == Some(true) => ContainerState::Running,
        _ => ContainerState::Other,
    };
    ContainerInfo {
        id: inspect.id.unwrap_or_default(),
        name: inspect
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        labels: to_btree(config.labels),
        image: config.image.unwrap_or_default(),
        image_id: inspect.image.unwrap_or_default(),
        state: status,
        exit_code: state.exit_code.unwrap_or_default(),
        oom_killed: state.oom_killed.unwrap_or_default(),
        error: state.error.filter(|e| !e.is_empty()),
        created_at: inspect.created.as_deref().and_then(|c| parse_time(Some(c))),
        started_at: parse_time(state.started_at.as_deref()),
        finished_at: parse_time(state.finished_at.as_deref()),
        ip,
        resources: Resources {
            memory_limit: host.memory.filter(|m| *m > 0),
            cpu_quota: host.cpu_quota.filter(|q| *q > 0),
            cpu_period: host.cpu_period.filter(|p| *p > 0),
            cpu_shares: host.cpu_shares.filter(|s| *s > 0),
        },
    }
}

fn namespace_mode(ns: &SharedNamespace, private: Option<&str>) -> Option<String> {
    match ns {
        SharedNamespace::Private => private.map(str::to_string),
        SharedNamespace::Shareable => Some("shareable".into()),
        SharedNamespace::Container(id) => Some(format!("container:{id}")),
    }
}

fn create_body(config: &ContainerConfig) -> ContainerCreateBody {
    let mut port_bindings = HashMap::new();
    let mut exposed = Vec::new();
    for p in &config.ports {
        let key = format!("{}/{}", p.container_port, p.protocol);
        exposed.push(key.clone());
        port_bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: p.host_ip.clone(),
                host_port: Some(p.host_port.to_string()),
            });
    }
    let mounts = config
        .mounts
        .iter()
        .map(|m| Mount {
            target: Some(m.target.clone()),
            source: Some(m.source.display().to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(m.read_only),
            ..Mount::default()
        })
        .collect::<Vec<_>>();
    let network_mode = match &config.network {
        NetworkMode::Network(name) => name.clone(),
        NetworkMode::Container(id) => format!("container:{id}"),
        NetworkMode::Host => "host".to_string(),
    };
    // A fixed address is the endpoint's IPAM config on that network; Docker takes it
    // when the container starts.
    let networking_config = match (&config.network, config.ip) {
        (NetworkMode::Network(name), Some(ip)) => Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                name.clone(),
                EndpointSettings {
                    ipam_config: Some(EndpointIpamConfig {
                        ipv4_address: Some(ip.to_string()),
                        ..EndpointIpamConfig::default()
                    }),
                    ..EndpointSettings::default()
                },
            )])),
        }),
        _ => None,
    };
    let r = &config.resources;
    let host_config = HostConfig {
        network_mode: Some(network_mode),
        ipc_mode: namespace_mode(&config.ipc, Some("private")),
        pid_mode: namespace_mode(&config.pid, None),
        mounts: (!mounts.is_empty()).then_some(mounts),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        memory: r.memory_limit,
        // No swap beyond the limit, as in Kubernetes.
        memory_swap: r.memory_limit,
        cpu_quota: r.cpu_quota,
        cpu_period: r.cpu_period,
        cpu_shares: r.cpu_shares,
        privileged: Some(config.privileged),
        ..HostConfig::default()
    };
    ContainerCreateBody {
        hostname: config.hostname.clone(),
        user: config.user.clone(),
        env: Some(config.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        cmd: config.cmd.clone(),
        entrypoint: config.entrypoint.clone(),
        image: Some(config.image.clone()),
        working_dir: config.working_dir.clone(),
        labels: Some(config.labels.clone().into_iter().collect()),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        tty: Some(config.tty),
        open_stdin: Some(config.stdin),
        stdin_once: Some(config.stdin && config.stdin_once),
        host_config: Some(host_config),
        networking_config,
        ..ContainerCreateBody::default()
    }
}

/// `name` or `name:tag` or `name@digest` → a reference with a tag, so that a pull never
/// fetches every tag of a repository.
fn pull_reference(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

fn label_filters(labels: &[(String, String)]) -> HashMap<String, Vec<String>> {
    let mut filters = HashMap::new();
    filters.insert(
        "label".to_string(),
        labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    );
    filters
}

#[async_trait::async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn version(&self) -> RuntimeResult<RuntimeVersion> {
        let v = self
            .docker
            .version()
            .await
            .map_err(|e| failed("docker version", e))?;
        Ok(RuntimeVersion {
            name: "docker".into(),
            version: v.version.unwrap_or_else(|| "unknown".into()),
        })
    }

    async fn ensure_network(&self, network: &NetworkConfig) -> RuntimeResult<()> {
        let subnet = network.subnet.to_string();
        for _ in 0..3 {
            match self.docker.inspect_network(&network.name, None).await {
                Ok(existing) => {
                    let subnets: Vec<String> = existing
                        .ipam
                        .and_then(|i| i.config)
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|c| c.subnet)
                        .collect();
                    if subnets.contains(&subnet) {
                        return Ok(());
                    }
                    if existing.containers.is_some_and(|c| !c.is_empty()) {
                        return Err(RuntimeError::failed(
                            format!("network {}", network.name),
                            format!(
                                "it has subnet {subnets:?}, not {subnet}, and containers are \
                                 attached to it"
                            ),
                        ));
                    }
                    tracing::info!(network = %network.name, old = ?subnets, new = %subnet,
                        "replacing the pod network: the node's pod CIDR changed");
                    match self.docker.remove_network(&network.name).await {
                        Ok(()) => {}
                        Err(e) if status_code(&e) == Some(404) => {}
                        Err(e) => return Err(failed("removing the old pod network", e)),
                    }
                }
                Err(e) if status_code(&e) == Some(404) => {}
                Err(e) => return Err(failed("inspecting the pod network", e)),
            }
            let request = NetworkCreateRequest {
                name: network.name.clone(),
                driver: Some("bridge".into()),
                ipam: Some(Ipam {
                    driver: Some("default".into()),
                    config: Some(vec![IpamConfig {
                        subnet: Some(subnet.clone()),
                        gateway: Some(network.gateway.to_string()),
                        ..IpamConfig::default()
                    }]),
                    options: None,
                }),
                labels: Some(network.labels.clone().into_iter().collect()),
                ..NetworkCreateRequest::default()
            };
            match self.docker.create_network(request).await {
                Ok(_) => return Ok(()),
                // Created meanwhile by someone else: look again.
                Err(e) if status_code(&e) == Some(409) => continue,
                Err(e) => return Err(failed(format!("creating network {}", network.name), e)),
            }
        }
        Err(RuntimeError::failed(
            format!("creating network {}", network.name),
            "it keeps changing while being created",
        ))
    }

    async fn list_networks(&self) -> RuntimeResult<Vec<NetworkInfo>> {
        let listed = self
            .docker
            .list_networks(None::<ListNetworksOptions>)
            .await
            .map_err(|e| failed("listing networks", e))?;
        let mut networks = Vec::with_capacity(listed.len());
        for network in listed {
            let Some(id) = network.id else { continue };
            // The list leaves out the attached containers; an inspect has them.
            let inspect = match self.docker.inspect_network(&id, None).await {
                Ok(inspect) => inspect,
                // Gone since the list.
                Err(e) if status_code(&e) == Some(404) => continue,
                Err(e) => return Err(failed(format!("inspecting network {id}"), e)),
            };
            let mut containers: Vec<String> = inspect
                .containers
                .unwrap_or_default()
                .into_iter()
                .map(|(id, c)| c.name.unwrap_or(id))
                .collect();
            containers.sort();
            networks.push(NetworkInfo {
                name: inspect.name.unwrap_or(id),
                subnets: inspect
                    .ipam
                    .and_then(|i| i.config)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|c| c.subnet?.parse().ok())
                    .collect(),
                labels: to_btree(inspect.labels),
                containers,
            });
        }
        Ok(networks)
    }

    async fn remove_network(&self, name: &str) -> RuntimeResult<()> {
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(failed(format!("removing network {name}"), e)),
        }
    }

    async fn network_addresses(&self, network: &str) -> RuntimeResult<Vec<Ipv4Addr>> {
        let inspect = self
            .docker
            .inspect_network(network, None)
            .await
            .map_err(|e| failed(format!("inspecting network {network}"), e))?;
        Ok(inspect
            .containers
            .unwrap_or_default()
            .into_values()
            .filter_map(|endpoint| {
                // "10.244.0.5/24"
                let address = endpoint.ipv4_address?;
                let ip = address.split('/').next()?;
                ip.parse().ok()
            })
            .collect())
    }

    async fn image_id(&self, image: &str) -> RuntimeResult<Option<String>> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => Ok(Some(inspect.id.unwrap_or_default())),
            Err(e) if status_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(failed(format!("inspecting image {image}"), e)),
        }
    }

    async fn pull_image(&self, image: &str) -> RuntimeResult<()> {
        let options = CreateImageOptions {
            from_image: Some(pull_reference(image)),
            ..CreateImageOptions::default()
        };
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(item) = progress.next().await {
            if let Err(e) = item {
                let message = match e {
                    BollardError::DockerResponseServerError { message, .. } => message,
                    BollardError::DockerStreamError { error } => error,
                    other => other.to_string(),
                };
                return Err(RuntimeError::Pull(message));
            }
        }
        Ok(())
    }

    async fn create_container(&self, config: &ContainerConfig) -> RuntimeResult<String> {
        let options = CreateContainerOptions {
            name: Some(config.name.clone()),
            ..CreateContainerOptions::default()
        };
        match self
            .docker
            .create_container(Some(options), create_body(config))
            .await
        {
            Ok(created) => Ok(created.id),
            Err(e) if status_code(&e) == Some(409) => {
                Err(RuntimeError::Conflict(format!("container {}", config.name)))
            }
            Err(e) => Err(failed(format!("creating container {}", config.name), e)),
        }
    }

    async fn start_container(&self, id: &str) -> RuntimeResult<()> {
        match self.docker.start_container(id, None).await {
            Ok(()) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Err(RuntimeError::NotFound(id.into())),
            Err(e) if address_in_use(&e) => Err(RuntimeError::AddressInUse(format!(
                "starting container {id}"
            ))),
            Err(e) => Err(failed("starting the container", e)),
        }
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> RuntimeResult<()> {
        let seconds = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptions {
            t: Some(seconds),
            signal: None,
        };
        // The daemon answers once the container stopped, which may be the whole grace
        // period later.
        let docker = self
            .docker
            .clone()
            .with_timeout(grace + Duration::from_secs(REQUEST_TIMEOUT));
        match docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Err(RuntimeError::NotFound(id.into())),
            Err(e) => Err(failed("stopping the container", e)),
        }
    }

    async fn remove_container(&self, id: &str) -> RuntimeResult<()> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            // Already being removed by another request.
            Err(e) if status_code(&e) == Some(409) => Ok(()),
            Err(e) => Err(failed("removing the container", e)),
        }
    }

    async fn inspect_container(&self, id: &str) -> RuntimeResult<Option<ContainerInfo>> {
        match self.docker.inspect_container(id, None).await {
            Ok(inspect) => Ok(Some(container_info(inspect))),
            Err(e) if status_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(failed("inspecting the container", e)),
        }
    }

    async fn list_containers(
        &self,
        labels: &[(String, String)],
    ) -> RuntimeResult<Vec<ContainerInfo>> {
        let summaries = self.list_labelled(labels).await?;
        let mut containers = Vec::with_capacity(summaries.len());
        for summary in summaries {
            let Some(id) = summary.id else { continue };
            // Gone since the list: skip it.
            if let Some(info) = self.inspect_container(&id).await? {
                containers.push(info);
            }
        }
        Ok(containers)
    }

    async fn list_summaries(
        &self,
        labels: &[(String, String)],
    ) -> RuntimeResult<Vec<ContainerSummary>> {
        Ok(self
            .list_labelled(labels)
            .await?
            .into_iter()
            .filter_map(summary)
            .collect())
    }

    async fn list_with_label(&self, key: &str) -> RuntimeResult<Vec<ContainerSummary>> {
        let filters = HashMap::from([("label".to_string(), vec![key.to_string()])]);
        Ok(self
            .list_filtered(filters)
            .await?
            .into_iter()
            .filter_map(summary)
            .collect())
    }

    async fn container_logs(
        &self,
        id: &str,
        options: &LogOptions,
    ) -> RuntimeResult<BoxStream<'static, RuntimeResult<Bytes>>> {
        // Fail now, with a clear error, rather than inside the stream.
        if self.inspect_container(id).await?.is_none() {
            return Err(RuntimeError::NotFound(id.into()));
        }
        let options = LogsOptions {
            follow: options.follow,
            stdout: true,
            stderr: true,
            since: options
                .since
                .map(|t| i32::try_from(t.as_second()).unwrap_or(0))
                .unwrap_or(0),
            until: 0,
            timestamps: options.timestamps,
            tail: options
                .tail_lines
                .map(|n| n.to_string())
                .unwrap_or_else(|| "all".into()),
        };
        let stream = self
            .docker
            .logs(id, Some(options))
            .map(|item| {
                item.map(|out| out.into_bytes())
                    .map_err(|e| failed("reading the log", e))
            })
            .boxed();
        Ok(stream)
    }

    async fn exec(
        &self,
        id: &str,
        command: &[String],
        timeout: Duration,
    ) -> RuntimeResult<ExecOutput> {
        let run = async {
            let exec = self
                .docker
                .create_exec(
                    id,
                    CreateExecOptions {
                        cmd: Some(command.to_vec()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..CreateExecOptions::default()
                    },
                )
                .await
                .map_err(|e| match status_code(&e) {
                    Some(404) => RuntimeError::NotFound(id.into()),
                    _ => failed("creating the exec", e),
                })?;
            let mut output = Vec::new();
            match self
                .docker
                .start_exec(&exec.id, None)
                .await
                .map_err(|e| failed("starting the exec", e))?
            {
                StartExecResults::Attached {
                    output: mut stream, ..
                } => {
                    while let Some(chunk) = stream.next().await {
                        let chunk = chunk.map_err(|e| failed("reading the exec's output", e))?;
                        // Probe output is only for messages: keep the first 10 KiB.
                        if output.len() < 10 * 1024 {
                            output.extend_from_slice(&chunk.into_bytes());
                        }
                    }
                }
                StartExecResults::Detached => {}
            }
            let inspect = self
                .docker
                .inspect_exec(&exec.id)
                .await
                .map_err(|e| failed("inspecting the exec", e))?;
            Ok(ExecOutput {
                exit_code: inspect.exit_code.unwrap_or(-1),
                output: String::from_utf8_lossy(&output).into_owned(),
            })
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(RuntimeError::Timeout {
                op: format!("command {command:?}"),
                after: timeout,
            }),
        }
    }

    async fn exec_attached(&self, id: &str, spec: &ExecSpec) -> RuntimeResult<ExecSession> {
        let exec = self
            .docker
            .create_exec(
                id,
                CreateExecOptions {
                    cmd: Some(spec.command.clone()),
                    attach_stdin: Some(spec.stdin),
                    attach_stdout: Some(spec.stdout),
                    attach_stderr: Some(spec.stderr),
                    tty: Some(spec.tty),
                    ..CreateExecOptions::default()
                },
            )
            .await
            .map_err(|e| match status_code(&e) {
                Some(404) => RuntimeError::NotFound(id.into()),
                _ => failed("creating the exec", e),
            })?;
        let options = StartExecOptions {
            detach: false,
            tty: spec.tty,
            output_capacity: None,
        };
        // Bollard's request timeout covers the upgrade only, not the session after it.
        match self
            .docker
            .start_exec(&exec.id, Some(options))
            .await
            .map_err(|e| failed("starting the exec", e))?
        {
            StartExecResults::Attached { output, input } => Ok(ExecSession {
                id: exec.id,
                output: output
                    .filter_map(|item| {
                        futures::future::ready(match item {
                            Ok(LogOutput::StdErr { message }) => {
                                Some(Ok((ExecStream::Stderr, message)))
                            }
                            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                                Some(Ok((ExecStream::Stdout, message)))
                            }
                            Ok(LogOutput::StdIn { .. }) => None,
                            Err(e) => Some(Err(failed("reading the exec's output", e))),
                        })
                    })
                    .boxed(),
                input,
            }),
            StartExecResults::Detached => Err(RuntimeError::failed(
                "starting the exec",
                "Docker did not attach to it",
            )),
        }
    }

    async fn resize_exec(&self, exec_id: &str, width: u16, height: u16) -> RuntimeResult<()> {
        self.docker
            .resize_exec(exec_id, ResizeExecOptions { width, height })
            .await
            .map_err(|e| failed("resizing the exec's terminal", e))
    }

    async fn attach(&self, id: &str, spec: &ExecSpec) -> RuntimeResult<ExecSession> {
        let options = AttachContainerOptions {
            stream: true,
            stdin: spec.stdin,
            stdout: spec.stdout,
            stderr: spec.stderr,
            ..AttachContainerOptions::default()
        };
        let attached = self
            .docker
            .attach_container(id, Some(options))
            .await
            .map_err(|e| match status_code(&e) {
                Some(404) => RuntimeError::NotFound(id.into()),
                _ => failed("attaching to the container", e),
            })?;
        Ok(ExecSession {
            id: id.to_string(),
            output: attached
                .output
                .filter_map(|item| {
                    futures::future::ready(match item {
                        Ok(LogOutput::StdErr { message }) => {
                            Some(Ok((ExecStream::Stderr, message)))
                        }
                        Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                            Some(Ok((ExecStream::Stdout, message)))
                        }
                        Ok(LogOutput::StdIn { .. }) => None,
                        Err(e) => Some(Err(failed("reading the container's output", e))),
                    })
                })
                .boxed(),
            input: attached.input,
        })
    }

    async fn resize_container(&self, id: &str, width: u16, height: u16) -> RuntimeResult<()> {
        self.docker
            .resize_container_tty(
                id,
                ResizeContainerTTYOptions {
                    w: i32::from(width),
                    h: i32::from(height),
                },
            )
            .await
            .map_err(|e| failed("resizing the container's terminal", e))
    }

    async fn exec_exit_code(&self, exec_id: &str) -> RuntimeResult<Option<i64>> {
        let inspect = self
            .docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| failed("inspecting the exec", e))?;
        Ok(match inspect.running {
            Some(true) => None,
            _ => inspect.exit_code,
        })
    }

    fn events(
        &self,
        labels: &[(String, String)],
    ) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
        let mut filters = label_filters(labels);
        filters.insert("type".into(), vec!["container".into()]);
        filters.insert(
            "event".into(),
            STATE_EVENTS.iter().map(|e| e.to_string()).collect(),
        );
        let options = EventsOptions {
            filters: Some(filters),
            ..EventsOptions::default()
        };
        self.docker
            .events(Some(options))
            .map(|item| {
                let message = item.map_err(|e| failed("reading Docker events", e))?;
                let actor = message.actor.unwrap_or_default();
                Ok(RuntimeEvent {
                    container_id: actor.id.unwrap_or_default(),
                    action: message.action.unwrap_or_default(),
                    labels: to_btree(actor.attributes),
                })
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_references_always_name_a_tag() {
        assert_eq!(pull_reference("busybox"), "busybox:latest");
        assert_eq!(pull_reference("busybox:1.36"), "busybox:1.36");
        assert_eq!(
            pull_reference("registry:5000/team/app"),
            "registry:5000/team/app:latest"
        );
        assert_eq!(pull_reference("app@sha256:abc"), "app@sha256:abc");
    }

    #[test]
    fn a_taken_fixed_address_is_not_a_taken_host_port() {
        let error = |message: &str| BollardError::DockerResponseServerError {
            status_code: 500,
            message: message.into(),
        };
        assert!(address_in_use(&error("Address already in use")));
        assert!(address_in_use(&error(
            "failed to set up container networking: Address already in use"
        )));
        assert!(!address_in_use(&error(
            "driver failed programming external connectivity on endpoint k8s_POD: Error \
             starting userland proxy: listen tcp4 0.0.0.0:8080: bind: address already in use"
        )));
    }

    #[test]
    fn docker_zero_times_are_none() {
        assert_eq!(parse_time(Some("0001-01-01T00:00:00Z")), None);
        assert_eq!(
            parse_time(Some("2024-05-01T10:00:00.123456789Z")).map(|t| t.as_second()),
            Some(1714557600)
        );
    }

    #[test]
    fn stdin_once_only_with_stdin() {
        let mut config = ContainerConfig::new("c", "busybox", NetworkMode::Host);
        config.stdin_once = true;
        assert_eq!(create_body(&config).stdin_once, Some(false));
        config.stdin = true;
        let body = create_body(&config);
        assert_eq!((body.open_stdin, body.stdin_once), (Some(true), Some(true)));
    }
}
