//! `minik8s reset`: removes what MiniK8s made on this machine, as `kubeadm reset` or k3s'
//! kill-all script do. A kubelet leaves its pods running when it stops, and its network,
//! routes and iptables rules with them (pods keep working while it restarts); this takes
//! all of it away:
//!
//! * every container labelled [`labels::NODE`], of any node — app and init containers
//!   stopped first (each with its pod's grace period, at most [`MAX_GRACE`]), then the
//!   pause containers — and removed;
//! * every MiniK8s network (labelled [`labels::NODE`] or named `minik8s-*`);
//! * every route of protocol [`network::ROUTE_PROTO`] (only kubelets add those);
//! * the `MINIK8S-*` chains of the filter and nat tables, and every jump to them: the
//!   host gateway's (`MINIK8S-FORWARD`, `MINIK8S-POSTROUTING`) and the node proxy's
//!   (`MINIK8S-SERVICES-*`, `MINIK8S-SVC-*`, `MINIK8S-SEP-*`, … of every node).
//!
//! It is machine-wide: the chains and routes are shared by every kubelet of the machine,
//! whatever its cluster. Run it when no kubelet runs (a running one puts its network,
//! rules and pods back). Running it again finds nothing to remove.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::labels;
use crate::leftovers::network_node;
use crate::network::{self, Host};
use crate::runtime::{ContainerRuntime, ContainerState, ContainerSummary, DockerRuntime};

/// The longest a container is given to stop before it is killed.
pub const MAX_GRACE: Duration = Duration::from_secs(10);

/// The prefix of the kubelet's iptables chains.
pub const CHAIN_PREFIX: &str = "MINIK8S-";

/// What a reset removed, and what it could not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Container names, with their node.
    pub containers: Vec<String>,
    /// Network names, with their subnets.
    pub networks: Vec<String>,
    /// Routes as `ip route` shows them.
    pub routes: Vec<String>,
    /// `table parent -> chain` of each jump removed.
    pub jumps: Vec<String>,
    /// `table chain` of each chain removed.
    pub chains: Vec<String>,
    pub data_dir: Option<PathBuf>,
    /// What failed; the rest was done anyway.
    pub failures: Vec<String>,
}

impl Report {
    /// Whether nothing was there to remove.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
            && self.networks.is_empty()
            && self.routes.is_empty()
            && self.jumps.is_empty()
            && self.chains.is_empty()
            && self.data_dir.is_none()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.containers {
            writeln!(f, "removed container {c}")?;
        }
        for n in &self.networks {
            writeln!(f, "removed network {n}")?;
        }
        for r in &self.routes {
            writeln!(f, "removed route {r}")?;
        }
        for j in &self.jumps {
            writeln!(f, "removed iptables jump {j}")?;
        }
        for c in &self.chains {
            writeln!(f, "removed iptables chain {c}")?;
        }
        if let Some(dir) = &self.data_dir {
            writeln!(f, "removed data directory {}", dir.display())?;
        }
        if self.is_empty() && self.failures.is_empty() {
            writeln!(
                f,
                "nothing to remove: no MiniK8s container, network, route or iptables chain is left"
            )?;
        }
        for e in &self.failures {
            writeln!(f, "failed: {e}")?;
        }
        Ok(())
    }
}

/// Removes everything MiniK8s made on this machine: in the Docker daemon on
/// `docker_socket` (the default one when `None`), in the host's network namespace, and,
/// if given, the data directory.
pub async fn reset(docker_socket: Option<&str>, data_dir: Option<&Path>) -> Report {
    let mut report = Report::default();
    match DockerRuntime::connect(docker_socket).await {
        Ok(runtime) => reset_docker(&runtime, &mut report).await,
        Err(e) => report.failures.push(format!("Docker: {e}")),
    }
    reset_host(&network::CommandHost, &mut report).await;
    if let Some(dir) = data_dir {
        remove_data_dir(dir, &mut report);
    }
    report
}

/// Removes every MiniK8s container and network of the Docker behind `runtime`.
pub async fn reset_docker(runtime: &dyn ContainerRuntime, report: &mut Report) {
    match runtime.list_with_label(labels::NODE).await {
        Ok(containers) => remove_containers(runtime, containers, report).await,
        Err(e) => report.failures.push(format!("listing containers: {e}")),
    }
    let networks = match runtime.list_networks().await {
        Ok(networks) => networks,
        Err(e) => {
            report.failures.push(format!("listing networks: {e}"));
            return;
        }
    };
    for n in networks {
        let Some(node) = network_node(&n) else {
            continue;
        };
        match runtime.remove_network(&n.name).await {
            Ok(()) => {
                let subnets: Vec<String> = n.subnets.iter().map(ToString::to_string).collect();
                report
                    .networks
                    .push(format!("{} ({}, node {node})", n.name, subnets.join(", ")));
            }
            Err(e) => report.failures.push(e.to_string()),
        }
    }
}

async fn remove_containers(
    runtime: &dyn ContainerRuntime,
    containers: Vec<ContainerSummary>,
    report: &mut Report,
) {
    // App and init containers first, then the pause containers whose namespaces they
    // share, as the kubelet stops a pod.
    let (sandboxes, others): (Vec<_>, Vec<_>) = containers.into_iter().partition(|c| {
        c.labels.get(labels::CONTAINER_TYPE).map(String::as_str) == Some(labels::TYPE_SANDBOX)
    });
    for group in [others, sandboxes] {
        let results = futures::future::join_all(group.iter().map(|c| async move {
            if c.state == ContainerState::Running {
                let grace = c
                    .labels
                    .get(labels::POD_GRACE_PERIOD)
                    .and_then(|g| g.parse().ok())
                    .map_or(MAX_GRACE, Duration::from_secs)
                    .min(MAX_GRACE);
                // A failed stop is no reason not to remove (which kills).
                let _ = runtime.stop_container(&c.id, grace).await;
            }
            runtime.remove_container(&c.id).await
        }))
        .await;
        for (c, result) in group.iter().zip(results) {
            match result {
                Ok(()) => {
                    let node = c.labels.get(labels::NODE).map_or("", String::as_str);
                    report.containers.push(format!("{} (node {node})", c.name));
                }
                Err(e) => report
                    .failures
                    .push(format!("removing container {}: {e}", c.name)),
            }
        }
    }
}

/// Removes the kubelets' routes and iptables chains from the host's network namespace.
pub async fn reset_host(host: &dyn Host, report: &mut Report) {
    remove_routes(host, report).await;
    for table in ["filter", "nat"] {
        remove_chains(host, table, report).await;
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

async fn remove_routes(host: &dyn Host, report: &mut Report) {
    let listing = match host
        .run(
            "ip",
            &strings(&["-4", "-o", "route", "show", "proto", network::ROUTE_PROTO]),
        )
        .await
    {
        Ok(listing) => listing,
        Err(e) => {
            report.failures.push(format!("listing routes: {e}"));
            return;
        }
    };
    for line in listing.lines().filter(|l| !l.trim().is_empty()) {
        let Some(dst) = line.split_whitespace().next() else {
            continue;
        };
        match host
            .run(
                "ip",
                &strings(&["route", "del", dst, "proto", network::ROUTE_PROTO]),
            )
            .await
        {
            Ok(_) => {
                report
                    .routes
                    .push(format!("{} (proto {})", line.trim(), network::ROUTE_PROTO))
            }
            Err(e) => report.failures.push(e),
        }
    }
}

/// What `iptables -S` of one table says of the kubelet's chains: the chains, and the
/// rules elsewhere that jump to them (their `-A` lines).
pub fn our_chains(listing: &str) -> (Vec<String>, Vec<String>) {
    let chains = listing
        .lines()
        .filter_map(|l| l.strip_prefix("-N "))
        .filter(|c| c.starts_with(CHAIN_PREFIX))
        .map(str::to_string)
        .collect();
    let jumps = listing
        .lines()
        .filter(|l| {
            let mut words = l.split_whitespace();
            words.next() == Some("-A")
                && !words.next().is_some_and(|c| c.starts_with(CHAIN_PREFIX))
                && l.split_whitespace()
                    .skip_while(|w| *w != "-j" && *w != "-g")
                    .nth(1)
                    .is_some_and(|target| target.starts_with(CHAIN_PREFIX))
        })
        .map(str::to_string)
        .collect();
    (chains, jumps)
}

async fn remove_chains(host: &dyn Host, table: &str, report: &mut Report) {
    let iptables = |args: Vec<String>| async move {
        let mut all = strings(&["-w", "5", "-t", table]);
        all.extend(args);
        host.run("iptables", &all).await
    };
    let listing = match iptables(strings(&["-S"])).await {
        Ok(listing) => listing,
        Err(e) => {
            report
                .failures
                .push(format!("listing the iptables {table} table: {e}"));
            return;
        }
    };
    let (chains, jumps) = our_chains(&listing);
    for jump in jumps {
        // "-A FORWARD -j MINIK8S-FORWARD" is deleted by "-D FORWARD -j MINIK8S-FORWARD";
        // a quoted comment (the proxy's jumps have one) is one argument.
        let words = rule_words(&jump);
        let mut args = vec!["-D".to_string()];
        args.extend(words.iter().skip(1).cloned());
        match iptables(args).await {
            Ok(_) => report.jumps.push(format!(
                "{table} {} -> {}",
                words.get(1).map_or("", String::as_str),
                words.last().map_or("", String::as_str)
            )),
            Err(e) => report.failures.push(e),
        }
    }
    // All flushed before any is deleted: a chain may jump to another.
    for chain in &chains {
        if let Err(e) = iptables(strings(&["-F", chain])).await {
            report.failures.push(e);
        }
    }
    for chain in chains {
        match iptables(strings(&["-X", &chain])).await {
            Ok(_) => report.chains.push(format!("{table} {chain}")),
            Err(e) => report.failures.push(e),
        }
    }
}

/// The arguments of a rule as `iptables -S` prints it: words, with a double-quoted
/// string (`--comment "a b"`) one word without its quotes.
pub fn rule_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut escaped, mut any) = (false, false, false);
    for ch in line.chars() {
        if escaped {
            word.push(ch);
            escaped = false;
        } else if ch == '\\' {
            escaped = true;
        } else if ch == '"' {
            quoted = !quoted;
            any = true;
        } else if ch.is_whitespace() && !quoted {
            if any || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            any = false;
        } else {
            word.push(ch);
            any = true;
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    words
}

/// Removes the data directory of `minik8s up` (its store, the kubelet's pod directories
/// and its kubeconfig copy), if it exists.
pub fn remove_data_dir(dir: &Path, report: &mut Report) {
    // Secret volumes are tmpfs mounts inside it; a mount point cannot be removed.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for point in mounts_under(&mounts, dir) {
        match std::process::Command::new("umount")
            .arg("-l")
            .arg(&point)
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => report.failures.push(format!(
                "unmounting {}: {}",
                point.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => report
                .failures
                .push(format!("unmounting {}: {e}", point.display())),
        }
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => report.data_dir = Some(dir.to_path_buf()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => report
            .failures
            .push(format!("removing {}: {e}", dir.display())),
    }
}

/// The mount points of a `/proc/self/mounts` text that lie inside `dir`, deepest first.
/// The file escapes spaces, tabs, newlines and backslashes in octal (`\040`).
fn mounts_under(mounts: &str, dir: &Path) -> Vec<std::path::PathBuf> {
    let mut points: Vec<std::path::PathBuf> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .map(|p| std::path::PathBuf::from(unescape_octal(p)))
        .filter(|p| p.starts_with(dir) && p != dir)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
