//! The tenant directory: secondary indexes, paged queries and the maintained counters.
//!
//! `tenants[id]` is the primary table; UUIDv7 ids sort by creation time, so it doubles as the
//! `created_at` index. `tenant_index` holds every secondary index in one table, each under its
//! own leading byte, with keys `(index, filter value, sort value, id) -> ()`:
//!
//! | index | key after the index byte | serves |
//! |---|---|---|
//! | `BY_NAME` | name, id | sort by name |
//! | `BY_STATUS` | status, id | status filter; sort by status (then creation) |
//! | `REGION_CREATED`, `TIER_CREATED`, `APP_CREATED` | filter, id | that filter, sort by creation |
//! | `STATUS_NAME`, `REGION_NAME`, `TIER_NAME`, `APP_NAME` | filter, name, id | that filter, sort by name |
//! | `DEADLINES` | deadline, id | offboarding tenants due for shredding |
//! | `TRIAL_ENDS` | trial end, id | trials due to expire |
//!
//! A page is one range scan from the cursor (the last key, opaque to clients), so it costs
//! O(page) whatever the number of tenants. Filters that the chosen index does not cover (a second
//! filter, `q`) are applied per row; such a page stops after [`SCAN_BUDGET`] rows and returns a
//! cursor to go on, so no request costs O(all tenants).
//!
//! `tenant_counts` keeps totals by state, tier and region, maintained in the same transaction as
//! every change, for dashboards (never recomputed by scanning); [`super::posture`] keeps the
//! revenue-posture counters (by plan, paying, trial buckets) the same way.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use uuid::Uuid;

use super::model::{State, Tenant, TenantRecord, TenantRecordRef, TenantV1Ref, Tier};
use crate::clock::to_micros;
use crate::error::{Error, Result};
use crate::store::keys::{Key, KeyReader};
use crate::store::page::{Cursor, Scan, Step, page};
use crate::store::{Dir, Range, Reader, Table, WriteCtx, codec};

/// Primary table: `id (16 bytes) -> TenantRecord`.
pub const TENANTS: Table = Table::new("tenants");
/// Slug reservations: `slug -> id`.
pub const SLUGS: Table = Table::new("tenant_slugs");
/// Secondary indexes (see the module doc).
pub const INDEX: Table = Table::new("tenant_index");
/// Maintained counters: `dimension\0value -> u64`.
pub const COUNTS: Table = Table::new("tenant_counts");

const BY_NAME: u8 = 1;
const BY_STATUS: u8 = 2;
const REGION_CREATED: u8 = 3;
const TIER_CREATED: u8 = 4;
const APP_CREATED: u8 = 5;
const STATUS_NAME: u8 = 6;
const REGION_NAME: u8 = 7;
const TIER_NAME: u8 = 8;
const APP_NAME: u8 = 9;
/// Index of offboarding deadlines.
pub const DEADLINES: u8 = 10;
/// Index of trial ends.
pub const TRIAL_ENDS: u8 = 11;

/// Most rows a page examines when it must filter rows itself.
pub const SCAN_BUDGET: usize = 20_000;

fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// Every index key of `t`.
pub fn index_keys(t: &Tenant) -> BTreeSet<Vec<u8>> {
    let id = &t.id;
    let name = name_key(&t.display_name);
    let st = t.state.code();
    let tier = t.isolation_tier.code();
    let mut keys = BTreeSet::new();
    let mut add = |k: Key| {
        keys.insert(k.into_bytes());
    };
    add(Key::new().u8(BY_NAME).str(&name).uuid(id));
    add(Key::new().u8(BY_STATUS).u8(st).uuid(id));
    add(Key::new().u8(REGION_CREATED).str(&t.region).uuid(id));
    add(Key::new().u8(TIER_CREATED).u8(tier).uuid(id));
    add(Key::new().u8(APP_CREATED).uuid(&t.app_id).uuid(id));
    add(Key::new().u8(STATUS_NAME).u8(st).str(&name).uuid(id));
    add(Key::new()
        .u8(REGION_NAME)
        .str(&t.region)
        .str(&name)
        .uuid(id));
    add(Key::new().u8(TIER_NAME).u8(tier).str(&name).uuid(id));
    add(Key::new().u8(APP_NAME).uuid(&t.app_id).str(&name).uuid(id));
    if let (State::Offboarding, Some(d)) = (t.state, t.deadline_at) {
        add(Key::new().u8(DEADLINES).i64(to_micros(d)).uuid(id));
    }
    if let (State::Trial, Some(e)) = (t.state, t.trial_ends_at) {
        add(Key::new().u8(TRIAL_ENDS).i64(to_micros(e)).uuid(id));
    }
    keys
}

fn count_keys(t: &Tenant) -> [String; 3] {
    [
        format!("state\0{}", t.state.as_str()),
        format!("tier\0{}", t.isolation_tier.as_str()),
        format!("region\0{}", t.region),
    ]
}

fn bump(ctx: &mut WriteCtx<'_>, key: &str, delta: i64) -> Result<()> {
    let cur = ctx
        .get(COUNTS, key.as_bytes())?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes);
    let next = (cur as i64 + delta).max(0) as u64;
    ctx.put(COUNTS, key.as_bytes(), &next.to_be_bytes())?;
    Ok(())
}

/// Stores `new` (replacing `old`, if any) with its slug, index entries and counters, all in the
/// caller's write request.
pub fn save(ctx: &mut WriteCtx<'_>, old: Option<&Tenant>, new: &Tenant) -> Result<()> {
    let old_keys = old.map(index_keys).unwrap_or_default();
    let new_keys = index_keys(new);
    for k in old_keys.difference(&new_keys) {
        ctx.delete(INDEX, k)?;
    }
    for k in new_keys.difference(&old_keys) {
        ctx.put(INDEX, k, &[])?;
    }
    let old_counts = old.map(count_keys);
    let new_counts = count_keys(new);
    for (i, key) in new_counts.iter().enumerate() {
        let before = old_counts.as_ref().map(|c| &c[i]);
        if before != Some(key) {
            if let Some(b) = before {
                bump(ctx, b, -1)?;
            }
            bump(ctx, key, 1)?;
        }
    }
    if old.is_none() {
        bump(
            ctx,
            &format!("created_week\0{}", week_of(new.created_at)),
            1,
        )?;
    }
    super::posture::update(ctx, old, new)?;
    if old.is_none_or(|o| o.slug != new.slug) {
        if let Some(o) = old {
            ctx.delete(SLUGS, o.slug.as_bytes())?;
        }
        if !new.slug.is_empty() {
            ctx.put(SLUGS, new.slug.as_bytes(), new.id.as_bytes())?;
        }
    }
    ctx.put_record(TENANTS, new.id.as_bytes(), &TenantRecord::from(new))?;
    ctx.touch(crate::store::Topic::Tenant(new.id));
    Ok(())
}

/// Reads one tenant.
///
/// Errors: 404 when unknown; a corrupt record is a storage error.
pub fn load(r: &impl Reader, id: &Uuid) -> Result<Tenant> {
    r.get_record::<TenantRecord>(TENANTS, id.as_bytes())?
        .map(Tenant::from)
        .ok_or_else(|| Error::not_found("tenant", id.to_string()))
}

/// One tenant's lifecycle state, read in place (none of the record's strings is copied): for
/// hot paths that need only the state, such as usage ingest's check for a read-only tenant.
///
/// Errors: 404 when unknown; a corrupt record is a storage error.
pub fn state(r: &impl Reader, id: &Uuid) -> Result<State> {
    let mut state = None;
    r.get_with(TENANTS, id.as_bytes(), &mut |bytes| {
        let TenantRecordRef::V1(t) = TenantRecordRef::decode(bytes)?;
        state = Some(t.state);
        Ok(())
    })?;
    state.ok_or_else(|| Error::not_found("tenant", id.to_string()))
}

/// The tenant holding `slug`, if any.
pub fn slug_owner(r: &impl Reader, slug: &str) -> Result<Option<Uuid>> {
    Ok(r.get(SLUGS, slug.as_bytes())?
        .and_then(|b| Uuid::from_slice(&b).ok()))
}

/// Ids in a time-keyed index (`DEADLINES` or `TRIAL_ENDS`) up to and including `until`.
pub fn due(r: &impl Reader, index: u8, until_micros: i64, limit: usize) -> Result<Vec<Uuid>> {
    let range = Range::between(
        Key::new().u8(index).into_bytes(),
        Key::new()
            .u8(index)
            .i64(until_micros.saturating_add(1))
            .into_bytes(),
    );
    let mut out = Vec::new();
    r.scan(INDEX, &range, Dir::Asc, &mut |k, _| {
        let mut kr = KeyReader::new(&k[1..]);
        kr.i64();
        if let Some(id) = kr.uuid() {
            out.push(id);
        }
        Ok(if out.len() >= limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    Ok(out)
}

/// Directory sort keys (API.md: `created_at|display_name|status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    /// Creation time.
    CreatedAt,
    /// Display name, case-insensitive.
    DisplayName,
    /// Lifecycle state, then creation time.
    Status,
}

impl Sort {
    /// Parses the API name.
    pub fn parse(s: &str) -> Result<Sort, String> {
        match s {
            "created_at" => Ok(Sort::CreatedAt),
            "display_name" => Ok(Sort::DisplayName),
            "state" | "status" => Ok(Sort::Status),
            _ => Err(format!(
                "sort '{s}' is invalid: use created_at, display_name or state"
            )),
        }
    }
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::CreatedAt => "created_at",
            Sort::DisplayName => "display_name",
            Sort::Status => "status",
        }
    }
}

/// A parsed directory query.
#[derive(Clone, Debug)]
pub struct DirectoryQuery {
    /// `state=` (or `status=`).
    pub status: Option<State>,
    /// `region=`.
    pub region: Option<String>,
    /// `isolation_tier=`.
    pub tier: Option<Tier>,
    /// `app_id=`.
    pub app_id: Option<Uuid>,
    /// `q=`: case-insensitive substring of name, slug or contact email.
    pub q: Option<String>,
    /// `sort=`.
    pub sort: Sort,
    /// `order=desc`.
    pub descending: bool,
    /// `limit=`, 1–500.
    pub limit: usize,
    /// Decoded `cursor=`.
    pub cursor: Option<Cursor>,
}

impl Default for DirectoryQuery {
    fn default() -> Self {
        DirectoryQuery {
            status: None,
            region: None,
            tier: None,
            app_id: None,
            q: None,
            sort: Sort::CreatedAt,
            descending: true,
            limit: 50,
            cursor: None,
        }
    }
}

/// One row of the directory: a tenant, or an error row for a record that does not decode (one
/// corrupt record must not break the list, PRODUCT.md A4).
#[derive(Clone, Debug)]
pub enum DirectoryRow {
    /// A tenant.
    Tenant(Box<Tenant>),
    /// A record that could not be read.
    Broken {
        /// Its id.
        id: Uuid,
        /// Why it could not be read.
        error: String,
    },
}

/// A page of the directory.
#[derive(Debug)]
pub struct DirectoryPage {
    /// Rows in order.
    pub rows: Vec<DirectoryRow>,
    /// Where the next page starts.
    pub next_cursor: Option<Cursor>,
}

/// What a query scans: the table and range of the index that covers its sort and its most
/// useful filter, and whether rows still need filtering one by one.
struct Plan {
    table: Table,
    range: Range,
    needs_filter: bool,
}

fn plan(q: &DirectoryQuery) -> Plan {
    // (table, key prefix, does the prefix already apply the status/region/tier/app filter?)
    let by_name = q.sort == Sort::DisplayName;
    let (table, prefix, covered): (Table, Vec<u8>, Covered) = if q.sort == Sort::Status {
        match q.status {
            Some(s) => (
                INDEX,
                Key::new().u8(BY_STATUS).u8(s.code()).into_bytes(),
                Covered::Status,
            ),
            None => (INDEX, vec![BY_STATUS], Covered::None),
        }
    } else if let Some(s) = q.status {
        let ix = if by_name { STATUS_NAME } else { BY_STATUS };
        (
            INDEX,
            Key::new().u8(ix).u8(s.code()).into_bytes(),
            Covered::Status,
        )
    } else if let Some(region) = &q.region {
        let ix = if by_name { REGION_NAME } else { REGION_CREATED };
        (
            INDEX,
            Key::new().u8(ix).str(region).into_bytes(),
            Covered::Region,
        )
    } else if let Some(app) = &q.app_id {
        let ix = if by_name { APP_NAME } else { APP_CREATED };
        (
            INDEX,
            Key::new().u8(ix).uuid(app).into_bytes(),
            Covered::App,
        )
    } else if let Some(t) = q.tier {
        let ix = if by_name { TIER_NAME } else { TIER_CREATED };
        (
            INDEX,
            Key::new().u8(ix).u8(t.code()).into_bytes(),
            Covered::Tier,
        )
    } else if by_name {
        (INDEX, vec![BY_NAME], Covered::None)
    } else {
        (TENANTS, Vec::new(), Covered::None)
    };
    let range = if prefix.is_empty() {
        Range::all()
    } else {
        Range::prefix(&prefix)
    };
    let needs_filter = q.q.is_some()
        || (q.status.is_some() && covered != Covered::Status)
        || (q.region.is_some() && covered != Covered::Region)
        || (q.tier.is_some() && covered != Covered::Tier)
        || (q.app_id.is_some() && covered != Covered::App);
    Plan {
        table,
        range,
        needs_filter,
    }
}

/// Whether `q`'s page reads at most `limit + 1` index rows and as many records: its index
/// applies every filter, so no row is read and dropped (no `q` search, no filter outside the
/// chosen index). Such a page costs tens of microseconds, and the API runs it on the request's
/// own thread instead of handing it to the blocking pool (issue 13).
pub fn reads_only_its_rows(q: &DirectoryQuery) -> bool {
    !plan(q).needs_filter
}

/// The per-row filter of a query: what its index did not already apply.
struct Filter<'q> {
    q: &'q DirectoryQuery,
    needle: Option<String>,
    active: bool,
}

impl Filter<'_> {
    /// Does a row with these fields belong on the page?
    fn keeps(&self, f: &Fields<'_>) -> bool {
        !self.active || matches(f, self.q, self.needle.as_deref())
    }
}

/// Scans one page of `q`, calling `row` with each candidate's id and stored record bytes (lent
/// from the snapshot's page, not copied); `row` decodes, filters and says what the row became.
fn scan_page<T>(
    r: &impl Reader,
    q: &DirectoryQuery,
    mut row: impl FnMut(Uuid, &[u8], &Filter<'_>) -> Result<Step<T>>,
) -> Result<crate::store::page::Page<T>> {
    let Plan {
        table,
        range,
        needs_filter,
    } = plan(q);
    let filter = Filter {
        q,
        needle: q.q.as_ref().map(|s| s.to_lowercase()),
        active: needs_filter,
    };
    let scan = Scan {
        table,
        range,
        dir: if q.descending { Dir::Desc } else { Dir::Asc },
        limit: q.limit,
        cursor: q.cursor.as_ref(),
        budget: needs_filter.then_some(SCAN_BUDGET),
    };
    page(r, scan, |k, v| -> Result<Step<T>> {
        if table == TENANTS {
            return match Uuid::from_slice(k) {
                Ok(id) => row(id, v, &filter),
                Err(_) => Ok(Step::Skip),
            };
        }
        let Ok(id) = Uuid::from_slice(&k[k.len().saturating_sub(16)..]) else {
            return Ok(Step::Skip);
        };
        let mut step = None;
        r.get_with(TENANTS, id.as_bytes(), &mut |bytes| {
            step = Some(row(id, bytes, &filter));
            Ok(())
        })?;
        step.unwrap_or(Ok(Step::Skip))
    })
}

/// Runs a directory query: picks the index that covers the sort and the most useful filter,
/// scans one page from the cursor, and applies remaining filters per row.
pub fn query(r: &impl Reader, q: &DirectoryQuery) -> Result<DirectoryPage> {
    let page = scan_page(r, q, |id, bytes, filter| {
        Ok(match codec::decode::<TenantRecord>(TENANTS.name(), bytes) {
            Ok(rec) => {
                let t = Tenant::from(rec);
                if filter.keeps(&Fields::of(&t)) {
                    Step::Keep(DirectoryRow::Tenant(Box::new(t)))
                } else {
                    Step::Skip
                }
            }
            // An unreadable record is shown whatever the filters: it may match them.
            Err(e) => Step::Keep(DirectoryRow::Broken {
                id,
                error: format!("record could not be decoded: {e}"),
            }),
        })
    })?;
    Ok(DirectoryPage {
        rows: page.items,
        next_cursor: page.next,
    })
}

/// [`query`] without owned rows: calls `each` with the id and the stored record bytes (lent
/// from the snapshot's page, not copied) of every row of the page in order, and returns where the
/// next page starts. The JSON directory page is written this way, straight from the store's
/// pages into the response buffer.
///
/// A filter the chosen index did not apply is checked here on the decoded record. A record that
/// cannot be decoded is passed on whatever the filters, as [`query`] shows it: it may match them.
///
/// Errors: as [`query`], and `each`'s own.
pub fn query_each(
    r: &impl Reader,
    q: &DirectoryQuery,
    mut each: impl FnMut(Uuid, &[u8]) -> Result<()>,
) -> Result<Option<Cursor>> {
    let page = scan_page(r, q, |id, bytes, filter| {
        if filter.active
            && let Ok(TenantRecordRef::V1(t)) = TenantRecordRef::decode(bytes)
            && !filter.keeps(&Fields::of_ref(&t))
        {
            return Ok(Step::Skip);
        }
        each(id, bytes)?;
        Ok(Step::Keep(()))
    })?;
    Ok(page.next)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Covered {
    None,
    Status,
    Region,
    Tier,
    App,
}

/// The fields a directory filter reads, from an owned or a borrowed tenant.
struct Fields<'a> {
    state: State,
    region: &'a str,
    tier: Tier,
    app_id: Uuid,
    display_name: &'a str,
    slug: &'a str,
    contact_email: Option<&'a str>,
}

impl<'a> Fields<'a> {
    fn of(t: &'a Tenant) -> Fields<'a> {
        Fields {
            state: t.state,
            region: &t.region,
            tier: t.isolation_tier,
            app_id: t.app_id,
            display_name: &t.display_name,
            slug: &t.slug,
            contact_email: t.contact_email.as_deref(),
        }
    }

    fn of_ref(t: &TenantV1Ref<'a>) -> Fields<'a> {
        Fields {
            state: t.state,
            region: t.region,
            tier: t.tier,
            app_id: Uuid::from_bytes(t.app_id),
            display_name: t.display_name,
            slug: t.slug,
            contact_email: t.contact_email,
        }
    }
}

fn matches(t: &Fields<'_>, q: &DirectoryQuery, needle: Option<&str>) -> bool {
    q.status.is_none_or(|s| t.state == s)
        && q.region.as_ref().is_none_or(|r| t.region == r)
        && q.tier.is_none_or(|x| t.tier == x)
        && q.app_id.is_none_or(|a| t.app_id == a)
        && needle.is_none_or(|n| {
            t.display_name.to_lowercase().contains(n)
                || t.slug.contains(n)
                || t.contact_email
                    .is_some_and(|e| e.to_lowercase().contains(n))
        })
}

/// The ISO week of `t`, e.g. `2026-W47`.
pub fn week_of(t: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::Datelike;
    let w = t.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::actor::Actor;
    use crate::store::Store;
    use crate::tenants::model::{AppPools, PoolAssignment};

    const NAMES: [&str; 6] = ["alpha", "Bravo", "charlie", "Alpha", "delta échec", "Zulu"];
    const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];

    fn tenant(
        i: usize,
        name: usize,
        state: usize,
        region: usize,
        tier: usize,
        app: &Uuid,
    ) -> Tenant {
        let t0 = chrono::DateTime::from_timestamp(1_700_000_000 + i as i64, 0).unwrap_or_default();
        Tenant {
            id: crate::ids::new_id(t0),
            app_id: *app,
            display_name: format!("{} {i}", NAMES[name]),
            slug: format!("t-{i}"),
            region: REGIONS[region].into(),
            isolation_tier: Tier::ALL[tier],
            brand_domain: None,
            country: None,
            contact_email: Some(format!("ops{i}@example.com")),
            plan: None,
            trial_days: None,
            hierarchy_depth: None,
            state: State::ALL[state],
            state_since: t0,
            state_reason: None,
            deadline_at: None,
            offboarding_from: None,
            trial_ends_at: None,
            pools: PoolAssignment {
                admin: "admin-1".into(),
                app: AppPools::Dedicated("app-1".into()),
            },
            created_at: t0,
            updated_at: t0,
            shredded_at: None,
        }
    }

    fn expected(model: &[Tenant], q: &DirectoryQuery) -> Vec<Uuid> {
        let needle = q.q.as_ref().map(|s| s.to_lowercase());
        let mut rows: Vec<&Tenant> = model
            .iter()
            .filter(|t| matches(&Fields::of(t), q, needle.as_deref()))
            .collect();
        match q.sort {
            Sort::CreatedAt => rows.sort_by_key(|t| t.id),
            Sort::DisplayName => rows.sort_by_key(|t| (name_key(&t.display_name), t.id)),
            Sort::Status => rows.sort_by_key(|t| (t.state, t.id)),
        }
        if q.descending {
            rows.reverse();
        }
        rows.iter().map(|t| t.id).collect()
    }

    fn all_pages(store: &Store, mut q: DirectoryQuery) -> Vec<Uuid> {
        let mut out = Vec::new();
        loop {
            let page = store
                .read_blocking(|r| query(r, &q))
                .unwrap_or_else(|e: Error| panic!("{e}"));
            assert!(page.rows.len() <= q.limit);
            out.extend(page.rows.iter().map(|r| match r {
                DirectoryRow::Tenant(t) => t.id,
                DirectoryRow::Broken { id, .. } => *id,
            }));
            match page.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => return out,
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        #[test]
        fn paged_queries_match_a_plain_model_after_random_changes(
            seeds in prop::collection::vec((0..6usize, 0..6usize, 0..3usize, 0..3usize, 0..2usize), 1..40),
            edits in prop::collection::vec((0..40usize, 0..6usize, 0..6usize, 0..3usize), 0..30),
            queries in prop::collection::vec(
                (prop::option::of(0..6usize), prop::option::of(0..3usize), prop::option::of(0..3usize),
                 prop::option::of(0..2usize), prop::option::of(0..4usize), 0..3usize, any::<bool>(), 1..7usize),
                1..8),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let apps = [Uuid::now_v7(), Uuid::now_v7()];
            let mut model: Vec<Tenant> = seeds
                .iter()
                .enumerate()
                .map(|(i, (n, s, r, t, a))| tenant(i, *n, *s, *r, *t, &apps[*a]))
                .collect();
            let created = model.clone();
            rt.block_on(store.write(chrono::Utc::now(), Actor::system("t"), move |ctx| {
                for t in &created {
                    save(ctx, None, t)?;
                }
                Ok::<_, Error>(())
            })).unwrap();
            // Rows written before the edits stay in `rows`: a page after them must not use those
            // whose records changed.
            let rows = crate::tenants::rendered::RenderedRows::default();
            let everyone = DirectoryQuery { limit: 100, ..DirectoryQuery::default() };
            store.read_blocking(|r| crate::tenants::api::page_json(r, &everyone, &rows)).unwrap();
            for (idx, name, state, region) in edits {
                let i = idx % model.len();
                let old = model[i].clone();
                let mut new = old.clone();
                new.display_name = format!("{} {i}", NAMES[name]);
                new.state = State::ALL[state];
                new.region = REGIONS[region].into();
                model[i] = new.clone();
                rt.block_on(store.write(chrono::Utc::now(), Actor::system("t"), move |ctx| save(ctx, Some(&old), &new))).unwrap();
            }
            for (status, region, tier, app, q, sort, descending, limit) in queries {
                let query = DirectoryQuery {
                    status: status.map(|s| State::ALL[s]),
                    region: region.map(|r| REGIONS[r].to_string()),
                    tier: tier.map(|t| Tier::ALL[t]),
                    app_id: app.map(|a| apps[a]),
                    q: q.map(|k| ["ALPHA", "é", "ops1", "zz"][k].to_string()),
                    sort: [Sort::CreatedAt, Sort::DisplayName, Sort::Status][sort],
                    descending,
                    limit,
                    cursor: None,
                };
                prop_assert_eq!(all_pages(&store, query.clone()), expected(&model, &query), "{:?}", query);
                // The JSON page written in place is the owned page's JSON, byte for byte, both
                // when its rows are written and when they are copied from `rows`.
                let (fast, again, owned) = store.read_blocking(|r| {
                    let page = super::query(r, &query)?;
                    let owned = serde_json::to_vec(&crate::tenants::api::TenantPage {
                        items: page.rows.into_iter().map(Into::into).collect(),
                        next_cursor: page.next_cursor.map(|c| c.encode()),
                    })
                    .map_err(|e| Error::Internal(e.to_string()))?;
                    let fast = crate::tenants::api::page_json(r, &query, &rows)?;
                    Ok::<_, Error>((fast, crate::tenants::api::page_json(r, &query, &rows)?, owned))
                }).unwrap();
                prop_assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(owned.clone()).unwrap());
                prop_assert_eq!(String::from_utf8(again).unwrap(), String::from_utf8(owned).unwrap());
            }
            let counts = store.read_blocking(crate::tenants::queries::summary).unwrap();
            prop_assert_eq!(counts.total, model.len() as u64);
            for s in State::ALL {
                let n = model.iter().filter(|t| t.state == s).count() as u64;
                prop_assert_eq!(counts.by_state.get(s.as_str()).copied().unwrap_or(0), n);
            }
        }
    }

    fn owned_json(r: &impl Reader, q: &DirectoryQuery) -> String {
        let page = query(r, q).unwrap();
        serde_json::to_string(&crate::tenants::api::TenantPage {
            items: page.rows.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor.map(|c| c.encode()),
        })
        .unwrap()
    }

    #[test]
    fn a_page_from_an_older_snapshot_shows_its_own_rows_while_newer_ones_are_kept() {
        use crate::tenants::api::page_json;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let app = Uuid::now_v7();
        let old = tenant(0, 0, 0, 0, 0, &app);
        let mut new = old.clone();
        new.display_name = "Renamed Ltd".into();
        let first = old.clone();
        rt.block_on(
            store.write(chrono::Utc::now(), Actor::system("t"), move |ctx| {
                save(ctx, None, &first)
            }),
        )
        .unwrap();
        let rows = crate::tenants::rendered::RenderedRows::default();
        let q = DirectoryQuery::default();
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        store
            .read_blocking(|before| {
                let page = text(page_json(before, &q, &rows)?);
                assert_eq!(page, owned_json(before, &q));
                // The rename commits while `before` is open, and a newer snapshot keeps its row.
                let (o, n) = (old.clone(), new.clone());
                rt.block_on(
                    store.write(chrono::Utc::now(), Actor::system("t"), move |ctx| {
                        save(ctx, Some(&o), &n)
                    }),
                )?;
                store.read_blocking(|after| {
                    let renamed = text(page_json(after, &q, &rows)?);
                    assert_eq!(renamed, owned_json(after, &q));
                    assert!(renamed.contains("Renamed Ltd") && !page.contains("Renamed Ltd"));
                    assert_eq!(text(page_json(after, &q, &rows)?), renamed);
                    Ok::<_, Error>(())
                })?;
                assert_eq!(rows.size().0, 1);
                // The older snapshot still writes the row it holds, not the one kept.
                assert_eq!(text(page_json(before, &q, &rows)?), page);
                Ok::<_, Error>(())
            })
            .unwrap();
    }
}
