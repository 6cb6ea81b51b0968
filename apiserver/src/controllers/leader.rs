//! Leader election for the controllers, so that several API servers can share one etcd
//! and only one of them schedules pods, allocates pod CIDRs and runs TaskSets.
//!
//! The lease is one record in the store (not an API object): who holds it, for how long,
//! and a renewal count. Like client-go's leader election, expiry is judged by the
//! observer's own clock: a candidate notes *when it saw the record last change* and takes
//! the lease over (with a compare-and-swap) only after it has stayed unchanged for a whole
//! lease duration — so clocks of different machines never need to agree. The holder renews
//! every `retry` and stops acting as leader when it has not renewed for `renew_deadline`
//! (shorter than the lease duration), before anybody else may take over. A holder that
//! stops cleanly gives the lease up at once.

use std::sync::Arc;
use std::time::Duration;

use minik8s_storage::{Error as StoreError, Revision, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

/// The store key of the controllers' lease.
pub const LEASE_KEY: &str = "/registry/minik8s/leases/controllers";

/// How leadership is held.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// How long a silent holder keeps the lease (Kubernetes: 15 s).
    pub duration: Duration,
    /// A holder that could not renew for this long stops leading (Kubernetes: 10 s).
    pub renew_deadline: Duration,
    /// How often the holder renews and the others look (Kubernetes: 2 s).
    pub retry: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct Record {
    holder_identity: String,
    lease_duration_seconds: u64,
    /// Bumped at every renewal, so that a renewal always changes the record.
    renewals: u64,
    lease_transitions: u64,
}

/// One candidate's view of the lease.
struct Elector {
    store: Arc<dyn Store>,
    identity: String,
    config: LeaseConfig,
    /// The record's revision when last seen, and when (by this clock) it was first seen
    /// at that revision.
    observed: Option<(Revision, Instant)>,
    /// When this candidate last renewed successfully as holder.
    renewed: Option<Instant>,
}

impl Elector {
    /// One look at the lease: take it, renew it, or note who holds it. True if this
    /// candidate holds it now.
    async fn try_acquire_or_renew(&mut self, now: Instant) -> Result<bool, StoreError> {
        let mine = |renewals, lease_transitions| Record {
            holder_identity: self.identity.clone(),
            lease_duration_seconds: self.config.duration.as_secs().max(1),
            renewals,
            lease_transitions,
        };
        let Some(current) = self.store.get(LEASE_KEY).await? else {
            let revision = self.store.create(LEASE_KEY, encode(&mine(0, 0))).await?;
            self.observed = Some((revision, now));
            return Ok(true);
        };
        if self.observed.map(|(r, _)| r) != Some(current.mod_revision) {
            self.observed = Some((current.mod_revision, now));
        }
        let record: Option<Record> = serde_json::from_slice(&current.value).ok();
        let next = match &record {
            Some(r) if r.holder_identity == self.identity => {
                mine(r.renewals + 1, r.lease_transitions)
            }
            Some(r) => {
                let duration = Duration::from_secs(r.lease_duration_seconds);
                let (_, since) = self.observed.expect("set above");
                if now < since + duration {
                    return Ok(false);
                }
                mine(0, r.lease_transitions + 1)
            }
            // An unreadable record is taken over like an expired one.
            None => mine(0, 0),
        };
        let revision = self
            .store
            .update(LEASE_KEY, encode(&next), current.mod_revision)
            .await?;
        self.observed = Some((revision, now));
        Ok(true)
    }

    /// Gives the lease up if this candidate holds it.
    async fn release(&mut self) {
        let Ok(Some(current)) = self.store.get(LEASE_KEY).await else {
            return;
        };
        let held = serde_json::from_slice::<Record>(&current.value)
            .is_ok_and(|r| r.holder_identity == self.identity);
        if held {
            let _ = self
                .store
                .delete(LEASE_KEY, Some(current.mod_revision))
                .await;
        }
    }
}

fn encode(record: &Record) -> Vec<u8> {
    serde_json::to_vec(record).expect("a lease record serializes")
}

/// A name for the API server serving on `addr`: the host name and the address. It stays
/// the same across restarts, so a restarted server takes its own lease back at once
/// instead of waiting for it to expire.
pub fn identity(addr: std::net::SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "apiserver".into());
    format!("{host}_{addr}")
}

/// Competes for the lease until `stop` turns true, and says in the returned receiver
/// whether this API server leads. Gives the lease up when stopped; the task ends then.
pub fn spawn(
    store: Arc<dyn Store>,
    identity: String,
    config: LeaseConfig,
    mut stop: watch::Receiver<bool>,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (leading, receiver) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut elector = Elector {
            store,
            identity,
            config: config.clone(),
            observed: None,
            renewed: None,
        };
        let mut ticker = tokio::time::interval(config.retry);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => break,
            }
            let now = Instant::now();
            let attempt =
                tokio::time::timeout(config.retry, elector.try_acquire_or_renew(now)).await;
            match attempt {
                Ok(Ok(true)) => elector.renewed = Some(now),
                Ok(Ok(false)) => elector.renewed = None,
                Ok(Err(e)) => tracing::debug!(error = %e, "leader election"),
                Err(_) => tracing::debug!("leader election: the store did not answer in time"),
            }
            let lead = elector
                .renewed
                .is_some_and(|at| now.duration_since(at) < config.renew_deadline);
            if lead != *leading.borrow() {
                tracing::info!(identity = %elector.identity, leading = lead, "controllers' lease");
                leading.send_replace(lead);
            }
        }
        leading.send_replace(false);
        elector.release().await;
    });
    (receiver, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use minik8s_storage::embedded::EmbeddedStore;

    fn config() -> LeaseConfig {
        LeaseConfig {
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }

    fn elector(store: &Arc<dyn Store>, name: &str) -> Elector {
        Elector {
            store: store.clone(),
            identity: name.into(),
            config: config(),
            observed: None,
            renewed: None,
        }
    }

    #[tokio::test]
    async fn one_holder_and_a_takeover_only_after_a_silent_lease_duration() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(&dir.path().join("s.redb")).unwrap());
        let mut a = elector(&store, "a");
        let mut b = elector(&store, "b");
        let t0 = Instant::now();
        assert!(a.try_acquire_or_renew(t0).await.unwrap());
        assert!(!b.try_acquire_or_renew(t0).await.unwrap());
        // a renews: b's clock starts again each time it sees a change.
        let t1 = t0 + Duration::from_secs(10);
        assert!(a.try_acquire_or_renew(t1).await.unwrap());
        assert!(!b.try_acquire_or_renew(t1).await.unwrap());
        assert!(
            !b.try_acquire_or_renew(t1 + Duration::from_secs(14))
                .await
                .unwrap()
        );
        // a falls silent: 15 s after b saw the last renewal, b takes over.
        assert!(
            b.try_acquire_or_renew(t1 + Duration::from_secs(15))
                .await
                .unwrap()
        );
        // a is out; its renewal attempt finds b's fresh record.
        assert!(
            !a.try_acquire_or_renew(t1 + Duration::from_secs(16))
                .await
                .unwrap()
        );
        let record: Record =
            serde_json::from_slice(&store.get(LEASE_KEY).await.unwrap().unwrap().value).unwrap();
        assert_eq!(record.holder_identity, "b");
        assert_eq!(record.lease_transitions, 1);
        // A clean stop gives the lease up: a gets it at once.
        b.release().await;
        assert!(
            a.try_acquire_or_renew(t1 + Duration::from_secs(17))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn two_candidates_racing_for_a_free_lease_get_one_holder() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(&dir.path().join("s.redb")).unwrap());
        let now = Instant::now();
        let mut electors: Vec<Elector> = (0..8).map(|i| elector(&store, &i.to_string())).collect();
        let results =
            futures::future::join_all(electors.iter_mut().map(|e| e.try_acquire_or_renew(now)))
                .await;
        let holders = results.iter().filter(|r| matches!(r, Ok(true))).count();
        assert_eq!(holders, 1, "{results:?}");
    }
}
