//! Kubernetes' remote command protocol over WebSocket (`v5.channel.k8s.io`,
//! `v4.channel.k8s.io`), as the kubelet serves it, the API server proxies it and kubectl
//! and client-go speak it: every binary message starts with the byte of its stream (0
//! stdin, 1 stdout, 2 stderr, 3 error, 4 resize); v5 adds 255, the close of one stream,
//! whose one byte of payload names it. The error stream carries one `metav1.Status` at
//! the end: `Success`, or `Failure` with reason `NonZeroExitCode` and the exit code as the
//! message of a cause of reason `ExitCode`, which is how kubectl learns its exit code.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ListMeta, Status, StatusCause, StatusDetails,
};
use serde::{Deserialize, Serialize};

/// The protocols, most preferred first.
pub const PROTOCOL_V5: &str = "v5.channel.k8s.io";
pub const PROTOCOL_V4: &str = "v4.channel.k8s.io";
pub const PROTOCOLS: [&str; 2] = [PROTOCOL_V5, PROTOCOL_V4];

/// The reason of a `Status` that carries a command's non-zero exit code.
pub const NON_ZERO_EXIT_CODE: &str = "NonZeroExitCode";
/// The reason of the cause whose message is the exit code.
pub const EXIT_CODE_CAUSE: &str = "ExitCode";

/// One stream of a remote command session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Stdin,
    Stdout,
    Stderr,
    /// The final `Status`.
    Error,
    /// Terminal sizes, as `{"Width":80,"Height":24}`.
    Resize,
    /// `v5` only: the stream named by the payload's one byte is closed.
    Close,
}

impl Channel {
    pub fn byte(self) -> u8 {
        match self {
            Channel::Stdin => 0,
            Channel::Stdout => 1,
            Channel::Stderr => 2,
            Channel::Error => 3,
            Channel::Resize => 4,
            Channel::Close => 255,
        }
    }

    pub fn from_byte(byte: u8) -> Option<Channel> {
        Some(match byte {
            0 => Channel::Stdin,
            1 => Channel::Stdout,
            2 => Channel::Stderr,
            3 => Channel::Error,
            4 => Channel::Resize,
            255 => Channel::Close,
            _ => return None,
        })
    }
}

/// Whether the negotiated protocol can say that a stream closed (`v5`): without it, the
/// end of stdin is only known when the connection ends.
pub fn supports_close(protocol: &str) -> bool {
    protocol == PROTOCOL_V5
}

/// A binary message: the stream's byte, then the data.
pub fn frame(channel: Channel, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(channel.byte());
    out.extend_from_slice(data);
    out
}

/// The `v5` message that closes a stream.
pub fn close_frame(stream: Channel) -> Vec<u8> {
    vec![Channel::Close.byte(), stream.byte()]
}

/// A received binary message split into its stream and data; `None` for an empty
/// message or an unknown stream.
pub fn parse(message: &[u8]) -> Option<(Channel, &[u8])> {
    let (&first, data) = message.split_first()?;
    Some((Channel::from_byte(first)?, data))
}

/// A terminal size as the resize stream carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

fn status(status: &str) -> Status {
    Status {
        metadata: ListMeta::default(),
        status: Some(status.to_string()),
        ..Status::default()
    }
}

/// The error stream's `Status` for a command that exited with `code`.
pub fn exit_status(command: &[String], code: i64) -> Status {
    if code == 0 {
        return status("Success");
    }
    Status {
        message: Some(format!(
            "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
        )),
        reason: Some(NON_ZERO_EXIT_CODE.to_string()),
        details: Some(StatusDetails {
            causes: Some(vec![StatusCause {
                reason: Some(EXIT_CODE_CAUSE.to_string()),
                message: Some(code.to_string()),
                field: None,
            }]),
            ..StatusDetails::default()
        }),
        ..status("Failure")
    }
}

/// The error stream's `Status` for a session that failed for another reason than the
/// command's exit code.
pub fn failure_status(message: impl Into<String>) -> Status {
    Status {
        message: Some(message.into()),
        reason: Some("InternalError".to_string()),
        code: Some(500),
        ..status("Failure")
    }
}

/// How a session ended, read from its error stream as client-go reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The command exited 0 (or the stream said nothing).
    Success,
    /// The command exited with this code (1 to 255).
    ExitCode(u8),
    /// The session failed; kubectl prints the message as an error.
    Failed(String),
}

/// Decodes the error stream's content.
pub fn outcome(message: &[u8]) -> Outcome {
    if message.iter().all(u8::is_ascii_whitespace) {
        return Outcome::Success;
    }
    let status: Status = match serde_json::from_slice(message) {
        Ok(s) => s,
        Err(e) => {
            return Outcome::Failed(format!(
                "error stream protocol error: {e} in {:?}",
                String::from_utf8_lossy(message)
            ));
        }
    };
    match status.status.as_deref() {
        Some("Success") => Outcome::Success,
        Some("Failure") if status.reason.as_deref() == Some(NON_ZERO_EXIT_CODE) => {
            let Some(details) = &status.details else {
                return Outcome::Failed("error stream protocol error: details must be set".into());
            };
            let cause = details
                .causes
                .iter()
                .flatten()
                .find(|c| c.reason.as_deref() == Some(EXIT_CODE_CAUSE));
            match cause {
                Some(c) => {
                    let text = c.message.clone().unwrap_or_default();
                    match text.parse::<u8>() {
                        Ok(code) => Outcome::ExitCode(code),
                        Err(_) => Outcome::Failed(format!(
                            "error stream protocol error: invalid exit code value {text:?}"
                        )),
                    }
                }
                None => Outcome::Failed(format!(
                    "error stream protocol error: no {EXIT_CODE_CAUSE} cause given"
                )),
            }
        }
        Some("Failure") => Outcome::Failed(status.message.unwrap_or_default()),
        _ => Outcome::Failed("error stream protocol error: unknown error".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_stream_first() {
        assert_eq!(frame(Channel::Stdout, b"hi"), vec![1, b'h', b'i']);
        assert_eq!(parse(&[2, b'x']), Some((Channel::Stderr, &b"x"[..])));
        assert_eq!(parse(&[1]), Some((Channel::Stdout, &b""[..])));
        assert_eq!(close_frame(Channel::Stdin), vec![255, 0]);
        assert_eq!(
            parse(&close_frame(Channel::Stdin)),
            Some((Channel::Close, &[0u8][..]))
        );
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&[9, 1]), None);
        assert!(supports_close(PROTOCOL_V5));
        assert!(!supports_close(PROTOCOL_V4));
        let size: TerminalSize = serde_json::from_str(r#"{"Width":80,"Height":24}"#).unwrap();
        assert_eq!(
            size,
            TerminalSize {
                width: 80,
                height: 24
            }
        );
    }

    #[test]
    fn statuses_are_what_client_go_expects() {
        let ok = serde_json::to_value(exit_status(&[], 0)).unwrap();
        assert_eq!(ok["status"], "Success");
        assert_eq!(ok["metadata"], serde_json::json!({}));
        let failed = exit_status(&["sh".into(), "-c".into(), "exit 3".into()], 3);
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(json["status"], "Failure");
        assert_eq!(json["reason"], "NonZeroExitCode");
        assert_eq!(
            json["details"]["causes"],
            serde_json::json!([{"reason": "ExitCode", "message": "3"}])
        );
        let bytes = serde_json::to_vec(&failed).unwrap();
        assert_eq!(outcome(&bytes), Outcome::ExitCode(3));
        assert_eq!(
            outcome(&serde_json::to_vec(&exit_status(&[], 0)).unwrap()),
            Outcome::Success
        );
        assert_eq!(outcome(b""), Outcome::Success);
    }

    #[test]
    fn failures_other_than_exit_codes_keep_their_message() {
        let bytes = serde_json::to_vec(&failure_status("no such container")).unwrap();
        assert_eq!(outcome(&bytes), Outcome::Failed("no such container".into()));
        let bad_code = br#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"300"}]}}"#;
        assert_eq!(
            outcome(bad_code),
            Outcome::Failed("error stream protocol error: invalid exit code value \"300\"".into())
        );
        let no_cause = br#"{"status":"Failure","reason":"NonZeroExitCode","details":{}}"#;
        assert!(matches!(outcome(no_cause), Outcome::Failed(m) if m.contains("no ExitCode cause")));
        assert!(
            matches!(outcome(b"not json"), Outcome::Failed(m) if m.starts_with("error stream protocol error"))
        );
    }
}
