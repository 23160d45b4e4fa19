//! SDS mode: the agent serves `default` (certificate + key) and `ROOTCA`
//! to its Envoy over a Unix socket, so a renewal reaches Envoy without any
//! restart.
//!
//! ```text
//!  renew.rs ──watch<Option<Issued>>──► SdsServer ──StreamSecrets (SotW, Unix socket)──► Envoy
//!                                        one stream per subscription: push on change,
//!                                        answer new names, stay quiet on ACKs
//! ```
//!
//! Envoy opens one SotW stream per secret source it uses (pilot's TLS
//! contexts and the bootstrap's `xds-grpc` cluster name the secrets with an
//! `sds_config` pointing at [`rudder_model::names::SDS_CLUSTER`]). A secret
//! that is not known yet is simply not sent: Envoy keeps the listener warming
//! until it arrives. Only this pod's Envoy can reach the socket (its
//! directory is the pod's own).

use std::{path::Path, pin::Pin, sync::Arc};

use envoy_types::pb::{
    envoy::{
        config::core::v3::{data_source, DataSource},
        extensions::transport_sockets::tls::v3::{
            secret, CertificateValidationContext, Secret, TlsCertificate,
        },
        service::{
            discovery::v3::{
                DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
            },
            secret::v3::secret_discovery_service_server::{
                SecretDiscoveryService, SecretDiscoveryServiceServer,
            },
        },
    },
    google::protobuf::Any,
};
use futures::Stream;
use rudder_model::names::{SECRET_DEFAULT, SECRET_ROOTCA};
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status, Streaming};

use crate::identity::Issued;

/// The SDS socket could not be served.
#[derive(Debug, thiserror::Error)]
#[error("SDS socket {path}: {reason}")]
pub struct SdsError {
    path: String,
    reason: String,
}

const SECRET_TYPE: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// Serves what the renewal loop publishes.
#[derive(Clone)]
pub struct SdsServer {
    secrets: watch::Receiver<Option<Arc<Issued>>>,
}

impl SdsServer {
    /// A server over the renewal loop's channel.
    pub fn new(secrets: watch::Receiver<Option<Arc<Issued>>>) -> Self {
        Self { secrets }
    }
}

fn inline(pem: &str) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(data_source::Specifier::InlineBytes(pem.as_bytes().to_vec())),
        ..Default::default()
    })
}

/// The secret `name` built from `issued`, if it is one we serve.
pub fn secret(name: &str, issued: &Issued) -> Option<Secret> {
    let r#type = match name {
        SECRET_DEFAULT => secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: inline(&issued.chain_pem),
            private_key: inline(&issued.key_pem),
            ..Default::default()
        }),
        SECRET_ROOTCA => secret::Type::ValidationContext(CertificateValidationContext {
            trusted_ca: inline(&issued.root_pem),
            ..Default::default()
        }),
        _ => return None,
    };
    Some(Secret {
        name: name.to_string(),
        r#type: Some(r#type),
    })
}

/// The response for `names` (those we know), versioned by the leaf serial.
fn response(names: &[String], issued: &Issued, nonce: u64) -> DiscoveryResponse {
    let resources = names
        .iter()
        .filter_map(|n| secret(n, issued))
        .map(|s| Any {
            type_url: SECRET_TYPE.into(),
            value: prost::Message::encode_to_vec(&s),
        })
        .collect();
    DiscoveryResponse {
        version_info: issued.serial.clone(),
        resources,
        type_url: SECRET_TYPE.into(),
        nonce: nonce.to_string(),
        ..Default::default()
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;

/// One SotW stream: answer new subscriptions, push every renewal.
async fn run_stream(
    mut inbound: Streaming<DiscoveryRequest>,
    mut secrets: watch::Receiver<Option<Arc<Issued>>>,
    out: mpsc::Sender<Result<DiscoveryResponse, Status>>,
) {
    let mut names: Vec<String> = Vec::new();
    let mut sent: Option<(Vec<String>, String)> = None;
    let mut nonce = 0u64;
    loop {
        tokio::select! {
            req = inbound.message() => match req {
                Ok(Some(req)) => {
                    if let Some(e) = &req.error_detail {
                        tracing::warn!(names = ?req.resource_names, error = %e.message, "Envoy rejected a secret (NACK)");
                        continue;
                    }
                    let mut n = req.resource_names.clone();
                    n.sort();
                    names = n;
                }
                Ok(None) => return,
                Err(status) => {
                    tracing::debug!(%status, "SDS stream closed");
                    return;
                }
            },
            changed = secrets.changed() => if changed.is_err() { return },
        }
        let current = secrets.borrow_and_update().clone();
        let Some(issued) = current else { continue };
        let key = (names.clone(), issued.serial.clone());
        if names.is_empty() || sent.as_ref() == Some(&key) {
            continue;
        }
        nonce += 1;
        tracing::info!(names = ?names, serial = %issued.serial, "pushing secrets to Envoy");
        if out
            .send(Ok(response(&names, &issued, nonce)))
            .await
            .is_err()
        {
            return;
        }
        sent = Some(key);
    }
}

#[tonic::async_trait]
impl SecretDiscoveryService for SdsServer {
    type DeltaSecretsStream =
        Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;
    type StreamSecretsStream = ResponseStream;

    async fn delta_secrets(
        &self,
        _: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaSecretsStream>, Status> {
        Err(Status::unimplemented(
            "the agent serves SDS as state-of-the-world (api_type GRPC)",
        ))
    }

    async fn stream_secrets(
        &self,
        req: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(run_stream(req.into_inner(), self.secrets.clone(), tx));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn fetch_secrets(
        &self,
        req: Request<DiscoveryRequest>,
    ) -> Result<Response<DiscoveryResponse>, Status> {
        let issued = self
            .secrets
            .borrow()
            .clone()
            .ok_or_else(|| Status::unavailable("no certificate yet"))?;
        Ok(Response::new(response(
            &req.into_inner().resource_names,
            &issued,
            0,
        )))
    }
}

/// Binds `path` (replacing a stale socket from an earlier run, creating its
/// directory) and serves until the process exits.
pub async fn serve(
    path: &Path,
    server: SdsServer,
) -> Result<tokio::task::JoinHandle<()>, SdsError> {
    let err = |reason: String| SdsError {
        path: path.display().to_string(),
        reason,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| err(format!("creating {}: {e}", dir.display())))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => tracing::debug!(path = %path.display(), "removed a stale SDS socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(format!("removing the old socket: {e}"))),
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|e| err(e.to_string()))?;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let path = path.display().to_string();
    Ok(tokio::spawn(async move {
        tracing::info!(%path, "SDS serving");
        if let Err(error) = tonic::transport::Server::builder()
            .add_service(SecretDiscoveryServiceServer::new(server))
            .serve_with_incoming(incoming)
            .await
        {
            tracing::error!(%error, %path, "SDS server failed");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_carry_the_issued_pems() {
        let issued = Issued {
            chain_pem: "C".into(),
            key_pem: "K".into(),
            root_pem: "R".into(),
            not_before: 0,
            not_after: 1,
            serial: "ab".into(),
        };
        let r = response(
            &["ROOTCA".into(), "default".into(), "unknown".into()],
            &issued,
            7,
        );
        assert_eq!(
            (r.version_info.as_str(), r.nonce.as_str(), r.resources.len()),
            ("ab", "7", 2)
        );
        let s: Secret = prost::Message::decode(r.resources[1].value.as_slice()).unwrap();
        let Some(secret::Type::TlsCertificate(t)) = s.r#type else {
            panic!("{s:?}")
        };
        assert_eq!(
            t.private_key.unwrap().specifier,
            Some(data_source::Specifier::InlineBytes(b"K".to_vec()))
        );
    }
}
