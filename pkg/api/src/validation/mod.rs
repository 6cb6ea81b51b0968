//! Kubernetes-style validation: every problem in an object is reported, each naming the
//! field it is about, so that one `422 Invalid` tells the user everything to fix.
//!
//! Objects are validated after defaulting, as Kubernetes does: a field that defaulting
//! always fills is not required here, but if present it must be valid.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use k8s_openapi::api::core::v1::{
    Container, EnvVar, Event, Namespace, Node, Pod, PodSpec, Probe, ResourceRequirements, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as QuantityString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, StatusCause};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::names;
use crate::quantity::{Quantity, parse_quantity};

mod endpoints;
mod service;
mod workloads;

pub use endpoints::{validate_endpoint_slice, validate_endpoints};
pub use service::{validate_service, validate_service_update};
pub use workloads::*;

/// The kind of a field error; Kubernetes' `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    Required,
    Invalid,
    Duplicate,
    NotFound,
    NotSupported,
    TooLong,
    Forbidden,
}

impl FieldErrorKind {
    /// The `StatusCause` type Kubernetes reports for this kind.
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::NotFound => "FieldValueNotFound",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
        }
    }

    /// How the kind reads at the start of a message.
    fn label(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::NotFound => "Not found",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::Forbidden => "Forbidden",
        }
    }
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field: `metadata.name`, `spec.containers[0].image`,
    /// `spec.containers[0].resources.limits[cpu]`.
    pub field: String,
    pub kind: FieldErrorKind,
    /// The offending value as messages show it: strings quoted, numbers bare.
    pub value: Option<String>,
    /// Detail, possibly empty.
    pub message: String,
}

impl FieldError {
    fn new(
        field: impl Into<String>,
        kind: FieldErrorKind,
        value: Option<String>,
        message: impl Into<String>,
    ) -> FieldError {
        FieldError {
            field: field.into(),
            kind,
            value,
            message: message.into(),
        }
    }

    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError::new(field, FieldErrorKind::Required, None, detail)
    }

    pub fn invalid(field: impl Into<String>, value: &str, detail: impl Into<String>) -> FieldError {
        FieldError::new(field, FieldErrorKind::Invalid, Some(quote(value)), detail)
    }

    pub fn invalid_number(
        field: impl Into<String>,
        value: i64,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError::new(
            field,
            FieldErrorKind::Invalid,
            Some(value.to_string()),
            detail,
        )
    }

    /// An invalid value shown as it is given: Go's rendering of a list or a struct.
    pub fn invalid_shown(
        field: impl Into<String>,
        shown: impl Into<String>,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError::new(field, FieldErrorKind::Invalid, Some(shown.into()), detail)
    }

    /// A duplicate value shown as it is given (a number, a struct).
    pub fn duplicate_shown(field: impl Into<String>, shown: impl Into<String>) -> FieldError {
        FieldError::new(field, FieldErrorKind::Duplicate, Some(shown.into()), "")
    }

    pub fn duplicate(field: impl Into<String>, value: &str) -> FieldError {
        FieldError::new(field, FieldErrorKind::Duplicate, Some(quote(value)), "")
    }

    pub fn not_found(field: impl Into<String>, value: &str) -> FieldError {
        FieldError::new(field, FieldErrorKind::NotFound, Some(quote(value)), "")
    }

    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> FieldError {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        FieldError::new(
            field,
            FieldErrorKind::NotSupported,
            Some(quote(value)),
            detail,
        )
    }

    pub fn too_long(field: impl Into<String>, max_bytes: usize) -> FieldError {
        FieldError::new(
            field,
            FieldErrorKind::TooLong,
            None,
            format!("may not be more than {max_bytes} bytes"),
        )
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError::new(field, FieldErrorKind::Forbidden, None, detail)
    }

    /// The message without the field: `Invalid value: "x": must be ...`. This is the
    /// `message` of the `StatusCause`.
    pub fn body(&self) -> String {
        let mut s = self.kind.label().to_string();
        let shows_value = !matches!(
            self.kind,
            FieldErrorKind::Required | FieldErrorKind::Forbidden | FieldErrorKind::TooLong
        );
        if let (true, Some(v)) = (shows_value, &self.value) {
            s.push_str(": ");
            s.push_str(v);
        }
        if !self.message.is_empty() {
            s.push_str(": ");
            s.push_str(&self.message);
        }
        s
    }

    /// The cause to list in an `Invalid` status's `details.causes`.
    pub fn to_status_cause(&self) -> StatusCause {
        StatusCause {
            field: Some(self.field.clone()),
            message: Some(self.body()),
            reason: Some(self.kind.reason().to_string()),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// The message of an `Invalid` status: `Pod "web" is invalid: <error>` for one error,
/// `Pod "web" is invalid: [<error>, <error>]` for several, repeated messages once.
pub fn invalid_message(kind: &str, name: &str, errors: &[FieldError]) -> String {
    let mut seen = HashSet::new();
    let messages: Vec<String> = errors
        .iter()
        .map(|e| e.to_string())
        .filter(|m| seen.insert(m.clone()))
        .collect();
    let name = quote(name);
    match messages.as_slice() {
        [] => format!("{kind} {name} is invalid"),
        [one] => format!("{kind} {name} is invalid: {one}"),
        many => format!("{kind} {name} is invalid: [{}]", many.join(", ")),
    }
}

/// A string quoted with escapes, as Kubernetes quotes values in messages.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn child(path: &str, name: &str) -> String {
    format!("{path}.{name}")
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

/// Collects errors; one `Invalid` per message of a name check.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }

    fn invalid_each(&mut self, field: &str, value: &str, messages: Vec<String>) {
        for m in messages {
            self.push(FieldError::invalid(field, value, m));
        }
    }

    /// `value` must be one of `supported`; the empty string is a missing value.
    fn one_of(&mut self, field: &str, value: &str, supported: &[&str]) {
        if value.is_empty() {
            self.push(FieldError::required(field, ""));
        } else if !supported.contains(&value) {
            self.push(FieldError::not_supported(field, value, supported));
        }
    }

    fn non_negative(&mut self, field: &str, value: i64) {
        if value < 0 {
            self.push(FieldError::invalid_number(field, value, IS_NEGATIVE));
        }
    }
}

const IS_NEGATIVE: &str = "must be greater than or equal to 0";
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Which rule an object's name follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// Most objects: pods, nodes, events.
    Dns1123Subdomain,
    /// Names used as DNS labels: namespaces.
    Dns1123Label,
    /// DNS labels that start with a letter: services.
    Dns1035Label,
}

impl NameRule {
    fn check(self, name: &str) -> Vec<String> {
        match self {
            NameRule::Dns1123Subdomain => names::is_dns1123_subdomain(name),
            NameRule::Dns1123Label => names::is_dns1123_label(name),
            NameRule::Dns1035Label => names::is_dns1035_label(name),
        }
    }
}

/// Validates `metadata`: the name (or generateName) by `name_rule`, the namespace (required
/// for namespaced objects, forbidden otherwise), labels, annotations and finalizers.
pub fn validate_object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    name_rule: NameRule,
) -> Vec<FieldError> {
    let mut errs = Errors::default();
    object_meta(meta, namespaced, name_rule, "metadata", &mut errs);
    errs.0
}

fn object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    name_rule: NameRule,
    path: &str,
    errs: &mut Errors,
) {
    let generate_name = meta.generate_name.as_deref().unwrap_or_default();
    if !generate_name.is_empty() {
        // Random characters follow a generateName, so a trailing '-' is fine there.
        let masked = match generate_name.strip_suffix('-') {
            Some(stem) if !stem.is_empty() => format!("{stem}a"),
            _ => generate_name.to_string(),
        };
        errs.invalid_each(
            &child(path, "generateName"),
            generate_name,
            name_rule.check(&masked),
        );
    }
    match meta.name.as_deref().unwrap_or_default() {
        "" if generate_name.is_empty() => errs.push(FieldError::required(
            child(path, "name"),
            "name or generateName is required",
        )),
        "" => {}
        name => errs.invalid_each(&child(path, "name"), name, name_rule.check(name)),
    }
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required(child(path, "namespace"), ""));
        } else {
            errs.invalid_each(
                &child(path, "namespace"),
                namespace,
                names::is_dns1123_label(namespace),
            );
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            child(path, "namespace"),
            "not allowed on this type",
        ));
    }
    if let Some(generation) = meta.generation {
        errs.non_negative(&child(path, "generation"), generation);
    }
    if let Some(labels) = &meta.labels {
        label_map(labels, &child(path, "labels"), errs);
    }
    if let Some(annotations) = &meta.annotations {
        let field = child(path, "annotations");
        let mut size = 0;
        for (k, v) in annotations {
            // Case does not matter in annotation keys.
            errs.invalid_each(&field, k, names::validate_qualified_name(&k.to_lowercase()));
            size += k.len() + v.len();
        }
        if size > TOTAL_ANNOTATION_SIZE_LIMIT {
            errs.push(FieldError::too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT));
        }
    }
    for f in meta.finalizers.iter().flatten() {
        errs.invalid_each(
            &child(path, "finalizers"),
            f,
            names::validate_qualified_name(f),
        );
    }
}

/// Keys must be qualified names and values label values: labels, node selectors.
fn label_map(labels: &BTreeMap<String, String>, field: &str, errs: &mut Errors) {
    for (k, v) in labels {
        errs.invalid_each(field, k, names::validate_qualified_name(k));
        errs.invalid_each(field, v, names::is_valid_label_value(v));
    }
}

/// Validates metadata changes on update: name, namespace, uid and creationTimestamp are
/// immutable.
pub fn validate_object_meta_update(old: &ObjectMeta, new: &ObjectMeta) -> Vec<FieldError> {
    let mut errs = Errors::default();
    let immutable = [
        ("metadata.name", &old.name, &new.name),
        ("metadata.namespace", &old.namespace, &new.namespace),
        ("metadata.uid", &old.uid, &new.uid),
    ];
    for (field, old, new) in immutable {
        if old.as_deref().unwrap_or_default() != new.as_deref().unwrap_or_default() {
            errs.push(FieldError::invalid(
                field,
                new.as_deref().unwrap_or_default(),
                "field is immutable",
            ));
        }
    }
    if old.creation_timestamp != new.creation_timestamp {
        let shown = new
            .creation_timestamp
            .as_ref()
            .map_or("null".to_string(), |t| t.0.to_string());
        errs.push(FieldError::new(
            "metadata.creationTimestamp",
            FieldErrorKind::Invalid,
            Some(shown),
            "field is immutable",
        ));
    }
    errs.0
}

/// Validates a namespace: its name is a DNS-1123 label; `spec.finalizers` are standard or
/// fully qualified finalizer names.
pub fn validate_namespace(ns: &Namespace) -> Vec<FieldError> {
    let mut errs = Errors::default();
    object_meta(
        &ns.metadata,
        false,
        NameRule::Dns1123Label,
        "metadata",
        &mut errs,
    );
    let field = "spec.finalizers";
    for f in ns.spec.iter().flat_map(|s| s.finalizers.iter().flatten()) {
        let msgs = names::validate_qualified_name(f);
        if !msgs.is_empty() {
            errs.invalid_each(field, f, msgs);
        } else if !f.contains('/')
            && !["kubernetes", "orphan", "foregroundDeletion"].contains(&f.as_str())
        {
            errs.push(FieldError::invalid(
                field,
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    errs.0
}

/// Validates a node: its name is a DNS subdomain, pod CIDRs are CIDRs (at most one per
/// IP family), taints are well formed, and status quantities parse.
pub fn validate_node(node: &Node) -> Vec<FieldError> {
    let mut errs = Errors::default();
    object_meta(
        &node.metadata,
        false,
        NameRule::Dns1123Subdomain,
        "metadata",
        &mut errs,
    );
    if let Some(spec) = &node.spec {
        if let Some(cidr) = spec.pod_cidr.as_deref().filter(|c| !c.is_empty()) {
            errs.invalid_each("spec.podCIDR", cidr, names::is_valid_cidr(cidr));
        }
        let cidrs = spec.pod_cidrs.as_deref().unwrap_or_default();
        let mut families = Vec::new();
        for (i, cidr) in cidrs.iter().enumerate() {
            match names::parse_cidr(cidr) {
                Some((ip, _)) => families.push(ip.is_ipv4()),
                None => {
                    errs.invalid_each(&index("spec.podCIDRs", i), cidr, names::is_valid_cidr(cidr))
                }
            }
        }
        if cidrs.len() > 2 || (families.len() == 2 && families[0] == families[1]) {
            errs.push(FieldError::new(
                "spec.podCIDRs",
                FieldErrorKind::Invalid,
                Some(format!(
                    "[{}]",
                    cidrs
                        .iter()
                        .map(|c| quote(c))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                "may specify no more than one CIDR for each IP family",
            ));
        }
        let mut seen = HashSet::new();
        for (i, taint) in spec.taints.iter().flatten().enumerate() {
            let path = index("spec.taints", i);
            errs.invalid_each(
                &child(&path, "key"),
                &taint.key,
                names::validate_qualified_name(&taint.key),
            );
            if let Some(value) = &taint.value {
                errs.invalid_each(
                    &child(&path, "value"),
                    value,
                    names::is_valid_label_value(value),
                );
            }
            errs.one_of(
                &child(&path, "effect"),
                &taint.effect,
                &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            );
            if !seen.insert((taint.key.as_str(), taint.effect.as_str())) {
                let mut e = FieldError::duplicate(path, &format!("{}:{}", taint.key, taint.effect));
                e.message = "taints must be unique by key and effect pair".to_string();
                errs.push(e);
            }
        }
    }
    if let Some(status) = &node.status {
        for (field, list) in [
            ("status.capacity", &status.capacity),
            ("status.allocatable", &status.allocatable),
        ] {
            for (name, q) in list.iter().flatten() {
                quantity_value(&key(field, name), q, &mut errs);
            }
        }
    }
    errs.0
}

/// Validates a core/v1 event, leniently as Kubernetes does: the involved object needs a
/// name, and its namespace must agree with the event's.
pub fn validate_event(event: &Event) -> Vec<FieldError> {
    let mut errs = Errors::default();
    object_meta(
        &event.metadata,
        true,
        NameRule::Dns1123Subdomain,
        "metadata",
        &mut errs,
    );
    let involved = &event.involved_object;
    if involved.name.as_deref().unwrap_or_default().is_empty() {
        errs.push(FieldError::required("involvedObject.name", ""));
    }
    let event_ns = event.metadata.namespace.as_deref().unwrap_or_default();
    let involved_ns = involved.namespace.as_deref().unwrap_or_default();
    let mismatch = || {
        FieldError::invalid(
            "involvedObject.namespace",
            involved_ns,
            "does not match event.namespace",
        )
    };
    if event.event_time.is_none() {
        // Events about cluster-scoped objects live in "default".
        if involved_ns.is_empty() {
            if !event_ns.is_empty() && event_ns != "default" {
                errs.push(mismatch());
            }
        } else if involved_ns != event_ns {
            errs.push(mismatch());
        }
    } else {
        if involved_ns.is_empty() && event_ns != "default" && event_ns != "kube-system" {
            errs.push(mismatch());
        }
        for (field, value) in [
            ("reportingComponent", &event.reporting_component),
            ("reportingInstance", &event.reporting_instance),
            ("action", &event.action),
            ("reason", &event.reason),
        ] {
            if value.as_deref().unwrap_or_default().is_empty() {
                errs.push(FieldError::required(field, ""));
            }
        }
        if let Some(c) = event
            .reporting_component
            .as_deref()
            .filter(|c| !c.is_empty())
        {
            errs.invalid_each("reportingComponent", c, names::validate_qualified_name(c));
        }
    }
    errs.0
}

const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Validates a pod: metadata, and every rule of its spec.
pub fn validate_pod(pod: &Pod) -> Vec<FieldError> {
    let mut errs = Errors::default();
    object_meta(
        &pod.metadata,
        true,
        NameRule::Dns1123Subdomain,
        "metadata",
        &mut errs,
    );
    let empty = PodSpec::default();
    pod_spec(pod.spec.as_ref().unwrap_or(&empty), "spec", &mut errs);
    errs.0
}

/// Validates a pod spec found at `path` (a pod template's spec, say).
pub fn validate_pod_spec(spec: &PodSpec, path: &str) -> Vec<FieldError> {
    let mut errs = Errors::default();
    pod_spec(spec, path, &mut errs);
    errs.0
}

/// Validates an update of a pod: everything [`validate_pod`] checks on the new pod, plus
/// the rules of change. Only images, `activeDeadlineSeconds` (never longer), tolerations
/// (additions, and `tolerationSeconds`), scheduling gates (removals), a negative grace
/// period turned to 1, and `nodeName` while still unset (binding) may change.
pub fn validate_pod_update(old: &Pod, new: &Pod) -> Vec<FieldError> {
    let mut errs = Errors(validate_pod(new));
    errs.0
        .extend(validate_object_meta_update(&old.metadata, &new.metadata));
    let empty = PodSpec::default();
    let o = old.spec.as_ref().unwrap_or(&empty);
    let n = new.spec.as_ref().unwrap_or(&empty);

    let old_init = o.init_containers.as_deref().unwrap_or_default();
    let new_init = n.init_containers.as_deref().unwrap_or_default();
    let mut counts_differ = false;
    for (field, old_len, new_len) in [
        ("spec.containers", o.containers.len(), n.containers.len()),
        ("spec.initContainers", old_init.len(), new_init.len()),
    ] {
        if old_len != new_len {
            errs.push(FieldError::forbidden(
                field,
                "pod updates may not add or remove containers",
            ));
            counts_differ = true;
        }
    }
    if counts_differ {
        return errs.0;
    }

    match (o.active_deadline_seconds, n.active_deadline_seconds) {
        (Some(before), Some(after)) if after > before => {
            errs.push(FieldError::invalid_number(
                "spec.activeDeadlineSeconds",
                after,
                "must be less than or equal to previous value",
            ));
        }
        (Some(_), None) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            "null",
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }

    let old_tolerations = o.tolerations.as_deref().unwrap_or_default();
    let new_tolerations = n.tolerations.as_deref().unwrap_or_default();
    let kept = old_tolerations.iter().all(|old| {
        new_tolerations.iter().any(|new| {
            let mut old = old.clone();
            old.toleration_seconds = new.toleration_seconds;
            &old == new
        })
    });
    if !kept {
        errs.push(FieldError::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }

    // Put back what may change, then anything still different is forbidden.
    let mut munged = n.clone();
    for (c, old) in munged.containers.iter_mut().zip(&o.containers) {
        c.image.clone_from(&old.image);
    }
    for (c, old) in munged.init_containers.iter_mut().flatten().zip(old_init) {
        c.image.clone_from(&old.image);
    }
    munged.active_deadline_seconds = o.active_deadline_seconds;
    munged.tolerations.clone_from(&o.tolerations);
    if o.node_name.as_deref().unwrap_or_default().is_empty() {
        munged.node_name.clone_from(&o.node_name);
    }
    let old_gates: BTreeSet<&str> = o
        .scheduling_gates
        .iter()
        .flatten()
        .map(|g| g.name.as_str())
        .collect();
    if munged
        .scheduling_gates
        .iter()
        .flatten()
        .all(|g| old_gates.contains(g.name.as_str()))
    {
        munged.scheduling_gates.clone_from(&o.scheduling_gates);
    }
    if o.termination_grace_period_seconds.is_some_and(|g| g < 0)
        && n.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = o.termination_grace_period_seconds;
    }
    let (before, after) = (normalized(o), normalized(&munged));
    if before != after {
        let mut changed = Vec::new();
        diff_paths(&before, &after, "spec", &mut changed);
        let mut detail = POD_UPDATE_FORBIDDEN.to_string();
        if !changed.is_empty() {
            detail.push_str("\n  changed: ");
            detail.push_str(&changed.join(", "));
        }
        errs.push(FieldError::forbidden("spec", detail));
    }
    errs.0
}

/// A spec as JSON without nulls, empty strings, lists and maps: unset and empty mean the
/// same in Kubernetes' comparison.
fn normalized(spec: &PodSpec) -> Value {
    fn prune(v: Value) -> Option<Value> {
        match v {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::Array(items) => {
                let items: Vec<Value> = items
                    .into_iter()
                    .map(|i| prune(i).unwrap_or(Value::Null))
                    .collect();
                (!items.is_empty()).then_some(Value::Array(items))
            }
            Value::Object(map) => {
                let map: serde_json::Map<String, Value> = map
                    .into_iter()
                    .filter_map(|(k, v)| prune(v).map(|v| (k, v)))
                    .collect();
                (!map.is_empty()).then_some(Value::Object(map))
            }
            v => Some(v),
        }
    }
    serde_json::to_value(spec)
        .ok()
        .and_then(prune)
        .unwrap_or(Value::Null)
}

/// Paths where two JSON values differ, at most a handful, to point the user at them.
fn diff_paths(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    const MAX: usize = 8;
    if out.len() >= MAX || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = Value::Null;
                diff_paths(
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    &child(path, k),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff_paths(p, q, &index(path, i), out);
            }
        }
        _ => out.push(path.to_string()),
    }
}

fn pod_spec(spec: &PodSpec, path: &str, errs: &mut Errors) {
    let volumes = volumes(
        spec.volumes.as_deref().unwrap_or_default(),
        &child(path, "volumes"),
        errs,
    );

    let mut container_names = HashSet::new();
    let containers_path = child(path, "containers");
    if spec.containers.is_empty() {
        errs.push(FieldError::required(&containers_path, ""));
    }
    for (i, c) in spec.containers.iter().enumerate() {
        container(
            c,
            &index(&containers_path, i),
            ContainerKind::Regular,
            &volumes,
            &mut container_names,
            errs,
        );
    }
    host_port_conflicts(spec.containers.iter().enumerate(), &containers_path, errs);
    let init_path = child(path, "initContainers");
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let kind = if c.restart_policy.as_deref() == Some("Always") {
            ContainerKind::Sidecar
        } else {
            ContainerKind::Init
        };
        container(
            c,
            &index(&init_path, i),
            kind,
            &volumes,
            &mut container_names,
            errs,
        );
        // Init containers run one at a time, so only a container's own ports can clash.
        host_port_conflicts(std::iter::once((i, c)), &init_path, errs);
    }

    if let Some(policy) = &spec.restart_policy {
        errs.one_of(
            &child(path, "restartPolicy"),
            policy,
            &["Always", "Never", "OnFailure"],
        );
    }
    if let Some(policy) = &spec.dns_policy {
        let field = child(path, "dnsPolicy");
        errs.one_of(
            &field,
            policy,
            &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
        );
        if policy == "None" && spec.dns_config.is_none() {
            errs.push(FieldError::required(
                child(path, "dnsConfig"),
                "must provide `dnsConfig` when `dnsPolicy` is None",
            ));
        }
    }
    if let Some(grace) = spec.termination_grace_period_seconds {
        errs.non_negative(&child(path, "terminationGracePeriodSeconds"), grace);
    }
    let deadline_range = 1..=i64::from(i32::MAX);
    if let Some(deadline) = spec
        .active_deadline_seconds
        .filter(|d| !deadline_range.contains(d))
    {
        errs.push(FieldError::invalid_number(
            child(path, "activeDeadlineSeconds"),
            deadline,
            names::inclusive_range_error(1, i64::from(i32::MAX)),
        ));
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            errs.invalid_each(&child(path, field), v, names::is_dns1123_label(v));
        }
    }
    let aliases_path = child(path, "hostAliases");
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        let alias_path = index(&aliases_path, i);
        errs.invalid_each(
            &child(&alias_path, "ip"),
            &alias.ip,
            names::is_valid_ip(&alias.ip),
        );
        for (j, host) in alias.hostnames.iter().flatten().enumerate() {
            errs.invalid_each(
                &index(&child(&alias_path, "hostnames"), j),
                host,
                names::is_dns1123_subdomain(host),
            );
        }
    }
    if let Some(selector) = &spec.node_selector {
        label_map(selector, &child(path, "nodeSelector"), errs);
    }
    if let Some(node) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        errs.invalid_each(
            &child(path, "nodeName"),
            node,
            names::is_dns1123_subdomain(node),
        );
    }
}

/// Checks the volumes and returns the names they define.
fn volumes(volumes: &[Volume], path: &str, errs: &mut Errors) -> HashSet<String> {
    let mut names_seen = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let path = index(path, i);
        let name_path = child(&path, "name");
        if v.name.is_empty() {
            errs.push(FieldError::required(&name_path, ""));
        } else {
            errs.invalid_each(&name_path, &v.name, names::is_dns1123_label(&v.name));
            if !names_seen.insert(v.name.clone()) {
                errs.push(FieldError::duplicate(&name_path, &v.name));
            }
        }
        // Every source is an optional field; counting the serialized ones follows the
        // API's own list of sources, whatever it grows to.
        let sources: Vec<String> = match serde_json::to_value(v) {
            Ok(Value::Object(map)) => map
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| k != "name")
                .collect(),
            _ => Vec::new(),
        };
        match sources.as_slice() {
            [] => errs.push(FieldError::required(&path, "must specify a volume type")),
            [_, rest @ ..] => {
                for extra in rest {
                    errs.push(FieldError::forbidden(
                        child(&path, extra),
                        "may not specify more than 1 volume type",
                    ));
                }
            }
        }
        if let Some(host_path) = &v.host_path {
            let hp = child(&path, "hostPath");
            let p = &host_path.path;
            if p.is_empty() {
                errs.push(FieldError::required(child(&hp, "path"), ""));
            } else {
                if !p.starts_with('/') {
                    errs.push(FieldError::invalid(
                        child(&hp, "path"),
                        p,
                        "must be an absolute path",
                    ));
                }
                if p.split('/').any(|part| part == "..") {
                    errs.push(FieldError::invalid(
                        child(&hp, "path"),
                        p,
                        "must not contain '..'",
                    ));
                }
            }
            if let Some(t) = &host_path.type_ {
                const TYPES: &[&str] = &[
                    "",
                    "BlockDevice",
                    "CharDevice",
                    "Directory",
                    "DirectoryOrCreate",
                    "File",
                    "FileOrCreate",
                    "Socket",
                ];
                if !TYPES.contains(&t.as_str()) {
                    errs.push(FieldError::not_supported(child(&hp, "type"), t, TYPES));
                }
            }
        }
        if let Some(empty_dir) = &v.empty_dir {
            let ed = child(&path, "emptyDir");
            const MEDIA: &[&str] = &["", "Memory"];
            if let Some(medium) = empty_dir.medium.as_deref().filter(|m| !MEDIA.contains(m)) {
                errs.push(FieldError::not_supported(
                    child(&ed, "medium"),
                    medium,
                    MEDIA,
                ));
            }
            if let Some(limit) = &empty_dir.size_limit {
                quantity_value(&child(&ed, "sizeLimit"), limit, errs);
            }
        }
    }
    names_seen
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ContainerKind {
    Regular,
    /// An init container that runs to completion before the next.
    Init,
    /// An init container with `restartPolicy: Always`, which keeps running.
    Sidecar,
}

fn container(
    c: &Container,
    path: &str,
    kind: ContainerKind,
    volumes: &HashSet<String>,
    container_names: &mut HashSet<String>,
    errs: &mut Errors,
) {
    let name_path = child(path, "name");
    if c.name.is_empty() {
        errs.push(FieldError::required(&name_path, ""));
    } else {
        errs.invalid_each(&name_path, &c.name, names::is_dns1123_label(&c.name));
        if !container_names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(&name_path, &c.name));
        }
    }
    let image = c.image.as_deref().unwrap_or_default();
    if image.is_empty() {
        errs.push(FieldError::required(child(path, "image"), ""));
    } else if image.trim() != image {
        errs.push(FieldError::invalid(
            child(path, "image"),
            image,
            "must not have leading or trailing whitespace",
        ));
    }
    if let Some(policy) = &c.image_pull_policy {
        errs.one_of(
            &child(path, "imagePullPolicy"),
            policy,
            &["Always", "IfNotPresent", "Never"],
        );
    }
    if let Some(policy) = &c.termination_message_policy {
        errs.one_of(
            &child(path, "terminationMessagePolicy"),
            policy,
            &["FallbackToLogsOnError", "File"],
        );
    }
    if let Some(policy) = &c.restart_policy {
        let field = child(path, "restartPolicy");
        if kind == ContainerKind::Regular {
            errs.push(FieldError::forbidden(
                field,
                "may not be set for non-init containers",
            ));
        } else {
            errs.one_of(&field, policy, &["Always"]);
        }
    }

    let port_names = ports(c, &child(path, "ports"), errs);
    env(
        c.env.as_deref().unwrap_or_default(),
        &child(path, "env"),
        errs,
    );
    volume_mounts(c, path, volumes, errs);

    let probes = [
        ("livenessProbe", &c.liveness_probe, true),
        ("readinessProbe", &c.readiness_probe, false),
        ("startupProbe", &c.startup_probe, true),
    ];
    for (field, probe, success_must_be_one) in probes {
        let Some(probe) = probe else { continue };
        let probe_path = child(path, field);
        if kind == ContainerKind::Init {
            errs.push(FieldError::forbidden(
                probe_path,
                "may not be set for init containers without restartPolicy=Always",
            ));
            continue;
        }
        validate_probe(probe, &probe_path, &port_names, success_must_be_one, errs);
    }
    if let Some(lifecycle) = &c.lifecycle {
        let lifecycle_path = child(path, "lifecycle");
        if kind == ContainerKind::Init {
            errs.push(FieldError::forbidden(
                lifecycle_path,
                "may not be set for init containers without restartPolicy=Always",
            ));
        } else {
            for (field, handler) in [
                ("postStart", &lifecycle.post_start),
                ("preStop", &lifecycle.pre_stop),
            ] {
                let Some(h) = handler else { continue };
                let handler_path = child(&lifecycle_path, field);
                let actions = Actions {
                    exec: h
                        .exec
                        .as_ref()
                        .map(|e| e.command.as_deref().unwrap_or_default()),
                    http_get: h.http_get.as_ref(),
                    tcp_socket: h.tcp_socket.as_ref().map(|t| &t.port),
                    grpc_port: None,
                    sleep_seconds: h.sleep.as_ref().map(|s| s.seconds),
                };
                actions.validate(&handler_path, &port_names, errs);
            }
        }
    }
    if let Some(resources) = &c.resources {
        resource_requirements(resources, &child(path, "resources"), errs);
    }
}

/// Checks the ports and returns their names, for probes that name a port.
fn ports(c: &Container, path: &str, errs: &mut Errors) -> HashSet<String> {
    let mut port_names = HashSet::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let path = index(path, i);
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = names::is_valid_port_name(name);
            let name_path = child(&path, "name");
            if !msgs.is_empty() {
                errs.invalid_each(&name_path, name, msgs);
            } else if !port_names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(name_path, name));
            }
        }
        let container_port = port.container_port;
        if container_port == 0 {
            errs.push(FieldError::required(child(&path, "containerPort"), ""));
        } else {
            for m in names::is_valid_port_num(i64::from(container_port)) {
                errs.push(FieldError::invalid_number(
                    child(&path, "containerPort"),
                    i64::from(container_port),
                    m,
                ));
            }
        }
        if let Some(host_port) = port.host_port.filter(|&p| p != 0) {
            for m in names::is_valid_port_num(i64::from(host_port)) {
                errs.push(FieldError::invalid_number(
                    child(&path, "hostPort"),
                    i64::from(host_port),
                    m,
                ));
            }
        }
        if let Some(ip) = port.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
            errs.invalid_each(&child(&path, "hostIP"), ip, names::is_valid_ip(ip));
        }
        if let Some(protocol) = port.protocol.as_deref().filter(|p| !p.is_empty()) {
            errs.one_of(&child(&path, "protocol"), protocol, &["SCTP", "TCP", "UDP"]);
        }
    }
    port_names
}

/// Two ports of the containers may not take the same host port, address and protocol.
fn host_port_conflicts<'a>(
    containers: impl Iterator<Item = (usize, &'a Container)>,
    path: &str,
    errs: &mut Errors,
) {
    let mut taken = HashSet::new();
    for (i, c) in containers {
        for (j, port) in c.ports.iter().flatten().enumerate() {
            let Some(host_port) = port.host_port.filter(|&p| p != 0) else {
                continue;
            };
            let protocol = port
                .protocol
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or("TCP");
            let address = port.host_ip.as_deref().unwrap_or_default();
            let id = format!("{address}/{protocol}/{host_port}");
            if !taken.insert(id.clone()) {
                errs.push(FieldError::duplicate(
                    child(&index(&child(&index(path, i), "ports"), j), "hostPort"),
                    &id,
                ));
            }
        }
    }
}

const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

const ENV_RESOURCES: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

fn env(vars: &[EnvVar], path: &str, errs: &mut Errors) {
    for (i, var) in vars.iter().enumerate() {
        let path = index(path, i);
        if var.name.is_empty() {
            errs.push(FieldError::required(child(&path, "name"), ""));
        } else {
            errs.invalid_each(
                &child(&path, "name"),
                &var.name,
                names::is_env_var_name(&var.name),
            );
        }
        let Some(from) = &var.value_from else {
            continue;
        };
        let from_path = child(&path, "valueFrom");
        let mut sources = 0;
        if let Some(field_ref) = &from.field_ref {
            sources += 1;
            let fr_path = child(&from_path, "fieldRef");
            let fp = field_ref.field_path.as_str();
            match field_ref.api_version.as_deref() {
                Some("") => errs.push(FieldError::required(child(&fr_path, "apiVersion"), "")),
                Some(v) if v != "v1" => errs.push(FieldError::invalid(
                    child(&fr_path, "fieldPath"),
                    fp,
                    format!("error converting fieldPath: unsupported pod version: {v}"),
                )),
                _ => {
                    if fp.is_empty() {
                        errs.push(FieldError::required(child(&fr_path, "fieldPath"), ""));
                    } else if let Some((base, subscript)) = split_subscript(fp) {
                        match base {
                            "metadata.annotations" => errs.invalid_each(
                                &fr_path,
                                subscript,
                                names::validate_qualified_name(&subscript.to_lowercase()),
                            ),
                            "metadata.labels" => errs.invalid_each(
                                &fr_path,
                                subscript,
                                names::validate_qualified_name(subscript),
                            ),
                            _ => errs.push(FieldError::invalid(
                                &fr_path,
                                base,
                                "does not support subscript",
                            )),
                        }
                    } else if !ENV_FIELD_PATHS.contains(&fp) {
                        errs.push(FieldError::not_supported(
                            child(&fr_path, "fieldPath"),
                            fp,
                            ENV_FIELD_PATHS,
                        ));
                    }
                }
            }
        }
        if let Some(resource_ref) = &from.resource_field_ref {
            sources += 1;
            let r = resource_ref.resource.as_str();
            let field = child(&child(&from_path, "resourceFieldRef"), "resource");
            if r.is_empty() {
                errs.push(FieldError::required(field, ""));
            } else if !ENV_RESOURCES.contains(&r)
                && !r.starts_with("limits.hugepages-")
                && !r.starts_with("requests.hugepages-")
            {
                errs.push(FieldError::not_supported(field, r, ENV_RESOURCES));
            }
        }
        for (field, key_ref) in [
            (
                "configMapKeyRef",
                from.config_map_key_ref.as_ref().map(|r| (&r.name, &r.key)),
            ),
            (
                "secretKeyRef",
                from.secret_key_ref.as_ref().map(|r| (&r.name, &r.key)),
            ),
        ] {
            let Some((name, k)) = key_ref else { continue };
            sources += 1;
            let ref_path = child(&from_path, field);
            if name.is_empty() {
                errs.push(FieldError::required(child(&ref_path, "name"), ""));
            }
            if k.is_empty() {
                errs.push(FieldError::required(child(&ref_path, "key"), ""));
            }
        }
        let has_value = var.value.as_deref().is_some_and(|v| !v.is_empty());
        let problem = if sources == 0 {
            Some(
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            )
        } else if has_value {
            Some("may not be specified when `value` is not empty")
        } else if sources > 1 {
            Some("may not have more than one field specified at a time")
        } else {
            None
        };
        if let Some(problem) = problem {
            errs.push(FieldError::invalid(&from_path, "", problem));
        }
    }
}

/// `metadata.labels['app']` → (`metadata.labels`, `app`).
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (base, subscript) = inner.split_once("['")?;
    (!base.is_empty()).then_some((base, subscript))
}

fn volume_mounts(c: &Container, path: &str, volumes: &HashSet<String>, errs: &mut Errors) {
    let mut mount_points = HashSet::new();
    let mounts_path = child(path, "volumeMounts");
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let path = index(&mounts_path, i);
        let name_path = child(&path, "name");
        if m.name.is_empty() {
            errs.push(FieldError::required(name_path, ""));
        } else if !volumes.contains(&m.name) {
            errs.push(FieldError::not_found(name_path, &m.name));
        }
        let mount_path = child(&path, "mountPath");
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(mount_path, ""));
        } else {
            if !m.mount_path.starts_with('/') {
                errs.push(FieldError::invalid(
                    &mount_path,
                    &m.mount_path,
                    "must be an absolute path",
                ));
            }
            if !mount_points.insert(m.mount_path.as_str()) {
                errs.push(FieldError::invalid(
                    &mount_path,
                    &m.mount_path,
                    "must be unique",
                ));
            }
        }
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            let sub_path = child(&path, "subPath");
            if sub.starts_with('/') {
                errs.push(FieldError::invalid(
                    &sub_path,
                    sub,
                    "must be a relative path",
                ));
            }
            if sub.split('/').any(|part| part == "..") {
                errs.push(FieldError::invalid(&sub_path, sub, "must not contain '..'"));
            }
        }
    }
}

/// The actions a probe or a lifecycle hook may take; exactly one must be given.
struct Actions<'a> {
    exec: Option<&'a [String]>,
    http_get: Option<&'a k8s_openapi::api::core::v1::HTTPGetAction>,
    tcp_socket: Option<&'a IntOrString>,
    grpc_port: Option<i32>,
    sleep_seconds: Option<i64>,
}

impl Actions<'_> {
    fn validate(&self, path: &str, port_names: &HashSet<String>, errs: &mut Errors) {
        let mut given = 0;
        let mut one = |field: &str, errs: &mut Errors| -> bool {
            given += 1;
            if given > 1 {
                errs.push(FieldError::forbidden(
                    child(path, field),
                    "may not specify more than 1 handler type",
                ));
                return false;
            }
            true
        };
        if self
            .exec
            .filter(|_| one("exec", errs))
            .is_some_and(|command| command.is_empty())
        {
            errs.push(FieldError::required(
                child(&child(path, "exec"), "command"),
                "",
            ));
        }
        if let Some(http) = self.http_get.filter(|_| one("httpGet", errs)) {
            let hp = child(path, "httpGet");
            port_number_or_name(&http.port, &child(&hp, "port"), port_names, errs);
            if let Some(scheme) = &http.scheme {
                errs.one_of(&child(&hp, "scheme"), scheme, &["HTTP", "HTTPS"]);
            }
            for header in http.http_headers.iter().flatten() {
                let ok = !header.name.is_empty()
                    && header
                        .name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if !ok {
                    errs.push(FieldError::invalid(
                            child(&hp, "httpHeaders"),
                            &header.name,
                            "a valid HTTP header must consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')",
                        ));
                }
            }
        }
        if let Some(port) = self.tcp_socket.filter(|_| one("tcpSocket", errs)) {
            let port_path = child(&child(path, "tcpSocket"), "port");
            port_number_or_name(port, &port_path, port_names, errs);
        }
        if let Some(port) = self.grpc_port.filter(|_| one("grpc", errs)) {
            for m in names::is_valid_port_num(i64::from(port)) {
                errs.push(FieldError::invalid_number(
                    child(&child(path, "grpc"), "port"),
                    i64::from(port),
                    m,
                ));
            }
        }
        if let Some(seconds) = self.sleep_seconds.filter(|_| one("sleep", errs)) {
            errs.non_negative(&child(&child(path, "sleep"), "seconds"), seconds);
        }
        if given == 0 {
            errs.push(FieldError::required(path, "must specify a handler type"));
        }
    }
}

fn port_number_or_name(
    port: &IntOrString,
    path: &str,
    port_names: &HashSet<String>,
    errs: &mut Errors,
) {
    match port {
        IntOrString::Int(n) => {
            for m in names::is_valid_port_num(i64::from(*n)) {
                errs.push(FieldError::invalid_number(path, i64::from(*n), m));
            }
        }
        IntOrString::String(name) => {
            let msgs = names::is_valid_port_name(name);
            if !msgs.is_empty() {
                errs.invalid_each(path, name, msgs);
            } else if !port_names.contains(name) {
                errs.push(FieldError::invalid(
                    path,
                    name,
                    "must be the name of one of the container's ports",
                ));
            }
        }
    }
}

fn validate_probe(
    probe: &Probe,
    path: &str,
    port_names: &HashSet<String>,
    success_must_be_one: bool,
    errs: &mut Errors,
) {
    let actions = Actions {
        exec: probe
            .exec
            .as_ref()
            .map(|e| e.command.as_deref().unwrap_or_default()),
        http_get: probe.http_get.as_ref(),
        tcp_socket: probe.tcp_socket.as_ref().map(|t| &t.port),
        grpc_port: probe.grpc.as_ref().map(|g| g.port),
        sleep_seconds: None,
    };
    actions.validate(path, port_names, errs);
    if let Some(delay) = probe.initial_delay_seconds {
        errs.non_negative(&child(path, "initialDelaySeconds"), i64::from(delay));
    }
    for (field, value) in [
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        let Some(v) = value else { continue };
        let field = child(path, field);
        let v = i64::from(v);
        if v < 0 {
            errs.push(FieldError::invalid_number(field, v, IS_NEGATIVE));
        } else if v == 0 {
            // Defaulting replaces 0, so a 0 here was never defaulted.
            errs.push(FieldError::invalid_number(
                field,
                v,
                "must be greater than or equal to 1",
            ));
        }
    }
    if let Some(v) = probe
        .success_threshold
        .filter(|&v| success_must_be_one && v > 0 && v != 1)
    {
        errs.push(FieldError::invalid_number(
            child(path, "successThreshold"),
            i64::from(v),
            "must be 1",
        ));
    }
    if let Some(grace) = probe.termination_grace_period_seconds.filter(|&g| g <= 0) {
        errs.push(FieldError::invalid_number(
            child(path, "terminationGracePeriodSeconds"),
            grace,
            "must be greater than 0",
        ));
    }
}

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// Names without a domain, or in a `kubernetes.io` domain.
fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Resources a node can promise more of than it has: native ones except huge pages.
/// Requests of the others must equal their limits.
fn overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !is_hugepages(name)
}

fn is_extended_resource(name: &str) -> bool {
    !is_native_resource(name)
        && !name.starts_with("requests.")
        && names::validate_qualified_name(&format!("requests.{name}")).is_empty()
}

fn container_resource_name(name: &str, path: &str, errs: &mut Errors) -> bool {
    let msgs = names::validate_qualified_name(name);
    if !msgs.is_empty() {
        errs.invalid_each(path, name, msgs);
        return false;
    }
    let problem = if !name.contains('/') {
        (!["cpu", "memory", "ephemeral-storage"].contains(&name) && !is_hugepages(name))
            .then_some("must be a standard resource for containers")
    } else {
        (!is_native_resource(name) && !is_extended_resource(name))
            .then_some("doesn't follow extended resource name standard")
    };
    if let Some(problem) = problem {
        errs.push(FieldError::invalid(path, name, problem));
        return false;
    }
    true
}

/// Parses a quantity that must not be negative, reporting why not.
fn quantity_value(path: &str, q: &QuantityString, errs: &mut Errors) -> Option<Quantity> {
    match parse_quantity(&q.0) {
        Err(e) => {
            errs.push(FieldError::invalid(path, &q.0, e.to_string()));
            None
        }
        Ok(v) if v.is_negative() => {
            errs.push(FieldError::invalid(path, &q.0, IS_NEGATIVE));
            None
        }
        Ok(v) => Some(v),
    }
}

fn resource_requirements(r: &ResourceRequirements, path: &str, errs: &mut Errors) {
    let limits_path = child(path, "limits");
    let requests_path = child(path, "requests");
    fn check<'a>(
        list: &'a Option<BTreeMap<String, QuantityString>>,
        list_path: &str,
        errs: &mut Errors,
    ) -> BTreeMap<&'a str, (Quantity, &'a str)> {
        let mut parsed = BTreeMap::new();
        for (name, q) in list.iter().flatten() {
            let path = key(list_path, name);
            let name_ok = container_resource_name(name, &path, errs);
            if let Some(v) = quantity_value(&path, q, errs) {
                if name_ok && is_extended_resource(name) && v.as_nanos() % 1_000_000_000 != 0 {
                    errs.push(FieldError::invalid(&path, &q.0, "must be an integer"));
                }
                parsed.insert(name.as_str(), (v, q.0.as_str()));
            }
        }
        parsed
    }
    let limits = check(&r.limits, &limits_path, errs);
    let requests = check(&r.requests, &requests_path, errs);
    for (name, (request, request_text)) in &requests {
        match limits.get(name) {
            Some((limit, limit_text)) => {
                if !overcommit_allowed(name) && request != limit {
                    errs.push(FieldError::invalid(
                        &requests_path,
                        request_text,
                        format!("must be equal to {name} limit of {limit_text}"),
                    ));
                } else if request > limit {
                    errs.push(FieldError::invalid(
                        &requests_path,
                        request_text,
                        format!("must be less than or equal to {name} limit of {limit_text}"),
                    ));
                }
            }
            None if !overcommit_allowed(name)
                && !r.limits.iter().flatten().any(|(k, _)| k == name) =>
            {
                errs.push(FieldError::required(
                    &limits_path,
                    "Limit must be set for non overcommitable resources",
                ));
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerPort, EmptyDirVolumeSource, EnvVarSource, ExecAction, HTTPGetAction,
        HostPathVolumeSource, NamespaceSpec, NodeSpec, ObjectFieldSelector, ObjectReference,
        TCPSocketAction, Taint, Toleration, VolumeMount,
    };
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn good_spec() -> serde_json::Value {
        json!({
            "containers": [{
                "name": "app",
                "image": "nginx:1.25",
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                "livenessProbe": {"httpGet": {"port": "http", "path": "/", "scheme": "HTTP"},
                    "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
                "readinessProbe": {"tcpSocket": {"port": 80}, "successThreshold": 2},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                        {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                        {"name": "weird.name-1", "value": "x"}],
                "resources": {"limits": {"cpu": "1", "memory": "128Mi", "example.com/gpu": "2"},
                              "requests": {"cpu": "500m", "memory": "64Mi", "example.com/gpu": "2"}},
                "imagePullPolicy": "IfNotPresent",
            }],
            "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
            "volumes": [{"name": "data", "emptyDir": {}},
                        {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}}],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "terminationGracePeriodSeconds": 30,
            "hostname": "web-0",
            "subdomain": "group",
            "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["db.local"]}],
            "nodeSelector": {"kubernetes.io/hostname": "node-1"},
        })
    }

    fn errors_of(pod: &Pod) -> Vec<String> {
        validate_pod(pod).iter().map(|e| e.to_string()).collect()
    }

    /// Validates a pod built from the good spec with `edit` applied to its JSON.
    fn errors_with(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<String> {
        let mut spec = good_spec();
        edit(&mut spec);
        errors_of(&pod(spec))
    }

    #[test]
    fn a_good_pod_is_valid() {
        assert_eq!(errors_of(&pod(good_spec())), Vec::<String>::new());
    }

    #[test]
    fn error_display_and_reasons() {
        let e = FieldError::invalid("metadata.name", "Bad_Name", "bad");
        assert_eq!(
            e.to_string(),
            "metadata.name: Invalid value: \"Bad_Name\": bad"
        );
        assert_eq!(e.kind.reason(), "FieldValueInvalid");
        let e = FieldError::required("spec.containers[0].image", "");
        assert_eq!(e.to_string(), "spec.containers[0].image: Required value");
        let e = FieldError::not_supported(
            "spec.restartPolicy",
            "Sometimes",
            &["Always", "Never", "OnFailure"],
        );
        assert_eq!(
            e.to_string(),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\", \"OnFailure\""
        );
        assert_eq!(e.kind.reason(), "FieldValueNotSupported");
        let e = FieldError::duplicate("spec.containers[1].name", "app");
        assert_eq!(
            e.to_string(),
            "spec.containers[1].name: Duplicate value: \"app\""
        );
        let e = FieldError::not_found("spec.containers[0].volumeMounts[0].name", "x");
        assert_eq!(
            e.to_string(),
            "spec.containers[0].volumeMounts[0].name: Not found: \"x\""
        );
        assert_eq!(e.kind.reason(), "FieldValueNotFound");
        let e = FieldError::invalid_number(
            "spec.containers[0].ports[0].containerPort",
            70000,
            "must be between 1 and 65535, inclusive",
        );
        assert_eq!(
            e.body(),
            "Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        let e = FieldError::too_long("metadata.annotations", 262144);
        assert_eq!(
            e.to_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        let e = FieldError::forbidden("metadata.namespace", "not allowed on this type");
        assert_eq!(
            e.to_string(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );
        assert_eq!(FieldErrorKind::Required.reason(), "FieldValueRequired");
        assert_eq!(FieldErrorKind::Duplicate.reason(), "FieldValueDuplicate");
        assert_eq!(FieldErrorKind::TooLong.reason(), "FieldValueTooLong");
        assert_eq!(FieldErrorKind::Forbidden.reason(), "FieldValueForbidden");
        assert_eq!(quote("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\x01\"");
        let cause = FieldError::required("spec.containers", "").to_status_cause();
        assert_eq!(cause.field.as_deref(), Some("spec.containers"));
        assert_eq!(cause.message.as_deref(), Some("Required value"));
        assert_eq!(cause.reason.as_deref(), Some("FieldValueRequired"));
    }

    #[test]
    fn invalid_messages_aggregate() {
        let a = FieldError::required("spec.containers", "");
        let b = FieldError::invalid("metadata.name", "X", "bad");
        assert_eq!(invalid_message("Pod", "web", &[]), "Pod \"web\" is invalid");
        assert_eq!(
            invalid_message("Pod", "web", std::slice::from_ref(&a)),
            "Pod \"web\" is invalid: spec.containers: Required value"
        );
        assert_eq!(
            invalid_message("Pod", "web", &[a.clone(), b, a]),
            "Pod \"web\" is invalid: [spec.containers: Required value, metadata.name: Invalid value: \"X\": bad]"
        );
    }

    #[test]
    fn object_meta_rules() {
        let meta = |v: serde_json::Value| -> ObjectMeta { serde_json::from_value(v).unwrap() };
        let show = |errs: Vec<FieldError>| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        assert!(
            validate_object_meta(
                &meta(json!({"name": "a.b", "namespace": "ns"})),
                true,
                NameRule::Dns1123Subdomain
            )
            .is_empty()
        );

        let errs = show(validate_object_meta(
            &meta(json!({})),
            true,
            NameRule::Dns1123Subdomain,
        ));
        assert_eq!(
            errs,
            [
                "metadata.name: Required value: name or generateName is required",
                "metadata.namespace: Required value",
            ]
        );
        let errs = validate_object_meta(
            &meta(json!({"name": "Bad_Name", "namespace": "ns"})),
            true,
            NameRule::Dns1123Subdomain,
        );
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().starts_with("metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of"));
        let errs = show(validate_object_meta(
            &meta(json!({"name": "a.b"})),
            false,
            NameRule::Dns1123Label,
        ));
        assert_eq!(
            errs,
            ["metadata.name: Invalid value: \"a.b\": must not contain dots"]
        );
        let errs = show(validate_object_meta(
            &meta(json!({"name": "n", "namespace": "x"})),
            false,
            NameRule::Dns1123Label,
        ));
        assert_eq!(
            errs,
            ["metadata.namespace: Forbidden: not allowed on this type"]
        );
        let errs = show(validate_object_meta(
            &meta(json!({"name": "n", "namespace": "Bad"})),
            true,
            NameRule::Dns1123Label,
        ));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("metadata.namespace: Invalid value: \"Bad\""));

        // generateName stands in for the name and may end with '-'.
        assert!(
            validate_object_meta(
                &meta(json!({"generateName": "web-", "namespace": "ns"})),
                true,
                NameRule::Dns1123Subdomain
            )
            .is_empty()
        );
        let errs = show(validate_object_meta(
            &meta(json!({"generateName": "Web-", "namespace": "ns"})),
            true,
            NameRule::Dns1123Subdomain,
        ));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("metadata.generateName: Invalid value: \"Web-\""));

        let errs = show(validate_object_meta(
            &meta(json!({
                "name": "n", "namespace": "ns", "generation": -1,
                "labels": {"ok": "v", "bad key": "v", "k": "-bad"},
                "annotations": {"Example.com/Any": "x", "not/ok/key": "y"},
                "finalizers": ["example.com/f", "bad finalizer"],
            })),
            true,
            NameRule::Dns1123Subdomain,
        ));
        assert_eq!(errs.len(), 5, "{errs:#?}");
        assert_eq!(
            errs[0],
            "metadata.generation: Invalid value: -1: must be greater than or equal to 0"
        );
        assert!(
            errs[1].starts_with(
                "metadata.labels: Invalid value: \"bad key\": name part must consist of"
            )
        );
        assert!(errs[2].starts_with(
            "metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string"
        ));
        assert!(errs[3].starts_with(
            "metadata.annotations: Invalid value: \"not/ok/key\": a qualified name must consist"
        ));
        assert!(errs[4].starts_with("metadata.finalizers: Invalid value: \"bad finalizer\""));

        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        let errs = show(validate_object_meta(
            &meta(json!({"name": "n", "annotations": {"a": big}})),
            false,
            NameRule::Dns1123Subdomain,
        ));
        assert_eq!(
            errs,
            ["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
        let fits = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT - 1);
        assert!(
            validate_object_meta(
                &meta(json!({"name": "n", "annotations": {"a": fits}})),
                false,
                NameRule::Dns1123Subdomain
            )
            .is_empty()
        );
    }

    #[test]
    fn pod_needs_containers() {
        assert_eq!(
            errors_with(|s| s["containers"] = json!([])),
            ["spec.containers: Required value"]
        );
        let mut p = pod(json!({}));
        p.spec = None;
        assert_eq!(errors_of(&p), ["spec.containers: Required value"]);
    }

    #[test]
    fn container_names_and_images() {
        let errs = errors_with(|s| {
            s["containers"][0]["image"] = json!("");
            s["containers"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "app", "image": " nginx"}));
            s["containers"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "", "image": "x"}));
            s["containers"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "Bad", "image": "x"}));
            s["initContainers"][0]["name"] = json!("app");
        });
        assert_eq!(errs.len(), 6, "{errs:#?}");
        assert_eq!(errs[0], "spec.containers[0].image: Required value");
        assert_eq!(errs[1], "spec.containers[1].name: Duplicate value: \"app\"");
        assert_eq!(
            errs[2],
            "spec.containers[1].image: Invalid value: \" nginx\": must not have leading or trailing whitespace"
        );
        assert_eq!(errs[3], "spec.containers[2].name: Required value");
        assert!(errs[4].starts_with(
            "spec.containers[3].name: Invalid value: \"Bad\": a lowercase RFC 1123 label"
        ));
        assert_eq!(
            errs[5],
            "spec.initContainers[0].name: Duplicate value: \"app\""
        );
    }

    #[test]
    fn ports() {
        let errs = errors_with(|s| {
            s["containers"][0]["ports"] = json!([
                {"name": "http", "containerPort": 80},
                {"name": "http", "containerPort": 81},
                {"name": "8080", "containerPort": 0, "protocol": "ICMP"},
                {"containerPort": 70000, "hostPort": 70000},
                {"containerPort": 90, "hostPort": 8080, "hostIP": "nope"},
                {"containerPort": 91, "hostPort": 8080},
            ]);
        });
        assert_eq!(
            errs,
            [
                "spec.containers[0].ports[1].name: Duplicate value: \"http\"",
                "spec.containers[0].ports[2].name: Invalid value: \"8080\": must contain at least one letter (a-z)",
                "spec.containers[0].ports[2].containerPort: Required value",
                "spec.containers[0].ports[2].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.containers[0].ports[3].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[3].hostPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[4].hostIP: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ],
            "{errs:#?}"
        );
        // Host ports clash across containers of the pod.
        let errs = errors_with(|s| {
            s["containers"][0]["ports"] =
                json!([{"name": "http", "containerPort": 80, "hostPort": 8080}]);
            s["containers"].as_array_mut().unwrap().push(json!({"name": "b", "image": "x", "ports": [{"containerPort": 81, "hostPort": 8080, "protocol": "TCP"}, {"containerPort": 81, "hostPort": 8080, "protocol": "UDP"}]}));
        });
        assert_eq!(
            errs,
            ["spec.containers[1].ports[0].hostPort: Duplicate value: \"/TCP/8080\""]
        );
    }

    #[test]
    fn env_vars() {
        let errs = errors_with(|s| {
            s["containers"][0]["env"] = json!([
                {"name": "", "value": "x"},
                {"name": "A=B"},
                {"name": "F", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}},
                {"name": "G", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['ok.example.com/x']"}}},
                {"name": "H", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName['x']"}}},
                {"name": "I", "value": "v", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "J", "valueFrom": {}},
                {"name": "K", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}, "resourceFieldRef": {"resource": "limits.cpu"}}},
                {"name": "L", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}},
                {"name": "M", "valueFrom": {"fieldRef": {"apiVersion": "v2", "fieldPath": "metadata.name"}}},
                {"name": "N", "valueFrom": {"secretKeyRef": {"name": "s", "key": ""}}},
                {"name": "O", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['bad key']"}}},
            ]);
        });
        let want_prefixes = [
            "spec.containers[0].env[0].name: Required value",
            "spec.containers[0].env[1].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
            "spec.containers[0].env[2].valueFrom.fieldRef.fieldPath: Unsupported value: \"status.phase\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\"",
            "spec.containers[0].env[4].valueFrom.fieldRef: Invalid value: \"spec.nodeName\": does not support subscript",
            "spec.containers[0].env[5].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
            "spec.containers[0].env[6].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            "spec.containers[0].env[7].valueFrom: Invalid value: \"\": may not have more than one field specified at a time",
            "spec.containers[0].env[8].valueFrom.resourceFieldRef.resource: Unsupported value: \"limits.gpu\"",
            "spec.containers[0].env[9].valueFrom.fieldRef.fieldPath: Invalid value: \"metadata.name\": error converting fieldPath: unsupported pod version: v2",
            "spec.containers[0].env[10].valueFrom.secretKeyRef.key: Required value",
            "spec.containers[0].env[11].valueFrom.fieldRef: Invalid value: \"bad key\": name part must consist of",
        ];
        assert_eq!(errs.len(), want_prefixes.len(), "{errs:#?}");
        for (got, want) in errs.iter().zip(want_prefixes) {
            assert!(got.starts_with(want), "{got}\n  wanted {want}");
        }
    }

    #[test]
    fn volumes_and_mounts() {
        let errs = errors_with(|s| {
            s["volumes"] = json!([
                {"name": "data", "emptyDir": {"medium": "Disk"}},
                {"name": "data", "hostPath": {"path": "relative/../x", "type": "Pipe"}},
                {"name": "Bad"},
                {"name": "two", "emptyDir": {}, "hostPath": {"path": "/x"}},
                {"name": "lim", "emptyDir": {"sizeLimit": "-1Gi"}},
                {"name": "hp", "hostPath": {"path": ""}},
            ]);
            s["containers"][0]["volumeMounts"] = json!([
                {"name": "data", "mountPath": "/data"},
                {"name": "x", "mountPath": "rel"},
                {"name": "two", "mountPath": "/data", "subPath": "/abs/../p"},
                {"name": "", "mountPath": ""},
            ]);
        });
        assert_eq!(
            errs,
            [
                "spec.volumes[0].emptyDir.medium: Unsupported value: \"Disk\": supported values: \"\", \"Memory\"",
                "spec.volumes[1].name: Duplicate value: \"data\"",
                "spec.volumes[1].hostPath.path: Invalid value: \"relative/../x\": must be an absolute path",
                "spec.volumes[1].hostPath.path: Invalid value: \"relative/../x\": must not contain '..'",
                "spec.volumes[1].hostPath.type: Unsupported value: \"Pipe\": supported values: \"\", \"BlockDevice\", \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", \"File\", \"FileOrCreate\", \"Socket\"",
                "spec.volumes[2].name: Invalid value: \"Bad\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                "spec.volumes[2]: Required value: must specify a volume type",
                "spec.volumes[3].hostPath: Forbidden: may not specify more than 1 volume type",
                "spec.volumes[4].emptyDir.sizeLimit: Invalid value: \"-1Gi\": must be greater than or equal to 0",
                "spec.volumes[5].hostPath.path: Required value",
                "spec.containers[0].volumeMounts[1].name: Not found: \"x\"",
                "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"rel\": must be an absolute path",
                "spec.containers[0].volumeMounts[2].mountPath: Invalid value: \"/data\": must be unique",
                "spec.containers[0].volumeMounts[2].subPath: Invalid value: \"/abs/../p\": must be a relative path",
                "spec.containers[0].volumeMounts[2].subPath: Invalid value: \"/abs/../p\": must not contain '..'",
                "spec.containers[0].volumeMounts[3].name: Required value",
                "spec.containers[0].volumeMounts[3].mountPath: Required value",
            ],
            "{errs:#?}"
        );
        // Sources other than emptyDir and hostPath are accepted.
        let errs = errors_with(|s| {
            s["volumes"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "cfg", "configMap": {"name": "c"}}));
        });
        assert!(errs.is_empty(), "{errs:#?}");
    }

    #[test]
    fn probes() {
        let errs = errors_with(|s| {
            let c = &mut s["containers"][0];
            c["livenessProbe"] = json!({"successThreshold": 2, "timeoutSeconds": 0, "periodSeconds": -1, "initialDelaySeconds": -5, "terminationGracePeriodSeconds": 0});
            c["readinessProbe"] =
                json!({"exec": {"command": []}, "tcpSocket": {"port": 80}, "httpGet": {"port": 0}});
            c["startupProbe"] =
                json!({"httpGet": {"port": "metrics", "scheme": "FTP"}, "successThreshold": 3});
        });
        assert_eq!(
            errs,
            [
                "spec.containers[0].livenessProbe: Required value: must specify a handler type",
                "spec.containers[0].livenessProbe.initialDelaySeconds: Invalid value: -5: must be greater than or equal to 0",
                "spec.containers[0].livenessProbe.timeoutSeconds: Invalid value: 0: must be greater than or equal to 1",
                "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
                "spec.containers[0].livenessProbe.terminationGracePeriodSeconds: Invalid value: 0: must be greater than 0",
                "spec.containers[0].readinessProbe.exec.command: Required value",
                "spec.containers[0].readinessProbe.httpGet: Forbidden: may not specify more than 1 handler type",
                "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
                "spec.containers[0].startupProbe.httpGet.port: Invalid value: \"metrics\": must be the name of one of the container's ports",
                "spec.containers[0].startupProbe.httpGet.scheme: Unsupported value: \"FTP\": supported values: \"HTTP\", \"HTTPS\"",
                "spec.containers[0].startupProbe.successThreshold: Invalid value: 3: must be 1",
            ],
            "{errs:#?}"
        );
        let errs = errors_with(|s| {
            s["containers"][0]["readinessProbe"] = json!({"tcpSocket": {"port": "Bad-"}});
            s["containers"][0]["livenessProbe"] = json!({"grpc": {"port": 0}});
        });
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert_eq!(
            errs[0],
            "spec.containers[0].livenessProbe.grpc.port: Invalid value: 0: must be between 1 and 65535, inclusive"
        );
        assert!(errs[1].starts_with(
            "spec.containers[0].readinessProbe.tcpSocket.port: Invalid value: \"Bad-\""
        ));
        // Init containers may only have probes when they are sidecars.
        let errs = errors_with(|s| {
            s["initContainers"][0]["readinessProbe"] = json!({"exec": {"command": ["true"]}});
            s["initContainers"].as_array_mut().unwrap().push(
                json!({"name": "side", "image": "x", "restartPolicy": "Always",
                "readinessProbe": {"exec": {"command": ["true"]}}}),
            );
            s["initContainers"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "bad", "image": "x", "restartPolicy": "Never"}));
            s["containers"][0]["restartPolicy"] = json!("Always");
        });
        assert_eq!(
            errs,
            [
                "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
                "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
                "spec.initContainers[2].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ],
            "{errs:#?}"
        );
    }

    #[test]
    fn lifecycle_handlers() {
        let errs = errors_with(|s| {
            s["containers"][0]["lifecycle"] =
                json!({"postStart": {}, "preStop": {"sleep": {"seconds": -1}}});
        });
        assert_eq!(
            errs,
            [
                "spec.containers[0].lifecycle.postStart: Required value: must specify a handler type",
                "spec.containers[0].lifecycle.preStop.sleep.seconds: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
    }

    #[test]
    fn resources() {
        let errs = errors_with(|s| {
            s["containers"][0]["resources"] = json!({
                "limits": {"cpu": "500m", "memory": "5Mx", "gpu": "1", "example.com/gpu": "1.5", "hugepages-2Mi": "4Mi", "bad name!": "1"},
                "requests": {"cpu": "1", "memory": "-1", "example.com/fpga": "1", "hugepages-2Mi": "2Mi"},
            });
        });
        assert_eq!(errs.len(), 8, "{errs:#?}");
        let want_prefixes = [
            "spec.containers[0].resources.limits[bad name!]: Invalid value: \"bad name!\": name part must consist of",
            "spec.containers[0].resources.limits[example.com/gpu]: Invalid value: \"1.5\": must be an integer",
            "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
            "spec.containers[0].resources.limits[memory]: Invalid value: \"5Mx\": quantities must match the regular expression",
            "spec.containers[0].resources.requests[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
            "spec.containers[0].resources.requests: Invalid value: \"1\": must be less than or equal to cpu limit of 500m",
            "spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources",
            "spec.containers[0].resources.requests: Invalid value: \"2Mi\": must be equal to hugepages-2Mi limit of 4Mi",
        ];
        for want in want_prefixes {
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "missing {want}\n{errs:#?}"
            );
        }
        // Equal values written differently are equal.
        let errs = errors_with(|s| {
            s["containers"][0]["resources"] = json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1024Mi"}});
        });
        assert!(errs.is_empty(), "{errs:#?}");
    }

    #[test]
    fn pod_level_fields() {
        let errs = errors_with(|s| {
            s["restartPolicy"] = json!("Sometimes");
            s["dnsPolicy"] = json!("None");
            s["terminationGracePeriodSeconds"] = json!(-1);
            s["activeDeadlineSeconds"] = json!(0);
            s["hostname"] = json!("web.0");
            s["subdomain"] = json!("Group");
            s["hostAliases"] = json!([{"ip": "999.0.0.1", "hostnames": ["ok.local", ""]}]);
            s["nodeSelector"] = json!({"disk": "fast ssd"});
            s["nodeName"] = json!("Node_1");
            s["containers"][0]["imagePullPolicy"] = json!("Sometimes");
            s["containers"][0]["terminationMessagePolicy"] = json!("Log");
        });
        let want_prefixes = [
            "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
            "spec.containers[0].terminationMessagePolicy: Unsupported value: \"Log\": supported values: \"FallbackToLogsOnError\", \"File\"",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\", \"OnFailure\"",
            "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None",
            "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0",
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
            "spec.hostname: Invalid value: \"web.0\": must not contain dots",
            "spec.subdomain: Invalid value: \"Group\": a lowercase RFC 1123 label",
            "spec.hostAliases[0].ip: Invalid value: \"999.0.0.1\": must be a valid IP address",
            "spec.hostAliases[0].hostnames[1]: Invalid value: \"\": a lowercase RFC 1123 subdomain",
            "spec.nodeSelector: Invalid value: \"fast ssd\": a valid label must be an empty string",
            "spec.nodeName: Invalid value: \"Node_1\": a lowercase RFC 1123 subdomain",
        ];
        assert_eq!(errs.len(), want_prefixes.len(), "{errs:#?}");
        for (got, want) in errs.iter().zip(want_prefixes) {
            assert!(got.starts_with(want), "{got}\n  wanted {want}");
        }
        let errs = errors_with(|s| s["dnsPolicy"] = json!("Cluster"));
        assert_eq!(
            errs,
            [
                "spec.dnsPolicy: Unsupported value: \"Cluster\": supported values: \"ClusterFirst\", \"ClusterFirstWithHostNet\", \"Default\", \"None\""
            ]
        );
        let errs = errors_with(|s| s["restartPolicy"] = json!(""));
        assert_eq!(errs, ["spec.restartPolicy: Required value"]);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errs = errors_with(|s| {
            s["containers"][0]["image"] = json!("");
            s["restartPolicy"] = json!("Sometimes");
            s["volumes"][0]["name"] = json!("Data");
        });
        assert_eq!(errs.len(), 4, "{errs:#?}");
    }

    fn update_errors(edit: impl FnOnce(&mut Pod)) -> Vec<String> {
        let old = pod(good_spec());
        let mut new = old.clone();
        edit(&mut new);
        validate_pod_update(&old, &new)
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn pod_updates_allow_only_some_changes() {
        assert!(update_errors(|_| {}).is_empty());
        assert!(
            update_errors(|p| {
                let spec = p.spec.as_mut().unwrap();
                spec.containers[0].image = Some("nginx:1.26".into());
                spec.init_containers.as_mut().unwrap()[0].image = Some("busybox:2".into());
                spec.active_deadline_seconds = None;
                spec.tolerations = Some(vec![Toleration {
                    key: Some("k".into()),
                    operator: Some("Exists".into()),
                    ..Default::default()
                }]);
                spec.node_name = Some("node-1".into());
            })
            .is_empty()
        );
        // Unset and empty are the same.
        assert!(
            update_errors(|p| p.spec.as_mut().unwrap().image_pull_secrets = Some(vec![]))
                .is_empty()
        );

        let errs =
            update_errors(|p| p.spec.as_mut().unwrap().restart_policy = Some("Never".into()));
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with(&format!("spec: Forbidden: {POD_UPDATE_FORBIDDEN}")),
            "{}",
            errs[0]
        );
        assert!(
            errs[0].ends_with("changed: spec.restartPolicy"),
            "{}",
            errs[0]
        );

        let errs = update_errors(|p| p.spec.as_mut().unwrap().containers[0].ports = None);
        assert!(
            errs.iter()
                .any(|e| e.ends_with("changed: spec.containers[0].ports")),
            "{errs:#?}"
        );

        let errs = update_errors(|p| {
            p.spec.as_mut().unwrap().containers.push(Container {
                name: "b".into(),
                image: Some("x".into()),
                ..Default::default()
            });
        });
        assert_eq!(
            errs,
            ["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );

        let errs = update_errors(|p| p.metadata.name = Some("other".into()));
        assert_eq!(
            errs,
            ["metadata.name: Invalid value: \"other\": field is immutable"]
        );
    }

    #[test]
    fn pod_update_special_fields() {
        let with = |edit_old: &dyn Fn(&mut PodSpec), edit_new: &dyn Fn(&mut PodSpec)| {
            let mut old = pod(good_spec());
            edit_old(old.spec.as_mut().unwrap());
            let mut new = old.clone();
            edit_new(new.spec.as_mut().unwrap());
            validate_pod_update(&old, &new)
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        };
        // Binding sets nodeName once; moving a bound pod is forbidden.
        let errs = with(&|s| s.node_name = Some("a".into()), &|s| {
            s.node_name = Some("b".into())
        });
        assert!(errs[0].ends_with("changed: spec.nodeName"), "{errs:?}");
        // activeDeadlineSeconds may only shrink and not go away.
        let errs = with(&|s| s.active_deadline_seconds = Some(10), &|s| {
            s.active_deadline_seconds = Some(20)
        });
        assert_eq!(
            errs,
            [
                "spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value"
            ]
        );
        assert!(
            with(&|s| s.active_deadline_seconds = Some(10), &|s| s
                .active_deadline_seconds =
                Some(5))
            .is_empty()
        );
        let errs = with(&|s| s.active_deadline_seconds = Some(10), &|s| {
            s.active_deadline_seconds = None
        });
        assert_eq!(
            errs,
            [
                "spec.activeDeadlineSeconds: Invalid value: \"null\": must not update from a positive integer to nil value"
            ]
        );
        // Tolerations: additions and tolerationSeconds only.
        let t = |key: &str, seconds: Option<i64>| Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: seconds,
            ..Default::default()
        };
        assert!(
            with(&|s| s.tolerations = Some(vec![t("a", Some(300))]), &|s| s
                .tolerations =
                Some(vec![t("a", Some(60)), t("b", None)]))
            .is_empty()
        );
        let errs = with(&|s| s.tolerations = Some(vec![t("a", None)]), &|s| {
            s.tolerations = Some(vec![t("b", None)])
        });
        assert_eq!(
            errs,
            [
                "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"
            ]
        );
        // A negative grace period may become 1.
        let errs = with(&|s| s.termination_grace_period_seconds = Some(-5), &|s| {
            s.termination_grace_period_seconds = Some(1)
        });
        assert!(
            errs.iter().all(|e| !e.starts_with("spec: Forbidden")),
            "{errs:?}"
        );
        let errs = with(&|s| s.termination_grace_period_seconds = Some(30), &|s| {
            s.termination_grace_period_seconds = Some(1)
        });
        assert!(errs[0].starts_with("spec: Forbidden"), "{errs:?}");
        // The new pod is validated in full, too.
        let errs = with(&|_| {}, &|s| s.containers[0].image = Some(String::new()));
        assert_eq!(errs, ["spec.containers[0].image: Required value"]);
    }

    #[test]
    fn namespaces() {
        let ns = |name: &str, finalizers: &[&str]| Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(NamespaceSpec {
                finalizers: Some(finalizers.iter().map(|s| s.to_string()).collect()),
            }),
            ..Default::default()
        };
        assert!(
            validate_namespace(&ns("team-a", &["kubernetes", "example.com/cleanup"])).is_empty()
        );
        let errs: Vec<String> = validate_namespace(&ns("team.a", &["custom", "a/b/c"]))
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert_eq!(
            errs[0],
            "metadata.name: Invalid value: \"team.a\": must not contain dots"
        );
        assert_eq!(
            errs[1],
            "spec.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"
        );
        assert!(errs[2].starts_with("spec.finalizers: Invalid value: \"a/b/c\": a qualified name"));
    }

    #[test]
    fn nodes() {
        let node = |spec: NodeSpec| Node {
            metadata: ObjectMeta {
                name: Some("node-1.example.com".into()),
                ..Default::default()
            },
            spec: Some(spec),
            ..Default::default()
        };
        assert!(
            validate_node(&node(NodeSpec {
                pod_cidr: Some("10.244.1.0/24".into()),
                pod_cidrs: Some(vec!["10.244.1.0/24".into(), "fd00:1::/64".into()]),
                ..Default::default()
            }))
            .is_empty()
        );
        let show = |n: &Node| {
            validate_node(n)
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        };
        let errs = show(&node(NodeSpec {
            pod_cidr: Some("10.244.1.0".into()),
            pod_cidrs: Some(vec!["10.0.0.0/8".into(), "10.1.0.0/16".into()]),
            taints: Some(vec![
                Taint {
                    key: "dedicated".into(),
                    effect: "NoSchedule".into(),
                    value: Some("gpu".into()),
                    ..Default::default()
                },
                Taint {
                    key: "dedicated".into(),
                    effect: "NoSchedule".into(),
                    ..Default::default()
                },
                Taint {
                    key: "bad key".into(),
                    effect: "Sometimes".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }));
        assert_eq!(errs.len(), 5, "{errs:#?}");
        assert_eq!(
            errs[0],
            "spec.podCIDR: Invalid value: \"10.244.1.0\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
        );
        assert_eq!(
            errs[1],
            "spec.podCIDRs: Invalid value: [\"10.0.0.0/8\", \"10.1.0.0/16\"]: may specify no more than one CIDR for each IP family"
        );
        assert_eq!(
            errs[2],
            "spec.taints[1]: Duplicate value: \"dedicated:NoSchedule\": taints must be unique by key and effect pair"
        );
        assert!(errs[3].starts_with("spec.taints[2].key: Invalid value: \"bad key\""));
        assert!(errs[4].starts_with("spec.taints[2].effect: Unsupported value: \"Sometimes\""));
        let mut n = node(NodeSpec::default());
        n.metadata.name = Some("Node_1".into());
        n.status = Some(
            serde_json::from_value(json!({"capacity": {"cpu": "4", "memory": "lots"}})).unwrap(),
        );
        let errs = show(&n);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(errs[1].starts_with("status.capacity[memory]: Invalid value: \"lots\""));
    }

    #[test]
    fn events() {
        let event = |ns: &str, involved_ns: Option<&str>, name: Option<&str>| Event {
            metadata: ObjectMeta {
                name: Some("web.17a".into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: name.map(Into::into),
                namespace: involved_ns.map(Into::into),
                ..Default::default()
            },
            reason: Some("Started".into()),
            ..Default::default()
        };
        let show = |e: &Event| {
            validate_event(e)
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        };
        assert!(show(&event("team", Some("team"), Some("web"))).is_empty());
        // Events about cluster-scoped objects go to "default".
        assert!(show(&event("default", None, Some("node-1"))).is_empty());
        assert_eq!(
            show(&event("team", Some("other"), Some("web"))),
            ["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"]
        );
        assert_eq!(
            show(&event("team", None, Some("web"))),
            ["involvedObject.namespace: Invalid value: \"\": does not match event.namespace"]
        );
        assert_eq!(
            show(&event("team", Some("team"), None)),
            ["involvedObject.name: Required value"]
        );
        let mut e = event("default", None, Some("n"));
        e.event_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            "2024-01-01T00:00:00Z".parse().unwrap(),
        ));
        assert_eq!(
            show(&e),
            [
                "reportingComponent: Required value",
                "reportingInstance: Required value",
                "action: Required value"
            ]
        );
    }

    #[test]
    fn typed_helpers_build_pods_too() {
        // The same rules apply to pods built in code rather than from JSON.
        let p = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some("img".into()),
                    ports: Some(vec![ContainerPort {
                        container_port: 8080,
                        name: Some("web".into()),
                        ..Default::default()
                    }]),
                    liveness_probe: Some(Probe {
                        tcp_socket: Some(TCPSocketAction {
                            port: IntOrString::String("web".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    readiness_probe: Some(Probe {
                        http_get: Some(HTTPGetAction {
                            port: IntOrString::Int(8080),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    startup_probe: Some(Probe {
                        exec: Some(ExecAction {
                            command: Some(vec!["true".into()]),
                        }),
                        ..Default::default()
                    }),
                    volume_mounts: Some(vec![VolumeMount {
                        name: "v".into(),
                        mount_path: "/v".into(),
                        ..Default::default()
                    }]),
                    env: Some(vec![EnvVar {
                        name: "N".into(),
                        value_from: Some(EnvVarSource {
                            field_ref: Some(ObjectFieldSelector {
                                field_path: "status.podIP".into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                volumes: Some(vec![
                    Volume {
                        name: "v".into(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Default::default()
                    },
                    Volume {
                        name: "h".into(),
                        host_path: Some(HostPathVolumeSource {
                            path: "/h".into(),
                            type_: Some(String::new()),
                        }),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(errors_of(&p), Vec::<String>::new());
    }
}
