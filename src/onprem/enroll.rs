//! Enrollment secrets: how an install registered without its public key proves, once, that the
//! key its first heartbeat offers is the customer's (HEARTBEATS.md "Install identity"; issue 12
//! finding 4, which replaced trust on first use).
//!
//! The control plane makes a 256-bit random secret when it registers such an install, and shows
//! it once, as `tenroll_<base64url>` (43 characters after the prefix). The customer gives it to
//! the appliance out of band: `[control_plane] enrollment_secret` in its configuration.
//!
//! **What is stored, what is sent.** The secret is an Ed25519 seed. The control plane keeps only
//! its public half, the *verifier* (a one-way function of the secret, like a hash: a reader of
//! the store or of a backup cannot bind a key with it). The appliance never sends the secret:
//! its first delivery (or bundle) carries `enrollment_proof`, the secret's signature over
//! [`message`] = `"tenantry-enroll-v1\0" || install_id (16 bytes) || install public key (32
//! bytes)`. The proof names the key it binds, so whoever sees it in transit or in a log can only
//! bind that same key, and the control plane consumes the enrollment when it binds (audited in
//! the same transaction): a second use finds nothing to bind with.
//!
//! A license issued to an install without a key names the verifier's key id
//! (`enrollment_key_id`): an appliance accepts such a license only while it holds the matching
//! secret, so the license binds to the secret's holder rather than to any appliance.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use ed25519_dalek::{Signature, VerifyingKey};
use uuid::Uuid;

use crate::audit::signing::{InstallKey, key_id_of};

/// The secret's printed prefix.
pub const PREFIX: &str = "tenroll_";

/// Domain separation of the proof's message (version 1).
const CONTEXT: &[u8] = b"tenantry-enroll-v1\0";

/// A 256-bit enrollment secret. Its `Debug` never prints it.
#[derive(Clone)]
pub struct EnrollmentSecret([u8; 32]);

impl std::fmt::Debug for EnrollmentSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EnrollmentSecret(verifier {})", self.verifier_id())
    }
}

impl EnrollmentSecret {
    /// A fresh secret from the operating system's random source.
    ///
    /// Errors: the random source failed (a message for `Error::Internal`).
    pub fn generate() -> Result<EnrollmentSecret, String> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("random source: {e}"))?;
        Ok(EnrollmentSecret(seed))
    }

    /// Parses `tenroll_<43 base64url characters>`; surrounding whitespace is ignored.
    pub fn parse(s: &str) -> Option<EnrollmentSecret> {
        let rest = s.trim().strip_prefix(PREFIX)?;
        let bytes: [u8; 32] = B64URL.decode(rest).ok()?.try_into().ok()?;
        Some(EnrollmentSecret(bytes))
    }

    /// The printed form, `tenroll_<base64url>`: shown once, never stored by the control plane.
    pub fn encode(&self) -> String {
        format!("{PREFIX}{}", B64URL.encode(self.0))
    }

    fn key(&self) -> InstallKey {
        InstallKey::from_seed(&self.0)
    }

    /// The verifier the control plane stores: the raw 32-byte Ed25519 public key of the secret.
    pub fn verifier(&self) -> [u8; 32] {
        self.key().public().to_bytes()
    }

    /// The verifier's key id (lowercase hex SHA-256 of it), as licenses and audit entries name it.
    pub fn verifier_id(&self) -> String {
        self.key().key_id().to_string()
    }

    /// The proof (standard base64 of a 64-byte signature) that binds `install_key` to
    /// `install_id`.
    pub fn prove(&self, install_id: &Uuid, install_key: &VerifyingKey) -> String {
        B64.encode(
            self.key()
                .sign(&message(install_id, install_key))
                .to_bytes(),
        )
    }
}

/// The bytes an enrollment proof signs.
pub fn message(install_id: &Uuid, install_key: &VerifyingKey) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + 48);
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(install_id.as_bytes());
    m.extend_from_slice(install_key.as_bytes());
    m
}

/// The key id of a stored verifier; `None` when the bytes are not an Ed25519 point.
pub fn verifier_id_of(verifier: &[u8; 32]) -> Option<String> {
    VerifyingKey::from_bytes(verifier)
        .ok()
        .map(|k| key_id_of(&k))
}

/// Does `proof` (standard base64) show that the holder of the secret behind `verifier` binds
/// `install_key` to `install_id`? Strict Ed25519 verification.
pub fn verify(
    verifier: &[u8; 32],
    install_id: &Uuid,
    install_key: &VerifyingKey,
    proof: &str,
) -> bool {
    let Ok(public) = VerifyingKey::from_bytes(verifier) else {
        return false;
    };
    let Some(sig) = B64
        .decode(proof.trim())
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
    else {
        return false;
    };
    public
        .verify_strict(&message(install_id, install_key), &sig)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_binds_one_key_to_one_install_and_only_the_secret_makes_it() {
        let secret = EnrollmentSecret::generate().unwrap();
        let again = EnrollmentSecret::parse(&format!(" {} \n", secret.encode())).unwrap();
        assert_eq!(again.verifier(), secret.verifier());
        assert_eq!(secret.encode().len(), PREFIX.len() + 43);

        let install = Uuid::from_u128(7);
        let key = InstallKey::from_seed(&[1; 32]).public();
        let other_key = InstallKey::from_seed(&[2; 32]).public();
        let proof = secret.prove(&install, &key);
        assert!(verify(&secret.verifier(), &install, &key, &proof));
        // The proof says which key: it cannot bind another one, nor another install.
        assert!(!verify(&secret.verifier(), &install, &other_key, &proof));
        assert!(!verify(
            &secret.verifier(),
            &Uuid::from_u128(8),
            &key,
            &proof
        ));
        // Another secret's proof, or garbage, does not verify.
        let guess = EnrollmentSecret::generate().unwrap();
        assert!(!verify(
            &secret.verifier(),
            &install,
            &key,
            &guess.prove(&install, &key)
        ));
        assert!(!verify(&secret.verifier(), &install, &key, "AAAA"));
        // The verifier alone (what the control plane stores) does not make a proof.
        assert_ne!(secret.verifier().to_vec(), secret.0.to_vec());
        assert!(!format!("{secret:?}").contains(&secret.encode()));
    }

    #[test]
    fn only_the_printed_form_parses() {
        for bad in ["", "tenroll_", "tenroll_abc", "xx_AAAA", &"A".repeat(43)] {
            assert!(EnrollmentSecret::parse(bad).is_none(), "{bad}");
        }
    }
}
