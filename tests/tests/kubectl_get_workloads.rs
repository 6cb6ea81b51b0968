//! `get` of config maps, secrets and the workload kinds, and `get all`: our kubectl and
//! the system's real kubectl, run against the same server and the same objects, print
//! the same bytes (the AGE and DURATION columns, which tick, masked).
//!
//! The server runs without its controllers, so that no Deployment grows ReplicaSets and
//! no ReplicaSet grows pods between the two commands being compared: every status shown
//! is the one the test wrote through the `/status` subresource.

mod kubectl_support;

use kubectl_support::{Cluster, Output, mask_column, running_pod};
use minik8s_api::resource::{
    CONFIG_MAPS, CONTROLLER_REVISIONS, DAEMON_SETS, DEPLOYMENTS, JOBS, REPLICA_SETS,
    REPLICATION_CONTROLLERS, ResourceInfo, SECRETS, SERVICES, STATEFUL_SETS,
};
use minik8s_client::DynamicApi;
use serde_json::{Value, json};

const NS: &str = "work";

fn template(app: &str, containers: &[(&str, &str)]) -> Value {
    let containers: Vec<Value> = containers
        .iter()
        .map(|(name, image)| json!({"name": name, "image": image}))
        .collect();
    json!({"metadata": {"labels": {"app": app}}, "spec": {"containers": containers}})
}

/// Creates `object` in the test namespace and, when given, writes `status` through
/// `/status`. Returns the object as stored.
async fn create(
    c: &Cluster,
    r: &'static ResourceInfo,
    object: Value,
    status: Option<Value>,
) -> Value {
    let api = DynamicApi::new(c.client.clone(), r, Some(NS.into()));
    let mut object = object;
    object["apiVersion"] = json!(r.api_version());
    object["kind"] = json!(r.kind);
    let name = object["metadata"]["name"].as_str().unwrap().to_string();
    let mut created = api
        .create(&object)
        .await
        .unwrap_or_else(|e| panic!("{} {name} created: {e}", r.kind));
    if let Some(status) = status {
        created["status"] = status;
        created = api
            .replace_status(&name, &created)
            .await
            .unwrap_or_else(|e| panic!("status of {} {name} written: {e}", r.kind));
    }
    created
}

/// One object of every kind `get` prints, with statuses that give every column a value.
async fn seed(c: &Cluster) {
    c.kubectl_stdin(
        &["create", "-f", "-"],
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n"),
    )
    .await
    .ok();
    create(
        c,
        &CONFIG_MAPS,
        json!({"metadata": {"name": "settings", "labels": {"app": "web"}},
               "data": {"mode": "prod", "level": "3"}, "binaryData": {"blob": "AAEC"}}),
        None,
    )
    .await;
    create(
        c,
        &CONFIG_MAPS,
        json!({"metadata": {"name": "empty"}}),
        None,
    )
    .await;
    create(
        c,
        &SECRETS,
        json!({"metadata": {"name": "creds"}, "data": {"user": "YWRtaW4=", "password": "c2VjcmV0"}}),
        None,
    )
    .await;
    create(
        c,
        &SECRETS,
        json!({"metadata": {"name": "token"}, "type": "example.com/token",
               "stringData": {"token": "abc"}}),
        None,
    )
    .await;
    create(
        c,
        &REPLICATION_CONTROLLERS,
        json!({"metadata": {"name": "legacy", "labels": {"app": "legacy"}},
               "spec": {"replicas": 2, "selector": {"app": "legacy", "tier": "old"},
                        "template": {"metadata": {"labels": {"app": "legacy", "tier": "old"}},
                                     "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]}}}}),
        Some(json!({"replicas": 2, "readyReplicas": 1, "availableReplicas": 1})),
    )
    .await;
    let web_selector = json!({"matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "edge"]},
                             {"key": "canary", "operator": "DoesNotExist"}]});
    let mut web_template = template("web", &[("app", "nginx:1.25"), ("log", "busybox:1.36")]);
    web_template["metadata"]["labels"]["tier"] = json!("front");
    create(
        c,
        &DEPLOYMENTS,
        json!({"metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {"replicas": 3, "selector": web_selector, "template": web_template}}),
        Some(
            json!({"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3,
                    "availableReplicas": 2, "unavailableReplicas": 1}),
        ),
    )
    .await;
    create(
        c,
        &DEPLOYMENTS,
        json!({"metadata": {"name": "idle"},
               "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "idle"}},
                        "template": template("idle", &[("app", "busybox:1.36")])}}),
        None,
    )
    .await;
    create(
        c,
        &REPLICA_SETS,
        json!({"metadata": {"name": "web-7d9f8c6b5", "labels": {"app": "web", "tier": "front"}},
               "spec": {"replicas": 3, "selector": web_selector, "template": web_template}}),
        Some(
            json!({"replicas": 3, "readyReplicas": 2, "availableReplicas": 2,
                    "fullyLabeledReplicas": 3}),
        ),
    )
    .await;
    let db = create(
        c,
        &STATEFUL_SETS,
        json!({"metadata": {"name": "db", "labels": {"app": "db"}},
               "spec": {"replicas": 2, "serviceName": "db",
                        "selector": {"matchLabels": {"app": "db"}},
                        "template": template("db", &[("postgres", "postgres:16")])}}),
        Some(
            json!({"replicas": 2, "readyReplicas": 1, "currentReplicas": 2,
                    "updatedReplicas": 2, "availableReplicas": 1}),
        ),
    )
    .await;
    let mut agent_template = template("agent", &[("agent", "busybox:1.36")]);
    agent_template["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux", "disk": "ssd"});
    create(
        c,
        &DAEMON_SETS,
        json!({"metadata": {"name": "agent"},
               "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": agent_template}}),
        Some(json!({"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                    "updatedNumberScheduled": 3, "numberAvailable": 2, "numberUnavailable": 1,
                    "numberMisscheduled": 0})),
    )
    .await;
    let job_template = |app: &str| {
        let mut t = template(app, &[("work", "busybox:1.36")]);
        t["spec"]["restartPolicy"] = json!("Never");
        t
    };
    create(
        c,
        &JOBS,
        json!({"metadata": {"name": "done"},
               "spec": {"completions": 2, "template": job_template("done")}}),
        Some(json!({"succeeded": 2, "startTime": "2024-05-01T10:00:00Z",
                    "completionTime": "2024-05-01T10:01:05Z",
                    "conditions": [
                        {"type": "SuccessCriteriaMet", "status": "True",
                         "lastProbeTime": "2024-05-01T10:01:05Z", "lastTransitionTime": "2024-05-01T10:01:05Z"},
                        {"type": "Complete", "status": "True",
                         "lastProbeTime": "2024-05-01T10:01:05Z", "lastTransitionTime": "2024-05-01T10:01:05Z"}]})),
    )
    .await;
    create(
        c,
        &JOBS,
        json!({"metadata": {"name": "crunch"},
               "spec": {"parallelism": 3, "template": job_template("crunch")}}),
        Some(json!({"active": 3, "succeeded": 0, "startTime": "2024-05-01T10:00:00Z"})),
    )
    .await;
    create(
        c,
        &JOBS,
        json!({"metadata": {"name": "paused"},
               "spec": {"suspend": true, "template": job_template("paused")}}),
        Some(
            json!({"conditions": [{"type": "Suspended", "status": "True", "reason": "JobSuspended",
                                    "message": "Job suspended",
                                    "lastProbeTime": "2024-05-01T10:00:00Z",
                                    "lastTransitionTime": "2024-05-01T10:00:00Z"}]}),
        ),
    )
    .await;
    create(
        c,
        &CONTROLLER_REVISIONS,
        json!({"metadata": {"name": "db-5c9b7d8f6", "labels": {"app": "db"},
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                                 "name": "db", "uid": db["metadata"]["uid"],
                                                 "controller": true, "blockOwnerDeletion": true}]},
               "revision": 1, "data": {"spec": {"template": {"spec": {}}}}}),
        None,
    )
    .await;
    create(
        c,
        &CONTROLLER_REVISIONS,
        json!({"metadata": {"name": "orphan-1"}, "revision": 4}),
        None,
    )
    .await;
    create(
        c,
        &SERVICES,
        json!({"metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.80",
                        "ports": [{"port": 80, "targetPort": 8080}]}}),
        None,
    )
    .await;
    running_pod(c, NS, "web-7d9f8c6b5-abcde", "web", "10.244.0.90", true).await;
}

/// Masks what depends on the moment a command ran: AGE, and the DURATION of a running
/// job, in each of the tables `get` prints.
fn normalized(text: &str) -> String {
    text.split("\n\n")
        .map(|t| mask_column(&mask_column(t, "AGE"), "DURATION"))
        .map(|t| t.trim_end_matches('\n').to_string())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Runs both kubectls; a second time if they differ, as an age may have just ticked over
/// to a wider one (`9s` to `10s`) between the two.
async fn compare(c: &Cluster, args: &[&str]) -> (Output, Output) {
    let mut last = None;
    for _ in 0..3 {
        let ours = c.kubectl(args).await;
        let real = c.real_kubectl(args).await;
        if (ours.code, normalized(&ours.out), &ours.err)
            == (real.code, normalized(&real.out), &real.err)
        {
            return (ours, real);
        }
        last = Some((ours, real));
    }
    let (ours, real) = last.unwrap();
    assert_eq!(
        normalized(&ours.out),
        normalized(&real.out),
        "stdout of kubectl {args:?} (left: ours, right: the real kubectl); stderr: ours {:?}, real {:?}",
        ours.err,
        real.err
    );
    assert_eq!(
        (ours.code, &ours.err),
        (real.code, &real.err),
        "exit code and stderr of kubectl {args:?}"
    );
    (ours, real)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_print_what_the_real_kubectl_prints() {
    let c = Cluster::start().await;
    seed(&c).await;
    let commands: &[&[&str]] = &[
        &["get", "configmaps"],
        &["get", "cm", "settings", "-o", "wide"],
        &["get", "secrets"],
        &["get", "secret", "-o", "wide"],
        &["get", "rc"],
        &["get", "replicationcontrollers", "-o", "wide"],
        &["get", "deployments"],
        &["get", "deploy", "-o", "wide"],
        &["get", "rs"],
        &["get", "replicasets", "-o", "wide"],
        &["get", "sts"],
        &["get", "statefulsets", "-o", "wide"],
        &["get", "ds"],
        &["get", "daemonsets", "-o", "wide"],
        &["get", "jobs"],
        &["get", "job", "-o", "wide"],
        &["get", "controllerrevisions"],
        &["get", "controllerrevisions", "-o", "wide"],
        &["get", "deploy,rs"],
        &["get", "deploy,rs", "-o", "wide"],
        &["get", "deploy", "web", "idle"],
        &["get", "deployment/web", "sts/db", "job/done"],
        &["get", "deploy", "-l", "app=web", "--show-labels"],
        &["get", "cm,secrets", "--show-labels"],
        &["get", "all"],
        &["get", "all", "-o", "wide"],
        &["get", "all", "--show-labels"],
        &["get", "all", "-l", "app=web"],
        &["get", "all", "-A"],
        &["get", "all", "-A", "-o", "wide"],
        &["get", "all,cm"],
        &["get", "deploy", "-o", "name"],
        &["get", "all", "-o", "name"],
    ];
    for args in commands {
        let mut args = args.to_vec();
        args.extend(["-n", NS]);
        let (ours, real) = compare(&c, &args).await;
        assert_eq!(
            real.code, 0,
            "the real kubectl failed on {args:?}: {}",
            real.err
        );
        assert!(!ours.out.is_empty(), "kubectl {args:?} printed nothing");
    }
    // Without headers there is no AGE to mask by, and no blank line between the tables:
    // the same lines, the same names, cell for cell up to the age.
    let args = ["get", "all", "--no-headers", "-n", NS];
    let (ours, real) = (c.kubectl(&args).await, c.real_kubectl(&args).await);
    let before_age = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(before_age(ours.ok()), before_age(&real.out), "{args:?}");
    assert!(!ours.out.contains("\n\n"), "{}", ours.out);
    // A few cells, so that the comparison above is not of two empty or equally wrong
    // tables.
    let wide = c
        .kubectl(&[
            "get",
            "deploy,job,controllerrevision",
            "-o",
            "wide",
            "-n",
            NS,
        ])
        .await;
    let text = wide.ok();
    for expected in [
        "deployment.apps/web    2/3     3            2",
        "app,log      nginx:1.25,busybox:1.36   app=web,!canary,tier in (edge,front)",
        "job.batch/done     Complete    2/2           65s",
        "job.batch/crunch   Running     0/1 of 3",
        "job.batch/paused   Suspended   0/1",
        "controllerrevision.apps/db-5c9b7d8f6   statefulset.apps/db   1",
        "controllerrevision.apps/orphan-1       <none>                4",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_all_of_an_empty_namespace_says_so() {
    let c = Cluster::start().await;
    for args in [
        &["get", "all"][..],
        &["get", "all", "-o", "wide"],
        &["get", "deploy,rs"],
        &["get", "all", "-A", "-l", "app=nothing"],
        &["get", "all", "-n", "kube-system"],
    ] {
        let (ours, real) = compare(&c, args).await;
        assert_eq!(ours.out, "", "{args:?}");
        assert!(
            real.err.starts_with("No resources found"),
            "{args:?}: {}",
            real.err
        );
    }
    let nothing = c.kubectl(&["get", "nothing"]).await;
    assert_eq!(nothing.code, 1);
    assert!(
        nothing
            .err
            .starts_with("error: the server doesn't have a resource type \"nothing\""),
        "{}",
        nothing.err
    );
}
