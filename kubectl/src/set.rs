//! `kubectl set image TYPE/NAME CONTAINER=IMAGE...`: the containers' images in a pod or
//! a pod template changed with the strategic merge patch the real kubectl computes — the
//! changed containers by name, with `$setElementOrder` keeping the list's order.

use clap::{Args, Subcommand};
use minik8s_client::{Patch, PostParams};
use serde_json::{Map, Value, json};

use crate::create_workloads::{DryRun, parse_format, print_object};
use crate::error::{Error, Result};
use crate::session::{Io, Session};
use crate::targets::{self, Rules, Target};

#[derive(Args, Debug)]
pub struct SetArgs {
    #[command(subcommand)]
    pub command: SetCommand,
}

#[derive(Subcommand, Debug)]
pub enum SetCommand {
    /// Update the image of a pod template.
    Image(ImageArgs),
}

#[derive(Args, Debug)]
pub struct ImageArgs {
    /// TYPE NAME... or TYPE/NAME..., then CONTAINER=IMAGE... (`*` for every container).
    #[arg(value_name = "ARGS")]
    pub args: Vec<String>,

    /// Every object of the given types in the namespace.
    #[arg(long)]
    pub all: bool,

    /// The objects of the given types with these labels.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Files naming the objects to change.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filenames: Vec<String>,

    /// Output format: json, yaml or name.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,

    /// none (default), client or server.
    #[arg(long, value_name = "STRATEGY", num_args = 0..=1, default_missing_value = "unchanged")]
    pub dry_run: Option<String>,

    /// Name of the manager used to track field ownership.
    #[arg(long, default_value = "kubectl-set", value_name = "NAME")]
    pub field_manager: String,
}

pub async fn run(args: SetArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    match args.command {
        SetCommand::Image(args) => image(args, session, io).await,
    }
}

/// kubectl's `GetResourcesAndPairs` and `ParsePairs`: resources first, then pairs.
/// `(container, image)` pairs, in the order given.
type Images = Vec<(String, String)>;

fn split_args(args: &[String]) -> Result<(Vec<String>, Images)> {
    let mut resources = Vec::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut found_pair = false;
    for arg in args {
        let is_pair =
            (arg.contains('=') && !arg.starts_with('=')) || (arg.ends_with('-') && arg != "-");
        match (found_pair, is_pair) {
            (_, true) => {
                found_pair = true;
                match arg.split_once('=') {
                    Some((name, image)) if !name.is_empty() => {
                        pairs.retain(|(n, _)| n != name);
                        pairs.push((name.to_string(), image.to_string()));
                    }
                    _ => return Err(Error::msg(format!("invalid image format: {arg:?}"))),
                }
            }
            (false, false) => resources.push(arg.clone()),
            (true, false) => {
                return Err(Error::msg(format!(
                    "all resources must be specified before image changes: {arg}"
                )));
            }
        }
    }
    Ok((resources, pairs))
}

async fn image(args: ImageArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    let (resources, images) = split_args(&args.args)?;
    let dry_run = DryRun::parse(args.dry_run.as_deref())?;
    let format = parse_format(args.output.as_deref())?;
    let rules = Rules {
        type_alone_lists: false,
        all: args.all,
        selector: args.selector.as_deref(),
    };
    let found = targets::find(&resources, &args.filenames, rules, session, io.stdin).await?;
    if !found.errors.is_empty() {
        return Error::collect(found.errors);
    }
    if images.is_empty() {
        return Err(Error::msg("at least one image update is required"));
    }
    if images.len() > 1 && images.iter().any(|(n, _)| n == "*") {
        return Err(Error::msg(
            "all containers are already specified by *, but saw more than one container_name=container_image pairs",
        ));
    }
    let mut errors = Vec::new();
    let mut patches = Vec::new();
    for target in &found.targets {
        match image_patch(target, &images) {
            Ok((patch, changed, missing)) => {
                errors.extend(missing);
                patches.push((target, patch, changed));
            }
            Err(e) => errors.push(e),
        }
    }
    let params = PostParams {
        dry_run: dry_run == DryRun::Server,
        field_manager: Some(args.field_manager.clone()),
        ..PostParams::default()
    };
    for (target, patch, changed) in patches {
        if patch.as_object().is_none_or(Map::is_empty) {
            continue;
        }
        if dry_run == DryRun::Client {
            print_object(
                &changed,
                target.resource,
                "image updated",
                dry_run,
                format,
                io,
            )?;
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
                    "image updated",
                    dry_run,
                    format,
                    io,
                )?
            }
            Err(e) => errors.push(Error::msg(format!(
                "failed to patch image update to pod template: {}",
                crate::create_workloads::client_message(&e)
            ))),
        }
    }
    Error::collect(errors)
}

/// Where an object keeps its pod spec.
pub fn pod_spec_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Pod" => Some(&["spec"]),
        "ReplicationController"
        | "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job" => Some(&["spec", "template", "spec"]),
        _ => None,
    }
}

/// The strategic merge patch setting the images, the changed object, and an error for
/// each container name that matched nothing.
fn image_patch(target: &Target, images: &[(String, String)]) -> Result<(Value, Value, Vec<Error>)> {
    let Some(path) = pod_spec_path(target.resource.kind) else {
        return Err(Error::msg(format!(
            "error: {}/{} the object is not a pod or does not have a pod template: *v1.{}",
            target.resource.plural, target.name, target.resource.kind
        )));
    };
    let mut changed = target.object.clone();
    let mut missing = Vec::new();
    let mut spec_patch = Map::new();
    {
        let mut spec = &mut changed;
        for key in path {
            spec = &mut spec[*key];
        }
        for (name, image) in images {
            let mut found = false;
            for field in ["initContainers", "containers", "ephemeralContainers"] {
                for c in spec[field].as_array_mut().into_iter().flatten() {
                    if name == "*" || c["name"].as_str() == Some(name) {
                        found = true;
                        c["image"] = json!(image);
                    }
                }
            }
            if !found {
                missing.push(Error::msg(format!(
                    "error: unable to find container named {name:?}"
                )));
            }
        }
        let mut original = &target.object;
        for key in path {
            original = &original[*key];
        }
        for field in ["initContainers", "containers", "ephemeralContainers"] {
            let (Some(before), Some(after)) = (original[field].as_array(), spec[field].as_array())
            else {
                continue;
            };
            let updates: Vec<Value> = before
                .iter()
                .zip(after)
                .filter(|(b, a)| b["image"] != a["image"])
                .map(|(_, a)| json!({"image": a["image"], "name": a["name"]}))
                .collect();
            if updates.is_empty() {
                continue;
            }
            let order: Vec<Value> = after.iter().map(|c| json!({"name": c["name"]})).collect();
            spec_patch.insert(format!("$setElementOrder/{field}"), json!(order));
            spec_patch.insert(field.to_string(), json!(updates));
        }
    }
    let patch = if spec_patch.is_empty() {
        json!({})
    } else {
        path.iter().rev().fold(
            Value::Object(spec_patch),
            |inner, key| json!({ *key: inner }),
        )
    };
    Ok((patch, changed, missing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use minik8s_api::resource::DEPLOYMENTS;

    fn target() -> Target {
        Target {
            resource: &DEPLOYMENTS,
            namespace: "default".into(),
            name: "web".into(),
            object: json!({"spec": {"template": {"spec": {"containers": [
                {"name": "nginx", "image": "nginx:1"}, {"name": "side", "image": "busybox"}
            ]}}}}),
        }
    }

    #[test]
    fn the_patch_names_changed_containers_and_keeps_the_order() {
        let (patch, _, missing) =
            image_patch(&target(), &[("nginx".into(), "nginx:2".into())]).unwrap();
        assert!(missing.is_empty());
        assert_eq!(
            patch,
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}, {"name": "side"}],
                "containers": [{"image": "nginx:2", "name": "nginx"}]
            }}}})
        );
        let (patch, _, missing) = image_patch(&target(), &[("x".into(), "y".into())]).unwrap();
        assert_eq!(patch, json!({}));
        assert_eq!(
            missing[0].render(),
            "error: unable to find container named \"x\"\n"
        );
    }

    #[test]
    fn resources_come_before_images() {
        let args: Vec<String> = ["deploy/web", "a=b", "deploy/x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let e = split_args(&args).unwrap_err().render();
        assert_eq!(
            e,
            "error: all resources must be specified before image changes: deploy/x\n"
        );
    }
}
