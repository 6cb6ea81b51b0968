//! `kubectl port-forward` end to end on real Docker: the real kubectl 1.33 (SPDY/3.1
//! tunnelled over a WebSocket, `SPDY/3.1+portforward.k8s.io`) through the API server's
//! `pods/{name}/portforward` to the kubelet, which connects to the pod's port. Two ports
//! at once, 20 parallel `curl`s on each, a closed port's error, and the end of the
//! forwarding when the pod is deleted.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minik8s_tests::kubelet::{BUSYBOX, TestNode};
use minik8s_tests::{real_kubectl, wait_for};
use serde_json::json;
use tokio::io::AsyncReadExt;

/// A running `kubectl port-forward`, its output gathered as it comes.
struct Forward {
    child: tokio::process::Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

impl Forward {
    fn start(bin: &Path, kubeconfig: &Path, args: &[&str]) -> Forward {
        let mut child = tokio::process::Command::new(bin)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("port-forward")
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kubectl starts");
        let gather = |mut pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
            let text = Arc::new(Mutex::new(String::new()));
            let sink = text.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
            text
        };
        let out = gather(Box::new(child.stdout.take().unwrap()));
        let err = gather(Box::new(child.stderr.take().unwrap()));
        Forward { child, out, err }
    }

    fn out(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn err(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    async fn wait_output(&self, what: &str) {
        wait_for(
            &format!("port-forward prints {what:?}"),
            Duration::from_secs(20),
            || async { self.out().contains(what).then_some(()) },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: stdout {:?}, stderr {:?}", self.out(), self.err()));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn curl(port: u16) -> (bool, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--max-time", "15"])
        .arg(format!("http://127.0.0.1:{port}/index.html"))
        .output()
        .await
        .expect("curl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// 20 requests at once on each port, each answered with that port's file.
async fn parallel_curls(ports: &[(u16, &str)]) {
    let mut all = Vec::new();
    for &(port, body) in ports {
        for _ in 0..20 {
            all.push(async move { (port, body, curl(port).await) });
        }
    }
    for (port, body, (ok, got)) in futures::future::join_all(all).await {
        assert!(ok && got == body, "port {port}: {ok} {got:?}");
    }
}

async fn web_pod(node: &TestNode, name: &str) {
    let script = "mkdir -p /www /www2; echo port-80 > /www/index.html; \
                  echo port-8080 > /www2/index.html; httpd -p 8080 -h /www2; \
                  exec httpd -f -p 80 -h /www";
    node.create_pod(json!({
        "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "web", "image": BUSYBOX,
                                 "imagePullPolicy": "IfNotPresent",
                                 "command": ["sh", "-c", script]}]}
    }))
    .await
    .unwrap();
    node.wait_ready(name).await.unwrap();
}

async fn forwards_serves_fails_and_stops(bin: &Path, kubeconfig: &Path, node: &TestNode) {
    let pod = format!("web-{}", bin.file_name().unwrap().to_string_lossy().len());
    web_pod(node, &pod).await;
    let (a, b, closed) = (free_port(), free_port(), free_port());
    let target = format!("pod/{pod}");
    let forward = Forward::start(
        bin,
        kubeconfig,
        &[
            &target,
            &format!("{a}:80"),
            &format!("{b}:8080"),
            &format!("{closed}:81"),
        ],
    );
    for line in [
        format!("Forwarding from 127.0.0.1:{a} -> 80"),
        format!("Forwarding from 127.0.0.1:{b} -> 8080"),
        format!("Forwarding from 127.0.0.1:{closed} -> 81"),
    ] {
        forward.wait_output(&line).await;
    }
    parallel_curls(&[(a, "port-80\n"), (b, "port-8080\n")]).await;
    // Sequential connections on a port reuse the one session.
    for _ in 0..3 {
        assert_eq!(curl(a).await, (true, "port-80\n".to_string()));
    }

    // Nothing listens on 81: the client's connection ends and kubectl says why.
    let (_, got) = curl(closed).await;
    assert_eq!(got, "");
    wait_for(
        "the closed port's error",
        Duration::from_secs(10),
        || async {
            forward
                .err()
                .contains("error forwarding port 81 to pod")
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", forward.err()));
    let err = forward.err();
    assert!(
        err.contains("an error occurred forwarding")
            && err.contains(&format!("{closed} -> 81"))
            && err.contains("failed to connect to localhost:81 inside namespace")
            && err.contains("connect: connection refused"),
        "{err}"
    );
}

async fn stops_when_the_pod_goes(bin: &Path, kubeconfig: &Path, node: &TestNode, pod: &str) {
    web_pod(node, pod).await;
    let port = free_port();
    let mut forward = Forward::start(bin, kubeconfig, &[pod, &format!("{port}:80")]);
    forward
        .wait_output(&format!("Forwarding from 127.0.0.1:{port} -> 80"))
        .await;
    assert_eq!(curl(port).await, (true, "port-80\n".to_string()));
    node.pods().delete(pod, &Default::default()).await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), forward.child.wait())
        .await
        .unwrap_or_else(|_| panic!("port-forward ends with its pod: {:?}", forward.err()))
        .unwrap();
    assert!(!status.success());
    assert!(
        forward.err().contains("lost connection to pod"),
        "{:?}",
        forward.err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_port_forwards_to_a_pod() {
    let node = TestNode::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig: PathBuf = node.api.write_kubeconfig(dir.path()).unwrap();
    let real = real_kubectl();
    forwards_serves_fails_and_stops(&real, &kubeconfig, &node).await;
    stops_when_the_pod_goes(&real, &kubeconfig, &node, "gone").await;
}
