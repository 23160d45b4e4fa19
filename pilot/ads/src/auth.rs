//! Who is at the other end of a stream, and whether pilot may serve it the
//! node it claims.
//!
//! ```text
//!  TLS handshake ─ client certificate (optional) ─┐
//!  request headers ─ authorization: Bearer … ─────┼─► PeerCredentials ─► StreamAuthorizer::authorize(peer, node)
//!  first DiscoveryRequest ─ node ─────────────────┘       Ok: the stream goes on; Err(status): it ends with it
//! ```
//!
//! The server only gathers the credentials; pilot decides (its authorizer
//! knows the CA's root, the token authenticators and which pod a node is).
//! A port served with [`AdsServer::into_authorized_service`](crate::AdsServer::into_authorized_service)
//! asks the authorizer once per stream, before anything is generated; a port
//! served with [`AdsServer::into_service`](crate::AdsServer::into_service) asks nobody (the plaintext
//! port of the local mesh and tests).

use std::sync::Arc;

use tonic::{codegen::http, Status};

use crate::node::NodeInfo;

/// What a stream's client presented.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerCredentials {
    /// The client certificate chain of the TLS connection (DER, leaf first),
    /// when it presented one and the server asked for it.
    pub certs: Vec<Vec<u8>>,
    /// The token of an `authorization: Bearer <token>` header.
    pub bearer: Option<String>,
}

impl PeerCredentials {
    /// The credentials of one gRPC request (its TLS connection's client
    /// certificate, recorded by tonic, and its headers).
    pub fn of<B>(req: &http::Request<B>) -> Self {
        use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
        let certs = req
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|info| info.peer_certs())
            .map(|chain| chain.iter().map(|c| c.as_ref().to_vec()).collect())
            .unwrap_or_default();
        let bearer = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        PeerCredentials { certs, bearer }
    }
}

/// Decides whether a stream's client may receive the configuration of the
/// node it names; pilot implements it.
#[tonic::async_trait]
pub trait StreamAuthorizer: Send + Sync + 'static {
    /// `Ok` to serve; otherwise the status the stream ends with
    /// (`unauthenticated`: no or bad credential; `permission_denied`: a
    /// good credential for another workload).
    async fn authorize(&self, peer: &PeerCredentials, node: &NodeInfo) -> Result<(), Status>;
}

/// The authorizer of one port with the credentials of one stream.
#[derive(Clone)]
pub(crate) struct Guard {
    pub(crate) authorizer: Arc<dyn StreamAuthorizer>,
    pub(crate) peer: PeerCredentials,
}
