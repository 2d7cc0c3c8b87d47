//! The live meter and the upcoming invoice at 1 event and at 10 million (issue 10: "must cost
//! the same at 1 event as at 10 million"). Both read maintained aggregates (`usage_totals`,
//! `usage_by_source`, the pinned catalog version), never the events, so their cost depends on
//! the number of SKUs and sources of a period, not on its events.
//!
//! It starts the real application (system clock, temp data dir) on 127.0.0.1:0 in this process,
//! pins two tenants to one published catalog, posts 1 event for the first and
//! `TENANTRY_BENCH_EVENTS` (10,000,000) for the second through `POST /api/usage/events`, in
//! batches of 1,000 from 8 clients, every batch durable before its answer. Both tenants' events
//! are of one SKU with graduated tiers. Then Criterion times, for each tenant:
//! - `live/store` and `upcoming/store`: the query on a read snapshot, in process, on the
//!   bench's thread (`Store::read_blocking`, without `AppState::read`'s hop to a blocking thread);
//! - `live/http` and `upcoming/http`: `GET /api/tenants/{id}/usage/live` and
//!   `GET /api/tenants/{id}/invoices/upcoming` over loopback HTTP, with the JSON answer read.
//!
//! ```text
//! cargo bench --bench meter
//! TENANTRY_BENCH_EVENTS=1000000 cargo bench --bench meter
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tenantry::app::Application;
use tenantry::clock::Clock;
use tenantry::config::{Config, Secret};
use tenantry::state::AppState;
use uuid::Uuid;

const TOKEN: &str = "meter-bench-token-0123456789abcdef";
/// Events per request (the most one request may carry is 1,000).
const BATCH: u64 = 1000;
/// Concurrent posting clients.
const CLIENTS: u64 = 8;

struct Fixture {
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    state: AppState,
    client: reqwest::Client,
    base: String,
    /// `(label, tenant id)`: the tenant with 1 event, then the one with many.
    tenants: Vec<(String, Uuid)>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> Value {
    let res = client
        .post(url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let v = res.json::<Value>().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status} {v}");
    v
}

/// Posts `n` events of `sku` for `tenant`, `BATCH` per request from `CLIENTS` clients; returns
/// the events accepted.
async fn ingest(client: &reqwest::Client, base: &str, tenant: Uuid, n: u64) -> u64 {
    let mut tasks = Vec::new();
    for c in 0..CLIENTS.min(n) {
        let (client, url) = (client.clone(), format!("{base}/api/usage/events"));
        tasks.push(tokio::spawn(async move {
            let (mut accepted, mut body) = (0u64, String::with_capacity(BATCH as usize * 150));
            let ts = chrono::Utc::now().to_rfc3339();
            // Client c posts the events c, c + CLIENTS, ... below n.
            let mut next = c;
            while next < n {
                body.clear();
                body.push_str(r#"{"events":["#);
                for i in 0..BATCH {
                    if next >= n {
                        break;
                    }
                    if i > 0 {
                        body.push(',');
                    }
                    let _ = write!(
                        body,
                        r#"{{"event_id":"e-{next:010}","tenant_id":"{tenant}","sku":"api_call","quantity":{},"ts":"{ts}"}}"#,
                        1 + next % 7
                    );
                    next += CLIENTS;
                }
                body.push_str("]}");
                let res = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert!(res.status().is_success(), "{}", res.status());
                let v: Value = res.json().await.unwrap();
                accepted += v["accepted"].as_u64().unwrap();
            }
            accepted
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.unwrap();
    }
    accepted
}

fn fixture() -> Fixture {
    let events: u64 = std::env::var("TENANTRY_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        admin_ops_token: Some(Secret::new(TOKEN)),
        ..Config::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (state, base, client, tenants) = rt.block_on(async {
        let app = Application::build(config, Clock::System).await.unwrap();
        let base = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        tokio::spawn(app.run_until_stopped(async move {
            let _ = stop_rx.await;
        }));
        // Idle connections are dropped before the server's 10 s idle close (benches/load.rs).
        let client = reqwest::Client::builder()
            .pool_idle_timeout(std::time::Duration::from_secs(4))
            .build()
            .unwrap();
        let app_id = post(&client, format!("{base}/api/apps"), json!({"name": "Meter"})).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let catalog = post(
            &client,
            format!("{base}/api/catalogs"),
            json!({"name": "Meter", "currency": "USD", "rates": [
                {"sku": "api_call", "unit": "api_call", "per_units": 1000,
                 "soft_cap": 1_000_000_000_000u64,
                 "tiers": [{"up_to": 1_000_000, "unit_amount_minor": 2},
                           {"up_to": null, "unit_amount_minor": 1}]}]}),
        )
        .await["catalog_id"]
            .as_str()
            .unwrap()
            .to_string();
        post(
            &client,
            format!("{base}/api/catalogs/{catalog}/versions/1/publish"),
            json!({}),
        )
        .await;
        let mut tenants = Vec::new();
        for (label, n) in [("1 event".to_string(), 1), (format!("{events} events"), events)] {
            let t = post(
                &client,
                format!("{base}/api/tenants"),
                json!({"app_id": app_id, "display_name": format!("Meter {label}"), "region": "us-east-1"}),
            )
            .await;
            let id: Uuid = t["id"].as_str().unwrap().parse().unwrap();
            post(
                &client,
                format!("{base}/api/tenant-lifecycle/{id}/activate"),
                json!({}),
            )
            .await;
            let res = client
                .put(format!("{base}/api/tenants/{id}/catalog"))
                .bearer_auth(TOKEN)
                .json(&json!({"catalog_id": catalog, "version": 1}))
                .send()
                .await
                .unwrap();
            assert!(res.status().is_success());
            let started = Instant::now();
            let accepted = ingest(&client, &base, id, n).await;
            assert_eq!(accepted, n);
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{label}: posted in {secs:.1} s ({:.0} events/s, batches of {BATCH}, {CLIENTS} clients)",
                n as f64 / secs
            );
            tenants.push((label, id));
        }
        (state, base, client, tenants)
    });
    println!(
        "raw events stored: {}",
        rt.block_on(state.read(tenantry::metering::queries::raw_events))
            .unwrap()
    );
    Fixture {
        _dir: dir,
        rt,
        state,
        client,
        base,
        tenants,
        _stop: stop_tx,
    }
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("meter");
    g.measurement_time(Duration::from_secs(4));
    for (label, id) in &f.tenants {
        let id = *id;
        // The figures must agree before they are timed: the big tenant's meter holds its events.
        let meter =
            f.rt.block_on(
                f.state
                    .read(move |r| tenantry::metering::queries::live(r, &id, chrono::Utc::now())),
            )
            .unwrap();
        println!(
            "{label}: live meter {} line(s), quantity {}, total {} minor units",
            meter.lines.len(),
            meter.lines.iter().map(|l| l.quantity).sum::<u64>(),
            meter.total_minor
        );
        g.bench_with_input(BenchmarkId::new("live/store", label), &id, |b, id| {
            b.iter(|| {
                let id = *id;
                black_box(
                    f.state
                        .store()
                        .read_blocking(|r| {
                            tenantry::metering::queries::live(r, &id, chrono::Utc::now())
                        })
                        .unwrap(),
                )
            })
        });
        g.bench_with_input(BenchmarkId::new("upcoming/store", label), &id, |b, id| {
            b.iter(|| {
                let id = *id;
                black_box(
                    f.state
                        .store()
                        .read_blocking(|r| {
                            tenantry::invoices::queries::upcoming(r, &id, chrono::Utc::now())
                        })
                        .unwrap(),
                )
            })
        });
        for (name, path) in [
            ("live/http", "usage/live"),
            ("upcoming/http", "invoices/upcoming"),
        ] {
            let url = format!("{}/api/tenants/{id}/{path}", f.base);
            g.bench_with_input(BenchmarkId::new(name, label), &url, |b, url| {
                b.iter(|| {
                    f.rt.block_on(async {
                        let res = f.client.get(url).bearer_auth(TOKEN).send().await.unwrap();
                        assert!(res.status().is_success());
                        black_box(res.bytes().await.unwrap())
                    })
                })
            });
        }
    }
    g.finish();
}

criterion_group!(meter, benches);
criterion_main!(meter);
