//! Pod addresses: the kubelet picks each pause container's IPv4 address itself, from the
//! node's pod CIDR, round-robin as Kubernetes' host-local IPAM does — the next free
//! address after the last one handed out, wrapping around at the end of the range.
//!
//! Docker's own IPAM hands out the lowest free address, so a pod re-created right after
//! another one ended (a TaskSet retry) gets the very address the old one had. Round-robin
//! leaves a freed address unused for as long as the range allows, so a replacement pod
//! gets a new address, and a stale entry anywhere can never point at the wrong pod.
//!
//! * Free means: not the network address, the gateway or the broadcast address, not
//!   attached to the node's network in Docker (any container, the kubelet's or not), and
//!   not handed out to a pod whose pause container has not started yet.
//! * Allocations are serialized, so that pods starting at once never get the same
//!   address.
//! * The last address handed out is kept in `<root-dir>/ipam/last-reserved-ip`, replaced
//!   atomically, so that a restarted kubelet carries on after it instead of starting over
//!   at the bottom of the range.
//! * Whatever else gives out addresses on the network (a container started by hand takes
//!   Docker's lowest free one) can still race with an allocation: Docker then refuses to
//!   start the pause container ("Address already in use") and the pod worker asks for the
//!   next address.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ipnet::Ipv4Net;

use crate::runtime::{ContainerRuntime, RuntimeError, RuntimeResult};

/// Where the last address is kept, under the root directory.
const STATE_FILE: &str = "ipam/last-reserved-ip";

/// The next free address of `subnet` after `last`, wrapping around; never the network
/// address, `gateway` or the broadcast address, nor anything `taken`. Starts at the
/// bottom of the range when `last` is not in it. `None` when every address is taken.
pub fn next_free(
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    last: Option<Ipv4Addr>,
    taken: &HashSet<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let subnet = subnet.trunc();
    let first = u64::from(u32::from(subnet.network())) + 1;
    let end = u64::from(u32::from(subnet.broadcast()));
    // Usable addresses: [first, end).
    if first >= end {
        return None;
    }
    let size = end - first;
    let start = last
        .map(|l| u64::from(u32::from(l)))
        .filter(|l| (first..end).contains(l))
        .map_or(0, |l| l - first + 1);
    (0..size)
        .map(|i| Ipv4Addr::from((first + (start + i) % size) as u32))
        .find(|ip| *ip != gateway && !taken.contains(ip))
}

/// An address handed out and not yet attached: it counts as taken until dropped, which
/// the pod worker does once the pause container started (Docker holds it then) or could
/// not be started.
#[derive(Debug)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pending: Arc<Mutex<HashSet<Ipv4Addr>>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        lock(&self.pending).remove(&self.ip);
    }
}

fn lock(pending: &Mutex<HashSet<Ipv4Addr>>) -> std::sync::MutexGuard<'_, HashSet<Ipv4Addr>> {
    pending.lock().unwrap_or_else(|e| e.into_inner())
}

/// The pod addresses of one node's network.
#[derive(Debug)]
pub struct Ipam {
    network: String,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    state_file: PathBuf,
    /// The last address handed out; held through a whole allocation.
    last: tokio::sync::Mutex<Option<Ipv4Addr>>,
    pending: Arc<Mutex<HashSet<Ipv4Addr>>>,
}

impl Ipam {
    /// The allocator of `network` (with `subnet` and `gateway`), carrying on from the
    /// last address recorded under `root_dir`.
    pub fn new(network: &str, subnet: Ipv4Net, gateway: Ipv4Addr, root_dir: &Path) -> Ipam {
        let state_file = root_dir.join(STATE_FILE);
        let last = std::fs::read_to_string(&state_file)
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            .filter(|ip| subnet.contains(ip));
        Ipam {
            network: network.to_string(),
            subnet,
            gateway,
            state_file,
            last: tokio::sync::Mutex::new(last),
            pending: Arc::default(),
        }
    }

    pub fn network(&self) -> &str {
        &self.network
    }

    /// Hands out the next free address of the network.
    pub async fn allocate(&self, runtime: &dyn ContainerRuntime) -> RuntimeResult<Lease> {
        let mut last = self.last.lock().await;
        // Read before Docker is asked: an address whose lease is dropped meanwhile is
        // attached by then, and in Docker's answer.
        let mut taken = lock(&self.pending).clone();
        taken.extend(runtime.network_addresses(&self.network).await?);
        let ip = next_free(self.subnet, self.gateway, *last, &taken).ok_or_else(|| {
            RuntimeError::failed(
                format!("allocating a pod address on {}", self.network),
                format!("every address of {} is in use", self.subnet),
            )
        })?;
        *last = Some(ip);
        if let Err(e) = self.save(ip) {
            // Only a restarted kubelet would miss it: it would start over lower down.
            tracing::warn!(file = %self.state_file.display(), error = %e,
                "recording the last pod address");
        }
        lock(&self.pending).insert(ip);
        Ok(Lease {
            ip,
            pending: self.pending.clone(),
        })
    }

    /// Replaces the state file by a rename, so that it is never seen half-written.
    fn save(&self, ip: Ipv4Addr) -> std::io::Result<()> {
        if let Some(dir) = self.state_file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.state_file.with_extension("tmp");
        std::fs::write(&tmp, format!("{ip}\n"))?;
        std::fs::rename(&tmp, &self.state_file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{ContainerConfig, FakeRuntime, NetworkMode};

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn net() -> Ipv4Net {
        "10.244.3.0/24".parse().unwrap()
    }

    fn taken(list: &[&str]) -> HashSet<Ipv4Addr> {
        list.iter().map(|s| ip(s)).collect()
    }

    const GW: &str = "10.244.3.1";

    #[test]
    fn starts_at_the_bottom_after_the_gateway() {
        assert_eq!(
            next_free(net(), ip(GW), None, &taken(&[])),
            Some(ip("10.244.3.2"))
        );
        // A last address outside the range (the pod CIDR changed) is ignored.
        assert_eq!(
            next_free(net(), ip(GW), Some(ip("10.1.0.9")), &taken(&[])),
            Some(ip("10.244.3.2"))
        );
    }

    #[test]
    fn goes_on_after_the_last_address_even_when_lower_ones_are_free() {
        assert_eq!(
            next_free(net(), ip(GW), Some(ip("10.244.3.7")), &taken(&[])),
            Some(ip("10.244.3.8"))
        );
        assert_eq!(
            next_free(
                net(),
                ip(GW),
                Some(ip("10.244.3.7")),
                &taken(&["10.244.3.8", "10.244.3.9"])
            ),
            Some(ip("10.244.3.10"))
        );
    }

    #[test]
    fn wraps_around_skipping_broadcast_network_and_gateway() {
        assert_eq!(
            next_free(net(), ip(GW), Some(ip("10.244.3.254")), &taken(&[])),
            Some(ip("10.244.3.2"))
        );
        assert_eq!(
            next_free(
                net(),
                ip(GW),
                Some(ip("10.244.3.253")),
                &taken(&["10.244.3.254", "10.244.3.2"])
            ),
            Some(ip("10.244.3.3"))
        );
        // A gateway elsewhere in the range is skipped too.
        assert_eq!(
            next_free(net(), ip("10.244.3.8"), Some(ip("10.244.3.7")), &taken(&[])),
            Some(ip("10.244.3.9"))
        );
    }

    #[test]
    fn the_last_address_itself_comes_last() {
        let all_but: HashSet<Ipv4Addr> = (2..=254)
            .map(|n| Ipv4Addr::new(10, 244, 3, n))
            .filter(|a| *a != ip("10.244.3.50"))
            .collect();
        assert_eq!(
            next_free(net(), ip(GW), Some(ip("10.244.3.50")), &all_but),
            Some(ip("10.244.3.50"))
        );
        let mut full = all_but;
        full.insert(ip("10.244.3.50"));
        assert_eq!(
            next_free(net(), ip(GW), Some(ip("10.244.3.50")), &full),
            None
        );
    }

    #[test]
    fn tiny_ranges() {
        let n30: Ipv4Net = "10.0.0.0/30".parse().unwrap();
        assert_eq!(
            next_free(n30, ip("10.0.0.1"), None, &taken(&[])),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            next_free(n30, ip("10.0.0.1"), Some(ip("10.0.0.2")), &taken(&[])),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            next_free(n30, ip("10.0.0.1"), None, &taken(&["10.0.0.2"])),
            None
        );
        let n31: Ipv4Net = "10.0.0.0/31".parse().unwrap();
        assert_eq!(next_free(n31, ip("10.0.0.1"), None, &taken(&[])), None);
    }

    async fn attach(fake: &FakeRuntime, name: &str, at: Ipv4Addr) {
        let mut c = ContainerConfig::new(name, "img", NetworkMode::Network("net".into()));
        c.ip = Some(at);
        let id = fake.create_container(&c).await.unwrap();
        fake.start_container(&id).await.unwrap();
    }

    #[tokio::test]
    async fn allocations_skip_attached_and_pending_addresses_and_survive_a_restart() {
        let root = tempfile::tempdir().unwrap();
        let fake = FakeRuntime::new();
        fake.add_image("img");
        let ipam = Ipam::new("net", net(), ip(GW), root.path());
        let a = ipam.allocate(&fake).await.unwrap();
        assert_eq!(a.ip, ip("10.244.3.2"));
        // Not started yet: still pending, so never handed out twice.
        let b = ipam.allocate(&fake).await.unwrap();
        assert_eq!(b.ip, ip("10.244.3.3"));
        attach(&fake, "other", ip("10.244.3.4")).await;
        let c = ipam.allocate(&fake).await.unwrap();
        assert_eq!(c.ip, ip("10.244.3.5"));
        drop((a, b, c));
        // Freed addresses are not reused while higher ones are free.
        assert_eq!(ipam.allocate(&fake).await.unwrap().ip, ip("10.244.3.6"));
        assert_eq!(
            std::fs::read_to_string(root.path().join(STATE_FILE)).unwrap(),
            "10.244.3.6\n"
        );
        // A new kubelet carries on from there.
        let again = Ipam::new("net", net(), ip(GW), root.path());
        assert_eq!(again.allocate(&fake).await.unwrap().ip, ip("10.244.3.7"));
        // On another range, the record is ignored.
        let other = Ipam::new(
            "net",
            "10.9.0.0/24".parse().unwrap(),
            ip("10.9.0.1"),
            root.path(),
        );
        assert_eq!(other.allocate(&fake).await.unwrap().ip, ip("10.9.0.2"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_allocations_never_collide() {
        let root = tempfile::tempdir().unwrap();
        let fake = FakeRuntime::new();
        let ipam = Arc::new(Ipam::new("net", net(), ip(GW), root.path()));
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let (ipam, fake) = (ipam.clone(), fake.clone());
                tokio::spawn(async move { ipam.allocate(&fake).await.unwrap() })
            })
            .collect();
        let mut leases = Vec::new();
        for t in tasks {
            leases.push(t.await.unwrap());
        }
        let distinct: HashSet<Ipv4Addr> = leases.iter().map(|l| l.ip).collect();
        assert_eq!(distinct.len(), 40);
    }
}
