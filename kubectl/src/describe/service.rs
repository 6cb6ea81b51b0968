//! `kubectl describe service`, line for line as kubectl v1.33 lays it out
//! (`describeService`), with the endpoints read from the service's EndpointSlices.

use serde_json::Value;

use super::writer::{Writer, annotations_multiline, events, labels_multiline, list, s};

/// How many endpoints kubectl lists before `+ N more...`.
const MAX_ENDPOINTS: usize = 3;

pub fn describe_service(
    service: &Value,
    slices: &[Value],
    service_events: Option<&[Value]>,
    w: &mut Writer,
) {
    let meta = &service["metadata"];
    let spec = &service["spec"];
    w.write(0, &format!("Name:\t{}\n", s(&meta["name"])));
    w.write(0, &format!("Namespace:\t{}\n", s(&meta["namespace"])));
    labels_multiline(w, "Labels", &meta["labels"]);
    annotations_multiline(w, "Annotations", &meta["annotations"]);
    w.write(
        0,
        &format!("Selector:\t{}\n", format_labels(&spec["selector"])),
    );
    w.write(0, &format!("Type:\t{}\n", s(&spec["type"])));
    if let Some(policy) = spec["ipFamilyPolicy"].as_str() {
        w.write(0, &format!("IP Family Policy:\t{policy}\n"));
    }
    w.write(
        0,
        &format!("IP Families:\t{}\n", joined(&spec["ipFamilies"])),
    );
    w.write(0, &format!("IP:\t{}\n", s(&spec["clusterIP"])));
    w.write(0, &format!("IPs:\t{}\n", joined(&spec["clusterIPs"])));
    if !list(&spec["externalIPs"]).is_empty() {
        w.write(
            0,
            &format!("External IPs:\t{}\n", joined(&spec["externalIPs"])),
        );
    }
    if let Some(ip) = spec["loadBalancerIP"].as_str().filter(|ip| !ip.is_empty()) {
        w.write(0, &format!("IP:\t{ip}\n"));
    }
    if let Some(name) = spec["externalName"].as_str().filter(|n| !n.is_empty()) {
        w.write(0, &format!("External Name:\t{name}\n"));
    }
    let ingress = list(&service["status"]["loadBalancer"]["ingress"]);
    if !ingress.is_empty() {
        let addresses: Vec<&str> = ingress
            .iter()
            .map(|i| {
                i["ip"]
                    .as_str()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or(s(&i["hostname"]))
            })
            .collect();
        w.write(
            0,
            &format!("LoadBalancer Ingress:\t{}\n", addresses.join(", ")),
        );
    }
    for port in list(&spec["ports"]) {
        let name = s(&port["name"]);
        let shown = if name.is_empty() { "<unset>" } else { name };
        let protocol = s(&port["protocol"]);
        let number = &port["port"];
        w.write(0, &format!("Port:\t{shown}\t{number}/{protocol}\n"));
        let target = match &port["targetPort"] {
            Value::String(t) => t.clone(),
            Value::Null => "0".to_string(),
            other => other.to_string(),
        };
        w.write(0, &format!("TargetPort:\t{target}/{protocol}\n"));
        if let Some(node_port) = port["nodePort"].as_i64().filter(|p| *p != 0) {
            w.write(0, &format!("NodePort:\t{shown}\t{node_port}/{protocol}\n"));
        }
        w.write(
            0,
            &format!("Endpoints:\t{}\n", format_endpoint_slices(slices, name)),
        );
    }
    w.write(
        0,
        &format!("Session Affinity:\t{}\n", s(&spec["sessionAffinity"])),
    );
    if let Some(policy) = spec["externalTrafficPolicy"]
        .as_str()
        .filter(|p| !p.is_empty())
    {
        w.write(0, &format!("External Traffic Policy:\t{policy}\n"));
    }
    if let Some(policy) = spec["internalTrafficPolicy"].as_str() {
        w.write(0, &format!("Internal Traffic Policy:\t{policy}\n"));
    }
    if let Some(port) = spec["healthCheckNodePort"].as_i64().filter(|p| *p != 0) {
        w.write(0, &format!("HealthCheck NodePort:\t{port}\n"));
    }
    if !list(&spec["loadBalancerSourceRanges"]).is_empty() {
        w.write(
            0,
            &format!(
                "LoadBalancer Source Ranges:\t{}\n",
                joined(&spec["loadBalancerSourceRanges"])
            ),
        );
    }
    if let Some(service_events) = service_events {
        events(w, service_events);
    }
}

/// A list of strings joined by commas, or `<none>`.
fn joined(value: &Value) -> String {
    let items: Vec<&str> = list(value).iter().map(s).collect();
    if items.is_empty() {
        "<none>".to_string()
    } else {
        items.join(",")
    }
}

/// Go's `labels.FormatLabels`: `k=v,…` sorted by key, or `<none>`.
pub fn format_labels(map: &Value) -> String {
    let Some(map) = map.as_object().filter(|m| !m.is_empty()) else {
        return "<none>".to_string();
    };
    let mut pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}={}", s(v))).collect();
    pairs.sort();
    pairs.join(",")
}

/// `ip:port`, with an IPv6 address in brackets.
fn host_port(ip: &str, port: &Value) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// kubectl's `formatEndpointSlices`: the first address of each ready endpoint (ready
/// unless said otherwise) with the slice's port of this name (each endpoint alone where a
/// slice has no ports), the first three and how many more. As in kubectl, the list counts
/// as cut once three are shown and another endpoint follows, ready or not: three ready
/// and one unready print `+ 0 more...`.
pub fn format_endpoint_slices(slices: &[Value], port_name: &str) -> String {
    if slices.is_empty() {
        return "<none>".to_string();
    }
    let mut shown: Vec<String> = Vec::new();
    let mut more = false;
    let mut count: i64 = 0;
    let mut visit = |e: &Value, port: Option<&Value>| {
        if shown.len() == MAX_ENDPOINTS {
            more = true;
        }
        if e["conditions"]["ready"] == Value::Bool(false) {
            return;
        }
        if !more {
            let address = s(&e["addresses"][0]);
            shown.push(match port {
                Some(port) => host_port(address, port),
                None => address.to_string(),
            });
        }
        count += 1;
    };
    for slice in slices {
        let endpoints = list(&slice["endpoints"]);
        let ports = list(&slice["ports"]);
        if ports.is_empty() {
            for e in endpoints {
                visit(e, None);
            }
            continue;
        }
        for port in ports.iter().filter(|p| s(&p["name"]) == port_name) {
            for e in endpoints {
                visit(e, Some(&port["port"]));
            }
        }
    }
    let text = shown.join(",");
    if more {
        format!("{text} + {} more...", count - MAX_ENDPOINTS as i64)
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_of_a_port_three_then_a_count() {
        let slice = |ips: &[&str], ports: Value| {
            json!({"endpoints": ips.iter().map(|ip| json!({"addresses": [ip]})).collect::<Vec<_>>(),
                   "ports": ports})
        };
        let slices = [
            slice(
                &["10.0.0.1", "10.0.0.2"],
                json!([{"name": "http", "port": 8080}, {"name": "", "port": 9}]),
            ),
            slice(
                &["10.0.0.3", "fd00::4"],
                json!([{"name": "http", "port": 8080}]),
            ),
        ];
        assert_eq!(
            format_endpoint_slices(&slices, "http"),
            "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 1 more..."
        );
        assert_eq!(format_endpoint_slices(&slices, ""), "10.0.0.1:9,10.0.0.2:9");
        assert_eq!(format_endpoint_slices(&slices, "none"), "");
        let mut unready = slices[1].clone();
        unready["endpoints"][1]["conditions"] = json!({"ready": false});
        assert_eq!(
            format_endpoint_slices(&[slices[0].clone(), unready], "http"),
            "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 0 more..."
        );
        assert_eq!(format_endpoint_slices(&[], "http"), "<none>");
        let headless = [slice(&["10.0.0.1"], json!(null))];
        assert_eq!(format_endpoint_slices(&headless, "x"), "10.0.0.1");
        assert_eq!(format_labels(&json!({"b": "2", "a": "1"})), "a=1,b=2");
        assert_eq!(format_labels(&json!(null)), "<none>");
    }
}
