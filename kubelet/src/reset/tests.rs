use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;
use crate::labels::{ContainerKey, Role};
use crate::runtime::{ContainerConfig, FakeRuntime, NetworkConfig, NetworkMode, RuntimeCall};

/// A host whose iptables and routes are a fixed listing; records what is run.
struct FakeHost {
    filter: String,
    nat: String,
    routes: String,
    calls: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Host for FakeHost {
    async fn run(&self, program: &str, args: &[String]) -> Result<String, String> {
        let line = format!("{program} {}", args.join(" "));
        if line.ends_with("-t filter -S") {
            return Ok(self.filter.clone());
        }
        if line.ends_with("-t nat -S") {
            return Ok(self.nat.clone());
        }
        if line.starts_with("ip -4 -o route show") {
            return Ok(self.routes.clone());
        }
        self.calls.lock().unwrap().push(line);
        Ok(String::new())
    }
}

const FILTER: &str = "-P INPUT ACCEPT
-P FORWARD DROP
-P OUTPUT ACCEPT
-N DOCKER
-N DOCKER-USER
-N MINIK8S-FORWARD
-A FORWARD -j DOCKER-USER
-A FORWARD -j MINIK8S-FORWARD
-A DOCKER-USER -j MINIK8S-FORWARD
-A DOCKER-USER -j RETURN
-A MINIK8S-FORWARD -s 10.244.0.0/16 -j ACCEPT
-A MINIK8S-FORWARD -d 10.244.0.0/16 -j ACCEPT
";

const NAT: &str = "-P PREROUTING ACCEPT
-P POSTROUTING ACCEPT
-N DOCKER
-N MINIK8S-POSTROUTING
-A POSTROUTING -j MINIK8S-POSTROUTING
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A MINIK8S-POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -j ACCEPT
";

#[test]
fn chains_and_the_jumps_to_them_are_found_in_a_listing() {
    let (chains, jumps) = our_chains(FILTER);
    assert_eq!(chains, ["MINIK8S-FORWARD"]);
    assert_eq!(
        jumps,
        [
            "-A FORWARD -j MINIK8S-FORWARD",
            "-A DOCKER-USER -j MINIK8S-FORWARD"
        ]
    );
    let (chains, jumps) = our_chains(NAT);
    assert_eq!(chains, ["MINIK8S-POSTROUTING"]);
    assert_eq!(jumps, ["-A POSTROUTING -j MINIK8S-POSTROUTING"]);
    assert_eq!(
        our_chains("-P FORWARD ACCEPT\n-N DOCKER\n-A FORWARD -j DOCKER\n"),
        (vec![], vec![])
    );
}

#[test]
fn quoted_comments_are_one_word() {
    assert_eq!(
        rule_words(
            r#"-A PREROUTING -m comment --comment "minik8s proxy of node n1" -j MINIK8S-SERVICES-ABCDE"#
        ),
        [
            "-A",
            "PREROUTING",
            "-m",
            "comment",
            "--comment",
            "minik8s proxy of node n1",
            "-j",
            "MINIK8S-SERVICES-ABCDE"
        ]
    );
    assert_eq!(
        rule_words(r#"-A X --comment "" -j Y"#),
        ["-A", "X", "--comment", "", "-j", "Y"]
    );
    assert_eq!(
        rule_words(r#"--comment "a \"b\"""#),
        ["--comment", r#"a "b""#]
    );
}

#[tokio::test]
async fn the_proxy_chains_of_every_node_and_their_jumps_go() {
    let host = FakeHost {
        filter: String::new(),
        nat: r#"-P PREROUTING ACCEPT
-N MINIK8S-SERVICES-ABCDE
-N MINIK8S-SVC-ABCDE-0123456789
-N MINIK8S-SEP-ABCDE-0123456789
-N MINIK8S-MASQUERADE-FGHIJ
-A PREROUTING -m comment --comment "minik8s proxy of node n1" -j MINIK8S-SERVICES-ABCDE
-A OUTPUT -m comment --comment "minik8s proxy of node n1" -j MINIK8S-SERVICES-ABCDE
-A POSTROUTING -m comment --comment "minik8s proxy of node n2" -j MINIK8S-MASQUERADE-FGHIJ
-A MINIK8S-SERVICES-ABCDE -d 10.96.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -m tcp --dport 443 -j MINIK8S-SVC-ABCDE-0123456789
-A MINIK8S-SVC-ABCDE-0123456789 -m comment --comment "default/kubernetes:https" -j MINIK8S-SEP-ABCDE-0123456789
"#
        .into(),
        routes: String::new(),
        calls: Mutex::default(),
    };
    let mut report = Report::default();
    reset_host(&host, &mut report).await;
    assert_eq!(report.failures, Vec::<String>::new());
    assert_eq!(
        report.jumps,
        [
            "nat PREROUTING -> MINIK8S-SERVICES-ABCDE",
            "nat OUTPUT -> MINIK8S-SERVICES-ABCDE",
            "nat POSTROUTING -> MINIK8S-MASQUERADE-FGHIJ"
        ]
    );
    assert_eq!(
        report.chains,
        [
            "nat MINIK8S-SERVICES-ABCDE",
            "nat MINIK8S-SVC-ABCDE-0123456789",
            "nat MINIK8S-SEP-ABCDE-0123456789",
            "nat MINIK8S-MASQUERADE-FGHIJ"
        ]
    );
    let calls = host.calls.lock().unwrap().clone();
    assert_eq!(
        calls[0],
        "iptables -w 5 -t nat -D PREROUTING -m comment --comment minik8s proxy of node n1 -j MINIK8S-SERVICES-ABCDE"
    );
    // Every chain flushed before any is deleted: they jump to each other.
    let first_delete = calls.iter().position(|c| c.contains(" -X ")).unwrap();
    assert!(
        calls[..first_delete]
            .iter()
            .filter(|c| c.contains(" -F "))
            .count()
            == 4,
        "{calls:#?}"
    );
}

#[tokio::test]
async fn the_host_loses_routes_jumps_and_chains() {
    let host = FakeHost {
        filter: FILTER.into(),
        nat: NAT.into(),
        routes: "10.244.1.0/24 via 192.168.1.3 dev eth0 \n".into(),
        calls: Mutex::default(),
    };
    let mut report = Report::default();
    reset_host(&host, &mut report).await;
    assert_eq!(report.failures, Vec::<String>::new());
    let calls = host.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        [
            "ip route del 10.244.1.0/24 proto 77",
            "iptables -w 5 -t filter -D FORWARD -j MINIK8S-FORWARD",
            "iptables -w 5 -t filter -D DOCKER-USER -j MINIK8S-FORWARD",
            "iptables -w 5 -t filter -F MINIK8S-FORWARD",
            "iptables -w 5 -t filter -X MINIK8S-FORWARD",
            "iptables -w 5 -t nat -D POSTROUTING -j MINIK8S-POSTROUTING",
            "iptables -w 5 -t nat -F MINIK8S-POSTROUTING",
            "iptables -w 5 -t nat -X MINIK8S-POSTROUTING",
        ]
    );
    assert_eq!(
        report.routes,
        ["10.244.1.0/24 via 192.168.1.3 dev eth0 (proto 77)"]
    );
    assert_eq!(
        report.jumps,
        [
            "filter FORWARD -> MINIK8S-FORWARD",
            "filter DOCKER-USER -> MINIK8S-FORWARD",
            "nat POSTROUTING -> MINIK8S-POSTROUTING"
        ]
    );
    assert_eq!(
        report.chains,
        ["filter MINIK8S-FORWARD", "nat MINIK8S-POSTROUTING"]
    );
}

#[tokio::test]
async fn a_clean_host_and_docker_have_nothing_to_remove() {
    let host = FakeHost {
        filter: "-P FORWARD ACCEPT\n".into(),
        nat: "-P POSTROUTING ACCEPT\n".into(),
        routes: String::new(),
        calls: Mutex::default(),
    };
    let runtime = FakeRuntime::new();
    let mut report = Report::default();
    reset_host(&host, &mut report).await;
    reset_docker(&runtime, &mut report).await;
    assert!(report.is_empty(), "{report:?}");
    assert!(host.calls.lock().unwrap().is_empty());
    assert!(
        report.to_string().starts_with("nothing to remove"),
        "{report}"
    );
}

async fn container(runtime: &FakeRuntime, node: &str, pod: &str, role: Role) -> String {
    let key = ContainerKey {
        namespace: "default".into(),
        pod_name: pod.into(),
        pod_uid: format!("uid-{pod}"),
        container: match role {
            Role::Sandbox => labels::SANDBOX_NAME.into(),
            _ => "app".into(),
        },
        role,
        attempt: 0,
    };
    let network = match role {
        Role::Sandbox => NetworkMode::Network(crate::network_name(node)),
        _ => NetworkMode::Container(format!("pause-of-{pod}")),
    };
    let mut config = ContainerConfig::new(key.docker_name(), "img", network);
    config.labels = key.labels(node);
    config
        .labels
        .insert(labels::POD_GRACE_PERIOD.into(), "1".into());
    runtime.add_image("img");
    let id = runtime.create_container(&config).await.unwrap();
    runtime.start_container(&id).await.unwrap();
    id
}

#[tokio::test]
async fn every_minik8s_container_and_network_goes_and_nothing_else() {
    let runtime = FakeRuntime::new();
    for (name, node, subnet) in [
        ("minik8s-a", Some("a"), "10.244.0.0/24"),
        ("minik8s-b", Some("b"), "10.245.0.0/24"),
        ("office", None, "192.168.50.0/24"),
    ] {
        let subnet = subnet.parse().unwrap();
        runtime
            .ensure_network(&NetworkConfig {
                name: name.into(),
                subnet,
                gateway: crate::node::gateway(&subnet),
                labels: node
                    .map(|n| BTreeMap::from([(labels::NODE.to_string(), n.to_string())]))
                    .unwrap_or_default(),
            })
            .await
            .unwrap();
    }
    let pause = container(&runtime, "a", "web", Role::Sandbox).await;
    let app = container(&runtime, "a", "web", Role::App).await;
    container(&runtime, "b", "db", Role::Sandbox).await;
    let mut other = ContainerConfig::new("postgres", "img", NetworkMode::Host);
    other.labels.insert("app".into(), "pg".into());
    let other = runtime.create_container(&other).await.unwrap();
    runtime.clear_calls();

    let mut report = Report::default();
    reset_docker(&runtime, &mut report).await;
    assert_eq!(report.failures, Vec::<String>::new());
    assert_eq!(report.containers.len(), 3, "{report:?}");
    assert_eq!(
        report.networks,
        [
            "minik8s-a (10.244.0.0/24, node a)",
            "minik8s-b (10.245.0.0/24, node b)"
        ]
    );
    let left: Vec<String> = runtime.containers().into_iter().map(|c| c.id).collect();
    assert_eq!(left, [other]);
    assert!(runtime.network("office").is_some());
    // The app container is stopped, gently, before its pause container.
    let calls = runtime.calls();
    let at = |call: &RuntimeCall| calls.iter().position(|c| c == call).unwrap();
    assert!(
        at(&RuntimeCall::Stop(app.clone(), Duration::from_secs(1)))
            < at(&RuntimeCall::Stop(pause.clone(), Duration::from_secs(1)))
    );

    let mut again = Report::default();
    reset_docker(&runtime, &mut again).await;
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn mounts_inside_the_data_dir_go_deepest_first() {
    let mounts = "tmpfs /var/lib/mk/pods/u1/secrets/s tmpfs rw 0 0\n\
                  /dev/sda1 / ext4 rw 0 0\n\
                  tmpfs /var/lib/mk/pods/u\\0402/secrets/x\\040y tmpfs rw 0 0\n\
                  tmpfs /var/lib/mk tmpfs rw 0 0\n\
                  tmpfs /var/lib/mkother/a tmpfs rw 0 0\n";
    let got = super::mounts_under(mounts, std::path::Path::new("/var/lib/mk"));
    assert_eq!(
        got,
        vec![
            std::path::PathBuf::from("/var/lib/mk/pods/u1/secrets/s"),
            std::path::PathBuf::from("/var/lib/mk/pods/u 2/secrets/x y"),
        ]
    );
}
