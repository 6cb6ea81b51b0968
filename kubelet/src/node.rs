//! The node: registering it, its heartbeat (the `Ready` condition, renewed by a status
//! patch every interval), and waiting for the pod CIDR the API server assigns to it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use minik8s_client::{Api, Client, Patch};
use serde_json::json;

use crate::config::KUBELET_VERSION;
use crate::pod::status::time;
use crate::runtime::ContainerRuntime;
use crate::{Error, KubeletConfig, Result};

/// What the node reports about itself.
#[derive(Clone, Debug)]
pub struct NodeFacts {
    pub name: String,
    pub internal_ip: IpAddr,
    pub hostname: String,
    pub port: u16,
    pub runtime_version: String,
    pub cpus: u64,
    pub memory_kib: u64,
    pub max_pods: u32,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The address other machines reach this one on: the source address of the default
/// route (a UDP "connection" sends nothing), else loopback.
pub fn detect_host_ip() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.connect("192.0.2.1:9")?;
        Ok(socket.local_addr()?.ip())
    };
    probe()
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn memory_kib() -> u64 {
    read("/proc/meminfo")
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn os_image() -> String {
    read("/etc/os-release")
        .and_then(|r| {
            r.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into())
}

fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl NodeFacts {
    pub fn gather(config: &KubeletConfig, runtime_version: String, port: u16) -> NodeFacts {
        NodeFacts {
            name: config.node_name.clone(),
            internal_ip: config.node_ip.unwrap_or_else(detect_host_ip),
            hostname: read("/proc/sys/kernel/hostname").unwrap_or_else(|| config.node_name.clone()),
            port,
            runtime_version,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            memory_kib: memory_kib(),
            max_pods: config.max_pods,
        }
    }

    fn resources(&self) -> BTreeMap<String, Quantity> {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(self.cpus.to_string())),
            (
                "memory".to_string(),
                Quantity(format!("{}Ki", self.memory_kib)),
            ),
            ("pods".to_string(), Quantity(self.max_pods.to_string())),
        ])
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), self.name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), architecture().to_string()),
        ])
    }

    /// The node's status at `now`; transition times are kept from `old` for conditions
    /// that did not change. With `runtime_down` (why the container runtime does not
    /// answer) the node is not `Ready`, as Kubernetes reports it, so that no new pods are
    /// scheduled to it.
    pub fn status(
        &self,
        old: Option<&NodeStatus>,
        now: Timestamp,
        runtime_down: Option<&str>,
    ) -> NodeStatus {
        let condition = |kind: &str, status: &str, reason: &str, message: &str| {
            let previous = old
                .and_then(|o| o.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == kind));
            let last_transition_time = match previous {
                Some(p) if p.status == status && p.last_transition_time.is_some() => {
                    p.last_transition_time.clone()
                }
                _ => Some(time(now)),
            };
            NodeCondition {
                type_: kind.into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_heartbeat_time: Some(time(now)),
                last_transition_time,
            }
        };
        let boot_id = read("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let machine_id = read("/etc/machine-id").unwrap_or_else(|| boot_id.clone());
        NodeStatus {
            capacity: Some(self.resources()),
            allocatable: Some(self.resources()),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: self.internal_ip.to_string(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: self.hostname.clone(),
                },
            ]),
            conditions: Some(vec![
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                match runtime_down {
                    None => condition(
                        "Ready",
                        "True",
                        "KubeletReady",
                        "kubelet is posting ready status",
                    ),
                    Some(error) => condition(
                        "Ready",
                        "False",
                        "KubeletNotReady",
                        &format!("container runtime is down: {error}"),
                    ),
                },
            ]),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: i32::from(self.port),
                }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: architecture().into(),
                boot_id,
                container_runtime_version: self.runtime_version.clone(),
                kernel_version: read("/proc/sys/kernel/osrelease").unwrap_or_default(),
                kube_proxy_version: String::new(),
                kubelet_version: KUBELET_VERSION.into(),
                machine_id: machine_id.clone(),
                operating_system: "linux".into(),
                os_image: os_image(),
                system_uuid: read("/sys/class/dmi/id/product_uuid").unwrap_or(machine_id),
                ..NodeSystemInfo::default()
            }),
            ..NodeStatus::default()
        }
    }
}

/// Registers and heartbeats one node.
pub struct NodeAgent {
    api: Api<Node>,
    facts: NodeFacts,
    /// Asked before every heartbeat whether it answers.
    runtime: Option<Arc<dyn ContainerRuntime>>,
}

/// How long the container runtime may take to answer a heartbeat's check.
const RUNTIME_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

impl NodeAgent {
    pub fn new(client: Client, facts: NodeFacts) -> NodeAgent {
        NodeAgent {
            api: Api::all(client),
            facts,
            runtime: None,
        }
    }

    /// Reports the node not `Ready` while `runtime` does not answer.
    pub fn with_runtime(mut self, runtime: Arc<dyn ContainerRuntime>) -> NodeAgent {
        self.runtime = Some(runtime);
        self
    }

    /// Why the container runtime does not answer, if it does not.
    async fn runtime_down(&self) -> Option<String> {
        let runtime = self.runtime.as_ref()?;
        match tokio::time::timeout(RUNTIME_CHECK_TIMEOUT, runtime.version()).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {RUNTIME_CHECK_TIMEOUT:?}")),
        }
    }

    pub fn facts(&self) -> &NodeFacts {
        &self.facts
    }

    /// Creates the node, or takes over the existing one of this name, and sends its
    /// status.
    pub async fn register(&self) -> Result<Node> {
        let now = Timestamp::now();
        let node = Node {
            metadata: ObjectMeta {
                name: Some(self.facts.name.clone()),
                labels: Some(self.facts.labels()),
                ..ObjectMeta::default()
            },
            status: Some(self.facts.status(None, now, None)),
            ..Node::default()
        };
        let existing = match self.api.create(&node).await {
            Ok(created) => {
                tracing::info!(node = %self.facts.name, "registered the node");
                created
            }
            Err(e) if e.is_already_exists() => {
                tracing::info!(node = %self.facts.name, "the node exists; taking it over");
                let labels = Patch::Merge(json!({"metadata": {"labels": self.facts.labels()}}));
                self.api.patch(&self.facts.name, &labels).await?
            }
            Err(e) => return Err(e.into()),
        };
        self.heartbeat(&existing).await
    }

    /// Sends the status now; returns the updated node.
    pub async fn heartbeat(&self, current: &Node) -> Result<Node> {
        let down = self.runtime_down().await;
        let was_down = current
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.reason.as_deref() == Some("KubeletNotReady"));
        match &down {
            Some(error) if !was_down => {
                tracing::warn!(node = %self.facts.name, %error,
                    "the container runtime is down: the node is not ready");
            }
            None if was_down => {
                tracing::info!(node = %self.facts.name, "the container runtime is back: ready");
            }
            _ => {}
        }
        let status = self
            .facts
            .status(current.status.as_ref(), Timestamp::now(), down.as_deref());
        let patch = Patch::Merge(json!({ "status": status }));
        Ok(self.api.patch_status(&self.facts.name, &patch).await?)
    }

    /// Heartbeats every `interval` forever, registering again if the node was deleted.
    pub async fn heartbeat_loop(&self, mut node: Node, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            let result = match self.heartbeat(&node).await {
                Err(Error::Api(e)) if e.is_not_found() => {
                    tracing::warn!(node = %self.facts.name, "the node was deleted; registering again");
                    self.register().await
                }
                other => other,
            };
            match result {
                Ok(updated) => node = updated,
                Err(e) => tracing::warn!(node = %self.facts.name, error = %e, "node heartbeat"),
            }
        }
    }

    /// Waits for the API server to give the node a pod CIDR.
    pub async fn wait_for_pod_cidr(&self, timeout: Duration) -> Result<Ipv4Net> {
        let start = tokio::time::Instant::now();
        let mut next_log = start;
        loop {
            match self.api.get_opt(&self.facts.name).await {
                Ok(Some(node)) => {
                    if let Some(cidr) = node
                        .spec
                        .as_ref()
                        .and_then(|s| s.pod_cidr.clone())
                        .filter(|c| !c.is_empty())
                    {
                        let net: Ipv4Net = cidr.parse().map_err(|_| Error::BadPodCidr {
                            node: self.facts.name.clone(),
                            cidr: cidr.clone(),
                        })?;
                        return Ok(net.trunc());
                    }
                }
                Ok(None) => {
                    tracing::warn!(node = %self.facts.name, "the node is gone; registering again");
                    self.register().await?;
                }
                Err(e) => tracing::warn!(node = %self.facts.name, error = %e, "reading the node"),
            }
            if start.elapsed() >= timeout {
                return Err(Error::NoPodCidr {
                    node: self.facts.name.clone(),
                    waited: timeout,
                });
            }
            if tokio::time::Instant::now() >= next_log {
                tracing::info!(node = %self.facts.name,
                    "waiting for the API server to assign spec.podCIDR to this node");
                next_log = tokio::time::Instant::now() + Duration::from_secs(5);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The gateway of a pod network: its first address.
pub fn gateway(net: &Ipv4Net) -> Ipv4Addr {
    let base = u32::from(net.network());
    Ipv4Addr::from(base.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reports_ready_and_keeps_transition_times() {
        let facts = NodeFacts {
            name: "n1".into(),
            internal_ip: "192.168.1.5".parse().unwrap(),
            hostname: "host".into(),
            port: 10250,
            runtime_version: "docker://20.10.24".into(),
            cpus: 4,
            memory_kib: 1024,
            max_pods: 110,
        };
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let s = facts.status(None, t0, None);
        let ready = |s: &NodeStatus| {
            s.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == "Ready")
                .cloned()
                .unwrap()
        };
        assert_eq!(ready(&s).status, "True");
        assert_eq!(s.capacity.as_ref().unwrap()["memory"].0, "1024Ki");
        assert_eq!(
            s.daemon_endpoints
                .as_ref()
                .unwrap()
                .kubelet_endpoint
                .as_ref()
                .unwrap()
                .port,
            10250
        );
        let info = s.node_info.as_ref().unwrap();
        assert_eq!(info.container_runtime_version, "docker://20.10.24");
        assert!(info.kubelet_version.starts_with("v1.33.0-minik8s."));
        let t1 = Timestamp::from_second(1_700_000_010).unwrap();
        let s2 = facts.status(Some(&s), t1, None);
        assert_eq!(
            ready(&s2).last_transition_time,
            ready(&s).last_transition_time
        );
        assert_eq!(ready(&s2).last_heartbeat_time, Some(time(t1)));
        // Docker away: not ready, since then.
        let t2 = Timestamp::from_second(1_700_000_020).unwrap();
        let down = facts.status(Some(&s2), t2, Some("connection refused"));
        assert_eq!(ready(&down).status, "False");
        assert_eq!(ready(&down).reason.as_deref(), Some("KubeletNotReady"));
        assert_eq!(
            ready(&down).message.as_deref(),
            Some("container runtime is down: connection refused")
        );
        assert_eq!(ready(&down).last_transition_time, Some(time(t2)));
        assert_eq!(
            gateway(&"10.1.2.0/24".parse().unwrap()),
            Ipv4Addr::new(10, 1, 2, 1)
        );
    }
}
