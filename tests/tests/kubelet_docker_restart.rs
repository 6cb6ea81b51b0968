//! The node's Docker daemon stops and starts again, taking every container with it: the
//! kubelet rides it out and brings each pod back to Running on one new sandbox, as
//! Kubernetes does — the containers count a restart, the app containers join the new
//! pause container, and the status has the new sandbox's address.

use std::time::Duration;

use minik8s_api::k8s_openapi::api::core::v1::{Node, Pod};
use minik8s_client::Api;
use minik8s_kubelet::labels::{self, ContainerKey, Role};
use minik8s_kubelet::runtime::{ContainerInfo, ContainerState};
use minik8s_tests::kubelet::{BUSYBOX, TestNode, condition, phase, restart_count};
use minik8s_tests::wait_for;
use serde_json::json;

const T: Duration = Duration::from_secs(90);

fn container(name: &str, script: &str) -> serde_json::Value {
    json!({"name": name, "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script]})
}

fn pod(name: &str, containers: Vec<serde_json::Value>) -> serde_json::Value {
    json!({"metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": containers}})
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn pod_ip(pod: &Pod) -> Option<String> {
    pod.status.as_ref()?.pod_ip.clone()
}

fn is_sandbox(c: &ContainerInfo) -> bool {
    ContainerKey::from_labels(&c.labels).is_some_and(|k| k.role == Role::Sandbox)
}

/// The pod as Docker has it: its one running pause container and its running app
/// containers by name. `Err` says what is not (yet) so.
async fn sandbox_and_apps(
    node: &TestNode,
    pod: &Pod,
    apps: &[&str],
) -> Result<(ContainerInfo, Vec<ContainerInfo>), String> {
    let all = node
        .containers(Some(&uid(pod)))
        .await
        .map_err(|e| e.to_string())?;
    let running: Vec<&ContainerInfo> = all
        .iter()
        .filter(|c| c.state == ContainerState::Running)
        .collect();
    let pauses: Vec<&&ContainerInfo> = running.iter().filter(|c| is_sandbox(c)).collect();
    let [pause] = pauses.as_slice() else {
        return Err(format!("{} running pause containers", pauses.len()));
    };
    let mut found = Vec::new();
    for name in apps {
        let matching: Vec<&&ContainerInfo> = running
            .iter()
            .filter(|c| {
                ContainerKey::from_labels(&c.labels)
                    .is_some_and(|k| k.role == Role::App && k.container == *name)
            })
            .collect();
        let [app] = matching.as_slice() else {
            return Err(format!("{} running {name} containers", matching.len()));
        };
        found.push((**app).clone());
    }
    Ok(((**pause).clone(), found))
}

/// The network mode Docker gave the container: `container:<id>` when it joined another's.
fn network_mode(node: &TestNode, id: &str) -> String {
    let dockerd = node.dockerd.as_ref().unwrap();
    dockerd
        .docker(&["inspect", "--format", "{{.HostConfig.NetworkMode}}", id])
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_come_back_on_one_new_sandbox_after_docker_restarts() {
    let mut node = TestNode::on_private_dockerd().await.unwrap();
    node.start_kubelet_process().unwrap();
    let pods = [("solo", vec!["c"]), ("duo", vec!["web", "side"])];
    node.create_pod(pod("solo", vec![container("c", "exec sleep 3600")]))
        .await
        .unwrap();
    node.create_pod(pod(
        "duo",
        vec![
            container(
                "web",
                "mkdir -p /www && echo duo > /www/index.html && exec httpd -f -p 8080 -h /www",
            ),
            container("side", "exec sleep 3600"),
        ],
    ))
    .await
    .unwrap();
    // A pod that never restarts ends with its containers instead.
    let mut never = pod("never", vec![container("c", "exec sleep 3600")]);
    never["spec"]["restartPolicy"] = json!("Never");
    node.create_pod(never).await.unwrap();
    let never = node.wait_ready("never").await.unwrap();
    let mut before = Vec::new();
    for (name, apps) in &pods {
        let p = node.wait_ready(name).await.unwrap();
        let (pause, _) = sandbox_and_apps(&node, &p, apps).await.unwrap();
        before.push((p, pause));
    }

    let old_ids: Vec<String> = node
        .containers(None)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    // Docker goes away with every container, and stays away over a few resyncs.
    let logged_before = node.process_log().lines().count();
    let down = std::time::Instant::now();
    let dockerd = node.dockerd.as_mut().unwrap();
    dockerd.stop().await.unwrap();
    assert!(!dockerd.is_running());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(node.kubelet_running(), "the kubelet gave up without Docker");
    // The node says so, as Kubernetes' does: no new pods are scheduled to it.
    let ready = |reason: &'static str| {
        let nodes: Api<Node> = Api::all(node.client.clone());
        let name = node.node.clone();
        async move {
            wait_for(&format!("the node's Ready reason {reason}"), T, || async {
                let n = nodes.get(&name).await.ok()?;
                let c = n
                    .status?
                    .conditions?
                    .into_iter()
                    .find(|c| c.type_ == "Ready")?;
                (c.reason.as_deref() == Some(reason)).then_some(c)
            })
            .await
            .unwrap()
        }
    };
    let not_ready = ready("KubeletNotReady").await;
    assert_eq!(not_ready.status, "False");
    assert!(
        not_ready
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("container runtime is down")),
        "{not_ready:?}"
    );
    // It retries with back-off: a few lines a second, not a hot loop.
    let log = node.process_log();
    let lines = log.lines().count() - logged_before;
    let seconds = down.elapsed().as_secs_f64();
    assert!(
        (lines as f64) < 10.0 * seconds,
        "{lines} log lines in {seconds:.1} s without Docker:\n{log}"
    );
    node.dockerd.as_mut().unwrap().start_again().await.unwrap();
    // Every container of before died with the daemon (the kubelet may be making new
    // ones already).
    let survivors: Vec<ContainerInfo> = node
        .containers(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| old_ids.contains(&c.id) && c.state == ContainerState::Running)
        .collect();
    assert!(
        survivors.is_empty(),
        "containers survived the daemon: {survivors:?}"
    );
    assert_eq!(ready("KubeletReady").await.status, "True");

    for ((name, apps), (old, old_pause)) in pods.iter().zip(&before) {
        let now = node
            .wait_pod(name, "running again with restarted containers", T, |p| {
                phase(p) == "Running"
                    && condition(p, "Ready") == Some("True")
                    && apps.iter().all(|c| restart_count(p, c) == 1)
                    && pod_ip(p).is_some()
            })
            .await
            .unwrap();
        // Docker agrees: one running pause container, new, and the app containers in its
        // network namespace.
        let (pause, running) =
            wait_for("one running sandbox with the app containers", T, || async {
                sandbox_and_apps(&node, &now, apps).await.ok()
            })
            .await
            .unwrap();
        assert_ne!(
            pause.id, old_pause.id,
            "{name}: the sandbox was not re-created"
        );
        assert_eq!(
            pause
                .labels
                .get(labels::CONTAINER_ATTEMPT)
                .map(String::as_str),
            Some("1"),
            "{name}: the second sandbox"
        );
        for app in &running {
            assert_eq!(
                network_mode(&node, &app.id),
                format!("container:{}", pause.id),
                "{name}: {} is not in the new sandbox",
                app.name
            );
            assert_eq!(
                app.labels
                    .get(labels::CONTAINER_ATTEMPT)
                    .map(String::as_str),
                Some("1"),
                "{name}: {} is not the second attempt",
                app.name
            );
        }
        // The status has the new sandbox's address (Docker may hand out the old one).
        let ip = pause.ip.expect("the pause container has an address");
        let pod = node
            .wait_pod(name, "showing the new sandbox's address", T, |p| {
                pod_ip(p) == Some(ip.to_string())
            })
            .await
            .unwrap();
        assert_eq!(uid(&pod), uid(old));
        let events = node.events(name).await.unwrap();
        assert!(
            events.iter().any(|e| e.starts_with("SandboxChanged:")),
            "{name}: {events:?}"
        );
    }

    // The pause containers of before are gone or at least never counted: a few resyncs
    // later there is still exactly one sandbox per pod, running.
    for ((name, apps), (old, _)) in pods.iter().zip(&before) {
        wait_for(
            "the old sandbox pruned",
            Duration::from_secs(30),
            || async {
                let all = node.containers(Some(&uid(old))).await.ok()?;
                (all.iter().filter(|c| is_sandbox(c)).count() == 1).then_some(())
            },
        )
        .await
        .unwrap();
        let (_, _) = sandbox_and_apps(&node, old, apps)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let p = node.pods().get(name).await.unwrap();
        assert!(apps.iter().all(|c| restart_count(&p, c) == 1), "{name}");
    }
    let never_now = node
        .wait_pod("never", "failed", T, |p| phase(p) == "Failed")
        .await
        .unwrap();
    assert_eq!(restart_count(&never_now, "c"), 0);
    let sandboxes: Vec<ContainerInfo> = node
        .containers(Some(&uid(&never)))
        .await
        .unwrap()
        .into_iter()
        .filter(is_sandbox)
        .collect();
    assert_eq!(
        sandboxes.len(),
        1,
        "a new sandbox for a Never pod: {sandboxes:?}"
    );
    assert_eq!(
        sandboxes[0]
            .labels
            .get(labels::CONTAINER_ATTEMPT)
            .map(String::as_str),
        Some("0")
    );

    // The web container serves on the new sandbox's address, from the host.
    let duo = node.pods().get("duo").await.unwrap();
    let ip = pod_ip(&duo).unwrap();
    let body = reqwest::get(format!("http://{ip}:8080/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body.trim(), "duo");
    assert!(node.kubelet_running());
}
