//! Provisioning, the directory, CSV export, detail and edits (operator guide §1.1; PRODUCT.md
//! A1–A5).

use reqwest::StatusCode;
use serde_json::{Value, json};
use tenantry::actor::Actor;
use tenantry::store::Store;

use crate::helpers::{TestApp, t0};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_lands_in_provisioned_and_writes_created_and_pool_assigned() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let t = app
        .tenant_with(json!({
            "app_id": app_id, "display_name": "Acme Corp", "region": "eu-west-1", "isolation_tier": "S",
            "brand_domain": "app.acme.io", "country": "be", "contact_email": "it@acme.io", "plan": "pro",
            "trial_days": 60, "hierarchy_depth": 2
        }))
        .await;
    assert_eq!(t["state"], "provisioned");
    assert_eq!(t["slug"], "acme-corp");
    assert_eq!(t["country"], "BE");
    assert_eq!(t["pools"]["admin"], "admin-1");
    let id = t["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);

    // Post-check of operator guide §1.1: filter the audit page by the new tenant_id.
    let (s, v) = app.get(&format!("/api/audit?tenant_id={id}")).await;
    assert_eq!(s, StatusCode::OK);
    let actions: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "tenant.roles.seeded.v1",
            "tenant.pool.assigned.v1",
            "tenant.created.v1"
        ]
    );
    let created = &v["items"][2];
    assert_eq!(
        created["actor"],
        json!({"kind": "operator", "id": "admin-ops-token"})
    );
    assert_eq!(created["data"]["contact_email"], "it@acme.io");
    assert_eq!(created["chain"], format!("tenant:{id}"));

    let (s, detail) = app.get(&format!("/api/tenants/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(detail, t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_app_is_app_not_found_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let before = app.chain("platform").await.len();
    let (s, v) = app
        .post(
            "/api/tenants",
            json!({"app_id": uuid::Uuid::now_v7().to_string(), "display_name": "Ghost", "region": "us-east-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["code"], "app_not_found");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("create the app first"),
        "{v}"
    );
    let (_, summary) = app.get("/api/tenants/summary").await;
    assert_eq!(summary["total"], 0);
    assert_eq!(app.chain("platform").await.len(), before);
    let (_, heads) = app.post("/api/audit/verify", json!({})).await;
    assert_eq!(
        heads["results"].as_array().unwrap().len(),
        1,
        "only the platform chain exists"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_names_every_bad_field_at_once() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let (s, v) = app
        .post(
            "/api/tenants",
            json!({"app_id": app_id, "display_name": "  ", "region": "mars-1", "isolation_tier": "X",
                   "contact_email": "not-an-email", "country": "Belgium", "slug": "Bad Slug!", "plan": "platinum",
                   "trial_days": 0, "brand_domain": "-x-"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["code"], "validation_failed");
    assert_eq!(v["type"], "urn:tenantry:problem:validation_failed");
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "display_name",
        "region",
        "isolation_tier",
        "contact_email",
        "country",
        "slug",
        "plan",
        "trial_days",
        "brand_domain",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    let slug_msg = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["field"] == "slug")
        .unwrap()["message"]
        .clone();
    assert!(
        slug_msg.as_str().unwrap().contains("a-z, 0-9 and '-'"),
        "{slug_msg}"
    );

    // A sovereign tenant needs a sovereign region.
    let (s, v) = app.post("/api/tenants", json!({"app_id": app_id, "display_name": "Gov", "region": "us-east-1", "isolation_tier": "G"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("sovereign"),
        "{v}"
    );

    // Unknown members are refused, naming them.
    let (s, v) = app.post("/api/tenants", json!({"app_id": app_id, "display_name": "X", "region": "us-east-1", "isolation_teir": "S"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["detail"].as_str().unwrap().contains("isolation_teir"),
        "{v}"
    );
    let (_, summary) = app.get("/api/tenants/summary").await;
    assert_eq!(summary["total"], 0, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slugs_are_unique_and_derived_from_the_name_when_absent() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let a = app.tenant(&app_id, "Société Générale").await;
    assert_eq!(a["slug"], "societe-generale");
    let b = app.tenant(&app_id, "Societe Generale").await;
    assert_eq!(b["slug"], "societe-generale-2");
    let (s, v) = app
        .post("/api/tenants", json!({"app_id": app_id, "display_name": "Other", "region": "us-east-1", "slug": "societe-generale"}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(v["code"], "slug_taken");
}

async fn seed_directory(app: &TestApp) -> (String, String, Vec<Value>) {
    let work = app.app("Projex Work").await;
    let field = app.app("Projex Field").await;
    let specs = [
        ("Zulu Air", "us-east-1", "S", &work),
        ("alpha Foods", "eu-west-1", "S", &work),
        ("Bravo Bank", "eu-sov-1", "G", &field),
        ("Charlie Clinics", "eu-west-1", "P", &work),
        ("Delta Dental", "us-west-2", "S", &field),
        ("Echo Energy", "eu-west-1", "S", &work),
        ("Foxtrot Freight", "ap-southeast-1", "S", &field),
        ("Golf Games", "us-east-1", "P", &work),
        ("Hotel Holdings", "eu-central-1", "S", &work),
        ("India Imports", "eu-west-1", "S", &field),
        ("Juliet Jewels", "us-east-1", "S", &work),
        ("Kilo Kitchens", "eu-west-1", "S", &work),
    ];
    let mut out = Vec::new();
    for (i, (name, region, tier, app_id)) in specs.iter().enumerate() {
        app.clock.advance(chrono::Duration::minutes(5));
        let t = app
            .tenant_with(json!({"app_id": app_id, "display_name": name, "region": region, "isolation_tier": tier,
                                "contact_email": format!("ops{i}@{}.example.com", name.split(' ').next().unwrap().to_lowercase())}))
            .await;
        out.push(t);
    }
    // Some states: suspend two, trial one.
    let id = |i: usize| out[i]["id"].as_str().unwrap().to_string();
    for i in [1, 5] {
        app.action(&id(i), "activate", json!({})).await;
        assert_eq!(
            app.action(&id(i), "suspend", json!({"reason": "non-payment"}))
                .await
                .0,
            StatusCode::OK
        );
    }
    app.action(&id(3), "start-trial", json!({})).await;
    (work, field, out)
}

pub(crate) fn names(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["display_name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_filters_sorts_and_pages_on_the_server() {
    let app = TestApp::spawn().await;
    let (work, _field, all) = seed_directory(&app).await;

    // Default: newest first.
    let (_, v) = app.get("/api/tenants?limit=3").await;
    assert_eq!(
        names(&v),
        ["Kilo Kitchens", "Juliet Jewels", "India Imports"]
    );

    // Pages chain through cursors with no gap or repeat, in order.
    let mut seen = Vec::new();
    let mut path = "/api/tenants?sort=display_name&limit=5".to_string();
    loop {
        let (s, v) = app.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        seen.extend(names(&v));
        match v["next_cursor"].as_str() {
            Some(c) => path = format!("/api/tenants?sort=display_name&limit=5&cursor={c}"),
            None => break,
        }
    }
    let mut expected: Vec<String> = all
        .iter()
        .map(|t| t["display_name"].as_str().unwrap().to_string())
        .collect();
    expected.sort_by_key(|n| n.to_lowercase());
    assert_eq!(seen, expected, "case-insensitive name order across pages");

    let (_, v) = app
        .get("/api/tenants?status=suspended&sort=display_name")
        .await;
    assert_eq!(names(&v), ["alpha Foods", "Echo Energy"]);
    let (_, v) = app
        .get("/api/tenants?region=eu-west-1&isolation_tier=S&sort=display_name&order=desc")
        .await;
    assert_eq!(
        names(&v),
        [
            "Kilo Kitchens",
            "India Imports",
            "Echo Energy",
            "alpha Foods"
        ]
    );
    let (_, v) = app
        .get(&format!("/api/tenants?app_id={work}&isolation_tier=P"))
        .await;
    assert_eq!(names(&v), ["Golf Games", "Charlie Clinics"]);
    let (_, v) = app.get("/api/tenants?q=ENERGY").await;
    assert_eq!(names(&v), ["Echo Energy"]);
    let (_, v) = app.get("/api/tenants?q=ops3@").await;
    assert_eq!(
        names(&v),
        ["Charlie Clinics"],
        "q searches the contact email"
    );
    let (_, v) = app.get("/api/tenants?sort=status&order=asc&limit=50").await;
    let states: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    let mut sorted = states.clone();
    sorted.sort_by_key(|s| {
        [
            "provisioned",
            "trial",
            "active",
            "suspended",
            "offboarding",
            "offboarded",
        ]
        .iter()
        .position(|x| x == s)
    });
    assert_eq!(states, sorted);
    assert_eq!(states.iter().filter(|s| **s == "trial").count(), 1);

    // A cursor from another query is refused rather than misread.
    let (_, v) = app.get("/api/tenants?sort=display_name&limit=2").await;
    let c = v["next_cursor"].as_str().unwrap();
    let (s, v) = app
        .get(&format!("/api/tenants?status=active&cursor={c}"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "invalid_cursor");

    // Bad filters are 400s.
    for q in [
        "status=sleeping",
        "isolation_tier=Q",
        "sort=size",
        "order=up",
        "limit=0",
        "limit=501",
        "app_id=nope",
        "cursor=%%%",
    ] {
        let (s, v) = app.get(&format!("/api/tenants?{q}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
    }

    let (_, summary) = app.get("/api/tenants/summary").await;
    assert_eq!(summary["total"], 12);
    assert_eq!(
        summary["by_state"],
        json!({"provisioned": 9, "suspended": 2, "trial": 1})
    );
    assert_eq!(summary["by_tier"]["P"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csv_export_answers_the_same_query() {
    let app = TestApp::spawn().await;
    seed_directory(&app).await;
    let (s, body, headers) = app
        .get_text("/api/tenants/export.csv?region=eu-west-1&sort=display_name")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let mut rdr = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, tenantry::tenants::api::CSV_COLUMNS);
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    let names: Vec<&str> = rows.iter().map(|r| &r[1]).collect();
    assert_eq!(
        names,
        [
            "alpha Foods",
            "Charlie Clinics",
            "Echo Energy",
            "India Imports",
            "Kilo Kitchens"
        ]
    );
    assert_eq!(&rows[0][4], "suspended");

    // `Accept: text/csv` on the list gives the same.
    let res = app
        .client
        .get(app.url("/api/tenants?region=eu-west-1&sort=display_name"))
        .bearer_auth(crate::helpers::TOKEN)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_cell_that_a_spreadsheet_would_run_is_neutralised() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    app.tenant(&app_id, "=HYPERLINK(\"http://evil\")").await;
    let (_, body, _) = app.get_text("/api/tenants/export.csv").await;
    assert!(body.contains("\"'=HYPERLINK("), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_is_an_error_row_and_the_list_still_renders() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let a = app.tenant(&app_id, "Alpha").await;
    let b = app.tenant(&app_id, "Bravo").await;
    let c = app.tenant(&app_id, "Charlie").await;
    let broken = uuid::Uuid::parse_str(b["id"].as_str().unwrap()).unwrap();
    let config = app.state.config().as_ref().clone();
    let clock = app.clock.clone();
    let dir = app.stop().await;
    {
        let store = Store::open(&config.data_dir).unwrap();
        store
            .write(t0(), Actor::system("test"), move |ctx| {
                ctx.put(
                    tenantry::tenants::directory::TENANTS,
                    broken.as_bytes(),
                    &[0xFF, 0x00, 0x13],
                )?;
                Ok::<_, tenantry::store::Error>(())
            })
            .await
            .unwrap();
        store.close().await;
    }
    let app = TestApp::spawn_with(dir, config, clock).await;
    for path in [
        "/api/tenants",
        "/api/tenants?sort=display_name",
        "/api/tenants?status=provisioned",
    ] {
        let (s, v) = app.get(path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        let items = v["items"].as_array().unwrap();
        assert_eq!(items.len(), 3, "{path}: {v}");
        let err = items.iter().find(|r| r["id"] == b["id"]).unwrap();
        assert!(
            err["error"]
                .as_str()
                .unwrap()
                .contains("could not be decoded"),
            "{err}"
        );
        assert!(
            items
                .iter()
                .any(|r| r["id"] == a["id"] && r["display_name"] == "Alpha")
        );
        assert!(items.iter().any(|r| r["id"] == c["id"]));
    }
    let (_, csv, _) = app.get_text("/api/tenants/export.csv").await;
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.contains("could not be decoded"));
    // The broken record's own detail is a clean 500 problem, not a crash.
    let (s, v) = app
        .get(&format!("/api/tenants/{}", b["id"].as_str().unwrap()))
        .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(v["code"], "internal");
    assert!(v["request_id"].is_string());
    // The console shows the same failure as a page naming the request id.
    let res = app
        .client
        .get(app.url(&format!("/platform/tenants/{}", b["id"].as_str().unwrap())))
        .bearer_auth(crate::helpers::TOKEN)
        .header("x-request-id", "req-broken-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Request id: <code>req-broken-1</code>") && !html.contains("decod"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_record_a_field_diff_and_a_no_op_writes_nothing() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let t = app
        .tenant_with(json!({"app_id": app_id, "display_name": "Acme", "region": "us-east-1", "contact_email": "a@acme.io", "plan": "free"}))
        .await;
    let id = t["id"].as_str().unwrap();
    let (s, v) = app
        .patch(
            &format!("/api/tenants/{id}"),
            json!({"plan": "pro", "contact_email": null, "display_name": "Acme Inc"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["plan"], "pro");
    assert_eq!(v["contact_email"], Value::Null);
    let chain = app.chain(&format!("tenant:{id}")).await;
    let last = chain.last().unwrap();
    assert_eq!(last["action"], "tenant.updated.v1");
    assert_eq!(
        last["data"]["changes"],
        json!({"plan": {"from": "free", "to": "pro"}, "contact_email": {"from": "a@acme.io", "to": null},
               "display_name": {"from": "Acme", "to": "Acme Inc"}})
    );
    let n = chain.len();
    let (s, _) = app
        .patch(&format!("/api/tenants/{id}"), json!({"plan": "pro"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        app.chain(&format!("tenant:{id}")).await.len(),
        n,
        "a no-op edit writes no entry"
    );
    let (s, v) = app
        .patch(&format!("/api/tenants/{id}"), json!({"plan": "gold"}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["field"], "plan");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_restart() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let t = app.tenant(&app_id, "Durable Co").await;
    let id = t["id"].as_str().unwrap().to_string();
    app.action(&id, "activate", json!({})).await;
    app.action(&id, "suspend", json!({"reason": "breach hold"}))
        .await;
    let (_, before) = app.get(&format!("/api/tenants/{id}")).await;
    let chain_before = app.chain(&format!("tenant:{id}")).await;
    let key_before = app.get("/api/audit/public-key").await.1;

    let app = app.restart().await;
    let (s, after) = app.get(&format!("/api/tenants/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(after, before);
    assert_eq!(app.chain(&format!("tenant:{id}")).await, chain_before);
    assert_eq!(
        app.get("/api/audit/public-key").await.1,
        key_before,
        "the install key persists"
    );
    let (_, pools) = app.get("/api/pools").await;
    assert_eq!(
        pools["items"].as_array().unwrap().len(),
        10,
        "the default layout is created once"
    );
    let (_, v) = app.post("/api/audit/verify", json!({})).await;
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ok"] == true),
        "{v}"
    );
}
