//! The MiniK8s kubelet: the node agent that runs the pods bound to its node on Docker.
//!
//! [`run`] registers the node and keeps it `Ready`, waits for the API server to assign
//! the node's pod CIDR and makes it a Docker bridge network, serves container logs and
//! exec, and runs one reconciling worker per pod (see [`pod::worker`]). Everything it
//! knows about running pods is read back from Docker labels, so a restarted kubelet
//! adopts the containers of the one before without restarting them.
//!
//! The container runtime is behind [`ContainerRuntime`]: [`DockerRuntime`] for real,
//! [`FakeRuntime`] for tests of the pod worker.

pub mod backoff;
pub mod config;
pub mod dns;
pub mod error;
pub mod events;
pub mod exec;
pub mod hosts;
pub mod ipam;
pub mod labels;
pub mod leftovers;
pub mod logs;
pub mod manager;
pub mod network;
pub mod node;
pub mod objects;
pub mod pod;
pub mod portforward;
pub mod proxy;
pub mod reset;
pub mod resolv;
pub mod runtime;
pub mod volumes;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// The API client the kubelet is configured with.
pub use minik8s_client as client;

pub use config::{DEFAULT_PAUSE_IMAGE, DEFAULT_PORT, KubeletConfig, network_name};
pub use error::{Error, Result};
pub use runtime::{CachedRuntime, ContainerRuntime, DockerRuntime, FakeRuntime};

use crate::events::Recorder;
use crate::ipam::Ipam;
use crate::manager::Manager;
use crate::node::{NodeAgent, NodeFacts};
use crate::pod::{ClientPodApi, WorkerEnv};
use crate::runtime::NetworkConfig;

/// Runs a kubelet on Docker until `shutdown` completes. Pods keep running after it
/// returns; the next kubelet of the node adopts them.
pub async fn run(config: KubeletConfig, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
    config.validate()?;
    let runtime = DockerRuntime::connect(config.docker_socket.as_deref()).await?;
    run_with_runtime(config, Arc::new(runtime), shutdown).await
}

/// [`run`] on any container runtime.
pub async fn run_with_runtime(
    config: KubeletConfig,
    runtime: Arc<dyn ContainerRuntime>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    config.validate()?;
    // Pod workers and the manager read the node's containers from a cache kept current
    // by Docker's events (see `runtime::cache`).
    let runtime: Arc<dyn ContainerRuntime> =
        Arc::new(CachedRuntime::new(runtime, &config.node_name));
    let mut shutdown = std::pin::pin!(shutdown);
    let client = minik8s_client::Client::new(config.client.clone())?;
    let version = runtime.version().await?;
    std::fs::create_dir_all(&config.root_dir).map_err(|source| Error::Io {
        path: config.root_dir.clone(),
        source,
    })?;

    // The log server's port goes into the node's status, so it listens first.
    let addr = SocketAddr::new(config.address, config.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr, source })?;
    let port = listener
        .local_addr()
        .map_err(|source| Error::Listen { addr, source })?
        .port();
    let facts = NodeFacts::gather(&config, version.uri(), port);
    let host_ip = facts.internal_ip;
    tracing::info!(node = %config.node_name, ip = %host_ip, %port, runtime = %version.uri(),
        "kubelet starting");
    let agent = Arc::new(NodeAgent::new(client.clone(), facts).with_runtime(runtime.clone()));

    // Register, retrying while the API server cannot be reached.
    let mut delay = std::time::Duration::from_millis(200);
    let node = loop {
        tokio::select! {
            result = agent.register() => match result {
                Ok(node) => break node,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?delay, "registering the node");
                }
            },
            _ = &mut shutdown => return Ok(()),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = &mut shutdown => return Ok(()),
        }
        delay = (delay * 2).min(std::time::Duration::from_secs(10));
    };
    let heartbeat = {
        let agent = agent.clone();
        let interval = config.heartbeat_interval;
        tokio::spawn(async move { agent.heartbeat_loop(node, interval).await })
    };
    let _stop_heartbeat = AbortOnDrop(heartbeat);

    let cidr = tokio::select! {
        cidr = agent.wait_for_pod_cidr(config.pod_cidr_timeout) => cidr?,
        _ = &mut shutdown => return Ok(()),
    };
    let network = NetworkConfig {
        name: config.network_name(),
        subnet: cidr,
        gateway: node::gateway(&cidr),
        labels: BTreeMap::from([(labels::NODE.to_string(), config.node_name.clone())]),
    };
    leftovers::clear_pod_cidr(
        runtime.as_ref(),
        &network,
        &config.node_name,
        &leftovers::reset_command(config.docker_socket.as_deref()),
    )
    .await?;
    runtime.ensure_network(&network).await?;
    tracing::info!(node = %config.node_name, network = %network.name, subnet = %cidr,
        "pod network ready");
    let _stop_routes = config.host_gateway.then(|| {
        let cluster = config
            .cluster_cidr
            .unwrap_or_else(|| network::default_cluster_cidr(cidr));
        if !cluster.contains(&cidr) {
            tracing::warn!(%cluster, pod_cidr = %cidr,
                "the node's pod CIDR is outside the cluster CIDR; its pods are not routed");
        }
        tracing::info!(%cluster, "routing the cluster's pod networks between nodes");
        let gateway = network::HostGateway::new(
            Arc::new(network::CommandHost),
            &config.node_name,
            Some(host_ip),
            cidr,
            cluster,
        );
        AbortOnDrop(tokio::spawn(
            gateway.run(client.clone(), config.resync_interval),
        ))
    });

    let _stop_proxy = config.proxy.then(|| {
        tracing::info!(node = %config.node_name, "serving services' cluster IPs and node ports");
        let proxy = proxy::Proxy::new(Arc::new(proxy::IptablesApplier::new()), &config.node_name)
            .with_hairpin_bridge(network.gateway)
            .with_local_dns(
                config
                    .cluster_dns
                    .zip(node_dns(&config, network.gateway))
                    .and_then(|(ip, dns)| Some((ip, dns.listen.first()?.ip()))),
            );
        AbortOnDrop(tokio::spawn(
            proxy.run(client.clone(), config.resync_interval),
        ))
    });

    // The sender lives as long as `run`: dropping it stops the server.
    let (_stop_dns, dns_stopped) = tokio::sync::watch::channel(false);
    let _dns = node_dns(&config, network.gateway).map(|dns| {
        let client = client.clone();
        AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = dns::serve(client, dns, dns_stopped).await {
                tracing::error!(error = %e, "the cluster DNS server did not start");
            }
        }))
    });

    let server = {
        let router = logs::router(runtime.clone(), &config.node_name)
            .merge(exec::router(runtime.clone(), &config.node_name))
            .merge(portforward::router(runtime.clone(), &config.node_name));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "the kubelet's HTTP server stopped");
            }
        })
    };
    let _stop_server = AbortOnDrop(server);

    let (recorder, _events) = Recorder::start(client.clone(), &config.node_name);
    let api = Arc::new(ClientPodApi {
        client: client.clone(),
    });
    let ipam = Ipam::new(&network.name, cidr, network.gateway, &config.root_dir);
    let env = Arc::new(WorkerEnv::new(
        &config,
        runtime,
        api,
        recorder,
        Some(host_ip),
        Some(client.clone()),
        Some(Arc::new(ipam)),
    ));
    let hosts = env.hosts.clone();
    Manager::new(env, config.resync_interval)
        .run(client, shutdown)
        .await;
    hosts.stop();
    tracing::info!(node = %config.node_name, "kubelet stopped");
    Ok(())
}

/// The node's DNS server: `config.dns` if given, else one for `--cluster-dns` (none
/// without it). It listens on the pod bridge's gateway, port 53 — an address of this
/// host that the node's pods reach over their bridge — unless told otherwise; the proxy
/// sends the cluster DNS address there ([`proxy::Proxy::with_local_dns`]). Its upstreams
/// are the nameservers of `--resolv-conf`.
fn node_dns(config: &KubeletConfig, gateway: std::net::Ipv4Addr) -> Option<dns::DnsConfig> {
    let mut dns = config.dns.clone().or_else(|| {
        config.cluster_dns?;
        let (host, _) = resolv::PodDns {
            cluster_dns: config.cluster_dns,
            cluster_domain: config.cluster_domain.clone(),
            resolv_conf: config.resolv_conf.clone(),
        }
        .host_config();
        Some(dns::DnsConfig {
            cluster_domain: config.cluster_domain.clone(),
            listen: Vec::new(),
            upstreams: host
                .servers
                .iter()
                .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
                .collect(),
        })
    })?;
    if dns.listen.is_empty() {
        dns.listen = vec![SocketAddr::new(gateway.into(), proxy::DNS_PORT)];
    }
    Some(dns)
}

/// Aborts a background task when dropped, so that no task outlives `run`.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
