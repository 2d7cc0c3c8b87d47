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

/// Clicks `css` and waits until the browser has left the current page, reached a page whose
/// path is `path`, and finished loading it (a click returns before the navigation it starts).
async fn click_to(c: &Client, css: &str, path: &str) {
    let before = c.find(Locator::Css("body")).await.unwrap();
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    for _ in 0..300 {
        let left = before.tag_name().await.is_err();
        let here = c.current_url().await.is_ok_and(|u| u.path() == path);
        let loaded = c
            .execute("return document.readyState", vec![])
            .await
            .is_ok_and(|v| v == "complete");
        if left && here && loaded {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "clicking {css} did not lead to {path} (at {:?})",
        c.current_url().await.map(|u| u.to_string())
    );
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
    let at = c.current_url().await.unwrap();
    assert_eq!(at.path(), "/signin", "unauthenticated visits go to sign-in");
    fill(&c, "#username", "alice").await;
    fill(&c, "#password", &password).await;
    click_to(&c, "form button[type=submit]", "/platform").await;
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
    click_to(&c, "form.form button[type=submit]", "/platform/tenants").await;
    let list = body_text(&c).await;
    assert!(list.contains("Browser Test Bank was provisioned"), "{list}");

    // Open it, activate it, and suspend it with a reason.
    let link = c
        .find(Locator::LinkText("Browser Test Bank"))
        .await
        .unwrap();
    let href = link.attr("href").await.unwrap().unwrap();
    let tenant_id = href.rsplit('/').next().unwrap().to_string();
    click_to(&c, &format!("a[href='{href}']"), &href).await;
    click_to(&c, "form[action$='/lifecycle/activate'] button", &href).await;
    fill(
        &c,
        "form[action$='/lifecycle/suspend'] input[name=reason]",
        "non-payment: invoice 2026-118 overdue",
    )
    .await;
    click_to(&c, "form[action$='/lifecycle/suspend'] button", &href).await;
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
