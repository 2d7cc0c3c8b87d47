//! R7 (issue 12): the security defaults, one assertion each, in one list. README's "Security
//! defaults" section names the same items; a change to a default fails here first.
//!
//! 1. Passwords are hashed with Argon2id at m = 19 MiB, t = 2, p = 1 (OWASP).
//! 2. Secrets (passwords, operator tokens, API keys, session tokens) are stored only as hashes.
//! 3. Console forms need the session's CSRF token.
//! 4. Every console response carries the CSP, error pages included.
//! 5. Session cookies are HttpOnly and SameSite=Strict, and disabling an operator ends their
//!    sessions at once.
//! 6. Sign-in is throttled after 5 failures, even for the right password.
//! 7. Plain HTTP off loopback is refused unless asked for (`--insecure-http`).

use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;

use crate::console::{client, operator, signin, signin_response};
use crate::helpers::TestApp;
use crate::process::{BIN, TOKEN, data_dir};

/// The bytes of the data file and of the redo log as committed so far: each commit is in the
/// log before it is answered, and in the file after a checkpoint, so together they hold every
/// acknowledged write (and a secret in clear would show in either).
fn data_file(app: &TestApp) -> Vec<u8> {
    let mut bytes = std::fs::read(app.data_dir().join("tenantry.redb")).unwrap();
    bytes.extend(std::fs::read(app.data_dir().join("tenantry.wal")).unwrap_or_default());
    bytes
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_stored_only_as_argon2id_or_sha256_hashes() {
    let app = TestApp::spawn().await;
    let id = operator(&app, "dora", "super_admin").await;
    let session = signin(&app, "dora", "dora-password-123").await;
    let (s, token) = app
        .post(
            &format!("/api/operators/{id}/tokens"),
            json!({"name": "ci-pipeline"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{token}");
    let app_id = app.app("Projex Work").await;
    let tenant = crate::identity::tenant(&app, &app_id, "Vault Co").await;

    let file = data_file(&app);
    // 1: the operator's password hash, with its parameters.
    assert!(
        holds(&file, "$argon2id$v=19$m=19456,t=2,p=1$"),
        "an Argon2id hash with m=19456 KiB, t=2, p=1 is stored"
    );
    // 2: no secret is stored as it was handed out.
    for (what, secret) in [
        ("the password", "dora-password-123"),
        ("the operator token", token["token"].as_str().unwrap()),
        ("the API key", tenant.key.as_str()),
        ("the session token", session.cookie.as_str()),
    ] {
        assert!(secret.len() >= 16, "{what}: {secret}");
        assert!(!holds(&file, secret), "{what} is stored in clear");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_console_response_carries_the_csp_and_forms_need_the_csrf_token() {
    let app = TestApp::spawn().await;
    operator(&app, "erin", "super_admin").await;
    operator(&app, "rita", "compliance").await;
    let admin = signin(&app, "erin", "erin-password-123").await;
    let reader = signin(&app, "rita", "rita-password-123").await;

    let csp = |res: &reqwest::Response| {
        res.headers()
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap().to_string())
    };
    let anonymous = client().get(app.url("/signin")).send().await.unwrap();
    let cases = vec![
        ("the sign-in page", anonymous),
        ("a page", admin.get(&app, "/platform").await),
        (
            "a 404 page",
            admin.get(&app, "/platform/no-such-page").await,
        ),
        (
            "a 403 page",
            reader
                .post(&app, "/platform/apps", &[("name", "Nope")])
                .await,
        ),
        (
            "a CSRF refusal",
            admin
                .post_raw(&app, "/platform/apps", "name=Forged&csrf=")
                .await,
        ),
    ];
    for (what, res) in cases {
        let policy = csp(&res).unwrap_or_else(|| panic!("{what} has no CSP"));
        assert!(
            policy.contains("default-src 'self'") && policy.contains("frame-ancestors 'none'"),
            "{what}: {policy}"
        );
        assert_eq!(res.headers()["x-content-type-options"], "nosniff", "{what}");
        if what == "a CSRF refusal" {
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{what}");
        }
    }
    // The forged form changed nothing.
    let (_, apps) = app.get("/api/apps").await;
    assert!(
        !serde_json::to_string(&apps).unwrap().contains("Forged"),
        "{apps}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_an_operator_ends_their_session_at_once() {
    let app = TestApp::spawn().await;
    operator(&app, "fern", "technical_admin").await;
    let res = signin_response(&app, "fern", "fern-password-123").await;
    let attrs: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session = attrs
        .iter()
        .find(|c| c.starts_with("tenantry_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    let s = signin(&app, "fern", "fern-password-123").await;
    assert_eq!(s.get(&app, "/platform").await.status(), StatusCode::OK);
    let (st, v) = app.post("/api/operators/fern/disable", json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let res = s.get(&app, "/platform").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "back to sign-in");
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/signin"),
        "{:?}",
        res.headers()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_throttled_after_five_failures_even_for_the_right_password() {
    let app = TestApp::spawn().await;
    operator(&app, "gail", "super_admin").await;
    for _ in 0..5 {
        let res = signin_response(&app, "gail", "wrong-password-000").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = signin_response(&app, "gail", "gail-password-123").await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
}

#[test]
fn plain_http_off_loopback_is_refused_unless_asked_for() {
    let (_dir, data) = data_dir();
    let out = Command::new(BIN)
        .args(["serve", "--data-dir", data.to_str().unwrap()])
        .args(["--listen", "0.0.0.0:0"])
        .env_remove("TENANTRY_CONFIG")
        .env("TENANTRY_ADMIN_OPS_TOKEN", TOKEN)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--insecure-http"), "{err}");
}
