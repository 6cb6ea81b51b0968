//! Pod traffic between nodes, the host-gateway way of Flannel, without an overlay: every
//! node's pod CIDR is a plain Docker bridge, and each kubelet
//!
//! * routes the pod CIDR of every other node to that node's `InternalIP`
//!   (`ip route replace <podCIDR> via <nodeIP> proto 77`), and removes the routes of nodes
//!   that are gone or moved — its own routes are told apart by their protocol number;
//! * accepts forwarded traffic from and to the cluster CIDR, in the chain
//!   `MINIK8S-FORWARD` of the filter table, jumped to first from `DOCKER-USER` (which
//!   Docker keeps first in `FORWARD`, ahead of its isolation rules) or from `FORWARD`
//!   where Docker manages no iptables. Docker's `FORWARD` policy is `DROP`, and it accepts
//!   only its own bridges' traffic;
//! * exempts traffic from pods to pods from NAT, in `MINIK8S-POSTROUTING` of the nat table,
//!   jumped to first from `POSTROUTING`: Docker masquerades whatever leaves a bridge for
//!   another interface, which would hide the sending pod's address.
//!
//! Everything is checked again every resync interval and put back if it is missing or
//! not first (a Docker restart, or a new Docker network, puts Docker's rules first), so
//! this is safe to run any number of times, and by several kubelets of one machine. The
//! rules and routes stay when the kubelet stops: pods keep talking across nodes while it
//! restarts. [`cluster_rules`] lists a cluster's rules, for removing them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
pub use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use minik8s_client::{Api, Client, ListParams, WatcherEvent, watcher};

/// The routes this kubelet made carry this protocol number (`ip route … proto 77`).
pub const ROUTE_PROTO: &str = "77";
/// The filter chain that accepts the cluster's forwarded traffic.
pub const FORWARD_CHAIN: &str = "MINIK8S-FORWARD";
/// The nat chain that keeps pod-to-pod traffic from being masqueraded.
pub const POSTROUTING_CHAIN: &str = "MINIK8S-POSTROUTING";

/// One iptables rule: its table, its chain and the rest of the arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub table: &'static str,
    pub chain: &'static str,
    pub args: Vec<String>,
}

impl Rule {
    fn new(table: &'static str, chain: &'static str, args: &[&str]) -> Rule {
        Rule {
            table,
            chain,
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// The rule as `iptables -S` prints it.
    pub fn line(&self) -> String {
        format!("-A {} {}", self.chain, self.args.join(" "))
    }
}

/// The rules of a cluster in the kubelet's own chains.
pub fn cluster_rules(cluster: Ipv4Net) -> Vec<Rule> {
    let c = cluster.to_string();
    vec![
        Rule::new("filter", FORWARD_CHAIN, &["-s", &c, "-j", "ACCEPT"]),
        Rule::new("filter", FORWARD_CHAIN, &["-d", &c, "-j", "ACCEPT"]),
        // ACCEPT, not RETURN: a RETURN would go back to POSTROUTING and on to Docker's
        // MASQUERADE; ACCEPT ends the nat table's rules for the connection. Except for
        // what the proxy marked for SNAT (a pod reaching itself through its service),
        // which goes on to the proxy's MASQUERADE.
        Rule::new(
            "nat",
            POSTROUTING_CHAIN,
            &[
                "-s",
                &c,
                "-d",
                &c,
                "-m",
                "mark",
                "!",
                "--mark",
                &format!("{0}/{0}", crate::proxy::rules::MASQ_MARK),
                "-j",
                "ACCEPT",
            ],
        ),
    ]
}

/// Rules earlier kubelets added for a cluster, which [`cluster_rules`] replaced: removed
/// when found.
pub fn superseded_rules(cluster: Ipv4Net) -> Vec<Rule> {
    let c = cluster.to_string();
    vec![Rule::new(
        "nat",
        POSTROUTING_CHAIN,
        &["-s", &c, "-d", &c, "-j", "ACCEPT"],
    )]
}

/// The cluster CIDR when none is configured: the `/16` that holds the node's pod CIDR,
/// which is how the API server cuts its default `10.244.0.0/16` into `/24`s.
pub fn default_cluster_cidr(pod_cidr: Ipv4Net) -> Ipv4Net {
    if pod_cidr.prefix_len() <= 16 {
        return pod_cidr;
    }
    Ipv4Net::new(pod_cidr.network(), 16)
        .map(|n| n.trunc())
        .unwrap_or(pod_cidr)
}

/// Runs commands on the host; a fake records them in tests.
#[async_trait::async_trait]
pub trait Host: Send + Sync + 'static {
    /// Runs `program args…`; its stdout, or its stderr as the error.
    async fn run(&self, program: &str, args: &[String]) -> Result<String, String>;
}

/// [`Host`] through `ip` and `iptables` processes.
pub struct CommandHost;

#[async_trait::async_trait]
impl Host for CommandHost {
    async fn run(&self, program: &str, args: &[String]) -> Result<String, String> {
        let out = tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| format!("running {program}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{program} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

/// A route in the cluster CIDR as `ip -o route` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Net,
    pub via: Option<Ipv4Addr>,
    pub proto: Option<String>,
}

impl Route {
    fn ours(&self) -> bool {
        self.proto.as_deref() == Some(ROUTE_PROTO)
    }
}

/// Parses `ip -4 -o route show` lines: `10.244.2.0/24 via 192.168.1.3 dev eth0 proto 77`.
pub fn parse_routes(output: &str) -> Vec<Route> {
    output
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let dst = words.next()?.parse::<Ipv4Net>().ok()?;
            let mut route = Route {
                dst,
                via: None,
                proto: None,
            };
            while let Some(word) = words.next() {
                match word {
                    "via" => route.via = words.next().and_then(|v| v.parse().ok()),
                    "proto" => route.proto = words.next().map(str::to_string),
                    _ => {}
                }
            }
            Some(route)
        })
        .collect()
}

/// What the other nodes' pod CIDRs should be routed to: each other node's pod CIDR in the
/// cluster, via its `InternalIP`, unless that is this node's own address (nodes that share
/// a machine reach each other's bridges directly).
pub fn desired_routes(
    own_name: &str,
    own_ip: Option<IpAddr>,
    own_cidr: Ipv4Net,
    cluster: Ipv4Net,
    nodes: &BTreeMap<String, Node>,
) -> BTreeMap<Ipv4Net, Ipv4Addr> {
    let mut routes = BTreeMap::new();
    for (name, node) in nodes {
        if name == own_name {
            continue;
        }
        let Some(cidr) = node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .and_then(|c| c.parse::<Ipv4Net>().ok())
            .map(|c| c.trunc())
        else {
            continue;
        };
        let Some(ip) = internal_ip(node) else {
            continue;
        };
        if cidr == own_cidr || !cluster.contains(&cidr) || Some(IpAddr::V4(ip)) == own_ip {
            continue;
        }
        routes.insert(cidr, ip);
    }
    routes
}

fn internal_ip(node: &Node) -> Option<Ipv4Addr> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse().ok())
}

/// The route changes that turn `current` (the routes in the cluster CIDR) into `desired`:
/// routes to replace, and routes of ours to delete. A destination that has a route that
/// is not ours (a bridge of this machine) is left alone.
pub fn route_changes(
    desired: &BTreeMap<Ipv4Net, Ipv4Addr>,
    current: &[Route],
) -> (Vec<(Ipv4Net, Ipv4Addr)>, Vec<Route>) {
    let foreign: BTreeSet<Ipv4Net> = current
        .iter()
        .filter(|r| !r.ours())
        .map(|r| r.dst)
        .collect();
    let replace = desired
        .iter()
        .filter(|(dst, via)| {
            !foreign.contains(dst)
                && !current
                    .iter()
                    .any(|r| r.ours() && r.dst == **dst && r.via == Some(**via))
        })
        .map(|(dst, via)| (*dst, *via))
        .collect();
    let delete = current
        .iter()
        .filter(|r| r.ours() && !desired.contains_key(&r.dst))
        .cloned()
        .collect();
    (replace, delete)
}

/// The routes and rules of one node.
pub struct HostGateway {
    host: Arc<dyn Host>,
    node_name: String,
    node_ip: Option<IpAddr>,
    pod_cidr: Ipv4Net,
    cluster: Ipv4Net,
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

impl HostGateway {
    pub fn new(
        host: Arc<dyn Host>,
        node_name: &str,
        node_ip: Option<IpAddr>,
        pod_cidr: Ipv4Net,
        cluster: Ipv4Net,
    ) -> HostGateway {
        HostGateway {
            host,
            node_name: node_name.to_string(),
            node_ip,
            pod_cidr,
            cluster,
        }
    }

    async fn iptables(&self, table: &str, args: &[&str]) -> Result<String, String> {
        let mut all = strings(&["-w", "5", "-t", table]);
        all.extend(strings(args));
        self.host.run("iptables", &all).await
    }

    /// Makes the chains, the cluster's rules and the jumps to the chains (each the first
    /// rule of its parent, and only once) exist.
    pub async fn ensure_rules(&self) -> Result<(), String> {
        let filter = self.iptables("filter", &["-S"]).await?;
        let parent = if filter.lines().any(|l| l == "-N DOCKER-USER") {
            "DOCKER-USER"
        } else {
            "FORWARD"
        };
        self.ensure_table("filter", &filter, FORWARD_CHAIN, parent)
            .await?;
        let nat = self.iptables("nat", &["-S"]).await?;
        self.ensure_table("nat", &nat, POSTROUTING_CHAIN, "POSTROUTING")
            .await
    }

    async fn ensure_table(
        &self,
        table: &'static str,
        listing: &str,
        chain: &str,
        parent: &str,
    ) -> Result<(), String> {
        let lines: Vec<&str> = listing.lines().collect();
        if !lines.contains(&format!("-N {chain}").as_str())
            && let Err(e) = self.iptables(table, &["-N", chain]).await
            && !e.contains("exists")
        {
            return Err(e);
        }
        for rule in cluster_rules(self.cluster)
            .into_iter()
            .filter(|r| r.table == table)
        {
            if !lines.contains(&rule.line().as_str()) {
                let mut args = vec!["-A", rule.chain];
                args.extend(rule.args.iter().map(String::as_str));
                self.iptables(table, &args).await?;
                tracing::info!(table, rule = %rule.line(), "added an iptables rule");
            }
        }
        for rule in superseded_rules(self.cluster)
            .into_iter()
            .filter(|r| r.table == table && lines.contains(&r.line().as_str()))
        {
            let mut args = vec!["-D", rule.chain];
            args.extend(rule.args.iter().map(String::as_str));
            self.iptables(table, &args).await?;
            tracing::info!(table, rule = %rule.line(), "removed a superseded iptables rule");
        }
        let jump = format!("-A {parent} -j {chain}");
        let parent_rules: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with(&format!("-A {parent} ")))
            .collect();
        let jumps = parent_rules.iter().filter(|l| **l == jump).count();
        if parent_rules.first() != Some(&jump.as_str()) || jumps != 1 {
            for _ in 0..jumps {
                self.iptables(table, &["-D", parent, "-j", chain]).await?;
            }
            self.iptables(table, &["-I", parent, "1", "-j", chain])
                .await?;
            tracing::info!(table, parent, chain, "jumping to the kubelet's chain first");
        }
        Ok(())
    }

    /// Makes the routes to the other nodes' pod CIDRs what `nodes` says.
    pub async fn sync_routes(&self, nodes: &BTreeMap<String, Node>) -> Result<(), String> {
        let desired = desired_routes(
            &self.node_name,
            self.node_ip,
            self.pod_cidr,
            self.cluster,
            nodes,
        );
        let cluster = self.cluster.to_string();
        let listing = self
            .host
            .run(
                "ip",
                &strings(&["-4", "-o", "route", "show", "root", &cluster]),
            )
            .await?;
        let (replace, delete) = route_changes(&desired, &parse_routes(&listing));
        for (dst, via) in replace {
            let (dst, via) = (dst.to_string(), via.to_string());
            self.host
                .run(
                    "ip",
                    &strings(&["route", "replace", &dst, "via", &via, "proto", ROUTE_PROTO]),
                )
                .await?;
            tracing::info!(%dst, %via, "routing another node's pods");
        }
        for route in delete {
            let dst = route.dst.to_string();
            self.host
                .run(
                    "ip",
                    &strings(&["route", "del", &dst, "proto", ROUTE_PROTO]),
                )
                .await?;
            tracing::info!(%dst, "removed the route of a node that is gone");
        }
        Ok(())
    }

    /// Follows the nodes and keeps routes and rules in place until the task is dropped.
    pub async fn run(self, client: Client, resync: Duration) {
        let mut nodes_watch = watcher(Api::<Node>::all(client), ListParams::default()).boxed();
        let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
        let mut listed = false;
        let mut applied: Option<BTreeMap<Ipv4Net, Ipv4Addr>> = None;
        let mut tick = tokio::time::interval(resync);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failures = 0u32;
        loop {
            let mut check = false;
            tokio::select! {
                event = nodes_watch.next() => match event {
                    Some(Ok(WatcherEvent::Restarted(list))) => {
                        nodes = list
                            .into_iter()
                            .filter_map(|n| Some((n.metadata.name.clone()?, n)))
                            .collect();
                        listed = true;
                    }
                    Some(Ok(WatcherEvent::Applied(node))) => {
                        if let Some(name) = node.metadata.name.clone() {
                            nodes.insert(name, node);
                        }
                    }
                    Some(Ok(WatcherEvent::Deleted(node))) => {
                        if let Some(name) = &node.metadata.name {
                            nodes.remove(name);
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "watching the nodes");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    None => return,
                },
                _ = tick.tick() => {
                    check = true;
                    if let Err(e) = self.ensure_rules().await {
                        warn_now_and_then(&mut failures, "setting up the iptables rules", &e);
                    }
                }
            }
            if !listed {
                continue;
            }
            // Heartbeats change nodes all the time: act only when the routes would change,
            // and on every tick to repair what someone else changed.
            let desired = desired_routes(
                &self.node_name,
                self.node_ip,
                self.pod_cidr,
                self.cluster,
                &nodes,
            );
            if check || applied.as_ref() != Some(&desired) {
                match self.sync_routes(&nodes).await {
                    Ok(()) => applied = Some(desired),
                    Err(e) => {
                        applied = None;
                        warn_now_and_then(&mut failures, "routing the other nodes' pods", &e);
                    }
                }
            }
        }
    }
}

/// Logs the first failure, then the 2nd, 4th, 8th…: a host without `ip` or `iptables`
/// runs pods anyway, and its log is not flooded.
fn warn_now_and_then(failures: &mut u32, what: &str, error: &str) {
    *failures = failures.saturating_add(1);
    if failures.is_power_of_two() {
        tracing::warn!(%error, failures = *failures, "{what}");
    }
}

#[cfg(test)]
mod tests;
