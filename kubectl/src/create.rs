//! `kubectl create -f`: every object of the files, in order. A bad document or a refused
//! object is reported and the rest are still created; the exit code says whether all
//! went well.

use clap::Args;
use minik8s_api::resource::ResourceInfo;
use minik8s_client::{DynamicApi, FieldValidation, PostParams};

use crate::error::{Error, Result};
use crate::manifests::{self, SourcedObject};
use crate::output::{self, Format};
use crate::resources::kind_prefix;
use crate::session::{Io, Session};

/// The `-f` flags shared by create, apply and delete.
#[derive(Args, Debug, Default, Clone)]
pub struct FileFlags {
    /// A file, a directory of .yaml/.yml/.json files, or - for standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filenames: Vec<String>,

    /// Also read the subdirectories of directories given with -f.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// The flags of the verbs that write the objects of files: create and apply.
#[derive(Args, Debug, Default)]
pub struct WriteArgs {
    #[command(flatten)]
    pub files: FileFlags,

    /// Output format: name, json or yaml (default: `kind/name created|configured|unchanged`).
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,

    /// How the server treats unknown fields: strict (default), warn or ignore.
    #[arg(long, default_value = "strict", value_name = "MODE")]
    pub validate: String,
}

/// `create -f FILE`, or `create KIND NAME` with the flags of that kind.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CreateArgs {
    #[command(subcommand)]
    pub kind: Option<crate::create_workloads::CreateKind>,

    #[command(flatten)]
    pub write: WriteArgs,

    /// Words that name no kind kubectl can create (an error, as kubectl's).
    #[arg(hide = true, value_name = "ARGS")]
    pub unexpected: Vec<String>,
}

pub async fn run(args: CreateArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    if let Some(kind) = args.kind {
        return crate::create_workloads::run(kind, session, io).await;
    }
    if !args.unexpected.is_empty() {
        return Err(Error::usage(
            "create",
            format!("Unexpected args: [{}]", args.unexpected.join(" ")),
        ));
    }
    let args = args.write;
    for_each_object(
        &args,
        "create",
        session,
        io,
        async |object, params, format, session, io| {
            let (resource, created) = create_one(object, params, session).await?;
            report(&created, resource, "created", format, io)
        },
    )
    .await
}

/// Reads the `-f` objects and gives each to `write`, in order. A bad document or a
/// refused object is reported and the rest are still written; the result says whether
/// all went well.
pub(crate) async fn for_each_object(
    args: &WriteArgs,
    verb: &str,
    session: &mut Session,
    io: &mut Io<'_>,
    mut write: impl AsyncFnMut(
        &SourcedObject,
        &PostParams,
        Option<Format>,
        &mut Session,
        &mut Io<'_>,
    ) -> Result<()>,
) -> Result<()> {
    if args.files.filenames.is_empty() {
        return Err(Error::msg("must specify one of -f and -k"));
    }
    let format = parse_output(args.output.as_deref())?;
    let params = post_params(&args.validate)?;
    let items = manifests::read_all(&args.files.filenames, args.files.recursive, io.stdin);
    if items.is_empty() {
        return Err(Error::msg(format!("no objects passed to {verb}")));
    }
    let mut errors = Vec::new();
    for item in items {
        let written = match item {
            Ok(object) => write(&object, &params, format, session, io).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            errors.push(e);
        }
    }
    Error::collect(errors)
}

async fn create_one(
    object: &SourcedObject,
    params: &PostParams,
    session: &mut Session,
) -> Result<(&'static ResourceInfo, serde_json::Value)> {
    let resource = object.resource()?;
    let api = api_for(object, resource, session)?;
    let created = api
        .create_with(&object.manifest.value, params)
        .await
        .map_err(|error| Error::FromSource {
            action: "creating",
            source_name: object.source.clone(),
            error,
        })?;
    Ok((resource, created))
}

/// `-o`: only the formats that make sense for written objects.
pub(crate) fn parse_output(output: Option<&str>) -> Result<Option<Format>> {
    match output {
        None | Some("") => Ok(None),
        Some(o) => match Format::parse(Some(o))? {
            f @ (Format::Name | Format::Json | Format::Yaml) => Ok(Some(f)),
            _ => Err(Error::msg(format!(
                "unable to match a printer suitable for the output format {o:?}, allowed formats are: json,name,yaml"
            ))),
        },
    }
}

/// kubectl's `--validate`: strict unless told otherwise.
pub(crate) fn post_params(validate: &str) -> Result<PostParams> {
    let field_validation = match validate.to_ascii_lowercase().as_str() {
        "strict" | "true" => FieldValidation::Strict,
        "warn" => FieldValidation::Warn,
        "ignore" | "false" => FieldValidation::Ignore,
        other => {
            return Err(Error::msg(format!(
                "invalid - validate option {other:?}; must be one of: strict (or true), warn, ignore (or false)"
            )));
        }
    };
    Ok(PostParams {
        field_validation: Some(field_validation),
        ..PostParams::default()
    })
}

/// `pod/web created`, or the object in the `-o` format.
pub(crate) fn report(
    object: &serde_json::Value,
    resource: &ResourceInfo,
    operation: &str,
    format: Option<Format>,
    io: &mut Io<'_>,
) -> Result<()> {
    match format {
        None => writeln!(
            io.out,
            "{}/{} {operation}",
            kind_prefix(resource),
            object["metadata"]["name"].as_str().unwrap_or_default()
        )?,
        Some(Format::Name) => writeln!(io.out, "{}", output::name_of(object, resource))?,
        Some(f) => io.out.write_all(
            output::render(&output::with_type(object.clone(), resource), f).as_bytes(),
        )?,
    }
    Ok(())
}

/// The API for an object read from a file: in its own namespace, which must agree with
/// `-n` when both are given, else in the session's.
pub(crate) fn api_for(
    object: &SourcedObject,
    resource: &'static ResourceInfo,
    session: &mut Session,
) -> Result<DynamicApi> {
    let client = session.client()?;
    if !resource.namespaced {
        return Ok(DynamicApi::new(client, resource, None));
    }
    let own = object.manifest.namespace().filter(|ns| !ns.is_empty());
    let namespace = match (own, session.explicit_namespace()) {
        (Some(own), Some(flag)) if own != flag => {
            return Err(Error::msg(format!(
                "the namespace from the provided object {own:?} does not match the namespace {flag:?}. You must pass '--namespace={own}' to perform this operation."
            )));
        }
        (Some(own), _) => own.to_string(),
        (None, _) => session.namespace()?,
    };
    Ok(DynamicApi::new(client, resource, Some(namespace)))
}
