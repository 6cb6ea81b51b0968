//! The workload verbs — `create deployment|job|configmap|secret generic`, `scale`,
//! `set image`, `rollout` and `wait` — of our kubectl and of the system's real kubectl,
//! run against the same API server: the same objects, the same output lines, the same
//! errors and exit codes.
//!
//! Each kubectl works in a namespace of its own that holds the same objects, so that one's
//! writes cannot change what the other sees. Most tests run the server without its
//! controllers, and the statuses `rollout status` and `wait` watch are written through
//! `/status`; two run the workload controllers (one with a kubelet on Docker) end to end.

mod kubectl_support;

use std::ffi::OsString;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubectl_support::{Cluster, Output};
use minik8s_api::resource::{
    CONFIG_MAPS, CONTROLLER_REVISIONS, DEPLOYMENTS, JOBS, NAMESPACES, PODS, REPLICA_SETS,
    ResourceInfo, SECRETS, STATEFUL_SETS,
};
use minik8s_client::{DynamicApi, Patch};
use serde_json::{Value, json};

/// Our kubectl, with the connection flags first (the arguments may end with `-- CMD`).
async fn run_ours(c: &Cluster, args: &[&str]) -> Output {
    let kubeconfig = c.kubeconfig.display().to_string();
    let mut argv = vec!["--kubeconfig", &kubeconfig];
    argv.extend_from_slice(args);
    kubectl_support::kubectl_raw(&argv, "").await
}

/// The system's kubectl, with the connection flags first.
async fn run_real(c: &Cluster, args: &[&str]) -> Output {
    let out = tokio::process::Command::new(kubectl_support::real_kubectl_path())
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .arg("--cache-dir")
        .arg(c.dir.path().join("cache"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env("TZ", "UTC")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("kubectl finished in time")
        .expect("kubectl runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Our kubectl and the real one with the same arguments, each in its own namespace.
async fn both_in(c: &Cluster, ours_ns: &str, real_ns: &str, args: &[&str]) -> (Output, Output) {
    let mut ours_args = vec!["-n", ours_ns];
    ours_args.extend_from_slice(args);
    let mut real_args = vec!["-n", real_ns];
    real_args.extend_from_slice(args);
    let mut ours = run_ours(c, &ours_args).await;
    let real = run_real(c, &real_args).await;
    // Messages that name the namespace name ours.
    ours.out = ours.out.replace(ours_ns, real_ns);
    ours.err = ours.err.replace(ours_ns, real_ns);
    (ours, real)
}

#[track_caller]
fn assert_same(args: &[&str], ours: &Output, real: &Output) {
    assert_eq!(
        ours.out, real.out,
        "stdout of {args:?} (left: ours, right: the real kubectl)"
    );
    assert_eq!(
        ours.err, real.err,
        "stderr of {args:?} (left: ours, right: the real kubectl)"
    );
    assert_eq!(ours.code, real.code, "exit code of {args:?}");
}

async fn namespace(c: &Cluster, name: &str) {
    DynamicApi::new(c.client.clone(), &NAMESPACES, None)
        .create(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
        .await
        .unwrap();
}

fn api(c: &Cluster, r: &'static ResourceInfo, ns: &str) -> DynamicApi {
    DynamicApi::new(c.client.clone(), r, Some(ns.to_string()))
}

/// What two objects made the same way differ in: identity, times, the namespace.
fn comparable(mut object: Value) -> Value {
    let meta = object["metadata"].as_object_mut().unwrap();
    for key in [
        "uid",
        "creationTimestamp",
        "resourceVersion",
        "namespace",
        "managedFields",
    ] {
        meta.remove(key);
    }
    // Owners are the same objects, made twice.
    for owner in meta
        .get_mut("ownerReferences")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        owner.as_object_mut().unwrap().remove("uid");
    }
    object
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_dry_runs_and_mistakes_print_what_the_real_kubectl_prints() {
    let c = Cluster::start().await;
    let text = c.write("motd.txt", "hello\nworld\n");
    c.write("blob.bin", "");
    std::fs::write(c.dir.path().join("blob.bin"), [0xff_u8, 0xfe, 0x00]).unwrap();
    let env = c.write(
        "app.env",
        "\u{feff}MODE=prod\n# a comment\n  LEVEL= 3 \n\nEMPTY=\r\n",
    );
    let bad_env = c.write("bad.env", "GOOD=1\nNOT OK=2\n");
    let dir = c.dir.path().join("conf");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.conf"), "a=1\n").unwrap();
    std::fs::write(dir.join("b.conf"), "b=2\n").unwrap();
    let dir = dir.display().to_string();
    let blob = c.dir.path().join("blob.bin").display().to_string();
    let from_text = format!("--from-file={text}");
    let keyed_text = format!("--from-file=greeting={text}");
    let from_blob = format!("--from-file={blob}");
    let from_dir = format!("--from-file={dir}");
    let keyed_dir = format!("--from-file=k={dir}");
    let from_env = format!("--from-env-file={env}");
    let from_bad_env = format!("--from-env-file={bad_env}");
    let commands: Vec<Vec<&str>> = vec![
        vec![
            "create",
            "deployment",
            "web",
            "--image=nginx:1.25",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        vec![
            "create",
            "deployment",
            "web",
            "--image=registry.local:5000/team/nginx:1.25",
            "--replicas=3",
            "--port=8080",
            "--dry-run=client",
            "-o",
            "json",
            "--",
            "nginx",
            "-g",
            "daemon off;",
        ],
        vec![
            "create",
            "deploy",
            "web",
            "--image=a",
            "--image=b",
            "-n",
            "other",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        vec![
            "create",
            "deployment",
            "web",
            "--image=busybox@sha256:0123",
            "--replicas=0",
            "--dry-run=client",
            "-o",
            "name",
        ],
        vec![
            "create",
            "deployment",
            "web",
            "--image=busybox",
            "--dry-run=client",
        ],
        vec![
            "create",
            "deployment",
            "web",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        vec![
            "create",
            "deployment",
            "web",
            "--image=x",
            "--replicas=many",
        ],
        vec!["create", "deployment", "web", "--image=x", "--port=http"],
        vec!["create", "deployment", "--image=x"],
        vec!["create", "deployment", "a", "b", "--image=x"],
        vec![
            "create",
            "deployment",
            "web",
            "--image=a",
            "--image=b",
            "--",
            "sleep",
            "1",
        ],
        vec![
            "create",
            "deployment",
            "web",
            "--image=x",
            "--dry-run=maybe",
        ],
        vec!["create", "deployment", "web", "--image=x", "-o", "wide"],
        vec![
            "create",
            "job",
            "pi",
            "--image=perl:5.34",
            "--dry-run=client",
            "-o",
            "json",
            "--",
            "perl",
            "-Mbignum=bpi",
            "-wle",
            "print bpi(20)",
        ],
        vec![
            "create",
            "job",
            "pi",
            "--image=perl:5.34",
            "-n",
            "batch",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        vec!["create", "job", "pi", "--dry-run=client", "-o", "yaml"],
        vec!["create", "job", "pi", "--image=x", "--from=cronjob/nightly"],
        vec!["create", "job", "pi", "--from=cronjob/nightly"],
        vec!["create", "job", "--image=x"],
        vec![
            "create",
            "configmap",
            "settings",
            "--from-literal=mode=prod",
            "--from-literal=url=http://a/?b=c&d=<e>",
            &from_text,
            &keyed_text,
            &from_blob,
            "--dry-run=client",
            "-o",
            "json",
        ],
        vec![
            "create",
            "configmap",
            "settings",
            "--from-literal=mode=prod",
            &from_text,
            &from_blob,
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        vec![
            "create",
            "cm",
            "settings",
            &from_dir,
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        vec![
            "create",
            "configmap",
            "settings",
            &from_env,
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        vec![
            "create",
            "configmap",
            "settings",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        vec![
            "create",
            "configmap",
            "settings",
            &from_env,
            "--from-literal=a=b",
        ],
        vec!["create", "configmap", "settings", &from_bad_env],
        vec!["create", "configmap", "settings", "--from-literal=novalue"],
        vec![
            "create",
            "configmap",
            "settings",
            "--from-literal=a=1",
            "--from-literal=a=2",
        ],
        vec!["create", "configmap", "settings", "--from-literal=b@d=1"],
        vec![
            "create",
            "configmap",
            "settings",
            "--from-file=/no/such/file",
        ],
        vec!["create", "configmap", "settings", "--from-file=a=b=c"],
        vec!["create", "configmap", "settings", &keyed_dir],
        vec!["create", "configmap"],
        vec!["create", "frobnicate", "x"],
        vec![
            "create",
            "configmap",
            "settings",
            "--from-literal=url=http://a/?b=c&d=<e>",
            &from_blob,
            "--append-hash",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        vec![
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=user=admin",
            "--type=example.com/basic",
            "--append-hash",
            "--dry-run=client",
            "-o",
            "name",
        ],
        vec![
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=user=admin",
            "--from-literal=pass=s3cr3t!",
            &from_text,
            &from_blob,
            "--type=example.com/basic",
            "--dry-run=client",
            "-o",
            "json",
        ],
        vec![
            "create",
            "secret",
            "generic",
            "creds",
            &from_env,
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        vec![
            "create",
            "secret",
            "generic",
            "creds",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        vec![
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=a=1",
            "--from-literal=a=2",
        ],
        vec![
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=b@d=1",
        ],
        vec!["create", "secret", "generic"],
    ];
    for args in &commands {
        let (ours, real) = (run_ours(&c, args).await, run_real(&c, args).await);
        assert_same(args, &ours, &real);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_objects_are_the_real_kubectls() {
    let c = Cluster::start().await;
    namespace(&c, "ours").await;
    namespace(&c, "real").await;
    let text = c.write("motd.txt", "hello\n");
    let from_text = format!("--from-file={text}");
    let commands: Vec<Vec<&str>> = vec![
        vec![
            "create",
            "deployment",
            "web",
            "--image=nginx:1.25",
            "--image=busybox",
            "--replicas=3",
            "--port=80",
        ],
        vec![
            "create",
            "deployment",
            "sleeper",
            "--image=busybox",
            "--",
            "sleep",
            "3600",
        ],
        vec![
            "create",
            "job",
            "once",
            "--image=busybox",
            "-o",
            "name",
            "--",
            "echo",
            "done",
        ],
        vec![
            "create",
            "configmap",
            "settings",
            "--from-literal=mode=prod",
            &from_text,
        ],
        vec![
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=user=admin",
            "--type=example.com/basic",
            "-o",
            "name",
        ],
        // Made a second time: the server's refusal, in each generator's words.
        vec!["create", "deployment", "web", "--image=nginx"],
        vec!["create", "job", "once", "--image=busybox"],
        vec!["create", "configmap", "settings"],
        vec!["create", "secret", "generic", "creds"],
        // Server-side dry run: whatever the server says of it.
        vec![
            "create",
            "deployment",
            "dry",
            "--image=nginx",
            "--dry-run=server",
        ],
    ];
    for args in &commands {
        let (ours, real) = both_in(&c, "ours", "real", args).await;
        assert_same(args, &ours, &real);
    }
    for (r, name) in [
        (&DEPLOYMENTS, "web"),
        (&DEPLOYMENTS, "sleeper"),
        (&JOBS, "once"),
        (&CONFIG_MAPS, "settings"),
        (&SECRETS, "creds"),
    ] {
        let ours = api(&c, r, "ours").get(name).await.unwrap();
        let real = api(&c, r, "real").get(name).await.unwrap();
        let (mut ours, mut real) = (comparable(ours), comparable(real));
        if r.kind == "Job" {
            // The Job's selector and labels carry its uid.
            for v in [&mut ours, &mut real] {
                v["spec"].as_object_mut().unwrap().remove("selector");
                v["spec"]["template"]["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .remove("labels");
                v["metadata"].as_object_mut().unwrap().remove("labels");
            }
        }
        assert_eq!(
            ours, real,
            "{} {name}: ours, then the real kubectl's",
            r.kind
        );
    }
}

/// A Deployment `web` (two containers) with three revisions, each a ReplicaSet it owns
/// (the second with a change cause), a Deployment `solo` with none, and a pod: the state
/// a Deployment controller would have left, written by hand.
async fn seed_rollouts(c: &Cluster, ns: &str) {
    namespace(c, ns).await;
    let template = |image: &str, extra: Value| {
        let mut t = json!({"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [
            {"name": "nginx", "image": image, "ports": [{"containerPort": 80}],
             "env": [{"name": "MODE", "value": "prod"}], "command": ["nginx", "-g", "daemon off;"]},
            {"name": "sidecar", "image": "busybox"}
        ]}});
        if let Some(extra) = extra.as_object() {
            for (k, v) in extra {
                t["metadata"]["labels"][k] = v.clone();
            }
        }
        t
    };
    let deployment = api(c, &DEPLOYMENTS, ns)
        .create(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "annotations": {"deployment.kubernetes.io/revision": "3"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": template("nginx:1.27", json!({}))}}))
        .await
        .unwrap();
    let uid = deployment["metadata"]["uid"].as_str().unwrap().to_string();
    for (revision, image) in [(1, "nginx:1.25"), (2, "nginx:1.26"), (3, "nginx:1.27")] {
        let hash = format!("h{revision}");
        let mut annotations = json!({
            "deployment.kubernetes.io/revision": revision.to_string(),
            "deployment.kubernetes.io/desired-replicas": "2",
            "example.com/note": format!("revision {revision}"),
        });
        if revision == 2 {
            annotations["kubernetes.io/change-cause"] =
                json!("kubectl set image deployment/web nginx=nginx:1.26");
        }
        api(c, &REPLICA_SETS, ns)
            .create(&json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": format!("web-{hash}"), "annotations": annotations,
                    "labels": {"app": "web", "pod-template-hash": hash},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                        "name": "web", "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
                "spec": {"replicas": 0,
                    "selector": {"matchLabels": {"app": "web", "pod-template-hash": hash}},
                    "template": template(image, json!({"pod-template-hash": hash}))}}))
            .await
            .unwrap();
    }
    api(c, &DEPLOYMENTS, ns)
        .create(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "solo"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "solo"}},
                     "template": {"metadata": {"labels": {"app": "solo"}},
                                  "spec": {"containers": [{"name": "app", "image": "busybox"}]}}}}))
        .await
        .unwrap();
    api(c, &PODS, ns)
        .create(
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lone"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]}}),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_set_image_and_rollouts_do_what_the_real_kubectl_does() {
    let c = Cluster::start().await;
    seed_rollouts(&c, "ours").await;
    seed_rollouts(&c, "real").await;
    let commands: &[&[&str]] = &[
        // scale, through /scale
        &["scale", "--replicas=3", "deployment/web"],
        &["scale", "--replicas=4", "deployment", "web", "solo"],
        &[
            "scale",
            "--replicas=2",
            "--current-replicas=4",
            "deployment/web",
        ],
        &[
            "scale",
            "--replicas=2",
            "--current-replicas=9",
            "deployment/web",
        ],
        &[
            "scale",
            "--replicas=1",
            "deployment/web",
            "deployment/nope",
            "deploy/solo",
        ],
        &[
            "scale",
            "--replicas=1",
            "deployment/nope",
            "deployment/gone",
        ],
        &["scale", "--replicas=1", "deployment/nope"],
        &["scale", "--replicas=1", "pod/lone"],
        &["scale", "--replicas=5", "rs/web-h1", "-o", "name"],
        &[
            "scale",
            "--replicas=5",
            "deployment/web",
            "--dry-run=client",
        ],
        &["scale", "--replicas=-1", "deployment/web"],
        &["scale", "--replicas=lots", "deployment/web"],
        &["scale", "deployment/web"],
        &["scale", "--replicas=2", "deployment"],
        &["scale", "--replicas=2"],
        &[
            "scale",
            "--replicas=2",
            "--resource-version=1",
            "deployment/web",
            "deployment/solo",
        ],
        // No controller: the size asked for is never reached.
        &["scale", "--replicas=2", "deployment/solo", "--timeout=1s"],
        &["scale", "--replicas=0", "rs", "-l", "app=web"],
        &["scale", "--replicas=0", "deployment", "-l", "app=nothing"],
        &["scale", "--replicas=0", "deployment/web", "-l", "app=web"],
        &["rollout", "restart", "deployment", "-l", "app=nothing"],
        &["rollout", "history", "deployment", "-l", "app=nothing"],
        &["wait", "--for=condition=Ready", "pods", "-l", "app=nothing"],
        &["wait", "--for=delete", "pods", "-l", "app=nothing"],
        // set image, a strategic merge patch
        &["set", "image", "deployment/web", "nginx=nginx:1.28"],
        &["set", "image", "deployment/web", "nginx=nginx:1.28"],
        &[
            "set",
            "image",
            "deployment/web",
            "deployment/solo",
            "sidecar=busybox:1.36",
        ],
        &[
            "set",
            "image",
            "deployment/solo",
            "*=busybox:1.37",
            "-o",
            "name",
        ],
        &["set", "image", "deployment/web", "nope=x"],
        &["set", "image", "deployment/nope", "nginx=x"],
        &["set", "image", "pod/lone", "app=busybox:1.36"],
        &[
            "set",
            "image",
            "deployment/web",
            "sidecar=busybox:2",
            "--dry-run=client",
        ],
        &["set", "image", "deployment/web"],
        &["set", "image", "nginx=x"],
        &["set", "image", "deployment/web", "a=b", "*=c"],
        &["set", "image", "deployment/web", "a=b", "deployment/solo"],
        // rollout pause, resume, restart
        &["rollout", "pause", "deployment/web"],
        &["rollout", "pause", "deployment/web"],
        &["rollout", "restart", "deployment/web"],
        &["rollout", "undo", "deployment/web"],
        &["rollout", "resume", "deployment/web"],
        &["rollout", "resume", "deployment/web", "deployment/solo"],
        &["rollout", "pause", "pod/lone"],
        &["rollout", "pause", "deployment/nope"],
        &["rollout", "pause"],
        &["rollout", "restart", "pod/lone"],
        // history and undo
        &["rollout", "history", "deployment/web"],
        &["rollout", "history", "deployment/web", "--revision=2"],
        &["rollout", "history", "deployment/web", "--revision=9"],
        &["rollout", "history", "deployment"],
        &["rollout", "history", "pod/lone"],
        &[
            "rollout",
            "undo",
            "deployment/web",
            "--to-revision=1",
            "--dry-run=client",
        ],
        &["rollout", "undo", "deployment/web", "--to-revision=9"],
        &["rollout", "undo", "deployment/solo"],
        &["rollout", "undo", "pod/lone"],
        &["rollout", "undo", "deployment/web"],
        &["rollout", "undo", "deployment/web", "--to-revision=2"],
        &["rollout", "undo", "deployment/web", "--to-revision=1"],
        &["rollout", "status", "pod/lone"],
        &["rollout", "status", "deployment/nope"],
    ];
    for args in commands {
        let (ours, real) = both_in(&c, "ours", "real", args).await;
        assert_same(args, &ours, &real);
    }
    // Restarts stamp the time; the rest of every object is the same.
    for (r, name) in [
        (&DEPLOYMENTS, "web"),
        (&DEPLOYMENTS, "solo"),
        (&REPLICA_SETS, "web-h1"),
        (&PODS, "lone"),
    ] {
        let strip = |mut v: Value| {
            v = comparable(v);
            v["metadata"].as_object_mut().unwrap().remove("generation");
            if let Some(a) = v["spec"]["template"]["metadata"]["annotations"].as_object_mut() {
                a.remove("kubectl.kubernetes.io/restartedAt");
            }
            v
        };
        let ours = strip(api(&c, r, "ours").get(name).await.unwrap());
        let real = strip(api(&c, r, "real").get(name).await.unwrap());
        assert_eq!(
            ours, real,
            "{} {name}: ours, then the real kubectl's",
            r.kind
        );
    }
    // The undo to revision 1 wrote that revision's template and annotations back.
    let web = api(&c, &DEPLOYMENTS, "ours").get("web").await.unwrap();
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
    assert_eq!(
        web["metadata"]["annotations"]["example.com/note"],
        "revision 1"
    );
    assert_eq!(
        web["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert!(web["spec"]["template"]["metadata"]["labels"]["pod-template-hash"].is_null());
}

/// Output that can be read while the kubectl writing it still runs.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Our kubectl running in the background, on a thread of its own (its future borrows
/// the streams, so it is not `Send`).
struct Running {
    out: SharedBuf,
    done: tokio::sync::oneshot::Receiver<(i32, String)>,
}

impl Running {
    fn start(c: &Cluster, args: &[&str]) -> Running {
        let mut argv: Vec<OsString> = vec!["kubectl".into()];
        argv.extend(args.iter().map(OsString::from));
        argv.extend(["--kubeconfig".into(), c.kubeconfig.clone().into_os_string()]);
        let out = SharedBuf::default();
        let mut writer = out.clone();
        let (tx, done) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut err = Vec::new();
            let code = runtime.block_on(minik8s_kubectl::run(
                argv,
                &mut std::io::empty(),
                &mut writer,
                &mut err,
            ));
            let _ = tx.send((code, String::from_utf8_lossy(&err).into_owned()));
        });
        Running { out, done }
    }

    /// Waits until the output so far is `text`.
    async fn printed(&self, text: &str) {
        let waited =
            minik8s_tests::wait_for("kubectl's output", Duration::from_secs(20), || async {
                (self.out.text() == text).then_some(())
            })
            .await;
        assert!(
            waited.is_ok(),
            "kubectl printed {:?}, not {text:?}",
            self.out.text()
        );
    }

    async fn finish(self) -> Output {
        let (code, err) = tokio::time::timeout(Duration::from_secs(40), self.done)
            .await
            .expect("kubectl finished in time")
            .unwrap();
        Output {
            code,
            out: self.out.text(),
            err,
        }
    }
}

async fn write_status(c: &Cluster, r: &'static ResourceInfo, ns: &str, name: &str, status: Value) {
    api(c, r, ns)
        .patch_status(name, &Patch::Merge(json!({ "status": status })))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_and_wait_watch_the_status_until_it_is_there() {
    let c = Cluster::start().await;
    namespace(&c, "w").await;
    let deployments = api(&c, &DEPLOYMENTS, "w");
    deployments
        .create(
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "app", "image": "busybox"}]}}}}),
        )
        .await
        .unwrap();
    api(&c, &JOBS, "w")
        .create(
            &json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "app", "image": "busybox"}]}}}}),
        )
        .await
        .unwrap();

    // Nothing observed yet: one line, or a timeout, as the real kubectl says it.
    let once: &[&str] = &[
        "-n",
        "w",
        "rollout",
        "status",
        "deployment/web",
        "--watch=false",
    ];
    let short: &[&str] = &[
        "-n",
        "w",
        "rollout",
        "status",
        "deployment/web",
        "--timeout=1s",
    ];
    let revision: &[&str] = &[
        "-n",
        "w",
        "rollout",
        "status",
        "deployment/web",
        "--revision=2",
    ];
    let never: &[&str] = &[
        "-n",
        "w",
        "wait",
        "--for=condition=Complete",
        "job/once",
        "--timeout=1s",
    ];
    let gone: &[&str] = &[
        "-n",
        "w",
        "wait",
        "--for=delete",
        "job/nope",
        "--timeout=1s",
    ];
    let missing: &[&str] = &["-n", "w", "wait", "--for=condition=Ready", "pod/nope"];
    let bogus: &[&str] = &["-n", "w", "wait", "--for=ready", "job/once"];
    let look: &[&str] = &[
        "-n",
        "w",
        "wait",
        "--for=jsonpath={.spec.replicas}=3",
        "deployment/web",
        "--timeout=0",
    ];
    for args in [once, short, revision, never, gone, missing, bogus, look] {
        let (ours, real) = (run_ours(&c, args).await, run_real(&c, args).await);
        assert_same(args, &ours, &real);
    }

    // A rollout in progress: ours watches, printing each step, until it is done. Each
    // status is written once ours has printed the one before.
    write_status(
        &c,
        &DEPLOYMENTS,
        "w",
        "web",
        json!({"observedGeneration": 1,
        "replicas": 3, "updatedReplicas": 3, "availableReplicas": 1}),
    )
    .await;
    let status = Running::start(
        &c,
        &[
            "-n",
            "w",
            "rollout",
            "status",
            "deployment/web",
            "--timeout=30s",
        ],
    );
    let wait = Running::start(
        &c,
        &[
            "-n",
            "w",
            "wait",
            "--for=condition=complete",
            "job/once",
            "--timeout=30s",
        ],
    );
    let steps = [
        "Waiting for deployment \"web\" rollout to finish: 1 of 3 updated replicas are available...\n",
        "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...\n",
    ];
    let mut printed = String::new();
    for (i, step) in steps.iter().enumerate() {
        printed.push_str(step);
        status.printed(&printed).await;
        write_status(
            &c,
            &DEPLOYMENTS,
            "w",
            "web",
            json!({"availableReplicas": i + 2}),
        )
        .await;
    }
    let status = status.finish().await;
    assert_eq!(status.code, 0, "{}", status.err);
    assert_eq!(
        status.out,
        format!("{printed}deployment \"web\" successfully rolled out\n")
    );
    // Done: both print the same.
    let done: &[&str] = &["-n", "w", "rollout", "status", "deployment/web"];
    let (ours, real) = (run_ours(&c, done).await, run_real(&c, done).await);
    assert_same(done, &ours, &real);

    write_status(
        &c,
        &JOBS,
        "w",
        "once",
        json!({"succeeded": 1,
        "startTime": "2024-05-01T10:00:00Z", "completionTime": "2024-05-01T10:00:05Z",
        "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                       {"type": "Complete", "status": "True"}]}),
    )
    .await;
    let wait = wait.finish().await;
    assert_eq!(wait.code, 0, "{}", wait.err);
    assert_eq!(wait.out, "job.batch/once condition met\n");
    let met: &[&str] = &[
        "-n",
        "w",
        "wait",
        "--for=condition=Complete",
        "job/once",
        "deployment/web",
        "--timeout=2s",
    ];
    let (ours, real) = (run_ours(&c, met).await, run_real(&c, met).await);
    assert_same(met, &ours, &real);

    // The object goes while `wait --for=delete` watches it: a finalizer holds it, deleted,
    // until the wait has had time to find it; the wait must not end before it is gone.
    let jobs = api(&c, &JOBS, "w");
    jobs.patch(
        "once",
        &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold"]}})),
    )
    .await
    .unwrap();
    jobs.delete(
        "once",
        // In the background: no orphan finalizer for a garbage collector to remove.
        &minik8s_client::DeleteParams {
            propagation_policy: Some(minik8s_client::PropagationPolicy::Background),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut deleted = Running::start(
        &c,
        &[
            "-n",
            "w",
            "wait",
            "--for=delete",
            "job/once",
            "--timeout=30s",
        ],
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(2), &mut deleted.done)
            .await
            .is_err(),
        "wait --for=delete ended while the object was still there: {:?}",
        deleted.out.text()
    );
    jobs.patch(
        "once",
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let deleted = deleted.finish().await;
    assert_eq!(deleted.code, 0, "{}", deleted.err);
    assert_eq!(deleted.out, "job.batch/once condition met\n");
}

/// How many ReplicaSets the Deployment controller has made in `ns`.
async fn replica_sets(c: &Cluster, ns: &str) -> usize {
    api(c, &REPLICA_SETS, ns)
        .list(&Default::default())
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_of_the_workload_controllers_read_as_the_real_kubectls() {
    let c = Cluster::start_with_controllers().await;
    namespace(&c, "ours").await;
    namespace(&c, "real").await;
    // No replicas: the controller's revisions and status need no node.
    let steps: &[(&[&str], usize)] = &[
        (
            &[
                "create",
                "deployment",
                "web",
                "--image=busybox:1.36",
                "--replicas=0",
            ],
            1,
        ),
        (
            &["set", "image", "deployment/web", "busybox=busybox:1.37"],
            2,
        ),
        (&["rollout", "undo", "deployment/web"], 2),
    ];
    for (args, sets) in steps {
        let (ours, real) = both_in(&c, "ours", "real", args).await;
        assert_same(args, &ours, &real);
        for ns in ["ours", "real"] {
            minik8s_tests::wait_for(
                &format!("{sets} ReplicaSets in {ns}"),
                Duration::from_secs(30),
                || async { (replica_sets(&c, ns).await == *sets).then_some(()) },
            )
            .await
            .unwrap();
        }
        // Ours watches until the controller has observed the change and rolled it out.
        let status: &[&str] = &["rollout", "status", "deployment/web", "--timeout=30s"];
        let ours = run_ours(&c, &[&["-n", "ours"], status].concat()).await;
        assert_eq!(ours.code, 0, "{}", ours.err);
        assert!(
            ours.out
                .ends_with("deployment \"web\" successfully rolled out\n"),
            "{}",
            ours.out
        );
        let real = run_real(&c, &[&["-n", "real"], status].concat()).await;
        assert_eq!(real.code, 0, "{}", real.err);
    }
    for args in [
        &["rollout", "history", "deployment/web"][..],
        &["rollout", "history", "deployment/web", "--revision=3"],
        &["rollout", "undo", "deployment/web", "--to-revision=3"],
        &["rollout", "undo", "deployment/web", "--to-revision=1"],
        &[
            "rollout",
            "status",
            "deployment/web",
            "--watch=false",
            "--revision=3",
        ],
    ] {
        let (ours, real) = both_in(&c, "ours", "real", args).await;
        assert_same(args, &ours, &real);
    }
    let web = api(&c, &DEPLOYMENTS, "ours").get("web").await.unwrap();
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"], "busybox:1.36",
        "undo took the Deployment back to its first template"
    );

    // A StatefulSet's revisions are the ControllerRevisions its controller keeps.
    for ns in ["ours", "real"] {
        api(&c, &STATEFUL_SETS, ns)
            .create(&json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "db"},
                "spec": {"replicas": 0, "serviceName": "db",
                         "selector": {"matchLabels": {"app": "db"}},
                         "template": {"metadata": {"labels": {"app": "db"}},
                                      "spec": {"containers": [{"name": "db", "image": "busybox:1.36"}]}}}}))
            .await
            .unwrap();
    }
    let revisions = async |ns: &str, n: usize| {
        minik8s_tests::wait_for(
            &format!("{n} ControllerRevisions in {ns}"),
            Duration::from_secs(30),
            || async {
                let list = api(&c, &CONTROLLER_REVISIONS, ns)
                    .list(&Default::default())
                    .await
                    .ok()?;
                (list.items.len() == n).then_some(())
            },
        )
        .await
        .unwrap();
    };
    for ns in ["ours", "real"] {
        revisions(ns, 1).await;
    }
    let args: &[&str] = &["set", "image", "statefulset/db", "db=busybox:1.37"];
    let (ours, real) = both_in(&c, "ours", "real", args).await;
    assert_same(args, &ours, &real);
    for ns in ["ours", "real"] {
        revisions(ns, 2).await;
    }
    for args in [
        &["rollout", "history", "statefulset/db"][..],
        &["rollout", "history", "statefulset/db", "--revision=1"],
        &["rollout", "undo", "statefulset/db", "--dry-run=client"],
        &["rollout", "undo", "statefulset/db", "--to-revision=2"],
        &["rollout", "undo", "statefulset/db", "--to-revision=5"],
        &["rollout", "undo", "statefulset/db"],
    ] {
        let (ours, real) = both_in(&c, "ours", "real", args).await;
        assert_same(args, &ours, &real);
    }
    let db = api(&c, &STATEFUL_SETS, "ours").get("db").await.unwrap();
    assert_eq!(
        db["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.36"
    );
}

/// End to end with pods that run: our kubectl creates a Deployment, watches its rollout
/// (the Deployment and ReplicaSet controllers and a kubelet on Docker do the work),
/// restarts it into a second revision, scales it and waits for it to be Available.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_kubectl_rolls_out_a_deployment_of_running_pods() {
    use minik8s_tests::kubelet::{BUSYBOX, TestNode};
    let node = TestNode::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = node.api.write_kubeconfig(dir.path()).unwrap();
    let kubeconfig = kubeconfig.display().to_string();
    let kubectl = async |args: &[&str], stdin: &str| {
        let mut argv = vec!["--kubeconfig", kubeconfig.as_str()];
        argv.extend_from_slice(args);
        kubectl_support::kubectl_raw(&argv, stdin).await
    };
    let image = format!("--image={BUSYBOX}");
    let generated = kubectl(
        &[
            "create",
            "deployment",
            "web",
            &image,
            "--dry-run=client",
            "-o",
            "json",
            "--",
            "sh",
            "-c",
            "trap 'exit 0' TERM; sleep 3600 & wait",
        ],
        "",
    )
    .await;
    let mut deployment: Value = serde_json::from_str(generated.ok()).unwrap();
    // The test image is local only: never pulled.
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
        json!("IfNotPresent");
    let created = kubectl(&["create", "-f", "-"], &deployment.to_string()).await;
    assert_eq!(created.ok(), "deployment.apps/web created\n");

    let status = ["rollout", "status", "deployment/web", "--timeout=90s"];
    let out = kubectl(&status, "").await;
    assert!(
        out.ok()
            .ends_with("deployment \"web\" successfully rolled out\n"),
        "{}",
        out.out
    );
    let restarted = kubectl(&["rollout", "restart", "deployment/web"], "").await;
    assert_eq!(restarted.ok(), "deployment.apps/web restarted\n");
    let out = kubectl(&status, "").await;
    assert!(
        out.ok()
            .ends_with("deployment \"web\" successfully rolled out\n"),
        "{}",
        out.out
    );
    let history = kubectl(&["rollout", "history", "deployment/web"], "").await;
    assert_eq!(
        history.ok(),
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n"
    );
    let scaled = kubectl(
        &["scale", "--replicas=2", "deployment/web", "--timeout=90s"],
        "",
    )
    .await;
    assert_eq!(scaled.ok(), "deployment.apps/web scaled\n");
    let available = kubectl(
        &[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=90s",
        ],
        "",
    )
    .await;
    assert_eq!(available.ok(), "deployment.apps/web condition met\n");
    // Pods of the first revision may still be stopping: the Deployment counts the ready.
    let ready = kubectl(
        &[
            "wait",
            "--for=jsonpath={.status.readyReplicas}=2",
            "deployment/web",
            "--timeout=90s",
        ],
        "",
    )
    .await;
    assert_eq!(ready.ok(), "deployment.apps/web condition met\n");
}
