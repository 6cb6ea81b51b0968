//! One conformance suite for every `Store` backend: each case runs against the embedded
//! store (a fresh file) and against a real etcd (`embedded::case` and `etcd::case`).
//!
//! etcd cases share one etcd per test binary (it lives while any test uses it) and stay
//! apart through key prefixes; cases that compact get an etcd of their own, since a
//! compaction is global. Every wait has a deadline.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures::StreamExt;
use minik8s_storage::embedded::EmbeddedStore;
use minik8s_storage::etcd::EtcdStore;
use minik8s_storage::{
    Error, Event, EventKind, KeyValue, ListOptions, ListResult, Revision, Store, WatchStream,
};
use minik8s_tests::etcd::EtcdProcess;

const WAIT: Duration = Duration::from_secs(30);

/// A store to test, the prefix every key of the case lives under, and what must outlive
/// the store (its file, its etcd).
struct Fixture {
    store: Arc<dyn Store>,
    prefix: String,
    _keep: Box<dyn Any + Send + Sync>,
}

impl Fixture {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

fn prefix(case: &str) -> String {
    format!("/conformance/{case}/")
}

async fn embedded(case: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
    Fixture {
        store: Arc::new(store),
        prefix: prefix(case),
        _keep: Box::new(dir),
    }
}

/// The etcd shared by the cases of this binary, started by the first that needs it and
/// stopped when the last one using it ends.
fn shared_etcd() -> anyhow::Result<Arc<EtcdProcess>> {
    static SHARED: Mutex<Weak<EtcdProcess>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(etcd) = slot.upgrade() {
        return Ok(etcd);
    }
    let etcd = Arc::new(EtcdProcess::start()?);
    *slot = Arc::downgrade(&etcd);
    Ok(etcd)
}

async fn etcd_fixture(case: &str, etcd: Arc<EtcdProcess>) -> Fixture {
    let store = within("connect to etcd", EtcdStore::connect(&[etcd.endpoint()]))
        .await
        .unwrap();
    Fixture {
        store: Arc::new(store),
        prefix: prefix(case),
        _keep: Box::new(etcd),
    }
}

async fn etcd_shared(case: &str) -> Fixture {
    let etcd = tokio::task::spawn_blocking(shared_etcd)
        .await
        .unwrap()
        .expect("start etcd");
    etcd_fixture(case, etcd).await
}

async fn etcd_own(case: &str) -> Fixture {
    let etcd = tokio::task::spawn_blocking(EtcdProcess::start)
        .await
        .unwrap()
        .expect("start etcd");
    etcd_fixture(case, Arc::new(etcd)).await
}

/// Generates `embedded::<case>` and `etcd::<case>` for every `case: etcd_fixture`.
macro_rules! conformance {
    ($($case:ident: $etcd:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::embedded(stringify!($case)).await).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::$etcd(stringify!($case)).await).await;
                }
            )*
        }
    };
}

conformance! {
    create_get_already_exists: etcd_shared,
    update_compare_and_swap: etcd_shared,
    delete_returns_the_last_value: etcd_shared,
    revisions_strictly_increase: etcd_shared,
    list_is_sorted_and_prefix_isolated: etcd_shared,
    list_pages_consistently_while_writes_happen: etcd_shared,
    list_at_an_older_revision_returns_the_old_state: etcd_shared,
    list_at_a_future_revision_fails: etcd_shared,
    compaction_forgets_history: etcd_own,
    watch_replays_missed_events_then_live_ones: etcd_shared,
    watch_under_concurrent_writers_has_no_gap_and_no_duplicate: etcd_shared,
    concurrent_compare_and_swap_counter: etcd_shared,
}

// ---------------------------------------------------------------------------------------
// Helpers

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?}: {what}"))
}

async fn next_event(stream: &mut WatchStream) -> Event {
    match within("watch event", stream.next()).await {
        Some(Ok(event)) => event,
        Some(Err(e)) => panic!("watch failed: {e}"),
        None => panic!("watch ended"),
    }
}

fn at(revision: Revision) -> ListOptions {
    ListOptions {
        revision: Some(revision),
        ..ListOptions::default()
    }
}

fn page(start_after: Option<&str>, limit: usize, revision: Option<Revision>) -> ListOptions {
    ListOptions {
        start_after: start_after.map(str::to_owned),
        limit: Some(limit),
        revision,
    }
}

fn keys(list: &ListResult) -> Vec<&str> {
    list.items.iter().map(|kv| kv.key.as_str()).collect()
}

#[track_caller]
fn assert_event(
    event: &Event,
    kind: EventKind,
    key: &str,
    value: &[u8],
    prev_value: Option<&[u8]>,
    revision: Revision,
    create_revision: Revision,
) {
    assert_eq!(event.kind, kind, "{event:?}");
    assert_eq!(event.key, key, "{event:?}");
    assert_eq!(event.value, value, "{event:?}");
    assert_eq!(event.prev_value.as_deref(), prev_value, "{event:?}");
    assert_eq!(event.revision, revision, "{event:?}");
    assert_eq!(event.create_revision, create_revision, "{event:?}");
}

// ---------------------------------------------------------------------------------------
// Cases

async fn create_get_already_exists(f: Fixture) {
    let s = &f.store;
    let key = f.key("a");
    assert!(s.get(&key).await.unwrap().is_none());

    let revision = s.create(&key, b"one".to_vec()).await.unwrap();
    assert!(revision > 0);
    let kv = s.get(&key).await.unwrap().expect("created key");
    assert_eq!(
        kv,
        KeyValue {
            key: key.clone(),
            value: b"one".to_vec(),
            create_revision: revision,
            mod_revision: revision,
        }
    );

    match s.create(&key, b"two".to_vec()).await {
        Err(Error::AlreadyExists { key: k }) => assert_eq!(k, key),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(s.get(&key).await.unwrap().unwrap().value, b"one");
    // A failed create does not move the revision.
    assert_eq!(s.get(&key).await.unwrap().unwrap().mod_revision, revision);
}

async fn update_compare_and_swap(f: Fixture) {
    let s = &f.store;
    let key = f.key("a");
    let created = s.create(&key, b"v1".to_vec()).await.unwrap();
    let updated = s.update(&key, b"v2".to_vec(), created).await.unwrap();
    assert!(updated > created);
    let kv = s.get(&key).await.unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.mod_revision),
        (&b"v2"[..], created, updated)
    );

    match s.update(&key, b"stale".to_vec(), created).await {
        Err(Error::Conflict {
            key: k,
            expected,
            actual,
        }) => assert_eq!((k, expected, actual), (key.clone(), created, updated)),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(s.get(&key).await.unwrap().unwrap().value, b"v2");

    match s.update(&f.key("missing"), b"x".to_vec(), updated).await {
        Err(Error::NotFound { key: k }) => assert_eq!(k, f.key("missing")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    // Revision 0 is "absent" in etcd's compare: it must not create the key.
    assert!(matches!(
        s.update(&f.key("missing"), b"x".to_vec(), 0).await,
        Err(Error::NotFound { .. })
    ));
    assert!(s.get(&f.key("missing")).await.unwrap().is_none());
}

async fn delete_returns_the_last_value(f: Fixture) {
    let s = &f.store;
    let key = f.key("a");

    // Unconditional delete.
    let created = s.create(&key, b"v1".to_vec()).await.unwrap();
    let updated = s.update(&key, b"v2".to_vec(), created).await.unwrap();
    let deleted = s.delete(&key, None).await.unwrap();
    assert_eq!(deleted.key, key);
    assert_eq!(deleted.value, b"v2");
    assert_eq!(deleted.create_revision, created);
    assert!(
        deleted.mod_revision > updated,
        "mod_revision is the delete's"
    );
    assert!(s.get(&key).await.unwrap().is_none());
    assert!(matches!(
        s.delete(&key, None).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.delete(&key, Some(deleted.mod_revision)).await,
        Err(Error::NotFound { .. })
    ));

    // Conditional delete.
    let created = s.create(&key, b"w1".to_vec()).await.unwrap();
    let updated = s.update(&key, b"w2".to_vec(), created).await.unwrap();
    match s.delete(&key, Some(created)).await {
        Err(Error::Conflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (created, updated)),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(s.get(&key).await.unwrap().unwrap().value, b"w2");
    let deleted = s.delete(&key, Some(updated)).await.unwrap();
    assert_eq!(deleted.value, b"w2");
    assert_eq!(deleted.create_revision, created);
    assert!(deleted.mod_revision > updated);
    assert!(s.get(&key).await.unwrap().is_none());

    // A deleted key can be created again, with a new create revision.
    let recreated = s.create(&key, b"x".to_vec()).await.unwrap();
    assert!(recreated > deleted.mod_revision);
    assert_eq!(
        s.get(&key).await.unwrap().unwrap().create_revision,
        recreated
    );
}

async fn revisions_strictly_increase(f: Fixture) {
    let s = &f.store;
    let mut last = s.current_revision().await.unwrap();
    let mut check = |revision: Revision| {
        assert!(revision > last, "{revision} after {last}");
        last = revision;
    };
    for i in 0..10 {
        let key = f.key(&format!("k{i}"));
        let created = s.create(&key, vec![i]).await.unwrap();
        check(created);
        let updated = s.update(&key, vec![i, i], created).await.unwrap();
        check(updated);
        if i % 2 == 0 {
            check(s.delete(&key, Some(updated)).await.unwrap().mod_revision);
        }
    }
    assert!(s.current_revision().await.unwrap() >= last);
}

async fn list_is_sorted_and_prefix_isolated(f: Fixture) {
    let s = &f.store;
    let mut revisions = BTreeMap::new();
    for name in ["a/z", "a/b", "a/m", "a/b/c", "ab/x", "a", "b/y", "a0"] {
        let key = f.key(name);
        revisions.insert(
            key.clone(),
            s.create(&key, name.as_bytes().to_vec()).await.unwrap(),
        );
    }
    let last = *revisions.values().max().unwrap();

    let list = s.list(&f.key("a/"), ListOptions::default()).await.unwrap();
    let expected: Vec<String> = ["a/b", "a/b/c", "a/m", "a/z"]
        .iter()
        .map(|n| f.key(n))
        .collect();
    assert_eq!(keys(&list), expected);
    assert!(!list.more);
    assert!(list.revision >= last);
    for kv in &list.items {
        let name = kv.key.strip_prefix(&f.prefix).unwrap();
        assert_eq!(kv.value, name.as_bytes());
        assert_eq!(kv.create_revision, revisions[&kv.key]);
        assert_eq!(kv.mod_revision, revisions[&kv.key]);
    }

    // The whole case prefix: every key, sorted.
    let all = s.list(&f.prefix, ListOptions::default()).await.unwrap();
    let sorted: Vec<&str> = revisions.keys().map(String::as_str).collect();
    assert_eq!(keys(&all), sorted);

    // An empty prefix.
    let none = s
        .list(&f.key("nothing/"), ListOptions::default())
        .await
        .unwrap();
    assert!(none.items.is_empty() && !none.more);
}

async fn list_pages_consistently_while_writes_happen(f: Fixture) {
    let s = &f.store;
    let prefix = f.key("page/");
    for i in 0..25 {
        s.create(&format!("{prefix}k{i:02}"), vec![i])
            .await
            .unwrap();
    }
    let full = s.list(&prefix, ListOptions::default()).await.unwrap();
    assert_eq!(full.items.len(), 25);

    let first = s.list(&prefix, page(None, 10, None)).await.unwrap();
    assert_eq!(first.items.len(), 10);
    assert!(first.more);
    let revision = first.revision;

    // Writes between the pages: all land after `revision`.
    let k15 = format!("{prefix}k15");
    let k20 = format!("{prefix}k20");
    s.delete(&k15, None).await.unwrap();
    let k20_rev = s.get(&k20).await.unwrap().unwrap().mod_revision;
    s.update(&k20, b"changed".to_vec(), k20_rev).await.unwrap();
    s.create(&format!("{prefix}k12a"), vec![]).await.unwrap();
    s.create(&format!("{prefix}k99"), vec![]).await.unwrap();
    s.delete(&format!("{prefix}k03"), None).await.unwrap();

    let mut items = first.items.clone();
    let mut more = first.more;
    let mut pages = 1;
    while more {
        let last = items.last().unwrap().key.clone();
        let next = s
            .list(&prefix, page(Some(&last), 10, Some(revision)))
            .await
            .unwrap();
        assert_eq!(next.revision, revision);
        assert!(next.items.len() <= 10);
        more = next.more;
        items.extend(next.items);
        pages += 1;
        assert!(pages <= 3, "too many pages");
    }
    assert_eq!(pages, 3);
    assert_eq!(
        items, full.items,
        "pages at one revision make the full list"
    );

    // Exactly `limit` items left: no more.
    let exact = s
        .list(&prefix, page(None, 25, Some(revision)))
        .await
        .unwrap();
    assert_eq!(exact.items.len(), 25);
    assert!(!exact.more);
    // Limit 0 is no limit.
    let unlimited = s
        .list(&prefix, page(None, 0, Some(revision)))
        .await
        .unwrap();
    assert_eq!(unlimited.items, full.items);

    // Today's state has the writes.
    let now = s.list(&prefix, ListOptions::default()).await.unwrap();
    let names: Vec<&str> = now
        .items
        .iter()
        .map(|kv| kv.key.strip_prefix(&prefix).unwrap())
        .collect();
    assert_eq!(names.len(), 25 - 2 + 2);
    assert!(names.contains(&"k12a") && names.contains(&"k99"));
    assert!(!names.contains(&"k15") && !names.contains(&"k03"));
    let changed = now.items.iter().find(|kv| kv.key == k20).unwrap();
    assert_eq!(changed.value, b"changed");
}

async fn list_at_an_older_revision_returns_the_old_state(f: Fixture) {
    let s = &f.store;
    let prefix = f.key("old/");
    let (a, b, c, d) = (
        format!("{prefix}a"),
        format!("{prefix}b"),
        format!("{prefix}c"),
        format!("{prefix}d"),
    );
    let a1 = s.create(&a, b"a1".to_vec()).await.unwrap();
    let b1 = s.create(&b, b"b1".to_vec()).await.unwrap();
    let c1 = s.create(&c, b"c1".to_vec()).await.unwrap();
    let before = s.list(&prefix, ListOptions::default()).await.unwrap();

    let a2 = s.update(&a, b"a2".to_vec(), a1).await.unwrap();
    let middle = s.list(&prefix, ListOptions::default()).await.unwrap();
    s.delete(&b, None).await.unwrap();
    let d1 = s.create(&d, b"d1".to_vec()).await.unwrap();
    s.delete(&c, Some(c1)).await.unwrap();
    s.create(&c, b"c2".to_vec()).await.unwrap();

    let old = s.list(&prefix, at(before.revision)).await.unwrap();
    assert_eq!(old.revision, before.revision);
    assert_eq!(old.items, before.items);
    assert_eq!(
        old.items
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.as_slice(), kv.mod_revision))
            .collect::<Vec<_>>(),
        vec![
            (a.as_str(), &b"a1"[..], a1),
            (b.as_str(), &b"b1"[..], b1),
            (c.as_str(), &b"c1"[..], c1),
        ]
    );
    let mid = s.list(&prefix, at(middle.revision)).await.unwrap();
    assert_eq!(mid.items, middle.items);
    assert_eq!(mid.items[0].mod_revision, a2);

    // Paging at the old revision.
    let first = s
        .list(&prefix, page(None, 2, Some(before.revision)))
        .await
        .unwrap();
    assert_eq!(keys(&first), vec![a.as_str(), b.as_str()]);
    assert!(first.more);
    let second = s
        .list(&prefix, page(Some(&b), 2, Some(before.revision)))
        .await
        .unwrap();
    assert_eq!(keys(&second), vec![c.as_str()]);
    assert!(!second.more);

    let now = s.list(&prefix, ListOptions::default()).await.unwrap();
    assert_eq!(keys(&now), vec![a.as_str(), c.as_str(), d.as_str()]);
    assert_eq!(now.items[1].value, b"c2");
    assert_eq!(now.items[2].mod_revision, d1);
}

async fn list_at_a_future_revision_fails(f: Fixture) {
    let s = &f.store;
    s.create(&f.key("a"), vec![]).await.unwrap();
    let current = s.current_revision().await.unwrap();
    let requested = current + 1_000_000;
    match s.list(&f.prefix, at(requested)).await {
        Err(Error::FutureRevision {
            requested: r,
            current: c,
        }) => {
            assert_eq!(r, requested);
            assert!(c >= current && c < requested);
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
    // The current revision itself is fine.
    assert_eq!(s.list(&f.prefix, at(current)).await.unwrap().items.len(), 1);
}

async fn compaction_forgets_history(f: Fixture) {
    let s = &f.store;
    let a = f.key("a");
    let b = f.key("b");
    let a1 = s.create(&a, b"1".to_vec()).await.unwrap();
    let a2 = s.update(&a, b"2".to_vec(), a1).await.unwrap();
    let b1 = s.create(&b, b"b".to_vec()).await.unwrap();

    s.compact(a2).await.unwrap();

    match s.list(&f.prefix, at(a1)).await {
        Err(Error::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (a1, a2)),
        other => panic!("expected Compacted, got {other:?}"),
    }
    // The state at the compaction revision is still there.
    let kept = s.list(&f.prefix, at(a2)).await.unwrap();
    assert_eq!(keys(&kept), vec![a.as_str()]);
    assert_eq!(kept.items[0].value, b"2");

    // A watch that needs a compacted event fails, before the stream or as its first item.
    match s.watch(&f.prefix, a1 - 1).await {
        Err(Error::Compacted { .. }) => {}
        Err(e) => panic!("expected Compacted, got {e}"),
        Ok(mut stream) => match within("compacted watch", stream.next()).await {
            Some(Err(Error::Compacted { compacted, .. })) => assert_eq!(compacted, a2),
            other => panic!("expected Compacted, got {other:?}"),
        },
    }
    // A watch after the compaction revision works.
    let mut watch = s.watch(&f.prefix, a2).await.unwrap();
    let event = next_event(&mut watch).await;
    assert_event(&event, EventKind::Created, &b, b"b", None, b1, b1);

    // Compacting again at or below is a no-op; compacting the future fails.
    s.compact(a1).await.unwrap();
    s.compact(a2).await.unwrap();
    let current = s.current_revision().await.unwrap();
    assert!(matches!(
        s.compact(current + 1_000).await,
        Err(Error::FutureRevision { .. })
    ));
    assert_eq!(s.get(&a).await.unwrap().unwrap().value, b"2");
}

async fn watch_replays_missed_events_then_live_ones(f: Fixture) {
    let s = &f.store;
    let prefix = f.key("w/");
    let a = format!("{prefix}a");
    let b = format!("{prefix}b");
    let start = s.current_revision().await.unwrap();

    let a1 = s.create(&a, b"1".to_vec()).await.unwrap();
    let a2 = s.update(&a, b"2".to_vec(), a1).await.unwrap();
    s.create(&f.key("wx"), b"sibling".to_vec()).await.unwrap();
    let b1 = s.create(&b, b"x".to_vec()).await.unwrap();
    let deleted = s.delete(&a, None).await.unwrap();
    let a3 = deleted.mod_revision;

    let mut watch = s.watch(&prefix, start).await.unwrap();
    assert_event(
        &next_event(&mut watch).await,
        EventKind::Created,
        &a,
        b"1",
        None,
        a1,
        a1,
    );
    assert_event(
        &next_event(&mut watch).await,
        EventKind::Updated,
        &a,
        b"2",
        Some(b"1"),
        a2,
        a1,
    );
    assert_event(
        &next_event(&mut watch).await,
        EventKind::Created,
        &b,
        b"x",
        None,
        b1,
        b1,
    );
    // A deletion carries the last value.
    assert_event(
        &next_event(&mut watch).await,
        EventKind::Deleted,
        &a,
        b"2",
        Some(b"2"),
        a3,
        a1,
    );

    // Live events follow.
    let b2 = s.update(&b, b"y".to_vec(), b1).await.unwrap();
    assert_event(
        &next_event(&mut watch).await,
        EventKind::Updated,
        &b,
        b"y",
        Some(b"x"),
        b2,
        b1,
    );

    // A watch from the middle replays exactly what came after.
    let mut later = s.watch(&prefix, a2).await.unwrap();
    assert_eq!(next_event(&mut later).await.revision, b1);
    assert_eq!(next_event(&mut later).await.revision, a3);
    assert_eq!(next_event(&mut later).await.revision, b2);

    // A watch from now sees only what comes next. The marker written last shows nothing
    // else (no duplicate, no sibling key) came in between.
    let now = s.current_revision().await.unwrap();
    let mut fresh = s.watch(&prefix, now).await.unwrap();
    s.create(&f.key("wy"), vec![]).await.unwrap();
    let marker = s.create(&format!("{prefix}marker"), vec![]).await.unwrap();
    for stream in [&mut watch, &mut later, &mut fresh] {
        let event = next_event(stream).await;
        assert_eq!(event.revision, marker, "{event:?}");
    }
}

async fn watch_under_concurrent_writers_has_no_gap_and_no_duplicate(f: Fixture) {
    const TASKS: usize = 4;
    const WRITES: usize = 100;
    let s = f.store.clone();
    let prefix = f.key("c/");
    let start = s.current_revision().await.unwrap();
    let mut first = s.watch(&prefix, start).await.unwrap();

    let (halfway_tx, halfway) = tokio::sync::oneshot::channel();
    let mut halfway_tx = Some(halfway_tx);
    let mut writers = Vec::new();
    for task in 0..TASKS {
        let s = s.clone();
        let prefix = prefix.clone();
        let notify = if task == 0 { halfway_tx.take() } else { None };
        writers.push(tokio::spawn(async move {
            let mut notify = notify;
            let mut revisions = Vec::new();
            for i in 0..WRITES {
                let key = format!("{prefix}{task}/{i:03}");
                revisions.push((s.create(&key, key.clone().into_bytes()).await.unwrap(), key));
                if let Some(notify) = notify.take_if(|_| i == WRITES / 2) {
                    let _ = notify.send(());
                }
            }
            revisions
        }));
    }
    // A second watcher subscribes while the writes are happening: replay and live events
    // must join up exactly.
    within("halfway", halfway).await.unwrap();
    let mut second = s.watch(&prefix, start).await.unwrap();

    let mut expected = Vec::new();
    for writer in writers {
        expected.extend(within("writer", writer).await.unwrap());
    }
    expected.sort();
    assert_eq!(expected.len(), TASKS * WRITES);

    for stream in [&mut first, &mut second] {
        for (revision, key) in &expected {
            let event = next_event(stream).await;
            assert_eq!((event.revision, &event.key), (*revision, key));
            assert_eq!(event.kind, EventKind::Created);
            assert_eq!(event.value, key.as_bytes());
        }
    }
    // Nothing more than the writes: the next event is a marker written now.
    let marker = s.create(&format!("{prefix}marker"), vec![]).await.unwrap();
    assert_eq!(next_event(&mut first).await.revision, marker);
    assert_eq!(next_event(&mut second).await.revision, marker);
}

async fn concurrent_compare_and_swap_counter(f: Fixture) {
    const TASKS: u64 = 8;
    const INCREMENTS: u64 = 25;
    let key = f.key("counter");
    f.store.create(&key, b"0".to_vec()).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let s = f.store.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0u64;
            for _ in 0..INCREMENTS {
                loop {
                    let kv = s.get(&key).await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                    let next = (n + 1).to_string().into_bytes();
                    match s.update(&key, next, kv.mod_revision).await {
                        Ok(_) => break,
                        Err(Error::Conflict { .. }) => conflicts += 1,
                        Err(e) => panic!("update: {e}"),
                    }
                }
            }
            conflicts
        }));
    }
    for task in tasks {
        within("counter task", task).await.unwrap();
    }
    let value = f.store.get(&key).await.unwrap().unwrap().value;
    assert_eq!(value, (TASKS * INCREMENTS).to_string().into_bytes());
}
