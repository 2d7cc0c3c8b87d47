//! End to end in a real headless browser: Debian's `chromium` driven through `chromedriver`
//! (WebDriver) with fantoccini. `.ci/run` installs both when missing.
//!
//! One test signs in, provisions a tenant through the form, suspends it with a reason, and finds
//! both events on the audit page. Another invites a tenant's admin from the tenant detail, who
//! sets a password, signs in to the Tenant console and issues an API key shown once; then the
//! operator visits. They save screenshots (dashboard, tenant detail, the Tenant console's home
//! and API keys, the tenant detail's panels) to `target/screenshots/`, and to
//! `docs/screenshots/` when `UPDATE_SCREENSHOTS=1`.

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

/// The value of the input `css`.
async fn value_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_is_invited_signs_in_and_issues_a_key_shown_once() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = test_config(&dir.path().join("data"));
    let app = TestApp::spawn_with(
        dir,
        config,
        Clock::manual(tenantry::clock::truncate_micros(chrono::Utc::now())),
    )
    .await;
    let app_id = app.app("Projex Work").await;
    let t = app.tenant(&app_id, "Kestrel Analytics").await;
    let tenant = t["id"].as_str().unwrap().to_string();
    crate::console::operator(&app, "alice", "super_admin").await;
    let (_driver, c) = start_browser().await;
    let base = format!("http://{}", app.addr);

    // The operator invites the tenant's first admin from the tenant detail; the link is shown
    // once, with a copy button.
    c.goto(&format!("{base}/signin")).await.unwrap();
    fill(&c, "#username", "alice").await;
    fill(&c, "#password", "alice-password-123").await;
    click_to(&c, "form button[type=submit]", "/platform").await;
    let detail = format!("/platform/tenants/{tenant}");
    c.goto(&format!("{base}{detail}")).await.unwrap();
    fill(&c, "#members input[name=display_name]", "Rosa Lindgren").await;
    fill(&c, "#members input[name=email]", "rosa@kestrel.example").await;
    click_to(
        &c,
        "#members form button[type=submit]",
        &format!("/platform/tenants/{tenant}/personas"),
    )
    .await;
    let link = value_of(&c, "#invite-url").await;
    assert!(
        link.starts_with(&format!("{base}/tenant/{tenant}/invite/")),
        "{link}"
    );
    assert!(
        c.find(Locator::Css("button[data-copy=invite-url]"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap(),
        "the copy button appears with the script"
    );

    // Rosa opens the link, sets her password, and signs in to her tenant's console.
    c.goto(&link).await.unwrap();
    assert!(body_text(&c).await.contains("Welcome, Rosa Lindgren"));
    fill(&c, "#password", "rosa-strong-password-1").await;
    click_to(
        &c,
        "form button[type=submit]",
        &format!("/tenant/{tenant}/signin"),
    )
    .await;
    fill(&c, "#email", "rosa@kestrel.example").await;
    fill(&c, "#password", "rosa-strong-password-1").await;
    click_to(&c, "form button[type=submit]", &format!("/tenant/{tenant}")).await;
    let home = body_text(&c).await;
    assert!(
        home.contains("Day-1 checklist") && home.contains("Kestrel Analytics"),
        "{home}"
    );

    // A service persona for the CI, then its key: shown once.
    c.goto(&format!("{base}/tenant/{tenant}/members"))
        .await
        .unwrap();
    c.find(Locator::Css("#kind"))
        .await
        .unwrap()
        .select_by_value("service")
        .await
        .unwrap();
    fill(&c, "#display_name", "CI pipeline").await;
    c.find(Locator::Css(
        "form[action$='/members'] input[name=roles][value=integration]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    click_to(
        &c,
        "form[action$='/members'] button.primary",
        &format!("/tenant/{tenant}/members"),
    )
    .await;
    assert!(
        body_text(&c)
            .await
            .contains("Added the service persona CI pipeline")
    );
    c.goto(&format!("{base}/tenant/{tenant}/api-keys"))
        .await
        .unwrap();
    fill(&c, "#key-name", "ci-pipeline").await;
    for scope in ["usage.write", "metrics.read"] {
        c.find(Locator::Css(&format!(
            "input[name=scopes][value='{scope}']"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    }
    click_to(
        &c,
        "form[action$='/api-keys'] button.primary",
        &format!("/tenant/{tenant}/api-keys"),
    )
    .await;
    let key = value_of(&c, "#new-key").await;
    assert!(key.starts_with("tk_"), "{key}");
    let page = body_text(&c).await;
    assert!(
        page.contains("Key issued: ci-pipeline") && page.contains("no expiry"),
        "{page}"
    );
    save_screenshot(&c, "tenant-api-keys.png").await;
    // The key works, and is never shown again.
    let (s, _) = app
        .send(
            reqwest::Method::GET,
            &format!("/api/tenants/{tenant}/usage-check-not-a-route"),
            None,
            Some(&key),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::NOT_FOUND);
    let (s, who) = app
        .send(reqwest::Method::GET, "/api/whoami", None, Some(&key))
        .await;
    assert_eq!(s, reqwest::StatusCode::OK);
    assert_eq!(who["tenant_id"], tenant.as_str());
    c.goto(&format!("{base}/tenant/{tenant}/api-keys"))
        .await
        .unwrap();
    let source = c.source().await.unwrap();
    assert!(!source.contains(&key), "the key is shown once");
    assert!(source.contains("ci-pipeline"));
    c.goto(&format!("{base}/tenant/{tenant}")).await.unwrap();
    save_screenshot(&c, "tenant-home.png").await;
    click_to(
        &c,
        "form[action$='/signout'] button",
        &format!("/tenant/{tenant}/signin"),
    )
    .await;

    // The operator's tenant detail shows the members, the business units and the key without
    // expiry; Visit tenant opens the console read-only, with the banner.
    c.goto(&format!("{base}{detail}")).await.unwrap();
    let page = body_text(&c).await;
    assert!(
        page.contains("1 without expiry") && page.contains("ci-pipeline"),
        "{page}"
    );
    c.execute(
        "document.getElementById('members').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    save_screenshot(&c, "tenant-panels.png").await;
    click_to(
        &c,
        "#visits form button[type=submit]",
        &format!("/tenant/{tenant}"),
    )
    .await;
    let visit = body_text(&c).await;
    assert!(
        visit.contains("Alice is visiting Kestrel Analytics read-only until")
            || visit.contains("alice is visiting Kestrel Analytics read-only until"),
        "{visit}"
    );
    c.close().await.unwrap();
}
