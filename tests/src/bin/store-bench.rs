//! Measures durable create throughput of the storage backends.
//!
//! `store-bench [embedded|embedded-unbatched|etcd|all] [writes] [value-bytes]` runs, per
//! backend, `writes` creates from 1 client and then from 32 concurrent clients, and prints
//! creates per second. `embedded-unbatched` commits every write alone (no group commit),
//! for comparison; `etcd` starts a local etcd (see `minik8s_tests::etcd`).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use minik8s_storage::Store;
use minik8s_storage::embedded::{EmbeddedOptions, EmbeddedStore};
use minik8s_storage::etcd::EtcdStore;
use minik8s_tests::etcd::EtcdProcess;

const CLIENTS: [usize; 2] = [1, 32];

async fn run(
    store: Arc<dyn Store>,
    name: &str,
    writes: usize,
    value_bytes: usize,
) -> anyhow::Result<()> {
    for clients in CLIENTS {
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|client| {
                let store = store.clone();
                let count = writes / clients + usize::from(client < writes % clients);
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(count);
                    for i in 0..count {
                        let key = format!("/bench/{clients}/{client}/{i}");
                        let t = Instant::now();
                        store.create(&key, vec![b'x'; value_bytes]).await?;
                        latencies.push(t.elapsed());
                    }
                    anyhow::Ok(latencies)
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.context("client task")??);
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        println!(
            "{name:<20} clients={clients:<3} writes={:<6} {:>8.0} creates/s  p50={:?} p99={:?}",
            latencies.len(),
            latencies.len() as f64 / elapsed.as_secs_f64(),
            p(0.5),
            p(0.99),
        );
    }
    Ok(())
}

async fn embedded(
    name: &str,
    options: EmbeddedOptions,
    writes: usize,
    value_bytes: usize,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open_with(&dir.path().join("bench.redb"), options)?;
    run(Arc::new(store), name, writes, value_bytes).await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let backend = args.next().unwrap_or_else(|| "all".into());
    let writes: usize = args.next().map_or(Ok(2000), |s| s.parse())?;
    let value_bytes: usize = args.next().map_or(Ok(1024), |s| s.parse())?;
    let all = backend == "all";
    if all || backend == "embedded" {
        embedded("embedded", EmbeddedOptions::default(), writes, value_bytes).await?;
    }
    if all || backend == "embedded-unbatched" {
        let options = EmbeddedOptions {
            max_batch: 1,
            ..EmbeddedOptions::default()
        };
        embedded("embedded-unbatched", options, writes, value_bytes).await?;
    }
    if all || backend == "etcd" {
        let etcd = tokio::task::spawn_blocking(EtcdProcess::start).await??;
        let store = EtcdStore::connect(&[etcd.endpoint()]).await?;
        run(Arc::new(store), "etcd", writes, value_bytes).await?;
    }
    Ok(())
}
