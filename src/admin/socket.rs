//! The admin socket: `DATA_DIR/admin.sock`, mode 0600 inside the 0700 data dir, and each peer's
//! uid checked against the data dir's owner (like kanidm's admin socket). One request per
//! connection: a JSON line in; a JSON line out, `{"ok": true, "result": ...}` or
//! `{"ok": false, "error": {"code", "status", "message"}}`; a streaming result sends
//! `{"ok": true, "stream": "framed"}`, then frames (a big-endian `u32` length and that many
//! bytes), then an empty frame and a final JSON line: `{"ok": true}`, or the error that stopped
//! the stream midway. So a client can tell a complete stream from a cut one (a backup must never
//! look complete when it is not).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub use super::client::{SOCKET_FILE, socket_path};
use super::{AdminOutput, AdminRequest, execute};
use crate::error::Error;
use crate::state::AppState;

/// Largest request line accepted, bytes: a heartbeat bundle import carries the file (up to
/// `[installs] bundle_limit_bytes`, 64 MiB by default), JSON-escaped.
const MAX_REQUEST: u64 = 160 * 1024 * 1024;

/// A bound admin socket.
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    owner_uid: u32,
}

impl Server {
    /// Binds `DATA_DIR/admin.sock`, replacing a stale socket file left by a crash.
    ///
    /// Errors: another server answers on the socket, or binding fails.
    pub fn bind(data_dir: &Path) -> std::io::Result<Server> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let path = socket_path(data_dir);
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("another tenantry server answers on {}", path.display()),
                ));
            }
            std::fs::remove_file(&path)?;
        }
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let owner_uid = std::fs::metadata(data_dir)?.uid();
        Ok(Server {
            listener,
            path,
            owner_uid,
        })
    }

    /// Serves until `stop` turns true, then removes the socket file.
    pub async fn serve(self, state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let state = state.clone();
                        let owner = self.owner_uid;
                        tokio::spawn(async move {
                            if let Err(e) = handle(stream, state, owner).await {
                                tracing::warn!(error = %e, "admin socket connection failed");
                            }
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "admin socket accept failed"),
                },
                _ = stop.changed() => break,
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn error_json(e: &Error) -> Value {
    json!({"ok": false, "error": {"code": e.code(), "status": crate::http::problem::status(e).as_u16(), "message": e.to_string()}})
}

async fn handle(stream: UnixStream, state: AppState, owner_uid: u32) -> std::io::Result<()> {
    let peer = stream.peer_cred()?.uid();
    let (read, mut write) = stream.into_split();
    if peer != owner_uid && peer != 0 {
        let e = Error::Forbidden(format!("uid {peer} does not own this data dir"));
        write
            .write_all(format!("{}\n", error_json(&e)).as_bytes())
            .await?;
        return Ok(());
    }
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let reply = match serde_json::from_str::<AdminRequest>(&line) {
        Err(e) => Err(Error::bad_request(
            crate::error::BAD_REQUEST,
            format!("not an admin request: {e}"),
        )),
        Ok(req) => {
            tracing::info!(op = req.name(), "admin socket request");
            execute(&state, req).await
        }
    };
    match reply {
        Ok(AdminOutput::Json(v)) => {
            write
                .write_all(format!("{}\n", json!({"ok": true, "result": v})).as_bytes())
                .await?;
        }
        Ok(AdminOutput::Stream(mut rx)) => {
            write
                .write_all(b"{\"ok\":true,\"stream\":\"framed\"}\n")
                .await?;
            let mut end = json!({"ok": true});
            while let Some(chunk) = rx.recv().await {
                match chunk {
                    Ok(bytes) if bytes.is_empty() => {}
                    Ok(bytes) => {
                        let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
                        write.write_all(&len.to_be_bytes()).await?;
                        write.write_all(&bytes).await?;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "admin stream failed midway");
                        end = error_json(&e);
                        break;
                    }
                }
            }
            write.write_all(&0u32.to_be_bytes()).await?;
            write.write_all(format!("{end}\n").as_bytes()).await?;
        }
        Err(e) => {
            write
                .write_all(format!("{}\n", error_json(&e)).as_bytes())
                .await?
        }
    }
    write.shutdown().await
}
