//! `rollout history` and `rollout undo`. A Deployment's revisions are its ReplicaSets
//! (the `deployment.kubernetes.io/revision` annotation); a DaemonSet's or StatefulSet's
//! are its ControllerRevisions. Undo follows kubectl's `DeploymentRollbacker`: the
//! previous revision (or `--to-revision`), its template without `pod-template-hash`, and
//! the Deployment's annotations, written back with one JSON patch.

use std::collections::BTreeMap;

use clap::Args;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as MetaSelector;
use minik8s_api::resource::{CONTROLLER_REVISIONS, REPLICA_SETS};
use minik8s_api::selector::LabelSelector;
use minik8s_client::{DynamicApi, ListParams, Patch, PostParams};
use serde_json::{Map, Value, json};

use super::{ObjectArgs, find, group_kind};
use crate::create_workloads::{DryRun, client_message};
use crate::describe::template::describe_pod_template;
use crate::error::{Error, Result};
use crate::session::{Io, Session};
use crate::tabwriter::TabWriter;
use crate::targets::Target;

#[derive(Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub objects: ObjectArgs,

    /// Show the pod template of this revision.
    #[arg(long, default_value = "0", value_name = "N")]
    pub revision: String,
}

#[derive(Args, Debug)]
pub struct UndoArgs {
    #[command(flatten)]
    pub objects: ObjectArgs,

    /// The revision to roll back to (0: the one before the current).
    #[arg(long, default_value = "0", value_name = "N")]
    pub to_revision: String,

    /// none (default), client (print the template) or server.
    #[arg(long, value_name = "STRATEGY", num_args = 0..=1, default_missing_value = "unchanged")]
    pub dry_run: Option<String>,
}

const REVISION: &str = "deployment.kubernetes.io/revision";
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
const HASH_LABEL: &str = "pod-template-hash";

/// Annotations a rollback keeps from the Deployment rather than taking from the revision.
const ANNOTATIONS_TO_SKIP: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

fn parse_revision(text: &str, flag: &str, command: &str) -> Result<i64> {
    text.parse().map_err(|_| {
        Error::Plain(format!(
            "error: invalid argument {text:?} for \"{flag}\" flag: strconv.ParseInt: parsing {text:?}: invalid syntax\nSee 'kubectl rollout {command} --help' for usage."
        ))
    })
}

/// One revision: its number, its pod template, its change cause and the object.
struct Revision {
    number: i64,
    template: Value,
    change_cause: String,
    object: Value,
}

/// The revisions of a Deployment, DaemonSet or StatefulSet, owned by it (controller
/// reference) and selected by its selector.
async fn revisions(target: &Target, session: &mut Session) -> Result<Vec<Revision>> {
    let uid = target.object["metadata"]["uid"]
        .as_str()
        .unwrap_or_default();
    let selector: MetaSelector =
        serde_json::from_value(target.object["spec"]["selector"].clone()).unwrap_or_default();
    let selector = LabelSelector::from_label_selector(&selector)
        .map_err(|e| Error::msg(e.to_string()))?
        .to_string();
    let is_deployment = target.resource.kind == "Deployment";
    let resource = if is_deployment {
        &REPLICA_SETS
    } else {
        &CONTROLLER_REVISIONS
    };
    let api = DynamicApi::new(session.client()?, resource, Some(target.namespace.clone()));
    let list = api
        .list_all(&ListParams::default().labels(&selector))
        .await?;
    let mut out = Vec::new();
    for item in list.items {
        let owned = item["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["controller"] == true && r["uid"] == uid);
        if !owned {
            continue;
        }
        let change_cause = item["metadata"]["annotations"][CHANGE_CAUSE]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (number, template) = if is_deployment {
            let Some(number) = item["metadata"]["annotations"][REVISION]
                .as_str()
                .and_then(|r| r.parse::<i64>().ok())
            else {
                continue;
            };
            let mut template = item["spec"]["template"].clone();
            if !change_cause.is_empty() {
                template["metadata"]["annotations"][CHANGE_CAUSE] = json!(change_cause);
            }
            (number, template)
        } else {
            let Some(number) = item["revision"].as_i64() else {
                continue;
            };
            (number, item["data"]["spec"]["template"].clone())
        };
        out.push(Revision {
            number,
            template,
            change_cause,
            object: item,
        });
    }
    out.sort_by_key(|r| r.number);
    // One entry per revision, as kubectl's map keeps the last it saw.
    out.dedup_by(|later, earlier| {
        if later.number == earlier.number {
            std::mem::swap(later, earlier);
            true
        } else {
            false
        }
    });
    Ok(out)
}

fn supports_history(target: &Target) -> bool {
    matches!(
        target.resource.kind,
        "Deployment" | "DaemonSet" | "StatefulSet"
    )
}

pub async fn run_history(args: HistoryArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    let revision = parse_revision(&args.revision, "--revision", "history")?;
    if revision < 0 {
        return Err(Error::msg(format!(
            "revision must be a positive integer: {revision}"
        )));
    }
    let found = find(&args.objects, session, io).await?;
    let mut errors = Vec::new();
    for target in &found.targets {
        if !supports_history(target) {
            errors.push(Error::msg(format!(
                "no history viewer has been implemented for {:?}",
                group_kind(target)
            )));
            continue;
        }
        let history = match revisions(target, session).await {
            Ok(h) => h,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let text = if history.is_empty() {
            "No rollout history found.".to_string()
        } else if revision > 0 {
            match history.iter().find(|r| r.number == revision) {
                Some(r) => describe_pod_template(&r.template),
                None => {
                    errors.push(Error::msg("unable to find the specified revision"));
                    continue;
                }
            }
        } else {
            let mut tw = TabWriter::new(0, 2, false);
            tw.write_str("REVISION\tCHANGE-CAUSE\n");
            for r in &history {
                let cause = if r.change_cause.is_empty() {
                    "<none>"
                } else {
                    &r.change_cause
                };
                tw.write_str(&format!("{}\t{cause}\n", r.number));
            }
            tw.finish()
        };
        let with_revision = if revision > 0 {
            format!("with revision #{revision}")
        } else {
            String::new()
        };
        writeln!(io.out, "{} {with_revision}\n{text}", target.kind_name())?;
    }
    errors.extend(found.errors);
    Error::collect(errors)
}

/// Drops what Go's semantic equality does not tell apart: nulls, empty maps and lists.
fn normalized(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// A template without its `pod-template-hash` label, with the `resources: {}` that
/// kubectl's typed round trip gives every container.
fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t["metadata"]["labels"].as_object_mut() {
        labels.remove(HASH_LABEL);
    }
    for field in ["initContainers", "containers"] {
        for c in t["spec"][field].as_array_mut().into_iter().flatten() {
            if let Some(c) = c.as_object_mut() {
                c.entry("resources").or_insert_with(|| json!({}));
            }
        }
    }
    t
}

/// kubectl's `deploymentRevision`: the revision asked for, or the one before the newest.
fn pick(history: &[Revision], to_revision: i64, name: &str) -> Result<usize> {
    if to_revision > 0 {
        return history
            .iter()
            .position(|r| r.number == to_revision)
            .ok_or_else(|| not_found(to_revision));
    }
    match history.len() {
        0 | 1 => Err(Error::msg(format!(
            "no rollout history found for deployment {name:?}"
        ))),
        n => Ok(n - 2),
    }
}

fn not_found(revision: i64) -> Error {
    Error::msg(format!(
        "unable to find specified revision {revision} in history"
    ))
}

pub async fn run_undo(args: UndoArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    let to_revision = parse_revision(&args.to_revision, "--to-revision", "undo")?;
    let dry_run = DryRun::parse(args.dry_run.as_deref())?;
    let found = find(&args.objects, session, io).await?;
    let mut errors = Vec::new();
    for target in &found.targets {
        match undo(target, to_revision, dry_run, session).await {
            Ok(result) => writeln!(
                io.out,
                "{} {result}{}",
                target.kind_name(),
                dry_run.suffix()
            )?,
            Err(e) => errors.push(e),
        }
    }
    errors.extend(found.errors);
    Error::collect(errors)
}

/// Rolls one object back; the words kubectl prints after its name.
async fn undo(
    target: &Target,
    to_revision: i64,
    dry_run: DryRun,
    session: &mut Session,
) -> Result<String> {
    if !supports_history(target) {
        return Err(Error::msg(format!(
            "no rollbacker has been implemented for {:?}",
            group_kind(target)
        )));
    }
    if to_revision < 0 {
        return Err(not_found(to_revision));
    }
    let api = target.api(session)?;
    let current = api.get(&target.name).await.map_err(|e| {
        Error::msg(format!(
            "failed to retrieve {} {}: {}",
            target.resource.kind,
            target.name,
            client_message(&e)
        ))
    })?;
    let history = revisions(target, session).await?;
    let is_deployment = target.resource.kind == "Deployment";
    let index = if is_deployment {
        pick(&history, to_revision, &target.name)?
    } else {
        match pick(&history, to_revision, &target.name) {
            Ok(i) => i,
            Err(_) if to_revision == 0 => {
                return Err(Error::msg("no last revision to roll back to"));
            }
            Err(e) => return Err(e),
        }
    };
    let revision = &history[index];
    if dry_run == DryRun::Client {
        // kubectl words the two rollbackers' dry runs differently.
        return Ok(if is_deployment {
            describe_pod_template(&revision.object["spec"]["template"])
        } else {
            format!(
                "will roll back to {}",
                describe_pod_template(&revision.template)
            )
        });
    }
    let params = PostParams {
        dry_run: dry_run == DryRun::Server,
        ..PostParams::default()
    };
    if !is_deployment {
        let template = revision.template.clone();
        if normalized(&template) == normalized(&current["spec"]["template"]) {
            return Ok(format!(
                "skipped rollback (current template already matches revision {})",
                revision.number
            ));
        }
        api.patch_with(
            &target.name,
            &Patch::Strategic(revision.object["data"].clone()),
            &params,
        )
        .await?;
        return Ok("rolled back".into());
    }
    if current["spec"]["paused"] == true {
        return Err(Error::msg(
            "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again",
        ));
    }
    // The template as the ReplicaSet has it, without the change cause history added.
    let rs_template = &revision.object["spec"]["template"];
    if normalized(&without_hash(rs_template))
        == normalized(&without_hash(&current["spec"]["template"]))
    {
        return Ok(format!(
            "skipped rollback (current template already matches revision {to_revision})"
        ));
    }
    let mut annotations: BTreeMap<String, Value> = BTreeMap::new();
    for key in ANNOTATIONS_TO_SKIP {
        if let Some(v) = current["metadata"]["annotations"].get(*key) {
            annotations.insert(key.to_string(), v.clone());
        }
    }
    for (k, v) in revision.object["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    let annotations: Map<String, Value> = annotations.into_iter().collect();
    let patch = json!([
        {"op": "replace", "path": "/spec/template", "value": without_hash(rs_template)},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]);
    api.patch_with(&target.name, &Patch::Json(patch), &params)
        .await
        .map_err(|e| {
            Error::msg(format!(
                "failed restoring revision {to_revision}: {}",
                client_message(&e)
            ))
        })?;
    Ok("rolled back".into())
}
