//! The on-prem console pages (operator guide §9): the control plane's installs registry, register
//! form and license download, install detail, silence shown red, and the bundle upload; the
//! appliance's sync page (bundle download, acknowledge) and license page. Each page is 404 on
//! the other role, like its API.

use chrono::Duration as Span;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::console::{Session, operator, signin};
use crate::helpers::TestApp;
use crate::onprem::{appliance, beat, wait_for};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn tech(app: &TestApp) -> Session {
    operator(app, "tess", "technical_admin").await;
    signin(app, "tess", "tess-password-123").await
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn upload(app: &TestApp, s: &Session, bytes: Vec<u8>, with_csrf: bool) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new();
    if with_csrf {
        form = form.text("csrf", s.csrf.clone());
    }
    form = form.part(
        "bundle",
        reqwest::multipart::Part::bytes(bytes).file_name("heartbeats.json"),
    );
    client()
        .post(app.url("/platform/installs/bundles"))
        .header("cookie", format!("tenantry_session={}", s.cookie))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_console_registers_an_install_and_shows_it_red_when_silent() {
    let cp = TestApp::spawn().await;
    let s = tech(&cp).await;
    let html = s.get(&cp, "/platform/installs").await.text().await.unwrap();
    assert!(html.contains("No install matches"), "empty state");
    assert!(
        html.contains("href=\"/platform/installs\""),
        "the sidebar shows Installs on a control plane"
    );
    assert!(
        !html.contains("href=\"/platform/sync\""),
        "and not the appliance's pages"
    );

    // Register through the form: the license is shown, and downloadable.
    let res = s
        .post(
            &cp,
            "/platform/installs",
            &[("customer", "Nordic Rail"), ("max_tenants", "25")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Nordic Rail registered") && page.contains("&quot;license&quot;")
            || page.contains("\"license\""),
        "{page}"
    );
    let (_, list) = cp.get("/api/installs").await;
    let id = list["items"][0]["install_id"].as_str().unwrap().to_string();
    // The enrollment secret is on the page once; the download never carries it.
    let secret = page
        .split("id=\"enrollment-secret\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the registration page shows the enrollment secret")
        .to_string();
    assert!(secret.starts_with("tenroll_"), "{secret}");
    let file = s
        .get(&cp, &format!("/platform/installs/{id}/license.json"))
        .await;
    assert!(
        file.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let license: Value = file.json().await.unwrap();
    assert!(!license.to_string().contains(&secret));
    crate::onprem::remember_secret(&license, &secret);
    assert_eq!(license["license"]["customer"], "Nordic Rail");
    assert_eq!(license["license"]["limits"]["max_tenants"], 25);
    let bad = s
        .post(
            &cp,
            "/platform/installs",
            &[("customer", ""), ("max_tenants", "lots")],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // An appliance delivers a heartbeat: healthy, with its history on the detail page.
    let url = format!("http://{}", cp.addr);
    let app = appliance(&cp, &license, Some(url), |_| {}).await;
    beat(&app).await;
    wait_for(&cp, &format!("/api/installs/{id}"), |v| {
        v["status"] == "healthy"
    })
    .await;
    let list_html = s.get(&cp, "/platform/installs").await.text().await.unwrap();
    assert!(
        list_html.contains(">healthy<") && !list_html.contains("class=\"broken\""),
        "{list_html}"
    );
    let detail = s
        .get(&cp, &format!("/platform/installs/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        detail.contains("Heartbeat history") && detail.contains("<td>1</td>"),
        "the first heartbeat is listed"
    );
    assert!(detail.contains("Witnessed audit heads") && detail.contains("platform"));

    // Silence: three missed intervals later the install is red.
    cp.clock.advance(Span::hours(1));
    wait_for(&cp, &format!("/api/installs/{id}"), |v| {
        v["status"] == "silent"
    })
    .await;
    // An hour idle ended the console session too: sign in again.
    let s = signin(&cp, "tess", "tess-password-123").await;
    let list_html = s.get(&cp, "/platform/installs").await.text().await.unwrap();
    assert!(
        list_html.contains("class=\"broken\"") && list_html.contains(">silent<"),
        "{list_html}"
    );
    let detail = s
        .get(&cp, &format!("/platform/installs/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        detail.contains("No heartbeat since"),
        "the detail says what is wrong"
    );

    // The appliance's pages do not exist on a control plane.
    assert_eq!(
        s.get(&cp, "/platform/sync").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get(&cp, "/platform/license").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_air_gap_bundle_goes_from_the_appliance_console_to_the_control_plane_console() {
    let cp = TestApp::spawn().await;
    let (s, v) = cp
        .post(
            "/api/installs",
            json!({"customer": "Ministry of Ports", "air_gapped": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["install_id"].as_str().unwrap().to_string();
    crate::onprem::remember(&v);
    let app = appliance(&cp, &v["license"], None, |_| {}).await;
    beat(&app).await;
    app.clock.advance(Span::minutes(5));
    beat(&app).await;

    // The appliance's console: the outbox, the license, a bundle to download.
    let a = tech(&app).await;
    let sync = a.get(&app, "/platform/sync").await.text().await.unwrap();
    assert!(
        sync.contains("air_gapped") && sync.contains("Download bundle (2 heartbeats)"),
        "{sync}"
    );
    let license = a.get(&app, "/platform/license").await.text().await.unwrap();
    assert!(
        license.contains(">valid<") && license.contains("Ministry of Ports"),
        "{license}"
    );
    let bundle = a.get(&app, "/platform/sync/bundle").await;
    assert_eq!(bundle.status(), StatusCode::OK);
    let bytes = bundle.bytes().await.unwrap().to_vec();
    assert_eq!(
        a.get(&app, "/platform/installs").await.status(),
        StatusCode::NOT_FOUND
    );

    // The control plane's console: an upload without the form's CSRF token is refused.
    let c = tech(&cp).await;
    assert_eq!(
        upload(&cp, &c, bytes.clone(), false).await.status(),
        StatusCode::FORBIDDEN
    );
    // An altered bundle is refused whole.
    let altered = String::from_utf8(bytes.clone())
        .unwrap()
        .replacen("\"seq\":1", "\"seq\":9", 1)
        .into_bytes();
    assert_ne!(altered, bytes);
    let res = upload(&cp, &c, altered, true).await;
    assert_eq!(
        (res.status(), location(&res)),
        (StatusCode::SEE_OTHER, "/platform/installs".to_string())
    );
    assert_eq!(
        cp.get(&format!("/api/installs/{id}")).await.1["heartbeats_received"],
        0
    );
    // The real one imports, once.
    let res = upload(&cp, &c, bytes.clone(), true).await;
    assert_eq!(location(&res), format!("/platform/installs/{id}"));
    assert_eq!(
        cp.get(&format!("/api/installs/{id}")).await.1["heartbeats_received"],
        2
    );
    let res = upload(&cp, &c, bytes, true).await;
    assert_eq!(location(&res), format!("/platform/installs/{id}"));
    assert_eq!(
        cp.get(&format!("/api/installs/{id}")).await.1["heartbeats_received"],
        2,
        "idempotent"
    );

    // Back on the appliance, acknowledge what was imported.
    let res = a
        .post(&app, "/platform/sync/ack", &[("through", "2")])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, sync) = app.get("/api/sync").await;
    assert_eq!(sync["outbox"]["depth"], 0);
}
