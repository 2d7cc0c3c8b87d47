//! Issue 13's start-up figure: how long the real binary takes from `exec` to a 200 on `/readyz`
//! over a store that holds 1,000,000 audit entries.
//!
//! It builds the store in a temp dir through the library (10,000 tenant chains of 99 entries and
//! a platform chain of 10,000, appended in writes of 5,000 entries, as the ledger's own
//! `Audit::audit` writes them), closes it cleanly, then starts `tenantry serve` on it several
//! times: after each clean stop (SIGTERM), and once after a SIGKILL, which leaves the data file
//! to be repaired on open. It prints each figure and the median; nothing is asserted.
//!
//! Run with `cargo bench --bench startup`; `TENANTRY_BENCH_ENTRIES=N` changes the entry count
//! and `TENANTRY_BENCH_RUNS=N` the number of clean starts (5).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tenantry::actor::Actor;
use tenantry::app::open_state;
use tenantry::audit::ledger::Audit;
use tenantry::audit::model::Subject;
use tenantry::clock::Clock;
use tenantry::config::Config;

const BIN: &str = env!("CARGO_BIN_EXE_tenantry");
/// Entries per tenant chain; the platform chain takes 1% of the total.
const PER_CHAIN: usize = 99;
/// Entries appended per write request.
const PER_WRITE: usize = 5_000;

fn main() {
    let entries: usize = env_or("TENANTRY_BENCH_ENTRIES", 1_000_000);
    let runs: usize = env_or("TENANTRY_BENCH_RUNS", 5);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let started = Instant::now();
    let size = seed(&data_dir, entries);
    eprintln!(
        "seeded {entries} audit entries in {:.1} s; data file {} MB",
        started.elapsed().as_secs_f64(),
        size / 1_000_000
    );

    let mut clean = Vec::new();
    for run in 0..runs {
        let (mut child, took) = start(&data_dir);
        eprintln!("start {}: {:.1} ms to /readyz", run + 1, ms(took));
        clean.push(took);
        signal(&child, "TERM");
        child.wait().unwrap();
    }
    clean.sort();
    eprintln!(
        "startup/clean: median {:.1} ms (min {:.1}, max {:.1}) over {runs} starts (goal <= 200 ms)",
        ms(clean[clean.len() / 2]),
        ms(clean[0]),
        ms(clean[clean.len() - 1])
    );

    // A crash: the next open repairs the file before it serves.
    let (mut child, _) = start(&data_dir);
    signal(&child, "KILL");
    child.wait().unwrap();
    let (mut child, took) = start(&data_dir);
    eprintln!("startup/after_sigkill: {:.1} ms to /readyz", ms(took));
    signal(&child, "TERM");
    child.wait().unwrap();
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Appends `entries` ledger entries: 1% on the platform chain, the rest on tenant chains of
/// [`PER_CHAIN`] entries, interleaved the way a busy platform's writes are. Returns the data
/// file's size in bytes.
fn seed(data_dir: &Path, entries: usize) -> u64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = Config {
            data_dir: data_dir.to_path_buf(),
            ..Config::default()
        };
        let state = open_state(config, Clock::System).await.unwrap();
        let platform = entries / 100;
        let tenants = (entries - platform).div_ceil(PER_CHAIN);
        let ids: std::sync::Arc<[uuid::Uuid]> =
            (0..tenants).map(|_| uuid::Uuid::now_v7()).collect();
        // Entry i of the sequence goes to the platform every 100th time, otherwise to the
        // tenant chains in turn.
        let mut written = 0usize;
        while written < entries {
            let from = written;
            let to = (written + PER_WRITE).min(entries);
            let ids = ids.clone();
            state
                .write(Actor::system("bench"), move |ctx| {
                    for i in from..to {
                        let subject = if i % 100 == 0 {
                            Subject::platform("pool", "pool-eu-1")
                        } else {
                            Subject::tenant(ids[(i - i / 100) % ids.len()])
                        };
                        ctx.audit(
                            "tenant.suspended.v1",
                            &subject,
                            json!({"from": "active", "to": "suspended", "reason": "non-payment", "n": i}),
                        )?;
                    }
                    Ok::<_, tenantry::error::Error>(())
                })
                .await
                .unwrap();
            written = to;
        }
        let size = state.store().file_size();
        state.store().close().await;
        size
    })
}

/// Starts `tenantry serve` on `data_dir` and polls `/readyz` every millisecond until it
/// answers 200; returns the child and the time from spawn to that answer.
fn start(data_dir: &Path) -> (Child, Duration) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let began = Instant::now();
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("TENANTRY_LOG", "warn")
        .env_remove("TENANTRY_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    loop {
        if ready(port) {
            return (child, began.elapsed());
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("server exited before it was ready: {status}");
        }
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "not ready after 120 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Does `GET /readyz` answer 200?
fn ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && &head[9..12] == b"200"
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
