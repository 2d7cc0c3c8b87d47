//! The demo's approvals: the platform's routes (two-person offboarding, large exports, plan
//! downgrades), the first tenant's own route on API key issue, and requests in each state an
//! operator meets: one rejected last week, one pending for today's decision, and one that
//! breached its SLA overnight (on the Breaches page). Written through the real services at
//! replayed times.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::actor::Actor;
use crate::approvals::model::Decider;
use crate::approvals::service::{self, Guarded, Requester, RouteDraft};
use crate::error::{Error, Result};
use crate::rbac::Role;
use crate::state::AppState;
use crate::tenants::model::{Action, State as TenantState};
use crate::tenants::service::TransitionInput;

fn draft(
    name: &str,
    action: &str,
    condition: Option<&str>,
    approvers: &[&str],
    sla: i64,
) -> RouteDraft {
    RouteDraft {
        name: name.into(),
        action: action.into(),
        condition: condition.map(String::from),
        approvers: approvers.iter().map(|s| s.to_string()).collect(),
        required: Some(1),
        sla_hours: Some(sla),
        escalation: Some("role:super_admin".into()),
        enabled: Some(true),
    }
}

/// Seeds the routes and requests; `ops` are the demo operators `(id, username, role)`.
pub async fn seed(
    state: &AppState,
    end: DateTime<Utc>,
    ops: &[(Uuid, &'static str, Role)],
    tenants: &[Uuid],
) -> Result<()> {
    let op = |role: Role| {
        ops.iter()
            .find(|o| o.2 == role)
            .copied()
            .ok_or_else(|| Error::Internal(format!("no demo {}", role.as_str())))
    };
    let (alice_id, alice, _) = op(Role::SuperAdmin)?;
    let (bashir_id, bashir, _) = op(Role::BusinessAdmin)?;
    let approvables = state.tenant_hooks().approvables.clone();
    let routes = [
        (
            None,
            draft(
                "Two-person offboarding",
                "tenant.offboard",
                None,
                &["role:business_admin", "role:super_admin"],
                24,
            ),
        ),
        (
            None,
            draft(
                "Large data exports",
                "tenant.export",
                Some("size_bytes > 1 GB"),
                &["role:super_admin", "role:compliance"],
                24,
            ),
        ),
        (
            None,
            draft(
                "Plan downgrades",
                "plan.downgrade",
                Some("price_drop_minor > 0"),
                &["role:super_admin"],
                48,
            ),
        ),
        (
            tenants.first().copied(),
            draft(
                "Keys need a second admin",
                "api_key.issue",
                None,
                &["role:tenant_admin"],
                24,
            ),
        ),
    ];
    for (tenant, d) in routes {
        let ap = approvables.clone();
        state
            .store()
            .write(
                end - Duration::days(20),
                Actor::operator(alice),
                move |ctx| {
                    let now = crate::clock::to_micros(ctx.now);
                    let r = d.clone().parse(ctx, &ap, tenant.as_ref(), now)?;
                    service::create_route(ctx, tenant.as_ref(), r)
                },
            )
            .await?;
    }
    // Three active tenants get an offboarding request each, at different times.
    let mut active = Vec::new();
    for t in tenants.iter().skip(1) {
        let id = *t;
        let rec = state
            .read(move |r| crate::tenants::queries::get(r, &id))
            .await?;
        if rec.state == TenantState::Active {
            active.push(rec);
        }
        if active.len() == 3 {
            break;
        }
    }
    let who = Requester {
        actor: Actor::operator(bashir),
        person: format!("operator:{bashir_id}"),
        tenant: None,
    };
    let reasons = [
        (Duration::days(6), "Contract not renewed (ticket OPS-1182)"),
        (Duration::hours(30), "Customer asked to close the account"),
        (
            Duration::hours(3),
            "Duplicate tenant created by the reseller",
        ),
    ];
    let mut ids = Vec::new();
    for (t, (ago, reason)) in active.iter().zip(reasons) {
        let input = TransitionInput {
            reason: Some(reason.into()),
            grace_days: Some(30),
            trial_days: None,
        };
        let (held, facts) = crate::tenants::guarded::offboard_held(t, &input)?;
        let (w, id) = (who.clone(), t.id);
        let g = state
            .store()
            .write(end - ago, who.actor.clone(), move |ctx| {
                service::guard(
                    ctx,
                    held.clone(),
                    facts.clone(),
                    &w,
                    |_| Ok(()),
                    |ctx| crate::tenants::service::transition(ctx, id, Action::Offboard, &input),
                )
            })
            .await?;
        if let Guarded::Held(req) = g {
            ids.push(req.id);
        }
    }
    // Alice rejected the oldest; the SLA job breached the one from yesterday.
    if let Some(first) = ids.first().copied() {
        let alice_decides = Decider {
            person: format!("operator:{alice_id}"),
            actor: Some(Actor::operator(alice)),
            names: vec![format!("operator:{alice}")],
            roles: vec![Role::SuperAdmin.as_str().into()],
            tenant: None,
        };
        let ap = approvables.clone();
        state
            .store()
            .write(
                end - Duration::days(5),
                Actor::operator(alice),
                move |ctx| {
                    service::decide(
                        ctx,
                        &ap,
                        &first,
                        None,
                        &alice_decides,
                        false,
                        "They renewed for another year yesterday: keep the tenant",
                    )
                },
            )
            .await?;
    }
    crate::scheduler::record_run(
        state,
        crate::scheduler::job::Job::ApprovalSla,
        crate::scheduler::Trigger::Schedule,
        end - Duration::hours(5),
    )
    .await?;
    Ok(())
}
