//! Load tool: lifecycle writes per second over real HTTP, each a suspend or reinstate with its
//! audit entry committed durably, at several client concurrencies.
//!
//! It starts the real application (system clock, temp data dir) on 127.0.0.1:0 in this process,
//! gives each client its own tenant, and has every client alternate suspend/reinstate as fast as
//! answers come back.
//!
//! ```text
//! cargo bench --bench load                       # 1, 8 and 64 clients, 10 s each
//! cargo bench --bench load -- --clients 1,8,64,256 --seconds 20
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(clients, seconds));
}

async fn run(levels: Vec<usize>, seconds: u64) {
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

    println!(
        "lifecycle writes over HTTP, each with its audit entry, durable commit ({seconds} s per level)"
    );
    println!(
        "{:>8} {:>12} {:>10} {:>10} {:>10} {:>14}",
        "clients", "writes/s", "p50 ms", "p99 ms", "errors", "avg batch"
    );
    for &n in &levels {
        let before = state.store().writer_stats();
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for id in tenants.iter().take(n) {
            let (id, client, base, stop) = (id.clone(), client.clone(), base.clone(), stop.clone());
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
