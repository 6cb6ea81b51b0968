//! The records of the cluster domain as an immutable, in-memory index, built whole from
//! what the watches hold ([`Index::build`]) and swapped in on change, so a query never
//! waits for the API server.
//!
//! The records are those of the Kubernetes DNS-based service discovery specification
//! (schema 1.1.0), with CoreDNS's choices where the specification leaves one open: a
//! TTL of 5 s, `a-b-c-d.<ns>.pod.<zone>` answered for any well-formed address (CoreDNS's
//! `pods insecure`, kubeadm's default), an endpoint without a hostname named by its
//! dashed address, and an empty non-terminal (`<ns>.svc.<zone>`, `_tcp.<svc>…`)
//! answered NODATA rather than NXDOMAIN.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The schema version in `dns-version.<zone>`.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// The TTL of every answer (CoreDNS's default for the cluster domain).
pub const TTL: u32 = 5;

/// What DNS needs of a Service: a projection, so a thousand watched services cost
/// little memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    pub kind: ServiceKind,
    /// Named ports only: (name, protocol in lower case, port).
    pub ports: Vec<(String, String, u16)>,
    pub publish_not_ready: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    ClusterIp(Vec<IpAddr>),
    Headless,
    ExternalName(String),
}

impl ServiceInfo {
    /// `None` for a service DNS has nothing to say about (no cluster IP assigned yet).
    pub fn from_service(svc: &Service) -> Option<ServiceInfo> {
        let spec = svc.spec.as_ref()?;
        let kind = if spec.type_.as_deref() == Some("ExternalName") {
            ServiceKind::ExternalName(spec.external_name.clone()?)
        } else if spec.cluster_ip.as_deref() == Some("None") {
            ServiceKind::Headless
        } else {
            let ips: Vec<IpAddr> = match &spec.cluster_ips {
                Some(ips) if !ips.is_empty() => ips.iter().filter_map(|i| i.parse().ok()).collect(),
                _ => spec
                    .cluster_ip
                    .iter()
                    .filter_map(|i| i.parse().ok())
                    .collect(),
            };
            if ips.is_empty() {
                return None;
            }
            ServiceKind::ClusterIp(ips)
        };
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let name = p.name.clone().filter(|n| !n.is_empty())?;
                let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                Some((name, proto, u16::try_from(p.port).ok()?))
            })
            .collect();
        Some(ServiceInfo {
            kind,
            ports,
            publish_not_ready: spec.publish_not_ready_addresses == Some(true),
        })
    }
}

/// What DNS needs of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceInfo {
    /// The `kubernetes.io/service-name` label.
    pub service: String,
    /// Named ports: (name, protocol in lower case, port).
    pub ports: Vec<(String, String, u16)>,
    pub endpoints: Vec<EndpointInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    pub addresses: Vec<IpAddr>,
    pub hostname: Option<String>,
    pub ready: bool,
}

impl SliceInfo {
    pub fn from_slice(slice: &EndpointSlice) -> Option<SliceInfo> {
        let service = slice
            .metadata
            .labels
            .as_ref()?
            .get("kubernetes.io/service-name")?
            .clone();
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let name = p.name.clone().filter(|n| !n.is_empty())?;
                let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                Some((name, proto, u16::try_from(p.port?).ok()?))
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .map(|e| EndpointInfo {
                addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
                hostname: e.hostname.clone().filter(|h| !h.is_empty()),
                // A missing condition means ready, as in Kubernetes.
                ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
            })
            .collect();
        Some(SliceInfo {
            service,
            ports,
            endpoints,
        })
    }
}

/// What the index says about one question.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// Records of the asked type (and the A/AAAA of SRV targets as additionals).
    Records {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// The name exists with no record of that type: NOERROR, empty, SOA in authority.
    NoData,
    /// The name does not exist in the cluster domain.
    NxDomain,
    /// Not a name of ours: forward it.
    NotOurs,
}

/// One snapshot of every record of the cluster domain.
#[derive(Debug)]
pub struct Index {
    zone: Name,
    /// `zone` in lower case without the final dot, for matching suffixes.
    zone_key: String,
    /// Lower-case names without the final dot; an empty vector is a name that exists
    /// only because names below it do.
    nodes: HashMap<Box<str>, Vec<RData>>,
    soa: Record,
}

impl Index {
    /// The records of `services` and `slices` (both keyed by namespace and name).
    pub fn build(
        zone: &Name,
        services: &BTreeMap<(String, String), ServiceInfo>,
        slices: &BTreeMap<(String, String), SliceInfo>,
    ) -> Index {
        let zone = zone.to_lowercase();
        let zone_key = key_of(&zone);
        let mut b = Builder {
            zone_key: zone_key.clone(),
            nodes: HashMap::new(),
        };
        let ns_name = b.name("ns.dns");
        let soa = SOA::new(
            ns_name.clone(),
            b.name("hostmaster"),
            // Seconds since the epoch, as CoreDNS's serial.
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as u32)
                .unwrap_or(1),
            7200,
            1800,
            86400,
            TTL,
        );
        b.add(&zone_key, RData::SOA(soa.clone()));
        b.add(&zone_key, RData::NS(NS(ns_name)));
        b.add(
            &format!("dns-version.{zone_key}"),
            RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()])),
        );
        b.ent(&format!("svc.{zone_key}"));
        b.ent(&format!("pod.{zone_key}"));

        // Endpoints of each service, from all its slices.
        let mut by_service: HashMap<(&str, &str), Vec<&SliceInfo>> = HashMap::new();
        for ((ns, _), slice) in slices {
            by_service
                .entry((ns.as_str(), slice.service.as_str()))
                .or_default()
                .push(slice);
        }
        for ((ns, name), svc) in services {
            let svc_key = format!("{name}.{ns}.svc.{zone_key}").to_ascii_lowercase();
            let Ok(svc_name) = Name::from_ascii(format!("{svc_key}.")) else {
                continue;
            };
            match &svc.kind {
                ServiceKind::ExternalName(ext) => {
                    let target = ext.trim_end_matches('.');
                    if let Ok(target) = Name::from_ascii(format!("{target}.")) {
                        b.add(&svc_key, RData::CNAME(CNAME(target)));
                    }
                }
                ServiceKind::ClusterIp(ips) => {
                    if ns == "kube-system" && name == "kube-dns" {
                        for ip in ips {
                            b.add(&format!("ns.dns.{zone_key}"), address(*ip));
                        }
                    }
                    for ip in ips {
                        b.add(&svc_key, address(*ip));
                        b.add(&reverse_key(*ip), RData::PTR(PTR(svc_name.clone())));
                    }
                    for (port, proto, number) in &svc.ports {
                        b.add(
                            &format!("_{port}._{proto}.{svc_key}").to_ascii_lowercase(),
                            RData::SRV(SRV::new(0, 100, *number, svc_name.clone())),
                        );
                    }
                }
                ServiceKind::Headless => {
                    let mut seen = std::collections::HashSet::new();
                    for slice in by_service
                        .get(&(ns.as_str(), name.as_str()))
                        .into_iter()
                        .flatten()
                    {
                        for ep in &slice.endpoints {
                            if !(ep.ready || svc.publish_not_ready) {
                                continue;
                            }
                            for ip in &ep.addresses {
                                if !seen.insert(*ip) {
                                    continue;
                                }
                                let host = match &ep.hostname {
                                    Some(h) => h.to_ascii_lowercase(),
                                    None => dashed(*ip),
                                };
                                let host_key = format!("{host}.{svc_key}");
                                let Ok(host_name) = Name::from_ascii(format!("{host_key}.")) else {
                                    continue;
                                };
                                b.add(&svc_key, address(*ip));
                                b.add(&host_key, address(*ip));
                                b.add(&reverse_key(*ip), RData::PTR(PTR(host_name.clone())));
                                for (port, proto, number) in &slice.ports {
                                    b.add(
                                        &format!("_{port}._{proto}.{svc_key}").to_ascii_lowercase(),
                                        RData::SRV(SRV::new(0, 100, *number, host_name.clone())),
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        b.finish();
        Index {
            soa: Record::from_rdata(zone.clone(), TTL, RData::SOA(soa)),
            zone,
            zone_key,
            nodes: b.nodes,
        }
    }

    /// An index with nothing but the zone's own records.
    pub fn empty(zone: &Name) -> Index {
        Index::build(zone, &BTreeMap::new(), &BTreeMap::new())
    }

    pub fn zone(&self) -> &Name {
        &self.zone
    }

    /// The zone's SOA record, for the authority section of NODATA and NXDOMAIN.
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// How many names the index holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether `name` is in the cluster domain (answered here, never forwarded).
    pub fn in_zone(&self, name: &Name) -> bool {
        let key = key_of(name);
        in_zone_key(&key, &self.zone_key)
    }

    /// The answer to `name`/`qtype`; records carry `name` as asked (its case kept).
    pub fn lookup(&self, name: &Name, qtype: RecordType) -> Answer {
        let key = key_of(name);
        let pod;
        let rdatas: &[RData] = if let Some(rdatas) = self.nodes.get(key.as_str()) {
            rdatas
        } else if let Some(ip) = self.pod_address(&key) {
            pod = [address(ip)];
            &pod
        } else if in_zone_key(&key, &self.zone_key) {
            return Answer::NxDomain;
        } else {
            // Reverse names we do not know, and everything else, are someone else's.
            return Answer::NotOurs;
        };
        let mut name = name.clone();
        name.set_fqdn(true);
        let record = |r: RData| Record::from_rdata(name.clone(), TTL, r);
        // A CNAME answers every type.
        if let Some(cname) = rdatas.iter().find(|r| matches!(r, RData::CNAME(_))) {
            return Answer::Records {
                answers: vec![record(cname.clone())],
                additionals: vec![],
            };
        }
        let answers: Vec<Record> = rdatas
            .iter()
            .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
            .map(|r| record(r.clone()))
            .collect();
        if answers.is_empty() {
            return Answer::NoData;
        }
        let mut additionals = Vec::new();
        for r in &answers {
            if let RData::SRV(srv) = &r.data {
                let target = key_of(&srv.target);
                for rd in self.nodes.get(target.as_str()).into_iter().flatten() {
                    if matches!(rd, RData::A(_) | RData::AAAA(_)) {
                        additionals.push(Record::from_rdata(srv.target.clone(), TTL, rd.clone()));
                    }
                }
            }
        }
        Answer::Records {
            answers,
            additionals,
        }
    }

    /// The address of `a-b-c-d.<ns>.pod.<zone>` (any namespace, as CoreDNS's `pods
    /// insecure`).
    fn pod_address(&self, key: &str) -> Option<IpAddr> {
        let rest = key.strip_suffix(&self.zone_key)?.strip_suffix(".pod.")?;
        let (dashed, ns) = rest.split_once('.')?;
        if ns.is_empty() || ns.contains('.') {
            return None;
        }
        if let Ok(v4) = dashed.replace('-', ".").parse::<Ipv4Addr>() {
            return Some(IpAddr::V4(v4));
        }
        dashed
            .replace('-', ":")
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6)
    }
}

struct Builder {
    zone_key: String,
    nodes: HashMap<Box<str>, Vec<RData>>,
}

impl Builder {
    fn name(&self, relative: &str) -> Name {
        Name::from_ascii(format!("{relative}.{}.", self.zone_key)).expect("a valid name")
    }

    fn add(&mut self, key: &str, rdata: RData) {
        let rdatas = self.nodes.entry(key.into()).or_default();
        if !rdatas.contains(&rdata) {
            rdatas.push(rdata);
        }
    }

    fn ent(&mut self, key: &str) {
        self.nodes.entry(key.into()).or_default();
    }

    /// Adds the names between each name and the zone as empty non-terminals, and spreads
    /// SRV weights evenly over the records of a name.
    fn finish(&mut self) {
        let mut ents = Vec::new();
        for key in self.nodes.keys() {
            if !in_zone_key(key, &self.zone_key) {
                continue;
            }
            let mut rest: &str = key;
            while let Some((_, parent)) = rest.split_once('.') {
                if parent.len() <= self.zone_key.len() {
                    break;
                }
                ents.push(Box::<str>::from(parent));
                rest = parent;
            }
        }
        for key in ents {
            self.nodes.entry(key).or_default();
        }
        for rdatas in self.nodes.values_mut() {
            let n = rdatas.iter().filter(|r| matches!(r, RData::SRV(_))).count();
            if n > 1 {
                let weight = (100 / n as u16).max(1);
                for r in rdatas.iter_mut() {
                    if let RData::SRV(srv) = r {
                        srv.weight = weight;
                    }
                }
            }
            rdatas.shrink_to_fit();
        }
        self.nodes.shrink_to_fit();
    }
}

fn in_zone_key(key: &str, zone_key: &str) -> bool {
    key == zone_key
        || key
            .strip_suffix(zone_key)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// A name in lower case without its final dot.
pub fn key_of(name: &Name) -> String {
    let mut s = name.to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    s.make_ascii_lowercase();
    s
}

fn address(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    }
}

/// `10-1-2-3` for 10.1.2.3; `2001-db8--1` for 2001:db8::1.
pub fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// `3.2.1.10.in-addr.arpa` for 10.1.2.3; the nibbles of an IPv6 address under
/// `ip6.arpa`.
pub fn reverse_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

#[cfg(test)]
mod tests;
