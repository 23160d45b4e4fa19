//! The executor seam: everything proxy-init runs goes through [`Executor`], so the
//! apply logic (ordering, rollback, error reporting) is tested without root by a
//! [`RecordingExecutor`] that records what would run (istio-iptables' `Dependencies`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// Running a program failed before it could report an exit status.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The program is not on the search path.
    #[error("{program}: not found on PATH or in /usr/sbin, /sbin, /usr/bin, /bin")]
    NotFound { program: String },
    /// Spawning or talking to the program failed.
    #[error("{program}: {error}")]
    Io {
        program: String,
        error: std::io::Error,
    },
}

/// What a finished program reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit code; `None` if it was killed by a signal.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// A successful output carrying `stdout`.
    pub fn ok(stdout: &str) -> Output {
        Output {
            code: Some(0),
            stdout: stdout.to_string(),
            stderr: String::new(),
        }
    }

    /// A failed output (exit 1) carrying `stderr`.
    pub fn failed(stderr: &str) -> Output {
        Output {
            code: Some(1),
            stdout: String::new(),
            stderr: stderr.to_string(),
        }
    }
}

/// Runs the iptables tools.
pub trait Executor {
    /// Whether `program` can be run.
    fn has(&self, program: &str) -> bool;
    /// Runs `program args...`, feeding it `stdin` if given, and waits for it.
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<Output, ExecError>;
}

/// Runs real programs. Besides `PATH` it searches the sbin directories, because
/// init containers and `ip netns exec` shells often have a PATH without them.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemExecutor;

const EXTRA_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

fn find(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return is_executable(Path::new(program)).then(|| PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

impl Executor for SystemExecutor {
    fn has(&self, program: &str) -> bool {
        find(program).is_some()
    }

    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<Output, ExecError> {
        let path = find(program).ok_or_else(|| ExecError::NotFound {
            program: program.to_string(),
        })?;
        let io = |error| ExecError::Io {
            program: program.to_string(),
            error,
        };
        tracing::debug!(program, ?args, "running");
        let mut child = Command::new(path)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io)?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // The tools read all input before writing anything, so writing first
            // cannot deadlock; dropping the pipe signals end of input.
            pipe.write_all(text.as_bytes()).map_err(io)?;
        }
        let out = child.wait_with_output().map_err(io)?;
        Ok(Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// One recorded invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The program name.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// What was fed on stdin.
    pub stdin: Option<String>,
}

type Responder = Box<dyn Fn(&Call) -> Output + Send + Sync>;

/// A stub executor: knows a fixed set of programs, answers every call with a
/// scripted [`Output`], and records the calls for assertions.
pub struct RecordingExecutor {
    available: Vec<String>,
    respond: Responder,
    calls: Mutex<Vec<Call>>,
}

impl RecordingExecutor {
    /// `available` programs exist; `respond` decides each call's output.
    pub fn new(
        available: &[&str],
        respond: impl Fn(&Call) -> Output + Send + Sync + 'static,
    ) -> Self {
        RecordingExecutor {
            available: available.iter().map(|s| s.to_string()).collect(),
            respond: Box::new(respond),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// Every call made so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Executor for RecordingExecutor {
    fn has(&self, program: &str) -> bool {
        self.available.iter().any(|p| p == program)
    }

    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<Output, ExecError> {
        if !self.has(program) {
            return Err(ExecError::NotFound {
                program: program.to_string(),
            });
        }
        let call = Call {
            program: program.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: stdin.map(str::to_string),
        };
        let out = (self.respond)(&call);
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
        Ok(out)
    }
}
