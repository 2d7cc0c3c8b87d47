//! The rules of metering: ingesting a batch of events in one write (each event accepted,
//! duplicate or rejected on its own), maintaining the aggregates in the same write, recording
//! soft-cap crossings, and pruning raw events.
//!
//! Usage events are records that are themselves the evidence (like heartbeats): an accepted
//! event writes no audit entry. A soft cap crossed does: `usage.soft_cap.exceeded.v1`, once per
//! tenant, SKU and period.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::rc::Rc;

use serde_json::json;
use uuid::Uuid;

use super::model::*;
use crate::audit::ledger::{Audit, Subject};
use crate::catalogs::caps::Over;
use crate::catalogs::model::Version;
use crate::catalogs::queries as catalogs;
use crate::clock::to_micros;
use crate::error::Result;
use crate::store::codec;
use crate::store::keys::{Key, KeyReader};
use crate::store::{Dir, Range, Reader, WriteCtx};

/// What happened to one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Counted.
    Accepted,
    /// Its `event_id` was already counted for the tenant; counted once.
    Duplicate,
    /// Not counted, with the reason and a message.
    Rejected(Reason, String),
}

/// Who posts: a tenant principal may post only for its own tenant, and its key and persona
/// attribute the events that name none.
#[derive(Clone, Debug, Default)]
pub struct Poster {
    /// The tenant of a tenant principal (None: an operator).
    pub tenant: Option<Uuid>,
    /// Its API key, if it authenticated with one.
    pub api_key: Option<Uuid>,
    /// Its persona.
    pub persona: Option<Uuid>,
}

/// The result of a batch.
#[derive(Clone, Debug, Default)]
pub struct Ingested {
    /// One outcome per event, in order.
    pub outcomes: Vec<Outcome>,
    /// For each tenant with an accepted event, the soft caps it is over in the current period.
    pub over: Vec<(Uuid, Vec<Over>)>,
}

/// What a batch needs to know of a tenant, read once per batch.
enum TenantInfo {
    Missing,
    ReadOnly,
    Unpinned,
    Priced(crate::catalogs::model::Pin, Rc<Version>),
}

/// Reads what the batch needs of `tenant`: its state and its pin, with the pinned version taken
/// from `versions` when another tenant of the batch is pinned to it (a version is decoded once
/// per batch, not once per tenant).
fn tenant_info(
    r: &impl Reader,
    tenant: &Uuid,
    versions: &mut HashMap<(Uuid, u32), Rc<Version>>,
) -> Result<TenantInfo> {
    let state = match crate::tenants::directory::state(r, tenant) {
        Ok(s) => s,
        Err(crate::error::Error::NotFound { .. }) => return Ok(TenantInfo::Missing),
        Err(e) => return Err(e),
    };
    if state.is_read_only() {
        return Ok(TenantInfo::ReadOnly);
    }
    let Some(pin) = catalogs::pin(r, tenant)? else {
        return Ok(TenantInfo::Unpinned);
    };
    let version = match versions.entry((pin.catalog_id, pin.version)) {
        std::collections::hash_map::Entry::Occupied(v) => v.get().clone(),
        std::collections::hash_map::Entry::Vacant(slot) => slot
            .insert(Rc::new(catalogs::version(r, &pin.catalog_id, pin.version)?))
            .clone(),
    };
    Ok(TenantInfo::Priced(pin, version))
}

fn add(ctx: &mut WriteCtx<'_>, table: crate::store::Table, key: &[u8], n: u64) -> Result<u64> {
    let v = counter(ctx.get(table, key)?).saturating_add(n);
    ctx.put(table, key, &v.to_be_bytes())?;
    Ok(v)
}

/// The aggregate tables of plain counters, in the order of [`Batch::sums`]' table index (the
/// totals, with their daily rollups, are [`Batch::totals`]).
const AGGREGATES: [crate::store::Table; 2] = [USAGE_BY_BU, USAGE_BY_SOURCE];

/// What one batch has learnt and owes, so that each distinct thing is read once and each
/// aggregate row written once per batch (issue 10's "where the time goes": a batch of 100
/// events of one tenant and two SKUs did 600 counter reads and writes; folded, it does 6).
#[derive(Default)]
struct Batch {
    /// Tenants as read once per batch.
    tenants: HashMap<Uuid, TenantInfo>,
    /// The catalog versions the batch's tenants are pinned to, each decoded once.
    versions: HashMap<(Uuid, u32), Rc<Version>>,
    /// Whether `(tenant, period)` takes usage (its invoice is not finalized).
    open: HashMap<(Uuid, u32), bool>,
    /// API keys: `Some(persona)` when the key is the tenant's, `None` when it is not.
    keys: HashMap<(Uuid, Uuid), Option<Uuid>>,
    /// Personas: `Some(business unit)` when the persona is the tenant's, `None` when not.
    personas: HashMap<(Uuid, Uuid), Option<Option<Uuid>>>,
    /// Quantities to add: `(aggregate table index, key) -> sum`, applied in key order.
    sums: std::collections::BTreeMap<(usize, Vec<u8>), u64>,
    /// What to add to each [`USAGE_TOTALS`] row (quantity and days), applied in key order.
    totals: std::collections::BTreeMap<Vec<u8>, Total>,
    /// `(tenant, period, sku)` of accepted late events (a period before the current one).
    late: std::collections::BTreeSet<(Uuid, u32, String)>,
    /// Accepted events by `(period, tenant)`: one [`USAGE_EVENT_RECEIPTS`] row per period at
    /// the end.
    log: std::collections::BTreeMap<(u32, Uuid), Vec<LoggedEvent>>,
    /// The legacy [`USAGE_EVENTS`] still holds ids, so deduplication looks there too.
    legacy: bool,
}

/// Ingests `events` (parsed, or already rejected) in one write. Every event is judged on its
/// own: a rejected one changes nothing and fails no neighbour. Each accepted id enters the
/// deduplication set as it is judged (so a repeat within the batch is a duplicate); the raw
/// events are written as one [`USAGE_EVENT_RECEIPTS`] row per period (grouped by tenant), and
/// the aggregates are summed over the batch with each row written once, at the end. Storage
/// errors fail the batch.
pub fn ingest(
    ctx: &mut WriteCtx<'_>,
    poster: &Poster,
    events: &[std::result::Result<Event, (Reason, String)>],
) -> Result<Ingested> {
    let now = ctx.now;
    let received = to_micros(now);
    let mut batch = Batch {
        legacy: ctx.len(USAGE_EVENTS)? > 0,
        ..Batch::default()
    };
    let mut touched: Vec<Uuid> = Vec::new();
    let mut outcomes = Vec::with_capacity(events.len());
    for e in events {
        let e = match e {
            Ok(e) => e,
            Err((reason, msg)) => {
                outcomes.push(Outcome::Rejected(*reason, msg.clone()));
                continue;
            }
        };
        let outcome = one(ctx, poster, e, &mut batch)?;
        if outcome == Outcome::Accepted && !touched.contains(&e.tenant_id) {
            touched.push(e.tenant_id);
        }
        outcomes.push(outcome);
    }
    for (key, delta) in std::mem::take(&mut batch.totals) {
        let mut total = Total::decode(ctx.get(USAGE_TOTALS, &key)?.as_deref())?;
        total.merge(&delta);
        ctx.put(USAGE_TOTALS, &key, &total.encode())?;
    }
    for ((table, key), n) in std::mem::take(&mut batch.sums) {
        add(ctx, AGGREGATES[table], &key, n)?;
    }
    let mut rows: std::collections::BTreeMap<u32, Vec<TenantEvents>> = Default::default();
    for ((period, tenant), events) in std::mem::take(&mut batch.log) {
        rows.entry(period)
            .or_default()
            .push(TenantEvents { tenant, events });
    }
    for (period, tenants) in rows {
        let key = next_receipt_key(ctx, period, received)?;
        ctx.put_record(USAGE_EVENT_RECEIPTS, &key, &ReceiptRecord::V1 { tenants })?;
    }
    // A late event of the previous period may cross that period's cap.
    for (t, period, sku) in std::mem::take(&mut batch.late) {
        if let Some(TenantInfo::Priced(pin, version)) = batch.tenants.get(&t)
            && let Some(rate) = version.rate(&sku)
            && let Some(cap) = pin.soft_cap(rate)
        {
            let used = counter(ctx.get(USAGE_TOTALS, &total_key(&t, period, &sku))?);
            if used > cap {
                cross(ctx, &t, period, &sku, used, cap)?;
            }
        }
    }
    let mut over = Vec::new();
    for t in touched {
        if let Some(TenantInfo::Priced(pin, version)) = batch.tenants.get(&t) {
            over.push((t, caps(ctx, &t, pin, version, now)?));
        }
    }
    Ok(Ingested { outcomes, over })
}

/// The key of this request's row of `period`: the requests of one commit share its time, so
/// `n` follows the last row written at that time (one seek at the end of the table).
fn next_receipt_key(ctx: &WriteCtx<'_>, period: u32, received: i64) -> Result<Vec<u8>> {
    let at = Key::new().u64(u64::from(period)).i64(received).into_bytes();
    let mut n = 0;
    ctx.scan(
        USAGE_EVENT_RECEIPTS,
        &Range::prefix(&at),
        Dir::Desc,
        &mut |k, _| {
            let mut kr = KeyReader::new(k);
            let (_, _) = (kr.u64(), kr.i64());
            n = kr.u64().map_or(0, |last| last + 1);
            Ok(ControlFlow::Break(()))
        },
    )?;
    Ok(receipt_key(period, received, n))
}

fn one(ctx: &mut WriteCtx<'_>, poster: &Poster, e: &Event, batch: &mut Batch) -> Result<Outcome> {
    let reject = |r: Reason, m: String| Ok(Outcome::Rejected(r, m));
    if poster.tenant.is_some_and(|t| t != e.tenant_id) {
        return reject(
            Reason::UnknownTenant,
            format!("tenant '{}' not found", e.tenant_id),
        );
    }
    if let std::collections::hash_map::Entry::Vacant(slot) = batch.tenants.entry(e.tenant_id) {
        slot.insert(tenant_info(ctx, &e.tenant_id, &mut batch.versions)?);
    }
    let version = match batch.tenants.get(&e.tenant_id) {
        None | Some(TenantInfo::Missing) => {
            return reject(
                Reason::UnknownTenant,
                format!("tenant '{}' not found", e.tenant_id),
            );
        }
        Some(TenantInfo::ReadOnly) => {
            return reject(
                Reason::OffboardedTenant,
                format!("tenant '{}' is offboarding or offboarded", e.tenant_id),
            );
        }
        Some(TenantInfo::Unpinned) => {
            return reject(
                Reason::NoCatalog,
                "the tenant is pinned to no catalog version: an operator pins it with PUT /api/tenants/{id}/catalog".into(),
            );
        }
        Some(TenantInfo::Priced(_, v)) => v,
    };
    if version.rate(&e.sku).is_none() {
        return reject(
            Reason::UnknownSku,
            format!(
                "sku '{}' is not in the tenant's catalog version {}",
                e.sku, version.version
            ),
        );
    }
    if e.ts > ctx.now + chrono::Duration::seconds(MAX_SKEW_SECS) {
        return reject(
            Reason::FutureTimestamp,
            format!("ts is more than {MAX_SKEW_SECS} s ahead of the server's clock"),
        );
    }
    let period = period_of(e.ts);
    if !is_open(period, ctx.now) {
        return reject(
            Reason::ClosedPeriod,
            format!(
                "period {period} is closed: events are taken for the current period, and for the previous one during its first {LATE_GRACE_DAYS} days"
            ),
        );
    }
    if batch.legacy && ctx.contains(USAGE_EVENTS, &event_key(&e.tenant_id, &e.event_id))? {
        return Ok(Outcome::Duplicate);
    }
    let key = dedupe_key(&e.tenant_id, &e.event_id);
    if !ctx.insert_new(USAGE_DEDUPE, &key, &[])? {
        return Ok(Outcome::Duplicate);
    }
    match attribute(ctx, poster, e, batch, period)? {
        Ok(who) => {
            accept(ctx, e, batch, period, &who);
            Ok(Outcome::Accepted)
        }
        Err((reason, message)) => {
            // A repeat was told apart above; this one is refused, so its id is not kept.
            ctx.delete(USAGE_DEDUPE, &key)?;
            Ok(Outcome::Rejected(reason, message))
        }
    }
}

/// Who drove an accepted event.
#[derive(Clone, Copy)]
struct Attributed {
    api_key: Option<Uuid>,
    persona: Option<Uuid>,
    bu: Option<Uuid>,
}

/// The checks after deduplication: the period still takes usage (its invoice is a draft), and
/// the attribution is the tenant's. Errors: storage only; a refusal is the inner `Err`.
fn attribute(
    ctx: &mut WriteCtx<'_>,
    poster: &Poster,
    e: &Event,
    batch: &mut Batch,
    period: u32,
) -> Result<std::result::Result<Attributed, (Reason, String)>> {
    let reject = |r: Reason, m: String| Ok(Err((r, m)));
    let takes = match batch.open.get(&(e.tenant_id, period)) {
        Some(t) => *t,
        None => {
            let t = crate::invoices::service::take_usage(ctx, &e.tenant_id, period)?;
            batch.open.insert((e.tenant_id, period), t);
            t
        }
    };
    if !takes {
        return reject(
            Reason::ClosedPeriod,
            format!("period {period} is closed: the tenant's invoice of that period is finalized"),
        );
    }
    let api_key = e.api_key_id.or(if e.persona_id.is_none() {
        poster.api_key
    } else {
        None
    });
    let mut persona = e.persona_id.or(if e.api_key_id.is_none() {
        poster.persona
    } else {
        None
    });
    if let Some(k) = api_key {
        let owner = match batch.keys.get(&(e.tenant_id, k)) {
            Some(o) => *o,
            None => {
                let o = match crate::api_keys::queries::get(ctx, &e.tenant_id, &k) {
                    Ok(key) => Some(key.persona_id),
                    Err(crate::error::Error::NotFound { .. }) => None,
                    Err(err) => return Err(err),
                };
                batch.keys.insert((e.tenant_id, k), o);
                o
            }
        };
        match owner {
            Some(p) => persona = persona.or(Some(p)),
            None => {
                return reject(
                    Reason::UnknownAttribution,
                    format!("api key '{k}' is not the tenant's"),
                );
            }
        }
    }
    let bu = match persona {
        Some(p) => {
            let unit = match batch.personas.get(&(e.tenant_id, p)) {
                Some(u) => *u,
                None => {
                    let u = match crate::members::queries::load_persona(ctx, &e.tenant_id, &p) {
                        Ok(rec) => Some(rec.bu_id.map(Uuid::from_bytes)),
                        Err(crate::error::Error::NotFound { .. }) => None,
                        Err(err) => return Err(err),
                    };
                    batch.personas.insert((e.tenant_id, p), u);
                    u
                }
            };
            match unit {
                Some(bu) => bu,
                None => {
                    return reject(
                        Reason::UnknownAttribution,
                        format!("persona '{p}' is not the tenant's"),
                    );
                }
            }
        }
        None => None,
    };
    Ok(Ok(Attributed {
        api_key,
        persona,
        bu,
    }))
}

/// Counts an accepted event: its log entry and its share of each aggregate, applied at the end
/// of the batch.
fn accept(ctx: &WriteCtx<'_>, e: &Event, batch: &mut Batch, period: u32, who: &Attributed) {
    let Attributed {
        api_key,
        persona,
        bu,
    } = *who;
    batch
        .log
        .entry((period, e.tenant_id))
        .or_default()
        .push(LoggedEvent {
            event_id: e.event_id.clone(),
            sku: e.sku.clone(),
            quantity: e.quantity,
            ts: to_micros(e.ts),
            api_key,
            persona,
            bu,
            properties: e.properties.clone(),
        });
    let t = &e.tenant_id;
    let q = e.quantity;
    let day = u8::try_from(day_of(e.ts) % 100).unwrap_or(0);
    batch
        .totals
        .entry(total_key(t, period, &e.sku))
        .or_default()
        .add(day, q);
    let mut sum = |table: usize, key: Vec<u8>| {
        let n = batch.sums.entry((table, key)).or_default();
        *n = n.saturating_add(q);
    };
    let base = || Key::new().uuid(t).u64(u64::from(period)).str(&e.sku);
    if let Some(b) = bu {
        sum(0, base().uuid(&b).into_bytes());
    }
    if let Some(k) = api_key {
        sum(1, base().u8(SOURCE_API_KEY).uuid(&k).into_bytes());
    }
    if let Some(p) = persona {
        sum(1, base().u8(SOURCE_PERSONA).uuid(&p).into_bytes());
    }
    if period != period_of(ctx.now) {
        batch.late.insert((*t, period, e.sku.clone()));
    }
}

fn cross(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    period: u32,
    sku: &str,
    used: u64,
    cap: u64,
) -> Result<()> {
    let key = crossing_key(period, tenant, sku);
    if ctx.contains(USAGE_CAP_CROSSINGS, &key)? {
        return Ok(());
    }
    let at = to_micros(ctx.now);
    ctx.put_record(
        USAGE_CAP_CROSSINGS,
        &key,
        &CrossingRecord::V1 { used, cap, at },
    )?;
    ctx.audit(
        "usage.soft_cap.exceeded.v1",
        &Subject::in_tenant(*tenant, "sku", sku),
        json!({"sku": sku, "period": period, "used": used, "cap": cap}),
    )?;
    Ok(())
}

/// The soft caps `tenant` is over in the current period, recording each first crossing. The
/// period's totals are read in one pass with the live meter's [`super::queries::totals`] (its
/// SKUs are neighbours; at most `MAX_LINES` of them, as on the meter and the invoice), not one
/// lookup per capped SKU (four per tenant of a batch with the load bench's catalog, issue 10).
/// A version with no capped SKU reads nothing.
fn caps(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    pin: &crate::catalogs::model::Pin,
    version: &Version,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Over>> {
    if !version
        .rates
        .iter()
        .any(|rate| pin.soft_cap(rate).is_some())
    {
        return Ok(Vec::new());
    }
    let period = period_of(now);
    let totals = super::queries::totals(ctx, tenant, period)?;
    let mut over = Vec::new();
    for rate in &version.rates {
        let Some(cap) = pin.soft_cap(rate) else {
            continue;
        };
        // In SKU order: the key's string encoding keeps the bytes' order.
        let used = totals
            .binary_search_by(|(sku, _)| sku.as_str().cmp(&rate.sku))
            .map_or(0, |i| totals[i].1);
        if used > cap {
            cross(ctx, tenant, period, &rate.sku, used, cap)?;
            over.push(Over {
                sku: rate.sku.clone(),
                used,
                cap,
            });
        }
    }
    Ok(over)
}

/// Most raw events one prune deletes (the job runs again; each run is one bounded write).
pub const PRUNE_BATCH: usize = 10_000;

/// Deletes raw events of periods before the previous one: they can no longer be posted (their
/// period is closed), so they need no deduplication. Aggregates are kept. Returns how many
/// were deleted: at most about [`PRUNE_BATCH`] (a row goes whole, so up to [`MAX_BATCH`] - 1
/// more).
pub fn prune_events(ctx: &mut WriteCtx<'_>) -> Result<u64> {
    let keep_from = previous(period_of(ctx.now));
    let until = Key::new().u64(u64::from(keep_from)).into_bytes();
    let mut pruned = prune_legacy(ctx, &until)?;
    for table in [USAGE_EVENT_LOG, USAGE_EVENT_RECEIPTS] {
        let Some(budget) = PRUNE_BATCH.checked_sub(pruned as usize).filter(|b| *b > 0) else {
            break;
        };
        pruned += prune_rows(ctx, table, &until, budget)?;
    }
    Ok(pruned)
}

/// Deletes the rows of `table` ([`USAGE_EVENT_LOG`] or [`USAGE_EVENT_RECEIPTS`]) keyed before
/// `until`, and the ids of their events, until about `budget` events. Returns the events.
fn prune_rows(
    ctx: &mut WriteCtx<'_>,
    table: crate::store::Table,
    until: &[u8],
    budget: usize,
) -> Result<u64> {
    let mut rows: Vec<(Vec<u8>, Vec<TenantEvents>)> = Vec::new();
    let mut events = 0;
    ctx.scan(table, &Range::all().before(until), Dir::Asc, &mut |k, v| {
        let tenants = raw_row(table, k, v)?;
        events += tenants.iter().map(|t| t.events.len()).sum::<usize>();
        rows.push((k.to_vec(), tenants));
        Ok(if events >= budget {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    for (k, tenants) in &rows {
        for t in tenants {
            for e in &t.events {
                ctx.delete(USAGE_DEDUPE, &dedupe_key(&t.tenant, &e.event_id))?;
            }
        }
        ctx.delete(table, k)?;
    }
    Ok(events as u64)
}

/// A row of raw events as its tenants' events, in either format: a [`USAGE_EVENT_LOG`] row
/// names its tenant in its key, a [`USAGE_EVENT_RECEIPTS`] row in its value.
fn raw_row(
    table: crate::store::Table,
    key: &[u8],
    value: &[u8],
) -> crate::store::Result<Vec<TenantEvents>> {
    if table == USAGE_EVENT_LOG {
        let EventLogRecord::V1 { events } = codec::decode(table.name(), value)?;
        let mut kr = KeyReader::new(key);
        let _ = kr.u64();
        return Ok(kr
            .uuid()
            .map(|tenant| vec![TenantEvents { tenant, events }])
            .unwrap_or_default());
    }
    let ReceiptRecord::V1 { tenants } = codec::decode(table.name(), value)?;
    Ok(tenants)
}

/// Events of [`USAGE_EVENT_RECEIPTS`] one scrub write visits.
pub const SCRUB_BATCH: usize = 100_000;

/// Most scrub writes of one `prune_usage_events` run (so at most 100 × [`SCRUB_BATCH`]
/// events visited per run; the hourly job goes on where it stopped).
pub const MAX_SCRUB_WRITES: usize = 100;

/// What one scrub write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scrubbed {
    /// Events of shredded tenants removed.
    pub removed: u64,
    /// Whether a scrub is still pending (another write has work).
    pub pending: bool,
}

/// Removes the events of the first shredded tenant still pending ([`USAGE_EVENT_SCRUBS`]) from
/// the receipt rows of up to about [`SCRUB_BATCH`] events, going on from where its last write
/// stopped; a row left with no events is deleted. The scrub is done when it reaches the end of
/// the table: a shredded (offboarded) tenant takes no new events. Storage errors only.
pub fn scrub_step(ctx: &mut WriteCtx<'_>) -> Result<Scrubbed> {
    scrub_within(ctx, SCRUB_BATCH)
}

/// [`scrub_step`] visiting about `batch` events.
fn scrub_within(ctx: &mut WriteCtx<'_>, batch: usize) -> Result<Scrubbed> {
    let Some((scrub_key, value)) = ctx.first(USAGE_EVENT_SCRUBS, &Range::all(), Dir::Asc)? else {
        return Ok(Scrubbed::default());
    };
    let ScrubRecord::V1 { from } = codec::decode(USAGE_EVENT_SCRUBS.name(), &value)?;
    let tenant = KeyReader::new(&scrub_key).uuid();
    let (mut visited, mut next) = (0usize, None);
    let mut hits: Vec<(Vec<u8>, Vec<TenantEvents>)> = Vec::new();
    ctx.scan(
        USAGE_EVENT_RECEIPTS,
        &Range::all().from(&from),
        Dir::Asc,
        &mut |k, v| {
            if visited >= batch {
                next = Some(k.to_vec());
                return Ok(ControlFlow::Break(()));
            }
            let ReceiptRecord::V1 { tenants } = codec::decode(USAGE_EVENT_RECEIPTS.name(), v)?;
            visited += tenants.iter().map(|t| t.events.len()).sum::<usize>();
            if tenants.iter().any(|t| Some(t.tenant) == tenant) {
                hits.push((k.to_vec(), tenants));
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    let mut removed = 0u64;
    for (k, mut tenants) in hits {
        for t in tenants.iter().filter(|t| Some(t.tenant) == tenant) {
            for e in &t.events {
                ctx.delete(USAGE_DEDUPE, &dedupe_key(&t.tenant, &e.event_id))?;
            }
            removed += t.events.len() as u64;
        }
        tenants.retain(|t| Some(t.tenant) != tenant);
        if tenants.is_empty() {
            ctx.delete(USAGE_EVENT_RECEIPTS, &k)?;
        } else {
            ctx.put_record(USAGE_EVENT_RECEIPTS, &k, &ReceiptRecord::V1 { tenants })?;
        }
    }
    match next {
        Some(from) => ctx.put_record(USAGE_EVENT_SCRUBS, &scrub_key, &ScrubRecord::V1 { from })?,
        None => {
            ctx.delete(USAGE_EVENT_SCRUBS, &scrub_key)?;
        }
    }
    Ok(Scrubbed {
        removed,
        pending: ctx.len(USAGE_EVENT_SCRUBS)? > 0,
    })
}

/// Prunes the legacy [`USAGE_EVENTS`] (up to [`PRUNE_BATCH`]) through its period index.
fn prune_legacy(ctx: &mut WriteCtx<'_>, until: &[u8]) -> Result<u64> {
    if ctx.len(USAGE_EVENT_PERIODS)? == 0 {
        return Ok(0);
    }
    let mut doomed: Vec<Vec<u8>> = Vec::new();
    ctx.scan(
        USAGE_EVENT_PERIODS,
        &Range::all().before(until),
        Dir::Asc,
        &mut |k, _| {
            doomed.push(k.to_vec());
            Ok(if doomed.len() >= PRUNE_BATCH {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        },
    )?;
    for k in &doomed {
        let mut kr = KeyReader::new(k);
        let _ = kr.u64();
        if let (Some(t), Some(id)) = (kr.uuid(), kr.str()) {
            ctx.delete(USAGE_EVENTS, &event_key(&t, &id))?;
        }
        ctx.delete(USAGE_EVENT_PERIODS, k)?;
    }
    Ok(doomed.len() as u64)
}

/// Shredding a tenant deletes its raw events (their `properties` may hold personal data) and
/// their deduplication ids: its [`USAGE_EVENT_LOG`] rows of every period still kept and its
/// legacy events at once, and its events in [`USAGE_EVENT_RECEIPTS`] (rows shared with other
/// tenants) through a pending scrub ([`scrub_step`]), which `shred_due_tenants` works off in
/// bounded writes right after the shred (and `prune_usage_events` finishes, if it was cut
/// short). Aggregates are counts and are kept for invoices. Returns how many rows were deleted
/// at once (log rows and their ids, legacy events).
pub fn shred_events(ctx: &mut WriteCtx<'_>, tenant: &Uuid) -> Result<u64> {
    let prefix = Key::new().uuid(tenant).into_bytes();
    let mut n = ctx.delete_range(USAGE_EVENTS, &Range::prefix(&prefix))?;
    // The log is keyed by period first: visit each period it holds, one seek each.
    let mut from = Vec::new();
    while let Some((k, _)) = ctx.first(USAGE_EVENT_LOG, &Range::all().from(&from), Dir::Asc)? {
        let Some(period) = KeyReader::new(&k).u64() else {
            break;
        };
        let rows = Key::new().u64(period).uuid(tenant).into_bytes();
        let mut ids = Vec::new();
        ctx.scan(
            USAGE_EVENT_LOG,
            &Range::prefix(&rows),
            Dir::Asc,
            &mut |k, v| {
                for t in raw_row(USAGE_EVENT_LOG, k, v)? {
                    ids.extend(t.events.iter().map(|e| dedupe_key(&t.tenant, &e.event_id)));
                }
                Ok(ControlFlow::Continue(()))
            },
        )?;
        for id in &ids {
            n += u64::from(ctx.delete(USAGE_DEDUPE, id)?);
        }
        n += ctx.delete_range(USAGE_EVENT_LOG, &Range::prefix(&rows))?;
        from = Key::new().u64(period + 1).into_bytes();
    }
    if ctx.len(USAGE_EVENT_RECEIPTS)? > 0 {
        ctx.put_record(
            USAGE_EVENT_SCRUBS,
            &prefix,
            &ScrubRecord::V1 { from: Vec::new() },
        )?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::Actor;
    use crate::store::Store;

    fn logged(id: &str) -> LoggedEvent {
        LoggedEvent {
            event_id: id.into(),
            sku: "api_call".into(),
            quantity: 1,
            ts: 0,
            api_key: None,
            persona: None,
            bu: None,
            properties: Some(r#"{"email":"ana@example.com"}"#.into()),
        }
    }

    /// A shredded tenant's events leave every receipt row, over several bounded writes that go
    /// on where the last stopped; rows left empty go, the other tenants' events stay.
    #[tokio::test]
    async fn a_scrub_removes_a_shredded_tenants_events_from_shared_rows_in_bounded_steps() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (gone, kept) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let count = move |r: &WriteCtx<'_>| -> crate::store::Result<(usize, usize, u64)> {
            let (mut g, mut k) = (0, 0);
            r.scan(
                USAGE_EVENT_RECEIPTS,
                &Range::all(),
                Dir::Asc,
                &mut |_, v| {
                    let ReceiptRecord::V1 { tenants } =
                        codec::decode(USAGE_EVENT_RECEIPTS.name(), v)?;
                    for t in tenants {
                        assert!(!t.events.is_empty(), "no empty group is kept");
                        *(if t.tenant == gone { &mut g } else { &mut k }) += t.events.len();
                    }
                    Ok(ControlFlow::Continue(()))
                },
            )?;
            Ok((g, k, r.len(USAGE_EVENT_RECEIPTS)?))
        };
        let steps = store
            .write(now, Actor::system("t"), move |ctx| {
                // Ten rows: the shredded tenant's alone, shared, and the other's alone.
                for n in 0..10u64 {
                    let mut tenants = Vec::new();
                    if n < 7 {
                        tenants.push(TenantEvents {
                            tenant: gone,
                            events: vec![logged(&format!("g-{n}-a")), logged(&format!("g-{n}-b"))],
                        });
                    }
                    if n >= 3 {
                        tenants.push(TenantEvents {
                            tenant: kept,
                            events: vec![logged(&format!("k-{n}"))],
                        });
                    }
                    let key = receipt_key(202611, 1_000 + i64::try_from(n).unwrap_or(0), 0);
                    ctx.put_record(USAGE_EVENT_RECEIPTS, &key, &ReceiptRecord::V1 { tenants })?;
                }
                assert_eq!(count(ctx)?, (14, 7, 10));
                shred_events(ctx, &gone)?;
                assert_eq!(
                    count(ctx)?,
                    (14, 7, 10),
                    "the shred itself leaves the shared rows"
                );
                let mut steps = 0;
                let mut removed = 0;
                loop {
                    let step = scrub_within(ctx, 4)?;
                    steps += 1;
                    removed += step.removed;
                    if !step.pending {
                        break;
                    }
                    assert!(steps < 100, "the scrub goes on where it stopped");
                }
                assert_eq!(removed, 14);
                assert_eq!(count(ctx)?, (0, 7, 7), "rows 0 to 2 held only its events");
                assert_eq!(ctx.len(USAGE_EVENT_SCRUBS)?, 0);
                assert_eq!(scrub_within(ctx, 4)?, Scrubbed::default());
                Ok::<_, crate::error::Error>(steps)
            })
            .await
            .unwrap();
        // 17 events of 4 per write (a row goes whole): more than one write.
        assert!(steps > 2, "{steps} writes");
    }
}
