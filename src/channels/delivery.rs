//! The channels' loop: routes tenant chains into the queue (one write per batch, cursor and
//! messages together), then sends the due messages, at most [`MAX_SENDS`] at once, each send
//! bounded by `[webhooks] timeout_secs` (10 s) or `[smtp] timeout_secs`, and records each try.
//!
//! It looks for work once a second (notifications are not latency-critical, and polling keeps
//! the commit hook to the webhooks alone); due times are read on the app's
//! [`crate::clock::Clock`], so tests move time to reach a retry.

use std::time::Duration;

use tokio::task::JoinSet;
use uuid::Uuid;

use super::model::{ChannelV1, DISPATCH_BATCH, Kind, Message};
use super::service::{self, Due};
use crate::actor::Actor;
use crate::clock::to_micros;
use crate::mail::Mail;
use crate::state::AppState;
use crate::webhooks::delivery::{Clients, describe};

/// Most sends in flight.
pub const MAX_SENDS: usize = 32;
/// How often the loop looks for work.
pub const POLL: Duration = Duration::from_secs(1);

/// Runs until `stop` turns true.
pub async fn run(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let clients = match state.webhooks().clients() {
        Ok(c) => c.clone(),
        Err(e) => {
            tracing::error!(error = %e, "channels: the delivery loop cannot start");
            return;
        }
    };
    loop {
        if *stop.borrow() {
            break;
        }
        route(&state).await;
        send_due(&state, &clients).await;
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => break,
        }
    }
}

/// Routes until the cursors are caught up or the queue is full.
pub async fn route(state: &AppState) {
    for _ in 0..16 {
        match state.read(service::behind).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(error = %e, "channels: cannot read the router's cursors");
                return;
            }
        }
        match state
            .write(Actor::system("channels:router"), |ctx| {
                service::route(ctx, DISPATCH_BATCH)
            })
            .await
        {
            Ok(r) if r.more && r.seen > 0 => {}
            Ok(_) => return,
            Err(e) => {
                tracing::error!(error = %e, "channels: routing failed");
                return;
            }
        }
    }
}

/// Sends the messages due now (up to [`MAX_SENDS`], concurrently) and records each try.
pub async fn send_due(state: &AppState, clients: &Clients) {
    let now = to_micros(state.clock().now());
    let due = match state.read(move |r| service::due(r, now, MAX_SENDS)).await {
        Ok((d, _)) => d,
        Err(e) => {
            tracing::error!(error = %e, "channels: cannot read the queue");
            return;
        }
    };
    let mut set = JoinSet::new();
    for d in due {
        let (st, cl) = (state.clone(), clients.clone());
        set.spawn(async move { one(&st, &cl, d).await });
    }
    while set.join_next().await.is_some() {}
}

async fn one(state: &AppState, clients: &Clients, d: Due) {
    let (tenant, channel) = (d.tenant, d.channel);
    let rec = state
        .read(move |r| service::load(r, tenant, &channel))
        .await
        .ok();
    let written = match rec {
        Some(c) if c.enabled => {
            let error = send(state, clients, tenant, channel, &c, &d.message.message)
                .await
                .err();
            if let Some(e) = &error {
                tracing::warn!(channel = %channel, error = %e, "notification not sent");
            }
            state
                .write(Actor::system("channels"), move |ctx| {
                    service::record_try(ctx, &d, error.clone())
                })
                .await
        }
        // Deleted or disabled: the message is dropped, nothing is sent.
        _ => {
            state
                .write(Actor::system("channels"), move |ctx| {
                    service::drop_message(ctx, &d.key)
                })
                .await
        }
    };
    if let Err(e) = written {
        tracing::error!(error = %e, channel = %channel, "channels: recording a try failed");
    }
}

/// Sends `m` through channel `id` now. Email goes to each recipient over `[smtp]`; the webhook
/// kinds resolve their URL through the SSRF guard (a refused address sends nothing) and POST
/// their body (Slack's, Teams' Adaptive Card message, or the generic kind's signed
/// `{type, timestamp, data}`); any 2xx is success.
///
/// Errors: what went wrong, in one line (it becomes the channel's health).
pub async fn send(
    state: &AppState,
    clients: &Clients,
    tenant: Option<Uuid>,
    id: Uuid,
    c: &ChannelV1,
    m: &Message,
) -> Result<(), String> {
    if c.kind == Kind::Email {
        let mailer = state
            .mailer()
            .ok_or("no [smtp] is configured: an email channel cannot send")?;
        for to in &c.recipients {
            mailer
                .send(Mail {
                    to_name: String::new(),
                    to: to.clone(),
                    subject: format!("[Tenantry] {}", m.title),
                    body: format!(
                        "{}\n\nEvent: {}\nAt: {}\n",
                        m.text, m.event_type, m.timestamp
                    ),
                })
                .await
                .map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    let sealed = c.sealed.as_ref().ok_or("the channel has no url")?;
    let target = super::open(state, tenant, &id, sealed).map_err(|_| {
        "the channel's url does not open with this install's webhook key".to_string()
    })?;
    state.webhooks().policy().resolve(&target.url).await?;
    let body = match c.kind {
        Kind::Slack => m.slack(),
        Kind::Teams => m.teams(),
        _ => m.generic(),
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let mut req = clients
        .for_url(&target.url)
        .post(&target.url)
        .header("content-type", "application/json");
    if let Some(secret) = &target.secret {
        let msg_id = format!("msg_{}", m.id.simple());
        let ts = state.clock().now().timestamp();
        let sig = crate::webhooks::signing::signature_header(&[secret], &msg_id, ts, &bytes);
        req = req
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig);
    }
    match req.body(bytes).send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("the channel's endpoint answered {}", resp.status())),
        Err(e) if e.is_timeout() => Err(format!(
            "no answer within {} s",
            state.config().webhooks.timeout_secs
        )),
        Err(e) => Err(describe(&e)),
    }
}
