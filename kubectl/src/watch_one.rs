//! Watching one object until a condition holds, as client-go's `UntilWithSync` does for
//! `rollout status` and `wait`: a list by `metadata.name` (each object found is an
//! `ADDED` event), then a watch from the list's resourceVersion, resumed from the last
//! version seen when the server ends it and relisted when that version has expired.

use std::time::{Duration, Instant};

use futures::StreamExt;
use minik8s_client::{DynamicApi, ListParams, WatchEvent};
use serde_json::Value;

use crate::error::Result;

/// How a watch ended.
#[derive(Debug)]
pub enum Until {
    /// The condition said so.
    Done,
    /// The deadline passed first.
    TimedOut,
}

/// The server ends each watch after this long; the watch is then opened again.
const WATCH_SECONDS: u32 = 300;

/// Calls `on_event` with each event of the object `name` until it returns `true`, an
/// error, or `deadline` passes. With `gone_is_done`, a list that no longer has the
/// object ends the wait too (kubectl's `wait --for=delete`).
pub async fn until(
    api: &DynamicApi,
    name: &str,
    deadline: Option<Instant>,
    gone_is_done: bool,
    mut on_event: impl FnMut(WatchEvent<Value>) -> Result<bool>,
) -> Result<Until> {
    let selector = format!("metadata.name={name}");
    let mut resource_version: Option<String> = None;
    loop {
        let version =
            match resource_version.take() {
                Some(v) => v,
                None => {
                    let list =
                        match within(deadline, api.list(&ListParams::default().fields(&selector)))
                            .await
                        {
                            Some(list) => list?,
                            None => return Ok(Until::TimedOut),
                        };
                    if gone_is_done && list.items.is_empty() {
                        return Ok(Until::Done);
                    }
                    for item in list.items.iter() {
                        if on_event(WatchEvent::Added(item.clone()))? {
                            return Ok(Until::Done);
                        }
                    }
                    list.resource_version().unwrap_or_default().to_string()
                }
            };
        let params = ListParams::default()
            .fields(&selector)
            .timeout(WATCH_SECONDS);
        let mut stream = match within(deadline, api.watch(&params, &version)).await {
            Some(stream) => stream?,
            None => return Ok(Until::TimedOut),
        };
        let mut last = version;
        loop {
            let Some(event) = (match within(deadline, stream.next()).await {
                Some(event) => event,
                None => return Ok(Until::TimedOut),
            }) else {
                // The server ended the watch: resume where it stopped.
                resource_version = Some(last);
                break;
            };
            let event = event?;
            if let Some(v) = event
                .object()
                .and_then(|o| o["metadata"]["resourceVersion"].as_str())
            {
                last = v.to_string();
            }
            match event {
                WatchEvent::Bookmark(_) => {}
                // Expired or otherwise refused: list again, after a pause in case the
                // server refuses every watch.
                WatchEvent::Error(_) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
                event => {
                    if on_event(event)? {
                        return Ok(Until::Done);
                    }
                }
            }
        }
    }
}

/// `future`, unless `deadline` comes first.
async fn within<F: std::future::Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        None => Some(future.await),
        Some(d) => tokio::time::timeout_at(d.into(), future).await.ok(),
    }
}

/// A deadline `timeout` from now; none for zero (kubectl's "wait forever").
pub fn deadline(timeout: Duration) -> Option<Instant> {
    (!timeout.is_zero()).then(|| Instant::now() + timeout)
}
