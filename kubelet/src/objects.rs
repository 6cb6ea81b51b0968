//! The ConfigMaps and Secrets that pods use, kept current by one watch of each kind, and
//! who uses them: a change to one wakes the workers of the pods that refer to it, so that
//! a container waiting for a missing object starts when it appears and mounted files
//! follow edits within moments — with no polling, so an idle kubelet stays idle.
//!
//! Kubernetes' kubelet keeps a watch per referenced object (`watch-based` manager); one
//! watch per kind costs less here and answers the same questions.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use minik8s_client::{Api, Client, ListParams, WatcherEvent, watcher};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::pod::config_env::EnvSources;
use crate::pod::spec::spec;

/// How long a start waits for the first list before it fails (and is retried).
const FIRST_LIST_WAIT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    /// The resource as Kubernetes' kubelet names it in its errors
    /// (`configmap "x" not found`).
    pub fn resource(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
        }
    }

    /// Kubernetes' "not found" message for an object of this kind.
    pub fn not_found(self, name: &str) -> String {
        format!("{} \"{name}\" not found", self.resource())
    }
}

/// One object a pod refers to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

type Name = (String, String);

struct User {
    uses: HashSet<ObjectKey>,
    wake: Weak<Notify>,
}

#[derive(Default)]
struct State {
    config_maps: HashMap<Name, ConfigMap>,
    secrets: HashMap<Name, Secret>,
    /// Pod uid → what it uses.
    users: HashMap<String, User>,
}

/// The cluster's ConfigMaps and Secrets, as the kubelet's pods need them.
pub struct ConfigObjects {
    state: Mutex<State>,
    /// Whether each kind has been listed once.
    listed: watch::Sender<(bool, bool)>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Name {
    (
        meta.namespace.clone().unwrap_or_else(|| "default".into()),
        meta.name.clone().unwrap_or_default(),
    )
}

/// The ConfigMaps and Secrets a pod refers to: in its containers' `env` and `envFrom`
/// and in its `configMap` and `secret` volumes.
pub fn referenced(pod: &Pod) -> HashSet<ObjectKey> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let key = |kind, name: &str| ObjectKey {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    let s = spec(pod);
    let mut out = HashSet::new();
    let containers = s.init_containers.iter().flatten().chain(&s.containers);
    for c in containers {
        out.extend(container_refs(c).into_iter().map(|(k, n)| key(k, &n)));
    }
    for v in s.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            out.insert(key(Kind::ConfigMap, &cm.name));
        }
        if let Some(secret) = &v.secret {
            out.insert(key(
                Kind::Secret,
                secret.secret_name.as_deref().unwrap_or_default(),
            ));
        }
    }
    out
}

/// The objects one container's environment refers to.
fn container_refs(c: &Container) -> Vec<(Kind, String)> {
    let mut out = Vec::new();
    for from in c.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            out.push((Kind::ConfigMap, r.name.clone()));
        }
        if let Some(r) = &from.secret_ref {
            out.push((Kind::Secret, r.name.clone()));
        }
    }
    for var in c.env.iter().flatten() {
        let Some(from) = &var.value_from else {
            continue;
        };
        if let Some(r) = &from.config_map_key_ref {
            out.push((Kind::ConfigMap, r.name.clone()));
        }
        if let Some(r) = &from.secret_key_ref {
            out.push((Kind::Secret, r.name.clone()));
        }
    }
    out
}

impl ConfigObjects {
    /// Objects that follow the API server's.
    pub fn follow(client: Client) -> Arc<ConfigObjects> {
        let objects = Self::fixed(Vec::new(), Vec::new());
        objects.listed.send_replace((false, false));
        let tasks = vec![
            tokio::spawn(follow_config_maps(Arc::downgrade(&objects), client.clone())),
            tokio::spawn(follow_secrets(Arc::downgrade(&objects), client)),
        ];
        *objects.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
        objects
    }

    /// These objects (no API server, or a test); [`ConfigObjects::apply_config_map`]
    /// and the like change them.
    pub fn fixed(config_maps: Vec<ConfigMap>, secrets: Vec<Secret>) -> Arc<ConfigObjects> {
        let objects = ConfigObjects {
            state: Mutex::new(State::default()),
            listed: watch::channel((true, true)).0,
            tasks: Mutex::new(Vec::new()),
        };
        objects.replace_config_maps(config_maps);
        objects.replace_secrets(secrets);
        Arc::new(objects)
    }

    /// As if each kind had been listed or not (tests of what waits for a list).
    #[cfg(test)]
    pub(crate) fn set_listed(&self, config_maps: bool, secrets: bool) {
        self.listed.send_replace((config_maps, secrets));
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits a little for the first list of both kinds; fails as Kubernetes does
    /// without it.
    pub async fn wait_listed(&self) -> Result<(), String> {
        let ready = |l: &(bool, bool)| l.0 && l.1;
        if ready(&self.listed.borrow()) {
            return Ok(());
        }
        let mut rx = self.listed.subscribe();
        match tokio::time::timeout(FIRST_LIST_WAIT, rx.wait_for(ready)).await {
            Ok(Ok(_)) => Ok(()),
            _ => {
                let (maps, secrets) = *self.listed.borrow();
                let kind = if maps && !secrets {
                    Kind::Secret
                } else {
                    Kind::ConfigMap
                };
                Err(format!(
                    "failed to sync {} cache: timed out waiting for the condition",
                    kind.resource()
                ))
            }
        }
    }

    pub fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        let key = (namespace.to_string(), name.to_string());
        self.lock().config_maps.get(&key).cloned()
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        let key = (namespace.to_string(), name.to_string());
        self.lock().secrets.get(&key).cloned()
    }

    /// What a container's environment may read: the objects it refers to as they are
    /// now, or their absence.
    pub async fn env_sources(&self, namespace: &str, c: &Container) -> Result<EnvSources, String> {
        let refs = container_refs(c);
        let mut sources = EnvSources::new(namespace);
        if refs.is_empty() {
            return Ok(sources);
        }
        self.wait_listed().await?;
        for (kind, name) in refs {
            match kind {
                Kind::ConfigMap => {
                    let cm = self.config_map(namespace, &name);
                    sources.add_config_map(&name, cm.as_ref());
                }
                Kind::Secret => {
                    let secret = self.secret(namespace, &name);
                    sources.add_secret(&name, secret.as_ref());
                }
            }
        }
        Ok(sources)
    }

    /// Records that the pod `uid` uses these objects: a change to any of them notifies
    /// `wake`. Replaces what the pod used before.
    pub fn use_objects(&self, uid: &str, uses: HashSet<ObjectKey>, wake: &Arc<Notify>) {
        let mut state = self.lock();
        if uses.is_empty() {
            state.users.remove(uid);
            return;
        }
        state.users.insert(
            uid.to_string(),
            User {
                uses,
                wake: Arc::downgrade(wake),
            },
        );
    }

    /// The pod is gone.
    pub fn forget(&self, uid: &str) {
        self.lock().users.remove(uid);
    }

    fn changed(state: &mut State, key: &ObjectKey) {
        state.users.retain(|_, user| {
            if !user.uses.contains(key) {
                return true;
            }
            match user.wake.upgrade() {
                Some(wake) => {
                    wake.notify_one();
                    true
                }
                None => false,
            }
        });
    }

    fn key(kind: Kind, (namespace, name): &Name) -> ObjectKey {
        ObjectKey {
            kind,
            namespace: namespace.clone(),
            name: name.clone(),
        }
    }

    pub fn apply_config_map(&self, cm: ConfigMap) {
        let name = name_of(&cm.metadata);
        let mut state = self.lock();
        if state.config_maps.get(&name) != Some(&cm) {
            Self::changed(&mut state, &Self::key(Kind::ConfigMap, &name));
            state.config_maps.insert(name, cm);
        }
    }

    pub fn remove_config_map(&self, cm: &ConfigMap) {
        let name = name_of(&cm.metadata);
        let mut state = self.lock();
        if state.config_maps.remove(&name).is_some() {
            Self::changed(&mut state, &Self::key(Kind::ConfigMap, &name));
        }
    }

    pub fn apply_secret(&self, secret: Secret) {
        let name = name_of(&secret.metadata);
        let mut state = self.lock();
        if state.secrets.get(&name) != Some(&secret) {
            Self::changed(&mut state, &Self::key(Kind::Secret, &name));
            state.secrets.insert(name, secret);
        }
    }

    pub fn remove_secret(&self, secret: &Secret) {
        let name = name_of(&secret.metadata);
        let mut state = self.lock();
        if state.secrets.remove(&name).is_some() {
            Self::changed(&mut state, &Self::key(Kind::Secret, &name));
        }
    }

    /// A fresh list: what changed, appeared or went away since wakes its users.
    fn replace_config_maps(&self, list: Vec<ConfigMap>) {
        let mut state = self.lock();
        let new: HashMap<Name, ConfigMap> = list
            .into_iter()
            .map(|cm| (name_of(&cm.metadata), cm))
            .collect();
        let old = std::mem::take(&mut state.config_maps);
        for name in old.keys().chain(new.keys()) {
            if old.get(name) != new.get(name) {
                Self::changed(&mut state, &Self::key(Kind::ConfigMap, name));
            }
        }
        state.config_maps = new;
    }

    fn replace_secrets(&self, list: Vec<Secret>) {
        let mut state = self.lock();
        let new: HashMap<Name, Secret> = list
            .into_iter()
            .map(|s| (name_of(&s.metadata), s))
            .collect();
        let old = std::mem::take(&mut state.secrets);
        for name in old.keys().chain(new.keys()) {
            if old.get(name) != new.get(name) {
                Self::changed(&mut state, &Self::key(Kind::Secret, name));
            }
        }
        state.secrets = new;
    }
}

impl Drop for ConfigObjects {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

async fn follow_config_maps(objects: Weak<ConfigObjects>, client: Client) {
    let mut events = watcher(Api::<ConfigMap>::all(client), ListParams::default()).boxed();
    while let Some(event) = events.next().await {
        let Some(objects) = objects.upgrade() else {
            return;
        };
        match event {
            Ok(WatcherEvent::Restarted(list)) => {
                objects.replace_config_maps(list);
                objects.listed.send_modify(|l| l.0 = true);
            }
            Ok(WatcherEvent::Applied(cm)) => objects.apply_config_map(cm),
            Ok(WatcherEvent::Deleted(cm)) => objects.remove_config_map(&cm),
            Err(e) => tracing::warn!(error = %e, "watching the configmaps"),
        }
    }
}

async fn follow_secrets(objects: Weak<ConfigObjects>, client: Client) {
    let mut events = watcher(Api::<Secret>::all(client), ListParams::default()).boxed();
    while let Some(event) = events.next().await {
        let Some(objects) = objects.upgrade() else {
            return;
        };
        match event {
            Ok(WatcherEvent::Restarted(list)) => {
                objects.replace_secrets(list);
                objects.listed.send_modify(|l| l.1 = true);
            }
            Ok(WatcherEvent::Applied(secret)) => objects.apply_secret(secret),
            Ok(WatcherEvent::Deleted(secret)) => objects.remove_secret(&secret),
            Err(e) => tracing::warn!(error = %e, "watching the secrets"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config_map(name: &str, data: serde_json::Value) -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
                                      "data": data}))
        .unwrap()
    }

    #[test]
    fn a_pod_refers_to_its_env_and_volume_sources() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "shop"},
            "spec": {
                "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s1"}}]}],
                "containers": [{"name": "c",
                    "envFrom": [{"configMapRef": {"name": "cm1"}, "prefix": "X_"}],
                    "env": [
                        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm2", "key": "k"}}},
                        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k"}}},
                        {"name": "C", "value": "plain"}
                    ]}],
                "volumes": [
                    {"name": "v1", "configMap": {"name": "cm3"}},
                    {"name": "v2", "secret": {"secretName": "s3"}},
                    {"name": "v3", "emptyDir": {}}
                ]}
        }))
        .unwrap();
        let mut names: Vec<String> = referenced(&pod)
            .into_iter()
            .inspect(|k| assert_eq!(k.namespace, "shop"))
            .map(|k| format!("{}/{}", k.kind.resource(), k.name))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "configmap/cm1",
                "configmap/cm2",
                "configmap/cm3",
                "secret/s1",
                "secret/s2",
                "secret/s3"
            ]
        );
    }

    #[tokio::test]
    async fn a_change_wakes_the_pods_that_use_the_object_only() {
        let objects = ConfigObjects::fixed(vec![config_map("a", json!({"k": "1"}))], vec![]);
        let wake_a = Arc::new(Notify::new());
        let wake_b = Arc::new(Notify::new());
        let key = |name: &str| ObjectKey {
            kind: Kind::ConfigMap,
            namespace: "default".into(),
            name: name.into(),
        };
        objects.use_objects("pa", HashSet::from([key("a")]), &wake_a);
        objects.use_objects("pb", HashSet::from([key("b")]), &wake_b);
        let woken = |n: &Arc<Notify>| {
            let n = n.clone();
            async move {
                tokio::time::timeout(Duration::from_millis(50), n.notified())
                    .await
                    .is_ok()
            }
        };
        // The same object again wakes nobody.
        objects.apply_config_map(config_map("a", json!({"k": "1"})));
        assert!(!woken(&wake_a).await);
        objects.apply_config_map(config_map("a", json!({"k": "2"})));
        assert!(woken(&wake_a).await);
        assert!(!woken(&wake_b).await);
        // Appearing, in a fresh list, wakes its waiter.
        objects.replace_config_maps(vec![
            config_map("a", json!({"k": "2"})),
            config_map("b", json!({})),
        ]);
        assert!(woken(&wake_b).await);
        assert!(!woken(&wake_a).await);
        assert_eq!(
            objects.config_map("default", "b").unwrap().metadata.name,
            Some("b".into())
        );
        objects.forget("pb");
        objects.remove_config_map(&config_map("b", json!({})));
        assert!(!woken(&wake_b).await);
        assert!(objects.config_map("default", "b").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn never_listed_fails_as_kubernetes_does() {
        let objects = ConfigObjects::fixed(vec![], vec![]);
        objects.listed.send_replace((true, false));
        assert_eq!(
            objects.wait_listed().await.unwrap_err(),
            "failed to sync secret cache: timed out waiting for the condition"
        );
        objects.listed.send_replace((true, true));
        assert!(objects.wait_listed().await.is_ok());
    }
}
