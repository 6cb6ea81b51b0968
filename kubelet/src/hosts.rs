//! Pod discovery through `/etc/hosts`.
//!
//! Every pod (but a `hostNetwork` one) gets a hosts file of its own, owned by the kubelet
//! and bind-mounted at `/etc/hosts` into its init and app containers: the localhost lines,
//! then one line per member of the pod's group, then the pod's `hostAliases`. A group is
//! the pods of one namespace that share a non-empty `spec.subdomain`; each member is
//! named by its hostname (`spec.hostname`, else the pod's name) and by
//! `hostname.subdomain`. A pod without a subdomain gets its own line only.
//!
//! The kubelet follows the members of every group that has a pod on this node — one
//! watch per group, `fieldSelector=spec.subdomain=X` in the group's namespace, started
//! with the first pod of the group on the node and stopped with the last — and rewrites
//! the files of the group's pods whenever a member's address changes. A pod's own address
//! is known from Docker as soon as its pause container runs, before the API server has
//! it, and is used at once (for the other pods of the node too).
//!
//! Files are rewritten **in place**: a bind mount pins the inode, so a file replaced by a
//! rename would never be seen inside the container. The whole new content goes in with
//! one positioned write at offset 0, and the file never shrinks: content shorter than the
//! file is padded with a trailing comment line of spaces to the file's length. A reader
//! sees the old content or the new one, never a mix or a truncated file.
//!
//! The annotation [`ON_PEERS_CHANGE`] names a command that the kubelet runs with
//! `sh -c` in the pod's first app container, the peer list (`IP name` lines) on its
//! stdin, each time the list changes.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::net::IpAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{HostAlias, Pod};
use minik8s_client::{Api, Client, ListParams, WatcherEvent, watcher};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::events::{Recorder, WARNING, pod_reference};
use crate::labels::{self, ContainerKey, Role};
use crate::pod::spec::{self, spec};
use crate::runtime::{ContainerRuntime, ContainerState};

/// The annotation whose value is run (`sh -c`) in the pod's first app container, with
/// the peer list on stdin, whenever the pod's group changes.
pub const ON_PEERS_CHANGE: &str = "minik8s.io/on-peers-change";

/// The hosts file's name in the pod's directory.
pub const HOSTS_FILE: &str = "etc-hosts";

/// Where the hosts file is mounted.
pub const MOUNT_PATH: &str = "/etc/hosts";

const LOCALHOST: &str = "127.0.0.1 localhost\n\
::1     localhost ip6-localhost ip6-loopback\n\
fe00::0 ip6-localnet\n\
fe00::0 ip6-mcastprefix\n\
fe00::1 ip6-allnodes\n\
fe00::2 ip6-allrouters\n";

/// How long the hook may run.
const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a pod's first hosts file waits for its group's first list.
const FIRST_LIST_WAIT: Duration = Duration::from_secs(2);

/// A group: the pods of a namespace with one subdomain.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub namespace: String,
    pub subdomain: String,
}

/// The pod's group, if it has a subdomain.
pub fn group_of(pod: &Pod) -> Option<GroupKey> {
    let subdomain = spec(pod).subdomain.clone().filter(|s| !s.is_empty())?;
    Some(GroupKey {
        namespace: pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        subdomain,
    })
}

/// A pod as a member of its group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub pod: String,
    pub uid: String,
    pub hostname: String,
    pub ip: Option<IpAddr>,
}

impl Member {
    /// The pod as the API server has it: its hostname and `status.podIP`.
    pub fn of(pod: &Pod) -> Member {
        Member {
            pod: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            hostname: spec::hostname(pod),
            ip: pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok()),
        }
    }
}

/// Whether a pod of a group is listed: a finished pod has no address any more.
pub fn is_listed(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// One line of the group: an address and a hostname.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub hostname: String,
    pub ip: IpAddr,
}

/// The entries of `own`'s file: the group's `known` members (from the API server) with
/// `own` in place of its API copy, addresses taken from `local_ips` (pod uid → address,
/// as this node's Docker has them) where known; members without an address left out;
/// sorted by name.
pub fn entries(own: &Member, known: &[Member], local_ips: &HashMap<String, IpAddr>) -> Vec<Entry> {
    let mut by_pod: BTreeMap<&str, Member> = BTreeMap::new();
    for m in known {
        by_pod.insert(&m.pod, m.clone());
    }
    let api_ip = by_pod
        .get(own.pod.as_str())
        .filter(|m| m.uid == own.uid)
        .and_then(|m| m.ip);
    let mut me = own.clone();
    me.ip = own.ip.or(api_ip);
    by_pod.insert(&own.pod, me);
    let mut out: Vec<Entry> = by_pod
        .into_values()
        .filter_map(|m| {
            let ip = local_ips.get(&m.uid).copied().or(m.ip)?;
            Some(Entry {
                hostname: m.hostname,
                ip,
            })
        })
        .collect();
    out.sort();
    out
}

/// The hosts file: localhost lines, one line per entry (`IP   name name.subdomain`), and
/// the host aliases as Kubernetes appends them.
pub fn render(entries: &[Entry], subdomain: Option<&str>, aliases: &[HostAlias]) -> String {
    render_with_own(None, entries, subdomain, aliases)
}

/// The line Kubernetes' kubelet writes for a pod with a hostname and a subdomain:
/// `IP<tab>hostname.subdomain.<ns>.svc.<domain><tab>hostname`.
pub fn own_line(
    ip: IpAddr,
    hostname: &str,
    subdomain: &str,
    namespace: &str,
    domain: &str,
) -> String {
    format!("{ip}\t{hostname}.{subdomain}.{namespace}.svc.{domain}\t{hostname}\n")
}

/// [`render`] with the pod's own line ([`own_line`]) right after the localhost lines.
pub fn render_with_own(
    own: Option<&str>,
    entries: &[Entry],
    subdomain: Option<&str>,
    aliases: &[HostAlias],
) -> String {
    let mut out = String::from(LOCALHOST);
    if let Some(own) = own {
        out.push_str(own);
    }
    for e in entries {
        match subdomain {
            Some(sub) => out.push_str(&format!("{}   {} {}.{sub}\n", e.ip, e.hostname, e.hostname)),
            None => out.push_str(&format!("{}   {}\n", e.ip, e.hostname)),
        }
    }
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names = a.hostnames.clone().unwrap_or_default().join("\t");
            out.push_str(&format!("{}\t{names}\n", a.ip));
        }
    }
    out
}

/// The peer list the hook gets: `IP name` lines.
pub fn peer_list(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| format!("{} {}\n", e.ip, e.hostname))
        .collect()
}

/// `content`, padded to at least `len` bytes with a trailing comment line of spaces (a
/// lone newline when a single byte is missing). `content` ends with a newline.
pub fn pad(content: &str, len: usize) -> Vec<u8> {
    let mut out = content.as_bytes().to_vec();
    match len.saturating_sub(out.len()) {
        0 => {}
        1 => out.push(b'\n'),
        missing => {
            out.push(b'#');
            out.extend(std::iter::repeat_n(b' ', missing - 2));
            out.push(b'\n');
        }
    }
    out
}

/// The meaningful part of a hosts file: without the padding line.
pub fn unpadded(file: &str) -> &str {
    let Some(body) = file.strip_suffix('\n') else {
        return file;
    };
    let start = body.rfind('\n').map_or(0, |i| i + 1);
    let last = &body[start..];
    let padding = last.is_empty()
        || last
            .strip_prefix('#')
            .is_some_and(|rest| rest.bytes().all(|b| b == b' '));
    if padding { &file[..start] } else { file }
}

/// Writes `content` into the file at `path` in place (creating it if needed): one
/// positioned write at offset 0 of the padded content, so that the inode stays and a
/// reader never sees a partial file. Returns whether anything changed.
pub fn write_in_place(path: &Path, content: &str) -> std::io::Result<bool> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let mut current = Vec::new();
    file.read_to_end(&mut current)?;
    let data = pad(content, current.len());
    if data == current {
        return Ok(false);
    }
    let mut done = 0;
    while done < data.len() {
        // One call for a regular file; the loop only guards against short writes.
        let n = file.write_at(&data[done..], done as u64)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        done += n;
    }
    Ok(true)
}

#[derive(Debug, Default)]
struct Hook {
    /// The peer list it last ran with.
    last: Option<String>,
    running: bool,
}

/// A pod of this node with a hosts file.
struct Local {
    pod: Pod,
    own: Member,
    group: Option<GroupKey>,
    path: PathBuf,
    /// The current peer list.
    peers: String,
    hook: Hook,
}

struct Group {
    /// Listed members by pod name, from the group's watch.
    members: BTreeMap<String, Member>,
    listed: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct State {
    pods: HashMap<String, Local>,
    groups: HashMap<GroupKey, Group>,
    /// The cluster domain of the pods' own fully qualified line; none when `None`.
    cluster_domain: Option<String>,
}

/// The hosts files of this node's pods, and the group watches that keep them current.
pub struct Hosts {
    me: Weak<Hosts>,
    /// None: no watches (tests of the pod worker).
    client: Option<Client>,
    runtime: Arc<dyn ContainerRuntime>,
    recorder: Recorder,
    node_name: String,
    root_dir: PathBuf,
    state: Mutex<State>,
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

impl Hosts {
    pub fn new(
        client: Option<Client>,
        runtime: Arc<dyn ContainerRuntime>,
        recorder: Recorder,
        node_name: &str,
        root_dir: &Path,
    ) -> Arc<Hosts> {
        Arc::new_cyclic(|me| Hosts {
            me: me.clone(),
            client,
            runtime,
            recorder,
            node_name: node_name.to_string(),
            root_dir: root_dir.to_path_buf(),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the pod's hosts file is.
    /// Gives every pod with a hostname and a subdomain its fully qualified name in the
    /// cluster domain ([`own_line`]), as Kubernetes' kubelet does.
    pub fn set_cluster_domain(&self, domain: &str) {
        self.lock().cluster_domain = Some(domain.to_string()).filter(|d| !d.is_empty());
    }

    pub fn path(&self, uid: &str) -> PathBuf {
        spec::pod_dir(&self.root_dir, uid).join(HOSTS_FILE)
    }

    /// Registers (or updates) a pod of this node with its address as far as it is known,
    /// writes its hosts file and returns the file to mount at `/etc/hosts`: `None` for a
    /// `hostNetwork` pod, which keeps the host's. The first time a group is seen, its
    /// first list is awaited (briefly) so that the file has the peers from the start.
    pub async fn prepare(&self, pod: &Pod, ip: Option<IpAddr>) -> std::io::Result<Option<PathBuf>> {
        if spec(pod).host_network == Some(true) {
            return Ok(None);
        }
        let uid = uid_of(pod);
        let path = self.path(&uid);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let group = group_of(pod);
        let mut own = Member::of(pod);
        own.ip = ip;
        let first_list = {
            let mut state = self.lock();
            let previous = state.pods.get(&uid).and_then(|l| l.group.clone());
            let first_list = group.as_ref().and_then(|g| self.follow(&mut state, g));
            match state.pods.get_mut(&uid) {
                Some(local) => {
                    local.pod = pod.clone();
                    local.own = own;
                    local.group = group.clone();
                }
                None => {
                    state.pods.insert(
                        uid.clone(),
                        Local {
                            pod: pod.clone(),
                            own,
                            group: group.clone(),
                            path: path.clone(),
                            peers: String::new(),
                            hook: Hook::default(),
                        },
                    );
                }
            }
            if let Some(previous) = previous.filter(|p| Some(p) != group.as_ref()) {
                Self::release_if_unused(&mut state, &previous);
            }
            first_list
        };
        if let Some(mut listed) = first_list {
            let _ = tokio::time::timeout(FIRST_LIST_WAIT, listed.wait_for(|l| *l)).await;
        }
        match &group {
            Some(g) => self.refresh_group(g),
            None => self.refresh_pods(std::slice::from_ref(&uid)),
        }
        // A write error of the group refresh is logged; the pod's own is its caller's.
        let state = self.lock();
        if let Some(local) = state.pods.get(&uid) {
            self.write(&state, local)?;
        }
        drop(state);
        self.poke_hook(&uid);
        Ok(Some(path))
    }

    /// Starts following the group if nobody does; returns a receiver to wait on when the
    /// group's first list has not arrived yet.
    fn follow(&self, state: &mut State, key: &GroupKey) -> Option<watch::Receiver<bool>> {
        if let Some(g) = state.groups.get(key) {
            return (!*g.listed.borrow()).then(|| g.listed.subscribe());
        }
        let (listed, rx) = watch::channel(false);
        let task = self.client.clone().map(|client| {
            tracing::debug!(namespace = %key.namespace, subdomain = %key.subdomain,
                "following a pod group");
            tokio::spawn(follow_group(self.me.clone(), client, key.clone()))
        });
        if task.is_none() {
            listed.send_replace(true);
        }
        state.groups.insert(
            key.clone(),
            Group {
                members: BTreeMap::new(),
                listed,
                task,
            },
        );
        task_waiting(state, key).then_some(rx)
    }

    /// Stops following a group no pod of this node is in any more. Returns whether it
    /// did.
    fn release_if_unused(state: &mut State, key: &GroupKey) -> bool {
        if state.pods.values().any(|l| l.group.as_ref() == Some(key)) {
            return false;
        }
        if let Some(group) = state.groups.remove(key)
            && let Some(task) = group.task
        {
            tracing::debug!(namespace = %key.namespace, subdomain = %key.subdomain,
                "no longer following a pod group");
            task.abort();
        }
        true
    }

    /// The pod is finished or gone from this node: its address is no longer this node's
    /// to tell, and its group is no longer followed if it was the last one here.
    pub fn forget(&self, uid: &str) {
        let group = {
            let mut state = self.lock();
            let Some(local) = state.pods.remove(uid) else {
                return;
            };
            match local.group {
                Some(g) if !Self::release_if_unused(&mut state, &g) => Some(g),
                _ => None,
            }
        };
        if let Some(g) = group {
            self.refresh_group(&g);
        }
    }

    /// Stops every group watch (the kubelet is stopping).
    pub fn stop(&self) {
        let mut state = self.lock();
        for (_, group) in state.groups.drain() {
            if let Some(task) = group.task {
                task.abort();
            }
        }
    }

    /// The group's members as listed by the API server.
    fn set_members(&self, key: &GroupKey, pods: Vec<Pod>, replace: bool) {
        {
            let mut state = self.lock();
            let Some(group) = state.groups.get_mut(key) else {
                return;
            };
            if replace {
                group.members.clear();
            }
            for pod in pods {
                let name = pod.metadata.name.clone().unwrap_or_default();
                if group_of(&pod).as_ref() == Some(key) && is_listed(&pod) {
                    group.members.insert(name, Member::of(&pod));
                } else {
                    group.members.remove(&name);
                }
            }
            if replace {
                group.listed.send_replace(true);
            }
        }
        self.refresh_group(key);
    }

    fn remove_member(&self, key: &GroupKey, pod: &Pod) {
        {
            let mut state = self.lock();
            let Some(group) = state.groups.get_mut(key) else {
                return;
            };
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            // A pod re-created under the same name may be listed already.
            if group
                .members
                .get(name)
                .is_none_or(|m| Some(&m.uid) != pod.metadata.uid.as_ref())
            {
                return;
            }
            group.members.remove(name);
        }
        self.refresh_group(key);
    }

    /// Rewrites the files of this node's pods in the group, and runs their hooks.
    fn refresh_group(&self, key: &GroupKey) {
        let uids: Vec<String> = {
            let state = self.lock();
            state
                .pods
                .iter()
                .filter(|(_, l)| l.group.as_ref() == Some(key))
                .map(|(uid, _)| uid.clone())
                .collect()
        };
        self.refresh_pods(&uids);
    }

    fn refresh_pods(&self, uids: &[String]) {
        {
            let mut state = self.lock();
            for uid in uids {
                let Some(local) = state.pods.get(uid) else {
                    continue;
                };
                let peers = match self.write(&state, local) {
                    Ok(peers) => peers,
                    Err(e) => {
                        tracing::warn!(pod = ?local.pod.metadata.name, error = %e,
                            "writing the pod's hosts file");
                        continue;
                    }
                };
                if let Some(local) = state.pods.get_mut(uid) {
                    local.peers = peers;
                }
            }
        }
        for uid in uids {
            self.poke_hook(uid);
        }
    }

    /// Writes the pod's file from what is known now; returns its peer list.
    fn write(&self, state: &State, local: &Local) -> std::io::Result<String> {
        let local_ips: HashMap<String, IpAddr> = state
            .pods
            .iter()
            .filter_map(|(uid, l)| Some((uid.clone(), l.own.ip?)))
            .collect();
        let (known, subdomain): (Vec<Member>, Option<&str>) = match &local.group {
            Some(g) => (
                state
                    .groups
                    .get(g)
                    .map(|g| g.members.values().cloned().collect())
                    .unwrap_or_default(),
                Some(g.subdomain.as_str()),
            ),
            None => (Vec::new(), None),
        };
        // This node's pods of the group count before the API server has them.
        let mut known = known;
        for l in state.pods.values() {
            if l.group.is_some()
                && l.group == local.group
                && !known.iter().any(|m| m.pod == l.own.pod)
            {
                known.push(l.own.clone());
            }
        }
        let entries = entries(&local.own, &known, &local_ips);
        let aliases = spec(&local.pod).host_aliases.clone().unwrap_or_default();
        let own = match (&state.cluster_domain, &local.group, local.own.ip) {
            (Some(domain), Some(g), Some(ip)) => Some(own_line(
                ip,
                &local.own.hostname,
                &g.subdomain,
                &g.namespace,
                domain,
            )),
            _ => None,
        };
        let content = render_with_own(own.as_deref(), &entries, subdomain, &aliases);
        if write_in_place(&local.path, &content)? {
            tracing::debug!(pod = ?local.pod.metadata.name, "hosts file updated");
        }
        Ok(peer_list(&entries))
    }

    /// Runs the pod's hook if its peer list changed since it last ran and its first app
    /// container runs; one run at a time per pod.
    pub fn poke_hook(&self, uid: &str) {
        let (pod, command, peers) = {
            let mut state = self.lock();
            let Some(local) = state.pods.get_mut(uid) else {
                return;
            };
            let Some(command) = local
                .pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ON_PEERS_CHANGE))
                .filter(|c| !c.trim().is_empty())
                .cloned()
            else {
                return;
            };
            if local.hook.running
                || local.peers.is_empty()
                || local.hook.last.as_ref() == Some(&local.peers)
            {
                return;
            }
            local.hook.running = true;
            (local.pod.clone(), command, local.peers.clone())
        };
        let Some(hosts) = self.me.upgrade() else {
            return;
        };
        let uid = uid.to_string();
        tokio::spawn(async move {
            let ran = hosts.run_hook(&pod, &command, &peers).await;
            if let Some(local) = hosts.lock().pods.get_mut(&uid) {
                local.hook.running = false;
                if ran {
                    local.hook.last = Some(peers);
                }
            }
            if ran {
                // The list may have changed while it ran.
                hosts.poke_hook(&uid);
            }
        });
    }

    /// Runs the hook in the first app container; false when that container does not run
    /// (yet): it is tried again later. A failing hook counts as run.
    async fn run_hook(&self, pod: &Pod, command: &str, peers: &str) -> bool {
        let Some(container) = spec(pod).containers.first().map(|c| c.name.clone()) else {
            return true;
        };
        let uid = uid_of(pod);
        let containers = match self
            .runtime
            .list_containers(&labels::pod_selector(&self.node_name, &uid))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%uid, error = %e, "listing the pod's containers for its hook");
                return false;
            }
        };
        let Some(target) = containers
            .iter()
            .filter(|c| c.state == ContainerState::Running)
            .filter_map(|c| Some((ContainerKey::from_labels(&c.labels)?, c)))
            .filter(|(k, _)| k.role == Role::App && k.container == container)
            .max_by_key(|(k, _)| k.attempt)
            .map(|(_, c)| c.id.clone())
        else {
            return false;
        };
        let exec = [
            "sh".to_string(),
            "-c".to_string(),
            // $0 is the command, $1 the peer list.
            "printf '%s' \"$1\" | sh -c \"$0\"".to_string(),
            command.to_string(),
            peers.to_string(),
        ];
        let failure = match self.runtime.exec(&target, &exec, HOOK_TIMEOUT).await {
            Ok(out) if out.exit_code == 0 => {
                tracing::info!(pod = ?pod.metadata.name, "peers-change hook ran");
                None
            }
            Ok(out) => Some(format!(
                "exited with code {}: {}",
                out.exit_code,
                out.output.trim()
            )),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = failure {
            tracing::warn!(pod = ?pod.metadata.name, error = %why, "the peers-change hook failed");
            self.recorder.event(
                pod_reference(pod, Some(format!("spec.containers{{{container}}}"))),
                WARNING,
                "FailedPeersChangeHook",
                &format!("{ON_PEERS_CHANGE} hook {why}"),
            );
        }
        true
    }
}

/// Whether the group's first list is still awaited.
fn task_waiting(state: &State, key: &GroupKey) -> bool {
    state
        .groups
        .get(key)
        .is_some_and(|g| g.task.is_some() && !*g.listed.borrow())
}

/// Follows the pods of one group for as long as the kubelet does.
async fn follow_group(hosts: Weak<Hosts>, client: Client, key: GroupKey) {
    let api = Api::<Pod>::namespaced(client, &key.namespace);
    let params = ListParams::default().fields(&format!("spec.subdomain={}", key.subdomain));
    let mut events = watcher(api, params).boxed();
    while let Some(event) = events.next().await {
        let Some(hosts) = hosts.upgrade() else {
            return;
        };
        match event {
            Ok(WatcherEvent::Restarted(pods)) => hosts.set_members(&key, pods, true),
            Ok(WatcherEvent::Applied(pod)) => hosts.set_members(&key, vec![pod], false),
            Ok(WatcherEvent::Deleted(pod)) => hosts.remove_member(&key, &pod),
            Err(e) => tracing::warn!(namespace = %key.namespace, subdomain = %key.subdomain,
                error = %e, "watching a pod group"),
        }
    }
}

#[cfg(test)]
mod tests;
