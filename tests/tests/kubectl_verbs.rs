//! Our kubectl's writing verbs and the rest, against an in-process API server: create,
//! apply (created / configured / unchanged), delete (by name, file, selector, --all,
//! graceful, --now, --force, waiting), logs, version, api-resources, completion, and
//! how the connection is chosen (kubeconfig, --context, --server, -n).

mod kubectl_support;

use std::time::Duration;

use kubectl_support::Cluster;
use minik8s_client::DeleteParams;
use serde_json::json;

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
    stage: test
spec:
  containers:
  - name: app
    image: nginx:1.25
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_from_files_directories_and_stdin() {
    let c = Cluster::start().await;
    let dir = c.dir.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.yaml"), POD.replace("name: web", "name: a")).unwrap();
    std::fs::write(
        dir.join("b.json"),
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]}}"#,
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "not a manifest").unwrap();
    let out = c.kubectl(&["create", "-f", dir.to_str().unwrap()]).await;
    assert_eq!(out.ok(), "pod/a created\npod/b created\n");

    let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: team\n";
    let out = c.kubectl_stdin(&["create", "-f", "-"], list).await;
    assert_eq!(out.ok(), "namespace/team created\n");
    let out = c
        .kubectl_stdin(&["create", "-f", "-", "-n", "team", "-o", "name"], POD)
        .await;
    assert_eq!(out.ok(), "pod/web\n");
    let got = c.pods("team").get("web").await.unwrap();
    assert_eq!(got["spec"]["containers"][0]["image"], "nginx:1.25");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_configures_and_leaves_unchanged() {
    let c = Cluster::start().await;
    let file = c.write("web.yaml", POD);
    assert_eq!(
        c.kubectl(&["apply", "-f", &file]).await.ok(),
        "pod/web created\n"
    );
    let rv = |p: &serde_json::Value| p["metadata"]["resourceVersion"].clone();
    let before = c.pods("default").get("web").await.unwrap();
    assert_eq!(
        c.kubectl(&["apply", "-f", &file]).await.ok(),
        "pod/web unchanged\n"
    );
    assert_eq!(
        rv(&c.pods("default").get("web").await.unwrap()),
        rv(&before)
    );

    // A new image and a label dropped from the file.
    let changed = POD
        .replace("nginx:1.25", "nginx:1.26")
        .replace("    stage: test\n", "");
    std::fs::write(&file, changed).unwrap();
    assert_eq!(
        c.kubectl(&["apply", "-f", &file]).await.ok(),
        "pod/web configured\n"
    );
    let after = c.pods("default").get("web").await.unwrap();
    assert_eq!(after["spec"]["containers"][0]["image"], "nginx:1.26");
    assert_eq!(after["metadata"]["labels"], json!({"app": "web"}));
    let applied =
        after["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap();
    assert_eq!(
        applied,
        "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"annotations\":{},\"labels\":{\"app\":\"web\"},\"name\":\"web\",\"namespace\":\"default\"},\"spec\":{\"containers\":[{\"image\":\"nginx:1.26\",\"name\":\"app\"}]}}\n"
    );
    assert_eq!(
        c.kubectl(&["apply", "-f", &file]).await.ok(),
        "pod/web unchanged\n"
    );

    // An object made by create has no record of what was applied: kubectl warns.
    let other = c.write("other.yaml", &POD.replace("name: web", "name: other"));
    c.kubectl(&["create", "-f", &other]).await.ok();
    let out = c.kubectl(&["apply", "-f", &other]).await;
    assert_eq!(out.ok(), "pod/other configured\n");
    assert!(
        out.err.starts_with("Warning: resource pods/other is missing the kubectl.kubernetes.io/last-applied-configuration annotation"),
        "{}",
        out.err
    );
}

/// A pod bound to a node: the server keeps it, marked, after a graceful delete.
async fn bound_pod(c: &Cluster, name: &str) {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bound"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "nginx"}]}});
    c.pods("default").create(&pod).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_waits_until_the_object_is_gone() {
    let c = Cluster::start().await;
    bound_pod(&c, "slow").await;
    let finish = async {
        // The kubelet's part: once the pod is marked, remove it.
        kubectl_support::eventually("the pod to be marked", async || {
            c.pods("default").get("slow").await.unwrap()["metadata"]["deletionTimestamp"]
                .is_string()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.pods("default")
            .delete("slow", &DeleteParams::immediate())
            .await
            .unwrap();
    };
    let (out, ()) = tokio::join!(c.kubectl(&["delete", "pod", "slow"]), finish);
    assert_eq!(out.ok(), "pod \"slow\" deleted\n");
    assert!(c.pods("default").get_opt("slow").await.unwrap().is_none());

    // Without anyone to finish it, a deadline ends the wait.
    bound_pod(&c, "stuck").await;
    let out = c.kubectl(&["delete", "pod", "stuck", "--timeout=1s"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(out.out, "pod \"stuck\" deleted\n");
    assert_eq!(
        out.err,
        "error: timed out waiting for the condition on pods/stuck\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_periods_now_and_force() {
    let c = Cluster::start().await;
    bound_pod(&c, "a").await;
    let out = c
        .kubectl(&["delete", "pod", "a", "--now", "--wait=false"])
        .await;
    assert_eq!(out.ok(), "pod \"a\" deleted\n");
    let a = c.pods("default").get("a").await.unwrap();
    assert_eq!(a["metadata"]["deletionGracePeriodSeconds"], 1);

    bound_pod(&c, "b").await;
    let out = c
        .kubectl(&["delete", "pod", "b", "--grace-period=7", "--wait=false"])
        .await;
    assert_eq!(out.ok(), "pod \"b\" deleted\n");
    assert_eq!(
        c.pods("default").get("b").await.unwrap()["metadata"]["deletionGracePeriodSeconds"],
        7
    );

    let out = c
        .kubectl(&["delete", "pod", "a", "b", "--force", "--grace-period=0"])
        .await;
    assert_eq!(
        out.ok(),
        "pod \"a\" force deleted\npod \"b\" force deleted\n"
    );
    assert_eq!(
        out.err,
        "Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely.\n"
    );
    assert!(c.pods("default").get_opt("a").await.unwrap().is_none());
    assert!(c.pods("default").get_opt("b").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_by_file_selector_and_all() {
    let c = Cluster::start().await;
    let file = c.write("web.yaml", POD);
    c.kubectl(&["create", "-f", &file]).await.ok();
    assert_eq!(
        c.kubectl(&["delete", "-f", &file]).await.ok(),
        "pod \"web\" deleted\n"
    );

    for name in ["x1", "x2", "y1"] {
        let pod = POD
            .replace("name: web", &format!("name: {name}"))
            .replace("app: web", &format!("app: {}", &name[..1]));
        c.kubectl_stdin(&["create", "-f", "-"], &pod).await.ok();
    }
    let out = c
        .kubectl(&["delete", "pods", "-l", "app=x", "-o", "name"])
        .await;
    assert_eq!(out.ok(), "pod/x1\npod/x2\n");
    let out = c.kubectl(&["delete", "pods", "-l", "app=x"]).await;
    assert_eq!(out.ok(), "No resources found\n");
    let out = c.kubectl(&["delete", "pods", "--all"]).await;
    assert_eq!(out.ok(), "pod \"y1\" deleted\n");
    let out = c.kubectl(&["get", "pods"]).await;
    assert_eq!(out.err, "No resources found in default namespace.\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_ask_the_server() {
    let c = Cluster::start().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "two"},
        "spec": {"containers": [{"name": "main", "image": "nginx"}, {"name": "side", "image": "busybox"}]}});
    c.pods("default").create(&pod).await.unwrap();
    // Until a kubelet serves logs, the server's error is what the user sees.
    let out = c.kubectl(&["logs", "two", "--tail", "5"]).await;
    assert_eq!(out.code, 1);
    let mut lines = out.err.lines();
    assert_eq!(
        lines.next(),
        Some("Defaulted container \"main\" out of: main, side")
    );
    assert!(
        lines.next().unwrap().starts_with("Error from server"),
        "{}",
        out.err
    );
    let out = c
        .kubectl(&["logs", "pod/two", "-c", "side", "--timestamps"])
        .await;
    assert_eq!(out.code, 1);
    assert!(out.err.starts_with("Error from server"), "{}", out.err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_api_resources_and_completion() {
    let c = Cluster::start().await;
    let client = format!("v1.33.0-minik8s.{}", env!("CARGO_PKG_VERSION"));
    let out = c.kubectl(&["version", "--client"]).await;
    assert_eq!(out.ok(), format!("Client Version: {client}\n"));
    let out = c.kubectl(&["version"]).await;
    assert_eq!(
        out.ok(),
        format!("Client Version: {client}\nServer Version: {client}\n")
    );
    let out = c.kubectl(&["version", "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(out.ok()).unwrap();
    assert_eq!(v["clientVersion"]["gitVersion"], client.as_str());
    assert_eq!(v["serverVersion"]["gitVersion"], client.as_str());

    let out = c.kubectl(&["api-resources"]).await;
    let lines = kubectl_support::words(out.ok());
    assert_eq!(lines[0], "NAME SHORTNAMES APIVERSION NAMESPACED KIND");
    assert!(
        lines.contains(&"pods po v1 true Pod".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"nodes no v1 false Node".to_string()),
        "{lines:?}"
    );
    let out = c
        .kubectl(&["api-resources", "--namespaced=false", "-o", "name"])
        .await;
    assert_eq!(out.ok(), "namespaces\nnodes\n");

    let out = c.kubectl(&["completion", "bash"]).await;
    assert!(
        out.ok()
            .contains("complete -o default -F _minik8s_kubectl kubectl")
    );
    assert!(
        c.kubectl(&["completion", "zsh"])
            .await
            .ok()
            .starts_with("#compdef kubectl")
    );
    assert!(
        c.kubectl(&["completion", "fish"])
            .await
            .ok()
            .contains("complete -c kubectl")
    );
    assert_eq!(c.kubectl(&["completion", "tcsh"]).await.code, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_servers_and_namespaces() {
    let c = Cluster::start().await;
    c.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n",
    )
    .await
    .ok();
    c.kubectl_stdin(&["create", "-f", "-", "-n", "team"], POD)
        .await
        .ok();
    // Two contexts on the same cluster; the second works in `team`.
    let kubeconfig = c.write(
        "two-contexts",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\ncontexts:\n- name: plain\n  context:\n    cluster: c\n    user: u\n- name: team\n  context:\n    cluster: c\n    user: u\n    namespace: team\ncurrent-context: plain\nusers:\n- name: u\n  user:\n    token: secret\n",
            c.srv.url
        ),
    );
    let k = kubeconfig.as_str();
    let out = run_with(k, &["get", "pods"]).await;
    assert_eq!(
        (out.out.as_str(), out.err.as_str()),
        ("", "No resources found in default namespace.\n")
    );
    for args in [
        &["get", "pods", "-o", "name", "--context", "team"][..],
        &["get", "pods", "-o", "name", "-n", "team"],
        &["-n", "team", "get", "pods", "-o", "name"],
    ] {
        assert_eq!(run_with(k, args).await.ok(), "pod/web\n", "{args:?}");
    }

    // --server overrides the kubeconfig's, and works with no kubeconfig at all.
    let broken = c.write(
        "broken",
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: x\n  context:\n    cluster: c\ncurrent-context: x\n",
    );
    let out = run_with(
        &broken,
        &[
            "get", "pods", "-A", "-o", "name", "--server", &c.srv.url, "--token", "t",
        ],
    )
    .await;
    assert_eq!(out.ok(), "pod/web\n");
}

async fn run_with(kubeconfig: &str, args: &[&str]) -> kubectl_support::Output {
    let mut argv = args.to_vec();
    argv.extend(["--kubeconfig", kubeconfig]);
    kubectl_support::kubectl_raw(&argv, "").await
}
