//! One slow watcher is cut off; it does not hold back the others or grow memory.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use minik8s_api::resource::PODS;
use minik8s_tests::apiserver::{Backend, TestApiServer};
use minik8s_tests::wait_for;
use serde_json::json;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_is_closed_and_others_keep_up() {
    let srv = TestApiServer::start(Backend::Embedded).await.unwrap();
    let addr = srv.server().addr();
    let cache = srv.server().registry().cache(&PODS).clone();

    // A watcher that never reads what it is sent.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(
        format!("GET /api/v1/namespaces/default/pods?watch=true HTTP/1.1\r\nHost: {addr}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();

    // A watcher that reads everything.
    let http = reqwest::Client::new();
    let resp = http
        .get(format!(
            "{}/api/v1/namespaces/default/pods?watch=true",
            srv.url
        ))
        .send()
        .await
        .unwrap();
    wait_for(
        "both watchers registered",
        Duration::from_secs(10),
        || async { (cache.watcher_count() == 2).then_some(()) },
    )
    .await
    .unwrap();

    const PODS_N: usize = 2500;
    let fast = tokio::spawn(async move {
        let mut stream = resp.bytes_stream();
        let mut lines = 0;
        while lines < PODS_N {
            let chunk = tokio::time::timeout(Duration::from_secs(60), stream.next())
                .await
                .expect("fast watcher kept up")
                .expect("stream open")
                .unwrap();
            lines += chunk.iter().filter(|b| **b == b'\n').count();
        }
        lines
    });

    // Big objects fill the slow watcher's socket and queue quickly.
    let padding = "x".repeat(16 * 1024);
    let url = Arc::new(format!("{}/api/v1/namespaces/default/pods", srv.url));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (http, url, padding) = (http.clone(), url.clone(), padding.clone());
        tasks.push(tokio::spawn(async move {
            for i in (w..PODS_N).step_by(8) {
                let pod = json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("p{i}"), "annotations": {"pad": padding}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
                let r = http.post(url.as_str()).json(&pod).send().await.unwrap();
                assert_eq!(r.status(), 201);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(fast.await.unwrap(), PODS_N);
    wait_for(
        "the slow watcher to be dropped",
        Duration::from_secs(30),
        || async { (cache.watcher_count() <= 1).then_some(()) },
    )
    .await
    .unwrap();
    drop(slow);
}
