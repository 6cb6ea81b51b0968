//! `apiserver`: serves the Kubernetes core/v1 API from an embedded store or etcd.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use minik8s_api::duration::parse_duration_flag;
use minik8s_apiserver::controllers::leader::LeaseConfig;
use minik8s_apiserver::services::ServiceRanges;
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
    /// The address pods reach this API server at (the `kubernetes` service's endpoint).
    /// Default: the listen address, or this machine's primary address when listening on
    /// all addresses or on loopback.
    #[arg(long)]
    advertise_address: Option<std::net::IpAddr>,
    /// The range services' cluster IPs come from.
    #[arg(long, default_value = "10.96.0.0/16")]
    service_cluster_ip_range: minik8s_kubelet::network::Ipv4Net,
    /// The `kube-dns` service's cluster IP (default: the tenth address of
    /// --service-cluster-ip-range, 10.96.0.10 for the default range).
    #[arg(long)]
    cluster_dns: Option<std::net::Ipv4Addr>,
    /// The range services' node ports come from.
    #[arg(long, default_value = "30000-32767", value_parser = ServiceRanges::parse_ports)]
    service_node_port_range: (u16, u16),
    /// With etcd: how long a silent holder keeps the controllers' lease.
    #[arg(long, default_value = "15s", value_parser = parse_duration_flag)]
    leader_elect_lease_duration: Duration,
    /// With etcd: the holder stops leading when it could not renew for this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration_flag)]
    leader_elect_renew_deadline: Duration,
    /// With etcd: how often the lease is renewed or looked at.
    #[arg(long, default_value = "2s", value_parser = parse_duration_flag)]
    leader_elect_retry_period: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    minik8s_cmd::init_tracing();
    let args = Args::parse();
    let store = match &args.datastore_endpoint {
        Some(url) => StoreConfig::parse_etcd(url).map_err(anyhow::Error::msg)?,
        None => StoreConfig::Embedded {
            data_dir: args.data_dir.clone(),
        },
    };
    let mut config = ServerConfig::new(args.listen, store);
    config.advertise_address = Some(args.advertise_address.unwrap_or_else(
        || match args.listen.ip() {
            ip if ip.is_unspecified() || ip.is_loopback() => {
                minik8s_kubelet::node::detect_host_ip()
            }
            ip => ip,
        },
    ));
    config.service_ranges = ServiceRanges {
        cluster_ips: args.service_cluster_ip_range,
        node_ports: args.service_node_port_range,
    };
    if let Some(controllers) = &mut config.controllers {
        controllers.cluster_dns = args.cluster_dns;
        controllers.lease = LeaseConfig {
            duration: args.leader_elect_lease_duration,
            renew_deadline: args.leader_elect_renew_deadline,
            retry: args.leader_elect_retry_period,
        };
    }
    let server = Server::start(config)
        .await
        .context("starting the apiserver")?;
    println!("apiserver listening on {}", server.url());
    // On a signal, the controllers' lease is given up so that another API server on the
    // same etcd takes over at once.
    server
        .serve_until(minik8s_cmd::interrupted())
        .await
        .context("serving")?;
    Ok(())
}
