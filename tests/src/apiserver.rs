//! An in-process API server on a free port, over either store.

use std::sync::Arc;

use anyhow::Context;
use minik8s_apiserver::{Server, ServerConfig, StoreConfig};

use crate::etcd::EtcdProcess;

/// Which backend a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Etcd,
}

/// A running API server and what it needs; everything stops when dropped.
pub struct TestApiServer {
    pub server: Option<Server>,
    pub url: String,
    pub backend: Backend,
    _dir: tempfile::TempDir,
    _etcd: Option<Arc<EtcdProcess>>,
}

impl TestApiServer {
    /// The API alone: no scheduler or node controller changes objects behind a test's
    /// back.
    pub async fn start(backend: Backend) -> anyhow::Result<TestApiServer> {
        Self::start_with(backend, None, |c| c.controllers = None).await
    }

    /// The API with its controllers (scheduler, pod CIDRs, node heartbeats).
    pub async fn start_with_controllers(backend: Backend) -> anyhow::Result<TestApiServer> {
        Self::start_with(backend, None, |_| {}).await
    }

    /// A second API server, with controllers, on the same etcd as `other`.
    pub async fn start_sharing(other: &TestApiServer) -> anyhow::Result<TestApiServer> {
        let etcd = other
            ._etcd
            .clone()
            .context("sharing needs an etcd-backed server")?;
        Self::start_with(Backend::Etcd, Some(etcd), |_| {}).await
    }

    /// Starts a server after `tune` adjusted its configuration.
    pub async fn start_with(
        backend: Backend,
        shared_etcd: Option<Arc<EtcdProcess>>,
        tune: impl FnOnce(&mut ServerConfig),
    ) -> anyhow::Result<TestApiServer> {
        let dir = tempfile::tempdir()?;
        let (store, etcd) = match backend {
            Backend::Embedded => (
                StoreConfig::Embedded {
                    data_dir: dir.path().join("data"),
                },
                None,
            ),
            Backend::Etcd => {
                let etcd = match shared_etcd {
                    Some(e) => e,
                    None => Arc::new(EtcdProcess::start().context("starting etcd")?),
                };
                (
                    StoreConfig::Etcd {
                        endpoints: vec![etcd.endpoint()],
                    },
                    Some(etcd),
                )
            }
        };
        let mut config = ServerConfig::new("127.0.0.1:0".parse()?, store);
        config.http.bookmark_interval = std::time::Duration::from_millis(500);
        config.watch_window = 200;
        if let Some(c) = &mut config.controllers {
            c.resync = std::time::Duration::from_millis(500);
        }
        tune(&mut config);
        let server = Server::start(config)
            .await
            .context("starting the apiserver")?;
        let url = server.url();
        Ok(TestApiServer {
            server: Some(server),
            url,
            backend,
            _dir: dir,
            _etcd: etcd,
        })
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("server running")
    }

    /// Writes a kubeconfig pointing at this server into `dir` and returns its path.
    pub fn write_kubeconfig(&self, dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: default\ncurrent-context: test\nusers:\n- name: test\n  user: {{}}\n",
                self.url
            ),
        )?;
        Ok(path)
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        // Dropping the server's runtime handles stops it; nothing to wait for here.
        self.server.take();
    }
}
