//! `kubectl get`: lists and single objects, printed from the server's `Table` (so the
//! columns and values are the server's, as for the real kubectl), or as JSON, YAML or
//! names; `-w` keeps printing changes.

use clap::Args;
use futures::StreamExt;
use minik8s_api::resource::ResourceInfo;
use minik8s_api::{Table, WatchEvent};
use minik8s_client::params::Query;
use minik8s_client::{ACCEPT_TABLE, Client, DynamicApi, ListParams};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::output::{self, Format};
use crate::resources::{self, Selection};
use crate::session::{Io, Session};
use crate::table::{TableOptions, TablePrinter};

#[derive(Args, Debug, Default)]
pub struct GetArgs {
    /// TYPE[,TYPE...] [NAME...], or TYPE/NAME...
    #[arg(value_name = "RESOURCE")]
    pub resources: Vec<String>,

    /// Output format: wide, yaml, json or name.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,

    /// Label selector to filter on (`app=web`, `tier in (fe,be)`, `!legacy`).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Field selector to filter on (`status.phase=Running`, `spec.nodeName=node-1`).
    #[arg(long, value_name = "SELECTOR")]
    pub field_selector: Option<String>,

    /// List the requested objects across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// After listing, watch for changes and print them as they happen.
    #[arg(short = 'w', long)]
    pub watch: bool,

    /// Watch for changes without listing first.
    #[arg(long)]
    pub watch_only: bool,

    /// Show all labels as the last column.
    #[arg(long)]
    pub show_labels: bool,

    /// Do not print headers.
    #[arg(long)]
    pub no_headers: bool,

    /// Labels to show as columns (`-L app,tier`).
    #[arg(short = 'L', long, value_name = "KEY", value_delimiter = ',')]
    pub label_columns: Vec<String>,

    /// Objects per list request; 0 lists everything in one request.
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub chunk_size: u32,

    /// Print nothing, and succeed, for objects that do not exist.
    #[arg(long)]
    pub ignore_not_found: bool,
}

const NO_TYPE: &str = "You must specify the type of resource to get. Use \"kubectl api-resources\" for a complete list of supported resources.\n\nerror: Required resource not specified.\nUse \"kubectl explain <resource>\" for a detailed description of that resource (e.g. kubectl explain pods).\nSee 'kubectl get -h' for help and examples";

/// Where a `get` looks.
struct Scope {
    client: Client,
    /// `None`: all namespaces.
    namespace: Option<String>,
}

impl Scope {
    fn api(&self, resource: &'static ResourceInfo) -> DynamicApi {
        DynamicApi::new(self.client.clone(), resource, self.namespace.clone())
    }
}

pub async fn run(args: GetArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    let format = Format::parse(args.output.as_deref())?;
    if args.resources.is_empty() {
        return Err(Error::Plain(NO_TYPE.into()));
    }
    let selections =
        resources::parse_with_categories(&args.resources, "get", || session.client()).await?;
    if args.all_namespaces && selections.iter().any(|s| !s.names.is_empty()) {
        return Err(Error::msg(
            "a resource cannot be retrieved by name across all namespaces",
        ));
    }
    let scope = Scope {
        client: session.client()?,
        namespace: if args.all_namespaces {
            None
        } else {
            Some(session.namespace()?)
        },
    };
    if args.watch || args.watch_only {
        let [selection] = selections.as_slice() else {
            return Err(Error::msg(
                "you may only specify a single resource type with --watch",
            ));
        };
        return watch(&args, format, &scope, selection, io).await;
    }

    let mut errors = Vec::new();
    let mut found = 0usize;
    match format {
        Format::Table | Format::Wide => {
            let several = selections.len() > 1;
            let mut printed = false;
            for selection in &selections {
                let table = fetch_table(&args, &scope, selection, &mut errors).await;
                found += table.rows.len();
                let mut printer =
                    TablePrinter::new(table_options(&args, format, &scope, selection, several));
                let text = printer.print(&table);
                if !text.is_empty() {
                    // kubectl separates the tables by a blank line, unless headerless.
                    if printed && !args.no_headers {
                        io.out.write_all(b"\n")?;
                    }
                    io.out.write_all(text.as_bytes())?;
                    printed = true;
                }
            }
        }
        Format::Name => {
            for selection in &selections {
                for object in fetch_objects(&args, &scope, selection, &mut errors).await {
                    let line = output::name_of(&object, selection.resource);
                    writeln!(io.out, "{line}")?;
                }
            }
        }
        Format::Json | Format::Yaml => {
            let single = selections.len() == 1 && selections[0].names.len() == 1;
            let mut items = Vec::new();
            for selection in &selections {
                for object in fetch_objects(&args, &scope, selection, &mut errors).await {
                    items.push(output::with_type(object, selection.resource));
                }
            }
            if single {
                if let Some(object) = items.pop() {
                    io.out
                        .write_all(output::render(&object, format).as_bytes())?;
                }
            } else {
                io.out
                    .write_all(output::render(&output::list_of(items), format).as_bytes())?;
            }
        }
    }
    // kubectl notes an empty table; an empty list of names or objects says it itself.
    if format.is_table()
        && found == 0
        && errors.is_empty()
        && selections.iter().all(|s| s.names.is_empty())
    {
        no_resources_found(&scope, &selections, io)?;
    }
    Error::collect(errors)
}

/// kubectl's note (on stderr) that a list came back empty.
fn no_resources_found(scope: &Scope, selections: &[Selection], io: &mut Io<'_>) -> Result<()> {
    match &scope.namespace {
        Some(ns) if selections.iter().all(|s| s.resource.namespaced) => {
            writeln!(io.err, "No resources found in {ns} namespace.")?
        }
        _ => writeln!(io.err, "No resources found")?,
    }
    Ok(())
}

fn table_options(
    args: &GetArgs,
    format: Format,
    scope: &Scope,
    selection: &Selection,
    several: bool,
) -> TableOptions {
    TableOptions {
        wide: format == Format::Wide,
        no_headers: args.no_headers,
        with_namespace: scope.namespace.is_none() && selection.resource.namespaced,
        kind_prefix: several.then(|| resources::kind_prefix(selection.resource)),
        show_labels: args.show_labels,
        label_columns: args.label_columns.clone(),
    }
}

fn list_params(args: &GetArgs) -> ListParams {
    ListParams {
        label_selector: args.selector.clone().filter(|s| !s.is_empty()),
        field_selector: args.field_selector.clone().filter(|s| !s.is_empty()),
        limit: (args.chunk_size > 0).then_some(args.chunk_size),
        ..ListParams::default()
    }
}

/// Records a failed lookup, unless it is a missing object and those are ignored.
fn note(error: minik8s_client::Error, args: &GetArgs, errors: &mut Vec<Error>) {
    if !(args.ignore_not_found && error.is_not_found()) {
        errors.push(Error::Client(error));
    }
}

/// Fetches a server-side table.
pub async fn get_table(client: &Client, path_and_query: &str) -> minik8s_client::Result<Table> {
    let raw = client.get_with_accept(path_and_query, ACCEPT_TABLE).await?;
    raw.json::<Table>()
}

/// The table of the named objects, or of the whole (filtered) list, page by page.
async fn fetch_table(
    args: &GetArgs,
    scope: &Scope,
    selection: &Selection,
    errors: &mut Vec<Error>,
) -> Table {
    let api = scope.api(selection.resource);
    let mut all = Table::default();
    if !selection.names.is_empty() {
        for name in &selection.names {
            match get_table(&scope.client, &api.object_path(name)).await {
                Ok(t) => merge(&mut all, t),
                Err(e) => note(e, args, errors),
            }
        }
        return all;
    }
    let params = list_params(args);
    let mut token: Option<String> = None;
    loop {
        let mut query = Query::new();
        query.push_opt("labelSelector", params.label_selector.as_deref());
        query.push_opt("fieldSelector", params.field_selector.as_deref());
        query.push_opt("limit", params.limit);
        query.push_opt("continue", token.as_deref());
        match get_table(&scope.client, &query.append_to(&api.collection_path())).await {
            Ok(page) => {
                token = page.metadata.continue_.clone().filter(|t| !t.is_empty());
                merge(&mut all, page);
            }
            Err(e) => {
                note(e, args, errors);
                return all;
            }
        }
        if token.is_none() {
            return all;
        }
    }
}

fn merge(all: &mut Table, mut part: Table) {
    if all.column_definitions.is_empty() {
        all.column_definitions = std::mem::take(&mut part.column_definitions);
        all.metadata = part.metadata.clone();
    }
    all.rows.append(&mut part.rows);
}

/// The named objects, or the whole (filtered) list, as JSON.
async fn fetch_objects(
    args: &GetArgs,
    scope: &Scope,
    selection: &Selection,
    errors: &mut Vec<Error>,
) -> Vec<Value> {
    let api = scope.api(selection.resource);
    if selection.names.is_empty() {
        return match api.list_all(&list_params(args)).await {
            Ok(list) => list.items,
            Err(e) => {
                note(e, args, errors);
                Vec::new()
            }
        };
    }
    let mut objects = Vec::new();
    for name in &selection.names {
        match api.get(name).await {
            Ok(object) => objects.push(object),
            Err(e) => note(e, args, errors),
        }
    }
    objects
}

/// `-w`: the list (unless `--watch-only`), then every change as it arrives, until the
/// server ends the watch.
async fn watch(
    args: &GetArgs,
    format: Format,
    scope: &Scope,
    selection: &Selection,
    io: &mut Io<'_>,
) -> Result<()> {
    let api = scope.api(selection.resource);
    let mut params = ListParams {
        limit: None,
        ..list_params(args)
    };
    if let [name] = selection.names.as_slice() {
        let by_name = format!("metadata.name={name}");
        params.field_selector = Some(match &params.field_selector {
            Some(f) => format!("{f},{by_name}"),
            None => by_name,
        });
    } else if selection.names.len() > 1 {
        return Err(Error::msg(
            "watch is only supported on individual resources and resource collections, but 2 or more resources were found",
        ));
    }
    let mut printer = TablePrinter::new(table_options(args, format, scope, selection, false));

    let mut errors = Vec::new();
    let initial = fetch_table(args, scope, selection, &mut errors).await;
    Error::collect(errors)?;
    let mut resource_version = initial
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    if !args.watch_only {
        if format.is_table() {
            if initial.rows.is_empty() {
                no_resources_found(scope, std::slice::from_ref(selection), io)?;
            }
            io.out.write_all(printer.print(&initial).as_bytes())?;
        } else {
            let objects = fetch_objects(args, scope, selection, &mut Vec::new()).await;
            for object in objects {
                print_object(&object, selection.resource, format, io)?;
            }
        }
        io.out.flush()?;
    }

    loop {
        let mut events = if format.is_table() {
            api.watch_table(&params, &resource_version).await?
        } else {
            api.watch(&params, &resource_version).await?
        };
        while let Some(event) = events.next().await {
            let event = event?;
            let object = match &event {
                WatchEvent::Error(status) => {
                    return Err(Error::Client(minik8s_client::Error::Api(Box::new(
                        status.clone(),
                    ))));
                }
                WatchEvent::Bookmark(o) => {
                    if let Some(rv) = o["metadata"]["resourceVersion"].as_str() {
                        resource_version = rv.to_string();
                    }
                    continue;
                }
                WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => o,
            };
            if !format.is_table() {
                if let Some(rv) = object["metadata"]["resourceVersion"].as_str() {
                    resource_version = rv.to_string();
                }
                print_object(object, selection.resource, format, io)?;
                io.out.flush()?;
                continue;
            }
            // A one-row table the server printed when the change happened (its columns
            // only in the first): the row stays right even if the object has changed
            // or gone since.
            let row: Table = serde_json::from_value(object.clone())
                .map_err(|e| Error::msg(format!("decoding a watch event's table: {e}")))?;
            if let Some(rv) = row
                .rows
                .first()
                .and_then(|r| r.object.as_ref())
                .and_then(|o| o["metadata"]["resourceVersion"].as_str())
            {
                resource_version = rv.to_string();
            }
            io.out.write_all(printer.print(&row).as_bytes())?;
            io.out.flush()?;
        }
        if resource_version.is_empty() {
            return Ok(());
        }
    }
}

fn print_object(
    object: &Value,
    resource: &'static ResourceInfo,
    format: Format,
    io: &mut Io<'_>,
) -> Result<()> {
    match format {
        Format::Name => writeln!(io.out, "{}", output::name_of(object, resource))?,
        Format::Yaml => {
            let text = output::render(&output::with_type(object.clone(), resource), format);
            io.out.write_all(text.as_bytes())?;
            io.out.write_all(b"---\n")?;
        }
        _ => {
            let text = output::render(&output::with_type(object.clone(), resource), format);
            io.out.write_all(text.as_bytes())?;
        }
    }
    Ok(())
}
