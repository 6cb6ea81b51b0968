//! The `kubernetes` service in `default`: how pods find the API server. Its cluster IP is
//! the first of the service range; its Endpoints and EndpointSlice hold the address this
//! API server advertises, kept current by the API server that runs the controllers.

use std::net::SocketAddr;

use minik8s_api::resource::{ENDPOINT_SLICES, ENDPOINTS, SERVICES};
use serde_json::json;

use super::endpoints::SERVICE_NAME;
use super::owned::{create_if_absent, ensure, replace};
use crate::error::{ApiError, Result};
use crate::registry::Registry;

pub const NAME: &str = "kubernetes";
const NAMESPACE: &str = "default";
const PORT_NAME: &str = "https";
/// The service port clients dial, as in every Kubernetes cluster.
const SERVICE_PORT: u16 = 443;

pub async fn reconcile(registry: &Registry, advertise: SocketAddr) -> Result<()> {
    let first_ip = registry.allocations().ranges().first_ip();
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": first_ip.to_string(), "sessionAffinity": "None", "type": "ClusterIP",
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "protocol": "TCP",
                "targetPort": advertise.port()}]},
    });
    match registry.get(&SERVICES, Some(NAMESPACE), NAME).await {
        Err(ApiError::NotFound { .. }) => {
            create_if_absent(registry, &SERVICES, service).await?;
        }
        Err(e) => return Err(e),
        Ok(current) => {
            let want_target = json!(advertise.port());
            if current["spec"]["ports"][0]["targetPort"] != want_target
                || current["spec"]["ports"][0]["port"] != json!(SERVICE_PORT)
            {
                let mut next = current.clone();
                next["spec"]["ports"] = service["spec"]["ports"].clone();
                replace(registry, &SERVICES, next).await?;
            }
        }
    }
    let ip = advertise.ip().to_string();
    let port = json!([{"name": PORT_NAME, "port": advertise.port(), "protocol": "TCP"}]);
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": ip}], "ports": port}],
    });
    ensure(registry, &ENDPOINTS, endpoints, &["subsets"]).await?;
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {SERVICE_NAME: NAME}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": port,
    });
    ensure(registry, &ENDPOINT_SLICES, slice, &["endpoints", "ports"]).await
}
