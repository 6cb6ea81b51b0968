//! The node proxy on real Docker and real iptables: a service's cluster IP spreads
//! requests over its ready pods, from a pod and from the host; a pod reaches itself
//! through its own service (hairpin); a node port answers on the node's address; a pod
//! whose readiness probe fails stops getting traffic within its probe period + 1 s; the
//! rules keep working while the kubelet is down and a restarted kubelet leaves exactly
//! one copy of each; and across three nodes, a pod on one reaches pods on the others.
//!
//! Each test cluster has its own service range and node ports (see `CidrClaim`), so the
//! rules of clusters tested side by side never match one another's traffic.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use minik8s_api::k8s_openapi::api::core::v1::{Node, Pod, Service};
use minik8s_client::Api;
use minik8s_kubelet::proxy::Names;
use minik8s_kubelet::runtime::ContainerRuntime;
use minik8s_tests::kubelet::{BUSYBOX, TestNode};
use minik8s_tests::wait_for;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(90);

/// A pod that serves `/cgi-bin/name`, answering with its own name, on port 8080; ready
/// while `/ready/{name}` exists (a host directory), checked every second.
fn web_pod(name: &str, ready_dir: Option<&str>) -> Value {
    let script = format!(
        "mkdir -p /www/cgi-bin && \
         printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho {name}\\n' \
           > /www/cgi-bin/name && chmod +x /www/cgi-bin/name && \
         httpd -p 8080 -h /www && sleep 1d; exit 0"
    );
    let mut container = json!({"name": "web", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script], "ports": [{"name": "http", "containerPort": 8080}]});
    let mut spec = json!({"terminationGracePeriodSeconds": 1, "containers": []});
    if let Some(dir) = ready_dir {
        container["readinessProbe"] = json!({"exec": {"command": ["test", "-f", format!("/ready/{name}")]},
            "periodSeconds": 1, "failureThreshold": 1});
        container["volumeMounts"] = json!([{"name": "ready", "mountPath": "/ready"}]);
        spec["volumes"] = json!([{"name": "ready", "hostPath": {"path": dir}}]);
    }
    spec["containers"] = json!([container]);
    json!({"metadata": {"name": name, "labels": {"app": "web"}}, "spec": spec})
}

fn client_pod() -> Value {
    json!({"metadata": {"name": "client"}, "spec": {"terminationGracePeriodSeconds": 1,
        "containers": [{"name": "c", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "1d"]}]}})
}

async fn create_service(node: &TestNode, spec: Value) -> Service {
    let svc: Service = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"}, "spec": spec}))
    .unwrap();
    Api::<Service>::namespaced(node.client.clone(), "default")
        .create(&svc)
        .await
        .unwrap()
}

/// Runs `count` requests in the pod's container and counts the answers by name.
async fn from_pod(node: &TestNode, pod: &Pod, url: &str, count: usize) -> BTreeMap<String, usize> {
    let id = node
        .running_container(pod, pod_container(pod))
        .await
        .unwrap();
    let script = format!("for i in $(seq {count}); do wget -qO- {url}; done");
    let out = node
        .docker
        .exec(
            &id,
            &["sh".to_string(), "-c".to_string(), script],
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    tally(out.output.lines())
}

fn pod_container(pod: &Pod) -> &str {
    &pod.spec.as_ref().unwrap().containers[0].name
}

fn tally<'a>(answers: impl Iterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for a in answers.map(str::trim).filter(|a| !a.is_empty()) {
        *seen.entry(a.to_string()).or_insert(0) += 1;
    }
    seen
}

/// One request from the host on a new connection: which pod answered.
async fn from_host(http: &reqwest::Client, url: &str) -> Option<String> {
    let r = http.get(url).send().await.ok()?;
    Some(r.text().await.ok()?.trim().to_string())
}

fn host_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap()
}

/// Every answer came from one of `names`, and each of them answered at least `min` times.
fn assert_spread(what: &str, seen: &BTreeMap<String, usize>, names: &[&str], min: usize) {
    let total: usize = seen.values().sum();
    for name in names {
        let n = seen.get(*name).copied().unwrap_or(0);
        assert!(n >= min, "{what}: {name} answered {n} of {total}: {seen:?}");
    }
    assert!(
        seen.keys().all(|k| names.contains(&k.as_str())),
        "{what}: {seen:?}"
    );
}

/// The node's proxy rules as `iptables-save` shows them.
fn our_rules(node: &str) -> Vec<String> {
    let out = std::process::Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .unwrap();
    let tag = Names::new(node).tag;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("-A ") && l.contains(&format!("-{tag}")))
        .map(str::to_string)
        .collect()
}

fn internal_ip(node: &Node) -> String {
    node.status
        .as_ref()
        .unwrap()
        .addresses
        .as_ref()
        .unwrap()
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .unwrap()
        .address
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_ip_and_a_node_port_spread_over_ready_pods_and_survive_a_kubelet_restart() {
    let mut node = TestNode::start().await.unwrap();
    let ready_dir = node.root.path().join("ready");
    std::fs::create_dir_all(&ready_dir).unwrap();
    let ready = ready_dir.to_str().unwrap().to_string();
    const WEB: [&str; 3] = ["web-0", "web-1", "web-2"];
    for name in WEB {
        std::fs::write(ready_dir.join(name), "").unwrap();
        node.create_pod(web_pod(name, Some(&ready))).await.unwrap();
    }
    let client = node.create_pod(client_pod()).await.unwrap();
    let svc = create_service(
        &node,
        json!({"type": "NodePort", "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}),
    )
    .await;
    let spec = svc.spec.unwrap();
    let ip = spec.cluster_ip.unwrap();
    let node_port = spec.ports.unwrap()[0].node_port.unwrap();
    assert!(
        ip.starts_with("10.251."),
        "the test cluster's own range: {ip}"
    );
    for name in WEB {
        node.wait_ready(name).await.unwrap();
    }
    node.wait_ready("client").await.unwrap();
    let url = format!("http://{ip}/cgi-bin/name");
    let http = host_client();
    wait_for("the cluster IP to answer from the host", T, || async {
        from_host(&http, &url)
            .await
            .filter(|a| WEB.contains(&a.as_str()))
    })
    .await
    .unwrap();

    // From another pod: 300 requests reach all three.
    let seen = from_pod(&node, &client, &url, 300).await;
    assert_eq!(seen.values().sum::<usize>(), 300, "{seen:?}");
    assert_spread("from a pod", &seen, &WEB, 50);

    // From the host, each request on a connection of its own.
    let mut answers = Vec::new();
    for _ in 0..300 {
        answers.push(from_host(&http, &url).await.unwrap_or_default());
    }
    let seen = tally(answers.iter().map(String::as_str));
    assert_eq!(seen.values().sum::<usize>(), 300, "{seen:?}");
    assert_spread("from the host", &seen, &WEB, 50);

    // A pod reaches itself through its service: its reply is masqueraded back.
    let web0 = node.pods().get("web-0").await.unwrap();
    let seen = from_pod(&node, &web0, &url, 60).await;
    assert_eq!(seen.values().sum::<usize>(), 60, "{seen:?}");
    assert!(seen.get("web-0").is_some_and(|n| *n > 0), "{seen:?}");

    // The node port, on the node's address.
    let nodes: Api<Node> = Api::all(node.client.clone());
    let node_ip = internal_ip(&nodes.get(&node.node).await.unwrap());
    let np_url = format!("http://{node_ip}:{node_port}/cgi-bin/name");
    let mut answers = Vec::new();
    for _ in 0..60 {
        answers.push(from_host(&http, &np_url).await.unwrap_or_default());
    }
    assert_spread(
        "through the node port",
        &tally(answers.iter().map(String::as_str)),
        &WEB,
        5,
    );

    // web-1's probe starts failing: within its period (1 s) + 1 s it gets nothing.
    let t0 = Instant::now();
    std::fs::remove_file(ready_dir.join("web-1")).unwrap();
    let mut last_web1 = None;
    let mut after = BTreeMap::new();
    while t0.elapsed() < Duration::from_secs(5) {
        let answer = from_host(&http, &url).await.unwrap_or_default();
        if answer == "web-1" {
            last_web1 = Some(t0.elapsed());
        }
        if t0.elapsed() > Duration::from_secs(2) {
            *after.entry(answer).or_insert(0) += 1;
        }
    }
    eprintln!("web-1 last answered {last_web1:?} after its probe started failing");
    assert!(
        last_web1.is_none_or(|t| t <= Duration::from_secs(2)),
        "web-1 answered {last_web1:?} after its probe started failing"
    );
    assert_spread("once web-1 is not ready", &after, &["web-0", "web-2"], 5);

    // The kubelet stops: the rules stay and keep working.
    let before = our_rules(&node.node);
    assert!(before.len() > 10, "{before:#?}");
    node.stop_kubelet();
    let mut answers = Vec::new();
    for _ in 0..30 {
        answers.push(from_host(&http, &url).await.unwrap_or_default());
    }
    assert_spread(
        "with the kubelet stopped",
        &tally(answers.iter().map(String::as_str)),
        &["web-0", "web-2"],
        3,
    );
    // It starts again and, once it has read the table and its resync (2 s) has passed
    // twice, exactly one copy of each rule is there, as before.
    node.start_kubelet().unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after_restart = our_rules(&node.node);
    let mut unique = after_restart.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), after_restart.len(), "{after_restart:#?}");
    let mut sorted_before = before.clone();
    sorted_before.sort();
    assert_eq!(unique, sorted_before);
    for parent in ["PREROUTING", "OUTPUT", "POSTROUTING"] {
        let jumps = after_restart
            .iter()
            .filter(|l| l.starts_with(&format!("-A {parent} ")))
            .count();
        assert_eq!(jumps, 1, "{parent}: {after_restart:#?}");
    }

    // And follows changes again: web-1 ready once more gets traffic back.
    std::fs::write(ready_dir.join("web-1"), "").unwrap();
    wait_for("web-1 to answer again", Duration::from_secs(10), || async {
        (from_host(&http, &url).await.as_deref() == Some("web-1")).then_some(())
    })
    .await
    .unwrap();

    // Once the test cluster ends, none of its rules are left.
    let name = node.node.clone();
    drop(node);
    assert_eq!(our_rules(&name), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_ip_on_one_node_reaches_pods_on_the_other_two() {
    let first = TestNode::on_private_dockerd().await.unwrap();
    let second = first.join().await.unwrap();
    let third = first.join().await.unwrap();
    let mut nodes = [first, second, third];
    for node in &mut nodes {
        node.start_kubelet().unwrap();
    }
    let nodes_api: Api<Node> = Api::all(nodes[0].client.clone());
    wait_for("three nodes with pod CIDRs", T, || async {
        let list = nodes_api.list(&Default::default()).await.ok()?.items;
        (list
            .iter()
            .filter(|n| n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some())
            .count()
            == 3)
            .then_some(())
    })
    .await
    .unwrap();
    const WEB: [&str; 2] = ["web-b", "web-c"];
    nodes[1].create_pod(web_pod(WEB[0], None)).await.unwrap();
    nodes[2].create_pod(web_pod(WEB[1], None)).await.unwrap();
    let client = nodes[0].create_pod(client_pod()).await.unwrap();
    let svc = create_service(
        &nodes[0],
        json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}),
    )
    .await;
    let ip = svc.spec.unwrap().cluster_ip.unwrap();
    for name in WEB {
        nodes[0].wait_ready(name).await.unwrap();
    }
    nodes[0].wait_ready("client").await.unwrap();
    let url = format!("http://{ip}/cgi-bin/name");
    let seen = wait_for("requests from node A to reach B and C", T, || async {
        let seen = from_pod(&nodes[0], &client, &url, 60).await;
        (seen.values().sum::<usize>() == 60).then_some(seen)
    })
    .await
    .unwrap();
    assert_spread("from node A", &seen, &WEB, 10);
}
