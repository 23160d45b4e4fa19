//! A pod: one network namespace on the instance's bridge, and ways to run code
//! in it.
//!
//! In-process code runs on a dedicated thread that `setns`es into the pod's
//! network namespace: sockets it creates (and threads it spawns, which inherit
//! the namespace) belong to the pod, while the rest of the test stays on the
//! host. That lets tests run echo servers and HTTP clients "inside" pods
//! without extra binaries.

use std::fs::File;
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::thread::JoinHandle;

use nix::sched::{setns, CloneFlags};
use tokio::sync::watch;

use crate::cmd::{self, CmdError};
use crate::shared::Inner;
use crate::state::PodRecord;

/// Running code in a pod failed.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// The pod's namespace file could not be opened (pod torn down?).
    #[error("pod {pod}: cannot open {path}: {source}")]
    Open {
        /// The pod.
        pod: String,
        /// The namespace file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// setns(2) refused.
    #[error("pod {pod}: setns into its network namespace: {errno}")]
    Setns {
        /// The pod.
        pod: String,
        /// The errno.
        errno: nix::errno::Errno,
    },
    /// The per-thread tokio runtime could not be built.
    #[error("pod {pod}: tokio runtime: {source}")]
    Runtime {
        /// The pod.
        pod: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A command run in the pod failed.
    #[error("pod {pod}: {source}")]
    Cmd {
        /// The pod.
        pod: String,
        /// The failure (command line, status, stderr).
        source: CmdError,
    },
}

/// A pod of a [`crate::Net`]. Cheap to clone; the namespace lives until the
/// instance is torn down.
#[derive(Clone, Debug)]
pub struct Pod {
    pub(crate) inner: Arc<Inner>,
    record: PodRecord,
    dir: PathBuf,
}

/// Told to a background pod task when it should stop.
#[derive(Debug)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Completes once the task's [`PodTask`] is stopped or dropped.
    pub async fn wait(&mut self) {
        while !*self.0.borrow_and_update() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

/// A future running in a pod on its own thread and current-thread runtime.
/// Dropping it signals [`Shutdown`] and joins the thread.
#[derive(Debug)]
pub struct PodTask<T> {
    stop: watch::Sender<bool>,
    // `None` inside: the thread could not enter the pod (reported as an
    // error before any PodTask is handed out).
    thread: Option<JoinHandle<Option<T>>>,
}

impl<T> PodTask<T> {
    /// Signals shutdown and waits for the task's result (re-raising its panic).
    pub fn stop(mut self) -> T {
        let _ = self.stop.send(true);
        let thread = self.thread.take().expect("joined once");
        let result = thread
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        result.expect("a handed-out task entered its pod")
    }

    /// Whether the task has already finished on its own.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl<T> Drop for PodTask<T> {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Pod {
    pub(crate) fn new(inner: Arc<Inner>, record: PodRecord, dir: PathBuf) -> Pod {
        Pod { inner, record, dir }
    }

    /// Pod name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The pod's address on the bridge.
    pub fn ip(&self) -> Ipv4Addr {
        self.record.ip
    }

    /// Network namespace name.
    pub fn netns(&self) -> &str {
        &self.record.netns
    }

    /// `/run/netns/<netns>`: what `nsenter --net=` and setns take.
    pub fn netns_path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.record.netns)
    }

    /// The host side of the pod's veth pair.
    pub fn host_veth(&self) -> &str {
        &self.record.host_veth
    }

    /// Per-pod directory (mode 0755) for logs, bootstraps and files to mount.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn enter_current_thread(&self) -> Result<(), PodError> {
        let path = self.netns_path();
        let file = File::open(&path).map_err(|source| PodError::Open {
            pod: self.name().into(),
            path,
            source,
        })?;
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|errno| PodError::Setns {
            pod: self.name().into(),
            errno,
        })
    }

    /// Runs `f` on a fresh thread inside the pod's network namespace and
    /// returns its result (a panic in `f` is re-raised here).
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, PodError> {
        std::thread::scope(|s| {
            let handle = s.spawn(|| {
                self.enter_current_thread()?;
                Ok(f())
            });
            handle
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Runs the future made by `f` to completion inside the pod, on a
    /// current-thread tokio runtime.
    pub fn run<F, Fut>(&self, f: F) -> Result<Fut::Output, PodError>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future,
        Fut::Output: Send,
    {
        self.enter(|| {
            let rt = current_thread_runtime(self.name())?;
            Ok(rt.block_on(f()))
        })?
    }

    /// Starts the future made by `f` in the background inside the pod. The
    /// future gets a [`Shutdown`] to watch; `ready` lets it hand a value (e.g.
    /// the bound address) back before this returns.
    pub fn spawn_task<F, Fut, R>(&self, f: F) -> Result<(PodTask<Fut::Output>, R), PodError>
    where
        F: FnOnce(Shutdown, std::sync::mpsc::Sender<R>) -> Fut + Send + 'static,
        Fut: Future,
        Fut::Output: Send + 'static,
        R: Send + 'static,
    {
        let (stop, stop_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (err_tx, err_rx) = std::sync::mpsc::channel();
        let pod = self.clone();
        let thread = std::thread::Builder::new()
            .name(format!("pod-{}", self.name()))
            .spawn(move || {
                match pod
                    .enter_current_thread()
                    .and_then(|()| current_thread_runtime(pod.name()))
                {
                    Ok(rt) => {
                        drop(err_tx);
                        Some(rt.block_on(f(Shutdown(stop_rx), ready_tx)))
                    }
                    Err(e) => {
                        let _ = err_tx.send(e);
                        None
                    }
                }
            })
            .map_err(|source| PodError::Runtime {
                pod: self.name().into(),
                source,
            })?;
        if let Ok(e) = err_rx.recv() {
            let _ = thread.join();
            return Err(e);
        }
        let task = PodTask {
            stop,
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(r) => Ok((task, r)),
            // The future ended without reporting ready: surface its panic.
            Err(_) => {
                task.stop();
                panic!(
                    "pod task on {} finished without reporting ready",
                    self.name()
                )
            }
        }
    }

    /// Runs `program args` as root inside the pod (network namespace only) to
    /// completion; a non-zero exit is an error carrying its stderr.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output, PodError> {
        let net = format!("--net={}", self.netns_path().display());
        let mut argv = vec![net.as_str(), program];
        argv.extend_from_slice(args);
        cmd::run("nsenter", &argv).map_err(|source| PodError::Cmd {
            pod: self.name().into(),
            source,
        })
    }

    /// Installs capture rules by running the proxy-init binary at `proxy_init`
    /// with `args` inside the pod as root (as the init container does);
    /// returns what it printed. The harness writes no iptables rules itself:
    /// proxy-init is the one place they come from.
    pub fn capture(&self, proxy_init: &Path, args: &[&str]) -> Result<String, PodError> {
        let out = self.exec(&proxy_init.display().to_string(), args)?;
        tracing::info!(pod = self.name(), ?args, "capture installed");
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn current_thread_runtime(pod: &str) -> Result<tokio::runtime::Runtime, PodError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| PodError::Runtime {
            pod: pod.into(),
            source,
        })
}
