//! What the kubectl tests share: an in-process API server with a kubeconfig, our kubectl
//! run in-process with captured output, the system's kubectl run as a process, pods put
//! into each state kubectl shows, and the masking of columns that depend on the clock.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use minik8s_api::resource::{EVENTS, NODES, PODS};
use minik8s_client::{Client, Config, DeleteParams, DynamicApi};
use minik8s_tests::apiserver::{Backend, TestApiServer};
use serde_json::{Value, json};

/// What one kubectl run printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: i32,
    pub out: String,
    pub err: String,
}

impl Output {
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "kubectl failed:\nstdout:\n{}\nstderr:\n{}",
            self.out, self.err
        );
        &self.out
    }
}

pub struct Cluster {
    pub srv: TestApiServer,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub client: Client,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let srv = TestApiServer::start(Backend::Embedded)
            .await
            .expect("apiserver starts");
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = srv.write_kubeconfig(dir.path()).unwrap();
        let client = Client::new(Config::new(srv.url.parse().unwrap())).unwrap();
        Cluster {
            srv,
            dir,
            kubeconfig,
            client,
        }
    }

    /// A cluster whose API server runs its controllers: the endpoints controller and
    /// the `kubernetes` service, for the service tests.
    pub async fn start_with_controllers() -> Cluster {
        let srv = TestApiServer::start_with_controllers(Backend::Embedded)
            .await
            .expect("apiserver starts");
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = srv.write_kubeconfig(dir.path()).unwrap();
        let client = Client::new(Config::new(srv.url.parse().unwrap())).unwrap();
        Cluster {
            srv,
            dir,
            kubeconfig,
            client,
        }
    }

    /// Our kubectl, in-process, with this cluster's kubeconfig.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, "").await
    }

    pub async fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut argv: Vec<&str> = args.to_vec();
        let kubeconfig = self.kubeconfig.display().to_string();
        argv.extend(["--kubeconfig", &kubeconfig]);
        kubectl_raw(&argv, stdin).await
    }

    /// The system's kubectl against this cluster.
    pub async fn real_kubectl(&self, args: &[&str]) -> Output {
        let out = tokio::process::Command::new(real_kubectl_path())
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .env_remove("KUBECONFIG")
            .env("TZ", "UTC")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .expect("kubectl finished in time")
            .expect("kubectl runs");
        Output {
            code: out.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&out.stdout).into_owned(),
            err: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Writes a file into the test's directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    pub fn pods(&self, namespace: &str) -> DynamicApi {
        DynamicApi::new(self.client.clone(), &PODS, Some(namespace.to_string()))
    }
}

/// Our kubectl with exactly these arguments.
pub async fn kubectl_raw(args: &[&str], stdin: &str) -> Output {
    let mut argv: Vec<OsString> = vec!["kubectl".into()];
    argv.extend(args.iter().map(OsString::from));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input = stdin.as_bytes();
    let code = tokio::time::timeout(
        Duration::from_secs(60),
        minik8s_kubectl::run(argv, &mut input, &mut out, &mut err),
    )
    .await
    .expect("kubectl finished in time");
    Output {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

/// The system's kubectl: found on PATH, skipping anything built by this workspace.
pub fn real_kubectl_path() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|d| !d.components().any(|c| c.as_os_str() == "target"))
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .expect("the real kubectl must be installed for this test (v1.32 or newer)")
}

pub fn ts(seconds_ago: i64) -> String {
    let t = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(seconds_ago);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub const START: &str = "2024-05-01T10:00:00Z";
pub const STARTED: &str = "2024-05-01T10:00:10Z";
pub const FINISHED: &str = "2024-05-01T10:00:40Z";

fn pod(name: &str, node: Option<&str>, init: bool) -> Value {
    let mut spec = json!({
        "containers": [{
            "name": "app", "image": "busybox:1.36", "command": ["sleep", "3600"],
            "ports": [{"containerPort": 8080}],
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5},
            "env": [{"name": "MODE", "value": "prod"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]
        }],
        "volumes": [{"name": "data", "emptyDir": {}}]
    });
    if init {
        spec["initContainers"] = json!([{"name": "setup", "image": "busybox:1.36",
                                         "command": ["sh", "-c", "echo hi"]}]);
    }
    match node {
        Some(n) => spec["nodeName"] = json!(n),
        // Kept off every node even if a scheduler ran.
        None => spec["nodeSelector"] = json!({"disk": "none"}),
    }
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "labels": {"app": name, "tier": "demo"}}, "spec": spec})
}

fn condition(kind: &str, status: &str) -> Value {
    json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": START})
}

fn conditions(ready: bool, initialized: bool) -> Value {
    let r = if ready { "True" } else { "False" };
    let i = if initialized { "True" } else { "False" };
    json!([
        condition("Initialized", i),
        condition("Ready", r),
        condition("ContainersReady", r),
        condition("PodScheduled", "True")
    ])
}

fn container_status(ready: bool, restarts: i64, state: Value) -> Value {
    json!({"name": "app", "ready": ready, "restartCount": restarts, "image": "busybox:1.36",
           "imageID": "docker-pullable://busybox@sha256:0123abcd", "containerID": "docker://c0ffee",
           "started": ready, "state": state})
}

fn scheduled_status(phase: &str, ip: &str) -> Value {
    json!({"phase": phase, "hostIP": "10.0.0.1", "podIP": ip, "podIPs": [{"ip": ip}],
           "startTime": START})
}

async fn create_with_status(c: &Cluster, ns: &str, pod: Value, status: Option<Value>) {
    let api = c.pods(ns);
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let created = api.create(&pod).await.expect("pod created");
    if let Some(mut status) = status {
        let mut object = created;
        // Keep what the server set (qosClass) and add the test's fields.
        if let (Some(have), Some(want)) = (
            object["status"].as_object().cloned(),
            status.as_object_mut(),
        ) {
            for (k, v) in have {
                want.entry(k).or_insert(v);
            }
        }
        object["status"] = status;
        api.replace_status(&name, &object)
            .await
            .expect("status set");
    }
}

/// A node and pods in every state kubectl's STATUS column knows, in `default` (and one
/// in `other`), plus events about `running`:
/// pending, creating (ContainerCreating), running, completed, failed (Error),
/// crashloop (CrashLoopBackOff, 5 restarts, the last 20 minutes ago), initializing
/// (Init:0/1) and terminating.
pub async fn seed(c: &Cluster) {
    let nodes = DynamicApi::new(c.client.clone(), &NODES, None);
    let node = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1",
                     "node-role.kubernetes.io/control-plane": ""}}});
    let mut node = nodes.create(&node).await.expect("node created");
    node["status"] = json!({
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": FINISHED, "lastTransitionTime": START}],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                      {"type": "Hostname", "address": "node-1"}],
        "nodeInfo": {"machineID": "m-1", "systemUUID": "s-1", "bootID": "b-1",
                     "kernelVersion": "6.1.0", "osImage": "Debian GNU/Linux 12",
                     "containerRuntimeVersion": "docker://24.0.7",
                     "kubeletVersion": "v1.33.0-minik8s", "kubeProxyVersion": "",
                     "operatingSystem": "linux", "architecture": "amd64"}});
    nodes
        .replace_status("node-1", &node)
        .await
        .expect("node status");

    let running = json!({"running": {"startedAt": STARTED}});
    create_with_status(c, "default", pod("pending", None, false), None).await;

    let mut creating = scheduled_status("Pending", "");
    creating.as_object_mut().unwrap().remove("podIP");
    creating.as_object_mut().unwrap().remove("podIPs");
    creating["conditions"] = json!([condition("PodScheduled", "True")]);
    let mut waiting = container_status(
        false,
        0,
        json!({"waiting": {"reason": "ContainerCreating"}}),
    );
    waiting["imageID"] = json!("");
    waiting.as_object_mut().unwrap().remove("containerID");
    creating["containerStatuses"] = json!([waiting]);
    create_with_status(
        c,
        "default",
        pod("creating", Some("node-1"), false),
        Some(creating),
    )
    .await;

    let mut status = scheduled_status("Running", "10.244.0.5");
    status["conditions"] = conditions(true, true);
    status["containerStatuses"] = json!([container_status(true, 0, running.clone())]);
    create_with_status(
        c,
        "default",
        pod("running", Some("node-1"), false),
        Some(status),
    )
    .await;

    let mut status = scheduled_status("Succeeded", "10.244.0.6");
    status["conditions"] = conditions(false, true);
    status["containerStatuses"] = json!([container_status(
        false,
        0,
        json!({"terminated": {
        "exitCode": 0, "reason": "Completed", "startedAt": STARTED, "finishedAt": FINISHED}})
    )]);
    create_with_status(
        c,
        "default",
        pod("completed", Some("node-1"), false),
        Some(status),
    )
    .await;

    let mut status = scheduled_status("Failed", "10.244.0.7");
    status["conditions"] = conditions(false, true);
    status["containerStatuses"] = json!([container_status(
        false,
        0,
        json!({"terminated": {
        "exitCode": 1, "reason": "Error", "message": "boom", "startedAt": STARTED,
        "finishedAt": FINISHED}})
    )]);
    create_with_status(
        c,
        "default",
        pod("failed", Some("node-1"), false),
        Some(status),
    )
    .await;

    let mut status = scheduled_status("Running", "10.244.0.8");
    status["conditions"] = conditions(false, true);
    let mut crash = container_status(
        false,
        5,
        json!({"waiting": {"reason": "CrashLoopBackOff",
        "message": "back-off 5m0s restarting failed container"}}),
    );
    crash["lastState"] = json!({"terminated": {"exitCode": 2, "reason": "Error",
        "startedAt": ts(20 * 60 + 10), "finishedAt": ts(20 * 60)}});
    status["containerStatuses"] = json!([crash]);
    create_with_status(
        c,
        "default",
        pod("crashloop", Some("node-1"), false),
        Some(status),
    )
    .await;

    let mut status = scheduled_status("Pending", "10.244.0.9");
    status["conditions"] = conditions(false, false);
    let mut init = container_status(false, 0, running.clone());
    init["name"] = json!("setup");
    status["initContainerStatuses"] = json!([init]);
    let mut app = container_status(false, 0, json!({"waiting": {"reason": "PodInitializing"}}));
    app["imageID"] = json!("");
    app.as_object_mut().unwrap().remove("containerID");
    status["containerStatuses"] = json!([app]);
    create_with_status(
        c,
        "default",
        pod("initializing", Some("node-1"), true),
        Some(status),
    )
    .await;

    let mut status = scheduled_status("Running", "10.244.0.10");
    status["conditions"] = conditions(true, true);
    status["containerStatuses"] = json!([container_status(true, 0, running.clone())]);
    create_with_status(
        c,
        "default",
        pod("terminating", Some("node-1"), false),
        Some(status),
    )
    .await;
    // Bound to a node, so the server keeps it, marked, for its kubelet to finish.
    c.pods("default")
        .delete("terminating", &DeleteParams::default())
        .await
        .expect("deletion starts");

    let namespaces = DynamicApi::new(c.client.clone(), &minik8s_api::resource::NAMESPACES, None);
    namespaces
        .create(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}))
        .await
        .expect("namespace created");
    create_with_status(c, "other", pod("elsewhere", None, false), None).await;

    let uid = c.pods("default").get("running").await.unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let events = DynamicApi::new(c.client.clone(), &EVENTS, Some("default".into()));
    for (name, kind, reason, message, count, first, last, field) in [
        (
            "running.pulled",
            "Normal",
            "Pulled",
            "Container image \"busybox:1.36\" already present on machine",
            1,
            3 * 3600,
            3 * 3600,
            Some("spec.containers{app}"),
        ),
        (
            "running.unhealthy",
            "Warning",
            "Unhealthy",
            "Liveness probe failed: HTTP probe failed with statuscode: 500",
            4,
            5 * 86400,
            2 * 3600,
            None,
        ),
    ] {
        let mut involved = json!({"kind": "Pod", "namespace": "default", "name": "running",
                                  "uid": uid, "apiVersion": "v1"});
        if let Some(f) = field {
            involved["fieldPath"] = json!(f);
        }
        events
            .create(
                &json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
                "involvedObject": involved, "reason": reason, "message": message,
                "source": {"component": "kubelet", "host": "node-1"},
                "firstTimestamp": ts(first), "lastTimestamp": ts(last), "count": count,
                "type": kind}),
            )
            .await
            .expect("event created");
    }
}

/// A running, ready (or not) pod with a container port `http` 8080 and a `metrics`
/// port 9090, labelled `app`.
pub async fn running_pod(c: &Cluster, ns: &str, name: &str, app: &str, ip: &str, ready: bool) {
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "busybox:1.36",
            "ports": [{"name": "http", "containerPort": 8080},
                      {"name": "metrics", "containerPort": 9090}]}]}});
    let mut status = scheduled_status("Running", ip);
    status["conditions"] = conditions(ready, true);
    status["containerStatuses"] = json!([container_status(
        ready,
        0,
        json!({"running": {"startedAt": STARTED}})
    )]);
    create_with_status(c, ns, pod, Some(status)).await;
}

/// Services of every kind over pods in `default`, their endpoints kept by the
/// controller: `web` (ClusterIP, named ports, one target port by name, over four ready
/// pods and one that is not), `np` (NodePort, ClientIP affinity, Local traffic), `hl`
/// (headless), `lonely` (selecting nothing), `db` (one port, no selector). Fixed cluster
/// IPs and node ports, so that descriptions can be compared with text. Waits until the
/// endpoint slices show every ready pod.
pub async fn seed_services(c: &Cluster) {
    for (i, ready) in [true, true, true, false, true].into_iter().enumerate() {
        let name = format!("web-{}", i + 1);
        running_pod(
            c,
            "default",
            &name,
            "web",
            &format!("10.244.0.{}", 21 + i),
            ready,
        )
        .await;
    }
    let services = DynamicApi::new(
        c.client.clone(),
        &minik8s_api::resource::SERVICES,
        Some("default".into()),
    );
    for service in [
        json!({"metadata": {"name": "web", "labels": {"app": "web", "tier": "front"},
                            "annotations": {"team": "shop"}},
               "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.50",
                        "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                                  {"name": "metrics", "port": 9090}]}}),
        json!({"metadata": {"name": "np"},
               "spec": {"type": "NodePort", "selector": {"app": "web"},
                        "clusterIP": "10.96.0.51", "sessionAffinity": "ClientIP",
                        "externalTrafficPolicy": "Local",
                        "ports": [{"port": 8080, "nodePort": 30080, "protocol": "TCP"}]}}),
        json!({"metadata": {"name": "hl"},
               "spec": {"clusterIP": "None", "selector": {"app": "web"},
                        "ports": [{"port": 80, "targetPort": 8080}]}}),
        json!({"metadata": {"name": "lonely"},
               "spec": {"selector": {"app": "nothing"}, "clusterIP": "10.96.0.52",
                        "ports": [{"port": 53, "protocol": "UDP"}]}}),
        json!({"metadata": {"name": "db"},
               "spec": {"clusterIP": "10.96.0.53", "ports": [{"port": 5432}]}}),
    ] {
        let mut service = service;
        service["apiVersion"] = json!("v1");
        service["kind"] = json!("Service");
        services.create(&service).await.expect("service created");
    }
    let slices = DynamicApi::new(
        c.client.clone(),
        &minik8s_api::resource::ENDPOINT_SLICES,
        Some("default".into()),
    );
    eventually("the endpoint slices of web, np and hl", async || {
        let Ok(list) = slices.list_all(&Default::default()).await else {
            return false;
        };
        ["web", "np", "hl"].iter().all(|service| {
            list.items.iter().any(|slice| {
                slice["metadata"]["labels"]["kubernetes.io/service-name"] == *service
                    && slice["endpoints"].as_array().map_or(0, Vec::len) == 5
            })
        })
    })
    .await;
}

/// Replaces every cell of the column headed `column` by `?`, keeping the layout of the
/// rest of each line (the clock-dependent AGE and LAST SEEN columns). Works on tables
/// whose header is the first line.
pub fn mask_column(text: &str, column: &str) -> String {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return String::new();
    };
    let start = if header.starts_with(&format!("{column} ")) || header == column {
        0
    } else {
        match header.find(&format!("   {column}")) {
            Some(i) => i + 3,
            None => return text.to_string(),
        }
    };
    let mut out = format!("{header}\n");
    for line in lines {
        out.push_str(&mask_at(line, start));
        out.push('\n');
    }
    out
}

/// Masks the cell starting at byte `start` of a line.
pub fn mask_at(line: &str, start: usize) -> String {
    if line.len() <= start || !line.is_char_boundary(start) {
        return line.to_string();
    }
    let rest = &line[start..];
    let len = rest.find(' ').unwrap_or(rest.len());
    let after = &rest[len..];
    // The last cell is not padded; others keep their width.
    let pad = if after.is_empty() {
        0
    } else {
        len.saturating_sub(1)
    };
    format!("{}?{}{after}", &line[..start], " ".repeat(pad))
}

/// Lines of a command's output with runs of spaces collapsed.
pub fn words(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Polls until `check` holds.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < end {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

pub fn path_of(p: &Path) -> String {
    p.display().to_string()
}
