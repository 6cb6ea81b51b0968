//! The kubelet's errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv4Net;

use crate::runtime::RuntimeError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the API server: {0}")]
    Api(#[from] minik8s_client::Error),
    #[error("the container runtime: {0}")]
    Runtime(#[from] RuntimeError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(
        "node {node} got no spec.podCIDR within {waited:?}: is the API server's node CIDR \
         allocator running?"
    )]
    NoPodCidr { node: String, waited: Duration },
    #[error("node {node} has spec.podCIDR {cidr:?}, which is not an IPv4 network")]
    BadPodCidr { node: String, cidr: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Running containers of another MiniK8s node hold the node's pod CIDR.
    #[error(transparent)]
    PodCidrInUse(Box<PodCidrInUse>),
    /// A Docker network that MiniK8s did not make overlaps the node's pod CIDR.
    #[error(
        "node {node}'s pod CIDR {cidr} overlaps Docker network {network} ({subnet}), which \
         MiniK8s did not make: remove it (docker network rm {network}) or start the cluster \
         with a cluster CIDR that does not overlap it (--cluster-cidr)"
    )]
    PodCidrOverlaps {
        node: String,
        cidr: Ipv4Net,
        network: String,
        subnet: String,
    },
    #[error("serving logs on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The pod network of another MiniK8s node or cluster holds this node's pod CIDR, and
/// containers still run on it.
#[derive(Debug, thiserror::Error)]
#[error(
    "node {node}'s pod CIDR {cidr} is held by Docker network {network} ({subnet}) of \
     another MiniK8s node or cluster ({owner}), on which containers still run: {}. \
     Remove what it left with `{reset}` (it stops every MiniK8s container and removes \
     MiniK8s' networks, routes and iptables chains on this machine)",
    containers.join(", ")
)]
pub struct PodCidrInUse {
    pub node: String,
    pub cidr: Ipv4Net,
    pub network: String,
    pub subnet: String,
    /// The node the network was made for.
    pub owner: String,
    /// The names of the containers attached to it.
    pub containers: Vec<String>,
    /// The command that cleans up.
    pub reset: String,
}
