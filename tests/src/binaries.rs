//! The workspace's own binaries (`minik8s-cmd`'s apiserver, kubectl, kubelet, minik8s),
//! for tests that start them as processes.
//!
//! The test binaries do not depend on them, so cargo does not build them first: the first
//! test of a run that needs one runs `cargo build` for it, and the others of that run use
//! what it built ([`crate::once`]). A `cargo build` for every test would take cargo's lock
//! on the target directory each time, and tests would queue behind one another's builds.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::kubelet::repo_root;
use crate::once::once_per_run;

/// Builds the `kubelet` binary (once per test run) next to the running test's, and
/// returns its path.
pub fn kubelet_binary() -> anyhow::Result<PathBuf> {
    cmd_binary("kubelet")
}

/// Builds one of the `minik8s-cmd` binaries (once per test run and name) next to the
/// running test's, in the same profile, and returns its path.
pub fn cmd_binary(name: &str) -> anyhow::Result<PathBuf> {
    // .../target/{profile}/deps/{test binary}
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("locating the target directory")?;
    let path = profile_dir.join(name);
    let stamp = profile_dir.join("minik8s-test-stamps").join(name);
    once_per_run(&stamp, || build(profile_dir, name))?;
    if !path.is_file() {
        // Removed during the run (`cargo clean`, say): build it again.
        build(profile_dir, name)?;
    }
    Ok(path)
}

fn build(profile_dir: &Path, name: &str) -> anyhow::Result<()> {
    let target_dir = profile_dir
        .parent()
        .context("locating the target directory")?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(repo_root())
        .args(["build", "--quiet", "-p", "minik8s-cmd", "--bin", name])
        .env("CARGO_TARGET_DIR", target_dir);
    if profile == "release" {
        command.arg("--release");
    }
    let status = command
        .status()
        .with_context(|| format!("building the {name} binary"))?;
    if !status.success() {
        bail!("building the {name} binary failed");
    }
    Ok(())
}
