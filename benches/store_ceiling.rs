//! The store alone on the writes of the two loads issue 10 and issue 13 measure over HTTP: how
//! many a second redb sustains, with Tenantry's page cache and durable commits, on the B-tree
//! writes the server makes for them, with no HTTP, no JSON and no Tenantry code in the way. It
//! was the ceiling the HTTP figures of `benches/load.rs` could approach while every batch was a
//! durable redb commit. Since the redo log (`store::wal`), a batch is durable by one sequential
//! append and redb commits durably about once a second, so the HTTP figures can pass it: it now
//! shows what that per-batch commit would cost, not a figure of the product.
//!
//! `--work ingest` (the default), the work of `peers/ingest.sql`. Per event, as
//! `metering::service::ingest` writes it: one insert into the deduplication set
//! (`usage_dedupe`: event id ‖ tenant, with the load bench's ids: a request's 100 ids share a
//! random batch number, so they are neighbours) and one read-modify-write of a total
//! (`usage_totals`: tenant ‖ period ‖ SKU over 10,000 tenants and 4 SKUs, a quantity and its
//! daily rollup). Per request of 100 events: one raw-events row appended
//! (`usage_event_receipts`). Requests are grouped into one durable commit as the writer groups
//! them under load (`--batch`, default 32 requests: about the load bench's average at 64
//! clients). `--log-only 1` writes only the raw-events rows: what a design that appends events
//! to a log and keeps the set and the totals elsewhere would pay to the store per event.
//!
//! `--work lifecycle`, the work of `peers/lifecycle.sql`: a state flip of a tenant of 10,000
//! and its audit entry, as `tenants::service::transition` writes them. The tenant's
//! record rewritten (`tenants`), its two state index keys moved (`tenant_index`), two state
//! counters bumped (`tenant_counts`), and the entry appended to the tenant's chain
//! (`audit_entries`, `audit_data`, `audit_heads`, three `audit_index` keys, `audit_dirty`).
//! `--batch` writes per commit (default 64: every client of the 64-client load in one commit,
//! the most the writer can group). The tenants are those `compare.sh`'s load generator writes
//! (64 neighbours at a time, see `sweep`), or with `--random-tenants 1` a random one per write
//! as pgbench's `lifecycle.sql` picks them.
//!
//! cargo bench --bench store_ceiling -- [--work ingest|lifecycle] [--seconds 10] [--batch N]
//!   [--prefill N] [--log-only 1] [--random-tenants 1]

// A bench stops at its first failure, with the failure's message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use redb::{Database, ReadableTable, TableDefinition};

type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;
const IDS: Def = TableDefinition::new("usage_dedupe");
const TOTALS: Def = TableDefinition::new("usage_totals");
const RECEIPTS: Def = TableDefinition::new("usage_event_receipts");
const TENANT_RECORDS: Def = TableDefinition::new("tenants");
const TENANT_INDEX: Def = TableDefinition::new("tenant_index");
const TENANT_COUNTS: Def = TableDefinition::new("tenant_counts");
const ENTRIES: Def = TableDefinition::new("audit_entries");
const DATA: Def = TableDefinition::new("audit_data");
const HEADS: Def = TableDefinition::new("audit_heads");
const AUDIT_INDEX: Def = TableDefinition::new("audit_index");
const DIRTY: Def = TableDefinition::new("audit_dirty");

/// A tenant record (postcard), an envelope with its hash, and its data, in bytes: what the
/// bench ledger's rows average (`tenants` 22 MB over 100,000 rows, `audit_entries` 190 MB and
/// `audit_data` 85 MB over 375,350, keys included).
const RECORD_BYTES: usize = 200;
const ENVELOPE_BYTES: usize = 32 + 450;
const ENTRY_DATA_BYTES: usize = 200;

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

/// The deduplication key of event `event`: its id as `benches/load.rs` makes them (client,
/// a random batch number, position), then the tenant.
fn id_key(tenant: &[u8; 16], event: u64) -> Vec<u8> {
    let request = event / EVENTS_PER_REQUEST;
    let id = format!(
        "{}-{}-{}",
        request % 64,
        mix(request ^ 0x5eed) % 1_000_000_000_000_000,
        event % EVENTS_PER_REQUEST
    );
    let mut k = id.into_bytes();
    k.extend_from_slice(&[0, 0]);
    k.extend_from_slice(tenant);
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
fn ingest(
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

/// The tenant of lifecycle write `n` as `compare.sh`'s load generator picks them: each of its
/// 64 clients owns every 64th tenant of the setup's list (created in id order) and walks its
/// own in turn, so the clients, moving at about the same pace, write 64 neighbouring tenants at
/// a time. (pgbench's `lifecycle.sql` picks a random tenant instead: `--random-tenants 1`.)
fn sweep(n: u64) -> u64 {
    const CLIENTS: u64 = 64;
    let (client, step) = (n % CLIENTS, n / CLIENTS);
    (client + CLIENTS * (step % TENANTS.div_ceil(CLIENTS))) % TENANTS
}

/// A tenant's chain key: a tag byte and the tenant id.
fn chain(tenant: &[u8; 16]) -> [u8; 17] {
    let mut k = [1u8; 17];
    k[1..].copy_from_slice(tenant);
    k
}

fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Writes `writes` lifecycle writes from write number `first` in one durable commit; answers
/// the time spent before `commit()` and in it.
fn lifecycle(db: &Database, first: u64, writes: u64, random: bool) -> (Duration, Duration) {
    let start = Instant::now();
    let tx = db.begin_write().expect("begin");
    {
        let open = |def| tx.open_table(def).expect("table");
        let (mut records, mut index, mut counts) = (
            open(TENANT_RECORDS),
            open(TENANT_INDEX),
            open(TENANT_COUNTS),
        );
        let (mut entries, mut data, mut heads) = (open(ENTRIES), open(DATA), open(HEADS));
        let (mut audit_index, mut dirty) = (open(AUDIT_INDEX), open(DIRTY));
        for n in first..first + writes {
            let t = tenant(if random { mix(n) % TENANTS } else { sweep(n) });
            let ck = chain(&t);
            let seq = heads.get(ck.as_slice()).expect("head").map_or(0, |h| {
                u64::from_be_bytes(h.value()[..8].try_into().unwrap_or_default())
            });
            // The state flips between two states at each write of the tenant.
            let (was, now) = ([(seq % 2) as u8], [(1 - seq % 2) as u8]);
            let name = mix(!n).to_be_bytes();
            for (old, new) in [
                (key(&[&[2], &was, &t]), key(&[&[2], &now, &t])),
                (key(&[&[6], &was, &name, &t]), key(&[&[6], &now, &name, &t])),
            ] {
                index.remove(old.as_slice()).expect("index");
                index.insert(new.as_slice(), [].as_slice()).expect("index");
            }
            for (state, delta) in [(was, u64::MAX), (now, 1)] {
                let k = key(&[b"state\0", &state]);
                let c = counts.get(k.as_slice()).expect("count").map_or(0, |v| {
                    u64::from_be_bytes(v.value().try_into().unwrap_or_default())
                });
                let c = c.wrapping_add(delta).to_be_bytes();
                counts.insert(k.as_slice(), c.as_slice()).expect("count");
            }
            let mut record = records
                .get(t.as_slice())
                .expect("record")
                .map_or_else(|| vec![3u8; RECORD_BYTES], |r| r.value().to_vec());
            record[0] = now[0];
            records
                .insert(t.as_slice(), record.as_slice())
                .expect("record");
            let seq = seq + 1;
            let entry = key(&[&ck, &seq.to_be_bytes()]);
            entries
                .insert(entry.as_slice(), [5u8; ENVELOPE_BYTES].as_slice())
                .expect("entry");
            data.insert(entry.as_slice(), [6u8; ENTRY_DATA_BYTES].as_slice())
                .expect("data");
            let head = key(&[&seq.to_be_bytes(), &[7u8; 32], &n.to_be_bytes()]);
            heads.insert(ck.as_slice(), head.as_slice()).expect("head");
            let time = (0x0006_0000_0000_0000 + n).to_be_bytes();
            for browse in [
                key(&[&[0], &time, &entry]),
                key(&[&[1], b"operator:ops", &time, &entry]),
                key(&[&[2], b"tenant.suspended.v1", &time, &entry]),
            ] {
                audit_index
                    .insert(browse.as_slice(), [].as_slice())
                    .expect("browse");
            }
            dirty.insert(ck.as_slice(), [].as_slice()).expect("dirty");
        }
    }
    let before = start.elapsed();
    tx.commit().expect("commit");
    (before, start.elapsed() - before)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let work = args
        .iter()
        .position(|a| a == "--work")
        .and_then(|i| args.get(i + 1))
        .map_or("ingest", String::as_str);
    let lifecycle_work = match work {
        "ingest" => false,
        "lifecycle" => true,
        other => panic!("--work {other}: expected ingest or lifecycle"),
    };
    let seconds = arg("--seconds", 10);
    let batch = arg("--batch", if lifecycle_work { 64 } else { 32 });
    // Lifecycle: about what `compare.sh` leaves before its lifecycle load (10,000 tenants, two
    // entries each: provisioned, activated).
    let prefill = arg("--prefill", if lifecycle_work { 20_000 } else { 1_000_000 });
    let log_only = arg("--log-only", 0) == 1;
    let random_tenants = arg("--random-tenants", 0) == 1;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(dir.path().join("store.redb"))
        .expect("store");
    // The tables as a run of the load bench leaves them, written in large commits: `prefill`
    // events, or lifecycle writes.
    let mut n = 0;
    while n < prefill {
        if lifecycle_work {
            let writes = 2_000.min(prefill - n);
            lifecycle(&db, n, writes, true);
            n += writes;
        } else {
            let requests = 200.min((prefill - n).div_ceil(EVENTS_PER_REQUEST));
            ingest(&db, n, requests, 1, false);
            n += requests * EVENTS_PER_REQUEST;
        }
    }
    let (unit, per_commit) = if lifecycle_work {
        ("writes", batch)
    } else {
        ("events", batch * EVENTS_PER_REQUEST)
    };
    println!(
        "{} on redb alone: {prefill} {unit} already stored, {per_commit} {unit} per durable \
         commit, {seconds} s{}",
        if lifecycle_work {
            "lifecycle writes"
        } else {
            "ingest's writes"
        },
        match (lifecycle_work, log_only, random_tenants) {
            (false, true, _) => {
                "; only the raw-events rows (what an append-only log of events would write)"
            }
            (true, _, false) => "; tenants as the load generator sweeps them",
            (true, _, true) => "; a random tenant per write, as pgbench picks them",
            _ => "",
        }
    );
    let (mut writing, mut committing, mut done) = (Duration::ZERO, Duration::ZERO, 0u64);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        let (w, c) = if lifecycle_work {
            lifecycle(&db, n, batch, random_tenants)
        } else {
            ingest(&db, n, batch, 2, log_only)
        };
        n += per_commit;
        done += per_commit;
        writing += w;
        committing += c;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let per = |d: Duration| d.as_secs_f64() * 1e6 / done as f64;
    println!(
        "{:.0} {unit}/s; per {} {:.2} us in the B-tree writes, {:.2} us in commit()",
        done as f64 / elapsed,
        &unit[..unit.len() - 1],
        per(writing),
        per(committing)
    );
}
