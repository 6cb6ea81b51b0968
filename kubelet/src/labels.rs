//! The Docker labels that tie a container to its pod. They are the kubelet's only memory:
//! after a restart it finds every container of a pod, and each one's role and restart
//! attempt, from these alone. The `io.kubernetes.*` names are Kubernetes' own (what its
//! Docker integration wrote), so that existing tools recognise the containers.

use std::collections::BTreeMap;

pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
/// The pod's termination grace period, so that a pod deleted while the kubelet was down
/// is still stopped gently.
pub const POD_GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// The restart attempt: 0 for the first container of a name, then 1, 2, ... This is the
/// container's `restartCount`.
pub const CONTAINER_ATTEMPT: &str = "io.kubernetes.container.restartCount";
/// `podsandbox` for the pause container, `container` for the others.
pub const CONTAINER_TYPE: &str = "io.kubernetes.docker.type";
/// The node whose kubelet owns the container: kubelets of several nodes may share one
/// Docker (tests, `minik8s up` next to a cluster), and each minds only its own.
pub const NODE: &str = "io.minik8s.node";
/// `init` or `app` (absent on the pause container).
pub const CONTAINER_ROLE: &str = "io.minik8s.container.role";
/// The image the container was created for, as the pod spec spelled it: a changed image in
/// the spec restarts the container.
pub const CONTAINER_IMAGE: &str = "io.minik8s.container.image";

pub const TYPE_SANDBOX: &str = "podsandbox";
pub const TYPE_CONTAINER: &str = "container";
/// The container name of pause containers, as in Kubernetes.
pub const SANDBOX_NAME: &str = "POD";

/// Which part of a pod a container is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Sandbox,
    Init,
    App,
}

impl Role {
    fn label(self) -> Option<&'static str> {
        match self {
            Role::Sandbox => None,
            Role::Init => Some("init"),
            Role::App => Some("app"),
        }
    }
}

/// The pod a container belongs to and its place in it, read back from its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerKey {
    pub namespace: String,
    pub pod_name: String,
    pub pod_uid: String,
    pub container: String,
    pub role: Role,
    pub attempt: u32,
}

impl ContainerKey {
    /// `None` for a container that is not one of ours.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Option<ContainerKey> {
        let get = |k: &str| labels.get(k).cloned();
        let role = match (
            labels.get(CONTAINER_TYPE).map(String::as_str),
            labels.get(CONTAINER_ROLE).map(String::as_str),
        ) {
            (Some(TYPE_SANDBOX), _) => Role::Sandbox,
            (_, Some("init")) => Role::Init,
            _ => Role::App,
        };
        Some(ContainerKey {
            namespace: get(POD_NAMESPACE)?,
            pod_name: get(POD_NAME)?,
            pod_uid: get(POD_UID)?,
            container: get(CONTAINER_NAME)?,
            role,
            attempt: labels
                .get(CONTAINER_ATTEMPT)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
        })
    }

    /// The labels of a new container.
    pub fn labels(&self, node: &str) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        labels.insert(NODE.into(), node.into());
        labels.insert(POD_NAMESPACE.into(), self.namespace.clone());
        labels.insert(POD_NAME.into(), self.pod_name.clone());
        labels.insert(POD_UID.into(), self.pod_uid.clone());
        labels.insert(CONTAINER_NAME.into(), self.container.clone());
        labels.insert(CONTAINER_ATTEMPT.into(), self.attempt.to_string());
        let kind = match self.role {
            Role::Sandbox => TYPE_SANDBOX,
            Role::Init | Role::App => TYPE_CONTAINER,
        };
        labels.insert(CONTAINER_TYPE.into(), kind.into());
        if let Some(role) = self.role.label() {
            labels.insert(CONTAINER_ROLE.into(), role.into());
        }
        labels
    }

    /// The Docker name, Kubernetes' pattern `k8s_{container}_{pod}_{namespace}_{uid}_{attempt}`.
    /// Names are unique in Docker, so two workers racing to create the same attempt of
    /// the same container cannot both succeed: there is never a duplicate.
    pub fn docker_name(&self) -> String {
        format!(
            "k8s_{}_{}_{}_{}_{}",
            self.container, self.pod_name, self.namespace, self.pod_uid, self.attempt
        )
    }
}

/// Label filters that select every container of this node.
pub fn node_selector(node: &str) -> Vec<(String, String)> {
    vec![(NODE.to_string(), node.to_string())]
}

/// Label filters that select every container of one pod on this node.
pub fn pod_selector(node: &str, uid: &str) -> Vec<(String, String)> {
    vec![
        (NODE.to_string(), node.to_string()),
        (POD_UID.to_string(), uid.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        let key = ContainerKey {
            namespace: "default".into(),
            pod_name: "web".into(),
            pod_uid: "u-1".into(),
            container: "app".into(),
            role: Role::Init,
            attempt: 3,
        };
        let labels = key.labels("node-1");
        assert_eq!(labels[NODE], "node-1");
        assert_eq!(ContainerKey::from_labels(&labels), Some(key.clone()));
        assert_eq!(key.docker_name(), "k8s_app_web_default_u-1_3");
        let sandbox = ContainerKey {
            role: Role::Sandbox,
            container: SANDBOX_NAME.into(),
            attempt: 0,
            ..key
        };
        assert_eq!(
            ContainerKey::from_labels(&sandbox.labels("n"))
                .unwrap()
                .role,
            Role::Sandbox
        );
        assert_eq!(ContainerKey::from_labels(&BTreeMap::new()), None);
    }
}
