//! Behaviour specific to the embedded store: persistence across reopen, the bounds of the
//! in-memory history, group commit and watchers that fall behind. The behaviour shared
//! with etcd is covered by the conformance suite of the tests crate.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use minik8s_storage::embedded::{EmbeddedOptions, EmbeddedStore};
use minik8s_storage::{Error, EventKind, ListOptions, Store, WatchStream};

const WAIT: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

async fn next(stream: &mut WatchStream) -> Option<minik8s_storage::Result<minik8s_storage::Event>> {
    within("watch event", stream.next()).await
}

fn at(revision: i64) -> ListOptions {
    ListOptions {
        revision: Some(revision),
        ..ListOptions::default()
    }
}

#[tokio::test]
async fn reopen_keeps_data_and_revision_but_not_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let store = EmbeddedStore::open(&path).unwrap();
        let a = store.create("/a", b"1".to_vec()).await.unwrap();
        store.update("/a", b"2".to_vec(), a).await.unwrap();
        store.create("/b", b"3".to_vec()).await.unwrap();
        store.delete("/b", None).await.unwrap();
        assert_eq!(store.current_revision().await.unwrap(), 4);
    }
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), 4);
    let a = store.get("/a").await.unwrap().unwrap();
    assert_eq!(
        (a.value, a.create_revision, a.mod_revision),
        (b"2".to_vec(), 1, 2)
    );
    assert!(store.get("/b").await.unwrap().is_none());

    let list = store.list("/", at(4)).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(matches!(
        store.list("/", at(3)).await,
        Err(Error::Compacted {
            requested: 3,
            compacted: 4
        })
    ));
    assert!(matches!(
        store.watch("/", 3).await,
        Err(Error::Compacted { .. })
    ));

    let mut watch = store.watch("/", 4).await.unwrap();
    let revision = store.create("/c", b"4".to_vec()).await.unwrap();
    assert_eq!(revision, 5);
    let event = next(&mut watch).await.unwrap().unwrap();
    assert_eq!((event.kind, event.revision), (EventKind::Created, 5));
}

#[tokio::test]
async fn a_second_open_of_the_same_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let _store = EmbeddedStore::open(&path).unwrap();
    assert!(matches!(
        EmbeddedStore::open(&path),
        Err(Error::Embedded { .. })
    ));
}

#[tokio::test]
async fn history_is_bounded_by_the_event_log_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        event_log_capacity: 5,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open_with(&dir.path().join("store.redb"), options).unwrap();
    for i in 0..10 {
        store.create(&format!("/k{i}"), vec![]).await.unwrap();
    }
    // Events 6..=10 are kept: the state at 5 can be rebuilt, the one at 4 cannot.
    assert_eq!(store.list("/", at(5)).await.unwrap().items.len(), 5);
    assert!(matches!(
        store.list("/", at(4)).await,
        Err(Error::Compacted {
            requested: 4,
            compacted: 5
        })
    ));
    assert!(matches!(
        store.watch("/", 4).await,
        Err(Error::Compacted { .. })
    ));
    let mut watch = store.watch("/", 5).await.unwrap();
    for revision in 6..=10 {
        assert_eq!(next(&mut watch).await.unwrap().unwrap().revision, revision);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits_and_keep_their_own_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.create(&format!("/k{i:02}"), vec![i]).await })
        })
        .collect();
    let mut revisions = Vec::new();
    for task in tasks {
        revisions.push(within("create", task).await.unwrap().unwrap());
    }
    revisions.sort();
    assert_eq!(revisions, (1..=64).collect::<Vec<_>>());

    // Updates racing on one key with the same expected revision: exactly one wins, even
    // when they land in the same transaction.
    let base = store.create("/counter", vec![]).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.update("/counter", vec![i], base).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match within("update", task).await.unwrap() {
            Ok(_) => won += 1,
            Err(Error::Conflict { expected, .. }) => assert_eq!(expected, base),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn a_watcher_behind_the_live_buffer_catches_up_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        watch_buffer: 4,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open_with(&dir.path().join("store.redb"), options).unwrap();
    let mut watch = store.watch("/", 0).await.unwrap();
    for i in 0..100 {
        store.create(&format!("/k{i:03}"), vec![]).await.unwrap();
    }
    for revision in 1..=100 {
        assert_eq!(next(&mut watch).await.unwrap().unwrap().revision, revision);
    }
}

#[tokio::test]
async fn a_watcher_behind_the_log_ends_with_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        watch_buffer: 4,
        event_log_capacity: 10,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open_with(&dir.path().join("store.redb"), options).unwrap();
    let mut watch = store.watch("/", 0).await.unwrap();
    for i in 0..100 {
        store.create(&format!("/k{i:03}"), vec![]).await.unwrap();
    }
    let mut last = 0;
    loop {
        match next(&mut watch).await {
            Some(Ok(event)) => {
                assert!(event.revision > last, "out of order");
                last = event.revision;
            }
            Some(Err(Error::Compacted { .. })) => break,
            other => panic!("expected Compacted, got {other:?}"),
        }
    }
    assert!(
        next(&mut watch).await.is_none(),
        "Compacted is the last item"
    );
}

#[tokio::test]
async fn dropping_the_store_ends_watches() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
    let mut watch = store.watch("/", 0).await.unwrap();
    store.create("/a", vec![]).await.unwrap();
    drop(store);
    assert_eq!(next(&mut watch).await.unwrap().unwrap().revision, 1);
    assert!(matches!(next(&mut watch).await, Some(Err(Error::Closed))));
    assert!(next(&mut watch).await.is_none());
}
