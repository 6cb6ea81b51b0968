//! Starting and stopping the API server: opens the store, builds the registry and its
//! background loops, and serves HTTP until told to stop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use minik8s_storage::Store;
use minik8s_storage::embedded::EmbeddedStore;
use minik8s_storage::etcd::EtcdStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::controllers::{self, ControllerConfig};
use crate::http::{self, AppState, HttpConfig};
use crate::registry::Registry;
use crate::services::ServiceRanges;

/// Where objects are kept.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// A redb file in this directory.
    Embedded { data_dir: PathBuf },
    /// An etcd cluster: `host:port` of one or more members.
    Etcd { endpoints: Vec<String> },
}

impl StoreConfig {
    /// Parses `etcd://HOST:PORT[,HOST:PORT...]`.
    pub fn parse_etcd(url: &str) -> Result<StoreConfig, String> {
        let rest = url
            .strip_prefix("etcd://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| format!("datastore endpoint must start with etcd://, got {url}"))?;
        let endpoints: Vec<String> = rest
            .split(',')
            .map(|e| e.trim().trim_end_matches('/'))
            .filter(|e| !e.is_empty())
            .map(|e| e.strip_prefix("etcd://").unwrap_or(e).to_string())
            .collect();
        if endpoints.is_empty() {
            return Err(format!("no etcd endpoint in {url}"));
        }
        Ok(StoreConfig::Etcd { endpoints })
    }

    pub async fn open(&self) -> minik8s_storage::Result<Arc<dyn Store>> {
        Ok(match self {
            StoreConfig::Embedded { data_dir } => {
                std::fs::create_dir_all(data_dir).map_err(|e| {
                    minik8s_storage::Error::Embedded {
                        path: data_dir.display().to_string(),
                        message: format!("cannot create data directory: {e}"),
                    }
                })?;
                Arc::new(EmbeddedStore::open(&data_dir.join("minik8s.redb"))?)
            }
            StoreConfig::Etcd { endpoints } => Arc::new(EtcdStore::connect(endpoints).await?),
        })
    }
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub store: StoreConfig,
    pub http: HttpConfig,
    /// How often terminating namespaces are finished and history is compacted.
    pub housekeeping_interval: Duration,
    /// Events each resource's watch cache keeps for watchers that resume.
    pub watch_window: usize,
    /// Kubernetes events older than this are deleted (Kubernetes: one hour).
    pub event_ttl: Duration,
    /// The scheduler and node controller (pod CIDRs, heartbeats); `None` runs none, for
    /// an API server whose objects only clients change.
    pub controllers: Option<ControllerConfig>,
    /// Where services' cluster IPs and node ports come from.
    pub service_ranges: ServiceRanges,
    /// The address pods reach this server at (the `kubernetes` service's endpoint); by
    /// default the address it listens on (loopback when it listens on all addresses).
    pub advertise_address: Option<std::net::IpAddr>,
}

impl ServerConfig {
    pub fn new(listen: SocketAddr, store: StoreConfig) -> Self {
        ServerConfig {
            listen,
            store,
            http: HttpConfig::default(),
            housekeeping_interval: Duration::from_secs(2),
            watch_window: crate::watch_cache::DEFAULT_WINDOW,
            event_ttl: Duration::from_secs(3600),
            controllers: Some(ControllerConfig::default()),
            service_ranges: ServiceRanges::default(),
            advertise_address: None,
        }
    }
}

/// A running API server.
pub struct Server {
    addr: SocketAddr,
    registry: Arc<Registry>,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    /// Whether this server holds the controllers' lease (always false without
    /// controllers), and the task that gives it up at shutdown.
    leading: watch::Receiver<bool>,
    election: Option<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening the store: {0}")]
    Store(#[from] minik8s_storage::Error),
    #[error("starting the registry: {0}")]
    Registry(#[from] crate::ApiError),
    #[error("building the kubelet client: {0}")]
    Http(String),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl Server {
    pub async fn start(config: ServerConfig) -> Result<Server, StartError> {
        let store = config.store.open().await?;
        Self::start_with_store(config, store).await
    }

    pub async fn start_with_store(
        config: ServerConfig,
        store: Arc<dyn Store>,
    ) -> Result<Server, StartError> {
        let registry = Arc::new(
            Registry::with_service_ranges(
                store,
                config.watch_window,
                config.service_ranges.clone(),
            )
            .await?,
        );
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
        let (stop, mut stopped) = watch::channel(false);
        spawn_housekeeping(
            registry.clone(),
            config.housekeeping_interval,
            config.event_ttl,
            stop.subscribe(),
        );
        let controllers = config.controllers.clone().map(|mut c| {
            let ip = config.advertise_address.unwrap_or(match addr.ip() {
                ip if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
                ip => ip,
            });
            c.advertise.get_or_insert(SocketAddr::new(ip, addr.port()));
            c
        });
        let (leading, election) = match &controllers {
            // Only one process can open an embedded store's file: nobody to elect against.
            Some(c) if matches!(config.store, StoreConfig::Embedded { .. }) => {
                let leading = watch::channel(true).1;
                controllers::spawn(
                    registry.clone(),
                    c.clone(),
                    leading.clone(),
                    stop.subscribe(),
                );
                (leading, None)
            }
            Some(c) => {
                let (leading, election) = controllers::leader::spawn(
                    registry.store().clone(),
                    controllers::leader::identity(addr),
                    c.lease.clone(),
                    stop.subscribe(),
                );
                controllers::spawn(
                    registry.clone(),
                    c.clone(),
                    leading.clone(),
                    stop.subscribe(),
                );
                (leading, Some(election))
            }
            None => (watch::channel(false).1, None),
        };
        let app = http::router(AppState {
            registry: registry.clone(),
            config: config.http.clone(),
            kubelet_client: reqwest::Client::builder()
                .no_proxy()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| StartError::Http(e.to_string()))?,
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        });
        tracing::info!(%addr, "apiserver listening");
        Ok(Server {
            addr,
            registry,
            stop,
            task,
            leading,
            election,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// True while this server's controllers run: it holds the controllers' lease.
    pub fn leads_controllers(&self) -> bool {
        *self.leading.borrow()
    }

    /// Stops accepting requests and waits for open ones (watches end at once), and gives
    /// up the controllers' lease so that another API server takes over at once. Once
    /// every request is answered the store is let go of: an embedded store's file can
    /// be opened again.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.registry.close_watches();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        if let Some(election) = self.election {
            let _ = tokio::time::timeout(Duration::from_secs(5), election).await;
        }
    }

    /// Serves until the server task ends.
    pub async fn wait(self) -> std::io::Result<()> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Serves until `signal` resolves, then shuts down as [`Server::shutdown`] does.
    pub async fn serve_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        tokio::select! {
            r = &mut self.task => return match r {
                Ok(r) => r,
                Err(e) => Err(std::io::Error::other(e)),
            },
            _ = signal => {}
        }
        self.shutdown().await;
        Ok(())
    }
}

/// Reconcile loops that keep the store tidy: finishing deleted namespaces and compacting
/// history older than ten housekeeping rounds.
fn spawn_housekeeping(
    registry: Arc<Registry>,
    every: Duration,
    event_ttl: Duration,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut seen = std::collections::VecDeque::new();
        let mut ticker = tokio::time::interval(every);
        // Expiring events lists them all: about once a minute is enough.
        let expire_every = (event_ttl / 2).min(Duration::from_secs(60));
        let mut expired_at = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => return,
            }
            if expired_at.elapsed() >= expire_every {
                expired_at = tokio::time::Instant::now();
                if let Err(e) = registry.expire_events(event_ttl).await {
                    tracing::warn!(error = %e, "expiring events");
                }
            }
            if let Err(e) = registry.finalize_namespaces().await {
                tracing::warn!(error = %e, "finishing namespace deletion");
            }
            if let Ok(rev) = registry.store().current_revision().await {
                seen.push_back(rev);
                // Keep roughly five minutes of history, as Kubernetes' compactor does.
                let keep = (300 / every.as_secs().max(1)).max(10) as usize;
                if seen.len() > keep
                    && let Some(old) = seen.pop_front()
                    && old > 0
                    && let Err(e) = registry.store().compact(old).await
                {
                    tracing::debug!(error = %e, "compaction");
                }
            }
        }
    });
}
