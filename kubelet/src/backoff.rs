//! Kubernetes' restart back-off, keyed by container: the first restart is at once, then
//! each one waits twice as long as the one before (10 s, 20 s, ... up to 5 min), counted
//! from when the container last stopped. A container that ran for longer than twice the
//! maximum since the last restart starts over at the beginning.
//!
//! This is the logic of Kubernetes' `flowcontrol.Backoff` as the kubelet uses it
//! (`IsInBackOffSince` / `Next`), on wall-clock times so that a container's own
//! `finishedAt` can be the event time.

use std::collections::HashMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

#[derive(Clone, Debug)]
struct Entry {
    backoff: Duration,
    last_update: Timestamp,
}

#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

fn since(later: Timestamp, earlier: Timestamp) -> SignedDuration {
    later.duration_since(earlier)
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            entries: HashMap::new(),
        }
    }

    /// True when the entry is older than the event by more than twice the maximum: the
    /// thing ran well for long enough that its history no longer counts.
    fn expired(&self, event_time: Timestamp, entry: &Entry) -> bool {
        let limit = SignedDuration::try_from(self.max * 2).unwrap_or(SignedDuration::MAX);
        since(event_time, entry.last_update) > limit
    }

    /// How much longer to wait before acting on an event (a container stopping) at
    /// `event_time`; `None` when not in back-off.
    pub fn remaining(&self, key: &str, event_time: Timestamp, now: Timestamp) -> Option<Duration> {
        let entry = self.entries.get(key)?;
        if self.expired(event_time, entry) {
            return None;
        }
        let elapsed = since(now, event_time);
        let backoff = SignedDuration::try_from(entry.backoff).unwrap_or(SignedDuration::MAX);
        if elapsed < backoff {
            Duration::try_from(backoff - elapsed.max(SignedDuration::ZERO)).ok()
        } else {
            None
        }
    }

    /// Records that the thing is being retried now, after an event at `event_time`, and
    /// lengthens the next wait.
    pub fn next(&mut self, key: &str, event_time: Timestamp, now: Timestamp) {
        let fresh = match self.entries.get(key) {
            None => true,
            Some(entry) => self.expired(event_time, entry),
        };
        let backoff = if fresh {
            self.base
        } else {
            (self.entries[key].backoff * 2).min(self.max)
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                backoff,
                last_update: now,
            },
        );
    }

    /// The current wait for `key` (the base when there is none).
    pub fn current(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(self.base, |e| e.backoff)
    }

    pub fn forget(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

/// `10s`, `1m20s`, `5m0s`: Go's duration format, which Kubernetes' messages use.
pub fn go_duration(d: Duration) -> String {
    let total = d.as_secs();
    let millis = d.subsec_millis();
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    let seconds = if millis == 0 {
        format!("{s}s")
    } else {
        let fraction = format!("{millis:03}");
        format!("{s}.{}s", fraction.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) if total == 0 && millis > 0 => format!("{millis}ms"),
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn first_restart_is_immediate_then_doubles_to_the_maximum() {
        let mut b = Backoff::new(10 * S, 300 * S);
        // First exit: no history, restart now.
        assert_eq!(b.remaining("c", t(0), t(0)), None);
        b.next("c", t(0), t(0));
        // The restarted container exits a second later: wait 10 s from its exit.
        assert_eq!(b.remaining("c", t(1), t(1)), Some(10 * S));
        assert_eq!(b.remaining("c", t(1), t(8)), Some(3 * S));
        assert_eq!(b.remaining("c", t(1), t(11)), None);
        b.next("c", t(1), t(11));
        assert_eq!(b.current("c"), 20 * S);
        assert_eq!(b.remaining("c", t(12), t(12)), Some(20 * S));
        let mut now = 12;
        let mut waits = vec![];
        for _ in 0..8 {
            now += b.current("c").as_secs() as i64;
            b.next("c", t(now), t(now));
            waits.push(b.current("c").as_secs());
        }
        assert_eq!(waits, [40, 80, 160, 300, 300, 300, 300, 300]);
    }

    #[test]
    fn a_long_good_run_resets_the_back_off() {
        let mut b = Backoff::new(10 * S, 300 * S);
        for i in 0..6 {
            b.next("c", t(i), t(i));
        }
        assert_eq!(b.current("c"), 300 * S);
        // Exits just under ten minutes after the last restart: still in back-off.
        assert!(b.remaining("c", t(5 + 599), t(5 + 599)).is_some());
        // Exits more than ten minutes after: restart at once, and the next wait is 10 s.
        assert_eq!(b.remaining("c", t(5 + 601), t(5 + 601)), None);
        b.next("c", t(5 + 601), t(5 + 601));
        assert_eq!(b.current("c"), 10 * S);
    }

    #[test]
    fn keys_are_independent() {
        let mut b = Backoff::new(S, 10 * S);
        b.next("a", t(0), t(0));
        assert!(b.remaining("a", t(0), t(0)).is_some());
        assert_eq!(b.remaining("b", t(0), t(0)), None);
        b.forget("a");
        assert_eq!(b.remaining("a", t(0), t(0)), None);
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(10 * S), "10s");
        assert_eq!(go_duration(80 * S), "1m20s");
        assert_eq!(go_duration(300 * S), "5m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(200)), "200ms");
    }
}
