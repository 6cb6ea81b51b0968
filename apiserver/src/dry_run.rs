//! `dryRun=All`: a [`Store`] that answers every write as the real store would and writes
//! nothing, as Kubernetes' `DryRunnableStorage`. A registry over it runs a request through
//! validation, defaulting, name generation and service allocation, and leaves no object,
//! no allocation, no new revision and no watch event behind.

use std::sync::Arc;

use minik8s_storage::{
    Error, KeyValue, ListOptions, ListResult, Result, Revision, Store, WatchStream,
};

use crate::error::ApiError;

/// The one value `dryRun` may take.
pub const DRY_RUN_ALL: &str = "All";

/// Checks the `dryRun` values of a request; `kind` names its options (`CreateOptions`,
/// `UpdateOptions`, `PatchOptions`, `DeleteOptions`) in Kubernetes' message. Returns
/// whether the request is a dry run.
pub fn requested(kind: &str, values: &[String]) -> crate::Result<bool> {
    let values: Vec<&String> = values.iter().filter(|v| !v.is_empty()).collect();
    if values.iter().any(|v| v.as_str() != DRY_RUN_ALL) {
        let shown: Vec<String> = values
            .iter()
            .map(|v| minik8s_api::gojson::string(v))
            .collect();
        return Err(ApiError::Unprocessable(format!(
            "{kind}.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{{{}}}: supported values: \"{DRY_RUN_ALL}\"",
            shown.join(", ")
        )));
    }
    Ok(!values.is_empty())
}

/// Reads from the real store; writes check what the real store would check and return
/// what it would return, changing nothing.
pub struct DryRunStore {
    inner: Arc<dyn Store>,
}

impl DryRunStore {
    pub fn new(inner: Arc<dyn Store>) -> DryRunStore {
        DryRunStore { inner }
    }

    async fn existing(&self, key: &str) -> Result<KeyValue> {
        self.inner.get(key).await?.ok_or_else(|| Error::NotFound {
            key: key.to_string(),
        })
    }
}

#[async_trait::async_trait]
impl Store for DryRunStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.inner.get(key).await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        self.inner.list(prefix, opts).await
    }

    /// The current revision: nothing was written, so no newer one exists.
    async fn create(&self, key: &str, _value: Vec<u8>) -> Result<Revision> {
        if self.inner.get(key).await?.is_some() {
            return Err(Error::AlreadyExists {
                key: key.to_string(),
            });
        }
        self.inner.current_revision().await
    }

    /// The object keeps the revision it has.
    async fn update(&self, key: &str, _value: Vec<u8>, expected: Revision) -> Result<Revision> {
        let kv = self.existing(key).await?;
        if kv.mod_revision != expected {
            return Err(Error::Conflict {
                key: key.to_string(),
                expected,
                actual: kv.mod_revision,
            });
        }
        Ok(expected)
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        let kv = self.existing(key).await?;
        if let Some(expected) = expected
            && kv.mod_revision != expected
        {
            return Err(Error::Conflict {
                key: key.to_string(),
                expected,
                actual: kv.mod_revision,
            });
        }
        Ok(kv)
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.inner.watch(prefix, after).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    async fn compact(&self, _revision: Revision) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_all_is_a_dry_run_value() {
        assert!(!requested("CreateOptions", &[]).unwrap());
        assert!(!requested("CreateOptions", &[String::new()]).unwrap());
        assert!(requested("CreateOptions", &["All".to_string()]).unwrap());
        let err = requested("DeleteOptions", &["Some".to_string()]).unwrap_err();
        assert_eq!(
            err.status_code(),
            axum::http::StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            err.to_string(),
            "DeleteOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Some\"}: supported values: \"All\""
        );
    }
}
