//! Extractors whose rejections are problem+json: malformed JSON is 400 `bad_request`, a body
//! over the limit 413 `payload_too_large`, a wrong content type 415 `unsupported_media_type`,
//! well-formed JSON of the wrong shape 422 `validation_failed`, a malformed query 400
//! `invalid_query`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::problem::{ApiError, Transport};
use crate::error::Error;
use crate::rbac::Principal;

/// A JSON body.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    /// A plain `application/json` body is parsed by serde_json directly; only a body that
    /// fails is parsed again through axum's `Json` (serde_path_to_error), whose rejection names
    /// the path of the bad field. Tracking that path on every parse cost the ingest route (1,000
    /// events a batch) a large share of its handler time (issue 10's profile); the answers,
    /// good or bad, are the same. Other content types go to axum's `Json` as they are, for its
    /// media-type rules.
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_plain_json(req.headers()) {
            return match axum::Json::<T>::from_request(req, state).await {
                Ok(axum::Json(v)) => Ok(ApiJson(v)),
                Err(rejection) => Err(json_rejection(&rejection)),
            };
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| body_rejection(r.status(), &r.body_text()))?;
        if let Ok(v) = serde_json::from_slice::<T>(&bytes) {
            return Ok(ApiJson(v));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

/// Is the content type `application/json` (with any parameters), parsed as axum's `Json`
/// parses it? axum accepts every such body, so reading it before parsing changes no answer.
fn is_plain_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.type_() == mime::APPLICATION && m.subtype() == mime::JSON)
}

/// An optional JSON body: an empty body is `T::default()` (lifecycle actions without members).
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_type = req.headers().contains_key(axum::http::header::CONTENT_TYPE);
        if !has_type {
            // No content type: accept only an empty body.
            let bytes = axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|r| body_rejection(r.status(), &r.body_text()))?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJson(T::default()));
            }
            return Err(Transport::UnsupportedMediaType.into());
        }
        ApiJson::<T>::from_request(req, state)
            .await
            .map(|ApiJson(v)| OptionalJson(v))
    }
}

fn body_rejection(status: StatusCode, text: &str) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        Transport::PayloadTooLarge.into()
    } else {
        Error::bad_request(
            crate::error::BAD_REQUEST,
            format!("could not read the request body: {text}"),
        )
        .into()
    }
}

fn json_rejection(r: &JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => Error::invalid(
            "body",
            e.body_text().replace(
                "Failed to deserialize the JSON body into the target type: ",
                "",
            ),
        )
        .into(),
        JsonRejection::JsonSyntaxError(e) => Error::bad_request(
            crate::error::BAD_REQUEST,
            format!(
                "malformed JSON: {}",
                e.body_text()
                    .replace("Failed to parse the request body as JSON: ", "")
            ),
        )
        .into(),
        JsonRejection::MissingJsonContentType(_) => Transport::UnsupportedMediaType.into(),
        JsonRejection::BytesRejection(b) => body_rejection(b.status(), &b.body_text()),
        other => body_rejection(other.status(), &other.body_text()),
    }
}

/// A query string.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::Domain(Error::bad_request(
                    crate::error::INVALID_QUERY,
                    e.body_text().replace(
                        "Failed to deserialize query string: ",
                        "invalid query string: ",
                    ),
                )))
            }
            Err(other) => Err(ApiError::Domain(Error::bad_request(
                crate::error::INVALID_QUERY,
                other.body_text(),
            ))),
        }
    }
}

/// The authenticated caller, put in the request by the auth middleware.
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| {
                ApiError::Domain(Error::Unauthorized("this route needs credentials".into()))
            })
    }
}

/// Deserializes a member that may be absent (`None`: leave as is), `null` (`Some(None)`: clear)
/// or a string (`Some(Some(..))`), for PATCH bodies: use with `#[serde(default, deserialize_with
/// = "crate::http::extract::double_option")]`.
pub fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<String>>, D::Error> {
    <Option<String> as serde::Deserialize>::deserialize(d).map(Some)
}

/// The address of the client that sent the request: the TCP peer, or what a trusted proxy
/// reports for it ([`super::server::client_addr`], `[http] trusted_proxies`). Sign-in
/// throttles and session records key on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(c) = parts.extensions.get::<ClientAddr>() {
            return Ok(*c);
        }
        parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| ClientAddr(c.0.ip().to_canonical()))
            .ok_or_else(|| Error::Internal("the client address is unknown".into()).into())
    }
}
