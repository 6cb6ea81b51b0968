//! Every dependency a workspace crate declares is used by that crate: its name (with `-`
//! as `_`) is named as a path (`name::…`, `use name`, `extern crate name`) in some `.rs`
//! file of the crate — sources, tests, benches, examples or build script. An unused one
//! only costs build time, so this keeps them gone without installing a tool.
//!
//! A dependency that is needed without being named (one that only turns on a feature of
//! another crate) is listed where `cargo machete` looks for it, in its Cargo.toml:
//! `[package.metadata.cargo-machete]` `ignored = ["name"]`.

use std::path::{Path, PathBuf};

const SECTIONS: [&str; 3] = ["dependencies", "dev-dependencies", "build-dependencies"];

#[test]
fn every_declared_dependency_is_used() {
    let root = workspace_root();
    let members = workspace_members(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap());
    assert!(
        members.len() >= 5,
        "found only {members:?} in the workspace's members"
    );
    let mut checked = 0;
    let mut unused = Vec::new();
    for member in &members {
        let dir = root.join(member);
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("{member}/Cargo.toml: {e}"));
        let declared = Manifest::parse(&manifest);
        let sources = crate_sources(&dir);
        assert!(!sources.is_empty(), "{member}: no .rs files found");
        for (section, dep) in &declared.dependencies {
            checked += 1;
            if declared.ignored.contains(dep) {
                continue;
            }
            if !sources.iter().any(|text| mentions(text, dep)) {
                unused.push(format!(
                    "{} ({member}/Cargo.toml) [{section}] {dep}",
                    declared.name
                ));
            }
        }
    }
    assert!(
        checked >= 20,
        "only {checked} dependencies parsed: is the manifest parser broken?"
    );
    assert!(
        unused.is_empty(),
        "dependencies that no source file of their crate names (remove them, or list them \
         under [package.metadata.cargo-machete] ignored):\n  {}",
        unused.join("\n  ")
    );
}

#[test]
fn a_mention_is_a_path_in_code_not_a_longer_name_or_a_comment() {
    assert!(mentions("use serde::Deserialize;", "serde"));
    assert!(mentions("#[derive(serde::Serialize)]", "serde"));
    assert!(mentions("    let v = serde_json::json!({});", "serde-json"));
    assert!(mentions("extern crate libc;", "libc"));
    assert!(mentions("use bytes as b;", "bytes"));
    assert!(mentions("#[async_trait::async_trait]", "async-trait"));
    assert!(!mentions("use serde_json::Value;", "serde"));
    assert!(!mentions("let bytes = buf.len();", "bytes"));
    assert!(!mentions("use axum::body::bytes::Bytes;", "bytes"));
    assert!(!mentions("// tower::ServiceExt would do", "tower"));
    assert!(!mentions("    /// see `jiff::Timestamp`", "jiff"));
    assert!(!mentions("use my_tokio::x;", "tokio"));
}

#[test]
fn the_manifest_parser_reads_every_dependency_form() {
    let manifest = r#"
[package]
name = "demo"
edition.workspace = true

[[bin]]
name = "not-a-dep"

[dependencies]
plain = "1"
inherited.workspace = true
table = { workspace = true, features = [
    "a",
] }

[dev-dependencies]
dev-only = "1"

[target.'cfg(unix)'.dependencies]
unix-only = "1"

[build-dependencies.long-form]
version = "1"

[package.metadata.cargo-machete]
ignored = ["inherited"]

[lints]
workspace = true
"#;
    let parsed = Manifest::parse(manifest);
    assert_eq!(parsed.name, "demo");
    let deps: Vec<_> = parsed
        .dependencies
        .iter()
        .map(|(s, d)| format!("{s} {d}"))
        .collect();
    assert_eq!(
        deps,
        [
            "dependencies plain",
            "dependencies inherited",
            "dependencies table",
            "dev-dependencies dev-only",
            "dependencies unix-only",
            "build-dependencies long-form",
        ]
    );
    assert_eq!(parsed.ignored, ["inherited"]);
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The paths in `[workspace] members = [...]`, which may span lines.
fn workspace_members(manifest: &str) -> Vec<String> {
    let Some(start) = manifest.find("members") else {
        return Vec::new();
    };
    let rest = &manifest[start..];
    let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) else {
        return Vec::new();
    };
    quoted_strings(&rest[open + 1..close])
}

fn quoted_strings(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[derive(Debug, Default)]
struct Manifest {
    name: String,
    /// (section, dependency key) in file order.
    dependencies: Vec<(&'static str, String)>,
    ignored: Vec<String>,
}

impl Manifest {
    /// Just enough TOML for Cargo manifests as this workspace writes them: one key per line,
    /// dependency tables in any of their forms, arrays that may continue on further lines.
    fn parse(text: &str) -> Manifest {
        enum Section {
            Package,
            Dependencies(&'static str),
            Machete,
            Other,
        }
        let mut manifest = Manifest::default();
        let mut section = Section::Other;
        let mut in_ignored = false;
        for line in text.lines() {
            let line = line.split(" #").next().unwrap_or("").trim_end();
            if in_ignored {
                manifest
                    .ignored
                    .extend(quoted_strings(line.split(']').next().unwrap()));
                in_ignored = !line.contains(']');
                continue;
            }
            if let Some(header) = line.strip_prefix('[') {
                let header = header.trim_matches(|c| c == '[' || c == ']');
                // `target.'cfg(..)'.dependencies` is the same as `dependencies`.
                let table = header.rsplit_once("'.").map_or(header, |(_, t)| t);
                section = match table {
                    "package" => Section::Package,
                    "package.metadata.cargo-machete" => Section::Machete,
                    _ => match SECTIONS.iter().find(|s| table == **s) {
                        Some(s) => Section::Dependencies(s),
                        None => {
                            // `[dependencies.name]`: one dependency as a table.
                            if let Some((s, dep)) = SECTIONS.iter().find_map(|s| {
                                table.strip_prefix(s)?.strip_prefix('.').map(|d| (*s, d))
                            }) {
                                manifest.dependencies.push((s, dep.to_string()));
                            }
                            Section::Other
                        }
                    },
                };
                continue;
            }
            // A key starts in the first column; continuation lines of arrays are indented.
            let Some(key) = line
                .split(['=', '.'])
                .next()
                .map(str::trim_end)
                .filter(|k| {
                    !k.is_empty()
                        && !line.starts_with(char::is_whitespace)
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
            else {
                continue;
            };
            match section {
                Section::Package if key == "name" => {
                    manifest.name = quoted_strings(line).into_iter().next().unwrap_or_default();
                }
                Section::Dependencies(s) => manifest.dependencies.push((s, key.to_string())),
                Section::Machete if key == "ignored" => {
                    let list = line.split_once('[').map_or("", |(_, l)| l);
                    manifest
                        .ignored
                        .extend(quoted_strings(list.split(']').next().unwrap()));
                    in_ignored = !list.contains(']');
                }
                _ => {}
            }
        }
        manifest
    }
}

/// The text of every `.rs` file of the crate in `dir`, leaving out `target` and any
/// directory that is a crate of its own.
fn crate_sources(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                let name = path.file_name().unwrap();
                if name != "target" && !path.join("Cargo.toml").exists() {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    out
}

/// Whether `text` names the crate of dependency `dep` as a path outside comment lines:
/// `dep::…` (not as the tail of a longer path or name), `use dep` or `extern crate dep`.
fn mentions(text: &str, dep: &str) -> bool {
    let name = dep.replace('-', "_");
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .any(|line| {
            line.match_indices(&name).any(|(at, _)| {
                let before = line[..at].trim_end_matches(' ');
                let after = &line[at + name.len()..];
                if line[..at].ends_with(|c: char| ident(c) || c == ':') {
                    // `use ::dep::x` is the one path that may begin with `::`.
                    return line[..at].ends_with(" ::") && after.starts_with("::");
                }
                if after.starts_with("::") {
                    return true;
                }
                let word_ends = !after.starts_with(ident);
                word_ends && (before.ends_with("use") || before.ends_with("extern crate"))
            })
        })
}
