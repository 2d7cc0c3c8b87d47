//! Ledger types: chain ids, targets, stored heads and checkpoints, and the view of an entry.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::actor::Actor;

/// 409: a chain does not verify, so its head is not signed.
pub const CHAIN_BROKEN: &str = "chain_broken";

/// A chain: `platform`, or `tenant:{uuid}` for one tenant (AUDIT.md "Chains").
///
/// REMEMBER: [`ChainId::key`]'s tag byte (0 platform, 1 tenant) is the file format of every
/// audit table's keys: never change it (`chain_key_tags_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChainId {
    /// Changes that belong to no tenant: apps, pools, operators...
    Platform,
    /// One tenant's changes.
    Tenant(Uuid),
}

/// Width of a chain's key prefix: a tag byte and 16 id bytes.
pub const CHAIN_KEY_LEN: usize = 17;

impl ChainId {
    /// Parses `platform` or `tenant:{uuid}`.
    pub fn parse(s: &str) -> Result<ChainId, String> {
        if s == "platform" {
            return Ok(ChainId::Platform);
        }
        if let Some(id) = s.strip_prefix("tenant:") {
            return Uuid::parse_str(id)
                .map(ChainId::Tenant)
                .map_err(|_| format!("chain '{s}' is invalid: tenant chains are 'tenant:<uuid>'"));
        }
        Err(format!(
            "chain '{s}' is invalid: use 'platform' or 'tenant:<uuid>'"
        ))
    }

    /// The fixed-width key prefix of this chain's rows.
    pub fn key(&self) -> [u8; CHAIN_KEY_LEN] {
        let mut k = [0u8; CHAIN_KEY_LEN];
        if let ChainId::Tenant(id) = self {
            k[0] = 1;
            k[1..].copy_from_slice(id.as_bytes());
        }
        k
    }

    /// The inverse of [`ChainId::key`].
    pub fn from_key(k: &[u8]) -> Option<ChainId> {
        match k.first()? {
            0 => Some(ChainId::Platform),
            1 => Uuid::from_slice(k.get(1..CHAIN_KEY_LEN)?)
                .ok()
                .map(ChainId::Tenant),
            _ => None,
        }
    }

    /// Its name, `platform` or `tenant:{uuid}` (lowercase, hyphenated): the same text as its
    /// `Display`, built in one allocation of the exact size (a full verify names every chain
    /// of the ledger, issue 13).
    pub fn name(&self) -> String {
        match self {
            ChainId::Platform => "platform".to_owned(),
            ChainId::Tenant(id) => {
                let mut name = String::with_capacity("tenant:".len() + 36);
                name.push_str("tenant:");
                name.push_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
                name
            }
        }
    }

    /// The tenant of a tenant chain.
    pub fn tenant_id(&self) -> Option<Uuid> {
        match self {
            ChainId::Platform => None,
            ChainId::Tenant(id) => Some(*id),
        }
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainId::Platform => f.write_str("platform"),
            ChainId::Tenant(id) => write!(f, "tenant:{id}"),
        }
    }
}

/// `{"kind", "id"}`: what an entry is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// `tenant`, `app`, `pool`, `operator`...
    pub kind: String,
    /// Its id.
    pub id: String,
}

impl Target {
    /// A target of `kind` with `id`.
    pub fn new(kind: &str, id: impl fmt::Display) -> Target {
        Target {
            kind: kind.to_string(),
            id: id.to_string(),
        }
    }
}

/// What an audited change is about, and so the chain that records it: a tenant's changes go to
/// that tenant's chain, everything else to the platform chain (AUDIT.md "Chains").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// The chain the entry is appended to.
    pub chain: ChainId,
    /// The envelope's `target`.
    pub target: Target,
}

impl Subject {
    /// Something that belongs to no tenant (an app, a pool, an operator, an install), on the
    /// platform chain.
    pub fn platform(kind: &str, id: impl fmt::Display) -> Subject {
        Subject {
            chain: ChainId::Platform,
            target: Target::new(kind, id),
        }
    }

    /// A tenant itself, on its own chain.
    pub fn tenant(id: Uuid) -> Subject {
        Subject::in_tenant(id, "tenant", id)
    }

    /// Something that belongs to tenant `tenant` (a persona, an API key), on that tenant's chain.
    pub fn in_tenant(tenant: Uuid, kind: &str, id: impl fmt::Display) -> Subject {
        Subject {
            chain: ChainId::Tenant(tenant),
            target: Target::new(kind, id),
        }
    }
}

/// A chain head as stored: the last entry's seq and hash, and its time (microseconds) so a
/// chain's `ts` never goes backwards.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub enum HeadRecord {
    /// Version 1.
    V1 {
        /// Last seq (entries are 1..=seq).
        seq: u64,
        /// SHA-256 of the last envelope.
        hash: [u8; 32],
        /// `ts` of the last entry, microseconds since the epoch.
        ts_micros: i64,
    },
}

/// A signed checkpoint as stored (AUDIT.md "Checkpoints").
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum CheckpointRecord {
    /// Version 1.
    V1 {
        /// Signed seq.
        seq: u64,
        /// Hash of the entry at `seq`.
        hash: [u8; 32],
        /// Signing time, exactly as signed.
        ts: String,
        /// Lowercase hex SHA-256 of the signing public key.
        key_id: String,
        /// Ed25519 signature over the canonical `{"chain","seq","hash","ts"}`.
        sig: Vec<u8>,
    },
}

/// A shred as stored (`audit_shreds[(chain, through_seq)]`): the `data` rows of seqs
/// `from_seq..=through_seq` were deleted on purpose, so verify may find them absent. Any other
/// absent data row is a deletion, and verify names it. Ledger metadata, like checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShredRecord {
    /// Version 1.
    V1 {
        /// First seq whose data was deleted.
        from_seq: u64,
        /// Last seq whose data was deleted (the head when the shred ran).
        through_seq: u64,
        /// When, microseconds since the epoch.
        at_micros: i64,
    },
}

/// The seq of a chain's newest checkpoint, kept apart from the checkpoints
/// (`audit_latest_checkpoint[chain]`), so that deleting the newest checkpoints cannot silently
/// move the anchor verify starts from: verify compares it with the newest checkpoint stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LatestCheckpointRecord {
    /// Version 1.
    V1 {
        /// Seq of the newest checkpoint signed for the chain.
        seq: u64,
    },
}

/// A checkpoint as published: `{"chain", "seq", "hash", "ts", "key_id", "sig"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// `platform` or `tenant:{uuid}`.
    pub chain: String,
    /// Signed seq.
    pub seq: u64,
    /// Lowercase hex hash of the entry at `seq`.
    pub hash: String,
    /// Signing time, RFC 3339 with microseconds.
    pub ts: String,
    /// Lowercase hex SHA-256 of the raw public key.
    pub key_id: String,
    /// Standard base64 (padded) Ed25519 signature.
    pub sig: String,
}

/// One entry as the browser and API show it: the envelope's members, its hash, and its `data`
/// (`null` once shredded).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EntryView {
    /// Chain id.
    pub chain: String,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// RFC 3339 UTC with microseconds.
    pub ts: String,
    /// Versioned event name, e.g. `tenant.suspended.v1`.
    pub action: String,
    /// Who acted.
    pub actor: Actor,
    /// What it was about.
    pub target: Target,
    /// The tenant, or null on the platform chain.
    pub tenant_id: Option<String>,
    /// Lowercase hex SHA-256 of the canonical `data`.
    pub data_sha256: String,
    /// Hash of the previous entry.
    pub prev: String,
    /// Hash of this entry's envelope.
    pub hash: String,
    /// Details (reasons, field diffs); null when shredded.
    pub data: Option<serde_json::Value>,
}

/// The envelope as parsed from stored canonical bytes, borrowing where it can (its format
/// version `v` is checked by verify, not here).
#[derive(Debug, Deserialize)]
pub(crate) struct EnvelopeRef<'a> {
    #[serde(borrow)]
    pub chain: std::borrow::Cow<'a, str>,
    pub seq: u64,
    #[serde(borrow)]
    pub ts: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub action: std::borrow::Cow<'a, str>,
    pub actor: Actor,
    pub target: Target,
    pub tenant_id: Option<String>,
    #[serde(borrow)]
    pub data_sha256: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub prev: std::borrow::Cow<'a, str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_key_tags_are_pinned() {
        assert_eq!(ChainId::Platform.key(), [0u8; CHAIN_KEY_LEN]);
        let id = Uuid::from_bytes([7; 16]);
        let k = ChainId::Tenant(id).key();
        assert_eq!((k[0], &k[1..]), (1, id.as_bytes().as_slice()));
    }

    #[test]
    fn chain_ids_round_trip_through_text_and_keys() {
        let t = ChainId::Tenant(Uuid::now_v7());
        for c in [ChainId::Platform, t] {
            assert_eq!(ChainId::parse(&c.to_string()).unwrap(), c);
            assert_eq!(ChainId::from_key(&c.key()).unwrap(), c);
        }
        assert!(ChainId::parse("tenant:nope").is_err());
        assert!(ChainId::parse("other").is_err());
    }
}
