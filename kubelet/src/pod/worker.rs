//! The pod worker: one per pod, reconciling. Each pass lists the pod's containers in
//! Docker (by label), compares them with the spec, acts — create the pause container,
//! run init containers in order, start, restart (with back-off) or kill app containers —
//! and sends the status if it changed. It keeps no state that matters: back-off timers and
//! probe results are lost on a restart, as in Kubernetes, and everything else is read
//! back from Docker, so a pass is safe to run any number of times.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, ObjectReference, Pod, PodStatus};
use tokio::sync::Notify;

use super::api::PodApi;
use super::probe::Prober;
use super::service_env::ServiceCache;
use super::spec::{self, spec};
use super::status::{self, Effective, Observed as ContainerView, Snapshot, is_terminal};
use crate::backoff::{Backoff, go_duration};
use crate::events::{NORMAL, Recorder, WARNING, pod_reference};
use crate::hosts::Hosts;
use crate::ipam::Ipam;
use crate::labels::{self, ContainerKey, Role};
use crate::objects::ConfigObjects;
use crate::runtime::{ContainerInfo, ContainerRuntime, ContainerState, RuntimeError};
use crate::{KubeletConfig, Result};

/// The first wait before sending a status again that the API server did not take; it
/// doubles with each failure (the resync interval caps it).
const STATUS_RETRY: Duration = Duration::from_secs(1);

/// How long a pause container gets to stop: it exits on SIGTERM at once.
const SANDBOX_GRACE: Duration = Duration::from_secs(2);
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// What every pod worker of a node shares.
pub struct WorkerEnv {
    pub runtime: Arc<dyn ContainerRuntime>,
    pub api: Arc<dyn PodApi>,
    pub recorder: Recorder,
    pub node_name: String,
    /// The node's pod network.
    pub network: String,
    pub host_ip: Option<IpAddr>,
    pub root_dir: PathBuf,
    pub pause_image: String,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub image_pull_timeout: Duration,
    /// The pods' hosts files.
    pub hosts: Arc<Hosts>,
    /// Pod addresses, chosen by the kubelet; Docker's own choice when `None`.
    pub ipam: Option<Arc<Ipam>>,
    /// The cluster's services, for the containers' service variables.
    pub services: Arc<ServiceCache>,
    /// The ConfigMaps and Secrets of the pods' environments and volumes.
    pub objects: Arc<ConfigObjects>,
    /// How pods' `/etc/resolv.conf` is formed.
    pub dns: crate::resolv::PodDns,
}

impl WorkerEnv {
    pub fn new(
        config: &KubeletConfig,
        runtime: Arc<dyn ContainerRuntime>,
        api: Arc<dyn PodApi>,
        recorder: Recorder,
        host_ip: Option<IpAddr>,
        client: Option<minik8s_client::Client>,
        ipam: Option<Arc<Ipam>>,
    ) -> WorkerEnv {
        let services = match &client {
            Some(client) => ServiceCache::follow(client.clone()),
            None => ServiceCache::fixed(Vec::new()),
        };
        let objects = match &client {
            Some(client) => ConfigObjects::follow(client.clone()),
            None => ConfigObjects::fixed(Vec::new(), Vec::new()),
        };
        let hosts = Hosts::new(
            client,
            runtime.clone(),
            recorder.clone(),
            &config.node_name,
            &config.root_dir,
        );
        hosts.set_cluster_domain(&config.cluster_domain);
        WorkerEnv {
            runtime,
            api,
            recorder,
            node_name: config.node_name.clone(),
            network: config.network_name(),
            host_ip,
            root_dir: config.root_dir.clone(),
            pause_image: config.pause_image.clone(),
            backoff_base: config.backoff_base,
            backoff_max: config.backoff_max,
            image_pull_timeout: config.image_pull_timeout,
            hosts,
            ipam,
            services,
            objects,
            dns: crate::resolv::PodDns {
                cluster_dns: config.cluster_dns,
                cluster_domain: config.cluster_domain.clone(),
                resolv_conf: config.resolv_conf.clone(),
            },
        }
    }
}

/// What the worker wants after a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Look again after this long at the latest (or at the next event).
    After(Option<Duration>),
    /// The pod is gone: the worker is finished.
    Done,
}

/// The pod's containers in Docker, grouped.
#[derive(Debug, Default)]
struct Observed {
    /// Pause containers, oldest attempt first.
    sandboxes: Vec<ContainerInfo>,
    /// Init and app containers by name, oldest attempt first.
    by_name: HashMap<String, Vec<ContainerInfo>>,
    all: Vec<ContainerInfo>,
}

fn attempt(info: &ContainerInfo) -> u32 {
    ContainerKey::from_labels(&info.labels).map_or(0, |k| k.attempt)
}

impl Observed {
    fn new(containers: Vec<ContainerInfo>) -> Observed {
        let mut o = Observed::default();
        for c in &containers {
            let Some(key) = ContainerKey::from_labels(&c.labels) else {
                continue;
            };
            match key.role {
                Role::Sandbox => o.sandboxes.push(c.clone()),
                Role::Init | Role::App => {
                    o.by_name.entry(key.container).or_default().push(c.clone())
                }
            }
        }
        let order = |a: &ContainerInfo, b: &ContainerInfo| {
            (attempt(a), a.created_at).cmp(&(attempt(b), b.created_at))
        };
        o.sandboxes.sort_by(order);
        o.by_name.values_mut().for_each(|v| v.sort_by(order));
        o.all = containers;
        o
    }

    fn sandbox(&self) -> Option<&ContainerInfo> {
        self.sandboxes.last()
    }

    fn running_sandbox(&self) -> Option<&ContainerInfo> {
        self.sandbox()
            .filter(|s| s.state == ContainerState::Running)
    }

    fn next_sandbox_attempt(&self) -> u32 {
        self.sandbox().map_or(0, |s| attempt(s) + 1)
    }

    fn latest(&self, name: &str) -> Option<&ContainerInfo> {
        self.by_name.get(name).and_then(|v| v.last())
    }

    fn previous(&self, name: &str) -> Option<&ContainerInfo> {
        self.by_name
            .get(name)
            .and_then(|v| v.len().checked_sub(2).map(|i| &v[i]))
    }

    fn next_attempt(&self, name: &str) -> u32 {
        self.latest(name).map_or(0, |c| attempt(c) + 1)
    }

    fn running(&self) -> impl Iterator<Item = &ContainerInfo> {
        self.all
            .iter()
            .filter(|c| c.state == ContainerState::Running)
    }
}

/// What one pass decided that Docker cannot tell: why containers wait, and when to look
/// again.
#[derive(Debug, Default)]
struct Pass {
    waiting: HashMap<String, (String, String)>,
    wake: Option<Duration>,
}

impl Pass {
    fn wait(&mut self, container: &str, reason: &str, message: impl Into<String>) {
        self.waiting
            .insert(container.to_string(), (reason.to_string(), message.into()));
    }

    fn wake_in(&mut self, after: Duration) {
        self.wake = Some(self.wake.map_or(after, |w| w.min(after)));
    }
}

fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

fn seconds(n: i64) -> Duration {
    Duration::from_secs(u64::try_from(n).unwrap_or(0))
}

/// The grace period of a pod being stopped: the deletion's, else the spec's.
fn grace_period(pod: &Pod) -> Duration {
    let s = pod
        .metadata
        .deletion_grace_period_seconds
        .or(spec(pod).termination_grace_period_seconds)
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    seconds(s)
}

fn pod_label(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

fn field_path(role: Role, name: &str) -> String {
    match role {
        Role::Init => format!("spec.initContainers{{{name}}}"),
        _ => format!("spec.containers{{{name}}}"),
    }
}

fn resource_version(pod: &Pod) -> u64 {
    pod.metadata
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// Stops and removes every container of the pod `uid` on this node and its directory:
/// for a pod deleted from the API (also while the kubelet was down).
pub async fn cleanup_pod(env: &WorkerEnv, uid: &str, grace: Option<Duration>) -> Result<()> {
    let containers = env
        .runtime
        .list_containers(&labels::pod_selector(&env.node_name, uid))
        .await?;
    let grace = grace.unwrap_or_else(|| {
        containers
            .iter()
            .find_map(|c| c.labels.get(labels::POD_GRACE_PERIOD)?.parse().ok())
            .map_or(seconds(DEFAULT_GRACE_SECONDS), seconds)
    });
    env.hosts.forget(uid);
    stop_containers(env, &containers, grace).await;
    for c in &containers {
        env.runtime.remove_container(&c.id).await?;
    }
    remove_pod_dir(env, uid);
    Ok(())
}

/// Stops the running containers, app and init containers together with `grace`, then the
/// pause container.
async fn stop_containers(env: &WorkerEnv, containers: &[ContainerInfo], grace: Duration) {
    let running = |sandbox: bool| {
        containers.iter().filter(move |c| {
            c.state == ContainerState::Running
                && (c.labels.get(labels::CONTAINER_TYPE).map(String::as_str)
                    == Some(labels::TYPE_SANDBOX))
                    == sandbox
        })
    };
    let stop = |c: &ContainerInfo, grace: Duration| {
        let runtime = env.runtime.clone();
        let id = c.id.clone();
        async move {
            match runtime.stop_container(&id, grace).await {
                Ok(()) | Err(RuntimeError::NotFound(_)) => {}
                Err(e) => tracing::warn!(container = %id, error = %e, "stopping a container"),
            }
        }
    };
    futures::future::join_all(running(false).map(|c| stop(c, grace))).await;
    futures::future::join_all(running(true).map(|c| stop(c, SANDBOX_GRACE))).await;
}

fn remove_pod_dir(env: &WorkerEnv, uid: &str) {
    if uid.is_empty() {
        return;
    }
    env.objects.forget(uid);
    let dir = spec::pod_dir(&env.root_dir, uid);
    crate::volumes::tear_down(&dir);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "removing the pod directory"),
    }
}

/// The pod's address: its sandbox's, or the host's for a `hostNetwork` pod.
fn pod_ip(env: &WorkerEnv, pod: &Pod, sandbox: &ContainerInfo) -> Option<IpAddr> {
    if spec(pod).host_network == Some(true) {
        env.host_ip
    } else {
        sandbox.ip
    }
}

/// The worker of one pod.
pub struct PodWorker {
    env: Arc<WorkerEnv>,
    uid: String,
    backoff: Backoff,
    /// When each image's last pull failed.
    pull_failures: HashMap<String, Timestamp>,
    sandbox_failed_at: Option<Timestamp>,
    prober: Prober,
    /// The pod's status as the API server has it, and the version it came with.
    status: Option<PodStatus>,
    status_version: u64,
    /// Status patches that failed in a row (the API server is unreachable).
    status_failures: u32,
    /// Wakes this worker: given to whatever may want a new pass (probes, the
    /// ConfigMaps and Secrets the pod uses).
    wake: Arc<Notify>,
}

impl PodWorker {
    /// `wake` is notified when a probe result changes.
    pub fn new(env: Arc<WorkerEnv>, uid: &str, wake: Arc<Notify>) -> PodWorker {
        let prober = Prober::new(env.runtime.clone(), env.recorder.clone(), wake.clone());
        PodWorker {
            backoff: Backoff::new(env.backoff_base, env.backoff_max),
            env,
            uid: uid.to_string(),
            pull_failures: HashMap::new(),
            sandbox_failed_at: None,
            prober,
            status: None,
            status_version: 0,
            status_failures: 0,
            wake,
        }
    }

    /// Takes the status of a newer copy of the pod.
    fn absorb(&mut self, pod: &Pod) {
        let version = resource_version(pod);
        if version == 0 || version >= self.status_version {
            self.status = pod.status.clone();
            self.status_version = version;
        }
    }

    async fn observe(&self) -> Result<Observed> {
        let containers = self
            .env
            .runtime
            .list_containers(&labels::pod_selector(&self.env.node_name, &self.uid))
            .await?;
        Ok(Observed::new(containers))
    }

    fn event(&self, reference: ObjectReference, kind: &str, reason: &str, message: &str) {
        self.env.recorder.event(reference, kind, reason, message);
    }

    /// One reconciling pass.
    pub async fn sync(&mut self, pod: &Pod) -> Result<Next> {
        let mut pod = pod.clone();
        minik8s_api::defaults::default_pod(&mut pod);
        self.absorb(&pod);
        let now = Timestamp::now();
        if pod.metadata.deletion_timestamp.is_some() {
            self.terminate(&pod).await?;
            return Ok(Next::Done);
        }
        let mut pass = Pass::default();
        let observed = self.observe().await?;
        let terminal = is_terminal(self.status.as_ref().and_then(|s| s.phase.as_deref()));
        if !terminal {
            self.reconcile(&pod, &observed, &mut pass, now).await?;
        }
        let observed = self.observe().await?;
        let status = self.status_for(&pod, &observed, &pass, now, false);
        if is_terminal(status.phase.as_deref()) {
            // Nothing will run in this pod again: free its address. The stopped
            // containers stay for their logs until the pod is deleted.
            self.prober.stop_all();
            self.env.hosts.forget(&self.uid);
            stop_containers(&self.env, &observed.all, Duration::ZERO).await;
        } else {
            self.env.hosts.poke_hook(&self.uid);
        }
        if let Some(retry) = self.send_status(&pod, status).await {
            pass.wake_in(retry);
        }
        self.prune(&observed).await;
        let running: HashSet<String> = observed.running().map(|c| c.id.clone()).collect();
        self.prober.retain(&running);
        if !is_terminal(self.status.as_ref().and_then(|s| s.phase.as_deref())) {
            let pod_ip = observed
                .running_sandbox()
                .and_then(|s| pod_ip(&self.env, &pod, s));
            for c in &spec(&pod).containers {
                if let Some(info) = observed
                    .latest(&c.name)
                    .filter(|i| i.state == ContainerState::Running)
                {
                    self.prober
                        .ensure(&pod, c, &info.id, info.started_at, pod_ip);
                }
            }
        }
        Ok(Next::After(pass.wake))
    }

    /// The pod object is gone: stop and remove everything.
    pub async fn teardown(&mut self, pod: &Pod) -> Result<()> {
        self.prober.stop_all();
        cleanup_pod(&self.env, &self.uid, Some(grace_period(pod))).await
    }

    /// Graceful deletion: stop everything within the grace period, report the final
    /// state, remove the containers, then remove the pod object.
    async fn terminate(&mut self, pod: &Pod) -> Result<()> {
        self.prober.stop_all();
        self.env.hosts.forget(&self.uid);
        let observed = self.observe().await?;
        for c in observed.running() {
            if let Some(key) =
                ContainerKey::from_labels(&c.labels).filter(|k| k.role != Role::Sandbox)
            {
                let reference = pod_reference(pod, Some(field_path(key.role, &key.container)));
                self.event(
                    reference,
                    NORMAL,
                    "Killing",
                    &format!("Stopping container {}", key.container),
                );
            }
        }
        stop_containers(&self.env, &observed.all, grace_period(pod)).await;
        let observed = self.observe().await?;
        let status = self.status_for(pod, &observed, &Pass::default(), Timestamp::now(), true);
        self.send_status(pod, status).await;
        for c in &observed.all {
            self.env.runtime.remove_container(&c.id).await?;
        }
        remove_pod_dir(&self.env, &self.uid);
        self.env.api.delete_pod(pod).await
    }

    fn status_for(
        &self,
        pod: &Pod,
        observed: &Observed,
        pass: &Pass,
        now: Timestamp,
        finished: bool,
    ) -> PodStatus {
        let view = |c: &Container| {
            let current = observed.latest(&c.name).cloned();
            let probes = current
                .as_ref()
                .filter(|i| i.state == ContainerState::Running)
                .map(|i| self.prober.results(&i.id, c))
                .unwrap_or_default();
            ContainerView {
                previous: observed.previous(&c.name).cloned(),
                waiting: pass.waiting.get(&c.name).cloned(),
                ready: probes.ready,
                started: probes.started,
                current,
            }
        };
        let s = spec(pod);
        let init: Vec<ContainerView> = s.init_containers.iter().flatten().map(view).collect();
        let app: Vec<ContainerView> = s.containers.iter().map(view).collect();
        let mut old = self.status.clone();
        if finished {
            // A deleted pod's containers do not restart: its phase is final.
            let mut status = status::pod_status(&Snapshot {
                pod,
                old: old.as_ref(),
                init: &init,
                app: &app,
                pod_ip: None,
                host_ip: self.env.host_ip,
                now,
            });
            let statuses = status.container_statuses.clone().unwrap_or_default();
            let init_statuses = status.init_container_statuses.clone().unwrap_or_default();
            let all_stopped = statuses
                .iter()
                .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_none()));
            if all_stopped && !is_terminal(status.phase.as_deref()) {
                let policy = s.restart_policy.as_deref().unwrap_or("Always");
                let phase = status::phase(policy, &init_statuses, &statuses, true);
                if is_terminal(Some(phase)) {
                    status.phase = Some(phase.into());
                }
            }
            return status;
        }
        let pod_ip = observed
            .running_sandbox()
            .and_then(|s| pod_ip(&self.env, pod, s));
        if let Some(o) = old.as_mut()
            && pod_ip.is_none()
            && observed.sandbox().is_none()
            && !is_terminal(o.phase.as_deref())
        {
            // No sandbox yet (or any more): do not claim an old address.
            o.pod_ip = None;
            o.pod_ips = None;
        }
        status::pod_status(&Snapshot {
            pod,
            old: old.as_ref(),
            init: &init,
            app: &app,
            pod_ip,
            host_ip: self.env.host_ip,
            now,
        })
    }

    /// Sends the status if the API server does not have it. When that fails, returns
    /// when to try again: sooner than the next resync, so that the status catches up
    /// soon after the server is back.
    async fn send_status(&mut self, pod: &Pod, status: PodStatus) -> Option<Duration> {
        if self.status.as_ref() == Some(&status) {
            return None;
        }
        match self
            .env
            .api
            .patch_status(pod, self.status.as_ref(), &status)
            .await
        {
            Ok(updated) => {
                self.status_version = resource_version(&updated);
                self.status = updated.status;
                self.status_failures = 0;
                None
            }
            Err(e) => {
                let retry = STATUS_RETRY * 2u32.pow(self.status_failures.min(6));
                self.status_failures += 1;
                tracing::warn!(pod = %pod_label(pod), error = %e, retry_in = ?retry,
                    "sending the pod's status");
                Some(retry)
            }
        }
    }

    /// Removes containers nobody needs: all but the last two attempts of each container
    /// (the last one's predecessor serves `lastState` and `--previous` logs), and
    /// pause containers older than the current one.
    async fn prune(&self, observed: &Observed) {
        let mut stale: Vec<&ContainerInfo> = Vec::new();
        for attempts in observed.by_name.values() {
            let keep_from = attempts.len().saturating_sub(2);
            stale.extend(attempts[..keep_from].iter());
        }
        let sandboxes = observed.sandboxes.len();
        stale.extend(observed.sandboxes[..sandboxes.saturating_sub(1)].iter());
        for c in stale {
            if c.state == ContainerState::Running {
                continue;
            }
            if let Err(e) = self.env.runtime.remove_container(&c.id).await {
                tracing::warn!(container = %c.name, error = %e, "removing an old container");
            }
        }
    }

    async fn reconcile(
        &mut self,
        pod: &Pod,
        observed: &Observed,
        pass: &mut Pass,
        now: Timestamp,
    ) -> Result<()> {
        let s = spec(pod);
        let policy = s.restart_policy.clone().unwrap_or_else(|| "Always".into());
        let sandbox = match observed.running_sandbox() {
            Some(sandbox) => sandbox.clone(),
            None => {
                if observed.sandbox().is_some() {
                    // A pod that never restarts gets no new sandbox once its containers
                    // ran (Kubernetes' computePodActions): its phase follows from how
                    // they ended.
                    let recreate = policy != "Never" || observed.by_name.is_empty();
                    if recreate {
                        self.event(
                            pod_reference(pod, None),
                            NORMAL,
                            "SandboxChanged",
                            "Pod sandbox changed, it will be killed and re-created.",
                        );
                    }
                    // Containers still running were cut off with the old sandbox's network.
                    let grace = grace_period(pod);
                    stop_containers(&self.env, &observed.all, grace).await;
                    if !recreate {
                        return Ok(());
                    }
                }
                match self
                    .start_sandbox(pod, observed.next_sandbox_attempt(), pass, now)
                    .await
                {
                    Some(sandbox) => sandbox,
                    None => return Ok(()),
                }
            }
        };
        // What was stopped above is seen stopped from here on.
        let refreshed;
        let observed = if observed.running_sandbox().map(|s| &s.id) == Some(&sandbox.id) {
            observed
        } else {
            refreshed = self.observe().await?;
            &refreshed
        };
        // The hosts file exists, with the pod's own address, before any container
        // that mounts it.
        let own_ip = pod_ip(&self.env, pod, &sandbox);
        let hosts = match self.env.hosts.prepare(pod, own_ip).await {
            Ok(hosts) => hosts,
            Err(e) => {
                self.event(
                    pod_reference(pod, None),
                    WARNING,
                    "FailedMount",
                    &format!("writing the hosts file: {e}"),
                );
                pass.wake_in(self.env.backoff_base);
                return Ok(());
            }
        };
        // And its resolv.conf, as its DNS policy says.
        let resolv = match self.write_resolv_conf(pod) {
            Ok(path) => path,
            Err(e) => {
                self.event(
                    pod_reference(pod, None),
                    WARNING,
                    "FailedMount",
                    &format!("writing the resolv.conf file: {e}"),
                );
                pass.wake_in(self.env.backoff_base);
                return Ok(());
            }
        };
        // A change to a ConfigMap or Secret the pod uses wakes this worker: a container
        // waiting for one starts, and volumes follow edits.
        let objects = &self.env.objects;
        objects.use_objects(&self.uid, crate::objects::referenced(pod), &self.wake);
        let set_up = crate::volumes::set_up(pod, &self.env.root_dir, objects).await;
        let failed_mounts = match set_up {
            Ok(warnings) => warnings.into_iter().map(|w| (w, false)).collect(),
            Err(e) => vec![(e, true)],
        };
        for (e, blocking) in failed_mounts {
            self.event(
                pod_reference(pod, None),
                WARNING,
                "FailedMount",
                &e.to_string(),
            );
            if blocking {
                pass.wake_in(self.env.backoff_base);
                return Ok(());
            }
        }
        let volumes = match spec::prepare_volumes(pod, &self.env.root_dir) {
            Ok(volumes) => volumes,
            Err(e) => {
                self.event(
                    pod_reference(pod, None),
                    WARNING,
                    "FailedMount",
                    &e.to_string(),
                );
                pass.wake_in(self.env.backoff_base);
                return Ok(());
            }
        };
        let ctx = StartContext {
            sandbox: &sandbox,
            volumes: &volumes,
            hosts: hosts.as_deref(),
            resolv: Some(&resolv),
        };

        // Init containers, in order, each to completion. Runs from before the current
        // sandbox do not count: a new sandbox runs them again.
        let since = sandbox.created_at;
        for c in s.init_containers.iter().flatten() {
            let latest = observed
                .latest(&c.name)
                .filter(|i| match (since, i.created_at) {
                    (Some(since), Some(created)) => created >= since,
                    _ => true,
                });
            match latest.map(|i| (i, Effective::of(i))) {
                None => {
                    let attempt = observed.next_attempt(&c.name);
                    self.start_new(pod, c, Role::Init, attempt, &ctx, pass, now)
                        .await;
                    return Ok(());
                }
                Some((i, Effective::Created)) => {
                    self.start_existing(pod, c, Role::Init, i, pass).await;
                    return Ok(());
                }
                Some((_, Effective::Running)) => return Ok(()),
                Some((_, Effective::Terminated { exit_code: 0, .. })) => continue,
                Some((i, Effective::Terminated { .. })) => {
                    if policy != "Never" {
                        let i = i.clone();
                        self.restart(pod, c, Role::Init, &i, &ctx, pass, now).await;
                    }
                    return Ok(());
                }
            }
        }

        for c in &s.containers {
            let latest = observed.latest(&c.name).cloned();
            match latest.as_ref().map(|i| (i, Effective::of(i))) {
                None => {
                    let attempt = observed.next_attempt(&c.name);
                    self.start_new(pod, c, Role::App, attempt, &ctx, pass, now)
                        .await;
                }
                Some((i, Effective::Created)) => {
                    self.start_existing(pod, c, Role::App, i, pass).await;
                }
                Some((i, Effective::Running)) => {
                    self.check_running(pod, c, i, &policy, &ctx, pass, now)
                        .await;
                }
                Some((i, Effective::Terminated { exit_code, .. })) => {
                    if should_restart(&policy, exit_code) {
                        self.restart(pod, c, Role::App, i, &ctx, pass, now).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// A running app container: restart it if its image changed or a liveness or startup
    /// probe gave up on it; otherwise make sure its probes run.
    #[allow(clippy::too_many_arguments)]
    async fn check_running(
        &mut self,
        pod: &Pod,
        c: &Container,
        info: &ContainerInfo,
        policy: &str,
        ctx: &StartContext<'_>,
        pass: &mut Pass,
        now: Timestamp,
    ) {
        let reference = pod_reference(pod, Some(field_path(Role::App, &c.name)));
        let image = c.image.clone().unwrap_or_default();
        let image_changed = info
            .labels
            .get(labels::CONTAINER_IMAGE)
            .is_some_and(|i| *i != image);
        let probes = self.prober.results(&info.id, c);
        let (message, probe) = if image_changed {
            (
                format!("Container {} definition changed, will be restarted", c.name),
                None,
            )
        } else if probes.startup_failed.is_some() {
            (
                format!(
                    "Container {} failed startup probe, will be restarted",
                    c.name
                ),
                c.startup_probe.as_ref(),
            )
        } else if probes.liveness_failed.is_some() {
            (
                format!(
                    "Container {} failed liveness probe, will be restarted",
                    c.name
                ),
                c.liveness_probe.as_ref(),
            )
        } else {
            return;
        };
        self.event(reference, NORMAL, "Killing", &message);
        let grace = probe
            .and_then(|p| p.termination_grace_period_seconds)
            .map_or_else(|| grace_period(pod), seconds);
        let stopped = match self.env.runtime.stop_container(&info.id, grace).await {
            Ok(()) | Err(RuntimeError::NotFound(_)) => self
                .env
                .runtime
                .inspect_container(&info.id)
                .await
                .ok()
                .flatten(),
            Err(e) => {
                tracing::warn!(container = %info.name, error = %e, "killing a container");
                return;
            }
        };
        let mut stopped = stopped.unwrap_or_else(|| info.clone());
        stopped.finished_at.get_or_insert(now);
        let exit_code = Effective::of(&stopped).exit_code().unwrap_or(137);
        if image_changed {
            let attempt = attempt(info) + 1;
            self.start_new(pod, c, Role::App, attempt, ctx, pass, now)
                .await;
        } else if should_restart(policy, exit_code) {
            self.restart(pod, c, Role::App, &stopped, ctx, pass, now)
                .await;
        }
    }

    /// Starts the next attempt of a container that stopped, unless it is in back-off.
    #[allow(clippy::too_many_arguments)]
    async fn restart(
        &mut self,
        pod: &Pod,
        c: &Container,
        role: Role,
        stopped: &ContainerInfo,
        ctx: &StartContext<'_>,
        pass: &mut Pass,
        now: Timestamp,
    ) {
        let key = field_path(role, &c.name);
        let at = status::stopped_at(stopped).unwrap_or(now);
        if let Some(remaining) = self.backoff.remaining(&key, at, now) {
            let wait = go_duration(self.backoff.current(&key));
            let pod_label = pod_label(pod);
            pass.wait(
                &c.name,
                "CrashLoopBackOff",
                format!(
                    "back-off {wait} restarting failed container={} pod={pod_label}",
                    c.name
                ),
            );
            self.event(
                pod_reference(pod, Some(field_path(role, &c.name))),
                WARNING,
                "BackOff",
                &format!(
                    "Back-off restarting failed container {} in pod {pod_label}",
                    c.name
                ),
            );
            pass.wake_in(remaining);
            return;
        }
        self.backoff.next(&key, at, now);
        self.start_new(pod, c, role, attempt(stopped) + 1, ctx, pass, now)
            .await;
    }
}

mod start;

use start::StartContext;

#[cfg(test)]
mod tests;
