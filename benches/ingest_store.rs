//! The store alone on ingest's writes (issue 10): how many usage events a second redb sustains,
//! with Tenantry's page cache and durable commits, on the B-tree writes that
//! `POST /api/usage/events` makes for `peers/ingest.sql`'s work, with no HTTP, no JSON and no
//! Tenantry code in the way. It is the ceiling the HTTP figure of `benches/load.rs
//! --scenario ingest` can approach, not a figure of the product.
//!
//! Per event, as `metering::service::ingest` writes it: one insert into the deduplication set
//! (`usage_event_ids`: tenant ‖ event id, a random key) and one read-modify-write of a total
//! (`usage_totals`: tenant ‖ period ‖ SKU over 10,000 tenants and 4 SKUs, a quantity and its
//! daily rollup). Per request of 100 events: one raw-events row appended
//! (`usage_event_receipts`). Requests are grouped into one durable commit as the writer groups
//! them under load (`--batch`, default 32 requests: about the load bench's average at 64
//! clients).
//!
//! `--log-only 1` writes only the raw-events rows: what a design that appends events to a log
//! and keeps the set and the totals elsewhere would pay to the store per event.
//!
//! cargo bench --bench ingest_store -- [--seconds 10] [--batch 32] [--prefill 1000000]
//!   [--log-only 1]

// A bench stops at its first failure, with the failure's message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use redb::{Database, ReadableTable, TableDefinition};

type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;
const IDS: Def = TableDefinition::new("usage_event_ids");
const TOTALS: Def = TableDefinition::new("usage_totals");
const RECEIPTS: Def = TableDefinition::new("usage_event_receipts");

const TENANTS: u64 = 10_000;
const SKUS: u64 = 4;
const EVENTS_PER_REQUEST: u64 = 100;
/// A receipt row: the request's events (tenant, SKU, quantity, event id), about 30 bytes each.
const RECEIPT_BYTES: usize = 3_000;
/// The store's page cache (`[store] cache_mib` default).
const CACHE_BYTES: usize = 16 << 20;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// splitmix64, as `benches/load.rs` draws its tenants and SKUs.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn tenant(n: u64) -> [u8; 16] {
    // UUIDv7-like: time-ordered ids of tenants created in a row.
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&(0x0190_0000_0000_0000 + n * 1_000).to_be_bytes());
    t[8..].copy_from_slice(&mix(n).to_be_bytes());
    t
}

fn id_key(tenant: &[u8; 16], event: u64) -> Vec<u8> {
    let mut k = tenant.to_vec();
    k.extend_from_slice(format!("c{}-b{}-{}", event % 64, event / 6_400, event % 100).as_bytes());
    k
}

fn total_key(tenant: &[u8; 16], sku: u64) -> Vec<u8> {
    let mut k = tenant.to_vec();
    k.extend_from_slice(&202_612u32.to_be_bytes());
    k.extend_from_slice(format!("sku-{sku}").as_bytes());
    k
}

/// Adds `qty` to a total: its quantity (8 bytes), then (day, quantity) pairs of 12 bytes.
fn add(total: Option<&[u8]>, day: u32, qty: u64) -> Vec<u8> {
    let mut v = total.map_or_else(|| vec![0u8; 8], <[u8]>::to_vec);
    let sum = u64::from_be_bytes(v[..8].try_into().unwrap_or_default()) + qty;
    v[..8].copy_from_slice(&sum.to_be_bytes());
    let at = v[8..]
        .chunks_exact(12)
        .position(|d| d[..4] == day.to_be_bytes());
    match at {
        Some(i) => {
            let q = &mut v[8 + i * 12 + 4..8 + i * 12 + 12];
            let n = u64::from_be_bytes(q.try_into().unwrap_or_default()) + qty;
            q.copy_from_slice(&n.to_be_bytes());
        }
        None => {
            v.extend_from_slice(&day.to_be_bytes());
            v.extend_from_slice(&qty.to_be_bytes());
        }
    }
    v
}

/// Writes `requests` requests' events from event number `first` in one durable commit;
/// answers the time spent before `commit()` and in it.
fn write(
    db: &Database,
    first: u64,
    requests: u64,
    day: u32,
    log_only: bool,
) -> (Duration, Duration) {
    let start = Instant::now();
    let tx = db.begin_write().expect("begin");
    {
        let mut ids = tx.open_table(IDS).expect("ids");
        let mut totals = tx.open_table(TOTALS).expect("totals");
        let mut receipts = tx.open_table(RECEIPTS).expect("receipts");
        let receipt = vec![7u8; RECEIPT_BYTES];
        for r in 0..requests {
            for e in (0..EVENTS_PER_REQUEST).filter(|_| !log_only) {
                let n = first + r * EVENTS_PER_REQUEST + e;
                let draw = mix(n);
                let t = tenant(draw % TENANTS);
                let fresh = ids
                    .insert(id_key(&t, n).as_slice(), [].as_slice())
                    .expect("insert")
                    .is_none();
                if fresh {
                    let key = total_key(&t, (draw >> 20) % SKUS);
                    let old = totals.get(key.as_slice()).expect("get");
                    let new = add(old.as_ref().map(|g| g.value()), day, 1 + (draw >> 40) % 100);
                    drop(old);
                    totals
                        .insert(key.as_slice(), new.as_slice())
                        .expect("total");
                }
            }
            let mut key = 202_612u32.to_be_bytes().to_vec();
            key.extend_from_slice(&(first / EVENTS_PER_REQUEST + r).to_be_bytes());
            receipts
                .insert(key.as_slice(), receipt.as_slice())
                .expect("receipt");
        }
    }
    let writes = start.elapsed();
    tx.commit().expect("commit");
    (writes, start.elapsed() - writes)
}

fn main() {
    let seconds = arg("--seconds", 10);
    let batch = arg("--batch", 32);
    let prefill = arg("--prefill", 1_000_000);
    let log_only = arg("--log-only", 0) == 1;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(dir.path().join("store.redb"))
        .expect("store");
    // The set and the totals as a run of the load bench leaves them, written in large commits.
    let mut n = 0;
    while n < prefill {
        let requests = 200.min((prefill - n).div_ceil(EVENTS_PER_REQUEST));
        write(&db, n, requests, 1, false);
        n += requests * EVENTS_PER_REQUEST;
    }
    println!(
        "ingest's writes on redb alone: {prefill} events already stored, commits of {batch} \
         requests x {EVENTS_PER_REQUEST} events, durable, {seconds} s{}",
        if log_only {
            "; only the raw-events rows (what an append-only log of events would write)"
        } else {
            ""
        }
    );
    let (mut writes, mut commits, mut events) = (Duration::ZERO, Duration::ZERO, 0u64);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        let (w, c) = write(&db, n, batch, 2, log_only);
        n += batch * EVENTS_PER_REQUEST;
        events += batch * EVENTS_PER_REQUEST;
        writes += w;
        commits += c;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let per_event = |d: Duration| d.as_secs_f64() * 1e6 / events as f64;
    println!(
        "{:.0} events/s; per event {:.2} us in the B-tree writes, {:.2} us in commit()",
        events as f64 / elapsed,
        per_event(writes),
        per_event(commits)
    );
}
