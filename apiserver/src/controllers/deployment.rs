//! The Deployment controller, after Kubernetes' `pkg/controller/deployment`: one
//! ReplicaSet per pod template (`<deployment>-<pod-template-hash>`), adopted and released
//! by selector; a rollout that scales the new ReplicaSet up within `maxSurge` and the old
//! ones down within `maxUnavailable` (RollingUpdate), or all old ones to zero and, once
//! their pods are gone, the new one up (Recreate); proportional scaling of a Deployment
//! scaled mid-rollout or while paused; old ReplicaSets beyond `revisionHistoryLimit`
//! deleted; and the status, with the `Progressing` and `Available` conditions that
//! `kubectl rollout status` reads. The ReplicaSet controller makes the pods.
//!
//! Every round starts from what is stored: a write that loses a race ends the
//! Deployment's turn, and the next round (woken by that very change) starts over.

mod util;

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use minik8s_api::resource::{DEPLOYMENTS, PODS, REPLICA_SETS};
use minik8s_api::selector::LabelSelector;
use serde_json::Value;

use super::{events, owned};
use crate::error::{ApiError, Result};
use crate::registry::{FieldValidation, Filter, ListParams, Registry};
use crate::strategy::Part;
use util::*;

const COMPONENT: &str = "deployment-controller";
const PROGRESSING: &str = "Progressing";
const AVAILABLE: &str = "Available";
const REPLICA_FAILURE: &str = "ReplicaFailure";

pub async fn reconcile(registry: &Registry) -> Result<()> {
    let deployments = owned::list_all(registry, &DEPLOYMENTS).await?;
    if deployments.is_empty() {
        return Ok(());
    }
    let mut by_namespace: HashMap<String, Vec<ReplicaSet>> = HashMap::new();
    for rs in owned::list_all(registry, &REPLICA_SETS).await? {
        match serde_json::from_value::<ReplicaSet>(rs) {
            Ok(rs) => by_namespace
                .entry(rs.metadata.namespace.clone().unwrap_or_default())
                .or_default()
                .push(rs),
            Err(e) => tracing::warn!(error = %e, "stored ReplicaSet does not decode"),
        }
    }
    for d in deployments {
        let d: Deployment = match serde_json::from_value(d) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "stored Deployment does not decode");
                continue;
            }
        };
        let name = d.metadata.name.clone().unwrap_or_default();
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let candidates = by_namespace.get(&ns).map_or(&[][..], Vec::as_slice);
        match sync_deployment(registry, d, candidates).await {
            Ok(()) => {}
            Err(
                e @ (ApiError::Conflict { .. }
                | ApiError::NotFound { .. }
                | ApiError::AlreadyExists { .. }),
            ) => tracing::debug!(deployment = %name, error = %e, "deployment: next round"),
            Err(e) => tracing::warn!(deployment = %name, namespace = %ns, error = %e, "deployment"),
        }
    }
    Ok(())
}

/// Kubernetes' `syncDeployment`.
async fn sync_deployment(
    registry: &Registry,
    d: Deployment,
    candidates: &[ReplicaSet],
) -> Result<()> {
    let spec = d.spec.clone().unwrap_or_default();
    let selector = LabelSelector::from_label_selector(&spec.selector)
        .map_err(|e| ApiError::Internal(format!("deployment selector: {e}")))?;
    let mut s = Sync {
        registry,
        d,
        rss: Vec::new(),
    };
    if selector.is_empty() {
        let generation = s.d.metadata.generation.unwrap_or(0);
        let observed = s.d.status.as_ref().and_then(|st| st.observed_generation);
        if observed.unwrap_or(0) < generation {
            s.event(
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            .await;
            let mut d = s.d.clone();
            d.status
                .get_or_insert_with(Default::default)
                .observed_generation = Some(generation);
            s.update_status(d).await?;
        }
        return Ok(());
    }
    s.claim_replica_sets(&selector, candidates).await?;
    if owned::deleting(&s.value()) {
        let new = s.get_new_rs(false).await?;
        return s.sync_deployment_status(new).await;
    }
    s.check_paused_conditions().await?;
    if spec.paused == Some(true) || s.is_scaling_event().await? {
        return s.sync().await;
    }
    if strategy_type(&s.d) == "Recreate" {
        s.rollout_recreate(&selector).await
    } else {
        s.rollout_rolling().await
    }
}

/// One Deployment's round: the Deployment and its ReplicaSets as last written. ReplicaSets
/// are named by their index in `rss`, which only grows during a round.
struct Sync<'a> {
    registry: &'a Registry,
    d: Deployment,
    rss: Vec<ReplicaSet>,
}

impl Sync<'_> {
    fn name(&self) -> &str {
        self.d.metadata.name.as_deref().unwrap_or("")
    }

    fn namespace(&self) -> String {
        self.d.metadata.namespace.clone().unwrap_or_default()
    }

    fn uid(&self) -> &str {
        self.d.metadata.uid.as_deref().unwrap_or("")
    }

    fn value(&self) -> Value {
        serde_json::to_value(&self.d).unwrap_or(Value::Null)
    }

    fn replicas(&self) -> i32 {
        replicas(&self.d)
    }

    fn rs(&self, i: usize) -> &ReplicaSet {
        &self.rss[i]
    }

    fn rs_name(&self, i: usize) -> String {
        self.rss[i].metadata.name.clone().unwrap_or_default()
    }

    async fn event(&self, type_: &str, reason: &str, message: &str) {
        let value = self.value();
        events::record(
            self.registry,
            &value,
            "Deployment",
            type_,
            reason,
            message,
            COMPONENT,
        )
        .await;
    }

    /// Writes `rs` (read as `self.rss[i]`) back; it replaces the stored one only if that
    /// did not change meanwhile.
    async fn update_rs(&mut self, i: usize, rs: ReplicaSet) -> Result<()> {
        let written = self
            .registry
            .update(
                &REPLICA_SETS,
                Some(&self.namespace()),
                &rs.metadata.name.clone().unwrap_or_default(),
                to_value(&rs)?,
                Part::Main,
                FieldValidation::Ignore,
            )
            .await?;
        self.rss[i] = from_value(written.object)?;
        Ok(())
    }

    /// Writes the status (and annotations) of `d`, a changed copy of `self.d`.
    async fn update_status(&mut self, d: Deployment) -> Result<()> {
        let written = self
            .registry
            .update(
                &DEPLOYMENTS,
                Some(&self.namespace()),
                self.name(),
                to_value(&d)?,
                Part::Status,
                FieldValidation::Ignore,
            )
            .await?;
        self.d = from_value(written.object)?;
        Ok(())
    }

    /// Kubernetes' `ClaimReplicaSets`: keeps the ReplicaSets this Deployment controls and
    /// its selector matches, adopts matching orphans, and releases those it controls but
    /// no longer selects.
    async fn claim_replica_sets(
        &mut self,
        selector: &LabelSelector,
        candidates: &[ReplicaSet],
    ) -> Result<()> {
        let uid = self.uid().to_string();
        let deleting = self.d.metadata.deletion_timestamp.is_some();
        for rs in candidates {
            let labels = rs.metadata.labels.clone().unwrap_or_default();
            let matches = selector.matches(&labels);
            let controller = rs
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true));
            match controller {
                Some(c) if c.uid != uid => {}
                Some(_) if matches => self.rss.push(rs.clone()),
                Some(_) if deleting => {}
                Some(_) => {
                    let mut released = rs.clone();
                    if let Some(refs) = released.metadata.owner_references.as_mut() {
                        refs.retain(|o| o.uid != uid);
                    }
                    self.rss.push(released.clone());
                    let i = self.rss.len() - 1;
                    let result = self.update_rs(i, released).await;
                    self.rss.pop();
                    ignore_gone(result)?;
                }
                None if deleting || !matches || rs.metadata.deletion_timestamp.is_some() => {}
                None => {
                    // Adopt only for a Deployment that is still this one and not going.
                    let fresh = self
                        .registry
                        .get(&DEPLOYMENTS, Some(&self.namespace()), self.name())
                        .await?;
                    if object_uid(&fresh) != uid || owned::deleting(&fresh) {
                        return Ok(());
                    }
                    let mut adopted = rs.clone();
                    adopted
                        .metadata
                        .owner_references
                        .get_or_insert_with(Vec::new)
                        .push(self.controller_ref());
                    self.rss.push(rs.clone());
                    let i = self.rss.len() - 1;
                    if let Err(e) = self.update_rs(i, adopted).await {
                        self.rss.pop();
                        ignore_gone(Err(e))?;
                    }
                }
            }
        }
        Ok(())
    }

    fn controller_ref(&self) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".to_string(),
            kind: "Deployment".to_string(),
            name: self.name().to_string(),
            uid: self.uid().to_string(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// The ReplicaSet whose template is the Deployment's (the oldest, if several).
    fn find_new(&self) -> Option<usize> {
        let template = &self.d.spec.as_ref()?.template;
        let mut idx: Vec<usize> = (0..self.rss.len()).collect();
        idx.sort_by(|a, b| by_creation(self.rs(*a), self.rs(*b)));
        idx.into_iter().find(|i| {
            self.rs(*i)
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, template))
        })
    }

    fn old(&self, new: Option<usize>) -> Vec<usize> {
        (0..self.rss.len()).filter(|i| Some(*i) != new).collect()
    }

    fn all(&self, new: Option<usize>) -> Vec<usize> {
        let mut all = self.old(new);
        all.extend(new);
        all
    }

    fn active(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter()
            .copied()
            .filter(|i| rs_replicas(self.rs(*i)) > 0)
            .collect()
    }

    fn sum(&self, idx: &[usize], f: fn(&ReplicaSet) -> i32) -> i32 {
        idx.iter().map(|i| f(self.rs(*i))).sum()
    }

    /// Kubernetes' `getNewReplicaSet`: the new ReplicaSet with its revision and the
    /// Deployment's annotations brought up to date, made if `create` and missing.
    async fn get_new_rs(&mut self, create: bool) -> Result<Option<usize>> {
        let new = self.find_new();
        let old = self.old(new);
        let max_old = old.iter().map(|i| revision(self.rs(*i))).max().unwrap_or(0);
        let new_revision = max_old + 1;
        let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        if let Some(i) = new {
            let mut copy = self.rs(i).clone();
            let annotated = set_new_rs_annotations(&self.d, &mut copy, new_revision, true);
            let spec = copy.spec.get_or_insert_with(Default::default);
            if annotated || spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0) {
                spec.min_ready_seconds = min_ready;
                self.update_rs(i, copy).await?;
                return Ok(Some(i));
            }
            let mut d = self.d.clone();
            let mut needs_update =
                set_deployment_revision(&mut d, annotation(&copy, REVISION).unwrap_or(""));
            if has_progress_deadline(&d) && get_condition(d.status.as_ref(), PROGRESSING).is_none()
            {
                let message = format!("Found new replica set \"{}\"", self.rs_name(i));
                set_condition(
                    d.status.get_or_insert_with(Default::default),
                    condition(PROGRESSING, "True", "FoundNewReplicaSet", message),
                );
                needs_update = true;
            }
            if needs_update {
                self.update_status(d).await?;
            }
            return Ok(Some(i));
        }
        if !create {
            return Ok(None);
        }

        let spec = self.d.spec.clone().unwrap_or_default();
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&spec.template, collision_count);
        let mut template = spec.template.clone();
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(HASH_LABEL.to_string(), hash.clone());
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels = Some(labels.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.to_string(), hash.clone());
        let rs_name = format!("{}-{hash}", self.name());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: Some(self.namespace()),
                owner_references: Some(vec![self.controller_ref()]),
                labels: Some(labels),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: min_ready,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let current = self.sum(&old, rs_replicas);
        let count = new_rs_new_replicas(&self.d, current, 0);
        rs.spec.as_mut().expect("spec").replicas = Some(count);
        set_new_rs_annotations(&self.d, &mut rs, new_revision, false);

        let ns = self.namespace();
        let mut already_exists = false;
        let created = match self
            .registry
            .create(
                &REPLICA_SETS,
                Some(&ns),
                to_value(&rs)?,
                FieldValidation::Ignore,
            )
            .await
        {
            Ok(w) => from_value::<ReplicaSet>(w.object)?,
            Err(e @ ApiError::AlreadyExists { .. }) => {
                let existing: ReplicaSet = from_value(
                    self.registry
                        .get(&REPLICA_SETS, Some(&ns), &rs_name)
                        .await?,
                )?;
                let ours = existing
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.controller == Some(true) && o.uid == self.uid());
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(t, &spec.template));
                if !(ours && same) {
                    // A hash collision: the next round hashes with a higher count.
                    let mut d = self.d.clone();
                    let status = d.status.get_or_insert_with(Default::default);
                    status.collision_count = Some(collision_count.unwrap_or(0) + 1);
                    self.update_status(d).await?;
                    return Err(e);
                }
                already_exists = true;
                existing
            }
            Err(e) => {
                let message = format!("Failed to create new replica set \"{rs_name}\": {e}");
                if has_progress_deadline(&self.d) {
                    let mut d = self.d.clone();
                    set_condition(
                        d.status.get_or_insert_with(Default::default),
                        condition(
                            PROGRESSING,
                            "False",
                            "ReplicaSetCreateError",
                            message.clone(),
                        ),
                    );
                    let _ = self.update_status(d).await;
                }
                self.event("Warning", "ReplicaSetCreateError", &message)
                    .await;
                return Err(e);
            }
        };
        self.rss.push(created);
        let i = self.rss.len() - 1;
        if !already_exists && count > 0 {
            let message = format!("Scaled up replica set {rs_name} to {count}");
            self.event("Normal", "ScalingReplicaSet", &message).await;
        }
        let mut d = self.d.clone();
        let mut needs_update = set_deployment_revision(&mut d, &new_revision.to_string());
        if !already_exists && has_progress_deadline(&d) {
            let message = format!("Created new replica set \"{rs_name}\"");
            set_condition(
                d.status.get_or_insert_with(Default::default),
                condition(PROGRESSING, "True", "NewReplicaSetCreated", message),
            );
            needs_update = true;
        }
        if needs_update {
            self.update_status(d).await?;
        }
        Ok(Some(i))
    }

    /// Kubernetes' `checkPausedConditions`: `Progressing` is Unknown while paused, so the
    /// deadline does not run out during a pause.
    async fn check_paused_conditions(&mut self) -> Result<()> {
        if !has_progress_deadline(&self.d) {
            return Ok(());
        }
        let current = reason(get_condition(self.d.status.as_ref(), PROGRESSING));
        if current == Some("ProgressDeadlineExceeded") {
            return Ok(());
        }
        let paused = self.d.spec.as_ref().and_then(|s| s.paused) == Some(true);
        let paused_condition = current == Some("DeploymentPaused");
        let c = if paused && !paused_condition {
            condition(
                PROGRESSING,
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
            )
        } else if !paused && paused_condition {
            condition(
                PROGRESSING,
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
            )
        } else {
            return Ok(());
        };
        let mut d = self.d.clone();
        set_condition(d.status.get_or_insert_with(Default::default), c);
        self.update_status(d).await
    }

    /// A ReplicaSet with replicas was sized for another number of replicas than the
    /// Deployment now wants.
    async fn is_scaling_event(&mut self) -> Result<bool> {
        let new = self.get_new_rs(false).await?;
        let replicas = self.replicas();
        Ok(self.active(&self.all(new)).iter().any(|i| {
            annotation(self.rs(*i), DESIRED_REPLICAS)
                .and_then(|v| v.parse::<i32>().ok())
                .is_some_and(|desired| desired != replicas)
        }))
    }

    /// A scaling event, or a paused Deployment: sizes change, templates do not.
    async fn sync(&mut self) -> Result<()> {
        let new = self.get_new_rs(false).await?;
        self.scale(new).await?;
        if self.d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            self.cleanup(&self.old(new)).await?;
        }
        self.sync_deployment_status(new).await
    }

    /// Kubernetes' `scale`: one active ReplicaSet takes the whole count; otherwise the
    /// difference is shared out in proportion to what each had of the size it was made
    /// for (its `max-replicas`), largest first, the rounding left-over to the largest.
    async fn scale(&mut self, new: Option<usize>) -> Result<()> {
        let replicas = self.replicas();
        let old = self.old(new);
        if let Some(i) = self.active_or_latest(new, &old) {
            if rs_replicas(self.rs(i)) != replicas {
                self.scale_and_record(i, replicas).await?;
            }
            return Ok(());
        }
        if let Some(n) = new
            && self.is_saturated(n)
        {
            for i in self.active(&old) {
                self.scale_and_record(i, 0).await?;
            }
            return Ok(());
        }
        if !is_rolling_update(&self.d) {
            return Ok(());
        }
        let mut all = self.active(&self.all(new));
        let total = self.sum(&all, rs_replicas);
        let allowed = if replicas > 0 {
            replicas + max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed - total;
        let operation = if to_add > 0 {
            all.sort_by(|a, b| by_size_newer(self.rs(*a), self.rs(*b)));
            "up"
        } else if to_add < 0 {
            all.sort_by(|a, b| by_size_older(self.rs(*a), self.rs(*b)));
            "down"
        } else {
            ""
        };
        let mut added = 0;
        let mut sizes = Vec::with_capacity(all.len());
        for i in &all {
            let rs = self.rs(*i);
            let share = if to_add != 0 {
                proportion(rs, &self.d, to_add, added)
            } else {
                0
            };
            added += share;
            sizes.push(rs_replicas(rs) + share);
        }
        if to_add != 0 && !sizes.is_empty() {
            sizes[0] = (sizes[0] + to_add - added).max(0);
        }
        for (i, size) in all.into_iter().zip(sizes) {
            self.scale_rs(i, size, operation).await?;
        }
        Ok(())
    }

    fn active_or_latest(&self, new: Option<usize>, old: &[usize]) -> Option<usize> {
        let mut newest_first = old.to_vec();
        newest_first.sort_by(|a, b| by_creation(self.rs(*b), self.rs(*a)));
        let mut candidates = newest_first.clone();
        candidates.extend(new);
        let active = self.active(&candidates);
        match active.len() {
            0 => new.or_else(|| newest_first.first().copied()),
            1 => Some(active[0]),
            _ => None,
        }
    }

    fn is_saturated(&self, i: usize) -> bool {
        let rs = self.rs(i);
        let replicas = self.replicas();
        annotation(rs, DESIRED_REPLICAS).and_then(|v| v.parse::<i32>().ok()) == Some(replicas)
            && rs_replicas(rs) == replicas
            && rs_available(rs) == replicas
    }

    async fn scale_and_record(&mut self, i: usize, to: i32) -> Result<bool> {
        let from = rs_replicas(self.rs(i));
        if from == to {
            return Ok(false);
        }
        let operation = if from < to { "up" } else { "down" };
        self.scale_rs(i, to, operation).await
    }

    /// Sets a ReplicaSet's size and replica annotations; an event when the size changed.
    async fn scale_rs(&mut self, i: usize, to: i32, operation: &str) -> Result<bool> {
        let desired = self.replicas();
        let max = desired + max_surge(&self.d);
        let from = rs_replicas(self.rs(i));
        let resize = from != to;
        if !resize && !replicas_annotations_need_update(self.rs(i), desired, max) {
            return Ok(false);
        }
        let mut copy = self.rs(i).clone();
        copy.spec.get_or_insert_with(Default::default).replicas = Some(to);
        set_replicas_annotations(&mut copy, desired, max);
        self.update_rs(i, copy).await?;
        if resize {
            let message = format!(
                "Scaled {operation} replica set {} to {to} from {from}",
                self.rs_name(i)
            );
            self.event("Normal", "ScalingReplicaSet", &message).await;
        }
        Ok(resize)
    }

    /// Kubernetes' `rolloutRolling`.
    async fn rollout_rolling(&mut self) -> Result<()> {
        let Some(new) = self.get_new_rs(true).await? else {
            return Ok(());
        };
        if self.reconcile_new(new).await? || self.reconcile_old(new).await? {
            return self.sync_rollout_status(Some(new)).await;
        }
        if self.complete(self.d.status.as_ref()) {
            self.cleanup(&self.old(Some(new))).await?;
        }
        self.sync_rollout_status(Some(new)).await
    }

    /// Scales the new ReplicaSet up as far as the surge allows (or down to the
    /// Deployment's size).
    async fn reconcile_new(&mut self, new: usize) -> Result<bool> {
        let replicas = self.replicas();
        let current = rs_replicas(self.rs(new));
        if current == replicas {
            return Ok(false);
        }
        if current > replicas {
            return self.scale_and_record(new, replicas).await;
        }
        let total = self.sum(&self.all(Some(new)), rs_replicas);
        let count = new_rs_new_replicas(&self.d, total, current);
        self.scale_and_record(new, count).await
    }

    /// Scales old ReplicaSets down as far as availability allows, the unhealthy replicas
    /// first.
    async fn reconcile_old(&mut self, new: usize) -> Result<bool> {
        let old = self.active(&self.old(Some(new)));
        if self.sum(&old, rs_replicas) == 0 {
            return Ok(false);
        }
        let all_pods = self.sum(&self.all(Some(new)), rs_replicas);
        let min_available = self.replicas() - max_unavailable(&self.d);
        let new_unavailable = rs_replicas(self.rs(new)) - rs_available(self.rs(new));
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        let cleaned = self.cleanup_unhealthy(&old, max_scaled_down).await?;
        let scaled = self.scale_down_old(new, &old).await?;
        Ok(cleaned + scaled > 0)
    }

    async fn cleanup_unhealthy(&mut self, old: &[usize], max: i32) -> Result<i32> {
        let mut old = old.to_vec();
        old.sort_by(|a, b| by_creation(self.rs(*a), self.rs(*b)));
        let mut total = 0;
        for i in old {
            if total >= max {
                break;
            }
            let (spec, available) = (rs_replicas(self.rs(i)), rs_available(self.rs(i)));
            if spec == 0 || spec == available {
                continue;
            }
            let n = (max - total).min(spec - available);
            self.scale_and_record(i, spec - n).await?;
            total += n;
        }
        Ok(total)
    }

    async fn scale_down_old(&mut self, new: usize, old: &[usize]) -> Result<i32> {
        let min_available = self.replicas() - max_unavailable(&self.d);
        let mut all = old.to_vec();
        all.push(new);
        let available = self.sum(&all, rs_available);
        if available <= min_available {
            return Ok(0);
        }
        let to_scale_down = available - min_available;
        let mut old = old.to_vec();
        old.sort_by(|a, b| by_creation(self.rs(*a), self.rs(*b)));
        let mut total = 0;
        for i in old {
            if total >= to_scale_down {
                break;
            }
            let spec = rs_replicas(self.rs(i));
            if spec == 0 {
                continue;
            }
            let n = spec.min(to_scale_down - total);
            self.scale_and_record(i, spec - n).await?;
            total += n;
        }
        Ok(total)
    }

    /// Kubernetes' `rolloutRecreate`.
    async fn rollout_recreate(&mut self, selector: &LabelSelector) -> Result<()> {
        let new = self.get_new_rs(false).await?;
        let mut scaled_down = false;
        for i in self.active(&self.old(new)) {
            scaled_down |= self.scale_and_record(i, 0).await?;
        }
        if scaled_down || self.old_pods_running(new, selector).await? {
            return self.sync_rollout_status(new).await;
        }
        let new = match new {
            Some(n) => n,
            None => match self.get_new_rs(true).await? {
                Some(n) => n,
                None => return Ok(()),
            },
        };
        let replicas = self.replicas();
        self.scale_and_record(new, replicas).await?;
        if self.complete(self.d.status.as_ref()) {
            self.cleanup(&self.old(Some(new))).await?;
        }
        self.sync_rollout_status(Some(new)).await
    }

    /// Whether pods of the old ReplicaSets still exist (and have not finished).
    async fn old_pods_running(&self, new: Option<usize>, selector: &LabelSelector) -> Result<bool> {
        let old = self.old(new);
        if self.sum(&old, rs_actual) > 0 {
            return Ok(true);
        }
        let old_uids: Vec<&str> = old
            .iter()
            .filter_map(|i| self.rs(*i).metadata.uid.as_deref())
            .collect();
        let filter = Filter::new(
            &PODS,
            Some(self.namespace()),
            Some(&selector.to_string()),
            None,
        )?;
        let (pods, _, _) = self
            .registry
            .list(&PODS, &filter, &ListParams::default())
            .await?;
        Ok(pods.iter().any(|p| {
            owned::controller_uid(p).is_some_and(|u| old_uids.contains(&u))
                && !matches!(owned::pod_phase(p), "Succeeded" | "Failed")
        }))
    }

    /// Deletes the oldest old ReplicaSets with nothing left beyond `revisionHistoryLimit`.
    async fn cleanup(&mut self, old: &[usize]) -> Result<()> {
        let Some(limit) = revision_history_limit(&self.d) else {
            return Ok(());
        };
        let mut cleanable: Vec<usize> = old
            .iter()
            .copied()
            .filter(|i| self.rs(*i).metadata.deletion_timestamp.is_none())
            .collect();
        let diff = cleanable.len() as i64 - i64::from(limit);
        if diff <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| by_revision(self.rs(*a), self.rs(*b)));
        for i in cleanable.into_iter().take(diff as usize) {
            let rs = self.rs(i);
            let observed = rs.status.as_ref().and_then(|s| s.observed_generation);
            if rs_actual(rs) != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed.unwrap_or(0)
            {
                continue;
            }
            owned::delete_exact(self.registry, &REPLICA_SETS, &to_value(rs)?).await?;
        }
        Ok(())
    }

    /// Kubernetes' `DeploymentComplete`: every replica updated and available, and the
    /// latest spec observed.
    fn complete(&self, status: Option<&DeploymentStatus>) -> bool {
        let Some(s) = status else {
            return false;
        };
        let replicas = self.replicas();
        s.updated_replicas.unwrap_or(0) == replicas
            && s.replicas.unwrap_or(0) == replicas
            && s.available_replicas.unwrap_or(0) == replicas
            && s.observed_generation.unwrap_or(0) >= self.d.metadata.generation.unwrap_or(0)
    }

    /// Kubernetes' `calculateStatus`.
    fn calculate_status(&self, new: Option<usize>) -> DeploymentStatus {
        let all = self.all(new);
        let available = self.sum(&all, rs_available);
        let unavailable = (self.sum(&all, rs_replicas) - available).max(0);
        let current = self.d.status.clone().unwrap_or_default();
        let nz = |n: i32| (n != 0).then_some(n);
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: nz(self.sum(&all, rs_actual)),
            updated_replicas: nz(new.map_or(0, |n| rs_actual(self.rs(n)))),
            ready_replicas: nz(self.sum(&all, rs_ready)),
            available_replicas: nz(available),
            unavailable_replicas: nz(unavailable),
            collision_count: current.collision_count,
            conditions: current.conditions.clone(),
            terminating_replicas: None,
        };
        let c = if available >= self.replicas() - max_unavailable(&self.d) {
            condition(
                AVAILABLE,
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
            )
        } else {
            condition(
                AVAILABLE,
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
            )
        };
        set_condition(&mut status, c);
        status
    }

    async fn write_status(&mut self, status: DeploymentStatus) -> Result<()> {
        if self.d.status.clone().unwrap_or_default() == status {
            return Ok(());
        }
        let mut d = self.d.clone();
        d.status = Some(status);
        self.update_status(d).await
    }

    async fn sync_deployment_status(&mut self, new: Option<usize>) -> Result<()> {
        let status = self.calculate_status(new);
        self.write_status(status).await
    }

    /// Kubernetes' `syncRolloutStatus`: the status, and `Progressing` from whether the
    /// rollout finished, moved since the last look, or has not moved for longer than the
    /// progress deadline.
    async fn sync_rollout_status(&mut self, new: Option<usize>) -> Result<()> {
        let mut status = self.calculate_status(new);
        if !has_progress_deadline(&self.d) {
            remove_condition(&mut status, PROGRESSING);
        }
        let current = get_condition(self.d.status.as_ref(), PROGRESSING).cloned();
        let complete_before = status.replicas == status.updated_replicas
            && reason(current.as_ref()) == Some("NewReplicaSetAvailable");
        let subject = match new {
            Some(n) => format!("ReplicaSet \"{}\"", self.rs_name(n)),
            None => format!("Deployment \"{}\"", self.name()),
        };
        if has_progress_deadline(&self.d) && !complete_before {
            if self.complete(Some(&status)) {
                let c = condition(
                    PROGRESSING,
                    "True",
                    "NewReplicaSetAvailable",
                    format!("{subject} has successfully progressed."),
                );
                set_condition(&mut status, c);
            } else if self.progressing(&status) {
                let mut c = condition(
                    PROGRESSING,
                    "True",
                    "ReplicaSetUpdated",
                    format!("{subject} is progressing."),
                );
                if let Some(cur) = &current {
                    if cur.status == "True" {
                        c.last_transition_time = cur.last_transition_time.clone();
                    }
                    remove_condition(&mut status, PROGRESSING);
                }
                set_condition(&mut status, c);
            } else if self.timed_out(current.as_ref()) {
                let c = condition(
                    PROGRESSING,
                    "False",
                    "ProgressDeadlineExceeded",
                    format!("{subject} has timed out progressing."),
                );
                set_condition(&mut status, c);
            }
        }
        match self.replica_failure(new) {
            Some(c) => set_condition(&mut status, c),
            None => remove_condition(&mut status, REPLICA_FAILURE),
        }
        self.write_status(status).await
    }

    /// Kubernetes' `DeploymentProgressing`: more updated, ready or available replicas,
    /// or fewer old ones, than the status last said.
    fn progressing(&self, new: &DeploymentStatus) -> bool {
        let old = self.d.status.clone().unwrap_or_default();
        let n = |v: Option<i32>| v.unwrap_or(0);
        let old_old = n(old.replicas) - n(old.updated_replicas);
        let new_old = n(new.replicas) - n(new.updated_replicas);
        n(new.updated_replicas) > n(old.updated_replicas)
            || new_old < old_old
            || n(new.ready_replicas) > n(old.ready_replicas)
            || n(new.available_replicas) > n(old.available_replicas)
    }

    /// Kubernetes' `DeploymentTimedOut`: no progress recorded for longer than
    /// `progressDeadlineSeconds`.
    fn timed_out(&self, current: Option<&k8s_openapi::api::apps::v1::DeploymentCondition>) -> bool {
        let Some(c) = current else {
            return false;
        };
        match c.reason.as_deref() {
            Some("NewReplicaSetAvailable") => return false,
            Some("ProgressDeadlineExceeded") => return true,
            _ => {}
        }
        let deadline = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(0);
        c.last_update_time.as_ref().is_some_and(|from| {
            from.0.as_second() + i64::from(deadline) < jiff::Timestamp::now().as_second()
        })
    }

    /// The new ReplicaSet's `ReplicaFailure` condition, else the first old one's.
    fn replica_failure(
        &self,
        new: Option<usize>,
    ) -> Option<k8s_openapi::api::apps::v1::DeploymentCondition> {
        let failure = |i: usize| {
            self.rs(i)
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == REPLICA_FAILURE)
                .cloned()
        };
        let c = new
            .and_then(failure)
            .or_else(|| self.all(new).into_iter().find_map(failure))?;
        Some(k8s_openapi::api::apps::v1::DeploymentCondition {
            type_: c.type_,
            status: c.status,
            reason: c.reason,
            message: c.message,
            last_update_time: c.last_transition_time.clone(),
            last_transition_time: c.last_transition_time,
        })
    }
}

/// Kubernetes' `NewRSNewReplicas`: for RollingUpdate, as many as the surge allows on top
/// of `current` (every ReplicaSet's replicas) but no more than wanted; for Recreate, all.
fn new_rs_new_replicas(d: &Deployment, current: i32, new_replicas: i32) -> i32 {
    let replicas = replicas(d);
    if !is_rolling_update(d) {
        return replicas;
    }
    let surge = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_surge.as_ref());
    let max_total = replicas + scaled_value(surge, replicas, true);
    if current >= max_total {
        return new_replicas;
    }
    new_replicas + (max_total - current).min(replicas - new_replicas)
}

fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let annotations = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if annotations.get(REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(REVISION.to_string(), revision.to_string());
    true
}

fn object_uid(obj: &Value) -> &str {
    crate::object::meta_str(obj, "uid").unwrap_or("")
}

/// A ReplicaSet that went meanwhile is no longer this round's business.
fn ignore_gone(result: Result<()>) -> Result<()> {
    match result {
        Err(ApiError::NotFound { .. }) => Ok(()),
        other => other,
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| ApiError::Internal(format!("encoding: {e}")))
}

fn from_value<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| ApiError::Internal(format!("decoding: {e}")))
}
