//! The requests the APIs send, checked against a recording HTTP server.

use super::*;
use crate::config::Config;
use crate::params::{FieldValidation, Preconditions, PropagationPolicy};
use crate::testing::{Reply, Request, TestServer};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use minik8s_api::resource::{NODES, PODS};
use serde_json::json;

fn client(server: &TestServer) -> Client {
    let mut config = Config::new(server.url());
    config.token = Some("tok".into());
    config.namespace = "team-a".into();
    Client::new(config).unwrap()
}

fn pod_json(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "resourceVersion": "3"},
           "spec": {"containers": [{"name": "app", "image": "nginx"}]}})
}

fn pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec::default()),
        ..Pod::default()
    }
}

/// Echoes a pod named after the last path segment (skipping subresources).
fn echo_pod(req: &Request) -> Reply {
    let mut segments: Vec<&str> = req.path.split('/').collect();
    if matches!(segments.last(), Some(&"status")) {
        segments.pop();
    }
    let name = if req.method == "POST" {
        "created".to_string()
    } else {
        segments.last().unwrap().to_string()
    };
    Reply::json(200, pod_json(&name))
}

fn only(server: &TestServer) -> Request {
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    requests.into_iter().next().unwrap()
}

#[tokio::test]
async fn typed_get_create_replace() {
    let server = TestServer::start(echo_pod).await;
    let api: Api<Pod> = Api::namespaced(client(&server), "default");

    let got = api.get("web").await.unwrap();
    assert_eq!(got.metadata.name.as_deref(), Some("web"));
    let req = only(&server);
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, "/api/v1/namespaces/default/pods/web");
    assert_eq!(req.query, "");
    assert_eq!(req.header("authorization"), Some("Bearer tok"));

    let server = TestServer::start(echo_pod).await;
    let api: Api<Pod> = Api::namespaced(client(&server), "default");
    let params = PostParams {
        field_validation: Some(FieldValidation::Strict),
        dry_run: true,
        field_manager: None,
    };
    let created = api.create_with(&pod("web"), &params).await.unwrap();
    assert_eq!(created.metadata.name.as_deref(), Some("created"));
    let req = only(&server);
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/api/v1/namespaces/default/pods");
    assert_eq!(req.param("fieldValidation").as_deref(), Some("Strict"));
    assert_eq!(req.param("dryRun").as_deref(), Some("All"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let body = req.json();
    assert_eq!(body["kind"], "Pod");
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["metadata"]["name"], "web");

    let server = TestServer::start(echo_pod).await;
    let api: Api<Pod> = Api::namespaced(client(&server), "default");
    api.replace_status("web", &pod("web")).await.unwrap();
    let req = only(&server);
    assert_eq!(req.method, "PUT");
    assert_eq!(req.path, "/api/v1/namespaces/default/pods/web/status");
    assert_eq!(req.json()["metadata"]["name"], "web");
}

#[tokio::test]
async fn patch_kinds_pick_the_content_type() {
    let cases = [
        (
            Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
            "application/merge-patch+json",
        ),
        (
            Patch::Strategic(json!({"spec": {"containers": [{"name": "app", "image": "x"}]}})),
            "application/strategic-merge-patch+json",
        ),
        (
            Patch::Json(json!([{"op": "replace", "path": "/metadata/labels/a", "value": "c"}])),
            "application/json-patch+json",
        ),
    ];
    for (patch, content_type) in cases {
        let server = TestServer::start(echo_pod).await;
        let api: Api<Pod> = Api::namespaced(client(&server), "default");
        api.patch("web", &patch).await.unwrap();
        api.patch_status("web", &patch).await.unwrap();
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        for req in &requests {
            assert_eq!(req.method, "PATCH");
            assert_eq!(req.header("content-type"), Some(content_type));
            assert_eq!(&req.json(), patch.body());
        }
        assert_eq!(requests[0].path, "/api/v1/namespaces/default/pods/web");
        assert_eq!(
            requests[1].path,
            "/api/v1/namespaces/default/pods/web/status"
        );
    }
}

#[tokio::test]
async fn delete_returns_the_object_or_a_status() {
    let server = TestServer::start(|req| {
        if req.path.ends_with("/graceful") {
            let mut pod = pod_json("graceful");
            pod["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
            pod["metadata"]["deletionGracePeriodSeconds"] = json!(30);
            Reply::json(200, pod)
        } else {
            Reply::json(
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success",
                       "details": {"name": "now", "kind": "pods"}}),
            )
        }
    })
    .await;
    let api: Api<Pod> = Api::namespaced(client(&server), "default");

    match api
        .delete("graceful", &DeleteParams::default())
        .await
        .unwrap()
    {
        Deleted::Object(pod) => {
            assert!(pod.metadata.deletion_timestamp.is_some());
            assert_eq!(pod.metadata.deletion_grace_period_seconds, Some(30));
        }
        other => panic!("unexpected {other:?}"),
    }
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: Some("uid-1".into()),
            resource_version: Some("7".into()),
        }),
        dry_run: false,
    };
    let deleted = api.delete("now", &params).await.unwrap();
    assert!(deleted.is_gone());
    match deleted {
        Deleted::Status(status) => assert_eq!(status.status.as_deref(), Some("Success")),
        other => panic!("unexpected {other:?}"),
    }

    let requests = server.requests();
    assert_eq!(requests[0].method, "DELETE");
    assert_eq!(requests[0].path, "/api/v1/namespaces/default/pods/graceful");
    assert!(requests[0].body.is_empty());
    assert_eq!(requests[1].path, "/api/v1/namespaces/default/pods/now");
    assert_eq!(
        requests[1].param("gracePeriodSeconds").as_deref(),
        Some("0")
    );
    assert_eq!(requests[1].header("content-type"), Some("application/json"));
    let body = requests[1].json();
    assert_eq!(body["kind"], "DeleteOptions");
    assert_eq!(body["gracePeriodSeconds"], 0);
    assert_eq!(body["propagationPolicy"], "Background");
    assert_eq!(
        body["preconditions"],
        json!({"uid": "uid-1", "resourceVersion": "7"})
    );
}

#[tokio::test]
async fn list_sends_selectors_and_reads_the_list_metadata() {
    let server = TestServer::start(|_| {
        Reply::json(
            200,
            json!({"kind": "PodList", "apiVersion": "v1",
                   "metadata": {"resourceVersion": "42", "continue": "next-page"},
                   "items": [pod_json("a"), pod_json("b")]}),
        )
    })
    .await;
    let api: Api<Pod> = Api::all(client(&server));
    let params = ListParams::default()
        .labels("app in (web, api),!legacy")
        .fields("spec.nodeName=n1,status.phase!=Failed")
        .limit(2)
        .continue_token("prev");
    let list = api.list(&params).await.unwrap();
    assert_eq!(list.items.len(), 2);
    assert_eq!(list.resource_version(), Some("42"));
    assert_eq!(list.continue_token(), Some("next-page"));
    let req = only(&server);
    assert_eq!(req.path, "/api/v1/pods");
    assert_eq!(
        req.params(),
        [
            ("labelSelector", "app in (web, api),!legacy"),
            ("fieldSelector", "spec.nodeName=n1,status.phase!=Failed"),
            ("limit", "2"),
            ("continue", "prev"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    // Nothing but unreserved characters and `%` escapes go on the wire.
    assert!(
        req.query
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~%=&".contains(c)),
        "{}",
        req.query
    );
}

#[tokio::test]
async fn empty_list_with_null_items() {
    let server = TestServer::start(|_| {
        Reply::json(
            200,
            json!({"kind": "NodeList", "metadata": {}, "items": null}),
        )
    })
    .await;
    let api: Api<Node> = Api::all(client(&server));
    let list = api.list(&ListParams::default()).await.unwrap();
    assert!(list.items.is_empty());
    assert_eq!(list.resource_version(), None);
    assert_eq!(only(&server).path, "/api/v1/nodes");
}

#[tokio::test]
async fn get_opt_maps_not_found_to_none() {
    let server = TestServer::start(|req| {
        if req.path.ends_with("/there") {
            echo_pod(req)
        } else {
            Reply::json(
                404,
                json!({"kind": "Status", "code": 404, "reason": "NotFound",
                       "message": "pods \"gone\" not found"}),
            )
        }
    })
    .await;
    let api: Api<Pod> = Api::default_namespaced(client(&server));
    assert_eq!(api.namespace(), Some("team-a"));
    assert!(api.get_opt("gone").await.unwrap().is_none());
    assert!(api.get_opt("there").await.unwrap().is_some());
    let err = api.get("gone").await.unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(
        server.requests()[0].path,
        "/api/v1/namespaces/team-a/pods/gone"
    );
}

#[tokio::test]
async fn watch_streams_chunked_events() {
    let events = [
        json!({"type": "ADDED", "object": pod_json("ünïcödé-1")}),
        json!({"type": "MODIFIED", "object": pod_json("b")}),
        json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                                           "code": 410, "reason": "Expired"}}),
    ];
    let text: Vec<u8> = events
        .iter()
        .flat_map(|e| format!("{e}\n").into_bytes())
        .collect();
    // Cut inside the multi-byte "ü" and in the middle of the second event, and send
    // the last two events in one chunk.
    let u = text.windows(2).position(|w| w == "ü".as_bytes()).unwrap();
    let second = text.iter().position(|b| *b == b'\n').unwrap() + 10;
    let third = second + 5;
    let chunks = vec![
        text[..u + 1].to_vec(),
        text[u + 1..second].to_vec(),
        text[second..third].to_vec(),
        text[third..].to_vec(),
    ];
    let server = TestServer::start(move |_| Reply::chunks(chunks.clone())).await;
    let api: Api<Pod> = Api::namespaced(client(&server), "default");
    let params = ListParams::default().labels("app=web").timeout(60);
    let received: Vec<_> = api
        .watch(&params, "17")
        .await
        .unwrap()
        .map(|e| e.unwrap())
        .collect()
        .await;
    assert_eq!(received.len(), 3);
    match &received[0] {
        WatchEvent::Added(pod) => assert_eq!(pod.metadata.name.as_deref(), Some("ünïcödé-1")),
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(received[1], WatchEvent::Modified(_)));
    match &received[2] {
        WatchEvent::Error(status) => assert_eq!(status.code, Some(410)),
        other => panic!("unexpected {other:?}"),
    }
    let req = only(&server);
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, "/api/v1/namespaces/default/pods");
    assert_eq!(req.param("watch").as_deref(), Some("true"));
    assert_eq!(req.param("resourceVersion").as_deref(), Some("17"));
    assert_eq!(req.param("allowWatchBookmarks").as_deref(), Some("true"));
    assert_eq!(req.param("labelSelector").as_deref(), Some("app=web"));
    assert_eq!(req.param("timeoutSeconds").as_deref(), Some("60"));
    assert_eq!(req.header("authorization"), Some("Bearer tok"));
    assert_eq!(req.header("accept"), Some("application/json"));
}

#[tokio::test]
async fn watch_refused_up_front_is_an_error() {
    let server = TestServer::start(|_| {
        Reply::json(
            410,
            json!({"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}),
        )
    })
    .await;
    let api: Api<Pod> = Api::all(client(&server));
    let err = match api.watch(&ListParams::default(), "1").await {
        Ok(_) => panic!("watch should fail"),
        Err(e) => e,
    };
    assert!(err.is_expired());
}

#[tokio::test]
async fn dynamic_api_paths() {
    let server = TestServer::start(|req| {
        if req.method == "GET" && req.path.ends_with("/pods") {
            Reply::json(200, json!({"items": []}))
        } else {
            Reply::json(200, json!({"kind": "Node", "metadata": {"name": "x"}}))
        }
    })
    .await;
    let c = client(&server);

    // Cluster-scoped: any namespace given is ignored.
    let nodes = DynamicApi::new(c.clone(), &NODES, Some("ignored".into()));
    assert_eq!(nodes.namespace(), None);
    nodes.get("n1").await.unwrap();
    nodes
        .patch(
            "n1",
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();

    // All namespaces: lists across them, objects go to their own namespace, and names
    // without one to the client's default.
    let pods = DynamicApi::new(c.clone(), &PODS, None);
    pods.list(&ListParams::default()).await.unwrap();
    pods.create(&json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "ns-1"}}))
        .await
        .unwrap();
    pods.get("p").await.unwrap();
    pods.replace(
        "p",
        &json!({"metadata": {"name": "p", "namespace": "ns-2"}}),
    )
    .await
    .unwrap();
    // Names cannot escape their path segment.
    let in_ns = DynamicApi::new(c, &PODS, Some("default".into()));
    in_ns.get("a/b").await.unwrap();

    let paths: Vec<_> = server
        .requests()
        .into_iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        paths,
        [
            "GET /api/v1/nodes/n1",
            "PATCH /api/v1/nodes/n1",
            "GET /api/v1/pods",
            "POST /api/v1/namespaces/ns-1/pods",
            "GET /api/v1/namespaces/team-a/pods/p",
            "PUT /api/v1/namespaces/ns-2/pods/p",
            "GET /api/v1/namespaces/default/pods/a%2Fb",
        ]
    );
}

#[tokio::test]
async fn logs_query_and_stream() {
    let server = TestServer::start(|req| {
        if req.param("follow").is_some() {
            Reply::chunks(vec![b"line 1\n".to_vec(), b"line 2\n".to_vec()])
        } else {
            Reply::text(200, "hello\nworld\n")
        }
    })
    .await;
    let api: Api<Pod> = Api::namespaced(client(&server), "default");
    let params = LogParams {
        container: Some("app".into()),
        tail_lines: Some(5),
        ..LogParams::default()
    };
    assert_eq!(api.logs("web", &params).await.unwrap(), "hello\nworld\n");
    let follow = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let chunks: Vec<Bytes> = api
        .log_stream("web", &follow)
        .await
        .unwrap()
        .map(|c| c.unwrap())
        .collect()
        .await;
    assert_eq!(chunks.concat(), b"line 1\nline 2\n");
    let requests = server.requests();
    assert_eq!(requests[0].path, "/api/v1/namespaces/default/pods/web/log");
    assert_eq!(requests[0].query, "container=app&tailLines=5");
    assert_eq!(requests[1].query, "follow=true");
}
