//! `kubectl delete`: by file, by name, by label or field selector, or `--all`; graceful
//! unless told otherwise, and (like kubectl) returning only when the objects are gone.

use std::time::Duration;

use clap::{ArgAction, Args};
use minik8s_api::resource::ResourceInfo;
use minik8s_client::{DeleteParams, Deleted, DynamicApi, ListParams, PropagationPolicy};
use serde_json::Value;

use crate::create::{FileFlags, api_for};
use crate::error::{Error, Result};
use crate::manifests;
use crate::resources;
use crate::session::{Io, Session, parse_duration};

pub const IMMEDIATE_DELETION_WARNING: &str = "Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely.";

#[derive(Args, Debug, Default)]
pub struct DeleteArgs {
    /// TYPE [NAME...], or TYPE/NAME...
    #[arg(value_name = "RESOURCE")]
    pub resources: Vec<String>,

    #[command(flatten)]
    pub files: FileFlags,

    /// Delete the objects matching this label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Delete the objects matching this field selector.
    #[arg(long, value_name = "SELECTOR")]
    pub field_selector: Option<String>,

    /// Delete all objects of the type in the namespace.
    #[arg(long)]
    pub all: bool,

    /// With --all or a selector: across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Seconds the object has to terminate; -1 keeps the object's own default.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_name = "SECONDS")]
    pub grace_period: i64,

    /// Signal the object to terminate at once (a grace period of 1 second).
    #[arg(long)]
    pub now: bool,

    /// Remove the object at once, without waiting for it to terminate (grace period 0).
    #[arg(long)]
    pub force: bool,

    /// Wait until the objects are gone before returning (the default).
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub wait: bool,

    /// How long to wait for the objects to be gone (`30s`, `5m`); 0 waits forever.
    #[arg(long, default_value = "0s", value_name = "DURATION")]
    pub timeout: String,

    /// Succeed when the objects do not exist (the default with --all and selectors).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          require_equals = true, value_name = "BOOL")]
    pub ignore_not_found: Option<bool>,

    /// What happens to the objects' dependents: `background` (the default; also
    /// `true`, or the flag alone), `foreground` (dependents first; the object waits for
    /// them) or `orphan` (also `false`: dependents are kept, without the owner).
    #[arg(long, default_value = "background", num_args = 0..=1,
          default_missing_value = "background", require_equals = true, value_name = "MODE")]
    pub cascade: String,

    /// Output format: name (`pod/web` per deleted object).
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
}

/// One object to delete.
struct Target {
    resource: &'static ResourceInfo,
    api: DynamicApi,
    name: String,
    /// The file it was named in, for errors.
    source: Option<String>,
}

const NOTHING_GIVEN: &str = "You must provide one or more resources by argument or filename.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'";

pub async fn run(args: DeleteArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    if args.now && args.grace_period != -1 {
        return Err(Error::msg(
            "--now and --grace-period cannot be specified together",
        ));
    }
    let names_only = match args.output.as_deref() {
        None | Some("") => false,
        Some("name") => true,
        Some(other) => {
            return Err(Error::msg(format!(
                "unexpected -o output mode: {other:?}. We only support '-o name'"
            )));
        }
    };
    let cascade = parse_cascade(&args.cascade, io)?;
    let timeout = parse_duration(&args.timeout).ok_or_else(|| {
        Error::msg(format!(
            "invalid argument {:?} for \"--timeout\" flag",
            args.timeout
        ))
    })?;
    // kubectl's rules: --now is one second; 0 without --force is one second too, so
    // that nothing is removed at once by accident; --force alone means 0.
    let mut grace = args.grace_period;
    if args.now {
        grace = 1;
    }
    if grace == 0 && !args.force {
        grace = 1;
    }
    if args.force && grace < 0 {
        grace = 0;
    }
    let selecting = args.all || args.selector.is_some() || args.field_selector.is_some();
    let ignore_not_found = args.ignore_not_found.unwrap_or(selecting);

    let targets = targets(&args, selecting, session, io).await?;
    let mut errors = Vec::new();
    if grace == 0 {
        writeln!(io.err, "{IMMEDIATE_DELETION_WARNING}")?;
    }
    let params = DeleteParams {
        grace_period_seconds: (grace >= 0).then_some(grace),
        propagation_policy: Some(cascade),
        ..DeleteParams::default()
    };
    let operation = if grace == 0 {
        "force deleted"
    } else {
        "deleted"
    };
    let mut waiting: Vec<(Target, Option<String>)> = Vec::new();
    for target in targets {
        let target = match target {
            Ok(target) => target,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        match target.api.delete(&target.name, &params).await {
            Ok(deleted) => {
                if names_only {
                    writeln!(
                        io.out,
                        "{}/{}",
                        resources::kind_prefix(target.resource),
                        target.name
                    )?;
                } else {
                    writeln!(
                        io.out,
                        "{} \"{}\" {operation}",
                        target.resource.singular, target.name
                    )?;
                }
                io.out.flush()?;
                if let Deleted::Object(object) = deleted {
                    let uid = object["metadata"]["uid"].as_str().map(str::to_string);
                    waiting.push((target, uid));
                }
            }
            Err(e) if e.is_not_found() && ignore_not_found => {}
            Err(error) => errors.push(match &target.source {
                Some(source) => Error::FromSource {
                    action: "deleting",
                    source_name: source.clone(),
                    error,
                },
                None => Error::Client(error),
            }),
        }
    }
    if args.wait && grace != 0 {
        let deadline = (!timeout.is_zero()).then(|| tokio::time::Instant::now() + timeout);
        for (target, uid) in &waiting {
            if let Err(e) = wait_gone(target, uid.as_deref(), deadline).await {
                errors.push(e);
            }
        }
    }
    Error::collect(errors)
}

/// `--cascade` as kubectl reads it: a mode, or (deprecated) a boolean in any of Go's
/// spellings, `true` meaning background and `false` orphan.
fn parse_cascade(value: &str, io: &mut Io<'_>) -> Result<PropagationPolicy> {
    let (policy, replacement) = match value {
        "background" => return Ok(PropagationPolicy::Background),
        "foreground" => return Ok(PropagationPolicy::Foreground),
        "orphan" => return Ok(PropagationPolicy::Orphan),
        other => match minik8s_api::query::parse_bool(other) {
            Some(true) => (PropagationPolicy::Background, "background"),
            Some(false) => (PropagationPolicy::Orphan, "orphan"),
            None => {
                return Err(Error::msg(format!(
                    "invalid cascade value ({other}). Must be \"background\", \"foreground\", or \"orphan\""
                )));
            }
        },
    };
    writeln!(
        io.err,
        "warning: --cascade={value} is deprecated (boolean value) and can be replaced with --cascade={replacement}."
    )?;
    Ok(policy)
}

/// The objects named by files, names or selectors.
async fn targets(
    args: &DeleteArgs,
    selecting: bool,
    session: &mut Session,
    io: &mut Io<'_>,
) -> Result<Vec<Result<Target>>> {
    let mut targets = Vec::new();
    if !args.files.filenames.is_empty() {
        if !args.resources.is_empty() {
            return Err(Error::msg(
                "when paths, URLs, or stdin is provided as input, you may not specify resource arguments as well",
            ));
        }
        for item in manifests::read_all(&args.files.filenames, args.files.recursive, io.stdin) {
            targets.push(item.and_then(|object| {
                let resource = object.resource()?;
                Ok(Target {
                    resource,
                    api: api_for(&object, resource, session)?,
                    name: object.name().to_string(),
                    source: Some(object.source.clone()),
                })
            }));
        }
        return Ok(targets);
    }
    if args.resources.is_empty() {
        return Err(Error::Plain(format!("error: {NOTHING_GIVEN}")));
    }
    let selections = resources::parse(&args.resources, "delete")?;
    let client = session.client()?;
    let namespace = if args.all_namespaces {
        None
    } else {
        Some(session.namespace()?)
    };
    let mut listed_any = false;
    for selection in selections {
        let api = DynamicApi::new(client.clone(), selection.resource, namespace.clone());
        if !selection.names.is_empty() {
            if selecting {
                return Err(Error::msg(
                    "name cannot be provided when a selector is specified",
                ));
            }
            for name in selection.names {
                targets.push(Ok(Target {
                    resource: selection.resource,
                    api: api.clone(),
                    name,
                    source: None,
                }));
            }
            continue;
        }
        if !selecting {
            return Err(Error::msg(
                "resource(s) were provided, but no name was specified",
            ));
        }
        let params = ListParams {
            label_selector: args.selector.clone(),
            field_selector: args.field_selector.clone(),
            ..ListParams::default()
        };
        let list = api.list_all(&params).await?;
        for object in list.items {
            listed_any = true;
            // Across namespaces, each object is deleted in its own.
            let own = object["metadata"]["namespace"].as_str().map(str::to_string);
            targets.push(Ok(Target {
                resource: selection.resource,
                api: DynamicApi::new(
                    client.clone(),
                    selection.resource,
                    own.or(namespace.clone()),
                ),
                name: object_name(&object),
                source: None,
            }));
        }
    }
    if selecting && !listed_any {
        writeln!(io.out, "No resources found")?;
    }
    Ok(targets)
}

fn object_name(object: &Value) -> String {
    object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Polls until the object is gone, or replaced by another of the same name.
async fn wait_gone(
    target: &Target,
    uid: Option<&str>,
    deadline: Option<tokio::time::Instant>,
) -> Result<()> {
    let mut delay = Duration::from_millis(50);
    loop {
        match target.api.get_opt(&target.name).await? {
            None => return Ok(()),
            Some(object) if uid.is_some() && object["metadata"]["uid"].as_str() != uid => {
                return Ok(());
            }
            Some(_) => {}
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() + delay > d) {
            return Err(Error::msg(format!(
                "timed out waiting for the condition on {}/{}",
                target.resource.plural, target.name
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}
