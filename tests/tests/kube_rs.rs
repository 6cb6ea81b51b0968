//! kube-rs, a widely used Rust client, works against the API server unchanged.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use minik8s_tests::apiserver::{Backend, TestApiServer};

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "kube-rs"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}
    }))
    .unwrap()
}

async fn create_list_watch_delete(backend: Backend) {
    let srv = TestApiServer::start(backend).await.unwrap();
    let config = kube::Config::new(srv.url.parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");

    let created = pods
        .create(&PostParams::default(), &pod("a"))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    let list = pods
        .list(&ListParams::default().labels("app=kube-rs"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let rv = list.metadata.resource_version.clone().unwrap();

    let mut events = pods
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .unwrap()
        .boxed();
    pods.create(&PostParams::default(), &pod("b"))
        .await
        .unwrap();
    pods.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"labels": {"step": "2"}}})),
    )
    .await
    .unwrap();
    pods.delete("b", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(20), events.try_next())
            .await
            .expect("watch event in time")
            .unwrap()
            .expect("stream open");
        match ev {
            WatchEvent::Added(p) => seen.push(("ADDED", p.metadata.name.unwrap())),
            WatchEvent::Modified(p) => seen.push(("MODIFIED", p.metadata.name.unwrap())),
            WatchEvent::Deleted(p) => seen.push(("DELETED", p.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error: {e:?}"),
        }
    }
    assert_eq!(
        seen,
        vec![
            ("ADDED", "b".to_string()),
            ("MODIFIED", "b".to_string()),
            ("DELETED", "b".to_string())
        ]
    );

    let err = pods.get("b").await.unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 404),
        other => panic!("unexpected {other:?}"),
    }
    pods.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_on_embedded_store() {
    create_list_watch_delete(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_on_etcd() {
    create_list_watch_delete(Backend::Etcd).await;
}
