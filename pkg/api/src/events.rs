//! Naming events as Kubernetes does: `<object name>.<Unix nanoseconds in hex>`, so that
//! listing events by name — which is how lists are ordered — lists them in the order they
//! happened, whichever component recorded them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The last suffix handed out in this process: a burst within one clock tick, or a clock
/// that steps back, still gets increasing, distinct names.
static LAST: AtomicU64 = AtomicU64::new(0);

/// The name of a new event about the object named `object`, recorded now.
pub fn event_name(object: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let prev = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(0);
    format!("{object}.{:x}", now.max(prev + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_the_order_they_were_made() {
        let names: Vec<String> = (0..1000).map(|_| event_name("web")).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, names, "distinct and already in name order");
        let suffix = names[0].strip_prefix("web.").unwrap();
        // Nanoseconds since 1970 take 16 hex digits until the year 2262: name order is
        // numeric order.
        assert_eq!(suffix.len(), 16, "{suffix}");
        assert!(u64::from_str_radix(suffix, 16).is_ok());
    }
}
