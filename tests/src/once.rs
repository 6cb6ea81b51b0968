//! Work a test run needs done once, not once per test: building the binaries and images
//! the tests start.
//!
//! `cargo nextest` runs every test in a process of its own, so a `static` remembers only
//! within one test. The processes of one nextest run share its id (`NEXTEST_RUN_ID`): a
//! stamp file holding the id of the run that last finished the work lets the later
//! processes of that run skip it. Without a run id (`cargo test`, which runs the tests of
//! one binary as threads of one process; the benchmark binaries) the work is done once per
//! process.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Runs `work` unless it finished already in this test run, as recorded in `stamp`.
///
/// Two processes of one run may both find no stamp and both do the work: it must be safe
/// to run twice at once (cargo and `deploy/images.sh` take locks of their own). The stamp
/// is written only after the work succeeded, so a process that finds it knows the work is
/// done, not under way.
pub fn once_per_run(stamp: &Path, work: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    static DONE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if done.iter().any(|p| p == stamp) {
        return Ok(());
    }
    let run = std::env::var("NEXTEST_RUN_ID").ok();
    once_in_run(stamp, run.as_deref().filter(|id| !id.is_empty()), work)?;
    done.push(stamp.to_path_buf());
    Ok(())
}

/// Runs `work` unless `stamp` says run `run` did it already; records it if there is a run.
fn once_in_run(
    stamp: &Path,
    run: Option<&str>,
    work: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let Some(run) = run else {
        return work();
    };
    let runs = std::fs::read_to_string(stamp).unwrap_or_default();
    if runs.lines().any(|r| r == run) {
        return Ok(());
    }
    work()?;
    write_stamp(stamp, &runs, run)
}

/// Runs of the last few that did the work: runs side by side (two checkouts' test runs on
/// one Docker) do not take turns doing it again.
const RUNS_KEPT: usize = 8;

/// Adds `run` to the stamp's runs, replacing the file whole: a reader never sees half of
/// an id. Two writers at once may lose one's id; that run does the work once more.
fn write_stamp(stamp: &Path, runs: &str, run: &str) -> anyhow::Result<()> {
    if let Some(dir) = stamp.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let earlier: Vec<&str> = runs.lines().collect();
    let mut kept: Vec<&str> = earlier[earlier.len().saturating_sub(RUNS_KEPT - 1)..].to_vec();
    kept.push(run);
    let mut partial = stamp.as_os_str().to_owned();
    partial.push(format!(".{}", std::process::id()));
    std::fs::write(&partial, kept.join("\n") + "\n")?;
    std::fs::rename(&partial, stamp)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_once_per_process() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = dir.path().join("a");
        let mut runs = 0;
        once_per_run(&stamp, || {
            runs += 1;
            Ok(())
        })
        .unwrap();
        once_per_run(&stamp, || {
            runs += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(runs, 1);
    }

    #[test]
    fn a_run_does_the_work_once_and_the_next_run_again() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = dir.path().join("stamps/c");
        let mut runs = 0;
        for run in ["r1", "r1", "r2", "r2", "r1"] {
            once_in_run(&stamp, Some(run), || {
                runs += 1;
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(runs, 2);
        assert_eq!(std::fs::read_to_string(&stamp).unwrap(), "r1\nr2\n");
    }

    #[test]
    fn the_stamp_keeps_the_last_runs() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = dir.path().join("e");
        for i in 0..20 {
            once_in_run(&stamp, Some(&format!("r{i}")), || Ok(())).unwrap();
        }
        let runs = std::fs::read_to_string(&stamp).unwrap();
        assert_eq!(
            runs.lines().collect::<Vec<_>>(),
            (12..20).map(|i| format!("r{i}")).collect::<Vec<_>>()
        );
        let mut again = false;
        once_in_run(&stamp, Some("r3"), || {
            again = true;
            Ok(())
        })
        .unwrap();
        assert!(again, "a run dropped from the stamp does the work again");
    }

    #[test]
    fn without_a_run_the_work_is_always_done() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = dir.path().join("d");
        let mut runs = 0;
        for _ in 0..2 {
            once_in_run(&stamp, None, || {
                runs += 1;
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(runs, 2);
        assert!(!stamp.exists());
    }

    #[test]
    fn failed_work_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = dir.path().join("b");
        assert!(once_in_run(&stamp, Some("r1"), || anyhow::bail!("no")).is_err());
        assert!(!stamp.exists());
        let mut runs = 0;
        once_in_run(&stamp, Some("r1"), || {
            runs += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(runs, 1);
    }
}
