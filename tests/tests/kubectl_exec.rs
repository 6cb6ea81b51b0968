//! `kubectl exec` end to end on real Docker, with our kubectl and the system's real one
//! (v1.32, which speaks WebSocket `v5.channel.k8s.io` first): output streams kept apart,
//! exit codes, stdin through `cat`, container choice, and the errors before any command
//! runs. Both are run as processes, as a person runs them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use minik8s_tests::kubelet::{BUSYBOX, TestNode, cmd_binary};
use minik8s_tests::real_kubectl;
use serde_json::json;

#[derive(Debug)]
struct Output {
    code: i32,
    out: Vec<u8>,
    err: String,
}

impl Output {
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }
}

/// Our kubectl and the real one, against one node.
struct Kubectls {
    ours: PathBuf,
    real: PathBuf,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl Kubectls {
    fn new(node: &TestNode) -> Kubectls {
        let dir = tempfile::tempdir().unwrap();
        Kubectls {
            ours: cmd_binary("kubectl").unwrap(),
            real: real_kubectl(),
            kubeconfig: node.api.write_kubeconfig(dir.path()).unwrap(),
            dir,
        }
    }

    fn both(&self) -> [(&'static str, &Path); 2] {
        [("ours", &self.ours), ("real", &self.real)]
    }

    async fn run(&self, bin: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut full: Vec<std::ffi::OsString> = vec![
            "--kubeconfig".into(),
            self.kubeconfig.clone().into(),
            "--cache-dir".into(),
            self.dir.path().join("cache").into(),
        ];
        // The connection flags first: after `--`, everything is the command's.
        full.extend(args.iter().map(Into::into));
        self.spawn(bin, &full, stdin).await
    }

    async fn spawn(&self, bin: &Path, args: &[std::ffi::OsString], stdin: Option<&[u8]>) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new(bin)
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kubectl starts");
        let mut input = child.stdin.take().unwrap();
        // With data, stdin is written while the output is read, so that a large input
        // does not wait for its echo, and then closed; without, it stays open to the end
        // (`script` ends its session when its stdin ends).
        let (writer, kept) = match stdin {
            Some(data) => {
                let data = data.to_vec();
                let writer = tokio::spawn(async move {
                    let _ = input.write_all(&data).await;
                });
                (Some(writer), None)
            }
            None => (None, Some(input)),
        };
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{} {args:?} finished in time", bin.display()))
            .unwrap();
        if let Some(writer) = writer {
            writer.await.unwrap();
        }
        drop(kept);
        Output {
            code: out.status.code().unwrap_or(-1),
            out: out.stdout,
            err: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn container(name: &str, who: &str) -> serde_json::Value {
    json!({"name": name, "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
           "command": ["sleep", "3600"], "env": [{"name": "WHO", "value": who}]})
}

async fn two_containers(node: &TestNode) {
    node.create_pod(json!({
        "metadata": {"name": "two"},
        "spec": {"terminationGracePeriodSeconds": 1,
                 "containers": [container("main", "main"), container("side", "side")]}
    }))
    .await
    .unwrap();
    node.wait_ready("two").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_streams_exit_codes_and_containers() {
    let node = TestNode::start().await.unwrap();
    two_containers(&node).await;
    let k = Kubectls::new(&node);
    for (who, bin) in k.both() {
        let out = k
            .run(
                bin,
                &[
                    "exec",
                    "two",
                    "-c",
                    "main",
                    "--",
                    "sh",
                    "-c",
                    "echo out; echo err >&2",
                ],
                None,
            )
            .await;
        assert_eq!(
            (out.code, out.out(), out.err.as_str()),
            (0, "out\n".into(), "err\n"),
            "{who}"
        );

        let out = k
            .run(bin, &["exec", "two", "--", "sh", "-c", "exit 3"], None)
            .await;
        assert_eq!(out.code, 3, "{who}: {out:?}");
        assert_eq!(
            out.err,
            "Defaulted container \"main\" out of: main, side\ncommand terminated with exit code 3\n",
            "{who}"
        );

        let out = k
            .run(
                bin,
                &["exec", "pod/two", "-q", "--", "sh", "-c", "echo $WHO"],
                None,
            )
            .await;
        assert_eq!(
            (out.code, out.out(), out.err.as_str()),
            (0, "main\n".into(), ""),
            "{who}"
        );

        let out = k
            .run(
                bin,
                &["exec", "two", "-c", "side", "--", "sh", "-c", "echo $WHO"],
                None,
            )
            .await;
        assert_eq!(
            (out.code, out.out(), out.err.as_str()),
            (0, "side\n".into(), ""),
            "{who}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_round_trips_through_cat() {
    let node = TestNode::start().await.unwrap();
    two_containers(&node).await;
    let k = Kubectls::new(&node);
    // Every byte value, and more than one message's worth.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    for (who, bin) in k.both() {
        let out = k
            .run(
                bin,
                &["exec", "-i", "two", "-c", "main", "--", "cat"],
                Some(&data),
            )
            .await;
        assert_eq!(out.code, 0, "{who}: {}", out.err);
        assert!(out.out == data, "{who}: {} bytes came back", out.out.len());

        // -t without a terminal: kubectl says so and goes on without one.
        let out = k
            .run(
                bin,
                &["exec", "-it", "two", "-c", "main", "--", "wc", "-c"],
                Some(b"12345"),
            )
            .await;
        assert_eq!(out.code, 0, "{who}: {}", out.err);
        assert_eq!(out.out().trim(), "5", "{who}");
        assert_eq!(
            out.err, "Unable to use a TTY - input is not a terminal or the right kind of file\n",
            "{who}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_before_the_command_runs() {
    let node = TestNode::start().await.unwrap();
    two_containers(&node).await;
    // Bound to the node but never running: its image cannot be pulled.
    node.create_pod(json!({
        "metadata": {"name": "stuck"},
        "spec": {"containers": [{"name": "app", "image": "minik8s/absent:1",
                                 "imagePullPolicy": "IfNotPresent"}]}
    }))
    .await
    .unwrap();
    node.wait_pod("stuck", "failing to pull", Duration::from_secs(60), |p| {
        minik8s_tests::kubelet::waiting_reason(p, "app")
            .is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
    })
    .await
    .unwrap();
    // Done: its only container exited 0.
    node.create_pod(json!({
        "metadata": {"name": "done"},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": "app", "image": BUSYBOX,
                                 "imagePullPolicy": "IfNotPresent", "command": ["true"]}]}
    }))
    .await
    .unwrap();
    node.wait_pod("done", "Succeeded", Duration::from_secs(60), |p| {
        minik8s_tests::kubelet::phase(p) == "Succeeded"
    })
    .await
    .unwrap();
    // Never scheduled: no node has the label.
    let unscheduled: minik8s_api::k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nowhere"},
        "spec": {"nodeSelector": {"disk": "none"},
                 "containers": [{"name": "app", "image": BUSYBOX}]}
    }))
    .unwrap();
    node.pods().create(&unscheduled).await.unwrap();
    let k = Kubectls::new(&node);
    let cases: &[(&[&str], &str)] = &[
        (
            &["exec", "--", "ls"],
            "error: pod, type/name or --filename must be specified\n",
        ),
        (
            &["exec", "two", "ls"],
            "error: exec [POD] [COMMAND] is not supported anymore. Use exec [POD] -- [COMMAND] instead\nSee 'kubectl exec -h' for help and examples\n",
        ),
        (
            &["exec", "two"],
            "error: you must specify at least one command for the container\n",
        ),
        (
            &["exec", "missing", "--", "ls"],
            "Error from server (NotFound): pods \"missing\" not found\n",
        ),
        (&["exec", "two", "-c", "nope", "--", "ls"], "container nope"),
        (
            &["exec", "stuck", "--", "ls"],
            "container not found (\"app\")",
        ),
        (
            &["exec", "nowhere", "--", "ls"],
            "pod nowhere does not have a host assigned",
        ),
        (
            &["exec", "done", "--", "ls"],
            "error: cannot exec into a container in a completed pod; current phase is Succeeded\n",
        ),
    ];
    for (args, want) in cases {
        let ours = k.run(&k.ours, args, None).await;
        let real = k.run(&k.real, args, None).await;
        assert_eq!(ours.code, 1, "{args:?}: {ours:?}");
        assert_eq!(real.code, 1, "{args:?}: {real:?}");
        assert!(ours.err.contains(want), "{args:?}: {}", ours.err);
        assert_eq!(ours.err, real.err, "{args:?}");
    }
    // A plain request, without the upgrade: a Status saying what is missing.
    let response = reqwest::get(format!(
        "{}/api/v1/namespaces/default/pods/two/exec?command=ls&stdout=true&container=main",
        node.api.url
    ))
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let status: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (&status["kind"], &status["message"]),
        (&json!("Status"), &json!("Upgrade request required"))
    );
}

/// Polls the remote terminal's size until it is the local one's: Docker applies a size
/// only once the command runs, so a command may start a moment before it has it (as with
/// Kubernetes on containerd).
const POLL_SIZE: &str = "for i in $(seq 50); do s=$(stty size 2>/dev/null); [ \"$s\" = \"45 123\" ] \
    && break; sleep 0.1; done; echo \"size $s\"";

/// `-it` on a terminal (a pseudo-terminal made by `script`): the remote command gets a
/// terminal of the local one's size, its exit code still comes back, and the local
/// terminal's settings are as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_gets_its_size() {
    let node = TestNode::start().await.unwrap();
    two_containers(&node).await;
    let k = Kubectls::new(&node);
    for (who, bin) in k.both() {
        let line = format!(
            "stty cols 123 rows 45; before=$(stty -g); {} --kubeconfig {} --cache-dir {} exec -it two -c main -- sh -c '{POLL_SIZE}; exit 4'; code=$?; [ \"$(stty -g)\" = \"$before\" ] && echo restored; exit $code",
            bin.display(),
            k.kubeconfig.display(),
            k.dir.path().join("cache").display()
        );
        let args = ["-qec".into(), line.into(), "/dev/null".into()];
        let out = k.spawn(Path::new("script"), &args, None).await;
        assert_eq!(out.code, 4, "{who}: {out:?}");
        assert!(out.out().contains("size 45 123"), "{who}: {:?}", out.out());
        // Raw mode lasted for the session only.
        assert!(out.out().contains("restored"), "{who}: {:?}", out.out());
    }
}
