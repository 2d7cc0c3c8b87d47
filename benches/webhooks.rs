//! Webhook delivery throughput: deliveries per second to a local receiver at 1 and 50
//! endpoints (issue 11).
//!
//! It starts the real application (system clock, temp data dir) and a receiver on 127.0.0.1 in
//! this process. For each level it makes one tenant with that many endpoints (all subscribed to
//! the tenant's suspend and reinstate events), holds the receiver's answers, writes enough
//! lifecycle events for about `--deliveries` deliveries (the dispatcher turns them into a
//! backlog meanwhile), then releases the receiver and times the drain: every delivery signed,
//! sent over HTTP and its attempt recorded durably. The receiver checks each delivery's
//! `webhook-signature` with the endpoint's secret (HMAC-SHA256, as Standard Webhooks says).
//!
//! ```text
//! cargo bench --bench webhooks                              # 1 and 50 endpoints, ~4000 each
//! cargo bench --bench webhooks -- --endpoints 1,10,50 --deliveries 10000
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tenantry::app::Application;
use tenantry::clock::Clock;
use tenantry::config::{Config, Secret};

const TOKEN: &str = "webhook-bench-token-0123456789abcdef";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[derive(Clone, Default)]
struct Rx {
    ok: Arc<AtomicU64>,
    bad: Arc<AtomicU64>,
    open: Arc<tokio::sync::watch::Sender<bool>>,
    keys: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

async fn hook(
    State(rx): State<Rx>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut open = rx.open.subscribe();
    let _ = open.wait_for(|o| *o).await;
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let key = rx
        .keys
        .lock()
        .unwrap()
        .get(&name)
        .cloned()
        .unwrap_or_default();
    let ts: i64 = h("webhook-timestamp").parse().unwrap_or(0);
    let expected = tenantry::webhooks::signing::sign(&key, &h("webhook-id"), ts, &body);
    if h("webhook-signature").split(' ').any(|s| s == expected) {
        rx.ok.fetch_add(1, Ordering::Relaxed);
    } else {
        rx.bad.fetch_add(1, Ordering::Relaxed);
    }
    StatusCode::NO_CONTENT
}

fn main() {
    let levels: Vec<usize> = arg("--endpoints")
        .unwrap_or_else(|| "1,50".into())
        .split(',')
        .map(|c| c.trim().parse().unwrap())
        .collect();
    let deliveries: usize = arg("--deliveries")
        .and_then(|s| s.parse().ok())
        .unwrap_or(4000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(levels, deliveries));
}

async fn run(levels: Vec<usize>, target: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        admin_ops_token: Some(Secret::new(TOKEN)),
        ..Config::default()
    };
    config.webhooks.allow_http = vec!["127.0.0.0/8".parse().unwrap()];
    config.webhooks.timeout_secs = 60;
    let (per_endpoint, in_flight) = (config.webhooks.per_endpoint, config.webhooks.max_in_flight);
    let app = Application::build(config, Clock::System).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stop_rx.await;
    }));

    let (open, _) = tokio::sync::watch::channel(false);
    let rx = Rx {
        open: Arc::new(open),
        ..Rx::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rx_addr = listener.local_addr().unwrap();
    let router = axum::Router::new()
        .route("/hook/{name}", axum::routing::post(hook))
        .with_state(rx.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let client = reqwest::Client::new();
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
    let (_, a) = post("/api/apps".into(), json!({"name": "Bench"})).await;
    println!(
        "webhook deliveries/s (per_endpoint = {per_endpoint}, max_in_flight = {in_flight}; every delivery signed, sent over HTTP on loopback, its attempt committed)"
    );
    println!(
        "endpoints  deliveries  events  events/s(write)  drain_s  deliveries/s  bad_signatures"
    );
    for (li, level) in levels.iter().enumerate() {
        rx.open.send_replace(false);
        let (_, t) = post(
            "/api/tenants".into(),
            json!({"app_id": a["id"], "display_name": format!("Bench {li}"), "region": "us-east-1"}),
        )
        .await;
        let tid = t["id"].as_str().unwrap().to_string();
        post(format!("/api/tenant-lifecycle/{tid}/activate"), json!({})).await;
        for i in 0..*level {
            let name = format!("l{li}e{i}");
            let (s, e) = post(
                format!("/api/tenants/{tid}/webhooks"),
                json!({"url": format!("http://{rx_addr}/hook/{name}"), "event_types": ["tenant.suspended.v1", "tenant.reinstated.v1"]}),
            )
            .await;
            assert!(s.is_success(), "{e}");
            let secret = e["secret"].as_str().unwrap();
            let key = tenantry::webhooks::signing::parse_secret(secret).unwrap();
            rx.keys.lock().unwrap().insert(name, key);
        }
        let events = target.div_ceil(*level).max(1);
        let total = (events * level) as u64;
        let before = rx.ok.load(Ordering::Relaxed) + rx.bad.load(Ordering::Relaxed);
        let started = Instant::now();
        for i in 0..events {
            let path = if i % 2 == 0 {
                format!("/api/tenant-lifecycle/{tid}/suspend")
            } else {
                format!("/api/tenant-lifecycle/{tid}/reinstate")
            };
            let (s, v) = post(path, json!({"reason": "bench"})).await;
            assert!(s.is_success(), "{v}");
        }
        let write_rate = events as f64 / started.elapsed().as_secs_f64();
        // Let the dispatcher catch up while the receiver holds its answers.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t0 = Instant::now();
        rx.open.send_replace(true);
        loop {
            let done = rx.ok.load(Ordering::Relaxed) + rx.bad.load(Ordering::Relaxed) - before;
            if done >= total {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(600),
                "only {done} of {total} deliveries after 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let drain = t0.elapsed().as_secs_f64();
        println!(
            "{level:>9}  {total:>10}  {events:>6}  {write_rate:>15.0}  {drain:>7.2}  {:>12.0}  {:>14}",
            total as f64 / drain,
            rx.bad.load(Ordering::Relaxed)
        );
    }
    let _ = stop_tx.send(());
    let _ = server.await;
}
