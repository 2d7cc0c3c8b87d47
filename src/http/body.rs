//! Request bodies: every one is read within a limit, after authentication (issue 12, findings
//! 1 and 3).
//!
//! - [`bound`] runs after [`super::auth::admit`], so a request without the
//!   right credentials is refused before any of its body is read. A body with no
//!   `Content-Length` (chunked, or HTTP/2) is read through the same limit as any other: there
//!   is no path around it.
//! - A request without credentials (public routes: sign-in forms, invites, heartbeats) gets at
//!   most [`ANONYMOUS_BODY_LIMIT`], whatever its route allows.
//! - Uploads (routes a context lists in `uploads`) larger than `body_limit_bytes`, or of
//!   undeclared length, are streamed to an unlinked temp file under `DATA_DIR/tmp`, capped at
//!   the route's limit, and handed on as a stream from that file; at most [`UPLOAD_SLOTS`] are
//!   handled at once, so large bodies never pile up in memory. A smaller upload is read in
//!   memory like any other body.
//! - [`check_csrf`] then reads the (bounded) body of a console form for its CSRF field.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio_stream::StreamExt;

use super::context::Registry;
use super::credentials::{CSRF_FIELD, csrf_matches, form_value};
use super::problem::{ApiError, Transport};
use crate::error::Error;
use crate::rbac::{self, Access, Principal, Refusal};

/// Most bytes of the body of a request without credentials.
pub const ANONYMOUS_BODY_LIMIT: usize = 256 * 1024;
/// Most bytes read (and discarded) from an authenticated request's body over the limit, so
/// the client can finish sending and read the 413; past it the connection is closed. A
/// request without credentials is never drained.
const DRAIN_MAX: u64 = 16 * 1024 * 1024;
/// Uploads handled at once (each may be read whole by its handler).
pub const UPLOAD_SLOTS: usize = 2;
/// Bytes of a multipart form read to find its CSRF field (forms send it first).
const CSRF_HEAD: usize = 64 * 1024;

/// What [`bound`] needs: the routes' limits and where uploads are spooled.
#[derive(Clone)]
pub struct BodyLimits {
    /// The contexts' upload routes and limits.
    pub registry: Arc<Registry>,
    /// `body_limit_bytes`, the upload limits, the data directory.
    pub config: Arc<crate::config::Config>,
    /// Upload slots ([`UPLOAD_SLOTS`]).
    pub uploads: Arc<tokio::sync::Semaphore>,
}

impl BodyLimits {
    /// Limits for `config`'s routes in `registry`.
    pub fn new(registry: Arc<Registry>, config: Arc<crate::config::Config>) -> Self {
        BodyLimits {
            registry,
            config,
            uploads: Arc::new(tokio::sync::Semaphore::new(UPLOAD_SLOTS)),
        }
    }
}

fn too_large() -> Response {
    ApiError::from(Transport::PayloadTooLarge).into_response()
}

fn unreadable() -> Response {
    ApiError::Domain(Error::bad_request(
        crate::error::BAD_REQUEST,
        "the request body could not be read",
    ))
    .into_response()
}

/// The body limit of the route guard (`http::guard`): bounds the body of every request (see
/// the module docs) and gives the request back with its body bounded, and with the upload slot
/// it holds while its handler runs (large uploads only). Refuses with 413 `payload_too_large`
/// for a body over its limit, 400 `bad_request` for one that breaks off.
pub async fn bound(
    limits: &BodyLimits,
    req: Request,
) -> Result<(Request, Option<tokio::sync::OwnedSemaphorePermit>), Response> {
    use axum::body::HttpBody as _;
    let known = req.extensions().get::<Principal>().is_some();
    let mut limit = limits.registry.body_limit(req.uri().path(), &limits.config);
    let upload = limits.registry.is_upload(req.uri().path());
    if !known {
        limit = limit.min(ANONYMOUS_BODY_LIMIT);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Nothing to bound: an empty body (a GET's, as hyper knows from the framing).
    if declared == Some(0) || req.body().is_end_stream() {
        return Ok((req, None));
    }
    let (parts, body) = req.into_parts();
    if declared.is_some_and(|n| n > limit as u64) {
        if known && declared.is_some_and(|n| n <= DRAIN_MAX) {
            drain(body, DRAIN_MAX).await;
        }
        return Err(too_large());
    }
    // An upload no larger than any route's in-memory limit is read like any other body: the
    // spool (a temp file, two at a time) is for the large ones. Usage batches are uploads for
    // their 2 MiB limit but are mostly a few KiB, and spooling each one serialized ingest on
    // the two slots (issue 10's profile).
    let small = declared.is_some_and(|n| n <= limits.config.body_limit_bytes as u64);
    if upload && !small {
        let dir = limits.config.data_dir.join("tmp");
        let file = spool(body, limit, &dir).await?;
        // The slot is held while the handler reads the file.
        let Ok(slot) = limits.uploads.clone().acquire_owned().await else {
            return Err(unreadable());
        };
        let stream = tokio_util::io::ReaderStream::new(file);
        return Ok((
            Request::from_parts(parts, Body::from_stream(stream)),
            Some(slot),
        ));
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok((Request::from_parts(parts, Body::from(bytes)), None)),
        Err(e) if is_length_limit(&e) => Err(too_large()),
        Err(_) => Err(unreadable()),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Reads and discards up to `max` bytes, so the client sees the answer.
async fn drain(body: Body, max: u64) {
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    while let Some(Ok(chunk)) = stream.next().await {
        total += chunk.len() as u64;
        if total > max {
            break;
        }
    }
}

/// Writes `body` to a temp file in `dir` that is unlinked at once (the open handle keeps it
/// until the request ends, and nothing is left behind by a crash), at most `limit` bytes; the
/// file is rewound for reading.
async fn spool(
    body: Body,
    limit: usize,
    dir: &std::path::Path,
) -> Result<tokio::fs::File, Response> {
    let fail = |e: std::io::Error| {
        tracing::warn!(error = %e, dir = %dir.display(), "cannot spool an upload");
        ApiError::Domain(Error::Unavailable {
            code: "upload_unavailable",
            detail: "the upload could not be stored: the data directory is not writable or is full"
                .into(),
        })
        .into_response()
    };
    tokio::fs::create_dir_all(dir).await.map_err(fail)?;
    let path = dir.join(format!("upload-{}", uuid::Uuid::now_v7()));
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .await
        .map_err(fail)?;
    let _ = tokio::fs::remove_file(&path).await;
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| unreadable())?;
        total += chunk.len();
        if total > limit {
            return Err(too_large());
        }
        file.write_all(&chunk).await.map_err(fail)?;
    }
    file.flush().await.map_err(fail)?;
    file.rewind().await.map_err(fail)?;
    Ok(file)
}

/// The CSRF check of console forms, the route guard's last step (`http::guard`). A console
/// write by a principal with a session (operator or tenant member) must carry the session's
/// token in its `csrf` field: read from the whole urlencoded body, or from the head of a
/// multipart one. The body was bounded by [`bound`] first. Gives the request back (its body
/// intact) or refuses with 403 `forbidden`.
pub async fn check_csrf(req: Request) -> Result<Request, Response> {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return Ok(req);
    }
    let Some(template) = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned())
    else {
        return Ok(req);
    };
    if !rbac::is_console(&template) {
        return Ok(req);
    }
    let public = req.extensions().get::<Arc<Registry>>().is_some_and(|r| {
        r.routes().access_for(req.method().as_str(), &template) == Some(Access::Public)
    });
    let Some(expected) = req
        .extensions()
        .get::<Principal>()
        .and_then(|p| p.session.as_ref())
        .map(|s| s.csrf.clone())
    else {
        return Ok(req);
    };
    if public {
        return Ok(req);
    }
    let (parts, body) = req.into_parts();
    let (sent, body) = match multipart_boundary(&parts.headers) {
        Some(boundary) => {
            let (head, rest) = match peek(body, CSRF_HEAD).await {
                Ok(p) => p,
                Err(r) => return Err(r),
            };
            let sent = multipart_value(head.clone(), boundary, CSRF_FIELD).await;
            let body = Body::from_stream(
                tokio_stream::once(Ok::<_, axum::Error>(head)).chain(rest.into_data_stream()),
            );
            (sent, body)
        }
        None => match axum::body::to_bytes(body, usize::MAX).await {
            Ok(bytes) => (form_value(&bytes, CSRF_FIELD), Body::from(bytes)),
            Err(_) => return Err(unreadable()),
        },
    };
    if !csrf_matches(&expected, sent.as_deref()) {
        tracing::warn!(
            template,
            "refused a console form without a valid CSRF token"
        );
        let e = Refusal::Forbidden("this form expired or did not come from this console (CSRF check failed): reload the page and try again".into());
        return Err(crate::console::refusal(e.into(), &parts.uri));
    }
    Ok(Request::from_parts(parts, body))
}

/// The first `n` bytes of `body` (fewer if it is shorter) and the rest of it.
async fn peek(body: Body, n: usize) -> Result<(bytes::Bytes, Body), Response> {
    let mut stream = body.into_data_stream();
    let mut head = bytes::BytesMut::new();
    while head.len() < n {
        match stream.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(_)) => return Err(unreadable()),
            None => break,
        }
    }
    Ok((head.freeze(), Body::from_stream(stream)))
}

/// The boundary of a `multipart/form-data` body (file uploads), if that is what was sent.
fn multipart_boundary(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    multer::parse_boundary(ct).ok()
}

/// The text of the first part named `field` of a multipart body's head.
async fn multipart_value(head: bytes::Bytes, boundary: String, field: &str) -> Option<String> {
    let stream = tokio_stream::once(Ok::<_, std::io::Error>(head));
    let mut parts = multer::Multipart::new(stream, boundary);
    while let Ok(Some(part)) = parts.next_field().await {
        if part.name() == Some(field) {
            return part.text().await.ok();
        }
    }
    None
}
