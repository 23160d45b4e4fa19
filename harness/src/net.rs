//! One harness instance: a bridge, its pods, and the record of what was made.
//!
//! ```text
//!   host netns                                   pod netns "rdr-<name>-a"
//!   ┌───────────────────────────────┐            ┌────────────────────────────┐
//!   │ bridge rdr-<name>             │  veth      │ eth0 198.18.n.2/24         │
//!   │  198.18.n.1/24 (host address) ├────────────┤ route 198.18.n.0/24 link   │
//!   │  forwarding=0, no NAT         │ rv<tag>-2  │ route 198.19.n.0/24 via .1 │
//!   └───────────────────────────────┘            │ no default route           │
//!                                                └────────────────────────────┘
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;

use crate::cidr::Cidr;
use crate::cmd::{self, CmdError};
use crate::pod::Pod;
use crate::process::{kill_netns_members, stop_group};
use crate::shared::Inner;
use crate::state::{self, PodRecord, StateError, StateRecord};

/// Default state root: tmpfs, cleared on reboot like `/run/netns`.
pub const DEFAULT_STATE_ROOT: &str = "/run/rudder-harness";
/// Default pod CIDR of a runner instance.
pub const DEFAULT_POD_CIDR: &str = "198.18.0.0/16";
/// Default service (VIP) CIDR of a runner instance.
pub const DEFAULT_SERVICE_CIDR: &str = "198.19.0.0/16";

/// Creating, extending or removing an instance failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A name is unusable (which name, and why).
    #[error("invalid {what} name {name:?}: {reason}")]
    Name {
        /// "instance" or "pod".
        what: &'static str,
        /// The rejected name.
        name: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// The CIDRs are unusable together.
    #[error("{0}")]
    Cidr(String),
    /// Another instance (or the host) already uses the name, bridge or a CIDR.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The pod CIDR has no free address left.
    #[error("pod CIDR {0} is full")]
    Full(Cidr),
    /// A system tool failed.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// The state directory could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The instance was already torn down.
    #[error("instance {0} has been torn down")]
    TornDown(String),
    /// Teardown or sweep could not remove everything (each failure listed).
    #[error("teardown of {name} left things behind: {}", problems.join("; "))]
    Teardown {
        /// Instance name.
        name: String,
        /// One message per failed removal.
        problems: Vec<String>,
    },
}

/// Parameters of an instance.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Instance name: `[a-z0-9-]`, 1 to 24 characters (it prefixes namespace names).
    pub name: String,
    /// Pod CIDR; its first address is the bridge's host address.
    pub pod_cidr: Cidr,
    /// Service CIDR (ClusterIP VIPs), routed in pods via the host address.
    pub service_cidr: Cidr,
    /// Directory holding one state directory per instance.
    pub state_root: PathBuf,
}

impl NetConfig {
    /// An instance with the runner's default CIDRs and state root.
    pub fn new(name: impl Into<String>) -> NetConfig {
        NetConfig {
            name: name.into(),
            pod_cidr: DEFAULT_POD_CIDR.parse().expect("valid default"),
            service_cidr: DEFAULT_SERVICE_CIDR.parse().expect("valid default"),
            state_root: PathBuf::from(DEFAULT_STATE_ROOT),
        }
    }

    /// A test instance: name `<label>-<random>`, pod CIDR `198.18.<n>.0/24` and
    /// service CIDR `198.19.<n>.0/24` with a random `n`. [`Net::for_test`]
    /// retries with fresh values when another instance holds them.
    pub fn for_test(label: &str) -> NetConfig {
        let r = random();
        let n = (r % 254 + 1) as u8;
        let label: String = label
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(12)
            .collect();
        NetConfig {
            name: format!("{}-{:05x}", label.to_ascii_lowercase(), (r >> 8) & 0xfffff),
            pod_cidr: Cidr::new(Ipv4Addr::new(198, 18, n, 0), 24).expect("valid"),
            service_cidr: Cidr::new(Ipv4Addr::new(198, 19, n, 0), 24).expect("valid"),
            state_root: PathBuf::from(DEFAULT_STATE_ROOT),
        }
    }
}

/// A random 64-bit value (std's per-process random hasher keys, mixed with the
/// time and PID); enough to keep parallel tests apart, conflicts are still
/// checked.
fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// A harness instance: bridge + pods + state directory. Dropping it tears
/// everything down (also while a test panics).
#[derive(Debug)]
pub struct Net {
    inner: Arc<Inner>,
    name: String,
    bridge: String,
    pod_cidr: Cidr,
    service_cidr: Cidr,
}

fn check_name(what: &'static str, name: &str, max: usize) -> Result<(), NetError> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        let reason = if what == "pod" {
            "use 1 to 40 characters of a-z, 0-9 and '-', not starting with '-'"
        } else {
            "use 1 to 24 characters of a-z, 0-9 and '-', not starting with '-'"
        };
        Err(NetError::Name {
            what,
            name: name.to_string(),
            reason,
        })
    }
}

/// Bridge name (≤ 15 chars): readable when the instance name is short.
fn bridge_name(name: &str, tag: &str) -> String {
    if name.len() <= 11 {
        format!("rdr-{name}")
    } else {
        format!("rdr-{tag}")
    }
}

/// Whether a route destination as `ip route` prints it (`a.b.c.d/len`, any
/// length) shares addresses with `ours`.
fn route_overlaps(dest: &str, ours: &Cidr) -> bool {
    let Some((addr, len)) = dest.split_once('/') else {
        return false;
    };
    let (Ok(addr), Ok(len)) = (addr.parse::<Ipv4Addr>(), len.parse::<u32>()) else {
        return false;
    };
    if len == 0 || len > 32 {
        return false;
    }
    let mask = u32::MAX << (32 - len);
    let network = Ipv4Addr::from(u32::from(addr) & mask);
    ours.contains(network) || (u32::from(ours.network()) & mask) == u32::from(network)
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

impl Net {
    /// Creates the instance: records it, then makes the bridge with the pod
    /// CIDR's first address, forwarding off.
    pub fn create(config: NetConfig) -> Result<Net, NetError> {
        check_name("instance", &config.name, 24)?;
        if config.pod_cidr.overlaps(&config.service_cidr) {
            return Err(NetError::Cidr(format!(
                "pod CIDR {} and service CIDR {} overlap",
                config.pod_cidr, config.service_cidr
            )));
        }
        let tag = format!("{:06x}", {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            h.write(config.name.as_bytes());
            h.finish() & 0xff_ffff
        });
        let bridge = bridge_name(&config.name, &tag);
        let dir = config.state_root.join(&config.name);
        let record = StateRecord {
            name: config.name.clone(),
            tag: tag.clone(),
            bridge: Some(bridge.clone()),
            pod_cidr: config.pod_cidr,
            service_cidr: config.service_cidr,
            pods: Vec::new(),
            processes: Vec::new(),
            base_ids: Vec::new(),
            base_id_files: Vec::new(),
        };
        {
            let _lock = state::lock_root(&config.state_root)?;
            Self::check_conflicts(&config, &tag, &bridge, &dir)?;
            state::make_dir(&dir.join("pods"))?;
            record.save(&dir)?;
        }
        let net = Net {
            inner: Arc::new(Inner::new(dir, record)),
            name: config.name.clone(),
            bridge: bridge.clone(),
            pod_cidr: config.pod_cidr,
            service_cidr: config.service_cidr,
        };
        // From here on, dropping `net` on error removes what was made.
        if let Err(e) = cmd::run("ip", &["link", "add", &bridge, "type", "bridge"]) {
            net.inner.update(|s| s.bridge = None)?;
            return Err(e.into());
        }
        let forwarding = format!("/proc/sys/net/ipv4/conf/{bridge}/forwarding");
        fs::write(&forwarding, "0").map_err(state::io_err(Path::new(&forwarding)))?;
        let host = format!(
            "{}/{}",
            config.pod_cidr.first_host(),
            config.pod_cidr.prefix()
        );
        cmd::run("ip", &["addr", "add", &host, "dev", &bridge])?;
        cmd::run("ip", &["link", "set", &bridge, "up"])?;
        tracing::info!(instance = %net.name, %bridge, pod_cidr = %config.pod_cidr, service_cidr = %config.service_cidr, "net created");
        Ok(net)
    }

    /// [`Net::create`] with [`NetConfig::for_test`], retrying on conflicts.
    pub fn for_test(label: &str) -> Result<Net, NetError> {
        let mut last = None;
        for _ in 0..16 {
            match Net::create(NetConfig::for_test(label)) {
                Err(NetError::Conflict(c)) => last = Some(c),
                other => return other,
            }
        }
        Err(NetError::Conflict(last.unwrap_or_default()))
    }

    fn check_conflicts(
        config: &NetConfig,
        tag: &str,
        bridge: &str,
        dir: &Path,
    ) -> Result<(), NetError> {
        if dir.exists() {
            return Err(NetError::Conflict(format!(
                "instance {} already has state in {} (tear it down or run a sweep)",
                config.name,
                dir.display()
            )));
        }
        if link_exists(bridge) {
            return Err(NetError::Conflict(format!(
                "a link named {bridge} already exists on the host"
            )));
        }
        for (other_dir, other) in state::list_instances(&config.state_root)? {
            let clash = if other.tag == tag {
                Some(format!("interface tag {tag}"))
            } else if other.pod_cidr.overlaps(&config.pod_cidr)
                || other.service_cidr.overlaps(&config.pod_cidr)
            {
                Some(format!("pod CIDR {}", config.pod_cidr))
            } else if other.pod_cidr.overlaps(&config.service_cidr)
                || other.service_cidr.overlaps(&config.service_cidr)
            {
                Some(format!("service CIDR {}", config.service_cidr))
            } else {
                None
            };
            if let Some(what) = clash {
                return Err(NetError::Conflict(format!(
                    "{what} is used by instance in {}",
                    other_dir.display()
                )));
            }
        }
        // Routes the host already has (other software, or a leftover) count too.
        let routes = cmd::stdout("ip", &["-4", "-o", "route", "show", "table", "all"])?;
        for dest in routes
            .lines()
            .filter_map(|l| l.split_whitespace().find(|w| w.contains('/')))
        {
            for ours in [config.pod_cidr, config.service_cidr] {
                if route_overlaps(dest, &ours) {
                    return Err(NetError::Conflict(format!(
                        "host route {dest} overlaps {ours}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Adds a pod: a network namespace `rdr-<instance>-<pod>` with `lo` up, a
    /// veth pair (host side on the bridge, pod side `eth0`), the next free
    /// address of the pod CIDR, an on-link route to the pod CIDR, a route to
    /// the service CIDR via the host address, and no default route.
    pub fn add_pod(&self, name: &str) -> Result<Pod, NetError> {
        check_name("pod", name, 40)?;
        if self.inner.is_torn_down() {
            return Err(NetError::TornDown(self.name.clone()));
        }
        let record = {
            let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.pods.iter().any(|p| p.name == name) {
                return Err(NetError::Conflict(format!(
                    "pod {name} already exists in instance {}",
                    self.name
                )));
            }
            let used: Vec<Ipv4Addr> = state.pods.iter().map(|p| p.ip).collect();
            let ip = (2..self.pod_cidr.size() - 1)
                .filter_map(|n| self.pod_cidr.nth(n))
                .find(|ip| !used.contains(ip))
                .ok_or(NetError::Full(self.pod_cidr))?;
            let index = u32::from(ip) - u32::from(self.pod_cidr.network());
            let record = PodRecord {
                name: name.to_string(),
                netns: format!("rdr-{}-{name}", self.name),
                host_veth: format!("rv{}-{index}", state.tag),
                ip,
            };
            state.pods.push(record.clone());
            state.save(&self.inner.dir)?;
            record
        };
        let dir = self.inner.dir.join("pods").join(name);
        state::make_dir(&dir)?;
        let ns = record.netns.as_str();
        let veth = record.host_veth.as_str();
        let addr = format!("{}/{}", record.ip, self.pod_cidr.prefix());
        let svc = self.service_cidr.to_string();
        let host = self.host_addr().to_string();
        cmd::run("ip", &["netns", "add", ns])?;
        cmd::run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        cmd::run(
            "ip",
            &[
                "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ],
        )?;
        cmd::run("ip", &["link", "set", veth, "master", &self.bridge])?;
        cmd::run("ip", &["link", "set", veth, "up"])?;
        cmd::run("ip", &["-n", ns, "addr", "add", &addr, "dev", "eth0"])?;
        cmd::run("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
        cmd::run(
            "ip",
            &["-n", ns, "route", "add", &svc, "via", &host, "dev", "eth0"],
        )?;
        tracing::info!(instance = %self.name, pod = name, ip = %record.ip, netns = ns, "pod added");
        Ok(Pod::new(self.inner.clone(), record, dir))
    }

    /// The pod called `name`, if it was added.
    pub fn pod(&self, name: &str) -> Option<Pod> {
        let state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        let record = state.pods.iter().find(|p| p.name == name)?.clone();
        Some(Pod::new(
            self.inner.clone(),
            record,
            self.inner.dir.join("pods").join(name),
        ))
    }

    /// Instance name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bridge's name.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The bridge's address (first address of the pod CIDR): where pilot listens.
    pub fn host_addr(&self) -> Ipv4Addr {
        self.pod_cidr.first_host()
    }

    /// The pod CIDR.
    pub fn pod_cidr(&self) -> Cidr {
        self.pod_cidr
    }

    /// The service CIDR.
    pub fn service_cidr(&self) -> Cidr {
        self.service_cidr
    }

    /// The instance's state directory (`<root>/<name>`).
    pub fn state_dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Records an Envoy hot-restart base id whose shared memory
    /// (`/dev/shm/envoy_shared_memory_<id×10>`) teardown removes.
    pub fn record_base_id(&self, base_id: u64) -> Result<(), NetError> {
        Ok(self.inner.update(|s| s.base_ids.push(base_id))?)
    }

    /// Records a `--base-id-path` file an agent fills in; teardown reads it and
    /// removes that Envoy family's shared memory.
    pub fn record_base_id_file(&self, path: &Path) -> Result<(), NetError> {
        Ok(self
            .inner
            .update(|s| s.base_id_files.push(path.to_path_buf()))?)
    }

    /// Removes everything the instance made: processes, namespaces, links,
    /// bridge, Envoy shared memory, the state directory.
    pub fn teardown(self) -> Result<(), NetError> {
        self.teardown_inner()
    }

    fn teardown_inner(&self) -> Result<(), NetError> {
        if self.inner.set_torn_down() {
            return Ok(());
        }
        let children = std::mem::take(
            &mut *self
                .inner
                .children
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let record = self
            .inner
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut children = children;
        let problems = remove_all(&record, &self.inner.dir, &mut children);
        if problems.is_empty() {
            tracing::info!(instance = %self.name, "torn down");
            Ok(())
        } else {
            Err(NetError::Teardown {
                name: self.name.clone(),
                problems,
            })
        }
    }

    /// Crash recovery: removes everything recorded in the instance state
    /// directory `state_dir` (a run that died without tearing down). Only
    /// processes whose PID and start time match the record are signalled.
    pub fn sweep(state_dir: &Path) -> Result<(), NetError> {
        let root = state_dir.parent().unwrap_or(Path::new("/"));
        let _lock = state::lock_root(root)?;
        let record = StateRecord::load(state_dir)?;
        let problems = remove_all(&record, state_dir, &mut BTreeMap::new());
        if problems.is_empty() {
            tracing::info!(instance = %record.name, "swept");
            Ok(())
        } else {
            Err(NetError::Teardown {
                name: record.name,
                problems,
            })
        }
    }

    /// State directories of all instances recorded under `state_root` (what
    /// `rudder mesh status` lists and `down` sweeps).
    pub fn instances(state_root: &Path) -> Result<Vec<PathBuf>, NetError> {
        Ok(state::list_instances(state_root)?
            .into_iter()
            .map(|(dir, _)| dir)
            .collect())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Err(error) = self.teardown_inner() {
            tracing::error!(%error, "teardown on drop");
            eprintln!("rudder-harness: {error}");
        }
    }
}

/// `ip ARGS` removing something; a failure is a problem only while the thing
/// is still there after a short, bounded wait (the kernel finishes some
/// removals asynchronously, and a racing removal may have won).
fn remove(args: &[&str], still_there: impl Fn() -> bool, problems: &mut Vec<String>) {
    let Err(e) = cmd::run_absent_ok("ip", args) else {
        return;
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while still_there() {
        if std::time::Instant::now() >= deadline {
            problems.push(e.to_string());
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    tracing::info!(error = %e, "removed meanwhile");
}

/// Removes what `record` lists; returns one message per failure.
fn remove_all(
    record: &StateRecord,
    dir: &Path,
    children: &mut BTreeMap<i32, Child>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for p in &record.processes {
        stop_group(p.pid, Some(p.start_time), children.remove(&p.pid));
    }
    for (pid, child) in std::mem::take(children) {
        stop_group(pid, None, Some(child));
    }
    for pod in &record.pods {
        let path = Path::new("/run/netns").join(&pod.netns);
        let killed = kill_netns_members(&path);
        if !killed.is_empty() {
            tracing::warn!(pod = %pod.name, ?killed, "killed processes left in the pod's namespace");
        }
        // The host end first: deleting it removes both ends at once, where
        // deleting the namespace would destroy them later, asynchronously.
        if link_exists(&pod.host_veth) {
            remove(
                &["link", "delete", &pod.host_veth],
                || link_exists(&pod.host_veth),
                &mut problems,
            );
        }
        remove(
            &["netns", "delete", &pod.netns],
            || path.exists(),
            &mut problems,
        );
    }
    if let Some(bridge) = &record.bridge {
        remove(
            &["link", "delete", bridge, "type", "bridge"],
            || link_exists(bridge),
            &mut problems,
        );
    }
    let mut base_ids = record.base_ids.clone();
    for file in &record.base_id_files {
        if let Ok(text) = fs::read_to_string(file) {
            match text.trim().parse() {
                Ok(id) => base_ids.push(id),
                Err(_) => problems.push(format!(
                    "base id file {}: not a number: {:?}",
                    file.display(),
                    text.trim()
                )),
            }
        }
    }
    for id in base_ids {
        let shm = crate::envoy::shm_path(id);
        match fs::remove_file(&shm) {
            Ok(()) => tracing::info!(path = %shm.display(), "removed Envoy shared memory"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => problems.push(format!("{}: {e}", shm.display())),
        }
    }
    if problems.is_empty() {
        if let Err(e) = fs::remove_dir_all(dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                problems.push(format!("{}: {e}", dir.display()));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_with_a_reason() {
        assert!(check_name("pod", "reviews-v2", 40).is_ok());
        let err = check_name("pod", "Reviews_v2", 40).unwrap_err().to_string();
        assert!(
            err.contains("invalid pod name \"Reviews_v2\"") && err.contains("a-z"),
            "{err}"
        );
        assert!(check_name("instance", &"a".repeat(25), 24).is_err());
    }

    #[test]
    fn bridge_names_fit_interface_limit() {
        assert_eq!(bridge_name("demo", "abcdef"), "rdr-demo");
        assert_eq!(bridge_name("a-much-longer-name", "abcdef"), "rdr-abcdef");
        let test = NetConfig::for_test("echo-two-pods");
        assert!(bridge_name(&test.name, "abcdef").len() <= 15);
        assert!(!test.pod_cidr.overlaps(&test.service_cidr));
    }

    #[test]
    fn host_routes_of_any_length_are_compared() {
        let ours: Cidr = "198.18.5.0/24".parse().unwrap();
        assert!(route_overlaps("198.18.5.7/32", &ours));
        assert!(route_overlaps("198.18.0.0/15", &ours));
        assert!(!route_overlaps("198.18.6.0/24", &ours));
        assert!(!route_overlaps("fe80::/64", &ours));
    }
}
