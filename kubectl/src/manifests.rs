//! `-f FILE | DIR | -`: reading manifests for create, apply and delete. A document that
//! cannot be read is reported and skipped; the good documents of the same file are
//! still used.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

use minik8s_api::manifest::{Manifest, ManifestError, parse_manifests};
use minik8s_api::resource::{self, ResourceInfo};

use crate::error::Error;

/// The extensions kubectl reads from a directory.
const EXTENSIONS: &[&str] = &["json", "yaml", "yml"];

/// One object from a manifest, with where it came from.
#[derive(Clone, Debug)]
pub struct SourcedObject {
    /// The file as kubectl names it in messages: the path given, or `STDIN`.
    pub source: String,
    pub manifest: Manifest,
}

impl SourcedObject {
    pub fn name(&self) -> &str {
        self.manifest.name().unwrap_or_default()
    }

    /// The served resource of the object's kind, or kubectl's error naming the kinds
    /// that exist.
    pub fn resource(&self) -> Result<&'static ResourceInfo, Error> {
        let m = &self.manifest;
        resource::for_kind(m.api_version(), m.kind()).ok_or_else(|| {
            Error::msg(format!(
                "resource mapping not found for name: {:?} namespace: {:?} from {:?}: no matches for kind {:?} in version {:?}\n{}",
                self.name(),
                m.namespace().unwrap_or_default(),
                self.source,
                m.kind(),
                m.api_version(),
                known_kinds()
            ))
        })
    }
}

/// The hint that follows an unknown kind.
pub fn known_kinds() -> String {
    let mut kinds: Vec<String> = resource::ALL
        .iter()
        .map(|r| format!("{} ({})", r.kind, r.api_version()))
        .collect();
    kinds.sort();
    format!("known kinds: {}", kinds.join(", "))
}

/// Reads every `-f` argument in order: the objects, and in their place what could not
/// be read (a missing path, a bad document).
pub fn read_all(
    filenames: &[String],
    recursive: bool,
    stdin: &mut dyn Read,
) -> Vec<Result<SourcedObject, Error>> {
    let mut items = Vec::new();
    for name in filenames {
        let sources = if name == "-" {
            let mut text = String::new();
            match stdin.read_to_string(&mut text) {
                Ok(_) => vec![("STDIN".to_string(), text)],
                Err(e) => {
                    items.push(Err(Error::msg(format!("reading standard input: {e}"))));
                    continue;
                }
            }
        } else if name.starts_with("http://") || name.starts_with("https://") {
            items.push(Err(Error::msg(format!(
                "reading manifests from a URL is not supported: {name}"
            ))));
            continue;
        } else {
            match files_of(Path::new(name), recursive) {
                Ok(files) if files.is_empty() => {
                    items.push(Err(Error::msg(format!(
                        "error reading [{name}]: recognized file extensions are [.json .yaml .yml]"
                    ))));
                    continue;
                }
                Ok(files) => {
                    let mut read = Vec::new();
                    for file in files {
                        match std::fs::read(&file) {
                            Ok(bytes) => read.push((
                                file.display().to_string(),
                                String::from_utf8_lossy(&bytes).into_owned(),
                            )),
                            Err(e) => items.push(Err(Error::msg(format!(
                                "error reading {:?}: {e}",
                                file.display().to_string()
                            )))),
                        }
                    }
                    read
                }
                Err(e) => {
                    items.push(Err(e));
                    continue;
                }
            }
        };
        for (source, text) in sources {
            let (manifests, bad) = parse_tolerant(&source, &text);
            // Objects and bad documents in the order of the file.
            let mut ordered: Vec<(usize, Result<SourcedObject, Error>)> = manifests
                .into_iter()
                .map(|manifest| {
                    (
                        manifest.document,
                        Ok(SourcedObject {
                            source: source.clone(),
                            manifest,
                        }),
                    )
                })
                .collect();
            ordered.extend(
                bad.into_iter()
                    .map(|e| (e.document, Err(Error::Manifest(e)))),
            );
            ordered.sort_by_key(|(document, _)| *document);
            items.extend(ordered.into_iter().map(|(_, item)| item));
        }
    }
    items
}

/// The files behind one path: the file itself, or a directory's manifest files in name
/// order (and those of its subdirectories with `recursive`).
fn files_of(path: &Path, recursive: bool) -> Result<Vec<PathBuf>, Error> {
    let meta = std::fs::metadata(path).map_err(|_| {
        Error::msg(format!(
            "the path {:?} does not exist",
            path.display().to_string()
        ))
    })?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| {
            Error::msg(format!(
                "error reading {:?}: {e}",
                path.display().to_string()
            ))
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut files = Vec::new();
    for entry in entries {
        if entry.is_dir() {
            if recursive {
                files.extend(files_of(&entry, true)?);
            }
        } else if entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
        {
            files.push(entry);
        }
    }
    Ok(files)
}

/// Parses a file; when a YAML document is bad, it is reported, blanked out (keeping the
/// line numbers and document count of the rest) and the file is read again.
pub fn parse_tolerant(file: &str, text: &str) -> (Vec<Manifest>, Vec<ManifestError>) {
    let mut text = Cow::Borrowed(text);
    let mut errors = Vec::new();
    loop {
        match parse_manifests(file, &text) {
            Ok(manifests) => return (manifests, errors),
            Err(e) => {
                let is_json = text.trim_start().starts_with(['{', '[']);
                let blanked = if is_json {
                    None
                } else {
                    blank_document(&text, e.document)
                };
                errors.push(e);
                match blanked {
                    Some(b) if b != *text => text = Cow::Owned(b),
                    _ => return (Vec::new(), errors),
                }
            }
        }
    }
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.starts_with(marker) && matches!(line.as_bytes().get(3), None | Some(b' ' | b'\t' | b'\r'))
}

fn has_content(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// Replaces YAML document `document` (1-based, counted as the manifest parser counts
/// them) by an empty `---` document of the same number of lines.
fn blank_document(text: &str, document: usize) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    // (first line index, end line index exclusive, ends with a `...` line) per document.
    let mut segments: Vec<(usize, usize, bool)> = Vec::new();
    let mut start = 0;
    let mut explicit = false;
    let mut content = false;
    for (i, line) in lines.iter().enumerate() {
        let body = line.trim_end_matches(['\n', '\r']);
        if is_marker(body, "---") {
            if explicit || content {
                segments.push((start, i, false));
                start = i;
            }
            explicit = true;
            content = has_content(&body[3..]);
        } else if is_marker(body, "...") {
            if explicit || content {
                segments.push((start, i + 1, true));
            }
            start = i + 1;
            explicit = false;
            content = false;
        } else if !content && (explicit || !body.starts_with('%')) && has_content(body) {
            content = true;
        }
    }
    if explicit || content {
        segments.push((start, lines.len(), false));
    }
    let &(first, end, dots) = segments.get(document.checked_sub(1)?)?;
    let blank_end = if dots { end - 1 } else { end };
    let mut out = String::with_capacity(text.len());
    for (i, line) in lines.iter().enumerate() {
        if i < first || i >= blank_end {
            out.push_str(line);
        } else {
            if i == first {
                out.push_str("---");
            }
            if line.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n";

    #[test]
    fn a_bad_document_does_not_hide_the_good_ones() {
        let text = format!(
            "{GOOD}---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: x: y\n---\n{}",
            GOOD.replace("name: a", "name: c")
        );
        let (manifests, errors) = parse_tolerant("pods.yaml", &text);
        let names: Vec<_> = manifests.iter().map(|m| m.name().unwrap()).collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].document, errors[0].line), (2, 9));
        // The third document keeps its number and line.
        assert_eq!((manifests[1].document, manifests[1].line), (3, 10));
    }

    #[test]
    fn missing_kind_and_first_document_errors() {
        let text = format!("apiVersion: v1\nmetadata: {{name: x}}\n---\n{GOOD}---\nkind: Pod\n");
        let (manifests, errors) = parse_tolerant("f.yaml", &text);
        assert_eq!(manifests.len(), 1);
        assert_eq!(manifests[0].document, 2);
        let docs: Vec<_> = errors.iter().map(|e| e.document).collect();
        assert_eq!(docs, [1, 3]);
    }

    #[test]
    fn json_errors_stop_the_file() {
        let (manifests, errors) = parse_tolerant("f.json", "{\"apiVersion\": \"v1\", \"kind\": }");
        assert!(manifests.is_empty());
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn unknown_kinds_name_the_known_ones() {
        let (mut manifests, _) = parse_tolerant(
            "d.yaml",
            "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: web\n",
        );
        let object = SourcedObject {
            source: "d.yaml".into(),
            manifest: manifests.remove(0),
        };
        let e = object.resource().unwrap_err().render();
        assert!(
            e.starts_with(
                "error: resource mapping not found for name: \"web\" namespace: \"\" from \"d.yaml\": no matches for kind \"CronJob\" in version \"batch/v1\"\nknown kinds: "
            ),
            "{e}"
        );
        assert!(e.contains("Pod (v1)"), "{e}");
    }
}
