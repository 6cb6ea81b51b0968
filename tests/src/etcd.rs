//! Starts a real etcd for tests.
//!
//! [`EtcdProcess::start`] runs the `etcd` binary (from `$ETCD_BIN`, else `PATH`, else
//! `/usr/bin/etcd`) as a single-member cluster on free loopback ports with a temporary data
//! directory, and returns once it serves requests. Durability is etcd's default (it
//! `fsync`s). The process is killed and reaped when the guard is dropped. Failing to start
//! etcd is an error, never a silent skip.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long etcd may take to start serving.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// Attempts with fresh ports when another process grabbed one in the meantime.
const ATTEMPTS: usize = 5;

/// A running etcd, stopped on drop.
#[derive(Debug)]
pub struct EtcdProcess {
    child: Child,
    client_addr: SocketAddr,
    data_dir: tempfile::TempDir,
}

impl EtcdProcess {
    /// Starts etcd and waits until it answers. Fails with the reason (and the end of etcd's
    /// log) if it does not.
    pub fn start() -> anyhow::Result<EtcdProcess> {
        let binary = etcd_binary()?;
        let mut last_error = None;
        for _ in 0..ATTEMPTS {
            match Self::try_start(&binary) {
                Ok(process) => return Ok(process),
                Err(Attempt::PortTaken(e)) => last_error = Some(e),
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("no attempt made"))
            .context(format!("etcd did not start in {ATTEMPTS} attempts")))
    }

    /// The client endpoint, `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.client_addr.to_string()
    }

    /// The data directory (removed on drop).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    fn try_start(binary: &Path) -> Result<EtcdProcess, Attempt> {
        let failed = |e: anyhow::Error| Attempt::Failed(e);
        let data_dir = tempfile::Builder::new()
            .prefix("minik8s-etcd-")
            .tempdir()
            .context("create etcd data directory")
            .map_err(failed)?;
        let (client_port, peer_port) = free_port_pair()
            .context("find free ports")
            .map_err(failed)?;
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let log_path = data_dir.path().join("etcd.log");
        let log = std::fs::File::create(&log_path)
            .context("create etcd log file")
            .map_err(failed)?;
        let log_err = log.try_clone().context("etcd log file").map_err(failed)?;
        let child = Command::new(binary)
            .arg("--name=minik8s-test")
            .arg(format!(
                "--data-dir={}",
                data_dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=minik8s-test={peer_url}"))
            .arg("--initial-cluster-state=new")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("run {}", binary.display()))
            .map_err(failed)?;
        let mut process = EtcdProcess {
            child,
            client_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, client_port)),
            data_dir,
        };

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = process.child.try_wait().ok().flatten() {
                let log = log_tail(&log_path);
                let error = anyhow::anyhow!("etcd exited with {status} during start:\n{log}");
                return Err(if log.contains("address already in use") {
                    Attempt::PortTaken(error)
                } else {
                    Attempt::Failed(error)
                });
            }
            if healthy(process.client_addr) {
                return Ok(process);
            }
            if Instant::now() >= deadline {
                let log = log_tail(&log_path);
                return Err(Attempt::Failed(anyhow::anyhow!(
                    "etcd did not become healthy within {START_TIMEOUT:?}:\n{log}"
                )));
            }
            std::thread::sleep(PROBE_INTERVAL);
        }
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Attempt {
    /// Worth another try on other ports.
    PortTaken(anyhow::Error),
    Failed(anyhow::Error),
}

fn etcd_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("ETCD_BIN") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!(
            "etcd not found at ETCD_BIN={}: install etcd-server",
            path.display()
        );
    }
    let in_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("etcd"))
        .chain([PathBuf::from("/usr/bin/etcd")])
        .find(|candidate| candidate.is_file());
    in_path.ok_or_else(|| {
        anyhow::anyhow!("etcd not found: install etcd-server (or set ETCD_BIN to the binary)")
    })
}

/// Two distinct ports free right now (both are held until both are chosen).
fn free_port_pair() -> std::io::Result<(u16, u16)> {
    let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let b = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// Whether etcd's `/health` endpoint reports a healthy member (it needs a leader and a
/// working apply loop to do so).
fn healthy(addr: SocketAddr) -> bool {
    let probe = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.set_write_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    };
    probe().is_ok_and(|r| r.contains("\"health\":\"true\""))
}

fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A real etcd cluster of several members on loopback, stopped on drop.
pub struct EtcdCluster {
    members: Vec<Option<Child>>,
    clients: Vec<SocketAddr>,
    _data_dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `n` members that form one cluster and waits until every one is healthy.
    pub fn start(n: usize) -> anyhow::Result<EtcdCluster> {
        let binary = etcd_binary()?;
        let data_dir = tempfile::Builder::new()
            .prefix("minik8s-etcd-cluster-")
            .tempdir()
            .context("create etcd data directory")?;
        // Hold every port until all are chosen, so that none is picked twice.
        let listeners: Vec<TcpListener> = (0..2 * n)
            .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
            .collect::<std::io::Result<_>>()?;
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<_>>()?;
        drop(listeners);
        let peer = |i: usize| format!("http://127.0.0.1:{}", ports[2 * i + 1]);
        let initial: Vec<String> = (0..n).map(|i| format!("m{i}={}", peer(i))).collect();
        let mut members = Vec::new();
        let mut clients = Vec::new();
        for i in 0..n {
            let client = format!("http://127.0.0.1:{}", ports[2 * i]);
            let log = std::fs::File::create(data_dir.path().join(format!("m{i}.log")))?;
            let child = Command::new(&binary)
                .arg(format!("--name=m{i}"))
                .arg(format!(
                    "--data-dir={}",
                    data_dir.path().join(format!("m{i}")).display()
                ))
                .arg(format!("--listen-client-urls={client}"))
                .arg(format!("--advertise-client-urls={client}"))
                .arg(format!("--listen-peer-urls={}", peer(i)))
                .arg(format!("--initial-advertise-peer-urls={}", peer(i)))
                .arg(format!("--initial-cluster={}", initial.join(",")))
                .arg("--initial-cluster-state=new")
                .arg("--initial-cluster-token=minik8s-test")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("run {}", binary.display()))?;
            members.push(Some(child));
            clients.push(SocketAddr::from((Ipv4Addr::LOCALHOST, ports[2 * i])));
        }
        let cluster = EtcdCluster {
            members,
            clients,
            _data_dir: data_dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !cluster.clients.iter().all(|c| healthy(*c)) {
            if Instant::now() >= deadline {
                let logs: Vec<String> = (0..n)
                    .map(|i| log_tail(&cluster._data_dir.path().join(format!("m{i}.log"))))
                    .collect();
                bail!(
                    "etcd cluster of {n} did not become healthy within {START_TIMEOUT:?}:\n{}",
                    logs.join("\n---\n")
                );
            }
            std::thread::sleep(PROBE_INTERVAL);
        }
        Ok(cluster)
    }

    /// Client endpoints, `127.0.0.1:PORT`, one per member.
    pub fn endpoints(&self) -> Vec<String> {
        self.clients.iter().map(ToString::to_string).collect()
    }

    /// Kills member `i` (as a crash would).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
