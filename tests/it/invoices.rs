//! Invoices (issue 10, second half): drafts that follow usage, finalization with the clock
//! moved (gapless numbers, immutable lines, the digest in the ledger), PDF text checked by
//! `pdftotext` and CSV parsed, payments, failures, voids, delinquency, anomalies, showback and
//! billing profiles.

use chrono::{Duration, TimeZone, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TOKEN, TestApp};

/// api_call: 10 minor units for the first 100, then 5; storage_gb: 200 per unit.
fn rates() -> Value {
    json!([{
        "sku": "api_call", "unit": "api_call",
        "tiers": [{"up_to": 100, "unit_amount_minor": 10}, {"up_to": null, "unit_amount_minor": 5}],
    }, {
        "sku": "storage_gb", "unit": "gb_month",
        "tiers": [{"up_to": null, "unit_amount_minor": 200}],
    }])
}

async fn catalog(app: &TestApp) -> String {
    let (s, v) = app
        .post(
            "/api/catalogs",
            json!({"name": "Core usage", "currency": "USD", "rates": rates()}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["catalog_id"].as_str().unwrap().to_string();
    let (s, v) = app
        .post(&format!("/api/catalogs/{id}/versions/1/publish"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    id
}

/// A tenant pinned to `catalog` v1, on `plan` (activated when it has one).
async fn billed_tenant(
    app: &TestApp,
    app_id: &str,
    name: &str,
    plan: Option<&str>,
    catalog: &str,
) -> String {
    let mut body = json!({"app_id": app_id, "display_name": name, "region": "us-east-1"});
    if let Some(p) = plan {
        body["plan"] = json!(p);
    }
    let id = app.tenant_with(body).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    if plan.is_some() {
        let (s, v) = app.action(&id, "activate", json!({})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, v) = app
        .send(
            Method::PUT,
            &format!("/api/tenants/{id}/catalog"),
            Some(json!({"catalog_id": catalog, "version": 1})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    id
}

async fn usage(app: &TestApp, tenant: &str, events: &[(&str, &str, i64)]) -> Value {
    let ts = app.clock.now().to_rfc3339();
    let events: Vec<Value> = events
        .iter()
        .map(|(id, sku, q)| json!({"event_id": id, "tenant_id": tenant, "sku": sku, "quantity": q, "ts": ts}))
        .collect();
    let (s, v) = app
        .post("/api/usage/events", json!({"events": events}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

async fn run_job(app: &TestApp, job: &str) -> Value {
    let (s, v) = app.post(&format!("/api/jobs/{job}/run"), json!({})).await;
    assert!(s.is_success(), "{job}: {s} {v}");
    v
}

fn line<'a>(inv: &'a Value, sku: &str) -> &'a Value {
    inv["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["sku"] == sku)
        .unwrap_or_else(|| panic!("no {sku} line in {inv}"))
}

async fn bytes(app: &TestApp, path: &str) -> (StatusCode, String, Vec<u8>) {
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, res.bytes().await.unwrap().to_vec())
}

fn pdftotext(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invoice.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-layout", path.to_str().unwrap(), "-"])
        .output()
        .expect("pdftotext (Debian poppler-utils) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalization_with_the_clock_moved_numbers_without_gaps_and_the_documents_hold_every_line()
{
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let cat = catalog(&app).await;
    let pro = billed_tenant(&app, &app_id, "Acme Pro", Some("pro"), &cat).await;
    let payg = billed_tenant(&app, &app_id, "Payg Ltd", None, &cat).await;
    usage(
        &app,
        &pro,
        &[("p1", "api_call", 50), ("p2", "storage_gb", 3)],
    )
    .await;
    usage(&app, &payg, &[("g1", "api_call", 150)]).await;

    // The upcoming invoice follows usage: the plan fee, included calls at 0, storage by tier.
    let (s, up) = app
        .get(&format!("/api/tenants/{pro}/invoices/upcoming"))
        .await;
    assert_eq!(s, StatusCode::OK, "{up}");
    assert_eq!(up["status"], "draft");
    assert_eq!(up["period"], "202611");
    assert_eq!(up["lines"][0]["kind"], "plan");
    assert_eq!(up["lines"][0]["amount_minor"], 4900);
    assert_eq!(line(&up, "api_call")["amount_minor"], 0);
    assert_eq!(line(&up, "api_call")["included"], 1_000_000);
    assert_eq!(line(&up, "storage_gb")["amount_minor"], 600);
    assert_eq!(up["total_minor"], 5500);
    assert!(up["number"].is_null());
    let draft_id = up["id"].as_str().unwrap().to_string();
    assert_ne!(draft_id, uuid::Uuid::nil().to_string());
    // A draft has no documents yet.
    let (s, _, _) = bytes(&app, &format!("/api/invoices/{draft_id}.pdf")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    usage(&app, &payg, &[("g2", "api_call", 10)]).await;
    let (_, up) = app
        .get(&format!("/api/tenants/{payg}/invoices/upcoming"))
        .await;
    assert_eq!(up["total_minor"], 100 * 10 + 60 * 5, "{up}");

    // The period ends; its late grace passes; the job finalizes both drafts.
    app.clock
        .set(Utc.with_ymd_and_hms(2026, 12, 4, 1, 0, 0).unwrap());
    let run = run_job(&app, "finalize_invoices").await;
    assert!(run.to_string().contains("finalized 2"), "{run}");
    let (s, list) = app
        .get("/api/invoices?status=finalized&period=202611")
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    let mut numbers: Vec<&str> = items
        .iter()
        .map(|i| i["number"].as_str().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, ["INV-000001", "INV-000002"]);
    let inv = items
        .iter()
        .find(|i| i["tenant_id"] == pro.as_str())
        .unwrap()
        .clone();
    assert_eq!(inv["id"], draft_id.as_str(), "the draft became the invoice");
    assert_eq!(inv["total_minor"], 5500);
    assert_eq!(line(&inv, "storage_gb")["catalog_version"], 1);
    assert_eq!(line(&inv, "storage_gb")["catalog_id"], cat.as_str());
    assert_eq!(inv["amount_due_minor"], 5500);
    let due = chrono::DateTime::parse_from_rfc3339(inv["due_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        due.with_timezone(&Utc),
        app.clock.now() + Duration::days(30)
    );
    // The ledger holds the digest of the canonical content.
    let sha = inv["content_sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    let entries = app.chain(&format!("tenant:{pro}")).await;
    let fin = entries
        .iter()
        .find(|e| e["action"] == "invoice.finalized.v1")
        .expect("finalization entry");
    assert_eq!(fin["data"]["content_sha256"], sha);
    assert_eq!(fin["data"]["number"], inv["number"]);

    // The PDF's text holds the number, every line and the total.
    let id = inv["id"].as_str().unwrap();
    let (s, ct, pdf) = bytes(&app, &format!("/api/invoices/{id}.pdf")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ct, "application/pdf");
    assert!(pdf.starts_with(b"%PDF-"));
    let text = pdftotext(&pdf);
    for needle in [
        inv["number"].as_str().unwrap(),
        "Pro plan (month)",
        "api_call (api_call)",
        "storage_gb (gb_month)",
        "USD 49.00",
        "USD 6.00",
        "USD 55.00",
        "Acme Pro",
        sha,
    ] {
        assert!(
            text.contains(needle),
            "{needle} not in the PDF text:\n{text}"
        );
    }
    // The CSV parses, one row per line, and sums to the total.
    let (s, ct, csv_bytes) = bytes(&app, &format!("/api/invoices/{id}.csv")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(ct.starts_with("text/csv"));
    let mut rdr = csv::Reader::from_reader(csv_bytes.as_slice());
    let headers = rdr.headers().unwrap().clone();
    let amount = headers.iter().position(|h| h == "amount_minor").unwrap();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let sum: i64 = rows.iter().map(|r| r[amount].parse::<i64>().unwrap()).sum();
    assert_eq!(sum, 5500);

    // A finalized invoice refuses edits, and its period takes no more events.
    let (s, v) = app
        .post(&format!("/api/invoices/{id}/finalize"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "invoice_not_draft");

    // The job opened December's drafts; finalizing one early takes the next number, and closes
    // December to usage for that tenant only.
    let (_, dec) = app
        .get(&format!("/api/tenants/{payg}/invoices/upcoming"))
        .await;
    assert_eq!(dec["period"], "202612");
    let dec_id = dec["id"].as_str().unwrap().to_string();
    assert_ne!(dec_id, uuid::Uuid::nil().to_string(), "{dec}");
    usage(&app, &payg, &[("d1", "api_call", 7)]).await;
    let (s, v) = app
        .post(&format!("/api/invoices/{dec_id}/finalize"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["number"], "INV-000003");
    assert_eq!(v["total_minor"], 70);
    let out = usage(&app, &payg, &[("d2", "api_call", 1)]).await;
    assert_eq!(out["results"][0]["status"], "rejected", "{out}");
    assert_eq!(out["results"][0]["reason"], "closed_period", "{out}");
    let out = usage(&app, &pro, &[("d3", "api_call", 1)]).await;
    assert_eq!(out["results"][0]["status"], "accepted", "{out}");

    // The reconciliation export lists finalized invoices with what an accountant matches on.
    let res = app
        .client
        .get(app.url("/api/invoices"))
        .bearer_auth(TOKEN)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.text().await.unwrap();
    let mut rdr = csv::Reader::from_reader(body.as_bytes());
    let headers = rdr.headers().unwrap().clone();
    for h in [
        "number",
        "tenant_name",
        "total_minor",
        "due_at",
        "payment_reference",
        "content_sha256",
    ] {
        assert!(headers.iter().any(|x| x == h), "{h} missing in {headers:?}");
    }
    assert_eq!(rdr.records().count(), 3, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_unpaid_past_due_makes_its_tenant_delinquent_until_it_is_paid() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let cat = catalog(&app).await;
    let t = billed_tenant(&app, &app_id, "Slow Payer", Some("pro"), &cat).await;
    let (_, up) = app
        .get(&format!("/api/tenants/{t}/invoices/upcoming"))
        .await;
    let id = up["id"].as_str().unwrap().to_string();
    // Payments apply to finalized invoices only.
    let (s, v) = app
        .post(
            &format!("/api/invoices/{id}/payments"),
            json!({"amount_minor": 100}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "invoice_not_open");
    let (s, inv) = app
        .post(&format!("/api/invoices/{id}/finalize"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{inv}");
    assert_eq!(inv["total_minor"], 4900);

    // Bad payments are refused and write nothing.
    let before = app.total_entries().await;
    for (body, status, code) in [
        (
            json!({"amount_minor": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"amount_minor": 5000}),
            StatusCode::CONFLICT,
            "overpayment",
        ),
        (
            json!({"amount_minor": 10, "reference": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (json!({"amount": 10}), StatusCode::UNPROCESSABLE_ENTITY, ""),
    ] {
        let (s, v) = app
            .post(&format!("/api/invoices/{id}/payments"), body.clone())
            .await;
        assert_eq!(s, status, "{body}: {v}");
        if !code.is_empty() {
            assert_eq!(v["code"], code, "{body}: {v}");
        }
    }
    assert_eq!(app.total_entries().await, before);

    // A failed charge is recorded; the invoice stays open.
    let (s, v) = app
        .post(
            &format!("/api/invoices/{id}/payment-failures"),
            json!({"reason": "card declined"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["payment_failures"], 1);
    assert_eq!(v["status"], "finalized");

    // Not yet due: nothing happens. Past due: overdue, and the tenant is delinquent.
    run_job(&app, "mark_delinquent").await;
    assert!(
        !app.actions(&format!("tenant:{t}"))
            .await
            .contains(&"tenant.delinquent.v1".to_string())
    );
    app.clock.advance(Duration::days(31));
    run_job(&app, "mark_delinquent").await;
    let (_, v) = app.get(&format!("/api/invoices/{id}")).await;
    assert_eq!(v["overdue"], true, "{v}");
    let (_, overdue) = app.get("/api/invoices?overdue=true").await;
    assert_eq!(overdue["items"].as_array().unwrap().len(), 1, "{overdue}");
    let actions = app.actions(&format!("tenant:{t}")).await;
    assert!(
        actions.contains(&"invoice.overdue.v1".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"tenant.delinquent.v1".to_string()),
        "{actions:?}"
    );
    let (_, posture) = app.get("/api/platform/revenue").await;
    assert_eq!(posture["delinquent_tenants"], 1, "{posture}");
    // The job is idempotent: a second run changes nothing.
    let before = app.total_entries().await;
    run_job(&app, "mark_delinquent").await;
    assert_eq!(app.total_entries().await, before);

    // A partial payment lowers the amount due; the last one settles it and ends delinquency.
    let (s, v) = app
        .post(
            &format!("/api/invoices/{id}/payments"),
            json!({"amount_minor": 900, "reference": "wire 1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "finalized");
    assert_eq!(v["amount_due_minor"], 4000);
    let (s, v) = app
        .post(
            &format!("/api/invoices/{id}/payments"),
            json!({"amount_minor": 4000, "reference": "wire 2"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "paid");
    assert_eq!(v["overdue"], false);
    let actions = app.actions(&format!("tenant:{t}")).await;
    assert_eq!(
        actions.last().unwrap(),
        "tenant.delinquency.cleared.v1",
        "{actions:?}"
    );
    let (_, posture) = app.get("/api/platform/revenue").await;
    assert_eq!(posture["delinquent_tenants"], 0, "{posture}");
    // A paid invoice cannot be voided.
    let (s, v) = app
        .post(
            &format!("/api/invoices/{id}/void"),
            json!({"reason": "oops"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_void_keeps_the_number_and_a_sudden_tenfold_usage_is_flagged() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let cat = catalog(&app).await;
    let t = billed_tenant(&app, &app_id, "Spiky Inc", None, &cat).await;
    // Three quiet months, then a spike.
    for i in 0..3 {
        usage(&app, &t, &[(&format!("q{i}"), "api_call", 10)]).await;
        app.clock.advance(Duration::days(31));
    }
    let (_, quiet) = app
        .get(&format!("/api/tenants/{t}/invoices/upcoming"))
        .await;
    assert_eq!(quiet["anomalies"].as_array().unwrap().len(), 0, "{quiet}");
    usage(&app, &t, &[("spike", "api_call", 500)]).await;
    let (_, up) = app
        .get(&format!("/api/tenants/{t}/invoices/upcoming"))
        .await;
    let a = &up["anomalies"][0];
    assert_eq!(a["sku"], "api_call", "{up}");
    assert_eq!(a["quantity"], 500);
    assert_eq!(a["trailing_average"], 10);

    // Void: the number stays taken, the next invoice takes the one after. (The clock moved
    // over three period ends: the job finalizes those first, so no number is taken meanwhile.)
    run_job(&app, "finalize_invoices").await;
    let other = billed_tenant(&app, &app_id, "Calm Co", None, &cat).await;
    let draft = |v: Value| v["id"].as_str().unwrap().to_string();
    let first = draft(up);
    let second = draft(
        app.get(&format!("/api/tenants/{other}/invoices/upcoming"))
            .await
            .1,
    );
    let (s, a) = app
        .post(&format!("/api/invoices/{first}/finalize"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(
        a["anomalies"][0]["sku"], "api_call",
        "the flag stays on the invoice"
    );
    let before = app.total_entries().await;
    let (s, v) = app
        .post(
            &format!("/api/invoices/{first}/void"),
            json!({"reason": ""}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(app.total_entries().await, before);
    let (s, v) = app
        .post(
            &format!("/api/invoices/{first}/void"),
            json!({"reason": "billed in error"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "void");
    assert_eq!(v["number"], a["number"]);
    assert_eq!(v["amount_due_minor"], 0);
    let (s, b) = app
        .post(&format!("/api/invoices/{second}/finalize"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let n = |v: &Value| v["number"].as_str().unwrap()[4..].parse::<u64>().unwrap();
    assert_eq!(n(&b), n(&a) + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn showback_splits_a_period_by_business_unit_and_the_billing_profile_prints_on_the_invoice() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let cat = catalog(&app).await;
    let t = billed_tenant(&app, &app_id, "Split Co", None, &cat).await;
    let ok = |s: StatusCode, v: &Value| assert!(s.is_success(), "{s} {v}");
    let mut personas = Vec::new();
    for name in ["Engineering", "Sales"] {
        let (s, bu) = app
            .post(
                &format!("/api/tenants/{t}/business-units"),
                json!({"name": name, "kind": "team"}),
            )
            .await;
        ok(s, &bu);
        let (s, p) = app
            .post(
                &format!("/api/tenants/{t}/personas"),
                json!({"kind": "service", "display_name": format!("{name} bot"), "roles": ["member"], "bu_id": bu["id"]}),
            )
            .await;
        ok(s, &p);
        personas.push(p["id"].as_str().unwrap().to_string());
    }
    let ts = app.clock.now().to_rfc3339();
    let events = json!([
        {"event_id": "e1", "tenant_id": t, "sku": "api_call", "quantity": 100, "ts": ts, "persona_id": personas[0]},
        {"event_id": "e2", "tenant_id": t, "sku": "api_call", "quantity": 100, "ts": ts, "persona_id": personas[1]},
        {"event_id": "e3", "tenant_id": t, "sku": "api_call", "quantity": 100, "ts": ts},
    ]);
    let (s, v) = app
        .post("/api/usage/events", json!({"events": events}))
        .await;
    ok(s, &v);
    let (s, sb) = app
        .get(&format!("/api/tenants/{t}/showback?period=202611"))
        .await;
    assert_eq!(s, StatusCode::OK, "{sb}");
    let items = sb["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{sb}");
    let total: i64 = items
        .iter()
        .map(|i| i["amount_minor"].as_i64().unwrap())
        .sum();
    // 300 calls: 100 × 10 + 200 × 5.
    assert_eq!(total, 2000, "{sb}");
    assert_eq!(items[2]["business_unit"], "Unattributed");
    let names: Vec<&str> = items
        .iter()
        .map(|i| i["business_unit"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Engineering", "Sales", "Unattributed"]);
    let res = app
        .client
        .get(app.url(&format!("/api/tenants/{t}/showback?period=202611")))
        .bearer_auth(TOKEN)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    let body = res.text().await.unwrap();
    assert_eq!(
        csv::Reader::from_reader(body.as_bytes()).records().count(),
        3,
        "{body}"
    );
    let (s, v) = app
        .get(&format!("/api/tenants/{t}/showback?period=2026-11"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // The billing profile: bad input is refused whole and writes nothing.
    let before = app.total_entries().await;
    let (s, v) = app
        .send(
            Method::PUT,
            &format!("/api/tenants/{t}/billing-profile"),
            Some(json!({"email": "nope", "net_days": 0})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(app.total_entries().await, before);
    let (s, v) = app
        .send(
            Method::PUT,
            &format!("/api/tenants/{t}/billing-profile"),
            Some(json!({"name": "Split Company GmbH", "email": "ap@split.example",
                        "address": ["Hauptstrasse 1", "10115 Berlin"], "tax_id": "DE123456789", "net_days": 14})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, up) = app
        .get(&format!("/api/tenants/{t}/invoices/upcoming"))
        .await;
    let id = up["id"].as_str().unwrap();
    let (s, inv) = app
        .post(&format!("/api/invoices/{id}/finalize"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{inv}");
    assert_eq!(inv["bill_to"]["name"], "Split Company GmbH");
    let due = chrono::DateTime::parse_from_rfc3339(inv["due_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        due.with_timezone(&Utc),
        app.clock.now() + Duration::days(14)
    );
    let (_, _, pdf) = bytes(&app, &format!("/api/tenants/{t}/invoices/{id}.pdf")).await;
    let text = pdftotext(&pdf);
    for needle in [
        "Split Company GmbH",
        "Hauptstrasse 1",
        "DE123456789",
        "USD 20.00",
    ] {
        assert!(text.contains(needle), "{needle} not in:\n{text}");
    }
    // Another tenant's path does not reach this invoice.
    let other = billed_tenant(&app, &app_id, "Other Co", None, &cat).await;
    let (s, _, _) = bytes(&app, &format!("/api/tenants/{other}/invoices/{id}.pdf")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consoles_list_invoices_take_a_payment_and_serve_the_documents() {
    use crate::console::{operator, signin};
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let cat = catalog(&app).await;
    let t = billed_tenant(&app, &app_id, "Console Co", Some("pro"), &cat).await;
    usage(&app, &t, &[("c1", "storage_gb", 2)]).await;
    let (_, up) = app
        .get(&format!("/api/tenants/{t}/invoices/upcoming"))
        .await;
    let id = up["id"].as_str().unwrap().to_string();
    operator(&app, "fin", "business_admin").await;
    let s = signin(&app, "fin", "fin-password-123").await;

    // The draft's page finalizes it through its form.
    let page = s
        .get(&app, &format!("/platform/invoices/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Finalize now"), "{page}");
    let res = s
        .post(&app, &format!("/platform/invoices/{id}/finalize"), &[])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let list = s
        .get(&app, "/platform/invoices?status=finalized")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        list.contains("INV-000001") && list.contains("Console Co"),
        "{list}"
    );
    // A payment that is too large is refused on the page and changes nothing.
    let before = app.total_entries().await;
    let res = s
        .post(
            &app,
            &format!("/platform/invoices/{id}/payments"),
            &[("amount_minor", "999999"), ("reference", "")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.total_entries().await, before);
    let res = s
        .post(
            &app,
            &format!("/platform/invoices/{id}/payments"),
            &[("amount_minor", "5300"), ("reference", "wire 7")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, v) = app.get(&format!("/api/invoices/{id}")).await;
    assert_eq!(v["status"], "paid", "{v}");
    // Documents through the console session; the reconciliation CSV.
    let res = s.get(&app, &format!("/platform/invoices/{id}.pdf")).await;
    assert_eq!(res.headers()["content-type"], "application/pdf");
    let text = pdftotext(&res.bytes().await.unwrap());
    assert!(
        text.contains("INV-000001") && text.contains("USD 53.00"),
        "{text}"
    );
    let csv_text = s
        .get(&app, "/platform/invoices/reconciliation.csv")
        .await
        .text()
        .await
        .unwrap();
    assert!(csv_text.contains("wire 7"), "{csv_text}");
    // The tenant's Billing page: the meter refreshes itself, invoices link their documents,
    // showback and its CSV (seen on a visit); the operator's tenant detail shows the billing
    // panel.
    let billing = s.visit_page(&app, &t, "/billing").await;
    assert!(billing.contains("http-equiv=\"refresh\""), "{billing}");
    assert!(
        billing.contains(&format!("/tenant/{t}/billing/invoices/{id}.pdf")),
        "{billing}"
    );
    assert!(billing.contains("Showback by business unit"), "{billing}");
    let res = s
        .get(&app, &format!("/tenant/{t}/billing/invoices/{id}.csv"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let detail = s
        .get(&app, &format!("/platform/tenants/{t}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        detail.contains("Open balance") && detail.contains("Upcoming invoice"),
        "{detail}"
    );
}
