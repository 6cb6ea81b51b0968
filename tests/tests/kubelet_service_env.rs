//! Service environment variables on real Docker: a container created after a service
//! finds it in its environment, written as Kubernetes writes it, and a pod with
//! `enableServiceLinks: false` keeps only the `kubernetes` service's.

use std::time::Duration;

use minik8s_api::k8s_openapi::api::core::v1::Service;
use minik8s_client::Api;
use minik8s_tests::kubelet::{BUSYBOX, TestNode};
use minik8s_tests::wait_for;
use serde_json::json;

/// The service variables among a log of `env` lines, sorted.
fn service_lines(log: &str) -> Vec<String> {
    let mut lines: Vec<String> = log
        .lines()
        .filter(|l| {
            l.split_once('=').is_some_and(|(name, _)| {
                !name.contains(' ') && (name.contains("_SERVICE_") || name.contains("_PORT"))
            })
        })
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

fn expected(ip: &str, kubernetes: &str, links: bool) -> Vec<String> {
    let mut lines = vec![
        format!("KUBERNETES_PORT=tcp://{kubernetes}:443"),
        format!("KUBERNETES_PORT_443_TCP=tcp://{kubernetes}:443"),
        format!("KUBERNETES_PORT_443_TCP_ADDR={kubernetes}"),
        "KUBERNETES_PORT_443_TCP_PORT=443".to_string(),
        "KUBERNETES_PORT_443_TCP_PROTO=tcp".to_string(),
        format!("KUBERNETES_SERVICE_HOST={kubernetes}"),
        "KUBERNETES_SERVICE_PORT=443".to_string(),
        "KUBERNETES_SERVICE_PORT_HTTPS=443".to_string(),
    ];
    if links {
        lines.extend([
            format!("WEB_APP_PORT=tcp://{ip}:80"),
            format!("WEB_APP_PORT_5353_UDP=udp://{ip}:5353"),
            format!("WEB_APP_PORT_5353_UDP_ADDR={ip}"),
            "WEB_APP_PORT_5353_UDP_PORT=5353".to_string(),
            "WEB_APP_PORT_5353_UDP_PROTO=udp".to_string(),
            format!("WEB_APP_PORT_80_TCP=tcp://{ip}:80"),
            format!("WEB_APP_PORT_80_TCP_ADDR={ip}"),
            "WEB_APP_PORT_80_TCP_PORT=80".to_string(),
            "WEB_APP_PORT_80_TCP_PROTO=tcp".to_string(),
            format!("WEB_APP_SERVICE_HOST={ip}"),
            "WEB_APP_SERVICE_PORT=80".to_string(),
            "WEB_APP_SERVICE_PORT_HTTP=80".to_string(),
            "WEB_APP_SERVICE_PORT_NAME_SERVICE=5353".to_string(),
        ]);
    }
    lines.sort();
    lines
}

#[tokio::test]
async fn containers_find_the_services_of_their_namespace() {
    let node = TestNode::start().await.unwrap();
    let services: Api<Service> = Api::namespaced(node.client.clone(), "default");
    let kubernetes = wait_for(
        "the kubernetes service",
        Duration::from_secs(10),
        || async {
            services
                .get_opt("kubernetes")
                .await
                .ok()
                .flatten()
                .and_then(|s| s.spec?.cluster_ip)
        },
    )
    .await
    .unwrap();
    let create = |value: serde_json::Value| {
        let services = services.clone();
        async move {
            let service: Service = serde_json::from_value(value).unwrap();
            services.create(&service).await.unwrap()
        }
    };
    let web = create(json!({
        "metadata": {"name": "web-app"},
        "spec": {"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "name-service", "port": 5353, "protocol": "UDP"}
        ]}
    }))
    .await;
    let ip = web.spec.unwrap().cluster_ip.unwrap();
    // Headless: no address, no variables.
    create(json!({
        "metadata": {"name": "peers"},
        "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}
    }))
    .await;

    let pod = |name: &str, links: bool| {
        json!({
            "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1, "enableServiceLinks": links,
                     "containers": [{
                "name": "env", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "env; echo \"host $0\"; exec sleep 3600",
                            "$(WEB_APP_SERVICE_HOST)"],
                "env": [{"name": "OWN_PORT", "value": "own"}]
            }]}
        })
    };
    node.create_pod(pod("links", true)).await.unwrap();
    node.create_pod(pod("nolinks", false)).await.unwrap();

    let log = node.wait_log("links", "env", "host ").await.unwrap();
    let mut want = expected(&ip, &kubernetes, true);
    want.push("OWN_PORT=own".to_string());
    want.sort();
    assert_eq!(service_lines(&log), want, "{log}");
    assert!(log.lines().any(|l| l == format!("host {ip}")), "{log}");

    let log = node.wait_log("nolinks", "env", "host ").await.unwrap();
    let mut want = expected(&ip, &kubernetes, false);
    want.push("OWN_PORT=own".to_string());
    want.sort();
    assert_eq!(service_lines(&log), want, "{log}");
    // Not expanded: the variable does not exist in this container.
    assert!(
        log.lines().any(|l| l == "host $(WEB_APP_SERVICE_HOST)"),
        "{log}"
    );
}
