//! Load tool, at several client concurrencies over real HTTP:
//! - `lifecycle`: writes per second, each a suspend or reinstate with its audit entry committed
//!   durably;
//! - `ingest`: usage events per second through `POST /api/usage/events`, in batches of 100
//!   idempotent events (the work of `peers/ingest.sql`: random tenants of 10,000 and four SKUs,
//!   random event ids, the dedupe lookup, the raw event, and the totals by tenant, SKU, period,
//!   source and day), each batch durable before its answer.
//!
//! It starts the real application (system clock, temp data dir) on 127.0.0.1:0 in this process,
//! gives each lifecycle client its own tenant, and has every client send its next request as soon
//! as the answer comes back.
//!
//! ```text
//! cargo bench --bench load                       # 1, 8 and 64 clients, 10 s each
//! cargo bench --bench load -- --clients 1,8,64,256 --seconds 20
//! cargo bench --bench load -- --scenario ingest  # only one scenario (lifecycle|ingest)
//! cargo bench --bench load -- --scenario ingest --ingest-tenants 0  # each client its own tenant
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

/// What a failed request says: its status and body, or the transport error.
async fn failure(res: reqwest::Result<reqwest::Response>) -> String {
    match res {
        Ok(r) => {
            let status = r.status();
            format!("{status}: {}", r.text().await.unwrap_or_default())
        }
        Err(e) => format!("{e:?}"),
    }
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
        // Under the server's 10 s idle close ([http] header_read_timeout_secs): a connection
        // left idle between two levels (the ingest level creates 10,000 tenants first) is then
        // never reused just as the server closes it, which counted as an error at 64 clients.
        .pool_idle_timeout(Duration::from_secs(4))
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
    // The ingest scenario spreads its events over `--ingest-tenants` tenants, as
    // `peers/ingest.sql` does over its 10,000.
    let spread: usize = arg("--ingest-tenants")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let wanted = if scenario == "all" || scenario == "ingest" {
        most.max(spread)
    } else {
        most
    };
    let tenants = create_tenants(&client, &base, &app_id, wanted).await;

    if scenario == "all" || scenario == "ingest" {
        ingest(&client, &base, &state, &tenants, spread, &levels, seconds).await;
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

/// Creates and activates `n` tenants of `app_id`, 32 requests at a time; returns their ids in
/// creation order.
async fn create_tenants(
    client: &reqwest::Client,
    base: &str,
    app_id: &str,
    n: usize,
) -> Vec<String> {
    let mut tenants = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(32) {
        let mut tasks = Vec::new();
        for &i in chunk {
            let (client, base, app_id) = (client.clone(), base.to_string(), app_id.to_string());
            tasks.push(tokio::spawn(async move {
                let t: Value = client
                    .post(format!("{base}/api/tenants"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"app_id": app_id, "display_name": format!("Load {i}"), "region": "us-east-1"}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let id = t["id"].as_str().unwrap_or_else(|| panic!("{t}")).to_string();
                let res = client
                    .post(format!("{base}/api/tenant-lifecycle/{id}/activate"))
                    .bearer_auth(TOKEN)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
                assert!(res.status().is_success());
                id
            }));
        }
        for t in tasks {
            tenants.push(t.await.unwrap());
        }
    }
    tenants
}

/// Events per batch in the ingest scenario.
const BATCH: usize = 100;
/// SKUs of the ingest scenario's catalog: each tenant uses all four, as in `peers/ingest.sql`.
const SKUS: [&str; 4] = ["api_call", "ai_token", "mb_processed", "sms"];

/// splitmix64: the ingest scenario's random tenants, SKUs, quantities and batch ids.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The work of `peers/ingest.sql`: each request is a batch of `BATCH` events, each for a random
/// one of the first `spread` tenants and a random one of its four SKUs, with a random quantity of
/// 1 to 100, and an `event_id` of `client-batch-k` with a random batch (so the deduplication
/// set takes random keys). With `spread` 0, each client posts for its own tenant, two SKUs, with
/// ascending ids instead (the figure of earlier sessions).
async fn ingest(
    client: &reqwest::Client,
    base: &str,
    state: &tenantry::state::AppState,
    tenants: &[String],
    spread: usize,
    levels: &[usize],
    seconds: u64,
) {
    let rates: Vec<Value> = SKUS
        .iter()
        .map(|sku| {
            json!({"sku": sku, "unit": sku, "per_units": 1000, "soft_cap": 1_000_000_000_000u64,
                   "tiers": [{"up_to": 1_000_000, "unit_amount_minor": 2}, {"up_to": null, "unit_amount_minor": 1}]})
        })
        .collect();
    let res: Value = client
        .post(format!("{base}/api/catalogs"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "Load", "currency": "USD", "rates": rates}))
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
    for chunk in tenants.chunks(32) {
        let mut tasks = Vec::new();
        for t in chunk {
            let req = client
                .put(format!("{base}/api/tenants/{t}/catalog"))
                .bearer_auth(TOKEN)
                .json(&json!({"catalog_id": catalog, "version": 1}));
            tasks.push(tokio::spawn(
                async move { req.send().await.unwrap().status() },
            ));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_success());
        }
    }
    let tenants: Arc<Vec<String>> = Arc::new(tenants.to_vec());
    if spread == 0 {
        println!(
            "usage ingest over HTTP, batches of {BATCH} idempotent events, each client for its own tenant, durable commit ({seconds} s per level)"
        );
    } else {
        println!(
            "usage ingest over HTTP, batches of {BATCH} idempotent events for random tenants of {spread} and 4 SKUs (peers/ingest.sql), durable commit ({seconds} s per level)"
        );
    }
    println!(
        "{:>8} {:>12} {:>10} {:>10} {:>10} {:>14}",
        "clients", "events/s", "p50 ms", "p99 ms", "errors", "avg batch"
    );
    for (level, &n) in levels.iter().enumerate() {
        let before = state.store().writer_stats();
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for c in 0..n {
            let (tenants, client, base, stop) = (
                tenants.clone(),
                client.clone(),
                base.to_string(),
                stop.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let (mut errors, mut events) = (0u64, 0u64);
                let mut first_error: Option<String> = None;
                let mut seq = 0u64;
                let mut random = ((level as u64) << 32) | c as u64;
                // The body is written as text and the answer read for its count only, so the
                // client (in this process, on the same cores) costs little beside the server.
                let mut body = String::with_capacity(BATCH * 160);
                while !stop.load(Ordering::Relaxed) {
                    let ts = chrono::Utc::now().to_rfc3339();
                    let batch = next_random(&mut random);
                    body.clear();
                    body.push_str(r#"{"events":["#);
                    for i in 0..BATCH {
                        if i > 0 {
                            body.push(',');
                        }
                        if spread == 0 {
                            seq += 1;
                            let sku = if i % 4 == 0 { "ai_token" } else { "api_call" };
                            let _ = write!(
                                body,
                                r#"{{"event_id":"l{level}-c{c}-{seq}","tenant_id":"{}","sku":"{sku}","quantity":{},"ts":"{ts}"}}"#,
                                tenants[c],
                                1 + (seq % 50)
                            );
                        } else {
                            let e = next_random(&mut random) % (spread as u64 * 4);
                            let quantity = 1 + next_random(&mut random) % 100;
                            let _ = write!(
                                body,
                                r#"{{"event_id":"{c}-{batch}-{}","tenant_id":"{}","sku":"{}","quantity":{quantity},"ts":"{ts}"}}"#,
                                i + 1,
                                tenants[(e / 4) as usize],
                                SKUS[(e % 4) as usize],
                            );
                        }
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
                        failed => {
                            errors += 1;
                            let e = failure(failed).await;
                            first_error.get_or_insert(e);
                        }
                    }
                }
                (lat, errors, events, first_error)
            }));
        }
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let (mut all, mut errors, mut events) = (Vec::new(), 0, 0);
        let mut first_error = None;
        for t in tasks {
            let (lat, e, n, first) = t.await.unwrap();
            all.extend(lat);
            errors += e;
            events += n;
            first_error = first_error.or(first);
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
        if let Some(e) = first_error {
            println!("         first error: {e}");
        }
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
                        failed => {
                            errors += 1;
                            let e = failure(failed).await;
                            first_error.get_or_insert(e);
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
