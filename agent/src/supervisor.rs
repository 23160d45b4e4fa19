//! Supervising Envoy: one task owns every Envoy process and decides, in one
//! place, when to start, hot-restart, restart after a crash, and stop.
//!
//! ```text
//!  cert watcher ──CertsChanged──┐
//!  SIGTERM / quitquitquit ──Shutdown──► supervisor ──spawn──► envoy epoch N   (current)
//!  child waiters ──Exit────────┘      (this task)   ◄─admin─  envoy epoch N-1 (draining,
//!                                                                terminated by epoch N)
//! ```
//!
//! Rules, each from a trap seen with real Envoy (envoy-facts.md):
//! - A hot restart starts only when exactly one epoch runs and it is `LIVE`:
//!   never two restarts at once, never while the previous epoch initializes
//!   (Envoy refuses with "previous envoy process is still initializing").
//! - The agent never kills a parent during the overlap; the child terminates
//!   it after `--parent-shutdown-time-s`. Only a parent that outlives that by
//!   a wide margin is terminated, as stuck.
//! - When the newest epoch dies unexpectedly, the family is finished: older
//!   epochs are stopped, the shared memory is removed, and a new family
//!   (epoch 0, new dynamic base id) starts after an exponential backoff.
//! - Certificates are checked before a restart; a bad set is logged with the
//!   file and reason, counted, and the running Envoy keeps its old ones.

use std::{
    path::PathBuf,
    sync::{atomic::Ordering::Relaxed, Arc},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};
use rudder_model::backoff::Backoff;
use tokio::sync::mpsc;

use crate::{
    admin::Admin,
    bootstrap::{bootstrap, BootstrapConfig, CertSource, FileSecrets},
    certs,
    drain::{self, DrainOutcome},
    envoy::{self, EnvoyError, EnvoyOptions},
    state::AgentState,
};

/// Supervisor failures that end the agent.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The first Envoy could not be started at all.
    #[error(transparent)]
    Envoy(#[from] EnvoyError),
    /// The bootstrap could not be written.
    #[error("writing bootstrap {file}: {reason}")]
    WriteBootstrap {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What the supervisor is told from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// The certificate directory changed (debounced).
    CertsChanged,
    /// Drain and stop (signal or `/quitquitquit`); the reason is logged.
    Shutdown(String),
}

/// How to run Envoy.
#[derive(Clone, Debug)]
pub struct SupervisorConfig {
    /// Command line and files of every epoch.
    pub envoy: EnvoyOptions,
    /// The bootstrap; its `certs` are refreshed from `cert_dir` per epoch.
    pub bootstrap: BootstrapConfig,
    /// Where the workload certificates live.
    pub cert_dir: Option<PathBuf>,
    /// How long a shutdown waits for in-flight work.
    pub drain_duration: Duration,
    /// First delay before restarting a crashed Envoy; doubles per crash.
    pub backoff_initial: Duration,
    /// Cap of that delay.
    pub backoff_max: Duration,
}

struct Exit {
    pid: u32,
    epoch: u32,
    status: String,
}

struct Running {
    epoch: u32,
    pid: u32,
    started: Instant,
    superseded_at: Option<Instant>,
    terminated: bool,
}

/// The supervisor's state (see the module docs).
struct Supervisor {
    cfg: SupervisorConfig,
    state: Arc<AgentState>,
    admin: Admin,
    alive: Vec<Running>,
    current: Option<u32>,
    family: Option<u32>,
    applied: Option<[u8; 32]>,
    pending_restart: bool,
    restart_at: Option<Instant>,
    stop_requested_at: Option<Instant>,
    backoff: Backoff,
    exits: mpsc::UnboundedSender<Exit>,
}

/// Runs Envoy until a [`Command::Shutdown`] (or the sender is dropped), then
/// drains and stops every epoch and removes the family's shared memory.
pub async fn run(
    cfg: SupervisorConfig,
    state: Arc<AgentState>,
    mut commands: mpsc::Receiver<Command>,
) -> Result<(), SupervisorError> {
    let (exits_tx, mut exits) = mpsc::unbounded_channel();
    let mut sup = Supervisor {
        admin: Admin::new(cfg.bootstrap.admin_port, Duration::from_secs(2)),
        backoff: Backoff::new(cfg.backoff_initial, cfg.backoff_max),
        cfg,
        state,
        alive: Vec::new(),
        current: None,
        family: None,
        applied: None,
        pending_restart: false,
        restart_at: None,
        stop_requested_at: None,
        exits: exits_tx,
    };
    sup.start_family()?;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let reason = loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(Command::CertsChanged) => sup.certs_changed(),
                Some(Command::Shutdown(reason)) => break reason,
                None => break "command channel closed".to_string(),
            },
            Some(exit) = exits.recv() => sup.on_exit(exit),
            _ = tick.tick() => sup.tick().await,
        }
    };
    tracing::info!(%reason, "shutting down: draining Envoy");
    sup.shutdown(&mut commands, &mut exits).await;
    Ok(())
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn signal(pid: u32, sig: Signal) {
    if let Err(error) = kill(Pid::from_raw(pid as i32), sig) {
        tracing::debug!(pid, %error, ?sig, "signal not delivered");
    }
}

impl Supervisor {
    /// Writes the bootstrap for the next epoch; certificate secrets appear
    /// when the files exist, so a directory filled later is picked up.
    fn write_bootstrap(&self) -> Result<(), SupervisorError> {
        let mut b = self.cfg.bootstrap.clone();
        if let Some(dir) = &self.cfg.cert_dir {
            b.certs = CertSource::Files(FileSecrets::from_dir(dir));
        }
        let file = &self.cfg.envoy.bootstrap;
        let err = |e: std::io::Error| SupervisorError::WriteBootstrap {
            file: file.clone(),
            reason: e.to_string(),
        };
        let tmp = file.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(&bootstrap(&b)).expect("JSON values serialize");
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::rename(&tmp, file).map_err(err)
    }

    /// Loads the certificates; logs and counts a bad set.
    fn load_certs(&self) -> Option<certs::CertBundle> {
        let dir = self.cfg.cert_dir.as_ref()?;
        match certs::load(dir, unix_now()) {
            Ok(b) => b,
            Err(error) => {
                self.state.cert_errors.inc();
                tracing::error!(%error, "rejected certificates; Envoy keeps the ones it has");
                None
            }
        }
    }

    fn apply_certs(&mut self, b: &certs::CertBundle) {
        self.applied = Some(b.fingerprint);
        self.state.cert_not_after.set(b.not_after);
        tracing::info!(subject = %b.subject, serial = %b.serial, not_after = b.not_after, "certificates in use");
    }

    /// Epoch 0 of a new family with a fresh dynamic base id.
    fn start_family(&mut self) -> Result<(), SupervisorError> {
        self.remove_family_files();
        self.pending_restart = false;
        if let Some(b) = self.load_certs() {
            self.apply_certs(&b);
        }
        self.write_bootstrap()?;
        self.spawn(0, None)?;
        Ok(())
    }

    fn spawn(&mut self, epoch: u32, base_id: Option<u32>) -> Result<(), SupervisorError> {
        let mut p = envoy::spawn(&self.cfg.envoy, epoch, base_id)?;
        let (pid, exits) = (p.pid, self.exits.clone());
        tokio::spawn(async move {
            let status = match p.child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => format!("wait failed: {e}"),
            };
            let _ = exits.send(Exit { pid, epoch, status });
        });
        let now = Instant::now();
        for r in &mut self.alive {
            r.superseded_at.get_or_insert(now);
        }
        self.alive.push(Running {
            epoch,
            pid,
            started: now,
            superseded_at: None,
            terminated: false,
        });
        self.current = Some(pid);
        self.state.envoy_pid.store(pid, Relaxed);
        self.state.epoch.set(i64::from(epoch));
        Ok(())
    }

    fn current_epoch(&self) -> Option<&Running> {
        let pid = self.current?;
        self.alive.iter().find(|r| r.pid == pid)
    }

    /// The family's base id: known, or read from the file epoch 0 wrote.
    fn family_id(&mut self) -> Result<u32, EnvoyError> {
        if let Some(id) = self.family {
            return Ok(id);
        }
        let id = envoy::read_base_id(&self.cfg.envoy.base_id_path)?;
        self.family = Some(id);
        Ok(id)
    }

    /// Removes the shared memory and base id file of a family none of whose
    /// epochs runs any more (Envoy leaves both behind).
    fn remove_family_files(&mut self) {
        if let Ok(id) = self.family_id() {
            let shm = envoy::shm_path(id);
            match std::fs::remove_file(&shm) {
                Ok(()) => {
                    tracing::info!(base_id = id, file = %shm.display(), "removed Envoy shared memory")
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(%error, file = %shm.display(), "cannot remove Envoy shared memory")
                }
            }
        }
        self.family = None;
        let _ = std::fs::remove_file(&self.cfg.envoy.base_id_path);
    }

    fn certs_changed(&mut self) {
        let Some(dir) = &self.cfg.cert_dir else {
            return;
        };
        match certs::load(dir, unix_now()) {
            Ok(None) => {
                if self.applied.is_some() {
                    tracing::warn!(dir = %dir.display(), "certificates removed; Envoy keeps the ones it has");
                }
            }
            Ok(Some(b)) if Some(b.fingerprint) == self.applied => {
                tracing::debug!("certificate directory changed, content did not");
            }
            Ok(Some(b)) => {
                tracing::info!(subject = %b.subject, serial = %b.serial, "new certificates: hot restart due");
                self.pending_restart = true;
            }
            Err(error) => {
                self.state.cert_errors.inc();
                tracing::error!(%error, "rejected new certificates; Envoy keeps serving with the old ones");
            }
        }
    }

    fn on_exit(&mut self, exit: Exit) {
        self.alive.retain(|r| r.pid != exit.pid);
        if self.current != Some(exit.pid) {
            tracing::info!(epoch = exit.epoch, pid = exit.pid, status = %exit.status, "previous Envoy epoch exited");
            return;
        }
        self.current = None;
        self.state.envoy_pid.store(0, Relaxed);
        self.state.envoy_restarts.inc();
        tracing::warn!(
            epoch = exit.epoch, pid = exit.pid, status = %exit.status, backoff = ?self.backoff.current(),
            "Envoy exited unexpectedly; restarting"
        );
        for r in &mut self.alive {
            signal(r.pid, Signal::SIGTERM);
            r.terminated = true;
        }
        self.restart_at = Some(Instant::now() + self.backoff.next_delay());
        self.stop_requested_at = Some(Instant::now());
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        if let Some(at) = self.restart_at {
            if self.alive.is_empty() && now >= at {
                self.restart_at = None;
                if let Err(error) = self.start_family() {
                    tracing::error!(%error, "cannot start Envoy; retrying");
                    self.restart_at = Some(now + self.backoff.next_delay());
                }
            } else if self
                .stop_requested_at
                .is_some_and(|t| now - t > Duration::from_secs(10))
            {
                for r in &self.alive {
                    signal(r.pid, Signal::SIGKILL);
                }
            }
            return;
        }
        // A parent the child should have terminated long ago is stuck.
        let limit = self.cfg.envoy.parent_shutdown + Duration::from_secs(15);
        for r in &mut self.alive {
            if !r.terminated && r.superseded_at.is_some_and(|t| now - t > limit) {
                tracing::warn!(
                    epoch = r.epoch,
                    pid = r.pid,
                    "old Envoy epoch outlived its parent shutdown time; terminating"
                );
                signal(r.pid, Signal::SIGTERM);
                r.terminated = true;
            }
        }
        if let Some(cur) = self.current_epoch() {
            if now - cur.started > Duration::from_secs(30) {
                self.backoff.reset();
            }
        }
        if self.pending_restart && self.alive.len() == 1 && self.current.is_some() {
            match self.admin.state().await {
                Ok(s) if s == "LIVE" => self.hot_restart(),
                Ok(s) => {
                    tracing::debug!(state = %s, "hot restart waits for the current epoch to be LIVE")
                }
                Err(error) => tracing::debug!(%error, "hot restart waits for Envoy's admin"),
            }
        }
    }

    fn hot_restart(&mut self) {
        self.pending_restart = false;
        let Some(b) = self.load_certs() else { return };
        if Some(b.fingerprint) == self.applied {
            return;
        }
        let base_id = match self.family_id() {
            Ok(id) => id,
            Err(error) => {
                tracing::error!(%error, "cannot hot restart without the family's base id");
                return;
            }
        };
        let epoch = self.current_epoch().map_or(0, |r| r.epoch) + 1;
        if let Err(error) = self
            .write_bootstrap()
            .and_then(|()| self.spawn(epoch, Some(base_id)))
        {
            tracing::error!(%error, epoch, "hot restart failed; the current epoch keeps serving");
            return;
        }
        self.apply_certs(&b);
        self.state.hot_restarts.inc();
        tracing::info!(epoch, base_id, "hot restart: new epoch started");
    }

    async fn shutdown(
        &mut self,
        commands: &mut mpsc::Receiver<Command>,
        exits: &mut mpsc::UnboundedReceiver<Exit>,
    ) {
        self.state.draining.store(true, Relaxed);
        self.restart_at = None;
        if !self.alive.is_empty() {
            if let Err(error) = self.admin.drain_listeners().await {
                tracing::warn!(%error, "drain_listeners failed");
            }
            let wait = drain::wait_idle(
                &self.admin,
                self.cfg.bootstrap.stats_port,
                self.cfg.drain_duration,
            );
            tokio::pin!(wait);
            let outcome = loop {
                tokio::select! {
                    outcome = &mut wait => break outcome,
                    Some(exit) = exits.recv() => {
                        self.alive.retain(|r| r.pid != exit.pid);
                        if self.alive.is_empty() { break DrainOutcome::Exited; }
                    }
                    Some(Command::Shutdown(reason)) = commands.recv() => {
                        tracing::warn!(%reason, "second shutdown request: stopping without waiting");
                        break DrainOutcome::Forced;
                    }
                }
            };
            tracing::info!(?outcome, "drain finished");
        }
        // Newest first, so no child outlives its parent and finds it gone.
        for sig in [Signal::SIGTERM, Signal::SIGKILL] {
            for r in self.alive.iter().rev() {
                signal(r.pid, sig);
            }
            let deadline = tokio::time::sleep(Duration::from_secs(10));
            tokio::pin!(deadline);
            while !self.alive.is_empty() {
                tokio::select! {
                    Some(exit) = exits.recv() => {
                        tracing::info!(epoch = exit.epoch, pid = exit.pid, status = %exit.status, "Envoy stopped");
                        self.alive.retain(|r| r.pid != exit.pid);
                    }
                    _ = &mut deadline => break,
                }
            }
        }
        self.state.envoy_pid.store(0, Relaxed);
        self.remove_family_files();
    }
}
