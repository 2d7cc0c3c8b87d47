//! The demo's tenant side: each tenant's people (an admin who accepted the operator's invite, a
//! second admin, a team in business units), a service persona with API keys (one without
//! expiry on some tenants, a rotation on others), and operators' visits. Written through the
//! real services at replayed times, so every entry is on the tenant's chain as a live tenant
//! would have it.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::actor::Actor;
use crate::api_keys::service::{ApiKeyDraft, SecretParts};
use crate::error::Result;
use crate::members::service::{BusinessUnitDraft, PersonaDraft};
use crate::state::AppState;

/// People the demo invites: `(first name, last name)`.
const PEOPLE: [(&str, &str); 24] = [
    ("Ingrid", "Solberg"),
    ("Marcus", "Webb"),
    ("Priya", "Raman"),
    ("Tomás", "Herrera"),
    ("Aiko", "Tanaka"),
    ("Lars", "Eriksen"),
    ("Fatima", "Zahra"),
    ("Jonas", "Becker"),
    ("Chloé", "Martin"),
    ("Olu", "Adeyemi"),
    ("Sofia", "Rossi"),
    ("Ben", "Carter"),
    ("Mei", "Lin"),
    ("Kwame", "Mensah"),
    ("Elena", "Popescu"),
    ("Ravi", "Kapoor"),
    ("Hanna", "Virtanen"),
    ("Diego", "Silva"),
    ("Noor", "Hassan"),
    ("Paul", "Dubois"),
    ("Yara", "Nasser"),
    ("Erik", "Lindqvist"),
    ("Grace", "Okoro"),
    ("Mateo", "García"),
];

/// What the demo seeded for one tenant.
pub struct Seeded {
    /// The admin's email.
    pub admin_email: String,
    /// The API keys issued (for their last-use times at the end of the replay).
    pub keys: Vec<Uuid>,
}

fn email(first: &str, last: &str, domain: &str) -> String {
    format!(
        "{}.{}@{domain}",
        deunicode::deunicode(first).to_lowercase(),
        deunicode::deunicode(last).to_lowercase()
    )
}

fn secret() -> Result<SecretParts> {
    let s = crate::http::credentials::random_token()?;
    Ok(SecretParts {
        hash: crate::api_keys::model::hash_secret(&s),
        hint: s[..4].to_string(),
    })
}

async fn w<T: Send + 'static>(
    state: &AppState,
    at: DateTime<Utc>,
    actor: Actor,
    f: impl FnMut(&mut crate::store::WriteCtx<'_>) -> Result<T> + Send + 'static,
) -> Result<T> {
    state.store().write(at, actor, f).await
}

/// Seeds tenant number `i`'s people and keys at `at` (just after provisioning): the operator
/// `op` invites the admin, who accepts with the password hashed as `phc` and builds the team.
pub async fn seed(
    state: &AppState,
    at: DateTime<Utc>,
    op: Actor,
    tenant: Uuid,
    domain: &str,
    i: usize,
    phc: String,
) -> Result<Seeded> {
    let step = |n: i64| at + Duration::minutes(20) + Duration::seconds(n * 37);
    let person = |k: usize| PEOPLE[(i * 5 + k) % PEOPLE.len()];
    // The operator invites the tenant's first admin; the admin accepts.
    let (first, last) = person(0);
    let admin_email = email(first, last, domain);
    let admin_input = PersonaDraft {
        kind: "human".into(),
        display_name: format!("{first} {last}"),
        email: Some(admin_email.clone()),
        roles: vec!["tenant_admin".into()],
        bu_id: None,
    }
    .parse()?;
    let invite: [u8; 32] = crate::operators::service::random32()?;
    let admin = w(state, step(0), op.clone(), move |ctx| {
        Ok(
            crate::members::service::add_persona(ctx, &tenant, &admin_input, Some(invite), None)?
                .id,
        )
    })
    .await?;
    let p = phc.clone();
    w(
        state,
        step(1),
        Actor::persona(admin.to_string()),
        move |ctx| Ok(crate::members::service::accept_invite(ctx, &invite, &p)?.id),
    )
    .await?;
    let me = Actor::persona(admin.to_string());
    // Business units: a small tree.
    let mut bus: Vec<Uuid> = Vec::new();
    let tree: [(&str, &str, Option<usize>); 5] = [
        ("Engineering", "team", None),
        ("Finance", "cost_center", None),
        ("EMEA", "region", None),
        ("Nordics", "region", Some(2)),
        ("Platform team", "team", Some(0)),
    ];
    for (n, (name, kind, parent)) in tree.iter().enumerate() {
        let input = BusinessUnitDraft {
            name: (*name).to_string(),
            kind: (*kind).to_string(),
            parent_id: parent.map(|p| bus[p].to_string()),
        }
        .parse()?;
        let id = w(state, step(2 + n as i64), me.clone(), move |ctx| {
            Ok(crate::members::service::create_bu(ctx, &tenant, &input)?.id)
        })
        .await?;
        bus.push(id);
    }
    // The team: a second admin, finance, an auditor, engineers.
    let team: [(usize, &str, usize, bool); 5] = [
        (1, "tenant_admin", 0, i.is_multiple_of(2)),
        (2, "billing_admin", 1, true),
        (3, "auditor", 1, !i.is_multiple_of(3)),
        (4, "member", 4, true),
        (5, "member", 3, i % 4 != 1),
    ];
    for (n, (k, role, bu, accepts)) in team.into_iter().enumerate() {
        let (first, last) = person(k);
        let input = PersonaDraft {
            kind: "human".into(),
            display_name: format!("{first} {last}"),
            email: Some(email(first, last, domain)),
            roles: vec![role.to_string()],
            bu_id: Some(bus[bu].to_string()),
        }
        .parse()?;
        let invite: [u8; 32] = crate::operators::service::random32()?;
        let id = w(state, step(10 + 2 * n as i64), me.clone(), move |ctx| {
            Ok(crate::members::service::add_persona(ctx, &tenant, &input, Some(invite), None)?.id)
        })
        .await?;
        if accepts {
            let p = phc.clone();
            w(
                state,
                step(11 + 2 * n as i64),
                Actor::persona(id.to_string()),
                move |ctx| Ok(crate::members::service::accept_invite(ctx, &invite, &p)?.id),
            )
            .await?;
        }
    }
    // A service persona for the CI, with its keys.
    let ci = PersonaDraft {
        kind: "service".into(),
        display_name: "CI pipeline".into(),
        email: None,
        roles: vec!["integration".into()],
        bu_id: Some(bus[0].to_string()),
    }
    .parse()?;
    let ci_id = w(state, step(30), me.clone(), move |ctx| {
        Ok(crate::members::service::add_persona(ctx, &tenant, &ci, None, None)?.id)
    })
    .await?;
    let mut keys = Vec::new();
    type KeySpec = (&'static str, Vec<&'static str>, Option<DateTime<Utc>>);
    let mut specs: Vec<KeySpec> = vec![(
        "ci-pipeline",
        vec!["usage.write", "metrics.read"],
        Some(at + Duration::days(180)),
    )];
    if i.is_multiple_of(3) {
        // Flagged in compliance reviews.
        specs.push(("legacy-etl", vec!["metrics.read"], None));
    }
    for (n, (name, scopes, expires)) in specs.into_iter().enumerate() {
        let id = crate::ids::new_id(step(31 + n as i64));
        let input = ApiKeyDraft {
            persona_id: ci_id.to_string(),
            name: name.to_string(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_at: expires.map(crate::clock::rfc3339_micros),
        }
        .parse()?;
        let parts = secret()?;
        w(state, step(31 + n as i64), me.clone(), move |ctx| {
            Ok(crate::api_keys::service::issue(ctx, &tenant, &id, &input, &parts, None)?.id)
        })
        .await?;
        keys.push(id);
    }
    if i.is_multiple_of(4) {
        let key = keys[0];
        let parts = secret()?;
        w(state, step(40), me.clone(), move |ctx| {
            Ok(
                crate::api_keys::service::rotate(ctx, &tenant, &key, &parts)?
                    .0
                    .id,
            )
        })
        .await?;
    }
    Ok(Seeded { admin_email, keys })
}

/// Sets the password of the admin of `tenant` with `email` (the one the demo prints).
pub async fn set_admin_password(
    state: &AppState,
    at: DateTime<Utc>,
    tenant: Uuid,
    email: &str,
    phc: String,
) -> Result<()> {
    let e = email.to_string();
    let (id, _) = state
        .read(move |r| crate::members::queries::by_email(r, &tenant, &e))
        .await?
        .ok_or_else(|| crate::error::Error::Internal(format!("demo admin {email} missing")))?;
    state
        .store()
        .write(at, Actor::persona(id.to_string()), move |ctx| {
            crate::members::service::set_password(ctx, &tenant, &id, &phc, &[0u8; 32])
        })
        .await
}

/// An operator's visit of `tenant` on `at`: read-only, elevated with a reason to re-send an
/// invite, then ended. A support operator's read-only look is left to run out (the
/// `end_expired_visits` job ends it).
pub async fn visits(
    state: &AppState,
    at: DateTime<Utc>,
    tenant: Uuid,
    elevating: (Uuid, &str, crate::rbac::Role),
    looking: (Uuid, &str, crate::rbac::Role),
) -> Result<()> {
    use crate::impersonations::service::{Visitor, elevate, end, start};
    let who = Visitor {
        operator_id: elevating.0,
        username: elevating.1.to_string(),
        role: elevating.2,
    };
    let actor = Actor::operator(elevating.1);
    let v = state
        .store()
        .write(at, actor.clone(), move |ctx| start(ctx, &tenant, &who))
        .await?;
    let op = elevating.0;
    state
        .store()
        .write(at + Duration::minutes(4), actor.clone(), move |ctx| {
            elevate(
                ctx,
                &tenant,
                &v.id,
                &op,
                "Support ticket 4711: the customer's new finance admin never received the invite; re-sending it",
                Some(15),
            )
        })
        .await?;
    state
        .store()
        .write(at + Duration::minutes(11), actor, move |ctx| {
            end(ctx, &tenant, &v.id, &op)
        })
        .await?;
    let who = Visitor {
        operator_id: looking.0,
        username: looking.1.to_string(),
        role: looking.2,
    };
    state
        .store()
        .write(
            at + Duration::hours(3),
            Actor::operator(looking.1),
            move |ctx| start(ctx, &tenant, &who),
        )
        .await?;
    Ok(())
}

/// Last-use times for the keys, as a live platform's traffic would leave them.
pub async fn key_usage(state: &AppState, end: DateTime<Utc>, keys: &[(Uuid, Uuid)]) -> Result<()> {
    let used: Vec<(Uuid, Uuid, DateTime<Utc>)> = keys
        .iter()
        .enumerate()
        .map(|(n, (t, k))| (*t, *k, end - Duration::minutes(7 + (n as i64 * 53) % 2000)))
        .collect();
    state
        .store()
        .write(end, Actor::system("api_keys:last_used"), move |ctx| {
            crate::api_keys::service::record_usage(ctx, &used)
        })
        .await
}
