//! Our kubectl and the system's real kubectl, run against the same server and the same
//! objects, print the same thing: every table, YAML, JSON and description (the AGE
//! columns, which tick, masked), and the same messages for the same mistakes.

mod kubectl_support;

use kubectl_support::{Cluster, Output, mask_column, running_pod, seed, seed_services};
use serde_json::Value;

/// Masks what depends on the moment a command ran.
fn normalized(text: &str, args: &[&str]) -> String {
    if args[0] == "describe" {
        // The node's pod table ends with each pod's age.
        return text
            .lines()
            .map(|l| match l.rsplit_once("%)  ") {
                Some((row, _age)) if l.starts_with("  ") => format!("{row}%)  ?\n"),
                _ => format!("{l}\n"),
            })
            .collect();
    }
    if args.contains(&"yaml") || args.contains(&"json") || args.contains(&"name") {
        return text.to_string();
    }
    if args.contains(&"--no-headers") {
        // No header to find the column by: pods' AGE is the last one.
        return text
            .lines()
            .map(|l| format!("{} ?\n", l.rsplit_once(' ').map_or(l, |(row, _)| row)))
            .collect();
    }
    // Tables, possibly several separated by blank lines.
    text.split("\n\n")
        .map(|t| {
            let t = mask_column(t, "AGE");
            mask_column(&t, "LAST SEEN")
        })
        .map(|t| t.trim_end_matches('\n').to_string())
        .collect::<Vec<_>>()
        .join("\n\n")
}

async fn both(c: &Cluster, args: &[&str]) -> (Output, Output) {
    let ours = c.kubectl(args).await;
    let real = c.real_kubectl(args).await;
    (ours, real)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_print_what_the_real_kubectl_prints() {
    let c = Cluster::start().await;
    seed(&c).await;
    let commands: &[&[&str]] = &[
        &["get", "pods"],
        &["get", "pods", "-o", "wide"],
        &["get", "pods", "-A", "--show-labels"],
        &["get", "pods", "--no-headers"],
        &["get", "pod", "running", "crashloop"],
        &["get", "po", "-l", "app in (running,failed)", "-o", "name"],
        &["get", "pods", "--field-selector", "status.phase=Running"],
        &["get", "nodes", "-o", "wide"],
        &["get", "namespaces"],
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=running",
        ],
        &[
            "get",
            "events",
            "-o",
            "wide",
            "--field-selector",
            "involvedObject.name=running",
        ],
        &["get", "pods,nodes"],
        &["get", "pod", "running", "-o", "yaml"],
        &["get", "pod", "crashloop", "-o", "json"],
        &["get", "pods", "-l", "app=running", "-o", "yaml"],
        &["get", "ns", "-o", "json"],
        &["describe", "pod", "running"],
        &["describe", "pod", "crashloop"],
        &["describe", "pod", "initializing"],
        &["describe", "pod", "terminating"],
        &["describe", "pod", "pending"],
        &[
            "describe",
            "pods",
            "-l",
            "app in (completed,failed,creating)",
        ],
        &["describe", "pod", "crash"],
        &["describe", "node", "node-1"],
        &["describe", "namespace", "other"],
        &["api-resources"],
        &["api-resources", "-o", "wide"],
    ];
    for args in commands {
        let (ours, real) = both(&c, args).await;
        assert_eq!(
            real.code, 0,
            "the real kubectl failed on {args:?}: {}",
            real.err
        );
        assert_eq!(ours.code, 0, "ours failed on {args:?}: {}", ours.err);
        assert_eq!(
            normalized(&ours.out, args),
            normalized(&real.out, args),
            "kubectl {args:?} differs (left: ours, right: the real kubectl)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_read_as_the_real_kubectl_writes_them() {
    let c = Cluster::start().await;
    seed(&c).await;
    let bad = c.write(
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n    image: \"\"\n  - name: \"\"\n    image: x\n",
    );
    let commands: &[&[&str]] = &[
        &["get", "pod", "nope"],
        &["get", "pod", "nope", "running"],
        &["get", "pods", "-l", "app=nothing"],
        &["get", "nodes", "-l", "x=y"],
        &["get", "pods", "-A", "-l", "x=y"],
        &["get", "pod", "running", "-A"],
        &["describe", "pod", "nope"],
        &["delete", "pod", "nope"],
        &["delete", "pods"],
        &["create", "-f", &bad],
        &["get"],
    ];
    for args in commands {
        let (ours, real) = both(&c, args).await;
        assert_eq!(ours.code, real.code, "exit code of {args:?}");
        assert_eq!(ours.err, real.err, "stderr of {args:?}");
        assert_eq!(
            normalized(&ours.out, args),
            normalized(&real.out, args),
            "stdout of {args:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_report_what_the_real_kubectl_reports() {
    let c = Cluster::start().await;
    let namespaces = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ours\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: real\n";
    c.kubectl_stdin(&["create", "-f", "-"], namespaces)
        .await
        .ok();
    let pod = c.write(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels:\n    app: web\nspec:\n  containers:\n  - name: app\n    image: nginx:1.25\n",
    );
    let newer = c.write(
        "newer.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: nginx:1.26\n",
    );
    let steps: &[&[&str]] = &[
        &["create", "-f", &pod],
        &["create", "-f", &pod],
        &["apply", "-f", &pod],
        &["apply", "-f", &newer],
        &["apply", "-f", &newer],
        &["delete", "pod", "web", "--now"],
        &["apply", "-f", &pod],
        &["delete", "-f", &pod, "--force", "--grace-period=0"],
        &["delete", "pods", "-l", "app=web"],
    ];
    for step in steps {
        let mut ours_args = step.to_vec();
        ours_args.extend(["-n", "ours"]);
        let mut real_args = step.to_vec();
        real_args.extend(["-n", "real"]);
        let ours = c.kubectl(&ours_args).await;
        let real = c.real_kubectl(&real_args).await;
        assert_eq!(
            (ours.code, ours.out.as_str(), ours.err.as_str()),
            (
                real.code,
                real.out.as_str(),
                real.err.replace("\"real\"", "\"ours\"").as_str()
            ),
            "kubectl {step:?} (left: ours, right: the real kubectl)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_print_what_the_real_kubectl_prints() {
    let c = Cluster::start_with_controllers().await;
    seed_services(&c).await;
    let commands: &[&[&str]] = &[
        &["get", "svc"],
        &["get", "services", "-o", "wide"],
        &["get", "svc", "-A", "--show-labels"],
        &["get", "svc", "web", "np", "-o", "wide"],
        &["get", "svc", "-o", "name"],
        &["get", "svc", "web", "-o", "yaml"],
        &["get", "svc", "np", "-o", "json"],
        &["get", "ep"],
        &["get", "endpoints", "-o", "wide"],
        &["get", "ep", "web", "-o", "yaml"],
        &["get", "endpointslices"],
        &["get", "endpointslices", "-o", "wide"],
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "yaml",
        ],
        &["get", "svc,ep"],
        &["describe", "svc", "web"],
        &["describe", "svc", "np"],
        &["describe", "svc", "hl"],
        &["describe", "svc", "lonely"],
        &["describe", "svc", "db"],
        &["describe", "svc", "kubernetes"],
        &["describe", "services"],
        &["describe", "svc", "-l", "app=web"],
        &["describe", "service/web", "svc/np"],
        &["describe", "svc", "l"],
        &["describe", "svc", "web", "--show-events=false"],
    ];
    for args in commands {
        let (ours, real) = both(&c, args).await;
        assert_eq!(
            real.code, 0,
            "the real kubectl failed on {args:?}: {}",
            real.err
        );
        assert_eq!(ours.code, 0, "ours failed on {args:?}: {}", ours.err);
        assert_eq!(
            normalized(&ours.out, args),
            normalized(&real.out, args),
            "kubectl {args:?} differs (left: ours, right: the real kubectl)"
        );
    }
    for args in [
        &["describe", "svc", "nope"][..],
        &["get", "svc", "nope"],
        &["get", "ep", "-l", "app=nothing-has-this"],
    ] {
        let (ours, real) = both(&c, args).await;
        assert_eq!(
            (ours.code, ours.out.as_str(), ours.err.as_str()),
            (real.code, real.out.as_str(), real.err.as_str()),
            "kubectl {args:?} (left: ours, right: the real kubectl)"
        );
    }
}

/// A service as created, without what the server chose (address, node port, uid, ...).
fn comparable(service: &str) -> Value {
    let mut v: Value = serde_json::from_str(service).expect("service JSON");
    for key in ["uid", "resourceVersion", "creationTimestamp", "namespace"] {
        v["metadata"].as_object_mut().unwrap().remove(key);
    }
    for key in ["clusterIP", "clusterIPs"] {
        v["spec"].as_object_mut().unwrap().remove(key);
    }
    for port in v["spec"]["ports"].as_array_mut().into_iter().flatten() {
        port.as_object_mut().unwrap().remove("nodePort");
    }
    v
}

/// A description without the lines that name what the server chose.
fn without_allocations(text: &str) -> String {
    text.lines()
        .filter(|l| {
            !["Namespace:", "IP:", "IPs:", "NodePort:"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expose_creates_what_the_real_kubectl_creates() {
    let c = Cluster::start_with_controllers().await;
    for ns in ["ours", "real"] {
        c.kubectl_stdin(
            &["create", "-f", "-"],
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
        )
        .await
        .ok();
        running_pod(&c, ns, "web", "web", "10.244.0.31", true).await;
    }
    let steps: &[&[&str]] = &[
        &["expose", "pod", "web"],
        &[
            "expose",
            "pod",
            "web",
            "--port",
            "80",
            "--target-port",
            "http",
            "--name",
            "web-np",
            "--type",
            "NodePort",
        ],
        &[
            "expose",
            "pod/web",
            "--port",
            "53",
            "--protocol",
            "UDP",
            "--name",
            "web-dns",
        ],
        &[
            "expose",
            "pod",
            "web",
            "--port",
            "81",
            "--name",
            "web-labelled",
            "-l",
            "team=shop",
            "--selector",
            "app=web",
        ],
        &[
            "expose",
            "pod",
            "web",
            "--port",
            "82",
            "--name",
            "web-affinity",
            "--session-affinity",
            "ClientIP",
        ],
        &[
            "expose", "pod", "web", "--port", "83", "--name", "web-o", "-o", "name",
        ],
        &["expose", "pod", "web"],
        &["expose", "pod", "nope", "--port", "80"],
        &["expose", "pod"],
        &["expose"],
    ];
    for step in steps {
        let mut ours_args = step.to_vec();
        ours_args.extend(["-n", "ours"]);
        let mut real_args = step.to_vec();
        real_args.extend(["-n", "real"]);
        let ours = c.kubectl(&ours_args).await;
        let real = c.real_kubectl(&real_args).await;
        assert_eq!(
            (ours.code, ours.out.as_str(), ours.err.as_str()),
            (real.code, real.out.as_str(), real.err.as_str()),
            "kubectl {step:?} (left: ours, right: the real kubectl)"
        );
    }
    for name in [
        "web",
        "web-np",
        "web-dns",
        "web-labelled",
        "web-affinity",
        "web-o",
    ] {
        let get = async |ns: &str| {
            c.kubectl(&["get", "svc", name, "-n", ns, "-o", "json"])
                .await
        };
        assert_eq!(
            comparable(get("ours").await.ok()),
            comparable(get("real").await.ok()),
            "service {name} (left: ours, right: the real kubectl's)"
        );
        let describe = async |ns: &str| c.kubectl(&["describe", "svc", name, "-n", ns]).await;
        assert_eq!(
            without_allocations(describe("ours").await.ok()),
            without_allocations(describe("real").await.ok()),
            "describe svc {name} (left: ours, right: the real kubectl's service)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_files_write_as_the_real_kubectl_writes_them() {
    let c = Cluster::start_with_controllers().await;
    for ns in ["ours", "real"] {
        c.kubectl_stdin(
            &["create", "-f", "-"],
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
        )
        .await
        .ok();
    }
    let service = |target: u16| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: NodePort\n  selector:\n    app: web\n  ports:\n  - name: http\n    port: 80\n    targetPort: {target}\n  - name: metrics\n    port: 9090\n"
        )
    };
    let first = c.write("svc.yaml", &service(8080));
    let changed = c.write("svc2.yaml", &service(9000));
    let steps: &[&[&str]] = &[
        &["create", "-f", &first],
        &["create", "-f", &first],
        &["apply", "-f", &first],
        &["apply", "-f", &changed],
        &["apply", "-f", &changed],
        &["delete", "-f", &changed],
        &["apply", "-f", &first],
        &["delete", "svc", "web"],
        &["delete", "-f", &first],
    ];
    for step in steps {
        let mut ours_args = step.to_vec();
        ours_args.extend(["-n", "ours"]);
        let mut real_args = step.to_vec();
        real_args.extend(["-n", "real"]);
        let ours = c.kubectl(&ours_args).await;
        let real = c.real_kubectl(&real_args).await;
        assert_eq!(
            (ours.code, ours.out.as_str(), ours.err.as_str()),
            (
                real.code,
                real.out.as_str(),
                real.err.replace("\"real\"", "\"ours\"").as_str()
            ),
            "kubectl {step:?} (left: ours, right: the real kubectl)"
        );
        if step[0] == "apply" && step.contains(&changed.as_str()) {
            for ns in ["ours", "real"] {
                let svc = c
                    .kubectl(&["get", "svc", "web", "-n", ns, "-o", "json"])
                    .await;
                let svc: Value = serde_json::from_str(svc.ok()).unwrap();
                assert_eq!(svc["spec"]["ports"][0]["targetPort"], 9000, "{ns}: {svc}");
                assert_eq!(svc["spec"]["ports"][1]["port"], 9090, "{ns}: {svc}");
            }
        }
    }
}
