//! Revenue posture and plan enforcement (issue 10, second half; dashboard spec §3.4, HQ PRD
//! §6): MRR, plan distribution and trials from maintained counters, monthly MRR snapshots, and
//! entitlement exceptions opening and closing with their events, over real HTTP.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TOKEN, TestApp};

async fn tenant_on(app: &TestApp, app_id: &str, name: &str, plan: &str) -> String {
    let t = app
        .tenant_with(
            json!({"app_id": app_id, "display_name": name, "region": "us-east-1", "plan": plan}),
        )
        .await;
    t["id"].as_str().unwrap().to_string()
}

async fn ok_action(app: &TestApp, id: &str, action: &str, body: Value) {
    let (s, v) = app.action(id, action, body).await;
    assert_eq!(s, StatusCode::OK, "{action}: {v}");
}

async fn revenue(app: &TestApp) -> Value {
    let (s, v) = app.get("/api/platform/revenue").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn usd(v: &Value) -> i64 {
    v["mrr"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["currency"] == "USD")
        .map_or(0, |m| m["amount_minor"].as_i64().unwrap())
}

fn plan_count(v: &Value, plan: &str) -> u64 {
    v["plan_distribution"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plan"] == plan)
        .map_or(0, |p| p["tenants"].as_u64().unwrap())
}

async fn run(app: &TestApp, job: &str) -> Value {
    let (s, v) = app.post(&format!("/api/jobs/{job}/run"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["outcome"], "ok", "{v}");
    v
}

async fn put_override(app: &TestApp, id: &str, body: Value) -> (StatusCode, Value) {
    app.send(
        Method::PUT,
        &format!("/api/tenants/{id}/enforcement/override"),
        Some(body),
        Some(TOKEN),
    )
    .await
}

async fn exceptions(app: &TestApp, query: &str) -> Vec<Value> {
    let (s, v) = app
        .get(&format!("/api/platform/enforcement/exceptions{query}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mrr_and_plan_distribution_follow_the_lifecycle_from_counters() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    // A yearly plan: 1000.02 a year is 83.335 a month, rounded half up to 83.34.
    let (s, v) = app
        .post(
            "/api/plans",
            json!({"code": "annual", "name": "Annual", "amount_minor": 100_002, "currency": "USD", "interval": "year"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    let empty = revenue(&app).await;
    assert_eq!(usd(&empty), 0, "{empty}");
    assert_eq!(empty["paying_tenants"], 0);
    assert_eq!(empty["mrr_trend"], json!([]));

    let a = tenant_on(&app, &app_id, "Alpha", "pro").await;
    let b = tenant_on(&app, &app_id, "Bravo", "pro").await;
    let c = tenant_on(&app, &app_id, "Charlie", "agency").await;
    let d = tenant_on(&app, &app_id, "Delta", "annual").await;
    let _e = tenant_on(&app, &app_id, "Echo", "free").await;
    // Provisioned tenants are on their plans but pay nothing yet.
    let v = revenue(&app).await;
    assert_eq!(usd(&v), 0, "{v}");
    assert_eq!(plan_count(&v, "pro"), 2, "{v}");
    assert_eq!(plan_count(&v, "free"), 1, "{v}");
    assert_eq!(plan_count(&v, "enterprise"), 0, "every plan is listed: {v}");
    assert!(
        v["plan_distribution"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["plan"] == "enterprise")
    );

    for id in [&a, &b, &c, &d] {
        ok_action(&app, id, "activate", json!({})).await;
    }
    let v = revenue(&app).await;
    assert_eq!(usd(&v), 2 * 4_900 + 19_900 + 8_334, "{v}");
    assert_eq!(v["paying_tenants"], 4);

    // Suspended tenants are not paying; they stay on their plan.
    ok_action(&app, &b, "suspend", json!({"reason": "card declined"})).await;
    let v = revenue(&app).await;
    assert_eq!(usd(&v), 4_900 + 19_900 + 8_334, "{v}");
    assert_eq!(v["paying_tenants"], 3);
    assert_eq!(plan_count(&v, "pro"), 2, "{v}");

    // A plan change moves the tenant between plans in the same write.
    let (s, t) = app
        .patch(&format!("/api/tenants/{a}"), json!({"plan": "agency"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let v = revenue(&app).await;
    assert_eq!(usd(&v), 2 * 19_900 + 8_334, "{v}");
    assert_eq!(plan_count(&v, "pro"), 1, "{v}");
    assert_eq!(plan_count(&v, "agency"), 2, "{v}");

    // A price change is read at once: MRR is computed from the counters at read time.
    let (s, p) = app
        .send(
            Method::PUT,
            "/api/plans/agency",
            Some(json!({"name": "Agency", "amount_minor": 20_000, "currency": "USD"})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let v = revenue(&app).await;
    assert_eq!(usd(&v), 2 * 20_000 + 8_334, "{v}");
    let now_mrr = usd(&v);

    // The monthly snapshot: written once per month, whatever the number of runs.
    run(&app, "snapshot_mrr").await;
    let again = run(&app, "snapshot_mrr").await;
    assert!(
        again["summary"]
            .as_str()
            .unwrap()
            .contains("nothing written"),
        "{again}"
    );
    let v = revenue(&app).await;
    assert_eq!(v["mrr_trend"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["mrr_trend"][0]["period"], "202611");
    assert_eq!(v["mrr_trend"][0]["mrr"][0]["amount_minor"], now_mrr);
    let snapshots = app
        .actions("platform")
        .await
        .into_iter()
        .filter(|a| a == "revenue.mrr.snapshot.v1")
        .count();
    assert_eq!(snapshots, 1);

    // Next month has its own snapshot with the MRR of then.
    ok_action(&app, &b, "reinstate", json!({})).await;
    app.clock.advance(Duration::days(12));
    run(&app, "snapshot_mrr").await;
    let v = revenue(&app).await;
    let trend = v["mrr_trend"].as_array().unwrap();
    assert_eq!(trend.len(), 2, "{v}");
    assert_eq!(trend[1]["period"], "202612");
    assert_eq!(trend[1]["mrr"][0]["amount_minor"], now_mrr + 4_900, "{v}");
    assert_eq!(trend[0]["mrr"][0]["amount_minor"], now_mrr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trials_started_converted_and_expiring_move_with_the_clock() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let short = tenant_on(&app, &app_id, "Short Trial", "pro").await;
    let converts = tenant_on(&app, &app_id, "Converts", "pro").await;
    let long = tenant_on(&app, &app_id, "Long Trial", "agency").await;
    ok_action(&app, &short, "start-trial", json!({"trial_days": 5})).await;
    ok_action(&app, &converts, "start-trial", json!({"trial_days": 20})).await;
    ok_action(&app, &long, "start-trial", json!({"trial_days": 14})).await;

    let v = revenue(&app).await;
    assert_eq!(
        v["trials"],
        json!({"started_30d": 3, "expiring_7d": 1, "converted_30d": 0}),
        "{v}"
    );
    assert_eq!(v["paying_tenants"], 0, "trials do not pay");

    ok_action(&app, &converts, "activate", json!({})).await;
    let v = revenue(&app).await;
    assert_eq!(
        v["trials"],
        json!({"started_30d": 3, "expiring_7d": 1, "converted_30d": 1}),
        "{v}"
    );
    assert_eq!(usd(&v), 4_900);

    // Ten days on: the short trial has ended (and been suspended by expire_trials), the long
    // one ends in four days.
    app.clock.advance(Duration::days(10));
    run(&app, "expire_trials").await;
    let v = revenue(&app).await;
    assert_eq!(
        v["trials"],
        json!({"started_30d": 3, "expiring_7d": 1, "converted_30d": 1}),
        "{v}"
    );
    let (_, st) = app
        .get(&format!("/api/tenant-lifecycle/{short}/state"))
        .await;
    assert_eq!(st["state"], "suspended", "{st}");

    // A month later every bucket has left the 30-day window.
    app.clock.advance(Duration::days(25));
    let v = revenue(&app).await;
    assert_eq!(
        v["trials"],
        json!({"started_30d": 0, "expiring_7d": 0, "converted_30d": 0}),
        "{v}"
    );
}

/// A plan with tight limits, and a tenant on it with two service personas and one key.
async fn tight_tenant(app: &TestApp) -> String {
    let (s, v) = app
        .post(
            "/api/plans",
            json!({"code": "tiny", "name": "Tiny", "amount_minor": 900, "currency": "USD",
                   "max_personas": 1, "max_api_keys": 5}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let app_id = app.app("Projex Work").await;
    let id = tenant_on(app, &app_id, "Crowded Co", "tiny").await;
    for name in ["robot one", "robot two"] {
        let (s, v) = app
            .post(
                &format!("/api/tenants/{id}/personas"),
                json!({"kind": "service", "display_name": name, "roles": ["member"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enforcer_opens_an_exception_over_a_limit_and_closes_it_once_fixed() {
    let app = TestApp::spawn().await;
    let id = tight_tenant(&app).await;
    let chain = format!("tenant:{id}");
    assert!(exceptions(&app, "").await.is_empty());

    let r = run(&app, "plan_enforcer").await;
    assert!(
        r["summary"]
            .as_str()
            .unwrap()
            .contains("1 exception opened"),
        "{r}"
    );
    let open = exceptions(&app, "").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["tenant_id"], id.as_str());
    assert_eq!(open[0]["tenant_name"], "Crowded Co");
    assert_eq!(open[0]["reason"], "personas_over_limit");
    assert_eq!(open[0]["used"], 2);
    assert_eq!(open[0]["limit"], 1);
    assert_eq!(open[0]["plan"], "tiny");
    let entries = app.chain(&chain).await;
    let opened: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "plan.limit.exceeded.v1")
        .collect();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0]["data"]["reason"], "personas_over_limit");
    // A run on demand is attributed to the operator who asked for it.
    assert_eq!(opened[0]["actor"]["id"], "admin-ops-token");
    let v = revenue(&app).await;
    assert_eq!(v["entitlement_exceptions"], 1);
    // The console: the Enforcement page lists it, the dashboard counts it.
    let (s, html, _) = app.get_text("/platform/enforcement").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("Crowded Co") && html.contains("personas_over_limit"),
        "{html}"
    );
    let (s, html, _) = app.get_text("/platform").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("MRR") && html.contains("1 open"), "{html}");

    // The filter, and a bad filter.
    assert_eq!(
        exceptions(&app, "?reason=personas_over_limit").await.len(),
        1
    );
    assert!(
        exceptions(&app, "?reason=api_keys_over_limit")
            .await
            .is_empty()
    );
    let (s, v) = app
        .get("/api/platform/enforcement/exceptions?reason=overdue")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["code"], "invalid_query");

    // Another run changes nothing: an open exception is not reopened.
    let before = app.chain(&chain).await.len();
    run(&app, "plan_enforcer").await;
    assert_eq!(app.chain(&chain).await.len(), before);

    // The plan's limit is raised: the next run closes the exception.
    let (s, p) = app
        .send(
            Method::PUT,
            "/api/plans/tiny",
            Some(json!({"name": "Tiny", "amount_minor": 900, "currency": "USD", "max_personas": 10, "max_api_keys": 5})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let r = run(&app, "plan_enforcer").await;
    assert!(r["summary"].as_str().unwrap().contains("1 closed"), "{r}");
    assert!(exceptions(&app, "").await.is_empty());
    let actions = app.actions(&chain).await;
    assert_eq!(
        actions.last().map(String::as_str),
        Some("plan.limit.resolved.v1")
    );
    let v = revenue(&app).await;
    assert_eq!(v["entitlement_exceptions"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_is_an_exception_at_once_and_bad_input_writes_nothing() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let id = tenant_on(&app, &app_id, "Pilot Co", "pro").await;
    let chain = format!("tenant:{id}");
    let path = format!("/api/tenants/{id}/enforcement/override");

    let before = app.total_entries().await;
    let refusals = [
        (
            json!({"reason": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"reason": "pilot", "expires_at": "2020-01-01T00:00:00Z"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"reason": "pilot", "expires_at": "next tuesday"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"reason": "x".repeat(501)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"reason": "pilot", "colour": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (body, status, code) in refusals {
        let res = app
            .client
            .put(app.url(&path))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{body}");
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "application/problem+json"
        );
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["code"], code, "{body}: {v}");
    }
    let res = app
        .client
        .put(app.url(&path))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{,}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let (s, v) = put_override(
        &app,
        &uuid::Uuid::now_v7().to_string(),
        json!({"reason": "pilot"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["code"], "not_found");
    let (s, v) = app.send(Method::DELETE, &path, None, Some(TOKEN)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no override to clear: {v}");
    let (s, _) = app.get(&path).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        app.total_entries().await,
        before,
        "no refused request wrote an audit entry"
    );
    assert!(exceptions(&app, "").await.is_empty());

    // Accepted: the override and its exception, in one write.
    let (s, o) = put_override(
        &app,
        &id,
        json!({"reason": "Negotiated pilot", "expires_at": "2026-11-21T12:00:00Z"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{o}");
    assert_eq!(o["active"], true);
    assert_eq!(o["set_by"], "admin-ops-token");
    let open = exceptions(&app, "?reason=override").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["detail"], "Negotiated pilot");
    let actions = app.actions(&chain).await;
    assert_eq!(
        &actions[actions.len() - 2..],
        ["enforcement.override.set.v1", "plan.limit.exceeded.v1"]
    );
    let (s, got) = app.get(&path).await;
    assert_eq!(s, StatusCode::OK, "{got}");
    assert_eq!(got["reason"], "Negotiated pilot");

    // Past its expiry, the enforcer closes the exception.
    app.clock.advance(Duration::hours(3));
    run(&app, "plan_enforcer").await;
    assert!(exceptions(&app, "").await.is_empty());
    let (_, got) = app.get(&path).await;
    assert_eq!(got["active"], false, "{got}");

    // Set again without expiry, then cleared: set, exceeded, cleared, resolved.
    let (s, _) = put_override(&app, &id, json!({"reason": "Second pilot"})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(exceptions(&app, "").await.len(), 1);
    let (s, v) = app.send(Method::DELETE, &path, None, Some(TOKEN)).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert!(exceptions(&app, "").await.is_empty());
    let actions = app.actions(&chain).await;
    assert_eq!(
        &actions[actions.len() - 4..],
        [
            "enforcement.override.set.v1",
            "plan.limit.exceeded.v1",
            "enforcement.override.cleared.v1",
            "plan.limit.resolved.v1"
        ]
    );
}
