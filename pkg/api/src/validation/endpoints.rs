//! Endpoints (`core/v1`) and EndpointSlices (`discovery.k8s.io/v1`): what the endpoints
//! controller writes and a proxy or an older client reads.

use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::{Errors, FieldError, NameRule, child, index, object_meta};
use crate::names;

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
/// Kubernetes' limits for one slice.
const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 20000;

/// Validates an Endpoints object: addresses are IPs, ports are named when there are
/// several and have valid numbers and protocols.
pub fn validate_endpoints(ep: &Endpoints) -> Vec<FieldError> {
    let mut errs = Errors::default();
    object_meta(
        &ep.metadata,
        true,
        NameRule::Dns1123Subdomain,
        "metadata",
        &mut errs,
    );
    for (i, subset) in ep.subsets.iter().flatten().enumerate() {
        let path = index("subsets", i);
        let lists = [
            ("addresses", subset.addresses.as_deref()),
            ("notReadyAddresses", subset.not_ready_addresses.as_deref()),
        ];
        for (list, addresses) in lists {
            for (j, a) in addresses.unwrap_or_default().iter().enumerate() {
                let field = child(&index(&child(&path, list), j), "ip");
                errs.invalid_each(&field, &a.ip, names::is_valid_ip(&a.ip));
            }
        }
        let ports = subset.ports.as_deref().unwrap_or_default();
        for (j, p) in ports.iter().enumerate() {
            let pp = index(&child(&path, "ports"), j);
            port_fields(
                p.name.as_deref(),
                Some(p.port),
                p.protocol.as_deref(),
                ports.len() > 1,
                &pp,
                &mut errs,
            );
        }
    }
    errs.0
}

/// Validates an EndpointSlice: its address type, at most 1000 endpoints of 1 to 100
/// addresses each (IPs of that type), and its ports.
pub fn validate_endpoint_slice(slice: &EndpointSlice) -> Vec<FieldError> {
    let mut errs = Errors::default();
    object_meta(
        &slice.metadata,
        true,
        NameRule::Dns1123Subdomain,
        "metadata",
        &mut errs,
    );
    let address_type = slice.address_type.as_str();
    errs.one_of("addressType", address_type, ADDRESS_TYPES);
    if slice.endpoints.len() > MAX_ENDPOINTS {
        errs.push(FieldError::new(
            "endpoints",
            super::FieldErrorKind::Invalid,
            Some(slice.endpoints.len().to_string()),
            format!("must have at most {MAX_ENDPOINTS} items"),
        ));
    }
    for (i, ep) in slice.endpoints.iter().enumerate() {
        let path = child(&index("endpoints", i), "addresses");
        if ep.addresses.is_empty() || ep.addresses.len() > MAX_ADDRESSES {
            errs.push(FieldError::invalid_shown(
                &path,
                ep.addresses.len().to_string(),
                format!("must contain at least 1 and at most {MAX_ADDRESSES} addresses"),
            ));
        }
        for (j, a) in ep.addresses.iter().enumerate() {
            let field = index(&path, j);
            match address_type {
                "IPv4" if a.parse::<std::net::Ipv4Addr>().is_err() => {
                    errs.push(FieldError::invalid(
                        &field,
                        a,
                        "must be a valid IPv4 address",
                    ));
                }
                "IPv6" if a.parse::<std::net::Ipv6Addr>().is_err() => {
                    errs.push(FieldError::invalid(
                        &field,
                        a,
                        "must be a valid IPv6 address",
                    ));
                }
                "FQDN" => errs.invalid_each(&field, a, names::is_dns1123_subdomain(a)),
                _ => {}
            }
        }
    }
    let ports = slice.ports.as_deref().unwrap_or_default();
    if ports.len() > MAX_PORTS {
        errs.push(FieldError::invalid_shown(
            "ports",
            ports.len().to_string(),
            format!("must have at most {MAX_PORTS} items"),
        ));
    }
    for (i, p) in ports.iter().enumerate() {
        port_fields(
            p.name.as_deref(),
            p.port,
            p.protocol.as_deref(),
            false,
            &index("ports", i),
            &mut errs,
        );
    }
    errs.0
}

fn port_fields(
    name: Option<&str>,
    port: Option<i32>,
    protocol: Option<&str>,
    require_name: bool,
    path: &str,
    errs: &mut Errors,
) {
    match name.unwrap_or_default() {
        "" if require_name => errs.push(FieldError::required(child(path, "name"), "")),
        "" => {}
        n => errs.invalid_each(&child(path, "name"), n, names::is_dns1123_label(n)),
    }
    if let Some(port) = port {
        for m in names::is_valid_port_num(i64::from(port)) {
            errs.push(FieldError::invalid_number(
                child(path, "port"),
                i64::from(port),
                m,
            ));
        }
    }
    errs.one_of(
        &child(path, "protocol"),
        protocol.unwrap_or("TCP"),
        PROTOCOLS,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slices_check_addresses_against_their_type() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "default"},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["fe80::1"]}, {"addresses": []}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 0}],
        }))
        .unwrap();
        let got: Vec<String> = validate_endpoint_slice(&slice)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            vec![
                "endpoints[1].addresses[0]: Invalid value: \"fe80::1\": must be a valid IPv4 address",
                "endpoints[2].addresses: Invalid value: 0: must contain at least 1 and at most 100 addresses",
                "ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            ]
        );
    }

    #[test]
    fn endpoints_name_several_ports() {
        let ep: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "nope"}],
                "ports": [{"port": 80}, {"port": 81, "name": "b"}]}],
        }))
        .unwrap();
        let got: Vec<String> = validate_endpoints(&ep)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].starts_with("subsets[0].addresses[1].ip: Invalid value: \"nope\""));
        assert_eq!(got[1], "subsets[0].ports[0].name: Required value");
    }
}
