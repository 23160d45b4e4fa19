//! A running local mesh as `up` holds it: the record `down` reads, pilot,
//! the supervisor and the harness network. Dropping it tears everything down
//! (also on an error or a panic halfway through `up`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rudder_harness::Net;

use crate::pilot::Pilot;
use crate::record::{self, RunnerRecord};
use crate::runner::UpError;
use crate::supervise::LivePod;

/// A running instance; dropping it tears everything down.
pub(crate) struct Instance {
    /// What `down` and `status` read; saved on every change.
    pub(crate) record: RunnerRecord,
    /// Where the record is saved.
    pub(crate) runner_root: PathBuf,
    /// pilot, once started.
    pub(crate) pilot: Option<Pilot>,
    /// Tells the supervisor to stop.
    pub(crate) sup_stop: Arc<AtomicBool>,
    /// The supervisor's thread; it hands the pods back when it stops.
    pub(crate) supervisor: Option<std::thread::JoinHandle<Vec<LivePod>>>,
    /// The harness network (taken at teardown).
    pub(crate) net: Option<Net>,
}

impl Instance {
    /// The harness network (present until teardown).
    pub(crate) fn net(&self) -> &Net {
        self.net.as_ref().expect("the network lives until teardown")
    }

    /// Saves the record.
    pub(crate) fn save(&self) -> Result<(), UpError> {
        Ok(self.record.save(&self.runner_root)?)
    }

    /// Stops the containers (agents drain), pilot and the supervisor, and
    /// removes the pods' files, the network and the record.
    pub(crate) fn teardown(&mut self) {
        self.sup_stop.store(true, Ordering::SeqCst);
        let pods = self
            .supervisor
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        // SIGTERM every container at once (agents drain), then let the
        // harness stop stragglers and remove namespaces, links and files.
        let pids: Vec<u32> = pods
            .iter()
            .flat_map(|p| p.running.iter().map(|r| r.process.pid()))
            .collect();
        for pid in &pids {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(*pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(7);
        while Instant::now() < deadline
            && pods
                .iter()
                .any(|p| p.running.iter().any(|r| r.process.try_wait().is_none()))
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(pods);
        if let Some(p) = self.pilot.take() {
            p.stop();
        }
        for dir in &self.record.etc_netns {
            let _ = std::fs::remove_dir_all(dir);
        }
        // Only succeeds when empty: /etc/netns was made for our pods.
        let _ = std::fs::remove_dir("/etc/netns");
        if let Some(net) = self.net.take() {
            if let Err(e) = net.teardown() {
                eprintln!("rudder: teardown: {e}");
            }
        }
        let _ = std::fs::remove_file(record::record_path(&self.runner_root, &self.record.name));
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.teardown();
    }
}
