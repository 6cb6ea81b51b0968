//! Reading and writing the nat table: `iptables-save` and `iptables-restore --noflush`
//! for real, a recording fake for tests.

use std::sync::Mutex;

use tokio::io::AsyncWriteExt;

/// Reads and replaces the nat table's rules.
#[async_trait::async_trait]
pub trait Applier: Send + Sync + 'static {
    /// `iptables-save -t nat`.
    async fn save(&self) -> Result<String, String>;
    /// `iptables-restore --noflush` of `input`: applied all at once, or not at all.
    async fn restore(&self, input: &str) -> Result<(), String>;
}

/// [`Applier`] through the `iptables-save` and `iptables-restore` programs, run directly
/// or under a prefix (`ip netns exec NAME`, for a private network namespace).
#[derive(Clone, Debug, Default)]
pub struct IptablesApplier {
    prefix: Vec<String>,
}

impl IptablesApplier {
    pub fn new() -> IptablesApplier {
        IptablesApplier::default()
    }

    /// Runs the programs as `prefix… iptables-restore …`.
    pub fn with_prefix(prefix: &[&str]) -> IptablesApplier {
        IptablesApplier {
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn command(&self, program: &str, args: &[&str]) -> tokio::process::Command {
        let mut words: Vec<&str> = self.prefix.iter().map(String::as_str).collect();
        words.push(program);
        words.extend(args);
        let mut command = tokio::process::Command::new(words[0]);
        command.args(&words[1..]).kill_on_drop(true);
        command
    }
}

#[async_trait::async_trait]
impl Applier for IptablesApplier {
    async fn save(&self) -> Result<String, String> {
        let out = self
            .command("iptables-save", &["-t", "nat"])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| format!("running iptables-save: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "iptables-save -t nat: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn restore(&self, input: &str) -> Result<(), String> {
        let mut child = self
            .command("iptables-restore", &["--noflush", "-w", "5"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("running iptables-restore: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .await
                .map_err(|e| format!("writing to iptables-restore: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| format!("waiting for iptables-restore: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "iptables-restore --noflush: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

/// An [`Applier`] that records what it is given and answers `save` with a table it keeps
/// the way iptables would (chains created, flushed, rules appended and deleted, chains
/// removed), so that the proxy's syncs can be tested without iptables.
#[derive(Default)]
pub struct FakeApplier {
    state: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    /// Chains in order of creation, with their rules (without `-A CHAIN`).
    chains: Vec<(String, Vec<String>)>,
    restores: Vec<String>,
    saves: usize,
    fail: bool,
}

impl FakeApplier {
    pub fn new() -> FakeApplier {
        let fake = FakeApplier::default();
        {
            let mut s = fake.lock();
            for chain in super::rules::BUILT_IN.iter().chain(&["INPUT"]) {
                s.chains.push((chain.to_string(), Vec::new()));
            }
        }
        fake
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every restore input so far.
    pub fn restores(&self) -> Vec<String> {
        self.lock().restores.clone()
    }

    pub fn saves(&self) -> usize {
        self.lock().saves
    }

    /// Makes restores fail (or work again).
    pub fn set_failing(&self, fail: bool) {
        self.lock().fail = fail;
    }

    /// Something else changes the table: runs `f` on its chains.
    pub fn tamper(&self, f: impl FnOnce(&mut Vec<(String, Vec<String>)>)) {
        f(&mut self.lock().chains);
    }

    /// The table as `iptables-save` would print it.
    pub fn table(&self) -> String {
        let s = self.lock();
        let mut out = String::from("*nat\n");
        for (name, _) in &s.chains {
            let policy = if super::rules::BUILT_IN.contains(&name.as_str()) || name == "INPUT" {
                "ACCEPT"
            } else {
                "-"
            };
            out.push_str(&format!(":{name} {policy} [0:0]\n"));
        }
        for (name, rules) in &s.chains {
            for rule in rules {
                out.push_str(&format!("-A {name} {rule}\n"));
            }
        }
        out.push_str("COMMIT\n");
        out
    }
}

#[async_trait::async_trait]
impl Applier for FakeApplier {
    async fn save(&self) -> Result<String, String> {
        self.lock().saves += 1;
        Ok(self.table())
    }

    async fn restore(&self, input: &str) -> Result<(), String> {
        let mut s = self.lock();
        s.restores.push(input.to_string());
        if s.fail {
            return Err("iptables-restore: failing as told".into());
        }
        // All or nothing, like the real one.
        let mut chains = s.chains.clone();
        for line in input.lines() {
            let find = |chains: &Vec<(String, Vec<String>)>, name: &str| {
                chains.iter().position(|(n, _)| n == name)
            };
            if let Some(decl) = line.strip_prefix(':') {
                let name = decl.split_whitespace().next().unwrap_or("").to_string();
                match find(&chains, &name) {
                    Some(i) => chains[i].1.clear(),
                    None => chains.push((name, Vec::new())),
                }
            } else if let Some(rest) = line.strip_prefix("-A ") {
                let (chain, rule) = rest.split_once(' ').unwrap_or((rest, ""));
                let target = rule.split_whitespace().skip_while(|w| *w != "-j").nth(1);
                if let Some(t) = target
                    && t.starts_with("MINIK8S-")
                    && find(&chains, t).is_none()
                {
                    return Err(format!("Chain '{t}' does not exist"));
                }
                let i = find(&chains, chain).ok_or(format!("no chain {chain}"))?;
                chains[i].1.push(rule.to_string());
            } else if let Some(rest) = line.strip_prefix("-D ") {
                let (chain, rule) = rest.split_once(' ').unwrap_or((rest, ""));
                let i = find(&chains, chain).ok_or(format!("no chain {chain}"))?;
                let j = chains[i]
                    .1
                    .iter()
                    .position(|r| r == rule)
                    .ok_or(format!("no such rule in {chain}: {rule}"))?;
                chains[i].1.remove(j);
            } else if let Some(name) = line.strip_prefix("-X ") {
                let in_use = chains
                    .iter()
                    .flat_map(|(_, rules)| rules)
                    .any(|r| r.ends_with(&format!("-j {name}")));
                if in_use {
                    return Err(format!("chain {name} is in use"));
                }
                let i = find(&chains, name).ok_or(format!("no chain {name}"))?;
                chains.remove(i);
            }
        }
        s.chains = chains;
        Ok(())
    }
}
