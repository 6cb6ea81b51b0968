//! `apiserver`: serves the Kubernetes core/v1 API from an embedded store or etcd.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use minik8s_apiserver::{Server, ServerConfig, StoreConfig};

/// The MiniK8s API server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to serve the API on.
    #[arg(long, default_value = "127.0.0.1:6443", env = "MINIK8S_LISTEN")]
    listen: SocketAddr,
    /// Directory of the embedded store (used unless --datastore-endpoint is given).
    #[arg(long, default_value = "/var/lib/minik8s", env = "MINIK8S_DATA_DIR")]
    data_dir: PathBuf,
    /// etcd://HOST:PORT[,HOST:PORT...]: keep objects in etcd instead.
    #[arg(long, env = "MINIK8S_DATASTORE_ENDPOINT")]
    datastore_endpoint: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let store = match &args.datastore_endpoint {
        Some(url) => StoreConfig::parse_etcd(url).map_err(anyhow::Error::msg)?,
        None => StoreConfig::Embedded {
            data_dir: args.data_dir.clone(),
        },
    };
    let server = Server::start(ServerConfig::new(args.listen, store))
        .await
        .context("starting the apiserver")?;
    println!("apiserver listening on {}", server.url());
    tokio::select! {
        r = server.wait() => r.context("serving")?,
        _ = tokio::signal::ctrl_c() => {}
        _ = terminated() => {}
    }
    Ok(())
}

/// Resolves on SIGTERM (how systemd stops a service); never when it cannot be watched.
async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
