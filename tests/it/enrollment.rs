//! Enrollment and the receiver's limits (issue 12, findings 4 and 8): an install registered
//! without its key binds one only with its one-time enrollment secret; the secret is used up on
//! bind and can be re-issued before; over-cap heartbeats and delivery floods are refused; a
//! license binds to a key or to an enrollment, never to any appliance; and switching an
//! appliance's role to `control_plane` does not lift its license gate.

use chrono::Duration as Span;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenantry::audit::signing::InstallKey;
use tenantry::config::Role;
use tenantry::onprem::enroll::EnrollmentSecret;
use tenantry::onprem::signed;
use uuid::Uuid;

use crate::helpers::TestApp;
use crate::onprem::{appliance, beat, register, remember, wait_for};

/// A heartbeat document for `install` under `license`, with `heads` distinct audit heads.
fn heartbeat(install: &str, license: &str, seq: u64, heads: usize) -> Value {
    let heads: Vec<Value> = (0..heads)
        .map(|n| {
            let chain = if n == 0 {
                "platform".to_string()
            } else {
                format!("tenant:{}", Uuid::from_u128(n as u128))
            };
            json!({"chain": chain, "seq": 1, "hash": "ab".repeat(32)})
        })
        .collect();
    json!({
        "install_id": install, "license_id": license, "seq": seq,
        "sent_at": "2026-11-21T10:00:00Z", "version": "1.0.0", "uptime_s": 1,
        "tenants": {"provisioned": 0},
        "usage": {"period": "2026-11", "tenants_in_use": 0},
        "health": {"store_ok": true, "failed_jobs_24h": 0, "free_disk_bytes": 1},
        "llm_probe": null, "audit_heads": heads,
    })
}

async fn deliver(cp: &TestApp, id: &str, body: Value) -> (StatusCode, Value) {
    cp.send(
        Method::POST,
        &format!("/api/installs/{id}/heartbeats"),
        Some(body),
        None,
    )
    .await
}

fn code(v: &Value) -> Option<&str> {
    v["code"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacker_who_knows_the_install_and_license_ids_cannot_bind_a_key() {
    let cp = TestApp::spawn().await;
    let (s, reg) = cp
        .post("/api/installs", json!({"customer": "Victim AG"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{reg}");
    let secret = reg["enrollment_secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("tenroll_"), "{reg}");
    let license = reg["license"].clone();
    let id = reg["install_id"].as_str().unwrap().to_string();
    let uuid: Uuid = id.parse().unwrap();
    let license_id = license["license"]["license_id"].as_str().unwrap();
    // Every Read role sees the ids; none sees the secret.
    let (_, detail) = cp.get(&format!("/api/installs/{id}")).await;
    assert!(!detail.to_string().contains(&secret));
    assert_eq!(
        detail["enrollment"]["enrollment_key_id"],
        license["license"]["enrollment_key_id"]
    );
    let before = cp.total_entries().await;

    let attacker = InstallKey::from_seed(&[66; 32]);
    let hb = signed::sign("heartbeat", heartbeat(&id, license_id, 1, 1), &attacker).unwrap();
    // Trust on first use is gone: without a proof nothing binds.
    let (s, v) = deliver(
        &cp,
        &id,
        json!({"heartbeats": [hb], "install_public_key": attacker.public_b64()}),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, Some("install_enrollment_required")),
        "{v}"
    );
    // A proof made with a guessed secret does not verify.
    let guess = EnrollmentSecret::generate().unwrap();
    let (s, v) = deliver(
        &cp,
        &id,
        json!({"heartbeats": [hb], "install_public_key": attacker.public_b64(),
               "enrollment_proof": guess.prove(&uuid, &attacker.public())}),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, Some("install_enrollment_invalid")),
        "{v}"
    );
    // Nor as a bundle an operator imports.
    let bundle = signed::sign(
        "bundle",
        json!({"format": "tenantry.heartbeat-bundle", "v": 1, "install_id": id,
               "license_id": license_id, "install_public_key": attacker.public_b64(),
               "enrollment_proof": guess.prove(&uuid, &attacker.public()),
               "created_at": "2026-11-21T10:00:00Z", "count": 1, "first_seq": 1,
               "last_seq": 1, "heartbeats": [hb]}),
        &attacker,
    )
    .unwrap();
    let (s, v) = cp.post("/api/installs/heartbeat-bundles", bundle).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, Some("install_enrollment_invalid")),
        "{v}"
    );
    let (_, row) = cp.get(&format!("/api/installs/{id}")).await;
    assert_eq!(
        (
            row["install_key_id"].is_null(),
            row["heartbeats_received"].as_u64(),
            row["enrollment"].is_object()
        ),
        (true, Some(0), true),
        "{row}"
    );
    assert_eq!(cp.total_entries().await, before, "a refusal writes nothing");

    // The appliance holding the secret binds its key; the enrollment is used up in that write.
    remember(&reg);
    let app = appliance(&cp, &license, Some(cp.url("")), |_| {}).await;
    assert_eq!(app.get("/api/license").await.1["state"], "valid");
    beat(&app).await;
    let row = wait_for(&cp, &format!("/api/installs/{id}"), |v| v["last_seq"] == 1).await;
    let (_, own) = app.get("/api/audit/public-key").await;
    assert_eq!(row["install_key_id"], own["key_id"]);
    assert_eq!(row["key_binding"], "enrolled_delivery");
    assert!(row["enrollment"].is_null(), "consumed: {row}");
    let bound = cp.chain("platform").await;
    let entry = bound
        .iter()
        .find(|e| e["action"] == "install.key.bound.v1")
        .unwrap();
    assert_eq!(
        entry["data"]["enrollment_key_id"], license["license"]["enrollment_key_id"],
        "{entry}"
    );

    // The secret is used up: even with it, another key is refused, and nothing changes.
    let used = EnrollmentSecret::parse(&secret).unwrap();
    let hb2 = signed::sign("heartbeat", heartbeat(&id, license_id, 2, 1), &attacker).unwrap();
    let before = cp.total_entries().await;
    let (s, v) = deliver(
        &cp,
        &id,
        json!({"heartbeats": [hb2], "install_public_key": attacker.public_b64(),
               "enrollment_proof": used.prove(&uuid, &attacker.public())}),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, Some("signature_invalid")),
        "{v}"
    );
    assert_eq!(cp.total_entries().await, before);
    let (s, v) = cp
        .post(&format!("/api/installs/{id}/enrollment"), json!({}))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, Some("install_already_enrolled")),
        "{v}"
    );
    assert_eq!(cp.total_entries().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reissues_the_secret_of_an_install_not_bound_yet_and_the_old_one_stops_working()
{
    let cp = TestApp::spawn().await;
    let (id, old_license) = register(
        &cp,
        json!({"customer": "Lost Mail GmbH", "limits": {"max_tenants": 7}}),
    )
    .await;
    let (s, again) = cp
        .post(&format!("/api/installs/{id}/enrollment"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{again}");
    let new_license = again["license"].clone();
    assert!(
        again["enrollment_secret"]
            .as_str()
            .unwrap()
            .starts_with("tenroll_")
    );
    assert_ne!(
        new_license["license"]["enrollment_key_id"],
        old_license["license"]["enrollment_key_id"]
    );
    assert_eq!(new_license["license"]["limits"]["max_tenants"], 7);
    let actions = cp.actions("platform").await;
    assert_eq!(
        &actions[actions.len() - 2..],
        ["install.enrollment.issued.v1", "license.issued.v1"]
    );

    // The appliance still holding the old secret (and its license) cannot bind.
    let stale = appliance(&cp, &old_license, Some(cp.url("")), |_| {}).await;
    beat(&stale).await;
    let sync = wait_for(&stale, "/api/sync", |v| {
        v["sender"]["last_error"].is_string()
    })
    .await;
    assert!(
        sync["sender"]["last_error"]
            .as_str()
            .unwrap()
            .contains("install_enrollment_invalid"),
        "{sync}"
    );
    let (_, row) = cp.get(&format!("/api/installs/{id}")).await;
    assert!(row["install_key_id"].is_null(), "{row}");

    // With the new secret and license it binds.
    remember(&again);
    let app = appliance(&cp, &new_license, Some(cp.url("")), |_| {}).await;
    beat(&app).await;
    let row = wait_for(&cp, &format!("/api/installs/{id}"), |v| v["last_seq"] == 1).await;
    assert_eq!(row["key_binding"], "enrolled_delivery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_cap_heartbeats_are_refused_and_a_delivery_flood_gets_429_with_retry_after() {
    let cp = TestApp::spawn().await;
    let key = InstallKey::from_seed(&[9; 32]);
    let (id, license) = register(
        &cp,
        json!({"customer": "Caps Ltd", "install_public_key": key.public_b64()}),
    )
    .await;
    let license_id = license["license"]["license_id"].as_str().unwrap();
    let send = |doc: Value| {
        let hb = signed::sign("heartbeat", doc, &key).unwrap();
        json!({"heartbeats": [hb]})
    };
    let mut over_heads = heartbeat(&id, license_id, 1, 201);
    let mut long_version = heartbeat(&id, license_id, 1, 1);
    long_version["version"] = json!("9".repeat(65));
    let mut many_states = heartbeat(&id, license_id, 1, 1);
    many_states["tenants"] = (0..17)
        .map(|n| (format!("state{n}"), json!(1)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let mut long_probe = heartbeat(&id, license_id, 1, 1);
    long_probe["llm_probe"] =
        json!({"status": "x".repeat(33), "checked_at": "2026-11-21T10:00:00Z"});
    for (what, doc) in [
        ("audit heads", over_heads.clone()),
        ("version", long_version),
        ("tenants", many_states),
        ("llm_probe.status", long_probe),
    ] {
        let (s, v) = deliver(&cp, &id, send(doc)).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")),
            "{what}: {v}"
        );
        assert!(v["detail"].as_str().unwrap().contains(what), "{what}: {v}");
    }
    // At the cap it is accepted.
    over_heads["audit_heads"].as_array_mut().unwrap().pop();
    let (s, v) = deliver(&cp, &id, send(over_heads)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, row) = cp.get(&format!("/api/installs/{id}")).await;
    assert_eq!(row["heartbeats_received"], 1);

    // A flood of deliveries for one install: the burst, then 429 with Retry-After.
    let (flooded, _) = register(&cp, json!({"customer": "Flood Inc"})).await;
    for n in 0..tenantry::onprem::rate::BURST {
        let (s, v) = deliver(&cp, &flooded, json!({"heartbeats": []})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {v}");
    }
    let res = cp
        .client
        .post(cp.url(&format!("/api/installs/{flooded}/heartbeats")))
        .json(&json!({"heartbeats": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "5");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let v: Value = res.json().await.unwrap();
    assert_eq!(code(&v), Some("heartbeat_rate_limited"), "{v}");
    // Another install is not held back; after Retry-After the flooded one is heard again.
    let (s, _) = deliver(&cp, &id, json!({"heartbeats": []})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    cp.clock.advance(Span::seconds(5));
    let (s, _) = deliver(&cp, &flooded, json!({"heartbeats": []})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_license_without_an_install_key_binds_only_to_the_holder_of_its_enrollment_secret() {
    let cp = TestApp::spawn().await;
    let (id, license) = register(&cp, json!({"customer": "Copycat SA"})).await;
    assert!(license["license"]["install_key_id"].is_null());
    let enrollment = license["license"]["enrollment_key_id"].clone();
    assert!(enrollment.is_string(), "{license}");

    // Another appliance given only the license file: refused, provisioning with it.
    let other = EnrollmentSecret::generate().unwrap();
    for held in [None, Some(other)] {
        let copy = appliance(&cp, &license, None, |c| {
            c.control_plane.as_mut().unwrap().enrollment_secret = held;
        })
        .await;
        let (_, lic) = copy.get("/api/license").await;
        assert_eq!(lic["state"], "invalid", "{lic}");
        assert!(
            lic["problem"]
                .as_str()
                .unwrap()
                .contains("enrollment_secret"),
            "{lic}"
        );
        let app_id = copy.app("Projex Work").await;
        let (s, v) = copy
            .post(
                "/api/tenants",
                json!({"app_id": app_id, "display_name": "Nope", "region": "us-east-1"}),
            )
            .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::FORBIDDEN, Some("license_invalid")),
            "{v}"
        );
    }
    // The holder of the secret is licensed.
    let app = appliance(&cp, &license, None, |_| {}).await;
    assert_eq!(app.get("/api/license").await.1["state"], "valid");

    // A renewal before the key is bound names the same enrollment.
    let (s, renewed) = cp
        .post(&format!("/api/installs/{id}/licenses"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{renewed}");
    assert_eq!(
        renewed["license"]["license"]["enrollment_key_id"],
        enrollment
    );
    assert!(renewed["enrollment_secret"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_an_appliance_to_role_control_plane_keeps_its_license_gate() {
    let cp = TestApp::spawn().await;
    let (_, license) = register(
        &cp,
        json!({"customer": "Role Swap Ltd", "limits": {"max_tenants": 1}}),
    )
    .await;
    let app = appliance(&cp, &license, None, |_| {}).await;
    let app_id = app.app("Projex Work").await;
    app.tenant(&app_id, "The One").await;
    let body = json!({"app_id": app_id, "display_name": "One Too Many", "region": "us-east-1"});
    let (s, v) = app.post("/api/tenants", body.clone()).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, Some("license_limit_reached")),
        "{v}"
    );

    let mut config = app.state.config().as_ref().clone();
    config.role = Role::ControlPlane;
    config.control_plane = None;
    let clock = app.clock.clone();
    let dir = app.stop().await;
    let swapped = TestApp::spawn_with(dir, config, clock).await;
    let (s, v) = swapped.post("/api/tenants", body).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, Some("license_limit_reached")),
        "the role does not lift the gate: {v}"
    );
}
