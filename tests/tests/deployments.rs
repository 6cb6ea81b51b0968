//! Deployments end to end: the real kubectl's `create deployment`, `rollout status`,
//! `set image`, `rollout undo|history|pause|resume|restart` and `scale` against a real
//! API server whose Deployment and ReplicaSet controllers run, with a kubelet on Docker
//! running the pods. A watch of the pods checks what a rolling update promises (never
//! fewer ready than allowed) and what Recreate does (no new pod while an old one lives);
//! a readiness probe that always fails runs into the progress deadline. Proportional
//! scaling mid-rollout runs without a kubelet: pods that never become ready hold a
//! rollout still.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use minik8s_tests::apiserver::{Backend, TestApiServer};
use minik8s_tests::kubelet::{BUSYBOX, TestNode};
use minik8s_tests::rest::Rest;
use minik8s_tests::{real_kubectl, wait_for};
use reqwest::StatusCode;
use serde_json::{Value, json};

const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";
const RSS: &str = "/apis/apps/v1/namespaces/default/replicasets";
const PODS: &str = "/api/v1/namespaces/default/pods";
const EVENTS: &str = "/api/v1/namespaces/default/events";
const T: Duration = Duration::from_secs(40);
/// A container that stops at once on SIGTERM, so replaced pods go quickly.
const SLEEP: &str = "trap 'exit 0' TERM; sleep 3600 & wait";

/// The real kubectl against one API server.
struct Kubectl {
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

struct Out {
    code: i32,
    out: String,
    err: String,
}

impl Kubectl {
    fn new(api: &TestApiServer) -> Kubectl {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = api.write_kubeconfig(dir.path()).unwrap();
        Kubectl { kubeconfig, dir }
    }

    async fn run_stdin(&self, args: &[&str], stdin: &str) -> Out {
        use tokio::io::AsyncWriteExt;
        // The flags go first: what follows `--` is the container's command.
        let mut child = tokio::process::Command::new(real_kubectl())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kubectl runs");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(70), child.wait_with_output())
            .await
            .expect("kubectl finished in time")
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&out.stdout).into_owned(),
            err: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn run(&self, args: &[&str]) -> Out {
        self.run_stdin(args, "").await
    }

    #[track_caller]
    fn check(args: &[&str], o: Out) -> String {
        assert_eq!(
            o.code, 0,
            "kubectl {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
            o.out, o.err
        );
        o.out
    }

    async fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args).await;
        Self::check(args, o)
    }

    /// `create deployment` as the real kubectl builds it, with the test's pull policy,
    /// a fast readiness probe and `adjust` applied, created with `kubectl create -f -`.
    async fn create_deployment(
        &self,
        name: &str,
        replicas: u32,
        ready: &str,
        adjust: impl FnOnce(&mut Value),
    ) {
        let replicas = format!("--replicas={replicas}");
        let image = format!("--image={BUSYBOX}");
        let args = [
            "create",
            "deployment",
            name,
            &image,
            &replicas,
            "--dry-run=client",
            "-o",
            "json",
            "--",
            "sh",
            "-c",
            SLEEP,
        ];
        let mut d: Value = serde_json::from_str(&self.ok(&args).await).unwrap();
        let c = &mut d["spec"]["template"]["spec"]["containers"][0];
        c["imagePullPolicy"] = json!("IfNotPresent");
        c["readinessProbe"] = json!({"exec": {"command": [ready]}, "periodSeconds": 1});
        adjust(&mut d);
        let out = self.run_stdin(&["create", "-f", "-"], &d.to_string()).await;
        assert_eq!(
            Self::check(&["create"], out).trim(),
            format!("deployment.apps/{name} created")
        );
    }

    async fn rollout_status(&self, name: &str) -> String {
        let target = format!("deployment/{name}");
        let out = self
            .ok(&["rollout", "status", &target, "--timeout=50s"])
            .await;
        assert!(
            out.trim_end()
                .ends_with(&format!("deployment \"{name}\" successfully rolled out")),
            "{out}"
        );
        out
    }
}

fn annotation<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj["metadata"]["annotations"][key].as_str().unwrap_or("")
}

fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or("")
}

fn condition<'a>(d: &'a Value, type_: &str) -> &'a Value {
    d["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

async fn get(api: &Rest, path: &str) -> Value {
    let (code, v) = api.get(path).await;
    assert_eq!(code, StatusCode::OK, "GET {path}: {v}");
    v
}

/// The deployment's ReplicaSets, by revision.
async fn replica_sets(api: &Rest, app: &str) -> BTreeMap<i64, Value> {
    let list = get(api, &format!("{RSS}?labelSelector=app%3D{app}")).await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rs| {
            let rev = annotation(rs, "deployment.kubernetes.io/revision");
            (rev.parse().unwrap_or(0), rs.clone())
        })
        .collect()
}

async fn event_messages(api: &Rest, involved: &str) -> Vec<String> {
    let list = get(api, EVENTS).await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["involvedObject"]["name"] == involved && e["reason"] == "ScalingReplicaSet")
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect()
}

fn ready(pod: &Value) -> bool {
    pod["metadata"].get("deletionTimestamp").is_none()
        && pod["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Follows the pods with `selector` by a list and then a watch, calling `see` with every
/// state they pass through, until dropped.
struct PodWatch {
    task: tokio::task::JoinHandle<()>,
}

impl PodWatch {
    async fn start(
        url: &str,
        selector: &str,
        mut see: impl FnMut(&BTreeMap<String, Value>) + Send + 'static,
    ) -> PodWatch {
        let api = Rest::new(url);
        let list = get(&api, &format!("{PODS}?labelSelector={selector}")).await;
        let mut pods: BTreeMap<String, Value> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (name(p).to_string(), p.clone()))
            .collect();
        see(&pods);
        let rv = list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        let url = format!(
            "{url}{PODS}?watch=true&labelSelector={selector}&resourceVersion={rv}&allowWatchBookmarks=false"
        );
        let resp = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let task = tokio::spawn(async move {
            let mut stream = resp.bytes_stream();
            let mut buf = Vec::new();
            while let Some(Ok(chunk)) = stream.next().await {
                buf.extend_from_slice(&chunk);
                while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                        continue;
                    };
                    let pod = &ev["object"];
                    match ev["type"].as_str() {
                        Some("ADDED" | "MODIFIED") => {
                            pods.insert(name(pod).to_string(), pod.clone());
                        }
                        Some("DELETED") => {
                            pods.remove(name(pod));
                        }
                        _ => continue,
                    }
                    see(&pods);
                }
            }
        });
        PodWatch { task }
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `create deployment` → `rollout status`; `set image` rolls while never fewer than two
/// of three pods are ready (25% surge and unavailability of 3: one extra, none missing);
/// `rollout history` shows the change cause; `rollout undo` goes back to the first
/// ReplicaSet, which keeps its old revision in `revision-history`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_keeps_pods_ready_and_undo_returns_to_the_old_replica_set() {
    let node = TestNode::start().await.unwrap();
    let api = Rest::new(&node.api.url);
    let k = Kubectl::new(&node.api);
    k.create_deployment("web", 3, "true", |_| {}).await;
    k.rollout_status("web").await;

    let rss = replica_sets(&api, "web").await;
    assert_eq!(rss.len(), 1, "{rss:?}");
    let first = rss[&1].clone();
    let hash = first["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(name(&first), format!("web-{hash}"));
    assert_eq!(
        first["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash.as_str()
    );
    assert_eq!(
        first["spec"]["template"]["metadata"]["labels"]["pod-template-hash"],
        hash.as_str()
    );
    assert_eq!(
        annotation(&first, "deployment.kubernetes.io/desired-replicas"),
        "3"
    );
    assert_eq!(
        annotation(&first, "deployment.kubernetes.io/max-replicas"),
        "4"
    );
    let owner = &first["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["name"].as_str()),
        (Some("Deployment"), Some("web"))
    );
    assert_eq!(owner["controller"], true);

    let d = get(&api, &format!("{DEPLOYS}/web")).await;
    assert_eq!(annotation(&d, "deployment.kubernetes.io/revision"), "1");
    for field in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ] {
        assert_eq!(d["status"][field], 3, "{field}: {}", d["status"]);
    }
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
    let available = condition(&d, "Available");
    assert_eq!(available["status"], "True");
    assert_eq!(available["reason"], "MinimumReplicasAvailable");
    assert_eq!(available["message"], "Deployment has minimum availability.");
    let progressing = condition(&d, "Progressing");
    assert_eq!(progressing["reason"], "NewReplicaSetAvailable");
    assert_eq!(
        progressing["message"],
        format!("ReplicaSet \"web-{hash}\" has successfully progressed.")
    );

    // Roll to another image reference while a watch counts the ready pods.
    // (fewest ready, every pod seen)
    let watched = Arc::new(Mutex::new((usize::MAX, Vec::<String>::new())));
    let seen = watched.clone();
    let _watch = PodWatch::start(&node.api.url, "app%3Dweb", move |pods| {
        let n = pods.values().filter(|p| ready(p)).count();
        let mut w = seen.lock().unwrap();
        w.0 = w.0.min(n);
        for name in pods.keys() {
            if !w.1.contains(name) {
                w.1.push(name.clone());
            }
        }
    })
    .await;
    let out = k
        .ok(&["set", "image", "deployment/web", "busybox=minik8s/busybox"])
        .await;
    assert_eq!(out.trim(), "deployment.apps/web image updated");
    k.ok(&[
        "annotate",
        "deployment/web",
        "kubernetes.io/change-cause=image minik8s/busybox",
    ])
    .await;
    k.rollout_status("web").await;
    let rss = wait_for("the change cause on the new ReplicaSet", T, || async {
        let rss = replica_sets(&api, "web").await;
        (rss.get(&2)
            .map(|rs| annotation(rs, "kubernetes.io/change-cause"))
            == Some("image minik8s/busybox"))
        .then_some(rss)
    })
    .await
    .unwrap();
    assert_eq!(rss.len(), 2);
    let second = &rss[&2];
    assert_eq!(second["spec"]["replicas"], 3);
    assert_eq!(rss[&1]["spec"]["replicas"], 0);
    assert_eq!(
        second["spec"]["template"]["spec"]["containers"][0]["image"],
        "minik8s/busybox"
    );
    let d = get(&api, &format!("{DEPLOYS}/web")).await;
    assert_eq!(annotation(&d, "deployment.kubernetes.io/revision"), "2");
    let (fewest, pods_seen) = watched.lock().unwrap().clone();
    assert!(
        fewest >= 2,
        "fewest ready pods during the rollout: {fewest}"
    );
    // The watch saw the new pods come: three old and three new at least.
    assert!(pods_seen.len() >= 6, "{pods_seen:?}");

    // What the controller said it did.
    let second_name = name(second).to_string();
    let messages = event_messages(&api, "web").await;
    for expected in [
        format!("Scaled up replica set web-{hash} to 3"),
        format!("Scaled up replica set {second_name} to 1"),
        format!("Scaled down replica set web-{hash} to 2 from 3"),
        format!("Scaled down replica set web-{hash} to 0 from 1"),
    ] {
        assert!(
            messages.contains(&expected),
            "{expected:?} not in {messages:?}"
        );
    }

    let history = k.ok(&["rollout", "history", "deployment/web"]).await;
    let lines: Vec<Vec<&str>> = history
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        lines.contains(&vec!["REVISION", "CHANGE-CAUSE"]),
        "{history}"
    );
    assert!(lines.contains(&vec!["1", "<none>"]), "{history}");
    assert!(
        lines.contains(&vec!["2", "image", "minik8s/busybox"]),
        "{history}"
    );

    // Undo: the first ReplicaSet again, now revision 3.
    let out = k.ok(&["rollout", "undo", "deployment/web"]).await;
    assert_eq!(out.trim(), "deployment.apps/web rolled back");
    k.rollout_status("web").await;
    let rss = replica_sets(&api, "web").await;
    assert_eq!(rss.len(), 2, "{rss:?}");
    let back = &rss[&3];
    assert_eq!(name(back), format!("web-{hash}"));
    assert_eq!(
        annotation(back, "deployment.kubernetes.io/revision-history"),
        "1"
    );
    assert_eq!(back["spec"]["replicas"], 3);
    assert_eq!(rss[&2]["spec"]["replicas"], 0);
    let d = get(&api, &format!("{DEPLOYS}/web")).await;
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        BUSYBOX
    );
    assert_eq!(annotation(&d, "deployment.kubernetes.io/revision"), "3");
    let fewest = watched.lock().unwrap().0;
    assert!(
        fewest >= 2,
        "fewest ready pods during the rollouts: {fewest}"
    );
}

/// `scale` to zero and back; a paused Deployment takes a new scale but not a new
/// template, and rolls once resumed; `rollout restart` rolls again; only
/// `revisionHistoryLimit` old ReplicaSets stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_pause_resume_restart_and_history_limit() {
    let node = TestNode::start().await.unwrap();
    let api = Rest::new(&node.api.url);
    let k = Kubectl::new(&node.api);
    k.create_deployment("app", 2, "true", |d| {
        d["spec"]["revisionHistoryLimit"] = json!(1);
    })
    .await;
    k.rollout_status("app").await;

    assert_eq!(
        k.ok(&["scale", "deployment/app", "--replicas=0"])
            .await
            .trim(),
        "deployment.apps/app scaled"
    );
    wait_for("no pods and no replicas", T, || async {
        let pods = get(&api, &format!("{PODS}?labelSelector=app%3Dapp")).await;
        let d = get(&api, &format!("{DEPLOYS}/app")).await;
        (pods["items"].as_array().unwrap().is_empty() && d["status"].get("replicas").is_none())
            .then_some(())
    })
    .await
    .unwrap();
    let rss = replica_sets(&api, "app").await;
    assert_eq!(rss.len(), 1);
    assert_eq!(rss[&1]["spec"]["replicas"], 0);
    k.ok(&["scale", "deployment/app", "--replicas=2"]).await;
    k.rollout_status("app").await;
    assert_eq!(replica_sets(&api, "app").await.len(), 1);

    // Paused: the template change waits, the scale does not.
    assert_eq!(
        k.ok(&["rollout", "pause", "deployment/app"]).await.trim(),
        "deployment.apps/app paused"
    );
    k.ok(&["set", "env", "deployment/app", "STAGE=two"]).await;
    k.ok(&["scale", "deployment/app", "--replicas=3"]).await;
    let d = wait_for("the paused deployment observed", T, || async {
        let d = get(&api, &format!("{DEPLOYS}/app")).await;
        (d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && d["status"]["availableReplicas"] == 3)
            .then_some(d)
    })
    .await
    .unwrap();
    assert_eq!(condition(&d, "Progressing")["reason"], "DeploymentPaused");
    assert_eq!(condition(&d, "Progressing")["status"], "Unknown");
    assert_eq!(
        condition(&d, "Progressing")["message"],
        "Deployment is paused"
    );
    let rss = replica_sets(&api, "app").await;
    assert_eq!(rss.len(), 1, "a paused deployment rolled: {rss:?}");
    assert_eq!(rss[&1]["spec"]["replicas"], 3);
    assert_eq!(
        annotation(&rss[&1], "deployment.kubernetes.io/desired-replicas"),
        "3"
    );

    assert_eq!(
        k.ok(&["rollout", "resume", "deployment/app"]).await.trim(),
        "deployment.apps/app resumed"
    );
    k.rollout_status("app").await;
    let rss = replica_sets(&api, "app").await;
    assert_eq!(rss.len(), 2);
    assert_eq!(rss[&2]["spec"]["replicas"], 3);
    assert_eq!(
        rss[&2]["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "STAGE", "value": "two"}])
    );

    // Restart: a new ReplicaSet; the oldest, beyond the limit of one, goes.
    assert_eq!(
        k.ok(&["rollout", "restart", "deployment/app"]).await.trim(),
        "deployment.apps/app restarted"
    );
    k.rollout_status("app").await;
    let rss = wait_for("one old ReplicaSet kept", T, || async {
        let rss = replica_sets(&api, "app").await;
        (rss.len() == 2).then_some(rss)
    })
    .await
    .unwrap();
    assert_eq!(rss.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
    let restarted = &rss[&3]["spec"]["template"]["metadata"]["annotations"];
    assert!(
        restarted.get("kubectl.kubernetes.io/restartedAt").is_some(),
        "{restarted}"
    );
}

/// Recreate: the old pods are all gone before a new one is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_removes_the_old_pods_before_making_new_ones() {
    let node = TestNode::start().await.unwrap();
    let api = Rest::new(&node.api.url);
    let k = Kubectl::new(&node.api);
    k.create_deployment("re", 2, "true", |d| {
        d["spec"]["strategy"] = json!({"type": "Recreate"});
    })
    .await;
    k.rollout_status("re").await;
    let old_hash = replica_sets(&api, "re").await[&1]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();

    let overlap = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = overlap.clone();
    let _watch = PodWatch::start(&node.api.url, "app%3Dre", move |pods| {
        let hash = |p: &Value| {
            p["metadata"]["labels"]["pod-template-hash"]
                .as_str()
                .map(str::to_string)
        };
        // A pod that finished no longer runs, as Kubernetes' Recreate counts it.
        let running =
            |p: &&Value| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
        let old: Vec<&str> = pods
            .values()
            .filter(|p| hash(p).as_deref() == Some(&old_hash))
            .filter(running)
            .map(name)
            .collect();
        let new: Vec<&str> = pods
            .values()
            .filter(|p| hash(p).as_deref() != Some(&old_hash))
            .map(name)
            .collect();
        if !old.is_empty() && !new.is_empty() {
            seen.lock()
                .unwrap()
                .push(format!("{new:?} while {old:?} ran"));
        }
    })
    .await;
    k.ok(&["set", "image", "deployment/re", "busybox=minik8s/busybox"])
        .await;
    k.rollout_status("re").await;
    let rss = replica_sets(&api, "re").await;
    assert_eq!(rss[&1]["spec"]["replicas"], 0);
    assert_eq!(rss[&2]["spec"]["replicas"], 2);
    assert_eq!(rss[&2]["status"]["readyReplicas"], 2, "{}", rss[&2]);
    let overlap = overlap.lock().unwrap().clone();
    assert!(
        overlap.is_empty(),
        "new pods while old ones lived: {overlap:?}"
    );
    let messages = event_messages(&api, "re").await;
    let old_name = name(&rss[&1]).to_string();
    assert!(
        messages.contains(&format!("Scaled down replica set {old_name} to 0 from 2")),
        "{messages:?}"
    );
}

/// Pods that never become ready: `Progressing` turns False with
/// `ProgressDeadlineExceeded`, and `rollout status` fails with kubectl's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_that_never_becomes_ready_exceeds_its_progress_deadline() {
    let node = TestNode::start().await.unwrap();
    let api = Rest::new(&node.api.url);
    let k = Kubectl::new(&node.api);
    k.create_deployment("stuck", 1, "false", |d| {
        d["spec"]["progressDeadlineSeconds"] = json!(3);
    })
    .await;
    let d = wait_for("the progress deadline exceeded", T, || async {
        let d = get(&api, &format!("{DEPLOYS}/stuck")).await;
        (condition(&d, "Progressing")["reason"] == "ProgressDeadlineExceeded").then_some(d)
    })
    .await
    .unwrap();
    let rs = replica_sets(&api, "stuck").await[&1].clone();
    let progressing = condition(&d, "Progressing");
    assert_eq!(progressing["status"], "False");
    assert_eq!(
        progressing["message"],
        format!("ReplicaSet \"{}\" has timed out progressing.", name(&rs))
    );
    let available = condition(&d, "Available");
    assert_eq!(available["status"], "False");
    assert_eq!(available["reason"], "MinimumReplicasUnavailable");
    assert_eq!(d["status"]["unavailableReplicas"], 1);
    let out = k
        .run(&["rollout", "status", "deployment/stuck", "--timeout=20s"])
        .await;
    assert_eq!(out.code, 1, "{} {}", out.out, out.err);
    assert_eq!(
        out.err.trim(),
        "error: deployment \"stuck\" exceeded its progress deadline"
    );
}

/// Scaled mid-rollout, a Deployment shares the new replicas out in proportion: with
/// pods that never become ready (no kubelet), 10 replicas rolling with 25% surge and
/// unavailability hold at 8 old and 5 new; scaled to 20 (at most 25) they become 15 and
/// 10, as Kubernetes computes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_mid_rollout_is_proportional() {
    let srv = TestApiServer::start_with_controllers(Backend::Embedded)
        .await
        .unwrap();
    let api = Rest::new(&srv.url);
    let d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "big"},
        "spec": {
            "replicas": 10,
            "selector": {"matchLabels": {"app": "big"}},
            "template": {
                "metadata": {"labels": {"app": "big"}},
                "spec": {"containers": [{"name": "c", "image": BUSYBOX}]},
            },
        },
    });
    api.create(DEPLOYS, &d).await;
    let sizes = |rss: &BTreeMap<i64, Value>| -> Vec<i64> {
        rss.values()
            .map(|rs| rs["spec"]["replicas"].as_i64().unwrap_or(-1))
            .collect()
    };
    wait_for("the first ReplicaSet", T, || async {
        (sizes(&replica_sets(&api, "big").await) == [10]).then_some(())
    })
    .await
    .unwrap();
    let (code, body) = api
        .merge(
            &format!("{DEPLOYS}/big"),
            &json!({"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let rss = wait_for("the rollout held at 8 old and 5 new", T, || async {
        let rss = replica_sets(&api, "big").await;
        (sizes(&rss) == [8, 5]).then_some(rss)
    })
    .await
    .unwrap();
    let (old, new) = (name(&rss[&1]).to_string(), name(&rss[&2]).to_string());

    let (code, body) = api
        .merge(
            &format!("{DEPLOYS}/big"),
            &json!({"spec": {"replicas": 20}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let rss = wait_for("15 old and 10 new", T, || async {
        let rss = replica_sets(&api, "big").await;
        (sizes(&rss) == [15, 10]).then_some(rss)
    })
    .await
    .unwrap();
    for rs in rss.values() {
        assert_eq!(
            annotation(rs, "deployment.kubernetes.io/desired-replicas"),
            "20"
        );
        assert_eq!(
            annotation(rs, "deployment.kubernetes.io/max-replicas"),
            "25"
        );
    }
    let messages = event_messages(&api, "big").await;
    for expected in [
        format!("Scaled up replica set {old} to 10"),
        format!("Scaled up replica set {new} to 3"),
        format!("Scaled down replica set {old} to 8 from 10"),
        format!("Scaled up replica set {new} to 5 from 3"),
        format!("Scaled up replica set {old} to 15 from 8"),
        format!("Scaled up replica set {new} to 10 from 5"),
    ] {
        assert!(
            messages.contains(&expected),
            "{expected:?} not in {messages:?}"
        );
    }
    let d = wait_for("the status of 25 pending pods", T, || async {
        let d = get(&api, &format!("{DEPLOYS}/big")).await;
        (d["status"]["replicas"] == 25).then_some(d)
    })
    .await
    .unwrap();
    assert_eq!(d["status"]["updatedReplicas"], 10);
    assert_eq!(d["status"]["unavailableReplicas"], 25);
    assert!(d["status"].get("availableReplicas").is_none());
    assert_eq!(condition(&d, "Available")["status"], "False");
    assert_eq!(
        condition(&d, "Available")["reason"],
        "MinimumReplicasUnavailable"
    );
    assert_eq!(condition(&d, "Progressing")["reason"], "ReplicaSetUpdated");
}
