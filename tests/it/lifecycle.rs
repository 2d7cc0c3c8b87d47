//! The lifecycle state machine (PRODUCT.md A3; operator guide §1.2), the read-only rule, and the
//! scheduler's shredding and trial expiry with the clock moved.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, t0};

const ACTIONS: [&str; 6] = [
    "start-trial",
    "activate",
    "suspend",
    "reinstate",
    "offboard",
    "cancel-offboarding",
];

/// Drives a fresh tenant into `state` and returns its id.
async fn tenant_in(app: &TestApp, app_id: &str, state: &str) -> String {
    let t = app
        .tenant(app_id, &format!("T {state} {}", uuid::Uuid::now_v7()))
        .await;
    let id = t["id"].as_str().unwrap().to_string();
    let path: &[(&str, Value)] = match state {
        "provisioned" => &[],
        "trial" => &[("start-trial", json!({}))],
        "active" => &[("activate", json!({}))],
        "suspended" => &[
            ("activate", json!({})),
            ("suspend", json!({"reason": "non-payment"})),
        ],
        "offboarding" => &[
            ("activate", json!({})),
            ("offboard", json!({"reason": "leaving"})),
        ],
        _ => unreachable!(),
    };
    for (action, body) in path {
        let (s, v) = app.action(&id, action, body.clone()).await;
        assert_eq!(s, StatusCode::OK, "{action}: {v}");
    }
    id
}

fn body_for(action: &str) -> Value {
    match action {
        "suspend" => json!({"reason": "abuse report"}),
        _ => json!({}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_lists_exactly_the_transitions_that_succeed() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    for state in ["provisioned", "trial", "active", "suspended", "offboarding"] {
        let probe = tenant_in(&app, &app_id, state).await;
        let (_, sv) = app
            .get(&format!("/api/tenant-lifecycle/{probe}/state"))
            .await;
        assert_eq!(sv["state"], state);
        let allowed: Vec<String> = sv["allowed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        for action in ACTIONS {
            let id = tenant_in(&app, &app_id, state).await;
            let before = app.chain(&format!("tenant:{id}")).await.len();
            let (s, v) = app.action(&id, action, body_for(action)).await;
            let ok = s == StatusCode::OK;
            assert_eq!(
                ok,
                allowed.contains(&action.to_string()),
                "{state} --{action}--> {s} {v}"
            );
            let after = app.chain(&format!("tenant:{id}")).await.len();
            if ok {
                assert_eq!(after, before + 1, "one entry per change");
            } else {
                assert_eq!(s, StatusCode::CONFLICT, "{state} {action}: {v}");
                let expected = if state == "offboarding" {
                    "tenant_read_only"
                } else {
                    "invalid_transition"
                };
                assert_eq!(v["code"], expected, "{state} {action}: {v}");
                assert_eq!(after, before, "a refused transition writes no entry");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_needs_a_reason_and_reinstate_only_works_from_suspended() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let id = tenant_in(&app, &app_id, "active").await;
    for body in [json!({}), json!({"reason": "   "})] {
        let (s, v) = app.action(&id, "suspend", body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["errors"][0]["field"], "reason");
    }
    let (s, v) = app.action(&id, "reinstate", json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(v["code"], "invalid_transition");
    assert_eq!(v["allowed"], json!(["suspend", "offboard"]));
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("cannot reinstate a tenant in state 'active'"),
        "{v}"
    );

    let (s, v) = app
        .action(
            &id,
            "suspend",
            json!({"reason": "non-payment: invoice 1042 overdue"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["state"], "suspended");
    assert_eq!(v["reason"], "non-payment: invoice 1042 overdue");
    assert_eq!(v["allowed"], json!(["reinstate", "offboard"]));
    let (s, v) = app
        .action(&id, "reinstate", json!({"reason": "paid"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["state"], "active");
    let actions = app.actions(&format!("tenant:{id}")).await;
    assert_eq!(
        actions,
        [
            "tenant.created.v1",
            "tenant.pool.assigned.v1",
            "tenant.roles.seeded.v1",
            "tenant.activated.v1",
            "tenant.suspended.v1",
            "tenant.reinstated.v1"
        ]
    );
    let chain = app.chain(&format!("tenant:{id}")).await;
    assert_eq!(
        chain[4]["data"]["reason"],
        "non-payment: invoice 1042 overdue"
    );
    assert_eq!(chain[4]["data"]["from"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offboarding_is_read_only_has_a_deadline_and_can_be_cancelled_back() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let id = tenant_in(&app, &app_id, "suspended").await;
    let (s, v) = app
        .action(&id, "offboard", json!({"reason": "customer leaves"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "offboarding");
    assert_eq!(
        v["deadline_at"],
        json!((t0() + Duration::days(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    );
    assert_eq!(v["allowed"], json!(["cancel-offboarding"]));

    let (s, v) = app
        .patch(&format!("/api/tenants/{id}"), json!({"plan": "pro"}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(v["code"], "tenant_read_only");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("cancel the offboarding"),
        "{v}"
    );
    let (s, v) = app.action(&id, "reinstate", json!({})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("tenant_read_only"))
    );

    let (s, v) = app
        .action(&id, "cancel-offboarding", json!({"reason": "renewed"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "suspended", "back to the state it came from");
    assert_eq!(v["deadline_at"], Value::Null);

    // A custom grace period (the 90-day archive of the tenant-management seed).
    let (s, v) = app.action(&id, "offboard", json!({"grace_days": 90})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["deadline_at"],
        json!((t0() + Duration::days(90)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    );
    for bad in [
        json!({"grace_days": -1}),
        json!({"grace_days": 4000}),
        json!({"grace_days": "ten"}),
    ] {
        let id = tenant_in(&app, &app_id, "active").await;
        let (s, v) = app.action(&id, "offboard", bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
    }
    let (s, v) = app
        .action(&id, "suspend", json!({"reason": "x", "grace_days": 3}))
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "grace_days belongs to offboard: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_shreds_at_the_deadline_and_the_chain_still_verifies() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let premium = app
        .tenant_with(json!({"app_id": app_id, "display_name": "Leaving Co", "region": "eu-west-1", "isolation_tier": "P",
                             "contact_email": "dpo@leaving.example.com", "slug": "leaving-co"}))
        .await;
    let id = premium["id"].as_str().unwrap().to_string();
    let dedicated = premium["pools"]["app"]["dedicated"]
        .as_str()
        .unwrap()
        .to_string();
    let staying = tenant_in(&app, &app_id, "active").await;
    app.action(&id, "activate", json!({})).await;
    app.action(
        &id,
        "offboard",
        json!({"reason": "contract ended", "grace_days": 7}),
    )
    .await;

    // Six days later: not yet due.
    app.clock.advance(Duration::days(6));
    let run = app
        .wait_for_run("shred_due_tenants", t0() + Duration::days(6))
        .await;
    assert_eq!(run["summary"], "shredded 0 tenants");
    assert_eq!(
        app.get(&format!("/api/tenants/{id}")).await.1["state"],
        "offboarding"
    );

    // Past the deadline: shredded by the scheduler on its own.
    app.clock.advance(Duration::days(2));
    let run = app
        .wait_for_run("shred_due_tenants", t0() + Duration::days(8))
        .await;
    assert_eq!(run["outcome"], "ok");
    assert_eq!(run["summary"], "shredded 1 tenant");
    assert_eq!(run["trigger"], "schedule");

    let (_, t) = app.get(&format!("/api/tenants/{id}")).await;
    assert_eq!(t["state"], "offboarded");
    assert_eq!(t["contact_email"], Value::Null);
    assert_eq!(t["display_name"], "");
    assert!(t["shredded_at"].is_string());
    let chain = app.chain(&format!("tenant:{id}")).await;
    let last = chain.last().unwrap();
    assert_eq!(last["action"], "tenant.shredded.v1");
    assert_eq!(
        last["actor"],
        json!({"kind": "system", "id": "job:shred_due_tenants"})
    );
    assert!(
        chain[..chain.len() - 1].iter().all(|e| e["data"].is_null()),
        "earlier data is shredded"
    );
    let (_, export, _) = app
        .get_text(&format!("/api/audit/export?chain=tenant:{id}"))
        .await;
    assert!(
        !export.contains("dpo@leaving.example.com"),
        "no personal data left in the export"
    );

    let (_, v) = app
        .post(
            "/api/audit/verify",
            json!({"chain": format!("tenant:{id}"), "full": true}),
        )
        .await;
    assert_eq!(v["results"][0]["ok"], true, "{v}");
    assert_eq!(v["results"][0]["head_seq"], chain.len());

    // Its slug is free again, its dedicated pool drained, the other tenant untouched.
    let again = app.tenant_with(json!({"app_id": app_id, "display_name": "New Leaving", "region": "us-east-1", "slug": "leaving-co"})).await;
    assert_eq!(again["slug"], "leaving-co");
    let (_, pool) = app.get(&format!("/api/pools/{dedicated}")).await;
    assert_eq!(pool["status"], "drain");
    assert_eq!(pool["tenant_count"], 0);
    assert_eq!(
        app.get(&format!("/api/tenants/{staying}")).await.1["state"],
        "active"
    );
    let (s, v) = app.action(&id, "reinstate", json!({})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("tenant_read_only"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_past_its_end_is_suspended_with_the_reason_trial_expired() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let t = app.tenant_with(json!({"app_id": app_id, "display_name": "Trialist", "region": "us-east-1", "trial_days": 14})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let (_, v) = app.action(&id, "start-trial", json!({})).await;
    assert_eq!(
        v["trial_ends_at"],
        json!((t0() + Duration::days(14)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    );
    let converted = tenant_in(&app, &app_id, "trial").await;
    app.action(&converted, "activate", json!({})).await;

    app.clock.advance(Duration::days(15));
    let run = app
        .wait_for_run("expire_trials", t0() + Duration::days(15))
        .await;
    assert_eq!(run["summary"], "suspended 1 expired trial");
    let (_, sv) = app.get(&format!("/api/tenant-lifecycle/{id}/state")).await;
    assert_eq!(sv["state"], "suspended");
    assert_eq!(sv["reason"], "trial expired");
    let last = app.chain(&format!("tenant:{id}")).await.pop().unwrap();
    assert_eq!(last["action"], "tenant.suspended.v1");
    assert_eq!(last["actor"]["id"], "job:expire_trials");
    assert_eq!(
        app.get(&format!("/api/tenants/{converted}")).await.1["state"],
        "active"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_show_schedule_last_and_next_run_and_failures() {
    let app = TestApp::spawn().await;
    let (_, v) = app.get("/api/jobs").await;
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    // A control plane (the default role) also watches its installs for silence.
    assert_eq!(
        names,
        [
            "shred_due_tenants",
            "expire_trials",
            "checkpoint_chains",
            "prune_sessions",
            "silent_installs",
            "backup_daily",
            "end_expired_visits",
            "verify_ledger",
            "prune_webhooks",
            "prune_usage_events",
            "finalize_invoices",
            "mark_delinquent",
            "plan_enforcer",
            "snapshot_mrr",
            "alert_dispatcher",
            "approval_sla"
        ]
    );
    let shred = &v["items"][0];
    assert_eq!(shred["schedule"], "0 */15 * * * *");
    assert_eq!(shred["next_run_at"], "2026-11-21T10:15:00Z");
    assert_eq!(shred["last_run"], Value::Null);

    let (s, run) = app.post("/api/jobs/checkpoint_chains/run", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{run}");
    assert_eq!(run["trigger"], "manual");
    assert_eq!(run["outcome"], "ok");
    let (_, runs) = app.get("/api/jobs/checkpoint_chains/runs").await;
    assert_eq!(runs["items"][0], run);
    let (s, v) = app.post("/api/jobs/make_coffee/run", json!({})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}
