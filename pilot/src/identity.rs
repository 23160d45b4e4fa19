//! The secure port (15012): Istio's certificate service and ADS over TLS,
//! as istiod serves them.
//!
//! ```text
//!   --ca-dir ─► rudder-ca: root (generated once, or the operator's) ─► serving cert
//!   --local-token-key ─► LocalTokenAuthenticator ┐      (rudder-pilot.rudder-system.svc + listen IP)
//!   (Kubernetes: TokenReview, not wired yet) ────┴─► CertificateService ┐
//!                                          ADS (the same AdsServer as 15010) ┴─► TLS :15012
//! ```
//!
//! Without `--ca-dir` pilot runs as before: plaintext ADS on 15010 only.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use rudder_ads::AdsServer;
use rudder_ca::{
    token, Authenticators, CaMetrics, CertificateAuthority, CertificateService, LocalTokenAuthenticator,
    TokenReviewAuthenticator,
};
use rudder_model::well_known;

/// Identity flags of `pilot serve`.
#[derive(clap::Args, Debug)]
pub struct IdentityArgs {
    /// Directory of the mesh root (`root-cert.pem` 0644, `root-key.pem` 0600):
    /// loaded when present, generated when neither file exists. Turns on the
    /// CA and the TLS port.
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

/// Parses `90s`, `30m`, `24h`.
fn parse_ttl(s: &str) -> Result<Duration, String> {
    let err = || format!("{s:?} is not a duration like 90s, 30m or 24h");
    let i = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let n: u64 = s[..i].parse().map_err(|_| err())?;
    let secs = match &s[i..] {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(err()),
    };
    if secs == 0 {
        return Err(format!("{s:?}: a certificate lifetime must be positive"));
    }
    Ok(Duration::from_secs(secs))
}

/// The CA and the TLS identity of the secure port, ready to serve.
pub struct Identity {
    service: CertificateService,
    chain_pem: String,
    key_pem: String,
    addr: SocketAddr,
}

impl Identity {
    /// Loads or creates the root and issues the serving certificate; `None`
    /// without `--ca-dir`.
    pub fn setup(args: &IdentityArgs) -> anyhow::Result<Option<Identity>> {
        let Some(dir) = &args.ca_dir else {
            if args.local_token_key.is_some() {
                anyhow::bail!("--local-token-key needs --ca-dir: the certificate service runs only with a CA");
            }
            return Ok(None);
        };
        let ca = CertificateAuthority::load_or_create(dir, &args.trust_domain, args.workload_cert_ttl)
            .context("--ca-dir: the mesh root is unusable")?;
        let mut auth = Authenticators::new();
        if let Some(file) = &args.local_token_key {
            let key = token::read_key(file)?;
            auth = auth.with(Arc::new(LocalTokenAuthenticator::new(&key)));
        }
        // Kubernetes tokens: the reviewer comes with the Kubernetes source;
        // until then such tokens get a clear "no token reviewer configured".
        auth = auth.with(Arc::new(TokenReviewAuthenticator::new(None)));

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
        let (chain_pem, key_pem) = ca.serving_cert(&names, &ips).context("issuing pilot's serving certificate")?;
        tracing::info!(
            dir = %dir.display(),
            trust_domain = %args.trust_domain,
            workload_cert_ttl_s = args.workload_cert_ttl.as_secs(),
            local_tokens = args.local_token_key.is_some(),
            ?ips,
            ?names,
            "CA ready"
        );
        let service = CertificateService::new(Arc::new(ca), auth);
        Ok(Some(Identity { service, chain_pem, key_pem, addr: args.secure_xds_addr }))
    }

    /// The CA counters, for `/metrics`.
    pub fn metrics(&self) -> CaMetrics {
        self.service.metrics()
    }

    /// Binds the secure port now (so a busy port fails `pilot serve` at
    /// start), and returns the server future: certificate service + `ads`
    /// over TLS until `shutdown` completes.
    pub async fn bind(
        self,
        ads: AdsServer,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<impl std::future::Future<Output = ()>> {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .with_context(|| format!("binding --secure-xds-addr {}", self.addr))?;
        let router = tonic::transport::Server::builder()
            .tls_config(rudder_ca::server_tls(&self.chain_pem, &self.key_pem))
            .context("pilot's serving certificate")?
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .add_service(self.service.into_server())
            .add_service(ads.into_service());
        let addr = self.addr;
        Ok(async move {
            tracing::info!(%addr, "certificate service and ADS over TLS serving");
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            if let Err(error) = router.serve_with_incoming_shutdown(incoming, shutdown).await {
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
        assert!(parse_ttl("0s").unwrap_err().contains("positive"));
        assert!(parse_ttl("1d").unwrap_err().contains("24h"));
    }
}
