//! What a service takes from the cluster: a cluster IP from the service CIDR and node
//! ports from the node port range, handed out when a service is written and given back
//! when it no longer needs them.
//!
//! Each address or port taken is one key in the store (`/registry/ranges/serviceips/IP`,
//! `/registry/ranges/servicenodeports/PORT`), created with the store's create-if-absent,
//! so two API servers sharing one etcd can never hand out the same one twice, and no
//! single key is contended by every service write. A key's value names the service that
//! holds it, which lets [`Allocations::repair`] give back what a crash between taking and
//! writing left behind.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use minik8s_api::resource::SERVICES;
use minik8s_api::validation::FieldError;
use minik8s_storage::{Error as StoreError, ListOptions, Store};
use serde_json::Value;

use crate::error::{ApiError, Result};

const IPS_PREFIX: &str = "/registry/ranges/serviceips/";
const PORTS_PREFIX: &str = "/registry/ranges/servicenodeports/";
/// Random picks before falling back to a scan of what is taken.
const RANDOM_TRIES: usize = 16;

/// The ranges services take from, as `--service-cluster-ip-range` and
/// `--service-node-port-range` set them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRanges {
    pub cluster_ips: Ipv4Net,
    pub node_ports: (u16, u16),
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            cluster_ips: "10.96.0.0/16".parse().expect("valid default range"),
            node_ports: (30000, 32767),
        }
    }
}

impl ServiceRanges {
    /// The address of the `kubernetes` service: the first of the range.
    pub fn first_ip(&self) -> Ipv4Addr {
        let base = u32::from(self.cluster_ips.network());
        Ipv4Addr::from(base + 1)
    }

    /// Parses `30000-32767`.
    pub fn parse_ports(s: &str) -> std::result::Result<(u16, u16), String> {
        let (lo, hi) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?} is not a port range like 30000-32767"))?;
        let parse = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|e| format!("{p:?} in {s:?}: {e}"))
        };
        let (lo, hi) = (parse(lo)?, parse(hi)?);
        if lo == 0 || lo > hi {
            return Err(format!(
                "{s:?}: the range must be non-empty and start above 0"
            ));
        }
        Ok((lo, hi))
    }

    fn ip_count(&self) -> u32 {
        // Neither the network nor the broadcast address.
        (1u32 << (32 - self.cluster_ips.prefix_len())).saturating_sub(2)
    }

    fn ip_at(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cluster_ips.network()) + 1 + offset)
    }

    fn usable(&self, ip: Ipv4Addr) -> bool {
        self.cluster_ips.contains(&ip)
            && ip != self.cluster_ips.network()
            && ip != self.cluster_ips.broadcast()
    }

    fn ports_text(&self) -> String {
        format!("{}-{}", self.node_ports.0, self.node_ports.1)
    }
}

/// What one write took, given back if the write does not happen.
#[derive(Debug, Default)]
pub struct Taken {
    ips: Vec<Ipv4Addr>,
    ports: Vec<u16>,
}

/// Hands out and takes back cluster IPs and node ports.
pub struct Allocations {
    store: Arc<dyn Store>,
    ranges: ServiceRanges,
    /// Allocation keys no service held at the last repairs, and how many repairs in a row
    /// found them so; and when the last repair ran.
    repairs: std::sync::Mutex<(HashMap<String, u32>, Option<std::time::Instant>)>,
}

/// Repairs in a row that must find an allocation unheld before it is given back: a
/// service being created holds its address a moment before it is stored.
const LEAK_REPAIRS: u32 = 3;
/// How often [`Allocations::repair_if_due`] repairs.
const REPAIR_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

fn ip_key(ip: Ipv4Addr) -> String {
    format!("{IPS_PREFIX}{ip}")
}

fn port_key(port: u16) -> String {
    format!("{PORTS_PREFIX}{port:05}")
}

fn owner(svc: &Service) -> String {
    format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or_default(),
        svc.metadata.name.as_deref().unwrap_or_default()
    )
}

fn decode(obj: &Value) -> Result<Service> {
    serde_json::from_value(obj.clone())
        .map_err(|e| ApiError::Internal(format!("decoding a service: {e}")))
}

fn encode(svc: &Service) -> Result<Value> {
    serde_json::to_value(svc).map_err(|e| ApiError::Internal(format!("encoding a service: {e}")))
}

fn needs_cluster_ip(svc: &Service) -> bool {
    let spec = svc.spec.as_ref();
    spec.and_then(|s| s.type_.as_deref()) != Some("ExternalName")
        && spec.and_then(|s| s.cluster_ip.as_deref()) != Some("None")
}

fn needs_node_ports(svc: &Service) -> bool {
    matches!(
        svc.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("NodePort" | "LoadBalancer")
    )
}

fn cluster_ip(svc: &Service) -> Option<Ipv4Addr> {
    svc.spec.as_ref()?.cluster_ip.as_deref()?.parse().ok()
}

fn node_ports(svc: &Service) -> BTreeSet<u16> {
    svc.spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .filter_map(|p| u16::try_from(p.node_port?).ok())
        .filter(|p| *p != 0)
        .collect()
}

fn invalid(svc: &Service, causes: Vec<FieldError>) -> ApiError {
    ApiError::Invalid {
        resource: &SERVICES,
        name: svc.metadata.name.clone().unwrap_or_default(),
        causes,
    }
}

impl Allocations {
    pub fn new(store: Arc<dyn Store>, ranges: ServiceRanges) -> Allocations {
        Allocations {
            store,
            ranges,
            repairs: Default::default(),
        }
    }

    pub fn ranges(&self) -> &ServiceRanges {
        &self.ranges
    }

    /// Takes a cluster IP and node ports for a new (defaulted, valid) service and writes
    /// them into it.
    pub async fn on_create(&self, obj: &mut Value) -> Result<Taken> {
        let mut svc = decode(obj)?;
        let mut taken = Taken::default();
        let result = self.fill(&mut svc, None, &mut taken).await;
        if let Err(e) = result {
            self.release(taken).await;
            return Err(e);
        }
        *obj = encode(&svc)?;
        Ok(taken)
    }

    /// For an update from `old` to `new`: keeps what the client left out (an `apply` or a
    /// `PUT` without `clusterIP` or `nodePort`), takes what the new form needs that the old
    /// did not have, and says what the old one held that the new one no longer needs
    /// (to give back once the write is done).
    pub async fn on_update(&self, old: &Value, new: &mut Value) -> Result<(Taken, Taken)> {
        let old = decode(old)?;
        let mut svc = decode(new)?;
        let mut taken = Taken::default();
        if let Err(e) = self.fill(&mut svc, Some(&old), &mut taken).await {
            self.release(taken).await;
            return Err(e);
        }
        let mut freed = Taken::default();
        if let Some(ip) = cluster_ip(&old)
            && cluster_ip(&svc) != Some(ip)
        {
            freed.ips.push(ip);
        }
        let still = node_ports(&svc);
        freed.ports = node_ports(&old)
            .into_iter()
            .filter(|p| !still.contains(p))
            .collect();
        *new = encode(&svc)?;
        Ok((taken, freed))
    }

    /// Gives back what a deleted service held.
    pub async fn on_delete(&self, obj: &Value) {
        if let Ok(svc) = decode(obj) {
            self.release(Taken {
                ips: cluster_ip(&svc).into_iter().collect(),
                ports: node_ports(&svc).into_iter().collect(),
            })
            .await;
        }
    }

    /// Gives back addresses and ports; a key already gone is fine.
    pub async fn release(&self, taken: Taken) {
        let keys = taken
            .ips
            .into_iter()
            .map(ip_key)
            .chain(taken.ports.into_iter().map(port_key));
        for key in keys {
            match self.store.delete(&key, None).await {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => tracing::warn!(%key, error = %e, "giving back a service allocation"),
            }
        }
    }

    /// Fills in the cluster IP and node ports `svc` needs, taking them, or keeping those of
    /// `old` where the update left them out.
    async fn fill(
        &self,
        svc: &mut Service,
        old: Option<&Service>,
        taken: &mut Taken,
    ) -> Result<()> {
        let who = owner(svc);
        let mut causes = Vec::new();
        if needs_cluster_ip(svc) {
            let old_ip = old.filter(|o| needs_cluster_ip(o)).and_then(cluster_ip);
            let spec = svc.spec.get_or_insert_with(Default::default);
            let requested = spec.cluster_ip.clone().unwrap_or_default();
            let ip = match (requested.as_str(), old_ip) {
                ("", Some(ip)) => Some(ip),
                (r, Some(ip)) if r == ip.to_string() => Some(ip),
                ("", None) => Some(self.take_any_ip(&who).await?),
                (r, _) => match r.parse::<Ipv4Addr>() {
                    Ok(ip) => match self.take_ip(ip, &who).await {
                        Ok(()) => Some(ip),
                        Err(e) => {
                            causes.push(ip_error(ip, &e));
                            None
                        }
                    },
                    // Validation has refused it already; nothing to take.
                    Err(_) => None,
                },
            };
            if let Some(ip) = ip {
                if old_ip != Some(ip) {
                    taken.ips.push(ip);
                }
                spec.cluster_ip = Some(ip.to_string());
                spec.cluster_ips = Some(vec![ip.to_string()]);
            }
        } else if let Some(spec) = svc.spec.as_mut()
            && spec.type_.as_deref() == Some("ExternalName")
        {
            spec.cluster_ip = None;
            spec.cluster_ips = None;
        }

        let old_ports: BTreeMap<(String, i32), u16> = old
            .filter(|o| needs_node_ports(o))
            .into_iter()
            .flat_map(|o| o.spec.iter().flat_map(|s| s.ports.iter().flatten()))
            .filter_map(|p| {
                let np = u16::try_from(p.node_port?).ok().filter(|n| *n != 0)?;
                Some(((p.protocol.clone().unwrap_or_default(), p.port), np))
            })
            .collect();
        let held: HashSet<u16> = old_ports.values().copied().collect();
        let wants = needs_node_ports(svc);
        let spec = svc.spec.get_or_insert_with(Default::default);
        for (i, port) in spec.ports.iter_mut().flatten().enumerate() {
            if !wants {
                // Kubernetes drops node ports when a service stops being a NodePort one.
                if old.is_some() {
                    port.node_port = None;
                }
                continue;
            }
            let requested = port.node_port.unwrap_or(0);
            let kept = old_ports
                .get(&(port.protocol.clone().unwrap_or_default(), port.port))
                .copied();
            let np = match (requested, kept) {
                (0, Some(np)) => np,
                (0, None) => {
                    let np = self.take_any_port(&who).await?;
                    taken.ports.push(np);
                    np
                }
                // Held already: by the old form, or by another port of this one (a TCP and
                // a UDP port may share a node port).
                (r, _)
                    if u16::try_from(r)
                        .is_ok_and(|r| held.contains(&r) || taken.ports.contains(&r)) =>
                {
                    r as u16
                }
                (r, _) => {
                    let field = format!("spec.ports[{i}].nodePort");
                    match u16::try_from(r) {
                        Ok(p) if (self.ranges.node_ports.0..=self.ranges.node_ports.1)
                            .contains(&p) =>
                        {
                            match self.take_port(p, &who).await {
                                Ok(()) => {
                                    taken.ports.push(p);
                                    port.node_port = Some(r);
                                }
                                Err(Taking::InUse | Taking::OutOfRange(_)) => causes.push(FieldError::invalid_number(
                                    field,
                                    i64::from(r),
                                    "provided port is already allocated",
                                )),
                                Err(Taking::Store(e)) => {
                                    return Err(ApiError::from_store(e, &SERVICES, &who));
                                }
                            }
                        }
                        _ => causes.push(FieldError::invalid_number(
                            field,
                            i64::from(r),
                            format!(
                                "provided port is not in the valid range. The range of valid ports is {}",
                                self.ranges.ports_text()
                            ),
                        )),
                    }
                    continue;
                }
            };
            port.node_port = Some(i32::from(np));
        }
        if causes.is_empty() {
            Ok(())
        } else {
            Err(invalid(svc, causes))
        }
    }

    async fn take_ip(&self, ip: Ipv4Addr, who: &str) -> std::result::Result<(), Taking> {
        if !self.ranges.usable(ip) {
            return Err(Taking::OutOfRange(self.ranges.cluster_ips));
        }
        take(&*self.store, &ip_key(ip), who).await
    }

    async fn take_port(&self, port: u16, who: &str) -> std::result::Result<(), Taking> {
        take(&*self.store, &port_key(port), who).await
    }

    /// Any free address: random picks first (few collisions while the range is mostly
    /// free), then the first free one in order.
    async fn take_any_ip(&self, who: &str) -> Result<Ipv4Addr> {
        let count = self.ranges.ip_count();
        // The first address is the `kubernetes` service's: never handed out at random.
        let first = self.ranges.first_ip();
        for _ in 0..RANDOM_TRIES.min(count as usize) {
            let ip = self.ranges.ip_at(random_below(count));
            if ip == first {
                continue;
            }
            match self.take_ip(ip, who).await {
                Ok(()) => return Ok(ip),
                Err(Taking::Store(e)) => return Err(ApiError::from_store(e, &SERVICES, who)),
                Err(_) => {}
            }
        }
        let used = self.taken_keys(IPS_PREFIX).await?;
        for offset in 1..count {
            let ip = self.ranges.ip_at(offset);
            if used.contains(&ip.to_string()) {
                continue;
            }
            match self.take_ip(ip, who).await {
                Ok(()) => return Ok(ip),
                Err(Taking::Store(e)) => return Err(ApiError::from_store(e, &SERVICES, who)),
                Err(_) => {}
            }
        }
        Err(ApiError::Internal(
            "failed to allocate a serviceIP: range is full".to_string(),
        ))
    }

    async fn take_any_port(&self, who: &str) -> Result<u16> {
        let (lo, hi) = self.ranges.node_ports;
        let count = u32::from(hi - lo) + 1;
        for _ in 0..RANDOM_TRIES {
            let port = lo + random_below(count) as u16;
            match self.take_port(port, who).await {
                Ok(()) => return Ok(port),
                Err(Taking::Store(e)) => return Err(ApiError::from_store(e, &SERVICES, who)),
                Err(_) => {}
            }
        }
        let used = self.taken_keys(PORTS_PREFIX).await?;
        for port in lo..=hi {
            if used.contains(&format!("{port:05}")) {
                continue;
            }
            match self.take_port(port, who).await {
                Ok(()) => return Ok(port),
                Err(Taking::Store(e)) => return Err(ApiError::from_store(e, &SERVICES, who)),
                Err(_) => {}
            }
        }
        Err(ApiError::Internal(
            "failed to allocate a nodePort: range is full".to_string(),
        ))
    }

    /// The last segments of the keys under `prefix`.
    async fn taken_keys(&self, prefix: &str) -> Result<HashSet<String>> {
        Ok(self.allocations(prefix).await?.into_keys().collect())
    }

    /// Every allocation under `prefix`: its last key segment and its owner.
    async fn allocations(&self, prefix: &str) -> Result<BTreeMap<String, String>> {
        let list = self
            .store
            .list(prefix, ListOptions::default())
            .await
            .map_err(|e| ApiError::from_store(e, &SERVICES, ""))?;
        Ok(list
            .items
            .into_iter()
            .map(|kv| {
                let item = kv.key.strip_prefix(prefix).unwrap_or(&kv.key).to_string();
                (item, String::from_utf8_lossy(&kv.value).into_owned())
            })
            .collect())
    }

    /// [`Allocations::repair`], at most every 30 s.
    pub async fn repair_if_due(&self) -> Result<usize> {
        {
            let mut state = self.repairs.lock().unwrap_or_else(|e| e.into_inner());
            if state.1.is_some_and(|at| at.elapsed() < REPAIR_EVERY) {
                return Ok(0);
            }
            state.1 = Some(std::time::Instant::now());
        }
        self.repair().await
    }

    /// Makes the allocations agree with the stored services: gives back what no service
    /// has held for three repairs in a row (left by a crash between taking and writing)
    /// and takes what a service holds but is not recorded. Returns how many keys it
    /// changed.
    ///
    /// The allocations are read before the services. A service's address or port is taken
    /// before the service is written and given back after, so a service read later that
    /// holds something the allocations lacked really lacks it — it was not just given
    /// back (which the service, read later, would show). The other way round, an
    /// allocation no service holds may be a create in flight: hence the three repairs.
    pub async fn repair(&self) -> Result<usize> {
        let have_ips = self.allocations(IPS_PREFIX).await?;
        let have_ports = self.allocations(PORTS_PREFIX).await?;
        let services = self
            .store
            .list(
                &crate::registry::prefix(&SERVICES, None),
                ListOptions::default(),
            )
            .await
            .map_err(|e| ApiError::from_store(e, &SERVICES, ""))?;
        let mut want_ips = BTreeMap::new();
        let mut want_ports = BTreeMap::new();
        for kv in &services.items {
            let Ok(svc) = serde_json::from_slice::<Service>(&kv.value) else {
                continue;
            };
            let who = owner(&svc);
            if let Some(ip) = cluster_ip(&svc) {
                want_ips.insert(ip.to_string(), who.clone());
            }
            for p in node_ports(&svc) {
                want_ports.insert(format!("{p:05}"), who.clone());
            }
        }
        let mut changed = 0;
        let mut suspects = HashMap::new();
        let before = std::mem::take(&mut self.repairs.lock().unwrap_or_else(|e| e.into_inner()).0);
        for (prefix, have, want) in [
            (IPS_PREFIX, have_ips, want_ips),
            (PORTS_PREFIX, have_ports, want_ports),
        ] {
            for (item, who) in &have {
                if want.contains_key(item) {
                    continue;
                }
                let key = format!("{prefix}{item}");
                let seen = before.get(&key).copied().unwrap_or(0) + 1;
                if seen < LEAK_REPAIRS {
                    suspects.insert(key, seen);
                    continue;
                }
                // Only if it is still what was read.
                if let Ok(Some(kv)) = self.store.get(&key).await
                    && String::from_utf8_lossy(&kv.value) == *who
                    && self.store.delete(&key, Some(kv.mod_revision)).await.is_ok()
                {
                    changed += 1;
                }
            }
            for (item, who) in want {
                if !have.contains_key(&item)
                    && take(&*self.store, &format!("{prefix}{item}"), &who)
                        .await
                        .is_ok()
                {
                    changed += 1;
                }
            }
        }
        self.repairs.lock().unwrap_or_else(|e| e.into_inner()).0 = suspects;
        Ok(changed)
    }
}

/// Why an address or port could not be taken.
#[derive(Debug)]
enum Taking {
    InUse,
    OutOfRange(Ipv4Net),
    Store(StoreError),
}

async fn take(store: &dyn Store, key: &str, who: &str) -> std::result::Result<(), Taking> {
    match store.create(key, who.as_bytes().to_vec()).await {
        Ok(_) => Ok(()),
        Err(StoreError::AlreadyExists { .. }) => Err(Taking::InUse),
        Err(e) => Err(Taking::Store(e)),
    }
}

/// Kubernetes' words for a requested cluster IP that cannot be had.
fn ip_error(ip: Ipv4Addr, e: &Taking) -> FieldError {
    let why = match e {
        Taking::InUse => "provided IP is already allocated".to_string(),
        Taking::OutOfRange(range) => format!(
            "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {range}"
        ),
        Taking::Store(e) => e.to_string(),
    };
    FieldError::invalid_shown(
        "spec.clusterIPs",
        format!("[\"{ip}\"]"),
        format!("failed to allocate IP {ip}: {why}"),
    )
}

fn random_below(n: u32) -> u32 {
    (uuid::Uuid::new_v4().as_u128() % u128::from(n.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use minik8s_storage::embedded::EmbeddedStore;
    use serde_json::json;

    fn allocations(dir: &tempfile::TempDir) -> Allocations {
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(&dir.path().join("s.redb")).unwrap());
        Allocations::new(
            store,
            ServiceRanges {
                cluster_ips: "10.96.0.0/29".parse().unwrap(),
                node_ports: (30000, 30002),
            },
        )
    }

    fn svc(name: &str, spec: Value) -> Value {
        let mut s: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}))
        .unwrap();
        minik8s_api::defaults::default_service(&mut s);
        serde_json::to_value(s).unwrap()
    }

    fn causes(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Invalid { causes, .. } => causes.iter().map(ToString::to_string).collect(),
            other => vec![format!("not Invalid: {other}")],
        }
    }

    #[tokio::test]
    async fn addresses_are_unique_until_the_range_is_full_and_come_back_on_delete() {
        let dir = tempfile::tempdir().unwrap();
        let a = allocations(&dir);
        // A /29 has 6 usable addresses; the first is the kubernetes service's.
        let mut seen = HashSet::new();
        let mut objs = Vec::new();
        for i in 0..5 {
            let mut obj = svc(&format!("s{i}"), json!({"ports": [{"port": 80}]}));
            a.on_create(&mut obj).await.unwrap();
            let ip = obj["spec"]["clusterIP"].as_str().unwrap().to_string();
            assert_ne!(ip, "10.96.0.1");
            assert!(seen.insert(ip.clone()), "{ip} twice");
            assert_eq!(obj["spec"]["clusterIPs"], json!([ip]));
            objs.push(obj);
        }
        let mut full = svc("full", json!({"ports": [{"port": 80}]}));
        assert!(
            a.on_create(&mut full)
                .await
                .unwrap_err()
                .to_string()
                .contains("range is full")
        );
        a.on_delete(&objs[0]).await;
        a.on_create(&mut full).await.unwrap();
        assert_eq!(full["spec"]["clusterIP"], objs[0]["spec"]["clusterIP"]);
    }

    #[tokio::test]
    async fn requested_addresses_and_ports_are_checked_in_kubernetes_words() {
        let dir = tempfile::tempdir().unwrap();
        let a = allocations(&dir);
        let mut first = svc(
            "a",
            json!({"type": "NodePort", "clusterIP": "10.96.0.3",
                "ports": [{"port": 80, "nodePort": 30001}]}),
        );
        a.on_create(&mut first).await.unwrap();
        let mut again = svc(
            "b",
            json!({"type": "NodePort", "clusterIP": "10.96.0.3",
                "ports": [{"port": 80, "nodePort": 30001}, {"name": "x", "port": 81, "nodePort": 40000}]}),
        );
        let got = causes(a.on_create(&mut again).await.unwrap_err());
        assert_eq!(
            got,
            vec![
                "spec.clusterIPs: Invalid value: [\"10.96.0.3\"]: failed to allocate IP 10.96.0.3: provided IP is already allocated",
                "spec.ports[0].nodePort: Invalid value: 30001: provided port is already allocated",
                "spec.ports[1].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-30002",
            ]
        );
        let mut outside = svc(
            "c",
            json!({"clusterIP": "10.97.0.1", "ports": [{"port": 80}]}),
        );
        assert_eq!(
            causes(a.on_create(&mut outside).await.unwrap_err()),
            vec![
                "spec.clusterIPs: Invalid value: [\"10.97.0.1\"]: failed to allocate IP 10.97.0.1: the provided IP (10.97.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/29"
            ]
        );
        // Nothing the failed creates took stays taken.
        let mut free = svc(
            "d",
            json!({"type": "NodePort", "ports": [{"port": 80}, {"name": "y", "port": 81}]}),
        );
        a.on_create(&mut free).await.unwrap();
        let ports: BTreeSet<i64> = free["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["nodePort"].as_i64().unwrap())
            .collect();
        assert_eq!(ports, BTreeSet::from([30000, 30002]));
    }

    #[tokio::test]
    async fn updates_keep_what_was_left_out_and_give_back_what_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let a = allocations(&dir);
        let mut old = svc("a", json!({"type": "NodePort", "ports": [{"port": 80}]}));
        a.on_create(&mut old).await.unwrap();
        let ip = old["spec"]["clusterIP"].clone();
        let np = old["spec"]["ports"][0]["nodePort"].clone();
        // An apply that names neither: both kept, nothing taken or freed.
        let mut new = svc("a", json!({"type": "NodePort", "ports": [{"port": 80}]}));
        let (taken, freed) = a.on_update(&old, &mut new).await.unwrap();
        assert_eq!(
            (
                new["spec"]["clusterIP"].clone(),
                new["spec"]["ports"][0]["nodePort"].clone()
            ),
            (ip.clone(), np.clone())
        );
        assert!(taken.ips.is_empty() && taken.ports.is_empty(), "{taken:?}");
        assert!(freed.ips.is_empty() && freed.ports.is_empty(), "{freed:?}");
        // Back to ClusterIP: the node port goes, the address stays.
        let mut back = svc("a", json!({"ports": [{"port": 80}]}));
        let (_, freed) = a.on_update(&new, &mut back).await.unwrap();
        assert_eq!(back["spec"]["clusterIP"], ip);
        assert!(back["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(freed.ports, vec![np.as_u64().unwrap() as u16]);
        a.release(freed).await;
        assert!(a.taken_keys(PORTS_PREFIX).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn repair_gives_back_what_no_service_holds() {
        let dir = tempfile::tempdir().unwrap();
        let a = allocations(&dir);
        let mut kept = svc("kept", json!({"ports": [{"port": 80}]}));
        a.on_create(&mut kept).await.unwrap();
        let key = crate::registry::key(&SERVICES, Some("default"), "kept");
        a.store
            .create(&key, serde_json::to_vec(&kept).unwrap())
            .await
            .unwrap();
        let mut lost = svc("lost", json!({"type": "NodePort", "ports": [{"port": 80}]}));
        a.on_create(&mut lost).await.unwrap();
        // "lost" was never stored: its address and port leak until repaired — after three
        // repairs, as a create in flight looks the same for a moment.
        assert_eq!(a.repair().await.unwrap(), 0);
        assert_eq!(a.repair().await.unwrap(), 0);
        assert_eq!(a.repair().await.unwrap(), 2);
        assert_eq!(a.taken_keys(IPS_PREFIX).await.unwrap().len(), 1);
        assert!(a.taken_keys(PORTS_PREFIX).await.unwrap().is_empty());
        assert_eq!(a.repair().await.unwrap(), 0);
        // A stored service whose address is not recorded gets it back.
        let ip = kept["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        a.release(Taken {
            ips: vec![ip],
            ports: Vec::new(),
        })
        .await;
        assert!(a.taken_keys(IPS_PREFIX).await.unwrap().is_empty());
        assert_eq!(a.repair().await.unwrap(), 1);
        assert_eq!(a.taken_keys(IPS_PREFIX).await.unwrap().len(), 1);
    }
}
