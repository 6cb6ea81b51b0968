//! The real kubectl (not ours) against the API server: the everyday verbs work without
//! special flags. Pods stay Pending here: no kubelet runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use minik8s_tests::apiserver::{Backend, TestApiServer};
use minik8s_tests::real_kubectl;

struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .arg("--request-timeout=15s")
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("kubectl starts");
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).await.unwrap();
        }
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finished in time")
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args, None).await;
        assert!(ok, "kubectl {args:?} failed:\nstdout: {out}\nstderr: {err}");
        out
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
  - name: nginx
    image: nginx:1.25
    ports:
    - containerPort: 80
    livenessProbe:
      httpGet:
        path: /
        port: 80
      periodSeconds: 5
    resources:
      limits:
        cpu: 500m
        memory: 64Mi
";

async fn everyday_verbs(backend: Backend) {
    let srv = TestApiServer::start(backend).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl {
        bin: real_kubectl(),
        kubeconfig: srv.write_kubeconfig(dir.path()).unwrap(),
        cache: dir.path().join("cache"),
    };
    let pod_file = write(dir.path(), "pod.yaml", POD);

    let out = k.ok(&["create", "-f", &pod_file]).await;
    assert_eq!(out.trim(), "pod/web created");

    let out = k.ok(&["get", "pods"]).await;
    let lines: Vec<&str> = out.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{out}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&row[..4], ["web", "0/1", "Pending", "0"], "{out}");

    let out = k.ok(&["get", "pods", "-o", "wide"]).await;
    assert!(
        out.lines().next().unwrap().contains("IP") && out.contains("NOMINATED NODE"),
        "{out}"
    );
    assert!(out.contains("<none>"), "{out}");

    let out = k.ok(&["get", "pod", "web", "-o", "yaml"]).await;
    for want in [
        "name: web",
        "image: nginx:1.25",
        "phase: Pending",
        "resourceVersion:",
        "uid:",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }

    let out = k.ok(&["describe", "pod", "web"]).await;
    for want in [
        "Name:",
        "web",
        "Namespace:",
        "default",
        "Status:",
        "Pending",
        "nginx:1.25",
        "Limits:",
        "500m",
        "Liveness:",
        "Events:",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }

    let out = k.ok(&["get", "pods", "-l", "app=web", "-o", "name"]).await;
    assert_eq!(out.trim(), "pod/web");

    // A bad manifest: the server's 422 reaches the user with the field named.
    let bad = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n    image: \"\"\n",
    );
    let (ok, _, err) = k.run(&["create", "-f", &bad], None).await;
    assert!(!ok);
    assert!(
        err.contains("is invalid") && err.contains("spec.containers[0].image"),
        "{err}"
    );

    // Unknown fields are refused by the server (kubectl asks for strict validation).
    let typo = write(
        dir.path(),
        "typo.yaml",
        &POD.replace("name: web", "name: typo")
            .replace("image: nginx", "imagee: x\n    image: nginx"),
    );
    let (ok, _, err) = k.run(&["create", "-f", &typo], None).await;
    assert!(!ok);
    assert!(err.contains("imagee"), "{err}");

    let out = k.ok(&["delete", "pod", "web"]).await;
    assert_eq!(out.trim(), "pod \"web\" deleted");
    let (ok, _, err) = k.run(&["get", "pod", "web"], None).await;
    assert!(!ok);
    assert!(err.contains("pods \"web\" not found"), "{err}");

    let out = k.ok(&["get", "namespaces"]).await;
    assert!(
        out.contains("default") && out.contains("kube-system") && out.contains("Active"),
        "{out}"
    );
    let (ok, out, err) = k.run(&["get", "pods"], None).await;
    assert!(ok, "{err}");
    assert!(
        err.contains("No resources found in default namespace.") || out.is_empty(),
        "{out}{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_on_embedded_store() {
    everyday_verbs(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_on_etcd() {
    everyday_verbs(Backend::Etcd).await;
}
