//! What our kubectl prints when things go wrong, and that it exits with 1: an
//! unreachable server, bad YAML, missing and existing objects, invalid objects, and files
//! that mix good and bad documents.

mod kubectl_support;

use kubectl_support::{Cluster, kubectl_raw};

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: nginx:1.25
";

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn unreachable_server() {
    let port = closed_port();
    let server = format!("http://127.0.0.1:{port}");
    let want = format!(
        "The connection to the server 127.0.0.1:{port} was refused - did you specify the right host or port?\n"
    );
    for args in [
        vec!["get", "pods", "--server", server.as_str()],
        vec!["describe", "pod", "web", "-s", server.as_str()],
        vec!["delete", "pod", "web", "--server", server.as_str()],
    ] {
        let out = kubectl_raw(&args, "").await;
        assert_eq!((out.code, out.out.as_str()), (1, ""), "{args:?}");
        assert_eq!(out.err, want, "{args:?}");
    }
    // `version` still prints the client's version.
    let out = kubectl_raw(&["version", "--server", &server], "").await;
    assert_eq!(out.code, 1);
    assert!(
        out.out.starts_with("Client Version: v1.33.0-minik8s."),
        "{}",
        out.out
    );
    assert_eq!(out.err, want);
}

#[tokio::test]
async fn missing_configuration_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let out = kubectl_raw(
        &["get", "pods", "--kubeconfig", missing.to_str().unwrap()],
        "",
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(
        out.err.starts_with("error: cannot read kubeconfig"),
        "{}",
        out.err
    );
    assert!(out.err.contains("nope"), "{}", out.err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_yaml_points_at_line_and_column() {
    let c = Cluster::start().await;
    let file = c.write(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n   image: nginx\n",
    );
    let out = c.kubectl(&["create", "-f", &file]).await;
    assert_eq!((out.code, out.out.as_str()), (1, ""));
    assert_eq!(
        out.err,
        format!(
            "error: error parsing {file}: line 8, column 4: did not find expected key, while parsing a block mapping at line 6 column 3\n"
        )
    );
    let out = c
        .kubectl_stdin(
            &["apply", "-f", "-"],
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x: y\n",
        )
        .await;
    assert_eq!(
        out.err,
        "error: error parsing STDIN: line 4, column 10: mapping values are not allowed in this context\n"
    );
    let out = c
        .kubectl_stdin(&["create", "-f", "-"], "kind: Pod\nmetadata: {name: a}\n")
        .await;
    assert_eq!(
        out.err,
        "error: error parsing STDIN: document 1 (line 1): missing 'apiVersion'\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_and_already_exists() {
    let c = Cluster::start().await;
    let out = c.kubectl(&["get", "pod", "x"]).await;
    assert_eq!(
        (out.code, out.err.as_str()),
        (1, "Error from server (NotFound): pods \"x\" not found\n")
    );
    let out = c.kubectl(&["delete", "pod", "x"]).await;
    assert_eq!(
        (out.code, out.err.as_str()),
        (1, "Error from server (NotFound): pods \"x\" not found\n")
    );
    let out = c.kubectl(&["logs", "x"]).await;
    assert_eq!(
        (out.code, out.err.as_str()),
        (1, "Error from server (NotFound): pods \"x\" not found\n")
    );
    let out = c.kubectl(&["get", "pods", "-n", "nowhere", "x"]).await;
    assert_eq!(out.code, 1);

    let file = c.write("pod.yaml", POD);
    assert_eq!(
        c.kubectl(&["create", "-f", &file]).await.ok(),
        "pod/web created\n"
    );
    let out = c.kubectl(&["create", "-f", &file]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.err,
        format!(
            "Error from server (AlreadyExists): error when creating \"{file}\": pods \"web\" already exists\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_objects_list_their_causes() {
    let c = Cluster::start().await;
    let two = c.write(
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n    image: \"\"\n  - name: \"\"\n    image: x\n",
    );
    let out = c.kubectl(&["create", "-f", &two]).await;
    assert_eq!((out.code, out.out.as_str()), (1, ""));
    assert_eq!(
        out.err,
        "The Pod \"bad\" is invalid: \n* spec.containers[0].image: Required value\n* spec.containers[1].name: Required value\n"
    );
    let one = c.write(
        "bad1.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n    image: \"\"\n",
    );
    let out = c.kubectl(&["apply", "-f", &one]).await;
    assert_eq!(
        out.err,
        "The Pod \"bad\" is invalid: spec.containers[0].image: Required value\n"
    );
    // Unknown fields are refused: kubectl asks for strict field validation.
    let typo = c.write(
        "typo.yaml",
        &POD.replace("image: nginx", "imagee: x\n    image: nginx"),
    );
    let out = c.kubectl(&["create", "-f", &typo]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.err
            .starts_with("Error from server (BadRequest): error when creating")
            && out.err.contains("strict decoding error")
            && out.err.contains("imagee"),
        "{}",
        out.err
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_documents_go_through_bad_ones_are_reported() {
    let c = Cluster::start().await;
    let text = format!(
        "{POD}---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: broken: here\n---\n{}---\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: dep\n---\n{}---\n{}",
        POD.replace("name: web", "name: invalid")
            .replace("nginx:1.25", "\"\""),
        POD.replace("name: web\n", "name: second\n"),
        POD,
    );
    let file = c.write("mixed.yaml", &text);
    let out = c.kubectl(&["create", "-f", &file]).await;
    assert_eq!(out.code, 1);
    assert_eq!(out.out, "pod/web created\npod/second created\n");
    assert_eq!(
        out.err,
        format!(
            "error parsing {file}: line 13, column 15: mapping values are not allowed in this context\n\
             Error from server (Invalid): error when creating \"{file}\": Pod \"invalid\" is invalid: spec.containers[0].image: Required value\n\
             resource mapping not found for name: \"dep\" namespace: \"\" from \"{file}\": no matches for kind \"CronJob\" in version \"batch/v1\"\n\
             known kinds: ConfigMap (v1), ControllerRevision (apps/v1), DaemonSet (apps/v1), Deployment (apps/v1), EndpointSlice (discovery.k8s.io/v1), Endpoints (v1), Event (v1), Job (batch/v1), Namespace (v1), Node (v1), Pod (v1), ReplicaSet (apps/v1), ReplicationController (v1), Secret (v1), Service (v1), StatefulSet (apps/v1), TaskSet (minik8s.io/v1alpha1)\n\
             Error from server (AlreadyExists): error when creating \"{file}\": pods \"web\" already exists\n"
        )
    );
    let names = c.kubectl(&["get", "pods", "-o", "name"]).await;
    assert_eq!(names.ok(), "pod/second\npod/web\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_types_and_kinds_name_the_known_ones() {
    let c = Cluster::start().await;
    let out = c.kubectl(&["get", "cronjobs"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.err,
        "error: the server doesn't have a resource type \"cronjobs\"\nknown resource types: configmaps (cm), controllerrevisions, daemonsets (ds), deployments (deploy), endpoints (ep), endpointslices, events (ev), jobs, namespaces (ns), nodes (no), pods (po), replicasets (rs), replicationcontrollers (rc), secrets, services (svc), statefulsets (sts), tasksets (ts)\n"
    );
    let file = c.write(
        "dep.yaml",
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: d\n",
    );
    let out = c.kubectl(&["apply", "-f", &file]).await;
    assert_eq!(
        out.err,
        format!(
            "error: resource mapping not found for name: \"d\" namespace: \"\" from \"{file}\": no matches for kind \"CronJob\" in version \"batch/v1\"\nknown kinds: ConfigMap (v1), ControllerRevision (apps/v1), DaemonSet (apps/v1), Deployment (apps/v1), EndpointSlice (discovery.k8s.io/v1), Endpoints (v1), Event (v1), Job (batch/v1), Namespace (v1), Node (v1), Pod (v1), ReplicaSet (apps/v1), ReplicationController (v1), Secret (v1), Service (v1), StatefulSet (apps/v1), TaskSet (minik8s.io/v1alpha1)\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_mistakes() {
    let c = Cluster::start().await;
    let cases: &[(&[&str], &str)] = &[
        (
            &["get", "pods", "--bogus"],
            "error: unknown flag: --bogus\nSee 'kubectl --help' for usage.\n",
        ),
        (
            &["frobnicate"],
            "error: unknown command \"frobnicate\" for \"kubectl\"\n\nRun 'kubectl --help' for usage.\n",
        ),
        (
            &["get"],
            "You must specify the type of resource to get. Use \"kubectl api-resources\" for a complete list of supported resources.\n\nerror: Required resource not specified.\nUse \"kubectl explain <resource>\" for a detailed description of that resource (e.g. kubectl explain pods).\nSee 'kubectl get -h' for help and examples\n",
        ),
        (
            &["get", "pods", "-o", "xml"],
            "error: unable to match a printer suitable for the output format \"xml\", allowed formats are: json,name,wide,yaml\n",
        ),
        (&["create"], "error: must specify one of -f and -k\n"),
        (
            &["delete", "pods"],
            "error: resource(s) were provided, but no name was specified\n",
        ),
        (
            &["delete", "pod", "a", "--now", "--grace-period=3"],
            "error: --now and --grace-period cannot be specified together\n",
        ),
        (
            &["logs"],
            "error: expected 'logs [-f] [-p] (POD | TYPE/NAME) [-c CONTAINER]'.\nPOD or TYPE/NAME is a required argument for the logs command\nSee 'kubectl logs -h' for help and examples\n",
        ),
        (
            &["exec", "web", "ls"],
            "error: exec [POD] [COMMAND] is not supported anymore. Use exec [POD] -- [COMMAND] instead\nSee 'kubectl exec -h' for help and examples\n",
        ),
    ];
    for (args, want) in cases {
        let out = c.kubectl(args).await;
        assert_eq!((out.code, out.err.as_str()), (1, *want), "{args:?}");
    }
    let file = c.write(
        "ns.yaml",
        &POD.replace("name: web", "name: web\n  namespace: a"),
    );
    let out = c.kubectl(&["create", "-f", &file, "-n", "b"]).await;
    assert_eq!(
        out.err,
        "error: the namespace from the provided object \"a\" does not match the namespace \"b\". You must pass '--namespace=a' to perform this operation.\n"
    );
}
