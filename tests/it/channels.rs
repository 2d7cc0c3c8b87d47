//! Notification channels (issue 11, tenant admin guide §6, HQ PRD §6 `alert_dispatcher`) against
//! real outside parts on 127.0.0.1: email lands in an `aiosmtpd` sink; Slack, Teams and generic
//! payloads reach the Python receiver (`scripts/webhook_receiver.py`), which verifies the
//! generic kind's signature with the official `standardwebhooks` library; the SSRF guard; health
//! with Test and Reconnect; the alert dispatcher; bad input writes nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tenantry::clock::Clock;

use crate::helpers::{TestApp, test_config};
use crate::identity::Sink;
use crate::webhooks::Receiver;

/// An app whose `[webhooks] allow_http` lets channels reach loopback, with `[smtp]` at `sink`.
async fn app(sink: Option<&Sink>) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(&dir.path().join("data"));
    config.webhooks.allow_http = vec!["127.0.0.0/8".parse().unwrap()];
    config.smtp = sink.map(|s| tenantry::config::SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(s.port),
        tls: tenantry::config::SmtpTls::None,
        from: "Tenantry <alerts@tenantry.test>".into(),
        username: None,
        password: None,
        timeout_secs: Some(5),
    });
    TestApp::spawn_with(
        dir,
        config,
        Clock::manual(tenantry::clock::truncate_micros(Utc::now())),
    )
    .await
}

async fn tenant(app: &TestApp) -> String {
    let app_id = app.app("Projex").await;
    app.tenant(&app_id, "Acme").await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn body(d: &Value) -> Value {
    serde_json::from_str(d["body"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_teams_and_generic_channels_send_their_documented_formats() {
    let rx = Receiver::start();
    let app = app(None).await;
    let t = tenant(&app).await;
    let base = format!("/api/tenants/{t}/notification-channels");
    let mut ids = Vec::new();
    for kind in ["slack", "teams", "generic"] {
        let (s, v) = app
            .post(
                &base,
                json!({"name": format!("#{kind}"), "kind": kind, "url": rx.url(kind),
                       "event_types": ["tenant.activated.v1"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        // The URL is a secret: only its host is shown.
        let url = v["channel"]["url"].as_str().unwrap();
        assert!(!url.contains("/hook/"), "{v}");
        assert_eq!(v["channel"]["health"], "unknown");
        if kind == "generic" {
            let secret = v["secret"].as_str().unwrap();
            assert!(secret.starts_with("whsec_"));
            rx.config("generic", json!({"secrets": [secret]})).await;
        } else {
            assert!(v["secret"].is_null());
        }
        ids.push(v["channel"]["id"].as_str().unwrap().to_string());
    }
    // An event of the tenant's chain is routed to every channel subscribed to it.
    let (s, v) = app.action(&t, "activate", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let slack = rx.wait_for("slack", 1).await;
    let b = body(&slack[0]);
    assert!(
        b["text"].as_str().unwrap().contains("tenant.activated.v1"),
        "{b}"
    );
    assert_eq!(b["blocks"][0]["type"], "section", "{b}");
    assert_eq!(b["blocks"][0]["text"]["type"], "mrkdwn", "{b}");

    let teams = rx.wait_for("teams", 1).await;
    let b = body(&teams[0]);
    assert_eq!(b["type"], "message", "{b}");
    let a = &b["attachments"][0];
    assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(a["content"]["type"], "AdaptiveCard");
    assert_eq!(a["content"]["body"][0]["type"], "TextBlock");

    let generic = rx.wait_for("generic", 1).await;
    assert_eq!(generic[0]["verified"], json!([0]), "{:?}", generic[0]);
    let b = body(&generic[0]);
    assert_eq!(b["type"], "tenant.activated.v1");
    assert_eq!(b["data"]["details"]["tenant_id"], json!(t));

    // Each message once, and health shows the delivery.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.of("slack").await.len(), 1);
    let (_, v) = app.get(&format!("{base}/{}", ids[0])).await;
    assert_eq!(v["health"], "ok", "{v}");
    assert_eq!(v["last_delivery"]["event_type"], "tenant.activated.v1");
    let (_, list) = app.get(&base).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    assert!(list["next_cursor"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_channel_test_lands_in_the_smtp_sink() {
    let sink = Sink::start();
    let app = app(Some(&sink)).await;
    let (s, v) = app
        .post(
            "/api/notification-channels",
            json!({"name": "On-call", "kind": "email", "recipients": ["oncall@example.com"],
                   "event_types": ["job.failed"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["channel"]["id"].as_str().unwrap().to_string();
    let (s, v) = app
        .post(&format!("/api/notification-channels/{id}/test"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["health"], "ok", "{v}");
    let mail = sink.wait_for_message("oncall@example.com").await;
    assert!(
        mail.contains("Subject: [Tenantry] Test message for On-call"),
        "{mail}"
    );
    assert!(
        app.actions("platform")
            .await
            .contains(&"notification_channel.tested.v1".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_dispatcher_sends_a_job_failure_once() {
    let rx = Receiver::start();
    let app = app(None).await;
    let (s, v) = app
        .post(
            "/api/notification-channels",
            json!({"name": "#ops", "kind": "slack", "url": rx.url("ops"),
                   "event_types": ["job.failed"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // backup_daily fails without [backup] recipients.
    let (_, run) = app.post("/api/jobs/backup_daily/run", json!({})).await;
    assert_eq!(run["outcome"], "failed", "{run}");
    let (_, run) = app.post("/api/jobs/alert_dispatcher/run", json!({})).await;
    assert_eq!(run["outcome"], "ok", "{run}");
    assert!(
        run["summary"].as_str().unwrap().contains("queued 1 alert"),
        "{run}"
    );
    let got = rx.wait_for("ops", 1).await;
    let b = body(&got[0]);
    assert!(
        b["text"]
            .as_str()
            .unwrap()
            .contains("Job backup_daily failed"),
        "{b}"
    );
    // A second run finds nothing new: the alert went once.
    let (_, run) = app.post("/api/jobs/alert_dispatcher/run", json!({})).await;
    assert!(
        run["summary"].as_str().unwrap().contains("queued 0 alert"),
        "{run}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.of("ops").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ssrf_guard_refuses_private_and_metadata_addresses_and_reconnect_clears_the_error() {
    let app = app(None).await;
    let t = tenant(&app).await;
    let base = format!("/api/tenants/{t}/notification-channels");
    // Plain http outside allow_http is refused when the channel is made: nothing written.
    let before = app.total_entries().await;
    for url in ["http://10.0.0.1/", "http://169.254.169.254/"] {
        let (s, v) = app
            .post(
                &base,
                json!({"name": "x", "kind": "slack", "url": url, "event_types": ["tenant.suspended.v1"]}),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["code"], "validation_failed");
    }
    // Over https the address is checked when sending: refused, nothing sent, health red.
    for url in [
        "https://10.0.0.1/",
        "https://169.254.169.254/latest/meta-data/",
    ] {
        let (s, v) = app
            .post(
                &base,
                json!({"name": "y", "kind": "teams", "url": url, "event_types": ["tenant.suspended.v1"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["channel"]["id"].as_str().unwrap().to_string();
        let started = Instant::now();
        let (s, v) = app.post(&format!("{base}/{id}/test"), json!({})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "nothing is sent"
        );
        assert_eq!(v["health"], "failing", "{v}");
        let e = v["last_delivery"]["error"].as_str().unwrap();
        assert!(e.contains("SSRF"), "{e}");
        // Reconnect clears the error.
        let (s, v) = app.post(&format!("{base}/{id}/reconnect"), json!({})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["health"], "ok", "{v}");
        assert!(v["last_delivery"]["error"].is_null(), "{v}");
        assert_eq!(v["failures"], 0);
    }
    let actions = app.actions(&format!("tenant:{t}")).await;
    for a in [
        "notification_channel.created.v1",
        "notification_channel.tested.v1",
        "notification_channel.reconnected.v1",
    ] {
        assert!(actions.contains(&a.to_string()), "{a}: {actions:?}");
    }
    assert_eq!(app.total_entries().await, before + 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_problem_and_writes_nothing() {
    let app = app(None).await;
    let t = tenant(&app).await;
    let base = format!("/api/tenants/{t}/notification-channels");
    let before = app.total_entries().await;
    for (b, field) in [
        (
            json!({"name": "", "kind": "slack", "url": "https://hooks.slack.com/x", "event_types": ["tenant.suspended.v1"]}),
            "name",
        ),
        (
            json!({"name": "x", "kind": "salesforce", "event_types": ["tenant.suspended.v1"]}),
            "kind",
        ),
        (
            json!({"name": "x", "kind": "email", "recipients": ["not-an-address"], "event_types": ["tenant.suspended.v1"]}),
            "recipients",
        ),
        (
            json!({"name": "x", "kind": "slack", "url": "https://hooks.slack.com/x", "event_types": ["no.such.v1"]}),
            "event_types",
        ),
        (
            json!({"name": "x", "kind": "slack", "url": "ftp://x", "event_types": ["tenant.suspended.v1"]}),
            "url",
        ),
    ] {
        let (s, v) = app.post(&base, b).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["code"], "validation_failed", "{v}");
        assert!(v.to_string().contains(field), "{field}: {v}");
    }
    // A platform channel takes only platform alerts.
    let (s, v) = app
        .post(
            "/api/notification-channels",
            json!({"name": "x", "kind": "email", "recipients": ["a@example.com"], "event_types": ["tenant.suspended.v1"]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Unknown fields and ids.
    let (s, v) = app
        .post(
            &base,
            json!({"name": "x", "kind": "slack", "bogus": 1, "event_types": []}),
        )
        .await;
    assert!(s.is_client_error(), "{v}");
    let (s, v) = app
        .get(&format!("/api/notification-channels/{}", uuid::Uuid::nil()))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, _) = app.get(&format!("{base}/not-a-uuid")).await;
    assert!(s.is_client_error());
    assert_eq!(
        app.total_entries().await,
        before,
        "a refusal writes nothing"
    );
    let (_, list) = app.get(&base).await;
    assert!(list["items"].as_array().unwrap().is_empty());
}

/// Polls `GET path` (real time, at most 20 s) until `ok` holds for the channel; returns it.
async fn wait_channel(app: &TestApp, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = app.get(path).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if ok(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "the channel never got there: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Longer than two polls of the delivery loop (`channels::delivery::POLL`, 1 s): a message due
/// at the clock's time has been sent after it.
const TWO_POLLS: Duration = Duration::from_millis(2500);

/// Creates a Slack channel of tenant `t` posting to `url`; returns its API path.
async fn slack(app: &TestApp, t: &str, name: &str, url: &str, events: &[&str]) -> String {
    let base = format!("/api/tenants/{t}/notification-channels");
    let (s, v) = app
        .post(
            &base,
            json!({"name": name, "kind": "slack", "url": url, "event_types": events}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    format!("{base}/{}", v["channel"]["id"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_its_retries_after_5_s_30_s_and_2_min_and_health_turns_ok() {
    let rx = Receiver::start();
    let app = app(None).await;
    let t = tenant(&app).await;
    let path = slack(
        &app,
        &t,
        "#flaky",
        &rx.url("flaky"),
        &["tenant.activated.v1"],
    )
    .await;
    rx.config("flaky", json!({"fail_times": 3})).await;
    let (s, v) = app.action(&t, "activate", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The manual clock stands still unless the test moves it, so each try is recorded at the
    // time the test set, and its retry is due exactly one delay later.
    let mut at = app.clock.now();
    for (i, delay) in documented_retry_delays().into_iter().enumerate() {
        let v = wait_channel(&app, &path, |v| v["failures"] == json!(i + 1)).await;
        assert_eq!(v["health"], "failing", "{v}");
        assert_eq!(v["last_delivery"]["ok"], false, "{v}");
        let e = v["last_delivery"]["error"].as_str().unwrap();
        assert!(e.contains("500"), "{e}");
        assert_eq!(rx.of("flaky").await.len(), i + 1);
        let due = at + chrono::Duration::seconds(delay);
        // Not a moment early: 1 ms before the delay is over, through two polls, nothing is sent.
        app.clock.set(due - chrono::Duration::milliseconds(1));
        tokio::time::sleep(TWO_POLLS).await;
        assert_eq!(
            rx.of("flaky").await.len(),
            i + 1,
            "try {} came before its {delay} s delay",
            i + 2
        );
        // And on time once it is.
        app.clock.set(due);
        rx.wait_for("flaky", i + 2).await;
        at = due;
    }
    // The 4th try was taken: health is ok again, and the message is done.
    let v = wait_channel(&app, &path, |v| v["health"] == "ok").await;
    assert_eq!(v["failures"], 0, "{v}");
    assert_eq!(v["last_delivery"]["ok"], true, "{v}");
    assert_eq!(v["last_delivery"]["event_type"], "tenant.activated.v1");
    let taken = chrono::DateTime::parse_from_rfc3339(v["last_delivery"]["at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(taken, at, "recorded when taken");
    app.clock.advance(chrono::Duration::minutes(10));
    tokio::time::sleep(TWO_POLLS).await;
    let got = rx.of("flaky").await;
    assert_eq!(got.len(), 4, "{got:?}");
    // Each try carried the same message.
    assert!(got.iter().all(|d| d["body"] == got[0]["body"]), "{got:?}");
    assert!(
        body(&got[0])["text"]
            .as_str()
            .unwrap()
            .contains("tenant.activated.v1")
    );
}

/// The documented schedule (tenant admin guide §6): 5 s, 30 s, 2 min. Spelled out here rather
/// than read from `RETRY_DELAYS`, so a change to the constant fails the tests.
fn documented_retry_delays() -> [i64; 3] {
    [5, 30, 120]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_failures_in_a_row_disable_a_channel_until_reconnect() {
    let rx = Receiver::start();
    let app = app(None).await;
    let t = tenant(&app).await;
    let (s, v) = app.action(&t, "activate", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let events = ["tenant.suspended.v1", "tenant.reinstated.v1"];
    let path = slack(&app, &t, "#down", &rx.url("down"), &events).await;
    rx.config("down", json!({"fail_times": 1000, "fail_status": 503}))
        .await;
    let toggle = |n: usize| {
        let (app, t) = (&app, &t);
        async move {
            for i in 0..n {
                let (s, v) = if i % 2 == 0 {
                    app.action(t, "suspend", json!({"reason": "test"})).await
                } else {
                    app.action(t, "reinstate", json!({})).await
                };
                assert_eq!(s, StatusCode::OK, "{v}");
            }
        }
    };
    let failures = |n: u32| {
        let (app, path) = (&app, &path);
        async move { wait_channel(app, path, |v| v["failures"] == json!(n)).await }
    };
    // Two messages, each tried 4 times (now, +5 s, +35 s, +155 s) and given up: 8 failures.
    toggle(2).await;
    failures(2).await;
    let mut at = app.clock.now();
    for (k, delay) in documented_retry_delays().into_iter().enumerate() {
        at += chrono::Duration::seconds(delay);
        app.clock.set(at);
        let v = failures(2 * (k as u32 + 2)).await;
        assert_eq!(v["health"], "failing", "{v}");
        assert_eq!(v["enabled"], true, "{v}");
    }
    app.clock.advance(chrono::Duration::minutes(10));
    tokio::time::sleep(TWO_POLLS).await;
    assert_eq!(rx.of("down").await.len(), 8, "given up after 4 tries");
    let (_, v) = app.get(&path).await;
    assert_eq!(
        (v["enabled"].clone(), v["failures"].clone()),
        (json!(true), json!(8))
    );

    // Two more messages: the 9th and 10th failures in a row; the 10th disables the channel.
    toggle(2).await;
    let v = failures(10).await;
    assert_eq!(v["enabled"], false, "{v}");
    assert_eq!(v["health"], "failing", "{v}");
    let why = v["disabled_reason"].as_str().unwrap();
    assert!(
        why.contains("10 failed sends in a row") && why.contains("503"),
        "{why}"
    );
    let disabled = |a: &Vec<String>| {
        a.iter()
            .filter(|a| *a == "notification_channel.disabled.v1")
            .count()
    };
    assert_eq!(disabled(&app.actions(&format!("tenant:{t}")).await), 1);
    // Disabled: neither message is retried, and new events are not sent to it.
    app.clock.advance(chrono::Duration::minutes(10));
    toggle(2).await;
    tokio::time::sleep(TWO_POLLS).await;
    app.clock.advance(chrono::Duration::minutes(10));
    tokio::time::sleep(TWO_POLLS).await;
    assert_eq!(
        rx.of("down").await.len(),
        10,
        "a disabled channel was sent to"
    );
    let (_, v) = app.get(&path).await;
    assert_eq!(v["failures"], 10, "{v}");
    assert_eq!(v["enabled"], false, "{v}");
    let (_, page) = app
        .get(&format!("/api/tenants/{t}/notification-channels"))
        .await;
    assert_eq!(page["items"][0]["enabled"], false, "{page}");

    // The receiver is fixed; Reconnect brings the channel back.
    rx.config("down", json!({})).await;
    let (s, v) = app.post(&format!("{path}/reconnect"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["enabled"], true, "{v}");
    assert_eq!(v["health"], "ok", "{v}");
    assert_eq!(v["failures"], 0, "{v}");
    assert!(v["disabled_reason"].is_null(), "{v}");
    toggle(1).await;
    let got = rx.wait_for("down", 11).await;
    assert_eq!(got[10]["status"], 200, "{}", got[10]);
    let v = wait_channel(&app, &path, |v| v["last_delivery"]["ok"] == true).await;
    assert_eq!(v["health"], "ok", "{v}");
    assert!(
        body(&got[10])["text"]
            .as_str()
            .unwrap()
            .contains("tenant.suspended.v1"),
        "{}",
        got[10]
    );
    assert_eq!(disabled(&app.actions(&format!("tenant:{t}")).await), 1);
}

/// R: kill -9 of the real binary after events are committed and before their channel
/// messages are sent; after the restart each is sent exactly once.
///
/// The design is at-least-once: a message leaves the queue in the write that records its send,
/// so a kill between a taken send and that write sends it again after the restart. Here no send
/// can be taken before the kill (the receiver's port stays closed until then, as in the webhooks
/// crash test), so exactly once is what must happen: routing (the cursor and the queued messages
/// in one write) and the queue must neither lose nor repeat an event across the kill.
#[tokio::test]
async fn events_committed_before_a_kill_9_reach_a_channel_once_after_the_restart() {
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
    let (s, v) = post(
        &client,
        &base,
        &format!("/api/tenants/{t}/notification-channels"),
        json!({"name": "#crash", "kind": "generic",
               "url": format!("http://127.0.0.1:{port}/hook/crash"),
               "event_types": ["tenant.suspended.v1", "tenant.reinstated.v1"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    let path = format!(
        "/api/tenants/{t}/notification-channels/{}",
        v["channel"]["id"].as_str().unwrap()
    );
    const EVENTS: usize = 6;
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
    // A try refused before the kill comes back 5 s later, on the real clock.
    rx.wait_for("crash", EVENTS).await;
    tokio::time::sleep(Duration::from_millis(7000)).await;
    let got = rx.of("crash").await;
    assert_eq!(got.len(), EVENTS, "a message came twice: {got:?}");
    let mut seqs: Vec<u64> = got
        .iter()
        .map(|d| {
            assert_eq!(d["verified"], json!([0]), "{d}");
            body(d)["data"]["details"]["seq"].as_u64().unwrap()
        })
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), EVENTS, "{seqs:?}");
    let ids: std::collections::BTreeSet<&str> = got
        .iter()
        .map(|d| d["webhook_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), EVENTS);
    let (s, v) = get(&client, &server.base, &path).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["health"], "ok", "{v}");
    assert_eq!(v["failures"], 0, "{v}");
    server.terminate();
}

/// Every `<form>` of `html` posting to `action`, whole.
fn forms<'a>(html: &'a str, action: &str) -> Vec<&'a str> {
    let needle = format!("action=\"{action}\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let start = html[..i].rfind("<form").unwrap();
            let end = i + html[i..].find("</form>").unwrap();
            &html[start..end]
        })
        .collect()
}

/// The page lists channel `id` named `name` with its health dot (`aria-label` = `health`), and
/// its Test and Reconnect buttons are forms posting to `{base}/{id}/…` with the session's CSRF
/// token.
fn check_page(html: &str, base: &str, id: &str, name: &str, health: &str, csrf: &str) {
    let rows = &html[html
        .find("<tbody")
        .unwrap_or_else(|| panic!("no table: {html}"))..];
    let at = rows
        .find(&format!("> {name}"))
        .unwrap_or_else(|| panic!("{name} is not listed: {html}"));
    let cell = &rows[rows[..at].rfind("<td").unwrap()..at];
    let dot = match health {
        "healthy" => "dot ok",
        "unhealthy" => "dot critical",
        _ => "dot muted",
    };
    assert!(
        cell.contains(&format!("class=\"{dot}\""))
            && cell.contains(&format!("aria-label=\"{health}\"")),
        "no {health} dot before {name}: {cell}"
    );
    for (action, label) in [("test", "Test"), ("reconnect", "Reconnect")] {
        let f = forms(html, &format!("{base}/{id}/{action}"));
        assert_eq!(f.len(), 1, "{action}: {html}");
        assert!(f[0].contains("method=\"post\""), "{}", f[0]);
        assert!(
            f[0].contains(&format!("name=\"csrf\" value=\"{csrf}\"")),
            "{action} has no CSRF token: {}",
            f[0]
        );
        assert!(f[0].contains(&format!(">{label}</button>")), "{}", f[0]);
    }
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_console_lists_platform_channels_with_health_and_test_and_reconnect_forms() {
    use crate::console::{operator, signin};
    let rx = Receiver::start();
    let app = app(None).await;
    rx.config("ops", json!({"status": 500})).await;
    let (s, v) = app
        .post(
            "/api/notification-channels",
            json!({"name": "#ops-alerts", "kind": "slack", "url": rx.url("ops"),
                   "event_types": ["job.failed"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["channel"]["id"].as_str().unwrap().to_string();
    let api = format!("/api/notification-channels/{id}");
    let base = "/platform/notification-channels";
    operator(&app, "olga", "technical_admin").await;
    let op = signin(&app, "olga", "olga-password-123").await;
    let page = |s: &crate::console::Session| {
        let (app, cookie) = (&app, s.cookie.clone());
        async move {
            let res = crate::console::client()
                .get(app.url(base))
                .header("cookie", format!("tenantry_session={cookie}"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.text().await.unwrap()
        }
    };
    let html = page(&op).await;
    assert!(html.contains("Notification channels"), "{html}");
    check_page(&html, base, &id, "#ops-alerts", "unknown", &op.csrf);

    // Test through the page's form: sent (the receiver answers 500), the dot turns red.
    let res = op.post(&app, &format!("{base}/{id}/test"), &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), base);
    assert_eq!(rx.of("ops").await.len(), 1);
    let html = page(&op).await;
    check_page(&html, base, &id, "#ops-alerts", "unhealthy", &op.csrf);
    assert!(html.contains("answered 500"), "{html}");
    // Without the session's token the form is refused and sends nothing.
    let res = op
        .post_raw(&app, &format!("{base}/{id}/test"), "csrf=")
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(rx.of("ops").await.len(), 1);

    // Reconnect through the form clears the error; a Test after the fix is green.
    let res = op.post(&app, &format!("{base}/{id}/reconnect"), &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, v) = app.get(&api).await;
    assert_eq!(v["health"], "ok", "{v}");
    rx.config("ops", json!({})).await;
    let res = op.post(&app, &format!("{base}/{id}/test"), &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(rx.of("ops").await.len(), 2);
    let html = page(&op).await;
    check_page(&html, base, &id, "#ops-alerts", "healthy", &op.csrf);
    let actions = app.actions("platform").await;
    for a in [
        "notification_channel.tested.v1",
        "notification_channel.reconnected.v1",
    ] {
        assert!(actions.contains(&a.to_string()), "{a}: {actions:?}");
    }

    // A read-only operator sees the channel and its health, but no buttons.
    operator(&app, "sam", "support").await;
    let sam = signin(&app, "sam", "sam-password-123").await;
    let html = page(&sam).await;
    assert!(html.contains("#ops-alerts"), "{html}");
    assert!(
        forms(&html, &format!("{base}/{id}/test")).is_empty(),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_console_lists_the_tenants_channels_with_health_and_test_and_reconnect_forms() {
    use crate::console::{client, form};
    let rx = Receiver::start();
    let app = app(None).await;
    let t = tenant(&app).await;
    let path = slack(
        &app,
        &t,
        "#acme-ops",
        &rx.url("acme"),
        &["tenant.suspended.v1"],
    )
    .await;
    let id = path.rsplit('/').next().unwrap().to_string();
    // A tenant admin signs in to the Tenant console.
    let (cookie, csrf, _) =
        crate::identity::tenant_admin_session(&app, &t, "Ana Lima", "ana@acme.example").await;
    let base = format!("/tenant/{t}/notification-channels");
    let page = || {
        let (app, cookie, base) = (&app, &cookie, &base);
        async move {
            let res = client()
                .get(app.url(base))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.text().await.unwrap()
        }
    };
    let submit = |action: &'static str, body: String| {
        let (app, cookie, base, id) = (&app, &cookie, &base, &id);
        async move {
            client()
                .post(app.url(&format!("{base}/{id}/{action}")))
                .header("cookie", cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let html = page().await;
    check_page(&html, &base, &id, "#acme-ops", "unknown", &csrf);

    // Test through the form: the message reaches the receiver and the dot turns green.
    let res = submit("test", form(&[("csrf", &csrf)])).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), base);
    let got = rx.wait_for("acme", 1).await;
    assert!(
        body(&got[0])["text"]
            .as_str()
            .unwrap()
            .contains("Test message for #acme-ops"),
        "{got:?}"
    );
    check_page(&page().await, &base, &id, "#acme-ops", "healthy", &csrf);
    // Without the token: refused, nothing sent.
    let res = submit("test", "csrf=".into()).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(rx.of("acme").await.len(), 1);
    // Reconnect through the form.
    let res = submit("reconnect", form(&[("csrf", &csrf)])).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let actions = app.actions(&format!("tenant:{t}")).await;
    for a in [
        "notification_channel.tested.v1",
        "notification_channel.reconnected.v1",
    ] {
        assert!(actions.contains(&a.to_string()), "{a}: {actions:?}");
    }
    // Another tenant's channel is not on this page.
    let app_id = app.app("Other").await;
    let other = app.tenant(&app_id, "Beta").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    slack(
        &app,
        &other,
        "#beta-only",
        &rx.url("beta"),
        &["tenant.suspended.v1"],
    )
    .await;
    let html = page().await;
    assert!(!html.contains("#beta-only"), "{html}");
}
