//! `rudder mesh up`: bring a directory of Kubernetes YAML up as a local mesh,
//! show the traffic split, then tear down (or, with `--keep`, stay up).
//!
//! ```text
//! load + plan (pure) ─► Net (bridge) ─► pilot config dir ─► pilot on <host>:15010
//!   ─► pods: netns + files ─► init (proxy-init) ─► sidecar (agent, 1337) + postStart `agent wait`
//!   ─► apps ─► supervisor (readiness → Pods in pilot's dir, DNAT in unmeshed pods)
//!   ─► wait: all Ready, every Envoy ACKed ─► demo load from the client pod ─► teardown | keep
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rudder_harness::{Cidr, Net, NetConfig, Pod};
use rudder_injector::CertMode;
use rudder_model::well_known::{MONITORING_PORT, XDS_PORT, XDS_TLS_PORT};

use crate::identity::{IdentityError, MeshIdentity};
use crate::instance::Instance;

use crate::manifest::{self, Manifest};
use crate::pilot::{self, ConfigDir, Pilot};
use crate::plan::{self, MeshPlan, SIDECAR_CONTAINER_NAME};
use crate::pods::{self, Node};
use crate::record::{self, HostProcess, PodEntry, RunnerRecord, ServiceEntry};
use crate::render::{namespace_object, pod_object, PodFacts};
use crate::supervise::{LivePod, Shared, Supervisor};
use crate::traffic::{self, Traffic};

/// The line a `--keep` runner prints once the mesh is up (the foreground
/// `rudder` waits for it in the runner's log).
pub const UP_MARKER: &str = "rudder: the mesh is up and running in the background";

/// How long pods may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// Options of `rudder mesh up`.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// The YAML directory.
    pub dir: PathBuf,
    /// Instance name.
    pub name: String,
    /// Pod CIDR.
    pub pod_cidr: Cidr,
    /// Service CIDR.
    pub service_cidr: Cidr,
    /// Harness state root.
    pub state_root: PathBuf,
    /// Runner records root.
    pub runner_root: PathBuf,
    /// Extra rule files, applied before pilot starts.
    pub rules: Vec<PathBuf>,
    /// Stay up after the demo.
    pub keep: bool,
    /// Demo requests (0 = no demo).
    pub requests: usize,
    /// Client pod (default: a `sleep` pod, else the first pod without sidecar).
    pub client: Option<String>,
    /// Demo URL.
    pub url: String,
    /// Version token key of the split.
    pub split_by: String,
    /// pilot's monitoring port on 127.0.0.1 (default 15014, or a free one).
    pub monitoring_port: Option<u16>,
    /// Where pilot, agent, proxy-init are.
    pub bin_dir: PathBuf,
    /// Envoy for the agents.
    pub envoy: PathBuf,
    /// How sidecars get their certificates.
    pub cert_mode: CertMode,
    /// pilot's `--workload-cert-ttl` (None: pilot's default).
    pub workload_cert_ttl: Option<String>,
    /// An operator's plug-in CA directory (Istio's cacerts files), pilot's
    /// `--ca-dir` instead of `<state>/ca`.
    pub cacerts: Option<PathBuf>,
}

/// `up` failed.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    /// The input is wrong.
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    /// The input is wrong.
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    /// pilot.
    #[error(transparent)]
    Pilot(#[from] pilot::PilotError),
    /// The harness.
    #[error(transparent)]
    Net(#[from] rudder_harness::NetError),
    /// A pod.
    #[error(transparent)]
    Pod(#[from] pods::PodRunError),
    /// The mesh root or token key.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The record.
    #[error(transparent)]
    Record(#[from] record::RecordError),
    /// Traffic.
    #[error(transparent)]
    Traffic(#[from] traffic::TrafficError),
    /// An instance with this name exists.
    #[error("a local mesh named {0:?} already exists: run `rudder mesh down --name {0}` first")]
    Exists(String),
    /// Something did not converge in time.
    #[error("{0}")]
    Timeout(String),
    /// Signal.
    #[error("interrupted")]
    Interrupted,
    /// Filesystem.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The input, read and planned (before anything is created).
pub fn prepare(opts: &UpOptions) -> Result<(Manifest, MeshPlan), UpError> {
    let mut m = manifest::load_dir(&opts.dir)?;
    m.rules.extend(manifest::load_rules(&opts.rules)?);
    let mut values = plan::local_values(opts.pod_cidr.first_host());
    values.cert_mode = opts.cert_mode;
    let mesh = plan::plan(&m, opts.service_cidr, &values)?;
    Ok((m, mesh))
}

/// Validates the directory's and the rule files' route rules with pilot.
pub fn validate(opts: &UpOptions) -> Result<String, UpError> {
    let mut files = manifest::files_in(&opts.dir)?;
    files.extend(opts.rules.iter().cloned());
    Ok(pilot::validate(&opts.bin_dir.join("pilot"), &files)?)
}

fn monitoring_addr(port: Option<u16>) -> SocketAddr {
    let want = port.unwrap_or(MONITORING_PORT);
    let free = |p: u16| {
        std::net::TcpListener::bind(("127.0.0.1", p)).map(|l| l.local_addr().map(|a| a.port()))
    };
    let port = match (port, free(want)) {
        (Some(p), _) => p,
        (None, Ok(Ok(p))) => p,
        (None, _) => free(0).ok().and_then(Result::ok).unwrap_or(want),
    };
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Runs `up` in this process. `stop` is set by signals; output goes to stdout.
pub fn up(opts: &UpOptions, stop: &Arc<AtomicBool>) -> Result<(), UpError> {
    let stopped = || stop.load(Ordering::SeqCst);
    let (manifest, mesh) = prepare(opts)?;
    let mesh = Arc::new(mesh);
    for line in &manifest.ignored {
        println!("note: {line}");
    }
    let app_dir = check_new_instance(opts)?;
    let mut inst = create_instance(opts, &mesh)?;
    let config = ConfigDir(inst.record.config_dir.clone());
    write_cluster(&config, &mesh)?;
    let node = node(opts, &inst, app_dir)?;
    let started = add_pods(&mut inst, &mesh, &node, &config)?;
    start_pilot(&mut inst, opts, &config, &node, &stopped)?;
    println!(
        "Starting {} pods (init containers, sidecars, apps)...",
        started.len()
    );
    let (live, first_error) = start_containers(&started, &mesh, &node, &stopped);
    record_base_ids(inst.net(), &live)?;
    let shared = Arc::new(Shared::default());
    let sup = Supervisor {
        plan: mesh.clone(),
        node: node.clone(),
        config: config.clone(),
        pods: live,
        shared: shared.clone(),
        root_seen: node.identity.root_cert_pem.clone(),
    };
    inst.supervisor = Some(sup.spawn(inst.sup_stop.clone()));
    if stopped() {
        return Err(UpError::Interrupted);
    }
    if let Some(e) = first_error {
        return Err(e.into());
    }

    wait_all_ready(&mut inst, &mesh, &shared, &stopped)?;
    print_pods(&inst.record, &mesh);
    println!("Waiting for every sidecar and gateway to ACK its configuration from pilot...");
    wait_in_sync(&inst, &mesh, &stopped)?;

    if opts.requests > 0 {
        demo(opts, &inst.record, &stopped)?;
    }
    if opts.keep {
        print_keep_help(&inst.record, opts);
        println!("{UP_MARKER}");
        stay_up(&mut inst, &shared, &stopped)?;
        println!("rudder: stopping (signal); tearing the mesh down");
    } else {
        println!("Tearing down (use --keep to leave the mesh running)...");
    }
    inst.teardown();
    println!("Removed: pods, namespaces, links, processes, state.");
    Ok(())
}

/// Refuses a name already in use (a runner record or harness state) and
/// returns the YAML directory, absolute.
fn check_new_instance(opts: &UpOptions) -> Result<PathBuf, UpError> {
    if RunnerRecord::load(&opts.runner_root, &opts.name).is_ok()
        || opts.state_root.join(&opts.name).exists()
    {
        return Err(UpError::Exists(opts.name.clone()));
    }
    std::fs::canonicalize(&opts.dir).map_err(|source| UpError::Io {
        path: opts.dir.clone(),
        source,
    })
}

/// Creates the bridge and the instance record (saved), and says so.
fn create_instance(opts: &UpOptions, mesh: &MeshPlan) -> Result<Instance, UpError> {
    let net = Net::create(NetConfig {
        name: opts.name.clone(),
        pod_cidr: opts.pod_cidr,
        service_cidr: opts.service_cidr,
        state_root: opts.state_root.clone(),
    })?;
    let host = net.host_addr();
    let inst = Instance {
        record: RunnerRecord {
            name: opts.name.clone(),
            state_dir: net.state_dir().to_path_buf(),
            runner: HostProcess::of(std::process::id()),
            pilot: None,
            xds_addr: SocketAddr::from((host, XDS_PORT)),
            monitoring_addr: monitoring_addr(opts.monitoring_port),
            config_dir: net.state_dir().join("pilot").join("config"),
            etc_netns: Vec::new(),
            services: mesh
                .services
                .iter()
                .map(|s| ServiceEntry {
                    name: s.def.name.clone(),
                    namespace: s.def.namespace.clone(),
                    vip: s.vip,
                    ports: s.def.ports.iter().map(|p| p.port).collect(),
                })
                .collect(),
            pods: Vec::new(),
            keep: opts.keep,
        },
        runner_root: opts.runner_root.clone(),
        pilot: None,
        sup_stop: Arc::new(AtomicBool::new(false)),
        supervisor: None,
        net: Some(net),
    };
    inst.save()?;
    let net = inst.net();
    println!(
        "Local mesh {:?}: bridge {} ({}), pods {}, services {}",
        opts.name,
        net.bridge(),
        host,
        opts.pod_cidr,
        opts.service_cidr
    );
    Ok(inst)
}

/// pilot's view of the "cluster": namespaces, services, rules (pods follow as
/// they start).
fn write_cluster(config: &ConfigDir, mesh: &MeshPlan) -> Result<(), UpError> {
    for (ns, labels) in &mesh.namespaces {
        config.write(
            "platform",
            &format!("namespace.{ns}.json"),
            &namespace_object(ns, labels),
        )?;
    }
    for s in &mesh.services {
        config.write(
            "platform",
            &format!("service.{}.{}.json", s.def.namespace, s.def.name),
            &s.object(),
        )?;
    }
    for r in &mesh.rules {
        config.write_rule(r)?;
    }
    Ok(())
}

/// The host-side facts every pod shares (creates the mesh identity).
fn node(opts: &UpOptions, inst: &Instance, app_dir: PathBuf) -> Result<Node, UpError> {
    let net = inst.net();
    Ok(Node {
        name: opts.name.clone(),
        host_ip: net.host_addr(),
        bin_dir: opts.bin_dir.clone(),
        envoy: opts.envoy.clone(),
        app_dir,
        identity: MeshIdentity::prepare(net.state_dir(), opts.cacerts.as_deref())?,
    })
}

/// Pods: namespaces and files first (IPs in input order), written to pilot as
/// not ready. Returns each pod with its index in the plan and its binds.
fn add_pods(
    inst: &mut Instance,
    mesh: &MeshPlan,
    node: &Node,
    config: &ConfigDir,
) -> Result<Vec<(usize, Pod, pods::Binds)>, UpError> {
    let mut started = Vec::new();
    for (index, plan) in mesh.pods.iter().enumerate() {
        let pod = inst.net().add_pod(&plan.name)?;
        let facts = PodFacts {
            plan,
            ip: pod.ip(),
            host_ip: node.host_ip,
            node: &node.name,
        };
        let etc = PathBuf::from("/etc/netns").join(pod.netns());
        inst.record.etc_netns.push(etc.clone());
        inst.record.pods.push(PodEntry {
            name: plan.name.clone(),
            namespace: plan.namespace.clone(),
            ip: pod.ip(),
            netns: pod.netns().into(),
            sidecar: plan.meshed(),
            ready: false,
            ingress: plan
                .ingress_port()
                .map(|port| SocketAddr::from((pod.ip(), port))),
            external: plan.external,
        });
        inst.save()?;
        let binds = pods::materialise(&pod, &facts, &mesh.services, &node.identity)?;
        std::fs::create_dir_all(&etc).map_err(|source| UpError::Io {
            path: etc.clone(),
            source,
        })?;
        std::fs::copy(&binds.common[0].0, etc.join("hosts")).map_err(|source| UpError::Io {
            path: etc.join("hosts"),
            source,
        })?;
        if !plan.external {
            config.write(
                "pods",
                &format!("pod.{}.{}.json", plan.namespace, plan.name),
                &pod_object(&facts, false, false),
            )?;
        }
        started.push((index, pod, binds));
    }
    Ok(started)
}

/// Starts pilot (recorded before it is waited for, so `down` can stop it)
/// and waits until it is ready.
fn start_pilot(
    inst: &mut Instance,
    opts: &UpOptions,
    config: &ConfigDir,
    node: &Node,
    stopped: &dyn Fn() -> bool,
) -> Result<(), UpError> {
    let mut p = Pilot::start(
        &opts.bin_dir.join("pilot"),
        config,
        inst.record.xds_addr,
        inst.record.monitoring_addr,
        &pilot::PilotIdentity {
            ca_dir: node.identity.ca_dir.clone(),
            token_key: node.identity.token_key_file.clone(),
            secure_xds: SocketAddr::from((node.host_ip, XDS_TLS_PORT)),
            workload_cert_ttl: opts.workload_cert_ttl.clone(),
        },
        inst.net().state_dir().join("pilot.log"),
    )?;
    inst.record.pilot = Some(p.process());
    inst.save()?;
    let ready = p.wait_ready(Duration::from_secs(30), stopped);
    inst.pilot = Some(p);
    ready?;
    println!(
        "pilot: xDS over TLS on {} (the sidecars') and plaintext on {}, monitoring on http://{}/debug/syncz",
        SocketAddr::from((inst.record.xds_addr.ip(), XDS_TLS_PORT)),
        inst.record.xds_addr,
        inst.record.monitoring_addr
    );
    Ok(())
}

/// Containers, all pods side by side (as kubelets would). Returns the pods
/// that started and the first error of those that did not.
fn start_containers(
    started: &[(usize, Pod, pods::Binds)],
    mesh: &MeshPlan,
    node: &Node,
    stopped: &(dyn Fn() -> bool + Sync),
) -> (Vec<LivePod>, Option<pods::PodRunError>) {
    let results: Vec<Result<LivePod, pods::PodRunError>> = std::thread::scope(|s| {
        let handles: Vec<_> = started
            .iter()
            .map(|(index, pod, binds)| {
                s.spawn(move || {
                    let plan = &mesh.pods[*index];
                    let facts = PodFacts {
                        plan,
                        ip: pod.ip(),
                        host_ip: node.host_ip,
                        node: &node.name,
                    };
                    let running = pods::start(pod, &facts, node, binds, stopped)?;
                    Ok(LivePod {
                        index: *index,
                        pod: pod.clone(),
                        running,
                        ready: None,
                        dnat_installed: false,
                        dnat_rules: String::new(),
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut live = Vec::new();
    let mut first_error = None;
    for r in results {
        match r {
            Ok(l) => live.push(l),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    (live, first_error)
}

/// Records each sidecar's Envoy base-id file with the harness (it removes
/// the shared memory those name at teardown).
fn record_base_ids(net: &Net, live: &[LivePod]) -> Result<(), UpError> {
    for l in live {
        if let Some(sidecar) = l
            .running
            .iter()
            .find(|r| r.plan.name == SIDECAR_CONTAINER_NAME)
        {
            let base = l
                .pod
                .dir()
                .join("tmp")
                .join(format!("rudder-agent-{}", sidecar.process.pid()))
                .join("envoy-base-id");
            net.record_base_id_file(&base)?;
        }
    }
    Ok(())
}

/// `--keep`: until a signal, copies the supervisor's readiness into the
/// record whenever it changes.
fn stay_up(
    inst: &mut Instance,
    shared: &Shared,
    stopped: &dyn Fn() -> bool,
) -> Result<(), UpError> {
    while !stopped() {
        std::thread::sleep(Duration::from_millis(200));
        let ready = shared
            .ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut changed = false;
        for p in &mut inst.record.pods {
            let now = ready.get(&p.name).copied().unwrap_or(false);
            changed |= p.ready != now;
            p.ready = now;
        }
        if changed {
            inst.save()?;
        }
    }
    Ok(())
}

fn wait_all_ready(
    inst: &mut Instance,
    mesh: &MeshPlan,
    shared: &Shared,
    stopped: &dyn Fn() -> bool,
) -> Result<(), UpError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut last_count = usize::MAX;
    loop {
        let ready = shared
            .ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let waiting: Vec<&str> = mesh
            .pods
            .iter()
            .filter(|p| ready.get(&p.name) != Some(&true))
            .map(|p| p.name.as_str())
            .collect();
        // Progress: when the count changes, and every 5 s while it does not.
        let done = mesh.pods.len() - waiting.len();
        if !waiting.is_empty()
            && (done != last_count || last_report.elapsed() >= Duration::from_secs(5))
        {
            println!(
                "  {done}/{} pods ready ({}s; waiting for {})",
                mesh.pods.len(),
                started.elapsed().as_secs(),
                waiting_list(&waiting)
            );
            last_count = done;
            last_report = Instant::now();
        }
        if waiting.is_empty() {
            for p in &mut inst.record.pods {
                p.ready = true;
            }
            inst.save()?;
            return Ok(());
        }
        if stopped() {
            return Err(UpError::Interrupted);
        }
        if Instant::now() >= deadline {
            let problems = shared
                .problems
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .join("\n  ");
            return Err(UpError::Timeout(format!(
                "pods not ready after {}s: {} (logs in {}/pods/<pod>/){}",
                READY_TIMEOUT.as_secs(),
                waiting.join(", "),
                inst.record.state_dir.display(),
                if problems.is_empty() {
                    String::new()
                } else {
                    format!("\n  {problems}")
                }
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// At most three names, then how many more.
fn waiting_list(waiting: &[&str]) -> String {
    match waiting.len() {
        0..=3 => waiting.join(", "),
        n => format!("{} and {} more", waiting[..3].join(", "), n - 3),
    }
}

/// Waits until every sidecar and gateway is connected to pilot and has ACKed
/// what it was sent.
fn wait_in_sync(
    inst: &Instance,
    mesh: &MeshPlan,
    stopped: &dyn Fn() -> bool,
) -> Result<(), UpError> {
    let want: Vec<String> = inst
        .record
        .pods
        .iter()
        .filter(|p| p.sidecar || p.ingress.is_some())
        .map(|p| format!("~{}~", p.ip))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    // pilot debounces changes (up to 1 s): let the last readiness writes land first.
    std::thread::sleep(Duration::from_millis(1500));
    loop {
        let conns = pilot::syncz(inst.record.monitoring_addr).unwrap_or_default();
        let ok = want.iter().all(|ip| {
            conns
                .iter()
                .any(|c| c.node_id.contains(ip.as_str()) && c.in_sync)
        });
        if ok {
            println!(
                "pilot: {} proxies (sidecars and gateways) connected, all in sync",
                conns.len()
            );
            return Ok(());
        }
        if stopped() {
            return Err(UpError::Interrupted);
        }
        if Instant::now() >= deadline {
            let _ = mesh;
            return Err(UpError::Timeout(
                "sidecars and gateways did not all connect to pilot and ACK their configuration within 60s"
                    .into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn print_pods(record: &RunnerRecord, mesh: &MeshPlan) {
    println!("Pods:");
    let width = record
        .pods
        .iter()
        .map(|p| p.name.len() + p.namespace.len() + 1)
        .max()
        .unwrap_or(0);
    for (p, plan) in record.pods.iter().zip(&mesh.pods) {
        let who = format!("{}/{}", p.namespace, p.name);
        let sidecar = match (&plan.sidecar, p.ingress) {
            (Ok(()), _) => "sidecar: yes".to_string(),
            (Err(_), Some(_)) => "gateway (agent router, no sidecar, no capture)".to_string(),
            (Err(why), None) => format!("sidecar: no ({why})"),
        };
        println!("  {who:<width$}  {:<15}  {sidecar}", p.ip.to_string());
    }
    if let Some(addr) = record.ingress() {
        println!("ingress: http://{addr} (the ingress gateway, reachable from this host)");
    }
}

/// The client pod for demo traffic.
pub fn pick_client<'r>(record: &'r RunnerRecord, wanted: Option<&str>) -> Option<&'r PodEntry> {
    match wanted {
        Some(name) => record.find_pod(name).ok(),
        None => record
            .pods
            .iter()
            .find(|p| p.name.starts_with("sleep"))
            .or_else(|| {
                record
                    .pods
                    .iter()
                    .find(|p| !p.sidecar && p.ingress.is_none() && !p.external)
            })
            .or(record.pods.first()),
    }
}

/// Builds the traffic for `url` from `client`.
pub fn traffic_for(
    record: &RunnerRecord,
    client: &PodEntry,
    url: &str,
    headers: Vec<(String, String)>,
    count: usize,
) -> Result<Traffic, UpError> {
    let u = traffic::parse_url(url)?;
    let addr =
        traffic::target(&u, |h| record.resolve(h, client).map(|s| s.vip)).ok_or_else(|| {
            traffic::TrafficError::Resolve {
                host: u.host.clone(),
                pod: client.name.clone(),
            }
        })?;
    Ok(Traffic {
        netns: Some(PathBuf::from("/run/netns").join(&client.netns)),
        addr,
        host: format!("{}:{}", u.host, u.port),
        path: u.path,
        headers,
        count,
        concurrency: 4,
        timeout: Duration::from_secs(300),
    })
}

/// The path the ingress demo and `load --via-ingress` ask for: Istio's
/// bookinfo-gateway.yaml routes exactly `/productpage` to productpage.
pub const INGRESS_PATH: &str = "/productpage";

/// Builds the traffic for `url` sent from the host to the ingress gateway at
/// `ingress`: the URL's host (and port) becomes the Host header, its path
/// the request's (`http://bookinfo.example.com/productpage` asks the
/// gateway for that virtual host).
pub fn ingress_traffic(
    ingress: SocketAddr,
    url: &str,
    headers: Vec<(String, String)>,
    count: usize,
) -> Result<Traffic, UpError> {
    let u = traffic::parse_url(url)?;
    let host = if u.port == 80 {
        u.host
    } else {
        format!("{}:{}", u.host, u.port)
    };
    Ok(Traffic {
        netns: None,
        addr: ingress,
        host,
        path: u.path,
        headers,
        count,
        concurrency: 4,
        timeout: Duration::from_secs(300),
    })
}

/// Sends `make(1)` until one succeeds (bounded by 30 s): the first request
/// through a fresh path may race the last endpoint or route update.
fn warm_up(probe: &Traffic, what: &str, stopped: &dyn Fn() -> bool) -> Result<(), UpError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !traffic::send(probe)?
        .outcomes
        .iter()
        .all(|o| o.is_success())
    {
        if stopped() {
            return Err(UpError::Interrupted);
        }
        if Instant::now() >= deadline {
            return Err(UpError::Timeout(format!("{what} never answered")));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

/// The demo through the ingress gateway: from the host (as
/// `curl http://<ingress>/productpage` would), the first answer, then the
/// split of `requests` requests.
fn ingress_demo(
    ingress: SocketAddr,
    requests: usize,
    split_by: &str,
    stopped: &dyn Fn() -> bool,
) -> Result<(), UpError> {
    let url = format!("http://{ingress}{INGRESS_PATH}");
    let probe = ingress_traffic(ingress, &url, Vec::new(), 1)?;
    warm_up(&probe, &format!("{url} (the ingress gateway)"), stopped)?;
    let first = traffic::send(&probe)?;
    println!("\nFrom this host through the ingress gateway: curl -s {url}");
    if let Some(o) = first.outcomes.first() {
        for line in o.body.lines() {
            println!("  {line}");
        }
    }
    println!("Sending {requests} requests to {url} from this host (ingress gateway → productpage → reviews)...");
    let t = ingress_traffic(ingress, &url, Vec::new(), requests)?;
    let split = traffic::split(&traffic::send(&t)?, split_by);
    print!("{}", traffic::format_split(&split));
    Ok(())
}

fn demo(
    opts: &UpOptions,
    record: &RunnerRecord,
    stopped: &dyn Fn() -> bool,
) -> Result<(), UpError> {
    let client = pick_client(record, opts.client.as_deref()).ok_or_else(|| {
        UpError::Timeout(format!(
            "client pod {:?} does not exist",
            opts.client.as_deref().unwrap_or("")
        ))
    })?;
    // Warm-up: the first request through a fresh path may race the last
    // endpoint update; wait (bounded) until one succeeds before measuring.
    let url = demo_url(opts, record);
    let probe = traffic_for(record, client, &url, Vec::new(), 1)?;
    warm_up(&probe, &format!("{url} from pod {}", client.name), stopped)?;
    println!(
        "Sending {} requests to {} from pod {}/{} ({})...",
        opts.requests,
        url,
        client.namespace,
        client.name,
        if client.sidecar {
            "with sidecar"
        } else {
            "no sidecar: via DNAT"
        }
    );
    let t = traffic_for(record, client, &url, Vec::new(), opts.requests)?;
    let split = traffic::split(&traffic::send(&t)?, &opts.split_by);
    print!("{}", traffic::format_split(&split));
    if let Some(ingress) = record.ingress() {
        ingress_demo(ingress, opts.requests, &opts.split_by, stopped)?;
    }
    Ok(())
}

/// `--url` as given; its default follows where productpage (or the first
/// Service) actually runs.
fn demo_url(opts: &UpOptions, record: &RunnerRecord) -> String {
    if opts.url == crate::admin::DEFAULT_URL {
        record.default_url(&opts.url)
    } else {
        opts.url.clone()
    }
}

fn print_keep_help(record: &RunnerRecord, opts: &UpOptions) {
    let client = pick_client(record, opts.client.as_deref());
    let name = if opts.name == crate::DEFAULT_NAME {
        String::new()
    } else {
        format!(" --name {}", opts.name)
    };
    println!("\nThe mesh keeps running. Try:");
    let url = demo_url(opts, record);
    if let Some(c) = client {
        println!("  ip netns exec {} curl -s {url}", c.netns);
        println!(
            "  ip netns exec {} curl -s -H 'end-user: jason' {url}",
            c.netns
        );
        println!(
            "  rudder mesh load{name} --from {}/{} {url} -n 1000",
            c.namespace, c.name
        );
    }
    if let Some(ingress) = record.ingress() {
        println!("  curl -s http://{ingress}{INGRESS_PATH}    # from this host, through the ingress gateway");
        println!("  rudder mesh load{name} --via-ingress -n 1000");
    }
    let variant = opts.dir.join("rules/reviews-50-50.yaml");
    let rule = if variant.exists() {
        variant.display().to_string()
    } else {
        "RULES.yaml".into()
    };
    println!("  rudder mesh apply{name} {rule}    # switch route rules live");
    println!("  rudder mesh load{name} -n 1000    # measure the split again");
    println!("  rudder mesh status{name}");
    println!("  rudder proxy-status{name}         # every proxy's sync state");
    if let Some(p) = record.pods.iter().find(|p| p.sidecar) {
        println!(
            "  rudder proxy-config clusters{name} {}/{}",
            p.namespace, p.name
        );
    }
    println!("  rudder mesh down{name}            # remove everything");
}
