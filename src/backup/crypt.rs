//! age encryption of backups (the age-encryption.org/v1 format, with the `age` crate), so an
//! operator can also open a backup with the standard `age` tool:
//! `age -d -i backup-key.txt FILE > plain.tbk`.
//!
//! Recipients are X25519 public keys (`age1...`); identities come from age identity files
//! (`AGE-SECRET-KEY-1...` lines, as `age-keygen` writes them).

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::error::Error;

/// An age X25519 recipient, parsed: `age1...`.
#[derive(Clone)]
pub struct Recipient(age::x25519::Recipient);

impl Recipient {
    /// Parses a recipient.
    ///
    /// Errors: [`Error::Recipient`] naming the value.
    pub fn parse(s: &str) -> Result<Recipient, Error> {
        age::x25519::Recipient::from_str(s.trim())
            .map(Recipient)
            .map_err(|e| Error::Recipient {
                value: s.to_string(),
                detail: e.to_string(),
            })
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({})", self.0)
    }
}

impl TryFrom<String> for Recipient {
    type Error = String;
    fn try_from(s: String) -> Result<Recipient, String> {
        Recipient::parse(&s).map_err(|e| e.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Recipient {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Recipient, D::Error> {
        let s = String::deserialize(d)?;
        Recipient::try_from(s).map_err(serde::de::Error::custom)
    }
}

/// Wraps `out` so that what is written is encrypted to `recipients`. Call
/// [`age::stream::StreamWriter::finish`] at the end, or the last chunk is missing and the file
/// does not decrypt.
pub fn encrypt<W: Write>(
    out: W,
    recipients: &[Recipient],
) -> Result<age::stream::StreamWriter<W>, Error> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| &r.0 as &dyn age::Recipient))
            .map_err(|e| Error::Io {
                path: "(encryption)".into(),
                detail: e.to_string(),
            })?;
    encryptor.wrap_output(out).map_err(|e| Error::Io {
        path: "(encryption)".into(),
        detail: e.to_string(),
    })
}

/// The identities of age identity files.
pub struct Identities {
    keys: Vec<Box<dyn age::Identity + Send + Sync>>,
    files: Vec<PathBuf>,
}

impl Identities {
    /// No identity: only plain backups can be read.
    pub fn none() -> Identities {
        Identities {
            keys: Vec::new(),
            files: Vec::new(),
        }
    }

    /// Reads age identity files.
    ///
    /// Errors: [`Error::Identity`] naming the file that cannot be read or holds no identity.
    pub fn load(files: &[PathBuf]) -> Result<Identities, Error> {
        let mut keys = Vec::new();
        for f in files {
            let bad = |detail: String| Error::Identity {
                path: f.display().to_string(),
                detail,
            };
            let file = age::IdentityFile::from_file(f.display().to_string())
                .map_err(|e| bad(e.to_string()))?;
            let ids = file.into_identities().map_err(|e| bad(e.to_string()))?;
            if ids.is_empty() {
                return Err(bad(
                    "it holds no identity (expected AGE-SECRET-KEY-1... lines, as age-keygen writes)"
                        .into(),
                ));
            }
            keys.extend(ids);
        }
        Ok(Identities {
            keys,
            files: files.to_vec(),
        })
    }
}

/// The plaintext of a backup file, and whether it was encrypted.
pub struct Opened {
    /// The plain backup bytes, from the magic on.
    pub reader: Box<dyn Read + Send>,
    /// Was the file age-encrypted?
    pub encrypted: bool,
}

const AGE_BINARY: &[u8] = b"age-encryption.org/";
const AGE_ARMOR: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";

/// Opens a backup file, decrypting it when it is an age file (binary or armored).
///
/// Errors: [`Error::Io`]; [`Error::NeedsIdentity`] for an encrypted file and no identity;
/// [`Error::WrongKey`] when no identity matches; [`Error::Corrupt`] for a damaged age header.
pub fn open(path: &Path, ids: &Identities) -> Result<Opened, Error> {
    let p = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| Error::Io {
        path: p.clone(),
        detail: format!("cannot open: {e}"),
    })?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let head = reader.fill_buf().map_err(|e| Error::Io {
        path: p.clone(),
        detail: e.to_string(),
    })?;
    if !(head.starts_with(AGE_BINARY) || head.starts_with(AGE_ARMOR)) {
        return Ok(Opened {
            reader: Box::new(reader),
            encrypted: false,
        });
    }
    if ids.keys.is_empty() {
        return Err(Error::NeedsIdentity { path: p });
    }
    let decryptor =
        age::Decryptor::new_buffered(age::armor::ArmoredReader::new(reader)).map_err(|e| {
            Error::Corrupt {
                path: p.clone(),
                detail: format!("bad age header: {e}"),
            }
        })?;
    let plain = decryptor
        .decrypt(ids.keys.iter().map(|k| k.as_ref() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => Error::WrongKey {
                path: p.clone(),
                identities: ids
                    .files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            other => Error::Corrupt {
                path: p.clone(),
                detail: format!("age: {other}"),
            },
        })?;
    Ok(Opened {
        reader: Box::new(plain),
        encrypted: true,
    })
}
