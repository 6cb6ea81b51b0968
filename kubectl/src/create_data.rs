//! The data of `create configmap` and `create secret generic`: `--from-file`,
//! `--from-literal` and `--from-env-file` read, checked and added as the real kubectl
//! does (`pkg/cmd/create/create_configmap.go`, `create_secret.go`, `util/env_file.go`),
//! with its messages, and `--append-hash`.

use std::path::Path;

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::create_workloads::DataSources;
use crate::error::{Error, Result};

/// The keys and values of `--from-file`, `--from-literal` and `--from-env-file`, checked
/// and added in kubectl's order (files, literals, env files).
struct Data {
    /// `ConfigMap` or `Secret`.
    kind: &'static str,
    name: String,
    text: Map<String, Value>,
    binary: Map<String, Value>,
}

impl Data {
    fn add(&mut self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let key_errors = config_key_errors(key);
        if self.kind == "Secret" {
            if !key_errors.is_empty() {
                return Err(Error::msg(format!(
                    "{key:?} is not valid key name for a Secret {}",
                    key_errors.join(";")
                )));
            }
            if self.text.contains_key(key) {
                return Err(Error::msg(format!(
                    "cannot add key {key}, another key by that name already exists"
                )));
            }
            let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
            self.text.insert(key.to_string(), json!(encoded));
            return Ok(());
        }
        if !key_errors.is_empty() {
            return Err(Error::msg(format!(
                "{key:?} is not a valid key name for a ConfigMap: {}",
                key_errors.join(",")
            )));
        }
        for (field, map) in [("Data", &self.text), ("BinaryData", &self.binary)] {
            if map.contains_key(key) {
                return Err(Error::msg(format!(
                    "cannot add key {key:?}, another key by that name already exists in {field} for ConfigMap {:?}",
                    self.name
                )));
            }
        }
        match String::from_utf8(bytes) {
            Ok(text) => {
                self.text.insert(key.to_string(), json!(text));
            }
            Err(e) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(e.as_bytes());
                self.binary.insert(key.to_string(), json!(encoded));
            }
        }
        Ok(())
    }

    fn collect(kind: &'static str, name: &str, sources: &DataSources) -> Result<Data> {
        if !sources.env_files.is_empty()
            && (!sources.files.is_empty() || !sources.literals.is_empty())
        {
            return Err(Error::msg(
                "from-env-file cannot be combined with from-file or from-literal",
            ));
        }
        let mut data = Data {
            kind,
            name: name.to_string(),
            text: Map::new(),
            binary: Map::new(),
        };
        for source in &sources.files {
            let (key, path) = parse_file_source(source)?;
            let meta = std::fs::metadata(&path).map_err(|e| read_error(&path, &e))?;
            if meta.is_dir() {
                if source.contains('=') {
                    return Err(Error::msg("cannot give a key name for a directory path"));
                }
                let mut entries: Vec<_> = std::fs::read_dir(&path)
                    .map_err(|e| {
                        Error::msg(format!("error listing files in {path}: {}", os_message(&e)))
                    })?
                    .filter_map(|e| e.ok())
                    .collect();
                entries.sort_by_key(|e| e.file_name());
                for entry in entries {
                    if !entry.file_type().is_ok_and(|t| t.is_file()) {
                        continue;
                    }
                    let file_path = entry.path();
                    let bytes = std::fs::read(&file_path)
                        .map_err(|e| read_error(&file_path.display().to_string(), &e))?;
                    data.add(&entry.file_name().to_string_lossy(), bytes)?;
                }
            } else {
                let bytes = std::fs::read(&path).map_err(|e| read_error(&path, &e))?;
                data.add(&key, bytes)?;
            }
        }
        for literal in &sources.literals {
            let (key, value) = match literal.split_once('=') {
                Some((key, value)) if !key.is_empty() => (key, value),
                _ => {
                    return Err(Error::msg(format!(
                        "invalid literal source {literal}, expected key=value"
                    )));
                }
            };
            data.add(key, value.as_bytes().to_vec())?;
        }
        for path in &sources.env_files {
            let meta = std::fs::metadata(path).map_err(|e| read_error(path, &e))?;
            if meta.is_dir() {
                return Err(Error::msg("env config file cannot be a directory"));
            }
            let bytes = std::fs::read(path).map_err(|e| read_error(path, &e))?;
            for (key, value) in parse_env_file(&bytes, path)? {
                data.add(&key, value.into_bytes())?;
            }
        }
        Ok(data)
    }
}

fn os_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => {
            let text = e.to_string();
            match text.split_once(" (os error") {
                Some((m, _)) => m.to_lowercase(),
                None => text,
            }
        }
    }
}

fn read_error(path: &str, e: &std::io::Error) -> Error {
    Error::msg(format!("error reading {path}: {}", os_message(e)))
}

/// kubectl's `ParseFileSource`: `path` (key: its base name) or `key=path`.
fn parse_file_source(source: &str) -> Result<(String, String)> {
    let separators = source.matches('=').count();
    match separators {
        0 => {
            let trimmed = source.trim_end_matches('/');
            let base = Path::new(trimmed)
                .file_name()
                .map(|b| b.to_string_lossy().into_owned())
                .unwrap_or_else(|| {
                    if source.starts_with('/') {
                        "/".into()
                    } else {
                        ".".into()
                    }
                });
            Ok((base, source.to_string()))
        }
        1 if source.starts_with('=') => Err(Error::msg(format!(
            "key name for file path {} missing",
            &source[1..]
        ))),
        1 if source.ends_with('=') => Err(Error::msg(format!(
            "file path for key name {} missing",
            &source[..source.len() - 1]
        ))),
        1 => {
            let (key, path) = source.split_once('=').unwrap_or_default();
            Ok((key.to_string(), path.to_string()))
        }
        _ => Err(Error::msg("key names or file paths cannot contain '='")),
    }
}

/// kubectl's env files: `KEY=value` lines (value as written), `KEY` alone for the
/// variable of kubectl's environment, blank lines and `#` comments skipped.
fn parse_env_file(bytes: &[u8], path: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let mut line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if i == 0 {
            line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
        }
        let Ok(line) = std::str::from_utf8(line) else {
            return Err(Error::msg(format!(
                "env file {path} contains invalid utf8 bytes at line {}: {line:?}",
                i + 1
            )));
        };
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (line, None),
        };
        if !is_env_var_name(key) {
            return Err(Error::msg(format!(
                "{key:?} is not a valid key name: a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
            )));
        }
        let value = match value {
            Some(v) => v.to_string(),
            None => std::env::var(key).unwrap_or_default(),
        };
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn is_env_var_name(key: &str) -> bool {
    let mut chars = key.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || "-._".contains(c) => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// apimachinery's `IsConfigMapKey`.
fn config_key_errors(key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if key.len() > 253 {
        errors.push("must be no more than 253 characters".to_string());
    }
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        errors.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".to_string());
    }
    if key == "." {
        errors.push("must not be '.'".to_string());
    } else if key == ".." {
        errors.push("must not be '..'".to_string());
    } else if key.starts_with("..") {
        errors.push("must not start with '..'".to_string());
    }
    errors
}

/// The ConfigMap `create configmap` builds.
pub(crate) fn config_map(name: &str, sources: &DataSources) -> Result<Value> {
    let data = Data::collect("ConfigMap", name, sources)?;
    let mut object = json!({
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": name, "creationTimestamp": null},
    });
    if !data.text.is_empty() {
        object["data"] = Value::Object(data.text);
    }
    if !data.binary.is_empty() {
        object["binaryData"] = Value::Object(data.binary);
    }
    Ok(with_hash(object, sources.append_hash))
}

/// The Secret `create secret generic` builds.
pub(crate) fn secret(
    name: &str,
    sources: &DataSources,
    secret_type: Option<&str>,
) -> Result<Value> {
    let data = Data::collect("Secret", name, sources)?;
    let mut object = json!({
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": name, "creationTimestamp": null},
    });
    if !data.text.is_empty() {
        object["data"] = Value::Object(data.text);
    }
    if let Some(t) = secret_type.filter(|t| !t.is_empty()) {
        object["type"] = json!(t);
    }
    Ok(with_hash(object, sources.append_hash))
}

/// `--append-hash`: the name with the hash of the contents.
fn with_hash(mut object: Value, append: bool) -> Value {
    if append {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let name = format!("{name}-{}", crate::hash::name_suffix(&object));
        object["metadata"]["name"] = json!(name);
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_literal_sources() {
        assert_eq!(
            parse_file_source("dir/a.txt").unwrap(),
            ("a.txt".into(), "dir/a.txt".into())
        );
        assert_eq!(
            parse_file_source("k=dir/a.txt").unwrap(),
            ("k".into(), "dir/a.txt".into())
        );
        assert_eq!(
            parse_file_source("=f").unwrap_err().render(),
            "error: key name for file path f missing\n"
        );
        assert_eq!(
            parse_file_source("a=b=c").unwrap_err().render(),
            "error: key names or file paths cannot contain '='\n"
        );
        let env = parse_env_file(b"\xef\xbb\xbfA=1\n# c\n  B= two \n\nC=3\r\n", "f").unwrap();
        assert_eq!(
            env,
            [
                ("A".to_string(), "1".to_string()),
                ("B".into(), " two ".into()),
                ("C".into(), "3".into())
            ]
        );
        assert!(parse_env_file(b"B =1\n", "f").is_err());
    }
}
