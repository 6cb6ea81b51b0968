//! What a pod worker asks of the API server, behind a trait so that the worker's
//! decisions can be tested without one.

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use minik8s_client::{Api, Client, DeleteParams, Patch, Preconditions};
use serde_json::{Map, Value};

use crate::Result;

#[async_trait::async_trait]
pub trait PodApi: Send + Sync + 'static {
    /// Replaces the pod's status with `status` (`old` is what the server has, so that
    /// fields that went away are cleared) and returns the updated pod.
    async fn patch_status(
        &self,
        pod: &Pod,
        old: Option<&PodStatus>,
        status: &PodStatus,
    ) -> Result<Pod>;

    /// Removes the pod object at once, if it is still this pod (same uid).
    async fn delete_pod(&self, pod: &Pod) -> Result<()>;
}

/// [`PodApi`] on the API server.
#[derive(Clone, Debug)]
pub struct ClientPodApi {
    pub client: Client,
}

fn api(client: &Client, pod: &Pod) -> Api<Pod> {
    Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    )
}

/// A merge patch that sets `status` and clears the top-level fields only `old` has.
pub fn status_patch(old: Option<&PodStatus>, status: &PodStatus) -> Value {
    let mut new = match serde_json::to_value(status) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    if let Some(Value::Object(old)) = old.and_then(|o| serde_json::to_value(o).ok()) {
        for key in old.keys() {
            new.entry(key.clone()).or_insert(Value::Null);
        }
    }
    serde_json::json!({ "status": new })
}

#[async_trait::async_trait]
impl PodApi for ClientPodApi {
    async fn patch_status(
        &self,
        pod: &Pod,
        old: Option<&PodStatus>,
        status: &PodStatus,
    ) -> Result<Pod> {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let patch = Patch::Merge(status_patch(old, status));
        Ok(api(&self.client, pod).patch_status(name, &patch).await?)
    }

    async fn delete_pod(&self, pod: &Pod) -> Result<()> {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api(&self.client, pod).delete(name, &params).await {
            Ok(_) => Ok(()),
            // Gone already, or replaced by a new pod of the same name: not ours to delete.
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_that_went_away_are_cleared() {
        let old = PodStatus {
            message: Some("evicted".into()),
            phase: Some("Running".into()),
            ..PodStatus::default()
        };
        let new = PodStatus {
            phase: Some("Running".into()),
            ..PodStatus::default()
        };
        let patch = status_patch(Some(&old), &new);
        assert_eq!(
            patch,
            serde_json::json!({"status": {"phase": "Running", "message": null}})
        );
    }
}
