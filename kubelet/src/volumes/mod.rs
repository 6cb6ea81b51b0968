//! `configMap` and `secret` volumes: the object's keys as files in a directory of the
//! pod's (`<root-dir>/pods/<uid>/volumes/kubernetes.io~configmap/<volume>`, or
//! `kubernetes.io~secret/<volume>`), written by the [`atomic_writer`] as Kubernetes does
//! and bind-mounted read-only into the containers. Each pass of the pod's worker writes
//! them again, which costs nothing when nothing changed; a watch wakes the worker when
//! an object it uses changes (see [`crate::objects`]), so edits reach running containers
//! within moments, without a restart.
//!
//! Secret volumes are a tmpfs, as in Kubernetes, so that secrets never reach a disk; if
//! the mount fails (no privilege) they fall back to a plain directory under a parent
//! that only root may enter.

pub mod atomic_writer;

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, KeyToPath, Pod, Secret, SecretVolumeSource, Volume,
};

use crate::objects::{ConfigObjects, Kind};
use crate::pod::spec::{VolumeError, pod_dir, spec};
use crate::runtime::BindMount;
use atomic_writer::{FileProjection, Payload};

const CONFIG_MAP_DIR: &str = "volumes/kubernetes.io~configmap";
const SECRET_DIR: &str = "volumes/kubernetes.io~secret";
/// Kubernetes' default file mode for both kinds (the API server fills it in as well).
const DEFAULT_MODE: i32 = 0o644;

/// Where a `configMap` or `secret` volume lives on the host; `None` for other kinds.
pub fn dir(root: &Path, uid: &str, volume: &Volume) -> Option<PathBuf> {
    let kind = if volume.config_map.is_some() {
        CONFIG_MAP_DIR
    } else if volume.secret.is_some() {
        SECRET_DIR
    } else {
        return None;
    };
    Some(pod_dir(root, uid).join(kind).join(&volume.name))
}

fn mode(mode: Option<i32>, default: Option<i32>) -> u32 {
    let m = mode.or(default).unwrap_or(DEFAULT_MODE);
    u32::try_from(m).unwrap_or(0o644) & 0o7777
}

/// The files of `data` (with `items`, only those, at their paths and modes), as
/// Kubernetes' `MakePayload`; `missing_key` words a missing item's error.
fn payload(
    items: Option<&Vec<KeyToPath>>,
    data: &dyn Fn(&str) -> Option<Vec<u8>>,
    keys: Vec<String>,
    default_mode: Option<i32>,
    optional: bool,
    missing_key: &str,
) -> Result<Payload, String> {
    let mut out = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for key in keys {
                if let Some(bytes) = data(&key) {
                    let file = FileProjection {
                        data: bytes,
                        mode: mode(None, default_mode),
                    };
                    out.insert(key, file);
                }
            }
        }
        Some(items) => {
            for item in items {
                let Some(bytes) = data(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(format!("{missing_key}: {}", item.key));
                };
                let file = FileProjection {
                    data: bytes,
                    mode: mode(item.mode, default_mode),
                };
                out.insert(item.path.clone(), file);
            }
        }
    }
    Ok(out)
}

/// A configMap volume's files: `data` and `binaryData`.
pub fn config_map_payload(
    source: &ConfigMapVolumeSource,
    cm: &ConfigMap,
) -> Result<Payload, String> {
    let data = |key: &str| {
        cm.data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|s| s.as_bytes().to_vec())
            .or_else(|| {
                cm.binary_data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|b| b.0.clone())
            })
    };
    let keys = cm
        .data
        .iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .chain(cm.binary_data.iter().flatten().map(|(k, _)| k.clone()))
        .collect();
    payload(
        source.items.as_ref(),
        &data,
        keys,
        source.default_mode,
        source.optional == Some(true),
        "configmap references non-existent config key",
    )
}

/// A secret volume's files, decoded.
pub fn secret_payload(source: &SecretVolumeSource, secret: &Secret) -> Result<Payload, String> {
    let data = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
    };
    let keys = secret
        .data
        .iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .collect();
    payload(
        source.items.as_ref(),
        &data,
        keys,
        source.default_mode,
        source.optional == Some(true),
        "secret references non-existent secret key",
    )
}

/// The payload a volume should hold now; an error for a missing object or key that is
/// not optional.
fn wanted(volume: &Volume, namespace: &str, objects: &ConfigObjects) -> Result<Payload, String> {
    if let Some(source) = &volume.config_map {
        match objects.config_map(namespace, &source.name) {
            Some(cm) => config_map_payload(source, &cm),
            None if source.optional == Some(true) => Ok(Payload::new()),
            None => Err(Kind::ConfigMap.not_found(&source.name)),
        }
    } else if let Some(source) = &volume.secret {
        let name = source.secret_name.as_deref().unwrap_or_default();
        match objects.secret(namespace, name) {
            Some(secret) => secret_payload(source, &secret),
            None if source.optional == Some(true) => Ok(Payload::new()),
            None => Err(Kind::Secret.not_found(name)),
        }
    } else {
        Ok(Payload::new())
    }
}

fn is_mount_point(path: &Path) -> bool {
    let (Ok(meta), Some(parent)) = (std::fs::metadata(path), path.parent()) else {
        return false;
    };
    std::fs::metadata(parent).is_ok_and(|p| p.dev() != meta.dev())
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Makes a secret volume's directory a tmpfs, or a directory only root may reach.
async fn prepare_secret_dir(dir: &Path) -> Result<(), String> {
    let parent = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    set_mode(parent, 0o700)
        .map_err(|e| format!("setting the mode of {}: {e}", parent.display()))?;
    if is_mount_point(dir) {
        return Ok(());
    }
    let output = tokio::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "mode=0755", "tmpfs"])
        .arg(dir)
        .output()
        .await;
    match output {
        Ok(o) if o.status.success() => {}
        Ok(o) => tracing::warn!(dir = %dir.display(),
            error = %String::from_utf8_lossy(&o.stderr).trim(),
            "cannot mount a tmpfs for a secret volume; using a plain directory"),
        Err(e) => tracing::warn!(dir = %dir.display(), error = %e,
            "cannot mount a tmpfs for a secret volume; using a plain directory"),
    }
    Ok(())
}

/// Writes every `configMap` and `secret` volume of the pod. A volume that cannot be
/// written and has never been is an error: the pod waits for it, as Kubernetes' does
/// (`FailedMount`, containers `ContainerCreating`). One that was written before keeps its
/// last files, as in Kubernetes, and its error comes back among the warnings.
pub async fn set_up(
    pod: &Pod,
    root: &Path,
    objects: &ConfigObjects,
) -> Result<Vec<VolumeError>, VolumeError> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let volumes: Vec<&Volume> = spec(pod)
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.config_map.is_some() || v.secret.is_some())
        .collect();
    let mut warnings = Vec::new();
    if volumes.is_empty() {
        return Ok(warnings);
    }
    let error = |volume: &Volume, message: String| VolumeError {
        volume: volume.name.clone(),
        message,
    };
    // Never listed (the API server is away): volumes written before keep their files.
    let listed = objects.wait_listed().await;
    for volume in volumes {
        let Some(dir) = dir(root, uid, volume) else {
            continue;
        };
        let written_before = atomic_writer::current_version(&dir).is_some();
        let result = async {
            listed.clone()?;
            let payload = wanted(volume, namespace, objects)?;
            if volume.secret.is_some() {
                prepare_secret_dir(&dir).await?;
            }
            atomic_writer::write(&dir, &payload)
                .map_err(|e| format!("writing {}: {e}", dir.display()))
        }
        .await;
        match result {
            Ok(_) => {}
            Err(message) if written_before => warnings.push(error(volume, message)),
            Err(message) => return Err(error(volume, message)),
        }
    }
    Ok(warnings)
}

/// Unmounts the pod's secret volumes, before its directory is removed.
pub fn tear_down(pod_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(pod_dir.join(SECRET_DIR)) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !is_mount_point(&path) {
            continue;
        }
        // Lazily: a container that still has it keeps it until it goes.
        match std::process::Command::new("umount")
            .arg("-l")
            .arg(&path)
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => tracing::warn!(dir = %path.display(),
                error = %String::from_utf8_lossy(&o.stderr).trim(), "unmounting a secret volume"),
            Err(e) => tracing::warn!(dir = %path.display(), error = %e,
                "unmounting a secret volume"),
        }
    }
}

/// ConfigMap and Secret volumes are mounted read-only whatever the container asks, as in
/// Kubernetes. `mounts` are the container's volume mounts, in order.
pub fn force_read_only(pod: &Pod, c: &Container, mounts: &mut [BindMount]) {
    let read_only: HashSet<&str> = spec(pod)
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.config_map.is_some() || v.secret.is_some())
        .map(|v| v.name.as_str())
        .collect();
    for (m, mount) in c.volume_mounts.iter().flatten().zip(mounts.iter_mut()) {
        if read_only.contains(m.name.as_str()) {
            mount.read_only = true;
        }
    }
}

#[cfg(test)]
mod tests;
