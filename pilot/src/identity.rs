//! The secure port (15012): Istio's certificate service and ADS over TLS,
//! as istiod serves them.
//!
//! ```text
//!   --ca-dir ──────────────────┬─► rudder-ca: root (generated once, or the operator's) ─► serving cert
//!   Kubernetes: Secret ────────┘    (rudder-pilot.rudder-system.svc + listen IP)    └─► ConfigMap rudder-ca-root-cert
//!     rudder-ca-root (rudder-kube, created under the status Lease)                      in every namespace (Kubernetes)
//!   --local-token-key ─► LocalTokenAuthenticator ┐
//!   Kubernetes: TokenReviewAuthenticator ────────┴─► CertificateService ┐
//!                                          ADS (the same AdsServer as 15010) ┴─► TLS :15012
//! ```
//!
//! Directory source without `--ca-dir`: plaintext ADS on 15010 only. On
//! Kubernetes the CA is always on (as istiod's is).

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use rudder_ads::AdsServer;
use rudder_ca::{
    token, Authenticators, CaMetrics, CertificateAuthority, CertificateService,
    LocalTokenAuthenticator, TokenReviewAuthenticator,
};
use rudder_model::well_known;

use crate::{proxies::Proxies, xds_auth::XdsAuthorizer};

/// Identity flags of `pilot serve`.
#[derive(clap::Args, Debug)]
pub struct IdentityArgs {
    /// Directory of the mesh root (`root-cert.pem` 0644, `root-key.pem` 0600):
    /// loaded when present, generated when neither file exists. Turns on the
    /// CA and the TLS port. On Kubernetes the CA is always on and the root is
    /// Secret `rudder-ca-root` unless this names an operator's pair.
    #[arg(long, env = "PILOT_CA_DIR")]
    pub ca_dir: Option<PathBuf>,
    /// HMAC key (≥ 32 bytes) the local mesh runner signs pod tokens with.
    #[arg(long)]
    pub local_token_key: Option<PathBuf>,
    /// Where the certificate service and ADS over TLS listen.
    #[arg(long, default_value = "0.0.0.0:15012")]
    pub secure_xds_addr: SocketAddr,
    /// Longest (and default) workload certificate lifetime, e.g. 24h, 30m, 90s.
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    pub workload_cert_ttl: Duration,
    /// SPIFFE trust domain of issued identities.
    #[arg(long, default_value = well_known::DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
    /// Extra names or IPs in pilot's serving certificate (repeatable), beside
    /// rudder-pilot.rudder-system.svc and the --secure-xds-addr IP.
    #[arg(long = "serving-cert-san")]
    pub serving_cert_sans: Vec<String>,
}

/// The local-token authenticator when `--local-token-key` is given.
fn local_tokens(args: &IdentityArgs) -> anyhow::Result<Authenticators> {
    let mut auth = Authenticators::new();
    if let Some(file) = &args.local_token_key {
        let key = token::read_key(file)?;
        auth = auth.with(Arc::new(LocalTokenAuthenticator::new(&key)));
    }
    Ok(auth)
}

/// A certificate lifetime (`90s`, `30m`, `24h`, any Go duration): at least 1s,
/// as the CA works in whole seconds.
fn parse_ttl(s: &str) -> Result<Duration, String> {
    rudder_model::duration::parse_at_least(s, Duration::from_secs(1)).map_err(|e| e.to_string())
}

/// The CA and the TLS identity of the secure port, ready to serve.
pub struct Identity {
    service: CertificateService,
    /// Tokens for xDS streams on the TLS port too (the certificate service's).
    authenticators: Authenticators,
    /// The mesh root: client certificates on the TLS port must chain to it.
    root_pem: String,
    trust_domain: String,
    chain_pem: String,
    key_pem: String,
    addr: SocketAddr,
    /// Kubernetes: keeps ConfigMap `rudder-ca-root-cert` current while serving.
    publisher: Option<rudder_kube::RootCertPublisher>,
}

impl Identity {
    /// Directory source: loads or creates the root in `--ca-dir` and issues
    /// the serving certificate; `None` without `--ca-dir`.
    pub fn setup(args: &IdentityArgs) -> anyhow::Result<Option<Identity>> {
        let Some(dir) = &args.ca_dir else {
            if args.local_token_key.is_some() {
                anyhow::bail!(
                    "--local-token-key needs --ca-dir: the certificate service runs only with a CA"
                );
            }
            return Ok(None);
        };
        let ca =
            CertificateAuthority::load_or_create(dir, &args.trust_domain, args.workload_cert_ttl)
                .context("--ca-dir: the mesh root is unusable")?;
        // No cluster: Kubernetes tokens get a clear "no token reviewer configured".
        let auth = local_tokens(args)?.with(Arc::new(TokenReviewAuthenticator::new(None)));
        Self::finish(args, ca, auth, &format!("--ca-dir {}", dir.display()), None).map(Some)
    }

    /// Kubernetes: the CA is always on. The root comes from `--ca-dir` when
    /// given (an operator's pair, e.g. a mounted Secret), else from Secret
    /// `rudder-ca-root` in the install namespace (created once by the status
    /// Lease holder, waited for by other replicas). Agents' tokens are
    /// checked by TokenReview, and the root is published as ConfigMap
    /// `rudder-ca-root-cert` in every namespace.
    pub async fn setup_kubernetes(
        args: &IdentityArgs,
        kube: &rudder_kube::KubeRuntime,
    ) -> anyhow::Result<Identity> {
        let (ca, source) = match &args.ca_dir {
            Some(dir) => (
                CertificateAuthority::load_or_create(
                    dir,
                    &args.trust_domain,
                    args.workload_cert_ttl,
                )
                .context("--ca-dir: the mesh root is unusable")?,
                format!("--ca-dir {}", dir.display()),
            ),
            None => {
                let loaded = kube
                    .ca_root(&args.trust_domain)
                    .await
                    .context("the mesh root Secret")?;
                let source = format!(
                    "Secret {} ({})",
                    rudder_kube::CA_ROOT_SECRET,
                    if loaded.created { "created" } else { "loaded" }
                );
                (
                    CertificateAuthority::new(
                        loaded.root,
                        &args.trust_domain,
                        args.workload_cert_ttl,
                    ),
                    source,
                )
            }
        };
        let reviewer: Arc<dyn rudder_ca::TokenReviewer> = Arc::new(kube.token_reviewer());
        let auth =
            local_tokens(args)?.with(Arc::new(TokenReviewAuthenticator::new(Some(reviewer))));
        let publisher = kube.publish_root_cert(ca.root_pem());
        Self::finish(args, ca, auth, &source, Some(publisher))
    }

    /// Issues pilot's serving certificate and assembles the service.
    fn finish(
        args: &IdentityArgs,
        ca: CertificateAuthority,
        auth: Authenticators,
        root_source: &str,
        publisher: Option<rudder_kube::RootCertPublisher>,
    ) -> anyhow::Result<Identity> {
        let (mut names, mut ips): (Vec<String>, Vec<IpAddr>) = (Vec::new(), Vec::new());
        let ip = args.secure_xds_addr.ip();
        if ip.is_unspecified() {
            ips.push(IpAddr::from([127, 0, 0, 1]));
        } else {
            ips.push(ip);
        }
        for san in &args.serving_cert_sans {
            match san.parse::<IpAddr>() {
                Ok(ip) => ips.push(ip),
                Err(_) => names.push(san.clone()),
            }
        }
        let (chain_pem, key_pem) = ca
            .serving_cert(&names, &ips)
            .context("issuing pilot's serving certificate")?;
        tracing::info!(
            root = %root_source,
            trust_domain = %args.trust_domain,
            workload_cert_ttl_s = args.workload_cert_ttl.as_secs(),
            local_tokens = args.local_token_key.is_some(),
            token_review = publisher.is_some(),
            ?ips,
            ?names,
            "CA ready"
        );
        let root_pem = ca.root_pem().to_string();
        let trust_domain = ca.trust_domain().to_string();
        let service = CertificateService::new(Arc::new(ca), auth.clone());
        Ok(Identity {
            service,
            authenticators: auth,
            root_pem,
            trust_domain,
            chain_pem,
            key_pem,
            addr: args.secure_xds_addr,
            publisher,
        })
    }

    /// The CA counters, for `/metrics`.
    pub fn metrics(&self) -> CaMetrics {
        self.service.metrics()
    }

    /// Binds the secure port now (so a busy port fails `pilot serve` at
    /// start), and returns the server future: certificate service + `ads`
    /// over TLS until `shutdown` completes. Each ADS stream there must prove
    /// the identity of the node it asks for (see [`crate::xds_auth`]).
    pub async fn bind(
        self,
        ads: AdsServer,
        proxies: Arc<Proxies>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<impl std::future::Future<Output = ()>> {
        let listener = rudder_ads::bind(self.addr)
            .with_context(|| format!("binding --secure-xds-addr {}", self.addr))?;
        let authorizer = XdsAuthorizer::new(self.authenticators, &self.trust_domain, proxies);
        let router = rudder_ads::configure(tonic::transport::Server::builder())
            .tls_config(rudder_ca::server_tls_with_client_certs(
                &self.chain_pem,
                &self.key_pem,
                &self.root_pem,
            ))
            .context("pilot's serving certificate")?
            .add_service(self.service.into_server())
            .add_service(ads.into_authorized_service(Arc::new(authorizer)));
        let addr = self.addr;
        let publisher = self.publisher;
        Ok(async move {
            // Publishing the root lasts as long as serving does.
            let _publisher = publisher;
            tracing::info!(%addr, "certificate service and ADS over TLS serving");
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            if let Err(error) = router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
            {
                tracing::error!(%error, "secure xDS server failed");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_flag() {
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_ttl("0s").unwrap_err().contains("at least 1s"));
        assert_eq!(parse_ttl("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_ttl("1d").unwrap_err().contains("24h"));
    }
}
