//! `kubelet`: the MiniK8s node agent. Runs the pods bound to this node on Docker.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use minik8s_api::duration::parse_duration_flag;
use minik8s_kubelet::KubeletConfig;
use minik8s_kubelet::client::{Config, KubeconfigOptions};

/// The MiniK8s kubelet.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Kubeconfig to reach the API server with (default: KUBECONFIG, ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The API server's address; overrides the kubeconfig's.
    #[arg(long, env = "MINIK8S_SERVER")]
    server: Option<String>,
    /// Bearer token for the API server; overrides the kubeconfig's.
    #[arg(long, env = "MINIK8S_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The node's name (default: the host name, lowercased).
    #[arg(long, env = "MINIK8S_NODE_NAME")]
    node_name: Option<String>,
    /// Where pod directories (emptyDir volumes) live.
    #[arg(long, default_value = minik8s_kubelet::config::DEFAULT_ROOT_DIR)]
    root_dir: PathBuf,
    /// Address of the log server.
    #[arg(long, default_value = "0.0.0.0")]
    address: IpAddr,
    /// Port of the log server (0: any free port).
    #[arg(long, default_value_t = minik8s_kubelet::DEFAULT_PORT)]
    port: u16,
    /// The pause image (built by deploy/images.sh).
    #[arg(long, default_value = minik8s_kubelet::DEFAULT_PAUSE_IMAGE)]
    pause_image: String,
    /// The node's InternalIP (default: the address of the default route).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// Docker's socket (default: /var/run/docker.sock).
    #[arg(long, env = "DOCKER_HOST")]
    docker_socket: Option<String>,
    /// How often the node's Ready heartbeat is sent.
    #[arg(long, default_value = "10s", value_parser = parse_duration_flag)]
    heartbeat_interval: Duration,
    /// How often every pod is reconciled without a reason.
    #[arg(long, default_value = "10s", value_parser = parse_duration_flag)]
    resync_interval: Duration,
    /// How long to wait for the API server to assign the node's pod CIDR.
    #[arg(long, default_value = "5m", value_parser = parse_duration_flag)]
    pod_cidr_timeout: Duration,
    /// First restart delay of a crashing container; doubles up to --backoff-max.
    #[arg(long, default_value = "10s", value_parser = parse_duration_flag)]
    backoff_base: Duration,
    #[arg(long, default_value = "5m", value_parser = parse_duration_flag)]
    backoff_max: Duration,
    /// Pods this node takes (status.capacity.pods).
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// Route other nodes' pod CIDRs to them and accept the cluster's traffic in iptables.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    host_gateway: bool,
    /// Every pod's address (default: the /16 that holds the node's pod CIDR).
    #[arg(long)]
    cluster_cidr: Option<minik8s_kubelet::network::Ipv4Net>,
    /// Serve Services' cluster IPs and node ports with iptables rules (the node proxy).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    proxy: bool,
    /// The cluster DNS server's address (the kube-dns service), the nameserver of
    /// ClusterFirst pods; this node's DNS server answers it. Empty: no cluster DNS.
    #[arg(long, default_value = "10.96.0.10")]
    cluster_dns: String,
    /// The cluster's DNS domain.
    #[arg(long, default_value = minik8s_kubelet::config::DEFAULT_CLUSTER_DOMAIN)]
    cluster_domain: String,
    /// The host's resolver configuration (Default pods, upstreams). Empty: none.
    #[arg(long, default_value = minik8s_kubelet::config::DEFAULT_RESOLV_CONF)]
    resolv_conf: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    minik8s_cmd::init_tracing();
    let args = Args::parse();
    let client = Config::from_kubeconfig(&KubeconfigOptions {
        path: args.kubeconfig.clone(),
        server: args.server.clone(),
        token: args.token.clone(),
        ..KubeconfigOptions::default()
    })
    .context("configuring the API client")?;
    let node_name = args
        .node_name
        .clone()
        .map_or_else(minik8s_cmd::host_name, Ok)?;
    let mut config = KubeletConfig::new(client, node_name);
    config.root_dir = args.root_dir;
    config.address = args.address;
    config.port = args.port;
    config.pause_image = args.pause_image;
    config.node_ip = args.node_ip;
    config.docker_socket = args.docker_socket;
    config.heartbeat_interval = args.heartbeat_interval;
    config.resync_interval = args.resync_interval;
    config.pod_cidr_timeout = args.pod_cidr_timeout;
    config.backoff_base = args.backoff_base;
    config.backoff_max = args.backoff_max;
    config.max_pods = args.max_pods;
    config.host_gateway = args.host_gateway;
    config.cluster_cidr = args.cluster_cidr;
    config.proxy = args.proxy;
    config.cluster_dns = match args.cluster_dns.trim() {
        "" => None,
        ip => Some(
            ip.parse()
                .with_context(|| format!("--cluster-dns={ip:?} is not an IPv4 address"))?,
        ),
    };
    config.cluster_domain = args.cluster_domain;
    config.resolv_conf = (!args.resolv_conf.as_os_str().is_empty()).then_some(args.resolv_conf);
    minik8s_kubelet::run(config, minik8s_cmd::interrupted())
        .await
        .context("running the kubelet")
}
