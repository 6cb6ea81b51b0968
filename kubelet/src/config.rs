//! What a kubelet is told at start.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv4Net;

/// The pause image this build of the kubelet expects (built by `deploy/images.sh`).
pub const DEFAULT_PAUSE_IMAGE: &str = concat!("minik8s/pause:", env!("CARGO_PKG_VERSION"));
/// The port Kubernetes' kubelet serves on; ours serves container logs there.
pub const DEFAULT_PORT: u16 = 10250;
pub const DEFAULT_ROOT_DIR: &str = "/var/lib/minik8s/kubelet";
/// The version reported in `status.nodeInfo.kubeletVersion`, in the API server's style.
pub const KUBELET_VERSION: &str = concat!("v1.33.0-minik8s.", env!("CARGO_PKG_VERSION"));
/// The `kube-dns` service's address in the default service range (`10.96.0.0/16`).
pub const DEFAULT_CLUSTER_DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
pub const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";

/// How a kubelet runs. [`KubeletConfig::new`] fills in Kubernetes' defaults; every field
/// may be changed after.
#[derive(Clone, Debug)]
pub struct KubeletConfig {
    /// How to reach the API server.
    pub client: minik8s_client::Config,
    /// The `Node` this kubelet registers and whose pods it runs.
    pub node_name: String,
    /// Where pod directories (emptyDir volumes) live.
    pub root_dir: PathBuf,
    /// Address the log server listens on.
    pub address: IpAddr,
    /// Port of the log server; `0` picks a free one (reported in the node's
    /// `status.daemonEndpoints`).
    pub port: u16,
    /// The image of every pod's pause container.
    pub pause_image: String,
    /// The address reported as the node's `InternalIP`; found from the routing table when
    /// `None`.
    pub node_ip: Option<IpAddr>,
    /// Docker's socket; Docker's default (`/var/run/docker.sock`) when `None`.
    pub docker_socket: Option<String>,
    /// How often the node's status (the `Ready` heartbeat) is sent.
    pub heartbeat_interval: Duration,
    /// How often every pod is reconciled even when nothing reported a change.
    pub resync_interval: Duration,
    /// How long to wait for the API server to assign `spec.podCIDR` to the node.
    pub pod_cidr_timeout: Duration,
    /// The first restart delay of a crashing container (and of a failing image pull); it
    /// doubles up to `backoff_max`. Kubernetes: 10 s.
    pub backoff_base: Duration,
    /// Kubernetes: 5 min. The back-off is forgotten after a container ran for twice this.
    pub backoff_max: Duration,
    /// The longest one image pull may take.
    pub image_pull_timeout: Duration,
    /// `status.capacity.pods`.
    pub max_pods: u32,
    /// Route other nodes' pod CIDRs to them and let the cluster's traffic through
    /// iptables (see [`crate::network`]).
    pub host_gateway: bool,
    /// All pods' addresses; the `/16` that holds the node's pod CIDR when `None`.
    pub cluster_cidr: Option<Ipv4Net>,
    /// Serve Services' cluster IPs and node ports with iptables rules (see
    /// [`crate::proxy`]).
    pub proxy: bool,
    /// `--cluster-dns`: the `kube-dns` service's address, the nameserver of `ClusterFirst`
    /// pods; the proxy sends its port 53 to this node's DNS server. `None`: no cluster
    /// DNS (such pods fall back to `Default`, with a `MissingClusterDNS` event).
    pub cluster_dns: Option<Ipv4Addr>,
    /// `--cluster-domain`.
    pub cluster_domain: String,
    /// `--resolv-conf`: the host's resolver configuration, for `Default` pods, the search
    /// domains of `ClusterFirst` ones and the DNS server's upstreams. `None` (the flag
    /// set empty): none, as Kubernetes' kubelet.
    pub resolv_conf: Option<PathBuf>,
    /// Serve the cluster DNS from this node (see [`crate::dns`]); `None` serves none.
    pub dns: Option<crate::dns::DnsConfig>,
}

impl KubeletConfig {
    pub fn new(client: minik8s_client::Config, node_name: impl Into<String>) -> KubeletConfig {
        KubeletConfig {
            client,
            node_name: node_name.into(),
            root_dir: PathBuf::from(DEFAULT_ROOT_DIR),
            address: IpAddr::from([0, 0, 0, 0]),
            port: DEFAULT_PORT,
            pause_image: DEFAULT_PAUSE_IMAGE.to_string(),
            node_ip: None,
            docker_socket: None,
            heartbeat_interval: Duration::from_secs(10),
            resync_interval: Duration::from_secs(10),
            pod_cidr_timeout: Duration::from_secs(300),
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            image_pull_timeout: Duration::from_secs(600),
            max_pods: 110,
            host_gateway: true,
            cluster_cidr: None,
            proxy: true,
            cluster_dns: Some(DEFAULT_CLUSTER_DNS),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_string(),
            resolv_conf: Some(PathBuf::from(DEFAULT_RESOLV_CONF)),
            dns: None,
        }
    }

    /// The Docker bridge network of this node's pods.
    pub fn network_name(&self) -> String {
        network_name(&self.node_name)
    }

    pub(crate) fn validate(&self) -> crate::Result<()> {
        if self.node_name.is_empty() {
            return Err(crate::Error::Config("the node name is empty".into()));
        }
        if let Some(problem) = minik8s_api::names::is_dns1123_subdomain(&self.node_name).first() {
            return Err(crate::Error::Config(format!(
                "node name {:?}: {problem}",
                self.node_name
            )));
        }
        if let Some(problem) =
            minik8s_api::names::is_dns1123_subdomain(&self.cluster_domain).first()
        {
            return Err(crate::Error::Config(format!(
                "cluster domain {:?}: {problem}",
                self.cluster_domain
            )));
        }
        if self.heartbeat_interval.is_zero() || self.resync_interval.is_zero() {
            return Err(crate::Error::Config(
                "the heartbeat and resync intervals must be positive".into(),
            ));
        }
        if self.backoff_base.is_zero() || self.backoff_max < self.backoff_base {
            return Err(crate::Error::Config(
                "the back-off base must be positive and not above the maximum".into(),
            ));
        }
        Ok(())
    }
}

/// The Docker bridge network of the pods of `node`.
pub fn network_name(node: &str) -> String {
    format!("minik8s-{node}")
}
