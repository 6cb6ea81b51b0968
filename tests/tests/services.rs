//! Services over real HTTP on both stores: cluster IPs and node ports handed out once
//! (also by two API servers sharing one etcd), Kubernetes' errors for what cannot be had,
//! the `kubernetes` service, and Endpoints and EndpointSlices that follow the pods a
//! service selects within a second of a change. And the real kubectl's `expose`, `get svc`
//! and `describe svc` against it.

use std::collections::BTreeSet;
use std::time::Duration;

use minik8s_tests::apiserver::{Backend, TestApiServer};
use minik8s_tests::rest::Rest;
use minik8s_tests::{real_kubectl, wait_for};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SVCS: &str = "/api/v1/namespaces/default/services";
const PODS: &str = "/api/v1/namespaces/default/pods";
const EPS: &str = "/api/v1/namespaces/default/endpoints";
const SLICES: &str = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
/// A change to the pods shows in Endpoints within this (the controllers run on events).
const FOLLOW: Duration = Duration::from_secs(1);

async fn start(backend: Backend) -> (TestApiServer, Rest) {
    let srv = TestApiServer::start_with_controllers(backend)
        .await
        .unwrap();
    let rest = Rest::new(&srv.url);
    (srv, rest)
}

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

fn message(v: &Value) -> &str {
    v["message"].as_str().unwrap_or("")
}

async fn allocations_are_unique_and_errors_are_kubernetes(backend: Backend) {
    let (_srv, api) = start(backend).await;
    let web = api
        .create(
            SVCS,
            &service(
                "web",
                json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}),
            ),
        )
        .await;
    let ip = web["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.96."), "{ip}");
    assert_eq!(web["spec"]["clusterIPs"], json!([ip]));
    assert_eq!(web["spec"]["type"], "ClusterIP");
    assert_eq!(web["spec"]["ports"][0]["protocol"], "TCP");

    // The same address asked for again.
    let (code, body) = api
        .post(
            SVCS,
            &service("copy", json!({"clusterIP": ip, "ports": [{"port": 80}]})),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        message(&body),
        format!(
            "Service \"copy\" is invalid: spec.clusterIPs: Invalid value: [\"{ip}\"]: failed to allocate IP {ip}: provided IP is already allocated"
        )
    );
    assert_eq!(body["details"]["causes"][0]["field"], "spec.clusterIPs");

    // Node ports: one chosen, one taken, one out of range.
    let np = api
        .create(
            SVCS,
            &service(
                "np",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
            ),
        )
        .await;
    assert_eq!(np["spec"]["ports"][0]["nodePort"], 30080);
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    let (code, body) = api
        .post(
            SVCS,
            &service(
                "np2",
                json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080},
                    {"name": "b", "port": 81, "nodePort": 40000}]}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        message(&body),
        "Service \"np2\" is invalid: [spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated, spec.ports[1].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767]"
    );

    // Validation before allocation: a nodePort on a ClusterIP service, duplicate names.
    let (code, body) = api
        .post(
            SVCS,
            &service("bad", json!({"ports": [{"name": "x", "port": 80, "nodePort": 30001}, {"name": "x", "port": 81}]})),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        message(&body),
        "Service \"bad\" is invalid: [spec.ports[1].name: Duplicate value: \"x\", spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP']"
    );

    // The cluster IP may not change; leaving it out of an update keeps it.
    let mut changed = web.clone();
    changed["spec"]["clusterIP"] = json!("10.96.200.200");
    changed["spec"]["clusterIPs"] = json!(["10.96.200.200"]);
    let (code, body) = api.put(&format!("{SVCS}/web"), &changed).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        message(&body).ends_with(
            "spec.clusterIPs[0]: Invalid value: [\"10.96.200.200\"]: may not change once set"
        ),
        "{body}"
    );
    let mut left_out = web.clone();
    left_out["spec"]
        .as_object_mut()
        .unwrap()
        .remove("clusterIP");
    left_out["spec"]
        .as_object_mut()
        .unwrap()
        .remove("clusterIPs");
    left_out["metadata"]["labels"] = json!({"tier": "front"});
    let (code, body) = api.put(&format!("{SVCS}/web"), &left_out).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["spec"]["clusterIP"], json!(ip));

    // NodePort back to ClusterIP gives the port back: another service can take it.
    let (code, body) = api
        .merge(
            &format!("{SVCS}/np"),
            &json!({"spec": {"type": "ClusterIP"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert!(body["spec"]["ports"][0].get("nodePort").is_none(), "{body}");
    api.create(
        SVCS,
        &service(
            "np3",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
        ),
    )
    .await;

    // A deleted service's address can be asked for again.
    let (code, _) = api.delete(&format!("{SVCS}/web")).await;
    assert_eq!(code, StatusCode::OK);
    let again = api
        .create(
            SVCS,
            &service("again", json!({"clusterIP": ip, "ports": [{"port": 80}]})),
        )
        .await;
    assert_eq!(again["spec"]["clusterIP"], json!(ip));

    // Headless: no address taken.
    let headless = api
        .create(
            SVCS,
            &service(
                "peers",
                json!({"clusterIP": "None", "selector": {"app": "db"}}),
            ),
        )
        .await;
    assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
}

#[tokio::test]
async fn allocations_are_unique_and_errors_are_kubernetes_embedded() {
    allocations_are_unique_and_errors_are_kubernetes(Backend::Embedded).await;
}

#[tokio::test]
async fn allocations_are_unique_and_errors_are_kubernetes_etcd() {
    allocations_are_unique_and_errors_are_kubernetes(Backend::Etcd).await;
}

#[tokio::test]
async fn two_api_servers_on_one_etcd_never_hand_out_one_address_twice() {
    let a = TestApiServer::start(Backend::Etcd).await.unwrap();
    let b = TestApiServer::start_sharing(&a).await.unwrap();
    let (ra, rb) = (Rest::new(&a.url), Rest::new(&b.url));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let api = if i % 2 == 0 { ra.clone() } else { rb.clone() };
        tasks.push(tokio::spawn(async move {
            api.create(
                SVCS,
                &service(
                    &format!("s{i}"),
                    json!({"type": "NodePort", "ports": [{"port": 80}]}),
                ),
            )
            .await
        }));
    }
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for t in tasks {
        let svc = t.await.unwrap();
        assert!(
            ips.insert(svc["spec"]["clusterIP"].as_str().unwrap().to_string()),
            "{svc}"
        );
        assert!(
            ports.insert(svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap()),
            "{svc}"
        );
    }
    assert_eq!((ips.len(), ports.len()), (40, 40));
}

#[tokio::test]
async fn the_kubernetes_service_points_at_the_api_server() {
    let (srv, api) = start(Backend::Embedded).await;
    let port = srv.server().addr().port();
    let ep = wait_for(
        "the kubernetes endpoints",
        Duration::from_secs(10),
        || async {
            let (code, ep) = api.get(&format!("{EPS}/kubernetes")).await;
            (code == StatusCode::OK).then_some(ep)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        ep["subsets"],
        json!([{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}])
    );
    let (_, svc) = api.get(&format!("{SVCS}/kubernetes")).await;
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], port);
}

fn pod(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
            "ports": [{"name": "http", "containerPort": 8080}]}]}})
}

/// Plays the kubelet: an IP and a readiness for the pod.
async fn set_status(api: &Rest, name: &str, ip: &str, ready: bool) {
    let status = if ready { "True" } else { "False" };
    let (code, body) = api
        .merge(
            &format!("{PODS}/{name}/status"),
            &json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": status}]}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

/// The ready and not-ready addresses of the `web` Endpoints, as `ip:port`.
async fn endpoint_addresses(api: &Rest) -> Option<(Vec<String>, Vec<String>)> {
    let (code, ep) = api.get(&format!("{EPS}/web")).await;
    if code != StatusCode::OK {
        return None;
    }
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for ss in ep["subsets"].as_array().into_iter().flatten() {
        let port = ss["ports"][0]["port"].as_i64().unwrap_or(0);
        for (key, out) in [
            ("addresses", &mut ready),
            ("notReadyAddresses", &mut not_ready),
        ] {
            for a in ss[key].as_array().into_iter().flatten() {
                out.push(format!("{}:{port}", a["ip"].as_str().unwrap_or("")));
            }
        }
    }
    ready.sort();
    not_ready.sort();
    Some((ready, not_ready))
}

async fn wait_endpoints(api: &Rest, ready: &[&str], not_ready: &[&str]) {
    let want = (
        ready.iter().map(ToString::to_string).collect::<Vec<_>>(),
        not_ready
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
    );
    let last = std::sync::Mutex::new(None);
    let found = wait_for("the endpoints to follow the pods", FOLLOW, || async {
        let got = endpoint_addresses(api).await;
        let hit = got.as_ref() == Some(&want);
        *last.lock().unwrap() = got;
        hit.then_some(())
    })
    .await;
    assert!(
        found.is_ok(),
        "want {want:?}, last seen {:?}",
        last.lock().unwrap()
    );
}

async fn endpoints_follow_the_pods(backend: Backend) {
    let (_srv, api) = start(backend).await;
    api.create(
        SVCS,
        &service(
            "web",
            json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}),
        ),
    )
    .await;
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        api.create(PODS, &pod(name, json!({"app": app}))).await;
    }
    // No pod has an IP yet: an Endpoints object with nothing in it.
    wait_endpoints(&api, &[], &[]).await;
    set_status(&api, "a", "10.1.0.1", true).await;
    set_status(&api, "b", "10.1.0.2", false).await;
    set_status(&api, "c", "10.1.0.3", true).await;
    wait_endpoints(&api, &["10.1.0.1:8080"], &["10.1.0.2:8080"]).await;
    set_status(&api, "b", "10.1.0.2", true).await;
    wait_endpoints(&api, &["10.1.0.1:8080", "10.1.0.2:8080"], &[]).await;
    set_status(&api, "a", "10.1.0.1", false).await;
    wait_endpoints(&api, &["10.1.0.2:8080"], &["10.1.0.1:8080"]).await;

    // The slice says the same, with Kubernetes' labels and conditions.
    let (_, slices) = api
        .get(&format!(
            "{SLICES}?labelSelector=kubernetes.io%2Fservice-name%3Dweb"
        ))
        .await;
    let items = slices["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{slices}");
    let slice = &items[0];
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(
        slice["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    let conditions: Vec<(String, Value)> = slice["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["addresses"][0].as_str().unwrap().to_string(),
                e["conditions"].clone(),
            )
        })
        .collect();
    assert_eq!(
        conditions,
        vec![
            (
                "10.1.0.1".into(),
                json!({"ready": false, "serving": false, "terminating": false})
            ),
            (
                "10.1.0.2".into(),
                json!({"ready": true, "serving": true, "terminating": false})
            ),
        ]
    );

    // A pod that goes away leaves; a service that goes away takes its Endpoints and slices.
    let (code, _) = api.delete(&format!("{PODS}/b")).await;
    assert_eq!(code, StatusCode::OK);
    wait_endpoints(&api, &[], &["10.1.0.1:8080"]).await;
    api.delete(&format!("{SVCS}/web")).await;
    wait_for(
        "the endpoints and slices to go",
        Duration::from_secs(5),
        || async {
            let (code, _) = api.get(&format!("{EPS}/web")).await;
            let (_, slices) = api
                .get(&format!(
                    "{SLICES}?labelSelector=kubernetes.io%2Fservice-name%3Dweb"
                ))
                .await;
            (code == StatusCode::NOT_FOUND && slices["items"].as_array().is_some_and(Vec::is_empty))
                .then_some(())
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn endpoints_follow_the_pods_embedded() {
    endpoints_follow_the_pods(Backend::Embedded).await;
}

#[tokio::test]
async fn endpoints_follow_the_pods_etcd() {
    endpoints_follow_the_pods(Backend::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_kubectl_exposes_gets_and_describes_services() {
    let (srv, api) = start(Backend::Embedded).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = srv.write_kubeconfig(dir.path()).unwrap();
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new(real_kubectl())
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    api.create(PODS, &pod("web", json!({"app": "web"}))).await;
    set_status(&api, "web", "10.1.0.9", true).await;
    let (code, out, err) = kubectl(&[
        "expose",
        "pod",
        "web",
        "--port",
        "80",
        "--target-port",
        "http",
    ]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (Some(0), "service/web exposed\n", "")
    );
    let (_, svc) = api.get(&format!("{SVCS}/web")).await;
    let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    let (code, out, _) = kubectl(&["get", "svc", "web", "-o", "wide"]);
    assert_eq!(code, Some(0));
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
            "SELECTOR"
        ]
    );
    assert_eq!(
        lines[1][..5],
        ["web", "ClusterIP", ip.as_str(), "<none>", "80/TCP"]
    );
    assert_eq!(lines[1][6], "app=web");
    let describe = wait_for(
        "describe to show the endpoint",
        Duration::from_secs(5),
        || async {
            let (code, out, _) = kubectl(&["describe", "svc", "web"]);
            (code == Some(0) && out.contains("10.1.0.9:8080")).then_some(out)
        },
    )
    .await
    .unwrap();
    for want in [
        "Name:                     web",
        "Selector:                 app=web",
        "Type:                     ClusterIP",
        &format!("IP:                       {ip}"),
        "TargetPort:               http/TCP",
        "Endpoints:                10.1.0.9:8080",
    ] {
        assert!(describe.contains(want), "{want:?} not in:\n{describe}");
    }
    let (code, out, _) = kubectl(&["get", "ep", "web"]);
    assert_eq!(code, Some(0));
    assert!(
        out.lines().nth(1).unwrap().contains("10.1.0.9:8080"),
        "{out}"
    );
}
