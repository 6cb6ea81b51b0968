use std::sync::Mutex;

use serde_json::json;

use super::*;

fn node(name: &str, cidr: Option<&str>, ip: &str) -> (String, Node) {
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr},
        "status": {"addresses": [
            {"type": "Hostname", "address": name},
            {"type": "InternalIP", "address": ip}]}
    }))
    .unwrap();
    (name.to_string(), node)
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

#[test]
fn other_nodes_are_routed_to_their_internal_ip() {
    let nodes = BTreeMap::from([
        node("me", Some("10.244.0.0/24"), "192.168.1.1"),
        node("b", Some("10.244.1.0/24"), "192.168.1.2"),
        // Same machine: its bridge is here already.
        node("c", Some("10.244.2.0/24"), "192.168.1.1"),
        node("no-cidr", None, "192.168.1.4"),
        node("elsewhere", Some("10.9.0.0/24"), "192.168.1.5"),
    ]);
    let routes = desired_routes(
        "me",
        Some("192.168.1.1".parse().unwrap()),
        net("10.244.0.0/24"),
        net("10.244.0.0/16"),
        &nodes,
    );
    assert_eq!(
        routes,
        BTreeMap::from([(net("10.244.1.0/24"), "192.168.1.2".parse().unwrap())])
    );
}

#[test]
fn routes_are_parsed_and_changed_only_where_they_differ() {
    let current = parse_routes(
        "10.244.0.0/24 dev br-1 proto kernel scope link src 10.244.0.1 linkdown \n\
         10.244.1.0/24 via 192.168.1.2 dev eth0 proto 77 \n\
         10.244.3.0/24 via 192.168.1.3 dev eth0 proto 77 \n\
         10.244.4.0/24 via 192.168.1.9 dev eth0 proto 77 \n",
    );
    assert_eq!(current.len(), 4);
    assert_eq!(current[1].via, Some("192.168.1.2".parse().unwrap()));
    assert!(current[1].ours() && !current[0].ours());
    let desired = BTreeMap::from([
        (net("10.244.0.0/24"), "192.168.1.7".parse().unwrap()),
        (net("10.244.1.0/24"), "192.168.1.2".parse().unwrap()),
        (net("10.244.4.0/24"), "192.168.1.4".parse().unwrap()),
        (net("10.244.5.0/24"), "192.168.1.5".parse().unwrap()),
    ]);
    let (replace, delete) = route_changes(&desired, &current);
    // A local bridge is never replaced; a moved node is; a new node is added.
    assert_eq!(
        replace,
        vec![
            (net("10.244.4.0/24"), "192.168.1.4".parse().unwrap()),
            (net("10.244.5.0/24"), "192.168.1.5".parse().unwrap()),
        ]
    );
    assert_eq!(delete.len(), 1);
    assert_eq!(delete[0].dst, net("10.244.3.0/24"));
}

#[test]
fn the_default_cluster_cidr_is_the_pod_cidrs_16() {
    assert_eq!(
        default_cluster_cidr(net("10.244.7.0/24")),
        net("10.244.0.0/16")
    );
    assert_eq!(default_cluster_cidr(net("10.0.0.0/8")), net("10.0.0.0/8"));
}

/// Answers `iptables -S` with a fixed listing and records every other command.
struct FakeHost {
    filter: String,
    nat: String,
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
        self.calls.lock().unwrap().push(line);
        Ok(String::new())
    }
}

fn gateway(host: Arc<FakeHost>) -> HostGateway {
    HostGateway::new(host, "me", None, net("10.244.0.0/24"), net("10.244.0.0/16"))
}

#[tokio::test]
async fn rules_are_added_once_and_the_jumps_kept_first() {
    // A fresh host with Docker's chains: everything is added, jumping from DOCKER-USER.
    let host = Arc::new(FakeHost {
        filter: "-P FORWARD DROP\n-N DOCKER-USER\n-A FORWARD -j DOCKER-USER\n\
                 -A DOCKER-USER -j RETURN\n"
            .into(),
        nat: "-P POSTROUTING ACCEPT\n-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\n"
            .into(),
        calls: Mutex::new(Vec::new()),
    });
    gateway(host.clone()).ensure_rules().await.unwrap();
    assert_eq!(
        *host.calls.lock().unwrap(),
        vec![
            "iptables -w 5 -t filter -N MINIK8S-FORWARD",
            "iptables -w 5 -t filter -A MINIK8S-FORWARD -s 10.244.0.0/16 -j ACCEPT",
            "iptables -w 5 -t filter -A MINIK8S-FORWARD -d 10.244.0.0/16 -j ACCEPT",
            "iptables -w 5 -t filter -I DOCKER-USER 1 -j MINIK8S-FORWARD",
            "iptables -w 5 -t nat -N MINIK8S-POSTROUTING",
            "iptables -w 5 -t nat -A MINIK8S-POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -m mark ! --mark 0x4000/0x4000 -j ACCEPT",
            "iptables -w 5 -t nat -I POSTROUTING 1 -j MINIK8S-POSTROUTING",
        ]
    );

    // All in place, but Docker put its masquerading first again: only the jump moves.
    let host = Arc::new(FakeHost {
        filter: "-P FORWARD DROP\n-N MINIK8S-FORWARD\n-A FORWARD -j MINIK8S-FORWARD\n\
                 -A MINIK8S-FORWARD -s 10.244.0.0/16 -j ACCEPT\n\
                 -A MINIK8S-FORWARD -d 10.244.0.0/16 -j ACCEPT\n"
            .into(),
        nat: "-N MINIK8S-POSTROUTING\n\
              -A POSTROUTING -s 10.244.0.0/24 ! -o br-1 -j MASQUERADE\n\
              -A POSTROUTING -j MINIK8S-POSTROUTING\n\
              -A MINIK8S-POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -m mark ! --mark 0x4000/0x4000 -j ACCEPT\n"
            .into(),
        calls: Mutex::new(Vec::new()),
    });
    gateway(host.clone()).ensure_rules().await.unwrap();
    assert_eq!(
        *host.calls.lock().unwrap(),
        vec![
            "iptables -w 5 -t nat -D POSTROUTING -j MINIK8S-POSTROUTING",
            "iptables -w 5 -t nat -I POSTROUTING 1 -j MINIK8S-POSTROUTING",
        ]
    );

    // An earlier kubelet's exemption, which would keep a hairpin from being masqueraded,
    // gives way to the one that lets marked traffic through.
    let host = Arc::new(FakeHost {
        filter: "-P FORWARD DROP\n-N MINIK8S-FORWARD\n-A FORWARD -j MINIK8S-FORWARD\n\
                 -A MINIK8S-FORWARD -s 10.244.0.0/16 -j ACCEPT\n\
                 -A MINIK8S-FORWARD -d 10.244.0.0/16 -j ACCEPT\n"
            .into(),
        nat: "-N MINIK8S-POSTROUTING\n\
              -A POSTROUTING -j MINIK8S-POSTROUTING\n\
              -A MINIK8S-POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -j ACCEPT\n"
            .into(),
        calls: Mutex::new(Vec::new()),
    });
    gateway(host.clone()).ensure_rules().await.unwrap();
    assert_eq!(
        *host.calls.lock().unwrap(),
        vec![
            "iptables -w 5 -t nat -A MINIK8S-POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -m mark ! --mark 0x4000/0x4000 -j ACCEPT",
            "iptables -w 5 -t nat -D MINIK8S-POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -j ACCEPT",
        ]
    );
}
