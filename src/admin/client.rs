//! The client side of the admin socket: the CLI sends one request per connection and reads a
//! JSON reply or a framed stream (see [`super::socket`] for the protocol).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::request::AdminRequest;

/// File name of the socket inside the data dir.
pub const SOCKET_FILE: &str = "admin.sock";

/// Path of the socket for `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

/// A stream from the server: reads give its bytes; the end of a complete stream reads as EOF,
/// and a stream the server stopped (or the connection cut) reads as an error.
pub type StreamReader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// What the client got back.
pub enum Reply {
    /// A JSON result.
    Json(Value),
    /// A byte stream.
    Stream(StreamReader),
    /// The server refused: `(code, status, message)`.
    Refused(String, u16, String),
}

/// Sends `req` to the server of `data_dir`. `Ok(None)` when no server listens there.
pub async fn request(data_dir: &Path, req: &AdminRequest) -> std::io::Result<Option<Reply>> {
    let path = socket_path(data_dir);
    let stream = match UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let (read, mut write) = stream.into_split();
    let line = serde_json::to_string(req).map_err(std::io::Error::other)?;
    write.write_all(format!("{line}\n").as_bytes()).await?;
    let mut reader = BufReader::new(read);
    let mut head = String::new();
    reader.read_line(&mut head).await?;
    let v: Value = serde_json::from_str(&head)
        .map_err(|e| std::io::Error::other(format!("bad reply from the server: {e}")))?;
    if v["ok"] == json!(true) {
        if v["stream"] == json!("framed") {
            return Ok(Some(Reply::Stream(unframe(reader))));
        }
        if v["stream"] == json!(true) {
            // An older server: raw bytes until the connection closes.
            return Ok(Some(Reply::Stream(Box::new(reader))));
        }
        return Ok(Some(Reply::Json(v["result"].clone())));
    }
    let err = &v["error"];
    Ok(Some(Reply::Refused(
        err["code"].as_str().unwrap_or("error").to_string(),
        err["status"].as_u64().unwrap_or(500) as u16,
        err["message"].as_str().unwrap_or("").to_string(),
    )))
}

/// Decodes a framed stream into a reader (see the module docs).
fn unframe(mut reader: BufReader<tokio::net::unix::OwnedReadHalf>) -> StreamReader {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    tokio::spawn(async move {
        let result: std::io::Result<()> = async {
            loop {
                let len = reader.read_u32().await.map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("the stream from the server was cut: {e}"),
                    )
                })?;
                if len == 0 {
                    break;
                }
                let mut buf = vec![0u8; len as usize];
                reader.read_exact(&mut buf).await.map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("the stream from the server was cut: {e}"),
                    )
                })?;
                if tx.send(Ok(bytes::Bytes::from(buf))).await.is_err() {
                    return Ok(());
                }
            }
            let mut end = String::new();
            reader.read_line(&mut end).await?;
            let v: Value = serde_json::from_str(&end).map_err(|e| {
                std::io::Error::other(format!("bad end of stream from the server: {e}"))
            })?;
            if v["ok"] == json!(true) {
                return Ok(());
            }
            let err = &v["error"];
            Err(std::io::Error::other(format!(
                "the server stopped the stream: {} ({})",
                err["message"].as_str().unwrap_or(""),
                err["code"].as_str().unwrap_or("error")
            )))
        }
        .await;
        if let Err(e) = result {
            let _ = tx.send(Err(e)).await;
        }
    });
    Box::new(tokio_util::io::StreamReader::new(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ))
}

#[cfg(test)]
mod tests {
    use tokio::net::UnixListener;

    use super::*;

    /// A one-shot fake server on `dir/admin.sock` that answers any request with `reply`.
    async fn fake_server(dir: &Path, reply: Vec<u8>) -> tokio::task::JoinHandle<()> {
        let listener = UnixListener::bind(socket_path(dir)).unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            BufReader::new(read).read_line(&mut line).await.unwrap();
            write.write_all(&reply).await.unwrap();
            write.shutdown().await.unwrap();
        })
    }

    fn framed(chunks: &[&[u8]], end: Option<&str>) -> Vec<u8> {
        let mut out = b"{\"ok\":true,\"stream\":\"framed\"}\n".to_vec();
        for c in chunks {
            out.extend_from_slice(&(c.len() as u32).to_be_bytes());
            out.extend_from_slice(c);
        }
        if let Some(end) = end {
            out.extend_from_slice(&0u32.to_be_bytes());
            out.extend_from_slice(end.as_bytes());
            out.push(b'\n');
        }
        out
    }

    async fn read_stream(dir: &Path) -> (Vec<u8>, std::io::Result<()>) {
        let Ok(Some(Reply::Stream(mut r))) = request(dir, &AdminRequest::Ping).await else {
            panic!("not a stream");
        };
        let mut got = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            match r.read(&mut buf).await {
                Ok(0) => return (got, Ok(())),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return (got, Err(e)),
            }
        }
    }

    #[tokio::test]
    async fn a_complete_stream_reads_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let server = fake_server(
            dir.path(),
            framed(&[b"hello ", b"world"], Some("{\"ok\":true}")),
        )
        .await;
        let (got, end) = read_stream(dir.path()).await;
        assert_eq!(got, b"hello world");
        assert!(end.is_ok(), "{end:?}");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_stream_the_server_stopped_or_that_was_cut_reads_as_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let stopped = framed(
            &[b"partial"],
            Some(r#"{"ok":false,"error":{"code":"internal","status":500,"message":"disk full"}}"#),
        );
        let server = fake_server(dir.path(), stopped).await;
        let (got, end) = read_stream(dir.path()).await;
        assert_eq!(got, b"partial");
        let err = end.unwrap_err().to_string();
        assert!(err.contains("disk full"), "{err}");
        server.await.unwrap();
        std::fs::remove_file(socket_path(dir.path())).unwrap();

        let mut cut = framed(&[b"partial"], None);
        cut.extend_from_slice(&100u32.to_be_bytes());
        cut.extend_from_slice(b"only some");
        let server = fake_server(dir.path(), cut).await;
        let (_, end) = read_stream(dir.path()).await;
        let err = end.unwrap_err().to_string();
        assert!(err.contains("was cut"), "{err}");
        server.await.unwrap();
    }
}
