//! The proxy's rules as plain data: what Services and EndpointSlices ask for
//! ([`service_ports`]), the nat-table chains that make it so ([`render`]), and the
//! `iptables-restore --noflush` input that turns what is into what should be
//! ([`restore_input`]). Nothing here runs a command.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The packet mark that asks for SNAT on the way out (kube-proxy's bit).
pub const MASQ_MARK: &str = "0x4000";
/// Session affinity's default timeout, Kubernetes' three hours.
pub const DEFAULT_AFFINITY_SECONDS: i32 = 10800;
/// The built-in chains that jump to a kubelet's chains: traffic from pods and from
/// outside (PREROUTING), from the host itself (OUTPUT), and on its way out (POSTROUTING).
pub const BUILT_IN: [&str; 3] = ["PREROUTING", "OUTPUT", "POSTROUTING"];

/// One endpoint of a service port: where its traffic goes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// The node it runs on, for the `Local` traffic policies.
    pub node: Option<String>,
}

/// One port of one Service, with the endpoints that take its traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub service: String,
    /// The port's name; empty for an unnamed port.
    pub port_name: String,
    /// `tcp` or `udp`, as iptables spells them.
    pub protocol: &'static str,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub node_port: Option<u16>,
    /// `sessionAffinity: ClientIP`'s timeout.
    pub affinity_seconds: Option<i32>,
    /// `internalTrafficPolicy: Local`: cluster-IP traffic goes to this node's endpoints only.
    pub internal_local: bool,
    /// `externalTrafficPolicy: Local`: node-port traffic goes to this node's endpoints only,
    /// and keeps its source address.
    pub external_local: bool,
    /// Ready endpoints, sorted, without duplicates.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// `namespace/service:port`, as kube-proxy names a service port.
    pub fn id(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.service)
        } else {
            format!("{}/{}:{}", self.namespace, self.service, self.port_name)
        }
    }
}

/// The service ports the proxy serves: every port of every Service with a cluster IP
/// (headless and ExternalName services have none), each with the ready endpoints of its
/// slices. Not-ready and terminating endpoints take no new traffic.
pub fn service_ports<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Vec<ServicePort> {
    // (namespace, service) → the slices' endpoints by port name.
    let mut by_service: BTreeMap<(String, String), BTreeMap<String, BTreeSet<Endpoint>>> =
        BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let (Some(ns), Some(service)) = (
            slice.metadata.namespace.clone(),
            slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .cloned(),
        ) else {
            continue;
        };
        let ports = by_service.entry((ns, service)).or_default();
        for port in slice.ports.iter().flatten() {
            let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()) else {
                continue;
            };
            let name = port.name.clone().unwrap_or_default();
            let set = ports.entry(name).or_default();
            for ep in &slice.endpoints {
                let conditions = ep.conditions.as_ref();
                // Kubernetes: an unknown readiness counts as ready.
                let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
                let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
                if !ready || terminating {
                    continue;
                }
                for address in &ep.addresses {
                    if let Ok(ip) = address.parse() {
                        set.insert(Endpoint {
                            ip,
                            port: number,
                            node: ep.node_name.clone(),
                        });
                    }
                }
            }
        }
    }

    let mut out = Vec::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let Some(cluster_ip) = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue; // headless ("None"), not yet allocated, or IPv6
        };
        let (Some(namespace), Some(service)) =
            (svc.metadata.namespace.clone(), svc.metadata.name.clone())
        else {
            continue;
        };
        let node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
        let affinity_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(DEFAULT_AFFINITY_SECONDS)
        });
        let eps = by_service.get(&(namespace.clone(), service.clone()));
        for port in spec.ports.iter().flatten() {
            let protocol = match port.protocol.as_deref().unwrap_or("TCP") {
                "TCP" => "tcp",
                "UDP" => "udp",
                _ => continue,
            };
            let Ok(number) = u16::try_from(port.port) else {
                continue;
            };
            let port_name = port.name.clone().unwrap_or_default();
            let endpoints = eps
                .and_then(|e| e.get(&port_name))
                .map(|set| set.iter().cloned().collect())
                .unwrap_or_default();
            out.push(ServicePort {
                namespace: namespace.clone(),
                service: service.clone(),
                port_name,
                protocol,
                cluster_ip,
                port: number,
                node_port: port
                    .node_port
                    .filter(|_| node_ports)
                    .and_then(|p| u16::try_from(p).ok()),
                affinity_seconds,
                internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
                endpoints,
            });
        }
    }
    out
}

/// FNV-1a, 64 bits: stable across builds and Rust versions, unlike `DefaultHasher`, so a
/// new kubelet finds the chains of the old one under the same names.
fn fnv1a(data: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in data.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The first `len` base32 characters (`A-Z2-7`, as kube-proxy's chain names) of a hash.
fn base32(data: &str, len: usize) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let hash = fnv1a(data);
    (0..len.min(12))
        .map(|i| ALPHABET[((hash >> (59 - 5 * i)) & 31) as usize] as char)
        .collect()
}

/// The names of one kubelet's chains. Every name carries a tag made from the node's
/// name, so kubelets of several nodes on one machine (several test clusters, say) never
/// touch each other's chains; iptables allows 28 characters, which the longest name,
/// `MINIK8S-SVC-` + 5 + `-` + 10, fills exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    pub node: String,
    pub tag: String,
}

impl Names {
    pub fn new(node: &str) -> Names {
        Names {
            node: node.to_string(),
            tag: base32(node, 5),
        }
    }

    /// Cluster IPs first, then node ports: jumped to from PREROUTING and OUTPUT.
    pub fn services(&self) -> String {
        format!("MINIK8S-SERVICES-{}", self.tag)
    }
    pub fn node_ports(&self) -> String {
        format!("MINIK8S-NODEPORTS-{}", self.tag)
    }
    /// Marks a connection for SNAT.
    pub fn mark_masq(&self) -> String {
        format!("MINIK8S-MARK-MASQ-{}", self.tag)
    }
    /// SNATs marked connections: jumped to from POSTROUTING.
    pub fn masquerade(&self) -> String {
        format!("MINIK8S-MASQUERADE-{}", self.tag)
    }
    /// A service port's load balancing over its endpoints.
    pub fn svc(&self, sp: &ServicePort) -> String {
        self.hashed("SVC", &format!("{}/{}", sp.id(), sp.protocol))
    }
    /// The same over this node's endpoints only (`externalTrafficPolicy: Local`).
    pub fn svl(&self, sp: &ServicePort) -> String {
        self.hashed("SVL", &format!("{}/{}", sp.id(), sp.protocol))
    }
    /// Node-port traffic over all endpoints when cluster-IP traffic is `Local`.
    pub fn ext(&self, sp: &ServicePort) -> String {
        self.hashed("EXT", &format!("{}/{}", sp.id(), sp.protocol))
    }
    /// One endpoint of a service port.
    pub fn sep(&self, sp: &ServicePort, ep: &Endpoint) -> String {
        self.hashed(
            "SEP",
            &format!("{}/{}/{}:{}", sp.id(), sp.protocol, ep.ip, ep.port),
        )
    }

    fn hashed(&self, kind: &str, what: &str) -> String {
        format!(
            "MINIK8S-{kind}-{}-{}",
            self.tag,
            base32(&format!("{}/{what}", self.node), 10)
        )
    }

    /// Whether `chain` is one of this kubelet's.
    pub fn owns(&self, chain: &str) -> bool {
        let Some(rest) = chain.strip_prefix("MINIK8S-") else {
            return false;
        };
        let Some((kind, tail)) = rest.split_once('-') else {
            return false;
        };
        match kind {
            "SERVICES" | "NODEPORTS" | "MASQUERADE" => tail == self.tag,
            "MARK" => tail.strip_prefix("MASQ-") == Some(self.tag.as_str()),
            "SVC" | "SVL" | "EXT" | "SEP" => tail
                .split_once('-')
                .is_some_and(|(tag, hash)| tag == self.tag && hash.len() == 10),
            _ => false,
        }
    }

    /// The rules (without `-A PARENT`) by which each built-in chain enters ours.
    pub fn jumps(&self) -> [(&'static str, String); 3] {
        let comment = format!(
            "-m comment --comment \"minik8s proxy of node {}\"",
            self.node
        );
        [
            ("PREROUTING", format!("{comment} -j {}", self.services())),
            ("OUTPUT", format!("{comment} -j {}", self.services())),
            ("POSTROUTING", format!("{comment} -j {}", self.masquerade())),
        ]
    }
}

/// Chains and their rules (each rule without its `-A CHAIN`), in order.
pub type Chains = BTreeMap<String, Vec<String>>;

/// The nat-table chains for `ports` on node `names.node`, kube-proxy's iptables mode in
/// our names:
///
/// * `SERVICES`: `-d clusterIP -p proto --dport port` → the port's `SVC` chain; last,
///   local destinations → `NODEPORTS`;
/// * `NODEPORTS`: `--dport nodePort` → mark for SNAT, then `SVC` (or, for
///   `externalTrafficPolicy: Local`, no SNAT and `SVL`, this node's endpoints);
/// * `SVC`/`SVL`: with `sessionAffinity: ClientIP`, a client seen recently goes back to
///   its endpoint (`-m recent --rcheck`); then endpoint i of n is taken with probability
///   1/(n−i) (`-m statistic --mode random`), so each gets 1/n;
/// * `SEP`: an endpoint reaching itself through the service (hairpin) is marked for SNAT,
///   else its reply would go straight back to itself; then DNAT to the endpoint;
/// * `MASQUERADE`: connections marked [`MASQ_MARK`] are masqueraded on the way out — the
///   only ones whose return path needs it: node ports from outside and hairpins. Pods and
///   the host reach endpoints with their own addresses.
///
/// A port without endpoints gets no rules: its traffic is not redirected.
pub fn render(names: &Names, ports: &[ServicePort]) -> Chains {
    render_with_dns(names, ports, None)
}

/// The cluster DNS address and this node's DNS server: the one service address whose
/// port 53 (UDP and TCP) goes to the node itself rather than to endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalDns {
    pub cluster_ip: Ipv4Addr,
    pub server: Ipv4Addr,
}

/// The port DNS is served on.
pub const DNS_PORT: u16 = 53;

/// [`render`], with the cluster DNS address's port 53 sent to this node's DNS server
/// (`DNAT` to its address, first in `SERVICES`): pods of the node and the host itself ask
/// their own node, as with NodeLocal DNSCache; the `kube-dns` service's endpoints, if
/// any, are not used for that port.
pub fn render_with_dns(names: &Names, ports: &[ServicePort], dns: Option<LocalDns>) -> Chains {
    let mut chains = Chains::new();
    let mark = names.mark_masq();
    let mut services = Vec::new();
    let mut node_ports = Vec::new();
    if let Some(dns) = dns {
        for proto in ["udp", "tcp"] {
            services.push(format!(
                "-d {}/32 -p {proto} -m comment --comment \"cluster DNS to this node's server\" -m {proto} --dport {DNS_PORT} -j DNAT --to-destination {}:{DNS_PORT}",
                dns.cluster_ip, dns.server
            ));
        }
    }
    for sp in ports {
        if dns.is_some_and(|d| d.cluster_ip == sp.cluster_ip && sp.port == DNS_PORT)
            && sp.node_port.is_none()
        {
            continue;
        }
        let id = sp.id();
        let proto = sp.protocol;
        let local = |ep: &Endpoint| ep.node.as_deref() == Some(names.node.as_str());
        let internal: Vec<&Endpoint> = sp
            .endpoints
            .iter()
            .filter(|ep| !sp.internal_local || local(ep))
            .collect();
        let svc = names.svc(sp);
        // The endpoints some chain balances over: each gets a SEP chain.
        let mut used: BTreeSet<&Endpoint> = BTreeSet::new();
        if !internal.is_empty() {
            services.push(format!(
                "-d {}/32 -p {proto} -m comment --comment \"{id} cluster IP\" -m {proto} --dport {} -j {svc}",
                sp.cluster_ip, sp.port
            ));
            chains.insert(svc.clone(), balance(names, sp, &internal));
            used.extend(&internal);
        }
        if let Some(np) = sp.node_port {
            let comment = format!("-m comment --comment \"{id} node port\"");
            let dport = format!("-p {proto} {comment} -m {proto} --dport {np}");
            if sp.external_local {
                let locals: Vec<&Endpoint> = sp.endpoints.iter().filter(|e| local(e)).collect();
                if !locals.is_empty() {
                    let svl = names.svl(sp);
                    node_ports.push(format!("{dport} -j {svl}"));
                    chains.insert(svl, balance(names, sp, &locals));
                    used.extend(&locals);
                }
            } else if !sp.endpoints.is_empty() {
                let all: Vec<&Endpoint> = sp.endpoints.iter().collect();
                // The cluster-IP chain balances over all endpoints unless
                // `internalTrafficPolicy: Local` narrowed it: then a chain of its own.
                let target = if sp.internal_local {
                    let ext = names.ext(sp);
                    chains.insert(ext.clone(), balance(names, sp, &all));
                    ext
                } else {
                    chains
                        .entry(svc.clone())
                        .or_insert_with(|| balance(names, sp, &all));
                    svc.clone()
                };
                used.extend(&all);
                node_ports.push(format!("{dport} -j {mark}"));
                node_ports.push(format!("{dport} -j {target}"));
            }
        }
        for ep in used {
            let sep = names.sep(sp, ep);
            let comment = format!("-m comment --comment \"{id}\"");
            let affinity = if sp.affinity_seconds.is_some() {
                format!(" -m recent --set --name {sep} --mask 255.255.255.255 --rsource")
            } else {
                String::new()
            };
            chains.insert(
                sep,
                vec![
                    format!("{comment} -s {}/32 -j {mark}", ep.ip),
                    format!(
                        "-p {proto} {comment}{affinity} -m {proto} -j DNAT --to-destination {}:{}",
                        ep.ip, ep.port
                    ),
                ],
            );
        }
    }
    services.push(format!(
        "-m comment --comment \"node ports\" -m addrtype --dst-type LOCAL -j {}",
        names.node_ports()
    ));
    chains.insert(names.services(), services);
    chains.insert(names.node_ports(), node_ports);
    chains.insert(mark.clone(), vec![format!("-j MARK --or-mark {MASQ_MARK}")]);
    chains.insert(
        names.masquerade(),
        vec![
            format!("-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN"),
            // Cleared, so that a packet routed again is not masqueraded twice.
            format!("-j MARK --xor-mark {MASQ_MARK}"),
            "-m comment --comment \"service traffic whose replies need SNAT\" -j MASQUERADE --random-fully".to_string(),
        ],
    );
    chains
}

/// A `SVC`/`SVL` chain: affinity checks, then a random pick among `eps`.
fn balance(names: &Names, sp: &ServicePort, eps: &[&Endpoint]) -> Vec<String> {
    let comment = format!("-m comment --comment \"{}\"", sp.id());
    let mut rules = Vec::new();
    if let Some(seconds) = sp.affinity_seconds {
        for ep in eps {
            let sep = names.sep(sp, ep);
            rules.push(format!(
                "{comment} -m recent --rcheck --seconds {seconds} --reap --name {sep} --mask 255.255.255.255 --rsource -j {sep}"
            ));
        }
    }
    let n = eps.len();
    for (i, ep) in eps.iter().enumerate() {
        let sep = names.sep(sp, ep);
        if i + 1 < n {
            let p = 1.0 / (n - i) as f64;
            rules.push(format!(
                "{comment} -m statistic --mode random --probability {p:.10} -j {sep}"
            ));
        } else {
            rules.push(format!("{comment} -j {sep}"));
        }
    }
    rules
}

/// What `iptables-save -t nat` shows of one kubelet's rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Current {
    /// The kubelet's chains, with how many rules each has.
    pub chains: BTreeMap<String, usize>,
    /// The lines (`-A PARENT …`) in built-in chains that jump to the kubelet's chains.
    pub jumps: Vec<String>,
}

/// Reads a kubelet's chains and jumps from `iptables-save -t nat` output.
pub fn parse_save(names: &Names, save: &str) -> Current {
    let mut current = Current::default();
    for line in save.lines() {
        if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap_or("");
            if names.owns(name) {
                current.chains.entry(name.to_string()).or_insert(0);
            }
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let chain = rule.split_whitespace().next().unwrap_or("");
            if names.owns(chain) {
                *current.chains.entry(chain.to_string()).or_insert(0) += 1;
            } else if BUILT_IN.contains(&chain) && jump_target(line).is_some_and(|t| names.owns(t))
            {
                current.jumps.push(line.to_string());
            }
        }
    }
    current
}

fn jump_target(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "-j" || w == "-g" {
            return words.next();
        }
    }
    None
}

/// Whether what is in the table matches what was last applied: every chain there with
/// as many rules, none of ours besides, and each built-in jump exactly once.
pub fn in_place(names: &Names, applied: &Chains, current: &Current) -> bool {
    let counts_match = applied.len() == current.chains.len()
        && applied
            .iter()
            .all(|(name, rules)| current.chains.get(name) == Some(&rules.len()));
    counts_match && jump_fixes(names, current).is_empty()
}

/// The `-A`/`-D` lines that leave each built-in jump exactly once.
fn jump_fixes(names: &Names, current: &Current) -> Vec<String> {
    let mut fixes = Vec::new();
    for (parent, rule) in names.jumps() {
        let target = jump_target(&rule).unwrap_or("");
        let found: Vec<&String> = current
            .jumps
            .iter()
            .filter(|l| {
                l.split_whitespace().nth(1) == Some(parent) && jump_target(l) == Some(target)
            })
            .collect();
        if found.len() == 1 {
            continue;
        }
        // Removed all and added once: a duplicate may differ from ours (an older comment).
        let mut seen = BTreeSet::new();
        for line in found {
            if seen.insert(line.clone()) {
                let times = current.jumps.iter().filter(|l| *l == line).count();
                for _ in 0..times {
                    fixes.push(format!("-D{}", &line[2..]));
                }
            }
        }
        fixes.push(format!("-A {parent} {rule}"));
    }
    fixes
}

/// The `iptables-restore --noflush` input that turns the table into `desired`.
///
/// With `current` (a full sync, after reading the table): every chain of ours is
/// rewritten, chains of ours that are not desired are deleted, and each built-in jump is
/// left exactly once. Without it (a partial sync, trusting `applied`, what the last
/// successful restore wrote): only chains whose rules changed are rewritten and those no
/// longer desired deleted. `None` when there is nothing to do.
///
/// A chain named in a `:CHAIN` line is created or flushed; chains not named are left as
/// they are. Chains come first, then rules, then deletions: a chain can be deleted only
/// once nothing jumps to it.
pub fn restore_input(
    names: &Names,
    desired: &Chains,
    applied: Option<&Chains>,
    current: Option<&Current>,
) -> Option<String> {
    let (write, stale, jumps): (Vec<&String>, Vec<String>, Vec<String>) = match current {
        Some(current) => (
            desired.keys().collect(),
            current
                .chains
                .keys()
                .filter(|c| !desired.contains_key(*c))
                .cloned()
                .collect(),
            jump_fixes(names, current),
        ),
        None => {
            let applied = applied?;
            let write: Vec<&String> = desired
                .iter()
                .filter(|(name, rules)| applied.get(*name) != Some(rules))
                .map(|(name, _)| name)
                .collect();
            let stale: Vec<String> = applied
                .keys()
                .filter(|c| !desired.contains_key(*c))
                .cloned()
                .collect();
            if write.is_empty() && stale.is_empty() {
                return None;
            }
            (write, stale, Vec::new())
        }
    };
    let mut out = String::with_capacity(write.len() * 200 + 64);
    out.push_str("*nat\n");
    for chain in write.iter().copied().chain(stale.iter()) {
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    for chain in &write {
        for rule in &desired[*chain] {
            let _ = writeln!(out, "-A {chain} {rule}");
        }
    }
    for fix in jumps {
        let _ = writeln!(out, "{fix}");
    }
    for chain in &stale {
        let _ = writeln!(out, "-X {chain}");
    }
    out.push_str("COMMIT\n");
    Some(out)
}

#[cfg(test)]
mod local_dns_tests {
    use super::*;

    #[test]
    fn the_cluster_dns_port_goes_to_this_nodes_server_not_to_endpoints() {
        let names = Names::new("node-1");
        let sp = |protocol, port| ServicePort {
            namespace: "kube-system".into(),
            service: "kube-dns".into(),
            port_name: if protocol == "udp" { "dns" } else { "dns-tcp" }.into(),
            protocol,
            cluster_ip: Ipv4Addr::new(10, 96, 0, 10),
            port,
            node_port: None,
            affinity_seconds: None,
            internal_local: false,
            external_local: false,
            endpoints: vec![Endpoint {
                ip: Ipv4Addr::new(10, 244, 1, 1),
                port,
                node: Some("node-2".into()),
            }],
        };
        let ports = [sp("udp", 53), sp("tcp", 53)];
        let dns = LocalDns {
            cluster_ip: Ipv4Addr::new(10, 96, 0, 10),
            server: Ipv4Addr::new(10, 244, 0, 1),
        };
        let chains = render_with_dns(&names, &ports, Some(dns));
        let services = &chains[&names.services()];
        assert_eq!(
            services[0],
            "-d 10.96.0.10/32 -p udp -m comment --comment \"cluster DNS to this node's server\" -m udp --dport 53 -j DNAT --to-destination 10.244.0.1:53"
        );
        assert!(services[1].starts_with("-d 10.96.0.10/32 -p tcp "));
        // No balancing over the service's endpoints: only the DNAT, then node ports.
        assert_eq!(services.len(), 3);
        assert!(
            !chains
                .keys()
                .any(|c| c.contains("-SVC-") || c.contains("-SEP-"))
        );
        // Without it, the service is an ordinary one.
        let plain = render(&names, &ports);
        assert_eq!(plain[&names.services()].len(), 3);
        assert!(plain[&names.services()][0].contains("-j MINIK8S-SVC-"));
    }
}
