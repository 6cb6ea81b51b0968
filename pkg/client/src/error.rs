//! The client's errors. A server error is always a Kubernetes `Status`, so callers can
//! match on its reason (`NotFound`, `Conflict`, `AlreadyExists`, `Expired`) however the
//! server phrased it; transport errors keep the server address, because that is what a
//! person has to check.

use std::error::Error as StdError;
use std::io;
use std::path::PathBuf;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a non-2xx code. The body is the server's `Status`, or one
    /// made up from the code and the body text when the server did not send a `Status`.
    #[error("{}", api_message(.0))]
    Api(Box<Status>),

    /// No TCP connection could be made to the server.
    #[error("{}", connect_message(server, source))]
    Connect {
        /// `HOST:PORT`, as kubectl names it.
        server: String,
        #[source]
        source: reqwest::Error,
    },

    /// The request failed after the connection was made (reset, timeout, broken body).
    #[error("request {method} {url} failed: {}", error_chain(source))]
    Transport {
        method: String,
        url: String,
        source: reqwest::Error,
    },

    /// The server's 2xx answer was not the JSON that was expected.
    #[error("cannot decode the response to {context}: {source}")]
    Decode {
        context: String,
        #[source]
        source: serde_json::Error,
    },

    /// The configuration is incomplete or contradictory; the message says what to fix.
    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("cannot read {what} {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot write {path}: {source}")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot parse kubeconfig {path}: {source}")]
    ParseKubeconfig {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },

    #[error(
        "the server {server} is an https address, but TLS is not supported by this client \
         (it speaks plain http only); use an http:// server address"
    )]
    TlsNotSupported { server: String },
}

impl Error {
    /// The server's `Status`, for errors the server reported.
    pub fn status(&self) -> Option<&Status> {
        match self {
            Error::Api(status) => Some(status),
            _ => None,
        }
    }

    /// The HTTP code of an error the server reported.
    pub fn status_code(&self) -> Option<u16> {
        self.status()
            .and_then(|s| s.code)
            .and_then(|c| u16::try_from(c).ok())
    }

    /// The machine-readable reason of an error the server reported (`NotFound`, ...).
    pub fn reason(&self) -> Option<&str> {
        self.status()
            .and_then(|s| s.reason.as_deref())
            .filter(|r| !r.is_empty())
    }

    pub fn is_not_found(&self) -> bool {
        self.reason() == Some("NotFound") || (self.reason().is_none() && self.code_is(404))
    }

    /// A write lost a race: stale `resourceVersion` or failed precondition. Creating an
    /// existing name is also a 409 but is `is_already_exists`, not this.
    pub fn is_conflict(&self) -> bool {
        match self.reason() {
            Some(reason) => reason == "Conflict",
            None => self.code_is(409),
        }
    }

    pub fn is_already_exists(&self) -> bool {
        self.reason() == Some("AlreadyExists")
    }

    /// The requested `resourceVersion` is older than the server keeps (`410 Expired` or
    /// `410 Gone`): a watcher must list again.
    pub fn is_expired(&self) -> bool {
        matches!(self.reason(), Some("Expired" | "Gone")) || self.code_is(410)
    }

    /// The server could not be reached at all.
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect { .. })
    }

    fn code_is(&self, code: u16) -> bool {
        self.status_code() == Some(code)
    }

    pub(crate) fn api(status: Status) -> Error {
        Error::Api(Box::new(status))
    }

    /// The error for a non-2xx answer the caller received itself (a refused WebSocket
    /// upgrade): the server's `Status`, or one made up from the code and the body.
    pub fn from_response(code: u16, body: &[u8]) -> Error {
        Error::api(status_from_response(code, body))
    }
}

/// kubectl's wording: `Error from server (NotFound): pods "web" not found`.
fn api_message(status: &Status) -> String {
    let message = status
        .message
        .as_deref()
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| {
            let code = status.code.and_then(|c| u16::try_from(c).ok()).unwrap_or(0);
            default_message(code)
        });
    match status.reason.as_deref().filter(|r| !r.is_empty()) {
        Some(reason) => format!("Error from server ({reason}): {message}"),
        None => format!("Error from server: {message}"),
    }
}

fn connect_message(server: &str, source: &reqwest::Error) -> String {
    if is_connection_refused(source) {
        format!(
            "The connection to the server {server} was refused - did you specify the right host or port?"
        )
    } else {
        format!(
            "Unable to connect to the server {server}: {}",
            error_chain(source)
        )
    }
}

fn is_connection_refused(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        let refused = e
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::ConnectionRefused);
        if refused {
            return true;
        }
        current = e.source();
    }
    false
}

/// An error and its causes on one line. reqwest's own message ("error sending request")
/// hides the part a person needs ("connection reset by peer").
pub(crate) fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// The `Status` for a non-2xx answer: the body itself when it is one, else one built from
/// the code and the body text, as client-go does.
pub(crate) fn status_from_response(code: u16, body: &[u8]) -> Status {
    let parsed = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .filter(|v| v.get("kind").and_then(|k| k.as_str()) == Some("Status"))
        .and_then(|v| serde_json::from_value::<Status>(v).ok());
    if let Some(mut status) = parsed {
        if status.code.is_none() {
            status.code = Some(i32::from(code));
        }
        if status.status.is_none() {
            status.status = Some("Failure".to_string());
        }
        if status.reason.as_deref().is_none_or(str::is_empty) {
            status.reason = Some(reason_for_code(code).to_string());
        }
        return status;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let message = if text.is_empty() {
        default_message(code)
    } else {
        truncate(text, 1024)
    };
    Status {
        code: Some(i32::from(code)),
        message: Some(message),
        reason: Some(reason_for_code(code).to_string()),
        status: Some("Failure".to_string()),
        ..Status::default()
    }
}

/// The `reason` Kubernetes uses for an HTTP code (`metav1.StatusReason`).
pub(crate) fn reason_for_code(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

fn default_message(code: u16) -> String {
    match code {
        401 => "Unauthorized".to_string(),
        403 => "Forbidden".to_string(),
        404 => "the server could not find the requested resource".to_string(),
        405 => "the server does not allow this method on the requested resource".to_string(),
        409 => "the server reported a conflict".to_string(),
        429 => "the server has received too many requests and has asked us to try again later"
            .to_string(),
        500 => "an error on the server has prevented the request from succeeding".to_string(),
        503 => "the server is currently unable to handle the request".to_string(),
        _ => format!("the server responded with the status code {code}"),
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_body_is_kept() {
        let body = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":"pods \"web\" not found","reason":"NotFound",
            "details":{"name":"web","kind":"pods"},"code":404}"#;
        let err = Error::api(status_from_response(404, body));
        assert_eq!(err.status_code(), Some(404));
        assert_eq!(err.reason(), Some("NotFound"));
        assert!(err.is_not_found());
        assert!(!err.is_conflict());
        assert_eq!(
            err.status()
                .unwrap()
                .details
                .as_ref()
                .unwrap()
                .name
                .as_deref(),
            Some("web")
        );
        assert_eq!(
            err.to_string(),
            r#"Error from server (NotFound): pods "web" not found"#
        );
    }

    #[test]
    fn conflict_and_already_exists_are_told_apart() {
        let exists = Error::api(status_from_response(
            409,
            br#"{"kind":"Status","code":409,"reason":"AlreadyExists","message":"pods \"a\" already exists"}"#,
        ));
        assert!(exists.is_already_exists());
        assert!(!exists.is_conflict());
        let conflict = Error::api(status_from_response(
            409,
            br#"{"kind":"Status","code":409,"reason":"Conflict","message":"the object has been modified"}"#,
        ));
        assert!(conflict.is_conflict());
        assert!(!conflict.is_already_exists());
    }

    #[test]
    fn non_status_body_is_wrapped() {
        let err = Error::api(status_from_response(502, b"  bad gateway\n"));
        assert_eq!(err.status_code(), Some(502));
        assert_eq!(err.reason(), Some("Unknown"));
        assert_eq!(
            err.status().unwrap().message.as_deref(),
            Some("bad gateway")
        );

        // JSON that is not a Status is text too.
        let err = Error::api(status_from_response(404, br#"{"kind":"Pod"}"#));
        assert!(err.is_not_found());
        assert_eq!(
            err.status().unwrap().message.as_deref(),
            Some(r#"{"kind":"Pod"}"#)
        );

        let err = Error::api(status_from_response(410, b""));
        assert!(err.is_expired());
        assert_eq!(err.reason(), Some("Expired"));
    }

    #[test]
    fn status_without_code_takes_the_http_code() {
        let err = Error::api(status_from_response(
            422,
            br#"{"kind":"Status","message":"invalid"}"#,
        ));
        assert_eq!(err.status_code(), Some(422));
        assert_eq!(err.reason(), Some("Invalid"));
    }

    #[test]
    fn long_bodies_are_cut_on_a_char_boundary() {
        let body = "é".repeat(2000);
        let status = status_from_response(500, body.as_bytes());
        let message = status.message.unwrap();
        assert!(message.ends_with("..."));
        assert!(message.len() <= 1024 + 3);
    }
}
