//! `DELETE` on a collection and `dryRun=All`, against a real API server: over REST, with
//! the real kubectl, the Python client and kube-rs. No kubelet: pods stay unscheduled, so
//! a delete removes them at once.

use std::process::Command;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, WatchEvent, WatchParams};
use minik8s_tests::apiserver::{Backend, TestApiServer};
use minik8s_tests::kubelet::repo_root;
use minik8s_tests::real_kubectl;
use minik8s_tests::rest::Rest;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PODS: &str = "/api/v1/namespaces/default/pods";

fn pod(name: &str, app: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "minik8s/busybox:latest"}]}
    })
}

async fn names(rest: &Rest, path: &str) -> Vec<String> {
    let (code, list) = rest.get(path).await;
    assert_eq!(code, StatusCode::OK, "{list}");
    let mut names: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn item_names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Runs the real kubectl against the server; (success, stdout, stderr).
fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(real_kubectl())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn deletecollection_over_rest_honours_selectors_and_options() {
    let srv = TestApiServer::start(Backend::Embedded).await.unwrap();
    let rest = Rest::new(&srv.url);
    for (name, app) in [("a1", "a"), ("a2", "a"), ("b1", "b")] {
        rest.create(PODS, &pod(name, app)).await;
    }
    rest.create(
        "/api/v1/namespaces",
        &json!({"metadata": {"name": "other"}}),
    )
    .await;
    rest.create("/api/v1/namespaces/other/pods", &pod("a3", "a"))
        .await;

    // Across namespaces Kubernetes has no deletecollection.
    let (code, body) = rest.delete("/api/v1/pods?labelSelector=app%3Da").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED, "{body}");

    // A dry run answers with what would go and removes nothing.
    let (code, list) = rest
        .delete(&format!("{PODS}?labelSelector=app%3Da&dryRun=All"))
        .await;
    assert_eq!(code, StatusCode::OK, "{list}");
    assert_eq!(item_names(&list), ["a1", "a2"]);
    assert_eq!(names(&rest, PODS).await, ["a1", "a2", "b1"]);

    // The label selector picks exactly the matching pods of the namespace.
    let (code, list) = rest.delete(&format!("{PODS}?labelSelector=app%3Da")).await;
    assert_eq!(code, StatusCode::OK, "{list}");
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(item_names(&list), ["a1", "a2"]);
    assert_eq!(names(&rest, PODS).await, ["b1"]);
    assert_eq!(names(&rest, "/api/v1/namespaces/other/pods").await, ["a3"]);

    // A field selector, and a body of DeleteOptions.
    rest.create(PODS, &pod("c1", "c")).await;
    let (code, list) = rest
        .call(
            Method::DELETE,
            &format!("{PODS}?fieldSelector=metadata.name%3Dc1"),
            Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{list}");
    assert_eq!(item_names(&list), ["c1"]);
    assert_eq!(names(&rest, PODS).await, ["b1"]);

    // Options are checked as for one delete; a bad selector is refused before anything goes.
    let (code, body) = rest
        .delete(&format!("{PODS}?fieldSelector=spec.bogus%3Dx"))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let (code, body) = rest.delete(&format!("{PODS}?dryRun=Maybe")).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["message"],
        "DeleteOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Maybe\"}: supported values: \"All\""
    );
    assert_eq!(names(&rest, PODS).await, ["b1"]);

    // Other kinds, namespaced and cluster-scoped; namespaces themselves are not.
    for name in ["x", "y"] {
        rest.create(
            "/api/v1/namespaces/default/configmaps",
            &json!({"metadata": {"name": name, "labels": {"k": name}}}),
        )
        .await;
    }
    let (code, list) = rest
        .delete("/api/v1/namespaces/default/configmaps?labelSelector=k%3Dx")
        .await;
    assert_eq!(
        (code, list["kind"].as_str()),
        (StatusCode::OK, Some("ConfigMapList"))
    );
    assert_eq!(
        names(
            &rest,
            "/api/v1/namespaces/default/configmaps?labelSelector=k"
        )
        .await,
        ["y"]
    );
    let (code, list) = rest
        .delete("/apis/apps/v1/namespaces/default/deployments")
        .await;
    assert_eq!(
        (code, list["kind"].as_str()),
        (StatusCode::OK, Some("DeploymentList"))
    );
    let (code, body) = rest.delete("/api/v1/namespaces?labelSelector=x").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED, "{body}");

    // Discovery lists the verb where it is served.
    let (_, doc) = rest.get("/api/v1").await;
    let verbs = |name: &str| {
        doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()["verbs"]
            .clone()
    };
    assert!(
        verbs("pods")
            .as_array()
            .unwrap()
            .contains(&json!("deletecollection"))
    );
    assert!(
        verbs("nodes")
            .as_array()
            .unwrap()
            .contains(&json!("deletecollection"))
    );
    assert!(
        !verbs("namespaces")
            .as_array()
            .unwrap()
            .contains(&json!("deletecollection"))
    );
}

#[tokio::test]
async fn dry_run_writes_nothing_and_answers_in_full() {
    let srv = TestApiServer::start(Backend::Embedded).await.unwrap();
    let rest = Rest::new(&srv.url);
    let (_, list) = rest.get(PODS).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // Watch from here: any write would show.
    let config = kube::Config::new(srv.url.parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut events = pods
        .watch(&WatchParams::default().timeout(60), &rv)
        .await
        .unwrap()
        .boxed();

    // Create: defaulted, named from generateName, 201, no resourceVersion, nothing kept.
    let mut gen_pod = pod("", "dry");
    gen_pod["metadata"] = json!({"generateName": "web-", "labels": {"app": "dry"}});
    let (code, created) = rest.post(&format!("{PODS}?dryRun=All"), &gen_pod).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let name = created["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("web-") && name.len() == 9, "{created}");
    assert!(created["metadata"]["uid"].is_string(), "{created}");
    assert!(created["metadata"]["creationTimestamp"].is_string());
    assert!(
        created["metadata"].get("resourceVersion").is_none(),
        "{created}"
    );
    assert_eq!(created["spec"]["restartPolicy"], "Always", "{created}");
    assert_eq!(
        created["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );
    assert!(names(&rest, PODS).await.is_empty());

    // Validation still runs.
    let mut bad = pod("Bad_Name", "dry");
    bad["metadata"]["name"] = json!("Bad_Name");
    let (code, body) = rest.post(&format!("{PODS}?dryRun=All"), &bad).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (code, body) = rest
        .post(&format!("{PODS}?dryRun=Yes"), &pod("p", "dry"))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["message"],
        "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Yes\"}: supported values: \"All\""
    );

    // Update, patch and delete of a real object: answered, and the object unchanged.
    let real = rest.create(PODS, &pod("real", "dry")).await;
    let real_rv = real["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("{PODS}/real");
    let mut changed = real.clone();
    changed["metadata"]["labels"]["step"] = json!("put");
    let (code, put) = rest.put(&format!("{path}?dryRun=All"), &changed).await;
    assert_eq!(code, StatusCode::OK, "{put}");
    assert_eq!(put["metadata"]["labels"]["step"], "put");
    assert_eq!(put["metadata"]["resourceVersion"], real_rv.as_str());
    let (code, patched) = rest
        .merge(
            &format!("{path}?dryRun=All"),
            &json!({"metadata": {"labels": {"step": "patch"}}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{patched}");
    assert_eq!(patched["metadata"]["labels"]["step"], "patch");
    let (code, deleted) = rest
        .call(
            Method::DELETE,
            &path,
            Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["metadata"]["name"], "real");
    let (code, now) = rest.get(&path).await;
    assert_eq!(code, StatusCode::OK, "{now}");
    assert_eq!(now["metadata"]["resourceVersion"], real_rv.as_str());
    assert!(now["metadata"]["labels"].get("step").is_none(), "{now}");

    // Services: the answer has a cluster IP, and the IP stays free.
    let svc = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.96.0.77", "ports": [{"port": 80}]}});
    for _ in 0..2 {
        let (code, dry) = rest
            .post("/api/v1/namespaces/default/services?dryRun=All", &svc)
            .await;
        assert_eq!(code, StatusCode::CREATED, "{dry}");
        assert_eq!(dry["spec"]["clusterIP"], "10.96.0.77");
    }
    let (code, dry) = rest
        .post(
            "/api/v1/namespaces/default/services?dryRun=All",
            &json!({"metadata": {"name": "t"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{dry}");
    assert!(
        dry["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.96.")),
        "{dry}"
    );
    assert!(
        dry["spec"]["ports"][0]["nodePort"].as_i64().is_some(),
        "{dry}"
    );
    let other = json!({"metadata": {"name": "u"}, "spec": {"clusterIP": "10.96.0.77", "ports": [{"port": 80}]}});
    let real_svc = rest
        .create("/api/v1/namespaces/default/services", &other)
        .await;
    assert_eq!(real_svc["spec"]["clusterIP"], "10.96.0.77");

    // The real kubectl: create --dry-run=server prints the object and stores nothing;
    // delete --all --dry-run=server removes nothing.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = srv.write_kubeconfig(dir.path()).unwrap();
    let manifest = dir.path().join("pod.yaml");
    std::fs::write(
        &manifest,
        serde_json::to_string(&pod("from-file", "dry")).unwrap(),
    )
    .unwrap();
    let manifest_arg = manifest.to_str().unwrap().to_string();
    let kc = kubeconfig.clone();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        kubectl(
            &kc,
            &[
                "create",
                "-f",
                &manifest_arg,
                "--dry-run=server",
                "-o",
                "yaml",
            ],
        )
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(
        out.contains("name: from-file") && out.contains("uid: "),
        "{out}"
    );
    assert!(!out.contains("resourceVersion"), "{out}");
    let kc = kubeconfig.clone();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        kubectl(&kc, &["delete", "pods", "--all", "--dry-run=server"])
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "pod \"real\" deleted (server dry run)");
    assert_eq!(names(&rest, PODS).await, ["real"]);

    // The watch saw only the two real creates (the pod, nothing else on pods).
    let mut seen = Vec::new();
    rest.create(PODS, &pod("marker", "dry")).await;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(20), events.try_next())
            .await
            .expect("watch event in time")
            .unwrap()
            .expect("watch open");
        match ev {
            WatchEvent::Added(p) | WatchEvent::Modified(p) | WatchEvent::Deleted(p) => {
                let n = p.metadata.name.unwrap();
                seen.push(n.clone());
                if n == "marker" {
                    break;
                }
            }
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(seen, ["real", "marker"]);
}

#[tokio::test]
async fn deletecollection_with_kube_rs_and_the_python_client() {
    let srv = TestApiServer::start(Backend::Embedded).await.unwrap();
    let rest = Rest::new(&srv.url);
    for (name, app) in [
        ("k1", "kube"),
        ("k2", "kube"),
        ("p1", "py"),
        ("p2", "py"),
        ("o", "other"),
    ] {
        rest.create(PODS, &pod(name, app)).await;
    }

    let config = kube::Config::new(srv.url.parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let deleted = pods
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app=kube"),
        )
        .await
        .unwrap();
    let list = deleted.left().expect("the list of deleted pods");
    let mut got: Vec<String> = list
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    got.sort();
    assert_eq!(got, ["k1", "k2"]);
    assert_eq!(names(&rest, PODS).await, ["o", "p1", "p2"]);

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = srv.write_kubeconfig(dir.path()).unwrap();
    let script = r#"
import json, sys
from kubernetes import client, config
config.load_kube_config(sys.argv[1])
v1 = client.CoreV1Api()
resp = v1.delete_collection_namespaced_pod("default", label_selector="app=py", dry_run="All", _preload_content=False)
dry = json.loads(resp.data)
assert sorted(p["metadata"]["name"] for p in dry["items"]) == ["p1", "p2"], dry
assert sorted(p.metadata.name for p in v1.list_namespaced_pod("default").items) == ["o", "p1", "p2"]
v1.delete_collection_namespaced_pod("default", label_selector="app=py", grace_period_seconds=0)
print(",".join(sorted(p.metadata.name for p in v1.list_namespaced_pod("default").items)))
"#;
    let out = tokio::task::spawn_blocking(move || {
        Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .arg(kubeconfig)
            .env_remove("KUBECONFIG")
            .current_dir(repo_root())
            .output()
    })
    .await
    .unwrap()
    .expect("run /usr/bin/python3 (Debian packages python3 and python3-kubernetes)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "o");
}
