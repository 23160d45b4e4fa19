//! The HTTPS admission server (`injector serve`, port 15017).
//!
//! Transport only: TLS (with the reloading certificate of [`crate::tls`]),
//! HTTP/1.1 or HTTP/2 (the API server uses either), a body limit, and routing.
//! What to answer is [`crate::admission::review`].
//!
//! - `POST /inject`: AdmissionReview v1 → 200 with the response review, or 400
//!   with a plain-text message when the body is not a usable review.
//! - `POST /validate`: the same for the validating webhook
//!   ([`crate::validation`]): allowed, or refused with `pilot validate`'s lines.
//! - `GET /healthz`: 200 `ok` (the Deployment's probes).

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::admission::{review, Outcome, ReviewContext, ReviewError, MAX_BODY_BYTES};
use crate::template::Values;
use crate::validation::validate_review;

/// Bound on a TLS handshake and on reading request headers, so idle or slow
/// clients cannot pile up connections.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every request needs.
#[derive(Debug)]
pub struct WebhookState {
    /// Template values.
    pub values: Values,
    /// Native sidecars, resolved at start.
    pub native_sidecars: bool,
}

type Body = Full<Bytes>;

fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut msg = msg.into();
    msg.push('\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(msg)))
        .expect("static response parts are valid")
}

fn bad_request(e: &ReviewError) -> Response<Body> {
    tracing::warn!(error = %e, "rejected admission request");
    text(StatusCode::BAD_REQUEST, e.to_string())
}

/// Route one request.
pub async fn handle(
    req: Request<Incoming>,
    state: Arc<WebhookState>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    Ok(match (method, path.as_str()) {
        (Method::GET, "/healthz") => text(StatusCode::OK, "ok"),
        (Method::POST, "/inject") => {
            let ctx = ReviewContext {
                values: &state.values,
                native_sidecars: state.native_sidecars,
            };
            admit(req, "injection", |body| review(body, &ctx)).await
        }
        (Method::POST, "/validate") => admit(req, "validation", validate_review).await,
        (_, "/inject" | "/validate") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST with an AdmissionReview",
        ),
        (_, "/healthz") => text(StatusCode::METHOD_NOT_ALLOWED, "use GET"),
        _ => text(
            StatusCode::NOT_FOUND,
            format!("no such path {path}; the webhook answers POST /inject and POST /validate"),
        ),
    })
}

/// Read an AdmissionReview body (bounded) and answer it with `decide`.
async fn admit(
    req: Request<Incoming>,
    webhook: &'static str,
    decide: impl FnOnce(&[u8]) -> Result<(serde_json::Value, Outcome), ReviewError>,
) -> Response<Body> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return bad_request(&ReviewError::TooLarge);
    }
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return bad_request(&ReviewError::TooLarge)
        }
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("cannot read request body: {e}"),
            )
        }
    };
    match decide(&body) {
        Err(e) => bad_request(&e),
        Ok((response, outcome)) => {
            let uid = response["response"]["uid"].as_str().unwrap_or_default();
            match &outcome {
                Outcome::Injected => tracing::info!(uid, webhook, "injected"),
                Outcome::Allowed(why) => {
                    tracing::info!(uid, webhook, reason = %why, "allowed unchanged")
                }
                Outcome::Denied(why) => tracing::warn!(uid, webhook, reason = %why, "denied"),
            }
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(
                    serde_json::to_vec(&response).expect("JSON serializes"),
                )))
                .expect("static response parts are valid")
        }
    }
}

/// Serve until `shutdown` completes. Each connection runs on its own task;
/// a failing connection is logged and never stops the server.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<WebhookState>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        tokio::spawn(connection(acceptor.clone(), tcp, peer, state.clone()));
    }
}

async fn connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    state: Arc<WebhookState>,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(error)) => return tracing::debug!(%error, %peer, "TLS handshake failed"),
        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
    };
    let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT);
    if let Err(error) = builder.serve_connection(TokioIo::new(tls), service).await {
        tracing::debug!(%error, %peer, "connection ended with an error");
    }
}
