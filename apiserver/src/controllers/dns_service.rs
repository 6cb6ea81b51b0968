//! The `kube-dns` service in `kube-system`: the address every `ClusterFirst` pod has as its
//! nameserver. Its cluster IP is fixed — the tenth address of the service range unless
//! `--cluster-dns` says otherwise — and it is made before anything else the controllers
//! do, so that no service created without a `clusterIP` is handed that address first (one
//! that asks for it gets "provided IP is already allocated", like any taken address).
//!
//! There are no DNS pods: every node's kubelet answers on its pod bridge's gateway
//! address, and its proxy sends the service's port 53 there rather than to endpoints. The
//! service therefore has no selector; its Endpoints and EndpointSlice, written here, list
//! those servers — one address per node with a pod CIDR, ready while the node is — so
//! that `kubectl get endpoints -n kube-system kube-dns` shows where queries are answered,
//! as it shows the CoreDNS pods in a Kubernetes cluster.

use std::net::Ipv4Addr;

use minik8s_api::resource::{ENDPOINT_SLICES, ENDPOINTS, NODES, SERVICES};
use serde_json::{Value, json};

use super::endpoints::SERVICE_NAME;
use super::owned::{create_if_absent, ensure, list_all, replace};
use crate::error::{ApiError, Result};
use crate::registry::Registry;
use crate::services::ServiceRanges;

pub const NAME: &str = "kube-dns";
pub const NAMESPACE: &str = "kube-system";
/// The `k8s-app` label of Kubernetes' DNS add-on (kube-dns and CoreDNS both use it).
pub const APP_LABEL: &str = "kube-dns";

/// The service's address when `--cluster-dns` is not given: the tenth of the range, as
/// kubeadm picks it (`10.96.0.10` for `10.96.0.0/16`).
pub fn default_ip(ranges: &ServiceRanges) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ranges.cluster_ips.network()) + 10)
}

/// The ports of Kubernetes' DNS add-on service, without `metrics` (nothing serves it).
fn ports() -> Value {
    json!([
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
    ])
}

/// The service as Kubernetes' add-on manifest has it (labels of the CoreDNS add-on),
/// without a selector.
pub fn desired_service(ip: Ipv4Addr) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {
                "k8s-app": APP_LABEL,
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "CoreDNS",
            }},
        "spec": {"clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()],
            "sessionAffinity": "None", "type": "ClusterIP", "ports": ports()},
    })
}

/// One node's DNS server: the gateway of its pod CIDR, and whether the node is ready.
fn node_server(node: &Value) -> Option<(String, Ipv4Addr, bool)> {
    let name = node["metadata"]["name"].as_str()?.to_string();
    let cidr: ipnet::Ipv4Net = node["spec"]["podCIDR"].as_str()?.parse().ok()?;
    let gateway = Ipv4Addr::from(u32::from(cidr.network()).saturating_add(1));
    let ready = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    Some((name, gateway, ready))
}

/// The Endpoints and EndpointSlice listing `servers` (node, address, ready), sorted.
pub fn desired_endpoints(servers: &[(String, Ipv4Addr, bool)]) -> (Value, Value) {
    let address =
        |(node, ip, _): &(String, Ipv4Addr, bool)| json!({"ip": ip.to_string(), "nodeName": node});
    let ready: Vec<Value> = servers.iter().filter(|s| s.2).map(address).collect();
    let not_ready: Vec<Value> = servers.iter().filter(|s| !s.2).map(address).collect();
    let subset_ports = json!([
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
    ]);
    let mut subset = json!({"ports": subset_ports});
    if !ready.is_empty() {
        subset["addresses"] = json!(ready);
    }
    if !not_ready.is_empty() {
        subset["notReadyAddresses"] = json!(not_ready);
    }
    let mut endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"k8s-app": APP_LABEL, "endpointslice.kubernetes.io/skip-mirror": "true"}},
    });
    // Kubernetes leaves `subsets` out when there is nothing in them.
    if !servers.is_empty() {
        endpoints["subsets"] = json!([subset]);
    }
    let slice_endpoints: Vec<Value> = servers
        .iter()
        .map(|(node, ip, ready)| {
            json!({"addresses": [ip.to_string()], "nodeName": node,
                "conditions": {"ready": ready, "serving": ready, "terminating": false}})
        })
        .collect();
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {SERVICE_NAME: NAME, "k8s-app": APP_LABEL}},
        "addressType": "IPv4",
        "endpoints": slice_endpoints,
        "ports": subset_ports,
    });
    (endpoints, slice)
}

/// Keeps the service (at `ip`), its Endpoints and its EndpointSlice as they should be.
pub async fn reconcile(registry: &Registry, ip: Ipv4Addr) -> Result<()> {
    let service = desired_service(ip);
    match registry.get(&SERVICES, Some(NAMESPACE), NAME).await {
        Err(ApiError::NotFound { .. }) => {
            create_if_absent(registry, &SERVICES, service).await?;
        }
        Err(e) => return Err(e),
        Ok(current) => {
            // The cluster IP cannot change in place; a service someone made under this
            // name with another address is left as it is and said so.
            if current["spec"]["clusterIP"] != json!(ip.to_string()) {
                tracing::warn!(have = %current["spec"]["clusterIP"], want = %ip,
                    "kube-system/kube-dns has another cluster IP than --cluster-dns; pods' nameserver may not answer");
            } else if current["spec"]["ports"] != ports() {
                let mut next = current.clone();
                next["spec"]["ports"] = ports();
                replace(registry, &SERVICES, next).await?;
            }
        }
    }
    let mut servers: Vec<(String, Ipv4Addr, bool)> = list_all(registry, &NODES)
        .await?
        .iter()
        .filter_map(node_server)
        .collect();
    servers.sort();
    let (endpoints, slice) = desired_endpoints(&servers);
    ensure(registry, &ENDPOINTS, endpoints, &["subsets"]).await?;
    ensure(registry, &ENDPOINT_SLICES, slice, &["endpoints", "ports"]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_address_is_the_tenth_of_the_range() {
        let mut ranges = ServiceRanges::default();
        assert_eq!(default_ip(&ranges), Ipv4Addr::new(10, 96, 0, 10));
        ranges.cluster_ips = "10.251.7.0/24".parse().unwrap();
        assert_eq!(default_ip(&ranges), Ipv4Addr::new(10, 251, 7, 10));
    }

    #[test]
    fn endpoints_list_each_node_gateway_ready_or_not() {
        let nodes = [
            json!({"metadata": {"name": "b"}, "spec": {"podCIDR": "10.244.1.0/24"},
                "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
            json!({"metadata": {"name": "a"}, "spec": {"podCIDR": "10.244.0.0/24"},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            json!({"metadata": {"name": "c"}, "spec": {}}),
        ];
        let mut servers: Vec<_> = nodes.iter().filter_map(node_server).collect();
        servers.sort();
        let (ep, slice) = desired_endpoints(&servers);
        assert_eq!(
            ep["subsets"][0]["addresses"],
            json!([{"ip": "10.244.0.1", "nodeName": "a"}])
        );
        assert_eq!(
            ep["subsets"][0]["notReadyAddresses"],
            json!([{"ip": "10.244.1.1", "nodeName": "b"}])
        );
        assert_eq!(slice["endpoints"].as_array().unwrap().len(), 2);
        assert_eq!(slice["endpoints"][1]["conditions"]["ready"], json!(false));
        let (ep, _) = desired_endpoints(&[]);
        assert_eq!(ep.get("subsets"), None);
    }
}
