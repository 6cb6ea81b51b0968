//! Writes `generated.rs`: [`super::KINDS`] from the list below, and the field table of
//! every k8s-pb message reachable from it, with each field's JSON name and whether
//! Kubernetes requires it.
//!
//! k8s-pb has no serde and keeps no JSON names (prost turns `hostPID` into `host_pid`
//! and `podIPs` into `pod_i_ps`); k8s-openapi has both, generated from the same
//! Kubernetes types. Fields are matched by their name without underscores and case,
//! which is how both crates derive Rust names from the one Kubernetes name. Reading the
//! two crates' sources here, rather than keeping a table by hand, keeps the conversion
//! exactly as wide as the generated types: a field k8s-pb gains appears on the next
//! regeneration, and this test fails until it is regenerated.
//!
//! `MINIK8S_REGENERATE=1 cargo test -p minik8s-apiserver protobuf::codegen` rewrites the
//! file; without it the test fails when the file is out of date.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// The kinds served in protobuf, one line each: the k8s-pb message, `apiVersion`,
/// `kind`. Their lists (`PodList`) follow. The list is here rather than in `mod.rs` so
/// that the crate compiles before the new kind's conversions are generated.
#[rustfmt::skip]
const KINDS: &[(&str, &str, &str)] = &[
    ("api::core::v1::Namespace", "v1", "Namespace"),
    ("api::core::v1::Pod", "v1", "Pod"),
    ("api::core::v1::Node", "v1", "Node"),
    ("api::core::v1::Event", "v1", "Event"),
    ("api::core::v1::Service", "v1", "Service"),
    ("api::core::v1::Endpoints", "v1", "Endpoints"),
    ("api::discovery::v1::EndpointSlice", "discovery.k8s.io/v1", "EndpointSlice"),
    ("api::core::v1::ConfigMap", "v1", "ConfigMap"),
    ("api::core::v1::Secret", "v1", "Secret"),
    ("api::core::v1::ReplicationController", "v1", "ReplicationController"),
    ("api::apps::v1::Deployment", "apps/v1", "Deployment"),
    ("api::apps::v1::ReplicaSet", "apps/v1", "ReplicaSet"),
    ("api::apps::v1::StatefulSet", "apps/v1", "StatefulSet"),
    ("api::apps::v1::DaemonSet", "apps/v1", "DaemonSet"),
    ("api::apps::v1::ControllerRevision", "apps/v1", "ControllerRevision"),
    ("api::batch::v1::Job", "batch/v1", "Job"),
    ("api::autoscaling::v1::Scale", "autoscaling/v1", "Scale"),
    ("apimachinery::pkg::apis::meta::v1::Status", "v1", "Status"),
    ("apimachinery::pkg::apis::meta::v1::DeleteOptions", "v1", "DeleteOptions"),
    ("apimachinery::pkg::apis::meta::v1::DeleteOptions", "meta.k8s.io/v1", "DeleteOptions"),
];

/// Types whose JSON is not their message shape: converted by hand in `json.rs`.
const SPECIAL: &[&str] = &[
    "apimachinery::pkg::apis::meta::v1::Time",
    "apimachinery::pkg::apis::meta::v1::MicroTime",
    "apimachinery::pkg::apis::meta::v1::Duration",
    "apimachinery::pkg::apis::meta::v1::FieldsV1",
    "apimachinery::pkg::util::intstr::IntOrString",
    "apimachinery::pkg::api::resource::Quantity",
    "apimachinery::pkg::runtime::RawExtension",
];

struct PbField {
    rust: String,
    /// The message type of the field (or of its items or map values), resolved.
    message: Option<String>,
    /// An optional string, number or boolean.
    scalar: bool,
}

struct Crate {
    version: String,
    src: PathBuf,
}

/// k8s-pb's and k8s-openapi's sources: the versions of `Cargo.lock`, as cargo unpacked
/// them. (`cargo metadata` would do, but wants every platform's crates downloaded.)
fn crates() -> (Crate, Crate) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let registries: Vec<PathBuf> = std::fs::read_dir(cargo_home.join("registry/src"))
        .expect("cargo's registry sources")
        .map(|e| e.unwrap().path())
        .collect();
    let find = |name: &str| {
        let entry = format!("name = \"{name}\"\nversion = \"");
        let at = lock
            .find(&entry)
            .unwrap_or_else(|| panic!("{name} is locked"))
            + entry.len();
        let version = lock[at..].split('"').next().unwrap().to_string();
        let src = registries
            .iter()
            .map(|r| r.join(format!("{name}-{version}/src")))
            .find(|p| p.is_dir())
            .unwrap_or_else(|| panic!("{name} {version} is unpacked (cargo fetch)"));
        Crate { version, src }
    };
    (find("k8s-pb"), find("k8s-openapi"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `super::super::meta::v1::Time` seen from module `api::core::v1`.
fn resolve(module: &[String], path: &str) -> String {
    let mut base = module.to_vec();
    let mut parts = path.trim().trim_start_matches("::").split("::").peekable();
    while parts.peek() == Some(&"super") {
        base.pop();
        parts.next();
    }
    base.extend(parts.map(str::to_string));
    base.join("::")
}

/// Every message of k8s-pb, by full path (`api::core::v1::Pod`), with its fields.
fn pb_messages(src: &Path) -> BTreeMap<String, Vec<PbField>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut out = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        if rel.file_name().is_some_and(|f| f != "mod.rs") {
            continue;
        }
        let module: Vec<String> = rel
            .parent()
            .unwrap()
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect();
        let text = std::fs::read_to_string(&file).unwrap();
        let mut current: Option<(String, Vec<PbField>)> = None;
        let mut attr: Option<String> = None;
        let mut decl: Option<String> = None;
        for line in text.lines() {
            let Some((_, fields)) = current.as_mut() else {
                if let Some(rest) = line.strip_prefix("pub struct ") {
                    let name = rest.split([' ', '{']).next().unwrap().to_string();
                    let full = format!("{}::{name}", module.join("::"));
                    if rest.trim_end().ends_with("{}") {
                        out.insert(full, Vec::new());
                    } else {
                        current = Some((full, Vec::new()));
                    }
                }
                continue;
            };
            if line == "}" {
                let (name, fields) = current.take().unwrap();
                out.insert(name, fields);
                continue;
            }
            let t = line.trim();
            if let Some(d) = decl.as_mut() {
                d.push_str(t);
            } else if t.starts_with("#[prost(") {
                attr = Some(t.to_string());
                continue;
            } else if t.starts_with("pub ") && attr.is_some() {
                decl = Some(t.to_string());
            } else {
                continue;
            }
            let d = decl.as_ref().unwrap();
            if !(d.ends_with(',') && d.matches('<').count() == d.matches('>').count()) {
                continue;
            }
            let d = decl.take().unwrap();
            let a = attr.take().unwrap();
            let (name, ty) = d
                .trim_start_matches("pub ")
                .trim_end_matches(',')
                .split_once(':')
                .unwrap();
            let message = a.contains("message").then(|| {
                let last = ty
                    .split(['<', '>', ','])
                    .map(str::trim)
                    .rfind(|s| !s.is_empty())
                    .unwrap();
                resolve(&module, last)
            });
            let scalar = message.is_none()
                && a.contains(", optional")
                && ["string", "int32", "int64", "bool", "double"]
                    .iter()
                    .any(|t| a.starts_with(&format!("#[prost({t},")));
            fields.push(PbField {
                rust: name.trim().to_string(),
                message,
                scalar,
            });
        }
    }
    out
}

/// Where the list of Go's non-pointer `omitempty` fields is kept, and the variable naming
/// the Go sources to rewrite it from.
const GO_FIELDS: &str = "go_omitempty.txt";
const GO_SRC_VAR: &str = "MINIK8S_K8S_GO_SRC";

/// Go's non-pointer `omitempty` fields, `module::Struct jsonName`, read from checkouts of
/// k8s.io/api and k8s.io/apimachinery. A zero there means "unset", so it is left out of
/// the JSON, where a pointer's zero (`runAsUser: 0`) is a value and is kept. Neither
/// k8s-pb nor k8s-openapi knows which Go fields are pointers.
fn go_omitempty(api: &Path, apimachinery: &Path) -> String {
    let mut out = BTreeSet::new();
    for (root, prefix) in [(api, "api"), (apimachinery, "apimachinery")] {
        let mut files = Vec::new();
        go_files(root, &mut files);
        for file in files {
            let rel = file.parent().unwrap().strip_prefix(root).unwrap();
            let module = std::iter::once(prefix.to_string())
                .chain(
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy().to_string()),
                )
                .collect::<Vec<_>>()
                .join("::");
            let text = std::fs::read_to_string(&file).unwrap();
            let mut current: Option<&str> = None;
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("type ")
                    && let Some(name) = rest.strip_suffix(" struct {")
                {
                    current = Some(name.trim());
                    continue;
                }
                if line == "}" {
                    current = None;
                }
                let Some(st) = current else { continue };
                let mut words = line.split_whitespace();
                let (Some(_), Some(ty)) = (words.next(), words.next()) else {
                    continue;
                };
                if ty.starts_with(['*', '[', '`']) || ty.starts_with("map[") {
                    continue;
                }
                let Some(tag) = line.split("json:\"").nth(1) else {
                    continue;
                };
                let tag = tag.split('"').next().unwrap_or("");
                if let Some(json) = tag.strip_suffix(",omitempty")
                    && !json.is_empty()
                {
                    out.insert(format!("{module}::{st} {json}"));
                }
            }
        }
    }
    let mut text = format!(
        "# Go's non-pointer omitempty fields (k8s.io/api, k8s.io/apimachinery): written by\n\
         # {GO_SRC_VAR}=API:APIMACHINERY MINIK8S_REGENERATE=1 cargo test -p minik8s-apiserver protobuf::codegen\n"
    );
    for line in out {
        text.push_str(&line);
        text.push('\n');
    }
    text
}

fn go_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.is_dir() && !name.starts_with('.') {
            go_files(&p, out);
        } else if name.ends_with(".go") && !name.ends_with("_test.go") {
            out.push(p);
        }
    }
}

fn norm(rust_name: &str) -> String {
    rust_name
        .trim_start_matches("r#")
        .replace('_', "")
        .to_lowercase()
}

/// A k8s-openapi type's fields: normalized name -> (JSON name, required).
fn openapi_fields(openapi: &Path, full: &str) -> Option<BTreeMap<String, (String, bool)>> {
    let (module, name) = full.rsplit_once("::").unwrap();
    let dir = openapi.join(module.replace("::", "/"));
    let file = std::fs::read_dir(&dir)
        .ok()?
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_stem()
                .is_some_and(|s| s.to_string_lossy().replace('_', "") == name.to_lowercase())
        })?;
    let text = std::fs::read_to_string(file).unwrap();
    let mut required = BTreeSet::new();
    let mut in_struct = false;
    let mut json = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with(&format!("pub struct {name} ")) {
            in_struct = true;
        } else if in_struct && line == "}" {
            in_struct = false;
        } else if in_struct
            && let Some((field, ty)) = line
                .strip_prefix("    pub ")
                .and_then(|l| l.trim_end_matches(',').split_once(": "))
            && !ty.starts_with("Option<")
        {
            required.insert(norm(field));
        }
        if let Some((key, rest)) = line.trim().split_once("\" => Field::Key_") {
            let rust = rest.trim_end_matches(',');
            json.insert(norm(rust), key.trim_start_matches('"').to_string());
        }
    }
    Some(
        json.into_iter()
            .map(|(n, j)| {
                let req = required.contains(&n);
                (n, (j, req))
            })
            .collect(),
    )
}

/// The newest API level k8s-openapi carries: names are the same at every level, and
/// the newest knows every field k8s-pb may have.
fn newest_level(openapi_src: &Path) -> PathBuf {
    let mut levels: Vec<(u32, PathBuf)> = std::fs::read_dir(openapi_src)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let minor = p.file_name()?.to_str()?.strip_prefix("v1_")?.parse().ok()?;
            Some((minor, p))
        })
        .collect();
    levels.sort();
    levels.pop().expect("k8s-openapi has API levels").1
}

fn camel(snake: &str) -> String {
    let mut out = String::new();
    for (i, part) in snake.trim_start_matches("r#").split('_').enumerate() {
        let mut cs = part.chars();
        match cs.next() {
            Some(c) if i > 0 => out.extend(c.to_uppercase().chain(cs)),
            Some(c) => out.extend(std::iter::once(c).chain(cs)),
            None => {}
        }
    }
    out
}

fn generate(go_fields: &str) -> String {
    let omit_zero: BTreeSet<(String, String)> = go_fields
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (ty, json) = l.split_once(' ')?;
            let (module, name) = ty.rsplit_once("::")?;
            Some((
                format!("{module}::{}", name.to_lowercase()),
                json.to_string(),
            ))
        })
        .collect();
    let (pb, openapi) = crates();
    let messages = pb_messages(&pb.src);
    let level = newest_level(&openapi.src);
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<String> = KINDS.iter().map(|k| k.0.to_string()).collect();
    while let Some(t) = queue.pop_front() {
        if SPECIAL.contains(&t.as_str()) || !seen.insert(t.clone()) {
            continue;
        }
        let fields = messages
            .get(&t)
            .unwrap_or_else(|| panic!("k8s-pb has no message {t}"));
        queue.extend(fields.iter().filter_map(|f| f.message.clone()));
    }
    let mut out = format!(
        "// @generated by the test in `codegen.rs` from k8s-pb {} and k8s-openapi {} \
         ({}): do not edit.\n\
         // MINIK8S_REGENERATE=1 cargo test -p minik8s-apiserver protobuf::codegen\n\n\
         use super::json::message;\n\
         use super::{{Codec, codec}};\n\n\
         /// The kinds served in protobuf (listed in `codegen.rs`).\n\
         pub const KINDS: &[Codec] = &[\n",
        pb.version,
        openapi.version,
        level.file_name().unwrap().to_string_lossy(),
    );
    for (path, api_version, kind) in KINDS {
        out.push_str(&format!(
            "    codec::<k8s_pb::{path}>({api_version:?}, {kind:?}),\n"
        ));
    }
    out.push_str("];\n");
    // Each type's JSON fields. A Go struct embedded `json:",inline"` (ProbeHandler in
    // Probe, VolumeSource in Volume, LocalObjectReference in ConfigMapKeySelector) is
    // a field of its own in protobuf but flattened in JSON and in k8s-openapi: a message
    // field k8s-openapi does not know, whose own fields are all the parent's, is inline;
    // and a type k8s-openapi lacks takes its names from the parent that inlines it.
    let mut fields_of: BTreeMap<&String, BTreeMap<String, (String, bool)>> = seen
        .iter()
        .filter_map(|t| Some((t, openapi_fields(&level, t)?)))
        .collect();
    let mut inline = BTreeSet::new();
    for t in &seen {
        let Some(parent) = fields_of.get(t).cloned() else {
            continue;
        };
        for f in &messages[t] {
            let Some(child) = f
                .message
                .as_ref()
                .filter(|_| !parent.contains_key(&norm(&f.rust)))
            else {
                continue;
            };
            let child_fields = messages.get(child).map(Vec::as_slice).unwrap_or_default();
            if child_fields
                .iter()
                .all(|c| parent.contains_key(&norm(&c.rust)))
            {
                inline.insert((t.clone(), f.rust.clone()));
                fields_of.entry(child).or_insert_with(|| parent.clone());
            }
        }
    }
    for t in &seen {
        let known = fields_of.get(t);
        out.push_str(&format!("\nmessage! {{ k8s_pb::{t} {{\n"));
        for f in &messages[t] {
            if inline.contains(&(t.clone(), f.rust.clone())) {
                out.push_str(&format!("    {}: inline,\n", f.rust));
                continue;
            }
            let (json, required, note) = match known.and_then(|k| k.get(&norm(&f.rust))) {
                Some((json, req)) => (json.clone(), *req, ""),
                None => (camel(&f.rust), false, " // not in k8s-openapi"),
            };
            let (module, name) = t.rsplit_once("::").unwrap();
            let go_key = (format!("{module}::{}", name.to_lowercase()), json.clone());
            let req = if required {
                " required"
            } else if f.scalar && omit_zero.contains(&go_key) {
                " omitzero"
            } else {
                ""
            };
            out.push_str(&format!("    {}: {json:?}{req},{note}\n", f.rust));
        }
        out.push_str("}}\n");
    }
    out
}

#[test]
fn generated_code_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/protobuf");
    let regenerate = std::env::var_os("MINIK8S_REGENERATE").is_some();
    let go_path = dir.join(GO_FIELDS);
    if regenerate && let Some(src) = std::env::var_os(GO_SRC_VAR) {
        let src = src.to_string_lossy().to_string();
        let (api, machinery) = src.split_once(':').expect("API:APIMACHINERY");
        std::fs::write(&go_path, go_omitempty(Path::new(api), Path::new(machinery))).unwrap();
    }
    let go_fields = std::fs::read_to_string(&go_path).unwrap_or_default();
    let want = generate(&go_fields);
    let path = dir.join("generated.rs");
    if regenerate {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "generated.rs is out of date: run MINIK8S_REGENERATE=1 cargo test -p \
         minik8s-apiserver protobuf::codegen"
    );
}

#[test]
fn names_are_matched_across_the_two_crates() {
    assert_eq!(norm("pod_i_ps"), norm("pod_ips"));
    assert_eq!(norm("r#type"), "type");
    assert_eq!(camel("host_network"), "hostNetwork");
    assert_eq!(
        resolve(
            &["api".into(), "core".into(), "v1".into()],
            "super::super::super::apimachinery::pkg::apis::meta::v1::ObjectMeta"
        ),
        "apimachinery::pkg::apis::meta::v1::ObjectMeta"
    );
}
