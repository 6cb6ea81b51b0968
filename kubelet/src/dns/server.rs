//! The wire side: UDP and TCP listeners, answers from the current [`Index`], truncation,
//! and forwarding of names outside the cluster domain to upstream resolvers.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::DNSClass;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::index::{Answer, Index};

/// The payload size we announce and accept over UDP with EDNS (the DNS flag day's).
const EDNS_PAYLOAD: u16 = 1232;
/// How long one upstream gets to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a TCP client may stay idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// What every listener shares.
pub(super) struct Shared {
    /// `None` until the watches have listed everything once: until then, names of the
    /// cluster get SERVFAIL (try again) rather than a wrong NXDOMAIN.
    pub index: RwLock<Option<Arc<Index>>>,
    pub zone: hickory_proto::rr::Name,
    pub upstreams: Vec<SocketAddr>,
}

impl Shared {
    fn current(&self) -> Option<Arc<Index>> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Where a query came from, which decides the size an answer may have.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

pub(super) async fn udp_loop(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors of earlier sends surface here on some systems; keep going.
                tracing::debug!(error = %e, "receiving a DNS query");
                continue;
            }
        };
        let query = &buf[..len];
        match answer_local(&shared, query, Transport::Udp) {
            Reply::Now(Some(bytes)) => {
                let _ = socket.send_to(&bytes, peer).await;
            }
            Reply::Now(None) => {}
            Reply::Forward(request) => {
                let socket = socket.clone();
                let shared = shared.clone();
                let query = query.to_vec();
                tokio::spawn(async move {
                    if let Some(bytes) = forward(&shared, &query, &request, Transport::Udp).await {
                        let _ = socket.send_to(&bytes, peer).await;
                    }
                });
            }
        }
    }
}

pub(super) async fn tcp_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "accepting a DNS connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tcp_connection(stream, &shared).await;
        });
    }
}

async fn tcp_connection(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query))
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)??;
        let bytes = match answer_local(shared, &query, Transport::Tcp) {
            Reply::Now(Some(bytes)) => bytes,
            Reply::Now(None) => return Ok(()),
            Reply::Forward(request) => {
                match forward(shared, &query, &request, Transport::Tcp).await {
                    Some(bytes) => bytes,
                    None => return Ok(()),
                }
            }
        };
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).await?;
    }
}

enum Reply {
    /// The bytes to send back, or nothing (not a DNS query at all).
    Now(Option<Vec<u8>>),
    /// Not ours: ask the upstreams.
    Forward(Message),
}

fn answer_local(shared: &Shared, query: &[u8], transport: Transport) -> Reply {
    let request = match Message::from_vec(query) {
        Ok(m) => m,
        Err(_) => {
            // Answer FORMERR when there is at least a header to answer to.
            if query.len() < 12 {
                return Reply::Now(None);
            }
            let id = u16::from_be_bytes([query[0], query[1]]);
            let msg = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
            return Reply::Now(msg.to_vec().ok());
        }
    };
    if request.metadata.message_type != MessageType::Query {
        return Reply::Now(None);
    }
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.add_queries(request.queries.iter().cloned());
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        response.set_edns(edns);
    }
    if request.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return Reply::Now(encode(&request, response, transport));
    }
    let [question] = request.queries.as_slice() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return Reply::Now(encode(&request, response, transport));
    };
    let name = question.name();
    let Some(index) = shared.current() else {
        if name.zone_of(&shared.zone) || shared.zone.zone_of(name) {
            response.metadata.response_code = ResponseCode::ServFail;
            return Reply::Now(encode(&request, response, transport));
        }
        return Reply::Forward(request);
    };
    if question.query_class() != DNSClass::IN && question.query_class() != DNSClass::ANY {
        if index.in_zone(name) {
            response.metadata.response_code = ResponseCode::Refused;
            return Reply::Now(encode(&request, response, transport));
        }
        return Reply::Forward(request);
    }
    match index.lookup(name, question.query_type()) {
        Answer::Records {
            answers,
            additionals,
        } => {
            response.metadata.authoritative = true;
            response.insert_answers(answers);
            response.insert_additionals(additionals);
        }
        Answer::NoData => {
            response.metadata.authoritative = true;
            response.add_authority(index.soa().clone());
        }
        Answer::NxDomain => {
            response.metadata.authoritative = true;
            response.metadata.response_code = ResponseCode::NXDomain;
            response.add_authority(index.soa().clone());
        }
        Answer::NotOurs => return Reply::Forward(request),
    }
    Reply::Now(encode(&request, response, transport))
}

/// The largest UDP answer `request` accepts: 512 bytes, or its EDNS size (up to ours).
fn udp_limit(request: &Message) -> usize {
    match &request.edns {
        Some(edns) => edns.max_payload().clamp(512, EDNS_PAYLOAD) as usize,
        None => 512,
    }
}

/// Encodes `response`; over UDP, an answer larger than the client takes is sent with
/// the TC bit and no records, so the client asks again over TCP.
fn encode(request: &Message, response: Message, transport: Transport) -> Option<Vec<u8>> {
    let bytes = response.to_vec().ok()?;
    if transport == Transport::Udp && bytes.len() > udp_limit(request) {
        let mut truncated = response.truncate();
        truncated.metadata.id = response.metadata.id;
        return truncated.to_vec().ok();
    }
    Some(bytes)
}

/// Asks each upstream in turn over UDP, again over TCP when the answer is truncated;
/// SERVFAIL when none answers.
async fn forward(
    shared: &Shared,
    query: &[u8],
    request: &Message,
    transport: Transport,
) -> Option<Vec<u8>> {
    for upstream in &shared.upstreams {
        let answer = match forward_udp(*upstream, query).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::debug!(%upstream, error = %e, "forwarding a DNS query");
                continue;
            }
        };
        let truncated = answer.len() > 2 && answer[2] & 0x02 != 0;
        let answer = if truncated {
            match forward_tcp(*upstream, query).await {
                Ok(full) => full,
                Err(e) => {
                    tracing::debug!(%upstream, error = %e, "forwarding a DNS query over TCP");
                    answer
                }
            }
        } else {
            answer
        };
        if transport == Transport::Udp && answer.len() > udp_limit(request) {
            let mut message = Message::from_vec(&answer).ok()?;
            message.metadata.id = request.metadata.id;
            let mut truncated = message.truncate();
            truncated.metadata.id = request.metadata.id;
            return truncated.to_vec().ok();
        }
        return Some(answer);
    }
    let mut response = Message::error_msg(
        request.metadata.id,
        request.metadata.op_code,
        ResponseCode::ServFail,
    );
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.add_queries(request.queries.iter().cloned());
    response.to_vec().ok()
}

async fn forward_udp(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; 65535];
    let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
    loop {
        let len = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)??;
        // Only the answer to this query's id (a late answer to another is dropped).
        if len >= 12 && buf[..2] == query[..2] {
            buf.truncate(len);
            return Ok(buf);
        }
    }
}

async fn forward_tcp(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let exchange = async {
        let mut stream = TcpStream::connect(upstream).await?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
        framed.extend_from_slice(query);
        stream.write_all(&framed).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut answer).await?;
        Ok(answer)
    };
    tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)?
}
