//! The per-instance state directory: a JSON record of everything an instance
//! created, written before (or as) each object is created.
//!
//! Why: teardown on drop covers panics, but not a killed test binary or a
//! crashed `rudder mesh up`. The record lets [`crate::Net::sweep`] remove exactly
//! what that instance made (and nothing of anyone else's) after the fact.
//!
//! Layout under the state root (default `/run/rudder-harness`, tmpfs like
//! `/run/netns`, so it disappears on reboot together with the namespaces):
//!
//! ```text
//! <root>/.lock                  flock taken while instances are created or swept
//! <root>/<name>/state.json      StateRecord of instance <name>
//! <root>/<name>/pods/<pod>/     per-pod files (logs, bootstraps, mounted files)
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::cidr::Cidr;

/// File name of the record inside an instance directory.
pub const STATE_FILE: &str = "state.json";

/// Reading or writing the state directory failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Filesystem error on a given path.
    #[error("state directory: {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The record is not valid JSON of the expected shape.
    #[error("state file {path}: {source}")]
    Parse {
        /// The state file.
        path: PathBuf,
        /// What serde reported (with line and column).
        source: serde_json::Error,
    },
    /// Taking the root lock failed.
    #[error("cannot lock {path}: {errno}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The errno from flock(2).
        errno: nix::errno::Errno,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Everything one instance created.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StateRecord {
    /// Instance name (directory name under the root).
    pub name: String,
    /// Short tag used in host-side interface names (`rv<tag>-<n>`).
    pub tag: String,
    /// The bridge, recorded before it is created; `None` if creation was refused.
    pub bridge: Option<String>,
    /// Pod CIDR; its first address is the bridge's host address.
    pub pod_cidr: Cidr,
    /// Service (VIP) CIDR, routed in pods via the host address.
    pub service_cidr: Cidr,
    /// Pods, recorded before their namespace and links are created.
    pub pods: Vec<PodRecord>,
    /// Processes (process-group leaders) started in pods.
    pub processes: Vec<ProcessRecord>,
    /// Envoy hot-restart base ids whose shared memory teardown removes.
    pub base_ids: Vec<u64>,
    /// Files in which an agent writes its Envoy family's base id
    /// (`--base-id-path`); read at teardown, as the id is chosen by Envoy.
    pub base_id_files: Vec<PathBuf>,
}

/// One pod's namespace and links.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PodRecord {
    /// Pod name, unique within the instance.
    pub name: String,
    /// Network namespace name (`/run/netns/<netns>`).
    pub netns: String,
    /// Host side of the veth pair (on the bridge).
    pub host_veth: String,
    /// The pod's address.
    pub ip: Ipv4Addr,
}

/// A process we started, identified by PID and kernel start time so that a
/// recycled PID is never mistaken for ours.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProcessRecord {
    /// PID, also the process group id (each spawn gets its own group).
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot) at spawn.
    pub start_time: u64,
    /// The pod it runs in.
    pub pod: String,
    /// What was started (for messages).
    pub program: String,
}

impl StateRecord {
    /// Path of the record inside an instance directory.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Loads the record of the instance in `dir`.
    pub fn load(dir: &Path) -> Result<StateRecord, StateError> {
        let path = Self::path(dir);
        let text = fs::read_to_string(&path).map_err(io_err(&path))?;
        serde_json::from_str(&text).map_err(|source| StateError::Parse { path, source })
    }

    /// Writes the record atomically (temporary file + rename), so a crash
    /// never leaves a half-written record.
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let path = Self::path(dir);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).expect("state record serialises");
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        file.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))
    }
}

/// Creates `dir` (and parents) world-traversable: processes running as UID
/// 1337 must reach bootstraps and mounted files below it.
pub(crate) fn make_dir(dir: &Path) -> Result<(), StateError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(io_err(dir))
}

/// Exclusive lock on the state root, held while an instance checks for
/// conflicts and records itself (two tests starting at once must not pick the
/// same CIDR or bridge).
pub(crate) fn lock_root(root: &Path) -> Result<Flock<File>, StateError> {
    make_dir(root)?;
    let path = root.join(".lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&path)
        .map_err(io_err(&path))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| StateError::Lock { path, errno })
}

/// Records of all instances under `root` (unreadable records are skipped with a
/// warning: they cannot claim anything, and sweeping them reports the error).
pub(crate) fn list_instances(root: &Path) -> Result<Vec<(PathBuf, StateRecord)>, StateError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(StateError::Io {
                path: root.to_path_buf(),
                source: e,
            })
        }
    };
    for entry in entries {
        let dir = entry.map_err(io_err(root))?.path();
        if !StateRecord::path(&dir).exists() {
            continue;
        }
        match StateRecord::load(&dir) {
            Ok(record) => out.push((dir, record)),
            Err(error) => {
                tracing::warn!(%error, dir = %dir.display(), "unreadable instance record")
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_through_the_state_file() {
        let dir = std::env::temp_dir().join(format!("rudder-harness-state-{}", std::process::id()));
        make_dir(&dir).unwrap();
        let record = StateRecord {
            name: "unit".into(),
            tag: "abc123".into(),
            bridge: Some("rdr-unit".into()),
            pod_cidr: "198.18.4.0/24".parse().unwrap(),
            service_cidr: "198.19.4.0/24".parse().unwrap(),
            pods: vec![PodRecord {
                name: "a".into(),
                netns: "rdr-unit-a".into(),
                host_veth: "rvabc123-2".into(),
                ip: Ipv4Addr::new(198, 18, 4, 2),
            }],
            processes: vec![ProcessRecord {
                pid: 42,
                start_time: 7,
                pod: "a".into(),
                program: "sleep".into(),
            }],
            base_ids: vec![3],
            base_id_files: vec![dir.join("base-id")],
        };
        record.save(&dir).unwrap();
        assert_eq!(StateRecord::load(&dir).unwrap(), record);
        fs::write(StateRecord::path(&dir), "{\"name\": 1}").unwrap();
        let err = StateRecord::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("state.json") && err.contains("line 1"),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
