//! The rules of notification channels: create, change, delete, record a Test, Reconnect; the
//! router's one write (a tenant chain's new entries become queued messages, cursor and
//! messages together); `alert_dispatcher`'s one write (platform alerts become queued
//! messages); and the outcome of a try (retry with backoff, give up, disable after
//! [`DISABLE_AFTER`] failures).
//!
//! Changes people make are recorded with `ctx.audit` on the owner's chain (the tenant's, or the
//! platform's), in the same write; a refusal writes nothing. Queued messages and health are not
//! audit entries: auditing them would feed the router its own output.

use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::model::*;
use crate::audit::ledger::{Audit, ChainId, Subject};
use crate::audit::model::EntryView;
use crate::clock::{rfc3339_micros, to_micros};
use crate::error::{Error, Result};
use crate::store::keys::KeyReader;
use crate::store::{Dir, Range, Reader, WriteCtx};

/// A checked new channel (see `super::ChannelDraft::parse`).
#[derive(Clone, Debug)]
pub struct ChannelInput {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// Email recipients.
    pub recipients: Vec<String>,
    /// The sealed [`Target`] of a webhook kind.
    pub sealed: Option<Vec<u8>>,
    /// The masked URL.
    pub url_hint: Option<String>,
    /// Subscribed event types.
    pub event_types: Vec<String>,
    /// Enabled.
    pub enabled: bool,
}

/// A checked change: absent fields stay.
#[derive(Clone, Debug, Default)]
pub struct PatchInput {
    /// New name.
    pub name: Option<String>,
    /// New recipients (email).
    pub recipients: Option<Vec<String>>,
    /// New sealed target and its mask (webhook kinds).
    pub sealed: Option<(Vec<u8>, String)>,
    /// New event types.
    pub event_types: Option<Vec<String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

fn subject(tenant: Option<Uuid>, id: &Uuid) -> Subject {
    match tenant {
        Some(t) => Subject::in_tenant(t, "notification_channel", id),
        None => Subject::platform("notification_channel", id),
    }
}

/// The stored channel `id` of `tenant` (`None`: the platform).
///
/// Errors: 404.
pub fn load(r: &impl Reader, tenant: Option<Uuid>, id: &Uuid) -> Result<ChannelV1> {
    r.get_record::<ChannelRecord>(CHANNELS, &channel_key(&owner(tenant), id))?
        .map(|ChannelRecord::V1(c)| c)
        .ok_or_else(|| Error::not_found("notification channel", id.to_string()))
}

fn save(ctx: &mut WriteCtx<'_>, tenant: Option<Uuid>, id: &Uuid, rec: &ChannelV1) -> Result<()> {
    ctx.put_record(
        CHANNELS,
        &channel_key(&owner(tenant), id),
        &ChannelRecord::V1(rec.clone()),
    )?;
    Ok(())
}

/// Every channel of `tenant` (`None`: the platform's), oldest first.
pub fn channels_of(r: &impl Reader, tenant: Option<Uuid>) -> Result<Vec<(Uuid, ChannelV1)>> {
    let mut out = Vec::new();
    let mut bad = None;
    r.scan(
        CHANNELS,
        &Range::prefix(owner(tenant).as_bytes()),
        Dir::Asc,
        &mut |k, v| {
            let mut kr = KeyReader::new(k);
            let _ = kr.uuid();
            match (
                kr.uuid(),
                crate::store::codec::decode::<ChannelRecord>(CHANNELS.name(), v),
            ) {
                (Some(id), Ok(ChannelRecord::V1(c))) => out.push((id, c)),
                (_, Err(e)) => bad = Some(e),
                (None, _) => {}
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    match bad {
        Some(e) => Err(e.into()),
        None => Ok(out),
    }
}

fn chain_head(r: &impl Reader, chain: &ChainId) -> Result<u64> {
    Ok(match crate::audit::ledger::head(r, chain)? {
        Some(crate::audit::model::HeadRecord::V1 { seq, .. }) => seq,
        None => 0,
    })
}

fn cursor(r: &impl Reader, key: &[u8]) -> Result<Option<u64>> {
    Ok(r.get_record::<CursorRecord>(CURSORS, key)?
        .map(|CursorRecord::V1 { at }| at))
}

fn set_cursor(ctx: &mut WriteCtx<'_>, key: &[u8], at: u64) -> Result<()> {
    ctx.put_record(CURSORS, key, &CursorRecord::V1 { at })?;
    Ok(())
}

/// Creates channel `id` (`notification_channel.created.v1`). A tenant channel gets the entries
/// written to the tenant's chain after it; a platform channel the alerts raised after it.
///
/// Errors: 404 unknown tenant; 409 `tenant_read_only`, `channel_limit`.
pub fn create(
    ctx: &mut WriteCtx<'_>,
    tenant: Option<Uuid>,
    id: &Uuid,
    input: &ChannelInput,
) -> Result<Channel> {
    if let Some(t) = &tenant {
        crate::tenants::queries::get(ctx, t)?.ensure_writable()?;
    }
    if channels_of(ctx, tenant)?.len() >= MAX_CHANNELS {
        return Err(Error::conflict(
            CHANNEL_LIMIT,
            format!("at most {MAX_CHANNELS} notification channels: delete one first"),
        ));
    }
    ctx.audit(
        "notification_channel.created.v1",
        &subject(tenant, id),
        json!({
            "name": input.name,
            "kind": input.kind.as_str(),
            "recipients": input.recipients,
            "url": input.url_hint,
            "event_types": input.event_types,
            "enabled": input.enabled,
        }),
    )?;
    let since = match tenant {
        Some(t) => chain_head(ctx, &ChainId::Tenant(t))?,
        None => 0,
    };
    let now = to_micros(ctx.now);
    let rec = ChannelV1 {
        name: input.name.clone(),
        kind: input.kind,
        recipients: input.recipients.clone(),
        sealed: input.sealed.clone(),
        url_hint: input.url_hint.clone(),
        event_types: input.event_types.clone(),
        enabled: input.enabled,
        disabled_reason: None,
        failures: 0,
        last: None,
        since_seq: since,
        created_at: now,
        updated_at: now,
    };
    save(ctx, tenant, id, &rec)?;
    if let Some(t) = tenant {
        let key = cursor_key(CURSOR_TENANT, &t, "");
        if cursor(ctx, &key)?.is_none() {
            set_cursor(ctx, &key, since)?;
        }
    }
    Ok(rec.view(tenant, *id))
}

/// Applies a change (`notification_channel.updated.v1` with the changed fields; the URL only
/// as its mask). Enabling a channel the platform disabled clears the reason, like Reconnect.
///
/// Errors: 404; 409 `tenant_read_only`.
pub fn update(
    ctx: &mut WriteCtx<'_>,
    tenant: Option<Uuid>,
    id: &Uuid,
    input: &PatchInput,
) -> Result<Channel> {
    if let Some(t) = &tenant {
        crate::tenants::queries::get(ctx, t)?.ensure_writable()?;
    }
    let mut rec = load(ctx, tenant, id)?;
    let mut changed = serde_json::Map::new();
    if let Some(n) = &input.name {
        rec.name = n.clone();
        changed.insert("name".into(), json!(n));
    }
    if let Some(r) = &input.recipients {
        rec.recipients = r.clone();
        changed.insert("recipients".into(), json!(r));
    }
    if let Some((sealed, hint)) = &input.sealed {
        rec.sealed = Some(sealed.clone());
        rec.url_hint = Some(hint.clone());
        changed.insert("url".into(), json!(hint));
    }
    if let Some(e) = &input.event_types {
        rec.event_types = e.clone();
        changed.insert("event_types".into(), json!(e));
    }
    if let Some(e) = input.enabled {
        rec.enabled = e;
        if e {
            rec.disabled_reason = None;
            rec.failures = 0;
        }
        changed.insert("enabled".into(), json!(e));
    }
    ctx.audit(
        "notification_channel.updated.v1",
        &subject(tenant, id),
        serde_json::Value::Object(changed),
    )?;
    rec.updated_at = to_micros(ctx.now);
    save(ctx, tenant, id, &rec)?;
    Ok(rec.view(tenant, *id))
}

/// Deletes a channel (`notification_channel.deleted.v1`); its queued messages are dropped when
/// their turn comes.
///
/// Errors: 404; 409 `tenant_read_only`.
pub fn delete(ctx: &mut WriteCtx<'_>, tenant: Option<Uuid>, id: &Uuid) -> Result<()> {
    if let Some(t) = &tenant {
        crate::tenants::queries::get(ctx, t)?.ensure_writable()?;
    }
    let rec = load(ctx, tenant, id)?;
    ctx.audit(
        "notification_channel.deleted.v1",
        &subject(tenant, id),
        json!({"name": rec.name, "kind": rec.kind.as_str()}),
    )?;
    ctx.delete(CHANNELS, &channel_key(&owner(tenant), id))?;
    Ok(())
}

/// Records the result of a Test sent just now (`notification_channel.tested.v1` with `ok` and
/// the error): it becomes the channel's health.
///
/// Errors: 404 (deleted meanwhile).
pub fn record_test(
    ctx: &mut WriteCtx<'_>,
    tenant: Option<Uuid>,
    id: &Uuid,
    error: Option<String>,
) -> Result<Channel> {
    let mut rec = load(ctx, tenant, id)?;
    ctx.audit(
        "notification_channel.tested.v1",
        &subject(tenant, id),
        json!({"ok": error.is_none(), "error": error}),
    )?;
    apply_result(&mut rec, to_micros(ctx.now), TEST_EVENT, error);
    save(ctx, tenant, id, &rec)?;
    Ok(rec.view(tenant, *id))
}

/// Re-enables a channel and clears its error and failure count
/// (`notification_channel.reconnected.v1`; guide §6: "Health dot red → … Click Reconnect").
///
/// Errors: 404; 409 `tenant_read_only`.
pub fn reconnect(ctx: &mut WriteCtx<'_>, tenant: Option<Uuid>, id: &Uuid) -> Result<Channel> {
    if let Some(t) = &tenant {
        crate::tenants::queries::get(ctx, t)?.ensure_writable()?;
    }
    let mut rec = load(ctx, tenant, id)?;
    ctx.audit(
        "notification_channel.reconnected.v1",
        &subject(tenant, id),
        json!({"was_enabled": rec.enabled, "disabled_reason": rec.disabled_reason, "last_error": rec.last.as_ref().and_then(|l| l.error.clone())}),
    )?;
    rec.enabled = true;
    rec.disabled_reason = None;
    rec.failures = 0;
    if let Some(l) = rec.last.as_mut() {
        l.error = None;
        l.ok = true;
    }
    rec.updated_at = to_micros(ctx.now);
    save(ctx, tenant, id, &rec)?;
    Ok(rec.view(tenant, *id))
}

/// Records a send's result as the channel's health without queueing anything (the demo's
/// replayed history; health is not an audit entry).
///
/// Errors: 404.
pub fn record_delivery(
    ctx: &mut WriteCtx<'_>,
    tenant: Option<Uuid>,
    id: &Uuid,
    event_type: &str,
    error: Option<String>,
) -> Result<()> {
    let mut rec = load(ctx, tenant, id)?;
    apply_result(&mut rec, to_micros(ctx.now), event_type, error);
    save(ctx, tenant, id, &rec)
}

fn apply_result(rec: &mut ChannelV1, at: i64, event_type: &str, error: Option<String>) {
    if error.is_some() {
        rec.failures = rec.failures.saturating_add(1);
    } else {
        rec.failures = 0;
    }
    rec.last = Some(LastDelivery {
        at,
        event_type: event_type.to_string(),
        ok: error.is_none(),
        error,
    });
}

fn enqueue(
    ctx: &mut WriteCtx<'_>,
    tenant: Option<Uuid>,
    channel: &Uuid,
    message: Message,
) -> Result<()> {
    let now = to_micros(ctx.now);
    ctx.put_record(
        OUTBOX,
        &outbox_key(now, &owner(tenant), channel, &message.id),
        &MessageRecord::V1(MessageV1 {
            message,
            attempts: 0,
            created_at: now,
        }),
    )?;
    Ok(())
}

fn new_message(
    ctx: &WriteCtx<'_>,
    event_type: &str,
    title: String,
    text: String,
    data: serde_json::Value,
    ts: String,
) -> Message {
    Message {
        id: crate::ids::new_id(ctx.now),
        event_type: event_type.to_string(),
        title,
        text,
        timestamp: ts,
        data: data.to_string(),
    }
}

/// The message of a ledger entry.
fn entry_message(ctx: &WriteCtx<'_>, e: &EntryView) -> Message {
    let details = e
        .data
        .as_ref()
        .map(|d| d.to_string())
        .unwrap_or_else(|| "(shredded)".into());
    let details: String = details.chars().take(800).collect();
    let whose = match &e.tenant_id {
        Some(t) => format!("tenant {t}"),
        None => "the platform".to_string(),
    };
    new_message(
        ctx,
        &e.action,
        format!("{} ({whose})", e.action),
        format!(
            "{} {} — seq {} of chain {}\n{details}",
            e.target.kind, e.target.id, e.seq, e.chain
        ),
        json!({"chain": e.chain, "seq": e.seq, "target": {"kind": e.target.kind, "id": e.target.id}, "tenant_id": e.tenant_id, "hash": e.hash, "details": e.data}),
        e.ts.clone(),
    )
}

/// What one router or alert write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Routed {
    /// Entries or runs looked at.
    pub seen: u64,
    /// Messages queued.
    pub queued: u64,
    /// Whether more is left (the batch or the queue was full).
    pub more: bool,
}

fn tenant_cursors(r: &impl Reader, kind: u8) -> Result<Vec<(Uuid, u64)>> {
    let mut out = Vec::new();
    r.scan(CURSORS, &Range::prefix(&[kind]), Dir::Asc, &mut |k, v| {
        let mut kr = KeyReader::new(k);
        let _ = kr.u8();
        if let (Some(t), Ok(CursorRecord::V1 { at })) = (
            kr.uuid(),
            crate::store::codec::decode::<CursorRecord>(CURSORS.name(), v),
        ) {
            out.push((t, at));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// Is a tenant chain ahead of its router cursor?
pub fn behind(r: &crate::store::ReadCtx) -> Result<bool> {
    for (t, at) in tenant_cursors(r, CURSOR_TENANT)? {
        if chain_head(r, &ChainId::Tenant(t))? > at {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The router's write: for every tenant with a cursor, reads the chain's entries after it,
/// queues a message for each channel of the tenant that subscribes to the entry's action, and
/// moves the cursor, all in this one write: an entry committed before a crash is routed after
/// the restart, once. Stops while the queue holds [`MAX_QUEUE`] messages.
pub fn route(ctx: &mut WriteCtx<'_>, budget: usize) -> Result<Routed> {
    let mut out = Routed::default();
    let mut left = budget as u64;
    for (tenant, at) in tenant_cursors(ctx, CURSOR_TENANT)? {
        let chain = ChainId::Tenant(tenant);
        let head = chain_head(ctx, &chain)?;
        if head <= at {
            continue;
        }
        if left == 0 || ctx.len(OUTBOX)? >= MAX_QUEUE {
            out.more = true;
            break;
        }
        let channels = channels_of(ctx, Some(tenant))?;
        let last = head.min(at + left);
        for s in (at + 1)..=last {
            left -= 1;
            out.seen += 1;
            let Some(entry) = crate::audit::ledger::read_entry(ctx, &chain, s)? else {
                continue;
            };
            for (cid, c) in &channels {
                if s <= c.since_seq || !c.wants(&entry.action) {
                    continue;
                }
                let m = entry_message(ctx, &entry);
                enqueue(ctx, Some(tenant), cid, m)?;
                out.queued += 1;
            }
        }
        set_cursor(ctx, &cursor_key(CURSOR_TENANT, &tenant, ""), last)?;
        if last < head {
            out.more = true;
        }
    }
    Ok(out)
}

/// A finished run of a scheduled job, as the alert dispatcher sees it.
#[derive(Clone, Debug)]
pub struct FinishedRun {
    /// The job's name.
    pub job: String,
    /// `schedule` or `manual`.
    pub trigger: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Did it fail?
    pub failed: bool,
    /// Its error.
    pub error: Option<String>,
}

/// Where the alert dispatcher reads finished job runs: every job's recent runs, newest first.
/// The scheduler passes it in, so this context does not import the scheduler (which runs it).
pub type RunSource = fn(&WriteCtx<'_>) -> Result<Vec<(String, Vec<FinishedRun>)>>;

fn queue_alert(
    ctx: &mut WriteCtx<'_>,
    channels: &[(Uuid, ChannelV1)],
    at: DateTime<Utc>,
    make: &dyn Fn(&WriteCtx<'_>) -> Message,
    out: &mut Routed,
) -> Result<()> {
    let at = to_micros(at);
    for (cid, c) in channels {
        let m = make(ctx);
        if c.created_at <= at && c.wants(&m.event_type) {
            enqueue(ctx, None, cid, m)?;
            out.queued += 1;
        }
    }
    Ok(())
}

/// `alert_dispatcher`'s write (HQ PRD §6): queues platform alerts for the platform channels
/// that subscribe to them, each alert once (durable cursors and markers move in this write):
/// failed job runs (`job.failed`, from the run records), [`PLATFORM_ALERTS`] on the platform
/// chain and [`TENANT_ALERTS`] on tenants' chains. An alert raised before a channel existed is
/// not sent to it. At most `budget` entries and runs are looked at.
pub fn alerts(ctx: &mut WriteCtx<'_>, budget: usize, runs_of: RunSource) -> Result<Routed> {
    let mut out = Routed::default();
    let channels = channels_of(ctx, None)?;
    let wants = |t: &str| channels.iter().any(|(_, c)| c.wants(t));
    let mut left = budget as u64;
    // Failed job runs.
    for (job, runs) in runs_of(ctx)? {
        let key = cursor_key(MARK_JOB, &Uuid::nil(), &job);
        let mark = cursor(ctx, &key)?.unwrap_or(0);
        let mut newest = mark;
        let mut fresh: Vec<_> = runs
            .into_iter()
            .filter(|r| u64::try_from(to_micros(r.started_at)).unwrap_or(0) > mark)
            .collect();
        fresh.reverse();
        for r in fresh {
            if left == 0 {
                out.more = true;
                break;
            }
            left -= 1;
            out.seen += 1;
            let started = u64::try_from(to_micros(r.started_at)).unwrap_or(0);
            newest = newest.max(started);
            if r.failed && wants(JOB_FAILED) {
                let error = r.error.clone().unwrap_or_default();
                let when = rfc3339_micros(r.finished_at.unwrap_or(r.started_at));
                queue_alert(
                    ctx,
                    &channels,
                    r.started_at,
                    &|c| {
                        new_message(
                            c,
                            JOB_FAILED,
                            format!("Job {} failed", r.job),
                            format!("The {} run of {} failed: {error}", r.trigger, r.job),
                            json!({"job": r.job, "started_at": rfc3339_micros(r.started_at), "error": error}),
                            when.clone(),
                        )
                    },
                    &mut out,
                )?;
            }
        }
        if newest > mark {
            set_cursor(ctx, &key, newest)?;
        }
    }
    // Ledger alerts: the platform chain, then every tenant chain.
    let mut chains = vec![(
        ChainId::Platform,
        cursor_key(CURSOR_PLATFORM, &Uuid::nil(), ""),
        PLATFORM_ALERTS,
    )];
    for (chain, _) in crate::audit::ledger::all_heads(ctx)? {
        if let ChainId::Tenant(t) = chain {
            chains.push((chain, cursor_key(CURSOR_ALERTS, &t, ""), TENANT_ALERTS));
        }
    }
    for (chain, key, names) in chains {
        let head = chain_head(ctx, &chain)?;
        let at = cursor(ctx, &key)?.unwrap_or(0);
        if head <= at {
            continue;
        }
        if !names.iter().any(|n| wants(n)) {
            // Nobody listens: nothing to send, now or later.
            set_cursor(ctx, &key, head)?;
            continue;
        }
        if left == 0 || ctx.len(OUTBOX)? >= MAX_QUEUE {
            out.more = true;
            break;
        }
        let last = head.min(at + left);
        for s in (at + 1)..=last {
            left -= 1;
            out.seen += 1;
            let Some(entry) = crate::audit::ledger::read_entry(ctx, &chain, s)? else {
                continue;
            };
            if !names.contains(&entry.action.as_str()) {
                continue;
            }
            let ts = DateTime::parse_from_rfc3339(&entry.ts)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(ctx.now);
            queue_alert(ctx, &channels, ts, &|c| entry_message(c, &entry), &mut out)?;
        }
        set_cursor(ctx, &key, last)?;
        if last < head {
            out.more = true;
        }
    }
    Ok(out)
}

/// A queued message due to be sent.
#[derive(Clone, Debug)]
pub struct Due {
    /// Its key in [`OUTBOX`].
    pub key: Vec<u8>,
    /// The channel's tenant (`None`: platform).
    pub tenant: Option<Uuid>,
    /// The channel.
    pub channel: Uuid,
    /// The message and its tries.
    pub message: MessageV1,
}

/// Up to `max` messages due at `now`, oldest first, and the next due time after them.
pub fn due(r: &impl Reader, now: i64, max: usize) -> Result<(Vec<Due>, Option<i64>)> {
    let mut out = Vec::new();
    let mut next = None;
    r.scan(OUTBOX, &Range::all(), Dir::Asc, &mut |k, v| {
        let mut kr = KeyReader::new(k);
        let (Some(at), Some(o), Some(c)) = (kr.i64(), kr.uuid(), kr.uuid()) else {
            return Ok(ControlFlow::Continue(()));
        };
        if at > now || out.len() >= max {
            next = Some(at);
            return Ok(ControlFlow::Break(()));
        }
        let MessageRecord::V1(m) = crate::store::codec::decode(OUTBOX.name(), v)?;
        out.push(Due {
            key: k.to_vec(),
            tenant: (!o.is_nil()).then_some(o),
            channel: c,
            message: m,
        });
        Ok(ControlFlow::Continue(()))
    })?;
    Ok((out, next))
}

/// Records a try of `d` (`error` = `None`: taken): the channel's health, then the message is
/// deleted, or queued again after its backoff ([`RETRY_DELAYS`]). After [`DISABLE_AFTER`]
/// consecutive failures the channel is disabled (`notification_channel.disabled.v1`). A
/// message whose channel is gone, or disabled, is dropped.
pub fn record_try(ctx: &mut WriteCtx<'_>, d: &Due, error: Option<String>) -> Result<()> {
    if !ctx.delete(OUTBOX, &d.key)? {
        return Ok(()); // Already handled.
    }
    let Ok(mut rec) = load(ctx, d.tenant, &d.channel) else {
        return Ok(());
    };
    let now = to_micros(ctx.now);
    let failed = error.is_some();
    apply_result(&mut rec, now, &d.message.message.event_type, error.clone());
    if failed && rec.enabled && rec.failures >= DISABLE_AFTER {
        rec.enabled = false;
        let why = format!(
            "disabled after {DISABLE_AFTER} failed sends in a row; last: {}",
            error.clone().unwrap_or_default()
        );
        ctx.audit(
            "notification_channel.disabled.v1",
            &subject(d.tenant, &d.channel),
            json!({"reason": why}),
        )?;
        rec.disabled_reason = Some(why);
    }
    save(ctx, d.tenant, &d.channel, &rec)?;
    let tries = d.message.attempts + 1;
    if failed
        && rec.enabled
        && let Some(delay) =
            RETRY_DELAYS.get(usize::try_from(d.message.attempts).unwrap_or(usize::MAX))
    {
        let mut m = d.message.clone();
        m.attempts = tries;
        let due = now + delay * 1_000_000;
        ctx.put_record(
            OUTBOX,
            &outbox_key(due, &owner(d.tenant), &d.channel, &m.message.id),
            &MessageRecord::V1(m),
        )?;
    }
    Ok(())
}

/// Drops a message without trying it (its channel is gone or disabled).
pub fn drop_message(ctx: &mut WriteCtx<'_>, key: &[u8]) -> Result<()> {
    ctx.delete(OUTBOX, key)?;
    Ok(())
}

/// Deletes a shredded tenant's channels, their queued messages and its cursors.
pub fn shred(ctx: &mut WriteCtx<'_>, tenant: &Uuid) -> Result<u64> {
    let n = ctx.delete_range(CHANNELS, &Range::prefix(tenant.as_bytes()))?;
    ctx.delete(CURSORS, &cursor_key(CURSOR_TENANT, tenant, ""))?;
    let mut keys = Vec::new();
    ctx.scan(OUTBOX, &Range::all(), Dir::Asc, &mut |k, _| {
        let mut kr = KeyReader::new(k);
        let _ = kr.i64();
        if kr.uuid() == Some(*tenant) {
            keys.push(k.to_vec());
        }
        Ok(ControlFlow::Continue(()))
    })?;
    for k in keys {
        ctx.delete(OUTBOX, &k)?;
    }
    Ok(n)
}
