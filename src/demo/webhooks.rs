//! The demo's webhooks: two endpoints on the first tenants, a history of delivered events
//! (attempts with believable latencies, one retried after a 502) and one delivery in the DLQ
//! after its endpoint was down through every retry. Written through the real services at
//! replayed times.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::webhooks::model::{Outcome, RETRY_SCHEDULE};
use crate::webhooks::service::{self, EndpointDraft, SealedSecret, TryResult};

/// Seeds the endpoints of demo tenant number `n` (`domain` is its email domain).
pub async fn seed(
    state: &AppState,
    end: DateTime<Utc>,
    tenant: Uuid,
    domain: &str,
    n: usize,
) -> Result<()> {
    let actor = Actor::system("demo");
    let events: Vec<String> = [
        "persona.created.v1",
        "persona.activated.v1",
        "api_key.issued.v1",
        "api_key.rotated.v1",
        "invoice.finalized.v1",
        "webhook.test.v1",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    let catalogue = events.clone();
    let endpoints = [
        (
            format!("https://hooks.{domain}/tenantry/events"),
            "Provisioning sync: members and keys into our IdP",
        ),
        (
            format!("https://erp.{domain}/api/webhooks/billing"),
            "ERP: invoices",
        ),
    ];
    for (k, (url, description)) in endpoints.iter().enumerate() {
        let made_at = end - Duration::days(20) + Duration::hours(k as i64);
        let id = crate::ids::new_id(made_at);
        let bytes = crate::webhooks::signing::new_secret().map_err(Error::Internal)?;
        let sealed = SealedSecret {
            sealed: state
                .webhooks()
                .sealer()
                .seal(&tenant, &id, &bytes)
                .map_err(Error::Internal)?,
            hint: crate::webhooks::signing::hint(&bytes),
        };
        let input = EndpointDraft {
            url: url.clone(),
            description: Some((*description).to_string()),
            event_types: if k == 0 {
                events[..4].to_vec()
            } else {
                events[4..].to_vec()
            },
            enabled: Some(true),
        }
        .parse(&catalogue, state.webhooks().policy())?;
        state
            .store()
            .write(made_at, actor.clone(), move |ctx| {
                service::create(ctx, &tenant, &id, &input, &sealed)
            })
            .await?;
        // A delivered history: one event every day or two, answered in 80-400 ms; one answered
        // 502 first and delivered on its 5-second retry.
        for day in (1..18).step_by(2 + k) {
            let at = made_at
                + Duration::days(day)
                + Duration::minutes((n * 7 + day as usize * 13) as i64 % 300);
            let event = if k == 0 {
                &events[day as usize % 4]
            } else {
                &events[4]
            };
            let body = service::payload(
                event,
                &crate::clock::rfc3339_micros(at),
                json!({"tenant_id": tenant.to_string(), "demo": true}),
            )?;
            let ev = event.clone();
            let d = state
                .store()
                .write(at, actor.clone(), move |ctx| {
                    service::enqueue(ctx, &tenant, &id, &ev, body.clone())
                })
                .await?;
            let mut tries = vec![(at, 200u16)];
            if day == 7 {
                tries = vec![(at, 502), (at + Duration::seconds(5), 200)];
            }
            for (t_at, status) in tries {
                try_once(state, &actor, tenant, d.id, t_at, Some(status), None).await?;
            }
        }
    }
    // The ERP endpoint was down for two days: one delivery went through every retry to the DLQ.
    let eps = state
        .read(move |r| service::endpoints_of(r, &tenant))
        .await?;
    if let Some((erp, _)) = eps.iter().find(|(_, e)| e.url.contains("://erp.")) {
        let erp = *erp;
        let at = end - Duration::days(3);
        let body = service::payload(
            "invoice.finalized.v1",
            &crate::clock::rfc3339_micros(at),
            json!({"tenant_id": tenant.to_string(), "invoice": "INV-2026-0412", "amount_minor": 129900, "currency": "EUR"}),
        )?;
        let d = state
            .store()
            .write(at, actor.clone(), move |ctx| {
                service::enqueue(ctx, &tenant, &erp, "invoice.finalized.v1", body.clone())
            })
            .await?;
        let mut t = at;
        for (i, delay) in RETRY_SCHEDULE.iter().enumerate() {
            t += Duration::seconds(*delay);
            let (status, error) = if i % 3 == 2 {
                (None, Some("no answer within 10 s".to_string()))
            } else {
                (
                    Some(503u16),
                    Some("the endpoint answered 503 Service Unavailable".to_string()),
                )
            };
            try_once(state, &actor, tenant, d.id, t, status, error).await?;
        }
    }
    Ok(())
}

async fn try_once(
    state: &AppState,
    actor: &Actor,
    tenant: Uuid,
    delivery: Uuid,
    at: DateTime<Utc>,
    status: Option<u16>,
    error: Option<String>,
) -> Result<()> {
    let ok = status.is_some_and(|s| (200..300).contains(&s));
    let latency = 80 + (delivery.as_u128() % 320) as u32;
    let r = TryResult {
        at,
        outcome: if ok {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        },
        status,
        latency_ms: if error.as_deref().is_some_and(|e| e.contains("no answer")) {
            10_000
        } else {
            latency
        },
        error: if ok {
            None
        } else {
            error.or_else(|| status.map(|s| format!("the endpoint answered {s}")))
        },
        last: false,
        random: delivery.as_u128() as u64,
    };
    state
        .store()
        .write(at, actor.clone(), move |ctx| {
            service::record_try(ctx, &tenant, &delivery, &r)
        })
        .await
}
