//! The demo's notification channels: a platform email channel for job failures and silent
//! installs whose last alert went out, and the first tenant's Slack channel for finalized
//! invoices whose last send failed ("connection refused": the red dot, and Reconnect to try).
//! Written through the real services at replayed times; nothing leaves the machine.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::actor::Actor;
use crate::channels::model::{JOB_FAILED, Kind, Target, mask_url};
use crate::channels::service::{self, ChannelInput};
use crate::error::Result;
use crate::state::AppState;

/// Seeds the platform's channel and `tenant`'s (its email `domain`).
pub async fn seed(state: &AppState, end: DateTime<Utc>, tenant: Uuid, domain: &str) -> Result<()> {
    let actor = Actor::system("demo");
    let made = end - Duration::days(14);
    let email = crate::ids::new_id(made);
    let input = ChannelInput {
        name: "On-call (email)".into(),
        kind: Kind::Email,
        recipients: vec!["oncall@tenantry.example".into()],
        sealed: None,
        url_hint: None,
        event_types: vec![JOB_FAILED.into(), "install.silent.v1".into()],
        enabled: true,
    };
    state
        .store()
        .write(made, actor.clone(), move |ctx| {
            service::create(ctx, None, &email, &input)
        })
        .await?;
    state
        .store()
        .write(end - Duration::days(2), actor.clone(), move |ctx| {
            service::record_delivery(ctx, None, &email, JOB_FAILED, None)
        })
        .await?;

    let slack = crate::ids::new_id(made + Duration::hours(1));
    let url = format!(
        "https://hooks.slack.com/services/T0{}/B0FINANCE/demo",
        domain.len()
    );
    let sealed = crate::channels::seal(
        state,
        Some(tenant),
        &slack,
        &Target {
            url: url.clone(),
            secret: None,
        },
    )?;
    let input = ChannelInput {
        name: "#finance".into(),
        kind: Kind::Slack,
        recipients: vec![],
        sealed: Some(sealed),
        url_hint: Some(mask_url(&url)),
        event_types: vec!["invoice.finalized.v1".into()],
        enabled: true,
    };
    state
        .store()
        .write(made + Duration::hours(1), actor.clone(), move |ctx| {
            service::create(ctx, Some(tenant), &slack, &input)
        })
        .await?;
    for (days, error) in [
        (9, None),
        (4, None),
        (
            1,
            Some(
                "error sending request for url (https://hooks.slack.com/…): client error (Connect): tcp connect error: Connection refused (os error 111)",
            ),
        ),
    ] {
        let error = error.map(str::to_string);
        state
            .store()
            .write(end - Duration::days(days), actor.clone(), move |ctx| {
                service::record_delivery(
                    ctx,
                    Some(tenant),
                    &slack,
                    "invoice.finalized.v1",
                    error.clone(),
                )
            })
            .await?;
    }
    Ok(())
}
