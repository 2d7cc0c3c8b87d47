//! Load tool, at several client concurrencies over real HTTP:
//! - `lifecycle`: writes per second, each a suspend or reinstate with its audit entry committed
//!   durably;
//! - `ingest`: usage events per second through `POST /api/usage/events`, in batches of 100
//!   idempotent events (the work of `peers/ingest.sql`: dedupe lookup, the raw event, and the
//!   totals by tenant, SKU, period, source and day), each batch durable before its answer.
//!
//! It starts the real application (system clock, temp data dir) on 127.0.0.1:0 in this process,
//! gives each client its own tenant, and has every client alternate suspend/reinstate as fast as
//! answers come back.
//!
//! ```text
//! cargo bench --bench load                       # 1, 8 and 64 clients, 10 s each
//! cargo bench --bench load -- --clients 1,8,64,256 --seconds 20
//! cargo bench --bench load -- --scenario ingest  # only one scenario (lifecycle|ingest)
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tenantry::app::Application;
use tenantry::clock::Clock;
use tenantry::config::{Config, Secret};

const TOKEN: &str = "load-tool-token-0123456789abcdef";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let clients: Vec<usize> = arg("--clients")
        .unwrap_or_else(|| "1,8,64".into())
        .split(',')
        .map(|c| c.trim().parse().unwrap())
        .collect();
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(10);
    let scenario = arg("--scenario").unwrap_or_else(|| "all".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(clients, seconds, scenario));
}

async fn run(levels: Vec<usize>, seconds: u64, scenario: String) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        admin_ops_token: Some(Secret::new(TOKEN)),
        ..Config::default()
    };
    let app = Application::build(config, Clock::System).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .unwrap();
    let post = |path: String, body: Value| {
        let req = client
            .post(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .json(&body);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (_, app_json) = post("/api/apps".into(), json!({"name": "Load"})).await;
    let app_id = app_json["id"].as_str().unwrap().to_string();
    let most = *levels.iter().max().unwrap();
    let mut tenants = Vec::new();
    for i in 0..most {
        let (s, t) = post(
            "/api/tenants".into(),
            json!({"app_id": app_id, "display_name": format!("Load {i}"), "region": "us-east-1"}),
        )
        .await;
        assert!(s.is_success(), "{t}");
        let id = t["id"].as_str().unwrap().to_string();
        post(format!("/api/tenant-lifecycle/{id}/activate"), json!({})).await;
        tenants.push(id);
    }

    if scenario == "all" || scenario == "ingest" {
        ingest(&client, &base, &state, &tenants, &levels, seconds).await;
    }
    if scenario == "all" || scenario == "lifecycle" {
        lifecycle(&client, &base, &state, &tenants, &levels, seconds).await;
    }
    let (_, v) = post("/api/audit/verify".into(), json!({"full": true})).await;
    let ok = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["ok"] == true);
    println!("ledger after the run verifies: {ok}");
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

/// Events per batch in the ingest scenario.
const BATCH: usize = 100;

async fn ingest(
    client: &reqwest::Client,
    base: &str,
    state: &tenantry::state::AppState,
    tenants: &[String],
    levels: &[usize],
    seconds: u64,
) {
    let res: Value = client
        .post(format!("{base}/api/catalogs"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "Load", "currency": "USD", "rates": [
            {"sku": "api_call", "unit": "api_call", "per_units": 1000, "soft_cap": 1_000_000_000_000u64,
             "tiers": [{"up_to": 1_000_000, "unit_amount_minor": 2}, {"up_to": null, "unit_amount_minor": 1}]},
            {"sku": "ai_token", "unit": "ai_token", "per_units": 1000, "tiers": [{"up_to": null, "unit_amount_minor": 3}]}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let catalog = res["catalog_id"].as_str().unwrap().to_string();
    client
        .post(format!("{base}/api/catalogs/{catalog}/versions/1/publish"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    for t in tenants {
        let r = client
            .put(format!("{base}/api/tenants/{t}/catalog"))
            .bearer_auth(TOKEN)
            .json(&json!({"catalog_id": catalog, "version": 1}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    println!(
        "usage ingest over HTTP, batches of {BATCH} idempotent events, durable commit ({seconds} s per level)"
    );
    println!(
        "{:>8} {:>12} {:>10} {:>10} {:>10} {:>14}",
        "clients", "events/s", "p50 ms", "p99 ms", "errors", "avg batch"
    );
    for (level, &n) in levels.iter().enumerate() {
        let before = state.store().writer_stats();
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (c, id) in tenants.iter().take(n).enumerate() {
            let (id, client, base, stop) =
                (id.clone(), client.clone(), base.to_string(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let (mut errors, mut events) = (0u64, 0u64);
                let mut seq = 0u64;
                // The body is written as text and the answer read for its count only, so the
                // client (in this process, on the same cores) costs little beside the server.
                let mut body = String::with_capacity(BATCH * 160);
                while !stop.load(Ordering::Relaxed) {
                    let ts = chrono::Utc::now().to_rfc3339();
                    body.clear();
                    body.push_str(r#"{"events":["#);
                    for i in 0..BATCH {
                        seq += 1;
                        let sku = if i % 4 == 0 { "ai_token" } else { "api_call" };
                        if i > 0 {
                            body.push(',');
                        }
                        let _ = write!(
                            body,
                            r#"{{"event_id":"l{level}-c{c}-{seq}","tenant_id":"{id}","sku":"{sku}","quantity":{},"ts":"{ts}"}}"#,
                            1 + (seq % 50)
                        );
                    }
                    body.push_str("]}");
                    let t = Instant::now();
                    match client
                        .post(format!("{base}/api/usage/events"))
                        .bearer_auth(TOKEN)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => {
                            #[derive(serde::Deserialize)]
                            struct Counted {
                                accepted: u64,
                            }
                            let bytes = r.bytes().await.unwrap_or_default();
                            events += serde_json::from_slice::<Counted>(&bytes)
                                .map_or(0, |c| c.accepted);
                            lat.push(t.elapsed().as_micros() as u64);
                        }
                        _ => errors += 1,
                    }
                }
                (lat, errors, events)
            }));
        }
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let (mut all, mut errors, mut events) = (Vec::new(), 0, 0);
        for t in tasks {
            let (lat, e, n) = t.await.unwrap();
            all.extend(lat);
            errors += e;
            events += n;
        }
        let elapsed = started.elapsed().as_secs_f64();
        all.sort_unstable();
        let after = state.store().writer_stats();
        let batches = (after.batches - before.batches).max(1);
        println!(
            "{:>8} {:>12.0} {:>10.2} {:>10.2} {:>10} {:>14.1}",
            n,
            events as f64 / elapsed,
            percentile(&all, 0.5) as f64 / 1000.0,
            percentile(&all, 0.99) as f64 / 1000.0,
            errors,
            (after.requests - before.requests) as f64 / batches as f64
        );
    }
}

async fn lifecycle(
    client: &reqwest::Client,
    base: &str,
    state: &tenantry::state::AppState,
    tenants: &[String],
    levels: &[usize],
    seconds: u64,
) {
    println!(
        "lifecycle writes over HTTP, each with its audit entry, durable commit ({seconds} s per level)"
    );
    println!(
        "{:>8} {:>12} {:>10} {:>10} {:>10} {:>14}",
        "clients", "writes/s", "p50 ms", "p99 ms", "errors", "avg batch"
    );
    for &n in levels {
        let before = state.store().writer_stats();
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for id in tenants.iter().take(n) {
            let (id, client, base, stop) =
                (id.clone(), client.clone(), base.to_string(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0u64;
                let mut first_error: Option<String> = None;
                // A tenant reused from the previous level may have been left suspended.
                let state: Value = client
                    .get(format!("{base}/api/tenant-lifecycle/{id}/state"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let mut suspended = state["state"] == "suspended";
                while !stop.load(Ordering::Relaxed) {
                    let (path, body) = if suspended {
                        (
                            format!("{base}/api/tenant-lifecycle/{id}/reinstate"),
                            json!({}),
                        )
                    } else {
                        (
                            format!("{base}/api/tenant-lifecycle/{id}/suspend"),
                            json!({"reason": "load test"}),
                        )
                    };
                    let t = Instant::now();
                    match client
                        .post(path)
                        .bearer_auth(TOKEN)
                        .json(&body)
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            lat.push(t.elapsed().as_micros() as u64);
                            suspended = !suspended;
                        }
                        Ok(r) => {
                            errors += 1;
                            let status = r.status();
                            first_error.get_or_insert(format!(
                                "{status}: {}",
                                r.text().await.unwrap_or_default()
                            ));
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(format!("{e:?}"));
                        }
                    }
                }
                (lat, errors, first_error)
            }));
        }
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        let mut errors = 0;
        let mut first_error = None;
        for t in tasks {
            let (lat, e, first) = t.await.unwrap();
            all.extend(lat);
            errors += e;
            first_error = first_error.or(first);
        }
        let elapsed = started.elapsed().as_secs_f64();
        all.sort_unstable();
        let after = state.store().writer_stats();
        let batches = (after.batches - before.batches).max(1);
        println!(
            "{:>8} {:>12.0} {:>10.2} {:>10.2} {:>10} {:>14.1}",
            n,
            all.len() as f64 / elapsed,
            percentile(&all, 0.5) as f64 / 1000.0,
            percentile(&all, 0.99) as f64 / 1000.0,
            errors,
            (after.requests - before.requests) as f64 / batches as f64
        );
        if let Some(e) = first_error {
            println!("         first error: {e}");
        }
    }
}
