//! `TestApp`: the real application on 127.0.0.1:0 with a temporary data dir and a manual clock.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenantry::app::Application;
use tenantry::clock::Clock;
use tenantry::config::{Config, Secret};
use tenantry::state::AppState;

pub const TOKEN: &str = "test-admin-ops-token-0123456789";

static LOG: Once = Once::new();

fn init_log() {
    LOG.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info,tenantry=debug")
                .try_init();
        }
    });
}

/// A fixed start for manual clocks.
pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub clock: Clock,
    pub state: AppState,
    pub dir: Arc<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// The test configuration. The hourly `checkpoint_chains` job, the nightly `backup_daily` and
/// the daily `snapshot_mrr` (whose first run of a month writes a ledger entry) are moved to New
/// Year so that tests which move the clock by hours or days see only the checkpoints, backups
/// and entries they make themselves (a snapshot landing in the middle of a "this refusal wrote
/// nothing" count made the webhooks DLQ test flaky).
pub fn test_config(data_dir: &Path) -> Config {
    let mut schedules = std::collections::BTreeMap::new();
    schedules.insert("checkpoint_chains".to_string(), "0 0 0 1 1 *".to_string());
    schedules.insert("backup_daily".to_string(), "0 0 0 1 1 *".to_string());
    schedules.insert("snapshot_mrr".to_string(), "0 0 0 1 1 *".to_string());
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        admin_ops_token: Some(Secret::new(TOKEN)),
        schedules,
        ..Config::default()
    }
}

impl TestApp {
    /// A fresh app on a new temp dir.
    pub async fn spawn() -> TestApp {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let config = test_config(&dir.path().join("data"));
        TestApp::spawn_with(dir, config, Clock::manual(t0())).await
    }

    /// An app with `config` on `dir`.
    pub async fn spawn_with(dir: Arc<tempfile::TempDir>, config: Config, clock: Clock) -> TestApp {
        init_log();
        let app = Application::build(config, clock.clone())
            .await
            .expect("app builds");
        let addr = app.local_addr();
        let state = app.state().clone();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                // Under the server's 10 s idle close ([http] header_read_timeout_secs), so a
                // kept-alive connection is never reused just as the server closes it (a loaded
                // CI machine once met that race: IncompleteMessage).
                .pool_idle_timeout(Duration::from_secs(4))
                .build()
                .unwrap(),
            clock,
            state,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.state.config().data_dir.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the app gracefully and waits for the store to close.
    pub async fn stop(mut self) -> Arc<tempfile::TempDir> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
        self.dir.clone()
    }

    /// Stops this app and starts a new one on the same data dir and clock.
    pub async fn restart(self) -> TestApp {
        let config = self.state.config().as_ref().clone();
        let clock = self.clock.clone();
        let dir = self.stop().await;
        TestApp::spawn_with(dir, config, clock).await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, None, Some(TOKEN)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(body), Some(TOKEN)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PATCH, path, Some(body), Some(TOKEN))
            .await
    }

    pub async fn get_text(&self, path: &str) -> (StatusCode, String, reqwest::header::HeaderMap) {
        let res = self
            .client
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        (status, res.text().await.unwrap(), headers)
    }

    /// Creates an app and returns its id.
    pub async fn app(&self, name: &str) -> String {
        let (s, v) = self.post("/api/apps", json!({"name": name})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// Provisions an `S` tenant in `us-east-1` and returns it.
    pub async fn tenant(&self, app_id: &str, name: &str) -> Value {
        self.tenant_with(json!({"app_id": app_id, "display_name": name, "region": "us-east-1"}))
            .await
    }

    pub async fn tenant_with(&self, body: Value) -> Value {
        let (s, v) = self.post("/api/tenants", body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    pub async fn action(&self, id: &str, action: &str, body: Value) -> (StatusCode, Value) {
        self.post(&format!("/api/tenant-lifecycle/{id}/{action}"), body)
            .await
    }

    /// Every entry of a chain, oldest first.
    pub async fn chain(&self, chain: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/audit?chain={chain}&limit=500");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (s, v) = self.get(&path).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            out.extend(v["items"].as_array().unwrap().iter().cloned());
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        out.reverse();
        out
    }

    /// Actions of a chain, oldest first.
    pub async fn actions(&self, chain: &str) -> Vec<String> {
        self.chain(chain)
            .await
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_string())
            .collect()
    }

    /// Entries in every chain (the sum of the heads' seqs).
    pub async fn total_entries(&self) -> u64 {
        let (_, v) = self.post("/api/audit/verify", json!({"full": true})).await;
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["head_seq"].as_u64().unwrap())
            .sum()
    }

    /// Polls `GET /api/jobs` until `job`'s last run started at or after `after` and finished.
    pub async fn wait_for_run(&self, job: &str, after: DateTime<Utc>) -> Value {
        for _ in 0..500 {
            let (_, v) = self.get("/api/jobs").await;
            let j = v["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|j| j["name"] == job)
                .unwrap()
                .clone();
            if let Some(started) = j["last_run"]["started_at"].as_str() {
                let started = DateTime::parse_from_rfc3339(started)
                    .unwrap()
                    .with_timezone(&Utc);
                if started >= after && j["last_run"]["outcome"] != "running" {
                    return j["last_run"].clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("job {job} did not run after {after}");
    }
}

/// Runs `scripts/{script}` (an outside verifier: Python's standard library and `cryptography`)
/// on `file` and `public_key`; returns whether it succeeded and what it printed.
pub fn python_script(script: &str, file: &Path, public_key: &str) -> (bool, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let out = std::process::Command::new("python3")
        .arg(path)
        .arg(file)
        .arg(public_key)
        .output()
        .expect("python3 runs (.ci/run installs it with the cryptography package)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("ModuleNotFoundError"),
        "install the cryptography package: {text}"
    );
    (out.status.success(), text)
}
