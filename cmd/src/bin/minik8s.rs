//! `minik8s up`: a one-node cluster in one process — the API server on the embedded
//! store, its controllers, and a kubelet for this machine — plus a kubeconfig to reach it.
//! `minik8s reset`: removes what MiniK8s left on this machine.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use minik8s_apiserver::{Server, ServerConfig, StoreConfig};
use minik8s_kubelet::KubeletConfig;
use minik8s_kubelet::client::{Config, Kubeconfig};

/// MiniK8s: a small, real container orchestrator.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a one-node cluster here until interrupted (Ctrl-C or SIGTERM).
    Up(Up),
    /// Removes what MiniK8s made on this machine, of any cluster: every pod container
    /// (pods keep running after `up` stops), the pod networks, the routes and the MINIK8S
    /// iptables chains; with --data, the data directory too. Stop `up` first.
    Reset(Reset),
}

#[derive(Parser, Debug)]
struct Reset {
    /// Also remove the data directory: the store, the pod directories, the kubeconfig copy.
    #[arg(long)]
    data: bool,
    /// The data directory (default: ~/.local/share/minik8s).
    #[arg(long, env = "MINIK8S_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Docker's socket (default: /var/run/docker.sock).
    #[arg(long, env = "DOCKER_HOST")]
    docker_host: Option<String>,
}

#[derive(Parser, Debug)]
struct Up {
    /// Address of the API server.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Where the store file, the kubelet's pod directories and the kubeconfig live
    /// (default: ~/.local/share/minik8s).
    #[arg(long, env = "MINIK8S_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The node's name (default: this machine's host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Write the kubeconfig here. Without it, ~/.kube/config is written only when it does
    /// not exist yet (or is one this command wrote); a file of your own is left alone.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Port of the kubelet's log server.
    #[arg(long, default_value_t = minik8s_kubelet::DEFAULT_PORT)]
    kubelet_port: u16,
    /// The pause image (built by deploy/images.sh).
    #[arg(long, default_value = minik8s_kubelet::DEFAULT_PAUSE_IMAGE)]
    pause_image: String,
    /// Docker's socket (default: /var/run/docker.sock).
    #[arg(long, env = "DOCKER_HOST")]
    docker_host: Option<String>,
    /// The range pod addresses come from, one /24 per node.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: minik8s_kubelet::network::Ipv4Net,
    /// The kube-dns service's address, every ClusterFirst pod's nameserver (default: the
    /// tenth of the service range, 10.96.0.10).
    #[arg(long)]
    cluster_dns: Option<std::net::Ipv4Addr>,
    /// The cluster's DNS domain.
    #[arg(long, default_value = minik8s_kubelet::config::DEFAULT_CLUSTER_DOMAIN)]
    cluster_domain: String,
}

const CONTEXT: &str = "minik8s";

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

/// True if `path` is free to write: missing, or a kubeconfig that only names our cluster.
fn ours_or_missing(path: &Path) -> bool {
    match Kubeconfig::load(path) {
        Err(_) => !path.exists(),
        Ok(k) => !k.clusters.is_empty() && k.clusters.iter().all(|c| c.name == CONTEXT),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    minik8s_cmd::init_tracing();
    match Cli::parse().command {
        Command::Up(up) => run_up(up).await,
        Command::Reset(reset) => run_reset(reset).await,
    }
}

fn default_data_dir() -> PathBuf {
    home().join(".local/share/minik8s")
}

async fn run_reset(reset: Reset) -> anyhow::Result<()> {
    let data_dir = reset
        .data
        .then(|| reset.data_dir.unwrap_or_else(default_data_dir));
    let report =
        minik8s_kubelet::reset::reset(reset.docker_host.as_deref(), data_dir.as_deref()).await;
    print!("{report}");
    if !report.failures.is_empty() {
        anyhow::bail!("the reset is incomplete: {} failed", report.failures.len());
    }
    Ok(())
}

async fn run_up(up: Up) -> anyhow::Result<()> {
    let data_dir = up.data_dir.unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;

    let mut config = ServerConfig::new(
        up.listen,
        StoreConfig::Embedded {
            data_dir: data_dir.join("store"),
        },
    );
    if let Some(controllers) = &mut config.controllers {
        controllers.cluster_cidr = up.cluster_cidr;
        controllers.cluster_dns = up.cluster_dns;
    }
    let cluster_dns = up.cluster_dns.unwrap_or_else(|| {
        minik8s_apiserver::controllers::dns_service::default_ip(&config.service_ranges)
    });
    let server = Server::start(config)
        .await
        .context("starting the API server")?;
    let url = server.url();

    let kubeconfig = Kubeconfig::for_server(CONTEXT, &url, None);
    let default = home().join(".kube/config");
    let path = match up.kubeconfig {
        Some(p) => p,
        None if ours_or_missing(&default) => default,
        None => data_dir.join("kubeconfig"),
    };
    kubeconfig
        .write(&path)
        .with_context(|| format!("writing {}", path.display()))?;

    let node_name = up.node_name.map_or_else(minik8s_cmd::host_name, Ok)?;
    let mut kubelet = KubeletConfig::new(Config::new(url.parse()?), node_name.clone());
    kubelet.root_dir = data_dir.join("kubelet");
    kubelet.port = up.kubelet_port;
    kubelet.pause_image = up.pause_image;
    kubelet.docker_socket = up.docker_host;
    kubelet.cluster_cidr = Some(up.cluster_cidr);
    kubelet.cluster_dns = Some(cluster_dns);
    kubelet.cluster_domain = up.cluster_domain;

    println!(
        "MiniK8s is up: API server at {url}, node {node_name}, data in {}",
        data_dir.display()
    );
    if path == home().join(".kube/config") {
        println!(
            "kubeconfig written to {}; try: kubectl get nodes",
            path.display()
        );
    } else {
        println!(
            "kubeconfig written to {} (your own ~/.kube/config is left alone); try:\n  export KUBECONFIG={}\n  kubectl get nodes",
            path.display(),
            path.display()
        );
    }
    let result = minik8s_kubelet::run(kubelet, minik8s_cmd::interrupted()).await;
    server.shutdown().await;
    result.context("kubelet")
}
