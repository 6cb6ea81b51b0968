//! `kubectl create deployment|job|configmap|secret generic NAME`: the objects the real
//! kubectl builds from flags (`pkg/cmd/create/create_deployment.go`, `create_job.go`,
//! `create_configmap.go`, `create_secret.go`), sent or, with `--dry-run=client`, printed.
//!
//! The data of config maps and secrets is read in [`crate::create_data`].
//!
//! Client dry-run JSON is the typed Go object's: fields in struct order, maps sorted, and
//! `creationTimestamp: null`, `resources: {}`, `status: {}` as Go's encoder leaves them.

use clap::{Args, Subcommand};
use minik8s_api::resource::{CONFIG_MAPS, DEPLOYMENTS, JOBS, ResourceInfo, SECRETS};
use minik8s_client::DynamicApi;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::output::{self, Format};
use crate::resources::kind_prefix;
use crate::session::{Io, Session};

#[derive(Subcommand, Debug)]
pub enum CreateKind {
    /// Create a deployment with the specified name.
    #[command(visible_alias = "deploy")]
    Deployment(DeploymentArgs),
    /// Create a job with the specified name.
    Job(JobArgs),
    /// Create a config map from a local file, directory or literal value.
    #[command(visible_alias = "cm")]
    Configmap(ConfigMapArgs),
    /// Create a secret using a specified subcommand.
    Secret(SecretArgs),
}

/// The flags every `create KIND` shares.
#[derive(Args, Debug, Default, Clone)]
pub struct GeneratorFlags {
    /// Output format: json, yaml or name.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,

    /// none (default), client (print the object without sending it) or server.
    #[arg(long, value_name = "STRATEGY", num_args = 0..=1, default_missing_value = "unchanged")]
    pub dry_run: Option<String>,

    /// How the server treats unknown fields: strict (default), warn or ignore.
    #[arg(long, default_value = "strict", value_name = "MODE")]
    pub validate: String,

    /// Name of the manager used to track field ownership.
    #[arg(long, default_value = "kubectl-create", value_name = "NAME")]
    pub field_manager: String,
}

#[derive(Args, Debug)]
pub struct DeploymentArgs {
    pub names: Vec<String>,

    /// Image names to run; one container per image.
    #[arg(long = "image", value_name = "IMAGE")]
    pub images: Vec<String>,

    /// Number of replicas to create.
    #[arg(short = 'r', long, default_value = "1", value_name = "N")]
    pub replicas: String,

    /// The containerPort the first container exposes.
    #[arg(long, default_value = "-1", value_name = "PORT")]
    pub port: String,

    #[command(flatten)]
    pub flags: GeneratorFlags,

    /// The command the containers run (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct JobArgs {
    pub names: Vec<String>,

    /// Image name to run.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,

    /// The resource to create a Job from (only cronjob is supported).
    #[arg(long, value_name = "TYPE/NAME")]
    pub from: Option<String>,

    #[command(flatten)]
    pub flags: GeneratorFlags,

    /// The command the container runs (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The data sources of config maps and secrets.
#[derive(Args, Debug, Default)]
pub struct DataSources {
    /// A file (key: its name, or `key=path`) or a directory (each regular file in it).
    #[arg(long = "from-file", value_name = "[KEY=]SOURCE")]
    pub files: Vec<String>,

    /// A `key=value` pair.
    #[arg(long = "from-literal", value_name = "KEY=VALUE")]
    pub literals: Vec<String>,

    /// A file of `KEY=value` lines.
    #[arg(long = "from-env-file", value_name = "PATH")]
    pub env_files: Vec<String>,

    /// Append a hash of the contents to the name.
    #[arg(long)]
    pub append_hash: bool,
}

#[derive(Args, Debug)]
pub struct ConfigMapArgs {
    pub names: Vec<String>,

    #[command(flatten)]
    pub sources: DataSources,

    #[command(flatten)]
    pub flags: GeneratorFlags,
}

#[derive(Args, Debug)]
pub struct SecretArgs {
    #[command(subcommand)]
    pub kind: SecretKind,
}

#[derive(Subcommand, Debug)]
pub enum SecretKind {
    /// Create a secret from a local file, directory, or literal value.
    Generic(GenericSecretArgs),
}

#[derive(Args, Debug)]
pub struct GenericSecretArgs {
    pub names: Vec<String>,

    #[command(flatten)]
    pub sources: DataSources,

    /// The type of secret to create.
    #[arg(long = "type", value_name = "TYPE")]
    pub secret_type: Option<String>,

    #[command(flatten)]
    pub flags: GeneratorFlags,
}

/// kubectl's `--dry-run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DryRun {
    None,
    Client,
    Server,
}

impl DryRun {
    /// kubectl's `GetDryRunStrategy`: none, client, server, a bare `--dry-run`, or a
    /// boolean (deprecated).
    pub fn parse(flag: Option<&str>) -> Result<DryRun> {
        match flag.unwrap_or("none") {
            "none" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(DryRun::None),
            "client" | "unchanged" | "1" | "t" | "T" | "true" | "TRUE" | "True" => {
                Ok(DryRun::Client)
            }
            "server" => Ok(DryRun::Server),
            other => Err(Error::msg(format!(
                "Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\"."
            ))),
        }
    }

    /// What kubectl adds after the operation: ` (dry run)` or ` (server dry run)`.
    pub fn suffix(self) -> &'static str {
        match self {
            DryRun::None => "",
            DryRun::Client => " (dry run)",
            DryRun::Server => " (server dry run)",
        }
    }
}

/// `-o` of the generators: json, yaml or name (kubectl also knows templates).
pub(crate) fn parse_format(output: Option<&str>) -> Result<Option<Format>> {
    match output.unwrap_or("") {
        "" => Ok(None),
        "json" => Ok(Some(Format::Json)),
        "yaml" => Ok(Some(Format::Yaml)),
        "name" => Ok(Some(Format::Name)),
        other => Err(Error::msg(format!(
            "unable to match a printer suitable for the output format {other:?}, allowed formats are: go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,template,templatefile,yaml"
        ))),
    }
}

/// cobra's flag error for a number that does not parse.
fn parse_int(value: &str, flag: &str, command: &str) -> Result<i64> {
    value.parse().map_err(|_| {
        let digits = value.trim_start_matches(['-', '+']);
        let reason = if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
            "value out of range"
        } else {
            "invalid syntax"
        };
        Error::Plain(format!(
            "error: invalid argument {value:?} for \"{flag}\" flag: strconv.ParseInt: parsing {value:?}: {reason}\nSee 'kubectl {command} --help' for usage."
        ))
    })
}

/// kubectl's `NameFromCommandArgs`.
fn one_name(names: &[String], command: &'static str) -> Result<String> {
    match names {
        [name] => Ok(name.clone()),
        _ => Err(Error::usage(
            command,
            format!("exactly one NAME is required, got {}", names.len()),
        )),
    }
}

pub async fn run(kind: CreateKind, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    match kind {
        CreateKind::Deployment(args) => {
            let replicas = parse_int(&args.replicas, "-r, --replicas", "create deployment")?;
            let port = parse_int(&args.port, "--port", "create deployment")?;
            if args.images.is_empty() {
                return Err(Error::msg("required flag(s) \"image\" not set"));
            }
            let name = one_name(&args.names, "create deployment")?;
            let (dry_run, format) = prepare(&args.flags)?;
            if args.images.len() > 1 && !args.command.is_empty() {
                return Err(Error::msg(
                    "cannot specify multiple --image options and command",
                ));
            }
            let object = deployment(&name, &args.images, replicas, port, &args.command);
            let object = in_namespace(object, session);
            send(
                object,
                &DEPLOYMENTS,
                "deployment",
                &args.flags,
                dry_run,
                format,
                session,
                io,
            )
            .await
        }
        CreateKind::Job(args) => {
            let name = one_name(&args.names, "create job")?;
            let (dry_run, format) = prepare(&args.flags)?;
            let image = args.image.as_deref().filter(|i| !i.is_empty());
            let from = args.from.as_deref().filter(|f| !f.is_empty());
            if image.is_some() == from.is_some() {
                return Err(Error::msg("either --image or --from must be specified"));
            }
            if !args.command.is_empty() && from.is_some() {
                return Err(Error::msg("cannot specify --from and command"));
            }
            if let Some(from) = from {
                return Err(job_from(from, session).await);
            }
            let object = job(&name, image.unwrap_or_default(), &args.command);
            let object = in_namespace(object, session);
            send(
                object,
                &JOBS,
                "job",
                &args.flags,
                dry_run,
                format,
                session,
                io,
            )
            .await
        }
        CreateKind::Configmap(args) => {
            let name = one_name(&args.names, "create configmap")?;
            let (dry_run, format) = prepare(&args.flags)?;
            let object = crate::create_data::config_map(&name, &args.sources)?;
            let object = in_namespace(object, session);
            send(
                object,
                &CONFIG_MAPS,
                "configmap",
                &args.flags,
                dry_run,
                format,
                session,
                io,
            )
            .await
        }
        CreateKind::Secret(SecretArgs {
            kind: SecretKind::Generic(args),
        }) => {
            let name = one_name(&args.names, "create secret generic")?;
            let (dry_run, format) = prepare(&args.flags)?;
            let object =
                crate::create_data::secret(&name, &args.sources, args.secret_type.as_deref())?;
            let object = in_namespace(object, session);
            send(
                object,
                &SECRETS,
                "secret",
                &args.flags,
                dry_run,
                format,
                session,
                io,
            )
            .await
        }
    }
}

fn prepare(flags: &GeneratorFlags) -> Result<(DryRun, Option<Format>)> {
    let dry_run = DryRun::parse(flags.dry_run.as_deref())?;
    let format = parse_format(flags.output.as_deref())?;
    Ok((dry_run, format))
}

/// kubectl sets the namespace on the object only when `-n` was given.
fn in_namespace(mut object: Value, session: &Session) -> Value {
    if let Some(ns) = session.explicit_namespace() {
        object["metadata"]["namespace"] = json!(ns);
    }
    object
}

/// Creates (or prints) the object, as the generators' `Run` does.
#[allow(clippy::too_many_arguments)]
async fn send(
    object: Value,
    resource: &'static ResourceInfo,
    what: &str,
    flags: &GeneratorFlags,
    dry_run: DryRun,
    format: Option<Format>,
    session: &mut Session,
    io: &mut Io<'_>,
) -> Result<()> {
    let object = if dry_run == DryRun::Client {
        object
    } else {
        let mut params = crate::create::post_params(&flags.validate)?;
        params.dry_run = dry_run == DryRun::Server;
        params.field_manager = Some(flags.field_manager.clone());
        let namespace = session.namespace()?;
        let api = DynamicApi::new(session.client()?, resource, Some(namespace));
        api.create_with(&object, &params).await.map_err(|e| {
            // kubectl's own wording: the secret's message has no colon.
            let sep = if what == "secret" { " " } else { ": " };
            Error::msg(format!(
                "failed to create {what}{sep}{}",
                client_message(&e)
            ))
        })?
    };
    print_object(&object, resource, "created", dry_run, format, io)
}

/// The text Go's `err.Error()` gives for a client error: the server's message.
pub(crate) fn client_message(e: &minik8s_client::Error) -> String {
    match e.status().and_then(|s| s.message.as_deref()) {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => e.to_string(),
    }
}

/// `kind.group/name operation`, the name alone, or the object; client dry-run objects
/// print in Go's field order.
pub(crate) fn print_object(
    object: &Value,
    resource: &ResourceInfo,
    operation: &str,
    dry_run: DryRun,
    format: Option<Format>,
    io: &mut Io<'_>,
) -> Result<()> {
    match format {
        None => writeln!(
            io.out,
            "{}/{} {operation}{}",
            kind_prefix(resource),
            object["metadata"]["name"].as_str().unwrap_or_default(),
            dry_run.suffix()
        )?,
        Some(Format::Name) => writeln!(io.out, "{}", output::name_of(object, resource))?,
        Some(Format::Json) if dry_run == DryRun::Client => {
            io.out.write_all(go_struct_json(object).as_bytes())?
        }
        Some(f) => io.out.write_all(
            output::render(&output::with_type(object.clone(), resource), f).as_bytes(),
        )?,
    }
    Ok(())
}

/// The container name `create deployment` derives from an image: the last path part
/// without tag or digest, with `_` and `.` made `-` and then a random suffix.
pub fn container_name(image: &str) -> String {
    let mut name = image.rsplit('/').next().unwrap_or(image);
    if let Some((before, _)) = name.split_once(':') {
        name = before;
    }
    if let Some((before, _)) = name.split_once('@') {
        name = before;
    }
    if name.contains(['_', '.']) {
        format!("{}-{}", name.replace(['_', '.'], "-"), random_suffix(5))
    } else {
        name.to_string()
    }
}

/// apimachinery's `rand.String`: characters that make no words.
fn random_suffix(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    let mut bits = hasher.finish();
    (0..n)
        .map(|_| {
            let c = ALPHABET[(bits % ALPHABET.len() as u64) as usize];
            bits /= ALPHABET.len() as u64;
            c as char
        })
        .collect()
}

/// The Deployment `create deployment` builds.
pub fn deployment(
    name: &str,
    images: &[String],
    replicas: i64,
    port: i64,
    command: &[String],
) -> Value {
    let labels = json!({"app": name});
    let mut containers: Vec<Value> = images
        .iter()
        .map(|image| {
            let mut c = json!({"name": container_name(image), "image": image, "resources": {}});
            if !command.is_empty() {
                c["command"] = json!(command);
            }
            c
        })
        .collect();
    if port >= 0
        && let Some(first) = containers.first_mut()
    {
        first["ports"] = json!([{"containerPort": port}]);
    }
    json!({
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": name, "creationTimestamp": null, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"creationTimestamp": null, "labels": labels},
                "spec": {"containers": containers}
            },
            "strategy": {}
        },
        "status": {}
    })
}

/// The Job `create job --image` builds: one container named after the job.
pub fn job(name: &str, image: &str, command: &[String]) -> Value {
    let mut container = json!({"name": name, "image": image, "resources": {}});
    if !command.is_empty() {
        container["command"] = json!(command);
    }
    json!({
        "kind": "Job",
        "apiVersion": "batch/v1",
        "metadata": {"name": name, "creationTimestamp": null},
        "spec": {"template": {
            "metadata": {"creationTimestamp": null},
            "spec": {"containers": [container], "restartPolicy": "Never"}
        }},
        "status": {}
    })
}

/// `--from=TYPE/NAME`: only cron jobs can be made into jobs, and this cluster serves none.
async fn job_from(from: &str, session: &mut Session) -> Error {
    let (kind, name) = match from.split_once('/') {
        Some((kind, name)) => (kind, Some(name)),
        None => (from, None),
    };
    let Some(resource) = minik8s_api::resource::lookup(kind) else {
        return Error::msg(format!("the server doesn't have a resource type {kind:?}"));
    };
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Error::msg(format!("unknown object type *v1.{}List", resource.kind));
    };
    let api = match (session.namespace(), session.client()) {
        (Ok(ns), Ok(client)) => DynamicApi::new(client, resource, Some(ns)),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    match api.get(name).await {
        Ok(_) => Error::msg(format!("unknown object type *v1.{}", resource.kind)),
        Err(e) => e.into(),
    }
}

/// Field order of the Go structs these commands print; keys not listed come after, sorted.
const GO_FIELD_ORDER: &[&str] = &[
    "kind",
    "apiVersion",
    "name",
    "namespace",
    "creationTimestamp",
    "labels",
    "annotations",
    "metadata",
    "replicas",
    "selector",
    "template",
    "strategy",
    "containers",
    "image",
    "command",
    "args",
    "ports",
    "containerPort",
    "resources",
    "restartPolicy",
    "immutable",
    "data",
    "binaryData",
    "type",
    "spec",
    "status",
];

/// Keys whose values are Go maps (sorted keys) rather than structs.
const GO_MAPS: &[&str] = &["labels", "annotations", "matchLabels", "data", "binaryData"];

/// Go's `json.MarshalIndent` of a typed object: struct fields in declaration order.
pub fn go_struct_json(value: &Value) -> String {
    let mut out = String::new();
    write_go(&mut out, value, 0, false);
    out.push('\n');
    out
}

fn write_go(out: &mut String, value: &Value, depth: usize, sorted: bool) {
    let indent = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"    ".repeat(depth));
    };
    match value {
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                write_go(out, item, depth + 1, false);
            }
            indent(out, depth);
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            if !sorted {
                let rank = |k: &str| {
                    GO_FIELD_ORDER
                        .iter()
                        .position(|f| *f == k)
                        .unwrap_or(GO_FIELD_ORDER.len())
                };
                keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
            }
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                out.push_str(output::to_json(&json!(key)).trim_end());
                out.push_str(": ");
                write_go(out, &map[key], depth + 1, GO_MAPS.contains(&key.as_str()));
            }
            indent(out, depth);
            out.push('}');
        }
        other => out.push_str(output::to_json(other).trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_come_from_the_image() {
        assert_eq!(container_name("nginx:1.25"), "nginx");
        assert_eq!(container_name("registry.io:5000/foo/nginx:1.25"), "nginx");
        assert_eq!(container_name("busybox@sha256:abc"), "busybox");
        let n = container_name("registry.io/foo/ng_inx@sha256:abc");
        assert!(n.starts_with("ng-inx-") && n.len() == 12, "{n}");
        let n = container_name("Busy.Box:1");
        assert!(n.starts_with("Busy-Box-") && n.len() == 14, "{n}");
    }

    #[test]
    fn dry_run_json_is_in_go_field_order() {
        let d = deployment("web", &["nginx".into()], 1, 80, &[]);
        let text = go_struct_json(&d);
        let kind = text.find("\"kind\"").unwrap();
        let api = text.find("\"apiVersion\"").unwrap();
        let replicas = text.find("\"replicas\"").unwrap();
        let strategy = text.find("\"strategy\"").unwrap();
        assert!(kind < api && replicas < strategy, "{text}");
        assert!(text.contains("\"creationTimestamp\": null"), "{text}");
    }
}
