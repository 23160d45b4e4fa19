//! pilot as a child process on the host, and what the tests read from its
//! monitoring port (`/ready`, `/debug/syncz`, `/metrics`).

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use rudder_harness::{HttpRequest, Outcome};
use serde_json::Value;

/// Why talking to pilot failed.
#[derive(Debug, thiserror::Error)]
pub enum PilotError {
    /// The binary could not be started.
    #[error("starting {bin}: {source}")]
    Spawn {
        /// The binary.
        bin: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A bounded wait ran out.
    #[error("timed out after {timeout:?} waiting for {what}; pilot log tail:\n{log}")]
    Timeout {
        /// What we waited for.
        what: String,
        /// The bound.
        timeout: Duration,
        /// The end of pilot's log.
        log: String,
    },
    /// pilot exited while we waited for it.
    #[error("pilot exited ({status}); log tail:\n{log}")]
    Exited {
        /// Exit status.
        status: String,
        /// The end of pilot's log.
        log: String,
    },
}

/// A free TCP port on `ip` (bound then released; pilot binds it right after).
pub fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `pilot serve`. Dropping it SIGKILLs and reaps it (by its PID only).
pub struct Pilot {
    child: Child,
    bin: PathBuf,
    config_dir: PathBuf,
    xds: SocketAddr,
    monitoring: SocketAddr,
    log: PathBuf,
    extra: Vec<String>,
}

impl Pilot {
    /// Starts `bin serve` on `xds` and `monitoring` for `config_dir`, logging to `log`
    /// (appended, so a restart keeps the earlier run's lines).
    pub fn start(
        bin: &Path,
        config_dir: &Path,
        xds: SocketAddr,
        monitoring: SocketAddr,
        log: &Path,
    ) -> Result<Pilot, PilotError> {
        Self::start_with(bin, config_dir, xds, monitoring, log, &[])
    }

    /// [`Pilot::start`] with `extra` flags after the usual ones (kept for
    /// [`Pilot::restart`]).
    pub fn start_with(
        bin: &Path,
        config_dir: &Path,
        xds: SocketAddr,
        monitoring: SocketAddr,
        log: &Path,
        extra: &[&str],
    ) -> Result<Pilot, PilotError> {
        let spawn_err = |source| PilotError::Spawn {
            bin: bin.to_path_buf(),
            source,
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(spawn_err)?;
        let err = out.try_clone().map_err(spawn_err)?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--config-dir")
            .arg(config_dir)
            .args([
                "--xds-addr",
                &xds.to_string(),
                "--monitoring-addr",
                &monitoring.to_string(),
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(spawn_err)?;
        let pilot = Pilot {
            child,
            bin: bin.to_path_buf(),
            config_dir: config_dir.to_path_buf(),
            xds,
            monitoring,
            log: log.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        Ok(pilot)
    }

    /// SIGKILL (no graceful shutdown: the proxies' streams just break) and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A new pilot with the same flags (after [`Pilot::kill`]).
    pub fn restart(&mut self) -> Result<(), PilotError> {
        self.kill();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let fresh = Pilot::start_with(
            &self.bin,
            &self.config_dir,
            self.xds,
            self.monitoring,
            &self.log,
            &extra,
        )?;
        *self = fresh;
        Ok(())
    }

    /// Where pilot serves plaintext xDS.
    pub fn xds_addr(&self) -> SocketAddr {
        self.xds
    }

    /// pilot's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of pilot's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// GET `path` on the monitoring port.
    pub fn get(&self, path: &str) -> Outcome {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        rt.block_on(rudder_harness::get(
            &HttpRequest::get(self.monitoring, path),
            Duration::from_secs(5),
        ))
    }

    /// Polls `probe` every 50 ms until it returns `Some`, pilot exits, or `timeout` passes.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut(&Pilot) -> Option<T>,
    ) -> Result<T, PilotError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(PilotError::Exited {
                    status: status.to_string(),
                    log: self.log_tail(20),
                });
            }
            if let Some(v) = probe(self) {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(PilotError::Timeout {
                    what: what.into(),
                    timeout,
                    log: self.log_tail(20),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `/ready` answers 200.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), PilotError> {
        self.wait_for("pilot /ready", timeout, |p| {
            (p.get("/ready").status == Some(200)).then_some(())
        })
    }

    /// `/debug/syncz` (a JSON list of streams), or `Null` when unreachable.
    pub fn syncz(&self) -> Value {
        let o = self.get("/debug/syncz");
        if o.status == Some(200) {
            serde_json::from_str(&o.body).unwrap_or(Value::Null)
        } else {
            Value::Null
        }
    }

    /// `/metrics` text (empty when unreachable).
    pub fn metrics(&self) -> String {
        let o = self.get("/metrics");
        if o.status == Some(200) {
            o.body
        } else {
            String::new()
        }
    }
}

impl Drop for Pilot {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `/debug/syncz` entry of one xDS type for the stream of `node_id`
/// (the newest stream when several share it).
pub fn type_status(syncz: &Value, node_id: &str, short_type: &str) -> Option<Value> {
    syncz
        .as_array()?
        .iter()
        .filter(|c| c["node_id"] == node_id)
        .max_by_key(|c| c["stream_id"].as_u64().unwrap_or(0))
        .map(|c| c["types"][short_type].clone())
}

/// The RDS version the proxy ACKed, when it ACKed what was last sent
/// (nothing in flight).
pub fn settled_rds_version(syncz: &Value, node_id: &str) -> Option<String> {
    settled_version(syncz, node_id, "rds")
}

/// The version of `short_type` (`lds`, `rds`, ...) the proxy ACKed, when it
/// ACKed what was last sent (nothing in flight).
pub fn settled_version(syncz: &Value, node_id: &str, short_type: &str) -> Option<String> {
    let t = type_status(syncz, node_id, short_type)?;
    let acked = t["last_acked_version"].as_str()?;
    (t["last_sent"]["version"].as_str() == Some(acked)).then(|| acked.to_string())
}

/// The value of a Prometheus sample `name{labels}` (exact label text), or 0.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}
