//! The embedded store on a full disk: writes fail with a clear error while there is no
//! room, nothing acknowledged is lost, and writes succeed again once there is room —
//! without a restart.
//!
//! The store lives on a small tmpfs mounted for the test (it needs root, as the kubelet
//! tests do); a filler file takes the rest of the room. The same through the API server:
//! a create on a full disk is a `500` Status naming the cause, the server stays healthy
//! for reads, and creates work again once there is room.

use std::path::{Path, PathBuf};
use std::process::Command;

use minik8s_apiserver::StoreConfig;
use minik8s_storage::embedded::EmbeddedStore;
use minik8s_storage::{Error, ListOptions, Store};
use minik8s_tests::apiserver::{Backend, TestApiServer};
use serde_json::{Value, json};

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs (the test needs root)");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the file system with a file until the disk is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run dd");
    filler
}

fn value(i: usize) -> Vec<u8> {
    format!("{i:08}").repeat(512).into_bytes()
}

#[tokio::test]
async fn a_full_disk_fails_writes_loses_nothing_and_recovers() {
    let fs = Tmpfs::mount("16m");
    let path = fs.path().join("store.redb");
    let store = EmbeddedStore::open(&path).unwrap();
    let mut acked = Vec::new();
    for i in 0..20 {
        store.create(&format!("/k/{i:04}"), value(i)).await.unwrap();
        acked.push(i);
    }

    let filler = fill(fs.path());
    let mut failure = None;
    for i in 20..2000 {
        match store.create(&format!("/k/{i:04}"), value(i)).await {
            Ok(_) => acked.push(i),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let failure = failure.expect("a write fails when the disk is full");
    assert!(
        matches!(failure, Error::Embedded { .. }),
        "unexpected error {failure:?}"
    );
    eprintln!("the failed write: {failure}");
    // Reads still work and see every acknowledged write.
    let listed = store.list("/k/", ListOptions::default()).await.unwrap();
    assert_eq!(listed.items.len(), acked.len());

    // Room again: writes succeed, in the same store.
    std::fs::remove_file(&filler).unwrap();
    let next = acked.last().unwrap() + 1;
    store
        .create(&format!("/k/{next:04}"), value(next))
        .await
        .expect("a write succeeds once there is room again");
    acked.push(next);

    drop(store);
    let store = EmbeddedStore::open(&path).unwrap();
    let listed = store.list("/k/", ListOptions::default()).await.unwrap();
    let keys: Vec<String> = listed.items.iter().map(|kv| kv.key.clone()).collect();
    let want: Vec<String> = acked.iter().map(|i| format!("/k/{i:04}")).collect();
    assert_eq!(keys, want, "every acknowledged write, and only those");
    for kv in &listed.items {
        let i: usize = kv.key["/k/".len()..].parse().unwrap();
        assert_eq!(kv.value, value(i));
    }
}

fn pod(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": format!("p{i:04}"),
                        "annotations": {"filler": "x".repeat(4096)}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

#[tokio::test]
async fn the_api_server_on_a_full_disk_answers_500_and_recovers() {
    let fs = Tmpfs::mount("16m");
    let data_dir = fs.path().join("data");
    let api = TestApiServer::start_with(Backend::Embedded, None, |c| {
        c.controllers = None;
        c.store = StoreConfig::Embedded { data_dir };
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let pods = format!("{}/api/v1/namespaces/default/pods", api.url);
    let create = |i: usize| http.post(&pods).json(&pod(i)).send();

    let mut acked = 0;
    for i in 0..5 {
        assert_eq!(create(i).await.unwrap().status(), 201);
        acked += 1;
    }
    let filler = fill(fs.path());
    let (status, body) = loop {
        assert!(acked < 2000, "a create fails when the disk is full");
        let response = create(acked).await.unwrap();
        if response.status() != 201 {
            break (response.status(), response.json::<Value>().await.unwrap());
        }
        acked += 1;
    };
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "InternalError");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("No space left on device"), "{message}");

    // Reads are served meanwhile, and the server says it is healthy.
    let healthz = http
        .get(format!("{}/healthz", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200);
    let list: Value = http.get(&pods).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), acked);

    std::fs::remove_file(&filler).unwrap();
    assert_eq!(create(acked).await.unwrap().status(), 201);
    acked += 1;
    let list: Value = http.get(&pods).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (0..acked).map(|i| format!("p{i:04}")).collect();
    assert_eq!(names, want);
}
