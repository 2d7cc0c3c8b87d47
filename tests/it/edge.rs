//! The HTTP edge under abuse (issue 12): header-read timeout, the connection cap, no body read
//! before authentication, HTTP/2 bodies within the limit, sign-in bursts and sprays, trusted
//! proxies, and the headers of every response (CSP on error pages, HSTS, `Secure` cookies).

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tenantry::clock::Clock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::console::{client, operator, signin, signin_response};
use crate::helpers::{TestApp, t0, test_config};

async fn app_with(edit: impl FnOnce(&mut tenantry::config::Config)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(&dir.path().join("data"));
    edit(&mut config);
    TestApp::spawn_with(dir, config, Clock::manual(t0())).await
}

/// Reads from `s` until it closes or `wait` passes: `Some(bytes)` when it closed.
async fn read_to_close(s: &mut tokio::net::TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|()| out)
}

/// Sends `request` as raw bytes on a new connection and returns the first bytes answered,
/// failing with `why` if nothing comes within `wait`.
async fn first_answer(
    addr: std::net::SocketAddr,
    request: &str,
    wait: Duration,
    why: &str,
) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 4096];
    let n = tokio::time::timeout(wait, s.read(&mut head))
        .await
        .expect(why)
        .unwrap();
    String::from_utf8_lossy(&head[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = app_with(|c| c.http.header_read_timeout_secs = 1).await;
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    assert!(
        read_to_close(&mut s, Duration::from_secs(15))
            .await
            .is_some(),
        "a slow-loris connection is closed after header_read_timeout_secs"
    );
    // An idle keep-alive connection is closed too.
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    assert!(
        read_to_close(&mut s, Duration::from_secs(15))
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_body_stalls_is_answered_408_at_its_deadline() {
    let app = app_with(|c| c.http.request_timeout_secs = 2).await;
    // An authenticated JSON write that announces 64 bytes of body and sends 10: its handler waits
    // for the rest, so the answer comes from the request timeout, not from the handler.
    let started = std::time::Instant::now();
    let head = first_answer(
        app.addr,
        &format!(
            "POST /api/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 64\r\n\r\n{{\"display_",
            crate::helpers::TOKEN
        ),
        Duration::from_secs(15),
        "answered before the client gave up",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(head.contains("request_timeout"), "{head}");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    // Nothing was provisioned.
    let (status, page) = app.get("/api/tenants").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(0), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    let app = app_with(|c| {
        c.http.max_connections = 2;
        c.http.header_read_timeout_secs = 3;
    })
    .await;
    let idle = [
        tokio::net::TcpStream::connect(app.addr).await.unwrap(),
        tokio::net::TcpStream::connect(app.addr).await.unwrap(),
    ];
    // Give the server a moment to take both into its slots.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(1000))
        .build()
        .unwrap();
    assert!(
        quick.get(app.url("/healthz")).send().await.is_err(),
        "a third connection is not served while two hold the slots"
    );
    // The idle ones run out of header time; then the next client is served.
    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let res = patient.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_is_not_read_before_the_caller_is_known() {
    let app = TestApp::spawn().await;
    // An anonymous upload announcing 60 MB (under the old drain cap) and sending none of it is
    // answered at once: nothing waits for, or buffers, the body.
    let head = first_answer(
        app.addr,
        &format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000000\r\n\r\n",
            tenantry::installs::api::BUNDLES_PATH
        ),
        Duration::from_secs(10),
        "answered without the body",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");

    // Without credentials, a public route's body is capped well below the general limit.
    let big = "x".repeat(tenantry::http::body::ANONYMOUS_BODY_LIMIT + 1);
    let res = client()
        .post(app.url("/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_form_without_a_length_is_held_to_the_limit() {
    use http_body_util::BodyExt;
    let app = TestApp::spawn().await;
    operator(&app, "hana", "super_admin").await;
    let s = signin(&app, "hana", "hana-password-123").await;
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::StreamBody<_>>();
    // 3 MiB of form in 64 KiB frames, with no content-length (normal for HTTP/2).
    let chunks = (0..48).map(|_| {
        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(bytes::Bytes::from(
            vec![b'a'; 64 * 1024],
        )))
    });
    let body = http_body_util::StreamBody::new(tokio_stream::iter(chunks));
    let req = hyper::Request::post(app.url("/platform/tenants"))
        .header("cookie", format!("tenantry_session={}", s.cookie))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .unwrap();
    let res = h2.request(req).await.unwrap();
    assert_eq!(res.version(), hyper::Version::HTTP_2);
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let _ = res.into_body().collect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parallel_burst_of_sign_ins_gets_no_more_tries_than_the_limit() {
    let app = TestApp::spawn().await;
    operator(&app, "ivan", "support").await;
    let tries = (0..12).map(|_| {
        let app = &app;
        async move {
            signin_response(app, "ivan", "wrong-password-xx")
                .await
                .status()
        }
    });
    let statuses = futures_join(tries).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        (checked, throttled),
        (tenantry::operators::throttle::PER_USERNAME, 7),
        "{statuses:?}"
    );
    // A username longer than any account is refused before anything is counted.
    let long = "x".repeat(10_000);
    assert_eq!(
        signin_response(&app, &long, "whatever-password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.state.throttle().counts().0, 5);
}

/// Runs `futs` concurrently and returns their outputs in order.
async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out = Vec::new();
    // Poll all together: join them through a JoinSet-free select loop.
    let joined = async {
        let mut pending: Vec<_> = set.into_iter().map(Some).collect();
        let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut left = false;
            for (i, slot) in pending.iter_mut().enumerate() {
                if let Some(f) = slot {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => {
                            results[i] = Some(v);
                            *slot = None;
                        }
                        std::task::Poll::Pending => left = true,
                    }
                }
            }
            if left {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        results
    };
    for r in joined.await {
        out.extend(r);
    }
    out
}

/// A failed sign-in as client `xff` behind the proxy.
async fn fail_as(app: &TestApp, username: &str, xff: &str) -> StatusCode {
    let c = client();
    let page = c.get(app.url("/signin")).send().await.unwrap();
    let pre = crate::console::set_cookie(&page, "tenantry_signin").unwrap();
    let csrf = crate::console::hidden(&page.text().await.unwrap(), "csrf").unwrap();
    c.post(app.url("/signin"))
        .header("cookie", format!("tenantry_signin={pre}"))
        .header("x-forwarded-for", xff)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(crate::console::form(&[
            ("username", username),
            ("password", "wrong-password-xx"),
            ("csrf", &csrf),
        ]))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_client_has_its_own_throttle_and_a_spray_adds_one_row() {
    let per_client = tenantry::operators::throttle::PER_CLIENT;
    let app = app_with(|c| c.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    for i in 0..per_client {
        assert_eq!(
            fail_as(&app, &format!("made-up-{i}"), "198.51.100.1").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        fail_as(&app, "made-up-x", "198.51.100.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the spraying client is throttled"
    );
    assert_eq!(
        fail_as(&app, "made-up-y", "198.51.100.2").await,
        StatusCode::UNAUTHORIZED,
        "another client behind the same proxy is not"
    );
    // Made-up usernames share one row of the day's failures.
    let day = t0().format("%Y-%m-%d").to_string();
    let rows = app
        .state
        .read(move |r| tenantry::operators::queries::failures_on(r, &day))
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![(
            tenantry::operators::model::UNKNOWN_USERNAME.to_string(),
            per_client as u64 + 1
        )]
    );
    // The next day's job puts the day on the ledger; run by hand, it is the caller's.
    app.clock.advance(chrono::Duration::days(1));
    let (s, v) = app.post("/api/jobs/prune_sessions/run", Value::Null).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = app
        .get("/api/audit?action=operator.signin_failures.v1")
        .await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["data"]["total"], per_client as u64 + 1, "{v}");
    assert_eq!(
        items[0]["actor"]["id"], "admin-ops-token",
        "a manual run is attributed to who ran it"
    );

    // Without trusted proxies, the header is the client's to forge and counts for nothing.
    let plain = TestApp::spawn().await;
    for i in 0..per_client {
        fail_as(&plain, &format!("made-up-{i}"), &format!("203.0.113.{i}")).await;
    }
    assert_eq!(
        fail_as(&plain, "made-up-z", "203.0.113.250").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_pages_carry_the_csp_and_tls_adds_hsts_and_secure_cookies() {
    let app = TestApp::spawn().await;
    for path in ["/platform/no-such-page", "/tenant/not-a-uuid/nothing"] {
        let res = client().get(app.url(path)).send().await.unwrap();
        let csp = res
            .headers()
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(
            csp.as_deref(),
            Some(tenantry::console::CSP),
            "{path}: {}",
            res.status()
        );
    }
    assert!(
        client()
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .headers()
            .get("strict-transport-security")
            .is_none(),
        "no HSTS over plain HTTP"
    );

    let tls = app_with(|c| c.tls = tenantry::tls::TlsMode::SelfSigned).await;
    let https = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("https://{}", tls.addr);
    let res = https.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    // Every cookie, the flash message's included, is Secure: sign in over HTTPS and fail a
    // password change, which redirects with a flash.
    let created = https
        .post(format!("{base}/api/operators"))
        .bearer_auth(crate::helpers::TOKEN)
        .json(&serde_json::json!({"username": "jordan", "role": "support", "password": "jordan-password-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let res = https.get(format!("{base}/signin")).send().await.unwrap();
    let pre = crate::console::set_cookie(&res, "tenantry_signin").unwrap();
    let csrf = crate::console::hidden(&res.text().await.unwrap(), "csrf").unwrap();
    let res = https
        .post(format!("{base}/signin"))
        .header("cookie", format!("tenantry_signin={pre}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(crate::console::form(&[
            ("username", "jordan"),
            ("password", "jordan-password-123"),
            ("csrf", &csrf),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let session = crate::console::set_cookie(&res, "tenantry_session").unwrap();
    let page = https
        .get(format!("{base}/platform/account"))
        .header("cookie", format!("tenantry_session={session}"))
        .send()
        .await
        .unwrap();
    let csrf = crate::console::hidden(&page.text().await.unwrap(), "csrf").unwrap();
    let res = https
        .post(format!("{base}/platform/account/password"))
        .header("cookie", format!("tenantry_session={session}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(crate::console::form(&[
            ("current", "not-my-password"),
            ("new", "another-password-456"),
            ("csrf", &csrf),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("tenantry_flash=")),
        "{cookies:?}"
    );
    for c in cookies {
        assert!(c.contains("; Secure"), "{c}");
    }
}
