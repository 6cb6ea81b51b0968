//! `kubectl api-resources`: what the server says it serves (its discovery documents).

use clap::{ArgAction, Args};
use minik8s_client::{Client, Method};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::session::{Io, Session};
use crate::tabwriter::TabWriter;

#[derive(Args, Debug, Default)]
pub struct ApiResourcesArgs {
    /// Output format: wide or name.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,

    /// Only namespaced (true) or only cluster-scoped (false) resources.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          require_equals = true, value_name = "BOOL")]
    pub namespaced: Option<bool>,

    /// Only the resources of this API group ("" for the core group).
    #[arg(long, value_name = "GROUP")]
    pub api_group: Option<String>,

    /// Do not print headers.
    #[arg(long)]
    pub no_headers: bool,

    /// Sort by name or kind (default: group, then name).
    #[arg(long, value_name = "FIELD")]
    pub sort_by: Option<String>,
}

/// One served resource, as discovery lists it.
pub(crate) struct Served {
    pub(crate) group: String,
    version: String,
    pub(crate) resource: Value,
}

impl Served {
    pub(crate) fn str(&self, key: &str) -> &str {
        self.resource[key].as_str().unwrap_or_default()
    }

    fn list(&self, key: &str) -> String {
        self.resource[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

pub async fn run(args: ApiResourcesArgs, session: &mut Session, io: &mut Io<'_>) -> Result<()> {
    let output = args.output.as_deref().unwrap_or("");
    if !matches!(output, "" | "wide" | "name") {
        return Err(Error::msg(format!(
            "--output {output} is not available; use wide or name"
        )));
    }
    if let Some(sort) = args.sort_by.as_deref()
        && !matches!(sort, "name" | "kind")
    {
        return Err(Error::msg("--sort-by accepts only name or kind"));
    }
    let client = session.client()?;
    let mut served = discover(&client).await?;
    served.retain(|s| {
        !s.str("name").contains('/')
            && args
                .namespaced
                .is_none_or(|n| s.resource["namespaced"].as_bool() == Some(n))
            && args.api_group.as_deref().is_none_or(|g| g == s.group)
    });
    served.sort_by(|a, b| {
        let key = |s: &Served| match args.sort_by.as_deref() {
            Some("name") => s.str("name").to_string(),
            Some("kind") => s.str("kind").to_string(),
            _ => s.group.clone(),
        };
        key(a)
            .cmp(&key(b))
            .then_with(|| a.str("name").cmp(b.str("name")))
    });
    if output == "name" {
        for s in &served {
            if s.group.is_empty() {
                writeln!(io.out, "{}", s.str("name"))?;
            } else {
                writeln!(io.out, "{}.{}", s.str("name"), s.group)?;
            }
        }
        return Ok(());
    }
    let wide = output == "wide";
    let mut w = TabWriter::for_tables();
    if !args.no_headers {
        w.write_str("NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND");
        w.write_str(if wide { "\tVERBS\tCATEGORIES\n" } else { "\n" });
    }
    for s in &served {
        let namespaced = s.resource["namespaced"].as_bool().unwrap_or(false);
        w.write_str(&format!(
            "{}\t{}\t{}\t{namespaced}\t{}",
            s.str("name"),
            s.list("shortNames"),
            s.api_version(),
            s.str("kind")
        ));
        if wide {
            w.write_str(&format!("\t{}\t{}", s.list("verbs"), s.list("categories")));
        }
        w.write_str("\n");
    }
    io.out.write_all(w.finish().as_bytes())?;
    Ok(())
}

async fn get(client: &Client, path: &str) -> Result<Value> {
    Ok(client.request_json(Method::GET, path, None, None).await?)
}

/// Every resource of the core versions and of each group's preferred version.
pub(crate) async fn discover(client: &Client) -> Result<Vec<Served>> {
    let mut served = Vec::new();
    let mut add = |group: &str, version: &str, list: Value| {
        for resource in list["resources"].as_array().cloned().unwrap_or_default() {
            served.push(Served {
                group: group.to_string(),
                version: version.to_string(),
                resource,
            });
        }
    };
    let core = get(client, "/api").await?;
    for version in core["versions"].as_array().cloned().unwrap_or_default() {
        let Some(version) = version.as_str() else {
            continue;
        };
        add("", version, get(client, &format!("/api/{version}")).await?);
    }
    let groups = get(client, "/apis").await?;
    for group in groups["groups"].as_array().cloned().unwrap_or_default() {
        let name = group["name"].as_str().unwrap_or_default();
        let Some(version) = group["preferredVersion"]["version"]
            .as_str()
            .or_else(|| group["versions"][0]["version"].as_str())
        else {
            continue;
        };
        add(
            name,
            version,
            get(client, &format!("/apis/{name}/{version}")).await?,
        );
    }
    Ok(served)
}
