//! TaskSet: the API (our group and the original alias group), the controller's pods with
//! names known in advance, completion policies, retries and garbage collection. Pod phases
//! are set through the API here, as a kubelet would report them.

use std::time::Duration;

use minik8s_tests::apiserver::{Backend, TestApiServer};
use minik8s_tests::{real_kubectl, wait_for};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(20);
const TS: &str = "/apis/minik8s.io/v1alpha1/namespaces/default/tasksets";
const PODS: &str = "/api/v1/namespaces/default/pods";

struct Api {
    url: String,
    http: Client,
}

impl Api {
    async fn start() -> (TestApiServer, Api) {
        let srv = TestApiServer::start_with_controllers(Backend::Embedded)
            .await
            .unwrap();
        let api = Api {
            url: srv.url.clone(),
            http: Client::new(),
        };
        (srv, api)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let r = req.send().await.unwrap();
        let code = r.status();
        let text = r.text().await.unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(format!("{}{path}", self.url)))
            .await
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send(self.http.post(format!("{}{path}", self.url)).json(body))
            .await
    }

    async fn set_phase(&self, pod: &str, phase: &str) {
        let (code, body) = self
            .send(
                self.http
                    .patch(format!("{}{PODS}/{pod}/status", self.url))
                    .header("content-type", "application/merge-patch+json")
                    .body(json!({"status": {"phase": phase}}).to_string()),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }

    async fn pod(&self, name: &str) -> Option<Value> {
        let (code, p) = self.get(&format!("{PODS}/{name}")).await;
        (code == StatusCode::OK).then_some(p)
    }

    async fn wait_phase(&self, ts: &str, phase: &str) -> Value {
        wait_for(&format!("TaskSet {ts} {phase}"), T, || async {
            let (_, v) = self.get(&format!("{TS}/{ts}")).await;
            (v["status"]["phase"] == phase).then_some(v)
        })
        .await
        .unwrap()
    }
}

fn taskset(name: &str, retry: Value, role2: Value) -> Value {
    let template = json!({"spec": {"restartPolicy": "Never",
        "containers": [{"name": "worker", "image": "busybox", "command": ["sh", "-c", "sleep 1d; exit 0"]}]}});
    let mut r2 = json!({"name": "role2", "replicas": 2, "template": template});
    if let (Some(r), Some(extra)) = (r2.as_object_mut(), role2.as_object()) {
        r.extend(extra.clone());
    }
    json!({
        "apiVersion": "minik8s.io/v1alpha1", "kind": "TaskSet",
        "metadata": {"name": name},
        "spec": {"retryPolicy": retry, "roles": [
            {"name": "role1", "replicas": 1, "completionPolicy": {"maxFailed": 1, "minSucceeded": 1},
             "template": template},
            r2,
        ]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_have_names_known_before_submission() {
    let (_srv, api) = Api::start().await;
    let (code, created) = api
        .post(TS, &taskset("demo", json!({"retry": false}), json!({})))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["apiVersion"], "minik8s.io/v1alpha1");
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    for (pod, host) in [
        ("demo-role1-0", "role1-0"),
        ("demo-role2-0", "role2-0"),
        ("demo-role2-1", "role2-1"),
    ] {
        let p = wait_for(pod, T, || api.pod(pod)).await.unwrap();
        assert_eq!(p["spec"]["hostname"], host);
        assert_eq!(p["spec"]["subdomain"], "demo");
        assert_eq!(p["metadata"]["labels"]["minik8s.io/taskset"], "demo");
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "TaskSet");
    }
    let ts = api.wait_phase("demo", "Pending").await;
    assert_eq!(ts["status"]["roles"][1]["replicas"], 2);

    for p in ["demo-role1-0", "demo-role2-0", "demo-role2-1"] {
        api.set_phase(p, "Running").await;
    }
    api.wait_phase("demo", "Running").await;
    for p in ["demo-role1-0", "demo-role2-0", "demo-role2-1"] {
        api.set_phase(p, "Succeeded").await;
    }
    let done = api.wait_phase("demo", "Succeeded").await;
    assert!(done["status"]["completionTime"].is_string());

    // A table for kubectl, with the roles' progress.
    let r = api
        .http
        .get(format!("{}{TS}", api.url))
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .send()
        .await
        .unwrap();
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["rows"][0]["cells"][1], "Succeeded");
    assert_eq!(t["rows"][0]["cells"][2], "role1:1/1,role2:2/2");

    // Deleting the TaskSet deletes its pods.
    let r = api
        .http
        .delete(format!("{}{TS}/demo", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    wait_for("pods of demo gone", T, || async {
        let (_, l) = api
            .get(&format!("{PODS}?labelSelector=minik8s.io%2Ftaskset%3Ddemo"))
            .await;
        l["items"].as_array().unwrap().is_empty().then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_policies_decide_the_phase() {
    let (_srv, api) = Api::start().await;
    // role2 succeeds with one of its two pods.
    let (code, _) = api
        .post(
            TS,
            &taskset(
                "one",
                json!({"retry": false}),
                json!({"completionPolicy": {"minSucceeded": 1, "maxFailed": 2}}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    wait_for("pods", T, || api.pod("one-role2-1"))
        .await
        .unwrap();
    api.set_phase("one-role1-0", "Succeeded").await;
    api.set_phase("one-role2-0", "Running").await;
    api.set_phase("one-role2-1", "Succeeded").await;
    api.wait_phase("one", "Succeeded").await;
    // What still ran is stopped when the TaskSet is done.
    wait_for("one-role2-0 deleted", T, || async {
        api.pod("one-role2-0").await.is_none().then_some(())
    })
    .await
    .unwrap();

    // maxFailed reached: the TaskSet fails.
    api.post(TS, &taskset("two", json!({"retry": false}), json!({})))
        .await;
    wait_for("pods", T, || api.pod("two-role2-1"))
        .await
        .unwrap();
    api.set_phase("two-role2-0", "Failed").await;
    let failed = api.wait_phase("two", "Failed").await;
    assert!(
        failed["status"]["message"]
            .as_str()
            .unwrap()
            .contains("role2"),
        "{failed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pods_are_retried_under_the_same_name_until_the_limit() {
    let (_srv, api) = Api::start().await;
    api.post(
        TS,
        &taskset("r", json!({"retry": true, "maxRetryCount": 1}), json!({})),
    )
    .await;
    let first = wait_for("pod", T, || api.pod("r-role2-1")).await.unwrap();
    let first_uid = first["metadata"]["uid"].as_str().unwrap().to_string();
    api.set_phase("r-role2-1", "Failed").await;
    let second = wait_for("a new r-role2-1", T, || async {
        let p = api.pod("r-role2-1").await?;
        (p["metadata"]["uid"] != first_uid.as_str()).then_some(p)
    })
    .await
    .unwrap();
    assert_eq!(second["spec"]["hostname"], "role2-1");
    assert_ne!(second["status"]["phase"], "Failed");
    let (_, ts) = api.get(&format!("{TS}/r")).await;
    assert_eq!(ts["status"]["retries"]["role2-1"], 1);
    assert_ne!(ts["status"]["phase"], "Failed");

    // The second failure is final: no third pod, and the TaskSet fails.
    let second_uid = second["metadata"]["uid"].as_str().unwrap().to_string();
    api.set_phase("r-role2-1", "Failed").await;
    api.wait_phase("r", "Failed").await;
    let p = api.pod("r-role2-1").await.unwrap();
    assert_eq!(p["metadata"]["uid"], second_uid.as_str());
    let (_, ts) = api.get(&format!("{TS}/r")).await;
    assert_eq!(ts["status"]["retries"]["role2-1"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_tasksets_and_the_alias_group() {
    let (_srv, api) = Api::start().await;
    let mut bad = taskset("Bad_Name", json!({"retry": false}), json!({"replicas": -1}));
    bad["spec"]["roles"][0]["name"] = json!("role2");
    let (code, body) = api.post(TS, &bad).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields: Vec<&str> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    for f in [
        "metadata.name",
        "spec.roles[1].name",
        "spec.roles[1].replicas",
    ] {
        assert!(fields.contains(&f), "{f} missing in {fields:?}");
    }

    // The original group of the pod-discovery design is served too.
    let mut alias = taskset("octo", json!({"retry": false}), json!({}));
    alias["apiVersion"] = json!("octopus.openi.pcl.cn/v1alpha1");
    let (code, created) = api
        .post(
            "/apis/octopus.openi.pcl.cn/v1alpha1/namespaces/default/tasksets",
            &alias,
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let (code, _) = api.get(&format!("{TS}/octo")).await;
    assert_eq!(code, StatusCode::OK);
    let (_, groups) = api.get("/apis").await;
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "discovery.k8s.io",
            "apps",
            "batch",
            "minik8s.io",
            "octopus.openi.pcl.cn"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_creates_and_lists_tasksets() {
    let (srv, _api) = Api::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = srv.write_kubeconfig(dir.path()).unwrap();
    let file = dir.path().join("ts.yaml");
    std::fs::write(
        &file,
        serde_json::to_string(&taskset("kc", json!({"retry": false}), json!({}))).unwrap(),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(real_kubectl())
            .args(args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, out, err) =
        tokio::task::block_in_place(|| run(&["create", "-f", file.to_str().unwrap()]));
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), "taskset.minik8s.io/kc created");
    let (ok, out, err) = tokio::task::block_in_place(|| run(&["get", "ts"]));
    assert!(ok, "{out}{err}");
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "PHASE", "ROLES", "RETRIES", "AGE"],
        "{out}"
    );
    assert!(out.contains("kc"), "{out}");
}
