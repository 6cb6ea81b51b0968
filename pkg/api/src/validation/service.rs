//! Services: Kubernetes' `ValidateService` and `ValidateServiceUpdate`, for the types
//! MiniK8s serves (ClusterIP, NodePort, headless, ExternalName; LoadBalancer is accepted and
//! served as a NodePort). Node port ranges and cluster IP ranges are the API server's
//! settings, so they are checked where those are allocated, not here.

use std::collections::HashSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Errors, FieldError, NameRule, child, index, label_map, object_meta, quote};
use crate::names;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const AFFINITIES: &[&str] = &["ClientIP", "None"];
const TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
/// The longest `sessionAffinityConfig.clientIP.timeoutSeconds`: one day.
const MAX_AFFINITY_TIMEOUT: i32 = 86400;

/// Validates a defaulted service.
pub fn validate_service(svc: &Service) -> Vec<FieldError> {
    let mut errs = Errors::default();
    object_meta(
        &svc.metadata,
        true,
        NameRule::Dns1035Label,
        "metadata",
        &mut errs,
    );
    let empty = ServiceSpec::default();
    let spec = svc.spec.as_ref().unwrap_or(&empty);
    spec_errors(spec, &mut errs);
    errs.0
}

/// Validates an update: what [`validate_service`] checks, and a cluster IP, once set,
/// stays (unless the service is or becomes an ExternalName one, which has none).
pub fn validate_service_update(old: &Service, new: &Service) -> Vec<FieldError> {
    let mut errs = super::validate_object_meta_update(&old.metadata, &new.metadata);
    let empty = ServiceSpec::default();
    let (o, n) = (
        old.spec.as_ref().unwrap_or(&empty),
        new.spec.as_ref().unwrap_or(&empty),
    );
    let external = |s: &ServiceSpec| s.type_.as_deref() == Some("ExternalName");
    let old_ip = o.cluster_ip.as_deref().unwrap_or_default();
    if !external(n) && !external(o) && !old_ip.is_empty() {
        let new_ip = n.cluster_ip.as_deref().unwrap_or_default();
        if new_ip != old_ip {
            let shown = serde_json::to_string(n.cluster_ips.as_deref().unwrap_or_default())
                .unwrap_or_default();
            errs.push(FieldError::invalid_shown(
                "spec.clusterIPs[0]",
                shown,
                "may not change once set",
            ));
        }
    }
    errs.extend(validate_service(new));
    errs
}

fn spec_errors(spec: &ServiceSpec, errs: &mut Errors) {
    let ty = spec.type_.as_deref().unwrap_or_default();
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or_default();
    let headless = cluster_ip == "None";
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    match ty {
        "NodePort" | "LoadBalancer" if headless => errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            cluster_ip,
            format!("may not be set to 'None' for {ty} services"),
        )),
        "ExternalName" => {
            if !cluster_ip.is_empty() {
                errs.push(FieldError::forbidden(
                    "spec.clusterIP",
                    "may not be set for ExternalName services",
                ));
            }
            match spec.external_name.as_deref().unwrap_or_default() {
                "" => errs.push(FieldError::required("spec.externalName", "")),
                name => {
                    let bare = name.strip_suffix('.').unwrap_or(name);
                    errs.invalid_each("spec.externalName", name, names::is_dns1123_subdomain(bare));
                }
            }
        }
        _ => {}
    }

    let mut port_names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        service_port(
            port,
            ports.len() > 1,
            &mut port_names,
            &index("spec.ports", i),
            errs,
        );
    }
    if let Some(selector) = &spec.selector {
        label_map(selector, "spec.selector", errs);
    }

    let affinity = spec.session_affinity.as_deref().unwrap_or_default();
    errs.one_of("spec.sessionAffinity", affinity, AFFINITIES);
    let affinity_config = spec.session_affinity_config.as_ref();
    match affinity {
        "ClientIP" => {
            let field = "spec.sessionAffinityConfig";
            match affinity_config.and_then(|c| c.client_ip.as_ref()) {
                None => errs.push(FieldError::required(
                    child(field, "clientIP"),
                    "when session affinity type is ClientIP",
                )),
                Some(c) => {
                    let timeout = c.timeout_seconds.unwrap_or(0);
                    if !(1..=MAX_AFFINITY_TIMEOUT).contains(&timeout) {
                        errs.push(FieldError::invalid_number(
                            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                            i64::from(timeout),
                            format!("must be greater than 0 and less than {MAX_AFFINITY_TIMEOUT}"),
                        ));
                    }
                }
            }
        }
        "None" if affinity_config.is_some() => errs.push(FieldError::forbidden(
            "spec.sessionAffinityConfig",
            "must not be set when session affinity is None",
        )),
        _ => {}
    }

    if !cluster_ip.is_empty() && !headless && cluster_ip.parse::<IpAddr>().is_err() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            cluster_ip,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        errs.invalid_each(&index("spec.externalIPs", i), ip, names::is_valid_ip(ip));
    }

    errs.one_of("spec.type", ty, TYPES);
    if ty == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if port.node_port.unwrap_or(0) != 0 {
                errs.push(FieldError::forbidden(
                    child(&index("spec.ports", i), "nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }

    // One node port per protocol, one (port, protocol) pair per service.
    let mut node_ports = HashSet::new();
    let mut pairs = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let protocol = port.protocol.as_deref().unwrap_or_default();
        let path = index("spec.ports", i);
        if let Some(np) = port.node_port.filter(|n| *n != 0)
            && !node_ports.insert((protocol, np))
        {
            errs.push(FieldError::duplicate_shown(
                child(&path, "nodePort"),
                np.to_string(),
            ));
        }
        if !pairs.insert((protocol, port.port)) {
            errs.push(FieldError::duplicate_shown(
                path,
                go_port_key(protocol, port.port),
            ));
        }
    }

    let externally_accessible = matches!(ty, "NodePort" | "LoadBalancer")
        || (ty == "ClusterIP" && spec.external_ips.as_ref().is_some_and(|i| !i.is_empty()));
    let external_policy = spec.external_traffic_policy.as_deref().unwrap_or_default();
    if !externally_accessible {
        if !external_policy.is_empty() {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                external_policy,
                "may only be set for externally-accessible services",
            ));
        }
    } else {
        errs.one_of(
            "spec.externalTrafficPolicy",
            external_policy,
            TRAFFIC_POLICIES,
        );
    }
    match spec.internal_traffic_policy.as_deref() {
        None if ty != "ExternalName" => errs.push(FieldError::required(
            "spec.internalTrafficPolicy",
            "must be specified when spec.type is not ExternalName",
        )),
        None => {}
        Some(p) => errs.one_of("spec.internalTrafficPolicy", p, TRAFFIC_POLICIES),
    }
}

fn service_port(
    port: &ServicePort,
    require_name: bool,
    seen: &mut HashSet<String>,
    path: &str,
    errs: &mut Errors,
) {
    let name = port.name.as_deref().unwrap_or_default();
    let name_path = child(path, "name");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(name_path, ""));
    } else if !name.is_empty() {
        errs.invalid_each(&name_path, name, names::is_dns1123_label(name));
        if !seen.insert(name.to_string()) {
            errs.push(FieldError::duplicate(name_path, name));
        }
    }
    for m in names::is_valid_port_num(i64::from(port.port)) {
        errs.push(FieldError::invalid_number(
            child(path, "port"),
            i64::from(port.port),
            m,
        ));
    }
    errs.one_of(
        &child(path, "protocol"),
        port.protocol.as_deref().unwrap_or_default(),
        PROTOCOLS,
    );
    let target = child(path, "targetPort");
    match &port.target_port {
        Some(IntOrString::Int(n)) => {
            for m in names::is_valid_port_num(i64::from(*n)) {
                errs.push(FieldError::invalid_number(&target, i64::from(*n), m));
            }
        }
        Some(IntOrString::String(s)) => errs.invalid_each(&target, s, names::is_valid_port_name(s)),
        None => {}
    }
}

/// How Kubernetes shows the (protocol, port) key of a duplicate service port: Go's `%#v` of
/// its internal `ServicePort` with only those two fields set.
fn go_port_key(protocol: &str, port: i32) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        quote(protocol)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        let mut svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": spec,
        }))
        .unwrap();
        crate::defaults::default_service(&mut svc);
        svc
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_defaulted_service_is_valid() {
        let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        assert_eq!(messages(&validate_service(&svc)), Vec::<String>::new());
        let headless = service(json!({"clusterIP": "None", "selector": {"app": "web"}}));
        assert_eq!(messages(&validate_service(&headless)), Vec::<String>::new());
        let np = service(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}));
        assert_eq!(messages(&validate_service(&np)), Vec::<String>::new());
    }

    #[test]
    fn each_bad_field_is_named_as_kubernetes_names_it() {
        let svc = service(json!({
            "ports": [
                {"name": "http", "port": 80, "nodePort": 30080},
                {"name": "http", "port": 80, "protocol": "ICMP"},
                {"port": 70000, "targetPort": "Bad_Name"},
            ],
            "sessionAffinity": "Sticky",
        }));
        let got = messages(&validate_service(&svc));
        for want in [
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
            "spec.ports[1].name: Duplicate value: \"http\"",
            "spec.ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.ports[2].name: Required value",
            "spec.ports[2].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
        ] {
            assert!(
                got.iter().any(|g| g == want),
                "missing {want:?} in {got:#?}"
            );
        }
        assert!(
            got.iter()
                .any(|g| g.starts_with("spec.ports[2].targetPort: Invalid value: \"Bad_Name\"")),
            "{got:#?}"
        );
    }

    #[test]
    fn duplicate_ports_show_the_go_key() {
        let svc = service(json!({"ports": [
            {"name": "a", "port": 443}, {"name": "b", "port": 443},
        ]}));
        assert_eq!(
            messages(&validate_service(&svc)),
            vec![
                "spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:443, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}"
            ]
        );
    }

    #[test]
    fn names_are_dns1035_labels_and_ports_are_required() {
        let mut svc = service(json!({}));
        svc.metadata.name = Some("9web".into());
        let got = messages(&validate_service(&svc));
        assert!(got[0].starts_with("metadata.name: Invalid value: \"9web\": a DNS-1035 label"));
        assert!(
            got.contains(&"spec.ports: Required value".to_string()),
            "{got:?}"
        );
    }

    #[test]
    fn headless_node_ports_and_policies() {
        let svc = service(json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 1}]}));
        assert!(messages(&validate_service(&svc)).contains(
            &"spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"
                .to_string()
        ));
        let svc = service(json!({"externalTrafficPolicy": "Local", "ports": [{"port": 1}]}));
        assert_eq!(
            messages(&validate_service(&svc)),
            vec![
                "spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services"
            ]
        );
    }

    #[test]
    fn a_cluster_ip_may_not_change_once_set() {
        let old = service(json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}));
        let mut new = old.clone();
        let spec = new.spec.as_mut().unwrap();
        spec.cluster_ip = Some("10.96.0.11".into());
        spec.cluster_ips = Some(vec!["10.96.0.11".into()]);
        assert_eq!(
            messages(&validate_service_update(&old, &new)),
            vec!["spec.clusterIPs[0]: Invalid value: [\"10.96.0.11\"]: may not change once set"]
        );
    }
}
