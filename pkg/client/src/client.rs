//! The HTTP layer: one shared connection pool, the bearer token, the user agent, error
//! mapping and retries. Everything typed is built on the few request methods here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use minik8s_api::WatchEvent;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{Config, KubeconfigOptions};
use crate::error::{Error, Result, status_from_response};
use crate::watch::watch_events;

pub const USER_AGENT: &str = concat!("minik8s/", env!("CARGO_PKG_VERSION"));
pub const JSON: &str = "application/json";
/// What kubectl asks for to get server-side printed rows.
pub const ACCEPT_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// Connection failures of a GET are retried this often: nothing reached the server, and
/// a restarting API server is back within a second or so.
const GET_RETRIES: u32 = 2;
const RETRY_BASE_DELAY: Duration = Duration::from_millis(200);

/// A handle to one API server. Cloning is cheap and clones share connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    server: Url,
    /// The server URL without its trailing `/`, to which request paths are appended.
    base: String,
    /// `HOST:PORT`, for connection errors.
    host_port: String,
    token: Option<String>,
    namespace: String,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.inner.server.as_str())
            .field("namespace", &self.inner.namespace)
            .finish_non_exhaustive()
    }
}

/// A response body with its content type, for callers that negotiate the format.
#[derive(Clone, Debug)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// `METHOD path`, for decode errors.
    context: String,
}

impl RawResponse {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        decode_body(&self.body, &self.context)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn decode_body<T: DeserializeOwned>(body: &[u8], context: &str) -> Result<T> {
    // An empty 2xx body (204) reads as `null`.
    let body: &[u8] = if body.trim_ascii().is_empty() {
        b"null"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|source| Error::Decode {
        context: context.to_string(),
        source,
    })
}

impl Client {
    pub fn new(config: Config) -> Result<Client> {
        let server = config.server;
        match server.scheme() {
            "http" => {}
            "https" => {
                return Err(Error::TlsNotSupported {
                    server: server.to_string(),
                });
            }
            other => {
                return Err(Error::Config(format!(
                    "server {server} has the scheme \"{other}\"; use http://HOST:PORT"
                )));
            }
        }
        let host = server
            .host_str()
            .ok_or_else(|| Error::Config(format!("server {server} has no host")))?
            .to_string();
        let port = server.port_or_known_default().unwrap_or(80);
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(config.connect_timeout);
        // As in Go's http.ProxyFromEnvironment, a local server is never reached through
        // an HTTP proxy from the environment.
        if is_loopback(&host) {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| {
            Error::Config(format!(
                "cannot build the HTTP client: {}",
                crate::error::error_chain(&e)
            ))
        })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base: server.as_str().trim_end_matches('/').to_string(),
                host_port: format!("{host}:{port}"),
                server,
                token: config.token.filter(|t| !t.is_empty()),
                namespace: config.namespace,
                timeout: config.timeout,
            }),
        })
    }

    /// A client for what [`Config::infer`] finds.
    pub fn infer() -> Result<Client> {
        Client::new(Config::infer()?)
    }

    pub fn from_kubeconfig(options: &KubeconfigOptions) -> Result<Client> {
        Client::new(Config::from_kubeconfig(options)?)
    }

    pub fn server(&self) -> &Url {
        &self.inner.server
    }

    /// The namespace of the configuration: the context's, or `default`.
    pub fn default_namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Sends a request and decodes the JSON answer. `content_type` defaults to
    /// `application/json` when there is a body.
    pub async fn request_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Value>,
        content_type: Option<&str>,
    ) -> Result<T> {
        let raw = self
            .request_raw(method, path_and_query, body, content_type, JSON)
            .await?;
        raw.json()
    }

    /// Sends a request and returns the answer as text (pod logs, for example).
    pub async fn request_text(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Value>,
        content_type: Option<&str>,
    ) -> Result<String> {
        let raw = self
            .request_raw(method, path_and_query, body, content_type, "*/*")
            .await?;
        Ok(raw.text())
    }

    /// A GET with a chosen `Accept`, such as [`ACCEPT_TABLE`]. The caller looks at the
    /// content type and body: a server may answer with another format than asked for.
    pub async fn get_with_accept(&self, path_and_query: &str, accept: &str) -> Result<RawResponse> {
        self.request_raw(Method::GET, path_and_query, None, None, accept)
            .await
    }

    pub async fn request_raw(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Value>,
        content_type: Option<&str>,
        accept: &str,
    ) -> Result<RawResponse> {
        let body = body.map(|v| Bytes::from(v.to_string()));
        let context = format!("{method} {path_and_query}");
        let method_name = method.to_string();
        let response = self
            .send(method, path_and_query, body, content_type, accept, false)
            .await?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let url = response.url().to_string();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&method_name, &url, e))?;
        Ok(RawResponse {
            status,
            content_type,
            body,
            context,
        })
    }

    /// A GET whose body is handed over as it arrives, with no overall time limit: a
    /// followed log, for example.
    pub async fn request_stream(
        &self,
        path_and_query: &str,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        self.open_stream(path_and_query, "*/*").await
    }

    async fn open_stream(
        &self,
        path_and_query: &str,
        accept: &str,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        let response = self
            .send(Method::GET, path_and_query, None, None, accept, true)
            .await?;
        let url = response.url().to_string();
        let host_port = self.inner.host_port.clone();
        Ok(response
            .bytes_stream()
            .map(move |chunk| chunk.map_err(|e| transport_error(&host_port, "GET", &url, e)))
            .boxed())
    }

    /// Opens a watch at `path_and_query` (which must ask for `watch=true`) and decodes
    /// its events. The stream ends when the server closes the response.
    pub async fn watch_stream<T>(
        &self,
        path_and_query: &str,
    ) -> Result<BoxStream<'static, Result<WatchEvent<T>>>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.watch_stream_accepting(path_and_query, JSON).await
    }

    /// [`Client::watch_stream`] asking for `accept`: with [`ACCEPT_TABLE`], each event's
    /// object is a one-row `Table` printed by the server when the change happened.
    pub async fn watch_stream_accepting<T>(
        &self,
        path_and_query: &str,
        accept: &str,
    ) -> Result<BoxStream<'static, Result<WatchEvent<T>>>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let bytes = self.open_stream(path_and_query, accept).await?;
        Ok(watch_events(bytes, format!("watch GET {path_and_query}")))
    }

    fn url(&self, path_and_query: &str) -> Result<Url> {
        let joined = if path_and_query.starts_with('/') {
            format!("{}{path_and_query}", self.inner.base)
        } else {
            format!("{}/{path_and_query}", self.inner.base)
        };
        Url::parse(&joined).map_err(|e| Error::Config(format!("invalid request URL {joined}: {e}")))
    }

    /// Sends one request; a non-2xx answer becomes [`Error::Api`].
    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
        content_type: Option<&str>,
        accept: &str,
        streaming: bool,
    ) -> Result<reqwest::Response> {
        let url = self.url(path_and_query)?;
        // Only reads are retried: a write whose outcome is unknown must not be repeated.
        let retries = if method == Method::GET {
            GET_RETRIES
        } else {
            0
        };
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let mut request = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .header(ACCEPT, accept);
            if let Some(token) = &self.inner.token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &body {
                request = request
                    .header(CONTENT_TYPE, content_type.unwrap_or(JSON))
                    .body(body.clone());
            }
            if !streaming {
                if let Some(timeout) = self.inner.timeout {
                    request = request.timeout(timeout);
                }
            }
            match request.send().await {
                Ok(response) => {
                    let code = response.status().as_u16();
                    tracing::debug!(%method, %url, code, elapsed = ?started.elapsed(), "request");
                    if response.status().is_success() {
                        return Ok(response);
                    }
                    let body = response.bytes().await.unwrap_or_default();
                    return Err(Error::api(status_from_response(code, &body)));
                }
                Err(e) if e.is_connect() && attempt < retries => {
                    attempt += 1;
                    let delay = RETRY_BASE_DELAY * attempt;
                    tracing::debug!(%method, %url, attempt, ?delay, error = %crate::error::error_chain(&e), "retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    return Err(self.transport_error(method.as_str(), url.as_str(), e));
                }
            }
        }
    }

    fn transport_error(&self, method: &str, url: &str, error: reqwest::Error) -> Error {
        transport_error(&self.inner.host_port, method, url, error)
    }
}

fn transport_error(host_port: &str, method: &str, url: &str, error: reqwest::Error) -> Error {
    if error.is_connect() {
        Error::Connect {
            server: host_port.to_string(),
            source: error,
        }
    } else {
        Error::Transport {
            method: method.to_string(),
            url: url.to_string(),
            source: error,
        }
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Reply, TestServer};
    use serde_json::json;

    fn client_for(server: &TestServer, token: Option<&str>) -> Client {
        let mut config = Config::new(server.url());
        config.token = token.map(str::to_string);
        Client::new(config).unwrap()
    }

    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn connection_refused_reads_like_kubectl() {
        let port = closed_port();
        let config = Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
        let client = Client::new(config).unwrap();
        let err = client
            .request_json::<Value>(Method::GET, "/api/v1/pods", None, None)
            .await
            .unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "The connection to the server 127.0.0.1:{port} was refused - did you specify the right host or port?"
            )
        );
    }

    #[tokio::test]
    async fn https_is_refused_with_a_clear_error() {
        let config = Config::new("https://127.0.0.1:6443".parse().unwrap());
        let err = Client::new(config).unwrap_err();
        assert!(matches!(err, Error::TlsNotSupported { .. }));
        assert!(
            err.to_string()
                .contains("TLS is not supported by this client"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn headers_token_and_status_errors() {
        let server = TestServer::start(|req| {
            if req.path == "/api/v1/namespaces/default/pods/missing" {
                Reply::json(
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "message": "pods \"missing\" not found", "reason": "NotFound", "code": 404}),
                )
            } else {
                Reply::json(200, json!({"kind": "Pod", "metadata": {"name": "web"}}))
            }
        })
        .await;
        let client = client_for(&server, Some("s3cret"));
        let pod: Value = client
            .request_json(
                Method::GET,
                "/api/v1/namespaces/default/pods/web",
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!(pod["metadata"]["name"], "web");
        let err = client
            .request_json::<Value>(
                Method::GET,
                "/api/v1/namespaces/default/pods/missing",
                None,
                None,
            )
            .await
            .unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(
            err.to_string(),
            "Error from server (NotFound): pods \"missing\" not found"
        );

        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        let first = &requests[0];
        assert_eq!(first.method, "GET");
        assert_eq!(first.header("authorization"), Some("Bearer s3cret"));
        assert_eq!(first.header("user-agent"), Some(USER_AGENT));
        assert_eq!(first.header("accept"), Some(JSON));
    }

    #[tokio::test]
    async fn no_token_no_authorization_header() {
        let server = TestServer::start(|_| Reply::json(200, json!({}))).await;
        let client = client_for(&server, None);
        let _: Value = client
            .request_json(Method::GET, "/version", None, None)
            .await
            .unwrap();
        assert_eq!(server.requests()[0].header("authorization"), None);
    }

    #[tokio::test]
    async fn get_with_accept_returns_what_the_server_sent() {
        let server = TestServer::start(|req| {
            let table = req.header("accept").is_some_and(|a| a.contains("as=Table"));
            Reply::json(
                200,
                json!({"kind": if table { "Table" } else { "PodList" }}),
            )
        })
        .await;
        let client = client_for(&server, None);
        let raw = client
            .get_with_accept("/api/v1/pods", ACCEPT_TABLE)
            .await
            .unwrap();
        assert_eq!(raw.status, 200);
        assert_eq!(raw.content_type.as_deref(), Some("application/json"));
        assert_eq!(raw.json::<Value>().unwrap()["kind"], "Table");
    }

    #[tokio::test]
    async fn non_status_error_bodies_and_bad_json() {
        let server = TestServer::start(|req| match req.path.as_str() {
            "/teapot" => Reply::text(503, "overloaded, come back later"),
            _ => Reply::text(200, "this is not json"),
        })
        .await;
        let client = client_for(&server, None);
        let err = client
            .request_json::<Value>(Method::GET, "/teapot", None, None)
            .await
            .unwrap_err();
        assert_eq!(err.status_code(), Some(503));
        assert_eq!(err.reason(), Some("ServiceUnavailable"));
        assert!(err.to_string().contains("overloaded"), "{err}");
        let err = client
            .request_json::<Value>(Method::GET, "/ok", None, None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
        assert!(err.to_string().contains("GET /ok"), "{err}");
    }

    #[tokio::test]
    async fn gets_retry_connection_failures_writes_do_not() {
        let port = closed_port();
        let url: Url = format!("http://127.0.0.1:{port}").parse().unwrap();

        // A POST to a closed port fails at once, without retrying.
        let client = Client::new(Config::new(url.clone())).unwrap();
        let started = Instant::now();
        let err = client
            .request_json::<Value>(Method::POST, "/x", Some(json!({})), None)
            .await
            .unwrap_err();
        assert!(err.is_connect());
        assert!(
            started.elapsed() < RETRY_BASE_DELAY,
            "{:?}",
            started.elapsed()
        );

        // A GET succeeds when the server comes up during the retries.
        let bind = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            TestServer::start_on(port, |_| Reply::json(200, json!({"ok": true}))).await
        });
        let value: Value = client
            .request_json(Method::GET, "/x", None, None)
            .await
            .unwrap();
        assert_eq!(value["ok"], true);
        let server = bind.await.unwrap();
        assert_eq!(server.requests().len(), 1);
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("[::1]"));
        assert!(!is_loopback("10.0.0.1"));
        assert!(!is_loopback("example.com"));
    }

    #[tokio::test]
    async fn server_path_prefix_is_kept() {
        let server = TestServer::start(|_| Reply::json(200, json!({}))).await;
        let mut url = server.url();
        url.set_path("/prefix/");
        let client = Client::new(Config::new(url)).unwrap();
        let _: Value = client
            .request_json(Method::GET, "/api/v1/nodes", None, None)
            .await
            .unwrap();
        assert_eq!(server.requests()[0].path, "/prefix/api/v1/nodes");
    }
}
