//! `kubectl rollout status|history|undo|restart|pause|resume`, as the real kubectl's
//! `pkg/cmd/rollout` and its polymorphic helpers: the same requests (strategic merge
//! patches for pause, resume and restart, a JSON patch for a Deployment's undo), the
//! same messages, and the same per-object errors after the objects that worked.

mod history;
mod status;

use clap::{Args, Subcommand};
use minik8s_client::{Patch, PostParams};
use serde_json::{Value, json};

use crate::create_workloads::{DryRun, parse_format, print_object};
use crate::error::{Error, Result};
use crate::session::{Io, Session};
use crate::targets::{self, Found, Rules, Target};

pub use history::{HistoryArgs, UndoArgs};
pub use status::StatusArgs;

#[derive(Args, Debug)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(Subcommand, Debug)]
pub enum RolloutCommand {
    /// Show the status of the rollout.
    Status(StatusArgs),
    /// View rollout history.
    History(HistoryArgs),
    /// Undo a previous rollout.
    Undo(UndoArgs),
    /// Restart a resource.
    Restart(PatchArgs),
    /// Mark the provided resource as paused.
    Pause(PatchArgs),
    /// Resume a paused resource.
    Resume(PatchArgs),
}

/// The arguments every rollout verb takes.
#[derive(Args, Debug, Default, Clone)]
pub struct ObjectArgs {
    /// TYPE NAME..., TYPE/NAME..., or TYPE for every object of it.
    #[arg(value_name = "RESOURCE")]
    pub resources: Vec<String>,

    /// Files naming the objects.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filenames: Vec<String>,

    /// The objects of the given types with these labels.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
}

#[derive(Args, Debug)]
pub struct PatchArgs {
    #[command(flatten)]
    pub objects: ObjectArgs,

    /// Output format: json, yaml or name.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,

    /// Name of the manager used to track field ownership.
    #[arg(long, default_value = "kubectl-rollout", value_name = "NAME")]
    pub field_manager: String,
}

pub async fn run(args: RolloutArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    match args.command {
        RolloutCommand::Status(a) => status::run(a, session, io).await,
        RolloutCommand::History(a) => history::run_history(a, session, io).await,
        RolloutCommand::Undo(a) => history::run_undo(a, session, io).await,
        RolloutCommand::Restart(a) => patch_each(a, Action::Restart, session, io).await,
        RolloutCommand::Pause(a) => patch_each(a, Action::Pause, session, io).await,
        RolloutCommand::Resume(a) => patch_each(a, Action::Resume, session, io).await,
    }
}

/// The objects of a rollout verb: a bare type stands for all of its objects.
pub(crate) async fn find(
    objects: &ObjectArgs,
    session: &mut Session,
    io: &mut Io<'_>,
) -> Result<Found> {
    if objects.resources.is_empty() && objects.filenames.is_empty() {
        return Err(Error::msg("required resource not specified"));
    }
    let rules = Rules {
        type_alone_lists: true,
        all: false,
        selector: objects.selector.as_deref(),
    };
    targets::find(
        &objects.resources,
        &objects.filenames,
        rules,
        session,
        io.stdin,
    )
    .await
}

/// `Kind`, or `Kind.group`: how kubectl names a kind it has no helper for.
pub(crate) fn group_kind(target: &Target) -> String {
    if target.resource.group.is_empty() {
        target.resource.kind.to_string()
    } else {
        format!("{}.{}", target.resource.kind, target.resource.group)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Restart,
    Pause,
    Resume,
}

impl Action {
    fn done(self) -> &'static str {
        match self {
            Action::Restart => "restarted",
            Action::Pause => "paused",
            Action::Resume => "resumed",
        }
    }

    /// The strategic merge patch of this action, `None` for "nothing to change" (already
    /// paused, not paused), or kubectl's reason it cannot be done.
    fn patch(self, object: &Value, kind: &str, now: &str) -> std::result::Result<Value, String> {
        let paused = object["spec"]["paused"].as_bool().unwrap_or(false);
        match (self, kind) {
            (Action::Pause, "Deployment") if paused => Err("is already paused".into()),
            (Action::Pause, "Deployment") => Ok(json!({"spec": {"paused": true}})),
            (Action::Pause, _) => Err("pausing is not supported".into()),
            (Action::Resume, "Deployment") if !paused => Err("is not paused".into()),
            (Action::Resume, "Deployment") => Ok(json!({"spec": {"paused": null}})),
            (Action::Resume, _) => Err("resuming is not supported".into()),
            (Action::Restart, "Deployment") if paused => {
                Err("can't restart paused deployment (run rollout resume first)".into())
            }
            (Action::Restart, "Deployment" | "DaemonSet" | "StatefulSet") => {
                let current = &object["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT];
                if current.as_str() == Some(now) {
                    return Ok(json!({}));
                }
                Ok(
                    json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}),
                )
            }
            (Action::Restart, _) => Err("restarting is not supported".into()),
        }
    }
}

/// What kubectl says, on stderr, when a type or selector matched nothing.
pub(crate) fn no_resources(session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    let ns = session.namespace()?;
    writeln!(io.err, "No resources found in {ns} namespace.")?;
    Ok(())
}

const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Go's `time.Now().Format(time.RFC3339)` in the local time zone.
fn now_rfc3339() -> String {
    let now = jiff::Zoned::now();
    let text = now.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string();
    match text.strip_suffix("+00:00") {
        Some(utc) => format!("{utc}Z"),
        None => text,
    }
}

/// pause, resume and restart: every object read first (a missing one stops everything),
/// then each patched, with the refusals reported after the objects that changed.
async fn patch_each(
    args: PatchArgs,
    action: Action,
    session: &mut Session,
    io: &mut Io<'_>,
) -> Result<()> {
    let format = parse_format(args.output.as_deref())?;
    let found = find(&args.objects, session, io).await?;
    if !found.errors.is_empty() {
        return Error::collect(found.errors);
    }
    if found.targets.is_empty() {
        return no_resources(session, io);
    }
    let now = now_rfc3339();
    let params = PostParams {
        field_manager: Some(args.field_manager.clone()),
        ..PostParams::default()
    };
    let mut errors = Vec::new();
    for target in &found.targets {
        let patch = match action.patch(&target.object, target.resource.kind, &now) {
            Ok(p) => p,
            Err(reason) => {
                errors.push(Error::msg(format!("error: {} {reason}", target.quoted())));
                continue;
            }
        };
        if patch.as_object().is_none_or(|p| p.is_empty()) {
            if action == Action::Restart {
                errors.push(Error::msg(format!(
                    "failed to create patch for {}: if restart has already been triggered within the past second, please wait before attempting to trigger another",
                    target.name
                )));
            }
            continue;
        }
        let api = target.api(session)?;
        match api
            .patch_with(&target.name, &Patch::Strategic(patch), &params)
            .await
        {
            Ok(patched) => {
                let patched = crate::output::with_type(patched, target.resource);
                print_object(
                    &patched,
                    target.resource,
                    action.done(),
                    DryRun::None,
                    format,
                    io,
                )?;
            }
            Err(e) => errors.push(Error::msg(format!(
                "failed to patch: {}",
                crate::create_workloads::client_message(&e)
            ))),
        }
    }
    Error::collect(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_refuse_as_kubectl_does() {
        let paused = json!({"spec": {"paused": true}});
        let running = json!({"spec": {}});
        assert_eq!(
            Action::Pause.patch(&paused, "Deployment", "t"),
            Err("is already paused".to_string())
        );
        assert_eq!(
            Action::Pause.patch(&running, "Deployment", "t"),
            Ok(json!({"spec": {"paused": true}}))
        );
        assert_eq!(
            Action::Resume.patch(&paused, "Deployment", "t"),
            Ok(json!({"spec": {"paused": null}}))
        );
        assert_eq!(
            Action::Restart.patch(&running, "Pod", "t"),
            Err("restarting is not supported".to_string())
        );
        assert_eq!(
            Action::Restart.patch(&running, "StatefulSet", "t"),
            Ok(json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "t"}}}}}))
        );
    }
}
