//! Revenue (issue 10, first half): plans as managed records, versioned pricing catalogs with
//! pins and migrations, idempotent metering ingest with soft caps, and the live meter.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{self, TOKEN, TestApp};

fn rates(first: i64, beyond: i64, soft_cap: Option<u64>) -> Value {
    json!([{
        "sku": "api_call", "unit": "api_call",
        "tiers": [{"up_to": 100, "unit_amount_minor": first}, {"up_to": null, "unit_amount_minor": beyond}],
        "soft_cap": soft_cap,
    }, {
        "sku": "ai_token", "unit": "ai_token", "per_units": 1000,
        "tiers": [{"up_to": null, "unit_amount_minor": 2}],
    }])
}

/// A catalog with `rates`, published, returning its id.
async fn published_catalog(app: &TestApp, rates: Value) -> String {
    let (s, v) = app
        .post(
            "/api/catalogs",
            json!({"name": "Core usage", "currency": "usd", "rates": rates}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "draft");
    assert_eq!(v["currency"], "USD");
    let id = v["catalog_id"].as_str().unwrap().to_string();
    let (s, v) = app
        .post(&format!("/api/catalogs/{id}/versions/1/publish"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    id
}

async fn pin(app: &TestApp, tenant: &str, catalog: &str, version: u32, caps: Value) {
    let (s, v) = app
        .send(
            Method::PUT,
            &format!("/api/tenants/{tenant}/catalog"),
            Some(json!({"catalog_id": catalog, "version": version, "soft_caps": caps})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

fn event(id: &str, tenant: &str, sku: &str, quantity: i64) -> Value {
    json!({"event_id": id, "tenant_id": tenant, "sku": sku, "quantity": quantity, "ts": "2026-11-21T09:00:00Z"})
}

async fn ingest(
    app: &TestApp,
    token: &str,
    events: Vec<Value>,
) -> (StatusCode, Value, Vec<String>) {
    let res = app
        .client
        .post(app.url("/api/usage/events"))
        .bearer_auth(token)
        .json(&json!({"events": events}))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let warnings = res
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    (status, res.json().await.unwrap(), warnings)
}

async fn warnings_of(app: &TestApp, path: &str) -> Vec<String> {
    let (s, _, headers) = app.get_text(path).await;
    assert_eq!(s, StatusCode::OK, "{path}");
    headers
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn line<'a>(meter: &'a Value, sku: &str) -> &'a Value {
    meter["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["sku"] == sku)
        .unwrap_or_else(|| panic!("no line {sku} in {meter}"))
}

async fn tenant_id(app: &TestApp, app_id: &str, name: &str) -> String {
    app.tenant(app_id, name).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_lives_from_draft_to_a_price_bump_and_each_tenant_is_priced_by_its_own_version() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let moved = tenant_id(&app, &app_id, "Moved Co").await;
    let stays = tenant_id(&app, &app_id, "Stays Co").await;

    let (s, v) = app
        .post(
            "/api/catalogs",
            json!({"name": "Core usage", "currency": "USD", "rates": rates(1, 1, None)}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["catalog_id"].as_str().unwrap().to_string();
    let v1 = format!("/api/catalogs/{id}/versions/1");
    // A draft takes edits.
    let (s, v) = app
        .send(
            Method::PUT,
            &v1,
            Some(json!({"rates": rates(10, 5, None)})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["rates"][0]["tiers"][0]["unit_amount_minor"], 10);
    // A draft prices nobody.
    let (s, v) = app
        .send(
            Method::PUT,
            &format!("/api/tenants/{moved}/catalog"),
            Some(json!({"catalog_id": id, "version": 1})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "version_not_published");
    let (s, v) = app.post(&format!("{v1}/publish"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "published");
    // Published is immutable: the edit is refused, and writes nothing.
    let before = app.total_entries().await;
    let (s, v) = app
        .send(
            Method::PUT,
            &v1,
            Some(json!({"rates": rates(99, 99, None)})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "version_immutable");
    assert_eq!(app.total_entries().await, before);
    assert_eq!(
        app.get(&v1).await.1["rates"][0]["tiers"][0]["unit_amount_minor"],
        10
    );
    let (s, v) = app.post(&format!("{v1}/publish"), json!({})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_status"))
    );

    pin(&app, &moved, &id, 1, json!([])).await;
    pin(&app, &stays, &id, 1, json!([])).await;
    assert_eq!(app.get(&v1).await.1["tenants_pinned"], 2);

    // Quarterly price bump: clone, edit rates, publish.
    let (s, v) = app.post(&format!("{v1}/clone"), json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (
            v["version"].as_u64(),
            v["status"].as_str(),
            v["cloned_from"].as_u64()
        ),
        (Some(2), Some("draft"), Some(1))
    );
    let v2 = format!("/api/catalogs/{id}/versions/2");
    let (s, v) = app
        .send(
            Method::PUT,
            &v2,
            Some(json!({"rates": rates(20, 10, None)})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = app.post(&format!("{v2}/publish"), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    // Moving tenants is explicit: one moved, the other stays on v1.
    let (s, v) = app
        .post(&format!("{v2}/migrate"), json!({"tenant_ids": [moved]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["moved"], json!([moved]));
    assert_eq!(
        app.get(&format!("/api/tenants/{moved}/catalog")).await.1["version"],
        2
    );
    assert_eq!(
        app.get(&format!("/api/tenants/{stays}/catalog")).await.1["version"],
        1
    );
    // v1 still prices a tenant, so it cannot be archived.
    let (s, v) = app.post(&format!("{v1}/archive"), json!({})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("version_in_use")),
        "{v}"
    );

    let (s, v, _) = ingest(
        &app,
        TOKEN,
        vec![
            event("m-1", &moved, "api_call", 150),
            event("s-1", &stays, "api_call", 150),
            event("m-2", &moved, "ai_token", 1_500),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 3, "{v}");

    let (_, m) = app.get(&format!("/api/tenants/{moved}/usage/live")).await;
    assert_eq!(m["catalog_version"], 2);
    assert_eq!(m["currency"], "USD");
    assert_eq!(m["period"], "202611");
    assert_eq!(line(&m, "api_call")["amount_minor"], 100 * 20 + 50 * 10);
    // 2 cents per 1000 tokens: 1500 tokens are 3 cents.
    assert_eq!(line(&m, "ai_token")["amount_minor"], 3);
    assert_eq!(m["total_minor"], 2503);
    let (_, m) = app.get(&format!("/api/tenants/{stays}/usage/live")).await;
    assert_eq!(m["catalog_version"], 1);
    assert_eq!(line(&m, "api_call")["amount_minor"], 100 * 10 + 50 * 5);
    // Both invoices are priced by their own version, and each line names it.
    for (t, version, total) in [(&moved, 2, 2503), (&stays, 1, 1250)] {
        let (_, mut inv) = app
            .get(&format!("/api/tenants/{t}/invoices/upcoming"))
            .await;
        let id = inv["id"].as_str().unwrap().to_string();
        let (s, fin) = app
            .post(&format!("/api/invoices/{id}/finalize"), json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{fin}");
        inv = fin;
        assert_eq!(inv["total_minor"], total, "{inv}");
        for l in inv["lines"].as_array().unwrap() {
            assert_eq!(l["catalog_version"], version, "{inv}");
        }
    }

    let platform = app.actions("platform").await;
    for a in [
        "catalog.created.v1",
        "catalog.version.updated.v1",
        "catalog.version.published.v1",
        "catalog.version.cloned.v1",
        "catalog.tenants.migrated.v1",
    ] {
        assert!(platform.iter().any(|x| x == a), "{a} missing: {platform:?}");
    }
    let pins = app
        .actions(&format!("tenant:{moved}"))
        .await
        .into_iter()
        .filter(|a| a == "catalog.tenant.pinned.v1")
        .count();
    assert_eq!(pins, 2, "pinned to v1, then migrated to v2");
    let pins = app
        .actions(&format!("tenant:{stays}"))
        .await
        .into_iter()
        .filter(|a| a == "catalog.tenant.pinned.v1")
        .count();
    assert_eq!(pins, 1, "left alone by the migration");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_events_posted_by_eight_clients_at_once_are_counted_exactly_once() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let t = tenant_id(&app, &app_id, "Busy Co").await;
    let catalog = published_catalog(&app, rates(1, 1, None)).await;
    pin(&app, &t, &catalog, 1, json!([])).await;
    // Odd events happened the day before: the daily rollup tells the two days apart.
    let events: Vec<Value> = (0..300)
        .map(|i| {
            let mut e = event(&format!("evt-{i}"), &t, "api_call", i % 7 + 1);
            if i % 2 == 1 {
                e["ts"] = json!("2026-11-20T23:59:59Z");
            }
            e
        })
        .collect();
    let expected: i64 = (0..300).map(|i| i % 7 + 1).sum();
    let on_20th: u64 = (0..300).filter(|i| i % 2 == 1).map(|i| i % 7 + 1).sum();
    let mut clients = Vec::new();
    for c in 0..8 {
        let mut batch = events.clone();
        batch.rotate_left(c * 37);
        let client = reqwest::Client::new();
        let url = app.url("/api/usage/events");
        clients.push(tokio::spawn(async move {
            let res = client
                .post(url)
                .bearer_auth(TOKEN)
                .json(&json!({"events": batch}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<Value>().await.unwrap()
        }));
    }
    let (mut accepted, mut duplicates) = (0, 0);
    for c in clients {
        let v = c.await.unwrap();
        assert_eq!(v["rejected"], 0, "{v}");
        accepted += v["accepted"].as_u64().unwrap();
        duplicates += v["duplicates"].as_u64().unwrap();
    }
    assert_eq!(accepted, 300, "each event is accepted exactly once");
    assert_eq!(duplicates, 7 * 300);
    let (_, m) = app.get(&format!("/api/tenants/{t}/usage/live")).await;
    assert_eq!(line(&m, "api_call")["quantity"].as_i64(), Some(expected));
    let tenant = uuid::Uuid::parse_str(&t).unwrap();
    let daily = app
        .state
        .read(move |r| tenantry::metering::queries::daily(r, &tenant, 202611, "api_call"))
        .await
        .unwrap();
    assert_eq!(
        daily,
        vec![
            (20261120, on_20th),
            (20261121, u64::try_from(expected).unwrap() - on_20th)
        ]
    );
    // The live meter gives the same rollup per SKU, and the Billing page charts it.
    let on_21st = u64::try_from(expected).unwrap() - on_20th;
    assert_eq!(
        line(&m, "api_call")["daily"],
        json!([
            {"date": "2026-11-20", "quantity": on_20th},
            {"date": "2026-11-21", "quantity": on_21st}
        ])
    );
    {
        use crate::console::{operator, signin};
        operator(&app, "fin", "business_admin").await;
        let s = signin(&app, "fin", "fin-password-123").await;
        let billing = s.visit_page(&app, &t, "/billing").await;
        for needle in [
            "Daily usage".to_string(),
            format!("<title>2026-11-20: {on_20th} api_call</title>"),
            format!("<title>2026-11-21: {on_21st} api_call</title>"),
        ] {
            assert!(billing.contains(&needle), "{needle} not in:\n{billing}");
        }
    }
    let raw = app
        .state
        .read(tenantry::metering::queries::raw_events)
        .await
        .unwrap();
    assert_eq!(raw, 300);
    // The answer is durable: a restart still counts them, once.
    let app = app.restart().await;
    let (_, v, _) = ingest(&app, TOKEN, events[..10].to_vec()).await;
    assert_eq!(v["duplicates"], 10, "{v}");
    let (_, m) = app.get(&format!("/api/tenants/{t}/usage/live")).await;
    assert_eq!(line(&m, "api_call")["quantity"].as_i64(), Some(expected));
}

/// The raw events kept for deduplication (ids of the event log plus legacy rows).
async fn raw_events(app: &TestApp) -> u64 {
    app.state
        .read(tenantry::metering::queries::raw_events)
        .await
        .unwrap()
}

/// Events of `tenant` in the receipt rows, and the rows of the event log's older format.
async fn receipts_of(app: &TestApp, tenant: &str) -> (usize, u64) {
    use tenantry::metering::model::{ReceiptRecord, USAGE_EVENT_LOG, USAGE_EVENT_RECEIPTS};
    use tenantry::store::{Dir, Range, Reader};
    let t = uuid::Uuid::parse_str(tenant).unwrap();
    app.state
        .read(move |r| {
            let mut n = 0;
            r.scan(
                USAGE_EVENT_RECEIPTS,
                &Range::all(),
                Dir::Asc,
                &mut |_, v| {
                    let ReceiptRecord::V1 { tenants } =
                        tenantry::store::codec::decode(USAGE_EVENT_RECEIPTS.name(), v)?;
                    n += tenants
                        .iter()
                        .filter(|g| g.tenant == t)
                        .map(|g| g.events.len())
                        .sum::<usize>();
                    Ok(std::ops::ControlFlow::Continue(()))
                },
            )?;
            Ok::<_, tenantry::error::Error>((n, r.len(USAGE_EVENT_LOG)?))
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_events_are_shredded_with_their_tenant_pruned_after_their_period_and_legacy_ids_still_deduplicate()
 {
    use tenantry::metering::model::{
        EventLogRecord, LoggedEvent, USAGE_DEDUPE, USAGE_EVENT_LOG, USAGE_EVENT_PERIODS,
        USAGE_EVENTS, dedupe_key, event_key, log_key,
    };
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let leaving = tenant_id(&app, &app_id, "Leaving Co").await;
    let staying = tenant_id(&app, &app_id, "Staying Co").await;
    for t in [&leaving, &staying] {
        app.action(t, "activate", json!({})).await;
    }
    let catalog = published_catalog(&app, rates(1, 1, None)).await;
    pin(&app, &leaving, &catalog, 1, json!([])).await;
    pin(&app, &staying, &catalog, 1, json!([])).await;
    // An event stored in the format before the event log (one row per event, and its period
    // index) still counts as posted; so do events of the event log's per-tenant rows (the
    // format before the receipt rows), one for each tenant.
    let legacy = uuid::Uuid::parse_str(&staying).unwrap();
    let gone = uuid::Uuid::parse_str(&leaving).unwrap();
    app.state
        .store()
        .write(
            helpers::t0(),
            tenantry::actor::Actor::system("test"),
            move |ctx| {
                ctx.put(USAGE_EVENTS, &event_key(&legacy, "legacy-1"), b"v1")?;
                let k = tenantry::store::keys::Key::new()
                    .u64(202611)
                    .uuid(&legacy)
                    .str("legacy-1")
                    .into_bytes();
                ctx.put(USAGE_EVENT_PERIODS, &k, &[])?;
                for (t, id) in [(legacy, "old-1"), (gone, "old-2")] {
                    let events = vec![LoggedEvent {
                        event_id: id.into(),
                        sku: "api_call".into(),
                        quantity: 1,
                        ts: 0,
                        api_key: None,
                        persona: None,
                        bu: None,
                        properties: None,
                    }];
                    let row = EventLogRecord::V1 { events };
                    ctx.put_record(USAGE_EVENT_LOG, &log_key(202611, &t, 1, 0), &row)?;
                    ctx.put(USAGE_DEDUPE, &dedupe_key(&t, id), &[])?;
                }
                Ok::<_, tenantry::store::Error>(())
            },
        )
        .await
        .unwrap();

    let mut with_data = event("p-1", &leaving, "api_call", 3);
    with_data["properties"] = json!({"email": "ana@leaving.example.com"});
    let mut stranger = event("r-1", &staying, "api_call", 1);
    stranger["persona_id"] = json!(uuid::Uuid::now_v7().to_string());
    let (s, v, _) = ingest(
        &app,
        TOKEN,
        vec![
            with_data,
            event("p-2", &leaving, "api_call", 4),
            event("s-1", &staying, "api_call", 5),
            event("legacy-1", &staying, "api_call", 6),
            stranger,
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["accepted"], &v["duplicates"], &v["rejected"]),
        (&json!(3), &json!(1), &json!(1)),
        "{v}"
    );
    assert_eq!(v["results"][3]["status"], "duplicate", "{v}");
    assert_eq!(v["results"][4]["reason"], "unknown_attribution", "{v}");
    // The refused event's id was not kept: posted again without the stranger, it counts.
    let (_, v, _) = ingest(&app, TOKEN, vec![event("r-1", &staying, "api_call", 1)]).await;
    assert_eq!(v["accepted"], 1, "{v}");
    assert_eq!(raw_events(&app).await, 1 + 2 + 4);
    let (_, v, _) = ingest(&app, TOKEN, vec![event("old-1", &staying, "api_call", 1)]).await;
    assert_eq!(v["duplicates"], 1, "{v}");
    assert_eq!(receipts_of(&app, &leaving).await, (2, 2));

    // Shredding a tenant deletes its raw events (their properties may be personal data).
    app.action(
        &leaving,
        "offboard",
        json!({"reason": "contract ended", "grace_days": 1}),
    )
    .await;
    app.clock.advance(chrono::Duration::days(2));
    let (s, run) = app.post("/api/jobs/shred_due_tenants/run", json!({})).await;
    assert!(s.is_success(), "{run}");
    assert_eq!(raw_events(&app).await, 1 + 1 + 2, "{run}");
    let (_, v, _) = ingest(&app, TOKEN, vec![event("s-1", &staying, "api_call", 5)]).await;
    assert_eq!(v["duplicates"], 1, "the neighbour's events are kept: {v}");
    // Its per-tenant log row went with the shred; its events in the receipt rows it shares
    // with the neighbour went in the job's writes after it, and the neighbour's stay.
    assert_eq!(receipts_of(&app, &leaving).await, (0, 1), "{run}");
    assert_eq!(receipts_of(&app, &staying).await.0, 2, "{run}");

    // In January, November is closed: its raw events (legacy ones too) are pruned, the
    // aggregates stay, and an old id may be used again.
    app.clock.advance(chrono::Duration::days(45));
    let (s, run) = app
        .post("/api/jobs/prune_usage_events/run", json!({}))
        .await;
    assert!(s.is_success(), "{run}");
    assert_eq!(raw_events(&app).await, 0, "{run}");
    assert_eq!(receipts_of(&app, &staying).await, (0, 0), "{run}");
    let mut again = event("s-1", &staying, "api_call", 2);
    again["ts"] = json!(app.clock.now().to_rfc3339());
    let (_, v, _) = ingest(&app, TOKEN, vec![again]).await;
    assert_eq!(v["accepted"], 1, "{v}");
    let november = app
        .state
        .read(move |r| tenantry::metering::queries::total(r, &legacy, 202611, "api_call"))
        .await
        .unwrap();
    assert_eq!(november, 5 + 1);
}

/// An `event_id` is unique per tenant: the same id from two tenants is two events, in one
/// batch as across batches, and a repeat within a tenant is one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_is_unique_per_tenant_not_across_tenants() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let a = tenant_id(&app, &app_id, "Alpha Co").await;
    let b = tenant_id(&app, &app_id, "Beta Co").await;
    let catalog = published_catalog(&app, rates(1, 1, None)).await;
    pin(&app, &a, &catalog, 1, json!([])).await;
    pin(&app, &b, &catalog, 1, json!([])).await;
    let (s, v, _) = ingest(
        &app,
        TOKEN,
        vec![
            event("order-1", &a, "api_call", 2),
            event("order-1", &b, "api_call", 3),
            event("order-1", &a, "api_call", 5),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["accepted"], &v["duplicates"]),
        (&json!(2), &json!(1)),
        "{v}"
    );
    assert_eq!(v["results"][2]["status"], "duplicate", "{v}");
    let (_, v, _) = ingest(&app, TOKEN, vec![event("order-2", &b, "api_call", 7)]).await;
    assert_eq!(v["accepted"], 1, "{v}");
    let (_, v, _) = ingest(&app, TOKEN, vec![event("order-2", &a, "api_call", 11)]).await;
    assert_eq!(v["accepted"], 1, "{v}");
    for (t, want) in [(&a, 2 + 11), (&b, 3 + 7)] {
        let (_, m) = app.get(&format!("/api/tenants/{t}/usage/live")).await;
        assert_eq!(line(&m, "api_call")["quantity"].as_i64(), Some(want), "{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_a_soft_cap_warns_on_every_tenant_answer_writes_once_and_never_blocks() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let t = tenant_id(&app, &app_id, "Capped Co").await;
    let other = tenant_id(&app, &app_id, "Calm Co").await;
    let catalog = published_catalog(&app, rates(1, 1, Some(100))).await;
    pin(&app, &t, &catalog, 1, json!([])).await;
    pin(&app, &other, &catalog, 1, json!([])).await;

    let (s, v, w) = ingest(&app, TOKEN, vec![event("a", &t, "api_call", 60)]).await;
    assert_eq!((s, v["accepted"].as_u64()), (StatusCode::OK, Some(1)));
    assert!(w.is_empty(), "{w:?}");
    let (s, v, w) = ingest(
        &app,
        TOKEN,
        vec![
            event("b", &t, "api_call", 60),
            event("c", &other, "api_call", 5),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "crossing a cap never blocks");
    assert_eq!(v["accepted"], 2, "{v}");
    assert_eq!(
        w,
        vec![r#"299 tenantry "soft cap exceeded: api_call 120/100""#.to_string()]
    );
    let (_, _, w) = ingest(&app, TOKEN, vec![event("d", &t, "api_call", 10)]).await;
    assert_eq!(
        w,
        vec![r#"299 tenantry "soft cap exceeded: api_call 130/100""#.to_string()]
    );
    // Usage of another SKU (one that sorts before it) still answers with the cap it is over.
    let (_, v, w) = ingest(&app, TOKEN, vec![event("e", &t, "ai_token", 10)]).await;
    assert_eq!(v["accepted"], 1, "{v}");
    assert_eq!(
        w,
        vec![r#"299 tenantry "soft cap exceeded: api_call 130/100""#.to_string()]
    );

    let crossed = |actions: Vec<String>| {
        actions
            .iter()
            .filter(|a| *a == "usage.soft_cap.exceeded.v1")
            .count()
    };
    assert_eq!(
        crossed(app.actions(&format!("tenant:{t}")).await),
        1,
        "written once per SKU and period"
    );
    assert_eq!(crossed(app.actions(&format!("tenant:{other}")).await), 0);

    // Every tenant-scoped API answer for the tenant carries it while over; others do not.
    let live = format!("/api/tenants/{t}/usage/live");
    assert_eq!(warnings_of(&app, &live).await.len(), 1);
    assert_eq!(
        warnings_of(&app, &format!("/api/tenants/{t}/catalog"))
            .await
            .len(),
        1
    );
    assert!(
        warnings_of(&app, &format!("/api/tenants/{other}/usage/live"))
            .await
            .is_empty()
    );
    assert!(warnings_of(&app, "/api/catalogs").await.is_empty());
    let (_, m) = app.get(&live).await;
    assert_eq!(line(&m, "api_call")["over_soft_cap"], true);
    // The operator's tenant detail shows the yellow badge.
    let (_, html, _) = app.get_text(&format!("/platform/tenants/{t}")).await;
    assert!(
        html.contains("soft-cap exceeded"),
        "no badge on the tenant detail"
    );

    // The board survives a restart (read back from the stored crossings).
    let app = app.restart().await;
    assert_eq!(warnings_of(&app, &live).await.len(), 1);
    // A per-tenant override above the usage ends the warning.
    pin(
        &app,
        &t,
        &catalog,
        1,
        json!([{"sku": "api_call", "cap": 1000}]),
    )
    .await;
    assert!(warnings_of(&app, &live).await.is_empty());
    let (_, m) = app.get(&live).await;
    assert_eq!(line(&m, "api_call")["soft_cap"], 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_problem_that_writes_nothing_and_a_bad_event_fails_no_neighbour() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let t = tenant_id(&app, &app_id, "Good Co").await;
    let leaving = tenant_id(&app, &app_id, "Leaving Co").await;
    let before = app.total_entries().await;

    let (s, v) = app
        .post("/api/catalogs", json!({"name": "", "currency": "dollars", "rates": [{"sku": "Bad SKU", "unit": "x", "tiers": []}]}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["code"], "validation_failed");
    let (s, v) = app
        .post("/api/catalogs", json!({"name": "Tiers", "currency": "EUR", "rates": [{"sku": "api_call", "unit": "api_call", "tiers": [{"up_to": 10, "unit_amount_minor": 1}]}]}))
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the last tier must be unbounded: {v}"
    );
    let (s, v) = app
        .post(
            "/api/plans",
            json!({"code": "Team!", "name": "Team", "amount_minor": -5, "currency": "USD"}),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")),
        "{v}"
    );
    let (s, v) = app.post("/api/usage/events", json!({"events": []})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let many: Vec<Value> = (0..1001)
        .map(|i| event(&format!("x{i}"), &t, "api_call", 1))
        .collect();
    let (s, v) = app.post("/api/usage/events", json!({"events": many})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "over 1000 events: {v}");
    let res = app
        .client
        .post(app.url("/api/usage/events"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"events\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(
        app.total_entries().await,
        before,
        "a refused request writes no audit entry"
    );
    assert_eq!(app.get("/api/catalogs").await.1["items"], json!([]));

    // Per event: one good event among bad ones is counted; the bad ones change nothing.
    let catalog = published_catalog(&app, rates(1, 1, None)).await;
    pin(&app, &t, &catalog, 1, json!([])).await;
    pin(&app, &leaving, &catalog, 1, json!([])).await;
    let (s, v) = app.action(&leaving, "activate", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app
        .action(&leaving, "offboard", json!({"reason": "contract ended"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut closed = event("old", &t, "api_call", 1);
    closed["ts"] = json!("2026-09-15T00:00:00Z");
    let mut future = event("ahead", &t, "api_call", 1);
    future["ts"] = json!("2026-11-22T10:00:00Z");
    let (s, v, _) = ingest(
        &app,
        TOKEN,
        vec![
            event("ok", &t, "api_call", 4),
            event("ghost", &uuid::Uuid::now_v7().to_string(), "api_call", 1),
            event("nosku", &t, "gpu_second", 1),
            closed,
            event("gone", &leaving, "api_call", 1),
            event("zero", &t, "api_call", 0),
            future,
            event("ok", &t, "api_call", 4),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let reasons: Vec<(String, String)> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().into(),
                r["reason"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    let expect = [
        ("accepted", ""),
        ("rejected", "unknown_tenant"),
        ("rejected", "unknown_sku"),
        ("rejected", "closed_period"),
        ("rejected", "offboarded_tenant"),
        ("rejected", "invalid_event"),
        ("rejected", "future_timestamp"),
        ("duplicate", ""),
    ];
    assert_eq!(
        reasons,
        expect.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
    );
    let (_, m) = app.get(&format!("/api/tenants/{t}/usage/live")).await;
    assert_eq!(line(&m, "api_call")["quantity"], 4);
    assert_eq!(m["lines"].as_array().unwrap().len(), 1);
}

/// A service persona in business unit `bu` with a key holding `scopes`: `(key, key id)`.
async fn key_with(app: &TestApp, tenant: &str, scopes: Value) -> (String, String, String) {
    let (s, bu) = app
        .post(
            &format!("/api/tenants/{tenant}/business-units"),
            json!({"name": "Platform team", "kind": "team"}),
        )
        .await;
    assert!(s.is_success(), "{bu}");
    let (s, persona) = app
        .post(
            &format!("/api/tenants/{tenant}/personas"),
            json!({"kind": "service", "display_name": "Gateway", "roles": ["integration"], "bu_id": bu["id"]}),
        )
        .await;
    assert!(s.is_success(), "{persona}");
    let (s, key) = app
        .post(
            &format!("/api/tenants/{tenant}/api-keys"),
            json!({"persona_id": persona["id"], "name": "meter", "scopes": scopes, "expires_at": "2027-12-31T00:00:00Z"}),
        )
        .await;
    assert!(s.is_success(), "{key}");
    (
        key["key"].as_str().unwrap().to_string(),
        key["id"].as_str().unwrap().to_string(),
        persona["id"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_with_usage_write_posts_only_for_its_own_tenant() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let a = tenant_id(&app, &app_id, "Alpha Co").await;
    let b = tenant_id(&app, &app_id, "Beta Co").await;
    let catalog = published_catalog(&app, rates(1, 1, None)).await;
    pin(&app, &a, &catalog, 1, json!([])).await;
    pin(&app, &b, &catalog, 1, json!([])).await;
    let (key, key_id, persona) = key_with(&app, &a, json!(["usage.write"])).await;

    let (s, v, _) = ingest(
        &app,
        &key,
        vec![
            event("k-1", &a, "api_call", 7),
            event("k-2", &b, "api_call", 9),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["results"][0]["status"], "accepted", "{v}");
    assert_eq!(v["results"][1]["status"], "rejected");
    assert_eq!(
        v["results"][1]["reason"], "unknown_tenant",
        "another tenant reads as unknown"
    );
    let (_, m) = app.get(&format!("/api/tenants/{b}/usage/live")).await;
    assert_eq!(
        m["lines"],
        json!([]),
        "nothing counted for the other tenant"
    );
    // Attributed to the posting key and its persona.
    let (_, m) = app.get(&format!("/api/tenants/{a}/usage/live")).await;
    let sources = &line(&m, "api_call")["sources"];
    assert!(
        sources
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "api_key" && s["id"] == key_id.as_str() && s["quantity"] == 7),
        "{sources}"
    );
    assert!(
        sources
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "persona" && s["id"] == persona.as_str()),
        "{sources}"
    );

    // Without the scope: 403 insufficient_scope. Another tenant's meter: 404.
    // One batch with a repeat: the aggregates (summed over the batch before they are written)
    // add every accepted event once, by SKU, key and persona alike.
    let (s, v, _) = ingest(
        &app,
        &key,
        vec![
            event("k-4", &a, "api_call", 3),
            event("k-5", &a, "api_call", 4),
            event("k-4", &a, "api_call", 3),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    let (_, m) = app.get(&format!("/api/tenants/{a}/usage/live")).await;
    let l = line(&m, "api_call");
    assert_eq!(l["quantity"], 14, "{m}");
    for kind in ["api_key", "persona"] {
        assert!(
            l["sources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["kind"] == kind && s["quantity"] == 14),
            "{kind}: {l}"
        );
    }

    let (reader, _, _) = key_with(&app, &a, json!(["metrics.read"])).await;
    let (s, v, _) = ingest(&app, &reader, vec![event("k-3", &a, "api_call", 1)]).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("insufficient_scope")),
        "{v}"
    );
    let (s, _) = app
        .send(
            Method::GET,
            &format!("/api/tenants/{b}/usage/live"),
            None,
            Some(&key),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_are_seeded_from_config_then_managed_and_a_tenant_keeps_its_plan_history() {
    let app = TestApp::spawn().await;
    let (s, v) = app.get("/api/plans").await;
    assert_eq!(s, StatusCode::OK);
    let codes: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["agency", "enterprise", "free", "pro"]);
    let pro = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "pro")
        .unwrap();
    assert_eq!(
        (
            pro["amount_minor"].as_i64(),
            pro["currency"].as_str(),
            pro["interval"].as_str()
        ),
        (Some(4900), Some("USD"), Some("month"))
    );

    let (s, v) = app
        .post("/api/plans", json!({"code": "team", "name": "Team", "amount_minor": 99_00, "currency": "eur", "interval": "year",
            "trial_days": 30, "features": ["sso"], "max_personas": 20, "included": [{"sku": "api_call", "quantity": 50000}]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["currency"], "EUR");
    let (s, v) = app
        .post(
            "/api/plans",
            json!({"code": "team", "name": "Team", "amount_minor": 1, "currency": "EUR"}),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("plan_exists"))
    );

    // A managed plan can be provisioned with; an unknown one is refused.
    let app_id = app.app("Projex Work").await;
    let t = app
        .tenant_with(json!({"app_id": app_id, "display_name": "Team Co", "region": "us-east-1", "plan": "team"}))
        .await;
    let id = t["id"].as_str().unwrap();
    let (s, v) = app.post("/api/tenants", json!({"app_id": app_id, "display_name": "Nope Co", "region": "us-east-1", "plan": "platinum"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, _) = app
        .patch(&format!("/api/tenants/{id}"), json!({"plan": "pro"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, h) = app.get(&format!("/api/tenants/{id}/plan-history")).await;
    let items = h["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{h}");
    assert_eq!(
        (items[0]["plan"].as_str(), items[0]["from"].as_str()),
        (Some("pro"), Some("team"))
    );
    assert_eq!(items[1]["plan"], "team");

    // Replacing a plan is audited with its diff.
    let (s, v) = app
        .send(
            Method::PUT,
            "/api/plans/pro",
            Some(json!({"name": "Pro", "amount_minor": 5900, "currency": "USD"})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["amount_minor"], 5900);
    assert!(
        app.actions("platform")
            .await
            .iter()
            .any(|a| a == "plan.updated.v1")
    );
    // The plans survive a restart and are not re-seeded.
    let app = app.restart().await;
    assert_eq!(app.get("/api/plans/pro").await.1["amount_minor"], 5900);
    assert_eq!(
        app.get("/api/plans").await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let (s, html, _) = app.get_text("/platform/plans").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("EUR 99.00"), "the plans page shows the price");
}
