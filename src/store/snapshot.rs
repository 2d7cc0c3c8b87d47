//! Whole-store copies, for backups: [`dump`] walks every table of one read snapshot, and
//! [`Loader`] writes rows into a new data file.
//!
//! A dump is logical (table name, then its `(key, value)` rows in key order), not a copy of the
//! redb file. So it is consistent (one read transaction, which never blocks the writer: redb
//! readers see a snapshot while commits go on), it carries no free pages, and a restore writes a
//! fresh, compact file. While a dump runs, pages freed by later commits cannot be reused, so the
//! data file may grow by what is written meanwhile.

use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use super::{Error, ReadCtx, Result};

/// What [`dump`] hands its visitor, in order: a table, then that table's rows.
#[derive(Debug)]
pub enum Item<'a> {
    /// The rows that follow belong to this table.
    Table(&'a str),
    /// One row of the current table: `(key, value)`.
    Row(&'a [u8], &'a [u8]),
}

fn def(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

/// Calls `visit` with every table of the snapshot `r`, by name, each followed by its rows in key
/// order. Stops at the first error of `visit`. A bulk read: the pages it reads from the file do
/// not enter the page cache ([`redb::without_cache_fill`]), so a backup does not evict the pages
/// the server keeps hot.
///
/// Errors: storage failures, or the visitor's own error.
pub fn dump<E: From<Error>>(
    r: &ReadCtx,
    visit: &mut dyn FnMut(Item<'_>) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    redb::without_cache_fill(|| dump_tables(r, visit))
}

fn dump_tables<E: From<Error>>(
    r: &ReadCtx,
    visit: &mut dyn FnMut(Item<'_>) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut names: Vec<String> = r
        .txn
        .list_tables()
        .map_err(Error::from)?
        .map(|h| h.name().to_string())
        .collect();
    names.sort();
    for name in &names {
        visit(Item::Table(name))?;
        let table = r.txn.open_table(def(name)).map_err(Error::from)?;
        for row in table.iter().map_err(Error::from)? {
            let (k, v) = row.map_err(Error::from)?;
            visit(Item::Row(k.value(), v.value()))?;
        }
    }
    Ok(())
}

/// Rows buffered before they are inserted (bytes of keys and values).
const BUFFER_BYTES: usize = 4 << 20;
/// Bytes inserted per write transaction; a restore commits in steps so that a large store does
/// not need one huge transaction.
const COMMIT_BYTES: usize = 64 << 20;

/// Writes a dump into a new data file. Rows are buffered and inserted table by table; nothing of
/// an unfinished load should be trusted, so a caller loads into a staging file and moves it into
/// place only after [`Loader::finish`] and its own checks.
pub struct Loader {
    db: redb::Database,
    table: Option<String>,
    rows: Vec<(Vec<u8>, Vec<u8>)>,
    buffered: usize,
    uncommitted: usize,
    txn: Option<redb::WriteTransaction>,
}

impl Loader {
    /// Creates the data file `path`, which must not exist yet.
    ///
    /// Errors: [`Error::Storage`] when the file exists or cannot be created.
    pub fn create(path: &Path) -> Result<Loader> {
        if path.exists() {
            return Err(Error::storage(format!(
                "{} already exists; a restore writes a new file",
                path.display()
            )));
        }
        let db = redb::Database::builder()
            .create(path)
            .map_err(|e| Error::storage(format!("creating {}: {e}", path.display())))?;
        super::set_private_file(path)?;
        Ok(Loader {
            db,
            table: None,
            rows: Vec::new(),
            buffered: 0,
            uncommitted: 0,
            txn: None,
        })
    }

    /// Starts table `name`; the following rows go into it.
    pub fn table(&mut self, name: &str) -> Result<()> {
        self.flush()?;
        self.table = Some(name.to_string());
        // An empty table still exists after the load, as it did in the snapshot.
        let txn = self.txn()?;
        txn.open_table(def(name))?;
        Ok(())
    }

    /// Adds a row to the current table.
    ///
    /// Errors: a row before any table.
    pub fn row(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if self.table.is_none() {
            return Err(Error::storage("a row came before any table"));
        }
        self.buffered += key.len() + value.len();
        self.rows.push((key.to_vec(), value.to_vec()));
        if self.buffered >= BUFFER_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Inserts what is buffered and commits durably; the file is complete afterwards.
    pub fn finish(mut self) -> Result<()> {
        self.flush()?;
        if let Some(txn) = self.txn.take() {
            txn.commit()?;
        }
        Ok(())
    }

    fn txn(&mut self) -> Result<&redb::WriteTransaction> {
        if self.txn.is_none() {
            self.txn = Some(self.db.begin_write()?);
        }
        self.txn
            .as_ref()
            .ok_or_else(|| Error::storage("no write transaction"))
    }

    fn flush(&mut self) -> Result<()> {
        let Some(name) = self.table.clone() else {
            return Ok(());
        };
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        {
            let txn = self.txn()?;
            let mut table = txn.open_table(def(&name))?;
            for (k, v) in &rows {
                table.insert(k.as_slice(), v.as_slice())?;
            }
        }
        self.uncommitted += self.buffered;
        self.buffered = 0;
        if self.uncommitted >= COMMIT_BYTES
            && let Some(txn) = self.txn.take()
        {
            txn.commit()?;
            self.uncommitted = 0;
        }
        Ok(())
    }
}

/// Number of rows in every table of the data file at `path` (tests and `backup verify`
/// compare a loaded copy with its source).
pub fn row_counts(path: &Path) -> Result<Vec<(String, u64)>> {
    use redb::ReadableTableMetadata;
    let db = redb::Database::builder()
        .open(path)
        .map_err(|e| Error::storage(format!("opening {}: {e}", path.display())))?;
    let txn = db.begin_read()?;
    let mut out = Vec::new();
    for h in txn.list_tables()? {
        let name = h.name().to_string();
        let t = txn.open_table(def(&name))?;
        out.push((name, t.len()?));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::Actor;
    use crate::store::{Store, Table};

    #[tokio::test]
    async fn a_dump_loaded_into_a_new_file_holds_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a")).unwrap();
        store
            .write(chrono::Utc::now(), Actor::system("t"), |ctx| {
                for i in 0u32..3000 {
                    ctx.put(Table::new("one"), &i.to_be_bytes(), &[7u8; 100])?;
                }
                ctx.put(Table::new("two"), b"k", b"v")?;
                // An empty table: written, then emptied (a delete alone creates nothing).
                ctx.put(Table::new("three"), b"gone", b"v")?;
                ctx.delete(Table::new("three"), b"gone")?;
                Ok::<_, Error>(())
            })
            .await
            .unwrap();
        let target = dir.path().join("b.redb");
        let mut loader = Loader::create(&target).unwrap();
        store
            .read_blocking(|r| {
                dump(r, &mut |item| match item {
                    Item::Table(name) => loader.table(name),
                    Item::Row(k, v) => loader.row(k, v),
                })
            })
            .unwrap();
        loader.finish().unwrap();
        store.close().await;
        drop(store);
        let source = row_counts(&dir.path().join("a").join(super::super::DATA_FILE)).unwrap();
        let copy = row_counts(&target).unwrap();
        assert_eq!(source, copy);
        assert!(copy.contains(&("one".to_string(), 3000)));
        assert!(copy.contains(&("three".to_string(), 0)));
        assert!(Loader::create(&target).is_err(), "never overwrites");
    }
}
