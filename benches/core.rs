//! Criterion benchmarks of the core on a real store in a temp dir:
//! - `audit_verify`: full verification of every chain (throughput in bytes of envelopes and
//!   data hashed);
//! - `audit_verify_checkpointed`: the same after a signed checkpoint at every chain's head, as
//!   the nightly verify job leaves a ledger (each checkpoint's Ed25519 signature is checked);
//! - `directory`: page latency with 100,000 tenants (first page, a page 50,000 rows deep, a
//!   filtered page, two filters, a rare `q` search), and the JSON body of compare.sh's query
//!   (`page_json_region_newest`: a region, newest first, 50 rows, copied from the kept rows as
//!   the server serves it after a first read; `..._written`: every row decoded and written).
//!
//! Before them it times, once, an online backup of that store (`backup::write_file`, plain)
//! while a writer keeps committing, and the backup's full `verify_file` (load and verify every
//! chain from seq 1): the figures are printed, not asserted.
//!
//! Run with `cargo bench --bench core`; `TENANTRY_BENCH_TENANTS=N` changes the directory size.
//! `TENANTRY_BENCH_DATA_DIR=path` seeds the store there and keeps it, so that the real binary can
//! be profiled on it afterwards (`perf record tenantry audit verify --data-dir path/data`); the
//! path must not hold a store yet.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use tenantry::actor::Actor;
use tenantry::app::open_state;
use tenantry::audit::{self, Mode};
use tenantry::clock::Clock;
use tenantry::config::Config;
use tenantry::state::AppState;
use tenantry::tenants::directory::{self, DirectoryQuery, Sort};
use tenantry::tenants::model::{Action, State};
use tenantry::tenants::service::{self, TenantDraft, TransitionInput};

const REGIONS: [&str; 6] = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-1",
    "me-central-1",
];

struct Fixture {
    _dir: Option<tempfile::TempDir>,
    state: AppState,
    rt: tokio::runtime::Runtime,
    tenants: usize,
}

fn fixture() -> Fixture {
    let tenants: usize = std::env::var("TENANTRY_BENCH_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (dir, root) = match std::env::var_os("TENANTRY_BENCH_DATA_DIR") {
        Some(path) => {
            let root = std::path::PathBuf::from(path);
            // Seeding adds its tenants to whatever store is there: a reused directory would be
            // measured at twice the size it is reported at.
            assert!(
                !root.join("data").exists(),
                "TENANTRY_BENCH_DATA_DIR={} already holds a store; the bench seeds a new one there",
                root.display()
            );
            (None, root)
        }
        None => {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().to_path_buf();
            (Some(dir), root)
        }
    };
    let config = Config {
        data_dir: root.join("data"),
        ..Config::default()
    };
    let state = rt.block_on(open_state(config, Clock::System)).unwrap();
    let started = Instant::now();
    rt.block_on(async {
        let config = Arc::new(state.config().as_ref().clone());
        let apps: Vec<uuid::Uuid> = {
            let mut v = Vec::new();
            for name in ["Work", "Field", "Insights"] {
                let input = tenantry::apps::model::AppDraft {
                    name: name.into(),
                    ..Default::default()
                }
                .parse()
                .unwrap();
                v.push(
                    state
                        .write(Actor::system("bench"), move |ctx| {
                            tenantry::apps::service::create(ctx, &input)
                        })
                        .await
                        .unwrap()
                        .id,
                );
            }
            v
        };
        // Provision in requests of 500 tenants, eight requests in flight, so the writer batches.
        let chunk = 500usize;
        let mut in_flight = tokio::task::JoinSet::new();
        for start in (0..tenants).step_by(chunk) {
            let inputs: Vec<_> = (start..(start + chunk).min(tenants))
                .map(|i| {
                    TenantDraft {
                        app_id: apps[i % 3].to_string(),
                        display_name: format!(
                            "Tenant {i:06} {}",
                            ["Logistics", "Health", "Retail", "Energy", "Bank"][i % 5]
                        ),
                        region: REGIONS[i % REGIONS.len()].into(),
                        isolation_tier: Some(if i % 50 == 0 { "P" } else { "S" }.into()),
                        contact_email: Some(format!("ops{i}@tenant{i}.example.com")),
                        ..Default::default()
                    }
                    .parse(&config, &config.plans)
                    .unwrap()
                })
                .collect();
            let (state, config) = (state.clone(), config.clone());
            let hooks = state.tenant_hooks().clone();
            in_flight.spawn(async move {
                state
                    .write(Actor::system("bench"), move |ctx| {
                        for (k, input) in inputs.iter().enumerate() {
                            let t = service::provision(ctx, &config, input, &hooks)?;
                            let i = start + k;
                            if i % 3 != 0 {
                                service::transition(
                                    ctx,
                                    t.id,
                                    Action::Activate,
                                    &TransitionInput::default(),
                                )?;
                            }
                            if i % 3 != 0 && i % 10 == 1 {
                                let reason = TransitionInput {
                                    reason: Some("non-payment".into()),
                                    ..Default::default()
                                };
                                service::transition(ctx, t.id, Action::Suspend, &reason)?;
                            }
                        }
                        Ok(())
                    })
                    .await
                    .unwrap()
            });
            if in_flight.len() >= 8 {
                in_flight.join_next().await.unwrap().unwrap();
            }
        }
        while let Some(r) = in_flight.join_next().await {
            r.unwrap();
        }
    });
    eprintln!(
        "seeded {tenants} tenants in {:.1} s; data file {} MB",
        started.elapsed().as_secs_f64(),
        state.store().file_size() / 1_000_000
    );
    Fixture {
        _dir: dir,
        state,
        rt,
        tenants,
    }
}

fn query(f: &Fixture, q: DirectoryQuery) -> directory::DirectoryPage {
    f.rt.block_on(f.state.read(move |r| directory::query(r, &q)))
        .unwrap()
}

/// One online backup while a writer commits in a loop, then its verification; prints the sizes,
/// times, and the writer's commit latencies during the backup (one read transaction must not
/// hold writers back).
fn backup_figures(f: &Fixture) {
    const PROBE: tenantry::store::Table = tenantry::store::Table::new("bench_probe");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (state, stop_w) = (f.state.clone(), stop.clone());
    let probe = f.rt.spawn(async move {
        let mut lat = Vec::new();
        let mut n = 0u64;
        while !stop_w.load(std::sync::atomic::Ordering::Relaxed) {
            n += 1;
            let t = Instant::now();
            state
                .write(Actor::system("bench"), move |ctx| {
                    ctx.put(PROBE, &n.to_be_bytes(), b"x")?;
                    Ok(())
                })
                .await
                .unwrap();
            lat.push(t.elapsed());
        }
        lat
    });
    let out = f.state.config().data_dir.with_file_name("bench.tbk");
    let started = Instant::now();
    let summary = tenantry::backup::write_file(
        f.state.store(),
        &f.state.config().data_dir,
        &[],
        true,
        chrono::Utc::now(),
        &out,
    )
    .unwrap();
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut lat = f.rt.block_on(probe).unwrap();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    let file_mb = f.state.store().file_size() as f64 / 1e6;
    eprintln!(
        "backup: data file {file_mb:.0} MB, {} rows -> {:.1} MB in {:.2} s ({:.0} MB/s of data file); \
         {} writes committed meanwhile, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        summary.counts.rows,
        summary.bytes as f64 / 1e6,
        took.as_secs_f64(),
        file_mb / took.as_secs_f64(),
        lat.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0),
    );
    let started = Instant::now();
    let report =
        f.rt.block_on(tenantry::backup::verify_file(
            &out,
            &tenantry::backup::Identities::none(),
        ))
        .unwrap();
    assert!(report.chains.iter().all(|c| c.ok));
    eprintln!(
        "backup verify: {} chains loaded and verified from seq 1 in {:.2} s",
        report.chains.len(),
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_file(&out);
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    backup_figures(&f);

    // Audit verify throughput over the whole ledger.
    let verify_full = || {
        f.rt.block_on(audit::verify(
            f.state.store(),
            f.state.install_key(),
            None,
            Mode::Full,
        ))
        .unwrap()
    };
    let reports = verify_full();
    let bytes: u64 = reports.iter().map(|r| r.bytes_checked).sum();
    let entries: u64 = reports.iter().map(|r| r.entries_checked).sum();
    eprintln!(
        "ledger: {} chains, {entries} entries, {:.1} MB hashed per full verify",
        reports.len(),
        bytes as f64 / 1e6
    );
    let mut g = c.benchmark_group("audit_verify");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Bytes(bytes));
    g.bench_function("full_all_chains", |b| b.iter(|| black_box(verify_full())));
    g.finish();

    // The same ledger as the nightly verify job leaves it: a signed checkpoint at every chain's
    // head. A full verify checks every checkpoint's Ed25519 signature (AUDIT.md), one per chain
    // here, so this case measures the signatures as much as the hashing.
    let started = Instant::now();
    let signed =
        f.rt.block_on(audit::verify_and_checkpoint(
            f.state.store(),
            chrono::Utc::now(),
            f.state.install_key(),
            None,
            Mode::Full,
        ))
        .unwrap();
    eprintln!(
        "checkpoints: {} chains verified and their heads signed in {:.2} s",
        signed.len(),
        started.elapsed().as_secs_f64()
    );
    let mut g = c.benchmark_group("audit_verify_checkpointed");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Bytes(bytes));
    g.bench_function("full_all_chains", |b| b.iter(|| black_box(verify_full())));
    g.finish();

    // Directory pages.
    let deep_cursor = {
        let mut q = DirectoryQuery {
            sort: Sort::DisplayName,
            descending: false,
            limit: 500,
            ..Default::default()
        };
        for _ in 0..(f.tenants / 2 / 500) {
            q.cursor = query(&f, q.clone()).next_cursor;
        }
        q.cursor
    };
    let mut g = c.benchmark_group(format!("directory_{}_tenants", f.tenants));
    g.sample_size(50);
    let cases: Vec<(&str, DirectoryQuery)> = vec![
        ("first_page_newest", DirectoryQuery::default()),
        (
            "page_50k_deep_by_name",
            DirectoryQuery {
                sort: Sort::DisplayName,
                descending: false,
                cursor: deep_cursor,
                ..Default::default()
            },
        ),
        (
            "status_suspended_by_name",
            DirectoryQuery {
                status: Some(State::Suspended),
                sort: Sort::DisplayName,
                descending: false,
                ..Default::default()
            },
        ),
        (
            "region_and_tier_P",
            DirectoryQuery {
                region: Some("eu-west-1".into()),
                tier: Some(tenantry::tenants::model::Tier::P),
                ..Default::default()
            },
        ),
        (
            "q_rare_match_budgeted",
            DirectoryQuery {
                q: Some("ops99999@".into()),
                ..Default::default()
            },
        ),
    ];
    for (name, q) in cases {
        let page = query(&f, q.clone());
        eprintln!(
            "{name}: {} rows, more: {}",
            page.rows.len(),
            page.next_cursor.is_some()
        );
        g.bench_function(name, |b| b.iter(|| black_box(query(&f, q.clone()))));
    }
    // The body `GET /api/tenants` answers for compare.sh's directory query (one region, newest
    // first, 50 rows), written from a snapshot's pages on the calling thread, as the handler
    // writes it: the point reads, the in-place decoding and the hand-written JSON, without HTTP.
    let by_region = DirectoryQuery {
        region: Some("eu-west-1".into()),
        limit: 50,
        ..Default::default()
    };
    let page_json = |rows: &tenantry::tenants::rendered::RenderedRows| {
        f.state
            .store()
            .read_blocking(|r| tenantry::tenants::api::page_json(r, &by_region, rows))
            .unwrap()
    };
    let kept = f.state.rendered_rows();
    eprintln!("page_json_region_newest: {} bytes", page_json(kept).len());
    // As the server runs once the page has been read: every row copied from the kept rows after
    // its stored bytes are compared.
    g.bench_function("page_json_region_newest", |b| {
        b.iter(|| black_box(page_json(kept)))
    });
    // Every row decoded and written (and kept in a fresh, empty set).
    g.bench_function("page_json_region_newest_written", |b| {
        b.iter(|| black_box(page_json(&Default::default())))
    });
    g.finish();
}

criterion_group!(core, benches);
criterion_main!(core);
