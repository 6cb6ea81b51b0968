//! The worker's decisions against the fake runtime: what it creates, starts, stops and
//! reports, pass after pass.

use std::sync::Mutex;

use jiff::SignedDuration;
use serde_json::json;

use super::*;
use crate::runtime::{FakeRuntime, NetworkMode, RuntimeCall, SharedNamespace};

const IMAGE: &str = "img:1";
const PAUSE: &str = "pause:test";

/// Records statuses and deletions, and answers like the API server would.
#[derive(Default)]
struct FakeApi {
    statuses: Mutex<Vec<PodStatus>>,
    deleted: Mutex<Vec<String>>,
    /// Refuses every status, as an unreachable API server would.
    down: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl PodApi for FakeApi {
    async fn patch_status(
        &self,
        pod: &Pod,
        _old: Option<&PodStatus>,
        status: &PodStatus,
    ) -> Result<Pod> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::Error::Config("connection refused".into()));
        }
        let mut statuses = self.statuses.lock().unwrap();
        statuses.push(status.clone());
        let mut updated = pod.clone();
        updated.status = Some(status.clone());
        updated.metadata.resource_version = Some((100 + statuses.len()).to_string());
        Ok(updated)
    }

    async fn delete_pod(&self, pod: &Pod) -> Result<()> {
        self.deleted
            .lock()
            .unwrap()
            .push(pod.metadata.name.clone().unwrap_or_default());
        Ok(())
    }
}

struct Harness {
    fake: FakeRuntime,
    api: Arc<FakeApi>,
    worker: PodWorker,
    wake: Arc<Notify>,
    pod: Pod,
    _root: tempfile::TempDir,
}

fn pod(spec: serde_json::Value) -> Pod {
    let mut pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "uid-1",
                     "resourceVersion": "10"},
        "spec": spec,
    }))
    .unwrap();
    minik8s_api::defaults::default_pod(&mut pod);
    pod
}

fn app(name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({"name": name, "image": IMAGE, "command": ["run", name]});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    c
}

impl Harness {
    fn new(pod: Pod) -> Harness {
        let fake = FakeRuntime::new();
        fake.add_image(IMAGE);
        fake.add_image(PAUSE);
        Harness::with_runtime(pod, fake)
    }

    fn with_runtime(pod: Pod, fake: FakeRuntime) -> Harness {
        Harness::with_ipam(pod, fake, false)
    }

    /// With `ipam`, the worker picks pod addresses from 10.1.0.0/24 itself.
    fn with_ipam(pod: Pod, fake: FakeRuntime, ipam: bool) -> Harness {
        Harness::with_services(pod, fake, ipam, Vec::new())
    }

    /// With these services in the cluster.
    fn with_services(
        pod: Pod,
        fake: FakeRuntime,
        ipam: bool,
        services: Vec<k8s_openapi::api::core::v1::Service>,
    ) -> Harness {
        let root = tempfile::tempdir().unwrap();
        let ipam = ipam.then(|| {
            Arc::new(crate::ipam::Ipam::new(
                "minik8s-node-1",
                "10.1.0.0/24".parse().unwrap(),
                "10.1.0.1".parse().unwrap(),
                root.path(),
            ))
        });
        let api = Arc::new(FakeApi::default());
        let hosts = crate::hosts::Hosts::new(
            None,
            Arc::new(fake.clone()),
            Recorder::discard("node-1"),
            "node-1",
            root.path(),
        );
        let env = Arc::new(WorkerEnv {
            hosts,
            runtime: Arc::new(fake.clone()),
            api: api.clone(),
            recorder: Recorder::discard("node-1"),
            node_name: "node-1".into(),
            network: "minik8s-node-1".into(),
            host_ip: Some("192.168.0.10".parse().unwrap()),
            root_dir: root.path().to_path_buf(),
            pause_image: PAUSE.into(),
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            image_pull_timeout: Duration::from_secs(5),
            ipam,
            services: crate::pod::service_env::ServiceCache::fixed(services),
            objects: crate::objects::ConfigObjects::fixed(Vec::new(), Vec::new()),
            dns: crate::resolv::PodDns::default(),
        });
        let wake = Arc::new(Notify::new());
        let worker = PodWorker::new(env, "uid-1", wake.clone());
        Harness {
            fake,
            api,
            worker,
            wake,
            pod,
            _root: root,
        }
    }

    /// A second worker on the same runtime, as a restarted kubelet would have.
    fn restarted(&self) -> Harness {
        let mut h = Harness::with_runtime(self.pod.clone(), self.fake.clone());
        h.pod.status = self.last_status();
        h
    }

    async fn sync(&mut self) -> Next {
        let pod = self.pod.clone();
        self.worker.sync(&pod).await.unwrap()
    }

    fn last_status(&self) -> Option<PodStatus> {
        self.api.statuses.lock().unwrap().last().cloned()
    }

    fn status(&self) -> PodStatus {
        self.last_status().expect("a status was sent")
    }

    fn phase(&self) -> String {
        self.status().phase.unwrap()
    }

    fn container_status(&self, name: &str) -> k8s_openapi::api::core::v1::ContainerStatus {
        let s = self.status();
        s.container_statuses
            .into_iter()
            .flatten()
            .chain(s.init_container_statuses.into_iter().flatten())
            .find(|c| c.name == name)
            .unwrap()
    }

    fn waiting_reason(&self, name: &str) -> Option<String> {
        self.container_status(name)
            .state
            .and_then(|s| s.waiting)
            .and_then(|w| w.reason)
    }

    /// The latest container of `name` ("POD" for the sandbox).
    fn latest(&self, name: &str) -> ContainerInfo {
        self.fake
            .containers()
            .into_iter()
            .filter(|c| c.labels.get(labels::CONTAINER_NAME).map(String::as_str) == Some(name))
            .max_by_key(attempt)
            .unwrap_or_else(|| panic!("no container {name}"))
    }

    fn count(&self, name: &str) -> usize {
        self.fake
            .containers()
            .iter()
            .filter(|c| c.labels.get(labels::CONTAINER_NAME).map(String::as_str) == Some(name))
            .count()
    }

    fn creates(&self) -> Vec<String> {
        self.fake
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                RuntimeCall::Create(name) => Some(name),
                _ => None,
            })
            .collect()
    }

    /// Makes the latest container of `name` exit `ago` seconds ago.
    fn exit(&self, name: &str, code: i64, ago: i64) {
        let c = self.latest(name);
        let at = Timestamp::now() - SignedDuration::from_secs(ago);
        self.fake.exit(&c.id, code, at);
    }
}

#[tokio::test]
async fn sandbox_then_init_containers_in_order_then_app_containers() {
    let mut h = Harness::new(pod(json!({
        "initContainers": [app("init-a", json!({})), app("init-b", json!({}))],
        "containers": [app("main", json!({})), app("side", json!({}))],
        "hostname": "web-host",
    })));
    h.sync().await;
    assert_eq!(
        h.creates(),
        [
            "k8s_POD_web_default_uid-1_0",
            "k8s_init-a_web_default_uid-1_0"
        ]
    );
    let sandbox = h.latest("POD");
    let sandbox_config = h.fake.config(&sandbox.id).unwrap();
    assert_eq!(sandbox_config.hostname.as_deref(), Some("web-host"));
    assert_eq!(sandbox_config.ipc, SharedNamespace::Shareable);
    assert_eq!(
        sandbox_config.network,
        NetworkMode::Network("minik8s-node-1".into())
    );
    assert_eq!(h.phase(), "Pending");
    assert_eq!(h.waiting_reason("main").as_deref(), Some("PodInitializing"));

    // Running init container: nothing more happens.
    h.fake.clear_calls();
    h.sync().await;
    assert!(h.creates().is_empty());

    h.exit("init-a", 0, 0);
    h.sync().await;
    assert_eq!(h.creates(), ["k8s_init-b_web_default_uid-1_0"]);
    h.exit("init-b", 0, 0);
    h.fake.clear_calls();
    h.sync().await;
    assert_eq!(
        h.creates(),
        [
            "k8s_main_web_default_uid-1_0",
            "k8s_side_web_default_uid-1_0"
        ]
    );
    let main = h.fake.config(&h.latest("main").id).unwrap();
    assert_eq!(main.network, NetworkMode::Container(sandbox.id.clone()));
    assert_eq!(main.ipc, SharedNamespace::Container(sandbox.id.clone()));
    assert_eq!(
        main.entrypoint.as_deref(),
        Some(&["run".to_string(), "main".to_string()][..])
    );
    assert_eq!(h.phase(), "Running");
    let status = h.status();
    assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.2"));
    assert_eq!(status.host_ip.as_deref(), Some("192.168.0.10"));
    let ready = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
}

#[tokio::test]
async fn a_second_pass_changes_nothing() {
    let mut h = Harness::new(pod(json!({"containers": [app("main", json!({}))]})));
    h.sync().await;
    h.sync().await;
    let patches = h.api.statuses.lock().unwrap().len();
    h.fake.clear_calls();
    h.sync().await;
    h.sync().await;
    assert!(h.creates().is_empty(), "{:?}", h.fake.calls());
    assert!(
        h.fake
            .calls()
            .iter()
            .all(|c| !matches!(c, RuntimeCall::Start(_) | RuntimeCall::Stop(..))),
        "{:?}",
        h.fake.calls()
    );
    assert_eq!(
        h.api.statuses.lock().unwrap().len(),
        patches,
        "status resent"
    );
}

#[tokio::test]
async fn restart_policy_table() {
    // (policy, exit code, restarted, phase, restart count)
    let table = [
        ("Always", 0, true, "Running", 1),
        ("Always", 1, true, "Running", 1),
        ("OnFailure", 0, false, "Succeeded", 0),
        ("OnFailure", 3, true, "Running", 1),
        ("Never", 0, false, "Succeeded", 0),
        ("Never", 3, false, "Failed", 0),
    ];
    for (policy, code, restarted, phase, restarts) in table {
        let mut h = Harness::new(pod(json!({
            "restartPolicy": policy,
            "containers": [app("main", json!({}))],
        })));
        h.sync().await;
        h.exit("main", code, 0);
        h.sync().await;
        assert_eq!(
            h.count("main"),
            1 + usize::from(restarted),
            "{policy} {code}"
        );
        assert_eq!(h.phase(), phase, "{policy} {code}");
        assert_eq!(
            h.container_status("main").restart_count,
            restarts,
            "{policy} {code}"
        );
        if !restarted {
            let state = h.container_status("main").state.unwrap();
            let t = state.terminated.expect("terminated");
            assert_eq!(t.exit_code, code as i32);
            assert_eq!(
                t.reason.as_deref(),
                Some(if code == 0 { "Completed" } else { "Error" })
            );
        }
        if phase == "Succeeded" || phase == "Failed" {
            // The sandbox is stopped once the pod is done.
            assert_eq!(h.latest("POD").state, ContainerState::Exited);
            // And nothing restarts later.
            h.sync().await;
            assert_eq!(h.count("main"), 1);
            assert_eq!(h.phase(), phase);
        }
    }
}

#[tokio::test]
async fn on_failure_succeeds_after_a_failure() {
    let mut h = Harness::new(pod(json!({
        "restartPolicy": "OnFailure",
        "containers": [app("main", json!({}))],
    })));
    h.sync().await;
    h.exit("main", 1, 0);
    h.sync().await;
    h.exit("main", 0, 0);
    h.sync().await;
    assert_eq!(h.phase(), "Succeeded");
    let s = h.container_status("main");
    assert_eq!(s.restart_count, 1);
    assert_eq!(
        s.last_state.unwrap().terminated.unwrap().exit_code,
        1,
        "lastState holds the failure"
    );
}

#[tokio::test]
async fn crash_loop_back_off_waits_doubling_from_the_exit() {
    let mut h = Harness::new(pod(json!({"containers": [app("main", json!({}))]})));
    h.sync().await;
    // First exit: restarted at once.
    h.exit("main", 1, 0);
    h.sync().await;
    assert_eq!(h.count("main"), 2);
    // Second exit: back-off of 10 s.
    h.exit("main", 1, 0);
    let next = h.sync().await;
    assert_eq!(h.count("main"), 2);
    assert_eq!(
        h.waiting_reason("main").as_deref(),
        Some("CrashLoopBackOff")
    );
    let s = h.container_status("main");
    assert_eq!(s.restart_count, 1);
    assert!(
        s.state
            .unwrap()
            .waiting
            .unwrap()
            .message
            .unwrap()
            .starts_with("back-off 10s restarting failed container=main pod=web_default(uid-1)")
    );
    assert_eq!(s.last_state.unwrap().terminated.unwrap().exit_code, 1);
    match next {
        Next::After(Some(d)) => assert!(
            d <= Duration::from_secs(10) && d > Duration::from_secs(8),
            "{d:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.phase(), "Running");
    // Ten seconds after that exit it restarts.
    let latest = h.latest("main");
    let at = Timestamp::now() - SignedDuration::from_secs(11);
    h.fake.set_times(&latest.id, Some(at), Some(at));
    h.sync().await;
    assert_eq!(h.container_status("main").restart_count, 2);
    assert!(h.container_status("main").state.unwrap().running.is_some());
    // Old attempts are pruned: the current one and the one before stay.
    assert_eq!(h.count("main"), 2);
    // The next back-off is 20 s.
    h.exit("main", 1, 0);
    h.sync().await;
    let message = h
        .container_status("main")
        .state
        .unwrap()
        .waiting
        .unwrap()
        .message
        .unwrap();
    assert!(message.starts_with("back-off 20s"), "{message}");
}

#[tokio::test]
async fn unpullable_images_wait_in_back_off() {
    let mut h = Harness::new(pod(json!({
        "containers": [app("main", json!({"image": "nowhere/app:1", "imagePullPolicy": "IfNotPresent"}))],
    })));
    let next = h.sync().await;
    assert_eq!(h.waiting_reason("main").as_deref(), Some("ErrImagePull"));
    assert!(matches!(next, Next::After(Some(_))));
    h.sync().await;
    assert_eq!(
        h.waiting_reason("main").as_deref(),
        Some("ImagePullBackOff")
    );
    assert_eq!(h.phase(), "Pending");
    let pulls = h
        .fake
        .calls()
        .iter()
        .filter(|c| matches!(c, RuntimeCall::PullImage(_)))
        .count();
    assert_eq!(pulls, 1, "no pull during the back-off");
    // Once pullable, the next attempt after the back-off works.
    h.fake.allow_pull("nowhere/app:1");
    h.worker.pull_failures.insert(
        "nowhere/app:1".into(),
        Timestamp::now() - SignedDuration::from_secs(60),
    );
    h.sync().await;
    assert!(h.container_status("main").state.unwrap().running.is_some());
}

#[tokio::test]
async fn never_pull_and_config_errors_are_reported() {
    let mut h = Harness::new(pod(json!({
        "containers": [
            app("a", json!({"image": "absent:1", "imagePullPolicy": "Never"})),
            app("b", json!({"volumeMounts": [{"name": "missing", "mountPath": "/x"}]})),
        ],
    })));
    h.sync().await;
    assert_eq!(h.waiting_reason("a").as_deref(), Some("ErrImageNeverPull"));
    assert_eq!(
        h.waiting_reason("b").as_deref(),
        Some("CreateContainerConfigError")
    );
}

#[tokio::test]
async fn a_new_worker_adopts_containers_without_restarting_them() {
    let mut h = Harness::new(pod(json!({"containers": [app("main", json!({}))]})));
    h.sync().await;
    h.exit("main", 1, 0);
    h.sync().await;
    assert_eq!(h.container_status("main").restart_count, 1);
    h.fake.clear_calls();
    let mut again = h.restarted();
    again.sync().await;
    again.sync().await;
    assert!(again.creates().is_empty(), "{:?}", again.fake.calls());
    assert!(
        !again
            .fake
            .calls()
            .iter()
            .any(|c| matches!(c, RuntimeCall::Stop(..)))
    );
    assert_eq!(again.count("POD"), 1);
    assert_eq!(again.count("main"), 2);
    // It sees the same containers, with their restart count, so the status it computes
    // is the one already sent: nothing to send.
    assert!(again.api.statuses.lock().unwrap().is_empty());
    let s = h.container_status("main");
    assert_eq!(s.restart_count, 1);
    assert!(s.state.unwrap().running.is_some());
}

#[tokio::test]
async fn graceful_deletion_stops_removes_and_deletes_the_pod() {
    let mut h = Harness::new(pod(json!({
        "terminationGracePeriodSeconds": 7,
        "containers": [app("main", json!({})), app("side", json!({}))],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
    })));
    h.sync().await;
    let dir = spec::pod_dir(&h.worker.env.root_dir, "uid-1");
    assert!(dir.exists());
    h.pod.metadata.deletion_timestamp = Some(status::time(Timestamp::now()));
    h.pod.metadata.deletion_grace_period_seconds = Some(5);
    assert_eq!(h.sync().await, Next::Done);
    let stops: Vec<_> = h
        .fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            RuntimeCall::Stop(_, grace) => Some(grace),
            _ => None,
        })
        .collect();
    assert_eq!(
        stops,
        [
            Duration::from_secs(5),
            Duration::from_secs(5),
            SANDBOX_GRACE
        ]
    );
    assert!(h.fake.containers().is_empty());
    assert!(!dir.exists());
    assert_eq!(*h.api.deleted.lock().unwrap(), ["web"]);
    // The last status shows the containers stopped, the pod finished.
    assert_eq!(h.phase(), "Failed");
}

#[tokio::test]
async fn a_dead_sandbox_is_replaced_and_its_containers_restarted() {
    let mut h = Harness::new(pod(json!({"containers": [app("main", json!({}))]})));
    h.sync().await;
    let sandbox = h.latest("POD");
    h.fake.exit(&sandbox.id, 0, Timestamp::now());
    h.sync().await;
    assert_eq!(h.latest("POD").name, "k8s_POD_web_default_uid-1_1");
    assert_eq!(h.latest("POD").state, ContainerState::Running);
    assert_eq!(h.count("POD"), 1, "the old sandbox is removed");
    assert_eq!(h.container_status("main").restart_count, 1);
    let main = h.fake.config(&h.latest("main").id).unwrap();
    assert_eq!(
        main.network,
        NetworkMode::Container(h.latest("POD").id.clone())
    );
}

#[tokio::test]
async fn a_never_pod_whose_sandbox_died_gets_no_new_one() {
    let mut h = Harness::new(pod(json!({"restartPolicy": "Never",
        "containers": [app("main", json!({}))]})));
    h.sync().await;
    // Docker went down and took both with it.
    h.exit("main", 137, 1);
    h.exit("POD", 0, 1);
    h.sync().await;
    let sandboxes: Vec<String> = h
        .creates()
        .into_iter()
        .filter(|n| n.starts_with("k8s_POD_"))
        .collect();
    assert_eq!(
        sandboxes,
        ["k8s_POD_web_default_uid-1_0"],
        "no second sandbox"
    );
    assert_eq!(h.latest("POD").state, ContainerState::Exited);
    assert_eq!(h.phase(), "Failed");
    assert_eq!(h.container_status("main").restart_count, 0);
}

#[tokio::test]
async fn the_kubelet_picks_pod_addresses_round_robin() {
    let fake = FakeRuntime::new();
    fake.add_image(IMAGE);
    fake.add_image(PAUSE);
    let mut h = Harness::with_ipam(
        pod(json!({"containers": [app("main", json!({}))]})),
        fake,
        true,
    );
    h.sync().await;
    let sandbox = h.latest("POD");
    let ip = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap();
    assert_eq!(h.fake.config(&sandbox.id).unwrap().ip, Some(ip("10.1.0.2")));
    assert_eq!(h.status().pod_ip.as_deref(), Some("10.1.0.2"));
    // The sandbox dies, which frees its address; something else takes the next one
    // behind the kubelet's back. The new sandbox gets neither.
    h.fake.take_address_unseen(ip("10.1.0.3"));
    h.fake.exit(&sandbox.id, 0, Timestamp::now());
    h.sync().await;
    let replaced = h.latest("POD");
    assert_eq!(replaced.name, "k8s_POD_web_default_uid-1_1");
    assert_eq!(replaced.state, ContainerState::Running);
    assert_eq!(replaced.ip, Some(std::net::IpAddr::V4(ip("10.1.0.4"))));
    assert_eq!(h.status().pod_ip.as_deref(), Some("10.1.0.4"));
}

/// The variables of the service discovery seed's cluster reach the container, after
/// its own, which win; a pod without service links keeps the kubernetes service's only.
#[tokio::test]
async fn service_variables_reach_the_container() {
    let service = |ns: &str, name: &str, ip: &str, ports: serde_json::Value| {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports}
        }))
        .unwrap()
    };
    let services = vec![
        service(
            "default",
            "kubernetes",
            "10.3.0.1",
            json!([{"name": "https", "port": 443}]),
        ),
        service(
            "default",
            "redis-sentinel",
            "10.3.0.206",
            json!([{"port": 26379}]),
        ),
        service("default", "nc-http", "10.3.0.15", json!([{"port": 80}])),
        service("other", "elsewhere", "10.3.0.99", json!([{"port": 80}])),
    ];
    let env_of = |links: bool| {
        let services = services.clone();
        async move {
            let fake = FakeRuntime::new();
            fake.add_image(IMAGE);
            fake.add_image(PAUSE);
            let mut h = Harness::with_services(
                pod(json!({
                    "enableServiceLinks": links,
                    "containers": [app("main", json!({
                        "command": ["nc", "$(REDIS_SENTINEL_SERVICE_HOST)"],
                        "env": [{"name": "NC_HTTP_SERVICE_PORT", "value": "8080"}],
                    }))],
                })),
                fake,
                false,
                services,
            );
            h.sync().await;
            h.fake.config(&h.latest("main").id).unwrap()
        }
    };
    let config = env_of(true).await;
    assert_eq!(
        config.entrypoint,
        Some(vec!["nc".to_string(), "10.3.0.206".to_string()])
    );
    let mut lines: Vec<String> = config.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(lines[0], "NC_HTTP_SERVICE_PORT=8080");
    lines.sort();
    assert_eq!(
        lines,
        [
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
            "NC_HTTP_SERVICE_PORT=8080",
            "REDIS_SENTINEL_PORT=tcp://10.3.0.206:26379",
            "REDIS_SENTINEL_PORT_26379_TCP=tcp://10.3.0.206:26379",
            "REDIS_SENTINEL_PORT_26379_TCP_ADDR=10.3.0.206",
            "REDIS_SENTINEL_PORT_26379_TCP_PORT=26379",
            "REDIS_SENTINEL_PORT_26379_TCP_PROTO=tcp",
            "REDIS_SENTINEL_SERVICE_HOST=10.3.0.206",
            "REDIS_SENTINEL_SERVICE_PORT=26379",
        ]
    );
    let config = env_of(false).await;
    let names: Vec<&str> = config.env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names.len(), 9, "{names:?}");
    assert!(names[1..].iter().all(|n| n.starts_with("KUBERNETES_")));
    // The reference stays as written when the variable is not there.
    assert_eq!(
        config.entrypoint,
        Some(vec![
            "nc".to_string(),
            "$(REDIS_SENTINEL_SERVICE_HOST)".to_string()
        ])
    );
}

#[tokio::test]
async fn settings_reach_the_container() {
    let mut h = Harness::new(pod(json!({
        "nodeName": "node-1",
        "containers": [app("main", json!({
            "workingDir": "/work",
            "args": ["--flag"],
            "env": [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            "resources": {"limits": {"memory": "32Mi", "cpu": "500m"}},
            "ports": [{"containerPort": 80, "hostPort": 8080}],
        }))],
    })));
    h.sync().await;
    let config = h.fake.config(&h.latest("main").id).unwrap();
    assert_eq!(config.working_dir.as_deref(), Some("/work"));
    assert_eq!(config.cmd, Some(vec!["--flag".to_string()]));
    assert!(config.env.contains(&("IP".into(), "10.0.0.2".into())));
    assert!(config.env.contains(&("NODE".into(), "node-1".into())));
    assert_eq!(config.resources.memory_limit, Some(32 << 20));
    assert_eq!(config.resources.cpu_quota, Some(50_000));
    assert_eq!(config.labels[labels::CONTAINER_IMAGE], IMAGE);
    let sandbox = h.fake.config(&h.latest("POD").id).unwrap();
    assert_eq!(sandbox.ports.len(), 1);
    assert_eq!(sandbox.ports[0].host_port, 8080);
}

#[tokio::test(start_paused = true)]
async fn a_failing_liveness_probe_restarts_the_container() {
    let mut h = Harness::new(pod(json!({
        "terminationGracePeriodSeconds": 1,
        "containers": [app("main", json!({
            "livenessProbe": {"exec": {"command": ["check"]}, "periodSeconds": 1,
                              "failureThreshold": 2},
        }))],
    })));
    h.fake.set_exec_result(&["check"], 1, "unhealthy");
    h.sync().await;
    // The probe runs on its own; it wakes the worker when it gives up.
    tokio::time::timeout(Duration::from_secs(30), h.wake.notified())
        .await
        .expect("the probe reported");
    h.sync().await;
    assert!(
        h.fake
            .calls()
            .iter()
            .any(|c| matches!(c, RuntimeCall::Stop(_, g) if *g == Duration::from_secs(1)))
    );
    assert_eq!(h.count("main"), 2);
    assert_eq!(h.container_status("main").restart_count, 1);
    let execs = h
        .fake
        .calls()
        .iter()
        .filter(|c| matches!(c, RuntimeCall::Exec(..)))
        .count();
    assert_eq!(
        execs, 2,
        "failureThreshold probes, then none for the dead container"
    );
}

#[tokio::test(start_paused = true)]
async fn readiness_follows_the_probe() {
    let mut h = Harness::new(pod(json!({
        "containers": [app("main", json!({
            "readinessProbe": {"exec": {"command": ["ready"]}, "periodSeconds": 1,
                               "failureThreshold": 1},
        }))],
    })));
    h.fake.set_exec_result(&["ready"], 1, "");
    h.sync().await;
    assert!(!h.container_status("main").ready);
    h.fake.set_exec_result(&["ready"], 0, "");
    tokio::time::timeout(Duration::from_secs(30), h.wake.notified())
        .await
        .unwrap();
    h.sync().await;
    assert!(h.container_status("main").ready);
    h.fake.set_exec_result(&["ready"], 1, "");
    tokio::time::timeout(Duration::from_secs(30), h.wake.notified())
        .await
        .unwrap();
    h.sync().await;
    assert!(!h.container_status("main").ready);
    let ready = h
        .status()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "ContainersReady")
        .unwrap();
    assert_eq!(ready.status, "False");
}

#[tokio::test]
async fn orphans_are_cleaned_up_by_uid() {
    let h = Harness::new(pod(json!({"containers": [app("main", json!({}))]})));
    let mut h = h;
    h.sync().await;
    assert_eq!(h.fake.containers().len(), 2);
    cleanup_pod(&h.worker.env, "uid-1", None).await.unwrap();
    assert!(h.fake.containers().is_empty());
}

#[tokio::test]
async fn a_failed_init_container_fails_a_never_pod_and_is_retried_otherwise() {
    for (policy, restarted, phase) in [("Never", false, "Failed"), ("OnFailure", true, "Pending")] {
        let mut h = Harness::new(pod(json!({
            "restartPolicy": policy,
            "initContainers": [app("setup", json!({}))],
            "containers": [app("main", json!({}))],
        })));
        h.sync().await;
        h.exit("setup", 2, 0);
        h.sync().await;
        assert_eq!(h.phase(), phase, "{policy}");
        assert_eq!(h.count("setup"), 1 + usize::from(restarted), "{policy}");
        assert_eq!(h.count("main"), 0, "{policy}: app containers wait for init");
        let initialized = h
            .status()
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Initialized")
            .unwrap();
        assert_eq!(initialized.status, "False");
    }
}

#[tokio::test]
async fn host_network_pods_use_the_host_address() {
    let mut h = Harness::new(pod(json!({
        "hostNetwork": true,
        "containers": [app("main", json!({
            "ports": [{"containerPort": 80, "hostPort": 80}],
            "env": [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        }))],
    })));
    h.sync().await;
    let sandbox = h.fake.config(&h.latest("POD").id).unwrap();
    assert_eq!(sandbox.network, NetworkMode::Host);
    assert_eq!(sandbox.hostname, None);
    assert!(sandbox.ports.is_empty());
    let main = h.fake.config(&h.latest("main").id).unwrap();
    assert!(main.env.contains(&("IP".into(), "192.168.0.10".into())));
    assert_eq!(h.status().pod_ip.as_deref(), Some("192.168.0.10"));
}

#[tokio::test(start_paused = true)]
async fn a_startup_probe_holds_readiness_and_liveness_until_it_succeeds() {
    let mut h = Harness::new(pod(json!({
        "containers": [app("main", json!({
            "startupProbe": {"exec": {"command": ["started"]}, "periodSeconds": 1,
                             "failureThreshold": 30},
            "livenessProbe": {"exec": {"command": ["alive"]}, "periodSeconds": 1},
            "readinessProbe": {"exec": {"command": ["ready"]}, "periodSeconds": 1},
        }))],
    })));
    h.fake.set_exec_result(&["started"], 1, "");
    h.sync().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    h.sync().await;
    let calls = h.fake.calls();
    let ran = |cmd: &str| {
        calls
            .iter()
            .filter(|c| matches!(c, RuntimeCall::Exec(_, command) if command[0] == cmd))
            .count()
    };
    assert!(ran("started") >= 3);
    assert_eq!(ran("alive"), 0, "liveness waits for the startup probe");
    assert_eq!(ran("ready"), 0, "readiness waits for the startup probe");
    let s = h.container_status("main");
    assert_eq!(s.started, Some(false));
    assert!(!s.ready);

    h.fake.set_exec_result(&["started"], 0, "");
    tokio::time::timeout(Duration::from_secs(30), h.wake.notified())
        .await
        .unwrap();
    h.sync().await;
    assert_eq!(h.container_status("main").started, Some(true));
    tokio::time::timeout(Duration::from_secs(30), h.wake.notified())
        .await
        .unwrap();
    h.sync().await;
    assert!(h.container_status("main").ready);
    assert!(
        h.fake
            .calls()
            .iter()
            .any(|c| matches!(c, RuntimeCall::Exec(_, command) if command[0] == "alive"))
    );
}

#[tokio::test]
async fn start_errors_crash_loop_like_exits() {
    let mut h = Harness::new(pod(json!({
        "containers": [{"name": "main", "image": IMAGE, "command": ["nope"]}]
    })));
    h.fake.missing_program("nope");
    h.sync().await;
    assert_eq!(
        h.waiting_reason("main").as_deref(),
        Some("RunContainerError")
    );
    // The failed start counts as an exit: restarted at once, then backed off.
    h.sync().await;
    assert_eq!(h.container_status("main").restart_count, 1);
    h.sync().await;
    let s = h.container_status("main");
    assert_eq!(
        h.waiting_reason("main").as_deref(),
        Some("CrashLoopBackOff")
    );
    let last = s.last_state.unwrap().terminated.unwrap();
    assert_eq!(
        (last.exit_code, last.reason.as_deref()),
        (127, Some("StartError"))
    );
    assert!(last.message.unwrap().contains("executable file not found"));
    assert_eq!(h.phase(), "Running");
}

#[tokio::test]
async fn a_status_the_api_server_did_not_take_is_sent_again_soon() {
    let mut h = Harness::new(pod(json!({"containers": [app("main", json!({}))]})));
    h.api.down.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(h.sync().await, Next::After(Some(Duration::from_secs(1))));
    assert_eq!(h.sync().await, Next::After(Some(Duration::from_secs(2))));
    assert!(h.last_status().is_none());
    // The containers were started meanwhile, once.
    assert_eq!(h.creates().len(), 2);
    h.api.down.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(h.sync().await, Next::After(None));
    assert_eq!(h.phase(), "Running");
    assert_eq!(h.api.statuses.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_missing_configmap_holds_the_container_until_it_appears_and_wakes_the_worker() {
    let mut h = Harness::new(pod(json!({
        "containers": [app("main", json!({
            "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}}],
            "volumeMounts": [{"name": "files", "mountPath": "/etc/cfg", "readOnly": false}],
        }))],
        "volumes": [{"name": "files", "configMap": {"name": "cfg", "optional": true}}],
    })));
    h.sync().await;
    assert_eq!(
        h.waiting_reason("main").as_deref(),
        Some("CreateContainerConfigError")
    );
    let message = h
        .container_status("main")
        .state
        .unwrap()
        .waiting
        .unwrap()
        .message;
    assert_eq!(message.as_deref(), Some("configmap \"cfg\" not found"));

    // Its arrival wakes the worker, and the next pass starts the container.
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "cfg", "namespace": "default"}, "data": {"mode": "fast"}
    }))
    .unwrap();
    h.worker.env.objects.apply_config_map(cm);
    tokio::time::timeout(Duration::from_secs(1), h.wake.notified())
        .await
        .expect("the worker is woken");
    h.sync().await;
    let config = h.fake.config(&h.latest("main").id).unwrap();
    assert!(config.env.contains(&("MODE".into(), "fast".into())));
    let mount = config
        .mounts
        .iter()
        .find(|m| m.target == "/etc/cfg")
        .unwrap();
    assert!(mount.read_only);
    assert_eq!(
        std::fs::read_to_string(mount.source.join("mode")).unwrap(),
        "fast"
    );
}
