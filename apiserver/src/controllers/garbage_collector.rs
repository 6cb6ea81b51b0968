//! Cascading deletion, as Kubernetes' garbage collector does it.
//!
//! A delete says what happens to the object's dependents (the objects whose
//! `metadata.ownerReferences` name it) with its `propagationPolicy`:
//!
//! * `Background`: the owner goes at once; this collector then deletes every object whose
//!   owner references all point at owners that no longer exist. Owners are compared by
//!   uid, so an owner re-created under the same name does not save the old dependents.
//! * `Foreground`: the registry marks the owner (`deletionTimestamp` and the
//!   `foregroundDeletion` finalizer); the collector deletes all its dependents and removes
//!   the finalizer once no dependent with `blockOwnerDeletion: true` is left — gone, not
//!   merely marked — and the registry then removes the owner.
//! * `Orphan`: the owner gets the `orphan` finalizer; the collector takes the owner out of
//!   every dependent's owner references, then removes the finalizer.
//!
//! [`reconcile`] looks at every resource served (events aside, as Kubernetes' collector
//! ignores them) once per pass and builds the set of existing objects from that one
//! listing. When no object has an owner reference or one of the two finalizers, a pass
//! lists and scans bytes, and decodes nothing.

use std::collections::{HashMap, HashSet};

use minik8s_api::resource::{self, ResourceInfo};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::object;
use crate::patch::PatchType;
use crate::registry::{DeleteParams, FieldValidation, Filter, ListParams, Preconditions, Registry};
use crate::strategy::Part;

/// The finalizer of an owner whose dependents are deleted before it (`Foreground`).
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer of an owner whose dependents are kept without it (`Orphan`).
pub const ORPHAN_FINALIZER: &str = "orphan";

/// How a delete treats the dependents of what it deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

impl Propagation {
    pub const ALL: [&'static str; 3] = ["Foreground", "Background", "Orphan"];

    pub fn parse(s: &str) -> Option<Propagation> {
        match s {
            "Orphan" => Some(Propagation::Orphan),
            "Background" => Some(Propagation::Background),
            "Foreground" => Some(Propagation::Foreground),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Orphan => "Orphan",
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
        }
    }
}

/// The policy a delete asks for: `propagationPolicy`, or the deprecated
/// `orphanDependents` (`true` is `Orphan`, `false` is `Background`); `None` leaves it to
/// the object's finalizers and its kind's default. Both at once, or an unknown policy, is
/// `422`, worded as Kubernetes' `ValidateDeleteOptions` words it.
pub fn requested(params: &DeleteParams) -> Result<Option<Propagation>> {
    let invalid = |detail: String| {
        ApiError::Unprocessable(format!(
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: {detail}"
        ))
    };
    match (&params.propagation_policy, params.orphan_dependents) {
        (Some(p), Some(_)) => Err(invalid(format!(
            "Invalid value: \"{p}\": orphanDependents and deletionPropagation cannot be both set"
        ))),
        (Some(p), None) => match Propagation::parse(p) {
            Some(p) => Ok(Some(p)),
            None => Err(invalid(format!(
                "Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            ))),
        },
        (None, Some(true)) => Ok(Some(Propagation::Orphan)),
        (None, Some(false)) => Ok(Some(Propagation::Background)),
        (None, None) => Ok(None),
    }
}

/// What a delete that names no policy does, as in Kubernetes: core/v1
/// ReplicationControllers and batch/v1 Jobs orphan their pods, for compatibility with the
/// time before server-side cascading; every other kind deletes in the background.
pub fn default_policy(resource: &ResourceInfo) -> Propagation {
    if *resource == resource::REPLICATION_CONTROLLERS || *resource == resource::JOBS {
        Propagation::Orphan
    } else {
        Propagation::Background
    }
}

/// The warning Kubernetes gives when a Job is deleted without a policy.
pub const JOB_DEFAULT_WARNING: &str = "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning";

/// Kinds a delete never gives the collector's finalizers: a namespace has its own
/// deletion, and events are not collected.
fn collects(resource: &ResourceInfo) -> bool {
    *resource != resource::NAMESPACES && *resource != resource::EVENTS
}

fn finalizers_of(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect()
}

/// The finalizers `obj` has after a delete asking for `requested`, when they change
/// (Kubernetes' `deletionFinalizersForGarbageCollection`): the policy asked for wins; else
/// the one the object's finalizers already say; else the kind's default. `orphan` for
/// `Orphan`, `foregroundDeletion` for `Foreground`, neither for `Background`.
pub fn finalizers_after_delete(
    resource: &ResourceInfo,
    obj: &Value,
    requested: Option<Propagation>,
) -> Option<Vec<String>> {
    if !collects(resource) {
        return None;
    }
    let old = finalizers_of(obj);
    let policy = requested
        .or_else(|| {
            old.iter().find_map(|f| match f.as_str() {
                ORPHAN_FINALIZER => Some(Propagation::Orphan),
                FOREGROUND_FINALIZER => Some(Propagation::Foreground),
                _ => None,
            })
        })
        .unwrap_or_else(|| default_policy(resource));
    let mut new: Vec<String> = old
        .iter()
        .filter(|f| *f != ORPHAN_FINALIZER && *f != FOREGROUND_FINALIZER)
        .cloned()
        .collect();
    match policy {
        Propagation::Orphan => new.push(ORPHAN_FINALIZER.to_string()),
        Propagation::Foreground => new.push(FOREGROUND_FINALIZER.to_string()),
        Propagation::Background => {}
    }
    let same = old.iter().collect::<HashSet<_>>() == new.iter().collect::<HashSet<_>>();
    (!same).then_some(new)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnerRef {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    block_owner_deletion: Option<bool>,
}

/// What the collector reads of an object: its metadata, without the rest.
#[derive(Deserialize)]
struct Item {
    metadata: Meta,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    resource_version: String,
    #[serde(default)]
    owner_references: Vec<OwnerRef>,
    #[serde(default)]
    finalizers: Vec<String>,
    #[serde(default)]
    deletion_timestamp: Option<String>,
}

struct Node {
    resource: &'static ResourceInfo,
    meta: Meta,
}

impl Node {
    fn deleting(&self) -> bool {
        self.meta.deletion_timestamp.is_some()
    }

    fn has_finalizer(&self, f: &str) -> bool {
        self.meta.finalizers.iter().any(|x| x == f)
    }

    /// Being deleted in the foreground: waiting for its dependents.
    fn deleting_dependents(&self) -> bool {
        self.deleting() && self.has_finalizer(FOREGROUND_FINALIZER)
    }

    fn namespace(&self) -> Option<&str> {
        Some(self.meta.namespace.as_str()).filter(|n| !n.is_empty())
    }
}

/// How an owner reference stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// Exists (or cannot be looked up: a kind we do not serve), and is not deleting its
    /// dependents.
    Solid,
    /// No object of that kind, namespace, name and uid exists.
    Dangling,
    /// Exists, and is being deleted in the foreground.
    Waiting,
}

/// The resource an owner reference names, if we serve it.
fn owner_resource(r: &OwnerRef) -> Option<&'static ResourceInfo> {
    let api_version = resource::canonical_api_version(&r.api_version);
    resource::ALL
        .iter()
        .find(|res| res.kind == r.kind && res.api_version() == api_version)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Worth decoding: it has owners, or it is an owner the collector must finish deleting.
fn interesting(raw: &[u8]) -> bool {
    contains(raw, b"\"ownerReferences\"")
        || (contains(raw, b"\"deletionTimestamp\"")
            && (contains(raw, b"\"foregroundDeletion\"") || contains(raw, b"\"orphan\"")))
}

/// One pass over every object; repeated while it changes something, so that a chain of
/// owners settles within one call.
pub async fn reconcile(registry: &Registry) -> Result<()> {
    for _ in 0..8 {
        if !pass(registry).await? {
            break;
        }
    }
    Ok(())
}

/// Every object the collector looks at, or `None` when none has an owner or a
/// collector's finalizer.
async fn snapshot(registry: &Registry) -> Result<Option<Vec<Node>>> {
    let mut lists = Vec::new();
    let mut any = false;
    for r in resource::ALL.iter().filter(|r| collects(r)) {
        let all = Filter::new(r, None, None, None)?;
        let (items, _, _) = registry.list_json(r, &all, &ListParams::default()).await?;
        any = any || items.iter().any(|raw| interesting(raw));
        lists.push((r, items));
    }
    if !any {
        return Ok(None);
    }
    let mut nodes = Vec::new();
    for (r, items) in lists {
        for raw in items {
            match serde_json::from_slice::<Item>(&raw) {
                Ok(item) => nodes.push(Node {
                    resource: r,
                    meta: item.metadata,
                }),
                Err(e) => tracing::warn!(resource = r.plural, error = %e, "unreadable object"),
            }
        }
    }
    Ok(Some(nodes))
}

/// One pass; true if it wrote anything.
async fn pass(registry: &Registry) -> Result<bool> {
    let Some(nodes) = snapshot(registry).await? else {
        return Ok(false);
    };
    let by_uid: HashMap<&str, &Node> = nodes.iter().map(|n| (n.meta.uid.as_str(), n)).collect();
    // owner uid → its dependents
    let mut dependents: HashMap<&str, Vec<&Node>> = HashMap::new();
    for n in &nodes {
        for r in &n.meta.owner_references {
            dependents.entry(r.uid.as_str()).or_default().push(n);
        }
    }
    let mut verified: HashMap<String, bool> = HashMap::new();
    let mut acted = false;
    for n in nodes.iter().filter(|n| !n.meta.owner_references.is_empty()) {
        // Something being deleted is left to its deletion (or, in the foreground, to the
        // owners' part below).
        if n.deleting() {
            continue;
        }
        let mut states = Vec::new();
        for r in &n.meta.owner_references {
            states.push(owner_state(registry, &by_uid, &mut verified, n, r).await);
        }
        let solid = states.contains(&Owner::Solid);
        let waiting = states.contains(&Owner::Waiting);
        let dangling = states.contains(&Owner::Dangling);
        let result = if solid {
            if !dangling && !waiting {
                continue;
            }
            // It keeps an owner: only the references to owners that are gone or going
            // are dropped (a foreground owner must not wait for it).
            let keep: Vec<&OwnerRef> = n
                .meta
                .owner_references
                .iter()
                .zip(&states)
                .filter(|(_, s)| **s == Owner::Solid)
                .map(|(r, _)| r)
                .collect();
            set_owner_refs(registry, n, &keep).await
        } else {
            let policy = if waiting && dependents.contains_key(n.meta.uid.as_str()) {
                // An owner waits for it and it has dependents itself: they go first.
                Propagation::Foreground
            } else if n.has_finalizer(ORPHAN_FINALIZER) {
                Propagation::Orphan
            } else if n.has_finalizer(FOREGROUND_FINALIZER) {
                Propagation::Foreground
            } else {
                Propagation::Background
            };
            delete(registry, n, policy).await
        };
        match result {
            Ok(()) => acted = true,
            Err(e) => tracing::warn!(
                resource = n.resource.plural, name = %n.meta.name, error = %e,
                "garbage collecting"
            ),
        }
    }
    // Owners being deleted that wait for the collector.
    for owner in nodes.iter().filter(|n| n.deleting()) {
        let deps = dependents
            .get(owner.meta.uid.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let result = if owner.has_finalizer(ORPHAN_FINALIZER) {
            orphan(registry, owner, deps).await
        } else if owner.has_finalizer(FOREGROUND_FINALIZER) {
            let blocked = deps.iter().any(|d| {
                d.meta
                    .owner_references
                    .iter()
                    .any(|r| r.uid == owner.meta.uid && r.block_owner_deletion == Some(true))
            });
            if blocked {
                continue;
            }
            remove_finalizer(registry, owner, FOREGROUND_FINALIZER).await
        } else {
            continue;
        };
        match result {
            Ok(()) => acted = true,
            Err(e) => tracing::warn!(
                resource = owner.resource.plural, name = %owner.meta.name, error = %e,
                "finishing a deletion"
            ),
        }
    }
    Ok(acted)
}

/// Where the owner named by `r` stands, for the dependent `dep`. An owner missing from the
/// snapshot is looked up once more before it counts as gone, as it may have been created
/// after its kind was listed.
async fn owner_state(
    registry: &Registry,
    by_uid: &HashMap<&str, &Node>,
    verified: &mut HashMap<String, bool>,
    dep: &Node,
    r: &OwnerRef,
) -> Owner {
    let Some(res) = owner_resource(r) else {
        return Owner::Solid;
    };
    // A namespaced owner is in its dependent's namespace; a cluster-scoped dependent
    // cannot have one, and such a reference is left alone.
    let namespace = match (res.namespaced, dep.namespace()) {
        (true, Some(ns)) => Some(ns),
        (true, None) => return Owner::Solid,
        (false, _) => None,
    };
    let matches =
        |n: &Node| n.resource == res && n.meta.name == r.name && (n.namespace() == namespace);
    if let Some(owner) = by_uid.get(r.uid.as_str()).filter(|n| matches(n)) {
        return if owner.deleting_dependents() {
            Owner::Waiting
        } else {
            Owner::Solid
        };
    }
    let key = format!(
        "{}/{}/{}/{}",
        res.plural,
        namespace.unwrap_or(""),
        r.name,
        r.uid
    );
    let exists = match verified.get(&key) {
        Some(e) => *e,
        None => {
            let e = match registry.get(res, namespace, &r.name).await {
                Ok(obj) => object::meta_str(&obj, "uid") == Some(r.uid.as_str()),
                Err(ApiError::NotFound { .. }) => false,
                // Cannot tell: keep the dependent.
                Err(_) => true,
            };
            verified.insert(key, e);
            e
        }
    };
    if exists {
        Owner::Solid
    } else {
        Owner::Dangling
    }
}

/// Deletes `n` if it is still the version read, with `policy` for its own dependents.
async fn delete(registry: &Registry, n: &Node, policy: Propagation) -> Result<()> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(n.meta.uid.clone()),
            resource_version: Some(n.meta.resource_version.clone()),
        }),
        propagation_policy: Some(policy.as_str().to_string()),
        ..DeleteParams::default()
    };
    tracing::debug!(resource = n.resource.plural, name = %n.meta.name, ?policy, "garbage collecting");
    match registry
        .delete(n.resource, n.namespace(), &n.meta.name, &params)
        .await
    {
        // Changed or gone since it was read: the next pass looks again.
        Ok(_) | Err(ApiError::NotFound { .. } | ApiError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `metadata` fields of `n` if it is still the version read.
async fn patch_meta(registry: &Registry, n: &Node, fields: Value) -> Result<()> {
    let mut meta = fields;
    meta["resourceVersion"] = json!(n.meta.resource_version);
    match registry
        .patch(
            n.resource,
            n.namespace(),
            &n.meta.name,
            PatchType::Merge,
            &json!({ "metadata": meta }),
            Part::Main,
            FieldValidation::Ignore,
        )
        .await
    {
        // Changed or gone since it was read: the next pass looks again.
        Ok(_) | Err(ApiError::NotFound { .. } | ApiError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Re-reads the owner references of `n` from the store, as the snapshot keeps only what
/// the collector decodes of them.
async fn set_owner_refs(registry: &Registry, n: &Node, keep: &[&OwnerRef]) -> Result<()> {
    let current = match registry.get(n.resource, n.namespace(), &n.meta.name).await {
        Ok(current) => current,
        Err(ApiError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let keep_uids: HashSet<&str> = keep.iter().map(|r| r.uid.as_str()).collect();
    let refs: Vec<Value> = current["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["uid"].as_str().is_some_and(|u| keep_uids.contains(u)))
        .cloned()
        .collect();
    patch_meta(
        registry,
        n,
        json!({ "ownerReferences": if refs.is_empty() { Value::Null } else { json!(refs) } }),
    )
    .await
}

/// Takes `owner` out of its dependents' owner references, then drops its `orphan`
/// finalizer; the registry then removes it.
async fn orphan(registry: &Registry, owner: &Node, deps: &[&Node]) -> Result<()> {
    for d in deps {
        let keep: Vec<&OwnerRef> = d
            .meta
            .owner_references
            .iter()
            .filter(|r| r.uid != owner.meta.uid)
            .collect();
        set_owner_refs(registry, d, &keep).await?;
    }
    remove_finalizer(registry, owner, ORPHAN_FINALIZER).await
}

async fn remove_finalizer(registry: &Registry, n: &Node, finalizer: &str) -> Result<()> {
    let rest: Vec<&String> = n
        .meta
        .finalizers
        .iter()
        .filter(|f| *f != finalizer)
        .collect();
    patch_meta(
        registry,
        n,
        json!({ "finalizers": if rest.is_empty() { Value::Null } else { json!(rest) } }),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use minik8s_api::resource::{CONFIG_MAPS, JOBS, NAMESPACES, REPLICATION_CONTROLLERS};

    fn with_finalizers(f: &[&str]) -> Value {
        json!({"metadata": {"name": "x", "finalizers": f}})
    }

    #[test]
    fn the_policy_sets_the_finalizers() {
        let fg = Some(Propagation::Foreground);
        let or = Some(Propagation::Orphan);
        let bg = Some(Propagation::Background);
        let plain = with_finalizers(&[]);
        assert_eq!(finalizers_after_delete(&CONFIG_MAPS, &plain, None), None);
        assert_eq!(finalizers_after_delete(&CONFIG_MAPS, &plain, bg), None);
        assert_eq!(
            finalizers_after_delete(&CONFIG_MAPS, &plain, or),
            Some(vec!["orphan".to_string()])
        );
        assert_eq!(
            finalizers_after_delete(&CONFIG_MAPS, &plain, fg),
            Some(vec!["foregroundDeletion".to_string()])
        );
        // Another finalizer stays; a policy change swaps the collector's.
        let mine = with_finalizers(&["example.com/x", "orphan"]);
        assert_eq!(
            finalizers_after_delete(&CONFIG_MAPS, &mine, fg),
            Some(vec![
                "example.com/x".to_string(),
                "foregroundDeletion".to_string()
            ])
        );
        assert_eq!(
            finalizers_after_delete(&CONFIG_MAPS, &mine, bg),
            Some(vec!["example.com/x".to_string()])
        );
        // Without a policy, the finalizer already there decides.
        assert_eq!(finalizers_after_delete(&CONFIG_MAPS, &mine, None), None);
        // Legacy kinds orphan by default; namespaces are never given one.
        for r in [&REPLICATION_CONTROLLERS, &JOBS] {
            assert_eq!(
                finalizers_after_delete(r, &plain, None),
                Some(vec!["orphan".to_string()])
            );
            assert_eq!(finalizers_after_delete(r, &plain, bg), None);
        }
        assert_eq!(finalizers_after_delete(&NAMESPACES, &plain, fg), None);
    }

    #[test]
    fn delete_options_name_one_policy() {
        let params = |p: Option<&str>, o: Option<bool>| DeleteParams {
            propagation_policy: p.map(str::to_string),
            orphan_dependents: o,
            ..DeleteParams::default()
        };
        assert_eq!(requested(&params(None, None)).unwrap(), None);
        assert_eq!(
            requested(&params(Some("Foreground"), None)).unwrap(),
            Some(Propagation::Foreground)
        );
        assert_eq!(
            requested(&params(None, Some(true))).unwrap(),
            Some(Propagation::Orphan)
        );
        assert_eq!(
            requested(&params(None, Some(false))).unwrap(),
            Some(Propagation::Background)
        );
        let e = requested(&params(Some("Sideways"), None)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Sideways\": supported values: \"Foreground\", \"Background\", \"Orphan\""
        );
        assert!(requested(&params(Some("Orphan"), Some(true))).is_err());
    }

    #[test]
    fn only_owned_or_finishing_objects_are_decoded() {
        assert!(!interesting(br#"{"metadata":{"name":"orphan"}}"#));
        assert!(interesting(br#"{"metadata":{"ownerReferences":[]}}"#));
        assert!(interesting(
            br#"{"metadata":{"deletionTimestamp":"t","finalizers":["orphan"]}}"#
        ));
        assert!(!interesting(
            br#"{"metadata":{"finalizers":["foregroundDeletion"]}}"#
        ));
    }

    #[test]
    fn owner_kinds_resolve_by_group_and_kind() {
        let r = |v: &str, k: &str| OwnerRef {
            api_version: v.into(),
            kind: k.into(),
            name: "o".into(),
            uid: "u".into(),
            block_owner_deletion: None,
        };
        assert_eq!(
            owner_resource(&r("apps/v1", "ReplicaSet")),
            Some(&resource::REPLICA_SETS)
        );
        assert_eq!(
            owner_resource(&r("v1", "ConfigMap")),
            Some(&resource::CONFIG_MAPS)
        );
        assert_eq!(owner_resource(&r("example.com/v1", "ConfigMap")), None);
    }
}
