//! `injector`: the sidecar injection webhook (`serve`) and offline `kube-inject`.
#![forbid(unsafe_code)]

use std::{io::Read, net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rudder_injector::{
    cluster_cert, kube_inject, kubeapi::ApiClient, server, template::Values, tls, version,
    InjectContext,
};
use rudder_model::well_known::{INJECTOR_PORT, SYSTEM_NAMESPACE};

#[derive(Parser, Debug)]
#[command(name = "injector", version, about = "Rudder sidecar injector")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the mutating admission webhook over HTTPS (POST /inject, GET /healthz).
    Serve {
        /// Listen address.
        #[arg(long, env = "INJECTOR_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], INJECTOR_PORT)))]
        addr: SocketAddr,
        /// Serving certificate chain (PEM); reloaded when the file changes.
        /// Without --tls-cert/--tls-key, in a cluster, the injector keeps its
        /// own certificate in Secret rudder-injector-tls and patches the
        /// webhook's caBundle.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// Serving private key (PEM); reloaded when the file changes.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// The injector's namespace (where its Secret lives, and its
        /// Service's DNS names), without --tls-cert/--tls-key.
        #[arg(long, env = "POD_NAMESPACE", default_value = SYSTEM_NAMESPACE)]
        namespace: String,
        /// Template: a ConfigMap or its `values` key (default: built in).
        #[arg(long)]
        template: Option<PathBuf>,
        /// API server version (e.g. 1.30) for `nativeSidecars: auto`;
        /// default: asked from the API server when in a cluster.
        #[arg(long, value_parser = parse_kube_version)]
        kubernetes_version: Option<(u32, u32)>,
    },
    /// Inject a YAML stream offline and print the result.
    KubeInject {
        /// Input file (`-` for stdin).
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// Template: a ConfigMap or its `values` key (default: built in).
        #[arg(long)]
        template: Option<PathBuf>,
        /// Cluster version for `nativeSidecars: auto` (default unknown: classic).
        #[arg(long, value_parser = parse_kube_version)]
        kubernetes_version: Option<(u32, u32)>,
    },
}

fn parse_kube_version(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?} is not a Kubernetes version like 1.30");
    let (a, b) = s.trim_start_matches('v').split_once('.').ok_or_else(bad)?;
    let b = b.split('.').next().unwrap_or(b);
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

fn load_values(template: Option<&PathBuf>) -> Result<Values> {
    Ok(match template {
        Some(p) => Values::from_file(p)?,
        None => Values::default(),
    })
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line per cause, no backtrace: these are user errors.
            eprintln!("injector: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::KubeInject {
            file,
            template,
            kubernetes_version,
        } => {
            let values = load_values(template.as_ref())?;
            let input = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading stdin")?;
                s
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let native = values.native_sidecars.resolve(kubernetes_version);
            let ctx = InjectContext::new(&values, native);
            let name = if file.as_os_str() == "-" {
                "<stdin>".to_string()
            } else {
                file.display().to_string()
            };
            let out = kube_inject(&input, &ctx).with_context(|| name)?;
            print!("{out}");
            Ok(())
        }
        Command::Serve {
            addr,
            tls_cert,
            tls_key,
            namespace,
            template,
            kubernetes_version,
        } => {
            let values = load_values(template.as_ref())?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let tls = match (tls_cert, tls_key) {
                    (Some(cert), Some(key)) => tls::server_config(&cert, &key)?,
                    _ => cluster_tls(&namespace).await?,
                };
                serve(addr, tls, values, kubernetes_version).await
            })
        }
    }
}

/// No certificate files: settle Secret rudder-injector-tls through the API,
/// serve it, and keep it and the webhook's caBundle current in the background.
async fn cluster_tls(namespace: &str) -> Result<rustls::ServerConfig> {
    let Some(client) = ApiClient::in_cluster().context("reading the in-cluster credentials")?
    else {
        bail!(
            "no --tls-cert/--tls-key given and not running in a cluster \
             (KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT unset): \
             pass --tls-cert FILE --tls-key FILE"
        );
    };
    let settled = cluster_cert::ensure_secret(&client, namespace, cluster_cert::unix_now())
        .await
        .context("setting up the injector's serving certificate")?;
    tracing::info!(%namespace, origin = ?settled.origin, "serving certificate from Secret rudder-injector-tls");
    let resolver = Arc::new(tls::SwappableCert::new(settled.key));
    let config = tls::server_config_with(resolver.clone())?;
    tokio::spawn(cluster_cert::maintain(
        client,
        namespace.to_string(),
        resolver,
        settled.bundle,
        cluster_cert::REFRESH_INTERVAL,
    ));
    Ok(config)
}

async fn serve(
    addr: SocketAddr,
    tls: rustls::ServerConfig,
    values: Values,
    version: Option<(u32, u32)>,
) -> Result<()> {
    let version = match version {
        Some(v) => Some(v),
        None => match version::in_cluster_version().await {
            Ok(v) => v,
            Err(error) => {
                tracing::warn!(%error, "cannot learn the API server version; nativeSidecars=auto means classic");
                None
            }
        },
    };
    let native = values.native_sidecars.resolve(version);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => bail!("cannot listen on {addr}: {e}"),
    };
    tracing::info!(%addr, native_sidecars = native, server_version = ?version, template = %values.native_sidecars, "injector serving");
    let state = Arc::new(server::WebhookState {
        values,
        native_sidecars: native,
    });
    // Kubernetes stops the pod with SIGTERM; Ctrl-C for local runs.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
    };
    server::serve(listener, Arc::new(tls), state, shutdown).await;
    Ok(())
}
