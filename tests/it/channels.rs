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
