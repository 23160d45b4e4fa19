//! Keeping the mesh current while it runs: once a second, every pod's
//! readiness is checked (a container that exited is unready at once; a
//! failing probe turns a ready pod unready at its `failureThreshold`
//! consecutive failures, as kubelet does); a change rewrites that Pod in pilot's config dir
//! (pilot pushes new endpoints) and the DNAT rules of the unmeshed pods
//! (kube-proxy's part). An app container that exits is started again, as
//! kubelet does under `restartPolicy: Always`, after a back-off of 1 s
//! doubling up to 30 s; the pod is not ready meanwhile. The sidecar is not
//! restarted (its agent already restarts Envoy; a dead agent leaves the pod
//! not ready, said in the log).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rudder_harness::Pod;

use crate::dnat::{self, VipPort};
use crate::pilot::ConfigDir;
use crate::plan::MeshPlan;
use crate::plan::SIDECAR_CONTAINER_NAME;
use crate::pods::{restart_backoff, still_ready, Node, Running};
use crate::render::{pod_object, PodFacts};

/// A pod as the supervisor tracks it.
#[derive(Debug)]
pub struct LivePod {
    /// Index into [`MeshPlan::pods`].
    pub index: usize,
    /// The harness pod.
    pub pod: Pod,
    /// Long-running containers.
    pub running: Vec<Running>,
    /// Last readiness written.
    pub ready: Option<bool>,
    /// Whether the OUTPUT jumps to the DNAT chains exist (unmeshed pods).
    pub dnat_installed: bool,
    /// The DNAT rules last written.
    pub dnat_rules: String,
}

/// What the supervisor shares with the rest of the runner.
#[derive(Debug, Default)]
pub struct Shared {
    /// Pod name → ready.
    pub ready: Mutex<BTreeMap<String, bool>>,
    /// Problems seen (DNAT or config writes failing), latest last.
    pub problems: Mutex<Vec<String>>,
}

/// The supervisor's inputs.
#[derive(Debug)]
pub struct Supervisor {
    /// The plan.
    pub plan: Arc<MeshPlan>,
    /// Node facts.
    pub node: Node,
    /// pilot's config dir.
    pub config: ConfigDir,
    /// Pods started so far.
    pub pods: Vec<LivePod>,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// The trust bundle last copied to the pods (see [`Supervisor::propagate_root`]).
    pub root_seen: String,
}

/// The VIP ports of every Service with their ready endpoints, in a stable order.
pub fn vip_ports(plan: &MeshPlan, ready_ips: &BTreeMap<String, Ipv4Addr>) -> Vec<VipPort> {
    let mut out = Vec::new();
    for s in &plan.services {
        for p in &s.def.ports {
            out.push(VipPort {
                service: format!("{}/{}:{}", s.def.namespace, s.def.name, p.port),
                vip: s.vip,
                port: p.port,
                endpoints: plan.endpoints(s, p.port, ready_ips),
            });
        }
    }
    out
}

/// Starts again, once their back-off has passed, the app containers of `live`
/// that exited.
fn restart_exited(live: &mut LivePod, problems: &mut Vec<String>) {
    let pod = live.pod.name().to_string();
    for r in &mut live.running {
        let Some(status) = r.process.try_wait() else {
            continue;
        };
        let now = std::time::Instant::now();
        match r.restart_at {
            None if r.plan.name == SIDECAR_CONTAINER_NAME => {
                if !r.given_up {
                    problems.push(format!("pod {pod}: the sidecar exited ({status}); the pod stays not ready (sidecars are not restarted)"));
                    r.given_up = true;
                }
            }
            None => {
                let wait = restart_backoff(r.restarts);
                tracing::warn!(%pod, container = %r.plan.name, %status, restarts = r.restarts, ?wait, "container exited; restarting after a back-off");
                r.restart_at = Some(now + wait);
            }
            Some(at) if now >= at => match live.pod.spawn(r.spec.clone()) {
                Ok(process) => {
                    // The old handle stops what is left of its process group
                    // (its PID names that group: unless the new process got
                    // the same PID back).
                    let old = std::mem::replace(&mut r.process, process);
                    if old.pid() == r.process.pid() {
                        old.detach();
                    } else {
                        old.stop();
                    }
                    r.restarts += 1;
                    r.restart_at = None;
                    tracing::info!(%pod, container = %r.plan.name, pid = r.process.pid(), restarts = r.restarts, "container restarted");
                }
                Err(e) => {
                    r.restart_at = Some(now + restart_backoff(r.restarts + 1));
                    problems.push(format!("pod {pod}: restarting {}: {e}", r.plan.name));
                }
            },
            Some(_) => {}
        }
    }
}

impl Supervisor {
    /// kubelet's part for ConfigMap `rudder-ca-root-cert`: when pilot's
    /// `root-cert.pem` changed (a plug-in CA rotation), every pod's copy is
    /// replaced atomically (write then rename), so agents see the new bundle.
    pub fn propagate_root(&mut self) {
        let file = self
            .node
            .identity
            .ca_dir
            .join(rudder_ca::root::ROOT_CERT_FILE);
        let Ok(now) = std::fs::read_to_string(&file) else {
            return;
        };
        if now == self.root_seen || now.trim().is_empty() {
            return;
        }
        for live in &self.pods {
            let plan = &self.plan.pods[live.index];
            for v in &plan.volumes {
                if v.kind != crate::container::VolumeKind::RootCert {
                    continue;
                }
                let dir = live.pod.dir().join("volumes").join(&v.name);
                let target = dir.join(rudder_injector::sidecar::ROOT_CERT_FILE);
                let tmp = dir.join(".root-cert.pem.tmp");
                let done = std::fs::write(&tmp, &now)
                    .and_then(|_| {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
                    })
                    .and_then(|_| std::fs::rename(&tmp, &target));
                if let Err(error) = done {
                    self.problem(format!(
                        "pod {}: updating {}: {error}",
                        live.pod.name(),
                        target.display()
                    ));
                }
            }
        }
        tracing::info!(file = %file.display(), roots = now.matches("BEGIN CERTIFICATE").count(), "mesh trust bundle changed: copied to every pod");
        self.root_seen = now;
    }

    /// One round: probe every pod, rewrite what changed.
    pub fn tick(&mut self) {
        self.propagate_root();
        let mut changed = false;
        let mut problems = Vec::new();
        for live in &mut self.pods {
            restart_exited(live, &mut problems);
            let running = live.running.iter().all(|r| r.process.try_wait().is_none());
            let was_ready = live.ready == Some(true);
            let mut ready = !live.running.is_empty();
            let mut why = String::new();
            for r in &mut live.running {
                // Every container is probed (no short cut): each keeps its count.
                if !still_ready(&live.pod, r, was_ready) {
                    ready = false;
                    if why.is_empty() {
                        why = match r.probe_failures {
                            0 => format!("container {} is not running", r.plan.name),
                            n => format!("container {}: {n} failed probes in a row", r.plan.name),
                        };
                    }
                }
            }
            if live.ready != Some(ready) {
                let plan = &self.plan.pods[live.index];
                if plan.external {
                    // Outside the mesh: pilot never hears of it.
                    live.ready = Some(ready);
                    self.shared
                        .ready
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(plan.name.clone(), ready);
                    continue;
                }
                let facts = PodFacts {
                    plan,
                    ip: live.pod.ip(),
                    host_ip: self.node.host_ip,
                    node: &self.node.name,
                };
                let file = format!("pod.{}.{}.json", plan.namespace, plan.name);
                match self
                    .config
                    .write("pods", &file, &pod_object(&facts, running, ready))
                {
                    Ok(()) => {
                        if ready {
                            tracing::info!(pod = %plan.name, "pod ready");
                        } else if !was_ready {
                            tracing::info!(pod = %plan.name, %why, "pod not ready yet");
                        } else {
                            tracing::warn!(pod = %plan.name, %why, "pod turned unready: its endpoints leave the mesh");
                        }
                        live.ready = Some(ready);
                        changed = true;
                    }
                    Err(e) => problems.push(e.to_string()),
                }
                self.shared
                    .ready
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(plan.name.clone(), ready);
            }
        }
        let ready_ips: BTreeMap<String, Ipv4Addr> = self
            .pods
            .iter()
            .filter(|l| l.ready == Some(true))
            .map(|l| (self.plan.pods[l.index].name.clone(), l.pod.ip()))
            .collect();
        let ports = vip_ports(&self.plan, &ready_ips);
        for live in self.pods.iter_mut().filter(|l| {
            let plan = &self.plan.pods[l.index];
            !plan.meshed() && !plan.external
        }) {
            let rules = dnat::render(&ports, false);
            if !changed && live.dnat_installed && rules == live.dnat_rules {
                continue;
            }
            match dnat::apply(
                live.pod.name(),
                &live.pod.netns_path(),
                &dnat::render(&ports, !live.dnat_installed),
            ) {
                Ok(()) => {
                    live.dnat_installed = true;
                    live.dnat_rules = rules;
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        for p in problems {
            self.problem(p);
        }
    }

    fn problem(&self, message: String) {
        tracing::warn!(%message, "supervisor");
        let mut p = self
            .shared
            .problems
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        p.push(message);
        if p.len() > 50 {
            p.remove(0);
        }
    }

    /// Runs [`Supervisor::tick`] every second until `stop`; hands the pods back.
    pub fn spawn(mut self, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<LivePod>> {
        std::thread::Builder::new()
            .name("supervisor".into())
            .spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    self.tick();
                    for _ in 0..10 {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                self.pods
            })
            .expect("spawning a thread")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;
    use crate::plan::{local_values, plan};

    #[test]
    fn restart_back_off_doubles_up_to_thirty_seconds() {
        let waits: Vec<u64> = (0..8).map(|n| restart_backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn vip_ports_list_every_service_port_with_ready_endpoints() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}, {port: 81}]}\n---\n\
            apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\nspec: {containers: [{name: c, command: [x]}]}\n";
        let mut m = Manifest::default();
        m.add_text("t.yaml", yaml).unwrap();
        let mesh = plan(
            &m,
            "198.19.0.0/16".parse().unwrap(),
            &local_values(Ipv4Addr::new(198, 18, 0, 1)),
        )
        .unwrap();
        let ready: BTreeMap<String, Ipv4Addr> =
            [("web".to_string(), Ipv4Addr::new(198, 18, 0, 2))].into();
        let ports = vip_ports(&mesh, &ready);
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].endpoints, [(Ipv4Addr::new(198, 18, 0, 2), 8080)]);
        assert_eq!(ports[1].service, "default/web:81");
        assert!(vip_ports(&mesh, &BTreeMap::new())[0].endpoints.is_empty());
    }
}
