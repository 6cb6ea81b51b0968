//! Several API servers on one etcd: only the holder of the controllers' lease runs the
//! scheduler and the node controller; a server that stops hands over at once, and one that
//! dies (`kill -9`) is replaced after the lease runs out — never while it still renews.
//!
//! That the controllers run is seen from outside: a new Node gets a `spec.podCIDR` only
//! from a running node controller.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use minik8s_api::k8s_openapi::api::core::v1::Node;
use minik8s_apiserver::controllers::leader::{LEASE_KEY, LeaseConfig};
use minik8s_client::{Api, Client, Config};
use minik8s_storage::Store;
use minik8s_storage::etcd::EtcdStore;
use minik8s_tests::apiserver::{Backend, TestApiServer};
use minik8s_tests::etcd::EtcdProcess;
use minik8s_tests::kubelet::cmd_binary;
use minik8s_tests::wait_for;
use serde_json::{Value, json};

const LEASE: LeaseConfig = LeaseConfig {
    duration: Duration::from_secs(3),
    renew_deadline: Duration::from_secs(2),
    retry: Duration::from_millis(300),
};

async fn server(etcd: &Arc<EtcdProcess>) -> TestApiServer {
    TestApiServer::start_with(Backend::Etcd, Some(etcd.clone()), |c| {
        if let Some(controllers) = &mut c.controllers {
            controllers.lease = LEASE;
        }
    })
    .await
    .unwrap()
}

fn leads(api: &TestApiServer) -> bool {
    api.server().leads_controllers()
}

/// Creates a node and waits until some controller gives it a pod CIDR.
async fn node_gets_a_pod_cidr(url: &str, name: &str) -> anyhow::Result<String> {
    let nodes: Api<Node> = Api::all(Client::new(Config::new(url.parse()?))?);
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    nodes.create(&node).await?;
    wait_for(
        &format!("node {name} to get a pod CIDR"),
        Duration::from_secs(15),
        || async { nodes.get(name).await.ok()?.spec?.pod_cidr },
    )
    .await
}

async fn lease_holder(store: &EtcdStore) -> Option<String> {
    let kv = store.get(LEASE_KEY).await.ok()??;
    let record: Value = serde_json::from_slice(&kv.value).ok()?;
    record["holderIdentity"].as_str().map(String::from)
}

#[tokio::test]
async fn one_server_leads_and_a_stopping_leader_hands_over_at_once() {
    let etcd = Arc::new(EtcdProcess::start().unwrap());
    let mut servers = vec![server(&etcd).await, server(&etcd).await];
    wait_for("one leader", Duration::from_secs(10), || async {
        servers.iter().any(leads).then_some(())
    })
    .await
    .unwrap();
    // Over several renewals, never two.
    for _ in 0..20 {
        let leaders = servers.iter().filter(|s| leads(s)).count();
        assert_eq!(leaders, 1, "exactly one API server leads");
        tokio::time::sleep(LEASE.retry / 2).await;
    }
    let leader = servers.iter().position(leads).unwrap();
    node_gets_a_pod_cidr(&servers[1 - leader].url, "n1")
        .await
        .unwrap();

    let mut stopped = servers.remove(leader);
    stopped.server.take().unwrap().shutdown().await;
    let survivor = &servers[0];
    // Released, not expired: the survivor's next look takes it.
    wait_for(
        "the other server to lead",
        LEASE.duration - Duration::from_millis(500),
        || async { leads(survivor).then_some(()) },
    )
    .await
    .unwrap();
    node_gets_a_pod_cidr(&survivor.url, "n2").await.unwrap();
}

/// An API server binary on the etcd, with the test's lease settings.
fn apiserver_process(etcd: &EtcdProcess, port: u16) -> Child {
    let secs = |d: Duration| format!("{}ms", d.as_millis());
    Command::new(cmd_binary("apiserver").unwrap())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--datastore-endpoint")
        .arg(format!("etcd://{}", etcd.endpoint()))
        .args(["--leader-elect-lease-duration", &secs(LEASE.duration)])
        .args(["--leader-elect-renew-deadline", &secs(LEASE.renew_deadline)])
        .args(["--leader-elect-retry-period", &secs(LEASE.retry)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_killed_leader_is_replaced_only_after_its_lease_runs_out() {
    let etcd = Arc::new(EtcdProcess::start().unwrap());
    let store = EtcdStore::connect(&[etcd.endpoint()]).await.unwrap();
    let port = minik8s_tests::bench::free_port().unwrap();
    let mut first = apiserver_process(&etcd, port);
    let holder = wait_for(
        "the first server to take the lease",
        Duration::from_secs(30),
        || lease_holder(&store),
    )
    .await
    .unwrap();
    assert!(holder.ends_with(&format!("127.0.0.1:{port}")), "{holder}");

    let second = server(&etcd).await;
    // While the first renews, the second waits, for several lease durations.
    let end = tokio::time::Instant::now() + LEASE.duration * 2;
    while tokio::time::Instant::now() < end {
        assert!(!leads(&second), "took the lease of a live holder");
        tokio::time::sleep(LEASE.retry).await;
    }
    let url = format!("http://127.0.0.1:{port}");
    node_gets_a_pod_cidr(&url, "n1").await.unwrap();

    first.kill().unwrap();
    first.wait().unwrap();
    let killed = tokio::time::Instant::now();
    wait_for(
        "the second server to lead",
        Duration::from_secs(15),
        || async { leads(&second).then_some(()) },
    )
    .await
    .unwrap();
    let waited = killed.elapsed();
    assert!(
        waited >= LEASE.duration - LEASE.retry * 2,
        "took over after {waited:?}, before the lease ran out"
    );
    node_gets_a_pod_cidr(&second.url, "n2").await.unwrap();
}
