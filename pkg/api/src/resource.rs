//! The resources MiniK8s serves, and how their REST paths are built. The API server's
//! discovery documents, its router and every client derive from this one table.

/// One REST resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; empty for the core (`/api/v1`) group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    /// Has a `/status` subresource.
    pub has_status: bool,
    /// Has a `/scale` subresource (`autoscaling/v1` `Scale` over `spec.replicas`).
    pub has_scale: bool,
    /// Groupings kubectl expands, such as `all`.
    pub categories: &'static [&'static str],
}

pub const NAMESPACES: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Namespace",
    plural: "namespaces",
    singular: "namespace",
    short_names: &["ns"],
    namespaced: false,
    has_status: true,
    has_scale: false,
    categories: &[],
};

pub const PODS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Pod",
    plural: "pods",
    singular: "pod",
    short_names: &["po"],
    namespaced: true,
    has_status: true,
    has_scale: false,
    categories: ALL_CATEGORY,
};

pub const NODES: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Node",
    plural: "nodes",
    singular: "node",
    short_names: &["no"],
    namespaced: false,
    has_status: true,
    has_scale: false,
    categories: &[],
};

pub const EVENTS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Event",
    plural: "events",
    singular: "event",
    short_names: &["ev"],
    namespaced: true,
    has_status: false,
    has_scale: false,
    categories: &[],
};

pub const SERVICES: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Service",
    plural: "services",
    singular: "service",
    short_names: &["svc"],
    namespaced: true,
    has_status: true,
    has_scale: false,
    categories: ALL_CATEGORY,
};

pub const ENDPOINTS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Endpoints",
    plural: "endpoints",
    singular: "endpoints",
    short_names: &["ep"],
    namespaced: true,
    has_status: false,
    has_scale: false,
    categories: &[],
};

pub const ENDPOINT_SLICES: ResourceInfo = ResourceInfo {
    group: "discovery.k8s.io",
    version: "v1",
    kind: "EndpointSlice",
    plural: "endpointslices",
    singular: "endpointslice",
    short_names: &[],
    namespaced: true,
    has_status: false,
    has_scale: false,
    categories: &[],
};

pub const TASKSETS: ResourceInfo = ResourceInfo {
    group: crate::taskset::GROUP,
    version: crate::taskset::VERSION,
    kind: "TaskSet",
    plural: "tasksets",
    singular: "taskset",
    short_names: &["ts"],
    namespaced: true,
    has_status: true,
    has_scale: false,
    categories: &[],
};

/// The category `kubectl get all` expands.
pub const ALL_CATEGORY: &[&str] = &["all"];

pub const CONFIG_MAPS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "ConfigMap",
    plural: "configmaps",
    singular: "configmap",
    short_names: &["cm"],
    namespaced: true,
    has_status: false,
    has_scale: false,
    categories: &[],
};

pub const SECRETS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "Secret",
    plural: "secrets",
    singular: "secret",
    short_names: &[],
    namespaced: true,
    has_status: false,
    has_scale: false,
    categories: &[],
};

pub const REPLICATION_CONTROLLERS: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    kind: "ReplicationController",
    plural: "replicationcontrollers",
    singular: "replicationcontroller",
    short_names: &["rc"],
    namespaced: true,
    has_status: true,
    has_scale: true,
    categories: ALL_CATEGORY,
};

pub const DEPLOYMENTS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "Deployment",
    plural: "deployments",
    singular: "deployment",
    short_names: &["deploy"],
    namespaced: true,
    has_status: true,
    has_scale: true,
    categories: ALL_CATEGORY,
};

pub const REPLICA_SETS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "ReplicaSet",
    plural: "replicasets",
    singular: "replicaset",
    short_names: &["rs"],
    namespaced: true,
    has_status: true,
    has_scale: true,
    categories: ALL_CATEGORY,
};

pub const STATEFUL_SETS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "StatefulSet",
    plural: "statefulsets",
    singular: "statefulset",
    short_names: &["sts"],
    namespaced: true,
    has_status: true,
    has_scale: true,
    categories: ALL_CATEGORY,
};

pub const DAEMON_SETS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "DaemonSet",
    plural: "daemonsets",
    singular: "daemonset",
    short_names: &["ds"],
    namespaced: true,
    has_status: true,
    has_scale: false,
    categories: ALL_CATEGORY,
};

pub const CONTROLLER_REVISIONS: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "ControllerRevision",
    plural: "controllerrevisions",
    singular: "controllerrevision",
    short_names: &[],
    namespaced: true,
    has_status: false,
    has_scale: false,
    categories: &[],
};

pub const JOBS: ResourceInfo = ResourceInfo {
    group: "batch",
    version: "v1",
    kind: "Job",
    plural: "jobs",
    singular: "job",
    short_names: &[],
    namespaced: true,
    has_status: true,
    has_scale: false,
    categories: ALL_CATEGORY,
};

/// Every resource served, in discovery order.
pub const ALL: &[ResourceInfo] = &[
    NAMESPACES,
    PODS,
    NODES,
    EVENTS,
    SERVICES,
    ENDPOINTS,
    ENDPOINT_SLICES,
    CONFIG_MAPS,
    SECRETS,
    REPLICATION_CONTROLLERS,
    DEPLOYMENTS,
    REPLICA_SETS,
    STATEFUL_SETS,
    DAEMON_SETS,
    CONTROLLER_REVISIONS,
    JOBS,
    TASKSETS,
];

/// Other names of API groups, served like the group they stand for.
pub const GROUP_ALIASES: &[(&str, &str)] = &[(crate::taskset::ALIAS_GROUP, crate::taskset::GROUP)];

/// The group an `apiVersion`'s group stands for (itself unless it is an alias).
pub fn canonical_group(group: &str) -> &str {
    GROUP_ALIASES
        .iter()
        .find(|(alias, _)| *alias == group)
        .map_or(group, |(_, g)| g)
}

/// `apiVersion` with an alias group replaced by the group it stands for.
pub fn canonical_api_version(api_version: &str) -> String {
    match api_version.split_once('/') {
        Some((group, version)) => format!("{}/{version}", canonical_group(group)),
        None => api_version.to_string(),
    }
}

impl ResourceInfo {
    /// `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `/api/v1` or `/apis/{group}/{version}`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// The collection path: `/api/v1/namespaces/{ns}/pods`, or `/api/v1/pods` across all
    /// namespaces when `namespace` is `None` (and always for cluster-scoped resources).
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!(
                "{}/namespaces/{}/{}",
                self.group_version_path(),
                ns,
                self.plural
            ),
            _ => format!("{}/{}", self.group_version_path(), self.plural),
        }
    }

    /// The path of one object.
    pub fn object_path(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}/{}", self.collection_path(namespace), name)
    }

    /// `PodList` and so on.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Belongs to `category` (such as `all`).
    pub fn in_category(&self, category: &str) -> bool {
        self.categories.contains(&category)
    }

    /// True if `name` names this resource the way kubectl accepts it: plural, singular,
    /// short name or kind, in any case.
    pub fn matches_name(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        name == self.plural
            || name == self.singular
            || name == self.kind.to_ascii_lowercase()
            || self.short_names.iter().any(|s| *s == name)
    }
}

/// The resource a user means by `pods`, `pod`, `po`, `Pod`, ...
pub fn lookup(name: &str) -> Option<&'static ResourceInfo> {
    ALL.iter().find(|r| r.matches_name(name))
}

/// The resource of a `kind` in `apiVersion` (an alias group is accepted).
pub fn for_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    let api_version = canonical_api_version(api_version);
    ALL.iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_kubernetes_paths() {
        assert_eq!(
            PODS.object_path(Some("default"), "web"),
            "/api/v1/namespaces/default/pods/web"
        );
        assert_eq!(PODS.collection_path(None), "/api/v1/pods");
        assert_eq!(NODES.object_path(Some("ignored"), "n1"), "/api/v1/nodes/n1");
    }

    #[test]
    fn lookup_by_any_name() {
        for n in ["pods", "pod", "po", "Pod", "PODS"] {
            assert_eq!(lookup(n), Some(&PODS), "{n}");
        }
        assert_eq!(lookup("ns"), Some(&NAMESPACES));
        assert_eq!(lookup("deploy"), Some(&DEPLOYMENTS));
        assert_eq!(lookup("cronjobs"), None);
        assert_eq!(for_kind("v1", "Node"), Some(&NODES));
        assert_eq!(for_kind("apps/v1", "Node"), None);
        assert_eq!(for_kind("minik8s.io/v1alpha1", "TaskSet"), Some(&TASKSETS));
        assert_eq!(
            for_kind("octopus.openi.pcl.cn/v1alpha1", "TaskSet"),
            Some(&TASKSETS)
        );
        assert_eq!(lookup("ts"), Some(&TASKSETS));
        assert_eq!(
            TASKSETS.object_path(Some("default"), "demo"),
            "/apis/minik8s.io/v1alpha1/namespaces/default/tasksets/demo"
        );
    }
}
