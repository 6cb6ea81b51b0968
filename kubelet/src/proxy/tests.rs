use serde_json::{Value, json};

use super::rules::*;
use super::*;

const NODE: &str = "node-a";

fn service(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .unwrap()
}

fn web(extra: Value) -> Service {
    let mut spec = json!({"clusterIP": "10.96.0.10", "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    service("web", spec)
}

/// A slice of `service` with port `http` 8080 and endpoints `(ip, node, ready, terminating)`.
fn slice(service: &str, eps: &[(&str, &str, bool, bool)]) -> EndpointSlice {
    let endpoints: Vec<Value> = eps
        .iter()
        .map(|(ip, node, ready, terminating)| {
            json!({"addresses": [ip], "nodeName": node,
                "conditions": {"ready": ready, "serving": ready, "terminating": terminating}})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{service}-abc"), "namespace": "default",
            "labels": {SERVICE_NAME_LABEL: service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }))
    .unwrap()
}

fn ready(ip: &'static str) -> (&'static str, &'static str, bool, bool) {
    (ip, NODE, true, false)
}

fn chains_for(services: &[Service], slices: &[EndpointSlice]) -> Chains {
    render(&Names::new(NODE), &service_ports(services, slices))
}

/// The chains of one kind (`SVC`, `SEP`, …) of the node.
fn of_kind<'a>(chains: &'a Chains, kind: &str) -> Vec<(&'a String, &'a Vec<String>)> {
    let prefix = format!("MINIK8S-{kind}-");
    chains
        .iter()
        .filter(|(n, _)| n.starts_with(&prefix))
        .collect()
}

fn services_rules(chains: &Chains) -> &Vec<String> {
    &chains[&Names::new(NODE).services()]
}

#[test]
fn names_are_short_stable_and_tell_their_node() {
    let a = Names::new(NODE);
    let b = Names::new("node-b");
    assert_ne!(a.tag, b.tag);
    assert_eq!(a, Names::new(NODE));
    let ports = service_ports(&[web(json!({}))], &[slice("web", &[ready("10.1.0.5")])]);
    let chains = render(&a, &ports);
    for name in chains.keys() {
        assert!(name.len() <= 28, "{name} is too long for iptables");
        assert!(a.owns(name), "{name}");
        assert!(!b.owns(name), "{name}");
    }
    for other in [
        "MINIK8S-FORWARD",
        "MINIK8S-POSTROUTING",
        "DOCKER",
        "KUBE-SERVICES",
    ] {
        assert!(!a.owns(other));
    }
    let sep = a.sep(&ports[0], &ports[0].endpoints[0]);
    assert!(sep.starts_with(&format!("MINIK8S-SEP-{}-", a.tag)), "{sep}");
    assert_eq!(sep.len(), 28);
}

#[test]
fn a_service_without_endpoints_gets_no_rules() {
    let chains = chains_for(&[web(json!({}))], &[slice("web", &[])]);
    assert!(of_kind(&chains, "SVC").is_empty());
    assert!(of_kind(&chains, "SEP").is_empty());
    // Only the jump to the node ports is left.
    assert_eq!(services_rules(&chains).len(), 1);
    assert!(services_rules(&chains)[0].contains("--dst-type LOCAL"));
}

#[test]
fn one_endpoint_takes_all_traffic() {
    let chains = chains_for(&[web(json!({}))], &[slice("web", &[ready("10.1.0.5")])]);
    let names = Names::new(NODE);
    let svc = of_kind(&chains, "SVC");
    assert_eq!(svc.len(), 1);
    let (svc_name, svc_rules) = svc[0];
    assert_eq!(
        services_rules(&chains)[0],
        format!(
            "-d 10.96.0.10/32 -p tcp -m comment --comment \"default/web:http cluster IP\" -m tcp --dport 80 -j {svc_name}"
        )
    );
    let sep = of_kind(&chains, "SEP");
    assert_eq!(sep.len(), 1);
    let (sep_name, sep_rules) = sep[0];
    assert_eq!(
        *svc_rules,
        [format!(
            "-m comment --comment \"default/web:http\" -j {sep_name}"
        )]
    );
    assert_eq!(
        *sep_rules,
        [
            format!(
                "-m comment --comment \"default/web:http\" -s 10.1.0.5/32 -j {}",
                names.mark_masq()
            ),
            "-p tcp -m comment --comment \"default/web:http\" -m tcp -j DNAT --to-destination 10.1.0.5:8080".to_string(),
        ]
    );
}

#[test]
fn three_endpoints_each_get_a_third() {
    let chains = chains_for(
        &[web(json!({}))],
        &[slice(
            "web",
            &[ready("10.1.0.7"), ready("10.1.0.5"), ready("10.1.0.6")],
        )],
    );
    let (_, rules) = of_kind(&chains, "SVC")[0];
    assert_eq!(rules.len(), 3);
    assert!(rules[0].contains("-m statistic --mode random --probability 0.3333333333 "));
    assert!(rules[1].contains("-m statistic --mode random --probability 0.5000000000 "));
    assert!(
        !rules[2].contains("statistic"),
        "the last takes what is left"
    );
    assert_eq!(of_kind(&chains, "SEP").len(), 3);
    // In address order, whatever the slice's: a re-list writes the same rules.
    let targets: Vec<String> = of_kind(&chains, "SEP")
        .iter()
        .map(|(_, r)| r[1].rsplit(' ').next().unwrap().to_string())
        .collect();
    let mut sorted = targets.clone();
    sorted.sort();
    assert_eq!(targets.len(), 3);
    assert_eq!(sorted, ["10.1.0.5:8080", "10.1.0.6:8080", "10.1.0.7:8080"]);
}

#[test]
fn not_ready_and_terminating_endpoints_get_no_traffic() {
    let chains = chains_for(
        &[web(json!({}))],
        &[slice(
            "web",
            &[
                ready("10.1.0.5"),
                ("10.1.0.6", NODE, false, false),
                ("10.1.0.7", NODE, false, true),
                ("10.1.0.8", NODE, true, true),
            ],
        )],
    );
    let sep = of_kind(&chains, "SEP");
    assert_eq!(sep.len(), 1);
    assert!(sep[0].1[1].ends_with("10.1.0.5:8080"));
}

#[test]
fn headless_and_external_name_services_are_skipped() {
    let headless = service(
        "db",
        json!({"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"name": "http", "port": 80}]}),
    );
    let external = service(
        "ext",
        json!({"type": "ExternalName", "externalName": "example.com", "ports": [{"name": "http", "port": 80}]}),
    );
    let ports = service_ports(
        &[headless, external],
        &[
            slice("db", &[ready("10.1.0.5")]),
            slice("ext", &[ready("10.1.0.6")]),
        ],
    );
    assert_eq!(ports, []);
}

#[test]
fn node_ports_are_masqueraded_and_balanced() {
    let svc = web(json!({"type": "NodePort", "ports": [
        {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}]}));
    let chains = chains_for(
        &[svc],
        &[slice("web", &[ready("10.1.0.5"), ready("10.1.0.6")])],
    );
    let names = Names::new(NODE);
    let (svc_name, _) = of_kind(&chains, "SVC")[0];
    let np = &chains[&names.node_ports()];
    let dport = "-p tcp -m comment --comment \"default/web:http node port\" -m tcp --dport 30080";
    assert_eq!(
        *np,
        [
            format!("{dport} -j {}", names.mark_masq()),
            format!("{dport} -j {svc_name}"),
        ]
    );
    assert_eq!(
        chains[&names.masquerade()][0],
        "-m mark ! --mark 0x4000/0x4000 -j RETURN"
    );
    // The node port is not served on a ClusterIP service, whatever its ports say.
    let plain = web(json!({"ports": [{"name": "http", "port": 80, "nodePort": 30080}]}));
    let chains = chains_for(&[plain], &[slice("web", &[ready("10.1.0.5")])]);
    assert!(chains[&names.node_ports()].is_empty());
}

#[test]
fn external_traffic_policy_local_keeps_the_source_and_this_nodes_endpoints() {
    let svc = web(
        json!({"type": "NodePort", "externalTrafficPolicy": "Local", "ports": [
        {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}]}),
    );
    let chains = chains_for(
        &[svc],
        &[slice(
            "web",
            &[ready("10.1.0.5"), ("10.1.1.5", "node-b", true, false)],
        )],
    );
    let names = Names::new(NODE);
    let np = &chains[&names.node_ports()];
    assert_eq!(np.len(), 1, "{np:?}");
    let (svl, rules) = of_kind(&chains, "SVL")[0];
    assert!(np[0].ends_with(&format!("-j {svl}")));
    assert_eq!(rules.len(), 1);
    // Cluster-IP traffic still goes to both.
    assert_eq!(of_kind(&chains, "SVC")[0].1.len(), 2);
}

#[test]
fn session_affinity_sends_a_client_back_to_its_endpoint() {
    let svc = web(json!({"sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}));
    let chains = chains_for(
        &[svc],
        &[slice("web", &[ready("10.1.0.5"), ready("10.1.0.6")])],
    );
    let (_, rules) = of_kind(&chains, "SVC")[0];
    assert_eq!(rules.len(), 4);
    let seps: Vec<&String> = of_kind(&chains, "SEP")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for rule in &rules[..2] {
        let sep = rule.rsplit(' ').next().unwrap();
        assert!(seps.iter().any(|s| *s == sep), "{rule}");
        assert!(
            rule.ends_with(&format!(
                "-m recent --rcheck --seconds 60 --reap --name {sep} --mask 255.255.255.255 --rsource -j {sep}"
            )),
            "{rule}"
        );
    }
    for (sep, rules) in of_kind(&chains, "SEP") {
        assert!(
            rules[1].contains(&format!("-m recent --set --name {sep} ")),
            "{rules:?}"
        );
    }
    // Kubernetes' default timeout.
    let chains = chains_for(
        &[web(json!({"sessionAffinity": "ClientIP"}))],
        &[slice("web", &[ready("10.1.0.5")])],
    );
    assert!(of_kind(&chains, "SVC")[0].1[0].contains("--seconds 10800 "));
}

#[test]
fn internal_traffic_policy_local_uses_this_nodes_endpoints_only() {
    let svc = web(json!({"internalTrafficPolicy": "Local"}));
    let eps = [ready("10.1.0.5"), ("10.1.1.5", "node-b", true, false)];
    let chains = chains_for(std::slice::from_ref(&svc), &[slice("web", &eps)]);
    let (_, rules) = of_kind(&chains, "SVC")[0];
    assert_eq!(rules.len(), 1);
    assert_eq!(of_kind(&chains, "SEP").len(), 1);
    // On node-b, the other one.
    let ports = service_ports(&[svc], &[slice("web", &eps)]);
    let b = render(&Names::new("node-b"), &ports);
    let sep: Vec<_> = b
        .iter()
        .filter(|(n, _)| n.starts_with("MINIK8S-SEP-"))
        .collect();
    assert_eq!(sep.len(), 1);
    assert!(sep[0].1[1].ends_with("10.1.1.5:8080"));
}

#[test]
fn udp_ports_and_unnamed_ports_are_served() {
    let dns = service(
        "dns",
        json!({"clusterIP": "10.96.0.53", "ports": [{"port": 53, "protocol": "UDP"}]}),
    );
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "dns-1", "namespace": "default",
            "labels": {SERVICE_NAME_LABEL: "dns"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.1.0.9"], "conditions": {"ready": true}}],
        "ports": [{"port": 5353, "protocol": "UDP"}],
    }))
    .unwrap();
    let chains = chains_for(&[dns], &[slice]);
    assert!(services_rules(&chains)[0].starts_with("-d 10.96.0.53/32 -p udp "));
    assert!(
        of_kind(&chains, "SEP")[0].1[1].ends_with("-m udp -j DNAT --to-destination 10.1.0.9:5353")
    );
}

fn three() -> (Vec<Service>, Vec<EndpointSlice>) {
    (
        vec![web(json!({}))],
        vec![slice(
            "web",
            &[ready("10.1.0.5"), ready("10.1.0.6"), ready("10.1.0.7")],
        )],
    )
}

fn count(table: &str, needle: &str) -> usize {
    table.lines().filter(|l| l.contains(needle)).count()
}

#[tokio::test]
async fn a_first_sync_writes_everything_and_one_jump_from_each_built_in() {
    let fake = Arc::new(FakeApplier::new());
    let mut proxy = Proxy::new(fake.clone(), NODE);
    let (svcs, slices) = three();
    let report = proxy
        .sync(&service_ports(&svcs, &slices), false)
        .await
        .unwrap();
    assert!(report.full);
    let restores = fake.restores();
    assert_eq!(restores.len(), 1, "one transaction");
    assert!(restores[0].starts_with("*nat\n") && restores[0].ends_with("COMMIT\n"));
    let table = fake.table();
    let names = Names::new(NODE);
    for parent in BUILT_IN {
        assert_eq!(
            count(
                &table,
                &format!("-A {parent} -m comment --comment \"minik8s proxy of node {NODE}\"")
            ),
            1,
            "{table}"
        );
    }
    assert_eq!(count(&table, &format!(":MINIK8S-SEP-{}-", names.tag)), 3);
    assert!(proxy.check().await.unwrap());
}

#[tokio::test]
async fn a_change_rewrites_only_the_chains_it_changes() {
    let fake = Arc::new(FakeApplier::new());
    let mut proxy = Proxy::new(fake.clone(), NODE);
    let (svcs, slices) = three();
    proxy
        .sync(&service_ports(&svcs, &slices), false)
        .await
        .unwrap();
    let saves = fake.saves();

    // Nothing changed: nothing written.
    let report = proxy
        .sync(&service_ports(&svcs, &slices), false)
        .await
        .unwrap();
    assert_eq!(report, SyncReport::default());
    assert_eq!(fake.restores().len(), 1);

    // One endpoint gone: its SEP chain deleted, the SVC chain rewritten, nothing else.
    let fewer = vec![slice("web", &[ready("10.1.0.5"), ready("10.1.0.6")])];
    let report = proxy
        .sync(&service_ports(&svcs, &fewer), false)
        .await
        .unwrap();
    assert!(!report.full);
    assert_eq!(
        fake.saves(),
        saves,
        "a partial sync does not read the table"
    );
    let input = fake.restores().pop().unwrap();
    let declared: Vec<&str> = input.lines().filter(|l| l.starts_with(':')).collect();
    assert_eq!(declared.len(), 2, "{input}");
    assert!(declared.iter().any(|l| l.starts_with(":MINIK8S-SVC-")));
    let deleted: Vec<&str> = input.lines().filter(|l| l.starts_with("-X ")).collect();
    assert_eq!(deleted.len(), 1, "{input}");
    assert!(deleted[0].starts_with("-X MINIK8S-SEP-"));
    assert_eq!(count(&fake.table(), ":MINIK8S-SEP-"), 2);
    assert!(proxy.check().await.unwrap());

    // The service gone: all of its chains go, the dispatch chain is rewritten.
    proxy
        .sync(&service_ports(&[], &fewer), false)
        .await
        .unwrap();
    let table = fake.table();
    assert_eq!(count(&table, ":MINIK8S-SEP-"), 0, "{table}");
    assert_eq!(count(&table, ":MINIK8S-SVC-"), 0, "{table}");
    assert!(proxy.check().await.unwrap());
}

#[tokio::test]
async fn a_restarted_kubelet_leaves_one_copy_of_each_rule_and_drops_what_is_gone() {
    let fake = Arc::new(FakeApplier::new());
    let (svcs, slices) = three();
    Proxy::new(fake.clone(), NODE)
        .sync(&service_ports(&svcs, &slices), false)
        .await
        .unwrap();
    let before = fake.table();
    // The next kubelet, same rules.
    Proxy::new(fake.clone(), NODE)
        .sync(&service_ports(&svcs, &slices), false)
        .await
        .unwrap();
    assert_eq!(fake.table(), before);
    // And one that finds an endpoint gone while it was down.
    let fewer = vec![slice("web", &[ready("10.1.0.5")])];
    let mut proxy = Proxy::new(fake.clone(), NODE);
    proxy
        .sync(&service_ports(&svcs, &fewer), false)
        .await
        .unwrap();
    let table = fake.table();
    assert_eq!(count(&table, ":MINIK8S-SEP-"), 1, "{table}");
    assert_eq!(count(&table, "-A PREROUTING "), 1, "{table}");
    assert!(proxy.check().await.unwrap());
}

#[tokio::test]
async fn drift_is_found_and_repaired_and_other_nodes_chains_are_left_alone() {
    let fake = Arc::new(FakeApplier::new());
    let (svcs, slices) = three();
    let ports = service_ports(&svcs, &slices);
    let mut other = Proxy::new(fake.clone(), "node-b");
    other.sync(&ports, false).await.unwrap();
    let mut proxy = Proxy::new(fake.clone(), NODE);
    proxy.sync(&ports, false).await.unwrap();
    assert!(other.check().await.unwrap());

    // Someone deletes a rule and adds a second jump.
    let names = Names::new(NODE);
    fake.tamper(|chains| {
        let svc = chains
            .iter_mut()
            .find(|(n, _)| n.starts_with(&format!("MINIK8S-SVC-{}-", names.tag)))
            .unwrap();
        svc.1.pop();
        let pre = chains.iter_mut().find(|(n, _)| n == "PREROUTING").unwrap();
        let jump = pre
            .1
            .iter()
            .find(|r| r.contains(&names.services()))
            .unwrap()
            .clone();
        pre.1.push(jump);
    });
    assert!(!proxy.check().await.unwrap());
    let report = proxy.sync(&ports, false).await.unwrap();
    assert!(report.full, "a sync after drift rewrites everything");
    assert!(proxy.check().await.unwrap());
    let table = fake.table();
    assert_eq!(
        count(
            &table,
            &format!("-A PREROUTING -m comment --comment \"minik8s proxy of node {NODE}\"")
        ),
        1,
        "{table}"
    );
    // node-b's rules were never touched.
    assert!(other.check().await.unwrap());
    assert_eq!(count(&table, ":MINIK8S-SEP-"), 6);

    // Removing one node's rules leaves the other's.
    assert_eq!(remove_rules(fake.as_ref(), NODE).await.unwrap(), 8);
    let table = fake.table();
    assert_eq!(count(&table, &names.tag), 0, "{table}");
    assert!(other.check().await.unwrap());
    assert_eq!(nodes_with_rules(&table), ["node-b"]);
}

#[tokio::test]
async fn a_failed_restore_is_followed_by_a_full_sync() {
    let fake = Arc::new(FakeApplier::new());
    let mut proxy = Proxy::new(fake.clone(), NODE);
    let (svcs, slices) = three();
    proxy
        .sync(&service_ports(&svcs, &slices), false)
        .await
        .unwrap();
    fake.set_failing(true);
    let fewer = vec![slice("web", &[ready("10.1.0.5")])];
    assert!(
        proxy
            .sync(&service_ports(&svcs, &fewer), false)
            .await
            .is_err()
    );
    fake.set_failing(false);
    let report = proxy
        .sync(&service_ports(&svcs, &fewer), false)
        .await
        .unwrap();
    assert!(report.full);
    assert_eq!(count(&fake.table(), ":MINIK8S-SEP-"), 1);
}

#[test]
fn nodes_are_found_by_their_jumps() {
    let save = "-A PREROUTING -m comment --comment \"minik8s proxy of node kl-1-2\" -j MINIK8S-SERVICES-AAAAA\n\
                -A OUTPUT -m comment --comment \"minik8s proxy of node kl-1-2\" -j MINIK8S-SERVICES-AAAAA\n\
                -A POSTROUTING -m comment --comment \"minik8s proxy of node up\" -j MINIK8S-MASQUERADE-BBBBB\n";
    assert_eq!(nodes_with_rules(save), ["kl-1-2", "up"]);
}
