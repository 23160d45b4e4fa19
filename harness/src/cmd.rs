//! Running the system tools the harness drives (`ip`, `sysctl`, `nsenter`, ...).
//!
//! Every network change goes through iproute2 rather than netlink code of our
//! own: the commands are what an operator would type, they show up verbatim in
//! error messages, and they need no unsafe code.

use std::process::{Command, Output, Stdio};

/// A tool could not be started or reported failure.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The program could not be executed at all (missing, not executable).
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why exec failed.
        source: std::io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Exit status as text.
        status: String,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
}

/// Renders a command line for messages.
pub(crate) fn render(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `program args` to completion and returns its output, failing on a
/// non-zero exit with the command line and its stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<Output, CmdError> {
    let command = render(program, args);
    tracing::debug!(%command, "run");
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| CmdError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(CmdError::Failed {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(output)
}

/// Like [`run`] but returns stdout as text.
pub(crate) fn stdout(program: &str, args: &[&str]) -> Result<String, CmdError> {
    run(program, args).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Runs a removal command whose target may already be gone (teardown and sweep
/// are idempotent): "does not exist" style failures are not errors.
pub(crate) fn run_absent_ok(program: &str, args: &[&str]) -> Result<(), CmdError> {
    match run(program, args) {
        Ok(_) => Ok(()),
        Err(CmdError::Failed { stderr, .. })
            if stderr.contains("Cannot find device")
                || stderr.contains("No such file or directory")
                || stderr.contains("does not exist") =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}
