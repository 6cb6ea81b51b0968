//! `kubectl describe`: a person-readable account of pods, nodes, services and
//! namespaces, with their events, laid out exactly as kubectl lays it out.

mod node;
mod pod;
mod service;
pub mod template;
mod writer;

use clap::{ArgAction, Args};
use minik8s_api::resource::{ENDPOINT_SLICES, NAMESPACES, NODES, PODS, ResourceInfo, SERVICES};
use minik8s_client::params::Query;
use minik8s_client::{Client, DynamicApi, ListParams, Method};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::resources::{self, Selection};
use crate::session::{Io, Session};

pub use pod::{describe_probe, qos_class};
pub use writer::human_duration;
use writer::{Writer, annotations_multiline, labels_multiline, s};

#[derive(Args, Debug, Default)]
pub struct DescribeArgs {
    /// TYPE [NAME_PREFIX...], or TYPE/NAME...
    #[arg(value_name = "RESOURCE")]
    pub resources: Vec<String>,

    /// Describe the objects matching this label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Describe the objects of all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Show the objects' events (the default).
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub show_events: bool,
}

const NO_TYPE: &str = "You must specify the type of resource to describe. Use \"kubectl api-resources\" for a complete list of supported resources.";

pub async fn run(args: DescribeArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    if args.resources.is_empty() {
        return Err(Error::msg(NO_TYPE));
    }
    let selections = resources::parse(&args.resources, "describe")?;
    if let Some(other) = selections
        .iter()
        .find(|s| ![PODS, NODES, SERVICES, NAMESPACES].contains(s.resource))
    {
        return Err(Error::msg(format!(
            "describe is not supported for {}; it describes pods, nodes, services and namespaces",
            other.resource.plural
        )));
    }
    let client = session.client()?;
    let namespace = if args.all_namespaces {
        None
    } else {
        Some(session.namespace()?)
    };
    let single_name = args.resources.len() == 2 && !args.resources[0].contains('/');
    let mut errors = Vec::new();
    let mut found = 0;
    for selection in &selections {
        let (objects, by_prefix) = objects(
            &client,
            &namespace,
            selection,
            &args,
            single_name,
            &mut errors,
        )
        .await;
        for object in objects {
            let text = describe(&client, selection.resource, &object, args.show_events).await?;
            // kubectl separates descriptions by two blank lines, but ends each one
            // found by a name prefix with one.
            if by_prefix {
                io.out.write_all(text.as_bytes())?;
                io.out.write_all(b"\n")?;
            } else {
                if found > 0 {
                    io.out.write_all(b"\n\n")?;
                }
                io.out.write_all(text.as_bytes())?;
            }
            found += 1;
        }
    }
    if found == 0 && errors.is_empty() {
        match &namespace {
            Some(ns) if selections.iter().all(|s| s.resource.namespaced) => {
                writeln!(io.err, "No resources found in {ns} namespace.")?
            }
            _ => writeln!(io.err, "No resources found")?,
        }
    }
    Error::collect(errors)
}

/// The objects to describe: by name (with kubectl's fallback to a name prefix when one
/// name is given and no object has it exactly), or the whole (filtered) list. True when
/// the objects were found by prefix.
async fn objects(
    client: &Client,
    namespace: &Option<String>,
    selection: &Selection,
    args: &DescribeArgs,
    single_name: bool,
    errors: &mut Vec<Error>,
) -> (Vec<Value>, bool) {
    let api = DynamicApi::new(client.clone(), selection.resource, namespace.clone());
    let params = ListParams {
        label_selector: args.selector.clone(),
        ..ListParams::default()
    };
    if selection.names.is_empty() {
        return match api.list_all(&params).await {
            Ok(list) => (list.items, false),
            Err(e) => {
                errors.push(e.into());
                (Vec::new(), false)
            }
        };
    }
    let mut out = Vec::new();
    let mut by_prefix = false;
    for name in &selection.names {
        match api.get(name).await {
            Ok(object) => out.push(object),
            Err(e) if e.is_not_found() && single_name => {
                let matching: Vec<Value> = match api.list_all(&params).await {
                    Ok(list) => list
                        .items
                        .into_iter()
                        .filter(|o| s(&o["metadata"]["name"]).starts_with(name.as_str()))
                        .collect(),
                    Err(_) => Vec::new(),
                };
                if matching.is_empty() {
                    errors.push(e.into());
                }
                by_prefix = true;
                out.extend(matching);
            }
            Err(e) => errors.push(e.into()),
        }
    }
    (out, by_prefix)
}

async fn describe(
    client: &Client,
    resource: &ResourceInfo,
    object: &Value,
    show_events: bool,
) -> Result<String> {
    let mut w = Writer::new(jiff::Timestamp::now());
    let meta = &object["metadata"];
    let name = s(&meta["name"]);
    let uid = s(&meta["uid"]);
    match resource.plural {
        "pods" => {
            let events = if show_events {
                Some(events_of(client, Some(s(&meta["namespace"])), name, &[uid]).await?)
            } else {
                None
            };
            pod::describe_pod(object, events.as_deref(), &mut w);
        }
        "nodes" => {
            let mut query = Query::new();
            query.push(
                "fieldSelector",
                format!("spec.nodeName={name},status.phase!=Failed,status.phase!=Succeeded"),
            );
            let pods: Value = client
                .request_json(
                    Method::GET,
                    &query.append_to(&PODS.collection_path(None)),
                    None,
                    None,
                )
                .await?;
            let lease: std::result::Result<Value, minik8s_client::Error> = client
                .request_json(
                    Method::GET,
                    &format!(
                        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
                    ),
                    None,
                    None,
                )
                .await;
            let events = if show_events {
                // Node events name the node by uid (controllers) or by name (kubelets).
                Some(events_of(client, None, name, &[uid, name]).await?)
            } else {
                None
            };
            node::describe_node(
                object,
                &lease,
                writer::list(&pods["items"]),
                events.as_deref(),
                &mut w,
            );
        }
        "services" => {
            let namespace = s(&meta["namespace"]);
            let mut query = Query::new();
            query.push(
                "labelSelector",
                format!("kubernetes.io/service-name={name}"),
            );
            let slices: Value = client
                .request_json(
                    Method::GET,
                    &query.append_to(&ENDPOINT_SLICES.collection_path(Some(namespace))),
                    None,
                    None,
                )
                .await?;
            let events = if show_events {
                Some(events_of(client, Some(namespace), name, &[uid]).await?)
            } else {
                None
            };
            service::describe_service(
                object,
                writer::list(&slices["items"]),
                events.as_deref(),
                &mut w,
            );
        }
        _ => {
            w.write(0, &format!("Name:\t{name}\n"));
            labels_multiline(&mut w, "Labels", &meta["labels"]);
            annotations_multiline(&mut w, "Annotations", &meta["annotations"]);
            w.write(0, &format!("Status:\t{}\n", s(&object["status"]["phase"])));
        }
    }
    Ok(w.finish())
}

/// The events about one object: in its namespace (or all, for cluster objects), by
/// name, namespace and each of `uids`.
async fn events_of(
    client: &Client,
    namespace: Option<&str>,
    name: &str,
    uids: &[&str],
) -> Result<Vec<Value>> {
    let mut events = Vec::new();
    for uid in uids {
        let mut query = Query::new();
        query.push(
            "fieldSelector",
            format!(
                "involvedObject.name={name},involvedObject.namespace={},involvedObject.uid={uid}",
                namespace.unwrap_or("")
            ),
        );
        query.push("limit", 500);
        let path = query.append_to(&minik8s_api::resource::EVENTS.collection_path(namespace));
        let list: Value = client.request_json(Method::GET, &path, None, None).await?;
        events.extend(writer::list(&list["items"]).iter().cloned());
    }
    Ok(events)
}
