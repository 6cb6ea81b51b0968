use std::collections::BTreeMap;

use hickory_proto::rr::{Name, RData, RecordType};

use super::*;

fn zone() -> Name {
    Name::from_ascii("cluster.local.").unwrap()
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn svc(kind: ServiceKind, ports: &[(&str, &str, u16)]) -> ServiceInfo {
    ServiceInfo {
        kind,
        ports: ports
            .iter()
            .map(|(n, p, port)| (n.to_string(), p.to_string(), *port))
            .collect(),
        publish_not_ready: false,
    }
}

fn ep(ip: &str, hostname: Option<&str>, ready: bool) -> EndpointInfo {
    EndpointInfo {
        addresses: vec![ip.parse().unwrap()],
        hostname: hostname.map(str::to_string),
        ready,
    }
}

fn index() -> Index {
    let mut services = BTreeMap::new();
    services.insert(
        ("default".into(), "kubernetes".into()),
        svc(
            ServiceKind::ClusterIp(vec!["10.3.0.1".parse().unwrap()]),
            &[("https", "tcp", 443)],
        ),
    );
    services.insert(
        ("default".into(), "headless".into()),
        svc(ServiceKind::Headless, &[("https", "tcp", 443)]),
    );
    services.insert(
        ("default".into(), "empty".into()),
        svc(ServiceKind::Headless, &[]),
    );
    services.insert(
        ("default".into(), "foo".into()),
        svc(ServiceKind::ExternalName("www.example.com".into()), &[]),
    );
    let mut slices = BTreeMap::new();
    slices.insert(
        ("default".into(), "headless-abc".into()),
        SliceInfo {
            service: "headless".into(),
            ports: vec![("https".into(), "tcp".into(), 443)],
            endpoints: vec![
                ep("10.3.0.100", Some("my-pet"), true),
                ep("10.3.0.101", None, true),
                ep("10.3.0.102", Some("unready"), false),
            ],
        },
    );
    Index::build(&zone(), &services, &slices)
}

fn answers(a: Answer) -> Vec<String> {
    match a {
        Answer::Records { answers, .. } => {
            let mut v: Vec<String> = answers.iter().map(|r| r.data.to_string()).collect();
            v.sort();
            v
        }
        other => panic!("expected records, got {other:?}"),
    }
}

#[test]
fn cluster_ip_service_a_srv_ptr() {
    let i = index();
    assert_eq!(
        answers(i.lookup(
            &name("kubernetes.default.svc.cluster.local."),
            RecordType::A
        )),
        ["10.3.0.1"]
    );
    // Case-insensitive, the asked case kept in the answer.
    match i.lookup(
        &name("Kubernetes.DEFAULT.svc.cluster.local."),
        RecordType::A,
    ) {
        Answer::Records { answers, .. } => {
            assert_eq!(
                answers[0].name.to_ascii(),
                "Kubernetes.DEFAULT.svc.cluster.local."
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        answers(i.lookup(
            &name("_https._tcp.kubernetes.default.svc.cluster.local."),
            RecordType::SRV
        )),
        ["0 100 443 kubernetes.default.svc.cluster.local."]
    );
    assert_eq!(
        answers(i.lookup(&name("1.0.3.10.in-addr.arpa."), RecordType::PTR)),
        ["kubernetes.default.svc.cluster.local."]
    );
}

#[test]
fn headless_service_ready_endpoints_only() {
    let i = index();
    assert_eq!(
        answers(i.lookup(&name("headless.default.svc.cluster.local."), RecordType::A)),
        ["10.3.0.100", "10.3.0.101"]
    );
    assert_eq!(
        answers(i.lookup(
            &name("my-pet.headless.default.svc.cluster.local."),
            RecordType::A
        )),
        ["10.3.0.100"]
    );
    assert_eq!(
        answers(i.lookup(
            &name("_https._tcp.headless.default.svc.cluster.local."),
            RecordType::SRV
        )),
        [
            "0 50 443 10-3-0-101.headless.default.svc.cluster.local.",
            "0 50 443 my-pet.headless.default.svc.cluster.local."
        ]
    );
    assert_eq!(
        answers(i.lookup(&name("100.0.3.10.in-addr.arpa."), RecordType::PTR)),
        ["my-pet.headless.default.svc.cluster.local."]
    );
    assert_eq!(
        i.lookup(
            &name("unready.headless.default.svc.cluster.local."),
            RecordType::A
        ),
        Answer::NxDomain
    );
    // No ready endpoints: NXDOMAIN, as the specification says.
    assert_eq!(
        i.lookup(&name("empty.default.svc.cluster.local."), RecordType::A),
        Answer::NxDomain
    );
}

#[test]
fn nodata_nxdomain_and_others() {
    let i = index();
    assert_eq!(
        i.lookup(
            &name("kubernetes.default.svc.cluster.local."),
            RecordType::AAAA
        ),
        Answer::NoData
    );
    assert_eq!(
        i.lookup(&name("default.svc.cluster.local."), RecordType::A),
        Answer::NoData
    );
    assert_eq!(
        i.lookup(&name("nope.default.svc.cluster.local."), RecordType::A),
        Answer::NxDomain
    );
    assert_eq!(
        i.lookup(&name("example.com."), RecordType::A),
        Answer::NotOurs
    );
    assert_eq!(
        i.lookup(&name("9.9.9.9.in-addr.arpa."), RecordType::PTR),
        Answer::NotOurs
    );
    assert_eq!(
        answers(i.lookup(&name("dns-version.cluster.local."), RecordType::TXT)),
        ["1.1.0"]
    );
    assert_eq!(
        answers(i.lookup(&name("foo.default.svc.cluster.local."), RecordType::A)),
        ["www.example.com."]
    );
    assert_eq!(
        answers(i.lookup(&name("10-1-2-3.any.pod.cluster.local."), RecordType::A)),
        ["10.1.2.3"]
    );
    assert_eq!(
        i.lookup(&name("10-1-2.any.pod.cluster.local."), RecordType::A),
        Answer::NxDomain
    );
    match i.lookup(&name("cluster.local."), RecordType::SOA) {
        Answer::Records { answers, .. } => assert!(matches!(answers[0].data, RData::SOA(_))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reverse_names() {
    assert_eq!(
        reverse_key("10.1.2.3".parse().unwrap()),
        "3.2.1.10.in-addr.arpa"
    );
    assert_eq!(
        reverse_key("2001:db8::1".parse().unwrap()),
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    );
    assert_eq!(dashed("10.1.2.3".parse().unwrap()), "10-1-2-3");
}
