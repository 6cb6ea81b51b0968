//! The Python `kubernetes` client (Debian's `python3-kubernetes`) works against the API
//! server unchanged: `tests/python/client_check.py` runs create, list, watch, patch,
//! replace, delete and the error cases through its generated `CoreV1Api`.

use std::process::Command;

use minik8s_tests::apiserver::{Backend, TestApiServer};
use minik8s_tests::kubelet::repo_root;

/// Debian's interpreter, where `python3-kubernetes` is installed (another `python3` may
/// come first on PATH).
const PYTHON: &str = "/usr/bin/python3";

async fn client_check(backend: Backend) {
    let srv = TestApiServer::start(backend).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = srv.write_kubeconfig(dir.path()).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(PYTHON)
            .arg(repo_root().join("tests/python/client_check.py"))
            .arg(kubeconfig)
            .env_remove("KUBECONFIG")
            .output()
    })
    .await
    .unwrap()
    .expect("run /usr/bin/python3 (Debian packages python3 and python3-kubernetes)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "client_check.py failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn python_client_on_the_embedded_store() {
    client_check(Backend::Embedded).await;
}

#[tokio::test]
async fn python_client_on_etcd() {
    client_check(Backend::Etcd).await;
}
