//! The commands that act on a running (or crashed) instance: `down`,
//! `status`, `apply`/`delete` and `load`.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rudder_harness::{Net, StateRecord};

use crate::manifest;
use crate::pilot::{self, stop_host_process, ConfigDir};
use crate::record::{log_path, record_path, HostProcess, PodEntry, RecordError, RunnerRecord};
use crate::runner::{ingress_traffic, pick_client, traffic_for, UpError, INGRESS_PATH};
use crate::traffic::{self, Split};

/// What `down` removed, in plain words.
pub fn down(runner_root: &Path, state_root: &Path, name: &str) -> Result<Vec<String>, UpError> {
    let mut done = Vec::new();
    let record = match RunnerRecord::load(runner_root, name) {
        Ok(r) => Some(r),
        Err(RecordError::Missing { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(r) = &record {
        if r.runner.alive() {
            done.push(stop_runner(r.runner));
        }
        // Whatever a crashed runner left behind.
        if let Some(p) = r.pilot.filter(|p| p.alive()) {
            stop_host_process(p, None);
            done.push(format!("stopped pilot (pid {})", p.pid));
        }
        for dir in r.etc_netns.iter().filter(|d| d.exists()) {
            std::fs::remove_dir_all(dir).map_err(|source| UpError::Io {
                path: dir.clone(),
                source,
            })?;
            done.push(format!("removed {}", dir.display()));
        }
        let _ = std::fs::remove_dir("/etc/netns"); // only when empty
    }
    let state_dir = state_root.join(name);
    if StateRecord::path(&state_dir).exists() {
        // Ask every recorded pod process to stop at once (agents drain in
        // parallel), then let the sweep remove stragglers and everything else.
        if let Ok(state) = StateRecord::load(&state_dir) {
            stop_pod_processes(&state);
        }
        Net::sweep(&state_dir)?;
        done.push(format!(
            "swept {} (namespaces, links, processes, Envoy shared memory)",
            state_dir.display()
        ));
    }
    for f in [record_path(runner_root, name), log_path(runner_root, name)] {
        if f.exists() {
            std::fs::remove_file(&f).map_err(|source| UpError::Io {
                path: f.clone(),
                source,
            })?;
        }
    }
    if record.is_none() && done.is_empty() {
        return Err(RecordError::Missing {
            name: name.into(),
            root: runner_root.into(),
        }
        .into());
    }
    Ok(done)
}

/// Asks a live runner to stop (it tears down what it made), killing it
/// after 60 s; says which.
fn stop_runner(runner: HostProcess) -> String {
    // The runner tears down what it made when told to stop.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(runner.pid),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while runner.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if runner.alive() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(runner.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        format!("killed the runner (pid {}) after 60s", runner.pid)
    } else {
        format!("stopped the runner (pid {})", runner.pid)
    }
}

/// Asks every recorded pod process to stop at once (agents drain in
/// parallel) and waits up to 7 s for them.
fn stop_pod_processes(state: &StateRecord) {
    let ours: Vec<HostProcess> = state
        .processes
        .iter()
        .map(|p| HostProcess {
            pid: p.pid,
            start_time: p.start_time,
        })
        .filter(HostProcess::alive)
        .collect();
    for p in &ours {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(p.pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(7);
    while ours.iter().any(HostProcess::alive) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `status`: every instance, its pods and processes, pilot's proxies.
pub fn status(
    runner_root: &Path,
    state_root: &Path,
    only: Option<&str>,
) -> Result<String, UpError> {
    let mut out = String::new();
    let names = RunnerRecord::names(runner_root)?;
    for name in names
        .iter()
        .filter(|n| only.is_none_or(|o| o == n.as_str()))
    {
        let r = RunnerRecord::load(runner_root, name)?;
        let state = StateRecord::load(&r.state_dir).ok();
        let runner = if r.runner.alive() {
            format!("running (pid {})", r.runner.pid)
        } else {
            "NOT running (crashed?)".into()
        };
        let _ = writeln!(out, "mesh {name}: runner {runner}");
        let pilot = match r.pilot {
            Some(p) if p.alive() => format!(
                "running (pid {}), xDS {} (TLS, sidecars) and {} (plaintext), monitoring http://{}",
                p.pid,
                std::net::SocketAddr::new(r.xds_addr.ip(), rudder_model::well_known::XDS_TLS_PORT),
                r.xds_addr,
                r.monitoring_addr
            ),
            Some(_) => "NOT running".into(),
            None => "not started".into(),
        };
        let _ = writeln!(out, "  pilot: {pilot}");
        let conns = pilot::syncz(r.monitoring_addr).unwrap_or_default();
        let _ = writeln!(
            out,
            "  pilot's connected proxies: {} ({} in sync)",
            conns.len(),
            conns.iter().filter(|c| c.in_sync).count()
        );
        for p in &r.pods {
            pod_status(&mut out, p, state.as_ref(), &conns);
        }
        if let Some(addr) = r.ingress() {
            let _ = writeln!(
                out,
                "  ingress: http://{addr} (from this host: curl -s http://{addr}{INGRESS_PATH}; rudder mesh load --via-ingress)"
            );
        }
        let rules = ConfigDir(r.config_dir.clone()).rules();
        let _ = writeln!(
            out,
            "  rules: {}",
            if rules.is_empty() {
                "none".into()
            } else {
                rules.join(", ")
            }
        );
    }
    for dir in Net::instances(state_root)? {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !names.contains(&name) && only.is_none_or(|o| o == name) {
            let _ = writeln!(out, "leftover harness instance {name} in {} (remove it: rudder mesh down --name {name})", dir.display());
        }
    }
    if out.is_empty() {
        out.push_str("No local mesh is running.\n");
    }
    Ok(out)
}

/// One pod's line of `status`: address, sidecar, readiness, live processes
/// (from the harness record) and whether pilot has its proxy.
fn pod_status(
    out: &mut String,
    p: &PodEntry,
    state: Option<&StateRecord>,
    conns: &[pilot::Connected],
) {
    let procs: Vec<bool> = state
        .iter()
        .flat_map(|s| s.processes.iter().filter(|x| x.pod == p.name))
        .map(|x| crate::record::start_time(x.pid) == Some(x.start_time))
        .collect();
    let alive = procs.iter().filter(|a| **a).count();
    let connected = conns
        .iter()
        .any(|c| c.node_id.contains(&format!("~{}~", p.ip)));
    let _ = writeln!(
        out,
        "  {}/{}  {}  {}  ready: {}  processes: {alive}/{} alive{}",
        p.namespace,
        p.name,
        p.ip,
        match (p.sidecar, p.ingress.is_some(), p.external) {
            (true, _, _) => "sidecar: yes",
            (_, true, _) => "gateway",
            (_, _, true) => "external (outside the mesh)",
            _ => "sidecar: no",
        },
        if p.ready { "yes" } else { "no" },
        procs.len(),
        if connected {
            "  (connected to pilot)"
        } else {
            ""
        }
    );
}

/// `apply`: validates the files with pilot, then writes their objects into
/// the running instance's config dir (pilot's watch picks them up).
pub fn apply(
    runner_root: &Path,
    name: &str,
    files: &[PathBuf],
    pilot_bin: &Path,
    delete: bool,
) -> Result<Vec<String>, UpError> {
    let r = RunnerRecord::load(runner_root, name)?;
    let rules = manifest::load_rules(files)?;
    let config = ConfigDir(r.config_dir.clone());
    if !delete {
        // Validate in context (the mesh's Services and the rules that stay),
        // so references to hosts and subsets resolve; report on the new files.
        let replaced: Vec<String> = rules.iter().map(|r| r.file_name()).collect();
        let mut all = config.files("platform");
        all.extend(config.files("rules").into_iter().filter(|f| {
            f.file_name()
                .is_none_or(|n| !replaced.iter().any(|r| n == r.as_str()))
        }));
        all.extend(files.iter().cloned());
        let warnings = pilot::validate(pilot_bin, &all)?;
        let mine = |l: &&str| files.iter().any(|f| l.contains(&*f.to_string_lossy()));
        for w in warnings.lines().filter(mine) {
            println!("pilot validate: {w}");
        }
    }
    let mut out = Vec::new();
    for rule in &rules {
        let what = format!("{} {}/{}", rule.kind, rule.namespace, rule.name);
        if delete {
            let was = config.delete_rule(rule)?;
            out.push(if was {
                format!("deleted {what}")
            } else {
                format!("{what} was not applied")
            });
        } else {
            config.write_rule(rule)?;
            out.push(format!("applied {what}"));
        }
    }
    Ok(out)
}

/// `load`: sends `count` requests from a client pod of a running instance.
pub fn load(
    runner_root: &Path,
    name: &str,
    from: From<'_>,
    url: Option<&str>,
    headers: &[String],
    count: usize,
    split_by: &str,
) -> Result<Split, UpError> {
    let r = RunnerRecord::load(runner_root, name)?;
    let headers = headers
        .iter()
        .map(|h| traffic::parse_header(h))
        .collect::<Result<Vec<_>, _>>()?;
    let t = match from {
        From::Pod(client) => {
            let c = match client {
                Some(wanted) => r
                    .find_pod(wanted)
                    .map_err(|e| UpError::Timeout(format!("mesh {name}: {e}")))?,
                None => pick_client(&r, None)
                    .ok_or_else(|| UpError::Timeout(format!("mesh {name} has no pods")))?,
            };
            let default = r.default_url(DEFAULT_URL);
            traffic_for(&r, c, url.unwrap_or(&default), headers, count)?
        }
        From::Ingress => {
            let ingress = r.ingress().ok_or_else(|| {
                UpError::Timeout(format!(
                    "mesh {name} has no ingress gateway (a Deployment running `agent router` or labelled istio: ingressgateway)"
                ))
            })?;
            let default = format!("http://{ingress}{INGRESS_PATH}");
            ingress_traffic(ingress, url.unwrap_or(&default), headers, count)?
        }
    };
    Ok(traffic::split(&traffic::send(&t)?, split_by))
}

/// The default URL of `load` from a client pod (bookinfo's productpage).
pub const DEFAULT_URL: &str = "http://productpage.default:9080/";

/// Where `load` sends from.
#[derive(Clone, Copy, Debug)]
pub enum From<'a> {
    /// A client pod (default: as [`pick_client`] picks).
    Pod(Option<&'a str>),
    /// This host, to the mesh's ingress gateway.
    Ingress,
}
