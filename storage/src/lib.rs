//! Key-value storage for the MiniK8s API server.
//!
//! One [`Store`] trait, two backends: [`embedded::EmbeddedStore`] (a single redb file, the
//! default) and [`etcd::EtcdStore`] (one or many etcd members). Both give every write a
//! global, strictly increasing revision, compare-and-swap on that revision, consistent
//! lists at a revision and gap-free watches from a revision, so the API server above them
//! can implement Kubernetes' `resourceVersion` semantics the same way on either.

pub mod embedded;
pub mod etcd;

use std::pin::Pin;

use futures::Stream;

/// A store revision. Revisions start at 1 and every successful write increases it by one
/// (etcd may increase it for writes outside our prefixes; callers only rely on ordering).
pub type Revision = i64;

/// One stored value with the revisions etcd calls `create_revision` and `mod_revision`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created this key (unchanged by later updates).
    pub create_revision: Revision,
    /// Revision of the last write to this key: the object's `resourceVersion`.
    pub mod_revision: Revision,
}

/// Options for [`Store::list`].
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Return only keys strictly greater than this one (the `continue` position).
    pub start_after: Option<String>,
    /// At most this many items; `None` or `Some(0)` means all.
    pub limit: Option<usize>,
    /// List the state as of this revision; `None` (or a revision ≤ 0) means the current
    /// revision. A revision that has been compacted away is [`Error::Compacted`]; one in
    /// the future is [`Error::FutureRevision`].
    pub revision: Option<Revision>,
}

/// The result of [`Store::list`].
#[derive(Clone, Debug, Default)]
pub struct ListResult {
    /// Items sorted by key.
    pub items: Vec<KeyValue>,
    /// The revision the list was taken at (pass it back in [`ListOptions::revision`] to
    /// continue a paged list consistently, and to [`Store::watch`] to follow changes).
    pub revision: Revision,
    /// True when `limit` cut the list short: more keys follow the last item.
    pub more: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Updated,
    Deleted,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub key: String,
    /// The new value for `Created`/`Updated`; the last value before deletion for `Deleted`.
    pub value: Vec<u8>,
    /// The value before this change, for `Updated` (and `Deleted`, where it equals `value`).
    pub prev_value: Option<Vec<u8>>,
    /// The revision of this change (for `Deleted`, the revision of the delete itself).
    pub revision: Revision,
    /// Create revision of the key (for `Deleted`, the one of the deleted value).
    pub create_revision: Revision,
}

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("key {key} already exists")]
    AlreadyExists { key: String },
    #[error("key {key} not found")]
    NotFound { key: String },
    /// The compare-and-swap failed: the key is at another revision.
    #[error("key {key} is at revision {actual}, not {expected}")]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    /// The revision asked for is older than the oldest one kept.
    #[error("revision {requested} has been compacted; the oldest available is {compacted}")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    #[error("revision {requested} is in the future; the current revision is {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    #[error("embedded store {path}: {message}")]
    Embedded { path: String, message: String },
    #[error("etcd: {0}")]
    Etcd(String),
    #[error("store is closed")]
    Closed,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The storage interface of the API server.
///
/// Every method is atomic. A write that returned `Ok` is durable: it survives a crash of
/// the process (and for the embedded store, `kill -9` right after the call returns).
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The value at `key`, if any, at the current revision.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys starting with `prefix`, sorted, as of one revision.
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult>;

    /// Creates `key`; [`Error::AlreadyExists`] if it exists. Returns the new revision.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision>;

    /// Replaces `key` if its `mod_revision` is `expected`; [`Error::Conflict`] if it is not,
    /// [`Error::NotFound`] if the key is missing. Returns the new revision.
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision>;

    /// Deletes `key`, if `expected` is given only at that `mod_revision`. Returns the
    /// deleted value, whose `mod_revision` is set to the revision of the delete.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue>;

    /// Every change to keys under `prefix` with a revision greater than `after`, in
    /// revision order, with no gap and no duplicate, then live changes as they happen.
    /// [`Error::Compacted`] (before the stream starts, or as its last item) if the history
    /// after `after` is no longer kept.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// The store's current revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// Forgets the history before `revision`: afterwards lists at an older revision, and
    /// watches from an `after` older than `revision - 1`, fail with [`Error::Compacted`].
    /// The state at `revision` and the changes after it stay available (a watch from
    /// `after == revision - 1` may fail on one backend and not on another: don't rely on
    /// it). Compacting at or below an earlier compaction does nothing; a `revision` above
    /// the current one is [`Error::FutureRevision`].
    async fn compact(&self, revision: Revision) -> Result<()>;
}
