//! The runner's own record of an instance, beside the harness's.
//!
//! The harness records what it creates (bridge, namespaces, pod processes) in
//! `<state root>/<name>/state.json`. The runner adds what only it knows:
//! its own PID, pilot's (pilot runs on the host, outside any pod), the
//! `/etc/netns/<netns>` directories it wrote for `ip netns exec`, the Services
//! and pods (for `status`, `load` and `apply`). It lives in
//! `/run/rudder-mesh/<name>.json` (tmpfs, gone after a reboot like the
//! namespaces), written atomically, and is removed last by `down`.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where runner records and logs live.
pub const RUNNER_ROOT: &str = "/run/rudder-mesh";

/// Reading or writing a record failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Filesystem error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a record.
    #[error("{path}: not a runner record: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// No such instance.
    #[error("no local mesh named {name:?} is recorded in {root} (see `rudder mesh status`)")]
    Missing {
        /// The name asked for.
        name: String,
        /// The record directory.
        root: PathBuf,
    },
}

/// A process the runner started on the host, identified by PID and kernel
/// start time (a recycled PID is never mistaken for it).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostProcess {
    /// PID.
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat`.
    pub start_time: u64,
}

impl HostProcess {
    /// The record of a live `pid`.
    pub fn of(pid: u32) -> HostProcess {
        let pid = pid as i32;
        HostProcess {
            pid,
            start_time: start_time(pid).unwrap_or(0),
        }
    }

    /// Whether it is still the process we started (and not a zombie).
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time) && !is_zombie(self.pid)
    }
}

fn stat(pid: i32) -> Option<String> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(s[s.rfind(')')? + 1..].to_string())
}

/// Kernel start time of `pid` (field 22 of `/proc/<pid>/stat`).
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid)?.split_whitespace().nth(19)?.parse().ok()
}

fn is_zombie(pid: i32) -> bool {
    stat(pid).is_some_and(|s| s.split_whitespace().next() == Some("Z"))
}

/// A Service as `status`, `load` and the hosts files see it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// ClusterIP.
    pub vip: Ipv4Addr,
    /// Service ports.
    pub ports: Vec<u16>,
}

/// A pod as `status` and `load` see it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PodEntry {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// IP.
    pub ip: Ipv4Addr,
    /// Network namespace name.
    pub netns: String,
    /// Whether it has a sidecar.
    pub sidecar: bool,
    /// Last readiness seen by the runner.
    pub ready: bool,
    /// A gateway pod: where the host reaches its plain-HTTP port
    /// (`<pod IP>:<port>`; the bridge routes the pod's address from the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<SocketAddr>,
    /// A stand-in for an external host (outside the mesh, unknown to pilot).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
}

/// The runner's record of one instance.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunnerRecord {
    /// Instance name.
    pub name: String,
    /// The harness instance directory (`<state root>/<name>`).
    pub state_dir: PathBuf,
    /// The runner process (alive while the mesh is up).
    pub runner: HostProcess,
    /// pilot, once started.
    pub pilot: Option<HostProcess>,
    /// pilot's xDS address.
    pub xds_addr: SocketAddr,
    /// pilot's monitoring address (127.0.0.1).
    pub monitoring_addr: SocketAddr,
    /// pilot's config directory.
    pub config_dir: PathBuf,
    /// `/etc/netns/<netns>` directories written (so `ip netns exec` sees the
    /// pod's hosts file).
    pub etc_netns: Vec<PathBuf>,
    /// Services.
    pub services: Vec<ServiceEntry>,
    /// Pods.
    pub pods: Vec<PodEntry>,
    /// Whether the mesh was started with `--keep`.
    pub keep: bool,
}

/// Path of instance `name`'s record under `root`.
pub fn record_path(root: &Path, name: &str) -> PathBuf {
    root.join(format!("{name}.json"))
}

/// Path of instance `name`'s runner log under `root` (`--keep` runs).
pub fn log_path(root: &Path, name: &str) -> PathBuf {
    root.join(format!("{name}.log"))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecordError + '_ {
    move |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl RunnerRecord {
    /// Writes the record atomically (temporary file + rename).
    pub fn save(&self, root: &Path) -> Result<(), RecordError> {
        fs::create_dir_all(root).map_err(io(root))?;
        let path = record_path(root, &self.name);
        let tmp = root.join(format!(".{}.json.tmp", self.name));
        let text = serde_json::to_string_pretty(self).expect("record serialises");
        fs::write(&tmp, text).map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Loads instance `name`'s record.
    pub fn load(root: &Path, name: &str) -> Result<RunnerRecord, RecordError> {
        let path = record_path(root, name);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RecordError::Missing {
                    name: name.into(),
                    root: root.into(),
                })
            }
            Err(e) => return Err(RecordError::Io { path, source: e }),
        };
        serde_json::from_str(&text).map_err(|source| RecordError::Parse { path, source })
    }

    /// Names of every recorded instance, sorted.
    pub fn names(root: &Path) -> Result<Vec<String>, RecordError> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => {
                return Err(RecordError::Io {
                    path: root.into(),
                    source: e,
                })
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(n) = name.strip_suffix(".json").filter(|n| !n.starts_with('.')) {
                out.push(n.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// The pod `name`.
    pub fn pod(&self, name: &str) -> Option<&PodEntry> {
        self.pods.iter().find(|p| p.name == name)
    }

    /// The pod a user names as `rudder mesh status` prints it
    /// (`namespace/name`), or `name.namespace`, `name`, or a unique prefix of
    /// a name (a Deployment's); the error lists the pods.
    pub fn find_pod(&self, wanted: &str) -> Result<&PodEntry, String> {
        let names: Vec<(String, String)> = self
            .pods
            .iter()
            .map(|p| (p.namespace.clone(), p.name.clone()))
            .collect();
        crate::ctl::find_name(&names, wanted).map(|i| &self.pods[i])
    }

    /// The demo URL for this mesh: bookinfo's productpage in whatever
    /// namespace it runs, else the first Service outside the system
    /// namespace, else `fallback`.
    pub fn default_url(&self, fallback: &str) -> String {
        let first = |s: &ServiceEntry| {
            s.ports
                .first()
                .map(|p| format!("http://{}.{}:{p}/", s.name, s.namespace))
        };
        self.services
            .iter()
            .find(|s| s.name == "productpage")
            .and_then(first)
            .or_else(|| {
                self.services
                    .iter()
                    .filter(|s| s.namespace != rudder_model::well_known::SYSTEM_NAMESPACE)
                    .find_map(first)
            })
            .unwrap_or_else(|| fallback.to_string())
    }

    /// The first gateway pod's host-reachable HTTP address.
    pub fn ingress(&self) -> Option<SocketAddr> {
        self.pods.iter().find_map(|p| p.ingress)
    }

    /// Resolves a host name as the pod `from`'s `/etc/hosts` does: `name`
    /// (same namespace), `name.ns`, `name.ns.svc`, `name.ns.svc.cluster.local`.
    pub fn resolve(&self, host: &str, from: &PodEntry) -> Option<&ServiceEntry> {
        let host = host.trim_end_matches('.');
        self.services.iter().find(|s| {
            let full = format!("{}.{}", s.name, s.namespace);
            (host == s.name && s.namespace == from.namespace)
                || host == full
                || host
                    .strip_prefix(&full)
                    .is_some_and(|rest| rest == ".svc" || rest == ".svc.cluster.local")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RunnerRecord {
        RunnerRecord {
            name: "demo".into(),
            state_dir: "/run/rudder-harness/demo".into(),
            runner: HostProcess::of(std::process::id()),
            pilot: None,
            xds_addr: "198.18.0.1:15010".parse().unwrap(),
            monitoring_addr: "127.0.0.1:15014".parse().unwrap(),
            config_dir: "/run/rudder-harness/demo/pilot".into(),
            etc_netns: vec![],
            services: vec![ServiceEntry {
                name: "productpage".into(),
                namespace: "bookinfo".into(),
                vip: Ipv4Addr::new(198, 19, 0, 10),
                ports: vec![9080],
            }],
            pods: vec![
                PodEntry {
                    name: "sleep-0".into(),
                    namespace: "default".into(),
                    ip: Ipv4Addr::new(198, 18, 0, 2),
                    netns: "rdr-demo-sleep-0".into(),
                    sidecar: false,
                    ready: true,
                    ingress: None,
                    external: false,
                },
                PodEntry {
                    name: "productpage-v1-0".into(),
                    namespace: "bookinfo".into(),
                    ip: Ipv4Addr::new(198, 18, 0, 3),
                    netns: "rdr-demo-productpage-v1-0".into(),
                    sidecar: true,
                    ready: true,
                    ingress: None,
                    external: false,
                },
                PodEntry {
                    name: "rudder-ingressgateway-0".into(),
                    namespace: "rudder-system".into(),
                    ip: Ipv4Addr::new(198, 18, 0, 4),
                    netns: "rdr-demo-rudder-ingressgateway-0".into(),
                    sidecar: false,
                    ready: true,
                    ingress: Some("198.18.0.4:8080".parse().unwrap()),
                    external: false,
                },
            ],
            keep: true,
        }
    }

    #[test]
    fn round_trips_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let r = record();
        r.save(dir.path()).unwrap();
        assert_eq!(RunnerRecord::load(dir.path(), "demo").unwrap(), r);
        assert_eq!(RunnerRecord::names(dir.path()).unwrap(), ["demo"]);
        let err = RunnerRecord::load(dir.path(), "other")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no local mesh named \"other\""), "{err}");
        assert!(r.runner.alive());
        assert_eq!(r.ingress(), Some("198.18.0.4:8080".parse().unwrap()));
        let old = r#"{"name": "a", "namespace": "b", "ip": "198.18.0.9", "netns": "n", "sidecar": false, "ready": true}"#;
        let entry: PodEntry = serde_json::from_str(old).unwrap();
        assert_eq!((entry.ingress, entry.external), (None, false));
    }

    #[test]
    fn pods_by_the_names_status_prints_and_urls_by_what_runs() {
        let r = record();
        for name in [
            "default/sleep-0",
            "sleep-0.default",
            "sleep-0",
            "sleep",
            "default/sleep",
        ] {
            assert_eq!(
                r.find_pod(name).map(|p| p.ip),
                Ok(Ipv4Addr::new(198, 18, 0, 2)),
                "{name}"
            );
        }
        assert!(r
            .find_pod("client/sleep")
            .unwrap_err()
            .contains("pods: default/sleep-0"));
        assert_eq!(
            r.default_url("http://x/"),
            "http://productpage.bookinfo:9080/",
            "the hint follows the namespace productpage runs in"
        );
    }

    #[test]
    fn resolves_names_like_the_pod_hosts_file() {
        let r = record();
        let (sleep, page) = (&r.pods[0], &r.pods[1]);
        assert!(
            r.resolve("productpage", sleep).is_none(),
            "short names only within the namespace"
        );
        assert!(r.resolve("productpage", page).is_some());
        for name in [
            "productpage.bookinfo",
            "productpage.bookinfo.svc",
            "productpage.bookinfo.svc.cluster.local",
        ] {
            assert_eq!(
                r.resolve(name, sleep).map(|s| s.vip),
                Some(Ipv4Addr::new(198, 19, 0, 10)),
                "{name}"
            );
        }
        assert!(r.resolve("productpage.bookinfo.svcx", sleep).is_none());
    }
}
