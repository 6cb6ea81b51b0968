//! StatefulSets on real Docker, driven with the real kubectl: pods made one after another
//! (each only once the one before is Ready), a deleted member back under its name, scale
//! down from the highest ordinal, orphans adopted, hostnames that are the pods' names, a rolling update
//! from the highest ordinal down to the partition, and `rollout undo` back to the first
//! revision.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use minik8s_api::k8s_openapi::api::core::v1::Pod;
use minik8s_client::{ListParams, WatchEvent};
use minik8s_tests::kubelet::{BUSYBOX, TestNode, condition};
use minik8s_tests::{real_kubectl, wait_for};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);

/// A pod event as the watch delivered it.
#[derive(Clone, Debug)]
struct Seen {
    kind: &'static str,
    name: String,
    uid: String,
    ready: bool,
    deleting: bool,
    revision: String,
}

/// Every pod event from now on, in the order the server sent them.
async fn record_pods(node: &TestNode) -> Arc<Mutex<Vec<Seen>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut stream = node.pods().watch(&ListParams::default(), "").await.unwrap();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some(Ok(ev)) = stream.next().await {
            let (kind, pod): (&'static str, Pod) = match ev {
                WatchEvent::Added(p) => ("ADDED", p),
                WatchEvent::Modified(p) => ("MODIFIED", p),
                WatchEvent::Deleted(p) => ("DELETED", p),
                _ => continue,
            };
            let m = &pod.metadata;
            log.lock().unwrap().push(Seen {
                kind,
                name: m.name.clone().unwrap_or_default(),
                uid: m.uid.clone().unwrap_or_default(),
                ready: condition(&pod, "Ready") == Some("True"),
                deleting: m.deletion_timestamp.is_some(),
                revision: m
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("controller-revision-hash").cloned())
                    .unwrap_or_default(),
            });
        }
    });
    seen
}

fn position(seen: &[Seen], what: &str, f: impl Fn(&Seen) -> bool) -> usize {
    seen.iter()
        .position(f)
        .unwrap_or_else(|| panic!("never saw {what}: {seen:#?}"))
}

struct Kubectl(PathBuf);

impl Kubectl {
    fn new(node: &TestNode, dir: &Path) -> Kubectl {
        Kubectl(node.api.write_kubeconfig(dir).unwrap())
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new(real_kubectl())
            .args(args)
            .env("KUBECONFIG", &self.0)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        serde_json::from_str(&self.run(&args, None)).unwrap()
    }

    /// `kubectl get` in a check that may be polled.
    fn get(&self, args: &[&str]) -> Option<Value> {
        let mut full = vec!["get"];
        full.extend(args);
        full.extend(["-o", "json"]);
        let out = std::process::Command::new(real_kubectl())
            .args(&full)
            .env("KUBECONFIG", &self.0)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }
}

/// A StatefulSet whose pods turn Ready about a second after they start.
fn web(replicas: u32) -> String {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                    "name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", "sleep 1; touch /tmp/ready; exec sleep 3600"],
                    "readinessProbe": {"exec": {"command": ["test", "-e", "/tmp/ready"]},
                        "periodSeconds": 1},
                }]}
            }
        }
    })
    .to_string()
}

/// The set's status once it reports `ready` ready replicas of `replicas`.
async fn wait_ready(kubectl: &Kubectl, replicas: i64) -> Value {
    wait_for(&format!("{replicas} ready replicas"), T, || async {
        let sts = kubectl.get(&["sts", "web"])?;
        let s = &sts["status"];
        (s["replicas"] == replicas
            && s["readyReplicas"].as_i64().unwrap_or(0) == replicas
            && s["observedGeneration"] == sts["metadata"]["generation"])
            .then(|| sts["status"].clone())
    })
    .await
    .unwrap()
}

fn pod_names(kubectl: &Kubectl) -> Vec<String> {
    let pods = kubectl.json(&["get", "pods", "-l", "app=web"]);
    let mut names: Vec<String> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_come_in_order_keep_their_names_and_leave_from_the_top() {
    let node = TestNode::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(&node, dir.path());
    let seen = record_pods(&node).await;
    kubectl.run(&["apply", "-f", "-"], Some(&web(3)));
    let status = wait_ready(&kubectl, 3).await;

    // Each pod was created only after the one before it was Ready.
    {
        let seen = seen.lock().unwrap();
        for k in 1..3 {
            let before = format!("web-{}", k - 1);
            let ready = position(&seen, &format!("{before} ready"), |s| {
                s.name == before && s.ready
            });
            let name = format!("web-{k}");
            let added = position(&seen, &format!("{name} added"), |s| {
                s.name == name && s.kind == "ADDED"
            });
            assert!(ready < added, "{name} came before {before} was ready");
        }
    }
    assert_eq!(pod_names(&kubectl), ["web-0", "web-1", "web-2"]);
    // One revision, named after the set, on every pod, current and update alike.
    let revision = status["updateRevision"].as_str().unwrap().to_string();
    assert_eq!(status["currentRevision"], revision);
    assert_eq!(status["currentReplicas"], 3);
    assert_eq!(status["updatedReplicas"], 3);
    assert_eq!(status["availableReplicas"], 3);
    assert_eq!(status["collisionCount"], 0);
    let revisions = kubectl.json(&["get", "controllerrevisions"]);
    let items = revisions["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{revisions}");
    assert_eq!(items[0]["metadata"]["name"], revision);
    assert_eq!(items[0]["revision"], 1);
    assert_eq!(
        items[0]["metadata"]["ownerReferences"][0]["kind"],
        "StatefulSet"
    );
    assert_eq!(
        items[0]["data"]["spec"]["template"]["$patch"], "replace",
        "{revisions}"
    );
    let hash = revision.strip_prefix("web-").unwrap();
    assert_eq!(
        items[0]["metadata"]["labels"]["controller-revision-hash"],
        hash
    );

    // Identity: name, hostname, subdomain and labels.
    let pod = kubectl.json(&["get", "pod", "web-1"]);
    assert_eq!(pod["spec"]["hostname"], "web-1");
    assert_eq!(pod["spec"]["subdomain"], "web");
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "web-1");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "1");
    assert_eq!(labels["controller-revision-hash"], revision);
    assert_eq!(pod["metadata"]["ownerReferences"][0]["controller"], true);
    for name in ["web-0", "web-2"] {
        let out = kubectl.run(&["exec", name, "--", "hostname"], None);
        assert_eq!(out.trim(), name);
    }

    // A deleted member comes back under its name, as a new pod.
    let old_uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    kubectl.run(&["delete", "pod", "web-1"], None);
    let new_uid = wait_for("web-1 back and ready", T, || async {
        let pod = kubectl.get(&["pod", "web-1"])?;
        let uid = pod["metadata"]["uid"].as_str()?.to_string();
        let ready = pod["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        (uid != old_uid && ready).then_some(uid)
    })
    .await
    .unwrap();
    assert_ne!(new_uid, old_uid);
    wait_ready(&kubectl, 3).await;

    // Scaling down removes web-2, and only once it is gone starts on web-1.
    kubectl.run(&["scale", "statefulset", "web", "--replicas=1"], None);
    wait_ready(&kubectl, 1).await;
    wait_for("only web-0 left", T, || async {
        (pod_names(&kubectl) == ["web-0"]).then_some(())
    })
    .await
    .unwrap();
    {
        let seen = seen.lock().unwrap();
        let web2_gone = position(&seen, "web-2 deleted", |s| {
            s.name == "web-2" && s.kind == "DELETED"
        });
        let web1_doomed = position(&seen, "web-1 terminating", |s| {
            s.name == "web-1" && s.uid == new_uid && (s.deleting || s.kind == "DELETED")
        });
        assert!(
            web2_gone < web1_doomed,
            "web-1 was deleted before web-2 was gone"
        );
        assert!(
            !seen
                .iter()
                .any(|s| s.name == "web-0" && (s.deleting || s.kind == "DELETED")),
            "web-0 was touched"
        );
    }

    // Orphaned by deleting its set, web-0 and the revision are adopted by the next set of
    // that name and selector rather than made again.
    let web0 = kubectl.json(&["get", "pod", "web-0"])["metadata"]["uid"].clone();
    kubectl.run(&["delete", "statefulset", "web", "--cascade=orphan"], None);
    wait_for("web-0 orphaned", T, || async {
        let pod = kubectl.get(&["pod", "web-0"])?;
        pod["metadata"]
            .get("ownerReferences")
            .is_none()
            .then_some(())
    })
    .await
    .unwrap();
    kubectl.run(&["apply", "-f", "-"], Some(&web(1)));
    let set_uid = kubectl.json(&["get", "sts", "web"])["metadata"]["uid"].clone();
    wait_for("web-0 adopted", T, || async {
        let pod = kubectl.get(&["pod", "web-0"])?;
        (pod["metadata"]["ownerReferences"][0]["uid"] == set_uid).then_some(())
    })
    .await
    .unwrap();
    wait_ready(&kubectl, 1).await;
    let pod = kubectl.json(&["get", "pod", "web-0"]);
    assert_eq!(pod["metadata"]["uid"], web0);
    assert_eq!(pod["metadata"]["ownerReferences"][0]["controller"], true);
    // Its revision too: the same one, no collision.
    let status = kubectl.json(&["get", "sts", "web"])["status"].clone();
    assert_eq!(status["updateRevision"], revision);
    assert_eq!(status["collisionCount"], 0);
    let revisions = kubectl.json(&["get", "controllerrevisions"]);
    assert_eq!(
        revisions["items"].as_array().unwrap().len(),
        1,
        "{revisions}"
    );
    assert_eq!(
        revisions["items"][0]["metadata"]["ownerReferences"][0]["uid"],
        set_uid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_goes_from_the_top_down_to_the_partition() {
    let node = TestNode::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(&node, dir.path());
    kubectl.run(&["apply", "-f", "-"], Some(&web(3)));
    let first = wait_ready(&kubectl, 3).await;
    let old = first["currentRevision"].as_str().unwrap().to_string();

    let seen = record_pods(&node).await;
    kubectl.run(
        &[
            "patch",
            "statefulset",
            "web",
            "-p",
            r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":1}}}}"#,
        ],
        None,
    );
    // The same image under its fully qualified name: a new template for Kubernetes, and
    // one the node has.
    let image = format!("docker.io/{BUSYBOX}");
    kubectl.run(
        &["set", "image", "statefulset/web", &format!("app={image}")],
        None,
    );

    // web-2 then web-1 are replaced; web-0, below the partition, is not.
    let status = wait_for("two pods updated", T, || async {
        let sts = kubectl.get(&["sts", "web"])?;
        let s = &sts["status"];
        (s["updatedReplicas"] == 2
            && s["readyReplicas"] == 3
            && s["observedGeneration"] == sts["metadata"]["generation"])
            .then(|| s.clone())
    })
    .await
    .unwrap();
    let new = status["updateRevision"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(status["currentRevision"], old);
    assert_eq!(status["currentReplicas"], 1);
    let pods = kubectl.json(&["get", "pods", "-l", "app=web"]);
    for pod in pods["items"].as_array().unwrap() {
        let name = pod["metadata"]["name"].as_str().unwrap();
        let (rev, img) = if name == "web-0" {
            (&old, BUSYBOX.to_string())
        } else {
            (&new, image.clone())
        };
        assert_eq!(pod["metadata"]["labels"]["controller-revision-hash"], *rev);
        assert_eq!(pod["spec"]["containers"][0]["image"], img, "{name}");
    }
    {
        let seen = seen.lock().unwrap();
        let web2_doomed = position(&seen, "web-2 terminating", |s| {
            s.name == "web-2" && s.deleting
        });
        let web2_ready = position(&seen, "new web-2 ready", |s| {
            s.name == "web-2" && s.revision == new && s.ready
        });
        let web1_doomed = position(&seen, "web-1 terminating", |s| {
            s.name == "web-1" && s.deleting
        });
        assert!(
            web2_doomed < web2_ready && web2_ready < web1_doomed,
            "{seen:#?}"
        );
        assert!(!seen.iter().any(|s| s.name == "web-0" && s.deleting));
    }

    // Partition 0 finishes the update, and the new revision becomes current.
    kubectl.run(
        &[
            "patch",
            "statefulset",
            "web",
            "-p",
            r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#,
        ],
        None,
    );
    wait_for("the update finished", T, || async {
        let s = kubectl.get(&["sts", "web"])?["status"].clone();
        (s["currentRevision"] == new.as_str()
            && s["updatedReplicas"] == 3
            && s["currentReplicas"] == 3
            && s["readyReplicas"] == 3)
            .then_some(())
    })
    .await
    .unwrap();
    let revisions = kubectl.json(&["get", "controllerrevisions"]);
    let mut numbers: Vec<(String, i64)> = revisions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metadata"]["name"].as_str().unwrap().to_string(),
                r["revision"].as_i64().unwrap(),
            )
        })
        .collect();
    numbers.sort_by_key(|(_, n)| *n);
    assert_eq!(numbers, [(old.clone(), 1), (new.clone(), 2)]);

    // Undoing goes back to the first template: its revision again, renumbered the newest.
    kubectl.run(&["rollout", "undo", "statefulset/web"], None);
    wait_for("the rollback finished", T, || async {
        let s = kubectl.get(&["sts", "web"])?["status"].clone();
        (s["updateRevision"] == old.as_str()
            && s["currentRevision"] == old.as_str()
            && s["updatedReplicas"] == 3
            && s["readyReplicas"] == 3)
            .then_some(())
    })
    .await
    .unwrap();
    let sts = kubectl.json(&["get", "sts", "web"]);
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"],
        BUSYBOX
    );
    let revisions = kubectl.json(&["get", "controllerrevisions"]);
    let mut numbers: Vec<(String, i64)> = revisions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metadata"]["name"].as_str().unwrap().to_string(),
                r["revision"].as_i64().unwrap(),
            )
        })
        .collect();
    numbers.sort_by_key(|(_, n)| *n);
    assert_eq!(numbers, [(new, 2), (old, 3)]);
}
