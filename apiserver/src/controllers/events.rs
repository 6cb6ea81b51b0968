//! Recording Kubernetes events about objects.

use minik8s_api::resource::EVENTS;
use serde_json::{Value, json};

use crate::object;
use crate::registry::{FieldValidation, Registry};

/// Records an event about `obj` (of `kind`) from `component`; failures are only logged:
/// an event is never worth failing the action it describes.
pub async fn record(
    registry: &Registry,
    obj: &Value,
    kind: &str,
    event_type: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let now = object::now_rfc3339();
    let ns = match object::namespace(obj) {
        "" => "default",
        ns => ns,
    };
    let name = minik8s_api::events::event_name(object::name(obj));
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion").and_then(Value::as_str).unwrap_or("v1"),
            "kind": kind,
            "name": object::name(obj),
            "namespace": object::namespace(obj),
            "uid": object::meta_str(obj, "uid").unwrap_or(""),
            "resourceVersion": object::meta_str(obj, "resourceVersion").unwrap_or(""),
        },
        "reason": reason,
        "message": message,
        "type": event_type,
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    if let Err(e) = registry
        .create(&EVENTS, Some(ns), event, FieldValidation::Ignore)
        .await
    {
        tracing::debug!(error = %e, reason, "recording an event");
    }
}
