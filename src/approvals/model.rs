//! Approvals (issue 11; operator guide §6, tenant admin guide §5, HQ PRD §3 "Change Approval"):
//! routes, requests, decisions. Types, stored records, tables, limits.
//!
//! A **route** says that an action type (`tenant.offboard`...), optionally only when a fact of
//! the request passes a condition (`size_bytes > 1 GB`), needs `required` approvals from its
//! approvers (by role or by persona) within an SLA. Routes belong to the platform (operators'
//! actions and every tenant's) or to one tenant (its members' actions).
//!
//! A **request** holds the exact action and its inputs ([`Held`]) until enough approvers agree;
//! the last approval runs it in the same write ([`crate::approvals::service::decide`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::actor::Actor;
use crate::store::{Table, WriteCtx};

/// Routes: `(owner, action, route id) -> RouteRecord`; the owner is the tenant id, or the nil
/// UUID for the platform's routes. Keyed by action so a guarded write finds its routes with one
/// short prefix scan.
pub const ROUTES: Table = Table::new("approval_routes");
/// Requests: `request id (UUIDv7) -> RequestRecord`, newest last (the platform's list).
pub const REQUESTS: Table = Table::new("approval_requests");
/// A tenant's requests: `(tenant, request id) -> ()` (the tenant's list).
pub const BY_TENANT: Table = Table::new("approval_requests_by_tenant");
/// Timers of pending requests: `(at µs, request id) -> kind` ([`TIMER_SLA`] then
/// [`TIMER_EXPIRY`]), read by the `approval_sla` job from the front.
pub const TIMERS: Table = Table::new("approval_timers");

/// Timer kind: the SLA runs out (the request is marked breached, the escalation paged).
pub const TIMER_SLA: u8 = 0;
/// Timer kind: the request expires undecided.
pub const TIMER_EXPIRY: u8 = 1;

/// Default SLA, hours (tenant admin guide §5: "Set the SLA (default 24 h)").
pub const DEFAULT_SLA_HOURS: u32 = 24;
/// Longest SLA, hours (30 days).
pub const MAX_SLA_HOURS: u32 = 720;
/// A pending request expires this many hours after its SLA ran out (its action never runs).
pub const EXPIRE_AFTER_SLA_HOURS: i64 = 7 * 24;
/// Most approvals a route may require.
pub const MAX_REQUIRED: u8 = 5;
/// Most approvers a route may name.
pub const MAX_APPROVERS: usize = 20;
/// Most routes per owner (the platform, or one tenant).
pub const MAX_ROUTES: usize = 100;
/// Most pending requests per tenant (and for the platform's own actions): a flood of requests
/// is refused, 429-like, with 409 `approval_queue_full`.
pub const MAX_PENDING: u64 = 1_000;
/// Longest decision comment, characters.
pub const MAX_COMMENT: usize = 1_000;

/// 409: the request was already decided, expired, executed or failed.
pub const APPROVAL_CLOSED: &str = "approval_closed";
/// 409: the caller already decided this request.
pub const ALREADY_DECIDED: &str = "already_decided";
/// 403: the caller asked for the action (no one approves their own request).
pub const SELF_APPROVAL: &str = "self_approval";
/// 403: the caller is not among the request's approvers.
pub const NOT_AN_APPROVER: &str = "not_an_approver";
/// 409: too many pending requests.
pub const QUEUE_FULL: &str = "approval_queue_full";

/// The state of a request.
///
/// REMEMBER: the discriminants are the file format (a request record stores its state by
/// variant position): never reorder; add at the end (`state_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum State {
    /// Waiting for approvals.
    Pending = 0,
    /// Enough approvals; the action is about to run. It runs in the same write as the last
    /// approval, so this state is seen only in the ledger (`approval.approved.v1` with
    /// `complete: true`), never stored.
    Approved = 1,
    /// An approver rejected it; the action never runs.
    Rejected = 2,
    /// Undecided past its expiry; the action never runs.
    Expired = 3,
    /// Approved, and the action ran.
    Executed = 4,
    /// Approved, but the action's re-check failed against the state of that moment (the tenant
    /// changed meanwhile); nothing of it was done.
    Failed = 5,
}

impl State {
    /// Every state.
    pub const ALL: [State; 6] = [
        State::Pending,
        State::Approved,
        State::Rejected,
        State::Expired,
        State::Executed,
        State::Failed,
    ];
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Rejected => "rejected",
            State::Expired => "expired",
            State::Executed => "executed",
            State::Failed => "failed",
        }
    }
    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Result<State, String> {
        State::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                format!("state '{s}' is unknown: use pending, approved, rejected, expired, executed or failed")
            })
    }
}

/// A comparison of a route's condition.
///
/// REMEMBER: the discriminants are the file format: never reorder; add at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum Op {
    /// `>`
    Gt = 0,
    /// `>=`
    Ge = 1,
    /// `<`
    Lt = 2,
    /// `<=`
    Le = 3,
    /// `==`
    Eq = 4,
    /// `!=`
    Ne = 5,
}

impl Op {
    const SPELLINGS: [(&'static str, Op); 6] = [
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        (">", Op::Gt),
        ("<", Op::Lt),
    ];
    /// Its spelling.
    pub fn as_str(self) -> &'static str {
        Op::SPELLINGS
            .iter()
            .find(|(_, o)| *o == self)
            .map_or("?", |(s, _)| s)
    }
    fn test(self, left: i64, right: i64) -> bool {
        match self {
            Op::Gt => left > right,
            Op::Ge => left >= right,
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Eq => left == right,
            Op::Ne => left != right,
        }
    }
}

/// A route's condition on one numeric fact of the request: `size_bytes > 1 GB`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// The fact's name (one the action declares, [`Approvable::facts`]).
    pub fact: String,
    /// The comparison.
    pub op: Op,
    /// The right-hand side.
    pub value: i64,
}

impl Condition {
    /// Parses `fact op number[unit]`, where the unit is one of `KB`, `MB`, `GB`, `TB` (powers of
    /// 1024) and the fact is one of `facts`.
    ///
    /// Errors: a message naming what is wrong and the accepted shape.
    pub fn parse(s: &str, facts: &[&str]) -> Result<Condition, String> {
        let shape = "write a condition as 'fact op number', e.g. 'size_bytes > 1 GB' (op: > >= < <= == !=; units KB MB GB TB)";
        let s = s.trim();
        let Some((at, sp, op)) = Op::SPELLINGS
            .iter()
            .find_map(|(sp, op)| s.find(sp).map(|at| (at, *sp, *op)))
        else {
            return Err(format!("condition '{s}' has no comparison: {shape}"));
        };
        let fact = s[..at].trim();
        let rest = s[at + sp.len()..].trim();
        if !facts.contains(&fact) {
            return Err(if facts.is_empty() {
                format!("this action has no facts to test, so it takes no condition ('{fact}')")
            } else {
                format!(
                    "fact '{fact}' is unknown for this action: use {}",
                    facts.join(", ")
                )
            });
        }
        let upper = rest.to_ascii_uppercase();
        let (digits, scale) = [
            ("TB", 1i64 << 40),
            ("GB", 1 << 30),
            ("MB", 1 << 20),
            ("KB", 1 << 10),
        ]
        .iter()
        .find_map(|(u, m)| upper.strip_suffix(u).map(|d| (d.trim().to_string(), *m)))
        .unwrap_or((upper.clone(), 1));
        let n: i64 = digits
            .replace('_', "")
            .parse()
            .map_err(|_| format!("'{rest}' is not a whole number: {shape}"))?;
        let value = n
            .checked_mul(scale)
            .ok_or_else(|| format!("'{rest}' is too large"))?;
        Ok(Condition {
            fact: fact.to_string(),
            op,
            value,
        })
    }

    /// Does the request's `facts` pass it? A fact the request lacks fails it.
    pub fn holds(&self, facts: &[(String, i64)]) -> bool {
        facts
            .iter()
            .find(|(f, _)| *f == self.fact)
            .is_some_and(|(_, v)| self.op.test(*v, self.value))
    }

    /// `size_bytes > 1073741824`.
    pub fn text(&self) -> String {
        format!("{} {} {}", self.fact, self.op.as_str(), self.value)
    }
}

/// Who may approve: `role:<name>` (an operator role on a platform route, a member role on a
/// tenant route), `operator:<username>` (platform) or `persona:<id>` (tenant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Approver {
    /// Anyone holding the role.
    Role(String),
    /// One operator account, by username.
    Operator(String),
    /// One persona of the tenant.
    Persona(Uuid),
}

impl Approver {
    /// Parses the `kind:value` spelling for a route of the platform (`tenant` false) or of a
    /// tenant.
    ///
    /// Errors: a message with the accepted spellings.
    pub fn parse(s: &str, tenant: bool) -> Result<Approver, String> {
        let s = s.trim();
        let hint = if tenant {
            "use role:<member role> or persona:<persona id>"
        } else {
            "use role:<operator role> (super_admin, technical_admin, business_admin, compliance, support) or operator:<username>"
        };
        match s.split_once(':') {
            Some(("role", r)) if !r.trim().is_empty() => {
                if !tenant {
                    crate::rbac::Role::parse(r.trim())?;
                }
                Ok(Approver::Role(r.trim().to_string()))
            }
            Some(("operator", u)) if !tenant && !u.trim().is_empty() => {
                Ok(Approver::Operator(u.trim().to_string()))
            }
            Some(("persona", p)) if tenant => crate::ids::parse_uuid(p.trim())
                .map(Approver::Persona)
                .ok_or_else(|| format!("approver '{s}': '{p}' is not a persona id; {hint}")),
            _ => Err(format!("approver '{s}' is not understood: {hint}")),
        }
    }

    /// The `kind:value` spelling.
    pub fn text(&self) -> String {
        match self {
            Approver::Role(r) => format!("role:{r}"),
            Approver::Operator(u) => format!("operator:{u}"),
            Approver::Persona(p) => format!("persona:{p}"),
        }
    }
}

/// Who a person is, for the two-person rule: one operator account or one persona, whatever
/// credential it used (`operator:<id>`, `persona:<id>`, `token:<actor>` for a shared token).
pub type Person = String;

/// The approver kinds a person matches: its person spelling plus its roles.
#[derive(Clone, Debug, Default)]
pub struct Decider {
    /// The person ([`Person`]).
    pub person: Person,
    /// The actor its decision is attributed to.
    pub actor: Option<Actor>,
    /// `operator:<username>` or `persona:<id>`.
    pub names: Vec<String>,
    /// Its roles (an operator's one role, a persona's member roles).
    pub roles: Vec<String>,
    /// The tenant it belongs to (none for an operator).
    pub tenant: Option<Uuid>,
}

impl Decider {
    /// Does `approver` name this person?
    pub fn matches(&self, approver: &str) -> bool {
        match approver.split_once(':') {
            Some(("role", r)) => self.roles.iter().any(|x| x == r),
            _ => self.names.iter().any(|n| n == approver),
        }
    }
}

/// A route as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RouteRecord {
    /// Version 1.
    V1(RouteV1),
}

/// Version 1 of a route.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteV1 {
    /// A name for lists (`Two-person offboarding`).
    pub name: String,
    /// The action type it holds (`tenant.offboard`).
    pub action: String,
    /// Only requests whose facts pass it (none: every request of the action).
    pub condition: Option<Condition>,
    /// Who may approve ([`Approver`] spellings).
    pub approvers: Vec<String>,
    /// Approvals needed, from distinct people, 1–5.
    pub required: u8,
    /// Hours to decide before the request is breached.
    pub sla_hours: u32,
    /// Who is paged when the SLA runs out (an [`Approver`] spelling).
    pub escalation: Option<String>,
    /// Off: the route holds nothing.
    pub enabled: bool,
    /// Creation, µs.
    pub created_at: i64,
    /// Last change, µs.
    pub updated_at: i64,
}

/// A route with its id and owner.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// UUIDv7.
    pub id: Uuid,
    /// The tenant it belongs to; none for a platform route.
    pub tenant_id: Option<Uuid>,
    /// Its fields.
    pub route: RouteV1,
}

/// One decision on a request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionV1 {
    /// The person ([`Person`]).
    pub person: String,
    /// Its actor, as the ledger has it.
    pub actor: Actor,
    /// Approve (true) or reject.
    pub approve: bool,
    /// Why (part of the audit entry).
    pub comment: String,
    /// When, µs.
    pub at: i64,
}

/// A request as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RequestRecord {
    /// Version 1.
    V1(RequestV1),
}

/// Version 1 of a request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestV1 {
    /// The route that holds it.
    pub route_id: Uuid,
    /// The route's owner (none: a platform route).
    pub route_tenant: Option<Uuid>,
    /// The route's name when the request was made.
    pub route_name: String,
    /// The held action.
    pub held: Held,
    /// What the request's facts were (`size_bytes`...).
    pub facts: Vec<(String, i64)>,
    /// Who asked.
    pub requested_by: Actor,
    /// The person who asked ([`Person`]).
    pub requester: String,
    /// When, µs.
    pub requested_at: i64,
    /// The SLA's end, µs.
    pub due_at: i64,
    /// When it expires undecided, µs.
    pub expires_at: i64,
    /// Approvals needed (from the route, when asked).
    pub required: u8,
    /// Who may approve (from the route, when asked).
    pub approvers: Vec<String>,
    /// Who is paged on a breach.
    pub escalation: Option<String>,
    /// Where it is.
    pub state: State,
    /// When the SLA ran out undecided, µs.
    pub breached_at: Option<i64>,
    /// Decisions, oldest first.
    pub decisions: Vec<DecisionV1>,
    /// When it left `pending`, µs.
    pub closed_at: Option<i64>,
    /// The action's result (JSON text) once executed, or the refusal's `code: detail` once failed.
    pub outcome: Option<String>,
}

/// Exactly what a request will do once approved: the action type, the tenant it concerns, the
/// inputs (JSON text, the owning context's own shape), and a sentence for approvers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The action type (`tenant.offboard`).
    pub action: String,
    /// The tenant it concerns.
    pub tenant_id: Option<Uuid>,
    /// The inputs, JSON text.
    pub inputs: String,
    /// What it does, for approvers (`Offboard Acme (grace 30 days)`).
    pub summary: String,
}

impl Held {
    /// A held action of `action` on `tenant` with `inputs` serialized.
    ///
    /// Errors: 500 when the inputs do not serialize (a bug).
    pub fn new(
        action: &str,
        tenant: Option<Uuid>,
        inputs: &impl Serialize,
        summary: String,
    ) -> crate::error::Result<Held> {
        Ok(Held {
            action: action.to_string(),
            tenant_id: tenant,
            inputs: serde_json::to_string(inputs)
                .map_err(|e| crate::error::Error::Internal(format!("held inputs: {e}")))?,
            summary,
        })
    }

    /// The inputs, decoded.
    ///
    /// Errors: 500 when they do not decode (a stored request of an older shape).
    pub fn inputs<T: serde::de::DeserializeOwned>(&self) -> crate::error::Result<T> {
        serde_json::from_str(&self.inputs).map_err(|e| {
            crate::error::Error::Internal(format!("held inputs of {}: {e}", self.action))
        })
    }
}

/// A request with its id.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// UUIDv7.
    pub id: Uuid,
    /// Its fields.
    pub request: RequestV1,
}

/// An action that approval routes may hold, declared by the context that owns it (its
/// descriptor's `approvables`), so approvals runs it without depending on that context.
#[derive(Clone, Copy)]
pub struct Approvable {
    /// The action type routes name (`tenant.offboard`).
    pub action: &'static str,
    /// What it is, for the route editor.
    pub label: &'static str,
    /// The numeric facts a route's condition may test (`size_bytes`).
    pub facts: &'static [&'static str],
    /// Runs the held action in the deciding write, after every check of the moment; refuses
    /// before writing anything when the state no longer allows it (the request then fails
    /// cleanly). Returns what to keep as the request's outcome.
    pub execute: fn(&mut WriteCtx<'_>, &Held) -> crate::error::Result<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_codes_are_pinned() {
        let codes: Vec<u8> = State::ALL.iter().map(|s| *s as u8).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5]);
        assert_eq!(Op::Gt as u8, 0);
        assert_eq!(Op::Ne as u8, 5);
    }

    #[test]
    fn conditions_parse_units_and_refuse_unknown_facts() {
        let c = Condition::parse("size_bytes > 1 GB", &["size_bytes"]).unwrap();
        assert_eq!((c.op, c.value), (Op::Gt, 1 << 30));
        assert!(c.holds(&[("size_bytes".into(), (1 << 30) + 1)]));
        assert!(!c.holds(&[("size_bytes".into(), 1 << 30)]));
        assert!(!c.holds(&[]));
        let c = Condition::parse("grace_days<=7", &["grace_days"]).unwrap();
        assert_eq!((c.op, c.value), (Op::Le, 7));
        assert!(Condition::parse("rows > 1", &["size_bytes"]).is_err());
        assert!(Condition::parse("size_bytes 1", &["size_bytes"]).is_err());
        assert!(Condition::parse("size_bytes > lots", &["size_bytes"]).is_err());
    }

    #[test]
    fn approvers_parse_by_console() {
        assert_eq!(
            Approver::parse("role:super_admin", false),
            Ok(Approver::Role("super_admin".into()))
        );
        assert!(Approver::parse("role:wizard", false).is_err());
        assert!(Approver::parse("persona:x", true).is_err());
        assert!(Approver::parse("operator:maya", true).is_err());
        assert_eq!(
            Approver::parse("role:tenant-admin", true),
            Ok(Approver::Role("tenant-admin".into()))
        );
    }
}
