use k8s_openapi::api::core::v1::{PodDNSConfigOption, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

const HOST: &str = "# generated\nnameserver 10.0.0.2\nnameserver 10.0.0.3 ; second\n\
search corp.example. . lab.example\noptions timeout:2 attempts:3\noptions timeout:1\n";

fn pod(policy: Option<&str>, host_network: bool, dns: Option<PodDNSConfig>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("shop".into()),
            uid: Some("u1".into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            dns_policy: policy.map(str::to_string),
            host_network: host_network.then_some(true),
            dns_config: dns,
            ..PodSpec::default()
        }),
        status: None,
    }
}

fn dns() -> PodDns {
    PodDns {
        cluster_dns: Some("10.96.0.10".parse().unwrap()),
        cluster_domain: "cluster.local".into(),
        resolv_conf: Some("/unused".into()),
    }
}

fn file(d: &PodDns, p: &Pod) -> (String, Vec<Warning>) {
    let (c, w) = d.pod_config(p, &DnsConfig::parse(HOST));
    (c.render(), w)
}

#[test]
fn the_host_file_is_read_as_kubernetes_reads_it() {
    let host = DnsConfig::parse(HOST);
    assert_eq!(host.servers, ["10.0.0.2", "10.0.0.3"]);
    assert_eq!(host.searches, ["corp.example", "lab.example"]);
    assert_eq!(host.options, ["attempts:3", "timeout:1"]);
}

#[test]
fn cluster_first_is_the_cluster_dns_with_the_cluster_search_path() {
    let want = "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n\
nameserver 10.96.0.10\noptions ndots:5\n";
    assert_eq!(
        file(&dns(), &pod(None, false, None)),
        (want.to_string(), vec![])
    );
    assert_eq!(
        file(&dns(), &pod(Some("ClusterFirst"), false, None)).0,
        want
    );
    // With the host's network, ClusterFirst means Default; ClusterFirstWithHostNet does not.
    assert_eq!(
        file(&dns(), &pod(Some("ClusterFirstWithHostNet"), true, None)).0,
        want
    );
}

#[test]
fn default_is_the_hosts_configuration() {
    let want = "search corp.example lab.example\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n\
options attempts:3 timeout:1\n";
    assert_eq!(file(&dns(), &pod(Some("Default"), false, None)).0, want);
    assert_eq!(file(&dns(), &pod(Some("ClusterFirst"), true, None)).0, want);
    // An empty --resolv-conf: a local nameserver and the root as the search path.
    let none = PodDns {
        resolv_conf: None,
        ..dns()
    };
    let (host, _) = none.host_config();
    assert_eq!(
        none.pod_config(&pod(Some("Default"), false, None), &host)
            .0
            .render(),
        "search .\nnameserver 127.0.0.1\n"
    );
}

#[test]
fn without_cluster_dns_cluster_first_falls_back_to_default_with_a_warning() {
    let d = PodDns {
        cluster_dns: None,
        ..dns()
    };
    let (text, warnings) = file(&d, &pod(None, false, None));
    assert!(text.starts_with("search corp.example lab.example\nnameserver 10.0.0.2\n"));
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].0, "MissingClusterDNS");
    assert_eq!(
        warnings[0].1,
        "pod: \"web_shop(u1)\". kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy."
    );
}

fn option(name: &str, value: Option<&str>) -> PodDNSConfigOption {
    PodDNSConfigOption {
        name: Some(name.into()),
        value: value.map(str::to_string),
    }
}

#[test]
fn dns_config_is_merged_into_every_policy() {
    let extra = PodDNSConfig {
        nameservers: Some(vec!["1.2.3.4".into(), "10.96.0.10".into()]),
        searches: Some(vec![
            "ns1.svc.cluster-domain.example".into(),
            "corp.example".into(),
        ]),
        options: Some(vec![option("ndots", Some("2")), option("edns0", None)]),
    };
    let (text, _) = file(&dns(), &pod(None, false, Some(extra.clone())));
    assert_eq!(
        text,
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example ns1.svc.cluster-domain.example\n\
nameserver 10.96.0.10\nnameserver 1.2.3.4\noptions ndots:2 edns0\n"
    );
    // Kubernetes' own example of `None`.
    let example = PodDNSConfig {
        nameservers: Some(vec!["192.0.2.1".into()]),
        searches: Some(vec![
            "ns1.svc.cluster-domain.example".into(),
            "my.dns.search.suffix".into(),
        ]),
        options: Some(vec![option("ndots", Some("2")), option("edns0", None)]),
    };
    assert_eq!(
        file(&dns(), &pod(Some("None"), false, Some(example))).0,
        "search ns1.svc.cluster-domain.example my.dns.search.suffix\nnameserver 192.0.2.1\n\
options ndots:2 edns0\n"
    );
    assert_eq!(
        file(
            &dns(),
            &pod(Some("None"), false, Some(PodDNSConfig::default()))
        )
        .0,
        ""
    );
}

#[test]
fn limits_leave_out_what_is_over_with_a_warning() {
    let extra = PodDNSConfig {
        nameservers: Some(vec!["1.1.1.1".into(), "2.2.2.2".into(), "3.3.3.3".into()]),
        searches: Some((0..40).map(|i| format!("d{i}.example")).collect()),
        options: None,
    };
    let (config, warnings) =
        dns().pod_config(&pod(None, false, Some(extra)), &DnsConfig::default());
    assert_eq!(config.servers, ["10.96.0.10", "1.1.1.1", "2.2.2.2"]);
    assert_eq!(config.searches.len(), MAX_SEARCH_PATHS);
    assert_eq!(config.searches[31], "d28.example");
    let reasons: Vec<&str> = warnings.iter().map(|w| w.0).collect();
    assert_eq!(reasons, ["DNSConfigForming", "DNSConfigForming"]);
    assert!(
        warnings[0]
            .1
            .ends_with("the applied nameserver line is: 10.96.0.10 1.1.1.1 2.2.2.2")
    );

    let long = PodDNSConfig {
        searches: Some((0..20).map(|i| format!("{i:0>200}")).collect()),
        ..PodDNSConfig::default()
    };
    let (config, warnings) =
        dns().pod_config(&pod(Some("None"), false, Some(long)), &DnsConfig::default());
    assert!(config.searches.join(" ").len() <= MAX_SEARCH_LIST_CHARS);
    assert_eq!(config.searches.len(), 10);
    assert_eq!(warnings.len(), 1);
}

#[test]
fn the_file_is_rewritten_in_place() {
    let root = tempfile::tempdir().unwrap();
    let host_file = root.path().join("host-resolv.conf");
    std::fs::write(
        &host_file,
        "nameserver 10.0.0.2\nsearch a.example b.example\n",
    )
    .unwrap();
    let d = PodDns {
        resolv_conf: Some(host_file.clone()),
        ..dns()
    };
    let p = pod(Some("Default"), false, None);
    let (path, _) = d.write(root.path(), &p).unwrap();
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(&path).unwrap().ino();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "search a.example b.example\nnameserver 10.0.0.2\n"
    );
    std::fs::write(&host_file, "nameserver 10.0.0.9\n").unwrap();
    let (again, _) = d.write(root.path(), &p).unwrap();
    assert_eq!(again, path);
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(crate::hosts::unpadded(&text), "nameserver 10.0.0.9\n");
    assert_eq!(DnsConfig::parse(&text).servers, ["10.0.0.9"]);
}
