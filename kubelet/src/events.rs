//! Kubernetes events about pods (`Pulled`, `Started`, `BackOff`, ...), sent in the
//! background so that a slow or absent API server never holds up a pod. A repeat of the
//! same event bumps the stored one's `count`, as Kubernetes' recorder does.

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use minik8s_client::{Api, Client, Patch};
use serde_json::json;
use tokio::sync::mpsc;

use crate::pod::status::time;

pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

/// Sends events for one node's kubelet. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Recorder {
    node: String,
    tx: mpsc::UnboundedSender<Event>,
}

/// The object an event is about: a pod, or one container of it.
pub fn pod_reference(pod: &Pod, field_path: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: None,
        field_path,
    }
}

impl Recorder {
    /// A recorder and the task that delivers its events; the task ends when every
    /// recorder is dropped.
    pub fn start(client: Client, node: &str) -> (Recorder, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(deliver(client, rx));
        (
            Recorder {
                node: node.to_string(),
                tx,
            },
            task,
        )
    }

    /// A recorder that drops everything (tests).
    pub fn discard(node: &str) -> Recorder {
        let (tx, _) = mpsc::unbounded_channel();
        Recorder {
            node: node.to_string(),
            tx,
        }
    }

    pub fn event(&self, object: ObjectReference, kind: &str, reason: &str, message: &str) {
        let now = time(Timestamp::now());
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        let name = minik8s_api::events::event_name(object.name.as_deref().unwrap_or_default());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            involved_object: object,
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(kind.into()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            ..Event::default()
        };
        tracing::debug!(reason, message, "event");
        let _ = self.tx.send(event);
    }
}

/// What makes two events "the same" for counting.
fn key(
    e: &Event,
) -> (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    (
        e.involved_object.uid.clone(),
        e.involved_object.field_path.clone(),
        e.reason.clone(),
        e.message.clone(),
    )
}

type Key = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

async fn deliver(client: Client, mut rx: mpsc::UnboundedReceiver<Event>) {
    // Stored events by key: name, namespace and count so far.
    let mut seen: HashMap<Key, (String, String, i32)> = HashMap::new();
    while let Some(event) = rx.recv().await {
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        let k = key(&event);
        if let Some((name, ns, count)) = seen.get(&k).cloned() {
            let patch = Patch::Merge(json!({
                "count": count + 1,
                "lastTimestamp": event.last_timestamp,
            }));
            let api: Api<Event> = Api::namespaced(client.clone(), &ns);
            match api.patch(&name, &patch).await {
                Ok(_) => {
                    seen.insert(k, (name, ns, count + 1));
                    continue;
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    tracing::debug!(error = %e, "updating an event");
                    continue;
                }
            }
        }
        match api.create(&event).await {
            Ok(created) => {
                if seen.len() > 4096 {
                    seen.clear();
                }
                let name = created.metadata.name.unwrap_or_default();
                seen.insert(k, (name, namespace, 1));
            }
            // Events are best effort: a namespace being deleted, an unreachable server.
            Err(e) => tracing::debug!(error = %e, "recording an event"),
        }
    }
}
