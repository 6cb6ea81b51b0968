//! The one error type of the API server. Every failed request ends here and becomes a
//! Kubernetes `Status` object with the code and reason a Kubernetes API server would give.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
use minik8s_api::resource::ResourceInfo;
use minik8s_api::validation::FieldError;
use minik8s_storage::Error as StoreError;

/// Bodies larger than this are refused with `413`, as Kubernetes does.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{}", not_found_message(.resource, .name))]
    NotFound {
        resource: &'static ResourceInfo,
        name: String,
    },
    /// A path that names nothing we serve.
    #[error("the server could not find the requested resource")]
    NoSuchPath,
    #[error("{} \"{name}\" already exists", .resource.plural)]
    AlreadyExists {
        resource: &'static ResourceInfo,
        name: String,
    },
    #[error("Operation cannot be fulfilled on {} \"{name}\": {message}", .resource.plural)]
    Conflict {
        resource: &'static ResourceInfo,
        name: String,
        message: String,
    },
    #[error("{}", invalid_message(.resource, .name, .causes))]
    Invalid {
        resource: &'static ResourceInfo,
        name: String,
        causes: Vec<FieldError>,
    },
    #[error("{0}")]
    Expired(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("Request entity too large: limit is {MAX_BODY_BYTES}")]
    TooLarge,
    /// A write that would store too much (a patch blowing up, an object over the limit).
    #[error("{0}")]
    TooLargeObject(String),
    /// Well-formed but not applicable, e.g. a JSON patch whose `test` fails.
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

fn not_found_message(resource: &ResourceInfo, name: &str) -> String {
    if name.is_empty() {
        format!("{} not found", resource.plural)
    } else {
        format!("{} \"{}\" not found", resource.plural, name)
    }
}

fn invalid_message(resource: &ResourceInfo, name: &str, causes: &[FieldError]) -> String {
    let list: Vec<String> = causes.iter().map(|c| c.to_string()).collect();
    let joined = if list.len() == 1 {
        list[0].clone()
    } else {
        format!("[{}]", list.join(", "))
    };
    format!("{} \"{}\" is invalid: {}", resource.kind, name, joined)
}

/// The part of a field error after `field: `, as Kubernetes puts it in `causes[].message`.
fn cause_message(c: &FieldError) -> String {
    let full = c.to_string();
    match full.strip_prefix(&format!("{}: ", c.field)) {
        Some(rest) => rest.to_string(),
        None => full,
    }
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound { .. } | ApiError::NoSuchPath => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Expired(_) => StatusCode::GONE,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::TooLarge | ApiError::TooLargeObject(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Kubernetes' `StatusReason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::NotFound { .. } | ApiError::NoSuchPath => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Expired(_) => "Expired",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::NotAcceptable(_) => "NotAcceptable",
            ApiError::TooLarge | ApiError::TooLargeObject(_) => "RequestEntityTooLarge",
            ApiError::Unprocessable(_) => "Invalid",
            ApiError::Unavailable(_) => "ServiceUnavailable",
            ApiError::Internal(_) => "InternalError",
        }
    }

    fn details(&self) -> Option<StatusDetails> {
        let (resource, name) = match self {
            ApiError::NotFound { resource, name }
            | ApiError::AlreadyExists { resource, name }
            | ApiError::Conflict { resource, name, .. } => (resource, name),
            ApiError::Invalid {
                resource,
                name,
                causes,
            } => {
                return Some(StatusDetails {
                    name: Some(name.clone()),
                    group: Some(resource.group.to_string()).filter(|g| !g.is_empty()),
                    kind: Some(resource.kind.to_string()),
                    causes: Some(
                        causes
                            .iter()
                            .map(|c| StatusCause {
                                field: Some(c.field.clone()),
                                reason: Some(c.kind.reason().to_string()),
                                message: Some(cause_message(c)),
                            })
                            .collect(),
                    ),
                    ..Default::default()
                });
            }
            _ => return None,
        };
        Some(StatusDetails {
            name: Some(name.clone()).filter(|n| !n.is_empty()),
            group: Some(resource.group.to_string()).filter(|g| !g.is_empty()),
            kind: Some(resource.plural.to_string()),
            ..Default::default()
        })
    }

    pub fn to_status(&self) -> Status {
        Status {
            code: Some(i32::from(self.status_code().as_u16())),
            details: self.details(),
            message: Some(self.to_string()),
            reason: Some(self.reason().to_string()),
            status: Some("Failure".to_string()),
            ..Default::default()
        }
    }

    /// Maps a store error on `resource`/`name` to the error a client should see.
    pub fn from_store(err: StoreError, resource: &'static ResourceInfo, name: &str) -> ApiError {
        match err {
            StoreError::AlreadyExists { .. } => ApiError::AlreadyExists {
                resource,
                name: name.to_string(),
            },
            StoreError::NotFound { .. } => ApiError::NotFound {
                resource,
                name: name.to_string(),
            },
            StoreError::Conflict { .. } => ApiError::conflict(resource, name),
            StoreError::Compacted {
                requested,
                compacted,
            } => ApiError::Expired(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            StoreError::FutureRevision { requested, current } => ApiError::Unavailable(format!(
                "Too large resource version: {requested}, current: {current}"
            )),
            StoreError::Closed => ApiError::Unavailable("storage is closed".to_string()),
            other @ StoreError::Etcd(_) => ApiError::Unavailable(other.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }

    pub fn conflict(resource: &'static ResourceInfo, name: &str) -> ApiError {
        ApiError::Conflict {
            resource,
            name: name.to_string(),
            message: "the object has been modified; please apply your changes to the latest \
                      version and try again"
                .to_string(),
        }
    }

    pub fn not_found(resource: &'static ResourceInfo, name: &str) -> ApiError {
        ApiError::NotFound {
            resource,
            name: name.to_string(),
        }
    }
}

/// The JSON body of a `Status`, as served.
pub fn status_json(status: &Status) -> Vec<u8> {
    serde_json::to_vec(status).unwrap_or_else(|_| b"{}".to_vec())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.status_code();
        if code.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        let mut resp = (code, status_json(&self.to_status())).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}
