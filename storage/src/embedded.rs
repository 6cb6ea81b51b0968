//! Embedded redb backend.
//!
//! # Layout
//!
//! One redb file with two tables:
//!
//! * `kv`: key → `create_revision (i64 LE) · mod_revision (i64 LE) · value bytes`;
//! * `meta`: `"revision"` → the store's global revision.
//!
//! Every write runs in a redb write transaction that checks its precondition, changes `kv`
//! and bumps `meta.revision` together, and is committed with redb's default
//! [`redb::Durability::Immediate`] (the commit `fsync`s the file) before the caller is
//! answered. A write acknowledged with `Ok` therefore survives `kill -9` or a power cut.
//!
//! # Group commit
//!
//! Writes are not run by the callers: they are queued to one writer thread, which takes
//! every request waiting in the queue (up to [`EmbeddedOptions::max_batch`]), applies them
//! one after the other in a single transaction, commits once, and only then answers each
//! caller. Each write still gets its own revision and sees the writes before it in the
//! batch, so the outcome is the same as running them one by one; only the `fsync` is shared.
//! A lone writer pays one commit per write; many concurrent writers share commits, which
//! is what lets the store take hundreds of durable writes per second on slow disks.
//! A failed precondition (conflict, missing key, existing key) fails only its own request;
//! an I/O error aborts the whole batch and fails every request in it.
//!
//! # I/O errors
//!
//! After one I/O error (a full disk, say) redb refuses every further transaction until the
//! file is opened again. The writer does that at once after a failed commit: it waits for
//! the reads in flight to finish, closes the file, opens it again (redb goes back to the
//! last committed transaction) and carries on. If the file cannot be opened, reads and
//! [`Store::current_revision`] (the API server's health check) fail with the reason, and
//! the writer tries again every second and before each write. Nothing acknowledged is lost
//! either way: a write is answered `Ok` only after its commit.
//!
//! # History: an in-memory event log
//!
//! Only the current state is persisted. The last [`EmbeddedOptions::event_log_capacity`]
//! changes are kept in memory, each with the value it replaced. That log serves:
//!
//! * **lists at an older revision** `R`: a read transaction gives the current state at
//!   revision `C`; for every key changed in `(R, C]` the value it had at `R` is the previous
//!   value of its first change after `R`; those values are merged over the current state;
//! * **watches from an older revision**: the events after `R` are replayed from the log,
//!   then live events follow from a broadcast channel. Replay and subscription happen under
//!   the log's lock, which the writer also takes to publish, so there is no gap and no
//!   duplicate between the two.
//!
//! The log covers the revisions after its *floor*: at open the floor is the revision found
//! in the file (history before the open is gone, but the state at that revision is the
//! current one), it moves up as old events are dropped from the full log, and
//! [`Store::compact`] moves it to the compacted revision. Lists at a revision below the
//! floor and watches from `after` below the floor fail with [`Error::Compacted`].
//!
//! A persisted history table would survive restarts, but it would make every write larger
//! and need its own garbage collection; clients of the API server already handle
//! "resource version too old" by re-listing, so a restart behaving like a compaction is
//! acceptable.
//!
//! # Watchers
//!
//! Live events reach watchers through a bounded broadcast channel
//! ([`EmbeddedOptions::watch_buffer`]). A watcher that falls behind it goes back to the log
//! and replays what it missed from there; if the log no longer covers its position, it
//! receives [`Error::Compacted`] as its last item. Memory stays bounded either way.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{broadcast, oneshot};

use crate::{
    Error, Event, EventKind, KeyValue, ListOptions, ListResult, Result, Revision, Store,
    WatchStream,
};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const REVISION_KEY: &str = "revision";
/// Bytes before the value in a `kv` entry: create and mod revision.
const HEADER_LEN: usize = 16;
/// How long a list at an older revision waits for the writer to publish the events of a
/// commit it already sees. Publishing follows the commit at once; this only bounds a bug.
const PUBLISH_WAIT: Duration = Duration::from_secs(30);

/// Tuning of an [`EmbeddedStore`].
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// How many recent changes are kept in memory for lists at older revisions and for
    /// watches from older revisions. Default 10,000.
    pub event_log_capacity: usize,
    /// How many live events a watcher may fall behind before it has to catch up from the
    /// event log. Default 1,024.
    pub watch_buffer: usize,
    /// The most writes committed together in one transaction. Default 512.
    pub max_batch: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            event_log_capacity: 10_000,
            watch_buffer: 1_024,
            max_batch: 512,
        }
    }
}

/// A [`Store`] in a single redb file. See the module documentation for the design.
///
/// Dropping the store finishes the writes already queued, closes the file and ends every
/// watch stream with [`Error::Closed`].
pub struct EmbeddedStore {
    db: Arc<DbSlot>,
    path: Arc<str>,
    shared: Arc<Shared>,
    requests: Option<mpsc::Sender<WriteRequest>>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens the store in the file at `path`, creating it if it does not exist, with the
    /// default [`EmbeddedOptions`].
    pub fn open(path: &Path) -> Result<EmbeddedStore> {
        Self::open_with(path, EmbeddedOptions::default())
    }

    /// Opens the store in the file at `path`, creating it if it does not exist.
    ///
    /// Fails if another process (or another store in this process) has the file open.
    pub fn open_with(path: &Path, options: EmbeddedOptions) -> Result<EmbeddedStore> {
        let path_str: Arc<str> = path.display().to_string().into();
        let fail = |message: String| Error::Embedded {
            path: path_str.to_string(),
            message,
        };
        let (db, revision) = open_database(path).map_err(fail)?;
        let db = Arc::new(DbSlot {
            path: path.to_path_buf(),
            current: RwLock::new(Ok(Arc::new(db))),
        });

        let (sender, _) = broadcast::channel(options.watch_buffer.max(1));
        let shared = Arc::new(Shared {
            log: Mutex::new(Log {
                entries: VecDeque::new(),
                floor: revision,
                head: revision,
                sender: Some(sender),
            }),
            published: Condvar::new(),
            capacity: options.event_log_capacity,
        });

        let (requests, queue) = mpsc::channel();
        let writer = Writer {
            db: db.clone(),
            path: path_str.clone(),
            shared: shared.clone(),
            queue,
            revision,
            max_batch: options.max_batch.max(1),
            broken: false,
        };
        let writer = std::thread::Builder::new()
            .name("embedded-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| fail(format!("start writer thread: {e}")))?;

        Ok(EmbeddedStore {
            db,
            path: path_str,
            shared,
            requests: Some(requests),
            writer: Some(writer),
        })
    }

    fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::Embedded {
            path: self.path.to_string(),
            message: message.to_string(),
        }
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .as_ref()
            .ok_or(Error::Closed)?
            .send(WriteRequest { op, reply })
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Runs a read transaction on the blocking thread pool.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database, &Shared) -> Result<T, ReadError> + Send + 'static,
    {
        let slot = self.db.clone();
        let shared = self.shared.clone();
        let result = tokio::task::spawn_blocking(move || {
            let db = slot.get().map_err(ReadError::Storage)?;
            f(&db, &shared)
        })
        .await
        .map_err(|e| self.error(format!("read task failed: {e}")))?;
        result.map_err(|e| match e {
            ReadError::Store(e) => e,
            ReadError::Storage(message) => self.error(message),
        })
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // The writer drains the queue and exits once every sender is gone.
        drop(self.requests.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        self.shared.lock().sender = None;
    }
}

#[async_trait::async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.read(move |db, _| {
            let txn = db.begin_read().map_err(storage)?;
            let table = txn.open_table(KV).map_err(storage)?;
            let found = table.get(key.as_str()).map_err(storage)?;
            found.map(|v| decode(&key, v.value())).transpose()
        })
        .await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let prefix = prefix.to_owned();
        self.read(move |db, shared| list(db, shared, &prefix, &opts))
            .await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        match self
            .write(WriteOp::Create {
                key: key.to_owned(),
                value,
            })
            .await?
        {
            WriteOutcome::Written(revision) => Ok(revision),
            WriteOutcome::Deleted(_) => Err(self.error("unexpected answer to create")),
        }
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        match self
            .write(WriteOp::Update {
                key: key.to_owned(),
                value,
                expected,
            })
            .await?
        {
            WriteOutcome::Written(revision) => Ok(revision),
            WriteOutcome::Deleted(_) => Err(self.error("unexpected answer to update")),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        match self
            .write(WriteOp::Delete {
                key: key.to_owned(),
                expected,
            })
            .await?
        {
            WriteOutcome::Deleted(kv) => Ok(kv),
            WriteOutcome::Written(_) => Err(self.error("unexpected answer to delete")),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let (pending, live, last) = self.shared.subscribe(prefix, after)?;
        let state = WatchState {
            shared: self.shared.clone(),
            prefix: prefix.to_owned(),
            pending,
            live,
            last,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(state, WatchState::next)))
    }

    async fn current_revision(&self) -> Result<Revision> {
        // A store whose file could not be opened again after an I/O error is not healthy.
        self.db.get().map_err(|message| self.error(message))?;
        Ok(self.shared.lock().head)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut log = self.shared.lock();
        if revision > log.head {
            return Err(Error::FutureRevision {
                requested: revision,
                current: log.head,
            });
        }
        if revision <= log.floor {
            return Ok(());
        }
        while log.entries.front().is_some_and(|e| e.revision <= revision) {
            log.entries.pop_front();
        }
        log.floor = revision;
        Ok(())
    }
}

/// Opens (or creates) the file and returns it with the revision stored in it.
fn open_database(path: &Path) -> Result<(Database, Revision), String> {
    let db = Database::create(path).map_err(|e| format!("open: {e}"))?;
    let revision = init_tables(&db).map_err(|e| format!("initialize: {e}"))?;
    Ok((db, revision))
}

/// The open database, or why there is none. Readers take a handle for one transaction;
/// the writer swaps in a fresh one after an I/O error.
struct DbSlot {
    path: PathBuf,
    current: RwLock<Result<Arc<Database>, String>>,
}

impl DbSlot {
    fn get(&self) -> Result<Arc<Database>, String> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Closes the database, once the reads holding it are done, and opens the file again.
    /// Returns the revision stored in it.
    fn reopen(&self) -> Result<Revision, String> {
        // Readers wait on the lock meanwhile rather than take the old handle.
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let previous = std::mem::replace(&mut *current, Err("reopening after an I/O error".into()));
        if let Ok(mut db) = previous {
            // redb allows one open handle per file: the old one must be gone first.
            loop {
                match Arc::try_unwrap(db) {
                    Ok(db) => break drop(db),
                    Err(shared) => {
                        db = shared;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        match open_database(&self.path) {
            Ok((db, revision)) => {
                *current = Ok(Arc::new(db));
                Ok(revision)
            }
            Err(e) => {
                *current = Err(format!("unavailable after an I/O error: {e}"));
                Err(e)
            }
        }
    }
}

/// Creates the tables if needed and returns the revision stored in the file.
fn init_tables(db: &Database) -> Result<Revision, redb::Error> {
    let txn = db.begin_write()?;
    let revision = {
        txn.open_table(KV)?;
        let mut meta = txn.open_table(META)?;
        let stored = meta.get(REVISION_KEY)?.map(|v| v.value());
        match stored {
            Some(revision) => revision,
            None => {
                meta.insert(REVISION_KEY, 0)?;
                0
            }
        }
    };
    txn.commit()?;
    Ok(revision)
}

fn encode(create_revision: Revision, mod_revision: Revision, value: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + value.len());
    bytes.extend_from_slice(&create_revision.to_le_bytes());
    bytes.extend_from_slice(&mod_revision.to_le_bytes());
    bytes.extend_from_slice(value);
    bytes
}

fn decode(key: &str, bytes: &[u8]) -> Result<KeyValue, ReadError> {
    let (Some(create), Some(modified)) = (bytes.get(0..8), bytes.get(8..HEADER_LEN)) else {
        return Err(ReadError::Storage(format!(
            "corrupt entry for key {key}: {} bytes",
            bytes.len()
        )));
    };
    let revision = |b: &[u8]| i64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    Ok(KeyValue {
        key: key.to_owned(),
        value: bytes[HEADER_LEN..].to_vec(),
        create_revision: revision(create),
        mod_revision: revision(modified),
    })
}

/// Why a read failed: a store-level answer, or a storage error still to be tagged with
/// the file's path.
enum ReadError {
    Store(Error),
    Storage(String),
}

impl From<Error> for ReadError {
    fn from(e: Error) -> Self {
        ReadError::Store(e)
    }
}

fn storage(e: impl std::fmt::Display) -> ReadError {
    ReadError::Storage(e.to_string())
}

fn list(
    db: &Database,
    shared: &Shared,
    prefix: &str,
    opts: &ListOptions,
) -> Result<ListResult, ReadError> {
    let txn = db.begin_read().map_err(storage)?;
    let current = txn
        .open_table(META)
        .map_err(storage)?
        .get(REVISION_KEY)
        .map_err(storage)?
        .map(|v| v.value())
        .unwrap_or(0);
    let at = opts.revision.filter(|r| *r > 0).unwrap_or(current);
    if at > current {
        return Err(Error::FutureRevision {
            requested: at,
            current,
        }
        .into());
    }
    let start_after = opts.start_after.as_deref().filter(|s| *s >= prefix);
    let wanted = |key: &str| key.starts_with(prefix) && start_after.is_none_or(|s| key > s);
    // Keys changed after `at`, with the value they had at `at` (None: absent).
    let overlay = if at < current {
        shared.state_at(at, current, &wanted)?
    } else {
        BTreeMap::new()
    };

    let table = txn.open_table(KV).map_err(storage)?;
    let lower = match start_after {
        Some(s) => Bound::Excluded(s),
        None => Bound::Included(prefix),
    };
    let mut stored = table
        .range::<&str>((lower, Bound::Unbounded))
        .map_err(storage)?;
    let mut next_stored = || -> Result<Option<KeyValue>, ReadError> {
        match stored.next() {
            None => Ok(None),
            Some(entry) => {
                let (key, value) = entry.map_err(storage)?;
                let key = key.value();
                if key.starts_with(prefix) {
                    decode(key, value.value()).map(Some)
                } else {
                    Ok(None)
                }
            }
        }
    };

    let limit = opts.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let mut items = Vec::new();
    let mut more = false;
    let mut overlay = overlay.into_iter().peekable();
    let mut current_item = next_stored()?;
    loop {
        let item = match (&current_item, overlay.peek()) {
            (None, None) => break,
            (Some(kv), Some((key, _))) if kv.key < *key => {
                std::mem::replace(&mut current_item, next_stored()?)
            }
            (Some(kv), Some((key, _))) if kv.key == *key => {
                current_item = next_stored()?;
                overlay.next().and_then(|(_, old)| old)
            }
            (Some(_), None) => std::mem::replace(&mut current_item, next_stored()?),
            (_, Some(_)) => overlay.next().and_then(|(_, old)| old),
        };
        if let Some(kv) = item {
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(kv);
        }
    }
    Ok(ListResult {
        items,
        revision: at,
        more,
    })
}

/// One change, as kept in the event log.
#[derive(Debug)]
struct LogEntry {
    revision: Revision,
    kind: EventKind,
    key: String,
    /// The new value (empty for a delete).
    value: Vec<u8>,
    create_revision: Revision,
    /// The key's value before this change.
    prev: Option<KeyValue>,
}

impl LogEntry {
    fn to_event(&self) -> Event {
        let prev_value = self.prev.as_ref().map(|p| p.value.clone());
        match self.kind {
            EventKind::Deleted => Event {
                kind: EventKind::Deleted,
                key: self.key.clone(),
                value: prev_value.clone().unwrap_or_default(),
                prev_value,
                revision: self.revision,
                create_revision: self.create_revision,
            },
            kind => Event {
                kind,
                key: self.key.clone(),
                value: self.value.clone(),
                prev_value,
                revision: self.revision,
                create_revision: self.create_revision,
            },
        }
    }
}

struct Log {
    /// Events after `floor`, oldest first.
    entries: VecDeque<Arc<LogEntry>>,
    /// Lists at and watches from this revision or later can be served.
    floor: Revision,
    /// The revision of the last published write.
    head: Revision,
    /// Live events; `None` once the store is closed.
    sender: Option<broadcast::Sender<Arc<LogEntry>>>,
}

struct Shared {
    log: Mutex<Log>,
    /// Signalled when the writer publishes events.
    published: Condvar,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends the events of a committed transaction and sends them to watchers.
    fn publish(&self, entries: Vec<Arc<LogEntry>>) {
        let mut log = self.lock();
        for entry in entries {
            log.head = entry.revision;
            if let Some(sender) = &log.sender {
                // No receiver is not an error: nobody is watching.
                let _ = sender.send(entry.clone());
            }
            log.entries.push_back(entry);
        }
        while log.entries.len() > self.capacity {
            if let Some(dropped) = log.entries.pop_front() {
                log.floor = log.floor.max(dropped.revision);
            }
        }
        drop(log);
        self.published.notify_all();
    }

    /// The value at revision `at` of every key changed in `(at, current]` that `wanted`
    /// accepts. Waits for the writer to publish up to `current` if it has not yet.
    fn state_at(
        &self,
        at: Revision,
        current: Revision,
        wanted: &dyn Fn(&str) -> bool,
    ) -> Result<BTreeMap<String, Option<KeyValue>>, ReadError> {
        let deadline = Instant::now() + PUBLISH_WAIT;
        let mut log = self.lock();
        while log.head < current {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ReadError::Storage(format!(
                    "event log stuck at revision {} behind commit {current}",
                    log.head
                )));
            }
            log = self
                .published
                .wait_timeout(log, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if at < log.floor {
            return Err(Error::Compacted {
                requested: at,
                compacted: log.floor,
            }
            .into());
        }
        let start = log.entries.partition_point(|e| e.revision <= at);
        let mut overlay = BTreeMap::new();
        for entry in log.entries.range(start..) {
            if entry.revision > current {
                break;
            }
            if wanted(&entry.key) {
                overlay
                    .entry(entry.key.clone())
                    .or_insert_with(|| entry.prev.clone());
            }
        }
        Ok(overlay)
    }

    /// The logged events under `prefix` after `after` and a receiver for every later event,
    /// taken atomically; plus the revision the receiver starts after.
    #[allow(clippy::type_complexity)]
    fn subscribe(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<(
        VecDeque<Arc<LogEntry>>,
        broadcast::Receiver<Arc<LogEntry>>,
        Revision,
    )> {
        let log = self.lock();
        if after < log.floor {
            return Err(Error::Compacted {
                requested: after,
                compacted: log.floor,
            });
        }
        let receiver = log.sender.as_ref().ok_or(Error::Closed)?.subscribe();
        let start = log.entries.partition_point(|e| e.revision <= after);
        let pending = log
            .entries
            .range(start..)
            .filter(|e| e.key.starts_with(prefix))
            .cloned()
            .collect();
        Ok((pending, receiver, log.head.max(after)))
    }
}

struct WatchState {
    shared: Arc<Shared>,
    prefix: String,
    /// Events to deliver before reading the live channel.
    pending: VecDeque<Arc<LogEntry>>,
    live: broadcast::Receiver<Arc<LogEntry>>,
    /// Live events up to this revision have been seen (or replayed).
    last: Revision,
    done: bool,
}

impl WatchState {
    async fn next(mut self) -> Option<(Result<Event>, WatchState)> {
        if self.done {
            return None;
        }
        loop {
            if let Some(entry) = self.pending.pop_front() {
                return Some((Ok(entry.to_event()), self));
            }
            match self.live.recv().await {
                Ok(entry) => {
                    if entry.revision <= self.last {
                        continue;
                    }
                    self.last = entry.revision;
                    if entry.key.starts_with(&self.prefix) {
                        return Some((Ok(entry.to_event()), self));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Catch up from the log, if it still covers what was missed.
                    match self.shared.subscribe(&self.prefix, self.last) {
                        Ok((pending, live, last)) => {
                            self.pending = pending;
                            self.live = live;
                            self.last = last;
                        }
                        Err(e) => {
                            self.done = true;
                            return Some((Err(e), self));
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    self.done = true;
                    return Some((Err(Error::Closed), self));
                }
            }
        }
    }
}

enum WriteOp {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
}

enum WriteOutcome {
    Written(Revision),
    Deleted(KeyValue),
}

struct WriteRequest {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteOutcome>>,
}

/// The thread that runs every write transaction.
struct Writer {
    db: Arc<DbSlot>,
    path: Arc<str>,
    shared: Arc<Shared>,
    queue: mpsc::Receiver<WriteRequest>,
    /// The last committed revision.
    revision: Revision,
    max_batch: usize,
    /// The file must be opened again before the next transaction.
    broken: bool,
}

impl Writer {
    fn run(mut self) {
        loop {
            let first = if self.broken {
                match self.queue.recv_timeout(Duration::from_secs(1)) {
                    Ok(request) => Some(request),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match self.queue.recv() {
                    Ok(request) => Some(request),
                    Err(_) => break,
                }
            };
            if self.broken {
                self.reopen();
            }
            let Some(first) = first else { continue };
            let mut ops = vec![first.op];
            let mut replies = vec![first.reply];
            while ops.len() < self.max_batch {
                match self.queue.try_recv() {
                    Ok(request) => {
                        ops.push(request.op);
                        replies.push(request.reply);
                    }
                    Err(_) => break,
                }
            }
            match self.commit(ops) {
                Ok((outcomes, entries)) => {
                    if let Some(last) = entries.last() {
                        self.revision = last.revision;
                    }
                    // Published before anyone is answered: a caller that watches or lists
                    // at the revision it got back finds its own write.
                    self.shared.publish(entries);
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(outcome);
                    }
                }
                Err(message) => {
                    tracing::error!(%message, "embedded store write transaction failed");
                    for reply in replies {
                        let _ = reply.send(Err(Error::Embedded {
                            path: self.path.to_string(),
                            message: message.clone(),
                        }));
                    }
                    // redb takes no transaction after an I/O error until the file is
                    // opened again.
                    self.broken = true;
                    self.reopen();
                }
            }
        }
    }

    fn reopen(&mut self) {
        match self.db.reopen() {
            Ok(revision) => {
                if revision != self.revision {
                    // A commit that reported an error but reached the disk: its callers
                    // were told it failed, and its events were never published.
                    tracing::warn!(
                        stored = revision,
                        expected = self.revision,
                        "embedded store reopened at another revision"
                    );
                    self.revision = revision;
                }
                tracing::info!(path = %self.path, "embedded store reopened after an I/O error");
                self.broken = false;
            }
            Err(message) => {
                tracing::error!(%message, path = %self.path, "embedded store cannot reopen its file")
            }
        }
    }

    /// Applies `ops` in order in one transaction and commits it durably.
    #[allow(clippy::type_complexity)]
    fn commit(
        &self,
        ops: Vec<WriteOp>,
    ) -> Result<(Vec<Result<WriteOutcome>>, Vec<Arc<LogEntry>>), String> {
        let fatal = |e: &dyn std::fmt::Display| e.to_string();
        let db = self.db.get()?;
        let txn = db.begin_write().map_err(|e| fatal(&e))?;
        let mut outcomes = Vec::with_capacity(ops.len());
        let mut entries = Vec::new();
        let mut revision = self.revision;
        {
            let mut table = txn.open_table(KV).map_err(|e| fatal(&e))?;
            for op in ops {
                match apply(&mut table, op, revision + 1)? {
                    Ok((outcome, entry)) => {
                        revision = entry.revision;
                        outcomes.push(Ok(outcome));
                        entries.push(Arc::new(entry));
                    }
                    Err(e) => outcomes.push(Err(e)),
                }
            }
            if !entries.is_empty() {
                let mut meta = txn.open_table(META).map_err(|e| fatal(&e))?;
                meta.insert(REVISION_KEY, revision).map_err(|e| fatal(&e))?;
            }
        }
        if entries.is_empty() {
            txn.abort().map_err(|e| fatal(&e))?;
        } else {
            txn.commit().map_err(|e| fatal(&e))?;
        }
        Ok((outcomes, entries))
    }
}

/// Applies one write at `revision`. The outer error aborts the transaction; the inner one
/// is this write's answer (a failed precondition).
#[allow(clippy::type_complexity)]
fn apply(
    table: &mut redb::Table<'_, &'static str, &'static [u8]>,
    op: WriteOp,
    revision: Revision,
) -> Result<Result<(WriteOutcome, LogEntry)>, String> {
    let read = |table: &redb::Table<'_, &'static str, &'static [u8]>, key: &str| {
        let found = table.get(key).map_err(|e| e.to_string())?;
        match found {
            None => Ok(None),
            Some(v) => decode(key, v.value()).map(Some).map_err(|e| match e {
                ReadError::Storage(m) => m,
                ReadError::Store(e) => e.to_string(),
            }),
        }
    };
    let put = |table: &mut redb::Table<'_, &'static str, &'static [u8]>,
               key: &str,
               create: Revision,
               value: &[u8]| {
        table
            .insert(key, encode(create, revision, value).as_slice())
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    match op {
        WriteOp::Create { key, value } => {
            if read(table, &key)?.is_some() {
                return Ok(Err(Error::AlreadyExists { key }));
            }
            put(table, &key, revision, &value)?;
            Ok(Ok((
                WriteOutcome::Written(revision),
                LogEntry {
                    revision,
                    kind: EventKind::Created,
                    key,
                    value,
                    create_revision: revision,
                    prev: None,
                },
            )))
        }
        WriteOp::Update {
            key,
            value,
            expected,
        } => {
            let Some(prev) = read(table, &key)? else {
                return Ok(Err(Error::NotFound { key }));
            };
            if prev.mod_revision != expected {
                return Ok(Err(Error::Conflict {
                    key,
                    expected,
                    actual: prev.mod_revision,
                }));
            }
            put(table, &key, prev.create_revision, &value)?;
            Ok(Ok((
                WriteOutcome::Written(revision),
                LogEntry {
                    revision,
                    kind: EventKind::Updated,
                    key,
                    value,
                    create_revision: prev.create_revision,
                    prev: Some(prev),
                },
            )))
        }
        WriteOp::Delete { key, expected } => {
            let Some(prev) = read(table, &key)? else {
                return Ok(Err(Error::NotFound { key }));
            };
            if let Some(expected) = expected.filter(|e| *e != prev.mod_revision) {
                return Ok(Err(Error::Conflict {
                    key,
                    expected,
                    actual: prev.mod_revision,
                }));
            }
            table.remove(key.as_str()).map_err(|e| e.to_string())?;
            let deleted = KeyValue {
                mod_revision: revision,
                ..prev.clone()
            };
            Ok(Ok((
                WriteOutcome::Deleted(deleted),
                LogEntry {
                    revision,
                    kind: EventKind::Deleted,
                    key,
                    value: Vec::new(),
                    create_revision: prev.create_revision,
                    prev: Some(prev),
                },
            )))
        }
    }
}
