//! Our own client (pkg/client) against the real API server, on both stores: what the
//! kubelet and kubectl rely on.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use minik8s_client::{
    Api, Client, Config, DeleteParams, Deleted, ListParams, Patch, WatchEvent, WatcherEvent,
    watcher,
};
use minik8s_tests::apiserver::{Backend, TestApiServer};
use serde_json::json;

const T: Duration = Duration::from_secs(20);

fn pod(name: &str, node: Option<&str>) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "client"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap()
}

async fn round_trip(backend: Backend) {
    let srv = TestApiServer::start(backend).await.unwrap();
    let client = Client::new(Config::new(srv.url.parse().unwrap())).unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    let created = pods.create(&pod("a", Some("node-1"))).await.unwrap();
    assert!(created.metadata.uid.is_some());
    let err = pods.create(&pod("a", None)).await.unwrap_err();
    assert!(err.is_already_exists(), "{err}");
    let err = pods.get("missing").await.unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(
        err.to_string(),
        "Error from server (NotFound): pods \"missing\" not found"
    );
    assert!(pods.get_opt("missing").await.unwrap().is_none());

    // Status through the subresource, as the kubelet reports it.
    let patched = pods
        .patch_status(
            "a",
            &Patch::Strategic(json!({"status": {"phase": "Running", "podIP": "10.244.0.5"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.status.unwrap().pod_ip.as_deref(),
        Some("10.244.0.5")
    );

    // A stale replace is a conflict the caller can recognise.
    let mut stale = created.clone();
    stale.metadata.labels = Some([("x".to_string(), "1".to_string())].into());
    let err = pods.replace("a", &stale).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");

    let on_node = pods
        .list(&ListParams::default().fields("spec.nodeName=node-1"))
        .await
        .unwrap();
    assert_eq!(on_node.items.len(), 1);

    // The watcher: the initial set, then changes.
    let mut events = Box::pin(watcher(
        pods.clone(),
        ListParams::default().labels("app=client"),
    ));
    match tokio::time::timeout(T, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatcherEvent::Restarted(all) => assert_eq!(all.len(), 1),
        other => panic!("expected the initial list, got {other:?}"),
    }
    pods.create(&pod("b", None)).await.unwrap();
    match tokio::time::timeout(T, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatcherEvent::Applied(p) => assert_eq!(p.metadata.name.as_deref(), Some("b")),
        other => panic!("expected b applied, got {other:?}"),
    }

    // Deleting a pod bound to a node is graceful; grace 0 finishes it.
    match pods.delete("a", &DeleteParams::default()).await.unwrap() {
        Deleted::Object(p) => assert!(p.metadata.deletion_timestamp.is_some()),
        Deleted::Status(s) => panic!("expected the pod back, got {s:?}"),
    }
    pods.delete("a", &DeleteParams::immediate()).await.unwrap();
    loop {
        match tokio::time::timeout(T, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatcherEvent::Deleted(p) => {
                assert_eq!(p.metadata.name.as_deref(), Some("a"));
                break;
            }
            WatcherEvent::Applied(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }

    // A raw watch from a version sees exactly what followed it.
    let rv = pods.list(&ListParams::default()).await.unwrap();
    let rv = rv.resource_version().unwrap().to_string();
    let mut stream = pods.watch(&ListParams::default(), &rv).await.unwrap();
    pods.patch(
        "b",
        &Patch::Merge(json!({"metadata": {"labels": {"v": "2"}}})),
    )
    .await
    .unwrap();
    match tokio::time::timeout(T, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Modified(p) => assert_eq!(p.metadata.labels.unwrap()["v"], "2"),
        other => panic!("unexpected {other:?}"),
    }

    let namespaces: Api<Namespace> = Api::all(client);
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(names, vec!["default", "kube-system"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_on_embedded_store() {
    round_trip(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_on_etcd() {
    round_trip(Backend::Etcd).await;
}
