//! What the MiniK8s binaries share.

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, which is how systemd, `kill` and test harnesses
/// stop a process. A signal that cannot be watched never resolves.
pub async fn interrupted() {
    let terminated = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        Ok(()) = tokio::signal::ctrl_c() => {}
        _ = terminated => {}
    }
}

/// Logs to stderr, at the levels `RUST_LOG` asks for (`info` when it is unset or not a
/// filter).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// The node name when none is given, as the kubelet's `nodeutil.GetHostname` finds it:
/// the operating system's host name, trimmed and lowercased. Like Kubernetes, an empty
/// or unreadable host name is an error rather than some made-up name.
pub fn host_name() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_err(|e| anyhow::anyhow!("couldn't determine hostname: {e}"))?;
    node_name_from_host_name(&name)
}

fn node_name_from_host_name(host_name: &str) -> anyhow::Result<String> {
    let name = host_name.trim().to_lowercase();
    anyhow::ensure!(!name.is_empty(), "empty hostname is invalid");
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_the_trimmed_lowercased_host_name() {
        assert_eq!(node_name_from_host_name("Worker-1\n").unwrap(), "worker-1");
        assert_eq!(
            node_name_from_host_name(" \n").unwrap_err().to_string(),
            "empty hostname is invalid"
        );
        let os = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(host_name().unwrap(), os.trim().to_lowercase());
    }
}
