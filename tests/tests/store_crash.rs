//! Crash safety of the embedded store: every write acknowledged before a `kill -9` is in
//! the file when it is opened again.
//!
//! `store-writer` writes keys from several tasks and prints each one only after its write
//! returned `Ok`. The test reads those acknowledgements, kills the writer with SIGKILL in
//! the middle of its writes, reopens the file and checks every acknowledged key, over
//! several rounds on the same file.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use minik8s_storage::embedded::EmbeddedStore;
use minik8s_storage::{ListOptions, Store};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const ROUNDS: usize = 4;
/// Acknowledged writes to wait for before the kill.
const ACKED_BEFORE_KILL: usize = 300;
const WAIT: Duration = Duration::from_secs(60);

fn value_of(key: &str) -> Vec<u8> {
    format!("value of {key}").into_bytes()
}

/// Runs the writer until `ACKED_BEFORE_KILL` keys are acknowledged, kills it with SIGKILL
/// and returns every key it acknowledged (including lines still in the pipe).
async fn write_and_kill(path: &std::path::Path, prefix: &str) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_store-writer"))
        .arg(path)
        .arg(prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start store-writer");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let mut line = String::new();

    let read_enough = async {
        while acked.len() < ACKED_BEFORE_KILL {
            line.clear();
            let n = out.read_line(&mut line).await.expect("read writer output");
            assert!(n > 0, "store-writer exited after {} keys", acked.len());
            acked.push(line.trim_end().to_owned());
        }
    };
    tokio::time::timeout(WAIT, read_enough)
        .await
        .expect("store-writer too slow");

    child.start_kill().expect("kill store-writer");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("store-writer did not die")
        .unwrap();
    assert!(!status.success(), "killed, not exited: {status}");

    // Keys printed before the kill but not read yet count too; a cut last line does not.
    let drain = async {
        loop {
            line.clear();
            let n = out.read_line(&mut line).await.expect("read writer output");
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            acked.push(line.trim_end().to_owned());
        }
    };
    tokio::time::timeout(WAIT, drain)
        .await
        .expect("drain writer output");
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let mut all_acked = BTreeSet::new();

    for round in 0..ROUNDS {
        let acked = write_and_kill(&path, &format!("/round{round}/")).await;
        assert!(acked.len() >= ACKED_BEFORE_KILL);
        let unique: BTreeSet<String> = acked.iter().cloned().collect();
        assert_eq!(unique.len(), acked.len(), "a key acknowledged twice");
        all_acked.extend(unique);

        let store = EmbeddedStore::open(&path).expect("reopen after kill -9");
        for key in &all_acked {
            let kv = store
                .get(key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: acknowledged key {key} lost"));
            assert_eq!(kv.value, value_of(key), "round {round}: value of {key}");
        }
        // Every write is one create, so the persisted revision counts the keys exactly:
        // revision and data were committed together.
        let list = store.list("/", ListOptions::default()).await.unwrap();
        assert!(list.items.len() >= all_acked.len());
        assert_eq!(
            store.current_revision().await.unwrap(),
            i64::try_from(list.items.len()).unwrap(),
            "round {round}: revision out of step with the data"
        );
        eprintln!(
            "round {round}: {} acknowledged, {} in the file",
            acked.len(),
            list.items.len()
        );
    }
}
