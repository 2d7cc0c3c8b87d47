//! What a request presents: its bearer token, its cookies, and the CSRF field of a console
//! form; and the random tokens that cookies and forms carry. Plain helpers below the
//! authentication middleware ([`super::auth`]), shared with the console's sign-in and layout.

use axum::http::HeaderMap;
use base64::Engine;

use crate::error::Error;

/// Name of the console session cookie.
pub const SESSION_COOKIE: &str = "tenantry_session";
/// Name of the Tenant-console session cookie. Each tenant's is scoped to `Path=/tenant/{id}`,
/// so a browser never sends it to `/platform` or to another tenant's pages.
pub const TENANT_SESSION_COOKIE: &str = "tenantry_tenant_session";
/// Name of the form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// The token a request presents, if any.
pub fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = v.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(token.trim());
        }
        return None;
    }
    headers
        .get("x-admin-ops-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The value of cookie `name`, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The first value of `field` in a urlencoded form body.
pub fn form_value(body: &[u8], field: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == field)
        .map(|(_, v)| v)
}

/// Constant-time comparison of CSRF tokens.
pub fn csrf_matches(expected: &str, sent: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    match sent {
        Some(s) if s.len() == expected.len() => s.as_bytes().ct_eq(expected.as_bytes()).into(),
        _ => false,
    }
}

/// A new random token for cookies and forms (base64url of 32 bytes).
pub fn random_token() -> Result<String, Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}
