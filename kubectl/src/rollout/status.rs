//! `rollout status`: each object watched (not polled) until its rollout is done, with
//! the status viewers' lines of the real kubectl (`polymorphichelpers/rollout_status.go`)
//! printed on every change.

use clap::Args;
use minik8s_client::WatchEvent;
use serde_json::Value;

use super::{ObjectArgs, find, group_kind};
use crate::error::{Error, Result};
use crate::session::{Io, Session, parse_duration};
use crate::watch_one::{self, Until};

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub objects: ObjectArgs,

    /// Pin to a revision (deployments): fail if the rollout is of another one.
    #[arg(long, default_value = "0", value_name = "N")]
    pub revision: String,

    /// Watch until the rollout is done (true), or print the status once (false).
    #[arg(short = 'w', long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "true")]
    pub watch: String,

    /// How long to wait before giving up (0: forever).
    #[arg(long, default_value = "0s", value_name = "DURATION")]
    pub timeout: String,
}

/// One status line, and whether the rollout is done.
pub fn status(
    object: &Value,
    kind: &str,
    revision: i64,
) -> std::result::Result<(String, bool), String> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
    let spec = &object["spec"];
    let st = &object["status"];
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    let observed = n(&st["observedGeneration"]);
    match kind {
        "Deployment" => {
            if revision > 0 {
                let current =
                    object["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                        .as_str()
                        .unwrap_or("0");
                let current: i64 = current
                    .parse()
                    .map_err(|e| format!("cannot get the revision of deployment {name:?}: {e}"))?;
                if current != revision {
                    return Err(format!(
                        "desired revision ({revision}) is different from the running revision ({current})"
                    ));
                }
            }
            if generation > observed {
                return Ok((
                    "Waiting for deployment spec update to be observed...\n".into(),
                    false,
                ));
            }
            let progressing = st["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Progressing");
            if progressing.is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
                return Err(format!(
                    "deployment {name:?} exceeded its progress deadline"
                ));
            }
            let updated = n(&st["updatedReplicas"]);
            if let Some(replicas) = spec["replicas"].as_i64()
                && updated < replicas
            {
                return Ok((
                    format!(
                        "Waiting for deployment {name:?} rollout to finish: {updated} out of {replicas} new replicas have been updated...\n"
                    ),
                    false,
                ));
            }
            let total = n(&st["replicas"]);
            if total > updated {
                return Ok((
                    format!(
                        "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...\n",
                        total - updated
                    ),
                    false,
                ));
            }
            let available = n(&st["availableReplicas"]);
            if available < updated {
                return Ok((
                    format!(
                        "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available...\n"
                    ),
                    false,
                ));
            }
            Ok((
                format!("deployment {name:?} successfully rolled out\n"),
                true,
            ))
        }
        "DaemonSet" => {
            if spec["updateStrategy"]["type"]
                .as_str()
                .unwrap_or("RollingUpdate")
                != "RollingUpdate"
            {
                return Err(
                    "rollout status is only available for RollingUpdate strategy type".into(),
                );
            }
            if generation > observed {
                return Ok((
                    "Waiting for daemon set spec update to be observed...\n".into(),
                    false,
                ));
            }
            let desired = n(&st["desiredNumberScheduled"]);
            let updated = n(&st["updatedNumberScheduled"]);
            if updated < desired {
                return Ok((
                    format!(
                        "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated...\n"
                    ),
                    false,
                ));
            }
            let available = n(&st["numberAvailable"]);
            if available < desired {
                return Ok((
                    format!(
                        "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available...\n"
                    ),
                    false,
                ));
            }
            Ok((
                format!("daemon set {name:?} successfully rolled out\n"),
                true,
            ))
        }
        "StatefulSet" => {
            let strategy = &spec["updateStrategy"];
            if strategy["type"].as_str().unwrap_or("RollingUpdate") != "RollingUpdate" {
                return Err(
                    "rollout status is only available for RollingUpdate strategy type".into(),
                );
            }
            if observed == 0 || generation > observed {
                return Ok((
                    "Waiting for statefulset spec update to be observed...\n".into(),
                    false,
                ));
            }
            let replicas = spec["replicas"].as_i64();
            let ready = n(&st["readyReplicas"]);
            if let Some(replicas) = replicas
                && ready < replicas
            {
                return Ok((
                    format!("Waiting for {} pods to be ready...\n", replicas - ready),
                    false,
                ));
            }
            let updated = n(&st["updatedReplicas"]);
            if strategy["rollingUpdate"].is_object() {
                if let (Some(replicas), Some(partition)) =
                    (replicas, strategy["rollingUpdate"]["partition"].as_i64())
                    && updated < replicas - partition
                {
                    return Ok((
                        format!(
                            "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...\n",
                            replicas - partition
                        ),
                        false,
                    ));
                }
                return Ok((
                    format!(
                        "partitioned roll out complete: {updated} new pods have been updated...\n"
                    ),
                    true,
                ));
            }
            let update_revision = st["updateRevision"].as_str().unwrap_or_default();
            let current_revision = st["currentRevision"].as_str().unwrap_or_default();
            if update_revision != current_revision {
                return Ok((
                    format!(
                        "waiting for statefulset rolling update to complete {updated} pods at revision {update_revision}...\n"
                    ),
                    false,
                ));
            }
            Ok((
                format!(
                    "statefulset rolling update complete {} pods at revision {current_revision}...\n",
                    n(&st["currentReplicas"])
                ),
                true,
            ))
        }
        other => Err(format!("no status viewer has been implemented for {other}")),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

pub async fn run(args: StatusArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    let watch = parse_bool(&args.watch).ok_or_else(|| {
        Error::Plain(format!(
            "error: invalid argument {:?} for \"-w, --watch\" flag: strconv.ParseBool: parsing {:?}: invalid syntax\nSee 'kubectl rollout status --help' for usage.",
            args.watch, args.watch
        ))
    })?;
    let revision: i64 = args.revision.parse().map_err(|_| {
        Error::Plain(format!(
            "error: invalid argument {:?} for \"--revision\" flag: strconv.ParseInt: parsing {:?}: invalid syntax\nSee 'kubectl rollout status --help' for usage.",
            args.revision, args.revision
        ))
    })?;
    let timeout = parse_duration(&args.timeout).ok_or_else(|| {
        Error::Plain(format!(
            "error: invalid argument {:?} for \"--timeout\" flag: time: invalid duration {:?}\nSee 'kubectl rollout status --help' for usage.",
            args.timeout, args.timeout
        ))
    })?;
    if revision < 0 {
        return Err(Error::msg(format!(
            "revision must be a positive integer: {revision}"
        )));
    }
    let found = find(&args.objects, session, io).await?;
    let mut errors = Vec::new();
    for target in &found.targets {
        let kind = target.resource.kind;
        if !matches!(kind, "Deployment" | "DaemonSet" | "StatefulSet") {
            errors.push(Error::msg(format!(
                "no status viewer has been implemented for {}",
                group_kind(target)
            )));
            continue;
        }
        let api = target.api(session)?;
        let deadline = watch_one::deadline(timeout);
        let out = &mut *io.out;
        let outcome = watch_one::until(&api, &target.name, deadline, false, |event| match event {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                let (line, done) = status(&o, kind, revision).map_err(Error::msg)?;
                out.write_all(line.as_bytes())?;
                out.flush()?;
                Ok(done || !watch)
            }
            WatchEvent::Deleted(_) => Err(Error::msg("object has been deleted")),
            _ => Ok(false),
        })
        .await;
        match outcome {
            Ok(Until::Done) => {}
            Ok(Until::TimedOut) => errors.push(Error::msg("timed out waiting for the condition")),
            Err(e) => errors.push(e),
        }
    }
    errors.extend(found.errors);
    if found.targets.is_empty() && errors.is_empty() {
        super::no_resources(session, io)?;
    }
    Error::collect(errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(generation: i64, status: Value) -> Value {
        json!({"metadata": {"name": "web", "generation": generation},
               "spec": {"replicas": 3}, "status": status})
    }

    #[test]
    fn deployment_lines_are_kubectls() {
        let d = deployment(2, json!({"observedGeneration": 1}));
        assert_eq!(
            status(&d, "Deployment", 0).unwrap(),
            (
                "Waiting for deployment spec update to be observed...\n".into(),
                false
            )
        );
        let d = deployment(
            1,
            json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 1}),
        );
        assert_eq!(
            status(&d, "Deployment", 0).unwrap().0,
            "Waiting for deployment \"web\" rollout to finish: 1 of 3 updated replicas are available...\n"
        );
        let d = deployment(
            1,
            json!({"observedGeneration": 1, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(
            status(&d, "Deployment", 0).unwrap().0,
            "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...\n"
        );
        let d = deployment(
            1,
            json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(
            status(&d, "Deployment", 0).unwrap(),
            ("deployment \"web\" successfully rolled out\n".into(), true)
        );
        let d = deployment(
            1,
            json!({"observedGeneration": 1, "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]}),
        );
        assert_eq!(
            status(&d, "Deployment", 0).unwrap_err(),
            "deployment \"web\" exceeded its progress deadline"
        );
    }
}
