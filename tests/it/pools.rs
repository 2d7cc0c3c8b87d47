//! Pools, assignment by tier, flips and routing (operator guide §2; PRODUCT.md B8).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_assigned_by_tier() {
    let app = TestApp::spawn().await;
    let (_, v) = app.get("/api/pools").await;
    let ids: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "admin-1", "admin-2", "admin-3", "admin-4", "app-1", "app-2", "app-3", "app-4",
            "app-5", "app-6"
        ]
    );
    assert_eq!(v["items"][4]["module"], "core");
    assert_eq!(v["items"][9]["module"], "reports");

    let app_id = app.app("Projex Work").await;
    // Shared tenants spread over the least-loaded shared pools.
    let mut admins = Vec::new();
    for i in 0..4 {
        let t = app.tenant(&app_id, &format!("Shared {i}")).await;
        assert_eq!(t["isolation_tier"], "S");
        admins.push(t["pools"]["admin"].as_str().unwrap().to_string());
        if i == 1 {
            assert_eq!(
                t["pools"]["app"]["shared"],
                json!([
                    ["core", "app-2"],
                    ["billing", "app-4"],
                    ["reports", "app-6"]
                ])
            );
        }
    }
    admins.sort();
    assert_eq!(admins, ["admin-1", "admin-2", "admin-3", "admin-4"]);

    let p = app.tenant_with(json!({"app_id": app_id, "display_name": "Premium", "region": "us-east-1", "isolation_tier": "P"})).await;
    assert_eq!(p["pools"]["app"]["dedicated"], "app-7");
    assert!(p["pools"]["admin"].as_str().unwrap().starts_with("admin-"));
    let g = app.tenant_with(json!({"app_id": app_id, "display_name": "Gov", "region": "us-gov-1", "isolation_tier": "G"})).await;
    assert_eq!(g["pools"]["admin"], "admin-5");
    assert_eq!(g["pools"]["app"]["dedicated"], "app-8");
    let (_, pool) = app.get("/api/pools/admin-5").await;
    assert_eq!(pool["dedicated_to"], g["id"]);
    assert_eq!(pool["tenant_count"], 1);
    let actions = app.actions("platform").await;
    assert_eq!(
        actions.iter().filter(|a| *a == "pool.created.v1").count(),
        13,
        "10 default + 3 dedicated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flip_is_audited_and_reroutes_new_traffic_at_once() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let t = app.tenant(&app_id, "Routed").await;
    let id = t["id"].as_str().unwrap();
    let (s, r) = app.get(&format!("/api/routes/{id}?module=billing")).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        r,
        json!({"tenant_id": id, "module": "billing", "admin_pool": "admin-1", "app_pool": "app-3", "rerouted": false, "tenant_state": "provisioned"})
    );
    // Cached: the same answer again.
    assert_eq!(
        app.get(&format!("/api/routes/{id}?module=billing")).await.1,
        r
    );

    let (s, p) = app
        .post(
            "/api/pools/app-3/status",
            json!({"status": "degraded", "reason": "replica lag 12 s"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["status"], "degraded");
    assert_eq!(p["tenant_count"], 1);
    // The very next lookup no longer routes to the degraded pool (the cache was invalidated).
    let (_, r) = app.get(&format!("/api/routes/{id}?module=billing")).await;
    assert_eq!(r["app_pool"], "app-4");
    assert_eq!(r["rerouted"], true);
    let last = app.chain("platform").await.pop().unwrap();
    assert_eq!(last["action"], "pool.status.flipped.v1");
    assert_eq!(
        last["data"],
        json!({"from": "active", "to": "degraded", "reason": "replica lag 12 s", "tenant_count": 1})
    );

    // Drain the other billing pool too: no active billing pool is left.
    app.post(
        "/api/pools/app-4/status",
        json!({"status": "drain", "reason": "recycling"}),
    )
    .await;
    let (s, v) = app.get(&format!("/api/routes/{id}?module=billing")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["code"], "no_active_pool");
    assert!(
        v["detail"].as_str().unwrap().contains("'billing' app"),
        "{v}"
    );
    // Other modules still route.
    assert_eq!(
        app.get(&format!("/api/routes/{id}?module=core")).await.0,
        StatusCode::OK
    );

    app.post(
        "/api/pools/app-3/status",
        json!({"status": "active", "reason": "caught up"}),
    )
    .await;
    let (_, r) = app.get(&format!("/api/routes/{id}?module=billing")).await;
    assert_eq!(
        (r["app_pool"].as_str(), r["rerouted"].as_bool()),
        (Some("app-3"), Some(false))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_pool_has_no_fallback() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let p = app.tenant_with(json!({"app_id": app_id, "display_name": "Premium", "region": "us-east-1", "isolation_tier": "P"})).await;
    let id = p["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/api/routes/{id}?module=core")).await.1["app_pool"],
        "app-7"
    );
    app.post(
        "/api/pools/app-7/status",
        json!({"status": "drain", "reason": "host failure"}),
    )
    .await;
    let (s, v) = app.get(&format!("/api/routes/{id}?module=core")).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("no_active_pool"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flips_and_lookups_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let t = app.tenant(&app_id, "Routed").await;
    let id = t["id"].as_str().unwrap();
    let before = app.chain("platform").await.len();
    let cases = [
        (
            "/api/pools/admin-1/status",
            json!({"status": "active", "reason": "noop"}),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            "/api/pools/admin-1/status",
            json!({"status": "melted", "reason": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "/api/pools/admin-1/status",
            json!({"status": "drain", "reason": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "/api/pools/admin-1/status",
            json!({"status": "drain"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "/api/pools/admin-99/status",
            json!({"status": "drain", "reason": "x"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/pools/tank-1/status",
            json!({"status": "drain", "reason": "x"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (path, body, status, code) in cases {
        let (s, v) = app.post(path, body.clone()).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (status, Some(code)),
            "{path} {body}: {v}"
        );
    }
    assert_eq!(
        app.chain("platform").await.len(),
        before,
        "no refused flip was audited"
    );

    let (s, v) = app.get(&format!("/api/routes/{id}?module=crm")).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    let (s, _) = app.get(&format!("/api/routes/{id}")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "module is required");
    let (s, _) = app
        .get(&format!("/api/routes/{}?module=core", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_with_no_active_shared_pool_is_refused_whole() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    for i in 1..=4 {
        let (s, v) = app
            .post(
                &format!("/api/pools/admin-{i}/status"),
                json!({"status": "drain", "reason": "maintenance"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let before = app.chain("platform").await.len();
    let (s, v) = app
        .post(
            "/api/tenants",
            json!({"app_id": app_id, "display_name": "Nowhere", "region": "us-east-1"}),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("no_active_pool")),
        "{v}"
    );
    // A sovereign tenant brings its own pools and still provisions.
    let g = app.tenant_with(json!({"app_id": app_id, "display_name": "Gov", "region": "eu-sov-1", "isolation_tier": "G"})).await;
    assert_eq!(g["state"], "provisioned");
    assert_eq!(
        app.chain("platform").await.len(),
        before + 2,
        "only the two dedicated pools were added"
    );
    let (_, summary) = app.get("/api/tenants/summary").await;
    assert_eq!(summary["total"], 1);
}
