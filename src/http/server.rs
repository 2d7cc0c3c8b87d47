//! The HTTP edge: the accept loop that serves the router over plain HTTP or TLS, HTTP/1.1 and
//! HTTP/2, within `[http]`'s bounds (issue 12, finding 1).
//!
//! - At most `max_connections` connections are served at once. The loop takes a slot before it
//!   accepts, so further clients wait in the kernel's accept queue instead of costing memory.
//! - A client has `header_read_timeout_secs` to finish the TLS handshake and to send each
//!   request's headers (hyper's timer, from the first byte of a request), and a connection
//!   with no request in flight and no bytes moving for as long is closed ([`Activity`]: hyper
//!   does not time out a connection that sends nothing). A slow-loris or idle client holds a
//!   slot for that long at most.
//! - HTTP/2 streams per connection and header sizes are capped.
//! - The request timeout and the body limits are middleware ([`super::app`]).
//!
//! Shutdown drains like `axum::serve`: stop accepting, let in-flight requests finish (bounded
//! at [`DRAIN`]), close idle connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::HttpConfig;

/// How long shutdown waits for in-flight requests.
pub const DRAIN: Duration = Duration::from_secs(30);
/// Most concurrent HTTP/2 streams on one connection.
const MAX_STREAMS: u32 = 64;
/// Most bytes of request headers (HTTP/1 read buffer, HTTP/2 header list).
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Serves `router` on `listener` until `shutdown` resolves, then drains. With `tls`, each
/// connection is a TLS one, with the configuration served at the time it was accepted (a
/// SIGHUP swaps it for later ones).
///
/// Errors: none once listening (accept errors such as `EMFILE` are logged and retried).
pub async fn serve(
    listener: TcpListener,
    tls: Option<crate::tls::Tls>,
    router: Router,
    http: &HttpConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(http.max_connections));
    let graceful = GracefulShutdown::new();
    let handshake = http.header_read_timeout();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .keep_alive_interval(Some(handshake))
        .keep_alive_timeout(handshake);
    let trusted: Arc<[ipnet::IpNet]> = http.trusted_proxies.clone().into();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let service = hyper_util::service::TowerToHyperService::new(tower::service_fn({
            let router = router.clone();
            let trusted = trusted.clone();
            let activity = activity.clone();
            move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                let client = client_addr(peer, req.headers(), &trusted);
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut()
                    .insert(super::extract::ClientAddr(client));
                let busy = activity.request();
                let res = router.clone().oneshot(req.map(axum::body::Body::new));
                async move {
                    let res = res.await;
                    drop(busy);
                    res
                }
            }
        }));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.server_config()));
        tokio::spawn(async move {
            let _slot = slot;
            let served = match acceptor {
                None => serve_io(&builder, tcp, service, watcher, activity, handshake).await,
                Some(acceptor) => match tokio::time::timeout(handshake, acceptor.accept(tcp)).await
                {
                    Ok(Ok(stream)) => {
                        serve_io(&builder, stream, service, watcher, activity, handshake).await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
            };
            match served {
                None => tracing::debug!(%peer, "closed an idle connection"),
                Some(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "connection ended with an error")
                }
                Some(Ok(())) => {}
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => {
            tracing::warn!("in-flight requests did not finish within {} s; stopping anyway", DRAIN.as_secs());
        }
    }
    Ok(())
}

/// Serves one connection until it ends, shutdown drains it, or it sits idle for `idle`
/// ([`Activity`]); `None` when it was closed for idleness.
async fn serve_io<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: S,
    watcher: hyper_util::server::graceful::Watcher,
    activity: Arc<Activity>,
    idle: Duration,
) -> Option<Result<(), Box<dyn std::error::Error + Send + Sync>>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let io = ActiveIo::new(io, activity.clone());
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::select! {
        r = watcher.watch(conn.into_owned()) => Some(r),
        () = activity.until_idle(idle) => None,
    }
}

/// What a connection is doing: when bytes last moved, and how many requests are in flight.
#[derive(Debug)]
pub struct Activity {
    start: std::time::Instant,
    last_ms: std::sync::atomic::AtomicU64,
    busy: std::sync::atomic::AtomicUsize,
}

/// A request in flight on a connection (dropped when its response is ready; a streamed body
/// then counts as activity by its writes).
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

use std::sync::atomic::Ordering;

impl Activity {
    fn new() -> Self {
        Activity {
            start: std::time::Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
            busy: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Release);
    }

    fn request(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Busy(self.clone())
    }

    /// Resolves once no request is in flight and no byte has moved for `idle`.
    async fn until_idle(&self, idle: Duration) {
        loop {
            let since = self
                .start
                .elapsed()
                .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Acquire)));
            if self.busy.load(Ordering::Acquire) == 0 && since >= idle {
                return;
            }
            tokio::time::sleep(idle.saturating_sub(since).max(Duration::from_millis(250))).await;
        }
    }
}

/// A connection's stream that notes every read and write in its [`Activity`].
struct ActiveIo<T> {
    inner: TokioIo<T>,
    activity: Arc<Activity>,
}

impl<T> ActiveIo<T> {
    fn new(io: T, activity: Arc<Activity>) -> Self {
        activity.touch();
        ActiveIo {
            inner: TokioIo::new(io),
            activity,
        }
    }
}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> hyper::rt::Read for ActiveIo<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if r.is_ready() {
            self.activity.touch();
        }
        r
    }
}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> hyper::rt::Write for ActiveIo<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if r.is_ready() {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if r.is_ready() {
            self.activity.touch();
        }
        r
    }
}

/// The client a request came from: the TCP peer, or, when the peer is one of `[http]
/// trusted_proxies`, the address the proxy reports: the right-most entry of `Forwarded:
/// for=` (RFC 7239) or `X-Forwarded-For` that is not itself a trusted proxy. Throttles and
/// session records use this (issue 12, finding 5).
pub fn client_addr(
    peer: SocketAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let ip = peer.ip().to_canonical();
    let is_trusted = |a: &std::net::IpAddr| trusted.iter().any(|n| n.contains(a));
    if !is_trusted(&ip) {
        return ip;
    }
    let forwarded = headers
        .get_all(axum::http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|el| {
            el.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| forwarded_node(v.trim()))
                    .flatten()
            })
        })
        .collect::<Vec<_>>();
    let hops = if forwarded.is_empty() {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|h| forwarded_node(h.trim()))
            .collect()
    } else {
        forwarded
    };
    hops.into_iter()
        .rev()
        .find(|a| !is_trusted(a))
        .unwrap_or(ip)
}

/// An address of a `Forwarded` `for=` node or an `X-Forwarded-For` entry: `1.2.3.4`,
/// `"1.2.3.4:80"`, `"[2001:db8::1]:80"`, `2001:db8::1`. Obfuscated and `unknown` nodes are
/// `None`.
fn forwarded_node(v: &str) -> Option<std::net::IpAddr> {
    let v = v.trim_matches('"');
    if let Ok(ip) = v.parse::<std::net::IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = v.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    v.strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .and_then(|(ip, _)| ip.parse::<std::net::IpAddr>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_proxy() {
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let stranger: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        let trusted = vec!["127.0.0.0/8".parse().unwrap()];
        let h = headers(&[("x-forwarded-for", "198.51.100.1, 198.51.100.7")]);
        // The right-most hop not a proxy: earlier entries are the client's to forge.
        assert_eq!(
            client_addr(proxy, &h, &trusted),
            "198.51.100.7".parse::<std::net::IpAddr>().unwrap()
        );
        assert_eq!(client_addr(stranger, &h, &trusted), stranger.ip());
        assert_eq!(client_addr(proxy, &h, &[]), proxy.ip());
        let h = headers(&[(
            "forwarded",
            "for=198.51.100.1;proto=https, for=\"[2001:db8::7]:443\"",
        )]);
        assert_eq!(
            client_addr(proxy, &h, &trusted),
            "2001:db8::7".parse::<std::net::IpAddr>().unwrap()
        );
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(client_addr(proxy, &h, &trusted), proxy.ip());
    }
}
