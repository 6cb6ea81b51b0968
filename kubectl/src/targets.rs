//! The objects a workload verb acts on (`scale`, `set image`, `rollout`, `wait`), found
//! as kubectl's resource builder finds them: `TYPE NAME...`, `TYPE/NAME...`, a bare
//! `TYPE` (every object of it in the namespace, where the verb allows), or `-f FILE`.
//! Each object is read from the server; a missing one is an error of its own, so that
//! the verb can act on the others first, as kubectl's `ContinueOnError` does.

use minik8s_api::resource::{self, ResourceInfo};
use minik8s_client::{DynamicApi, ListParams};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::output::with_type;
use crate::session::Session;

/// One object found, as the server has it.
#[derive(Debug, Clone)]
pub struct Target {
    pub resource: &'static ResourceInfo,
    pub namespace: String,
    pub name: String,
    pub object: Value,
}

impl Target {
    pub fn api(&self, session: &mut Session) -> Result<DynamicApi> {
        Ok(DynamicApi::new(
            session.client()?,
            self.resource,
            Some(self.namespace.clone()),
        ))
    }

    /// `deployment.apps/web`.
    pub fn kind_name(&self) -> String {
        crate::output::name_of(&self.object, self.resource)
    }

    /// `deployments.apps "web"`, as kubectl names an object in its errors.
    pub fn quoted(&self) -> String {
        format!("{} {:?}", resource_group(self.resource), self.name)
    }
}

/// `deployments.apps`, or `pods` in the core group.
pub fn resource_group(r: &ResourceInfo) -> String {
    if r.group.is_empty() {
        r.plural.to_string()
    } else {
        format!("{}.{}", r.plural, r.group)
    }
}

/// What the builder found: the objects, and an error for each that could not be read.
#[derive(Debug, Default)]
pub struct Found {
    pub targets: Vec<Target>,
    pub errors: Vec<Error>,
}

/// How a verb lets its arguments be given.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    /// A bare `TYPE` means every object of it (rollout); otherwise it needs `--all`.
    pub type_alone_lists: bool,
    /// `--all` was given.
    pub all: bool,
    /// `-l`: the objects of the types with these labels.
    pub selector: Option<&'a str>,
}

pub const USAGE: &str = "You must provide one or more resources by argument or filename.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'";

/// The resource a type names, with the builder's error.
pub fn lookup(name: &str) -> Result<&'static ResourceInfo> {
    resource::lookup(name)
        .ok_or_else(|| Error::msg(format!("the server doesn't have a resource type {name:?}")))
}

/// `(resource, names)` from the arguments; no names means every object.
pub fn parse(args: &[String]) -> Result<Vec<(&'static ResourceInfo, Vec<String>)>> {
    let mut out: Vec<(&'static ResourceInfo, Vec<String>)> = Vec::new();
    if args.iter().any(|a| a.contains('/')) {
        for arg in args {
            let Some((kind, name)) = arg.split_once('/') else {
                return Err(Error::msg(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'kubectl get resource/<resource_name>' instead of 'kubectl get resource resource/<resource_name>'",
                ));
            };
            if name.is_empty() {
                return Err(Error::msg(format!(
                    "arguments in resource/name form must have a single resource and name: {arg:?}"
                )));
            }
            let r = lookup(kind)?;
            match out.last_mut() {
                Some((last, names)) if *last == r => names.push(name.to_string()),
                _ => out.push((r, vec![name.to_string()])),
            }
        }
        return Ok(out);
    }
    let Some(first) = args.first() else {
        return Ok(out);
    };
    for kind in first.split(',').filter(|k| !k.is_empty()) {
        out.push((lookup(kind)?, args[1..].to_vec()));
    }
    Ok(out)
}

/// Reads the objects the arguments (or `-f` files) name.
pub async fn find(
    args: &[String],
    files: &[String],
    rules: Rules<'_>,
    session: &mut Session,
    stdin: &mut dyn std::io::Read,
) -> Result<Found> {
    let mut wanted: Vec<(&'static ResourceInfo, Option<String>, Vec<String>)> = Vec::new();
    if !files.is_empty() {
        for item in crate::manifests::read_all(files, false, stdin) {
            let object = item?;
            let r = object.resource()?;
            let name = object
                .manifest
                .value
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let ns = object
                .manifest
                .namespace()
                .filter(|n| !n.is_empty())
                .map(str::to_string);
            wanted.push((r, ns, vec![name]));
        }
    }
    let parsed = parse(args)?;
    if parsed.is_empty() && wanted.is_empty() {
        return Err(Error::msg(USAGE));
    }
    let selector = rules.selector.filter(|s| !s.is_empty());
    if selector.is_some() && parsed.iter().any(|(_, names)| !names.is_empty()) {
        return Err(Error::msg(
            "selectors and the all flag cannot be used when passing resource/name arguments",
        ));
    }
    if parsed.iter().any(|(_, names)| names.is_empty())
        && !rules.type_alone_lists
        && !rules.all
        && selector.is_none()
    {
        return Err(Error::msg(
            "resource(s) were provided, but no name was specified",
        ));
    }
    for (r, names) in parsed {
        wanted.push((r, None, names));
    }
    let client = session.client()?;
    let default_ns = session.namespace()?;
    let mut found = Found::default();
    for (r, ns, names) in wanted {
        let namespace = ns.unwrap_or_else(|| default_ns.clone());
        let api = DynamicApi::new(client.clone(), r, Some(namespace.clone()));
        if names.is_empty() {
            let params = match selector {
                Some(s) => ListParams::default().labels(s),
                None => ListParams::default(),
            };
            let list = api.list_all(&params).await?;
            for item in list.items {
                let name = item["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                found.targets.push(Target {
                    resource: r,
                    namespace: namespace.clone(),
                    name,
                    object: with_type(item, r),
                });
            }
            continue;
        }
        for name in names {
            match api.get(&name).await {
                Ok(object) => found.targets.push(Target {
                    resource: r,
                    namespace: namespace.clone(),
                    name,
                    object: with_type(object, r),
                }),
                Err(e) => found.errors.push(e.into()),
            }
        }
    }
    Ok(found)
}

/// Go's text of several errors: `[a, b]`, or the one error's message.
pub fn aggregate_text(errors: &[Error]) -> String {
    let texts: Vec<String> = errors.iter().map(go_text).collect();
    match texts.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// `err.Error()` in Go: the server's message for a server error.
pub fn go_text(e: &Error) -> String {
    match e.client_error() {
        Some(c) => crate::create_workloads::client_message(c),
        None => e.to_string(),
    }
}
