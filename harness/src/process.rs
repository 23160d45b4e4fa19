//! Processes in pods: spawning as a given UID/GID inside a pod's network
//! namespace (optionally with a private mount namespace and bind mounts), and
//! stopping them again by process group.
//!
//! A spawned command line looks like
//!
//! ```text
//! nsenter --net=/run/netns/NS                          (enter the pod's network)
//!   [unshare --mount --propagation private sh -c ...]  (private mounts, bind per-pod files)
//!   [setpriv --reuid U --regid G --clear-groups --]    (drop to the pod user)
//!   PROGRAM ARGS...
//! ```
//!
//! Each tool `exec`s the next, so the PID we get back is the program's own PID,
//! and `process_group(0)` makes it a group leader: stopping the group reaches
//! the children it forked too. No `pre_exec` hook, so no unsafe code.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use crate::pod::Pod;
use crate::shared::Inner;
use crate::state::ProcessRecord;

/// How long a stopped process gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// PATH given to pod processes unless their spec sets one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Starting or managing a pod process failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The spec is unusable (what is wrong, with which field).
    #[error("process spec for {program}: {reason}")]
    Spec {
        /// The program of the spec.
        program: String,
        /// What is wrong.
        reason: String,
    },
    /// A filesystem step (log file, mount point) failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `nsenter` (or the program) could not be started.
    #[error("cannot start {program} in pod {pod}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The pod.
        pod: String,
        /// Why exec failed.
        source: std::io::Error,
    },
    /// The harness instance was already torn down.
    #[error("pod {0}: its harness instance has been torn down")]
    TornDown(String),
    /// Recording the process in the state directory failed.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// What to run in a pod, and as whom.
///
/// ```
/// use rudder_harness::ProcessSpec;
/// let spec = ProcessSpec::new("/usr/bin/python3")
///     .args(["app.py"])
///     .env("PORT", "9080")
///     .user(1000, 1000)
///     .mount("/run/rudder-harness/demo/pods/a/hosts", "/etc/hosts");
/// assert_eq!(spec.uid, Some(1000));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ProcessSpec {
    /// Program path (or a name looked up in the process's PATH).
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// Environment: the process gets exactly these plus a default PATH.
    pub env: Vec<(String, String)>,
    /// UID to run as; `None` = root (like proxy-init).
    pub uid: Option<u32>,
    /// GID to run as; `None` = same as `uid`.
    pub gid: Option<u32>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// File receiving stdout and stderr; `None` = `<pod dir>/<program>.<n>.log`.
    pub log: Option<PathBuf>,
    /// `(host_path, pod_path)` bind mounts in a private mount namespace: the
    /// process sees `host_path`'s content at `pod_path`; the host and other
    /// pods are unaffected, and the harness state root (where every pod's
    /// files live) is hidden under an empty tmpfs. A missing `pod_path` is created on the host as an
    /// empty mount point (directory or file) and left there: removing it
    /// later would detach the mounts of pods still running.
    pub mounts: Vec<(PathBuf, PathBuf)>,
    /// Host directories that stay visible at their own path when a mount
    /// covers an ancestor (a checkout under `/tmp` when the pod gets its own
    /// `/tmp`). The program's directory and the working directory are kept
    /// without asking.
    pub keep: Vec<PathBuf>,
}

impl ProcessSpec {
    /// A spec running `program` as root with no arguments.
    pub fn new(program: impl Into<PathBuf>) -> ProcessSpec {
        ProcessSpec {
            program: program.into(),
            ..ProcessSpec::default()
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs as `uid`/`gid` with no supplementary groups.
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.uid = Some(uid);
        self.gid = Some(gid);
        self
    }

    /// Keeps host directory `dir` visible at its own path (see [`ProcessSpec::keep`]).
    pub fn keep(mut self, dir: impl Into<PathBuf>) -> Self {
        self.keep.push(dir.into());
        self
    }

    /// The directories to bind back over the mounts: existing host
    /// directories strictly below a mount target, none below another.
    fn kept(&self) -> Vec<PathBuf> {
        let program_dir = self
            .program
            .is_absolute()
            .then(|| self.program.parent())
            .flatten();
        let mut dirs: Vec<PathBuf> = self
            .keep
            .iter()
            .map(PathBuf::as_path)
            .chain(program_dir)
            .chain(self.cwd.as_deref())
            .filter(|d| d.is_absolute() && d.is_dir())
            .filter(|d| {
                self.mounts
                    .iter()
                    .any(|(_, target)| d.starts_with(target) && *d != target.as_path())
            })
            .map(Path::to_path_buf)
            .collect();
        dirs.sort();
        dirs.dedup();
        let all = dirs.clone();
        dirs.retain(|d| !all.iter().any(|a| a != d && d.starts_with(a)));
        dirs
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets the log file (stdout and stderr).
    pub fn log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    /// Adds a bind mount of `host_path` over `pod_path`.
    pub fn mount(mut self, host_path: impl Into<PathBuf>, pod_path: impl Into<PathBuf>) -> Self {
        self.mounts.push((host_path.into(), pod_path.into()));
        self
    }

    fn program_name(&self) -> String {
        self.program.file_name().map_or_else(
            || self.program.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    fn spec_err(&self, reason: String) -> ProcessError {
        ProcessError::Spec {
            program: self.program.display().to_string(),
            reason,
        }
    }

    /// The full command line (program first) that runs this spec in `netns_path`.
    /// With mounts, `hide` (the state root) is covered by an empty tmpfs, and
    /// the [`kept`](Self::kept) directories are staged under `stage` (inside
    /// `hide`) before the mounts and bound back after them.
    fn command_line(&self, netns_path: &Path, hide: &Path, stage: &Path) -> Vec<String> {
        let mut argv = vec![
            "nsenter".to_string(),
            format!("--net={}", netns_path.display()),
        ];
        if !self.mounts.is_empty() {
            argv.extend(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c"].map(String::from),
            );
            // Positional parameters carry the paths, so no quoting is needed
            // (`eval` only ever sees `kN=$1`). Kept directories are bound to
            // stage/N first, while the host's view is still there; then the
            // pod's binds; then stage/N back onto each kept path; last, a
            // tmpfs hides the harness state root: a pod sees its own files
            // only where they are mounted, never another pod's.
            argv.push(
                concat!(
                    r#"set -e; hide=$1; stage=$2; shift 2; n=0; "#,
                    r#"while [ "$1" != "--" ]; do n=$((n+1)); eval "k$n=\$1"; mkdir -p "$stage/$n"; mount --bind "$1" "$stage/$n"; shift; done; shift; "#,
                    r#"while [ "$1" != "--" ]; do mount --bind "$1" "$2"; shift 2; done; shift; "#,
                    r#"i=0; while [ $i -lt $n ]; do i=$((i+1)); eval "k=\$k$i"; mkdir -p "$k"; mount --bind "$stage/$i" "$k"; done; "#,
                    r#"mount -t tmpfs -o mode=0755,size=16k rudder-hidden "$hide"; exec "$@""#
                )
                .to_string(),
            );
            argv.push("rudder-mounts".to_string());
            argv.push(hide.display().to_string());
            argv.push(stage.display().to_string());
            argv.extend(self.kept().iter().map(|k| k.display().to_string()));
            argv.push("--".to_string());
            for (host, pod) in &self.mounts {
                argv.push(host.display().to_string());
                argv.push(pod.display().to_string());
            }
            argv.push("--".to_string());
        }
        if let Some(uid) = self.uid {
            let gid = self.gid.unwrap_or(uid);
            argv.extend([
                "setpriv".to_string(),
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
            ]);
            argv.extend(["--clear-groups", "--"].map(String::from));
        }
        argv.push(self.program.display().to_string());
        argv.extend(self.args.iter().cloned());
        argv
    }

    /// Checks the mounts and creates missing mount points.
    fn prepare_mounts(&self) -> Result<(), ProcessError> {
        for (host, pod) in &self.mounts {
            if !pod.is_absolute() {
                return Err(self.spec_err(format!(
                    "mount target {} is not an absolute path",
                    pod.display()
                )));
            }
            let meta = fs::metadata(host).map_err(|source| ProcessError::Io {
                what: "mount source",
                path: host.clone(),
                source,
            })?;
            let io = |source| ProcessError::Io {
                what: "creating mount point",
                path: pod.clone(),
                source,
            };
            if meta.is_dir() {
                fs::create_dir_all(pod).map_err(io)?;
            } else if !pod.exists() {
                if let Some(parent) = pod.parent() {
                    fs::create_dir_all(parent).map_err(io)?;
                }
                File::create(pod).map_err(io)?;
            }
        }
        Ok(())
    }
}

/// A process running in a pod. Dropping the handle stops its process group
/// (SIGTERM, then SIGKILL after [`STOP_GRACE`]); [`Process::detach`] leaves it
/// to the instance's teardown instead.
#[derive(Debug)]
pub struct Process {
    inner: Arc<Inner>,
    pid: i32,
    pod: String,
    log: PathBuf,
    detached: bool,
}

impl Pod {
    /// Starts `spec` inside this pod's network namespace.
    pub fn spawn(&self, spec: ProcessSpec) -> Result<Process, ProcessError> {
        if self.inner.is_torn_down() {
            return Err(ProcessError::TornDown(self.name().to_string()));
        }
        if spec.program.as_os_str().is_empty() {
            return Err(spec.spec_err("program is empty".into()));
        }
        if spec.gid.is_some() && spec.uid.is_none() {
            return Err(spec.spec_err("gid is set without uid".into()));
        }
        spec.prepare_mounts()?;
        let log = spec.log.clone().unwrap_or_else(|| {
            self.dir().join(format!(
                "{}.{}.log",
                spec.program_name(),
                self.inner.next_seq()
            ))
        });
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|source| ProcessError::Io {
                what: "opening log file",
                path: log.clone(),
                source,
            })?;
        let err = out.try_clone().map_err(|source| ProcessError::Io {
            what: "opening log file",
            path: log.clone(),
            source,
        })?;
        let argv = spec.command_line(
            &self.netns_path(),
            self.inner.dir.parent().unwrap_or(&self.inner.dir),
            &self.inner.dir.join(".keep"),
        );
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .env("PATH", DEFAULT_PATH)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        if let Some(dir) = &spec.cwd {
            cmd.current_dir(dir);
        }
        // Hold the children lock across spawn and record, so teardown never
        // sees a child it has no record of.
        let mut children = self
            .inner
            .children
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            program: spec.program.display().to_string(),
            pod: self.name().to_string(),
            source,
        })?;
        let pid = child.id() as i32;
        children.insert(pid, child);
        let record = ProcessRecord {
            pid,
            start_time: start_time(pid).unwrap_or(0),
            pod: self.name().to_string(),
            program: argv.join(" "),
        };
        drop(children);
        tracing::info!(pod = self.name(), pid, command = %record.program, log = %log.display(), "spawned");
        self.inner.update(|s| s.processes.push(record))?;
        Ok(Process {
            inner: self.inner.clone(),
            pid,
            pod: self.name().to_string(),
            log,
            detached: false,
        })
    }
}

impl Process {
    /// The PID (also the process group id).
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// The pod it runs in.
    pub fn pod(&self) -> &str {
        &self.pod
    }

    /// Where its stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The log so far (lossy UTF-8; empty if unreadable).
    pub fn read_log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Its exit status if it has exited (reaping it), else `None`.
    pub fn try_wait(&self) -> Option<ExitStatus> {
        let mut children = self
            .inner
            .children
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        children
            .get_mut(&self.pid)
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits up to `timeout` for it to exit on its own.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops its process group now (SIGTERM, SIGKILL after [`STOP_GRACE`]).
    pub fn stop(mut self) {
        self.stop_now();
    }

    /// Gives up the handle without stopping the process; the instance's
    /// teardown (or sweep) stops it.
    pub fn detach(mut self) {
        self.detached = true;
    }

    fn stop_now(&mut self) {
        self.detached = true;
        if self.inner.is_torn_down() {
            return; // teardown already stopped it and removed the record
        }
        let child = self
            .inner
            .children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.pid);
        stop_group(self.pid, None, child);
        let pid = self.pid;
        if let Err(error) = self.inner.update(|s| s.processes.retain(|p| p.pid != pid)) {
            tracing::warn!(%error, pid, "cannot update state after stopping process");
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.detached {
            self.stop_now();
        }
    }
}

/// Kernel start time of `pid` (field 22 of `/proc/<pid>/stat`).
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` exists and is not a zombie.
pub(crate) fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .is_some_and(|i| stat[i + 1..].split_whitespace().next() != Some("Z")),
        Err(_) => false,
    }
}

/// Stops the process group led by `pid`: SIGTERM, up to [`STOP_GRACE`], then
/// SIGKILL, and reaps the leader. With `expected_start` (a record from a
/// possibly crashed run) the group is signalled only if the leader is still
/// the process we started, so a recycled PID is never touched.
pub(crate) fn stop_group(
    pid: i32,
    expected_start: Option<u64>,
    mut child: Option<std::process::Child>,
) {
    let ours = child.is_some() || expected_start.is_some_and(|t| start_time(pid) == Some(t));
    if !ours {
        return;
    }
    let group = Pid::from_raw(pid);
    // While the leader is an unreaped zombie its PID (the group id) cannot be
    // recycled, so the final SIGKILL to the group happens before reaping.
    let mut finish = || {
        let _ = signal::killpg(group, Signal::SIGKILL);
        match child.as_mut() {
            Some(c) => {
                let _ = c.wait();
            }
            None => reap_foreign(pid),
        }
    };
    if !alive(pid) {
        finish();
        return;
    }
    let _ = signal::killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive(pid) {
        tracing::warn!(pid, "process ignored SIGTERM; sending SIGKILL");
    }
    finish();
}

/// Waits (bounded) for a PID that is not a std `Child` of ours to disappear,
/// reaping it if it happens to be our child (a leaked handle) and otherwise
/// leaving the reaping to its parent or init.
fn reap_foreign(pid: i32) {
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills every process whose network namespace is the one at `netns_path`.
/// They are ours by construction (the namespace is), e.g. an Envoy an agent
/// started in its own process group. Returns the PIDs killed.
pub(crate) fn kill_netns_members(netns_path: &Path) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::metadata(netns_path) else {
        return Vec::new();
    };
    let want = format!("net:[{}]", meta.ino());
    let mut killed = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return killed;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let link = fs::read_link(format!("/proc/{pid}/ns/net"));
        if link.is_ok_and(|l| l.as_os_str() == want.as_str()) && alive(pid) {
            let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            killed.push(pid);
        }
    }
    killed.iter().for_each(|&pid| reap_foreign(pid));
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_enters_netns_mounts_then_drops_privileges() {
        let spec = ProcessSpec::new("/bin/app")
            .arg("-v")
            .user(1000, 1001)
            .mount("/tmp/h", "/etc/hosts");
        let argv = spec.command_line(
            Path::new("/run/netns/x"),
            Path::new("/run/rudder-harness"),
            Path::new("/run/rudder-harness/m/p/.keep"),
        );
        let text = argv.join(" ");
        assert!(
            text.starts_with(
                "nsenter --net=/run/netns/x unshare --mount --propagation private sh -c"
            ),
            "{text}"
        );
        assert!(text.ends_with("rudder-mounts /run/rudder-harness /run/rudder-harness/m/p/.keep -- /tmp/h /etc/hosts -- setpriv --reuid=1000 --regid=1001 --clear-groups -- /bin/app -v"), "{text}");
        let plain = ProcessSpec::new("envoy").command_line(
            Path::new("/run/netns/y"),
            Path::new("/h"),
            Path::new("/h/k"),
        );
        assert_eq!(plain, ["nsenter", "--net=/run/netns/y", "envoy"]);
    }

    #[test]
    fn start_time_identifies_this_process() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some_and(|t| t > 0));
        assert!(alive(me));
        assert_eq!(start_time(i32::MAX), None);
    }
}
