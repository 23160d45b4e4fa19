//! Running a planned pod in a harness pod: its files, its containers in
//! Kubernetes order, and its readiness.
//!
//! ```text
//! <state>/pods/<pod>/hosts            → /etc/hosts
//!                   /tmp/             → /tmp (the agent's work dir, Envoy's base id file)
//!                   /serviceaccount/  → /var/run/secrets/kubernetes.io/serviceaccount
//!                   /volumes/<name>/  → each volumeMount (certs, pod labels, emptyDirs,
//!                                        istio-token: the pod's signed token, root cert)
//!                   /<container>.log  ← stdout + stderr
//! ```
//!
//! Init containers run to completion (proxy-init as root); then each
//! container starts in order, and one with a postStart hook (the sidecar's
//! `agent wait`) holds the next back until the hook succeeds, as kubelet
//! does. The harness gives every process a private mount namespace with
//! these binds, so a pod sees only its own files.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rudder_harness::{HttpRequest, Pod, Process, ProcessSpec};
use rudder_model::backoff::Backoff;

use crate::container::{expand, ContainerPlan, EnvSource, Probe, Role, VolumeKind};
use crate::identity::MeshIdentity;
use crate::plan::ServicePlan;
use crate::render::{field_value, hosts_file, PodFacts};

/// How long an init container or a postStart hook may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(90);

/// Starting a pod failed.
#[derive(Debug, thiserror::Error)]
pub enum PodRunError {
    /// A file could not be written.
    #[error("pod {pod}: {path}: {source}")]
    Io {
        /// The pod.
        pod: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A process could not be started.
    #[error("pod {pod}: container {container}: {source}")]
    Spawn {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// Why.
        source: rudder_harness::ProcessError,
    },
    /// A container or hook failed or timed out.
    #[error("pod {pod}: {what} {outcome}; last lines of {log}:\n{tail}")]
    Failed {
        /// The pod.
        pod: String,
        /// `init container rudder-init`, `postStart hook of rudder-proxy`.
        what: String,
        /// `exited with status 1`, `did not finish within 90s`.
        outcome: String,
        /// Its log file.
        log: String,
        /// The last lines of the log.
        tail: String,
    },
    /// Asked to stop while starting.
    #[error("interrupted")]
    Interrupted,
}

/// Host-side facts every pod shares.
#[derive(Clone, Debug)]
pub struct Node {
    /// Instance name (the "node name").
    pub name: String,
    /// Bridge host address.
    pub host_ip: std::net::Ipv4Addr,
    /// Where `proxy-init`, `agent` (and `pilot`) are.
    pub bin_dir: PathBuf,
    /// The Envoy binary for agents (`ENVOY_BIN`).
    pub envoy: PathBuf,
    /// Directory relative `workingDir`s and commands resolve against (the YAML directory).
    pub app_dir: PathBuf,
    /// The mesh root and the token signer.
    pub identity: MeshIdentity,
}

/// A started container.
#[derive(Debug)]
pub struct Running {
    /// Its plan.
    pub plan: ContainerPlan,
    /// Its process.
    pub process: Process,
    /// How it was started (for a restart).
    pub spec: ProcessSpec,
    /// Restarts so far.
    pub restarts: u32,
    /// When an exited container is due to start again.
    pub restart_at: Option<Instant>,
    /// Exited and not restarted (the sidecar), already reported.
    pub given_up: bool,
    /// Consecutive failed probes while running (see [`still_ready`]).
    pub probe_failures: u32,
}

/// The wait before restart `n` (0-based) of a container: 1 s doubling up to
/// 30 s, kubelet's back-off shortened for a local mesh.
pub fn restart_backoff(n: u32) -> Duration {
    const RESTART: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    RESTART.delay(n)
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn io_err(pod: &str, path: &Path) -> impl FnOnce(std::io::Error) -> PodRunError {
    let (pod, path) = (pod.to_string(), path.to_path_buf());
    move |source| PodRunError::Io { pod, path, source }
}

fn write(pod: &str, path: &Path, text: &str, mode: u32) -> Result<(), PodRunError> {
    fs::write(path, text).map_err(io_err(pod, path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(pod, path))
}

fn mkdir(pod: &str, path: &Path, mode: u32) -> Result<(), PodRunError> {
    fs::create_dir_all(path).map_err(io_err(pod, path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(pod, path))
}

/// Writes the pod's files (hosts, tmp, service account, volumes) and returns
/// the (host path, pod path) binds every container gets, plus one per volume.
pub fn materialise(
    pod: &Pod,
    facts: &PodFacts<'_>,
    services: &[ServicePlan],
    identity: &MeshIdentity,
) -> Result<Binds, PodRunError> {
    let name = pod.name();
    let dir = pod.dir();
    let hosts = dir.join("hosts");
    write(
        name,
        &hosts,
        &hosts_file(name, &facts.plan.namespace, facts.ip, services),
        0o644,
    )?;
    let tmp = dir.join("tmp");
    mkdir(name, &tmp, 0o1777)?;
    let sa = dir.join("serviceaccount");
    mkdir(name, &sa, 0o755)?;
    write(name, &sa.join("namespace"), &facts.plan.namespace, 0o644)?;
    let mut volumes = BTreeMap::new();
    for v in &facts.plan.volumes {
        let path = dir.join("volumes").join(&v.name);
        let owner = sole_owner(facts, &v.name);
        match &v.kind {
            // Only its containers' user may use a volume that one non-root
            // user mounts (the sidecar's certificates and SDS socket):
            // apps run as host processes and must not read the key.
            VolumeKind::EmptyDir => match owner {
                Some(uid) => {
                    mkdir(name, &path, 0o700)?;
                    chown(name, &path, uid)?;
                }
                None => mkdir(name, &path, 0o777)?,
            },
            VolumeKind::Token(file) => {
                mkdir(name, &path, 0o755)?;
                let plan = facts.plan;
                let token = identity.token(&plan.name, &plan.namespace, &plan.service_account);
                let file = path.join(file);
                write(name, &file, &token, 0o400)?;
                chown(name, &file, owner.unwrap_or(0))?;
            }
            VolumeKind::RootCert => {
                mkdir(name, &path, 0o755)?;
                let file = path.join(rudder_injector::sidecar::ROOT_CERT_FILE);
                write(name, &file, &identity.root_cert_pem, 0o644)?;
            }
            VolumeKind::DownwardApi(items) => {
                mkdir(name, &path, 0o755)?;
                for (file, field) in items {
                    write(name, &path.join(file), &field_value(field, facts), 0o644)?;
                }
            }
        }
        volumes.insert(v.name.clone(), path);
    }
    let common = vec![
        (hosts, PathBuf::from("/etc/hosts")),
        (tmp, PathBuf::from("/tmp")),
        (
            sa,
            PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount"),
        ),
    ];
    Ok(Binds { common, volumes })
}

/// The UID of the containers mounting `volume`, when they all run as the
/// same non-root user.
fn sole_owner(facts: &PodFacts<'_>, volume: &str) -> Option<u32> {
    let plan = facts.plan;
    let mut uids = plan
        .init
        .iter()
        .chain(&plan.containers)
        .filter(|c| c.mounts.iter().any(|(v, _)| v == volume))
        .map(|c| c.uid);
    let first = uids.next()??;
    uids.all(|u| u == Some(first)).then_some(first)
}

fn chown(pod: &str, path: &Path, uid: u32) -> Result<(), PodRunError> {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).map_err(io_err(pod, path))
}

/// The binds of a pod's containers.
#[derive(Clone, Debug)]
pub struct Binds {
    /// Every container: hosts, tmp, service account.
    pub common: Vec<(PathBuf, PathBuf)>,
    /// Volume name → host directory.
    pub volumes: BTreeMap<String, PathBuf>,
}

/// The process spec of container `c` (or of its `argv` override, for hooks).
pub fn process_spec(
    c: &ContainerPlan,
    argv: &[String],
    facts: &PodFacts<'_>,
    node: &Node,
    binds: &Binds,
    log: PathBuf,
) -> ProcessSpec {
    let mut vars = BTreeMap::new();
    let mut env = vec![
        ("HOSTNAME".to_string(), facts.plan.name.clone()),
        ("ENVOY_BIN".to_string(), node.envoy.display().to_string()),
    ];
    for (k, source) in &c.env {
        let v = match source {
            EnvSource::Value(v) => expand(v, &vars),
            EnvSource::Field(f) => field_value(f, facts),
        };
        vars.insert(k.clone(), v.clone());
        env.push((k.clone(), v));
    }
    let argv: Vec<String> = argv.iter().map(|a| expand(a, &vars)).collect();
    let cwd = match &c.working_dir {
        Some(d) if d.is_absolute() => d.clone(),
        Some(d) => node.app_dir.join(d),
        None => node.app_dir.clone(),
    };
    let own = node.bin_dir.join(&argv[0]);
    let program = if !argv[0].contains('/') && own.is_file() {
        own
    } else if argv[0].contains('/') && !argv[0].starts_with('/') {
        cwd.join(&argv[0])
    } else {
        PathBuf::from(&argv[0])
    };
    let mut spec = ProcessSpec::new(program)
        .args(argv[1..].iter().cloned())
        .cwd(cwd)
        .log(log);
    // The agent runs Envoy from inside the pod's mounts: a checkout (and its
    // Envoy) under /tmp must stay visible over the pod's own /tmp.
    if let Some(dir) = node.envoy.parent() {
        spec = spec.keep(dir);
    }
    spec.env = env;
    if c.uid.is_some() || c.gid.is_some() {
        let uid = c.uid.unwrap_or(0);
        spec = spec.user(uid, c.gid.unwrap_or(uid));
    }
    for (host, target) in &binds.common {
        spec = spec.mount(host, target);
    }
    for (vol, target) in &c.mounts {
        if let Some(host) = binds.volumes.get(vol) {
            spec = spec.mount(host, target);
        }
    }
    spec
}

/// Runs `spec` to completion within [`STEP_TIMEOUT`].
fn run_to_completion(
    pod: &Pod,
    what: String,
    spec: ProcessSpec,
    stop: &dyn Fn() -> bool,
) -> Result<(), PodRunError> {
    let log = spec.log.clone().unwrap_or_default();
    let container = what.clone();
    let p = pod.spawn(spec).map_err(|source| PodRunError::Spawn {
        pod: pod.name().into(),
        container,
        source,
    })?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    let outcome = loop {
        if let Some(status) = p.try_wait() {
            if status.success() {
                return Ok(());
            }
            break format!("exited with {status}");
        }
        if stop() {
            return Err(PodRunError::Interrupted);
        }
        if Instant::now() >= deadline {
            break format!("did not finish within {}s", STEP_TIMEOUT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Err(PodRunError::Failed {
        pod: pod.name().into(),
        what,
        outcome,
        log: log.display().to_string(),
        tail: tail(&log, 15),
    })
}

/// Starts the pod's containers in Kubernetes order; returns the long-running
/// ones. `stop` is polled while waiting.
pub fn start(
    pod: &Pod,
    facts: &PodFacts<'_>,
    node: &Node,
    binds: &Binds,
    stop: &dyn Fn() -> bool,
) -> Result<Vec<Running>, PodRunError> {
    let mut running = Vec::new();
    let log = |c: &str| pod.dir().join(format!("{c}.log"));
    let plan = facts.plan;
    for c in plan.init.iter().chain(&plan.containers) {
        let spec = process_spec(c, &c.argv, facts, node, binds, log(&c.name));
        if c.role == Role::Init {
            run_to_completion(pod, format!("init container {}", c.name), spec, stop)?;
            continue;
        }
        let process = pod
            .spawn(spec.clone())
            .map_err(|source| PodRunError::Spawn {
                pod: pod.name().into(),
                container: c.name.clone(),
                source,
            })?;
        tracing::info!(pod = pod.name(), container = %c.name, pid = process.pid(), "container started");
        running.push(Running {
            plan: c.clone(),
            process,
            spec,
            restarts: 0,
            restart_at: None,
            given_up: false,
            probe_failures: 0,
        });
        if let Some(hook) = &c.post_start {
            let spec = process_spec(
                c,
                hook,
                facts,
                node,
                binds,
                log(&format!("{}.postStart", c.name)),
            );
            run_to_completion(pod, format!("postStart hook of {}", c.name), spec, stop)?;
        }
        if c.role == Role::NativeSidecar {
            let deadline = Instant::now() + STEP_TIMEOUT;
            while !container_ready(pod, c, &running.last().expect("just pushed").process) {
                if stop() {
                    return Err(PodRunError::Interrupted);
                }
                if Instant::now() >= deadline {
                    let l = log(&c.name);
                    return Err(PodRunError::Failed {
                        pod: pod.name().into(),
                        what: format!("sidecar {}", c.name),
                        outcome: "never became ready".into(),
                        log: l.display().to_string(),
                        tail: tail(&l, 15),
                    });
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    Ok(running)
}

/// Whether a running container counts as ready this round, kubelet's rule:
/// an exited container is not; a passing probe is; a failing probe turns a
/// ready pod (`was_ready`) unready only at the plan's `failureThreshold`
/// consecutive failures. A blip (an Envoy hot restart: its admin answers
/// for the new epoch before the new epoch has its configuration, while the
/// old one still serves) leaves the pod's endpoints in place.
pub fn still_ready(pod: &Pod, r: &mut Running, was_ready: bool) -> bool {
    if r.process.try_wait().is_some() {
        r.probe_failures = 0;
        return false;
    }
    if container_ready(pod, &r.plan, &r.process) {
        r.probe_failures = 0;
        return true;
    }
    r.probe_failures = r.probe_failures.saturating_add(1);
    was_ready && r.probe_failures < r.plan.failure_threshold
}

/// Whether `c` is ready: its process runs and its probe passes (no probe:
/// its declared ports accept connections, or just running if it has none).
/// Probes go to 127.0.0.1 inside the pod, which capture leaves alone.
pub fn container_ready(pod: &Pod, c: &ContainerPlan, process: &Process) -> bool {
    if process.try_wait().is_some() {
        return false;
    }
    let checks: Vec<Probe> = match &c.probe {
        Some(p) => vec![p.clone()],
        None => c
            .ports
            .iter()
            .map(|(_, port)| Probe::Tcp { port: *port })
            .collect(),
    };
    if checks.is_empty() {
        return true;
    }
    pod.run(|| async move {
        for check in checks {
            let ok = match check {
                Probe::Http { port, path } => {
                    let req = HttpRequest::get(([127, 0, 0, 1], port).into(), path);
                    let out = rudder_harness::get(&req, Duration::from_secs(2)).await;
                    out.status.is_some_and(|s| (200..400).contains(&s))
                }
                Probe::Tcp { port } => {
                    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
                    matches!(
                        tokio::time::timeout(Duration::from_secs(1), connect).await,
                        Ok(Ok(_))
                    )
                }
            };
            if !ok {
                return false;
            }
        }
        true
    })
    .unwrap_or(false)
}
