//! `kubectl get` against an in-process API server with pods in every state: the exact
//! text kubectl prints (AGE, which depends on the clock, masked), in every format.

mod kubectl_support;

use kubectl_support::{Cluster, mask_column, seed};

async fn seeded() -> Cluster {
    let c = Cluster::start().await;
    seed(&c).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_status_column_for_every_state() {
    let c = seeded().await;
    let out = c.kubectl(&["get", "pods"]).await;
    assert_eq!(
        mask_column(out.ok(), "AGE"),
        "\
NAME           READY   STATUS              RESTARTS      AGE
completed      0/1     Completed           0             ?
crashloop      0/1     CrashLoopBackOff    5 (20m ago)   ?
creating       0/1     ContainerCreating   0             ?
failed         0/1     Error               0             ?
initializing   0/1     Init:0/1            0             ?
pending        0/1     Pending             0             ?
running        1/1     Running             0             ?
terminating    1/1     Terminating         0             ?
"
    );
    assert_eq!(out.err, "");
    // The short names and the singular name work too.
    assert_eq!(c.kubectl(&["get", "po"]).await.ok(), out.out);
    let one = c.kubectl(&["get", "pod", "running"]).await;
    assert_eq!(
        mask_column(one.ok(), "AGE"),
        "NAME      READY   STATUS    RESTARTS   AGE\nrunning   1/1     Running   0          ?\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wide_adds_ip_node_and_gates() {
    let c = seeded().await;
    let out = c.kubectl(&["get", "pods", "-o", "wide"]).await;
    assert_eq!(
        mask_column(out.ok(), "AGE"),
        "\
NAME           READY   STATUS              RESTARTS      AGE   IP            NODE     NOMINATED NODE   READINESS GATES
completed      0/1     Completed           0             ?     10.244.0.6    node-1   <none>           <none>
crashloop      0/1     CrashLoopBackOff    5 (20m ago)   ?     10.244.0.8    node-1   <none>           <none>
creating       0/1     ContainerCreating   0             ?     <none>        node-1   <none>           <none>
failed         0/1     Error               0             ?     10.244.0.7    node-1   <none>           <none>
initializing   0/1     Init:0/1            0             ?     10.244.0.9    node-1   <none>           <none>
pending        0/1     Pending             0             ?     <none>        <none>   <none>           <none>
running        1/1     Running             0             ?     10.244.0.5    node-1   <none>           <none>
terminating    1/1     Terminating         0             ?     10.244.0.10   node-1   <none>           <none>
"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_namespaces_labels_and_selectors() {
    let c = seeded().await;
    let out = c
        .kubectl(&[
            "get",
            "pods",
            "-A",
            "--show-labels",
            "-l",
            "app in (running,elsewhere)",
        ])
        .await;
    assert_eq!(
        mask_column(out.ok(), "AGE"),
        "\
NAMESPACE   NAME        READY   STATUS    RESTARTS   AGE   LABELS
default     running     1/1     Running   0          ?     app=running,tier=demo
other       elsewhere   0/1     Pending   0          ?     app=elsewhere,tier=demo
"
    );
    let out = c
        .kubectl(&[
            "get",
            "pods",
            "--field-selector",
            "status.phase=Running",
            "--no-headers",
            "-L",
            "app",
        ])
        .await;
    assert_eq!(
        out.ok()
            .lines()
            .map(|l| l.split_whitespace().next().unwrap())
            .collect::<Vec<_>>(),
        ["crashloop", "running", "terminating"]
    );
    assert!(
        out.out.lines().all(|l| !l.starts_with("NAME")),
        "{}",
        out.out
    );
    assert!(
        out.out
            .starts_with("crashloop     0/1   CrashLoopBackOff   5 (20m ago)   "),
        "{}",
        out.out
    );
    assert!(out.out.ends_with("   terminating\n"), "{}", out.out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_yaml_and_json() {
    let c = seeded().await;
    let out = c
        .kubectl(&[
            "get",
            "pods",
            "-l",
            "app in (running,pending)",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(out.ok(), "pod/pending\npod/running\n");

    let out = c.kubectl(&["get", "pod", "running", "-o", "yaml"]).await;
    let yaml = out.ok();
    assert!(
        yaml.starts_with("apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: \""),
        "{yaml}"
    );
    for want in [
        "  labels:\n    app: running\n    tier: demo\n",
        "  containers:\n  - command:\n    - sleep\n    - \"3600\"\n",
        "        cpu: 500m\n        memory: 64Mi\n",
        "  - lastTransitionTime: \"2024-05-01T10:00:00Z\"\n    status: \"True\"\n    type: Initialized\n",
        "  phase: Running\n  podIP: 10.244.0.5\n  podIPs:\n  - ip: 10.244.0.5\n",
    ] {
        assert!(yaml.contains(want), "missing {want:?} in:\n{yaml}");
    }

    let out = c.kubectl(&["get", "pod", "running", "-o", "json"]).await;
    let json = out.ok();
    assert!(
        json.starts_with(
            "{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"Pod\",\n    \"metadata\": {\n"
        ),
        "{json}"
    );
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(value["status"]["podIP"], "10.244.0.5");

    // Several objects are a List.
    let out = c
        .kubectl(&["get", "pods", "-l", "app=running", "-o", "json"])
        .await;
    let list: serde_json::Value = serde_json::from_str(out.ok()).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["kind"], "Pod");
    assert_eq!(list["items"][0]["metadata"]["name"], "running");
    let out = c
        .kubectl(&["get", "pods", "-l", "app=none", "-o", "yaml"])
        .await;
    assert_eq!(
        out.ok(),
        "apiVersion: v1\nitems: []\nkind: List\nmetadata:\n  resourceVersion: \"\"\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_namespaces_events_and_several_types() {
    let c = seeded().await;
    let out = c.kubectl(&["get", "nodes", "-o", "wide"]).await;
    assert_eq!(
        mask_column(out.ok(), "AGE"),
        "\
NAME     STATUS   ROLES           AGE   VERSION           INTERNAL-IP   EXTERNAL-IP   OS-IMAGE              KERNEL-VERSION   CONTAINER-RUNTIME
node-1   Ready    control-plane   ?     v1.33.0-minik8s   10.0.0.1      <none>        Debian GNU/Linux 12   6.1.0            docker://24.0.7
"
    );
    let out = c.kubectl(&["get", "ns"]).await;
    assert_eq!(
        mask_column(out.ok(), "AGE"),
        "NAME          STATUS   AGE\ndefault       Active   ?\nkube-system   Active   ?\nother         Active   ?\n"
    );
    let out = c
        .kubectl(&[
            "get",
            "ev",
            "--field-selector",
            "involvedObject.name=running",
        ])
        .await;
    assert_eq!(
        out.ok(),
        "\
LAST SEEN   TYPE      REASON      OBJECT        MESSAGE
3h          Normal    Pulled      pod/running   Container image \"busybox:1.36\" already present on machine
120m        Warning   Unhealthy   pod/running   Liveness probe failed: HTTP probe failed with statuscode: 500
"
    );
    let out = c
        .kubectl(&["get", "pods,nodes", "-l", "app!=x,app!=pending"])
        .await;
    let (pods, nodes) = out.ok().split_once("\n\n").expect("two tables");
    assert_eq!(
        mask_column(&format!("{pods}\n"), "AGE"),
        "\
NAME               READY   STATUS              RESTARTS      AGE
pod/completed      0/1     Completed           0             ?
pod/crashloop      0/1     CrashLoopBackOff    5 (20m ago)   ?
pod/creating       0/1     ContainerCreating   0             ?
pod/failed         0/1     Error               0             ?
pod/initializing   0/1     Init:0/1            0             ?
pod/running        1/1     Running             0             ?
pod/terminating    1/1     Terminating         0             ?
"
    );
    assert_eq!(
        mask_column(nodes, "AGE"),
        "NAME          STATUS   ROLES           AGE   VERSION\nnode/node-1   Ready    control-plane   ?     v1.33.0-minik8s\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_lists_say_so_on_stderr() {
    let c = Cluster::start().await;
    let out = c.kubectl(&["get", "pods"]).await;
    assert_eq!((out.code, out.out.as_str()), (0, ""));
    assert_eq!(out.err, "No resources found in default namespace.\n");
    let out = c.kubectl(&["get", "pods", "-n", "kube-system"]).await;
    assert_eq!(out.err, "No resources found in kube-system namespace.\n");
    let out = c.kubectl(&["get", "pods", "-A"]).await;
    assert_eq!(out.err, "No resources found\n");
    let out = c.kubectl(&["get", "nodes"]).await;
    assert_eq!(out.err, "No resources found\n");
    // Names print nothing at all.
    let out = c.kubectl(&["get", "pods", "-o", "name"]).await;
    assert_eq!((out.code, out.out.as_str(), out.err.as_str()), (0, "", ""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_objects_are_errors_but_the_rest_print() {
    let c = seeded().await;
    let out = c.kubectl(&["get", "pod", "nope", "running"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.err,
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    assert!(out.out.contains("running   1/1"), "{}", out.out);
    let out = c
        .kubectl(&["get", "pod", "nope", "--ignore-not-found"])
        .await;
    assert_eq!((out.code, out.out.as_str(), out.err.as_str()), (0, "", ""));
    let out = c.kubectl(&["get", "pod", "running", "-A"]).await;
    assert_eq!(
        out.err,
        "error: a resource cannot be retrieved by name across all namespaces\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_joined_into_one_table() {
    let c = seeded().await;
    let whole = c.kubectl(&["get", "pods"]).await;
    let paged = c.kubectl(&["get", "pods", "--chunk-size", "3"]).await;
    assert_eq!(
        mask_column(paged.ok(), "AGE"),
        mask_column(whole.ok(), "AGE")
    );
}

/// A `Write` that the test can read while kubectl is still writing.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_changes_as_they_happen() {
    let c = seeded().await;
    let out = Shared::default();
    let mut sink = out.clone();
    let mut err = Vec::new();
    let kubeconfig = c.kubeconfig.display().to_string();
    let argv: Vec<std::ffi::OsString> = [
        "kubectl",
        "get",
        "pods",
        "-w",
        "-l",
        "tier=demo",
        "--kubeconfig",
        &kubeconfig,
    ]
    .iter()
    .map(Into::into)
    .collect();
    let mut stdin = std::io::empty();
    let watch = minik8s_kubectl::run(argv, &mut stdin, &mut sink, &mut err);
    let drive = async {
        kubectl_support::eventually("the initial list", async || {
            out.text().contains("terminating")
        })
        .await;
        let before = out.text().lines().count();
        assert_eq!(before, 9, "{}", out.text());
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a-new-pod-with-a-longer-name", "labels": {"tier": "demo"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        c.pods("default").create(&pod).await.unwrap();
        c.pods("default")
            .delete("a-new-pod-with-a-longer-name", &Default::default())
            .await
            .unwrap();
        kubectl_support::eventually("the new pod's rows", async || {
            out.text().matches("a-new-pod-with-a-longer-name").count() >= 2
        })
        .await;
    };
    tokio::select! {
        code = watch => panic!("the watch ended by itself with {code}: {}", String::from_utf8_lossy(&err)),
        () = drive => {}
    }
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    // Rows keep the columns of the table printed first (widths only grow).
    assert!(
        lines[0].starts_with("NAME           READY   STATUS"),
        "{text}"
    );
    let added = lines.iter().find(|l| l.starts_with("a-new-pod")).unwrap();
    assert!(
        added.starts_with(
            "a-new-pod-with-a-longer-name   0/1     Pending             0             "
        ),
        "{text}"
    );
}
