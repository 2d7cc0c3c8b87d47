//! The ordered sender: delivers the outbox to `POST {url}/api/installs/{install_id}/heartbeats`
//! over HTTPS (rustls with aws-lc-rs; with `ca_file`, only that CA is trusted), oldest first, in
//! batches, and removes a batch only once the control plane answered 200 for it. The control
//! plane is idempotent per seq, so a batch whose answer was lost is simply sent again: every
//! heartbeat arrives exactly once, in order, across restarts of either side.
//!
//! While the control plane is unreachable or refuses, the sender backs off exponentially
//! (5 s doubling to 10 min) with full jitter (a random delay between half and all of the step),
//! sleeping on the [`crate::clock::Clock`] so tests move time instead of waiting. A new
//! heartbeat does not cut a backoff short; `POST /api/sync/flush` does. Redirects are not
//! followed, and nothing is sent for an air-gapped license.

use std::time::Duration;

use super::outbox::{self, Pending};
use crate::license::gate;
use crate::state::AppState;

/// Most heartbeats per delivery request.
pub const MAX_BATCH: usize = 100;
/// About the most bytes of heartbeats per delivery request (under the 1 MiB default body limit).
pub const MAX_BATCH_BYTES: usize = 512 * 1024;
/// First backoff step.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Longest backoff step.
pub const BACKOFF_CAP: Duration = Duration::from_secs(600);

/// The backoff step after `failures` failed attempts in a row (from 1), jittered by `random`:
/// uniformly between half and all of `min(BASE * 2^(failures-1), CAP)`.
pub fn backoff(failures: u32, random: u64) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let step = BACKOFF_BASE
        .saturating_mul(1u32 << exp)
        .min(BACKOFF_CAP)
        .as_millis() as u64;
    let half = step / 2;
    Duration::from_millis(half + random % (step - half + 1))
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

/// Runs until `stop` turns true: delivers the outbox in order, backing off on failure.
pub async fn run(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let sync = state.onprem().sync();
    let Some((client, base)) = sync.client.clone() else {
        return;
    };
    sync.update(|m| m.running = true);
    let clock = state.clock().clone();
    let public = crate::onprem::signed::public_key_b64(&state.install_key().public());
    let own_key = state.install_key().public();
    let enrollment = state
        .config()
        .control_plane
        .as_ref()
        .and_then(|c| c.enrollment_secret.clone());
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            break;
        }
        let gate = state.read(gate::load).await.ok().flatten();
        let air_gapped = gate.as_ref().is_some_and(|g| g.air_gapped);
        let batch = if air_gapped {
            Vec::new()
        } else {
            match state
                .read(|r| outbox::pending(r, MAX_BATCH, MAX_BATCH_BYTES))
                .await
            {
                Ok(b) => same_install(b),
                Err(e) => {
                    tracing::error!(error = %e, "heartbeat sender: cannot read the outbox");
                    Vec::new()
                }
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = sync.work.notified() => {}
                _ = stop.changed() => break,
            }
            continue;
        }
        let now = clock.now();
        sync.update(|m| m.last_attempt_at = Some(now));
        let attempt = tokio::select! {
            r = deliver(&client, &base, &public, enrollment.as_ref().map(|s| (s, &own_key)), &batch) => r,
            _ = stop.changed() => break,
        };
        let seqs: Vec<u64> = batch.iter().map(|p| p.seq).collect();
        let result = match attempt {
            Ok(()) => state
                .write(
                    crate::actor::Actor::system("heartbeat-sender"),
                    move |ctx| outbox::delivered(ctx, &seqs),
                )
                .await
                .map_err(|e| format!("delivered, but recording it failed: {e}")),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                failures = 0;
                let at = clock.now();
                tracing::debug!(
                    first = batch.first().map(|p| p.seq),
                    last = batch.last().map(|p| p.seq),
                    "heartbeats delivered"
                );
                sync.update(|m| {
                    m.last_success_at = Some(at);
                    m.last_error = None;
                    m.consecutive_failures = 0;
                    m.next_attempt_at = None;
                });
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = backoff(failures, random_u64());
                let until = clock.now()
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(5));
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "heartbeat delivery failed");
                sync.update(|m| {
                    m.last_error = Some(e);
                    m.consecutive_failures = failures;
                    m.next_attempt_at = Some(until);
                });
                tokio::select! {
                    _ = clock.sleep_until(until) => {}
                    _ = sync.flush.notified() => {}
                    _ = stop.changed() => break,
                }
            }
        }
    }
    sync.update(|m| m.running = false);
}

/// The install a stored heartbeat was written for.
fn install_of(p: &Pending) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(&p.signed).ok()?;
    v["heartbeat"]["install_id"].as_str().map(str::to_string)
}

/// Keeps the leading run of `batch` written for the same install: a new license for another
/// install id starts a new batch (the control plane takes one install per request).
fn same_install(mut batch: Vec<Pending>) -> Vec<Pending> {
    let first = batch.first().and_then(install_of);
    let keep = batch
        .iter()
        .position(|p| install_of(p) != first)
        .unwrap_or(batch.len());
    batch.truncate(keep);
    batch
}

/// Sends one batch; `Ok` when the control plane answered 200 (each heartbeat accepted or a
/// duplicate). The body is assembled from the stored canonical bytes without re-encoding them.
/// With an enrollment secret, the body carries `enrollment_proof` for the batch's install id
/// and this install's key (the control plane needs it only to bind the key, and ignores it after).
async fn deliver(
    client: &reqwest::Client,
    base: &reqwest::Url,
    public_b64: &str,
    enrollment: Option<(
        &crate::onprem::enroll::EnrollmentSecret,
        &ed25519_dalek::VerifyingKey,
    )>,
    batch: &[Pending],
) -> Result<(), String> {
    let install_id = install_of(batch.first().ok_or("nothing to send")?)
        .ok_or("a stored heartbeat has no install_id")?;
    let proof = match (enrollment, crate::ids::parse_uuid(&install_id)) {
        (Some((secret, key)), Some(id)) => Some(secret.prove(&id, key)),
        _ => None,
    };
    let mut body =
        Vec::with_capacity(batch.iter().map(|p| p.signed.len() + 1).sum::<usize>() + 128);
    body.extend_from_slice(b"{\"heartbeats\":[");
    for (i, p) in batch.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&p.signed);
    }
    body.extend_from_slice(b"],\"install_public_key\":\"");
    body.extend_from_slice(public_b64.as_bytes());
    if let Some(p) = proof {
        // Standard base64: nothing in it needs escaping.
        body.extend_from_slice(b"\",\"enrollment_proof\":\"");
        body.extend_from_slice(p.as_bytes());
    }
    body.extend_from_slice(b"\"}");
    let url = endpoint(base, &install_id);
    let res = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot reach the control plane at {url}: {}",
                error_chain(&e)
            )
        })?;
    let status = res.status();
    if status == reqwest::StatusCode::OK {
        return Ok(());
    }
    let text = res.text().await.unwrap_or_default();
    let problem: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    Err(format!(
        "the control plane answered {status}{}: {}",
        problem["code"]
            .as_str()
            .map(|c| format!(" {c}"))
            .unwrap_or_default(),
        problem["detail"]
            .as_str()
            .map_or_else(|| text.chars().take(200).collect(), str::to_string)
    ))
}

/// `{base}/api/installs/{install_id}/heartbeats`, keeping any path prefix of `base`.
pub fn endpoint(base: &reqwest::Url, install_id: &str) -> reqwest::Url {
    let mut url = base.clone();
    let prefix = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{prefix}/api/installs/{install_id}/heartbeats"));
    url
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_jitters_within_the_upper_half() {
        for failures in 1..40 {
            let step = BACKOFF_BASE
                .saturating_mul(1u32 << (failures - 1).min(16))
                .min(BACKOFF_CAP);
            for random in [0, 1, 7_777, u64::MAX] {
                let d = backoff(failures, random);
                assert!(d <= step && d >= step / 2, "{failures} {d:?} {step:?}");
            }
        }
        assert_eq!(backoff(1, 0), Duration::from_millis(2500));
        assert!(backoff(30, u64::MAX).max(backoff(30, 0)) <= BACKOFF_CAP);
    }

    #[test]
    fn the_endpoint_keeps_a_path_prefix() {
        let u = reqwest::Url::parse("https://cp.example.com/tenantry/").unwrap();
        assert_eq!(
            endpoint(&u, "abc").as_str(),
            "https://cp.example.com/tenantry/api/installs/abc/heartbeats"
        );
        let u = reqwest::Url::parse("http://127.0.0.1:9").unwrap();
        assert_eq!(
            endpoint(&u, "x").as_str(),
            "http://127.0.0.1:9/api/installs/x/heartbeats"
        );
    }
}
