//! The install's Ed25519 key, and checkpoint signatures (AUDIT.md "Checkpoints").
//!
//! The key is made at first start and kept in `DATA_DIR/keys/install.ed25519`, owner-only (0600,
//! in a 0700 directory): the standard base64 of the 32-byte seed and a newline. The meta table
//! records its `key_id`, so a swapped or missing key file is refused at start instead of silently
//! signing with another key.
//!
//! A new key file is made durable before its `key_id` is committed (see
//! [`InstallKey::load_or_create_at`]), so no crash leaves a store whose recorded key is missing.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::canonical;
use super::model::{ChainId, Checkpoint, CheckpointRecord};

/// File name of the install key inside `DATA_DIR/keys/`.
pub const INSTALL_KEY_FILE: &str = "install.ed25519";

/// Why the install key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("install key {path}: {detail}")]
    Io {
        /// The key file.
        path: String,
        /// What failed.
        detail: String,
    },
    /// The key file does not hold a base64 32-byte seed.
    #[error("install key {path} is malformed: expected the base64 of a 32-byte Ed25519 seed")]
    Malformed {
        /// The key file.
        path: String,
    },
}

/// The install's signing key.
pub struct InstallKey {
    signing: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for InstallKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// `key_id`: lowercase hex SHA-256 of the raw 32-byte public key.
pub fn key_id_of(public: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(public.as_bytes()))
}

impl InstallKey {
    /// Path of the key file under `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("keys").join(INSTALL_KEY_FILE)
    }

    /// Loads the key, or makes one when `create` and no file exists.
    pub fn load_or_create(data_dir: &Path, create: bool) -> Result<InstallKey, KeyError> {
        Self::load_or_create_at(&Self::path(data_dir), create)
    }

    /// Loads the key kept at `path` (the base64 seed and a newline), or makes one there, owner
    /// only in an owner-only directory, when `create` and no file exists. The control plane's
    /// license key and the tenant-token key use this too.
    ///
    /// A new key is written with [`write_private_durably`]: into `path.tmp`, fsynced, renamed
    /// onto `path`, then the directory (and its parent, which may just have gained `keys/`) is
    /// fsynced. So `path` never holds a partial key, and once this returns the file survives a
    /// crash or power loss. The caller must hold the store (redb's lock), so no other process
    /// makes the same key meanwhile.
    ///
    /// Ordering with the store (`app::open_state`): the key file is made durable first, and
    /// only then is its `key_id` committed to the meta table, in the first start's write. A
    /// crash between the two leaves a key file whose id is not recorded yet; nothing has been
    /// signed with it, and the next start (which finds no recorded id, so `create` is true)
    /// loads that same file and commits its id. The other order could leave a committed id
    /// whose key file never reached the disk, and the store would refuse every start. A crash
    /// while the key is being written leaves at most `path.tmp`, which the next attempt
    /// replaces.
    ///
    /// Errors: [`KeyError::Io`] (unreadable file, no randomness, a failed write or sync),
    /// [`KeyError::Malformed`].
    pub fn load_or_create_at(path: &Path, create: bool) -> Result<InstallKey, KeyError> {
        let io = |detail: String| KeyError::Io {
            path: path.display().to_string(),
            detail,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let seed: [u8; 32] = B64
                    .decode(text.trim())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| KeyError::Malformed {
                        path: path.display().to_string(),
                    })?;
                Ok(InstallKey::from_seed(&seed))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(|e| io(format!("no randomness: {e}")))?;
                if let Some(dir) = path.parent() {
                    crate::store::ensure_private_dir(dir).map_err(|e| io(e.to_string()))?;
                }
                write_private_durably(path, format!("{}\n", B64.encode(seed)).as_bytes())
                    .map_err(|e| io(e.to_string()))?;
                Ok(InstallKey::from_seed(&seed))
            }
            Err(e) => Err(io(e.to_string())),
        }
    }

    /// A key from a seed (tests, the demo's replay uses the real key).
    pub fn from_seed(seed: &[u8; 32]) -> InstallKey {
        let signing = SigningKey::from_bytes(seed);
        let key_id = key_id_of(&signing.verifying_key());
        InstallKey { signing, key_id }
    }

    /// The Ed25519 signing key (the tenant-token key hands it to the JWT library).
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// Lowercase hex SHA-256 of the public key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key.
    pub fn public(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// Standard base64 of the raw 32-byte public key (`GET /api/audit/public-key`).
    pub fn public_b64(&self) -> String {
        B64.encode(self.public().as_bytes())
    }

    /// Signs arbitrary canonical bytes (heartbeats, bundles and licenses use this).
    pub fn sign(&self, msg: &[u8]) -> Signature {
        self.signing.sign(msg)
    }

    /// Standard base64 of the signature over `msg` (the `sig` member of signed documents).
    pub fn sign_b64(&self, msg: &[u8]) -> String {
        B64.encode(self.signing.sign(msg).to_bytes())
    }

    /// Signs the head `(seq, hash)` of `chain` at `ts`.
    pub fn sign_checkpoint(
        &self,
        chain: &ChainId,
        seq: u64,
        hash: [u8; 32],
        ts: String,
    ) -> CheckpointRecord {
        let msg = checkpoint_message(&chain.to_string(), seq, &hex::encode(hash), &ts);
        let sig = self.signing.sign(&msg);
        CheckpointRecord::V1 {
            seq,
            hash,
            ts,
            key_id: self.key_id.clone(),
            sig: sig.to_bytes().to_vec(),
        }
    }
}

/// Writes `bytes` to a new owner-only file.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Writes `bytes` to `path` (owner-only) so that a crash never leaves a partial file there and
/// a completed write survives power loss: into `path.tmp` (replacing a leftover of an earlier
/// crash), fsync, rename onto `path` (replacing it), fsync of `path`'s directory and of that
/// directory's parent (which holds its entry when it was just created).
///
/// Errors: any I/O failure; `path.tmp` is removed then, and `path` is untouched.
pub fn write_private_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let written = write_private(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// The canonical bytes a checkpoint signs: `{"chain","hash","seq","ts"}`.
pub fn checkpoint_message(chain: &str, seq: u64, hash_hex: &str, ts: &str) -> Vec<u8> {
    let v = json!({"chain": chain, "seq": seq, "hash": hash_hex, "ts": ts});
    // Strings and an integer always have a canonical form.
    canonical::to_vec(&v).unwrap_or_default()
}

/// The public keys a verifier trusts, by `key_id`. Today the install key; rotated keys join it.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: Vec<(String, VerifyingKey)>,
}

impl KeyRing {
    /// A ring holding `keys`.
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>) -> KeyRing {
        KeyRing {
            keys: keys.into_iter().map(|k| (key_id_of(&k), k)).collect(),
        }
    }

    /// Does `record` carry a valid signature over `(chain, seq, hash, ts)` by a trusted key?
    pub fn verifies(&self, chain: &ChainId, record: &CheckpointRecord) -> bool {
        self.to_check(chain, record)
            .is_some_and(|(msg, sig, key)| key.verify_strict(&msg, &sig).is_ok())
    }

    /// What checking `record`'s signature takes: the message it signs, its signature and the
    /// trusted key it names. `None` (it does not verify) for an unknown key or a malformed
    /// signature.
    fn to_check(
        &self,
        chain: &ChainId,
        record: &CheckpointRecord,
    ) -> Option<(Vec<u8>, Signature, VerifyingKey)> {
        let CheckpointRecord::V1 {
            seq,
            hash,
            ts,
            key_id,
            sig,
        } = record;
        let (_, key) = self.keys.iter().find(|(id, _)| id == key_id)?;
        let sig = Signature::from_slice(sig).ok()?;
        let msg = checkpoint_message(&chain.to_string(), *seq, &hex::encode(hash), ts);
        Some((msg, sig, *key))
    }

    /// [`KeyRing::verifies`] for many checkpoints at once, one verdict per `(chain, record)` in
    /// order, for a full verify, which checks every checkpoint of the ledger (one per chain and
    /// per nightly run that found the chain moved).
    ///
    /// The signatures are checked [`SIGNATURE_BATCH`] at a time with Ed25519 batch verification
    /// (ed25519-dalek's `verify_batch`: one multiscalar multiplication for the batch, about a
    /// third of the cost per signature of `verify_strict` here). A batch that does not verify
    /// is checked again one signature at a time with `verify_strict`, which names the bad ones,
    /// so a tampered checkpoint gets the verdict [`KeyRing::verifies`] gives it. A batch that
    /// verifies holds, but for a chance of 2^-128, only signatures whose equation holds: that
    /// is, signatures made with the key. (`verify_strict` also refuses a signature whose `R`
    /// is of small order, which only the key's holder could make, and who could as well sign
    /// the record properly; the batch does not look for those.)
    pub fn verifies_each(&self, records: &[(ChainId, &CheckpointRecord)]) -> Vec<bool> {
        let mut verdicts = vec![false; records.len()];
        let mut batch: Vec<(usize, Vec<u8>, Signature, VerifyingKey)> =
            Vec::with_capacity(SIGNATURE_BATCH);
        for (at, (chain, record)) in records.iter().enumerate() {
            // An unknown key or a malformed signature does not verify (as in `verifies`).
            let Some((msg, sig, key)) = self.to_check(chain, record) else {
                continue;
            };
            batch.push((at, msg, sig, key));
            if batch.len() == SIGNATURE_BATCH {
                verify_batch(&mut batch, &mut verdicts);
            }
        }
        verify_batch(&mut batch, &mut verdicts);
        verdicts
    }
}

/// Checkpoint signatures per Ed25519 batch in [`KeyRing::verifies_each`]: past a few hundred
/// the cost per signature hardly falls (11.2 µs at 256, 10.3 µs at 1,024, against 34.9 µs for
/// `verify_strict`, measured here), while a batch with a bad signature is checked again whole.
pub const SIGNATURE_BATCH: usize = 256;

/// Verifies `batch` (`(index, message, signature, key)`), sets the verdict of each at its index
/// and empties it: all true when the batch verifies, else each signature's own `verify_strict`.
fn verify_batch(batch: &mut Vec<(usize, Vec<u8>, Signature, VerifyingKey)>, verdicts: &mut [bool]) {
    if batch.is_empty() {
        return;
    }
    // A weak (small-order) key never verifies under `verify_strict`: such a batch goes one by
    // one, and so does a lone signature (a batch of one costs 36.1 µs here, `verify_strict`
    // 32.5 µs; two cost 24.2 µs each).
    let strong = batch.len() > 1 && batch.iter().all(|(_, _, _, key)| !key.is_weak());
    let messages: Vec<&[u8]> = batch.iter().map(|(_, m, _, _)| m.as_slice()).collect();
    let signatures: Vec<Signature> = batch.iter().map(|(_, _, s, _)| *s).collect();
    let keys: Vec<VerifyingKey> = batch.iter().map(|(_, _, _, k)| *k).collect();
    let all = strong && ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok();
    for (at, msg, sig, key) in batch.drain(..) {
        if let Some(v) = verdicts.get_mut(at) {
            *v = all || key.verify_strict(&msg, &sig).is_ok();
        }
    }
}

/// The published form of a stored checkpoint.
pub fn publish(chain: &ChainId, record: &CheckpointRecord) -> Checkpoint {
    let CheckpointRecord::V1 {
        seq,
        hash,
        ts,
        key_id,
        sig,
    } = record;
    Checkpoint {
        chain: chain.to_string(),
        seq: *seq,
        hash: hex::encode(hash),
        ts: ts.clone(),
        key_id: key_id.clone(),
        sig: B64.encode(sig),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_and_any_change_breaks_it() {
        let key = InstallKey::from_seed(&[7; 32]);
        let ring = KeyRing::new([key.public()]);
        let chain = ChainId::Platform;
        let cp = key.sign_checkpoint(&chain, 5, [1; 32], "2026-11-21T10:00:00.000000Z".into());
        assert!(ring.verifies(&chain, &cp));
        let CheckpointRecord::V1 {
            ts, key_id, sig, ..
        } = cp.clone();
        let moved = CheckpointRecord::V1 {
            seq: 6,
            hash: [1; 32],
            ts,
            key_id,
            sig,
        };
        assert!(!ring.verifies(&chain, &moved));
        assert!(!KeyRing::new([InstallKey::from_seed(&[8; 32]).public()]).verifies(&chain, &cp));
    }

    /// Batched verdicts are the per-signature ones, whatever spoils a signature and wherever
    /// in a batch it sits: a batch holding one bad signature is checked one by one, so its good
    /// neighbours still verify and only the bad one is named.
    #[test]
    fn batched_verdicts_are_the_verdicts_one_by_one() {
        let key = InstallKey::from_seed(&[7; 32]);
        let stranger = InstallKey::from_seed(&[8; 32]);
        let ring = KeyRing::new([key.public()]);
        let ts = || "2026-11-21T10:00:00.000000Z".to_string();
        let n = 2 * SIGNATURE_BATCH + 17;
        let mut records: Vec<(ChainId, CheckpointRecord)> = (0..n)
            .map(|i| {
                let chain = ChainId::Tenant(uuid::Uuid::from_u128(i as u128 + 1));
                let cp = key.sign_checkpoint(&chain, i as u64 + 1, [i as u8; 32], ts());
                (chain, cp)
            })
            .collect();
        let spoil = |records: &mut Vec<(ChainId, CheckpointRecord)>, at: usize, how: usize| {
            let (
                chain,
                CheckpointRecord::V1 {
                    seq,
                    hash,
                    ts,
                    key_id,
                    sig,
                },
            ) = &mut records[at];
            match how {
                0 => *seq += 1,                  // the record moved to another seq
                1 => sig[3] ^= 1,                // a flipped bit in R
                2 => sig[40] ^= 1,               // a flipped bit in S
                3 => sig[63] |= 0xf0,            // S not reduced (not canonical)
                4 => sig.truncate(10),           // not a signature at all
                5 => *key_id = "unknown".into(), // a key the ring does not trust
                6 => hash[0] ^= 1,
                7 => ts.push('0'),
                _ => {
                    // Signed by another key under the trusted key's id.
                    *sig = match stranger.sign_checkpoint(chain, *seq, *hash, ts.clone()) {
                        CheckpointRecord::V1 { sig, .. } => sig,
                    };
                }
            }
        };
        // Seven bad records in the first batch, two in the second, none in the third (partial).
        for (at, how) in [
            (0, 0),
            (300, 1),
            (301, 2),
            (5, 3),
            (6, 4),
            (7, 5),
            (8, 6),
            (9, 7),
            (10, 8),
        ] {
            spoil(&mut records, at, how);
        }
        let refs: Vec<(ChainId, &CheckpointRecord)> =
            records.iter().map(|(c, r)| (*c, r)).collect();
        let batched = ring.verifies_each(&refs);
        let one_by_one: Vec<bool> = records.iter().map(|(c, r)| ring.verifies(c, r)).collect();
        assert_eq!(batched, one_by_one);
        let bad: Vec<usize> = (0..n).filter(|i| !batched[*i]).collect();
        assert_eq!(bad, vec![0, 5, 6, 7, 8, 9, 10, 300, 301]);
        assert!(ring.verifies_each(&[]).is_empty());
    }

    /// Set in the child process of the crash test: where it makes its key.
    const CRASH_CHILD: &str = "TENANTRY_TEST_KEY_CRASH_AT";

    /// A real crash while the key file is written: the test binary re-runs this test in a child
    /// process under `prlimit --fsize=16`, so the kernel kills it (SIGXFSZ) after 16 of the key
    /// file's 45 bytes. The next start must find no partial key under the final name, and make
    /// a good one.
    #[test]
    fn a_crash_while_the_key_is_written_leaves_no_partial_key_file() {
        if let Some(at) = std::env::var_os(CRASH_CHILD) {
            let _ = InstallKey::load_or_create_at(Path::new(&at), true);
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join(INSTALL_KEY_FILE);
        let status = std::process::Command::new("prlimit")
            .args(["--fsize=16", "--core=0", "--"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "audit::signing::tests::a_crash_while_the_key_is_written_leaves_no_partial_key_file",
                "--test-threads=1",
            ])
            .env(CRASH_CHILD, &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("prlimit (util-linux) runs the child");
        assert!(!status.success(), "the child must be killed mid-write");
        let key = InstallKey::load_or_create_at(&path, true)
            .expect("a crash mid-write must not leave a partial key under the final name");
        let again = InstallKey::load_or_create_at(&path, false).unwrap();
        assert_eq!(key.key_id(), again.key_id());
        let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [INSTALL_KEY_FILE], "no temp file is left behind");
    }

    #[test]
    fn the_key_file_is_created_owner_only_and_reloads_to_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = InstallKey::load_or_create(dir.path(), true).unwrap();
        let b = InstallKey::load_or_create(dir.path(), false).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(InstallKey::path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
