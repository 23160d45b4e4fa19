//! The API server's version, for `nativeSidecars: auto`.
//!
//! Native sidecars need Kubernetes ≥ 1.29. The webhook asks `GET /version`
//! once at start when it runs in a cluster (service-account token and CA in
//! the standard places); outside a cluster, or when the question fails, the
//! version is unknown and `auto` means classic sidecars, which work
//! everywhere. A small hand-rolled HTTPS GET keeps the kube client (and its
//! dependency tree) out of this binary for one request.

use std::{path::Path, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{header, Request};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;

/// Where Kubernetes mounts a pod's service-account credentials.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const TIMEOUT: Duration = Duration::from_secs(5);

/// Why the version could not be learned.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
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
    #[error("GET https://{addr}/version: {message}")]
    Request {
        /// The server.
        addr: String,
        /// Why.
        message: String,
    },
    /// The answer is not a Kubernetes version.
    #[error("GET /version answered {0}")]
    Parse(String),
}

/// `major`/`minor` of a `/version` answer (`"minor": "29+"` on some
/// distributions), falling back to `gitVersion` (`v1.29.3-gke.1`).
pub fn parse_version(v: &Value) -> Option<(u32, u32)> {
    let num = |s: &str| s.trim_end_matches('+').parse::<u32>().ok();
    let major = v.get("major").and_then(Value::as_str).and_then(num);
    let minor = v.get("minor").and_then(Value::as_str).and_then(num);
    if let (Some(a), Some(b)) = (major, minor) {
        return Some((a, b));
    }
    let git = v.get("gitVersion")?.as_str()?.trim_start_matches('v');
    let mut parts = git.split(['.', '-', '+']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// GET `https://<addr>/version`, trusting only `ca_pem`.
pub async fn fetch_version(
    addr: &str,
    server_name: &str,
    ca_pem: &[u8],
    token: Option<&str>,
) -> Result<(u32, u32), VersionError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
        let cert = cert.map_err(|e| VersionError::Ca(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| VersionError::Ca(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(VersionError::Ca("no CERTIFICATE block".into()));
    }
    let request_err = |message: String| VersionError::Request {
        addr: addr.to_string(),
        message,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| request_err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name =
        ServerName::try_from(server_name.to_string()).map_err(|e| request_err(e.to_string()))?;
    let body = tokio::time::timeout(TIMEOUT, async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| request_err(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| request_err(format!("TLS: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| request_err(e.to_string()))?;
        let conn = tokio::spawn(conn);
        let mut req = Request::get("/version")
            .header(header::HOST, server_name)
            .header(header::ACCEPT, "application/json");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {}", t.trim()));
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| request_err(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| request_err(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| request_err(e.to_string()))?
            .to_bytes();
        conn.abort();
        if !status.is_success() {
            return Err(request_err(format!("HTTP {status}")));
        }
        Ok(bytes)
    })
    .await
    .map_err(|_| request_err(format!("no answer within {TIMEOUT:?}")))??;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|_| VersionError::Parse(String::from_utf8_lossy(&body).into()))?;
    parse_version(&v).ok_or_else(|| VersionError::Parse(v.to_string()))
}

/// The API server version when running in a cluster; `Ok(None)` outside one.
pub async fn in_cluster_version() -> Result<Option<(u32, u32)>, VersionError> {
    let (Ok(host), Ok(port)) = (
        std::env::var("KUBERNETES_SERVICE_HOST"),
        std::env::var("KUBERNETES_SERVICE_PORT"),
    ) else {
        return Ok(None);
    };
    let dir = Path::new(SERVICE_ACCOUNT_DIR);
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| VersionError::Read {
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
    fetch_version(&addr, &host, &ca, Some(&token))
        .await
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_major_minor_and_git_version() {
        assert_eq!(
            parse_version(&json!({"major": "1", "minor": "29"})),
            Some((1, 29))
        );
        assert_eq!(
            parse_version(&json!({"major": "1", "minor": "28+"})),
            Some((1, 28))
        );
        assert_eq!(
            parse_version(&json!({"major": "", "minor": "", "gitVersion": "v1.30.2-gke.1"})),
            Some((1, 30))
        );
        assert_eq!(parse_version(&json!({"kind": "Status"})), None);
    }
}
