//! The domain error: every refusal a service can give, each with a stable snake_case `code`
//! (API.md "Errors"). What HTTP status a refusal is, and the refusals that exist only at the
//! HTTP edge (a body over the limit, a wrong media type, a method a path does not have), belong
//! to the HTTP layer: `http::problem` maps this error to `application/problem+json`, and the
//! console's error page takes its status from there. The CLI and admin socket print its message.
//!
//! Messages name what failed, the bad value and the way out.

use crate::store;

/// 409: the request conflicts with the current state (generic).
pub const CONFLICT: &str = "conflict";

/// 400: a body or request that cannot be read.
pub const BAD_REQUEST: &str = "bad_request";

/// One field's complaint inside a `validation_failed` error.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// The request member, e.g. `contact_email`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// A refusal or failure of a service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 404 `not_found`: an unknown id in the path.
    #[error("{kind} '{id}' not found")]
    NotFound {
        /// What was looked up (`tenant`, `app`, `pool`, `chain`, `job`).
        kind: &'static str,
        /// The id as given.
        id: String,
    },
    /// 422 `app_not_found`: a tenant refers to an app that does not exist (PRODUCT.md A1: never a
    /// raw foreign-key failure).
    #[error(
        "app '{0}' does not exist: create the app first (POST /api/apps), then provision the tenant"
    )]
    AppNotFound(String),
    /// 422 `validation_failed`: well-formed input that breaks a rule; one entry per field.
    #[error("{}", describe_fields(.0))]
    Validation(Vec<FieldError>),
    /// 409 `invalid_transition`: a lifecycle action not allowed from the current state.
    #[error("cannot {action} a tenant in state '{from}'; allowed now: {}", if allowed.is_empty() { "nothing".to_string() } else { allowed.join(", ") })]
    InvalidTransition {
        /// Current state.
        from: String,
        /// Requested action (its path segment, e.g. `reinstate`).
        action: String,
        /// Actions that would succeed now.
        allowed: Vec<String>,
    },
    /// 409 `tenant_read_only`: a write to a tenant that is offboarding or offboarded.
    #[error("tenant {tenant_id} is {state} and read-only; {hint}")]
    TenantReadOnly {
        /// The tenant.
        tenant_id: String,
        /// Its state.
        state: String,
        /// The way out.
        hint: &'static str,
    },
    /// 409 with a specific code (`slug_taken`, `conflict`, `chain_broken`...).
    #[error("{detail}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Human explanation.
        detail: String,
    },
    /// 400 with a specific code (`bad_request`, `invalid_cursor`, `invalid_query`...).
    #[error("{detail}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// Human explanation.
        detail: String,
    },
    /// 503 with a specific code (`no_active_pool`, `not_ready`...).
    #[error("{detail}")]
    Unavailable {
        /// Stable code.
        code: &'static str,
        /// Human explanation.
        detail: String,
    },
    /// 401 `unauthorized`.
    #[error("{0}")]
    Unauthorized(String),
    /// 403 `forbidden`.
    #[error("{0}")]
    Forbidden(String),
    /// 403 with a specific code: a refusal by policy rather than by role (`license_expired`,
    /// `license_limit_reached`, `install_air_gapped`...).
    #[error("{detail}")]
    Denied {
        /// Stable code.
        code: &'static str,
        /// What was refused, why, and the way out.
        detail: String,
    },
    /// 410 with a specific code: a single-use link or credential that is used up or expired
    /// (`invite_invalid`).
    #[error("{detail}")]
    Gone {
        /// Stable code.
        code: &'static str,
        /// What is gone, and the way out.
        detail: String,
    },
    /// 401 `signature_invalid`: a signed document (heartbeat, bundle) whose signature does not
    /// verify with the key it must be signed with.
    #[error("{0}")]
    BadSignature(String),
    /// A storage failure: 503 `storage_unavailable`, 503 `overloaded`, 503 `storage_full`, or
    /// 500 `internal` for corruption. Its detail is logged, not sent.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// 500 `internal`: a bug. Logged with the request id; the client sees only the id.
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe_fields(fields: &[FieldError]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect();
    format!("invalid input: {}", parts.join("; "))
}

impl Error {
    /// The stable snake_case code of this error (API.md).
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::AppNotFound(_) => "app_not_found",
            Error::Validation(_) => "validation_failed",
            Error::InvalidTransition { .. } => "invalid_transition",
            Error::TenantReadOnly { .. } => "tenant_read_only",
            Error::Conflict { code, .. }
            | Error::BadRequest { code, .. }
            | Error::Unavailable { code, .. } => code,
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::Denied { code, .. } | Error::Gone { code, .. } => code,
            Error::BadSignature(_) => "signature_invalid",
            Error::Store(store::Error::Overloaded) => "overloaded",
            Error::Store(store::Error::StorageFull { .. }) => "storage_full",
            Error::Store(store::Error::Corrupt { .. } | store::Error::Panicked) => "internal",
            Error::Store(_) => "storage_unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// Whether the message may be shown to a client (4xx and chosen 503s) or must be replaced by
    /// a generic one (5xx causes are logged, never sent).
    pub fn is_client_safe(&self) -> bool {
        match self {
            Error::Store(store::Error::StorageFull { .. }) => true,
            Error::Store(_) | Error::Internal(_) => false,
            _ => true,
        }
    }

    /// A 404 for `kind` with `id`.
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Error {
        Error::NotFound {
            kind,
            id: id.into(),
        }
    }

    /// A 422 for a single field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Error {
        Error::Validation(vec![FieldError {
            field: field.to_string(),
            message: message.into(),
        }])
    }

    /// A 400 `bad_request`-style error with `code`.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Error {
        Error::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    /// A 403 by policy with `code`.
    pub fn denied(code: &'static str, detail: impl Into<String>) -> Error {
        Error::Denied {
            code,
            detail: detail.into(),
        }
    }

    /// A 409 with `code`.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Error {
        Error::Conflict {
            code,
            detail: detail.into(),
        }
    }
}

impl From<store::page::InvalidCursor> for Error {
    fn from(e: store::page::InvalidCursor) -> Error {
        Error::bad_request(INVALID_CURSOR, e.to_string())
    }
}

impl From<store::page::InvalidLimit> for Error {
    fn from(e: store::page::InvalidLimit) -> Error {
        Error::bad_request(INVALID_QUERY, e.to_string())
    }
}

/// The code of a malformed query string or filter (400).
pub const INVALID_QUERY: &str = "invalid_query";

/// The code of a cursor that is not one the listing issued (400), for every listing.
pub const INVALID_CURSOR: &str = "invalid_cursor";

/// `Result` of services.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Collects field errors so one response lists every bad field (the console shows each next to
/// its input).
#[derive(Default, Debug)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    /// An empty collector.
    pub fn new() -> Validator {
        Validator::default()
    }
    /// Records `message` against `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_string(),
            message: message.into(),
        });
    }
    /// Records the error of a parse, passing its value through.
    pub fn take<T>(&mut self, field: &str, r: std::result::Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(m) => {
                self.add(field, m);
                None
            }
        }
    }
    /// `Ok(())` when nothing was recorded, else a `validation_failed` error.
    pub fn finish(self) -> Result<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.errors))
        }
    }
}

/// The UUID in a path segment, or 404 `not_found` for `kind` (an id that cannot exist is as
/// unknown as one that does not).
pub fn path_id(kind: &'static str, s: &str) -> Result<uuid::Uuid> {
    crate::ids::parse_uuid(s).ok_or_else(|| Error::not_found(kind, s))
}
