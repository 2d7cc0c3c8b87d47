//! One way to page (API.md "Lists"): a range scan that starts after a [`Cursor`] and stops once
//! `limit` items are kept, or once a budget of examined rows is spent, and returns the cursor to
//! go on. Every listing pages through [`page`], so a page costs O(limit + budget) whatever the
//! table's size, and every bad cursor gets the same answer.

use std::ops::ControlFlow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

use super::{Dir, Error, Range, Reader, Table};

/// Default page size (API.md "Lists").
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size (API.md "Lists").
pub const MAX_LIMIT: usize = 500;

/// A `limit` outside 1–[`MAX_LIMIT`]; the domain error makes it 400 `invalid_query`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("limit {0} is out of range: use 1 to 500")]
pub struct InvalidLimit(pub usize);

/// Checks a page size: `None` is [`DEFAULT_LIMIT`].
///
/// Errors: [`InvalidLimit`] outside 1–[`MAX_LIMIT`].
pub fn limit(limit: Option<usize>) -> Result<usize, InvalidLimit> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(InvalidLimit(n)),
    }
}

/// A position in a listing: the last key a page examined, tagged with its table. Clients see
/// it as opaque base64url text and hand it back as `cursor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    tag: [u8; TAG_LEN],
    key: Vec<u8>,
}

const TAG_LEN: usize = 4;

/// The table tag of a cursor: the first bytes of the BLAKE3 of the table's name, so a cursor
/// handed to another listing is refused rather than misread.
fn tag_of(table: Table) -> [u8; TAG_LEN] {
    let h = blake3::hash(table.name().as_bytes());
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&h.as_bytes()[..TAG_LEN]);
    tag
}

/// A cursor that is not one this server issued for this listing. The domain error turns it into
/// 400 `invalid_cursor` with one wording for every listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the cursor is not one this listing issued (or its filters or sort changed): start again without it"
)]
pub struct InvalidCursor;

impl Cursor {
    /// The cursor after `key` of `table`.
    pub fn new(table: Table, key: &[u8]) -> Cursor {
        Cursor {
            tag: tag_of(table),
            key: key.to_vec(),
        }
    }

    /// Its text form (base64url, no padding).
    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(TAG_LEN + self.key.len());
        raw.extend_from_slice(&self.tag);
        raw.extend_from_slice(&self.key);
        B64URL.encode(raw)
    }

    /// Parses a client's cursor.
    ///
    /// Errors: [`InvalidCursor`] for text that is not base64url or is too short.
    pub fn decode(s: &str) -> Result<Cursor, InvalidCursor> {
        let raw = B64URL.decode(s.trim()).map_err(|_| InvalidCursor)?;
        let (tag, key) = raw.split_at_checked(TAG_LEN).ok_or(InvalidCursor)?;
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| InvalidCursor)?;
        Ok(Cursor {
            tag,
            key: key.to_vec(),
        })
    }

    /// The key it points after.
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

/// What a listing scans.
#[derive(Clone, Debug)]
pub struct Scan<'a> {
    /// The table.
    pub table: Table,
    /// The keys it may return.
    pub range: Range,
    /// Ascending or descending.
    pub dir: Dir,
    /// Most items kept.
    pub limit: usize,
    /// Where the previous page stopped.
    pub cursor: Option<&'a Cursor>,
    /// Most rows examined before the page returns what it has (with a cursor to go on); `None`
    /// when every examined row is kept or skipped cheaply by the range itself.
    pub budget: Option<usize>,
}

/// What a row of a listing became.
#[derive(Debug)]
pub enum Step<T> {
    /// An item of the page.
    Keep(T),
    /// Not an item (a filter did not match).
    Skip,
    /// No later row can match: the listing is complete.
    Stop,
}

/// A page: its items, and where the next one starts (`None` on the last page).
#[derive(Debug)]
pub struct Page<T> {
    /// The items, in scan order.
    pub items: Vec<T>,
    /// The cursor of the next page.
    pub next: Option<Cursor>,
}

/// Scans one page of `scan`, calling `f` with each `(key, value)` after the cursor until it has
/// `limit` items, the budget is spent, `f` says [`Step::Stop`], or the range ends. `next` is set
/// when rows remain.
///
/// Errors: [`InvalidCursor`] (as `E`) for a cursor of another table or outside the range; `f`'s
/// errors; storage errors.
pub fn page<T, E>(
    r: &impl Reader,
    scan: Scan<'_>,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<Step<T>, E>,
) -> Result<Page<T>, E>
where
    E: From<Error> + From<InvalidCursor>,
{
    let mut range = scan.range;
    if let Some(c) = scan.cursor {
        if c.tag != tag_of(scan.table) || !range.contains(&c.key) {
            return Err(InvalidCursor.into());
        }
        range = match scan.dir {
            Dir::Asc => range.after(&c.key),
            Dir::Desc => range.before(&c.key),
        };
    }
    let mut items = Vec::new();
    let mut examined = 0usize;
    let mut last: Option<Vec<u8>> = None;
    let mut more = false;
    let mut failure: Option<E> = None;
    r.scan(scan.table, &range, scan.dir, &mut |k, v| {
        if items.len() >= scan.limit || scan.budget.is_some_and(|b| examined >= b) {
            more = true;
            return Ok(ControlFlow::Break(()));
        }
        examined += 1;
        last = Some(k.to_vec());
        match f(k, v) {
            Ok(Step::Keep(item)) => items.push(item),
            Ok(Step::Skip) => {}
            Ok(Step::Stop) => return Ok(ControlFlow::Break(())),
            Err(e) => {
                failure = Some(e);
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Page {
        items,
        next: if more {
            last.map(|k| Cursor::new(scan.table, &k))
        } else {
            None
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::Actor;
    use crate::store::{Store, keys::Key};

    const T: Table = Table::new("page_test");
    const OTHER: Table = Table::new("page_other");

    fn store_with(n: u64) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(
            store.write(chrono::Utc::now(), Actor::system("t"), move |ctx| {
                for i in 0..n {
                    ctx.put(T, &Key::new().u8(1).u64(i).into_bytes(), &i.to_be_bytes())?;
                }
                ctx.put(OTHER, b"x", b"")?;
                Ok::<_, Error>(())
            }),
        )
        .unwrap();
        (dir, store)
    }

    fn all(
        store: &Store,
        dir: Dir,
        limit: usize,
        budget: Option<usize>,
        keep: fn(u64) -> bool,
    ) -> (Vec<u64>, usize) {
        let mut out = Vec::new();
        let mut cursor: Option<Cursor> = None;
        let mut pages = 0;
        loop {
            let c = cursor
                .as_ref()
                .map(|c| Cursor::decode(&c.encode()).unwrap());
            let p = store
                .read_blocking(|r| {
                    page::<u64, crate::error::Error>(
                        r,
                        Scan {
                            table: T,
                            range: Range::prefix(&[1]),
                            dir,
                            limit,
                            cursor: c.as_ref(),
                            budget,
                        },
                        |_, v| {
                            let n = u64::from_be_bytes(v.try_into().unwrap_or_default());
                            Ok(if keep(n) { Step::Keep(n) } else { Step::Skip })
                        },
                    )
                })
                .unwrap();
            pages += 1;
            assert!(p.items.len() <= limit);
            out.extend(p.items);
            match p.next {
                Some(n) => cursor = Some(n),
                None => return (out, pages),
            }
        }
    }

    #[test]
    fn pages_chain_without_gap_or_repeat_in_both_directions() {
        let (_d, store) = store_with(23);
        let (asc, pages) = all(&store, Dir::Asc, 5, None, |_| true);
        assert_eq!(asc, (0..23).collect::<Vec<_>>());
        assert_eq!(pages, 5, "no empty page after an exact last page");
        let (desc, _) = all(&store, Dir::Desc, 5, None, |_| true);
        assert_eq!(desc, (0..23).rev().collect::<Vec<_>>());
        let (exact, pages) = all(&store, Dir::Asc, 23, None, |_| true);
        assert_eq!((exact.len(), pages), (23, 1));
    }

    #[test]
    fn a_budget_returns_what_it_has_with_a_cursor_to_go_on() {
        let (_d, store) = store_with(50);
        let (odd, pages) = all(&store, Dir::Asc, 100, Some(7), |n| n % 10 == 3);
        assert_eq!(odd, vec![3, 13, 23, 33, 43]);
        assert!(pages >= 7, "each page examined at most 7 rows: {pages}");
    }

    #[test]
    fn a_cursor_of_another_table_or_range_or_garbage_is_refused() {
        let (_d, store) = store_with(3);
        let foreign = Cursor::new(OTHER, &Key::new().u8(1).u64(1).into_bytes());
        let outside = Cursor::new(T, &Key::new().u8(2).into_bytes());
        for c in [foreign, outside] {
            let err = store
                .read_blocking(|r| {
                    page::<u64, crate::error::Error>(
                        r,
                        Scan {
                            table: T,
                            range: Range::prefix(&[1]),
                            dir: Dir::Asc,
                            limit: 2,
                            cursor: Some(&c),
                            budget: None,
                        },
                        |_, _| Ok(Step::Skip),
                    )
                })
                .unwrap_err();
            assert_eq!(err.code(), crate::error::INVALID_CURSOR);
        }
        assert_eq!(Cursor::decode("!!"), Err(InvalidCursor));
        assert_eq!(Cursor::decode("AA"), Err(InvalidCursor));
    }
}
