//! On-prem installs (HEARTBEATS.md; operator guide §9): a control plane and an appliance, each
//! the real application on 127.0.0.1 with its own data dir and manual clock. Registration and
//! licenses, delivery over HTTP with an outbox that survives restarts of both sides, forged and
//! replayed heartbeats, air-gap bundles through the real binary, license expiry and limits,
//! silence and recovery, and the witness check against a rewritten chain.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as Span;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;
use tenantry::actor::Actor;
use tenantry::audit::ChainId;
use tenantry::audit::canonical;
use tenantry::audit::ledger::{self, DATA, ENTRIES, HEADS};
use tenantry::audit::model::HeadRecord;
use tenantry::audit::signing::InstallKey;
use tenantry::clock::Clock;
use tenantry::config::{Config, ControlPlaneLink, Role};
use tenantry::onprem::signed;
use tenantry::store::{Reader, Store};

use crate::helpers::{TestApp, t0, test_config};

const BIN: &str = env!("CARGO_BIN_EXE_tenantry");

/// Enrollment secrets handed over "out of band", by license id: [`appliance`] configures the
/// one that came with its license.
static SECRETS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
    std::sync::LazyLock::new(Default::default);

/// Keeps the enrollment secret of a registration (or re-issue) answer `{license,
/// enrollment_secret}` for the appliance that gets its license.
pub(crate) fn remember(answer: &Value) {
    if let Some(secret) = answer["enrollment_secret"].as_str() {
        remember_secret(&answer["license"], secret);
    }
}

/// Keeps `secret` for the appliance that gets `license`.
pub(crate) fn remember_secret(license: &Value, secret: &str) {
    SECRETS.lock().unwrap().insert(
        license["license"]["license_id"]
            .as_str()
            .unwrap()
            .to_string(),
        secret.to_string(),
    );
}

/// The secret kept for `license`.
pub(crate) fn secret_for(license: &Value) -> Option<String> {
    let id = license["license"]["license_id"].as_str()?;
    SECRETS.lock().unwrap().get(id).cloned()
}

/// Registers an install on `cp`; returns its id and signed license (its enrollment secret is
/// kept for [`appliance`]).
pub(crate) async fn register(cp: &TestApp, body: Value) -> (String, Value) {
    let (s, v) = cp.post("/api/installs", body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    remember(&v);
    (
        v["install_id"].as_str().unwrap().to_string(),
        v["license"].clone(),
    )
}

/// The control plane's license key, fetched without credentials as an installer would.
pub(crate) async fn license_key(cp: &TestApp) -> [u8; 32] {
    let (s, v) = cp
        .send(Method::GET, "/api/license/public-key", None, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    signed::public_key_from_b64(v["public_key"].as_str().unwrap())
        .unwrap()
        .to_bytes()
}

/// An appliance licensed by `cp`, delivering to `url` (none: bundles only), configured with the
/// enrollment secret that came with `license`, if any. Heartbeats are written by running the
/// `heartbeat` job unless `tweak` gives it a schedule.
pub(crate) async fn appliance(
    cp: &TestApp,
    license: &Value,
    url: Option<String>,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let license_file = dir.path().join("license.json");
    std::fs::write(&license_file, license.to_string()).unwrap();
    let mut config = test_config(&dir.path().join("data"));
    config.role = Role::Appliance;
    config.control_plane = Some(ControlPlaneLink {
        url: url.map(|u| reqwest::Url::parse(&u).unwrap()),
        ca_file: None,
        license_file,
        license_public_key: license_key(cp).await,
        backlog_max: tenantry::config::DEFAULT_BACKLOG_MAX,
        enrollment_secret: secret_for(license)
            .map(|s| tenantry::onprem::enroll::EnrollmentSecret::parse(&s).unwrap()),
    });
    config
        .schedules
        .insert("heartbeat".into(), "0 0 0 1 1 *".into());
    tweak(&mut config);
    TestApp::spawn_with(dir, config, Clock::manual(t0())).await
}

fn license_file(app: &TestApp) -> std::path::PathBuf {
    app.state
        .config()
        .control_plane
        .as_ref()
        .unwrap()
        .license_file
        .clone()
}

/// Runs the appliance's heartbeat job now; returns the run's summary.
pub(crate) async fn beat(app: &TestApp) -> String {
    let (s, run) = app.post("/api/jobs/heartbeat/run", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{run}");
    assert_eq!(run["outcome"], "ok", "{run}");
    run["summary"].as_str().unwrap().to_string()
}

/// Polls `path` on `app` until `done` holds (real time, at most about 20 s).
pub(crate) async fn wait_for(app: &TestApp, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..1000 {
        let (s, v) = app.get(path).await;
        if s == StatusCode::OK && done(&v) {
            return v;
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} never got there: {last}");
}

/// Waits for `/readyz` to answer 200.
async fn wait_for_ready(app: &TestApp) {
    for _ in 0..500 {
        if app.send(Method::GET, "/readyz", None, None).await.0 == StatusCode::OK {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never ready");
}

/// Every heartbeat the control plane holds for `id`, oldest first.
async fn received(cp: &TestApp, id: &str) -> Vec<Value> {
    let (s, v) = cp
        .get(&format!("/api/installs/{id}/heartbeats?limit=500"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut items = v["items"].as_array().unwrap().clone();
    items.reverse();
    items
}

/// Delivers `heartbeats` as the appliance's sender would, without credentials.
async fn deliver(cp: &TestApp, id: &str, body: Value) -> (StatusCode, Value) {
    cp.send(
        Method::POST,
        &format!("/api/installs/{id}/heartbeats"),
        Some(body),
        None,
    )
    .await
}

/// Re-signs the heartbeat of `doc` after `edit`, with `key`.
fn resign(doc: &Value, key: &InstallKey, edit: impl FnOnce(&mut Value)) -> Value {
    let mut hb = doc["heartbeat"].clone();
    edit(&mut hb);
    signed::sign("heartbeat", hb, key).unwrap()
}

/// Runs the real binary against a data dir (through the running server's admin socket).
fn cli(args: &[&str], data_dir: &Path) -> (bool, String, String) {
    let out = std::process::Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("TENANTRY_CONFIG")
        .env_remove("TENANTRY_ROLE")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_registers_and_its_heartbeat_is_delivered_signed_and_witnessed() {
    let cp = TestApp::spawn().await;
    let (id, license) = register(
        &cp,
        json!({"customer": "Acme Sovereign GmbH", "limits": {"max_tenants": 10}, "features": ["sovereign"]}),
    )
    .await;
    assert_eq!(license["license"]["install_id"], id.as_str());
    assert_eq!(license["license"]["limits"]["max_tenants"], 10);
    let (_, row) = cp.get(&format!("/api/installs/{id}")).await;
    assert_eq!(
        (row["status"].as_str(), row["alert"].as_bool()),
        (Some("pending"), Some(false))
    );
    assert!(
        cp.actions("platform")
            .await
            .contains(&"install.registered.v1".to_string())
    );

    // A tool outside Tenantry checks the license with the published key.
    let (_, key) = cp
        .send(Method::GET, "/api/license/public-key", None, None)
        .await;
    let file = cp.dir.path().join("issued.json");
    std::fs::write(&file, license.to_string()).unwrap();
    let (ok, out) = crate::helpers::python_script(
        "verify_license.py",
        &file,
        key["public_key"].as_str().unwrap(),
    );
    assert!(ok, "{out}");
    assert!(out.contains("valid until"), "{out}");
    assert!(out.contains(", bound to "), "the binding is named: {out}");

    let app = appliance(&cp, &license, Some(cp.url("")), |_| {}).await;
    let (_, lic) = app.get("/api/license").await;
    assert_eq!(lic["state"], "valid", "{lic}");
    assert_eq!(lic["max_tenants"], 10);
    assert_eq!(lic["provisioning"], "allowed");
    let (_, ready) = app
        .send(Method::GET, "/readyz", None, Some(crate::helpers::TOKEN))
        .await;
    assert_eq!(ready["role"], "appliance");
    assert_eq!(ready["license"]["state"], "valid", "{ready}");
    assert_eq!(ready["license"]["max_tenants"], 10);
    assert!(
        ready["license"].get("license").is_none(),
        "the public readiness shows state and limits, not the document"
    );
    assert_eq!(
        app.actions("platform").await.last().unwrap(),
        "license.verified.v1"
    );

    // Each role answers 404 on the other's routes.
    for (server, path) in [
        (&app, "/api/installs"),
        (&app, "/api/license/public-key"),
        (&cp, "/api/license"),
        (&cp, "/api/sync"),
    ] {
        let (s, v) = server.get(path).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }

    let app_id = app.app("Projex Work").await;
    let tenant = app.tenant(&app_id, "Sovereign Tenant").await;
    let tenant_chain = format!("tenant:{}", tenant["id"].as_str().unwrap());
    assert!(beat(&app).await.contains("queued heartbeat 1"));

    let row = wait_for(&cp, &format!("/api/installs/{id}"), |v| v["last_seq"] == 1).await;
    assert_eq!(row["status"], "healthy");
    assert_eq!(row["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(row["key_binding"], "enrolled_delivery");
    let (_, own) = app.get("/api/audit/public-key").await;
    assert_eq!(row["install_public_key"], own["public_key"]);
    assert_eq!(
        row["install_key_id"], own["key_id"],
        "the heartbeat key is the install key"
    );
    assert_eq!(row["tenants"]["provisioned"], 1);
    assert_eq!(row["llm_probe"], Value::Null);
    assert_eq!(row["witness"]["status"], "consistent");
    assert!(row["last_seen_at"].is_string());

    // The heartbeat is the document HEARTBEATS.md describes, heads included.
    let hbs = received(&cp, &id).await;
    assert_eq!(hbs.len(), 1);
    let hb = &hbs[0]["document"]["heartbeat"];
    for member in [
        "install_id",
        "license_id",
        "seq",
        "sent_at",
        "version",
        "uptime_s",
        "tenants",
        "usage",
        "health",
        "llm_probe",
        "audit_heads",
    ] {
        assert!(hb.get(member).is_some(), "{member} missing: {hb}");
    }
    assert_eq!(hb.as_object().unwrap().len(), 11, "{hb}");
    assert_eq!(hb["license_id"], license["license"]["license_id"]);
    assert_eq!(hb["health"]["store_ok"], true);
    assert!(hb["health"]["free_disk_bytes"].as_u64().unwrap() > 0);
    let heads = hb["audit_heads"].as_array().unwrap();
    for chain in ["platform", tenant_chain.as_str()] {
        let entries = app.chain(chain).await;
        let last = entries.last().unwrap();
        let head = heads.iter().find(|h| h["chain"] == chain).unwrap();
        assert_eq!(
            (&head["seq"], &head["hash"]),
            (&last["seq"], &last["hash"]),
            "{chain}"
        );
    }
    let (_, witnessed) = cp.get(&format!("/api/installs/{id}/audit-heads")).await;
    assert_eq!(
        witnessed["items"].as_array().unwrap().len(),
        2,
        "{witnessed}"
    );
    assert!(
        cp.actions("platform")
            .await
            .contains(&"install.key.bound.v1".to_string())
    );

    // The appliance records the acknowledgement after the control plane's answer.
    let sync = wait_for(&app, "/api/sync", |v| v["outbox"]["depth"] == 0).await;
    assert_eq!(sync["mode"], "online");
    assert_eq!(sync["last_delivered_seq"], 1);
    assert_eq!(sync["delivered_total"], 1);
    assert_eq!(sync["sender"]["last_error"], Value::Null);

    // The schedule: moving the clock past 5 minutes writes and delivers the next one.
    let scheduled = appliance(
        &cp,
        &register(&cp, json!({"customer": "Scheduled"})).await.1,
        Some(cp.url("")),
        |c| {
            c.schedules.remove("heartbeat");
        },
    )
    .await;
    // Once ready, the scheduler has planned its firings: moving the clock runs the job.
    wait_for_ready(&scheduled).await;
    scheduled.clock.advance(Span::minutes(5));
    scheduled.wait_for_run("heartbeat", t0()).await;
    let sid = scheduled.get("/api/sync").await.1["install_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(&cp, &format!("/api/installs/{sid}"), |v| v["last_seq"] == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_heartbeats_queued_while_the_control_plane_is_down_arrive_in_order_exactly_once() {
    let cp = TestApp::spawn().await;
    let (id, license) = register(&cp, json!({"customer": "Outage Co"})).await;
    let app = appliance(&cp, &license, Some(cp.url("")), |_| {}).await;

    // The control plane goes down; its port is kept to bring it back on the same address.
    let addr = cp.addr;
    let mut cp_config = cp.state.config().as_ref().clone();
    let cp_clock = cp.clock.clone();
    let cp_dir = cp.stop().await;

    for i in 1..=20 {
        assert!(beat(&app).await.contains(&format!("queued heartbeat {i} ")));
    }
    let sync = wait_for(&app, "/api/sync", |v| {
        v["sender"]["consecutive_failures"].as_u64() >= Some(1)
    })
    .await;
    assert_eq!(sync["outbox"]["depth"], 20, "{sync}");
    assert_eq!(sync["outbox"]["oldest_seq"], 1);
    assert!(
        sync["sender"]["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot reach"),
        "{sync}"
    );
    assert!(sync["sender"]["next_attempt_at"].is_string());

    // The appliance restarts: nothing queued is lost.
    let app = app.restart().await;
    let (_, sync) = app.get("/api/sync").await;
    assert_eq!(sync["outbox"]["depth"], 20, "{sync}");
    assert_eq!(sync["next_seq"], 21);
    wait_for(&app, "/api/sync", |v| {
        v["sender"]["consecutive_failures"].as_u64() >= Some(1)
    })
    .await;

    // The control plane comes back on the same port; the sender retries when its backoff ends.
    cp_config.listen = addr;
    let cp = TestApp::spawn_with(cp_dir, cp_config, cp_clock).await;
    app.clock.advance(Span::minutes(11));
    wait_for(&cp, &format!("/api/installs/{id}"), |v| v["last_seq"] == 20).await;

    let hbs = received(&cp, &id).await;
    let seqs: Vec<u64> = hbs.iter().map(|h| h["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>(), "each seq exactly once");
    let arrivals: Vec<u64> = hbs.iter().map(|h| h["arrival"].as_u64().unwrap()).collect();
    assert_eq!(
        arrivals,
        (1..=20).collect::<Vec<_>>(),
        "accepted in seq order"
    );
    let (_, row) = cp.get(&format!("/api/installs/{id}")).await;
    assert_eq!(
        (
            row["heartbeats_received"].as_u64(),
            row["missing_seqs"].as_u64()
        ),
        (Some(20), Some(0))
    );
    let sync = wait_for(&app, "/api/sync", |v| v["outbox"]["depth"] == 0).await;
    assert_eq!(sync["delivered_total"], 20);
    assert_eq!(sync["last_delivered_seq"], 20);
    assert_eq!(sync["sender"]["last_error"], Value::Null);
    assert!(sync["last_success_at"].is_string());

    // A lost acknowledgement means a resend: it is answered as duplicates and stores nothing.
    let docs: Vec<Value> = hbs.iter().map(|h| h["document"].clone()).collect();
    let (s, v) = deliver(&cp, &id, json!({"heartbeats": docs})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(0), Some(20))
    );
    assert_eq!(received(&cp, &id).await.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_heartbeat_is_refused_and_stored_nowhere_and_a_replayed_seq_is_a_duplicate() {
    let cp = TestApp::spawn().await;
    let (id, license) = register(&cp, json!({"customer": "Replay Ltd"})).await;
    let app = appliance(&cp, &license, Some(cp.url("")), |_| {}).await;
    beat(&app).await;
    wait_for(&cp, &format!("/api/installs/{id}"), |v| v["last_seq"] == 1).await;
    let doc = received(&cp, &id).await[0]["document"].clone();
    let audit_before = cp.actions("platform").await.len();
    let own = InstallKey::load_or_create(&app.data_dir(), false).unwrap();
    let public = signed::public_key_b64(&own.public());

    // A replayed seq: 200, marked duplicate, nothing changes.
    let (s, v) = deliver(
        &cp,
        &id,
        json!({"heartbeats": [doc], "install_public_key": public}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["results"], json!([{"seq": 1, "status": "duplicate"}]));

    // Forged: another key, whether or not it names itself.
    let forger = InstallKey::from_seed(&[9; 32]);
    let forged = resign(&doc, &forger, |h| h["seq"] = json!(2));
    for body in [
        json!({"heartbeats": [forged.clone()]}),
        json!({"heartbeats": [forged.clone()], "install_public_key": signed::public_key_b64(&forger.public())}),
    ] {
        let (s, v) = deliver(&cp, &id, body).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("signature_invalid")),
            "{v}"
        );
        assert!(
            v["detail"].as_str().unwrap().contains("nothing was stored"),
            "{v}"
        );
    }
    // Altered after signing.
    let mut altered = doc.clone();
    altered["heartbeat"]["seq"] = json!(3);
    altered["heartbeat"]["uptime_s"] = json!(999_999);
    let (s, v) = deliver(&cp, &id, json!({"heartbeats": [altered]})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("signature_invalid"))
    );
    assert!(v["detail"].as_str().unwrap().contains("altered"), "{v}");
    // One forged heartbeat refuses the whole request: its genuine neighbour is not stored.
    let genuine = resign(&doc, &own, |h| h["seq"] = json!(1000));
    let (s, _) = deliver(&cp, &id, json!({"heartbeats": [genuine.clone(), forged]})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (_, row) = cp.get(&format!("/api/installs/{id}")).await;
    assert_eq!(
        (
            row["last_seq"].as_u64(),
            row["heartbeats_received"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(received(&cp, &id).await.len(), 1);
    assert_eq!(
        cp.actions("platform").await.len(),
        audit_before,
        "a refusal audits nothing"
    );

    // The genuine one alone is accepted; the same seq with other content is a conflict.
    let (s, v) = deliver(&cp, &id, json!({"heartbeats": [genuine]})).await;
    assert_eq!(
        (s, v["accepted"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{v}"
    );
    let other = resign(&doc, &own, |h| {
        h["seq"] = json!(1000);
        h["uptime_s"] = json!(1);
    });
    let (s, v) = deliver(&cp, &id, json!({"heartbeats": [other]})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("heartbeat_seq_conflict")),
        "{v}"
    );

    // An unknown install, and a body that is no delivery.
    let ghost = uuid::Uuid::now_v7();
    let (s, v) = deliver(&cp, &ghost.to_string(), json!({"heartbeats": [doc]})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (s, v) = deliver(&cp, &id, json!({"heartbeats": []})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    let (s, _) = deliver(
        &cp,
        &id,
        json!({"heartbeats": [{"heartbeat": {}, "key_id": "x"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_air_gapped_install_exports_a_bundle_that_imports_once_and_an_altered_bundle_is_refused_whole()
 {
    let cp = {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut config = test_config(&dir.path().join("data"));
        config.installs.bundle_limit_bytes = 2 * 1024 * 1024;
        TestApp::spawn_with(dir, config, Clock::manual(t0())).await
    };
    let (id, license) = register(&cp, json!({"customer": "Bunker AG", "air_gapped": true})).await;
    assert_eq!(license["license"]["air_gapped"], true);
    let app = appliance(&cp, &license, None, |_| {}).await;
    let (_, sync) = app.get("/api/sync").await;
    assert_eq!(sync["mode"], "air_gapped");
    for _ in 0..3 {
        beat(&app).await;
    }

    // Export through the running appliance's admin socket, with the real binary.
    let file = app.dir.path().join("bundle.json");
    let (ok, _, err) = cli(
        &["heartbeat", "export", "--out", file.to_str().unwrap()],
        &app.data_dir(),
    );
    assert!(ok, "{err}");
    assert!(err.contains("wrote 3 heartbeat(s)"), "{err}");
    let bundle: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(bundle["bundle"]["count"], 3);

    // Altered bundles are refused whole and store nothing.
    let mut one_changed = bundle.clone();
    one_changed["bundle"]["heartbeats"][1]["heartbeat"]["uptime_s"] = json!(1);
    let mut one_removed = bundle.clone();
    one_removed["bundle"]["heartbeats"]
        .as_array_mut()
        .unwrap()
        .remove(1);
    one_removed["bundle"]["count"] = json!(2);
    let mut header_changed = bundle.clone();
    header_changed["bundle"]["created_at"] = json!("2020-01-01T00:00:00.000000Z");
    let mut resigned_by_other = bundle.clone();
    let other = InstallKey::from_seed(&[5; 32]);
    resigned_by_other = signed::sign("bundle", resigned_by_other["bundle"].take(), &other).unwrap();
    for altered in [one_changed, one_removed, header_changed, resigned_by_other] {
        let (s, v) = cp.post("/api/installs/heartbeat-bundles", altered).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("signature_invalid")),
            "{v}"
        );
        assert!(
            v["detail"].as_str().unwrap().contains("refused as a whole"),
            "{v}"
        );
    }
    let (_, row) = cp.get(&format!("/api/installs/{id}")).await;
    assert_eq!(
        (
            row["heartbeats_received"].as_u64(),
            row["install_key_id"].is_null()
        ),
        (Some(0), true)
    );
    assert!(
        !cp.actions("platform")
            .await
            .iter()
            .any(|a| a.starts_with("install.bundle"))
    );

    // Import with the real binary through the control plane's admin socket.
    let (ok, out, err) = cli(
        &["heartbeat", "import", file.to_str().unwrap()],
        &cp.data_dir(),
    );
    assert!(ok, "{err}");
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (result["accepted"].as_u64(), result["last_seq"].as_u64()),
        (Some(3), Some(3))
    );
    assert!(err.contains("tenantry heartbeat ack --through 3"), "{err}");
    let (_, row) = cp.get(&format!("/api/installs/{id}")).await;
    assert_eq!(row["heartbeats_received"], 3);
    assert_eq!(row["key_binding"], "enrolled_bundle");
    assert_eq!(row["status"], "healthy");
    let imported: Vec<String> = cp.actions("platform").await;
    assert_eq!(
        imported
            .iter()
            .filter(|a| *a == "install.bundle.imported.v1")
            .count(),
        1
    );
    assert!(
        received(&cp, &id)
            .await
            .iter()
            .all(|h| h["via"] == "bundle")
    );

    // Importing again changes nothing.
    let (s, v) = cp
        .post("/api/installs/heartbeat-bundles", bundle.clone())
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(cp.actions("platform").await.len(), imported.len());

    // An air-gapped install may not deliver online.
    let doc = bundle["bundle"]["heartbeats"][0].clone();
    let (s, v) = deliver(&cp, &id, json!({"heartbeats": [doc]})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("install_air_gapped"))
    );

    // The appliance acknowledges the import; the outbox empties.
    let (ok, out, err) = cli(&["heartbeat", "ack", "--through", "3"], &app.data_dir());
    assert!(ok, "{err}");
    assert!(out.contains("removed 3"), "{out}");
    let (_, sync) = app.get("/api/sync").await;
    assert_eq!(
        (
            sync["outbox"]["depth"].as_u64(),
            sync["acknowledged_total"].as_u64()
        ),
        (Some(0), Some(3))
    );
    assert_eq!(
        app.actions("platform").await.last().unwrap(),
        "heartbeat.acknowledged.v1"
    );
    let (s, v) = app.post("/api/sync/ack", json!({"through": 99})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );

    // A bundle over the control plane's bundle limit is 413.
    let big = format!("{{\"bundle\": \"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let res = cp
        .client
        .post(cp.url("/api/installs/heartbeat-bundles"))
        .bearer_auth(crate::helpers::TOKEN)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_drops_the_oldest_and_the_control_plane_sees_the_gap() {
    let cp = TestApp::spawn().await;
    let (id, license) = register(&cp, json!({"customer": "Small Disk Inc"})).await;
    let app = appliance(&cp, &license, None, |c| {
        c.control_plane.as_mut().unwrap().backlog_max = 10;
    })
    .await;
    let app_id = app.app("Projex Work").await;
    let t = app.tenant(&app_id, "Quiet Tenant").await;
    let chain = format!("tenant:{}", t["id"].as_str().unwrap());
    for _ in 0..13 {
        beat(&app).await;
    }
    let (_, sync) = app.get("/api/sync").await;
    assert_eq!(sync["outbox"]["depth"], 10, "{sync}");
    assert_eq!(sync["outbox"]["dropped_total"], 3);
    assert_eq!(sync["outbox"]["oldest_seq"], 4);
    assert_eq!(sync["outbox"]["policy"], "drop_oldest");

    let file = app.dir.path().join("bundle.json");
    let (ok, _, err) = cli(
        &["heartbeat", "export", "--out", file.to_str().unwrap()],
        &app.data_dir(),
    );
    assert!(ok, "{err}");
    let bundle: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    // Heartbeat 1 carried the quiet tenant's head; it was dropped, so a later one carries it again.
    let carries = |hb: &Value| {
        hb["heartbeat"]["audit_heads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["chain"] == chain.as_str())
    };
    assert!(
        bundle["bundle"]["heartbeats"]
            .as_array()
            .unwrap()
            .iter()
            .any(carries)
    );
    let (s, v) = cp.post("/api/installs/heartbeat-bundles", bundle).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, row) = cp.get(&format!("/api/installs/{id}")).await;
    assert_eq!(
        (
            row["last_seq"].as_u64(),
            row["heartbeats_received"].as_u64(),
            row["missing_seqs"].as_u64()
        ),
        (Some(13), Some(10), Some(3))
    );
    let (_, heads) = cp.get(&format!("/api/installs/{id}/audit-heads")).await;
    assert!(
        heads["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["chain"] == chain.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_license_degrades_provisioning_and_the_tenant_limit_is_enforced() {
    let cp = TestApp::spawn().await;
    let expires = t0() + Span::days(2);
    let (_, license) = register(
        &cp,
        json!({"customer": "Limited GmbH", "limits": {"max_tenants": 2}, "expires_at": tenantry::clock::rfc3339_micros(expires)}),
    )
    .await;
    let app = appliance(&cp, &license, Some(cp.url("")), |_| {}).await;
    let app_id = app.app("Projex Work").await;
    let first = app.tenant(&app_id, "One").await;
    app.tenant(&app_id, "Two").await;
    let before = app.total_entries().await;
    let (s, v) = app
        .post(
            "/api/tenants",
            json!({"app_id": app_id, "display_name": "Three", "region": "us-east-1"}),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("license_limit_reached")),
        "{v}"
    );
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("allows 2 tenant(s) and 2 exist"),
        "{v}"
    );
    assert_eq!(
        app.total_entries().await,
        before,
        "the refusal wrote nothing"
    );
    let (_, lic) = app.get("/api/license").await;
    assert_eq!(
        (lic["tenants_in_use"].as_u64(), lic["provisioning"].as_str()),
        (Some(2), Some("refused"))
    );

    // Past expires_at, provisioning is refused at once; reads and other work go on.
    wait_for_ready(&app).await;
    app.clock.advance(Span::days(3));
    let (s, v) = app
        .post(
            "/api/tenants",
            json!({"app_id": app_id, "display_name": "Four", "region": "us-east-1"}),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("license_expired")),
        "{v}"
    );
    let (s, list) = app.get("/api/tenants").await;
    assert_eq!(
        (s, list["items"].as_array().unwrap().len()),
        (StatusCode::OK, 2)
    );
    let (s, _) = app
        .action(first["id"].as_str().unwrap(), "activate", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    // The hourly license check notices and audits the expiry.
    app.wait_for_run("verify_license", t0() + Span::days(1))
        .await;
    let (_, lic) = app.get("/api/license").await;
    assert_eq!(lic["state"], "expired", "{lic}");
    assert!(lic["days_left"].as_i64().unwrap() < 0);
    let (_, ready) = app
        .send(Method::GET, "/readyz", None, Some(crate::helpers::TOKEN))
        .await;
    assert_eq!(
        (ready["status"].as_str(), ready["license"]["state"].as_str()),
        (Some("ready"), Some("expired"))
    );
    assert!(
        app.actions("platform")
            .await
            .contains(&"license.expired.v1".to_string())
    );

    // An expired install still reports; the control plane shows it red.
    let id = license["license"]["install_id"]
        .as_str()
        .unwrap()
        .to_string();
    cp.clock.advance(Span::days(3));
    beat(&app).await;
    let row = wait_for(&cp, &format!("/api/installs/{id}"), |v| v["last_seq"] == 1).await;
    assert_eq!(
        (row["status"].as_str(), row["alert"].as_bool()),
        (Some("expired"), Some(true))
    );

    // The vendor renews: a new license id for the same install, terms kept unless given.
    let (s, renewed) = cp
        .post(
            &format!("/api/installs/{id}/licenses"),
            json!({"expires_at": tenantry::clock::rfc3339_micros(t0() + Span::days(400)), "limits": {"max_tenants": 3}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{renewed}");
    let renewed = renewed["license"].clone();
    assert_eq!(renewed["license"]["install_id"], id.as_str());
    assert_ne!(
        renewed["license"]["license_id"],
        license["license"]["license_id"]
    );
    let (_, own) = app.get("/api/audit/public-key").await;
    assert_eq!(
        renewed["license"]["install_key_id"], own["key_id"],
        "bound to the key now known"
    );
    assert_eq!(
        cp.get(&format!("/api/installs/{id}")).await.1["status"],
        "healthy"
    );
    assert!(
        cp.actions("platform")
            .await
            .contains(&"license.issued.v1".to_string())
    );
    // Heartbeats written under the old license are still taken in.
    beat(&app).await;
    wait_for(&cp, &format!("/api/installs/{id}"), |v| v["last_seq"] == 2).await;
    // Installed on the appliance, the renewal restores provisioning up to the new limit.
    std::fs::write(license_file(&app), renewed.to_string()).unwrap();
    let (_, run) = app.post("/api/jobs/verify_license/run", json!({})).await;
    assert_eq!(run["outcome"], "ok", "{run}");
    let (s, v) = app
        .post(
            "/api/tenants",
            json!({"app_id": app_id, "display_name": "Three", "region": "us-east-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    beat(&app).await;
    wait_for(&cp, &format!("/api/installs/{id}"), |v| v["last_seq"] == 3).await;
    let last = received(&cp, &id).await.pop().unwrap();
    assert_eq!(
        last["document"]["heartbeat"]["license_id"],
        renewed["license"]["license_id"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_altered_or_foreign_license_is_refused_with_a_message_that_says_what_is_wrong() {
    let cp = TestApp::spawn().await;
    let (_, license) = register(
        &cp,
        json!({"customer": "Tamper Corp", "limits": {"max_tenants": 1}}),
    )
    .await;
    let mut altered = license.clone();
    altered["license"]["limits"]["max_tenants"] = json!(100_000);
    let app = appliance(&cp, &altered, None, |_| {}).await;
    let (_, lic) = app.get("/api/license").await;
    assert_eq!(lic["state"], "invalid", "{lic}");
    assert!(
        lic["problem"]
            .as_str()
            .unwrap()
            .contains("altered after it was signed"),
        "{lic}"
    );
    let app_id = app.app("Projex Work").await;
    let body = json!({"app_id": app_id, "display_name": "Nope", "region": "us-east-1"});
    let (s, v) = app.post("/api/tenants", body.clone()).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("license_invalid")),
        "{v}"
    );
    assert!(
        app.actions("platform")
            .await
            .contains(&"license.refused.v1".to_string())
    );
    // Without a verified license there is nothing to report for.
    let (_, run) = app.post("/api/jobs/heartbeat/run", json!({})).await;
    assert!(
        run["summary"].as_str().unwrap().contains("no heartbeat"),
        "{run}"
    );

    // Another control plane's license names both keys.
    let other = TestApp::spawn().await;
    let (_, foreign) = register(&other, json!({"customer": "Tamper Corp"})).await;
    std::fs::write(license_file(&app), foreign.to_string()).unwrap();
    let (_, run) = app.post("/api/jobs/verify_license/run", json!({})).await;
    assert_eq!(run["outcome"], "failed");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("another control plane"),
        "{run}"
    );

    // The genuine file, re-read by the job, restores provisioning (up to its limit).
    std::fs::write(license_file(&app), license.to_string()).unwrap();
    let (_, run) = app.post("/api/jobs/verify_license/run", json!({})).await;
    assert_eq!(run["outcome"], "ok", "{run}");
    let (s, _) = app.post("/api/tenants", body).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        app.actions("platform")
            .await
            .iter()
            .filter(|a| *a == "license.verified.v1")
            .count(),
        1
    );

    std::fs::remove_file(license_file(&app)).unwrap();
    let (_, run) = app.post("/api/jobs/verify_license/run", json!({})).await;
    assert!(
        run["error"].as_str().unwrap().contains("no license file"),
        "{run}"
    );
    assert_eq!(app.get("/api/license").await.1["state"], "missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_that_stops_sending_goes_silent_and_recovers() {
    let cp = TestApp::spawn().await;
    let (id, license) = register(&cp, json!({"customer": "Flaky Networks"})).await;
    let app = appliance(&cp, &license, Some(cp.url("")), |_| {}).await;
    beat(&app).await;
    wait_for(&cp, &format!("/api/installs/{id}"), |v| v["last_seq"] == 1).await;

    // Two missed intervals: still healthy. Three: silent.
    wait_for_ready(&cp).await;
    cp.clock.advance(Span::minutes(11));
    cp.wait_for_run("silent_installs", t0() + Span::minutes(10))
        .await;
    assert_eq!(
        cp.get(&format!("/api/installs/{id}")).await.1["status"],
        "healthy"
    );
    cp.clock.advance(Span::minutes(5));
    cp.wait_for_run("silent_installs", t0() + Span::minutes(15))
        .await;
    let (_, row) = cp.get(&format!("/api/installs/{id}")).await;
    assert_eq!(
        (row["status"].as_str(), row["alert"].as_bool()),
        (Some("silent"), Some(true)),
        "{row}"
    );
    let (_, silent) = cp.get("/api/installs?status=silent").await;
    assert_eq!(silent["items"][0]["install_id"], id.as_str());
    let actions = cp.actions("platform").await;
    assert_eq!(
        actions.iter().filter(|a| *a == "install.silent.v1").count(),
        1
    );
    // Later runs do not repeat it.
    cp.clock.advance(Span::minutes(2));
    cp.wait_for_run("silent_installs", t0() + Span::minutes(17))
        .await;
    assert_eq!(
        cp.actions("platform")
            .await
            .iter()
            .filter(|a| *a == "install.silent.v1")
            .count(),
        1
    );

    beat(&app).await;
    let row = wait_for(&cp, &format!("/api/installs/{id}"), |v| v["last_seq"] == 2).await;
    assert_eq!(
        (row["status"].as_str(), row["alert"].as_bool()),
        (Some("healthy"), Some(false))
    );
    assert_eq!(row["silent_since"], Value::Null);
    let entry = cp.chain("platform").await.pop().unwrap();
    assert_eq!(entry["action"], "install.recovered.v1");
    assert_eq!(entry["data"]["heartbeat_seq"], 2);
    assert!(entry["data"]["silent_for_s"].as_i64().unwrap() >= 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_appliance_chain_is_detected_by_the_witness_check() {
    let cp = TestApp::spawn().await;
    let (id, license) = register(&cp, json!({"customer": "Rewrite Industries"})).await;
    let app = appliance(&cp, &license, Some(cp.url("")), |_| {}).await;
    let app_id = app.app("Projex Work").await;
    let t = app.tenant(&app_id, "Evidence Co").await;
    let tenant = ChainId::parse(&format!("tenant:{}", t["id"].as_str().unwrap())).unwrap();
    beat(&app).await;
    wait_for(&cp, &format!("/api/installs/{id}"), |v| v["last_seq"] == 1).await;

    // Someone with the data dir rewrites history consistently: the tenant chain's last entry
    // gets new data (re-hashed, head moved along), and the platform chain loses its last entry.
    // Verification on the appliance cannot tell: there is no checkpoint to contradict it.
    let config = app.state.config().as_ref().clone();
    let clock = app.clock.clone();
    let dir = app.stop().await;
    let store = Store::open(&config.data_dir).unwrap();
    store
        .write(t0(), Actor::system("attacker"), move |ctx| {
            let Some(HeadRecord::V1 { seq, ts_micros, .. }) = ledger::head(ctx, &tenant)? else {
                unreachable!()
            };
            let key = ledger::entry_key(&tenant, seq);
            let stored = ctx.get(ENTRIES, &key)?.unwrap();
            let mut env: Value = serde_json::from_slice(&stored[32..]).unwrap();
            let data = canonical::to_vec(&json!({"display_name": "Someone Else"})).unwrap();
            env["data_sha256"] = json!(hex::encode(sha2::Sha256::digest(&data)));
            let bytes = canonical::to_vec(&env).unwrap();
            let hash: [u8; 32] = sha2::Sha256::digest(&bytes).into();
            ctx.put(ENTRIES, &key, &[hash.as_slice(), &bytes].concat())?;
            ctx.put(DATA, &key, &data)?;
            ctx.put_record(
                HEADS,
                &tenant.key(),
                &HeadRecord::V1 {
                    seq,
                    hash,
                    ts_micros,
                },
            )?;

            let platform = ChainId::Platform;
            let Some(HeadRecord::V1 { seq, .. }) = ledger::head(ctx, &platform)? else {
                unreachable!()
            };
            ctx.delete(ENTRIES, &ledger::entry_key(&platform, seq))?;
            let prev = ctx
                .get(ENTRIES, &ledger::entry_key(&platform, seq - 1))?
                .unwrap();
            let prev_env: Value = serde_json::from_slice(&prev[32..]).unwrap();
            let prev_ts =
                chrono::DateTime::parse_from_rfc3339(prev_env["ts"].as_str().unwrap()).unwrap();
            ctx.put_record(
                HEADS,
                &platform.key(),
                &HeadRecord::V1 {
                    seq: seq - 1,
                    hash: prev[..32].try_into().unwrap(),
                    ts_micros: prev_ts.timestamp_micros(),
                },
            )?;
            Ok::<_, tenantry::error::Error>(())
        })
        .await
        .unwrap();
    store.close().await;
    drop(store);
    let app = TestApp::spawn_with(dir, config, clock).await;
    let (_, local) = app.post("/api/audit/verify", json!({"full": true})).await;
    assert!(
        local["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ok"] == true),
        "a consistent rewrite passes local verification: {local}"
    );

    beat(&app).await;
    let row = wait_for(&cp, &format!("/api/installs/{id}"), |v| v["last_seq"] == 2).await;
    assert_eq!(row["witness"]["status"], "contradicted", "{row}");
    assert_eq!(row["witness"]["contradictions"], 2);
    assert_eq!(row["alert"], true);
    let (_, detail) = cp.get(&format!("/api/installs/{id}")).await;
    let mut kinds: Vec<(String, String)> = detail["contradictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["chain"].as_str().unwrap().to_string(),
                c["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("platform".to_string(), "went_backwards".to_string()),
            (tenant.to_string(), "rewritten".to_string())
        ]
    );
    let entry = cp.chain("platform").await.pop().unwrap();
    assert_eq!(entry["action"], "install.witness.contradicted.v1");
    assert_eq!(entry["data"]["count"], 2);
    // The contradicting heartbeat is kept as evidence.
    assert_eq!(received(&cp, &id).await.len(), 2);
}

/// A TLS front for a control plane: terminates TLS on 127.0.0.1 with a certificate for
/// `localhost` issued by a fresh CA, and relays the bytes to `backend`. Returns its port and the
/// CA certificate (PEM).
async fn tls_front(backend: std::net::SocketAddr) -> (u16, String) {
    use tokio_rustls::rustls;
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key.into())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await
                    && let Ok(mut up) = tokio::net::TcpStream::connect(backend).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                }
            });
        }
    });
    (port, ca.pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_travel_over_https_trusting_only_the_configured_ca() {
    let cp = TestApp::spawn().await;
    let (port, ca) = tls_front(cp.addr).await;
    let (_, other_ca) = tls_front(cp.addr).await;
    let url = format!("https://localhost:{port}");

    let (id, license) = register(&cp, json!({"customer": "TLS GmbH"})).await;
    let ca_file = cp.dir.path().join("cp-ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let app = appliance(&cp, &license, Some(url.clone()), |c| {
        c.control_plane.as_mut().unwrap().ca_file = Some(ca_file);
    })
    .await;
    beat(&app).await;
    wait_for(&cp, &format!("/api/installs/{id}"), |v| v["last_seq"] == 1).await;

    // Another CA is not trusted, even though the control plane is the same.
    let (id2, license2) = register(&cp, json!({"customer": "Wrong CA Ltd"})).await;
    let wrong = cp.dir.path().join("other-ca.pem");
    std::fs::write(&wrong, &other_ca).unwrap();
    let app2 = appliance(&cp, &license2, Some(url), |c| {
        c.control_plane.as_mut().unwrap().ca_file = Some(wrong);
    })
    .await;
    beat(&app2).await;
    let sync = wait_for(&app2, "/api/sync", |v| {
        v["sender"]["last_error"].is_string()
    })
    .await;
    let err = sync["sender"]["last_error"].as_str().unwrap();
    assert!(
        err.contains("certificate") || err.contains("Certificate"),
        "{err}"
    );
    assert_eq!(
        cp.get(&format!("/api/installs/{id2}")).await.1["last_seq"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_can_play_both_roles_and_witness_itself() {
    // First as a control plane, which makes its license key and registers itself.
    let cp = TestApp::spawn().await;
    let (id, license) = register(&cp, json!({"customer": "Demo Laptop"})).await;
    let key = license_key(&cp).await;
    let addr = cp.addr;
    let mut config = cp.state.config().as_ref().clone();
    let clock = cp.clock.clone();
    let dir = cp.stop().await;
    let license_file = dir.path().join("license.json");
    std::fs::write(&license_file, license.to_string()).unwrap();
    config.listen = addr;
    config.role = Role::Both;
    config.control_plane = Some(ControlPlaneLink {
        url: Some(reqwest::Url::parse(&format!("http://{addr}")).unwrap()),
        ca_file: None,
        license_file,
        license_public_key: key,
        backlog_max: tenantry::config::DEFAULT_BACKLOG_MAX,
        enrollment_secret: secret_for(&license)
            .map(|s| tenantry::onprem::enroll::EnrollmentSecret::parse(&s).unwrap()),
    });
    config
        .schedules
        .insert("heartbeat".into(), "0 0 0 1 1 *".into());
    let both = TestApp::spawn_with(dir, config, clock).await;
    assert_eq!(both.get("/api/license").await.1["state"], "valid");
    let (_, jobs) = both.get("/api/jobs").await;
    let names: Vec<&str> = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    for job in ["heartbeat", "verify_license", "silent_installs"] {
        assert!(names.contains(&job), "{names:?}");
    }
    beat(&both).await;
    let row = wait_for(&both, &format!("/api/installs/{id}"), |v| {
        v["last_seq"] == 1
    })
    .await;
    assert_eq!(row["status"], "healthy");
}
