//! What a process costs, read from `/proc`: CPU time and resident memory. Used by the
//! idle-CPU tests and the benchmarks alike.

use std::process::Command;
use std::time::{Duration, Instant};

/// utime + stime of a process (all its threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses: state is field 3, utime 14
    // and stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Resident memory of a process, in MiB (`VmRSS`, or `VmHWM` for the peak).
pub fn mem_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// CPU use of several processes over one window, each in percent of one core.
pub struct CpuWindow {
    tick: f64,
    start: Instant,
    before: Vec<Option<u64>>,
    pids: Vec<u32>,
}

impl CpuWindow {
    /// Starts measuring `pids` now.
    pub fn start(pids: &[u32]) -> CpuWindow {
        CpuWindow {
            tick: clock_ticks_per_second(),
            start: Instant::now(),
            before: pids.iter().map(|&p| cpu_ticks(p)).collect(),
            pids: pids.to_vec(),
        }
    }

    /// Percent of one core each process used since the start (`None` for a process that
    /// was or is gone), and the window's length.
    pub fn finish(self) -> (Vec<Option<f64>>, Duration) {
        let elapsed = self.start.elapsed();
        let secs = elapsed.as_secs_f64();
        let pcts = self
            .pids
            .iter()
            .zip(&self.before)
            .map(|(&pid, before)| {
                let (a, b) = ((*before)?, cpu_ticks(pid)?);
                Some(b.saturating_sub(a) as f64 / self.tick / secs * 100.0)
            })
            .collect();
        (pcts, elapsed)
    }
}

/// Percent of one core `pid` uses over `window` in which it is asked for nothing.
pub async fn idle_cpu_percent(pid: u32, window: Duration) -> anyhow::Result<f64> {
    let measuring = CpuWindow::start(&[pid]);
    tokio::time::sleep(window).await;
    let (pcts, _) = measuring.finish();
    pcts[0].ok_or_else(|| anyhow::anyhow!("process {pid} is gone"))
}
