//! `kubectl expose pod NAME`: a Service over what the pod's labels select, built as the
//! real kubectl builds it (`ExposeServiceOptions.createService`): the selector and labels
//! are the pod's, the ports are `--port` or the pod's container ports (named `port-N`
//! when there are several), the target port is `--target-port` or the port itself.

use std::collections::BTreeMap;

use clap::Args;
use minik8s_api::resource::{PODS, SERVICES};
use minik8s_client::DynamicApi;
use serde_json::{Map, Value, json};

use crate::create::{parse_output, post_params, report};
use crate::error::{Error, Result};
use crate::resources;
use crate::session::{Io, Session};

#[derive(Args, Debug, Default)]
pub struct ExposeArgs {
    /// TYPE NAME, or TYPE/NAME (pods).
    #[arg(value_name = "RESOURCE")]
    pub resources: Vec<String>,

    /// The port the service serves on; the pod's container ports when not given.
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,

    /// The port (number or name) on the pods that traffic goes to; the service port
    /// when not given.
    #[arg(long, value_name = "PORT")]
    pub target_port: Option<String>,

    /// The service's name; the pod's name when not given.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// ClusterIP (default), NodePort, LoadBalancer or ExternalName.
    #[arg(long = "type", value_name = "TYPE")]
    pub service_type: Option<String>,

    /// TCP, UDP or SCTP; the container ports' protocols when not given.
    #[arg(long, value_name = "PROTOCOL")]
    pub protocol: Option<String>,

    /// Labels of the service (`k=v,…`); the pod's labels when not given.
    #[arg(short = 'l', long, value_name = "LABELS")]
    pub labels: Option<String>,

    /// The service's selector (`k=v,…`); the pod's labels when not given.
    #[arg(long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// The cluster IP to ask for, or None for a headless service.
    #[arg(long, value_name = "IP")]
    pub cluster_ip: Option<String>,

    /// An external IP the service also answers on.
    #[arg(long, value_name = "IP")]
    pub external_ip: Option<String>,

    /// None or ClientIP.
    #[arg(long, value_name = "AFFINITY")]
    pub session_affinity: Option<String>,

    /// Output format: name, json or yaml (default: `service/NAME exposed`).
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
}

const USAGE: &str = "You must provide one or more resources by argument or filename.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'";

pub async fn run(args: ExposeArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    let format = parse_output(args.output.as_deref())?;
    if args.resources.is_empty() {
        return Err(Error::msg(USAGE));
    }
    let selections = resources::parse(&args.resources, "expose")?;
    if selections.iter().all(|s| s.names.is_empty()) {
        return Err(Error::msg(
            "resource(s) were provided, but no name was specified",
        ));
    }
    let client = session.client()?;
    let namespace = session.namespace()?;
    let pods = DynamicApi::new(client.clone(), &PODS, Some(namespace.clone()));
    let services = DynamicApi::new(client, &SERVICES, Some(namespace));
    let params = post_params("strict")?;
    let mut errors = Vec::new();
    for selection in &selections {
        if selection.resource != &PODS {
            errors.push(Error::msg(format!(
                "cannot expose a {}: this kubectl exposes pods",
                selection.resource.kind
            )));
            continue;
        }
        for name in &selection.names {
            let pod = match pods.get(name).await {
                Ok(pod) => pod,
                Err(e) => {
                    errors.push(e.into());
                    continue;
                }
            };
            let service = match service_for_pod(&pod, &args) {
                Ok(service) => service,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            match services.create_with(&service, &params).await {
                Ok(created) => report(&created, &SERVICES, "exposed", format, io)?,
                Err(e) => errors.push(e.into()),
            }
        }
    }
    Error::collect(errors)
}

/// `k=v,k2=v2` as a map; kubectl's `parseLabels`.
fn parse_labels(text: &str) -> Result<Map<String, Value>> {
    let mut map = Map::new();
    for pair in text.split(',') {
        match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                map.insert(k.to_string(), Value::String(v.to_string()));
            }
            _ => return Err(Error::msg(format!("invalid label spec: {pair}"))),
        }
    }
    Ok(map)
}

/// The Service the real kubectl creates for `expose pod`.
pub fn service_for_pod(pod: &Value, args: &ExposeArgs) -> Result<Value> {
    let pod_labels = pod["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let selector = match args.selector.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => parse_labels(s)?,
        None if pod_labels.is_empty() => {
            return Err(Error::msg(
                "couldn't retrieve selectors via --selector flag or introspection: the pod has no labels and cannot be exposed",
            ));
        }
        None => pod_labels.clone(),
    };
    let labels = match args.labels.as_deref().filter(|l| !l.is_empty()) {
        Some(l) => parse_labels(l)?,
        None => pod_labels,
    };
    // The container ports, in order, and each number's protocols.
    let mut container_ports: Vec<String> = Vec::new();
    let mut protocols: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        for p in c["ports"].as_array().into_iter().flatten() {
            let Some(number) = p["containerPort"].as_i64() else {
                continue;
            };
            let number = number.to_string();
            let protocol = p["protocol"].as_str().unwrap_or("TCP").to_string();
            let known = protocols.entry(number.clone()).or_default();
            if !known.contains(&protocol) {
                known.push(protocol);
            }
            // Each number once, however many protocols it has.
            if !container_ports.contains(&number) {
                container_ports.push(number);
            }
        }
    }
    let ports: Vec<String> = match args.port.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => p.split(',').map(|p| p.trim().to_string()).collect(),
        None => container_ports,
    };
    if ports.is_empty() {
        return Err(Error::msg(
            "couldn't find port via --port flag or introspection",
        ));
    }
    let protocol_flag = args.protocol.as_deref().filter(|p| !p.is_empty());
    let mut service_ports: Vec<Value> = Vec::new();
    for (i, text) in ports.iter().enumerate() {
        let number: i64 = text
            .parse()
            .map_err(|_| Error::msg(format!("strconv.Atoi: parsing {text:?}: invalid syntax")))?;
        let name = if ports.len() > 1 {
            format!("port-{}", i + 1)
        } else {
            String::new()
        };
        let port = |name: &str, protocol: Option<&str>| {
            let mut p = json!({"port": number});
            if !name.is_empty() {
                p["name"] = json!(name);
            }
            if let Some(protocol) = protocol.filter(|p| !p.is_empty()) {
                p["protocol"] = json!(protocol);
            }
            p
        };
        match (protocol_flag, protocols.get(text)) {
            (None, Some(found)) if found.len() > 1 => {
                for protocol in found {
                    let name = format!("port-{}-{}", i + 1, protocol.to_lowercase());
                    service_ports.push(port(&name, Some(protocol)));
                }
            }
            (None, Some(found)) => {
                service_ports.push(port(&name, found.first().map(String::as_str)))
            }
            (flag, _) => service_ports.push(port(&name, flag)),
        }
    }
    match args.target_port.as_deref().filter(|t| !t.is_empty()) {
        Some(target) => {
            service_ports[0]["targetPort"] = match target.parse::<i64>() {
                Ok(n) => json!(n),
                Err(_) => json!(target),
            };
        }
        None => {
            for p in &mut service_ports {
                p["targetPort"] = p["port"].clone();
            }
        }
    }
    let name = args
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| pod["metadata"]["name"].as_str().unwrap_or_default().into());
    let mut metadata = json!({"name": name});
    if !labels.is_empty() {
        metadata["labels"] = Value::Object(labels);
    }
    let mut spec = json!({"ports": service_ports, "selector": selector});
    if let Some(ip) = args.external_ip.as_deref().filter(|i| !i.is_empty()) {
        spec["externalIPs"] = json!([ip]);
    }
    if let Some(t) = args.service_type.as_deref().filter(|t| !t.is_empty()) {
        spec["type"] = json!(t);
    }
    if let Some(a) = args.session_affinity.as_deref().filter(|a| !a.is_empty()) {
        if a != "None" && a != "ClientIP" {
            return Err(Error::msg(format!("unknown session affinity: {a}")));
        }
        spec["sessionAffinity"] = json!(a);
    }
    if let Some(ip) = args.cluster_ip.as_deref().filter(|i| !i.is_empty()) {
        spec["clusterIP"] = json!(ip);
    }
    Ok(json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ports: Value) -> Value {
        json!({"metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
               "spec": {"containers": [{"name": "c", "ports": ports}]}})
    }

    #[test]
    fn one_port_from_the_flags() {
        let args = ExposeArgs {
            port: Some("80".into()),
            target_port: Some("http".into()),
            service_type: Some("NodePort".into()),
            name: Some("front".into()),
            ..ExposeArgs::default()
        };
        let s = service_for_pod(
            &pod(json!([{"containerPort": 8080, "name": "http"}])),
            &args,
        )
        .unwrap();
        assert_eq!(s["metadata"]["name"], "front");
        assert_eq!(
            s["metadata"]["labels"],
            json!({"app": "web", "tier": "front"})
        );
        assert_eq!(
            s["spec"]["selector"],
            json!({"app": "web", "tier": "front"})
        );
        assert_eq!(s["spec"]["type"], "NodePort");
        assert_eq!(
            s["spec"]["ports"],
            json!([{"port": 80, "targetPort": "http"}])
        );
    }

    #[test]
    fn the_pods_ports_named_when_several() {
        let s = service_for_pod(
            &pod(
                json!([{"containerPort": 8080}, {"containerPort": 53, "protocol": "UDP"},
                         {"containerPort": 53, "protocol": "TCP"}]),
            ),
            &ExposeArgs::default(),
        )
        .unwrap();
        assert_eq!(
            s["spec"]["ports"],
            json!([
                {"name": "port-1", "port": 8080, "protocol": "TCP", "targetPort": 8080},
                {"name": "port-2-udp", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "port-2-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            ])
        );
        let e = service_for_pod(&pod(json!([])), &ExposeArgs::default()).unwrap_err();
        assert_eq!(
            e.render(),
            "error: couldn't find port via --port flag or introspection\n"
        );
    }
}
