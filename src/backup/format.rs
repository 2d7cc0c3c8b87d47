//! The backup file, format 1. Plain, it reads:
//!
//! ```text
//! "tenantry backup v1\n"                     magic, uncompressed
//! zstd stream of the body:
//!   u32 n, n bytes                            manifest (JSON, [`Manifest`])
//!   'F' u16 n, path, u32 n, bytes             a file of the data dir (keys/install.ed25519)
//!   'T' u16 n, name                           a table; the rows that follow belong to it
//!   'R' u32 n, key, u32 n, value              a row
//!   'E' u64 tables, u64 rows, u64 files       the end, with counts
//!   32 bytes                                  BLAKE3 of the body up to here
//! ```
//!
//! Integers are big-endian. Nothing may follow the checksum. An encrypted backup is this whole
//! file encrypted with age (binary, not armored), so `age -d -i KEY FILE` gives the plain file.
//! A reader checks the counts and the checksum only at the end, so a loader must treat what it
//! wrote as unverified until [`read`] returns `Ok`.

use std::io::{self, Read, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The first bytes of a plain backup.
pub const MAGIC: &[u8] = b"tenantry backup v1\n";
/// The format this build writes and reads.
pub const FORMAT: u32 = 1;
/// zstd level: fast, and about 5x on ledger bytes.
const LEVEL: i32 = 3;
/// Largest manifest accepted, bytes.
const MAX_MANIFEST: u64 = 1 << 20;

/// What a backup is, written first so a reader can refuse early (a newer format or schema).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Backup format, [`FORMAT`].
    pub format: u32,
    /// When the snapshot was taken.
    pub created_at: DateTime<Utc>,
    /// The tenantry that wrote it.
    pub tenantry_version: String,
    /// The store's schema version in the snapshot.
    pub schema_version: u32,
    /// The install's id, when the store has one.
    pub install_id: Option<String>,
    /// The `key_id` of the install key the store records.
    pub install_key_id: Option<String>,
    /// Audit chains in the snapshot.
    pub chains: u64,
    /// The platform chain's head seq in the snapshot (0 when empty).
    pub platform_head_seq: u64,
    /// Standard base64 of the install key's public key, written when the private keys were left
    /// out (`backup.include_keys = false`), so the checkpoints still verify. Absent in backups
    /// that carry `keys/` (and in those written before this field existed).
    #[serde(default)]
    pub install_public_key: Option<String>,
}

/// How much a backup holds, checked against its end record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Tables.
    pub tables: u64,
    /// Rows, all tables together.
    pub rows: u64,
    /// Files of the data dir.
    pub files: u64,
}

/// Writes a backup body into `W` as it goes.
pub struct Writer<W: Write> {
    out: zstd::stream::write::Encoder<'static, W>,
    hasher: blake3::Hasher,
    counts: Counts,
}

impl<W: Write> Writer<W> {
    /// Writes the magic and the manifest.
    pub fn start(mut out: W, manifest: &Manifest) -> io::Result<Writer<W>> {
        out.write_all(MAGIC)?;
        let out = zstd::stream::write::Encoder::new(out, LEVEL)?;
        let mut w = Writer {
            out,
            hasher: blake3::Hasher::new(),
            counts: Counts::default(),
        };
        let json = serde_json::to_vec(manifest).map_err(io::Error::other)?;
        w.put(&len32(json.len())?.to_be_bytes())?;
        w.put(&json)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.out.write_all(bytes)
    }

    /// Adds a file of the data dir, by its path relative to the data dir (`/`-separated).
    pub fn file(&mut self, path: &str, bytes: &[u8]) -> io::Result<()> {
        self.put(b"F")?;
        self.put(&len16(path.len())?.to_be_bytes())?;
        self.put(path.as_bytes())?;
        self.put(&len32(bytes.len())?.to_be_bytes())?;
        self.put(bytes)?;
        self.counts.files += 1;
        Ok(())
    }

    /// Starts a table.
    pub fn table(&mut self, name: &str) -> io::Result<()> {
        self.put(b"T")?;
        self.put(&len16(name.len())?.to_be_bytes())?;
        self.put(name.as_bytes())?;
        self.counts.tables += 1;
        Ok(())
    }

    /// Adds a row of the current table.
    pub fn row(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.put(b"R")?;
        self.put(&len32(key.len())?.to_be_bytes())?;
        self.put(key)?;
        self.put(&len32(value.len())?.to_be_bytes())?;
        self.put(value)?;
        self.counts.rows += 1;
        Ok(())
    }

    /// Writes the end record and the checksum, ends the compressed stream and returns the
    /// output with what was written.
    pub fn finish(mut self) -> io::Result<(W, Counts, [u8; 32])> {
        let c = self.counts;
        self.put(b"E")?;
        for n in [c.tables, c.rows, c.files] {
            self.put(&n.to_be_bytes())?;
        }
        let sum: [u8; 32] = self.hasher.finalize().into();
        self.out.write_all(&sum)?;
        let out = self.out.finish()?;
        Ok((out, c, sum))
    }
}

fn len16(n: usize) -> io::Result<u16> {
    u16::try_from(n).map_err(|_| io::Error::other(format!("name of {n} bytes is too long")))
}

fn len32(n: usize) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| io::Error::other(format!("value of {n} bytes is too large")))
}

/// What [`read`] hands its visitor, in file order.
#[derive(Debug)]
pub enum Item<'a> {
    /// A data-dir file: its relative path and bytes.
    File(&'a str, &'a [u8]),
    /// A table starts.
    Table(&'a str),
    /// A row of the current table.
    Row(&'a [u8], &'a [u8]),
}

/// Why a backup could not be read.
#[derive(Debug)]
pub enum ReadError<E> {
    /// The bytes are not a tenantry backup at all (another kind of file).
    NotABackup(String),
    /// The bytes are a damaged backup: what is wrong with them.
    Corrupt(String),
    /// A newer format than [`FORMAT`].
    TooNew(u32),
    /// The visitor failed.
    Visit(E),
}

struct Hashing<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn corrupt<E>(e: io::Error) -> ReadError<E> {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        ReadError::Corrupt("truncated: the file ends before its end record".into())
    } else {
        ReadError::Corrupt(e.to_string())
    }
}

fn read_exact<E, R: Read>(r: &mut R, n: u64) -> Result<Vec<u8>, ReadError<E>> {
    let mut buf = Vec::new();
    // `take` grows the buffer as bytes arrive, so a corrupt length cannot force a huge
    // allocation before the checksum is reached.
    r.by_ref().take(n).read_to_end(&mut buf).map_err(corrupt)?;
    if (buf.len() as u64) < n {
        return Err(corrupt(io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(buf)
}

fn read_u<E, R: Read, const N: usize>(r: &mut R) -> Result<[u8; N], ReadError<E>> {
    let mut b = [0u8; N];
    r.read_exact(&mut b).map_err(corrupt)?;
    Ok(b)
}

fn read_name<E, R: Read>(r: &mut R) -> Result<String, ReadError<E>> {
    let n = u16::from_be_bytes(read_u(r)?);
    String::from_utf8(read_exact(r, u64::from(n))?)
        .map_err(|_| ReadError::Corrupt("a name is not UTF-8".into()))
}

/// Reads a plain backup from `input` (positioned at the magic), handing every file, table and
/// row to `visit`, then checks the end record's counts and the checksum.
///
/// Errors: [`ReadError::Corrupt`] for a bad magic, bad compression, a truncated file, an
/// unknown record, a count or checksum mismatch, or trailing bytes; [`ReadError::TooNew`];
/// the visitor's own error.
pub fn read<E>(
    mut input: impl Read,
    visit: &mut dyn FnMut(Item<'_>) -> Result<(), E>,
) -> Result<(Manifest, Counts, [u8; 32]), ReadError<E>> {
    let mut magic = vec![0u8; MAGIC.len()];
    input
        .read_exact(&mut magic)
        .map_err(|_| ReadError::Corrupt("too short to be a tenantry backup".into()))?;
    if magic != MAGIC {
        if magic.starts_with(b"tenantry backup v") {
            let v = String::from_utf8_lossy(&magic[17..])
                .trim()
                .parse()
                .unwrap_or(0);
            return Err(ReadError::TooNew(v));
        }
        return Err(ReadError::NotABackup(
            "it does not start with \"tenantry backup v1\"".into(),
        ));
    }
    let decoder = zstd::stream::read::Decoder::new(input).map_err(corrupt)?;
    let mut r = Hashing {
        inner: decoder,
        hasher: blake3::Hasher::new(),
    };
    let len = u32::from_be_bytes(read_u(&mut r)?);
    if u64::from(len) > MAX_MANIFEST {
        return Err(ReadError::Corrupt(format!(
            "manifest of {len} bytes is larger than {MAX_MANIFEST}"
        )));
    }
    let manifest: Manifest = serde_json::from_slice(&read_exact(&mut r, u64::from(len))?)
        .map_err(|e| ReadError::Corrupt(format!("bad manifest: {e}")))?;
    if manifest.format > FORMAT {
        return Err(ReadError::TooNew(manifest.format));
    }
    let mut counts = Counts::default();
    let mut in_table = false;
    loop {
        let [tag] = read_u(&mut r)?;
        match tag {
            b'F' => {
                let path = read_name(&mut r)?;
                let n = u32::from_be_bytes(read_u(&mut r)?);
                let bytes = read_exact(&mut r, u64::from(n))?;
                visit(Item::File(&path, &bytes)).map_err(ReadError::Visit)?;
                counts.files += 1;
            }
            b'T' => {
                let name = read_name(&mut r)?;
                visit(Item::Table(&name)).map_err(ReadError::Visit)?;
                counts.tables += 1;
                in_table = true;
            }
            b'R' if in_table => {
                let n = u32::from_be_bytes(read_u(&mut r)?);
                let key = read_exact(&mut r, u64::from(n))?;
                let n = u32::from_be_bytes(read_u(&mut r)?);
                let value = read_exact(&mut r, u64::from(n))?;
                visit(Item::Row(&key, &value)).map_err(ReadError::Visit)?;
                counts.rows += 1;
            }
            b'E' => break,
            other => {
                return Err(ReadError::Corrupt(format!(
                    "unknown record 0x{other:02x} after {} rows",
                    counts.rows
                )));
            }
        }
    }
    let mut declared = [0u64; 3];
    for d in &mut declared {
        *d = u64::from_be_bytes(read_u(&mut r)?);
    }
    let computed: [u8; 32] = r.hasher.finalize().into();
    let mut stored = [0u8; 32];
    r.inner.read_exact(&mut stored).map_err(corrupt)?;
    if stored != computed {
        return Err(ReadError::Corrupt(format!(
            "checksum mismatch: the file says blake3 {}, its content hashes to {}",
            hex::encode(stored),
            hex::encode(computed)
        )));
    }
    if declared != [counts.tables, counts.rows, counts.files] {
        return Err(ReadError::Corrupt(format!(
            "counts mismatch: the end record says {declared:?} (tables, rows, files), the file holds {:?}",
            [counts.tables, counts.rows, counts.files]
        )));
    }
    let mut rest = [0u8; 1];
    match r.inner.read(&mut rest) {
        Ok(0) => {}
        Ok(_) => {
            return Err(ReadError::Corrupt(
                "bytes follow the checksum; the file was appended to".into(),
            ));
        }
        Err(e) => return Err(corrupt(e)),
    }
    Ok((manifest, counts, stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT,
            created_at: DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            tenantry_version: "0.1.0".into(),
            schema_version: 2,
            install_id: None,
            install_key_id: Some("ab".into()),
            chains: 1,
            platform_head_seq: 3,
            install_public_key: None,
        }
    }

    fn sample() -> Vec<u8> {
        let mut w = Writer::start(Vec::new(), &manifest()).unwrap();
        w.file("keys/install.ed25519", b"seed\n").unwrap();
        w.table("meta").unwrap();
        w.row(b"schema_version", &2u32.to_be_bytes()).unwrap();
        w.table("empty").unwrap();
        w.table("audit_entries").unwrap();
        for i in 0u32..500 {
            w.row(&i.to_be_bytes(), &[b'x'; 300]).unwrap();
        }
        w.finish().unwrap().0
    }

    fn read_all(bytes: &[u8]) -> Result<(Manifest, Counts, Vec<String>), String> {
        let mut seen = Vec::new();
        let r = read::<()>(bytes, &mut |item| {
            seen.push(match item {
                Item::File(p, _) => format!("F {p}"),
                Item::Table(t) => format!("T {t}"),
                Item::Row(..) => "R".into(),
            });
            Ok(())
        });
        match r {
            Ok((m, c, _)) => Ok((m, c, seen)),
            Err(ReadError::Corrupt(m) | ReadError::NotABackup(m)) => Err(m),
            Err(ReadError::TooNew(v)) => Err(format!("too new {v}")),
            Err(ReadError::Visit(())) => Err("visit".into()),
        }
    }

    #[test]
    fn a_backup_reads_back_what_was_written_and_is_compressed() {
        let bytes = sample();
        let (m, c, seen) = read_all(&bytes).unwrap();
        assert_eq!(m, manifest());
        assert_eq!(
            c,
            Counts {
                tables: 3,
                rows: 501,
                files: 1
            }
        );
        assert_eq!(&seen[..3], ["F keys/install.ed25519", "T meta", "R"]);
        assert!(bytes.len() < 500 * 300 / 10, "{} bytes", bytes.len());
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = sample();
        for cut in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
            assert!(read_all(&bytes[..cut]).is_err(), "cut at {cut} accepted");
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_in_the_body_is_refused() {
        let mut w = Writer::start(Vec::new(), &manifest()).unwrap();
        w.file("keys/k", b"seed").unwrap();
        w.table("t").unwrap();
        w.row(b"k", b"value").unwrap();
        let file = w.finish().unwrap().0;
        let body = zstd::decode_all(&file[MAGIC.len()..]).unwrap();
        for i in 0..body.len() {
            let mut bad = body.clone();
            bad[i] ^= 0x04;
            let mut rebuilt = MAGIC.to_vec();
            rebuilt.extend(zstd::encode_all(bad.as_slice(), 1).unwrap());
            assert!(
                read_all(&rebuilt).is_err(),
                "flip at body byte {i} accepted"
            );
        }
    }

    #[test]
    fn trailing_bytes_and_a_newer_format_are_refused() {
        let mut bytes = sample();
        bytes.push(0);
        assert!(read_all(&bytes).is_err());
        let mut newer = b"tenantry backup v2\n".to_vec();
        newer.extend_from_slice(&sample()[MAGIC.len()..]);
        assert_eq!(read_all(&newer).unwrap_err(), "too new 2");
        assert!(
            read_all(b"PK\x03\x04 not ours at all")
                .unwrap_err()
                .contains("does not start")
        );
    }
}
