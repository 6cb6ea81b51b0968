//! Test support: start real processes (etcd, the API server) on free ports, and stop them
//! when the guard is dropped.

pub mod apiserver;
pub mod bench;
pub mod binaries;
pub mod dns;
pub mod dockerd;
pub mod etcd;
pub mod kubelet;
pub mod once;
pub mod proc;
pub mod rest;

/// Waits until `check` returns `Some`, polling every `every`, failing after `deadline`.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    deadline: std::time::Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= end {
            anyhow::bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The system's kubectl (never one built by this workspace): found on `PATH`, skipping
/// any `target` directory.
pub fn real_kubectl() -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|d| !d.components().any(|c| c.as_os_str() == "target"))
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .expect("the real kubectl must be installed for this test (v1.32 or newer)")
}
