//! The codec against bodies the real kubectl sends and against k8s-pb decoding what we
//! write.

use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use prost::Message;
use serde_json::{Value, json};

use super::*;

/// `kubectl create namespace team` (v1.33, `-v=8`), byte for byte.
const KUBECTL_NAMESPACE: &[u8] = b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x1c\x0a\x14\
\x0a\x04team\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x00\x1a\x02\x0a\x00\
\x1a\x00\x22\x00";

fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "0b6b3f3e-5d1c-4b53-9a57-1b0c3c7b2f10",
            "resourceVersion": "42",
            "generation": 1,
            "creationTimestamp": "2026-01-02T03:04:05Z",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": "a \"quoted\" value", "empty": ""},
            "ownerReferences": [{
                "apiVersion": "minik8s.io/v1alpha1", "kind": "TaskSet", "name": "ts",
                "uid": "u-1", "controller": true,
            }],
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "minik8s/busybox:latest",
                "command": ["httpd", "-f"],
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                "livenessProbe": {
                    "httpGet": {"path": "/", "port": "http"},
                    "periodSeconds": 5,
                },
                "readinessProbe": {
                    "tcpSocket": {"port": 80},
                    "initialDelaySeconds": 0,
                },
                "resources": {
                    "limits": {"cpu": "500m", "memory": "64Mi"},
                    "requests": {"cpu": "250m"},
                },
                "securityContext": {"runAsUser": 0, "privileged": false},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [
                {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420}},
            ],
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "hostNetwork": true,
            "restartPolicy": "Always",
        },
        "status": {
            "phase": "Running",
            "podIPs": [{"ip": "10.244.0.5"}],
            "startTime": "2026-01-02T03:04:06Z",
            "conditions": [{
                "type": "Ready", "status": "True",
                "lastTransitionTime": "2026-01-02T03:04:07Z",
            }],
            "containerStatuses": [{
                "name": "web", "ready": true, "restartCount": 0, "image": "busybox",
                "imageID": "", "state": {"running": {"startedAt": "2026-01-02T03:04:06Z"}},
            }],
        },
    })
}

#[test]
fn kubectls_namespace_decodes_to_the_json_it_means() {
    let obj = decode(KUBECTL_NAMESPACE).unwrap();
    // Go writes every non-pointer field; the empty ones, the zero `generation` (a
    // non-pointer `omitempty` in Go) and the zero `creationTimestamp` are not in the JSON.
    assert_eq!(
        obj,
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team"},
            "spec": {},
            "status": {},
        })
    );
}

#[test]
fn a_pod_goes_round_the_wire_unchanged() {
    let mut want = pod();
    let bytes = encode(&want).unwrap().unwrap();
    let back = decode(&bytes).unwrap();
    // Absent fields stay absent, zeros of pointer fields (`runAsUser: 0`,
    // `automountServiceAccountToken: false`) stay, an empty map value stays, and
    // `imageID`, required in Kubernetes, stays even when empty. The zero of a Go
    // non-pointer `omitempty` field goes, as Kubernetes' own JSON leaves it out.
    want["spec"]["containers"][0]["readinessProbe"]
        .as_object_mut()
        .unwrap()
        .remove("initialDelaySeconds");
    assert_eq!(back, want);
    assert!(back["spec"].get("dnsPolicy").is_none());
    assert!(back["spec"]["containers"][0].get("stdin").is_none());
}

#[test]
fn the_wire_holds_what_kubernetes_expects() {
    let bytes = encode(&pod()).unwrap().unwrap();
    let unknown = Unknown::decode(&bytes[4..]).unwrap();
    let meta = unknown.type_meta.unwrap();
    assert_eq!(
        (meta.api_version.unwrap(), meta.kind.unwrap()),
        ("v1".into(), "Pod".into())
    );
    let pod = core::Pod::decode(unknown.raw.unwrap().as_slice()).unwrap();

    let m = pod.metadata.unwrap();
    assert_eq!(m.creation_timestamp.unwrap().seconds, Some(1_767_323_045));
    assert_eq!(m.labels["tier"], "front");
    assert_eq!(m.annotations["note"], "a \"quoted\" value");
    assert_eq!(m.owner_references[0].controller, Some(true));
    assert_eq!(m.deletion_timestamp, None);

    let spec = pod.spec.unwrap();
    let c = &spec.containers[0];
    let http = c.liveness_probe.as_ref().unwrap().handler.as_ref().unwrap();
    let port = http.http_get.as_ref().unwrap().port.as_ref().unwrap();
    assert_eq!(
        (port.r#type, port.str_val.as_deref()),
        (Some(1), Some("http"))
    );
    let tcp = c
        .readiness_probe
        .as_ref()
        .unwrap()
        .handler
        .as_ref()
        .unwrap();
    let port = tcp.tcp_socket.as_ref().unwrap().port.as_ref().unwrap();
    assert_eq!((port.r#type, port.int_val), (Some(0), Some(80)));
    let limits = &c.resources.as_ref().unwrap().limits;
    assert_eq!(limits["memory"].string.as_deref(), Some("64Mi"));
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!((sc.run_as_user, sc.privileged), (Some(0), Some(false)));
    assert_eq!(sc.run_as_group, None);
    assert_eq!(spec.termination_grace_period_seconds, Some(0));
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(spec.active_deadline_seconds, None);
    let cfg = spec.volumes[1]
        .volume_source
        .as_ref()
        .unwrap()
        .config_map
        .as_ref();
    let cfg = cfg.unwrap();
    assert_eq!(
        cfg.local_object_reference.as_ref().unwrap().name.as_deref(),
        Some("settings")
    );
    assert_eq!(cfg.default_mode, Some(420));
    assert_eq!(
        pod.status.unwrap().pod_ips[0].ip.as_deref(),
        Some("10.244.0.5")
    );
}

#[test]
fn lists_and_statuses_decode_with_k8s_pb() {
    let list = json!({
        "apiVersion": "v1", "kind": "PodList",
        "metadata": {"resourceVersion": "7", "continue": "next"},
        "items": [pod(), pod()],
    });
    let bytes = encode(&list).unwrap().unwrap();
    let unknown = Unknown::decode(&bytes[4..]).unwrap();
    assert_eq!(unknown.type_meta.unwrap().kind.as_deref(), Some("PodList"));
    let pods = core::PodList::decode(unknown.raw.unwrap().as_slice()).unwrap();
    assert_eq!(pods.items.len(), 2);
    assert_eq!(pods.metadata.unwrap().r#continue.as_deref(), Some("next"));

    let status = serde_json::to_value(
        crate::ApiError::not_found(&minik8s_api::resource::PODS, "web").to_status(),
    )
    .unwrap();
    let mut status = status;
    status["apiVersion"] = json!("v1");
    status["kind"] = json!("Status");
    let bytes = encode(&status).unwrap().unwrap();
    let unknown = Unknown::decode(&bytes[4..]).unwrap();
    let s = meta::Status::decode(unknown.raw.unwrap().as_slice()).unwrap();
    assert_eq!(s.code, Some(404));
    assert_eq!(s.reason.as_deref(), Some("NotFound"));
    assert_eq!(s.details.unwrap().name.as_deref(), Some("web"));
}

#[test]
fn kinds_without_a_protobuf_form_are_left_to_json() {
    let ts = json!({"apiVersion": "minik8s.io/v1alpha1", "kind": "TaskSet", "metadata": {}});
    assert!(encode(&ts).is_none());
    let list = json!({"apiVersion": "minik8s.io/v1alpha1", "kind": "TaskSetList", "items": []});
    assert!(encode(&list).is_none());
    let body = envelope("minik8s.io/v1alpha1", "TaskSet", Vec::new());
    assert_eq!(
        decode(&body),
        Err(DecodeError::UnknownKind {
            api_version: "minik8s.io/v1alpha1".into(),
            kind: "TaskSet".into()
        })
    );
}

#[test]
fn malformed_bodies_say_what_is_wrong() {
    let err = decode(b"{\"kind\":\"Pod\"}").unwrap_err();
    assert!(err.to_string().contains("k8s\\0 prefix"), "{err}");
    let err = decode(b"k8s\0\x0a\xff\xff").unwrap_err();
    assert!(matches!(err, DecodeError::Malformed(_)), "{err}");
    assert!(err.to_string().contains("runtime.Unknown"), "{err}");
    // A Pod whose message is cut short.
    let mut raw = encode(&pod()).unwrap().unwrap();
    let unknown = Unknown::decode(&raw[4..]).unwrap();
    let mut inner = unknown.raw.clone().unwrap();
    inner.truncate(inner.len() / 2);
    raw = envelope("v1", "Pod", inner);
    let err = decode(&raw).unwrap_err();
    assert!(matches!(err, DecodeError::Malformed(_)), "{err}");
    // A time that is no time.
    let bad = meta::Time {
        seconds: Some(i64::MAX),
        nanos: None,
    };
    let ns = core::Namespace {
        metadata: Some(meta::ObjectMeta {
            name: Some("x".into()),
            creation_timestamp: Some(bad),
            ..Default::default()
        }),
        ..Default::default()
    };
    let obj = decode(&envelope("v1", "Namespace", ns.encode_to_vec())).unwrap();
    assert_eq!(obj["metadata"]["creationTimestamp"], Value::Null);
}
