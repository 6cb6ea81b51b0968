//! ConfigMaps and Secrets on a real kubelet and Docker: environment variables from keys
//! and `envFrom`, a container held with `CreateContainerConfigError` until what it needs
//! exists, and mounted volumes written as Kubernetes' AtomicWriter does that follow edits
//! made with the real kubectl without restarting the container.

use std::path::{Path, PathBuf};
use std::time::Duration;

use minik8s_api::k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use minik8s_client::Api;
use minik8s_tests::kubelet::{BUSYBOX, TestNode, container_status, restart_count, waiting_reason};
use minik8s_tests::{real_kubectl, wait_for};
use serde_json::json;

/// Unmounts what the kubelet mounted under the node's root (secret volumes' tmpfs) if a
/// test ends before its pods are deleted, so that no mount outlives the test.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        for target in mounts_under(&self.0) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&target)
                .status();
        }
    }
}

fn mounts_under(root: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root = root.to_string_lossy().into_owned();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|target| target.starts_with(&root))
        .map(str::to_string)
        .collect()
}

struct Kubectl {
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Kubectl {
    fn new(node: &TestNode) -> Kubectl {
        let dir = tempfile::tempdir().unwrap();
        Kubectl {
            kubeconfig: node.api.write_kubeconfig(dir.path()).unwrap(),
            _dir: dir,
        }
    }

    /// Runs the real kubectl; its stdout, or an error with stderr.
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new(real_kubectl())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut input = child.stdin.take().unwrap();
        if let Some(data) = stdin {
            input.write_all(data.as_bytes()).await?;
        }
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await??;
        anyhow::ensure!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn exec(&self, pod: &str, script: &str) -> anyhow::Result<String> {
        self.run(&["exec", pod, "--", "sh", "-c", script], None)
            .await
    }
}

fn sleeper(name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut pod = json!({
        "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "env; echo started; exec sleep 3600"]
        }]}
    });
    merge(&mut pod, extra);
    pod
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

fn waiting_message(pod: &Pod, name: &str) -> Option<String> {
    container_status(pod, name)?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .message
        .clone()
}

async fn create_config_map(node: &TestNode, value: serde_json::Value) -> ConfigMap {
    let api: Api<ConfigMap> = Api::namespaced(node.client.clone(), "default");
    api.create(&serde_json::from_value(value).unwrap())
        .await
        .unwrap()
}

async fn create_secret(node: &TestNode, value: serde_json::Value) -> Secret {
    let api: Api<Secret> = Api::namespaced(node.client.clone(), "default");
    api.create(&serde_json::from_value(value).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn environment_from_configmap_and_secret_keys_and_env_from() {
    let node = TestNode::start().await.unwrap();
    create_config_map(
        &node,
        json!({"metadata": {"name": "app-config"},
               "data": {"MODE": "fast", "LEVEL": "3", "1st": "y"}}),
    )
    .await;
    create_secret(
        &node,
        json!({"metadata": {"name": "app-secret"},
               "stringData": {"password": "s3cr3t", "USER": "admin"}}),
    )
    .await;
    node.create_pod(sleeper(
        "env",
        json!({"spec": {"containers": [{
            "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "env; echo started; exec sleep 3600"],
            "envFrom": [
                {"configMapRef": {"name": "app-config"}, "prefix": "CFG_"},
                {"configMapRef": {"name": "app-config"}},
                {"secretRef": {"name": "app-secret"}},
                {"configMapRef": {"name": "no-such-config", "optional": true}}
            ],
            "env": [
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "MODE"}}},
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "password"}}},
                {"name": "URL", "value": "db://$(USER):$(PASSWORD)@$(CFG_LEVEL)"},
                {"name": "ABSENT", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "nope", "optional": true}}},
                {"name": "ABSENT2", "valueFrom": {"secretKeyRef": {"name": "no-secret", "key": "k", "optional": true}}}
            ]
        }]}}),
    ))
    .await
    .unwrap();
    let log = node.wait_log("env", "main", "started").await.unwrap();
    for line in [
        "MODE=fast",
        "PASSWORD=s3cr3t",
        "CFG_MODE=fast",
        "CFG_LEVEL=3",
        "CFG_1st=y",
        "LEVEL=3",
        "USER=admin",
        "password=s3cr3t",
        "URL=db://admin:s3cr3t@3",
    ] {
        assert!(
            log.lines().any(|l| l == line),
            "{line} missing from:\n{log}"
        );
    }
    assert!(!log.contains("ABSENT"), "{log}");
    // Not a variable name without the prefix.
    assert!(!log.lines().any(|l| l.starts_with("1st=")), "{log}");

    // The same through the real kubectl's exec.
    let kubectl = Kubectl::new(&node);
    let out = kubectl.exec("env", "echo $MODE/$PASSWORD").await.unwrap();
    assert_eq!(out.trim(), "fast/s3cr3t");

    let events = node.events("env").await.unwrap();
    assert!(
        events.iter().any(|e| e
            == "InvalidEnvironmentVariableNames: Keys [1st] from the EnvFrom configMap \
                default/app-config were skipped since they are considered invalid environment \
                variable names."),
        "{events:#?}"
    );
}

#[tokio::test]
async fn missing_sources_hold_the_container_until_they_exist() {
    let node = TestNode::start().await.unwrap();
    let kubectl = Kubectl::new(&node);
    let key_ref = |kind: &str, name: &str| {
        json!({"spec": {"containers": [{
            "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "echo \"value=$VALUE\"; exec sleep 3600"],
            "env": [{"name": "VALUE", "valueFrom": {kind: {"name": name, "key": "k"}}}]
        }]}})
    };
    node.create_pod(sleeper("late-cm", key_ref("configMapKeyRef", "late")))
        .await
        .unwrap();
    node.create_pod(sleeper("late-secret", key_ref("secretKeyRef", "late-s")))
        .await
        .unwrap();
    let held = |message: &'static str| {
        move |p: &Pod| {
            waiting_reason(p, "main") == Some("CreateContainerConfigError")
                && waiting_message(p, "main").as_deref() == Some(message)
        }
    };
    node.wait_pod(
        "late-cm",
        "held for its configmap",
        Duration::from_secs(60),
        held("configmap \"late\" not found"),
    )
    .await
    .unwrap();
    node.wait_pod(
        "late-secret",
        "held for its secret",
        Duration::from_secs(60),
        held("secret \"late-s\" not found"),
    )
    .await
    .unwrap();
    let pods = node.pods();
    let pod = pods.get("late-cm").await.unwrap();
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Pending"));

    // The ConfigMap without the key: another message.
    kubectl
        .run(
            &["create", "configmap", "late", "--from-literal=other=1"],
            None,
        )
        .await
        .unwrap();
    node.wait_pod(
        "late-cm",
        "held for its key",
        Duration::from_secs(10),
        held("couldn't find key k in ConfigMap default/late"),
    )
    .await
    .unwrap();

    // With the key, the container starts within moments (a watch, not the back-off).
    kubectl
        .run(
            &[
                "patch",
                "configmap",
                "late",
                "-p",
                r#"{"data":{"k":"from-cm"}}"#,
            ],
            None,
        )
        .await
        .unwrap();
    kubectl
        .run(
            &[
                "create",
                "secret",
                "generic",
                "late-s",
                "--from-literal=k=from-secret",
            ],
            None,
        )
        .await
        .unwrap();
    for (pod, value) in [("late-cm", "from-cm"), ("late-secret", "from-secret")] {
        node.wait_pod(pod, "running", Duration::from_secs(8), |p| {
            container_status(p, "main")
                .and_then(|c| c.state.as_ref()?.running.as_ref())
                .is_some()
        })
        .await
        .unwrap();
        node.wait_log(pod, "main", &format!("value={value}"))
            .await
            .unwrap();
    }
    let events = node.events("late-cm").await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e == "Failed: Error: configmap \"late\" not found"),
        "{events:#?}"
    );
}

#[tokio::test]
async fn mounted_configmaps_and_secrets_follow_edits_in_the_same_container() {
    let node = TestNode::start().await.unwrap();
    let _unmount = Unmount(node.root.path().to_path_buf());
    let kubectl = Kubectl::new(&node);
    create_config_map(
        &node,
        json!({"metadata": {"name": "web-config"},
               "data": {"index.html": "v1", "app.conf": "mode=fast\n"}}),
    )
    .await;
    // Given as base64, as `kubectl create secret` sends it.
    create_secret(
        &node,
        json!({"metadata": {"name": "web-secret"}, "data": {"token": "czNjcjN0LXRva2Vu"}}),
    )
    .await;
    node.create_pod(sleeper(
        "web",
        json!({"spec": {
            "containers": [{
                "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "echo started; exec sleep 3600"],
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/config"},
                    {"name": "items", "mountPath": "/etc/items"},
                    {"name": "secret", "mountPath": "/etc/secret"}
                ]
            }],
            "volumes": [
                {"name": "config", "configMap": {"name": "web-config"}},
                {"name": "items", "configMap": {"name": "web-config", "defaultMode": 0o440,
                    "items": [{"key": "app.conf", "path": "conf/app.conf", "mode": 0o600},
                              {"key": "index.html", "path": "index"}]}},
                {"name": "secret", "secret": {"secretName": "web-secret", "defaultMode": 0o400}}
            ]
        }}),
    ))
    .await
    .unwrap();
    let pod = node.wait_ready("web").await.unwrap();
    let uid = pod.metadata.uid.clone().unwrap();
    let id = node.running_container(&pod, "main").await.unwrap();

    let out = kubectl
        .exec(
            "web",
            "cat /etc/config/index.html; echo; \
             test -L /etc/config/..data && echo data-is-link; \
             readlink /etc/config/index.html; readlink /etc/config/..data; \
             stat -L -c %a /etc/config/app.conf; \
             stat -c %a /etc/items/conf/app.conf /etc/items/..data/index; \
             ls /etc/items; cat /etc/secret/token; echo; stat -L -c %a /etc/secret/token; \
             touch /etc/config/new 2>/dev/null || echo read-only",
        )
        .await
        .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "v1", "{out}");
    assert_eq!(lines[1], "data-is-link", "{out}");
    assert_eq!(lines[2], "..data/index.html", "{out}");
    assert!(
        lines[3].starts_with("..2") && lines[3].len() == "..2026_12_03_10_00_00.123456789".len(),
        "{out}"
    );
    assert_eq!(lines[4], "644", "{out}");
    assert_eq!(lines[5], "600", "{out}");
    assert_eq!(lines[6], "440", "{out}");
    assert_eq!(&lines[7..9], ["conf", "index"], "{out}");
    assert_eq!(lines[9], "s3cr3t-token", "{out}");
    assert_eq!(lines[10], "400", "{out}");
    assert_eq!(lines[11], "read-only", "{out}");
    // The secret volume is a tmpfs on the host.
    let secret_dir = node.root.path().join(format!(
        "kubelet/pods/{uid}/volumes/kubernetes.io~secret/secret"
    ));
    assert!(
        mounts_under(node.root.path()).contains(&secret_dir.to_string_lossy().into_owned()),
        "{:?}",
        mounts_under(node.root.path())
    );

    // An edit with the real kubectl reaches the same container within 5 s.
    kubectl
        .run(
            &[
                "patch",
                "configmap",
                "web-config",
                "-p",
                r#"{"data":{"index.html":"v2"}}"#,
            ],
            None,
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    wait_for(
        "the edit in the container",
        Duration::from_secs(5),
        || async {
            let out = kubectl
                .exec("web", "cat /etc/config/index.html /etc/items/index")
                .await
                .ok()?;
            (out == "v2v2").then_some(())
        },
    )
    .await
    .unwrap();
    let took = started.elapsed();
    // And `apply` of a changed secret too.
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: web-secret\n\
                  stringData:\n  token: rotated\n  extra: new-key\n";
    kubectl
        .run(&["apply", "-f", "-"], Some(secret))
        .await
        .unwrap();
    wait_for("the rotated secret", Duration::from_secs(5), || async {
        let out = kubectl
            .exec("web", "cat /etc/secret/token; echo; cat /etc/secret/extra")
            .await
            .ok()?;
        (out == "rotated\nnew-key").then_some(())
    })
    .await
    .unwrap();
    let pod = node.pods().get("web").await.unwrap();
    assert_eq!(restart_count(&pod, "main"), 0);
    assert_eq!(node.running_container(&pod, "main").await.unwrap(), id);
    eprintln!("a configmap edit reached the container in {took:?}");

    // Deleting the pod removes its files and unmounts its secret volume.
    kubectl
        .run(&["delete", "pod", "web", "--wait=false"], None)
        .await
        .unwrap();
    node.wait_gone("web", Duration::from_secs(30))
        .await
        .unwrap();
    let pod_dir = node.root.path().join(format!("kubelet/pods/{uid}"));
    assert!(!pod_dir.exists(), "{} still exists", pod_dir.display());
    assert!(mounts_under(node.root.path()).is_empty());
}

#[tokio::test]
async fn a_missing_volume_source_holds_the_pod_until_it_exists() {
    let node = TestNode::start().await.unwrap();
    let _unmount = Unmount(node.root.path().to_path_buf());
    node.create_pod(sleeper(
        "mount",
        json!({"spec": {
            "containers": [{
                "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "cat /cfg/greeting; echo; exec sleep 3600"],
                "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"},
                                 {"name": "opt", "mountPath": "/opt/cfg"}]
            }],
            "volumes": [{"name": "cfg", "configMap": {"name": "absent"}},
                        {"name": "opt", "secret": {"secretName": "absent-too", "optional": true}}]
        }}),
    ))
    .await
    .unwrap();
    let message =
        "FailedMount: MountVolume.SetUp failed for volume \"cfg\" : configmap \"absent\" not found";
    wait_for("the FailedMount event", Duration::from_secs(30), || async {
        let events = node.events("mount").await.ok()?;
        events.iter().any(|e| e == message).then_some(())
    })
    .await
    .unwrap();
    let pod = node.pods().get("mount").await.unwrap();
    assert_eq!(waiting_reason(&pod, "main"), Some("ContainerCreating"));
    let started = std::time::Instant::now();
    create_config_map(
        &node,
        json!({"metadata": {"name": "absent"}, "data": {"greeting": "hello"}}),
    )
    .await;
    node.wait_log("mount", "main", "hello").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
}
