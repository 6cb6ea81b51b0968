//! Writes keys into an embedded store as fast as it can, for crash tests.
//!
//! `store-writer <file> <key-prefix> [tasks]` creates `<key-prefix><task>/<n>` with the value
//! `value of <key>` from `tasks` concurrent tasks (default 8), and prints each key on its own
//! line, flushed, only once its create has returned `Ok`: every printed key is durable. It
//! runs until killed, or exits with status 1 on the first failed write.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use minik8s_storage::Store;
use minik8s_storage::embedded::EmbeddedStore;

/// The value the writer stores at `key`.
fn value_of(key: &str) -> Vec<u8> {
    format!("value of {key}").into_bytes()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let usage = "usage: store-writer <file> <key-prefix> [tasks]";
    let path = PathBuf::from(args.next().context(usage)?);
    let prefix = args
        .next()
        .context(usage)?
        .into_string()
        .map_err(|_| anyhow::anyhow!("key prefix is not UTF-8"))?;
    let tasks: usize = match args.next() {
        Some(n) => n.to_string_lossy().parse().context("tasks")?,
        None => 8,
    };

    let store =
        Arc::new(EmbeddedStore::open(&path).with_context(|| format!("open {}", path.display()))?);
    let mut writers = Vec::new();
    for task in 0..tasks {
        let store = store.clone();
        let prefix = prefix.clone();
        writers.push(tokio::spawn(async move {
            for n in 0u64.. {
                let key = format!("{prefix}{task}/{n:08}");
                store
                    .create(&key, value_of(&key))
                    .await
                    .with_context(|| format!("create {key}"))?;
                let mut out = std::io::stdout().lock();
                writeln!(out, "{key}").context("stdout")?;
                out.flush().context("stdout")?;
            }
            anyhow::Ok(())
        }));
    }
    for writer in writers {
        if let Err(e) = writer.await.context("writer task")? {
            eprintln!("store-writer: {e:#}");
            std::process::exit(1);
        }
    }
    Ok(())
}
