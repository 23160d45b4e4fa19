//! The loopback app behind Envoy, and the clients that load it through Envoy.
//!
//! Upstream paths: `/` answers `ok`; `/slow?ms=N` answers after N ms;
//! `/stream?ms=N` streams a chunk every 100 ms for N ms (a long-lived stream).

use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::SeqCst},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, StreamBody};
use hyper::{body::Frame, service::service_fn, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

/// Counters of the upstream.
#[derive(Default, Debug)]
pub struct UpstreamStats {
    pub requests: AtomicU64,
    pub in_flight: AtomicU64,
}

/// Starts the upstream on a free loopback port.
pub async fn start_upstream() -> (u16, Arc<UpstreamStats>, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let stats = Arc::new(UpstreamStats::default());
    let s = stats.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = l.accept().await else {
                return;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(req, s.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (port, stats, task)
}

fn query_ms(req: &Request<hyper::body::Incoming>) -> u64 {
    req.uri()
        .query()
        .and_then(|q| q.strip_prefix("ms="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    stats: Arc<UpstreamStats>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    stats.requests.fetch_add(1, SeqCst);
    let ms = query_ms(&req);
    let body = match req.uri().path() {
        "/slow" => {
            stats.in_flight.fetch_add(1, SeqCst);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            stats.in_flight.fetch_sub(1, SeqCst);
            Full::new(Bytes::from_static(b"slow ok")).boxed()
        }
        "/stream" => {
            let chunks = ms / 100;
            let stream = futures::stream::unfold(0u64, move |i| async move {
                if i >= chunks {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((
                    Ok::<_, Infallible>(Frame::data(Bytes::from(format!("chunk {i}\n")))),
                    i + 1,
                ))
            });
            BodyExt::boxed(StreamBody::new(stream))
        }
        _ => Full::new(Bytes::from_static(b"ok")).boxed(),
    };
    Ok(Response::new(body))
}

/// Outcome counters of a load client.
#[derive(Default, Debug)]
pub struct LoadStats {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    /// Connections the client had to replace (after `connection: close` / GOAWAY).
    pub reconnects: AtomicU64,
    /// Long-lived streams cut before their end.
    pub cut: AtomicU64,
    /// Streams that neither finished nor failed within their deadline.
    pub stuck: AtomicU64,
}

/// Short requests, each on a new connection, until `stop`.
pub async fn short_requests(port: u16, stop: Arc<AtomicBool>, stats: Arc<LoadStats>) {
    let url = format!("http://127.0.0.1:{port}/");
    while !stop.load(SeqCst) {
        match rudder_agent::admin::request(hyper::Method::GET, &url, Duration::from_secs(5)).await {
            Ok(r) if r.status == 200 && r.body == "ok" => stats.ok.fetch_add(1, SeqCst),
            other => {
                eprintln!("short request failed: {other:?}");
                stats.failed.fetch_add(1, SeqCst)
            }
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One keep-alive HTTP/1.1 connection, replaced only when Envoy asks
/// (`connection: close`) or closes it between requests.
pub async fn keepalive_requests(port: u16, stop: Arc<AtomicBool>, stats: Arc<LoadStats>) {
    let mut sender: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> = None;
    while !stop.load(SeqCst) {
        if sender.as_mut().is_none_or(|s| s.is_closed()) {
            let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await else {
                stats.failed.fetch_add(1, SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            stats.reconnects.fetch_add(1, SeqCst);
            sender = Some(s);
        }
        let s = sender.as_mut().unwrap();
        if s.ready().await.is_err() {
            sender = None; // closed while idle, before a request was sent: not a failure
            continue;
        }
        let req = Request::get("/")
            .header("host", "test")
            .body(Empty::new())
            .unwrap();
        let result = tokio::time::timeout(Duration::from_secs(5), async {
            let resp = s.send_request(req).await?;
            let close = resp
                .headers()
                .get("connection")
                .is_some_and(|v| v == "close");
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, close, body))
        })
        .await;
        match result {
            Ok(Ok((status, close, body))) if status == 200 && body == "ok" => {
                stats.ok.fetch_add(1, SeqCst);
                if close {
                    sender = None;
                }
            }
            other => {
                eprintln!("keep-alive request failed: {other:?}");
                stats.failed.fetch_add(1, SeqCst);
                sender = None;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Long-lived HTTP/2 streams (`/stream?ms=stream_ms`) over one h2c connection,
/// replaced after GOAWAY. A stream that ends early counts as cut. A stream
/// that neither ends nor fails within `stream_ms` + 10 s is abandoned with its
/// connection and counted as stuck, naming the phase it hung in (hyper's h2
/// client has known hangs, seanmonstar/reqwest#1323); callers wait
/// at least that long for the task to end.
pub async fn h2_streams(port: u16, stream_ms: u64, stop: Arc<AtomicBool>, stats: Arc<LoadStats>) {
    let mut sender: Option<hyper::client::conn::http2::SendRequest<Empty<Bytes>>> = None;
    let want: usize = (0..stream_ms / 100)
        .map(|i| format!("chunk {i}\n").len())
        .sum();
    let deadline = Duration::from_millis(stream_ms) + Duration::from_secs(10);
    while !stop.load(SeqCst) {
        let mut phase = "connect";
        let one = tokio::time::timeout(
            deadline,
            h2_stream_once(port, stream_ms, want, &mut sender, &stats, &mut phase),
        )
        .await;
        if one.is_err() {
            eprintln!("h2 stream stuck for {deadline:?} at phase {phase}");
            stats.stuck.fetch_add(1, SeqCst);
            sender = None;
        }
    }
}

async fn h2_stream_once(
    port: u16,
    stream_ms: u64,
    want: usize,
    sender: &mut Option<hyper::client::conn::http2::SendRequest<Empty<Bytes>>>,
    stats: &LoadStats,
    phase: &mut &'static str,
) {
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        *phase = "connect";
        let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await else {
            stats.failed.fetch_add(1, SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        };
        *phase = "handshake";
        let (s, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        stats.reconnects.fetch_add(1, SeqCst);
        *sender = Some(s);
    }
    let s = sender.as_mut().unwrap();
    *phase = "ready";
    if s.ready().await.is_err() {
        *sender = None;
        return;
    }
    let req = Request::get(format!("http://test/stream?ms={stream_ms}"))
        .body(Empty::new())
        .unwrap();
    *phase = "response headers";
    let resp = match s.send_request(req).await {
        Ok(r) => r,
        Err(e)
            if e.is_canceled()
                || e.to_string().contains("GOAWAY")
                || e.to_string().contains("REFUSED") =>
        {
            // Refused before it started (GOAWAY race): retried on a new connection.
            *sender = None;
            return;
        }
        Err(e) => {
            eprintln!("h2 stream failed to start: {e}");
            stats.failed.fetch_add(1, SeqCst);
            *sender = None;
            return;
        }
    };
    *phase = "body";
    let mut body = resp.into_body();
    let mut got = 0usize;
    let mut cut = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => got += f.data_ref().map_or(0, |d| d.len()),
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    if cut || got < want {
        stats.cut.fetch_add(1, SeqCst);
        *sender = None;
    } else {
        stats.ok.fetch_add(1, SeqCst);
    }
}
