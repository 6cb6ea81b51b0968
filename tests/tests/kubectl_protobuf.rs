//! Kubernetes' protobuf encoding: the real kubectl's `create <kind>` generators send it
//! (`create namespace`, `service`, `configmap`, `secret`, `deployment` and `job` are
//! those whose kinds we serve; `rolebinding`, `serviceaccount` and `quota` wait for
//! their kinds), and client-go asks for it first in `Accept`. On both stores.

use std::path::PathBuf;
use std::time::Duration;

use minik8s_apiserver::protobuf::k8s_pb::api::core::v1 as core;
use minik8s_apiserver::protobuf::k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use minik8s_apiserver::protobuf::k8s_pb::apimachinery::pkg::runtime::Unknown;
use minik8s_apiserver::protobuf::k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use minik8s_apiserver::protobuf::prost::Message;
use minik8s_apiserver::protobuf::{self, MEDIA_TYPE};
use minik8s_tests::apiserver::{Backend, TestApiServer};
use minik8s_tests::real_kubectl;
use serde_json::Value;

struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        // Global flags first: whatever follows a `--` in `args` is a container's command.
        let out = tokio::process::Command::new(real_kubectl())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .arg("--request-timeout=15s")
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .expect("kubectl finished in time")
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(ok, "kubectl {args:?} failed:\nstdout: {out}\nstderr: {err}");
        out
    }

    async fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

/// What kubectl prints of a namespace, less what differs between two reads.
fn comparable(mut ns: Value) -> Value {
    ns["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    ns
}

async fn create_generators(backend: Backend) {
    let srv = TestApiServer::start(backend).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl {
        kubeconfig: srv.write_kubeconfig(dir.path()).unwrap(),
        cache: dir.path().join("cache"),
    };

    // What kubectl sends: a protobuf body, asking for protobuf first.
    let (ok, _, log) = k.run(&["create", "namespace", "team", "-v=8"]).await;
    assert!(ok, "{log}");
    assert!(
        log.contains(&format!("Content-Type: {MEDIA_TYPE}"))
            && log.contains(&format!("Accept: {MEDIA_TYPE},application/json")),
        "kubectl did not send protobuf:\n{log}"
    );
    assert!(
        log.contains("namespace/team created") || log.contains("201 Created"),
        "{log}"
    );

    let got = k.json(&["get", "namespace", "team", "-o", "json"]).await;
    assert_eq!(got["apiVersion"], "v1");
    assert_eq!(got["kind"], "Namespace");
    let m = &got["metadata"];
    assert_eq!(m["name"], "team");
    assert_eq!(m["labels"]["kubernetes.io/metadata.name"], "team");
    assert!(m["uid"].as_str().is_some_and(|u| u.len() == 36), "{got}");
    let created = m["creationTimestamp"].as_str().unwrap();
    assert!(created.parse::<jiff::Timestamp>().is_ok(), "{created}");
    // Go wrote every empty field of the request; none of them is in the object.
    for absent in ["generateName", "namespace", "selfLink", "deletionTimestamp"] {
        assert!(m.get(absent).is_none(), "{absent} in {got}");
    }
    assert_eq!(got["spec"]["finalizers"], serde_json::json!(["kubernetes"]));
    assert_eq!(got["status"]["phase"], "Active");
    let out = k.ok(&["get", "namespaces"]).await;
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().take(2).eq(["team", "Active"])),
        "{out}"
    );

    // `-o json` of a create prints the object kubectl read from our protobuf answer:
    // the same as the JSON read of it.
    let made = k
        .json(&["create", "namespace", "second", "-o", "json"])
        .await;
    let read = k.json(&["get", "namespace", "second", "-o", "json"]).await;
    assert_eq!(comparable(made), comparable(read));

    // Errors come back as a protobuf Status that kubectl prints as it would Kubernetes'.
    let (ok, _, err) = k.run(&["create", "namespace", "team"]).await;
    assert!(!ok);
    assert!(
        err.contains(r#"Error from server (AlreadyExists): namespaces "team" already exists"#),
        "{err}"
    );
    let (ok, _, err) = k.run(&["create", "namespace", "Not_A_Name"]).await;
    assert!(!ok);
    // kubectl words a 422 from the Status' details and causes, as for Kubernetes.
    assert!(
        err.contains(r#"The Namespace "Not_A_Name" is invalid: metadata.name: Invalid value"#),
        "{err}"
    );

    create_service(&k).await;
    create_workloads(&k).await;
}

/// `kubectl create configmap|secret|deployment|job`: maps, bytes (a secret's data is
/// base64 in JSON and raw in protobuf), and the apps and batch groups.
async fn create_workloads(k: &Kubectl) {
    let made = k
        .json(&[
            "create",
            "configmap",
            "cfg",
            "--from-literal=a=1",
            "--from-literal=b=two",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(made["data"], serde_json::json!({"a": "1", "b": "two"}));
    let read = k.json(&["get", "configmap", "cfg", "-o", "json"]).await;
    assert_eq!(comparable(made), comparable(read));

    let made = k
        .json(&[
            "create",
            "secret",
            "generic",
            "pw",
            "--from-literal=user=admin",
            "-o",
            "json",
        ])
        .await;
    // "admin", base64.
    assert_eq!(made["data"]["user"], "YWRtaW4=", "{made}");
    assert_eq!(made["type"], "Opaque");
    let read = k.json(&["get", "secret", "pw", "-o", "json"]).await;
    assert_eq!(comparable(made), comparable(read));

    let made = k
        .json(&[
            "create",
            "deployment",
            "web",
            "--image=minik8s/busybox:latest",
            "--replicas=0",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(made["apiVersion"], "apps/v1");
    assert_eq!(made["spec"]["replicas"], 0, "{made}");
    assert_eq!(made["spec"]["selector"]["matchLabels"]["app"], "web");
    assert_eq!(made["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");

    let made = k
        .json(&[
            "create",
            "job",
            "once",
            "--image=minik8s/busybox:latest",
            "-o",
            "json",
            "--",
            "true",
        ])
        .await;
    assert_eq!(made["apiVersion"], "batch/v1");
    assert_eq!(made["spec"]["completions"], 1, "{made}");
    let uid = made["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        made["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid
    );
}

/// `kubectl create service`: an IntOrString target port by number and by name.
async fn create_service(k: &Kubectl) {
    let out = k
        .ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"])
        .await;
    assert_eq!(out.trim(), "service/web created");
    let svc = k.json(&["get", "service", "web", "-o", "json"]).await;
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["selector"]["app"], "web");
    let port = &svc["spec"]["ports"][0];
    assert_eq!(
        (&port["port"], &port["targetPort"]),
        (&80.into(), &8080.into()),
        "{svc}"
    );
    assert_eq!(port["protocol"], "TCP");
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.contains('.')),
        "{svc}"
    );

    let made = k
        .json(&[
            "create",
            "service",
            "nodeport",
            "np",
            "--tcp=80:http",
            "-o",
            "json",
        ])
        .await;
    let port = &made["spec"]["ports"][0];
    assert_eq!(port["targetPort"], "http", "{made}");
    assert!(
        port["nodePort"].as_i64().is_some_and(|p| p >= 30000),
        "{made}"
    );
    let read = k.json(&["get", "service", "np", "-o", "json"]).await;
    assert_eq!(comparable(made), comparable(read));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_create_generators_on_embedded_store() {
    create_generators(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_create_generators_on_etcd() {
    create_generators(Backend::Etcd).await;
}

fn pod_message() -> core::Pod {
    let port = |p: IntOrString| core::ProbeHandler {
        http_get: Some(core::HttpGetAction {
            path: Some("/".into()),
            port: Some(p),
            ..Default::default()
        }),
        ..Default::default()
    };
    let quantity =
        |q: &str| minik8s_apiserver::protobuf::k8s_pb::apimachinery::pkg::api::resource::Quantity {
            string: Some(q.into()),
        };
    core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: Some("web".into()),
            // What Go writes for fields it has no value for.
            namespace: Some(String::new()),
            generate_name: Some(String::new()),
            creation_timestamp: Some(meta::Time::default()),
            labels: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: Some("web".into()),
                image: Some("minik8s/busybox:latest".into()),
                ports: vec![core::ContainerPort {
                    name: Some("http".into()),
                    container_port: Some(80),
                    host_port: Some(0),
                    ..Default::default()
                }],
                liveness_probe: Some(core::Probe {
                    handler: Some(port(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: Some("http".into()),
                    })),
                    ..Default::default()
                }),
                readiness_probe: Some(core::Probe {
                    handler: Some(port(IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: Some(String::new()),
                    })),
                    ..Default::default()
                }),
                resources: Some(core::ResourceRequirements {
                    limits: [
                        ("cpu".to_string(), quantity("500m")),
                        ("memory".to_string(), quantity("64Mi")),
                    ]
                    .into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            termination_grace_period_seconds: Some(0),
            ..Default::default()
        }),
        status: None,
    }
}

fn unwrap_envelope(bytes: &[u8]) -> Unknown {
    let rest = bytes.strip_prefix(b"k8s\0").expect("the k8s\\0 prefix");
    Unknown::decode(rest).unwrap()
}

async fn protobuf_clients(backend: Backend) {
    let srv = TestApiServer::start(backend).await.unwrap();
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", srv.url);
    let post = |path: &str, body: Vec<u8>, accept: &str| {
        http.post(url(path))
            .header("Content-Type", MEDIA_TYPE)
            .header("Accept", accept.to_string())
            .body(body)
            .send()
    };

    // A pod sent as client-go sends it: named and numbered probe ports, quantities.
    let body = protobuf::envelope("v1", "Pod", pod_message().encode_to_vec());
    let resp = post("/api/v1/namespaces/default/pods", body, "application/json")
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let pod: Value = resp.json().await.unwrap();
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], 8080);
    assert_eq!(c["resources"]["limits"]["memory"], "64Mi");
    assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 0);
    assert_eq!(pod["metadata"]["namespace"], "default");
    assert!(
        pod["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );

    // Read back in protobuf and decoded with k8s-pb.
    let resp = http
        .get(url("/api/v1/namespaces/default/pods/web"))
        .header("Accept", format!("{MEDIA_TYPE}, application/json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], MEDIA_TYPE);
    let env = unwrap_envelope(&resp.bytes().await.unwrap());
    let tm = env.type_meta.unwrap();
    assert_eq!(
        (tm.api_version.as_deref(), tm.kind.as_deref()),
        (Some("v1"), Some("Pod"))
    );
    let got = core::Pod::decode(env.raw.unwrap().as_slice()).unwrap();
    let m = got.metadata.unwrap();
    assert_eq!(m.name.as_deref(), Some("web"));
    assert!(m.creation_timestamp.unwrap().seconds.unwrap() > 1_600_000_000);
    assert_eq!(m.labels["app"], "web");
    let spec = got.spec.unwrap();
    let probe = spec.containers[0].liveness_probe.clone().unwrap();
    let port = probe.handler.unwrap().http_get.unwrap().port.unwrap();
    assert_eq!(
        (port.r#type, port.str_val.as_deref()),
        (Some(1), Some("http"))
    );
    assert_eq!(
        spec.containers[0].resources.clone().unwrap().limits["cpu"]
            .string
            .as_deref(),
        Some("500m")
    );
    // Defaults the server applied come back too.
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));

    // A list, in protobuf.
    let resp = http
        .get(url("/api/v1/namespaces/default/pods"))
        .header("Accept", MEDIA_TYPE)
        .send()
        .await
        .unwrap();
    let env = unwrap_envelope(&resp.bytes().await.unwrap());
    assert_eq!(env.type_meta.unwrap().kind.as_deref(), Some("PodList"));
    let list = core::PodList::decode(env.raw.unwrap().as_slice()).unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(
        list.metadata
            .unwrap()
            .resource_version
            .is_some_and(|rv| !rv.is_empty())
    );

    // A Status error, in protobuf.
    let resp = http
        .get(url("/api/v1/namespaces/default/pods/nope"))
        .header("Accept", format!("{MEDIA_TYPE},application/json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let env = unwrap_envelope(&resp.bytes().await.unwrap());
    let status = meta::Status::decode(env.raw.unwrap().as_slice()).unwrap();
    assert_eq!(status.reason.as_deref(), Some("NotFound"));
    assert_eq!(status.message.as_deref(), Some("pods \"nope\" not found"));

    // JSON is still the answer to a client that asks for it first, and for watches.
    let resp = http
        .get(url("/api/v1/namespaces/default/pods/web"))
        .header("Accept", format!("application/json, {MEDIA_TYPE}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let resp = http
        .get(url(
            "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1",
        ))
        .header("Accept", format!("{MEDIA_TYPE},application/json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let text = resp.text().await.unwrap();
    assert!(text.starts_with("{\"type\":\"ADDED\""), "{text}");

    // A malformed body is 400, naming what is wrong.
    let resp = post(
        "/api/v1/namespaces",
        b"k8s\0\x0a\xff".to_vec(),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    let status: Value = resp.json().await.unwrap();
    assert_eq!(status["reason"], "BadRequest");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("runtime.Unknown"),
        "{status}"
    );
    let resp = post(
        "/api/v1/namespaces",
        b"{\"kind\":\"Namespace\"}".to_vec(),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    let status: Value = resp.json().await.unwrap();
    assert!(
        status["message"].as_str().unwrap().contains("k8s\\0"),
        "{status}"
    );

    // TaskSets are JSON only, as a CRD in Kubernetes: 415.
    let body = protobuf::envelope("minik8s.io/v1alpha1", "TaskSet", Vec::new());
    let resp = post(
        "/apis/minik8s.io/v1alpha1/namespaces/default/tasksets",
        body,
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 415);
    let status: Value = resp.json().await.unwrap();
    assert_eq!(status["reason"], "UnsupportedMediaType");
    // And a TaskSet read asking for protobuf first is answered in JSON.
    let resp = http
        .get(url("/apis/minik8s.io/v1alpha1/namespaces/default/tasksets"))
        .header("Accept", format!("{MEDIA_TYPE},application/json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_clients_on_embedded_store() {
    protobuf_clients(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_clients_on_etcd() {
    protobuf_clients(Backend::Etcd).await;
}
