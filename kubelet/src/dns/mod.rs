//! The cluster DNS: a node-local server inside the kubelet, in the shape of NodeLocal
//! DNSCache, that answers the names of the Kubernetes DNS-based service discovery
//! specification from the kubelet's own watches of Services and EndpointSlices.
//!
//! The watches keep a projection of each object ([`index::ServiceInfo`],
//! [`index::SliceInfo`]); [`DEBOUNCE`] after a change the whole [`index::Index`] is
//! built again and swapped in, so a query only reads an immutable snapshot and never
//! waits for the API server. Names outside the cluster domain (and reverse names of
//! addresses that are not the cluster's) go to the upstream resolvers, the node's own
//! by default. See `docs/discovery.md` for the records.

pub mod index;
mod server;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use hickory_proto::rr::Name;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use minik8s_client::{Api, Client, ListParams, WatcherEvent, watcher};

use index::{Index, ServiceInfo, SliceInfo};
use server::Shared;

/// How long after a change the index is rebuilt, so that a burst is built once.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// The cluster domain Kubernetes uses unless told otherwise.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// What the DNS server serves and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// The cluster domain, `cluster.local` by default (`--cluster-domain`).
    pub cluster_domain: String,
    /// Addresses to answer on, over UDP and TCP each.
    pub listen: Vec<SocketAddr>,
    /// Resolvers for names outside the cluster domain; empty = the nameservers of the
    /// host's `/etc/resolv.conf`, in order (one that does not answer is skipped).
    pub upstreams: Vec<SocketAddr>,
}

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("the DNS server has no address to listen on")]
    NoListenAddress,
    #[error("the cluster domain {domain:?} is not a DNS name: {reason}")]
    ClusterDomain { domain: String, reason: String },
    #[error("listening for DNS over {proto} on {addr}: {source}")]
    Listen {
        proto: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Serves DNS on every address of `config.listen` (UDP and TCP) until `stop` becomes
/// true (or its sender is dropped), keeping the records current from watches through
/// `client`. Fails only when it cannot listen.
pub async fn serve(
    client: Client,
    config: DnsConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), DnsError> {
    let zone = zone_name(&config.cluster_domain)?;
    if config.listen.is_empty() {
        return Err(DnsError::NoListenAddress);
    }
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    for addr in &config.listen {
        let socket =
            tokio::net::UdpSocket::bind(addr)
                .await
                .map_err(|source| DnsError::Listen {
                    proto: "UDP",
                    addr: *addr,
                    source,
                })?;
        // Port 0 picks one; TCP then listens on the same.
        let addr = socket.local_addr().unwrap_or(*addr);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| DnsError::Listen {
                proto: "TCP",
                addr,
                source,
            })?;
        udp.push(Arc::new(socket));
        tcp.push(listener);
    }
    let upstreams = if config.upstreams.is_empty() {
        resolv_conf_nameservers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
    } else {
        config.upstreams.clone()
    };
    // Never forward to ourselves.
    let upstreams: Vec<SocketAddr> = upstreams
        .into_iter()
        .filter(|u| !config.listen.contains(u))
        .collect();
    tracing::info!(domain = %config.cluster_domain, listen = ?config.listen,
        upstreams = ?upstreams, "serving cluster DNS");
    let shared = Arc::new(Shared {
        index: RwLock::new(None),
        zone: zone.clone(),
        upstreams,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for socket in udp {
        // Two readers per socket: both cores answer under load.
        for _ in 0..2 {
            tasks.spawn(server::udp_loop(socket.clone(), shared.clone()));
        }
    }
    for listener in tcp {
        tasks.spawn(server::tcp_loop(listener, shared.clone()));
    }
    tasks.spawn(keep_index(client, zone, shared));
    let _ = stop.wait_for(|stopped| *stopped).await;
    tasks.shutdown().await;
    Ok(())
}

/// The cluster domain as an absolute, lower-case name.
pub fn zone_name(domain: &str) -> Result<Name, DnsError> {
    let trimmed = domain.trim_end_matches('.');
    let bad = |reason: String| DnsError::ClusterDomain {
        domain: domain.to_string(),
        reason,
    };
    if trimmed.is_empty() {
        return Err(bad("it is empty".into()));
    }
    Name::from_ascii(format!("{trimmed}."))
        .map(|n| n.to_lowercase())
        .map_err(|e| bad(e.to_string()))
}

/// The `nameserver` lines of a resolv.conf, on port 53.
pub fn resolv_conf_nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let ip: std::net::IpAddr = words.next()?.split('%').next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

/// Follows Services and EndpointSlices and swaps in a new index [`DEBOUNCE`] after each
/// change, once both are listed.
async fn keep_index(client: Client, zone: Name, shared: Arc<Shared>) {
    let mut services_watch =
        watcher(Api::<Service>::all(client.clone()), ListParams::default()).boxed();
    let mut slices_watch =
        watcher(Api::<EndpointSlice>::all(client), ListParams::default()).boxed();
    let mut services: BTreeMap<(String, String), ServiceInfo> = BTreeMap::new();
    let mut slices: BTreeMap<(String, String), SliceInfo> = BTreeMap::new();
    let (mut services_listed, mut slices_listed) = (false, false);
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            event = services_watch.next() => match event {
                Some(Ok(event)) => {
                    services_listed |= apply(&mut services, event, ServiceInfo::from_service);
                    due.get_or_insert_with(|| tokio::time::Instant::now() + DEBOUNCE);
                }
                Some(Err(e)) => tracing::warn!(error = %e, "DNS: watching services"),
                None => return,
            },
            event = slices_watch.next() => match event {
                Some(Ok(event)) => {
                    slices_listed |= apply(&mut slices, event, SliceInfo::from_slice);
                    due.get_or_insert_with(|| tokio::time::Instant::now() + DEBOUNCE);
                }
                Some(Err(e)) => tracing::warn!(error = %e, "DNS: watching endpoint slices"),
                None => return,
            },
            _ = sleep_until(due) => {
                due = None;
                if services_listed && slices_listed {
                    let index = Index::build(&zone, &services, &slices);
                    *shared.index.write().unwrap_or_else(|e| e.into_inner()) =
                        Some(Arc::new(index));
                }
            }
        }
    }
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Applies a watch event to a map of projections by namespace and name; whether it was
/// a (re-)list. An object with nothing for DNS is left out.
fn apply<K, P>(
    map: &mut BTreeMap<(String, String), P>,
    event: WatcherEvent<K>,
    project: impl Fn(&K) -> Option<P>,
) -> bool
where
    K: k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
{
    let key = |o: &K| {
        let m = o.metadata();
        (
            m.namespace.clone().unwrap_or_default(),
            m.name.clone().unwrap_or_default(),
        )
    };
    match event {
        WatcherEvent::Restarted(list) => {
            *map = list
                .iter()
                .filter_map(|o| Some((key(o), project(o)?)))
                .collect();
            return true;
        }
        WatcherEvent::Applied(o) => match project(&o) {
            Some(p) => {
                map.insert(key(&o), p);
            }
            None => {
                map.remove(&key(&o));
            }
        },
        WatcherEvent::Deleted(o) => {
            map.remove(&key(&o));
        }
    }
    false
}
