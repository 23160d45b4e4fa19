//! pilot's certificate authority and Istio's certificate service.
//!
//! ```text
//!   --ca-dir: root-cert.pem + root-key.pem (self-signed) ─┐
//!          or ca-cert/ca-key/cert-chain/root-cert.pem (plug-in) ─┴► Root ─► CertificateAuthority
//!                                                        │ sign_workload / serving_cert
//!   agent ──TLS :15012── CreateCertificate(csr) ─► CertificateService ─┘
//!           (Bearer token)                         │ Authenticators
//!                                                  ├─ local token (HMAC, --local-token-key)
//!                                                  └─ TokenReview (Kubernetes)
//!   pilot also serves ADS on the same TLS port, with serving_cert()  [ you are here: pilot/ca ]
//! ```
//!
//! The identity in a certificate always comes from the caller's credential,
//! never from the CSR. The crate knows nothing of kube (the Kubernetes crate
//! implements [`auth::TokenReviewer`]) nor of pilot's model beyond
//! [`rudder_model::identity::SpiffeId`].
//!
//! Where this sits among the other parts, and the contracts between them:
//! `docs/architecture.md` at the repository root.

#![forbid(unsafe_code)]

pub mod auth;
pub mod ca;
pub mod client;
pub mod metrics;
pub mod plugin;
pub mod proto;
pub mod root;
pub mod service;
pub mod token;

pub use auth::{
    AuthError, Authenticator, Authenticators, Caller, TokenReviewAuthenticator, TokenReviewer,
};
pub use ca::{CertificateAuthority, IssuedChain, SignError, DEFAULT_WORKLOAD_CERT_TTL};
pub use metrics::{CaMetrics, Counter};
pub use service::CertificateService;
pub use token::{sign_local_token, LocalTokenAuthenticator};

/// TLS settings for a tonic server presenting `chain_pem` (leaf + root) and
/// `key_pem`, e.g. pilot's serving certificate on 15012.
pub fn server_tls(chain_pem: &str, key_pem: &str) -> tonic::transport::ServerTlsConfig {
    tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(chain_pem, key_pem))
}

/// The URI SANs of a DER certificate (a workload certificate carries one:
/// `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`).
pub fn uri_sans(der: &[u8]) -> Result<Vec<String>, String> {
    use x509_parser::{extensions::GeneralName, prelude::FromDer};
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subjectAltName: {e}"))?;
    Ok(san
        .into_iter()
        .flat_map(|s| s.value.general_names.iter())
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .collect())
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
