//! A list-then-watch loop that never ends: it lists, hands over the full set, follows
//! with a watch from the list's `resourceVersion`, re-watches from the last version seen
//! when a watch ends or breaks, and lists again when the server says that version is
//! too old (`410 Expired`). Errors are items of the stream, after which it carries on
//! with a growing pause. Written as a state enum advanced by one `step` function.

use std::time::Duration;

use futures::stream::{self, BoxStream, Stream, StreamExt};
use k8s_openapi::Metadata;
use k8s_openapi::Resource;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use minik8s_api::WatchEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::Api;
use crate::error::{Error, Result};
use crate::params::ListParams;

/// Asked of the server for each watch, so that a connection that died silently is
/// replaced within minutes.
const WATCH_TIMEOUT_SECONDS: u32 = 290;
const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq)]
pub enum WatcherEvent<K> {
    /// The full current set, after a (re-)list. Anything not in it is gone.
    Restarted(Vec<K>),
    /// Added or modified.
    Applied(K),
    Deleted(K),
}

enum State<K> {
    /// Nothing known: list next.
    Empty,
    /// Known up to `resource_version`: open a watch from there next.
    Listed { resource_version: String },
    Watching {
        resource_version: String,
        stream: BoxStream<'static, Result<WatchEvent<K>>>,
        /// Whether this watch delivered anything, so that one closed at once by the
        /// server is not reopened in a tight loop.
        delivered: bool,
    },
}

/// Exponential pause after failures, cleared by success.
struct Backoff {
    pending: Option<Duration>,
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            pending: None,
            next: BACKOFF_INITIAL,
        }
    }

    fn failed(&mut self) {
        self.pending = Some(self.next);
        self.next = (self.next * 2).min(BACKOFF_MAX);
    }

    fn succeeded(&mut self) {
        self.pending = None;
        self.next = BACKOFF_INITIAL;
    }

    async fn wait(&mut self) {
        if let Some(delay) = self.pending.take() {
            tokio::time::sleep(delay).await;
        }
    }
}

fn resource_version_of<K: Metadata<Ty = ObjectMeta>>(object: &K) -> Option<String> {
    object
        .metadata()
        .resource_version
        .clone()
        .filter(|rv| !rv.is_empty())
}

/// Lists and watches `api` with `params` (selectors; `limit` pages the lists) forever.
pub fn watcher<K>(api: Api<K>, params: ListParams) -> impl Stream<Item = Result<WatcherEvent<K>>>
where
    K: Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Send + 'static,
{
    let watch_params = ListParams {
        limit: None,
        continue_token: None,
        resource_version: None,
        timeout_seconds: params.timeout_seconds.or(Some(WATCH_TIMEOUT_SECONDS)),
        ..params.clone()
    };
    let list_params = ListParams {
        continue_token: None,
        timeout_seconds: None,
        ..params
    };
    let context = Context {
        api,
        list_params,
        watch_params,
    };
    stream::unfold(
        (context, State::Empty, Backoff::new()),
        |(context, mut state, mut backoff)| async move {
            loop {
                let (item, next) = step(&context, state, &mut backoff).await;
                state = next;
                if let Some(item) = item {
                    return Some((item, (context, state, backoff)));
                }
            }
        },
    )
}

struct Context<K> {
    api: Api<K>,
    list_params: ListParams,
    watch_params: ListParams,
}

/// One move of the state machine: the next state and maybe an item for the caller.
async fn step<K>(
    context: &Context<K>,
    state: State<K>,
    backoff: &mut Backoff,
) -> (Option<Result<WatcherEvent<K>>>, State<K>)
where
    K: Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Send + 'static,
{
    match state {
        State::Empty => {
            backoff.wait().await;
            match context.api.list_all(&context.list_params).await {
                Ok(list) => {
                    backoff.succeeded();
                    let resource_version = list.resource_version().unwrap_or_default().to_string();
                    (
                        Some(Ok(WatcherEvent::Restarted(list.items))),
                        State::Listed { resource_version },
                    )
                }
                Err(e) => {
                    backoff.failed();
                    (Some(Err(e)), State::Empty)
                }
            }
        }
        State::Listed { resource_version } => {
            backoff.wait().await;
            match context
                .api
                .watch(&context.watch_params, &resource_version)
                .await
            {
                Ok(stream) => (
                    None,
                    State::Watching {
                        resource_version,
                        stream,
                        delivered: false,
                    },
                ),
                Err(e) if e.is_expired() => {
                    tracing::debug!(%resource_version, "watch version expired; listing again");
                    (None, State::Empty)
                }
                Err(e) => {
                    backoff.failed();
                    (Some(Err(e)), State::Listed { resource_version })
                }
            }
        }
        State::Watching {
            mut resource_version,
            mut stream,
            delivered,
        } => {
            let event = match stream.next().await {
                Some(Ok(event)) => event,
                Some(Err(e)) => {
                    // A broken connection or an unreadable event: re-watch from what was
                    // seen last.
                    backoff.failed();
                    return (Some(Err(e)), State::Listed { resource_version });
                }
                None => {
                    if !delivered {
                        backoff.failed();
                    }
                    return (None, State::Listed { resource_version });
                }
            };
            if let Some(rv) = event.object().and_then(resource_version_of) {
                resource_version = rv;
            }
            let item = match event {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => WatcherEvent::Applied(o),
                WatchEvent::Deleted(o) => WatcherEvent::Deleted(o),
                WatchEvent::Bookmark(_) => {
                    backoff.succeeded();
                    let state = State::Watching {
                        resource_version,
                        stream,
                        delivered: true,
                    };
                    return (None, state);
                }
                WatchEvent::Error(status) => {
                    let error = Error::Api(Box::new(status));
                    if error.is_expired() {
                        tracing::debug!(%resource_version, "watch expired; listing again");
                        return (None, State::Empty);
                    }
                    backoff.failed();
                    return (Some(Err(error)), State::Listed { resource_version });
                }
            };
            backoff.succeeded();
            let state = State::Watching {
                resource_version,
                stream,
                delivered: true,
            };
            (Some(Ok(item)), state)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Client;
    use crate::config::Config;
    use crate::testing::{Reply, TestServer};
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::{Value, json};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn pod(name: &str, rv: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default", "resourceVersion": rv}})
    }

    fn line(kind: &str, object: Value) -> Vec<u8> {
        format!("{}\n", json!({"type": kind, "object": object})).into_bytes()
    }

    fn names(pods: &[Pod]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect()
    }

    fn name(event: &WatcherEvent<Pod>) -> String {
        match event {
            WatcherEvent::Applied(p) | WatcherEvent::Deleted(p) => p.metadata.name.clone().unwrap(),
            WatcherEvent::Restarted(_) => panic!("unexpected restart"),
        }
    }

    #[tokio::test]
    async fn lists_watches_follows_versions_and_relists_on_expiry() {
        let lists = Arc::new(AtomicUsize::new(0));
        let watches = Arc::new(AtomicUsize::new(0));
        let (l, w) = (lists.clone(), watches.clone());
        let server = TestServer::start(move |req| {
            if req.param("watch").is_none() {
                let n = l.fetch_add(1, Ordering::SeqCst);
                let (items, rv) = if n == 0 {
                    (vec![pod("a", "5"), pod("b", "7")], "10")
                } else {
                    (vec![pod("c", "30")], "30")
                };
                return Reply::json(
                    200,
                    json!({"kind": "PodList", "apiVersion": "v1",
                           "metadata": {"resourceVersion": rv}, "items": items}),
                );
            }
            match w.fetch_add(1, Ordering::SeqCst) {
                // First watch: an event, a bookmark, then the server closes.
                0 => Reply::chunks(vec![
                    line("ADDED", pod("d", "11")),
                    line(
                        "BOOKMARK",
                        json!({"kind": "Pod", "apiVersion": "v1",
                                             "metadata": {"resourceVersion": "15"}}),
                    ),
                ]),
                // Second: resumes from the bookmark, then the version is too old.
                1 => Reply::chunks(vec![
                    line("DELETED", pod("a", "16")),
                    line(
                        "ERROR",
                        json!({"kind": "Status", "apiVersion": "v1",
                                          "code": 410, "reason": "Expired", "message": "too old"}),
                    ),
                ]),
                _ => Reply::chunks(vec![line("MODIFIED", pod("c", "31"))]),
            }
        })
        .await;
        let client = Client::new(Config::new(server.url())).unwrap();
        let api: Api<Pod> = Api::namespaced(client, "default");
        let mut events = Box::pin(watcher(api, ListParams::default().labels("app=web")));

        match events.next().await.unwrap().unwrap() {
            WatcherEvent::Restarted(pods) => assert_eq!(names(&pods), ["a", "b"]),
            other => panic!("unexpected {other:?}"),
        }
        let e = events.next().await.unwrap().unwrap();
        assert!(matches!(e, WatcherEvent::Applied(_)));
        assert_eq!(name(&e), "d");
        let e = events.next().await.unwrap().unwrap();
        assert!(matches!(e, WatcherEvent::Deleted(_)));
        assert_eq!(name(&e), "a");
        match events.next().await.unwrap().unwrap() {
            WatcherEvent::Restarted(pods) => assert_eq!(names(&pods), ["c"]),
            other => panic!("unexpected {other:?}"),
        }
        let e = events.next().await.unwrap().unwrap();
        assert_eq!(name(&e), "c");

        let requests = server.requests();
        let watch_versions: Vec<_> = requests
            .iter()
            .filter(|r| r.param("watch").is_some())
            .map(|r| r.param("resourceVersion").unwrap())
            .collect();
        assert_eq!(watch_versions[..3], ["10", "15", "30"]);
        for r in &requests {
            assert_eq!(r.path, "/api/v1/namespaces/default/pods");
            assert_eq!(r.param("labelSelector").as_deref(), Some("app=web"));
        }
        let watch = requests
            .iter()
            .find(|r| r.param("watch").is_some())
            .unwrap();
        assert_eq!(watch.param("allowWatchBookmarks").as_deref(), Some("true"));
        assert_eq!(watch.param("timeoutSeconds").as_deref(), Some("290"));
    }

    #[tokio::test]
    async fn list_errors_are_items_and_the_watcher_carries_on() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let server = TestServer::start(move |req| {
            if req.param("watch").is_some() {
                return Reply::chunks(vec![]);
            }
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::json(
                    500,
                    json!({"kind": "Status", "code": 500, "reason": "InternalError",
                           "message": "store unavailable"}),
                )
            } else {
                Reply::json(
                    200,
                    json!({"metadata": {"resourceVersion": "1"}, "items": []}),
                )
            }
        })
        .await;
        let client = Client::new(Config::new(server.url())).unwrap();
        let mut events = Box::pin(watcher(Api::<Pod>::all(client), ListParams::default()));
        let err = events.next().await.unwrap().unwrap_err();
        assert_eq!(err.status_code(), Some(500));
        match events.next().await.unwrap().unwrap() {
            WatcherEvent::Restarted(pods) => assert!(pods.is_empty()),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(server.requests()[0].path, "/api/v1/pods");
    }

    #[tokio::test]
    async fn paged_lists_are_joined() {
        let server = TestServer::start(|req| match req.param("continue").as_deref() {
            None => Reply::json(
                200,
                json!({"metadata": {"resourceVersion": "9", "continue": "tok+/="},
                       "items": [pod("a", "1")]}),
            ),
            Some("tok+/=") => Reply::json(
                200,
                json!({"metadata": {"resourceVersion": "9"}, "items": [pod("b", "2")]}),
            ),
            Some(other) => panic!("unexpected continue {other}"),
        })
        .await;
        let client = Client::new(Config::new(server.url())).unwrap();
        let api: Api<Pod> = Api::namespaced(client, "default");
        let list = api.list_all(&ListParams::default().limit(1)).await.unwrap();
        assert_eq!(names(&list.items), ["a", "b"]);
        assert_eq!(list.resource_version(), Some("9"));
        assert_eq!(list.continue_token(), None);
        assert!(
            server
                .requests()
                .iter()
                .all(|r| r.param("limit").as_deref() == Some("1"))
        );
    }
}
