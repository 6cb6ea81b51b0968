//! kubectl's errors and how they read. kubectl prints a server error as
//! `Error from server (Reason): message`, an invalid object as `The Pod "x" is invalid:`
//! followed by one line per cause, a refused connection in its own words, and anything
//! else after `error: `. The exit code is 1 whatever went wrong.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use minik8s_api::manifest::ManifestError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed: the server's `Status`, or no connection.
    #[error(transparent)]
    Client(#[from] minik8s_client::Error),

    /// A request about an object read from a file failed; kubectl names the file:
    /// `error when creating "pod.yaml": pods "web" already exists`.
    #[error("error when {action} {source_name:?}: {error}")]
    FromSource {
        action: &'static str,
        source_name: String,
        error: minik8s_client::Error,
    },

    /// A manifest file could not be read.
    #[error("{}", manifest_message(.0))]
    Manifest(ManifestError),

    /// A usage mistake on the command line: kubectl adds where to find help.
    #[error("{message}")]
    Usage {
        message: String,
        command: &'static str,
    },

    /// Anything else, printed after `error: `.
    #[error("{0}")]
    Message(String),

    /// A message printed as it is (kubectl's few errors without the `error: ` prefix).
    #[error("{0}")]
    Plain(String),

    /// Several independent failures (one per object), printed one per line.
    #[error("{} errors occurred", .0.len())]
    Many(Vec<Error>),

    /// The command run by `exec` exited with this code, which becomes kubectl's.
    #[error("command terminated with exit code {0}")]
    ExitCode(u8),

    /// Writing the output failed (a closed pipe, for example).
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    pub fn msg(message: impl Into<String>) -> Error {
        Error::Message(message.into())
    }

    pub fn usage(command: &'static str, message: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            command,
        }
    }

    /// Collects per-object failures: nothing, one error, or several.
    pub fn collect(mut errors: Vec<Error>) -> Result<()> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Many(errors)),
        }
    }

    /// The server's answer, for errors the server gave.
    pub fn client_error(&self) -> Option<&minik8s_client::Error> {
        match self {
            Error::Client(e) | Error::FromSource { error: e, .. } => Some(e),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.client_error().is_some_and(|e| e.is_not_found())
    }

    /// kubectl's exit code after this error: 1, or the code of the command `exec` ran.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::ExitCode(code) => i32::from(*code),
            _ => 1,
        }
    }

    /// How kubectl prints the error as one of several: a server error on one line, even
    /// an invalid object's, and other errors without the `error: ` prefix.
    fn render_in_list(&self) -> String {
        match self {
            Error::Message(m) => format!("{}\n", m.trim_end_matches('\n')),
            Error::Manifest(e) => format!("{}\n", manifest_message(e)),
            Error::Client(e) => render_client_line(e, None),
            Error::FromSource {
                action,
                source_name,
                error,
            } => render_client_line(
                error,
                Some(&format!("error when {action} \"{source_name}\": ")),
            ),
            other => other.render(),
        }
    }

    /// The text kubectl prints for this error, ending with a newline.
    pub fn render(&self) -> String {
        match self {
            Error::Client(e) => render_client(e, None),
            Error::FromSource {
                action,
                source_name,
                error,
            } => render_client(
                error,
                Some(&format!("error when {action} \"{source_name}\": ")),
            ),
            Error::Manifest(e) => format!("error: {}\n", manifest_message(e)),
            Error::Usage { message, command } => {
                let help = if command.is_empty() {
                    "kubectl".to_string()
                } else {
                    format!("kubectl {command}")
                };
                format!("error: {message}\nSee '{help} -h' for help and examples\n")
            }
            Error::Message(m) => with_error_prefix(m),
            Error::Plain(m) => format!("{}\n", m.trim_end_matches('\n')),
            Error::ExitCode(code) => format!("command terminated with exit code {code}\n"),
            Error::Many(errors) => errors.iter().map(Error::render_in_list).collect(),
            Error::Output(e) => with_error_prefix(&format!("writing the output: {e}")),
        }
    }
}

fn with_error_prefix(message: &str) -> String {
    let message = message.trim_end_matches('\n');
    if message.starts_with("error: ") {
        format!("{message}\n")
    } else {
        format!("error: {message}\n")
    }
}

/// `line 7, column 3` when the parser knows the position, else the document.
fn manifest_message(e: &ManifestError) -> String {
    match e.column {
        Some(column) => format!(
            "error parsing {}: line {}, column {column}: {}",
            e.file, e.line, e.message
        ),
        None => format!(
            "error parsing {}: document {} (line {}): {}",
            e.file, e.document, e.line, e.message
        ),
    }
}

fn render_client(error: &minik8s_client::Error, context: Option<&str>) -> String {
    match error.status() {
        Some(status) if error.reason() == Some("Invalid") && status.details.is_some() => {
            render_invalid(status)
        }
        _ => render_client_line(error, context),
    }
}

fn render_client_line(error: &minik8s_client::Error, context: Option<&str>) -> String {
    match error.status() {
        Some(status) => match status.message.as_deref().filter(|m| !m.is_empty()) {
            Some(message) => {
                let message = format!("{}{message}", context.unwrap_or(""));
                match error.reason() {
                    Some(reason) => format!("Error from server ({reason}): {message}\n"),
                    None => format!("Error from server: {message}\n"),
                }
            }
            // The client's own words for a bare code.
            None => format!("{error}\n"),
        },
        // A refused connection reads exactly as kubectl's, with no prefix.
        None if error.is_connect() => format!("{error}\n"),
        None => with_error_prefix(&format!("{}{error}", context.unwrap_or(""))),
    }
}

/// kubectl's form of `422 Invalid`: the object, then one cause per line (or the only
/// cause on the same line).
fn render_invalid(status: &Status) -> String {
    let details = status.details.as_ref();
    let kind = details.and_then(|d| d.kind.as_deref()).unwrap_or("");
    let name = details.and_then(|d| d.name.as_deref()).unwrap_or("");
    let causes = details.and_then(|d| d.causes.as_deref()).unwrap_or(&[]);
    let head = if !kind.is_empty() || !name.is_empty() {
        format!("The {kind} \"{name}\" is invalid")
    } else if let Some(field) = causes
        .first()
        .and_then(|c| c.field.as_deref())
        .filter(|f| !f.is_empty())
    {
        format!("The request is invalid: {field}")
    } else {
        "The request is invalid".to_string()
    };
    let mut lines: Vec<String> = Vec::new();
    for cause in causes {
        let line = format!(
            "{}: {}",
            cause.field.as_deref().unwrap_or(""),
            cause.message.as_deref().unwrap_or("")
        );
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    match lines.len() {
        0 => format!("{head}\n"),
        1 => format!("{head}: {}\n", lines[0]),
        _ => {
            let mut out = format!("{head}: \n");
            for line in lines {
                out.push_str(&format!("* {line}\n"));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    fn api_error(status: Status) -> minik8s_client::Error {
        minik8s_client::Error::Api(Box::new(status))
    }

    fn invalid(causes: &[(&str, &str)]) -> Status {
        Status {
            code: Some(422),
            reason: Some("Invalid".into()),
            message: Some("Pod \"bad\" is invalid: [...]".into()),
            details: Some(StatusDetails {
                kind: Some("Pod".into()),
                name: Some("bad".into()),
                causes: Some(
                    causes
                        .iter()
                        .map(|(f, m)| StatusCause {
                            field: Some(f.to_string()),
                            message: Some(m.to_string()),
                            reason: Some("FieldValueRequired".into()),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn invalid_objects_list_one_cause_per_line() {
        let e = Error::Client(api_error(invalid(&[
            ("spec.containers[0].image", "Required value"),
            ("spec.containers[0].name", "Required value"),
        ])));
        assert_eq!(
            e.render(),
            "The Pod \"bad\" is invalid: \n* spec.containers[0].image: Required value\n* spec.containers[0].name: Required value\n"
        );
        let e = Error::Client(api_error(invalid(&[(
            "spec.containers[0].image",
            "Required value",
        )])));
        assert_eq!(
            e.render(),
            "The Pod \"bad\" is invalid: spec.containers[0].image: Required value\n"
        );
    }

    #[test]
    fn server_errors_name_their_reason_and_source() {
        let status = Status {
            code: Some(409),
            reason: Some("AlreadyExists".into()),
            message: Some("pods \"web\" already exists".into()),
            ..Default::default()
        };
        let e = Error::FromSource {
            action: "creating",
            source_name: "pod.yaml".into(),
            error: api_error(status),
        };
        assert_eq!(
            e.render(),
            "Error from server (AlreadyExists): error when creating \"pod.yaml\": pods \"web\" already exists\n"
        );
    }

    #[test]
    fn other_errors_get_the_error_prefix_once() {
        assert_eq!(Error::msg("boom").render(), "error: boom\n");
        assert_eq!(Error::msg("error: boom").render(), "error: boom\n");
        assert_eq!(
            Error::usage("get", "Required resource not specified.").render(),
            "error: Required resource not specified.\nSee 'kubectl get -h' for help and examples\n"
        );
        let many = Error::Many(vec![Error::msg("a"), Error::msg("b")]);
        assert_eq!(many.render(), "a\nb\n");
    }

    #[test]
    fn manifest_errors_point_at_line_and_column() {
        let e = Error::Manifest(ManifestError {
            file: "pod.yaml".into(),
            document: 2,
            line: 7,
            column: Some(3),
            message: "mapping values are not allowed in this context".into(),
        });
        assert_eq!(
            e.render(),
            "error: error parsing pod.yaml: line 7, column 3: mapping values are not allowed in this context\n"
        );
    }
}
