//! The port-forward endpoint: `GET /portForward/{namespace}/{pod}` upgrades to a WebSocket
//! carrying SPDY/3.1 (`SPDY/3.1+portforward.k8s.io`, what kubectl 1.33 speaks first and
//! what the API server relays unread). Each forwarded connection is a pair of streams the
//! client opens with the headers `streamType` (`error` or `data`), `port` and
//! `requestID`; the kubelet connects to that port of the pod and copies bytes both ways.
//!
//! The pod is reached at its own address on this node's bridge, which the host routes to:
//! no tool in the image and no entering of namespaces is needed. A `hostNetwork` pod is
//! reached on the host's loopback.
//!
//! The session ends, as kubectl expects ("lost connection to pod"), once the pod's
//! sandbox is no longer running.

pub mod spdy;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::labels::{self, ContainerKey, Role};
use crate::runtime::{ContainerRuntime, ContainerState};
use spdy::Frame;

/// The WebSocket protocol of SPDY tunnelled port-forwarding.
pub const PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// How long a connection to the pod's port may take.
const CONNECT: Duration = Duration::from_secs(10);
/// How often the session looks whether the pod is still there.
const POD_CHECK: Duration = Duration::from_secs(1);
/// The most bytes one data frame carries.
const CHUNK: usize = 32 * 1024;

#[derive(Clone)]
struct ForwardState {
    runtime: Arc<dyn ContainerRuntime>,
    node: String,
}

/// The routes of the port-forward endpoint, for the kubelet's HTTP server.
pub fn router(runtime: Arc<dyn ContainerRuntime>, node: &str) -> Router {
    Router::new()
        .route(
            "/portForward/{namespace}/{pod}",
            get(port_forward).post(port_forward),
        )
        .with_state(ForwardState {
            runtime,
            node: node.to_string(),
        })
}

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

/// The pod's running sandbox: its id, Docker name and address.
#[derive(Clone, Debug)]
struct Sandbox {
    id: String,
    name: String,
    ip: IpAddr,
}

async fn sandbox(state: &ForwardState, namespace: &str, pod: &str) -> Option<Sandbox> {
    let selector = vec![
        (labels::NODE.to_string(), state.node.clone()),
        (labels::POD_NAMESPACE.to_string(), namespace.to_string()),
        (labels::POD_NAME.to_string(), pod.to_string()),
    ];
    let containers = state.runtime.list_containers(&selector).await.ok()?;
    let newest = containers
        .into_iter()
        .filter(|c| {
            c.state == ContainerState::Running
                && ContainerKey::from_labels(&c.labels).is_some_and(|k| k.role == Role::Sandbox)
        })
        .max_by_key(|c| c.created_at)?;
    let info = state.runtime.inspect_container(&newest.id).await.ok()??;
    Some(Sandbox {
        ip: info.ip.unwrap_or(IpAddr::from([127, 0, 0, 1])),
        id: newest.id,
        name: info.name.trim_start_matches('/').to_string(),
    })
}

async fn port_forward(
    State(state): State<ForwardState>,
    Path((namespace, pod)): Path<(String, String)>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Some(sandbox) = sandbox(&state, &namespace, &pod).await else {
        return reject(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "pod {namespace}/{pod} is not running on node {}",
                state.node
            ),
        );
    };
    let Ok(upgrade) = upgrade else {
        return reject(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("port-forward needs a WebSocket upgrade speaking {PROTOCOL}"),
        );
    };
    let upgrade = upgrade.protocols([PROTOCOL]);
    if upgrade.selected_protocol().is_none() {
        return reject(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("none of the offered WebSocket protocols is supported; use {PROTOCOL}"),
        );
    }
    upgrade.on_upgrade(move |socket| async move {
        let alive = {
            let (state, namespace, pod, id) = (state, namespace, pod, sandbox.id.clone());
            async move {
                loop {
                    tokio::time::sleep(POD_CHECK).await;
                    match self::sandbox(&state, &namespace, &pod).await {
                        Some(s) if s.id == id => {}
                        _ => return,
                    }
                }
            }
        };
        session(socket, sandbox, alive).await;
    })
}

/// One forwarded connection's two streams, as they are announced.
#[derive(Default)]
struct Pair {
    port: u16,
    error: Option<u32>,
    data: Option<u32>,
}

/// Serves SPDY streams over the socket until the client leaves or `alive` ends.
async fn session(socket: WebSocket, sandbox: Sandbox, alive: impl Future<Output = ()>) {
    let (mut sink, mut incoming) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        let mut encoder = spdy::Encoder::default();
        while let Some(frame) = out_rx.recv().await {
            let Ok(bytes) = encoder.encode(&frame) else {
                break;
            };
            if sink.send(Message::Binary(bytes.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut decoder = spdy::Decoder::default();
    let mut buf = BytesMut::new();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    // What the client sends on each data stream, for its connection's task.
    let mut inputs: HashMap<u32, mpsc::UnboundedSender<Option<Vec<u8>>>> = HashMap::new();
    // Their receiving ends, until the connection's error stream is announced too.
    let mut waiting: HashMap<u32, mpsc::UnboundedReceiver<Option<Vec<u8>>>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut last_stream = 0;
    tokio::pin!(alive);
    'session: loop {
        let message = tokio::select! {
            m = incoming.next() => m,
            _ = &mut alive => break 'session,
        };
        match message {
            Some(Ok(Message::Binary(data))) => buf.extend_from_slice(&data),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        }
        loop {
            let frame = match decoder.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("port-forward to {}: {e}", sandbox.name);
                    break 'session;
                }
            };
            match frame {
                Frame::SynStream {
                    stream_id, headers, ..
                } => {
                    last_stream = stream_id;
                    let header = |name: &str| {
                        headers
                            .iter()
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    };
                    let reply = Frame::SynReply {
                        stream_id,
                        fin: false,
                        headers: Vec::new(),
                    };
                    if out_tx.send(reply).await.is_err() {
                        break 'session;
                    }
                    let Ok(port) = header("port").parse::<u16>() else {
                        let _ = out_tx
                            .send(Frame::RstStream {
                                stream_id,
                                status: 1,
                            })
                            .await;
                        continue;
                    };
                    let request = header("requestid");
                    let pair = pairs.entry(request.clone()).or_default();
                    pair.port = port;
                    match header("streamtype").as_str() {
                        "error" => pair.error = Some(stream_id),
                        "data" => {
                            pair.data = Some(stream_id);
                            let (tx, rx) = mpsc::unbounded_channel();
                            inputs.insert(stream_id, tx);
                            waiting.insert(stream_id, rx);
                        }
                        _ => {}
                    }
                    if let Some(Pair {
                        port,
                        error: Some(error),
                        data: Some(data),
                    }) = pairs.get(&request)
                    {
                        let (port, error, data) = (*port, *error, *data);
                        pairs.remove(&request);
                        let Some(input) = waiting.remove(&data) else {
                            continue;
                        };
                        tasks.spawn(forward(
                            sandbox.clone(),
                            port,
                            error,
                            data,
                            input,
                            out_tx.clone(),
                        ));
                    }
                }
                Frame::Data {
                    stream_id,
                    fin,
                    data,
                } => {
                    if let Some(tx) = inputs.get(&stream_id) {
                        if !data.is_empty() {
                            let _ = tx.send(Some(data));
                        }
                        if fin {
                            let _ = tx.send(None);
                            inputs.remove(&stream_id);
                        }
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    // Dropping the sender ends that connection.
                    inputs.remove(&stream_id);
                }
                Frame::Ping(id) => {
                    let _ = out_tx.send(Frame::Ping(id)).await;
                }
                Frame::GoAway { .. } => break 'session,
                Frame::SynReply { .. } | Frame::Other => {}
            }
        }
    }
    let _ = out_tx
        .send(Frame::GoAway {
            last_stream_id: last_stream,
        })
        .await;
    drop(out_tx);
    inputs.clear();
    tasks.abort_all();
    let _ = writer.await;
}

/// Copies one connection to the pod's port both ways; a failure to connect is told on the
/// error stream, in the words of Kubernetes' kubelet and container runtime.
async fn forward(
    sandbox: Sandbox,
    port: u16,
    error: u32,
    data: u32,
    mut input: mpsc::UnboundedReceiver<Option<Vec<u8>>>,
    out: mpsc::Sender<Frame>,
) {
    let fin = |stream_id| Frame::Data {
        stream_id,
        fin: true,
        data: Vec::new(),
    };
    let connect = tokio::time::timeout(CONNECT, TcpStream::connect((sandbox.ip, port))).await;
    let tcp = match connect {
        Ok(Ok(tcp)) => tcp,
        outcome => {
            let reason = match outcome {
                Ok(Err(e)) => dial_error(&e),
                _ => "i/o timeout".to_string(),
            };
            let message = format!(
                "error forwarding port {port} to pod {id}, uid : failed to execute portforward \
                 in network namespace {name:?}: failed to connect to localhost:{port} inside \
                 namespace {id:?}, IPv4: dial tcp4 {ip}:{port}: {reason} IPv6 <nil> ",
                id = sandbox.id,
                name = sandbox.name,
                ip = sandbox.ip,
            );
            let _ = out
                .send(Frame::Data {
                    stream_id: error,
                    fin: true,
                    data: message.into_bytes(),
                })
                .await;
            let _ = out.send(fin(data)).await;
            return;
        }
    };
    let (mut from_pod, mut to_pod) = tcp.into_split();
    let up = async {
        while let Some(Some(bytes)) = input.recv().await {
            if to_pod.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to_pod.shutdown().await;
    };
    let down = async {
        let mut chunk = vec![0u8; CHUNK];
        loop {
            match from_pod.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let frame = Frame::Data {
                        stream_id: data,
                        fin: false,
                        data: chunk[..n].to_vec(),
                    };
                    if out.send(frame).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = out.send(fin(data)).await;
    };
    tokio::join!(up, down);
    let _ = out.send(fin(error)).await;
}

/// A dial error as Go prints it (`connect: connection refused`).
fn dial_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
        std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        _ => format!("connect: {e}"),
    }
}
