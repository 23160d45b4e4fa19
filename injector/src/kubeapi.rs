//! A minimal Kubernetes API client: one HTTPS request per call, trusting only
//! the cluster CA and sending the service-account token.
//!
//! The injector talks to the API server for three things only (`/version`,
//! its own Secret, the caBundle of its webhook configuration), all at start
//! or every few minutes. A small hand-rolled client keeps the kube crate and
//! its dependency tree (watchers, reflectors, k8s-openapi) out of this
//! binary; requests carry JSON and the callers read the few fields they need.

use std::{path::Path, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{header, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;

/// Where Kubernetes mounts a pod's service-account credentials.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Bound on one request (connect, TLS, answer).
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request could not be made or answered.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Reading the token or CA failed.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The CA bundle holds no usable certificate.
    #[error("CA bundle: {0}")]
    Ca(String),
    /// Connecting, TLS or HTTP failed.
    #[error("{method} https://{addr}{path}: {message}")]
    Request {
        /// The method.
        method: Method,
        /// The server.
        addr: String,
        /// The path.
        path: String,
        /// Why.
        message: String,
    },
}

/// One answer: status and body, whatever the status.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Raw body.
    pub body: Bytes,
}

impl ApiResponse {
    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A one-line description for errors: the Status object's `message` when
    /// the API server sent one, else the body (truncated).
    pub fn describe(&self) -> String {
        let message = self
            .json()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(String::from));
        let text = message.unwrap_or_else(|| {
            let t = String::from_utf8_lossy(&self.body);
            t.chars().take(300).collect()
        });
        format!("HTTP {}: {}", self.status, text.trim())
    }
}

/// An API server endpoint with its trust and credentials.
#[derive(Clone)]
pub struct ApiClient {
    addr: String,
    server_name: ServerName<'static>,
    host: String,
    tls: Arc<rustls::ClientConfig>,
    token: Option<String>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("ApiClient")
            .field("addr", &self.addr)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client for `addr` (`host:port`) whose certificate must name
    /// `server_name` and chain to `ca_pem`.
    pub fn new(
        addr: &str,
        server_name: &str,
        ca_pem: &[u8],
        token: Option<&str>,
    ) -> Result<Self, ApiError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
            let cert = cert.map_err(|e| ApiError::Ca(e.to_string()))?;
            roots.add(cert).map_err(|e| ApiError::Ca(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(ApiError::Ca("no CERTIFICATE block".into()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ApiError::Ca(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| ApiError::Ca(format!("server name {server_name:?}: {e}")))?;
        Ok(ApiClient {
            addr: addr.to_string(),
            server_name: name,
            host: server_name.to_string(),
            tls: Arc::new(tls),
            token: token.map(|t| t.trim().to_string()),
        })
    }

    /// The in-cluster client (KUBERNETES_SERVICE_HOST/PORT and the
    /// service-account token and CA); `Ok(None)` when not in a cluster.
    pub fn in_cluster() -> Result<Option<Self>, ApiError> {
        let (Ok(host), Ok(port)) = (
            std::env::var("KUBERNETES_SERVICE_HOST"),
            std::env::var("KUBERNETES_SERVICE_PORT"),
        ) else {
            return Ok(None);
        };
        let dir = Path::new(SERVICE_ACCOUNT_DIR);
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| ApiError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        let ca = read("ca.crt")?;
        let token = String::from_utf8_lossy(&read("token")?).into_owned();
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        ApiClient::new(&addr, &host, &ca, Some(&token)).map(Some)
    }

    /// Send one request; `body` is `(content type, bytes)`. Every status is
    /// an `Ok` answer: callers decide what 404 or 409 mean.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<ApiResponse, ApiError> {
        let err = |message: String| ApiError::Request {
            method: method.clone(),
            addr: self.addr.clone(),
            path: path.to_string(),
            message,
        };
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(&self.addr)
                .await
                .map_err(|e| err(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| err(format!("TLS: {e}")))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| err(e.to_string()))?;
            let conn = tokio::spawn(conn);
            let mut req = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(header::HOST, &self.host)
                .header(header::ACCEPT, "application/json");
            if let Some(t) = &self.token {
                req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            let payload = match body {
                Some((content_type, bytes)) => {
                    req = req.header(header::CONTENT_TYPE, content_type);
                    Bytes::from(bytes)
                }
                None => Bytes::new(),
            };
            let req = req
                .body(Full::new(payload))
                .map_err(|e| err(e.to_string()))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| err(e.to_string()))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| err(e.to_string()))?
                .to_bytes();
            conn.abort();
            Ok(ApiResponse { status, body })
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| err(format!("no answer within {TIMEOUT:?}")))?
    }

    /// Send a JSON body (`content_type` names the flavour: plain, merge
    /// patch, JSON patch).
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: &Value,
    ) -> Result<ApiResponse, ApiError> {
        let bytes = serde_json::to_vec(body).expect("a JSON value serializes");
        self.request(method, path, Some((content_type, bytes)))
            .await
    }
}
