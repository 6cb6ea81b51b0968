//! The kubelet's cluster DNS server against a real API server, asked with Debian's
//! `dig`: every record of the Kubernetes DNS-based service discovery specification
//! compared with its examples, NODATA against NXDOMAIN, a change answered within a
//! second, a 100-endpoint answer truncated over UDP and whole over TCP, a name outside
//! the cluster answered by an upstream (Debian's dnsmasq with a hosts file), and the
//! memory of a process serving 1000 services with 5000 endpoints.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use minik8s_api::k8s_openapi::api::core::v1::Service;
use minik8s_api::k8s_openapi::api::discovery::v1::EndpointSlice;
use minik8s_client::{Api, Client, Config, DeleteParams};
use minik8s_kubelet::dns::{DnsConfig, serve};
use minik8s_tests::apiserver::{Backend, TestApiServer};
use minik8s_tests::bench::free_port;
use minik8s_tests::dns::{Dig, Dnsmasq, dig, populate};
use minik8s_tests::wait_for;
use serde_json::{Value, json};

const DOMAIN: &str = "cluster.local";

/// An API server, dnsmasq as the upstream, and our server in this process.
struct Cluster {
    _api: TestApiServer,
    client: Client,
    port: u16,
    _upstream: Dnsmasq,
    _dir: tempfile::TempDir,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl Cluster {
    async fn start() -> Cluster {
        let api = TestApiServer::start(Backend::Embedded).await.unwrap();
        let client = Client::new(Config::new(api.url.parse().unwrap())).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let upstream = Dnsmasq::start(
            dir.path(),
            "192.0.2.53 www.example.com\n192.0.2.54 outside.test\n",
            &[],
            free_port().unwrap(),
        )
        .unwrap();
        let port = free_port().unwrap();
        let config = DnsConfig {
            cluster_domain: DOMAIN.into(),
            listen: vec![SocketAddr::from(([127, 0, 0, 1], port))],
            upstreams: vec![SocketAddr::from(([127, 0, 0, 1], upstream.port))],
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let server = tokio::spawn({
            let client = client.clone();
            async move { serve(client, config, stopped).await.unwrap() }
        });
        // Ready once the watches have listed: the zone's own records answer.
        wait_for(
            "the DNS server to answer",
            Duration::from_secs(10),
            || async {
                let d = dig(port, &["dns-version.cluster.local", "TXT"]).ok()?;
                (d.status == "NOERROR").then_some(())
            },
        )
        .await
        .unwrap();
        Cluster {
            _api: api,
            client,
            port,
            _upstream: upstream,
            _dir: dir,
            stop,
            server,
        }
    }

    fn dig(&self, args: &[&str]) -> Dig {
        dig(self.port, args).unwrap()
    }

    async fn service(&self, ns: &str, name: &str, spec: Value) -> Service {
        let svc: Service = serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}),
        )
        .unwrap();
        Api::<Service>::namespaced(self.client.clone(), ns)
            .create(&svc)
            .await
            .unwrap()
    }

    async fn slice(&self, ns: &str, service: &str, endpoints: Value, ports: Value) {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": format!("{service}-abc"), "namespace": ns,
                "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": endpoints, "ports": ports,
        }))
        .unwrap();
        let api = Api::<EndpointSlice>::namespaced(self.client.clone(), ns);
        let name = format!("{service}-abc");
        if let Ok(old) = api.get(&name).await {
            let mut slice = slice;
            slice.metadata.resource_version = old.metadata.resource_version;
            api.replace(&name, &slice).await.unwrap();
        } else {
            api.create(&slice).await.unwrap();
        }
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.server)
            .await
            .expect("the server stops when told")
            .unwrap();
    }
}

fn cluster_ip(svc: &Service) -> String {
    svc.spec.as_ref().unwrap().cluster_ip.clone().unwrap()
}

fn reverse(ip: &str) -> String {
    let mut o: Vec<&str> = ip.split('.').collect();
    o.reverse();
    format!("{}.in-addr.arpa", o.join("."))
}

fn ready(ip: &str, hostname: Option<&str>, ready: bool) -> Value {
    let mut ep = json!({"addresses": [ip], "conditions": {"ready": ready}});
    if let Some(h) = hostname {
        ep["hostname"] = json!(h);
    }
    ep
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_follow_the_specification() {
    let c = Cluster::start().await;
    // 2.2: the schema version.
    let d = c.dig(&["dns-version.cluster.local", "TXT"]);
    assert_eq!(d.data(), ["\"1.1.0\""]);
    assert!(d.has_flag("aa"), "{d:?}");

    // 2.3: a service with a cluster IP: A, SRV per named port, PTR.
    let svc = c
        .service(
            "default",
            "kubernetes",
            json!({"ports": [{"name": "https", "port": 443}]}),
        )
        .await;
    let ip = cluster_ip(&svc);
    wait_for("the service's A record", Duration::from_secs(2), || async {
        (c.dig(&["kubernetes.default.svc.cluster.local", "A"]).data() == [ip.clone()]).then_some(())
    })
    .await
    .unwrap();
    let d = c.dig(&["kubernetes.default.svc.cluster.local", "A"]);
    assert_eq!(
        d.answers,
        [format!("kubernetes.default.svc.cluster.local. 5 IN A {ip}")]
    );
    // Comparisons are case-insensitive.
    assert_eq!(
        c.dig(&["KUBERNETES.Default.SVC.cluster.local", "A"]).data(),
        vec![ip.clone()]
    );
    let d = c.dig(&["_https._tcp.kubernetes.default.svc.cluster.local", "SRV"]);
    assert_eq!(
        d.data(),
        ["0 100 443 kubernetes.default.svc.cluster.local."]
    );
    assert!(
        d.additional.contains(&format!(
            "kubernetes.default.svc.cluster.local. 5 IN A {ip}"
        )),
        "the SRV target's address comes as an additional: {d:?}"
    );
    let d = c.dig(&[&reverse(&ip), "PTR"]);
    assert_eq!(d.data(), ["kubernetes.default.svc.cluster.local."]);
    // Unnamed ports have no SRV record.
    c.service("default", "unnamed", json!({"ports": [{"port": 8080}]}))
        .await;
    wait_for(
        "the unnamed-port service",
        Duration::from_secs(2),
        || async {
            (c.dig(&["unnamed.default.svc.cluster.local", "A"])
                .answers
                .len()
                == 1)
                .then_some(())
        },
    )
    .await
    .unwrap();
    let d = c.dig(&["_tcp.unnamed.default.svc.cluster.local", "SRV"]);
    assert_eq!(d.status, "NXDOMAIN", "{d:?}");

    // 2.4: a headless service: one A per ready endpoint, hostnames, SRV per endpoint,
    // PTR to the endpoint's name.
    c.service(
        "default",
        "headless",
        json!({"clusterIP": "None", "ports": [{"name": "https", "port": 443}]}),
    )
    .await;
    c.slice(
        "default",
        "headless",
        json!([
            ready("10.3.0.100", Some("my-pet"), true),
            ready("10.3.0.2", None, true),
            ready("10.3.0.3", Some("not-ready"), false),
        ]),
        json!([{"name": "https", "port": 443, "protocol": "TCP"}]),
    )
    .await;
    wait_for(
        "the headless service's records",
        Duration::from_secs(2),
        || async {
            (c.dig(&["headless.default.svc.cluster.local", "A"]).data()
                == ["10.3.0.100", "10.3.0.2"])
            .then_some(())
        },
    )
    .await
    .unwrap();
    assert_eq!(
        c.dig(&["my-pet.headless.default.svc.cluster.local", "A"])
            .answers,
        ["my-pet.headless.default.svc.cluster.local. 5 IN A 10.3.0.100"]
    );
    assert_eq!(
        c.dig(&["10-3-0-2.headless.default.svc.cluster.local", "A"])
            .data(),
        ["10.3.0.2"]
    );
    let d = c.dig(&["_https._tcp.headless.default.svc.cluster.local", "SRV"]);
    assert_eq!(
        d.data(),
        [
            "0 50 443 10-3-0-2.headless.default.svc.cluster.local.",
            "0 50 443 my-pet.headless.default.svc.cluster.local."
        ]
    );
    assert_eq!(d.additional.len(), 2, "{d:?}");
    assert_eq!(
        c.dig(&["100.0.3.10.in-addr.arpa", "PTR"]).answers,
        ["100.0.3.10.in-addr.arpa. 5 IN PTR my-pet.headless.default.svc.cluster.local."]
    );
    // A not-ready endpoint has no name.
    assert_eq!(
        c.dig(&["not-ready.headless.default.svc.cluster.local", "A"])
            .status,
        "NXDOMAIN"
    );

    // 2.5: ExternalName: a CNAME, whatever the type asked.
    c.service(
        "default",
        "foo",
        json!({"type": "ExternalName", "externalName": "www.example.com"}),
    )
    .await;
    wait_for("the CNAME", Duration::from_secs(2), || async {
        (c.dig(&["foo.default.svc.cluster.local", "A"]).answers
            == ["foo.default.svc.cluster.local. 5 IN CNAME www.example.com."])
        .then_some(())
    })
    .await
    .unwrap();

    // Pods: a-b-c-d.<ns>.pod.<zone>.
    assert_eq!(
        c.dig(&["10-244-1-7.default.pod.cluster.local", "A"])
            .answers,
        ["10-244-1-7.default.pod.cluster.local. 5 IN A 10.244.1.7"]
    );

    // The zone apex: SOA and NS.
    let d = c.dig(&["cluster.local", "SOA"]);
    assert_eq!(d.answers.len(), 1);
    assert!(
        d.answers[0].starts_with(
            "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. "
        ),
        "{d:?}"
    );
    assert_eq!(
        c.dig(&["cluster.local", "NS"]).data(),
        ["ns.dns.cluster.local."]
    );

    // NODATA: the name exists, not with that type; NOERROR, empty, the SOA in authority.
    for (name, t) in [
        ("kubernetes.default.svc.cluster.local", "AAAA"),
        ("kubernetes.default.svc.cluster.local", "TXT"),
        ("default.svc.cluster.local", "A"),
        ("svc.cluster.local", "A"),
        ("_tcp.kubernetes.default.svc.cluster.local", "SRV"),
    ] {
        let d = c.dig(&[name, t]);
        assert_eq!(
            (d.status.as_str(), d.answers.len()),
            ("NOERROR", 0),
            "{name} {t}: {d:?}"
        );
        assert!(d.authority[0].contains(" IN SOA "), "{name} {t}: {d:?}");
    }
    // NXDOMAIN: no such name, the SOA in authority.
    for (name, t) in [
        ("nope.default.svc.cluster.local", "A"),
        ("kubernetes.nope.svc.cluster.local", "A"),
        ("_http._tcp.kubernetes.default.svc.cluster.local", "SRV"),
        ("nothing.cluster.local", "A"),
    ] {
        let d = c.dig(&[name, t]);
        assert_eq!(d.status, "NXDOMAIN", "{name} {t}: {d:?}");
        assert!(d.authority[0].contains(" IN SOA "), "{name} {t}: {d:?}");
    }
    // A headless service without ready endpoints: NXDOMAIN, as the specification says.
    c.service(
        "default",
        "lonely",
        json!({"clusterIP": "None", "ports": [{"name": "x", "port": 1}]}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.dig(&["lonely.default.svc.cluster.local", "A"]).status,
        "NXDOMAIN"
    );

    // Outside the cluster: the upstream answers, NXDOMAIN included.
    let d = c.dig(&["www.example.com", "A"]);
    assert_eq!(d.data(), ["192.0.2.53"]);
    assert!(!d.has_flag("aa") || d.status == "NOERROR");
    assert_eq!(c.dig(&["outside.test", "A"]).data(), ["192.0.2.54"]);
    assert_eq!(
        c.dig(&["www.example.com", "A", "+tcp"]).data(),
        ["192.0.2.53"]
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_answered_within_a_second() {
    let c = Cluster::start().await;
    let name = "web.default.svc.cluster.local";
    assert_eq!(c.dig(&[name, "A"]).status, "NXDOMAIN");
    let started = Instant::now();
    c.service(
        "default",
        "web",
        json!({"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}),
    )
    .await;
    c.slice(
        "default",
        "web",
        json!([ready("10.9.0.1", None, true)]),
        json!([{"name": "http", "port": 80}]),
    )
    .await;
    wait_for("the new service", Duration::from_secs(1), || async {
        (c.dig(&[name, "A"]).data() == ["10.9.0.1"]).then_some(())
    })
    .await
    .unwrap();
    eprintln!("new service answered after {:?}", started.elapsed());

    // A second endpoint becomes ready; the first stops being ready.
    let changed = Instant::now();
    c.slice(
        "default",
        "web",
        json!([
            ready("10.9.0.1", None, false),
            ready("10.9.0.2", None, true)
        ]),
        json!([{"name": "http", "port": 80}]),
    )
    .await;
    wait_for("the endpoint change", Duration::from_secs(1), || async {
        let srv = c
            .dig(&["_http._tcp.web.default.svc.cluster.local", "SRV"])
            .data();
        (c.dig(&[name, "A"]).data() == ["10.9.0.2"]
            && srv == ["0 100 80 10-9-0-2.web.default.svc.cluster.local."])
        .then_some(())
    })
    .await
    .unwrap();
    eprintln!("endpoint change answered after {:?}", changed.elapsed());

    Api::<Service>::namespaced(c.client.clone(), "default")
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        "the deleted service to go",
        Duration::from_secs(1),
        || async { (c.dig(&[name, "A"]).status == "NXDOMAIN").then_some(()) },
    )
    .await
    .unwrap();
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_truncate_over_udp_and_come_whole_over_tcp() {
    let c = Cluster::start().await;
    c.service(
        "default",
        "big",
        json!({"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}),
    )
    .await;
    let endpoints: Vec<Value> = (0..100)
        .map(|i| ready(&format!("10.8.{}.{}", i / 200, i % 200 + 1), None, true))
        .collect();
    c.slice(
        "default",
        "big",
        json!(endpoints),
        json!([{"name": "http", "port": 80}]),
    )
    .await;
    let name = "big.default.svc.cluster.local";
    wait_for("the 100 endpoints", Duration::from_secs(2), || async {
        (c.dig(&[name, "A", "+tcp"]).answers.len() == 100).then_some(())
    })
    .await
    .unwrap();
    // Over UDP without EDNS (512 bytes) and with dig's EDNS size (1232): truncated.
    for edns in ["+noedns", "+edns"] {
        let d = c.dig(&[name, "A", "+ignore", "+notcp", edns]);
        assert!(d.has_flag("tc"), "{edns}: {d:?}");
        assert!(d.answers.is_empty(), "{edns}: {d:?}");
    }
    // dig retries over TCP by itself after a truncated answer.
    assert_eq!(c.dig(&[name, "A"]).answers.len(), 100);
    let d = c.dig(&["_http._tcp.big.default.svc.cluster.local", "SRV", "+tcp"]);
    assert_eq!(d.answers.len(), 100);
    // A small answer is not truncated.
    let d = c.dig(&["dns-version.cluster.local", "TXT", "+noedns"]);
    assert!(!d.has_flag("tc"));
    c.stop().await;
}

/// 1000 services (one in five headless) with 5 endpoints each, served by the benchmark
/// binary's `serve` mode in a process of its own: resident memory at most 40 MiB, and
/// no CPU while nothing is asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_with_1000_services_and_5000_endpoints() {
    let api = TestApiServer::start(Backend::Embedded).await.unwrap();
    let client = Client::new(Config::new(api.url.parse().unwrap())).unwrap();
    let port = free_port().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dns-bench"))
        .args(["serve", "--server", &api.url, "--port", &port.to_string()])
        .spawn()
        .unwrap();
    populate(&client, "mem", 1000, 5, 5).await.unwrap();
    let result = wait_for(
        "the last service's name",
        Duration::from_secs(30),
        || async {
            let d = dig(port, &["svc-999.mem.svc.cluster.local", "A"]).ok()?;
            let h = dig(port, &["svc-995-4.svc-995.mem.svc.cluster.local", "A"]).ok()?;
            (d.answers.len() == 1 && h.answers.len() == 1).then_some(())
        },
    )
    .await;
    let rss = minik8s_tests::proc::mem_mib(child.id(), "VmRSS");
    let peak = minik8s_tests::proc::mem_mib(child.id(), "VmHWM");
    // Asked nothing, it sleeps (the bound of tests/tests/idle_cpu.rs).
    let idle = match &result {
        Ok(()) => minik8s_tests::proc::idle_cpu_percent(child.id(), Duration::from_secs(5)).await,
        Err(_) => Ok(0.0),
    };
    let _ = child.kill();
    let _ = child.wait();
    result.unwrap();
    let idle = idle.unwrap();
    eprintln!(
        "DNS server with 1000 services, 5000 endpoints: RSS {rss:.1} MiB, peak {peak:.1} MiB, idle CPU {idle:.2} %"
    );
    assert!(rss > 0.0 && rss <= 40.0, "RSS {rss:.1} MiB");
    assert!(idle <= 3.0, "idle CPU {idle:.2} %");
}
