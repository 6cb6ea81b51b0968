//! Jobs end to end: the real kubectl, the API server's Job controller, and a kubelet on
//! real Docker. Completions and parallelism (watched: never more pods running than
//! allowed), the back-off limit, the active deadline, the TTL after finishing, and the
//! job-tracking finalizer that no counted pod keeps.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use minik8s_api::resource::{EVENTS, JOBS, PODS};
use minik8s_api::watch::WatchEvent;
use minik8s_client::{DynamicApi, ListParams};
use minik8s_tests::kubelet::{BUSYBOX, TestNode};
use minik8s_tests::{real_kubectl, wait_for};
use serde_json::{Value, json};

const FINALIZER: &str = "batch.kubernetes.io/job-tracking";

struct Cluster {
    node: TestNode,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let node = TestNode::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = node.api.write_kubeconfig(dir.path()).unwrap();
        Cluster {
            node,
            kubeconfig,
            dir,
        }
    }

    /// Runs the real kubectl; its exit code and stdout (stderr on failure).
    async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> (i32, String) {
        use tokio::io::AsyncWriteExt;
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
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(data) = stdin {
            input.write_all(data.as_bytes()).await.unwrap();
        }
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(80), child.wait_with_output())
            .await
            .expect("kubectl finished in time")
            .unwrap();
        let text = if out.status.success() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        };
        (out.status.code().unwrap_or(-1), text)
    }

    fn jobs(&self) -> DynamicApi {
        DynamicApi::new(self.node.client.clone(), &JOBS, Some("default".into()))
    }

    fn pods(&self) -> DynamicApi {
        DynamicApi::new(self.node.client.clone(), &PODS, Some("default".into()))
    }

    async fn create_job(&self, job: Value) -> Value {
        self.jobs().create(&job).await.unwrap()
    }

    async fn job(&self, name: &str) -> Option<Value> {
        self.jobs().get_opt(name).await.unwrap()
    }

    /// Waits for the Job's condition `kind` to be true.
    async fn wait_condition(&self, name: &str, kind: &str, deadline: Duration) -> Value {
        let found = wait_for(&format!("job {name} {kind}"), deadline, || async {
            let job = self.job(name).await?;
            condition(&job, kind).is_some().then_some(job)
        })
        .await;
        match found {
            Ok(job) => job,
            Err(e) => panic!(
                "{e}; the job: {:#}",
                self.job(name).await.unwrap_or_default()
            ),
        }
    }

    async fn job_pods(&self, name: &str) -> Vec<Value> {
        let params = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}"));
        self.pods().list(&params).await.unwrap().items
    }

    /// `reason: message` of the events about an object, oldest first.
    async fn events(&self, name: &str) -> Vec<String> {
        let api = DynamicApi::new(self.node.client.clone(), &EVENTS, Some("default".into()));
        let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
        let mut events = api.list(&params).await.unwrap().items;
        events.sort_by(|a, b| {
            a["firstTimestamp"]
                .as_str()
                .cmp(&b["firstTimestamp"].as_str())
        });
        events
            .iter()
            .map(|e| format!("{}: {}", s(&e["reason"]), s(&e["message"])))
            .collect()
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn condition<'a>(job: &'a Value, kind: &str) -> Option<&'a Value> {
    job["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind && c["status"] == "True")
}

fn condition_types(job: &Value) -> Vec<&str> {
    job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| s(&c["type"]))
        .collect()
}

fn job(name: &str, spec: Value, script: &str) -> Value {
    let mut spec = spec;
    spec["template"] = json!({"spec": {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", script]}]}});
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec})
}

fn active(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
        && !matches!(s(&pod["status"]["phase"]), "Succeeded" | "Failed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_job_runs_to_completion() {
    let c = Cluster::start().await;
    // The real `kubectl create job`, as generated; the image exists only locally, so its
    // pull policy is set before the Job is created.
    let (code, generated) = c
        .kubectl(
            &[
                "create",
                "job",
                "hello",
                "--image",
                BUSYBOX,
                "--dry-run=client",
                "-o",
                "json",
                "--",
                "sh",
                "-c",
                "echo hello from the job",
            ],
            None,
        )
        .await;
    assert_eq!(code, 0, "{generated}");
    let mut manifest: Value = serde_json::from_str(&generated).unwrap();
    manifest["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
        json!("IfNotPresent");
    let (code, out) = c
        .kubectl(&["create", "-f", "-"], Some(&manifest.to_string()))
        .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "job.batch/hello created");
    let (code, out) = c
        .kubectl(
            &[
                "wait",
                "--for=condition=complete",
                "job/hello",
                "--timeout=60s",
            ],
            None,
        )
        .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "job.batch/hello condition met");

    let job = c.job("hello").await.unwrap();
    let status = &job["status"];
    assert_eq!(status["succeeded"], 1, "{status:#}");
    assert!(
        status.get("failed").is_none() && status.get("active").is_none(),
        "{status:#}"
    );
    assert_eq!(status["ready"], 0);
    assert_eq!(status["terminating"], 0);
    assert_eq!(status["uncountedTerminatedPods"], json!({}));
    assert!(status["startTime"].is_string() && status["completionTime"].is_string());
    assert_eq!(condition_types(&job), ["SuccessCriteriaMet", "Complete"]);
    for kind in ["SuccessCriteriaMet", "Complete"] {
        let cond = condition(&job, kind).unwrap();
        assert_eq!(cond["reason"], "CompletionsReached");
        assert_eq!(cond["message"], "Reached expected number of succeeded pods");
    }

    let pods = c.job_pods("hello").await;
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    let pod_name = s(&pod["metadata"]["name"]);
    assert!(pod_name.starts_with("hello-"), "{pod_name}");
    assert_eq!(pod["status"]["phase"], "Succeeded");
    assert!(pod["metadata"].get("finalizers").is_none(), "{pod:#}");
    let owner = &pod["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Job");
    assert_eq!(owner["controller"], true);
    assert_eq!(owner["uid"], job["metadata"]["uid"]);
    let (_, log) = c.kubectl(&["logs", "job/hello"], None).await;
    assert_eq!(log.trim(), "hello from the job");

    let events = c.events("hello").await;
    assert_eq!(
        events,
        [
            format!("SuccessfulCreate: Created pod: {pod_name}"),
            "Completed: Job completed".to_string()
        ]
    );
    // `kubectl create job` as it is, sent straight: the Job is stored, its image pull
    // policy defaulted from the `:latest` tag as Kubernetes does.
    let (code, out) = c
        .kubectl(
            &["create", "job", "plain", "--image", BUSYBOX, "--", "true"],
            None,
        )
        .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "job.batch/plain created");
    let plain = c.job("plain").await.unwrap();
    let container = &plain["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"], json!(["true"]));
    assert_eq!(container["imagePullPolicy"], "Always");
    assert_eq!(plain["spec"]["template"]["spec"]["restartPolicy"], "Never");
    let (code, table) = c.kubectl(&["get", "jobs"], None).await;
    assert_eq!(code, 0, "{table}");
    assert!(table.contains("hello"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_run_at_most_parallelism_at_once() {
    let c = Cluster::start().await;
    let pods = c.pods();
    let start = pods.list(&ListParams::default()).await.unwrap();
    let rv = start.resource_version().unwrap_or("").to_string();
    let mut stream = pods
        .watch(
            &ListParams::default().labels("batch.kubernetes.io/job-name=five"),
            &rv,
        )
        .await
        .unwrap();
    // Every state of every pod as the watch shows it, counted as it arrives.
    let watcher = tokio::spawn(async move {
        let mut states: std::collections::HashMap<String, bool> = Default::default();
        let (mut most, mut seen) = (0, std::collections::BTreeSet::new());
        while let Some(Ok(ev)) = stream.next().await {
            let (pod, gone) = match ev {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => (p, false),
                WatchEvent::Deleted(p) => (p, true),
                _ => continue,
            };
            let name = s(&pod["metadata"]["name"]).to_string();
            seen.insert(name.clone());
            states.insert(name, !gone && active(&pod));
            most = most.max(states.values().filter(|a| **a).count());
            let done = states.values().filter(|a| !**a).count();
            if done >= 5 && states.values().all(|a| !a) {
                break;
            }
        }
        (most, seen.len())
    });
    c.create_job(job(
        "five",
        json!({"completions": 5, "parallelism": 2}),
        "sleep 1",
    ))
    .await;
    let (code, out) = c
        .kubectl(
            &[
                "wait",
                "--for=condition=complete",
                "job/five",
                "--timeout=80s",
            ],
            None,
        )
        .await;
    assert_eq!(code, 0, "{out}");
    let (most, pods_seen) = tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .expect("the watch saw every pod finish")
        .unwrap();
    assert_eq!(
        most, 2,
        "at most parallelism pods active at once, and that many"
    );
    assert_eq!(pods_seen, 5);
    let job = c.job("five").await.unwrap();
    assert_eq!(job["status"]["succeeded"], 5, "{job:#}");
    assert!(job["status"].get("failed").is_none());
    let pods = c.job_pods("five").await;
    assert_eq!(pods.len(), 5);
    assert!(
        pods.iter()
            .all(|p| p["metadata"].get("finalizers").is_none()
                && p["status"]["phase"] == "Succeeded")
    );
    let events = c.events("five").await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.starts_with("SuccessfulCreate: Created pod: five-"))
            .count(),
        5,
        "{events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_pods_reach_the_backoff_limit() {
    let c = Cluster::start().await;
    c.create_job(job("fails", json!({"backoffLimit": 1}), "exit 1"))
        .await;
    let job = c
        .wait_condition("fails", "Failed", Duration::from_secs(60))
        .await;
    assert_eq!(condition_types(&job), ["FailureTarget", "Failed"]);
    for kind in ["FailureTarget", "Failed"] {
        let cond = condition(&job, kind).unwrap();
        assert_eq!(cond["reason"], "BackoffLimitExceeded");
        assert_eq!(
            cond["message"],
            "Job has reached the specified backoff limit"
        );
    }
    assert_eq!(job["status"]["failed"], 2, "{job:#}");
    assert!(job["status"].get("succeeded").is_none());
    assert!(job["status"].get("completionTime").is_none());
    let pods = c.job_pods("fails").await;
    assert_eq!(pods.len(), 2, "one pod, and one replacement");
    assert!(pods.iter().all(|p| p["status"]["phase"] == "Failed"));
    // The replacement came after the back-off (10 s after the first failure).
    let mut started: Vec<jiff::Timestamp> = pods
        .iter()
        .map(|p| s(&p["metadata"]["creationTimestamp"]).parse().unwrap())
        .collect();
    started.sort();
    let gap = started[1].as_second() - started[0].as_second();
    assert!(gap >= 10, "replaced after {gap} s");
    let events = c.events("fails").await;
    assert_eq!(
        events.last().map(String::as_str),
        Some("BackoffLimitExceeded: Job has reached the specified backoff limit"),
        "{events:#?}"
    );
    let (code, out) = c
        .kubectl(
            &[
                "wait",
                "--for=condition=failed",
                "job/fails",
                "--timeout=10s",
            ],
            None,
        )
        .await;
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_deadline_stops_a_running_job() {
    let c = Cluster::start().await;
    c.create_job(job(
        "slow",
        json!({"activeDeadlineSeconds": 4}),
        "exec sleep 3600",
    ))
    .await;
    // It runs first.
    wait_for("a running pod", Duration::from_secs(30), || async {
        let pods = c.job_pods("slow").await;
        pods.iter()
            .any(|p| p["status"]["phase"] == "Running")
            .then_some(())
    })
    .await
    .unwrap();
    let job = c
        .wait_condition("slow", "Failed", Duration::from_secs(60))
        .await;
    assert_eq!(condition_types(&job), ["FailureTarget", "Failed"]);
    let cond = condition(&job, "Failed").unwrap();
    assert_eq!(cond["reason"], "DeadlineExceeded");
    assert_eq!(
        cond["message"],
        "Job was active longer than specified deadline"
    );
    let status = &job["status"];
    assert!(status.get("active").is_none(), "{status:#}");
    assert_eq!(status["terminating"], 0);
    assert_eq!(status["failed"], 1, "the stopped pod counts as failed");
    let start: jiff::Timestamp = s(&status["startTime"]).parse().unwrap();
    let failed_at: jiff::Timestamp = s(&cond["lastTransitionTime"]).parse().unwrap();
    assert!(failed_at.as_second() - start.as_second() >= 4);
    // The pod was stopped: it is gone, or finished.
    let pods = c.job_pods("slow").await;
    assert!(pods.iter().all(|p| !active(p)), "{pods:#?}");
    let events = c.events("slow").await;
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("SuccessfulDelete: Deleted pod: slow-")),
        "{events:#?}"
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("DeadlineExceeded: Job was active longer than specified deadline")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_go_after_their_ttl() {
    let c = Cluster::start().await;
    c.create_job(job("short", json!({"ttlSecondsAfterFinished": 0}), "true"))
        .await;
    c.create_job(job("later", json!({"ttlSecondsAfterFinished": 3}), "true"))
        .await;
    let kept = c
        .wait_condition("later", "Complete", Duration::from_secs(60))
        .await;
    wait_for("job short deleted", Duration::from_secs(30), || async {
        c.job("short").await.is_none().then_some(())
    })
    .await
    .unwrap();
    let finished: jiff::Timestamp = s(&condition(&kept, "Complete").unwrap()["lastTransitionTime"])
        .parse()
        .unwrap();
    wait_for("job later deleted", Duration::from_secs(30), || async {
        c.job("later").await.is_none().then_some(())
    })
    .await
    .unwrap();
    let gone_after = jiff::Timestamp::now().as_second() - finished.as_second();
    assert!(gone_after >= 3, "deleted {gone_after} s after it finished");
}

/// A Job's pods carry the finalizer while they run, and lose it once counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_pods_hold_the_tracking_finalizer() {
    let c = Cluster::start().await;
    c.create_job(job("held", json!({"completions": 1}), "sleep 2"))
        .await;
    let pod = wait_for("a running pod", Duration::from_secs(30), || async {
        c.job_pods("held")
            .await
            .into_iter()
            .find(|p| p["status"]["phase"] == "Running")
    })
    .await
    .unwrap();
    assert_eq!(pod["metadata"]["finalizers"], json!([FINALIZER]));
    assert_eq!(
        pod["metadata"]["labels"]["batch.kubernetes.io/job-name"],
        "held"
    );
    let job = c
        .wait_condition("held", "Complete", Duration::from_secs(60))
        .await;
    assert_eq!(job["status"]["succeeded"], 1);
    let pods = c.job_pods("held").await;
    assert!(pods[0]["metadata"].get("finalizers").is_none());
}
