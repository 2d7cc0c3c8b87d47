//! The control plane's install registry as stored, and its views.
//!
//! Tables (install ids are 16-byte UUIDv7, so registration order):
//! - `installs[install]` = [`InstallRecord`];
//! - `install_heartbeats[(install, seq)]` = [`HeartbeatRecord`]: the signed document as received,
//!   the newest [`KEEP_HEARTBEATS`] per install;
//! - `install_hb_seen[(install, seq)]` = SHA-256 of the heartbeat's canonical bytes, kept for
//!   good: idempotency per seq, and the proof of what each seq said;
//! - `install_witness[(install, chain, chain seq)]` = [`WitnessRecord`]: every head ever
//!   witnessed, as first witnessed;
//! - `install_heads[(install, chain)]` = [`HeadWitness`]: the highest witnessed head per chain;
//! - `install_contradictions[(install, n)]` = [`ContradictionRecord`];
//! - `install_enrollments[install]` = [`EnrollmentRecord`]: the pending enrollment of an install
//!   registered without its key (only the secret's verifier, `onprem::enroll`), deleted when a
//!   key is bound with it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::Table;
use crate::store::keys::Key;

/// 409: a heartbeat seq arrived again with other content.
pub const HEARTBEAT_SEQ_CONFLICT: &str = "heartbeat_seq_conflict";

/// 403: an air-gapped install may only deliver heartbeats as bundles.
pub const INSTALL_AIR_GAPPED: &str = "install_air_gapped";

/// 403: an install without a bound key needs a valid `enrollment_proof` to bind one.
pub const INSTALL_ENROLLMENT_REQUIRED: &str = "install_enrollment_required";

/// 403: the `enrollment_proof` offered does not verify with the install's pending enrollment.
pub const INSTALL_ENROLLMENT_INVALID: &str = "install_enrollment_invalid";

/// 409: the install's key is already bound; there is nothing to enroll.
pub const INSTALL_ALREADY_ENROLLED: &str = "install_already_enrolled";

/// The registry.
pub const INSTALLS: Table = Table::new("installs");
/// Received heartbeats.
pub const HEARTBEATS: Table = Table::new("install_heartbeats");
/// Digests of every seq ever accepted.
pub const SEEN: Table = Table::new("install_hb_seen");
/// Every witnessed head.
pub const WITNESS: Table = Table::new("install_witness");
/// Highest witnessed head per chain.
pub const HEADS: Table = Table::new("install_heads");
/// Witness contradictions.
pub const CONTRADICTIONS: Table = Table::new("install_contradictions");
/// Pending enrollments.
pub const ENROLLMENTS: Table = Table::new("install_enrollments");

/// Heartbeat documents kept per install (35 days at one every 5 minutes); their digests and
/// witnessed heads are kept for good.
pub const KEEP_HEARTBEATS: u64 = 10_000;

/// How an install's key became known.
///
/// REMEMBER: the variant order is the file format (stored in the install record): never
/// reorder; add at the end (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum KeyBinding {
    /// Given by the operator at registration (`install_public_key`).
    Registration = 0,
    /// Taken from the first accepted online delivery (trust on first use).
    FirstDelivery = 1,
    /// Taken from the first imported bundle (trust on first use, HEARTBEATS.md).
    FirstBundle = 2,
    /// Proven by the first accepted online delivery with the enrollment secret.
    EnrolledDelivery = 3,
    /// Proven by the first imported bundle with the enrollment secret.
    EnrolledBundle = 4,
}

impl KeyBinding {
    /// Every binding.
    pub const ALL: [KeyBinding; 5] = [
        KeyBinding::Registration,
        KeyBinding::FirstDelivery,
        KeyBinding::FirstBundle,
        KeyBinding::EnrolledDelivery,
        KeyBinding::EnrolledBundle,
    ];
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyBinding::Registration => "registration",
            KeyBinding::FirstDelivery => "first_delivery",
            KeyBinding::FirstBundle => "first_bundle",
            KeyBinding::EnrolledDelivery => "enrolled_delivery",
            KeyBinding::EnrolledBundle => "enrolled_bundle",
        }
    }
}

/// How a heartbeat arrived.
///
/// REMEMBER: the variant order is the file format (stored in heartbeat records): never
/// reorder; add at the end (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Via {
    /// `POST /api/installs/{id}/heartbeats`.
    Online = 0,
    /// A bundle import.
    Bundle = 1,
}

impl Via {
    /// Both ways.
    pub const ALL: [Via; 2] = [Via::Online, Via::Bundle];
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Online => "online",
            Via::Bundle => "bundle",
        }
    }
}

/// An install as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum InstallRecord {
    /// Version 1.
    V1(InstallV1),
}

/// Version 1 of [`InstallRecord`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallV1 {
    /// The customer.
    pub customer: String,
    /// The license in force (issued at registration or by the latest renewal).
    pub license_id: Uuid,
    /// Licenses issued to this install before it; heartbeats written under them are accepted.
    pub previous_licenses: Vec<Uuid>,
    /// The signed license, canonical bytes, to hand out again.
    pub license: Vec<u8>,
    /// Heartbeats only by bundle.
    pub air_gapped: bool,
    /// License `issued_at`, microseconds.
    pub issued_at: i64,
    /// License `expires_at`, microseconds.
    pub expires_at: i64,
    /// License `limits.max_tenants`.
    pub max_tenants: Option<u64>,
    /// License `features`.
    pub features: Vec<String>,
    /// When it was registered, microseconds.
    pub registered_at: i64,
    /// The install's Ed25519 public key, once known.
    pub key: Option<[u8; 32]>,
    /// When the key was bound, microseconds.
    pub key_bound_at: Option<i64>,
    /// How it was bound.
    pub key_binding: Option<KeyBinding>,
    /// When a new heartbeat was last accepted, microseconds.
    pub last_seen_at: Option<i64>,
    /// Highest accepted seq (0: none).
    pub last_seq: u64,
    /// `sent_at` of that heartbeat, microseconds.
    pub last_sent_at: Option<i64>,
    /// Distinct seqs accepted.
    pub received: u64,
    /// Arrival counter (the order heartbeats were accepted in).
    pub arrivals: u64,
    /// `version` of the newest heartbeat.
    pub version: Option<String>,
    /// `llm_probe.status` of the newest heartbeat.
    pub llm_status: Option<String>,
    /// `llm_probe.checked_at` of the newest heartbeat, microseconds.
    pub llm_checked_at: Option<i64>,
    /// `tenants` of the newest heartbeat.
    pub tenants: Option<Vec<(String, u64)>>,
    /// `health` of the newest heartbeat: store ok, failed jobs 24 h, free disk bytes.
    pub health: Option<(bool, u64, u64)>,
    /// Marked silent by `silent_installs` since, microseconds.
    pub silent_since: Option<i64>,
    /// Witness contradictions found.
    pub contradictions: u64,
}

/// A pending enrollment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnrollmentRecord {
    /// Version 1.
    V1 {
        /// The secret's verifier (its Ed25519 public key): checks proofs, cannot make one.
        verifier: [u8; 32],
        /// When the secret was issued, microseconds.
        issued_at: i64,
    },
}

/// A received heartbeat.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum HeartbeatRecord {
    /// Version 1.
    V1 {
        /// When it was accepted, microseconds.
        received_at: i64,
        /// Its place in the arrival order of the install.
        arrival: u64,
        /// How it came.
        via: Via,
        /// Canonical bytes of `{"heartbeat", "key_id", "sig"}` as received.
        signed: Vec<u8>,
    },
}

/// A witnessed head at one seq, as first witnessed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WitnessRecord {
    /// Version 1.
    V1 {
        /// The hash the install reported for this seq.
        hash: [u8; 32],
        /// The heartbeat that reported it.
        heartbeat_seq: u64,
        /// When, microseconds.
        witnessed_at: i64,
    },
}

/// The highest witnessed head of a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeadWitness {
    /// Version 1.
    V1 {
        /// Chain seq.
        seq: u64,
        /// Hash.
        hash: [u8; 32],
        /// The heartbeat that reported it.
        heartbeat_seq: u64,
        /// When, microseconds.
        witnessed_at: i64,
    },
}

/// What kind of contradiction the witness check found.
///
/// REMEMBER: the variant order is the file format (stored in contradiction records): never
/// reorder; add at the end (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum ContradictionKind {
    /// The same chain seq was reported with another hash: entries at or below it were
    /// rewritten.
    Rewritten = 0,
    /// A later heartbeat reports a lower head than an earlier one: the chain was truncated or
    /// rolled back (restored from an older backup).
    WentBackwards = 1,
}

impl ContradictionKind {
    /// Both kinds.
    pub const ALL: [ContradictionKind; 2] = [
        ContradictionKind::Rewritten,
        ContradictionKind::WentBackwards,
    ];
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ContradictionKind::Rewritten => "rewritten",
            ContradictionKind::WentBackwards => "went_backwards",
        }
    }
}

/// A contradiction found by the witness check.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ContradictionRecord {
    /// Version 1.
    V1 {
        /// The chain.
        chain: String,
        /// What kind.
        kind: ContradictionKind,
        /// The chain seq now reported.
        reported_seq: u64,
        /// The hash now reported.
        reported_hash: [u8; 32],
        /// The heartbeat reporting it.
        reported_in: u64,
        /// The earlier witnessed seq it contradicts.
        witnessed_seq: u64,
        /// The earlier witnessed hash.
        witnessed_hash: [u8; 32],
        /// The heartbeat that reported it.
        witnessed_in: u64,
        /// When found, microseconds.
        detected_at: i64,
    },
}

/// Key of an install.
pub fn install_key(id: &Uuid) -> Vec<u8> {
    Key::new().uuid(id).into_bytes()
}

/// Key of `(install, n)`.
pub fn seq_key(id: &Uuid, n: u64) -> Vec<u8> {
    Key::new().uuid(id).u64(n).into_bytes()
}

/// Key of `(install, chain)`.
pub fn chain_key(id: &Uuid, chain: &[u8]) -> Vec<u8> {
    Key::new().uuid(id).raw(chain).into_bytes()
}

/// Key of `(install, chain, chain seq)`.
pub fn witness_key(id: &Uuid, chain: &[u8], seq: u64) -> Vec<u8> {
    Key::new().uuid(id).raw(chain).u64(seq).into_bytes()
}

/// An install's status (HEARTBEATS.md: `healthy|silent|expired`, plus `pending` before the first
/// heartbeat). Computed, never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallStatus {
    /// Registered; no heartbeat yet (not an alert: the customer may not have installed yet).
    Pending,
    /// Heard from within its intervals.
    Healthy,
    /// No heartbeat for `silent_after_missed` intervals (online installs only). Red.
    Silent,
    /// Its license is past `expires_at`. Red.
    Expired,
}

impl InstallStatus {
    /// Every status.
    pub const ALL: [InstallStatus; 4] = [
        InstallStatus::Pending,
        InstallStatus::Healthy,
        InstallStatus::Silent,
        InstallStatus::Expired,
    ];
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            InstallStatus::Pending => "pending",
            InstallStatus::Healthy => "healthy",
            InstallStatus::Silent => "silent",
            InstallStatus::Expired => "expired",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<InstallStatus> {
        InstallStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl InstallV1 {
    /// Was `license_id` ever issued to this install?
    pub fn holds(&self, license_id: &Uuid) -> bool {
        self.license_id == *license_id || self.previous_licenses.contains(license_id)
    }

    /// The status at `now`: expired first, then silent, then pending before any heartbeat.
    pub fn status(&self, now: DateTime<Utc>) -> InstallStatus {
        if crate::clock::to_micros(now) >= self.expires_at {
            InstallStatus::Expired
        } else if self.silent_since.is_some() {
            InstallStatus::Silent
        } else if self.last_seen_at.is_none() {
            InstallStatus::Pending
        } else {
            InstallStatus::Healthy
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec::encode;

    #[test]
    fn disk_format_codes_are_pinned() {
        // Each stored enum's postcard index equals its pinned discriminant (see REMEMBER).
        fn check<T: serde::Serialize + std::fmt::Debug>(pairs: &[(T, u8)]) {
            for (v, code) in pairs {
                assert_eq!(encode(v).unwrap(), [*code], "{v:?}");
            }
        }
        check(&[
            (KeyBinding::Registration, 0),
            (KeyBinding::FirstDelivery, 1),
            (KeyBinding::FirstBundle, 2),
            (KeyBinding::EnrolledDelivery, 3),
            (KeyBinding::EnrolledBundle, 4),
        ]);
        check(&[(Via::Online, 0), (Via::Bundle, 1)]);
        check(&[
            (ContradictionKind::Rewritten, 0),
            (ContradictionKind::WentBackwards, 1),
        ]);
        assert_eq!(
            KeyBinding::ALL.len() + Via::ALL.len() + ContradictionKind::ALL.len(),
            9
        );
    }
}
