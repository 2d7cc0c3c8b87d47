//! The rules of webhooks: endpoints (create, change, delete, rotate the secret, test), the
//! dispatcher's one write (cursor advance and the deliveries it makes, together), the outcome of
//! a try (retry on the schedule, DLQ, 410 disables), replays, pruning and shredding.
//!
//! Changes people make are recorded on the tenant's chain with `ctx.audit`; a refusal writes
//! nothing. Deliveries and attempts are not audit entries: like job runs they are the evidence
//! themselves, and auditing them would feed the dispatcher its own output. Secrets never reach
//! this module in the clear: it stores them sealed.

use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::guard::Policy;
use super::model::*;
use super::runtime::WEBHOOKS_TOPIC;
use crate::audit::ledger::{Audit, ChainId, Subject};
use crate::clock::to_micros;
use crate::error::{Error, Result, Validator};
use crate::store::keys::{Key, KeyReader};
use crate::store::{Dir, Range, Reader, Topic, WriteCtx};

/// An endpoint as asked for, unchecked (the API body, the console form, the demo).
#[derive(Clone, Debug, Default)]
pub struct EndpointDraft {
    /// Where deliveries go.
    pub url: String,
    /// What it is for.
    pub description: Option<String>,
    /// Event types from the catalogue.
    pub event_types: Vec<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// A checked [`EndpointDraft`].
#[derive(Clone, Debug)]
pub struct EndpointInput {
    url: String,
    description: String,
    event_types: Vec<String>,
    enabled: bool,
}

impl EndpointDraft {
    /// Checks every field at once against the event catalogue and the http policy.
    ///
    /// Errors: 422 `validation_failed` listing each bad field.
    pub fn parse(self, catalogue: &[String], policy: &Policy) -> Result<EndpointInput> {
        let mut v = Validator::new();
        let url = v.take(
            "url",
            parse_url(&self.url, policy.http_allowed_for(&self.url)),
        );
        let description = v.take(
            "description",
            parse_description(self.description.as_deref().unwrap_or("")),
        );
        let event_types = v.take(
            "event_types",
            parse_event_types(&self.event_types, catalogue),
        );
        v.finish()?;
        let missing = || Error::Internal("validated field missing".into());
        Ok(EndpointInput {
            url: url.ok_or_else(missing)?,
            description: description.ok_or_else(missing)?,
            event_types: event_types.ok_or_else(missing)?,
            enabled: self.enabled.unwrap_or(true),
        })
    }
}

/// A change to an endpoint, unchecked: absent fields stay.
#[derive(Clone, Debug, Default)]
pub struct EndpointPatch {
    /// New URL.
    pub url: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New event types.
    pub event_types: Option<Vec<String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// A checked [`EndpointPatch`].
#[derive(Clone, Debug, Default)]
pub struct PatchInput {
    url: Option<String>,
    description: Option<String>,
    event_types: Option<Vec<String>>,
    enabled: Option<bool>,
}

impl EndpointPatch {
    /// Checks every given field.
    ///
    /// Errors: 422 `validation_failed` listing each bad field.
    pub fn parse(self, catalogue: &[String], policy: &Policy) -> Result<PatchInput> {
        let mut v = Validator::new();
        let url = self
            .url
            .as_deref()
            .and_then(|u| v.take("url", parse_url(u, policy.http_allowed_for(u))));
        let description = self
            .description
            .as_deref()
            .and_then(|d| v.take("description", parse_description(d)));
        let event_types = self
            .event_types
            .as_deref()
            .and_then(|t| v.take("event_types", parse_event_types(t, catalogue)));
        v.finish()?;
        Ok(PatchInput {
            url,
            description,
            event_types,
            enabled: self.enabled,
        })
    }
}

/// A secret sealed for storage and the hint lists show.
#[derive(Clone, Debug)]
pub struct SealedSecret {
    /// Sealed bytes.
    pub sealed: Vec<u8>,
    /// `whsec_AbCd…`.
    pub hint: String,
}

fn subject(tenant: &Uuid, id: &Uuid) -> Subject {
    Subject::in_tenant(*tenant, "webhook_endpoint", id)
}

/// The stored endpoint `id` of `tenant`.
///
/// Errors: 404.
pub fn load(r: &impl Reader, tenant: &Uuid, id: &Uuid) -> Result<EndpointV1> {
    match r.get_record::<EndpointRecord>(ENDPOINTS, &tenant_key(tenant, id))? {
        Some(EndpointRecord::V1(e)) => Ok(e),
        None => Err(Error::not_found("webhook endpoint", id.to_string())),
    }
}

fn save(ctx: &mut WriteCtx<'_>, tenant: &Uuid, id: &Uuid, rec: &EndpointV1) -> Result<()> {
    ctx.put_record(
        ENDPOINTS,
        &tenant_key(tenant, id),
        &EndpointRecord::V1(rec.clone()),
    )?;
    Ok(())
}

fn count_endpoints(r: &impl Reader, tenant: &Uuid) -> Result<usize> {
    let mut n = 0usize;
    r.scan(
        ENDPOINTS,
        &Range::prefix(Key::new().uuid(tenant).as_bytes()),
        Dir::Asc,
        &mut |_, _| {
            n += 1;
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(n)
}

/// The endpoints of `tenant` with their ids (at most [`MAX_ENDPOINTS`]).
pub fn endpoints_of(r: &impl Reader, tenant: &Uuid) -> Result<Vec<(Uuid, EndpointV1)>> {
    let mut out = Vec::new();
    let mut bad = None;
    r.scan(
        ENDPOINTS,
        &Range::prefix(Key::new().uuid(tenant).as_bytes()),
        Dir::Asc,
        &mut |k, v| {
            let mut kr = KeyReader::new(k);
            let _ = kr.uuid();
            match (
                kr.uuid(),
                crate::store::codec::decode::<EndpointRecord>(ENDPOINTS.name(), v),
            ) {
                (Some(id), Ok(EndpointRecord::V1(e))) => out.push((id, e)),
                (_, Err(e)) => bad = Some(e),
                (None, _) => {}
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    if let Some(e) = bad {
        return Err(e.into());
    }
    Ok(out)
}

fn chain_head(r: &impl Reader, tenant: &Uuid) -> Result<u64> {
    Ok(
        match crate::audit::ledger::head(r, &ChainId::Tenant(*tenant))? {
            Some(crate::audit::model::HeadRecord::V1 { seq, .. }) => seq,
            None => 0,
        },
    )
}

/// Creates endpoint `id` of `tenant` (`webhook.endpoint.created.v1`). It receives the entries
/// written to the tenant's chain after it, and the dispatcher gets a cursor for the tenant if
/// it had none.
///
/// Errors: 404 unknown tenant; 409 `tenant_read_only`, `webhook_limit`.
pub fn create(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    id: &Uuid,
    input: &EndpointInput,
    secret: &SealedSecret,
) -> Result<Endpoint> {
    crate::tenants::queries::get(ctx, tenant)?.ensure_writable()?;
    if count_endpoints(ctx, tenant)? >= MAX_ENDPOINTS {
        return Err(Error::conflict(
            WEBHOOK_LIMIT,
            format!("a tenant has at most {MAX_ENDPOINTS} webhook endpoints: delete one first"),
        ));
    }
    ctx.audit(
        "webhook.endpoint.created.v1",
        &subject(tenant, id),
        json!({
            "url": input.url,
            "event_types": input.event_types,
            "enabled": input.enabled,
        }),
    )?;
    let since = chain_head(ctx, tenant)?;
    let now = to_micros(ctx.now);
    let rec = EndpointV1 {
        url: input.url.clone(),
        description: input.description.clone(),
        event_types: input.event_types.clone(),
        enabled: input.enabled,
        disabled_reason: None,
        secret: secret.sealed.clone(),
        secret_hint: secret.hint.clone(),
        previous_secret: None,
        previous_valid_until: None,
        since_seq: since,
        created_at: now,
        updated_at: now,
        rotated_at: None,
    };
    save(ctx, tenant, id, &rec)?;
    if ctx
        .get(CURSORS, &Key::new().uuid(tenant).into_bytes())?
        .is_none()
    {
        ctx.put_record(
            CURSORS,
            &Key::new().uuid(tenant).into_bytes(),
            &CursorRecord::V1 { seq: since },
        )?;
    }
    Ok(rec.view(*tenant, *id))
}

/// Changes an endpoint (`webhook.endpoint.updated.v1` with the changed fields). Enabling it
/// clears the platform's reason for disabling it.
///
/// Errors: 404; 409 `tenant_read_only`.
pub fn update(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    id: &Uuid,
    patch: &PatchInput,
) -> Result<Endpoint> {
    crate::tenants::queries::get(ctx, tenant)?.ensure_writable()?;
    let mut rec = load(ctx, tenant, id)?;
    let mut changed = serde_json::Map::new();
    if let Some(u) = &patch.url
        && *u != rec.url
    {
        changed.insert("url".into(), json!(u));
        rec.url = u.clone();
    }
    if let Some(d) = &patch.description
        && *d != rec.description
    {
        changed.insert("description".into(), json!(d));
        rec.description = d.clone();
    }
    if let Some(t) = &patch.event_types
        && *t != rec.event_types
    {
        changed.insert("event_types".into(), json!(t));
        rec.event_types = t.clone();
    }
    if let Some(e) = patch.enabled
        && e != rec.enabled
    {
        changed.insert("enabled".into(), json!(e));
        rec.enabled = e;
        if e {
            rec.disabled_reason = None;
        }
    }
    if changed.is_empty() {
        return Ok(rec.view(*tenant, *id));
    }
    rec.updated_at = to_micros(ctx.now);
    ctx.audit(
        "webhook.endpoint.updated.v1",
        &subject(tenant, id),
        json!({ "changed": changed }),
    )?;
    save(ctx, tenant, id, &rec)?;
    Ok(rec.view(*tenant, *id))
}

/// Deletes an endpoint with its attempts (`webhook.endpoint.deleted.v1`). Its pending
/// deliveries are dropped when their turn comes; its DLQ entries age out.
///
/// Errors: 404; 409 `tenant_read_only`.
pub fn delete(ctx: &mut WriteCtx<'_>, tenant: &Uuid, id: &Uuid) -> Result<()> {
    crate::tenants::queries::get(ctx, tenant)?.ensure_writable()?;
    let rec = load(ctx, tenant, id)?;
    ctx.audit(
        "webhook.endpoint.deleted.v1",
        &subject(tenant, id),
        json!({ "url": rec.url }),
    )?;
    ctx.delete(ENDPOINTS, &tenant_key(tenant, id))?;
    ctx.delete_range(
        ATTEMPTS,
        &Range::prefix(Key::new().uuid(tenant).uuid(id).as_bytes()),
    )?;
    Ok(())
}

/// Rotates an endpoint's secret (`webhook.endpoint.secret_rotated.v1`): the new one signs from
/// now, and the old one also signs every delivery for [`ROTATION_OVERLAP`].
///
/// Errors: 404; 409 `tenant_read_only`.
pub fn rotate(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    id: &Uuid,
    secret: &SealedSecret,
) -> Result<Endpoint> {
    crate::tenants::queries::get(ctx, tenant)?.ensure_writable()?;
    let mut rec = load(ctx, tenant, id)?;
    let until = ctx.now + ROTATION_OVERLAP;
    ctx.audit(
        "webhook.endpoint.secret_rotated.v1",
        &subject(tenant, id),
        json!({ "previous_valid_until": crate::clock::rfc3339_micros(until) }),
    )?;
    rec.previous_secret = Some(std::mem::replace(&mut rec.secret, secret.sealed.clone()));
    rec.previous_valid_until = Some(to_micros(until));
    rec.secret_hint = secret.hint.clone();
    rec.rotated_at = Some(to_micros(ctx.now));
    rec.updated_at = to_micros(ctx.now);
    save(ctx, tenant, id, &rec)?;
    Ok(rec.view(*tenant, *id))
}

fn new_delivery(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    endpoint: &Uuid,
    event_type: &str,
    payload: Vec<u8>,
) -> Result<Delivery> {
    let id = crate::ids::new_id(ctx.now);
    let now = to_micros(ctx.now);
    let rec = DeliveryV1 {
        endpoint_id: *endpoint.as_bytes(),
        event_type: event_type.to_string(),
        msg_id: msg_id(&id),
        payload,
        state: DeliveryState::Pending,
        attempts: 0,
        created_at: now,
        next_attempt_at: Some(now),
        dead_at: None,
        last_status: None,
        last_error: None,
        replays: 0,
        single_try: false,
    };
    ctx.put_record(
        DELIVERIES,
        &tenant_key(tenant, &id),
        &DeliveryRecord::V1(rec.clone()),
    )?;
    ctx.put(DUE, &due_key(now, tenant, endpoint, &id), &[])?;
    ctx.put(DELIVERY_TENANTS, id.as_bytes(), tenant.as_bytes())?;
    Ok(rec.view(*tenant, id))
}

/// Makes a delivery of `event_type` with `payload` to an endpoint, due now (the demo's
/// history; the dispatcher and `test` make theirs the same way).
///
/// Errors: 404 unknown endpoint.
pub fn enqueue(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    endpoint: &Uuid,
    event_type: &str,
    payload: Vec<u8>,
) -> Result<Delivery> {
    load(ctx, tenant, endpoint)?;
    new_delivery(ctx, tenant, endpoint, event_type, payload)
}

/// The body of a delivery: `{"type", "timestamp", "data"}` (Standard Webhooks).
pub fn payload(event_type: &str, timestamp: &str, data: serde_json::Value) -> Result<Vec<u8>> {
    serde_json::to_vec(&json!({
        "type": event_type,
        "timestamp": timestamp,
        "data": data,
    }))
    .map_err(|e| Error::Internal(format!("webhook payload: {e}")))
}

/// Sends a test event to an endpoint (`webhook.endpoint.tested.v1`): a delivery of
/// [`TEST_EVENT`] made now, tried at once.
///
/// Errors: 404; 409 `webhook_disabled`.
pub fn test(ctx: &mut WriteCtx<'_>, tenant: &Uuid, id: &Uuid) -> Result<Delivery> {
    crate::tenants::queries::get(ctx, tenant)?;
    let rec = load(ctx, tenant, id)?;
    if !rec.enabled {
        return Err(Error::conflict(
            WEBHOOK_DISABLED,
            format!("webhook endpoint {id} is disabled: enable it first"),
        ));
    }
    let ts = crate::clock::rfc3339_micros(ctx.now);
    let body = payload(
        TEST_EVENT,
        &ts,
        json!({"tenant_id": tenant.to_string(), "endpoint_id": id.to_string(), "message": "This is a test delivery from Tenantry."}),
    )?;
    ctx.audit(
        "webhook.endpoint.tested.v1",
        &subject(tenant, id),
        json!({}),
    )?;
    let d = new_delivery(ctx, tenant, id, TEST_EVENT, body)?;
    ctx.touch(Topic::Other(WEBHOOKS_TOPIC));
    Ok(d)
}

fn cursors(r: &impl Reader) -> Result<Vec<(Uuid, u64)>> {
    let mut out: Vec<(Uuid, u64)> = Vec::new();
    let mut bad = None;
    r.scan(CURSORS, &Range::all(), Dir::Asc, &mut |k, v| {
        match (
            KeyReader::new(k).uuid(),
            crate::store::codec::decode::<CursorRecord>(CURSORS.name(), v),
        ) {
            (Some(t), Ok(CursorRecord::V1 { seq })) => out.push((t, seq)),
            (_, Err(e)) => bad = Some(e),
            (None, _) => {}
        }
        Ok(ControlFlow::Continue(()))
    })?;
    match bad {
        Some(e) => Err(e.into()),
        None => Ok(out),
    }
}

/// Is some tenant's chain ahead of its dispatcher cursor?
pub fn behind(r: &crate::store::ReadCtx) -> Result<bool> {
    for (tenant, seq) in cursors(r)? {
        if chain_head(r, &tenant)? > seq {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What one dispatcher write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Ledger entries matched.
    pub entries: u64,
    /// Deliveries made.
    pub deliveries: u64,
    /// Whether entries remain behind a cursor (the batch was full).
    pub more: bool,
}

/// The dispatcher's write: for every tenant with a cursor, reads the tenant chain's entries
/// after it, makes a delivery for each endpoint that subscribes to the entry's action, and moves
/// the cursor, all in this one write. So an entry is matched exactly once: a crash before the
/// commit leaves the cursor where it was and no delivery; after it, both.
pub fn dispatch(ctx: &mut WriteCtx<'_>, budget: usize) -> Result<Dispatched> {
    let cursors = cursors(ctx)?;
    let mut out = Dispatched::default();
    let mut left = budget;
    for (tenant, seq) in cursors {
        let head = chain_head(ctx, &tenant)?;
        if head <= seq {
            continue;
        }
        if left == 0 {
            out.more = true;
            break;
        }
        let endpoints = endpoints_of(ctx, &tenant)?;
        let chain = ChainId::Tenant(tenant);
        let last = head.min(seq + left as u64);
        for s in (seq + 1)..=last {
            left -= 1;
            out.entries += 1;
            let Some(entry) = crate::audit::ledger::read_entry(ctx, &chain, s)? else {
                continue;
            };
            let mut body: Option<Vec<u8>> = None;
            for (eid, ep) in &endpoints {
                if s <= ep.since_seq || !ep.wants(&entry.action) {
                    continue;
                }
                let bytes = match &body {
                    Some(b) => b.clone(),
                    None => {
                        let b = payload(
                            &entry.action,
                            &entry.ts,
                            json!({
                                "tenant_id": entry.tenant_id,
                                "chain": entry.chain,
                                "seq": entry.seq,
                                "actor": entry.actor,
                                "target": entry.target,
                                "hash": entry.hash,
                                "details": entry.data,
                            }),
                        )?;
                        body = Some(b.clone());
                        b
                    }
                };
                new_delivery(ctx, &tenant, eid, &entry.action, bytes)?;
                out.deliveries += 1;
            }
        }
        ctx.put_record(
            CURSORS,
            &Key::new().uuid(&tenant).into_bytes(),
            &CursorRecord::V1 { seq: last },
        )?;
        if last < head {
            out.more = true;
        }
    }
    Ok(out)
}

/// The result of one try, as the delivery loop saw it.
#[derive(Clone, Debug)]
pub struct TryResult {
    /// When it started.
    pub at: DateTime<Utc>,
    /// How it ended.
    pub outcome: Outcome,
    /// The HTTP status, when one came.
    pub status: Option<u16>,
    /// Milliseconds until the answer or the failure.
    pub latency_ms: u32,
    /// What went wrong.
    pub error: Option<String>,
    /// No further try is worth it (the endpoint is disabled): straight to the DLQ.
    pub last: bool,
    /// Randomness for the jitter.
    pub random: u64,
}

/// The stored delivery `id` of `tenant`, if it exists.
pub fn load_delivery(r: &impl Reader, tenant: &Uuid, id: &Uuid) -> Result<Option<DeliveryV1>> {
    Ok(
        r.get_record::<DeliveryRecord>(DELIVERIES, &tenant_key(tenant, id))?
            .map(|DeliveryRecord::V1(d)| d),
    )
}

fn put_dead(ctx: &mut WriteCtx<'_>, tenant: &Uuid, id: &Uuid, rec: &mut DeliveryV1) -> Result<()> {
    let now = to_micros(ctx.now);
    rec.state = DeliveryState::Dead;
    rec.dead_at = Some(now);
    rec.next_attempt_at = None;
    for k in dlq_keys(now, tenant, id) {
        ctx.put(DLQ, &k, &[])?;
    }
    Ok(())
}

/// Records a try of delivery `id` and what follows: a 2xx deletes the delivery; 410 Gone also
/// disables the endpoint (`webhook.endpoint.disabled.v1`, by the system); any other failure
/// schedules the next try on [`RETRY_SCHEDULE`] with jitter, or after the last one (or a
/// replay's single try) puts the delivery in the DLQ.
///
/// Errors: storage errors only (a delivery deleted meanwhile is ignored).
pub fn record_try(ctx: &mut WriteCtx<'_>, tenant: &Uuid, id: &Uuid, r: &TryResult) -> Result<()> {
    let Some(mut rec) = load_delivery(ctx, tenant, id)? else {
        return Ok(());
    };
    if rec.state != DeliveryState::Pending {
        return Ok(());
    }
    let endpoint = Uuid::from_bytes(rec.endpoint_id);
    if let Some(next) = rec.next_attempt_at {
        ctx.delete(DUE, &due_key(next, tenant, &endpoint, id))?;
    }
    rec.attempts = rec.attempts.saturating_add(1);
    rec.last_status = r.status;
    rec.last_error = r.error.clone();
    let key = tenant_key(tenant, id);
    let mut next_at = None;
    let mut dead = false;
    if r.outcome == Outcome::Succeeded {
        ctx.delete(DELIVERIES, &key)?;
        ctx.delete(DELIVERY_TENANTS, id.as_bytes())?;
    } else {
        if r.status == Some(410)
            && let Ok(mut ep) = load(ctx, tenant, &endpoint)
            && ep.enabled
        {
            ep.enabled = false;
            ep.disabled_reason = Some(format!(
                "the endpoint answered 410 Gone at {}",
                crate::clock::rfc3339_micros(ctx.now)
            ));
            ep.updated_at = to_micros(ctx.now);
            ctx.audit(
                "webhook.endpoint.disabled.v1",
                &subject(tenant, &endpoint),
                json!({"reason": "410 Gone", "msg_id": rec.msg_id}),
            )?;
            save(ctx, tenant, &endpoint, &ep)?;
        }
        let delay = if r.last || rec.single_try || r.status == Some(410) {
            None
        } else {
            retry_delay(rec.attempts, r.random)
        };
        match delay {
            Some(d) => {
                let at = to_micros(ctx.now + d);
                rec.next_attempt_at = Some(at);
                ctx.put(DUE, &due_key(at, tenant, &endpoint, id), &[])?;
                next_at = Some(at);
            }
            None => {
                put_dead(ctx, tenant, id, &mut rec)?;
                dead = true;
            }
        }
        rec.single_try = false;
        ctx.put_record(DELIVERIES, &key, &DeliveryRecord::V1(rec.clone()))?;
    }
    ctx.put_record(
        ATTEMPTS,
        &attempt_key(tenant, &endpoint, to_micros(r.at), id, rec.attempts),
        &AttemptRecord::V1(AttemptV1 {
            msg_id: rec.msg_id.clone(),
            event_type: rec.event_type.clone(),
            outcome: r.outcome,
            status: r.status,
            latency_ms: r.latency_ms,
            error: r.error.clone(),
            next_attempt_at: next_at,
            dead_lettered: dead,
        }),
    )?;
    Ok(())
}

/// Drops a pending delivery whose endpoint is gone.
pub fn drop_delivery(ctx: &mut WriteCtx<'_>, tenant: &Uuid, id: &Uuid) -> Result<()> {
    if let Some(rec) = load_delivery(ctx, tenant, id)? {
        if let Some(next) = rec.next_attempt_at {
            let endpoint = Uuid::from_bytes(rec.endpoint_id);
            ctx.delete(DUE, &due_key(next, tenant, &endpoint, id))?;
        }
        if let Some(dead) = rec.dead_at {
            for k in dlq_keys(dead, tenant, id) {
                ctx.delete(DLQ, &k)?;
            }
        }
        ctx.delete(DELIVERIES, &tenant_key(tenant, id))?;
        ctx.delete(DELIVERY_TENANTS, id.as_bytes())?;
    }
    Ok(())
}

/// The tenant holding delivery `id`, if it is stored.
pub fn tenant_of_delivery(r: &impl Reader, id: &Uuid) -> Result<Option<Uuid>> {
    Ok(r.get(DELIVERY_TENANTS, id.as_bytes())?
        .and_then(|b| Uuid::from_slice(&b).ok()))
}

fn requeue(ctx: &mut WriteCtx<'_>, tenant: &Uuid, id: &Uuid, rec: &mut DeliveryV1) -> Result<()> {
    if let Some(dead) = rec.dead_at {
        for k in dlq_keys(dead, tenant, id) {
            ctx.delete(DLQ, &k)?;
        }
    }
    let now = to_micros(ctx.now);
    rec.state = DeliveryState::Pending;
    rec.dead_at = None;
    rec.next_attempt_at = Some(now);
    rec.single_try = true;
    rec.replays = rec.replays.saturating_add(1);
    ctx.put(
        DUE,
        &due_key(now, tenant, &Uuid::from_bytes(rec.endpoint_id), id),
        &[],
    )?;
    ctx.put_record(
        DELIVERIES,
        &tenant_key(tenant, id),
        &DeliveryRecord::V1(rec.clone()),
    )?;
    Ok(())
}

fn enabled_endpoint(r: &impl Reader, tenant: &Uuid, endpoint: &Uuid) -> Result<EndpointV1> {
    let ep = load(r, tenant, endpoint).map_err(|_| {
        Error::conflict(
            WEBHOOK_DELETED,
            format!("webhook endpoint {endpoint} was deleted: its deliveries cannot be replayed"),
        )
    })?;
    if !ep.enabled {
        return Err(Error::conflict(
            WEBHOOK_DISABLED,
            format!("webhook endpoint {endpoint} is disabled: enable it, then replay"),
        ));
    }
    Ok(ep)
}

/// Replays a dead-lettered delivery (`webhook.delivery.replayed.v1`): one try now, with the
/// same `webhook-id` and body and a fresh timestamp and signature; if it fails it goes back to
/// the DLQ.
///
/// Errors: 404; 409 `delivery_not_dead`, `webhook_deleted`, `webhook_disabled`.
pub fn replay(ctx: &mut WriteCtx<'_>, tenant: &Uuid, id: &Uuid) -> Result<Delivery> {
    let mut rec = load_delivery(ctx, tenant, id)?
        .ok_or_else(|| Error::not_found("webhook delivery", id.to_string()))?;
    if rec.state != DeliveryState::Dead {
        return Err(Error::conflict(
            DELIVERY_NOT_DEAD,
            format!(
                "delivery {id} is not in the DLQ (it is {})",
                rec.state.as_str()
            ),
        ));
    }
    let endpoint = Uuid::from_bytes(rec.endpoint_id);
    enabled_endpoint(ctx, tenant, &endpoint)?;
    ctx.audit(
        "webhook.delivery.replayed.v1",
        &Subject::in_tenant(*tenant, "webhook_delivery", id),
        json!({"endpoint_id": endpoint.to_string(), "msg_id": rec.msg_id, "event_type": rec.event_type}),
    )?;
    requeue(ctx, tenant, id, &mut rec)?;
    ctx.touch(Topic::Other(WEBHOOKS_TOPIC));
    Ok(rec.view(*tenant, *id))
}

/// Replays up to [`MAX_BULK_REPLAY`] dead-lettered deliveries of one endpoint, oldest first
/// (`webhook.dlq.replayed.v1` with the count): after an outage is over.
///
/// Errors: 404 unknown endpoint; 409 `webhook_disabled`.
pub fn replay_endpoint(ctx: &mut WriteCtx<'_>, tenant: &Uuid, endpoint: &Uuid) -> Result<u64> {
    load(ctx, tenant, endpoint)?;
    enabled_endpoint(ctx, tenant, endpoint)?;
    let mut ids: Vec<Uuid> = Vec::new();
    let mut examined = 0usize;
    ctx.scan(
        DLQ,
        &Range::prefix(Key::new().u8(DLQ_TENANT).uuid(tenant).as_bytes()),
        Dir::Asc,
        &mut |k, _| {
            examined += 1;
            let mut kr = KeyReader::new(k);
            let (_, _, _) = (kr.u8(), kr.uuid(), kr.i64());
            if let Some(d) = kr.uuid() {
                ids.push(d);
            }
            Ok(if examined >= 20 * MAX_BULK_REPLAY {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        },
    )?;
    let mut n = 0u64;
    for id in ids {
        if n as usize >= MAX_BULK_REPLAY {
            break;
        }
        if let Some(mut rec) = load_delivery(ctx, tenant, &id)?
            && rec.endpoint_id == *endpoint.as_bytes()
            && rec.state == DeliveryState::Dead
        {
            requeue(ctx, tenant, &id, &mut rec)?;
            n += 1;
        }
    }
    if n > 0 {
        ctx.audit(
            "webhook.dlq.replayed.v1",
            &subject(tenant, endpoint),
            json!({"count": n}),
        )?;
        ctx.touch(Topic::Other(WEBHOOKS_TOPIC));
    }
    Ok(n)
}

/// Most DLQ entries one prune deletes (the job runs daily; the rest go next time).
pub const PRUNE_BUDGET: usize = 10_000;

/// Deletes DLQ entries that died before `cutoff` and attempts made before it
/// (`webhook.dlq.pruned.v1` on the platform chain when anything went). Returns (DLQ entries,
/// attempts) deleted.
pub fn prune(ctx: &mut WriteCtx<'_>, cutoff: DateTime<Utc>) -> Result<(u64, u64)> {
    let cut = to_micros(cutoff);
    let mut dead: Vec<(Uuid, Uuid)> = Vec::new();
    ctx.scan(
        DLQ,
        &Range::prefix(&[DLQ_ALL]).until(Key::new().u8(DLQ_ALL).i64(cut).as_bytes()),
        Dir::Asc,
        &mut |k, _| {
            let mut kr = KeyReader::new(k);
            let (_, _) = (kr.u8(), kr.i64());
            if let (Some(t), Some(d)) = (kr.uuid(), kr.uuid()) {
                dead.push((t, d));
            }
            Ok(if dead.len() >= PRUNE_BUDGET {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        },
    )?;
    let n = dead.len() as u64;
    for (t, d) in &dead {
        drop_delivery(ctx, t, d)?;
    }
    let mut eps: Vec<(Uuid, Uuid)> = Vec::new();
    ctx.scan(ENDPOINTS, &Range::all(), Dir::Asc, &mut |k, _| {
        let mut kr = KeyReader::new(k);
        if let (Some(t), Some(e)) = (kr.uuid(), kr.uuid()) {
            eps.push((t, e));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    let mut attempts = 0u64;
    for (t, e) in eps {
        let lo = Key::new().uuid(&t).uuid(&e).into_bytes();
        let hi = Key::new().uuid(&t).uuid(&e).i64(cut).into_bytes();
        attempts += ctx.delete_range(ATTEMPTS, &Range::between(lo, hi))?;
    }
    if n > 0 || attempts > 0 {
        ctx.audit(
            "webhook.dlq.pruned.v1",
            &Subject::platform("webhooks", "dlq"),
            json!({"dlq_entries": n, "attempts": attempts, "before": crate::clock::rfc3339_micros(cutoff)}),
        )?;
    }
    Ok((n, attempts))
}

/// The shred hook: deletes every webhook record of `tenant` (endpoints, deliveries with their
/// schedule and DLQ keys, attempts, the cursor).
pub fn shred(ctx: &mut WriteCtx<'_>, tenant: &Uuid) -> Result<u64> {
    let prefix = Key::new().uuid(tenant).into_bytes();
    let mut ids = Vec::new();
    ctx.scan(
        DELIVERIES,
        &Range::prefix(&prefix),
        Dir::Asc,
        &mut |k, _| {
            let mut kr = KeyReader::new(k);
            let _ = kr.uuid();
            if let Some(d) = kr.uuid() {
                ids.push(d);
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    let mut n = ids.len() as u64;
    for d in ids {
        drop_delivery(ctx, tenant, &d)?;
    }
    n += ctx.delete_range(ENDPOINTS, &Range::prefix(&prefix))?;
    n += ctx.delete_range(ATTEMPTS, &Range::prefix(&prefix))?;
    if ctx.delete(CURSORS, &prefix)? {
        n += 1;
    }
    Ok(n)
}
