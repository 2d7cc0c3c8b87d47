//! Tenant access tokens (the seeds' "tenant-scoped JWT"): `POST /api/auth/token` exchanges an
//! API key for a JWT signed with EdDSA (RFC 8037), 15 minutes by default, that the platform's
//! other services verify offline with the keys at `GET /.well-known/jwks.json` (RFC 7517).
//!
//! The signing key is an Ed25519 key of its own, kept like the install key (`DATA_DIR/keys/
//! token.ed25519`, owner-only), made at first start. Losing it costs only the tokens alive at
//! the time (15 minutes at most).
//!
//! Claims: `iss` (`tenantry`), `sub` (the persona id), `tenant_id`, `scope` (space-separated,
//! RFC 8693 §4.2), `akid` (the API key id), `iat`, `nbf`, `exp` (seconds), `jti` (UUIDv7). The
//! header names the key: `kid`.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::signing::{InstallKey, KeyError};

/// File name of the token key inside `DATA_DIR/keys/`.
pub const TOKEN_KEY_FILE: &str = "token.ed25519";
/// The `iss` of every token.
pub const ISSUER: &str = "tenantry";
/// How long a token lives unless asked for less (issue 9: "15 minutes by default").
pub const DEFAULT_TTL_SECS: i64 = 15 * 60;
/// The shortest lifetime a caller may ask for.
pub const MIN_TTL_SECS: i64 = 60;

/// The claims of a tenant token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// `tenantry`.
    pub iss: String,
    /// The persona id.
    pub sub: String,
    /// The tenant id.
    pub tenant_id: String,
    /// Space-separated scopes.
    pub scope: String,
    /// The API key the token was issued for.
    pub akid: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before (seconds).
    pub nbf: i64,
    /// Expires at (seconds).
    pub exp: i64,
    /// Token id (UUIDv7).
    pub jti: String,
}

/// The token signing key and its public JWK.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    x: String,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A token that does not verify: bad signature, wrong issuer or key, expired, malformed.
#[derive(Debug, thiserror::Error)]
#[error("the access token is not valid: {0}")]
pub struct BadToken(pub String);

impl TokenKeys {
    /// Path of the key file under `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("keys").join(TOKEN_KEY_FILE)
    }

    /// Loads the key under `data_dir`, making it on first start.
    ///
    /// Errors: [`KeyError`] when the file cannot be read, written, or parsed.
    pub fn load_or_create(data_dir: &Path) -> Result<TokenKeys, KeyError> {
        let path = Self::path(data_dir);
        let key = InstallKey::load_or_create_at(&path, true)?;
        TokenKeys::from_key(&key).map_err(|detail| KeyError::Io {
            path: path.display().to_string(),
            detail,
        })
    }

    /// The token keys of an Ed25519 key.
    ///
    /// Errors: the PKCS#8 encoding failed (never for a valid key).
    pub fn from_key(key: &InstallKey) -> Result<TokenKeys, String> {
        let der = key
            .signing_key()
            .to_pkcs8_der()
            .map_err(|e| format!("PKCS#8 encoding of the token key: {e}"))?;
        let x = B64URL.encode(key.public().as_bytes());
        Ok(TokenKeys {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_components(&x)
                .map_err(|e| format!("token public key: {e}"))?,
            kid: key.key_id()[..16].to_string(),
            x,
        })
    }

    /// The key id in tokens' headers and in the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWK Set (RFC 7517 §5) of the verification key: `{"keys": [{"kty": "OKP", "crv":
    /// "Ed25519", "x", "kid", "alg": "EdDSA", "use": "sig"}]}` (RFC 8037 §2).
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": self.x,
                "kid": self.kid,
                "alg": "EdDSA",
                "use": "sig",
            }]
        })
    }

    /// Signs a token for persona `sub` of `tenant` through key `akid`, with `scope`, valid
    /// from `now` for `ttl_secs`. Returns the compact JWT and its claims.
    ///
    /// Errors: signing failed (a broken key).
    pub fn issue(
        &self,
        tenant: &Uuid,
        sub: &Uuid,
        akid: &Uuid,
        scope: String,
        now: DateTime<Utc>,
        ttl_secs: i64,
    ) -> Result<(String, Claims), String> {
        let iat = now.timestamp();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: sub.to_string(),
            tenant_id: tenant.to_string(),
            scope,
            akid: akid.to_string(),
            iat,
            nbf: iat,
            exp: iat + ttl_secs,
            jti: crate::ids::new_id(now).to_string(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let jwt = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| format!("signing a token: {e}"))?;
        Ok((jwt, claims))
    }

    /// Verifies a token's signature, algorithm, key and issuer, and its lifetime against `now`
    /// (this server's clock, not the library's), returning its claims.
    ///
    /// Errors: [`BadToken`].
    pub fn verify(&self, jwt: &str, now: DateTime<Utc>) -> Result<Claims, BadToken> {
        let header = jsonwebtoken::decode_header(jwt).map_err(|e| BadToken(e.to_string()))?;
        if header.alg != Algorithm::EdDSA || header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(BadToken("unknown key or algorithm".into()));
        }
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        v.validate_exp = false;
        v.validate_nbf = false;
        let data = jsonwebtoken::decode::<Claims>(jwt, &self.decoding, &v)
            .map_err(|e| BadToken(e.to_string()))?;
        let t = now.timestamp();
        if t >= data.claims.exp {
            return Err(BadToken(
                "it expired: exchange the API key for a new one".into(),
            ));
        }
        if t < data.claims.nbf - 60 {
            return Err(BadToken("it is not valid yet".into()));
        }
        Ok(data.claims)
    }
}

/// Does this bearer credential look like a JWT (three base64url parts)?
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_until_it_expires_and_not_with_another_key() {
        let keys = TokenKeys::from_key(&InstallKey::from_seed(&[7; 32])).unwrap();
        let now = Utc::now();
        let (t, p, k) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let (jwt, claims) = keys
            .issue(&t, &p, &k, "members.read".into(), now, 900)
            .unwrap();
        assert!(looks_like_jwt(&jwt));
        assert_eq!(keys.verify(&jwt, now).unwrap(), claims);
        assert!(
            keys.verify(&jwt, now + chrono::Duration::seconds(899))
                .is_ok()
        );
        assert!(
            keys.verify(&jwt, now + chrono::Duration::seconds(900))
                .is_err()
        );
        let other = TokenKeys::from_key(&InstallKey::from_seed(&[8; 32])).unwrap();
        assert!(other.verify(&jwt, now).is_err());
        let mut tampered = jwt.clone();
        tampered.pop();
        tampered.push(if jwt.ends_with('A') { 'B' } else { 'A' });
        assert!(keys.verify(&tampered, now).is_err());
    }
}
