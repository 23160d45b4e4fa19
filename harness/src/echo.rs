//! The echo upstream: an in-process HTTP server (HTTP/1.1 and HTTP/2 cleartext)
//! that answers every request with a fixed body, such as `reviews-v2`, so a
//! test can tell which upstream served it.
//!
//! Per request it can also be steered by headers, for retry, timeout and
//! fault tests:
//! - `x-echo-status: 503` answers with that status;
//! - `x-echo-delay-ms: 250` waits that long first (capped at 30 s).
//!
//! Request headers named in [`EchoConfig::echo_headers`] come back as
//! `x-echo-<name>` (e.g. `end-user` → `x-echo-end-user`), so tests see what
//! Envoy forwarded.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::pod::{Pod, PodError, PodTask};

/// Most requests an echo server remembers in detail (the count is exact).
const MAX_RECORDED: usize = 10_000;
/// Upper bound of `x-echo-delay-ms`.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// Starting the echo server failed.
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    /// Entering the pod failed.
    #[error(transparent)]
    Pod(#[from] PodError),
    /// The port could not be bound.
    #[error("echo server in pod {pod}: bind {addr}: {source}")]
    Bind {
        /// The pod.
        pod: String,
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// What an echo server answers.
#[derive(Clone, Debug)]
pub struct EchoConfig {
    /// Port to listen on (all addresses of the pod); 0 = any free port.
    pub port: u16,
    /// Response body, e.g. `reviews-v2`.
    pub body: String,
    /// Request headers to return as `x-echo-<name>` (names case-insensitive).
    pub echo_headers: Vec<String>,
}

impl EchoConfig {
    /// An echo server on `port` answering `body`.
    pub fn new(port: u16, body: impl Into<String>) -> EchoConfig {
        EchoConfig {
            port,
            body: body.into(),
            echo_headers: Vec::new(),
        }
    }

    /// Also echo the request header `name` as `x-echo-<name>`.
    pub fn echo_header(mut self, name: impl Into<String>) -> Self {
        self.echo_headers.push(name.into().to_ascii_lowercase());
        self
    }
}

/// A request as the echo server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// `Host` header (or HTTP/2 authority).
    pub host: String,
    /// All headers, names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The peer address of the connection.
    pub peer: SocketAddr,
}

#[derive(Debug, Default)]
struct Stats {
    count: AtomicU64,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// A running echo server; stops when dropped.
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    stats: Arc<Stats>,
    _task: PodTask<()>,
}

impl Pod {
    /// Starts an echo server in this pod.
    pub fn start_echo(&self, config: EchoConfig) -> Result<EchoServer, EchoError> {
        let stats = Arc::new(Stats::default());
        let served = stats.clone();
        let pod = self.name().to_string();
        let ip = self.ip();
        let (task, bound) = self.spawn_task(move |mut shutdown, ready| async move {
            let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.port));
            let listener = match TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(source) => {
                    let _ = ready.send(Err(EchoError::Bind { pod, addr, source }));
                    return;
                }
            };
            let port = listener
                .local_addr()
                .map(|a| a.port())
                .unwrap_or(config.port);
            let _ = ready.send(Ok(SocketAddr::from((ip, port))));
            let config = Arc::new(config);
            loop {
                let (stream, peer) = tokio::select! {
                    _ = shutdown.wait() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(error) => {
                            tracing::warn!(%error, "echo accept");
                            continue;
                        }
                    },
                };
                let (config, stats) = (config.clone(), served.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        handle(req, peer, config.clone(), stats.clone())
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    if let Err(error) = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(%error, %peer, "echo connection ended");
                    }
                });
            }
        })?;
        let addr = bound?;
        tracing::info!(pod = self.name(), %addr, "echo server listening");
        Ok(EchoServer {
            addr,
            stats,
            _task: task,
        })
    }
}

async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    config: Arc<EchoConfig>,
    stats: Arc<Stats>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let record = RecordedRequest {
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.to_string()),
        host: header("host")
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        peer,
    };
    let status = header("x-echo-status")
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let delay = header("x-echo-delay-ms")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_millis);
    let mut response = Response::builder().status(status);
    for name in &config.echo_headers {
        if let Some(value) = req.headers().get(name.as_str()) {
            response = response.header(format!("x-echo-{name}"), value.clone());
        }
    }
    stats.count.fetch_add(1, Ordering::SeqCst);
    {
        let mut requests = stats.requests.lock().unwrap_or_else(|p| p.into_inner());
        if requests.len() < MAX_RECORDED {
            requests.push(record);
        }
    }
    // Drain the request body so keep-alive connections stay usable.
    let _ = req.into_body().collect().await;
    if let Some(delay) = delay {
        tokio::time::sleep(delay.min(MAX_DELAY)).await;
    }
    Ok(response
        .body(Full::new(Bytes::from(config.body.clone())))
        .expect("valid response"))
}

impl EchoServer {
    /// Where it listens: the pod's IP and the bound port.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered so far.
    pub fn count(&self) -> u64 {
        self.stats.count.load(Ordering::SeqCst)
    }

    /// The requests seen so far (the first 10 000).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.stats
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
