//! `pilot-load run`: pilot on one CPU, S emulated sidecars, the scenarios.
//!
//! ```text
//!  restore DIR ─► taskset -c 0 pilot serve --config-dir DIR ─► /ready
//!        ─► S sidecars connect at once (storm: until every one has ACKed CDS, EDS, LDS, RDS)
//!        ─► vs-change: rewrite routes/ns0/svc0.yaml (temp + rename), until every sidecar holds a new RDS "svc0.ns0.svc.cluster.local:9080"
//!        ─► churn: every 1/K s flip one pod's readiness (rename of its pods file), until every sidecar holds its new subset CLA
//!        ─► service-add: a new Service + pods, until every sidecar holds its CLA
//!        ─► /proc/<pilot>: RSS, VmHWM, CPU ─► report ─► restore DIR
//! ```
//!
//! Latency is measured from the instant the rename returned to the arrival
//! of the first version of the watched resource that differs from what the
//! sidecar held at that instant (unchanged resends do not count).

use std::{
    collections::HashSet,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use envoy_types::pb::envoy::config::core::v3::Node;
use rudder_model::{names::ClusterName, NodeId, NodeMetadata};
use serde_json::json;
use tokio::sync::watch;

use crate::{
    generate::{self, Shape, HTTP_PORT},
    sidecar::{self, Counters, Mode, State, Type},
};

/// A scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// All sidecars connect at once.
    Storm,
    /// One VirtualService changes.
    VsChange,
    /// Pods change readiness at a steady rate.
    Churn,
    /// New services appear.
    ServiceAdd,
}

impl Scenario {
    /// Parses `storm`, `vs-change`, `churn`, `service-add`.
    pub fn parse(s: &str) -> Result<Scenario, String> {
        Ok(match s {
            "storm" => Scenario::Storm,
            "vs-change" => Scenario::VsChange,
            "churn" => Scenario::Churn,
            "service-add" => Scenario::ServiceAdd,
            _ => {
                return Err(format!(
                    "unknown scenario {s:?} (storm, vs-change, churn, service-add)"
                ))
            }
        })
    }

    /// The name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Storm => "storm",
            Scenario::VsChange => "vs-change",
            Scenario::Churn => "churn",
            Scenario::ServiceAdd => "service-add",
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The generated mesh.
    pub dir: PathBuf,
    /// Emulated sidecars.
    pub sidecars: usize,
    /// SotW or Delta.
    pub mode: Mode,
    /// In order (the storm always runs first: it connects the sidecars).
    pub scenarios: Vec<Scenario>,
    /// The pilot binary.
    pub pilot: PathBuf,
    /// Pin pilot to CPU 0 (the caller checked the machine has two or more).
    pub pin: bool,
    /// VirtualService changes (one per second).
    pub vs_changes: usize,
    /// Pod changes per second.
    pub churn_rate: f64,
    /// Seconds of churn.
    pub churn_secs: f64,
    /// Services added (one per second).
    pub adds: usize,
    /// Longest wait for one scenario to reach every sidecar.
    pub timeout: Duration,
}

/// The latencies of one scenario.
#[derive(Clone, Debug, Default)]
pub struct ScenarioResult {
    /// Which.
    pub name: &'static str,
    /// Changes made (storm: 1).
    pub changes: usize,
    /// (change, sidecar) pairs that arrived, with their latency.
    pub latencies: Vec<Duration>,
    /// (change, sidecar) pairs that never arrived within the timeout.
    pub missed: usize,
    /// Wall time of the scenario.
    pub wall: Duration,
    /// pilot CPU seconds spent during it.
    pub pilot_cpu: f64,
    /// What the sidecars received and sent during it, per type.
    pub counters: [Counters; 4],
}

impl ScenarioResult {
    /// The `q` quantile (0..=1) of the latencies.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let mut v = self.latencies.clone();
        v.sort();
        if v.is_empty() {
            return None;
        }
        let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        Some(v[i])
    }
}

/// pilot's process figures from /proc.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStats {
    /// VmRSS, bytes.
    pub rss: u64,
    /// VmHWM (peak RSS), bytes.
    pub peak_rss: u64,
    /// utime + stime, seconds.
    pub cpu: f64,
}

/// Everything `run` measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// The mesh.
    pub shape: Shape,
    /// Sidecars.
    pub sidecars: usize,
    /// Mode.
    pub mode: Mode,
    /// Sidecars that ACKed a full config.
    pub configured: usize,
    /// Failed connection attempts (each retried, as Envoy does).
    pub refused: u64,
    /// Streams that ended before the run stopped them.
    pub broken: usize,
    /// The first few reasons streams broke.
    pub broken_reasons: Vec<String>,
    /// Per scenario.
    pub scenarios: Vec<ScenarioResult>,
    /// Whole run, per type.
    pub totals: [Counters; 4],
    /// pilot at the end.
    pub pilot: ProcStats,
    /// Whether pilot was pinned to CPU 0.
    pub pinned: bool,
    /// This process's CPU seconds and the run's wall time: when CPU is
    /// close to wall, the emulation itself (one thread) bounded the latencies.
    pub tool_cpu: f64,
    /// Wall time of the whole run.
    pub wall: Duration,
}

/// Reads pilot's RSS, peak RSS and CPU time.
pub fn proc_stats(pid: u32) -> ProcStats {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> u64 { fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0) };
    // USER_HZ is 100 on Linux.
    let cpu = (ticks(11) + ticks(12)) as f64 / 100.0;
    ProcStats {
        rss: kb("VmRSS:"),
        peak_rss: kb("VmHWM:"),
        cpu,
    }
}

/// pilot as a child process, killed when dropped.
pub struct Pilot {
    child: Child,
    /// Its ADS address.
    pub xds: SocketAddr,
    monitoring: SocketAddr,
    log: PathBuf,
}

impl Drop for Pilot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl Pilot {
    /// Starts `bin serve --config-dir dir` on free loopback ports, pinned
    /// to CPU 0 when `pin` and `taskset` exists (the `bool`: whether it is).
    pub fn start(bin: &Path, dir: &Path, pin: bool) -> anyhow::Result<(Pilot, bool)> {
        let xds = free_port()?;
        let monitoring = free_port()?;
        let log = std::env::temp_dir().join(format!("pilot-load-{}.log", std::process::id()));
        let out = std::fs::File::create(&log)?;
        let pinned = pin && Path::new("/usr/bin/taskset").exists();
        let mut cmd = if pinned {
            let mut c = Command::new("/usr/bin/taskset");
            c.args(["-c", "0"]).arg(bin);
            c
        } else {
            Command::new(bin)
        };
        cmd.arg("serve")
            .arg("--config-dir")
            .arg(dir)
            .args(["--xds-addr", &xds.to_string()])
            .args(["--monitoring-addr", &monitoring.to_string()])
            .env(
                "RUST_LOG",
                std::env::var("PILOT_LOG").unwrap_or("warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok((
            Pilot {
                child,
                xds,
                monitoring,
                log,
            },
            pinned,
        ))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn ready(&self) -> bool {
        let url = format!("http://{}/ready", self.monitoring);
        rudder_http::request(rudder_http::Method::GET, &url, Duration::from_secs(2))
            .await
            .is_ok_and(|r| r.status == 200)
    }

    /// Waits for `/ready`; fails with pilot's log if it exits or the time
    /// runs out.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "pilot exited ({status}); log: {}\n{}",
                    self.log.display(),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if self.ready().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "pilot not ready after {timeout:?}; log: {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The node id and metadata of emulated sidecar `s`'s pod, as the agent's
/// bootstrap sets them.
pub fn pod_node(shape: &Shape, s: usize, sidecars: usize) -> (NodeId, NodeMetadata) {
    let pod = shape.sidecar_pod(s, sidecars);
    let id = NodeId::sidecar(pod.ip, &pod.name, &pod.namespace);
    let md = NodeMetadata {
        namespace: pod.namespace.clone(),
        service_account: pod.service.clone(),
        workload_name: format!("{}-v{}", pod.service, pod.version),
        labels: [
            ("app".to_string(), pod.service.clone()),
            ("version".to_string(), format!("v{}", pod.version)),
        ]
        .into_iter()
        .collect(),
        instance_ips: vec![pod.ip],
        ..NodeMetadata::default()
    };
    (id, md)
}

/// The Envoy node of `id` and `md`, as Envoy sends it.
pub fn envoy_node(id: &NodeId, md: &NodeMetadata) -> Node {
    Node {
        id: id.to_string(),
        cluster: md.labels.get("app").cloned().unwrap_or_default(),
        metadata: Some(rudder_ads::node::json_to_struct(&md.to_json())),
        user_agent_name: "envoy".into(),
        ..Default::default()
    }
}

/// The Envoy node of emulated sidecar `s` ([`pod_node`]).
pub fn node(shape: &Shape, s: usize, sidecars: usize) -> Node {
    let (id, md) = pod_node(shape, s, sidecars);
    envoy_node(&id, &md)
}

/// The mesh's mutable parts: what the scenarios change, and how to undo it.
struct Mesh {
    dir: PathBuf,
    shape: Shape,
    /// Pods made not ready by churn.
    not_ready: HashSet<usize>,
}

impl Mesh {
    /// The pod churn change `j` flips (from the last pod backwards, so the
    /// first changes do not touch the sidecars' own pods when pods outnumber
    /// sidecars).
    fn churn_pod(&self, j: usize) -> usize {
        let pods = self.shape.pods();
        pods - 1 - (j % pods)
    }

    /// The watched key of pod `n`'s subset cluster.
    fn subset_key(&self, n: usize) -> String {
        let per_service = self.shape.versions * self.shape.replicas;
        let i = n / per_service;
        let p = self.shape.pod(n);
        let c = ClusterName::outbound(
            HTTP_PORT,
            Some(&format!("v{}", p.version)),
            &self.shape.host(i),
        );
        format!("eds:{c}")
    }

    /// The watched key of added service `k`.
    fn added_key(&self, k: usize) -> String {
        let i = self.shape.services + k;
        format!(
            "eds:{}",
            ClusterName::outbound(HTTP_PORT, None, &self.shape.host(i))
        )
    }

    fn flip(&mut self, n: usize) -> anyhow::Result<()> {
        if !self.not_ready.remove(&n) {
            self.not_ready.insert(n);
        }
        let i = n / (self.shape.versions * self.shape.replicas);
        let not_ready = &self.not_ready;
        generate::write_atomic(
            &generate::pods_path(&self.dir, &self.shape, i),
            &generate::pods_yaml(&self.shape, i, |m| !not_ready.contains(&m)),
        )
    }

    fn set_weight(&self, weight: u32) -> anyhow::Result<()> {
        generate::write_atomic(
            &generate::route_path(&self.dir, &self.shape, 0),
            &generate::virtual_service_yaml(&self.shape, 0, weight),
        )
    }

    fn add_service(&self, k: usize) -> anyhow::Result<()> {
        let i = self.shape.services + k;
        generate::write_atomic(
            &generate::pods_path(&self.dir, &self.shape, i),
            &generate::pods_yaml(&self.shape, i, |_| true),
        )?;
        generate::write_atomic(
            &generate::service_path(&self.dir, &self.shape, i),
            &generate::service_yaml(&self.shape, i),
        )
    }

    /// Puts back what the scenarios change: VirtualService weights, ready
    /// pods, no added services (also undoes an interrupted earlier run).
    fn restore(&mut self, churned: usize, adds: usize) -> anyhow::Result<()> {
        self.set_weight(90)?;
        let per_service = self.shape.versions * self.shape.replicas;
        let mut services: Vec<usize> = (0..churned.min(self.shape.pods()))
            .map(|j| self.churn_pod(j) / per_service)
            .collect();
        services.dedup();
        self.not_ready.clear();
        for i in services {
            generate::write_atomic(
                &generate::pods_path(&self.dir, &self.shape, i),
                &generate::pods_yaml(&self.shape, i, |_| true),
            )?;
        }
        for k in 0..adds.max(16) {
            let i = self.shape.services + k;
            let _ = std::fs::remove_file(generate::service_path(&self.dir, &self.shape, i));
            let _ = std::fs::remove_file(generate::pods_path(&self.dir, &self.shape, i));
        }
        Ok(())
    }
}

/// The sidecars of a run.
struct Fleet {
    states: Vec<Arc<Mutex<State>>>,
    /// Each sidecar's namespace, and whether the mesh is scoped (`generate
    /// --scoped`: a sidecar imports its own namespace and
    /// [`crate::generate::SHARED_NAMESPACE`]).
    namespaces: Vec<String>,
    scoped: bool,
}

/// The namespace of the service a watched key names
/// (`eds:outbound|9080|v1|svc.ns.svc.cluster.local` → `ns`).
fn key_namespace(key: &str) -> Option<&str> {
    key.rsplit('|').next()?.split('.').nth(1)
}

impl Fleet {
    fn totals(&self) -> [Counters; 4] {
        let mut t = [Counters::default(); 4];
        for s in &self.states {
            let s = s.lock().unwrap();
            for (a, b) in t.iter_mut().zip(s.counters.iter()) {
                a.add(b);
            }
        }
        t
    }

    /// The sidecars whose stream is not broken, with their index.
    fn live(&self) -> Vec<(usize, &Arc<Mutex<State>>)> {
        self.states
            .iter()
            .enumerate()
            .filter(|(_, s)| s.lock().unwrap().broken.is_none())
            .collect()
    }

    /// Whether sidecar `i` should receive a change of `key`: always, unless
    /// the mesh is scoped and the key's namespace is neither the sidecar's
    /// nor the shared one (then it rightly never arrives).
    fn expects(&self, i: usize, key: &str) -> bool {
        !self.scoped
            || key_namespace(key).is_none_or(|ns| {
                ns == self.namespaces[i] || ns == crate::generate::SHARED_NAMESPACE
            })
    }

    /// Waits until every live sidecar has received a change of each key
    /// after its time, or `timeout`; returns the latencies and the misses.
    async fn await_changes(
        &self,
        changes: &[(String, Instant)],
        timeout: Duration,
    ) -> (Vec<Duration>, usize) {
        let deadline = Instant::now() + timeout;
        loop {
            let live = self.live();
            let mut latencies = Vec::new();
            let mut missed = 0;
            for (i, s) in live {
                let s = s.lock().unwrap();
                for (key, t) in changes.iter().filter(|(k, _)| self.expects(i, k)) {
                    match s.change_after(key, *t) {
                        Some(at) => latencies.push(at - *t),
                        None => missed += 1,
                    }
                }
            }
            if missed == 0 || Instant::now() > deadline {
                return (latencies, missed);
            }
            // Latencies come from the receipts, not from this poll; polling
            // seldom leaves the one CPU to the streams.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn diff(after: &[Counters; 4], before: &[Counters; 4]) -> [Counters; 4] {
    let mut d = [Counters::default(); 4];
    for i in 0..4 {
        d[i] = Counters {
            responses: after[i].responses - before[i].responses,
            resources: after[i].resources - before[i].resources,
            removed: after[i].removed - before[i].removed,
            bytes: after[i].bytes - before[i].bytes,
            requests: after[i].requests - before[i].requests,
            request_bytes: after[i].request_bytes - before[i].request_bytes,
        };
    }
    d
}

/// Every key a scenario will watch, known before the sidecars connect,
/// so each sidecar has recorded what it held before a change.
fn watch_set(mesh: &Mesh, opts: &Options, churn_changes: usize) -> HashSet<String> {
    let mut watch_set = HashSet::new();
    if opts.scenarios.contains(&Scenario::Churn) {
        for j in 0..churn_changes {
            let key = mesh.subset_key(mesh.churn_pod(j));
            watch_set.insert(key.trim_start_matches("eds:").to_string());
        }
    }
    if opts.scenarios.contains(&Scenario::ServiceAdd) {
        for k in 0..opts.adds {
            let key = mesh.added_key(k);
            watch_set.insert(key.trim_start_matches("eds:").to_string());
        }
    }
    watch_set
}

/// Storm: every sidecar connects at once; the result times each one's full
/// configuration. Returns the sidecars' tasks too (they run until `stop`).
async fn storm(
    fleet: &Fleet,
    mesh: &Mesh,
    opts: &Options,
    xds: SocketAddr,
    watch_set: &Arc<HashSet<String>>,
    stop_rx: &watch::Receiver<bool>,
    pid: u32,
) -> (Vec<tokio::task::JoinHandle<()>>, ScenarioResult) {
    let cpu0 = proc_stats(pid).cpu;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (s, state) in fleet.states.iter().enumerate() {
        let cfg = sidecar::Config {
            addr: xds,
            mode: opts.mode,
            node: node(&mesh.shape, s, opts.sidecars),
            watch: watch_set.clone(),
            stop: stop_rx.clone(),
            connect_deadline: start + opts.timeout,
        };
        tasks.push(tokio::spawn(sidecar::run(cfg, state.clone())));
    }
    let deadline = start + opts.timeout;
    loop {
        let pending = fleet
            .states
            .iter()
            .filter(|s| {
                let s = s.lock().unwrap();
                s.configured_at.is_none() && s.broken.is_none()
            })
            .count();
        if pending == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut storm = ScenarioResult {
        name: Scenario::Storm.as_str(),
        changes: 1,
        wall: start.elapsed(),
        pilot_cpu: proc_stats(pid).cpu - cpu0,
        counters: fleet.totals(),
        ..Default::default()
    };
    for s in &fleet.states {
        match s.lock().unwrap().configured_at {
            Some(at) => storm.latencies.push(at - start),
            None => storm.missed += 1,
        }
    }
    (tasks, storm)
}

/// One change scenario (`Storm` has none): makes its changes and times
/// their arrival at every sidecar that should see them.
async fn change_scenario(
    sc: Scenario,
    mesh: &mut Mesh,
    fleet: &Fleet,
    opts: &Options,
    churn_changes: usize,
    pid: u32,
) -> anyhow::Result<Option<ScenarioResult>> {
    let before = fleet.totals();
    let cpu0 = proc_stats(pid).cpu;
    let start = Instant::now();
    let mut changes = Vec::new();
    match sc {
        Scenario::Storm => return Ok(None),
        Scenario::VsChange => {
            // Services with a VIP have their own route configuration.
            let key = format!(
                "rds:{}",
                rudder_model::names::service_route_name(&mesh.shape.host(0), HTTP_PORT)
            );
            for j in 0..opts.vs_changes {
                mesh.set_weight(if j % 2 == 0 { 80 } else { 90 })?;
                changes.push((key.clone(), Instant::now()));
                // Each change alone: wait for it to land before the next.
                fleet.await_changes(&changes[j..], opts.timeout).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        Scenario::Churn => {
            let period = Duration::from_secs_f64(1.0 / opts.churn_rate.max(0.001));
            for j in 0..churn_changes {
                let at = start + period * j as u32;
                tokio::time::sleep_until(at.into()).await;
                let n = mesh.churn_pod(j);
                mesh.flip(n)?;
                changes.push((mesh.subset_key(n), Instant::now()));
            }
        }
        Scenario::ServiceAdd => {
            for k in 0..opts.adds {
                mesh.add_service(k)?;
                changes.push((mesh.added_key(k), Instant::now()));
                fleet.await_changes(&changes[k..], opts.timeout).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
    let (latencies, missed) = fleet.await_changes(&changes, opts.timeout).await;
    Ok(Some(ScenarioResult {
        name: sc.as_str(),
        changes: changes.len(),
        latencies,
        missed,
        wall: start.elapsed(),
        pilot_cpu: proc_stats(pid).cpu - cpu0,
        counters: diff(&fleet.totals(), &before),
    }))
}

/// Runs pilot and the scenarios.
pub async fn run(opts: Options) -> anyhow::Result<Report> {
    let shape = Shape::read(&opts.dir)?;
    anyhow::ensure!(
        opts.sidecars >= 1 && opts.sidecars <= shape.pods(),
        "{} sidecars need as many pods; the mesh has {} (generate with --sidecars)",
        opts.sidecars,
        shape.pods()
    );
    let churn_changes = (opts.churn_rate * opts.churn_secs).round() as usize;
    let mut mesh = Mesh {
        dir: opts.dir.clone(),
        shape,
        not_ready: HashSet::new(),
    };
    mesh.restore(churn_changes, opts.adds)?;

    let run_start = Instant::now();
    let tool_cpu0 = proc_stats(std::process::id()).cpu;
    let (mut pilot, pinned) = Pilot::start(&opts.pilot, &opts.dir, opts.pin)?;
    pilot.wait_ready(opts.timeout).await?;
    let pid = pilot.pid();

    let watch_set = watch_set(&mesh, &opts, churn_changes);
    let watch_set = Arc::new(watch_set);
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut results = Vec::new();
    let fleet = Fleet {
        states: (0..opts.sidecars)
            .map(|_| Arc::new(Mutex::new(State::default())))
            .collect(),
        namespaces: (0..opts.sidecars)
            .map(|s| mesh.shape.sidecar_pod(s, opts.sidecars).namespace)
            .collect(),
        scoped: opts.dir.join(crate::generate::SIDECARS_FILE).exists(),
    };

    // Storm: all connect at once.
    let (tasks, storm) = storm(&fleet, &mesh, &opts, pilot.xds, &watch_set, &stop_rx, pid).await;
    // Let the storm's tail settle before changing anything.
    tokio::time::sleep(Duration::from_millis(500)).await;
    if opts.scenarios.contains(&Scenario::Storm) {
        results.push(storm);
    }

    for sc in &opts.scenarios {
        if let Some(r) = change_scenario(*sc, &mut mesh, &fleet, &opts, churn_changes, pid).await? {
            results.push(r);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    let pilot_stats = proc_stats(pid);
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    drop(pilot);
    mesh.restore(churn_changes, opts.adds)?;

    let mut report = Report {
        shape: mesh.shape,
        sidecars: opts.sidecars,
        mode: opts.mode,
        configured: 0,
        refused: 0,
        broken: 0,
        broken_reasons: Vec::new(),
        scenarios: results,
        totals: fleet.totals(),
        pilot: pilot_stats,
        pinned,
        tool_cpu: proc_stats(std::process::id()).cpu - tool_cpu0,
        wall: run_start.elapsed(),
    };
    report.tally(&fleet);
    Ok(report)
}

impl Report {
    /// Counts the sidecars configured, refused and broken (with the first
    /// five reasons).
    fn tally(&mut self, fleet: &Fleet) {
        for s in &fleet.states {
            let s = s.lock().unwrap();
            self.configured += usize::from(s.configured_at.is_some());
            self.refused += s.refused;
            if let Some(b) = &s.broken {
                self.broken += 1;
                if self.broken_reasons.len() < 5 {
                    self.broken_reasons.push(b.clone());
                }
            }
        }
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
        .unwrap_or_else(|| "-".into())
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

impl Report {
    /// The table.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let s = &self.shape;
        let _ = writeln!(
            o,
            "pilot-load: {} services x {} versions ({} pods) in {} namespaces; {} sidecars, {}; pilot {}",
            s.services,
            s.versions,
            s.pods(),
            s.namespaces,
            self.sidecars,
            self.mode.as_str(),
            if self.pinned { "pinned to CPU 0" } else { "not pinned" }
        );
        self.latency_rows(&mut o);
        self.received_rows(&mut o);
        let _ = writeln!(
            o,
            "sidecars: {} of {} configured; {} refused connection attempts; {} broken streams",
            self.configured, self.sidecars, self.refused, self.broken
        );
        for b in &self.broken_reasons {
            let _ = writeln!(o, "  broken: {b}");
        }
        let _ = writeln!(
            o,
            "pilot: RSS {:.1} MiB, peak RSS (VmHWM) {:.1} MiB, CPU {:.2} s",
            mib(self.pilot.rss),
            mib(self.pilot.peak_rss),
            self.pilot.cpu
        );
        let _ = writeln!(
            o,
            "pilot-load itself: CPU {:.2} s in {:.2} s wall",
            self.tool_cpu,
            self.wall.as_secs_f64()
        );
        o
    }

    /// One row per scenario: changes, latency quantiles, wall and pilot CPU.
    fn latency_rows(&self, o: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(
            o,
            "{:<12} {:>7} {:>8} {:>7} {:>9} {:>9} {:>9} {:>8} {:>9}",
            "scenario",
            "changes",
            "samples",
            "missed",
            "p50 ms",
            "p99 ms",
            "max ms",
            "wall s",
            "pilot cpu"
        );
        for r in &self.scenarios {
            let _ = writeln!(
                o,
                "{:<12} {:>7} {:>8} {:>7} {:>9} {:>9} {:>9} {:>8.2} {:>8.2}s",
                r.name,
                r.changes,
                r.latencies.len(),
                r.missed,
                ms(r.quantile(0.5)),
                ms(r.quantile(0.99)),
                ms(r.quantile(1.0)),
                r.wall.as_secs_f64(),
                r.pilot_cpu
            );
        }
    }

    /// What the sidecars received, per scenario and in total, by type.
    fn received_rows(&self, o: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(
            o,
            "{:<12} {:<4} {:>9} {:>10} {:>8} {:>12} {:>9} {:>10}",
            "received", "type", "responses", "resources", "removed", "MiB", "requests", "MiB sent"
        );
        let mut rows: Vec<(&str, &[Counters; 4])> = self
            .scenarios
            .iter()
            .map(|r| (r.name, &r.counters))
            .collect();
        rows.push(("total", &self.totals));
        for (name, c) in rows {
            for t in Type::ALL {
                let c = &c[t as usize];
                if c.responses == 0 && c.requests == 0 {
                    continue;
                }
                let _ = writeln!(
                    o,
                    "{:<12} {:<4} {:>9} {:>10} {:>8} {:>12.2} {:>9} {:>10.2}",
                    name,
                    t.short(),
                    c.responses,
                    c.resources,
                    c.removed,
                    mib(c.bytes),
                    c.requests,
                    mib(c.request_bytes)
                );
            }
        }
    }

    /// The same as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let counters = |c: &[Counters; 4]| {
            let mut m = serde_json::Map::new();
            for t in Type::ALL {
                let c = &c[t as usize];
                m.insert(
                    t.short().into(),
                    json!({
                        "responses": c.responses,
                        "resources": c.resources,
                        "removed": c.removed,
                        "bytes": c.bytes,
                        "requests": c.requests,
                        "request_bytes": c.request_bytes,
                    }),
                );
            }
            serde_json::Value::Object(m)
        };
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        json!({
            "services": self.shape.services,
            "versions": self.shape.versions,
            "namespaces": self.shape.namespaces,
            "pods": self.shape.pods(),
            "sidecars": self.sidecars,
            "mode": self.mode.as_str(),
            "pinned": self.pinned,
            "configured": self.configured,
            "refused": self.refused,
            "broken": self.broken,
            "broken_reasons": self.broken_reasons,
            "scenarios": self.scenarios.iter().map(|r| json!({
                "name": r.name,
                "changes": r.changes,
                "samples": r.latencies.len(),
                "missed": r.missed,
                "p50_s": secs(r.quantile(0.5)),
                "p99_s": secs(r.quantile(0.99)),
                "max_s": secs(r.quantile(1.0)),
                "wall_s": r.wall.as_secs_f64(),
                "pilot_cpu_s": r.pilot_cpu,
                "types": counters(&r.counters),
            })).collect::<Vec<_>>(),
            "types": counters(&self.totals),
            "pilot": {
                "rss_bytes": self.pilot.rss,
                "peak_rss_bytes": self.pilot.peak_rss,
                "cpu_s": self.pilot.cpu,
            },
            "tool_cpu_s": self.tool_cpu,
            "wall_s": self.wall.as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scoped_sidecar_expects_its_own_and_the_shared_namespace_only() {
        let key = |ns: &str| format!("eds:outbound|9080|v1|svc7.{ns}.svc.cluster.local");
        assert_eq!(key_namespace(&key("ns3")), Some("ns3"));
        let fleet = |scoped| Fleet {
            states: vec![Arc::default()],
            namespaces: vec!["ns3".into()],
            scoped,
        };
        let (scoped, flat) = (fleet(true), fleet(false));
        assert!(scoped.expects(0, &key("ns3")));
        assert!(scoped.expects(0, &key(crate::generate::SHARED_NAMESPACE)));
        assert!(!scoped.expects(0, &key("ns4")));
        assert!(flat.expects(0, &key("ns4")));
    }
}
