//! From a pod's spec to container configurations: environment (with `fieldRef`,
//! ConfigMap and Secret references and `$(VAR)` expansion), volumes (`hostPath` with its
//! `type` checks, `emptyDir`, and the directories of `configMap` and `secret` volumes that
//! `crate::volumes` writes), resources and published ports. Pure, apart from preparing
//! volume directories.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec};
use minik8s_api::quantity::parse_quantity;

use super::config_env::EnvSources;
use crate::runtime::{BindMount, PortMapping, Resources};

/// Docker's CPU period, and Kubernetes' (`cpu.cfs_period_us`), in microseconds.
const CPU_PERIOD: i64 = 100_000;
/// The smallest quota the kernel takes.
const MIN_CPU_QUOTA: i64 = 1_000;
/// What Kubernetes gives a container without a CPU request.
const MIN_CPU_SHARES: i64 = 2;

/// What a container's environment may refer to besides the pod itself.
#[derive(Clone, Debug, Default)]
pub struct Downward {
    pub node_name: String,
    pub pod_ip: Option<IpAddr>,
    pub host_ip: Option<IpAddr>,
    /// The service variables of the pod's namespace (see `service_env`).
    pub services: Vec<(String, String)>,
    /// The ConfigMaps and Secrets the container refers to (see `config_env`).
    pub sources: EnvSources,
}

pub fn spec(pod: &Pod) -> &PodSpec {
    static EMPTY: std::sync::OnceLock<PodSpec> = std::sync::OnceLock::new();
    pod.spec
        .as_ref()
        .unwrap_or_else(|| EMPTY.get_or_init(PodSpec::default))
}

/// The directory of a pod's own files (its emptyDir volumes).
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid)
}

/// The pod's hostname: `spec.hostname`, or its name, cut to 63 characters.
pub fn hostname(pod: &Pod) -> String {
    let name = spec(pod)
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    let mut host: String = name.chars().take(63).collect();
    while host.ends_with(['-', '.']) {
        host.pop();
    }
    host
}

/// Replaces `$(NAME)` by the variable's value where it is defined; `$$` is a literal `$`;
/// anything else stays as written. Kubernetes' `expansion.Expand`.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut literal_start = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push_str(&input[literal_start..i]);
                    out.push('$');
                    i += 2;
                    literal_start = i;
                    continue;
                }
                b'(' => {
                    if let Some(end) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + end];
                        out.push_str(&input[literal_start..i]);
                        match lookup(name) {
                            Some(value) => out.push_str(&value),
                            None => out.push_str(&input[i..i + 3 + end]),
                        }
                        i += 3 + end;
                        literal_start = i;
                        continue;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    out.push_str(&input[literal_start..]);
    out
}

fn field_value(pod: &Pod, path: &str, downward: &Downward) -> Result<String, String> {
    let meta = &pod.metadata;
    let s = spec(pod);
    let from_map = |map: &Option<std::collections::BTreeMap<String, String>>, key: &str| {
        map.as_ref()
            .and_then(|m| m.get(key).cloned())
            .unwrap_or_default()
    };
    let subscript = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("['"))
            .and_then(|rest| rest.strip_suffix("']"))
            .map(str::to_string)
    };
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => s.node_name.clone().unwrap_or(downward.node_name.clone()),
        "spec.serviceAccountName" => s.service_account_name.clone().unwrap_or_default(),
        "status.podIP" | "status.podIPs" => {
            downward.pod_ip.map(|ip| ip.to_string()).unwrap_or_default()
        }
        "status.hostIP" | "status.hostIPs" => downward
            .host_ip
            .map(|ip| ip.to_string())
            .unwrap_or_default(),
        _ => {
            if let Some(key) = subscript("metadata.labels") {
                from_map(&meta.labels, &key)
            } else if let Some(key) = subscript("metadata.annotations") {
                from_map(&meta.annotations, &key)
            } else {
                return Err(format!("unsupported fieldRef fieldPath {path:?}"));
            }
        }
    };
    Ok(value)
}

fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
) -> Result<String, String> {
    let res = container.resources.as_ref();
    let (map, name) = match resource.split_once('.') {
        Some(("limits", name)) => (res.and_then(|r| r.limits.as_ref()), name),
        Some(("requests", name)) => (res.and_then(|r| r.requests.as_ref()), name),
        _ => {
            return Err(format!(
                "unsupported resourceFieldRef resource {resource:?}"
            ));
        }
    };
    let quantity = map
        .and_then(|m| m.get(name))
        .map(|q| parse_quantity(&q.0))
        .transpose()
        .map_err(|e| e.to_string())?;
    let divisor = divisor
        .map(parse_quantity)
        .transpose()
        .map_err(|e| e.to_string())?
        .filter(|d| !d.is_zero());
    let Some(quantity) = quantity else {
        // Kubernetes falls back to the node's allocatable; "0" stands for unlimited here.
        return Ok("0".into());
    };
    let divisor_nanos = divisor.map_or(1_000_000_000, |d| d.as_nanos());
    // Rounded up, as Kubernetes does.
    let n = quantity.as_nanos();
    let value = (n + divisor_nanos - 1) / divisor_nanos;
    Ok(value.to_string())
}

/// The container's environment, in order: `envFrom`'s variables, then `env`, each value
/// expanded against the ones before and the service variables; then the service
/// variables the container does not set itself (Kubernetes' `makeEnvironmentVariables`).
pub fn environment(
    pod: &Pod,
    container: &Container,
    downward: &Downward,
) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut values: HashMap<String, String> = HashMap::new();
    for (name, value) in downward.sources.env_from(container)?.vars {
        values.insert(name.clone(), value.clone());
        env.push((name, value));
    }
    for EnvVar {
        name,
        value,
        value_from,
    } in container.env.iter().flatten()
    {
        let v = if let Some(from) = value_from {
            if let Some(field) = &from.field_ref {
                field_value(pod, &field.field_path, downward)?
            } else if let Some(resource) = &from.resource_field_ref {
                resource_value(
                    container,
                    &resource.resource,
                    resource.divisor.as_ref().map(|d| d.0.as_str()),
                )?
            } else if let Some(value) = downward.sources.key_ref(from) {
                match value? {
                    Some(value) => value,
                    // Optional and missing: no variable.
                    None => continue,
                }
            } else {
                return Err(format!(
                    "environment variable {name}: valueFrom has no source the kubelet \
                     supports (fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef)"
                ));
            }
        } else {
            let lookup = |n: &str| {
                values.get(n).cloned().or_else(|| {
                    downward
                        .services
                        .iter()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.clone())
                })
            };
            expand(value.as_deref().unwrap_or_default(), &lookup)
        };
        values.insert(name.clone(), v.clone());
        env.retain(|(n, _)| n != name);
        env.push((name.clone(), v));
    }
    for (name, value) in &downward.services {
        if !values.contains_key(name) {
            env.push((name.clone(), value.clone()));
        }
    }
    Ok(env)
}

/// `command` and `args` with `$(VAR)` expanded from the container's environment.
pub fn command_and_args(
    container: &Container,
    env: &[(String, String)],
) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let values: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let lookup = |n: &str| values.get(n).map(|v| v.to_string());
    let expand_all = |list: &Option<Vec<String>>| {
        list.as_ref()
            .map(|l| l.iter().map(|s| expand(s, &lookup)).collect::<Vec<_>>())
    };
    let command = expand_all(&container.command).filter(|c| !c.is_empty());
    let mut args = expand_all(&container.args).filter(|a| !a.is_empty());
    // A command without args must not pick up the image's own arguments.
    if command.is_some() && args.is_none() {
        args = Some(Vec::new());
    }
    (command, args)
}

/// Docker's cgroup settings from the container's limits and requests.
pub fn resources(container: &Container) -> Result<Resources, String> {
    let get = |map: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
               name: &str| {
        map.and_then(|m| m.get(name))
            .map(|q| parse_quantity(&q.0).map_err(|e| format!("{name} {:?}: {e}", q.0)))
            .transpose()
    };
    let r = container.resources.as_ref();
    let limits = r.and_then(|r| r.limits.as_ref());
    let requests = r.and_then(|r| r.requests.as_ref());
    let mut out = Resources::default();
    if let Some(memory) = get(limits, "memory")? {
        out.memory_limit = Some(i64::try_from(memory.as_value()).unwrap_or(i64::MAX));
    }
    if let Some(cpu) = get(limits, "cpu")? {
        let millis = i64::try_from(cpu.as_millis()).unwrap_or(i64::MAX / 1000);
        out.cpu_period = Some(CPU_PERIOD);
        out.cpu_quota = Some((millis * CPU_PERIOD / 1000).max(MIN_CPU_QUOTA));
    }
    let shares = match get(requests, "cpu")? {
        Some(cpu) => {
            let millis = i64::try_from(cpu.as_millis()).unwrap_or(i64::MAX / 1024);
            (millis * 1024 / 1000).max(MIN_CPU_SHARES)
        }
        None => MIN_CPU_SHARES,
    };
    out.cpu_shares = Some(shares);
    Ok(out)
}

/// The host ports of every container of the pod, published on its pause container.
pub fn host_ports(pod: &Pod) -> Vec<PortMapping> {
    spec(pod)
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = u16::try_from(p.host_port?).ok().filter(|p| *p > 0)?;
            Some(PortMapping {
                container_port: u16::try_from(p.container_port).ok()?,
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                host_port,
                host_ip: p.host_ip.clone().filter(|ip| !ip.is_empty()),
            })
        })
        .collect()
}

/// Why a volume could not be set up, as Kubernetes words it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeError {
    pub volume: String,
    pub message: String,
}

impl std::fmt::Display for VolumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MountVolume.SetUp failed for volume \"{}\" : {}",
            self.volume, self.message
        )
    }
}

fn check_host_path(path: &Path, kind: &str) -> Result<(), String> {
    let meta = std::fs::metadata(path);
    let fail = |what: &str| {
        Err(format!(
            "hostPath type check failed: {} is not {what}",
            path.display()
        ))
    };
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => fail("a directory"),
            Err(_) => {
                std::fs::create_dir_all(path)
                    .map_err(|e| format!("creating {}: {e}", path.display()))?;
                set_mode(path, 0o755)
            }
        },
        "Directory" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            _ => fail("a directory"),
        },
        "FileOrCreate" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => fail("a file"),
            Err(_) => {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)
                    .map_err(|e| format!("creating {}: {e}", path.display()))?;
                set_mode(path, 0o644)
            }
        },
        "File" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            _ => fail("a file"),
        },
        "Socket" => match meta {
            Ok(m) if m.file_type().is_socket() => Ok(()),
            _ => fail("a socket file"),
        },
        "CharDevice" => match meta {
            Ok(m) if m.file_type().is_char_device() => Ok(()),
            _ => fail("a character device"),
        },
        "BlockDevice" => match meta {
            Ok(m) if m.file_type().is_block_device() => Ok(()),
            _ => fail("a block device"),
        },
        other => Err(format!("hostPath type {other:?} is not supported")),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("setting the mode of {}: {e}", path.display()))
}

/// Prepares every volume of the pod and says where each is on the host: hostPath volumes
/// are checked (or created) according to their type, emptyDir volumes are directories
/// under the pod's directory, and configMap and secret volumes are the directories
/// `crate::volumes::set_up` wrote.
pub fn prepare_volumes(pod: &Pod, root: &Path) -> Result<HashMap<String, PathBuf>, VolumeError> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let mut paths = HashMap::new();
    for volume in spec(pod).volumes.iter().flatten() {
        let error = |message: String| VolumeError {
            volume: volume.name.clone(),
            message,
        };
        let path = if let Some(host) = &volume.host_path {
            let path = PathBuf::from(&host.path);
            check_host_path(&path, host.type_.as_deref().unwrap_or_default()).map_err(error)?;
            path
        } else if volume.empty_dir.is_some() {
            let path = pod_dir(root, uid)
                .join("volumes/kubernetes.io~empty-dir")
                .join(&volume.name);
            std::fs::create_dir_all(&path)
                .map_err(|e| error(format!("creating {}: {e}", path.display())))?;
            // World-writable like Kubernetes' emptyDir, so that any user in the pod may use it.
            set_mode(&path, 0o777).map_err(error)?;
            path
        } else if let Some(path) = crate::volumes::dir(root, uid, volume) {
            if !path.is_dir() {
                return Err(error(format!("{} is not set up", path.display())));
            }
            path
        } else {
            return Err(error(
                "only hostPath, emptyDir, configMap and secret volumes are supported".to_string(),
            ));
        };
        paths.insert(volume.name.clone(), path);
    }
    Ok(paths)
}

/// The container's bind mounts, from its volumeMounts and the prepared volumes.
pub fn mounts(
    container: &Container,
    volumes: &HashMap<String, PathBuf>,
) -> Result<Vec<BindMount>, String> {
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let Some(source) = volumes.get(&m.name) else {
            return Err(format!(
                "volumeMount {:?} refers to volume {:?}, which the pod does not have",
                m.mount_path, m.name
            ));
        };
        let mut source = source.clone();
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if Path::new(sub).is_absolute() || sub.split('/').any(|part| part == "..") {
                return Err(format!(
                    "subPath {sub:?} must be a relative path inside the volume"
                ));
            }
            source = source.join(sub);
            if !source.exists() {
                std::fs::create_dir_all(&source)
                    .map_err(|e| format!("creating subPath {}: {e}", source.display()))?;
            }
        }
        out.push(BindMount {
            source,
            target: m.mount_path.clone(),
            read_only: m.read_only == Some(true),
        });
    }
    Ok(out)
}

/// `uid` or `uid:gid` from the container's, else the pod's, security context.
pub fn user(pod: &Pod, container: &Container) -> Option<String> {
    let c = container.security_context.as_ref();
    let p = spec(pod).security_context.as_ref();
    let uid = c
        .and_then(|c| c.run_as_user)
        .or_else(|| p.and_then(|p| p.run_as_user));
    let gid = c
        .and_then(|c| c.run_as_group)
        .or_else(|| p.and_then(|p| p.run_as_group));
    match (uid, gid) {
        (Some(u), Some(g)) => Some(format!("{u}:{g}")),
        (Some(u), None) => Some(u.to_string()),
        (None, Some(g)) => Some(format!("0:{g}")),
        (None, None) => None,
    }
}

pub fn privileged(container: &Container) -> bool {
    container
        .security_context
        .as_ref()
        .and_then(|s| s.privileged)
        == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let lookup = |n: &str| match n {
            "A" => Some("x".to_string()),
            "B" => Some("$(A)".to_string()),
            _ => None,
        };
        assert_eq!(expand("$(A)-$(B)", &lookup), "x-$(A)");
        assert_eq!(expand("$(C) stays", &lookup), "$(C) stays");
        assert_eq!(expand("$$(A) is escaped", &lookup), "$(A) is escaped");
        assert_eq!(expand("$(A", &lookup), "$(A");
        assert_eq!(expand("cost $5", &lookup), "cost $5");
        assert_eq!(expand("", &lookup), "");
        assert_eq!(expand("é$(A)é", &lookup), "éxé");
    }

    #[test]
    fn environment_with_field_refs_and_expansion() {
        let p = pod(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "labels": {"app": "w"}},
            "spec": {"nodeName": "n1", "containers": [{
                "name": "c", "image": "i",
                "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
                "env": [
                    {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                    {"name": "WHO", "value": "$(NAME).$(NS)"},
                    {"name": "NAME", "value": "override"}
                ]}]}
        }));
        let downward = Downward {
            node_name: "n1".into(),
            pod_ip: Some("10.1.0.5".parse().unwrap()),
            host_ip: None,
            ..Downward::default()
        };
        let c = &p.spec.as_ref().unwrap().containers[0];
        let env = environment(&p, c, &downward).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("NS"), Some("shop"));
        assert_eq!(get("IP"), Some("10.1.0.5"));
        assert_eq!(get("NODE"), Some("n1"));
        assert_eq!(get("APP"), Some("w"));
        assert_eq!(get("MEM"), Some("64"));
        assert_eq!(get("CPU"), Some("1"));
        assert_eq!(get("WHO"), Some("web.shop"));
        assert_eq!(get("NAME"), Some("override"));
        assert_eq!(env.iter().filter(|(n, _)| n == "NAME").count(), 1);
        let (command, args) = command_and_args(
            &Container {
                command: Some(vec!["echo".into(), "$(WHO)".into()]),
                ..Container::default()
            },
            &env,
        );
        assert_eq!(command.unwrap(), ["echo", "web.shop"]);
        assert_eq!(args, Some(vec![]));
    }

    #[test]
    fn service_variables_come_after_the_containers_own_which_win() {
        let p = pod(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{
                "name": "c", "image": "i",
                "command": ["echo", "$(REDIS_SERVICE_HOST):$(REDIS_SERVICE_PORT)"],
                "env": [
                    {"name": "REDIS_SERVICE_PORT", "value": "7000"},
                    {"name": "URL", "value": "redis://$(REDIS_SERVICE_HOST):$(REDIS_SERVICE_PORT)"}
                ]}]}
        }));
        let downward = Downward {
            services: vec![
                ("REDIS_SERVICE_HOST".into(), "10.96.0.7".into()),
                ("REDIS_SERVICE_PORT".into(), "6379".into()),
            ],
            ..Downward::default()
        };
        let c = &p.spec.as_ref().unwrap().containers[0];
        let env = environment(&p, c, &downward).unwrap();
        assert_eq!(
            env,
            [
                ("REDIS_SERVICE_PORT".to_string(), "7000".to_string()),
                ("URL".into(), "redis://10.96.0.7:7000".into()),
                ("REDIS_SERVICE_HOST".into(), "10.96.0.7".into()),
            ]
        );
        let (command, _) = command_and_args(c, &env);
        assert_eq!(command.unwrap(), ["echo", "10.96.0.7:7000"]);
    }

    #[test]
    fn resources_map_to_docker_units() {
        let c: Container = serde_json::from_value(json!({
            "name": "c",
            "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}, "requests": {"cpu": "100m"}}
        }))
        .unwrap();
        let r = resources(&c).unwrap();
        assert_eq!(r.memory_limit, Some(64 * 1024 * 1024));
        assert_eq!(r.cpu_period, Some(100_000));
        assert_eq!(r.cpu_quota, Some(25_000));
        assert_eq!(r.cpu_shares, Some(102));
        let none = resources(&Container::default()).unwrap();
        assert_eq!(none.memory_limit, None);
        assert_eq!(none.cpu_shares, Some(2));
    }

    #[test]
    fn host_path_types_and_empty_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let p = |volumes: serde_json::Value| {
            pod(json!({"metadata": {"name": "p", "uid": "u1"},
                       "spec": {"containers": [], "volumes": volumes}}))
        };
        let created = dir.path().join("new/dir");
        let ok = prepare_volumes(
            &p(json!([
                {"name": "a", "hostPath": {"path": created.to_str().unwrap(), "type": "DirectoryOrCreate"}},
                {"name": "b", "hostPath": {"path": file.to_str().unwrap(), "type": "File"}},
                {"name": "c", "emptyDir": {}}
            ])),
            &root,
        )
        .unwrap();
        assert!(created.is_dir());
        assert!(ok["c"].starts_with(pod_dir(&root, "u1")) && ok["c"].is_dir());
        let err = prepare_volumes(
            &p(json!([{"name": "d", "hostPath": {"path": file.to_str().unwrap(), "type": "Directory"}}])),
            &root,
        )
        .unwrap_err();
        assert_eq!(err.volume, "d");
        assert!(err.to_string().contains("is not a directory"), "{err}");
        let missing = dir.path().join("missing");
        assert!(
            prepare_volumes(
                &p(json!([{"name": "e", "hostPath": {"path": missing.to_str().unwrap(), "type": "File"}}])),
                &root
            )
            .is_err()
        );
        let made = dir.path().join("made");
        prepare_volumes(
            &p(json!([{"name": "f", "hostPath": {"path": made.to_str().unwrap(), "type": "FileOrCreate"}}])),
            &root,
        )
        .unwrap();
        assert!(made.is_file());
    }

    #[test]
    fn hostnames_and_ports() {
        let p = pod(json!({"metadata": {"name": "web-0"},
        "spec": {"hostname": "", "containers": [{"name": "c", "ports": [
            {"containerPort": 80, "hostPort": 8080},
            {"containerPort": 53, "protocol": "UDP", "hostPort": 5353, "hostIP": "127.0.0.1"},
            {"containerPort": 9000}
        ]}]}}));
        assert_eq!(hostname(&p), "web-0");
        let ports = host_ports(&p);
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].protocol, "tcp");
        assert_eq!(ports[1].protocol, "udp");
        assert_eq!(ports[1].host_ip.as_deref(), Some("127.0.0.1"));
    }
}
