//! ControllerRevisions: the revision history of StatefulSets and DaemonSets, as
//! Kubernetes' `controller/history` keeps it. A revision holds the patch that restores its
//! pod template (`{"spec": {"template": {..., "$patch": "replace"}}}`), is named
//! `<owner>-<hash>` with the hash also in its `controller-revision-hash` label, carries
//! its owner's controller reference, and has a number that grows with each new template.
//! Going back to an earlier template reuses that template's revision and gives it the
//! next number.

use std::collections::HashSet;

use minik8s_api::resource::{CONTROLLER_REVISIONS, DAEMON_SETS, STATEFUL_SETS};
use serde_json::{Value, json};

use super::owned::{self, controller_ref, controller_uid};
use crate::error::{ApiError, Result};
use crate::object;
use crate::patch::PatchType;
use crate::registry::{FieldValidation, Filter, ListParams, Registry};
use crate::strategy::Part;

/// The label on revisions, and on the pods made from them.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// The patch a revision stores: the owner's pod template, replacing the whole template.
pub fn template_patch(owner: &Value) -> Value {
    let mut template = owner["spec"]["template"].clone();
    if let Some(t) = template.as_object_mut() {
        t.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// The bytes Go's `json.Marshal` writes for `value`: keys sorted (serde_json's maps are
/// ordered) and `<`, `>`, `&` escaped as Go escapes them.
fn go_json(value: &Value) -> String {
    serde_json::to_string(value)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// FNV-1 (32-bit), as Go's `hash/fnv.New32`.
fn fnv32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(2_166_136_261u32, |h, b| {
        h.wrapping_mul(16_777_619) ^ u32::from(*b)
    })
}

/// Kubernetes' `rand.SafeEncodeString`: each character mapped onto letters and digits
/// that cannot spell words.
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// The hash of a revision's data with the collision count as probe
/// (`history.HashControllerRevision`).
pub fn hash(data: &Value, collision_count: i64) -> String {
    let mut bytes = go_json(data).into_bytes();
    bytes.extend(collision_count.to_string().bytes());
    safe_encode(&fnv32(&bytes).to_string())
}

/// `<owner>-<hash>`, the owner's name cut to 223 characters.
pub fn revision_name(owner: &str, hash: &str) -> String {
    let prefix: String = owner.chars().take(223).collect();
    format!("{prefix}-{hash}")
}

pub fn number(revision: &Value) -> i64 {
    revision["revision"].as_i64().unwrap_or(0)
}

/// The revisions `owner` controls, oldest first, orphans it matches adopted.
pub async fn owned_by(registry: &Registry, owner: &Value) -> Result<Vec<Value>> {
    let uid = object::meta_str(owner, "uid").unwrap_or("");
    let ns = object::namespace(owner).to_string();
    let filter = Filter::new(&CONTROLLER_REVISIONS, Some(ns), None, None)?;
    let (items, _, _) = registry
        .list(&CONTROLLER_REVISIONS, &filter, &ListParams::default())
        .await?;
    // Orphans the owner's selector matches are adopted (Kubernetes'
    // `ClaimControllerRevisions`), so a set deleted with its revisions orphaned and made
    // again keeps its history.
    let resource = if owner["kind"] == "DaemonSet" {
        &DAEMON_SETS
    } else {
        &STATEFUL_SETS
    };
    let selector = super::replicaset::selector(resource, owner);
    let mut mine = Vec::new();
    for r in items.into_iter().filter(|r| !owned::deleting(r)) {
        match controller_uid(&r) {
            Some(u) if u == uid => mine.push(r),
            None if !owned::deleting(owner)
                && selector
                    .as_ref()
                    .is_some_and(|s| s.matches(&object::labels(&r))) =>
            {
                if let Some(adopted) = adopt(registry, owner, &r).await? {
                    mine.push(adopted);
                }
            }
            _ => {}
        }
    }
    let mut items = mine;
    items.sort_by(|a, b| {
        number(a)
            .cmp(&number(b))
            .then_with(|| object::name(a).cmp(object::name(b)))
    });
    Ok(items)
}

async fn adopt(registry: &Registry, owner: &Value, revision: &Value) -> Result<Option<Value>> {
    let mut refs = revision["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    refs.push(controller_ref(owner));
    let patch = json!({"metadata": {
        "resourceVersion": object::meta_str(revision, "resourceVersion"),
        "ownerReferences": refs,
    }});
    match registry
        .patch(
            &CONTROLLER_REVISIONS,
            Some(object::namespace(revision)),
            object::name(revision),
            PatchType::Merge,
            &patch,
            Part::Main,
            FieldValidation::Ignore,
        )
        .await
    {
        Ok(w) => Ok(Some(w.object)),
        Err(ApiError::Conflict { .. } | ApiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The revision of the owner's current template: an existing one with the same data (the
/// newest keeps its number, an older one is renumbered to be the newest), or a new one
/// numbered after the newest. Names taken by other data raise `collision_count` and are
/// probed again. `revisions` is updated to include the result.
pub async fn update_revision(
    registry: &Registry,
    owner: &Value,
    revisions: &mut Vec<Value>,
    collision_count: &mut i64,
    annotations: Option<&Value>,
) -> Result<Value> {
    let data = template_patch(owner);
    let next = revisions.last().map_or(0, number) + 1;
    if let Some(i) = revisions.iter().rposition(|r| r["data"] == data) {
        if i == revisions.len() - 1 {
            return Ok(revisions[i].clone());
        }
        let patch = json!({
            "metadata": {"resourceVersion": object::meta_str(&revisions[i], "resourceVersion")},
            "revision": next,
        });
        let renumbered = registry
            .patch(
                &CONTROLLER_REVISIONS,
                Some(object::namespace(owner)),
                object::name(&revisions[i]),
                PatchType::Merge,
                &patch,
                Part::Main,
                FieldValidation::Ignore,
            )
            .await?
            .object;
        revisions.remove(i);
        revisions.push(renumbered.clone());
        return Ok(renumbered);
    }
    let ns = object::namespace(owner).to_string();
    loop {
        let hash = hash(&data, *collision_count);
        let name = revision_name(object::name(owner), &hash);
        let mut labels = object::string_map(owner["spec"]["template"]["metadata"].get("labels"));
        labels.insert(REVISION_HASH_LABEL.into(), hash);
        let mut revision = json!({
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": labels,
                "ownerReferences": [controller_ref(owner)],
            },
            "data": data,
            "revision": next,
        });
        if let Some(a) = annotations.filter(|a| a.as_object().is_some_and(|m| !m.is_empty())) {
            revision["metadata"]["annotations"] = a.clone();
        }
        match registry
            .create(
                &CONTROLLER_REVISIONS,
                Some(&ns),
                revision,
                FieldValidation::Ignore,
            )
            .await
        {
            Ok(w) => {
                revisions.push(w.object.clone());
                return Ok(w.object);
            }
            Err(ApiError::AlreadyExists { .. }) => {
                let existing = registry
                    .get(&CONTROLLER_REVISIONS, Some(&ns), &name)
                    .await?;
                if existing["data"] == data
                    && controller_uid(&existing) == object::meta_str(owner, "uid")
                {
                    revisions.push(existing.clone());
                    return Ok(existing);
                }
                *collision_count += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Deletes the oldest revisions beyond `limit` that are not in `live` (by name).
pub async fn truncate(
    registry: &Registry,
    revisions: &[Value],
    live: &HashSet<String>,
    limit: i64,
) -> Result<()> {
    let dead: Vec<&Value> = revisions
        .iter()
        .filter(|r| !live.contains(object::name(r)))
        .collect();
    let excess = dead
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(0));
    for r in dead.into_iter().take(excess) {
        owned::delete_exact(registry, &CONTROLLER_REVISIONS, r).await?;
    }
    Ok(())
}

/// The owner as it was at `revision`: its template replaced by the revision's.
pub fn apply(owner: &Value, revision: &Value) -> Value {
    let mut applied = owner.clone();
    let mut template = revision["data"]["spec"]["template"].clone();
    if let Some(t) = template.as_object_mut() {
        t.remove("$patch");
        applied["spec"]["template"] = template;
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1_matches_go() {
        // hash/fnv New32 of "" and "a".
        assert_eq!(fnv32(b""), 0x811c9dc5);
        assert_eq!(fnv32(b"a"), 0x050c5d7e);
    }

    #[test]
    fn hashes_are_safe_and_probe_dependent() {
        let owner = json!({"spec": {"template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "x", "command": ["a && b"]}]}}}});
        let data = template_patch(&owner);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert!(go_json(&data).contains("a \\u0026\\u0026 b"));
        let h = hash(&data, 0);
        assert!(
            h.bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
        );
        assert_ne!(h, hash(&data, 1));
        assert_eq!(h, hash(&data, 0));
        assert_eq!(revision_name("web", &h), format!("web-{h}"));
        let back = apply(&json!({"spec": {"template": {}}}), &json!({"data": data}));
        assert_eq!(back["spec"]["template"], owner["spec"]["template"]);
    }
}
