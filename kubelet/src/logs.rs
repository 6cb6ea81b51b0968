//! The log server: `GET /containerLogs/{namespace}/{pod}/{container}` streams a
//! container's output from Docker, for the API server's `pods/{name}/log` to proxy.
//! Query parameters are Kubernetes' log options: `follow`, `tailLines`, `previous`,
//! `timestamps`, `sinceSeconds`, `sinceTime`, `limitBytes`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures::StreamExt;
use jiff::Timestamp;
use serde::Deserialize;

use crate::labels::{self, ContainerKey, Role};
use crate::runtime::{ContainerInfo, ContainerRuntime, LogOptions};

#[derive(Clone)]
struct LogState {
    runtime: Arc<dyn ContainerRuntime>,
    node: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    #[serde(default)]
    pub follow: Option<String>,
    #[serde(default)]
    pub previous: Option<String>,
    #[serde(default)]
    pub timestamps: Option<String>,
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    pub since_time: Option<String>,
    pub limit_bytes: Option<i64>,
}

fn flag(value: &Option<String>) -> bool {
    matches!(value.as_deref(), Some("" | "true" | "1" | "True"))
}

/// The router of the log server.
pub fn router(runtime: Arc<dyn ContainerRuntime>, node: &str) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .with_state(LogState {
            runtime,
            node: node.to_string(),
        })
}

fn text(code: StatusCode, message: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// The container to read: the newest attempt of the newest pod of that name, or the
/// attempt before it for `previous`.
fn pick(mut containers: Vec<ContainerInfo>, previous: bool) -> Option<ContainerInfo> {
    let key = |c: &ContainerInfo| ContainerKey::from_labels(&c.labels);
    containers.retain(|c| key(c).is_some_and(|k| k.role != Role::Sandbox));
    let newest = containers
        .iter()
        .max_by_key(|c| c.created_at)?
        .labels
        .get(labels::POD_UID)
        .cloned();
    containers.retain(|c| c.labels.get(labels::POD_UID) == newest.as_ref());
    containers.sort_by_key(|c| (key(c).map_or(0, |k| k.attempt), c.created_at));
    let index = containers.len().checked_sub(if previous { 2 } else { 1 })?;
    Some(containers.swap_remove(index))
}

async fn container_logs(
    State(state): State<LogState>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<LogQuery>,
) -> Response {
    let selector = vec![
        (labels::NODE.to_string(), state.node.clone()),
        (labels::POD_NAMESPACE.to_string(), namespace.clone()),
        (labels::POD_NAME.to_string(), pod.clone()),
        (labels::CONTAINER_NAME.to_string(), container.clone()),
    ];
    let containers = match state.runtime.list_containers(&selector).await {
        Ok(c) => c,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let previous = flag(&query.previous);
    let Some(target) = pick(containers, previous) else {
        let what = if previous {
            "previous terminated container"
        } else {
            "container"
        };
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "{what} \"{container}\" in pod \"{pod}\" in namespace \"{namespace}\" not found"
            ),
        );
    };
    let since = match (&query.since_time, query.since_seconds) {
        (Some(t), _) => match t.parse::<Timestamp>() {
            Ok(t) => Some(t),
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("sinceTime {t:?}: {e}")),
        },
        (None, Some(s)) if s > 0 => Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_secs(s))
            .ok(),
        _ => None,
    };
    let options = LogOptions {
        follow: flag(&query.follow),
        tail_lines: query.tail_lines.and_then(|n| u64::try_from(n).ok()),
        timestamps: flag(&query.timestamps),
        since,
    };
    let stream = match state.runtime.container_logs(&target.id, &options).await {
        Ok(s) => s,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let mut remaining = query.limit_bytes.and_then(|n| u64::try_from(n).ok());
    let body = stream
        .map(|item| item.map_err(std::io::Error::other))
        .take_while(move |item| {
            let keep = !matches!(remaining, Some(0));
            futures::future::ready(keep || item.is_err())
        })
        .map(move |item| {
            item.map(|bytes: Bytes| match remaining.as_mut() {
                Some(left) => {
                    let n = (bytes.len() as u64).min(*left);
                    *left -= n;
                    bytes.slice(..n as usize)
                }
                None => bytes,
            })
        });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from_stream(body))
        .unwrap_or_else(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{ContainerConfig, FakeRuntime, NetworkMode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(router: &Router, uri: &str) -> (StatusCode, String) {
        let response = router
            .clone()
            .oneshot(axum::http::Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let code = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn serves_current_and_previous_logs() {
        let fake = FakeRuntime::new();
        fake.add_image("img");
        let mut ids = vec![];
        for attempt in 0..2 {
            let key = ContainerKey {
                namespace: "default".into(),
                pod_name: "web".into(),
                pod_uid: "u1".into(),
                container: "app".into(),
                role: Role::App,
                attempt,
            };
            let mut config =
                ContainerConfig::new(key.docker_name(), "img", NetworkMode::Container("p".into()));
            config.labels = key.labels("n1");
            let id = fake.create_container(&config).await.unwrap();
            fake.set_logs(&id, &format!("attempt {attempt}\n"));
            ids.push(id);
        }
        let router = router(Arc::new(fake), "n1");
        assert_eq!(
            get(&router, "/containerLogs/default/web/app").await,
            (StatusCode::OK, "attempt 1\n".into())
        );
        assert_eq!(
            get(&router, "/containerLogs/default/web/app?previous=true").await,
            (StatusCode::OK, "attempt 0\n".into())
        );
        assert_eq!(
            get(&router, "/containerLogs/default/web/app?limitBytes=4").await,
            (StatusCode::OK, "atte".into())
        );
        let (code, body) = get(&router, "/containerLogs/default/web/other").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert!(body.contains("\"other\""), "{body}");
        assert_eq!(get(&router, "/healthz").await.1, "ok");
    }
}
