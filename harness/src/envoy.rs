//! Envoy in a pod, as UID/GID 1337, outside the agent.
//!
//! Envoys started here are standalone (no agent, no hot restart), so they run
//! with `--disable-hot-restart` (docs/architecture.md): they create
//! no shared memory and cannot collide with agent-supervised families.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rudder_model::well_known::{ENVOY_ADMIN_PORT, INSTALLED_ENVOY_BIN, PROXY_GID, PROXY_UID};

use crate::client::{get, HttpRequest};
use crate::pod::{Pod, PodError};
use crate::process::{Process, ProcessError, ProcessSpec};

/// Starting or waiting for Envoy failed.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    /// The binary is missing.
    #[error("Envoy binary {0} not found (set ENVOY_BIN or run scripts/setup.sh)")]
    Missing(PathBuf),
    /// Writing the bootstrap failed.
    #[error("writing Envoy bootstrap {path}: {source}")]
    Bootstrap {
        /// The bootstrap file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Spawning failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// Entering the pod for an admin request failed.
    #[error(transparent)]
    Pod(#[from] PodError),
    /// Envoy exited while we waited for it.
    #[error("Envoy in pod {pod} exited ({status}); last log lines:\n{log}")]
    Exited {
        /// The pod.
        pod: String,
        /// Its exit status.
        status: String,
        /// The tail of its log.
        log: String,
    },
    /// Envoy did not reach the awaited state in time.
    #[error("Envoy in pod {pod}: {what} not reached within {timeout:?}; last log lines:\n{log}")]
    Timeout {
        /// The pod.
        pod: String,
        /// What we waited for.
        what: String,
        /// The bound.
        timeout: Duration,
        /// The tail of its log.
        log: String,
    },
    /// An admin request failed.
    #[error("Envoy admin {path} in pod {pod}: {reason}")]
    Admin {
        /// The pod.
        pod: String,
        /// The admin path.
        path: String,
        /// Status or error.
        reason: String,
    },
}

/// The Envoy binary: `ENVOY_BIN`, else [`INSTALLED_ENVOY_BIN`].
pub fn envoy_bin() -> PathBuf {
    std::env::var_os("ENVOY_BIN").map_or_else(|| PathBuf::from(INSTALLED_ENVOY_BIN), PathBuf::from)
}

/// How to run an Envoy.
#[derive(Clone, Debug)]
pub struct EnvoySpec {
    /// The bootstrap, as YAML or JSON text.
    pub bootstrap: String,
    /// The admin port the bootstrap binds on 127.0.0.1 (what the waits poll).
    pub admin_port: u16,
    /// Arguments after `-c FILE --disable-hot-restart`.
    pub args: Vec<String>,
    /// The binary; default [`envoy_bin`].
    pub binary: PathBuf,
    /// UID and GID; default 1337/1337, the proxy user proxy-init exempts.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
}

impl EnvoySpec {
    /// Envoy as 1337 with `bootstrap`, admin on [`ENVOY_ADMIN_PORT`], one
    /// worker thread (the machine is small) and `info` logs.
    pub fn new(bootstrap: impl Into<String>) -> EnvoySpec {
        EnvoySpec {
            bootstrap: bootstrap.into(),
            admin_port: ENVOY_ADMIN_PORT,
            args: ["--concurrency", "1", "--log-level", "info"]
                .map(String::from)
                .to_vec(),
            binary: envoy_bin(),
            uid: PROXY_UID,
            gid: PROXY_GID,
        }
    }
}

/// A running Envoy. Dropping it stops it.
#[derive(Debug)]
pub struct Envoy {
    process: Process,
    pod: Pod,
    admin_port: u16,
    bootstrap: PathBuf,
}

fn log_tail(process: &Process) -> String {
    let log = process.read_log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl Pod {
    /// Writes the bootstrap into the pod's directory (mode 0644, readable by
    /// 1337) and starts Envoy in the pod.
    pub fn spawn_envoy(&self, spec: EnvoySpec) -> Result<Envoy, EnvoyError> {
        if !spec.binary.is_file() {
            return Err(EnvoyError::Missing(spec.binary));
        }
        let seq = self.inner.next_seq();
        // Envoy picks the parser by extension; JSON is also valid YAML.
        let bootstrap = self.dir().join(format!("envoy-{seq}.yaml"));
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(&bootstrap)?;
            f.write_all(spec.bootstrap.as_bytes())
        };
        write().map_err(|source| EnvoyError::Bootstrap {
            path: bootstrap.clone(),
            source,
        })?;
        let process = self.spawn(
            ProcessSpec::new(&spec.binary)
                .args([
                    "-c".to_string(),
                    bootstrap.display().to_string(),
                    "--disable-hot-restart".to_string(),
                ])
                .args(spec.args.clone())
                .user(spec.uid, spec.gid)
                .log(self.dir().join(format!("envoy-{seq}.log"))),
        )?;
        Ok(Envoy {
            process,
            pod: self.clone(),
            admin_port: spec.admin_port,
            bootstrap,
        })
    }
}

impl Envoy {
    /// The process (PID, log).
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// The bootstrap file it was started with.
    pub fn bootstrap_path(&self) -> &Path {
        &self.bootstrap
    }

    /// GET `path` on the admin interface (127.0.0.1:admin inside the pod);
    /// returns the body of a 200 response.
    pub fn admin_get(&self, path: &str) -> Result<String, EnvoyError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.admin_port));
        let request = HttpRequest::get(addr, path);
        let outcome = self.pod.run(|| get(&request, Duration::from_secs(5)))?;
        match (outcome.status, outcome.error) {
            (Some(200), _) => Ok(outcome.body),
            (Some(status), _) => {
                Err(self.admin_err(path, format!("status {status}: {}", outcome.body.trim())))
            }
            (None, error) => Err(self.admin_err(path, error.unwrap_or_default())),
        }
    }

    fn admin_err(&self, path: &str, reason: String) -> EnvoyError {
        EnvoyError::Admin {
            pod: self.pod.name().into(),
            path: path.into(),
            reason,
        }
    }

    /// Polls until `check` accepts an admin response, Envoy exits, or
    /// `timeout` passes.
    pub fn wait_admin(
        &self,
        path: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> Result<String, EnvoyError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.process.try_wait() {
                return Err(EnvoyError::Exited {
                    pod: self.pod.name().into(),
                    status: status.to_string(),
                    log: log_tail(&self.process),
                });
            }
            if let Ok(body) = self.admin_get(path) {
                if check(&body) {
                    return Ok(body);
                }
            }
            if Instant::now() >= deadline {
                return Err(EnvoyError::Timeout {
                    pod: self.pod.name().into(),
                    what: what.into(),
                    timeout,
                    log: log_tail(&self.process),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `/ready` reports `LIVE` (initialised, listeners warmed).
    pub fn wait_live(&self, timeout: Duration) -> Result<(), EnvoyError> {
        self.wait_admin("/ready", "state LIVE", timeout, |b| b.trim() == "LIVE")
            .map(|_| ())
    }

    /// Waits until a listener named `name` is active (`/listeners`).
    pub fn wait_listener(&self, name: &str, timeout: Duration) -> Result<(), EnvoyError> {
        self.wait_admin("/listeners", &format!("listener {name}"), timeout, |b| {
            b.lines().any(|l| l.split("::").next() == Some(name))
        })
        .map(|_| ())
    }
}

/// Where Envoy keeps the hot-restart shared memory of base id `base_id`
/// (the agent's families; teardown removes those recorded).
pub fn shm_path(base_id: u64) -> PathBuf {
    PathBuf::from(format!("/dev/shm/envoy_shared_memory_{}", base_id * 10))
}
