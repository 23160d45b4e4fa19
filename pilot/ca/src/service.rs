//! The certificate service: authenticate, sign, count.
//!
//! ```text
//!  CreateCertificate(csr, validity) + authorization: Bearer <token>
//!     │ Authenticators ── refused ──► UNAUTHENTICATED      (authentication_failure_count)
//!     ▼ Caller{ns, sa} → spiffe://<td>/ns/<ns>/sa/<sa>
//!     │ CertificateAuthority::sign_workload
//!     │     ├─ bad CSR ──────────────► INVALID_ARGUMENT    (csr_parsing_err_count)
//!     │     └─ CSR for another id ───► PERMISSION_DENIED   (id_extraction_err_count, logged)
//!     ▼
//!  cert_chain = [leaf, cert-chain.pem (plug-in), root-cert.pem] (success_cert_issuance_count)
//! ```

use std::{sync::Arc, time::Duration};

use rudder_model::identity::SpiffeId;

use crate::{
    auth::{AuthError, Authenticators},
    ca::{CertificateAuthority, SignError},
    metrics::{CaMetrics, Counter},
    proto::{
        IstioCertificateRequest, IstioCertificateResponse, IstioCertificateService,
        IstioCertificateServiceServer,
    },
};

/// Implements `IstioCertificateService` over a CA and authenticators.
#[derive(Clone)]
pub struct CertificateService {
    ca: Arc<CertificateAuthority>,
    auth: Authenticators,
    metrics: CaMetrics,
}

impl CertificateService {
    /// A service signing with `ca` for callers `auth` accepts.
    pub fn new(ca: Arc<CertificateAuthority>, auth: Authenticators) -> Self {
        Self {
            ca,
            auth,
            metrics: CaMetrics::default(),
        }
    }

    /// The counters, for `/metrics`.
    pub fn metrics(&self) -> CaMetrics {
        self.metrics.clone()
    }

    /// The tonic service to add to a server.
    pub fn into_server(self) -> IstioCertificateServiceServer<CertificateService> {
        IstioCertificateServiceServer::new(self)
    }
}

/// The bearer token of a request, as Istio's agent sends it.
fn bearer<T>(req: &tonic::Request<T>) -> Result<&str, AuthError> {
    let value = req
        .metadata()
        .get("authorization")
        .ok_or(AuthError::Missing)?;
    let value = value
        .to_str()
        .map_err(|_| AuthError::Invalid("the authorization header is not ASCII".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| {
            AuthError::Invalid("the authorization header is not `Bearer <token>`".into())
        })?;
    Ok(token.trim())
}

#[tonic::async_trait]
impl IstioCertificateService for CertificateService {
    async fn create_certificate(
        &self,
        request: tonic::Request<IstioCertificateRequest>,
    ) -> Result<tonic::Response<IstioCertificateResponse>, tonic::Status> {
        self.metrics.inc(Counter::Csr);
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let caller = match bearer(&request) {
            Ok(token) => self.auth.authenticate(token).await,
            Err(e) => Err(e),
        };
        let caller = caller.map_err(|error| {
            self.metrics.inc(Counter::AuthFailure);
            tracing::warn!(%error, %peer, "certificate request refused: bad credential");
            tonic::Status::unauthenticated(format!("authentication failed: {error}"))
        })?;
        let id = SpiffeId::new(
            self.ca.trust_domain(),
            &caller.namespace,
            &caller.service_account,
        );
        let req = request.into_inner();
        if req.validity_duration < 0 {
            self.metrics.inc(Counter::CsrParsingErr);
            return Err(tonic::Status::invalid_argument(format!(
                "validity_duration {} is negative (seconds, 0 for the default)",
                req.validity_duration
            )));
        }
        let requested = Duration::from_secs(req.validity_duration as u64);
        match self.ca.sign_workload(&req.csr, &id, Some(requested)) {
            Ok(issued) => {
                self.metrics.inc(Counter::Success);
                tracing::info!(%id, pod = caller.pod.as_deref().unwrap_or(""), %peer, not_after = issued.not_after, "issued workload certificate");
                Ok(tonic::Response::new(IstioCertificateResponse {
                    cert_chain: issued.chain,
                }))
            }
            Err(error @ SignError::IdentityMismatch { .. })
            | Err(error @ SignError::WrongTrustDomain { .. }) => {
                self.metrics.inc(Counter::IdExtractionErr);
                tracing::warn!(%error, %id, pod = caller.pod.as_deref().unwrap_or(""), %peer, "certificate request for another identity refused");
                Err(tonic::Status::permission_denied(error.to_string()))
            }
            Err(error @ SignError::BadCsr(_)) => {
                self.metrics.inc(Counter::CsrParsingErr);
                tracing::warn!(%error, %id, %peer, "certificate request refused: bad CSR");
                Err(tonic::Status::invalid_argument(error.to_string()))
            }
            Err(error @ SignError::Sign(_)) => {
                tracing::error!(%error, %id, "signing failed");
                Err(tonic::Status::internal(error.to_string()))
            }
        }
    }
}
