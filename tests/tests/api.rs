//! The API server's REST behaviour, over real HTTP, against both stores: the embedded
//! redb file and a real etcd process.

use std::time::Duration;

use futures::StreamExt;
use minik8s_tests::apiserver::{Backend, TestApiServer};
use minik8s_tests::wait_for;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(20);

struct Api {
    srv: TestApiServer,
    http: Client,
}

impl Api {
    async fn start(backend: Backend) -> Api {
        Api {
            srv: TestApiServer::start(backend)
                .await
                .expect("apiserver starts"),
            http: Client::new(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_ct(method, path, body, "application/json").await
    }

    async fn call_ct(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        ct: &str,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.srv.url, path));
        if let Some(b) = body {
            req = req
                .header("content-type", ct)
                .body(serde_json::to_vec(&b).unwrap());
        }
        let resp = tokio::time::timeout(T, req.send())
            .await
            .expect("request timed out")
            .expect("request sent");
        let code = resp.status();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (code, v)
    }

    async fn create_pod(&self, ns: &str, pod: Value) -> Value {
        let (code, body) = self
            .call(
                Method::POST,
                &format!("/api/v1/namespaces/{ns}/pods"),
                Some(pod),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        body
    }
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}
    })
}

fn rv(obj: &Value) -> i64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .parse()
        .unwrap()
}

/// Runs each test body against both backends.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Api::start(super::Backend::Embedded).await).await }
            )*
        }
        mod etcd {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Api::start(super::Backend::Etcd).await).await }
            )*
        }
    };
}

both_stores!(
    discovery,
    create_get_and_defaults,
    invalid_pod_lists_every_bad_field,
    malformed_and_oversized_bodies,
    missing_namespace_is_not_found,
    update_conflicts_and_status,
    patches,
    list_selectors_and_paging,
    deletion,
    watch_streams,
    watch_too_old_is_expired,
    tables,
    namespaces_lifecycle,
    nodes,
);

async fn discovery(api: Api) {
    for path in [
        "/version",
        "/api",
        "/api/v1",
        "/apis",
        "/openapi/v3",
        "/openapi/v3/api/v1",
    ] {
        let (code, body) = api.call(Method::GET, path, None).await;
        assert_eq!(code, StatusCode::OK, "{path}: {body}");
    }
    let (_, v) = api.call(Method::GET, "/version", None).await;
    assert!(v["gitVersion"].as_str().unwrap().starts_with("v1."));
    let (_, r) = api.call(Method::GET, "/api/v1", None).await;
    let names: Vec<&str> = r["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in [
        "pods",
        "pods/status",
        "nodes",
        "nodes/status",
        "namespaces",
        "events",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let (_, root) = api.call(Method::GET, "/openapi/v3", None).await;
    let url = root["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap();
    assert!(url.starts_with("/openapi/v3/api/v1?hash="));
    for path in ["/healthz", "/readyz", "/livez"] {
        let (code, _) = api.call(Method::GET, path, None).await;
        assert_eq!(code, StatusCode::OK, "{path}");
    }
    let (code, body) = api.call(Method::GET, "/api/v1/deployments", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(body["kind"], "Status");
}

async fn create_get_and_defaults(api: Api) {
    let created = api.create_pod("default", pod("web")).await;
    let meta = &created["metadata"];
    assert_eq!(meta["namespace"], "default");
    assert_eq!(meta["uid"].as_str().unwrap().len(), 36);
    assert!(meta["creationTimestamp"].as_str().unwrap().ends_with('Z'));
    assert!(rv(&created) > 0);
    assert_eq!(created["spec"]["restartPolicy"], "Always");
    assert_eq!(created["spec"]["terminationGracePeriodSeconds"], 30);
    assert_eq!(
        created["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(created["status"]["phase"], "Pending");
    assert_eq!(created["status"]["qosClass"], "BestEffort");

    let (code, got) = api
        .call(Method::GET, "/api/v1/namespaces/default/pods/web", None)
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(got, created);

    let (code, body) = api
        .call(
            Method::POST,
            "/api/v1/namespaces/default/pods",
            Some(pod("web")),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(body["reason"], "AlreadyExists");
    assert_eq!(body["message"], "pods \"web\" already exists");
    assert_eq!(body["details"]["name"], "web");

    let mut generated = pod("");
    generated["metadata"] = json!({"generateName": "job-"});
    let g = api.create_pod("default", generated).await;
    let name = g["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("job-") && name.len() == 9, "{name}");
    // A long base is cut so that the generated name is still a valid 63-byte name.
    let long = format!("{}-", "a".repeat(70));
    let mut generated = pod("");
    generated["metadata"] = json!({"generateName": long});
    let g = api.create_pod("default", generated).await;
    let name = g["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with(&long[..58]) && name.len() == 63, "{name}");

    let (code, body) = api
        .call(Method::GET, "/api/v1/namespaces/default/pods/nope", None)
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(body["reason"], "NotFound");
    assert_eq!(body["message"], "pods \"nope\" not found");
}

async fn invalid_pod_lists_every_bad_field(api: Api) {
    let bad = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "Bad_Name"},
        "spec": {
            "restartPolicy": "Sometimes",
            "containers": [
                {"name": "a", "image": ""},
                {"name": "a", "image": "x", "ports": [{"containerPort": 70000}],
                 "resources": {"limits": {"memory": "lots"}}},
            ]
        }
    });
    let (code, body) = api
        .call(Method::POST, "/api/v1/namespaces/default/pods", Some(bad))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["reason"], "Invalid");
    assert_eq!(body["details"]["kind"], "Pod");
    let fields: Vec<&str> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    for f in [
        "metadata.name",
        "spec.restartPolicy",
        "spec.containers[0].image",
        "spec.containers[1].name",
        "spec.containers[1].ports[0].containerPort",
        "spec.containers[1].resources.limits[memory]",
    ] {
        assert!(
            fields.iter().any(|x| x.starts_with(f)),
            "no cause for {f} in {fields:?}"
        );
    }
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Pod \"Bad_Name\" is invalid: [")
    );
}

async fn malformed_and_oversized_bodies(api: Api) {
    let url = format!("{}/api/v1/namespaces/default/pods", api.srv.url);
    let resp = api
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"kind\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["kind"], "Status");

    // Unknown fields: refused under Strict, a warning otherwise.
    let mut p = pod("strict");
    p["spec"]["containers"][0]["imagee"] = json!("typo");
    let (code, body) = api
        .call(
            Method::POST,
            "/api/v1/namespaces/default/pods?fieldValidation=Strict",
            Some(p.clone()),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.containers[0].imagee\""),
        "{body}"
    );
    let resp = api
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&p).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let warning = resp.headers().get("warning").unwrap().to_str().unwrap();
    assert!(warning.contains("spec.containers[0].imagee"), "{warning}");

    // Over 3 MiB.
    let mut big = pod("big");
    big["metadata"]["annotations"] = json!({"x": "a".repeat(3 * 1024 * 1024 + 10)});
    let resp = api
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&big).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["reason"], "RequestEntityTooLarge");

    // 100k-deep nesting is refused quickly.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let started = std::time::Instant::now();
    let resp = api
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(started.elapsed() < Duration::from_secs(2));

    // Wrong kind for the path.
    let mut node = pod("n");
    node["kind"] = json!("Node");
    let (code, _) = api
        .call(Method::POST, "/api/v1/namespaces/default/pods", Some(node))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
}

async fn missing_namespace_is_not_found(api: Api) {
    let (code, body) = api
        .call(
            Method::POST,
            "/api/v1/namespaces/nowhere/pods",
            Some(pod("p")),
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "namespaces \"nowhere\" not found");
}

async fn update_conflicts_and_status(api: Api) {
    let created = api.create_pod("default", pod("u")).await;
    let path = "/api/v1/namespaces/default/pods/u";
    let mut v1 = created.clone();
    v1["metadata"]["labels"]["tier"] = json!("front");
    let (code, updated) = api.call(Method::PUT, path, Some(v1.clone())).await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert!(rv(&updated) > rv(&created));
    assert_eq!(updated["metadata"]["labels"]["tier"], "front");

    // The same stale version again: 409 Conflict.
    let (code, body) = api.call(Method::PUT, path, Some(v1)).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(body["reason"], "Conflict");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified")
    );

    // A main update cannot change status; a status update cannot change spec.
    let mut sneaky = updated.clone();
    sneaky["status"]["phase"] = json!("Running");
    let (code, after) = api.call(Method::PUT, path, Some(sneaky)).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(after["status"]["phase"], "Pending");

    let mut st = after.clone();
    st["status"]["phase"] = json!("Running");
    st["spec"]["containers"][0]["image"] = json!("other:1");
    let (code, after) = api
        .call(Method::PUT, &format!("{path}/status"), Some(st))
        .await;
    assert_eq!(code, StatusCode::OK, "{after}");
    assert_eq!(after["status"]["phase"], "Running");
    assert_eq!(after["spec"]["containers"][0]["image"], "busybox:1.36");

    // Forbidden spec change.
    let mut forbidden = after.clone();
    forbidden["spec"]["containers"][0]["command"] = json!(["true"]);
    let (code, body) = api.call(Method::PUT, path, Some(forbidden)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // A write that changes nothing keeps the resourceVersion.
    let (code, same) = api.call(Method::PUT, path, Some(after.clone())).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(rv(&same), rv(&after));
}

async fn patches(api: Api) {
    api.create_pod("default", pod("p")).await;
    let path = "/api/v1/namespaces/default/pods/p";
    let (code, v) = api
        .call_ct(
            Method::PATCH,
            path,
            Some(json!({"metadata": {"labels": {"x": "1", "app": null}}})),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["metadata"]["labels"], json!({"x": "1"}));

    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}});
    let (code, v) = api
        .call_ct(
            Method::PATCH,
            &format!("{path}/status"),
            Some(status),
            "application/strategic-merge-patch+json",
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let (code, v) = api
        .call_ct(
            Method::PATCH,
            &format!("{path}/status"),
            Some(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})),
            "application/strategic-merge-patch+json",
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let conds = v["status"]["conditions"].as_array().unwrap();
    assert_eq!(conds.len(), 2, "{conds:?}");
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    );

    let (code, v) = api
        .call_ct(
            Method::PATCH,
            path,
            Some(json!([{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}])),
            "application/json-patch+json",
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["metadata"]["annotations"]["a"], "b");

    // A stale resourceVersion in a patch is a precondition failure.
    let (code, _) = api
        .call_ct(
            Method::PATCH,
            path,
            Some(json!({"metadata": {"resourceVersion": "1", "labels": {"y": "2"}}})),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (code, _) = api
        .call_ct(Method::PATCH, path, Some(json!({})), "text/plain")
        .await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A JSON patch whose test fails is unprocessable; one that copies the object
    // onto itself again and again is refused before it grows.
    let (code, _) = api
        .call_ct(
            Method::PATCH,
            path,
            Some(json!([{"op": "test", "path": "/metadata/name", "value": "other"}])),
            "application/json-patch+json",
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let doubling: Vec<Value> = (0..40)
        .map(|_| json!({"op": "copy", "from": "/spec", "path": "/metadata/annotations/x"}))
        .chain((0..40).map(
            |i| json!({"op": "copy", "from": "", "path": format!("/metadata/annotations/y{i}")}),
        ))
        .collect();
    let (code, body) = api
        .call_ct(
            Method::PATCH,
            path,
            Some(Value::Array(doubling)),
            "application/json-patch+json",
        )
        .await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

async fn list_selectors_and_paging(api: Api) {
    for i in 0..25 {
        let mut p = pod(&format!("p{i:02}"));
        p["metadata"]["labels"] =
            json!({"app": if i % 2 == 0 { "even" } else { "odd" }, "i": i.to_string()});
        if i < 5 {
            p["spec"]["nodeName"] = json!("node-a");
        }
        api.create_pod("default", p).await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, all) = api
        .call(Method::GET, "/api/v1/namespaces/default/pods", None)
        .await;
    assert_eq!(all["kind"], "PodList");
    assert_eq!(names(&all).len(), 25);
    let (_, even) = api
        .call(
            Method::GET,
            "/api/v1/namespaces/default/pods?labelSelector=app%3Deven",
            None,
        )
        .await;
    assert_eq!(names(&even).len(), 13);
    let (_, sel) = api
        .call(
            Method::GET,
            "/api/v1/pods?labelSelector=app%20in%20(odd),i%20notin%20(1,3)",
            None,
        )
        .await;
    assert_eq!(names(&sel).len(), 10);
    let (_, on_a) = api
        .call(
            Method::GET,
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a",
            None,
        )
        .await;
    assert_eq!(names(&on_a), vec!["p00", "p01", "p02", "p03", "p04"]);
    let (_, unscheduled) = api
        .call(
            Method::GET,
            "/api/v1/pods?fieldSelector=spec.nodeName%3D",
            None,
        )
        .await;
    assert_eq!(names(&unscheduled).len(), 20);
    let (_, one) = api
        .call(
            Method::GET,
            "/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dp07",
            None,
        )
        .await;
    assert_eq!(names(&one), vec!["p07"]);
    let (code, body) = api
        .call(
            Method::GET,
            "/api/v1/pods?fieldSelector=spec.bogus%3Dx",
            None,
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("spec.bogus"));
    let (code, _) = api
        .call(Method::GET, "/api/v1/pods?labelSelector=a%20in%20b", None)
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);

    // Paging: every pod exactly once, at one revision, while writes go on.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut first_rv = None;
    loop {
        let path = format!(
            "/api/v1/namespaces/default/pods?limit=4&labelSelector=app%3Deven{}",
            if token.is_empty() {
                String::new()
            } else {
                format!("&continue={token}")
            }
        );
        let (code, page) = api.call(Method::GET, &path, None).await;
        assert_eq!(code, StatusCode::OK, "{page}");
        let page_rv = page["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(first_rv.get_or_insert(page_rv.clone()), &page_rv);
        seen.extend(names(&page));
        // A write between pages does not show up in this list.
        api.create_pod("default", {
            let mut p = pod(&format!("late{}", seen.len()));
            p["metadata"]["labels"] = json!({"app": "even"});
            p
        })
        .await;
        match page["metadata"]["continue"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 13, "{seen:?}");
    let mut dedup = seen.clone();
    dedup.dedup();
    assert_eq!(dedup, seen);
}

async fn deletion(api: Api) {
    api.create_pod("default", pod("free")).await;
    let (code, body) = api
        .call(Method::DELETE, "/api/v1/namespaces/default/pods/free", None)
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, _) = api
        .call(Method::GET, "/api/v1/namespaces/default/pods/free", None)
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // A pod on a node waits for its kubelet.
    let mut bound = pod("bound");
    bound["spec"]["nodeName"] = json!("node-a");
    api.create_pod("default", bound).await;
    let path = "/api/v1/namespaces/default/pods/bound";
    let (code, marked) = api.call(Method::DELETE, path, None).await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    let (code, still) = api.call(Method::GET, path, None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(still["metadata"]["deletionGracePeriodSeconds"], 30);
    // A precondition on a wrong uid fails.
    let (code, _) = api
        .call(
            Method::DELETE,
            path,
            Some(
                json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                        "preconditions": {"uid": "not-the-uid"}}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (code, _) = api
        .call(
            Method::DELETE,
            &format!("{path}?gracePeriodSeconds=0"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = api.call(Method::GET, path, None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    let (code, body) = api.call(Method::DELETE, path, None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(body["reason"], "NotFound");

    // A dry run answers as the delete would, and deletes nothing.
    api.create_pod("default", pod("dry")).await;
    let (code, _) = api
        .call(
            Method::DELETE,
            "/api/v1/namespaces/default/pods/dry",
            Some(json!({"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]})),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = api
        .call(Method::GET, "/api/v1/namespaces/default/pods/dry", None)
        .await;
    assert_eq!(code, StatusCode::OK);
}

/// Reads watch events (one JSON document per line) until `n` have arrived.
async fn read_events(resp: reqwest::Response, n: usize) -> Vec<Value> {
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = tokio::time::timeout(T, stream.next())
            .await
            .expect("watch event in time")
            .expect("watch stream still open")
            .unwrap();
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let ev: Value = serde_json::from_slice(&line).unwrap();
            if ev["type"] != "BOOKMARK" {
                out.push(ev);
            }
        }
    }
    out
}

async fn watch_streams(api: Api) {
    let first = api.create_pod("default", pod("w1")).await;
    let resp = api
        .http
        .get(format!(
            "{}/api/v1/namespaces/default/pods?watch=true",
            api.srv.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let path = "/api/v1/namespaces/default/pods/w1";
    let watcher = tokio::spawn(read_events(resp, 4));
    api.create_pod("default", pod("w2")).await;
    api.call_ct(
        Method::PATCH,
        path,
        Some(json!({"metadata": {"labels": {"v": "2"}}})),
        "application/merge-patch+json",
    )
    .await;
    api.call(Method::DELETE, path, None).await;
    let evs = watcher.await.unwrap();
    let kinds: Vec<(String, String)> = evs
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("ADDED".into(), "w1".into()),
            ("ADDED".into(), "w2".into()),
            ("MODIFIED".into(), "w1".into()),
            ("DELETED".into(), "w1".into()),
        ]
    );
    // Resuming from the first pod's version replays exactly what followed it.
    let resp = api
        .http
        .get(format!(
            "{}/api/v1/namespaces/default/pods?watch=true&resourceVersion={}",
            api.srv.url,
            rv(&first)
        ))
        .send()
        .await
        .unwrap();
    let replay = read_events(resp, 3).await;
    let types: Vec<&str> = replay.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["ADDED", "MODIFIED", "DELETED"]);
    let revs: Vec<i64> = replay.iter().map(|e| rv(&e["object"])).collect();
    assert!(revs.windows(2).all(|w| w[0] < w[1]), "{revs:?}");

    // A label-selector watch sees an object leave its view as DELETED.
    let mut sel = pod("sel");
    sel["metadata"]["labels"] = json!({"team": "a"});
    api.create_pod("default", sel).await;
    let resp = api
        .http
        .get(format!(
            "{}/api/v1/namespaces/default/pods?watch=true&labelSelector=team%3Da&allowWatchBookmarks=true",
            api.srv.url
        ))
        .send()
        .await
        .unwrap();
    let w = tokio::spawn(read_events(resp, 2));
    api.call_ct(
        Method::PATCH,
        "/api/v1/namespaces/default/pods/sel",
        Some(json!({"metadata": {"labels": {"team": "b"}}})),
        "application/merge-patch+json",
    )
    .await;
    let evs = w.await.unwrap();
    assert_eq!(evs[0]["type"], "ADDED");
    assert_eq!(evs[1]["type"], "DELETED");
    assert_eq!(evs[1]["object"]["metadata"]["labels"]["team"], "b");
}

async fn watch_too_old_is_expired(api: Api) {
    let first = api.create_pod("default", pod("old")).await;
    // The test server's watch cache keeps 200 events: push the first one out of it.
    for i in 0..210 {
        api.call(
            Method::POST,
            "/api/v1/namespaces",
            Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns{i}")}})),
        )
        .await;
        api.call_ct(
            Method::PATCH,
            "/api/v1/namespaces/default/pods/old",
            Some(json!({"metadata": {"labels": {"i": i.to_string()}}})),
            "application/merge-patch+json",
        )
        .await;
    }
    let store = api.srv.server().registry().store().clone();
    let resp = api
        .http
        .get(format!(
            "{}/api/v1/namespaces/default/pods?watch=true&resourceVersion={}",
            api.srv.url,
            rv(&first)
        ))
        .send()
        .await
        .unwrap();
    let evs = read_events(resp, 1).await;
    assert_eq!(evs[0]["type"], "ERROR");
    assert_eq!(evs[0]["object"]["code"], 410);
    assert_eq!(evs[0]["object"]["reason"], "Expired");
    // A recent version still resumes.
    let (_, now) = api
        .call(Method::GET, "/api/v1/namespaces/default/pods/old", None)
        .await;
    let resp = api
        .http
        .get(format!(
            "{}/api/v1/namespaces/default/pods?watch=true&resourceVersion={}",
            api.srv.url,
            rv(&now)
        ))
        .send()
        .await
        .unwrap();
    let w = tokio::spawn(read_events(resp, 1));
    api.call(Method::DELETE, "/api/v1/namespaces/default/pods/old", None)
        .await;
    assert_eq!(w.await.unwrap()[0]["type"], "DELETED");
    // A paged list whose revision was compacted away is 410 too.
    api.create_pod("default", pod("page1")).await;
    api.create_pod("default", pod("page2")).await;
    let (_, page) = api
        .call(Method::GET, "/api/v1/namespaces/default/pods?limit=1", None)
        .await;
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    api.create_pod("default", pod("later")).await;
    let now = store.current_revision().await.unwrap();
    store.compact(now).await.unwrap();
    let (code, body) = api
        .call(
            Method::GET,
            &format!("/api/v1/namespaces/default/pods?limit=1&continue={token}"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::GONE, "{body}");
    assert_eq!(body["reason"], "Expired");
}

async fn tables(api: Api) {
    let mut p = pod("t1");
    p["spec"]["nodeName"] = json!("node-a");
    api.create_pod("default", p).await;
    let resp = api
        .http
        .get(format!("{}/api/v1/namespaces/default/pods", api.srv.url))
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
        )
        .send()
        .await
        .unwrap();
    let t: Value = resp.json().await.unwrap();
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        vec![
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    let row = &t["rows"][0];
    assert_eq!(row["cells"][0], "t1");
    assert_eq!(row["cells"][1], "0/1");
    assert_eq!(row["cells"][2], "Pending");
    assert_eq!(row["cells"][6], "node-a");
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
}

async fn namespaces_lifecycle(api: Api) {
    for ns in ["default", "kube-system"] {
        let (code, v) = api
            .call(Method::GET, &format!("/api/v1/namespaces/{ns}"), None)
            .await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(v["status"]["phase"], "Active");
    }
    let (code, body) = api
        .call(Method::DELETE, "/api/v1/namespaces/default", None)
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    let (code, _) = api
        .call(
            Method::POST,
            "/api/v1/namespaces",
            Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    api.create_pod("team", pod("a")).await;
    let (code, ns) = api
        .call(Method::DELETE, "/api/v1/namespaces/team", None)
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(ns["status"]["phase"], "Terminating");
    let (code, body) = api
        .call(Method::POST, "/api/v1/namespaces/team/pods", Some(pod("b")))
        .await;
    assert!(
        code == StatusCode::FORBIDDEN || code == StatusCode::NOT_FOUND,
        "{code} {body}"
    );
    wait_for("namespace team to go", T, || async {
        let (code, _) = api.call(Method::GET, "/api/v1/namespaces/team", None).await;
        (code == StatusCode::NOT_FOUND).then_some(())
    })
    .await
    .unwrap();
    let (code, _) = api
        .call(Method::GET, "/api/v1/namespaces/team/pods/a", None)
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

async fn nodes(api: Api) {
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1",
        "labels": {"node-role.kubernetes.io/control-plane": ""}}});
    let (code, body) = api.call(Method::POST, "/api/v1/nodes", Some(node)).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}],
        "nodeInfo": {"kubeletVersion": "v1.33.0", "machineID": "", "systemUUID": "", "bootID": "",
                     "kernelVersion": "6", "osImage": "Debian", "containerRuntimeVersion": "docker://20.10",
                     "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"},
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}});
    let (code, body) = api
        .call_ct(
            Method::PATCH,
            "/api/v1/nodes/n1/status",
            Some(status),
            "application/strategic-merge-patch+json",
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let resp = api
        .http
        .get(format!("{}/api/v1/nodes", api.srv.url))
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .send()
        .await
        .unwrap();
    let t: Value = resp.json().await.unwrap();
    let cells = &t["rows"][0]["cells"];
    assert_eq!(cells[0], "n1");
    assert_eq!(cells[1], "Ready");
    assert_eq!(cells[2], "control-plane");
    assert_eq!(cells[4], "v1.33.0");
    assert_eq!(cells[5], "10.0.0.1");
    // The pod range of a node is set once.
    let (code, _) = api
        .call_ct(
            Method::PATCH,
            "/api/v1/nodes/n1",
            Some(json!({"spec": {"podCIDR": "10.9.0.0/24"}})),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, body) = api
        .call_ct(
            Method::PATCH,
            "/api/v1/nodes/n1",
            Some(json!({"spec": {"podCIDR": "10.9.1.0/24"}})),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (code, _) = api.call(Method::DELETE, "/api/v1/nodes/n1", None).await;
    assert_eq!(code, StatusCode::OK);
}
