//! The real binary: `serve`, graceful shutdown on SIGTERM, restart persistence, CLI commands
//! through the admin socket and directly on the store, offline verify, and `serve --demo`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tenantry::store::Reader as _;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_tenantry");
pub(crate) const TOKEN: &str = "process-test-token-0123456789abcdef";

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) log: Arc<Mutex<String>>,
}

/// `tenantry serve --data-dir data_dir` with `token` as the admin ops token (none without),
/// no config file or log level from the environment, stderr piped and stdout dropped.
fn serve_command(data_dir: &Path, token: Option<&str>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("TENANTRY_LOG")
        .env_remove("TENANTRY_CONFIG")
        .env_remove("TENANTRY_ADMIN_OPS_TOKEN")
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    if let Some(t) = token {
        cmd.env("TENANTRY_ADMIN_OPS_TOKEN", t);
    }
    cmd
}

impl Server {
    pub(crate) fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_with(data_dir, extra, Some(TOKEN))
    }

    pub(crate) fn start_with(data_dir: &Path, extra: &[&str], token: Option<&str>) -> Server {
        let mut cmd = serve_command(data_dir, token);
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(extra).env("TENANTRY_LOG", "info");
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on http") {
                    let rest = &line[i + "listening on ".len()..];
                    let url: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                    let _ = tx.send(url);
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("server did not start: {}", log.lock().unwrap()));
        Server { child, base, log }
    }

    pub(crate) fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50));
                return (s, self.log.lock().unwrap().clone());
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("TENANTRY_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub(crate) async fn post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let res = client
        .post(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = res.status();
    (s, res.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn get(client: &reqwest::Client, base: &str, path: &str) -> (StatusCode, Value) {
    let res = client
        .get(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let s = res.status();
    (s, res.json().await.unwrap_or(Value::Null))
}

pub(crate) fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    (dir, data)
}

/// `RUST_LOG` sets the verbosity when `TENANTRY_LOG` is not set, and `TENANTRY_LOG` wins when
/// both are: `serve` at `RUST_LOG=warn` does not log its `info` start-up line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_sets_the_verbosity_unless_tenantry_log_does() {
    for (tenantry_log, logs_info) in [(None, false), (Some("info"), true)] {
        let (_dir, data) = data_dir();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = serve_command(&data, Some(TOKEN));
        cmd.args(["--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "warn");
        if let Some(v) = tenantry_log {
            cmd.env("TENANTRY_LOG", v);
        }
        let mut child = cmd.spawn().unwrap();
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let url = format!("http://127.0.0.1:{port}/healthz");
            if client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "server did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            log.contains("listening on"),
            logs_info,
            "{tenantry_log:?}: {log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_drains_on_sigterm_and_keeps_every_acknowledged_write() {
    let (_dir, data) = data_dir();
    let server = Server::start(&data, &[]);
    let client = reqwest::Client::new();
    let (s, app) = post(
        &client,
        &server.base,
        "/api/apps",
        json!({"name": "Projex Work"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{app}");
    let app_id = app["id"].as_str().unwrap().to_string();

    // A burst of provisioning, then SIGTERM while it is in flight.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (client, base, app_id) = (client.clone(), server.base.clone(), app_id.clone());
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(format!("{base}/api/tenants"))
                .bearer_auth(TOKEN)
                .json(&json!({"app_id": app_id, "display_name": format!("Burst {i}"), "region": "us-east-1"}))
                .send()
                .await;
            match res {
                Ok(r) if r.status() == StatusCode::CREATED => Some(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()),
                _ => None,
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (status, log) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status}: {log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(
        log.contains("the writer drained and the store is closed"),
        "{log}"
    );
    let mut acknowledged = Vec::new();
    for t in tasks {
        if let Some(id) = t.await.unwrap() {
            acknowledged.push(id);
        }
    }
    assert!(
        !data.join("admin.sock").exists(),
        "the socket is removed on shutdown"
    );

    // Restart: every acknowledged write is there, and the ledger verifies.
    let server = Server::start(&data, &[]);
    for id in &acknowledged {
        let (s, v) = get(&client, &server.base, &format!("/api/tenants/{id}")).await;
        assert_eq!(s, StatusCode::OK, "acknowledged tenant {id} lost: {v}");
    }
    let (_, summary) = get(&client, &server.base, "/api/tenants/summary").await;
    assert!(summary["total"].as_u64().unwrap() >= acknowledged.len() as u64);

    // CLI while the server runs: through the admin socket.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("admin.sock"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let d = data.to_str().unwrap();
    let (code, out, err) = cli(&["audit", "verify", "--data-dir", d]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(" 0 broken"), "{out}");
    let (code, out, err) = cli(&["jobs", "run", "checkpoint_chains", "--data-dir", d]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"outcome\": \"ok\""), "{out}");
    let (code, out, _) = cli(&["audit", "export", "--data-dir", d, "--chain", "platform"]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .starts_with("{\"entry\":{\"action\":\"pool.created.v1\""),
        "{out}"
    );
    let (_, jobs) = get(&client, &server.base, "/api/jobs").await;
    let checkpoint = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "checkpoint_chains")
        .unwrap();
    assert_eq!(
        checkpoint["last_run"]["trigger"], "manual",
        "the socket ran the job in the server"
    );

    let (status, _) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success());

    // CLI without a server: directly on the store.
    let (code, out, err) = cli(&["audit", "verify", "--data-dir", d, "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert!(report["results"].as_array().unwrap().len() > acknowledged.len());
    let (code, out, _) = cli(&["jobs", "list", "--data-dir", d]);
    assert_eq!(code, 0);
    assert!(out.contains("checkpoint_chains"), "{out}");

    // Offline verify names the first bad seq of a tampered chain and exits non-zero.
    {
        let store = tenantry::store::Store::open(&data).unwrap();
        store
            .write(
                chrono::Utc::now(),
                tenantry::actor::Actor::system("attacker"),
                |ctx| {
                    let key =
                        tenantry::audit::ledger::entry_key(&tenantry::audit::ChainId::Platform, 4);
                    let mut v = ctx.get(tenantry::audit::ledger::ENTRIES, &key)?.unwrap();
                    let last = v.len() - 3;
                    v[last] ^= 0x01;
                    ctx.put(tenantry::audit::ledger::ENTRIES, &key, &v)?;
                    Ok::<_, tenantry::store::Error>(())
                },
            )
            .await
            .unwrap();
        store.close().await;
    }
    let (code, out, _) = cli(&["audit", "verify", "--data-dir", d, "--chain", "platform"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN  platform  first bad seq 4"), "{out}");
    let (code, _, err) = cli(&["audit", "verify", "--data-dir", "/nonexistent/tenantry"]);
    assert_eq!(code, 2);
    assert!(err.contains("no data file"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_seeds_a_believable_platform_whose_ledger_verifies() {
    let (_dir, data) = data_dir();
    let server = Server::start_with(&data, &["--demo"], None);
    let base = server.base.clone();
    let log = server.log.lock().unwrap().clone();
    let i = log
        .find("demo admin token (super_admin): ")
        .expect("the demo token is printed");
    let token = log[i + 32..].split_whitespace().next().unwrap().to_string();
    assert!(!token.is_empty() && !base.is_empty());
    let client = reqwest::Client::new();
    let get = |path: &str| {
        let req = client.get(format!("{base}{path}")).bearer_auth(&token);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let apps = get("/api/apps").await;
    assert_eq!(apps["items"].as_array().unwrap().len(), 3);
    let summary = get("/api/tenants/summary").await;
    assert!(summary["total"].as_u64().unwrap() >= 30, "{summary}");
    for state in [
        "provisioned",
        "trial",
        "active",
        "suspended",
        "offboarding",
        "offboarded",
    ] {
        assert!(
            summary["by_state"][state].as_u64().unwrap_or(0) > 0,
            "no {state} tenant: {summary}"
        );
    }
    assert_eq!(summary["by_tier"].as_object().unwrap().len(), 3);
    assert!(summary["by_region"].as_object().unwrap().len() >= 6);
    let flips = get("/api/audit?action=pool.status.flipped.v1").await;
    assert!(flips["items"].as_array().unwrap().len() >= 4);
    // The demo's daily backup ran, encrypted to the demo's own key (never in plaintext).
    let backups = get("/api/audit?action=backup.created.v1").await;
    assert!(
        !backups["items"].as_array().unwrap().is_empty(),
        "{backups}"
    );
    assert!(
        data.join(tenantry::demo::DEMO_BACKUP_IDENTITY_FILE)
            .exists()
    );
    let oldest = get("/api/audit?chain=platform&limit=500").await;
    let first_ts = oldest["items"].as_array().unwrap().last().unwrap()["ts"]
        .as_str()
        .unwrap()
        .to_string();
    let age = chrono::Utc::now()
        - chrono::DateTime::parse_from_rfc3339(&first_ts)
            .unwrap()
            .with_timezone(&chrono::Utc);
    assert!(
        age.num_days() >= 89,
        "history spans 90 days (first entry {first_ts})"
    );
    let jobs = get("/api/jobs").await;
    assert!(
        jobs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| !j["last_run"].is_null()),
        "{jobs}"
    );
    // The revenue posture has a trend of monthly snapshots and an entitlement exception.
    let revenue = get("/api/platform/revenue").await;
    assert!(
        revenue["mrr_trend"].as_array().unwrap().len() >= 3,
        "{revenue}"
    );
    assert!(
        revenue["mrr"][0]["amount_minor"].as_i64().unwrap() > 0,
        "{revenue}"
    );
    let exceptions = get("/api/platform/enforcement/exceptions").await;
    assert!(
        !exceptions["items"].as_array().unwrap().is_empty(),
        "{exceptions}"
    );
    let verify = client
        .post(format!("{base}/api/audit/verify"))
        .bearer_auth(&token)
        .json(&json!({"full": true}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let results = verify["results"].as_array().unwrap();
    assert!(results.len() >= 31);
    assert!(results.iter().all(|r| r["ok"] == true), "{verify}");
    // The tenant side lives: members, business units, keys (some without expiry), visits, and
    // one tenant admin's sign-in printed on start.
    let users = get("/api/personas?limit=500").await;
    assert!(users["items"].as_array().unwrap().len() >= 100, "{users}");
    let visits = get("/api/impersonations").await;
    assert_eq!(visits["items"].as_array().unwrap().len(), 2, "{visits}");
    let i = log
        .find("demo tenant admin of ")
        .expect("a tenant admin's sign-in is printed");
    let line = log[i..].lines().next().unwrap().to_string();
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "at").unwrap();
    let signin = words[at + 1];
    let email = words[at + 3];
    let password = words.last().unwrap().to_string();
    let tenant = signin.split('/').nth(2).unwrap().to_string();
    let keys = get(&format!("/api/tenants/{tenant}/api-keys")).await;
    assert!(
        keys["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["no_expiry"] == true),
        "{keys}"
    );
    let bus = get(&format!("/api/tenants/{tenant}/business-units")).await;
    assert_eq!(bus["items"].as_array().unwrap().len(), 5, "{bus}");
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = c.get(format!("{base}{signin}")).send().await.unwrap();
    let pre = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("tenantry_tenant_signin="))
        .unwrap();
    let pre = pre.split(';').next().unwrap().to_string();
    let html = page.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let res = c
        .post(format!("{base}{signin}"))
        .header("cookie", pre)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("email", email),
                ("password", password.as_str()),
                ("csrf", csrf.as_str()),
            ])
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::SEE_OTHER, "{line}");
    let (status, log) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{log}");
    // A second start does not seed again.
    let server = Server::start(&data, &["--demo"]);
    let client = reqwest::Client::new();
    let res = client
        .get(format!("{}/api/tenants/summary", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["total"], summary["total"]);
    drop(server);
}

fn cli_stdin(args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("TENANTRY_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_are_managed_from_the_cli_with_or_without_a_running_server() {
    let (_dir, data) = data_dir();
    let d = data.to_str().unwrap().to_string();
    // First operator, before any server ran: the CLI creates the store.
    Server::start(&data, &[]).terminate();
    let (code, out, err) = cli_stdin(
        &[
            "operator",
            "add",
            "--data-dir",
            &d,
            "--username",
            "root",
            "--role",
            "super_admin",
            "--password-stdin",
        ],
        "a very long root password\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("root super_admin (active)"), "{out}");
    let (code, _, err) = cli_stdin(
        &[
            "operator",
            "add",
            "--data-dir",
            &d,
            "--username",
            "x",
            "--role",
            "god",
            "--password-stdin",
        ],
        "short\n",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown role 'god'")
            && err.contains("12 characters")
            && err.contains("username 'x'"),
        "{err}"
    );

    // With the server running, the same commands go through the admin socket.
    let server = Server::start(&data, &[]);
    let (code, out, err) = cli_stdin(
        &[
            "operator",
            "add",
            "--data-dir",
            &d,
            "--username",
            "ci.bot",
            "--role",
            "business_admin",
            "--password-stdin",
        ],
        "another long password\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, token, err) = cli(&[
        "operator",
        "token",
        "create",
        "--data-dir",
        &d,
        "--username",
        "ci.bot",
        "--name",
        "pipeline",
    ]);
    assert_eq!(code, 0, "{err}");
    let token = token.trim().to_string();
    assert!(token.starts_with("tnt_"), "{token}");
    assert!(err.contains("shown once"));
    let client = reqwest::Client::new();
    let create = |t: String| {
        client
            .post(format!("{}/api/apps", server.base))
            .bearer_auth(t)
            .json(&json!({"name": "From CI"}))
            .send()
    };
    assert_eq!(
        create(token.clone()).await.unwrap().status(),
        StatusCode::CREATED,
        "the token acts as business_admin"
    );
    let (code, _, _) = cli(&[
        "operator",
        "set-role",
        "--data-dir",
        &d,
        "--username",
        "ci.bot",
        "--role",
        "support",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        create(token.clone()).await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "now support"
    );
    let (code, _, _) = cli(&[
        "operator",
        "disable",
        "--data-dir",
        &d,
        "--username",
        "ci.bot",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        create(token.clone()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "disabled"
    );
    let (code, out, _) = cli(&["operator", "list", "--data-dir", &d]);
    assert_eq!(code, 0);
    assert!(
        out.contains("ci.bot") && out.contains("disabled") && out.contains("root"),
        "{out}"
    );
    let res = client
        .get(format!("{}/api/audit?actor_id=cli", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let actions: Vec<&str> = res["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "operator.created.v1",
        "operator.token.created.v1",
        "operator.role_changed.v1",
        "operator.disabled.v1",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    drop(server);
}

/// R1 (issue 12), the short form: five kill -9 runs of `scripts/crash_campaign.py` on the real
/// binary under a mixed write load; no acknowledged write is lost, every chain verifies, and
/// the restarts replay the redo log (the kills land between its checkpoints). The script runs
/// 100 by default.
#[test]
fn kill_9_under_load_loses_no_acknowledged_write() {
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/crash_campaign.py"
        ))
        .args([
            "--runs",
            "5",
            "--writers",
            "6",
            "--binary",
            env!("CARGO_BIN_EXE_tenantry"),
        ])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("crash campaign: 5 kill -9 runs"), "{text}");
    assert!(text.contains(", 0 lost, 0 runs"), "{text}");
    // The kills land between checkpoints, so restarts replay the redo log: the runs test it.
    assert!(
        !text.contains(", 0 runs whose restart replayed the redo log"),
        "no restart replayed the redo log: {text}"
    );
}

/// R3 (issue 12), the short form: schemathesis against the real binary's OpenAPI document, two
/// examples per operation and phase; no 5xx and no response that differs from the document.
/// `scripts/api_fuzz.sh` alone runs about 10,000 cases.
#[test]
fn fuzzing_the_api_finds_no_server_error_and_no_undocumented_response() {
    let out = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/api_fuzz.sh"))
        .args([env!("CARGO_BIN_EXE_tenantry"), "2"])
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(" passed"), "{text}");
}

/// A tmpfs of a fixed size mounted for one test (R6 needs a file system that really fills);
/// unmounted when dropped. Mounting needs root or `CAP_SYS_ADMIN`, which CI has.
struct SmallDisk {
    mount: PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, mib: u64) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .expect("mount(8) runs");
        assert!(
            out.status.success(),
            "the disk-full test mounts a {mib} MiB tmpfs and needs root or CAP_SYS_ADMIN: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk {
            mount: at.to_path_buf(),
        }
    }

    /// Fills the file system with `filler` until the kernel answers ENOSPC.
    fn fill(&self, filler: &Path) {
        use std::io::Write;
        let mut f = std::fs::File::create(filler).unwrap();
        let chunk = vec![0xA5u8; 64 * 1024];
        loop {
            match f.write_all(&chunk) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        // Whatever is left is smaller than a chunk: take it byte by byte.
        while f.write_all(&[0]).is_ok() {}
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// R6 (issue 12): on a file system that is full, writes answer 503 `storage_full` as a problem
/// and change nothing (no audit entry), reads go on, and once space is freed the same process
/// writes again; the file passes the full integrity check and the chains verify afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_storage_full_keeps_reads_and_recovers_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("disk"), 48);
    let data = disk.mount.join("data");
    let config = dir.path().join("tenantry.toml");
    std::fs::write(&config, "[store]\nmin_free_mib = 8\n").unwrap();
    let server = Server::start(&data, &["--config", config.to_str().unwrap()]);
    let client = reqwest::Client::new();
    let (s, app) = post(
        &client,
        &server.base,
        "/api/apps",
        json!({"name": "Projex Work"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{app}");
    let app_id = app["id"].as_str().unwrap().to_string();
    let tenant =
        |name: &str| json!({"app_id": app_id, "display_name": name, "region": "us-east-1"});
    let (s, before) = post(&client, &server.base, "/api/tenants", tenant("Before Full")).await;
    assert_eq!(s, StatusCode::CREATED, "{before}");
    let (_, audit_before) = get(&client, &server.base, "/api/audit?chain=platform&limit=500").await;

    let filler = disk.mount.join("filler");
    disk.fill(&filler);
    let res = client
        .post(format!("{}/api/tenants", server.base))
        .bearer_auth(TOKEN)
        .json(&tenant("While Full"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "a problem document"
    );
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "storage_full", "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("min_free_mib"),
        "the problem says what to do: {problem}"
    );
    // Reads go on, and the refused write left nothing.
    let (s, got) = get(
        &client,
        &server.base,
        &format!("/api/tenants/{}", before["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{got}");
    let (s, audit_full) = get(&client, &server.base, "/api/audit?chain=platform&limit=500").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        audit_full, audit_before,
        "no audit entry for a refused write"
    );
    let (_, list) = get(&client, &server.base, "/api/tenants?q=While").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");

    // Space returns: the same process writes again, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let (s, after) = post(&client, &server.base, "/api/tenants", tenant("After Full")).await;
    assert_eq!(s, StatusCode::CREATED, "{after}");
    let (status, log) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{log}");

    // Nothing is corrupt: every page checksum matches and every chain verifies from seq 1.
    let (code, out, err) = cli(&["check", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(&[
        "audit",
        "verify",
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
}
