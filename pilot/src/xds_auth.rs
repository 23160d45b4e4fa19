//! Who may receive which node's configuration on the TLS port (15012), as
//! istiod checks it: the client proves an identity, with its workload
//! certificate (mutual TLS, the chain checked against the mesh root during
//! the handshake) or a service-account token (the authenticators of the
//! certificate service), and that identity's namespace and service account
//! must be the node's, as pilot resolves it (the pod in the store wins over
//! what the node claims). Anything else ends the stream before a byte of
//! configuration is generated: `unauthenticated` without a usable
//! credential, `permission_denied` for another workload's node; both counted
//! in `pilot_xds_auth_failures`.

use std::sync::Arc;

use rudder_ads::{NodeInfo, PeerCredentials, StreamAuthorizer};
use rudder_ca::Authenticators;
use rudder_model::{identity::SpiffeId, Proxy};
use tonic::Status;

use crate::proxies::Proxies;

/// The proven identity of a stream's client.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Proven {
    namespace: String,
    service_account: String,
    /// The pod, when the credential names one (the local mesh's tokens do).
    pod: Option<String>,
    /// How: `certificate spiffe://…` or `token`.
    by: String,
}

/// The TLS port's [`StreamAuthorizer`].
pub struct XdsAuthorizer {
    authenticators: Authenticators,
    trust_domain: String,
    proxies: Arc<Proxies>,
}

impl XdsAuthorizer {
    /// Checks credentials with `authenticators` (tokens) and the mesh's
    /// `trust_domain` (certificates), and nodes against `proxies`.
    pub fn new(authenticators: Authenticators, trust_domain: &str, proxies: Arc<Proxies>) -> Self {
        XdsAuthorizer {
            authenticators,
            trust_domain: trust_domain.to_string(),
            proxies,
        }
    }

    async fn prove(&self, peer: &PeerCredentials) -> Result<Proven, Status> {
        if let Some(leaf) = peer.certs.first() {
            let sans = rudder_ca::uri_sans(leaf)
                .map_err(|e| Status::unauthenticated(format!("client certificate: {e}")))?;
            for san in &sans {
                let Ok(id) = SpiffeId::parse(san) else {
                    continue;
                };
                if id.trust_domain != self.trust_domain {
                    return Err(Status::unauthenticated(format!(
                        "client certificate identity {san} is not of trust domain {}",
                        self.trust_domain
                    )));
                }
                return Ok(Proven {
                    namespace: id.namespace,
                    service_account: id.service_account,
                    pod: None,
                    by: format!("certificate {san}"),
                });
            }
            return Err(Status::unauthenticated(format!(
                "client certificate carries no SPIFFE identity (URI SANs: {sans:?})"
            )));
        }
        if let Some(token) = &peer.bearer {
            let caller = self
                .authenticators
                .authenticate(token)
                .await
                .map_err(|e| Status::unauthenticated(format!("token: {e}")))?;
            return Ok(Proven {
                namespace: caller.namespace,
                service_account: caller.service_account,
                pod: caller.pod,
                by: "token".into(),
            });
        }
        Err(Status::unauthenticated(
            "xDS on pilot's TLS port needs the workload certificate (mutual TLS) or \
             `authorization: Bearer <service-account token>`",
        ))
    }
}

/// Whether `who` may receive the configuration of `proxy`, and why not.
fn check(who: &Proven, proxy: &Proxy, node_id: &str) -> Result<(), Status> {
    let deny = |what: String| {
        Status::permission_denied(format!(
            "{} proves {}/{}, which may not receive the configuration of node {node_id}: {what}",
            who.by, who.namespace, who.service_account
        ))
    };
    if proxy.namespace != who.namespace {
        return Err(deny(format!("its namespace is {}", proxy.namespace)));
    }
    if !proxy.service_account.is_empty() && proxy.service_account != who.service_account {
        return Err(deny(format!(
            "its service account is {}",
            proxy.service_account
        )));
    }
    if let Some(pod) = who.pod.as_ref().filter(|p| **p != proxy.id.pod_name) {
        return Err(deny(format!(
            "the credential is pod {pod}'s, the node is pod {}",
            proxy.id.pod_name
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl StreamAuthorizer for XdsAuthorizer {
    async fn authorize(&self, peer: &PeerCredentials, node: &NodeInfo) -> Result<(), Status> {
        let who = self.prove(peer).await?;
        let proxy = self.proxies.resolve(node)?;
        check(&who, &proxy, &node.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rudder_model::{NodeId, NodeMetadata};

    fn proxy(ns: &str, sa: &str) -> Proxy {
        let id = NodeId::parse(&format!("sidecar~10.0.0.1~p.{ns}~{ns}.svc.cluster.local")).unwrap();
        let mut p = Proxy::from_node(id, &NodeMetadata::default());
        p.service_account = sa.into();
        p
    }

    fn proven(ns: &str, sa: &str) -> Proven {
        Proven {
            namespace: ns.into(),
            service_account: sa.into(),
            pod: None,
            by: "token".into(),
        }
    }

    #[test]
    fn namespace_and_service_account_must_both_match() {
        assert!(check(&proven("a", "web"), &proxy("a", "web"), "n").is_ok());
        let other_ns = check(&proven("b", "web"), &proxy("a", "web"), "n").unwrap_err();
        assert_eq!(other_ns.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            other_ns.message(),
            "token proves b/web, which may not receive the configuration of node n: its namespace is a"
        );
        let other_sa = check(&proven("a", "db"), &proxy("a", "web"), "n").unwrap_err();
        assert!(
            other_sa.message().ends_with("its service account is web"),
            "{other_sa}"
        );
        // A node whose pod is unknown and names no service account: the
        // namespace decides (as istiod).
        assert!(check(&proven("a", "db"), &proxy("a", ""), "n").is_ok());
        // A credential naming its pod must name the node's.
        let mut token = proven("a", "web");
        token.pod = Some("q".into());
        let other_pod = check(&token, &proxy("a", "web"), "n").unwrap_err();
        assert!(
            other_pod
                .message()
                .ends_with("the credential is pod q's, the node is pod p"),
            "{other_pod}"
        );
        token.pod = Some("p".into());
        assert!(check(&token, &proxy("a", "web"), "n").is_ok());
    }
}
