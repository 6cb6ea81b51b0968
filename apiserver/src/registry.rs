//! Registry logic: plain async functions over a [`Store`] that implement Kubernetes'
//! object semantics — names and uids, resource versions, optimistic concurrency, graceful
//! deletion, selectors and paging — for every resource, with the per-resource parts in
//! [`crate::strategy`]. Nothing here knows about HTTP.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine;
use minik8s_api::resource::{self, ResourceInfo};
use minik8s_api::selector::{FieldSelector, LabelSelector};
use minik8s_storage::{KeyValue, ListOptions, Revision, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::controllers::garbage_collector;
use crate::dry_run::DryRunStore;
use crate::error::{ApiError, Result};
use crate::object;
use crate::patch::{self, PatchType};
use crate::services::{Allocations, ServiceRanges};
use crate::strategy::{self, Part, Strategy};
use crate::watch_cache::WatchCache;

/// Namespaces that exist from the start and cannot be deleted.
pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system"];

/// How many times a patch is re-applied when the object changed underneath it.
const PATCH_RETRIES: usize = 8;

pub struct Registry {
    store: Arc<dyn Store>,
    caches: HashMap<&'static str, Arc<WatchCache>>,
    /// Cluster IPs and node ports of services.
    allocations: Allocations,
}

/// How to treat fields the server does not know (`?fieldValidation=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(s: Option<&str>) -> Result<FieldValidation> {
        match s {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::BadRequest(format!(
                "fieldValidation parameter unsupported: {other}"
            ))),
        }
    }
}

/// A successful write and the warnings it produced.
pub struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
}

/// What selectors look at in an object: computed once per object (per event in the
/// watch cache), so that filtering for many watchers needs no JSON.
#[derive(Clone, Debug, Default)]
pub struct ObjectView {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub fields: Vec<(&'static str, String)>,
}

impl ObjectView {
    pub fn of(strategy: &dyn Strategy, obj: &Value) -> ObjectView {
        ObjectView {
            namespace: object::namespace(obj).to_string(),
            labels: object::labels(obj),
            fields: strategy::field_names(strategy)
                .map(|f| (f, strategy.field_value(obj, f)))
                .collect(),
        }
    }
}

/// Which objects a list or watch wants.
pub struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    strategy: &'static dyn Strategy,
}

impl Filter {
    pub fn new(
        resource: &'static ResourceInfo,
        namespace: Option<String>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Filter> {
        let strategy = strategy::for_resource(resource);
        let labels = LabelSelector::parse(label_selector.unwrap_or(""))
            .map_err(|e| ApiError::BadRequest(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(field_selector.unwrap_or(""))
            .map_err(|e| ApiError::BadRequest(format!("invalid field selector: {e}")))?;
        for f in fields.fields() {
            if !strategy::field_names(strategy).any(|known| known == f) {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {f}"
                )));
            }
        }
        Ok(Filter {
            namespace: namespace.filter(|_| resource.namespaced),
            labels,
            fields,
            strategy,
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && object::namespace(obj) != ns
        {
            return false;
        }
        self.labels.matches(&object::labels(obj))
            && self
                .fields
                .matches(&|f: &str| strategy::field(self.strategy, obj, f))
    }

    /// True when only the namespace (which the store prefix already selects) matters.
    pub fn selects_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches_view(&self, view: &ObjectView) -> bool {
        if let Some(ns) = &self.namespace
            && view.namespace != *ns
        {
            return false;
        }
        self.labels.matches(&view.labels)
            && self.fields.matches(&|f: &str| {
                view.fields
                    .iter()
                    .find(|(name, _)| *name == f)
                    .map(|(_, v)| v.clone())
            })
    }
}

/// Paging and consistency options of a list.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ContinueToken {
    rv: Revision,
    start: String,
}

fn encode_continue(rv: Revision, start: &str) -> String {
    let raw = serde_json::to_vec(&ContinueToken {
        rv,
        start: start.to_string(),
    })
    .unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> Result<ContinueToken> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or_else(|| ApiError::BadRequest("invalid continue token".to_string()))
}

/// Options of a delete (query parameters or a `DeleteOptions` body).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteParams {
    pub grace_period_seconds: Option<i64>,
    pub preconditions: Option<Preconditions>,
    pub propagation_policy: Option<String>,
    /// The deprecated form of `propagationPolicy`: `true` is `Orphan`, `false` `Background`.
    pub orphan_dependents: Option<bool>,
    /// `["All"]` for a dry run; the HTTP layer checks it and deletes through
    /// [`Registry::dry_run`].
    #[serde(default)]
    pub dry_run: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// The outcome of a delete: gone now, or marked and waiting (for a kubelet or finalizers).
pub enum Deleted {
    Gone(Value),
    Pending(Value),
}

/// The longest `generateName` kept whole; five random characters follow it.
const MAX_GENERATED_BASE: usize = 58;

pub fn key(resource: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if resource.namespaced => format!("/registry/{}/{}/{}", resource.plural, ns, name),
        _ => format!("/registry/{}/{}", resource.plural, name),
    }
}

pub fn prefix(resource: &ResourceInfo, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if resource.namespaced => format!("/registry/{}/{}/", resource.plural, ns),
        _ => format!("/registry/{}/", resource.plural),
    }
}

fn decode_kv(kv: &KeyValue) -> Result<Value> {
    let mut v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::Internal(format!("corrupt object at {}: {e}", kv.key)))?;
    object::set_resource_version(&mut v, kv.mod_revision);
    Ok(v)
}

/// The stored bytes with `metadata.resourceVersion` put in, without decoding the object:
/// objects are stored with sorted keys, so they begin with `apiVersion`, `kind` and then
/// `metadata`. Anything else is decoded and encoded again.
fn encode_kv(kv: &KeyValue) -> Result<Vec<u8>> {
    const META: &[u8] = b"\"metadata\":{";
    let v = &kv.value;
    let head = &v[..v.len().min(256)];
    let splice_at = head
        .windows(META.len())
        .position(|w| w == META)
        .map(|p| p + META.len())
        .filter(|at| {
            let before = &v[..*at];
            before.starts_with(b"{\"apiVersion\":\"")
                && before.iter().filter(|b| **b == b'{').count() == 2
                && v.get(*at).is_some_and(|b| *b != b'}')
        });
    match splice_at {
        Some(at) => {
            let rv = format!("\"resourceVersion\":\"{}\",", kv.mod_revision);
            let mut out = Vec::with_capacity(v.len() + rv.len());
            out.extend_from_slice(&v[..at]);
            out.extend_from_slice(rv.as_bytes());
            out.extend_from_slice(&v[at..]);
            Ok(out)
        }
        None => Ok(serde_json::to_vec(&decode_kv(kv)?).unwrap_or_default()),
    }
}

/// The largest object stored, as etcd's default request limit.
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;

fn to_bytes(obj: &Value) -> Result<Vec<u8>> {
    let mut stored = obj.clone();
    object::strip_for_storage(&mut stored);
    let bytes = serde_json::to_vec(&stored).unwrap_or_default();
    if bytes.len() > MAX_OBJECT_BYTES {
        return Err(ApiError::TooLargeObject(format!(
            "the object is {} bytes; the largest object stored is {MAX_OBJECT_BYTES} bytes",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn parse_rv(rv: &str) -> Result<Revision> {
    rv.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::BadRequest(format!("invalid resource version: {rv}")))
}

const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generate_suffix() -> String {
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| NAME_ALPHABET[usize::from(*b) % NAME_ALPHABET.len()] as char)
        .collect()
}

impl Registry {
    /// Seeds the system namespaces and starts one watch cache per resource, each keeping
    /// `watch_window` recent events for watchers that resume.
    pub async fn new(store: Arc<dyn Store>, watch_window: usize) -> Result<Registry> {
        Self::with_service_ranges(store, watch_window, ServiceRanges::default()).await
    }

    /// [`Registry::new`], with services taking cluster IPs and node ports from `ranges`.
    pub async fn with_service_ranges(
        store: Arc<dyn Store>,
        watch_window: usize,
        ranges: ServiceRanges,
    ) -> Result<Registry> {
        let mut caches = HashMap::new();
        for r in resource::ALL {
            let cache = WatchCache::start(store.clone(), r, prefix(r, None), watch_window)
                .await
                .map_err(|e| ApiError::from_store(e, r, ""))?;
            caches.insert(r.plural, cache);
        }
        let allocations = Allocations::new(store.clone(), ranges);
        let registry = Registry {
            store,
            caches,
            allocations,
        };
        for ns in SYSTEM_NAMESPACES {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            match registry
                .create(&resource::NAMESPACES, None, obj, FieldValidation::Ignore)
                .await
            {
                Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(registry)
    }

    /// Ends every watch and stops following the store (the server is shutting down).
    pub fn close_watches(&self) {
        self.caches.values().for_each(|c| c.close());
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The same registry over a store that writes nothing, for `dryRun=All`: each
    /// request runs as it would, and nothing it does is kept.
    pub fn dry_run(&self) -> Registry {
        let store: Arc<dyn Store> = Arc::new(DryRunStore::new(self.store.clone()));
        Registry {
            allocations: Allocations::new(store.clone(), self.allocations.ranges().clone()),
            store,
            caches: self.caches.clone(),
        }
    }

    pub fn allocations(&self) -> &Allocations {
        &self.allocations
    }

    pub fn cache(&self, resource: &ResourceInfo) -> &Arc<WatchCache> {
        &self.caches[resource.plural]
    }

    async fn get_kv(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<KeyValue> {
        self.store
            .get(&key(resource, namespace, name))
            .await
            .map_err(|e| ApiError::from_store(e, resource, name))?
            .ok_or_else(|| ApiError::not_found(resource, name))
    }

    pub async fn get(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value> {
        decode_kv(&self.get_kv(resource, namespace, name).await?)
    }

    /// The object serialized as served, without decoding it.
    pub async fn get_json(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Vec<u8>> {
        encode_kv(&self.get_kv(resource, namespace, name).await?)
    }

    /// Lists matching objects; returns `(items, resourceVersion, continue)`.
    pub async fn list(
        &self,
        resource: &'static ResourceInfo,
        filter: &Filter,
        params: &ListParams,
    ) -> Result<(Vec<Value>, Revision, Option<String>)> {
        let (raw, rev, token) = self.list_json(resource, filter, params).await?;
        let items = raw
            .iter()
            .map(|b| {
                serde_json::from_slice(b)
                    .map_err(|e| ApiError::Internal(format!("corrupt object: {e}")))
            })
            .collect::<Result<_>>()?;
        Ok((items, rev, token))
    }

    /// Like [`Registry::list`], with each object serialized as served. Objects are only
    /// decoded when a selector needs to look at them.
    pub async fn list_json(
        &self,
        resource: &'static ResourceInfo,
        filter: &Filter,
        params: &ListParams,
    ) -> Result<(Vec<Vec<u8>>, Revision, Option<String>)> {
        let prefix = prefix(resource, filter.namespace.as_deref());
        let (mut revision, mut start_after) = match &params.continue_token {
            Some(t) if !t.is_empty() => {
                let t = decode_continue(t)?;
                (Some(t.rv), Some(t.start))
            }
            _ => (None, None),
        };
        if revision.is_none()
            && params.resource_version_match.as_deref() == Some("Exact")
            && let Some(rv) = &params.resource_version
        {
            revision = Some(parse_rv(rv)?);
        }
        let want = params.limit.filter(|l| *l > 0);
        let everything = filter.selects_everything();
        let mut items = Vec::new();
        loop {
            let chunk = want.map(|w| (w - items.len()).max(64));
            let res = self
                .store
                .list(
                    &prefix,
                    ListOptions {
                        start_after: start_after.clone(),
                        limit: chunk,
                        revision,
                    },
                )
                .await
                .map_err(|e| match e {
                    minik8s_storage::Error::Compacted { .. } if params.continue_token.is_some() => {
                        ApiError::Expired(
                            "The provided continue parameter is too old to display a \
                             consistent list result. You can start a new list without the \
                             continue parameter."
                                .to_string(),
                        )
                    }
                    other => ApiError::from_store(other, resource, ""),
                })?;
            revision = Some(res.revision);
            let mut stopped_early = None;
            for kv in &res.items {
                if everything || filter.matches(&decode_kv(kv)?) {
                    items.push(encode_kv(kv)?);
                    if want.is_some_and(|w| items.len() >= w) {
                        stopped_early = Some(kv.key.clone());
                        break;
                    }
                }
            }
            let last_key = res.items.last().map(|kv| kv.key.clone());
            match stopped_early {
                Some(k) => {
                    let more = res.more || last_key.as_deref() != Some(k.as_str());
                    let token = more.then(|| encode_continue(res.revision, &k));
                    return Ok((items, res.revision, token));
                }
                None if res.more => start_after = last_key,
                None => return Ok((items, res.revision, None)),
            }
        }
    }

    async fn check_namespace(
        &self,
        resource: &'static ResourceInfo,
        ns: &str,
        name: &str,
    ) -> Result<()> {
        let nsobj = match self.get(&resource::NAMESPACES, None, ns).await {
            Ok(v) => v,
            Err(ApiError::NotFound { .. }) => {
                return Err(ApiError::not_found(&resource::NAMESPACES, ns));
            }
            Err(e) => return Err(e),
        };
        if object::meta(&nsobj).is_some_and(|m| m.contains_key("deletionTimestamp")) {
            return Err(ApiError::Forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                resource.plural, name, ns
            )));
        }
        Ok(())
    }

    fn check_identity(
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        obj: &mut Value,
    ) -> Result<()> {
        if !obj.is_object() {
            return Err(ApiError::BadRequest(
                "the body of the request must be a JSON object".to_string(),
            ));
        }
        match obj.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => {
                obj["apiVersion"] = Value::String(resource.api_version());
            }
            Some(v) if v == resource.api_version() => {}
            // An alias group (the original TaskSet group): stored under our own.
            Some(v) if resource::canonical_api_version(v) == resource.api_version() => {
                obj["apiVersion"] = Value::String(resource.api_version());
            }
            Some(v) => {
                return Err(ApiError::BadRequest(format!(
                    "the API version in the data ({v}) does not match the expected API version ({})",
                    resource.api_version()
                )));
            }
        }
        match obj.get("kind").and_then(Value::as_str) {
            None | Some("") => obj["kind"] = Value::String(resource.kind.to_string()),
            Some(k) if k == resource.kind => {}
            Some(k) => {
                return Err(ApiError::BadRequest(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    resource.kind
                )));
            }
        }
        let meta = object::meta_mut(obj);
        if resource.namespaced {
            let ns = namespace.unwrap_or("default");
            match meta.get("namespace").and_then(Value::as_str) {
                None | Some("") => {
                    meta.insert("namespace".into(), Value::String(ns.to_string()));
                }
                Some(n) if n == ns => {}
                Some(_) => {
                    return Err(ApiError::BadRequest(
                        "the namespace of the provided object does not match the namespace sent on the request".to_string(),
                    ));
                }
            }
        } else {
            meta.remove("namespace");
        }
        Ok(())
    }

    fn check_fields(
        strategy: &dyn Strategy,
        input: Value,
        validation: FieldValidation,
    ) -> Result<(Value, Vec<String>)> {
        let normalized = strategy.normalize(input.clone())?;
        if validation == FieldValidation::Ignore {
            return Ok((normalized, Vec::new()));
        }
        let unknown: Vec<String> = object::unknown_fields(&input, &normalized)
            .into_iter()
            .filter(|f| !matches!(f.as_str(), "metadata.resourceVersion" | "metadata.selfLink"))
            .collect();
        if unknown.is_empty() {
            return Ok((normalized, Vec::new()));
        }
        let msgs: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        if validation == FieldValidation::Strict {
            return Err(ApiError::BadRequest(format!(
                "strict decoding error: {}",
                msgs.join(", ")
            )));
        }
        Ok((normalized, msgs))
    }

    pub async fn create(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        mut obj: Value,
        validation: FieldValidation,
    ) -> Result<Written> {
        let strategy = strategy::for_resource(resource);
        Self::check_identity(resource, namespace, &mut obj)?;
        let (mut obj, warnings) = Self::check_fields(strategy, obj, validation)?;
        {
            let meta = object::meta_mut(&mut obj);
            let has_name = meta
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !has_name
                && let Some(prefix) = meta.get("generateName").and_then(Value::as_str)
                && !prefix.is_empty()
            {
                // As Kubernetes' name generator: the base is cut to 58 bytes so that a
                // long owner name still makes a valid 63-byte name.
                let base: String = prefix
                    .chars()
                    .scan(0, |len, c| {
                        *len += c.len_utf8();
                        (*len <= MAX_GENERATED_BASE).then_some(c)
                    })
                    .collect();
                let name = format!("{base}{}", generate_suffix());
                meta.insert("name".into(), Value::String(name));
            }
            for k in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
                "managedFields",
            ] {
                meta.remove(k);
            }
            meta.insert(
                "uid".into(),
                Value::String(uuid::Uuid::new_v4().to_string()),
            );
            meta.insert(
                "creationTimestamp".into(),
                Value::String(object::now_rfc3339()),
            );
            meta.insert("generation".into(), json!(1));
        }
        let mut obj = strategy.prepare_create(obj)?;
        let name = object::name(&obj).to_string();
        let ns = object::namespace(&obj).to_string();
        if resource.namespaced {
            self.check_namespace(resource, &ns, &name).await?;
        }
        let key = key(resource, Some(&ns), &name);
        let taken = if resource == &resource::SERVICES {
            Some(self.allocations.on_create(&mut obj).await?)
        } else {
            None
        };
        let written = match to_bytes(&obj) {
            Ok(bytes) => self
                .store
                .create(&key, bytes)
                .await
                .map_err(|e| ApiError::from_store(e, resource, &name)),
            Err(e) => Err(e),
        };
        let rev = match written {
            Ok(rev) => rev,
            Err(e) => {
                if let Some(taken) = taken {
                    self.allocations.release(taken).await;
                }
                return Err(e);
            }
        };
        object::set_resource_version(&mut obj, rev);
        Ok(Written {
            object: obj,
            warnings,
        })
    }

    /// `PUT`: replaces the object (or its status), with optimistic concurrency on the
    /// `resourceVersion` the client sent.
    pub async fn update(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        mut obj: Value,
        part: Part,
        validation: FieldValidation,
    ) -> Result<Written> {
        let strategy = strategy::for_resource(resource);
        Self::check_identity(resource, namespace, &mut obj)?;
        match object::meta_str(&obj, "name") {
            Some(n) if n == name => {}
            None | Some("") => {
                object::meta_mut(&mut obj).insert("name".into(), Value::String(name.to_string()));
            }
            Some(n) => {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        let (obj, warnings) = Self::check_fields(strategy, obj, validation)?;
        let precondition = match object::meta_str(&obj, "resourceVersion") {
            Some(rv) if !rv.is_empty() => Some(parse_rv(rv)?),
            _ => None,
        };
        // Without a resourceVersion the update is unconditional: a race with another
        // writer is retried, as Kubernetes does, instead of surfacing as a conflict.
        for _ in 0..PATCH_RETRIES {
            let kv = self.get_kv(resource, namespace, name).await?;
            if precondition.is_some_and(|rv| rv != kv.mod_revision) {
                return Err(ApiError::conflict(resource, name));
            }
            let old = decode_kv(&kv)?;
            match self
                .write_update(
                    resource,
                    namespace,
                    name,
                    &old,
                    obj.clone(),
                    part,
                    kv.mod_revision,
                )
                .await
            {
                Ok(object) => return Ok(Written { object, warnings }),
                Err(ApiError::Conflict { .. }) if precondition.is_none() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::conflict(resource, name))
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_update(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        old: &Value,
        mut new: Value,
        part: Part,
        expected: Revision,
    ) -> Result<Value> {
        let strategy = strategy::for_resource(resource);
        // Identity and lifecycle fields are the server's, whatever the client sent.
        {
            let old_meta = object::meta(old).cloned().unwrap_or_default();
            let meta = object::meta_mut(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "generateName",
            ] {
                match old_meta.get(k) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
        }
        let mut new = strategy.prepare_update(old, new, part)?;
        let allocated = if resource == &resource::SERVICES && part == Part::Main {
            Some(self.allocations.on_update(old, &mut new).await?)
        } else {
            None
        };
        let result = self
            .store_update(resource, namespace, name, old, new, expected)
            .await;
        if let Some((taken, freed)) = allocated {
            match &result {
                Ok(_) => self.allocations.release(freed).await,
                Err(_) => self.allocations.release(taken).await,
            }
        }
        result
    }

    /// The write of an update after its preparation: a new generation when the spec
    /// changed, no write at all when nothing did, removal once the last finalizer of an
    /// object being deleted is gone.
    async fn store_update(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        old: &Value,
        mut new: Value,
        expected: Revision,
    ) -> Result<Value> {
        if new.get("spec") != old.get("spec") {
            let generation = object::meta(old)
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            object::meta_mut(&mut new).insert("generation".into(), json!(generation + 1));
        }
        // Nothing changed: no write, no new resourceVersion, no watch event.
        let mut old_cmp = old.clone();
        let mut new_cmp = new.clone();
        object::strip_for_storage(&mut old_cmp);
        object::strip_for_storage(&mut new_cmp);
        if old_cmp == new_cmp {
            object::set_resource_version(&mut new, expected);
            return Ok(new);
        }
        let key = key(resource, namespace, name);
        // An object marked for deletion goes once its last finalizer is removed.
        if self.ready_to_remove(&new) {
            let kv = self
                .store
                .delete(&key, Some(expected))
                .await
                .map_err(|e| ApiError::from_store(e, resource, name))?;
            object::set_resource_version(&mut new, kv.mod_revision);
            return Ok(new);
        }
        let rev = self
            .store
            .update(&key, to_bytes(&new)?, expected)
            .await
            .map_err(|e| ApiError::from_store(e, resource, name))?;
        object::set_resource_version(&mut new, rev);
        Ok(new)
    }

    fn ready_to_remove(&self, obj: &Value) -> bool {
        // A namespace goes only once its contents are gone (finalize_namespaces).
        if obj.get("kind").and_then(Value::as_str) == Some("Namespace") {
            return false;
        }
        let Some(meta) = object::meta(obj) else {
            return false;
        };
        meta.contains_key("deletionTimestamp")
            && meta
                .get("finalizers")
                .and_then(Value::as_array)
                .is_none_or(|f| f.is_empty())
            && meta
                .get("deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .is_none_or(|g| g == 0)
    }

    /// `PATCH`: applies a merge, strategic-merge or JSON patch to the current object and
    /// writes the result, re-applying it if the object changed in between.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch_body: &Value,
        part: Part,
        validation: FieldValidation,
    ) -> Result<Written> {
        let strategy = strategy::for_resource(resource);
        for _ in 0..PATCH_RETRIES {
            let kv = self.get_kv(resource, namespace, name).await?;
            let old = decode_kv(&kv)?;
            let patched = patch::apply(patch_type, &old, patch_body).map_err(|e| match e {
                patch::PatchError::Malformed(m) => ApiError::BadRequest(m),
                patch::PatchError::Inapplicable(m) => ApiError::Unprocessable(m),
                patch::PatchError::TooLarge(m) => ApiError::TooLargeObject(m),
            })?;
            let mut patched = patched;
            // A resourceVersion in the patch is a precondition, as in Kubernetes.
            let expected = match object::meta_str(&patched, "resourceVersion") {
                Some(rv) if !rv.is_empty() && rv != kv.mod_revision.to_string() => {
                    return Err(ApiError::conflict(resource, name));
                }
                _ => kv.mod_revision,
            };
            Self::check_identity(resource, namespace, &mut patched)?;
            if object::name(&patched) != name {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    object::name(&patched)
                )));
            }
            let (patched, warnings) = Self::check_fields(strategy, patched, validation)?;
            match self
                .write_update(resource, namespace, name, &old, patched, part, expected)
                .await
            {
                Ok(object) => return Ok(Written { object, warnings }),
                Err(ApiError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::conflict(resource, name))
    }

    pub async fn delete(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        params: &DeleteParams,
    ) -> Result<Deleted> {
        let strategy = strategy::for_resource(resource);
        if resource.plural == "namespaces" && SYSTEM_NAMESPACES.contains(&name) {
            return Err(ApiError::Forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        if let Some(g) = params.grace_period_seconds
            && g < 0
        {
            return Err(ApiError::Invalid {
                resource,
                name: name.to_string(),
                causes: vec![minik8s_api::validation::FieldError::invalid(
                    "gracePeriodSeconds",
                    &g.to_string(),
                    "must be greater than or equal to 0",
                )],
            });
        }
        let propagation = garbage_collector::requested(params)?;
        for _ in 0..PATCH_RETRIES {
            let kv = self.get_kv(resource, namespace, name).await?;
            let obj = decode_kv(&kv)?;
            if let Some(pre) = &params.preconditions {
                if let Some(uid) = &pre.uid
                    && object::meta_str(&obj, "uid") != Some(uid.as_str())
                {
                    return Err(ApiError::Conflict {
                        resource,
                        name: name.to_string(),
                        message: format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                            object::meta_str(&obj, "uid").unwrap_or("")
                        ),
                    });
                }
                if let Some(rv) = &pre.resource_version
                    && *rv != kv.mod_revision.to_string()
                {
                    return Err(ApiError::Conflict {
                        resource,
                        name: name.to_string(),
                        message: format!(
                            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                            kv.mod_revision
                        ),
                    });
                }
            }
            let key = key(resource, namespace, name);
            // The garbage collector's finalizers, as the propagation policy asks.
            let gc_finalizers =
                garbage_collector::finalizers_after_delete(resource, &obj, propagation);
            let has_finalizers = match &gc_finalizers {
                Some(f) => !f.is_empty(),
                None => object::meta(&obj)
                    .and_then(|m| m.get("finalizers"))
                    .and_then(Value::as_array)
                    .is_some_and(|f| !f.is_empty()),
            };
            let grace = strategy.graceful_delete_seconds(&obj, params.grace_period_seconds);
            let wait = resource.plural == "namespaces" || has_finalizers || grace.is_some();
            if !wait {
                return match self.store.delete(&key, Some(kv.mod_revision)).await {
                    Ok(kv) => {
                        if resource == &resource::SERVICES {
                            self.allocations.on_delete(&obj).await;
                        }
                        let mut gone = obj;
                        object::set_resource_version(&mut gone, kv.mod_revision);
                        Ok(Deleted::Gone(gone))
                    }
                    Err(minik8s_storage::Error::Conflict { .. }) => continue,
                    Err(e) => Err(ApiError::from_store(e, resource, name)),
                };
            }
            let mut marked = obj.clone();
            let meta = object::meta_mut(&mut marked);
            let current_grace = meta
                .get("deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            let grace = grace.unwrap_or(0);
            let deleting = meta.contains_key("deletionTimestamp");
            if deleting && current_grace.is_some_and(|g| g <= grace) {
                // Already being deleted at least this fast. As in Kubernetes, the
                // finalizers of a deletion that only waits for them (no grace period
                // left) still follow a new policy; a graceful one keeps its own.
                if gc_finalizers.is_none() || current_grace != Some(0) {
                    return Ok(Deleted::Pending(obj));
                }
            } else {
                if !deleting
                    && let Some(g) = meta.get("generation").and_then(Value::as_i64)
                    && g > 0
                {
                    meta.insert("generation".into(), json!(g + 1));
                }
                // Any grace period is accepted; the timestamp saturates far in the future.
                let at = jiff::Timestamp::now()
                    .checked_add(jiff::SignedDuration::from_secs(grace))
                    .unwrap_or(jiff::Timestamp::MAX);
                meta.insert(
                    "deletionTimestamp".into(),
                    Value::String(object::format_time(at)),
                );
                meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            match gc_finalizers {
                Some(f) if f.is_empty() => {
                    meta.remove("finalizers");
                }
                Some(f) => {
                    meta.insert("finalizers".into(), json!(f));
                }
                None => {}
            }
            if resource.plural == "namespaces" {
                marked["status"] = json!({"phase": "Terminating"});
            }
            match self
                .store
                .update(&key, to_bytes(&marked)?, kv.mod_revision)
                .await
            {
                Ok(rev) => {
                    object::set_resource_version(&mut marked, rev);
                    return Ok(Deleted::Pending(marked));
                }
                Err(minik8s_storage::Error::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e, resource, name)),
            }
        }
        Err(ApiError::conflict(resource, name))
    }

    /// `DELETE` on a collection: lists what `filter` selects, then deletes each object
    /// with the same options, as Kubernetes' `DeleteCollection`. Objects gone in between
    /// are skipped; the first other failure ends it. Returns the list as it was taken
    /// (the objects before their deletion) and its revision.
    pub async fn delete_collection(
        &self,
        resource: &'static ResourceInfo,
        filter: &Filter,
        params: &DeleteParams,
    ) -> Result<(Vec<Value>, Revision)> {
        if resource.plural == "namespaces" {
            return Err(ApiError::MethodNotAllowed);
        }
        let (items, rev, _) = self.list(resource, filter, &ListParams::default()).await?;
        for item in &items {
            let ns = resource.namespaced.then(|| object::namespace(item));
            match self.delete(resource, ns, object::name(item), params).await {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((items, rev))
    }

    /// Deletes events last seen more than `ttl` ago, as Kubernetes' event TTL does.
    pub async fn expire_events(&self, ttl: std::time::Duration) -> Result<usize> {
        let all = Filter::new(&resource::EVENTS, None, None, None)?;
        let (events, _, _) = self
            .list(&resource::EVENTS, &all, &ListParams::default())
            .await?;
        let now = jiff::Timestamp::now().as_second();
        let mut expired = 0;
        for ev in events {
            let last = ["lastTimestamp", "eventTime"]
                .iter()
                .find_map(|k| ev.get(*k).and_then(Value::as_str))
                .or_else(|| object::meta_str(&ev, "creationTimestamp"))
                .and_then(object::parse_time);
            if last.is_some_and(|t| now - t.as_second() > ttl.as_secs() as i64) {
                match self
                    .delete(
                        &resource::EVENTS,
                        Some(object::namespace(&ev)),
                        object::name(&ev),
                        &DeleteParams::default(),
                    )
                    .await
                {
                    Ok(_) => expired += 1,
                    Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(expired)
    }

    /// Finishes deleting terminating namespaces: removes what they contain, then them.
    /// Safe to run at any time and any number of times.
    pub async fn finalize_namespaces(&self) -> Result<()> {
        let all = Filter::new(&resource::NAMESPACES, None, None, None)?;
        let (namespaces, _, _) = self
            .list(&resource::NAMESPACES, &all, &ListParams::default())
            .await?;
        for ns in namespaces {
            if !object::meta(&ns).is_some_and(|m| m.contains_key("deletionTimestamp")) {
                continue;
            }
            let name = object::name(&ns).to_string();
            let mut remaining = 0;
            for r in resource::ALL.iter().filter(|r| r.namespaced) {
                let filter = Filter::new(r, Some(name.clone()), None, None)?;
                let (items, _, _) = self.list(r, &filter, &ListParams::default()).await?;
                remaining += items.len();
                for item in items {
                    if object::meta(&item).is_some_and(|m| m.contains_key("deletionTimestamp")) {
                        continue;
                    }
                    // In the background, as Kubernetes' namespace controller deletes:
                    // jobs and replication controllers would orphan by default.
                    let params = DeleteParams {
                        propagation_policy: Some("Background".to_string()),
                        ..DeleteParams::default()
                    };
                    match self
                        .delete(r, Some(&name), object::name(&item), &params)
                        .await
                    {
                        Ok(_) | Err(ApiError::NotFound { .. }) => {}
                        Err(e) => {
                            tracing::warn!(namespace = %name, error = %e, "namespace cleanup")
                        }
                    }
                }
            }
            if remaining == 0 {
                match self
                    .store
                    .delete(&key(&resource::NAMESPACES, None, &name), None)
                    .await
                {
                    Ok(_) | Err(minik8s_storage::Error::NotFound { .. }) => {}
                    Err(e) => return Err(ApiError::from_store(e, &resource::NAMESPACES, &name)),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(value: &Value) -> KeyValue {
        KeyValue {
            key: "/registry/pods/default/p".into(),
            value: serde_json::to_vec(value).unwrap(),
            create_revision: 3,
            mod_revision: 7,
        }
    }

    #[test]
    fn resource_version_is_spliced_into_stored_bytes() {
        let obj = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"metadata": "{"}}, "spec": {}});
        let out: Value = serde_json::from_slice(&encode_kv(&kv(&obj)).unwrap()).unwrap();
        let mut want = obj.clone();
        want["metadata"]["resourceVersion"] = json!("7");
        assert_eq!(out, want);
        // Objects of another shape are decoded and encoded instead.
        for odd in [
            json!({"kind": "Pod", "metadata": {"name": "p"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}),
        ] {
            let out: Value = serde_json::from_slice(&encode_kv(&kv(&odd)).unwrap()).unwrap();
            assert_eq!(out["metadata"]["resourceVersion"], "7", "{odd}");
        }
    }
}
