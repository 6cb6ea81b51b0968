//! What another cluster left in Docker. A cluster stopped with its pods running (`minik8s
//! up` interrupted, a kubelet stopped, a test run killed), or whose data directory was
//! removed, leaves its pod network behind; a new cluster's API server may give this node
//! the same pod CIDR, and Docker refuses a second network whose range overlaps.
//!
//! Before making its pod network, the kubelet looks at every network that overlaps its
//! pod CIDR:
//!
//! * this node's own network is left to [`ContainerRuntime::ensure_network`] (adopted as
//!   it is, or replaced when its range changed and nothing is attached);
//! * a MiniK8s network of another node (labelled [`labels::NODE`], or named `minik8s-*`)
//!   with no running container is removed, with that node's stopped containers, which
//!   could never start again without it;
//! * one with running containers is not touched: the kubelet stops with
//!   [`Error::PodCidrInUse`], which names the network, the containers and the command
//!   that removes them (`minik8s reset`);
//! * a network that is not MiniK8s' stops it with [`Error::PodCidrOverlaps`].
//!
//! Nothing is removed unless every overlapping network can be.

use ipnet::Ipv4Net;

use crate::error::{Error, PodCidrInUse, Result};
use crate::labels;
use crate::runtime::{ContainerRuntime, ContainerState, NetworkConfig, NetworkInfo};

/// The prefix of every pod network's name (see [`crate::network_name`]).
pub const NETWORK_PREFIX: &str = "minik8s-";

/// Whether two ranges share an address.
pub fn overlap(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The node a MiniK8s network belongs to; `None` for a network MiniK8s did not make.
pub fn network_node(network: &NetworkInfo) -> Option<String> {
    network.labels.get(labels::NODE).cloned().or_else(|| {
        network
            .name
            .strip_prefix(NETWORK_PREFIX)
            .map(str::to_string)
    })
}

/// The command that removes what MiniK8s left on this machine, for a kubelet on Docker's
/// socket `docker_socket` (the default one when `None`).
pub fn reset_command(docker_socket: Option<&str>) -> String {
    match docker_socket {
        Some(socket) => format!("minik8s reset --docker-host {socket}"),
        None => "minik8s reset".to_string(),
    }
}

/// Clears the way for `network` (this node's pod network, about to be made): removes the
/// networks of other MiniK8s nodes that overlap it and that nothing runs on, with their
/// nodes' stopped containers. Returns the names of the networks removed.
pub async fn clear_pod_cidr(
    runtime: &dyn ContainerRuntime,
    network: &NetworkConfig,
    node: &str,
    reset_command: &str,
) -> Result<Vec<String>> {
    let overlapping: Vec<NetworkInfo> = runtime
        .list_networks()
        .await?
        .into_iter()
        .filter(|n| n.name != network.name)
        .filter(|n| n.subnets.iter().any(|s| overlap(*s, network.subnet)))
        .collect();
    // First decide, then remove: nothing goes unless all of it may.
    let mut removable = Vec::new();
    for other in overlapping {
        let subnet = other
            .subnets
            .iter()
            .find(|s| overlap(**s, network.subnet))
            .map_or_else(String::new, ToString::to_string);
        let Some(owner) = network_node(&other) else {
            return Err(Error::PodCidrOverlaps {
                node: node.to_string(),
                cidr: network.subnet,
                network: other.name,
                subnet,
            });
        };
        if !other.containers.is_empty() {
            return Err(Error::PodCidrInUse(Box::new(PodCidrInUse {
                node: node.to_string(),
                cidr: network.subnet,
                network: other.name,
                subnet,
                owner,
                containers: other.containers,
                reset: reset_command.to_string(),
            })));
        }
        removable.push((other.name, owner, subnet));
    }
    let mut removed = Vec::new();
    for (name, owner, subnet) in removable {
        // The owner's stopped containers could not start again without their network.
        for container in runtime
            .list_summaries(&labels::node_selector(&owner))
            .await?
            .into_iter()
            .filter(|c| c.state != ContainerState::Running)
        {
            runtime.remove_container(&container.id).await?;
            tracing::info!(container = %container.name, node = %owner,
                "removed a stopped container of another node, whose network is in the way");
        }
        runtime.remove_network(&name).await?;
        tracing::warn!(network = %name, %subnet, node = %owner, pod_cidr = %network.subnet,
            "removed the pod network of another MiniK8s node: it held this node's pod CIDR \
             and nothing ran on it");
        removed.push(name);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::labels::{ContainerKey, Role};
    use crate::runtime::{ContainerConfig, FakeRuntime, NetworkMode, RuntimeCall};

    fn pod_network(node: &str, subnet: &str) -> NetworkConfig {
        let subnet: Ipv4Net = subnet.parse().unwrap();
        NetworkConfig {
            name: crate::network_name(node),
            subnet,
            gateway: crate::node::gateway(&subnet),
            labels: BTreeMap::from([(labels::NODE.to_string(), node.to_string())]),
        }
    }

    /// A pause container of `node` on its pod network, started or not.
    async fn sandbox(runtime: &FakeRuntime, node: &str, pod: &str, running: bool) -> String {
        let key = ContainerKey {
            namespace: "default".into(),
            pod_name: pod.into(),
            pod_uid: format!("uid-{pod}"),
            container: labels::SANDBOX_NAME.into(),
            role: Role::Sandbox,
            attempt: 0,
        };
        let mut config = ContainerConfig::new(
            key.docker_name(),
            "pause",
            NetworkMode::Network(crate::network_name(node)),
        );
        config.labels = key.labels(node);
        runtime.add_image("pause");
        let id = runtime.create_container(&config).await.unwrap();
        if running {
            runtime.start_container(&id).await.unwrap();
        }
        key.docker_name()
    }

    #[tokio::test]
    async fn an_idle_network_of_another_node_goes_with_its_stopped_containers() {
        let runtime = FakeRuntime::new();
        runtime
            .ensure_network(&pod_network("old", "10.244.0.0/24"))
            .await
            .unwrap();
        sandbox(&runtime, "old", "web", false).await;
        let elsewhere = sandbox(&runtime, "elsewhere", "db", false).await;
        let mine = pod_network("new", "10.244.0.0/24");
        assert!(runtime.ensure_network(&mine).await.is_err());

        let removed = clear_pod_cidr(&runtime, &mine, "new", "minik8s reset")
            .await
            .unwrap();
        assert_eq!(removed, ["minik8s-old"]);
        assert!(runtime.network("minik8s-old").is_none());
        let left: Vec<String> = runtime.containers().into_iter().map(|c| c.name).collect();
        assert_eq!(left, [elsewhere], "only the old node's containers go");
        runtime.ensure_network(&mine).await.unwrap();
    }

    #[tokio::test]
    async fn running_pods_of_another_node_are_named_with_the_command_that_removes_them() {
        let runtime = FakeRuntime::new();
        runtime
            .ensure_network(&pod_network("old", "10.244.0.0/24"))
            .await
            .unwrap();
        let running = sandbox(&runtime, "old", "web", true).await;
        sandbox(&runtime, "old", "db", false).await;
        let mine = pod_network("new", "10.244.0.0/24");
        let error = clear_pod_cidr(&runtime, &mine, "new", "minik8s reset")
            .await
            .unwrap_err();
        let Error::PodCidrInUse(held) = &error else {
            panic!("{error}");
        };
        assert_eq!(
            (held.network.as_str(), held.owner.as_str()),
            ("minik8s-old", "old")
        );
        assert_eq!(held.containers, std::slice::from_ref(&running));
        let message = error.to_string();
        assert!(message.contains("minik8s-old"), "{message}");
        assert!(message.contains(&running), "{message}");
        assert!(message.contains("`minik8s reset`"), "{message}");
        // Nothing was touched.
        assert!(runtime.network("minik8s-old").is_some());
        assert_eq!(runtime.containers().len(), 2);
        assert!(
            !runtime
                .calls()
                .iter()
                .any(|c| matches!(c, RuntimeCall::Remove(_) | RuntimeCall::RemoveNetwork(_)))
        );
    }

    #[tokio::test]
    async fn a_network_that_is_not_ours_is_named_and_left_alone() {
        let runtime = FakeRuntime::new();
        runtime
            .ensure_network(&NetworkConfig {
                name: "office-vpn".into(),
                subnet: "10.244.0.0/16".parse().unwrap(),
                gateway: "10.244.0.1".parse().unwrap(),
                labels: BTreeMap::new(),
            })
            .await
            .unwrap();
        let mine = pod_network("new", "10.244.3.0/24");
        let error = clear_pod_cidr(&runtime, &mine, "new", "minik8s reset")
            .await
            .unwrap_err();
        assert!(
            matches!(&error, Error::PodCidrOverlaps { network, subnet, .. }
                if network == "office-vpn" && subnet == "10.244.0.0/16"),
            "{error}"
        );
        assert!(error.to_string().contains("cluster CIDR"), "{error}");
        assert!(runtime.network("office-vpn").is_some());
    }

    #[tokio::test]
    async fn the_own_network_and_ranges_apart_are_left_to_ensure_network() {
        let runtime = FakeRuntime::new();
        runtime
            .ensure_network(&pod_network("new", "10.244.0.0/24"))
            .await
            .unwrap();
        runtime
            .ensure_network(&pod_network("other", "10.244.1.0/24"))
            .await
            .unwrap();
        let mine = pod_network("new", "10.244.0.0/24");
        let removed = clear_pod_cidr(&runtime, &mine, "new", "minik8s reset")
            .await
            .unwrap();
        assert!(removed.is_empty());
        assert!(runtime.network("minik8s-new").is_some());
        assert!(runtime.network("minik8s-other").is_some());
    }

    #[test]
    fn the_reset_command_names_a_private_docker() {
        assert_eq!(reset_command(None), "minik8s reset");
        assert_eq!(
            reset_command(Some("unix:///run/d.sock")),
            "minik8s reset --docker-host unix:///run/d.sock"
        );
    }
}
