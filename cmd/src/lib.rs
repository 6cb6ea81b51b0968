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
