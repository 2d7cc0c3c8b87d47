//! The delivery loop: dispatches the ledger's new entries into deliveries (one write per batch,
//! cursor and deliveries together), then sends the due deliveries, each in its own task, and
//! records every try. Like the heartbeat sender it sleeps on the [`crate::clock::Clock`], so
//! tests move time instead of waiting.
//!
//! Bounds: at most `[webhooks] max_in_flight` deliveries at once, and at most `per_endpoint` to
//! one endpoint, so a slow or dead endpoint holds only its own slots and never delays the
//! others. Each try waits at most `timeout_secs` (10 s). A delivery being sent is never started
//! twice. A process killed while a try is in flight sends it again after the restart (its
//! `webhook-id` is the same, so receivers deduplicate: Standard Webhooks is at-least-once).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use tokio::task::JoinSet;
use uuid::Uuid;

use super::model::{DISPATCH_BATCH, DeliveryState, Outcome};
use super::queries::{self, Due};
use super::service::{self, TryResult};
use super::signing::signature_header;
use crate::actor::Actor;
use crate::clock::to_micros;
use crate::state::AppState;

/// Most due rows one scan looks at beyond the free slots (rows of busy endpoints are skipped).
pub const DUE_SCAN_EXTRA: usize = 2_000;
/// Most bytes of an answer read (then the connection is dropped).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The guarded HTTP clients, built once per process (see [`super::runtime::Webhooks::clients`]).
pub use super::guard::Clients;

/// Runs until `stop` turns true.
pub async fn run(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let clients = match state.webhooks().clients() {
        Ok(c) => c.clone(),
        Err(e) => {
            tracing::error!(error = %e, "webhooks: the delivery loop cannot start");
            return;
        }
    };
    let cfg = state.config().webhooks.clone();
    let clock = state.clock().clone();
    let rt = state.webhooks().clone();
    let mut tasks: JoinSet<(Uuid, Uuid)> = JoinSet::new();
    let mut in_flight: HashSet<Uuid> = HashSet::new();
    let mut per_endpoint: HashMap<Uuid, usize> = HashMap::new();
    let reap = |r: Result<(Uuid, Uuid), tokio::task::JoinError>,
                in_flight: &mut HashSet<Uuid>,
                per_endpoint: &mut HashMap<Uuid, usize>| {
        if let Ok((d, e)) = r {
            in_flight.remove(&d);
            if let Some(n) = per_endpoint.get_mut(&e) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_endpoint.remove(&e);
                }
            }
        }
    };
    loop {
        if *stop.borrow() {
            break;
        }
        dispatch(&state).await;
        let now = to_micros(clock.now());
        let mut next_due = None;
        let free = cfg.max_in_flight.saturating_sub(in_flight.len());
        if free > 0 {
            let max = free + in_flight.len() + DUE_SCAN_EXTRA;
            match state.read(move |r| queries::due(r, now, max)).await {
                Ok((due, next)) => {
                    next_due = next;
                    for d in due {
                        if in_flight.len() >= cfg.max_in_flight {
                            break;
                        }
                        let busy = per_endpoint.get(&d.endpoint).copied().unwrap_or(0);
                        if in_flight.contains(&d.delivery) || busy >= cfg.per_endpoint {
                            continue;
                        }
                        in_flight.insert(d.delivery);
                        *per_endpoint.entry(d.endpoint).or_default() += 1;
                        let (st, cl) = (state.clone(), clients.clone());
                        tasks.spawn(async move {
                            deliver(&st, &cl, d).await;
                            (d.delivery, d.endpoint)
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "webhooks: cannot read due deliveries"),
            }
        }
        let sleep_to = next_due.map(crate::clock::from_micros);
        tokio::select! {
            Some(r) = tasks.join_next(), if !tasks.is_empty() => {
                reap(r, &mut in_flight, &mut per_endpoint);
                while let Some(r) = tasks.try_join_next() {
                    reap(r, &mut in_flight, &mut per_endpoint);
                }
            }
            _ = rt.woken() => {}
            _ = async {
                match sleep_to {
                    Some(t) => clock.sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {}
            _ = stop.changed() => break,
        }
    }
    // A try cut short here is sent again after the restart (same webhook-id).
    tasks.shutdown().await;
}

/// Dispatches until the cursors are caught up (a read first, so a commit on a tenant without
/// webhooks costs no write).
pub async fn dispatch(state: &AppState) {
    loop {
        match state.read(service::behind).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(error = %e, "webhooks: cannot read the dispatcher's cursors");
                return;
            }
        }
        match state
            .write(Actor::system("webhooks:dispatcher"), |ctx| {
                service::dispatch(ctx, DISPATCH_BATCH)
            })
            .await
        {
            Ok(d) => {
                if d.deliveries > 0 {
                    tracing::debug!(
                        entries = d.entries,
                        deliveries = d.deliveries,
                        "webhooks dispatched"
                    );
                }
                if !d.more {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "webhooks: dispatching failed");
                return;
            }
        }
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

/// Tries one delivery and records the try.
async fn deliver(state: &AppState, clients: &Clients, due: Due) {
    let (tenant, id) = (due.tenant, due.delivery);
    let found = match state
        .read(move |r| queries::for_sending(r, &tenant, &id))
        .await
    {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, delivery = %id, "webhooks: cannot read a delivery");
            return;
        }
    };
    let Some((d, ep)) = found else { return };
    if d.state != DeliveryState::Pending {
        return;
    }
    let at = state.clock().now();
    let Some(ep) = ep else {
        record(state, tenant, id, None).await;
        return;
    };
    let mut result = TryResult {
        at,
        outcome: Outcome::Refused,
        status: None,
        latency_ms: 0,
        error: None,
        last: false,
        random: random_u64(),
    };
    if !ep.enabled {
        result.error = Some("the endpoint is disabled: nothing was sent".into());
        result.last = true;
        record(state, tenant, id, Some(result)).await;
        return;
    }
    let sealer = state.webhooks().sealer();
    let endpoint = Uuid::from_bytes(d.endpoint_id);
    let mut keys = Vec::new();
    match sealer.open(&tenant, &endpoint, &ep.secret) {
        Ok(k) => keys.push(k),
        Err(e) => {
            tracing::error!(error = %e, "webhooks: cannot open an endpoint's secret");
            result.error = Some("the signing secret could not be opened on this install".into());
            record(state, tenant, id, Some(result)).await;
            return;
        }
    }
    if let (Some(prev), Some(until)) = (&ep.previous_secret, ep.previous_valid_until)
        && to_micros(at) < until
        && let Ok(k) = sealer.open(&tenant, &endpoint, prev)
    {
        keys.push(k);
    }
    let started = Instant::now();
    if let Err(why) = state.webhooks().policy().resolve(&ep.url).await {
        tracing::warn!(tenant = %tenant, endpoint = %endpoint, url = %ep.url, reason = %why, "webhook delivery refused by the SSRF guard");
        result.error = Some(why);
        result.latency_ms = elapsed_ms(started);
        record(state, tenant, id, Some(result)).await;
        return;
    }
    let ts = at.timestamp();
    let key_refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let signature = signature_header(&key_refs, &d.msg_id, ts, &d.payload);
    let client = clients.for_url(&ep.url);
    let sent = client
        .post(&ep.url)
        .header("content-type", "application/json")
        .header("webhook-id", &d.msg_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(d.payload.clone())
        .send()
        .await;
    match sent {
        Ok(mut resp) => {
            let status = resp.status();
            let mut read = 0usize;
            while read < MAX_ANSWER_BYTES {
                match resp.chunk().await {
                    Ok(Some(c)) => read += c.len(),
                    _ => break,
                }
            }
            result.status = Some(status.as_u16());
            if status.is_success() {
                result.outcome = Outcome::Succeeded;
            } else {
                result.outcome = Outcome::Failed;
                result.error = Some(format!("the endpoint answered {status}"));
            }
        }
        Err(e) => {
            result.outcome = Outcome::Failed;
            result.error = Some(if e.is_timeout() {
                format!(
                    "no answer within {} s",
                    state.config().webhooks.timeout_secs
                )
            } else {
                describe(&e)
            });
        }
    }
    result.latency_ms = elapsed_ms(started);
    record(state, tenant, id, Some(result)).await;
}

fn elapsed_ms(started: Instant) -> u32 {
    u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX)
}

/// An error and its causes, in one line (reqwest's own message hides the cause).
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s.chars().take(500).collect()
}

async fn record(state: &AppState, tenant: Uuid, id: Uuid, r: Option<TryResult>) {
    let written = state
        .write(Actor::system("webhooks"), move |ctx| match &r {
            Some(r) => service::record_try(ctx, &tenant, &id, r),
            None => service::drop_delivery(ctx, &tenant, &id),
        })
        .await;
    if let Err(e) = written {
        tracing::error!(error = %e, delivery = %id, "webhooks: recording a try failed");
    }
}
