//! `application/problem+json` (RFC 9457): the one place a domain error becomes an HTTP response.
//!
//! `type` is `urn:tenantry:problem:{code}`, `title` is derived from the code, and 5xx answers
//! carry only the request id: their cause is logged once, with that id.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{Error, FieldError};

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
    pub errors: Option<Vec<FieldError>>,
    /// `invalid_transition`: the actions allowed now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
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

/// Builds the problem for `err`.
pub fn problem(err: &Error) -> (StatusCode, Problem) {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = err.code();
    let request_id = current_request_id();
    let detail = if err.is_client_safe() {
        err.to_string()
    } else {
        tracing::error!(error = %err, code, "request failed");
        match err {
            Error::Store(crate::store::Error::Overloaded) => err.to_string(),
            Error::Store(crate::store::Error::Closed) => "the server is shutting down; retry shortly".into(),
            Error::Store(crate::store::Error::Storage(_)) => {
                "the store is unavailable (disk full or I/O error); reads may still work. The cause is logged with this request id".into()
            }
            _ => "internal error; the cause is logged with this request id".into(),
        }
    };
    let p = Problem {
        type_: format!("urn:tenantry:problem:{code}"),
        title: title(code),
        status: status.as_u16(),
        detail,
        code: code.to_string(),
        request_id,
        errors: match err {
            Error::Validation(f) => Some(f.clone()),
            _ => None,
        },
        allowed: match err {
            Error::InvalidTransition { allowed, .. } => Some(allowed.clone()),
            _ => None,
        },
    };
    (status, p)
}

/// A domain error on its way out as problem+json.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        ApiError(Error::Store(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, p) = problem(&self.0);
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
