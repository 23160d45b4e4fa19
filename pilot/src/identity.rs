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
//!
//! Plug-in CA (Istio's `cacerts`: `ca-cert.pem`, `ca-key.pem`,
//! `cert-chain.pem`, `root-cert.pem` in `--ca-dir`, or on Kubernetes in
//! `--cacerts-dir`, where Secret `cacerts` is mounted): pilot signs with the
//! operator's intermediate. Every `--ca-check-interval` it reads the files
//! again; when they changed and the new set is valid, it signs with the new
//! ca-cert, reissues its serving certificate, trusts the new root(s) for
//! client certificates on 15012 and publishes them (ConfigMap
//! `rudder-ca-root-cert`; the local runner copies `root-cert.pem` to pods).
//! An invalid new set is logged and the old one kept.

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

use crate::{proxies::Proxies, secure_tls::ReloadableTls, xds_auth::XdsAuthorizer};
use rudder_ca::plugin::PluginFiles;

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
    /// Plug-in CA: how often the plug-in files are read again to pick up a
    /// rotation (new intermediate, root-cert.pem with old and new roots).
    #[arg(long, default_value = "10s", value_parser = parse_ttl)]
    pub ca_check_interval: Duration,
    /// Kubernetes, without --ca-dir: where Secret `cacerts` is mounted
    /// (Istio's plug-in certificates, optional volume). When it holds
    /// plug-in files pilot signs with them, else with Secret rudder-ca-root.
    #[arg(long, default_value = "/etc/cacerts")]
    pub cacerts_dir: PathBuf,
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

/// Starts publishing a root bundle (Kubernetes: ConfigMap rudder-ca-root-cert).
type Republish = Box<dyn Fn(&str) -> rudder_kube::RootCertPublisher + Send + Sync>;

/// The CA and the TLS identity of the secure port, ready to serve.
pub struct Identity {
    service: CertificateService,
    /// The CA (its signer is replaced on a plug-in rotation).
    ca: Arc<CertificateAuthority>,
    /// Plug-in mode: the directory watched for a rotation.
    plugin_dir: Option<PathBuf>,
    check_interval: Duration,
    /// Names and IPs of the serving certificate (reissued on rotation).
    serving_names: Vec<String>,
    serving_ips: Vec<IpAddr>,
    /// Kubernetes: starts a publisher of a new root bundle.
    republish: Option<Republish>,
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
                .context("--ca-dir: the signing CA is unusable")?;
        // No cluster: Kubernetes tokens get a clear "no token reviewer configured".
        let auth = local_tokens(args)?.with(Arc::new(TokenReviewAuthenticator::new(None)));
        let source = ca_source(dir, &ca);
        Self::finish(args, ca, dir, auth, &source, None).map(Some)
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
        let plugin_mount = rudder_ca::plugin::present(&args.cacerts_dir);
        let (ca, source, dir) = match args
            .ca_dir
            .as_ref()
            .or(plugin_mount.then_some(&args.cacerts_dir))
        {
            Some(dir) => {
                let ca = CertificateAuthority::load_or_create(
                    dir,
                    &args.trust_domain,
                    args.workload_cert_ttl,
                )
                .with_context(|| format!("{}: the signing CA is unusable", dir.display()))?;
                let source = ca_source(dir, &ca);
                (ca, source, dir.clone())
            }
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
                    args.cacerts_dir.clone(),
                )
            }
        };
        let reviewer: Arc<dyn rudder_ca::TokenReviewer> = Arc::new(kube.token_reviewer());
        let auth =
            local_tokens(args)?.with(Arc::new(TokenReviewAuthenticator::new(Some(reviewer))));
        let publisher = kube.publish_root_cert(&ca.root_pem());
        let (client, leader) = (kube.client(), kube.leader());
        let republish: Republish = Box::new(move |pem: &str| {
            rudder_kube::RootCertPublisher::spawn(
                client.clone(),
                pem.to_string(),
                leader.clone(),
                Duration::from_secs(60),
            )
        });
        let mut id = Self::finish(args, ca, &dir, auth, &source, Some(publisher))?;
        id.republish = Some(republish);
        Ok(id)
    }

    /// Issues pilot's serving certificate and assembles the service.
    fn finish(
        args: &IdentityArgs,
        ca: CertificateAuthority,
        dir: &std::path::Path,
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
        let root_pem = ca.root_pem();
        let trust_domain = ca.trust_domain().to_string();
        let plugin_dir = ca.is_plugin().then(|| dir.to_path_buf());
        let ca = Arc::new(ca);
        let service = CertificateService::new(ca.clone(), auth.clone());
        Ok(Identity {
            service,
            ca,
            plugin_dir,
            check_interval: args.ca_check_interval,
            serving_names: names,
            serving_ips: ips,
            republish: None,
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
        // The client-certificate trust is the root bundle (root-cert.pem),
        // never an intermediate: workload chains verify through theirs.
        let tls = ReloadableTls::new(&self.chain_pem, &self.key_pem, &self.root_pem)?;
        let router = rudder_ads::configure(tonic::transport::Server::builder())
            .add_service(self.service.into_server())
            .add_service(ads.into_authorized_service(Arc::new(authorizer)));
        let addr = self.addr;
        let publisher = self.publisher;
        let watcher = self.plugin_dir.clone().map(|dir| {
            tokio::spawn(
                PluginWatch {
                    dir,
                    ca: self.ca.clone(),
                    tls: tls.clone(),
                    names: self.serving_names.clone(),
                    ips: self.serving_ips.clone(),
                    publisher,
                    republish: self.republish,
                    interval: self.check_interval,
                }
                .run(),
            )
        });
        Ok(async move {
            // Publishing the root and watching the plug-in files last as
            // long as serving does.
            let _watcher = watcher.map(AbortOnDrop);
            tracing::info!(%addr, "certificate service and ADS over TLS serving");
            let incoming = tls.incoming(listener);
            if let Err(error) = router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
            {
                tracing::error!(%error, "secure xDS server failed");
            }
        })
    }
}

/// How the CA was set up, for the log.
fn ca_source(dir: &std::path::Path, ca: &CertificateAuthority) -> String {
    if ca.is_plugin() {
        format!("plug-in CA in {}", dir.display())
    } else {
        format!("self-signed root in {}", dir.display())
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Watches the plug-in files and rolls a valid new set out (see the module docs).
struct PluginWatch {
    dir: PathBuf,
    ca: Arc<CertificateAuthority>,
    tls: ReloadableTls,
    names: Vec<String>,
    ips: Vec<IpAddr>,
    /// Kubernetes: the running ConfigMap publisher, replaced on rotation.
    publisher: Option<rudder_kube::RootCertPublisher>,
    republish: Option<Republish>,
    interval: Duration,
}

impl PluginWatch {
    async fn run(mut self) {
        let mut seen = PluginFiles::read(&self.dir).ok();
        let mut refused: Option<PluginFiles> = None;
        loop {
            tokio::time::sleep(self.interval).await;
            let files = match PluginFiles::read(&self.dir) {
                Ok(f) => f,
                Err(error) => {
                    // A Secret volume update or an operator's copy in progress.
                    tracing::debug!(%error, "plug-in CA files unreadable; keeping the current CA");
                    continue;
                }
            };
            if Some(&files) == seen.as_ref() || Some(&files) == refused.as_ref() {
                continue;
            }
            match self.apply(&files) {
                Ok(()) => {
                    seen = Some(files);
                    refused = None;
                }
                Err(error) => {
                    tracing::error!(dir = %self.dir.display(), error = format!("{error:#}"), "new plug-in CA files refused; still signing with the previous CA");
                    refused = Some(files);
                }
            }
        }
    }

    fn apply(&mut self, files: &PluginFiles) -> anyhow::Result<()> {
        let root = rudder_ca::plugin::from_files(&self.dir, files, rudder_ca::unix_now())?;
        let bundle = root.cert_pem.clone();
        let old = self.ca.root_pem();
        self.ca.replace(root);
        let (chain, key) = self
            .ca
            .serving_cert(&self.names, &self.ips)
            .context("reissuing pilot's serving certificate")?;
        self.tls.set(&chain, &key, &bundle)?;
        if bundle != old {
            if let Some(republish) = &self.republish {
                // The new publisher writes the new bundle; the old one stops.
                self.publisher = Some(republish(&bundle));
            }
        }
        let roots = bundle.matches("BEGIN CERTIFICATE").count();
        tracing::info!(dir = %self.dir.display(), roots, root_changed = bundle != old, "plug-in CA rotated: signing with the new ca-cert.pem, serving certificate reissued");
        Ok(())
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
