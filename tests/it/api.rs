//! HTTP conventions across every route (API.md): authentication, problem+json for bad input,
//! body limits, unknown ids and routes, the OpenAPI document, and that a refused request writes
//! nothing.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenantry::app::routes;
use tenantry::rbac::Access;

use crate::helpers::{TOKEN, TestApp};

/// The JSON API routes of the permission table (console routes are tested in `console`).
pub fn api_routes() -> impl Iterator<Item = &'static (&'static str, &'static str, Access)> {
    routes()
        .iter()
        .filter(|(_, p, _)| !tenantry::rbac::is_console(p))
}

/// Ids that exist, for filling route templates.
pub struct Ids {
    pub tenant: String,
    pub app: String,
    pub operator: String,
    pub token: String,
}

impl Ids {
    pub async fn make(app: &TestApp) -> Ids {
        let app_id = app.app("Projex Work").await;
        let t = app.tenant(&app_id, "Acme").await;
        let (s, op) = app
            .post("/api/operators", json!({"username": "ops.probe", "role": "support", "password": "a long enough password"}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{op}");
        let (s, tok) = app
            .post("/api/operators/ops.probe/tokens", json!({"name": "probe"}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{tok}");
        Ids {
            tenant: t["id"].as_str().unwrap().to_string(),
            app: app_id,
            operator: op["id"].as_str().unwrap().to_string(),
            token: tok["id"].as_str().unwrap().to_string(),
        }
    }
}

/// Fills a route template with ids that exist (or, with `unknown`, that do not).
fn concrete(path: &str, ids: &Ids, unknown: bool) -> String {
    let ghost = uuid::Uuid::now_v7().to_string();
    let (tenant, app, pool, job, operator, token) = if unknown {
        (
            ghost.as_str(),
            ghost.as_str(),
            "admin-404",
            "no_such_job",
            "nobody-here",
            ghost.as_str(),
        )
    } else {
        (
            ids.tenant.as_str(),
            ids.app.as_str(),
            "admin-1",
            "checkpoint_chains",
            ids.operator.as_str(),
            ids.token.as_str(),
        )
    };
    let mut p = path
        .replace("{tenant_id}", tenant)
        .replace("{token_id}", token);
    for other in ["{persona_id}", "{key_id}", "{bu_id}", "{impersonation_id}"] {
        p = p.replace(other, &ghost);
    }
    if p.starts_with("/api/operators/") {
        p = p.replace("{id}", operator);
    } else if p.starts_with("/api/apps/") {
        p = p.replace("{id}", app);
    } else if p.starts_with("/api/pools/") {
        p = p.replace("{id}", pool);
    } else if p.starts_with("/api/jobs/") {
        p = p.replace("{name}", job);
    } else {
        p = p.replace("{id}", tenant);
    }
    if p.starts_with("/api/routes/") {
        p.push_str("?module=core");
    }
    if p == "/api/audit/export" || p == "/api/audit/checkpoints" {
        p.push_str("?chain=platform");
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protected_route_needs_credentials() {
    let app = TestApp::spawn().await;
    let ids = Ids::make(&app).await;
    let mut checked = 0;
    for (method, path, access) in api_routes() {
        let url = concrete(path, &ids, false);
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        for token in [None, Some("wrong-token-wrong-token")] {
            let (s, v) = app.send(method.clone(), &url, Some(json!({})), token).await;
            match access {
                Access::Public => {
                    assert_ne!(s, StatusCode::UNAUTHORIZED, "{method} {path} is public")
                }
                Access::Requires(_)
                | Access::Authenticated
                | Access::Tenant(..)
                | Access::Member(_)
                | Access::TenantInBody(..) => {
                    assert_eq!(
                        s,
                        StatusCode::UNAUTHORIZED,
                        "{method} {path} without a valid token: {v}"
                    );
                    assert_eq!(v["code"], "unauthorized");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 40);
    // The bootstrap token is also accepted in x-admin-ops-token.
    let res = app
        .client
        .get(app.url("/api/whoami"))
        .header("x-admin-ops-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let who: Value = res.json().await.unwrap();
    assert_eq!(who["role"], "super_admin");
    let res = app
        .client
        .get(app.url("/api/tenants"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"tenantry\""
    );
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_every_write_route_is_a_problem_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let ids = Ids::make(&app).await;
    let before = app.total_entries().await;
    let big = "x".repeat(1024 * 1024 + 10);
    let writes: Vec<_> = api_routes()
        .filter(|(m, _, _)| *m == "POST" || *m == "PATCH")
        .collect();
    assert!(writes.len() >= 10);
    for (method, path, _) in &writes {
        if path.ends_with("/run")
            || path.ends_with("/disable")
            || path.ends_with("/enable")
            || path.ends_with("/revoke")
            || path.ends_with("/invite")
            || path.ends_with("/rotate")
            || path.ends_with("/end")
            || path.ends_with("/impersonations")
            || path.ends_with("/enrollment")
            || path.ends_with("/replay")
            || path.ends_with("/replay-dlq")
            || path.ends_with("/rotate-secret")
            || path.ends_with("/test")
            || path.ends_with("/reconnect")
            || path.ends_with("/publish")
            || path.ends_with("/archive")
            || path.ends_with("/clone")
            || path.ends_with("/finalize")
            || path.ends_with("/exports")
        {
            // These take no body; they ignore one.
            continue;
        }
        let url = app.url(&concrete(path, &ids, false));
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let send = |body: String, ctype: &'static str| {
            app.client
                .request(method.clone(), url.clone())
                .bearer_auth(TOKEN)
                .header("content-type", ctype)
                .body(body)
                .send()
        };
        // Malformed JSON.
        let res = send("{,}".into(), "application/json").await.unwrap();
        let s = res.status();
        let ct = res.headers()["content-type"].to_str().unwrap().to_string();
        let v: Value = res.json().await.unwrap();
        assert_eq!(
            s,
            StatusCode::BAD_REQUEST,
            "{method} {path} malformed JSON: {v}"
        );
        assert_eq!(ct, "application/problem+json");
        assert_eq!(v["code"], "bad_request", "{method} {path}");
        assert!(
            v["detail"].as_str().unwrap().contains("malformed JSON"),
            "{v}"
        );
        // Oversized body. The bundle upload and usage ingest have their own, larger limits
        // (tested in `onprem`; a full ingest batch is up to 2 MiB).
        if *path != tenantry::installs::api::BUNDLES_PATH && *path != "/api/usage/events" {
            let res = send(format!("{{\"reason\": \"{big}\"}}"), "application/json")
                .await
                .unwrap();
            assert_eq!(
                res.status(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "{method} {path}"
            );
            let v: Value = res.json().await.unwrap();
            assert_eq!(v["code"], "payload_too_large");
        }
        // Not JSON.
        let res = send("reason=x".into(), "application/x-www-form-urlencoded")
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{method} {path}"
        );
        // Well-formed JSON of the wrong shape.
        let res = send("[1, 2, 3]".into(), "application/json").await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path}"
        );
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["code"], "validation_failed");
    }
    // A chunked body over the limit (no Content-Length) is refused too.
    let chunks: Vec<Result<String, std::io::Error>> =
        (0..40).map(|_| Ok("y".repeat(32 * 1024))).collect();
    let body = reqwest::Body::wrap_stream(tokio_stream::iter(chunks));
    let res = app
        .client
        .post(app.url("/api/apps"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        app.total_entries().await,
        before,
        "no refused request wrote an audit entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_routes_and_methods_are_problems() {
    let app = TestApp::spawn().await;
    let ids = Ids::make(&app).await;
    for (method, path, _) in api_routes().filter(|(_, p, _)| p.contains('{')) {
        let url = concrete(path, &ids, true);
        let body = match *path {
            "/api/pools/{id}/status" => json!({"status": "drain", "reason": "x"}),
            "/api/tenant-lifecycle/{id}/suspend" => json!({"reason": "x"}),
            "/api/operators/{id}/role" => json!({"role": "support"}),
            "/api/operators/{id}/tokens" => json!({"name": "x"}),
            "/api/tenants/{id}/personas" => {
                json!({"kind": "service", "display_name": "x", "roles": ["member"]})
            }
            "/api/tenants/{id}/business-units" => json!({"name": "x", "kind": "team"}),
            "/api/tenants/{id}/api-keys" => json!({
                "persona_id": uuid::Uuid::now_v7().to_string(),
                "name": "x",
                "scopes": ["members.read"],
            }),
            "/api/tenants/{id}/webhooks" => json!({
                "url": "https://hooks.example.com/x",
                "event_types": ["webhook.test.v1"],
            }),
            "/api/tenants/{id}/notification-channels" => json!({
                "name": "x",
                "kind": "email",
                "recipients": ["a@example.com"],
                "event_types": ["webhook.test.v1"],
            }),
            "/api/tenants/{id}/impersonations/{impersonation_id}/elevate" => {
                json!({"reason": "a reason long enough"})
            }
            "/api/plans/{code}" => json!({"name": "x", "amount_minor": 0, "currency": "USD"}),
            "/api/catalogs/{id}/versions/{v}" => json!({"rates": []}),
            "/api/tenants/{id}/catalog" => {
                json!({"catalog_id": uuid::Uuid::now_v7().to_string(), "version": 1})
            }
            "/api/invoices/{id}/payments" => json!({"amount_minor": 1}),
            "/api/invoices/{id}/payment-failures" | "/api/invoices/{id}/void" => {
                json!({"reason": "x"})
            }
            "/api/tenants/{id}/enforcement/override" => json!({"reason": "pilot"}),
            "/api/approvals/routes/{route_id}"
            | "/api/tenants/{id}/approvals/routes"
            | "/api/tenants/{id}/approvals/routes/{route_id}" => {
                json!({"name": "x", "action": "tenant.offboard", "approvers": ["role:super_admin"]})
            }
            p if p.ends_with("/approve") || p.ends_with("/reject") => json!({"comment": "x"}),
            _ => json!({}),
        };
        let (s, v) = app
            .send(
                Method::from_bytes(method.as_bytes()).unwrap(),
                &url,
                Some(body),
                Some(TOKEN),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {url}: {v}");
        assert_eq!(v["code"], "not_found");
    }
    // Malformed ids are unknown ids.
    for path in [
        "/api/tenants/42",
        "/api/apps/nope",
        "/api/tenant-lifecycle/%20/state",
    ] {
        let (s, v) = app.get(path).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }
    let (s, v) = app.get("/api/nothing-here").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (s, v) = app
        .send(Method::DELETE, "/api/tenants", None, Some(TOKEN))
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_in_the_openapi_document_and_has_a_permission_entry() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the document is public");
    let doc: Value = res.json().await.unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    // The document describes itself nowhere; every other route must be both documented and in
    // the permission table, so a new route cannot ship without a permission entry.
    let table: BTreeSet<(String, String)> = api_routes()
        .filter(|(_, p, _)| *p != "/api/openapi.json")
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let missing_entry: Vec<_> = documented.difference(&table).collect();
    assert!(
        missing_entry.is_empty(),
        "routes without a permission entry in their context's routes: {missing_entry:?}"
    );
    let undocumented: Vec<_> = table.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document: {undocumented:?}"
    );
    // Every documented operation describes its errors as problems.
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_the_request_id_the_client_sees() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/api/tenants/42"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let header = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["request_id"], header);
    let res = app
        .client
        .get(app.url("/api/tenants/42"))
        .bearer_auth(TOKEN)
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-me-123");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_are_public() {
    let app = TestApp::spawn().await;
    let (s, v) = app.send(Method::GET, "/healthz", None, None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    // The scheduler starts with the server; readiness follows it.
    for _ in 0..100 {
        let (s, v) = app.send(Method::GET, "/readyz", None, None).await;
        if s == StatusCode::OK {
            assert_eq!(v["status"], "ready");
            assert_eq!(v["store"], true);
            // The install's details are for operators, not for anyone who asks.
            for detail in [
                "install_id",
                "data_file_bytes",
                "uptime_s",
                "role",
                "license",
            ] {
                assert!(v.get(detail).is_none(), "{detail} is public: {v}");
            }
            let (_, v) = app
                .send(Method::GET, "/readyz", None, Some(crate::helpers::TOKEN))
                .await;
            assert_eq!(v["install_id"], app.state.install_id().to_string());
            assert!(v["data_file_bytes"].as_u64().unwrap() > 0);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("never ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_group_committed_and_each_gets_its_own_answer() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let mut tasks = Vec::new();
    for i in 0..60 {
        let client = app.client.clone();
        let url = app.url("/api/tenants");
        let app_id = app_id.clone();
        tasks.push(tokio::spawn(async move {
            // Every third request names an app that does not exist: refused, alone.
            let app_id = if i % 3 == 0 { uuid::Uuid::now_v7().to_string() } else { app_id };
            let res = client
                .post(url)
                .bearer_auth(TOKEN)
                .json(&json!({"app_id": app_id, "display_name": format!("Batch {i}"), "region": "us-east-1"}))
                .send()
                .await
                .unwrap();
            (i, res.status())
        }));
    }
    for t in tasks {
        let (i, s) = t.await.unwrap();
        let expected = if i % 3 == 0 {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::CREATED
        };
        assert_eq!(s, expected, "request {i}");
    }
    let (_, summary) = app.get("/api/tenants/summary").await;
    assert_eq!(summary["total"], 40);
    let stats = app.state.store().writer_stats();
    assert!(
        stats.batches < stats.requests,
        "writes were batched: {stats:?}"
    );
    let (_, v) = app.post("/api/audit/verify", json!({"full": true})).await;
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ok"] == true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_says_which_refusals_every_operation_answers() {
    let app = TestApp::spawn().await;
    let (_, doc) = app.get("/api/openapi.json").await;
    let mut checked = 0;
    for (method, path, access) in api_routes() {
        if *path == "/api/openapi.json" {
            continue;
        }
        let op = &doc["paths"][*path][method.to_lowercase()];
        let responses = op["responses"].as_object().unwrap();
        // Problems are documented as what they are.
        for (code, r) in responses {
            if let Some(c) = r["content"].as_object() {
                let problem = c
                    .values()
                    .any(|v| v["schema"]["$ref"] == "#/components/schemas/Problem");
                if problem {
                    assert!(
                        c.contains_key("application/problem+json"),
                        "{method} {path} {code}"
                    );
                }
            }
        }
        if *access == Access::Public {
            assert_eq!(op["security"], json!([{}]), "{method} {path} is public");
        } else {
            for code in ["401", "403"] {
                assert!(
                    responses.contains_key(code),
                    "{method} {path} documents {code}"
                );
            }
        }
        if !op["requestBody"].is_null() {
            for code in ["400", "413", "415", "422"] {
                assert!(
                    responses.contains_key(code),
                    "{method} {path} documents {code}"
                );
            }
        }
        checked += 1;
    }
    assert!(checked > 60, "{checked}");
}
