//! The systemd units in `deploy/systemd/`, as `deploy/install-services.sh` installs them:
//! `systemd-analyze verify` accepts them, and the kubelet unit's own command line, with the
//! settings file the script writes, runs a node whose pods outlive a `systemctl stop`
//! (SIGTERM to the kubelet alone, as `KillMode=process` does).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use minik8s_api::k8s_openapi::api::core::v1::Node;
use minik8s_client::Api;
use minik8s_kubelet::runtime::ContainerState;
use minik8s_tests::kubelet::{BUSYBOX, TestNode, cmd_binary, repo_root};
use minik8s_tests::wait_for;
use serde_json::json;

const T: Duration = Duration::from_secs(60);

/// Runs `deploy/install-services.sh --root ROOT --bin-dir BIN [extra...]`.
fn install(root: &Path, binaries: &[&str], extra: &[&str]) -> PathBuf {
    let bin = root.join("build");
    std::fs::create_dir_all(&bin).unwrap();
    for name in binaries {
        std::fs::copy(cmd_binary(name).unwrap(), bin.join(name)).unwrap();
    }
    let out = Command::new(repo_root().join("deploy/install-services.sh"))
        .arg("--root")
        .arg(root)
        .arg("--bin-dir")
        .arg(&bin)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install-services.sh failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    root.to_path_buf()
}

/// `Key=value` lines of one section of a unit file.
fn unit_section(unit: &str, section: &str) -> Vec<(String, String)> {
    let mut current = String::new();
    let mut entries = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
        } else if current == section
            && let Some((key, value)) = line.split_once('=')
        {
            entries.push((key.to_string(), value.to_string()));
        }
    }
    entries
}

/// An environment file's `KEY=value` lines.
fn environment_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// `ExecStart=` as systemd expands it: an unbraced `$VAR` becomes the variable's
/// whitespace-separated words.
fn exec_start(line: &str, env: &BTreeMap<String, String>) -> Vec<String> {
    line.split_whitespace()
        .flat_map(|word| match word.strip_prefix('$') {
            Some(var) => env
                .get(var)
                .map(|v| v.split_whitespace().map(String::from).collect())
                .unwrap_or_default(),
            None => vec![word.to_string()],
        })
        .collect()
}

#[test]
fn systemd_analyze_verifies_the_units() {
    let dir = tempfile::tempdir().unwrap();
    let root = install(dir.path(), &["apiserver", "kubelet"], &[]);
    // `verify` wants the commands where ExecStart says: point it at the installed ones.
    let checked = dir.path().join("checked");
    std::fs::create_dir_all(&checked).unwrap();
    let mut units = Vec::new();
    for name in ["minik8s-apiserver.service", "minik8s-kubelet.service"] {
        let unit = std::fs::read_to_string(root.join("etc/systemd/system").join(name)).unwrap();
        let prefix = format!("{}/usr/local/bin/", root.display());
        let path = checked.join(name);
        std::fs::write(&path, unit.replace("/usr/local/bin/", &prefix)).unwrap();
        units.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .expect("systemd-analyze (Debian package systemd) runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[tokio::test]
async fn the_kubelet_unit_runs_a_node_whose_pods_outlive_a_stop() {
    let node = TestNode::without_kubelet().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = install(
        dir.path(),
        &["kubelet"],
        &["--server", "http://192.0.2.1:6443"],
    );

    let unit =
        std::fs::read_to_string(root.join("etc/systemd/system/minik8s-kubelet.service")).unwrap();
    let service = unit_section(&unit, "Service");
    let get = |key: &str| {
        service
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("the kubelet unit has no {key}="))
    };
    assert_eq!(
        get("KillMode"),
        "process",
        "a stop must leave the pods running"
    );
    assert_eq!(get("Restart"), "always");

    // The settings file the script wrote, pointed at this test's API server.
    let env_path = get("EnvironmentFile");
    let env_path = root.join(env_path.trim_start_matches('-').trim_start_matches('/'));
    let mut env = environment_file(&std::fs::read_to_string(&env_path).unwrap());
    assert_eq!(env["MINIK8S_SERVER"], "http://192.0.2.1:6443");
    assert!(env["MINIK8S_KUBELET_ARGS"].contains("--root-dir"));
    env.insert("MINIK8S_SERVER".into(), node.api.url.clone());
    env.insert("MINIK8S_NODE_NAME".into(), node.node.clone());
    env.insert(
        "MINIK8S_KUBELET_ARGS".into(),
        format!(
            "--root-dir {} --port 0 --heartbeat-interval 2s --resync-interval 2s",
            node.root.path().join("kubelet").display()
        ),
    );

    let mut argv = exec_start(&get("ExecStart"), &env);
    assert_eq!(argv[0], "/usr/local/bin/minik8s-kubelet");
    argv[0] = format!("{}{}", root.display(), argv[0]);
    let log = std::fs::File::create(dir.path().join("kubelet.log")).unwrap();
    // systemd starts services with a clean environment plus the EnvironmentFile.
    let mut kubelet = Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .envs(&env)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let kubelet_log = || std::fs::read_to_string(dir.path().join("kubelet.log")).unwrap();

    let nodes: Api<Node> = Api::all(node.client.clone());
    let ready = wait_for("the unit's kubelet to register a Ready node", T, || async {
        let n = nodes.get_opt(&node.node).await.ok().flatten()?;
        n.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(())
    })
    .await;
    if let Err(e) = ready {
        let _ = kubelet.kill();
        panic!("{e}\nkubelet log:\n{}", kubelet_log());
    }

    node.create_pod(json!({
        "metadata": {"name": "served"},
        "spec": {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"]}]}
    }))
    .await
    .unwrap();
    let pod = node.wait_ready("served").await.unwrap();
    let uid = pod.metadata.uid.unwrap();
    let running: Vec<String> = node
        .containers(Some(&uid))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(running.len(), 2, "pause and app container");

    // `systemctl stop` with KillMode=process: SIGTERM to the kubelet alone.
    let pid = kubelet.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stopped = wait_for("the kubelet to exit on SIGTERM", T, || {
        let exited = kubelet.try_wait().unwrap();
        async move { exited }
    })
    .await
    .unwrap();
    assert!(
        stopped.success(),
        "kubelet exited with {stopped}:\n{}",
        kubelet_log()
    );

    let after = node.containers(Some(&uid)).await.unwrap();
    assert_eq!(
        after.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        running,
        "the pod's containers are the same after the stop"
    );
    assert!(
        after.iter().all(|c| c.state == ContainerState::Running),
        "and still running: {after:?}"
    );
}
