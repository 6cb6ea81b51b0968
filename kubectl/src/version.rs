//! `kubectl version`: this client's version and the server's (`/version`).

use clap::Args;
use minik8s_client::Method;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::session::{Io, Session};

/// The Kubernetes version whose core/v1 API this kubectl speaks.
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";

#[derive(Args, Debug, Default)]
pub struct VersionArgs {
    /// Only the client version; the server is not contacted.
    #[arg(long)]
    pub client: bool,

    /// Output format: json or yaml.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
}

/// `v1.33.0-minik8s.0.1.0`: the API level, then this build.
pub fn git_version() -> String {
    format!(
        "v{KUBE_MAJOR}.{KUBE_MINOR}.0-minik8s.{}",
        env!("CARGO_PKG_VERSION")
    )
}

fn client_info() -> Value {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": git_version(),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{arch}", std::env::consts::OS),
    })
}

/// The field order of Kubernetes' `version.Info`, which kubectl's JSON keeps.
const INFO_FIELDS: &[&str] = &[
    "major",
    "minor",
    "gitVersion",
    "gitCommit",
    "gitTreeState",
    "buildDate",
    "goVersion",
    "compiler",
    "platform",
];

pub async fn run(args: VersionArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    let output = args.output.as_deref().unwrap_or("");
    if !matches!(output, "" | "json" | "yaml") {
        return Err(Error::msg("--output must be 'yaml' or 'json'"));
    }
    let client = client_info();
    let server = if args.client {
        None
    } else {
        // The client version is printed even when the server cannot be reached.
        let answer: std::result::Result<Value, _> = match session.client() {
            Ok(c) => c
                .request_json(Method::GET, "/version", None, None)
                .await
                .map_err(Error::from),
            Err(e) => Err(e),
        };
        match answer {
            Ok(v) => Some(v),
            Err(e) => {
                if output.is_empty() {
                    writeln!(
                        io.out,
                        "Client Version: {}",
                        client["gitVersion"].as_str().unwrap_or_default()
                    )?;
                }
                return Err(e);
            }
        }
    };
    match output {
        "json" => {
            let mut text = String::from("{\n");
            text.push_str(&format!("  \"clientVersion\": {}", info_json(&client)));
            if let Some(server) = &server {
                text.push_str(&format!(",\n  \"serverVersion\": {}", info_json(server)));
            }
            text.push_str("\n}\n");
            io.out.write_all(text.as_bytes())?;
        }
        "yaml" => {
            let mut all = json!({ "clientVersion": client });
            if let Some(server) = server {
                all["serverVersion"] = server;
            }
            io.out.write_all(crate::yaml::to_yaml(&all).as_bytes())?;
        }
        _ => {
            writeln!(
                io.out,
                "Client Version: {}",
                client["gitVersion"].as_str().unwrap_or_default()
            )?;
            if let Some(server) = server {
                writeln!(
                    io.out,
                    "Server Version: {}",
                    server["gitVersion"].as_str().unwrap_or_default()
                )?;
            }
        }
    }
    Ok(())
}

/// A version object indented as kubectl indents it, in `version.Info`'s field order.
fn info_json(info: &Value) -> String {
    let fields: Vec<String> = INFO_FIELDS
        .iter()
        .filter_map(|k| info.get(*k).map(|v| format!("    \"{k}\": {v}")))
        .collect();
    format!("{{\n{}\n  }}", fields.join(",\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn client_version_needs_no_configuration() {
        let mut session = Session::new(crate::ConnectionFlags {
            kubeconfig: Some("/nonexistent/kubeconfig".into()),
            ..Default::default()
        });
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut io = Io {
            stdin: &mut std::io::empty(),
            out: &mut out,
            err: &mut err,
            process_stdin: false,
        };
        let args = VersionArgs {
            client: true,
            output: Some("json".into()),
        };
        run(args, &mut session, &mut io).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["clientVersion"]["gitVersion"], git_version());
        assert!(
            text.starts_with("{\n  \"clientVersion\": {\n    \"major\": \"1\",\n"),
            "{text}"
        );
    }
}
