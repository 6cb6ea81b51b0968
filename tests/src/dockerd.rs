//! A Docker daemon of a test's own, beside the system's: its own socket, data root, exec
//! root, pid file, config and default bridge — a second node's Docker on one machine, and
//! one a test may stop and start again without disturbing the tests that share the
//! system daemon.
//!
//! Its default bridge is one the harness makes for it ([`Bridge`]) and names with
//! `--bridge`: a daemon started with `--bridge=none` deletes the host's `docker0` when it
//! starts, which leaves the system daemon's default network broken until it restarts.
//!
//! It runs with `--iptables=false`: a daemon that manages iptables removes and rebuilds
//! the shared `DOCKER` and `DOCKER-ISOLATION-*` chains when it starts, which takes the
//! system daemon's port mappings and isolation rules away. The kubelet's own rules (see
//! the kubelet's `network` module) are what let traffic through to its pods.
//!
//! Dropping it removes its containers and networks (so no bridge is left behind), stops
//! it and removes its directories and its default bridge. Daemons and bridges of test
//! processes that died before their guard ran are removed by the next
//! [`PrivateDockerd::start`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};

pub mod bridge;

pub use bridge::Bridge;

/// How long a daemon may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a daemon may take to exit after SIGTERM (it stops its containers first).
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

static DAEMONS: AtomicUsize = AtomicUsize::new(0);

/// Where every running private daemon is registered, so that the daemons of a killed test
/// process can be found and stopped.
fn registry_dir() -> PathBuf {
    std::env::temp_dir().join("minik8s-test-dockerds")
}

/// A private `dockerd`; stopped and removed when dropped.
pub struct PrivateDockerd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    registration: PathBuf,
    /// Dropped after the daemon stopped (fields drop after `Drop::drop`).
    bridge: Bridge,
}

impl PrivateDockerd {
    /// Starts a daemon, waits until it answers and loads the test images into it (built
    /// in the system daemon by `deploy/images.sh` first).
    pub async fn start() -> anyhow::Result<PrivateDockerd> {
        crate::kubelet::ensure_images()?;
        sweep_dead_daemons();
        bridge::sweep_dead();
        let bridge = Bridge::create()?;
        let dir = tempfile::Builder::new().prefix("mk8s-dockerd-").tempdir()?;
        std::fs::write(dir.path().join("daemon.json"), "{}\n")?;
        std::fs::create_dir_all(registry_dir())?;
        let registration = registry_dir().join(format!(
            "{}-{}",
            std::process::id(),
            DAEMONS.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&registration, dir.path().to_string_lossy().as_bytes())?;
        let mut daemon = PrivateDockerd {
            dir,
            child: None,
            registration,
            bridge,
        };
        daemon.start_again().await?;
        daemon.load_images()?;
        Ok(daemon)
    }

    /// `unix://…/docker.sock`, for `docker -H` and `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// The default bridge it runs with, of its own.
    pub fn bridge(&self) -> &Bridge {
        &self.bridge
    }

    /// The daemon's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// `docker -H <this daemon> args…`; its stdout if it succeeded.
    pub fn docker(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("docker")
            .arg("-H")
            .arg(self.host())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running the docker client")?;
        if !out.status.success() {
            bail!(
                "docker {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts the daemon on its directories (again, after [`PrivateDockerd::stop`]) and
    /// waits until it answers.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            bail!("the daemon is running already");
        }
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("dockerd.log"))?;
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(self.host())
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .arg(format!("--bridge={}", self.bridge.name()))
            .args(["--iptables=false", "--ip-masq=false"])
            // Containers that ignore SIGTERM do not hold up a stop for long.
            .args(["--shutdown-timeout", "2", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting dockerd")?;
        self.child = Some(child);
        let end = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if self
                .docker(&["version", "--format", "{{.Server.Version}}"])
                .is_ok()
            {
                return Ok(());
            }
            if !self.is_running() {
                bail!("dockerd exited while starting; its log:\n{}", self.log());
            }
            if tokio::time::Instant::now() >= end {
                bail!(
                    "dockerd did not answer within {START_TIMEOUT:?}; its log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the daemon with SIGTERM and waits for it to exit. Its containers die with it
    /// (no live restore) and stay, exited, in its data root.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        terminate(child.id());
        let end = tokio::time::Instant::now() + STOP_TIMEOUT;
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                bail!("dockerd did not stop within {STOP_TIMEOUT:?}; killed it");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Copies the test images from the system daemon: `docker save | docker -H … load`.
    fn load_images(&self) -> anyhow::Result<()> {
        let mut save = Command::new("docker")
            .args([
                "save",
                minik8s_kubelet::DEFAULT_PAUSE_IMAGE,
                crate::kubelet::BUSYBOX,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running docker save")?;
        let images = save.stdout.take().context("docker save's output")?;
        let load = Command::new("docker")
            .arg("-H")
            .arg(self.host())
            .args(["load", "--quiet"])
            .stdin(images)
            .output()
            .context("running docker load")?;
        let saved = save.wait_with_output()?;
        if !saved.status.success() || !load.status.success() {
            bail!(
                "copying the test images into the private daemon failed: {}{}",
                String::from_utf8_lossy(&saved.stderr),
                String::from_utf8_lossy(&load.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            empty_daemon(&self.host());
            terminate(child.id());
            let end = std::time::Instant::now() + STOP_TIMEOUT;
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < end {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.registration);
        // The temporary directory goes with `dir`.
    }
}

/// Removes every container and then every network of the daemon at `host`: a network's
/// bridge outlives the daemon.
fn empty_daemon(host: &str) {
    let docker = |args: &[&str]| {
        Command::new("docker")
            .args(["-H", host])
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let ids = docker(&["ps", "-aq"]).unwrap_or_default();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(ids);
        docker(&args);
    }
    docker(&["network", "prune", "--force"]);
}

fn terminate(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Stops the daemons of test processes that are gone, and removes their directories.
fn sweep_dead_daemons() {
    let Ok(entries) = std::fs::read_dir(registry_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = name.split('-').next() else {
            continue;
        };
        if Path::new("/proc").join(owner).exists() {
            continue;
        }
        let Ok(dir) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let dir = PathBuf::from(dir.trim());
        let daemon_pid = std::fs::read_to_string(dir.join("docker.pid")).unwrap_or_default();
        let daemon_pid = daemon_pid.trim();
        let cmdline =
            std::fs::read(Path::new("/proc").join(daemon_pid).join("cmdline")).unwrap_or_default();
        let host = format!("unix://{}", dir.join("docker.sock").display());
        // Only a daemon that is still that test's: pids are reused.
        if !daemon_pid.is_empty() && String::from_utf8_lossy(&cmdline).contains(&host) {
            empty_daemon(&host);
            let _ = Command::new("kill").args(["-TERM", daemon_pid]).status();
            let end = std::time::Instant::now() + STOP_TIMEOUT;
            while Path::new("/proc").join(daemon_pid).exists() && std::time::Instant::now() < end {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(entry.path());
    }
}
