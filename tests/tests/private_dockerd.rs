//! A private Docker daemon (`tests/src/dockerd.rs`) leaves the machine's Docker as it
//! was: the system daemon's default bridge (`docker0`) is the same interface after one
//! was started and dropped, and a container on Docker's default network still runs —
//! which a daemon started with `--bridge=none` breaks, as it deletes `docker0` when it
//! starts. The private daemon runs on a bridge of its own, made for it and removed with
//! it.

use std::path::Path;
use std::process::{Command, Stdio};

use minik8s_tests::dockerd::PrivateDockerd;
use minik8s_tests::kubelet::BUSYBOX;

/// `docker args…` on the system daemon; its stdout.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running the docker client");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The interface index of `name`, `None` if there is no such interface.
fn ifindex(name: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("ifindex"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Runs a container on the default network of the daemon `docker` speaks to, and returns
/// the address it had there.
fn run_on_default_network(docker: impl Fn(&[&str]) -> String) -> String {
    docker(&[
        "run",
        "--rm",
        "--network",
        "bridge",
        BUSYBOX,
        "sh",
        "-c",
        "ip -4 -o addr show eth0",
    ])
}

#[tokio::test]
async fn private_daemon_keeps_the_system_default_bridge() {
    minik8s_tests::kubelet::ensure_images().unwrap();
    // The system daemon's default network and the interface behind it (`docker0` unless
    // the daemon is configured otherwise).
    let system_bridge = docker(&[
        "network",
        "inspect",
        "bridge",
        "--format",
        r#"{{index .Options "com.docker.network.bridge.name"}}"#,
    ]);
    assert!(
        !system_bridge.is_empty(),
        "the system daemon's default network has no bridge"
    );
    let before = ifindex(&system_bridge).unwrap_or_else(|| {
        panic!(
            "{system_bridge}, the system Docker daemon's default bridge, is missing before \
             the test (deleted by a daemon started with --bridge=none?); restart dockerd"
        )
    });

    let daemon = PrivateDockerd::start().await.unwrap();
    let bridge = daemon.bridge().name().to_string();
    let subnet = daemon.bridge().subnet();
    assert!(
        ifindex(&bridge).is_some(),
        "the private bridge {bridge} exists"
    );
    // The private daemon's default network is on its own bridge, and works.
    let own = daemon
        .docker(&[
            "network",
            "inspect",
            "bridge",
            "--format",
            r#"{{index .Options "com.docker.network.bridge.name"}} {{range .IPAM.Config}}{{.Subnet}}{{end}}"#,
        ])
        .unwrap();
    assert_eq!(own.trim(), format!("{bridge} {subnet}"));
    let inside = run_on_default_network(|args| daemon.docker(args).unwrap());
    let gateway = daemon.bridge().gateway().octets();
    let prefix = format!("{}.{}.{}.", gateway[0], gateway[1], gateway[2]);
    assert!(
        inside.contains(&format!("inet {prefix}")),
        "a container of the private daemon's default network is on {subnet}: {inside}"
    );
    assert_eq!(
        ifindex(&system_bridge).as_ref(),
        Some(&before),
        "{system_bridge} is the same interface while a private daemon runs"
    );
    drop(daemon);

    assert_eq!(
        ifindex(&bridge),
        None,
        "the private bridge {bridge} is removed with its daemon"
    );
    assert_eq!(
        ifindex(&system_bridge).as_ref(),
        Some(&before),
        "{system_bridge} is the same interface after a private daemon came and went"
    );
    // And the system daemon's default network still takes containers.
    let inside = run_on_default_network(docker);
    assert!(inside.contains("inet "), "{inside}");
}
