//! Versioned schema migrations, run at start before anything else uses the store.
//!
//! The data file records its `schema_version` (meta table). A newer one is refused by
//! `Store::open`; an older one is migrated here, in order, one step per version:
//! 1. a backup of the whole store is written to the backup dir
//!    (`tenantry-premigrate-v{from}-to-v{to}-<time>.tbk[.age]`), encrypted to
//!    `backup.recipients` when set;
//! 2. every step runs in **one** write request, with the new `schema_version`, a
//!    `schema_migrations` history row and the platform-chain entry `schema.migrated.v1`. A step
//!    that fails rolls all of it back, and the start is refused naming the backup.
//!
//! Migrations never touch the audit tables' format (AUDIT.md is a public contract), so every
//! chain verifies the same before and after.

use std::ops::ControlFlow;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::actor::Actor;
use crate::audit::ledger::{Audit, Subject};
use crate::backup::{self, BackupConfig};
use crate::clock::to_micros;
use crate::error::{Error, Result};
use crate::scheduler::JOB_RUNS;
use crate::store::keys::Key;
use crate::store::{self, Dir, Range, Reader, Store, Table, WriteCtx};
use crate::tenants::directory;
use crate::tenants::model::{Tenant, TenantRecord};

/// Migrations' share of the composition: the event they write on the platform chain.
pub const CONTEXT: crate::http::context::Context = crate::http::context::Context {
    name: "upgrade",
    events: &["schema.migrated.v1"],
    ..crate::http::context::Context::EMPTY
};

/// History of migrations applied: `to version (u64) -> MigrationRecord`.
pub const HISTORY: Table = Table::new("schema_migrations");

/// One step: from `from` to `from + 1`.
pub struct Migration {
    /// The version it starts from.
    pub from: u32,
    /// What it does, for the history and the log.
    pub name: &'static str,
    /// The change; returns a one-line summary. It must check everything before it writes.
    pub run: fn(&mut WriteCtx<'_>) -> Result<String>,
}

/// Every migration, in order. `from` values are consecutive from 1 to `SCHEMA_VERSION - 1`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        from: 1,
        name: "job_runs keyed by job name; tenant index rebuilt; weekly provisioning counters",
        run: v1_to_v2,
    },
    Migration {
        from: 2,
        name: "system roles seeded for every tenant from its app's role templates",
        run: v2_to_v3,
    },
    Migration {
        from: 3,
        name: "audit shreds and each chain's newest checkpoint recorded for verify",
        run: v3_to_v4,
    },
    Migration {
        from: 4,
        name: "revenue-posture counters (by plan, paying, trial buckets) counted from the tenants",
        run: v4_to_v5,
    },
    Migration {
        from: 5,
        name: "daily usage rollups moved into their period totals; raw usage events kept by receipt",
        run: v5_to_v6,
    },
    Migration {
        from: 6,
        name: "usage deduplication set keyed by event id first; invoice period rows tell a draft",
        run: v6_to_v7,
    },
];

/// A stored migration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum MigrationRecord {
    /// Version 1.
    V1 {
        /// Version before.
        from: u32,
        /// Version after.
        to: u32,
        /// When, microseconds.
        at: i64,
        /// The backup taken first (file name in the backup dir).
        backup_file: String,
        /// Its BLAKE3.
        backup_blake3: String,
        /// One line per step.
        steps: Vec<String>,
        /// The tenantry that ran it.
        tenantry_version: String,
    },
}

/// What a start-up migration did.
#[derive(Clone, Debug)]
pub struct Upgraded {
    /// Version before.
    pub from: u32,
    /// Version after.
    pub to: u32,
    /// The backup taken first.
    pub backup: std::path::PathBuf,
    /// One line per step.
    pub steps: Vec<String>,
}

/// Migrates `store` to [`store::SCHEMA_VERSION`] when it is older; `None` when it is current.
///
/// Errors: the backup could not be written (nothing was migrated), or a step failed (rolled
/// back; the backup is there).
pub async fn run_pending(
    store: &Store,
    data_dir: &Path,
    cfg: &BackupConfig,
    now: DateTime<Utc>,
) -> Result<Option<Upgraded>> {
    let from = store
        .read(|r| Ok::<_, Error>(store::schema_version(r)?))
        .await?;
    let to = store::SCHEMA_VERSION;
    if from >= to {
        return Ok(None);
    }
    let steps: Vec<&Migration> = MIGRATIONS
        .iter()
        .filter(|m| m.from >= from && m.from < to)
        .collect();
    if steps.len() != (to - from) as usize {
        return Err(Error::Internal(format!(
            "no migration path from schema v{from} to v{to}"
        )));
    }
    tracing::warn!(
        from,
        to,
        "the data file has an older schema; taking a backup, then migrating"
    );
    let dir = cfg.dir(data_dir);
    let encrypted = !cfg.recipients.is_empty();
    let name = format!(
        "tenantry-premigrate-v{from}-to-v{to}-{}.tbk{}",
        now.format("%Y%m%dT%H%M%SZ"),
        if encrypted { ".age" } else { "" }
    );
    let path = dir.join(&name);
    let summary = {
        let (store, data_dir, recipients, path) = (
            store.clone(),
            data_dir.to_path_buf(),
            cfg.recipients.clone(),
            path.clone(),
        );
        let include_keys = cfg.include_keys;
        tokio::task::spawn_blocking(move || {
            store::ensure_private_dir(path.parent().unwrap_or(&data_dir))?;
            backup::write_file(&store, &data_dir, &recipients, include_keys, now, &path)
        })
        .await
        .map_err(|e| Error::Internal(format!("backup task failed: {e}")))?
        .map_err(|e| {
            Error::Internal(format!(
                "the backup before migrating could not be written, so nothing was migrated: {e}"
            ))
        })?
    };
    tracing::info!(backup = %path.display(), bytes = summary.bytes, "pre-migration backup written");
    if !encrypted {
        tracing::warn!(
            "the pre-migration backup is not encrypted (set backup.recipients); it holds the install's signing key"
        );
    }
    let (backup_file, backup_blake3) = (name.clone(), summary.file_blake3.clone());
    let notes = store
        .write(now, Actor::system("upgrade"), move |ctx| {
            let found = store::schema_version(ctx)?;
            if found != from {
                return Err(Error::conflict(
                    crate::error::CONFLICT,
                    format!("schema moved from v{from} to v{found} during the migration"),
                ));
            }
            let mut notes = Vec::new();
            for m in MIGRATIONS.iter().filter(|m| m.from >= from && m.from < to) {
                notes.push(format!("v{}→v{}: {}: {}", m.from, m.from + 1, m.name, (m.run)(ctx)?));
            }
            let record = MigrationRecord::V1 {
                from,
                to,
                at: to_micros(ctx.now),
                backup_file: backup_file.clone(),
                backup_blake3: backup_blake3.clone(),
                steps: notes.clone(),
                tenantry_version: env!("CARGO_PKG_VERSION").to_string(),
            };
            ctx.put_record(HISTORY, &Key::new().u64(u64::from(to)).into_bytes(), &record)?;
            store::meta_put(ctx, "schema_version", &to.to_be_bytes())?;
            ctx.audit(
"schema.migrated.v1",
&Subject::platform("schema", to),
json!({
                    "from": from,
                    "to": to,
                    "steps": notes,
                    "backup_file": backup_file,
                    "backup_blake3": backup_blake3,
                    "tenantry_version": env!("CARGO_PKG_VERSION"),
                }),
            )?;
            Ok(notes)
        })
        .await
        .map_err(|e| {
            Error::Internal(format!(
                "migrating schema v{from} to v{to} failed and was rolled back; the backup taken first is {}: {e}",
                path.display()
            ))
        })?;
    for n in &notes {
        tracing::info!(step = %n, "migrated");
    }
    Ok(Some(Upgraded {
        from,
        to,
        backup: path,
        steps: notes,
    }))
}

/// v1 → v2, in one transaction:
/// - [`job_runs_by_name`];
/// - [`rebuild_tenant_index`]: v1 ended key strings with one `0x00`, v2 with `0x00 0x00`
///   (`store::keys`), so every string-bearing `tenant_index` key is rewritten;
/// - [`backfill_created_weeks`]: the `created_week` counters the dashboard reads did not exist.
fn v1_to_v2(ctx: &mut WriteCtx<'_>) -> Result<String> {
    Ok([
        job_runs_by_name(ctx)?,
        rebuild_tenant_index(ctx)?,
        backfill_created_weeks(ctx)?,
    ]
    .join("; "))
}

/// v2 → v3: tenants provisioned before tenant identity existed get their system roles, seeded
/// from their app's role templates (the default catalogue for apps made before apps had one),
/// with `tenant.roles.seeded.v1` on each tenant's chain, as provisioning does now. Shredded
/// tenants and tenants that already have roles are skipped.
fn v2_to_v3(ctx: &mut WriteCtx<'_>) -> Result<String> {
    let tenants = all_tenants(ctx)?;
    let mut seeded = 0usize;
    for t in &tenants {
        if t.state == crate::tenants::model::State::Offboarded
            || !crate::members::queries::roles(ctx, &t.id)?.is_empty()
        {
            continue;
        }
        crate::members::service::seed_system_roles(ctx, &t.id, &t.app_id)?;
        seeded += 1;
    }
    Ok(format!(
        "seeded system roles for {seeded} of {} tenant(s)",
        tenants.len()
    ))
}

/// v3 → v4: verify now tells a shredded data row from a deleted one by the recorded shreds
/// (`audit_shreds`), and notices deleted checkpoints by each chain's recorded newest checkpoint
/// (`audit_latest_checkpoint`). Both are recorded from here on; this step records what earlier
/// versions did:
/// - each shredded tenant's shred, over seqs 1 to the one before its `tenant.shredded.v1` entry
///   (the data rows the shred deleted; the entries the shred itself wrote keep their data);
/// - each chain's newest stored checkpoint.
///
/// The audit tables' format is unchanged: these are ledger metadata, like checkpoints.
fn v3_to_v4(ctx: &mut WriteCtx<'_>) -> Result<String> {
    use crate::audit::ledger;
    use crate::audit::model::{ChainId, CheckpointRecord};
    let mut shreds = Vec::new();
    for t in all_tenants(ctx)? {
        let Some(at) = t.shredded_at else { continue };
        let chain = ChainId::Tenant(t.id);
        let mut shredded_entry = None;
        let mut bad = None;
        ctx.scan(
            ledger::ENTRIES,
            &Range::prefix(&chain.key()),
            Dir::Desc,
            &mut |_, stored| match ledger::view(stored, None) {
                Ok(e) if e.action == "tenant.shredded.v1" => {
                    shredded_entry = Some(e.seq);
                    Ok(ControlFlow::Break(()))
                }
                Ok(_) => Ok(ControlFlow::Continue(())),
                Err(e) => {
                    bad = Some(e);
                    Ok(ControlFlow::Break(()))
                }
            },
        )?;
        if let Some(e) = bad {
            return Err(e);
        }
        // Without its entry (not expected), the whole chain as it stands was shredded.
        let through = match shredded_entry {
            Some(seq) => seq.saturating_sub(1),
            None => ledger::head(ctx, &chain)?
                .map_or(0, |crate::audit::model::HeadRecord::V1 { seq, .. }| seq),
        };
        if through > 0 {
            shreds.push((chain, through, to_micros(at)));
        }
    }
    let mut newest = Vec::new();
    for (chain, _) in ledger::all_heads(ctx)? {
        if let Some(CheckpointRecord::V1 { seq, .. }) = ledger::last_checkpoint(ctx, &chain)? {
            newest.push((chain, seq));
        }
    }
    for (chain, through, at) in &shreds {
        ledger::record_shred(ctx, chain, 1, *through, *at)?;
    }
    for (chain, seq) in &newest {
        ledger::record_latest_checkpoint(ctx, chain, *seq)?;
    }
    Ok(format!(
        "recorded {} shred(s) and the newest checkpoint of {} chain(s)",
        shreds.len(),
        newest.len()
    ))
}

/// v4 → v5: the revenue posture reads maintained counters (`tenant_posture_counts`, see
/// [`crate::tenants::posture`]) that earlier versions did not keep. One pass over the tenants
/// counts them as `directory::save` keeps them from now on; trials converted before the upgrade
/// are known only to the ledger, so that bucket starts empty.
fn v4_to_v5(ctx: &mut WriteCtx<'_>) -> Result<String> {
    let tenants = all_tenants(ctx)?;
    let keys = crate::tenants::posture::rebuild(ctx, &tenants)?;
    Ok(format!(
        "counted {} tenant(s) into {keys} revenue-posture counter(s)",
        tenants.len()
    ))
}

/// v5 → v6: moves each daily rollup row of `usage_daily` (`tenant, yyyymmdd, sku -> u64`) into its
/// period's total (`metering::model::Total`: the quantity already counts those units, so only
/// the day is added), then empties `usage_daily`. The raw events need nothing: the per-tenant
/// rows of `usage_event_log` stay readable, and pruning and shredding go on deleting them,
/// while new events go to `usage_event_receipts`, which a v5 build would neither prune nor
/// scrub (so the version moves and a v5 build refuses the file).
fn v5_to_v6(ctx: &mut WriteCtx<'_>) -> Result<String> {
    use crate::metering::model::{Total, USAGE_DAILY, USAGE_TOTALS, counter, total_key};
    use crate::store::keys::KeyReader;
    let mut totals: std::collections::BTreeMap<Vec<u8>, Vec<(u8, u64)>> = Default::default();
    let mut rows = 0u64;
    ctx.scan(USAGE_DAILY, &Range::all(), Dir::Asc, &mut |k, v| {
        let mut kr = KeyReader::new(k);
        let (Some(tenant), Some(day), Some(sku)) = (kr.uuid(), kr.u64(), kr.str()) else {
            return Err(crate::store::Error::Corrupt {
                table: USAGE_DAILY.name(),
                detail: "a key that is not tenant, day, sku".into(),
            });
        };
        let (period, day) = (u32::try_from(day / 100).unwrap_or(0), (day % 100) as u8);
        totals
            .entry(total_key(&tenant, period, &sku))
            .or_default()
            .push((day, counter(Some(v.to_vec()))));
        rows += 1;
        Ok(ControlFlow::Continue(()))
    })?;
    let keys = totals.len();
    for (key, days) in totals {
        let mut total = Total::decode(ctx.get(USAGE_TOTALS, &key)?.as_deref())?;
        for (day, n) in days {
            total.add_day(day, n);
        }
        ctx.put(USAGE_TOTALS, &key, &total.encode())?;
    }
    ctx.delete_range(USAGE_DAILY, &Range::all())?;
    Ok(format!(
        "moved {rows} daily usage rollup row(s) into {keys} period total(s); raw usage events kept by receipt from now on"
    ))
}

/// Keys moved per pass of [`v6_to_v7`], so it holds at most this many in memory at once.
const MOVE_CHUNK: usize = 10_000;

/// v6 → v7: the usage deduplication set moves from `usage_event_ids` (`tenant, event_id`) to
/// `usage_dedupe` (`event_id, tenant`), whose order puts the ids of one request side by side
/// (`metering::model::USAGE_DEDUPE`). A key is the same bytes in the other order: the tenant is
/// 16 bytes and the id is self-delimiting ([`Key::str`]). The old table is left empty; a v6
/// build would not see the moved ids, so the version moves and it refuses the file.
///
/// Each `invoice_periods` value gains the byte that tells a draft
/// (`invoices::model::period_value`), from its invoice's status.
fn v6_to_v7(ctx: &mut WriteCtx<'_>) -> Result<String> {
    let moved = dedupe_by_event_id(ctx)?;
    let periods = invoice_periods_tell_drafts(ctx)?;
    Ok(format!(
        "moved {moved} usage event id(s) into the deduplication set keyed by event id; {periods} invoice period row(s) tell a draft"
    ))
}

/// The first step of [`v6_to_v7`]: returns how many ids moved.
fn dedupe_by_event_id(ctx: &mut WriteCtx<'_>) -> Result<u64> {
    use crate::metering::model::{USAGE_DEDUPE, USAGE_EVENT_IDS};
    let mut moved = 0u64;
    let mut range = Range::all();
    loop {
        let mut chunk: Vec<Vec<u8>> = Vec::with_capacity(MOVE_CHUNK);
        ctx.scan(USAGE_EVENT_IDS, &range, Dir::Asc, &mut |k, _| {
            chunk.push(k.to_vec());
            Ok(if chunk.len() >= MOVE_CHUNK {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
        let Some(last) = chunk.last() else { break };
        range = Range::all().after(last);
        for k in &chunk {
            if k.len() < 18 {
                return Err(store::Error::Corrupt {
                    table: USAGE_EVENT_IDS.name(),
                    detail: "a key that is not tenant, event id".into(),
                }
                .into());
            }
            let (tenant, id) = k.split_at(16);
            ctx.put(USAGE_DEDUPE, &[id, tenant].concat(), &[])?;
        }
        moved += chunk.len() as u64;
    }
    ctx.delete_range(USAGE_EVENT_IDS, &Range::all())?;
    Ok(moved)
}

/// The second step of [`v6_to_v7`]: returns how many rows it rewrote.
fn invoice_periods_tell_drafts(ctx: &mut WriteCtx<'_>) -> Result<u64> {
    use crate::invoices::model::{INVOICE_PERIODS, Status, period_value};
    let mut rows: Vec<(Vec<u8>, uuid::Uuid)> = Vec::new();
    ctx.scan(INVOICE_PERIODS, &Range::all(), Dir::Asc, &mut |k, v| {
        let id = uuid::Uuid::from_slice(v).map_err(|_| store::Error::Corrupt {
            table: INVOICE_PERIODS.name(),
            detail: "a value that is not an invoice id".into(),
        })?;
        rows.push((k.to_vec(), id));
        Ok(ControlFlow::Continue(()))
    })?;
    for (k, id) in &rows {
        let draft = crate::invoices::queries::stored(ctx, id)?.status == Status::Draft;
        ctx.put(INVOICE_PERIODS, k, &period_value(id, draft))?;
    }
    Ok(rows.len() as u64)
}

/// Every tenant, decoded (the migration's own pass over the primary table).
fn all_tenants(ctx: &WriteCtx<'_>) -> Result<Vec<Tenant>> {
    let mut out = Vec::new();
    ctx.scan(directory::TENANTS, &Range::all(), Dir::Asc, &mut |_, v| {
        out.push(Tenant::from(store::codec::decode::<TenantRecord>(
            directory::TENANTS.name(),
            v,
        )?));
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// Drops every `tenant_index` row and writes each tenant's keys as today's
/// [`directory::index_keys`] makes them, so the index is exactly what `save` maintains.
fn rebuild_tenant_index(ctx: &mut WriteCtx<'_>) -> Result<String> {
    let tenants = all_tenants(ctx)?;
    let dropped = ctx.delete_range(directory::INDEX, &Range::all())?;
    let mut written = 0usize;
    for t in &tenants {
        for k in directory::index_keys(t) {
            ctx.put(directory::INDEX, &k, &[])?;
            written += 1;
        }
    }
    Ok(format!(
        "rebuilt the tenant index of {} tenant(s): {dropped} key(s) dropped, {written} written",
        tenants.len()
    ))
}

/// Counts every stored tenant into `created_week` by its `created_at` (shredded tenants keep
/// their record, so they count too).
fn backfill_created_weeks(ctx: &mut WriteCtx<'_>) -> Result<String> {
    let mut weeks = std::collections::BTreeMap::<String, u64>::new();
    for t in all_tenants(ctx)? {
        *weeks.entry(directory::week_of(t.created_at)).or_default() += 1;
    }
    for (week, n) in &weeks {
        ctx.put(
            directory::COUNTS,
            format!("created_week\0{week}").as_bytes(),
            &n.to_be_bytes(),
        )?;
    }
    Ok(format!("counted provisioning in {} week(s)", weeks.len()))
}

/// v1 → v2: `job_runs` keys start with the job's name (a key string) instead of its position
/// in the `Job` enum, so adding or reordering jobs can never move old runs under another job.
/// The v1 positions are frozen here: they are a fact of the old file, not of today's enum.
fn job_runs_by_name(ctx: &mut WriteCtx<'_>) -> Result<String> {
    const V1_JOBS: [&str; 3] = ["shred_due_tenants", "expire_trials", "checkpoint_chains"];
    const V1_KEY_LEN: usize = 1 + 8 + 16;
    let mut rows = Vec::new();
    let mut bad = None;
    ctx.scan(JOB_RUNS, &Range::all(), Dir::Asc, &mut |k, v| match k
        .first()
        .and_then(|b| V1_JOBS.get(usize::from(*b)))
    {
        Some(name) if k.len() == V1_KEY_LEN => {
            let new = Key::new().str(name).raw(&k[1..]).into_bytes();
            rows.push((k.to_vec(), new, v.to_vec()));
            Ok(ControlFlow::Continue(()))
        }
        _ => {
            bad = Some(hex::encode(k));
            Ok(ControlFlow::Break(()))
        }
    })?;
    if let Some(k) = bad {
        return Err(Error::Internal(format!(
            "job_runs holds a key that is not schema v1's (job byte, time, nonce): {k}"
        )));
    }
    for (old, new, value) in &rows {
        ctx.delete(JOB_RUNS, old)?;
        ctx.put(JOB_RUNS, new, value)?;
    }
    Ok(format!("re-keyed {} job run(s)", rows.len()))
}

/// The migrations applied to this store, oldest first, as `(from, to, at, backup file)`.
pub fn history(r: &impl Reader) -> Result<Vec<MigrationRecord>> {
    let mut out = Vec::new();
    r.scan(HISTORY, &Range::all(), Dir::Asc, &mut |_, v| {
        out.push(store::codec::decode(HISTORY.name(), v)?);
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v5 store's daily rollups end up in their period totals, whose quantity is unchanged,
    /// and `usage_daily` is left empty.
    #[tokio::test]
    async fn v5_daily_rollups_move_into_their_period_totals() {
        use crate::metering::model::{USAGE_DAILY, USAGE_TOTALS, total_key};
        use crate::metering::queries;
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let t = uuid::Uuid::from_u128(7);
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let summary = s
            .write(now, Actor::system("t"), move |ctx| {
                ctx.put(
                    USAGE_TOTALS,
                    &total_key(&t, 202611, "sms"),
                    &9u64.to_be_bytes(),
                )?;
                for (day, n) in [(20261121u64, 4u64), (20261103, 5)] {
                    let k = Key::new().uuid(&t).u64(day).str("sms").into_bytes();
                    ctx.put(USAGE_DAILY, &k, &n.to_be_bytes())?;
                }
                v5_to_v6(ctx)
            })
            .await
            .unwrap();
        assert!(summary.starts_with("moved 2 daily usage rollup row(s) into 1 period total(s)"));
        let (total, daily, left) = s
            .read(move |r| {
                Ok::<_, Error>((
                    queries::total(r, &t, 202611, "sms")?,
                    queries::daily(r, &t, 202611, "sms")?,
                    r.len(USAGE_DAILY)?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(total, 9);
        assert_eq!(daily, vec![(20261103, 5), (20261121, 4)]);
        assert_eq!(left, 0);
    }

    /// A v6 store's deduplication ids, more than one pass of them, all end up in
    /// `usage_dedupe` keyed by event id first, and `usage_event_ids` is left empty; its invoice
    /// period rows gain the byte that tells a draft.
    #[tokio::test]
    async fn v6_deduplication_ids_move_to_the_set_keyed_by_event_id() {
        use crate::invoices::model::{
            INVOICE_PERIODS, INVOICES, Invoice, InvoiceRecord, Status, period_key,
        };
        use crate::invoices::queries::period_row;
        use crate::metering::model::{USAGE_DEDUPE, USAGE_EVENT_IDS, dedupe_key, event_key};
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let (a, b) = (uuid::Uuid::from_u128(7), uuid::Uuid::from_u128(8));
        let ids: Vec<(uuid::Uuid, String)> = (0..MOVE_CHUNK + 5)
            .map(|n| (if n % 3 == 0 { a } else { b }, format!("batch-{n}")))
            .chain([
                (a, "same".into()),
                (b, "same".into()),
                (a, "nul\0in id".into()),
            ])
            .collect();
        let all = ids.clone();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let (draft, finalized) = (uuid::Uuid::from_u128(70), uuid::Uuid::from_u128(71));
        let summary = s
            .write(now, Actor::system("t"), move |ctx| {
                for (t, id) in &all {
                    ctx.put(USAGE_EVENT_IDS, &event_key(t, id), &[])?;
                }
                for (inv, period, status) in [
                    (draft, 202612, Status::Draft),
                    (finalized, 202611, Status::Finalized),
                ] {
                    let inv = Invoice {
                        status,
                        ..Invoice::draft(inv, a, period, now)
                    };
                    ctx.put_record(INVOICES, inv.id.as_bytes(), &InvoiceRecord::V1(inv.clone()))?;
                    ctx.put(INVOICE_PERIODS, &period_key(&a, period), inv.id.as_bytes())?;
                }
                v6_to_v7(ctx)
            })
            .await
            .unwrap();
        assert_eq!(
            summary,
            format!(
                "moved {} usage event id(s) into the deduplication set keyed by event id; 2 invoice period row(s) tell a draft",
                ids.len()
            )
        );
        let rows = s
            .read(move |r| Ok::<_, Error>((period_row(r, &a, 202612)?, period_row(r, &a, 202611)?)))
            .await
            .unwrap();
        assert_eq!(rows, (Some((draft, true)), Some((finalized, false))));
        let (moved, left, missing) = s
            .read(move |r| {
                let mut missing = 0;
                for (t, id) in &ids {
                    missing += usize::from(!r.contains(USAGE_DEDUPE, &dedupe_key(t, id))?);
                }
                Ok::<_, Error>((r.len(USAGE_DEDUPE)?, r.len(USAGE_EVENT_IDS)?, missing))
            })
            .await
            .unwrap();
        assert_eq!((moved, left, missing), (MOVE_CHUNK as u64 + 8, 0, 0));
    }

    #[test]
    fn every_version_below_the_current_one_has_exactly_one_step() {
        for v in 1..store::SCHEMA_VERSION {
            assert_eq!(
                MIGRATIONS.iter().filter(|m| m.from == v).count(),
                1,
                "schema v{v}"
            );
        }
        assert!(MIGRATIONS.iter().all(|m| m.from < store::SCHEMA_VERSION));
    }
}
