//! `kubectl logs`: a container's log from `pods/{name}/log`, whole or followed.

use clap::Args;
use futures::StreamExt;
use minik8s_api::resource::PODS;
use minik8s_client::{DynamicApi, LogParams};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::session::{Io, Session, parse_duration};

const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

#[derive(Args, Debug, Default)]
pub struct LogsArgs {
    /// The pod (`NAME` or `pod/NAME`), and optionally the container.
    #[arg(value_name = "POD", num_args = 0..=2)]
    pub target: Vec<String>,

    /// The container to print the log of; defaults to the pod's only or first one.
    #[arg(short = 'c', long, value_name = "NAME")]
    pub container: Option<String>,

    /// Keep printing the log as it is written.
    #[arg(short = 'f', long)]
    pub follow: bool,

    /// The log of the previous instance of the container, if it restarted.
    #[arg(short = 'p', long)]
    pub previous: bool,

    /// Lines from the end of the log to print; -1 prints all.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_name = "N")]
    pub tail: i64,

    /// Prefix every line with its RFC 3339 timestamp.
    #[arg(long)]
    pub timestamps: bool,

    /// Only lines newer than this duration (`5s`, `2m`, `3h`).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,

    /// The most bytes of log to print.
    #[arg(long, value_name = "BYTES")]
    pub limit_bytes: Option<i64>,
}

pub async fn run(args: LogsArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    if args.target.is_empty() {
        return Err(Error::usage(
            "logs",
            "expected 'logs [-f] [-p] (POD | TYPE/NAME) [-c CONTAINER]'.\nPOD or TYPE/NAME is a required argument for the logs command",
        ));
    }
    let name = match args.target[0].split_once('/') {
        Some((kind, name)) => {
            if !PODS.matches_name(kind) {
                return Err(Error::msg(format!(
                    "cannot get the logs from {kind}: only pods have logs"
                )));
            }
            name.to_string()
        }
        None => args.target[0].clone(),
    };
    let container_arg = args
        .container
        .clone()
        .or_else(|| args.target.get(1).cloned());
    let since_seconds = match &args.since {
        Some(s) => Some(
            parse_duration(s)
                .ok_or_else(|| Error::msg(format!("invalid argument {s:?} for \"--since\" flag")))?
                .as_secs()
                .max(1) as i64,
        ),
        None => None,
    };
    let api = DynamicApi::new(session.client()?, &PODS, Some(session.namespace()?));
    let pod = api.get(&name).await?;
    let container = match container_arg {
        Some(c) => c,
        None => choose_container(&pod, false, io)?,
    };
    let params = LogParams {
        container: Some(container),
        follow: args.follow,
        previous: args.previous,
        timestamps: args.timestamps,
        tail_lines: (args.tail >= 0).then_some(args.tail),
        since_seconds,
        limit_bytes: args.limit_bytes,
    };
    if args.follow {
        let mut stream = api.log_stream(&name, &params).await?;
        while let Some(chunk) = stream.next().await {
            io.out.write_all(&chunk?)?;
            io.out.flush()?;
        }
    } else {
        let log = api.logs(&name, &params).await?;
        io.out.write_all(log.as_bytes())?;
    }
    Ok(())
}

/// The container kubectl picks when none is named: the only one, or the one the
/// default-container annotation names, or the first (saying so on stderr unless `quiet`).
pub(crate) fn choose_container(pod: &Value, quiet: bool, io: &mut Io<'_>) -> Result<String> {
    let (containers, init) = minik8s_api::pod::container_names(pod);
    if let Some(annotated) = pod["metadata"]["annotations"][DEFAULT_CONTAINER].as_str()
        && containers.iter().any(|c| c == annotated)
    {
        return Ok(annotated.to_string());
    }
    let Some(first) = containers.first() else {
        return Err(Error::msg(format!(
            "pod {} has no containers",
            pod["metadata"]["name"].as_str().unwrap_or_default()
        )));
    };
    if containers.len() + init.len() > 1 && !quiet {
        let mut all: Vec<String> = containers.clone();
        all.extend(init.iter().map(|c| format!("{c} (init)")));
        writeln!(
            io.err,
            "Defaulted container {first:?} out of: {}",
            all.join(", ")
        )?;
    }
    Ok(first.clone())
}
