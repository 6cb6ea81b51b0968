//! What the benchmark binaries share: percentiles of latency samples and finding the
//! binaries they measure.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

/// The `p` quantile (0.0–1.0, nearest rank) of `samples`, in milliseconds; 0 when empty.
pub fn percentile_ms(samples: &[Duration], p: f64) -> f64 {
    let mut v = samples.to_vec();
    v.sort();
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].as_secs_f64() * 1000.0
}

/// A binary built next to the running benchmark (`target/release/NAME`).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let bin = std::env::current_exe()?
        .parent()
        .context("bench binary directory")?
        .join(name);
    if !bin.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p minik8s-cmd -p minik8s-tests --bins`",
            bin.display()
        );
    }
    Ok(bin)
}

/// A loopback port free right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&ms, 0.5), 50.0);
        assert_eq!(percentile_ms(&ms, 0.99), 99.0);
        assert_eq!(percentile_ms(&ms, 0.0), 1.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }
}
