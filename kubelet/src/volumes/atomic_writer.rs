//! Writes a volume's files so that a reader never sees half an update, as Kubernetes'
//! `AtomicWriter` does (`pkg/volume/util/atomic_writer.go`):
//!
//! ```text
//! <dir>/..2026_12_03_10_00_00.123456789/   the files of this version
//! <dir>/..data -> ..2026_12_03_10_00_00.123456789
//! <dir>/key    -> ..data/key               one per top-level name
//! ```
//!
//! An update writes a new timestamped directory, points a new `..data_tmp` link at it and
//! renames that over `..data` (one atomic step), fixes the user-visible links and removes
//! the old directory. Nothing is written when the payload is what is there already.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

const DATA_DIR: &str = "..data";
const NEW_DATA_DIR: &str = "..data_tmp";

/// One file of a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Relative path → content.
pub type Payload = BTreeMap<String, FileProjection>;

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Kubernetes' `validatePath`: relative, no `..` element, not starting with `..`.
fn validate_path(path: &str) -> io::Result<()> {
    if path.is_empty() {
        return Err(invalid("invalid path: must not be empty".into()));
    }
    if path.len() > 4096 {
        return Err(invalid(format!(
            "invalid path: must be less than or equal to 4096 characters: {path:?}"
        )));
    }
    if Path::new(path).is_absolute() {
        return Err(invalid(format!(
            "invalid path: must be relative path: {path}"
        )));
    }
    if Path::new(path)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(invalid(format!(
            "invalid path: must not contain '..': {path}"
        )));
    }
    if path.starts_with("..") {
        return Err(invalid(format!(
            "invalid path: must not start with '..': {path}"
        )));
    }
    Ok(())
}

/// The first component of a payload path: the name a user sees in the volume.
fn top_level(path: &str) -> &str {
    path.trim_start_matches("./")
        .split('/')
        .find(|p| !p.is_empty() && *p != ".")
        .unwrap_or(path)
}

/// The version `..data` points at, if any.
pub fn current_version(dir: &Path) -> Option<PathBuf> {
    let target = std::fs::read_link(dir.join(DATA_DIR)).ok()?;
    Some(dir.join(target))
}

/// Every file under `dir`, relative, with its content and mode.
fn read_tree(dir: &Path) -> io::Result<Payload> {
    let mut out = Payload::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(dir.join(&rel))? {
            let entry = entry?;
            let rel = rel.join(entry.file_name());
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(rel);
            } else {
                out.insert(
                    rel.to_string_lossy().into_owned(),
                    FileProjection {
                        data: std::fs::read(entry.path())?,
                        mode: meta.permissions().mode() & 0o7777,
                    },
                );
            }
        }
    }
    Ok(out)
}

/// A new, empty, timestamped directory in `dir`: `..YYYY_MM_DD_HH_MM_SS.<nanoseconds>`.
fn new_version_dir(dir: &Path) -> io::Result<PathBuf> {
    let now = jiff::Timestamp::now();
    let stamp = now.strftime("%Y_%m_%d_%H_%M_%S").to_string();
    let mut nanos = now.subsec_nanosecond();
    loop {
        let path = dir.join(format!("..{stamp}.{nanos:09}"));
        match std::fs::create_dir(&path) {
            Ok(()) => {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                nanos = (nanos + 1) % 1_000_000_000;
            }
            Err(e) => return Err(e),
        }
    }
}

fn write_files(version: &Path, payload: &Payload) -> io::Result<()> {
    for (path, file) in payload {
        let target = version.join(path);
        if let Some(parent) = target.parent()
            && !parent.exists()
        {
            std::fs::create_dir_all(parent)?;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))?;
        }
        std::fs::write(&target, &file.data)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode))?;
    }
    Ok(())
}

/// Makes `dir` hold exactly `payload`; returns whether anything was written.
pub fn write(dir: &Path, payload: &Payload) -> io::Result<bool> {
    for path in payload.keys() {
        validate_path(path)?;
    }
    std::fs::create_dir_all(dir)?;
    let old_version = current_version(dir);
    let old_payload = match &old_version {
        Some(v) => read_tree(v).ok(),
        None => None,
    };
    let wanted: BTreeSet<&str> = payload.keys().map(|p| top_level(p)).collect();
    let visible_ok = wanted
        .iter()
        .all(|name| std::fs::symlink_metadata(dir.join(name)).is_ok());
    if old_payload.as_ref() == Some(payload) && visible_ok {
        return Ok(false);
    }

    let version = new_version_dir(dir)?;
    if let Err(e) = write_files(&version, payload) {
        let _ = std::fs::remove_dir_all(&version);
        return Err(e);
    }
    let version_name = version.file_name().map(PathBuf::from).unwrap_or_default();
    let tmp = dir.join(NEW_DATA_DIR);
    let _ = std::fs::remove_file(&tmp);
    symlink(&version_name, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA_DIR))?;

    for name in &wanted {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA_DIR).join(name), &link)?;
        }
    }
    // Names the new version no longer has.
    if let Some(old) = &old_payload {
        for name in old.keys().map(|p| top_level(p)) {
            if !wanted.contains(name) {
                let _ = std::fs::remove_file(dir.join(name));
            }
        }
    }
    if let Some(old) = old_version
        && old != version
    {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(data: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn versions_are_swapped_behind_data_links() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        let payload = Payload::from([
            ("a".to_string(), file("1", 0o644)),
            ("sub/b".to_string(), file("2", 0o400)),
        ]);
        assert!(write(&dir, &payload).unwrap());
        let first = current_version(&dir).unwrap();
        let first_name = first.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            first_name.starts_with("..")
                && first_name.len() == "..2026_12_03_10_00_00.123456789".len(),
            "{first_name}"
        );
        assert_eq!(names(&dir), [&first_name, "..data", "a", "sub"]);
        assert_eq!(
            std::fs::read_link(dir.join("a")).unwrap(),
            Path::new("..data/a")
        );
        assert_eq!(
            std::fs::read_link(dir.join("sub")).unwrap(),
            Path::new("..data/sub")
        );
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        let mode = std::fs::metadata(dir.join("sub/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
        let mode = std::fs::metadata(&first).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);

        // The same payload writes nothing.
        assert!(!write(&dir, &payload).unwrap());
        assert_eq!(current_version(&dir).unwrap(), first);

        // A change: a new version, the old one gone, a dropped name gone.
        let changed = Payload::from([
            ("a".to_string(), file("one", 0o644)),
            ("c".to_string(), file("3", 0o600)),
        ]);
        assert!(write(&dir, &changed).unwrap());
        let second = current_version(&dir).unwrap();
        assert_ne!(second, first);
        assert!(!first.exists());
        let second_name = second.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(names(&dir), [&second_name, "..data", "a", "c"]);
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "one");

        // A mode change alone is a change.
        let chmod = Payload::from([
            ("a".to_string(), file("one", 0o640)),
            ("c".to_string(), file("3", 0o600)),
        ]);
        assert!(write(&dir, &chmod).unwrap());

        // Empty: only the links go.
        assert!(write(&dir, &Payload::new()).unwrap());
        assert_eq!(names(&dir).len(), 2, "{:?}", names(&dir));
    }

    #[test]
    fn paths_must_stay_inside_the_volume() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["/etc/passwd", "../x", "a/../../x", "..hidden", ""] {
            let payload = Payload::from([(bad.to_string(), file("x", 0o644))]);
            assert!(write(tmp.path(), &payload).is_err(), "{bad}");
        }
    }
}
