//! The console over HTTP: sign-in, sessions (expiry, revocation), CSRF, throttling, the role
//! matrix route by route, and a crawl that fails when a linked page has no permission entry.

use std::collections::{BTreeSet, VecDeque};

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tenantry::app::routes;
use tenantry::rbac::{self, Access, Role};

use crate::helpers::TestApp;

/// A browser-like client that keeps no cookie jar (we pass cookies explicitly) and does not
/// follow redirects, so tests see them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A signed-in console session.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

pub fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            v[name.len() + 1..]
                .split(';')
                .next()
                .unwrap_or("")
                .to_string()
        })
}

pub fn hidden(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let i = html.find(&needle)? + needle.len();
    Some(html[i..].split('"').next()?.to_string())
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

/// Signs in through the real form; returns the response of the POST.
pub async fn signin_response(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    let c = client();
    let page = c.get(app.url("/signin")).send().await.unwrap();
    let pre = set_cookie(&page, "tenantry_signin").expect("the sign-in page sets its CSRF cookie");
    let html = page.text().await.unwrap();
    let csrf = hidden(&html, "csrf").unwrap();
    c.post(app.url("/signin"))
        .header("cookie", format!("tenantry_signin={pre}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("username", username),
            ("password", password),
            ("csrf", &csrf),
            ("next", "/platform"),
        ]))
        .send()
        .await
        .unwrap()
}

pub async fn signin(app: &TestApp, username: &str, password: &str) -> Session {
    let res = signin_response(app, username, password).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "sign-in of {username} failed: {}",
        res.text().await.unwrap()
    );
    let cookie = set_cookie(&res, "tenantry_session").unwrap();
    let attrs = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        attrs.contains("HttpOnly") && attrs.contains("SameSite=Strict"),
        "{attrs}"
    );
    // Plain HTTP on loopback without `secure_cookies`: a `Secure` cookie would never come back.
    assert!(!attrs.contains("Secure"), "{attrs}");
    let home = client()
        .get(app.url("/platform"))
        .header("cookie", format!("tenantry_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    let csrf = hidden(&home.text().await.unwrap(), "csrf").unwrap();
    Session { cookie, csrf }
}

impl Session {
    pub async fn get(&self, app: &TestApp, path: &str) -> reqwest::Response {
        client()
            .get(app.url(path))
            .header("cookie", format!("tenantry_session={}", self.cookie))
            .send()
            .await
            .unwrap()
    }
    pub async fn post(
        &self,
        app: &TestApp,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut all: Vec<(&str, &str)> = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(app, path, &form(&all)).await
    }
    /// Starts a read-only visit of `tenant`'s console and returns the text of its page `path`
    /// (`/billing`, ...).
    pub async fn visit_page(&self, app: &TestApp, tenant: &str, path: &str) -> String {
        let res = self
            .post(app, &format!("/platform/tenants/{tenant}/visit"), &[])
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        self.get(app, &format!("/tenant/{tenant}{path}"))
            .await
            .text()
            .await
            .unwrap()
    }
    pub async fn post_raw(&self, app: &TestApp, path: &str, body: &str) -> reqwest::Response {
        client()
            .post(app.url(path))
            .header("cookie", format!("tenantry_session={}", self.cookie))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }
}

pub async fn operator(app: &TestApp, username: &str, role: &str) -> String {
    let (s, v) = app
        .post("/api/operators", json!({"username": username, "role": role, "password": format!("{username}-password-123")}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_string()
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_starts_a_session_and_is_audited_and_signing_out_ends_it() {
    let app = TestApp::spawn().await;
    operator(&app, "alice", "super_admin").await;
    let unauth = client()
        .get(app.url("/platform/tenants?status=active"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&unauth),
        "/signin?next=%2Fplatform%2Ftenants%3Fstatus%3Dactive"
    );

    let s = signin(&app, "alice", "alice-password-123").await;
    let home = s.get(&app, "/platform").await;
    assert_eq!(home.status(), StatusCode::OK);
    assert!(
        home.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'self'")
    );
    let html = home.text().await.unwrap();
    assert!(
        html.contains("Platform dashboard") && html.contains("Alice") || html.contains("alice"),
        "{html}"
    );
    let signed_in = app
        .chain("platform")
        .await
        .into_iter()
        .filter(|e| e["action"] == "operator.signed_in.v1")
        .collect::<Vec<_>>();
    assert_eq!(signed_in.len(), 1);
    assert_eq!(
        signed_in[0]["actor"],
        json!({"kind": "operator", "id": "alice"})
    );

    // The session also reads the JSON API (exports), but never writes through it.
    let api = s.get(&app, "/api/tenants").await;
    assert_eq!(api.status(), StatusCode::OK);
    let w = client()
        .post(app.url("/api/apps"))
        .header("cookie", format!("tenantry_session={}", s.cookie))
        .json(&json!({"name": "Sneaky"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        w.status(),
        StatusCode::UNAUTHORIZED,
        "unsafe API calls need a bearer token, never the cookie"
    );

    let out = s.post(&app, "/signout", &[]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        s.get(&app, "/platform").await.status(),
        StatusCode::SEE_OTHER,
        "the session is gone"
    );
    assert!(
        app.actions("platform")
            .await
            .contains(&"operator.signed_out.v1".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_a_valid_csrf_token_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    operator(&app, "bob", "business_admin").await;
    let s = signin(&app, "bob", "bob-password-123").await;
    let before = app.chain("platform").await.len();
    for body in [
        "name=Forged",
        "name=Forged&csrf=",
        "name=Forged&csrf=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let res = s.post_raw(&app, "/platform/apps", body).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{body}");
        assert!(res.text().await.unwrap().contains("CSRF"));
    }
    assert_eq!(
        app.chain("platform").await.len(),
        before,
        "nothing was written"
    );
    let res = s
        .post(&app, "/platform/apps", &[("name", "Projex Work")])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/platform/apps");
    // The sign-in form has its own double-submit token.
    let res = client()
        .post(app.url("/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("username", "bob"),
            ("password", "bob-password-123"),
            ("csrf", "made-up"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&res, "tenantry_session").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_after_idle_time_and_at_the_absolute_limit() {
    let app = TestApp::spawn().await;
    operator(&app, "carol", "support").await;
    let s = signin(&app, "carol", "carol-password-123").await;
    app.clock.advance(Duration::minutes(29));
    assert_eq!(
        s.get(&app, "/platform").await.status(),
        StatusCode::OK,
        "29 idle minutes are fine"
    );
    app.clock.advance(Duration::minutes(31));
    assert_eq!(
        s.get(&app, "/platform").await.status(),
        StatusCode::SEE_OTHER,
        "31 idle minutes end it"
    );

    // Active all day: the absolute limit (12 h) ends it anyway.
    let s = signin(&app, "carol", "carol-password-123").await;
    let mut ended_after = None;
    for step in 1..=40 {
        app.clock.advance(Duration::minutes(20));
        let status = s.get(&app, "/platform").await.status();
        if status != StatusCode::OK {
            ended_after = Some(step * 20);
            break;
        }
        // The activity refresh is written off the request path: wait until it has landed.
        let key = tenantry::operators::service::secret_key(&s.cookie);
        let now = app.clock.now();
        for _ in 0..500 {
            let seen = app
                .state
                .read(move |r| {
                    Ok(
                        tenantry::operators::queries::session(r, &key, now, app_limits())?
                            .map(|(s, _)| s.last_seen),
                    )
                })
                .await
                .unwrap();
            if seen == Some(now) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    let minutes = ended_after.expect("the session must end");
    assert!(
        (12 * 60..=12 * 60 + 20).contains(&minutes),
        "ended after {minutes} minutes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_role_or_disabling_ends_sessions_and_tokens_at_once() {
    let app = TestApp::spawn().await;
    operator(&app, "dave", "business_admin").await;
    let s = signin(&app, "dave", "dave-password-123").await;
    let (_, tok) = app
        .post("/api/operators/dave/tokens", json!({"name": "ci"}))
        .await;
    let token = tok["token"].as_str().unwrap().to_string();
    let as_dave = |path: &str| client().get(app.url(path)).bearer_auth(&token).send();
    assert_eq!(
        as_dave("/api/tenants").await.unwrap().status(),
        StatusCode::OK
    );

    let (st, v) = app
        .post("/api/operators/dave/role", json!({"role": "support"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        s.get(&app, "/platform").await.status(),
        StatusCode::SEE_OTHER,
        "the role change ended the session"
    );
    // The token acts with the new role at once.
    let w = client()
        .post(app.url("/api/apps"))
        .bearer_auth(&token)
        .json(&json!({"name": "X"}))
        .send()
        .await
        .unwrap();
    assert_eq!(w.status(), StatusCode::FORBIDDEN);

    let s = signin(&app, "dave", "dave-password-123").await;
    let (st, _) = app.post("/api/operators/dave/disable", json!({})).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        s.get(&app, "/platform").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        as_dave("/api/tenants").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let res = signin_response(&app, "dave", "dave-password-123").await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "a disabled operator cannot sign in"
    );
    let actions = app.actions("platform").await;
    for a in [
        "operator.role_changed.v1",
        "operator.disabled.v1",
        "operator.token.created.v1",
    ] {
        assert!(actions.contains(&a.to_string()), "{a}");
    }
    // The last active super_admin cannot be demoted or disabled.
    operator(&app, "root", "super_admin").await;
    let (st, v) = app.post("/api/operators/root/disable", json!({})).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("last_super_admin"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_are_throttled_per_username_and_counted() {
    let app = TestApp::spawn().await;
    operator(&app, "erin", "support").await;
    for _ in 0..5 {
        let res = signin_response(&app, "erin", "wrong-password-xx").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(
            res.text()
                .await
                .unwrap()
                .contains("username or password is wrong")
        );
    }
    let res = signin_response(&app, "erin", "erin-password-123").await;
    assert_eq!(
        res.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Too many failed sign-ins")
    );
    // Unknown usernames fail the same way (no enumeration).
    assert_eq!(
        signin_response(&app, "nobody", "whatever-password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    app.clock.advance(Duration::minutes(15));
    signin(&app, "erin", "erin-password-123").await;
    assert_eq!(app.state.throttle().counts().0, 6);
    let (_, v) = app.get("/api/audit?action=operator.signed_in.v1").await;
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        1,
        "failures write no audit entry; they are counted"
    );
    let s = signin(&app, "erin", "erin-password-123").await;
    let html = s.get(&app, "/platform").await.text().await.unwrap();
    assert!(
        html.contains("Failed sign-ins today: 6"),
        "the dashboard shows the daily count"
    );
}

fn app_limits() -> tenantry::operators::model::SessionLimits {
    tenantry::operators::model::SessionLimits {
        idle: Duration::days(365),
        absolute: Duration::days(365),
    }
}

/// Fills a route template with ids that exist.
fn concrete(path: &str, tenant: &str, app_id: &str, target_op: &str, token: &str) -> String {
    let ghost = uuid::Uuid::now_v7().to_string();
    let mut p = path
        .replace("{tenant_id}", tenant)
        .replace("{token_id}", token)
        .replace("{persona_id}", &ghost)
        .replace("{key_id}", &ghost)
        .replace("{bu_id}", &ghost)
        .replace("{impersonation_id}", &ghost)
        .replace("{token}", "not-an-invite")
        .replace("{action}", "suspend")
        .replace("{name}", "checkpoint_chains")
        .replace("{*path}", "console.css");
    p = if p.contains("/operators/") {
        p.replace("{id}", target_op)
    } else if p.contains("/apps/") {
        p.replace("{id}", app_id)
    } else if p.contains("/pools/") {
        p.replace("{id}", "admin-1")
    } else {
        p.replace("{id}", tenant)
    };
    if p.starts_with("/api/routes/") {
        p.push_str("?module=core");
    }
    if p == "/api/audit/export" || p == "/api/audit/checkpoints" {
        p.push_str("?chain=platform");
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_matrix_holds_on_every_route_for_every_role() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let tenant = app.tenant(&app_id, "Matrix Co").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let target = operator(&app, "target", "support").await;
    let (_, tok) = app
        .post("/api/operators/target/tokens", json!({"name": "t"}))
        .await;
    let target_token = tok["id"].as_str().unwrap().to_string();
    let mut tokens = Vec::new();
    for role in Role::ALL {
        let name = format!("m-{}", role.as_str().replace('_', "-"));
        operator(&app, &name, role.as_str()).await;
        let (_, t) = app
            .post(
                &format!("/api/operators/{name}/tokens"),
                json!({"name": "matrix"}),
            )
            .await;
        tokens.push((role, t["token"].as_str().unwrap().to_string()));
    }
    let c = client();
    let mut checked = 0;
    for (role, token) in &tokens {
        for (method, path, access) in routes() {
            if *method == "POST" && path.ends_with("/signin") {
                // Public, but its own double-submit check answers 403 to a bare POST.
                continue;
            }
            let url = app.url(&concrete(path, &tenant, &app_id, &target, &target_token));
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let mut req = c.request(m, url).bearer_auth(token);
            req = if path.starts_with("/api/") {
                req.json(&json!({}))
            } else {
                req.header("content-type", "application/x-www-form-urlencoded")
                    .body("")
            };
            let res = req.send().await.unwrap();
            let allowed = match access {
                Access::Public => true,
                // Exchanging for a tenant token needs a tenant API key: every operator is
                // refused.
                Access::Authenticated => *path != "/api/auth/token",
                // An operator's tenant-console pages need a visit, which these tokens have not
                // started.
                _ if path.starts_with("/tenant/") => false,
                Access::Requires(p)
                | Access::Tenant(_, p)
                | Access::Member(p)
                | Access::TenantInBody(_, p) => rbac::allows(*role, *p),
            };
            let status = res.status();
            if allowed {
                assert_ne!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role:?} {method} {path} should be allowed: {}",
                    res.text().await.unwrap()
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role:?} {method} {path} should be refused"
                );
            }
            checked += 1;
        }
    }
    let signins = routes()
        .iter()
        .filter(|(m, p, _)| *m == "POST" && p.ends_with("/signin"))
        .count();
    assert_eq!(checked, (routes().len() - signins) * Role::ALL.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_linked_console_page_is_reachable_by_super_admin() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    let t = app.tenant(&app_id, "Crawl Co").await;
    app.action(t["id"].as_str().unwrap(), "activate", json!({}))
        .await;
    operator(&app, "root", "super_admin").await;
    let s = signin(&app, "root", "root-password-123").await;
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from(["/platform".to_string()]);
    while let Some(path) = queue.pop_front() {
        if !seen.insert(path.clone()) || seen.len() > 150 {
            continue;
        }
        let res = s.get(&app, &path).await;
        let status = res.status();
        // A page routed without a permission entry answers 403 even to super_admin.
        assert!(status == StatusCode::OK, "{path}: {status}");
        let ctype = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !ctype.starts_with("text/html") {
            continue;
        }
        let html = res.text().await.unwrap();
        for part in html.split("href=\"").skip(1) {
            let link = part.split('"').next().unwrap_or("").replace("&amp;", "&");
            if link.starts_with("/platform") && !link.contains("cursor=") {
                queue.push_back(link);
            }
        }
    }
    for page in [
        "/platform/tenants",
        "/platform/tenants/new",
        "/platform/apps",
        "/platform/pools",
        "/platform/audit",
        "/platform/jobs",
        "/platform/operators",
        "/platform/account",
    ] {
        assert!(seen.contains(page), "{page} is linked from the console");
    }
    // Unknown pages and refusals are pages too.
    let res = s.get(&app, "/platform/nowhere").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.text().await.unwrap().contains("There is no page at"));
    operator(&app, "sup", "support").await;
    let sup = signin(&app, "sup", "sup-password-123").await;
    let res = sup.get(&app, "/platform/operators").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("may not GET /platform/operators")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_runs_the_core_workflow_with_field_errors_kept() {
    let app = TestApp::spawn().await;
    let app_id = app.app("Projex Work").await;
    operator(&app, "bea", "business_admin").await;
    let s = signin(&app, "bea", "bea-password-123").await;
    // A bad form comes back with each error next to its field and the input kept.
    let res = s
        .post(
            &app,
            "/platform/tenants",
            &[
                ("app_id", &app_id),
                ("display_name", "Keep Me"),
                ("region", "mars-1"),
                ("contact_email", "nope"),
                ("trial_days", "ten"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(html.contains("value=\"Keep Me\""), "input kept");
    assert!(
        html.contains("region &#39;mars-1&#39; is not offered")
            || html.contains("region 'mars-1' is not offered"),
        "{html}"
    );
    assert!(html.contains("is not a valid email address"));
    assert!(
        html.contains("&#39;ten&#39; is not a whole number")
            || html.contains("'ten' is not a whole number")
    );
    let (_, summary) = app.get("/api/tenants/summary").await;
    assert_eq!(summary["total"], 0);

    let res = s
        .post(
            &app,
            "/platform/tenants",
            &[
                ("app_id", &app_id),
                ("display_name", "Console Co"),
                ("region", "eu-west-1"),
                ("isolation_tier", "P"),
                ("contact_email", "it@console.example.com"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/platform/tenants");
    // Follow the redirect as a browser does, with the flash cookie it set.
    let flash = set_cookie(&res, "tenantry_flash").unwrap();
    let next = client()
        .get(app.url("/platform/tenants"))
        .header(
            "cookie",
            format!("tenantry_session={}; tenantry_flash={flash}", s.cookie),
        )
        .send()
        .await
        .unwrap();
    assert!(
        set_cookie(&next, "tenantry_flash").is_some_and(|v| v.is_empty()),
        "the flash is shown once, then cleared"
    );
    let list = next.text().await.unwrap();
    assert!(list.contains("Console Co was provisioned"), "flash shown");
    let (_, v) = app.get("/api/tenants?q=console").await;
    let id = v["items"][0]["id"].as_str().unwrap().to_string();
    let detail = s
        .get(&app, &format!("/platform/tenants/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(detail.contains("tenant.pool.assigned.v1"));
    assert!(detail.contains("lifecycle/activate"));

    // Offboarding needs a reason and an explicit confirmation.
    s.post(
        &app,
        &format!("/platform/tenants/{id}/lifecycle/activate"),
        &[],
    )
    .await;
    let res = s
        .post(
            &app,
            &format!("/platform/tenants/{id}/lifecycle/offboard"),
            &[("reason", "leaving")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.get(&format!("/api/tenants/{id}")).await.1["state"],
        "active",
        "no confirmation, no offboarding"
    );
    s.post(
        &app,
        &format!("/platform/tenants/{id}/lifecycle/offboard"),
        &[
            ("reason", "leaving"),
            ("confirm", "yes"),
            ("grace_days", "7"),
        ],
    )
    .await;
    let t = app.get(&format!("/api/tenants/{id}")).await.1;
    assert_eq!(t["state"], "offboarding");
    let detail = s
        .get(&app, &format!("/platform/tenants/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        detail.contains("Shredded") && detail.contains("in 7 days"),
        "deadline countdown shown"
    );

    // A business admin cannot flip pools: no button, and the server refuses.
    let pools = s.get(&app, "/platform/pools").await.text().await.unwrap();
    assert!(!pools.contains("/status\""), "no flip form for this role");
    let res = s
        .post(
            &app,
            "/platform/pools/admin-1/status",
            &[("status", "drain"), ("reason", "x")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}
