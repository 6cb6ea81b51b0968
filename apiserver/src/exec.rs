//! `pods/{name}/exec` and `pods/{name}/portforward`: finds the pod's node, opens the same
//! WebSocket on that node's kubelet, and then accepts the client's upgrade with the
//! protocol the kubelet chose and relays messages both ways until one side closes. The API
//! server reads nothing of the remote command or port-forward protocols itself; it checks
//! what it can before any upgrade, so that kubectl gets a Kubernetes `Status` for a pod
//! that cannot run the command.

use std::time::Duration;

use axum::extract::ws::{self, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Query, Request};
use axum::http::{HeaderValue, Uri};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use minik8s_api::resource;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use crate::error::{ApiError, Result};
use crate::http::{AppState, container_status, kubelet_url, pod_container};
use crate::object;

/// How long the relay waits for the kubelet's side to end after the client left.
const DRAIN: Duration = Duration::from_secs(5);
/// How long the kubelet has to accept the exec's WebSocket.
const CONNECT: Duration = Duration::from_secs(10);

/// The query of an exec request, in Kubernetes' names (`PodExecOptions`).
#[derive(Debug, Default, PartialEq)]
pub struct ExecOptions {
    pub container: Option<String>,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    pub fn from_uri(uri: &Uri) -> Result<ExecOptions> {
        let options = Self::streams_from_uri(uri)?;
        if options.command.is_empty() {
            return Err(ApiError::BadRequest(
                "you must specify at least one command for the container".into(),
            ));
        }
        Ok(options)
    }

    /// The options of an attach (`PodAttachOptions`): the same, with no command.
    pub fn attach_from_uri(uri: &Uri) -> Result<ExecOptions> {
        let mut options = Self::streams_from_uri(uri)?;
        options.command.clear();
        Ok(options)
    }

    fn streams_from_uri(uri: &Uri) -> Result<ExecOptions> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
        let flag = |key: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .is_some_and(|(_, v)| matches!(v.as_str(), "" | "1" | "true" | "True"))
        };
        let options = ExecOptions {
            container: pairs
                .iter()
                .rev()
                .find(|(k, _)| k == "container")
                .map(|(_, v)| v.clone()),
            command: pairs
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.clone())
                .collect(),
            stdin: flag("stdin"),
            stdout: flag("stdout"),
            stderr: flag("stderr"),
            tty: flag("tty"),
        };
        if !options.stdin && !options.stdout && !options.stderr {
            return Err(ApiError::BadRequest(
                "you must specify at least 1 of stdin, stdout, stderr".into(),
            ));
        }
        Ok(options)
    }
}

/// Serves `GET`/`POST pods/{name}/exec` (a WebSocket upgrade, as kubectl sends it).
pub async fn pod_exec(state: &AppState, ns: &str, name: &str, req: Request) -> Result<Response> {
    let options = ExecOptions::from_uri(req.uri())?;
    remote_command(state, ns, name, req, options, "exec").await
}

/// Serves `GET`/`POST pods/{name}/attach`: the same protocol, on the streams of the
/// container's own process (the kubelet's `/attach`).
pub async fn pod_attach(state: &AppState, ns: &str, name: &str, req: Request) -> Result<Response> {
    let options = ExecOptions::attach_from_uri(req.uri())?;
    remote_command(state, ns, name, req, options, "attach").await
}

/// `what` is the kubelet's path: `exec` or `attach`.
async fn remote_command(
    state: &AppState,
    ns: &str,
    name: &str,
    req: Request,
    options: ExecOptions,
    what: &str,
) -> Result<Response> {
    let pod = state.registry.get(&resource::PODS, Some(ns), name).await?;
    let container = pod_container(&pod, name, options.container.as_ref())?;
    let node_name = object::path_string(&pod, "spec.nodeName");
    if node_name.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let phase = object::path_string(&pod, "status.phase");
    if phase == "Succeeded" || phase == "Failed" {
        return Err(ApiError::BadRequest(format!(
            "cannot {what} {} a container in a completed pod; current phase is {phase}",
            if what == "exec" { "into" } else { "to" }
        )));
    }
    let running =
        container_status(&pod, &container).is_some_and(|s| s["state"]["running"].is_object());
    if !running {
        return Err(ApiError::BadRequest(format!(
            "container not found ({container:?})"
        )));
    }
    let upgrade = websocket_upgrade(req).await?;
    let mut url = kubelet_url(state, &node_name).await?;
    url.path_segments_mut()
        .map_err(|_| ApiError::Internal("kubelet address".into()))?
        .extend([what, ns, name, &container]);
    {
        let mut q = url.query_pairs_mut();
        for c in &options.command {
            q.append_pair("command", c);
        }
        for (key, on) in [
            ("input", options.stdin),
            ("output", options.stdout),
            ("error", options.stderr),
            ("tty", options.tty),
        ] {
            if on {
                q.append_pair(key, "1");
            }
        }
    }
    tunnel(upgrade, url, &node_name, what).await
}

/// Serves `GET`/`POST pods/{name}/portforward` (a WebSocket upgrade carrying SPDY, as
/// kubectl 1.33 sends it): relayed unread to the kubelet of the pod's node, which speaks
/// the port-forward protocol itself.
pub async fn pod_portforward(
    state: &AppState,
    ns: &str,
    name: &str,
    req: Request,
) -> Result<Response> {
    let pod = state.registry.get(&resource::PODS, Some(ns), name).await?;
    let node_name = object::path_string(&pod, "spec.nodeName");
    if node_name.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let upgrade = websocket_upgrade(req).await?;
    let mut url = kubelet_url(state, &node_name).await?;
    url.path_segments_mut()
        .map_err(|_| ApiError::Internal("kubelet address".into()))?
        .extend(["portForward", ns, name]);
    tunnel(upgrade, url, &node_name, "port-forward").await
}

async fn websocket_upgrade(req: Request) -> Result<WebSocketUpgrade> {
    let (mut parts, _body) = req.into_parts();
    WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|_| ApiError::BadRequest("Upgrade request required".into()))
}

/// Opens the same WebSocket on the kubelet at `url`, offering what the client offered,
/// then accepts the client's upgrade with the protocol the kubelet chose and relays
/// messages both ways.
async fn tunnel(
    upgrade: WebSocketUpgrade,
    mut url: reqwest::Url,
    node_name: &str,
    what: &str,
) -> Result<Response> {
    url.set_scheme("ws")
        .map_err(|_| ApiError::Internal("kubelet address".into()))?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ApiError::Internal(format!("kubelet request: {e}")))?;
    let offered: Vec<String> = upgrade
        .requested_protocols()
        .filter_map(|p| p.to_str().ok().map(str::to_string))
        .collect();
    if !offered.is_empty()
        && let Ok(v) = HeaderValue::from_str(&offered.join(", "))
    {
        request
            .headers_mut()
            .insert(axum::http::header::SEC_WEBSOCKET_PROTOCOL, v);
    }
    let connect = tokio::time::timeout(CONNECT, tokio_tungstenite::connect_async(request));
    let (kubelet, response) = match connect.await {
        Err(_) => {
            return Err(ApiError::Unavailable(format!(
                "the kubelet on {node_name} did not answer within {CONNECT:?}"
            )));
        }
        Ok(Ok(ok)) => ok,
        Ok(Err(tungstenite::Error::Http(response))) => {
            return Err(kubelet_refusal(
                response.status().as_u16(),
                response.body().as_deref().unwrap_or_default(),
                node_name,
                what,
            ));
        }
        Ok(Err(e)) => {
            return Err(ApiError::Unavailable(format!(
                "the kubelet on {node_name} is not reachable: {e}"
            )));
        }
    };
    let mut upgrade = upgrade;
    if let Some(protocol) = response
        .headers()
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
    {
        upgrade.set_selected_protocol(protocol.clone());
    }
    Ok(upgrade.on_upgrade(move |client| relay(client, kubelet)))
}

/// The kubelet's refusal as the API server's error: its `Status` message when it sent one.
fn kubelet_refusal(code: u16, body: &[u8], node: &str, what: &str) -> ApiError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    let message = if message.is_empty() {
        format!("the kubelet on {node} refused the {what} with {code}")
    } else {
        message
    };
    if code < 500 {
        ApiError::BadRequest(message)
    } else {
        ApiError::Internal(message)
    }
}

fn to_kubelet(message: ws::Message) -> Option<tungstenite::Message> {
    Some(match message {
        ws::Message::Binary(b) => tungstenite::Message::Binary(b),
        ws::Message::Text(t) => tungstenite::Message::Text(t.as_str().into()),
        ws::Message::Close(frame) => {
            tungstenite::Message::Close(frame.map(|f| tungstenite::protocol::CloseFrame {
                code: f.code.into(),
                reason: f.reason.as_str().into(),
            }))
        }
        // Each side answers its own pings.
        ws::Message::Ping(_) | ws::Message::Pong(_) => return None,
    })
}

fn to_client(message: tungstenite::Message) -> Option<ws::Message> {
    Some(match message {
        tungstenite::Message::Binary(b) => ws::Message::Binary(b),
        tungstenite::Message::Text(t) => ws::Message::Text(t.as_str().into()),
        tungstenite::Message::Close(frame) => ws::Message::Close(frame.map(|f| ws::CloseFrame {
            code: f.code.into(),
            reason: f.reason.as_str().into(),
        })),
        _ => return None,
    })
}

/// Relays messages until the kubelet's side ends (after its final status and close), or
/// shortly after the client's side ended.
async fn relay<S>(client: ws::WebSocket, kubelet: tokio_tungstenite::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut client_tx, mut client_rx) = client.split();
    let (mut kubelet_tx, mut kubelet_rx) = kubelet.split();
    let down = async {
        while let Some(Ok(message)) = kubelet_rx.next().await {
            let close = message.is_close();
            if let Some(m) = to_client(message)
                && client_tx.send(m).await.is_err()
            {
                break;
            }
            if close {
                break;
            }
        }
        let _ = client_tx.close().await;
    };
    let up = async {
        while let Some(Ok(message)) = client_rx.next().await {
            let close = matches!(message, ws::Message::Close(_));
            if let Some(m) = to_kubelet(message)
                && kubelet_tx.send(m).await.is_err()
            {
                break;
            }
            if close {
                break;
            }
        }
        let _ = kubelet_tx.close().await;
    };
    tokio::pin!(down);
    tokio::select! {
        _ = &mut down => {}
        _ = up => {
            let _ = tokio::time::timeout(DRAIN, down).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_like_pod_exec_options() {
        let parse = |query: &str| ExecOptions::from_uri(&format!("/exec?{query}").parse().unwrap());
        let o = parse(
            "command=sh&command=-c&command=exit%203&container=app&stdin=true&stdout=true&tty=false",
        )
        .unwrap();
        assert_eq!(o.command, ["sh", "-c", "exit 3"]);
        assert_eq!(o.container.as_deref(), Some("app"));
        assert!(o.stdin && o.stdout && !o.stderr && !o.tty);
        let e = parse("stdout=true").unwrap_err();
        assert_eq!(
            e.to_string(),
            "you must specify at least one command for the container"
        );
        let e = parse("command=ls").unwrap_err();
        assert_eq!(
            e.to_string(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
    }

    #[test]
    fn kubelet_refusals_keep_the_kubelet_message() {
        let e = kubelet_refusal(
            404,
            br#"{"kind":"Status","message":"container not found (\"app\")","code":404}"#,
            "n1",
            "exec",
        );
        assert_eq!(e.status_code().as_u16(), 400);
        assert_eq!(e.to_string(), "container not found (\"app\")");
        let e = kubelet_refusal(500, b"", "n1", "exec");
        assert!(e.to_string().contains("refused the exec with 500"), "{e}");
    }
}
