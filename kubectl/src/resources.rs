//! Naming resources on the command line: `pods`, `po,no`, `pod web db`, `pod/web`.

use minik8s_api::resource::{self, ResourceInfo};
use minik8s_client::Client;

use crate::error::{Error, Result};

/// One resource type and the names asked for (none: all of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub resource: &'static ResourceInfo,
    pub names: Vec<String>,
}

/// The resource a user means by `pods`, `pod`, `po` or `Pod`, or kubectl's error.
pub fn lookup(name: &str) -> Result<&'static ResourceInfo> {
    resource::lookup(name).ok_or_else(|| {
        Error::msg(format!(
            "the server doesn't have a resource type {name:?}\n{}",
            known_types()
        ))
    })
}

/// The hint that follows an unknown resource type.
pub fn known_types() -> String {
    let mut types: Vec<String> = resource::ALL
        .iter()
        .map(|r| match r.short_names {
            [] => r.plural.to_string(),
            short => format!("{} ({})", r.plural, short.join(", ")),
        })
        .collect();
    types.sort();
    format!("known resource types: {}", types.join(", "))
}

/// How `kind/name` prefixes look: `pod`, or `kind.group` outside the core group.
pub fn kind_prefix(r: &ResourceInfo) -> String {
    if r.group.is_empty() {
        r.kind.to_ascii_lowercase()
    } else {
        format!("{}.{}", r.kind.to_ascii_lowercase(), r.group)
    }
}

/// Reads `TYPE[,TYPE...] [NAME...]` or `TYPE/NAME [TYPE/NAME...]`. `command` names the
/// verb in usage errors.
pub fn parse(args: &[String], command: &'static str) -> Result<Vec<Selection>> {
    let Some(first) = args.first() else {
        return Ok(Vec::new());
    };
    if args.iter().any(|a| a.contains('/')) {
        let mut out: Vec<Selection> = Vec::new();
        for arg in args {
            let Some((kind, name)) = arg.split_once('/') else {
                return Err(Error::msg(format!(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'kubectl {command} resource/<resource_name>' instead of 'kubectl {command} resource resource/<resource_name>'"
                )));
            };
            if name.is_empty() {
                return Err(Error::msg(format!(
                    "arguments in resource/name form must have a single resource and name: {arg:?}"
                )));
            }
            let r = lookup(kind)?;
            match out.last_mut() {
                Some(last) if last.resource == r => last.names.push(name.to_string()),
                _ => out.push(Selection {
                    resource: r,
                    names: vec![name.to_string()],
                }),
            }
        }
        return Ok(out);
    }
    let names: Vec<String> = args[1..].to_vec();
    let mut out: Vec<Selection> = Vec::new();
    for kind in first.split(',').filter(|k| !k.is_empty()) {
        let r = lookup(kind)?;
        if !out.iter().any(|s| s.resource == r) {
            out.push(Selection {
                resource: r,
                names: names.clone(),
            });
        }
    }
    if out.is_empty() {
        return Err(Error::usage(command, "Required resource not specified."));
    }
    Ok(out)
}

/// As [`parse`], and a type that names no resource may name a category (`all`), which
/// stands for the resources the server's discovery lists in it, in discovery's order.
/// Discovery is read (through `client`) only when some type is not a known resource.
pub async fn parse_with_categories(
    args: &[String],
    command: &'static str,
    client: impl FnOnce() -> Result<Client>,
) -> Result<Vec<Selection>> {
    let Some(first) = args.first() else {
        return Ok(Vec::new());
    };
    let types: Vec<&str> = first.split(',').filter(|k| !k.is_empty()).collect();
    if args.iter().any(|a| a.contains('/')) || types.iter().all(|t| resource::lookup(t).is_some()) {
        return parse(args, command);
    }
    let categories = categories(&client()?).await?;
    let names: Vec<String> = args[1..].to_vec();
    let mut out: Vec<Selection> = Vec::new();
    for ty in types {
        let members: Vec<&'static ResourceInfo> = categories
            .iter()
            .filter(|(category, _)| category == ty)
            .map(|(_, r)| *r)
            .collect();
        let members = if members.is_empty() {
            vec![lookup(ty)?]
        } else {
            members
        };
        for r in members {
            if !out.iter().any(|s| s.resource == r) {
                out.push(Selection {
                    resource: r,
                    names: names.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// Every (category, resource) pair the server's discovery lists, in its order.
async fn categories(client: &Client) -> Result<Vec<(String, &'static ResourceInfo)>> {
    let mut out = Vec::new();
    for served in crate::api_resources::discover(client).await? {
        let group = resource::canonical_group(&served.group);
        let Some(r) = resource::ALL
            .iter()
            .find(|r| r.group == group && r.plural == served.str("name"))
        else {
            continue;
        };
        for category in served.resource["categories"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
        {
            out.push((category.to_string(), r));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn types_and_names() {
        let s = parse(&args(&["po,no", "a"]), "get").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].resource.plural, "pods");
        assert_eq!(s[1].resource.plural, "nodes");
        assert_eq!(s[0].names, ["a"]);
        let s = parse(&args(&["pod/a", "pod/b", "node/n"]), "get").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].names, ["a", "b"]);
        assert_eq!(s[1].names, ["n"]);
    }

    #[test]
    fn mistakes_are_explained() {
        let e = parse(&args(&["pod", "pod/a"]), "get").unwrap_err().render();
        assert!(e.contains("no need to specify a resource type"), "{e}");
        let e = parse(&args(&["cronjobs"]), "get").unwrap_err().render();
        assert!(
            e.starts_with(
                "error: the server doesn't have a resource type \"cronjobs\"\nknown resource types: "
            ),
            "{e}"
        );
        assert!(e.contains("pods (po)"), "{e}");
    }
}
