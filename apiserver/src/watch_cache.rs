//! One store watch per resource, fanned out to every HTTP watcher.
//!
//! The cache keeps a bounded window of recent events so a watcher can resume from a
//! `resourceVersion` without touching the store, and gives each watcher a bounded queue:
//! a watcher that cannot keep up is disconnected (it will re-watch or relist) instead of
//! slowing the others down or growing memory without bound.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use minik8s_api::resource::ResourceInfo;
use minik8s_storage::{Error as StoreError, EventKind, Revision, Store};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::object;
use crate::registry::ObjectView;
use crate::strategy::{self, Strategy};

/// Events kept for resuming watches.
pub const DEFAULT_WINDOW: usize = 10_000;
/// Events queued for one watcher before it is considered too slow and disconnected.
pub const WATCHER_QUEUE: usize = 1024;

/// One change, decoded once and shared by every watcher. Only what selectors need is
/// kept decoded; the object itself is kept serialized, ready to send.
#[derive(Debug)]
pub struct CachedEvent {
    pub kind: EventKind,
    pub revision: Revision,
    /// The object after the change (for deletes: the last state, at the delete
    /// revision), serialized with its `resourceVersion`.
    pub json: Bytes,
    /// What selectors see of the object.
    pub view: ObjectView,
    /// What selectors saw before an update: an update that moves an object out of a
    /// watcher's view is sent to it as `DELETED`.
    pub prev: Option<ObjectView>,
}

struct State {
    events: VecDeque<Arc<CachedEvent>>,
    /// Every event with a revision greater than this one is in `events`.
    oldest: Revision,
    /// The newest revision the cache has seen.
    latest: Revision,
    watchers: Vec<mpsc::Sender<Arc<CachedEvent>>>,
    /// [`WatchCache::close`] was called: new watchers end at once.
    closed: bool,
}

pub struct WatchCache {
    resource: &'static ResourceInfo,
    window: usize,
    state: Mutex<State>,
    /// Tells the task following the store to stop (also when the cache is dropped), so
    /// that it lets go of the store: an embedded store's file closes only then.
    stop: watch::Sender<bool>,
}

/// What a new watcher gets: the events it missed, then a queue of live ones.
pub struct Subscription {
    pub replay: Vec<Arc<CachedEvent>>,
    pub live: mpsc::Receiver<Arc<CachedEvent>>,
}

#[derive(Debug, thiserror::Error)]
#[error("too old resource version: {requested} ({oldest})")]
pub struct TooOld {
    pub requested: Revision,
    pub oldest: Revision,
}

impl WatchCache {
    /// Starts following `prefix` in `store` from its current revision.
    pub async fn start(
        store: Arc<dyn Store>,
        resource: &'static ResourceInfo,
        prefix: String,
        window: usize,
    ) -> Result<Arc<WatchCache>, StoreError> {
        let rev = store.current_revision().await?;
        let (stop, mut stopped) = watch::channel(false);
        let cache = Arc::new(WatchCache {
            resource,
            window: window.max(1),
            state: Mutex::new(State {
                events: VecDeque::new(),
                oldest: rev,
                latest: rev,
                watchers: Vec::new(),
                closed: false,
            }),
            stop,
        });
        let weak = Arc::downgrade(&cache);
        let strategy = strategy::for_resource(resource);
        tokio::spawn(async move {
            let mut after = rev;
            loop {
                match store.watch(&prefix, after).await {
                    Ok(mut stream) => loop {
                        let item = tokio::select! {
                            item = stream.next() => item,
                            // Closed, or the cache is gone (the sender with it).
                            _ = stopped.wait_for(|s| *s) => return,
                        };
                        let Some(item) = item else { break };
                        let Some(cache) = weak.upgrade() else { return };
                        match item {
                            Ok(ev) => {
                                after = ev.revision;
                                cache.push(decode(strategy, ev));
                            }
                            Err(StoreError::Compacted { .. }) => {
                                after = cache.reset(&store).await;
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(resource = resource.plural, error = %e, "store watch failed");
                                break;
                            }
                        }
                    },
                    Err(StoreError::Compacted { .. }) => {
                        let Some(cache) = weak.upgrade() else { return };
                        after = cache.reset(&store).await;
                    }
                    Err(e) => {
                        tracing::warn!(resource = resource.plural, error = %e, "store watch could not start");
                    }
                }
                if weak.strong_count() == 0 || *stopped.borrow() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Ok(cache)
    }

    pub fn resource(&self) -> &'static ResourceInfo {
        self.resource
    }

    /// The newest revision seen.
    pub fn latest(&self) -> Revision {
        self.state.lock().expect("cache lock").latest
    }

    /// Watches changes after `after`. Replay and subscription happen under one lock, so
    /// nothing is missed and nothing is seen twice.
    pub fn subscribe(&self, after: Revision) -> Result<Subscription, TooOld> {
        let mut st = self.state.lock().expect("cache lock");
        if after < st.oldest {
            return Err(TooOld {
                requested: after,
                oldest: st.oldest,
            });
        }
        let replay: Vec<_> = st
            .events
            .iter()
            .filter(|e| e.revision > after)
            .cloned()
            .collect();
        let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
        if !st.closed {
            st.watchers.push(tx);
        }
        Ok(Subscription { replay, live: rx })
    }

    /// Ends every watch of this cache, now and to come, and stops following the store:
    /// the server is shutting down, and a watch left open would keep it serving.
    pub fn close(&self) {
        let mut st = self.state.lock().expect("cache lock");
        st.closed = true;
        st.watchers.clear();
        self.stop.send_replace(true);
    }

    pub fn watcher_count(&self) -> usize {
        self.state.lock().expect("cache lock").watchers.len()
    }

    fn push(&self, ev: CachedEvent) {
        let ev = Arc::new(ev);
        let mut st = self.state.lock().expect("cache lock");
        st.latest = st.latest.max(ev.revision);
        st.events.push_back(ev.clone());
        while st.events.len() > self.window {
            if let Some(old) = st.events.pop_front() {
                st.oldest = old.revision;
            }
        }
        // A full queue means a watcher far behind: dropping its sender ends its stream.
        st.watchers.retain(|w| w.try_send(ev.clone()).is_ok());
    }

    /// After the store forgot the history the cache was following: every watcher is cut
    /// off (each will relist) and the cache starts again from the current revision.
    async fn reset(&self, store: &Arc<dyn Store>) -> Revision {
        let rev = loop {
            match store.current_revision().await {
                Ok(r) => break r,
                Err(e) => {
                    tracing::warn!(error = %e, "store unavailable");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        let mut st = self.state.lock().expect("cache lock");
        st.events.clear();
        st.watchers.clear();
        st.oldest = rev;
        st.latest = rev;
        rev
    }
}

fn decode(strategy: &dyn Strategy, ev: minik8s_storage::Event) -> CachedEvent {
    let mut object: Value = serde_json::from_slice(&ev.value).unwrap_or(Value::Null);
    object::set_resource_version(&mut object, ev.revision);
    let prev = match ev.kind {
        EventKind::Updated => ev
            .prev_value
            .as_deref()
            .and_then(|p| serde_json::from_slice::<Value>(p).ok())
            .map(|p| ObjectView::of(strategy, &p)),
        _ => None,
    };
    CachedEvent {
        kind: ev.kind,
        revision: ev.revision,
        json: Bytes::from(serde_json::to_vec(&object).unwrap_or_default()),
        view: ObjectView::of(strategy, &object),
        prev,
    }
}
