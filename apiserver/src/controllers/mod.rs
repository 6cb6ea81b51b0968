//! Controllers that run inside the API server: the scheduler and the node controller
//! (pod CIDR allocation and heartbeat checking). Each is a reconcile function that looks
//! at what is and what should be and acts; it is safe to run any number of times, and it
//! is driven by the watch caches plus a periodic resync, so a missed event only delays it.
//! Every write is a compare-and-swap, so two API servers sharing one etcd cannot bind a
//! pod twice or hand out one pod CIDR to two nodes; beyond that, only the API server that
//! holds the controllers' lease ([`leader`]) runs them, so the scheduler's view of free
//! capacity is never split between two.

pub mod apiserver_service;
pub mod daemonset;
pub mod deployment;
pub mod dns_service;
pub mod endpoints;
pub mod events;
pub mod garbage_collector;
pub mod history;
pub mod job;
pub mod leader;
pub mod nodes;
pub mod owned;
pub mod replicaset;
pub mod scheduler;
pub mod statefulset;
pub mod taskset;

use std::sync::Arc;
use std::time::Duration;

use minik8s_api::resource::{
    CONFIG_MAPS, CONTROLLER_REVISIONS, DAEMON_SETS, DEPLOYMENTS, JOBS, NODES, PODS, REPLICA_SETS,
    REPLICATION_CONTROLLERS, ResourceInfo, SECRETS, SERVICES, STATEFUL_SETS, TASKSETS,
};
use tokio::sync::watch;

use crate::registry::Registry;

/// Settings of the in-process controllers.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// The range pod CIDRs are cut from, one `/24` per node.
    pub cluster_cidr: ipnet::Ipv4Net,
    /// Prefix length of each node's pod CIDR.
    pub node_cidr_prefix: u8,
    /// A node whose last heartbeat is older than this is marked `Ready=Unknown`.
    pub node_monitor_grace: Duration,
    /// Reconcile at least this often, events or not.
    pub resync: Duration,
    /// The lease that picks the one API server whose controllers run.
    pub lease: leader::LeaseConfig,
    /// Where pods reach this API server: the `kubernetes` service's endpoint. Set by the
    /// server once it listens, unless given.
    pub advertise: Option<std::net::SocketAddr>,
    /// The `kube-dns` service's cluster IP; the tenth of the service range when `None`.
    pub cluster_dns: Option<std::net::Ipv4Addr>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            cluster_cidr: "10.244.0.0/16".parse().expect("valid default CIDR"),
            node_cidr_prefix: 24,
            node_monitor_grace: Duration::from_secs(40),
            resync: Duration::from_secs(5),
            lease: leader::LeaseConfig::default(),
            advertise: None,
            cluster_dns: None,
        }
    }
}

/// The resources whose changes wake the controllers (the garbage collector's owners
/// among them).
const WATCHED: &[&ResourceInfo] = &[
    &CONFIG_MAPS,
    &SECRETS,
    &CONTROLLER_REVISIONS,
    &PODS,
    &NODES,
    &TASKSETS,
    &SERVICES,
    &REPLICATION_CONTROLLERS,
    &DEPLOYMENTS,
    &REPLICA_SETS,
    &STATEFUL_SETS,
    &DAEMON_SETS,
    &JOBS,
];

/// Runs the controllers while `leading` is true, until `stop` turns true.
pub fn spawn(
    registry: Arc<Registry>,
    config: ControllerConfig,
    mut leading: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let subscribe = |r: &ResourceInfo| {
            let cache = registry.cache(r);
            cache.subscribe(cache.latest()).ok()
        };
        let mut subs: Vec<_> = WATCHED.iter().map(|r| subscribe(r)).collect();
        let mut ticker = tokio::time::interval(config.resync);
        loop {
            while !*leading.borrow_and_update() {
                tokio::select! {
                    _ = leading_changed(&mut leading) => {}
                    _ = stop.changed() => return,
                }
            }
            // First: its fixed address is taken before any other service could get it.
            let dns_ip = config
                .cluster_dns
                .unwrap_or_else(|| dns_service::default_ip(registry.allocations().ranges()));
            if let Err(e) = dns_service::reconcile(&registry, dns_ip).await {
                tracing::warn!(error = %e, "the kube-dns service");
            }
            if let Err(e) = nodes::reconcile(&registry, &config).await {
                tracing::warn!(error = %e, "node controller");
            }
            if let Err(e) = scheduler::reconcile(&registry).await {
                tracing::warn!(error = %e, "scheduler");
            }
            if let Err(e) = taskset::reconcile(&registry).await {
                tracing::warn!(error = %e, "taskset controller");
            }
            if let Some(advertise) = config.advertise
                && let Err(e) = apiserver_service::reconcile(&registry, advertise).await
            {
                tracing::warn!(error = %e, "the kubernetes service");
            }
            if let Err(e) = endpoints::reconcile(&registry).await {
                tracing::warn!(error = %e, "endpoints controller");
            }
            if let Err(e) = deployment::reconcile(&registry).await {
                tracing::warn!(error = %e, "deployment controller");
            }
            if let Err(e) = replicaset::reconcile(&registry).await {
                tracing::warn!(error = %e, "replicaset controller");
            }
            if let Err(e) = statefulset::reconcile(&registry).await {
                tracing::warn!(error = %e, "statefulset controller");
            }
            if let Err(e) = daemonset::reconcile(&registry).await {
                tracing::warn!(error = %e, "daemonset controller");
            }
            if let Err(e) = job::reconcile(&registry).await {
                tracing::warn!(error = %e, "job controller");
            }
            if let Err(e) = garbage_collector::reconcile(&registry).await {
                tracing::warn!(error = %e, "garbage collector");
            }
            if let Err(e) = registry.allocations().repair_if_due().await {
                tracing::warn!(error = %e, "repairing service allocations");
            }
            // Wait for a change to a watched resource, or the next resync.
            let cut_off = {
                let changed =
                    futures::future::select_all(subs.iter_mut().map(|s| Box::pin(recv(s))));
                tokio::select! {
                    _ = ticker.tick() => None,
                    _ = leading_changed(&mut leading) => None,
                    _ = stop.changed() => return,
                    (ev, i, _) = changed => ev.is_none().then_some(i),
                }
            };
            // A subscription cut off for being slow starts again from now.
            if let Some(i) = cut_off {
                subs[i] = subscribe(WATCHED[i]);
            }
            // Coalesce a burst of changes into one reconcile.
            for sub in subs.iter_mut().flatten() {
                sub.replay.clear();
                while sub.live.try_recv().is_ok() {}
            }
        }
    })
}

/// Resolves when `leading` changes; never, once its sender is gone (no election, or the
/// election has ended) — `changed()` itself would then resolve at once, every time, and
/// the loop around it would spin.
async fn leading_changed(leading: &mut watch::Receiver<bool>) {
    if leading.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn recv(sub: &mut Option<crate::watch_cache::Subscription>) -> Option<()> {
    match sub {
        Some(s) => s.live.recv().await.map(|_| ()),
        None => std::future::pending().await,
    }
}
