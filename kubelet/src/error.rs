//! The kubelet's errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    #[error("serving logs on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}
