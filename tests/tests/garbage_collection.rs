//! Cascading deletion and the garbage collector, against a real API server with its
//! controllers and both kubectls: background deletion removes dependents (a chain of
//! them, ConfigMaps and pods alike); foreground keeps the owner, readable and marked, until
//! its blocking dependents are gone; orphan keeps the dependents without the owner; a
//! dependent with a second owner survives; an owner re-created under the same name does
//! not save the old dependents. No kubelet: the pods are on no node, so they go at once.
//!
//! "The collector has run since" is proven with a sentinel: a ConfigMap whose owner never
//! existed, which the collector must remove, so that a dependent still there afterwards
//! is one the collector kept, not one it had not reached yet.

mod kubectl_support;

use std::time::Duration;

use kubectl_support::{Cluster, Output};
use minik8s_client::{Client, Config};
use minik8s_tests::apiserver::{Backend, TestApiServer};
use minik8s_tests::rest::Rest;
use minik8s_tests::wait_for;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);
const CMS: &str = "/api/v1/namespaces/default/configmaps";
const PODS: &str = "/api/v1/namespaces/default/pods";

/// Which kubectl deletes.
#[derive(Clone, Copy, Debug)]
enum Kubectl {
    Real,
    Ours,
}

const BOTH: [Kubectl; 2] = [Kubectl::Real, Kubectl::Ours];

impl Kubectl {
    fn tag(self) -> &'static str {
        match self {
            Kubectl::Real => "real",
            Kubectl::Ours => "ours",
        }
    }

    async fn run(self, c: &Cluster, args: &[&str]) -> Output {
        match self {
            Kubectl::Real => c.real_kubectl(args).await,
            Kubectl::Ours => c.kubectl(args).await,
        }
    }
}

async fn cluster(backend: Backend) -> Cluster {
    let srv = TestApiServer::start_with_controllers(backend)
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

fn rest(c: &Cluster) -> Rest {
    Rest::new(&c.srv.url)
}

/// An owner reference to `owner`, blocking its foreground deletion or not.
fn owner_ref(owner: &Value, block: bool) -> Value {
    let mut r = json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    });
    if block {
        r["blockOwnerDeletion"] = json!(true);
    }
    r
}

fn meta(name: &str, owners: &[Value]) -> Value {
    let mut m = json!({"name": name});
    if !owners.is_empty() {
        m["ownerReferences"] = json!(owners);
    }
    m
}

async fn configmap(rest: &Rest, name: &str, owners: &[Value]) -> Value {
    rest.create(
        CMS,
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, owners),
                "data": {"k": "v"}}),
    )
    .await
}

/// A pod no node will take.
async fn pod(rest: &Rest, name: &str, owners: &[Value]) -> Value {
    rest.create(
        PODS,
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta(name, owners),
                "spec": {"nodeSelector": {"disk": "none"},
                         "containers": [{"name": "c", "image": "minik8s/busybox:latest",
                                         "imagePullPolicy": "Never"}]}}),
    )
    .await
}

async fn get(rest: &Rest, path: &str) -> Option<Value> {
    let (code, v) = rest.get(path).await;
    match code {
        StatusCode::OK => Some(v),
        StatusCode::NOT_FOUND => None,
        other => panic!("GET {path}: {other} {v}"),
    }
}

async fn wait_gone(rest: &Rest, path: &str) {
    wait_for(path, DEADLINE, || async {
        get(rest, path).await.is_none().then_some(())
    })
    .await
    .unwrap();
}

/// Returns once the collector has run a pass that started after this call: it must
/// remove a ConfigMap whose owner never existed.
async fn collector_ran(rest: &Rest, tag: &str) {
    let ghost = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost",
                       "uid": "00000000-0000-0000-0000-000000000000"});
    let name = format!("sentinel-{tag}");
    configmap(rest, &name, &[ghost]).await;
    wait_gone(rest, &format!("{CMS}/{name}")).await;
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["uid"].as_str().unwrap().to_string())
        .collect()
}

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"].as_str().unwrap().to_string()
}

async fn background(c: &Cluster, k: Kubectl, cascade: Option<&str>) {
    let rest = rest(c);
    let t = format!(
        "{}-{}",
        k.tag(),
        cascade.unwrap_or("default").replace('=', "")
    );
    let owner = configmap(&rest, &format!("owner-{t}"), &[]).await;
    let child = configmap(&rest, &format!("child-{t}"), &[owner_ref(&owner, false)]).await;
    configmap(
        &rest,
        &format!("grandchild-{t}"),
        &[owner_ref(&child, true)],
    )
    .await;
    pod(&rest, &format!("pod-{t}"), &[owner_ref(&owner, true)]).await;
    let keeper = configmap(&rest, &format!("keeper-{t}"), &[]).await;
    configmap(&rest, &format!("kept-{t}"), &[owner_ref(&keeper, false)]).await;

    let name = format!("owner-{t}");
    let mut args = vec!["delete", "configmap", name.as_str()];
    args.extend(cascade);
    let out = k.run(c, &args).await;
    assert_eq!(
        out.ok(),
        format!("configmap \"owner-{t}\" deleted\n"),
        "{out:?}"
    );
    assert_eq!(get(&rest, &format!("{CMS}/owner-{t}")).await, None);
    for path in [
        format!("{CMS}/child-{t}"),
        format!("{CMS}/grandchild-{t}"),
        format!("{PODS}/pod-{t}"),
    ] {
        wait_gone(&rest, &path).await;
    }
    collector_ran(&rest, &t).await;
    assert!(get(&rest, &format!("{CMS}/kept-{t}")).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_deletes_dependents_and_their_dependents() {
    let c = cluster(Backend::Embedded).await;
    for k in BOTH {
        background(&c, k, None).await;
        background(&c, k, Some("--cascade=background")).await;
        background(&c, k, Some("--cascade=true")).await;
    }
    background(&c, Kubectl::Ours, Some("--cascade")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_on_etcd() {
    let c = cluster(Backend::Etcd).await;
    background(&c, Kubectl::Real, Some("--cascade=background")).await;
    background(&c, Kubectl::Ours, Some("--cascade=background")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_keeps_the_owner_until_blocking_dependents_are_gone() {
    let c = cluster(Backend::Embedded).await;
    let rest = rest(&c);
    for k in BOTH {
        let t = k.tag();
        let owner = configmap(&rest, &format!("fg-{t}"), &[]).await;
        // A finalizer of its own keeps this dependent, once deleted, from going.
        let held = rest
            .create(
                CMS,
                &json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": format!("held-{t}"),
                                     "finalizers": ["example.com/hold"],
                                     "ownerReferences": [owner_ref(&owner, true)]}}),
            )
            .await;
        pod(&rest, &format!("fg-pod-{t}"), &[owner_ref(&owner, true)]).await;
        configmap(&rest, &format!("loose-{t}"), &[owner_ref(&owner, false)]).await;

        let name = format!("fg-{t}");
        let out = k
            .run(
                &c,
                &[
                    "delete",
                    "configmap",
                    &name,
                    "--cascade=foreground",
                    "--wait=false",
                ],
            )
            .await;
        assert_eq!(out.ok(), format!("configmap \"fg-{t}\" deleted\n"));
        // Every dependent is deleted; the held one is only marked.
        wait_gone(&rest, &format!("{PODS}/fg-pod-{t}")).await;
        wait_gone(&rest, &format!("{CMS}/loose-{t}")).await;
        let held_path = format!("{CMS}/held-{t}");
        wait_for("the held dependent to be marked", DEADLINE, || async {
            get(&rest, &held_path).await?["metadata"]["deletionTimestamp"]
                .as_str()
                .map(|_| ())
        })
        .await
        .unwrap();
        collector_ran(&rest, t).await;
        let owner_path = format!("{CMS}/fg-{t}");
        let marked = get(&rest, &owner_path).await.expect("the owner waits");
        assert!(
            marked["metadata"]["deletionTimestamp"].is_string(),
            "{marked}"
        );
        assert_eq!(
            marked["metadata"]["finalizers"],
            json!(["foregroundDeletion"])
        );
        assert_eq!(uid(&marked), uid(&owner));

        // A second delete of the marked owner is no error, and changes nothing.
        let (code, again) = rest
            .call(
                Method::DELETE,
                &format!("{owner_path}?propagationPolicy=Foreground"),
                None,
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{again}");
        assert_eq!(
            again["metadata"]["finalizers"],
            json!(["foregroundDeletion"])
        );
        assert_eq!(
            again["metadata"]["deletionTimestamp"],
            marked["metadata"]["deletionTimestamp"]
        );

        // Once the held dependent is really gone, so is the owner.
        let (code, v) = rest
            .merge(&held_path, &json!({"metadata": {"finalizers": null}}))
            .await;
        assert_eq!(code, StatusCode::OK, "{v}");
        wait_gone(&rest, &held_path).await;
        wait_gone(&rest, &owner_path).await;
        assert_eq!(get(&rest, &held_path).await, None, "{held}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_keeps_dependents_without_the_owner() {
    let c = cluster(Backend::Embedded).await;
    let rest = rest(&c);
    for (k, flag) in [
        (Kubectl::Real, "--cascade=orphan"),
        (Kubectl::Ours, "--cascade=orphan"),
        (Kubectl::Real, "--cascade=false"),
        (Kubectl::Ours, "--cascade=false"),
    ] {
        let t = format!("{}{}", k.tag(), flag.trim_start_matches("--cascade="));
        let owner = configmap(&rest, &format!("or-{t}"), &[]).await;
        let other = configmap(&rest, &format!("other-{t}"), &[]).await;
        configmap(&rest, &format!("only-{t}"), &[owner_ref(&owner, true)]).await;
        pod(
            &rest,
            &format!("both-{t}"),
            &[owner_ref(&owner, true), owner_ref(&other, false)],
        )
        .await;

        let name = format!("or-{t}");
        let out = k.run(&c, &["delete", "configmap", &name, flag]).await;
        assert_eq!(out.ok(), format!("configmap \"or-{t}\" deleted\n"));
        if flag == "--cascade=false" {
            assert!(
                out.err.contains(
                    "warning: --cascade=false is deprecated (boolean value) and can be replaced with --cascade=orphan."
                ),
                "{out:?}"
            );
        }
        // kubectl waited for the owner to go.
        assert_eq!(get(&rest, &format!("{CMS}/or-{t}")).await, None);
        collector_ran(&rest, &t).await;
        let only = get(&rest, &format!("{CMS}/only-{t}")).await.expect("kept");
        assert!(only["metadata"].get("ownerReferences").is_none(), "{only}");
        let both = get(&rest, &format!("{PODS}/both-{t}")).await.expect("kept");
        assert_eq!(owner_uids(&both), vec![uid(&other)]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_with_another_owner_survives() {
    let c = cluster(Backend::Embedded).await;
    let rest = rest(&c);
    for k in BOTH {
        let t = k.tag();
        let a = configmap(&rest, &format!("a-{t}"), &[]).await;
        let b = configmap(&rest, &format!("b-{t}"), &[]).await;
        let shared = format!("{CMS}/shared-{t}");
        configmap(
            &rest,
            &format!("shared-{t}"),
            &[owner_ref(&a, true), owner_ref(&b, true)],
        )
        .await;
        let name = format!("a-{t}");
        k.run(&c, &["delete", "configmap", &name]).await.ok();
        // The reference to the owner that is gone is dropped; the other keeps it.
        wait_for("the dangling reference to be dropped", DEADLINE, || async {
            let s = get(&rest, &shared).await.expect("the dependent survives");
            (owner_uids(&s) == vec![uid(&b)]).then_some(())
        })
        .await
        .unwrap();
        collector_ran(&rest, t).await;
        assert!(get(&rest, &shared).await.is_some());

        let name = format!("b-{t}");
        k.run(&c, &["delete", "configmap", &name]).await.ok();
        wait_gone(&rest, &shared).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_recreated_under_the_same_name_does_not_save_old_dependents() {
    let c = cluster(Backend::Embedded).await;
    let rest = rest(&c);
    let first = configmap(&rest, "phoenix", &[]).await;
    let (code, v) = rest.delete(&format!("{CMS}/phoenix")).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let second = configmap(&rest, "phoenix", &[]).await;
    assert_ne!(uid(&first), uid(&second));
    configmap(&rest, "old-child", &[owner_ref(&first, true)]).await;
    configmap(&rest, "new-child", &[owner_ref(&second, true)]).await;
    wait_gone(&rest, &format!("{CMS}/old-child")).await;
    collector_ran(&rest, "phoenix").await;
    assert!(get(&rest, &format!("{CMS}/new-child")).await.is_some());
    assert!(get(&rest, &format!("{CMS}/phoenix")).await.is_some());
}

/// What the real kubectl sends, and what the API server makes of DeleteOptions sent
/// other ways: the policy in the query, the deprecated orphanDependents, bad policies,
/// and the kinds that orphan when no policy is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_options_on_the_wire() {
    let c = cluster(Backend::Embedded).await;
    let rest = rest(&c);

    // The real kubectl sends the policy in a DeleteOptions body.
    configmap(&rest, "wire", &[]).await;
    let out = c
        .real_kubectl(&[
            "delete",
            "configmap",
            "wire",
            "--cascade=foreground",
            "-v=8",
        ])
        .await;
    assert_eq!(out.ok(), "configmap \"wire\" deleted\n");
    assert!(
        out.err.contains(r#""propagationPolicy":"Foreground""#),
        "{}",
        out.err
    );

    for (query, want) in [
        (
            "propagationPolicy=Sideways",
            "Unsupported value: \"Sideways\": supported values: \"Foreground\", \"Background\", \"Orphan\"",
        ),
        (
            "propagationPolicy=Orphan&orphanDependents=true",
            "orphanDependents and deletionPropagation cannot be both set",
        ),
    ] {
        configmap(&rest, "bad", &[]).await;
        let (code, v) = rest
            .call(Method::DELETE, &format!("{CMS}/bad?{query}"), None)
            .await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(v["message"].as_str().unwrap().contains(want), "{v}");
        let (code, v) = rest.delete(&format!("{CMS}/bad")).await;
        assert_eq!(code, StatusCode::OK, "{v}");
    }

    // orphanDependents=true in a body orphans.
    let owner = configmap(&rest, "legacy", &[]).await;
    configmap(&rest, "legacy-child", &[owner_ref(&owner, true)]).await;
    let (code, v) = rest
        .call(
            Method::DELETE,
            &format!("{CMS}/legacy"),
            Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "orphanDependents": true})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["metadata"]["finalizers"], json!(["orphan"]), "{v}");
    wait_gone(&rest, &format!("{CMS}/legacy")).await;
    let child = get(&rest, &format!("{CMS}/legacy-child")).await.unwrap();
    assert!(
        child["metadata"].get("ownerReferences").is_none(),
        "{child}"
    );

    // A ReplicationController (core/v1) orphans its dependents unless told otherwise.
    let rcs = "/api/v1/namespaces/default/replicationcontrollers";
    let rc_body = |name: &str| {
        json!({"apiVersion": "v1", "kind": "ReplicationController",
               "metadata": {"name": name},
               "spec": {"replicas": 0, "selector": {"app": name},
                        "template": {"metadata": {"labels": {"app": name}},
                                     "spec": {"containers": [{"name": "c",
                                              "image": "minik8s/busybox:latest"}]}}}})
    };
    let rc = rest.create(rcs, &rc_body("rc-default")).await;
    configmap(&rest, "rc-default-cm", &[owner_ref(&rc, false)]).await;
    let (code, v) = rest.delete(&format!("{rcs}/rc-default")).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    wait_gone(&rest, &format!("{rcs}/rc-default")).await;
    let cm = get(&rest, &format!("{CMS}/rc-default-cm")).await.unwrap();
    assert!(cm["metadata"].get("ownerReferences").is_none(), "{cm}");

    let rc = rest.create(rcs, &rc_body("rc-bg")).await;
    configmap(&rest, "rc-bg-cm", &[owner_ref(&rc, false)]).await;
    let (code, v) = rest
        .call(
            Method::DELETE,
            &format!("{rcs}/rc-bg?propagationPolicy=Background"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    wait_gone(&rest, &format!("{CMS}/rc-bg-cm")).await;

    // Our kubectl refuses a cascade it does not know, as kubectl does.
    let out = c
        .kubectl(&["delete", "configmap", "x", "--cascade=sideways"])
        .await;
    assert_ne!(out.code, 0);
    assert!(
        out.err.contains(
            "invalid cascade value (sideways). Must be \"background\", \"foreground\", or \"orphan\""
        ),
        "{out:?}"
    );
}

/// Owners and dependents of other kinds: a ReplicaSet's pod and secret, and a pod whose
/// TaskSet owner, named under the original group, never existed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_and_dependents_of_other_kinds() {
    let c = cluster(Backend::Embedded).await;
    let rest = rest(&c);
    let rss = "/apis/apps/v1/namespaces/default/replicasets";
    // No replicas, and a selector the dependents do not match: no controller touches them.
    let rs = rest
        .create(
            rss,
            &json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
                    "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "rs"}},
                             "template": {"metadata": {"labels": {"app": "rs"}},
                                          "spec": {"containers": [{"name": "c",
                                                   "image": "minik8s/busybox:latest"}]}}}}),
        )
        .await;
    pod(&rest, "rs-pod", &[owner_ref(&rs, true)]).await;
    let secrets = "/api/v1/namespaces/default/secrets";
    rest.create(
        secrets,
        &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": meta("rs-secret", &[owner_ref(&rs, false)])}),
    )
    .await;
    let ghost = json!({"apiVersion": "octopus.openi.pcl.cn/v1alpha1", "kind": "TaskSet",
                       "name": "gone", "uid": "11111111-1111-1111-1111-111111111111"});
    pod(&rest, "taskset-pod", &[ghost]).await;
    wait_gone(&rest, &format!("{PODS}/taskset-pod")).await;

    collector_ran(&rest, "kinds").await;
    assert!(get(&rest, &format!("{PODS}/rs-pod")).await.is_some());
    let out = c
        .real_kubectl(&["delete", "replicaset", "rs", "--cascade=foreground"])
        .await;
    assert_eq!(out.ok(), "replicaset.apps \"rs\" deleted\n");
    assert_eq!(get(&rest, &format!("{rss}/rs")).await, None);
    assert_eq!(get(&rest, &format!("{PODS}/rs-pod")).await, None);
    wait_gone(&rest, &format!("{secrets}/rs-secret")).await;
}
