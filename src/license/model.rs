//! The license document and its offline check (HEARTBEATS.md "License"): what a license says,
//! how it is signed and verified, and the state an appliance is in after a check. Data and pure
//! functions only: `AppState` holds the last [`LicenseStatus`].

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

use crate::audit::signing::{InstallKey, key_id_of};
use crate::clock::rfc3339_micros;
use crate::error::{Error, Result};
use crate::onprem::signed::{self, SignedError};

/// 403: `limits.max_tenants` is reached.
pub const LICENSE_LIMIT_REACHED: &str = "license_limit_reached";

/// 403: the license is past `expires_at`, so provisioning is refused.
pub const LICENSE_EXPIRED: &str = "license_expired";

/// 403: the license file was refused, so provisioning is refused.
pub const LICENSE_INVALID: &str = "license_invalid";

/// 403: no license file, so provisioning is refused.
pub const LICENSE_MISSING: &str = "license_missing";

/// Member name of a signed license.
pub const MEMBER: &str = "license";

/// How far in the future `issued_at` may be before the license is refused as not yet valid
/// (clock skew between the control plane and the appliance).
pub const SKEW: chrono::Duration = chrono::Duration::days(1);

fn micros<S: Serializer>(t: &DateTime<Utc>, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339_micros(*t))
}

/// Limits a license sets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most tenants that may exist at once (every state but `offboarded`); null: no limit.
    pub max_tenants: Option<u64>,
}

/// The license document, as signed (HEARTBEATS.md "License": its serde shape is the signed
/// format).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct License {
    /// This license.
    pub license_id: Uuid,
    /// The install it was issued to (the control plane's id for it).
    pub install_id: Uuid,
    /// The customer, as registered.
    pub customer: String,
    /// When it was issued (RFC 3339 UTC, microseconds).
    #[serde(serialize_with = "micros")]
    pub issued_at: DateTime<Utc>,
    /// When it stops being valid; past it the appliance runs degraded.
    #[serde(serialize_with = "micros")]
    pub expires_at: DateTime<Utc>,
    /// Limits, e.g. `max_tenants`.
    pub limits: Limits,
    /// Feature flags granted (free-form names).
    pub features: Vec<String>,
    /// The install may never reach the control plane: heartbeats travel only as bundles.
    pub air_gapped: bool,
    /// `key_id` of the install key the license is bound to: given at registration, or bound
    /// since (a renewal names it). An appliance with another key refuses it.
    pub install_key_id: Option<String>,
    /// When `install_key_id` is null: the key id of the enrollment verifier
    /// (`onprem::enroll`) of the install's pending enrollment. An appliance accepts such a
    /// license only while its `[control_plane] enrollment_secret` matches, so the license binds
    /// to the secret's holder, never to any appliance. Left out when null, so licenses bound to
    /// a key keep the shape older appliances know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_key_id: Option<String>,
}

impl License {
    /// The canonical JSON value that is signed.
    pub fn to_value(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self).map_err(|e| Error::Internal(format!("license: {e}")))
    }
}

/// Signs `license` with the control plane's license key: `{"license", "key_id", "sig"}`.
///
/// Errors: `Internal` if the document cannot be made canonical (it holds no floats, so never).
pub fn issue(license: &License, key: &InstallKey) -> Result<serde_json::Value> {
    signed::sign(MEMBER, license.to_value()?, key)
        .map_err(|e| Error::Internal(format!("license: {e}")))
}

/// Why a license file is refused. Each message says what is wrong and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LicenseProblem {
    /// The file is not there.
    #[error(
        "no license file at {0}: ask the vendor to register this install, then save the license they send there"
    )]
    Missing(String),
    /// The file cannot be read.
    #[error("the license file {file} cannot be read: {detail}")]
    Unreadable {
        /// The file.
        file: String,
        /// The I/O error.
        detail: String,
    },
    /// Not JSON, or not the signed shape, or fields of the wrong type.
    #[error("the license file {file} is not a Tenantry license: {detail}")]
    Malformed {
        /// The file.
        file: String,
        /// What is wrong.
        detail: String,
    },
    /// Signed by another key than `license_public_key`.
    #[error(
        "the license file {file} was signed by key {found}, but license_public_key is key {expected}: it comes from another control plane, or license_public_key is wrong"
    )]
    WrongKey {
        /// The file.
        file: String,
        /// `key_id` in the license.
        found: String,
        /// `key_id` of `license_public_key`.
        expected: String,
    },
    /// The signature does not verify.
    #[error(
        "the license file {file} does not verify with license_public_key (key {key_id}): it was altered after it was signed, or forged. Restore the file the vendor sent"
    )]
    BadSignature {
        /// The file.
        file: String,
        /// `key_id` of `license_public_key`.
        key_id: String,
    },
    /// Bound to another install key.
    #[error(
        "the license file {file} belongs to the install with key {bound}, but this install's key is {own}: it was issued to another install"
    )]
    WrongInstall {
        /// The file.
        file: String,
        /// `install_key_id` in the license.
        bound: String,
        /// This install's key id.
        own: String,
    },
    /// Names neither an install key nor an enrollment: it would bind to any appliance.
    #[error(
        "the license file {file} names no install key and no enrollment, so any appliance could use it: ask the vendor to renew it for this install's key ({own}, GET /api/audit/public-key)"
    )]
    Unbound {
        /// The file.
        file: String,
        /// This install's key id.
        own: String,
    },
    /// Bound to an enrollment whose secret this appliance does not hold.
    #[error(
        "the license file {file} is bound to enrollment {enrollment}, and {held}: set [control_plane] enrollment_secret to the tenroll_... secret the vendor gave with this license"
    )]
    WrongEnrollment {
        /// The file.
        file: String,
        /// `enrollment_key_id` in the license.
        enrollment: String,
        /// What this appliance holds, in words.
        held: String,
    },
    /// `issued_at` is more than [`SKEW`] in the future.
    #[error(
        "the license file {file} is issued at {issued_at}, in the future: check this machine's clock"
    )]
    NotYetValid {
        /// The file.
        file: String,
        /// `issued_at` as signed.
        issued_at: String,
    },
}

impl LicenseProblem {
    /// The state a problem puts the appliance in.
    pub fn state(&self) -> LicenseState {
        match self {
            LicenseProblem::Missing(_) => LicenseState::Missing,
            _ => LicenseState::Invalid,
        }
    }
}

/// Verifies the text of a license file offline: the signed shape, the key, the signature over
/// the canonical bytes, the fields, the install binding and `issued_at`. Expiry is a state of a
/// valid license, not a refusal: see [`LicenseStatus`].
///
/// `own_key_id` is this install's key id; `enrollment_id` the key id of the verifier of its
/// `enrollment_secret`, if configured; `file` names the file in messages. A license names the
/// install key it binds to, or else the enrollment whose secret the appliance must hold
/// (issue 12 finding 8): one that names neither is refused.
pub fn verify(
    text: &str,
    public: &VerifyingKey,
    own_key_id: &str,
    enrollment_id: Option<&str>,
    now: DateTime<Utc>,
    file: &str,
) -> std::result::Result<License, LicenseProblem> {
    let malformed = |detail: String| LicenseProblem::Malformed {
        file: file.to_string(),
        detail,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| malformed(format!("not JSON ({e})")))?;
    let signed = signed::split(MEMBER, value).map_err(|e| malformed(e.to_string()))?;
    signed.verify(public).map_err(|e| match e {
        SignedError::WrongKey { found, expected } => LicenseProblem::WrongKey {
            file: file.to_string(),
            found,
            expected,
        },
        SignedError::BadSignature => LicenseProblem::BadSignature {
            file: file.to_string(),
            key_id: key_id_of(public),
        },
        SignedError::Shape(d) => malformed(d),
    })?;
    let license: License = serde_json::from_value(serde_json::Value::Object(signed.doc))
        .map_err(|e| malformed(format!("a signed field is invalid: {e}")))?;
    if let Some(bound) = &license.install_key_id
        && bound != own_key_id
    {
        return Err(LicenseProblem::WrongInstall {
            file: file.to_string(),
            bound: bound.clone(),
            own: own_key_id.to_string(),
        });
    }
    if license.install_key_id.is_none() {
        match (&license.enrollment_key_id, enrollment_id) {
            (None, _) => {
                return Err(LicenseProblem::Unbound {
                    file: file.to_string(),
                    own: own_key_id.to_string(),
                });
            }
            (Some(e), Some(held)) if e == held => {}
            (Some(e), held) => {
                return Err(LicenseProblem::WrongEnrollment {
                    file: file.to_string(),
                    enrollment: e.clone(),
                    held: match held {
                        None => "no enrollment_secret is configured".to_string(),
                        Some(h) => format!("the configured enrollment_secret is for {h}"),
                    },
                });
            }
        }
    }
    if license.issued_at > now + SKEW {
        return Err(LicenseProblem::NotYetValid {
            file: file.to_string(),
            issued_at: rfc3339_micros(license.issued_at),
        });
    }
    Ok(license)
}

/// The state of the appliance's license.
///
/// REMEMBER: the variant order is the file format (stored in the gate record): never reorder;
/// add at the end (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum LicenseState {
    /// Verified and not expired: everything works.
    Valid = 0,
    /// Verified, past `expires_at`: reads work, provisioning answers 403 `license_expired`.
    Expired = 1,
    /// No license file: provisioning answers 403 `license_missing`.
    Missing = 2,
    /// The file was refused (forged, altered, foreign, malformed): provisioning answers 403
    /// `license_invalid`.
    Invalid = 3,
}

impl LicenseState {
    /// Every state.
    pub const ALL: [LicenseState; 4] = [
        LicenseState::Valid,
        LicenseState::Expired,
        LicenseState::Missing,
        LicenseState::Invalid,
    ];
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseState::Valid => "valid",
            LicenseState::Expired => "expired",
            LicenseState::Missing => "missing",
            LicenseState::Invalid => "invalid",
        }
    }
}

/// The result of the last license check (`GET /api/license`, `/readyz`).
#[derive(Clone, Debug, Serialize)]
pub struct LicenseStatus {
    /// `valid`, `expired`, `missing` or `invalid`.
    pub state: LicenseState,
    /// What is wrong, when not valid.
    pub problem: Option<String>,
    /// The license, when it verified (also when expired).
    pub license: Option<License>,
    /// The license file.
    pub file: String,
    /// `key_id` of `license_public_key`.
    pub public_key_id: String,
    /// When the check ran.
    pub checked_at: DateTime<Utc>,
}

impl LicenseStatus {
    /// Checks the license file's `text` (`None` when there is no file) at `now`.
    pub fn check(
        text: std::result::Result<String, std::io::Error>,
        public: &VerifyingKey,
        own_key_id: &str,
        enrollment_id: Option<&str>,
        now: DateTime<Utc>,
        file: &str,
    ) -> LicenseStatus {
        let result = match text {
            Ok(t) => verify(&t, public, own_key_id, enrollment_id, now, file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(LicenseProblem::Missing(file.to_string()))
            }
            Err(e) => Err(LicenseProblem::Unreadable {
                file: file.to_string(),
                detail: e.to_string(),
            }),
        };
        let public_key_id = key_id_of(public);
        match result {
            Ok(license) => {
                let expired = now >= license.expires_at;
                LicenseStatus {
                    state: if expired {
                        LicenseState::Expired
                    } else {
                        LicenseState::Valid
                    },
                    problem: expired.then(|| {
                        format!(
                            "license {} expired at {}: reads work, but new tenants are refused until the vendor's renewed license is saved at {file}",
                            license.license_id,
                            rfc3339_micros(license.expires_at)
                        )
                    }),
                    license: Some(license),
                    file: file.to_string(),
                    public_key_id,
                    checked_at: now,
                }
            }
            Err(p) => LicenseStatus {
                state: p.state(),
                problem: Some(p.to_string()),
                license: None,
                file: file.to_string(),
                public_key_id,
                checked_at: now,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(now: DateTime<Utc>) -> License {
        License {
            license_id: crate::ids::new_id(now),
            install_id: crate::ids::new_id(now),
            customer: "Acme Sovereign GmbH".into(),
            issued_at: now,
            expires_at: now + chrono::Duration::days(365),
            limits: Limits {
                max_tenants: Some(50),
            },
            features: vec!["sovereign".into()],
            air_gapped: false,
            install_key_id: Some("own".into()),
            enrollment_key_id: None,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn an_issued_license_verifies_offline() {
        let cp = InstallKey::from_seed(&[1; 32]);
        let lic = sample(now());
        let text = issue(&lic, &cp).unwrap().to_string();
        assert_eq!(
            verify(&text, &cp.public(), "own", None, now(), "f").unwrap(),
            lic
        );
    }

    #[test]
    fn an_altered_forged_or_foreign_license_is_refused_saying_why() {
        let cp = InstallKey::from_seed(&[1; 32]);
        let lic = sample(now());
        let good = issue(&lic, &cp).unwrap();
        let check =
            |v: &serde_json::Value| verify(&v.to_string(), &cp.public(), "own", None, now(), "f");

        let mut altered = good.clone();
        altered["license"]["limits"]["max_tenants"] = serde_json::json!(5000);
        let err = check(&altered).unwrap_err();
        assert!(matches!(err, LicenseProblem::BadSignature { .. }), "{err}");
        assert!(err.to_string().contains("altered"), "{err}");

        let forger = InstallKey::from_seed(&[2; 32]);
        let mut forged = issue(&lic, &forger).unwrap();
        let err = check(&forged).unwrap_err();
        assert!(matches!(err, LicenseProblem::WrongKey { .. }), "{err}");
        // A forger who copies the real key_id still fails on the signature.
        forged["key_id"] = good["key_id"].clone();
        assert!(matches!(
            check(&forged).unwrap_err(),
            LicenseProblem::BadSignature { .. }
        ));

        let err = verify("{not json", &cp.public(), "own", None, now(), "f").unwrap_err();
        assert!(matches!(err, LicenseProblem::Malformed { .. }), "{err}");

        let mut bound = lic.clone();
        bound.install_key_id = Some("someone-else".into());
        let err = check(&issue(&bound, &cp).unwrap()).unwrap_err();
        assert!(err.to_string().contains("another install"), "{err}");

        let mut future = lic;
        future.issued_at = now() + chrono::Duration::days(3);
        let err = check(&issue(&future, &cp).unwrap()).unwrap_err();
        assert!(err.to_string().contains("clock"), "{err}");
    }

    #[test]
    fn a_license_naming_no_install_key_binds_only_to_the_holder_of_its_enrollment_secret() {
        let cp = InstallKey::from_seed(&[1; 32]);
        let mut lic = sample(now());
        lic.install_key_id = None;
        let text = issue(&lic, &cp).unwrap().to_string();
        // Neither a key nor an enrollment: any appliance could use it, so none does.
        let err = verify(&text, &cp.public(), "own", Some("e1"), now(), "f").unwrap_err();
        assert!(matches!(err, LicenseProblem::Unbound { .. }), "{err}");
        assert!(err.to_string().contains("any appliance"), "{err}");

        lic.enrollment_key_id = Some("e1".into());
        let text = issue(&lic, &cp).unwrap().to_string();
        assert_eq!(
            verify(&text, &cp.public(), "own", Some("e1"), now(), "f").unwrap(),
            lic
        );
        for held in [None, Some("e2")] {
            let err = verify(&text, &cp.public(), "own", held, now(), "f").unwrap_err();
            assert!(
                matches!(err, LicenseProblem::WrongEnrollment { .. }),
                "{err}"
            );
            assert!(err.to_string().contains("enrollment_secret"), "{err}");
        }
        // A license bound to a key leaves the member out: older appliances know its shape.
        let bound = issue(&sample(now()), &cp).unwrap();
        assert!(bound["license"].get("enrollment_key_id").is_none());
    }

    #[test]
    fn disk_format_codes_are_pinned() {
        let pinned = [
            (LicenseState::Valid, 0u8),
            (LicenseState::Expired, 1),
            (LicenseState::Missing, 2),
            (LicenseState::Invalid, 3),
        ];
        for (st, code) in pinned {
            assert_eq!(crate::store::codec::encode(&st).unwrap(), [code], "{st:?}");
        }
        assert_eq!(pinned.len(), LicenseState::ALL.len());
    }

    #[test]
    fn past_expiry_the_license_is_expired_not_refused() {
        let cp = InstallKey::from_seed(&[1; 32]);
        let lic = sample(now());
        let text = issue(&lic, &cp).unwrap().to_string();
        let later = lic.expires_at + chrono::Duration::seconds(1);
        let s = LicenseStatus::check(Ok(text), &cp.public(), "own", None, later, "f");
        assert_eq!(s.state, LicenseState::Expired);
        assert!(s.problem.unwrap().contains("expired"));
        let missing = LicenseStatus::check(
            Err(std::io::ErrorKind::NotFound.into()),
            &cp.public(),
            "own",
            None,
            now(),
            "/etc/tenantry/license.json",
        );
        assert_eq!(missing.state, LicenseState::Missing);
    }
}
