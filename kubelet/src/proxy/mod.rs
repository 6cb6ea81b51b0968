//! The node proxy: Services' cluster IPs and node ports, in the shape of kube-proxy's
//! iptables mode.
//!
//! The kubelet watches Services and EndpointSlices, computes the nat-table chains they
//! ask for as plain data ([`rules::service_ports`], [`rules::render`]) and applies them
//! with one `iptables-restore --noflush` — one atomic transaction, never rule by rule
//! ([`Proxy::sync`]). A burst of changes is applied once, [`DEBOUNCE`] after the first
//! of them; a sync after a change rewrites only the chains that changed (a full rewrite
//! of a thousand services would take most of a second), and every resync interval the
//! table is read back and rewritten whole if anything of ours is missing, extra, or has
//! another number of rules (someone flushed the table, a rule was deleted by hand).
//!
//! The rules stay when the kubelet stops: traffic to services keeps flowing to the
//! endpoints it knew. A starting kubelet reads the table, rewrites all its chains, deletes
//! the ones it no longer needs and leaves each jump from a built-in chain exactly once,
//! so a restart leaves one copy of every rule. `minik8s reset` removes them (see
//! [`crate::reset`]).
//!
//! Every chain name carries a tag made from the node's name ([`rules::Names`]): one
//! kubelet per machine is the real deployment and owns one set; kubelets of several test
//! clusters on one machine each own theirs and never rewrite another's.

pub mod apply;
pub mod rules;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use minik8s_client::{Api, Client, ListParams, WatcherEvent, watcher};

pub use apply::{Applier, FakeApplier, IptablesApplier};
pub use rules::{Chains, DNS_PORT, LocalDns, Names, ServicePort};

/// How long after a change the rules are written, so that a burst is written once.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// What one sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Whether the whole set was read back and rewritten.
    pub full: bool,
    /// Chains written (created or flushed and filled).
    pub chains_written: usize,
    /// Bytes of `iptables-restore` input; 0 when nothing had to change.
    pub bytes: usize,
}

/// One node's proxy rules and how they are applied.
pub struct Proxy {
    applier: Arc<dyn Applier>,
    names: Names,
    /// What the last successful restore left in place; `None` until the first one, and
    /// after a failure (the next sync is then a full one).
    applied: Option<Chains>,
    /// The address of the node's pod bridge, whose ports get hairpin mode.
    bridge_ip: Option<std::net::Ipv4Addr>,
    /// The cluster DNS address sent to this node's DNS server.
    local_dns: Option<LocalDns>,
}

impl Proxy {
    pub fn new(applier: Arc<dyn Applier>, node: &str) -> Proxy {
        Proxy {
            applier,
            names: Names::new(node),
            applied: None,
            bridge_ip: None,
            local_dns: None,
        }
    }

    /// Turns hairpin mode on for every port of the bridge that has `gateway`, as each
    /// sync happens: see [`set_hairpin_mode`].
    pub fn with_hairpin_bridge(mut self, gateway: std::net::Ipv4Addr) -> Proxy {
        self.bridge_ip = Some(gateway);
        self
    }

    /// Sends `cluster_ip`'s port 53 (UDP and TCP) to `server`, this node's DNS server,
    /// instead of the endpoints of the service that has it (see
    /// [`rules::render_with_dns`]). An IPv6 server is not supported and leaves it out.
    pub fn with_local_dns(mut self, dns: Option<(std::net::Ipv4Addr, std::net::IpAddr)>) -> Proxy {
        self.local_dns = dns.and_then(|(cluster_ip, server)| match server {
            std::net::IpAddr::V4(server) => Some(LocalDns { cluster_ip, server }),
            std::net::IpAddr::V6(_) => None,
        });
        self
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Makes the table hold the rules for `ports`: all of them read back and rewritten
    /// when `full` (or nothing was applied yet), else only what changed since the last
    /// sync.
    pub async fn sync(&mut self, ports: &[ServicePort], full: bool) -> Result<SyncReport, String> {
        let desired = rules::render_with_dns(&self.names, ports, self.local_dns);
        let full = full || self.applied.is_none();
        let input = if full {
            let current = rules::parse_save(&self.names, &self.applier.save().await?);
            rules::restore_input(&self.names, &desired, None, Some(&current))
        } else {
            rules::restore_input(&self.names, &desired, self.applied.as_ref(), None)
        };
        let Some(input) = input else {
            return Ok(SyncReport::default());
        };
        let report = SyncReport {
            full,
            chains_written: input.lines().filter(|l| l.starts_with(':')).count(),
            bytes: input.len(),
        };
        if let Err(e) = self.applier.restore(&input).await {
            self.applied = None;
            return Err(e);
        }
        self.applied = Some(desired);
        Ok(report)
    }

    /// Reads the table back: whether what the last sync wrote is all there, unchanged in
    /// size, with nothing of ours besides. When it is not, the next sync is a full one.
    pub async fn check(&mut self) -> Result<bool, String> {
        let Some(applied) = &self.applied else {
            return Ok(false);
        };
        let current = rules::parse_save(&self.names, &self.applier.save().await?);
        let ok = rules::in_place(&self.names, applied, &current);
        if !ok {
            self.applied = None;
        }
        Ok(ok)
    }

    /// Follows Services and EndpointSlices and keeps the rules current until the task
    /// is dropped. Nothing is written before both are listed: a starting kubelet leaves
    /// the rules of the one before in place until it knows better.
    pub async fn run(mut self, client: Client, resync: Duration) {
        if let Err(e) = ensure_bridge_netfilter() {
            tracing::warn!(error = %e,
                "bridged traffic skips iptables: a pod reaching a service endpoint on its own bridge gets no answer");
        }
        let mut services_watch =
            watcher(Api::<Service>::all(client.clone()), ListParams::default()).boxed();
        let mut slices_watch =
            watcher(Api::<EndpointSlice>::all(client), ListParams::default()).boxed();
        let mut services: BTreeMap<(String, String), Service> = BTreeMap::new();
        let mut slices: BTreeMap<(String, String), EndpointSlice> = BTreeMap::new();
        let (mut services_listed, mut slices_listed) = (false, false);
        let mut due: Option<tokio::time::Instant> = None;
        let mut retry = Duration::from_millis(500);
        let mut tick = tokio::time::interval(resync);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut full = false;
            tokio::select! {
                event = services_watch.next() => match event {
                    Some(Ok(event)) => {
                        services_listed |= apply_event(&mut services, event);
                        due.get_or_insert_with(|| tokio::time::Instant::now() + DEBOUNCE);
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "watching services"),
                    None => return,
                },
                event = slices_watch.next() => match event {
                    Some(Ok(event)) => {
                        slices_listed |= apply_event(&mut slices, event);
                        due.get_or_insert_with(|| tokio::time::Instant::now() + DEBOUNCE);
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "watching endpoint slices"),
                    None => return,
                },
                _ = sleep_until(due) => {}
                _ = tick.tick() => {
                    if !(services_listed && slices_listed) {
                        continue;
                    }
                    let had = self.applied.is_some();
                    match self.check().await {
                        Ok(true) => continue,
                        Ok(false) => {
                            if had {
                                tracing::info!("the proxy's rules changed under it; rewriting them");
                            }
                            full = true;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "reading the proxy's rules");
                            continue;
                        }
                    }
                }
            }
            if !(services_listed && slices_listed) {
                // Written once both are listed (the event that completes it sets `due`).
                due = None;
                continue;
            }
            if !(full || due.is_some_and(|d| d <= tokio::time::Instant::now())) {
                continue;
            }
            due = None;
            if let Some(gateway) = self.bridge_ip
                && let Err(e) = set_hairpin_mode(gateway).await
            {
                tracing::warn!(error = %e, "turning on hairpin mode on the pods' bridge");
            }
            let ports = rules::service_ports(services.values(), slices.values());
            let started = Instant::now();
            match self.sync(&ports, full).await {
                Ok(report) => {
                    retry = Duration::from_millis(500);
                    if report.full {
                        tracing::info!(service_ports = ports.len(), chains = report.chains_written,
                            took = ?started.elapsed(), "wrote the proxy's rules");
                    } else if report.bytes > 0 {
                        tracing::debug!(chains = report.chains_written, took = ?started.elapsed(),
                            "updated the proxy's rules");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?retry, "writing the proxy's rules");
                    due = Some(tokio::time::Instant::now() + retry);
                    retry = (retry * 2).min(resync);
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

/// Applies a watch event to a map of objects by namespace and name; whether it was a
/// (re-)list.
fn apply_event<K: k8s_openapi::Metadata<Ty = ObjectMeta>>(
    objects: &mut BTreeMap<(String, String), K>,
    event: WatcherEvent<K>,
) -> bool {
    let key = |o: &K| {
        let m = o.metadata();
        (
            m.namespace.clone().unwrap_or_default(),
            m.name.clone().unwrap_or_default(),
        )
    };
    match event {
        WatcherEvent::Restarted(list) => {
            *objects = list.into_iter().map(|o| (key(&o), o)).collect();
            return true;
        }
        WatcherEvent::Applied(o) => {
            objects.insert(key(&o), o);
        }
        WatcherEvent::Deleted(o) => {
            objects.remove(&key(&o));
        }
    }
    false
}

/// Removes one node's proxy rules: its jumps from the built-in chains and its chains.
/// What a test cluster does when it ends; `minik8s reset` removes every kubelet's.
pub async fn remove_rules(applier: &dyn Applier, node: &str) -> Result<usize, String> {
    let names = Names::new(node);
    let current = rules::parse_save(&names, &applier.save().await?);
    match removal_input(&current) {
        Some(input) => applier.restore(&input).await.map(|()| current.chains.len()),
        None => Ok(0),
    }
}

/// The `iptables-restore --noflush` input that removes what `current` shows of a node's
/// rules; `None` when there is nothing.
pub fn removal_input(current: &rules::Current) -> Option<String> {
    if current.chains.is_empty() && current.jumps.is_empty() {
        return None;
    }
    let mut input = String::from("*nat\n");
    for chain in current.chains.keys() {
        input.push_str(&format!(":{chain} - [0:0]\n"));
    }
    for jump in &current.jumps {
        input.push_str(&format!("-D{}\n", &jump[2..]));
    }
    for chain in current.chains.keys() {
        input.push_str(&format!("-X {chain}\n"));
    }
    input.push_str("COMMIT\n");
    Some(input)
}

/// The nodes whose proxy rules are in an `iptables-save -t nat` listing, by the comment
/// on their jumps.
pub fn nodes_with_rules(save: &str) -> Vec<String> {
    let mut nodes: Vec<String> = save
        .lines()
        .filter_map(|l| {
            l.split_once("--comment \"minik8s proxy of node ")?
                .1
                .split_once('"')
        })
        .map(|(node, _)| node.to_string())
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// Lets a pod reach itself through its service: with bridged traffic passing iptables,
/// the DNAT back to the sending pod happens on the bridge, which must then send the frame
/// out of the port it came in on — only a port in hairpin mode does (Docker turns it on
/// only when its userland proxy is off; the real kubelet's `hairpin-veth` mode does the
/// same as this). Every port of the bridge whose address is `gateway`; a pod is an
/// endpoint only after its slice changed, which brings a sync, which comes here first.
pub async fn set_hairpin_mode(gateway: std::net::Ipv4Addr) -> Result<usize, String> {
    let out = tokio::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .await
        .map_err(|e| format!("running ip addr: {e}"))?;
    let listing = String::from_utf8_lossy(&out.stdout);
    let needle = format!("inet {gateway}/");
    let Some(bridge) = listing
        .lines()
        .find(|l| l.contains(&needle))
        .and_then(|l| l.split_whitespace().nth(1))
    else {
        return Ok(0);
    };
    let dir = std::path::Path::new("/sys/class/net")
        .join(bridge)
        .join("brif");
    let Ok(ports) = std::fs::read_dir(&dir) else {
        return Ok(0);
    };
    let mut changed = 0;
    for port in ports.flatten() {
        let file = port.path().join("hairpin_mode");
        if std::fs::read_to_string(&file).is_ok_and(|v| v.trim() == "0") {
            std::fs::write(&file, "1").map_err(|e| format!("writing {}: {e}", file.display()))?;
            changed += 1;
        }
    }
    Ok(changed)
}

const BRIDGE_NF: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// Makes bridged traffic pass iptables (`br_netfilter`, `bridge-nf-call-iptables = 1`),
/// as kube-proxy needs too: a pod that reaches a service endpoint on its own bridge gets
/// the reply straight over the bridge, and only then does conntrack see it and undo the
/// DNAT. Docker loads the module for its own bridges, usually.
pub fn ensure_bridge_netfilter() -> Result<(), String> {
    let path = std::path::Path::new(BRIDGE_NF);
    if !path.exists() {
        let out = std::process::Command::new("modprobe")
            .arg("br_netfilter")
            .output()
            .map_err(|e| format!("running modprobe br_netfilter: {e}"))?;
        if !path.exists() {
            return Err(format!(
                "modprobe br_netfilter: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        tracing::info!("loaded br_netfilter");
    }
    let value = std::fs::read_to_string(path).map_err(|e| format!("reading {BRIDGE_NF}: {e}"))?;
    if value.trim() != "1" {
        std::fs::write(path, "1").map_err(|e| format!("writing 1 to {BRIDGE_NF}: {e}"))?;
        tracing::info!("bridged traffic now passes iptables");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
