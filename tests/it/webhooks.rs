//! Webhooks (issue 11) against real outside parts: a Python receiver verifies every delivery
//! with the official `standardwebhooks` library (`scripts/webhook_receiver.py`), on the bytes as
//! sent and with its timestamp tolerance; retries on the moved clock; the DLQ and replay; a slow
//! endpoint beside a fast one; the SSRF guard; bad input; and kill -9 of the real binary between
//! commit and delivery.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenantry::clock::Clock;

use crate::helpers::{TestApp, test_config};

/// The Python receiver (see the script's docs).
pub struct Receiver {
    child: Child,
    pub port: u16,
    client: reqwest::Client,
}

impl Receiver {
    pub fn start() -> Receiver {
        Receiver::start_on(0)
    }

    pub fn start_on(port: u16) -> Receiver {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/webhook_receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs (.ci/run installs standardwebhooks)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("listening on "),
            "the receiver did not start (pip install standardwebhooks): {line}"
        );
        let port = line["listening on ".len()..].trim().parse().unwrap();
        Receiver {
            child,
            port,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/hook/{name}", self.port)
    }

    async fn post(&self, path: &str, body: Value) {
        let r = self
            .client
            .post(format!("http://127.0.0.1:{}{path}", self.port))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    pub async fn config(&self, name: &str, cfg: Value) {
        self.post(&format!("/_config/{name}"), cfg).await;
    }

    /// The "now" the library's tolerance check uses (the app's clock, when a test moves it).
    pub async fn clock(&self, now: Option<DateTime<Utc>>) {
        self.post("/_clock", json!({"now": now.map(|t| t.timestamp())}))
            .await;
    }

    pub async fn log(&self) -> Vec<Value> {
        self.client
            .get(format!("http://127.0.0.1:{}/_log", self.port))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn of(&self, name: &str) -> Vec<Value> {
        self.log()
            .await
            .into_iter()
            .filter(|d| d["name"] == name)
            .collect()
    }

    /// Waits (real time, at most 20 s) until `name` got `n` deliveries.
    pub async fn wait_for(&self, name: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.of(name).await;
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{name} got {} deliveries, expected {n}: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An app whose clock starts at the real time (the library checks timestamps against it) and
/// whose `[webhooks] allow_http` lets deliveries reach the receiver on loopback.
async fn app() -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(&dir.path().join("data"));
    config.webhooks.allow_http = vec!["127.0.0.0/8".parse().unwrap()];
    TestApp::spawn_with(
        dir,
        config,
        Clock::manual(tenantry::clock::truncate_micros(Utc::now())),
    )
    .await
}

/// An active tenant's id.
async fn tenant(app: &TestApp) -> String {
    let n = &uuid::Uuid::now_v7().simple().to_string()[24..];
    let a = app.app(&format!("Hooks {n}")).await;
    let t = app.tenant(&a, &format!("Acme Hooks {n}")).await;
    let id = t["id"].as_str().unwrap().to_string();
    let (s, v) = app.action(&id, "activate", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    id
}

async fn endpoint(app: &TestApp, tenant: &str, url: &str, events: &[&str]) -> (String, String) {
    let (s, v) = app
        .post(
            &format!("/api/tenants/{tenant}/webhooks"),
            json!({"url": url, "event_types": events, "description": "tests"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (
        v["endpoint"]["id"].as_str().unwrap().to_string(),
        v["secret"].as_str().unwrap().to_string(),
    )
}

async fn test_event(app: &TestApp, tenant: &str, eid: &str) -> Value {
    let (s, v) = app
        .post(
            &format!("/api/tenants/{tenant}/webhooks/{eid}/test"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    v
}

async fn attempts(app: &TestApp, tenant: &str, eid: &str) -> Vec<Value> {
    let (s, v) = app
        .get(&format!("/api/tenants/{tenant}/webhooks/{eid}/attempts"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["items"].as_array().unwrap().clone()
}

/// Waits (real time) until the endpoint has `n` attempts; newest first.
async fn wait_attempts(app: &TestApp, tenant: &str, eid: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = attempts(app, tenant, eid).await;
        if a.len() >= n {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "{} attempts, expected {n}: {a:?}",
            a.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn every_delivery_verifies_with_the_standard_webhooks_library_rotation_included() {
    let app = app().await;
    let rx = Receiver::start();
    let t = tenant(&app).await;
    let (eid, secret) = endpoint(
        &app,
        &t,
        &rx.url("a"),
        &[
            "tenant.suspended.v1",
            "tenant.reinstated.v1",
            "webhook.test.v1",
        ],
    )
    .await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    rx.config("a", json!({"secrets": [secret]})).await;

    // The secret is shown once: never in a listing, and sealed in the store.
    let (_, one) = app.get(&format!("/api/tenants/{t}/webhooks/{eid}")).await;
    assert!(!one.to_string().contains(&secret[6..]), "{one}");

    // Ledger events of the tenant's chain, dispatched and signed.
    let (s, v) = app
        .action(&t, "suspend", json!({"reason": "dunning"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app.action(&t, "reinstate", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let got = rx.wait_for("a", 2).await;
    let chain = app.chain(&format!("tenant:{t}")).await;
    let mut types = Vec::new();
    for d in &got {
        assert_eq!(d["verified"], json!([0]), "{d}");
        assert_eq!(d["content_type"], "application/json");
        let sig = d["webhook_signature"].as_str().unwrap();
        assert!(sig.starts_with("v1,") && !sig.contains(' '), "{sig}");
        assert!(d["webhook_id"].as_str().unwrap().starts_with("msg_"));
        let body: Value = serde_json::from_str(d["body"].as_str().unwrap()).unwrap();
        let seq = body["data"]["seq"].as_u64().unwrap();
        let entry = &chain[usize::try_from(seq).unwrap() - 1];
        assert_eq!(body["type"], entry["action"], "{body}");
        assert_eq!(body["timestamp"], entry["ts"]);
        assert_eq!(body["data"]["hash"], entry["hash"]);
        assert_eq!(body["data"]["tenant_id"], json!(t));
        types.push(body["type"].as_str().unwrap().to_string());
    }
    types.sort();
    assert_eq!(types, ["tenant.reinstated.v1", "tenant.suspended.v1"]);
    assert_ne!(got[0]["webhook_id"], got[1]["webhook_id"]);
    // The endpoint's own creation and events it did not subscribe to were not delivered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.of("a").await.len(), 2);

    // Timestamp tolerance: a receiver whose clock is 6 minutes ahead refuses the delivery.
    rx.clock(Some(app.clock.now() + chrono::Duration::minutes(6)))
        .await;
    test_event(&app, &t, &eid).await;
    let got = rx.wait_for("a", 3).await;
    assert_eq!(got[2]["verified"], json!([]), "{}", got[2]);
    assert!(
        got[2]["error"].as_str().unwrap().contains("too old"),
        "{}",
        got[2]
    );
    rx.clock(None).await;

    // Rotation: for 60 s each delivery carries both signatures; each secret alone verifies.
    let (s, v) = app
        .post(
            &format!("/api/tenants/{t}/webhooks/{eid}/rotate-secret"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let new = v["secret"].as_str().unwrap().to_string();
    assert_ne!(new, secret);
    assert!(
        v["endpoint"]["previous_secret_valid_until"].is_string(),
        "{v}"
    );
    rx.config("a", json!({"secrets": [secret, new]})).await;
    test_event(&app, &t, &eid).await;
    let got = rx.wait_for("a", 4).await;
    let sig = got[3]["webhook_signature"].as_str().unwrap();
    assert_eq!(sig.split(' ').count(), 2, "{sig}");
    assert_eq!(got[3]["verified"], json!([0, 1]), "{}", got[3]);

    // After the overlap, only the new secret signs.
    app.clock.advance(chrono::Duration::seconds(61));
    rx.clock(Some(app.clock.now())).await;
    test_event(&app, &t, &eid).await;
    let got = rx.wait_for("a", 5).await;
    assert_eq!(
        got[4]["webhook_signature"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        1
    );
    assert_eq!(got[4]["verified"], json!([1]), "{}", got[4]);

    // Every attempt is visible, newest first. The receiver can see a delivery before the
    // server has stored its attempt, so wait for the fifth as the other tests do.
    let a = wait_attempts(&app, &t, &eid, 5).await;
    assert_eq!(a.len(), 5);
    assert!(
        a.iter()
            .all(|x| x["outcome"] == "succeeded" && x["status_code"] == 200)
    );

    // The secret is sealed at rest: its bytes are nowhere in the data file.
    let dir = app.data_dir();
    let _keep = app.stop().await;
    let file = std::fs::read(dir.join("tenantry.redb")).unwrap();
    assert!(file.len() > 4096);
    for s in [&secret, &new] {
        let raw = base64_decode(&s[6..]);
        assert!(
            !file.windows(raw.len()).any(|w| w == raw.as_slice()),
            "the secret is stored in the clear"
        );
        assert!(!file.windows(s.len()).any(|w| w == s.as_bytes()));
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[tokio::test]
async fn a_receiver_failing_five_times_gets_its_retries_on_the_schedule_then_succeeds() {
    let app = app().await;
    let rx = Receiver::start();
    let t = tenant(&app).await;
    let (eid, secret) = endpoint(&app, &t, &rx.url("flaky"), &["webhook.test.v1"]).await;
    rx.config("flaky", json!({"secrets": [secret], "fail_times": 5}))
        .await;
    test_event(&app, &t, &eid).await;
    // Svix's schedule: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h (+ at most 10% jitter).
    let delays = [5i64, 300, 1800, 7200, 18000];
    for (i, d) in delays.iter().enumerate() {
        let a = wait_attempts(&app, &t, &eid, i + 1).await;
        let last = &a[0];
        assert_eq!(last["status_code"], 500, "{last}");
        assert_eq!(last["outcome"], "failed");
        let at = time(&last["at"]);
        let next = time(&last["next_attempt_at"]);
        let wait = (next - at).num_milliseconds();
        assert!(
            wait >= d * 1000 && wait <= d * 1100 + 50,
            "try {} waits {wait} ms, the schedule says {d} s",
            i + 1
        );
        // Not a moment early: just before the next try, nothing is sent.
        app.clock.set(next - chrono::Duration::milliseconds(500));
        rx.clock(Some(app.clock.now())).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            rx.of("flaky").await.len(),
            i + 1,
            "try {} came early",
            i + 2
        );
        app.clock.set(next);
        rx.clock(Some(next)).await;
    }
    let got = rx.wait_for("flaky", 6).await;
    let a = wait_attempts(&app, &t, &eid, 6).await;
    assert_eq!(a[0]["status_code"], 200, "{}", a[0]);
    assert_eq!(a[0]["outcome"], "succeeded");
    assert!(a[0]["next_attempt_at"].is_null());
    // Every try verified, with the same webhook-id and body, and a fresh timestamp.
    assert!(got.iter().all(|d| d["verified"] == json!([0])), "{got:?}");
    assert!(got.iter().all(|d| d["webhook_id"] == got[0]["webhook_id"]));
    assert!(got.iter().all(|d| d["body"] == got[0]["body"]));
    let stamps: std::collections::BTreeSet<&str> = got
        .iter()
        .map(|d| d["webhook_timestamp"].as_str().unwrap())
        .collect();
    assert_eq!(stamps.len(), 6);
    let (_, dlq) = app.get(&format!("/api/tenants/{t}/webhooks/dlq")).await;
    assert_eq!(dlq["items"], json!([]));
}

/// Moves the clock to each next try until the delivery is dead (8 tries in all).
async fn exhaust(app: &TestApp, rx: &Receiver, t: &str, eid: &str, first: usize) {
    for n in first..first + 8 {
        let a = wait_attempts(app, t, eid, n).await;
        if let Some(next) = a[0]["next_attempt_at"].as_str() {
            let next = DateTime::parse_from_rfc3339(next)
                .unwrap()
                .with_timezone(&Utc);
            app.clock.set(next);
            rx.clock(Some(next)).await;
        }
    }
}

#[tokio::test]
async fn an_always_failing_endpoint_ends_in_the_dlq_and_replay_after_a_fix_succeeds() {
    let app = app().await;
    let rx = Receiver::start();
    let t = tenant(&app).await;
    let (eid, secret) = endpoint(&app, &t, &rx.url("down"), &["webhook.test.v1"]).await;
    rx.config(
        "down",
        json!({"secrets": [secret], "fail_times": 1000, "fail_status": 503}),
    )
    .await;
    let first = test_event(&app, &t, &eid).await;
    exhaust(&app, &rx, &t, &eid, 1).await;
    let a = wait_attempts(&app, &t, &eid, 8).await;
    assert_eq!(a.len(), 8);
    assert_eq!(a[0]["dead_lettered"], true, "{}", a[0]);
    assert!(a[0]["next_attempt_at"].is_null());
    // In the tenant's DLQ and the operator's, searchable by tenant and event type.
    let (s, dlq) = app.get(&format!("/api/tenants/{t}/webhooks/dlq")).await;
    assert_eq!(s, StatusCode::OK);
    let items = dlq["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{dlq}");
    let did = items[0]["id"].as_str().unwrap().to_string();
    assert_eq!(items[0]["msg_id"], first["msg_id"]);
    assert_eq!(items[0]["attempts"], 8);
    assert_eq!(items[0]["last_status"], 503);
    let (_, all) = app
        .get(&format!(
            "/api/webhooks/dlq?tenant_id={t}&event_type=webhook.test.v1"
        ))
        .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "{all}");
    let (_, none) = app
        .get("/api/webhooks/dlq?event_type=tenant.suspended.v1")
        .await;
    assert_eq!(none["items"], json!([]));

    // Another tenant's path does not reach the delivery: problem+json, no audit entry.
    let other = tenant(&app).await;
    let before = app.total_entries().await;
    let (s, v) = app
        .post(
            &format!("/api/tenants/{other}/webhooks/dlq/{did}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["code"], "not_found");
    assert_eq!(app.total_entries().await, before);

    // A replay that fails again lands back in the DLQ, newest first.
    let (s, v) = app
        .post(&format!("/api/webhooks/dlq/{did}/replay"), json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let a = wait_attempts(&app, &t, &eid, 9).await;
    assert_eq!(a[0]["dead_lettered"], true, "{}", a[0]);
    let (_, dlq) = app.get(&format!("/api/tenants/{t}/webhooks/dlq")).await;
    assert_eq!(dlq["items"][0]["id"], json!(did));
    assert_eq!(dlq["items"][0]["replays"], 1);
    let (s, v) = app
        .post(
            &format!("/api/tenants/{t}/webhooks/dlq/{did}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    wait_attempts(&app, &t, &eid, 10).await;
    let (s, v) = app
        .post(
            &format!("/api/tenants/{t}/webhooks/dlq/{did}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let a = wait_attempts(&app, &t, &eid, 11).await;
    assert_eq!(a[0]["dead_lettered"], true);

    // The fix, then a replay: the same webhook-id and body, a fresh timestamp, verified.
    rx.config("down", json!({"secrets": [secret]})).await;
    let (s, v) = app
        .post(
            &format!("/api/tenants/{t}/webhooks/dlq/{did}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let got = rx.wait_for("down", 12).await;
    let last = &got[11];
    assert_eq!(last["status"], 200);
    assert_eq!(last["verified"], json!([0]), "{last}");
    assert_eq!(last["webhook_id"], got[0]["webhook_id"]);
    assert_eq!(last["body"], got[0]["body"]);
    assert_ne!(last["webhook_timestamp"], got[0]["webhook_timestamp"]);
    let (_, dlq) = app.get(&format!("/api/tenants/{t}/webhooks/dlq")).await;
    assert_eq!(dlq["items"], json!([]), "{dlq}");
    // A delivered delivery is gone from the DLQ: replaying it again is a 404, and writes nothing.
    let before = app.total_entries().await;
    let (s, v) = app
        .post(
            &format!("/api/tenants/{t}/webhooks/dlq/{did}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(app.total_entries().await, before);

    // Bulk replay after an outage: two dead deliveries, one call.
    rx.config("down", json!({"secrets": [secret], "fail_times": 1000}))
        .await;
    let n0 = attempts(&app, &t, &eid).await.len();
    test_event(&app, &t, &eid).await;
    exhaust(&app, &rx, &t, &eid, n0 + 1).await;
    test_event(&app, &t, &eid).await;
    exhaust(&app, &rx, &t, &eid, n0 + 9).await;
    wait_attempts(&app, &t, &eid, n0 + 16).await;
    let (_, dlq) = app
        .get(&format!("/api/tenants/{t}/webhooks/dlq?endpoint_id={eid}"))
        .await;
    assert_eq!(dlq["items"].as_array().unwrap().len(), 2, "{dlq}");
    rx.config("down", json!({"secrets": [secret]})).await;
    let seen = rx.of("down").await.len();
    let (s, v) = app
        .post(
            &format!("/api/tenants/{t}/webhooks/{eid}/replay-dlq"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["replayed"], 2);
    let got = rx.wait_for("down", seen + 2).await;
    assert!(
        got[seen..]
            .iter()
            .all(|d| d["status"] == 200 && d["verified"] == json!([0]))
    );
    let (_, dlq) = app.get(&format!("/api/tenants/{t}/webhooks/dlq")).await;
    assert_eq!(dlq["items"], json!([]));
    let actions = app.actions(&format!("tenant:{t}")).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "webhook.delivery.replayed.v1")
            .count(),
        4
    );
    assert!(actions.contains(&"webhook.dlq.replayed.v1".to_string()));

    // The prune job deletes DLQ entries older than 7 days.
    rx.config("down", json!({"secrets": [secret], "fail_times": 1000}))
        .await;
    let n0 = attempts(&app, &t, &eid).await.len();
    test_event(&app, &t, &eid).await;
    exhaust(&app, &rx, &t, &eid, n0 + 1).await;
    wait_attempts(&app, &t, &eid, n0 + 8).await;
    let (_, dlq) = app.get(&format!("/api/tenants/{t}/webhooks/dlq")).await;
    assert_eq!(dlq["items"].as_array().unwrap().len(), 1);
    app.clock.advance(chrono::Duration::days(6));
    let (s, v) = app.post("/api/jobs/prune_webhooks/run", json!({})).await;
    assert!(s.is_success(), "{v}");
    let (_, dlq) = app.get(&format!("/api/tenants/{t}/webhooks/dlq")).await;
    assert_eq!(
        dlq["items"].as_array().unwrap().len(),
        1,
        "pruned too early"
    );
    app.clock.advance(chrono::Duration::days(2));
    let (s, v) = app.post("/api/jobs/prune_webhooks/run", json!({})).await;
    assert!(s.is_success(), "{v}");
    let (_, dlq) = app.get(&format!("/api/tenants/{t}/webhooks/dlq")).await;
    assert_eq!(dlq["items"], json!([]), "{dlq}");
    assert!(attempts(&app, &t, &eid).await.is_empty());
}

#[tokio::test]
async fn a_410_gone_disables_the_endpoint_at_once() {
    let app = app().await;
    let rx = Receiver::start();
    let t = tenant(&app).await;
    let (eid, secret) = endpoint(&app, &t, &rx.url("gone"), &["webhook.test.v1"]).await;
    rx.config("gone", json!({"secrets": [secret], "status": 410}))
        .await;
    test_event(&app, &t, &eid).await;
    let a = wait_attempts(&app, &t, &eid, 1).await;
    assert_eq!(a[0]["status_code"], 410);
    assert_eq!(a[0]["dead_lettered"], true, "{}", a[0]);
    let (_, e) = app.get(&format!("/api/tenants/{t}/webhooks/{eid}")).await;
    assert_eq!(e["enabled"], false, "{e}");
    assert!(e["disabled_reason"].as_str().unwrap().contains("410"));
    assert!(
        app.actions(&format!("tenant:{t}"))
            .await
            .contains(&"webhook.endpoint.disabled.v1".to_string())
    );
    // A disabled endpoint gets no test and no replay until it is enabled again.
    let (s, v) = app
        .post(&format!("/api/tenants/{t}/webhooks/{eid}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "webhook_disabled");
    let (s, v) = app
        .patch(
            &format!("/api/tenants/{t}/webhooks/{eid}"),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["disabled_reason"].is_null());
}

#[tokio::test]
async fn a_slow_endpoint_does_not_delay_a_fast_one() {
    let app = app().await;
    let rx = Receiver::start();
    let t = tenant(&app).await;
    let events = ["tenant.suspended.v1", "tenant.reinstated.v1"];
    // The slow endpoint's id sorts first (UUIDv7, a later millisecond for the fast one), so its
    // deliveries come first in the due order: a loop that sent one at a time, or let the slow
    // endpoint take every slot, would make the fast one wait.
    let (_, slow) = endpoint(&app, &t, &rx.url("slow"), &events).await;
    app.clock.advance(chrono::Duration::milliseconds(5));
    let (_, fast) = endpoint(&app, &t, &rx.url("fast"), &events).await;
    rx.config("slow", json!({"secrets": [slow], "delay_ms": 3000}))
        .await;
    rx.config("fast", json!({"secrets": [fast]})).await;
    let started = Instant::now();
    for i in 0..6 {
        let (s, v) = if i % 2 == 0 {
            app.action(&t, "suspend", json!({"reason": "test"})).await
        } else {
            app.action(&t, "reinstate", json!({})).await
        };
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let got = rx.wait_for("fast", 6).await;
    let took = started.elapsed();
    let slow_done = rx.of("slow").await.len();
    assert!(got.iter().all(|d| d["verified"] == json!([0])));
    // The slow endpoint takes 3 s a delivery with 4 at once (6 s for 6); the fast one is done
    // long before (one at a time behind the slow ones, it would take 18 s).
    assert!(
        took < Duration::from_millis(5000),
        "the fast endpoint took {took:?}"
    );
    assert!(slow_done < 6, "the slow endpoint was not slow: {slow_done}");
    let slow_got = rx.wait_for("slow", 6).await;
    assert!(slow_got.iter().all(|d| d["verified"] == json!([0])));
}

#[tokio::test]
async fn the_ssrf_guard_refuses_metadata_and_private_addresses_and_sends_nothing() {
    let app = app().await;
    let t = tenant(&app).await;
    for (url, why) in [
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://10.0.0.1/hook", "private"),
    ] {
        let (eid, _) = endpoint(&app, &t, url, &["webhook.test.v1"]).await;
        test_event(&app, &t, &eid).await;
        let a = wait_attempts(&app, &t, &eid, 1).await;
        assert_eq!(a[0]["outcome"], "refused", "{}", a[0]);
        assert!(a[0]["status_code"].is_null());
        let err = a[0]["error"].as_str().unwrap();
        assert!(err.contains("SSRF") && err.contains(why), "{err}");
        // A refusal is a failed try: the retry schedule goes on.
        assert!(a[0]["next_attempt_at"].is_string());
    }
    // Plain http to an address outside allow_http is refused when the endpoint is made.
    let (s, v) = app
        .post(
            &format!("/api/tenants/{t}/webhooks"),
            json!({"url": "http://10.0.0.1/hook", "event_types": ["webhook.test.v1"]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

#[tokio::test]
async fn bad_input_is_problem_json_and_writes_nothing() {
    let app = app().await;
    let t = tenant(&app).await;
    let before = app.total_entries().await;
    let path = format!("/api/tenants/{t}/webhooks");
    for (body, field) in [
        (
            json!({"url": "ftp://x", "event_types": ["webhook.test.v1"]}),
            "url",
        ),
        (
            json!({"url": "https://h.example/x", "event_types": ["no.such.v1"]}),
            "event_types",
        ),
        (
            json!({"url": "https://h.example/x", "event_types": []}),
            "event_types",
        ),
        (
            json!({"url": "", "event_types": ["webhook.test.v1"]}),
            "url",
        ),
        (
            json!({"url": "https://u:p@h.example/", "event_types": ["webhook.test.v1"]}),
            "url",
        ),
    ] {
        let (s, v) = app.post(&path, body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body} {v}");
        assert_eq!(v["code"], "validation_failed");
        assert!(v["errors"].to_string().contains(field), "{v}");
    }
    let res = app
        .client
        .post(app.url(&path))
        .bearer_auth(crate::helpers::TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let (s, v) = app
        .send(Method::POST, &path, Some(json!({"url": "https://h.example/", "event_types": ["webhook.test.v1"], "extra": 1})), Some(crate::helpers::TOKEN))
        .await;
    assert!(
        s == StatusCode::BAD_REQUEST || s == StatusCode::UNPROCESSABLE_ENTITY,
        "{s} {v}"
    );
    let missing = "0190f0e0-0000-7000-8000-000000000000";
    for (m, p) in [
        (Method::GET, format!("{path}/{missing}")),
        (Method::POST, format!("{path}/{missing}/rotate-secret")),
        (Method::POST, format!("{path}/{missing}/test")),
        (Method::GET, format!("{path}/{missing}/attempts")),
        (Method::DELETE, format!("{path}/{missing}")),
        (Method::POST, format!("{path}/dlq/{missing}/replay")),
        (Method::POST, format!("/api/webhooks/dlq/{missing}/replay")),
        (Method::GET, format!("{path}/not-a-uuid")),
    ] {
        let (s, v) = app
            .send(m.clone(), &p, Some(json!({})), Some(crate::helpers::TOKEN))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {p} {v}");
    }
    let (s, v) = app.get("/api/webhooks/dlq?tenant_id=nope").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["code"], "invalid_query");
    assert_eq!(
        app.total_entries().await,
        before,
        "a refusal wrote to the ledger"
    );
    let (_, v) = app.get(&path).await;
    assert_eq!(v["items"], json!([]));
    // The catalogue is published: ledger actions plus billing events.
    let (s, v) = app.get("/api/event-types").await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for n in [
        "tenant.suspended.v1",
        "persona.created.v1",
        "invoice.finalized.v1",
        "webhook.endpoint.created.v1",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
}

/// R: kill -9 of the real binary between the commit of events and their delivery; after the
/// restart each event is delivered exactly once. The receiver is down at first (its port is
/// closed), so no delivery can complete before the kill, whether or not the dispatcher ran.
#[tokio::test]
async fn events_committed_before_a_kill_9_are_delivered_once_after_the_restart() {
    use crate::process::{Server, data_dir, get, post};
    let (_tmp, data) = data_dir();
    let cfg = _tmp.path().join("tenantry.toml");
    std::fs::write(&cfg, "[webhooks]\nallow_http = [\"127.0.0.0/8\"]\n").unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = reqwest::Client::new();
    let server = Server::start(&data, &["--config", &cfg]);
    let base = server.base.clone();
    let (s, v) = post(&client, &base, "/api/apps", json!({"name": "Crash"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = post(
        &client,
        &base,
        "/api/tenants",
        json!({"app_id": v["id"], "display_name": "Crash Co", "region": "us-east-1"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let t = v["id"].as_str().unwrap().to_string();
    let (s, v) = post(
        &client,
        &base,
        &format!("/api/tenant-lifecycle/{t}/activate"),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let url = format!("http://127.0.0.1:{port}/hook/crash");
    let (s, v) = post(
        &client,
        &base,
        &format!("/api/tenants/{t}/webhooks"),
        json!({"url": url, "event_types": ["tenant.suspended.v1", "tenant.reinstated.v1"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    let eid = v["endpoint"]["id"].as_str().unwrap().to_string();
    const EVENTS: usize = 10;
    for i in 0..EVENTS {
        let (s, v) = if i % 2 == 0 {
            post(
                &client,
                &base,
                &format!("/api/tenant-lifecycle/{t}/suspend"),
                json!({"reason": "crash test"}),
            )
            .await
        } else {
            post(
                &client,
                &base,
                &format!("/api/tenant-lifecycle/{t}/reinstate"),
                json!({}),
            )
            .await
        };
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    // kill -9 right after the last commit was acknowledged.
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    let rx = Receiver::start_on(port);
    rx.config("crash", json!({"secrets": [secret]})).await;
    let server = Server::start(&data, &["--config", &cfg]);
    // Failed first tries (connection refused) come back 5 s later, on the real clock.
    let got = rx.wait_for("crash", EVENTS).await;
    tokio::time::sleep(Duration::from_millis(7000)).await;
    let got2 = rx.of("crash").await;
    assert_eq!(got2.len(), EVENTS, "a delivery came twice: {got2:?}");
    let mut seqs: Vec<u64> = got
        .iter()
        .map(|d| {
            assert_eq!(d["verified"], json!([0]), "{d}");
            let b: Value = serde_json::from_str(d["body"].as_str().unwrap()).unwrap();
            b["data"]["seq"].as_u64().unwrap()
        })
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), EVENTS, "{seqs:?}");
    let ids: std::collections::BTreeSet<&str> = got2
        .iter()
        .map(|d| d["webhook_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), EVENTS);
    let (s, v) = get(
        &client,
        &server.base,
        &format!("/api/tenants/{t}/webhooks/dlq"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"], json!([]), "{v}");
    let (_, a) = get(
        &client,
        &server.base,
        &format!("/api/tenants/{t}/webhooks/{eid}/attempts?limit=500"),
    )
    .await;
    let ok = a["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["outcome"] == "succeeded")
        .count();
    assert_eq!(ok, EVENTS);
    server.terminate();
}
