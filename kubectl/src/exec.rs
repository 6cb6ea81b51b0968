//! `kubectl exec POD [-c C] [-i] [-t] [-q] -- COMMAND...`: runs a command in a container
//! through the API server's `pods/{name}/exec` WebSocket, speaking the remote command
//! protocol of [`minik8s_api::remotecommand`]. The command's exit code becomes kubectl's.

use std::io::Read;

use clap::Args;
use futures::{SinkExt, StreamExt};
use minik8s_api::remotecommand::{self, Channel, Outcome, TerminalSize};
use minik8s_api::resource::PODS;
use minik8s_client::DynamicApi;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use crate::error::{Error, Result};
use crate::logs::choose_container;
use crate::session::{Io, Session};

#[derive(Args, Debug, Default)]
pub struct ExecArgs {
    /// The pod (`NAME` or `pod/NAME`).
    #[arg(value_name = "POD")]
    pub pod: Option<String>,

    /// A command without `--`: the old form, refused with kubectl's message.
    #[arg(hide = true)]
    pub legacy_command: Vec<String>,

    /// The command and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,

    /// The container to run the command in; defaults to the pod's only or first one.
    #[arg(short = 'c', long, value_name = "NAME")]
    pub container: Option<String>,

    /// Pass stdin to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,

    /// Stdin is a TTY (with -i, when stdin is a terminal).
    #[arg(short = 't', long)]
    pub tty: bool,

    /// Only print output from the remote session.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub async fn run(args: ExecArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    let Some(target) = &args.pod else {
        return Err(Error::msg("pod, type/name or --filename must be specified"));
    };
    if !args.legacy_command.is_empty() {
        return Err(Error::usage(
            "exec",
            "exec [POD] [COMMAND] is not supported anymore. Use exec [POD] -- [COMMAND] instead",
        ));
    }
    if args.command.is_empty() {
        return Err(Error::msg(
            "you must specify at least one command for the container",
        ));
    }
    let name = match target.split_once('/') {
        Some((kind, name)) if PODS.matches_name(kind) => name.to_string(),
        Some((kind, _)) => {
            return Err(Error::msg(format!(
                "cannot exec into {kind}: only pods run commands"
            )));
        }
        None => target.clone(),
    };
    let namespace = session.namespace()?;
    let client = session.client()?;
    let api = DynamicApi::new(client.clone(), &PODS, Some(namespace.clone()));
    let pod = api.get(&name).await?;
    let phase = pod["status"]["phase"].as_str().unwrap_or_default();
    if phase == "Succeeded" || phase == "Failed" {
        return Err(Error::msg(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        )));
    }
    // A named container is checked by the server, as with kubectl.
    let container = match &args.container {
        Some(c) => c.clone(),
        None => choose_container(&pod, args.quiet, io)?,
    };
    let terminal = io.process_stdin && rustix::termios::isatty(std::io::stdin());
    let tty = args.tty && args.stdin && terminal;
    if args.tty && args.stdin && !terminal && !args.quiet {
        writeln!(
            io.err,
            "Unable to use a TTY - input is not a terminal or the right kind of file"
        )?;
    }

    let mut url = client.server().clone();
    url.set_scheme("ws")
        .map_err(|_| Error::msg("the server address cannot be made a WebSocket address"))?;
    url.path_segments_mut()
        .map_err(|_| Error::msg("the server address cannot have a path"))?
        .pop_if_empty()
        .extend(["api", "v1", "namespaces", &namespace, "pods", &name, "exec"]);
    {
        let mut q = url.query_pairs_mut();
        for c in &args.command {
            q.append_pair("command", c);
        }
        q.append_pair("container", &container);
        if args.stdin {
            q.append_pair("stdin", "true");
        }
        q.append_pair("stdout", "true");
        if !tty {
            q.append_pair("stderr", "true");
        }
        if tty {
            q.append_pair("tty", "true");
        }
    }
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::msg(format!("exec request: {e}")))?;
    let headers = request.headers_mut();
    headers.insert(
        "Sec-WebSocket-Protocol",
        remotecommand::PROTOCOLS
            .join(", ")
            .parse()
            .map_err(|_| Error::msg("protocol header"))?,
    );
    let config = session.config()?;
    if let Some(token) = config.token.as_deref().filter(|t| !t.is_empty()) {
        headers.insert(
            "Authorization",
            format!("Bearer {token}")
                .parse()
                .map_err(|_| Error::msg("the token is not a valid header value"))?,
        );
    }
    // The API server answers only once the kubelet accepted (it gives it 10 s): the
    // limit is well above that.
    let connect = tokio_tungstenite::connect_async(request);
    let (socket, response) = match tokio::time::timeout(config.connect_timeout * 3, connect).await {
        Err(_) => {
            return Err(Error::msg(format!(
                "unable to upgrade connection: no answer from {} within {:?}",
                client.server(),
                config.connect_timeout * 3
            )));
        }
        Ok(Ok(ok)) => ok,
        Ok(Err(tungstenite::Error::Http(response))) => {
            let code = response.status().as_u16();
            let body = response.body().clone().unwrap_or_default();
            return Err(Error::Client(minik8s_client::Error::from_response(
                code, &body,
            )));
        }
        Ok(Err(e)) => return Err(Error::msg(format!("unable to upgrade connection: {e}"))),
    };
    let protocol = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|p| p.to_str().ok())
        .unwrap_or(remotecommand::PROTOCOL_V4)
        .to_string();

    let input = if args.stdin {
        Some(stdin_chunks(io))
    } else {
        None
    };
    let raw = if tty { RawMode::enable() } else { None };
    let outcome = stream(socket, &protocol, input, tty, io).await;
    drop(raw);
    match outcome? {
        Outcome::Success => Ok(()),
        Outcome::ExitCode(code) => Err(Error::ExitCode(code)),
        Outcome::Failed(message) => Err(Error::msg(message)),
    }
}

/// Stdin as chunks, `None` at its end. The process's own stdin is read on a thread of its
/// own that is left behind when the command ends first (the process exits then), as
/// kubectl's goroutine is; any other reader is read whole now.
fn stdin_chunks(io: &mut Io<'_>) -> mpsc::Receiver<Option<Vec<u8>>> {
    // Bounded: a large input is read no faster than the connection takes it.
    let (tx, rx) = mpsc::channel(8);
    if io.process_stdin {
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.blocking_send(None);
                        return;
                    }
                    Ok(n) => {
                        if tx.blocking_send(Some(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    } else {
        let mut all = Vec::new();
        let _ = io.stdin.read_to_end(&mut all);
        if !all.is_empty() {
            let _ = tx.try_send(Some(all));
        }
        let _ = tx.try_send(None);
    }
    rx
}

/// The terminal's size, if stdout is one.
fn terminal_size() -> Option<TerminalSize> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (size.ws_col > 0).then_some(TerminalSize {
        width: size.ws_col,
        height: size.ws_row,
    })
}

fn resize_message() -> Option<Message> {
    let size = terminal_size()?;
    let json = serde_json::to_vec(&size).ok()?;
    Some(Message::Binary(
        remotecommand::frame(Channel::Resize, &json).into(),
    ))
}

/// Copies stdin to the command and its output to ours until the server closes, and
/// returns what the error stream said.
async fn stream<S>(
    socket: tokio_tungstenite::WebSocketStream<S>,
    protocol: &str,
    mut input: Option<mpsc::Receiver<Option<Vec<u8>>>>,
    tty: bool,
    io: &mut Io<'_>,
) -> Result<Outcome>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut tx, mut rx) = socket.split();
    let mut resizes = None;
    if tty {
        if let Some(m) = resize_message() {
            let _ = tx.send(m).await;
        }
        resizes =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
    }
    let mut status = Vec::new();
    loop {
        tokio::select! {
            message = rx.next() => match message {
                Some(Ok(Message::Binary(data))) => match remotecommand::parse(&data) {
                    Some((Channel::Stdout, bytes)) => {
                        io.out.write_all(bytes)?;
                        io.out.flush()?;
                    }
                    Some((Channel::Stderr, bytes)) => {
                        io.err.write_all(bytes)?;
                        io.err.flush()?;
                    }
                    Some((Channel::Error, bytes)) => status.extend_from_slice(bytes),
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    if status.is_empty() {
                        return Err(Error::msg(format!("error reading from error stream: {e}")));
                    }
                    break;
                }
            },
            chunk = recv(&mut input) => match chunk {
                Some(Some(data)) => {
                    let _ = tx.send(Message::Binary(remotecommand::frame(Channel::Stdin, &data).into())).await;
                }
                _ => {
                    input = None;
                    if remotecommand::supports_close(protocol) {
                        let _ = tx.send(Message::Binary(remotecommand::close_frame(Channel::Stdin).into())).await;
                    }
                }
            },
            Some(()) = winch(&mut resizes) => {
                if let Some(m) = resize_message() {
                    let _ = tx.send(m).await;
                }
            }
        }
    }
    let _ = tx.close().await;
    Ok(remotecommand::outcome(&status))
}

/// The next stdin chunk; never, once stdin is done.
async fn recv(input: &mut Option<mpsc::Receiver<Option<Vec<u8>>>>) -> Option<Option<Vec<u8>>> {
    match input {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next window size change; never, without a terminal.
async fn winch(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// The terminal in raw mode, restored when dropped: keys go to the remote command as
/// typed, Ctrl-C included.
struct RawMode {
    saved: rustix::termios::Termios,
}

impl RawMode {
    fn enable() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}
