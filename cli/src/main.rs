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
    about = "Rudder: a sidecar service mesh. `rudder mesh` runs one on this machine."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Top,
}

#[derive(Subcommand)]
enum Top {
    /// The local mesh: pods as network namespaces, real Envoys, pilot.
    #[command(subcommand)]
    Mesh(Mesh),
}

#[derive(Subcommand)]
enum Mesh {
    /// Bring a directory of Kubernetes YAML up as a mesh, show the traffic split, tear down.
    Up(UpArgs),
    /// Remove everything `up` made (also after a crash).
    Down(NameArg),
    /// List instances, their pods and processes, and pilot's connected proxies.
    Status(StatusArgs),
    /// Apply route rule files to a running mesh (same kind/namespace/name replaces).
    Apply(ApplyArgs),
    /// Remove the objects of route rule files from a running mesh.
    Delete(ApplyArgs),
    /// Send requests from a client pod (or the host, through the ingress gateway) and print the split.
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
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
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
    let Top::Mesh(cmd) = cli.cmd;
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
