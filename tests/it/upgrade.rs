//! Upgrades: a data dir written by the schema-v1 release (tests/fixtures/v1, made by
//! tests/fixtures/make-v1-fixture.sh with that release's binary) migrates at start, after a
//! backup, and its ledger still verifies.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use tenantry::backup::Identities;
use tenantry::clock::Clock;

use crate::helpers::{TestApp, t0, test_config};
use crate::tenants::names;

/// Copies the v1 fixture into `data`.
pub(crate) fn v1_data_dir(data: &Path) -> Vec<String> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1");
    std::fs::create_dir_all(data.join("keys")).unwrap();
    let compressed = std::fs::read(fixture.join("tenantry.redb.zst")).unwrap();
    std::fs::write(
        data.join("tenantry.redb"),
        zstd::decode_all(compressed.as_slice()).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        fixture.join("keys/install.ed25519"),
        data.join("keys/install.ed25519"),
    )
    .unwrap();
    std::fs::read_to_string(fixture.join("tenants.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn backups(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_data_dir_migrates_at_start_after_a_backup_and_still_verifies() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let data = dir.path().join("data");
    let tenants = v1_data_dir(&data);
    let app = TestApp::spawn_with(dir.clone(), test_config(&data), Clock::manual(t0())).await;

    // The file is at the current schema, and the migration is on record.
    let version = app
        .state
        .read(|r| Ok::<_, tenantry::error::Error>(tenantry::store::schema_version(r)?))
        .await
        .unwrap();
    assert_eq!(version, tenantry::store::SCHEMA_VERSION);
    assert_eq!(version, 7);
    let history = app.state.read(tenantry::upgrade::history).await.unwrap();
    assert_eq!(history.len(), 1);
    let platform = app.chain("platform").await;
    // The migration is the last change before start-up seeds the configured plans, which an
    // install of a version without managed plans gets as records on its first start.
    let at = platform
        .iter()
        .rposition(|e| e["action"] == "schema.migrated.v1")
        .unwrap();
    assert!(
        platform[at + 1..]
            .iter()
            .all(|e| e["action"] == "plan.created.v1")
    );
    let last = &platform[at];
    assert_eq!(last["data"]["from"], 1);
    assert_eq!(last["data"]["to"], 7);
    assert_eq!(last["actor"]["id"], "upgrade");

    // A backup of the v1 store was taken first, and it verifies on its own.
    let taken = backups(&data.join("backups"));
    assert_eq!(taken.len(), 1, "{taken:?}");
    let name = taken[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("tenantry-premigrate-v1-to-v7-") && name.ends_with(".tbk"),
        "{name}"
    );
    assert_eq!(last["data"]["backup_file"], name.as_str());
    let report = tenantry::backup::verify_file(&taken[0], &Identities::none())
        .await
        .unwrap();
    assert_eq!(report.manifest.schema_version, 1);
    assert!(report.chains.iter().all(|c| c.ok));

    // The v1 job runs are still filed under their jobs.
    for (job, runs) in [
        ("checkpoint_chains", 2),
        ("expire_trials", 1),
        ("shred_due_tenants", 1),
    ] {
        let (_, v) = app.get(&format!("/api/jobs/{job}/runs")).await;
        assert_eq!(v["items"].as_array().unwrap().len(), runs, "{job}: {v}");
        assert!(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["job"] == job && r["outcome"] == "ok")
        );
    }
    let (_, v) = app.get("/api/jobs/backup_daily/runs").await;
    assert!(v["items"].as_array().unwrap().is_empty(), "{v}");

    // The data is there and every chain verifies from seq 1, then takes new writes.
    let states: Vec<String> = {
        let mut out = Vec::new();
        for id in &tenants {
            let (st, v) = app.get(&format!("/api/tenant-lifecycle/{id}/state")).await;
            assert_eq!(st, StatusCode::OK, "{v}");
            out.push(v["state"].as_str().unwrap().to_string());
        }
        out
    };
    assert_eq!(states, ["active", "trial", "suspended", "offboarding"]);

    // The directory's indexes were rebuilt in today's key format: sorting by name, filtering by
    // region (alone and with the name sort) and searching all find the v1 tenants.
    let all = ["Acme Corp", "Globex Corp", "Initech Corp", "Umbrella Corp"];
    let (_, v) = app.get("/api/tenants?sort=display_name").await;
    assert_eq!(names(&v), all, "{v}");
    let (_, v) = app.get("/api/tenants?sort=display_name&order=desc").await;
    assert_eq!(
        names(&v),
        all.iter().rev().copied().collect::<Vec<_>>(),
        "{v}"
    );
    let (_, v) = app
        .get("/api/tenants?region=eu-west-1&sort=display_name")
        .await;
    assert_eq!(names(&v), all, "{v}");
    let (_, v) = app.get("/api/tenants?region=eu-west-1").await;
    assert_eq!(names(&v).len(), 4, "{v}");
    let (_, v) = app.get("/api/tenants?status=trial&sort=display_name").await;
    assert_eq!(names(&v), ["Globex Corp"], "{v}");
    let (_, v) = app.get("/api/tenants?q=initech").await;
    assert_eq!(names(&v), ["Initech Corp"], "{v}");
    let (_, v) = app.get("/api/tenants/summary").await;
    let weeks: u64 = v["created_by_week"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(weeks, 4, "the weekly counters were backfilled: {v}");
    // v4 → v5 counted the revenue posture: four tenants on pro, one of them active (paying).
    let (_, v) = app.get("/api/platform/revenue").await;
    let pro = v["plan_distribution"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plan"] == "pro")
        .cloned()
        .unwrap();
    assert_eq!(pro["tenants"], 4, "{v}");
    assert_eq!(v["paying_tenants"], 1, "{v}");
    assert_eq!(v["mrr"][0]["amount_minor"], 4_900, "{v}");
    let step = history[0].clone();
    let tenantry::upgrade::MigrationRecord::V1 { steps, .. } = step;
    assert!(
        steps[0].contains("rebuilt the tenant index of 4 tenant(s)"),
        "{steps:?}"
    );
    assert!(steps[3].contains("counted 4 tenant(s) into"), "{steps:?}");
    // v2 → v3: every tenant got the default catalogue's roles, on its chain.
    assert!(
        steps[1].contains("seeded system roles for 4 of 4 tenant(s)"),
        "{steps:?}"
    );
    for id in &tenants {
        let (_, v) = app.get(&format!("/api/tenants/{id}/roles")).await;
        let roles: Vec<&str> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            roles,
            [
                "auditor",
                "billing_admin",
                "integration",
                "member",
                "tenant_admin"
            ],
            "{v}"
        );
        let chain = app.chain(&format!("tenant:{id}")).await;
        assert_eq!(chain.last().unwrap()["action"], "tenant.roles.seeded.v1");
        assert_eq!(chain.last().unwrap()["actor"]["id"], "upgrade");
    }
    let (_, verify) = app.post("/api/audit/verify", json!({"full": true})).await;
    let results = verify["results"].as_array().unwrap();
    assert_eq!(results.len(), 5, "platform and four tenants: {verify}");
    assert!(results.iter().all(|r| r["ok"] == true), "{verify}");
    let (st, v) = app.action(&tenants[2], "reinstate", json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, run) = app.post("/api/jobs/checkpoint_chains/run", json!({})).await;
    assert_eq!(
        (st, run["outcome"].as_str()),
        (StatusCode::OK, Some("ok")),
        "{run}"
    );

    // A second start finds nothing to migrate.
    let app = app.restart().await;
    assert_eq!(backups(&data.join("backups")).len(), 1);
    assert_eq!(
        app.state
            .read(tenantry::upgrade::history)
            .await
            .unwrap()
            .len(),
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_that_cannot_take_its_backup_changes_nothing() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let data = dir.path().join("data");
    v1_data_dir(&data);
    let mut config = test_config(&data);
    // A file where the backup dir should be: the backup cannot be written.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    config.backup.dir = Some(blocker.join("backups"));
    let err = tenantry::app::Application::build(config, Clock::manual(t0()))
        .await
        .err()
        .expect("the start is refused");
    let msg = err.to_string();
    assert!(msg.contains("nothing was migrated"), "{msg}");
    let store = tenantry::store::Store::open(&data).unwrap();
    let version = store.read(tenantry::store::schema_version).await.unwrap();
    assert_eq!(version, 1);
    store.close().await;
}
