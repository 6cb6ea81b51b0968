//! The controllers inside the API server: pod CIDRs for nodes, the scheduler, silent
//! nodes, and the pod log proxy to a node's kubelet.

use std::collections::BTreeSet;
use std::time::Duration;

use minik8s_tests::apiserver::{Backend, TestApiServer};
use minik8s_tests::wait_for;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(20);

struct Api {
    url: String,
    http: Client,
}

impl Api {
    fn new(srv: &TestApiServer) -> Api {
        Api {
            url: srv.url.clone(),
            http: Client::new(),
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let code = r.status();
        let text = r.text().await.unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }

    async fn patch_status(&self, path: &str, body: Value) {
        let r = self
            .http
            .patch(format!("{}{path}/status", self.url))
            .header("content-type", "application/strategic-merge-patch+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }

    async fn ready_node(&self, name: &str, labels: Value, cpu: &str, heartbeat: &str) {
        self.post(
            "/api/v1/nodes",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}),
        )
        .await;
        self.patch_status(
            &format!("/api/v1/nodes/{name}"),
            json!({"status": {
                "allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                "capacity": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat}]}}),
        )
        .await;
    }

    async fn pod_cidr(&self, node: &str) -> String {
        wait_for(&format!("pod CIDR of {node}"), T, || async {
            let (_, n) = self.get(&format!("/api/v1/nodes/{node}")).await;
            n["spec"]["podCIDR"].as_str().map(str::to_string)
        })
        .await
        .unwrap()
    }
}

/// A time `ago` seconds back, as the API writes times.
fn seconds_ago(ago: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(ago))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn now() -> String {
    seconds_ago(0)
}

fn pod(name: &str, spec: Value) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    if let (Some(extra), Some(s)) = (spec.as_object(), p["spec"].as_object_mut()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_get_distinct_pod_cidrs_and_released_ones_return() {
    let srv = TestApiServer::start_with_controllers(Backend::Embedded)
        .await
        .unwrap();
    let api = Api::new(&srv);
    api.ready_node("n1", json!({}), "2", &now()).await;
    api.ready_node("n2", json!({}), "2", &now()).await;
    let (a, b) = (api.pod_cidr("n1").await, api.pod_cidr("n2").await);
    assert_ne!(a, b);
    for c in [&a, &b] {
        assert!(c.starts_with("10.244.") && c.ends_with(".0/24"), "{c}");
    }
    let r = api
        .http
        .delete(format!("{}/api/v1/nodes/n2", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    api.ready_node("n3", json!({}), "2", &now()).await;
    // The lowest free range is handed out, so n3 gets n2's old one once it is released.
    let c = api.pod_cidr("n3").await;
    assert_ne!(c, a);
    assert!(c == b || c.starts_with("10.244.2."), "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apiservers_on_one_etcd_never_share_a_pod_cidr() {
    let one = TestApiServer::start_with_controllers(Backend::Etcd)
        .await
        .unwrap();
    let two = TestApiServer::start_sharing(&one).await.unwrap();
    let (a, b) = (Api::new(&one), Api::new(&two));
    let mut creates = Vec::new();
    for i in 0..12 {
        let api = if i % 2 == 0 {
            Api::new(&one)
        } else {
            Api::new(&two)
        };
        creates.push(tokio::spawn(async move {
            api.ready_node(&format!("node{i}"), json!({}), "2", &now())
                .await;
        }));
    }
    for c in creates {
        c.await.unwrap();
    }
    let mut seen = BTreeSet::new();
    for i in 0..12 {
        let api = if i % 2 == 0 { &a } else { &b };
        assert!(seen.insert(api.pod_cidr(&format!("node{i}")).await));
    }
    assert_eq!(seen.len(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_binds_respects_selectors_and_room() {
    let srv = TestApiServer::start_with_controllers(Backend::Embedded)
        .await
        .unwrap();
    let api = Api::new(&srv);
    api.ready_node("small", json!({"disk": "hdd"}), "1", &now())
        .await;
    api.ready_node("big", json!({"disk": "ssd"}), "8", &now())
        .await;
    api.pod_cidr("small").await;
    api.pod_cidr("big").await;

    api.post("/api/v1/namespaces/default/pods", pod("any", json!({})))
        .await;
    api.post(
        "/api/v1/namespaces/default/pods",
        pod("ssd", json!({"nodeSelector": {"disk": "ssd"}})),
    )
    .await;
    api.post(
        "/api/v1/namespaces/default/pods",
        pod(
            "hungry",
            json!({"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": "4"}}}]}),
        ),
    )
    .await;
    api.post(
        "/api/v1/namespaces/default/pods",
        pod("nowhere", json!({"nodeSelector": {"disk": "tape"}})),
    )
    .await;
    let node_of = |name: &'static str| {
        let api = &api;
        async move {
            wait_for(&format!("{name} bound"), T, || async {
                let (_, p) = api
                    .get(&format!("/api/v1/namespaces/default/pods/{name}"))
                    .await;
                p["spec"]["nodeName"].as_str().map(str::to_string)
            })
            .await
            .unwrap()
        }
    };
    assert!(["small", "big"].contains(&node_of("any").await.as_str()));
    assert_eq!(node_of("ssd").await, "big");
    assert_eq!(node_of("hungry").await, "big");

    let cond = wait_for("nowhere marked unschedulable", T, || async {
        let (_, p) = api.get("/api/v1/namespaces/default/pods/nowhere").await;
        p["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled").cloned())
    })
    .await
    .unwrap();
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], "Unschedulable");
    assert_eq!(
        cond["message"],
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    );
    let (_, p) = api.get("/api/v1/namespaces/default/pods/nowhere").await;
    assert_eq!(p["spec"]["nodeName"], Value::Null);

    // The event is recorded just after the binding: wait for it.
    let ev = wait_for("the Scheduled event", T, || async {
        let (_, evs) = api
            .get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dssd")
            .await;
        evs["items"]
            .as_array()
            .and_then(|items| items.iter().find(|e| e["reason"] == "Scheduled").cloned())
    })
    .await
    .unwrap();
    assert_eq!(ev["reason"], "Scheduled");
    assert_eq!(ev["message"], "Successfully assigned default/ssd to big");
    assert_eq!(ev["source"]["component"], "default-scheduler");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_nodes_become_unknown() {
    let srv = TestApiServer::start_with_controllers(Backend::Embedded)
        .await
        .unwrap();
    let api = Api::new(&srv);
    let long_ago = seconds_ago(120);
    api.ready_node("quiet", json!({}), "2", &long_ago).await;
    api.ready_node("alive", json!({}), "2", &now()).await;
    let cond = wait_for("quiet marked Unknown", T, || async {
        let (_, n) = api.get("/api/v1/nodes/quiet").await;
        let c = n["status"]["conditions"][0].clone();
        (c["status"] == "Unknown").then_some(c)
    })
    .await
    .unwrap();
    assert_eq!(cond["reason"], "NodeStatusUnknown");
    let (_, n) = api.get("/api/v1/nodes/alive").await;
    assert_eq!(n["status"]["conditions"][0]["status"], "True");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_logs_are_proxied_to_the_nodes_kubelet() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A stand-in kubelet that answers one log request and records its request line.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let kubelet = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = sock.read(&mut buf).await.unwrap();
        let request = String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap()
            .to_string();
        sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 12\r\nconnection: close\r\n\r\nhello\nworld\n")
            .await
            .unwrap();
        request
    });
    let srv = TestApiServer::start_with_controllers(Backend::Embedded)
        .await
        .unwrap();
    let api = Api::new(&srv);
    api.post(
        "/api/v1/nodes",
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
    )
    .await;
    api.patch_status(
        "/api/v1/nodes/n1",
        json!({"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                          "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}),
    )
    .await;
    api.post(
        "/api/v1/namespaces/default/pods",
        pod(
            "web",
            json!({"nodeName": "n1", "containers": [
            {"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}]}),
        ),
    )
    .await;
    // Two containers and none named: kubectl's error.
    let (code, body) = api.get("/api/v1/namespaces/default/pods/web/log").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "a container name must be specified for pod web, choose one of: [a b]"
    );
    // Not started yet.
    let (code, body) = api
        .get("/api/v1/namespaces/default/pods/web/log?container=a")
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "container \"a\" in pod \"web\" is waiting to start: ContainerCreating"
    );
    api.patch_status(
        "/api/v1/namespaces/default/pods/web",
        json!({"status": {"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 0, "image": "busybox", "imageID": "",
             "state": {"running": {"startedAt": now()}}}]}}),
    )
    .await;
    let (code, body) = api
        .get("/api/v1/namespaces/default/pods/web/log?container=a&tailLines=2&timestamps=true")
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body, Value::String("hello\nworld\n".into()));
    let request = kubelet.await.unwrap();
    assert!(
        request.starts_with("GET /containerLogs/default/web/a?")
            && request.contains("tailLines=2")
            && request.contains("timestamps=true"),
        "{request}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_events_expire() {
    let srv = TestApiServer::start_with(Backend::Embedded, None, |c| {
        c.controllers = None;
        c.housekeeping_interval = Duration::from_millis(100);
        c.event_ttl = Duration::from_secs(2);
    })
    .await
    .unwrap();
    let api = Api::new(&srv);
    let event = |name: &str, at: String| {
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "Test", "message": "m", "type": "Normal",
            "firstTimestamp": at, "lastTimestamp": at})
    };
    api.post(
        "/api/v1/namespaces/default/events",
        event("old", seconds_ago(3600)),
    )
    .await;
    api.post(
        "/api/v1/namespaces/default/events",
        event("fresh", seconds_ago(0)),
    )
    .await;
    wait_for("the old event to expire", T, || async {
        let (code, _) = api.get("/api/v1/namespaces/default/events/old").await;
        (code == StatusCode::NOT_FOUND).then_some(())
    })
    .await
    .unwrap();
    let (code, _) = api.get("/api/v1/namespaces/default/events/fresh").await;
    assert_eq!(
        code,
        StatusCode::OK,
        "a fresh event is kept until it is old"
    );
}
