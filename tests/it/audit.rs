//! The audit ledger: browse, verify, checkpoints, export checked by an outside verifier, and
//! tamper evidence (AUDIT.md; operator guide §7).

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tenantry::actor::Actor;
use tenantry::audit::ChainId;
use tenantry::audit::ledger::{self, CHECKPOINTS, DATA, ENTRIES, HEADS};
use tenantry::audit::model::HeadRecord;
use tenantry::store::{Reader, Store, codec};

use crate::helpers::{TestApp, t0};

/// A tenant whose chain has 9 entries, with a signed checkpoint at seq 7.
async fn history(app: &TestApp) -> (String, ChainId) {
    let app_id = app.app("Projex Work").await;
    let t = app.tenant(&app_id, "Audited Co").await;
    let id = t["id"].as_str().unwrap().to_string();
    for (action, body) in [
        ("activate", json!({})),
        ("suspend", json!({"reason": "non-payment"})),
        ("reinstate", json!({"reason": "paid"})),
        ("suspend", json!({"reason": "abuse report #4411"})),
    ] {
        app.clock.advance(Duration::hours(1));
        assert_eq!(app.action(&id, action, body).await.0, StatusCode::OK);
    }
    let (s, cp) = app
        .post(
            "/api/audit/checkpoints",
            json!({"chain": format!("tenant:{id}")}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{cp}");
    assert_eq!(cp["seq"], 7);
    app.clock.advance(Duration::hours(1));
    app.action(&id, "reinstate", json!({})).await;
    app.patch(&format!("/api/tenants/{id}"), json!({"plan": "pro"}))
        .await;
    let chain = ChainId::parse(&format!("tenant:{id}")).unwrap();
    (id, chain)
}

/// Stops the app, applies `tamper` to its store directly, and starts it again.
async fn tampered<F>(app: TestApp, tamper: F) -> TestApp
where
    F: FnMut(&mut tenantry::store::WriteCtx<'_>) -> Result<(), tenantry::store::Error>
        + Send
        + 'static,
{
    let config = app.state.config().as_ref().clone();
    let clock = app.clock.clone();
    let dir = app.stop().await;
    let store = Store::open(&config.data_dir).unwrap();
    store
        .write(t0(), Actor::system("attacker"), tamper)
        .await
        .unwrap();
    store.close().await;
    drop(store);
    TestApp::spawn_with(dir, config, clock).await
}

async fn verify(app: &TestApp, chain: &ChainId, full: bool) -> Value {
    let (s, v) = app
        .post(
            "/api/audit/verify",
            json!({"chain": chain.to_string(), "full": full}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["results"][0].clone()
}

/// Asserts a verify result is broken at `seq` with a problem mentioning `problem`.
fn assert_broken_at(r: &Value, seq: u64, problem: &str) {
    assert_eq!(
        (r["ok"].as_bool(), r["first_bad_seq"].as_u64()),
        (Some(false), Some(seq)),
        "{r}"
    );
    assert!(r["problem"].as_str().unwrap().contains(problem), "{r}");
}

fn stored(ctx: &tenantry::store::WriteCtx<'_>, chain: &ChainId, seq: u64) -> Vec<u8> {
    ctx.get(ENTRIES, &ledger::entry_key(chain, seq))
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_ledger_verifies_and_signs_checkpoints() {
    let app = TestApp::spawn().await;
    let (_, chain) = history(&app).await;
    let r = verify(&app, &chain, false).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["verified_from_seq"], 7, "walks from the last checkpoint");
    assert_eq!(r["head_seq"], 9);
    assert_eq!(r["first_bad_seq"], Value::Null);
    // Verify signed a new checkpoint at the head.
    let (_, cps) = app
        .get(&format!("/api/audit/checkpoints?chain={chain}"))
        .await;
    let seqs: Vec<u64> = cps
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [7, 9]);
    let r = verify(&app, &chain, true).await;
    assert_eq!(
        (r["ok"].as_bool(), r["verified_from_seq"].as_u64()),
        (Some(true), Some(1))
    );
    // Checkpointing an unmoved head returns the existing checkpoint.
    let (s, cp) = app
        .post(
            "/api/audit/checkpoints",
            json!({"chain": chain.to_string()}),
        )
        .await;
    assert_eq!((s, cp["seq"].as_u64()), (StatusCode::CREATED, Some(9)));
    let (s, v) = app
        .post(
            "/api/audit/checkpoints",
            json!({"chain": format!("tenant:{}", uuid::Uuid::now_v7())}),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (s, v) = app
        .post("/api/audit/verify", json!({"chain": "tenant:garbage"}))
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_entry_is_detected_and_named() {
    let app = TestApp::spawn().await;
    let (_, chain) = history(&app).await;
    // Edit entry 8 (after the checkpoint) and entry 4 (before it), keeping their stored hashes.
    let app = tampered(app, move |ctx| {
        for seq in [4u64, 8] {
            let s = stored(ctx, &chain, seq);
            let text = String::from_utf8(s[32..].to_vec()).unwrap();
            let forged = text.replace("\"kind\":\"operator\"", "\"kind\":\"system\"");
            assert_ne!(forged, text);
            let mut v = s[..32].to_vec();
            v.extend_from_slice(forged.as_bytes());
            ctx.put(ENTRIES, &ledger::entry_key(&chain, seq), &v)?;
        }
        Ok(())
    })
    .await;
    let r = verify(&app, &chain, false).await;
    assert_broken_at(&r, 8, "entry 8 was altered");
    let r = verify(&app, &chain, true).await;
    assert_eq!(
        r["first_bad_seq"], 4,
        "a full walk finds the earlier edit: {r}"
    );
    // A broken chain is never signed.
    let (s, v) = app
        .post(
            "/api/audit/checkpoints",
            json!({"chain": chain.to_string()}),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("chain_broken")),
        "{v}"
    );
    let run = app
        .post("/api/jobs/checkpoint_chains/run", json!({}))
        .await
        .1;
    assert_eq!(run["outcome"], "failed", "{run}");
    assert!(run["error"].as_str().unwrap().contains("at seq 8"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_data_is_detected() {
    let app = TestApp::spawn().await;
    let (_, chain) = history(&app).await;
    let app = tampered(app, move |ctx| {
        let key = ledger::entry_key(&chain, 5);
        let data = String::from_utf8(ctx.get(DATA, &key)?.unwrap()).unwrap();
        ctx.put(
            DATA,
            &key,
            data.replace("non-payment", "non-paymenT").as_bytes(),
        )?;
        Ok(())
    })
    .await;
    let r = verify(&app, &chain, true).await;
    assert_broken_at(&r, 5, "data of entry 5 was altered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_entry_is_detected() {
    let app = TestApp::spawn().await;
    let (_, chain) = history(&app).await;
    let app = tampered(app, move |ctx| {
        ctx.delete(ENTRIES, &ledger::entry_key(&chain, 6))?;
        ctx.delete(DATA, &ledger::entry_key(&chain, 6))?;
        Ok(())
    })
    .await;
    let r = verify(&app, &chain, true).await;
    assert_broken_at(&r, 6, "entry 6 is missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reordering_is_detected() {
    let app = TestApp::spawn().await;
    let (_, chain) = history(&app).await;
    let app = tampered(app, move |ctx| {
        let (a, b) = (stored(ctx, &chain, 8), stored(ctx, &chain, 9));
        ctx.put(ENTRIES, &ledger::entry_key(&chain, 8), &b)?;
        ctx.put(ENTRIES, &ledger::entry_key(&chain, 9), &a)?;
        Ok(())
    })
    .await;
    let r = verify(&app, &chain, false).await;
    assert_broken_at(&r, 8, "reordered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncation_below_a_checkpoint_is_detected_even_with_a_consistent_head() {
    let app = TestApp::spawn().await;
    let (_, chain) = history(&app).await;
    let app = tampered(app, move |ctx| {
        for seq in 6..=9 {
            ctx.delete(ENTRIES, &ledger::entry_key(&chain, seq))?;
            ctx.delete(DATA, &ledger::entry_key(&chain, seq))?;
        }
        // Rewrite the head to name entry 5, as a careful attacker would.
        let five = stored(ctx, &chain, 5);
        let hash: [u8; 32] = five[..32].try_into().unwrap();
        ctx.put(
            HEADS,
            &chain.key(),
            &codec::encode(&HeadRecord::V1 {
                seq: 5,
                hash,
                ts_micros: 0,
            })?,
        )?;
        assert!(ctx.contains(CHECKPOINTS, &ledger::entry_key(&chain, 7))?);
        Ok(())
    })
    .await;
    for full in [false, true] {
        let r = verify(&app, &chain, full).await;
        assert_broken_at(&r, 6, "truncated");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_newest_checkpoints_is_detected_rather_than_moving_the_anchor() {
    let app = TestApp::spawn().await;
    let (_, chain) = history(&app).await;
    // Sign the head too: checkpoints at 7 and 9.
    assert_eq!(verify(&app, &chain, false).await["ok"], true);
    let app = tampered(app, move |ctx| {
        assert!(ctx.delete(CHECKPOINTS, &ledger::entry_key(&chain, 9))?);
        Ok(())
    })
    .await;
    for full in [false, true] {
        let r = verify(&app, &chain, full).await;
        assert_broken_at(&r, 9, "checkpoints were deleted");
    }
    // Every checkpoint gone is no better.
    let app = tampered(app, move |ctx| {
        assert!(ctx.delete(CHECKPOINTS, &ledger::entry_key(&chain, 7))?);
        Ok(())
    })
    .await;
    let r = verify(&app, &chain, false).await;
    assert_broken_at(&r, 9, "no checkpoint is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_data_row_is_not_taken_for_a_shred() {
    let app = TestApp::spawn().await;
    let (_, chain) = history(&app).await;
    let app = tampered(app, move |ctx| {
        assert!(ctx.delete(DATA, &ledger::entry_key(&chain, 8))?);
        Ok(())
    })
    .await;
    for full in [false, true] {
        let r = verify(&app, &chain, full).await;
        assert_broken_at(&r, 8, "no recorded shred covers it");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_full_verify_finds_an_edit_below_the_checkpoint_and_records_it() {
    let app = TestApp::spawn().await;
    let (_, chain) = history(&app).await;
    let run = app.post("/api/jobs/verify_ledger/run", json!({})).await.1;
    assert_eq!(run["outcome"], "ok", "{run}");
    assert!(
        run["summary"].as_str().unwrap().contains("all verify"),
        "{run}"
    );
    // Edit data below the checkpoint at seq 7: a walk from the checkpoint cannot see it.
    let app = tampered(app, move |ctx| {
        let key = ledger::entry_key(&chain, 5);
        let data = String::from_utf8(ctx.get(DATA, &key)?.unwrap()).unwrap();
        ctx.put(DATA, &key, data.replace("non-payment", "paid").as_bytes())?;
        Ok(())
    })
    .await;
    assert_eq!(verify(&app, &chain, false).await["ok"], true);
    let run = app.post("/api/jobs/verify_ledger/run", json!({})).await.1;
    assert_eq!(run["outcome"], "failed", "{run}");
    let error = run["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("{chain} at seq 5")) && error.contains("data of entry 5"),
        "{run}"
    );
    // The dashboard's audit tile reads this summary.
    let summary = app
        .state
        .read(tenantry::audit::last_verify)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.broken, 1);
    assert_eq!(summary.first_broken, Some((chain.to_string(), 5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_checkpoint_is_detected() {
    let app = TestApp::spawn().await;
    let (_, chain) = history(&app).await;
    let app = tampered(app, move |ctx| {
        let key = ledger::entry_key(&chain, 7);
        let mut cp: tenantry::audit::model::CheckpointRecord =
            ctx.get_record(CHECKPOINTS, &key)?.unwrap();
        let tenantry::audit::model::CheckpointRecord::V1 { sig, .. } = &mut cp;
        sig[0] ^= 1;
        ctx.put_record(CHECKPOINTS, &key, &cp)?;
        Ok(())
    })
    .await;
    let r = verify(&app, &chain, false).await;
    assert_broken_at(&r, 7, "invalid signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_verifies_with_an_outside_tool_and_an_altered_export_does_not() {
    let app = TestApp::spawn().await;
    let (_, chain) = history(&app).await;
    app.post("/api/audit/verify", json!({})).await;
    let (s, body, headers) = app
        .get_text(&format!("/api/audit/export?chain={chain}"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.iter().filter(|l| l.get("entry").is_some()).count(), 9);
    let (_, cps) = app
        .get(&format!("/api/audit/checkpoints?chain={chain}"))
        .await;
    let exported: Vec<&Value> = lines.iter().filter_map(|l| l.get("checkpoint")).collect();
    assert_eq!(
        exported.len(),
        2,
        "cp 7 from history(), cp 9 from the verify"
    );
    assert_eq!(
        exported.into_iter().cloned().collect::<Vec<_>>(),
        cps.as_array().unwrap().clone()
    );
    assert_eq!(lines[0]["entry"]["prev"], "0".repeat(64));

    let (_, pk) = app.get("/api/audit/public-key").await;
    let public = pk["public_key"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.ndjson");
    std::fs::write(&good, &body).unwrap();
    let (ok, out) = python_verify(&good, &public);
    assert!(ok, "the outside verifier refused a clean export: {out}");
    assert!(out.contains("9 entries, 2 checkpoints verified"), "{out}");

    let bad = dir.path().join("bad.ndjson");
    std::fs::write(
        &bad,
        body.replacen("abuse report #4411", "abuse report #4412", 1),
    )
    .unwrap();
    let (ok, out) = python_verify(&bad, &public);
    assert!(!ok);
    assert!(out.contains("BROKEN at seq 7"), "{out}");

    let (s, v) = app.get("/api/audit/export").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );
    let (s, _) = app
        .get(&format!(
            "/api/audit/export?chain=tenant:{}",
            uuid::Uuid::now_v7()
        ))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

fn python_verify(path: &std::path::Path, public: &str) -> (bool, String) {
    crate::helpers::python_script("verify_export.py", path, public)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_filters_by_chain_actor_action_and_time_newest_first() {
    let app = TestApp::spawn().await;
    let (id, chain) = history(&app).await;
    let (_, v) = app
        .get(&format!(
            "/api/audit?tenant_id={id}&action=tenant.suspended.v1"
        ))
        .await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0]["data"]["reason"], "abuse report #4411",
        "newest first"
    );
    assert_eq!(items[1]["data"]["reason"], "non-payment");

    let (_, v) = app.get("/api/audit?action=tenant.suspended.v1").await;
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        2,
        "the action index works without a chain"
    );
    let (_, v) = app.get("/api/audit?actor_id=init").await;
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"]["id"] == "init"
                && (e["action"] == "pool.created.v1" || e["action"] == "plan.created.v1"))
    );
    // 10 pools and the 4 configured plans.
    assert_eq!(v["items"].as_array().unwrap().len(), 14);

    // Time window: entries at t0 + 2h .. t0 + 3h (suspend at +2h, reinstate at +3h).
    let from = (t0() + Duration::hours(2)).to_rfc3339();
    let to = (t0() + Duration::hours(3)).to_rfc3339();
    let q = |s: &str| s.replace('+', "%2B");
    for path in [
        format!("/api/audit?chain={chain}&from={}&to={}", q(&from), q(&to)),
        format!("/api/audit?from={}&to={}", q(&from), q(&to)),
        format!(
            "/api/audit?actor_id=admin-ops-token&from={}&to={}",
            q(&from),
            q(&to)
        ),
    ] {
        let (s, v) = app.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let actions: Vec<&str> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            ["tenant.reinstated.v1", "tenant.suspended.v1"],
            "{path}"
        );
    }

    // Paging newest first with no gap or repeat.
    let all = app.chain(&chain.to_string()).await;
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=9).collect::<Vec<_>>());
    let mut paged = Vec::new();
    let mut path = format!("/api/audit?chain={chain}&limit=3");
    loop {
        let (_, v) = app.get(&path).await;
        paged.extend(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_u64().unwrap()),
        );
        match v["next_cursor"].as_str() {
            Some(c) => path = format!("/api/audit?chain={chain}&limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, [9, 8, 7, 6, 5, 4, 3, 2, 1]);

    for bad in [
        "chain=nope",
        "from=yesterday",
        "tenant_id=42",
        "limit=9999",
        "cursor=!!",
    ] {
        let (s, v) = app.get(&format!("/api/audit?{bad}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_key_matches_the_checkpoint_signatures() {
    let app = TestApp::spawn().await;
    let (_, chain) = history(&app).await;
    let (_, pk) = app.get("/api/audit/public-key").await;
    let (_, cps) = app
        .get(&format!("/api/audit/checkpoints?chain={chain}"))
        .await;
    assert_eq!(cps[0]["key_id"], pk["key_id"]);
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(pk["public_key"].as_str().unwrap())
        .unwrap();
    assert_eq!(raw.len(), 32);
    use sha2::Digest;
    assert_eq!(pk["key_id"], hex::encode(sha2::Sha256::digest(&raw)));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key_file = tenantry::audit::signing::InstallKey::path(&app.data_dir());
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(key_file.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
    }
}
