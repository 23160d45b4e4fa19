//! The injector's Kubernetes API client: kube-rs's [`kube::Client`] (the one
//! Kubernetes client of the workspace: TLS trusting only the cluster CA,
//! connection reuse, timeouts), used as raw requests and answers.
//!
//! The injector talks to the API server for three things only (`/version`,
//! its own Secret, the caBundle of its webhook configurations), at start and
//! every few minutes; callers read the few JSON fields they need and decide
//! what each status means (404, 409), so every status is an `Ok` answer here.
//!
//! The service-account token is read from its file for every request: the
//! kubelet rotates projected tokens (about hourly on a real cluster) and a
//! token read once at start would stop working; at a few requests per five
//! minutes a file read each time costs nothing.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{header, Method, Request, StatusCode};
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
    /// The client could not be built from the configuration.
    #[error("Kubernetes client for {addr}: {message}")]
    Client {
        /// The server.
        addr: String,
        /// Why.
        message: String,
    },
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

/// An error and its causes, `outer: inner: root` (kube's errors keep what
/// went wrong, a refused connection or an untrusted certificate, in sources).
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
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

/// Where the bearer token comes from.
#[derive(Clone)]
enum Token {
    None,
    /// Given once (tests, `fetch_version`).
    Fixed(String),
    /// Read for every request (the service account's projected token).
    File(PathBuf),
}

/// An API server endpoint with its trust and credentials.
#[derive(Clone)]
pub struct ApiClient {
    addr: String,
    client: kube::Client,
    token: Token,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("ApiClient")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client for `addr` (`host:port`) whose certificate must name
    /// `server_name` and chain to `ca_pem`, sending `token` if given.
    pub fn new(
        addr: &str,
        server_name: &str,
        ca_pem: &[u8],
        token: Option<&str>,
    ) -> Result<Self, ApiError> {
        let token = token.map_or(Token::None, |t| Token::Fixed(t.trim().to_string()));
        Self::build(addr, server_name, ca_pem, token)
    }

    /// Like [`ApiClient::new`], with the token read from `token_file` for
    /// every request (so a rotated token is used from the next request on).
    pub fn with_token_file(
        addr: &str,
        server_name: &str,
        ca_pem: &[u8],
        token_file: &Path,
    ) -> Result<Self, ApiError> {
        Self::build(
            addr,
            server_name,
            ca_pem,
            Token::File(token_file.to_path_buf()),
        )
    }

    fn build(addr: &str, server_name: &str, ca_pem: &[u8], token: Token) -> Result<Self, ApiError> {
        let mut roots = Vec::new();
        for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
            roots.push(cert.map_err(|e| ApiError::Ca(e.to_string()))?.to_vec());
        }
        if roots.is_empty() {
            return Err(ApiError::Ca("no CERTIFICATE block".into()));
        }
        let client_err = |message: String| ApiError::Client {
            addr: addr.to_string(),
            message,
        };
        let url: hyper::Uri = format!("https://{addr}")
            .parse()
            .map_err(|e| client_err(format!("not a host:port: {e}")))?;
        let mut config = kube::Config::new(url);
        config.root_cert = Some(roots);
        config.tls_server_name = Some(server_name.to_string());
        config.connect_timeout = Some(TIMEOUT);
        config.read_timeout = Some(TIMEOUT);
        config.write_timeout = Some(TIMEOUT);
        // Each caller decides what a failed answer means (and retries on
        // its own schedule); no hidden retries.
        config.default_retry = false;
        let client = kube::Client::try_from(config).map_err(|e| client_err(e.to_string()))?;
        Ok(ApiClient {
            addr: addr.to_string(),
            client,
            token,
        })
    }

    /// The in-cluster client (KUBERNETES_SERVICE_HOST/PORT, the service
    /// account's CA, and its token read per request); `Ok(None)` when not
    /// in a cluster.
    pub fn in_cluster() -> Result<Option<Self>, ApiError> {
        let (Ok(host), Ok(port)) = (
            std::env::var("KUBERNETES_SERVICE_HOST"),
            std::env::var("KUBERNETES_SERVICE_PORT"),
        ) else {
            return Ok(None);
        };
        let dir = Path::new(SERVICE_ACCOUNT_DIR);
        let ca_path = dir.join("ca.crt");
        let ca = std::fs::read(&ca_path).map_err(|source| ApiError::Read {
            path: ca_path.display().to_string(),
            source,
        })?;
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let client = ApiClient::with_token_file(&addr, &host, &ca, &dir.join("token"))?;
        // Fail at start, not at the first request, when there is no token.
        client.bearer()?;
        Ok(Some(client))
    }

    /// The current token, if any.
    fn bearer(&self) -> Result<Option<String>, ApiError> {
        match &self.token {
            Token::None => Ok(None),
            Token::Fixed(t) => Ok(Some(t.clone())),
            Token::File(path) => std::fs::read_to_string(path)
                .map(|t| Some(t.trim().to_string()))
                .map_err(|source| ApiError::Read {
                    path: path.display().to_string(),
                    source,
                }),
        }
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
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::ACCEPT, "application/json");
        if let Some(t) = self.bearer()? {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let payload = match body {
            Some((content_type, bytes)) => {
                req = req.header(header::CONTENT_TYPE, content_type);
                bytes
            }
            None => Vec::new(),
        };
        let req = req
            .body(kube::client::Body::from(payload))
            .map_err(|e| err(e.to_string()))?;
        let exchange = async {
            let resp = self.client.send(req).await.map_err(|e| err(causes(&e)))?;
            let status = resp.status();
            let body: Bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| err(e.to_string()))?
                .to_bytes();
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
