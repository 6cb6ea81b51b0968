//! ReplicaSets and ReplicationControllers on a real API server with its controllers: the
//! replicas are kept, orphans adopted, relabelled pods released, scale-down takes the
//! least valuable pods first, and the `/scale` subresource works for the real kubectl's
//! `scale`. Without a kubelet the pods stay Pending; one test runs a real kubelet on
//! Docker and sees the pods become ready and available.

mod kubectl_support;

use std::time::Duration;

use kubectl_support::{Cluster, kubectl_raw};
use minik8s_tests::kubelet::{BUSYBOX, TestNode};
use minik8s_tests::rest::Rest;
use minik8s_tests::wait_for;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);
const RS_PATH: &str = "/apis/apps/v1/namespaces/default/replicasets";
const RC_PATH: &str = "/api/v1/namespaces/default/replicationcontrollers";
const PODS: &str = "/api/v1/namespaces/default/pods";

fn replica_set(name: &str, replicas: i64, app: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "c", "image": BUSYBOX,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", "sleep 3600"]}]},
            },
        },
    })
}

fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or("")
}

fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or("")
}

fn controller_uid(pod: &Value) -> Option<&str> {
    pod["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)?["uid"]
        .as_str()
}

fn terminating(pod: &Value) -> bool {
    pod["metadata"].get("deletionTimestamp").is_some()
}

/// The pods with `selector`, not being deleted.
async fn live_pods(api: &Rest, selector: &str) -> Vec<Value> {
    let (code, list) = api.get(&format!("{PODS}?labelSelector={selector}")).await;
    assert_eq!(code, StatusCode::OK, "{list}");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !terminating(p))
        .cloned()
        .collect()
}

/// Waits until exactly `n` live pods with `selector` are controlled by `owner`, and no
/// other live pod has the selector's labels; returns them.
async fn wait_owned(api: &Rest, selector: &str, owner: &Value, n: usize) -> Vec<Value> {
    let owner_uid = uid(owner).to_string();
    wait_for(
        &format!("{n} pods of {} with {selector}", name(owner)),
        T,
        || async {
            let pods = live_pods(api, selector).await;
            (pods.len() == n
                && pods
                    .iter()
                    .all(|p| controller_uid(p) == Some(owner_uid.as_str())))
            .then_some(pods)
        },
    )
    .await
    .unwrap()
}

async fn wait_status(api: &Rest, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(&format!("the status of {path}"), T, || async {
        let (_, obj) = api.get(path).await;
        check(&obj["status"]).then_some(obj)
    })
    .await
    .unwrap()
}

async fn start() -> (Cluster, Rest) {
    let c = Cluster::start_with_controllers().await;
    let api = Rest::new(&c.srv.url);
    (c, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_kept_and_a_deleted_pod_is_replaced() {
    let (_c, api) = start().await;
    let rs = api.create(RS_PATH, &replica_set("web", 3, "web")).await;
    let pods = wait_owned(&api, "app=web", &rs, 3).await;
    for p in &pods {
        assert!(name(p).starts_with("web-"), "{}", name(p));
        assert_eq!(p["metadata"]["generateName"], "web-");
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ReplicaSet");
        assert_eq!(owner["name"], "web");
        assert_eq!(owner["blockOwnerDeletion"], true);
    }
    let status = wait_status(&api, &format!("{RS_PATH}/web"), |s| {
        s["replicas"] == 3 && s["fullyLabeledReplicas"] == 3 && s["observedGeneration"] == 1
    })
    .await;
    // Pending pods are neither ready nor available, and zero counts are left out.
    assert!(status["status"].get("readyReplicas").is_none(), "{status}");
    assert!(
        status["status"].get("availableReplicas").is_none(),
        "{status}"
    );

    let victim = name(&pods[0]).to_string();
    let (code, _) = api.delete(&format!("{PODS}/{victim}")).await;
    assert_eq!(code, StatusCode::OK);
    let after = wait_owned(&api, "app=web", &rs, 3).await;
    assert!(after.iter().all(|p| name(p) != victim));
    // Stable: a few more rounds of the controller make no extra pods.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(live_pods(&api, "app=web").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_adopted_and_relabelled_pods_released() {
    let (_c, api) = start().await;
    // An orphan first: the ReplicaSet counts it and makes only one more.
    let orphan = api
        .create(
            PODS,
            &json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "stray", "labels": {"app": "db"}},
                "spec": {"containers": [{"name": "c", "image": BUSYBOX}]}}),
        )
        .await;
    // A pod another controller owns is never touched (its owner exists, so the garbage
    // collector leaves it too).
    let keeper = api
        .create(
            "/api/v1/namespaces/default/configmaps",
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keeper"}}),
        )
        .await;
    let foreign = api
        .create(
            PODS,
            &json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "theirs", "labels": {"app": "db"},
                    "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                        "name": "keeper", "uid": uid(&keeper), "controller": true}]},
                "spec": {"containers": [{"name": "c", "image": BUSYBOX}]}}),
        )
        .await;
    let rs = api.create(RS_PATH, &replica_set("db", 2, "db")).await;
    let rs_uid = uid(&rs).to_string();
    let pods = wait_for("the orphan adopted and one pod made", T, || async {
        let pods = live_pods(&api, "app=db").await;
        let ours: Vec<Value> = pods
            .into_iter()
            .filter(|p| controller_uid(p) == Some(rs_uid.as_str()))
            .collect();
        (ours.len() == 2).then_some(ours)
    })
    .await
    .unwrap();
    let stray = pods.iter().find(|p| name(p) == "stray").expect("adopted");
    assert_eq!(uid(stray), uid(&orphan));
    let (_, theirs) = api.get(&format!("{PODS}/theirs")).await;
    assert_eq!(
        theirs["metadata"]["ownerReferences"],
        foreign["metadata"]["ownerReferences"]
    );
    assert!(!terminating(&theirs));

    // Relabelled away: released (no controller any more) and replaced.
    let (code, v) = api
        .merge(
            &format!("{PODS}/stray"),
            &json!({"metadata": {"labels": {"app": "elsewhere"}}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    wait_for("the relabelled pod released", T, || async {
        let (_, p) = api.get(&format!("{PODS}/stray")).await;
        (controller_uid(&p).is_none() && !terminating(&p)).then_some(())
    })
    .await
    .unwrap();
    wait_for("a replacement", T, || async {
        let pods = live_pods(&api, "app=db").await;
        let ours = pods
            .iter()
            .filter(|p| controller_uid(p) == Some(rs_uid.as_str()))
            .count();
        (ours == 2).then_some(())
    })
    .await
    .unwrap();
    wait_status(&api, &format!("{RS_PATH}/db"), |s| s["replicas"] == 2).await;
}

fn ago(seconds: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(seconds))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_removes_unscheduled_and_pending_pods_first() {
    let (_c, api) = start().await;
    let rs = api.create(RS_PATH, &replica_set("api", 4, "api")).await;
    let pods = wait_owned(&api, "app=api", &rs, 4).await;
    let (running, bound) = (name(&pods[1]).to_string(), name(&pods[2]).to_string());
    // No node runs them: they are put where a kubelet would put them by hand. One bound
    // and running and ready, one bound and Pending, two unscheduled.
    for (pod, ready) in [(&running, true), (&bound, false)] {
        let (code, v) = api
            .merge(
                &format!("{PODS}/{pod}"),
                &json!({"spec": {"nodeName": "node-a"}}),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{v}");
        let status = if ready {
            json!({"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": ago(60)}]}})
        } else {
            json!({"status": {"phase": "Pending"}})
        };
        let (code, v) = api.merge(&format!("{PODS}/{pod}/status"), &status).await;
        assert_eq!(code, StatusCode::OK, "{v}");
    }
    wait_status(&api, &format!("{RS_PATH}/api"), |s| s["readyReplicas"] == 1).await;

    let (code, v) = api
        .merge(&format!("{RS_PATH}/api"), &json!({"spec": {"replicas": 2}}))
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let left = wait_owned(&api, "app=api", &rs, 2).await;
    let mut names: Vec<&str> = left.iter().map(name).collect();
    names.sort();
    let mut want = vec![running.as_str(), bound.as_str()];
    want.sort();
    assert_eq!(names, want, "the unscheduled pods go first");

    // Then the bound Pending pod: its deletion is graceful (a kubelet would finish it).
    let (code, v) = api
        .merge(&format!("{RS_PATH}/api"), &json!({"spec": {"replicas": 1}}))
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let left = wait_owned(&api, "app=api", &rs, 1).await;
    assert_eq!(name(&left[0]), running);
    wait_status(&api, &format!("{RS_PATH}/api"), |s| {
        s["replicas"] == 1 && s["readyReplicas"] == 1 && s["observedGeneration"] == 3
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_subresource_reads_and_writes_replicas() {
    let (_c, api) = start().await;
    let rs = api.create(RS_PATH, &replica_set("sc", 1, "sc")).await;
    let path = format!("{RS_PATH}/sc/scale");
    let (code, scale) = api.get(&path).await;
    assert_eq!(code, StatusCode::OK, "{scale}");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["metadata"]["uid"], rs["metadata"]["uid"]);
    assert_eq!(scale["spec"]["replicas"], 1);
    assert_eq!(scale["status"]["selector"], "app=sc");

    // PUT with the version read; then again with that, now stale, version: 409.
    let mut put = scale.clone();
    put["spec"]["replicas"] = json!(2);
    let (code, after) = api.put(&path, &put).await;
    assert_eq!(code, StatusCode::OK, "{after}");
    assert_eq!(after["spec"]["replicas"], 2);
    assert_ne!(
        after["metadata"]["resourceVersion"],
        scale["metadata"]["resourceVersion"]
    );
    let (code, conflict) = api.put(&path, &put).await;
    assert_eq!(code, StatusCode::CONFLICT, "{conflict}");
    assert_eq!(conflict["reason"], "Conflict");

    // Every patch type.
    for (ct, body, want) in [
        (
            "application/merge-patch+json",
            json!({"spec": {"replicas": 3}}),
            3,
        ),
        (
            "application/strategic-merge-patch+json",
            json!({"spec": {"replicas": 4}}),
            4,
        ),
        (
            "application/json-patch+json",
            json!([{"op": "replace", "path": "/spec/replicas", "value": 0}]),
            0,
        ),
    ] {
        let (code, v) = api.call_ct(Method::PATCH, &path, Some(&body), ct).await;
        assert_eq!(code, StatusCode::OK, "{ct}: {v}");
        assert_eq!(v["spec"]["replicas"].as_i64().unwrap_or(0), want, "{ct}");
        let (_, parent) = api.get(&format!("{RS_PATH}/sc")).await;
        assert_eq!(parent["spec"]["replicas"], want, "{ct}");
    }
    let (code, v) = api
        .call_ct(
            Method::PATCH,
            &path,
            Some(&json!({"spec": {"replicas": -1}})),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
        "{v}"
    );
    // Pods have no /scale.
    let (code, _) = api.get(&format!("{PODS}/x/scale")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_scales_replica_sets_and_replication_controllers() {
    let (c, api) = start().await;
    let rs = api.create(RS_PATH, &replica_set("kweb", 1, "kweb")).await;
    wait_owned(&api, "app=kweb", &rs, 1).await;
    let out = c.real_kubectl(&["scale", "--replicas=3", "rs/kweb"]).await;
    assert_eq!(out.ok().trim(), "replicaset.apps/kweb scaled");
    wait_owned(&api, "app=kweb", &rs, 3).await;

    // With a precondition kubectl reads the Scale and PUTs it back.
    let out = c
        .real_kubectl(&["scale", "--current-replicas=2", "--replicas=1", "rs/kweb"])
        .await;
    assert_ne!(out.code, 0, "a wrong current count must fail: {out:?}");
    assert!(
        out.err.contains("Expected replicas to be 2, was 3"),
        "{out:?}"
    );
    let out = c
        .real_kubectl(&["scale", "--current-replicas=3", "--replicas=1", "rs/kweb"])
        .await;
    assert_eq!(out.ok().trim(), "replicaset.apps/kweb scaled");
    wait_owned(&api, "app=kweb", &rs, 1).await;

    let rc = api
        .create(
            RC_PATH,
            &json!({"apiVersion": "v1", "kind": "ReplicationController",
                "metadata": {"name": "krc"},
                "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "krc"}},
                    "spec": {"containers": [{"name": "c", "image": BUSYBOX}]}}}}),
        )
        .await;
    wait_owned(&api, "app=krc", &rc, 1).await;
    let out = c.real_kubectl(&["scale", "--replicas=2", "rc/krc"]).await;
    assert_eq!(out.ok().trim(), "replicationcontroller/krc scaled");
    wait_owned(&api, "app=krc", &rc, 2).await;
    let out = c
        .real_kubectl(&["scale", "--current-replicas=2", "--replicas=0", "rc", "krc"])
        .await;
    assert_eq!(out.ok().trim(), "replicationcontroller/krc scaled");
    wait_owned(&api, "app=krc", &rc, 0).await;
    wait_status(&api, &format!("{RC_PATH}/krc"), |s| s["replicas"] == 0).await;

    // Protobuf, as client-go asks for it: the Scale has a protobuf form.
    let out = c
        .real_kubectl(&[
            "get",
            "--raw",
            "/apis/apps/v1/namespaces/default/replicasets/kweb/scale",
        ])
        .await;
    let scale: Value = serde_json::from_str(out.ok()).unwrap();
    assert_eq!(scale["spec"]["replicas"], 1);
    let resp = reqwest::Client::new()
        .get(format!("{}{RS_PATH}/kweb/scale", c.srv.url))
        .header(
            "accept",
            "application/vnd.kubernetes.protobuf,application/json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.kubernetes.protobuf"
    );
    let body = resp.bytes().await.unwrap();
    let decoded = minik8s_apiserver::protobuf::decode(&body).unwrap();
    assert_eq!(decoded["kind"], "Scale");
    assert_eq!(decoded["spec"]["replicas"], 1);
    assert_eq!(decoded["status"]["selector"], "app=kweb");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_kubectl_scales_if_it_has_scale() {
    let (c, api) = start().await;
    let help = kubectl_raw(&["scale", "--help"], "").await;
    if help.code != 0 {
        eprintln!("our kubectl has no `scale` yet: skipped");
        return;
    }
    let rs = api.create(RS_PATH, &replica_set("ours", 1, "ours")).await;
    wait_owned(&api, "app=ours", &rs, 1).await;
    let out = c.kubectl(&["scale", "--replicas=2", "rs/ours"]).await;
    assert_eq!(out.ok().trim(), "replicaset.apps/ours scaled");
    wait_owned(&api, "app=ours", &rs, 2).await;
    let out = c
        .kubectl(&["scale", "--current-replicas=2", "--replicas=1", "rs/ours"])
        .await;
    assert_eq!(out.ok().trim(), "replicaset.apps/ours scaled");
    wait_owned(&api, "app=ours", &rs, 1).await;
}

/// The redis example of the seed: a master pod made by hand, then a replication
/// controller whose selector comes from its template's labels. The controller adopts the
/// master (it matches) and makes one more; when the master is deleted, it is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_replication_controller_from_the_seed() {
    let (c, api) = start().await;
    let master = c.write(
        "redis-master.yaml",
        &format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: redis-master
  labels:
    name: redis
    redis-sentinel: \"true\"
    role: master
spec:
  containers:
  - name: master
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    ports:
    - containerPort: 6379
"
        ),
    );
    let controller = c.write(
        "redis-controller.yaml",
        &format!(
            "apiVersion: v1
kind: ReplicationController
metadata:
  name: redis
spec:
  replicas: 2
  template:
    metadata:
      labels:
        name: redis
    spec:
      containers:
      - name: redis
        image: {BUSYBOX}
        imagePullPolicy: IfNotPresent
        ports:
        - containerPort: 6379
"
        ),
    );
    assert_eq!(
        c.real_kubectl(&["create", "-f", &master]).await.ok().trim(),
        "pod/redis-master created"
    );
    assert_eq!(
        c.real_kubectl(&["create", "-f", &controller])
            .await
            .ok()
            .trim(),
        "replicationcontroller/redis created"
    );
    let (_, rc) = api.get(&format!("{RC_PATH}/redis")).await;
    assert_eq!(rc["spec"]["selector"], json!({"name": "redis"}));
    let pods = wait_owned(&api, "name=redis", &rc, 2).await;
    assert!(pods.iter().any(|p| name(p) == "redis-master"), "adopted");
    wait_status(&api, &format!("{RC_PATH}/redis"), |s| {
        s["replicas"] == 2 && s["fullyLabeledReplicas"] == 2
    })
    .await;
    let out = c.real_kubectl(&["get", "rc", "redis"]).await;
    let line = out.ok().lines().nth(1).unwrap_or_default().to_string();
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cols[..4], ["redis", "2", "2", "0"], "{line}");

    c.real_kubectl(&["delete", "pod", "redis-master"])
        .await
        .ok();
    let pods = wait_owned(&api, "name=redis", &rc, 2).await;
    assert!(pods.iter().all(|p| name(p) != "redis-master"));
}

/// With a kubelet on Docker the pods run and pass readiness: readyReplicas and
/// availableReplicas reach the replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_set_pods_become_ready_and_available_on_a_real_node() {
    let node = TestNode::start().await.unwrap();
    let api = Rest::new(&node.api.url);
    let mut rs = replica_set("live", 2, "live");
    rs["metadata"]["namespace"] = json!("default");
    rs["spec"]["minReadySeconds"] = json!(1);
    rs["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = json!({
        "exec": {"command": ["true"]}, "periodSeconds": 1});
    let rs = api.create(RS_PATH, &rs).await;
    let obj = wait_for(
        "2 ready and available replicas",
        Duration::from_secs(90),
        || async {
            let (_, obj) = api.get(&format!("{RS_PATH}/live")).await;
            (obj["status"]["readyReplicas"] == 2 && obj["status"]["availableReplicas"] == 2)
                .then_some(obj)
        },
    )
    .await
    .unwrap();
    assert_eq!(obj["status"]["replicas"], 2);
    let pods = wait_owned(&api, "app=live", &rs, 2).await;
    for p in &pods {
        assert_eq!(p["status"]["phase"], "Running", "{p}");
        assert!(!p["spec"]["nodeName"].as_str().unwrap_or("").is_empty());
    }
    let (code, _) = api.delete(&format!("{RS_PATH}/live")).await;
    assert_eq!(code, StatusCode::OK);
}
