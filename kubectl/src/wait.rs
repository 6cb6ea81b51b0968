//! `kubectl wait --for=condition=X[=value] | --for=delete | --for=create |
//! --for=jsonpath=EXPR[=value] TYPE/NAME...`: each object watched (not polled) until the
//! condition holds or `--timeout` (30s) passes, with the real kubectl's messages.

use std::time::Duration;

use clap::Args;
use minik8s_client::WatchEvent;
use serde_json::Value;

use crate::create_workloads::{DryRun, parse_format, print_object};
use crate::error::{Error, Result};
use crate::session::{Io, Session, parse_duration};
use crate::targets::{self, Rules, Target};
use crate::watch_one::{self, Until};

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// TYPE NAME..., or TYPE/NAME...
    #[arg(value_name = "RESOURCE")]
    pub resources: Vec<String>,

    /// delete, create, condition=NAME[=VALUE] or jsonpath=EXPR[=VALUE].
    #[arg(long = "for", value_name = "CONDITION", default_value = "")]
    pub condition: String,

    /// How long to wait for all the objects (0: look once; negative: a week).
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub timeout: String,

    /// Every object of the given types in the namespace.
    #[arg(long)]
    pub all: bool,

    /// The objects of the given types with these labels.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Files naming the objects.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filenames: Vec<String>,

    /// Output format: json, yaml or name.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
}

/// What `--for` asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    Delete,
    Create,
    /// A `status.conditions` entry's status, compared without case.
    Status {
        name: String,
        value: String,
    },
    /// The value at a JSONPath; `None` waits for the field to exist.
    JsonPath {
        path: Vec<Step>,
        value: Option<String>,
    },
}

/// One step of a simple JSONPath: a field or a list index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Field(String),
    Index(usize),
}

impl Condition {
    pub fn parse(text: &str) -> Result<Condition> {
        let lower = text.to_lowercase();
        if lower == "delete" {
            return Ok(Condition::Delete);
        }
        if lower == "create" {
            return Ok(Condition::Create);
        }
        if let Some(rest) = text.strip_prefix("condition=") {
            let (name, value) = match rest.split_once('=') {
                Some((n, v)) => (n, v),
                None => (rest, "true"),
            };
            return Ok(Condition::Status {
                name: name.to_string(),
                value: value.to_string(),
            });
        }
        if let Some(rest) = text.strip_prefix("jsonpath=") {
            let (expr, value) = match rest.find('}') {
                Some(end) => match rest[end..].split_once('=') {
                    Some((_, v)) => (&rest[..end + 1], Some(v)),
                    None => (rest, None),
                },
                None => match rest.split_once('=') {
                    Some((e, v)) => (e, Some(v)),
                    None => (rest, None),
                },
            };
            let path = parse_json_path(expr)
                .ok_or_else(|| Error::msg(format!("unrecognized condition: {text:?}")))?;
            if value.is_some_and(str::is_empty) {
                return Err(Error::msg(
                    "jsonpath wait has to have a value after equal sign",
                ));
            }
            return Ok(Condition::JsonPath {
                path,
                value: value.map(str::to_string),
            });
        }
        Err(Error::msg(format!("unrecognized condition: {text:?}")))
    }

    /// Whether the object meets the condition (creation and deletion are told by events).
    pub fn met(&self, object: &Value) -> bool {
        match self {
            Condition::Delete => false,
            Condition::Create => true,
            Condition::Status { name, value } => {
                let generation = object["metadata"]["generation"].as_i64();
                for c in object["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if !c["type"]
                        .as_str()
                        .is_some_and(|t| t.eq_ignore_ascii_case(name))
                    {
                        continue;
                    }
                    let Some(status) = c["status"].as_str() else {
                        continue;
                    };
                    if let Some(generation) = generation {
                        let observed = c["observedGeneration"]
                            .as_i64()
                            .or_else(|| object["status"]["observedGeneration"].as_i64());
                        if observed.is_some_and(|o| o < generation) {
                            return false;
                        }
                    }
                    return status.eq_ignore_ascii_case(value);
                }
                false
            }
            Condition::JsonPath { path, value } => {
                let mut current = object;
                for step in path {
                    current = match step {
                        Step::Field(f) => &current[f.as_str()],
                        Step::Index(i) => &current[*i],
                    };
                }
                match (value, current) {
                    (_, Value::Null) => false,
                    (None, _) => true,
                    (Some(want), Value::String(s)) => s == want,
                    (Some(want), other) => &other.to_string() == want,
                }
            }
        }
    }
}

/// `{.status.conditions[0].type}` or `.status.phase`.
fn parse_json_path(expr: &str) -> Option<Vec<Step>> {
    let expr = expr.trim();
    let expr = expr
        .strip_prefix('{')
        .and_then(|e| e.strip_suffix('}'))
        .unwrap_or(expr);
    let expr = expr.strip_prefix('.')?;
    let mut steps = Vec::new();
    for part in expr.split('.') {
        let (field, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !field.is_empty() {
            steps.push(Step::Field(field.to_string()));
        }
        while let Some(after) = rest.strip_prefix('[') {
            let (index, tail) = after.split_once(']')?;
            steps.push(Step::Index(index.parse().ok()?));
            rest = tail;
        }
        if !rest.is_empty() || (field.is_empty() && part.is_empty()) {
            return None;
        }
    }
    Some(steps)
}

pub async fn run(args: WaitArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    let timeout_text = args.timeout.trim();
    let timeout = if let Some(rest) = timeout_text.strip_prefix('-') {
        parse_duration(rest).map(|_| Duration::from_secs(7 * 24 * 3600))
    } else {
        parse_duration(timeout_text)
    }
    .ok_or_else(|| {
        Error::Plain(format!(
            "error: invalid argument {:?} for \"--timeout\" flag: time: invalid duration {:?}\nSee 'kubectl wait --help' for usage.",
            args.timeout, args.timeout
        ))
    })?;
    let condition = Condition::parse(&args.condition)?;
    let format = parse_format(args.output.as_deref())?;
    let rules = Rules {
        type_alone_lists: false,
        all: args.all,
        selector: args.selector.as_deref(),
    };
    let found = targets::find(&args.resources, &args.filenames, rules, session, io.stdin).await?;
    let mut errors = Vec::new();
    // Waiting for an object to go: one that is not there is done already.
    let missing_is_fine = condition == Condition::Delete;
    for e in found.errors {
        if !(missing_is_fine && e.is_not_found()) {
            errors.push(e);
        }
    }
    if !errors.is_empty() {
        return Error::collect(errors);
    }
    if found.targets.is_empty() && !missing_is_fine {
        return Err(Error::msg("no matching resources found"));
    }
    // One deadline for all the objects, as kubectl's one context.
    let deadline = std::time::Instant::now() + timeout;
    for target in &found.targets {
        if timeout.is_zero() {
            // Look once, with the object as it was read.
            if condition.met(&target.object) {
                print_object(
                    &target.object,
                    target.resource,
                    "condition met",
                    DryRun::None,
                    format,
                    io,
                )?;
            } else {
                errors.push(Error::msg(format!(
                    "condition not met for {}/{}",
                    target.resource.plural, target.name
                )));
            }
            continue;
        }
        match wait_one(target, &condition, deadline, session).await {
            Ok(Some(object)) => print_object(
                &object,
                target.resource,
                "condition met",
                DryRun::None,
                format,
                io,
            )?,
            Ok(None) => errors.push(Error::msg(format!(
                "timed out waiting for the condition on {}/{}",
                target.resource.plural, target.name
            ))),
            Err(e) => errors.push(e),
        }
    }
    Error::collect(errors)
}

/// The object once it meets the condition, or `None` after the timeout.
async fn wait_one(
    target: &Target,
    condition: &Condition,
    deadline: std::time::Instant,
    session: &mut Session,
) -> Result<Option<Value>> {
    let api = target.api(session)?;
    if std::time::Instant::now() >= deadline {
        return Ok(None);
    }
    let deadline = Some(deadline);
    let mut last = target.object.clone();
    let gone_is_done = *condition == Condition::Delete;
    let outcome = watch_one::until(&api, &target.name, deadline, gone_is_done, |event| {
        let done = match &event {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                last = crate::output::with_type(o.clone(), target.resource);
                condition.met(o)
            }
            WatchEvent::Deleted(_) => *condition == Condition::Delete,
            _ => false,
        };
        Ok(done)
    })
    .await?;
    match outcome {
        Until::Done => Ok(Some(last)),
        Until::TimedOut => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_parse_as_kubectl_reads_them() {
        assert_eq!(Condition::parse("delete").unwrap(), Condition::Delete);
        assert_eq!(
            Condition::parse("condition=Ready=false").unwrap(),
            Condition::Status {
                name: "Ready".into(),
                value: "false".into()
            }
        );
        assert_eq!(
            Condition::parse("jsonpath={.status.phase}=Running").unwrap(),
            Condition::JsonPath {
                path: vec![Step::Field("status".into()), Step::Field("phase".into())],
                value: Some("Running".into())
            }
        );
        assert_eq!(
            Condition::parse("bogus").unwrap_err().render(),
            "error: unrecognized condition: \"bogus\"\n"
        );
    }

    #[test]
    fn conditions_are_met_as_kubectl_checks_them() {
        let job = json!({"metadata": {"generation": 2},
            "status": {"observedGeneration": 2, "conditions": [{"type": "Complete", "status": "True"}],
                       "succeeded": 1, "items": [{"a": "b"}]}});
        assert!(Condition::parse("condition=complete").unwrap().met(&job));
        assert!(
            !Condition::parse("condition=Complete=False")
                .unwrap()
                .met(&job)
        );
        assert!(
            Condition::parse("jsonpath={.status.succeeded}=1")
                .unwrap()
                .met(&job)
        );
        assert!(
            Condition::parse("jsonpath={.status.items[0].a}=b")
                .unwrap()
                .met(&job)
        );
        let stale = json!({"metadata": {"generation": 3}, "status": job["status"].clone()});
        assert!(!Condition::parse("condition=Complete").unwrap().met(&stale));
    }
}
