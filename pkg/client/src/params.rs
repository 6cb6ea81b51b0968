//! Request parameters and how they become query strings and bodies. Selectors carry `=`,
//! `!`, `,`, spaces and parentheses, so every value is percent-encoded; only RFC 3986's
//! unreserved characters go through as they are.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

/// Everything but `A-Z a-z 0-9 - . _ ~`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Encodes one query value (or key).
pub fn encode_query_value(value: &str) -> String {
    utf8_percent_encode(value, UNRESERVED).to_string()
}

/// Encodes one path segment (a name or namespace), so that no name can change the path.
pub(crate) fn encode_path_segment(segment: &str) -> String {
    utf8_percent_encode(segment, UNRESERVED).to_string()
}

/// A query string under construction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn new() -> Query {
        Query::default()
    }

    pub fn push(&mut self, key: &str, value: impl ToString) -> &mut Query {
        self.pairs.push((key.to_string(), value.to_string()));
        self
    }

    pub fn push_opt(&mut self, key: &str, value: Option<impl ToString>) -> &mut Query {
        if let Some(value) = value {
            self.push(key, value);
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// `k=v&k2=v2`, encoded, without the `?`.
    pub fn encode(&self) -> String {
        self.pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode_query_value(k), encode_query_value(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// `path?query`, or `path` alone when there is nothing to add.
    pub fn append_to(&self, path: &str) -> String {
        if self.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", self.encode())
        }
    }
}

/// Parameters of a list (and of a watch: selectors and timeout).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListParams {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<u32>,
    /// The `continue` token of the previous page.
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    /// Asks the server to end a watch after this long.
    pub timeout_seconds: Option<u32>,
}

impl ListParams {
    pub fn labels(mut self, selector: &str) -> ListParams {
        self.label_selector = Some(selector.to_string());
        self
    }

    pub fn fields(mut self, selector: &str) -> ListParams {
        self.field_selector = Some(selector.to_string());
        self
    }

    pub fn limit(mut self, limit: u32) -> ListParams {
        self.limit = Some(limit);
        self
    }

    pub fn continue_token(mut self, token: &str) -> ListParams {
        self.continue_token = Some(token.to_string());
        self
    }

    pub fn timeout(mut self, seconds: u32) -> ListParams {
        self.timeout_seconds = Some(seconds);
        self
    }

    fn push_selectors(&self, query: &mut Query) {
        query.push_opt(
            "labelSelector",
            self.label_selector.as_deref().filter(|s| !s.is_empty()),
        );
        query.push_opt(
            "fieldSelector",
            self.field_selector.as_deref().filter(|s| !s.is_empty()),
        );
    }

    pub(crate) fn list_query(&self) -> Query {
        let mut query = Query::new();
        self.push_selectors(&mut query);
        query.push_opt("limit", self.limit);
        query.push_opt(
            "continue",
            self.continue_token.as_deref().filter(|s| !s.is_empty()),
        );
        query.push_opt(
            "resourceVersion",
            self.resource_version.as_deref().filter(|s| !s.is_empty()),
        );
        query.push_opt("timeoutSeconds", self.timeout_seconds);
        query
    }

    pub(crate) fn watch_query(&self, resource_version: &str) -> Query {
        let mut query = Query::new();
        query.push("watch", "true");
        self.push_selectors(&mut query);
        if !resource_version.is_empty() {
            query.push("resourceVersion", resource_version);
        }
        query.push("allowWatchBookmarks", "true");
        query.push_opt("timeoutSeconds", self.timeout_seconds);
        query
    }
}

/// How the server treats fields it does not know (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

impl FieldValidation {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldValidation::Strict => "Strict",
            FieldValidation::Warn => "Warn",
            FieldValidation::Ignore => "Ignore",
        }
    }
}

/// Parameters of create, replace and patch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PostParams {
    pub field_validation: Option<FieldValidation>,
    /// Validate and default, but store nothing (`dryRun=All`).
    pub dry_run: bool,
    pub field_manager: Option<String>,
}

impl PostParams {
    pub(crate) fn query(&self) -> Query {
        let mut query = Query::new();
        if self.dry_run {
            query.push("dryRun", "All");
        }
        query.push_opt("fieldValidation", self.field_validation.map(|v| v.as_str()));
        query.push_opt("fieldManager", self.field_manager.as_deref());
        query
    }
}

/// A patch and its kind; the kind picks the `Content-Type`.
#[derive(Clone, Debug, PartialEq)]
pub enum Patch {
    /// RFC 7386 JSON merge patch.
    Merge(Value),
    /// Kubernetes strategic merge patch (lists merged by key).
    Strategic(Value),
    /// RFC 6902 JSON patch: an array of operations.
    Json(Value),
}

impl Patch {
    pub fn content_type(&self) -> &'static str {
        match self {
            Patch::Merge(_) => "application/merge-patch+json",
            Patch::Strategic(_) => "application/strategic-merge-patch+json",
            Patch::Json(_) => "application/json-patch+json",
        }
    }

    pub fn body(&self) -> &Value {
        match self {
            Patch::Merge(v) | Patch::Strategic(v) | Patch::Json(v) => v,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagationPolicy {
    Orphan,
    Background,
    Foreground,
}

impl PropagationPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PropagationPolicy::Orphan => "Orphan",
            PropagationPolicy::Background => "Background",
            PropagationPolicy::Foreground => "Foreground",
        }
    }
}

/// Delete only if the object is still this one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteParams {
    /// `0` deletes at once; unset leaves the object's own grace period.
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<PropagationPolicy>,
    pub preconditions: Option<Preconditions>,
    pub dry_run: bool,
}

impl DeleteParams {
    /// `gracePeriodSeconds=0`: what `kubectl delete --now --force` asks for.
    pub fn immediate() -> DeleteParams {
        DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        }
    }

    /// The options go both in the query and in a `DeleteOptions` body: Kubernetes reads
    /// the body when there is one, simpler servers read the query; preconditions only
    /// exist in the body.
    pub(crate) fn query(&self) -> Query {
        let mut query = Query::new();
        query.push_opt("gracePeriodSeconds", self.grace_period_seconds);
        query.push_opt(
            "propagationPolicy",
            self.propagation_policy.map(|p| p.as_str()),
        );
        if self.dry_run {
            query.push("dryRun", "All");
        }
        query
    }

    pub(crate) fn body(&self) -> Option<Value> {
        if *self == DeleteParams::default() {
            return None;
        }
        let mut body = Map::new();
        body.insert("kind".into(), json!("DeleteOptions"));
        body.insert("apiVersion".into(), json!("v1"));
        if let Some(seconds) = self.grace_period_seconds {
            body.insert("gracePeriodSeconds".into(), json!(seconds));
        }
        if let Some(policy) = self.propagation_policy {
            body.insert("propagationPolicy".into(), json!(policy.as_str()));
        }
        if let Some(pre) = &self.preconditions {
            let mut p = Map::new();
            if let Some(uid) = &pre.uid {
                p.insert("uid".into(), json!(uid));
            }
            if let Some(rv) = &pre.resource_version {
                p.insert("resourceVersion".into(), json!(rv));
            }
            body.insert("preconditions".into(), Value::Object(p));
        }
        if self.dry_run {
            body.insert("dryRun".into(), json!(["All"]));
        }
        Some(Value::Object(body))
    }
}

/// Parameters of `pods/{name}/log`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogParams {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    pub limit_bytes: Option<i64>,
}

impl LogParams {
    pub(crate) fn query(&self) -> Query {
        let mut query = Query::new();
        query.push_opt("container", self.container.as_deref());
        if self.follow {
            query.push("follow", "true");
        }
        if self.previous {
            query.push("previous", "true");
        }
        if self.timestamps {
            query.push("timestamps", "true");
        }
        query.push_opt("tailLines", self.tail_lines);
        query.push_opt("sinceSeconds", self.since_seconds);
        query.push_opt("limitBytes", self.limit_bytes);
        query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_percent_encoded() {
        let lp = ListParams::default()
            .labels("app in (web, api),tier!=db,!legacy")
            .fields("spec.nodeName=node-1")
            .limit(50);
        assert_eq!(
            lp.list_query().append_to("/api/v1/pods"),
            "/api/v1/pods?labelSelector=app%20in%20%28web%2C%20api%29%2Ctier%21%3Ddb%2C%21legacy\
             &fieldSelector=spec.nodeName%3Dnode-1&limit=50"
        );
    }

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(encode_query_value("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(
            encode_query_value("a+b&c=d?e#f/g"),
            "a%2Bb%26c%3Dd%3Fe%23f%2Fg"
        );
        assert_eq!(encode_query_value("é"), "%C3%A9");
        // A continue token is opaque base64: `+`, `/` and `=` must survive.
        let lp = ListParams::default().continue_token("eyJ2Ijoi+/=");
        assert_eq!(lp.list_query().encode(), "continue=eyJ2Ijoi%2B%2F%3D");
        assert_eq!(encode_path_segment("a/b"), "a%2Fb");
    }

    #[test]
    fn empty_params_add_nothing() {
        assert_eq!(
            ListParams::default()
                .list_query()
                .append_to("/api/v1/nodes"),
            "/api/v1/nodes"
        );
        assert_eq!(PostParams::default().query().append_to("/p"), "/p");
        assert_eq!(DeleteParams::default().body(), None);
    }

    #[test]
    fn watch_query_asks_for_bookmarks() {
        let lp = ListParams::default().labels("a=b").limit(5);
        assert_eq!(
            lp.watch_query("42").encode(),
            "watch=true&labelSelector=a%3Db&resourceVersion=42&allowWatchBookmarks=true"
        );
    }

    #[test]
    fn post_params_query() {
        let pp = PostParams {
            field_validation: Some(FieldValidation::Strict),
            dry_run: true,
            field_manager: None,
        };
        assert_eq!(pp.query().encode(), "dryRun=All&fieldValidation=Strict");
    }

    #[test]
    fn delete_options_body() {
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: Some("u-1".into()),
                resource_version: None,
            }),
            dry_run: false,
        };
        assert_eq!(
            dp.body().unwrap(),
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                   "propagationPolicy": "Background", "preconditions": {"uid": "u-1"}})
        );
        assert_eq!(
            dp.query().encode(),
            "gracePeriodSeconds=0&propagationPolicy=Background"
        );
    }

    #[test]
    fn log_query() {
        let lp = LogParams {
            container: Some("app".into()),
            follow: true,
            tail_lines: Some(10),
            ..LogParams::default()
        };
        assert_eq!(
            lp.query().encode(),
            "container=app&follow=true&tailLines=10"
        );
    }
}
