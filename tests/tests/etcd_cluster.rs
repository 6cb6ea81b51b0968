//! The API server on a three-member etcd cluster keeps serving when a member dies.

use std::time::Duration;

use minik8s_apiserver::{Server, ServerConfig, StoreConfig};
use minik8s_tests::etcd::EtcdCluster;
use minik8s_tests::wait_for;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_survives_the_loss_of_one_member() {
    let mut cluster = tokio::task::block_in_place(|| EtcdCluster::start(3)).unwrap();
    let url = format!("etcd://{}", cluster.endpoints().join(","));
    let store = StoreConfig::parse_etcd(&url).unwrap();
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), store);
    config.controllers = None;
    let server = Server::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let pods = format!("{}/api/v1/namespaces/default/pods", server.url());
    let create = |name: String| {
        let (http, pods) = (http.clone(), pods.clone());
        async move {
            let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
            http.post(&pods)
                .json(&pod)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .ok()
                .map(|r| r.status().as_u16())
        }
    };
    for i in 0..5 {
        assert_eq!(create(format!("before{i}")).await, Some(201));
    }
    tokio::task::block_in_place(|| cluster.kill(0));
    // Requests in flight to the dead member may fail; the client moves to the others.
    for i in 0..5 {
        wait_for(
            "a write after losing a member",
            Duration::from_secs(30),
            || {
                let c = create(format!("after{i}"));
                async move { matches!(c.await, Some(201) | Some(409)).then_some(()) }
            },
        )
        .await
        .unwrap();
    }
    // A read may also land on the dead member first: retry it like the writes.
    let items = wait_for(
        "a list after losing a member",
        Duration::from_secs(30),
        || async {
            let list: serde_json::Value = http.get(&pods).send().await.ok()?.json().await.ok()?;
            list["items"].as_array().map(Vec::len)
        },
    )
    .await
    .unwrap();
    assert_eq!(items, 10);
    server.shutdown().await;
}
