//! The demo's revenue side: a priced catalog with two published versions (a price bump),
//! tenants pinned to one or the other (half migrated), one tenant over a soft cap, and a month
//! of metered usage through the real ingest, so the Plans, Catalogs, Billing and tenant pages
//! look real. Plans themselves are seeded from the config at first start. Two earlier periods
//! of usage are then invoiced the way the jobs would have done it at the time: finalized four
//! days into the next period, most paid ten days later, one left unpaid past its net-14 terms
//! so that its tenant is delinquent; one tenant's current usage is ten times its usual. The
//! replay runs `snapshot_mrr` daily (one snapshot per month: the MRR trend) and `plan_enforcer`;
//! [`enforcement`] adds an operator's override, so the Enforcement page has an exception.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::actor::Actor;
use crate::catalogs::model::{RateDraft, parse_rates};
use crate::catalogs::service as catalogs;
use crate::error::Result;
use crate::metering::model::Event;
use crate::metering::service::{Poster, ingest};
use crate::state::AppState;

fn rate(sku: &str, per: u64, tiers: &[(Option<u64>, i64)], cap: Option<u64>) -> RateDraft {
    RateDraft {
        sku: sku.into(),
        unit: sku.into(),
        per_units: Some(per),
        tiers: tiers.to_vec(),
        soft_cap: cap,
    }
}

/// Seeds the catalog, the pins and the usage at `at` (after every tenant exists). `keys` are
/// `(tenant, API key)` pairs that attribute the usage.
pub async fn seed(
    state: &AppState,
    at: DateTime<Utc>,
    tenants: &[Uuid],
    keys: &[(Uuid, Uuid)],
) -> Result<()> {
    let op = Actor::operator("maya");
    let v1 = parse_rates(vec![
        rate(
            "api_call",
            1000,
            &[(Some(1_000_000), 2), (None, 1)],
            Some(5_000_000),
        ),
        rate("mb_processed", 10, &[(Some(100_000), 10), (None, 5)], None),
        rate("ai_token", 1000, &[(None, 3)], Some(20_000_000)),
    ])?;
    let v2 = parse_rates(vec![
        rate(
            "api_call",
            1000,
            &[(Some(1_000_000), 3), (None, 2)],
            Some(5_000_000),
        ),
        rate("mb_processed", 10, &[(Some(100_000), 10), (None, 5)], None),
        rate("ai_token", 1000, &[(None, 4)], Some(20_000_000)),
    ])?;
    let store = state.store();
    let (catalog, _) = store
        .write(at, op.clone(), move |ctx| {
            let (c, v) = catalogs::create(ctx, "Projex metered usage", "USD", &v1)?;
            catalogs::publish(ctx, &c.id, v.version)?;
            Ok::<_, crate::error::Error>((c, v))
        })
        .await?;
    let id = catalog.id;
    let list = tenants.to_vec();
    let pinned = store
        .write(at + Duration::minutes(2), op.clone(), move |ctx| {
            let mut pinned = Vec::new();
            for (i, t) in list.iter().enumerate() {
                // The first tenant negotiated a low api_call cap: it shows the soft-cap badge.
                let caps = if i == 0 {
                    vec![("api_call".to_string(), 100_000)]
                } else {
                    Vec::new()
                };
                let writable =
                    crate::tenants::directory::load(ctx, t).is_ok_and(|x| !x.state.is_read_only());
                if writable {
                    catalogs::pin(ctx, t, &id, 1, &caps)?;
                    pinned.push(*t);
                }
            }
            Ok::<_, crate::error::Error>(pinned)
        })
        .await?;
    let half: Vec<Uuid> = pinned.iter().step_by(2).copied().collect();
    store
        .write(at + Duration::minutes(5), op.clone(), move |ctx| {
            let v = catalogs::clone(ctx, &id, 1)?;
            catalogs::edit(ctx, &id, v.version, &v2)?;
            catalogs::publish(ctx, &id, v.version)?;
            catalogs::migrate(ctx, &id, v.version, &half, None)?;
            Ok::<_, crate::error::Error>(())
        })
        .await?;
    // A month of daily usage per tenant, shaped by its position (some heavy, most light).
    let now = at + Duration::minutes(10);
    let mut events: Vec<std::result::Result<Event, _>> = Vec::new();
    for (i, t) in pinned.iter().enumerate() {
        let key = keys.iter().find(|(k, _)| k == t).map(|(_, k)| *k);
        let weight = 1 + (i as u64 * 7) % 13;
        for day in 0..30u64 {
            let ts = now - Duration::days(i64::try_from(day).unwrap_or(0)) - Duration::hours(1);
            for (sku, base) in [
                ("api_call", 9_000u64),
                ("mb_processed", 400),
                ("ai_token", 60_000),
            ] {
                let quantity = base * weight + (day * 131 + i as u64 * 17) % base;
                events.push(Ok(Event {
                    event_id: format!("demo-{t}-{sku}-{day}"),
                    tenant_id: *t,
                    sku: sku.into(),
                    quantity,
                    ts,
                    api_key_id: key,
                    persona_id: None,
                    properties: None,
                }));
            }
        }
    }
    meter(state, now, events).await?;
    invoices(state, now, &pinned, keys).await
}

/// Ingests `events` as of `now`, in batches, and updates the board of soft caps.
async fn meter(
    state: &AppState,
    now: DateTime<Utc>,
    events: Vec<std::result::Result<Event, (crate::metering::model::Reason, String)>>,
) -> Result<()> {
    for chunk in events.chunks(crate::metering::model::MAX_BATCH) {
        let batch = chunk.to_vec();
        let done = state
            .store()
            .write(now, Actor::system("meter"), move |ctx| {
                ingest(ctx, &Poster::default(), &batch)
            })
            .await?;
        for (t, over) in done.over {
            state
                .caps()
                .set(t, crate::metering::model::period_of(now), over);
        }
    }
    Ok(())
}

/// Two earlier periods of usage, invoiced, mostly paid; one delinquent tenant.
async fn invoices(
    state: &AppState,
    now: DateTime<Utc>,
    pinned: &[Uuid],
    keys: &[(Uuid, Uuid)],
) -> Result<()> {
    use crate::invoices::service as inv;
    use crate::metering::model::{period_of, period_start, previous};
    let store = state.store();
    let cfg = state.config().billing.clone();
    let op = Actor::operator("maya");
    let current = period_of(now);
    // The tenant that will be delinquent pays on net 14; another one has a full profile.
    if let (Some(late), Some(formal)) = (pinned.get(2).copied(), pinned.get(3).copied()) {
        store
            .write(now - Duration::days(70), op.clone(), move |ctx| {
                let terms = inv::ProfileDraft {
                    net_days: Some(14),
                    ..inv::ProfileDraft::default()
                }
                .parse()?;
                inv::set_profile(ctx, &late, &terms)?;
                let full = inv::ProfileDraft {
                    name: Some("Northwind Traders GmbH".into()),
                    email: Some("ap@northwind.example".into()),
                    address: vec!["Hauptstrasse 1".into(), "10115 Berlin".into()],
                    tax_id: Some("DE123456789".into()),
                    po_number: Some("PO-2026-118".into()),
                    net_days: Some(30),
                }
                .parse()?;
                inv::set_profile(ctx, &formal, &full)?;
                Ok::<_, crate::error::Error>(())
            })
            .await?;
    }
    let mut unpaid_once = false;
    for back in [2u32, 1] {
        let mut p = current;
        for _ in 0..back + 1 {
            p = previous(p);
        }
        let mid = period_start(p) + Duration::days(14);
        let mut events = Vec::new();
        for (i, t) in pinned.iter().enumerate() {
            let key = keys.iter().find(|(k, _)| k == t).map(|(_, k)| *k);
            // The second tenant's usage is a tenth of this month's: its spike is flagged.
            let weight = if i == 1 { 1 } else { 1 + (i as u64 * 7) % 13 };
            for (sku, base) in [
                ("api_call", 270_000u64),
                ("mb_processed", 12_000),
                ("ai_token", 1_800_000),
            ] {
                let q = if i == 1 { base / 10 } else { base * weight };
                events.push(Ok(Event {
                    event_id: format!("demo-{t}-{sku}-p{p}"),
                    tenant_id: *t,
                    sku: sku.into(),
                    quantity: q + u64::from(back) * 1_009 % base,
                    ts: mid,
                    api_key_id: key,
                    persona_id: None,
                    properties: None,
                }));
            }
        }
        meter(state, mid, events).await?;
        // The job finalizes the period once its late grace is over...
        let closed_at = period_start(p) + Duration::days(35);
        let closed_at = period_start(period_of(closed_at)) + Duration::days(4);
        let cfg = cfg.clone();
        let finalized = store
            .write(closed_at, Actor::job("finalize_invoices"), move |ctx| {
                let mut all = Vec::new();
                loop {
                    let (done, _) = inv::finalize_closed(ctx, &cfg, &all)?;
                    if done.is_empty() {
                        return Ok::<_, crate::error::Error>(all);
                    }
                    all.extend(done);
                }
            })
            .await?;
        // ...and customers pay ten days later, except one.
        let late = pinned.get(2).copied();
        let skip_one = back == 1 && !unpaid_once;
        unpaid_once |= skip_one;
        store
            .write(closed_at + Duration::days(10), op.clone(), move |ctx| {
                for id in &finalized {
                    let i = crate::invoices::queries::stored(ctx, id)?;
                    if i.status != crate::invoices::model::Status::Finalized
                        || (skip_one && Some(i.tenant_id) == late)
                    {
                        continue;
                    }
                    let reference = format!("wire {}", &id.simple().to_string()[..10]);
                    inv::record_payment(ctx, id, i.due(), Some(&reference))?;
                }
                Ok::<_, crate::error::Error>(())
            })
            .await?;
    }
    // The overdue invoice makes its tenant delinquent.
    store
        .write(now, Actor::job("mark_delinquent"), inv::mark_overdue)
        .await?;
    for job in [
        crate::scheduler::job::Job::FinalizeInvoices,
        crate::scheduler::job::Job::MarkDelinquent,
        crate::scheduler::job::Job::AlertDispatcher,
    ] {
        crate::scheduler::record_run(
            state,
            job,
            crate::scheduler::Trigger::Schedule,
            now + Duration::minutes(5),
        )
        .await?;
    }
    Ok(())
}

/// An operator's enforcement override on the second writable tenant (a negotiated pilot,
/// expiring in 30 days), then a `plan_enforcer` run, as the hourly job would do.
pub async fn enforcement(state: &AppState, at: DateTime<Utc>, tenants: &[Uuid]) -> Result<()> {
    let list = tenants.to_vec();
    let input = crate::revenue::model::OverrideInput {
        reason: "Negotiated pilot: persona and API-key limits waived until the enterprise contract is signed".into(),
        expires_at: Some(at + Duration::days(30)),
    };
    state
        .store()
        .write(at, Actor::operator("maya"), move |ctx| {
            let writable: Vec<Uuid> = list
                .iter()
                .filter(|t| {
                    crate::tenants::directory::load(ctx, t).is_ok_and(|x| !x.state.is_read_only())
                })
                .copied()
                .collect();
            if let Some(t) = writable.get(1) {
                crate::revenue::service::set_override(ctx, t, &input)?;
            }
            Ok::<_, crate::error::Error>(())
        })
        .await?;
    crate::revenue::enforce(state, at + Duration::minutes(1)).await?;
    Ok(())
}
