//! [`CachedRuntime`]: a [`ContainerRuntime`] in front of another that answers the pod
//! workers' lists from what it saw last, as long as nothing can have changed since.
//!
//! Every pass of a pod worker lists its pod's containers, and the manager lists the
//! node's on every resync. Asking Docker each time — a list and an inspect per container —
//! cost most of an idle kubelet's CPU (and Docker's). The cache keeps what the last list
//! of each pod gave and the last inspect of each container, and forgets them when
//!
//! * a Docker event (one of [`super::STATE_EVENTS`]) names the container or its pod,
//! * the kubelet itself creates, starts, stops or removes one of the pod's containers,
//! * the event stream breaks or is subscribed again (events may have been missed), or
//! * a list of the whole node shows a pod's containers other than remembered (the
//!   periodic resync's safety net against a lost event).
//!
//! It serves from memory only while the manager follows the node's events through it;
//! without that subscription (tests of the pod worker) every list goes to the runtime.
//!
//! Invalidation uses one counter: each invalidation takes the next value, and a cached
//! answer is good only if no invalidation of its pod came after the moment its list
//! began, so that a change racing with a list is never hidden.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};

use super::{
    ContainerConfig, ContainerInfo, ContainerRuntime, ContainerSummary, ExecOutput, ExecSession,
    ExecSpec, LogOptions, NetworkConfig, NetworkInfo, RuntimeEvent, RuntimeResult, RuntimeVersion,
};
use crate::labels;

/// The caching runtime of one node's kubelet.
pub struct CachedRuntime {
    inner: Arc<dyn ContainerRuntime>,
    node: String,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The invalidation counter.
    clock: u64,
    /// Event streams of the whole node alive: the cache serves only while one is.
    following: usize,
    /// The last invalidation of everything.
    all_invalidated: u64,
    /// The last invalidation of each pod (by uid).
    pod_invalidated: HashMap<String, u64>,
    /// Each pod's containers as its last list gave them, and when that list began.
    pods: HashMap<String, (u64, Vec<ContainerInfo>)>,
    /// Each container's last inspect, and when it began.
    infos: HashMap<String, (u64, ContainerInfo)>,
    /// The pod of each container seen, for invalidating by container id.
    owners: HashMap<String, String>,
}

fn pod_uid(labels: &BTreeMap<String, String>) -> Option<&String> {
    labels.get(labels::POD_UID)
}

impl State {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn invalidated(&self, uid: Option<&String>) -> u64 {
        let pod = uid
            .and_then(|u| self.pod_invalidated.get(u))
            .copied()
            .unwrap_or(0);
        pod.max(self.all_invalidated)
    }

    fn invalidate_pod(&mut self, uid: &str) {
        let now = self.tick();
        self.pod_invalidated.insert(uid.to_string(), now);
        self.pods.remove(uid);
    }

    fn invalidate_container(&mut self, id: &str, uid: Option<&str>) {
        self.infos.remove(id);
        match uid
            .map(str::to_string)
            .or_else(|| self.owners.get(id).cloned())
        {
            Some(uid) => self.invalidate_pod(&uid),
            // Not a container seen before: anything may be stale.
            None => self.invalidate_all(),
        }
    }

    fn invalidate_all(&mut self) {
        self.all_invalidated = self.tick();
        self.pods.clear();
        self.infos.clear();
        self.pod_invalidated.clear();
    }

    /// The remembered list of the pod, if nothing invalidated it since.
    fn pod(&self, uid: &String) -> Option<Vec<ContainerInfo>> {
        let (began, containers) = self.pods.get(uid)?;
        (*began >= self.invalidated(Some(uid))).then(|| containers.clone())
    }

    /// The remembered inspect of a container the list shows, if it is still good.
    fn info(&self, summary: &ContainerSummary) -> Option<ContainerInfo> {
        let (began, info) = self.infos.get(&summary.id)?;
        (info.state == summary.state && *began >= self.invalidated(pod_uid(&summary.labels)))
            .then(|| info.clone())
    }

    /// Keeps an inspect that began at `began`, while the node's events are followed.
    fn remember(&mut self, began: u64, info: &ContainerInfo) {
        if self.following == 0 || began < self.invalidated(pod_uid(&info.labels)) {
            return;
        }
        if let Some(uid) = pod_uid(&info.labels) {
            self.owners.insert(info.id.clone(), uid.clone());
        }
        self.infos.insert(info.id.clone(), (began, info.clone()));
    }

    /// A list of the whole node: pods whose containers differ from what is remembered
    /// are forgotten, and so is everything about containers that no longer exist.
    fn check_node(&mut self, summaries: &[ContainerSummary]) {
        let mut by_pod: HashMap<&String, Vec<(&str, super::ContainerState)>> = HashMap::new();
        for s in summaries {
            if let Some(uid) = pod_uid(&s.labels) {
                by_pod.entry(uid).or_default().push((&s.id, s.state));
            }
        }
        let stale: Vec<String> = self
            .pods
            .iter()
            .filter(|(uid, (_, remembered))| {
                let mut listed = by_pod.get(uid).cloned().unwrap_or_default();
                let mut known: Vec<_> = remembered.iter().map(|c| (&*c.id, c.state)).collect();
                listed.sort_by_key(|(id, _)| *id);
                known.sort_by_key(|(id, _)| *id);
                listed != known
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in stale {
            self.invalidate_pod(&uid);
        }
        let present: std::collections::HashSet<&str> =
            summaries.iter().map(|s| s.id.as_str()).collect();
        self.infos.retain(|id, _| present.contains(id.as_str()));
        self.owners.retain(|id, _| present.contains(id.as_str()));
        self.pods.retain(|uid, _| by_pod.contains_key(uid));
        // Pods with no container left need no invalidation record. Dropping one must not
        // let a list that began before it count as current: what is remembered is checked
        // and stamped now, and everything older than now is treated as invalidated.
        let gone: Vec<String> = self
            .pod_invalidated
            .keys()
            .filter(|uid| !by_pod.contains_key(uid))
            .cloned()
            .collect();
        if !gone.is_empty() {
            let now = self.clock;
            let pods = std::mem::take(&mut self.pods);
            self.pods = pods
                .into_iter()
                .filter(|(uid, (began, _))| *began >= self.invalidated(Some(uid)))
                .map(|(uid, (_, c))| (uid, (now, c)))
                .collect();
            let infos = std::mem::take(&mut self.infos);
            self.infos = infos
                .into_iter()
                .filter(|(_, (began, info))| *began >= self.invalidated(pod_uid(&info.labels)))
                .map(|(id, (_, info))| (id, (now, info)))
                .collect();
            for uid in gone {
                self.pod_invalidated.remove(&uid);
            }
            self.all_invalidated = now;
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts a live event stream of the node; forgets everything when it ends, since events
/// from then on are not seen.
struct Following(Arc<Shared>);

impl Drop for Following {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.following = state.following.saturating_sub(1);
        state.invalidate_all();
    }
}

impl CachedRuntime {
    pub fn new(inner: Arc<dyn ContainerRuntime>, node: &str) -> CachedRuntime {
        CachedRuntime {
            inner,
            node: node.to_string(),
            shared: Arc::default(),
        }
    }

    /// The pod a selector selects all containers of on this node, if it is one.
    fn pod_selector_uid(&self, labels: &[(String, String)]) -> Option<String> {
        let [(a, node), (b, uid)] = labels else {
            return None;
        };
        (a == labels::NODE && *node == self.node && b == labels::POD_UID).then(|| uid.clone())
    }

    fn is_node_selector(&self, labels: &[(String, String)]) -> bool {
        matches!(labels, [(a, node)] if a == labels::NODE && *node == self.node)
    }

    fn invalidate_container(&self, id: &str) {
        self.shared.lock().invalidate_container(id, None);
    }
}

#[async_trait::async_trait]
impl ContainerRuntime for CachedRuntime {
    async fn version(&self) -> RuntimeResult<RuntimeVersion> {
        self.inner.version().await
    }

    async fn ensure_network(&self, network: &NetworkConfig) -> RuntimeResult<()> {
        self.inner.ensure_network(network).await
    }

    async fn list_networks(&self) -> RuntimeResult<Vec<NetworkInfo>> {
        self.inner.list_networks().await
    }

    async fn remove_network(&self, name: &str) -> RuntimeResult<()> {
        self.inner.remove_network(name).await
    }

    async fn network_addresses(&self, network: &str) -> RuntimeResult<Vec<Ipv4Addr>> {
        self.inner.network_addresses(network).await
    }

    async fn image_id(&self, image: &str) -> RuntimeResult<Option<String>> {
        self.inner.image_id(image).await
    }

    async fn pull_image(&self, image: &str) -> RuntimeResult<()> {
        self.inner.pull_image(image).await
    }

    async fn create_container(&self, config: &ContainerConfig) -> RuntimeResult<String> {
        let result = self.inner.create_container(config).await;
        let mut state = self.shared.lock();
        match (&result, pod_uid(&config.labels)) {
            (Ok(id), Some(uid)) => {
                state.owners.insert(id.clone(), uid.clone());
                state.invalidate_pod(uid);
            }
            (Err(_), Some(uid)) => state.invalidate_pod(uid),
            (_, None) => state.invalidate_all(),
        }
        result
    }

    async fn start_container(&self, id: &str) -> RuntimeResult<()> {
        let result = self.inner.start_container(id).await;
        self.invalidate_container(id);
        result
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> RuntimeResult<()> {
        let result = self.inner.stop_container(id, grace).await;
        self.invalidate_container(id);
        result
    }

    async fn remove_container(&self, id: &str) -> RuntimeResult<()> {
        let result = self.inner.remove_container(id).await;
        self.invalidate_container(id);
        result
    }

    async fn inspect_container(&self, id: &str) -> RuntimeResult<Option<ContainerInfo>> {
        let began = self.shared.lock().clock;
        let info = self.inner.inspect_container(id).await?;
        if let Some(info) = &info {
            self.shared.lock().remember(began, info);
        }
        Ok(info)
    }

    async fn list_containers(
        &self,
        labels: &[(String, String)],
    ) -> RuntimeResult<Vec<ContainerInfo>> {
        let pod = self.pod_selector_uid(labels);
        let began = {
            let state = self.shared.lock();
            if let Some(hit) = pod.as_ref().and_then(|uid| state.pod(uid)) {
                return Ok(hit);
            }
            (state.following > 0).then_some(state.clock)
        };
        let Some(began) = began else {
            return self.inner.list_containers(labels).await;
        };
        let summaries = self.inner.list_summaries(labels).await?;
        let mut containers = Vec::with_capacity(summaries.len());
        for summary in &summaries {
            if let Some(info) = self.shared.lock().info(summary) {
                containers.push(info);
                continue;
            }
            // Gone since the list: skip it.
            if let Some(info) = self.inspect_container(&summary.id).await? {
                containers.push(info);
            }
        }
        let mut state = self.shared.lock();
        if self.is_node_selector(labels) {
            state.check_node(&summaries);
        }
        if let Some(uid) = pod
            && began >= state.invalidated(Some(&uid))
        {
            state.pods.insert(uid, (began, containers.clone()));
        }
        Ok(containers)
    }

    async fn list_summaries(
        &self,
        labels: &[(String, String)],
    ) -> RuntimeResult<Vec<ContainerSummary>> {
        self.inner.list_summaries(labels).await
    }

    async fn list_with_label(&self, key: &str) -> RuntimeResult<Vec<ContainerSummary>> {
        self.inner.list_with_label(key).await
    }

    async fn exec_attached(&self, id: &str, spec: &ExecSpec) -> RuntimeResult<ExecSession> {
        self.inner.exec_attached(id, spec).await
    }

    async fn resize_exec(&self, exec_id: &str, width: u16, height: u16) -> RuntimeResult<()> {
        self.inner.resize_exec(exec_id, width, height).await
    }

    async fn attach(&self, id: &str, spec: &ExecSpec) -> RuntimeResult<ExecSession> {
        self.inner.attach(id, spec).await
    }

    async fn resize_container(&self, id: &str, width: u16, height: u16) -> RuntimeResult<()> {
        self.inner.resize_container(id, width, height).await
    }

    async fn exec_exit_code(&self, exec_id: &str) -> RuntimeResult<Option<i64>> {
        self.inner.exec_exit_code(exec_id).await
    }

    async fn container_logs(
        &self,
        id: &str,
        options: &LogOptions,
    ) -> RuntimeResult<BoxStream<'static, RuntimeResult<Bytes>>> {
        self.inner.container_logs(id, options).await
    }

    async fn exec(
        &self,
        id: &str,
        command: &[String],
        timeout: Duration,
    ) -> RuntimeResult<ExecOutput> {
        self.inner.exec(id, command, timeout).await
    }

    fn events(
        &self,
        labels: &[(String, String)],
    ) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
        let stream = self.inner.events(labels);
        if !self.is_node_selector(labels) {
            return stream;
        }
        let following = {
            let mut state = self.shared.lock();
            // What happened before this subscription was not seen.
            state.invalidate_all();
            state.following += 1;
            Following(self.shared.clone())
        };
        stream
            .map(move |item| {
                let mut state = following.0.lock();
                match &item {
                    Ok(event) => {
                        let uid = pod_uid(&event.labels).map(String::as_str);
                        state.invalidate_container(&event.container_id, uid);
                    }
                    Err(_) => state.invalidate_all(),
                }
                item
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{ContainerKey, Role};
    use crate::runtime::{ContainerState, FakeRuntime, NetworkMode};
    use jiff::Timestamp;

    fn config(uid: &str, name: &str) -> ContainerConfig {
        let key = ContainerKey {
            namespace: "default".into(),
            pod_name: "p".into(),
            pod_uid: uid.into(),
            container: name.into(),
            role: Role::App,
            attempt: 0,
        };
        let mut c =
            ContainerConfig::new(key.docker_name(), "img", NetworkMode::Network("n".into()));
        c.labels = key.labels("node");
        c
    }

    async fn setup() -> (FakeRuntime, CachedRuntime, String) {
        let fake = FakeRuntime::new();
        fake.add_image("img");
        let cached = CachedRuntime::new(Arc::new(fake.clone()), "node");
        let id = cached.create_container(&config("u1", "a")).await.unwrap();
        cached.start_container(&id).await.unwrap();
        (fake, cached, id)
    }

    #[tokio::test]
    async fn without_the_event_stream_every_list_asks_the_runtime() {
        let (fake, cached, _) = setup().await;
        let selector = labels::pod_selector("node", "u1");
        cached.list_containers(&selector).await.unwrap();
        cached.list_containers(&selector).await.unwrap();
        assert_eq!(fake.reads().0, 2);
    }

    #[tokio::test]
    async fn a_pod_is_listed_again_only_after_a_change() {
        let (fake, cached, id) = setup().await;
        let mut events = cached.events(&labels::node_selector("node"));
        let selector = labels::pod_selector("node", "u1");
        let first = cached.list_containers(&selector).await.unwrap();
        let reads = fake.reads();
        assert_eq!(cached.list_containers(&selector).await.unwrap(), first);
        assert_eq!(fake.reads(), reads, "answered from memory");

        // The container exits on its own: the event makes the next list ask again.
        fake.exit(&id, 1, Timestamp::now());
        events.next().await.unwrap().unwrap();
        let after = cached.list_containers(&selector).await.unwrap();
        assert_eq!(after[0].state, ContainerState::Exited);
        assert_eq!(after[0].exit_code, 1);

        // The kubelet's own changes count too, event or not.
        let second = cached.create_container(&config("u1", "b")).await.unwrap();
        assert_eq!(cached.list_containers(&selector).await.unwrap().len(), 2);
        cached.remove_container(&second).await.unwrap();
        assert_eq!(cached.list_containers(&selector).await.unwrap().len(), 1);
        drop(events);
    }

    #[tokio::test]
    async fn unchanged_containers_are_not_inspected_again() {
        let (fake, cached, _) = setup().await;
        let _events = cached.events(&labels::node_selector("node"));
        let other = cached.create_container(&config("u2", "a")).await.unwrap();
        cached.start_container(&other).await.unwrap();
        let node = labels::node_selector("node");
        cached.list_containers(&node).await.unwrap();
        let (_, inspects) = fake.reads();
        // A change to one pod's container re-inspects that one only.
        cached
            .stop_container(&other, Duration::from_secs(1))
            .await
            .unwrap();
        let listed = cached.list_containers(&node).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(fake.reads().1, inspects + 1);
    }

    #[tokio::test]
    async fn a_node_list_catches_a_change_whose_event_was_missed() {
        let fake = FakeRuntime::new();
        fake.add_image("img");
        let cached = CachedRuntime::new(Arc::new(fake.clone()), "node");
        let _events = cached.events(&labels::node_selector("node"));
        let selector = labels::pod_selector("node", "u1");
        assert!(cached.list_containers(&selector).await.unwrap().is_empty());
        // Created behind the cache's back, with no event.
        fake.create_container(&config("u1", "a")).await.unwrap();
        assert!(cached.list_containers(&selector).await.unwrap().is_empty());
        cached
            .list_containers(&labels::node_selector("node"))
            .await
            .unwrap();
        assert_eq!(cached.list_containers(&selector).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_broken_event_stream_forgets_everything() {
        let (fake, cached, id) = setup().await;
        let events = cached.events(&labels::node_selector("node"));
        let selector = labels::pod_selector("node", "u1");
        cached.list_containers(&selector).await.unwrap();
        drop(events);
        fake.set_times(&id, None, None);
        let listed = cached.list_containers(&selector).await.unwrap();
        assert_eq!(listed[0].started_at, None);
    }
}
