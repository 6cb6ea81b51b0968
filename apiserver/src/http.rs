//! The HTTP layer: turns a request into a registry call and its result into a response.
//! Paths are parsed into a [`Target`] the way Kubernetes' request-info parser does, so one
//! handler serves every resource.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minik8s_api::query::is_true;
use minik8s_api::resource::{self, ResourceInfo};
use minik8s_storage::EventKind;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::controllers::garbage_collector;
use crate::discovery;
use crate::dry_run;
use crate::error::{ApiError, MAX_BODY_BYTES, Result};
use crate::exec;
use crate::object;
use crate::patch::PatchType;
use crate::printers::{self, IncludeObject};
use crate::protobuf;
use crate::registry::{
    DeleteParams, Deleted, FieldValidation, Filter, ListParams, Registry, Written,
};
use crate::scale;
use crate::strategy::Part;
use crate::watch_cache::CachedEvent;

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// How often a watch with `allowWatchBookmarks=true` gets a bookmark.
    pub bookmark_interval: Duration,
    /// The longest a watch stays open without `timeoutSeconds`.
    pub max_watch: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bookmark_interval: Duration::from_secs(60),
            max_watch: Duration::from_secs(1800),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub config: HttpConfig,
    /// Talks to kubelets (container logs).
    pub kubelet_client: reqwest::Client,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/version", get(|| async { json_ok(&discovery::version()) }))
        .route("/healthz", get(health))
        .route("/readyz", get(health))
        .route("/livez", get(health))
        .route("/api", get(api_versions))
        .route(
            "/apis",
            get(|| async { json_ok(&discovery::api_group_list()) }),
        )
        .route(
            "/openapi/v3",
            get(|| async { json_ok(&discovery::openapi_root()) }),
        )
        .route(
            "/openapi/v3/api/v1",
            get(|| async { json_ok(&discovery::openapi_core_v1()) }),
        )
        .route(
            "/api/v1",
            get(|| async { json_ok(&discovery::core_v1_resources()) }),
        )
        .route(
            "/api/v1/",
            get(|| async { json_ok(&discovery::core_v1_resources()) }),
        )
        .route("/api/v1/{*path}", axum::routing::any(core_v1))
        .route("/apis/{group}", get(api_group))
        .route("/apis/{group}/{version}", get(group_resources))
        .route("/apis/{group}/{version}/", get(group_resources))
        .route(
            "/apis/{group}/{version}/{*path}",
            axum::routing::any(group_api),
        )
        .route("/openapi/v3/apis/{group}/{version}", get(group_openapi))
        .fallback(|| async { ApiError::NoSuchPath })
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> Response {
    match state.registry.store().current_revision().await {
        Ok(_) => (StatusCode::OK, "ok").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("storage: {e}")).into_response(),
    }
}

async fn api_versions(headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:6443");
    json_ok(&discovery::api_versions(host))
}

fn json_ok(v: &Value) -> Response {
    json_response(StatusCode::OK, v, &[])
}

fn json_bytes(code: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (code, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn json_response(code: StatusCode, v: &Value, warnings: &[String]) -> Response {
    let mut resp = json_bytes(code, serde_json::to_vec(v).unwrap_or_default());
    let h = resp.headers_mut();
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            h.append(header::WARNING, v);
        }
    }
    resp
}

/// A discovery document, or 404 for a group or version we do not serve.
fn document(doc: Option<Value>) -> Response {
    match doc {
        Some(v) => json_ok(&v),
        None => ApiError::NoSuchPath.into_response(),
    }
}

async fn api_group(axum::extract::Path(group): axum::extract::Path<String>) -> Response {
    document(discovery::api_group(&group))
}

async fn group_resources(
    axum::extract::Path((group, version)): axum::extract::Path<(String, String)>,
) -> Response {
    document(discovery::group_resources(&group, &version))
}

async fn group_openapi(
    axum::extract::Path((group, version)): axum::extract::Path<(String, String)>,
) -> Response {
    document(discovery::openapi_group(&group, &version))
}

async fn group_api(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    req: Request,
) -> Response {
    let mut parts = uri.path().trim_start_matches("/apis/").splitn(3, '/');
    let (group, version) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let rest = parts.next().unwrap_or("").to_string();
    if discovery::group_resources(group, version).is_none() {
        return ApiError::NoSuchPath.into_response();
    }
    let group = resource::canonical_group(group).to_string();
    let proto = wants_protobuf(&headers, &uri);
    let result = handle(state, method, &group, &rest, &uri, headers, req.into_body()).await;
    respond(result, proto).await
}

/// What a path under `/api/v1` (or `/apis/{group}/{version}`) names.
#[derive(Debug, PartialEq)]
pub struct Target {
    pub resource: &'static ResourceInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses the part of the path after `/api/v1/` (`group` empty) or after
/// `/apis/{group}/{version}/`.
pub fn parse_target(group: &str, path: &str) -> Result<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let find = |plural: &str| {
        resource::ALL
            .iter()
            .find(|r| r.plural == plural && r.group == group)
            .ok_or(ApiError::NoSuchPath)
    };
    // `/namespaces/{ns}/{resource}/...` names namespaced objects, except for the
    // namespace's own subresources (`/namespaces/{name}/status`).
    if parts.len() >= 3 && parts[0] == "namespaces" && !matches!(parts[2], "status" | "finalize") {
        let r = find(parts[2])?;
        if !r.namespaced || parts.len() > 5 {
            return Err(ApiError::NoSuchPath);
        }
        return Ok(Target {
            resource: r,
            namespace: Some(parts[1].to_string()),
            name: parts.get(3).map(|s| s.to_string()),
            subresource: parts.get(4).map(|s| s.to_string()),
        });
    }
    if parts.is_empty() || parts.len() > 3 || parts[0].is_empty() {
        return Err(ApiError::NoSuchPath);
    }
    Ok(Target {
        resource: find(parts[0])?,
        namespace: None,
        name: parts.get(1).map(|s| s.to_string()),
        subresource: parts.get(2).map(|s| s.to_string()),
    })
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .next()
                .is_some_and(|first| first.contains("as=Table"))
        })
}

async fn read_json(body: Body) -> Result<Value> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::TooLarge)?;
    parse_json(&bytes)
}

fn parse_json(bytes: &Bytes) -> Result<Value> {
    if bytes.is_empty() {
        return Err(ApiError::BadRequest(
            "the request body is empty".to_string(),
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not valid JSON: {e}")))
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string()
}

/// The media type of a `Content-Type` or of one entry of `Accept`, without parameters.
fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

/// Reads an object sent to `r`: JSON, or Kubernetes' protobuf for the kinds that have
/// it (as for a CRD in Kubernetes, our own kinds are JSON only: `415`).
async fn read_object(headers: &HeaderMap, r: &ResourceInfo, body: Body) -> Result<Value> {
    let ct = content_type(headers);
    let proto = protobuf::codec_for(&r.api_version(), r.kind).is_some();
    match media_type(&ct) {
        "" | "application/json" | "*/*" => read_json(body).await,
        protobuf::MEDIA_TYPE if proto => decode_protobuf(&read_bytes(body).await?),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types \
             include: application/json{} (got {other})",
            if proto {
                format!(", {}", protobuf::MEDIA_TYPE)
            } else {
                String::new()
            }
        ))),
    }
}

async fn read_bytes(body: Body) -> Result<Bytes> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::TooLarge)
}

fn decode_protobuf(bytes: &[u8]) -> Result<Value> {
    protobuf::decode(bytes).map_err(|e| match e {
        protobuf::DecodeError::UnknownKind { .. } => ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - {e}"
        )),
        other => ApiError::BadRequest(other.to_string()),
    })
}

/// Whether the client asks for protobuf first in `Accept`, as client-go does with
/// `application/vnd.kubernetes.protobuf,application/json`. Watches stay JSON: a client
/// reads the stream in the content type the response names.
fn wants_protobuf(headers: &HeaderMap, uri: &Uri) -> bool {
    let first = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .and_then(|a| a.split(',').next())
        .unwrap_or("");
    let watch = Query::<HashMap<String, String>>::try_from_uri(uri)
        .is_ok_and(|Query(q)| is_true(q.get("watch").map(String::as_str)));
    media_type(first) == protobuf::MEDIA_TYPE && !first.contains("as=") && !watch
}

/// The response to a request, in protobuf when the client asked for it and the object
/// (or list, or `Status`) has a protobuf form; in JSON otherwise, as Kubernetes answers
/// for a CRD.
async fn respond(result: Result<Response>, proto: bool) -> Response {
    let resp = result.unwrap_or_else(IntoResponse::into_response);
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct == "application/json");
    if !proto || !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::Internal("reading a response".to_string()).into_response();
    };
    let encoded = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| protobuf::encode(&v));
    match encoded {
        Some(Ok(pb)) => {
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(protobuf::MEDIA_TYPE),
            );
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(pb))
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "a stored object has no protobuf form; answered in JSON");
            Response::from_parts(parts, Body::from(bytes))
        }
        None => Response::from_parts(parts, Body::from(bytes)),
    }
}

fn part_of(target: &Target) -> Result<Part> {
    match target.subresource.as_deref() {
        None => Ok(Part::Main),
        Some("status") if target.resource.has_status => Ok(Part::Status),
        Some(_) => Err(ApiError::NoSuchPath),
    }
}

async fn core_v1(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    req: Request,
) -> Response {
    let path = uri
        .path()
        .strip_prefix("/api/v1/")
        .unwrap_or("")
        .to_string();
    // exec, attach and portforward need the whole request, for its upgrade.
    if let Ok(Target {
        resource,
        namespace: Some(ns),
        name: Some(name),
        subresource: Some(sub),
    }) = parse_target("", &path)
        && resource.plural == "pods"
        && matches!(sub.as_str(), "exec" | "attach" | "portforward")
        && matches!(method, Method::GET | Method::POST)
    {
        let result = match sub.as_str() {
            "exec" => exec::pod_exec(&state, &ns, &name, req).await,
            "attach" => exec::pod_attach(&state, &ns, &name, req).await,
            _ => exec::pod_portforward(&state, &ns, &name, req).await,
        };
        return result.unwrap_or_else(IntoResponse::into_response);
    }
    let proto = wants_protobuf(&headers, &uri);
    let result = handle(state, method, "", &path, &uri, headers, req.into_body()).await;
    respond(result, proto).await
}

async fn handle(
    state: AppState,
    method: Method,
    group: &str,
    path: &str,
    uri: &Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let target = parse_target(group, path)?;
    let query: HashMap<String, String> = Query::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let q = |k: &str| query.get(k).map(String::as_str);
    let reg = &state.registry;
    let r = target.resource;
    if let Some(ns) = &target.namespace
        && ns.is_empty()
    {
        return Err(ApiError::NoSuchPath);
    }
    let ns = target.namespace.as_deref();
    let validation = FieldValidation::parse(q("fieldValidation"))?;
    // `dryRun=All`: the same request through a registry that keeps nothing.
    let query_dry_run: Vec<String> = q("dryRun").map(str::to_string).into_iter().collect();
    let options_kind = match method {
        Method::POST => "CreateOptions",
        Method::PUT => "UpdateOptions",
        Method::PATCH => "PatchOptions",
        _ => "DeleteOptions",
    };
    let dry_registry = (method != Method::GET && method != Method::DELETE)
        .then(|| dry_run::requested(options_kind, &query_dry_run))
        .transpose()?
        .unwrap_or(false)
        .then(|| reg.dry_run());
    let writer: &Registry = dry_registry.as_ref().unwrap_or(reg);
    if target.subresource.as_deref() == Some("scale")
        && let Some(name) = target.name.as_deref()
    {
        return scale_request(writer, &target, name, method, &headers, body).await;
    }

    match (&method, target.name.as_deref()) {
        (&Method::GET, None) => {
            let filter = Filter::new(
                r,
                target.namespace.clone(),
                q("labelSelector"),
                q("fieldSelector"),
            )?;
            if is_true(q("watch")) {
                return watch(&state, r, filter, &query, wants_table(&headers)).await;
            }
            let params = ListParams {
                limit: q("limit").and_then(|l| l.parse().ok()),
                continue_token: q("continue").map(str::to_string),
                resource_version: q("resourceVersion").map(str::to_string),
                resource_version_match: q("resourceVersionMatch").map(str::to_string),
            };
            if wants_table(&headers) {
                let (items, rv, cont) = reg.list(r, &filter, &params).await?;
                let mut t =
                    printers::table(r, &items, IncludeObject::parse(q("includeObject")), false);
                t.metadata.resource_version = Some(rv.to_string());
                t.metadata.continue_ = cont;
                return Ok(json_ok(&serde_json::to_value(&t).unwrap_or_default()));
            }
            let (items, rv, cont) = reg.list_json(r, &filter, &params).await?;
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if let Some(c) = cont {
                meta["continue"] = json!(c);
            }
            // The items are already serialized: the list is written around them.
            let mut body = Vec::with_capacity(items.iter().map(Vec::len).sum::<usize>() + 256);
            body.extend_from_slice(
                format!(
                    "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
                    r.list_kind(),
                    r.api_version(),
                    meta
                )
                .as_bytes(),
            );
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(item);
            }
            body.extend_from_slice(b"]}");
            Ok(json_bytes(StatusCode::OK, body))
        }
        (&Method::POST, None) => {
            if r.namespaced && ns.is_none() {
                return Err(ApiError::MethodNotAllowed);
            }
            let obj = read_object(&headers, r, body).await?;
            let Written {
                mut object,
                warnings,
            } = writer.create(r, ns, obj, validation).await?;
            if dry_registry.is_some() {
                // Nothing was stored: the object has no version yet, as in Kubernetes.
                object::meta_mut(&mut object).remove("resourceVersion");
            }
            Ok(json_response(StatusCode::CREATED, &object, &warnings))
        }
        (&Method::GET, Some(name))
            if r.plural == "pods" && target.subresource.as_deref() == Some("log") =>
        {
            pod_log(&state, ns.unwrap_or("default"), name, &query).await
        }
        (&Method::GET, Some(name)) => {
            part_of(&target)?;
            require_scope(&target)?;
            if wants_table(&headers) {
                let obj = reg.get(r, ns, name).await?;
                let t = printers::table(r, &[obj], IncludeObject::parse(q("includeObject")), false);
                return Ok(json_ok(&serde_json::to_value(&t).unwrap_or_default()));
            }
            Ok(json_bytes(StatusCode::OK, reg.get_json(r, ns, name).await?))
        }
        (&Method::PUT, Some(name)) => {
            require_scope(&target)?;
            let part = part_of(&target)?;
            let obj = read_object(&headers, r, body).await?;
            let Written { object, warnings } =
                writer.update(r, ns, name, obj, part, validation).await?;
            Ok(json_response(StatusCode::OK, &object, &warnings))
        }
        (&Method::PATCH, Some(name)) => {
            require_scope(&target)?;
            let part = part_of(&target)?;
            let ct = content_type(&headers);
            let kind = PatchType::from_content_type(&ct).ok_or_else(|| {
                ApiError::UnsupportedMediaType(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {ct})"
                ))
            })?;
            let patch = read_json(body).await?;
            let Written { object, warnings } = writer
                .patch(r, ns, name, kind, &patch, part, validation)
                .await?;
            Ok(json_response(StatusCode::OK, &object, &warnings))
        }
        (&Method::DELETE, Some(name)) => {
            require_scope(&target)?;
            if target.subresource.is_some() {
                return Err(ApiError::MethodNotAllowed);
            }
            let params = delete_params(&headers, body, &query).await?;
            let dry_registry =
                dry_run::requested("DeleteOptions", &params.dry_run)?.then(|| reg.dry_run());
            let reg = dry_registry.as_ref().unwrap_or(reg);
            let mut warnings = Vec::new();
            if r == &resource::JOBS
                && params.propagation_policy.is_none()
                && params.orphan_dependents.is_none()
            {
                warnings.push(garbage_collector::JOB_DEFAULT_WARNING.to_string());
            }
            // Kubernetes answers 202 to a cascading delete that is still under way, when
            // asked for with orphanDependents=false.
            let pending_code = if params.orphan_dependents == Some(false) {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            match reg.delete(r, ns, name, &params).await? {
                Deleted::Pending(obj) => Ok(json_response(pending_code, &obj, &warnings)),
                Deleted::Gone(obj) if r.plural == "pods" => {
                    Ok(json_response(StatusCode::OK, &obj, &warnings))
                }
                Deleted::Gone(obj) => Ok(json_response(
                    StatusCode::OK,
                    &json!({
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": {
                            "name": name,
                            "kind": r.plural,
                            "uid": object::meta_str(&obj, "uid"),
                        },
                    }),
                    &warnings,
                )),
            }
        }
        (&Method::DELETE, None) => {
            // Kubernetes serves deletecollection per namespace only, not across them.
            if r.namespaced && ns.is_none() {
                return Err(ApiError::MethodNotAllowed);
            }
            let params = delete_params(&headers, body, &query).await?;
            let dry_registry =
                dry_run::requested("DeleteOptions", &params.dry_run)?.then(|| reg.dry_run());
            let reg = dry_registry.as_ref().unwrap_or(reg);
            let filter = Filter::new(
                r,
                target.namespace.clone(),
                q("labelSelector"),
                q("fieldSelector"),
            )?;
            let (items, rv) = reg.delete_collection(r, &filter, &params).await?;
            Ok(json_ok(&json!({
                "kind": r.list_kind(),
                "apiVersion": r.api_version(),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": items,
            })))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// The options of a delete: a `DeleteOptions` body (JSON or protobuf), with query
/// parameters for what the body leaves out.
async fn delete_params(
    headers: &HeaderMap,
    body: Body,
    query: &HashMap<String, String>,
) -> Result<DeleteParams> {
    let q = |k: &str| query.get(k).map(String::as_str);
    let bytes = read_bytes(body).await?;
    let mut params: DeleteParams = if bytes.iter().all(u8::is_ascii_whitespace) {
        DeleteParams::default()
    } else if media_type(&content_type(headers)) == protobuf::MEDIA_TYPE {
        serde_json::from_value(decode_protobuf(&bytes)?)
            .map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))?
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))?
    };
    if let Some(g) = q("gracePeriodSeconds") {
        params.grace_period_seconds = Some(
            g.parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid gracePeriodSeconds: {g}")))?,
        );
    }
    if params.propagation_policy.is_none()
        && let Some(p) = q("propagationPolicy")
    {
        params.propagation_policy = Some(p.to_string());
    }
    if params.orphan_dependents.is_none()
        && let Some(o) = q("orphanDependents")
    {
        params.orphan_dependents = Some(
            minik8s_api::query::parse_bool(o)
                .ok_or_else(|| ApiError::BadRequest(format!("invalid orphanDependents: {o}")))?,
        );
    }
    if params.dry_run.is_empty()
        && let Some(d) = q("dryRun")
    {
        params.dry_run = vec![d.to_string()];
    }
    Ok(params)
}

/// `GET`, `PUT` and `PATCH` of a workload's `/scale`.
async fn scale_request(
    reg: &Registry,
    target: &Target,
    name: &str,
    method: Method,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let r = target.resource;
    if !r.has_scale {
        return Err(ApiError::NoSuchPath);
    }
    require_scope(target)?;
    let ns = target.namespace.as_deref();
    let scale = match method {
        Method::GET => scale::get(reg, r, ns, name).await?,
        Method::PUT => {
            let obj = read_object(headers, r, body).await?;
            scale::update(reg, r, ns, name, &obj).await?
        }
        Method::PATCH => {
            let ct = content_type(headers);
            let kind = PatchType::from_content_type(&ct).ok_or_else(|| {
                ApiError::UnsupportedMediaType(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {ct})"
                ))
            })?;
            let patch = read_json(body).await?;
            scale::patch(reg, r, ns, name, kind, &patch).await?
        }
        _ => return Err(ApiError::MethodNotAllowed),
    };
    Ok(json_ok(&scale))
}

/// The container a request about a pod names with `container`: one of the pod's, or
/// its only app container when none is named.
pub(crate) fn pod_container(pod: &Value, name: &str, requested: Option<&String>) -> Result<String> {
    let (apps, inits) = minik8s_api::pod::container_names(pod);
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if apps.contains(c) || inits.contains(c) => Ok(c.clone()),
        Some(c) => Err(ApiError::BadRequest(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if apps.len() == 1 => Ok(apps[0].clone()),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                apps.join(" ")
            );
            if !inits.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    inits.join(" ")
                ));
            }
            Err(ApiError::BadRequest(msg))
        }
    }
}

/// The status of one of the pod's containers (app or init).
pub(crate) fn container_status<'a>(pod: &'a Value, container: &str) -> Option<&'a Value> {
    ["containerStatuses", "initContainerStatuses"]
        .iter()
        .filter_map(|k| pod["status"][k].as_array())
        .flatten()
        .find(|s| s["name"] == container)
}

/// `http://{InternalIP}:{kubelet port}/` of a node.
pub(crate) async fn kubelet_url(state: &AppState, node_name: &str) -> Result<reqwest::Url> {
    let node = state
        .registry
        .get(&resource::NODES, None, node_name)
        .await?;
    let ip = node["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .ok_or_else(|| {
            ApiError::Unavailable(format!("node {node_name} has no InternalIP address"))
        })?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_i64()
        .unwrap_or(10250);
    reqwest::Url::parse(&format!("http://{ip}:{port}/"))
        .map_err(|e| ApiError::Internal(format!("kubelet address: {e}")))
}

/// `pods/{name}/log`: finds the pod's node and streams the container's log from that
/// node's kubelet.
async fn pod_log(
    state: &AppState,
    ns: &str,
    name: &str,
    query: &HashMap<String, String>,
) -> Result<Response> {
    let pod = state.registry.get(&resource::PODS, Some(ns), name).await?;
    let container = pod_container(&pod, name, query.get("container"))?;
    let status = container_status(&pod, &container);
    let started = status.is_some_and(|s| {
        s["state"]["running"].is_object()
            || s["state"]["terminated"].is_object()
            || s["lastState"]["terminated"].is_object()
    });
    let node_name = object::path_string(&pod, "spec.nodeName");
    if node_name.is_empty() || !started {
        let reason = status
            .and_then(|s| s["state"]["waiting"]["reason"].as_str())
            .unwrap_or("ContainerCreating");
        return Err(ApiError::BadRequest(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    }
    let mut url = kubelet_url(state, &node_name).await?;
    url.path_segments_mut()
        .map_err(|_| ApiError::Internal("kubelet address".to_string()))?
        .extend(["containerLogs", ns, name, &container]);
    for key in [
        "follow",
        "previous",
        "timestamps",
        "tailLines",
        "sinceSeconds",
        "limitBytes",
    ] {
        if let Some(v) = query.get(key) {
            url.query_pairs_mut().append_pair(key, v);
        }
    }
    let resp = state.kubelet_client.get(url).send().await.map_err(|e| {
        ApiError::Unavailable(format!("the kubelet on {node_name} is not reachable: {e}"))
    })?;
    if !resp.status().is_success() {
        let code = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let text = text.trim();
        return Err(ApiError::BadRequest(if text.is_empty() {
            format!(
                "the kubelet on {node_name} answered {code} for the logs of container {container} of pod {name}"
            )
        } else {
            text.to_string()
        }));
    }
    let mut out = Response::new(Body::from_stream(resp.bytes_stream()));
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(out)
}

/// A namespaced object must be addressed with its namespace.
fn require_scope(target: &Target) -> Result<()> {
    if target.resource.namespaced && target.namespace.is_none() {
        Err(ApiError::NoSuchPath)
    } else {
        Ok(())
    }
}

/// How a store change looks to one watcher, whose selectors may see an update move an
/// object into or out of its view.
fn event_type(filter: &Filter, ev: &CachedEvent) -> Option<&'static str> {
    let now = filter.matches_view(&ev.view);
    match ev.kind {
        EventKind::Created => now.then_some("ADDED"),
        EventKind::Deleted => now.then_some("DELETED"),
        EventKind::Updated => {
            let before = ev.prev.as_ref().map_or(now, |p| filter.matches_view(p));
            match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            }
        }
    }
}

/// Serializes one watch event line; `table` wraps the object in a one-row `Table`.
struct Encoder {
    resource: &'static ResourceInfo,
    table: bool,
    first: bool,
}

impl Encoder {
    /// An event line around an object already serialized: spliced in as is.
    fn line(&mut self, kind: &str, json: &[u8]) -> Bytes {
        if self.table {
            let obj = serde_json::from_slice(json).unwrap_or(Value::Null);
            return self.table_line(kind, &obj);
        }
        let mut out = Vec::with_capacity(json.len() + 32);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        out.extend_from_slice(json);
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }

    fn table_line(&mut self, kind: &str, obj: &Value) -> Bytes {
        let t = printers::table(
            self.resource,
            std::slice::from_ref(obj),
            IncludeObject::Metadata,
            !self.first,
        );
        self.first = false;
        Self::raw(kind, &serde_json::to_value(&t).unwrap_or_default())
    }

    fn raw(kind: &str, obj: &Value) -> Bytes {
        let mut v = serde_json::to_vec(&json!({"type": kind, "object": obj})).unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    }
}

async fn watch(
    state: &AppState,
    r: &'static ResourceInfo,
    filter: Filter,
    query: &HashMap<String, String>,
    table: bool,
) -> Result<Response> {
    let q = |k: &str| query.get(k).map(String::as_str);
    let rv = q("resourceVersion").unwrap_or("");
    let send_initial = is_true(q("sendInitialEvents"));
    let bookmarks = is_true(q("allowWatchBookmarks"));
    // Kubernetes accepts any timeout; a year is as good as forever and cannot overflow.
    let timeout = q("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(|t| Duration::from_secs(t.min(365 * 86400)))
        .unwrap_or(state.config.max_watch);
    let reg = state.registry.clone();
    let cache = reg.cache(r).clone();

    let (initial, after) = if rv.is_empty() || rv == "0" || send_initial {
        let (items, rev, _) = reg.list_json(r, &filter, &ListParams::default()).await?;
        (items, rev)
    } else {
        let after = rv
            .parse::<i64>()
            .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv}")))?;
        (Vec::new(), after)
    };

    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let mut enc = Encoder {
        resource: r,
        table,
        first: true,
    };
    let bookmark_every = state.config.bookmark_interval;
    let bookmark = move |rev: i64, end_of_initial: bool| {
        let mut meta = json!({"resourceVersion": rev.to_string()});
        if end_of_initial {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        Encoder::raw(
            "BOOKMARK",
            &json!({"kind": r.kind, "apiVersion": r.api_version(), "metadata": meta}),
        )
    };
    match cache.subscribe(after) {
        Err(too_old) => {
            let status = ApiError::Expired(too_old.to_string()).to_status();
            let line = Encoder::raw("ERROR", &serde_json::to_value(&status).unwrap_or_default());
            let _ = tx.try_send(Ok(line));
        }
        Ok(mut sub) => {
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + timeout;
                for obj in &initial {
                    if tx.send(Ok(enc.line("ADDED", obj))).await.is_err() {
                        return;
                    }
                }
                let mut seen = after;
                if send_initial && bookmarks && tx.send(Ok(bookmark(after, true))).await.is_err() {
                    return;
                }
                for ev in sub.replay.drain(..) {
                    seen = ev.revision;
                    if let Some(kind) = event_type(&filter, &ev)
                        && tx.send(Ok(enc.line(kind, &ev.json))).await.is_err()
                    {
                        return;
                    }
                }
                let mut ticker = tokio::time::interval(bookmark_every);
                ticker.tick().await;
                loop {
                    tokio::select! {
                        ev = sub.live.recv() => {
                            // The cache closed this watcher (too slow, or history lost):
                            // ending the stream makes the client re-watch or relist.
                            let Some(ev) = ev else { return };
                            if ev.revision <= seen {
                                continue;
                            }
                            seen = ev.revision;
                            if let Some(kind) = event_type(&filter, &ev)
                                && tx.send(Ok(enc.line(kind, &ev.json))).await.is_err()
                            {
                                return;
                            }
                        }
                        _ = ticker.tick(), if bookmarks => {
                            if tx.send(Ok(bookmark(seen, false))).await.is_err() {
                                return;
                            }
                        }
                        _ = tokio::time::sleep_until(deadline) => return,
                        _ = tx.closed() => return,
                    }
                }
            });
        }
    }
    let mut resp = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_like_kubernetes() {
        let t = parse_target("", "namespaces/default/pods/web/status").unwrap();
        assert_eq!(t.resource.plural, "pods");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.subresource.as_deref(), Some("status"));

        let t = parse_target("", "namespaces/kube-system/status").unwrap();
        assert_eq!(t.resource.plural, "namespaces");
        assert_eq!(t.name.as_deref(), Some("kube-system"));
        assert_eq!(t.subresource.as_deref(), Some("status"));

        let t = parse_target("", "namespaces/foo").unwrap();
        assert_eq!(
            (t.resource.plural, t.name.as_deref()),
            ("namespaces", Some("foo"))
        );

        let t = parse_target("", "pods").unwrap();
        assert_eq!(
            (t.resource.plural, t.namespace, t.name),
            ("pods", None, None)
        );

        assert!(parse_target("", "deployments").is_err());
        assert!(parse_target("", "namespaces/default/nodes").is_err());
        assert!(parse_target("", "namespaces/default/pods/a/b/c").is_err());

        let t = parse_target("minik8s.io", "namespaces/default/tasksets/demo").unwrap();
        assert_eq!(
            (t.resource.plural, t.name.as_deref()),
            ("tasksets", Some("demo"))
        );
        assert!(parse_target("", "namespaces/default/tasksets").is_err());
        assert!(parse_target("minik8s.io", "namespaces/default/pods").is_err());
    }
}
