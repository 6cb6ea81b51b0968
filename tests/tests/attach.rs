//! `kubectl attach` end to end on real Docker: the real kubectl attaches to a container
//! whose own process is `cat`, and what it sends comes back.

use std::process::Stdio;
use std::time::Duration;

use minik8s_tests::kubelet::{BUSYBOX, TestNode};
use minik8s_tests::{real_kubectl, wait_for};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_to_cat_echoes_stdin_with_the_real_kubectl() {
    let node = TestNode::start().await.unwrap();
    node.create_pod(json!({
        "metadata": {"name": "box"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "cat", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["cat"], "stdin": true}]}
    }))
    .await
    .unwrap();
    node.wait_ready("box").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = node.api.write_kubeconfig(dir.path()).unwrap();

    let mut child = tokio::process::Command::new(real_kubectl())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["attach", "-i", "box", "-c", "cat"])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = child.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = output.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    // The attach may not be up yet when the first line is written: the line is sent
    // again until its echo shows.
    let writer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(300));
        loop {
            tick.tick().await;
            if input.write_all(b"hello attach\n").await.is_err() {
                break;
            }
            let _ = input.flush().await;
        }
    });
    let echoed = wait_for("the echo of stdin", Duration::from_secs(30), || {
        let seen = seen.clone();
        async move {
            let text = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
            text.contains("hello attach\n").then_some(text)
        }
    })
    .await;
    writer.abort();
    let _ = child.start_kill();
    reader.abort();
    let stderr = match child.wait_with_output().await {
        Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
        Err(e) => e.to_string(),
    };
    echoed.unwrap_or_else(|e| panic!("{e}; kubectl said: {stderr}"));
}
