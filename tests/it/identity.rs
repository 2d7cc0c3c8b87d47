//! Tenant identity (issue 9; tenant admin guide §2, §3, §10; F21.05.05): members and business
//! units, invites over a real SMTP sink, Tenant-console sessions, API keys with rotation grace
//! and instant revoke, tenant tokens checked by PyJWT against the JWKS, tenant isolation proven
//! by a matrix generated from the route table, and Visit tenant.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenantry::app::routes;
use tenantry::clock::Clock;
use tenantry::rbac::Access;

use crate::console::{client, form, hidden, operator, set_cookie, signin};
use crate::helpers::{TOKEN, TestApp, t0, test_config};

/// One tenant with a service admin (key with `tenant.admin`), a human member, a business unit.
pub(crate) struct Tenant {
    pub(crate) id: String,
    name: String,
    admin: String,
    pub(crate) key: String,
    key_id: String,
    member: String,
    bu: String,
}

async fn ok(app: &TestApp, method: Method, path: &str, body: Value) -> Value {
    let (s, v) = app
        .send(method.clone(), path, Some(body), Some(TOKEN))
        .await;
    assert!(s.is_success(), "{method} {path}: {s} {v}");
    v
}

pub(crate) async fn tenant(app: &TestApp, app_id: &str, name: &str) -> Tenant {
    let t = app.tenant(app_id, name).await;
    let id = t["id"].as_str().unwrap().to_string();
    let bu = ok(
        app,
        Method::POST,
        &format!("/api/tenants/{id}/business-units"),
        json!({"name": format!("{name} Engineering"), "kind": "team"}),
    )
    .await;
    let admin = ok(
        app,
        Method::POST,
        &format!("/api/tenants/{id}/personas"),
        json!({"kind": "service", "display_name": format!("{name} automation"), "roles": ["tenant_admin"]}),
    )
    .await;
    let member = ok(
        app,
        Method::POST,
        &format!("/api/tenants/{id}/personas"),
        json!({"kind": "human", "display_name": format!("{name} Person"),
               "email": format!("person@{}.example", name.to_lowercase().replace(' ', "")),
               "roles": ["member"], "bu_id": bu["id"]}),
    )
    .await;
    let key = ok(
        app,
        Method::POST,
        &format!("/api/tenants/{id}/api-keys"),
        json!({"persona_id": admin["id"], "name": "admin-key", "scopes": ["tenant.admin"],
               "expires_at": "2027-12-31T00:00:00Z"}),
    )
    .await;
    Tenant {
        id,
        name: name.to_string(),
        admin: admin["id"].as_str().unwrap().to_string(),
        key: key["key"].as_str().unwrap().to_string(),
        key_id: key["id"].as_str().unwrap().to_string(),
        member: member["id"].as_str().unwrap().to_string(),
        bu: bu["id"].as_str().unwrap().to_string(),
    }
}

async fn as_key(
    app: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.send(method, path, body, Some(key)).await
}

async fn token_for(app: &TestApp, key: &str) -> String {
    let (s, v) = as_key(app, key, Method::POST, "/api/auth/token", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 900);
    v["access_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_roles_and_business_units_follow_the_guide() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let t = app.tenant(&app_id, "Umbra Studio").await;
    let id = t["id"].as_str().unwrap();
    // Provisioning seeded the app's default role templates, on the tenant's chain.
    let (_, roles) = app.get(&format!("/api/tenants/{id}/roles")).await;
    let names: Vec<&str> = roles["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "auditor",
            "billing_admin",
            "integration",
            "member",
            "tenant_admin"
        ]
    );
    assert_eq!(roles["items"][4]["scopes"], json!(["tenant.admin"]));
    assert!(
        app.actions(&format!("tenant:{id}"))
            .await
            .contains(&"tenant.roles.seeded.v1".to_string())
    );

    // An app with its own catalogue seeds that one.
    let (s, custom) = app
        .post(
            "/api/apps",
            json!({"name": "Projex Field", "role_templates": [
            {"name": "owner", "scopes": ["tenant.admin"]},
            {"name": "dispatcher", "scopes": ["members.read", "usage.write"]}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{custom}");
    let t2 = app.tenant(custom["id"].as_str().unwrap(), "Field Co").await;
    let (_, r2) = app
        .get(&format!(
            "/api/tenants/{}/roles",
            t2["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r2["items"].as_array().unwrap().len(), 2, "{r2}");
    let (s, bad) = app
        .post("/api/apps", json!({"name": "No Admin", "role_templates": [{"name": "viewer", "scopes": ["members.read"]}]}))
        .await;
    assert_eq!(
        (s, bad["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("role_templates"))
    );

    // The business-unit tree.
    let eng = ok(
        &app,
        Method::POST,
        &format!("/api/tenants/{id}/business-units"),
        json!({"name": "Engineering", "kind": "team"}),
    )
    .await;
    let emea = ok(
        &app,
        Method::POST,
        &format!("/api/tenants/{id}/business-units"),
        json!({"name": "EMEA", "kind": "region"}),
    )
    .await;
    let nordics = ok(
        &app,
        Method::POST,
        &format!("/api/tenants/{id}/business-units"),
        json!({"name": "Nordics", "kind": "region", "parent_id": emea["id"]}),
    )
    .await;
    // A move under its own descendant is refused and changes nothing.
    let before = app.total_entries().await;
    let (s, v) = app
        .patch(
            &format!(
                "/api/tenants/{id}/business-units/{}",
                emea["id"].as_str().unwrap()
            ),
            json!({"parent_id": nordics["id"]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(app.total_entries().await, before);

    // Personas: a human is invited (link shown once), a service is active.
    let (s, ana) = app
        .post(
            &format!("/api/tenants/{id}/personas"),
            json!({
        "kind": "human", "display_name": "Ana Lima", "email": "Ana@Umbra.example",
        "roles": ["tenant_admin"], "bu_id": eng["id"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ana}");
    assert_eq!(ana["state"], "invited");
    assert_eq!(ana["email"], "ana@umbra.example");
    assert!(
        ana["invite_url"]
            .as_str()
            .unwrap()
            .contains(&format!("/tenant/{id}/invite/"))
    );
    assert_eq!(
        ana["invite_emailed"], false,
        "no [smtp]: the link is handed over by hand"
    );
    let (s, ci) = app
        .post(
            &format!("/api/tenants/{id}/personas"),
            json!({
        "kind": "service", "display_name": "CI", "roles": ["integration"]}),
        )
        .await;
    assert_eq!(
        (s, ci["state"].as_str(), ci["invite_url"].clone()),
        (StatusCode::CREATED, Some("active"), Value::Null)
    );
    // Refusals: a taken email, an unknown role, a service with an email, a human without one.
    for (body, field) in [
        (
            json!({"kind": "human", "display_name": "Dup", "email": "ana@umbra.example", "roles": ["member"]}),
            "email_taken",
        ),
        (
            json!({"kind": "human", "display_name": "X", "email": "x@umbra.example", "roles": ["wizard"]}),
            "roles",
        ),
        (
            json!({"kind": "service", "display_name": "X", "email": "x@umbra.example", "roles": ["member"]}),
            "email",
        ),
        (
            json!({"kind": "human", "display_name": "X", "roles": ["member"]}),
            "email",
        ),
    ] {
        let (s, v) = app.post(&format!("/api/tenants/{id}/personas"), body).await;
        let got = v["errors"][0]["field"]
            .as_str()
            .or(v["code"].as_str())
            .unwrap()
            .to_string();
        assert!(
            s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::CONFLICT,
            "{v}"
        );
        assert_eq!(got, field, "{v}");
    }
    assert_eq!(
        app.total_entries().await,
        before + 2,
        "refusals wrote nothing"
    );

    // Filters: kind, state, bu_id, role.
    let list = |q: &str| {
        let app = &app;
        let q = q.to_string();
        async move {
            let (s, v) = app.get(&format!("/api/tenants/{id}/personas?{q}")).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["display_name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("kind=service").await, ["CI"]);
    assert_eq!(list("state=invited").await, ["Ana Lima"]);
    assert_eq!(
        list(&format!("bu_id={}", eng["id"].as_str().unwrap())).await,
        ["Ana Lima"]
    );
    assert_eq!(list("role=integration").await, ["CI"]);
    let (s, v) = app
        .get(&format!("/api/tenants/{id}/personas?state=bogus"))
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );

    // A BU with members cannot be deleted; moved out, it can.
    let eng_path = format!(
        "/api/tenants/{id}/business-units/{}",
        eng["id"].as_str().unwrap()
    );
    let (s, v) = app.send(Method::DELETE, &eng_path, None, Some(TOKEN)).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("business_unit_in_use")),
        "{v}"
    );
    let (s, v) = app
        .send(
            Method::DELETE,
            &format!(
                "/api/tenants/{id}/business-units/{}",
                emea["id"].as_str().unwrap()
            ),
            None,
            Some(TOKEN),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("business_unit_in_use")),
        "a BU with children: {v}"
    );
    let ana_path = format!("/api/tenants/{id}/personas/{}", ana["id"].as_str().unwrap());
    let (s, moved) = app
        .patch(
            &ana_path,
            json!({"bu_id": nordics["id"], "roles": ["member", "auditor"]}),
        )
        .await;
    assert_eq!(
        (s, moved["bu_id"].clone()),
        (StatusCode::OK, nordics["id"].clone()),
        "{moved}"
    );
    let (s, _) = app.send(Method::DELETE, &eng_path, None, Some(TOKEN)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let chain = app.chain(&format!("tenant:{id}")).await;
    let updated = chain
        .iter()
        .find(|e| e["action"] == "persona.updated.v1")
        .unwrap();
    assert_eq!(
        updated["data"]["changes"]["roles"]["to"],
        json!(["member", "auditor"])
    );
    assert_eq!(updated["actor"]["id"], "admin-ops-token");

    // Revoke; the operators' cross-tenant list sees every tenant's personas.
    let (s, r) = app.post(&format!("{ana_path}/revoke"), json!({})).await;
    assert_eq!((s, r["state"].as_str()), (StatusCode::OK, Some("revoked")));
    let (_, all) = app.get("/api/personas?state=revoked").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    // The email is free again for a new invite.
    let (s, _) = app.post(&format!("/api/tenants/{id}/personas"), json!({
        "kind": "human", "display_name": "Ana Lima", "email": "ana@umbra.example", "roles": ["member"]})).await;
    assert_eq!(s, StatusCode::CREATED);
}

/// The SMTP sink: Python's aiosmtpd, saving each message in a directory.
pub struct Sink {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Sink {
    pub fn start() -> Sink {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the aiosmtpd sink (.ci/run installs aiosmtpd)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "the sink did not start (is aiosmtpd installed?)"
        );
        Sink { child, port, dir }
    }

    pub async fn wait_for_message(&self, to: &str) -> String {
        for _ in 0..100 {
            for e in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
                if e.path().extension().is_some_and(|x| x == "eml") {
                    let m = std::fs::read_to_string(e.path()).unwrap();
                    if m.contains(&format!("<{to}>")) {
                        return m;
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("no message reached the SMTP sink");
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A human tenant admin `display_name <email>` of `tenant`, invited, accepted (password
/// `<local part>-strong-password-1`) and signed in: its session's cookie header, CSRF token
/// and persona.
pub async fn tenant_admin_session(
    app: &TestApp,
    tenant: &str,
    display_name: &str,
    email: &str,
) -> (String, String, Value) {
    let (s, p) = app
        .post(
            &format!("/api/tenants/{tenant}/personas"),
            json!({"kind": "human", "display_name": display_name, "email": email, "roles": ["tenant_admin"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let invite = p["invite_url"]
        .as_str()
        .unwrap()
        .split(&app.addr.to_string())
        .nth(1)
        .unwrap()
        .to_string();
    let password = format!("{}-strong-password-1", email.split('@').next().unwrap());
    let res = client()
        .post(app.url(&invite))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("password", &password)]))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success() || res.status().is_redirection());
    let (cookie, csrf) = tenant_signin(app, tenant, email, &password).await;
    (format!("tenantry_tenant_session={cookie}"), csrf, p)
}

/// Signs a member in to tenant `tenant`'s console through the real form; returns the session
/// cookie and the CSRF token of its forms.
pub async fn tenant_signin(
    app: &TestApp,
    tenant: &str,
    email: &str,
    password: &str,
) -> (String, String) {
    let c = client();
    let page = c
        .get(app.url(&format!("/tenant/{tenant}/signin")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let pre = set_cookie(&page, "tenantry_tenant_signin").unwrap();
    let csrf = hidden(&page.text().await.unwrap(), "csrf").unwrap();
    let res = c
        .post(app.url(&format!("/tenant/{tenant}/signin")))
        .header("cookie", format!("tenantry_tenant_signin={pre}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("email", email),
            ("password", password),
            ("csrf", &csrf),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
    let attrs: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session = attrs
        .iter()
        .find(|a| a.starts_with("tenantry_tenant_session="))
        .unwrap();
    assert!(
        session.contains(&format!("Path=/tenant/{tenant}"))
            && session.contains("HttpOnly")
            && session.contains("SameSite=Strict"),
        "{session}"
    );
    let cookie = set_cookie(&res, "tenantry_tenant_session").unwrap();
    let home = c
        .get(app.url(&format!("/tenant/{tenant}")))
        .header("cookie", format!("tenantry_tenant_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    let csrf = hidden(&home.text().await.unwrap(), "csrf").unwrap();
    (cookie, csrf)
}

async fn get_with(app: &TestApp, cookie: &str, path: &str) -> reqwest::Response {
    client()
        .get(app.url(path))
        .header("cookie", cookie.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_mailed_over_smtp_signs_in_to_its_tenant_only() {
    let sink = Sink::start();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(&dir.path().join("data"));
    config.smtp = Some(tenantry::config::SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(sink.port),
        tls: tenantry::config::SmtpTls::None,
        from: "Tenantry <no-reply@tenantry.test>".into(),
        username: None,
        password: None,
        timeout_secs: Some(5),
    });
    config.public_url = Some("https://tenantry.example.com".into());
    let app = TestApp::spawn_with(dir, config, Clock::manual(t0())).await;
    let app_id = app.app("Projex Work").await;
    let a = tenant(&app, &app_id, "Alpha Co").await;
    let b = tenant(&app, &app_id, "Beta Co").await;
    let (s, ana) = app.post(&format!("/api/tenants/{}/personas", a.id), json!({
        "kind": "human", "display_name": "Ana Lima", "email": "ana@alpha.example", "roles": ["tenant_admin"]})).await;
    assert_eq!(s, StatusCode::CREATED, "{ana}");
    assert_eq!(ana["invite_emailed"], true);
    let shown = ana["invite_url"].as_str().unwrap().to_string();
    assert!(
        shown.starts_with(&format!(
            "https://tenantry.example.com/tenant/{}/invite/",
            a.id
        )),
        "{shown}"
    );

    // The mail reached the sink, addressed to Ana, with the same link.
    let mail = sink.wait_for_message("ana@alpha.example").await;
    assert!(
        mail.contains("To: \"Ana Lima\" <ana@alpha.example>")
            || mail.contains("To: Ana Lima <ana@alpha.example>"),
        "{mail}"
    );
    assert!(
        mail.contains("Subject: You are invited to Alpha Co"),
        "{mail}"
    );
    let unfolded = mail
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let link = unfolded
        .split_whitespace()
        .find(|w| w.starts_with("https://tenantry.example.com/tenant/"))
        .unwrap()
        .to_string();
    assert_eq!(link, shown);
    let path = link
        .trim_start_matches("https://tenantry.example.com")
        .to_string();

    // The invite page; a weak password is refused; then the password is set.
    let page = client().get(app.url(&path)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Welcome, Ana Lima"));
    let post = |pw: &'static str| {
        let url = app.url(&path);
        async move {
            client()
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&[("password", pw)]))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        post("short").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let done = post("ana-strong-password-1").await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        done.headers()["location"],
        format!("/tenant/{}/signin", a.id)
    );
    // Single use.
    assert_eq!(
        post("ana-strong-password-2").await.status(),
        StatusCode::GONE
    );

    // Sign in: the session works on /tenant/{A} only.
    let (cookie, _) =
        tenant_signin(&app, &a.id, "ana@alpha.example", "ana-strong-password-1").await;
    let c = format!("tenantry_tenant_session={cookie}");
    let home = get_with(&app, &c, &format!("/tenant/{}", a.id)).await;
    assert_eq!(home.status(), StatusCode::OK);
    let html = home.text().await.unwrap();
    assert!(
        html.contains("Day-1 checklist") && html.contains("Alpha Co"),
        "{html}"
    );
    let other = get_with(&app, &c, &format!("/tenant/{}", b.id)).await;
    assert_eq!(
        other.status(),
        StatusCode::SEE_OTHER,
        "another tenant's console is not signed in"
    );
    assert!(
        other.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(&format!("/tenant/{}/signin", b.id))
    );
    let platform = get_with(&app, &c, "/platform").await;
    assert_eq!(
        platform.status(),
        StatusCode::SEE_OTHER,
        "a tenant session is never an operator's"
    );
    assert!(
        platform.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/signin")
    );
    let api = get_with(&app, &c, "/api/tenants").await;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    // The chain names Ana as the actor of her own activation and sign-in.
    let chain = app.chain(&format!("tenant:{}", a.id)).await;
    let signed_in = chain
        .iter()
        .find(|e| e["action"] == "persona.signed_in.v1")
        .unwrap();
    assert_eq!(
        signed_in["actor"],
        json!({"kind": "persona", "id": ana["id"]})
    );

    // Revoked, her session stops on the next request.
    let (s, _) = app
        .post(
            &format!(
                "/api/tenants/{}/personas/{}/revoke",
                a.id,
                ana["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let after = get_with(&app, &c, &format!("/tenant/{}", a.id)).await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    drop(sink);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_with_a_ten_minute_grace_and_revoke_at_once() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let a = tenant(&app, &app_id, "Alpha Co").await;
    let personas = format!("/api/tenants/{}/personas", a.id);
    let (s, _) = as_key(&app, &a.key, Method::GET, &personas, None).await;
    assert_eq!(s, StatusCode::OK);
    // The list never shows a secret, only its prefix; keys without expiry are flagged.
    let (_, keys) = app.get(&format!("/api/tenants/{}/api-keys", a.id)).await;
    let listed = serde_json::to_string(&keys).unwrap();
    assert!(
        !listed.contains(&a.key) && !listed.contains("\"key\""),
        "{listed}"
    );
    assert_eq!(keys["items"][0]["no_expiry"], false);

    // A key for metrics only: 403 insufficient_scope naming the missing scope.
    let (s, narrow) = app
        .post(
            &format!("/api/tenants/{}/api-keys", a.id),
            json!({
        "persona_id": a.admin, "name": "metrics", "scopes": ["metrics.read"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{narrow}");
    assert_eq!(narrow["no_expiry"], true);
    let (s, v) = as_key(
        &app,
        narrow["key"].as_str().unwrap(),
        Method::GET,
        &personas,
        None,
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("insufficient_scope"))
    );
    assert!(
        v["detail"].as_str().unwrap().contains("members.read"),
        "{v}"
    );
    // Scopes beyond the persona's are refused, and so is handing out more than the issuer holds.
    let (s, v) = app
        .post(
            &format!("/api/tenants/{}/api-keys", a.id),
            json!({
        "persona_id": a.member, "name": "x", "scopes": ["members.write"]}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "an invited persona gets no key: {v}"
    );
    let (s, v) = as_key(
        &app,
        narrow["key"].as_str().unwrap(),
        Method::POST,
        &format!("/api/tenants/{}/api-keys", a.id),
        Some(json!({"persona_id": a.admin, "name": "x", "scopes": ["tenant.admin"]})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "needs api_keys.write first: {v}");

    // Rotate: the old key works for exactly 10 minutes.
    let rotate = format!("/api/tenants/{}/api-keys/{}/rotate", a.id, a.key_id);
    let (s, rot) = as_key(&app, &a.key, Method::POST, &rotate, None).await;
    assert_eq!(s, StatusCode::OK, "{rot}");
    let new_key = rot["key"].as_str().unwrap().to_string();
    assert_ne!(new_key, a.key);
    assert_eq!(rot["old_key_valid_until"], "2026-11-21T10:10:00Z");
    app.clock.advance(Duration::seconds(599));
    assert_eq!(
        as_key(&app, &a.key, Method::GET, &personas, None).await.0,
        StatusCode::OK,
        "old key at 9:59"
    );
    assert_eq!(
        as_key(&app, &new_key, Method::GET, &personas, None).await.0,
        StatusCode::OK
    );
    app.clock.advance(Duration::seconds(2));
    let (s, v) = as_key(&app, &a.key, Method::GET, &personas, None).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized")),
        "old key at 10:01"
    );
    assert_eq!(
        as_key(&app, &new_key, Method::GET, &personas, None).await.0,
        StatusCode::OK
    );

    // Revoke: instant, no grace, for the key and its tokens.
    let token = token_for(&app, &new_key).await;
    assert_eq!(
        as_key(&app, &token, Method::GET, &personas, None).await.0,
        StatusCode::OK
    );
    let (s, _) = app
        .post(
            &format!("/api/tenants/{}/api-keys/{}/revoke", a.id, a.key_id),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        as_key(&app, &new_key, Method::GET, &personas, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        as_key(&app, &token, Method::GET, &personas, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let actions = app.actions(&format!("tenant:{}", a.id)).await;
    for e in [
        "api_key.issued.v1",
        "api_key.rotated.v1",
        "api_key.revoked.v1",
    ] {
        assert!(actions.iter().any(|a| a == e), "{e} in {actions:?}");
    }
    let chain = app.chain(&format!("tenant:{}", a.id)).await;
    let rotated = chain
        .iter()
        .find(|e| e["action"] == "api_key.rotated.v1")
        .unwrap();
    assert_eq!(
        rotated["actor"],
        json!({"kind": "api_key", "id": a.key_id}),
        "the key rotated itself"
    );

    // last_used_at is coalesced in memory and written on the flush (here: the shutdown's).
    let (_, k) = app
        .get(&format!(
            "/api/tenants/{}/api-keys/{}",
            a.id,
            narrow["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(k["last_used_at"], Value::Null, "no write per request");
    let app = app.restart().await;
    let (_, k) = app
        .get(&format!(
            "/api/tenants/{}/api-keys/{}",
            a.id,
            narrow["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(k["last_used_at"], "2026-11-21T10:00:00Z", "{k}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_tokens_verify_offline_with_the_published_jwks() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let a = tenant(&app, &app_id, "Alpha Co").await;
    let (s, jwks) = app
        .send(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    // The real clock: PyJWT checks `exp` against it.
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = test_config(&dir.path().join("data"));
    let live = TestApp::spawn_with(
        dir,
        config,
        Clock::manual(tenantry::clock::truncate_micros(chrono::Utc::now())),
    )
    .await;
    let app_id = live.app("Projex Work").await;
    let l = tenant(&live, &app_id, "Live Co").await;
    let (s, v) = as_key(
        &live,
        &l.key,
        Method::POST,
        "/api/auth/token",
        Some(json!({"scope": "members.read"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let jwt = v["access_token"].as_str().unwrap().to_string();
    assert_eq!(v["scope"], "members.read");
    let jwks_url = live.url("/.well-known/jwks.json");
    let out = tokio::task::spawn_blocking({
        let (jwt, t, u) = (jwt.clone(), l.id.clone(), jwks_url.clone());
        move || verify_jwt(u, jwt, t)
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("ModuleNotFoundError"),
        "install pyjwt and cryptography: {text}"
    );
    assert!(out.status.success(), "{text}");
    let claims: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(claims["tenant_id"], l.id);
    assert_eq!(claims["sub"], l.admin);
    assert_eq!(claims["scope"], "members.read");
    assert_eq!(claims["akid"], l.key_id);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert!(claims["jti"].as_str().is_some());
    // A tampered token and another tenant's id fail the outside check.
    let mut parts: Vec<String> = jwt.split('.').map(String::from).collect();
    parts[1] = parts[1].replacen(&parts[1][..4].to_string(), "eyJh", 1);
    let tampered = parts.join(".");
    let bad = tokio::task::spawn_blocking({
        let (t, u) = (l.id.clone(), jwks_url.clone());
        move || verify_jwt(u, tampered, t)
    })
    .await
    .unwrap();
    assert!(!bad.status.success());
    let wrong = tokio::task::spawn_blocking({
        let (jwt, t, u) = (jwt.clone(), a.id.clone(), jwks_url.clone());
        move || verify_jwt(u, jwt, t)
    })
    .await
    .unwrap();
    assert!(!wrong.status.success());

    // The token works as a bearer on its tenant's routes, with its narrowed scope.
    let (s, _) = as_key(
        &live,
        &jwt,
        Method::GET,
        &format!("/api/tenants/{}/personas", l.id),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = as_key(
        &live,
        &jwt,
        Method::GET,
        &format!("/api/tenants/{}/api-keys", l.id),
        None,
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("insufficient_scope"))
    );
    // A token does not renew itself; scopes beyond the key's are refused.
    let (s, _) = as_key(&live, &jwt, Method::POST, "/api/auth/token", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A revoked persona's tokens and keys fail on the next request.
    let (s, _) = live
        .post(
            &format!("/api/tenants/{}/personas/{}/revoke", l.id, l.admin),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        as_key(
            &live,
            &jwt,
            Method::GET,
            &format!("/api/tenants/{}/personas", l.id),
            None
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        as_key(
            &live,
            &l.key,
            Method::GET,
            &format!("/api/tenants/{}/personas", l.id),
            None
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    live.stop().await;
}

/// Runs `scripts/verify_jwt.py`: PyJWT and `cryptography` verify `token` against the JWKS at
/// `url`, as another platform service would, offline.
fn verify_jwt(url: String, token: String, tenant: String) -> std::process::Output {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/verify_jwt.py");
    Command::new("python3")
        .arg(script)
        .arg(url)
        .arg(token)
        .arg(tenant)
        .output()
        .expect("python3 with PyJWT (.ci/run installs it)")
}

/// The tenant-scoped routes of the permission table: those whose path names a tenant.
fn tenant_routes() -> Vec<&'static (&'static str, &'static str, Access)> {
    routes()
        .iter()
        .filter(|(_, p, a)| {
            *a != Access::Public
                && (p.starts_with("/api/tenants/{id}") || p.starts_with("/tenant/{tenant_id}"))
        })
        .collect()
}

fn fill(path: &str, t: &Tenant) -> String {
    path.replace("{tenant_id}", &t.id)
        .replace("{id}", &t.id)
        .replace("{persona_id}", &t.member)
        .replace("{key_id}", &t.key_id)
        .replace("{bu_id}", &t.bu)
        .replace("{impersonation_id}", &uuid::Uuid::now_v7().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_principal_reaches_only_its_own_tenant() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let a = tenant(&app, &app_id, "Alpha Co").await;
    let b = tenant(&app, &app_id, "Beta Co").await;
    let token = token_for(&app, &a.key).await;
    let routes = tenant_routes();
    assert!(routes.len() >= 30, "{}", routes.len());
    let secrets_of_b = [
        b.id.as_str(),
        b.name.as_str(),
        b.member.as_str(),
        b.key_id.as_str(),
        b.bu.as_str(),
        b.admin.as_str(),
    ];
    let before = app.total_entries().await;
    let mut checked = 0;
    for credential in [a.key.as_str(), token.as_str()] {
        for (method, path, _) in &routes {
            let url = fill(path, &b);
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let mut req = client().request(m, app.url(&url)).bearer_auth(credential);
            req = if path.starts_with("/api/") {
                req.json(&json!({"name": "x", "kind": "team", "roles": ["member"], "display_name": "x", "persona_id": a.admin, "scopes": ["members.read"], "reason": "a long enough reason"}))
            } else {
                req.header("content-type", "application/x-www-form-urlencoded")
                    .body("name=x")
            };
            let res = req.send().await.unwrap();
            let status = res.status();
            let body = res.text().await.unwrap();
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{method} {url} with A's credential: {body}"
            );
            for s in secrets_of_b.iter().skip(1) {
                assert!(!body.contains(s), "{method} {path} leaked {s}: {body}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, routes.len() * 2);
    assert_eq!(
        app.total_entries().await,
        before,
        "nothing was written to B (or anywhere)"
    );
    // The same answer as for a tenant that does not exist, word for word but the id.
    let ghost = uuid::Uuid::now_v7().to_string();
    let (s1, v1) = as_key(
        &app,
        &a.key,
        Method::GET,
        &format!("/api/tenants/{}/personas", b.id),
        None,
    )
    .await;
    let (s2, v2) = app.get(&format!("/api/tenants/{ghost}/personas")).await;
    assert_eq!((s1, v1["code"].clone()), (s2, v2["code"].clone()));
    assert_eq!(
        v1["detail"].as_str().unwrap().replace(&b.id, "X"),
        v2["detail"].as_str().unwrap().replace(&ghost, "X")
    );
    // A's own routes answer A's data; operator routes are closed to tenant credentials.
    let (s, v) = as_key(
        &app,
        &a.key,
        Method::GET,
        &format!("/api/tenants/{}/personas", a.id),
        None,
    )
    .await;
    assert_eq!(
        (s, v["items"].as_array().unwrap().len()),
        (StatusCode::OK, 2)
    );
    let (s, _) = as_key(&app, &a.key, Method::GET, "/api/tenants", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, who) = as_key(&app, &token, Method::GET, "/api/whoami", None).await;
    assert_eq!(
        (s, who["tenant_id"].as_str()),
        (StatusCode::OK, Some(a.id.as_str())),
        "{who}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visit_tenant_is_read_only_until_elevated_and_lands_on_the_tenant_chain() {
    // The run of `end_expired_visits` by hand ends the visit: its scheduled runs move to New
    // Year, or the scheduler's catch-up after the clock's jump could end it first (it did, now
    // and then, and the run by hand found nothing to end).
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(&dir.path().join("data"));
    config
        .schedules
        .insert("end_expired_visits".into(), "0 0 0 1 1 *".into());
    let app = TestApp::spawn_with(dir, config, Clock::manual(t0())).await;
    let app_id = app.app("Projex Work").await;
    let a = tenant(&app, &app_id, "Alpha Co").await;
    operator(&app, "sam", "support").await;
    operator(&app, "bea", "business_admin").await;
    let support = signin(&app, "sam", "sam-password-123").await;
    let admin = signin(&app, "bea", "bea-password-123").await;
    let console = format!("/tenant/{}", a.id);

    // No visit, no tenant console for operators.
    assert_eq!(
        support.get(&app, &console).await.status(),
        StatusCode::FORBIDDEN
    );
    // The support operator visits read-only: pages open with the banner; writes are refused.
    let res = support
        .post(&app, &format!("/platform/tenants/{}/visit", a.id), &[])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], console.as_str());
    let home = support.get(&app, &console).await;
    assert_eq!(home.status(), StatusCode::OK);
    let html = home.text().await.unwrap();
    assert!(
        html.contains("is visiting Alpha Co read-only until"),
        "{html}"
    );
    let members = support
        .get(&app, &format!("{console}/members"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        members.contains("Alpha Co Person") && members.contains("disabled"),
        "forms are disabled"
    );
    let before = app.total_entries().await;
    let write = support
        .post(
            &app,
            &format!("{console}/business-units"),
            &[("name", "Sneaky"), ("kind", "team"), ("parent_id", "")],
        )
        .await;
    assert_eq!(write.status(), StatusCode::FORBIDDEN);
    let text = write.text().await.unwrap();
    assert!(text.contains("read-only"), "{text}");
    assert_eq!(app.total_entries().await, before);
    // Support may not elevate.
    let e = support
        .post(
            &app,
            &format!("{console}/visit/elevate"),
            &[("reason", "I would like to help"), ("minutes", "15")],
        )
        .await;
    assert_eq!(e.status(), StatusCode::FORBIDDEN);

    // A business admin elevates with a reason, for 15 minutes: writes work until it lapses.
    admin
        .post(&app, &format!("/platform/tenants/{}/visit", a.id), &[])
        .await;
    let short = admin
        .post(
            &app,
            &format!("{console}/visit/elevate"),
            &[("reason", "short"), ("minutes", "15")],
        )
        .await;
    assert_eq!(short.status(), StatusCode::SEE_OTHER);
    assert!(
        short.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/visit"),
        "a reason is required"
    );
    let long = admin
        .post(
            &app,
            &format!("{console}/visit/elevate"),
            &[
                (
                    "reason",
                    "Ticket 4711: add the Finance unit for the customer",
                ),
                ("minutes", "90"),
            ],
        )
        .await;
    assert!(
        long.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/visit"),
        "at most 60 minutes"
    );
    let ok = admin
        .post(
            &app,
            &format!("{console}/visit/elevate"),
            &[
                (
                    "reason",
                    "Ticket 4711: add the Finance unit for the customer",
                ),
                ("minutes", "15"),
            ],
        )
        .await;
    assert_eq!(ok.headers()["location"], console.as_str());
    let html = admin.get(&app, &console).await.text().await.unwrap();
    assert!(
        html.contains("with write access (elevated) until"),
        "{html}"
    );
    let w = admin
        .post(
            &app,
            &format!("{console}/business-units"),
            &[
                ("name", "Finance"),
                ("kind", "cost_center"),
                ("parent_id", ""),
            ],
        )
        .await;
    assert_eq!(w.status(), StatusCode::SEE_OTHER);
    app.clock.advance(Duration::minutes(16));
    let w = admin
        .post(
            &app,
            &format!("{console}/business-units"),
            &[("name", "Late"), ("kind", "team"), ("parent_id", "")],
        )
        .await;
    assert_eq!(
        w.status(),
        StatusCode::FORBIDDEN,
        "the elevation ended by itself"
    );
    let end = admin.post(&app, &format!("{console}/visit/end"), &[]).await;
    assert_eq!(end.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        admin.get(&app, &console).await.status(),
        StatusCode::FORBIDDEN,
        "the visit ended"
    );

    // The support visit runs out and the job ends it.
    app.clock.advance(Duration::minutes(45));
    let (s, run) = app
        .post("/api/jobs/end_expired_visits/run", json!({}))
        .await;
    assert_eq!(
        (s, run["summary"].as_str()),
        (StatusCode::OK, Some("ended 1 visit")),
        "{run}"
    );

    // All of it is on the tenant's chain, which the tenant's own key can read.
    let (s, audit) = as_key(
        &app,
        &a.key,
        Method::GET,
        &format!("/api/tenants/{}/audit?limit=100", a.id),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let events: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"].as_str().unwrap().starts_with("impersonation.")
                || e["action"] == "business_unit.created.v1"
        })
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["actor"]["id"].as_str().unwrap().to_string(),
            )
        })
        .rev()
        .collect();
    let expected: Vec<(String, String)> = [
        ("business_unit.created.v1", "admin-ops-token"),
        ("impersonation.started.v1", "sam"),
        ("impersonation.started.v1", "bea"),
        ("impersonation.elevated.v1", "bea"),
        ("business_unit.created.v1", "bea"),
        ("impersonation.ended.v1", "bea"),
        // The job was run by hand with the admin token: the run is the caller's.
        ("impersonation.ended.v1", "admin-ops-token"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(events, expected);
    let elevated = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "impersonation.elevated.v1")
        .unwrap();
    assert_eq!(
        elevated["data"]["reason"],
        "Ticket 4711: add the Finance unit for the customer"
    );
    assert_eq!(elevated["data"]["minutes"], 15);
    let (s, v) = as_key(
        &app,
        &a.key,
        Method::POST,
        &format!("/api/tenants/{}/audit/verify", a.id),
        None,
    )
    .await;
    assert_eq!((s, v["ok"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
    // The platform can count them.
    let (_, recent) = app.get("/api/impersonations").await;
    assert_eq!(recent["items"].as_array().unwrap().len(), 2);
    let (_, active) = app.get("/api/impersonations?state=active").await;
    assert!(active["items"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_console_page_opens_for_its_admin_and_checks_its_forms() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let a = tenant(&app, &app_id, "Alpha Co").await;
    let (c, csrf, ana) = tenant_admin_session(&app, &a.id, "Ana Lima", "ana@alpha.example").await;
    for page in [
        "",
        "/members",
        "/business-units",
        "/api-keys",
        "/audit",
        "/account",
        "/approvals",
        "/approvals/routes",
        "/approvals/breaches",
    ] {
        let res = get_with(&app, &c, &format!("/tenant/{}{page}", a.id)).await;
        assert_eq!(res.status(), StatusCode::OK, "{page}");
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("default-src 'self'"), "{page}: {csp}");
    }
    // A form without the CSRF token is refused and writes nothing.
    let before = app.total_entries().await;
    let res = client()
        .post(app.url(&format!("/tenant/{}/business-units", a.id)))
        .header("cookie", c.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("name", "X"), ("kind", "team")]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.total_entries().await, before);
    // With it, the member's change is on the chain with the persona as the actor.
    let res = client()
        .post(app.url(&format!("/tenant/{}/business-units", a.id)))
        .header("cookie", c.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("csrf", &csrf),
            ("name", "Finance"),
            ("kind", "cost_center"),
            ("parent_id", ""),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let chain = app.chain(&format!("tenant:{}", a.id)).await;
    let last = chain.last().unwrap();
    assert_eq!(last["action"], "business_unit.created.v1");
    assert_eq!(last["actor"], json!({"kind": "persona", "id": ana["id"]}));
    // Sign-in throttling applies to tenant members too.
    for _ in 0..5 {
        let page = client()
            .get(app.url(&format!("/tenant/{}/signin", a.id)))
            .send()
            .await
            .unwrap();
        let pre = set_cookie(&page, "tenantry_tenant_signin").unwrap();
        let csrf = hidden(&page.text().await.unwrap(), "csrf").unwrap();
        client()
            .post(app.url(&format!("/tenant/{}/signin", a.id)))
            .header("cookie", format!("tenantry_tenant_signin={pre}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("email", "ana@alpha.example"),
                ("password", "wrong-password-123"),
                ("csrf", &csrf),
            ]))
            .send()
            .await
            .unwrap();
    }
    let page = client()
        .get(app.url(&format!("/tenant/{}/signin", a.id)))
        .send()
        .await
        .unwrap();
    let pre = set_cookie(&page, "tenantry_tenant_signin").unwrap();
    let csrf = hidden(&page.text().await.unwrap(), "csrf").unwrap();
    let res = client()
        .post(app.url(&format!("/tenant/{}/signin", a.id)))
        .header("cookie", format!("tenantry_tenant_signin={pre}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("email", "ana@alpha.example"),
            ("password", "ana-strong-password-1"),
            ("csrf", &csrf),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}
