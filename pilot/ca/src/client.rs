//! Calling the certificate service over TLS, verifying pilot with the mesh
//! root (what the agent does; tests use it too).

use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::proto::{IstioCertificateRequest, IstioCertificateServiceClient};

/// Why the service could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is not `HOST:PORT`.
    #[error("CA address {0:?}: expected HOST:PORT")]
    BadAddress(String),
    /// TLS or connection setup failed.
    #[error("connecting to the CA at {addr}: {reason}")]
    Connect {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// A TLS channel to `addr` (`HOST:PORT`) trusting only `root_pem`. The
/// server name checked is the host (a DNS name or an IP, both of which
/// pilot's serving certificate carries).
pub async fn connect(addr: &str, root_pem: &str) -> Result<Channel, ClientError> {
    let (host, _) = addr
        .rsplit_once(':')
        .ok_or_else(|| ClientError::BadAddress(addr.to_string()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(ClientError::BadAddress(addr.to_string()));
    }
    let err = |e: tonic::transport::Error| ClientError::Connect {
        addr: addr.to_string(),
        reason: format!("{e} ({e:?})"),
    };
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(root_pem))
        .domain_name(host);
    let endpoint = Endpoint::from_shared(format!("https://{addr}"))
        .map_err(|_| ClientError::BadAddress(addr.to_string()))?
        .tls_config(tls)
        .map_err(err)?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15));
    endpoint.connect().await.map_err(err)
}

/// Sends `csr_pem` with `token` and returns the chain (leaf first, root last).
pub async fn create_certificate(
    channel: Channel,
    token: &str,
    csr_pem: &str,
    validity: Duration,
) -> Result<Vec<String>, tonic::Status> {
    let mut req = tonic::Request::new(IstioCertificateRequest {
        csr: csr_pem.to_string(),
        validity_duration: validity.as_secs() as i64,
        metadata: None,
    });
    let value = format!("Bearer {}", token.trim()).parse().map_err(|_| {
        tonic::Status::invalid_argument("the token contains characters not allowed in a header")
    })?;
    req.metadata_mut().insert("authorization", value);
    let resp = IstioCertificateServiceClient::new(channel)
        .create_certificate(req)
        .await?;
    Ok(resp.into_inner().cert_chain)
}
