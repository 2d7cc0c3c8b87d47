//! The rules of approvals: routes (create, replace, delete), holding a guarded action as a
//! request ([`guard`]), decisions ([`decide`], where the last approval runs the action in the
//! same write), and the SLA timers (breach, then expiry). Every change is audited in its write:
//! on the concerned tenant's chain, or the platform chain for the platform's own routes.

use std::ops::ControlFlow;

use chrono::Duration;
use serde_json::{Value, json};
use uuid::Uuid;

use super::model::*;
use crate::actor::Actor;
use crate::audit::ledger::{Audit, Subject};
use crate::clock::{from_micros, rfc3339_micros, to_micros};
use crate::error::{Error, Result, Validator};
use crate::store::keys::{Key, KeyReader};
use crate::store::{Dir, Range, Reader, WriteCtx};

/// The members' counter holding pending requests per owner (the nil UUID: the platform).
const PENDING: &str = "approvals_pending";

/// Who asks for a guarded action.
#[derive(Clone, Debug)]
pub struct Requester {
    /// The actor of the request (and of the action, when it runs).
    pub actor: Actor,
    /// The person ([`Person`]).
    pub person: Person,
    /// The tenant a tenant principal belongs to (none for an operator).
    pub tenant: Option<Uuid>,
}

/// What a guarded write did: the action ran, or a route held it as a request.
#[derive(Debug)]
pub enum Guarded<T> {
    /// No route held it: the action ran, with this result.
    Done(T),
    /// A route held it: nothing ran; the request waits for approvals.
    Held(Box<Request>),
}

fn owner(tenant: Option<&Uuid>) -> Uuid {
    tenant.copied().unwrap_or(Uuid::nil())
}

fn route_key(tenant: Option<&Uuid>, action: &str, id: &Uuid) -> Vec<u8> {
    Key::new()
        .uuid(&owner(tenant))
        .str(action)
        .uuid(id)
        .into_bytes()
}

fn subject(tenant: Option<Uuid>, kind: &str, id: &Uuid) -> Subject {
    match tenant {
        Some(t) => Subject::in_tenant(t, kind, id),
        None => Subject::platform(kind, id),
    }
}

fn decode_route(k: &[u8], v: &[u8]) -> Result<Route> {
    let mut kr = KeyReader::new(k);
    let (Some(o), Some(_), Some(id)) = (kr.uuid(), kr.str(), kr.uuid()) else {
        return Err(Error::Internal("malformed approval route key".into()));
    };
    let RouteRecord::V1(route) = crate::store::codec::decode(ROUTES.name(), v)?;
    Ok(Route {
        id,
        tenant_id: (!o.is_nil()).then_some(o),
        route,
    })
}

/// The routes of the platform (`tenant` none) or of one tenant, for `action` when given.
pub fn routes(r: &impl Reader, tenant: Option<&Uuid>, action: Option<&str>) -> Result<Vec<Route>> {
    let mut prefix = Key::new().uuid(&owner(tenant));
    if let Some(a) = action {
        prefix = prefix.str(a);
    }
    let mut out = Vec::new();
    let mut bad = None;
    r.scan(
        ROUTES,
        &Range::prefix(prefix.as_bytes()),
        Dir::Asc,
        &mut |k, v| {
            match decode_route(k, v) {
                Ok(x) => out.push(x),
                Err(e) => {
                    bad = Some(e);
                    return Ok(ControlFlow::Break(()));
                }
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    match bad {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The route `id` of the platform or of `tenant`.
///
/// Errors: 404.
pub fn route(r: &impl Reader, tenant: Option<&Uuid>, id: &Uuid) -> Result<Route> {
    routes(r, tenant, None)?
        .into_iter()
        .find(|x| x.id == *id)
        .ok_or_else(|| Error::not_found("approval route", id.to_string()))
}

/// The route that holds `action` asked by `who` with `facts`, if any: the platform's routes
/// first (operators' oversight covers every tenant), then the concerned tenant's own routes,
/// which hold its members' actions. The first enabled route whose condition passes wins.
pub fn matching(
    r: &impl Reader,
    action: &str,
    tenant: Option<&Uuid>,
    who: &Requester,
    facts: &[(String, i64)],
) -> Result<Option<Route>> {
    let passes =
        |x: &Route| x.route.enabled && x.route.condition.as_ref().is_none_or(|c| c.holds(facts));
    if let Some(x) = routes(r, None, Some(action))?.into_iter().find(passes) {
        return Ok(Some(x));
    }
    match (tenant, who.tenant) {
        (Some(t), Some(w)) if *t == w => {
            Ok(routes(r, Some(t), Some(action))?.into_iter().find(passes))
        }
        _ => Ok(None),
    }
}

/// Runs a guarded action: when a route holds `held` (with `facts`, asked by `who`), `check`
/// runs (so a request that could not run now is refused at once, not held) and a request is
/// written instead (`approval.requested.v1`); otherwise `run` runs as usual. Both in the
/// caller's write.
///
/// Errors: `check`'s and `run`'s; 409 `approval_queue_full`.
pub fn guard<T>(
    ctx: &mut WriteCtx<'_>,
    held: Held,
    facts: Vec<(String, i64)>,
    who: &Requester,
    check: impl FnOnce(&WriteCtx<'_>) -> Result<()>,
    run: impl FnOnce(&mut WriteCtx<'_>) -> Result<T>,
) -> Result<Guarded<T>> {
    match matching(ctx, &held.action, held.tenant_id.as_ref(), who, &facts)? {
        None => run(ctx).map(Guarded::Done),
        Some(route) => {
            check(ctx)?;
            submit(ctx, &route, held, facts, who).map(|r| Guarded::Held(Box::new(r)))
        }
    }
}

fn pending_count(r: &impl Reader, tenant: Option<&Uuid>) -> Result<u64> {
    crate::members::queries::counter(r, &owner(tenant), PENDING)
}

fn bump_pending(ctx: &mut WriteCtx<'_>, tenant: Option<&Uuid>, delta: i64) -> Result<()> {
    crate::members::service::bump(ctx, &owner(tenant), PENDING, delta)
}

fn timer_key(at: i64, id: &Uuid) -> Vec<u8> {
    Key::new().i64(at).uuid(id).into_bytes()
}

/// Writes request `held` under `route`.
fn submit(
    ctx: &mut WriteCtx<'_>,
    route: &Route,
    held: Held,
    facts: Vec<(String, i64)>,
    who: &Requester,
) -> Result<Request> {
    let tenant = held.tenant_id;
    let pending = pending_count(ctx, tenant.as_ref())?;
    if pending >= MAX_PENDING {
        return Err(Error::conflict(
            QUEUE_FULL,
            format!(
                "{pending} approval requests are pending here, the most there can be: decide or let some expire first"
            ),
        ));
    }
    let now = ctx.now;
    let id = crate::ids::new_id(now);
    let due = now + Duration::hours(i64::from(route.route.sla_hours));
    let expires = due + Duration::hours(EXPIRE_AFTER_SLA_HOURS);
    let rec = RequestV1 {
        route_id: route.id,
        route_tenant: route.tenant_id,
        route_name: route.route.name.clone(),
        held,
        facts,
        requested_by: who.actor.clone(),
        requester: who.person.clone(),
        requested_at: to_micros(now),
        due_at: to_micros(due),
        expires_at: to_micros(expires),
        required: route.route.required,
        approvers: route.route.approvers.clone(),
        escalation: route.route.escalation.clone(),
        state: State::Pending,
        breached_at: None,
        decisions: Vec::new(),
        closed_at: None,
        outcome: None,
    };
    save(ctx, &id, &rec)?;
    if let Some(t) = tenant {
        ctx.put(BY_TENANT, &Key::new().uuid(&t).uuid(&id).into_bytes(), &[])?;
    }
    ctx.put(TIMERS, &timer_key(rec.due_at, &id), &[TIMER_SLA])?;
    bump_pending(ctx, tenant.as_ref(), 1)?;
    ctx.audit(
        "approval.requested.v1",
        &subject(tenant, "approval", &id),
        json!({
            "action": rec.held.action,
            "summary": rec.held.summary,
            "route_id": route.id,
            "route_name": rec.route_name,
            "required": rec.required,
            "approvers": rec.approvers,
            "facts": facts_json(&rec.facts),
            "due_at": rfc3339_micros(due),
        }),
    )?;
    Ok(Request { id, request: rec })
}

fn facts_json(facts: &[(String, i64)]) -> Value {
    Value::Object(facts.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

fn save(ctx: &mut WriteCtx<'_>, id: &Uuid, rec: &RequestV1) -> Result<()> {
    ctx.put_record(REQUESTS, id.as_bytes(), &RequestRecord::V1(rec.clone()))?;
    Ok(())
}

/// The request `id`.
///
/// Errors: 404.
pub fn load(r: &impl Reader, id: &Uuid) -> Result<RequestV1> {
    match r.get_record::<RequestRecord>(REQUESTS, id.as_bytes())? {
        Some(RequestRecord::V1(x)) => Ok(x),
        None => Err(Error::not_found("approval request", id.to_string())),
    }
}

/// Checks a decision comment: 1–1000 characters.
pub fn parse_comment(s: &str) -> std::result::Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("a comment is required: it goes into the audit chain with the decision".into());
    }
    if t.chars().count() > MAX_COMMENT {
        return Err(format!(
            "the comment is longer than {MAX_COMMENT} characters"
        ));
    }
    Ok(t.to_string())
}

/// Records `who`'s decision on request `id` (`approval.approved.v1` / `approval.rejected.v1`).
/// When it is the last approval needed, the held action runs here, in the same write, with the
/// requester as its actor, after every check of this moment: `approval.executed.v1` with its
/// result; or, when the re-check refuses, the request fails cleanly (`approval.failed.v1` with
/// the refusal's code) and nothing of the action is done. `tenant` limits the request to one
/// tenant's (the tenant-scoped routes).
///
/// Errors: 404 (another tenant's request, too); 403 `self_approval`, `not_an_approver`; 409
/// `approval_closed`, `already_decided`; 422 for a missing comment.
pub fn decide(
    ctx: &mut WriteCtx<'_>,
    approvables: &[Approvable],
    id: &Uuid,
    tenant: Option<&Uuid>,
    who: &Decider,
    approve: bool,
    comment: &str,
) -> Result<Request> {
    let mut rec = load(ctx, id)?;
    if tenant.is_some_and(|t| rec.held.tenant_id.as_ref() != Some(t)) {
        return Err(Error::not_found("approval request", id.to_string()));
    }
    let now = ctx.now;
    if rec.state != State::Pending || to_micros(now) >= rec.expires_at {
        let state = if rec.state == State::Pending {
            "expired"
        } else {
            rec.state.as_str()
        };
        return Err(Error::conflict(
            APPROVAL_CLOSED,
            format!("approval request {id} is {state}: it takes no more decisions"),
        ));
    }
    eligible(&rec, who)?;
    let comment = parse_comment(comment).map_err(|m| Error::invalid("comment", m))?;
    let actor = who.actor.clone().unwrap_or_else(|| ctx.actor.clone());
    rec.decisions.push(DecisionV1 {
        person: who.person.clone(),
        actor,
        approve,
        comment: comment.clone(),
        at: to_micros(now),
    });
    let approvals = rec.decisions.iter().filter(|d| d.approve).count();
    let complete = approve && approvals >= usize::from(rec.required);
    // The action runs first, before this write changes anything, so that a refusal leaves the
    // write untouched and the request can fail cleanly.
    let ran = if complete {
        Some(execute(ctx, approvables, &rec))
    } else {
        None
    };
    if let Some(Err(e)) = &ran
        && ctx.has_written()
    {
        // Refused after writing: the writer drops this whole request; nothing is recorded.
        return Err(Error::Internal(format!(
            "the approved action {} failed midway: {e}",
            rec.held.action
        )));
    }
    let sub = subject(rec.held.tenant_id, "approval", id);
    let event = if approve {
        "approval.approved.v1"
    } else {
        "approval.rejected.v1"
    };
    ctx.audit(
        event,
        &sub,
        json!({
            "action": rec.held.action,
            "comment": comment,
            "approvals": approvals,
            "required": rec.required,
            "complete": complete,
        }),
    )?;
    match ran {
        None if !approve => close(ctx, id, &mut rec, State::Rejected)?,
        None => {}
        Some(Ok(result)) => {
            rec.outcome = Some(result.to_string());
            close(ctx, id, &mut rec, State::Executed)?;
            ctx.audit(
                "approval.executed.v1",
                &sub,
                json!({"action": rec.held.action, "result": result}),
            )?;
        }
        Some(Err(e)) => {
            let detail = e.to_string();
            rec.outcome = Some(format!("{}: {detail}", e.code()));
            close(ctx, id, &mut rec, State::Failed)?;
            ctx.audit(
                "approval.failed.v1",
                &sub,
                json!({"action": rec.held.action, "code": e.code(), "detail": detail}),
            )?;
        }
    }
    save(ctx, id, &rec)?;
    Ok(Request {
        id: *id,
        request: rec,
    })
}

/// May `who` decide `rec`? Not its requester, not twice, and named by its approvers in the
/// route's own console (a platform route's operators, a tenant route's members). The one rule
/// both [`decide`] and the lists' `mine=decide` ([`super::queries::awaits`]) apply.
///
/// Errors: 403 `self_approval`, `not_an_approver`; 409 `already_decided`.
pub fn eligible(rec: &RequestV1, who: &Decider) -> Result<()> {
    if who.person == rec.requester {
        return Err(Error::denied(
            SELF_APPROVAL,
            "you asked for this action: someone else must approve it (two-person rule)",
        ));
    }
    if rec.decisions.iter().any(|d| d.person == who.person) {
        return Err(Error::conflict(
            ALREADY_DECIDED,
            "you already decided this approval request",
        ));
    }
    let console_ok = rec.route_tenant == who.tenant;
    if !console_ok || !rec.approvers.iter().any(|a| who.matches(a)) {
        return Err(Error::denied(
            NOT_AN_APPROVER,
            format!(
                "you are not among this request's approvers ({})",
                rec.approvers.join(", ")
            ),
        ));
    }
    Ok(())
}

fn execute(ctx: &mut WriteCtx<'_>, approvables: &[Approvable], rec: &RequestV1) -> Result<Value> {
    let Some(a) = approvables.iter().find(|a| a.action == rec.held.action) else {
        return Err(Error::conflict(
            "action_unknown",
            format!(
                "this build does not know action {}: nothing was done",
                rec.held.action
            ),
        ));
    };
    // The action is the requester's, approved: its entries name the requester as the actor.
    let approver = std::mem::replace(&mut ctx.actor, rec.requested_by.clone());
    let out = (a.execute)(ctx, &rec.held);
    ctx.actor = approver;
    out
}

fn close(ctx: &mut WriteCtx<'_>, id: &Uuid, rec: &mut RequestV1, state: State) -> Result<()> {
    rec.state = state;
    rec.closed_at = Some(to_micros(ctx.now));
    let at = if rec.breached_at.is_some() {
        rec.expires_at
    } else {
        rec.due_at
    };
    ctx.delete(TIMERS, &timer_key(at, id))?;
    bump_pending(ctx, rec.held.tenant_id.as_ref(), -1)
}

/// Runs the timers due at `now`, at most `max`: a request past its SLA is marked breached
/// (`approval.breached.v1`, naming the escalation target the notification channels page) and
/// gets its expiry timer; one past its expiry expires (`approval.expired.v1`). Returns
/// `(breached, expired, more)`.
pub fn run_timers(ctx: &mut WriteCtx<'_>, max: usize) -> Result<(u64, u64, bool)> {
    let now = to_micros(ctx.now);
    let mut due = Vec::new();
    let mut more = false;
    ctx.scan(
        TIMERS,
        &Range::all().until(&Key::new().i64(now).uuid(&Uuid::max()).into_bytes()),
        Dir::Asc,
        &mut |k, v| {
            if due.len() >= max {
                more = true;
                return Ok(ControlFlow::Break(()));
            }
            due.push((k.to_vec(), v.first().copied().unwrap_or(TIMER_SLA)));
            Ok(ControlFlow::Continue(()))
        },
    )?;
    let (mut breached, mut expired) = (0, 0);
    for (k, kind) in due {
        ctx.delete(TIMERS, &k)?;
        let mut kr = KeyReader::new(&k);
        let Some(id) = kr.i64().and_then(|_| kr.uuid()) else {
            continue;
        };
        let Ok(mut rec) = load(ctx, &id) else {
            continue;
        };
        if rec.state != State::Pending {
            continue;
        }
        let sub = subject(rec.held.tenant_id, "approval", &id);
        if kind == TIMER_SLA {
            rec.breached_at = Some(now);
            ctx.put(TIMERS, &timer_key(rec.expires_at, &id), &[TIMER_EXPIRY])?;
            ctx.audit(
                "approval.breached.v1",
                &sub,
                json!({
                    "action": rec.held.action,
                    "summary": rec.held.summary,
                    "due_at": rfc3339_micros(from_micros(rec.due_at)),
                    "escalation": rec.escalation,
                    "approvers": rec.approvers,
                    "approvals": rec.decisions.iter().filter(|d| d.approve).count(),
                    "required": rec.required,
                }),
            )?;
            breached += 1;
        } else {
            rec.state = State::Expired;
            rec.closed_at = Some(now);
            bump_pending(ctx, rec.held.tenant_id.as_ref(), -1)?;
            ctx.audit(
                "approval.expired.v1",
                &sub,
                json!({"action": rec.held.action, "summary": rec.held.summary}),
            )?;
            expired += 1;
        }
        save(ctx, &id, &rec)?;
    }
    Ok((breached, expired, more))
}

/// A route as asked for, unchecked (API body, console form).
#[derive(Clone, Debug, Default)]
pub struct RouteDraft {
    /// Name, 1–100 characters.
    pub name: String,
    /// Action type.
    pub action: String,
    /// `fact op number[unit]`, or empty.
    pub condition: Option<String>,
    /// Approver spellings.
    pub approvers: Vec<String>,
    /// Approvals needed (1 by default).
    pub required: Option<i64>,
    /// SLA hours (24 by default).
    pub sla_hours: Option<i64>,
    /// Escalation approver spelling.
    pub escalation: Option<String>,
    /// On by default.
    pub enabled: Option<bool>,
}

impl RouteDraft {
    /// Checks every field against the actions this build knows (`approvables`), for a route
    /// of a tenant (`tenant`) or of the platform. Persona approvers must be the tenant's.
    ///
    /// Errors: 422 `validation_failed` listing each bad field.
    pub fn parse(
        self,
        r: &impl Reader,
        approvables: &[Approvable],
        tenant: Option<&Uuid>,
        now: i64,
    ) -> Result<RouteV1> {
        let mut v = Validator::new();
        let name = self.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 100 {
            v.add("name", "give the route a name of 1–100 characters");
        }
        let known: Vec<&str> = approvables.iter().map(|a| a.action).collect();
        let action = approvables.iter().find(|a| a.action == self.action.trim());
        if action.is_none() {
            v.add(
                "action",
                format!(
                    "action '{}' is unknown: use one of {}",
                    self.action.trim(),
                    known.join(", ")
                ),
            );
        }
        let facts = action.map_or(&[][..], |a| a.facts);
        let condition = self
            .condition
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .and_then(|c| v.take("condition", Condition::parse(c, facts)));
        let is_tenant = tenant.is_some();
        let mut approvers = Vec::new();
        for a in &self.approvers {
            if a.trim().is_empty() {
                continue;
            }
            if let Some(x) = v.take("approvers", Approver::parse(a, is_tenant)) {
                if let (Approver::Persona(p), Some(t)) = (&x, tenant)
                    && crate::members::queries::load_persona(r, t, p).is_err()
                {
                    v.add(
                        "approvers",
                        format!("persona {p} is not a member of this tenant"),
                    );
                }
                if !approvers.contains(&x.text()) {
                    approvers.push(x.text());
                }
            }
        }
        if approvers.is_empty() {
            v.add(
                "approvers",
                "name at least one approver (role:… or a person)",
            );
        }
        if approvers.len() > MAX_APPROVERS {
            v.add("approvers", format!("at most {MAX_APPROVERS} approvers"));
        }
        let required = self.required.unwrap_or(1);
        if !(1..=i64::from(MAX_REQUIRED)).contains(&required) {
            v.add(
                "required",
                format!("required is 1–{MAX_REQUIRED} approvals"),
            );
        }
        let sla = self.sla_hours.unwrap_or(i64::from(DEFAULT_SLA_HOURS));
        if !(1..=i64::from(MAX_SLA_HOURS)).contains(&sla) {
            v.add("sla_hours", format!("sla_hours is 1–{MAX_SLA_HOURS}"));
        }
        let escalation = self
            .escalation
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .and_then(|e| v.take("escalation", Approver::parse(e, is_tenant)))
            .map(|e| e.text());
        v.finish()?;
        Ok(RouteV1 {
            name,
            action: self.action.trim().to_string(),
            condition,
            approvers,
            required: u8::try_from(required).unwrap_or(1),
            sla_hours: u32::try_from(sla).unwrap_or(DEFAULT_SLA_HOURS),
            escalation,
            enabled: self.enabled.unwrap_or(true),
            created_at: now,
            updated_at: now,
        })
    }
}

fn route_json(x: &RouteV1) -> Value {
    json!({
        "name": x.name,
        "action": x.action,
        "condition": x.condition.as_ref().map(Condition::text),
        "approvers": x.approvers,
        "required": x.required,
        "sla_hours": x.sla_hours,
        "escalation": x.escalation,
        "enabled": x.enabled,
    })
}

/// Creates a route of the platform or of `tenant` (`approval.route.created.v1`).
///
/// Errors: 404 unknown tenant; 409 `route_limit` past [`MAX_ROUTES`].
pub fn create_route(
    ctx: &mut WriteCtx<'_>,
    tenant: Option<&Uuid>,
    route: RouteV1,
) -> Result<Route> {
    if let Some(t) = tenant {
        crate::tenants::queries::get(ctx, t)?;
    }
    if routes(ctx, tenant, None)?.len() >= MAX_ROUTES {
        return Err(Error::conflict(
            "route_limit",
            format!("there are {MAX_ROUTES} approval routes here, the most there can be"),
        ));
    }
    let id = crate::ids::new_id(ctx.now);
    ctx.put_record(
        ROUTES,
        &route_key(tenant, &route.action, &id),
        &RouteRecord::V1(route.clone()),
    )?;
    ctx.audit(
        "approval.route.created.v1",
        &subject(tenant.copied(), "approval_route", &id),
        route_json(&route),
    )?;
    Ok(Route {
        id,
        tenant_id: tenant.copied(),
        route,
    })
}

/// Replaces route `id` (`approval.route.updated.v1` with the old and new fields). Requests
/// already made keep the approvers and SLA they were made with.
///
/// Errors: 404.
pub fn replace_route(
    ctx: &mut WriteCtx<'_>,
    tenant: Option<&Uuid>,
    id: &Uuid,
    mut new: RouteV1,
) -> Result<Route> {
    let old = route(ctx, tenant, id)?;
    new.created_at = old.route.created_at;
    ctx.delete(ROUTES, &route_key(tenant, &old.route.action, id))?;
    ctx.put_record(
        ROUTES,
        &route_key(tenant, &new.action, id),
        &RouteRecord::V1(new.clone()),
    )?;
    ctx.audit(
        "approval.route.updated.v1",
        &subject(tenant.copied(), "approval_route", id),
        json!({"from": route_json(&old.route), "to": route_json(&new)}),
    )?;
    Ok(Route {
        id: *id,
        tenant_id: tenant.copied(),
        route: new,
    })
}

/// Deletes route `id` (`approval.route.deleted.v1`); its pending requests stay and can still
/// be decided.
///
/// Errors: 404.
pub fn delete_route(ctx: &mut WriteCtx<'_>, tenant: Option<&Uuid>, id: &Uuid) -> Result<()> {
    let old = route(ctx, tenant, id)?;
    ctx.delete(ROUTES, &route_key(tenant, &old.route.action, id))?;
    ctx.audit(
        "approval.route.deleted.v1",
        &subject(tenant.copied(), "approval_route", id),
        route_json(&old.route),
    )?;
    Ok(())
}

/// Deletes a shredded tenant's routes and requests (its pending ones never run).
pub fn shred(ctx: &mut WriteCtx<'_>, tenant: &Uuid) -> Result<u64> {
    let mut n = ctx.delete_range(ROUTES, &Range::prefix(tenant.as_bytes()))?;
    let mut ids = Vec::new();
    ctx.scan(
        BY_TENANT,
        &Range::prefix(tenant.as_bytes()),
        Dir::Asc,
        &mut |k, _| {
            if let Some(id) = KeyReader::new(&k[16..]).uuid() {
                ids.push(id);
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    for id in &ids {
        if let Ok(rec) = load(ctx, id)
            && rec.state == State::Pending
        {
            let at = if rec.breached_at.is_some() {
                rec.expires_at
            } else {
                rec.due_at
            };
            ctx.delete(TIMERS, &timer_key(at, id))?;
        }
        if ctx.delete(REQUESTS, id.as_bytes())? {
            n += 1;
        }
    }
    ctx.delete_range(BY_TENANT, &Range::prefix(tenant.as_bytes()))?;
    Ok(n)
}
