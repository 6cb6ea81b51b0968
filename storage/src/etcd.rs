//! etcd backend.
//!
//! Keys are stored as given; revisions are etcd's. Writes are single etcd transactions:
//!
//! * create: `create_revision(key) == 0` → put;
//! * update: `mod_revision(key) == expected && create_revision(key) > 0` → put, else get
//!   (to tell [`Error::NotFound`] from [`Error::Conflict`]);
//! * delete: the same guard when a revision is expected, the deleted value comes back as
//!   `prev_kv` and its `mod_revision` is the delete's revision (the response header's).
//!
//! Lists are ranges `[prefix, prefix_end)` (or from `start_after + "\0"`) at a revision;
//! watches are prefix watches from `after + 1` with `prev_kv`, so `Updated` and `Deleted`
//! events carry the previous value. etcd's "revision has been compacted" and "future
//! revision" errors become [`Error::Compacted`] and [`Error::FutureRevision`].

use std::collections::VecDeque;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, KvClient,
    Txn, TxnOp, TxnOpResponse, WatchClient, WatchOptions, WatchResponse,
};

use crate::{
    Error, Event, EventKind, KeyValue, ListOptions, ListResult, Result, Revision, Store,
    WatchStream,
};

/// How long [`EtcdStore::connect`] waits for a first answer, and a watch for its creation.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long looking up the compaction revision (for an error message) may take.
const COMPACTED_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// A [`Store`] in etcd (v3 API, one or many members).
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to the etcd members at `endpoints` (`host:port` or `http://host:port`) and
    /// checks that they answer.
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(etcd)?;
        let store = EtcdStore {
            kv: client.kv_client(),
            watch: client.watch_client(),
        };
        match tokio::time::timeout(ANSWER_TIMEOUT, store.current_revision()).await {
            Ok(Ok(_)) => Ok(store),
            Ok(Err(e)) => Err(Error::Etcd(format!("{endpoints:?}: {e}"))),
            Err(_) => Err(Error::Etcd(format!(
                "{endpoints:?}: no answer within {ANSWER_TIMEOUT:?}"
            ))),
        }
    }

    /// The revision etcd has compacted to, found with a watch from revision 1 (which etcd
    /// cancels at once with the compaction revision). Only used to report
    /// [`Error::Compacted`]; `None` if it cannot be found quickly.
    async fn compacted_revision(&self) -> Option<Revision> {
        let mut watch = self.watch.clone();
        let lookup = async move {
            let options = WatchOptions::new().with_start_revision(1);
            let mut stream = watch.watch(vec![0u8], Some(options)).await.ok()?;
            loop {
                let response = stream.message().await.ok()??;
                if response.compact_revision() > 0 {
                    return Some(response.compact_revision());
                }
                if response.canceled() {
                    return None;
                }
            }
        };
        tokio::time::timeout(COMPACTED_LOOKUP_TIMEOUT, lookup)
            .await
            .ok()
            .flatten()
    }

    /// Maps an etcd error of a request at `requested`, recognizing compaction and future
    /// revisions.
    async fn revision_error(&self, e: etcd_client::Error, requested: Revision) -> Error {
        match classify(&e) {
            Some(RevisionError::Compacted) => Error::Compacted {
                requested,
                compacted: self
                    .compacted_revision()
                    .await
                    .unwrap_or(requested.saturating_add(1)),
            },
            Some(RevisionError::Future) => match self.current_revision().await {
                Ok(current) => Error::FutureRevision { requested, current },
                Err(e) => e,
            },
            None => etcd(e),
        }
    }
}

fn etcd(e: etcd_client::Error) -> Error {
    Error::Etcd(e.to_string())
}

enum RevisionError {
    Compacted,
    Future,
}

fn classify(e: &etcd_client::Error) -> Option<RevisionError> {
    let etcd_client::Error::GRpcStatus(status) = e else {
        return None;
    };
    let message = status.message();
    if message.contains("required revision has been compacted") {
        Some(RevisionError::Compacted)
    } else if message.contains("required revision is a future revision") {
        Some(RevisionError::Future)
    } else {
        None
    }
}

/// The first key after every key starting with `prefix`, as etcd's `range_end`; `"\0"`
/// (to the end of the key space) when there is none.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| Error::Etcd("response without header".into()))
}

fn key_value(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    }
}

/// The value found by the `get` of a failed transaction's `else` branch.
fn else_get(responses: &[TxnOpResponse]) -> Option<KeyValue> {
    responses.iter().find_map(|r| match r {
        TxnOpResponse::Get(get) => get.kvs().first().map(key_value),
        _ => None,
    })
}

fn convert_event(event: &etcd_client::Event) -> Option<Event> {
    let kv = event.kv()?;
    let key = String::from_utf8_lossy(kv.key()).into_owned();
    let prev = event.prev_kv();
    Some(match event.event_type() {
        EventType::Put => {
            let created = kv.create_revision() == kv.mod_revision();
            Event {
                kind: if created {
                    EventKind::Created
                } else {
                    EventKind::Updated
                },
                key,
                value: kv.value().to_vec(),
                prev_value: prev.filter(|_| !created).map(|p| p.value().to_vec()),
                revision: kv.mod_revision(),
                create_revision: kv.create_revision(),
            }
        }
        EventType::Delete => Event {
            kind: EventKind::Deleted,
            key,
            value: prev.map(|p| p.value().to_vec()).unwrap_or_default(),
            prev_value: prev.map(|p| p.value().to_vec()),
            revision: kv.mod_revision(),
            create_revision: prev.map(|p| p.create_revision()).unwrap_or(0),
        },
    })
}

/// What a watch response means for the stream.
fn watch_response(response: &WatchResponse, after: Revision) -> Result<Vec<Event>> {
    if response.compact_revision() > 0 {
        return Err(Error::Compacted {
            requested: after,
            compacted: response.compact_revision(),
        });
    }
    if response.canceled() {
        return Err(Error::Etcd(format!(
            "watch cancelled: {}",
            response.cancel_reason()
        )));
    }
    Ok(response.events().iter().filter_map(convert_event).collect())
}

struct EtcdWatch {
    stream: etcd_client::WatchStream,
    pending: VecDeque<Event>,
    after: Revision,
    done: bool,
}

impl EtcdWatch {
    async fn next(mut self) -> Option<(Result<Event>, EtcdWatch)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            if self.done {
                return None;
            }
            let error = match self.stream.message().await {
                Ok(Some(response)) => match watch_response(&response, self.after) {
                    Ok(events) => {
                        self.pending.extend(events);
                        continue;
                    }
                    Err(e) => e,
                },
                Ok(None) => Error::Etcd("watch stream ended".into()),
                Err(e) => etcd(e),
            };
            self.done = true;
            return Some((Err(error), self));
        }
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let response = self.kv.clone().get(key, None).await.map_err(etcd)?;
        Ok(response.kvs().first().map(key_value))
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let end = prefix_end(prefix.as_bytes());
        let start = match opts.start_after.as_deref() {
            Some(after) if after >= prefix => {
                let mut start = after.as_bytes().to_vec();
                start.push(0);
                start
            }
            _ if prefix.is_empty() => vec![0],
            _ => prefix.as_bytes().to_vec(),
        };
        if end != [0] && start >= end {
            // `start_after` is past every key of the prefix.
            let revision = match opts.revision.filter(|r| *r > 0) {
                Some(revision) => revision,
                None => self.current_revision().await?,
            };
            return Ok(ListResult {
                items: Vec::new(),
                revision,
                more: false,
            });
        }
        let mut options = GetOptions::new().with_range(end);
        if let Some(limit) = opts.limit.filter(|l| *l > 0) {
            options = options.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let at = opts.revision.filter(|r| *r > 0);
        if let Some(revision) = at {
            options = options.with_revision(revision);
        }
        let response = match self.kv.clone().get(start, Some(options)).await {
            Ok(response) => response,
            Err(e) => return Err(self.revision_error(e, at.unwrap_or(0)).await),
        };
        Ok(ListResult {
            items: response.kvs().iter().map(key_value).collect(),
            revision: match at {
                Some(revision) => revision,
                None => header_revision(response.header())?,
            },
            more: response.more(),
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        let response = self.kv.clone().txn(txn).await.map_err(etcd)?;
        if !response.succeeded() {
            return Err(Error::AlreadyExists {
                key: key.to_owned(),
            });
        }
        header_revision(response.header())
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        let txn = Txn::new()
            .when([
                Compare::mod_revision(key, CompareOp::Equal, expected),
                Compare::create_revision(key, CompareOp::Greater, 0),
            ])
            .and_then([TxnOp::put(key, value, None)])
            .or_else([TxnOp::get(key, None)]);
        let response = self.kv.clone().txn(txn).await.map_err(etcd)?;
        if response.succeeded() {
            return header_revision(response.header());
        }
        Err(match else_get(&response.op_responses()) {
            None => Error::NotFound {
                key: key.to_owned(),
            },
            Some(current) => Error::Conflict {
                key: key.to_owned(),
                expected,
                actual: current.mod_revision,
            },
        })
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        let mut guard = vec![Compare::create_revision(key, CompareOp::Greater, 0)];
        if let Some(expected) = expected {
            guard.push(Compare::mod_revision(key, CompareOp::Equal, expected));
        }
        let txn = Txn::new()
            .when(guard)
            .and_then([TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let response = self.kv.clone().txn(txn).await.map_err(etcd)?;
        let responses = response.op_responses();
        if !response.succeeded() {
            return Err(match (else_get(&responses), expected) {
                (Some(current), Some(expected)) => Error::Conflict {
                    key: key.to_owned(),
                    expected,
                    actual: current.mod_revision,
                },
                _ => Error::NotFound {
                    key: key.to_owned(),
                },
            });
        }
        let revision = header_revision(response.header())?;
        let deleted = responses.iter().find_map(|r| match r {
            TxnOpResponse::Delete(delete) => delete.prev_kvs().first().map(key_value),
            _ => None,
        });
        match deleted {
            Some(kv) => Ok(KeyValue {
                mod_revision: revision,
                ..kv
            }),
            None => Err(Error::NotFound {
                key: key.to_owned(),
            }),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let key = if prefix.is_empty() {
            vec![0]
        } else {
            prefix.as_bytes().to_vec()
        };
        let options = WatchOptions::new()
            .with_range(prefix_end(prefix.as_bytes()))
            .with_start_revision(after.saturating_add(1).max(1))
            .with_prev_key();
        let mut stream = self
            .watch
            .clone()
            .watch(key, Some(options))
            .await
            .map_err(etcd)?;
        // Wait until etcd confirms the watch, so a broken one fails here.
        let mut pending = VecDeque::new();
        let created = async {
            loop {
                match stream.message().await.map_err(etcd)? {
                    None => return Err(Error::Etcd("watch stream ended".into())),
                    Some(response) => {
                        pending.extend(watch_response(&response, after)?);
                        if response.created() {
                            return Ok(());
                        }
                    }
                }
            }
        };
        match tokio::time::timeout(ANSWER_TIMEOUT, created).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(Error::Etcd(format!(
                    "watch not created within {ANSWER_TIMEOUT:?}"
                )));
            }
        }
        let state = EtcdWatch {
            stream,
            pending,
            after,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(state, EtcdWatch::next)))
    }

    async fn current_revision(&self) -> Result<Revision> {
        let response = self
            .kv
            .clone()
            .get(vec![0u8], Some(GetOptions::new().with_count_only()))
            .await
            .map_err(etcd)?;
        header_revision(response.header())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self.kv.clone().compact(revision, None).await {
            Ok(_) => Ok(()),
            Err(e) => match classify(&e) {
                // Compacting to an already compacted revision is a no-op.
                Some(RevisionError::Compacted) => Ok(()),
                _ => Err(self.revision_error(e, revision).await),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
