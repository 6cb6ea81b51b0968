//! An in-process API server on a free port, over either store.

use std::sync::Arc;

use anyhow::Context;
use minik8s_apiserver::{Server, ServerConfig, StoreConfig};
use std::time::Duration;

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
    /// How it was started, listening on the address it got: for [`TestApiServer::restart`].
    config: ServerConfig,
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
        let server = Server::start(config.clone())
            .await
            .context("starting the apiserver")?;
        let url = server.url();
        config.listen = server.addr();
        Ok(TestApiServer {
            server: Some(server),
            url,
            backend,
            config,
            _dir: dir,
            _etcd: etcd,
        })
    }

    /// Stops the server: connections close, watches end, the port refuses, and the
    /// store is closed. [`TestApiServer::restart`] brings it back.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// Starts the server again, stopping it first if it runs, on the same address over
    /// the same store: an embedded store opens its file again, as after a restart of the
    /// process (its watch history is gone, so watchers list again).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        let last_error = std::sync::Mutex::new(String::new());
        let server = crate::wait_for(
            "the store file and the port to be free again",
            Duration::from_secs(30),
            || async {
                match Server::start(self.config.clone()).await {
                    Ok(server) => Some(server),
                    Err(e) => {
                        *last_error.lock().unwrap_or_else(|e| e.into_inner()) = e.to_string();
                        None
                    }
                }
            },
        )
        .await
        .with_context(|| {
            format!(
                "restarting the apiserver: {}",
                last_error.lock().unwrap_or_else(|e| e.into_inner())
            )
        })?;
        self.server = Some(server);
        Ok(())
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
