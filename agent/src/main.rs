//! `agent`: the sidecar's entrypoint. Thin wiring over the `rudder_agent` library.
#![forbid(unsafe_code)]

use std::{io::IsTerminal, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use rudder_agent::{
    admin::Admin,
    bootstrap::{bootstrap, BootstrapConfig, CertSource, DiscoveryAddress, FileSecrets, XdsMode},
    envoy::{self, EnvoyOptions},
    identity::CaClientConfig,
    pod::{self, PodInfo},
    renew::{self, default_backoff},
    sds::{self, SdsServer},
    server::{self, ServerContext},
    state::AgentState,
    supervisor::{self, Command, SupervisorConfig},
    wait::wait_ready,
    watch,
};
use rudder_model::{identity::SpiffeId, well_known};
use tokio::{
    net::TcpListener,
    signal::unix::{signal, SignalKind},
    sync::mpsc,
};

#[derive(Parser)]
#[command(
    name = "agent",
    version,
    about = "Rudder's sidecar agent: bootstraps, supervises and hot-restarts Envoy"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run Envoy for this pod: bootstrap, supervise, hot-restart on certificate changes.
    Proxy(Box<ProxyArgs>),
    /// Run Envoy as a gateway (Istio's `router` node type): the same inputs
    /// as `proxy`, no capture; listeners come from the Gateways that select
    /// the pod.
    Router(Box<ProxyArgs>),
    /// Print the Envoy bootstrap `proxy` would use, and exit.
    Bootstrap(Box<Identity>),
    /// Wait until the sidecar is ready (for the app container's postStart hook).
    Wait(WaitArgs),
}

/// Inputs of the bootstrap (shared by `proxy` and `bootstrap`).
#[derive(Args, Clone)]
struct Identity {
    /// pilot's ADS address, HOST:PORT.
    #[arg(long, default_value = "rudder-pilot.rudder-system.svc:15010")]
    discovery_address: String,
    /// Directory with cert-chain.pem, key.pem and root-cert.pem.
    #[arg(long, default_value = rudder_model::well_known::CERT_DIR)]
    cert_dir: PathBuf,
    /// Pod name.
    #[arg(long, env = "POD_NAME", default_value = "")]
    pod_name: String,
    /// Pod namespace.
    #[arg(long, env = "POD_NAMESPACE", default_value = "")]
    pod_namespace: String,
    /// Pod IP.
    #[arg(long, env = "INSTANCE_IP", default_value = "")]
    instance_ip: String,
    /// Service account.
    #[arg(long, env = "SERVICE_ACCOUNT", default_value = "")]
    service_account: String,
    /// Workload (e.g. Deployment) name, for node metadata.
    #[arg(long, env = "WORKLOAD_NAME", default_value = "")]
    workload_name: String,
    /// Labels as JSON or k=v,k=v (wins over the labels file).
    #[arg(long, env = "POD_LABELS")]
    pod_labels: Option<String>,
    /// Labels file in downward-API format (default /etc/rudder/pod/labels when present).
    #[arg(long)]
    pod_labels_file: Option<PathBuf>,
    /// Where captured traffic arrives (node metadata CAPTURE_PORT).
    #[arg(long, default_value_t = well_known::PROXY_PORT)]
    capture_port: u16,
    /// Where inbound traffic arrives (default: the capture port).
    #[arg(long)]
    inbound_capture_port: Option<u16>,
    /// Node type: `sidecar`, or `router` (a gateway; `agent router` sets it).
    #[arg(long = "type", default_value = "sidecar")]
    node_type: String,
    /// ADS flavour: sotw or delta.
    #[arg(long, default_value = "delta")]
    xds: String,
    /// Envoy admin port (127.0.0.1 only).
    #[arg(long, default_value_t = well_known::ENVOY_ADMIN_PORT)]
    admin_port: u16,
    /// Envoy Prometheus listener port.
    #[arg(long, default_value_t = well_known::ENVOY_STATS_PORT)]
    stats_port: u16,
    /// How Envoy gets certificates: `file` (static secrets from --cert-dir,
    /// rotation = hot restart) or `sds` (from the agent over --sds-socket,
    /// rotation in place; needs --ca-address).
    #[arg(long, default_value = "file", value_parser = ["file", "sds"])]
    cert_mode: String,
    /// The agent's SDS socket (SDS mode).
    #[arg(long, default_value = well_known::SDS_SOCKET_PATH)]
    sds_socket: PathBuf,
}

#[derive(Args)]
struct ProxyArgs {
    #[command(flatten)]
    id: Identity,
    /// Graceful drain time: Envoy's --drain-time-s, and how long shutdown waits for in-flight work.
    #[arg(long, default_value = "5s", value_parser = flag_duration)]
    drain_duration: Duration,
    /// When a new epoch terminates the previous one (Envoy's --parent-shutdown-time-s).
    #[arg(long, default_value = "10s", value_parser = flag_duration)]
    parent_shutdown_duration: Duration,
    /// Agent metrics and /quitquitquit port.
    #[arg(long, default_value_t = well_known::AGENT_METRICS_PORT)]
    metrics_port: u16,
    /// Readiness (/healthz/ready) port.
    #[arg(long, default_value_t = well_known::AGENT_HEALTH_PORT)]
    status_port: u16,
    /// The app's original probes as JSON (path -> probe), served on the
    /// metrics port under /app-health/; the injector sets it when it rewrites
    /// the app's probes.
    #[arg(long, env = well_known::APP_PROBERS_ENV, default_value = "")]
    app_probers: String,
    /// Directory for the bootstrap and base id files (default: a fresh temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Envoy worker threads.
    #[arg(long)]
    concurrency: Option<u32>,
    /// Envoy log level.
    #[arg(long, default_value = "warning")]
    envoy_log_level: String,
    /// pilot's certificate service (HOST:PORT, 15012). Without it the
    /// certificates in --cert-dir are the operator's (read-only, watched).
    #[arg(long)]
    ca_address: Option<String>,
    /// The mesh root: verifies pilot and the certificates it issues.
    #[arg(long, default_value = rudder_model::well_known::ROOT_CERT_PATH)]
    ca_root: PathBuf,
    /// The credential sent to the CA (a projected service-account token, or
    /// the local mesh runner's token); read at every request.
    #[arg(long, default_value = rudder_model::well_known::TOKEN_PATH)]
    token_file: PathBuf,
    /// Certificate lifetime to ask for (the CA caps it), e.g. 24h, 10m, 5s.
    #[arg(long, default_value = "24h", value_parser = flag_duration)]
    cert_ttl: Duration,
    /// SPIFFE trust domain of this workload's identity.
    #[arg(long, default_value = well_known::DEFAULT_TRUST_DOMAIN)]
    trust_domain: String,
}

#[derive(Args)]
struct WaitArgs {
    /// Give up after this long.
    #[arg(long, default_value = "60s", value_parser = flag_duration)]
    timeout: Duration,
    /// Readiness URL.
    #[arg(long, default_value = "http://127.0.0.1:15021/healthz/ready")]
    url: String,
    /// Time between attempts.
    #[arg(long, default_value = "500ms", value_parser = flag_duration)]
    period: Duration,
}

/// Duration flags take Go's syntax (`rudder_model::duration`): `60s`, `500ms`, `1h30m`.
fn flag_duration(s: &str) -> Result<Duration, String> {
    rudder_model::duration::flag(s)
}

fn bootstrap_config(id: &Identity) -> Result<BootstrapConfig> {
    let mut labels = match &id.pod_labels_file {
        Some(f) => pod::read_labels_file(f)?,
        None => {
            let default = PathBuf::from(pod::DEFAULT_LABELS_FILE);
            if default.exists() {
                pod::read_labels_file(&default)?
            } else {
                Default::default()
            }
        }
    };
    if let Some(env) = &id.pod_labels {
        labels.extend(pod::parse_labels_env(env)?);
    }
    let info = PodInfo {
        name: id.pod_name.clone(),
        namespace: id.pod_namespace.clone(),
        ip: id.instance_ip.clone(),
        service_account: id.service_account.clone(),
        workload_name: id.workload_name.clone(),
        labels,
    };
    let (mut node_id, metadata) = info.node(
        id.capture_port,
        id.inbound_capture_port.unwrap_or(id.capture_port),
    )?;
    node_id.node_type = match id.node_type.as_str() {
        "sidecar" => rudder_model::node::NodeType::Sidecar,
        "router" => rudder_model::node::NodeType::Router,
        other => bail!("--type {other:?} is not one of sidecar, router"),
    };
    let discovery: DiscoveryAddress = id.discovery_address.parse()?;
    let mut cfg = BootstrapConfig::new(node_id, metadata, discovery);
    cfg.xds = id.xds.parse::<XdsMode>()?;
    cfg.admin_port = id.admin_port;
    cfg.stats_port = id.stats_port;
    cfg.certs = if id.cert_mode == "sds" {
        CertSource::Sds(id.sds_socket.clone())
    } else {
        CertSource::Files(FileSecrets::from_dir(&id.cert_dir))
    };
    Ok(cfg)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match Cli::parse().cmd {
        Cmd::Bootstrap(id) => {
            let cfg = bootstrap_config(&id)?;
            println!("{}", serde_json::to_string_pretty(&bootstrap(&cfg))?);
            Ok(())
        }
        Cmd::Wait(w) => {
            let attempts = wait_ready(&w.url, w.timeout, w.period).await?;
            tracing::info!(url = %w.url, attempts, "sidecar ready");
            Ok(())
        }
        Cmd::Proxy(p) => proxy(*p).await,
        Cmd::Router(mut p) => {
            p.id.node_type = "router".into();
            proxy(*p).await
        }
    }
}

async fn proxy(p: ProxyArgs) -> Result<()> {
    let sds_mode = p.id.cert_mode == "sds";
    if sds_mode && p.ca_address.is_none() {
        bail!("--cert-mode sds needs --ca-address: the agent serves over SDS the certificates it gets from pilot's CA");
    }
    let app_probers = Arc::new(
        rudder_agent::app_probe::AppProbers::parse(&p.app_probers).map_err(anyhow::Error::msg)?,
    );
    let bin = envoy::find_bin(std::env::var_os("ENVOY_BIN"), std::env::var_os("PATH"))?;
    let (work_dir, temporary) = work_dir(&p)?;
    if p.parent_shutdown_duration <= p.drain_duration {
        bail!(
            "--parent-shutdown-duration ({:?}) must be longer than --drain-duration ({:?}): the old epoch needs its drain time before it is terminated",
            p.parent_shutdown_duration,
            p.drain_duration
        );
    }
    let state = Arc::new(AgentState::default());
    if let Some(address) = &p.ca_address {
        start_certificates(&p, address, sds_mode, &state).await?;
    }
    let cfg = bootstrap_config(&p.id)?;
    rudder_agent::bootstrap::check(&cfg).map_err(anyhow::Error::msg)?;
    // INSTANCE_IP, required and parsed by bootstrap_config: app probes go there.
    let pod_ip = *cfg
        .metadata
        .instance_ips
        .first()
        .context("the pod has no IP")?;
    if !app_probers.is_empty() {
        tracing::info!(probes = app_probers.len(), %pod_ip, "serving the app's probes under /app-health/");
    }
    let admin = Admin::new(cfg.admin_port, server::HANDLER_ADMIN_TIMEOUT);
    let (tx, rx) = mpsc::channel(16);
    let ctx = ServerContext {
        state: state.clone(),
        admin,
        commands: tx.clone(),
        app_probers,
        pod_ip,
    };
    serve_ports(&p, ctx).await?;

    let _watch = watch_certs(&p, sds_mode, &tx)?;
    tokio::spawn(forward_signals(tx));

    let sup = SupervisorConfig {
        envoy: EnvoyOptions {
            bin,
            bootstrap: work_dir.join("envoy-bootstrap.json"),
            base_id_path: work_dir.join("envoy-base-id"),
            drain: p.drain_duration,
            parent_shutdown: p.parent_shutdown_duration,
            concurrency: p.concurrency,
            log_level: p.envoy_log_level,
        },
        bootstrap: cfg,
        cert_dir: (!sds_mode).then(|| p.id.cert_dir.clone()),
        drain_duration: p.drain_duration,
        backoff_initial: Duration::from_millis(200),
        backoff_max: Duration::from_secs(10),
    };
    tracing::info!(node = %sup.bootstrap.node_id, xds = %sup.bootstrap.xds, work_dir = %work_dir.display(), "agent starting");
    let result = supervisor::run(sup, state, rx).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    result?;
    tracing::info!("agent stopped");
    Ok(())
}

/// The agent's work directory (`--work-dir`, else a temporary one removed
/// at exit: the flag says which), created.
fn work_dir(p: &ProxyArgs) -> Result<(PathBuf, bool)> {
    let (work_dir, temporary) = match &p.work_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("rudder-agent-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("creating work dir {}", work_dir.display()))?;
    Ok((work_dir, temporary))
}

/// With a CA: the first certificate before Envoy starts (its bootstrap or
/// its SDS secrets need it), served over SDS or written to the cert dir,
/// then renewals in the background.
async fn start_certificates(
    p: &ProxyArgs,
    address: &str,
    sds_mode: bool,
    state: &Arc<AgentState>,
) -> Result<()> {
    if p.id.pod_namespace.is_empty() || p.id.service_account.is_empty() {
        bail!("--ca-address needs the pod's identity: set POD_NAMESPACE and SERVICE_ACCOUNT");
    }
    let ca = CaClientConfig {
        address: address.to_string(),
        root_file: p.ca_root.clone(),
        token_file: p.token_file.clone(),
        id: SpiffeId::new(&p.trust_domain, &p.id.pod_namespace, &p.id.service_account),
        requested_ttl: p.cert_ttl,
    };
    tracing::info!(ca = %address, id = %ca.id, mode = %p.id.cert_mode, "requesting the workload certificate");
    let first = renew::fetch_first(&ca, default_backoff()).await;
    tracing::info!(serial = %first.serial, not_after = first.not_after, "workload certificate issued");
    let sink = if sds_mode {
        let (tx, rx) = tokio::sync::watch::channel(Some(Arc::new(first.clone())));
        sds::serve(&p.id.sds_socket, SdsServer::new(rx)).await?;
        renew::Sink::Sds(tx)
    } else {
        renew::write_atomic(&p.id.cert_dir, &first)?;
        renew::Sink::Files(p.id.cert_dir.clone())
    };
    tokio::spawn(renew::run(
        ca,
        first,
        sink,
        state.clone(),
        default_backoff(),
    ));
    Ok(())
}

/// Binds the status and metrics ports and serves them in the background.
async fn serve_ports(p: &ProxyArgs, ctx: ServerContext) -> Result<()> {
    let status = TcpListener::bind(("0.0.0.0", p.status_port))
        .await
        .with_context(|| format!("binding the status port {}", p.status_port))?;
    let metrics = TcpListener::bind(("0.0.0.0", p.metrics_port))
        .await
        .with_context(|| format!("binding the metrics port {}", p.metrics_port))?;
    tokio::spawn(server::serve(status, server::status_router(ctx.clone())));
    tokio::spawn(server::serve(metrics, server::metrics_router(ctx)));
    Ok(())
}

/// With certificate files: a watch of the cert dir that tells the
/// supervisor when they change (kept alive by the caller).
fn watch_certs(
    p: &ProxyArgs,
    sds_mode: bool,
    tx: &mpsc::Sender<Command>,
) -> Result<Option<watch::DirWatch>> {
    Ok(if sds_mode {
        None
    } else if p.id.cert_dir.is_dir() {
        let tx = tx.clone();
        Some(watch::watch_dir(
            &p.id.cert_dir,
            Duration::from_millis(200),
            move || {
                let _ = tx.try_send(Command::CertsChanged);
            },
        )?)
    } else {
        tracing::warn!(dir = %p.id.cert_dir.display(), "certificate directory does not exist: plaintext only, not watching");
        None
    })
}

/// SIGTERM and SIGINT start a graceful drain; a second one cuts it short.
async fn forward_signals(tx: mpsc::Sender<Command>) -> Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        if tx.send(Command::Shutdown(name.to_string())).await.is_err() {
            return Ok(());
        }
    }
}
