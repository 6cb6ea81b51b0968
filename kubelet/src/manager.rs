//! The pod manager: watches the pods bound to this node and runs one worker task per pod,
//! woken by pod changes, Docker events about its containers, probe results and a periodic
//! resync. It also removes containers of pods that no longer exist — deleted while the
//! kubelet was down, say — once it has seen the full list of pods.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use minik8s_client::{Api, Client, ListParams, WatcherEvent, watcher};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::labels;
use crate::pod::worker::cleanup_pod;
use crate::pod::{Next, PodWorker, WorkerEnv};

/// The first and the longest wait before subscribing to Docker's events again.
const EVENTS_RETRY_MIN: Duration = Duration::from_secs(1);
const EVENTS_RETRY_MAX: Duration = Duration::from_secs(10);

/// What a worker is told about its pod.
#[derive(Clone, Debug)]
enum PodUpdate {
    Present(Box<Pod>),
    /// The object is gone from the API.
    Gone(Box<Pod>),
}

struct Handle {
    updates: watch::Sender<PodUpdate>,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

pub struct Manager {
    env: Arc<WorkerEnv>,
    resync: Duration,
    workers: HashMap<String, Handle>,
    cleanups: HashMap<String, JoinHandle<()>>,
}

fn uid(pod: &Pod) -> Option<String> {
    pod.metadata.uid.clone().filter(|u| !u.is_empty())
}

async fn run_worker(
    env: Arc<WorkerEnv>,
    uid: String,
    mut updates: watch::Receiver<PodUpdate>,
    wake: Arc<Notify>,
    resync: Duration,
) {
    let mut worker = PodWorker::new(env, &uid, wake.clone());
    let mut failures = 0u32;
    loop {
        let update = updates.borrow_and_update().clone();
        let wait = match update {
            PodUpdate::Gone(pod) => {
                if let Err(e) = worker.teardown(&pod).await {
                    tracing::warn!(%uid, error = %e, "removing the containers of a deleted pod");
                }
                return;
            }
            PodUpdate::Present(pod) => match worker.sync(&pod).await {
                Ok(Next::Done) => return,
                Ok(Next::After(after)) => {
                    failures = 0;
                    after.map_or(resync, |a| a.min(resync))
                }
                Err(e) => {
                    failures = (failures + 1).min(6);
                    let wait = Duration::from_millis(250 << failures).min(resync);
                    tracing::warn!(pod = ?pod.metadata.name, error = %e, retry_in = ?wait,
                        "syncing a pod");
                    wait
                }
            },
        };
        tokio::select! {
            changed = updates.changed() => {
                if changed.is_err() {
                    // The manager is gone (kubelet shutting down): leave the containers.
                    return;
                }
            }
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

impl Manager {
    pub fn new(env: Arc<WorkerEnv>, resync: Duration) -> Manager {
        Manager {
            env,
            resync,
            workers: HashMap::new(),
            cleanups: HashMap::new(),
        }
    }

    fn upsert(&mut self, pod: Pod) {
        let Some(uid) = uid(&pod) else { return };
        if let Some(handle) = self.workers.get(&uid)
            && !handle.task.is_finished()
        {
            handle
                .updates
                .send_replace(PodUpdate::Present(Box::new(pod)));
            return;
        }
        let (updates, rx) = watch::channel(PodUpdate::Present(Box::new(pod)));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(run_worker(
            self.env.clone(),
            uid.clone(),
            rx,
            wake.clone(),
            self.resync,
        ));
        self.workers.insert(
            uid,
            Handle {
                updates,
                wake,
                task,
            },
        );
    }

    fn gone(&mut self, pod: Pod) {
        let Some(uid) = uid(&pod) else { return };
        match self.workers.get(&uid) {
            Some(handle) if !handle.task.is_finished() => {
                handle.updates.send_replace(PodUpdate::Gone(Box::new(pod)));
            }
            _ => {
                // No worker: clean up whatever may be left.
                self.cleanup(uid);
            }
        }
    }

    fn wake(&self, uid: &str) {
        if let Some(handle) = self.workers.get(uid) {
            handle.wake.notify_one();
        }
    }

    fn cleanup(&mut self, uid: String) {
        if self.cleanups.get(&uid).is_some_and(|t| !t.is_finished()) {
            return;
        }
        let env = self.env.clone();
        let task_uid = uid.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = cleanup_pod(&env, &task_uid, None).await {
                tracing::warn!(uid = %task_uid, error = %e, "removing the containers of a deleted pod");
            }
        });
        self.cleanups.insert(uid, task);
    }

    /// Forgets finished workers and cleanups.
    fn reap(&mut self) {
        self.workers.retain(|_, h| !h.task.is_finished());
        self.cleanups.retain(|_, t| !t.is_finished());
    }

    /// Removes the containers of pods that have no worker.
    async fn remove_orphans(&mut self) {
        self.reap();
        let containers = match self
            .env
            .runtime
            .list_containers(&labels::node_selector(&self.env.node_name))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "listing this node's containers");
                return;
            }
        };
        let orphans: HashSet<String> = containers
            .iter()
            .filter_map(|c| c.labels.get(labels::POD_UID).cloned())
            .filter(|uid| !self.workers.contains_key(uid))
            .collect();
        for uid in orphans {
            tracing::info!(%uid, "removing the containers of a pod that no longer exists");
            self.cleanup(uid);
        }
    }

    /// Runs until `shutdown` completes. Workers are stopped then, and their containers
    /// left running for the next kubelet to adopt.
    pub async fn run(mut self, client: Client, shutdown: impl Future<Output = ()>) {
        let params = ListParams::default().fields(&format!("spec.nodeName={}", self.env.node_name));
        let mut pods = watcher(Api::<Pod>::all(client), params).boxed();
        let selector = labels::node_selector(&self.env.node_name);
        let mut docker_events = self.env.runtime.events(&selector);
        // While Docker is away the subscription fails at once: it is tried again after a
        // back-off (1 s doubling to 10 s) that does not hold up the pods' events, and a
        // resync covers what was missed meanwhile.
        let mut events_backoff = EVENTS_RETRY_MIN;
        let mut resubscribe = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        let mut subscribed = true;
        let mut tick = tokio::time::interval(self.resync);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut listed = false;
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                event = pods.next() => match event {
                    Some(Ok(WatcherEvent::Restarted(list))) => {
                        let present: HashSet<String> = list.iter().filter_map(uid).collect();
                        let stale: Vec<String> = self
                            .workers
                            .keys()
                            .filter(|u| !present.contains(*u))
                            .cloned()
                            .collect();
                        for u in stale {
                            if let Some(h) = self.workers.get(&u) {
                                let last = match &*h.updates.borrow() {
                                    PodUpdate::Present(p) | PodUpdate::Gone(p) => (**p).clone(),
                                };
                                self.gone(last);
                            }
                        }
                        for pod in list {
                            self.upsert(pod);
                        }
                        listed = true;
                        self.remove_orphans().await;
                    }
                    Some(Ok(WatcherEvent::Applied(pod))) => self.upsert(pod),
                    Some(Ok(WatcherEvent::Deleted(pod))) => self.gone(pod),
                    Some(Err(e)) => tracing::warn!(error = %e, "watching this node's pods"),
                    None => break,
                },
                event = docker_events.next(), if subscribed => match event {
                    Some(Ok(e)) => {
                        events_backoff = EVENTS_RETRY_MIN;
                        if let Some(uid) = e.labels.get(labels::POD_UID) {
                            self.wake(uid);
                        }
                    }
                    other => {
                        if let Some(Err(e)) = other {
                            tracing::warn!(error = %e, retry_in = ?events_backoff,
                                "reading Docker events");
                        }
                        subscribed = false;
                        resubscribe
                            .as_mut()
                            .reset(tokio::time::Instant::now() + events_backoff);
                        events_backoff = (events_backoff * 2).min(EVENTS_RETRY_MAX);
                    }
                },
                _ = &mut resubscribe, if !subscribed => {
                    docker_events = self.env.runtime.events(&selector);
                    subscribed = true;
                    // Pods whose containers changed while nobody listened.
                    for handle in self.workers.values() {
                        handle.wake.notify_one();
                    }
                }
                _ = tick.tick() => {
                    if listed {
                        self.remove_orphans().await;
                    }
                }
            }
        }
        for (_, handle) in self.workers.drain() {
            handle.task.abort();
        }
        for (_, task) in self.cleanups.drain() {
            task.abort();
        }
    }
}
