//! The node controller: gives every node a pod CIDR of its own, and marks nodes whose
//! kubelet went silent as `Ready=Unknown`.
//!
//! A pod CIDR is claimed by creating the store key `/registry/podcidrs/{cidr}` before it
//! is written into the node: creation is atomic, so two nodes can never get one range,
//! even with several API servers on one etcd. Claims whose node is gone are released.

use std::collections::{BTreeSet, HashMap};

use ipnet::Ipv4Net;
use minik8s_api::resource::NODES;
use minik8s_storage::{Error as StoreError, ListOptions};
use serde_json::{Value, json};

use super::ControllerConfig;
use crate::error::{ApiError, Result};
use crate::object;
use crate::patch::PatchType;
use crate::registry::{FieldValidation, Filter, ListParams, Registry};
use crate::strategy::Part;

const CLAIMS: &str = "/registry/podcidrs/";

fn claim_key(cidr: &Ipv4Net) -> String {
    format!("{CLAIMS}{}", cidr.to_string().replace('/', "-"))
}

fn store_err(e: StoreError) -> ApiError {
    ApiError::from_store(e, &NODES, "")
}

pub async fn reconcile(registry: &Registry, config: &ControllerConfig) -> Result<()> {
    // Claims first, then nodes: a claim seen here belongs to a node that already exists
    // in the node list below, unless that node is really gone.
    let claims = registry
        .store()
        .list(CLAIMS, ListOptions::default())
        .await
        .map_err(store_err)?
        .items;
    let all = Filter::new(&NODES, None, None, None)?;
    let (nodes, _, _) = registry.list(&NODES, &all, &ListParams::default()).await?;
    let uids: HashMap<String, &Value> = nodes
        .iter()
        .filter_map(|n| Some((object::meta_str(n, "uid")?.to_string(), n)))
        .collect();

    let mut used = BTreeSet::new();
    let mut claimed_by: HashMap<String, String> = HashMap::new();
    for kv in &claims {
        let claim: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
        let uid = claim["uid"].as_str().unwrap_or("").to_string();
        let cidr = claim["cidr"].as_str().unwrap_or("").to_string();
        let node_cidr = uids
            .get(&uid)
            .map(|n| object::path_string(n, "spec.podCIDR"));
        match node_cidr {
            // The node is gone, or got another range: release this one.
            None => release(registry, &kv.key).await?,
            Some(c) if !c.is_empty() && c != cidr => release(registry, &kv.key).await?,
            Some(_) => {
                used.insert(cidr.clone());
                claimed_by.insert(uid, cidr);
            }
        }
    }
    for node in &nodes {
        let uid = object::meta_str(node, "uid").unwrap_or("").to_string();
        let existing = object::path_string(node, "spec.podCIDR");
        if !existing.is_empty() {
            // A node created with its range already set: claim it, so that no other
            // node is given the same one.
            if !claimed_by.contains_key(&uid) {
                claim_existing(registry, node, &uid, &existing).await?;
                used.insert(existing);
            }
            continue;
        }
        if object::meta(node).is_some_and(|m| m.contains_key("deletionTimestamp")) {
            continue;
        }
        let cidr = match claimed_by.get(&uid) {
            Some(c) => c.clone(),
            None => match claim_free(registry, config, &used, node, &uid).await? {
                Some(c) => c,
                None => {
                    tracing::warn!(node = object::name(node), cluster = %config.cluster_cidr,
                        "no pod CIDR left for node");
                    continue;
                }
            },
        };
        used.insert(cidr.clone());
        // Only onto the node as listed: a concurrent assignment wins, and this claim stays
        // with the node's uid for the next round to find.
        let patch = json!({
            "metadata": {"resourceVersion": object::meta_str(node, "resourceVersion")},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        });
        match registry
            .patch(
                &NODES,
                None,
                object::name(node),
                PatchType::Merge,
                &patch,
                Part::Main,
                FieldValidation::Ignore,
            )
            .await
        {
            Ok(_) => tracing::info!(node = object::name(node), %cidr, "assigned pod CIDR"),
            Err(ApiError::NotFound { .. } | ApiError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    mark_silent_nodes(registry, config, &nodes).await
}

async fn claim_existing(registry: &Registry, node: &Value, uid: &str, cidr: &str) -> Result<()> {
    let Ok(net) = cidr.parse::<Ipv4Net>() else {
        return Ok(());
    };
    let claim = json!({"cidr": cidr, "node": object::name(node), "uid": uid});
    match registry
        .store()
        .create(
            &claim_key(&net),
            serde_json::to_vec(&claim).unwrap_or_default(),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::AlreadyExists { .. }) => {
            tracing::warn!(node = object::name(node), %cidr,
                "node was created with a pod CIDR that another node holds");
            Ok(())
        }
        Err(e) => Err(store_err(e)),
    }
}

async fn release(registry: &Registry, key: &str) -> Result<()> {
    match registry.store().delete(key, None).await {
        Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(store_err(e)),
    }
}

async fn claim_free(
    registry: &Registry,
    config: &ControllerConfig,
    used: &BTreeSet<String>,
    node: &Value,
    uid: &str,
) -> Result<Option<String>> {
    let Ok(subnets) = config.cluster_cidr.subnets(config.node_cidr_prefix) else {
        return Ok(None);
    };
    for net in subnets {
        let cidr = net.to_string();
        if used.contains(&cidr) {
            continue;
        }
        let claim = json!({"cidr": cidr, "node": object::name(node), "uid": uid});
        match registry
            .store()
            .create(
                &claim_key(&net),
                serde_json::to_vec(&claim).unwrap_or_default(),
            )
            .await
        {
            Ok(_) => return Ok(Some(cidr)),
            Err(StoreError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(store_err(e)),
        }
    }
    Ok(None)
}

/// Nodes whose kubelet stopped posting status become `Ready=Unknown`, as in Kubernetes.
async fn mark_silent_nodes(
    registry: &Registry,
    config: &ControllerConfig,
    nodes: &[Value],
) -> Result<()> {
    let now = jiff::Timestamp::now();
    for node in nodes {
        let Some(ready) = node["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        else {
            continue;
        };
        if ready["status"] == "Unknown" {
            continue;
        }
        let Some(beat) = ready["lastHeartbeatTime"]
            .as_str()
            .and_then(object::parse_time)
        else {
            continue;
        };
        let silent = now.as_second() - beat.as_second();
        if silent < config.node_monitor_grace.as_secs() as i64 {
            continue;
        }
        let stamp = object::now_rfc3339();
        // Only onto the node as listed: a heartbeat that arrived since wins.
        let patch = json!({
            "metadata": {"resourceVersion": object::meta_str(node, "resourceVersion")},
            "status": {"conditions": [{
            "type": "Ready",
            "status": "Unknown",
            "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.",
            "lastHeartbeatTime": ready["lastHeartbeatTime"],
            "lastTransitionTime": stamp,
        }]}});
        match registry
            .patch(
                &NODES,
                None,
                object::name(node),
                PatchType::Strategic,
                &patch,
                Part::Status,
                FieldValidation::Ignore,
            )
            .await
        {
            Ok(_) => tracing::warn!(
                node = object::name(node),
                silent,
                "node stopped posting status"
            ),
            Err(ApiError::NotFound { .. } | ApiError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
