//! Discovery documents: what kubectl and client libraries read to learn which resources
//! exist and what the server can do.

use minik8s_api::resource::{self, ResourceInfo};
use serde_json::{Value, json};

/// The Kubernetes version whose core/v1 API this server speaks.
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";

pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0-minik8s.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// The named groups served: ours, and the alias it is also reachable as.
fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in resource::ALL.iter().filter(|r| !r.group.is_empty()) {
        if !out.iter().any(|(g, _)| *g == r.group) {
            out.push((r.group, r.version));
        }
    }
    for (alias, group) in resource::GROUP_ALIASES {
        if let Some((_, v)) = out.iter().find(|(g, _)| g == group).copied() {
            out.push((alias, v));
        }
    }
    out
}

fn group_entry(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv], "preferredVersion": gv})
}

pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups().iter().map(|(g, v)| group_entry(g, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(group: &str) -> Option<Value> {
    let (g, v) = groups().into_iter().find(|(g, _)| *g == group)?;
    let mut doc = group_entry(g, v);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// The resources of `/apis/{group}/{version}`, for our group or its alias.
pub fn group_resources(group: &str, version: &str) -> Option<Value> {
    if !groups().iter().any(|(g, v)| *g == group && *v == version) {
        return None;
    }
    let canonical = resource::canonical_group(group);
    Some(resource_list(
        &format!("{group}/{version}"),
        resource::ALL
            .iter()
            .filter(|r| r.group == canonical && r.version == version),
    ))
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Namespaces are deleted one at a time, as in Kubernetes.
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

fn resource_entry(r: &ResourceInfo) -> Value {
    let mut entry = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": if r.plural == "namespaces" { NAMESPACE_VERBS } else { VERBS },
        "shortNames": r.short_names,
    });
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    entry
}

pub fn core_v1_resources() -> Value {
    resource_list("v1", resource::ALL.iter().filter(|r| r.group.is_empty()))
}

fn resource_list<'a>(group_version: &str, list: impl Iterator<Item = &'a ResourceInfo>) -> Value {
    let mut resources = Vec::new();
    for r in list {
        resources.push(resource_entry(r));
        if r.has_status {
            resources.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r.has_scale {
            resources.push(json!({
                "name": format!("{}/scale", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

/// Changes whenever the document changes, so clients' caches follow.
fn openapi_hash(doc: &Value) -> String {
    let doc = serde_json::to_vec(doc).unwrap_or_default();
    // FNV-1a: a stable content hash without another dependency.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in doc {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// The OpenAPI v3 root: where each group-version's document is.
pub fn openapi_root() -> Value {
    let mut paths = serde_json::Map::new();
    paths.insert(
        "api/v1".to_string(),
        json!({"serverRelativeURL": format!("/openapi/v3/api/v1?hash={}", openapi_hash(&openapi_core_v1()))}),
    );
    for (g, v) in groups() {
        if let Some(doc) = openapi_group(g, v) {
            paths.insert(
                format!("apis/{g}/{v}"),
                json!({"serverRelativeURL": format!("/openapi/v3/apis/{g}/{v}?hash={}", openapi_hash(&doc))}),
            );
        }
    }
    json!({"paths": paths})
}

pub fn openapi_group(group: &str, version: &str) -> Option<Value> {
    groups()
        .iter()
        .any(|(g, v)| *g == group && *v == version)
        .then(|| {
            let canonical = resource::canonical_group(group);
            openapi_document(
                &format!("/apis/{group}/{version}"),
                group,
                resource::ALL
                    .iter()
                    .filter(|r| r.group == canonical && r.version == version),
            )
        })
}

/// A small OpenAPI v3 document for `api/v1`. It describes the write operations and their
/// `fieldValidation` parameter, which is what tells kubectl that this server checks
/// fields itself (so `kubectl create` needs no client-side schema). It carries no
/// schemas: clients that need full schemas (such as `kubectl explain`) get none here.
pub fn openapi_core_v1() -> Value {
    openapi_document(
        "/api/v1",
        "",
        resource::ALL.iter().filter(|r| r.group.is_empty()),
    )
}

fn openapi_document<'a>(
    prefix: &str,
    group: &str,
    list: impl Iterator<Item = &'a ResourceInfo>,
) -> Value {
    let mut paths = serde_json::Map::new();
    let params = json!([
        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true},
         "description": "Ignore, Warn or Strict: how to treat fields the server does not know."},
        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}}
    ]);
    for r in list {
        let gvk = json!({"group": group, "version": r.version, "kind": r.kind});
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", r.kind),
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
            })
        };
        let name_path = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        let coll_path = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{prefix}/{}", r.plural)
        };
        paths.insert(name_path, json!({"put": op("put"), "patch": op("patch")}));
        paths.insert(coll_path, json!({"post": op("post")}));
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "MiniK8s", "version": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0")},
        "paths": paths,
        "components": {"schemas": {}},
    })
}
