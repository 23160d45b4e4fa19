//! Starting one Envoy epoch: its command line (pure), the process, its logs,
//! and the shared-memory file a hot-restart family leaves behind.
//!
//! Hot-restart rules this module encodes (see envoy-facts.md "Hot restart"):
//! epoch 0 asks Envoy for a free base id (`--use-dynamic-base-id`) and has it
//! written to `--base-id-path`; later epochs pass that id with `--base-id`
//! (Envoy refuses the dynamic flag on a non-zero epoch). Drain and parent
//! shutdown times are always explicit: Envoy's defaults are 10 and 15 minutes.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use rudder_model::well_known::INSTALLED_ENVOY_BIN;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, Command},
};

/// Problems starting Envoy or reading its family's files.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    /// No Envoy binary found.
    #[error("no Envoy binary: set ENVOY_BIN, put `envoy` on PATH, or install it at {INSTALLED_ENVOY_BIN}")]
    NotFound,
    /// The process could not be started.
    #[error("starting {bin}: {reason}")]
    Spawn {
        /// The binary.
        bin: PathBuf,
        /// Why.
        reason: String,
    },
    /// The base id file is missing or malformed.
    #[error("base id file {file}: {reason}")]
    BaseId {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
}

/// How every epoch is started.
#[derive(Clone, Debug)]
pub struct EnvoyOptions {
    /// The Envoy binary.
    pub bin: PathBuf,
    /// The bootstrap file (`-c`).
    pub bootstrap: PathBuf,
    /// Where epoch 0 writes its dynamic base id.
    pub base_id_path: PathBuf,
    /// `--drain-time-s`: how long a draining epoch keeps its listeners.
    pub drain: Duration,
    /// `--parent-shutdown-time-s`: when the new epoch terminates the old.
    pub parent_shutdown: Duration,
    /// `--concurrency` (worker threads), when set.
    pub concurrency: Option<u32>,
    /// `--log-level`.
    pub log_level: String,
}

/// Finds Envoy: `ENVOY_BIN` when set, else `envoy` on `PATH`, else
/// [`INSTALLED_ENVOY_BIN`] when present.
pub fn find_bin(
    envoy_bin: Option<OsString>,
    path: Option<OsString>,
) -> Result<PathBuf, EnvoyError> {
    if let Some(bin) = envoy_bin.filter(|b| !b.is_empty()) {
        return Ok(PathBuf::from(bin));
    }
    path.iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("envoy"))
        .chain(std::iter::once(PathBuf::from(INSTALLED_ENVOY_BIN)))
        .find(|p| p.is_file())
        .ok_or(EnvoyError::NotFound)
}

/// The command line of one epoch. `base_id` is `None` for epoch 0 of a new
/// family and the family's id afterwards.
pub fn args(opts: &EnvoyOptions, epoch: u32, base_id: Option<u32>) -> Vec<String> {
    let mut a = vec![
        "-c".to_string(),
        opts.bootstrap.display().to_string(),
        "--restart-epoch".into(),
        epoch.to_string(),
    ];
    match base_id {
        None => {
            a.push("--use-dynamic-base-id".into());
            a.push("--base-id-path".into());
            a.push(opts.base_id_path.display().to_string());
        }
        Some(id) => {
            a.push("--base-id".into());
            a.push(id.to_string());
        }
    }
    a.extend([
        "--drain-time-s".into(),
        secs(opts.drain).to_string(),
        "--parent-shutdown-time-s".into(),
        secs(opts.parent_shutdown).to_string(),
        // Close every connection at the start of a drain instead of spreading
        // closes over the drain time: clients move to the new epoch at once.
        "--drain-strategy".into(),
        "immediate".into(),
        "--log-level".into(),
        opts.log_level.clone(),
    ]);
    if let Some(c) = opts.concurrency {
        a.push("--concurrency".into());
        a.push(c.to_string());
    }
    a
}

/// Whole seconds, at least 1 (Envoy takes integers; 0 would mean no drain).
fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

/// Reads the base id epoch 0 wrote.
pub fn read_base_id(file: &Path) -> Result<u32, EnvoyError> {
    let bad = |reason: String| EnvoyError::BaseId {
        file: file.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
    text.trim()
        .parse()
        .map_err(|_| bad(format!("{:?} is not a base id", text.trim())))
}

/// The family's shared memory: Envoy names it after `base_id × 10`.
pub fn shm_path(base_id: u32) -> PathBuf {
    PathBuf::from(format!(
        "/dev/shm/envoy_shared_memory_{}",
        u64::from(base_id) * 10
    ))
}

/// A running epoch.
#[derive(Debug)]
pub struct EnvoyProcess {
    /// Its restart epoch.
    pub epoch: u32,
    /// Its PID.
    pub pid: u32,
    /// The child, for waiting and as a last-resort kill on drop.
    pub child: Child,
}

/// Starts one epoch in its own process group (so a Ctrl-C aimed at the
/// agent's terminal group reaches the agent only, which then drains Envoy in
/// order), with its output copied to the agent's stderr prefixed by epoch.
pub fn spawn(
    opts: &EnvoyOptions,
    epoch: u32,
    base_id: Option<u32>,
) -> Result<EnvoyProcess, EnvoyError> {
    let mut cmd = Command::new(&opts.bin);
    cmd.args(args(opts, epoch, base_id))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| EnvoyError::Spawn {
        bin: opts.bin.clone(),
        reason: e.to_string(),
    })?;
    let pid = child.id().unwrap_or_default();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(out, epoch, pid));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(err, epoch, pid));
    }
    tracing::info!(epoch, pid, ?base_id, "started Envoy");
    Ok(EnvoyProcess { epoch, pid, child })
}

async fn forward(r: impl AsyncRead + Unpin, epoch: u32, pid: u32) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("envoy[epoch={epoch} pid={pid}] {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> EnvoyOptions {
        EnvoyOptions {
            bin: "envoy".into(),
            bootstrap: "/w/bootstrap.json".into(),
            base_id_path: "/w/base-id".into(),
            drain: Duration::from_millis(5500),
            parent_shutdown: Duration::from_secs(10),
            concurrency: Some(2),
            log_level: "info".into(),
        }
    }

    #[test]
    fn first_epoch_uses_a_dynamic_base_id() {
        let a = args(&opts(), 0, None).join(" ");
        assert_eq!(
            a,
            "-c /w/bootstrap.json --restart-epoch 0 --use-dynamic-base-id --base-id-path /w/base-id \
             --drain-time-s 5 --parent-shutdown-time-s 10 --drain-strategy immediate --log-level info --concurrency 2"
        );
    }

    #[test]
    fn later_epochs_reuse_the_base_id() {
        let a = args(&opts(), 3, Some(42));
        assert!(a.windows(2).any(|w| w == ["--restart-epoch", "3"]));
        assert!(a.windows(2).any(|w| w == ["--base-id", "42"]));
        assert!(!a
            .iter()
            .any(|x| x.contains("dynamic") || x == "--base-id-path"));
    }

    #[test]
    fn base_id_file_and_shm_name() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("id");
        std::fs::write(&f, "85413788").unwrap();
        assert_eq!(read_base_id(&f).unwrap(), 85413788);
        assert_eq!(
            shm_path(85413788),
            PathBuf::from("/dev/shm/envoy_shared_memory_854137880")
        );
        std::fs::write(&f, "x").unwrap();
        assert!(read_base_id(&f).unwrap_err().to_string().contains("\"x\""));
    }

    #[test]
    fn binary_lookup() {
        assert_eq!(
            find_bin(Some("/opt/e".into()), None).unwrap(),
            PathBuf::from("/opt/e")
        );
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("envoy"), "").unwrap();
        let found = find_bin(None, Some(d.path().as_os_str().to_owned())).unwrap();
        assert_eq!(found, d.path().join("envoy"));
        let fallback = find_bin(None, Some("/nonexistent".into()));
        assert_eq!(fallback.is_ok(), Path::new(INSTALLED_ENVOY_BIN).is_file());
    }
}
