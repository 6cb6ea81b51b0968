//! Pod discovery on real Docker: the hosts file every pod of a TaskSet gets, kept current
//! in place when a replica is retried with a new address, and the on-peers-change hook.

use std::time::{Duration, Instant};

use minik8s_api::k8s_openapi::api::core::v1::Pod;
use minik8s_kubelet::runtime::ContainerRuntime;
use minik8s_tests::kubelet::{BUSYBOX, TestNode, phase, restart_count};
use minik8s_tests::wait_for;
use serde_json::{Value, json};

const TS: &str = "/apis/minik8s.io/v1alpha1/namespaces/default/tasksets";
const T: Duration = Duration::from_secs(90);
const MEMBERS: [(&str, &str); 3] = [
    ("role1-0", "demo-role1-0"),
    ("role2-0", "demo-role2-0"),
    ("role2-1", "demo-role2-1"),
];

/// The example TaskSet of the original design, without its shared hosts file: every
/// worker serves its hostname over HTTP on 8080 and sleeps.
fn taskset(retry: Value, role1_extra: Value) -> Value {
    let worker = json!({
        "name": "worker", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c",
            "mkdir -p /www && hostname > /www/index.html && httpd -p 8080 -h /www && sleep 1d; exit 0"],
    });
    let template = json!({"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
        "containers": [worker]}});
    let mut role1_template = template.clone();
    merge(&mut role1_template, &role1_extra);
    json!({
        "apiVersion": "minik8s.io/v1alpha1", "kind": "TaskSet",
        "metadata": {"name": "demo"},
        "spec": {"retryPolicy": retry, "roles": [
            {"name": "role1", "replicas": 1,
             "completionPolicy": {"maxFailed": 1, "minSucceeded": 1},
             "template": role1_template},
            {"name": "role2", "replicas": 2,
             "completionPolicy": {"maxFailed": 1, "minSucceeded": 1},
             "template": template},
        ]}
    })
}

fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

async fn submit(node: &TestNode, ts: &Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{TS}", node.api.url))
        .json(ts)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

fn pod_ip(pod: &Pod) -> Option<String> {
    pod.status.as_ref()?.pod_ip.clone()
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// Waits until every member runs with an address; returns them by hostname order.
async fn running_members(node: &TestNode) -> Vec<Pod> {
    let mut pods = Vec::new();
    for (_, name) in MEMBERS {
        let pod = node
            .wait_pod(name, "running with an IP", T, |p| {
                phase(p) == "Running" && pod_ip(p).is_some()
            })
            .await
            .unwrap();
        pods.push(pod);
    }
    pods
}

/// The running `worker` container of the pod.
async fn worker(node: &TestNode, pod: &Pod) -> String {
    node.running_container(pod, "worker").await.unwrap()
}

async fn exec(node: &TestNode, id: &str, command: &[&str]) -> String {
    let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    let out = node
        .docker
        .exec(id, &command, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0, "{command:?}: {}", out.output);
    out.output
}

/// The lines of a hosts file after the localhost lines, without the padding and without
/// the pod's own fully qualified line (`IP<tab>host.demo.ns.svc.cluster.local<tab>host`,
/// as Kubernetes' kubelet writes it for a pod with a hostname and a subdomain).
fn member_lines(hosts: &str) -> Vec<String> {
    hosts
        .lines()
        .skip(6)
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter(|l| !l.contains(".svc.cluster.local\t"))
        .map(str::to_string)
        .collect()
}

fn expected_lines(ips: &[String]) -> Vec<String> {
    MEMBERS
        .iter()
        .zip(ips)
        .map(|((host, _), ip)| format!("{ip}   {host} {host}.demo"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taskset_members_find_each_other_by_name() {
    let node = TestNode::start().await.unwrap();
    submit(&node, &taskset(json!({"retry": false}), json!({}))).await;
    let pods = running_members(&node).await;
    let ips: Vec<String> = pods.iter().map(|p| pod_ip(p).unwrap()).collect();
    let expected = expected_lines(&ips);
    for (pod, ((host, _), ip)) in pods.iter().zip(MEMBERS.iter().zip(&ips)) {
        let id = worker(&node, pod).await;
        let own = format!("{ip}\t{host}.demo.default.svc.cluster.local\t{host}\n");
        let hosts = wait_for(
            "every member in /etc/hosts",
            Duration::from_secs(10),
            || {
                let id = id.clone();
                let node = &node;
                let expected = &expected;
                async move {
                    let hosts = exec(node, &id, &["cat", "/etc/hosts"]).await;
                    (member_lines(&hosts) == *expected).then_some(hosts)
                }
            },
        )
        .await
        .unwrap();
        assert!(
            hosts
                .starts_with("127.0.0.1 localhost\n::1     localhost ip6-localhost ip6-loopback\n"),
            "{hosts}"
        );
        assert!(hosts.contains(&own), "{own:?} not in {hosts}");
    }
    // role1-0 reaches role2-1's server by name.
    let client = worker(&node, &pods[0]).await;
    let page = wait_for("role2-1 serving", Duration::from_secs(20), || async {
        let command: Vec<String> = ["wget", "-qO-", "role2-1:8080"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out = node
            .docker
            .exec(&client, &command, Duration::from_secs(10))
            .await
            .ok()?;
        (out.exit_code == 0).then_some(out.output)
    })
    .await
    .unwrap();
    assert_eq!(page.trim(), "role2-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_member_is_followed_in_place_and_the_hook_runs() {
    let node = TestNode::start().await.unwrap();
    let hook = json!({
        "metadata": {"annotations": {
            "minik8s.io/on-peers-change": "cat >> /shared/peers.log; echo --- >> /shared/peers.log"}},
        "spec": {
            "volumes": [{"name": "shared", "emptyDir": {}}],
            "containers": [{
                "name": "worker", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "sleep 1d; exit 0"],
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}],
        }
    });
    submit(
        &node,
        &taskset(json!({"retry": true, "maxRetryCount": 2}), hook),
    )
    .await;
    let pods = running_members(&node).await;
    let ips: Vec<String> = pods.iter().map(|p| pod_ip(p).unwrap()).collect();

    // The others, as they are before the retry.
    let mut others = Vec::new();
    for pod in &pods[..2] {
        let id = worker(&node, pod).await;
        let expected = expected_lines(&ips);
        wait_for(
            "every member in /etc/hosts",
            Duration::from_secs(10),
            || {
                let id = id.clone();
                let node = &node;
                let expected = &expected;
                async move {
                    let hosts = exec(node, &id, &["cat", "/etc/hosts"]).await;
                    (member_lines(&hosts) == *expected).then_some(())
                }
            },
        )
        .await
        .unwrap();
        let inode = exec(&node, &id, &["stat", "-c", "%i", "/etc/hosts"]).await;
        others.push((pod.clone(), id, inode));
    }
    let hook_log = |list: String| {
        let id = others[0].1.clone();
        let node = &node;
        async move {
            let log = exec(
                node,
                &id,
                &["sh", "-c", "cat /shared/peers.log 2>/dev/null; true"],
            )
            .await;
            log.contains(&list).then_some(log)
        }
    };
    let peers = |ips: &[String]| -> String {
        MEMBERS
            .iter()
            .zip(ips)
            .map(|((host, _), ip)| format!("{ip} {host}\n"))
            .collect::<String>()
            + "---"
    };
    wait_for(
        "the hook with the first peer list",
        Duration::from_secs(20),
        || hook_log(peers(&ips)),
    )
    .await
    .unwrap();

    // Kill role2-1's worker: the pod fails, and the TaskSet re-creates it.
    let old = &pods[2];
    let victim = worker(&node, old).await;
    let killed = std::process::Command::new("docker")
        .args(["kill", &victim])
        .output()
        .unwrap();
    assert!(killed.status.success(), "{killed:?}");
    let api = node.pods();
    let old_uid = uid(old);
    let (new_pod, seen) = wait_for("the retried role2-1 with an IP", T, || async {
        let p = api.get_opt("demo-role2-1").await.ok()??;
        (uid(&p) != old_uid && pod_ip(&p).is_some()).then(|| (p, Instant::now()))
    })
    .await
    .unwrap();
    // The kubelet hands out addresses round-robin: the retried pod does not get its old
    // one back, although it is free again.
    let new_ip = pod_ip(&new_pod).unwrap();
    assert_ne!(new_ip, ips[2], "the retried pod has a new address");
    assert!(!ips.contains(&new_ip), "{new_ip} is nobody else's: {ips:?}");
    let mut new_ips = ips.clone();
    new_ips[2] = new_ip.clone();
    let expected = expected_lines(&new_ips);

    // Every other member's file has it within a second, in place.
    let checks = others.iter().map(|(_, id, _)| {
        let expected = expected.clone();
        let node = &node;
        async move {
            loop {
                let hosts = exec(node, id, &["cat", "/etc/hosts"]).await;
                if member_lines(&hosts) == expected {
                    return seen.elapsed();
                }
                if seen.elapsed() > Duration::from_secs(5) {
                    panic!("{id}'s /etc/hosts never followed: {hosts}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let delays = futures::future::join_all(checks).await;
    eprintln!("the other members' files had {new_ip} after {delays:?}");
    for delay in &delays {
        assert!(*delay < Duration::from_secs(1), "took {delays:?}");
    }
    for (pod, id, inode) in &others {
        let now = exec(&node, id, &["stat", "-c", "%i", "/etc/hosts"]).await;
        assert_eq!(&now, inode, "the file was rewritten in place");
        let current = api
            .get(pod.metadata.name.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(uid(&current), uid(pod));
        assert_eq!(restart_count(&current, "worker"), 0);
        assert_eq!(&worker(&node, &current).await, id, "not restarted");
    }
    // The retried pod sees everyone too.
    let id = worker(&node, &new_pod).await;
    wait_for(
        "the retried pod's hosts file",
        Duration::from_secs(10),
        || async {
            let hosts = exec(&node, &id, &["cat", "/etc/hosts"]).await;
            (member_lines(&hosts) == expected).then_some(())
        },
    )
    .await
    .unwrap();

    // The hook ran with the new list.
    let log = wait_for(
        "the hook with the new peer list",
        Duration::from_secs(10),
        || hook_log(peers(&new_ips)),
    )
    .await
    .unwrap();
    assert!(
        log.matches(&peers(&new_ips)).count() == 1,
        "once per change: {log}"
    );
}
