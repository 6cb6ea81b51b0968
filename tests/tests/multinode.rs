//! Three nodes on one machine — one API server, three kubelets, each on a Docker daemon of
//! its own with its own bridge — and the TaskSet of the discovery test spread over them:
//! every member's hosts file lists all three, a member reaches another on a different
//! node by name, and the receiver sees the sender's pod address (no NAT between pods).
//! Routes to other machines' pod CIDRs follow the nodes.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use minik8s_api::k8s_openapi::api::core::v1::{Node, Pod};
use minik8s_client::{Api, DeleteParams};
use minik8s_kubelet::network::{FORWARD_CHAIN, POSTROUTING_CHAIN, ROUTE_PROTO, cluster_rules};
use minik8s_kubelet::runtime::ContainerRuntime;
use minik8s_tests::kubelet::{BUSYBOX, TestNode, phase};
use minik8s_tests::wait_for;
use serde_json::json;

const T: Duration = Duration::from_secs(90);
const TS: &str = "/apis/minik8s.io/v1alpha1/namespaces/default/tasksets";
const MEMBERS: [(&str, &str); 3] = [
    ("role1-0", "demo-role1-0"),
    ("role2-0", "demo-role2-0"),
    ("role2-1", "demo-role2-1"),
];

/// Every worker serves `/cgi-bin/ip`, which answers with the client's address.
fn taskset() -> serde_json::Value {
    let script = "mkdir -p /www/cgi-bin && \
        printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' \
          > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && \
        httpd -p 8080 -h /www && sleep 1d; exit 0";
    let template = json!({"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "worker", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script]}]}});
    json!({
        "apiVersion": "minik8s.io/v1alpha1", "kind": "TaskSet",
        "metadata": {"name": "demo"},
        "spec": {"retryPolicy": {"retry": false}, "roles": [
            {"name": "role1", "replicas": 1,
             "completionPolicy": {"maxFailed": 1, "minSucceeded": 1}, "template": template},
            {"name": "role2", "replicas": 2,
             "completionPolicy": {"maxFailed": 1, "minSucceeded": 1}, "template": template},
        ]}
    })
}

fn pod_ip(pod: &Pod) -> Option<String> {
    pod.status.as_ref()?.pod_ip.clone()
}

fn node_name(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// iptables rules the test adds, removed when it ends however it ends.
struct Rules(Vec<Vec<String>>);

impl Drop for Rules {
    fn drop(&mut self) {
        for rule in &self.0 {
            let mut args: Vec<&str> = vec!["-w", "5", "-t", "nat", "-D"];
            args.extend(rule.iter().map(String::as_str));
            let _ = Command::new("iptables").args(&args).output();
        }
    }
}

/// The node a pod runs on, among the test's.
fn host_of<'a>(nodes: &'a [TestNode], pod: &Pod) -> &'a TestNode {
    let name = node_name(pod);
    nodes.iter().find(|n| n.node == name).unwrap()
}

/// The running `worker` container of the pod.
async fn worker(node: &TestNode, pod: &Pod) -> String {
    node.running_container(pod, "worker").await.unwrap()
}

async fn exec(node: &TestNode, id: &str, command: &[&str]) -> Option<String> {
    let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    let out = node
        .docker
        .exec(id, &command, Duration::from_secs(15))
        .await
        .ok()?;
    (out.exit_code == 0).then_some(out.output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taskset_spread_over_three_nodes_reaches_across_them_by_name() {
    let first = TestNode::on_private_dockerd().await.unwrap();
    let second = first.join().await.unwrap();
    let third = first.join().await.unwrap();
    let mut nodes = [first, second, third];
    for node in &mut nodes {
        node.start_kubelet().unwrap();
    }
    let cluster = nodes[0].cluster_cidr();
    let node_api: Api<Node> = Api::all(nodes[0].client.clone());
    let names: BTreeSet<String> = nodes.iter().map(|n| n.node.clone()).collect();
    // Every node ready, with its pod CIDR and so its bridge.
    let cidrs = wait_for("three ready nodes with pod CIDRs", T, || async {
        let list = node_api.list(&Default::default()).await.ok()?.items;
        let ready: Vec<(String, String)> = list
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .filter_map(|n| Some((n.metadata.name.clone()?, n.spec.as_ref()?.pod_cidr.clone()?)))
            .collect();
        (ready.len() == 3).then_some(ready)
    })
    .await
    .unwrap();

    // Docker masquerades what leaves a bridge for another interface, and puts that rule
    // first: as the system's Docker would for these bridges if it managed them.
    let mut masquerade = Rules(Vec::new());
    for node in &nodes {
        let dockerd = node.dockerd.as_ref().unwrap();
        let network = minik8s_kubelet::network_name(&node.node);
        let id = wait_for("the node's bridge network", T, || async {
            dockerd
                .docker(&["network", "inspect", "--format", "{{.Id}}", &network])
                .ok()
        })
        .await
        .unwrap();
        let cidr = &cidrs.iter().find(|(n, _)| *n == node.node).unwrap().1;
        let bridge = format!("br-{}", &id.trim()[..12]);
        let rule: Vec<String> = [
            "POSTROUTING",
            "-s",
            cidr,
            "!",
            "-o",
            &bridge,
            "-j",
            "MASQUERADE",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut args: Vec<&str> = vec!["-w", "5", "-t", "nat", "-I", "POSTROUTING", "1"];
        args.extend(rule[1..].iter().map(String::as_str));
        run("iptables", &args);
        masquerade.0.push(rule);
    }

    let r = reqwest::Client::new()
        .post(format!("{}{TS}", nodes[0].api.url))
        .json(&taskset())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let mut pods = Vec::new();
    for (_, name) in MEMBERS {
        let pod = nodes[0]
            .wait_pod(name, "running with an IP", T, |p| {
                phase(p) == "Running" && pod_ip(p).is_some()
            })
            .await
            .unwrap();
        pods.push(pod);
    }
    // One member per node: the scheduler spreads them.
    let placed: BTreeSet<String> = pods.iter().map(node_name).collect();
    assert_eq!(placed, names, "the members are not spread over the nodes");

    // Every member's hosts file lists all three with their addresses.
    let expected: Vec<String> = MEMBERS
        .iter()
        .zip(&pods)
        .map(|((host, _), pod)| format!("{}   {host} {host}.demo", pod_ip(pod).unwrap()))
        .collect();
    for pod in &pods {
        let node = host_of(&nodes, pod);
        let id = worker(node, pod).await;
        wait_for("every member in /etc/hosts", T, || async {
            let hosts = exec(node, &id, &["cat", "/etc/hosts"]).await?;
            let members: Vec<String> = hosts
                .lines()
                .skip(6)
                .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                // The pod's own fully qualified line, as Kubernetes' kubelet writes it.
                .filter(|l| !l.contains(".svc.cluster.local\t"))
                .map(str::to_string)
                .collect();
            (members == expected).then_some(())
        })
        .await
        .unwrap();
    }

    // role1-0 reaches both role2 members, each on another node, by name, and they see
    // its own pod address.
    let client_node = host_of(&nodes, &pods[0]);
    let client = worker(client_node, &pods[0]).await;
    let client_ip = pod_ip(&pods[0]).unwrap();
    for (i, pod) in pods.iter().enumerate().skip(1) {
        assert_ne!(node_name(pod), client_node.node);
        let host = MEMBERS[i].0;
        let url = format!("http://{host}:8080/cgi-bin/ip");
        let seen = wait_for(
            &format!("{host} answering with role1-0's address"),
            T,
            || {
                let url = url.clone();
                let client = client.clone();
                let client_ip = client_ip.clone();
                async move {
                    let seen = exec(client_node, &client, &["wget", "-qO-", &url]).await?;
                    seen.contains(&format!(":{client_ip}]")).then_some(seen)
                }
            },
        )
        .await
        .unwrap();
        eprintln!("{host} saw {}", seen.trim());
    }

    // The kubelets' rules are in place, their jumps first: in the filter table ahead of
    // Docker's isolation rules, from DOCKER-USER, which Docker keeps first. Other tests'
    // Docker networks put Docker's masquerading first in the nat table now and then,
    // until the next check of a kubelet.
    wait_for("the kubelets' rules, their jumps first", T, || async {
        let filter = run("iptables", &["-w", "5", "-S"]);
        let nat = run("iptables", &["-w", "5", "-t", "nat", "-S"]);
        let first = |listing: &str, chain: &str| {
            listing
                .lines()
                .find(|l| l.starts_with(&format!("-A {chain} ")))
                .unwrap_or_default()
                .to_string()
        };
        let parent = if filter.lines().any(|l| l == "-N DOCKER-USER") {
            "DOCKER-USER"
        } else {
            "FORWARD"
        };
        // Every rule of the cluster, as the kubelet writes them.
        let rules = cluster_rules(cluster.parse().expect("a CIDR"));
        let ok = rules.iter().all(|r| {
            let listing = if r.table == "nat" { &nat } else { &filter };
            listing.lines().any(|l| l == r.line())
        }) && first(&filter, parent) == format!("-A {parent} -j {FORWARD_CHAIN}")
            && first(&nat, "POSTROUTING") == format!("-A POSTROUTING -j {POSTROUTING_CHAIN}");
        ok.then_some(())
    })
    .await
    .unwrap();

    // A node on another machine (the default gateway's address stands in for it) gets a
    // route to its pod CIDR, and loses it when it is deleted.
    let default = run("ip", &["-4", "route", "show", "default"]);
    let gateway = default
        .split_whitespace()
        .skip_while(|w| *w != "via")
        .nth(1)
        .expect("this test needs a default route")
        .to_string();
    let remote = format!("{}-remote", nodes[0].node);
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": remote},
        "status": {"addresses": [{"type": "InternalIP", "address": gateway}]}
    }))
    .unwrap();
    node_api.create(&node).await.unwrap();
    let routes = |cluster: String| async move {
        run(
            "ip",
            &[
                "-4",
                "-o",
                "route",
                "show",
                "root",
                &cluster,
                "proto",
                ROUTE_PROTO,
            ],
        )
    };
    let remote_cidr = wait_for("the remote node's pod CIDR", T, || async {
        node_api.get(&remote).await.ok()?.spec?.pod_cidr
    })
    .await
    .unwrap();
    wait_for("a route to the remote node's pods", T, || async {
        let routes = routes(cluster.clone()).await;
        routes
            .starts_with(&format!("{remote_cidr} via {gateway} "))
            .then_some(())
    })
    .await
    .unwrap();
    // No route for the nodes of this machine: their bridges are here.
    assert_eq!(routes(cluster.clone()).await.lines().count(), 1);
    node_api
        .delete(&remote, &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the remote node's route gone", T, || async {
        routes(cluster.clone())
            .await
            .trim()
            .is_empty()
            .then_some(())
    })
    .await
    .unwrap();
    drop(masquerade);
}
