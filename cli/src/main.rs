//! `rudder`: the local mesh runner. Thin wiring over the `rudder_cli` library.
#![forbid(unsafe_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use rudder_cli::record::{log_path, RUNNER_ROOT};
use rudder_cli::runner::{self, UpOptions, UP_MARKER};
use rudder_cli::{admin, prereq, signals, traffic, DEFAULT_NAME};
use rudder_harness::{Cidr, DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR, DEFAULT_STATE_ROOT};
use rudder_injector::CertMode;

#[derive(Parser)]
#[command(
    name = "rudder",
    version,
    about = "Rudder: a sidecar service mesh. `rudder mesh` runs one on this machine.",
    after_help = ROOT_EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    cmd: Top,
}

#[derive(Subcommand)]
enum Top {
    /// The local mesh: pods as network namespaces, real Envoys, pilot.
    #[command(subcommand, after_help = MESH_EXAMPLES)]
    Mesh(Mesh),
    /// Each proxy's xDS sync state; with a pod, pilot's config against its Envoy's.
    #[command(after_help = PROXY_STATUS_EXAMPLES)]
    ProxyStatus(ProxyStatusArgs),
    /// What a pod's Envoy holds: clusters, listeners, routes, endpoints, secret, bootstrap.
    #[command(after_help = PROXY_CONFIG_EXAMPLES)]
    ProxyConfig(ProxyConfigArgs),
    /// Check Kubernetes/Istio YAML for problems across objects (Istio's analyzer codes).
    #[command(after_help = ANALYZE_EXAMPLES)]
    Analyze(AnalyzeArgs),
    /// Add the sidecar to the workloads of a YAML file, offline (as istioctl kube-inject).
    #[command(after_help = KUBE_INJECT_EXAMPLES)]
    KubeInject(KubeInjectArgs),
    /// Versions of this client, pilot and the connected proxies.
    #[command(after_help = VERSION_EXAMPLES)]
    Version(TargetArgs),
}

const ROOT_EXAMPLES: &str = "Examples:
  rudder mesh up samples/bookinfo --keep      # a local mesh: bookinfo with real Envoys
  rudder proxy-status                         # is every proxy in sync?
  rudder proxy-config clusters productpage    # what does this pod's Envoy hold?
  rudder analyze samples/bookinfo             # what is wrong with my rules?
  rudder mesh down";
const MESH_EXAMPLES: &str = "Examples:
  rudder mesh up samples/bookinfo --keep      # start the demo and leave it running
  rudder mesh status                          # pods, processes, pilot's proxies
  rudder mesh apply samples/bookinfo/rules/reviews-50-50.yaml
  rudder mesh load --from default/sleep -n 1000
  rudder mesh down";
const UP_EXAMPLES: &str = "Examples:
  rudder mesh up samples/bookinfo                         # demo, print the split, tear down
  rudder mesh up samples/bookinfo --keep -n 0             # leave it running, no demo requests
  rudder mesh up samples/bookinfo --keep --rules samples/bookinfo/rules/reviews-50-50.yaml";
const DOWN_EXAMPLES: &str = "Examples:
  rudder mesh down
  rudder mesh down --name demo2";
const STATUS_EXAMPLES: &str = "Examples:
  rudder mesh status
  rudder mesh status --name demo2";
const APPLY_EXAMPLES: &str = "Examples:
  rudder mesh apply samples/bookinfo/rules/reviews-50-50.yaml
  rudder mesh delete samples/bookinfo/rules/reviews-50-50.yaml";
const LOAD_EXAMPLES: &str =
    "Pods are named as `rudder mesh status` prints them (namespace/name), or
name.namespace, name, or a unique prefix of a name (a Deployment's).

Examples:
  rudder mesh load -n 1000                                   # from the sleep pod to productpage
  rudder mesh load --from default/sleep http://reviews.default:9080/reviews/1 -n 200
  rudder mesh load -H 'end-user: jason' -n 100
  rudder mesh load --via-ingress -n 1000                     # from this host through the gateway";
const PROXY_STATUS_EXAMPLES: &str =
    "SYNCED: the proxy ACKed the last response of that type; NOT SENT: nothing
of that type was sent; STALE: sent, not ACKed yet; STALE (NACK): the proxy
rejected it (Envoy's error is printed below the table; it keeps its last
good configuration).

Examples:
  rudder proxy-status                               # every proxy of the local mesh
  rudder proxy-status default/productpage-v1-0      # pilot's config vs the pod's Envoy
  rudder proxy-status --pilot-url http://127.0.0.1:15014   # after kubectl port-forward to pilot";
const PROXY_CONFIG_EXAMPLES: &str = "Examples:
  rudder proxy-config clusters default/productpage-v1-0
  rudder proxy-config listeners productpage
  rudder proxy-config routes productpage -o json
  rudder proxy-config endpoints productpage
  rudder proxy-config secret productpage
  rudder proxy-config bootstrap productpage -o yaml
  rudder proxy-config clusters POD --agent-url http://127.0.0.1:15020   # after kubectl port-forward POD 15020";
const ANALYZE_EXAMPLES: &str =
    "Exit codes (as istioctl's): 0 nothing at or above --failure-threshold,
79 messages at or above it, 65 files that could not be parsed.

Examples:
  rudder analyze samples/bookinfo                  # a directory, offline, namespace default
  rudder analyze -f rules.yaml -f bookinfo.yaml --all-namespaces
  rudder analyze                                   # the running local mesh's configuration
  rudder analyze dir/ --failure-threshold Warning --output-threshold Warning";
const KUBE_INJECT_EXAMPLES: &str = "Examples:
  rudder kube-inject -f samples/bookinfo/bookinfo.yaml > injected.yaml
  cat app.yaml | rudder kube-inject -f -";
const VERSION_EXAMPLES: &str = "Examples:
  rudder version
  rudder version --pilot-url http://127.0.0.1:15014";

/// Where the istioctl-like commands find pilot and the agents.
#[derive(Args, Clone)]
struct TargetArgs {
    /// Local mesh instance (its record gives pilot's and the pods' addresses).
    #[arg(long, default_value = DEFAULT_NAME, value_parser = instance_name)]
    name: String,
    /// pilot's monitoring URL instead of the local mesh's (e.g. a port-forward to 15014).
    #[arg(long, value_name = "URL")]
    pilot_url: Option<String>,
    /// The pod agent's URL instead of http://<pod IP>:15020 (e.g. a port-forward to 15020).
    #[arg(long, value_name = "URL")]
    agent_url: Option<String>,
    #[command(flatten)]
    roots: RootArgs,
}

impl TargetArgs {
    fn endpoints(&self) -> Result<rudder_cli::ctl::Endpoints> {
        rudder_cli::ctl::Endpoints::resolve(
            &self.roots.runner_root,
            &self.name,
            self.pilot_url.as_deref(),
            self.agent_url.as_deref(),
        )
    }
}

#[derive(Args)]
struct ProxyStatusArgs {
    /// A pod (namespace/name, name.namespace, name or a unique prefix): diff pilot's config against its Envoy's.
    pod: Option<String>,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Args)]
struct ProxyConfigArgs {
    /// What to show.
    #[arg(value_enum)]
    what: rudder_cli::proxy_config::What,
    /// The pod (namespace/name, name.namespace, name or a unique prefix).
    pod: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "short")]
    output: rudder_cli::proxy_config::Output,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Args)]
struct AnalyzeArgs {
    /// Files or directories (default: the running local mesh's configuration).
    paths: Vec<PathBuf>,
    /// Files or directories (as positional paths).
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    files: Vec<PathBuf>,
    /// Analyze every namespace (default: only --namespace).
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// The namespace to analyze.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Exit 79 when a message is at or above this level.
    #[arg(long, value_enum, default_value = "error")]
    failure_threshold: rudder_cli::analyze::Level,
    /// Print messages at or above this level.
    #[arg(long, value_enum, default_value = "info")]
    output_threshold: rudder_cli::analyze::Level,
    /// Local mesh instance analyzed when no path is given.
    #[arg(long, default_value = DEFAULT_NAME, value_parser = instance_name)]
    name: String,
    #[command(flatten)]
    roots: RootArgs,
}

#[derive(Args)]
struct KubeInjectArgs {
    /// Input file (`-` for stdin).
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
}

#[derive(Subcommand)]
enum Mesh {
    /// Bring a directory of Kubernetes YAML up as a mesh, show the traffic split, tear down.
    #[command(after_help = UP_EXAMPLES)]
    Up(UpArgs),
    /// Remove everything `up` made (also after a crash).
    #[command(after_help = DOWN_EXAMPLES)]
    Down(NameArg),
    /// List instances, their pods and processes, and pilot's connected proxies.
    #[command(after_help = STATUS_EXAMPLES)]
    Status(StatusArgs),
    /// Apply route rule files to a running mesh (same kind/namespace/name replaces).
    #[command(after_help = APPLY_EXAMPLES)]
    Apply(ApplyArgs),
    /// Remove the objects of route rule files from a running mesh.
    #[command(after_help = APPLY_EXAMPLES)]
    Delete(ApplyArgs),
    /// Send requests from a client pod (or the host, through the ingress gateway) and print the split.
    #[command(after_help = LOAD_EXAMPLES)]
    Load(LoadArgs),
}

fn instance_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 24
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?}: use 1 to 24 characters of a-z, 0-9 and '-', not starting with '-'"
        ))
    }
}

#[derive(Args, Clone)]
struct RootArgs {
    /// Where the harness keeps instance state.
    #[arg(long, default_value = DEFAULT_STATE_ROOT, hide = true)]
    state_root: PathBuf,
    /// Where the runner keeps its records and logs.
    #[arg(long, default_value = RUNNER_ROOT, hide = true)]
    runner_root: PathBuf,
}

#[derive(Args)]
struct StatusArgs {
    /// Only this instance.
    #[arg(long, value_parser = instance_name)]
    name: Option<String>,
    #[command(flatten)]
    roots: RootArgs,
}

#[derive(Args)]
struct NameArg {
    /// Instance name.
    #[arg(long, default_value = DEFAULT_NAME, value_parser = instance_name)]
    name: String,
    #[command(flatten)]
    roots: RootArgs,
}

#[derive(Args)]
struct UpArgs {
    /// Directory of Kubernetes YAML (Namespaces, ServiceAccounts, Services, Deployments, route rules).
    dir: PathBuf,
    /// Leave the mesh running (the runner moves to the background); stop it with `rudder mesh down`.
    #[arg(long)]
    keep: bool,
    /// Instance name (its own bridge, CIDRs and state).
    #[arg(long, default_value = DEFAULT_NAME, value_parser = instance_name)]
    name: String,
    /// Pod CIDR (inside 198.18.0.0/15); its first address is the bridge and pilot.
    #[arg(long, default_value = DEFAULT_POD_CIDR)]
    pod_cidr: Cidr,
    /// Service (VIP) CIDR.
    #[arg(long, default_value = DEFAULT_SERVICE_CIDR)]
    service_cidr: Cidr,
    /// Route rule files to apply from the start (e.g. samples/bookinfo/rules/reviews-99-1-virtual-service.yaml).
    #[arg(long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// Demo requests sent after startup (0: none).
    #[arg(short = 'n', long, default_value_t = 2000)]
    requests: usize,
    /// Client pod for the demo (default: a sleep pod, else the first pod without sidecar).
    #[arg(long)]
    client: Option<String>,
    /// Demo URL, resolved like the client pod's /etc/hosts.
    #[arg(long, default_value = admin::DEFAULT_URL)]
    url: String,
    /// Count answers by the first `<KEY>-<version>` token in their body.
    #[arg(long, default_value = "reviews")]
    split_by: String,
    /// pilot's monitoring port on 127.0.0.1 (default 15014, or a free port when taken).
    #[arg(long)]
    monitoring_port: Option<u16>,
    /// Where pilot, agent and proxy-init are (default: next to rudder).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// How sidecars get their certificates: `file` (a renewal hot-restarts Envoy) or `sds` (no restart).
    #[arg(long, default_value = "file")]
    cert_mode: CertMode,
    /// Lifetime of workload certificates, passed to pilot (e.g. 2m, 24h; default pilot's 24h).
    #[arg(long, value_name = "DURATION")]
    workload_cert_ttl: Option<String>,
    /// An operator's plug-in CA: a directory with Istio's cacerts files
    /// (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem). pilot signs
    /// with it (no root is created) and re-reads it to pick up a rotation;
    /// the runner copies a changed root-cert.pem to every pod.
    #[arg(long, value_name = "DIR")]
    cacerts: Option<PathBuf>,
    #[command(flatten)]
    roots: RootArgs,
    /// Internal: this process is the background runner of a `--keep` run.
    #[arg(long, hide = true)]
    runner_child: bool,
}

#[derive(Args)]
struct ApplyArgs {
    /// Instance name.
    #[arg(long, default_value = DEFAULT_NAME, value_parser = instance_name)]
    name: String,
    /// Rule files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    roots: RootArgs,
}

#[derive(Args)]
struct LoadArgs {
    /// Instance name.
    #[arg(long, default_value = DEFAULT_NAME, value_parser = instance_name)]
    name: String,
    /// URL, resolved like the client pod's /etc/hosts (default
    /// http://productpage.default:9080/). With --via-ingress its host is the
    /// Host header sent to the gateway (default http://<ingress>/productpage).
    url: Option<String>,
    /// Send from this host to the mesh's ingress gateway (the address
    /// `rudder mesh status` prints) instead of from a client pod.
    #[arg(long, conflicts_with = "client")]
    via_ingress: bool,
    /// Number of requests.
    #[arg(short = 'n', long, default_value_t = 2000)]
    requests: usize,
    /// Extra header, "Name: value" (repeatable), e.g. -H 'end-user: jason'.
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Client pod.
    #[arg(long = "from")]
    client: Option<String>,
    /// Count answers by the first `<KEY>-<version>` token in their body.
    #[arg(long, default_value = "reviews")]
    split_by: String,
    /// Print the split as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    roots: RootArgs,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rudder_registry=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rudder: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let cmd = match cli.cmd {
        Top::Mesh(cmd) => cmd,
        Top::ProxyStatus(a) => {
            let e = a.target.endpoints()?;
            emit(&rudder_cli::proxy_status::run(&e, a.pod.as_deref())?);
            return Ok(ExitCode::SUCCESS);
        }
        Top::ProxyConfig(a) => {
            let e = a.target.endpoints()?;
            emit(&rudder_cli::proxy_config::run(
                &e, a.what, &a.pod, a.output,
            )?);
            return Ok(ExitCode::SUCCESS);
        }
        Top::Analyze(a) => return analyze(a),
        Top::KubeInject(a) => return kube_inject(a),
        Top::Version(a) => return version(a),
    };
    match cmd {
        Mesh::Up(a) => up(a),
        Mesh::Down(a) => {
            for line in admin::down(&a.roots.runner_root, &a.roots.state_root, &a.name)? {
                println!("{line}");
            }
            println!("Local mesh {:?} is down.", a.name);
            Ok(ExitCode::SUCCESS)
        }
        Mesh::Status(a) => {
            print!(
                "{}",
                admin::status(&a.roots.runner_root, &a.roots.state_root, a.name.as_deref())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Mesh::Apply(a) => apply(a, false),
        Mesh::Delete(a) => apply(a, true),
        Mesh::Load(a) => {
            let from = if a.via_ingress {
                admin::From::Ingress
            } else {
                admin::From::Pod(a.client.as_deref())
            };
            let split = admin::load(
                &a.roots.runner_root,
                &a.name,
                from,
                a.url.as_deref(),
                &a.headers,
                a.requests,
                &a.split_by,
            )?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&split)?);
            } else {
                print!("{}", traffic::format_split(&split));
            }
            Ok(if split.succeeded == split.total {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn analyze(a: AnalyzeArgs) -> Result<ExitCode> {
    use rudder_cli::analyze;
    let mut paths = a.paths.clone();
    paths.extend(a.files.iter().cloned());
    let target = if paths.is_empty() {
        let r = rudder_cli::record::RunnerRecord::load(&a.roots.runner_root, &a.name).context(
            "no files given and no local mesh running: pass files or directories (rudder analyze DIR)",
        )?;
        eprintln!(
            "Analyzing the configuration of local mesh {:?} ({})...",
            a.name,
            r.config_dir.display()
        );
        paths.push(r.config_dir.clone());
        format!("local mesh {:?}", a.name)
    } else {
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let files = analyze::collect(&paths)?;
    let ns = (!a.all_namespaces).then_some(a.namespace.as_str());
    let report = analyze::run(&files, ns, a.output_threshold);
    for u in &report.unparsed {
        eprintln!("Error(s) adding files: {u}");
    }
    for m in &report.shown {
        println!("{m}");
    }
    let scope = match ns {
        Some(n) => format!("namespace: {n}"),
        None => "all namespaces".into(),
    };
    let code = analyze::exit_code(&report, a.failure_threshold);
    if report.shown.is_empty() && report.unparsed.is_empty() {
        eprintln!("\u{2714} No validation issues found when analyzing {scope} ({target}).");
    }
    if code == 79 {
        eprintln!(
            "Error: Analyzers found issues when analyzing {scope}.\nSee https://istio.io/latest/docs/reference/config/analysis for more information about causes and resolutions."
        );
    }
    Ok(ExitCode::from(code))
}

fn kube_inject(a: KubeInjectArgs) -> Result<ExitCode> {
    let input = if a.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading stdin")?;
        s
    } else {
        std::fs::read_to_string(&a.file).with_context(|| format!("reading {}", a.file.display()))?
    };
    let values = rudder_injector::template::Values::default();
    let native = values.native_sidecars.resolve(None);
    let ctx = rudder_injector::InjectContext::new(&values, native);
    let out = rudder_injector::kube_inject::kube_inject(&input, &ctx)
        .with_context(|| a.file.display().to_string())?;
    emit(&out);
    Ok(ExitCode::SUCCESS)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn version(a: TargetArgs) -> Result<ExitCode> {
    println!("client version: {}", env!("CARGO_PKG_VERSION"));
    let e = match a.endpoints() {
        Ok(e) => e,
        Err(err) => {
            println!("control plane version: unknown ({err})");
            return Ok(ExitCode::SUCCESS);
        }
    };
    match e.pilot_json("/version") {
        Ok(v) => println!(
            "control plane version: {} (pilot at {})",
            v["version"].as_str().unwrap_or("?"),
            e.pilot
        ),
        Err(err) => println!("control plane version: unknown ({err:#})"),
    }
    let mut versions: std::collections::BTreeMap<String, usize> = Default::default();
    for s in e.syncz().unwrap_or_default() {
        let ua = s["user_agent"].as_str().unwrap_or("unknown").to_string();
        *versions.entry(ua).or_default() += 1;
    }
    let list: Vec<String> = versions
        .iter()
        .map(|(v, n)| format!("{v} ({n} proxies)"))
        .collect();
    println!(
        "data plane version: {}",
        if list.is_empty() {
            "no proxies connected".into()
        } else {
            list.join(", ")
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn apply(a: ApplyArgs, delete: bool) -> Result<ExitCode> {
    let pilot = prereq::default_bin_dir().join("pilot");
    for line in admin::apply(&a.roots.runner_root, &a.name, &a.files, &pilot, delete)? {
        println!("{line}");
    }
    println!("pilot picks the change up from its config directory and pushes it to the sidecars.");
    Ok(ExitCode::SUCCESS)
}

fn up(a: UpArgs) -> Result<ExitCode> {
    let opts = up_options(&a);
    if let Err(missing) = prereq::check(&opts.envoy, &opts.bin_dir) {
        eprintln!("rudder: cannot start the local mesh: {missing}");
        return Ok(ExitCode::from(2));
    }
    let stop = signals::install().context("installing signal handlers")?;
    if a.runner_child || !a.keep {
        if !a.runner_child {
            print_validation(&opts)?;
        }
        return match runner::up(&opts, &stop) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(runner::UpError::Interrupted) => {
                eprintln!("rudder: interrupted; everything the run made was removed");
                Ok(ExitCode::from(130))
            }
            Err(e) => Err(e.into()),
        };
    }
    // --keep: check the input here (errors show up directly), then run the
    // runner in the background with its output in a log, and relay that log
    // until the mesh is up.
    print_validation(&opts)?;
    runner::prepare(&opts)?;
    let (child, log) = start_runner(&opts)?;
    relay_until_up(child, &log, &stop)
}

fn up_options(a: &UpArgs) -> UpOptions {
    UpOptions {
        dir: a.dir.clone(),
        name: a.name.clone(),
        pod_cidr: a.pod_cidr,
        service_cidr: a.service_cidr,
        state_root: a.roots.state_root.clone(),
        runner_root: a.roots.runner_root.clone(),
        rules: a.rules.clone(),
        keep: a.keep,
        requests: a.requests,
        client: a.client.clone(),
        url: a.url.clone(),
        split_by: a.split_by.clone(),
        monitoring_port: a.monitoring_port,
        bin_dir: a.bin_dir.clone().unwrap_or_else(prereq::default_bin_dir),
        envoy: rudder_harness::envoy_bin(),
        cert_mode: a.cert_mode,
        workload_cert_ttl: a.workload_cert_ttl.clone(),
        cacerts: a.cacerts.clone(),
    }
}

/// pilot's validation of the input's route rules, one warning a line.
fn print_validation(opts: &UpOptions) -> Result<()> {
    let warnings = runner::validate(opts)?;
    for w in warnings.lines().filter(|l| !l.trim().is_empty()) {
        println!("pilot validate: {w}");
    }
    Ok(())
}

/// Starts this binary again as the background runner (`--runner-child`, its
/// own process group), its output in the instance's log; returns it and the log.
fn start_runner(opts: &UpOptions) -> Result<(std::process::Child, PathBuf)> {
    std::fs::create_dir_all(&opts.runner_root)
        .with_context(|| format!("creating {}", opts.runner_root.display()))?;
    let log = log_path(&opts.runner_root, &opts.name);
    if rudder_cli::record::RunnerRecord::load(&opts.runner_root, &opts.name).is_ok() {
        bail!(
            "a local mesh named {:?} already exists: run `rudder mesh down --name {}` first",
            opts.name,
            opts.name
        );
    }
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let exe = std::env::current_exe().context("locating the rudder binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .arg("--runner-child")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().context("starting the background runner")?;
    Ok((child, log))
}

/// Relays the runner's log until it prints [`UP_MARKER`] (success) or stops
/// (failure); a signal meanwhile asks it to tear down.
fn relay_until_up(
    mut child: std::process::Child,
    log: &std::path::Path,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<ExitCode> {
    let mut file = std::fs::File::open(log)?;
    let mut seen = String::new();
    let mut signalled = false;
    loop {
        let mut chunk = String::new();
        file.read_to_string(&mut chunk)?;
        if !chunk.is_empty() {
            seen.push_str(&chunk);
            if let Some(i) = seen.find(UP_MARKER) {
                let chunk_start = seen.len() - chunk.len();
                print!("{}", &chunk[..i.saturating_sub(chunk_start)]);
                println!(
                    "\nThe runner (pid {}) logs to {}.",
                    child.id(),
                    log.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            print!("{chunk}");
        }
        if let Some(status) = child.try_wait()? {
            let mut rest = String::new();
            file.read_to_string(&mut rest)?;
            print!("{rest}");
            eprintln!(
                "rudder: the runner stopped ({status}) before the mesh was up; its log: {}",
                log.display()
            );
            let _ = std::fs::remove_file(log);
            return Ok(ExitCode::FAILURE);
        }
        if stop.load(Ordering::SeqCst) && !signalled {
            // Ctrl-C while starting: ask the runner to tear down, keep relaying.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            signalled = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
