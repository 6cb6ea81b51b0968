//! Service environment variables: every container learns the services of its namespace
//! that exist when it is created, Docker-links style (`REDIS_SERVICE_HOST`,
//! `REDIS_PORT_6379_TCP_ADDR`, …), exactly as Kubernetes' kubelet writes them
//! (`pkg/kubelet/envvars` and `getServiceEnvVarMap`).
//!
//! The services come from a cache of every namespace's Services that one watch keeps
//! current, so that starting a container costs no request to the API server.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use minik8s_client::{Api, Client, ListParams, WatcherEvent, watcher};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The services of the `default` namespace whose variables every pod gets, even with
/// `enableServiceLinks: false` (Kubernetes' `masterServices`).
const MASTER_SERVICES: &[&str] = &["kubernetes"];

/// How long a container start waits for the first list of services before it fails
/// (and is retried), as Kubernetes refuses to build an environment without it.
const FIRST_LIST_WAIT: Duration = Duration::from_secs(5);

/// Kubernetes' words when the services were never listed.
pub const NOT_SYNCED: &str =
    "services have not yet been read at least once, cannot construct envvars";

/// `my-svc` → `MY_SVC`.
fn env_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

/// Whether the service has a cluster IP: not headless, not ExternalName.
fn has_cluster_ip(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// `ip:port`, with an IPv6 address in brackets (Go's `net.JoinHostPort`).
fn host_port(ip: &str, port: i32) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// The variables of these services, in Kubernetes' order for each service
/// (`envvars.FromServices`): `_SERVICE_HOST`, `_SERVICE_PORT`, one
/// `_SERVICE_PORT_{NAME}` per named port, then the Docker-link ones: `_PORT` for the
/// first port and `_PORT_{PORT}_{PROTO}` with `_PROTO`, `_PORT`, `_ADDR` for each.
pub fn from_services<'a>(services: impl IntoIterator<Item = &'a Service>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for service in services {
        if !has_cluster_ip(service) {
            continue;
        }
        let Some(spec) = service.spec.as_ref() else {
            continue;
        };
        let ports = spec.ports.as_deref().unwrap_or_default();
        let (Some(ip), Some(first)) = (spec.cluster_ip.as_deref(), ports.first()) else {
            continue;
        };
        let prefix = env_name(service.metadata.name.as_deref().unwrap_or_default());
        out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        let service_port = format!("{prefix}_SERVICE_PORT");
        out.push((service_port.clone(), first.port.to_string()));
        for port in ports {
            if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!("{service_port}_{}", env_name(name)),
                    port.port.to_string(),
                ));
            }
        }
        for (i, port) in ports.iter().enumerate() {
            let protocol = port
                .protocol
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or("TCP");
            let lower = protocol.to_lowercase();
            let url = format!("{lower}://{}", host_port(ip, port.port));
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let port_prefix = format!("{prefix}_PORT_{}_{}", port.port, protocol.to_uppercase());
            out.push((port_prefix.clone(), url));
            out.push((format!("{port_prefix}_PROTO"), lower));
            out.push((format!("{port_prefix}_PORT"), port.port.to_string()));
            out.push((format!("{port_prefix}_ADDR"), ip.to_string()));
        }
    }
    out
}

/// The service variables of a container in `namespace`: the `kubernetes` service of
/// `default` always, and every service of the namespace with a cluster IP when
/// `links` (`enableServiceLinks`, true unless set false). A service of the namespace
/// that shares a master service's name takes its place. Services go in name order.
pub fn for_namespace<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    namespace: &str,
    links: bool,
) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for service in services {
        if !has_cluster_ip(service) {
            continue;
        }
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let ns = service.metadata.namespace.as_deref().unwrap_or("default");
        if ns == "default" && MASTER_SERVICES.contains(&name) {
            chosen.entry(name).or_insert(service);
        } else if ns == namespace && links {
            chosen.insert(name, service);
        }
    }
    from_services(chosen.into_values())
}

type Key = (String, String);

/// Every namespace's Services, kept current by one watch.
pub struct ServiceCache {
    services: Mutex<HashMap<Key, Service>>,
    listed: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ServiceCache {
    /// A cache that follows the API server's services.
    pub fn follow(client: Client) -> Arc<ServiceCache> {
        let cache = Self::fixed(Vec::new());
        cache.listed.send_replace(false);
        let task = tokio::spawn(follow(Arc::downgrade(&cache), client));
        *cache.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        cache
    }

    /// A cache of these services that never changes (no API server, or a test).
    pub fn fixed(services: Vec<Service>) -> Arc<ServiceCache> {
        let cache = ServiceCache {
            services: Mutex::new(HashMap::new()),
            listed: watch::channel(true).0,
            task: Mutex::new(None),
        };
        cache.replace(services);
        Arc::new(cache)
    }

    fn key(service: &Service) -> Key {
        (
            service
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            service.metadata.name.clone().unwrap_or_default(),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Service>> {
        self.services.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn replace(&self, services: Vec<Service>) {
        let mut map = self.lock();
        map.clear();
        for s in services {
            map.insert(Self::key(&s), s);
        }
    }

    fn apply(&self, service: Service) {
        self.lock().insert(Self::key(&service), service);
    }

    fn remove(&self, service: &Service) {
        self.lock().remove(&Self::key(service));
    }

    /// The service variables of a container in `namespace` (see [`for_namespace`]);
    /// waits a little for the first list, and fails as Kubernetes does without it.
    pub async fn env(&self, namespace: &str, links: bool) -> Result<Vec<(String, String)>, String> {
        if !*self.listed.borrow() {
            let mut rx = self.listed.subscribe();
            let listed = tokio::time::timeout(FIRST_LIST_WAIT, rx.wait_for(|l| *l)).await;
            if !matches!(listed, Ok(Ok(_))) {
                return Err(NOT_SYNCED.to_string());
            }
        }
        let map = self.lock();
        Ok(for_namespace(map.values(), namespace, links))
    }
}

impl Drop for ServiceCache {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

async fn follow(cache: Weak<ServiceCache>, client: Client) {
    let mut events = watcher(Api::<Service>::all(client), ListParams::default()).boxed();
    while let Some(event) = events.next().await {
        let Some(cache) = cache.upgrade() else {
            return;
        };
        match event {
            Ok(WatcherEvent::Restarted(list)) => {
                cache.replace(list);
                cache.listed.send_replace(true);
            }
            Ok(WatcherEvent::Applied(service)) => cache.apply(service),
            Ok(WatcherEvent::Deleted(service)) => cache.remove(&service),
            Err(e) => tracing::warn!(error = %e, "watching the services"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(namespace: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": ip, "ports": ports}
        }))
        .unwrap()
    }

    fn seed_services() -> Vec<Service> {
        vec![
            service(
                "default",
                "kubernetes",
                "10.3.0.1",
                json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]),
            ),
            service(
                "default",
                "redis-sentinel",
                "10.3.0.206",
                json!([{"port": 26379, "targetPort": 26379}]),
            ),
            service(
                "default",
                "nc-http",
                "10.3.0.15",
                json!([{"port": 80, "protocol": "TCP"}]),
            ),
            service(
                "helm",
                "openshift-webtty",
                "10.3.0.151",
                json!([{"port": 9123}]),
            ),
            service("default", "headless", "None", json!([{"port": 80}])),
        ]
    }

    fn lines(env: &[(String, String)]) -> Vec<String> {
        let mut out: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.sort();
        out
    }

    /// The variables a container of the `default` namespace saw in a real cluster, from
    /// the service discovery seed.
    #[test]
    fn the_seed_clusters_variables() {
        let env = for_namespace(&seed_services(), "default", true);
        let expected = [
            "KUBERNETES_PORT=tcp://10.3.0.1:443",
            "KUBERNETES_PORT_443_TCP=tcp://10.3.0.1:443",
            "KUBERNETES_PORT_443_TCP_ADDR=10.3.0.1",
            "KUBERNETES_PORT_443_TCP_PORT=443",
            "KUBERNETES_PORT_443_TCP_PROTO=tcp",
            "KUBERNETES_SERVICE_HOST=10.3.0.1",
            "KUBERNETES_SERVICE_PORT=443",
            "KUBERNETES_SERVICE_PORT_HTTPS=443",
            "NC_HTTP_PORT=tcp://10.3.0.15:80",
            "NC_HTTP_PORT_80_TCP=tcp://10.3.0.15:80",
            "NC_HTTP_PORT_80_TCP_ADDR=10.3.0.15",
            "NC_HTTP_PORT_80_TCP_PORT=80",
            "NC_HTTP_PORT_80_TCP_PROTO=tcp",
            "NC_HTTP_SERVICE_HOST=10.3.0.15",
            "NC_HTTP_SERVICE_PORT=80",
            "REDIS_SENTINEL_PORT=tcp://10.3.0.206:26379",
            "REDIS_SENTINEL_PORT_26379_TCP=tcp://10.3.0.206:26379",
            "REDIS_SENTINEL_PORT_26379_TCP_ADDR=10.3.0.206",
            "REDIS_SENTINEL_PORT_26379_TCP_PORT=26379",
            "REDIS_SENTINEL_PORT_26379_TCP_PROTO=tcp",
            "REDIS_SENTINEL_SERVICE_HOST=10.3.0.206",
            "REDIS_SENTINEL_SERVICE_PORT=26379",
        ];
        assert_eq!(lines(&env), expected);
        // Kubernetes' order within a service.
        let names: Vec<&str> = env.iter().take(11).map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "KUBERNETES_SERVICE_HOST",
                "KUBERNETES_SERVICE_PORT",
                "KUBERNETES_SERVICE_PORT_HTTPS",
                "KUBERNETES_PORT",
                "KUBERNETES_PORT_443_TCP",
                "KUBERNETES_PORT_443_TCP_PROTO",
                "KUBERNETES_PORT_443_TCP_PORT",
                "KUBERNETES_PORT_443_TCP_ADDR",
                "NC_HTTP_SERVICE_HOST",
                "NC_HTTP_SERVICE_PORT",
                "NC_HTTP_PORT",
            ]
        );
    }

    #[test]
    fn other_namespaces_get_the_kubernetes_service_only() {
        let env = for_namespace(&seed_services(), "helm", true);
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"KUBERNETES_SERVICE_HOST"));
        assert!(names.contains(&"OPENSHIFT_WEBTTY_SERVICE_HOST"));
        assert!(!names.iter().any(|n| n.starts_with("NC_HTTP")));
        // Without links, the kubernetes service's whole set stays, nothing else.
        let env = for_namespace(&seed_services(), "default", false);
        assert_eq!(env.len(), 8);
        assert!(env.iter().all(|(k, _)| k.starts_with("KUBERNETES_")));
    }

    #[test]
    fn several_ports_udp_and_a_namespace_kubernetes_service() {
        let services = [
            service(
                "default",
                "kubernetes",
                "10.96.0.1",
                json!([{"name": "https", "port": 443}]),
            ),
            service("shop", "kubernetes", "10.96.0.9", json!([{"port": 80}])),
            service(
                "shop",
                "dns",
                "10.96.0.10",
                json!([{"name": "dns-udp", "port": 53, "protocol": "UDP"},
                       {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]),
            ),
            service("shop", "v6", "fd00::1", json!([{"port": 8080}])),
            service("shop", "external", "", json!([{"port": 80}])),
        ];
        let env: HashMap<String, String> =
            for_namespace(&services, "shop", true).into_iter().collect();
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.96.0.9");
        assert_eq!(env["DNS_SERVICE_PORT"], "53");
        assert_eq!(env["DNS_SERVICE_PORT_DNS_UDP"], "53");
        assert_eq!(env["DNS_SERVICE_PORT_DNS_TCP"], "53");
        assert_eq!(env["DNS_PORT"], "udp://10.96.0.10:53");
        assert_eq!(env["DNS_PORT_53_UDP"], "udp://10.96.0.10:53");
        assert_eq!(env["DNS_PORT_53_UDP_PROTO"], "udp");
        assert_eq!(env["DNS_PORT_53_TCP"], "tcp://10.96.0.10:53");
        assert_eq!(env["V6_PORT"], "tcp://[fd00::1]:8080");
        assert_eq!(env["V6_PORT_8080_TCP_ADDR"], "fd00::1");
        assert!(!env.keys().any(|k| k.starts_with("EXTERNAL")));
        // Links off: the namespace's own kubernetes service goes too; default's stays.
        let env: HashMap<String, String> = for_namespace(&services, "shop", false)
            .into_iter()
            .collect();
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
        assert_eq!(env.len(), 8);
    }

    #[tokio::test]
    async fn the_cache_answers_from_what_it_holds() {
        let cache = ServiceCache::fixed(seed_services());
        assert_eq!(cache.env("default", true).await.unwrap().len(), 22);
        cache.remove(&seed_services()[1]);
        assert_eq!(cache.env("default", true).await.unwrap().len(), 15);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cache_never_listed_fails_as_kubernetes_does() {
        let cache = ServiceCache::fixed(Vec::new());
        cache.listed.send_replace(false);
        assert_eq!(cache.env("default", true).await.unwrap_err(), NOT_SYNCED);
        cache.listed.send_replace(true);
        assert!(cache.env("default", true).await.unwrap().is_empty());
    }
}
