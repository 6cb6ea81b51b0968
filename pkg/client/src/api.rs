//! Resource APIs: [`DynamicApi`] works on JSON values for any resource in the table of
//! `minik8s_api::resource` (what kubectl needs); [`Api<K>`] is the typed view for
//! k8s-openapi kinds, built on the same requests with the types decoded directly.

use std::marker::PhantomData;

use bytes::Bytes;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, Status};
use k8s_openapi::{NamespaceResourceScope, Resource};
use minik8s_api::WatchEvent;
use minik8s_api::resource::{self, ResourceInfo};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::client::{Client, JSON};
use crate::error::{Error, Result};
use crate::params::{DeleteParams, ListParams, LogParams, Patch, PostParams, encode_path_segment};

/// One page of a list: the items and the list's `resourceVersion` and `continue` token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "K: Deserialize<'de>", serialize = "K: Serialize"))]
pub struct ObjectList<K> {
    #[serde(default)]
    pub metadata: ListMeta,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub items: Vec<K>,
}

fn null_as_empty<'de, D, K>(deserializer: D) -> std::result::Result<Vec<K>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de>,
{
    Ok(Option::<Vec<K>>::deserialize(deserializer)?.unwrap_or_default())
}

impl<K> Default for ObjectList<K> {
    fn default() -> Self {
        ObjectList {
            metadata: ListMeta::default(),
            items: Vec::new(),
        }
    }
}

impl<K> ObjectList<K> {
    pub fn resource_version(&self) -> Option<&str> {
        self.metadata
            .resource_version
            .as_deref()
            .filter(|s| !s.is_empty())
    }

    /// The token for the next page; `None` on the last page.
    pub fn continue_token(&self) -> Option<&str> {
        self.metadata.continue_.as_deref().filter(|s| !s.is_empty())
    }

    pub fn iter(&self) -> std::slice::Iter<'_, K> {
        self.items.iter()
    }
}

impl<K> IntoIterator for ObjectList<K> {
    type Item = K;
    type IntoIter = std::vec::IntoIter<K>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// What a delete answers: the object itself while it is being deleted gracefully (a pod
/// with `deletionTimestamp` set), or a `Status` when it is gone at once.
#[derive(Clone, Debug, PartialEq)]
pub enum Deleted<K> {
    Object(K),
    Status(Box<Status>),
}

impl<K> Deleted<K> {
    pub fn object(self) -> Option<K> {
        match self {
            Deleted::Object(o) => Some(o),
            Deleted::Status(_) => None,
        }
    }

    /// True if the object is already gone.
    pub fn is_gone(&self) -> bool {
        matches!(self, Deleted::Status(_))
    }
}

/// Requests on one resource, on JSON values.
#[derive(Clone, Debug)]
pub struct DynamicApi {
    client: Client,
    resource: ResourceInfo,
    /// `None`: all namespaces for lists and watches, and for single objects the object's
    /// own namespace or else the client's default.
    namespace: Option<String>,
}

fn decode<T: DeserializeOwned>(value: Value, context: &str) -> Result<T> {
    serde_json::from_value(value).map_err(|source| Error::Decode {
        context: context.to_string(),
        source,
    })
}

fn to_value<T: Serialize>(object: &T) -> Result<Value> {
    serde_json::to_value(object).map_err(|source| Error::Decode {
        context: "encoding the request body".into(),
        source,
    })
}

impl DynamicApi {
    pub fn new(
        client: Client,
        resource: &'static ResourceInfo,
        namespace: Option<String>,
    ) -> DynamicApi {
        DynamicApi::for_resource(client, *resource, namespace)
    }

    fn for_resource(client: Client, resource: ResourceInfo, namespace: Option<String>) -> Self {
        // A cluster-scoped resource ignores any namespace it is given.
        let namespace = namespace.filter(|ns| resource.namespaced && !ns.is_empty());
        DynamicApi {
            client,
            resource,
            namespace,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn resource(&self) -> &ResourceInfo {
        &self.resource
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The collection path: in the namespace, or across all of them.
    pub fn collection_path(&self) -> String {
        let ns = self.namespace.as_deref().map(encode_path_segment);
        self.resource.collection_path(ns.as_deref())
    }

    /// The path of one object, in this API's namespace or else the client's default.
    pub fn object_path(&self, name: &str) -> String {
        self.object_path_in(None, name)
    }

    /// `object`'s namespace decides where a namespace-less API sends it.
    fn object_path_in(&self, object: Option<&Value>, name: &str) -> String {
        let ns = self
            .namespace_for(object)
            .map(|ns| encode_path_segment(&ns));
        self.resource
            .object_path(ns.as_deref(), &encode_path_segment(name))
    }

    fn collection_path_for(&self, object: &Value) -> String {
        let ns = self
            .namespace_for(Some(object))
            .map(|ns| encode_path_segment(&ns));
        self.resource.collection_path(ns.as_deref())
    }

    fn namespace_for(&self, object: Option<&Value>) -> Option<String> {
        if !self.resource.namespaced {
            return None;
        }
        if let Some(ns) = &self.namespace {
            return Some(ns.clone());
        }
        let from_object = object
            .and_then(|o| o.pointer("/metadata/namespace"))
            .and_then(Value::as_str)
            .filter(|ns| !ns.is_empty());
        Some(
            from_object
                .unwrap_or(self.client.default_namespace())
                .to_string(),
        )
    }

    async fn get_as<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        self.client
            .request_json(Method::GET, &self.object_path(name), None, None)
            .await
    }

    async fn get_opt_as<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        match self.get_as(name).await {
            Ok(object) => Ok(Some(object)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_as<T: DeserializeOwned>(&self, params: &ListParams) -> Result<ObjectList<T>> {
        let path = params.list_query().append_to(&self.collection_path());
        self.client
            .request_json(Method::GET, &path, None, None)
            .await
    }

    async fn list_all_as<T: DeserializeOwned>(&self, params: &ListParams) -> Result<ObjectList<T>> {
        let mut page = self.list_as::<T>(params).await?;
        let mut all = std::mem::take(&mut page.items);
        while let Some(token) = page.continue_token().map(str::to_string) {
            let next = ListParams {
                continue_token: Some(token),
                ..params.clone()
            };
            page = self.list_as(&next).await?;
            all.append(&mut page.items);
        }
        page.items = all;
        page.metadata.continue_ = None;
        Ok(page)
    }

    async fn create_as<T: DeserializeOwned>(
        &self,
        object: Value,
        params: &PostParams,
    ) -> Result<T> {
        let path = params.query().append_to(&self.collection_path_for(&object));
        self.client
            .request_json(Method::POST, &path, Some(object), Some(JSON))
            .await
    }

    async fn replace_as<T: DeserializeOwned>(
        &self,
        name: &str,
        subresource: Option<&str>,
        object: Value,
        params: &PostParams,
    ) -> Result<T> {
        let mut path = self.object_path_in(Some(&object), name);
        if let Some(sub) = subresource {
            path = format!("{path}/{sub}");
        }
        let path = params.query().append_to(&path);
        self.client
            .request_json(Method::PUT, &path, Some(object), Some(JSON))
            .await
    }

    async fn patch_as<T: DeserializeOwned>(
        &self,
        name: &str,
        subresource: Option<&str>,
        patch: &Patch,
        params: &PostParams,
    ) -> Result<T> {
        let mut path = self.object_path(name);
        if let Some(sub) = subresource {
            path = format!("{path}/{sub}");
        }
        let path = params.query().append_to(&path);
        self.client
            .request_json(
                Method::PATCH,
                &path,
                Some(patch.body().clone()),
                Some(patch.content_type()),
            )
            .await
    }

    async fn delete_as<T: DeserializeOwned>(
        &self,
        name: &str,
        params: &DeleteParams,
    ) -> Result<Deleted<T>> {
        let path = params.query().append_to(&self.object_path(name));
        let body: Value = self
            .client
            .request_json(Method::DELETE, &path, params.body(), Some(JSON))
            .await?;
        let context = format!("DELETE {path}");
        if body.get("kind").and_then(Value::as_str) == Some("Status") {
            Ok(Deleted::Status(Box::new(decode(body, &context)?)))
        } else {
            Ok(Deleted::Object(decode(body, &context)?))
        }
    }

    async fn watch_as<T: DeserializeOwned + Send + 'static>(
        &self,
        params: &ListParams,
        resource_version: &str,
    ) -> Result<BoxStream<'static, Result<WatchEvent<T>>>> {
        let path = params
            .watch_query(resource_version)
            .append_to(&self.collection_path());
        self.client.watch_stream(&path).await
    }

    /// A watch whose events carry one-row `Table`s (the server's columns) instead of the
    /// objects: each row is printed when its change happens, so an object deleted right
    /// after it was made still has the row of its creation.
    pub async fn watch_table(
        &self,
        params: &ListParams,
        resource_version: &str,
    ) -> Result<BoxStream<'static, Result<WatchEvent<Value>>>> {
        let path = params
            .watch_query(resource_version)
            .append_to(&self.collection_path());
        self.client
            .watch_stream_accepting(&path, crate::client::ACCEPT_TABLE)
            .await
    }

    pub async fn get(&self, name: &str) -> Result<Value> {
        self.get_as(name).await
    }

    /// `None` when the object does not exist.
    pub async fn get_opt(&self, name: &str) -> Result<Option<Value>> {
        self.get_opt_as(name).await
    }

    pub async fn list(&self, params: &ListParams) -> Result<ObjectList<Value>> {
        self.list_as(params).await
    }

    /// Every page, following `continue` tokens; the result has the last page's metadata.
    pub async fn list_all(&self, params: &ListParams) -> Result<ObjectList<Value>> {
        self.list_all_as(params).await
    }

    pub async fn create(&self, object: &Value) -> Result<Value> {
        self.create_as(object.clone(), &PostParams::default()).await
    }

    pub async fn create_with(&self, object: &Value, params: &PostParams) -> Result<Value> {
        self.create_as(object.clone(), params).await
    }

    pub async fn replace(&self, name: &str, object: &Value) -> Result<Value> {
        self.replace_as(name, None, object.clone(), &PostParams::default())
            .await
    }

    pub async fn replace_with(
        &self,
        name: &str,
        object: &Value,
        params: &PostParams,
    ) -> Result<Value> {
        self.replace_as(name, None, object.clone(), params).await
    }

    pub async fn replace_status(&self, name: &str, object: &Value) -> Result<Value> {
        self.replace_as(name, Some("status"), object.clone(), &PostParams::default())
            .await
    }

    pub async fn patch(&self, name: &str, patch: &Patch) -> Result<Value> {
        self.patch_as(name, None, patch, &PostParams::default())
            .await
    }

    pub async fn patch_with(
        &self,
        name: &str,
        patch: &Patch,
        params: &PostParams,
    ) -> Result<Value> {
        self.patch_as(name, None, patch, params).await
    }

    pub async fn patch_status(&self, name: &str, patch: &Patch) -> Result<Value> {
        self.patch_as(name, Some("status"), patch, &PostParams::default())
            .await
    }

    pub async fn delete(&self, name: &str, params: &DeleteParams) -> Result<Deleted<Value>> {
        self.delete_as(name, params).await
    }

    /// Watches the collection from `resource_version` (empty: from now). The stream ends
    /// when the server closes the watch; an `ERROR` event is an item like any other.
    pub async fn watch(
        &self,
        params: &ListParams,
        resource_version: &str,
    ) -> Result<BoxStream<'static, Result<WatchEvent<Value>>>> {
        self.watch_as(params, resource_version).await
    }

    /// A pod's log (`pods/{name}/log`), whole.
    pub async fn logs(&self, name: &str, params: &LogParams) -> Result<String> {
        let path = format!("{}/log", self.object_path(name));
        self.client
            .request_text(Method::GET, &params.query().append_to(&path), None, None)
            .await
    }

    /// A pod's log as it is written, for `follow`.
    pub async fn log_stream(
        &self,
        name: &str,
        params: &LogParams,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        let path = format!("{}/log", self.object_path(name));
        self.client
            .request_stream(&params.query().append_to(&path))
            .await
    }
}

/// Requests on one kind, typed. `K` is a k8s-openapi kind (or one of ours implementing
/// `k8s_openapi::Resource`).
pub struct Api<K> {
    dynamic: DynamicApi,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Api<K> {
    fn clone(&self) -> Self {
        Api {
            dynamic: self.dynamic.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Api<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("kind", &self.dynamic.resource.kind)
            .field("namespace", &self.dynamic.namespace)
            .finish()
    }
}

/// The table entry of `K`, or one made from its k8s-openapi constants for kinds the
/// table does not list.
#[allow(clippy::needless_update)]
fn resource_info<K: Resource>(namespaced: bool) -> ResourceInfo {
    match resource::for_kind(K::API_VERSION, K::KIND) {
        Some(info) => *info,
        None => ResourceInfo {
            group: K::GROUP,
            version: K::VERSION,
            kind: K::KIND,
            plural: K::URL_PATH_SEGMENT,
            singular: K::URL_PATH_SEGMENT,
            short_names: &[],
            namespaced,
            has_status: true,
            // Fields the table may gain later come from a known entry.
            ..resource::PODS
        },
    }
}

impl<K: Resource> Api<K> {
    /// Cluster-scoped kinds, or a namespaced kind across all namespaces (list, watch).
    pub fn all(client: Client) -> Api<K> {
        Api {
            dynamic: DynamicApi::for_resource(client, resource_info::<K>(false), None),
            kind: PhantomData,
        }
    }

    pub fn namespaced(client: Client, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
    {
        Api {
            dynamic: DynamicApi::for_resource(
                client,
                resource_info::<K>(true),
                Some(namespace.to_string()),
            ),
            kind: PhantomData,
        }
    }

    /// In the namespace of the client's configuration.
    pub fn default_namespaced(client: Client) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
    {
        let namespace = client.default_namespace().to_string();
        Api::namespaced(client, &namespace)
    }

    /// The same API on JSON values.
    pub fn dynamic(&self) -> &DynamicApi {
        &self.dynamic
    }

    pub fn namespace(&self) -> Option<&str> {
        self.dynamic.namespace()
    }
}

impl<K> Api<K>
where
    K: Resource + Serialize + DeserializeOwned + Send + 'static,
{
    pub async fn get(&self, name: &str) -> Result<K> {
        self.dynamic.get_as(name).await
    }

    pub async fn get_opt(&self, name: &str) -> Result<Option<K>> {
        self.dynamic.get_opt_as(name).await
    }

    pub async fn list(&self, params: &ListParams) -> Result<ObjectList<K>> {
        self.dynamic.list_as(params).await
    }

    pub async fn list_all(&self, params: &ListParams) -> Result<ObjectList<K>> {
        self.dynamic.list_all_as(params).await
    }

    pub async fn create(&self, object: &K) -> Result<K> {
        self.create_with(object, &PostParams::default()).await
    }

    pub async fn create_with(&self, object: &K, params: &PostParams) -> Result<K> {
        self.dynamic.create_as(to_value(object)?, params).await
    }

    pub async fn replace(&self, name: &str, object: &K) -> Result<K> {
        self.replace_with(name, object, &PostParams::default())
            .await
    }

    pub async fn replace_with(&self, name: &str, object: &K, params: &PostParams) -> Result<K> {
        self.dynamic
            .replace_as(name, None, to_value(object)?, params)
            .await
    }

    pub async fn replace_status(&self, name: &str, object: &K) -> Result<K> {
        self.dynamic
            .replace_as(
                name,
                Some("status"),
                to_value(object)?,
                &PostParams::default(),
            )
            .await
    }

    pub async fn patch(&self, name: &str, patch: &Patch) -> Result<K> {
        self.dynamic
            .patch_as(name, None, patch, &PostParams::default())
            .await
    }

    pub async fn patch_with(&self, name: &str, patch: &Patch, params: &PostParams) -> Result<K> {
        self.dynamic.patch_as(name, None, patch, params).await
    }

    pub async fn patch_status(&self, name: &str, patch: &Patch) -> Result<K> {
        self.dynamic
            .patch_as(name, Some("status"), patch, &PostParams::default())
            .await
    }

    pub async fn delete(&self, name: &str, params: &DeleteParams) -> Result<Deleted<K>> {
        self.dynamic.delete_as(name, params).await
    }

    pub async fn watch(
        &self,
        params: &ListParams,
        resource_version: &str,
    ) -> Result<BoxStream<'static, Result<WatchEvent<K>>>> {
        self.dynamic.watch_as(params, resource_version).await
    }
}

impl Api<Pod> {
    pub async fn logs(&self, name: &str, params: &LogParams) -> Result<String> {
        self.dynamic.logs(name, params).await
    }

    pub async fn log_stream(
        &self,
        name: &str,
        params: &LogParams,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        self.dynamic.log_stream(name, params).await
    }
}

#[cfg(test)]
mod tests;
