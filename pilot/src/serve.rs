//! `pilot serve`: wires the config source, the registry, generation, the ADS
//! server and the monitoring endpoints.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{bail, Context};
use rudder_ads::{AdsOptions, AdsServer};
use rudder_model::duration;
use rudder_registry::{directory::DirectorySource, Registry, RegistryOptions};

use crate::{monitoring, proxies::Proxies};

/// Arguments of `pilot serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Serve the Kubernetes/Istio YAML in this directory (watched for changes).
    /// Without it pilot watches Kubernetes (KUBECONFIG, else in-cluster).
    #[arg(long, env = "PILOT_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// Kubernetes only: the namespace Rudder is installed in (the
    /// `rudder-mesh` ConfigMap and the status Lease live there).
    #[arg(long, env = "POD_NAMESPACE", default_value = rudder_kube::INSTALL_NAMESPACE)]
    install_namespace: String,
    /// Where xDS (ADS, gRPC, plaintext, unauthenticated) listens: always with
    /// --config-dir (the local mesh, tests, the load tool); on Kubernetes
    /// only with --plaintext-xds (proxies there use the TLS port, 15012,
    /// where each must prove it is the workload it asks for).
    #[arg(long, default_value = "0.0.0.0:15010")]
    xds_addr: SocketAddr,
    /// Kubernetes only: also serve plaintext xDS on --xds-addr (off by
    /// default: anyone reaching it could read any workload's configuration).
    #[arg(long)]
    plaintext_xds: bool,
    /// Where `/ready`, `/metrics` and `/debug/*` listen.
    #[arg(long, default_value = "0.0.0.0:15014")]
    monitoring_addr: SocketAddr,
    /// Quiet time before a config change is pushed (changes within it coalesce).
    #[arg(long, default_value = "100ms", value_parser = duration::flag)]
    debounce: Duration,
    /// Longest a change waits while changes keep coming.
    #[arg(long, default_value = "1s", value_parser = duration::flag)]
    debounce_max: Duration,
    /// Endpoint-only changes (Pods, Endpoints, EndpointSlices) are pushed this
    /// long after the first of them (those within it merge), never held
    /// behind the config debounce.
    #[arg(long, default_value = "25ms", value_parser = duration::flag)]
    endpoint_debounce: Duration,
    /// How many proxies may be in their first push at once (generation, then
    /// the responses until it ACKs them); the others wait their turn, counted
    /// in `pilot_xds_first_push_throttled`, and are never refused.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    push_throttle: u32,
    /// How often pilot refetches every `jwksUri` of a RequestAuthentication
    /// (Istio's `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`); a changed key set is
    /// pushed, a failed fetch keeps the last good one.
    #[arg(long, env = "PILOT_JWT_PUB_KEY_REFRESH_INTERVAL", default_value = "20m", value_parser = duration::flag)]
    jwks_refresh_interval: Duration,
    /// The mesh page reads request rates from this Prometheus server
    /// (`istio_requests_total` as Kiali does, else Envoy's cluster
    /// counters); without it pilot scrapes the connected proxies' stats
    /// itself (through their agents, port 15020) while the page is open.
    #[arg(long, env = "PILOT_PROMETHEUS_URL")]
    prometheus_url: Option<String>,
    /// Log format: `text` or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// The CA and the TLS port (15012).
    #[command(flatten)]
    identity: crate::identity::IdentityArgs,
}

/// Runs until SIGTERM/SIGINT.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let (registry, mut snapshots) = Registry::new(RegistryOptions {
        debounce: args.debounce,
        max_delay: args.debounce_max,
        endpoint_delay: args.endpoint_debounce,
    });
    let source = Source::start(&args, &registry).await?;

    // Monitoring comes up first, so `/ready` can say "not yet".
    let state = monitoring::State::new();
    if let Some(url) = &args.prometheus_url {
        if !url.starts_with("http://") {
            bail!("--prometheus-url {url}: must be an http:// URL (the Prometheus HTTP API)");
        }
        state.set_traffic_source(crate::mesh::traffic::Source::Prometheus(url.clone()));
    }
    let identity = match &source {
        Source::Kubernetes(k) => {
            Some(crate::identity::Identity::setup_kubernetes(&args.identity, k).await?)
        }
        Source::Directory { .. } => crate::identity::Identity::setup(&args.identity)?,
    };
    if let Some(id) = &identity {
        state.set_ca_metrics(id.metrics());
    }
    let monitoring_listener = tokio::net::TcpListener::bind(args.monitoring_addr)
        .await
        .with_context(|| format!("binding --monitoring-addr {}", args.monitoring_addr))?;
    tokio::spawn(monitoring::serve(monitoring_listener, state.clone()));

    // The directory was read fully by `spawn`; Kubernetes needs every kind
    // listed once. Build the first snapshot only then: no sidecar is served
    // before it, since an empty answer would make a reconnecting Envoy drop
    // the config it has.
    if let Source::Kubernetes(k) = &source {
        k.wait_synced().await;
    }
    let handle = registry.handle();
    let first = handle
        .flush()
        .await
        .context("the registry stopped before its first build")?;
    // The key sets of the `jwksUri`s in use are fetched before the first
    // proxy is served (each fetch bounded by its timeout), so a restarted
    // pilot does not serve the fake key set while it fetches them.
    let jwks_metrics = crate::jwks::JwksMetrics::default();
    state.set_jwks_metrics(&jwks_metrics);
    let first = if first.security.jwks_uris().is_empty() {
        first
    } else {
        crate::jwks::fetch_once(&handle, &first, &jwks_metrics).await;
        handle
            .flush()
            .await
            .context("the registry stopped before its first build")?
    };
    tokio::spawn(crate::jwks::run(
        handle.clone(),
        snapshots.clone(),
        crate::jwks::JwksOptions {
            refresh: args.jwks_refresh_interval,
        },
        jwks_metrics,
    ));
    // The proxies start from `first`; a snapshot published since is pushed.
    if snapshots.borrow_and_update().version != first.version {
        snapshots.mark_changed();
    }
    let proxies = Arc::new(Proxies::new(first));
    let ads = AdsServer::with_options(
        proxies.clone(),
        AdsOptions {
            push_throttle: args.push_throttle as usize,
        },
    );
    state.set_serving(
        proxies.clone(),
        ads.clone(),
        snapshots.clone(),
        registry.diagnostics(),
    );

    tokio::spawn(push_snapshots(proxies.clone(), snapshots, registry.pacer()));

    if let Some(id) = identity {
        tokio::spawn(
            id.bind(ads.clone(), proxies.clone(), shutdown_signal())
                .await?,
        );
    }
    let plaintext = matches!(source, Source::Directory { .. }) || args.plaintext_xds;
    if plaintext {
        let listener = rudder_ads::bind(args.xds_addr)
            .with_context(|| format!("binding --xds-addr {}", args.xds_addr))?;
        tracing::info!(xds = %args.xds_addr, monitoring = %args.monitoring_addr, source = %source, "pilot serving");
        ads.serve(listener, shutdown_signal())
            .await
            .context("xDS server failed")?;
    } else {
        tracing::info!(monitoring = %args.monitoring_addr, source = %source,
            "pilot serving; plaintext xDS off on Kubernetes (--plaintext-xds serves --xds-addr)");
        shutdown_signal().await;
    }
    drop(source);
    drop(registry);
    tracing::info!("pilot stopped");
    Ok(())
}

/// Pushes every new snapshot to the connected proxies (generation runs on
/// the blocking pool), until the registry stops. Each version pushed is
/// reported to the registry, which builds the next snapshot once the last
/// one is taken ([`rudder_registry::Pacer`]).
async fn push_snapshots(
    proxies: Arc<Proxies>,
    mut snapshots: tokio::sync::watch::Receiver<Arc<rudder_model::Snapshot>>,
    pacer: rudder_registry::Pacer,
) {
    while snapshots.changed().await.is_ok() {
        let snapshot = snapshots.borrow_and_update().clone();
        let version = snapshot.version.clone();
        let p = proxies.clone();
        if let Err(error) = tokio::task::spawn_blocking(move || p.push(snapshot)).await {
            tracing::error!(%error, "push failed");
        }
        pacer.taken(&version);
    }
}

impl Source {
    /// The directory (read fully before this returns) or the Kubernetes
    /// watches, feeding `registry`.
    async fn start(args: &ServeArgs, registry: &Registry) -> anyhow::Result<Source> {
        Ok(match args.config_dir.clone() {
            Some(dir) => {
                if !dir.is_dir() {
                    bail!("--config-dir {}: not a directory", dir.display());
                }
                let s = DirectorySource::spawn(dir.clone(), registry.handle())
                    .with_context(|| format!("watching {}", dir.display()))?;
                Source::Directory { dir, _watcher: s }
            }
            None => {
                let options = rudder_kube::KubeOptions {
                    install_namespace: args.install_namespace.clone(),
                    ..Default::default()
                };
                Source::Kubernetes(
                    rudder_kube::KubeRuntime::start(
                        registry.handle(),
                        registry.diagnostics(),
                        &options,
                    )
                    .await?,
                )
            }
        })
    }
}

/// Where the config comes from (kept alive while serving).
enum Source {
    /// The directory and its watcher (watching stops when dropped).
    Directory {
        dir: PathBuf,
        _watcher: DirectorySource,
    },
    Kubernetes(rudder_kube::KubeRuntime),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Directory { dir, .. } => write!(f, "directory {}", dir.display()),
            Source::Kubernetes(_) => f.write_str("kubernetes"),
        }
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}
