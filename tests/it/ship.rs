//! Running as a service, with the real binary: HTTPS with a self-signed certificate and its
//! reload on SIGHUP, the refusal of plain HTTP off loopback, sd_notify readiness, reload,
//! watchdog and stopping on a fake `NOTIFY_SOCKET`, and journald-style log lines.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::process::{self, BIN, Server, TOKEN};

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The SHA-256 fingerprint of the certificate `base` serves.
async fn served_fingerprint(base: &str) -> String {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .build()
        .unwrap();
    let res = client.get(format!("{base}/healthz")).send().await.unwrap();
    let info = res.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    fingerprint(info.peer_certificate().unwrap())
}

fn hup(child: &std::process::Child) {
    let ok = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_self_signed_certificate_serves_and_reloads_on_sighup() {
    let (_dir, data) = process::data_dir();
    let server = Server::start(&data, &["--tls-self-signed"]);
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let log = server.log.lock().unwrap().clone();
    let logged = log
        .split("SHA-256 fingerprint ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the fingerprint is printed")
        .to_string();

    // A client that trusts only this certificate reaches it by name.
    let pem = std::fs::read(data.join("tls/cert.pem")).unwrap();
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .tls_info(true)
        .build()
        .unwrap();
    let res = client
        .get(format!("https://localhost:{port}/api/whoami"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    let info = res.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    assert_eq!(fingerprint(info.peer_certificate().unwrap()), logged);
    // Served over TLS, the console's cookies are `Secure` without any setting.
    let res = client
        .get(format!("https://localhost:{port}/signin"))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(
        plain
            .map(|r| r.status() != reqwest::StatusCode::OK)
            .unwrap_or(true),
        "plain HTTP is not served on the TLS port"
    );

    // A renewed certificate is served after SIGHUP, without a restart.
    let renewed = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(
        data.join("tls/key.pem"),
        renewed.signing_key.serialize_pem(),
    )
    .unwrap();
    std::fs::write(data.join("tls/cert.pem"), renewed.cert.pem()).unwrap();
    let want = fingerprint(renewed.cert.der());
    assert_ne!(want, logged);
    hup(&server.child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while served_fingerprint(&server.base).await != want {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A broken file on the next reload keeps the certificate that works.
    std::fs::write(data.join("tls/key.pem"), "garbage").unwrap();
    hup(&server.child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.log.lock().unwrap().contains("TLS reload failed") {
        assert!(Instant::now() < deadline, "the failed reload is not logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served_fingerprint(&server.base).await, want);
    let (status, log) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{log}");
}

#[test]
fn plain_http_off_loopback_is_refused_unless_insecure_http_is_given() {
    let (_dir, data) = process::data_dir();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
        ])
        .env_remove("TENANTRY_CONFIG")
        .env("TENANTRY_ADMIN_OPS_TOKEN", TOKEN)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("refusing to serve plain HTTP on 0.0.0.0:0")
            && err.contains("--insecure-http"),
        "{err}"
    );
    assert!(!data.join("tenantry.redb").exists(), "nothing was opened");

    let server = Server::start(&data, &["--listen", "0.0.0.0:0", "--insecure-http"]);
    assert!(server.log.lock().unwrap().contains("--insecure-http"));
    let (status, _) = server.terminate();
    assert!(status.success());
}

/// Receives datagrams until one contains `want` (panics after 20 s).
fn expect_notify(sock: &UnixDatagram, seen: &mut Vec<String>, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    loop {
        if let Some(m) = seen.iter().position(|m| m.contains(want)) {
            return seen.remove(m);
        }
        assert!(Instant::now() < deadline, "no {want} in {seen:?}");
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

#[test]
fn the_service_notifies_readiness_watchdog_reload_and_stopping_and_logs_for_journald() {
    let (dir, data) = process::data_dir();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // stderr goes to a file that JOURNAL_STREAM names, as journald's stream would be.
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let meta = log.metadata().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("TENANTRY_CONFIG")
        .env("TENANTRY_ADMIN_OPS_TOKEN", TOKEN)
        .env("TENANTRY_LOG", "info")
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let ready = expect_notify(&sock, &mut seen, "READY=1");
    assert!(
        ready.contains("STATUS=serving on http://127.0.0.1:"),
        "{ready}"
    );
    // Ready means bound and open: the address in the status answers at once.
    let addr = ready.split("http://").nth(1).unwrap().trim().to_string();
    let health = std::net::TcpStream::connect(&addr);
    assert!(health.is_ok(), "{addr}");
    expect_notify(&sock, &mut seen, "WATCHDOG=1");
    expect_notify(&sock, &mut seen, "WATCHDOG=1");
    hup(&child);
    expect_notify(&sock, &mut seen, "RELOADING=1");
    expect_notify(&sock, &mut seen, "READY=1");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    expect_notify(&sock, &mut seen, "STOPPING=1");
    let exit = child.wait().unwrap();
    assert!(exit.success());

    let mut text = String::new();
    std::fs::File::open(&log_path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let listening = text
        .lines()
        .find(|l| l.contains("listening on http://"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        listening.starts_with("<6> INFO"),
        "priority prefix, no timestamp: {listening}"
    );
    assert!(!text.contains("\u{1b}["), "no colour codes under journald");
    assert!(text.lines().any(|l| l.starts_with("<4> WARN")) || !text.contains("WARN"));
}
