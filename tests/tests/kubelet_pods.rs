//! Pods on real Docker through an in-process kubelet: networking inside a pod, volumes,
//! environment, init containers, resources, host ports, image pull failures, logs and
//! events.

use std::time::Duration;

use minik8s_tests::kubelet::{
    BUSYBOX, TestNode, condition, container_status, phase, waiting_reason,
};
use serde_json::json;

fn container(name: &str, script: &str) -> serde_json::Value {
    json!({"name": name, "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
           "command": ["sh", "-c", script]})
}

fn uid(pod: &minik8s_api::k8s_openapi::api::core::v1::Pod) -> String {
    pod.metadata.uid.clone().unwrap()
}

#[tokio::test]
async fn containers_of_a_pod_talk_over_localhost() {
    let node = TestNode::start().await.unwrap();
    node.create_pod(json!({
        "metadata": {"name": "talk"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [
            container("server", "echo hello-from-server > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"),
            container("client", "until wget -qO- http://localhost:8080/index.html; do sleep 0.2; done; exec sleep 3600"),
        ]}
    }))
    .await
    .unwrap();
    let pod = node.wait_ready("talk").await.unwrap();
    assert_eq!(phase(&pod), "Running");
    node.wait_log("talk", "client", "hello-from-server")
        .await
        .unwrap();
    // One network namespace, the pause container's, with the pod's address from the
    // node's pod CIDR.
    let status = pod.status.as_ref().unwrap();
    let ip = status.pod_ip.clone().unwrap();
    assert!(
        ip.starts_with(&format!("10.{}.", node.node_octet())),
        "{ip}"
    );
    assert_eq!(status.pod_ips.as_ref().unwrap()[0].ip, ip);
    assert!(status.host_ip.is_some());
    assert!(status.start_time.is_some());
    let server = container_status(&pod, "server").unwrap();
    assert!(
        server
            .container_id
            .as_deref()
            .unwrap()
            .starts_with("docker://")
    );
    assert!(server.image_id.starts_with("docker://sha256:"));
    assert_eq!(server.image, BUSYBOX);
    assert_eq!(server.started, Some(true));
    for kind in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert_eq!(condition(&pod, kind), Some("True"), "{kind}");
    }
    let containers = node.containers(Some(&uid(&pod))).await.unwrap();
    assert_eq!(containers.len(), 3, "pause + 2");
    // A pass that finds nothing to do writes nothing: the pod object stays as it is
    // through several resyncs (every 2 s here) and Docker events.
    let version = pod.metadata.resource_version.clone();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = node.pods().get("talk").await.unwrap();
    assert_eq!(later.metadata.resource_version, version, "status rewritten");
    let events = node.events("talk").await.unwrap();
    for wanted in [
        "Pulled: Container image \"minik8s/busybox:latest\" already present on machine",
        "Created: Created container server",
        "Started: Started container client",
    ] {
        assert!(
            events.iter().any(|e| e == wanted),
            "{wanted} not in {events:#?}"
        );
    }
}

#[tokio::test]
async fn host_path_and_empty_dir_volumes_are_shared() {
    let node = TestNode::start().await.unwrap();
    let host = node.root.path().join("host-data");
    node.create_pod(json!({
        "metadata": {"name": "volumes"},
        "spec": {"terminationGracePeriodSeconds": 1,
            "volumes": [
                {"name": "host", "hostPath": {"path": host.to_str().unwrap(), "type": "DirectoryOrCreate"}},
                {"name": "scratch", "emptyDir": {}}
            ],
            "containers": [
                {"name": "writer", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                 "command": ["sh", "-c", "echo from-pod > /host/out.txt && echo shared > /scratch/note && exec sleep 3600"],
                 "volumeMounts": [{"name": "host", "mountPath": "/host"},
                                  {"name": "scratch", "mountPath": "/scratch"}]},
                {"name": "reader", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                 "command": ["sh", "-c", "until [ -f /data/note ]; do sleep 0.2; done; echo \"read $(cat /data/note)\"; exec sleep 3600"],
                 "volumeMounts": [{"name": "scratch", "mountPath": "/data", "readOnly": true}]}
            ]}
    }))
    .await
    .unwrap();
    let pod = node.wait_ready("volumes").await.unwrap();
    node.wait_log("volumes", "reader", "read shared")
        .await
        .unwrap();
    assert!(host.is_dir(), "DirectoryOrCreate made the directory");
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(host.join("out.txt")).unwrap_or_default() != "from-pod\n" {
        assert!(
            tokio::time::Instant::now() < end,
            "the pod's file never reached the host"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The emptyDir lives under the kubelet's root, and goes with the pod.
    let empty_dir = node
        .root
        .path()
        .join("kubelet/pods")
        .join(uid(&pod))
        .join("volumes/kubernetes.io~empty-dir/scratch");
    assert_eq!(
        std::fs::read_to_string(empty_dir.join("note")).unwrap(),
        "shared\n"
    );
    node.pods()
        .delete("volumes", &Default::default())
        .await
        .unwrap();
    node.wait_gone("volumes", Duration::from_secs(30))
        .await
        .unwrap();
    assert!(!empty_dir.exists(), "the emptyDir was removed with the pod");
    assert!(host.join("out.txt").exists(), "a hostPath outlives the pod");

    // A hostPath of the wrong type keeps the pod from starting, with an event.
    let file = node.root.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    node.create_pod(json!({
        "metadata": {"name": "wrong-type"},
        "spec": {"volumes": [{"name": "h", "hostPath": {"path": file.to_str().unwrap(), "type": "Directory"}}],
                 "containers": [container("c", "sleep 3600")]}
    }))
    .await
    .unwrap();
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = node.events("wrong-type").await.unwrap();
        if events
            .iter()
            .any(|e| e.starts_with("FailedMount:") && e.contains("is not a directory"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "no FailedMount event: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pod = node.pods().get("wrong-type").await.unwrap();
    assert_eq!(phase(&pod), "Pending");
}

#[tokio::test]
async fn environment_values_and_field_refs() {
    let node = TestNode::start().await.unwrap();
    node.create_pod(json!({
        "metadata": {"name": "env", "labels": {"tier": "web"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "show", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "env | sort; echo \"args $0 $1\"; exec sleep 3600", "$(GREETING)", "$(POD_NAME)"],
            "workingDir": "/tmp",
            "env": [
                {"name": "GREETING", "value": "hello"},
                {"name": "COMBINED", "value": "$(GREETING)-world"},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}}
            ]}]}
    }))
    .await
    .unwrap();
    let pod = node.wait_ready("env").await.unwrap();
    let log = node.wait_log("env", "show", "args").await.unwrap();
    let ip = pod.status.as_ref().unwrap().pod_ip.clone().unwrap();
    for line in [
        "GREETING=hello".to_string(),
        "COMBINED=hello-world".to_string(),
        "POD_NAME=env".to_string(),
        "POD_NAMESPACE=default".to_string(),
        format!("POD_IP={ip}"),
        format!("NODE_NAME={}", node.node),
        "TIER=web".to_string(),
        "PWD=/tmp".to_string(),
        "HOSTNAME=env".to_string(),
        "args hello env".to_string(),
    ] {
        assert!(log.lines().any(|l| l == line), "{line:?} not in\n{log}");
    }
}

#[tokio::test]
async fn init_containers_run_first_and_in_order() {
    let node = TestNode::start().await.unwrap();
    let step = |name: &str| {
        json!({"name": name, "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
               "command": ["sh", "-c", format!("sleep 0.5; echo {name} >> /work/order")],
               "volumeMounts": [{"name": "work", "mountPath": "/work"}]})
    };
    node.create_pod(json!({
        "metadata": {"name": "init"},
        "spec": {"terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "work", "emptyDir": {}}],
            "initContainers": [step("first"), step("second")],
            "containers": [{"name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "echo app >> /work/order; cat /work/order; exec sleep 3600"],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}]}]}
    }))
    .await
    .unwrap();
    // While the first init container runs, the pod is Pending and not initialized.
    let pending = node
        .wait_pod("init", "initializing", Duration::from_secs(30), |p| {
            container_status(p, "first").is_some()
        })
        .await
        .unwrap();
    assert_eq!(phase(&pending), "Pending");
    let pod = node.wait_ready("init").await.unwrap();
    let log = node.wait_log("init", "app", "app").await.unwrap();
    assert_eq!(log, "first\nsecond\napp\n");
    for name in ["first", "second"] {
        let s = container_status(&pod, name).unwrap();
        let t = s.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(t.exit_code, 0);
        assert_eq!(t.reason.as_deref(), Some("Completed"));
    }
    assert_eq!(condition(&pod, "Initialized"), Some("True"));
}

#[tokio::test]
async fn resource_limits_reach_docker() {
    let node = TestNode::start().await.unwrap();
    node.create_pod(json!({
        "metadata": {"name": "limited"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "c", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "3600"],
            "resources": {"limits": {"memory": "64Mi", "cpu": "500m"},
                          "requests": {"memory": "32Mi", "cpu": "250m"}}}]}
    }))
    .await
    .unwrap();
    let pod = node.wait_ready("limited").await.unwrap();
    let containers = node.containers(Some(&uid(&pod))).await.unwrap();
    let c = containers
        .iter()
        .find(|c| {
            c.labels
                .get("io.kubernetes.container.name")
                .map(String::as_str)
                == Some("c")
        })
        .unwrap();
    assert_eq!(c.resources.memory_limit, Some(64 * 1024 * 1024));
    assert_eq!(c.resources.cpu_period, Some(100_000));
    assert_eq!(c.resources.cpu_quota, Some(50_000));
    assert_eq!(c.resources.cpu_shares, Some(256));
    assert_eq!(
        pod.status.as_ref().unwrap().qos_class.as_deref(),
        Some("Burstable")
    );
}

#[tokio::test]
async fn host_ports_are_reachable_from_the_host() {
    let node = TestNode::start().await.unwrap();
    let port = {
        let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        l.local_addr().unwrap().port()
    };
    node.create_pod(json!({
        "metadata": {"name": "web"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "httpd", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "echo served-by-pod > /tmp/index.html; exec httpd -f -p 80 -h /tmp"],
            "ports": [{"containerPort": 80, "hostPort": port}]}]}
    }))
    .await
    .unwrap();
    node.wait_ready("web").await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/index.html");
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    let body = loop {
        if let Ok(r) = http.get(&url).send().await
            && let Ok(text) = r.text().await
            && !text.is_empty()
        {
            break text;
        }
        assert!(tokio::time::Instant::now() < end, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body, "served-by-pod\n");
}

#[tokio::test]
async fn an_unpullable_image_reports_image_pull_back_off() {
    let node = TestNode::start().await.unwrap();
    node.create_pod(json!({
        "metadata": {"name": "nowhere"},
        "spec": {"containers": [{"name": "c", "image": "registry.minik8s.invalid/nothing:1",
                                  "command": ["true"]}]}
    }))
    .await
    .unwrap();
    let pod = node
        .wait_pod(
            "nowhere",
            "in ImagePullBackOff",
            Duration::from_secs(60),
            |p| waiting_reason(p, "c") == Some("ImagePullBackOff"),
        )
        .await
        .unwrap();
    assert_eq!(phase(&pod), "Pending");
    let events = node.events("nowhere").await.unwrap();
    assert!(
        events.iter().any(|e| e
            .starts_with("Failed: Failed to pull image \"registry.minik8s.invalid/nothing:1\"")),
        "{events:#?}"
    );
    assert!(events.iter().any(|e| e == "Failed: Error: ErrImagePull"));
    // The pull failed, nothing crashed: the kubelet still serves other pods.
    node.create_pod(json!({
        "metadata": {"name": "fine"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [container("c", "exec sleep 3600")]}
    }))
    .await
    .unwrap();
    node.wait_ready("fine").await.unwrap();
}

#[tokio::test]
async fn host_network_pods_share_the_host_address() {
    let node = TestNode::start().await.unwrap();
    node.create_pod(json!({
        "metadata": {"name": "on-host"},
        "spec": {"hostNetwork": true, "terminationGracePeriodSeconds": 1,
                 "containers": [container("c", "echo \"host $(hostname)\"; exec sleep 3600")]}
    }))
    .await
    .unwrap();
    let pod = node.wait_ready("on-host").await.unwrap();
    let status = pod.status.as_ref().unwrap();
    assert_eq!(status.pod_ip, status.host_ip);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    node.wait_log("on-host", "c", &format!("host {}", hostname.trim()))
        .await
        .unwrap();
}

#[tokio::test]
async fn pause_is_init_of_a_shared_process_namespace_and_reaps_orphans() {
    use minik8s_kubelet::labels;
    use minik8s_kubelet::runtime::ContainerRuntime;
    let node = TestNode::start().await.unwrap();
    node.create_pod(json!({
        "metadata": {"name": "shared-pid"},
        "spec": {"shareProcessNamespace": true, "terminationGracePeriodSeconds": 1,
                 "containers": [container("c",
                     "(sleep 0.3 &); sleep 2; echo begin; ps -o pid,stat,comm; echo end; exec sleep 3600")]}
    }))
    .await
    .unwrap();
    let pod = node.wait_ready("shared-pid").await.unwrap();
    let log = node.wait_log("shared-pid", "c", "end").await.unwrap();
    let table: Vec<&str> = log
        .lines()
        .skip_while(|l| *l != "begin")
        .skip(2)
        .take_while(|l| *l != "end")
        .collect();
    assert!(
        table.iter().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.first() == Some(&"1") && f.last() == Some(&"pause")
        }),
        "pause is not PID 1:\n{log}"
    );
    assert!(
        table
            .iter()
            .all(|l| !l.split_whitespace().nth(1).unwrap_or("").starts_with('Z')),
        "a zombie was left:\n{log}"
    );
    // SIGTERM ends pause at once, with status 0.
    let uid = pod.metadata.uid.clone().unwrap();
    let sandbox = node
        .containers(Some(&uid))
        .await
        .unwrap()
        .into_iter()
        .find(|c| {
            c.labels.get(labels::CONTAINER_TYPE).map(String::as_str) == Some(labels::TYPE_SANDBOX)
        })
        .unwrap();
    let started = std::time::Instant::now();
    node.docker
        .stop_container(&sandbox.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let stopped = node
        .docker
        .inspect_container(&sandbox.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stopped.exit_code, 0);
}
