//! Table rows for services, endpoints and endpoint slices, as Kubernetes' printers make
//! them: `kubectl get svc`, `get ep`, `get endpointslices`.

use minik8s_api::TableColumnDefinition as Col;
use serde_json::{Value, json};

use super::{age, name_column};
use crate::object;

/// How many addresses or ports a cell lists before `+ N more...`.
const SHOWN: usize = 3;

pub(super) fn service_columns(age: Col) -> Vec<Col> {
    vec![
        name_column(),
        Col::new("Type", "string", "", 0, "How the service is exposed."),
        Col::new(
            "Cluster-IP",
            "string",
            "",
            0,
            "The virtual IP of the service inside the cluster.",
        ),
        Col::new(
            "External-IP",
            "string",
            "",
            0,
            "Addresses outside the cluster the service is reachable at.",
        ),
        Col::new("Port(s)", "string", "", 0, "The ports the service exposes."),
        age,
        Col::new(
            "Selector",
            "string",
            "",
            1,
            "The labels of the pods the service routes traffic to.",
        ),
    ]
}

pub(super) fn endpoints_columns(age: Col) -> Vec<Col> {
    vec![
        name_column(),
        Col::new(
            "Endpoints",
            "string",
            "",
            0,
            "The ready addresses and ports of the service.",
        ),
        age,
    ]
}

pub(super) fn endpoint_slice_columns(age: Col) -> Vec<Col> {
    vec![
        name_column(),
        Col::new(
            "AddressType",
            "string",
            "",
            0,
            "The type of address carried by this slice.",
        ),
        Col::new("Ports", "string", "", 0, "The ports of this slice."),
        Col::new(
            "Endpoints",
            "string",
            "",
            0,
            "The addresses of the endpoints of this slice.",
        ),
        age,
    ]
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// `a,b,c + 2 more...`, or `empty` when there is nothing.
fn list_with_more(list: &[String], count: usize, empty: &str) -> String {
    let shown = list.join(",");
    if count > SHOWN {
        format!("{shown} + {} more...", count - SHOWN)
    } else if shown.is_empty() {
        empty.to_string()
    } else {
        shown
    }
}

pub(super) fn service_cells(svc: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let spec = &svc["spec"];
    let ty = spec["type"].as_str().unwrap_or("");
    let cluster_ip = strings(&spec["clusterIPs"])
        .first()
        .map_or("<none>".to_string(), ToString::to_string);
    let external_ips = strings(&spec["externalIPs"]).join(",");
    let external = match ty {
        "ClusterIP" | "NodePort" if !external_ips.is_empty() => external_ips,
        "ClusterIP" | "NodePort" => "<none>".to_string(),
        "LoadBalancer" => {
            let mut ips: Vec<&str> = svc["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str().or_else(|| i["hostname"].as_str()))
                .collect();
            ips.extend(strings(&spec["externalIPs"]));
            if ips.is_empty() {
                "<pending>".to_string()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => spec["externalName"].as_str().unwrap_or("").to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let (port, proto) = (
                p["port"].as_i64().unwrap_or(0),
                p["protocol"].as_str().unwrap_or(""),
            );
            match p["nodePort"].as_i64().filter(|n| *n > 0) {
                Some(np) => format!("{port}:{np}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    let selector: Vec<String> = spec["selector"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    let selector = if selector.is_empty() {
        "<none>".to_string()
    } else {
        selector.join(",")
    };
    vec![
        json!(object::name(svc)),
        json!(ty),
        json!(cluster_ip),
        json!(external),
        json!(ports),
        json!(age(object::meta_str(svc, "creationTimestamp"), now)),
        json!(selector),
    ]
}

/// Kubernetes' `formatEndpoints`: `IP:port` for each ready address and port, the first
/// three of them.
pub(super) fn endpoints_cells(ep: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let subsets = ep["subsets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let text = if subsets.is_empty() {
        "<none>".to_string()
    } else {
        let mut list = Vec::new();
        let mut count = 0;
        for ss in subsets {
            let addresses: Vec<&str> = ss["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["ip"].as_str())
                .collect();
            let ports = ss["ports"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            if ports.is_empty() {
                count += addresses.len();
                list.extend(
                    addresses
                        .iter()
                        .take(SHOWN.saturating_sub(list.len()))
                        .map(ToString::to_string),
                );
            }
            for p in ports {
                count += addresses.len();
                let port = p["port"].as_i64().unwrap_or(0);
                for ip in &addresses {
                    if list.len() == SHOWN {
                        break;
                    }
                    list.push(host_port(ip, port));
                }
            }
        }
        list_with_more(&list, count, "")
    };
    vec![
        json!(object::name(ep)),
        json!(text),
        json!(age(object::meta_str(ep, "creationTimestamp"), now)),
    ]
}

fn host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

pub(super) fn endpoint_slice_cells(slice: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let ports: Vec<&Value> = slice["ports"].as_array().into_iter().flatten().collect();
    let port_list: Vec<String> = ports
        .iter()
        .take(SHOWN)
        .map(|p| match (p["port"].as_i64(), p["name"].as_str()) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    let addresses: Vec<&str> = slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| strings(&e["addresses"]))
        .collect();
    let address_list: Vec<String> = addresses
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect();
    vec![
        json!(object::name(slice)),
        json!(slice["addressType"].as_str().unwrap_or("")),
        json!(list_with_more(&port_list, ports.len(), "<unset>")),
        json!(list_with_more(&address_list, addresses.len(), "<unset>")),
        json!(age(object::meta_str(slice, "creationTimestamp"), now)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_rows_read_like_kubectl() {
        let now = jiff::Timestamp::now();
        let svc = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort",
            "clusterIPs": ["10.96.3.4"], "selector": {"app": "web"},
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
        let cells = service_cells(&svc, now);
        assert_eq!(
            cells[1..5],
            [
                json!("NodePort"),
                json!("10.96.3.4"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP")
            ]
        );
        assert_eq!(cells[6], json!("app=web"));
        let headless = json!({"metadata": {"name": "h"}, "spec": {"type": "ClusterIP", "clusterIPs": ["None"]}});
        assert_eq!(
            service_cells(&headless, now)[2..5],
            [json!("None"), json!("<none>"), json!("<none>")]
        );
    }

    #[test]
    fn endpoints_show_three_and_count_the_rest() {
        let now = jiff::Timestamp::now();
        let ep = json!({"metadata": {"name": "web"}, "subsets": [{
            "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}],
            "ports": [{"port": 80}]}]});
        assert_eq!(
            endpoints_cells(&ep, now)[1],
            json!("10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...")
        );
        assert_eq!(
            endpoints_cells(&json!({"metadata": {"name": "x"}}), now)[1],
            json!("<none>")
        );
        let slice = json!({"metadata": {"name": "web-x"}, "addressType": "IPv4",
            "ports": [{"port": 80, "name": "http"}], "endpoints": [{"addresses": ["10.0.0.1"]}]});
        assert_eq!(
            endpoint_slice_cells(&slice, now)[1..4],
            [json!("IPv4"), json!("80"), json!("10.0.0.1")]
        );
        let empty = json!({"metadata": {"name": "web-y"}, "addressType": "IPv4"});
        assert_eq!(
            endpoint_slice_cells(&empty, now)[2..4],
            [json!("<unset>"), json!("<unset>")]
        );
    }
}
