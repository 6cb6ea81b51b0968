//! `kubectl describe pod`, line for line as kubectl lays it out.

use serde_json::Value;

use super::writer::{
    Writer, annotations_multiline, events, labels_multiline, list, print_bool, s,
    tolerations_multiline, v,
};
use minik8s_api::quantity::parse_quantity;

pub fn describe_pod(pod: &Value, pod_events: Option<&[Value]>, w: &mut Writer) {
    let meta = &pod["metadata"];
    let spec = &pod["spec"];
    let status = &pod["status"];
    w.write(0, &format!("Name:\t{}\n", s(&meta["name"])));
    w.write(0, &format!("Namespace:\t{}\n", s(&meta["namespace"])));
    if let Some(priority) = spec["priority"].as_i64() {
        w.write(0, &format!("Priority:\t{priority}\n"));
    }
    if !s(&spec["priorityClassName"]).is_empty() {
        w.write(
            0,
            &format!("Priority Class Name:\t{}\n", s(&spec["priorityClassName"])),
        );
    }
    if !s(&spec["runtimeClassName"]).is_empty() {
        w.write(
            0,
            &format!("Runtime Class Name:\t{}\n", s(&spec["runtimeClassName"])),
        );
    }
    if !s(&spec["serviceAccountName"]).is_empty() {
        w.write(
            0,
            &format!("Service Account:\t{}\n", s(&spec["serviceAccountName"])),
        );
    }
    match s(&spec["nodeName"]) {
        "" => w.write(0, "Node:\t<none>\n"),
        node => w.write(0, &format!("Node:\t{node}/{}\n", s(&status["hostIP"]))),
    }
    if !status["startTime"].is_null() {
        let start = w.time(&status["startTime"]);
        w.write(0, &format!("Start Time:\t{start}\n"));
    }
    labels_multiline(w, "Labels", &meta["labels"]);
    annotations_multiline(w, "Annotations", &meta["annotations"]);
    let phase = s(&status["phase"]);
    if !meta["deletionTimestamp"].is_null() && phase != "Failed" && phase != "Succeeded" {
        let lasts = w.since(&meta["deletionTimestamp"]);
        w.write(0, &format!("Status:\tTerminating (lasts {lasts})\n"));
        w.write(
            0,
            &format!(
                "Termination Grace Period:\t{}s\n",
                meta["deletionGracePeriodSeconds"].as_i64().unwrap_or(0)
            ),
        );
    } else {
        w.write(0, &format!("Status:\t{phase}\n"));
    }
    if !s(&status["reason"]).is_empty() {
        w.write(0, &format!("Reason:\t{}\n", s(&status["reason"])));
    }
    if !s(&status["message"]).is_empty() {
        w.write(0, &format!("Message:\t{}\n", s(&status["message"])));
    }
    let seccomp = &spec["securityContext"]["seccompProfile"];
    if seccomp.is_object() {
        w.write(0, &format!("SeccompProfile:\t{}\n", s(&seccomp["type"])));
        if s(&seccomp["type"]) == "Localhost" && !s(&seccomp["localhostProfile"]).is_empty() {
            w.write(
                0,
                &format!("LocalhostProfile:\t{}\n", s(&seccomp["localhostProfile"])),
            );
        }
    }
    w.write(0, &format!("IP:\t{}\n", s(&status["podIP"])));
    let ips = list(&status["podIPs"]);
    if ips.is_empty() {
        w.write(0, "IPs:\t<none>\n");
    } else {
        w.write(0, "IPs:\n");
        for ip in ips {
            w.write(1, &format!("IP:\t{}\n", s(&ip["ip"])));
        }
    }
    if let Some(owner) = list(&meta["ownerReferences"])
        .iter()
        .find(|o| o["controller"] == true)
    {
        w.write(
            0,
            &format!(
                "Controlled By:\t{}/{}\n",
                s(&owner["kind"]),
                s(&owner["name"])
            ),
        );
    }
    if !s(&status["nominatedNodeName"]).is_empty() {
        w.write(
            0,
            &format!("NominatedNodeName:\t{}\n", s(&status["nominatedNodeName"])),
        );
    }
    let init = list(&spec["initContainers"]);
    if !init.is_empty() {
        containers(
            w,
            pod,
            "Init Containers",
            init,
            &status["initContainerStatuses"],
        );
    }
    containers(
        w,
        pod,
        "Containers",
        list(&spec["containers"]),
        &status["containerStatuses"],
    );
    let conditions = list(&status["conditions"]);
    let gates = list(&spec["readinessGates"]);
    if !gates.is_empty() {
        w.write(0, "Readiness Gates:\n  Type\tStatus\n");
        for gate in gates {
            let state = conditions
                .iter()
                .find(|c| c["type"] == gate["conditionType"])
                .map(|c| v(&c["status"]))
                .unwrap_or_else(|| "<none>".into());
            w.write(1, &format!("{} \t{state} \n", s(&gate["conditionType"])));
        }
    }
    if !conditions.is_empty() {
        w.write(0, "Conditions:\n  Type\tStatus\n");
        for c in conditions {
            w.write(1, &format!("{} \t{} \n", s(&c["type"]), v(&c["status"])));
        }
    }
    volumes(w, list(&spec["volumes"]));
    w.write(0, &format!("QoS Class:\t{}\n", qos_class(pod)));
    labels_multiline(w, "Node-Selectors", &spec["nodeSelector"]);
    tolerations_multiline(w, "Tolerations", &spec["tolerations"]);
    if let Some(pod_events) = pod_events {
        events(w, pod_events);
    }
}

pub(super) fn containers(
    w: &mut Writer,
    pod: &Value,
    label: &str,
    specs: &[Value],
    statuses: &Value,
) {
    let none = if specs.is_empty() { " <none>" } else { "" };
    w.write(0, &format!("{label}:{none}\n"));
    for c in specs {
        let name = s(&c["name"]);
        let status = list(statuses).iter().find(|st| s(&st["name"]) == name);
        w.write(1, &format!("{name}:\n"));
        if let Some(st) = status {
            w.write(2, &format!("Container ID:\t{}\n", s(&st["containerID"])));
        }
        w.write(2, &format!("Image:\t{}\n", s(&c["image"])));
        if let Some(st) = status {
            w.write(2, &format!("Image ID:\t{}\n", s(&st["imageID"])));
        }
        let ports = list(&c["ports"]);
        let port_list = |host: bool| -> String {
            ports
                .iter()
                .map(|p| {
                    let number = if host {
                        p["hostPort"].as_i64().unwrap_or(0)
                    } else {
                        p["containerPort"].as_i64().unwrap_or(0)
                    };
                    format!("{number}/{}", s(&p["protocol"]))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (title, plural, text) in [
            ("Port", "Ports", port_list(false)),
            ("Host Port", "Host Ports", port_list(true)),
        ] {
            if text.contains(',') {
                w.write(2, &format!("{plural}:\t{text}\n"));
            } else if text.is_empty() {
                w.write(2, &format!("{title}:\t<none>\n"));
            } else {
                w.write(2, &format!("{title}:\t{text}\n"));
            }
        }
        if !s(&c["restartPolicy"]).is_empty() {
            w.write(2, &format!("Restart Policy:\t{}\n", s(&c["restartPolicy"])));
        }
        for (title, key) in [("Command", "command"), ("Args", "args")] {
            let items = list(&c[key]);
            if !items.is_empty() {
                w.write(2, &format!("{title}:\n"));
                for item in items {
                    for line in s(item).split('\n') {
                        w.write(3, &format!("{line}\n"));
                    }
                }
            }
        }
        if let Some(st) = status {
            state(w, "State", &st["state"]);
            if st["lastState"]["terminated"].is_object() {
                state(w, "Last State", &st["lastState"]);
            }
            w.write(
                2,
                &format!(
                    "Ready:\t{}\n",
                    print_bool(st["ready"].as_bool().unwrap_or(false))
                ),
            );
            w.write(
                2,
                &format!(
                    "Restart Count:\t{}\n",
                    st["restartCount"].as_i64().unwrap_or(0)
                ),
            );
        }
        for (title, key) in [("Limits", "limits"), ("Requests", "requests")] {
            let mut entries: Vec<(&String, &Value)> = c["resources"][key]
                .as_object()
                .map(|m| m.iter().collect())
                .unwrap_or_default();
            if entries.is_empty() {
                continue;
            }
            entries.sort_by_key(|(k, _)| k.as_str());
            w.write(2, &format!("{title}:\n"));
            for (name, quantity) in entries {
                w.write(3, &format!("{name}:\t{}\n", canonical(s(quantity))));
            }
        }
        for (title, key) in [
            ("Liveness", "livenessProbe"),
            ("Readiness", "readinessProbe"),
            ("Startup", "startupProbe"),
        ] {
            if c[key].is_object() {
                w.write(2, &format!("{title}:\t{}\n", describe_probe(&c[key])));
            }
        }
        let env_from = list(&c["envFrom"]);
        if !env_from.is_empty() {
            w.write(2, "Environment Variables from:\n");
            for e in env_from {
                let (from, reference) = if e["configMapRef"].is_object() {
                    ("ConfigMap", &e["configMapRef"])
                } else {
                    ("Secret", &e["secretRef"])
                };
                let optional = reference["optional"].as_bool().unwrap_or(false);
                let name = s(&reference["name"]);
                match s(&e["prefix"]) {
                    "" => w.write(3, &format!("{name}\t{from}\tOptional: {optional}\n")),
                    prefix => w.write(
                        3,
                        &format!("{name}\t{from} with prefix '{prefix}'\tOptional: {optional}\n"),
                    ),
                }
            }
        }
        environment(w, pod, c);
        let mut mounts: Vec<&Value> = list(&c["volumeMounts"]).iter().collect();
        if mounts.is_empty() {
            w.write(2, "Mounts:\t<none>\n");
        } else {
            w.write(2, "Mounts:\n");
            mounts.sort_by_key(|m| s(&m["mountPath"]));
            for m in mounts {
                let mut flags = vec![if m["readOnly"] == true { "ro" } else { "rw" }.to_string()];
                if !s(&m["subPath"]).is_empty() {
                    flags.push(format!("path={:?}", s(&m["subPath"])));
                }
                w.write(
                    3,
                    &format!(
                        "{} from {} ({})\n",
                        s(&m["mountPath"]),
                        s(&m["name"]),
                        flags.join(",")
                    ),
                );
            }
        }
    }
}

fn state(w: &mut Writer, title: &str, state: &Value) {
    if state["running"].is_object() {
        w.write(2, &format!("{title}:\tRunning\n"));
        let started = w.time(&state["running"]["startedAt"]);
        w.write(3, &format!("Started:\t{started}\n"));
    } else if state["waiting"].is_object() {
        w.write(2, &format!("{title}:\tWaiting\n"));
        if !s(&state["waiting"]["reason"]).is_empty() {
            w.write(3, &format!("Reason:\t{}\n", s(&state["waiting"]["reason"])));
        }
    } else if state["terminated"].is_object() {
        let t = &state["terminated"];
        w.write(2, &format!("{title}:\tTerminated\n"));
        if !s(&t["reason"]).is_empty() {
            w.write(3, &format!("Reason:\t{}\n", s(&t["reason"])));
        }
        if !s(&t["message"]).is_empty() {
            w.write(3, &format!("Message:\t{}\n", s(&t["message"])));
        }
        w.write(
            3,
            &format!("Exit Code:\t{}\n", t["exitCode"].as_i64().unwrap_or(0)),
        );
        if let Some(signal) = t["signal"].as_i64().filter(|s| *s > 0) {
            w.write(3, &format!("Signal:\t{signal}\n"));
        }
        let started = w.time(&t["startedAt"]);
        w.write(3, &format!("Started:\t{started}\n"));
        let finished = w.time(&t["finishedAt"]);
        w.write(3, &format!("Finished:\t{finished}\n"));
    } else {
        w.write(2, &format!("{title}:\tWaiting\n"));
    }
}

/// kubectl's one-line probe: `http-get http://:8080/healthz delay=0s timeout=1s ...`.
pub fn describe_probe(p: &Value) -> String {
    let num = |key: &str| p[key].as_i64().unwrap_or(0);
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        num("initialDelaySeconds"),
        num("timeoutSeconds"),
        num("periodSeconds"),
        num("successThreshold"),
        num("failureThreshold")
    );
    let port = |value: &Value| v(value);
    if p["exec"].is_object() {
        let command: Vec<String> = list(&p["exec"]["command"]).iter().map(v).collect();
        format!("exec [{}] {attrs}", command.join(" "))
    } else if p["httpGet"].is_object() {
        let h = &p["httpGet"];
        let scheme = s(&h["scheme"]).to_ascii_lowercase();
        let host = s(&h["host"]);
        let port = port(&h["port"]);
        let authority = if port.is_empty() {
            host.to_string()
        } else if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let path = s(&h["path"]);
        let path = if path.is_empty() || path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        format!("http-get {scheme}://{authority}{path} {attrs}")
    } else if p["tcpSocket"].is_object() {
        format!(
            "tcp-socket {}:{} {attrs}",
            s(&p["tcpSocket"]["host"]),
            port(&p["tcpSocket"]["port"])
        )
    } else if p["grpc"].is_object() {
        format!(
            "grpc <pod>:{} {} {attrs}",
            port(&p["grpc"]["port"]),
            s(&p["grpc"]["service"])
        )
    } else {
        format!("unknown {attrs}")
    }
}

fn environment(w: &mut Writer, pod: &Value, c: &Value) {
    let env = list(&c["env"]);
    if env.is_empty() {
        w.write(2, "Environment:\t<none>\n");
        return;
    }
    w.write(2, "Environment:\n");
    for e in env {
        let name = s(&e["name"]);
        let from = &e["valueFrom"];
        if !from.is_object() {
            for (i, line) in s(&e["value"]).split('\n').enumerate() {
                if i == 0 {
                    w.write(3, &format!("{name}:\t{line}\n"));
                } else {
                    w.write(3, &format!("\t{line}\n"));
                }
            }
            continue;
        }
        if from["fieldRef"].is_object() {
            let f = &from["fieldRef"];
            let path = s(&f["fieldPath"]);
            w.write(
                3,
                &format!(
                    "{name}:\t{} ({}:{path})\n",
                    field_value(pod, path),
                    s(&f["apiVersion"])
                ),
            );
        } else if from["resourceFieldRef"].is_object() {
            let resource = s(&from["resourceFieldRef"]["resource"]);
            let mut value = resource_value(c, &from["resourceFieldRef"]);
            if value == "0" && matches!(resource, "limits.cpu" | "limits.memory") {
                value = "node allocatable".into();
            }
            w.write(3, &format!("{name}:\t{value} ({resource})\n"));
        } else if from["secretKeyRef"].is_object() {
            let r = &from["secretKeyRef"];
            w.write(
                3,
                &format!(
                    "{name}:\t<set to the key '{}' in secret '{}'>\tOptional: {}\n",
                    s(&r["key"]),
                    s(&r["name"]),
                    r["optional"].as_bool().unwrap_or(false)
                ),
            );
        } else if from["configMapKeyRef"].is_object() {
            let r = &from["configMapKeyRef"];
            w.write(
                3,
                &format!(
                    "{name}:\t<set to the key '{}' of config map '{}'>\tOptional: {}\n",
                    s(&r["key"]),
                    s(&r["name"]),
                    r["optional"].as_bool().unwrap_or(false)
                ),
            );
        }
    }
}

/// The value of a downward-API field path, as the kubelet would fill it in.
fn field_value(pod: &Value, path: &str) -> String {
    let meta = &pod["metadata"];
    let keyed = |prefix: &str, map: &Value| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(s(&map[key]).to_string())
    };
    if let Some(value) = keyed("metadata.labels['", &meta["labels"]) {
        return value;
    }
    if let Some(value) = keyed("metadata.annotations['", &meta["annotations"]) {
        return value;
    }
    let value = match path {
        "metadata.name" => &meta["name"],
        "metadata.namespace" => &meta["namespace"],
        "metadata.uid" => &meta["uid"],
        "spec.nodeName" => &pod["spec"]["nodeName"],
        "spec.serviceAccountName" => &pod["spec"]["serviceAccountName"],
        "status.hostIP" => &pod["status"]["hostIP"],
        "status.podIP" => &pod["status"]["podIP"],
        _ => &Value::Null,
    };
    s(value).to_string()
}

/// A quantity string in Kubernetes' canonical form; text that is not a quantity stays as
/// it is.
fn canonical(text: &str) -> String {
    parse_quantity(text).map_or_else(|_| text.to_string(), |q| q.canonical())
}

/// A container's resource as the downward API gives it: CPU in units of the divisor
/// (whole cores by default), everything else in units of the divisor (bytes), rounded up.
fn resource_value(c: &Value, field: &Value) -> String {
    let resource = s(&field["resource"]);
    let Some((kind, name)) = resource.split_once('.') else {
        return String::new();
    };
    let quantity = parse_quantity(s(&c["resources"][kind][name])).unwrap_or_default();
    let divisor = parse_quantity(s(&field["divisor"]))
        .ok()
        .filter(|d| !d.is_zero())
        .unwrap_or_else(|| parse_quantity("1").unwrap_or_default());
    let value = if name == "cpu" {
        ceil_div(quantity.as_millis(), divisor.as_millis())
    } else {
        ceil_div(quantity.as_value(), divisor.as_value())
    };
    value.to_string()
}

fn ceil_div(n: i128, d: i128) -> i128 {
    if d == 0 {
        return 0;
    }
    let q = n / d;
    if n % d != 0 && (n > 0) == (d > 0) {
        q + 1
    } else {
        q
    }
}

pub(super) fn volumes(w: &mut Writer, volumes: &[Value]) {
    if volumes.is_empty() {
        w.write(0, "Volumes:\t<none>\n");
        return;
    }
    w.write(0, "Volumes:\n");
    for vol in volumes {
        w.write(1, &format!("{}:\n", s(&vol["name"])));
        if let Some(h) = vol.get("hostPath").filter(|h| h.is_object()) {
            let kind = match s(&h["type"]) {
                "" if h["type"].is_null() => "<none>".to_string(),
                t => t.to_string(),
            };
            w.write(
                2,
                &format!(
                    "Type:\tHostPath (bare host directory volume)\n    Path:\t{}\n    HostPathType:\t{kind}\n",
                    s(&h["path"])
                ),
            );
        } else if let Some(e) = vol.get("emptyDir").filter(|e| e.is_object()) {
            let size = parse_quantity(s(&e["sizeLimit"]))
                .ok()
                .filter(|q| q.as_millis() > 0)
                .map(|q| q.canonical())
                .unwrap_or_else(|| "<unset>".into());
            w.write(
                2,
                &format!(
                    "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:\t{}\n    SizeLimit:\t{size}\n",
                    s(&e["medium"])
                ),
            );
        } else if let Some(c) = vol.get("configMap").filter(|c| c.is_object()) {
            w.write(
                2,
                &format!(
                    "Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\t{}\n    Optional:\t{}\n",
                    s(&c["name"]),
                    c["optional"].as_bool().unwrap_or(false)
                ),
            );
        } else if let Some(c) = vol.get("secret").filter(|c| c.is_object()) {
            w.write(
                2,
                &format!(
                    "Type:\tSecret (a volume populated by a Secret)\n    SecretName:\t{}\n    Optional:\t{}\n",
                    s(&c["secretName"]),
                    c["optional"].as_bool().unwrap_or(false)
                ),
            );
        } else if let Some(c) = vol.get("persistentVolumeClaim").filter(|c| c.is_object()) {
            w.write(
                2,
                &format!(
                    "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n    ClaimName:\t{}\n    ReadOnly:\t{}\n",
                    s(&c["claimName"]),
                    c["readOnly"].as_bool().unwrap_or(false)
                ),
            );
        } else {
            w.write(1, "<unknown>\n");
        }
    }
}

/// The pod's QoS class: the server's, else worked out as Kubernetes does.
pub fn qos_class(pod: &Value) -> String {
    if let Some(q) = pod["status"]["qosClass"].as_str().filter(|q| !q.is_empty()) {
        return q.to_string();
    }
    let all: Vec<&Value> = list(&pod["spec"]["containers"])
        .iter()
        .chain(list(&pod["spec"]["initContainers"]))
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &all {
        let r = &c["resources"];
        let nonzero =
            |kind: &str, name: &str| parse_quantity(s(&r[kind][name])).is_ok_and(|q| !q.is_zero());
        for name in ["cpu", "memory"] {
            let (req, lim) = (nonzero("requests", name), nonzero("limits", name));
            any |= req || lim;
            let equal = parse_quantity(s(&r["requests"][name]))
                .ok()
                .map(|q| q.as_millis())
                == parse_quantity(s(&r["limits"][name]))
                    .ok()
                    .map(|q| q.as_millis());
            if !lim || (req && !equal) {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort".into()
    } else if guaranteed {
        "Guaranteed".into()
    } else {
        "Burstable".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn probes_in_one_line() {
        let http = json!({"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
            "timeoutSeconds": 1, "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 3});
        assert_eq!(
            describe_probe(&http),
            "http-get http://:8080/healthz delay=0s timeout=1s period=5s #success=1 #failure=3"
        );
        let exec = json!({"exec": {"command": ["cat", "/tmp/ready"]}, "initialDelaySeconds": 5,
            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3});
        assert_eq!(
            describe_probe(&exec),
            "exec [cat /tmp/ready] delay=5s timeout=1s period=10s #success=1 #failure=3"
        );
        let tcp = json!({"tcpSocket": {"port": "http"}});
        assert_eq!(
            describe_probe(&tcp),
            "tcp-socket :http delay=0s timeout=0s period=0s #success=0 #failure=0"
        );
    }

    #[test]
    fn qos_is_computed_when_the_server_did_not() {
        let pod = |resources: Value| json!({"spec": {"containers": [{"name": "a", "resources": resources}]}});
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&pod(
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}})
            )),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&pod(json!({"requests": {"cpu": "1"}}))),
            "Burstable"
        );
    }
}
