//! `application/problem+json` (RFC 9457): the one place a domain error becomes an HTTP response,
//! with [`status`] the one table of which error is which status (the console's error page uses
//! it too). The refusals that exist only at the edge ([`Transport`]: body too large, wrong media
//! type, unknown method) and the permission check's ([`Refusal`]) are problems here as well.
//!
//! `type` is `urn:tenantry:problem:{code}`, `title` is derived from the code, and 5xx answers
//! carry only the request id: their cause is logged once, with that id.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;
use crate::rbac::Refusal;
use crate::store;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware for the handler's scope.
    pub static REQUEST_ID: String;
}

/// The current request id, if inside a request.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The problem document.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:tenantry:problem:{code}`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong for this request, and the way out.
    pub detail: String,
    /// Stable snake_case code (`app_not_found`, `invalid_transition`...).
    pub code: String,
    /// The request id (also in the `x-request-id` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `validation_failed`: one entry per bad field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldProblem>>,
    /// `invalid_transition`: the actions allowed now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
}

/// One field's complaint inside a `validation_failed` problem.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = FieldError)]
pub struct FieldProblem {
    /// The request member, e.g. `contact_email`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Title of a problem type: the code in words ("app_not_found" -> "App not found").
fn title(code: &str) -> String {
    let words = code.replace('_', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The HTTP status of a domain error (API.md "Errors").
pub fn status(err: &Error) -> StatusCode {
    match err {
        Error::BadRequest { .. } => StatusCode::BAD_REQUEST,
        Error::Unauthorized(_) | Error::BadSignature(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) | Error::Denied { .. } => StatusCode::FORBIDDEN,
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Gone { .. } => StatusCode::GONE,
        Error::InvalidTransition { .. } | Error::TenantReadOnly { .. } | Error::Conflict { .. } => {
            StatusCode::CONFLICT
        }
        Error::AppNotFound(_) | Error::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::Store(store::Error::Corrupt { .. } | store::Error::Panicked)
        | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        Error::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Refusals that exist only at the HTTP edge: no service returns them.
#[derive(Debug, thiserror::Error)]
pub enum Transport {
    /// 413 `payload_too_large`: the body is over its limit.
    #[error("the request body is larger than the limit (body_limit_bytes, 1 MiB by default)")]
    PayloadTooLarge,
    /// 415 `unsupported_media_type`: a body that is not JSON.
    #[error("send the body as JSON with 'Content-Type: application/json'")]
    UnsupportedMediaType,
    /// 405 `method_not_allowed`.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 408 `request_timeout`: no answer within `[http] request_timeout_secs` (the body's
    /// upload included). A write may still have committed: read before retrying.
    #[error(
        "the request did not complete within {0} s ([http] request_timeout_secs); if it was a change, read the resource before retrying"
    )]
    RequestTimeout(u64),
}

impl Transport {
    fn code(&self) -> &'static str {
        match self {
            Transport::PayloadTooLarge => "payload_too_large",
            Transport::UnsupportedMediaType => "unsupported_media_type",
            Transport::MethodNotAllowed(_) => "method_not_allowed",
            Transport::RequestTimeout(_) => "request_timeout",
        }
    }
    fn status(&self) -> StatusCode {
        match self {
            Transport::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Transport::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Transport::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Transport::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

fn document(status: StatusCode, code: &str, detail: String) -> Problem {
    Problem {
        type_: format!("urn:tenantry:problem:{code}"),
        title: title(code),
        status: status.as_u16(),
        detail,
        code: code.to_string(),
        request_id: current_request_id(),
        errors: None,
        allowed: None,
    }
}

/// Builds the problem for `err`.
pub fn problem(err: &Error) -> (StatusCode, Problem) {
    let status = status(err);
    let code = err.code();
    let detail = if err.is_client_safe() {
        err.to_string()
    } else {
        tracing::error!(error = %err, code, "request failed");
        match err {
            Error::Store(store::Error::Overloaded) => err.to_string(),
            Error::Store(store::Error::Closed) => "the server is shutting down; retry shortly".into(),
            Error::Store(store::Error::Storage(_)) => {
                "the store is unavailable (disk full or I/O error); reads may still work. The cause is logged with this request id".into()
            }
            _ => "internal error; the cause is logged with this request id".into(),
        }
    };
    let mut p = document(status, code, detail);
    if let Error::Validation(f) = err {
        p.errors = Some(
            f.iter()
                .map(|f| FieldProblem {
                    field: f.field.clone(),
                    message: f.message.clone(),
                })
                .collect(),
        );
    }
    if let Error::InvalidTransition { allowed, .. } = err {
        p.allowed = Some(allowed.clone());
    }
    (status, p)
}

/// An error on its way out as problem+json: a domain error, an edge refusal, or the permission
/// check's refusal.
#[derive(Debug)]
pub enum ApiError {
    /// A service's refusal or failure.
    Domain(Error),
    /// A refusal of the HTTP edge.
    Transport(Transport),
    /// The permission check's refusal.
    Refused(Refusal),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Domain(e)
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        ApiError::Domain(Error::Store(e))
    }
}

impl From<store::page::InvalidCursor> for ApiError {
    fn from(e: store::page::InvalidCursor) -> Self {
        ApiError::Domain(e.into())
    }
}

impl From<store::page::InvalidLimit> for ApiError {
    fn from(e: store::page::InvalidLimit) -> Self {
        ApiError::Domain(e.into())
    }
}

impl From<Transport> for ApiError {
    fn from(t: Transport) -> Self {
        ApiError::Transport(t)
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            // Another tenant's id answers exactly like an unknown tenant (API.md): same status,
            // code and wording.
            Refusal::NotFound(id) => ApiError::Domain(Error::not_found("tenant", id)),
            r => ApiError::Refused(r),
        }
    }
}

impl ApiError {
    /// Its HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Domain(e) => status(e),
            ApiError::Transport(t) => t.status(),
            ApiError::Refused(Refusal::Unauthorized(_)) => StatusCode::UNAUTHORIZED,
            ApiError::Refused(
                Refusal::Forbidden(_) | Refusal::InsufficientScope(_) | Refusal::ReadOnlyVisit,
            ) => StatusCode::FORBIDDEN,
            ApiError::Refused(Refusal::NotFound(_)) => StatusCode::NOT_FOUND,
            ApiError::Refused(Refusal::MethodNotAllowed(_)) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// Whether it asks for credentials (the console then redirects to sign-in).
    pub fn is_unauthorized(&self) -> bool {
        self.status() == StatusCode::UNAUTHORIZED
            && !matches!(self, ApiError::Domain(Error::BadSignature(_)))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let p = match &self {
            ApiError::Domain(e) => problem(e).1,
            ApiError::Transport(t) => document(status, t.code(), t.to_string()),
            ApiError::Refused(r) => document(status, r.code(), r.to_string()),
        };
        let mut res = (status, Json(p)).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tenantry\""),
            );
        }
        res
    }
}

/// Result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;
