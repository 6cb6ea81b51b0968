//! The exec endpoint: `GET /exec/{namespace}/{pod}/{container}?command=..&input=1&output=1&error=1&tty=1`
//! upgrades to a WebSocket speaking Kubernetes' remote command protocol
//! (`v5.channel.k8s.io`, `v4.channel.k8s.io`; see [`minik8s_api::remotecommand`]) and runs
//! the command in the container through the runtime's attached exec. The query names are
//! the kubelet's own, as the API server sends them. Requests that cannot start a session
//! are answered with a Kubernetes `Status` before any upgrade.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use minik8s_api::remotecommand::{self, Channel, TerminalSize};
use tokio::io::AsyncWriteExt;

use crate::labels::{self, ContainerKey, Role};
use crate::runtime::{ContainerRuntime, ContainerState, ExecSpec, ExecStream};

#[derive(Clone)]
struct ExecState {
    runtime: Arc<dyn ContainerRuntime>,
    node: String,
}

/// The routes of the exec endpoint, for the kubelet's HTTP server.
pub fn router(runtime: Arc<dyn ContainerRuntime>, node: &str) -> Router {
    Router::new()
        .route("/exec/{namespace}/{pod}/{container}", get(exec).post(exec))
        .route(
            "/attach/{namespace}/{pod}/{container}",
            get(attach).post(attach),
        )
        .with_state(ExecState {
            runtime,
            node: node.to_string(),
        })
}

/// A Kubernetes `Status` answer, as the API server would give it.
fn reject(code: StatusCode, reason: &str, message: String) -> Response {
    let status = Status {
        code: Some(i32::from(code.as_u16())),
        reason: Some(reason.to_string()),
        message: Some(message),
        status: Some("Failure".to_string()),
        ..Status::default()
    };
    (code, axum::Json(status)).into_response()
}

fn flag(query: &[(String, String)], key: &str) -> bool {
    query
        .iter()
        .any(|(k, v)| k == key && matches!(v.as_str(), "" | "1" | "true" | "True"))
}

/// What the query asks for.
pub fn exec_spec(query: &[(String, String)]) -> Result<ExecSpec, String> {
    let spec = ExecSpec {
        command: query
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect(),
        stdin: flag(query, "input"),
        stdout: flag(query, "output"),
        stderr: flag(query, "error"),
        tty: flag(query, "tty"),
    };
    if spec.command.is_empty() {
        return Err("you must specify at least one command for the container".into());
    }
    if !spec.stdin && !spec.stdout && !spec.stderr {
        return Err("you must specify at least 1 of stdin, stdout, stderr".into());
    }
    Ok(spec)
}

type Upgrade = Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>;

async fn exec(
    State(state): State<ExecState>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    upgrade: Upgrade,
) -> Response {
    let spec = match exec_spec(&query) {
        Ok(s) => s,
        Err(message) => return reject(StatusCode::BAD_REQUEST, "BadRequest", message),
    };
    serve(state, namespace, pod, container, spec, Mode::Exec, upgrade).await
}

/// `pods/attach`: the same protocol, on the streams of the container's own process.
async fn attach(
    State(state): State<ExecState>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    upgrade: Upgrade,
) -> Response {
    let spec = ExecSpec {
        command: Vec::new(),
        stdin: flag(&query, "input"),
        stdout: flag(&query, "output"),
        stderr: flag(&query, "error"),
        tty: flag(&query, "tty"),
    };
    if !spec.stdin && !spec.stdout && !spec.stderr {
        return reject(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "you must specify at least 1 of stdin, stdout, stderr".into(),
        );
    }
    serve(
        state,
        namespace,
        pod,
        container,
        spec,
        Mode::Attach,
        upgrade,
    )
    .await
}

/// A new command, or the container's own process.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Exec,
    Attach,
}

async fn serve(
    state: ExecState,
    namespace: String,
    pod: String,
    container: String,
    spec: ExecSpec,
    mode: Mode,
    upgrade: Upgrade,
) -> Response {
    let selector = vec![
        (labels::NODE.to_string(), state.node.clone()),
        (labels::POD_NAMESPACE.to_string(), namespace.clone()),
        (labels::POD_NAME.to_string(), pod.clone()),
        (labels::CONTAINER_NAME.to_string(), container.clone()),
    ];
    let mut containers = match state.runtime.list_containers(&selector).await {
        Ok(c) => c,
        Err(e) => {
            return reject(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                e.to_string(),
            );
        }
    };
    containers
        .retain(|c| ContainerKey::from_labels(&c.labels).is_some_and(|k| k.role != Role::Sandbox));
    let Some(newest) = containers.into_iter().max_by_key(|c| c.created_at) else {
        return reject(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("container not found ({container:?})"),
        );
    };
    if newest.state != ContainerState::Running {
        return reject(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("container {container:?} in pod {pod:?} is not running"),
        );
    }
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(_) => {
            return reject(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!(
                    "exec needs a WebSocket upgrade speaking {}",
                    remotecommand::PROTOCOLS.join(" or ")
                ),
            );
        }
    };
    let offered = upgrade.requested_protocols().count() > 0;
    let upgrade = upgrade.protocols(remotecommand::PROTOCOLS);
    let protocol = match upgrade.selected_protocol() {
        Some(p) => p.to_str().unwrap_or_default().to_string(),
        // A client that offers no protocol gets v4's framing, without stream closes.
        None if !offered => remotecommand::PROTOCOL_V4.to_string(),
        None => {
            return reject(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!(
                    "none of the offered WebSocket protocols is supported; use {}",
                    remotecommand::PROTOCOLS.join(" or ")
                ),
            );
        }
    };
    let runtime = state.runtime.clone();
    upgrade.on_upgrade(move |socket| async move {
        session(socket, runtime, newest.id, spec, protocol, mode).await;
    })
}

fn binary(channel: Channel, data: &[u8]) -> Message {
    Message::Binary(remotecommand::frame(channel, data).into())
}

/// Runs one attached command over an upgraded connection, to the final `Status` on the
/// error stream and a normal close, which client-go needs to read that status.
async fn session(
    socket: WebSocket,
    runtime: Arc<dyn ContainerRuntime>,
    container_id: String,
    spec: ExecSpec,
    protocol: String,
    mode: Mode,
) {
    let (mut sink, mut incoming) = socket.split();
    // A terminal's first size comes right after the upgrade: waiting for it (briefly) and
    // applying it as soon as the command starts means the command sees the right size
    // from its start, as far as Docker allows (its API 1.41 takes no size at start).
    let mut early = Vec::new();
    let mut size = None;
    if spec.tty {
        let wait = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                message = incoming.next() => match message {
                    Some(Ok(Message::Binary(data))) => {
                        if let Some((Channel::Resize, json)) = remotecommand::parse(&data) {
                            size = serde_json::from_slice::<TerminalSize>(json).ok();
                            break;
                        }
                        early.push(Message::Binary(data));
                    }
                    Some(Ok(other)) => early.push(other),
                    _ => break,
                },
                _ = &mut wait => break,
            }
        }
    }
    let mut incoming = futures::stream::iter(early.into_iter().map(Ok)).chain(incoming);
    let started = match mode {
        Mode::Exec => runtime.exec_attached(&container_id, &spec).await,
        Mode::Attach => runtime.attach(&container_id, &spec).await,
    };
    let status = match started {
        Err(e) => remotecommand::failure_status(e.to_string()),
        Ok(exec) => {
            if let Some(size) = size {
                let _ = resize(runtime.as_ref(), mode, &exec.id, size).await;
            }
            // No empty "session ready" message first, as SPDY-era servers sent: client-go's
            // WebSocket reader starts before it has made its streams, and one arriving that
            // early makes the real kubectl log "Unknown stream id 1, discarding message".
            let exec_id = exec.id.clone();
            let mut input = exec.input;
            let (stdin, resize_runtime, resize_id) = (spec.stdin, runtime.clone(), exec_id.clone());
            let closes = remotecommand::supports_close(&protocol);
            // Input runs apart from output, so that a command blocked writing its output
            // never stops its input from being read, nor the other way round.
            let reader = tokio::spawn(async move {
                let mut open = stdin;
                while let Some(Ok(message)) = incoming.next().await {
                    let data = match message {
                        Message::Binary(data) => data,
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    match remotecommand::parse(&data) {
                        Some((Channel::Stdin, bytes)) if open => {
                            open = input.write_all(bytes).await.is_ok();
                        }
                        Some((Channel::Close, [stream]))
                            if closes && open && *stream == Channel::Stdin.byte() =>
                        {
                            let _ = input.shutdown().await;
                            open = false;
                        }
                        Some((Channel::Resize, json)) => {
                            if let Ok(size) = serde_json::from_slice::<TerminalSize>(json) {
                                let _ =
                                    resize(resize_runtime.as_ref(), mode, &resize_id, size).await;
                            }
                        }
                        _ => {}
                    }
                }
                // The client went away: the command's stdin ends with it.
                if open {
                    let _ = input.shutdown().await;
                }
            });
            let mut output = exec.output;
            let mut reader = reader;
            let mut failure = None;
            loop {
                tokio::select! {
                    item = output.next() => match item {
                        None => break,
                        Some(Ok((stream, bytes))) => {
                            let channel = match stream {
                                ExecStream::Stdout => Channel::Stdout,
                                ExecStream::Stderr => Channel::Stderr,
                            };
                            if sink.send(binary(channel, &bytes)).await.is_err() {
                                reader.abort();
                                return;
                            }
                        }
                        Some(Err(e)) => {
                            failure = Some(e.to_string());
                            break;
                        }
                    },
                    // The client is gone: the command goes on in the container, detached,
                    // as with Kubernetes; nothing is left waiting for its output here.
                    _ = &mut reader => return,
                }
            }
            reader.abort();
            match failure {
                Some(message) => remotecommand::failure_status(message),
                // The container's process ended (or closed its streams): as the kubelet
                // ends an attach, with success.
                None if mode == Mode::Attach => remotecommand::exit_status(&spec.command, 0),
                None => match exit_code(runtime.as_ref(), &exec_id).await {
                    Some(code) => remotecommand::exit_status(&spec.command, code),
                    None => remotecommand::failure_status(format!(
                        "the exit code of command {:?} is unknown",
                        spec.command
                    )),
                },
            }
        }
    };
    let status = serde_json::to_vec(&status).unwrap_or_default();
    let _ = sink.send(binary(Channel::Error, &status)).await;
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
}

async fn resize(
    runtime: &dyn ContainerRuntime,
    mode: Mode,
    id: &str,
    size: TerminalSize,
) -> crate::runtime::RuntimeResult<()> {
    match mode {
        Mode::Exec => runtime.resize_exec(id, size.width, size.height).await,
        Mode::Attach => runtime.resize_container(id, size.width, size.height).await,
    }
}

/// The exit code, which Docker may report a moment after the output ended.
async fn exit_code(runtime: &dyn ContainerRuntime, exec_id: &str) -> Option<i64> {
    for _ in 0..100 {
        match runtime.exec_exit_code(exec_id).await {
            Ok(Some(code)) => return Some(code),
            Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(_) => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{ContainerConfig, FakeRuntime, NetworkMode};
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    async fn serve(fake: &FakeRuntime) -> String {
        let router = router(Arc::new(fake.clone()), "n1");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("127.0.0.1:{}", addr.port())
    }

    async fn running_container(fake: &FakeRuntime) {
        fake.add_image("img");
        let key = ContainerKey {
            namespace: "default".into(),
            pod_name: "web".into(),
            pod_uid: "u1".into(),
            container: "app".into(),
            role: Role::App,
            attempt: 0,
        };
        let mut config =
            ContainerConfig::new(key.docker_name(), "img", NetworkMode::Container("p".into()));
        config.labels = key.labels("n1");
        let id = fake.create_container(&config).await.unwrap();
        fake.start_container(&id).await.unwrap();
    }

    type Socket = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    async fn connect(addr: &str, query: &str, protocol: &str) -> (Socket, String) {
        let mut request = format!("ws://{addr}/exec/default/web/app?{query}")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
        let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        let chosen = response.headers()["Sec-WebSocket-Protocol"]
            .to_str()
            .unwrap()
            .to_string();
        (socket, chosen)
    }

    /// Everything the server sent, by stream, until it closed normally.
    async fn drain(socket: &mut Socket) -> (Vec<u8>, Vec<u8>) {
        let (mut stdout, mut error) = (Vec::new(), Vec::new());
        while let Some(message) = socket.next().await {
            match message.unwrap() {
                WsMessage::Binary(data) => match remotecommand::parse(&data) {
                    Some((Channel::Stdout, bytes)) => stdout.extend_from_slice(bytes),
                    Some((Channel::Error, bytes)) => error.extend_from_slice(bytes),
                    other => panic!("unexpected frame {other:?}"),
                },
                WsMessage::Close(frame) => {
                    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1000));
                    break;
                }
                _ => {}
            }
        }
        (stdout, error)
    }

    #[tokio::test]
    async fn stdin_round_trips_and_its_close_ends_the_command() {
        let fake = FakeRuntime::new();
        running_container(&fake).await;
        fake.set_exec_result(&["cat"], 0, "");
        let addr = serve(&fake).await;
        let (mut socket, protocol) = connect(
            &addr,
            "command=cat&input=1&output=1&error=1",
            "v5.channel.k8s.io, v4.channel.k8s.io",
        )
        .await;
        assert_eq!(protocol, "v5.channel.k8s.io");
        socket
            .send(WsMessage::Binary(
                remotecommand::frame(Channel::Stdin, b"hello\n").into(),
            ))
            .await
            .unwrap();
        socket
            .send(WsMessage::Binary(
                remotecommand::frame(Channel::Resize, br#"{"Width":100,"Height":30}"#).into(),
            ))
            .await
            .unwrap();
        socket
            .send(WsMessage::Binary(
                remotecommand::close_frame(Channel::Stdin).into(),
            ))
            .await
            .unwrap();
        let (stdout, error) = drain(&mut socket).await;
        assert_eq!(stdout, b"hello\n");
        assert_eq!(
            remotecommand::outcome(&error),
            remotecommand::Outcome::Success
        );
        assert!(
            fake.calls()
                .iter()
                .any(|c| matches!(c, crate::runtime::RuntimeCall::ResizeExec(_, 100, 30)))
        );
    }

    #[tokio::test]
    async fn attach_reaches_the_containers_own_stdin_and_stdout() {
        let fake = FakeRuntime::new();
        running_container(&fake).await;
        let addr = serve(&fake).await;
        let mut request = format!("ws://{addr}/attach/default/web/app?input=1&output=1&tty=1")
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "v5.channel.k8s.io".parse().unwrap(),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        for frame in [
            remotecommand::frame(Channel::Resize, br#"{"Width":90,"Height":20}"#),
            remotecommand::frame(Channel::Stdin, b"typed\n"),
            remotecommand::close_frame(Channel::Stdin),
        ] {
            socket.send(WsMessage::Binary(frame.into())).await.unwrap();
        }
        let (stdout, error) = drain(&mut socket).await;
        assert_eq!(stdout, b"typed\n");
        assert_eq!(
            remotecommand::outcome(&error),
            remotecommand::Outcome::Success
        );
        let calls = fake.calls();
        assert!(
            calls
                .iter()
                .any(|c| matches!(c, crate::runtime::RuntimeCall::Attach(_)))
        );
        assert!(
            calls
                .iter()
                .any(|c| matches!(c, crate::runtime::RuntimeCall::ResizeContainer(_, 90, 20)))
        );
        assert!(
            !calls
                .iter()
                .any(|c| matches!(c, crate::runtime::RuntimeCall::Exec(..)))
        );
    }

    #[tokio::test]
    async fn the_exit_code_is_in_the_final_status() {
        let fake = FakeRuntime::new();
        running_container(&fake).await;
        fake.set_exec_result(&["sh", "-c", "exit 3"], 3, "bye\n");
        let addr = serve(&fake).await;
        let (mut socket, protocol) = connect(
            &addr,
            "command=sh&command=-c&command=exit%203&output=1",
            "v4.channel.k8s.io",
        )
        .await;
        assert_eq!(protocol, "v4.channel.k8s.io");
        let (stdout, error) = drain(&mut socket).await;
        assert_eq!(stdout, b"bye\n");
        assert_eq!(
            remotecommand::outcome(&error),
            remotecommand::Outcome::ExitCode(3)
        );
    }

    #[tokio::test]
    async fn requests_that_cannot_start_get_a_status() {
        let fake = FakeRuntime::new();
        running_container(&fake).await;
        let router = router(Arc::new(fake), "n1");
        let call = |uri: &str| {
            router.clone().oneshot(
                axum::http::Request::get(uri)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
        };
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        for (uri, code, message) in [
            (
                "/exec/default/web/app?output=1",
                400,
                "at least one command",
            ),
            (
                "/exec/default/web/app?command=ls",
                400,
                "at least 1 of stdin",
            ),
            (
                "/exec/default/web/other?command=ls&output=1",
                404,
                "container not found (\"other\")",
            ),
            (
                "/exec/default/web/app?command=ls&output=1",
                400,
                "WebSocket",
            ),
        ] {
            let response = call(uri).await.unwrap();
            assert_eq!(response.status().as_u16(), code, "{uri}");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let status: Status = serde_json::from_slice(&body).unwrap();
            assert!(
                status.message.as_deref().unwrap_or("").contains(message),
                "{uri}: {status:?}"
            );
        }
    }
}
