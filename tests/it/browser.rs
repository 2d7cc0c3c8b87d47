//! End to end in a real headless browser: Debian's `chromium` driven through `chromedriver`
//! (WebDriver) with fantoccini. `.ci/run` installs both when missing.
//!
//! The test signs in, provisions a tenant through the form, suspends it with a reason, and finds
//! both events on the audit page. It saves screenshots of the dashboard and the tenant detail to
//! `target/screenshots/`, and to `docs/screenshots/` when `UPDATE_SCREENSHOTS=1`.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tenantry::clock::Clock;

use crate::helpers::{TestApp, test_config};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_browser() -> (Driver, Client) {
    let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect(
            "chromedriver is missing: install Debian's chromium and chromium-driver (.ci/run does)",
        );
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver(child);
    let profile = tempfile::tempdir().unwrap().keep();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1440,1000", format!("--user-data-dir={}", profile.display())]
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => return (driver, c),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("could not start a WebDriver session with chromedriver on port {port}");
}

async fn save_screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join(name), &png).unwrap();
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(name), &png).unwrap();
    }
}

async fn fill(c: &Client, css: &str, text: &str) {
    let el = c.find(Locator::Css(css)).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

async fn body_text(c: &Client) -> String {
    c.find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_provisions_and_suspends_a_tenant_in_a_real_browser() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(&dir.path().join("data"));
    config.demo = true;
    // The demo replays 90 days before "now"; a manual clock at the real time keeps pages fresh.
    let app = TestApp::spawn_with(
        dir,
        config,
        Clock::manual(tenantry::clock::truncate_micros(chrono::Utc::now())),
    )
    .await;
    let creds =
        std::fs::read_to_string(app.data_dir().join(tenantry::demo::CREDENTIALS_FILE)).unwrap();
    let alice = creds.lines().find(|l| l.starts_with("alice ")).unwrap();
    let password = alice.split_whitespace().nth(2).unwrap().to_string();

    let (_driver, c) = start_browser().await;
    let base = format!("http://{}", app.addr);
    c.goto(&format!("{base}/platform")).await.unwrap();
    assert!(
        c.current_url().await.unwrap().path().starts_with("/signin"),
        "unauthenticated visits go to sign-in"
    );
    fill(&c, "#username", "alice").await;
    fill(&c, "#password", &password).await;
    c.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/platform");
    let home = body_text(&c).await;
    assert!(
        home.contains("Platform dashboard") && home.contains("Tenants created per week"),
        "{home}"
    );
    save_screenshot(&c, "home.png").await;

    // Provision through the guided form.
    c.goto(&format!("{base}/platform/tenants/new"))
        .await
        .unwrap();
    fill(&c, "#display_name", "Browser Test Bank").await;
    c.find(Locator::Css("#region"))
        .await
        .unwrap()
        .select_by_value("eu-west-1")
        .await
        .unwrap();
    c.find(Locator::Css("input[name=isolation_tier][value=P]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    fill(&c, "#contact_email", "it@browser-test-bank.example").await;
    fill(&c, "#trial_days", "30").await;
    c.find(Locator::Css("form.form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/platform/tenants");
    let list = body_text(&c).await;
    assert!(list.contains("Browser Test Bank was provisioned"), "{list}");

    // Open it and suspend it with a reason.
    c.find(Locator::LinkText("Browser Test Bank"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let detail_url = c.current_url().await.unwrap();
    let tenant_id = detail_url.path().rsplit('/').next().unwrap().to_string();
    c.find(Locator::Css("form[action$='/lifecycle/activate'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    fill(
        &c,
        "form[action$='/lifecycle/suspend'] input[name=reason]",
        "non-payment: invoice 2026-118 overdue",
    )
    .await;
    c.find(Locator::Css("form[action$='/lifecycle/suspend'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let detail = body_text(&c).await;
    assert!(
        detail.contains("Suspended: Browser Test Bank is now suspended."),
        "{detail}"
    );
    assert!(detail.contains("non-payment: invoice 2026-118 overdue"));
    save_screenshot(&c, "tenant-detail.png").await;

    // Both events are on the audit page.
    c.goto(&format!("{base}/platform/audit?chain={tenant_id}"))
        .await
        .unwrap();
    let audit = body_text(&c).await;
    assert!(audit.contains("tenant.created.v1"), "{audit}");
    assert!(audit.contains("tenant.suspended.v1"), "{audit}");
    assert!(audit.contains("alice"));
    c.close().await.unwrap();
}
