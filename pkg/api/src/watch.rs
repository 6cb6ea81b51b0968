//! The watch event envelope, shared by the server that writes it and the clients that read
//! it: `{"type":"ADDED","object":{...}}`, one JSON document per line.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "object", rename_all = "UPPERCASE")]
// Events are built once and moved, not stored in bulk: a boxed Status buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum WatchEvent<K> {
    Added(K),
    Modified(K),
    Deleted(K),
    /// Only `metadata.resourceVersion` (and kind/apiVersion) of the object is meaningful.
    Bookmark(K),
    /// The watch ended with an error, for example `410 Expired`.
    Error(Status),
}

impl<K> WatchEvent<K> {
    /// The event's object, for the variants that carry one.
    pub fn object(&self) -> Option<&K> {
        match self {
            WatchEvent::Added(o)
            | WatchEvent::Modified(o)
            | WatchEvent::Deleted(o)
            | WatchEvent::Bookmark(o) => Some(o),
            WatchEvent::Error(_) => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Bookmark(_) => "BOOKMARK",
            WatchEvent::Error(_) => "ERROR",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_format_matches_kubernetes() {
        let ev: WatchEvent<serde_json::Value> = WatchEvent::Added(json!({"kind": "Pod"}));
        assert_eq!(
            serde_json::to_value(&ev).unwrap(),
            json!({"type": "ADDED", "object": {"kind": "Pod"}})
        );
        let parsed: WatchEvent<serde_json::Value> = serde_json::from_value(json!({
            "type": "ERROR",
            "object": {"kind": "Status", "apiVersion": "v1", "code": 410, "reason": "Expired"}
        }))
        .unwrap();
        match parsed {
            WatchEvent::Error(s) => assert_eq!(s.code, Some(410)),
            other => panic!("unexpected {other:?}"),
        }
    }
}
