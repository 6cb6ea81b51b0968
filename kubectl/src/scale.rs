//! `kubectl scale --replicas=N TYPE/NAME...`: through the `/scale` subresource, as the
//! real kubectl's scaler does — a merge patch of `spec.replicas`, or, when
//! `--current-replicas` or `--resource-version` asks for a precondition, a read of the
//! Scale, the check, and an update of it (retried while it conflicts).

use std::time::{Duration, Instant};

use clap::Args;
use minik8s_client::Method;
use serde_json::{Value, json};

use crate::create_workloads::{DryRun, parse_format};
use crate::error::{Error, Result};
use crate::session::{Io, Session};
use crate::targets::{self, Rules, Target};

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// TYPE NAME..., or TYPE/NAME...
    #[arg(value_name = "RESOURCE")]
    pub resources: Vec<String>,

    /// The new number of replicas.
    #[arg(long, value_name = "COUNT")]
    pub replicas: Option<String>,

    /// Only scale when the current size is this (-1: no condition).
    #[arg(long, default_value = "-1", value_name = "COUNT")]
    pub current_replicas: String,

    /// Only scale when the object's resourceVersion is this.
    #[arg(long, value_name = "VERSION")]
    pub resource_version: Option<String>,

    /// Every object of the given types in the namespace.
    #[arg(long)]
    pub all: bool,

    /// The objects of the given types with these labels.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Files naming the objects to scale.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filenames: Vec<String>,

    /// Output format: json, yaml or name.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,

    /// none (default), client or server.
    #[arg(long, value_name = "STRATEGY", num_args = 0..=1, default_missing_value = "unchanged")]
    pub dry_run: Option<String>,

    /// Wait this long for the new size to be reached (0: do not wait).
    #[arg(long, default_value = "0s", value_name = "DURATION")]
    pub timeout: String,
}

fn parse_count(value: &str, flag: &str) -> Result<i64> {
    value.parse().map_err(|_| {
        Error::Plain(format!(
            "error: invalid argument {value:?} for \"{flag}\" flag: strconv.ParseInt: parsing {value:?}: invalid syntax\nSee 'kubectl scale --help' for usage."
        ))
    })
}

pub async fn run(args: ScaleArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    let Some(replicas) = args.replicas.as_deref() else {
        return Err(Error::msg("required flag(s) \"replicas\" not set"));
    };
    let replicas = parse_count(replicas, "--replicas")?;
    let current = parse_count(&args.current_replicas, "--current-replicas")?;
    let dry_run = DryRun::parse(args.dry_run.as_deref())?;
    let format = parse_format(args.output.as_deref())?;
    let timeout = crate::session::parse_duration(&args.timeout).ok_or_else(|| {
        Error::Plain(format!(
            "error: invalid argument {:?} for \"--timeout\" flag: time: invalid duration {:?}\nSee 'kubectl scale --help' for usage.",
            args.timeout, args.timeout
        ))
    })?;
    if replicas < 0 {
        return Err(Error::msg(
            "The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0",
        ));
    }
    let rules = Rules {
        type_alone_lists: false,
        all: args.all,
        selector: args.selector.as_deref(),
    };
    let found = targets::find(&args.resources, &args.filenames, rules, session, io.stdin).await?;
    let resource_version = args.resource_version.as_deref().filter(|v| !v.is_empty());
    if resource_version.is_some() && found.targets.len() > 1 {
        return Err(Error::msg(
            "cannot use --resource-version with multiple resources",
        ));
    }
    if found.targets.is_empty() && found.errors.is_empty() {
        return Err(Error::msg("no objects passed to scale"));
    }
    if found.targets.is_empty() {
        return Err(Error::msg(format!(
            "no objects passed to scale {}",
            targets::aggregate_text(&found.errors)
        )));
    }
    let precondition = (current != -1 || resource_version.is_some()).then(|| Precondition {
        size: current,
        resource_version: resource_version.map(str::to_string),
    });
    let mut errors = Vec::new();
    for target in &found.targets {
        if dry_run != DryRun::Client {
            let mut scaled = scale(target, replicas, precondition.as_ref(), dry_run, session).await;
            if scaled.is_ok() && !timeout.is_zero() {
                scaled = wait_for_size(target, replicas, timeout, session).await;
            }
            if let Err(e) = scaled {
                errors.push(e);
                continue;
            }
        }
        crate::create_workloads::print_object(
            &target.object,
            target.resource,
            "scaled",
            dry_run,
            format,
            io,
        )?;
    }
    if !errors.is_empty() {
        return Error::collect(errors);
    }
    Error::collect(found.errors)
}

/// `--timeout`: watches the object until its size is the one asked for (or someone else
/// asked for another), as kubectl's `WaitForScaleHasDesiredReplicas`.
async fn wait_for_size(
    target: &Target,
    replicas: i64,
    timeout: Duration,
    session: &mut Session,
) -> Result<()> {
    let api = target.api(session)?;
    let deadline = crate::watch_one::deadline(timeout);
    let outcome = crate::watch_one::until(&api, &target.name, deadline, false, |event| {
        Ok(match event {
            minik8s_client::WatchEvent::Added(o) | minik8s_client::WatchEvent::Modified(o) => {
                let spec = o["spec"]["replicas"].as_i64().unwrap_or(1);
                let status = o["status"]["replicas"].as_i64().unwrap_or(0);
                spec != replicas || status == replicas
            }
            _ => false,
        })
    })
    .await?;
    match outcome {
        crate::watch_one::Until::Done => Ok(()),
        crate::watch_one::Until::TimedOut => Err(Error::msg(format!(
            "timed out waiting for {:?} to be synced",
            target.name
        ))),
    }
}

/// kubectl's `ScalePrecondition`.
struct Precondition {
    size: i64,
    resource_version: Option<String>,
}

impl Precondition {
    fn check(&self, scale: &Value) -> Result<()> {
        let actual = scale["spec"]["replicas"].as_i64().unwrap_or(0);
        if self.size != -1 && actual != self.size {
            return Err(Error::msg(format!(
                "Expected replicas to be {}, was {actual}",
                self.size
            )));
        }
        let actual = scale["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        if let Some(want) = &self.resource_version
            && actual != want
        {
            return Err(Error::msg(format!(
                "Expected resource version to be {want}, was {actual}"
            )));
        }
        Ok(())
    }
}

/// How long kubectl keeps retrying a scale that conflicts, and how often.
const CONFLICT_RETRY: Duration = Duration::from_secs(1);
const CONFLICT_DEADLINE: Duration = Duration::from_secs(300);

async fn scale(
    target: &Target,
    replicas: i64,
    precondition: Option<&Precondition>,
    dry_run: DryRun,
    session: &mut Session,
) -> Result<()> {
    let client = session.client()?;
    let api = target.api(session)?;
    let mut path = format!("{}/scale", api.object_path(&target.name));
    if dry_run == DryRun::Server {
        path.push_str("?dryRun=All");
    }
    let Some(precondition) = precondition else {
        client
            .request_json::<Value>(
                Method::PATCH,
                &path,
                Some(json!({"spec": {"replicas": replicas}})),
                Some("application/merge-patch+json"),
            )
            .await?;
        return Ok(());
    };
    let started = Instant::now();
    loop {
        let mut scale: Value = client
            .request_json(
                Method::GET,
                &format!("{}/scale", api.object_path(&target.name)),
                None,
                None,
            )
            .await?;
        precondition.check(&scale)?;
        scale["spec"]["replicas"] = json!(replicas);
        match client
            .request_json::<Value>(Method::PUT, &path, Some(scale), None)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() && started.elapsed() < CONFLICT_DEADLINE => {
                tokio::time::sleep(CONFLICT_RETRY).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
