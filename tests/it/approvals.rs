//! Approvals (issue 11; operator guide §6, tenant admin guide §5, HQ PRD §3): a two-person
//! offboarding, self-approval refused, the re-check of an approved action against the state of
//! the moment, an SLA breach and expiry with the clock moved, and the other guarded actions
//! (plan downgrade, tenant export, API key issue) held and run through the same mechanism.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::console::operator;
use crate::helpers::TestApp;

/// An operator `username` of `role`, and a bearer token of its own.
async fn person(app: &TestApp, username: &str, role: &str) -> String {
    operator(app, username, role).await;
    let (s, v) = app
        .post(
            &format!("/api/operators/{username}/tokens"),
            json!({"name": "t"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["token"].as_str().unwrap().to_string()
}

async fn as_(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.send(method, path, body, Some(token)).await
}

/// Approves request `id` (of the platform's API) as `token`'s holder, with `comment`.
async fn approve(app: &TestApp, token: &str, id: &Value, comment: &str) -> (StatusCode, Value) {
    let path = format!("/api/approvals/{}/approve", id.as_str().unwrap());
    as_(
        app,
        token,
        Method::POST,
        &path,
        Some(json!({ "comment": comment })),
    )
    .await
}

async fn tenant(app: &TestApp, name: &str) -> String {
    let a = app.app(&format!("{name} app")).await;
    let id = app.tenant(&a, name).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = app.action(&id, "activate", json!({})).await;
    assert_eq!(s, StatusCode::OK);
    id
}

async fn route(app: &TestApp, body: Value) -> Value {
    let (s, v) = app.post("/api/approvals/routes", body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offboarding_behind_a_two_person_route_waits_for_a_second_operator() {
    let app = TestApp::spawn().await;
    let bob = person(&app, "bob", "business_admin").await;
    let carol = person(&app, "carol", "business_admin").await;
    let t = tenant(&app, "Acme").await;
    route(
        &app,
        json!({"name": "Two-person offboarding", "action": "tenant.offboard", "approvers": ["role:business_admin", "role:super_admin"], "sla_hours": 24}),
    )
    .await;

    // Bob asks: the action is held, the tenant is untouched.
    let (s, req) = as_(
        &app,
        &bob,
        Method::POST,
        &format!("/api/tenant-lifecycle/{t}/offboard"),
        Some(json!({"reason": "contract ended", "grace_days": 14})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{req}");
    assert_eq!(req["state"], "pending");
    assert_eq!(req["action"], "tenant.offboard");
    assert_eq!(req["facts"]["grace_days"], 14);
    let rid = req["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.get(&format!("/api/tenants/{t}")).await.1["state"],
        "active"
    );

    // Carol sees it in her queue; Bob sees it as his open request.
    let (_, mine) = as_(
        &app,
        &carol,
        Method::GET,
        "/api/approvals?mine=decide",
        None,
    )
    .await;
    assert_eq!(mine["items"][0]["id"], rid.as_str(), "{mine}");
    assert_eq!(mine["items"][0]["can_decide"], true);
    let (_, theirs) = as_(&app, &bob, Method::GET, "/api/approvals?mine=decide", None).await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0, "{theirs}");
    let (_, open) = as_(
        &app,
        &bob,
        Method::GET,
        "/api/approvals?mine=requested&state=pending",
        None,
    )
    .await;
    assert_eq!(open["items"][0]["id"], rid.as_str());

    // Refusals write nothing: self-approval, the shared token, a missing comment.
    let before = app.total_entries().await;
    let approve = format!("/api/approvals/{rid}/approve");
    let (s, v) = as_(
        &app,
        &bob,
        Method::POST,
        &approve,
        Some(json!({"comment": "mine, fine"})),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("self_approval")),
        "{v}"
    );
    let (s, v) = app.post(&approve, json!({"comment": "token"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = as_(
        &app,
        &carol,
        Method::POST,
        &approve,
        Some(json!({"comment": "  "})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(app.total_entries().await, before);
    assert_eq!(
        app.get(&format!("/api/tenants/{t}")).await.1["state"],
        "active"
    );

    // Carol approves: the offboarding runs in the same write, as Bob's action.
    let (s, done) = as_(
        &app,
        &carol,
        Method::POST,
        &approve,
        Some(json!({"comment": "checked the contract"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "executed");
    assert_eq!(done["result"]["state"], "offboarding");
    assert_eq!(done["decisions"][0]["comment"], "checked the contract");
    let tenant = app.get(&format!("/api/tenants/{t}")).await.1;
    assert_eq!(tenant["state"], "offboarding");
    let chain = app.chain(&format!("tenant:{t}")).await;
    let actions: Vec<&str> = chain
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    let tail = &actions[actions.len() - 4..];
    assert_eq!(
        tail,
        [
            "approval.requested.v1",
            "tenant.offboarding.started.v1",
            "approval.approved.v1",
            "approval.executed.v1"
        ]
    );
    let started = &chain[chain.len() - 3];
    assert_eq!(
        started["actor"]["id"], "bob",
        "the action is the requester's: {started}"
    );
    let approved = &chain[chain.len() - 2];
    assert_eq!(approved["actor"]["id"], "carol");
    assert_eq!(approved["data"]["comment"], "checked the contract");

    // Closed: no more decisions.
    let (s, v) = as_(
        &app,
        &carol,
        Method::POST,
        &format!("/api/approvals/{rid}/reject"),
        Some(json!({"comment": "late"})),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("approval_closed")),
        "{v}"
    );

    // The consoles show the queue, the request and the routes.
    let (s, html, _) = app.get_text("/platform/approvals").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("My pending decisions") && html.contains("My open requests"));
    assert!(html.contains("Offboard Acme"), "{html}");
    let (s, html, _) = app.get_text(&format!("/platform/approvals/{rid}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("checked the contract"));
    let (s, html, _) = app.get_text("/platform/approvals/routes").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Two-person offboarding"));
    let (s, v) = app.get(&format!("/api/tenants/{t}/approvals")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["items"][0]["id"],
        rid.as_str(),
        "the tenant's list has requests about it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_action_is_rechecked_and_fails_cleanly_when_the_tenant_changed() {
    let app = TestApp::spawn().await;
    let bob = person(&app, "bob", "business_admin").await;
    let carol = person(&app, "carol", "business_admin").await;
    let t = tenant(&app, "Globex").await;
    let r = route(
        &app,
        json!({"name": "Offboarding", "action": "tenant.offboard", "approvers": ["role:business_admin"]}),
    )
    .await;
    let (s, req) = as_(
        &app,
        &bob,
        Method::POST,
        &format!("/api/tenant-lifecycle/{t}/offboard"),
        Some(json!({"reason": "asked"})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{req}");
    let rid = req["id"].as_str().unwrap().to_string();
    // A request that could not run now is refused at once, not held.
    let (s, v) = app.action(&t, "reinstate", json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // Meanwhile the route goes and the tenant is offboarded directly, with another grace.
    let (s, _) = app
        .send(
            Method::DELETE,
            &format!("/api/approvals/routes/{}", r["id"].as_str().unwrap()),
            None,
            Some(crate::helpers::TOKEN),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = app
        .action(&t, "offboard", json!({"reason": "direct", "grace_days": 3}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let deadline = v["deadline_at"].clone();

    // The old request, approved now, re-checks and fails: nothing of it is done.
    let (s, done) = approve(&app, &carol, &json!(rid), "ok").await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "failed", "{done}");
    assert!(
        done["failure"]
            .as_str()
            .unwrap()
            .starts_with("tenant_read_only"),
        "{done}"
    );
    let now = app.get(&format!("/api/tenant-lifecycle/{t}/state")).await.1;
    assert_eq!(
        now["deadline_at"], deadline,
        "the direct offboarding's deadline stands"
    );
    let actions = app.actions(&format!("tenant:{t}")).await;
    assert_eq!(actions.last().unwrap(), "approval.failed.v1");
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "tenant.offboarding.started.v1")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sla_breach_escalates_and_an_undecided_request_expires_with_the_clock_moved() {
    let app = TestApp::spawn().await;
    let bob = person(&app, "bob", "business_admin").await;
    let carol = person(&app, "carol", "business_admin").await;
    let t = tenant(&app, "Initech").await;
    route(
        &app,
        json!({"name": "Offboarding", "action": "tenant.offboard", "approvers": ["operator:carol"], "sla_hours": 2, "escalation": "role:super_admin"}),
    )
    .await;
    let (s, req) = as_(
        &app,
        &bob,
        Method::POST,
        &format!("/api/tenant-lifecycle/{t}/offboard"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{req}");
    let rid = req["id"].as_str().unwrap().to_string();

    // Within the SLA nothing is breached.
    let (s, v) = app.post("/api/jobs/approval_sla/run", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        app.get("/api/approvals?breached=true").await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    app.clock.advance(Duration::hours(3));
    let (s, v) = app.post("/api/jobs/approval_sla/run", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, b) = app.get("/api/approvals?breached=true").await;
    assert_eq!(b["items"][0]["id"], rid.as_str(), "{b}");
    assert_eq!(b["items"][0]["breached"], true);
    let chain = app.chain(&format!("tenant:{t}")).await;
    let breach = chain.last().unwrap();
    assert_eq!(breach["action"], "approval.breached.v1");
    assert_eq!(breach["data"]["escalation"], "role:super_admin");
    let (s, html, _) = app.get_text("/platform/approvals/breaches").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Offboard Initech") && html.contains("role:super_admin"));
    // A second run breaches nothing again.
    app.post("/api/jobs/approval_sla/run", json!({})).await;
    let breaches = app.actions(&format!("tenant:{t}")).await;
    assert_eq!(
        breaches
            .iter()
            .filter(|a| *a == "approval.breached.v1")
            .count(),
        1
    );

    // Still decidable while breached; undecided for 7 more days, it expires.
    app.clock.advance(Duration::days(8));
    app.post("/api/jobs/approval_sla/run", json!({})).await;
    let (_, x) = app.get(&format!("/api/approvals/{rid}")).await;
    assert_eq!(x["state"], "expired", "{x}");
    let (s, v) = approve(&app, &carol, &json!(rid), "late").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("approval_closed")),
        "{v}"
    );
    assert_eq!(
        app.get(&format!("/api/tenants/{t}")).await.1["state"],
        "active"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downgrades_exports_and_api_keys_are_held_by_their_routes() {
    let app = TestApp::spawn().await;
    let bob = person(&app, "bob", "business_admin").await;
    let carol = person(&app, "carol", "business_admin").await;
    let t = tenant(&app, "Umbrella").await;
    for (code, amount) in [("gold", 50_000), ("bronze", 1_000)] {
        let (s, v) = app
            .post(
                "/api/plans",
                json!({"code": code, "name": code, "amount_minor": amount, "currency": "USD"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    route(&app, json!({"name": "Downgrades", "action": "plan.downgrade", "condition": "price_drop_minor > 0", "approvers": ["role:business_admin"]})).await;
    route(&app, json!({"name": "Big exports", "action": "tenant.export", "condition": "size_bytes > 100", "approvers": ["role:business_admin"]})).await;
    route(
        &app,
        json!({"name": "Keys", "action": "api_key.issue", "approvers": ["role:business_admin"]}),
    )
    .await;

    // An upgrade is not a downgrade: it runs at once. The way back down is held.
    let (s, v) = as_(
        &app,
        &bob,
        Method::PATCH,
        &format!("/api/tenants/{t}"),
        Some(json!({"plan": "gold"})),
    )
    .await;
    assert_eq!(
        (s, v["plan"].as_str()),
        (StatusCode::OK, Some("gold")),
        "{v}"
    );
    let (s, req) = as_(
        &app,
        &bob,
        Method::PATCH,
        &format!("/api/tenants/{t}"),
        Some(json!({"plan": "bronze", "country": "DE"})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{req}");
    assert_eq!(req["facts"]["price_drop_minor"], 49_000);
    assert_eq!(
        app.get(&format!("/api/tenants/{t}")).await.1["plan"],
        "gold"
    );
    let (_, done) = approve(&app, &carol, &req["id"], "customer asked").await;
    assert_eq!(done["state"], "executed", "{done}");
    let now = app.get(&format!("/api/tenants/{t}")).await.1;
    assert_eq!(
        (now["plan"].as_str(), now["country"].as_str()),
        (Some("bronze"), Some("DE")),
        "the whole edit ran"
    );

    // An export over the route's size is held; once approved it can be downloaded.
    let (s, req) = as_(
        &app,
        &bob,
        Method::POST,
        &format!("/api/tenants/{t}/exports"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{req}");
    assert!(req["facts"]["size_bytes"].as_i64().unwrap() > 100);
    let (_, done) = approve(&app, &carol, &req["id"], "DSAR").await;
    assert_eq!(done["state"], "executed", "{done}");
    let url = done["result"]["download_url"].as_str().unwrap().to_string();
    let (s, doc) = app.get(&url).await;
    assert_eq!(s, StatusCode::OK, "{doc}");
    assert_eq!(doc["format"], "tenantry.tenant-export.v1");
    assert_eq!(doc["sections"]["tenant"]["display_name"], "Umbrella");
    app.clock.advance(Duration::hours(25));
    assert_eq!(app.get(&url).await.0, StatusCode::GONE);

    // A key held for approval is handed out at once but refused until approved.
    let (s, persona) = app
        .post(
            &format!("/api/tenants/{t}/personas"),
            json!({"kind": "service", "display_name": "CI", "roles": ["tenant_admin"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{persona}");
    let admin = persona["id"].as_str().unwrap().to_string();
    let (s, held) = as_(
        &app,
        &bob,
        Method::POST,
        &format!("/api/tenants/{t}/api-keys"),
        Some(json!({"persona_id": admin, "name": "ci", "scopes": ["metrics.read"]})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{held}");
    let key = held["key"].as_str().unwrap().to_string();
    let whoami = || app.send(Method::GET, "/api/whoami", None, Some(&key));
    assert_eq!(whoami().await.0, StatusCode::UNAUTHORIZED);
    let (_, done) = approve(&app, &carol, &held["approval"]["id"], "for CI").await;
    assert_eq!(done["state"], "executed", "{done}");
    assert_eq!(whoami().await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_routes_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    let before = app.total_entries().await;
    for body in [
        json!({"name": "x", "action": "tenant.vanish", "approvers": ["role:super_admin"]}),
        json!({"name": "x", "action": "tenant.export", "condition": "rows > 5", "approvers": ["role:super_admin"]}),
        json!({"name": "x", "action": "tenant.offboard", "approvers": []}),
        json!({"name": "x", "action": "tenant.offboard", "approvers": ["role:wizard"]}),
        json!({"name": "x", "action": "tenant.offboard", "approvers": ["role:super_admin"], "required": 9}),
        json!({"name": "x", "action": "tenant.offboard", "approvers": ["role:super_admin"], "sla_hours": 0}),
    ] {
        let (s, v) = app.post("/api/approvals/routes", body.clone()).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")),
            "{body}: {v}"
        );
    }
    let (s, v) = app.get("/api/approvals?mine=everyone").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = app.get("/api/approvals?state=limbo").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(app.total_entries().await, before);
}

/// A persona of `tenant` with roles `roles`, and an API key of it holding `scopes` (issued by
/// the operator token, which tenant routes do not hold).
async fn member_key(
    app: &TestApp,
    tenant: &str,
    name: &str,
    roles: &[&str],
    scopes: &[&str],
) -> (String, String) {
    let (s, p) = app
        .post(
            &format!("/api/tenants/{tenant}/personas"),
            json!({"kind": "service", "display_name": name, "roles": roles}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (s, k) = app
        .post(
            &format!("/api/tenants/{tenant}/api-keys"),
            json!({"persona_id": p["id"], "name": name, "scopes": scopes}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    (
        p["id"].as_str().unwrap().to_string(),
        k["key"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_route_holds_its_members_key_issue_until_another_admin_approves() {
    let app = TestApp::spawn().await;
    let carol = person(&app, "carol", "business_admin").await;
    let t = tenant(&app, "Hooli").await;
    let other = tenant(&app, "Pied Piper").await;
    let (ana, ana_key) = member_key(&app, &t, "Ana", &["tenant_admin"], &["tenant.admin"]).await;
    let (_, ben_key) = member_key(&app, &t, "Ben", &["tenant_admin"], &["tenant.admin"]).await;
    let (_, viewer_key) = member_key(&app, &t, "Vic", &["tenant_admin"], &["approvals.read"]).await;
    let (_, outsider) =
        member_key(&app, &other, "Olga", &["tenant_admin"], &["tenant.admin"]).await;
    let base = format!("/api/tenants/{t}/approvals");
    let (s, r) = as_(&app, &ana_key, Method::POST, &format!("{base}/routes"),
        Some(json!({"name": "Keys need a second admin", "action": "api_key.issue", "approvers": ["role:tenant_admin"], "sla_hours": 8}))).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["tenant_id"], t.as_str());
    // A persona approver must be the tenant's own.
    let (s, v) = as_(&app, &ana_key, Method::POST, &format!("{base}/routes"),
        Some(json!({"name": "x", "action": "api_key.issue", "approvers": [format!("persona:{}", uuid::Uuid::now_v7())]}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    // Ana's key issue is held; the operator's would not be (tenant routes hold members' actions).
    let (s, held) = as_(
        &app,
        &ana_key,
        Method::POST,
        &format!("/api/tenants/{t}/api-keys"),
        Some(json!({"persona_id": ana, "name": "etl", "scopes": ["metrics.read"]})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{held}");
    let rid = held["approval"]["id"].as_str().unwrap().to_string();
    assert_eq!(held["approval"]["route_tenant_id"], t.as_str());

    // Not Ana, not an operator, not a reader without the decide scope, not another tenant.
    let approve = format!("{base}/{rid}/approve");
    let body = Some(json!({"comment": "ok"}));
    let (s, v) = as_(&app, &ana_key, Method::POST, &approve, body.clone()).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("self_approval")),
        "{v}"
    );
    let (s, v) = as_(
        &app,
        &carol,
        Method::POST,
        &format!("/api/approvals/{rid}/approve"),
        body.clone(),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_an_approver")),
        "{v}"
    );
    let (s, v) = as_(&app, &viewer_key, Method::POST, &approve, body.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _) = as_(&app, &outsider, Method::POST, &approve, body.clone()).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "another tenant's request does not exist for it"
    );
    let (_, list) = as_(
        &app,
        &viewer_key,
        Method::GET,
        &format!("{base}?state=pending"),
        None,
    )
    .await;
    assert_eq!(list["items"][0]["id"], rid.as_str(), "{list}");

    // Ben approves: the key works.
    let (_, queue) = as_(
        &app,
        &ben_key,
        Method::GET,
        &format!("{base}?mine=decide"),
        None,
    )
    .await;
    assert_eq!(queue["items"][0]["id"], rid.as_str(), "{queue}");
    let (s, done) = as_(
        &app,
        &ben_key,
        Method::POST,
        &approve,
        Some(json!({"comment": "ETL reads metrics only"})),
    )
    .await;
    assert_eq!(
        (s, done["state"].as_str()),
        (StatusCode::OK, Some("executed")),
        "{done}"
    );
    let key = held["key"].as_str().unwrap();
    assert_eq!(
        app.send(Method::GET, "/api/whoami", None, Some(key))
            .await
            .0,
        StatusCode::OK
    );
    let actions = app.actions(&format!("tenant:{t}")).await;
    let n = actions.len();
    assert_eq!(
        &actions[n - 3..],
        [
            "api_key.issued.v1",
            "approval.approved.v1",
            "approval.executed.v1"
        ]
    );

    // In the Tenant console: Dora, a human admin, finds Ana's next request in "My pending
    // decisions" and approves it through the form (CSRF-protected).
    use crate::console::{client, form};
    let (cookie, csrf, _) =
        crate::identity::tenant_admin_session(&app, &t, "Dora", "dora@hooli.example").await;
    let (s, held) = as_(
        &app,
        &ana_key,
        Method::POST,
        &format!("/api/tenants/{t}/api-keys"),
        Some(json!({"persona_id": ana, "name": "backup", "scopes": ["audit.read"]})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{held}");
    let rid = held["approval"]["id"].as_str().unwrap().to_string();
    let page = |path: String| {
        let (app, cookie) = (&app, &cookie);
        async move {
            let res = client()
                .get(app.url(&path))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            res.text().await.unwrap()
        }
    };
    let queue = page(format!("/tenant/{t}/approvals")).await;
    let pending = queue.split("My open requests").next().unwrap();
    assert!(
        pending.contains(&rid),
        "Dora's pending decisions list the request: {queue}"
    );
    let detail = page(format!("/tenant/{t}/approvals/{rid}")).await;
    assert!(
        detail.contains("Issue API key backup") && detail.contains("name=\"verdict\""),
        "{detail}"
    );
    let decide = |csrf: String| {
        client()
            .post(app.url(&format!("/tenant/{t}/approvals/{rid}/decide")))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("verdict", "approve"),
                ("comment", "backup job needs the ledger"),
                ("csrf", &csrf),
            ]))
            .send()
    };
    assert_eq!(
        decide("forged".into()).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get(&format!("/api/approvals/{rid}")).await.1["state"],
        "pending"
    );
    let res = decide(csrf.clone()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, x) = app.get(&format!("/api/approvals/{rid}")).await;
    assert_eq!(x["state"], "executed", "{x}");
    assert_eq!(x["decisions"][0]["comment"], "backup job needs the ledger");
    let routes = page(format!("/tenant/{t}/approvals/routes")).await;
    assert!(routes.contains("Keys need a second admin"));
}
