//! Support for the cluster DNS tests and benchmark: Debian's dnsmasq on a free port
//! (an upstream, and the baseline), `dig`, and a namespace of many services.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use minik8s_api::k8s_openapi::api::core::v1::{Namespace, Service};
use minik8s_api::k8s_openapi::api::discovery::v1::EndpointSlice;
use minik8s_client::{Api, Client};
use serde_json::json;

/// dnsmasq answering from `hosts` (and `srv-host` lines in `conf`) on 127.0.0.1:`port`;
/// killed when dropped.
pub struct Dnsmasq {
    child: Child,
    pub port: u16,
}

impl Dnsmasq {
    /// `hosts`: "ip name" lines; `srv`: dnsmasq `srv-host=` values.
    pub fn start(dir: &Path, hosts: &str, srv: &[String], port: u16) -> anyhow::Result<Dnsmasq> {
        let hosts_file = dir.join("dnsmasq.hosts");
        std::fs::write(&hosts_file, hosts)?;
        let conf = dir.join("dnsmasq.conf");
        let mut text = String::new();
        for s in srv {
            text.push_str(&format!("srv-host={s}\n"));
        }
        std::fs::write(&conf, text)?;
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--except-interface=none",
                "--user=root",
                "--group=root",
                "--pid-file",
                "--cache-size=10000",
                "--dns-forward-max=1000",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--addn-hosts={}", hosts_file.display()))
            .arg(format!("--conf-file={}", conf.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting dnsmasq (Debian's dnsmasq-base; deploy/install-deps.sh)")?;
        let d = Dnsmasq { child, port };
        for _ in 0..100 {
            if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
                return Ok(d);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("dnsmasq did not listen on port {port}")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `dig` said.
#[derive(Debug)]
pub struct Dig {
    pub status: String,
    pub flags: Vec<String>,
    /// The answer section, one "name ttl class type data" line each, whitespace
    /// collapsed.
    pub answers: Vec<String>,
    pub authority: Vec<String>,
    pub additional: Vec<String>,
}

impl Dig {
    /// The data of each answer (after name, TTL, class and type).
    pub fn data(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .answers
            .iter()
            .map(|l| l.splitn(5, ' ').nth(4).unwrap_or_default().to_string())
            .collect();
        v.sort();
        v
    }

    pub fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }
}

/// Runs `dig @127.0.0.1 -p port <args>` and reads its sections.
pub fn dig(port: u16, args: &[&str]) -> anyhow::Result<Dig> {
    let out = Command::new("dig")
        .arg("@127.0.0.1")
        .arg("-p")
        .arg(port.to_string())
        .args(["+tries=1", "+time=2"])
        .args(args)
        .output()
        .context("running dig (Debian's dnsutils; deploy/install-deps.sh)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let status = text
        .split_once("status: ")
        .and_then(|(_, r)| r.split(',').next())
        .map(str::to_string)
        .with_context(|| format!("no answer from dig {args:?}: {text}"))?;
    let flags = text
        .split_once(";; flags: ")
        .and_then(|(_, r)| r.split(';').next())
        .map(|f| f.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let section = |title: &str| -> Vec<String> {
        let Some((_, rest)) = text.split_once(&format!(";; {title} SECTION:\n")) else {
            return vec![];
        };
        rest.lines()
            .take_while(|l| !l.is_empty())
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    Ok(Dig {
        status,
        flags,
        answers: section("ANSWER"),
        authority: section("AUTHORITY"),
        additional: section("ADDITIONAL"),
    })
}

/// The address of endpoint `e` of service `i` (distinct across services).
pub fn endpoint_ip(i: usize, e: usize, per_service: usize) -> String {
    let n = (i * per_service + e) as u32;
    format!("10.{}.{}.{}", 100 + n / 65536 % 100, n / 256 % 256, n % 256)
}

/// Creates namespace `ns` and `n` services `svc-<i>` in it, every `headless_every`-th one headless, each
/// with a port named `http` and an EndpointSlice of `per_service` ready endpoints
/// (`<svc>-<e>` hostnames on headless ones); `concurrency` requests at a time.
pub async fn populate(
    client: &Client,
    ns: &str,
    n: usize,
    per_service: usize,
    headless_every: usize,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
    if Api::<Namespace>::all(client.clone()).get(ns).await.is_err() {
        Api::<Namespace>::all(client.clone())
            .create(&namespace)
            .await?;
    }
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let services = services.clone();
            let slices = slices.clone();
            async move {
                let name = format!("svc-{i}");
                let headless = headless_every > 0 && i % headless_every == 0;
                let mut spec = json!({"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]});
                if headless {
                    spec["clusterIP"] = json!("None");
                }
                let svc: Service = serde_json::from_value(
                    json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}),
                )?;
                services.create(&svc).await?;
                let endpoints: Vec<_> = (0..per_service)
                    .map(|e| {
                        let mut ep = json!({"addresses": [endpoint_ip(i, e, per_service)],
                            "conditions": {"ready": true}});
                        if headless {
                            ep["hostname"] = json!(format!("{name}-{e}"));
                        }
                        ep
                    })
                    .collect();
                let slice: EndpointSlice = serde_json::from_value(json!({
                    "metadata": {"name": format!("{name}-x"), "namespace": ns,
                        "labels": {"kubernetes.io/service-name": name}},
                    "addressType": "IPv4",
                    "endpoints": endpoints,
                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                }))?;
                slices.create(&slice).await?;
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect()
}
